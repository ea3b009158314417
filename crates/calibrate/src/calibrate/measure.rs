//! Measuring a calibration. The real fork times come from a sweep the suite ran (`cargo xtask
//! bench --config sweep`: every layout interleaved round by round, written as a results file);
//! this module reads that file's runs by layout, asks the model for the exact op counts of one
//! fork of each layout (`forkbench counts`) and its measured userspace copy time (`forkbench
//! sim`), and runs the PTE-op microbenchmark, all through typed runner invocations.

use std::collections::BTreeMap;
use std::path::Path;

use contract::{Arch, ModelOrder, RealLayout, Runner, Strategy, Variant};
use results::ResultFile;

use super::cli::CalibrateArgs;
use super::features::huge_pmd_counts;
use super::fit::{FITTED_STRATEGY, LayoutObs, OTHER_STRATEGIES};
use crate::microbench::{PteOpCosts, measure_pte_ops};
use crate::profile::Facts;
use crate::runner::Ops;
use crate::runner::{self, ModelSpec, Timing};
use crate::{CalibrateError, Result};

/// The model order of a uniformly PTE-mapped real layout (`None` for `untouched`,
/// `pmd-order9` and the mixes, which have no single order).
fn model_order(layout: RealLayout) -> Result<Option<ModelOrder>> {
    if matches!(layout, RealLayout::Untouched | RealLayout::PmdOrder9) || layout.is_mixed() {
        return Ok(None);
    }
    layout
        .folio_order()
        .map(|o| {
            u8::try_from(o)
                .ok()
                .and_then(|o| ModelOrder::new(o).ok())
                .ok_or_else(|| {
                    CalibrateError::Input(format!("{layout}: folio order {o} is not 0..=9"))
                })
        })
        .transpose()
}

/// The last CPU this process may run on (the default pinning).
pub fn default_cpu() -> usize {
    hostenv::cpu::allowed_cpus()
        .ok()
        .and_then(|s| s.ids().last())
        .unwrap_or(0)
}

/// What a sweep's results file says about its real runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// Run means (ns) by layout, in the sweep order ([`sweep_rank`]).
    pub layouts: Vec<(RealLayout, Vec<f64>)>,
    /// Measured facts by layout: the median over its runs of the pre-run layout report's
    /// `pfn_breaks` and `far_pfn_jumps`.
    pub facts: BTreeMap<RealLayout, Facts>,
    pub kernel: String,
    pub mem_bytes: u64,
    pub iters: u32,
    pub runs: u32,
    pub mode: contract::Mode,
    pub sched: contract::Sched,
    pub cpu: Option<usize>,
}

/// Read the real runs of a sweep: one kernel, one memory size, one mode, verified layouts.
pub fn sweep_of(file: &ResultFile, path: &Path) -> Result<Sweep> {
    let bad = |why: String| CalibrateError::Input(format!("{}: {why}", path.display()));
    let mut layouts: Vec<(RealLayout, Vec<f64>)> = Vec::new();
    let mut fact_runs: BTreeMap<RealLayout, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    let mut facts = None;
    let mut iters = 0;
    let mut cpu = None;
    for r in &file.runs {
        let Variant::Real(v) = &r.variant else {
            continue;
        };
        if v.unverified {
            return Err(bad(format!(
                "a {} run is marked unverified: its layout was not what it claims",
                v.layout
            )));
        }
        let f = (v.kernel.clone(), v.mem_bytes, v.mode, v.sched);
        match &facts {
            None => facts = Some(f),
            Some(g) if *g != f => {
                return Err(bad(format!(
                    "runs differ in kernel, memory, mode or sched ({g:?} vs {f:?}): one sweep is one condition"
                )));
            }
            _ => {}
        }
        iters = iters.max(r.samples_ns.len() as u32);
        cpu = cpu.or(r.cpu);
        if let Some(c) = file.context_of(r) {
            let h = &c.pre_report["observation"]["histogram"];
            for k in FACTS {
                if let Some(x) = h[k].as_f64() {
                    fact_runs
                        .entry(v.layout)
                        .or_default()
                        .entry((*k).to_string())
                        .or_default()
                        .push(x);
                }
            }
        }
        match layouts.iter_mut().find(|(l, _)| *l == v.layout) {
            Some((_, m)) => m.push(r.mean_ns()),
            None => layouts.push((v.layout, vec![r.mean_ns()])),
        }
    }
    let Some((kernel, mem_bytes, mode, sched)) = facts else {
        return Err(bad("no real-fork runs".into()));
    };
    if !layouts.iter().any(|(l, _)| *l == RealLayout::Untouched) {
        return Err(bad(
            "no `untouched` runs: the fixed per-fork cost needs them".into(),
        ));
    }
    let n_pte = layouts
        .iter()
        .filter(|(l, _)| !matches!(l, RealLayout::Untouched | RealLayout::PmdOrder9))
        .count();
    if n_pte < 3 {
        return Err(bad(format!(
            "{n_pte} PTE-mapped layouts: a fit with leave-one-out needs at least 3"
        )));
    }
    let runs = layouts.iter().map(|(_, m)| m.len()).min().unwrap_or(0) as u32;
    layouts.sort_by_key(|(l, _)| sweep_rank(*l));
    let facts = fact_runs
        .into_iter()
        .map(|(l, m)| {
            (
                l,
                m.into_iter()
                    .filter_map(|(k, v)| Some((k, stats::median(&v)?)))
                    .collect(),
            )
        })
        .collect();
    if runs < 2 {
        return Err(bad("a layout has fewer than 2 runs".into()));
    }
    Ok(Sweep {
        layouts,
        facts,
        kernel,
        mem_bytes,
        iters,
        runs,
        mode,
        sched,
        cpu,
    })
}

/// The layout facts a sweep records per run (from the pre-run layout report's histogram).
pub const FACTS: &[&str] = &["pfn_breaks", "far_pfn_jumps"];

/// Sort key of the sweep's layouts: PTE-mapped by folio size, then `pmd-order9`, the mixes,
/// `untouched`.
pub fn sweep_rank(l: RealLayout) -> (u8, u32) {
    match l {
        RealLayout::PmdOrder9 => (1, 0),
        RealLayout::Mix64k => (2, 0),
        RealLayout::MixPmd => (2, 1),
        RealLayout::Untouched => (3, 0),
        other => (0, other.folio_order().unwrap_or(0)),
    }
}

/// Everything a fit needs.
pub struct Measured {
    pub obs: Vec<LayoutObs>,
    pub micro: PteOpCosts,
    pub sweep: Sweep,
}

/// The strategies whose counts are taken: the fitted one first, then the others it prices.
pub fn strategies() -> Vec<Strategy> {
    let mut v = vec![FITTED_STRATEGY];
    for s in OTHER_STRATEGIES {
        if !v.contains(s) {
            v.push(*s);
        }
    }
    v
}

/// What one fork of a layout copies, as parts of uniform layouts: `(share of the memory, model
/// folio order)`, where `None` is a huge PMD (`copy_huge_pmd`, not walked by the model). The
/// mixes are half one, half the other: their counts are the mean of the two parts' (every
/// feature is additive per page table; only `progress`/resched bookkeeping at block borders is
/// not, and no feature uses it).
pub fn parts(layout: RealLayout) -> Result<Vec<(f64, Option<ModelOrder>)>> {
    let o = |n: u8| ModelOrder::new(n).map_err(|e| CalibrateError::Input(e.to_string()));
    Ok(match layout {
        RealLayout::Untouched => vec![],
        RealLayout::PmdOrder9 => vec![(1.0, None)],
        RealLayout::Mix64k => vec![(0.5, Some(o(0)?)), (0.5, Some(o(4)?))],
        RealLayout::MixPmd => vec![(0.5, None), (0.5, Some(o(9)?))],
        other => vec![(1.0, model_order(other)?)],
    })
}

/// `Σ share × counts` over the parts, rounded to whole ops.
pub fn combine(parts: &[(f64, &Ops)]) -> Ops {
    let mut out: BTreeMap<contract::OpCounter, f64> = BTreeMap::new();
    for (w, ops) in parts {
        for (k, v) in *ops {
            *out.entry(*k).or_default() += w * *v as f64;
        }
    }
    out.into_iter()
        .map(|(k, v)| (k, v.round() as u64))
        .collect()
}

/// The model at one folio order: op counts and measured userspace time, by strategy.
type OrderModel = (BTreeMap<Strategy, Ops>, BTreeMap<Strategy, f64>);

/// Model counts (and, unless `sim_runs` is 0, measured userspace time) for every layout of the
/// sweep, plus the microbenchmark.
pub fn measure(forkbench: &Path, args: &CalibrateArgs, sweep: Sweep) -> Result<Measured> {
    let runner = Runner::new(forkbench);
    let arch = Arch::host().ok_or_else(|| {
        CalibrateError::Input(format!(
            "the model has no engine for this host's arch ({})",
            hostenv::host::arch_name()
        ))
    })?;
    let strategies = strategies();
    eprintln!("calibrate: microbenchmark of PTE load/store/CAS");
    let micro = measure_pte_ops(1 << 18, 15);
    let cpu = args.cpu.or(sweep.cpu).unwrap_or_else(default_cpu);
    let pmd = huge_pmd_counts(sweep.mem_bytes);
    // Per model order: counts and measured time by strategy (each order asked once).
    let mut by_order: BTreeMap<u8, OrderModel> = BTreeMap::new();
    let mut obs = Vec::new();
    for (layout, means) in &sweep.layouts {
        let parts = parts(*layout)?;
        for order in parts.iter().filter_map(|(_, o)| *o) {
            if by_order.contains_key(&order.get()) {
                continue;
            }
            let spec = ModelSpec {
                arch,
                contpte: None,
                order,
                mem: contract::Size(sweep.mem_bytes),
                mode: sweep.mode,
                mapcount: args.mapcount,
            };
            eprintln!("calibrate: model counts, order {order}");
            let counts = runner::counts(&runner, &spec, &strategies)?;
            let mut measured = BTreeMap::new();
            if args.sim_runs > 0 {
                eprintln!("calibrate: model sim, order {order}");
                let timing = Timing {
                    iters: args.sim_iters,
                    runs: args.sim_runs,
                    cpu: Some(cpu),
                };
                let recs = runner::sim(&runner, &spec, &strategies, &timing)?;
                for s in &strategies {
                    let r: Vec<_> = recs
                        .iter()
                        .filter(|r| matches!(&r.variant, Variant::Sim(v) if v.strategy == *s))
                        .cloned()
                        .collect();
                    measured.insert(*s, runner::run_stats(&r).0);
                }
            }
            by_order.insert(order.get(), (counts, measured));
        }
        let mut counts = BTreeMap::new();
        let mut measured = BTreeMap::new();
        if !parts.is_empty() {
            for s in &strategies {
                let mut c = Vec::new();
                let mut m = Some(0.0);
                for (w, o) in &parts {
                    match o {
                        None => {
                            c.push((*w, &pmd));
                            m = None; // the model does not time huge PMDs
                        }
                        Some(o) => {
                            let (oc, om) = &by_order[&o.get()];
                            if let Some(x) = oc.get(s) {
                                c.push((*w, x));
                            }
                            m = m.zip(om.get(s)).map(|(acc, x)| acc + w * x);
                        }
                    }
                }
                // The fitted strategy's counts stand for a huge PMD for every strategy: the
                // thread's strategies do not differ there.
                if c.len() == parts.len() {
                    counts.insert(*s, combine(&c));
                }
                if let Some(m) = m {
                    measured.insert(*s, m);
                }
            }
        }
        obs.push(LayoutObs {
            layout: *layout,
            order: match parts.as_slice() {
                [(_, Some(o))] => Some(*o),
                _ => None,
            },
            real_run_means_ns: means.clone(),
            counts,
            model_measured_ns: measured,
            facts: sweep.facts.get(layout).cloned().unwrap_or_default(),
        });
    }
    Ok(Measured { obs, micro, sweep })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_are_half_one_path_half_the_other() {
        let o = |n| Some(ModelOrder::new(n).unwrap());
        assert_eq!(
            parts(RealLayout::Mix64k).unwrap(),
            vec![(0.5, o(0)), (0.5, o(4))]
        );
        assert_eq!(
            parts(RealLayout::MixPmd).unwrap(),
            vec![(0.5, None), (0.5, o(9))]
        );
        assert_eq!(parts(RealLayout::PmdOrder9).unwrap(), vec![(1.0, None)]);
        assert!(parts(RealLayout::Untouched).unwrap().is_empty());
        assert_eq!(
            parts(RealLayout::Mthp { kb: 128 }).unwrap(),
            vec![(1.0, o(5))]
        );
        let a = Ops::from([(contract::OpCounter::Batches, 262_144)]);
        let b = Ops::from([(contract::OpCounter::Batches, 16_384)]);
        assert_eq!(
            combine(&[(0.5, &a), (0.5, &b)])[&contract::OpCounter::Batches],
            139_264
        );
    }

    #[test]
    fn model_orders_of_layouts() {
        assert_eq!(
            model_order(RealLayout::Mthp { kb: 64 }).unwrap(),
            Some(ModelOrder::new(4).unwrap())
        );
        assert_eq!(model_order(RealLayout::Untouched).unwrap(), None);
        assert_eq!(model_order(RealLayout::PmdOrder9).unwrap(), None);
        assert_eq!(
            model_order(RealLayout::PteOrder9).unwrap(),
            Some(ModelOrder::new(9).unwrap())
        );
    }
}
