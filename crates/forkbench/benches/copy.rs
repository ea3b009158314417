//! Criterion benchmark of the model's fork copy alone (`copy_page_range` over one private
//! anonymous VMA of 64 MiB, or `FORKBENCH_BENCH_MEM_MIB` MiB, on the x86_64 engine), for every
//! strategy at folio order 0 and order 9, reported as PTEs/s. Each iteration restores the
//! parent's freshly-faulted state and tears the child down outside the timed section, so only
//! the copy is timed. `upstream+count` runs the upstream copy with exact op counting ([`Ops`])
//! to show what counting costs, and `floor` is a plain loop doing the least work any copy must
//! do per PTE (one PTE load, a refcount and a mapcount atomic on 64-byte page records, a
//! compare-and-swap write-protecting the parent PTE, one child PTE store). Speed target:
//! upstream's copy costs at most 2x the floor per PTE, at order 0 and at order 9.

use std::hint::black_box;
use std::time::{Duration, Instant};

use arch_arm64::{Arm64ContpteDis, Arm64ContpteEna};
use arch_x86_64::{X86_64, X86_64NoSavedDirty, X86PteFlags};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use forkmodel::{Arch, ForkConfig, Layout, Model, NoCount, Ops, Order, PAGE_SIZE, StrategyId};

/// Memory per benchmark parent, in MiB (`FORKBENCH_BENCH_MEM_MIB`, default 64).
fn mem_bytes() -> u64 {
    let mib = match std::env::var("FORKBENCH_BENCH_MEM_MIB") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("FORKBENCH_BENCH_MEM_MIB={v:?}: {e}")),
        Err(_) => 64,
    };
    assert!(
        mib >= 2 && mib.is_multiple_of(2),
        "FORKBENCH_BENCH_MEM_MIB must be an even number of MiB (order-9 folios are 2 MiB)"
    );
    mib << 20
}

/// The floor: the minimal per-PTE work of a fork copy, over the same kind of data as the
/// model (forkmodel's page arena of 64-byte records and its 512-entry atomic page tables).
mod floor {
    use std::hint::black_box;
    use std::sync::atomic::Ordering::Relaxed;

    use arch_x86_64::X86PteFlags;
    use forkmodel::page::PageArena;
    use forkmodel::table::{TableId, TablePool};
    use forkmodel::types::PTRS_PER_PTE;
    use forkmodel::{Order, Pfn};

    const RW: u64 = X86PteFlags::RW.bits();
    const ACCESSED: u64 = X86PteFlags::ACCESSED.bits();
    const PFN_MASK: u64 = arch_x86_64::PTE_PFN_MASK;

    /// A parent's page tables and pages, and the tables its child gets.
    pub struct Floor {
        pages: PageArena,
        tables: TablePool,
        parent: Vec<TableId>,
        child: Vec<TableId>,
        /// The parent's PTEs right after the fault (writable, dirty, young).
        fresh: Vec<u64>,
        /// Pages per folio minus one (head = pfn & !folio_mask).
        folio_mask: u64,
    }

    impl Floor {
        /// `nr_ptes` PTEs mapping folios of `order`, laid out as the model lays them out.
        pub fn new(nr_ptes: u64, order: Order, fresh_pte: impl Fn(Pfn) -> u64) -> Floor {
            assert!(nr_ptes.is_multiple_of(PTRS_PER_PTE as u64));
            let nr_tables = (nr_ptes / PTRS_PER_PTE as u64) as usize;
            let mut pages = PageArena::with_capacity(nr_ptes as usize + 1024);
            let mut heads = Vec::new();
            while (heads.len() as u64) << order.get() < nr_ptes {
                heads.push(pages.alloc_folio(order, true));
            }
            let mut tables = TablePool::new();
            tables.reserve_free(2 * nr_tables);
            let parent: Vec<TableId> = (0..nr_tables).map(|_| tables.alloc()).collect();
            let child: Vec<TableId> = (0..nr_tables).map(|_| tables.alloc()).collect();
            let mut fresh = Vec::with_capacity(nr_ptes as usize);
            for head in heads {
                for i in 0..order.nr_pages() {
                    let pfn = head.add(i);
                    // As after the fault: one reference per mapped page, mapcount 0.
                    pages.page(pfn).mapcount.store(0, Relaxed);
                    fresh.push(fresh_pte(pfn));
                }
                pages
                    .page(head)
                    .refcount
                    .store(order.nr_pages() as i32, Relaxed);
            }
            let f = Floor {
                pages,
                tables,
                parent,
                child,
                fresh,
                folio_mask: order.nr_pages() - 1,
            };
            f.restore();
            f
        }

        /// Untimed: put the parent's PTEs back, drop what the child held and clear its tables
        /// (what `zap` + `restore_fresh` do to the model).
        pub fn restore(&self) {
            for (t, (&ptid, &ctid)) in self.parent.iter().zip(&self.child).enumerate() {
                let src = self.tables.get(ptid);
                let dst = self.tables.get(ctid);
                for i in 0..PTRS_PER_PTE {
                    let c = dst.load(i);
                    if c != 0 {
                        let pfn = Pfn((c & PFN_MASK) >> 12);
                        self.pages.page(pfn).mapcount.fetch_sub(1, Relaxed);
                        let head = Pfn(pfn.0 & !self.folio_mask);
                        self.pages.page(head).refcount.fetch_sub(1, Relaxed);
                        dst.store(i, 0);
                    }
                    src.store(i, self.fresh[t * PTRS_PER_PTE + i]);
                }
            }
        }

        /// The timed loop. Returns a checksum so nothing can be dropped.
        #[inline(never)]
        pub fn copy(&self) -> u64 {
            let pages = black_box(&self.pages);
            let tables = black_box(&self.tables);
            let folio_mask = black_box(self.folio_mask);
            let mut sum = 0u64;
            for (&ptid, &ctid) in self.parent.iter().zip(&self.child) {
                let src = tables.get(ptid);
                let dst = tables.get(ctid);
                for i in 0..PTRS_PER_PTE {
                    let pte = src.load(i);
                    if pte == 0 {
                        continue;
                    }
                    let pfn = Pfn((pte & PFN_MASK) >> 12);
                    let page = pages.page(pfn);
                    let head = pages.page(Pfn(pfn.0 & !folio_mask));
                    head.refcount.fetch_add(1, Relaxed);
                    page.mapcount.fetch_add(1, Relaxed);
                    let new = pte & !RW;
                    let _ = src.cmpxchg(i, pte, new);
                    dst.store(i, new & !ACCESSED);
                    sum = sum.wrapping_add(pte);
                }
            }
            sum
        }
    }
}

/// Time the copy of every strategy in `strategies` on engine `A`, named `<prefix><strategy>`.
fn bench_model<A: Arch>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    layout: &Layout,
    prefix: &str,
    strategies: &[StrategyId],
) {
    let mut m = Model::<A>::with_layout(layout, ForkConfig::default()).expect("populate");
    for &strategy in strategies {
        group.bench_function(format!("{prefix}{}", strategy.name()), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    m.restore_fresh();
                    let t = Instant::now();
                    let child = m.fork_with(strategy, &mut NoCount);
                    total += t.elapsed();
                    m.zap(black_box(child));
                }
                total
            })
        });
    }
}

fn copy_benches(c: &mut Criterion) {
    let mem = mem_bytes();
    let nr_ptes = mem / PAGE_SIZE;
    for order in [0u32, 9] {
        let order = Order::new(order).expect("valid order");
        let layout = Layout::uniform(mem, order).expect("uniform layout");
        let mut group = c.benchmark_group(format!("copy/{}", order.get()));
        group.throughput(Throughput::Elements(nr_ptes));

        // Each strategy on the x86_64 PTE code of its kernel (`v6.1` predates SavedDirty).
        let (saved_dirty, pre): (Vec<StrategyId>, Vec<StrategyId>) = StrategyId::ALL
            .iter()
            .copied()
            .partition(|s| s.x86_pte_code() == contract::X86PteCode::SavedDirty);
        bench_model::<X86_64>(&mut group, &layout, "", &saved_dirty);
        bench_model::<X86_64NoSavedDirty>(&mut group, &layout, "", &pre);
        // arm64 without contpte must meet the same 2x-of-floor target as x86_64; with contpte
        // the extra gathered reads are the point, so every strategy is reported, no target.
        bench_model::<Arm64ContpteDis>(&mut group, &layout, "arm64-dis/", &[StrategyId::Upstream]);
        bench_model::<Arm64ContpteEna>(&mut group, &layout, "arm64-ena/", StrategyId::ALL);

        let mut m = Model::<X86_64>::with_layout(&layout, ForkConfig::default()).expect("populate");
        group.bench_function("upstream+count", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    m.restore_fresh();
                    let mut ops = Ops::default();
                    let t = Instant::now();
                    let child = m.fork_with(StrategyId::Upstream, &mut ops);
                    total += t.elapsed();
                    black_box(&ops);
                    m.zap(black_box(child));
                }
                total
            })
        });
        drop(m);

        let floor = floor::Floor::new(nr_ptes, order, |pfn| {
            // What the fault path writes: present, user, accessed, NX, writable, dirty.
            let flags = X86PteFlags::PRESENT
                | X86PteFlags::USER
                | X86PteFlags::ACCESSED
                | X86PteFlags::NX
                | X86PteFlags::RW
                | X86PteFlags::DIRTY
                | X86PteFlags::SOFT_DIRTY;
            ((pfn.0 << 12) & arch_x86_64::PTE_PFN_MASK) | flags.bits()
        });
        group.bench_function("floor", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    floor.restore();
                    let t = Instant::now();
                    black_box(floor.copy());
                    total += t.elapsed();
                }
                total
            })
        });
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = copy_benches
}
criterion_main!(benches);
