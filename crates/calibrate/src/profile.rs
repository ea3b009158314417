//! The calibrated cost profile: per-operation costs fitted on one machine against one kernel,
//! with the evidence (layouts, residuals, cross-validation). Saved as JSON under
//! `results/calibration/<host>-<UTC>.json`; loaded by table producers, which print
//! [`CostProfile::caption`] so a table always says which cost profile it used.

use std::collections::BTreeMap;
use std::path::Path;

use contract::{Mapcount, Mode, ModelOrder, OpCounter, RealLayout, Sched, Size, Strategy};
use serde::{Deserialize, Serialize};

use crate::runner::Ops;
use crate::{CalibrateError, Result};

/// Version of the profile JSON.
pub const PROFILE_SCHEMA: u32 = 2;
/// The `kind` tag of a profile file.
pub const PROFILE_KIND: &str = "forkbench-cost-profile";

/// One cost term: `ns × Σ weight·count` (a constant 1 when `counters` is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostTerm {
    pub name: String,
    /// Nanoseconds per unit of the term's feature.
    pub ns: f64,
    /// Its uncertainty: sd over bootstrap resamples of the runs (fitted terms of a profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_sd: Option<f64>,
    /// `fitted` (NNLS) or `microbench` (fixed before the fit).
    pub source: String,
    /// Op counters and weights forming the feature.
    pub counters: Vec<(OpCounter, f64)>,
    /// Measured facts of the layout (not op counts) and weights forming the feature, e.g.
    /// `pfn_breaks`: where the struct pages fork walks stop being consecutive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facts: Vec<(String, f64)>,
    pub description: String,
}

/// Measured facts of one layout on one host (`pfn_breaks`, `far_pfn_jumps`), by name.
pub type Facts = BTreeMap<String, f64>;

impl CostTerm {
    /// The term's feature value for one fork's op counts (facts of the layout count 0).
    pub fn feature(&self, ops: &Ops) -> f64 {
        self.feature_at(ops, &Facts::new())
    }

    /// The term's feature value for one fork's op counts on a layout with `facts`.
    pub fn feature_at(&self, ops: &Ops, facts: &Facts) -> f64 {
        if self.counters.is_empty() && self.facts.is_empty() {
            return 1.0;
        }
        let c: f64 = self
            .counters
            .iter()
            .map(|(c, w)| w * ops.get(c).copied().unwrap_or(0) as f64)
            .sum();
        let f: f64 = self
            .facts
            .iter()
            .map(|(k, w)| w * facts.get(k).copied().unwrap_or(0.0))
            .sum();
        c + f
    }
}

/// How the calibration was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub mem: Size,
    pub iters: u32,
    pub runs: u32,
    pub cpu: Option<usize>,
    pub sched: Sched,
    pub mode: Mode,
    /// Model strategy whose counts the real kernel is fitted to.
    pub strategy: Strategy,
    pub mapcount: Mapcount,
    /// Rows are weighted by 1/real time, so the fit minimises relative error.
    pub weighting: String,
}

/// One calibration layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutFit {
    /// Real-fork layout (`order0`, `pte-order9`, `mthp-64k`, `untouched`).
    pub layout: RealLayout,
    /// Model folio order (None for `untouched`: no PTEs).
    pub order: Option<ModelOrder>,
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
    /// Measured facts of the real layout (median over its runs).
    #[serde(default)]
    pub facts: Facts,
}

/// Leave-one-out result for one layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrossValidation {
    pub held_out: RealLayout,
    pub fitted_on: Vec<RealLayout>,
    pub predicted_ns: f64,
    pub real_ns: f64,
    /// `predicted / real − 1`.
    pub error_rel: f64,
    /// Whether the other layouts determine every fitted term this layout uses (its feature row
    /// is in the span of theirs); if not, it runs a path no other layout exercises.
    pub determined: bool,
    pub costs: BTreeMap<String, f64>,
}

/// One candidate feature set: its fit and its leave-one-layout-out errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSetEval {
    pub name: String,
    /// What the set assumes.
    pub idea: String,
    /// Its terms (fitted and microbenchmark-fixed).
    pub terms: Vec<String>,
    /// Fitted costs on every layout, ns.
    pub costs: BTreeMap<String, f64>,
    /// In-sample relative residual per layout.
    pub residual_rel: Vec<(RealLayout, f64)>,
    pub cross_validation: Vec<CrossValidation>,
    /// The selection score: the largest |held-out error| over `scored`.
    pub worst_held_out_rel: f64,
    /// The layouts the score counts: those some candidate set predicts from the others.
    pub scored: Vec<RealLayout>,
}

/// A calibrated prediction for another strategy on this machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub strategy: Strategy,
    pub layout: RealLayout,
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
    /// git revision of the tool that measured (`-dirty` when its tree had changes).
    #[serde(default)]
    pub tool_rev: Option<String>,
    /// The results file of the sweep the real times come from, relative to the repository root.
    #[serde(default)]
    pub results_file: Option<String>,
    pub settings: Settings,
    /// The candidate feature set whose costs these are.
    pub feature_set: String,
    /// Per model folio order: the measured facts of this host's calibration layout of that
    /// order (e.g. `order0`'s `pfn_breaks`), so a prediction for any strategy at that order
    /// carries the layout's locality cost ([`CostProfile::predict_at`]).
    #[serde(default)]
    pub layout_facts: BTreeMap<u8, Facts>,
    pub costs: Vec<CostTerm>,
    pub layouts: Vec<LayoutFit>,
    /// Rank of the design matrix with every raw counter as its own feature, and its width.
    pub full_feature_rank: (usize, usize),
    /// RMS of the relative residuals over the fitted rows.
    pub residual_rms_rel: f64,
    /// Leave-one-layout-out of the selected feature set.
    pub cross_validation: Vec<CrossValidation>,
    /// Every candidate feature set, the selected one included.
    pub feature_sets: Vec<FeatureSetEval>,
    pub predictions: Vec<Prediction>,
    pub microbench: Option<crate::microbench::PteOpCosts>,
    pub notes: Vec<String>,
}

impl CostProfile {
    /// Load and validate a profile file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = results::fsio::read(path)?;
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

    /// Predicted real fork time (ns) for one fork's op counts, without layout facts.
    pub fn predict(&self, ops: &Ops) -> f64 {
        crate::calibrate::fit::predict(&self.costs, ops, &Facts::new())
    }

    /// Predicted real fork time (ns) for one fork's op counts at folio `order`, with the facts
    /// this host's calibration layout of that order showed (none when it had no such layout).
    pub fn predict_at(&self, ops: &Ops, order: Option<ModelOrder>) -> f64 {
        let none = Facts::new();
        let facts = order
            .and_then(|o| self.layout_facts.get(&o.get()))
            .unwrap_or(&none);
        crate::calibrate::fit::predict(&self.costs, ops, facts)
    }

    /// Cost of one named term, if present.
    pub fn cost(&self, name: &str) -> Option<f64> {
        self.costs.iter().find(|t| t.name == name).map(|t| t.ns)
    }

    /// The one-line caption for tables computed with this profile.
    pub fn caption(&self) -> String {
        let layouts: Vec<String> = self.layouts.iter().map(|l| l.layout.to_string()).collect();
        let costs: Vec<String> = self
            .costs
            .iter()
            .map(|t| match t.ns_sd {
                Some(sd) => format!("{} {} ± {}", t.name, fmt_cost_ns(t.ns), fmt_cost_ns(sd)),
                None => format!("{} {}", t.name, fmt_cost_ns(t.ns)),
            })
            .collect();
        let rev = self
            .tool_rev
            .as_deref()
            .map_or(String::new(), |r| format!(", forkbench {r}"));
        format!(
            "cost profile: {host} ({arch}, {cpu}), calibrated {when} against Linux {kernel}{rev} \
             on real fork() of {layouts} ({mem}, {iters}x{runs}, {mode}); feature set \"{set}\", \
             fit rms {rms:.1}%; {costs}",
            set = self.feature_set,
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

/// A per-operation cost: two decimals below 1 µs, where sub-ns PTE loads and tens-of-ns
/// atomics both matter (`0.39 ns`, `32.31 ns`); [`contract::fmt_ns`] from 1 µs up.
pub fn fmt_cost_ns(ns: f64) -> String {
    if ns.is_finite() && ns.abs() < 1e3 {
        format!("{ns:.2} ns")
    } else {
        contract::fmt_ns(ns)
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
            tool_rev: Some("abc1234".into()),
            results_file: None,
            feature_set: "test set".into(),
            layout_facts: BTreeMap::new(),
            settings: Settings {
                mem: Size(1 << 30),
                iters: 100,
                runs: 8,
                cpu: Some(1),
                sched: Sched::Fifo,
                mode: Mode::Steady,
                strategy: Strategy::Upstream,
                mapcount: Mapcount::PerPageAndLarge,
                weighting: "relative".into(),
            },
            costs: vec![
                CostTerm {
                    name: "fixed".into(),
                    ns: 100_000.0,
                    ns_sd: None,
                    source: "fitted".into(),
                    counters: vec![],
                    facts: vec![],
                    description: "per fork".into(),
                },
                CostTerm {
                    name: "per_page".into(),
                    ns: 25.0,
                    ns_sd: Some(1.5),
                    source: "fitted".into(),
                    counters: vec![(OpCounter::MapcountAtomics, 1.0)],
                    facts: vec![],
                    description: "per page".into(),
                },
            ],
            layouts: vec![LayoutFit {
                layout: RealLayout::Order0,
                order: Some(ModelOrder::new(0).unwrap()),
                real_mean_ns: 1.0,
                real_std_ns: 0.0,
                real_run_means_ns: vec![1.0],
                model_measured_ns: None,
                fitted_ns: 1.0,
                residual_ns: 0.0,
                residual_rel: 0.0,
                counts: Ops::new(),
                facts: Facts::new(),
            }],
            full_feature_rank: (3, 10),
            residual_rms_rel: 0.0123,
            cross_validation: vec![],
            feature_sets: vec![],
            predictions: vec![],
            microbench: None,
            notes: vec![],
        }
    }

    #[test]
    fn caption_names_host_time_kernel_and_costs() {
        let c = sample_profile().caption();
        assert!(c.starts_with("cost profile: box (x86_64, Test CPU), calibrated 2026-11-25T20:30:00Z against Linux 6.18.0"), "{c}");
        assert!(
            c.contains("order0")
                && c.contains("fit rms 1.2%")
                && c.contains("per_page 25.00 ns ± 1.50 ns")
                && c.contains("Linux 6.18.0, forkbench abc1234")
                && c.contains("feature set \"test set\""),
            "{c}"
        );
        assert!(!c.contains('\n'));
    }

    #[test]
    fn costs_keep_two_decimals_below_a_microsecond() {
        assert_eq!(fmt_cost_ns(0.386), "0.39 ns");
        assert_eq!(fmt_cost_ns(32.314), "32.31 ns");
        assert_eq!(fmt_cost_ns(68_911.5), "68.91 µs");
    }

    #[test]
    fn committed_profiles_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/calibration");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                let prof = CostProfile::load(&p).unwrap_or_else(|e| panic!("{e}"));
                assert!(!prof.costs.is_empty() && !prof.layouts.is_empty());
                n += 1;
            }
        }
        assert!(n > 0, "no profile under {}", dir.display());
    }

    #[test]
    fn predict_sums_terms() {
        let p = sample_profile();
        let ops = Ops::from([(OpCounter::MapcountAtomics, 4)]);
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
