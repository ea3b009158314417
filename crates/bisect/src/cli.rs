//! `cargo xtask bisect` and `forkbench bisect-run`: argument types and the two entry points.
//! Output: a table of every tested revision (n, mean, 95% CI, decision) and the first bad
//! commit; a JSON log of the session under `results/bisect/`. Every argument and the output
//! directory are checked before the first measurement; SIGINT, SIGTERM and SIGHUP end a
//! bisection cleanly (worktrees removed). A `bisect-run` step never exits 1..=127 but for a
//! verdict: its internal errors and panics exit 255, which makes `git bisect run` stop.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use clap::Args;
use contract::Size;
use results::fsio::{self, FsError};
use serde_json::json;

use crate::decide::{Decision, Policy, decide, p_endpoints};
use crate::git::{Worktrees, ensure_clean, rev_range};
use crate::kernel::KernelArgs;
use crate::measure::{ExternalCommand, Metric, WorkspaceMetric, parse_samples, run_shell};
use crate::search::{Config, Outcome, Report, SearchError, bisect};

/// `cargo xtask bisect` arguments.
#[derive(Args, Debug, Clone)]
pub struct BisectArgs {
    /// A revision where the metric is good
    #[arg(long)]
    pub good: String,
    /// A later revision (on the first-parent line) where it is bad
    #[arg(long)]
    pub bad: String,
    /// Workspace metric: sim:ENGINE:STRATEGY:orderN:WHAT (ENGINE x86_64 or arm64[/dis|/ena|/basic];
    /// WHAT time, ns_per_pte, ptes, model_bytes, peak_rss_bytes or an op counter) or
    /// real:LAYOUT:fork; e.g. sim:x86_64:upstream:order9:time,
    /// sim:arm64/dis:fork-batching:order9:ptep_get_raw_reads, real:pte-order9:fork
    #[arg(long, conflicts_with = "cmd", required_unless_present_any = ["cmd", "kernel_tree"])]
    pub metric: Option<String>,
    /// External mode: command run in each revision's checkout; prints one sample per line or
    /// forkbench JSON
    #[arg(long)]
    pub cmd: Option<String>,
    /// External mode: the repository to bisect (default: this workspace)
    #[arg(long, requires = "cmd")]
    pub repo: Option<PathBuf>,
    /// Smallest good→bad change worth bisecting, in percent
    #[arg(long)]
    pub threshold: Option<f64>,
    /// Most runs per revision before it is skipped as unknown
    #[arg(long, default_value_t = 10)]
    pub max_runs: usize,
    /// First runs per probed revision
    #[arg(long, default_value_t = 3)]
    pub min_runs: usize,
    /// Runs per endpoint
    #[arg(long, default_value_t = 6)]
    pub endpoint_runs: usize,
    /// Larger values are better (default: lower is better)
    #[arg(long)]
    pub higher_is_better: bool,
    /// External mode: the metric is deterministic (one run per revision, exact comparison)
    #[arg(long)]
    pub exact: bool,
    /// Significance level of each test
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Memory per model/real run for workspace metrics and kernel mode [default: 64M; 512M
    /// in kernel mode]
    #[arg(long)]
    pub mem: Option<Size>,
    /// Forks per run for workspace metrics and kernel mode [default: 20; 100 in kernel mode]
    #[arg(long)]
    pub iters: Option<u32>,
    /// Directory for the JSON log
    #[arg(long, alias = "log-dir", default_value = "results/bisect")]
    pub out: PathBuf,
    #[command(flatten)]
    pub kernel: KernelArgs,
}

/// What went wrong, with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input, a dirty tree, endpoints that do not differ: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Interrupted: exit 130.
    #[error("interrupted; worktrees removed")]
    Interrupted,
    /// Anything else: exit 1.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// Process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Interrupted => 130,
            CliError::Other(_) => 1,
        }
    }
}

/// `--alpha` must be a significance level a test can reach and still mean something.
fn validate_alpha(alpha: f64) -> Result<(), CliError> {
    if alpha > 0.0 && alpha < 0.5 {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "--alpha must be in (0, 0.5), got {alpha}"
        )))
    }
}

pub(crate) fn validate(a: &BisectArgs) -> Result<(), CliError> {
    if a.min_runs == 0 || a.max_runs < a.min_runs || a.endpoint_runs < 2 {
        return Err(CliError::Usage(format!(
            "need 1 <= --min-runs <= --max-runs and --endpoint-runs >= 2 (got --min-runs {}, --max-runs {}, --endpoint-runs {})",
            a.min_runs, a.max_runs, a.endpoint_runs
        )));
    }
    validate_alpha(a.alpha)?;
    let stray = a.kernel.stray_flags();
    if !stray.is_empty() {
        return Err(CliError::Usage(format!(
            "{} {} --kernel-tree",
            stray.join(", "),
            if stray.len() == 1 { "needs" } else { "need" }
        )));
    }
    if a.iters == Some(0) {
        return Err(CliError::Usage("--iters must be at least 1".into()));
    }
    if a.threshold.is_some_and(|t| !(t.is_finite() && t >= 0.0)) {
        return Err(CliError::Usage(
            "--threshold must be a non-negative percentage".into(),
        ));
    }
    Ok(())
}

/// Run a bisection. `workspace` is this workspace's root (self mode's repository, and where
/// worktrees and the shared target directory go).
pub fn run(a: &BisectArgs, workspace: &Path) -> Result<Report, CliError> {
    validate(a)?;
    if a.kernel.kernel_tree.is_some() {
        return crate::kernel_cli::run(a, workspace);
    }
    let mem = a.mem.unwrap_or(Size(64 << 20));
    let iters = a.iters.unwrap_or(20);
    let metric = a
        .metric
        .as_deref()
        .map(Metric::parse)
        .transpose()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let repo = match (&a.cmd, &a.repo) {
        (Some(_), Some(r)) => r.clone(),
        _ => workspace.to_path_buf(),
    };
    ensure_clean(&repo).map_err(|e| CliError::Usage(e.to_string()))?;
    let revs = rev_range(&repo, &a.good, &a.bad).map_err(|e| CliError::Usage(e.to_string()))?;
    let out_dir = if a.out.is_absolute() {
        a.out.clone()
    } else {
        workspace.join(&a.out)
    };
    ensure_writable(&out_dir, "--out")?;
    let cancelled = watch_signals()?;
    let scratch = workspace.join("target").join("bisect");
    let mut wt = Worktrees::new(&repo, &scratch.join("worktrees"))
        .map_err(|e| CliError::Other(e.to_string()))?;
    let cfg = Config {
        policy: Policy {
            alpha: a.alpha,
            set_aside_slow: false,
        },
        endpoint_runs: a.endpoint_runs,
        min_runs: a.min_runs,
        max_runs: a.max_runs,
        exact: a.exact || metric.as_ref().is_some_and(Metric::exact),
        higher_is_better: a.higher_is_better,
        threshold_pct: a.threshold,
        ..Config::default()
    };
    eprintln!(
        "bisecting {} revisions ({} .. {}), {}",
        revs.len(),
        short(&revs[0].hash),
        short(&revs[revs.len() - 1].hash),
        if cfg.exact {
            "exact metric: one run per revision"
        } else {
            "noisy metric"
        }
    );
    let result = match (&metric, &a.cmd) {
        (Some(m), _) => {
            let mut meas = WorkspaceMetric {
                worktrees: &mut wt,
                metric: m.clone(),
                target_dir: scratch.join("target"),
                mem,
                iters,
                cancelled: cancelled.clone(),
                last_built: None,
            };
            bisect(&revs, &mut meas, &cfg)
        }
        (None, Some(cmd)) => {
            let mut meas = ExternalCommand {
                worktrees: &mut wt,
                cmd: cmd.clone(),
                cancelled: cancelled.clone(),
            };
            bisect(&revs, &mut meas, &cfg)
        }
        (None, None) => return Err(CliError::Usage("give --metric or --cmd".into())),
    };
    wt.remove_all();
    let report = match result {
        Ok(r) => r,
        Err(SearchError::Aborted(_)) if cancelled.load(Ordering::SeqCst) => {
            return Err(CliError::Interrupted);
        }
        Err(
            e @ (SearchError::NoDifference { .. }
            | SearchError::WrongDirection { .. }
            | SearchError::TooFew),
        ) => {
            return Err(CliError::Usage(e.to_string()));
        }
        Err(e) => return Err(CliError::Other(e.to_string())),
    };
    let what = a
        .metric
        .clone()
        .or_else(|| a.cmd.clone())
        .unwrap_or_default();
    print!("{}", render(&report, &what));
    let log = json!({
        "metric": a.metric,
        "cmd": a.cmd,
        "repo": repo,
        "good": a.good,
        "bad": a.bad,
        "config": {
            "alpha": a.alpha, "endpoint_runs": a.endpoint_runs, "min_runs": a.min_runs,
            "max_runs": a.max_runs, "exact": cfg.exact, "higher_is_better": a.higher_is_better,
            "threshold_pct": a.threshold, "mem": mem, "iters": iters,
        },
        "report": report,
    });
    let path = write_log(&out_dir, &what, &log)
        .map_err(|e| CliError::Other(format!("writing the log: {e}")))?;
    println!("log: {}", path.display());
    Ok(report)
}

/// A flag set by SIGINT, SIGTERM or SIGHUP. Children share our process group and get the same
/// Ctrl-C; we only note a signal and let the search unwind, which removes the worktrees. The
/// flag stays registered for the rest of the process, as the search's end is the process's.
pub fn watch_signals() -> Result<Arc<AtomicBool>, CliError> {
    let cancelled = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&cancelled))
            .map_err(|e| CliError::Other(format!("cannot watch for signal {sig}: {e}")))?;
    }
    Ok(cancelled)
}

/// Refuse, before anything is measured, a directory we could not write the result into:
/// create it and a probe file in it (removed at once).
pub(crate) fn ensure_writable(dir: &Path, what: &str) -> Result<(), CliError> {
    static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let probe = dir.join(format!(
        ".write-check-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = fsio::write_new(&probe, b"");
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| {
        let why = match e {
            FsError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        CliError::Usage(format!(
            "{what} {}: cannot write there: {why}",
            dir.display()
        ))
    })
}

pub(crate) fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// The table of tested revisions, in history order, and the answer.
pub fn render(r: &Report, what: &str) -> String {
    let mut rows: Vec<_> = r.tested.iter().collect();
    rows.sort_by_key(|t| t.index);
    let mut s = format!(
        "\nbisect of {what}\n\n| # | commit | subject | n | mean | 95% CI | decision |\n|--:|:--|:--|--:|--:|:--|:--|\n"
    );
    for t in rows {
        let ci = if t.ci.0.is_nan() {
            "-".to_string()
        } else {
            format!("[{:.6e}, {:.6e}]", t.ci.0, t.ci.1)
        };
        let d = t.verdict();
        // A revision skipped before its first sample has no mean.
        let mean = if t.samples.is_empty() || t.mean.is_nan() {
            "-".to_string()
        } else {
            format!("{:.6e}", t.mean)
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            t.index,
            short(&t.rev.hash),
            t.rev.subject.replace('|', "/"),
            t.samples.len(),
            mean,
            ci,
            d.replace('|', "/")
        ));
    }
    s.push_str(&render_outcome(r));
    s
}

/// The answer under a bisection's table: the first bad commit, or the candidates.
pub fn render_outcome(r: &Report) -> String {
    let mut s = String::new();
    match &r.outcome {
        Outcome::Found { index } => {
            let rev = &r.revs[*index];
            s.push_str(&format!(
                "\nfirst bad commit: {} {}\n",
                rev.hash, rev.subject
            ));
        }
        Outcome::Ambiguous { candidates } => {
            s.push_str("\nskipped revisions leave the first bad commit ambiguous; it is one of:\n");
            for &i in candidates {
                s.push_str(&format!("  {} {}\n", r.revs[i].hash, r.revs[i].subject));
            }
        }
    }
    s
}

pub(crate) fn write_log(
    dir: &Path,
    what: &str,
    log: &serde_json::Value,
) -> Result<PathBuf, FsError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tag: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let mut n = 0;
    loop {
        let path = dir.join(format!(
            "{secs}-{tag}{}.json",
            if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            }
        ));
        let bytes = serde_json::to_vec_pretty(log).expect("log serialises");
        match fsio::write_new(&path, &bytes) {
            Ok(()) => return Ok(path),
            Err(FsError::Exists { .. }) if n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// The endpoints' samples `bisect-run` decides against (`--reference`).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Reference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    good: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bad: Option<Vec<f64>>,
}

impl Reference {
    /// `good` or `bad` (clap allows no other).
    fn side_mut(&mut self, which: &str) -> &mut Option<Vec<f64>> {
        if which == "good" {
            &mut self.good
        } else {
            &mut self.bad
        }
    }
}

/// `forkbench bisect-run` arguments: usable as `git bisect run forkbench bisect-run ...`.
#[derive(Args, Debug, Clone)]
pub struct BisectRunArgs {
    /// Command printing one sample per line or forkbench JSON, run in the current directory
    #[arg(long)]
    pub cmd: String,
    /// JSON file holding the endpoints' samples ({"good": [...], "bad": [...]})
    #[arg(long)]
    pub reference: PathBuf,
    /// Record this revision's samples as the good or bad endpoint instead of deciding
    #[arg(long, value_parser = ["good", "bad"])]
    pub record: Option<String>,
    /// Runs when recording an endpoint
    #[arg(long, default_value_t = 6)]
    pub endpoint_runs: usize,
    /// First runs when deciding
    #[arg(long, default_value_t = 3)]
    pub min_runs: usize,
    /// Most runs when deciding before answering "skip" (125)
    #[arg(long, default_value_t = 10)]
    pub max_runs: usize,
    /// Significance level
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
}

/// The exit code that makes `git bisect run` stop the bisection (it reads any other code from
/// 1 to 127 but 125 as "bad", a panic's 101 included).
pub const EXIT_ABORT_BISECT: u8 = 255;

/// Make any panic from now on exit [`EXIT_ABORT_BISECT`] (after the usual panic message), so
/// that a bug in a `git bisect run` step stops the bisection instead of blaming a commit.
pub fn abort_bisect_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("bisect-run: internal error; exiting 255 so that git bisect stops");
        std::process::exit(EXIT_ABORT_BISECT.into());
    }));
}

/// One `git bisect run` step as a process exit code: [`bisect_run`]'s verdict, or
/// [`EXIT_ABORT_BISECT`] after one error line (prefixed with `program`) for an internal error.
/// The caller installs [`abort_bisect_on_panic`] first.
pub fn bisect_run_step(a: &BisectRunArgs, program: &str) -> u8 {
    match bisect_run(a) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: error: {e}");
            EXIT_ABORT_BISECT
        }
    }
}

/// Run one `git bisect run` step. Returns the exit code: 0 good, 1 bad, 125 skip. An `Err` is
/// an internal error (bad arguments, an unreadable or unusable reference, an endpoint that
/// cannot be recorded): the step could not judge this revision at all, and
/// [`bisect_run_step`] exits 255 so that git stops the bisection (any other code from 1 to
/// 127 but 125 would mark the revision bad). Arguments, the reference and (when recording)
/// its directory are checked before the command runs.
pub fn bisect_run(a: &BisectRunArgs) -> Result<u8, CliError> {
    if a.min_runs == 0 || a.max_runs < a.min_runs || a.endpoint_runs < 1 {
        return Err(CliError::Usage(format!(
            "need 1 <= --min-runs <= --max-runs and --endpoint-runs >= 1 (got --min-runs {}, --max-runs {}, --endpoint-runs {})",
            a.min_runs, a.max_runs, a.endpoint_runs
        )));
    }
    validate_alpha(a.alpha)?;
    let here = std::env::current_dir().map_err(|e| CliError::Other(e.to_string()))?;
    let once = || -> Result<Vec<f64>, String> { parse_samples(&run_shell(&here, &a.cmd, &[])?) };
    let mut reference: Reference = match fsio::read(&a.reference) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| {
            CliError::Usage(format!(
                "{}: not a reference file: {e}",
                a.reference.display()
            ))
        })?,
        Err(FsError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && a.record.is_some() =>
        {
            Reference::default()
        }
        Err(e) => return Err(CliError::Usage(e.to_string())),
    };
    if let Some(which) = &a.record {
        let dir = a
            .reference
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        ensure_writable(dir, "--reference")?;
        let mut all = Vec::new();
        for _ in 0..a.endpoint_runs {
            all.extend(once().map_err(CliError::Other)?);
        }
        let recorded = all.len();
        *reference.side_mut(which) = Some(all.clone());
        let bytes = serde_json::to_vec_pretty(&reference)
            .map_err(|e| CliError::Other(format!("cannot encode the reference: {e}")))?;
        // Atomic: the old reference stays whole, and no temporary file is left, when the
        // write fails; the samples measured are printed so that they are not lost.
        fsio::write_replace(&a.reference, &bytes).map_err(|e| {
            CliError::Other(format!(
                "cannot save the {which} samples: {e}; they were {}",
                serde_json::to_string(&all).unwrap_or_default()
            ))
        })?;
        eprintln!(
            "recorded {recorded} samples as {which} in {}",
            a.reference.display()
        );
        return Ok(0);
    }
    let mut side = |k: &str| -> Result<Vec<f64>, CliError> {
        reference.side_mut(k).take().ok_or_else(|| {
            CliError::Usage(format!(
                "{} has no '{k}' samples: record them first with --record {k}",
                a.reference.display()
            ))
        })
    };
    let (good, bad) = (side("good")?, side("bad")?);
    for (k, samples) in [("good", &good), ("bad", &bad)] {
        if samples.is_empty() {
            return Err(CliError::Usage(format!(
                "{}: the '{k}' samples are empty: record them with --record {k}",
                a.reference.display()
            )));
        }
    }
    let p = p_endpoints(&good, &bad);
    if p >= a.alpha {
        return Err(CliError::Usage(format!(
            "{}: the good and bad samples do not differ (p = {p:.3} >= --alpha {}): no step to find",
            a.reference.display(),
            a.alpha
        )));
    }
    let policy = Policy {
        alpha: a.alpha,
        set_aside_slow: false,
    };
    let mut cand = Vec::new();
    let mut runs = 0;
    while runs < a.max_runs {
        match once() {
            Ok(s) => cand.extend(s),
            Err(e) => {
                eprintln!("skip: {e}");
                return Ok(125);
            }
        }
        runs += 1;
        if runs < a.min_runs {
            continue;
        }
        let (d, ev) = decide(&good, &bad, &cand, &policy);
        let _ = writeln!(
            std::io::stderr(),
            "run {runs}: p vs good {:.3}, p vs bad {:.3}, position {:.2} → {d:?}",
            ev.p_vs_good,
            ev.p_vs_bad,
            ev.position
        );
        match d {
            Decision::Good => return Ok(0),
            Decision::Bad => return Ok(1),
            Decision::Unknown if crate::decide::is_deterministic(&[&good, &bad, &cand]) => {
                return Ok(125);
            }
            Decision::Unknown => {}
        }
    }
    Ok(125)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(cmd: &str, reference: &Path, record: Option<&str>) -> Result<u8, CliError> {
        bisect_run(&BisectRunArgs {
            cmd: cmd.into(),
            reference: reference.to_path_buf(),
            record: record.map(String::from),
            endpoint_runs: 3,
            min_runs: 3,
            max_runs: 6,
            alpha: 0.05,
        })
    }

    const GOOD: &str = "printf '100\\n101\\n99\\n102\\n'";
    const BAD: &str = "printf '200\\n201\\n199\\n202\\n'";

    #[test]
    fn records_the_endpoints_then_decides() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("ref.json");
        assert_eq!(step(GOOD, &r, Some("good")).unwrap(), 0);
        assert_eq!(step(BAD, &r, Some("bad")).unwrap(), 0);
        let saved: Reference = serde_json::from_str(&fsio::read(&r).unwrap()).unwrap();
        assert_eq!(saved.good.as_ref().map(Vec::len), Some(12));
        assert_eq!(saved.bad.as_ref().map(|b| b[0]), Some(200.0));
        assert_eq!(step(GOOD, &r, None).unwrap(), 0);
        assert_eq!(step(BAD, &r, None).unwrap(), 1);
        // A revision whose command fails is skipped, not judged.
        assert_eq!(step("exit 3", &r, None).unwrap(), 125);
    }

    /// Every run of the returned command appends a line to `dir/runs`.
    fn counting(dir: &Path) -> String {
        format!("echo x >> {}; echo 7", dir.join("runs").display())
    }

    #[test]
    fn bad_arguments_and_references_are_refused_before_any_run() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = counting(dir.path());
        let r = dir.path().join("ref.json");
        std::fs::write(&r, r#"{"good":[1.0,1.0],"bad":[2.0,2.0]}"#).unwrap();
        let with = |f: &dyn Fn(&mut BisectRunArgs)| {
            let mut a = BisectRunArgs {
                cmd: cmd.clone(),
                reference: r.clone(),
                record: None,
                endpoint_runs: 3,
                min_runs: 3,
                max_runs: 6,
                alpha: 0.05,
            };
            f(&mut a);
            bisect_run(&a)
        };
        let refused = |what: &str, e: Result<u8, CliError>| {
            let e = e.expect_err(what);
            assert!(matches!(e, CliError::Usage(_)), "{what}: {e}");
            assert!(!e.to_string().contains('\n'), "{what}: {e}");
            e.to_string()
        };
        assert!(refused("alpha 2", with(&|a| a.alpha = 2.0)).contains("--alpha"));
        refused("alpha NaN", with(&|a| a.alpha = f64::NAN));
        refused("alpha 0", with(&|a| a.alpha = 0.0));
        refused("min > max", with(&|a| (a.min_runs, a.max_runs) = (5, 2)));
        // Not a regular file: refused at once, not read until memory runs out.
        let zero = refused(
            "/dev/zero",
            with(&|a| a.reference = PathBuf::from("/dev/zero")),
        );
        assert!(zero.contains("not a regular file"), "{zero}");
        // Recording where the reference cannot be written: refused before measuring.
        let unwritable = refused(
            "/proc",
            with(&|a| {
                a.reference = PathBuf::from("/proc/forkbench-ref.json");
                a.record = Some("good".into());
            }),
        );
        assert!(unwritable.contains("cannot write"), "{unwritable}");
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        refused(
            "under a file",
            with(&|a| {
                a.reference = file.join("ref.json");
                a.record = Some("bad".into());
            }),
        );
        // Empty or equal endpoints: nothing to decide against (an empty one used to panic).
        for (text, want) in [
            (r#"{"good":[],"bad":[]}"#, "'good' samples are empty"),
            (r#"{"good":[1.0],"bad":[]}"#, "'bad' samples are empty"),
            (r#"{"good":[5,5,5],"bad":[5,5,5]}"#, "do not differ"),
            (r#"{"good":[0,0],"bad":[0,0]}"#, "do not differ"),
        ] {
            std::fs::write(&r, text).unwrap();
            let e = refused(text, with(&|_| {}));
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(!dir.path().join("runs").exists(), "a run was made");
    }

    #[test]
    fn internal_errors_are_errors_not_verdicts() {
        // `forkbench bisect-run` turns every Err into exit 255 (git stops); none of these may
        // come back as a good/bad/skip answer.
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.json");
        assert!(matches!(
            step(GOOD, &missing, None),
            Err(CliError::Usage(_))
        ));
        let garbage = dir.path().join("garbage.json");
        std::fs::write(&garbage, "not json").unwrap();
        assert!(matches!(
            step(GOOD, &garbage, None),
            Err(CliError::Usage(_))
        ));
        let half = dir.path().join("half.json");
        assert_eq!(step(GOOD, &half, Some("good")).unwrap(), 0);
        let e = step(GOOD, &half, None).unwrap_err();
        assert!(e.to_string().contains("--record bad"), "{e}");
        assert!(matches!(
            step("exit 3", &half, Some("bad")),
            Err(CliError::Other(_))
        ));
    }
}
