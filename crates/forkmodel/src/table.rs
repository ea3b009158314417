//! Last-level page tables (512 raw `u64` entries each) in a pool shared by all mms, plus the
//! swap map. Entries are atomics so that compare-and-swap costs what it costs in the kernel;
//! plain loads and stores use relaxed ordering (a `mov` on x86_64 and arm64).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};

use crate::types::PTRS_PER_PTE;

/// Index of a page table in the [`TablePool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u32);

/// One last-level page table: 512 raw entries, 4 KiB, cache-line aligned. (Page alignment
/// would make the allocator waste up to a page per table; nothing in the model needs it.)
#[repr(C, align(64))]
pub struct PteTable {
    entries: [AtomicU64; PTRS_PER_PTE],
}

impl PteTable {
    fn new_zeroed() -> Box<PteTable> {
        Box::new(PteTable {
            entries: std::array::from_fn(|_| AtomicU64::new(0)),
        })
    }

    /// Raw load of entry `idx` (`READ_ONCE`).
    #[inline(always)]
    pub fn load(&self, idx: usize) -> u64 {
        self.entries[idx].load(Relaxed)
    }

    /// Raw store to entry `idx` (`WRITE_ONCE`).
    #[inline(always)]
    pub fn store(&self, idx: usize, val: u64) {
        self.entries[idx].store(val, Relaxed)
    }

    /// Compare-and-swap of entry `idx`; returns the value found.
    #[inline(always)]
    pub fn cmpxchg(&self, idx: usize, old: u64, new: u64) -> Result<u64, u64> {
        self.entries[idx].compare_exchange(old, new, Relaxed, Relaxed)
    }

    /// Atomic AND into entry `idx` (x86 `clear_bit` on a PTE); returns the old value.
    #[inline(always)]
    pub fn fetch_and(&self, idx: usize, mask: u64) -> u64 {
        self.entries[idx].fetch_and(mask, Relaxed)
    }

    /// Atomic exchange of entry `idx` (`ptep_get_and_clear` when `new` is 0).
    #[inline(always)]
    pub fn xchg(&self, idx: usize, new: u64) -> u64 {
        self.entries[idx].swap(new, Relaxed)
    }

    /// Whether every entry is zero.
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(|e| e.load(Relaxed) == 0)
    }

    fn clear(&self) {
        for e in &self.entries {
            e.store(0, Relaxed);
        }
    }
}

/// All page tables of all mms in the model, with a free list (a stand-in for the page
/// allocator's page-table pages: popping one is cheap, as `pte_alloc_one` is on a warm pcp list).
#[derive(Default)]
pub struct TablePool {
    tables: Vec<Box<PteTable>>,
    free: Vec<TableId>,
}

impl TablePool {
    /// An empty pool.
    pub fn new() -> TablePool {
        TablePool::default()
    }

    /// Make sure `n` free tables exist, so allocation inside a timed fork never mallocs.
    pub fn reserve_free(&mut self, n: usize) {
        while self.free.len() < n {
            let id = TableId(self.tables.len() as u32);
            self.tables.push(PteTable::new_zeroed());
            self.free.push(id);
        }
    }

    /// Allocate a zeroed table.
    #[inline]
    pub fn alloc(&mut self) -> TableId {
        if let Some(id) = self.free.pop() {
            return id;
        }
        let id = TableId(self.tables.len() as u32);
        self.tables.push(PteTable::new_zeroed());
        id
    }

    /// Zero a table and return it to the pool.
    pub fn free(&mut self, id: TableId) {
        self.tables[id.0 as usize].clear();
        self.free.push(id);
    }

    /// The table with this id.
    #[inline(always)]
    pub fn get(&self, id: TableId) -> &PteTable {
        &self.tables[id.0 as usize]
    }

    /// Tables in use plus free tables.
    pub fn total(&self) -> usize {
        self.tables.len()
    }

    /// Bytes held by all tables.
    pub fn bytes(&self) -> usize {
        self.tables.len() * std::mem::size_of::<PteTable>()
    }
}

/// Swap slots: a use count per offset (`swap_map`), as `swap_duplicate` increments it.
#[derive(Default, Debug)]
pub struct SwapMap {
    counts: Vec<AtomicU8>,
}

impl SwapMap {
    /// Allocate a slot with count 1; returns its offset. Offset 0 is the swap header and is
    /// never handed out (on arm64 type 0, offset 0 would encode as a none PTE).
    pub fn alloc(&mut self) -> u64 {
        if self.counts.is_empty() {
            self.counts.push(AtomicU8::new(0));
        }
        self.counts.push(AtomicU8::new(1));
        (self.counts.len() - 1) as u64
    }

    /// `swap_duplicate`: one more PTE refers to the slot.
    #[inline(always)]
    pub fn duplicate(&self, offset: u64) {
        self.counts[offset as usize].fetch_add(1, Relaxed);
    }

    /// `swap_free`: one PTE fewer refers to the slot.
    pub fn put(&self, offset: u64) {
        self.counts[offset as usize].fetch_sub(1, Relaxed);
    }

    /// Current count of a slot.
    pub fn count(&self, offset: u64) -> u8 {
        self.counts[offset as usize].load(Relaxed)
    }

    /// Number of slots ever allocated.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether no slot was allocated.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_zeroed_tables() {
        let mut p = TablePool::new();
        p.reserve_free(2);
        let a = p.alloc();
        p.get(a).store(3, 0xabc);
        assert_eq!(p.get(a).cmpxchg(3, 0xabc, 0x1), Ok(0xabc));
        assert_eq!(p.get(a).xchg(3, 0), 0x1);
        p.get(a).store(4, 7);
        p.free(a);
        let b = p.alloc();
        assert_eq!(a, b);
        assert!(p.get(b).is_empty());
        assert_eq!(p.total(), 2);
    }

    #[test]
    fn swap_counts() {
        let mut s = SwapMap::default();
        let o = s.alloc();
        s.duplicate(o);
        assert_eq!(s.count(o), 2);
        s.put(o);
        assert_eq!(s.count(o), 1);
    }
}
