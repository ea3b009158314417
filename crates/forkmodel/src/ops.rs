//! Operation counters. The copy path is generic over a [`Counter`]: [`NoCount`] compiles every
//! count away (timed runs), [`Ops`] counts exactly, and the oracle's recorder also sees every
//! batch. Fields are the contract's [`OpCounter`]s.

use std::collections::BTreeMap;

pub use contract::OpCounter;

use crate::types::{Pfn, VirtAddr};

macro_rules! ops_struct {
    ($( $(#[$doc:meta])* $field:ident => $counter:ident ),* $(,)?) => {
        /// Exact operation counts of one fork (or any span of model work). One field per
        /// [`OpCounter`], named as it and in its order (a test checks both).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Ops {
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl Ops {
            /// Field names, in declaration order (the [`OpCounter`] names).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// `(counter, value)` pairs in declaration order.
            pub fn fields(&self) -> [(OpCounter, u64); Ops::NAMES.len()] {
                [$((OpCounter::$counter, self.$field)),*]
            }

            /// The counts keyed by counter, as run records and counts rows carry them.
            pub fn to_map(&self) -> BTreeMap<OpCounter, u64> {
                self.fields().into_iter().collect()
            }

            /// Value of one counter.
            pub fn get(&self, counter: OpCounter) -> u64 {
                match counter {
                    $(OpCounter::$counter => self.$field,)*
                }
            }

            /// Field-wise sum.
            pub fn add(&mut self, other: &Ops) {
                $( self.$field += other.$field; )*
            }
        }
    };
}

ops_struct! {
    /// Calls of the arch's `ptep_get()` (each PTE the core looks at through the API).
    ptep_get_calls => PtepGetCalls,
    /// Raw PTE loads made inside `ptep_get()` (17 per call on an arm64 contpte block).
    ptep_get_raw_reads => PtepGetRawReads,
    /// All raw PTE loads: `ptep_get`, wrprotect read-modify-write, set_ptes/fold checks.
    pte_reads => PteReads,
    /// Raw PTE stores (`set_pte`/`WRITE_ONCE`).
    pte_writes => PteWrites,
    /// Atomic read-modify-writes on PTEs (compare-and-swap, exchange).
    pte_atomics => PteAtomics,
    /// Range TLB invalidations (arm64 contpte fold/unfold: one per 64 KiB block).
    tlbi => Tlbi,
    /// `flush_tlb_mm()` calls (one per fork).
    tlb_flush_mm => TlbFlushMm,
    /// Atomics on a folio's `_refcount`.
    refcount_atomics => RefcountAtomics,
    /// Atomics on a page's `_mapcount`.
    mapcount_atomics => MapcountAtomics,
    /// Atomics on a large folio's `_large_mapcount` (CONFIG switch; v6.11+).
    large_mapcount_atomics => LargeMapcountAtomics,
    /// PageAnonExclusive clears (atomic bit clears; first fork after a fault only).
    anon_exclusive_clears => AnonExclusiveClears,
    /// Invocations of rmap duplication functions (per PTE, or per batch for the `_ptes` APIs).
    rmap_calls => RmapCalls,
    /// Calls into `copy_present_pte(s)` (a batch of nr >= 1 PTEs).
    batches => Batches,
    /// Times `progress >= 32` triggered a need_resched / spin_needbreak check.
    resched_checks => ReschedChecks,
    /// Pages copied eagerly because an anon page may be DMA-pinned.
    page_copies => PageCopies,
    /// `copy_pte_range` bodies run (one per page table, plus one per restart).
    pte_range_calls => PteRangeCalls,
    /// Restarts of `copy_pte_range` (`goto again`): resched breaks and -EAGAIN preallocation.
    pte_range_restarts => PteRangeRestarts,
    /// Lazy-MMU mode entries (`arch_enter_lazy_mmu_mode`).
    lazy_mmu_enters => LazyMmuEnters,
    /// Page tables allocated for the child.
    pte_tables_allocated => PteTablesAllocated,
    /// `add_mm_rss_vec()` flushes of the local RSS counters.
    rss_flushes => RssFlushes,
    /// Swap-count duplications for copied swap entries.
    swap_dups => SwapDups,
    /// Folios allocated in the fork path (pinned-page copies).
    folio_allocs => FolioAllocs,
}

/// One call of `copy_present_pte(s)` as seen by the oracle: the batch must never cross the
/// folio, the VMA or the page table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchEvent {
    /// First address of the batch.
    pub addr: VirtAddr,
    /// PTEs covered.
    pub nr: u64,
    /// Frame of the first PTE.
    pub first_pfn: Pfn,
    /// First frame of the folio that was referenced (None for a page with no `struct page`).
    pub folio_start: Option<Pfn>,
    /// Pages in that folio.
    pub folio_nr: u64,
    /// End of the source VMA.
    pub vma_end: VirtAddr,
}

/// Sink for operation counts, monomorphised into the copy path.
pub trait Counter {
    /// Whether this counter records anything (lets callers skip bookkeeping).
    const ENABLED: bool;
    /// Apply an update to the counts.
    fn count(&mut self, update: impl FnOnce(&mut Ops));
    /// Observe a batch (the oracle checks its bounds).
    #[inline(always)]
    fn batch(&mut self, _event: BatchEvent) {}
}

/// A counter that records nothing and compiles to nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCount;

impl Counter for NoCount {
    const ENABLED: bool = false;
    #[inline(always)]
    fn count(&mut self, _update: impl FnOnce(&mut Ops)) {}
}

impl Counter for Ops {
    const ENABLED: bool = true;
    #[inline(always)]
    fn count(&mut self, update: impl FnOnce(&mut Ops)) {
        update(self)
    }
}

/// Counts operations and records every batch (for the oracle).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub ops: Ops,
    pub batches: Vec<BatchEvent>,
}

impl Counter for Recorder {
    const ENABLED: bool = true;
    #[inline(always)]
    fn count(&mut self, update: impl FnOnce(&mut Ops)) {
        update(&mut self.ops)
    }
    fn batch(&mut self, event: BatchEvent) {
        self.batches.push(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_the_contract_counters_in_order() {
        let contract: Vec<&str> = OpCounter::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(Ops::NAMES, contract.as_slice());
        let o = Ops {
            ptep_get_calls: 1,
            folio_allocs: 22,
            ..Ops::default()
        };
        let keys: Vec<OpCounter> = o.fields().iter().map(|(c, _)| *c).collect();
        assert_eq!(keys, OpCounter::ALL);
        let m = o.to_map();
        assert_eq!(m.len(), OpCounter::ALL.len());
        assert_eq!(m[&OpCounter::PtepGetCalls], 1);
        assert_eq!(m[&OpCounter::FolioAllocs], 22);
        assert_eq!(m[&OpCounter::Tlbi], 0);
    }

    #[test]
    fn get_and_add_agree() {
        let mut o = Ops {
            tlbi: 3,
            ..Ops::default()
        };
        o.add(&Ops {
            tlbi: 2,
            batches: 1,
            ..Ops::default()
        });
        assert_eq!(o.get(OpCounter::Tlbi), 5);
        assert_eq!(o.get(OpCounter::Batches), 1);
        assert_eq!(o.get(OpCounter::SwapDups), 0);
        for (c, v) in o.fields() {
            assert_eq!(o.get(c), v);
        }
    }
}
