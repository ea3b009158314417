//! End-to-end tests of the instruction model on synthetic exact files: two kernels whose
//! instructions per fork are generated from known costs per op over stand-in-shaped counts,
//! written as result files and a counts file, read back, fitted, and rendered.

use std::collections::BTreeMap;
use std::path::Path;

use contract::OpCounter::*;
use contract::{
    Accel, Arch, CheckSummary, Clock, GuestBoot, Mode, ModelOrder, RealContext, RealExtra,
    RealLayout, RealVariant, RunRecord, Sched, Strategy, Variant,
};
use results::ResultFile;

use super::counts::{CountsEntry, CountsKey, StandInCounts};
use super::data::{Build, Series};
use super::model::{InstrModel, analyse};
use super::terms::{FIXED, PER_LARGE_BATCH, PER_PTE, PER_SMALL_BATCH, PER_TABLE, Term};
use super::{load_dir, render_section};
use crate::runner::Ops;

const MEMS: [u64; 2] = [64 << 20, 256 << 20];
const OLD: &str = "6.1.0-50-cloud-amd64";
const NEW: &str = "6.12.117+deb13-cloud-amd64";

/// One fork of `mem` bytes of folios of `order`, as the stand-in counts it (steady mode).
fn stand_in_ops(strategy: Strategy, order: u8, mem: u64) -> Ops {
    let tables = mem >> 21;
    let ptes = 512 * tables;
    let batches = if strategy == Strategy::V6_1 {
        ptes
    } else {
        ptes >> order
    };
    let large = if strategy == Strategy::V6_12 && order > 0 {
        batches
    } else {
        0
    };
    Ops::from([
        (PtepGetCalls, ptes),
        (PteReads, ptes),
        (PteWrites, ptes),
        (RefcountAtomics, batches),
        (MapcountAtomics, ptes),
        (LargeMapcountAtomics, large),
        (RmapCalls, batches),
        (Batches, batches),
        (PteTablesAllocated, tables),
        (TlbFlushMm, 1),
    ])
}

fn terms() -> [Term; 5] {
    [FIXED, PER_TABLE, PER_PTE, PER_SMALL_BATCH, PER_LARGE_BATCH]
}

/// The true costs per op of each kernel: 6.12 spends 46 more instructions per order-0 PTE and
/// less per fork.
fn truth(strategy: Strategy) -> [f64; 5] {
    match strategy {
        Strategy::V6_1 => [153_000.0, 5000.0, 40.0, 80.0, 0.0],
        _ => [127_000.0, 5200.0, 88.0, 78.0, 246.0],
    }
}

fn layouts(strategy: Strategy) -> Vec<RealLayout> {
    let mut v = vec![RealLayout::Order0];
    if strategy == Strategy::V6_12 {
        v.extend([RealLayout::Mthp { kb: 16 }, RealLayout::Mthp { kb: 64 }]);
    }
    v.extend([RealLayout::PteOrder9, RealLayout::PmdOrder9]);
    if strategy == Strategy::V6_12 {
        v.push(RealLayout::Mix64k);
    }
    v.extend([RealLayout::MixPmd, RealLayout::Untouched]);
    v
}

fn counts_file() -> StandInCounts {
    let mut entries = Vec::new();
    for strategy in [Strategy::V6_1, Strategy::V6_12] {
        for order in [0, 2, 4, 9] {
            for mem in MEMS {
                entries.push(CountsEntry {
                    key: CountsKey {
                        arch: Arch::X86_64,
                        contpte: None,
                        strategy,
                        order: ModelOrder::new(order).unwrap(),
                        mem_bytes: mem,
                        mode: Mode::Steady,
                    },
                    ops: stand_in_ops(strategy, order, mem),
                });
            }
        }
    }
    StandInCounts::new(entries, None)
}

/// The true instructions of one fork of `layout`.
fn instructions(counts: &StandInCounts, strategy: Strategy, layout: RealLayout, mem: u64) -> f64 {
    let si = super::data::StandIn {
        strategy,
        contpte: None,
    };
    let ops = counts
        .layout_counts(Arch::X86_64, si, layout, mem, Mode::Steady)
        .unwrap();
    super::fit::predict(&terms(), &truth(strategy), &ops)
}

fn context(release: &str, image: &str) -> RealContext {
    RealContext {
        env: contract::HostEnv {
            kernel_release: release.into(),
            ..Default::default()
        },
        layout: RealLayout::Order0,
        mem_bytes: MEMS[0],
        iters: 5,
        runs: 1,
        pinning: Default::default(),
        timer: Default::default(),
        populate: Default::default(),
        pre: CheckSummary {
            level: "full".into(),
            ok: true,
            summary: String::new(),
            failure: None,
        },
        pre_report: serde_json::Value::Null,
        guest: Some(GuestBoot {
            accel: Accel::Tcg,
            accel_reason: "asked for".into(),
            clock: Clock::Icount,
            qemu: "QEMU emulator version 7.2".into(),
            image: image.into(),
            guest_arch: "x86_64".into(),
            vcpus: 1,
            guest_mem_bytes: 640 << 20,
            boot_ms: 1000,
            page_size: 4096,
            config: Vec::new(),
        }),
        lab: None,
    }
}

/// An exact file of both kernels at one memory size: 2 runs per layout, 5 forks per run, the
/// last fork of each run 3% high (a tick the median ignores), run 1 one instruction up.
fn exact_file(counts: &StandInCounts, mem: u64, clock: Clock) -> ResultFile {
    let mut f = ResultFile::new("exact", "t", "2026-01-01T00:00:00Z", Default::default());
    let kernels = [
        (
            OLD,
            Strategy::V6_1,
            "linux-image-6.1.0-50-cloud-amd64-unsigned_6.1.176-1_amd64.deb",
        ),
        (
            NEW,
            Strategy::V6_12,
            "linux-image-6.12.117+deb13-cloud-amd64-unsigned_6.12.117-1_amd64.deb",
        ),
    ];
    f.contexts = kernels.iter().map(|(k, _, img)| context(k, img)).collect();
    for run in 0..2u32 {
        for (ki, (label, strategy, _)) in kernels.iter().enumerate() {
            for layout in layouts(*strategy) {
                let n =
                    instructions(counts, *strategy, layout, mem).round() as u64 + u64::from(run);
                let mut samples = vec![n; 5];
                samples[4] = n + n * 3 / 100;
                f.runs.push(RunRecord {
                    variant: Variant::Real(RealVariant {
                        arch: Arch::X86_64,
                        kernel: (*label).into(),
                        accel: Accel::Tcg,
                        clock,
                        layout,
                        mem_bytes: mem,
                        mode: Mode::Steady,
                        sched: Sched::Fifo,
                        unverified: false,
                    }),
                    run_index: run,
                    warmup: 1,
                    samples_ns: samples,
                    cpu: Some(0),
                    ops: BTreeMap::new(),
                    sim: None,
                    real: Some(Box::new(RealExtra {
                        context: ki as u32,
                        ..Default::default()
                    })),
                    host_load: None,
                });
            }
        }
    }
    f
}

/// The synthetic exact files and counts file in `dir`; the model of them.
fn synthetic(dir: &Path) -> InstrModel {
    let counts = counts_file();
    std::fs::create_dir_all(dir.join("exact")).unwrap();
    for (i, mem) in MEMS.iter().enumerate() {
        exact_file(&counts, *mem, Clock::Icount)
            .save_new(&dir.join(format!("exact/{i}.json")))
            .unwrap();
    }
    counts.save(&dir.join("exact-counts.json")).unwrap();
    let data = load_dir(&dir.join("exact")).unwrap();
    analyse(
        &data,
        &StandInCounts::load(&dir.join("exact-counts.json")).unwrap(),
    )
    .unwrap()
}

#[test]
fn known_costs_are_recovered_and_both_tests_computed() {
    let d = tempfile::tempdir().unwrap();
    let m = synthetic(d.path());
    assert_eq!(m.files, ["0.json", "1.json"]);
    assert_eq!(m.groups.len(), 1);
    let g = &m.groups[0];
    assert_eq!((g.arch, g.build), (Arch::X86_64, Build::Debian));
    // The set with the true terms fits both kernels exactly (up to the one-instruction runs).
    assert_eq!(g.set.name, "small and large batches");
    let [old, new] = [&g.kernels[0], &g.kernels[1]];
    assert_eq!(
        (old.kernel.series, new.kernel.series),
        (Series::V6_1, Series::V6_12)
    );
    assert_eq!(old.kernel.label, OLD);
    assert_eq!(new.rows.len(), 2 * layouts(Strategy::V6_12).len());
    for (c, t) in new.fit.cost.iter().zip(truth(Strategy::V6_12)) {
        assert!((c - t).abs() <= 1e-3 * t.max(1.0), "6.12: {c} vs {t}");
    }
    // 6.1 identifies the fixed and per-table costs and the per-PTE sum, not its split.
    assert_eq!(old.fit.identified, [true, true, false, false, false]);
    let t = truth(Strategy::V6_1);
    assert!((old.fit.cost[0] - t[0]).abs() < 1.0 && (old.fit.cost[1] - t[1]).abs() < 0.1);
    assert!((old.fit.cost[2] + old.fit.cost[3] - (t[2] + t[3])).abs() < 1e-3);
    // (a): every layout some set determines is predicted within a hundredth of a percent.
    for k in &g.kernels {
        assert!(k.worst_held(&g.scored) < 1e-4, "{}", k.kernel.label);
    }
    // (b): 6.12's costs on 6.1's order 0 at 256M, by hand: the copy path's 166 per PTE
    // against 120, the fixed and per-table terms as fitted.
    let t6 = g
        .transfers
        .iter()
        .find(|t| t.from == 1 && t.to == 0)
        .unwrap();
    let (ri, row) = old
        .rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.obs.layout == RealLayout::Order0 && r.obs.mem_bytes == MEMS[1])
        .unwrap();
    let ptes = 65_536.0;
    let want = 127_000.0 + 128.0 * 5200.0 + ptes * (88.0 + 78.0);
    let measured = 153_000.0 + 128.0 * 5000.0 + ptes * 120.0;
    assert!((row.value - measured).abs() <= 1.0);
    let h = t6.held[ri];
    assert!(h.determined);
    assert!(
        (h.predicted - want).abs() < 1.0,
        "{} vs {want}",
        h.predicted
    );
    assert!((h.error - (want / row.value - 1.0)).abs() < 1e-6);
    // 6.1's costs cannot price 6.12's large batches.
    let t1 = g
        .transfers
        .iter()
        .find(|t| t.from == 0 && t.to == 1)
        .unwrap();
    for (r, h) in new.rows.iter().zip(&t1.held) {
        let large = r.ops.get(&LargeMapcountAtomics).copied().unwrap_or(0) > 0;
        assert_eq!(h.determined, !large, "{}", r.obs.layout);
    }
    // Order 0's growth lies in the copy path, all of it from the costs per op.
    let (pair, growth) = &g.growth[0];
    assert_eq!(*pair, (0, 1));
    let at256 = growth.iter().find(|gr| gr.mem_bytes == MEMS[1]).unwrap();
    assert!(at256.copy_counts.abs() < 1e-6);
    assert!(
        (at256.copy_costs - ptes * 46.0).abs() < 1.0,
        "{}",
        at256.copy_costs
    );
}

#[test]
fn the_section_renders_deterministically() {
    let (d, e) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let section = render_section(&synthetic(d.path()));
    let again = render_section(&synthetic(e.path()));
    assert_eq!(section, again);
    assert!(section.contains("| x86_64 | Debian | 6.1.0-50-cloud-amd64 (v6.1) |"));
    assert!(section.contains("so the change is mostly inside the copy path"));
    insta::assert_snapshot!("instruction_section", section);
}

#[test]
fn timed_runs_and_missing_counts_are_refused_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    let counts = counts_file();
    std::fs::create_dir_all(d.path().join("exact")).unwrap();
    exact_file(&counts, MEMS[0], Clock::Wall)
        .save_new(&d.path().join("exact/t.json"))
        .unwrap();
    let e = load_dir(&d.path().join("exact")).unwrap_err().to_string();
    assert!(
        e.contains("t.json: a order0 run of 6.1.0-50-cloud-amd64 is timed (wall clock)"),
        "{e}"
    );
    std::fs::remove_file(d.path().join("exact/t.json")).unwrap();
    exact_file(&counts, MEMS[0], Clock::Icount)
        .save_new(&d.path().join("exact/x.json"))
        .unwrap();
    let data = load_dir(&d.path().join("exact")).unwrap();
    let e = analyse(&data, &StandInCounts::new(Vec::new(), None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no stand-in counts for x86_64 v6.1 order 0 at 64M steady"),
        "{e}"
    );
    assert!(!e.contains('\n'));
    // The counts it needs: 6.1 at orders 0 and 9, 6.12 at 0, 2, 4, 9 (64M only).
    let keys = super::counts::needed(&data).unwrap();
    let orders: Vec<(Strategy, u8)> = keys.iter().map(|k| (k.strategy, k.order.get())).collect();
    assert_eq!(
        orders,
        [
            (Strategy::V6_1, 0),
            (Strategy::V6_1, 9),
            (Strategy::V6_12, 0),
            (Strategy::V6_12, 2),
            (Strategy::V6_12, 4),
            (Strategy::V6_12, 9)
        ]
    );
}
