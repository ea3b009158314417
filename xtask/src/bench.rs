//! `cargo xtask bench [--config NAME|PATH] [--label L] [--quick]`: profile → plan → runner
//! calls (run-level interleaving in a seeded random block order) → one result file
//! `results/<machine>/<UTC timestamp>-<label>.json` (atomic, never overwritten) with every raw
//! sample, the profile, the plan, the environment, the git revision and the tool version →
//! the tables.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use contract::{HostEnv, RunnerLine};
use hostenv::host;
use results::{RealContext, ResultFile, RunRecord, SCHEMA_VERSION};
use serde_json::json;

use crate::exec::{CallCtx, Executor, Outcome, Release};
use crate::plan::{Plan, call_seed};
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
pub fn execute(
    plan: &Plan,
    exec: &mut dyn Executor,
    cpu: usize,
    seed: u64,
    progress: &mut dyn Progress,
) -> anyhow::Result<Execution> {
    let total: usize = plan
        .groups
        .iter()
        .map(|g| g.records_per_call())
        .sum::<usize>()
        * plan.runs as usize;
    progress.start(total as u64);
    let mut out = Execution::default();
    let mut skipped: Vec<bool> = vec![false; plan.groups.len()];
    for &(round, g) in &plan.order {
        if skipped[g] {
            continue;
        }
        let call = &plan.groups[g];
        let name = call.name();
        let ctx = CallCtx {
            cpu,
            seed: call_seed(seed, round, g),
        };
        let mut got = 0usize;
        // The call's contexts count from 0; the file's list holds every call's.
        let offset = out.contexts.len() as u32;
        let outcome = exec.run(call, ctx, &mut |line| match line {
            RunnerLine::Context(c) => out.contexts.push(*c),
            RunnerLine::Run(mut rec) => {
                rec.run_index = round;
                if let Some(x) = rec.real.as_mut() {
                    x.context += offset;
                }
                got += 1;
                progress.record(&name, round, &rec);
                out.runs.push(*rec);
            }
            RunnerLine::Header(_) | RunnerLine::Counts(_) => {}
        })?;
        if let Outcome::Skipped(why) = outcome {
            skipped[g] = true;
            let left = (plan.runs - round) as usize * call.records_per_call() - got;
            progress.shrink(left as u64);
            progress.note(&format!("skipping {name}: {why}"));
            out.skipped.push((name, why));
        }
    }
    progress.finish();
    Ok(out)
}

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
    let conc = concurrent_runs(runs);
    if conc > 0 {
        return Some(format!(
            "warning: another forkbench process was running during {conc} of {} runs \
             (someone else's benchmark competing for the CPUs); expect noisy numbers and rerun \
             on a quiet machine",
            runs.len()
        ));
    }
    let (n, mean, max, over) = load_summary(runs)?;
    (over * 10 > n || mean > 10.0).then(|| {
        format!(
            "warning: the machine was busy: the busiest other CPU was {mean:.0}% busy on average \
             (max {max:.0}%, above 25% during {over} of {n} runs); expect noisy numbers and rerun \
             on a quiet machine"
        )
    })
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
pub fn estimate_secs(plan: &Plan) -> f64 {
    plan.order
        .iter()
        .map(|&(_, g)| {
            let c = &plan.groups[g];
            let per_gib = match c {
                crate::plan::Call::Sim { .. } => 0.006,
                crate::plan::Call::Real { .. } => 0.02,
            };
            let gib = c.mem().0 as f64 / (1u64 << 30) as f64;
            c.forks() as f64 * per_gib * gib + 1.0 * gib.max(0.05)
        })
        .sum()
}

fn machine_name(p: &Profile) -> String {
    if p.machine.name == "auto" {
        host::hostname()
    } else {
        p.machine.name.clone()
    }
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

pub fn run(a: &BenchArgs) -> anyhow::Result<ExitCode> {
    let root = util::project_root();
    let profile = profile::load(a.config.as_deref(), &root)?;
    let cpu_model = host::cpu_model();
    if let Err(msg) = profile::check_host(&profile, profile::host_arch(), cpu_model.as_deref()) {
        if !a.force {
            bail!(msg);
        }
        eprintln!("warning: {msg} (running anyway: --force)");
    }
    let label = a.label.clone().unwrap_or_else(util::default_label);
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
    let out_path = out_dir
        .join(&machine)
        .join(format!("{}-{label}.json", stamp.compact));
    if out_path.exists() {
        bail!("{} already exists; not overwriting", out_path.display());
    }
    let plan = crate::plan::plan(&profile, a.quick, seed);
    let cpu = resolve_cpu(profile.cpu());
    let est = estimate_secs(&plan);
    eprintln!(
        "profile {} ({}), machine {machine}, label {label}, seed {seed}: {} variant groups x {} runs, {} of memory, {} forks per run, pinned to CPU {cpu}; estimate ~{:.0} min",
        profile.profile,
        profile.source,
        plan.groups.len(),
        plan.runs,
        plan.sizes.mem,
        plan.sizes.iters,
        est / 60.0
    );
    if a.dry_run {
        for (i, g) in plan.groups.iter().enumerate() {
            eprintln!("  group {i}: {}", g.name());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let others = host::pids_named("forkbench", &[]);
    if !others.is_empty() {
        eprintln!(
            "warning: other forkbench processes are running (pids {others:?}); they compete for \
             the CPUs and make the numbers noisy"
        );
    }
    eprintln!("building the release runner ...");
    let bin = util::build_runner()?;
    let mut runner = Release::new(bin, profile.run.nice, cost_model_file(&profile)?);
    runner.wait_quiet = std::time::Duration::from_secs(a.wait_quiet);
    let mut progress = crate::progress::auto();
    let t0 = Instant::now();
    let ex = execute(&plan, &mut runner, cpu, seed, progress.as_mut())?;
    let wall = t0.elapsed().as_secs_f64();
    if ex.runs.is_empty() {
        bail!("no runs were made (every variant was skipped); no result file written");
    }
    let mut file = ResultFile {
        schema: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        machine: machine.clone(),
        label: label.clone(),
        created_utc: stamp.rfc3339,
        git_rev: util::git_rev(),
        seed,
        config: json!({
            "profile": profile,
            "quick": a.quick,
            "forced": a.force,
            "cpu": cpu,
            "plan": {
                "runs": plan.runs,
                "sizes": plan.sizes,
                "groups": plan.groups,
                "order": plan.order,
            },
            "skipped": ex.skipped.iter().map(|(n, w)| json!({"group": n, "reason": w})).collect::<Vec<_>>(),
            "wall_secs": (wall * 10.0).round() / 10.0,
            "waited_for_quiet_secs": (runner.waited.as_secs_f64() * 10.0).round() / 10.0,
            "load": load_summary(&ex.runs).map(|(n, mean, max, over)| json!({
                "runs": n,
                "other_cpus_busy_pct_mean": (mean * 10.0).round() / 10.0,
                "other_cpus_busy_pct_max": max,
                "runs_over_25pct": over,
            })),
        }),
        env: host_env(cpu),
        contexts: Vec::new(),
        runs: Vec::new(),
    };
    // The runs' context indexes already count over the whole list; absorbing it into an empty
    // file keeps them and lets the file's host capture take what the contexts captured beyond it.
    file.absorb(ex.contexts, ex.runs);
    file.save_new(&out_path)
        .with_context(|| format!("saving {}", out_path.display()))?;
    let cases = select::cases(std::slice::from_ref(&file), None, &stats::Policy::default())?;
    println!(
        "{}",
        crate::table::render(&cases, &machine, crate::table::Format::Bench)
    );
    for (n, w) in &ex.skipped {
        println!("skipped {n}: {w}");
    }
    if let Some(w) = load_warning(&file.runs) {
        println!("{w}");
    }
    println!(
        "wall time {}:{:02}; raw samples: {}",
        wall as u64 / 60,
        wall as u64 % 60,
        out_path.display()
    );
    if out_dir == root.join("results") {
        println!("to publish: cargo xtask publish (renders results/{machine}/README.md and plots)");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::mock::Mock;
    use crate::progress::Recorder;

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

    #[test]
    fn busy_machines_are_flagged() {
        let mut runs = execute(
            &crate::plan::plan(&local(), true, 1),
            &mut Mock::default(),
            1,
            1,
            &mut Recorder::default(),
        )
        .unwrap()
        .runs;
        assert_eq!(load_summary(&runs), None);
        let load = |busy: f64| {
            Some(contract::HostLoad {
                other_cpus_busy_pct: Some(busy),
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

    #[test]
    fn estimate_of_the_default_run_fits_ten_minutes() {
        let plan = crate::plan::plan(&local(), false, 1);
        let est = estimate_secs(&plan);
        assert!(est < 600.0, "{est}");
    }
}
