//! The cost terms a fit may use, each a feature of one fork's op counts that names what the
//! kernel does per fork, per page table, per PTE-mapped page, per batch (the single-PTE path of
//! a small folio, or one large-folio batch) and per huge PMD, and the candidate feature sets
//! whose held-out error decides which one prices the model ([`candidate_sets`]).
//!
//! A PMD-mapped THP (`pmd-order9`) is not walked by the model (`copy_huge_pmd` is not
//! modelled); [`huge_pmd_counts`] derives its counts: per huge PMD one folio reference, one rmap
//! call and one page table (the child's deposited table), and no PTE work.

use contract::OpCounter::{self, *};

use crate::microbench::PteOpCosts;
use crate::profile::CostTerm;
use crate::runner::Ops;

fn fitted(name: &str, counters: &[(OpCounter, f64)], description: &str) -> CostTerm {
    CostTerm {
        name: name.into(),
        ns: 0.0,
        ns_sd: None,
        source: "fitted".into(),
        counters: counters.to_vec(),
        facts: vec![],
        description: description.into(),
    }
}

/// Per break in the struct-page sequence fork walks (a measured fact of the layout, not an op
/// count): where consecutive PTEs map non-consecutive PFNs the memmap access jumps, and the
/// cache misses that follow are paid whatever the strategy.
pub fn per_pfn_break() -> CostTerm {
    CostTerm {
        facts: vec![("pfn_breaks".into(), 1.0)],
        ..fitted(
            "per_pfn_break",
            &[],
            "per break in physical order (the next PTE's page is not the next PFN): the struct page lines fork touches stop being sequential, so they miss in cache",
        )
    }
}

/// Per fork: process creation, dup_mmap of the other VMAs, `flush_tlb_mm`, exit and wait as
/// the timer sees them (anchored by `untouched`, which maps 1 GiB but has no PTEs).
pub fn fixed() -> CostTerm {
    fitted(
        "fixed",
        &[],
        "per fork: process creation, dup_mmap of the other VMAs, flush_tlb_mm, exit/wait as seen by the timer",
    )
}

/// Per page table allocated for the child (a PTE table, or the table deposited with a huge
/// PMD): allocation, memcg charge, ptlock, one `copy_pte_range` call and RSS flush.
pub fn per_table() -> CostTerm {
    fitted(
        "per_table",
        &[(PteTablesAllocated, 1.0)],
        "per child page table: allocation and charge, PTE lock, copy_pte_range call, lazy-MMU section, RSS flush (a huge PMD deposits one too)",
    )
}

/// Per page mapped by a PTE: its `_mapcount` inc and the PTE's read, copy and write, plus
/// every per-page cost the model does not count (struct page cache lines).
pub fn per_page() -> CostTerm {
    fitted(
        "per_page",
        &[(MapcountAtomics, 1.0)],
        "per PTE-mapped page: the _mapcount atomic, the struct page line it touches, and per-PTE loop work the counters do not split",
    )
}

/// One cost per batch, small or large (the old profile's grouping).
pub fn per_batch() -> CostTerm {
    fitted(
        "per_batch",
        &[(Batches, 1.0)],
        "per copy_present_ptes call, small or large: folio lookup, refcount atomic, rmap call, batch set-up",
    )
}

/// The single-PTE path of a small folio: `vm_normal_page`, `folio_get`, one rmap call.
pub fn per_small_batch() -> CostTerm {
    fitted(
        "per_small_batch",
        &[(Batches, 1.0), (LargeMapcountAtomics, -1.0)],
        "per single-PTE copy of a small folio (the order-0 path): folio lookup, folio_get, one rmap call",
    )
}

/// One large-folio batch: `folio_pte_batch` set-up, `folio_ref_add`, the pin check and the
/// large-mapcount update (a bit-locked update with CONFIG_MM_ID).
pub fn per_large_batch() -> CostTerm {
    fitted(
        "per_large_batch",
        &[(LargeMapcountAtomics, 1.0)],
        "per large-folio batch: folio_pte_batch set-up, folio_ref_add, pin check, one rmap call, the _large_mapcount update",
    )
}

/// What a large batch costs beyond a small one (used with [`per_rmap_call`]).
pub fn per_large_extra() -> CostTerm {
    fitted(
        "per_large_extra",
        &[(LargeMapcountAtomics, 1.0)],
        "what a large-folio batch costs beyond a single-PTE copy: folio_pte_batch set-up, pin check, the _large_mapcount update",
    )
}

/// One rmap duplication with its folio reference: every batch and every huge PMD.
pub fn per_rmap_call() -> CostTerm {
    fitted(
        "per_rmap_call",
        &[(RmapCalls, 1.0)],
        "per rmap duplication with its folio reference (every batch, small or large, and every huge PMD)",
    )
}

/// The copy of one huge PMD beyond its table and rmap call.
pub fn per_huge_pmd() -> CostTerm {
    fitted(
        "per_huge_pmd",
        &[(RmapCalls, 1.0), (Batches, -1.0)],
        "per huge PMD copied (copy_huge_pmd): PMD locks, wrprotect, folio reference and rmap call",
    )
}

/// The raw PTE operations, fixed from the userspace microbenchmark: they only differ between
/// strategies, never between layouts, so no layout fit can see them.
pub fn micro_terms(micro: &PteOpCosts) -> Vec<CostTerm> {
    let t = |name: &str, ns: f64, c: OpCounter, d: &str| CostTerm {
        ns,
        source: "microbench".into(),
        ..fitted(name, &[(c, 1.0)], d)
    };
    vec![
        t(
            "pte_read",
            micro.pte_read_ns,
            PteReads,
            "raw PTE load (READ_ONCE), fixed from the microbenchmark",
        ),
        t(
            "pte_write",
            micro.pte_write_ns,
            PteWrites,
            "raw PTE store (WRITE_ONCE), fixed from the microbenchmark",
        ),
        t(
            "pte_atomic",
            micro.pte_atomic_ns,
            PteAtomics,
            "PTE compare-and-swap (wrprotect), fixed from the microbenchmark",
        ),
    ]
}

/// One candidate feature set.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub terms: Vec<CostTerm>,
    /// What the set assumes, in one line.
    pub idea: String,
}

/// The candidate feature sets, simplest first (ties in held-out error go to the better
/// in-sample fit, then to the earlier set): four ways to split the kernel's work into paths,
/// each also with a cost per break in the physical order of the pages (`+ locality`).
pub fn candidate_sets(micro: &PteOpCosts) -> Vec<Candidate> {
    let base: Vec<(&'static str, Vec<CostTerm>, &'static str)> = vec![
        (
            "one batch cost",
            vec![fixed(), per_page(), per_batch()],
            "a batch costs the same whether it copies one PTE of a small folio or a large folio's run",
        ),
        (
            "small and large batches",
            vec![fixed(), per_page(), per_small_batch(), per_large_batch()],
            "the single-PTE path and a large-folio batch have their own costs",
        ),
        (
            "shared rmap call + large extra + tables",
            vec![
                fixed(),
                per_table(),
                per_page(),
                per_rmap_call(),
                per_large_extra(),
            ],
            "every rmap duplication (small, large, huge PMD) costs the same; a large batch adds its own work; page tables cost apart",
        ),
        (
            "paths + tables + huge PMD",
            vec![
                fixed(),
                per_table(),
                per_page(),
                per_small_batch(),
                per_large_batch(),
                per_huge_pmd(),
            ],
            "each kernel path its own cost: single-PTE copy, large batch, huge PMD, page table",
        ),
    ];
    let with_micro = |mut v: Vec<CostTerm>| {
        v.extend(micro_terms(micro));
        v
    };
    let mut out: Vec<Candidate> = base
        .iter()
        .map(|(name, terms, idea)| Candidate {
            name: (*name).into(),
            terms: with_micro(terms.clone()),
            idea: (*idea).into(),
        })
        .collect();
    for (name, terms, idea) in base {
        let mut t = terms;
        t.push(per_pfn_break());
        out.push(Candidate {
            name: format!("{name} + locality"),
            terms: with_micro(t),
            idea: format!("{idea}; plus a cost per break in the physical order of the pages"),
        });
    }
    out
}

/// Op counts of one fork of `mem_bytes` mapped by huge PMDs (2 MiB each): per PMD one folio
/// reference, one rmap call (entire mapcount) and one deposited page table; no PTE work.
pub fn huge_pmd_counts(mem_bytes: u64) -> Ops {
    let pmds = mem_bytes / (2 << 20);
    Ops::from([
        (RefcountAtomics, pmds),
        (RmapCalls, pmds),
        (PteTablesAllocated, pmds),
        (TlbFlushMm, 1),
    ])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Microbenchmark costs for the tests of this module and of the fit.
    pub(crate) fn micro() -> PteOpCosts {
        PteOpCosts {
            pte_read_ns: 0.5,
            pte_write_ns: 0.5,
            pte_atomic_ns: 6.0,
            entries: 8,
            passes: 1,
        }
    }

    #[test]
    fn huge_pmds_are_rmap_calls_without_batches() {
        let ops = huge_pmd_counts(1 << 30);
        assert_eq!(per_huge_pmd().feature(&ops), 512.0);
        assert_eq!(per_table().feature(&ops), 512.0);
        assert_eq!(per_small_batch().feature(&ops), 0.0);
        assert_eq!(per_large_batch().feature(&ops), 0.0);
        assert_eq!(per_page().feature(&ops), 0.0);
    }

    #[test]
    fn small_and_large_batches_split_the_batches() {
        // A table of 8 small folios and 2 large batches.
        let ops = Ops::from([(Batches, 10), (LargeMapcountAtomics, 2), (RmapCalls, 10)]);
        assert_eq!(per_small_batch().feature(&ops), 8.0);
        assert_eq!(per_large_batch().feature(&ops), 2.0);
        assert_eq!(per_huge_pmd().feature(&ops), 0.0);
        assert_eq!(per_rmap_call().feature(&ops), 10.0);
    }

    #[test]
    fn every_candidate_has_a_fixed_term_and_the_microbenchmark() {
        for c in candidate_sets(&micro()) {
            let names: Vec<&str> = c.terms.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names[0], "fixed", "{}", c.name);
            assert!(names.contains(&"pte_read"), "{}", c.name);
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{}: duplicate term", c.name);
        }
    }
}
