//! `cargo xtask bench [--config NAME|PATH] [--label L] [--quick]`: profile → plan, checked
//! against the host (memory, CPUs) → runner calls (run-level interleaving in a seeded random
//! block order) → one result file `results/<machine>/<UTC timestamp>-<label>[-N].json` (atomic,
//! never overwritten; `-N` when another bench took the name in the same second) with every raw
//! sample, the profile, the plan, the environment, the git revision and the tool version → the
//! tables. Before the first run the file's journal `<file>.partial` is created (proving the
//! directory writable); every call's records are appended to it as they arrive, so a run that
//! fails late or is stopped by SIGINT/SIGTERM/SIGHUP (between runner calls) keeps what it
//! measured: `cargo xtask table <file>.partial` renders it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use contract::{HostEnv, RunnerLine};
use hostenv::host;
use results::{RealContext, ResultFile, RunRecord, SCHEMA_VERSION, journal};
use serde_json::json;

use crate::exec::{CallCtx, Executor, Outcome, Release};
use crate::plan::{Call, Plan, call_seed};
use crate::profile::{self, CpuSel, Profile};
use crate::progress::Progress;
use crate::{select, util};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Machine profile: a name in bench-configs/ (local, ci, altra, m2, xeon) or a path
    /// [default: the embedded local.toml]
    #[arg(long)]
    pub config: Option<String>,
    /// Label of this run, e.g. the kernel under test [default: the host's kernel release]
    #[arg(long)]
    pub label: Option<String>,
    /// A small, fast run (the profile's [quick] sizes) for smoke tests
    #[arg(long)]
    pub quick: bool,
    /// Seed of the randomised run order [default: from the clock; recorded in the result]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for result files
    #[arg(long, default_value = "results")]
    pub out: String,
    /// Run a profile made for another machine (wrong arch or CPU model)
    #[arg(long)]
    pub force: bool,
    /// Print the plan and an estimate, run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Before each runner call, wait up to this many seconds for other forkbench processes
    /// (someone else's benchmark on a shared machine) to finish; 0 = do not wait
    #[arg(long, default_value_t = 60)]
    pub wait_quiet: u64,
    /// A kernel under test, booted in a QEMU guest whose init is forkbench (repeatable: each
    /// kernel is a row, the first the baseline): a bzImage, an arm64 Image (plain or gzip'd) or
    /// a Debian linux-image package, optionally labelled `LABEL=PATH`. The profile's real-fork
    /// layouts run in every kernel, interleaved by run; the model is left out unless
    /// `--instrument all`
    #[arg(long = "kernel", value_name = "[LABEL=]PATH")]
    pub kernels: Vec<String>,
    /// A Debian linux-image package as a kernel under test (its boot/vmlinuz-*; rows after the
    /// --kernel ones: give packages to --kernel too to choose the order)
    #[arg(long = "kernel-deb", value_name = "[LABEL=]PATH")]
    pub kernel_debs: Vec<String>,
    /// Guest architecture of the kernels [default: the images']
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<contract::Arch>,
    /// Guest accelerator: auto (KVM when the guest arch is the host's and KVM works, else TCG,
    /// with the reason recorded), kvm, or tcg (emulated)
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// With --kernel: the guests' clock: auto (icount under TCG, wall under KVM), icount (exact:
    /// QEMU `-icount shift=0,sleep=off`, one vCPU; samples are guest instructions; TCG only) or
    /// wall (timed TCG: real time, noisy; for whoever wants emulated times)
    #[arg(long, value_enum, default_value_t = ClockArg::Auto)]
    pub clock: ClockArg,
    /// Which instruments run: real (real fork() only: comparing kernels), sim (the model
    /// only: exploring strategies) or all [default: the profile's `[run] instrument`, else
    /// all; with --kernel: real]
    #[arg(long, value_enum, value_name = "WHICH")]
    pub instrument: Option<crate::plan::Instruments>,
    /// The same as `--instrument all` (with --kernel: run the profile's model groups too)
    #[arg(long, conflicts_with = "instrument")]
    pub with_model: bool,
    /// With --kernel: seconds a guest may take to reach its init [default: 120 for x86_64,
    /// 600 for arm64; TCG guests of arm64 take 1-2 min here]
    #[arg(long, value_name = "SECS")]
    pub boot_timeout: Option<u64>,
    /// With --kernel: RAM of each guest [default: the largest real layout's memory + 1/16 +
    /// twice the initramfs + 256 MiB, at least 640 MiB]
    #[arg(long, value_name = "SIZE")]
    pub guest_mem: Option<contract::Size>,
    /// With --kernel: more kernel command-line parameters for every guest (repeatable; e.g.
    /// `--append loglevel=7` to see a boot that hangs, `--append mitigations=off`)
    #[arg(long = "append", value_name = "PARAM")]
    pub append: Vec<String>,
    /// Print the extended tables too (means, CI, p, MDE; for real fork the spread without
    /// drift and the core-probe correlation); by default the thread's tables and one compact
    /// verdict table
    #[arg(long, short)]
    pub verbose: bool,
    #[command(flatten)]
    pub exact: crate::exact::ExactArgs,
    /// A session of `cargo xtask noise`: write the file, print no tables (the noise task
    /// prints the sessions' spread instead)
    #[arg(skip)]
    pub session_only: bool,
}

/// `--accel`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

/// `--clock`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockArg {
    Auto,
    Icount,
    Wall,
}

impl BenchArgs {
    /// The kernels under test, in row order.
    pub fn kernel_specs(&self) -> Vec<crate::kernels::KernelSpec> {
        let imgs = self
            .kernels
            .iter()
            .map(|k| crate::kernels::KernelSpec::parse(k, false));
        let debs = self
            .kernel_debs
            .iter()
            .map(|k| crate::kernels::KernelSpec::parse(k, true));
        imgs.chain(debs).collect()
    }
}

/// Labels go into file names.
pub fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 64
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// What an execution produced.
#[derive(Debug, Default)]
pub struct Execution {
    /// One per real-fork call; runs index it.
    pub contexts: Vec<RealContext>,
    pub runs: Vec<RunRecord>,
    /// `(call name, reason)` of every skipped group.
    pub skipped: Vec<(String, String)>,
}

/// Run the plan through `exec`: every round, every group (in the round's order), one call each.
/// A group whose first call is skipped is not called again.
#[cfg(test)]
pub fn execute(
    plan: &Plan,
    exec: &mut dyn Executor,
    cpu: usize,
    seed: u64,
    progress: &mut dyn Progress,
) -> anyhow::Result<Execution> {
    let never = AtomicBool::new(false);
    execute_to(plan, exec, cpu, seed, progress, None, &never)
}

/// [`execute`], appending every call's contexts, runs and skip to `journal` as soon as the call
/// is done, and stopping between calls once `stop` is set (a signal).
pub fn execute_to(
    plan: &Plan,
    exec: &mut dyn Executor,
    cpu: usize,
    seed: u64,
    progress: &mut dyn Progress,
    mut journal: Option<&mut journal::Writer>,
    stop: &AtomicBool,
) -> anyhow::Result<Execution> {
    let total: usize = plan
        .groups
        .iter()
        .map(|g| g.records_per_call())
        .sum::<usize>()
        .saturating_mul(plan.runs as usize);
    progress.start(total as u64, crate::progress::Eta::of(plan));
    let mut out = Execution::default();
    let mut skipped: Vec<bool> = vec![false; plan.groups.len()];
    for &(round, g) in &plan.order {
        if skipped[g] {
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            bail!(Interrupted);
        }
        let call = &plan.groups[g];
        let name = call.name();
        let ctx = CallCtx {
            cpu,
            seed: call_seed(seed, round, g),
        };
        let mut contexts: Vec<RealContext> = Vec::new();
        let mut runs: Vec<RunRecord> = Vec::new();
        // The call's contexts count from 0; the file's list holds every call's.
        let offset = out.contexts.len() as u32;
        let call_t0 = Instant::now();
        let outcome = exec.run(call, ctx, &mut |line| match line {
            RunnerLine::Context(c) => contexts.push(*c),
            RunnerLine::Run(mut rec) => {
                rec.run_index = round;
                if let Some(x) = rec.real.as_mut() {
                    x.context += offset;
                }
                progress.record(&name, round, &rec);
                runs.push(*rec);
            }
            RunnerLine::Header(_) | RunnerLine::Counts(_) => {}
        });
        let outcome = match outcome {
            // A runner killed by the same Ctrl-C fails; say why it stopped.
            Err(_) if stop.load(Ordering::Relaxed) => bail!(Interrupted),
            o => o?,
        };
        progress.call_done(g, call_t0.elapsed().as_secs_f64());
        if let Some(j) = journal.as_deref_mut() {
            for c in &contexts {
                j.context(c)?;
            }
            for r in &runs {
                j.run(r)?;
            }
        }
        let got = runs.len();
        out.contexts.extend(contexts);
        out.runs.extend(runs);
        if let Outcome::Skipped(why) = outcome {
            skipped[g] = true;
            let left = ((plan.runs - round) as usize * call.records_per_call()).saturating_sub(got);
            progress.shrink(g, left as u64);
            progress.note(&format!("skipping {name}: {why}"));
            if let Some(j) = journal.as_deref_mut() {
                j.skipped(&name, &why)?;
            }
            out.skipped.push((name, why));
        }
    }
    progress.finish();
    Ok(out)
}

/// The bench was stopped by a signal between two runner calls.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Background load during the runs: `(runs with a figure, mean %, max %, runs above 25 %)`
/// of the busiest other CPU, from each record's `host_load`.
pub fn load_summary(runs: &[RunRecord]) -> Option<(usize, f64, f64, usize)> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.host_load?.other_cpus_busy_pct)
        .collect();
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let max = v.iter().copied().fold(0.0, f64::max);
    let over = v.iter().filter(|x| **x > 25.0).count();
    Some((v.len(), mean, max, over))
}

/// Runs during which another `forkbench` process was running.
pub fn concurrent_runs(runs: &[RunRecord]) -> usize {
    runs.iter()
        .filter(|r| r.host_load.is_some_and(|h| h.concurrent_forkbench > 0))
        .count()
}

/// A warning line when the machine was busy, else None.
pub fn load_warning(runs: &[RunRecord]) -> Option<String> {
    load_check(runs).warning
}

/// Mean and max over the runs of the pinned CPU's foreign share, when recorded.
fn foreign_summary(runs: &[RunRecord]) -> Option<(f64, f64)> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.host_load?.pinned_cpu_foreign_pct)
        .collect();
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Some((mean, v.iter().copied().fold(0.0, f64::max)))
}

/// Above this mean share of the pinned CPU going to other processes, the bench's CPU was
/// shared. A quiet call's estimate scatters around 0 (tick sampling, clamped: a few % on
/// average); a CPU hog on the pinned CPU took 40-68% of it in every call measured here.
pub const FOREIGN_PCT_LIMIT: f64 = 20.0;

/// The load check over a file's runs: busy when another `forkbench` ran during any run, when
/// other processes took more than [`FOREIGN_PCT_LIMIT`] % of the pinned CPU on average, or
/// when the busiest other CPU was above 25% busy during more than a tenth of the runs or above
/// 10% on average. Stored in the result file, where `compare` and `table` read it.
pub fn load_check(runs: &[RunRecord]) -> results::LoadCheck {
    let conc = concurrent_runs(runs);
    let summary = load_summary(runs);
    let foreign = foreign_summary(runs);
    let warning = if conc > 0 {
        Some(format!(
            "warning: another forkbench process was running during {conc} of {} runs \
             (someone else's benchmark competing for the CPUs); expect noisy numbers and rerun \
             on a quiet machine",
            runs.len()
        ))
    } else if let Some((mean, max)) = foreign.filter(|f| f.0 > FOREIGN_PCT_LIMIT) {
        Some(format!(
            "warning: the bench's CPU was shared: other processes took {mean:.0}% of the pinned \
             CPU's time during the runs on average (max {max:.0}%); expect noisy numbers and \
             rerun on a quiet machine"
        ))
    } else {
        summary.and_then(|(n, mean, max, over)| {
            (over * 10 > n || mean > 10.0).then(|| {
                format!(
                    "warning: the machine was busy: the busiest other CPU was {mean:.0}% busy on \
                     average (max {max:.0}%, above 25% during {over} of {n} runs); expect noisy \
                     numbers and rerun on a quiet machine"
                )
            })
        })
    };
    let round = |x: f64| (x * 10.0).round() / 10.0;
    results::LoadCheck {
        busy: warning.is_some(),
        warning,
        runs: summary.map_or(0, |s| s.0),
        other_cpus_busy_pct_mean: summary.map(|s| round(s.1)),
        other_cpus_busy_pct_max: summary.map(|s| s.2),
        runs_over_25pct: summary.map_or(0, |s| s.3),
        pinned_cpu_foreign_pct_mean: foreign.map(|f| round(f.0)),
        pinned_cpu_foreign_pct_max: foreign.map(|f| f.1),
        concurrent_forkbench_runs: conc,
    }
}

fn resolve_cpu(sel: CpuSel) -> usize {
    match sel {
        CpuSel::Id(n) => n,
        // The last CPU this process may use: CPU 0 takes most interrupts.
        CpuSel::Last => hostenv::cpu::allowed_cpus()
            .ok()
            .and_then(|s| s.ids().last())
            .unwrap_or(0),
    }
}

/// Estimated wall time of a plan: model ~6 ms per 1 GiB fork including restore and teardown,
/// real fork ~20 ms per 1 GiB fork including the child's exit and teardown (order0 ~15 ms,
/// order-9 layouts less), plus ~1 s of populating per call and GiB — as measured on the
/// 2-vCPU development VM, where the default profile took 4:21 against an estimate of 5 min.
/// A rough guide, printed before the run.
///
/// Kernels under test run under TCG here: a real call there costs ~0.15 s per forked GiB and
/// ~15 s per populated GiB (both measured with the ci profile's 64 MiB calls on x86_64
/// guests), and each guest boots once (~5 s for x86_64, ~5 s for arm64 here; 30 s allowed).
pub fn estimate_secs(plan: &Plan) -> f64 {
    let mut guests: Vec<&str> = Vec::new();
    let calls: f64 = plan
        .order
        .iter()
        .map(|&(_, g)| {
            let c = &plan.groups[g];
            if let Call::Real {
                kernel: Some(k), ..
            } = c
                && !guests.contains(&k.as_str())
            {
                guests.push(k);
            }
            call_estimate_secs(c)
        })
        .sum();
    calls + 30.0 * guests.len() as f64
}

/// [`estimate_secs`] of one call (without the guests' boots), plus ~0.2 s of runner start,
/// checks and layout verification per call, which dominate `--quick`'s 64 MiB calls (0.11-0.27 s
/// measured for `forkbench sim`/`real --layout pte-order9 --mem 64M --iters 20 --runs 1` with
/// the release runner here). The progress display's ETA starts from it and learns the real
/// figure as calls finish.
pub fn call_estimate_secs(c: &Call) -> f64 {
    let (per_gib, populate_per_gib) = match c {
        Call::Sim { .. } => (0.006, 1.0),
        Call::Real { kernel: None, .. } => (0.02, 1.0),
        Call::Real {
            kernel: Some(_), ..
        } => (0.15, 15.0),
    };
    let gib = c.mem().0 as f64 / (1u64 << 30) as f64;
    c.forks() as f64 * per_gib * gib + populate_per_gib * gib.max(0.05) + 0.2
}

/// The machine's name as it goes into the file and the path (see [`util::path_component`]).
fn machine_name(p: &Profile) -> String {
    if p.machine.name == "auto" {
        util::path_component(&host::hostname())
    } else {
        util::path_component(&p.machine.name)
    }
}

/// What a plan is checked against before anything runs.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// `MemAvailable`, when known.
    pub mem_available: Option<u64>,
    /// CPUs this process may run on, when known.
    pub allowed_cpus: Option<hostenv::cpu::CpuSet>,
}

impl HostFacts {
    pub fn current() -> Self {
        HostFacts {
            mem_available: hostenv::procfs::mem_available_bytes().ok(),
            allowed_cpus: hostenv::cpu::allowed_cpus().ok(),
        }
    }
}

/// Refuse, before the first run, a plan this host cannot run as asked: a group populating more
/// memory than is available, a pinned CPU this process may not use. (A layout the host does
/// not offer is found by the runner and skipped.)
pub fn check_plan(plan: &Plan, cpu: CpuSel, host: &HostFacts) -> anyhow::Result<()> {
    // Only real-fork layouts that populate need their size in RAM: the model keeps a 64-byte
    // record per page and `untouched` maps without touching, as the runner's own check knows.
    let populates = |g: &&Call| matches!(g, Call::Real { layout, .. } if layout.populated());
    if let Some(avail) = host.mem_available
        && let Some(g) = plan
            .groups
            .iter()
            .filter(populates)
            .max_by_key(|g| g.mem().0)
        && g.mem().0 > avail
    {
        bail!(
            "group '{}' populates {} but this host has only {} MiB available (MemAvailable); \
             lower [run] mem / [real] mem",
            g.name(),
            g.mem(),
            avail >> 20
        );
    }
    if let (CpuSel::Id(n), Some(set)) = (cpu, &host.allowed_cpus)
        && !set.contains(n)
    {
        bail!("[run] cpu = {n} is not one of the CPUs this process may use ({set})");
    }
    Ok(())
}

/// The default label of a kernels-under-test bench: the kernels' labels joined by `-vs-`, or
/// `kernels-N` when that does not make a valid label.
fn kernels_label(kernels: &[String]) -> String {
    let joined = kernels
        .iter()
        .map(|k| util::path_component(k))
        .collect::<Vec<_>>()
        .join("-vs-");
    if valid_label(&joined) {
        joined
    } else {
        format!("kernels-{}", kernels.len())
    }
}

/// Refuse, before any guest boots, guests this host cannot hold at once: every kernel's guest
/// stays up for the whole bench with [`crate::kernels::guest_mem`] of RAM.
fn check_guests(
    plan: &Plan,
    guests: usize,
    guest_mem: Option<contract::Size>,
    host: &HostFacts,
) -> anyhow::Result<()> {
    // The static guest forkbench is ~6 MiB; 64 MiB leaves room for a debug build.
    let each = guest_mem.map_or_else(|| crate::kernels::guest_mem(plan, 64 << 20).0, |m| m.0);
    let total = each.saturating_mul(guests as u64);
    if let Some(avail) = host.mem_available
        && total > avail
    {
        bail!(
            "{guests} guests of {} MiB each need {} MiB but this host has only {} MiB available \
             (MemAvailable); lower [run] mem / [real] mem or compare fewer kernels",
            each >> 20,
            total >> 20,
            avail >> 20
        );
    }
    Ok(())
}

/// A result file's `config`: the profile, the plan and how the bench was asked for. Kernels
/// under test are listed in row order (the first is the baseline).
pub fn file_config(
    profile: &Profile,
    quick: bool,
    forced: bool,
    kernels: &[String],
    cpu: usize,
    plan: &Plan,
) -> serde_json::Value {
    json!({
        "profile": profile,
        "quick": quick,
        "forced": forced,
        "kernels": kernels,
        "cpu": cpu,
        "plan": {
            "runs": plan.runs,
            "sizes": plan.sizes,
            "groups": plan.groups,
            "order": plan.order,
        },
    })
}

/// Create `<dir>/<stamp>-<label>[-N].json.partial`, the journal that reserves the name of the
/// result file it becomes: the first N (none, 2, 3, ...) whose journal and result file are both
/// new, so benches started in the same second each get their own. Creating it (and syncing its
/// header) is the proof that results can be written here, before the first run.
pub fn reserve(
    dir: &Path,
    stamp: &str,
    label: &str,
    meta: &ResultFile,
) -> anyhow::Result<(PathBuf, journal::Writer)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot write results under {}", dir.display()))?;
    for n in 1..1000u32 {
        let name = if n == 1 {
            format!("{stamp}-{label}.json")
        } else {
            format!("{stamp}-{label}-{n}.json")
        };
        let path = dir.join(name);
        if path.exists() {
            continue;
        }
        match journal::Writer::create(&journal::path_for(&path), meta) {
            Ok(w) => return Ok((path, w)),
            Err(results::ResultsError::Exists { .. }) => continue,
            Err(e) => {
                return Err(anyhow::anyhow!(e))
                    .with_context(|| format!("cannot write results under {}", dir.display()));
            }
        }
    }
    bail!(
        "{}: no free result name for {stamp}-{label} (999 taken)",
        dir.display()
    )
}

/// Write the cost model as a TOML file the runner reads (`--cost-model`).
fn cost_model_file(p: &Profile) -> anyhow::Result<Option<PathBuf>> {
    if !p.cost_model.keys().any(|k| k.ends_with("_ns")) {
        return Ok(None);
    }
    let path = util::target_dir().join(format!("forkbench-cost-model-{}.toml", p.profile));
    let text = toml::to_string(&p.cost_model).context("serialising [cost_model]")?;
    results::fsio::write_replace(&path, text.as_bytes())?;
    Ok(Some(path))
}

/// The host, captured once for the result file, with the sysfs facts its README shows.
pub fn host_env(cpu: usize) -> HostEnv {
    let paths: Vec<PathBuf> = crate::publish::ENV_SYSFS
        .iter()
        .map(|(_, p)| PathBuf::from(p))
        .collect();
    let mut env: HostEnv = hostenv::env::capture(&paths, &[]);
    env.pinned_cpu = Some(cpu);
    env
}

/// The host's release runner for the profile's calls (built first).
fn release_runner(a: &BenchArgs, p: &Profile) -> anyhow::Result<Release> {
    let bin = util::build_runner()?;
    let mut runner = Release::new(bin, p.run.nice, cost_model_file(p)?);
    runner.wait_quiet = std::time::Duration::from_secs(a.wait_quiet);
    Ok(runner)
}

pub fn run(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let specs = a.kernel_specs();
    if specs.is_empty() {
        return run_host(a).map(|_| ExitCode::SUCCESS);
    }
    if a.instrument == Some(crate::plan::Instruments::Sim) {
        // Before any image is opened: the flags alone decide this.
        bail!(
            "--kernel boots kernels to measure real fork, and --instrument sim runs no real fork: \
             drop --kernel, or use --instrument real|all"
        );
    }
    if a.clock == ClockArg::Icount && a.accel == AccelArg::Kvm {
        bail!(guest::qemu::GuestError::IcountNeedsTcg);
    }
    let stop = stop_on_signals()?;
    // A signal kills the guests' QEMUs (hostenv's cleanup tracks them) and sets `stop`; the
    // bench then stops, keeps its journal and says so, instead of dying by the signal.
    hostenv::cleanup::keep_running_on_signal();
    // Kernels under test: opened (packages extracted) before anything else, so a bad image is
    // the first and only error.
    let work = tempfile::Builder::new()
        .prefix("forkbench-kernels-")
        .tempdir()
        .context("creating a temporary directory for the kernel images")?;
    let kernels = crate::kernels::prepare(&specs, a.arch, work.path())?;
    let arch = kernels[0].image.arch;
    let labels: Vec<String> = kernels.iter().map(|k| k.label.clone()).collect();
    let mut kernels = Some(kernels);
    let stop_flag = Arc::clone(&stop);
    let opts = crate::kernels::GuestOptions {
        accel: match a.accel {
            AccelArg::Auto => guest::qemu::AccelChoice::Auto,
            AccelArg::Kvm => guest::qemu::AccelChoice::Kvm,
            AccelArg::Tcg => guest::qemu::AccelChoice::Tcg,
        },
        clock: match a.clock {
            ClockArg::Auto => guest::qemu::ClockChoice::Auto,
            ClockArg::Icount => guest::qemu::ClockChoice::Icount,
            ClockArg::Wall => guest::qemu::ClockChoice::Wall,
        },
        mem: a.guest_mem,
        cmdline_extra: a.append.clone(),
        vcpus: 2,
        boot_timeout: std::time::Duration::from_secs(a.boot_timeout.unwrap_or(
            if arch == contract::Arch::Arm64 {
                600
            } else {
                120
            },
        )),
        step_timeout: std::time::Duration::from_secs(1800),
    };
    bench(
        a,
        &HostFacts::current(),
        &stop,
        &labels,
        &mut |p: &Profile, plan: &Plan| {
            let model = if plan.groups.iter().any(|g| matches!(g, Call::Sim { .. })) {
                Some(Box::new(release_runner(a, p)?) as Box<dyn Executor>)
            } else {
                None
            };
            eprintln!("building the static guest forkbench for {arch} ...");
            let payload = guest::payload::build_payload(&util::project_root(), arch)
                .context("building the guest's forkbench")?;
            let ks = kernels.take().context("the guests are booted once")?;
            let guests = crate::kernels::Guests::boot(ks, plan, &payload, &opts, &stop_flag)?;
            Ok(match model {
                Some(model) => {
                    Box::new(crate::kernels::ModelAndGuests { model, guests }) as Box<dyn Executor>
                }
                None => Box::new(guests),
            })
        },
    )
}

/// The instruments a bench runs, one rule: `--instrument` (or its alias `--with-model` = all),
/// else with `--kernel` real (the kernels are what is compared; the model does not depend on
/// them), else the profile's `[run] instrument`, else all. `--kernel` with `sim` is refused:
/// the guests run real fork only.
pub fn instruments(
    a: &BenchArgs,
    p: &Profile,
    kernels: bool,
) -> anyhow::Result<crate::plan::Instruments> {
    use crate::plan::Instruments;
    let cli = a.instrument.or(a.with_model.then_some(Instruments::All));
    let i = match cli {
        Some(i) => i,
        None if kernels => Instruments::Real,
        None => p.run.instrument.unwrap_or_default(),
    };
    if kernels && i == Instruments::Sim {
        bail!(
            "--kernel boots kernels to measure real fork, and --instrument sim runs no real fork: \
             drop --kernel, or use --instrument real|all"
        );
    }
    Ok(i)
}

/// Makes the executor once the plan is checked and the journal open.
pub type MakeExecutor<'a> = dyn FnMut(&Profile, &Plan) -> anyhow::Result<Box<dyn Executor>> + 'a;

/// `bench` with the host's facts, a stop flag and the executor to run calls with (made only
/// once the plan is checked and the journal is open).
pub fn bench_written(
    a: &BenchArgs,
    host_facts: &HostFacts,
    stop: &AtomicBool,
    kernels: &[String],
    make_executor: &mut MakeExecutor<'_>,
) -> anyhow::Result<Option<PathBuf>> {
    let root = util::project_root();
    let mut profile = profile::load(a.config.as_deref(), &root)?;
    if kernels.is_empty() {
        // `[real] mthp_sizes = "offered"`: the sizes this host's kernel offers. (Guest kernels
        // keep the listed layouts: their sizes are not known before they boot.)
        let offered: Vec<u64> =
            hostenv::prereq::thp_sizes(std::path::Path::new("/sys/kernel/mm/transparent_hugepage"))
                .into_iter()
                .map(|(kb, _)| kb)
                .collect();
        profile::expand_offered_mthp(&mut profile, &offered);
    }
    let instruments = instruments(a, &profile, !kernels.is_empty())?;
    profile.run.instrument = Some(instruments);
    // Kernels under test run in guests: the profile's sizes and layouts apply, its machine
    // (arch, CPU model) is the guests', not this host's.
    if kernels.is_empty()
        && let Err(msg) = profile::check_host_cpu(
            &profile,
            profile::host_arch(),
            &hostenv::cpuid::CpuIdentity::host(),
        )
    {
        if !a.force {
            bail!(msg);
        }
        eprintln!("warning: {msg} (running anyway: --force)");
    }
    let label = a.label.clone().unwrap_or_else(|| {
        if kernels.is_empty() {
            util::default_label()
        } else {
            kernels_label(kernels)
        }
    });
    if !valid_label(&label) {
        bail!("label '{label}' must be 1-64 characters of [A-Za-z0-9._+-]");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?;
    let seed = a
        .seed
        .unwrap_or(now.as_secs() ^ u64::from(now.subsec_nanos()));
    let machine = machine_name(&profile);
    let stamp = host::UtcStamp::at(now.as_secs() as i64);
    let out_dir = {
        let o = PathBuf::from(&a.out);
        if o.is_absolute() { o } else { root.join(o) }
    };
    let mut plan = crate::plan::plan(&profile, a.quick, seed);
    if kernels.is_empty() && plan.groups.is_empty() {
        bail!(
            "profile {} has no {} groups: nothing to run with --instrument {instruments}",
            profile.profile,
            match instruments {
                crate::plan::Instruments::Sim => "[model]",
                _ => "[real]",
            }
        );
    }
    if kernels.is_empty() {
        check_plan(&plan, profile.cpu(), host_facts)?;
    } else {
        if !plan.groups.iter().any(|g| matches!(g, Call::Real { .. })) {
            bail!(
                "profile {} has no [real] layouts: nothing to run in the kernels under test",
                profile.profile
            );
        }
        plan = crate::plan::for_kernels(plan, kernels, instruments.sim(), seed);
        check_guests(&plan, kernels.len(), a.guest_mem, host_facts)?;
    }
    let cpu = resolve_cpu(profile.cpu());
    let est = estimate_secs(&plan);
    // Short lines: the whole preamble fits a 100-column terminal.
    eprintln!(
        "profile {} ({})\nmachine {machine}, label {label}, seed {seed}",
        profile.profile, profile.source,
    );
    eprintln!(
        "plan: {} variant groups x {} runs, {} of memory, {} forks per run, CPU {cpu}; \
         estimate {}",
        plan.groups.len(),
        plan.runs,
        // The largest call's memory: a [real] override may exceed the model's size.
        plan.groups
            .iter()
            .map(Call::mem)
            .max()
            .unwrap_or(plan.sizes.mem),
        plan.sizes.iters,
        crate::progress::fmt_estimate(est)
    );
    // What this host allows and what that changes, before the first run (and in a dry run).
    eprintln!("this host:");
    let needs = crate::prereq::PlanNeeds::of(&plan);
    for l in crate::prereq::lines(&hostenv::prereq::Prereqs::host(), &needs) {
        eprintln!("  {l}");
    }
    if a.dry_run {
        for (i, g) in plan.groups.iter().enumerate() {
            eprintln!("  group {i}: {}", g.name());
        }
        return Ok(None);
    }
    let file = ResultFile {
        schema: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        machine: machine.clone(),
        label: label.clone(),
        created_utc: stamp.rfc3339,
        git_rev: util::git_rev(),
        seed,
        config: file_config(&profile, a.quick, a.force, kernels, cpu, &plan),
        env: host_env(cpu),
        contexts: Vec::new(),
        runs: Vec::new(),
        load_check: None,
    };
    // Before the first run: the name is reserved and the directory proven writable.
    let (out_path, journal) = reserve(
        &out_dir.join(&machine),
        &stamp.compact,
        &util::path_component(&label),
        &file,
    )?;
    let partial = journal.path().to_owned();
    let others = host::pids_named("forkbench", &[]);
    if !others.is_empty() {
        eprintln!(
            "{}",
            crate::progress::fill(
                &format!(
                    "warning: other forkbench processes are running (pids {others:?}); they \
                     compete for the CPUs and make the numbers noisy"
                ),
                crate::progress::WIDTH
            )
        );
    }
    let mut runner = match make_executor(&profile, &plan) {
        Ok(r) => r,
        Err(e) => {
            drop(journal);
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    let out = Saving {
        plan: &plan,
        file,
        out_path,
        journal,
        cpu,
        seed,
        machine: &machine,
        publish_hint: out_dir == root.join("results"),
        verbose: a.verbose,
        session_only: a.session_only,
        policy: a.exact.stats_policy()?,
    }
    .run(runner.as_mut(), stop)?;
    Ok(Some(out))
}

/// What [`Saving::run`] needs: the plan, the result file to fill (its name reserved by its
/// journal) and how to print the tables.
pub struct Saving<'a> {
    pub plan: &'a Plan,
    pub file: ResultFile,
    pub out_path: PathBuf,
    pub journal: journal::Writer,
    pub cpu: usize,
    pub seed: u64,
    pub machine: &'a str,
    /// Print how to publish (the file went under the repository's `results/`).
    pub publish_hint: bool,
    pub verbose: bool,
    /// A session of `cargo xtask noise`: save the file, print no tables.
    pub session_only: bool,
    /// The tables' statistics (exact rows' tolerance and threshold included).
    pub policy: stats::Policy,
}

impl Saving<'_> {
    /// Run the plan through `runner`, journalling every call; then save the result file (never
    /// over another) and print the tables. Shared by `bench` and `lava` (whose executor replays
    /// a finished lab job). On failure the journal keeps what was measured, and says so.
    pub fn run(self, runner: &mut dyn Executor, stop: &AtomicBool) -> anyhow::Result<PathBuf> {
        let Saving {
            plan,
            mut file,
            out_path,
            mut journal,
            cpu,
            seed,
            machine,
            publish_hint,
            verbose,
            session_only,
            policy,
        } = self;
        let partial = journal.path().to_owned();
        let mut progress = crate::progress::auto();
        let t0 = Instant::now();
        let ex = execute_to(
            plan,
            runner,
            cpu,
            seed,
            progress.as_mut(),
            Some(&mut journal),
            stop,
        );
        let kept = journal.runs;
        drop(journal);
        if ex.is_ok()
            && let Err(e) = runner.finish()
        {
            eprintln!("warning: {e:#}");
        }
        let ex = match ex {
            Ok(ex) => ex,
            Err(e) if kept == 0 => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
            Err(e) => {
                return Err(e.context(format!(
                    "the {kept} runs measured so far are kept in {} (cargo xtask table {0})",
                    partial.display()
                )));
            }
        };
        let wall = t0.elapsed().as_secs_f64();
        if ex.runs.is_empty() {
            let _ = std::fs::remove_file(&partial);
            bail!("no runs were made (every variant was skipped); no result file written");
        }
        if let Some(cfg) = file.config.as_object_mut() {
            cfg.insert(
                "skipped".into(),
                json!(
                    ex.skipped
                        .iter()
                        .map(|(n, w)| json!({"group": n, "reason": w}))
                        .collect::<Vec<_>>()
                ),
            );
            cfg.insert("wall_secs".into(), json!((wall * 10.0).round() / 10.0));
            cfg.insert(
                "waited_for_quiet_secs".into(),
                json!((runner.waited().as_secs_f64() * 10.0).round() / 10.0),
            );
            cfg.insert(
                "load".into(),
                json!(load_summary(&ex.runs).map(|(n, mean, max, over)| json!({
                    "runs": n,
                    "other_cpus_busy_pct_mean": (mean * 10.0).round() / 10.0,
                    "other_cpus_busy_pct_max": max,
                    "runs_over_25pct": over,
                }))),
            );
        }
        file.load_check = Some(load_check(&ex.runs));
        // The runs' context indexes already count over the whole list; absorbing it into an empty
        // file keeps them and lets the file's host capture take what the contexts captured beyond it.
        file.absorb(ex.contexts, ex.runs);
        file.save_new(&out_path).map_err(|e| {
            anyhow::anyhow!(
                "saving {}: {e}; every run is kept in {} (cargo xtask table {1})",
                out_path.display(),
                partial.display()
            )
        })?;
        let _ = std::fs::remove_file(&partial);
        file.check_samples(&out_path)?;
        let warning = file.load_check.as_ref().and_then(|l| l.warning.clone());
        if session_only {
            if let Some(w) = &warning {
                eprintln!("{}", crate::progress::fill(w, crate::progress::WIDTH));
            }
            return Ok(out_path);
        }
        let cases = select::cases(std::slice::from_ref(&file), None, &policy)?;
        println!(
            "{}",
            bench_tables(
                &cases,
                machine,
                std::slice::from_ref(&file),
                &policy,
                verbose
            )
        );
        let fill = |t: &str| crate::progress::fill(t, crate::progress::WIDTH);
        for (n, w) in &ex.skipped {
            println!("{}", fill(&format!("skipped {n}: {w}")));
        }
        if let Some(w) = &warning {
            println!("{}", fill(w));
        }
        println!(
            "{}",
            fill(&format!(
                "wall time {}:{:02}; raw samples: {}",
                wall as u64 / 60,
                wall as u64 % 60,
                out_path.display()
            ))
        );
        if publish_hint {
            println!(
                "to publish: cargo xtask publish (renders results/{machine}/README.md and plots)"
            );
        }
        Ok(out_path)
    }
}

/// [`bench_written`] for the command line: the result file's path is printed, not returned.
pub fn bench(
    a: &BenchArgs,
    host_facts: &HostFacts,
    stop: &AtomicBool,
    kernels: &[String],
    make_executor: &mut MakeExecutor<'_>,
) -> anyhow::Result<ExitCode> {
    bench_written(a, host_facts, stop, kernels, make_executor).map(|_| ExitCode::SUCCESS)
}

/// A flag set by Ctrl-C (the runner, in the same process group, gets it too and restores what
/// it changed), `kill` and a closed terminal: the bench stops between runner calls and keeps
/// its journal.
pub fn stop_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

/// Run a profile on this host (no kernels under test) and return the result file written
/// (`None` for `--dry-run`). Ctrl-C, `kill` and a closed terminal stop it between runner calls.
pub fn run_host(a: &BenchArgs) -> anyhow::Result<Option<PathBuf>> {
    let stop = stop_on_signals()?;
    bench_written(
        a,
        &HostFacts::current(),
        &stop,
        &[],
        &mut |p: &Profile, _: &Plan| Ok(Box::new(release_runner(a, p)?) as Box<dyn Executor>),
    )
}

/// What `bench` prints on stdout: the thread's combined tables and one compact verdict table
/// (every line within 100 columns: long kernel names get short ones and a legend); with
/// `verbose`, the extended tables too, whose real-fork rows carry the spread without drift and
/// the core-probe correlation. Exact cases (guest instructions) follow in their own tables.
pub fn bench_tables(
    cases: &[report::Case],
    machine: &str,
    files: &[ResultFile],
    policy: &stats::Policy,
    verbose: bool,
) -> String {
    let mut cases = cases.to_vec();
    let legend = report::legend::shorten_kernel_rows(&mut cases);
    let (exact, timed): (Vec<report::Case>, Vec<report::Case>) =
        cases.into_iter().partition(report::Case::is_exact);
    let mut s = crate::table::text_preamble(&timed, &exact, legend);
    if !timed.is_empty() {
        s.push_str(&timed_bench_tables(&timed, machine, files, policy, verbose));
    }
    if !exact.is_empty() {
        if !timed.is_empty() {
            s.push('\n');
        }
        s.push_str(&report::exact::exact_tables_body(&exact));
    }
    s
}

/// [`bench_tables`] of timed cases.
fn timed_bench_tables(
    cases: &[report::Case],
    machine: &str,
    files: &[ResultFile],
    policy: &stats::Policy,
    verbose: bool,
) -> String {
    let mut s = crate::table::render_tables(cases, machine, crate::table::Format::Combined);
    if verbose {
        s.push_str(&report::extended_tables_verbose(cases, files));
        s.push_str(
            "Extended tables: mean_rel/std_rel as in the thread (std over run means / baseline\n\
             mean); 95% CI of the change by the delta method on logs; p from Welch's t-test; MDE\n\
             at α=0.05, power 0.8; std_rel w/o drift: samples dealt round-robin into as many\n\
             groups as runs (host drift drops out); probe r: core-probe time vs fork time.\n\n",
        );
    }
    s.push_str(&report::verdict_table(cases, policy.noise));
    if !verbose {
        s.push_str("(--verbose: the extended tables with p, MDE, spread without drift, probe r)\n");
    }
    s
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::exec::mock::Mock;
    use crate::progress::Recorder;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A result file made by the mock executor from the quick local plan.
    pub fn mock_file(seed: u64) -> ResultFile {
        let plan = crate::plan::plan(&local(), true, seed);
        let ex = execute(
            &plan,
            &mut Mock::default(),
            1,
            seed,
            &mut Recorder::default(),
        )
        .unwrap();
        let mut f = ResultFile::new("m", "a", "2026-01-01T00:00:00Z", Default::default());
        f.git_rev = "r".into();
        f.config = json!({});
        f.absorb(ex.contexts, ex.runs);
        f
    }

    /// The mock, shared so the test can see its calls after `bench` dropped its box.
    struct Shared(Rc<RefCell<Mock>>);

    impl Executor for Shared {
        fn run(
            &mut self,
            call: &crate::plan::Call,
            ctx: CallCtx,
            emit: &mut dyn FnMut(RunnerLine),
        ) -> anyhow::Result<Outcome> {
            self.0.borrow_mut().run(call, ctx, emit)
        }
    }

    fn args(out: &Path, config: Option<&Path>) -> BenchArgs {
        BenchArgs {
            config: config.map(|p| p.display().to_string()),
            label: Some("t".into()),
            quick: true,
            seed: Some(3),
            out: out.display().to_string(),
            force: false,
            dry_run: false,
            wait_quiet: 0,
            kernels: Vec::new(),
            kernel_debs: Vec::new(),
            arch: None,
            accel: AccelArg::Auto,
            clock: ClockArg::Auto,
            instrument: None,
            with_model: false,
            boot_timeout: None,
            guest_mem: None,
            append: Vec::new(),
            verbose: false,
            exact: Default::default(),
            session_only: false,
        }
    }

    /// Run `bench` with `mock`; returns the result and the calls the mock saw.
    fn bench_with(
        a: &BenchArgs,
        mock: Mock,
        host: &HostFacts,
    ) -> (anyhow::Result<ExitCode>, usize) {
        let shared = Rc::new(RefCell::new(mock));
        let s2 = Rc::clone(&shared);
        let r = bench(a, host, &AtomicBool::new(false), &[], &mut |_, _| {
            Ok(Box::new(Shared(Rc::clone(&s2))) as Box<dyn Executor>)
        });
        let calls = shared.borrow().calls.len();
        (r, calls)
    }

    fn files_in(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// `--out` under a regular file: refused in one line before the first runner call.
    #[test]
    fn unwritable_out_fails_before_any_run() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let (r, calls) = bench_with(
            &args(&file.join("results"), None),
            Mock::default(),
            &HostFacts::default(),
        );
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("cannot write results under"), "{e}");
        assert_eq!(e.lines().count(), 1);
        assert_eq!(calls, 0);
    }

    /// A runner failing on call 5 leaves a journal with the records of calls 1-4, which loads
    /// and renders; a full run leaves only the result file.
    #[test]
    fn a_late_failure_keeps_the_runs_in_a_journal() {
        let d = tempfile::tempdir().unwrap();
        let mock = Mock {
            fail_on_call: Some(5),
            ..Mock::default()
        };
        let (r, calls) = bench_with(&args(d.path(), None), mock, &HostFacts::default());
        assert_eq!(calls, 5);
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("boom") && e.contains(".partial"), "{e}");
        let dir = d.path().join(machine_name(&local()));
        let files = files_in(&dir);
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(journal::is_journal(&files[0]));
        assert!(e.contains(&files[0].display().to_string()), "{e}");
        let f = select::load(&files[0]).unwrap();
        // The same plan and seed through a mock that does not fail: the first 4 calls' records.
        let plan = crate::plan::plan(&local(), true, 3);
        let mut m = Mock::default();
        let all = execute(
            &plan,
            &mut m,
            resolve_cpu(local().cpu()),
            3,
            &mut Recorder::default(),
        )
        .unwrap();
        let per_call: usize = plan.order[..4]
            .iter()
            .map(|&(_, g)| plan.groups[g].records_per_call())
            .sum();
        assert_eq!(f.runs.len(), per_call);
        assert_eq!(f.runs, all.runs[..per_call].to_vec());
        assert_eq!(f.label, "t");
        let cases =
            select::cases(std::slice::from_ref(&f), None, &stats::Policy::default()).unwrap();
        let t = crate::table::render(&cases, "m", crate::table::Format::Thread);
        assert!(t.contains("mean_rel"), "{t}");
        // `table FILE.partial` reads it too.
        let targs = crate::table::TableArgs {
            paths: vec![files[0].display().to_string()],
            baseline: None,
            format: crate::table::Format::Thread,
            instrument: None,
            allow_mixed: false,
            allow_busy: false,
            results: d.path().display().to_string(),
            modelled: false,
            exact: Default::default(),
        };
        crate::table::run(&targs).unwrap();

        let ok = tempfile::tempdir().unwrap();
        let (r, _) = bench_with(
            &args(ok.path(), None),
            Mock::default(),
            &HostFacts::default(),
        );
        r.unwrap();
        let files = files_in(&ok.path().join(machine_name(&local())));
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(select::is_result_name(
            &files[0].file_name().unwrap().to_string_lossy()
        ));
    }

    /// Two benches in the same second (same stamp and label) both get a file.
    #[test]
    fn names_are_unique_within_a_second() {
        let d = tempfile::tempdir().unwrap();
        let f = mock_file(1);
        let stamp = "20260101T000000Z";
        let (p1, j1) = reserve(d.path(), stamp, "t", &f).unwrap();
        let (p2, j2) = reserve(d.path(), stamp, "t", &f).unwrap();
        assert_ne!(p1, p2);
        drop((j1, j2));
        f.save_new(&p1).unwrap();
        f.save_new(&p2).unwrap();
        std::fs::remove_file(journal::path_for(&p1)).unwrap();
        // A finished file with that name (its journal gone) is not reused either.
        let (p3, _j3) = reserve(d.path(), stamp, "t", &f).unwrap();
        assert!(p3 != p1 && p3 != p2);
        for p in [&p1, &p2, &p3] {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(select::is_result_name(&name), "{name}");
        }
        assert_eq!(select::json_files(d.path()).unwrap().len(), 2);
    }

    /// A signal between calls stops the bench there; the journal holds the calls before it.
    #[test]
    fn a_signal_stops_between_calls_and_the_journal_keeps_the_rest() {
        struct StopAfter<'a> {
            mock: Mock,
            after: usize,
            stop: &'a AtomicBool,
        }
        impl Executor for StopAfter<'_> {
            fn run(
                &mut self,
                call: &crate::plan::Call,
                ctx: CallCtx,
                emit: &mut dyn FnMut(RunnerLine),
            ) -> anyhow::Result<Outcome> {
                let o = self.mock.run(call, ctx, emit);
                if self.mock.calls.len() == self.after {
                    self.stop.store(true, Ordering::Relaxed);
                }
                o
            }
        }
        let d = tempfile::tempdir().unwrap();
        let plan = crate::plan::plan(&local(), true, 9);
        let stop = AtomicBool::new(false);
        let mut ex = StopAfter {
            mock: Mock::default(),
            after: 3,
            stop: &stop,
        };
        let path = d.path().join("20260101T000000Z-t.json.partial");
        let mut j = journal::Writer::create(&path, &mock_file(1)).unwrap();
        let e = execute_to(
            &plan,
            &mut ex,
            1,
            9,
            &mut Recorder::default(),
            Some(&mut j),
            &stop,
        )
        .unwrap_err();
        assert!(e.is::<Interrupted>(), "{e}");
        assert_eq!(ex.mock.calls.len(), 3);
        let per_call: usize = plan.order[..3]
            .iter()
            .map(|&(_, g)| plan.groups[g].records_per_call())
            .sum();
        assert_eq!(j.runs, per_call);
        assert_eq!(select::load(&path).unwrap().runs.len(), per_call);
    }

    /// A plan the host cannot run as asked is refused before anything runs, in one line.
    #[test]
    fn plans_beyond_the_host_are_refused_up_front() {
        let d = tempfile::tempdir().unwrap();
        let host = HostFacts {
            mem_available: Some(24 << 30),
            allowed_cpus: Some(hostenv::cpu::CpuSet::from_ids([0, 1])),
        };
        let cases = [
            ("[real]", "[real]\nmem = \"30G\"", false, "populates 30G"),
            ("mem = \"1G\"", "mem = \"30G\"", false, "populates 30G"),
            (
                "cpu = \"last\"",
                "cpu = 7",
                true,
                "cpu = 7 is not one of the CPUs",
            ),
            (
                "[cost_model]",
                "[cost_model]\ntlbi_page_ns = inf",
                true,
                "finite, non-negative",
            ),
        ];
        for (i, (edit, new, quick, want)) in cases.into_iter().enumerate() {
            let src = profile::LOCAL_TOML.replacen(edit, new, 1);
            let p = d.path().join(format!("p{i}.toml"));
            std::fs::write(&p, src).unwrap();
            let mut a = args(&d.path().join("out"), Some(&p));
            a.quick = quick;
            let (r, calls) = bench_with(&a, Mock::default(), &host);
            let e = format!("{:#}", r.unwrap_err());
            assert!(e.contains(want), "{e}");
            assert_eq!(e.lines().count(), 1);
            assert_eq!(calls, 0);
            a.dry_run = true;
            assert!(bench_with(&a, Mock::default(), &host).0.is_err());
        }
        assert!(!d.path().join("out").exists());
        // The model does not hold its memory size in RAM: 30G of model memory with 64M of
        // real fork passes the check.
        let src = profile::LOCAL_TOML
            .replacen("mem = \"1G\"", "mem = \"30G\"", 1)
            .replacen("[real]", "[real]\nmem = \"64M\"", 1);
        let p = d.path().join("model-only.toml");
        std::fs::write(&p, src).unwrap();
        let profile = profile::load(Some(p.to_str().unwrap()), &util::project_root()).unwrap();
        let plan = crate::plan::plan(&profile, false, 1);
        check_plan(&plan, CpuSel::Last, &host).unwrap();
    }

    fn local() -> Profile {
        profile::load(None, &util::project_root()).unwrap()
    }

    #[test]
    fn labels_are_checked() {
        assert!(valid_label("v6.9-rc1"));
        assert!(valid_label("6.18.0+"));
        assert!(!valid_label("a/b"));
        assert!(!valid_label(""));
    }

    #[test]
    fn interleaves_runs_and_skips_what_is_not_built() {
        let p = local();
        let plan = crate::plan::plan(&p, true, 99);
        let mut mock = Mock {
            missing_arches: vec![contract::Arch::Arm64],
            ..Mock::default()
        };
        let mut prog = Recorder::default();
        let ex = execute(&plan, &mut mock, 1, 99, &mut prog).unwrap();
        // arm64 groups (2 orders x 2 contpte) are skipped after their first call each.
        assert_eq!(ex.skipped.len(), 4);
        assert!(
            ex.skipped
                .iter()
                .all(|(n, w)| n.starts_with("sim arm64") && w.contains("not available"))
        );
        assert_eq!(prog.notes.len(), 4);
        // x86_64: 2 orders x 5 strategies x 3 runs; real: 5 layouts x 3 runs.
        assert_eq!(ex.runs.len(), 30 + 15);
        assert_eq!(prog.done, 45);
        assert_eq!(prog.total, 45);
        // One context per real-fork call; each real run points at its own call's context.
        assert_eq!(ex.contexts.len(), 15);
        let real: Vec<&RunRecord> = ex.runs.iter().filter(|r| r.real.is_some()).collect();
        assert_eq!(real.len(), 15);
        for (i, r) in real.iter().enumerate() {
            let c = r.real.as_ref().unwrap().context as usize;
            assert_eq!(c, i);
            assert_eq!(r.variant.layout_name(), ex.contexts[c].layout.to_string());
        }
        // Run indices are rounds; every variant has runs 0, 1, 2.
        let mut per: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for r in &ex.runs {
            per.entry(r.variant.id()).or_default().push(r.run_index);
        }
        assert_eq!(per.len(), 15);
        assert!(per.values().all(|v| v == &vec![0, 1, 2]));
        // Round-level interleaving: no call of round 1 before the last of round 0.
        let rounds: Vec<u32> = ex.runs.iter().map(|r| r.run_index).collect();
        assert!(rounds.windows(2).all(|w| w[0] <= w[1]));
        // The block order differs between rounds and calls get distinct seeds.
        let names: Vec<&String> = mock.calls.iter().map(|c| &c.0).collect();
        let per_round = names.len() / 3;
        assert!(names.len() >= 11);
        let seeds: std::collections::BTreeSet<u64> = mock.calls.iter().map(|c| c.1.seed).collect();
        assert_eq!(seeds.len(), mock.calls.len());
        let _ = per_round;
        // Deterministic: same seed, same calls.
        let mut mock2 = Mock {
            missing_arches: vec![contract::Arch::Arm64],
            ..Mock::default()
        };
        execute(&plan, &mut mock2, 1, 99, &mut Recorder::default()).unwrap();
        assert_eq!(mock.calls, mock2.calls);
    }

    #[test]
    fn real_not_built_is_a_note_and_failures_stop_the_run() {
        let p = local();
        let plan = crate::plan::plan(&p, true, 5);
        let mut mock = Mock {
            real: false,
            ..Mock::default()
        };
        let mut prog = Recorder::default();
        let ex = execute(&plan, &mut mock, 0, 5, &mut prog).unwrap();
        assert_eq!(
            ex.skipped
                .iter()
                .filter(|s| s.0.starts_with("real"))
                .count(),
            5
        );
        assert_eq!(prog.total, prog.done);
        let mut bad = Mock {
            fail_on: Some("sim x86_64 order9".into()),
            ..Mock::default()
        };
        let e = execute(&plan, &mut bad, 0, 5, &mut Recorder::default()).unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
    }

    /// The runs of a mock quick run of the local profile (no host load recorded).
    fn quick_mock_runs() -> Vec<RunRecord> {
        execute(
            &crate::plan::plan(&local(), true, 1),
            &mut Mock::default(),
            1,
            1,
            &mut Recorder::default(),
        )
        .unwrap()
        .runs
    }

    #[test]
    fn busy_machines_are_flagged() {
        let mut runs = quick_mock_runs();
        assert_eq!(load_summary(&runs), None);
        let load = |busy: f64| {
            Some(contract::HostLoad {
                other_cpus_busy_pct: Some(busy),
                pinned_cpu_foreign_pct: None,
                concurrent_forkbench: 0,
            })
        };
        for (i, r) in runs.iter_mut().enumerate() {
            r.host_load = load(if i % 2 == 0 { 2.0 } else { 4.0 });
        }
        assert_eq!(load_summary(&runs).map(|s| s.3), Some(0));
        assert!(load_warning(&runs).is_none());
        runs[0].host_load = load(100.0);
        let n = runs.len();
        for r in runs.iter_mut().take(n / 5) {
            r.host_load = load(90.0);
        }
        let w = load_warning(&runs).unwrap();
        assert!(w.starts_with("warning: the machine was busy"), "{w}");
        runs[1].host_load.as_mut().unwrap().concurrent_forkbench = 1;
        let w = load_warning(&runs).unwrap();
        assert!(
            w.contains("another forkbench process was running during 1 of"),
            "{w}"
        );
    }

    /// A hog on the bench's own CPU leaves the other CPUs idle: the pinned CPU's foreign share
    /// is what shows it.
    #[test]
    fn a_hog_on_the_pinned_cpu_is_flagged() {
        let mut runs = quick_mock_runs();
        let load = |foreign: f64| {
            Some(contract::HostLoad {
                other_cpus_busy_pct: Some(1.0),
                pinned_cpu_foreign_pct: Some(foreign),
                concurrent_forkbench: 0,
            })
        };
        // Quiet: tick sampling scatters a few % around zero.
        for (i, r) in runs.iter_mut().enumerate() {
            r.host_load = load([0.0, 3.0, 12.0][i % 3]);
        }
        let quiet = load_check(&runs);
        assert!(!quiet.busy, "{quiet:?}");
        assert_eq!(quiet.pinned_cpu_foreign_pct_mean, Some(5.0));
        // A hog: 40-68% of the pinned CPU in every call.
        for (i, r) in runs.iter_mut().enumerate() {
            r.host_load = load([42.0, 63.0, 55.0][i % 3]);
        }
        let hog = load_check(&runs);
        assert!(hog.busy);
        let w = hog.warning.unwrap();
        assert!(w.starts_with("warning: the bench's CPU was shared"), "{w}");
        assert!(w.contains("53% of the pinned CPU's time"), "{w}");
    }

    /// The default output of a mock quick run fits a 100-column terminal; `--verbose` adds the
    /// extended tables (wider) before the verdict table.
    #[test]
    fn default_output_fits_100_columns() {
        let f = mock_file(7);
        let policy = stats::Policy::default();
        let cases = select::cases(std::slice::from_ref(&f), None, &policy).unwrap();
        let out = bench_tables(&cases, "m", std::slice::from_ref(&f), &policy, false);
        for l in out.lines() {
            assert!(
                l.chars().count() <= 100,
                "{} columns: {l}",
                l.chars().count()
            );
        }
        assert!(out.contains("noise threshold ±1.0%"), "{out}");
        assert!(out.contains("| real fork(), "), "{out}");
        assert!(
            !out.contains("| runs |") && !out.contains("w/o drift"),
            "{out}"
        );
        let verbose = bench_tables(&cases, "m", std::slice::from_ref(&f), &policy, true);
        assert!(verbose.contains("MDE") && verbose.contains("std_rel w/o drift"));
        assert!(
            verbose.ends_with(&out[out.find("Verdicts").unwrap()..out.find("(--verbose").unwrap()])
        );
    }

    /// The quick plan's estimate is seconds, not "~0 min".
    #[test]
    fn quick_estimates_are_seconds() {
        let plan = crate::plan::plan(&local(), true, 1);
        let text = crate::progress::fmt_estimate(estimate_secs(&plan));
        assert!(text.ends_with(" s") && text != "~0 s", "{text}");
    }

    #[test]
    fn estimate_of_the_default_run_fits_ten_minutes() {
        let plan = crate::plan::plan(&local(), false, 1);
        let est = estimate_secs(&plan);
        assert!(est < 600.0, "{est}");
    }

    #[test]
    fn instrument_flag_and_profile_key_choose_what_runs() {
        use crate::plan::Instruments;
        let d = tempfile::tempdir().unwrap();
        // The profile says sim; the CLI wins.
        let cfg = d.path().join("p.toml");
        std::fs::write(
            &cfg,
            profile::LOCAL_TOML.replacen("warmup = 2 ", "instrument = \"sim\"\nwarmup = 2 ", 1),
        )
        .unwrap();
        for (cli, calls, inst) in [
            (None, 6 * 3, Instruments::Sim),
            (Some(Instruments::Real), 5 * 3, Instruments::Real),
            (Some(Instruments::All), 11 * 3, Instruments::All),
        ] {
            let out = d.path().join(format!("out-{inst}"));
            let mut a = args(&out, Some(&cfg));
            a.instrument = cli;
            let (r, n) = bench_with(&a, Mock::default(), &HostFacts::default());
            assert_eq!(r.unwrap(), ExitCode::SUCCESS);
            assert_eq!(n, calls, "{cli:?}");
            let f = select::load(&select::json_files(&out).unwrap()[0]).unwrap();
            assert_eq!(f.config["profile"]["run"]["instrument"], inst.to_string());
            // The real-fork tables print first.
            if inst == Instruments::All {
                let cases = select::cases(&[f], None, &stats::Policy::default()).unwrap();
                let t = crate::table::render(&cases, "m", crate::table::Format::Bench);
                let (real, model) = (t.find("x86_64 real").unwrap(), t.find(" model").unwrap());
                assert!(real < model, "{t}");
            }
        }
    }

    #[test]
    fn one_rule_for_instruments_with_kernels() {
        use crate::plan::Instruments;
        let p = local();
        let d = tempfile::tempdir().unwrap();
        let mut a = args(d.path(), None);
        assert_eq!(instruments(&a, &p, false).unwrap(), Instruments::All);
        // Kernels under test: real by default; --with-model is --instrument all.
        assert_eq!(instruments(&a, &p, true).unwrap(), Instruments::Real);
        a.with_model = true;
        assert_eq!(instruments(&a, &p, true).unwrap(), Instruments::All);
        a.with_model = false;
        a.instrument = Some(Instruments::Sim);
        let e = instruments(&a, &p, true).unwrap_err().to_string();
        assert!(e.contains("--instrument sim runs no real fork"), "{e}");
        // A profile's key applies to host runs; --kernel means real unless the CLI says.
        let mut q = local();
        q.run.instrument = Some(Instruments::All);
        a.instrument = None;
        assert_eq!(instruments(&a, &q, true).unwrap(), Instruments::Real);
        assert_eq!(instruments(&a, &q, false).unwrap(), Instruments::All);
    }
}
