//! The full op-count table of one fork for every strategy at orders 0, 4 and 9 on x86_64,
//! 2 MiB (one page table of 512 PTEs), fresh anon memory, per-page mapcounts (which `current`
//! and `v6.12` run as per-page+large); the stand-ins `v6.1` and `v6.12` also in steady mode.
//! Each expected value is derived in the comments from the kernel's control flow (spec §1,
//! §2, §9; for the stand-ins the 6.1 and 6.12 trees, docs/model.md).

use arch_x86_64::{X86_64, X86_64NoSavedDirty};
use forkmodel::{Arch, ForkConfig, Layout, Model, NoCount, Ops, Order, StrategyId};

fn count(s: StrategyId, order: u32, steady: bool) -> Ops {
    count_on::<X86_64>(s, order, steady)
}

/// One fork's counts on engine `A`; with `steady`, of the parent's second fork.
fn count_on<A: Arch>(s: StrategyId, order: u32, steady: bool) -> Ops {
    let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
    let mut m = Model::<A>::with_layout(&layout, ForkConfig::default()).unwrap();
    if steady {
        let c = m.fork_with(s, &mut NoCount);
        m.zap(c);
    }
    let mut ops = Ops::default();
    let child = m.fork_with(s, &mut ops);
    m.zap(child);
    ops
}

/// What every fork of one page table pays regardless of strategy: one `copy_pte_range` call
/// (no restarts), one lazy-MMU section, one child table, one rss flush, one `flush_tlb_mm`,
/// no TLBI on x86, 512 child PTE writes (`set_pte`/`set_ptes`), and on the first fork of
/// freshly faulted memory one CAS per PTE to write-protect the parent (x86 v6.6+
/// `ptep_set_wrprotect` = READ_ONCE + try_cmpxchg) and one PageAnonExclusive clear per page.
fn common() -> Ops {
    Ops {
        pte_writes: 512,
        pte_atomics: 512,
        tlb_flush_mm: 1,
        mapcount_atomics: 512, // one _mapcount inc per page, per-PTE or batched alike
        anon_exclusive_clears: 512,
        pte_range_calls: 1,
        lazy_mmu_enters: 1,
        pte_tables_allocated: 1,
        rss_flushes: 1,
        ..Ops::default()
    }
}

/// Per-PTE shape: one `copy_present_pte(s)` per PTE, one folio reference and one rmap call
/// per PTE; progress += 8 per PTE, so the `progress >= 32` check fires at the top of PTEs
/// 4, 8, ..., 508: 127 times.
fn per_pte(ptep_get_calls: u64) -> Ops {
    Ops {
        ptep_get_calls,
        ptep_get_raw_reads: ptep_get_calls, // x86 ptep_get = one READ_ONCE
        pte_reads: ptep_get_calls + 512,    // + the wrprotect read of each parent PTE
        refcount_atomics: 512,
        rmap_calls: 512,
        batches: 512,
        resched_checks: 127,
        ..common()
    }
}

/// `folio_pte_batch` over folios of `n` pages (n >= 2) filling the table: per folio, one read
/// in `copy_pte_range`, n-1 reads inside the batch, plus one read of the next folio's first
/// PTE that stops the batch (its PFN is past the folio end) — except after the last folio,
/// where max_nr stops it without a read. One `folio_ref_add`, one
/// `folio_try_dup_anon_rmap_ptes` per folio; progress += 8n per batch, so the check fires at
/// the top of every batch but the first.
fn batched(n: u64) -> Ops {
    let folios = 512 / n;
    let calls = folios * n + (folios - 1);
    Ops {
        ptep_get_calls: calls,
        ptep_get_raw_reads: calls,
        pte_reads: calls + 512,
        refcount_atomics: folios,
        rmap_calls: folios,
        batches: folios,
        resched_checks: folios - 1,
        ..common()
    }
}

/// ≈v6.15+ `folio_pte_batch_flags` over folios of `n` pages (n >= 2): `max_nr` is first
/// capped at the folio's remaining pages, so the loop stops after the folio's last PTE
/// without reading the next folio's first one: per folio 1 read in `copy_pte_range` + n-1 in
/// the batch. Everything else is `batched(n)`, plus one `_large_mapcount` update per rmap
/// call (≥ v6.11; the per-folio lock/update/unlock of CONFIG_MM_ID counted as one).
fn capped(n: u64) -> Ops {
    let folios = 512 / n;
    Ops {
        ptep_get_calls: 512,
        ptep_get_raw_reads: 512,
        pte_reads: 512 + 512,
        large_mapcount_atomics: folios,
        ..batched(n)
    }
}

#[test]
fn full_count_table_orders_0_4_9() {
    use StrategyId::*;
    let table: Vec<(StrategyId, u32, Ops)> = vec![
        // v6.7: ptep_get in copy_pte_range and again in copy_present_pte → 2 per PTE.
        (MmUnstable, 0, per_pte(1024)),
        (MmUnstable, 4, per_pte(1024)),
        (MmUnstable, 9, per_pte(1024)),
        // The rmap cleanups rename page_try_dup_anon_rmap → folio_try_dup_anon_rmap_pte; the
        // loop and every count stay the same.
        (HugetlbRmapCleanups, 0, per_pte(1024)),
        (HugetlbRmapCleanups, 4, per_pte(1024)),
        (HugetlbRmapCleanups, 9, per_pte(1024)),
        // Ryan v4 reads each PTE once; x86 has no pte_batch_remaining override, so the
        // generic compile-time 1 makes every batch one PTE: no batching on x86 at all.
        (RyanV4, 0, per_pte(512)),
        (RyanV4, 4, per_pte(512)),
        (RyanV4, 9, per_pte(512)),
        // v6.9 batches only large folios; order 0 takes the single-PTE path.
        (ForkBatching, 0, per_pte(512)),
        (ForkBatching, 4, batched(16)),
        // One folio = the whole table: 512 reads, 1 ref add, 1 rmap call, no resched check.
        (ForkBatching, 9, batched(512)),
        // x86 has no pte_batch_hint (generic = 1), so upstream == fork-batching on x86.
        (Upstream, 0, per_pte(512)),
        (Upstream, 4, batched(16)),
        (Upstream, 9, batched(512)),
        // current = upstream with the capped batch and the large mapcount. Order 0 has no
        // large folio: the single-PTE path, no _large_mapcount, the same as upstream.
        (Current, 0, per_pte(512)),
        // Order 4: 16 reads per folio, not 17 (one fewer than upstream per batch that ends
        // at a folio end before the table end: 31 fewer), 32 large-mapcount updates.
        (Current, 4, capped(16)),
        // Order 9: the batch ends at the table end, where upstream's max_nr also stops
        // without a read: the same 512 reads as upstream, 1 large-mapcount update.
        (Current, 9, capped(512)),
    ];
    for (s, order, want) in table {
        let got = count(s, order, false);
        assert_eq!(got, want, "{s} order {order}");
    }
}

#[test]
fn issue_headline_figures() {
    let up9 = count(StrategyId::Upstream, 9, false);
    assert_eq!(
        (
            up9.ptep_get_calls,
            up9.refcount_atomics,
            up9.mapcount_atomics
        ),
        (512, 1, 512)
    );
    let mm9 = count(StrategyId::MmUnstable, 9, false);
    assert_eq!((mm9.ptep_get_calls, mm9.refcount_atomics), (1024, 512));
    assert_eq!(count(StrategyId::Upstream, 0, false).refcount_atomics, 512);
}

#[test]
fn steady_state_forks_skip_wrprotect_and_exclusive_clears() {
    for &s in StrategyId::ALL {
        let first = count(s, 9, false);
        let again = count(s, 9, true);
        // The parent's PTEs are already read-only and its pages shared: no CAS, no clears,
        // and the wrprotect read disappears too.
        assert_eq!(again.pte_atomics, 0, "{s}");
        assert_eq!(again.anon_exclusive_clears, 0, "{s}");
        assert_eq!(again.pte_reads, first.pte_reads - 512, "{s}");
        assert_eq!(again.refcount_atomics, first.refcount_atomics, "{s}");
    }
}

#[test]
fn large_mapcount_switch_adds_one_atomic_per_rmap_call() {
    use forkmodel::MapcountModel;
    for (model, per_page, large) in [
        (MapcountModel::PerPageAndLarge, 512, 1),
        (MapcountModel::LargeOnly, 0, 1),
    ] {
        let layout = Layout::uniform(2 << 20, Order::new(9).unwrap()).unwrap();
        let cfg = ForkConfig {
            mapcount: model,
            resched_every: None,
        };
        let mut m = Model::<X86_64>::with_layout(&layout, cfg).unwrap();
        let mut ops = Ops::default();
        let c = m.fork_with(StrategyId::Upstream, &mut ops);
        m.zap(c);
        assert_eq!(
            (ops.mapcount_atomics, ops.large_mapcount_atomics),
            (per_page, large),
            "{model:?}"
        );
        // Per-PTE strategies pay the _large_mapcount add once per PTE.
        let mut ops = Ops::default();
        let c = m.fork_with(StrategyId::MmUnstable, &mut ops);
        m.zap(c);
        assert_eq!(ops.large_mapcount_atomics, 512, "{model:?}");
    }
}

#[test]
fn counts_scale_with_page_tables_for_1g() {
    // 1 GiB = 512 page tables; every per-table figure multiplies by 512.
    let layout = Layout::uniform(1 << 30, Order::new(9).unwrap()).unwrap();
    let mut m = Model::<X86_64>::with_layout(&layout, ForkConfig::default()).unwrap();
    let mut ops = Ops::default();
    let c = m.fork_with(StrategyId::Upstream, &mut ops);
    m.zap(c);
    assert_eq!(ops.ptep_get_calls, 512 * 512);
    assert_eq!(ops.refcount_atomics, 512);
    assert_eq!(ops.pte_range_calls, 512);
    assert_eq!(ops.tlb_flush_mm, 1);
}

/// A fork of the same parent again (`steady`): its PTEs are already read-only and its pages
/// shared, so no write-protect (no CAS, no locked bit clear, and none of the write-protect's
/// own loads, `wrprotect_reads`) and no PageAnonExclusive clears; everything else as fresh.
fn steady(fresh: Ops, wrprotect_reads: u64) -> Ops {
    Ops {
        pte_atomics: 0,
        anon_exclusive_clears: 0,
        pte_reads: fresh.pte_reads - wrprotect_reads,
        ..fresh
    }
}

/// 6.1 on its own x86 PTE code: the per-PTE shape, but one PTE load per PTE (copy_pte_range
/// dereferences the PTE for pte_none and pte_present, copy_present_pte once more, all plain
/// loads the compiler merges into one) and a parent write-protect that is one locked clear of
/// RW with no load (`clear_bit`, before v6.6's read + try_cmpxchg). Per PTE: 1 R, 1 X, 1 W,
/// one folio_get, one page_try_dup_anon_rmap (AnonExclusive clear + _mapcount inc). The folio
/// order changes nothing: 6.1 has no batching.
fn v6_1() -> Ops {
    Ops {
        pte_reads: 512,
        ..per_pte(512)
    }
}

#[test]
fn stand_in_count_table_orders_0_4_9_fresh_and_steady() {
    use StrategyId::*;
    for order in [0, 4, 9] {
        let got = count_on::<X86_64NoSavedDirty>(V6_1, order, false);
        assert_eq!(got, v6_1(), "v6.1 fresh order {order}");
        let got = count_on::<X86_64NoSavedDirty>(V6_1, order, true);
        assert_eq!(got, steady(v6_1(), 0), "v6.1 steady order {order}");
    }
    // 6.12.117: folio_pte_batch with the max_nr cap at the folio end (backported to 6.12.y)
    // and _large_mapcount (one atomic_add per rmap call of a large folio): current's table.
    // Order 0 is the single-PTE path (v6.9's shape, wrprotect = 1 R + 1 CAS).
    for (order, fresh) in [(0, per_pte(512)), (4, capped(16)), (9, capped(512))] {
        assert_eq!(
            count(V6_12, order, false),
            fresh,
            "v6.12 fresh order {order}"
        );
        let want = steady(fresh, 512);
        assert_eq!(
            count(V6_12, order, true),
            want,
            "v6.12 steady order {order}"
        );
        // The same counts as current, which follows mainline on: a change there must say
        // whether 6.12 had it.
        for mode in [false, true] {
            assert_eq!(count(V6_12, order, mode), count(Current, order, mode));
        }
    }
}

#[test]
fn v6_1_needs_its_own_x86_code_for_its_write_protect() {
    // The same walk on the v6.6+ code reads every parent PTE before its CAS: 512 more loads
    // and the same 512 atomics. That load is what the x86 code of v6.1's kernel does not do.
    let old = count_on::<X86_64NoSavedDirty>(StrategyId::V6_1, 9, false);
    let new = count_on::<X86_64>(StrategyId::V6_1, 9, false);
    assert_eq!(new, per_pte(512));
    assert_eq!(new.pte_reads - old.pte_reads, 512);
    assert_eq!(new.pte_atomics, old.pte_atomics);
    // And mm-unstable, on the code of its own kernel, reads each PTE twice besides.
    let mm = count(StrategyId::MmUnstable, 9, false);
    assert_eq!(mm.ptep_get_calls - old.ptep_get_calls, 512);
}
