//! Kernel mode (`cargo xtask bisect --kernel-tree DIR`): each revision of a kernel tree is
//! built in one worktree that moves from revision to revision (so `make` and `ccache` rebuild
//! only what changed; see [`crate::kernel_build`]), its image booted in a QEMU guest whose
//! `/init` is the static forkbench (one boot per measurement), and the forks of one layout
//! measured inside, under `SCHED_FIFO` so that the new child cannot preempt its parent inside
//! the timed fork() (on one vCPU, 6.12's scheduler lets it, and the sample then holds the
//! child's whole exit).
//!
//! Two kinds of measurement ([`Measurement`]):
//! - **exact** (an icount guest under TCG): a boot's forks are instruction counts; one boot per
//!   revision, its forks handed to the search, which decides by their median;
//! - **timed** (KVM, or TCG with `--clock wall`): a boot gives one sample, its fastest fork
//!   (whatever a busy host adds only makes a fork slower), decided statistically over boots.
//!
//! A failed build, an image that is not a kernel, a kernel that does not boot and a step that
//! fails inside the guest each skip the revision (exit-125 semantics) with their last lines; a
//! guest kernel that crashes (panic, oops) is a [`MeasureError::Crashed`]: a skip for a probe,
//! another boot for an endpoint. Every build and boot is timed and logged. Ctrl-C kills the
//! build's process group and QEMU.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use contract::{Arch, Clock, RealLayout, RealOpts, RunnerLine, SampleUnit, Sched, Size};
use guest::image::KernelImage;
use guest::plan::{GuestPlan, GuestStep};
use guest::qemu::{AccelChoice, ClockChoice, Guest, GuestConfig, GuestError, GuestEvent};
use serde::Serialize;

use crate::decide::{ExactPlace, exact_statistic, fmt_value};
use crate::git::Worktrees;
use crate::kernel_build::{Build, build_in};
use crate::search::{Measure, MeasureError, Rev, SearchEvent};

/// Guest RAM added to the launcher's estimate for the measured step.
pub const GUEST_HEADROOM: u64 = 512 << 20;

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
    /// Kernel mode: the guests' clock: auto (exact instruction counts under TCG, time under
    /// KVM), icount (exact; TCG only) or wall (timed, decided statistically)
    #[arg(long)]
    pub clock: Option<ClockChoice>,
    /// Kernel mode, exact measurements: the change in instructions per fork that is a
    /// difference, in percent [default: 0.5]
    #[arg(long)]
    pub exact_threshold: Option<f64>,
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
            ("--clock", self.clock.is_some()),
            ("--exact-threshold", self.exact_threshold.is_some()),
            ("--jobs", self.jobs.is_some()),
            ("--boot-timeout", self.boot_timeout.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }
}

/// How the guests measure, chosen before the first boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measurement {
    /// QEMU icount under TCG: forks counted in instructions, one boot per revision.
    Exact,
    /// A clock (KVM, or TCG with `--clock wall`): forks timed, several boots per revision.
    Timed,
}

impl Measurement {
    /// What `clock` and `accel` give for guests of `arch`: `None` when only a boot can tell
    /// (`auto` under `auto` where KVM could run the guests, [`guest::qemu::kvm_possible`]: a
    /// nested KVM can open `/dev/kvm` and still fail on its first instructions; see
    /// [`KernelMeasure::settle_accel`]). `Err` names a combination that cannot be.
    pub fn choose(
        clock: ClockChoice,
        accel: AccelChoice,
        arch: Arch,
    ) -> Result<Option<Self>, String> {
        Ok(match (clock, accel) {
            (ClockChoice::Icount, AccelChoice::Kvm) => {
                return Err(
                    "--clock icount needs --accel tcg (or auto): KVM runs at hardware speed".into(),
                );
            }
            (ClockChoice::Icount, _) | (ClockChoice::Auto, AccelChoice::Tcg) => {
                Some(Measurement::Exact)
            }
            (ClockChoice::Wall, _) | (ClockChoice::Auto, AccelChoice::Kvm) => {
                Some(Measurement::Timed)
            }
            (ClockChoice::Auto, AccelChoice::Auto) => match guest::qemu::kvm_possible(arch) {
                Ok(()) => None,
                Err(_) => Some(Measurement::Exact),
            },
        })
    }

    /// The guests' clock.
    pub fn clock(self) -> ClockChoice {
        match self {
            Measurement::Exact => ClockChoice::Icount,
            Measurement::Timed => ClockChoice::Wall,
        }
    }

    /// What a sample counts.
    pub fn unit(self) -> SampleUnit {
        match self {
            Measurement::Exact => SampleUnit::Instructions,
            Measurement::Timed => SampleUnit::Nanoseconds,
        }
    }
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
    /// Boot: what `forks` count, `instr` (icount) or `ns`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<&'static str>,
    /// Boot: every timed fork, in `unit`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forks: Vec<u64>,
    /// Boot: its value, in `unit`: the median fork (exact) or the fastest (timed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accel: Option<String>,
    /// Boot: the guest crashed (panic, oops); `error` says how.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub crashed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StepLog {
    fn new(rev: &Rev, step: &'static str) -> Self {
        StepLog {
            rev: rev.hash.clone(),
            subject: rev.subject.clone(),
            step,
            ok: false,
            ms: 0,
            wall_ms: None,
            unit: None,
            forks: Vec::new(),
            value: None,
            image: None,
            release: None,
            accel: None,
            crashed: false,
            error: None,
        }
    }
}

/// How a revision's kernel is measured.
#[derive(Debug, Clone)]
pub struct GuestSetup {
    pub arch: Arch,
    pub layout: RealLayout,
    pub mem: Size,
    pub iters: u32,
    pub accel: AccelChoice,
    pub measurement: Measurement,
    pub payload: PathBuf,
    pub boot_timeout: Option<Duration>,
}

impl GuestSetup {
    /// The one guest step: one run of `iters` forks after a warm-up fork, `SCHED_FIFO` (see
    /// the module docs), pinned by the plan to the guest's last CPU.
    pub fn opts(&self) -> RealOpts {
        RealOpts {
            mem: self.mem,
            iters: self.iters,
            runs: 1,
            warmup: 1,
            sched: Sched::Fifo,
            ..RealOpts::new(self.layout)
        }
    }

    /// One boot's guest configuration for `image`: one vCPU (one emulation thread, so that a
    /// busy host disturbs a timed measurement least; icount has one anyway).
    pub fn config(&self, image: &KernelImage) -> GuestConfig {
        let mut plan = GuestPlan::new(true, vec![GuestStep::Real(self.opts())]);
        plan.pin_last_cpu = true;
        let mut cfg = GuestConfig::new(image.clone(), self.payload.clone(), plan);
        cfg.accel = self.accel;
        cfg.clock = self.measurement.clock();
        cfg.vcpus = 1;
        // Room beyond the launcher's estimate, so that the guest never reclaims while it
        // measures; QEMU allocates guest RAM lazily, so the headroom costs little.
        cfg.mem = Size(cfg.mem.bytes() + GUEST_HEADROOM);
        if let Some(t) = self.boot_timeout {
            cfg.boot_timeout = t;
        }
        cfg
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

/// What one boot brought back: every fork, in the unit of the guest's clock.
struct Forks {
    counts: Vec<u64>,
    clock: Clock,
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
    fn build_rev(&mut self, rev: &Rev) -> Result<KernelImage, MeasureError> {
        self.interrupted()?;
        let dir = self
            .worktrees
            .checkout_moving("tree", rev)
            .map_err(|e| MeasureError::Abort(e.to_string()))?;
        let short = &rev.hash[..rev.hash.len().min(12)];
        eprintln!("  building {short} ...");
        let start = Instant::now();
        let built = build_in(
            &dir,
            &self.build,
            &rev.hash,
            self.guest.arch,
            &self.cancelled,
        );
        let ms = start.elapsed().as_millis() as u64;
        let image = built.and_then(|path| self.keep_image(&path, short));
        let mut entry = StepLog::new(rev, "build");
        entry.ok = image.is_ok();
        entry.ms = ms;
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
            Err(
                MeasureError::Skip(why) | MeasureError::Abort(why) | MeasureError::Crashed(why),
            ) => {
                entry.error = Some(why.clone());
                eprintln!("  {short}: {why} (after {:.1} s)", ms as f64 / 1000.0);
            }
        }
        self.log.push(entry);
        image
    }

    /// Check the built image at `path` and copy it (and its tree's `.config`) into the session.
    fn keep_image(&self, path: &std::path::Path, short: &str) -> Result<KernelImage, MeasureError> {
        let copy = self.worktrees.session_dir().join(format!("image-{short}"));
        KernelImage::open(path).map_err(|e| MeasureError::Skip(format!("boot failed: {e}")))?;
        std::fs::copy(path, &copy).map_err(|e| {
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
        // The tree's .config beside arch/ is the kernel's config; copied too, as the next
        // revision's build overwrites it.
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
    }

    /// The image of `rev`, built on first use.
    fn image_of(&mut self, rev: &Rev) -> Result<KernelImage, MeasureError> {
        if !self.built.contains_key(&rev.hash) {
            let r = match self.build_rev(rev) {
                Ok(img) => Ok(img),
                Err(MeasureError::Skip(why) | MeasureError::Crashed(why)) => Err(why),
                Err(abort) => return Err(abort),
            };
            self.built.insert(rev.hash.clone(), r);
        }
        match &self.built[&rev.hash] {
            Ok(img) => Ok(img.clone()),
            Err(why) => Err(MeasureError::Skip(why.clone())),
        }
    }

    /// For [`Measurement::choose`]'s `None`: boot `rev`'s kernel (the good endpoint's) with
    /// `--accel auto`, up to `1 + retries` times while it crashes, and measure from then on as
    /// that boot ran: timed under KVM, exact under TCG (`auto`'s fallback). The accelerator
    /// found is kept, so no later boot tries KVM again.
    pub fn settle_accel(&mut self, rev: &Rev, retries: usize) -> Result<Measurement, MeasureError> {
        let image = self.image_of(rev)?;
        let short = &rev.hash[..rev.hash.len().min(12)];
        let mut attempt = 0;
        let boot = loop {
            self.interrupted()?;
            let mut cfg = self.guest.config(&image);
            (cfg.accel, cfg.clock) = (AccelChoice::Auto, ClockChoice::Auto);
            let mut entry = StepLog::new(rev, "accel-probe");
            entry.image = Some(image.path.clone());
            let start = Instant::now();
            let booted = Guest::boot(cfg).map(|g| {
                let boot = g.boot_info().clone();
                let _ = g.shutdown();
                boot
            });
            entry.wall_ms = Some(start.elapsed().as_millis() as u64);
            match booted {
                Ok(boot) => {
                    (entry.ok, entry.ms) = (true, boot.boot_ms);
                    entry.accel = Some(boot.accel.to_string());
                    self.log.push(entry);
                    break boot;
                }
                Err(e) => {
                    let why = format!("boot failed: {e}");
                    eprintln!("  {short}: {why}");
                    (entry.error, entry.crashed) = (Some(why.clone()), e.is_kernel_crash());
                    self.log.push(entry);
                    self.interrupted()?;
                    if !e.is_kernel_crash() || attempt == retries {
                        return Err(MeasureError::Skip(why));
                    }
                    attempt += 1;
                }
            }
        };
        let (accel, measurement) = match boot.clock {
            Clock::Icount => (AccelChoice::Tcg, Measurement::Exact),
            Clock::Wall => (AccelChoice::Kvm, Measurement::Timed),
        };
        eprintln!(
            "  {short}: the guests run under {} ({}): {} measurements",
            boot.accel,
            boot.accel_reason,
            if measurement == Measurement::Exact {
                "exact"
            } else {
                "timed"
            }
        );
        (self.guest.accel, self.guest.measurement) = (accel, measurement);
        Ok(measurement)
    }

    /// Boot `image` once and run the step; every fork, or why not.
    fn boot_and_fork(&self, image: &KernelImage, entry: &mut StepLog) -> Result<Forks, GuestError> {
        let mut g = Guest::boot(self.guest.config(image))?;
        entry.ms = g.boot_ms();
        entry.release = Some(g.hello().kernel_release.clone());
        entry.accel = Some(g.accel().0.to_string());
        let clock = g.boot_info().clock;
        let mut counts = Vec::new();
        let mut records = 0;
        let done = g.run_step(0, &mut |ev| {
            if let GuestEvent::Line(RunnerLine::Run(r)) = ev {
                records += 1;
                counts.extend(&r.samples_ns);
            }
        })?;
        let _ = g.shutdown();
        if !done.ok {
            return Err(GuestError::Step(
                done.error
                    .unwrap_or_else(|| "the measurement failed in the guest".into()),
            ));
        }
        if records == 0 || counts.is_empty() {
            return Err(GuestError::Step("the guest sent no run record".into()));
        }
        Ok(Forks { counts, clock })
    }

    /// Boot `image` once and measure: exact, every fork's count (the search takes their
    /// median); timed, the fastest fork. A skip (or a crash) with the console's last lines.
    fn boot_once(&mut self, rev: &Rev, image: &KernelImage) -> Result<Vec<f64>, MeasureError> {
        self.interrupted()?;
        let start = Instant::now();
        let mut entry = StepLog::new(rev, "boot");
        entry.image = Some(image.path.clone());
        let result = self.boot_and_fork(image, &mut entry);
        let wall_ms = start.elapsed().as_millis() as u64;
        entry.wall_ms = Some(wall_ms);
        if entry.ms == 0 {
            entry.ms = wall_ms;
        }
        let n = {
            let n = self.runs_of.entry(rev.hash.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let short = &rev.hash[..rev.hash.len().min(12)];
        let out = match result {
            Ok(forks) => self.took(&mut entry, forks, n, short),
            Err(_) if self.cancelled.load(Ordering::SeqCst) => {
                entry.error = Some("interrupted".into());
                Err(MeasureError::Abort("interrupted".into()))
            }
            Err(e) => {
                let why = format!("boot or measurement failed: {e}");
                eprintln!("  {short} run {n}: {why}");
                entry.error = Some(why.clone());
                entry.crashed = e.is_kernel_crash();
                Err(if entry.crashed {
                    MeasureError::Crashed(why)
                } else {
                    MeasureError::Skip(why)
                })
            }
        };
        self.log.push(entry);
        out
    }

    /// A boot's forks into its log entry and the samples the search gets.
    fn took(
        &self,
        entry: &mut StepLog,
        forks: Forks,
        n: usize,
        short: &str,
    ) -> Result<Vec<f64>, MeasureError> {
        let want = self.guest.measurement.unit();
        let unit = forks.clock.unit();
        if unit != want {
            // The clock was asked for explicitly, so this is the tool's own fault.
            return Err(MeasureError::Abort(format!(
                "the guest measured in {} where {} were asked for",
                unit.suffix(),
                want.suffix()
            )));
        }
        let all: Vec<f64> = forks.counts.iter().map(|&x| x as f64).collect();
        let (value, samples, what) = match self.guest.measurement {
            Measurement::Exact => {
                let median = exact_statistic(&all).unwrap_or(f64::NAN);
                (median, all, "median")
            }
            Measurement::Timed => {
                let fastest = all.iter().copied().fold(f64::INFINITY, f64::min);
                (fastest, vec![fastest], "fastest")
            }
        };
        eprintln!(
            "  {short} run {n}: boot {:.1} s of {:.1} s, {what} fork {} of {} ({}, {}, {})",
            entry.ms as f64 / 1000.0,
            entry.wall_ms.unwrap_or(0) as f64 / 1000.0,
            fmt_value(value, unit),
            forks.counts.len(),
            entry.release.as_deref().unwrap_or("?"),
            entry.accel.as_deref().unwrap_or("?"),
            forks.clock,
        );
        entry.ok = true;
        entry.unit = Some(unit.suffix());
        entry.forks = forks.counts;
        entry.value = Some(value);
        Ok(samples)
    }

    /// One line per verdict: the value against the endpoints (exact) or the mean over the
    /// kept runs (timed).
    fn say_decided(&self, t: &crate::search::Tested) {
        let verdict = t.verdict();
        let short = &t.rev.hash[..t.rev.hash.len().min(12)];
        let unit = self.guest.measurement.unit();
        if t.samples.is_empty() {
            eprintln!("{short} is {verdict}");
        } else if let (Some(ev), Some(v)) = (t.exact, exact_statistic(&t.samples)) {
            let partial = match ev.place {
                ExactPlace::LikeGood | ExactPlace::LikeBad => String::new(),
                place => format!(
                    "; {} ({:.0}% of the way from good to bad): decided by the midpoint",
                    crate::kernel_cli::place_name(place),
                    ev.position * 100.0
                ),
            };
            eprintln!(
                "{short} is {verdict}: {}/fork ({:+.2}% vs good, {:+.2}% vs bad{partial})",
                fmt_value(v, unit),
                ev.vs_good_pct,
                ev.vs_bad_pct
            );
        } else {
            let kept = t.samples.len() - t.set_aside.len();
            let aside = if t.set_aside.is_empty() {
                String::new()
            } else {
                let slow: Vec<String> = t.set_aside.iter().map(|&x| fmt_value(x, unit)).collect();
                format!(
                    " ({} slowed run{} set aside: {})",
                    t.set_aside.len(),
                    if t.set_aside.len() == 1 { "" } else { "s" },
                    slow.join(", ")
                )
            };
            eprintln!(
                "{short} is {verdict}: mean fork {} over {kept} run{}{aside}",
                fmt_value(t.mean, unit),
                if kept == 1 { "" } else { "s" }
            );
        }
    }
}

impl Measure for KernelMeasure<'_> {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
        let image = self.image_of(rev)?;
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
            SearchEvent::Decided(t) => self.say_decided(t),
            SearchEvent::Retry {
                rev,
                which,
                attempt,
                reason,
            } => {
                eprintln!(
                    "the {which} endpoint {} crashed ({reason}); booting it again (attempt {attempt})",
                    &rev.hash[..rev.hash.len().min(12)]
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_and_accelerator_choose_the_measurement() {
        let m = |c, a| Measurement::choose(c, a, Arch::X86_64);
        let exact = Ok(Some(Measurement::Exact));
        let timed = Ok(Some(Measurement::Timed));
        assert_eq!(m(ClockChoice::Auto, AccelChoice::Tcg), exact);
        assert_eq!(m(ClockChoice::Icount, AccelChoice::Auto), exact);
        assert_eq!(m(ClockChoice::Auto, AccelChoice::Kvm), timed);
        assert_eq!(m(ClockChoice::Wall, AccelChoice::Tcg), timed);
        assert!(
            m(ClockChoice::Icount, AccelChoice::Kvm)
                .unwrap_err()
                .contains("--accel tcg")
        );
        // A foreign arch never runs under KVM: auto is exact. Where KVM might work, only a
        // boot tells.
        let host = Arch::host().expect("an x86_64 or aarch64 host");
        let foreign = match host {
            Arch::X86_64 => Arch::Arm64,
            Arch::Arm64 => Arch::X86_64,
        };
        let auto = |arch| Measurement::choose(ClockChoice::Auto, AccelChoice::Auto, arch);
        assert_eq!(auto(foreign), exact);
        match guest::qemu::kvm_possible(host) {
            Ok(()) => assert_eq!(auto(host), Ok(None)),
            Err(_) => assert_eq!(auto(host), exact),
        }
        assert_eq!(Measurement::Exact.clock(), ClockChoice::Icount);
        assert_eq!(Measurement::Exact.unit(), SampleUnit::Instructions);
        assert_eq!(Measurement::Timed.unit(), SampleUnit::Nanoseconds);
    }

    #[test]
    fn a_boot_forks_under_fifo_on_the_guests_last_cpu() {
        let setup = GuestSetup {
            arch: Arch::X86_64,
            layout: RealLayout::PteOrder9,
            mem: Size(128 << 20),
            iters: 10,
            accel: AccelChoice::Tcg,
            measurement: Measurement::Exact,
            payload: PathBuf::from("/nonexistent/forkbench"),
            boot_timeout: None,
        };
        let o = setup.opts();
        assert_eq!(
            (o.sched, o.runs, o.iters, o.cpu),
            (Sched::Fifo, 1, 10, None)
        );
        let image = KernelImage {
            path: PathBuf::from("/nonexistent/bzImage"),
            arch: Arch::X86_64,
            release: None,
            config: None,
        };
        let cfg = setup.config(&image);
        assert!(cfg.plan.pin_last_cpu);
        assert_eq!((cfg.clock, cfg.vcpus), (ClockChoice::Icount, 1));
    }
}
