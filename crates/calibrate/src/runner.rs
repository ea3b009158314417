//! Spawning the release `forkbench` runner and parsing what it prints: `counts --json` (one
//! object of op counts per strategy), `sim --json` and `real --json` (one
//! [`results::RunRecord`] per line).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use results::RunRecord;

use crate::{CalibrateError, Result};

/// Op counts of one fork, by counter name.
pub type Ops = BTreeMap<String, u64>;

/// What to model: engine and knobs shared by `counts` and `sim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// `x86_64` or `arm64`.
    pub arch: String,
    /// arm64 only: `on`, `off` or `basic`.
    pub contpte: Option<String>,
    /// Folio order 0..=9.
    pub order: u32,
    /// e.g. `1G`.
    pub mem: String,
    /// `fresh` or `steady`.
    pub mode: String,
    /// `per-page`, `per-page+large` or `large-only`.
    pub mapcount: String,
}

impl ModelSpec {
    fn args(&self) -> Vec<String> {
        let mut v = vec![
            "--arch".into(),
            self.arch.clone(),
            "--order".into(),
            self.order.to_string(),
            "--mem".into(),
            self.mem.clone(),
            "--mode".into(),
            self.mode.clone(),
            "--mapcount".into(),
            self.mapcount.clone(),
        ];
        if let Some(c) = &self.contpte {
            v.push("--contpte".into());
            v.push(c.clone());
        }
        v
    }
}

/// Run `bin args…` and return stdout; a non-zero exit is an error carrying stderr.
pub fn run(bin: &Path, args: &[String]) -> Result<String> {
    let cmd = format!("{} {}", bin.display(), args.join(" "));
    let out = Command::new(bin)
        .args(args)
        .output()
        .map_err(|e| CalibrateError::Runner {
            cmd: cmd.clone(),
            msg: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(CalibrateError::Runner {
            cmd,
            msg: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| CalibrateError::Runner {
        cmd,
        msg: e.to_string(),
    })
}

/// Parse `forkbench counts --json` output: strategy → op counts (numeric fields other than the
/// echoed inputs `mem_bytes` and `order`).
pub fn parse_counts(text: &str) -> Result<BTreeMap<String, Ops>> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| CalibrateError::Input(format!("counts output: {e}: {line}")))?;
        let obj = v.as_object().ok_or_else(|| {
            CalibrateError::Input(format!("counts output: not an object: {line}"))
        })?;
        let strategy = obj
            .get("strategy")
            .and_then(|s| s.as_str())
            .ok_or_else(|| CalibrateError::Input(format!("counts output: no strategy: {line}")))?;
        let ops: Ops = obj
            .iter()
            .filter(|(k, _)| k.as_str() != "mem_bytes" && k.as_str() != "order")
            .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
            .collect();
        out.insert(strategy.to_string(), ops);
    }
    Ok(out)
}

/// Parse JSON run records, one per line.
pub fn parse_records(text: &str) -> Result<Vec<RunRecord>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .map_err(|e| CalibrateError::Input(format!("run record: {e}: {l:.200}")))
        })
        .collect()
}

/// `forkbench counts` for `strategies` (comma list).
pub fn counts(bin: &Path, spec: &ModelSpec, strategies: &str) -> Result<BTreeMap<String, Ops>> {
    let mut args = vec!["counts".to_string(), "--strategy".into(), strategies.into()];
    args.extend(spec.args());
    args.push("--json".into());
    parse_counts(&run(bin, &args)?)
}

/// Timing knobs shared by `sim` and `real`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub iters: u32,
    pub runs: u32,
    pub cpu: Option<usize>,
}

impl Timing {
    fn args(&self) -> Vec<String> {
        let mut v = vec![
            "--iters".into(),
            self.iters.to_string(),
            "--runs".into(),
            self.runs.to_string(),
        ];
        if let Some(c) = self.cpu {
            v.push("--cpu".into());
            v.push(c.to_string());
        }
        v
    }
}

/// `forkbench sim` for `strategies` (comma list): one record per (strategy, run).
pub fn sim(bin: &Path, spec: &ModelSpec, strategies: &str, t: &Timing) -> Result<Vec<RunRecord>> {
    let mut args = vec!["sim".to_string(), "--strategy".into(), strategies.into()];
    args.extend(spec.args());
    args.extend(t.args());
    args.push("--json".into());
    parse_records(&run(bin, &args)?)
}

/// `forkbench real` for one layout.
pub fn real(
    bin: &Path,
    layout: &str,
    mem: &str,
    mode: &str,
    sched: &str,
    t: &Timing,
) -> Result<Vec<RunRecord>> {
    let mut args = vec![
        "real".to_string(),
        "--layout".into(),
        layout.into(),
        "--mem".into(),
        mem.into(),
        "--mode".into(),
        mode.into(),
        "--sched".into(),
        sched.into(),
    ];
    args.extend(t.args());
    args.push("--json".into());
    parse_records(&run(bin, &args)?)
}

/// Mean and sample standard deviation of the run means (the thread's unit: one run).
pub fn run_stats(recs: &[RunRecord]) -> (f64, f64) {
    let means: Vec<f64> = recs.iter().map(RunRecord::mean_ns).collect();
    mean_std(&means)
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let s = if v.len() > 1 {
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (m, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_lines() {
        let t = r#"{"arch":"x86_64","batches":1,"mem_bytes":2097152,"order":9,"strategy":"upstream","pte_writes":512}
{"arch":"x86_64","batches":512,"mem_bytes":2097152,"order":9,"strategy":"mm-unstable","pte_writes":512}"#;
        let c = parse_counts(t).unwrap();
        assert_eq!(c["upstream"]["batches"], 1);
        assert_eq!(c["mm-unstable"]["batches"], 512);
        assert!(!c["upstream"].contains_key("mem_bytes"));
        assert!(!c["upstream"].contains_key("order"));
        assert!(parse_counts("{\"batches\":1}").is_err());
    }

    #[test]
    fn mean_std_of_runs() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]), (5.0, 0.0));
    }
}
