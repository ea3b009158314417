//! The terms an instruction fit may use, each one kind of work a fork does (per fork, per page
//! table, per PTE copied, per batch, per PTE load, per resched check), read from a fork's op
//! counts, and the candidate feature sets whose held-out error picks one ([`candidate_sets`]).
//!
//! Page tables and huge PMDs share one term: every PTE-mapped layout fills whole tables, so a
//! table's own cost and 1/512 of a PTE's move together, and a huge PMD deposits exactly one
//! table. No layout can tell "per table" from "per huge PMD" and "per PTE" apart, so
//! `per_table` is the work of one PMD entry: a PTE table's set-up, or a whole `copy_huge_pmd`.

use contract::OpCounter::{self, *};

use crate::runner::Ops;

/// Where a term's instructions are spent, for the order-0 growth question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Outside `copy_page_range`'s tables: process creation, `dup_mmap` of the other VMAs,
    /// exit and wait (the parent's fork() as the guest clock sees it).
    Outside,
    /// Per PMD entry: a PTE table's allocation, locks and `copy_pte_range` set-up, or a huge
    /// PMD's copy.
    Table,
    /// The PTE copy path: per PTE, per batch, per load.
    CopyPath,
}

impl Part {
    pub const fn name(self) -> &'static str {
        match self {
            Part::Outside => "outside the copy (fixed)",
            Part::Table => "per table / huge PMD",
            Part::CopyPath => "PTE copy path",
        }
    }
}

/// One term: instructions per unit of `Σ weight × count` (a constant 1 with no counters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Term {
    pub name: &'static str,
    pub counters: &'static [(OpCounter, f64)],
    pub part: Part,
    pub description: &'static str,
}

impl Term {
    /// The term's feature for one fork's counts.
    pub fn feature(&self, ops: &Ops) -> f64 {
        if self.counters.is_empty() {
            return 1.0;
        }
        self.counters
            .iter()
            .map(|(c, w)| w * ops.get(c).copied().unwrap_or(0) as f64)
            .sum()
    }
}

pub const FIXED: Term = Term {
    name: "fixed",
    counters: &[],
    part: Part::Outside,
    description: "per fork: process creation, dup_mmap of the other VMAs, flush_tlb_mm, exit and wait",
};

pub const PER_TABLE: Term = Term {
    name: "per_table",
    counters: &[(PteTablesAllocated, 1.0)],
    part: Part::Table,
    description: "per PMD entry copied: a PTE table's allocation, locks and copy_pte_range set-up, or a huge PMD's copy_huge_pmd (which deposits one)",
};

pub const PER_PTE: Term = Term {
    name: "per_pte",
    counters: &[(PteWrites, 1.0)],
    part: Part::CopyPath,
    description: "per PTE copied: the loop step, the child's PTE store, the page's _mapcount inc, a batch's per-PTE scan",
};

pub const PER_BATCH: Term = Term {
    name: "per_batch",
    counters: &[(Batches, 1.0)],
    part: Part::CopyPath,
    description: "per copy_present_pte(s) call, small or large: vm_normal_page, the folio reference, the rmap call",
};

pub const PER_SMALL_BATCH: Term = Term {
    name: "per_small_batch",
    counters: &[(Batches, 1.0), (LargeMapcountAtomics, -1.0)],
    part: Part::CopyPath,
    description: "per single-PTE copy (a small folio, or every PTE before 6.9): vm_normal_page, folio_get, one rmap call",
};

pub const PER_LARGE_BATCH: Term = Term {
    name: "per_large_batch",
    counters: &[(LargeMapcountAtomics, 1.0)],
    part: Part::CopyPath,
    description: "per large-folio batch: folio_pte_batch set-up, folio_ref_add, the pin check, one rmap call, the _large_mapcount update",
};

pub const PER_PTEP_GET: Term = Term {
    name: "per_ptep_get",
    counters: &[(PtepGetCalls, 1.0)],
    part: Part::CopyPath,
    description: "per ptep_get call: a PTE read with the checks around it (arm64 contpte: the batch hint skips the rest of a CONT block, one call per 16 PTEs)",
};

pub const PER_PTE_LOAD: Term = Term {
    name: "per_pte_load",
    counters: &[(PteReads, 1.0)],
    part: Part::CopyPath,
    description: "per raw PTE load (arm64 contpte: 16-entry gathers, the child slot's check in set_ptes)",
};

pub const PER_RESCHED_CHECK: Term = Term {
    name: "per_resched_check",
    counters: &[(ReschedChecks, 1.0)],
    part: Part::CopyPath,
    description: "per need_resched check (every 32 units of progress: 4 present PTEs, or once per batch)",
};

/// One candidate feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSet {
    pub name: &'static str,
    pub terms: Vec<Term>,
    /// What the set assumes, in one line.
    pub idea: &'static str,
}

/// The candidate sets, simplest first (ties in held-out error go to the better in-sample fit,
/// then to the earlier set).
pub fn candidate_sets() -> Vec<FeatureSet> {
    let base = [FIXED, PER_TABLE, PER_PTE];
    let batches = [PER_SMALL_BATCH, PER_LARGE_BATCH];
    let with = |extra: &[Term]| -> Vec<Term> {
        base.iter()
            .chain(batches.iter())
            .chain(extra.iter())
            .copied()
            .collect()
    };
    vec![
        FeatureSet {
            name: "one batch cost",
            terms: base.iter().chain([&PER_BATCH]).copied().collect(),
            idea: "a batch costs the same whether it copies one PTE of a small folio or a large folio's run",
        },
        FeatureSet {
            name: "small and large batches",
            terms: with(&[]),
            idea: "the single-PTE path and a large-folio batch have their own costs",
        },
        FeatureSet {
            name: "batches + ptep_get calls",
            terms: with(&[PER_PTEP_GET]),
            idea: "as above, and each ptep_get call costs apart (arm64 contpte: one call per CONT block)",
        },
        FeatureSet {
            name: "batches + ptep_get calls + PTE loads",
            terms: with(&[PER_PTEP_GET, PER_PTE_LOAD]),
            idea: "as above, and a raw PTE load costs apart (contpte gathers load 17 per block, set_ptes checks the child slot)",
        },
        FeatureSet {
            name: "batches + resched checks",
            terms: with(&[PER_RESCHED_CHECK]),
            idea: "small and large batches, and each need_resched check costs apart (every 4 PTEs before 6.9, once per batch after)",
        },
        FeatureSet {
            name: "every op kind",
            terms: with(&[PER_PTEP_GET, PER_PTE_LOAD, PER_RESCHED_CHECK]),
            idea: "every op kind the stand-ins' counts separate",
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_read_the_counts() {
        // 4 small folios and one large batch of 12 PTEs in one table.
        let ops = Ops::from([
            (Batches, 5),
            (LargeMapcountAtomics, 1),
            (PteWrites, 16),
            (PteTablesAllocated, 1),
        ]);
        assert_eq!(FIXED.feature(&ops), 1.0);
        assert_eq!(PER_SMALL_BATCH.feature(&ops), 4.0);
        assert_eq!(PER_LARGE_BATCH.feature(&ops), 1.0);
        assert_eq!(PER_BATCH.feature(&ops), 5.0);
        assert_eq!(PER_PTE.feature(&ops), 16.0);
        assert_eq!(PER_PTE_LOAD.feature(&ops), 0.0);
        assert_eq!(PER_PTEP_GET.feature(&ops), 0.0);
        assert_eq!(FIXED.feature(&Ops::new()), 1.0);
    }

    #[test]
    fn every_set_starts_fixed_per_table_per_pte_and_has_no_duplicate() {
        for s in candidate_sets() {
            let names: Vec<&str> = s.terms.iter().map(|t| t.name).collect();
            assert_eq!(&names[..3], ["fixed", "per_table", "per_pte"], "{}", s.name);
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), names.len(), "{}", s.name);
        }
    }
}
