//! "Physical memory": an arena of `struct page`-shaped records, one 64-byte cache line per
//! 4 KiB page, so refcount/mapcount atomics touch memory the way the kernel's do. Folios are
//! naturally aligned runs of records; the head carries `_refcount`, `_large_mapcount` and
//! `_pincount`, every page its own `_mapcount` and PageAnonExclusive.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::types::{Order, Pfn};

/// Page flag bits kept in [`PageRecord::flags`].
pub mod pg {
    /// The record belongs to an allocated folio.
    pub const ALLOCATED: u32 = 1 << 0;
    /// First page of a folio.
    pub const HEAD: u32 = 1 << 1;
    /// Anonymous memory (else page cache).
    pub const ANON: u32 = 1 << 2;
    /// PageAnonExclusive: this anon page is mapped by exactly one process, writable in place.
    pub const ANON_EXCLUSIVE: u32 = 1 << 3;
}

/// `GUP_PIN_COUNTING_BIAS`: what one FOLL_PIN adds to an order-0 folio's refcount.
pub const GUP_PIN_COUNTING_BIAS: i32 = 1024;

/// Metadata of one 4 KiB page, shaped like `struct page`: 64 bytes, cache-line aligned.
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct PageRecord {
    /// `pg::*` bits; PageAnonExclusive is set and cleared atomically as in the kernel.
    pub flags: AtomicU32,
    /// Folio order (valid on every page of an allocated folio).
    pub order: u8,
    /// Distance to the folio head, in pages (`compound_head`).
    pub head_offset: u32,
    /// `_refcount` (meaningful on the head only).
    pub refcount: AtomicI32,
    /// `_mapcount`, kernel-biased: -1 means unmapped.
    pub mapcount: AtomicI32,
    /// `_large_mapcount` (head of large folios only), kernel-biased: -1 means unmapped.
    pub large_mapcount: AtomicI32,
    /// `_pincount` (head of large folios only).
    pub pincount: AtomicI32,
    /// A tag standing for the page's contents, so copies can be checked.
    pub content: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<PageRecord>() == 64);

impl PageRecord {
    fn reset(&mut self) {
        *self = PageRecord::default();
    }
}

/// How the model keeps mapcounts (the kernel's CONFIG choices over time); named in the
/// contract, its rules are here ([`MapcountRules`]).
pub use contract::Mapcount as MapcountModel;

/// What a mapcount model keeps, per folio order.
pub trait MapcountRules: Copy {
    /// Whether per-page `_mapcount` is kept for a folio of this order.
    fn per_page(self, order: u8) -> bool;
    /// Whether `_large_mapcount` is kept for a folio of this order.
    fn large(self, order: u8) -> bool;
}

impl MapcountRules for MapcountModel {
    #[inline(always)]
    fn per_page(self, order: u8) -> bool {
        order == 0 || !matches!(self, MapcountModel::LargeOnly)
    }
    #[inline(always)]
    fn large(self, order: u8) -> bool {
        order > 0 && !matches!(self, MapcountModel::PerPage)
    }
}

/// The mapcounts a populated parent keeps under `requested`: everything any strategy's fork
/// may update ([`contract::Strategy::effective_mapcount`]), so one parent serves every
/// strategy. Under `per-page` that adds `_large_mapcount` (which `current` updates); the
/// thread's strategies leave it alone, so their counts do not change.
pub fn parent_mapcount(requested: MapcountModel) -> MapcountModel {
    contract::Strategy::ALL
        .iter()
        .map(|s| s.effective_mapcount(requested))
        .fold(requested, |a, b| {
            if a == b {
                a
            } else {
                // Two different models together keep both kinds of count.
                MapcountModel::PerPageAndLarge
            }
        })
}

/// The page arena: physical frames `base .. base + len`.
#[derive(Debug)]
pub struct PageArena {
    base: u64,
    pages: Vec<PageRecord>,
    /// Freed folios by order, reused before the bump pointer advances.
    free: [Vec<u64>; 10],
    next_content: u64,
}

/// Where the arena's frames start: 4 GiB, 2 MiB-aligned, so PFNs look like real ones.
pub const ARENA_BASE_PFN: u64 = 0x10_0000;

impl PageArena {
    /// An empty arena with room for `capacity_pages` records before it reallocates.
    pub fn with_capacity(capacity_pages: usize) -> PageArena {
        PageArena {
            base: ARENA_BASE_PFN,
            pages: Vec::with_capacity(capacity_pages),
            free: Default::default(),
            next_content: 1,
        }
    }

    /// Records in use or reserved (including alignment gaps).
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no record was ever allocated.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Bytes of page records currently allocated.
    pub fn bytes(&self) -> usize {
        self.pages.capacity() * std::mem::size_of::<PageRecord>()
    }

    /// First frame of the arena.
    pub fn base(&self) -> Pfn {
        Pfn(self.base)
    }

    /// Whether `pfn` is backed by a record.
    #[inline(always)]
    pub fn contains(&self, pfn: Pfn) -> bool {
        pfn.0 >= self.base && pfn.0 - self.base < self.pages.len() as u64
    }

    /// The record of `pfn` (`pfn_to_page`). Panics outside the arena.
    #[inline(always)]
    pub fn page(&self, pfn: Pfn) -> &PageRecord {
        &self.pages[(pfn.0 - self.base) as usize]
    }

    /// The record of `pfn` if it is in an allocated folio.
    #[inline(always)]
    pub fn try_page(&self, pfn: Pfn) -> Option<&PageRecord> {
        let idx = pfn.0.checked_sub(self.base)? as usize;
        let p = self.pages.get(idx)?;
        (p.flags.load(Relaxed) & pg::ALLOCATED != 0).then_some(p)
    }

    /// First frame of the folio containing `pfn` (`page_folio`).
    #[inline(always)]
    pub fn folio_of(&self, pfn: Pfn) -> Pfn {
        Pfn(pfn.0 - self.page(pfn).head_offset as u64)
    }

    /// Allocate a naturally aligned folio of `order` with refcount 1, unmapped, fresh contents.
    pub fn alloc_folio(&mut self, order: Order, anon: bool) -> Pfn {
        let nr = order.nr_pages();
        let start = match self.free[order.get() as usize].pop() {
            Some(idx) => idx,
            None => {
                let aligned =
                    (self.base + self.pages.len() as u64).next_multiple_of(nr) - self.base;
                let new_len = (aligned + nr) as usize;
                self.pages.resize_with(new_len, PageRecord::default);
                aligned
            }
        };
        let head = Pfn(self.base + start);
        for i in 0..nr {
            let content = self.next_content;
            self.next_content += 1;
            let rec = &mut self.pages[(start + i) as usize];
            rec.reset();
            let mut flags = pg::ALLOCATED;
            if i == 0 {
                flags |= pg::HEAD;
            }
            if anon {
                flags |= pg::ANON;
            }
            *rec.flags.get_mut() = flags;
            rec.order = order.get();
            rec.head_offset = i as u32;
            *rec.mapcount.get_mut() = -1;
            *rec.large_mapcount.get_mut() = -1;
            *rec.content.get_mut() = content;
        }
        *self.pages[start as usize].refcount.get_mut() = 1;
        head
    }

    /// Return a folio to the allocator. Its records are cleared.
    pub fn free_folio(&mut self, head: Pfn) {
        let order = self.page(head).order;
        let start = head.0 - self.base;
        for i in 0..(1u64 << order) {
            self.pages[(start + i) as usize].reset();
        }
        self.free[order as usize].push(start);
    }

    /// Order of the folio whose head is `head`.
    #[inline(always)]
    pub fn folio_order(&self, head: Pfn) -> u8 {
        self.page(head).order
    }

    /// Whether the folio is anonymous.
    #[inline(always)]
    pub fn folio_test_anon(&self, head: Pfn) -> bool {
        self.page(head).flags.load(Relaxed) & pg::ANON != 0
    }

    /// `folio_maybe_dma_pinned`: pincount for large folios, refcount bias for small ones.
    #[inline(always)]
    pub fn folio_maybe_dma_pinned(&self, head: Pfn) -> bool {
        let h = self.page(head);
        if h.order > 0 {
            h.pincount.load(Relaxed) > 0
        } else {
            h.refcount.load(Relaxed) >= GUP_PIN_COUNTING_BIAS
        }
    }

    /// Model a FOLL_PIN of the folio (as `pin_user_pages` would do).
    pub fn pin_folio(&self, head: Pfn) {
        let h = self.page(head);
        if h.order > 0 {
            h.refcount.fetch_add(1, Relaxed);
            h.pincount.fetch_add(1, Relaxed);
        } else {
            h.refcount.fetch_add(GUP_PIN_COUNTING_BIAS, Relaxed);
        }
    }

    /// References held by pins on this folio (what the refcount holds beyond mappings).
    pub fn pin_references(&self, head: Pfn) -> i32 {
        let h = self.page(head);
        if h.order > 0 {
            h.pincount.load(Relaxed)
        } else if h.refcount.load(Relaxed) >= GUP_PIN_COUNTING_BIAS {
            GUP_PIN_COUNTING_BIAS * (h.refcount.load(Relaxed) / GUP_PIN_COUNTING_BIAS)
        } else {
            0
        }
    }

    /// Heads of every allocated folio, in frame order.
    pub fn folios(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.pages.iter().enumerate().filter_map(|(i, p)| {
            let f = p.flags.load(Relaxed);
            (f & pg::ALLOCATED != 0 && f & pg::HEAD != 0).then_some(Pfn(self.base + i as u64))
        })
    }

    /// Next fresh content tag (new data written to a page).
    pub fn fresh_content(&mut self) -> u64 {
        let c = self.next_content;
        self.next_content += 1;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folios_are_naturally_aligned_and_reused() {
        let mut a = PageArena::with_capacity(0);
        let f0 = a.alloc_folio(Order::new(0).unwrap(), true);
        let f9 = a.alloc_folio(Order::new(9).unwrap(), true);
        assert_eq!(f9.0 % 512, 0);
        assert!(f9.0 > f0.0);
        assert_eq!(a.folio_of(f9.add(300)), f9);
        assert_eq!(a.page(f9).refcount.load(Relaxed), 1);
        assert_eq!(a.page(f9.add(3)).mapcount.load(Relaxed), -1);
        a.free_folio(f9);
        assert!(a.try_page(f9).is_none());
        let again = a.alloc_folio(Order::new(9).unwrap(), false);
        assert_eq!(again, f9);
        assert!(!a.folio_test_anon(again));
    }

    #[test]
    fn pins_follow_kernel_accounting() {
        let mut a = PageArena::with_capacity(0);
        let small = a.alloc_folio(Order::new(0).unwrap(), true);
        let large = a.alloc_folio(Order::new(4).unwrap(), true);
        assert!(!a.folio_maybe_dma_pinned(small));
        a.pin_folio(small);
        a.pin_folio(large);
        assert!(a.folio_maybe_dma_pinned(small) && a.folio_maybe_dma_pinned(large));
        assert_eq!(
            a.page(small).refcount.load(Relaxed),
            1 + GUP_PIN_COUNTING_BIAS
        );
        assert_eq!(a.pin_references(small), GUP_PIN_COUNTING_BIAS);
        assert_eq!(a.pin_references(large), 1);
    }
}
