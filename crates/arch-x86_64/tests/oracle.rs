//! The correctness oracle on the x86_64 engine: every strategy passes it on random layouts
//! (proptest, 256 cases per property), all strategies agree with each other (`v6.1` on its
//! own pre-v6.6 PTE code too), and the folio-overrun mutant (the bug behind the thread's
//! "Bad page state" report) is caught.

use arch_x86_64::{X86_64, X86_64NoSavedDirty};
use forkmodel::layout::{Chunk, Region, VmaPiece, random_layout};
use forkmodel::oracle::{check_layout, check_layout_against};
use forkmodel::{Backing, ForkConfig, Layout, MapcountModel, Order, StrategyId};
use proptest::prelude::*;

fn cfg(mapcount: u8, resched: Option<u32>) -> ForkConfig {
    ForkConfig {
        mapcount: match mapcount % 3 {
            0 => MapcountModel::PerPage,
            1 => MapcountModel::PerPageAndLarge,
            _ => MapcountModel::LargeOnly,
        },
        resched_every: resched,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random layouts (mixed orders 0..9, VMAs cut inside large folios, pinned anon folios,
    /// shared/private, anon/file/special, uffd-wp, soft-dirty on/off, swap and none PTEs,
    /// holes and per-PTE bit differences), every mapcount model, with and without forced
    /// resched restarts: every strategy passes every check, and all agree.
    #[test]
    fn all_strategies_pass_and_agree_on_random_layouts(
        seed in any::<u64>(),
        mapcount in 0u8..3,
        resched in prop::option::of(1u32..8),
    ) {
        let layout = random_layout(seed);
        let r = check_layout::<X86_64>(&layout, cfg(mapcount, resched), StrategyId::ALL);
        prop_assert!(r.is_ok(), "seed {seed}: {}", r.unwrap_err());
    }

    /// `v6.1` on the x86 code of its kernel (no SavedDirty, locked-bit-clear write-protect)
    /// passes every check and leaves the same logical state as the v6.6+ strategies on theirs.
    #[test]
    fn v6_1_on_its_own_x86_code_passes_and_agrees(
        seed in any::<u64>(),
        mapcount in 0u8..3,
        resched in prop::option::of(1u32..8),
    ) {
        let layout = random_layout(seed);
        let cfg = cfg(mapcount, resched);
        let mut reference = None;
        let r = check_layout_against::<X86_64NoSavedDirty>(
            &layout, cfg, &[StrategyId::V6_1], &mut reference,
        );
        prop_assert!(r.is_ok(), "seed {seed}: {}", r.unwrap_err());
        let r = check_layout_against::<X86_64>(
            &layout,
            cfg,
            &[StrategyId::MmUnstable, StrategyId::Upstream, StrategyId::V6_12],
            &mut reference,
        );
        prop_assert!(r.is_ok(), "seed {seed}: {}", r.unwrap_err());
    }

    /// Pinned large folios next to each other: the batch fails with -EAGAIN, the page-copy
    /// fallback runs page by page, and the parent keeps its exclusive, writable mapping.
    #[test]
    fn pinned_folios_fall_back_to_page_copies(order in 1u32..=9, folios in 1usize..4, pinned_mask in 1u8..16) {
        let order = Order::new(order).unwrap();
        let chunks: Vec<Chunk> = (0..folios)
            .map(|i| Chunk::Folio { order, pinned: pinned_mask & (1 << i) != 0 })
            .collect();
        let pages = folios as u64 * order.nr_pages();
        let layout = Layout {
            regions: vec![Region {
                start: forkmodel::layout::DEFAULT_BASE,
                backing: Backing::Anon,
                shared: false,
                chunks,
                vmas: vec![VmaPiece::plain(pages)],
                tweaks: vec![],
            }],
        };
        let r = check_layout::<X86_64>(&layout, ForkConfig::default(), StrategyId::ALL);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        let r = r.unwrap();
        let pinned_pages: u64 = (0..folios)
            .filter(|i| pinned_mask & (1 << i) != 0)
            .count() as u64 * order.nr_pages();
        for s in &r {
            prop_assert_eq!(s.ops.page_copies, pinned_pages, "{}", s.strategy);
        }
    }
}

#[test]
fn overrun_mutant_is_caught_on_adjacent_folios() {
    // Orders 1..=8 put several physically contiguous folios in one page table, so a batch
    // without the same-folio stop runs into the next folio.
    for order in 1..=8 {
        let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
        let err = check_layout::<X86_64>(
            &layout,
            ForkConfig::default(),
            &[StrategyId::Upstream, StrategyId::OverrunMutant],
        )
        .expect_err("the mutant must be caught");
        assert_eq!(err.strategy, "overrun-mutant");
        let text = err.to_string();
        assert!(
            text.contains("runs past its folio") || text.contains("Bad page state"),
            "order {order}: {text}"
        );
    }
}

#[test]
fn overrun_mutant_is_caught_on_most_random_layouts_with_large_folios() {
    // Not every random layout has two adjacent equal-bit folios, but many do.
    let caught = (0..64u64)
        .filter(|&seed| {
            check_layout::<X86_64>(
                &random_layout(seed),
                ForkConfig::default(),
                &[StrategyId::OverrunMutant],
            )
            .is_err()
        })
        .count();
    assert!(caught >= 16, "caught only {caught} of 64");
}

#[test]
fn oracle_accepts_the_benchmark_layouts() {
    for order in [0, 4, 9] {
        let layout = Layout::uniform(8 << 20, Order::new(order).unwrap()).unwrap();
        let r = check_layout::<X86_64>(&layout, ForkConfig::default(), StrategyId::ALL).unwrap();
        assert_eq!(r.len(), StrategyId::ALL.len());
    }
}

#[test]
fn overrun_mutant_is_caught_next_to_current() {
    // `current` stops at the folio end by capping max_nr, not by reading the next PTE; with
    // it as the reference the mutant (neither) still breaks the accounting.
    for order in [1, 4, 8] {
        let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
        let err = check_layout::<X86_64>(
            &layout,
            ForkConfig::default(),
            &[StrategyId::Current, StrategyId::OverrunMutant],
        )
        .expect_err("the mutant must be caught");
        assert_eq!(err.strategy, "overrun-mutant", "order {order}: {err}");
    }
}

#[test]
fn current_keeps_the_large_mapcount_even_when_per_page_is_asked() {
    // One parent serves every strategy: it keeps _large_mapcount (nr - 1, kernel-biased)
    // under per-page. `current` adds one mapping per child PTE, the thread's `upstream`
    // leaves it alone, and teardown gives back exactly what the fork added.
    use forkmodel::{Model, NoCount, Ops};
    use std::sync::atomic::Ordering::Relaxed;
    let layout = Layout::uniform(2 << 20, Order::new(4).unwrap()).unwrap();
    let mut m = Model::<X86_64>::with_layout(&layout, ForkConfig::default()).unwrap();
    let heads = forkmodel::oracle::folio_heads(&m);
    let large = |m: &Model<X86_64>| {
        heads
            .iter()
            .map(|&h| m.mem.pages.page(h).large_mapcount.load(Relaxed))
            .collect::<Vec<_>>()
    };
    assert_eq!(large(&m), vec![15; 32]);
    let mut ops = Ops::default();
    let child = m.fork_with(StrategyId::Current, &mut ops);
    assert_eq!(child.mapcount, MapcountModel::PerPageAndLarge);
    assert_eq!(large(&m), vec![31; 32]);
    assert_eq!(
        (ops.large_mapcount_atomics, ops.mapcount_atomics),
        (32, 512)
    );
    m.zap(child);
    assert_eq!(large(&m), vec![15; 32]);
    let child = m.fork_with(StrategyId::Upstream, &mut NoCount);
    assert_eq!(child.mapcount, MapcountModel::PerPage);
    assert_eq!(large(&m), vec![15; 32]);
    m.zap(child);
    assert_eq!(large(&m), vec![15; 32]);
}

#[test]
fn overrun_mutant_is_caught_against_v6_1_on_its_own_code() {
    // The reference comes from the other engine; the mutant still breaks the accounting.
    for order in [1, 4, 8] {
        let layout = Layout::uniform(2 << 20, Order::new(order).unwrap()).unwrap();
        let mut reference = None;
        check_layout_against::<X86_64NoSavedDirty>(
            &layout,
            ForkConfig::default(),
            &[StrategyId::V6_1],
            &mut reference,
        )
        .unwrap();
        assert_eq!(reference.as_ref().unwrap().strategy, "v6.1");
        let err = check_layout_against::<X86_64>(
            &layout,
            ForkConfig::default(),
            &[StrategyId::OverrunMutant],
            &mut reference,
        )
        .expect_err("the mutant must be caught");
        assert_eq!(err.strategy, "overrun-mutant", "order {order}: {err}");
    }
}

#[test]
fn a_cross_engine_difference_is_reported() {
    // Two engines that disagree on the logical state (a layout the other engine never saw
    // stands in for a wrong strategy) are reported against the reference's strategy.
    let a = Layout::uniform(2 << 20, Order::new(9).unwrap()).unwrap();
    let b = Layout::uniform(2 << 20, Order::new(0).unwrap()).unwrap();
    let mut reference = None;
    check_layout_against::<X86_64NoSavedDirty>(
        &a,
        ForkConfig::default(),
        &[StrategyId::V6_1],
        &mut reference,
    )
    .unwrap();
    let err = check_layout_against::<X86_64>(
        &b,
        ForkConfig::default(),
        &[StrategyId::Upstream],
        &mut reference,
    )
    .expect_err("different states");
    assert!(
        err.to_string().contains("logical state differs from v6.1"),
        "{err}"
    );
}
