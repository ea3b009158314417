//! Operation counters. The copy path is generic over a [`Counter`]: [`NoCount`] compiles every
//! count away (timed runs), [`Ops`] counts exactly, and the oracle's recorder also sees every
//! batch. Field names are the JSON keys the CLI prints.

use crate::types::{Pfn, VirtAddr};

macro_rules! ops_struct {
    ($( $(#[$doc:meta])* $field:ident ),* $(,)?) => {
        /// Exact operation counts of one fork (or any span of model work).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct Ops {
            $( $(#[$doc])* pub $field: u64, )*
        }

        impl Ops {
            /// Counter names, in declaration order (the CLI's JSON keys).
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// `(name, value)` pairs in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($field), self.$field)),*]
            }

            /// Value of the counter called `name`.
            pub fn get(&self, name: &str) -> Option<u64> {
                match name {
                    $(stringify!($field) => Some(self.$field),)*
                    _ => None,
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
    ptep_get_calls,
    /// Raw PTE loads made inside `ptep_get()` (17 per call on an arm64 contpte block).
    ptep_get_raw_reads,
    /// All raw PTE loads: `ptep_get`, wrprotect read-modify-write, set_ptes/fold checks.
    pte_reads,
    /// Raw PTE stores (`set_pte`/`WRITE_ONCE`).
    pte_writes,
    /// Atomic read-modify-writes on PTEs (compare-and-swap, exchange).
    pte_atomics,
    /// Range TLB invalidations (arm64 contpte fold/unfold: one per 64 KiB block).
    tlbi,
    /// `flush_tlb_mm()` calls (one per fork).
    tlb_flush_mm,
    /// Atomics on a folio's `_refcount`.
    refcount_atomics,
    /// Atomics on a page's `_mapcount`.
    mapcount_atomics,
    /// Atomics on a large folio's `_large_mapcount` (CONFIG switch; v6.11+).
    large_mapcount_atomics,
    /// PageAnonExclusive clears (atomic bit clears; first fork after a fault only).
    anon_exclusive_clears,
    /// Invocations of rmap duplication functions (per PTE, or per batch for the `_ptes` APIs).
    rmap_calls,
    /// Calls into `copy_present_pte(s)` (a batch of nr >= 1 PTEs).
    batches,
    /// Times `progress >= 32` triggered a need_resched / spin_needbreak check.
    resched_checks,
    /// Pages copied eagerly because an anon page may be DMA-pinned.
    page_copies,
    /// `copy_pte_range` bodies run (one per page table, plus one per restart).
    pte_range_calls,
    /// Restarts of `copy_pte_range` (`goto again`): resched breaks and -EAGAIN preallocation.
    pte_range_restarts,
    /// Lazy-MMU mode entries (`arch_enter_lazy_mmu_mode`).
    lazy_mmu_enters,
    /// Page tables allocated for the child.
    pte_tables_allocated,
    /// `add_mm_rss_vec()` flushes of the local RSS counters.
    rss_flushes,
    /// Swap-count duplications for copied swap entries.
    swap_dups,
    /// Folios allocated in the fork path (pinned-page copies).
    folio_allocs,
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
    fn names_fields_and_get_agree() {
        let mut o = Ops {
            tlbi: 3,
            ..Ops::default()
        };
        o.add(&Ops {
            tlbi: 2,
            batches: 1,
            ..Ops::default()
        });
        assert_eq!(o.get("tlbi"), Some(5));
        assert_eq!(o.get("batches"), Some(1));
        assert_eq!(o.get("nope"), None);
        assert_eq!(Ops::NAMES.len(), o.fields().len());
        assert_eq!(Ops::NAMES[0], "ptep_get_calls");
    }
}
