//! The mixed real-fork layouts end to end: `forkbench real --layout mix-64k` and `mix-pmd` on
//! 64 MiB, 3 forks, 1 run, JSON. Each must verify its layout before and after the run, block
//! by block where kpageflags is readable, and mix-64k must leave every mTHP knob as it found
//! it. mix-64k switches the 64K knob, which needs root (skipped otherwise, like
//! `stale_mthp_knob.rs`); mix-pmd needs THP in `madvise` or `always`, like the real-fork tests.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use contract::{RealContext, RunRecord, RunnerOutput, Variant};
use hostenv::sysfs::read_selected;
use realfork::layout::{THP_ROOT, ThpInfo};
use realfork::verify::LayoutReport;

const MEM: u64 = 64 << 20;

/// Run `forkbench real --layout <layout> --mem 64M --iters 3 --runs 1 --json`; the parsed
/// output, or the stderr of a failed run.
fn run_mix(layout: &str) -> RunnerOutput {
    let out = Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args([
            "real", "--layout", layout, "--mem", "64M", "--iters", "3", "--runs", "1", "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{layout}: {stderr}");
    RunnerOutput::parse(&String::from_utf8_lossy(&out.stdout)).unwrap()
}

/// The run's context and its one record, both verified, the record not marked unverified.
fn verified<'a>(out: &'a RunnerOutput, layout: &str) -> (&'a RealContext, &'a RunRecord) {
    let ctx = &out.contexts[0];
    assert_eq!(ctx.layout.to_string(), layout);
    assert_eq!(ctx.mem_bytes, MEM);
    assert!(ctx.pre.ok, "{}", ctx.pre.summary);
    assert_eq!(out.runs.len(), 1);
    let r = &out.runs[0];
    let Variant::Real(v) = &r.variant else {
        panic!("not a real-fork record: {:?}", r.variant)
    };
    assert!(!v.unverified);
    assert_eq!(r.samples_ns.len(), 3);
    let post = r.real.as_deref().and_then(|x| x.post.as_ref()).unwrap();
    assert!(post.ok, "{}", post.summary);
    (ctx, r)
}

/// Every size's `enabled` knob, by size.
fn knobs(thp: &ThpInfo) -> BTreeMap<u64, String> {
    thp.sizes
        .keys()
        .map(|&kb| (kb, read_selected(thp.size_knob(kb)).unwrap()))
        .collect()
}

#[test]
fn mix_64k_alternates_64k_folios_and_order0_blocks_and_restores_the_knobs() {
    if hostenv::geteuid() != 0 {
        eprintln!("skipped: mix-64k switches the 64K mTHP knob, which needs root");
        return;
    }
    let thp = ThpInfo::read(Path::new(THP_ROOT));
    assert!(
        thp.mthp_sizes().contains(&64),
        "this kernel offers no 64 KiB mTHP size; the test needs hugepages-64kB"
    );
    let before = knobs(&thp);
    let out = run_mix("mix-64k");
    assert_eq!(knobs(&thp), before, "every knob as it was");
    let (ctx, _) = verified(&out, "mix-64k");
    let sw = &ctx.populate.sysfs_switched[0];
    assert_eq!(sw.path, thp.size_knob(64).display().to_string());
    assert_eq!(sw.written, "always");
    assert_eq!(sw.restored_value, sw.original);
    assert!(
        ctx.populate
            .sysfs_switched
            .iter()
            .all(|k| k.restored_value == k.original)
    );

    // Root: full verification, 512 64K folios in the even blocks, 8192 order-0 pages in the
    // odd ones.
    assert_eq!(ctx.pre.level, "full");
    let pre = LayoutReport::from_context(ctx).unwrap();
    let h = pre.observation.histogram.as_ref().unwrap();
    assert_eq!(h.orders[&4].folios, 512, "{}", h.describe());
    assert_eq!(h.orders[&0].pages, 8192, "{}", h.describe());
    let t = h.blocks.unwrap();
    assert_eq!(
        (t.blocks, t.even_one_folio, t.odd_all_order0, t.other()),
        (1024, 512, 512, 0)
    );
    let check = pre.checks.iter().find(|c| c.name == "per block").unwrap();
    assert!(check.ok && check.decisive, "{check:?}");
}

#[test]
fn mix_pmd_keeps_even_chunks_pmd_mapped_and_pte_maps_the_odd_ones() {
    let thp = ThpInfo::read(Path::new(THP_ROOT));
    if let Err(why) = thp.check(contract::RealLayout::MixPmd) {
        panic!("mix-pmd cannot be tested on this host: {why}");
    }
    let before = knobs(&thp);
    let out = run_mix("mix-pmd");
    assert_eq!(knobs(&thp), before, "mix-pmd switches no knob");
    let (ctx, _) = verified(&out, "mix-pmd");
    assert!(ctx.populate.sysfs_switched.is_empty());
    assert!(ctx.populate.khugepaged_guard);
    assert!(ctx.populate.pte_map_ns.is_some());
    let pre = LayoutReport::from_context(ctx).unwrap();
    // Half the region PMD-mapped: the 16 even chunks of 32.
    let smaps = pre.observation.smaps.as_ref().unwrap();
    assert_eq!(smaps.anon_huge_kb, MEM / 1024 / 2);
    assert_eq!(
        pre.deltas
            .smaps_before_split
            .as_ref()
            .map(|s| s.anon_huge_kb),
        Some(MEM / 1024),
        "every chunk PMD-mapped before the odd ones were PTE-mapped"
    );
    if let Some(h) = &pre.observation.histogram {
        assert_eq!(h.orders[&9].folios, 32, "{}", h.describe());
        let t = h.blocks.unwrap();
        assert_eq!((t.blocks, t.even_one_folio, t.odd_one_folio), (32, 16, 16));
    }
}
