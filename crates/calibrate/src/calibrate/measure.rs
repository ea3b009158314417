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
use crate::runner::{self, ModelSpec, Timing};
use crate::{CalibrateError, Result};

/// mTHP sizes (KiB) the kernel offers, from /sys/kernel/mm/transparent_hugepage/hugepages-*kB.
pub fn mthp_sizes_kib(thp_dir: &Path) -> Vec<u64> {
    hostenv::prereq::thp_sizes(thp_dir)
        .into_iter()
        .map(|(kb, _)| kb)
        .collect()
}

/// Folio order of an mTHP size with 4 KiB pages.
pub fn order_of_kib(kib: u64) -> Option<u32> {
    (kib >= 4 && kib.is_power_of_two()).then(|| (kib / 4).trailing_zeros())
}

/// The model order of a PTE-mapped real layout (`None` for `untouched` and `pmd-order9`,
/// which the model does not walk).
fn model_order(layout: RealLayout) -> Result<Option<ModelOrder>> {
    if matches!(layout, RealLayout::Untouched | RealLayout::PmdOrder9) {
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
    /// Run means (ns) by layout, in the file's layout order of first appearance.
    pub layouts: Vec<(RealLayout, Vec<f64>)>,
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
    if runs < 2 {
        return Err(bad("a layout has fewer than 2 runs".into()));
    }
    Ok(Sweep {
        layouts,
        kernel,
        mem_bytes,
        iters,
        runs,
        mode,
        sched,
        cpu,
    })
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
    let mut obs = Vec::new();
    for (layout, means) in &sweep.layouts {
        let order = model_order(*layout)?;
        let mut o = LayoutObs {
            layout: *layout,
            order,
            real_run_means_ns: means.clone(),
            counts: BTreeMap::new(),
            model_measured_ns: BTreeMap::new(),
        };
        if *layout == RealLayout::PmdOrder9 {
            o.counts
                .insert(FITTED_STRATEGY, huge_pmd_counts(sweep.mem_bytes));
        }
        if let Some(order) = order {
            let spec = ModelSpec {
                arch,
                contpte: None,
                order,
                mem: contract::Size(sweep.mem_bytes),
                mode: sweep.mode,
                mapcount: args.mapcount,
            };
            eprintln!("calibrate: model counts, order {order}");
            o.counts = runner::counts(&runner, &spec, &strategies)?;
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
                    o.model_measured_ns.insert(*s, runner::run_stats(&r).0);
                }
            }
        }
        obs.push(o);
    }
    Ok(Measured { obs, micro, sweep })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mthp_detection_and_orders() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "hugepages-2048kB",
            "hugepages-32kB",
            "hugepages-16kB",
            "other",
        ] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
            std::fs::write(dir.path().join(n).join("enabled"), "always [never]\n").unwrap();
        }
        assert_eq!(mthp_sizes_kib(dir.path()), vec![16, 32, 2048]);
        assert_eq!(order_of_kib(64), Some(4));
        assert_eq!(order_of_kib(2048), Some(9));
        assert_eq!(order_of_kib(48), None);
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
