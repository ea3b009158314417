//! The `Arch` trait: everything the arch-generic fork-copy core needs from a page-table format.
//! Default methods behave like the kernel's generic helpers in `include/linux/pgtable.h`, so an
//! engine overrides exactly what its kernel counterpart overrides. Every method that touches a
//! table counts its raw loads, stores and atomics through the [`Counter`].

use crate::ops::Counter;
use crate::page::PageArena;
use crate::table::PteTable;
use crate::types::{PAGE_SHIFT, Pfn, VirtAddr};

/// A raw page-table entry value, in the arch's own encoding.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Pte(pub u64);

impl std::fmt::Debug for Pte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pte({:#018x})", self.0)
    }
}

/// A swap entry: which swap device and which slot on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwapEntry {
    pub swap_type: u8,
    pub offset: u64,
}

/// An arch-neutral reading of a PTE, for the oracle and for dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PteView {
    /// `pte_none`.
    None,
    /// A present mapping.
    Present {
        pfn: Pfn,
        write: bool,
        dirty: bool,
        young: bool,
        soft_dirty: bool,
        uffd_wp: bool,
        special: bool,
    },
    /// A swap entry.
    Swap {
        entry: SwapEntry,
        soft_dirty: bool,
        uffd_wp: bool,
        exclusive: bool,
    },
}

/// A page-table format and its arch hooks. The fork-copy core is generic over it and
/// monomorphised per engine.
pub trait Arch: Sized + 'static {
    /// Which engine this is.
    const ID: contract::Arch;
    /// arm64's contpte configuration; `None` for engines without one.
    const CONTPTE: Option<contract::Contpte> = None;
    /// Where the PFN sits in a PTE (`PFN_PTE_SHIFT`).
    const PFN_PTE_SHIFT: u32 = PAGE_SHIFT;
    /// Whether the arch has a soft-dirty bit (CONFIG_HAVE_ARCH_SOFT_DIRTY).
    const HAS_SOFT_DIRTY: bool;

    // ---- pure encode/decode ------------------------------------------------------------
    /// `mk_pte(page, vma->vm_page_prot)` for a user page: present, read-only, not yet dirty.
    fn mk_pte(pfn: Pfn, exec: bool) -> Pte;
    /// `pte_pfn`.
    fn pte_pfn(pte: Pte) -> Pfn;
    /// `pte_none`.
    #[inline(always)]
    fn pte_none(pte: Pte) -> bool {
        pte.0 == 0
    }
    /// `pte_present`.
    fn pte_present(pte: Pte) -> bool;
    /// `pte_write`.
    fn pte_write(pte: Pte) -> bool;
    /// `pte_dirty` (any dirty encoding).
    fn pte_dirty(pte: Pte) -> bool;
    /// `pte_young`.
    fn pte_young(pte: Pte) -> bool;
    /// `pte_soft_dirty` (false where the arch has no soft-dirty bit).
    #[inline(always)]
    fn pte_soft_dirty(_pte: Pte) -> bool {
        false
    }
    /// `pte_uffd_wp`.
    fn pte_uffd_wp(pte: Pte) -> bool;
    /// `pte_special`: no `struct page` behind it (`vm_normal_page` returns NULL).
    fn pte_special(pte: Pte) -> bool;
    /// `pte_wrprotect`.
    fn pte_wrprotect(pte: Pte) -> Pte;
    /// `pte_mkwrite`.
    fn pte_mkwrite(pte: Pte) -> Pte;
    /// `pte_mkold`.
    fn pte_mkold(pte: Pte) -> Pte;
    /// `pte_mkyoung`.
    fn pte_mkyoung(pte: Pte) -> Pte;
    /// `pte_mkclean`.
    fn pte_mkclean(pte: Pte) -> Pte;
    /// `pte_mkdirty`.
    fn pte_mkdirty(pte: Pte) -> Pte;
    /// `pte_clear_uffd_wp`.
    fn pte_clear_uffd_wp(pte: Pte) -> Pte;
    /// `pte_mkuffd_wp`.
    fn pte_mkuffd_wp(pte: Pte) -> Pte;
    /// `pte_clear_soft_dirty` (a no-op without a soft-dirty bit).
    #[inline(always)]
    fn pte_clear_soft_dirty(pte: Pte) -> Pte {
        pte
    }
    /// `pte_mksoft_dirty` (a no-op without a soft-dirty bit).
    #[inline(always)]
    fn pte_mksoft_dirty(pte: Pte) -> Pte {
        pte
    }
    /// `pte_mkspecial`.
    fn pte_mkspecial(pte: Pte) -> Pte;
    /// `pte_advance_pfn`: generic version adds `nr << PFN_PTE_SHIFT` to the raw value.
    #[inline(always)]
    fn pte_advance_pfn(pte: Pte, nr: usize) -> Pte {
        Pte(pte.0.wrapping_add((nr as u64) << Self::PFN_PTE_SHIFT))
    }

    /// `swp_entry_to_pte`.
    fn swp_entry_to_pte(entry: SwapEntry) -> Pte;
    /// `pte_to_swp_entry`.
    fn pte_to_swp_entry(pte: Pte) -> SwapEntry;
    /// `pte_swp_soft_dirty`.
    #[inline(always)]
    fn pte_swp_soft_dirty(_pte: Pte) -> bool {
        false
    }
    /// `pte_swp_mksoft_dirty`.
    #[inline(always)]
    fn pte_swp_mksoft_dirty(pte: Pte) -> Pte {
        pte
    }
    /// `pte_swp_uffd_wp`.
    fn pte_swp_uffd_wp(pte: Pte) -> bool;
    /// `pte_swp_mkuffd_wp`.
    fn pte_swp_mkuffd_wp(pte: Pte) -> Pte;
    /// `pte_swp_clear_uffd_wp`.
    fn pte_swp_clear_uffd_wp(pte: Pte) -> Pte;
    /// `pte_swp_exclusive`.
    fn pte_swp_exclusive(pte: Pte) -> bool;
    /// `pte_swp_mkexclusive`.
    fn pte_swp_mkexclusive(pte: Pte) -> Pte;
    /// `pte_swp_clear_exclusive`.
    fn pte_swp_clear_exclusive(pte: Pte) -> Pte;

    /// Arch rule every user PTE must satisfy (e.g. x86: never Write=0 with Dirty=1, the shadow
    /// stack encoding). Returns what is wrong.
    #[inline]
    fn check_pte(_pte: Pte) -> Result<(), String> {
        Ok(())
    }

    /// An arch-neutral reading of a PTE.
    fn view(pte: Pte) -> PteView {
        if Self::pte_none(pte) {
            PteView::None
        } else if Self::pte_present(pte) {
            PteView::Present {
                pfn: Self::pte_pfn(pte),
                write: Self::pte_write(pte),
                dirty: Self::pte_dirty(pte),
                young: Self::pte_young(pte),
                soft_dirty: Self::pte_soft_dirty(pte),
                uffd_wp: Self::pte_uffd_wp(pte),
                special: Self::pte_special(pte),
            }
        } else {
            PteView::Swap {
                entry: Self::pte_to_swp_entry(pte),
                soft_dirty: Self::pte_swp_soft_dirty(pte),
                uffd_wp: Self::pte_swp_uffd_wp(pte),
                exclusive: Self::pte_swp_exclusive(pte),
            }
        }
    }

    /// The arch-neutral reading of the entry at `idx` as `ptep_get` would return it (arm64
    /// contpte gathers young/dirty over the block). Not counted: for the oracle and dumps.
    fn view_at(pt: &PteTable, idx: usize) -> PteView {
        Self::view(Pte(pt.load(idx)))
    }

    /// Whether this entry is part of a contiguous block whose young/dirty bits the hardware
    /// (and `ptep_get`) treat as one (arm64 contpte). Generic: false.
    #[inline(always)]
    fn pte_is_cont(_pte: Pte) -> bool {
        false
    }

    /// Check arch rules that span entries of one table (arm64: contpte blocks are whole,
    /// aligned, one folio, uniform). `base` is the address of entry 0.
    fn check_table(_pages: &PageArena, _pt: &PteTable, _base: VirtAddr) -> Result<(), String> {
        Ok(())
    }

    /// Make the entry at `idx` safe to modify on its own (arm64: unfold a contpte block), as
    /// `mprotect`, `madvise` and friends do before touching one PTE. Generic: nothing.
    #[inline(always)]
    fn prepare_single_update<C: Counter>(_pt: &PteTable, _idx: usize, _addr: VirtAddr, _c: &mut C) {
    }

    // ---- hooks that touch page tables (counted) ------------------------------------------
    /// `ptep_get`: generic = one `READ_ONCE`.
    #[inline(always)]
    fn ptep_get<C: Counter>(pt: &PteTable, idx: usize, c: &mut C) -> Pte {
        c.count(|o| {
            o.ptep_get_calls += 1;
            o.ptep_get_raw_reads += 1;
            o.pte_reads += 1;
        });
        Pte(pt.load(idx))
    }

    /// `set_ptes`: generic = `nr` stores of consecutive PFNs with the first PTE's bits.
    #[inline(always)]
    fn set_ptes<C: Counter>(
        _pages: &PageArena,
        pt: &PteTable,
        idx: usize,
        _addr: VirtAddr,
        pte: Pte,
        nr: usize,
        c: &mut C,
    ) {
        let mut pte = pte;
        for i in 0..nr {
            pt.store(idx + i, pte.0);
            pte = Self::pte_advance_pfn(pte, 1);
        }
        c.count(|o| o.pte_writes += nr as u64);
    }

    /// `ptep_set_wrprotect`: generic = read, then store the write-protected value.
    #[inline(always)]
    fn ptep_set_wrprotect<C: Counter>(pt: &PteTable, idx: usize, _addr: VirtAddr, c: &mut C) {
        let old = Pte(pt.load(idx));
        pt.store(idx, Self::pte_wrprotect(old).0);
        c.count(|o| {
            o.pte_reads += 1;
            o.pte_writes += 1;
        });
    }

    /// `wrprotect_ptes` (v6.9): generic = a loop of `ptep_set_wrprotect`.
    #[inline(always)]
    fn wrprotect_ptes<C: Counter>(pt: &PteTable, idx: usize, addr: VirtAddr, nr: usize, c: &mut C) {
        for i in 0..nr {
            Self::ptep_set_wrprotect(pt, idx + i, addr.add_pages(i as u64), c);
        }
    }

    /// `pte_batch_hint` (v6.9): how many entries starting at `idx` are known to belong to the
    /// same batch without reading them. Generic = 1.
    #[inline(always)]
    fn pte_batch_hint(_pt: &PteTable, _idx: usize, _pte: Pte) -> usize {
        1
    }

    /// `pte_batch_remaining` (Ryan v4): batch size the arch vouches for. Generic = 1.
    #[inline(always)]
    fn pte_batch_remaining(_pte: Pte, _addr: VirtAddr, _end: VirtAddr) -> usize {
        1
    }

    /// `ptep_set_wrprotects` (Ryan v4): generic = a loop of `ptep_set_wrprotect`.
    #[inline(always)]
    fn ptep_set_wrprotects<C: Counter>(
        pt: &PteTable,
        idx: usize,
        addr: VirtAddr,
        nr: usize,
        _full: bool,
        c: &mut C,
    ) {
        for i in 0..nr {
            Self::ptep_set_wrprotect(pt, idx + i, addr.add_pages(i as u64), c);
        }
    }

    /// `set_ptes_full` (Ryan v4): generic = `set_ptes`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn set_ptes_full<C: Counter>(
        pages: &PageArena,
        pt: &PteTable,
        idx: usize,
        addr: VirtAddr,
        pte: Pte,
        nr: usize,
        _full: bool,
        c: &mut C,
    ) {
        Self::set_ptes(pages, pt, idx, addr, pte, nr, c)
    }

    /// `ptep_get_and_clear` (teardown): generic = atomic exchange with 0.
    #[inline(always)]
    fn ptep_get_and_clear<C: Counter>(
        pt: &PteTable,
        idx: usize,
        _addr: VirtAddr,
        c: &mut C,
    ) -> Pte {
        c.count(|o| o.pte_atomics += 1);
        Pte(pt.xchg(idx, 0))
    }

    /// `arch_enter_lazy_mmu_mode`: nothing on bare metal.
    #[inline(always)]
    fn arch_enter_lazy_mmu_mode<C: Counter>(c: &mut C) {
        c.count(|o| o.lazy_mmu_enters += 1);
    }

    /// `arch_leave_lazy_mmu_mode`: nothing on bare metal.
    #[inline(always)]
    fn arch_leave_lazy_mmu_mode<C: Counter>(_c: &mut C) {}

    /// `flush_tlb_mm(parent)` at the end of `dup_mmap`.
    #[inline(always)]
    fn flush_tlb_mm<C: Counter>(c: &mut C) {
        c.count(|o| o.tlb_flush_mm += 1);
    }
}
