//! A parent process in the model and what happens to it: populate (fault path), fork
//! (`dup_mmap` → `copy_page_range` per VMA → one `flush_tlb_mm`), child teardown (zap), and the
//! two repeat modes: `fresh` (restore the parent's freshly-faulted state before each timed
//! fork, the thread's method) and `steady` (fork the same parent again).

use std::marker::PhantomData;
use std::sync::atomic::Ordering::Relaxed;

use crate::arch::{Arch, Pte, SwapEntry};
use crate::fork::{ForkConfig, copy_page_range};
use crate::layout::{Chunk, Layout, LayoutError, Tweak};
use crate::mm::{Backing, Mm, VmFlags, Vma, rss};
use crate::ops::{Counter, NoCount};
use crate::page::{MapcountModel, MapcountRules, PageArena, parent_mapcount, pg};
use crate::strategy::{CopyStrategy, StrategyId, StrategyVisitor, VisitStrategy};
use crate::table::{SwapMap, TableId, TablePool};
use crate::types::{PTRS_PER_PTE, Pfn, VirtAddr};

/// All "physical" state shared by every mm: page records, page tables, swap slots.
pub struct Memory {
    pub pages: PageArena,
    pub tables: TablePool,
    pub swap: SwapMap,
}

/// How repeated timed forks treat the parent (the contract's word): `Fresh` restores the
/// parent's freshly-faulted state (writable, exclusive, young, dirty) before each fork, outside
/// the timed section ([`Model::restore_fresh`]); `Steady` forks the same parent again, whose
/// PTEs stay read-only and shared after the first fork.
pub use contract::Mode;

/// The parent's page-table and page state right after populating.
struct Snapshot {
    tables: Vec<(TableId, Box<[u64; PTRS_PER_PTE]>)>,
    /// PageAnonExclusive per arena index, as a bitmap.
    exclusive: Vec<u64>,
}

/// A parent process over an arch engine `A`.
pub struct Model<A: Arch> {
    pub mem: Memory,
    pub parent: Mm,
    pub cfg: ForkConfig,
    snapshot: Option<Snapshot>,
    _arch: PhantomData<A>,
}

impl<A: Arch> Model<A> {
    /// An empty parent.
    pub fn new(cfg: ForkConfig) -> Model<A> {
        Model {
            mem: Memory {
                pages: PageArena::with_capacity(0),
                tables: TablePool::new(),
                swap: SwapMap::default(),
            },
            parent: Mm {
                mapcount: parent_mapcount(cfg.mapcount),
                ..Mm::default()
            },
            cfg,
            snapshot: None,
            _arch: PhantomData,
        }
    }

    /// A parent populated with `layout`, snapshotted for `fresh` mode.
    pub fn with_layout(layout: &Layout, cfg: ForkConfig) -> Result<Model<A>, LayoutError> {
        let mut m = Model::new(cfg);
        m.populate(layout)?;
        m.take_snapshot();
        Ok(m)
    }

    /// Map `layout` into the parent through the fault path.
    pub fn populate(&mut self, layout: &Layout) -> Result<(), LayoutError> {
        layout.validate()?;
        let pages_needed: u64 = layout.regions.iter().map(|r| r.populated_pages()).sum();
        self.mem.pages = PageArena::with_capacity(pages_needed as usize + 1024);
        for region in &layout.regions {
            let special = region
                .chunks
                .iter()
                .any(|c| matches!(c, Chunk::Special { .. }));
            // 1. VMAs, each starting writable; read-only pieces are mprotect'ed afterwards.
            let mut vma_start = region.start;
            let first_vma = self.parent.vmas.len();
            for piece in &region.vmas {
                let mut flags = VmFlags::READ | VmFlags::MAYWRITE | VmFlags::WRITE;
                if region.shared {
                    flags |= VmFlags::SHARED;
                }
                if piece.uffd_wp {
                    flags |= VmFlags::UFFD_WP;
                }
                if !piece.soft_dirty_tracking {
                    flags |= VmFlags::SOFTDIRTY;
                }
                if special {
                    flags |= VmFlags::PFNMAP;
                }
                let end = vma_start.add_pages(piece.pages);
                self.parent.vmas.push(Vma {
                    start: vma_start,
                    end,
                    flags,
                    backing: region.backing,
                    has_anon_vma: piece.has_anon_vma
                        || (region.backing == Backing::Anon && !region.shared),
                    uffd_event_fork: piece.uffd_event_fork,
                });
                vma_start = end;
            }
            // 2. Fault in the chunks.
            let mut cursor = 0u64;
            for chunk in &region.chunks {
                match *chunk {
                    Chunk::Folio { order, pinned } => {
                        cursor = cursor.next_multiple_of(order.nr_pages());
                        let addr = region.start.add_pages(cursor);
                        let anon = region.backing == Backing::Anon;
                        let head = self.mem.pages.alloc_folio(order, anon);
                        self.fault_folio(addr, head, order.nr_pages(), anon, region.shared);
                        if pinned {
                            self.mem.pages.pin_folio(head);
                            self.parent.has_pinned = true;
                        }
                        cursor += order.nr_pages();
                    }
                    Chunk::Folios { order, count } => {
                        cursor = cursor.next_multiple_of(order.nr_pages());
                        let anon = region.backing == Backing::Anon;
                        for _ in 0..count {
                            let addr = region.start.add_pages(cursor);
                            let head = self.mem.pages.alloc_folio(order, anon);
                            self.fault_folio(addr, head, order.nr_pages(), anon, region.shared);
                            cursor += order.nr_pages();
                        }
                    }
                    Chunk::None { pages } => cursor += pages,
                    Chunk::Swap { pages, exclusive } => {
                        for _ in 0..pages {
                            let offset = self.mem.swap.alloc();
                            let mut pte = A::swp_entry_to_pte(SwapEntry {
                                swap_type: 0,
                                offset,
                            });
                            if exclusive {
                                pte = A::pte_swp_mkexclusive(pte);
                            }
                            pte = A::pte_swp_mksoft_dirty(pte);
                            let addr = region.start.add_pages(cursor);
                            self.write_parent_pte(addr, pte);
                            self.parent.rss[rss::SWAP] += 1;
                            cursor += 1;
                        }
                    }
                    Chunk::Special { pages } => {
                        for _ in 0..pages {
                            // A raw PFN far outside the arena (device memory).
                            let pfn = Pfn(0x8_0000_0000 + cursor);
                            let pte = A::pte_mkspecial(A::pte_mkwrite(A::pte_mkyoung(A::mk_pte(
                                pfn, false,
                            ))));
                            self.write_parent_pte(region.start.add_pages(cursor), pte);
                            cursor += 1;
                        }
                    }
                }
            }
            // 3. mprotect read-only pieces.
            for vma in &mut self.parent.vmas[first_vma..] {
                let piece_writable = region.vmas[vmas_index(region, vma.start)].writable;
                if !piece_writable {
                    vma.flags.remove(VmFlags::WRITE);
                }
            }
            for vi in first_vma..self.parent.vmas.len() {
                let vma = self.parent.vmas[vi].clone();
                if !vma.flags.contains(VmFlags::WRITE) {
                    let mut a = vma.start;
                    while a < vma.end {
                        self.modify_parent_pte(a, |p| {
                            if A::pte_present(p) {
                                A::pte_wrprotect(p)
                            } else {
                                p
                            }
                        });
                        a = a.add_pages(1);
                    }
                }
            }
            // 4. Per-PTE tweaks.
            for &(page, tweak) in &region.tweaks {
                let addr = region.start.add_pages(page);
                let vma = self
                    .parent
                    .find_vma(addr)
                    .cloned()
                    .expect("tweak inside a VMA");
                match tweak {
                    Tweak::Unmap => self.unmap_parent_pte(addr),
                    Tweak::UffdWp if vma.userfaultfd_wp() => self.modify_parent_pte(addr, |p| {
                        if A::pte_none(p) {
                            p
                        } else if A::pte_present(p) {
                            A::pte_wrprotect(A::pte_mkuffd_wp(p))
                        } else {
                            A::pte_swp_mkuffd_wp(p)
                        }
                    }),
                    Tweak::UffdWp => {}
                    Tweak::ClearSoftDirty => self.modify_parent_pte(addr, |p| {
                        if A::pte_present(p) {
                            A::pte_wrprotect(A::pte_clear_soft_dirty(p))
                        } else {
                            p
                        }
                    }),
                    Tweak::Wrprotect => self.modify_parent_pte(addr, |p| {
                        if A::pte_present(p) {
                            A::pte_wrprotect(p)
                        } else {
                            p
                        }
                    }),
                    Tweak::MkOld => self.modify_parent_pte(addr, |p| {
                        if A::pte_present(p) {
                            A::pte_mkold(p)
                        } else {
                            p
                        }
                    }),
                    Tweak::MkClean => self.modify_parent_pte(addr, |p| {
                        if A::pte_present(p) {
                            A::pte_mkclean(p)
                        } else {
                            p
                        }
                    }),
                }
            }
        }
        // Page tables for the child forks come from a warm pool.
        let need = self.parent.tables.len();
        self.mem.tables.reserve_free(need);
        Ok(())
    }

    /// `do_anonymous_page` / `finish_fault` for a whole folio: one `set_ptes(nr)`.
    fn fault_folio(&mut self, addr: VirtAddr, head: Pfn, nr: u64, anon: bool, shared: bool) {
        let mut pte = A::pte_mkyoung(A::mk_pte(head, false));
        if anon || shared {
            // A write fault: dirty and writable (the VMA starts writable).
            pte = A::pte_mkwrite(A::pte_mkdirty(pte));
        }
        let tid = self.table_or_alloc(addr);
        let pages = &self.mem.pages;
        A::set_ptes(
            pages,
            self.mem.tables.get(tid),
            addr.pte_index(),
            addr,
            pte,
            nr as usize,
            &mut NoCount,
        );
        let h = pages.page(head);
        // The fault took one reference per mapped page and set up the mapcounts.
        h.refcount.store(nr as i32, Relaxed);
        let order = h.order;
        let mapcount = self.parent.mapcount;
        for i in 0..nr {
            let p = pages.page(head.add(i));
            if mapcount.per_page(order) {
                p.mapcount.store(0, Relaxed);
            }
            if anon {
                p.flags.fetch_or(pg::ANON_EXCLUSIVE, Relaxed);
            }
        }
        if mapcount.large(order) {
            h.large_mapcount.store(nr as i32 - 1, Relaxed);
        }
        let counter = if anon { rss::ANON } else { rss::FILE };
        self.parent.rss[counter] += nr as i64;
    }

    fn table_or_alloc(&mut self, addr: VirtAddr) -> TableId {
        let pmd = addr.pmd_index();
        if let Some(&t) = self.parent.tables.get(&pmd) {
            return t;
        }
        let t = self.mem.tables.alloc();
        self.parent.tables.insert(pmd, t);
        t
    }

    fn write_parent_pte(&mut self, addr: VirtAddr, pte: Pte) {
        let tid = self.table_or_alloc(addr);
        self.mem.tables.get(tid).store(addr.pte_index(), pte.0);
    }

    fn modify_parent_pte(&mut self, addr: VirtAddr, f: impl FnOnce(Pte) -> Pte) {
        if let Some(tid) = self.parent.table_for(addr) {
            let t = self.mem.tables.get(tid);
            A::prepare_single_update(t, addr.pte_index(), addr, &mut NoCount);
            let old = Pte(t.load(addr.pte_index()));
            t.store(addr.pte_index(), f(old).0);
        }
    }

    /// Zap one parent PTE (MADV_DONTNEED of one page).
    fn unmap_parent_pte(&mut self, addr: VirtAddr) {
        let Some(tid) = self.parent.table_for(addr) else {
            return;
        };
        A::prepare_single_update(
            self.mem.tables.get(tid),
            addr.pte_index(),
            addr,
            &mut NoCount,
        );
        let pte = Pte(self.mem.tables.get(tid).xchg(addr.pte_index(), 0));
        let mapcount = self.parent.mapcount;
        if let Some(folio) = zap_one::<A>(
            &self.mem.pages,
            &self.mem.swap,
            pte,
            mapcount,
            &mut self.parent.rss,
        ) {
            self.mem.pages.free_folio(folio);
        }
    }

    fn take_snapshot(&mut self) {
        let tables = self
            .parent
            .tables
            .values()
            .map(|&tid| {
                let t = self.mem.tables.get(tid);
                (tid, Box::new(std::array::from_fn(|i| t.load(i))))
            })
            .collect();
        let n = self.mem.pages.len();
        let mut exclusive = vec![0u64; n.div_ceil(64)];
        let base = self.mem.pages.base();
        for i in 0..n {
            let pfn = base.add(i as u64);
            if self.mem.pages.page(pfn).flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0 {
                exclusive[i / 64] |= 1 << (i % 64);
            }
        }
        self.snapshot = Some(Snapshot { tables, exclusive });
    }

    /// Restore the parent to its state right after populating (`fresh` mode). Call only with
    /// no child alive.
    pub fn restore_fresh(&mut self) {
        let Some(snap) = &self.snapshot else {
            return;
        };
        for (tid, vals) in &snap.tables {
            let t = self.mem.tables.get(*tid);
            for (i, &v) in vals.iter().enumerate() {
                t.store(i, v);
            }
        }
        let base = self.mem.pages.base();
        for (w, &bits) in snap.exclusive.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let b = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let pfn = base.add((w * 64 + b) as u64);
                self.mem
                    .pages
                    .page(pfn)
                    .flags
                    .fetch_or(pg::ANON_EXCLUSIVE, Relaxed);
            }
        }
    }

    /// `dup_mmap` with strategy `S`: copy every VMA that needs it, then one `flush_tlb_mm`.
    /// The fork keeps mapcounts as `S`'s kernel does under the configured model
    /// ([`contract::Strategy::effective_mapcount`]). Returns the child.
    pub fn fork<S: CopyStrategy, C: Counter>(&mut self, c: &mut C) -> Mm {
        let cfg = ForkConfig {
            mapcount: S::ID.effective_mapcount(self.cfg.mapcount),
            ..self.cfg
        };
        let mut child = Mm {
            mapcount: cfg.mapcount,
            ..Mm::default()
        };
        let mut resched_tick = 0u32;
        let vmas = std::mem::take(&mut self.parent.vmas);
        for vma in &vmas {
            let dst_vma = vma.dup_for_child();
            copy_page_range::<A, S, C>(
                &mut self.mem,
                &mut child,
                &self.parent,
                &dst_vma,
                vma,
                &cfg,
                &mut resched_tick,
                c,
            );
            child.vmas.push(dst_vma);
        }
        self.parent.vmas = vmas;
        A::flush_tlb_mm(c);
        child
    }

    /// Fork with a strategy chosen at run time.
    pub fn fork_with<C: Counter>(&mut self, strategy: StrategyId, c: &mut C) -> Mm {
        struct V<'a, A: Arch, C: Counter>(&'a mut Model<A>, &'a mut C);
        impl<A: Arch, C: Counter> StrategyVisitor for V<'_, A, C> {
            type Output = Mm;
            fn visit<S: CopyStrategy>(self) -> Mm {
                self.0.fork::<S, C>(self.1)
            }
        }
        strategy.visit(V(self, c))
    }

    /// Tear the child down (exit_mmap's zap), returning its pages and tables.
    pub fn zap(&mut self, child: Mm) {
        let mut to_free = Vec::new();
        let mut rss_scratch = [0i64; rss::NR];
        for (_, &tid) in child.tables.iter() {
            let t = self.mem.tables.get(tid);
            for i in 0..PTRS_PER_PTE {
                let pte = Pte(t.load(i));
                if let Some(f) = zap_one::<A>(
                    &self.mem.pages,
                    &self.mem.swap,
                    pte,
                    child.mapcount,
                    &mut rss_scratch,
                ) {
                    to_free.push(f);
                }
            }
        }
        for (_, tid) in child.tables {
            self.mem.tables.free(tid);
        }
        for f in to_free {
            self.mem.pages.free_folio(f);
        }
    }

    /// The parent's PTE at `addr` (none when no table).
    pub fn parent_pte(&self, addr: VirtAddr) -> Pte {
        pte_at(&self.mem, &self.parent, addr)
    }

    /// The parent's PTE at `addr` as `ptep_get` sees it, arch-neutral.
    pub fn parent_view(&self, addr: VirtAddr) -> crate::arch::PteView {
        view_at::<A>(&self.mem, &self.parent, addr)
    }

    /// Bytes the model holds: page records plus page tables.
    pub fn footprint_bytes(&self) -> usize {
        self.mem.pages.bytes() + self.mem.tables.bytes()
    }
}

/// The PTE of `mm` at `addr` (none when no table).
pub fn pte_at(mem: &Memory, mm: &Mm, addr: VirtAddr) -> Pte {
    match mm.table_for(addr) {
        Some(tid) => Pte(mem.tables.get(tid).load(addr.pte_index())),
        None => Pte(0),
    }
}

/// The PTE of `mm` at `addr` as `ptep_get` sees it, arch-neutral.
pub fn view_at<A: Arch>(mem: &Memory, mm: &Mm, addr: VirtAddr) -> crate::arch::PteView {
    match mm.table_for(addr) {
        Some(tid) => A::view_at(mem.tables.get(tid), addr.pte_index()),
        None => crate::arch::PteView::None,
    }
}

fn vmas_index(region: &crate::layout::Region, addr: VirtAddr) -> usize {
    let page = (addr.0 - region.start.0) / crate::types::PAGE_SIZE;
    let mut acc = 0;
    for (i, v) in region.vmas.iter().enumerate() {
        acc += v.pages;
        if page < acc {
            return i;
        }
    }
    region.vmas.len() - 1
}

/// Drop what one PTE holds: a mapcount and a reference on its folio, or a swap reference.
/// Returns the folio if that was its last reference.
fn zap_one<A: Arch>(
    pages: &PageArena,
    swap: &SwapMap,
    pte: Pte,
    mapcount: MapcountModel,
    rss_acc: &mut [i64; rss::NR],
) -> Option<Pfn> {
    if A::pte_none(pte) {
        return None;
    }
    if !A::pte_present(pte) {
        swap.put(A::pte_to_swp_entry(pte).offset);
        rss_acc[rss::SWAP] -= 1;
        return None;
    }
    if A::pte_special(pte) {
        return None;
    }
    let pfn = A::pte_pfn(pte);
    if !pages.contains(pfn) {
        return None;
    }
    let folio = pages.folio_of(pfn);
    let order = pages.folio_order(folio);
    if mapcount.per_page(order) {
        pages.page(pfn).mapcount.fetch_sub(1, Relaxed);
    }
    if mapcount.large(order) {
        pages.page(folio).large_mapcount.fetch_sub(1, Relaxed);
    }
    let anon = pages.folio_test_anon(folio);
    rss_acc[if anon { rss::ANON } else { rss::FILE }] -= 1;
    let before = pages.page(folio).refcount.fetch_sub(1, Relaxed);
    (before == 1).then_some(folio)
}
