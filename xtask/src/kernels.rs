//! Kernels under test: `cargo xtask kernels fetch|show`, and what `bench --kernel` needs — the
//! kernel list from `--kernel`/`--kernel-deb` (labels, one guest arch), the guests booted for a
//! plan, and the [`Executor`] that runs each real-fork call in its kernel's guest.
//!
//! Every kernel is booted once and stays up for the whole bench: the plan's rounds interleave
//! the layouts *and* the kernels (each round a fresh random order over every (layout, kernel)
//! pair), and a call is one `go <step>` on that guest's console. Booting per run would cost a
//! boot per call (~4 s for an x86_64 guest under TCG here, 1–2 min for arm64) for no gain in
//! isolation: each call populates and verifies its own fresh mapping either way.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use contract::{Arch, Invocation, RealOpts, RunnerLine, Size, Variant};
use guest::image::KernelImage;
use guest::plan::{GuestPlan, GuestStep, StepDone};
use guest::qemu::{AccelChoice, ClockChoice, Guest, GuestConfig, GuestEvent};

use crate::exec::{CallCtx, Executor, Outcome, invocation};
use crate::plan::{Call, Plan};

/// `cargo xtask kernels`.
#[derive(Args, Debug)]
pub struct KernelsArgs {
    #[command(subcommand)]
    pub command: KernelsCommand,
}

#[derive(Subcommand, Debug)]
pub enum KernelsCommand {
    /// Fetch Debian cloud kernel packages (apt-get download through a private apt
    /// configuration; the host's apt setup is not touched) and print their paths
    Fetch(FetchArgs),
    /// Say what a kernel image or Debian kernel package is: arch, release, config facts
    Show(ShowArgs),
    /// Print the Debian archive this host's apt sources use (what `fetch` and the provisioning
    /// scripts download from; $FORKBENCH_DEBIAN_MIRROR overrides it)
    Mirror,
}

/// Debian's kernel series forkbench knows where to find.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Debian 12 (bookworm): per-PTE fork copy, no per-size mTHP.
    #[value(name = "6.1")]
    V6_1,
    /// Debian 13 (stable): folio_pte_batch fork batching, mTHP, arm64 contpte.
    #[value(name = "6.12")]
    V6_12,
}

impl Release {
    fn name(self) -> &'static str {
        match self {
            Release::V6_1 => "6.1",
            Release::V6_12 => "6.12",
        }
    }
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Kernel series (repeatable) [default: 6.1 and 6.12]
    #[arg(long = "release", value_enum)]
    pub releases: Vec<Release>,
    /// Architecture (repeatable) [default: this host's]
    #[arg(long = "arch", value_enum)]
    pub arches: Vec<Arch>,
    /// Where the packages go [default: $FORKBENCH_KERNEL_CACHE, else ~/.cache/forkbench/kernels]
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The Debian archive to download from, e.g. http://HOST/debian [default: the one this
    /// host's apt sources use]
    #[arg(long)]
    pub mirror: Option<String>,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// A kernel image (bzImage, arm64 Image, gzip'd Image) or a Debian linux-image package
    pub path: PathBuf,
}

pub fn run(a: &KernelsArgs) -> anyhow::Result<std::process::ExitCode> {
    match &a.command {
        KernelsCommand::Fetch(f) => fetch(f)?,
        KernelsCommand::Show(s) => show(s)?,
        KernelsCommand::Mirror => println!("{}", guest::mirror::debian_mirror()?),
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn fetch(f: &FetchArgs) -> anyhow::Result<()> {
    let dir = match &f.dir {
        Some(d) => d.clone(),
        None => guest::fetch::default_cache_dir()?,
    };
    let releases = if f.releases.is_empty() {
        vec![Release::V6_1, Release::V6_12]
    } else {
        f.releases.clone()
    };
    let arches = if f.arches.is_empty() {
        vec![Arch::host().context("this host's arch is neither x86_64 nor arm64: pass --arch")?]
    } else {
        f.arches.clone()
    };
    for &r in &releases {
        for &arch in &arches {
            let deb = guest::fetch::fetch_from(r.name(), arch, &dir, f.mirror.as_deref())
                .with_context(|| format!("fetching Debian's {} kernel for {arch}", r.name()))?;
            println!("{}", deb.display());
        }
    }
    Ok(())
}

fn show(s: &ShowArgs) -> anyhow::Result<()> {
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let img = KernelImage::open_any(&s.path, work.path())?;
    println!("image    {}", s.path.display());
    println!("arch     {}", img.arch);
    println!(
        "release  {}",
        img.release.as_deref().unwrap_or("(not found in the image)")
    );
    if let Some(c) = &img.config {
        for (k, v) in guest::image::config_facts(c) {
            println!("config   {k}={v}");
        }
    }
    Ok(())
}

/// One kernel under test as asked for on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSpec {
    /// `LABEL=` before the path, when given.
    pub label: Option<String>,
    pub path: PathBuf,
    pub deb: bool,
}

impl KernelSpec {
    /// `[LABEL=]PATH`.
    pub fn parse(s: &str, deb: bool) -> KernelSpec {
        match s.split_once('=') {
            Some((l, p)) if !l.is_empty() && !l.contains('/') => KernelSpec {
                label: Some(l.to_string()),
                path: PathBuf::from(p),
                deb,
            },
            _ => KernelSpec {
                label: None,
                path: PathBuf::from(s),
                deb,
            },
        }
    }
}

/// A kernel ready to boot: its label (the row of the tables) and its image.
#[derive(Debug)]
pub struct Kernel {
    pub label: String,
    pub image: KernelImage,
    /// The package's file name, when the image came from one.
    pub source: String,
}

/// Open every kernel (extracting packages under `work`), check they share one guest arch
/// (`arch` when given) and give each a unique label: the given one, else the image's release,
/// else its file name, with `#2`, `#3` … on repeats.
pub fn prepare(
    specs: &[KernelSpec],
    arch: Option<Arch>,
    work: &Path,
) -> anyhow::Result<Vec<Kernel>> {
    let mut out: Vec<Kernel> = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let sub = work.join(format!("k{i}"));
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        let image = if s.deb {
            KernelImage::from_deb(&s.path, &sub)
        } else {
            KernelImage::open_any(&s.path, &sub)
        }
        .context("kernel under test")?;
        let want = arch.unwrap_or(out.first().map_or(image.arch, |k| k.image.arch));
        if image.arch != want {
            bail!(
                "kernel {} is an {} image but the guests are {want} (one arch per bench; --arch \
                 chooses)",
                s.path.display(),
                image.arch
            );
        }
        let file_name = s.path.file_name().map_or_else(
            || s.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        let base = s
            .label
            .clone()
            .or_else(|| image.release.clone())
            .unwrap_or_else(|| file_name.clone());
        let mut label = base.clone();
        let mut n = 2;
        while out.iter().any(|k| k.label == label) {
            label = format!("{base}#{n}");
            n += 1;
        }
        out.push(Kernel {
            label,
            image,
            source: file_name,
        });
    }
    Ok(out)
}

/// How the guests are booted.
#[derive(Debug, Clone)]
pub struct GuestOptions {
    pub accel: AccelChoice,
    /// The guests' clock (icount: exact counts; wall: timed).
    pub clock: ClockChoice,
    /// Guest RAM instead of the size derived from the plan.
    pub mem: Option<Size>,
    /// Appended to every guest's kernel command line.
    pub cmdline_extra: Vec<String>,
    pub vcpus: u32,
    pub boot_timeout: Duration,
    pub step_timeout: Duration,
}

/// The runner options every call of one kernel's plan uses, in step order: one step per
/// real-fork group of that kernel, pinned to the guest's last vCPU.
fn steps_for(plan: &Plan, label: &str, vcpus: u32) -> Vec<(Call, RealOpts)> {
    let ctx = CallCtx {
        cpu: vcpus.saturating_sub(1) as usize,
        seed: 0,
    };
    plan.groups
        .iter()
        .filter(|g| matches!(g, Call::Real { kernel: Some(k), .. } if k == label))
        .filter_map(|g| match invocation(g, ctx, None) {
            Invocation::Real(o) => Some((g.clone(), o)),
            _ => None,
        })
        .collect()
}

/// The guest RAM one kernel's guest gets for `plan` (as [`GuestConfig::new`] sizes it), with
/// `payload_bytes` of guest forkbench in its initramfs.
pub fn guest_mem(plan: &Plan, payload_bytes: u64) -> Size {
    let largest = plan
        .groups
        .iter()
        .filter(|g| matches!(g, Call::Real { .. }))
        .map(Call::mem)
        .max()
        .unwrap_or(Size(0));
    guest::qemu::guest_mem(largest.0, payload_bytes)
}

/// Runs each real-fork call in its kernel's guest; every guest is booted when this is made.
pub struct Guests {
    guests: Vec<BootedKernel>,
}

struct BootedKernel {
    label: String,
    /// The file asked for (the package's name when the image came from one).
    source: String,
    guest: Guest,
    steps: Vec<(Call, RealOpts)>,
}

impl Guests {
    /// Boot one guest per kernel (in order, each waiting for its init's hello), with `payload`
    /// as init. Stops at the first kernel that does not come up, shutting down those that did.
    pub fn boot(
        kernels: Vec<Kernel>,
        plan: &Plan,
        payload: &Path,
        opts: &GuestOptions,
        stop: &AtomicBool,
    ) -> anyhow::Result<Guests> {
        let mut guests = Vec::new();
        for k in kernels {
            if stop.load(Ordering::Relaxed) {
                bail!(crate::bench::Interrupted);
            }
            let steps = steps_for(plan, &k.label, opts.vcpus);
            let mut guest_plan = GuestPlan::new(
                true,
                steps
                    .iter()
                    .map(|(_, o)| GuestStep::Real(o.clone()))
                    .collect(),
            );
            // The guest's CPU count is known only at boot (one vCPU under icount).
            guest_plan.pin_last_cpu = true;
            let mut cfg = GuestConfig::new(k.image, payload.to_path_buf(), guest_plan);
            cfg.accel = opts.accel;
            cfg.clock = opts.clock;
            if let Some(m) = opts.mem {
                cfg.mem = m;
            }
            cfg.cmdline_extra = opts.cmdline_extra.clone();
            cfg.vcpus = opts.vcpus;
            cfg.boot_timeout = opts.boot_timeout;
            cfg.step_timeout = opts.step_timeout;
            eprintln!("booting {} ...", k.label);
            let g = Guest::boot(cfg).with_context(|| format!("kernel {}", k.label))?;
            let (accel, why) = g.accel();
            eprintln!(
                "  {} is up after {:.1} s ({accel}: {why}); guest kernel {}",
                k.label,
                g.boot_ms() as f64 / 1000.0,
                g.hello().kernel_release
            );
            guests.push(BootedKernel {
                label: k.label,
                source: k.source,
                guest: g,
                steps,
            });
        }
        Ok(Guests { guests })
    }
}

impl Executor for Guests {
    fn run(
        &mut self,
        call: &Call,
        _ctx: CallCtx,
        emit: &mut dyn FnMut(RunnerLine),
    ) -> anyhow::Result<Outcome> {
        let Call::Real {
            kernel: Some(label),
            ..
        } = call
        else {
            bail!("{}: only real-fork calls run in a guest", call.name());
        };
        let Some(b) = self.guests.iter_mut().find(|b| &b.label == label) else {
            bail!("{}: no guest was booted for kernel {label}", call.name());
        };
        let Some(step) = b.steps.iter().position(|(c, _)| c == call) else {
            bail!("{}: not in the plan of the guest of {label}", call.name());
        };
        let done = b
            .guest
            .run_step(step, &mut |ev| {
                if let GuestEvent::Line(mut line) = ev {
                    match &mut line {
                        // The row is the label asked for, even when two images report one
                        // release.
                        RunnerLine::Run(r) => {
                            if let Variant::Real(v) = &mut r.variant {
                                v.kernel = b.label.clone();
                            }
                        }
                        RunnerLine::Context(c) => {
                            if let Some(g) = c.guest.as_mut() {
                                g.image = b.source.clone();
                            }
                        }
                        RunnerLine::Header(_) | RunnerLine::Counts(_) => {}
                    }
                    emit(line);
                }
            })
            .with_context(|| format!("kernel {label}: {}", call.name()))?;
        step_outcome(done, label, call)
    }
}

/// What a step's StepDone means for the bench: done, a skip (the kernel cannot give the
/// layout) or a failure that stops it. The guests' and a lab job's (replayed) steps alike.
pub fn step_outcome(done: StepDone, label: &str, call: &Call) -> anyhow::Result<Outcome> {
    if done.ok {
        Ok(Outcome::Done)
    } else if done.unsupported {
        Ok(Outcome::Skipped(
            done.error
                .unwrap_or_else(|| "not supported by this kernel".into()),
        ))
    } else {
        bail!(
            "kernel {label}: {}: {}",
            call.name(),
            done.error
                .unwrap_or_else(|| "the guest's step failed".into())
        )
    }
}

/// `bench --kernel --with-model`: model calls go to the host's release runner, real-fork calls
/// to their kernel's guest.
pub struct ModelAndGuests {
    pub model: Box<dyn Executor>,
    pub guests: Guests,
}

impl Executor for ModelAndGuests {
    fn run(
        &mut self,
        call: &Call,
        ctx: CallCtx,
        emit: &mut dyn FnMut(RunnerLine),
    ) -> anyhow::Result<Outcome> {
        match call {
            Call::Sim { .. } => self.model.run(call, ctx, emit),
            Call::Real { .. } => self.guests.run(call, ctx, emit),
        }
    }

    fn waited(&self) -> Duration {
        self.model.waited()
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        self.model.finish()?;
        self.guests.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_specs_take_an_optional_label() {
        assert_eq!(
            KernelSpec::parse("old=/boot/vmlinuz-6.1", false),
            KernelSpec {
                label: Some("old".into()),
                path: "/boot/vmlinuz-6.1".into(),
                deb: false
            }
        );
        // A path with '=' in a directory name is a path, not a label.
        assert_eq!(
            KernelSpec::parse("/tmp/a=b/vmlinuz", true).label,
            None,
            "a '/' before '=' means no label"
        );
        assert_eq!(
            KernelSpec::parse("vmlinuz", false).path,
            PathBuf::from("vmlinuz")
        );
    }

    #[test]
    fn not_a_kernel_is_one_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("notes.txt");
        std::fs::write(&f, b"hello, not a kernel").unwrap();
        let e = prepare(
            &[KernelSpec::parse(f.to_str().unwrap(), false)],
            None,
            d.path(),
        )
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("notes.txt"), "{msg}");
    }

    #[test]
    fn steps_follow_the_kernel_and_pin_the_last_vcpu() {
        let p = crate::profile::load(Some("ci"), &crate::util::project_root()).unwrap();
        let base = crate::plan::plan(&p, true, 7);
        let ks = ["a".to_string(), "b".to_string()];
        let plan = crate::plan::for_kernels(base, &ks, false, 7);
        let a = steps_for(&plan, "a", 2);
        let b = steps_for(&plan, "b", 2);
        assert!(!a.is_empty());
        assert_eq!(a.len(), b.len());
        assert!(a.iter().all(|(_, o)| o.cpu == Some(1) && o.runs == 1));
        assert!(
            a.iter()
                .all(|(c, _)| matches!(c, Call::Real { kernel: Some(k), .. } if k == "a"))
        );
    }
}
