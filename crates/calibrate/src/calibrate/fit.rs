//! The fit (pure: no measuring, no I/O): grouped cost terms, NNLS of the real fork times over
//! the model's op counts with rows weighted by 1/real time, leave-one-layout-out
//! cross-validation, the split-batch diagnostic, and the assembled [`CostProfile`].

use std::collections::BTreeMap;

use contract::{ModelOrder, OpCounter, RealLayout, Strategy};

use crate::microbench::PteOpCosts;
use crate::nnls;
use crate::profile::{
    AltFit, CostProfile, CostTerm, CrossValidation, LayoutFit, PROFILE_KIND, PROFILE_SCHEMA,
    Prediction, Settings,
};
use crate::runner::Ops;
use crate::{CalibrateError, Result};

/// Strategy the host kernel runs, and the extra strategy predicted with the fitted costs.
pub const FITTED_STRATEGY: Strategy = Strategy::Upstream;
pub const OTHER_STRATEGY: Strategy = Strategy::MmUnstable;

/// What was observed for one layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutObs {
    pub layout: RealLayout,
    /// Model folio order; None for `untouched`.
    pub order: Option<ModelOrder>,
    pub real_run_means_ns: Vec<f64>,
    /// Op counts of one fork by strategy (empty for `untouched`).
    pub counts: BTreeMap<Strategy, Ops>,
    /// Model measured mean copy time by strategy, ns.
    pub model_measured_ns: BTreeMap<Strategy, f64>,
}

/// Raw counters used for the full-feature rank diagnosis.
pub const RAW_COUNTERS: &[OpCounter] = &[
    OpCounter::PteReads,
    OpCounter::PteWrites,
    OpCounter::PteAtomics,
    OpCounter::RefcountAtomics,
    OpCounter::MapcountAtomics,
    OpCounter::LargeMapcountAtomics,
    OpCounter::RmapCalls,
    OpCounter::Batches,
    OpCounter::ReschedChecks,
    OpCounter::PteTablesAllocated,
];

/// The cost terms: three fitted groups plus three raw PTE operations fixed from `micro`.
pub fn default_terms(micro: &PteOpCosts) -> Vec<CostTerm> {
    let t = |name: &str, ns: f64, source: &str, counters: &[OpCounter], d: &str| CostTerm {
        name: name.into(),
        ns,
        source: source.into(),
        counters: counters.iter().map(|&c| (c, 1.0)).collect(),
        description: d.into(),
    };
    vec![
        t(
            "fixed",
            0.0,
            "fitted",
            &[],
            "per fork: process creation, dup_mmap of the other VMAs, flush_tlb_mm, exit/wait as seen by the timer",
        ),
        t(
            "per_page",
            0.0,
            "fitted",
            &[OpCounter::MapcountAtomics],
            "per copied PTE: the _mapcount atomic plus every per-PTE cost the model does not count (struct page/folio lookups, vm_normal_page, page-table allocation share, cache misses)",
        ),
        t(
            "per_batch",
            0.0,
            "fitted",
            &[OpCounter::Batches],
            "per batch: folio refcount atomic, one rmap call, batch set-up and the _large_mapcount atomic (equal to batches on every calibration layout)",
        ),
        t(
            "pte_read",
            micro.pte_read_ns,
            "microbench",
            &[OpCounter::PteReads],
            "raw PTE load (READ_ONCE), fixed from the microbenchmark",
        ),
        t(
            "pte_write",
            micro.pte_write_ns,
            "microbench",
            &[OpCounter::PteWrites],
            "raw PTE store (WRITE_ONCE), fixed from the microbenchmark",
        ),
        t(
            "pte_atomic",
            micro.pte_atomic_ns,
            "microbench",
            &[OpCounter::PteAtomics],
            "PTE compare-and-swap (wrprotect), fixed from the microbenchmark",
        ),
    ]
}

/// Diagnostic feature set: the per-batch term split into the order-0 single-PTE path
/// (`batches − large_mapcount_atomics`, i.e. batches of small folios) and the large-folio batch
/// path (`large_mapcount_atomics`: one per large-folio batch with the v6.11+ mapcount model).
/// With four layouts it is exactly determined (no residual degrees of freedom).
pub fn split_terms(micro: &PteOpCosts) -> Vec<CostTerm> {
    let mut t = default_terms(micro);
    let i = t
        .iter()
        .position(|x| x.name == "per_batch")
        .expect("per_batch term");
    t[i] = CostTerm {
        name: "per_small_batch".into(),
        ns: 0.0,
        source: "fitted".into(),
        counters: vec![
            (OpCounter::Batches, 1.0),
            (OpCounter::LargeMapcountAtomics, -1.0),
        ],
        description:
            "per single-PTE copy of a small folio (the order-0 path): refcount atomic, rmap call"
                .into(),
    };
    t.insert(
        i + 1,
        CostTerm {
            name: "per_large_batch".into(),
            ns: 0.0,
            source: "fitted".into(),
            counters: vec![(OpCounter::LargeMapcountAtomics, 1.0)],
            description: "per large-folio batch: folio_pte_batch, refcount atomic, rmap call, _large_mapcount atomic".into(),
        },
    );
    t
}

/// Fit the `fitted` terms of `terms` to `rows` (op counts, real ns) by NNLS with rows weighted
/// by 1/real time; fixed terms keep their cost and are subtracted first.
pub fn fit_terms(terms: &[CostTerm], rows: &[(&Ops, f64)]) -> Result<Vec<CostTerm>> {
    let fitted: Vec<usize> = (0..terms.len())
        .filter(|&i| terms[i].source == "fitted")
        .collect();
    if rows.is_empty() || fitted.is_empty() {
        return Err(CalibrateError::Fit("nothing to fit".into()));
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (ops, real) in rows {
        if !(real.is_finite() && *real > 0.0) {
            return Err(CalibrateError::Fit(format!("bad real time {real}")));
        }
        let w = 1.0 / real;
        let known: f64 = terms
            .iter()
            .filter(|t| t.source != "fitted")
            .map(|t| t.ns * t.feature(ops))
            .sum();
        a.push(fitted.iter().map(|&i| w * terms[i].feature(ops)).collect());
        b.push(w * (real - known));
    }
    let sol = nnls::nnls(&a, &b);
    let mut out = terms.to_vec();
    for (k, &i) in fitted.iter().enumerate() {
        out[i].ns = sol.x[k];
    }
    Ok(out)
}

fn predict(terms: &[CostTerm], ops: &Ops) -> f64 {
    terms.iter().map(|t| t.ns * t.feature(ops)).sum()
}

fn counts_of(l: &LayoutObs, strategy: Strategy) -> Option<&Ops> {
    l.counts.get(&strategy)
}

static EMPTY: std::sync::LazyLock<Ops> = std::sync::LazyLock::new(Ops::new);

fn fit_rows(obs: &[LayoutObs], skip: Option<RealLayout>) -> Vec<(&Ops, f64)> {
    obs.iter()
        .filter(|l| Some(l.layout) != skip)
        .map(|l| {
            let ops = counts_of(l, FITTED_STRATEGY).unwrap_or(&EMPTY);
            (ops, stats::mean_sd(&l.real_run_means_ns).0)
        })
        .collect()
}

/// Machine and run facts recorded in the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub host: String,
    pub created_utc: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub tool_version: String,
}

/// Fit, cross-validate and assemble the profile (pure: no measuring, no I/O).
pub fn build_profile(
    obs: &[LayoutObs],
    micro: &PteOpCosts,
    settings: Settings,
    meta: Meta,
) -> Result<CostProfile> {
    let terms = default_terms(micro);
    let costs = fit_terms(&terms, &fit_rows(obs, None))?;
    let mut layouts = Vec::new();
    let mut sq = 0.0;
    for l in obs {
        let ops = counts_of(l, FITTED_STRATEGY).cloned().unwrap_or_default();
        let (real, sd) = stats::mean_sd(&l.real_run_means_ns);
        let fitted = predict(&costs, &ops);
        let rel = fitted / real - 1.0;
        sq += rel * rel;
        layouts.push(LayoutFit {
            layout: l.layout,
            order: l.order,
            real_mean_ns: real,
            real_std_ns: sd,
            real_run_means_ns: l.real_run_means_ns.clone(),
            model_measured_ns: l.model_measured_ns.get(&FITTED_STRATEGY).copied(),
            fitted_ns: fitted,
            residual_ns: fitted - real,
            residual_rel: rel,
            counts: ops,
        });
    }
    let residual_rms_rel = (sq / obs.len().max(1) as f64).sqrt();
    // Full-feature rank: one column per raw counter plus the constant.
    let full: Vec<Vec<f64>> = obs
        .iter()
        .map(|l| {
            let ops = counts_of(l, FITTED_STRATEGY).unwrap_or(&EMPTY);
            let mut row = vec![1.0];
            row.extend(
                RAW_COUNTERS
                    .iter()
                    .map(|c| ops.get(c).copied().unwrap_or(0) as f64),
            );
            row
        })
        .collect();
    let full_feature_rank = (nnls::rank(&full), RAW_COUNTERS.len() + 1);
    // Leave one PTE layout out.
    let mut cross_validation = Vec::new();
    for held in obs.iter().filter(|l| l.order.is_some()) {
        let rows = fit_rows(obs, Some(held.layout));
        let c = fit_terms(&terms, &rows)?;
        let ops = counts_of(held, FITTED_STRATEGY).unwrap_or(&EMPTY);
        let real = stats::mean_sd(&held.real_run_means_ns).0;
        let p = predict(&c, ops);
        cross_validation.push(CrossValidation {
            held_out: held.layout,
            fitted_on: obs
                .iter()
                .filter(|l| l.layout != held.layout)
                .map(|l| l.layout)
                .collect(),
            predicted_ns: p,
            real_ns: real,
            error_rel: p / real - 1.0,
            costs: c
                .iter()
                .filter(|t| t.source == "fitted")
                .map(|t| (t.name.clone(), t.ns))
                .collect(),
        });
    }
    let mut predictions = Vec::new();
    for l in obs.iter().filter(|l| l.order.is_some()) {
        for (s, ops) in &l.counts {
            predictions.push(Prediction {
                strategy: *s,
                layout: l.layout,
                predicted_ns: predict(&costs, ops),
                model_measured_ns: l.model_measured_ns.get(s).copied(),
                counts: ops.clone(),
            });
        }
    }
    let notes = vec![
        format!(
            "Underdetermined as posed: the design matrix with every raw counter as its own column has rank {} for {} columns and {} layouts. Per-PTE counters (PTE loads/stores, _mapcount atomics, page tables) and per-batch counters (refcount atomic, rmap call, batch, _large_mapcount) move almost in lockstep across layouts, so only a constant, a per-PTE and a per-batch cost are identifiable. The fit uses those three grouped features; raw PTE load/store/CAS costs are fixed from a userspace microbenchmark ({} entries, best of {} passes) and are not fitted.",
            full_feature_rank.0, full_feature_rank.1, obs.len(), micro.entries, micro.passes
        ),
        "Rows are weighted by 1/real time (relative least squares); `untouched` (no PTEs) anchors the fixed per-fork term.".into(),
        "Predictions for other strategies (mm-unstable) depend on the microbenchmark costs for the ops that differ (e.g. the second ptep_get per PTE) and on per_batch for the per-PTE refcount/rmap; they are extrapolations, not fits.".into(),
    ];
    let mut alternative_fits = Vec::new();
    let st = split_terms(micro);
    if let Ok(c) = fit_terms(&st, &fit_rows(obs, None)) {
        let residual_rel = obs
            .iter()
            .map(|l| {
                let ops = counts_of(l, FITTED_STRATEGY).unwrap_or(&EMPTY);
                let real = stats::mean_sd(&l.real_run_means_ns).0;
                (l.layout, predict(&c, ops) / real - 1.0)
            })
            .collect();
        alternative_fits.push(AltFit {
            name: "split per-batch".into(),
            costs: c,
            residual_rel,
            note: "per_batch split into the small-folio single-PTE path and the large-folio batch path; four unknowns for four layouts, so it fits exactly and cannot be cross-validated. Diagnostic only: it shows whether a large-folio batch costs more than a single-PTE copy.".into(),
        });
    }
    Ok(CostProfile {
        alternative_fits,
        schema: PROFILE_SCHEMA,
        kind: PROFILE_KIND.into(),
        host: meta.host,
        created_utc: meta.created_utc,
        kernel: meta.kernel,
        arch: meta.arch,
        cpu_model: meta.cpu_model,
        tool_version: meta.tool_version,
        settings,
        costs,
        layouts,
        full_feature_rank,
        residual_rms_rel,
        cross_validation,
        predictions,
        microbench: Some(*micro),
        notes,
    })
}

/// The observations a profile was fitted from (to refit them with this build's fit).
pub fn observations_from_profile(p: &CostProfile) -> Vec<LayoutObs> {
    p.layouts
        .iter()
        .map(|l| {
            let mut counts = BTreeMap::new();
            let mut measured = BTreeMap::new();
            for pr in p.predictions.iter().filter(|x| x.layout == l.layout) {
                counts.insert(pr.strategy, pr.counts.clone());
                if let Some(m) = pr.model_measured_ns {
                    measured.insert(pr.strategy, m);
                }
            }
            LayoutObs {
                layout: l.layout,
                order: l.order,
                real_run_means_ns: l.real_run_means_ns.clone(),
                counts,
                model_measured_ns: measured,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use OpCounter::*;
    use contract::{Mapcount, Mode, Sched, Size};

    fn ops(pairs: &[(OpCounter, u64)]) -> Ops {
        pairs.iter().copied().collect()
    }

    /// Synthetic counts shaped like `forkbench counts --mode steady` for 1 GiB of upstream.
    fn upstream_counts(order: u32) -> Ops {
        let ptes = 262_144u64;
        let batches = ptes >> order;
        ops(&[
            (
                PteReads,
                ptes + if order == 0 || order == 9 { 0 } else { batches },
            ),
            (PteWrites, ptes),
            (PteAtomics, 0),
            (MapcountAtomics, ptes),
            (RefcountAtomics, batches),
            (RmapCalls, batches),
            (Batches, batches),
            (LargeMapcountAtomics, if order > 0 { batches } else { 0 }),
            (PteTablesAllocated, 512),
        ])
    }

    fn micro() -> PteOpCosts {
        PteOpCosts {
            pte_read_ns: 0.5,
            pte_write_ns: 0.5,
            pte_atomic_ns: 6.0,
            entries: 8,
            passes: 1,
        }
    }

    fn synthetic(truth: (f64, f64, f64)) -> Vec<LayoutObs> {
        let m = micro();
        let mut obs = Vec::new();
        for (layout, order) in [
            (RealLayout::Order0, Some(0)),
            (RealLayout::PteOrder9, Some(9)),
            (RealLayout::Mthp { kb: 64 }, Some(4)),
            (RealLayout::Untouched, None),
        ] {
            let c = order.map(upstream_counts).unwrap_or_default();
            let f = |k: OpCounter| c.get(&k).copied().unwrap_or(0) as f64;
            let real = truth.0
                + truth.1 * f(MapcountAtomics)
                + truth.2 * f(Batches)
                + m.pte_read_ns * f(PteReads)
                + m.pte_write_ns * f(PteWrites);
            let mut counts = BTreeMap::new();
            if order.is_some() {
                counts.insert(FITTED_STRATEGY, c.clone());
            }
            obs.push(LayoutObs {
                layout,
                order: order.map(|o| ModelOrder::new(o as u8).unwrap()),
                real_run_means_ns: vec![real * 0.99, real * 1.01],
                counts,
                model_measured_ns: BTreeMap::new(),
            });
        }
        obs
    }

    fn settings() -> Settings {
        Settings {
            mem: Size(1 << 30),
            iters: 1,
            runs: 2,
            cpu: None,
            sched: Sched::Fifo,
            mode: Mode::Steady,
            strategy: FITTED_STRATEGY,
            mapcount: Mapcount::PerPageAndLarge,
            weighting: "relative".into(),
        }
    }

    fn meta() -> Meta {
        Meta {
            host: "t".into(),
            created_utc: "2026-01-01T00:00:00Z".into(),
            kernel: "6.18".into(),
            arch: "x86_64".into(),
            cpu_model: "cpu".into(),
            tool_version: "0".into(),
        }
    }

    #[test]
    fn recovers_exact_synthetic_costs_and_cross_validates_exactly() {
        let obs = synthetic((120_000.0, 45.0, 30.0));
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert!(
            (p.cost("fixed").unwrap() - 120_000.0).abs() < 1e-3,
            "{:?}",
            p.costs
        );
        assert!((p.cost("per_page").unwrap() - 45.0).abs() < 1e-6);
        assert!((p.cost("per_batch").unwrap() - 30.0).abs() < 1e-6);
        assert!(p.residual_rms_rel < 1e-9);
        assert_eq!(p.cross_validation.len(), 3);
        for c in &p.cross_validation {
            assert!(c.error_rel.abs() < 1e-9, "{c:?}");
            assert_eq!(c.fitted_on.len(), 3);
        }
        // Four layouts cannot identify eleven raw-counter costs.
        assert_eq!(p.full_feature_rank, (4, RAW_COUNTERS.len() + 1));
        let r = crate::calibrate::render_report(&p);
        assert!(
            r.contains("| pte-order9/order0 |") && r.contains("cost profile: t"),
            "{r}"
        );
    }

    #[test]
    fn split_fit_separates_small_and_large_batches() {
        // Truth: small-folio copies 30 ns, large-folio batches 100 ns.
        let mut obs = synthetic((120_000.0, 45.0, 30.0));
        for l in obs
            .iter_mut()
            .filter(|l| l.order.is_some_and(|o| o.get() > 0))
        {
            let b = l.counts[&FITTED_STRATEGY][&Batches] as f64;
            for r in l.real_run_means_ns.iter_mut() {
                *r += 70.0 * b;
            }
        }
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        let a = &p.alternative_fits[0];
        let get = |n: &str| a.costs.iter().find(|t| t.name == n).unwrap().ns;
        assert!(
            (get("per_small_batch") - 30.0).abs() < 1e-6,
            "{:?}",
            a.costs
        );
        assert!(
            (get("per_large_batch") - 100.0).abs() < 1e-6,
            "{:?}",
            a.costs
        );
        assert!(a.residual_rel.iter().all(|(_, r)| r.abs() < 1e-9));
        // The grouped fit cannot represent it: cross-validation shows the misfit.
        assert!(p.cross_validation.iter().any(|c| c.error_rel.abs() > 0.05));
    }

    #[test]
    fn negative_per_batch_evidence_is_clamped_to_zero() {
        // Order-9 slower per PTE than order 0 would need a negative per-batch cost.
        let mut obs = synthetic((100_000.0, 40.0, 0.0));
        obs[1].real_run_means_ns = vec![20e6, 20e6];
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert_eq!(p.cost("per_batch").unwrap(), 0.0);
        assert!(p.costs.iter().all(|t| t.ns >= 0.0));
    }

    #[test]
    fn fit_refuses_bad_rows() {
        let terms = default_terms(&micro());
        let o = Ops::new();
        assert!(fit_terms(&terms, &[]).is_err());
        assert!(fit_terms(&terms, &[(&o, f64::NAN)]).is_err());
    }

    #[test]
    fn refit_reconstructs_observations() {
        let obs = synthetic((120_000.0, 45.0, 30.0));
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        let back = observations_from_profile(&p);
        let q = build_profile(&back, &micro(), settings(), meta()).unwrap();
        assert_eq!(p.costs, q.costs);
    }

    #[test]
    fn refitting_a_committed_profile_gives_its_costs() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/calibration");
        let path = crate::profile::newest_profile(&dir, "vm").expect("a committed profile");
        let p = CostProfile::load(&path).unwrap();
        let micro = p.microbench.unwrap();
        let obs = observations_from_profile(&p);
        let meta = Meta {
            host: p.host.clone(),
            created_utc: p.created_utc.clone(),
            kernel: p.kernel.clone(),
            arch: p.arch.clone(),
            cpu_model: p.cpu_model.clone(),
            tool_version: p.tool_version.clone(),
        };
        let q = build_profile(&obs, &micro, p.settings.clone(), meta).unwrap();
        for (a, b) in p.costs.iter().zip(&q.costs) {
            assert_eq!(a.name, b.name);
            assert!(
                (a.ns - b.ns).abs() <= 1e-9 * a.ns.abs().max(1.0),
                "{a:?} vs {b:?}"
            );
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
        for (a, b) in p.layouts.iter().zip(&q.layouts) {
            assert_eq!((a.layout, &a.counts), (b.layout, &b.counts));
            assert!(close(a.fitted_ns, b.fitted_ns), "{a:?} vs {b:?}");
        }
        for (a, b) in p.predictions.iter().zip(&q.predictions) {
            assert_eq!((a.strategy, a.layout), (b.strategy, b.layout));
            assert!(close(a.predicted_ns, b.predicted_ns), "{a:?} vs {b:?}");
        }
        assert_eq!(p.predictions.len(), q.predictions.len());
    }
}
