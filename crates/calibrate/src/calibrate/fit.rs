//! The fit (pure: no measuring, no I/O): NNLS of the real fork times over the model's op counts,
//! rows weighted by 1/real time (relative error), for every candidate feature set
//! ([`super::features::candidate_sets`]); leave-one-layout-out for each set; the set with the
//! smallest worst held-out error prices the model; a bootstrap over the runs gives its costs'
//! uncertainty; the assembled [`CostProfile`].

use std::collections::BTreeMap;

use contract::{ModelOrder, OpCounter, RealLayout, Strategy};

use super::features::{Candidate, candidate_sets};
use crate::microbench::PteOpCosts;
use crate::nnls;
use crate::profile::{
    CostProfile, CostTerm, CrossValidation, Facts, FeatureSetEval, LayoutFit, PROFILE_KIND,
    PROFILE_SCHEMA, Prediction, Settings,
};
use crate::runner::Ops;
use crate::{CalibrateError, Result};

/// The strategy whose counts the host kernel's times are fitted to: the host runs a v6.18
/// kernel, whose copy path `current` models. The other strategies are priced with its costs.
pub const FITTED_STRATEGY: Strategy = Strategy::Current;
/// Strategies priced with the fitted costs beside the fitted one.
pub const OTHER_STRATEGIES: &[Strategy] = &[Strategy::Upstream, Strategy::MmUnstable];

/// Bootstrap resamples for the costs' uncertainty.
pub const BOOTSTRAP: usize = 400;

/// What was observed for one layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutObs {
    pub layout: RealLayout,
    /// Model folio order; None for `untouched` and for `pmd-order9` (not walked by the model).
    pub order: Option<ModelOrder>,
    pub real_run_means_ns: Vec<f64>,
    /// Op counts of one fork by strategy (derived for `pmd-order9`, empty for `untouched`).
    pub counts: BTreeMap<Strategy, Ops>,
    /// Model measured mean copy time by strategy, ns.
    pub model_measured_ns: BTreeMap<Strategy, f64>,
    /// Measured facts of the real layout (median over its runs): `pfn_breaks`, `far_pfn_jumps`.
    pub facts: Facts,
}

impl LayoutObs {
    fn fitted_counts(&self) -> &Ops {
        static EMPTY: std::sync::LazyLock<Ops> = std::sync::LazyLock::new(Ops::new);
        self.counts.get(&FITTED_STRATEGY).unwrap_or(&EMPTY)
    }

    /// The layout's real fork time: the median of its run means (a slowed stretch of the shared
    /// host moves a mean, not the median).
    pub fn real_ns(&self) -> f64 {
        stats::median(&self.real_run_means_ns).unwrap_or(f64::NAN)
    }
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

/// Fit the `fitted` terms of `terms` to `rows` (op counts, real ns) by NNLS with rows weighted
/// by 1/real time; fixed terms keep their cost and are subtracted first.
pub fn fit_terms(terms: &[CostTerm], rows: &[Row<'_>]) -> Result<Vec<CostTerm>> {
    let fitted: Vec<usize> = (0..terms.len())
        .filter(|&i| terms[i].source == "fitted")
        .collect();
    if rows.is_empty() || fitted.is_empty() {
        return Err(CalibrateError::Fit("nothing to fit".into()));
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (ops, facts, real) in rows {
        if !(real.is_finite() && *real > 0.0) {
            return Err(CalibrateError::Fit(format!("bad real time {real}")));
        }
        let w = 1.0 / real;
        let known: f64 = terms
            .iter()
            .filter(|t| t.source != "fitted")
            .map(|t| t.ns * t.feature_at(ops, facts))
            .sum();
        a.push(
            fitted
                .iter()
                .map(|&i| w * terms[i].feature_at(ops, facts))
                .collect(),
        );
        b.push(w * (real - known));
    }
    let sol = nnls::nnls(&a, &b);
    let mut out = terms.to_vec();
    for (k, &i) in fitted.iter().enumerate() {
        out[i].ns = sol.x[k];
    }
    Ok(out)
}

/// One fit row: a fork's op counts, its layout's facts, its real time (ns).
pub type Row<'a> = (&'a Ops, &'a Facts, f64);

/// Predicted fork time (ns) of one fork's op counts on a layout with `facts`, with `terms`.
pub fn predict(terms: &[CostTerm], ops: &Ops, facts: &Facts) -> f64 {
    terms.iter().map(|t| t.ns * t.feature_at(ops, facts)).sum()
}

/// The fitted-term feature row of a fork.
fn feature_row(terms: &[CostTerm], ops: &Ops, facts: &Facts) -> Vec<f64> {
    terms
        .iter()
        .filter(|t| t.source == "fitted")
        .map(|t| t.feature_at(ops, facts))
        .collect()
}

/// Whether the other rows determine the fitted terms' cost of `held` (its feature row lies in
/// the span of theirs); otherwise its prediction rests on terms no other layout carries.
fn determined(terms: &[CostTerm], others: &[Row<'_>], held: &LayoutObs) -> bool {
    let rows: Vec<Vec<f64>> = others
        .iter()
        .map(|(o, f, _)| feature_row(terms, o, f))
        .collect();
    nnls::in_row_span(
        &rows,
        &feature_row(terms, held.fitted_counts(), &held.facts),
    )
}

fn rows_of(obs: &[LayoutObs], skip: Option<RealLayout>) -> Vec<Row<'_>> {
    obs.iter()
        .filter(|l| Some(l.layout) != skip)
        .map(|l| (l.fitted_counts(), &l.facts, l.real_ns()))
        .collect()
}

/// Leave each layout out in turn: fit on the others, predict it.
pub fn leave_one_out(terms: &[CostTerm], obs: &[LayoutObs]) -> Result<Vec<CrossValidation>> {
    let mut out = Vec::new();
    for held in obs {
        let rows = rows_of(obs, Some(held.layout));
        let c = fit_terms(terms, &rows)?;
        let real = held.real_ns();
        let p = predict(&c, held.fitted_counts(), &held.facts);
        out.push(CrossValidation {
            held_out: held.layout,
            fitted_on: obs
                .iter()
                .filter(|l| l.layout != held.layout)
                .map(|l| l.layout)
                .collect(),
            predicted_ns: p,
            real_ns: real,
            error_rel: p / real - 1.0,
            determined: determined(terms, &rows, held),
            costs: c
                .iter()
                .filter(|t| t.source == "fitted")
                .map(|t| (t.name.clone(), t.ns))
                .collect(),
        });
    }
    Ok(out)
}

/// Worst held-out error of a set over the layouts in `scored` (the selection score; NaN counts
/// as infinite).
pub fn worst_error(cv: &[CrossValidation], scored: &[RealLayout]) -> f64 {
    cv.iter()
        .filter(|c| scored.contains(&c.held_out))
        .map(|c| {
            if c.error_rel.is_finite() {
                c.error_rel.abs()
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// A small deterministic generator (SplitMix64) for the bootstrap, so a refit reproduces it.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sample sd of every fitted cost over `BOOTSTRAP` resamples of each layout's runs.
pub fn bootstrap_sd(terms: &[CostTerm], obs: &[LayoutObs]) -> Result<BTreeMap<String, f64>> {
    let mut rng = SplitMix(0x5EED_F0EC);
    let mut draws: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..BOOTSTRAP {
        let resampled: Vec<LayoutObs> = obs
            .iter()
            .map(|l| {
                let n = l.real_run_means_ns.len();
                LayoutObs {
                    real_run_means_ns: (0..n).map(|_| l.real_run_means_ns[rng.below(n)]).collect(),
                    ..l.clone()
                }
            })
            .collect();
        let c = fit_terms(terms, &rows_of(&resampled, None))?;
        for t in c.iter().filter(|t| t.source == "fitted") {
            draws.entry(t.name.clone()).or_default().push(t.ns);
        }
    }
    Ok(draws
        .into_iter()
        .map(|(k, v)| (k, stats::mean_sd(&v).1))
        .collect())
}

/// Fit every candidate set, cross-validate it, and pick the one with the smallest worst
/// held-out error (ties to the better in-sample fit, then the earlier, simpler set). The score counts the layouts some set can
/// predict from the others, except `untouched`, the only fork without page tables, which
/// anchors the fixed cost; a layout no set can predict says nothing about which set
/// generalises.
pub fn select(
    candidates: &[Candidate],
    obs: &[LayoutObs],
) -> Result<(usize, Vec<FeatureSetEval>, Vec<CostTerm>)> {
    let mut fits = Vec::new();
    for c in candidates {
        let costs = fit_terms(&c.terms, &rows_of(obs, None))?;
        let cv = leave_one_out(&c.terms, obs)?;
        fits.push((costs, cv));
    }
    // `untouched` anchors the fixed cost: another layout "determines" it only where a set
    // cannot tell it from a fork with PMDs, which says nothing about generalising.
    let scored: Vec<RealLayout> = obs
        .iter()
        .map(|l| l.layout)
        .filter(|l| *l != RealLayout::Untouched)
        .filter(|l| {
            fits.iter()
                .any(|(_, cv)| cv.iter().any(|c| c.held_out == *l && c.determined))
        })
        .collect();
    let mut evals = Vec::new();
    let mut all_costs = Vec::new();
    for (c, (costs, cv)) in candidates.iter().zip(fits) {
        let residual_rel = obs
            .iter()
            .map(|l| {
                (
                    l.layout,
                    predict(&costs, l.fitted_counts(), &l.facts) / l.real_ns() - 1.0,
                )
            })
            .collect();
        evals.push(FeatureSetEval {
            name: c.name.clone(),
            idea: c.idea.clone(),
            terms: c.terms.iter().map(|t| t.name.clone()).collect(),
            worst_held_out_rel: worst_error(&cv, &scored),
            scored: scored.clone(),
            residual_rel,
            cross_validation: cv,
            costs: costs
                .iter()
                .filter(|t| t.source == "fitted")
                .map(|t| (t.name.clone(), t.ns))
                .collect(),
        });
        all_costs.push(costs);
    }
    // Ties (a worst error set by a layout no set determines) go to the better in-sample fit,
    // then to the earlier, simpler set.
    let rms = |e: &FeatureSetEval| {
        (e.residual_rel.iter().map(|(_, r)| r * r).sum::<f64>()
            / e.residual_rel.len().max(1) as f64)
            .sqrt()
    };
    let mut best = 0;
    for (i, e) in evals.iter().enumerate() {
        let (w, b) = (e.worst_held_out_rel, evals[best].worst_held_out_rel);
        let tie = (w - b).abs() <= 1e-9 * b.abs().max(1.0);
        if (!tie && w < b) || (tie && rms(e) < rms(&evals[best]) - 1e-9) {
            best = i;
        }
    }
    Ok((best, evals, all_costs.swap_remove(best)))
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
    /// git revision of the tool that measured (`-dirty` when its tree had changes).
    pub tool_rev: Option<String>,
    /// The results file the real times come from, relative to the repository root.
    pub results_file: Option<String>,
}

/// Fit, cross-validate, select and assemble the profile (pure: no measuring, no I/O).
pub fn build_profile(
    obs: &[LayoutObs],
    micro: &PteOpCosts,
    settings: Settings,
    meta: Meta,
) -> Result<CostProfile> {
    let candidates = candidate_sets(micro);
    let (best, feature_sets, mut costs) = select(&candidates, obs)?;
    let chosen = &candidates[best];
    let sd = bootstrap_sd(&chosen.terms, obs)?;
    for t in costs.iter_mut() {
        t.ns_sd = sd.get(&t.name).copied();
    }
    let mut layouts = Vec::new();
    let mut sq = 0.0;
    for l in obs {
        let ops = l.fitted_counts().clone();
        let real = l.real_ns();
        let (_, sd) = stats::mean_sd(&l.real_run_means_ns);
        let fitted = predict(&costs, &ops, &l.facts);
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
            facts: l.facts.clone(),
        });
    }
    let residual_rms_rel = (sq / obs.len().max(1) as f64).sqrt();
    let full: Vec<Vec<f64>> = obs
        .iter()
        .map(|l| {
            let ops = l.fitted_counts();
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
    let cross_validation = feature_sets[best].cross_validation.clone();
    let mut predictions = Vec::new();
    for l in obs.iter().filter(|l| l.order.is_some()) {
        for (s, ops) in &l.counts {
            predictions.push(Prediction {
                strategy: *s,
                layout: l.layout,
                predicted_ns: predict(&costs, ops, &l.facts),
                model_measured_ns: l.model_measured_ns.get(s).copied(),
                counts: ops.clone(),
            });
        }
    }
    let notes = vec![
        format!(
            "Selected \"{}\" of {} candidate feature sets: the smallest worst leave-one-layout-out error ({:.1}%). Every set is fitted by NNLS with rows weighted by 1/real time; a layout's real time is the median of its run means; costs carry the sd of {BOOTSTRAP} bootstrap resamples of the runs.",
            chosen.name,
            candidates.len(),
            feature_sets[best].worst_held_out_rel * 100.0
        ),
        format!(
            "Identifiability: with every raw counter as its own column the design matrix has rank {} for {} columns over {} layouts. Per-page counters move together on every layout, so raw PTE load/store/CAS costs are fixed from a userspace microbenchmark ({} entries, best of {} passes), not fitted.",
            full_feature_rank.0,
            full_feature_rank.1,
            obs.len(),
            micro.entries,
            micro.passes
        ),
        "A held-out layout whose feature row is outside the span of the others' (\"not determined\") is predicted from terms no other layout carries: its error measures that path's own cost, not the fit.".into(),
        "Steady mode: the parent's PTEs are already write-protected and its pages no longer exclusive, so no wrprotect CAS and no AnonExclusive clear is timed; their costs come from the microbenchmark (wrprotect) or are not priced (AnonExclusive).".into(),
    ];
    Ok(CostProfile {
        schema: PROFILE_SCHEMA,
        kind: PROFILE_KIND.into(),
        host: meta.host,
        created_utc: meta.created_utc,
        kernel: meta.kernel,
        arch: meta.arch,
        cpu_model: meta.cpu_model,
        tool_version: meta.tool_version,
        tool_rev: meta.tool_rev,
        results_file: meta.results_file,
        settings,
        feature_set: chosen.name.clone(),
        layout_facts: obs
            .iter()
            .filter_map(|l| Some((l.order?.get(), l.facts.clone())))
            .filter(|(_, f)| !f.is_empty())
            .collect(),
        costs,
        layouts,
        full_feature_rank,
        residual_rms_rel,
        cross_validation,
        feature_sets,
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
            if counts.is_empty() && !l.counts.is_empty() {
                counts.insert(FITTED_STRATEGY, l.counts.clone());
            }
            LayoutObs {
                layout: l.layout,
                order: l.order,
                real_run_means_ns: l.real_run_means_ns.clone(),
                counts,
                model_measured_ns: measured,
                facts: l.facts.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::features::huge_pmd_counts;
    use super::super::features::tests::micro;
    use OpCounter::*;
    use contract::{Mapcount, Mode, Sched, Size};

    fn ops(pairs: &[(OpCounter, u64)]) -> Ops {
        pairs.iter().copied().collect()
    }

    /// Synthetic counts shaped like `forkbench counts --mode steady --mapcount per-page+large`
    /// for 1 GiB of folios of `order`.
    fn counts(order: u32) -> Ops {
        let ptes = 262_144u64;
        let batches = ptes >> order;
        ops(&[
            (PteReads, ptes),
            (PteWrites, ptes),
            (MapcountAtomics, ptes),
            (RefcountAtomics, batches),
            (RmapCalls, batches),
            (Batches, batches),
            (LargeMapcountAtomics, if order > 0 { batches } else { 0 }),
            (PteTablesAllocated, 512),
        ])
    }

    /// A kernel whose costs are: fixed, per table, per page, per small batch, per large
    /// batch, per huge PMD (plus the microbenchmark's PTE ops).
    struct Truth {
        fixed: f64,
        table: f64,
        page: f64,
        small: f64,
        large: f64,
        pmd: f64,
    }

    /// The issue's shape: a large-folio batch costs several times a single-PTE copy, and a
    /// huge PMD and a page table cost apart.
    fn issue_shape() -> Truth {
        Truth {
            fixed: 100_000.0,
            table: 900.0,
            page: 35.0,
            small: 35.0,
            large: 150.0,
            pmd: 600.0,
        }
    }

    fn time(t: &Truth, c: &Ops) -> f64 {
        let f = |k: OpCounter| c.get(&k).copied().unwrap_or(0) as f64;
        let large = f(LargeMapcountAtomics);
        t.fixed
            + t.table * f(PteTablesAllocated)
            + t.page * f(MapcountAtomics)
            + t.small * (f(Batches) - large)
            + t.large * large
            + t.pmd * (f(RmapCalls) - f(Batches))
            + 0.5 * f(PteReads)
            + 0.5 * f(PteWrites)
    }

    fn synthetic(t: &Truth) -> Vec<LayoutObs> {
        let mut obs = Vec::new();
        let mut layouts = vec![(RealLayout::Order0, Some(0))];
        for kb in [16, 32, 64, 128, 256, 512, 1024] {
            let o = RealLayout::Mthp { kb }.folio_order().unwrap();
            layouts.push((RealLayout::Mthp { kb }, Some(o)));
        }
        layouts.push((RealLayout::PteOrder9, Some(9)));
        layouts.push((RealLayout::PmdOrder9, None));
        layouts.push((RealLayout::Untouched, None));
        for (layout, order) in layouts {
            let c = match (layout, order) {
                (RealLayout::PmdOrder9, _) => huge_pmd_counts(1 << 30),
                (_, Some(o)) => counts(o),
                (_, None) => Ops::new(),
            };
            let real = time(t, &c);
            let mut by = BTreeMap::new();
            if !c.is_empty() {
                by.insert(FITTED_STRATEGY, c);
            }
            obs.push(LayoutObs {
                layout,
                order: order
                    .filter(|_| layout != RealLayout::PmdOrder9)
                    .map(|o| ModelOrder::new(o as u8).unwrap()),
                real_run_means_ns: vec![real * 0.99, real, real * 1.01],
                counts: by,
                model_measured_ns: BTreeMap::new(),
                facts: Facts::new(),
            });
        }
        obs
    }

    fn settings() -> Settings {
        Settings {
            mem: Size(1 << 30),
            iters: 1,
            runs: 3,
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
            tool_rev: Some("abc".into()),
            results_file: Some("results/t/x.json".into()),
        }
    }

    #[test]
    fn one_batch_cost_is_selected_when_it_holds() {
        // Small and large batches cost the same: the simplest set predicts every layout.
        let t = Truth {
            fixed: 120_000.0,
            table: 0.0,
            page: 45.0,
            small: 30.0,
            large: 30.0,
            pmd: 30.0,
        };
        // Without pmd-order9 (an rmap call outside any batch, which this set has no term for).
        let obs: Vec<LayoutObs> = synthetic(&t)
            .into_iter()
            .filter(|l| l.layout != RealLayout::PmdOrder9)
            .collect();
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert_eq!(p.feature_set, "one batch cost", "{:#?}", p.feature_sets);
        assert!(
            (p.cost("per_page").unwrap() - 45.0).abs() < 1e-6,
            "{:?}",
            p.costs
        );
        assert!((p.cost("per_batch").unwrap() - 30.0).abs() < 1e-6);
        assert_eq!(p.cross_validation.len(), 10);
        for c in &p.cross_validation {
            // Only `untouched` separates the fixed cost from the per-page one.
            assert_eq!(c.determined, c.held_out != RealLayout::Untouched, "{c:?}");
            if c.determined {
                assert!(c.error_rel.abs() < 1e-6, "{c:?}");
            }
        }
        assert!(p.residual_rms_rel < 1e-9);
        // Identical run means: the bootstrap sd of every fitted cost is tiny relative to it.
        let sd = p.costs.iter().find(|c| c.name == "per_page").unwrap();
        assert!(sd.ns_sd.unwrap() < 1.0, "{sd:?}");
    }

    #[test]
    fn separate_batch_paths_are_selected_when_batches_differ() {
        let t = issue_shape();
        let obs = synthetic(&t);
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert_ne!(p.feature_set, "one batch cost", "{:#?}", p.feature_sets);
        let one = p
            .feature_sets
            .iter()
            .find(|e| e.name == "one batch cost")
            .unwrap();
        let chosen = p
            .feature_sets
            .iter()
            .find(|e| e.name == p.feature_set)
            .unwrap();
        assert!(chosen.worst_held_out_rel < one.worst_held_out_rel);
        // In-sample the chosen set reproduces every layout.
        for l in &p.layouts {
            assert!(l.residual_rel.abs() < 1e-6, "{l:?}");
        }
        // Every mTHP size is predicted from the others.
        for c in p
            .cross_validation
            .iter()
            .filter(|c| matches!(c.held_out, RealLayout::Mthp { .. }))
        {
            assert!(c.determined && c.error_rel.abs() < 1e-6, "{c:?}");
        }
        // order0 is the only layout with single-PTE copies: held out, nothing determines it.
        let o0 = p
            .cross_validation
            .iter()
            .find(|c| c.held_out == RealLayout::Order0)
            .unwrap();
        assert!(!o0.determined, "{o0:?}");
    }

    #[test]
    fn locality_and_the_mixes_determine_order0() {
        // A host where order-0 pages are physically scattered: every break in PFN order costs
        // 100 ns. The mixes share one path each with another layout.
        let t = Truth {
            fixed: 100_000.0,
            table: 900.0,
            page: 30.0,
            small: 35.0,
            large: 150.0,
            pmd: 600.0,
        };
        let mut obs = synthetic(&t);
        let half = |a: &Ops, b: &Ops| -> Ops {
            let mut out = Ops::new();
            for (k, v) in a.iter().chain(b.iter()) {
                *out.entry(*k).or_default() += v / 2;
            }
            out
        };
        let c0 = counts(0);
        let c4 = counts(4);
        let c9 = counts(9);
        let pmd = huge_pmd_counts(1 << 30);
        for (layout, c) in [
            (RealLayout::Mix64k, half(&c0, &c4)),
            (RealLayout::MixPmd, half(&pmd, &c9)),
        ] {
            obs.push(LayoutObs {
                layout,
                order: None,
                real_run_means_ns: vec![time(&t, &c); 3],
                counts: BTreeMap::from([(FITTED_STRATEGY, c)]),
                model_measured_ns: BTreeMap::new(),
                facts: Facts::new(),
            });
        }
        let breaks = |l: RealLayout| match l {
            RealLayout::Order0 => 80_000.0,
            RealLayout::Mix64k => 70_000.0,
            RealLayout::Untouched | RealLayout::PmdOrder9 => 0.0,
            _ => 300.0,
        };
        for l in obs.iter_mut() {
            let b = breaks(l.layout);
            l.facts.insert("pfn_breaks".into(), b);
            for r in l.real_run_means_ns.iter_mut() {
                *r += 100.0 * b;
            }
        }
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        // Both sets with tables and locality span these layouts exactly; the earlier wins.
        assert_eq!(
            p.feature_set, "shared rmap call + large extra + tables + locality",
            "{:#?}",
            p.feature_sets
        );
        assert!((p.cost("per_pfn_break").unwrap() - 100.0).abs() < 1e-3);
        for c in &p.cross_validation {
            if c.held_out != RealLayout::Untouched {
                assert!(c.determined && c.error_rel.abs() < 1e-6, "{c:?}");
            }
        }
        // The profile keeps each order's facts, so strategies are priced with them.
        assert_eq!(p.layout_facts[&0]["pfn_breaks"], 80_000.0);
        let o0 = counts(0);
        let order0 = Some(ModelOrder::new(0).unwrap());
        assert!((p.predict_at(&o0, order0) - p.predict(&o0) - 100.0 * 80_000.0).abs() < 1e-3);
    }

    #[test]
    fn selection_takes_the_smallest_worst_error() {
        let cv = |e: &[f64]| -> Vec<CrossValidation> {
            e.iter()
                .map(|&x| CrossValidation {
                    held_out: RealLayout::Order0,
                    fitted_on: vec![],
                    predicted_ns: 1.0 + x,
                    real_ns: 1.0,
                    error_rel: x,
                    determined: true,
                    costs: BTreeMap::new(),
                })
                .collect()
        };
        let all = [RealLayout::Order0];
        assert_eq!(worst_error(&cv(&[0.05, -0.2, 0.1]), &all), 0.2);
        assert_eq!(worst_error(&cv(&[f64::NAN]), &all), f64::INFINITY);
        assert_eq!(worst_error(&[], &all), 0.0);
        // Layouts outside the scored set do not count.
        assert_eq!(worst_error(&cv(&[0.05, -0.2]), &[]), 0.0);
    }

    #[test]
    fn negative_costs_are_clamped_to_zero() {
        // Order-9 slower per PTE than order 0 would need a negative per-batch cost.
        let t = Truth {
            fixed: 100_000.0,
            table: 0.0,
            page: 40.0,
            small: 0.0,
            large: 0.0,
            pmd: 0.0,
        };
        let mut obs = synthetic(&t);
        let i = obs
            .iter()
            .position(|l| l.layout == RealLayout::PteOrder9)
            .unwrap();
        obs[i].real_run_means_ns = vec![20e6, 20e6];
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert!(p.costs.iter().all(|t| t.ns >= 0.0));
        for e in &p.feature_sets {
            assert!(e.costs.values().all(|&x| x >= 0.0), "{e:?}");
        }
    }

    #[test]
    fn fit_refuses_bad_rows() {
        let terms = candidate_sets(&micro()).remove(0).terms;
        let o = Ops::new();
        assert!(fit_terms(&terms, &[]).is_err());
        assert!(fit_terms(&terms, &[(&o, &Facts::new(), f64::NAN)]).is_err());
    }

    #[test]
    fn refit_reconstructs_observations_and_the_bootstrap() {
        let t = issue_shape();
        let mut obs = synthetic(&t);
        for (i, l) in obs.iter_mut().enumerate() {
            l.real_run_means_ns[0] *= 1.0 + 0.01 * i as f64;
        }
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        let q =
            build_profile(&observations_from_profile(&p), &micro(), settings(), meta()).unwrap();
        assert_eq!(p.costs, q.costs);
        assert_eq!(p.feature_sets, q.feature_sets);
    }

    #[test]
    fn refitting_the_committed_profile_gives_its_costs() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/calibration");
        let path = crate::profile::newest_profile(&dir, "vm").expect("a committed profile");
        let p = CostProfile::load(&path).unwrap();
        let micro = p.microbench.unwrap();
        let meta = Meta {
            host: p.host.clone(),
            created_utc: p.created_utc.clone(),
            kernel: p.kernel.clone(),
            arch: p.arch.clone(),
            cpu_model: p.cpu_model.clone(),
            tool_version: p.tool_version.clone(),
            tool_rev: p.tool_rev.clone(),
            results_file: p.results_file.clone(),
        };
        let q = build_profile(
            &observations_from_profile(&p),
            &micro,
            p.settings.clone(),
            meta,
        )
        .unwrap();
        assert_eq!(p.feature_set, q.feature_set);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
        for (a, b) in p.costs.iter().zip(&q.costs) {
            assert_eq!(a.name, b.name);
            assert!(close(a.ns, b.ns), "{a:?} vs {b:?}");
        }
        for (a, b) in p.cross_validation.iter().zip(&q.cross_validation) {
            assert_eq!(a.held_out, b.held_out);
            assert!(close(a.error_rel, b.error_rel), "{a:?} vs {b:?}");
        }
        assert_eq!(p.predictions.len(), q.predictions.len());
    }
}
