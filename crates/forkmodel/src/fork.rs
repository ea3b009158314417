//! The fork-copy path: `copy_page_range` → `copy_pte_range` → `copy_present_pte(s)` /
//! `copy_nonpresent_pte`, in the shapes of the strategies. Function names follow
//! mm/memory.c so the model can be read side by side with the kernel. Only the copy is here;
//! VMA duplication, teardown and restore are in `model.rs`.

use std::sync::atomic::Ordering::Relaxed;

use crate::arch::{Arch, Pte};
use crate::mm::{Mm, Vma, rss, vma_needs_copy};
use crate::ops::{BatchEvent, Counter};
use crate::page::{MapcountModel, MapcountRules, PageArena, pg};
use crate::strategy::{BatchEnd, CopyStrategy, Walk};
use crate::table::{PteTable, SwapMap, TableId};
use crate::types::{Order, PAGE_SIZE, Pfn, VirtAddr};

/// Knobs of one fork.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForkConfig {
    /// How mapcounts are kept.
    pub mapcount: MapcountModel,
    /// Make `need_resched()` true on every n-th check (exercises the break/restart path);
    /// `None` = never, as on an idle CPU.
    pub resched_every: Option<u32>,
}

/// Why one attempt at copying present PTEs stopped.
enum Stop {
    /// `-EAGAIN`: a page must be copied and no folio is preallocated.
    Again,
}

/// The anon rmap duplication failed: the page may be DMA-pinned (`-EBUSY`).
struct Busy;

/// Everything one `copy_pte_range` pass reads or updates.
struct Cx<'a, C: Counter> {
    pages: &'a PageArena,
    swap: &'a SwapMap,
    src: &'a PteTable,
    dst: &'a PteTable,
    src_vma: &'a Vma,
    dst_vma: &'a Vma,
    src_has_pinned: bool,
    mapcount: MapcountModel,
    rss: [i64; rss::NR],
    c: &'a mut C,
}

impl<C: Counter> Cx<'_, C> {
    /// `vm_normal_page`: the page behind a present PTE, or None for special mappings.
    #[inline(always)]
    fn vm_normal_page<A: Arch>(&self, pte: Pte) -> Option<Pfn> {
        if A::pte_special(pte) {
            return None;
        }
        let pfn = A::pte_pfn(pte);
        self.pages.contains(pfn).then_some(pfn)
    }

    #[inline(always)]
    fn folio_ref_add(&mut self, folio: Pfn, nr: i32) {
        self.pages.page(folio).refcount.fetch_add(nr, Relaxed);
        self.c.count(|o| o.refcount_atomics += 1);
    }

    #[inline(always)]
    fn folio_ref_sub(&mut self, folio: Pfn, nr: i32) {
        self.pages.page(folio).refcount.fetch_sub(nr, Relaxed);
        self.c.count(|o| o.refcount_atomics += 1);
    }

    /// `folio_needs_cow_for_dma`: a COW mapping in a pinning mm of a maybe-pinned folio.
    #[inline(always)]
    fn folio_needs_cow_for_dma(&self, folio: Pfn) -> bool {
        self.src_vma.is_cow_mapping()
            && self.src_has_pinned
            && self.pages.folio_maybe_dma_pinned(folio)
    }

    /// Per-page mapcount increments, plus one `_large_mapcount` add for the whole range.
    #[inline(always)]
    fn dup_mapcounts(&mut self, folio: Pfn, page: Pfn, nr: u64) {
        let order = self.pages.folio_order(folio);
        if self.mapcount.per_page(order) {
            for i in 0..nr {
                self.pages.page(page.add(i)).mapcount.fetch_add(1, Relaxed);
            }
            self.c.count(|o| o.mapcount_atomics += nr);
        }
        if self.mapcount.large(order) {
            self.pages
                .page(folio)
                .large_mapcount
                .fetch_add(nr as i32, Relaxed);
            self.c.count(|o| o.large_mapcount_atomics += 1);
        }
    }

    /// `page_try_dup_anon_rmap` (v6.7) / `folio_try_dup_anon_rmap_pte` (v6.8): one page.
    #[inline(always)]
    fn try_dup_anon_rmap_pte(&mut self, folio: Pfn, page: Pfn) -> Result<(), Busy> {
        self.c.count(|o| o.rmap_calls += 1);
        let rec = self.pages.page(page);
        if rec.flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0 {
            if self.folio_needs_cow_for_dma(folio) {
                return Err(Busy);
            }
            rec.flags.fetch_and(!pg::ANON_EXCLUSIVE, Relaxed);
            self.c.count(|o| o.anon_exclusive_clears += 1);
        }
        self.dup_mapcounts(folio, page, 1);
        Ok(())
    }

    /// `folio_try_dup_anon_rmap_ptes` (v6.9): `nr` pages of one folio in one call. A maybe
    /// pinned folio with any exclusive page fails before anything changes.
    #[inline(always)]
    fn try_dup_anon_rmap_ptes(&mut self, folio: Pfn, page: Pfn, nr: u64) -> Result<(), Busy> {
        self.c.count(|o| o.rmap_calls += 1);
        if self.folio_needs_cow_for_dma(folio) {
            let any_exclusive = (0..nr).any(|i| {
                self.pages.page(page.add(i)).flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0
            });
            if any_exclusive {
                return Err(Busy);
            }
        }
        for i in 0..nr {
            let rec = self.pages.page(page.add(i));
            if rec.flags.load(Relaxed) & pg::ANON_EXCLUSIVE != 0 {
                rec.flags.fetch_and(!pg::ANON_EXCLUSIVE, Relaxed);
                self.c.count(|o| o.anon_exclusive_clears += 1);
            }
        }
        self.dup_mapcounts(folio, page, nr);
        Ok(())
    }

    /// `folio_dup_file_rmap_pte(s)` / `page_dup_file_rmap`.
    #[inline(always)]
    fn dup_file_rmap(&mut self, folio: Pfn, page: Pfn, nr: u64) {
        self.c.count(|o| o.rmap_calls += 1);
        self.dup_mapcounts(folio, page, nr);
    }

    #[inline(always)]
    fn report_batch(&mut self, addr: VirtAddr, nr: u64, pte_pfn: Pfn, folio: Option<Pfn>) {
        self.c.count(|o| o.batches += 1);
        if C::ENABLED {
            let (folio_start, folio_nr) = match folio {
                Some(f) => (Some(f), 1u64 << self.pages.folio_order(f)),
                None => (None, 1),
            };
            self.c.batch(BatchEvent {
                addr,
                nr,
                first_pfn: pte_pfn,
                folio_start,
                folio_nr,
                vma_end: self.src_vma.end,
            });
        }
    }

    /// `copy_present_page`: give the child its own copy of a maybe-pinned exclusive anon page;
    /// the parent keeps its writable, exclusive mapping.
    #[inline(never)]
    fn copy_present_page<A: Arch>(
        &mut self,
        dst_idx: usize,
        addr: VirtAddr,
        src_pte: Pte,
        page: Pfn,
        prealloc: &mut Option<Pfn>,
    ) -> Result<(), Stop> {
        let Some(new) = prealloc.take() else {
            return Err(Stop::Again);
        };
        let new_rec = self.pages.page(new);
        new_rec
            .content
            .store(self.pages.page(page).content.load(Relaxed), Relaxed);
        self.c.count(|o| o.page_copies += 1);
        // folio_add_new_anon_rmap on a folio nobody else can see yet: plain stores.
        new_rec.flags.store(
            pg::ALLOCATED | pg::HEAD | pg::ANON | pg::ANON_EXCLUSIVE,
            Relaxed,
        );
        new_rec.mapcount.store(0, Relaxed);
        self.rss[rss::ANON] += 1;
        let mut pte = A::pte_mkdirty(A::mk_pte(
            new,
            self.dst_vma.flags.contains(crate::mm::VmFlags::EXEC),
        ));
        if self.dst_vma.flags.contains(crate::mm::VmFlags::WRITE) {
            pte = A::pte_mkwrite(pte);
        }
        if A::pte_uffd_wp(src_pte) && self.dst_vma.userfaultfd_wp() {
            // 6.1 write-protects explicitly; since v6.5 `pte_mkuffd_wp` does it itself.
            pte = A::pte_wrprotect(A::pte_mkuffd_wp(pte));
        }
        A::set_ptes(self.pages, self.dst, dst_idx, addr, pte, 1, self.c);
        Ok(())
    }

    /// The tail common to all strategies (`__copy_present_ptes` in v6.9): write-protect the
    /// parent if COW, make the child's PTE old (clean if shared), drop uffd-wp unless the child
    /// VMA keeps it, and write `nr` child PTEs.
    #[inline(always)]
    fn copy_present_ptes_tail<A: Arch, const V4: bool>(
        &mut self,
        dst_idx: usize,
        src_idx: usize,
        mut pte: Pte,
        addr: VirtAddr,
        nr: usize,
        per_pte_wrprotect: bool,
    ) {
        if self.src_vma.is_cow_mapping() && A::pte_write(pte) {
            if V4 {
                A::ptep_set_wrprotects(self.src, src_idx, addr, nr, true, self.c);
            } else if per_pte_wrprotect {
                A::ptep_set_wrprotect(self.src, src_idx, addr, self.c);
            } else {
                A::wrprotect_ptes(self.src, src_idx, addr, nr, self.c);
            }
            pte = A::pte_wrprotect(pte);
        }
        if self.src_vma.flags.contains(crate::mm::VmFlags::SHARED) {
            pte = A::pte_mkclean(pte);
        }
        pte = A::pte_mkold(pte);
        if !self.dst_vma.userfaultfd_wp() {
            pte = A::pte_clear_uffd_wp(pte);
        }
        if V4 {
            A::set_ptes_full(self.pages, self.dst, dst_idx, addr, pte, nr, true, self.c);
        } else {
            A::set_ptes(self.pages, self.dst, dst_idx, addr, pte, nr, self.c);
        }
    }

    /// The per-PTE `copy_present_pte` of v6.1 and v6.7: one reference and one rmap dup per
    /// PTE. v6.7 (`REREAD`) reads the PTE again with `ptep_get` (removed in v6.9); 6.1 uses
    /// the value `copy_pte_range` loaded, `ptent`.
    #[inline(always)]
    fn copy_present_pte<A: Arch, const REREAD: bool>(
        &mut self,
        dst_idx: usize,
        src_idx: usize,
        ptent: Pte,
        addr: VirtAddr,
        prealloc: &mut Option<Pfn>,
    ) -> Result<(), Stop> {
        let pte = if REREAD {
            A::ptep_get(self.src, src_idx, self.c)
        } else {
            ptent
        };
        let page = self.vm_normal_page::<A>(pte);
        if let Some(page) = page {
            let folio = self.pages.folio_of(page);
            self.folio_ref_add(folio, 1);
            if self.pages.folio_test_anon(folio) {
                if self.try_dup_anon_rmap_pte(folio, page).is_err() {
                    self.folio_ref_sub(folio, 1);
                    self.copy_present_page::<A>(dst_idx, addr, pte, page, prealloc)?;
                    self.report_batch(addr, 1, A::pte_pfn(pte), None);
                    return Ok(());
                }
                self.rss[rss::ANON] += 1;
            } else {
                self.dup_file_rmap(folio, page, 1);
                self.rss[rss::FILE] += 1;
            }
            self.report_batch(addr, 1, page, Some(folio));
        } else {
            self.report_batch(addr, 1, A::pte_pfn(pte), None);
        }
        self.copy_present_ptes_tail::<A, false>(dst_idx, src_idx, pte, addr, 1, true);
        Ok(())
    }

    /// Ryan v4 `copy_present_ptes`: the arch vouches for `nr` PTEs; one `folio_ref_add`, then a
    /// per-page rmap dup that may trim the batch.
    #[inline(always)]
    fn copy_present_ptes_v4<A: Arch>(
        &mut self,
        dst_idx: usize,
        src_idx: usize,
        pte: Pte,
        addr: VirtAddr,
        mut nr: usize,
        prealloc: &mut Option<Pfn>,
    ) -> Result<usize, Stop> {
        let Some(page) = self.vm_normal_page::<A>(pte) else {
            self.report_batch(addr, nr as u64, A::pte_pfn(pte), None);
            self.copy_present_ptes_tail::<A, true>(dst_idx, src_idx, pte, addr, nr, false);
            return Ok(nr);
        };
        let folio = self.pages.folio_of(page);
        self.folio_ref_add(folio, nr as i32);
        if self.pages.folio_test_anon(folio) {
            for i in 0..nr {
                if self
                    .try_dup_anon_rmap_pte(folio, page.add(i as u64))
                    .is_err()
                {
                    if i == 0 {
                        self.folio_ref_sub(folio, nr as i32);
                        self.copy_present_page::<A>(dst_idx, addr, pte, page, prealloc)?;
                        self.report_batch(addr, 1, page, None);
                        return Ok(1);
                    }
                    self.folio_ref_sub(folio, (nr - i) as i32);
                    nr = i;
                    break;
                }
            }
            self.rss[rss::ANON] += nr as i64;
        } else {
            for i in 0..nr {
                self.dup_file_rmap(folio, page.add(i as u64), 1);
            }
            self.rss[rss::FILE] += nr as i64;
        }
        self.report_batch(addr, nr as u64, page, Some(folio));
        self.copy_present_ptes_tail::<A, true>(dst_idx, src_idx, pte, addr, nr, false);
        Ok(nr)
    }

    /// `folio_pte_batch` (v6.9) / `folio_pte_batch_flags` (≈v6.15+, `END` = `FolioCap`): how
    /// many PTEs from `src_idx` map consecutive pages of `folio` with the same bits once AF,
    /// write (always), dirty and soft-dirty (when ignored) are masked. Returns the count and
    /// whether any PTE after the first was writable (FPB_MERGE_WRITE has the same meaning).
    /// `END` is a [`BatchEnd::id`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn folio_pte_batch<A: Arch, const HINT: bool, const END: u8>(
        &mut self,
        folio: Pfn,
        src_idx: usize,
        pte: Pte,
        max_nr: usize,
        ignore_dirty: bool,
        ignore_soft_dirty: bool,
    ) -> (usize, bool) {
        let clear_ignored = |p: Pte| {
            let mut p = A::pte_wrprotect(A::pte_mkold(p));
            if ignore_dirty {
                p = A::pte_mkclean(p);
            }
            if ignore_soft_dirty {
                p = A::pte_clear_soft_dirty(p);
            }
            p
        };
        let folio_end_pfn = folio.add(1u64 << self.pages.folio_order(folio));
        // The capped batch never needs the PFN test: it stops at the folio's last page
        // without reading the next PTE.
        let max_nr = if END == BatchEnd::FolioCap.id() {
            max_nr.min((folio_end_pfn.0 - A::pte_pfn(pte).0) as usize)
        } else {
            max_nr
        };
        let mut any_writable = false;
        let mut nr = if HINT {
            A::pte_batch_hint(self.src, src_idx, pte)
        } else {
            1
        };
        let mut expected = A::pte_advance_pfn(clear_ignored(pte), nr);
        let mut idx = src_idx + nr;
        let limit = src_idx + max_nr;
        while idx < limit {
            let p = A::ptep_get(self.src, idx, self.c);
            let writable = A::pte_write(p);
            let p = clear_ignored(p);
            if p != expected {
                break;
            }
            if END == BatchEnd::PfnCheck.id() && A::pte_pfn(p) >= folio_end_pfn {
                break;
            }
            any_writable |= writable;
            nr = if HINT {
                A::pte_batch_hint(self.src, idx, p)
            } else {
                1
            };
            expected = A::pte_advance_pfn(expected, nr);
            idx += nr;
        }
        ((idx - src_idx).min(max_nr), any_writable)
    }

    /// v6.9+ `copy_present_ptes`: batch a large folio's consecutive PTEs, else copy one.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn copy_present_ptes_v69<A: Arch, const HINT: bool, const END: u8>(
        &mut self,
        dst_idx: usize,
        src_idx: usize,
        mut pte: Pte,
        addr: VirtAddr,
        max_nr: usize,
        prealloc: &mut Option<Pfn>,
    ) -> Result<usize, Stop> {
        let Some(page) = self.vm_normal_page::<A>(pte) else {
            self.report_batch(addr, 1, A::pte_pfn(pte), None);
            self.copy_present_ptes_tail::<A, false>(dst_idx, src_idx, pte, addr, 1, false);
            return Ok(1);
        };
        let folio = self.pages.folio_of(page);
        if prealloc.is_none() && self.pages.folio_order(folio) > 0 && max_nr != 1 {
            let ignore_dirty = self.src_vma.flags.contains(crate::mm::VmFlags::SHARED);
            let ignore_soft_dirty = !self.src_vma.soft_dirty_enabled();
            let (nr, any_writable) = self.folio_pte_batch::<A, HINT, END>(
                folio,
                src_idx,
                pte,
                max_nr,
                ignore_dirty,
                ignore_soft_dirty,
            );
            self.folio_ref_add(folio, nr as i32);
            if self.pages.folio_test_anon(folio) {
                if self.try_dup_anon_rmap_ptes(folio, page, nr as u64).is_err() {
                    self.folio_ref_sub(folio, nr as i32);
                    return Err(Stop::Again);
                }
                self.rss[rss::ANON] += nr as i64;
            } else {
                self.dup_file_rmap(folio, page, nr as u64);
                self.rss[rss::FILE] += nr as i64;
            }
            if any_writable {
                pte = A::pte_mkwrite(pte);
            }
            self.report_batch(addr, nr as u64, page, Some(folio));
            self.copy_present_ptes_tail::<A, false>(dst_idx, src_idx, pte, addr, nr, false);
            return Ok(nr);
        }
        self.folio_ref_add(folio, 1);
        if self.pages.folio_test_anon(folio) {
            if self.try_dup_anon_rmap_pte(folio, page).is_err() {
                self.folio_ref_sub(folio, 1);
                self.copy_present_page::<A>(dst_idx, addr, pte, page, prealloc)?;
                self.report_batch(addr, 1, page, None);
                return Ok(1);
            }
            self.rss[rss::ANON] += 1;
        } else {
            self.dup_file_rmap(folio, page, 1);
            self.rss[rss::FILE] += 1;
        }
        self.report_batch(addr, 1, page, Some(folio));
        self.copy_present_ptes_tail::<A, false>(dst_idx, src_idx, pte, addr, 1, false);
        Ok(1)
    }

    /// `copy_nonpresent_pte` for swap entries: one more swap reference; the parent's entry
    /// loses its exclusive marker; the child's loses uffd-wp unless its VMA keeps it.
    #[inline(always)]
    fn copy_nonpresent_pte<A: Arch>(
        &mut self,
        dst_idx: usize,
        src_idx: usize,
        addr: VirtAddr,
        orig: Pte,
    ) {
        let entry = A::pte_to_swp_entry(orig);
        self.swap.duplicate(entry.offset);
        self.c.count(|o| o.swap_dups += 1);
        self.rss[rss::SWAP] += 1;
        let mut pte = orig;
        if A::pte_swp_exclusive(orig) {
            // "Mark the swap entry as shared": set_pte_at on the parent.
            pte = A::pte_swp_clear_exclusive(orig);
            A::set_ptes(self.pages, self.src, src_idx, addr, pte, 1, self.c);
        }
        if !self.dst_vma.userfaultfd_wp() {
            pte = A::pte_swp_clear_uffd_wp(pte);
        }
        A::set_ptes(self.pages, self.dst, dst_idx, addr, pte, 1, self.c);
    }
}

/// Outcome of one pass of the `copy_pte_range` loop.
enum Pass {
    Done,
    /// Broke out for need_resched; restart at the returned address.
    Resched,
    /// Needs a preallocated folio; restart at the returned address.
    Again,
}

/// One pass of the `copy_pte_range` loop body (between `again:` and the unlock), from `addr`
/// up to `end` within one page table. Returns why it stopped and where.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn copy_pte_range_pass<A: Arch, S: CopyStrategy, C: Counter>(
    cx: &mut Cx<'_, C>,
    mut addr: VirtAddr,
    end: VirtAddr,
    prealloc: &mut Option<Pfn>,
    leftover: &mut Option<Pfn>,
    resched_every: Option<u32>,
    resched_tick: &mut u32,
) -> (Pass, VirtAddr) {
    let mut progress: u32 = 0;
    let mut outcome = Pass::Done;
    A::arch_enter_lazy_mmu_mode(cx.c);
    loop {
        let mut nr: usize = 1;
        let idx = addr.pte_index();
        'body: {
            if progress >= 32 {
                progress = 0;
                cx.c.count(|o| o.resched_checks += 1);
                if let Some(every) = resched_every {
                    *resched_tick += 1;
                    if (*resched_tick).is_multiple_of(every) {
                        outcome = Pass::Resched;
                        break 'body;
                    }
                }
            }
            let ptent = A::ptep_get(cx.src, idx, cx.c);
            if A::pte_none(ptent) {
                progress += 1;
                break 'body;
            }
            if !A::pte_present(ptent) {
                cx.copy_nonpresent_pte::<A>(idx, idx, addr, ptent);
                progress += 8;
                break 'body;
            }
            let max_nr = ((end.0 - addr.0) / PAGE_SIZE) as usize;
            let copied = match S::WALK {
                Walk::PerPteV67 => cx
                    .copy_present_pte::<A, true>(idx, idx, ptent, addr, prealloc)
                    .map(|()| 1),
                Walk::PerPteV61 => cx
                    .copy_present_pte::<A, false>(idx, idx, ptent, addr, prealloc)
                    .map(|()| 1),
                Walk::ArchRemaining => {
                    let n = A::pte_batch_remaining(ptent, addr, end).clamp(1, max_nr);
                    cx.copy_present_ptes_v4::<A>(idx, idx, ptent, addr, n, prealloc)
                }
                Walk::FolioPteBatch { hint, end } => {
                    // Both are consts of S: the compiler keeps one arm per strategy.
                    macro_rules! batch {
                        ($hint:literal, $end:ident) => {
                            cx.copy_present_ptes_v69::<A, $hint, { BatchEnd::$end.id() }>(
                                idx, idx, ptent, addr, max_nr, prealloc,
                            )
                        };
                    }
                    match (hint, end) {
                        (true, BatchEnd::PfnCheck) => batch!(true, PfnCheck),
                        (false, BatchEnd::PfnCheck) => batch!(false, PfnCheck),
                        (true, BatchEnd::FolioCap) => batch!(true, FolioCap),
                        (false, BatchEnd::FolioCap) => batch!(false, FolioCap),
                        (true, BatchEnd::Unbounded) => batch!(true, Unbounded),
                        (false, BatchEnd::Unbounded) => batch!(false, Unbounded),
                    }
                }
            };
            match copied {
                Ok(n) => {
                    nr = n;
                    progress += 8 * n as u32;
                    // An unused preallocated folio is not kept for the next PTE
                    // (mempolicy is per address): it is put after this pass.
                    if prealloc.is_some() {
                        *leftover = prealloc.take();
                    }
                }
                Err(Stop::Again) => {
                    outcome = Pass::Again;
                    break 'body;
                }
            }
        }
        if !matches!(outcome, Pass::Done) {
            break;
        }
        addr = addr.add_pages(nr as u64);
        if addr == end {
            break;
        }
    }
    A::arch_leave_lazy_mmu_mode(cx.c);
    (outcome, addr)
}

/// `copy_pte_range`: copy the PTEs of `[addr, end)` (within one page table) from `src_mm` to
/// `dst_mm`, restarting after resched breaks and after preallocating a folio for `-EAGAIN`.
#[allow(clippy::too_many_arguments)]
fn copy_pte_range<A: Arch, S: CopyStrategy, C: Counter>(
    mem: &mut crate::model::Memory,
    dst_mm: &mut Mm,
    src_mm: &Mm,
    dst_vma: &Vma,
    src_vma: &Vma,
    mut addr: VirtAddr,
    end: VirtAddr,
    cfg: &ForkConfig,
    resched_tick: &mut u32,
    c: &mut C,
) {
    let src_tid: TableId = match src_mm.table_for(addr) {
        Some(t) => t,
        None => return,
    };
    let pmd = addr.pmd_index();
    let dst_tid = match dst_mm.tables.get(&pmd) {
        Some(&t) => t,
        None => {
            let t = mem.tables.alloc();
            dst_mm.tables.insert(pmd, t);
            c.count(|o| o.pte_tables_allocated += 1);
            t
        }
    };
    let mut prealloc: Option<Pfn> = None;
    let mut leftover: Option<Pfn> = None;
    let mut first = true;
    loop {
        c.count(|o| o.pte_range_calls += 1);
        if !first {
            c.count(|o| o.pte_range_restarts += 1);
        }
        first = false;
        let (pass, next) = {
            let mut cx = Cx {
                pages: &mem.pages,
                swap: &mem.swap,
                src: mem.tables.get(src_tid),
                dst: mem.tables.get(dst_tid),
                src_vma,
                dst_vma,
                src_has_pinned: src_mm.has_pinned,
                mapcount: cfg.mapcount,
                rss: [0; rss::NR],
                c: &mut *c,
            };
            let r = copy_pte_range_pass::<A, S, C>(
                &mut cx,
                addr,
                end,
                &mut prealloc,
                &mut leftover,
                cfg.resched_every,
                resched_tick,
            );
            // add_mm_rss_vec
            for (d, s) in dst_mm.rss.iter_mut().zip(cx.rss) {
                *d += s;
            }
            r
        };
        c.count(|o| o.rss_flushes += 1);
        addr = next;
        if let Some(p) = leftover.take() {
            mem.pages.free_folio(p);
        }
        match pass {
            Pass::Done => {
                debug_assert_eq!(addr, end);
                if let Some(p) = prealloc.take() {
                    mem.pages.free_folio(p);
                }
                break;
            }
            Pass::Resched => {}
            Pass::Again => {
                // folio_prealloc: an order-0 anon folio for copy_present_page.
                prealloc = Some(mem.pages.alloc_folio(Order::new(0).expect("order 0"), true));
                c.count(|o| o.folio_allocs += 1);
            }
        }
    }
}

/// `copy_page_range` for one VMA: walk its PMD ranges and copy each page table.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_page_range<A: Arch, S: CopyStrategy, C: Counter>(
    mem: &mut crate::model::Memory,
    dst_mm: &mut Mm,
    src_mm: &Mm,
    dst_vma: &Vma,
    src_vma: &Vma,
    cfg: &ForkConfig,
    resched_tick: &mut u32,
    c: &mut C,
) {
    if !vma_needs_copy(dst_vma, src_vma) {
        return;
    }
    let end = src_vma.end;
    let mut addr = src_vma.start;
    while addr < end {
        let next = addr.pmd_addr_end(end);
        copy_pte_range::<A, S, C>(
            mem,
            dst_mm,
            src_mm,
            dst_vma,
            src_vma,
            addr,
            next,
            cfg,
            resched_tick,
            c,
        );
        addr = next;
    }
}
