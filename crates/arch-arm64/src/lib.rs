//! The arm64 engine (4 KiB granule): PTE bits and the software dirty/write encoding of
//! `arch/arm64/include/asm/pgtable*.h`, read + compare-and-swap `ptep_set_wrprotect` (hardware
//! DBM may clear RDONLY at any time), and the contiguous-PTE ("contpte") backend of
//! `arch/arm64/mm/contpte.c` in three configurations, selected by a type parameter so every
//! configuration is monomorphised:
//!
//! - [`ContpteDis`]: no contpte (`CONFIG_ARM64_CONTPTE=n`): generic helpers, arm64 bits.
//! - [`ContpteEna`]: v6.9 contpte with the fork helpers (gathered `ptep_get`, `set_ptes` writing
//!   CONT for whole aligned blocks, `wrprotect_ptes` that never unfolds a whole block,
//!   `pte_batch_hint`, automatic fold from `set_ptes(nr == 1)`), plus the arm64 side of Ryan's
//!   v4 (`pte_batch_remaining`, `contpte_set_wrprotects`, `set_ptes_full`) for `ryan-v4`.
//! - [`ContpteBasic`]: the contpte backend driven through generic per-PTE helpers (the v5
//!   "contpte-basic" row; v4's "before-change"): gathered `ptep_get`, CONT from
//!   `set_ptes(nr > 1)`, every single-PTE write-protect unfolds its block first; no hint, no
//!   batch write-protect, no fold.

#![deny(unsafe_code)]

use std::marker::PhantomData;

use bitflags::bitflags;
use forkmodel::arch::{Arch, Pte, PteView, SwapEntry};
use forkmodel::ops::Counter;
use forkmodel::page::PageArena;
use forkmodel::table::PteTable;
use forkmodel::{Pfn, VirtAddr};

/// Granule constants, in one place so 16 KiB and 64 KiB granules can be added.
pub mod granule {
    /// `CONFIG_ARM64_CONT_PTE_SHIFT` for the 4 KiB granule.
    pub const CONT_PTE_SHIFT_BITS: u32 = 4;
    /// Entries in one contiguous block (16 for 4 KiB, 128 for 16 KiB, 32 for 64 KiB).
    pub const CONT_PTES: usize = 1 << CONT_PTE_SHIFT_BITS;
    /// Bytes covered by one contiguous block (64 KiB for 4 KiB).
    pub const CONT_PTE_SIZE: u64 = (CONT_PTES as u64) << forkmodel::types::PAGE_SHIFT;
}

use granule::CONT_PTES;

bitflags! {
    /// Bits of an arm64 stage-1 level-3 page descriptor (4 KiB granule, 48-bit PA), with
    /// Linux's software bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Arm64PteFlags: u64 {
        /// Bit 0, `PTE_VALID`.
        const VALID = 1 << 0;
        /// Bit 1: with VALID, `PTE_TYPE_PAGE` (0b11 in bits 1:0 = level-3 page descriptor).
        const TYPE_PAGE = 1 << 1;
        /// Bits 4:2, `AttrIndx` (MAIR index; 0 = MT_NORMAL). In swap entries bit 2 is
        /// `PTE_SWP_EXCLUSIVE` and bit 3 `PTE_SWP_UFFD_WP`.
        const ATTRINDX = 0b111 << 2;
        /// Bit 6, `PTE_USER` (AP[1]): EL0 accessible.
        const USER = 1 << 6;
        /// Bit 7, `PTE_RDONLY` (AP[2]): hardware read-only.
        const RDONLY = 1 << 7;
        /// Bits 9:8, `PTE_SHARED` (SH, inner shareable = 0b11).
        const SHARED = 0b11 << 8;
        /// Bit 10, `PTE_AF`: access flag (young).
        const AF = 1 << 10;
        /// Bit 11, `PTE_NG`: not global (set on user mappings).
        const NG = 1 << 11;
        /// Bit 50, `PTE_GP`: BTI guarded page.
        const GP = 1 << 50;
        /// Bit 51, `PTE_DBM` = `PTE_WRITE`: software "writable", hardware dirty-bit management.
        const WRITE = 1 << 51;
        /// Bit 52, `PTE_CONT`: one of 16 contiguous, aligned entries the TLB may cache as one.
        const CONT = 1 << 52;
        /// Bit 53, `PTE_PXN`: privileged execute never.
        const PXN = 1 << 53;
        /// Bit 54, `PTE_UXN`: user execute never.
        const UXN = 1 << 54;
        /// Bit 55, `PTE_DIRTY`: software dirty (used when the entry is read-only).
        const DIRTY = 1 << 55;
        /// Bit 56, `PTE_SPECIAL`: no `struct page`.
        const SPECIAL = 1 << 56;
        /// Bit 57, `PTE_DEVMAP` (removed in later kernels).
        const DEVMAP = 1 << 57;
        /// Bit 58, `PTE_UFFD_WP` (v6.10+; `PTE_PROT_NONE` before, when not valid).
        const UFFD_WP = 1 << 58;
    }
}

/// Output-address bits 47:12 (48-bit PA).
pub const PTE_ADDR_MASK: u64 = ((1u64 << 48) - 1) & !0xfff;

const SWP_EXCLUSIVE: u64 = 1 << 2;
const SWP_UFFD_WP: u64 = 1 << 3;
const SWP_TYPE_SHIFT: u32 = 6;
const SWP_TYPE_MASK: u64 = 0x1f;
const SWP_OFFSET_SHIFT: u32 = 12;
const SWP_OFFSET_MASK: u64 = (1 << 50) - 1;

const fn has(p: Pte, f: Arm64PteFlags) -> bool {
    p.0 & f.bits() != 0
}
const fn set(p: Pte, f: Arm64PteFlags) -> Pte {
    Pte(p.0 | f.bits())
}
const fn clear(p: Pte, f: Arm64PteFlags) -> Pte {
    Pte(p.0 & !f.bits())
}

/// A valid entry with the contiguous bit.
#[inline(always)]
pub const fn pte_valid_cont(p: Pte) -> bool {
    p.0 & (Arm64PteFlags::VALID.bits() | Arm64PteFlags::CONT.bits())
        == (Arm64PteFlags::VALID.bits() | Arm64PteFlags::CONT.bits())
}

/// `pte_hw_dirty`: writable (DBM) and hardware-writable (RDONLY clear).
#[inline(always)]
const fn hw_dirty(p: Pte) -> bool {
    has(p, Arm64PteFlags::WRITE) && !has(p, Arm64PteFlags::RDONLY)
}

#[inline(always)]
const fn block_start(idx: usize) -> usize {
    idx & !(CONT_PTES - 1)
}

/// A contpte configuration.
pub trait ContpteMode: 'static {
    /// Which configuration this is.
    const MODE: contract::Contpte;
    /// CONT bits are written and `ptep_get` gathers.
    const CONT: bool;
    /// The v6.9 fork helpers (`wrprotect_ptes` batch, `pte_batch_hint`) and v4's arm64 side.
    const FORK_HELPERS: bool;
    /// Automatic fold from `set_ptes(nr == 1)`.
    const FOLD: bool;
}

/// `CONFIG_ARM64_CONTPTE=n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContpteDis;
/// v6.9 contpte with fork helpers and fold.
#[derive(Debug, Clone, Copy, Default)]
pub struct ContpteEna;
/// contpte without fork helpers (v5 "contpte-basic").
#[derive(Debug, Clone, Copy, Default)]
pub struct ContpteBasic;

impl ContpteMode for ContpteDis {
    const MODE: contract::Contpte = contract::Contpte::Dis;
    const CONT: bool = false;
    const FORK_HELPERS: bool = false;
    const FOLD: bool = false;
}
impl ContpteMode for ContpteEna {
    const MODE: contract::Contpte = contract::Contpte::Ena;
    const CONT: bool = true;
    const FORK_HELPERS: bool = true;
    const FOLD: bool = true;
}
impl ContpteMode for ContpteBasic {
    const MODE: contract::Contpte = contract::Contpte::Basic;
    const CONT: bool = true;
    const FORK_HELPERS: bool = false;
    const FOLD: bool = false;
}

/// The arm64 engine in contpte configuration `M`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Arm64<M: ContpteMode>(PhantomData<M>);

impl<M: ContpteMode> Arm64<M> {
    /// `contpte_convert`: break-before-make rewrite of the block containing `idx`. Every
    /// entry is cleared with an exchange (collecting young/dirty), the 64 KiB range is
    /// invalidated, and 16 entries are written from `template` (the accessed entry's
    /// attributes, PFN aligned down) with CONT set iff `cont`.
    #[inline(never)]
    fn convert<C: Counter>(pt: &PteTable, idx: usize, template: Pte, cont: bool, c: &mut C) {
        let start = block_start(idx);
        let first_pfn = Pfn(Self::pte_pfn(template).0 & !(CONT_PTES as u64 - 1));
        let mut pte = Pte((template.0 & !PTE_ADDR_MASK) | ((first_pfn.0 << 12) & PTE_ADDR_MASK));
        for i in 0..CONT_PTES {
            let old = Pte(pt.xchg(start + i, 0));
            if Self::pte_dirty(old) {
                pte = Self::pte_mkdirty(pte);
            }
            if Self::pte_young(old) {
                pte = Self::pte_mkyoung(pte);
            }
        }
        pte = if cont {
            set(pte, Arm64PteFlags::CONT)
        } else {
            clear(pte, Arm64PteFlags::CONT)
        };
        for i in 0..CONT_PTES {
            pt.store(start + i, pte.0);
            pte = Self::pte_advance_pfn(pte, 1);
        }
        c.count(|o| {
            o.pte_atomics += CONT_PTES as u64;
            o.tlbi += 1;
            o.pte_writes += CONT_PTES as u64;
        });
    }

    /// `contpte_try_unfold` on an entry already read: unfold if it is a valid CONT entry.
    #[inline(always)]
    fn try_unfold<C: Counter>(pt: &PteTable, idx: usize, seen: Pte, c: &mut C) -> bool {
        if M::CONT && pte_valid_cont(seen) {
            Self::convert(pt, idx, seen, false, c);
            true
        } else {
            false
        }
    }

    /// `contpte_try_fold` after writing `pte` at `idx`: at the last entry of a block whose
    /// folio covers the whole 64 KiB, check the 16 entries map consecutive PFNs with equal
    /// attributes (ignoring AF and dirty) and fold them.
    #[inline(always)]
    fn try_fold<C: Counter>(pages: &PageArena, pt: &PteTable, idx: usize, pte: Pte, c: &mut C) {
        let mask = CONT_PTES as u64 - 1;
        let pfn = Self::pte_pfn(pte);
        if idx & (CONT_PTES - 1) != CONT_PTES - 1
            || pfn.0 & mask != mask
            || !has(pte, Arm64PteFlags::VALID)
            || has(pte, Arm64PteFlags::CONT)
            || has(pte, Arm64PteFlags::SPECIAL)
        {
            return;
        }
        Self::try_fold_slow(pages, pt, idx, pte, c);
    }

    #[inline(never)]
    fn try_fold_slow<C: Counter>(
        pages: &PageArena,
        pt: &PteTable,
        idx: usize,
        pte: Pte,
        c: &mut C,
    ) {
        let pfn = Self::pte_pfn(pte);
        if pages.try_page(pfn).is_none() {
            return;
        }
        let folio = pages.folio_of(pfn);
        let folio_end = folio.0 + (1u64 << pages.folio_order(folio));
        let first = pfn.0 - (CONT_PTES as u64 - 1);
        if first < folio.0 || pfn.0 >= folio_end {
            return;
        }
        let start = block_start(idx);
        let norm = |p: Pte| Self::pte_mkold(Self::pte_mkclean(p));
        let mut expected = norm(Pte((pte.0 & !PTE_ADDR_MASK) | (first << 12)));
        let mut reads = 0;
        let mut ok = true;
        for i in 0..CONT_PTES {
            let sub = norm(Pte(pt.load(start + i)));
            reads += 1;
            if sub != expected {
                ok = false;
                break;
            }
            expected = Self::pte_advance_pfn(expected, 1);
        }
        c.count(|o| o.pte_reads += reads);
        if ok {
            Self::convert(pt, idx, pte, true, c);
        }
    }

    /// `___ptep_set_wrprotect`: CAS loop from an already-read value.
    #[inline(always)]
    fn wrprotect_from<C: Counter>(pt: &PteTable, idx: usize, seen: u64, c: &mut C) {
        let mut old = seen;
        let mut cas = 1;
        let mut extra_reads = 0;
        while let Err(now) = pt.cmpxchg(idx, old, Self::pte_wrprotect(Pte(old)).0) {
            old = now;
            cas += 1;
            extra_reads += 1;
        }
        c.count(|o| {
            o.pte_atomics += cas;
            o.pte_reads += extra_reads;
        });
    }

    /// `contpte_set_ptes`: write `nr` entries from `pte`, with CONT on every chunk that covers
    /// a whole block whose VA and PA are 64 KiB-aligned. Targets are none: no unfold.
    #[inline(always)]
    fn contpte_set_ptes<C: Counter>(pt: &PteTable, idx: usize, mut pte: Pte, nr: usize, c: &mut C) {
        let end = idx + nr;
        let mut cur = idx;
        while cur < end {
            let next = (block_start(cur) + CONT_PTES).min(end);
            let aligned = cur.is_multiple_of(CONT_PTES)
                && next - cur == CONT_PTES
                && Self::pte_pfn(pte).0 % CONT_PTES as u64 == 0;
            let base = if aligned {
                set(pte, Arm64PteFlags::CONT)
            } else {
                pte
            };
            let mut p = base;
            for i in cur..next {
                pt.store(i, p.0);
                p = Self::pte_advance_pfn(p, 1);
            }
            pte = Self::pte_advance_pfn(pte, next - cur);
            cur = next;
        }
        c.count(|o| o.pte_writes += nr as u64);
    }
}

impl<M: ContpteMode> Arch for Arm64<M> {
    const ID: contract::Arch = contract::Arch::Arm64;
    const CONTPTE: Option<contract::Contpte> = Some(M::MODE);
    const HAS_SOFT_DIRTY: bool = false;

    #[inline(always)]
    fn mk_pte(pfn: Pfn, exec: bool) -> Pte {
        // PAGE_READONLY: valid page, normal memory, user, read-only, inner shareable, AF, nG,
        // never executable at EL1, and at EL0 unless executable.
        let mut f = Arm64PteFlags::VALID
            | Arm64PteFlags::TYPE_PAGE
            | Arm64PteFlags::USER
            | Arm64PteFlags::RDONLY
            | Arm64PteFlags::SHARED
            | Arm64PteFlags::AF
            | Arm64PteFlags::NG
            | Arm64PteFlags::PXN;
        if !exec {
            f |= Arm64PteFlags::UXN;
        }
        Pte(((pfn.0 << 12) & PTE_ADDR_MASK) | f.bits())
    }
    #[inline(always)]
    fn pte_pfn(pte: Pte) -> Pfn {
        Pfn((pte.0 & PTE_ADDR_MASK) >> 12)
    }
    #[inline(always)]
    fn pte_present(pte: Pte) -> bool {
        has(pte, Arm64PteFlags::VALID)
    }
    #[inline(always)]
    fn pte_write(pte: Pte) -> bool {
        has(pte, Arm64PteFlags::WRITE)
    }
    #[inline(always)]
    fn pte_dirty(pte: Pte) -> bool {
        has(pte, Arm64PteFlags::DIRTY) || hw_dirty(pte)
    }
    #[inline(always)]
    fn pte_young(pte: Pte) -> bool {
        has(pte, Arm64PteFlags::AF)
    }
    #[inline(always)]
    fn pte_uffd_wp(pte: Pte) -> bool {
        has(pte, Arm64PteFlags::UFFD_WP)
    }
    #[inline(always)]
    fn pte_special(pte: Pte) -> bool {
        has(pte, Arm64PteFlags::SPECIAL)
    }
    #[inline(always)]
    fn pte_wrprotect(pte: Pte) -> Pte {
        // Hardware dirty must survive as software dirty once RDONLY is set.
        let pte = if hw_dirty(pte) {
            set(pte, Arm64PteFlags::DIRTY)
        } else {
            pte
        };
        set(clear(pte, Arm64PteFlags::WRITE), Arm64PteFlags::RDONLY)
    }
    #[inline(always)]
    fn pte_mkwrite(pte: Pte) -> Pte {
        let pte = set(pte, Arm64PteFlags::WRITE);
        if has(pte, Arm64PteFlags::DIRTY) {
            clear(pte, Arm64PteFlags::RDONLY)
        } else {
            pte
        }
    }
    #[inline(always)]
    fn pte_mkold(pte: Pte) -> Pte {
        clear(pte, Arm64PteFlags::AF)
    }
    #[inline(always)]
    fn pte_mkyoung(pte: Pte) -> Pte {
        set(pte, Arm64PteFlags::AF)
    }
    #[inline(always)]
    fn pte_mkclean(pte: Pte) -> Pte {
        set(clear(pte, Arm64PteFlags::DIRTY), Arm64PteFlags::RDONLY)
    }
    #[inline(always)]
    fn pte_mkdirty(pte: Pte) -> Pte {
        let pte = set(pte, Arm64PteFlags::DIRTY);
        if has(pte, Arm64PteFlags::WRITE) {
            clear(pte, Arm64PteFlags::RDONLY)
        } else {
            pte
        }
    }
    #[inline(always)]
    fn pte_clear_uffd_wp(pte: Pte) -> Pte {
        clear(pte, Arm64PteFlags::UFFD_WP)
    }
    #[inline(always)]
    fn pte_mkuffd_wp(pte: Pte) -> Pte {
        Self::pte_wrprotect(set(pte, Arm64PteFlags::UFFD_WP))
    }
    #[inline(always)]
    fn pte_mkspecial(pte: Pte) -> Pte {
        set(pte, Arm64PteFlags::SPECIAL)
    }

    fn swp_entry_to_pte(entry: SwapEntry) -> Pte {
        Pte(((entry.swap_type as u64 & SWP_TYPE_MASK) << SWP_TYPE_SHIFT)
            | ((entry.offset & SWP_OFFSET_MASK) << SWP_OFFSET_SHIFT))
    }
    fn pte_to_swp_entry(pte: Pte) -> SwapEntry {
        SwapEntry {
            swap_type: ((pte.0 >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK) as u8,
            offset: (pte.0 >> SWP_OFFSET_SHIFT) & SWP_OFFSET_MASK,
        }
    }
    fn pte_swp_uffd_wp(pte: Pte) -> bool {
        pte.0 & SWP_UFFD_WP != 0
    }
    fn pte_swp_mkuffd_wp(pte: Pte) -> Pte {
        Pte(pte.0 | SWP_UFFD_WP)
    }
    fn pte_swp_clear_uffd_wp(pte: Pte) -> Pte {
        Pte(pte.0 & !SWP_UFFD_WP)
    }
    fn pte_swp_exclusive(pte: Pte) -> bool {
        pte.0 & SWP_EXCLUSIVE != 0
    }
    fn pte_swp_mkexclusive(pte: Pte) -> Pte {
        Pte(pte.0 | SWP_EXCLUSIVE)
    }
    fn pte_swp_clear_exclusive(pte: Pte) -> Pte {
        Pte(pte.0 & !SWP_EXCLUSIVE)
    }

    fn check_pte(pte: Pte) -> Result<(), String> {
        if has(pte, Arm64PteFlags::VALID) {
            if !has(pte, Arm64PteFlags::RDONLY) && !has(pte, Arm64PteFlags::WRITE) {
                return Err("hardware-writable (RDONLY clear) but not PTE_WRITE".into());
            }
            if has(pte, Arm64PteFlags::CONT) && !M::CONT {
                return Err("CONT set with contpte disabled".into());
            }
        }
        Ok(())
    }

    fn pte_is_cont(pte: Pte) -> bool {
        M::CONT && pte_valid_cont(pte)
    }

    fn view_at(pt: &PteTable, idx: usize) -> PteView {
        let raw = Pte(pt.load(idx));
        if !(M::CONT && pte_valid_cont(raw)) {
            return Self::view(raw);
        }
        let start = block_start(idx);
        let mut pte = raw;
        for i in 0..CONT_PTES {
            let e = Pte(pt.load(start + i));
            if Self::pte_dirty(e) {
                pte = Self::pte_mkdirty(pte);
            }
            if Self::pte_young(e) {
                pte = Self::pte_mkyoung(pte);
            }
        }
        Self::view(pte)
    }

    fn check_table(pages: &PageArena, pt: &PteTable, base: VirtAddr) -> Result<(), String> {
        if !M::CONT {
            return Ok(());
        }
        let nr = forkmodel::types::PTRS_PER_PTE;
        let mut start = 0;
        while start < nr {
            let block: Vec<Pte> = (start..start + CONT_PTES)
                .map(|i| Pte(pt.load(i)))
                .collect();
            let conts = block
                .iter()
                .filter(|p| has(**p, Arm64PteFlags::CONT))
                .count();
            let addr = VirtAddr(base.0 + (start as u64) * 4096);
            if conts != 0 {
                if conts != CONT_PTES || !block.iter().all(|p| has(*p, Arm64PteFlags::VALID)) {
                    return Err(format!(
                        "block at {addr:?}: {conts} of 16 entries CONT, or a CONT entry not valid"
                    ));
                }
                let first = Self::pte_pfn(block[0]);
                if first.0 % CONT_PTES as u64 != 0 {
                    return Err(format!(
                        "CONT block at {addr:?} maps {first:?}, not 64 KiB-aligned"
                    ));
                }
                let norm = |p: Pte| Self::pte_mkold(Self::pte_mkclean(p)).0 & !PTE_ADDR_MASK;
                for (i, p) in block.iter().enumerate() {
                    if Self::pte_pfn(*p) != first.add(i as u64) {
                        return Err(format!(
                            "CONT block at {addr:?}: entry {i} breaks PFN contiguity"
                        ));
                    }
                    if norm(*p) != norm(block[0]) {
                        return Err(format!(
                            "CONT block at {addr:?}: entry {i} differs beyond AF/dirty"
                        ));
                    }
                }
                if pages.try_page(first).is_some() {
                    let folio = pages.folio_of(first);
                    if pages.folio_of(first.add(CONT_PTES as u64 - 1)) != folio {
                        return Err(format!("CONT block at {addr:?} spans two folios"));
                    }
                }
            }
            start += CONT_PTES;
        }
        Ok(())
    }

    fn prepare_single_update<C: Counter>(pt: &PteTable, idx: usize, _addr: VirtAddr, c: &mut C) {
        let seen = Pte(pt.load(idx));
        Self::try_unfold(pt, idx, seen, c);
    }

    #[inline(always)]
    fn ptep_get<C: Counter>(pt: &PteTable, idx: usize, c: &mut C) -> Pte {
        let mut pte = Pte(pt.load(idx));
        let mut reads = 1;
        if M::CONT && pte_valid_cont(pte) {
            // contpte_ptep_get: hardware may set AF/dirty on any entry of the block, so read
            // all 16 and OR them in. CONT stays in the returned value.
            let start = block_start(idx);
            for i in 0..CONT_PTES {
                let e = Pte(pt.load(start + i));
                if Self::pte_dirty(e) {
                    pte = Self::pte_mkdirty(pte);
                }
                if Self::pte_young(e) {
                    pte = Self::pte_mkyoung(pte);
                }
            }
            reads += CONT_PTES as u64;
        }
        c.count(|o| {
            o.ptep_get_calls += 1;
            o.ptep_get_raw_reads += reads;
            o.pte_reads += reads;
        });
        pte
    }

    #[inline(always)]
    fn set_ptes<C: Counter>(
        pages: &PageArena,
        pt: &PteTable,
        idx: usize,
        _addr: VirtAddr,
        pte: Pte,
        nr: usize,
        c: &mut C,
    ) {
        if !M::CONT {
            let mut p = pte;
            for i in 0..nr {
                pt.store(idx + i, p.0);
                p = Self::pte_advance_pfn(p, 1);
            }
            c.count(|o| o.pte_writes += nr as u64);
            return;
        }
        let pte = clear(pte, Arm64PteFlags::CONT);
        if nr == 1 {
            let cur = Pte(pt.load(idx));
            c.count(|o| o.pte_reads += 1);
            Self::try_unfold(pt, idx, cur, c);
            pt.store(idx, pte.0);
            c.count(|o| o.pte_writes += 1);
            if M::FOLD {
                Self::try_fold(pages, pt, idx, pte, c);
            }
        } else {
            Self::contpte_set_ptes(pt, idx, pte, nr, c);
        }
    }

    #[inline(always)]
    fn ptep_set_wrprotect<C: Counter>(pt: &PteTable, idx: usize, _addr: VirtAddr, c: &mut C) {
        let seen = pt.load(idx);
        c.count(|o| o.pte_reads += 1);
        if M::CONT && pte_valid_cont(Pte(seen)) {
            Self::convert(pt, idx, Pte(seen), false, c);
            // Basic and v6.9 alike re-read after the unfold before the CAS loop.
            let again = pt.load(idx);
            c.count(|o| o.pte_reads += 1);
            Self::wrprotect_from(pt, idx, again, c);
        } else if M::CONT && !M::FORK_HELPERS {
            // Basic: contpte_try_unfold(__ptep_get()) then __ptep_set_wrprotect(), which reads
            // the entry again.
            let again = pt.load(idx);
            c.count(|o| o.pte_reads += 1);
            Self::wrprotect_from(pt, idx, again, c);
        } else {
            Self::wrprotect_from(pt, idx, seen, c);
        }
    }

    #[inline(always)]
    fn wrprotect_ptes<C: Counter>(pt: &PteTable, idx: usize, addr: VirtAddr, nr: usize, c: &mut C) {
        if !M::FORK_HELPERS || nr == 1 {
            for i in 0..nr {
                Self::ptep_set_wrprotect(pt, idx + i, addr.add_pages(i as u64), c);
            }
            return;
        }
        // contpte_wrprotect_ptes: unfold only partially covered blocks at either end; whole
        // blocks stay CONT (no TLBI: the caller's flush_tlb_mm covers stale writable entries).
        if !idx.is_multiple_of(CONT_PTES) || nr < CONT_PTES {
            let seen = Pte(pt.load(idx));
            c.count(|o| o.pte_reads += 1);
            Self::try_unfold(pt, idx, seen, c);
        }
        let end = idx + nr;
        if !end.is_multiple_of(CONT_PTES) {
            let seen = Pte(pt.load(end - 1));
            c.count(|o| o.pte_reads += 1);
            Self::try_unfold(pt, end - 1, seen, c);
        }
        for i in idx..end {
            let seen = pt.load(i);
            c.count(|o| o.pte_reads += 1);
            Self::wrprotect_from(pt, i, seen, c);
        }
    }

    #[inline(always)]
    fn pte_batch_hint(_pt: &PteTable, idx: usize, pte: Pte) -> usize {
        if M::FORK_HELPERS && pte_valid_cont(pte) {
            CONT_PTES - (idx & (CONT_PTES - 1))
        } else {
            1
        }
    }

    #[inline(always)]
    fn pte_batch_remaining(pte: Pte, addr: VirtAddr, end: VirtAddr) -> usize {
        if M::FORK_HELPERS && pte_valid_cont(pte) {
            let left_in_block = CONT_PTES - addr.pte_index() % CONT_PTES;
            left_in_block.min(((end.0 - addr.0) >> 12) as usize)
        } else {
            1
        }
    }

    #[inline(always)]
    fn ptep_set_wrprotects<C: Counter>(
        pt: &PteTable,
        idx: usize,
        addr: VirtAddr,
        nr: usize,
        full: bool,
        c: &mut C,
    ) {
        if !M::FORK_HELPERS || nr == 1 {
            for i in 0..nr {
                Self::ptep_set_wrprotect(pt, idx + i, addr.add_pages(i as u64), c);
            }
            return;
        }
        let _ = full;
        // Ryan v4 contpte_set_wrprotects: a whole block is write-protected in place (no
        // unfold, no TLBI); a partial block is unfolded first and a refold attempted after.
        let whole = idx.is_multiple_of(CONT_PTES) && nr == CONT_PTES;
        if !whole {
            let seen = Pte(pt.load(idx));
            c.count(|o| o.pte_reads += 1);
            Self::try_unfold(pt, idx, seen, c);
        }
        for i in idx..idx + nr {
            let seen = pt.load(i);
            c.count(|o| o.pte_reads += 1);
            Self::wrprotect_from(pt, i, seen, c);
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn set_ptes_full<C: Counter>(
        pages: &PageArena,
        pt: &PteTable,
        idx: usize,
        addr: VirtAddr,
        pte: Pte,
        nr: usize,
        full: bool,
        c: &mut C,
    ) {
        if M::FORK_HELPERS && full && nr == 1 {
            // v4: a full-mm copy skips the unfold check and the fold attempt.
            pt.store(idx, clear(pte, Arm64PteFlags::CONT).0);
            c.count(|o| o.pte_writes += 1);
        } else {
            Self::set_ptes(pages, pt, idx, addr, pte, nr, c);
        }
    }
}

/// arm64 with contpte and the fork helpers.
pub type Arm64ContpteEna = Arm64<ContpteEna>;
/// arm64 without contpte.
pub type Arm64ContpteDis = Arm64<ContpteDis>;
/// arm64 contpte without fork helpers.
pub type Arm64ContpteBasic = Arm64<ContpteBasic>;

#[cfg(test)]
mod tests {
    use super::*;

    type A = Arm64ContpteEna;

    fn dirty_writable(pfn: u64) -> Pte {
        A::pte_mkwrite(A::pte_mkdirty(A::pte_mkyoung(A::mk_pte(Pfn(pfn), false))))
    }

    #[test]
    fn dirty_write_encoding_table() {
        // clean, read-only: RDONLY=1 WRITE=0 DIRTY=0
        let ro = A::mk_pte(Pfn(5), false);
        assert!(has(ro, Arm64PteFlags::RDONLY) && !A::pte_write(ro) && !A::pte_dirty(ro));
        // clean, writable: RDONLY=1 WRITE=1
        let cw = A::pte_mkwrite(ro);
        assert!(has(cw, Arm64PteFlags::RDONLY) && A::pte_write(cw) && !A::pte_dirty(cw));
        // dirty, writable: RDONLY=0 WRITE=1 (hardware dirty)
        let dw = dirty_writable(5);
        assert!(!has(dw, Arm64PteFlags::RDONLY) && A::pte_write(dw) && A::pte_dirty(dw));
        // wrprotect moves hardware dirty to software dirty: RDONLY=1 WRITE=0 DIRTY=1
        let dr = A::pte_wrprotect(dw);
        assert!(
            has(dr, Arm64PteFlags::RDONLY) && !A::pte_write(dr) && has(dr, Arm64PteFlags::DIRTY)
        );
        assert!(A::pte_dirty(dr));
        let clean = A::pte_mkclean(dr);
        assert!(!A::pte_dirty(clean) && has(clean, Arm64PteFlags::RDONLY));
        assert!(A::check_pte(dr).is_ok() && A::check_pte(clean).is_ok());
        assert!(A::check_pte(clear(dw, Arm64PteFlags::WRITE)).is_err());
    }

    #[test]
    fn swap_entries_round_trip() {
        let e = SwapEntry {
            swap_type: 2,
            offset: 12345,
        };
        let p = A::pte_swp_mkexclusive(A::pte_swp_mkuffd_wp(A::swp_entry_to_pte(e)));
        assert!(!A::pte_present(p) && !A::pte_none(p));
        assert_eq!(A::pte_to_swp_entry(p), e);
        assert!(A::pte_swp_exclusive(p) && A::pte_swp_uffd_wp(p));
    }

    #[test]
    fn cont_block_gathers_and_hints() {
        let mut pool = forkmodel::table::TablePool::new();
        let t = pool.alloc();
        let pt = pool.get(t);
        let pages = PageArena::with_capacity(0);
        let old_clean = A::pte_mkold(A::pte_mkwrite(A::mk_pte(Pfn(32), false)));
        let mut ops = forkmodel::Ops::default();
        A::set_ptes(&pages, pt, 16, VirtAddr(16 * 4096), old_clean, 16, &mut ops);
        assert!(pte_valid_cont(Pte(pt.load(20))));
        assert_eq!(ops.pte_writes, 16);
        // Hardware marks entry 23 young and dirty.
        pt.store(23, dirty_writable(32 + 7).0 | Arm64PteFlags::CONT.bits());
        let mut ops = forkmodel::Ops::default();
        let seen = A::ptep_get(pt, 18, &mut ops);
        assert_eq!((ops.ptep_get_calls, ops.ptep_get_raw_reads), (1, 17));
        assert!(A::pte_young(seen) && A::pte_dirty(seen) && A::pte_pfn(seen) == Pfn(34));
        assert_eq!(A::pte_batch_hint(pt, 18, seen), 14);
        // A single write-protect unfolds: 16 xchg, 1 TLBI, 16 writes.
        let mut ops = forkmodel::Ops::default();
        A::ptep_set_wrprotect(pt, 18, VirtAddr(18 * 4096), &mut ops);
        assert_eq!((ops.pte_atomics, ops.tlbi, ops.pte_writes), (17, 1, 16));
        assert!(!has(Pte(pt.load(18)), Arm64PteFlags::CONT));
        assert!(A::check_table(&pages, pt, VirtAddr(0)).is_ok());
    }
}
