//! Measuring a calibration: the PTE-op microbenchmark, the model's op counts and userspace copy
//! time per layout (`forkbench counts` / `sim`), then the real fork of every layout,
//! interleaved round by round (`forkbench real`), all through typed runner invocations.

use std::collections::BTreeMap;
use std::path::Path;

use contract::{Arch, ModelOrder, RealLayout, Runner, Variant};

use super::cli::CalibrateArgs;
use super::fit::{FITTED_STRATEGY, LayoutObs, OTHER_STRATEGY};
use crate::microbench::{PteOpCosts, measure_pte_ops};
use crate::runner::{self, ModelSpec, Timing};
use crate::{CalibrateError, Result};

/// mTHP sizes (KiB) the kernel offers, from /sys/kernel/mm/transparent_hugepage/hugepages-*kB.
pub fn mthp_sizes_kib(thp_dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(thp_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Pick the mTHP layout: 64 KiB when offered, else the smallest size in 16 KiB..1 MiB.
pub fn pick_mthp(sizes: &[u64]) -> Option<u64> {
    if sizes.contains(&64) {
        return Some(64);
    }
    sizes.iter().copied().find(|&s| (16..=1024).contains(&s))
}

/// Folio order of an mTHP size with 4 KiB pages.
pub fn order_of_kib(kib: u64) -> Option<u32> {
    (kib >= 4 && kib.is_power_of_two()).then(|| (kib / 4).trailing_zeros())
}

/// The mTHP layout asked for: `none`, a size (`64k`, `64K`, or KiB as bare digits), or `None`
/// to pick one the kernel offers under `thp_dir`.
pub fn mthp_layout(arg: Option<&str>, thp_dir: &Path) -> Result<Option<RealLayout>> {
    let kib = match arg {
        Some("none") => return Ok(None),
        Some(s) => {
            let size = if s.bytes().all(|b| b.is_ascii_digit()) {
                format!("{s}k")
            } else {
                s.to_string()
            };
            let bad = |why: String| CalibrateError::Input(format!("bad --mthp size {s:?}: {why}"));
            return match format!("mthp-{size}").parse::<RealLayout>() {
                Ok(l) => Ok(Some(l)),
                Err(e) => Err(bad(e.to_string())),
            };
        }
        None => pick_mthp(&mthp_sizes_kib(thp_dir)),
    };
    Ok(kib.map(|kb| RealLayout::Mthp { kb }))
}

/// The model order of a populated real layout (`None` for `untouched`).
fn model_order(layout: RealLayout) -> Result<Option<ModelOrder>> {
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

/// Everything a fit needs, measured on this machine.
pub struct Measured {
    pub obs: Vec<LayoutObs>,
    pub micro: PteOpCosts,
    pub cpu: usize,
}

/// Measure the microbenchmark, the model and the real fork for every calibration layout.
pub fn measure(forkbench: &Path, args: &CalibrateArgs) -> Result<Measured> {
    let runner = Runner::new(forkbench);
    let arch = Arch::host().ok_or_else(|| {
        CalibrateError::Input(format!(
            "the model has no engine for this host's arch ({})",
            hostenv::host::arch_name()
        ))
    })?;
    let mut layouts = vec![RealLayout::Order0, RealLayout::PteOrder9];
    layouts.extend(mthp_layout(
        args.mthp.as_deref(),
        Path::new("/sys/kernel/mm/transparent_hugepage"),
    )?);
    layouts.push(RealLayout::Untouched);
    let strategies = [FITTED_STRATEGY, OTHER_STRATEGY];
    let cpu = args.cpu.unwrap_or_else(default_cpu);
    eprintln!("calibrate: microbenchmark of PTE load/store/CAS");
    let micro = measure_pte_ops(1 << 18, 15);
    let mut obs = Vec::new();
    for layout in layouts {
        let order = model_order(layout)?;
        let mut o = LayoutObs {
            layout,
            order,
            real_run_means_ns: vec![],
            counts: BTreeMap::new(),
            model_measured_ns: BTreeMap::new(),
        };
        if let Some(order) = order {
            let spec = ModelSpec {
                arch,
                contpte: None,
                order,
                mem: args.mem,
                mode: args.mode,
                mapcount: args.mapcount,
            };
            eprintln!("calibrate: model counts and sim, order {order}");
            o.counts = runner::counts(&runner, &spec, &strategies)?;
            let timing = Timing {
                iters: args.iters,
                runs: args.runs,
                cpu: Some(cpu),
            };
            let recs = runner::sim(&runner, &spec, &strategies, &timing)?;
            for s in strategies {
                let r: Vec<_> = recs
                    .iter()
                    .filter(|r| matches!(&r.variant, Variant::Sim(v) if v.strategy == s))
                    .cloned()
                    .collect();
                o.model_measured_ns.insert(s, runner::run_stats(&r).0);
            }
        }
        obs.push(o);
    }
    for round in 0..args.runs {
        for o in obs.iter_mut() {
            eprintln!(
                "calibrate: real fork, round {}/{}, {}",
                round + 1,
                args.runs,
                o.layout
            );
            let timing = Timing {
                iters: args.iters,
                runs: 1,
                cpu: Some(cpu),
            };
            let recs = runner::real(&runner, o.layout, args.mem, args.mode, args.sched, &timing)?;
            o.real_run_means_ns
                .extend(recs.iter().map(contract::RunRecord::mean_ns));
        }
    }
    Ok(Measured { obs, micro, cpu })
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
        }
        assert_eq!(mthp_sizes_kib(dir.path()), vec![16, 32, 2048]);
        assert_eq!(pick_mthp(&[16, 32, 2048]), Some(16));
        assert_eq!(pick_mthp(&[16, 64, 2048]), Some(64));
        assert_eq!(pick_mthp(&[2048]), None);
        assert_eq!(order_of_kib(64), Some(4));
        assert_eq!(order_of_kib(2048), Some(9));
        assert_eq!(order_of_kib(48), None);
    }

    #[test]
    fn mthp_flag_names_a_layout() {
        let none = Path::new("/nonexistent");
        assert_eq!(mthp_layout(Some("none"), none).unwrap(), None);
        for s in ["64k", "64K", "64"] {
            assert_eq!(
                mthp_layout(Some(s), none).unwrap(),
                Some(RealLayout::Mthp { kb: 64 }),
                "{s}"
            );
        }
        assert!(mthp_layout(Some("48k"), none).is_err());
        assert!(mthp_layout(Some("2M"), none).is_err());
        assert_eq!(mthp_layout(None, none).unwrap(), None);
        assert_eq!(
            model_order(RealLayout::Mthp { kb: 64 }).unwrap(),
            Some(ModelOrder::new(4).unwrap())
        );
        assert_eq!(model_order(RealLayout::Untouched).unwrap(), None);
    }
}
