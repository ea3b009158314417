//! Turning command output into samples, and the metric names of this workspace
//! (`sim:ARCH:STRATEGY:orderN:WHAT`, `real:LAYOUT:WHAT`) into runner invocations.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use results::{ResultFile, RunRecord};

use crate::git::Worktrees;
use crate::search::{Measure, MeasureError, Rev};

/// Parse a command's stdout: a forkbench result file (run means), JSON run records one per
/// line (run means), or plain numbers one per line.
pub fn parse_samples(stdout: &str) -> Result<Vec<f64>, String> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err("the command printed nothing".into());
    }
    if text.starts_with('{') {
        if let Ok(f) = serde_json::from_str::<ResultFile>(text) {
            return Ok(f.runs.iter().map(RunRecord::mean_ns).collect());
        }
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let r: RunRecord = serde_json::from_str(line)
                .map_err(|e| format!("not a run record or result file: {e}"))?;
            out.push(r.mean_ns());
        }
        return Ok(out);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("'{l}' is not a number"))
        })
        .collect()
}

/// Run `cmd` with `sh -c` in `dir`; stdout on success, the last stderr line on failure.
pub fn run_shell(dir: &Path, cmd: &str, envs: &[(&str, String)]) -> Result<String, String> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(dir);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().map_err(|e| format!("cannot run sh: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("`{cmd}` failed ({}): {last}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo build --release -p forkbench --bin forkbench` in `dir` (with `CARGO_TARGET_DIR` =
/// `target_dir` when given), using `$CARGO` when cargo runs us. Shared by xtask and bisect.
pub fn cargo_build_forkbench(
    dir: &Path,
    target_dir: Option<&Path>,
) -> std::io::Result<std::process::ExitStatus> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(dir).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "forkbench",
        "--bin",
        "forkbench",
    ]);
    if let Some(t) = target_dir {
        c.env("CARGO_TARGET_DIR", t);
    }
    c.status()
}

/// `Abort` once Ctrl-C was seen.
fn check_cancelled(cancelled: &AtomicBool) -> Result<(), MeasureError> {
    if cancelled.load(Ordering::SeqCst) {
        Err(MeasureError::Abort("interrupted".into()))
    } else {
        Ok(())
    }
}

/// External mode: run a user command in a worktree of each revision.
pub struct ExternalCommand<'a> {
    pub worktrees: &'a mut Worktrees,
    pub cmd: String,
    pub cancelled: Arc<AtomicBool>,
}

impl Measure for ExternalCommand<'_> {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
        check_cancelled(&self.cancelled)?;
        let dir = self
            .worktrees
            .checkout(rev)
            .map_err(|e| MeasureError::Abort(e.to_string()))?;
        let out = run_shell(
            &dir,
            &self.cmd,
            &[("FORKBENCH_BISECT_REV", rev.hash.clone())],
        );
        check_cancelled(&self.cancelled)?;
        let out = out.map_err(MeasureError::Skip)?;
        parse_samples(&out).map_err(MeasureError::Skip)
    }
}

/// What a workspace metric measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// The model: `sim:ARCH:STRATEGY:orderN:WHAT`; WHAT is `time`, an op counter
    /// (`ptep_get_raw_reads`, ...) or a run-record `extra` key (`peak_rss_bytes`, ...).
    Sim {
        arch: String,
        contpte: Option<String>,
        strategy: String,
        order: u8,
        what: String,
    },
    /// Real fork: `real:LAYOUT:fork`.
    Real { layout: String },
}

/// A metric name that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad metric '{0}': {1} (examples: sim:x86_64:upstream:order9:time, sim:arm64:fork-batching:order9:ptep_get_raw_reads, real:pte-order9:fork)"
)]
pub struct BadMetric(pub String, pub String);

/// Op counters whose values are deterministic (exact comparison, one run per revision).
pub const COUNTERS: &[&str] = &[
    "ptep_get_calls",
    "ptep_get_raw_reads",
    "pte_reads",
    "pte_writes",
    "pte_atomics",
    "tlbi",
    "tlb_flush_mm",
    "refcount_atomics",
    "mapcount_atomics",
    "large_mapcount_atomics",
    "anon_exclusive_clears",
    "rmap_calls",
    "batches",
    "resched_checks",
    "page_copies",
    "pte_range_calls",
    "pte_range_restarts",
    "lazy_mmu_enters",
    "pte_tables_allocated",
    "rss_flushes",
    "swap_dups",
    "folio_allocs",
];

impl Metric {
    /// Parse a metric name.
    pub fn parse(s: &str) -> Result<Metric, BadMetric> {
        let bad = |why: &str| BadMetric(s.to_string(), why.to_string());
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["sim", arch, strategy, order, what] => {
                let order: u8 = order
                    .strip_prefix("order")
                    .and_then(|o| o.parse().ok())
                    .filter(|&o| o <= 9)
                    .ok_or_else(|| bad("the fourth field must be order0..order9"))?;
                let (arch, contpte) = match *arch {
                    "x86_64" => ("x86_64", None),
                    "arm64" | "arm64-ena" => ("arm64", Some("on")),
                    "arm64-dis" => ("arm64", Some("off")),
                    "arm64-basic" => ("arm64", Some("basic")),
                    _ => return Err(bad("arch must be x86_64, arm64, arm64-dis or arm64-basic")),
                };
                if what.is_empty() {
                    return Err(bad("empty WHAT"));
                }
                Ok(Metric::Sim {
                    arch: arch.into(),
                    contpte: contpte.map(String::from),
                    strategy: strategy.to_string(),
                    order,
                    what: what.to_string(),
                })
            }
            ["real", layout, "fork"] => Ok(Metric::Real {
                layout: layout.to_string(),
            }),
            _ => Err(bad(
                "expected sim:ARCH:STRATEGY:orderN:WHAT or real:LAYOUT:fork",
            )),
        }
    }

    /// Whether the metric is deterministic.
    pub fn exact(&self) -> bool {
        matches!(self, Metric::Sim { what, .. } if COUNTERS.contains(&what.as_str()))
    }

    /// Arguments for the `forkbench` runner (one run).
    pub fn runner_args(&self, mem: &str, iters: u32) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        match self {
            Metric::Sim {
                arch,
                contpte,
                strategy,
                order,
                what,
            } => {
                let counts = self.exact();
                a.push(if counts { "counts" } else { "sim" }.into());
                a.extend(["--arch".into(), arch.clone()]);
                if let Some(c) = contpte {
                    a.extend(["--contpte".into(), c.clone()]);
                }
                a.extend([
                    "--strategy".into(),
                    strategy.clone(),
                    "--order".into(),
                    order.to_string(),
                ]);
                a.extend([
                    "--mem".into(),
                    if counts { "2M".into() } else { mem.to_string() },
                ]);
                if !counts {
                    a.extend([
                        "--iters".into(),
                        iters.to_string(),
                        "--runs".into(),
                        "1".into(),
                    ]);
                }
                a.push("--json".into());
                let _ = what;
            }
            Metric::Real { layout } => {
                a.extend(["real", "--layout", layout, "--mem", mem].map(String::from));
                a.extend([
                    "--iters".into(),
                    iters.to_string(),
                    "--runs".into(),
                    "1".into(),
                    "--json".into(),
                ]);
            }
        }
        a
    }

    /// The metric's value(s) from the runner's stdout.
    pub fn extract(&self, stdout: &str) -> Result<Vec<f64>, String> {
        let line = stdout
            .lines()
            .find(|l| !l.trim().is_empty())
            .ok_or("the runner printed nothing")?;
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("runner output is not JSON: {e}"))?;
        match self {
            Metric::Sim { what, .. } if self.exact() => v[what.as_str()]
                .as_f64()
                .map(|x| vec![x])
                .ok_or_else(|| format!("this revision's runner does not report '{what}'")),
            Metric::Sim { what, .. } if what == "time" => {
                let r: RunRecord =
                    serde_json::from_value(v).map_err(|e| format!("not a run record: {e}"))?;
                Ok(vec![r.mean_ns()])
            }
            Metric::Sim { what, .. } => v["extra"][what.as_str()]
                .as_f64()
                .map(|x| vec![x])
                .ok_or_else(|| format!("this revision's run record has no extra.{what}")),
            Metric::Real { .. } => {
                let r: RunRecord =
                    serde_json::from_value(v).map_err(|e| format!("not a run record: {e}"))?;
                Ok(vec![r.mean_ns()])
            }
        }
    }
}

/// Self mode: build each revision's release runner (into a shared target directory, so
/// dependencies compile once) and measure a workspace metric with it.
pub struct WorkspaceMetric<'a> {
    pub worktrees: &'a mut Worktrees,
    pub metric: Metric,
    pub target_dir: std::path::PathBuf,
    pub mem: String,
    pub iters: u32,
    pub cancelled: Arc<AtomicBool>,
    /// The revision whose runner is in `target_dir` now.
    pub last_built: Option<String>,
}

impl Measure for WorkspaceMetric<'_> {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
        check_cancelled(&self.cancelled)?;
        let dir = self
            .worktrees
            .checkout(rev)
            .map_err(|e| MeasureError::Abort(e.to_string()))?;
        let bin = self.target_dir.join("release").join("forkbench");
        if self.last_built.as_deref() != Some(rev.hash.as_str()) {
            let st = cargo_build_forkbench(&dir, Some(&self.target_dir))
                .map_err(|e| MeasureError::Abort(format!("cannot run cargo: {e}")))?;
            check_cancelled(&self.cancelled)?;
            if !st.success() {
                return Err(MeasureError::Skip(format!("build failed ({st})")));
            }
            self.last_built = Some(rev.hash.clone());
        }
        let out = Command::new(&bin)
            .current_dir(&dir)
            .args(self.metric.runner_args(&self.mem, self.iters))
            .output()
            .map_err(|e| MeasureError::Skip(format!("cannot run {}: {e}", bin.display())))?;
        check_cancelled(&self.cancelled)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(MeasureError::Skip(format!(
                "runner failed: {}",
                err.lines().next().unwrap_or("no message")
            )));
        }
        self.metric
            .extract(&String::from_utf8_lossy(&out.stdout))
            .map_err(MeasureError::Skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_from_numbers_and_records() {
        assert_eq!(
            parse_samples("1.5\n2\n\n3e2\n").unwrap(),
            vec![1.5, 2.0, 300.0]
        );
        assert!(parse_samples("1\nfast\n").unwrap_err().contains("'fast'"));
        assert!(parse_samples("  \n").is_err());
    }

    #[test]
    fn metric_names() {
        let m = Metric::parse("sim:arm64:fork-batching:order9:ptep_get_raw_reads").unwrap();
        assert!(m.exact());
        assert_eq!(
            m.runner_args("64M", 20).join(" "),
            "counts --arch arm64 --contpte on --strategy fork-batching --order 9 --mem 2M --json"
        );
        let t = Metric::parse("sim:x86_64:upstream:order9:time").unwrap();
        assert!(!t.exact());
        assert_eq!(
            t.runner_args("64M", 20).join(" "),
            "sim --arch x86_64 --strategy upstream --order 9 --mem 64M --iters 20 --runs 1 --json"
        );
        assert!(Metric::parse("real:pte-order9:fork").is_ok());
        for bad in [
            "sim:x86_64:upstream:9:time",
            "sim:sparc:upstream:order9:time",
            "real:x",
            "nope",
        ] {
            assert!(Metric::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            m.extract("{\"ptep_get_raw_reads\": 8704}\n").unwrap(),
            vec![8704.0]
        );
    }
}
