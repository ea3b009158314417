//! Kernel mode (`cargo xtask bisect --kernel-tree DIR`): each revision of a kernel tree is
//! built in one worktree that moves from revision to revision (so `make` and `ccache` rebuild
//! only what changed), its image booted in a QEMU guest whose `/init` is the static forkbench
//! (one boot per measurement), and the fork time of one layout measured inside.
//!
//! Build: `--build-cmd CMD` runs `sh -c CMD` in the worktree and boots the path printed on the
//! last non-empty line of its stdout; otherwise [`DefaultBuild`]: `tinyconfig`, the shipped
//! fragment (plus `--config-fragment`) merged with `scripts/kconfig/merge_config.sh -m`,
//! `olddefconfig`, then the arch's image target, out of tree in the session's build directory.
//! A failed build, an image that is not a kernel, a kernel that does not boot and a step that
//! fails inside the guest each skip the revision (exit-125 semantics) with their last lines.
//! One boot gives one sample, the fastest of its forks. Every build and boot is timed and logged. Ctrl-C kills the build's process group and QEMU.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use contract::{Arch, RealLayout, RealOpts, RunnerLine, Size};
use guest::image::KernelImage;
use guest::plan::{GuestPlan, GuestStep};
use guest::qemu::{AccelChoice, Guest, GuestConfig, GuestError, GuestEvent};
use serde::Serialize;

use crate::decide::Decision;
use crate::git::Worktrees;
use crate::search::{Measure, MeasureError, Rev, SearchEvent};

/// The config fragment shipped with forkbench, merged onto `tinyconfig`.
pub const SHIPPED_FRAGMENT: &str = include_str!("../kernel/forkbench.config");
/// Guest RAM added to the launcher's estimate for the measured step.
pub const GUEST_HEADROOM: u64 = 512 << 20;
/// Console or build-output lines kept with a failure.
const TAIL_LINES: usize = 8;

/// Kernel-mode arguments of `cargo xtask bisect` (flattened into [`crate::cli::BisectArgs`]).
#[derive(Args, Debug, Clone, Default)]
pub struct KernelArgs {
    /// Kernel mode: the kernel git tree to bisect (each revision built, booted in QEMU, measured)
    #[arg(long, conflicts_with_all = ["metric", "cmd", "repo"])]
    pub kernel_tree: Option<PathBuf>,
    /// Kernel mode: the real-fork layout measured in the guest [default: pte-order9]
    #[arg(long)]
    pub layout: Option<RealLayout>,
    /// Kernel mode: the guest architecture [default: this host's]
    #[arg(long)]
    pub arch: Option<Arch>,
    /// Kernel mode: build command run with `sh -c` in each revision's worktree; the last
    /// non-empty line of its stdout is the kernel image to boot [default: make tinyconfig +
    /// the shipped fragment, olddefconfig, the arch's image target]
    #[arg(long)]
    pub build_cmd: Option<String>,
    /// Kernel mode: a config fragment merged after the shipped one (default build only)
    #[arg(long, conflicts_with = "build_cmd")]
    pub config_fragment: Option<PathBuf>,
    /// Kernel mode: accelerator for the guests: auto, kvm or tcg
    #[arg(long)]
    pub accel: Option<AccelChoice>,
    /// Kernel mode: parallel jobs of the default build [default: the CPUs available]
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Kernel mode: seconds a guest gets to reach its init [default: 60 for x86_64, 300 for arm64]
    #[arg(long)]
    pub boot_timeout: Option<u64>,
}

impl KernelArgs {
    /// The kernel-mode flags given without `--kernel-tree` (they would do nothing).
    pub fn stray_flags(&self) -> Vec<&'static str> {
        if self.kernel_tree.is_some() {
            return Vec::new();
        }
        [
            ("--layout", self.layout.is_some()),
            ("--arch", self.arch.is_some()),
            ("--build-cmd", self.build_cmd.is_some()),
            ("--config-fragment", self.config_fragment.is_some()),
            ("--accel", self.accel.is_some()),
            ("--jobs", self.jobs.is_some()),
            ("--boot-timeout", self.boot_timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// The default build of one arch: commands run in the worktree, and the image they leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBuild {
    pub arch: Arch,
    /// The arch of the machine building (a different guest arch cross-compiles).
    pub host: Arch,
    pub jobs: usize,
    /// Compile through `ccache`.
    pub ccache: bool,
    /// Out-of-tree build directory (`make O=`), shared by every revision.
    pub out_dir: PathBuf,
    /// Fragments merged onto tinyconfig, in order.
    pub fragments: Vec<PathBuf>,
}

impl DefaultBuild {
    fn make_vars(&self) -> Vec<String> {
        let (arch, cross) = match self.arch {
            Arch::X86_64 => ("x86_64", "x86_64-linux-gnu-"),
            Arch::Arm64 => ("arm64", "aarch64-linux-gnu-"),
        };
        let mut v = vec![format!("ARCH={arch}")];
        let cross = if self.arch == self.host { "" } else { cross };
        if !cross.is_empty() {
            v.push(format!("CROSS_COMPILE={cross}"));
        }
        if self.ccache {
            v.push(format!("CC=ccache {cross}gcc"));
        }
        v.push(format!("O={}", self.out_dir.display()));
        v
    }

    /// The image target of the arch.
    pub fn target(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "bzImage",
            Arch::Arm64 => "Image",
        }
    }

    /// Every command, as argv, run in order in the worktree.
    pub fn commands(&self) -> Vec<Vec<String>> {
        let make = |extra: &[String]| {
            let mut c = vec!["make".to_string()];
            c.extend(self.make_vars());
            c.extend(extra.iter().cloned());
            c
        };
        let mut merge = vec![
            "sh".to_string(),
            "scripts/kconfig/merge_config.sh".into(),
            "-m".into(),
            "-O".into(),
            self.out_dir.display().to_string(),
            self.out_dir.join(".config").display().to_string(),
        ];
        merge.extend(self.fragments.iter().map(|f| f.display().to_string()));
        vec![
            make(&["tinyconfig".into()]),
            merge,
            make(&["olddefconfig".into()]),
            make(&[format!("-j{}", self.jobs), self.target().into()]),
        ]
    }

    /// Where the image lands.
    pub fn image(&self) -> PathBuf {
        let arch_dir = match self.arch {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        };
        self.out_dir
            .join("arch")
            .join(arch_dir)
            .join("boot")
            .join(self.target())
    }
}

/// How each revision is built.
#[derive(Debug, Clone)]
pub enum Build {
    /// `sh -c CMD`; the last non-empty stdout line is the image.
    Command(String),
    Default(DefaultBuild),
}

/// The last non-empty line of `stdout`: the image path of a `--build-cmd`.
pub fn image_line(stdout: &str) -> Option<&str> {
    stdout.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The last `n` non-empty lines of `text`, joined with " | ".
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A finished child process.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run `cmd` in its own process group with its output captured, killing the group if
/// `cancelled` is set meanwhile (`None` then).
fn run_cancellable(
    mut cmd: Command,
    cancelled: &AtomicBool,
) -> Result<Option<Finished>, std::io::Error> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if cancelled.load(Ordering::SeqCst) {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        // Polled, so that a Ctrl-C reaches a build in its own process group.
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    Ok(status.map(|status| Finished {
        status,
        stdout,
        stderr,
    }))
}

/// One build or boot, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    pub rev: String,
    pub subject: String,
    /// `build` or `boot`.
    pub step: &'static str,
    pub ok: bool,
    /// Build: the whole build. Boot: QEMU start to forkbench's Hello.
    pub ms: u64,
    /// Boot: QEMU start to the guest's power-off (boot, populate, forks, exit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wall_ms: Option<u64>,
    /// Fork-time samples in ns (boots).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
    /// Every fork's time in ns (boots): the sample is the fastest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forks_ns: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a revision's kernel is measured.
#[derive(Debug, Clone)]
pub struct GuestSetup {
    pub arch: Arch,
    pub layout: RealLayout,
    pub mem: Size,
    pub iters: u32,
    pub accel: AccelChoice,
    pub payload: PathBuf,
    pub boot_timeout: Option<Duration>,
}

impl GuestSetup {
    /// The one guest step: one run of `iters` forks (after a warm-up fork), pinned to the
    /// last vCPU. Its sample is the fastest fork: under emulation a fork's time is its code
    /// path plus whatever the busy host adds (QEMU preempted), and the least of 20 sheds that.
    pub fn opts(&self, vcpus: u32) -> RealOpts {
        RealOpts {
            mem: self.mem,
            iters: self.iters,
            runs: 1,
            warmup: 1,
            cpu: Some(vcpus.saturating_sub(1) as usize),
            ..RealOpts::new(self.layout)
        }
    }
}

/// Builds, boots and measures kernel revisions; keeps the log of every step.
pub struct KernelMeasure<'a> {
    pub worktrees: &'a mut Worktrees,
    pub build: Build,
    pub guest: GuestSetup,
    pub cancelled: Arc<AtomicBool>,
    /// Each revision's image (copied out of the build) or why it has none.
    built: HashMap<String, Result<KernelImage, String>>,
    pub log: Vec<StepLog>,
    /// Measurements so far of the revision being measured (for the step lines).
    runs_of: HashMap<String, usize>,
}

impl<'a> KernelMeasure<'a> {
    pub fn new(
        worktrees: &'a mut Worktrees,
        build: Build,
        guest: GuestSetup,
        cancelled: Arc<AtomicBool>,
    ) -> Self {
        KernelMeasure {
            worktrees,
            build,
            guest,
            cancelled,
            built: HashMap::new(),
            log: Vec::new(),
            runs_of: HashMap::new(),
        }
    }

    fn interrupted(&self) -> Result<(), MeasureError> {
        if self.cancelled.load(Ordering::SeqCst) {
            Err(MeasureError::Abort("interrupted".into()))
        } else {
            Ok(())
        }
    }

    /// Build `rev` and copy its image into the session (the build directory's copy is
    /// overwritten by the next revision). `Err(Skip)` with the build's last lines.
    fn build_rev(&mut self, rev: &Rev) -> Result<(KernelImage, u64), MeasureError> {
        self.interrupted()?;
        let dir = self
            .worktrees
            .checkout_moving("tree", rev)
            .map_err(|e| MeasureError::Abort(e.to_string()))?;
        let short = &rev.hash[..rev.hash.len().min(12)];
        eprintln!("  building {short} ...");
        let start = Instant::now();
        let built = match &self.build {
            Build::Command(cmd) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(cmd).current_dir(&dir);
                c.env("FORKBENCH_BISECT_REV", &rev.hash)
                    .env("FORKBENCH_ARCH", self.guest.arch.to_string());
                self.run_build(c, "--build-cmd")
                    .and_then(|out| match image_line(&out) {
                        Some(p) => Ok(dir.join(p)),
                        None => Err(MeasureError::Skip(
                            "build failed: the build command printed no image path".into(),
                        )),
                    })
            }
            Build::Default(d) => {
                let d = d.clone();
                let mut r = Ok(d.image());
                for argv in d.commands() {
                    let mut c = Command::new(&argv[0]);
                    c.args(&argv[1..]).current_dir(&dir);
                    if let Err(e) = self.run_build(c, &format!("`{}`", argv.join(" "))) {
                        r = Err(e);
                        break;
                    }
                }
                r
            }
        };
        let ms = start.elapsed().as_millis() as u64;
        let image = built.and_then(|path| {
            let copy = self.worktrees.session_dir().join(format!("image-{short}"));
            KernelImage::open(&path)
                .map_err(|e| MeasureError::Skip(format!("boot failed: {e}")))?;
            std::fs::copy(&path, &copy).map_err(|e| {
                MeasureError::Skip(format!("build gave no image {}: {e}", path.display()))
            })?;
            let mut img = KernelImage::open(&copy)
                .map_err(|e| MeasureError::Skip(format!("boot failed: {e}")))?;
            if img.arch != self.guest.arch {
                return Err(MeasureError::Skip(format!(
                    "boot failed: {} is an {} kernel, the guests are {}",
                    path.display(),
                    img.arch,
                    self.guest.arch
                )));
            }
            // The tree's .config beside arch/ is the kernel's config; copied too, as the
            // next revision's build overwrites it.
            img.config = path
                .ancestors()
                .nth(4)
                .map(|root| root.join(".config"))
                .filter(|c| c.is_file())
                .and_then(|c| {
                    let to = self.worktrees.session_dir().join(format!("config-{short}"));
                    std::fs::copy(&c, &to).ok().map(|_| to)
                });
            Ok(img)
        });
        let mut entry = StepLog {
            rev: rev.hash.clone(),
            subject: rev.subject.clone(),
            step: "build",
            ok: image.is_ok(),
            ms,
            wall_ms: None,
            samples: vec![],
            forks_ns: vec![],
            image: None,
            release: None,
            accel: None,
            error: None,
        };
        match &image {
            Ok(img) => {
                entry.image = Some(img.path.clone());
                entry.release = img.release.clone();
                eprintln!(
                    "  built {short} in {:.1} s: {}",
                    ms as f64 / 1000.0,
                    img.release.as_deref().unwrap_or("(release unknown)")
                );
            }
            Err(MeasureError::Skip(why) | MeasureError::Abort(why)) => {
                entry.error = Some(why.clone());
                eprintln!("  {short}: {why} (after {:.1} s)", ms as f64 / 1000.0);
            }
        }
        self.log.push(entry);
        image.map(|i| (i, ms))
    }

    /// Run one build command; its stdout on success, else a skip with its last lines.
    fn run_build(&self, c: Command, what: &str) -> Result<String, MeasureError> {
        match run_cancellable(c, &self.cancelled) {
            Err(e) => Err(MeasureError::Abort(format!("cannot run {what}: {e}"))),
            Ok(None) => Err(MeasureError::Abort("interrupted".into())),
            Ok(Some(f)) if f.status.success() => Ok(f.stdout),
            Ok(Some(f)) => {
                let last = if f.stderr.trim().is_empty() {
                    tail(&f.stdout, TAIL_LINES)
                } else {
                    tail(&f.stderr, TAIL_LINES)
                };
                Err(MeasureError::Skip(format!(
                    "build failed: {what} ({}): {last}",
                    f.status
                )))
            }
        }
    }

    /// Boot `image` once and run the measurement: its samples, or a skip with the console
    /// tail.
    fn boot_once(&mut self, rev: &Rev, image: &KernelImage) -> Result<Vec<f64>, MeasureError> {
        self.interrupted()?;
        // One vCPU: one emulation thread, so a busy host disturbs the measurement least.
        let vcpus = 1;
        let plan = GuestPlan::new(true, vec![GuestStep::Real(self.guest.opts(vcpus))]);
        let mut cfg = GuestConfig::new(image.clone(), self.guest.payload.clone(), plan);
        cfg.accel = self.guest.accel;
        cfg.vcpus = vcpus;
        // Room beyond the launcher's estimate, so that the guest never reclaims while it
        // measures; QEMU allocates guest RAM lazily, so the headroom costs little.
        cfg.mem = Size(cfg.mem.bytes() + GUEST_HEADROOM);
        if let Some(t) = self.guest.boot_timeout {
            cfg.boot_timeout = t;
        }
        let start = Instant::now();
        let mut entry = StepLog {
            rev: rev.hash.clone(),
            subject: rev.subject.clone(),
            step: "boot",
            ok: false,
            ms: 0,
            wall_ms: None,
            samples: vec![],
            forks_ns: vec![],
            image: Some(image.path.clone()),
            release: None,
            accel: None,
            error: None,
        };
        let result = (|| -> Result<Vec<f64>, GuestError> {
            let mut g = Guest::boot(cfg)?;
            entry.ms = g.boot_ms();
            entry.release = Some(g.hello().kernel_release.clone());
            entry.accel = Some(g.accel().0.to_string());
            let mut samples = Vec::new();
            let done = g.run_step(0, &mut |ev| {
                if let GuestEvent::Line(RunnerLine::Run(r)) = ev {
                    samples.extend(r.samples_ns.iter().min().map(|&x| x as f64));
                    entry.forks_ns.extend(&r.samples_ns);
                }
            })?;
            let _ = g.shutdown();
            if !done.ok {
                return Err(GuestError::Step(
                    done.error
                        .unwrap_or_else(|| "the measurement failed in the guest".into()),
                ));
            }
            if samples.is_empty() {
                return Err(GuestError::Step("the guest sent no run record".into()));
            }
            Ok(samples)
        })();
        let wall_ms = start.elapsed().as_millis() as u64;
        entry.wall_ms = Some(wall_ms);
        if entry.ms == 0 {
            entry.ms = wall_ms;
        }
        let n = self.runs_of.entry(rev.hash.clone()).or_insert(0);
        *n += 1;
        let short = &rev.hash[..rev.hash.len().min(12)];
        let out = match result {
            Ok(s) => {
                eprintln!(
                    "  {short} run {n}: boot {:.1} s of {:.1} s, fork {} ({}, {})",
                    entry.ms as f64 / 1000.0,
                    wall_ms as f64 / 1000.0,
                    s.iter()
                        .map(|x| contract::fmt_ns(*x))
                        .collect::<Vec<_>>()
                        .join(", "),
                    entry.release.as_deref().unwrap_or("?"),
                    entry.accel.as_deref().unwrap_or("?"),
                );
                entry.ok = true;
                entry.samples = s.clone();
                Ok(s)
            }
            Err(_) if self.cancelled.load(Ordering::SeqCst) => {
                entry.error = Some("interrupted".into());
                Err(MeasureError::Abort("interrupted".into()))
            }
            Err(e) => {
                let why = format!("boot or measurement failed: {e}");
                eprintln!("  {short} run {n}: {why}");
                entry.error = Some(why.clone());
                Err(MeasureError::Skip(why))
            }
        };
        self.log.push(entry);
        out
    }
}

impl Measure for KernelMeasure<'_> {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
        if !self.built.contains_key(&rev.hash) {
            let r = match self.build_rev(rev) {
                Ok((img, _)) => Ok(img),
                Err(MeasureError::Skip(why)) => Err(why),
                Err(abort) => return Err(abort),
            };
            self.built.insert(rev.hash.clone(), r);
        }
        let image = match &self.built[&rev.hash] {
            Ok(img) => img.clone(),
            Err(why) => return Err(MeasureError::Skip(why.clone())),
        };
        self.boot_once(rev, &image)
    }

    fn event(&mut self, event: &SearchEvent<'_>) {
        match event {
            SearchEvent::Probe { rev, left, steps } => {
                eprintln!(
                    "Bisecting: {left} revision{} left to test after this (roughly {steps} step{})",
                    if *left == 1 { "" } else { "s" },
                    if *steps == 1 { "" } else { "s" }
                );
                eprintln!("[{}] {}", rev.hash, rev.subject);
            }
            SearchEvent::Decided(t) => {
                let verdict = match t.decision {
                    Decision::Good => "good".to_string(),
                    Decision::Bad => "bad".to_string(),
                    Decision::Unknown => {
                        format!("skip ({})", t.note.as_deref().unwrap_or("still unknown"))
                    }
                };
                let short = &t.rev.hash[..t.rev.hash.len().min(12)];
                if t.samples.is_empty() {
                    eprintln!("{short} is {verdict}");
                } else {
                    let kept = t.samples.len() - t.set_aside.len();
                    let aside = if t.set_aside.is_empty() {
                        String::new()
                    } else {
                        let slow: Vec<String> =
                            t.set_aside.iter().map(|&ns| contract::fmt_ns(ns)).collect();
                        format!(
                            " ({} slowed run{} set aside: {})",
                            t.set_aside.len(),
                            if t.set_aside.len() == 1 { "" } else { "s" },
                            slow.join(", ")
                        )
                    };
                    eprintln!(
                        "{short} is {verdict}: mean fork {} over {kept} run{}{aside}",
                        contract::fmt_ns(t.mean),
                        if kept == 1 { "" } else { "s" }
                    );
                }
            }
        }
    }
}

/// The CPUs this process may use (the default `make -j`).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(arch: Arch, host: Arch, ccache: bool) -> DefaultBuild {
        DefaultBuild {
            arch,
            host,
            jobs: 2,
            ccache,
            out_dir: PathBuf::from("/s/build"),
            fragments: vec![PathBuf::from("/s/forkbench.config")],
        }
    }

    #[test]
    fn the_x86_64_default_build_is_tinyconfig_plus_the_fragment_then_bzimage() {
        let b = build(Arch::X86_64, Arch::X86_64, false);
        let cmds: Vec<String> = b.commands().iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            cmds,
            [
                "make ARCH=x86_64 O=/s/build tinyconfig",
                "sh scripts/kconfig/merge_config.sh -m -O /s/build /s/build/.config /s/forkbench.config",
                "make ARCH=x86_64 O=/s/build olddefconfig",
                "make ARCH=x86_64 O=/s/build -j2 bzImage",
            ]
        );
        assert_eq!(b.image(), PathBuf::from("/s/build/arch/x86/boot/bzImage"));
    }

    #[test]
    fn arm64_cross_compiles_and_ccache_wraps_the_cross_compiler() {
        let b = build(Arch::Arm64, Arch::X86_64, true);
        let cmds = b.commands();
        assert_eq!(
            cmds[3],
            [
                "make",
                "ARCH=arm64",
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "CC=ccache aarch64-linux-gnu-gcc",
                "O=/s/build",
                "-j2",
                "Image"
            ]
        );
        // Every make sees the same compiler, so the config's compiler checks match the build.
        assert!(
            cmds.iter()
                .filter(|c| c[0] == "make")
                .all(|c| c.contains(&"CC=ccache aarch64-linux-gnu-gcc".to_string()))
        );
        assert_eq!(b.image(), PathBuf::from("/s/build/arch/arm64/boot/Image"));
        // Native arm64 with ccache: no cross prefix.
        let native = build(Arch::Arm64, Arch::Arm64, true);
        assert!(native.commands()[0].contains(&"CC=ccache gcc".to_string()));
        assert!(
            !native.commands()[0]
                .iter()
                .any(|a| a.starts_with("CROSS_COMPILE"))
        );
    }

    #[test]
    fn the_shipped_fragment_has_what_the_guest_needs() {
        for opt in [
            "CONFIG_64BIT=y",
            "CONFIG_BLK_DEV_INITRD=y",
            "CONFIG_DEVTMPFS=y",
            "CONFIG_PROC_FS=y",
            "CONFIG_SYSFS=y",
            "CONFIG_SERIAL_8250_CONSOLE=y",
            "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y",
            "CONFIG_TRANSPARENT_HUGEPAGE=y",
            "CONFIG_PROC_PAGE_MONITOR=y",
            "CONFIG_ADVISE_SYSCALLS=y",
            "CONFIG_ARM64_CONTPTE=y",
        ] {
            assert!(SHIPPED_FRAGMENT.lines().any(|l| l == opt), "{opt} missing");
        }
    }

    #[test]
    fn the_image_is_the_last_non_empty_stdout_line() {
        assert_eq!(
            image_line("make: ok\n  arch/x86/boot/bzImage  \n\n"),
            Some("arch/x86/boot/bzImage")
        );
        assert_eq!(image_line("\n \n"), None);
        assert_eq!(tail("a\nb\n\nc\nd\n", 2), "c | d");
    }

    #[test]
    fn a_cancelled_build_is_killed_with_its_process_group() {
        let cancelled = AtomicBool::new(true);
        let mut c = Command::new("sh");
        // A grandchild that would outlive a plain kill of `sh`.
        c.arg("-c").arg("sleep 600 & wait");
        let r = run_cancellable(c, &cancelled).unwrap();
        assert!(r.is_none());
        let done = run_cancellable(
            {
                let mut c = Command::new("sh");
                c.arg("-c").arg("echo out; echo err >&2; exit 3");
                c
            },
            &AtomicBool::new(false),
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!((done.stdout.trim(), done.stderr.trim()), ("out", "err"));
    }
}
