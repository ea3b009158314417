//! The calibrated cost profile: per-operation costs fitted on one machine against one kernel,
//! with the evidence (layouts, residuals, cross-validation). Saved as JSON under
//! `results/calibration/<host>-<UTC>.json`; loaded by table producers, which print
//! [`CostProfile::caption`] so a table always says which cost profile it used.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::runner::Ops;
use crate::{CalibrateError, Result};

/// Version of the profile JSON.
pub const PROFILE_SCHEMA: u32 = 1;
/// The `kind` tag of a profile file.
pub const PROFILE_KIND: &str = "forkbench-cost-profile";

/// One cost term: `ns × Σ weight·count` (a constant 1 when `counters` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostTerm {
    pub name: String,
    /// Nanoseconds per unit of the term's feature.
    pub ns: f64,
    /// `fitted` (NNLS) or `microbench` (fixed before the fit).
    pub source: String,
    /// Counters (forkbench op-count names) and weights forming the feature.
    pub counters: Vec<(String, f64)>,
    pub description: String,
}

impl CostTerm {
    /// The term's feature value for one fork's op counts.
    pub fn feature(&self, ops: &Ops) -> f64 {
        if self.counters.is_empty() {
            return 1.0;
        }
        self.counters
            .iter()
            .map(|(c, w)| w * ops.get(c).copied().unwrap_or(0) as f64)
            .sum()
    }
}

/// How the calibration was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub mem: String,
    pub iters: u32,
    pub runs: u32,
    pub cpu: Option<usize>,
    pub sched: String,
    pub mode: String,
    /// Model strategy whose counts the real kernel is fitted to.
    pub strategy: String,
    pub mapcount: String,
    /// Rows are weighted by 1/real time, so the fit minimises relative error.
    pub weighting: String,
}

/// One calibration layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutFit {
    /// Real-fork layout (`order0`, `pte-order9`, `mthp-64k`, `untouched`).
    pub layout: String,
    /// Model folio order (None for `untouched`: no PTEs).
    pub order: Option<u32>,
    /// Real fork: mean and sample sd of the run means, ns.
    pub real_mean_ns: f64,
    pub real_std_ns: f64,
    /// Each run's mean, ns.
    pub real_run_means_ns: Vec<f64>,
    /// Model, measured userspace copy time (before calibration), ns per fork.
    pub model_measured_ns: Option<f64>,
    /// Model, fitted costs × counts (after calibration), ns per fork.
    pub fitted_ns: f64,
    /// `fitted − real`, ns and relative.
    pub residual_ns: f64,
    pub residual_rel: f64,
    /// The model's op counts for one fork of this layout (fitted strategy).
    pub counts: Ops,
}

/// Leave-one-out result for one layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    pub held_out: String,
    pub fitted_on: Vec<String>,
    pub predicted_ns: f64,
    pub real_ns: f64,
    /// `predicted / real − 1`.
    pub error_rel: f64,
    pub costs: BTreeMap<String, f64>,
}

/// A calibrated prediction for another strategy on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub strategy: String,
    pub layout: String,
    pub predicted_ns: f64,
    pub model_measured_ns: Option<f64>,
    pub counts: Ops,
}

/// A calibrated cost profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostProfile {
    pub schema: u32,
    pub kind: String,
    pub host: String,
    pub created_utc: String,
    /// `uname -r` of the kernel the real fork ran on.
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub tool_version: String,
    pub settings: Settings,
    pub costs: Vec<CostTerm>,
    pub layouts: Vec<LayoutFit>,
    /// Rank of the design matrix with every raw counter as its own feature, and its width.
    pub full_feature_rank: (usize, usize),
    /// RMS of the relative residuals over the fitted rows.
    pub residual_rms_rel: f64,
    pub cross_validation: Vec<CrossValidation>,
    pub predictions: Vec<Prediction>,
    pub microbench: Option<crate::microbench::PteOpCosts>,
    pub notes: Vec<String>,
    /// Diagnostic fits with other feature sets (not used for predictions).
    #[serde(default)]
    pub alternative_fits: Vec<AltFit>,
}

/// A diagnostic fit with another feature set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AltFit {
    pub name: String,
    pub costs: Vec<CostTerm>,
    /// Relative residual per layout, in layout order.
    pub residual_rel: Vec<(String, f64)>,
    pub note: String,
}

impl CostProfile {
    /// Load and validate a profile file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::util::read(path)?;
        let p: Self = serde_json::from_str(&text).map_err(|source| CalibrateError::Json {
            path: path.to_owned(),
            source,
        })?;
        if p.kind != PROFILE_KIND || p.schema != PROFILE_SCHEMA {
            return Err(CalibrateError::Input(format!(
                "{}: not a cost profile of schema {PROFILE_SCHEMA} (kind {:?}, schema {})",
                path.display(),
                p.kind,
                p.schema
            )));
        }
        Ok(p)
    }

    /// Predicted real fork time (ns) for one fork's op counts.
    pub fn predict(&self, ops: &Ops) -> f64 {
        self.costs.iter().map(|t| t.ns * t.feature(ops)).sum()
    }

    /// Cost of one named term, if present.
    pub fn cost(&self, name: &str) -> Option<f64> {
        self.costs.iter().find(|t| t.name == name).map(|t| t.ns)
    }

    /// The one-line caption for tables computed with this profile.
    pub fn caption(&self) -> String {
        let layouts: Vec<&str> = self.layouts.iter().map(|l| l.layout.as_str()).collect();
        let costs: Vec<String> = self
            .costs
            .iter()
            .map(|t| format!("{} {}", t.name, fmt_ns(t.ns)))
            .collect();
        format!(
            "cost profile: {host} ({arch}, {cpu}), calibrated {when} against Linux {kernel} \
             on real fork() of {layouts} ({mem}, {iters}x{runs}, {mode}); fit rms {rms:.1}%; {costs}",
            host = self.host,
            arch = self.arch,
            cpu = self.cpu_model,
            when = self.created_utc,
            kernel = self.kernel,
            layouts = layouts.join(", "),
            mem = self.settings.mem,
            iters = self.settings.iters,
            runs = self.settings.runs,
            mode = self.settings.mode,
            rms = self.residual_rms_rel * 100.0,
            costs = costs.join(", "),
        )
    }
}

/// Format nanoseconds compactly: `12.3 ns`, `4.56 µs`, `7.89 ms`.
pub fn fmt_ns(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.2} ns")
    }
}

/// Load the calibration profile at `path` and return its caption line.
pub fn caption_for(path: &Path) -> Result<String> {
    Ok(CostProfile::load(path)?.caption())
}

/// The newest profile (by file name, which starts with the host and a UTC stamp) for `host`
/// under `dir`, if any.
pub fn newest_profile(dir: &Path, host: &str) -> Option<std::path::PathBuf> {
    let prefix = format!("{host}-");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    v.sort();
    v.pop()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_profile() -> CostProfile {
        CostProfile {
            schema: PROFILE_SCHEMA,
            kind: PROFILE_KIND.into(),
            host: "box".into(),
            created_utc: "2026-11-25T20:30:00Z".into(),
            kernel: "6.18.0".into(),
            arch: "x86_64".into(),
            cpu_model: "Test CPU".into(),
            tool_version: "0.1.0".into(),
            settings: Settings {
                mem: "1G".into(),
                iters: 100,
                runs: 8,
                cpu: Some(1),
                sched: "fifo".into(),
                mode: "steady".into(),
                strategy: "upstream".into(),
                mapcount: "per-page+large".into(),
                weighting: "relative".into(),
            },
            costs: vec![
                CostTerm {
                    name: "fixed".into(),
                    ns: 100_000.0,
                    source: "fitted".into(),
                    counters: vec![],
                    description: "per fork".into(),
                },
                CostTerm {
                    name: "per_page".into(),
                    ns: 25.0,
                    source: "fitted".into(),
                    counters: vec![("mapcount_atomics".into(), 1.0)],
                    description: "per page".into(),
                },
            ],
            layouts: vec![LayoutFit {
                layout: "order0".into(),
                order: Some(0),
                real_mean_ns: 1.0,
                real_std_ns: 0.0,
                real_run_means_ns: vec![1.0],
                model_measured_ns: None,
                fitted_ns: 1.0,
                residual_ns: 0.0,
                residual_rel: 0.0,
                counts: Ops::new(),
            }],
            full_feature_rank: (3, 10),
            residual_rms_rel: 0.0123,
            cross_validation: vec![],
            predictions: vec![],
            microbench: None,
            notes: vec![],
            alternative_fits: vec![],
        }
    }

    #[test]
    fn caption_names_host_time_kernel_and_costs() {
        let c = sample_profile().caption();
        assert!(c.starts_with("cost profile: box (x86_64, Test CPU), calibrated 2026-11-25T20:30:00Z against Linux 6.18.0"), "{c}");
        assert!(
            c.contains("order0") && c.contains("fit rms 1.2%") && c.contains("per_page 25.00 ns"),
            "{c}"
        );
        assert!(!c.contains('\n'));
    }

    #[test]
    fn predict_sums_terms() {
        let p = sample_profile();
        let ops = Ops::from([("mapcount_atomics".to_string(), 4)]);
        assert_eq!(p.predict(&ops), 100_100.0);
    }

    #[test]
    fn load_round_trips_and_rejects_other_kinds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("box-20261125T203000Z.json");
        let prof = sample_profile();
        std::fs::write(&p, serde_json::to_string(&prof).unwrap()).unwrap();
        assert_eq!(CostProfile::load(&p).unwrap(), prof);
        assert_eq!(caption_for(&p).unwrap(), prof.caption());
        assert_eq!(newest_profile(dir.path(), "box"), Some(p.clone()));
        assert_eq!(newest_profile(dir.path(), "other"), None);
        let mut bad = serde_json::to_value(&prof).unwrap();
        bad["kind"] = "x".into();
        std::fs::write(&p, bad.to_string()).unwrap();
        assert!(CostProfile::load(&p).is_err());
    }
}
