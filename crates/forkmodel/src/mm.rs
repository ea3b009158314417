//! Address spaces: VMAs with the flags fork cares about, and the directory from PMD slot to
//! last-level page table. Upper levels (pgd/p4d/pud) are folded into that directory; huge PMD
//! mappings are not modelled (see the README's "what is not modelled").

use std::collections::BTreeMap;

use bitflags::bitflags;

use crate::table::TableId;
use crate::types::{PAGE_SIZE, VirtAddr};

bitflags! {
    /// The `vm_flags` bits the fork-copy path reads.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct VmFlags: u32 {
        /// VM_READ.
        const READ = 1 << 0;
        /// VM_WRITE: the mapping is currently writable.
        const WRITE = 1 << 1;
        /// VM_EXEC.
        const EXEC = 1 << 2;
        /// VM_SHARED: writes go to the shared object; no COW.
        const SHARED = 1 << 3;
        /// VM_MAYWRITE: may become writable (with !SHARED this makes a COW mapping).
        const MAYWRITE = 1 << 5;
        /// VM_PFNMAP: raw PFNs, no `struct page` (special PTEs).
        const PFNMAP = 1 << 10;
        /// VM_UFFD_WP: userfaultfd write-protect mode is registered on the VMA.
        const UFFD_WP = 1 << 12;
        /// VM_SOFTDIRTY: the whole VMA counts as soft-dirty, i.e. soft-dirty tracking is
        /// *not* active (set on new VMAs; `clear_refs` clears it to start tracking).
        const SOFTDIRTY = 1 << 27;
    }
}

/// What backs a VMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backing {
    /// Anonymous memory.
    Anon,
    /// Page cache of a file (or shmem).
    File,
}

/// One virtual memory area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vma {
    pub start: VirtAddr,
    pub end: VirtAddr,
    pub flags: VmFlags,
    pub backing: Backing,
    /// The VMA has an `anon_vma` (anon memory was faulted, or a private file page was COWed).
    pub has_anon_vma: bool,
    /// The child keeps uffd-wp on this VMA (UFFD_FEATURE_EVENT_FORK); otherwise
    /// `dup_userfaultfd` clears the child's uffd flags.
    pub uffd_event_fork: bool,
}

impl Vma {
    /// A private anonymous read-write VMA (what `mmap(MAP_PRIVATE|MAP_ANONYMOUS)` gives).
    pub fn anon_private(start: VirtAddr, end: VirtAddr) -> Vma {
        Vma {
            start,
            end,
            flags: VmFlags::READ | VmFlags::WRITE | VmFlags::MAYWRITE | VmFlags::SOFTDIRTY,
            backing: Backing::Anon,
            has_anon_vma: true,
            uffd_event_fork: false,
        }
    }

    /// Pages spanned.
    pub fn nr_pages(&self) -> u64 {
        (self.end.0 - self.start.0) / PAGE_SIZE
    }

    /// `is_cow_mapping`: MAYWRITE without SHARED.
    #[inline(always)]
    pub fn is_cow_mapping(&self) -> bool {
        self.flags.contains(VmFlags::MAYWRITE) && !self.flags.contains(VmFlags::SHARED)
    }

    /// `userfaultfd_wp(vma)`.
    #[inline(always)]
    pub fn userfaultfd_wp(&self) -> bool {
        self.flags.contains(VmFlags::UFFD_WP)
    }

    /// `vma_soft_dirty_enabled`: tracking is active (VM_SOFTDIRTY clear).
    #[inline(always)]
    pub fn soft_dirty_enabled(&self) -> bool {
        !self.flags.contains(VmFlags::SOFTDIRTY)
    }

    /// The child's copy of this VMA, as `dup_mmap` + `dup_userfaultfd` make it.
    pub fn dup_for_child(&self) -> Vma {
        let mut v = self.clone();
        if !self.uffd_event_fork {
            v.flags.remove(VmFlags::UFFD_WP);
        }
        v
    }
}

/// `vma_needs_copy`: whether fork copies this VMA's page tables or leaves them to page faults.
pub fn vma_needs_copy(dst: &Vma, src: &Vma) -> bool {
    // The child must see uffd-wp markers, which live only in page tables.
    if dst.userfaultfd_wp() {
        return true;
    }
    // Raw PFNs cannot be refaulted.
    if src.flags.contains(VmFlags::PFNMAP) {
        return true;
    }
    // Anonymous pages cannot be refaulted either.
    src.has_anon_vma
}

/// Indices into [`Mm::rss`] (the kernel's `NR_MM_COUNTERS`).
pub mod rss {
    /// MM_FILEPAGES.
    pub const FILE: usize = 0;
    /// MM_ANONPAGES.
    pub const ANON: usize = 1;
    /// MM_SWAPENTS.
    pub const SWAP: usize = 2;
    /// Number of counters.
    pub const NR: usize = 3;
}

/// An address space.
#[derive(Debug, Clone, Default)]
pub struct Mm {
    /// Sorted, non-overlapping VMAs.
    pub vmas: Vec<Vma>,
    /// PMD slot → last-level table.
    pub tables: BTreeMap<u64, TableId>,
    /// RSS counters (`mm->rss_stat`).
    pub rss: [i64; rss::NR],
    /// MMF_HAS_PINNED: some page of this mm was ever FOLL_PINned.
    pub has_pinned: bool,
    /// The mapcounts this mm's mappings are counted in: for a child, its fork strategy's
    /// effective model ([`contract::Strategy::effective_mapcount`]), so teardown undoes
    /// exactly what the fork added.
    pub mapcount: crate::page::MapcountModel,
}

impl Mm {
    /// The VMA containing `addr`.
    pub fn find_vma(&self, addr: VirtAddr) -> Option<&Vma> {
        self.vmas.iter().find(|v| v.start <= addr && addr < v.end)
    }

    /// The table for the PMD slot containing `addr`, if any.
    #[inline(always)]
    pub fn table_for(&self, addr: VirtAddr) -> Option<TableId> {
        self.tables.get(&addr.pmd_index()).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cow_and_copy_rules() {
        let a = Vma::anon_private(VirtAddr(0), VirtAddr(0x1000));
        assert!(a.is_cow_mapping());
        assert!(vma_needs_copy(&a.dup_for_child(), &a));
        let mut f = a.clone();
        f.backing = Backing::File;
        f.flags |= VmFlags::SHARED;
        f.has_anon_vma = false;
        assert!(!f.is_cow_mapping());
        assert!(!vma_needs_copy(&f.dup_for_child(), &f));
        f.flags |= VmFlags::UFFD_WP;
        // Without EVENT_FORK the child loses uffd-wp, so nothing forces a copy.
        assert!(!vma_needs_copy(&f.dup_for_child(), &f));
        f.uffd_event_fork = true;
        assert!(vma_needs_copy(&f.dup_for_child(), &f));
        assert!(!a.soft_dirty_enabled());
    }
}
