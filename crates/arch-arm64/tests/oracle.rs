//! The oracle on arm64: every strategy with contpte on, off and basic passes on random
//! layouts (proptest), contpte invariants hold after every fork, the thread's corner cases
//! (a contpte block spanning two VMAs after a split, a batch starting mid-block, partially
//! covered blocks at VMA and table edges) are checked, the folio-overrun mutant is still
//! caught, and arm64 and x86_64 leave the same logical state.

use arch_arm64::{Arm64ContpteBasic, Arm64ContpteDis, Arm64ContpteEna};
use arch_x86_64::X86_64;
use forkmodel::layout::{Chunk, DEFAULT_BASE, Region, VmaPiece, random_layout};
use forkmodel::oracle::{LogicalPte, LogicalState, check_layout};
use forkmodel::{Arch, Backing, ForkConfig, Layout, Model, NoCount, Order, PteView, StrategyId};
use proptest::prelude::*;

fn all<A: Arch>(layout: &Layout, cfg: ForkConfig) -> Result<(), String> {
    check_layout::<A>(layout, cfg, StrategyId::ALL)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn contpte_on_passes_random_layouts(seed in any::<u64>(), resched in prop::option::of(1u32..8)) {
        let cfg = ForkConfig { resched_every: resched, ..ForkConfig::default() };
        let r = all::<Arm64ContpteEna>(&random_layout(seed), cfg);
        prop_assert!(r.is_ok(), "seed {seed}: {}", r.unwrap_err());
    }

    #[test]
    fn contpte_off_and_basic_pass_random_layouts(seed in any::<u64>()) {
        let l = random_layout(seed);
        let r = all::<Arm64ContpteDis>(&l, ForkConfig::default());
        prop_assert!(r.is_ok(), "off, seed {seed}: {}", r.unwrap_err());
        let r = all::<Arm64ContpteBasic>(&l, ForkConfig::default());
        prop_assert!(r.is_ok(), "basic, seed {seed}: {}", r.unwrap_err());
    }

    /// Same PFNs, writability, gathered dirtiness, young and uffd-wp on both arches and with
    /// contpte on and off (x86 soft-dirty masked: arm64 has none).
    #[test]
    fn arm64_and_x86_leave_the_same_logical_state(seed in any::<u64>()) {
        let l = random_layout(seed);
        let x = states::<X86_64>(&l);
        prop_assert_eq!(&states::<Arm64ContpteEna>(&l), &x);
        prop_assert_eq!(&states::<Arm64ContpteDis>(&l), &x);
    }
}

/// Logical state after one upstream fork, soft-dirty masked.
fn states<A: Arch>(l: &Layout) -> LogicalState {
    let mut m = Model::<A>::with_layout(l, ForkConfig::default()).unwrap();
    let heads = forkmodel::oracle::folio_heads(&m);
    let c = m.fork_with(StrategyId::Upstream, &mut NoCount);
    let mut s = forkmodel::oracle::logical_state(&m, &c, &heads);
    for (_, v) in s.parent.iter_mut().chain(s.child.iter_mut()) {
        let view = match v {
            LogicalPte::Page(v) | LogicalPte::Copy { view: v, .. } => v,
            LogicalPte::None => continue,
        };
        match view {
            PteView::Present { soft_dirty, .. } | PteView::Swap { soft_dirty, .. } => {
                *soft_dirty = false
            }
            PteView::None => {}
        }
    }
    s
}

fn region(chunks: Vec<Chunk>, vmas: Vec<VmaPiece>) -> Layout {
    Layout {
        regions: vec![Region {
            start: DEFAULT_BASE,
            backing: Backing::Anon,
            shared: false,
            chunks,
            vmas,
            tweaks: vec![],
        }],
    }
}

fn folio9() -> Chunk {
    Chunk::Folio {
        order: Order::new(9).unwrap(),
        pinned: false,
    }
}

#[test]
fn contpte_block_spanning_two_vmas_after_a_split() {
    // A uffd-wp registration splits the VMA inside a block without touching PTEs, so block 0
    // (entries 0..16) is CONT across the boundary at page 8: batches start and end mid-block.
    for cut in [1, 8, 15, 17, 100, 511] {
        let mut a = VmaPiece::plain(cut);
        let mut b = VmaPiece::plain(512 - cut);
        b.uffd_wp = true;
        b.uffd_event_fork = true;
        a.soft_dirty_tracking = true;
        let l = region(vec![folio9()], vec![a, b]);
        all::<Arm64ContpteEna>(&l, ForkConfig::default())
            .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        all::<Arm64ContpteBasic>(&l, ForkConfig::default())
            .unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        // The split does not unfold: the block at the cut is still CONT before the fork.
        let m = Model::<Arm64ContpteEna>::with_layout(&l, ForkConfig::default()).unwrap();
        let p = m.parent_pte(DEFAULT_BASE.add_pages(cut));
        assert!(arch_arm64::pte_valid_cont(p), "cut {cut}");
    }
}

#[test]
fn upstream_batch_starting_mid_block_uses_the_remaining_hint() {
    // Second VMA starts at page 8: its first batch starts mid-block; pte_batch_hint says 8.
    let mut b = VmaPiece::plain(504);
    b.soft_dirty_tracking = true;
    let l = region(vec![folio9()], vec![VmaPiece::plain(8), b]);
    let r = check_layout::<Arm64ContpteEna>(&l, ForkConfig::default(), &[StrategyId::Upstream])
        .unwrap();
    // VMA 1: one ptep_get (17 R) covers its 8 PTEs (hint 16, capped by max_nr); its
    // wrprotect_ptes unfolds the partially covered block 0 (the one TLBI). VMA 2 then sees
    // entries 8..15 as plain PTEs: 8 reads of 1 R; entry 16 is still CONT, and since CONT is
    // compared, that gathered read (17 R) ends the batch. A new batch from 16 takes 1 + 30
    // gathered reads. Calls 1 + 9 + 31 = 41; raw 17 + 8 + 17 + 31 x 17 = 569; 3 batches.
    assert_eq!(r[0].ops.ptep_get_calls, 41);
    assert_eq!(r[0].ops.ptep_get_raw_reads, 569);
    assert_eq!(r[0].ops.batches, 3);
    assert_eq!(r[0].ops.tlbi, 1);
}

#[test]
fn partially_covered_blocks_at_vma_and_table_edges() {
    // A VMA that ends 3 pages into a block and a folio of order 9 that straddles nothing;
    // plus two order-9 folios over two tables with a VMA edge inside the second table.
    let l = region(
        vec![folio9(), folio9()],
        vec![VmaPiece::plain(512 + 3), VmaPiece::plain(509)],
    );
    for &s in StrategyId::ALL {
        check_layout::<Arm64ContpteEna>(&l, ForkConfig::default(), &[s])
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    all::<Arm64ContpteEna>(&l, ForkConfig::default()).unwrap();
}

#[test]
fn overrun_mutant_is_still_caught_on_arm64() {
    for order in [1, 4, 5, 8] {
        let l = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
        let e = check_layout::<Arm64ContpteEna>(
            &l,
            ForkConfig::default(),
            &[StrategyId::OverrunMutant],
        )
        .expect_err("caught");
        assert!(
            e.to_string().contains("runs past its folio")
                || e.to_string().contains("Bad page state"),
            "{e}"
        );
    }
}

#[test]
fn broken_contpte_invariant_is_reported() {
    // Clear CONT on one entry of a block behind the engine's back: the table check objects.
    let l = Layout::uniform(2 << 20, Order::new(9).unwrap()).unwrap();
    let m = Model::<Arm64ContpteEna>::with_layout(&l, ForkConfig::default()).unwrap();
    let tid = m.parent.table_for(DEFAULT_BASE).unwrap();
    let pt = m.mem.tables.get(tid);
    pt.store(5, pt.load(5) & !arch_arm64::Arm64PteFlags::CONT.bits());
    let e = Arm64ContpteEna::check_table(&m.mem.pages, pt, DEFAULT_BASE).unwrap_err();
    assert!(e.contains("15 of 16 entries CONT"), "{e}");
}
