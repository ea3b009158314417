//! The op-count table of one fork on arm64 for every strategy, with contpte off, on (v6.9
//! with fork helpers) and basic (contpte without fork helpers), at orders 0, 4 and 9: 2 MiB =
//! one page table = 32 contpte blocks of 16 entries, fresh anon memory. Derivations follow
//! spec §9 (per-block table) and arm64/mm/contpte.c; R = raw PTE loads, X = PTE atomics
//! (CAS/xchg), W = raw PTE stores, T = range TLBIs.

use arch_arm64::{Arm64ContpteBasic, Arm64ContpteDis, Arm64ContpteEna};
use forkmodel::{Arch, ForkConfig, Layout, Model, Ops, Order, StrategyId};

/// (ptep_get calls, ptep_get raw reads, R, W, X, T, refcount atomics, rmap calls, batches,
/// resched checks)
type Row = (u64, u64, u64, u64, u64, u64, u64, u64, u64, u64);

fn count<A: Arch>(s: StrategyId, order: u32) -> Row {
    count_mode::<A>(s, order, false)
}

/// One fork's row; with `steady`, of the parent's second fork (its PTEs already read-only,
/// its pages shared).
fn count_mode<A: Arch>(s: StrategyId, order: u32, steady: bool) -> Row {
    let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
    let mut m = Model::<A>::with_layout(&layout, ForkConfig::default()).unwrap();
    if steady {
        let c = m.fork_with(s, &mut forkmodel::NoCount);
        m.zap(c);
    }
    let mut o = Ops::default();
    let c = m.fork_with(s, &mut o);
    m.zap(c);
    // Every fork of anon memory also does one _mapcount inc per page and one flush_tlb_mm;
    // the first fork of fresh memory one AnonExclusive clear per page.
    let clears = if steady { 0 } else { 512 };
    assert_eq!(
        (o.mapcount_atomics, o.anon_exclusive_clears, o.tlb_flush_mm),
        (512, clears, 1),
        "{s}"
    );
    (
        o.ptep_get_calls,
        o.ptep_get_raw_reads,
        o.pte_reads,
        o.pte_writes,
        o.pte_atomics,
        o.tlbi,
        o.refcount_atomics,
        o.rmap_calls,
        o.batches,
        o.resched_checks,
    )
}

use StrategyId::*;

#[test]
fn contpte_off_matches_the_generic_shape() {
    // Without contpte, arm64 behaves like x86: R = ptep_get reads + 1 wrprotect read per PTE,
    // 1 CAS per PTE (read + cmpxchg_relaxed loop), 512 child writes, no TLBI.
    let per_pte_v67: Row = (1024, 1024, 1536, 512, 512, 0, 512, 512, 512, 127);
    let per_pte: Row = (512, 512, 1024, 512, 512, 0, 512, 512, 512, 127);
    // Order 4 batched: per folio 1 + 15 reads + 1 terminating read of the next folio
    // (v6.9 folio_pte_batch stops on the PFN past the folio end), except after the last one.
    let batched16: Row = (543, 543, 1055, 512, 512, 0, 32, 32, 32, 31);
    let batched512: Row = (512, 512, 1024, 512, 512, 0, 1, 1, 1, 0);
    for (s, order, want) in [
        (MmUnstable, 0, per_pte_v67),
        (MmUnstable, 4, per_pte_v67),
        (MmUnstable, 9, per_pte_v67),
        (RyanV4, 0, per_pte),
        (RyanV4, 4, per_pte),
        (RyanV4, 9, per_pte),
        (ForkBatching, 0, per_pte),
        (ForkBatching, 4, batched16),
        (ForkBatching, 9, batched512),
        (Upstream, 0, per_pte),
        (Upstream, 4, batched16),
        (Upstream, 9, batched512),
        // current: max_nr capped at the folio's end, so no terminating read: 1 + 15 per
        // folio (one fewer than upstream for each of the 31 folios that end before the
        // table). Order 9 ends at the table end either way.
        (Current, 0, per_pte),
        (Current, 4, (512, 512, 1024, 512, 512, 0, 32, 32, 32, 31)),
        (Current, 9, batched512),
    ] {
        assert_eq!(
            count::<Arm64ContpteDis>(s, order),
            want,
            "{s} order {order}"
        );
    }
}

#[test]
fn contpte_on_per_block_table() {
    // Order 0: no CONT (a folio must cover 64 KiB). Per PTE: ptep_get 1 R (2 for v6.7),
    // wrprotect 1 R + 1 X, child set_ptes(1) 1 R (the unfold check of the child slot) + 1 W;
    // the fold attempt at index 15 stops at the folio-size test without reading.
    // Ryan v4's set_ptes_full(nr == 1, full) skips the child-slot check.
    assert_eq!(
        count::<Arm64ContpteEna>(MmUnstable, 0),
        (1024, 1024, 2048, 512, 512, 0, 512, 512, 512, 127)
    );
    assert_eq!(
        count::<Arm64ContpteEna>(RyanV4, 0),
        (512, 512, 1024, 512, 512, 0, 512, 512, 512, 127)
    );
    assert_eq!(
        count::<Arm64ContpteEna>(ForkBatching, 0),
        (512, 512, 1536, 512, 512, 0, 512, 512, 512, 127)
    );
    assert_eq!(
        count::<Arm64ContpteEna>(Upstream, 0),
        (512, 512, 1536, 512, 512, 0, 512, 512, 512, 127)
    );

    for order in [4, 9] {
        // (a) v6.7 per-PTE on contpte, per block: ptep_get 17 + 17 on the first PTE, then the
        // first wrprotect unfolds (1 R, 16 X, T, 16 W, 1 R re-read, 1 X) and the other 15 PTEs
        // cost 2 R each (ptep_get x2) + 1 R + 1 X: 64 ptep_get R per block. The child writes
        // each slot after a 1 R unfold check, and at entry 15 folds: 16 R + 16 X + T + 16 W.
        // Per block: R 64 + 17 + 32 = 113, X 16 + 16 + 16 = 48, W 16 + 16 + 16 = 48, T 2.
        assert_eq!(
            count::<Arm64ContpteEna>(MmUnstable, order),
            (
                1024,
                32 * 64,
                32 * 113,
                32 * 48,
                32 * 48,
                64,
                512,
                512,
                512,
                127
            ),
            "mm-unstable order {order}"
        );
        // (b) Ryan v4: pte_batch_remaining = 16 on a CONT entry: 1 ptep_get (17 R) per block,
        // contpte_set_wrprotects 16 x (R + X) in place, set_ptes_full writes 16 with CONT, no
        // TLBI; one folio_ref_add per block, 16 rmap calls per block.
        assert_eq!(
            count::<Arm64ContpteEna>(RyanV4, order),
            (32, 544, 544 + 512, 512, 512, 0, 32, 512, 32, 31),
            "ryan-v4 order {order}"
        );
    }
    // (c) David's prototype: ptep_get on every PTE, each 17 R on CONT: 512 x 17 = 8704; the
    // v6.9 batch helpers write-protect whole blocks in place (16 x (R + X), no T) and
    // set_ptes writes CONT. Order 4 adds the terminating read of each next folio (17 R).
    assert_eq!(
        count::<Arm64ContpteEna>(ForkBatching, 9),
        (512, 8704, 8704 + 512, 512, 512, 0, 1, 1, 1, 0)
    );
    assert_eq!(
        count::<Arm64ContpteEna>(ForkBatching, 4),
        (543, 543 * 17, 543 * 17 + 512, 512, 512, 0, 32, 32, 32, 31)
    );
    // (d) upstream: pte_batch_hint skips the other 15 entries of a block: 32 ptep_get of 17 R
    // = 544 for one 512-PTE batch; no unfold, no TLBI.
    assert_eq!(
        count::<Arm64ContpteEna>(Upstream, 9),
        (32, 544, 544 + 512, 512, 512, 0, 1, 1, 1, 0)
    );
    // Order 4: two gathered reads per folio (its block, then the next folio's block that
    // ends the batch), except after the last.
    assert_eq!(
        count::<Arm64ContpteEna>(Upstream, 4),
        (63, 63 * 17, 63 * 17 + 512, 512, 512, 0, 32, 32, 32, 31)
    );
    // (e) current: the first ptep_get of a block (17 R) and pte_batch_hint = 16 already reach
    // the capped max_nr (the folio's 16 pages), so the loop reads nothing: one gathered read
    // per folio, 31 x 17 R fewer than upstream at order 4. Order 9: the hint walks the 32
    // blocks as upstream does. Order 0: no CONT, the single-PTE path, as upstream.
    assert_eq!(
        count::<Arm64ContpteEna>(Current, 4),
        (32, 544, 544 + 512, 512, 512, 0, 32, 32, 32, 31)
    );
    assert_eq!(
        count::<Arm64ContpteEna>(Current, 9),
        count::<Arm64ContpteEna>(Upstream, 9)
    );
    assert_eq!(
        count::<Arm64ContpteEna>(Current, 0),
        count::<Arm64ContpteEna>(Upstream, 0)
    );
}

#[test]
fn current_adds_one_large_mapcount_update_per_batch() {
    // ≥ v6.11 every rmap dup of a large folio updates _large_mapcount once per call (under
    // CONFIG_MM_ID a per-folio lock/update/unlock, counted as one); the per-page _mapcount
    // incs stay (CONFIG_PAGE_MAPCOUNT). Batches = folios in the table, on every engine.
    fn large<A: Arch>(order: u32) -> (u64, u64) {
        let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
        let mut m = Model::<A>::with_layout(&layout, ForkConfig::default()).unwrap();
        let mut o = Ops::default();
        let c = m.fork_with(Current, &mut o);
        m.zap(c);
        (o.large_mapcount_atomics, o.batches)
    }
    for (order, batches) in [(0, 512), (4, 32), (9, 1)] {
        let want = (if order == 0 { 0 } else { batches }, batches);
        assert_eq!(large::<Arm64ContpteEna>(order), want, "ena order {order}");
        assert_eq!(large::<Arm64ContpteDis>(order), want, "dis order {order}");
        assert_eq!(
            large::<Arm64ContpteBasic>(order),
            want,
            "basic order {order}"
        );
    }
}

#[test]
fn contpte_basic_unfolds_every_block() {
    // contpte without fork helpers: ptep_get gathers (17 R), no hint; the generic
    // wrprotect_ptes loop calls ptep_set_wrprotect per PTE, which reads the entry to decide an
    // unfold and reads it again in __ptep_set_wrprotect (2 R + 1 X per PTE); the first PTE of
    // each block also unfolds it (16 X + T + 16 W). Per block: R 32, X 16 + 16, W 16, T 1. The child gets CONT from set_ptes(nr > 1): 16 W. Per-PTE strategies
    // write the child with set_ptes(1): 1 R check + 1 W each, and basic never folds.
    assert_eq!(
        count::<Arm64ContpteBasic>(ForkBatching, 9),
        (512, 8704, 8704 + 32 * 32, 1024, 1024, 32, 1, 1, 1, 0)
    );
    assert_eq!(
        count::<Arm64ContpteBasic>(Upstream, 9),
        count::<Arm64ContpteBasic>(ForkBatching, 9)
    );
    // v6.7 on basic: 64 ptep_get R per block as in (a), wrprotect 32 R, child 16 R; one T.
    assert_eq!(
        count::<Arm64ContpteBasic>(MmUnstable, 9),
        (
            1024,
            2048,
            2048 + 32 * 48,
            1024,
            1024,
            32,
            512,
            512,
            512,
            127
        )
    );
    // Order 0 has no CONT: the check reads still happen (2 R per wrprotect, 1 R per child slot).
    assert_eq!(
        count::<Arm64ContpteBasic>(Upstream, 0),
        (512, 512, 2048, 512, 512, 0, 512, 512, 512, 127)
    );
}

#[test]
fn rmap_cleanups_count_like_mm_unstable_everywhere() {
    for order in [0, 4, 9] {
        assert_eq!(
            count::<Arm64ContpteEna>(HugetlbRmapCleanups, order),
            count::<Arm64ContpteEna>(MmUnstable, order)
        );
        assert_eq!(
            count::<Arm64ContpteDis>(HugetlbRmapCleanups, order),
            count::<Arm64ContpteDis>(MmUnstable, order)
        );
    }
}

#[test]
fn populate_writes_cont_blocks_only_for_large_aligned_folios() {
    for (order, cont) in [(0, false), (2, false), (4, true), (9, true)] {
        let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
        let m = Model::<Arm64ContpteEna>::with_layout(&layout, ForkConfig::default()).unwrap();
        let p = m.parent_pte(forkmodel::layout::DEFAULT_BASE);
        assert_eq!(arch_arm64::pte_valid_cont(p), cont, "order {order}");
    }
}

#[test]
fn stand_ins_on_arm64_fresh_and_steady() {
    // 6.1 on arm64 has no contpte (CONFIG_ARM64_CONTPTE came in v6.9): its engine is dis.
    // Per PTE: the one load of copy_pte_range (plain dereferences the compiler merges),
    // ptep_set_wrprotect = 1 R + 1 CAS (arm64's cmpxchg loop, as in every version),
    // set_pte_at = 1 W; one folio_get and one rmap dup per PTE. Steady: no write-protect.
    let v6_1_fresh: Row = (512, 512, 1024, 512, 512, 0, 512, 512, 512, 127);
    let v6_1_steady: Row = (512, 512, 512, 512, 0, 0, 512, 512, 512, 127);
    for order in [0, 4, 9] {
        assert_eq!(
            count_mode::<Arm64ContpteDis>(V6_1, order, false),
            v6_1_fresh
        );
        assert_eq!(
            count_mode::<Arm64ContpteDis>(V6_1, order, true),
            v6_1_steady
        );
    }
    // 6.12 on arm64 (Debian's has CONFIG_ARM64_CONTPTE=y): the capped, hinted batch on
    // contpte-ena, current's counts. Order 0: per PTE ptep_get 1 R, wrprotect 1 R + 1 X,
    // set_ptes(1) 1 R (the child slot's unfold check) + 1 W. Orders 4 and 9: one gathered
    // ptep_get (17 R) per 16-entry block, the block write-protected in place (16 x (R + X),
    // no unfold, no TLBI) and written whole with CONT; order 4 stops each batch at the
    // capped max_nr without reading the next folio's block.
    let fresh: [(u32, Row); 3] = [
        (0, (512, 512, 1536, 512, 512, 0, 512, 512, 512, 127)),
        (4, (32, 544, 544 + 512, 512, 512, 0, 32, 32, 32, 31)),
        (9, (32, 544, 544 + 512, 512, 512, 0, 1, 1, 1, 0)),
    ];
    // Steady: the parent's blocks stayed CONT (whole-block write-protect never unfolds), so
    // the same gathers happen, minus the write-protect's 512 R and 512 X.
    let steady: [(u32, Row); 3] = [
        (0, (512, 512, 1024, 512, 0, 0, 512, 512, 512, 127)),
        (4, (32, 544, 544, 512, 0, 0, 32, 32, 32, 31)),
        (9, (32, 544, 544, 512, 0, 0, 1, 1, 1, 0)),
    ];
    for ((order, f), (_, st)) in fresh.into_iter().zip(steady) {
        assert_eq!(
            count_mode::<Arm64ContpteEna>(V6_12, order, false),
            f,
            "order {order}"
        );
        assert_eq!(
            count_mode::<Arm64ContpteEna>(V6_12, order, true),
            st,
            "order {order}"
        );
        for mode in [false, true] {
            assert_eq!(
                count_mode::<Arm64ContpteEna>(V6_12, order, mode),
                count_mode::<Arm64ContpteEna>(Current, order, mode)
            );
            assert_eq!(
                count_mode::<Arm64ContpteDis>(V6_12, order, mode),
                count_mode::<Arm64ContpteDis>(Current, order, mode)
            );
        }
    }
}

#[test]
fn v6_1_on_a_contpte_kernel_is_mm_unstable_without_the_second_read() {
    // Hypothetical (6.1 never had contpte), as mm-unstable on contpte is: the first PTE of a
    // block gathers 17 R and the first write-protect unfolds the block (1 R, 16 X + T + 16 W,
    // 1 R, 1 X); the other 15 PTEs cost 1 R + (1 R + 1 X). The child writes each slot after a
    // 1 R check and folds at entry 15 (16 R + 16 X + T + 16 W). Per block: ptep_get R 17 + 15
    // = 32; R 32 + 17 + 32 = 81; X 48; W 48; T 2. mm-unstable reads 32 more per block.
    let fresh = (
        512,
        32 * 32,
        32 * 81,
        32 * 48,
        32 * 48,
        64,
        512,
        512,
        512,
        127,
    );
    for order in [4, 9] {
        assert_eq!(
            count::<Arm64ContpteEna>(V6_1, order),
            fresh,
            "order {order}"
        );
        let mm = count::<Arm64ContpteEna>(MmUnstable, order);
        assert_eq!((mm.1 - fresh.1, mm.2 - fresh.2), (32 * 32, 32 * 32));
    }
    // Steady: the parent's blocks were unfolded by the first fork and stay so; per block 16
    // ptep_get R, no write-protect, 16 child checks + the fold (16 R + 16 X + T + 16 W).
    assert_eq!(
        count_mode::<Arm64ContpteEna>(V6_1, 9, true),
        (512, 512, 32 * 48, 32 * 32, 32 * 16, 32, 512, 512, 512, 127)
    );
    // Order 0 has no CONT: as upstream's order 0 on contpte-ena.
    assert_eq!(
        count::<Arm64ContpteEna>(V6_1, 0),
        count::<Arm64ContpteEna>(Upstream, 0)
    );
}
