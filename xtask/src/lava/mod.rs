//! `cargo xtask lava`: the suite's real-fork plan on the devices of a LAVA lab, as one more
//! executor beside the host's runner and the local QEMU guests.
//!
//! - `job` writes a LAVA v2 job (and the artifacts it deploys: the kernel, the initramfs whose
//!   `/init` is the static forkbench, the plan) for a `qemu` device or a board;
//! - `device` writes the `qemu` device dictionary the job expects (rendered for `lava-run`);
//! - `submit` writes the job and runs it on a server (REST API) or a local dispatcher
//!   (`lava-run`), waits with progress, then fetches it;
//! - `fetch` reads a finished job's definition and log, decodes the frames the guest printed
//!   into the same records a local guest gives, and writes a result file under
//!   `results/<device>/`, or fails in one line and writes nothing;
//! - `testdef` is the path for boards that boot their own kernel and rootfs: a lava-test-shell
//!   definition that runs `forkbench run-plan` in the board's userspace.

mod device;
mod job;
mod log;
mod replay;
mod server;
mod testdef;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use contract::{Accel, Arch, Clock};

use self::device::QemuDevice;
use self::job::{Boot, JobMeta, JobSpec, LabPlan};
use self::replay::Ran;
use self::server::Server;
use crate::util;

/// `cargo xtask lava`.
#[derive(Args, Debug)]
pub struct LavaArgs {
    #[command(subcommand)]
    pub command: LavaCommand,
}

#[derive(Subcommand, Debug)]
pub enum LavaCommand {
    /// Write a LAVA job that runs the profile's real-fork layouts on one device (and the
    /// kernel, initramfs and plan it deploys)
    Job(JobCmd),
    /// Write the `qemu` device dictionary the jobs expect (`--render`: rendered, for lava-run)
    Device(DeviceArgs),
    /// Write a job, run it on a LAVA server (or a local lava-run), wait, and fetch its results
    Submit(SubmitArgs),
    /// Decode a finished job's records into a result file under results/<device>/
    Fetch(FetchArgs),
    /// For boards with their own kernel and rootfs: a lava-test-shell definition that runs the
    /// plan in the board's userspace, and the job lines that use it
    Testdef(TestdefArgs),
}

/// `--device-type`'s boot methods for boards.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootMethod {
    #[value(name = "u-boot")]
    UBoot,
    Grub,
    #[value(name = "grub-efi")]
    GrubEfi,
    Ipxe,
}

impl BootMethod {
    fn name(self) -> &'static str {
        match self {
            BootMethod::UBoot => "u-boot",
            BootMethod::Grub => "grub",
            BootMethod::GrubEfi => "grub-efi",
            BootMethod::Ipxe => "ipxe",
        }
    }
}

/// The accelerator of a `qemu` device.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuAccel {
    /// Emulated, with QEMU's exact instruction clock (icount): code-path differences
    Tcg,
    /// KVM on the worker (wall clock): the worker's hardware costs
    Kvm,
}

impl QemuAccel {
    fn accel(self) -> Accel {
        match self {
            QemuAccel::Tcg => Accel::Tcg,
            QemuAccel::Kvm => Accel::Kvm,
        }
    }
}

/// The plan's profile, its size and order.
#[derive(Args, Debug, Clone)]
pub struct PlanArgs {
    /// Machine profile: a name in bench-configs/ or a path [default: the embedded local.toml]
    #[arg(long)]
    pub config: Option<String>,
    /// The profile's [quick] sizes
    #[arg(long)]
    pub quick: bool,
    /// Seed of the run order [default: from the clock; in the job's metadata]
    #[arg(long)]
    pub seed: Option<u64>,
}

/// What `lava job` (and `lava submit`) write.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// The kernel under test, optionally labelled `LABEL=PATH`: a bzImage, an arm64 Image or a
    /// Debian linux-image package
    #[arg(long, value_name = "[LABEL=]PATH")]
    pub kernel: String,
    /// LAVA device type: `qemu`, or a board's type (then --boot-method)
    #[arg(long, default_value = "qemu")]
    pub device_type: String,
    /// A board's bootloader (its device type's `ramdisk` boot commands are used)
    #[arg(long, value_enum)]
    pub boot_method: Option<BootMethod>,
    /// The guest's arch [default: the image's]
    #[arg(long)]
    pub arch: Option<Arch>,
    /// A `qemu` device's accelerator
    #[arg(long, value_enum, default_value = "tcg")]
    pub accel: QemuAccel,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// More kernel parameters (repeatable)
    #[arg(long = "append", value_name = "PARAM")]
    pub append: Vec<String>,
    /// Where the kernel, initramfs, plan and job go [default: target/lava/<label>-<seed>]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// The URL the lab's dispatchers download the artifacts from (the directory served, e.g.
    /// by a web server) [default: file://<artifacts>, for a dispatcher on this machine]
    #[arg(long, value_name = "BASE")]
    pub artifact_url: Option<String>,
    /// The longest one step may take, minutes: the monitor's wait between two finished steps
    /// [default: from the plan's sizes]
    #[arg(long, value_name = "MINS")]
    pub step_timeout: Option<u64>,
}

#[derive(Args, Debug)]
pub struct JobCmd {
    #[command(flatten)]
    pub job: JobArgs,
    /// Write the job here instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct DeviceArgs {
    #[arg(long, default_value = "x86_64")]
    pub arch: Arch,
    /// Guest RAM (it must hold the plan's largest layout: `lava job` puts what it needs in the
    /// job's context, which a server applies; lava-run takes the dictionary's)
    #[arg(long, default_value = "1G")]
    pub mem: contract::Size,
    #[arg(long, value_enum, default_value = "tcg")]
    pub accel: QemuAccel,
    /// Render the dictionary with LAVA's device-type templates (the device file lava-run reads)
    #[arg(long)]
    pub render: bool,
    /// The dictionary to register on a server: QEMU's options left to each job's context
    /// (which `lava job` fills), so every job gets the memory its plan needs
    #[arg(long, conflicts_with = "render")]
    pub for_server: bool,
    /// LAVA's device-type templates [default: $FORKBENCH_LAVA_TEMPLATES, the installed
    /// server's, or those tools/provision-lava.sh unpacked]
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Where results go and how they are labelled.
#[derive(Args, Debug, Clone)]
pub struct ResultArgs {
    /// Directory for result files (each under its device's name)
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// The result's label [default: <device>-<kernel>]
    #[arg(long)]
    pub label: Option<String>,
}

impl ResultArgs {
    /// The results directory; a relative one is the repository's (as for `bench`).
    fn dir(&self) -> PathBuf {
        if self.results.is_absolute() {
            self.results.clone()
        } else {
            util::project_root().join(&self.results)
        }
    }
}

/// A LAVA server.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// The server's base URL (http:// or https://)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// An API token of the server's user (submitting needs one)
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub job: JobArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    /// No server: run the job with this machine's lava-run on a `qemu` device rendered from
    /// `lava device`
    #[arg(long, conflicts_with = "server")]
    pub local: bool,
    /// With --local: the device's name (the results' machine)
    #[arg(long, default_value = "lava-run-qemu")]
    pub device_name: String,
    /// With --local: LAVA's device-type templates
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Seconds between two looks at the job
    #[arg(long, default_value_t = 5)]
    pub poll: u64,
    #[command(flatten)]
    pub results: ResultArgs,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The job's id on the server
    pub job: Option<u64>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// A saved log instead (e.g. lava-run's output), with --definition
    #[arg(long, value_name = "FILE", conflicts_with = "job")]
    pub log: Option<PathBuf>,
    /// The job definition of --log
    #[arg(long, value_name = "FILE", requires = "log")]
    pub definition: Option<PathBuf>,
    /// With --log: the device's name (the results' machine)
    #[arg(long, default_value = "lava-run-qemu")]
    pub device_name: String,
    #[command(flatten)]
    pub results: ResultArgs,
}

#[derive(Args, Debug)]
pub struct TestdefArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// The boards' arch
    #[arg(long, default_value = "arm64")]
    pub arch: Arch,
    /// Where the static forkbench, the plan and the test definition go
    #[arg(long, value_name = "DIR")]
    pub artifacts: PathBuf,
    /// The URL the board downloads them from (the directory served)
    #[arg(long, value_name = "BASE")]
    pub artifact_url: String,
}

pub fn run(a: &LavaArgs) -> anyhow::Result<ExitCode> {
    match &a.command {
        LavaCommand::Job(j) => {
            let g = generate(&j.job)?;
            write_out(j.out.as_deref(), &g.yaml)?;
            eprintln!(
                "artifacts in {} (the job downloads them from {})",
                g.artifacts.display(),
                g.base_url
            );
        }
        LavaCommand::Device(d) => {
            let dev = QemuDevice {
                arch: d.arch,
                mem_mib: d.mem.bytes().div_ceil(1 << 20),
                accel: d.accel.accel(),
            };
            let text = if d.for_server {
                device::SERVER_DICTIONARY.to_string()
            } else if d.render {
                device::render(
                    &dev.dictionary(),
                    &device::templates_dir(d.templates.as_deref())?,
                )?
            } else {
                dev.dictionary()
            };
            write_out(d.out.as_deref(), &text)?;
        }
        LavaCommand::Submit(s) => {
            submit(s)?;
        }
        LavaCommand::Fetch(f) => {
            fetch(f)?;
        }
        LavaCommand::Testdef(t) => testdef::run(t)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `text` to `out` (atomically) or stdout.
fn write_out(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(p) => results::fsio::write_replace(p, text.as_bytes())
            .with_context(|| format!("writing {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// A written job.
pub struct Generated {
    pub yaml: String,
    pub artifacts: PathBuf,
    pub base_url: String,
    pub lab_plan: LabPlan,
    pub device_type: String,
    /// The `qemu` device the job expects (None for a board).
    pub qemu: Option<QemuDevice>,
}

fn seed_of(p: &PlanArgs) -> anyhow::Result<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?;
    Ok(p.seed
        .unwrap_or(now.as_secs() ^ u64::from(now.subsec_nanos())))
}

/// Write the artifacts and the job definition of `a`.
pub fn generate(a: &JobArgs) -> anyhow::Result<Generated> {
    let seed = seed_of(&a.plan)?;
    let board = a.device_type != "qemu";
    if board && a.boot_method.is_none() {
        bail!(
            "--device-type {}: a board needs --boot-method u-boot|grub|grub-efi|ipxe (its \
             bootloader); only `qemu` boots without one",
            a.device_type
        );
    }
    let work = tempfile::Builder::new()
        .prefix("forkbench-lava-")
        .tempdir()
        .context("creating a temporary directory for the kernel image")?;
    let spec = crate::kernels::KernelSpec::parse(&a.kernel, false);
    let kernel = crate::kernels::prepare(&[spec], a.arch, work.path())?
        .pop()
        .context("no kernel")?;
    let arch = kernel.image.arch;
    let lab_plan = job::lab_plan(a.plan.config.as_deref(), a.plan.quick, seed, &kernel.label)?;
    let root = util::project_root();
    let artifacts = match &a.artifacts {
        Some(d) => d.clone(),
        None => util::target_dir()
            .join("lava")
            .join(format!("{}-{seed}", util::path_component(&kernel.label))),
    };
    std::fs::create_dir_all(&artifacts)
        .with_context(|| format!("creating {}", artifacts.display()))?;
    let artifacts = artifacts
        .canonicalize()
        .with_context(|| format!("{}", artifacts.display()))?;
    eprintln!("building the static guest forkbench for {arch} ...");
    let payload =
        guest::payload::build_payload(&root, arch).context("building the guest's forkbench")?;
    let image = job::copy_into(&kernel.image.path, &artifacts)?;
    let initrd = artifacts.join("initramfs.cpio");
    guest::initramfs::write_initramfs(&payload, &lab_plan.guest, &[], &initrd)?;
    results::fsio::write_replace(
        &artifacts.join("plan.json"),
        lab_plan.guest.to_json().as_bytes(),
    )?;
    let base_url = match &a.artifact_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("file://{}", artifacts.display()),
    };
    let file_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let initrd_bytes = std::fs::metadata(&initrd).map_or(0, |m| m.len());
    let qemu = (!board).then(|| QemuDevice {
        arch,
        mem_mib: crate::kernels::guest_mem(&lab_plan.plan, initrd_bytes)
            .bytes()
            .div_ceil(1 << 20),
        accel: a.accel.accel(),
    });
    let (boot, accel, clock) = match (&qemu, a.boot_method) {
        (Some(d), _) => (
            Boot::Qemu {
                context: d.variables(),
            },
            d.accel,
            d.clock(),
        ),
        (None, Some(m)) => (
            Boot::Board {
                method: m.name().to_string(),
            },
            Accel::Host,
            Clock::Wall,
        ),
        (None, None) => unreachable!("checked above"),
    };
    let meta = JobMeta {
        profile: a.plan.config.clone(),
        quick: a.plan.quick,
        seed,
        kernel: Some(kernel.label.clone()),
        image: kernel.source.clone(),
        arch,
        accel,
        clock,
        plan_digest: job::plan_digest(&lab_plan.guest),
        git_rev: util::git_rev(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        kconfig: kernel
            .image
            .config
            .as_deref()
            .map(guest::image::config_facts)
            .unwrap_or_default(),
        shell: false,
    };
    let mut params = vec![
        guest::qemu::KERNEL_PARAMS.to_string(),
        "panic_on_oops=1".into(),
    ];
    // An icount device runs exact, as a local icount guest does: the same command line.
    if clock == contract::Clock::Icount {
        params.push(guest::qemu::EXACT_CMDLINE.into());
    }
    params.extend(a.append.iter().cloned());
    let (step_minutes, job_minutes) = timeouts(&lab_plan, arch, a.step_timeout);
    let boot_minutes = match arch {
        Arch::X86_64 => 5,
        Arch::Arm64 => 15,
    };
    let spec = JobSpec {
        device_type: a.device_type.clone(),
        job_name: format!(
            "forkbench {} {} on {}",
            lab_plan.profile.profile, kernel.label, a.device_type
        ),
        meta,
        boot,
        kernel_url: format!("{base_url}/{}", file_name(&image)),
        ramdisk_url: format!("{base_url}/initramfs.cpio"),
        kernel_params: params.join(" "),
        job_minutes: job_minutes + boot_minutes,
        step_minutes,
        boot_minutes,
    };
    let yaml = spec.to_yaml()?;
    results::fsio::write_replace(&artifacts.join("job.yaml"), yaml.as_bytes())?;
    Ok(Generated {
        yaml,
        artifacts,
        base_url,
        lab_plan,
        device_type: a.device_type.clone(),
        qemu,
    })
}

/// `(step, job)` timeouts in minutes: ten times the suite's own estimate per call (an
/// emulated arm64 guest is slower still) plus 5 minutes, and the plan's steps three times over
/// plus 10 minutes.
fn timeouts(lp: &LabPlan, arch: Arch, step: Option<u64>) -> (u64, u64) {
    let slow = match arch {
        Arch::X86_64 => 10.0,
        Arch::Arm64 => 40.0,
    };
    let per_call: Vec<f64> = lp
        .plan
        .order
        .iter()
        .map(|&(_, g)| crate::bench::call_estimate_secs(&lp.plan.groups[g]))
        .collect();
    let longest = per_call.iter().copied().fold(0.0, f64::max);
    let step = step.unwrap_or(((longest * slow) / 60.0).ceil() as u64 + 5);
    let total: f64 = per_call.iter().sum();
    (step, ((total * slow * 3.0) / 60.0).ceil() as u64 + 10)
}

/// `lava submit`: write the job, run it, wait, fetch.
fn submit(s: &SubmitArgs) -> anyhow::Result<PathBuf> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    if !s.local && s.server.server.is_none() {
        bail!(
            "lava submit needs --server URL (a LAVA server) or --local (this machine's lava-run)"
        );
    }
    let g = generate(&s.job)?;
    let steps = g.lab_plan.guest.steps.len();
    let (definition, log_text, ran) = if s.local {
        let dev = g
            .qemu
            .context("--local runs `qemu` devices only: --device-type qemu")?;
        run_local(&g, dev, s, &stop)?
    } else {
        let server = Server::new(
            s.server.server.as_deref().unwrap_or_default(),
            s.server.token.as_deref(),
        )?;
        let id = server.submit(&g.yaml)?;
        eprintln!(
            "submitted job {id} to {} (device type {})",
            server.url, g.device_type
        );
        wait(
            &server,
            id,
            steps,
            Duration::from_secs(s.poll.max(1)),
            &stop,
        )?;
        from_server(&server, id)?
    };
    let job = replay::check_job(&definition, &log_text, ran)?;
    replay::save(job, &s.results.dir(), s.results.label.as_deref(), &stop)
}

/// Run a job with this machine's `lava-run` on the `qemu` device the job expects, showing the
/// steps as they finish. Returns the definition, the log and where it ran.
fn run_local(
    g: &Generated,
    dev: QemuDevice,
    s: &SubmitArgs,
    stop: &AtomicBool,
) -> anyhow::Result<(String, String, Ran)> {
    let lava_run = guest::fetch::which_in_path("lava-run")
        .context("lava-run is not installed: apt-get install lava-dispatcher (or bash tools/provision-lava.sh)")?;
    let templates = device::templates_dir(s.templates.as_deref())?;
    let device_yaml = g.artifacts.join("device.yaml");
    results::fsio::write_replace(
        &device_yaml,
        device::render(&dev.dictionary(), &templates)?.as_bytes(),
    )?;
    // lava-run copies the images to /var/lib/lava/dispatcher/tmp/<job id>/: ids must differ
    // between concurrent jobs.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?;
    let job_id = format!(
        "{}{:03}",
        now.as_secs() % 100_000_000,
        std::process::id() % 1000
    );
    let log_path = g.artifacts.join(format!("lava-run-{job_id}.log"));
    let log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let out_dir = g.artifacts.join(format!("lava-run-{job_id}"));
    eprintln!(
        "running the job with {} (job {job_id}; log {})",
        lava_run.display(),
        log_path.display()
    );
    use std::os::unix::process::CommandExt;
    // Its own process group: a signal to this process stops lava-run (and its QEMU) through
    // SIGTERM, which lets it clean up, whoever sent the signal.
    let mut child = Command::new(&lava_run)
        .process_group(0)
        .arg("--job-id")
        .arg(&job_id)
        .arg("--output-dir")
        .arg(&out_dir)
        .arg("--device")
        .arg(&device_yaml)
        .arg(g.artifacts.join("job.yaml"))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().context("log file")?))
        .stderr(Stdio::from(log_file))
        .spawn()
        .with_context(|| format!("starting {}", lava_run.display()))?;
    let steps = g.lab_plan.guest.steps.len();
    let t0 = Instant::now();
    let mut shown = usize::MAX;
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for lava-run")? {
            break st;
        }
        if stop.load(Ordering::Relaxed) {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
            bail!("interrupted: lava-run was stopped, no result file written");
        }
        let done = std::fs::read(&log_path).map_or(0, |t| count_done(&t));
        if done != shown {
            eprintln!(
                "  {:>5.0} s  {done}/{steps} steps done",
                t0.elapsed().as_secs_f64()
            );
            shown = done;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut text = String::new();
    std::fs::File::open(&log_path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .with_context(|| format!("reading {}", log_path.display()))?;
    eprintln!(
        "lava-run finished ({status}) after {:.0} s; {}/{steps} steps done",
        t0.elapsed().as_secs_f64(),
        count_done(text.as_bytes())
    );
    Ok((
        g.yaml.clone(),
        text,
        Ran {
            server: "lava-run".into(),
            job_id,
            device: s.device_name.clone(),
            device_type: g.device_type.clone(),
        },
    ))
}

/// StepDone frames in a log so far (their first chunk).
fn count_done(log: &[u8]) -> usize {
    let needle = b"@@FB1 done ";
    log.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Wait until a server's job finishes, showing its state and its finished steps.
fn wait(
    server: &Server,
    id: u64,
    steps: usize,
    poll: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut last = (String::new(), usize::MAX);
    let mut log_lines = 0usize;
    let mut done = 0usize;
    loop {
        if stop.load(Ordering::Relaxed) {
            bail!(
                "interrupted: job {id} goes on on the server; fetch it later with `cargo xtask \
                 lava fetch {id} --server {}`",
                server.url
            );
        }
        let st = server.status(id)?;
        if st.state == "Running"
            && let Some(more) = server.log_from(id, log_lines)?
        {
            log_lines += more.lines().count();
            done += count_done(more.as_bytes());
        }
        let now = (
            format!("{} {}", st.state, st.actual_device.as_deref().unwrap_or("")),
            done,
        );
        if now != last {
            eprintln!(
                "  {:>5.0} s  job {id}: {}{}, {done}/{steps} steps done",
                t0.elapsed().as_secs_f64(),
                st.state,
                st.actual_device
                    .as_deref()
                    .map(|d| format!(" on {d}"))
                    .unwrap_or_default()
            );
            last = now;
        }
        if st.finished() {
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}

/// A finished job's definition, log and device from a server; an unfinished, cancelled or
/// incomplete job is an error.
fn from_server(server: &Server, id: u64) -> anyhow::Result<(String, String, Ran)> {
    let st = server.status(id)?;
    if !st.finished() {
        bail!(
            "job {id} is not finished (state {}): wait, then fetch again",
            st.state
        );
    }
    let log_text = server.log(id)?;
    if st.health != "Complete" {
        let last_error = log::JobLog::parse(&log_text).errors.last().cloned();
        bail!(
            "job {id} ended {} on the server{}: no result file written",
            st.health.to_lowercase(),
            last_error.map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    let device = st
        .actual_device
        .clone()
        .with_context(|| format!("job {id} names no device"))?;
    let device_type = st
        .requested_device_type
        .clone()
        .unwrap_or_else(|| "unknown".into());
    Ok((
        st.definition,
        log_text,
        Ran {
            server: server.url.clone(),
            job_id: id.to_string(),
            device,
            device_type,
        },
    ))
}

/// `lava fetch`.
fn fetch(f: &FetchArgs) -> anyhow::Result<PathBuf> {
    let stop = AtomicBool::new(false);
    let (definition, log_text, ran) = match (f.job, &f.log) {
        (Some(id), None) => {
            let url = f
                .server
                .server
                .as_deref()
                .context("lava fetch JOB needs --server URL")?;
            from_server(&Server::new(url, f.server.token.as_deref())?, id)?
        }
        (None, Some(log)) => {
            let def = f
                .definition
                .as_deref()
                .context("lava fetch --log needs --definition (the job that made the log)")?;
            let read = |p: &Path| {
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
            };
            let definition = read(def)?;
            let device_type = yaml_serde::from_str::<yaml_serde::Value>(&definition)
                .ok()
                .and_then(|v| v.get("device_type")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown".into());
            (
                definition,
                read(log)?,
                Ran {
                    server: "lava-run".into(),
                    job_id: log
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    device: f.device_name.clone(),
                    device_type,
                },
            )
        }
        _ => bail!("lava fetch needs a job id (with --server) or --log FILE --definition FILE"),
    };
    let job = replay::check_job(&definition, &log_text, ran)?;
    replay::save(job, &f.results.dir(), f.results.label.as_deref(), &stop)
}
