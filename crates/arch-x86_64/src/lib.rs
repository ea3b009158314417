//! The x86_64 engine: 4-level paging with 4 KiB pages and PTE bits as in
//! `arch/x86/include/asm/pgtable_types.h`, in the two generations of x86's PTE code, selected
//! by a type parameter so each is monomorphised ([`contract::X86PteCode`]; the strategy's
//! kernel version picks one):
//!
//! - [`SavedDirty`] (v6.6+): Write=0 with Dirty=1 is the shadow-stack encoding, so
//!   write-protecting moves Dirty to SavedDirty, and `ptep_set_wrprotect` is a read +
//!   compare-and-swap loop ([`X86_64`]).
//! - [`NoSavedDirty`] (6.1): `ptep_set_wrprotect` is one locked clear of the RW bit, a dirty
//!   write-protected PTE keeps Dirty, and `pte_mkuffd_wp` only sets its bit
//!   ([`X86_64NoSavedDirty`]).
//!
//! x86 overrides neither `pte_batch_hint` nor `wrprotect_ptes`, and its lazy-MMU hooks do
//! nothing on bare metal, so everything else is the core's generic default.

#![deny(unsafe_code)]

use std::marker::PhantomData;

use bitflags::bitflags;
use forkmodel::arch::{Arch, Pte, SwapEntry};
use forkmodel::ops::Counter;
use forkmodel::table::PteTable;
use forkmodel::{Pfn, VirtAddr};

bitflags! {
    /// Flag bits of an x86_64 leaf PTE (4 KiB page).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct X86PteFlags: u64 {
        /// Bit 0, `_PAGE_PRESENT`: the entry translates.
        const PRESENT = 1 << 0;
        /// Bit 1, `_PAGE_RW`: writable. In swap entries: `_PAGE_SWP_SOFT_DIRTY`.
        const RW = 1 << 1;
        /// Bit 2, `_PAGE_USER`: user accessible. In swap entries: `_PAGE_SWP_UFFD_WP`.
        const USER = 1 << 2;
        /// Bit 3, `_PAGE_PWT`: write-through. In swap entries: `_PAGE_SWP_EXCLUSIVE`.
        const PWT = 1 << 3;
        /// Bit 4, `_PAGE_PCD`: cache disable.
        const PCD = 1 << 4;
        /// Bit 5, `_PAGE_ACCESSED`: set by hardware on access (young).
        const ACCESSED = 1 << 5;
        /// Bit 6, `_PAGE_DIRTY`: set by hardware on write.
        const DIRTY = 1 << 6;
        /// Bit 7, `_PAGE_PAT` for 4 KiB entries (`_PAGE_PSE` in huge entries).
        const PAT = 1 << 7;
        /// Bit 8, `_PAGE_GLOBAL`; `_PAGE_PROTNONE` when not present.
        const GLOBAL = 1 << 8;
        /// Bit 9, software bit 1: `_PAGE_SPECIAL` (no `struct page`).
        const SPECIAL = 1 << 9;
        /// Bit 10, software bit 2: `_PAGE_UFFD_WP`.
        const UFFD_WP = 1 << 10;
        /// Bit 11, software bit 3: `_PAGE_SOFT_DIRTY`.
        const SOFT_DIRTY = 1 << 11;
        /// Bit 57, software bit 4: `_PAGE_DEVMAP` (v6.6+; bit 58 before; removed in newer
        /// trees). Never set by the model.
        const DEVMAP = 1 << 57;
        /// Bit 58, software bit 5: `_PAGE_SAVED_DIRTY` (v6.6+): dirty, but write-protected.
        const SAVED_DIRTY = 1 << 58;
        /// Bits 59-62: protection key.
        const PKEY = 0xf << 59;
        /// Bit 63, `_PAGE_NX`: no execute.
        const NX = 1 << 63;
    }
}

/// `PTE_PFN_MASK`: physical address bits 12..51.
pub const PTE_PFN_MASK: u64 = ((1u64 << 52) - 1) & !0xfff;

/// Swap entries: the type lives in the top 5 bits.
const SWP_TYPE_SHIFT: u32 = 59;
/// Swap entries: the offset is stored inverted (L1TF mitigation) from bit 9 to bit 58.
const SWP_OFFSET_SHIFT: u32 = 9;
const SWP_OFFSET_BITS: u32 = 50;
const SWP_SOFT_DIRTY: u64 = X86PteFlags::RW.bits();
const SWP_UFFD_WP: u64 = X86PteFlags::USER.bits();
const SWP_EXCLUSIVE: u64 = X86PteFlags::PWT.bits();

const fn has(pte: Pte, f: X86PteFlags) -> bool {
    pte.0 & f.bits() != 0
}
const fn set(pte: Pte, f: X86PteFlags) -> Pte {
    Pte(pte.0 | f.bits())
}
const fn clear(pte: Pte, f: X86PteFlags) -> Pte {
    Pte(pte.0 & !f.bits())
}

/// `pte_mksaveddirty`: a write-protected PTE keeps its dirtiness in SavedDirty, never in Dirty.
#[inline(always)]
const fn mksaveddirty(pte: Pte) -> Pte {
    // Branch-free, as the kernel does it: cond = !RW.
    let cond = (!pte.0 >> 1) & 1;
    let mut v = pte.0;
    v |= ((v >> 6) & cond) << 58;
    v &= !(cond << 6);
    Pte(v)
}

/// `pte_clear_saveddirty`: a writable PTE keeps its dirtiness in Dirty.
#[inline(always)]
const fn clear_saveddirty(pte: Pte) -> Pte {
    let cond = (pte.0 >> 1) & 1;
    let mut v = pte.0;
    v |= ((v >> 58) & cond) << 6;
    v &= !(cond << 58);
    Pte(v)
}

/// A generation of x86's PTE code.
pub trait PteCode: 'static {
    /// Which generation this is.
    const CODE: contract::X86PteCode;
    /// Write-protecting moves Dirty to SavedDirty (and `ptep_set_wrprotect` needs a CAS loop).
    const SAVED_DIRTY: bool;
}

/// v6.6+: SavedDirty, read + `try_cmpxchg` write-protect, `pte_mkuffd_wp` write-protects.
#[derive(Debug, Clone, Copy, Default)]
pub struct SavedDirty;
/// 6.1: no SavedDirty, `clear_bit(RW)` write-protect, `pte_mkuffd_wp` sets only its bit.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSavedDirty;

impl PteCode for SavedDirty {
    const CODE: contract::X86PteCode = contract::X86PteCode::SavedDirty;
    const SAVED_DIRTY: bool = true;
}
impl PteCode for NoSavedDirty {
    const CODE: contract::X86PteCode = contract::X86PteCode::NoSavedDirty;
    const SAVED_DIRTY: bool = false;
}

/// The x86_64 engine with PTE code `G`.
#[derive(Debug, Clone, Copy, Default)]
pub struct X86<G: PteCode>(PhantomData<G>);

/// x86_64 as of v6.6 (every strategy but `v6.1`).
pub type X86_64 = X86<SavedDirty>;
/// x86_64 as of 6.1 (`v6.1`).
pub type X86_64NoSavedDirty = X86<NoSavedDirty>;

impl<G: PteCode> X86<G> {
    /// The dirty bits this generation uses.
    const DIRTY_BITS: X86PteFlags = if G::SAVED_DIRTY {
        X86PteFlags::DIRTY.union(X86PteFlags::SAVED_DIRTY)
    } else {
        X86PteFlags::DIRTY
    };
}

impl<G: PteCode> Arch for X86<G> {
    const ID: contract::Arch = contract::Arch::X86_64;
    const HAS_SOFT_DIRTY: bool = true;

    #[inline(always)]
    fn mk_pte(pfn: Pfn, exec: bool) -> Pte {
        // PAGE_COPY / PAGE_READONLY: present, user, accessed, NX unless executable.
        let mut flags = X86PteFlags::PRESENT | X86PteFlags::USER | X86PteFlags::ACCESSED;
        if !exec {
            flags |= X86PteFlags::NX;
        }
        Pte(((pfn.0 << 12) & PTE_PFN_MASK) | flags.bits())
    }
    #[inline(always)]
    fn pte_pfn(pte: Pte) -> Pfn {
        Pfn((pte.0 & PTE_PFN_MASK) >> 12)
    }
    #[inline(always)]
    fn pte_present(pte: Pte) -> bool {
        // PROTNONE entries count as present.
        pte.0 & (X86PteFlags::PRESENT.bits() | X86PteFlags::GLOBAL.bits()) != 0
    }
    #[inline(always)]
    fn pte_write(pte: Pte) -> bool {
        has(pte, X86PteFlags::RW)
    }
    #[inline(always)]
    fn pte_dirty(pte: Pte) -> bool {
        pte.0 & Self::DIRTY_BITS.bits() != 0
    }
    #[inline(always)]
    fn pte_young(pte: Pte) -> bool {
        has(pte, X86PteFlags::ACCESSED)
    }
    #[inline(always)]
    fn pte_soft_dirty(pte: Pte) -> bool {
        has(pte, X86PteFlags::SOFT_DIRTY)
    }
    #[inline(always)]
    fn pte_uffd_wp(pte: Pte) -> bool {
        has(pte, X86PteFlags::UFFD_WP)
    }
    #[inline(always)]
    fn pte_special(pte: Pte) -> bool {
        has(pte, X86PteFlags::SPECIAL)
    }
    #[inline(always)]
    fn pte_wrprotect(pte: Pte) -> Pte {
        let pte = clear(pte, X86PteFlags::RW);
        if G::SAVED_DIRTY {
            mksaveddirty(pte)
        } else {
            pte
        }
    }
    #[inline(always)]
    fn pte_mkwrite(pte: Pte) -> Pte {
        let pte = set(pte, X86PteFlags::RW);
        if G::SAVED_DIRTY {
            clear_saveddirty(pte)
        } else {
            pte
        }
    }
    #[inline(always)]
    fn pte_mkold(pte: Pte) -> Pte {
        clear(pte, X86PteFlags::ACCESSED)
    }
    #[inline(always)]
    fn pte_mkyoung(pte: Pte) -> Pte {
        set(pte, X86PteFlags::ACCESSED)
    }
    #[inline(always)]
    fn pte_mkclean(pte: Pte) -> Pte {
        clear(pte, Self::DIRTY_BITS)
    }
    #[inline(always)]
    fn pte_mkdirty(pte: Pte) -> Pte {
        let pte = set(pte, X86PteFlags::DIRTY.union(X86PteFlags::SOFT_DIRTY));
        if G::SAVED_DIRTY {
            mksaveddirty(pte)
        } else {
            pte
        }
    }
    #[inline(always)]
    fn pte_clear_uffd_wp(pte: Pte) -> Pte {
        clear(pte, X86PteFlags::UFFD_WP)
    }
    #[inline(always)]
    fn pte_mkuffd_wp(pte: Pte) -> Pte {
        let pte = set(pte, X86PteFlags::UFFD_WP);
        if G::SAVED_DIRTY {
            Self::pte_wrprotect(pte)
        } else {
            pte
        }
    }
    #[inline(always)]
    fn pte_clear_soft_dirty(pte: Pte) -> Pte {
        clear(pte, X86PteFlags::SOFT_DIRTY)
    }
    #[inline(always)]
    fn pte_mksoft_dirty(pte: Pte) -> Pte {
        set(pte, X86PteFlags::SOFT_DIRTY)
    }
    #[inline(always)]
    fn pte_mkspecial(pte: Pte) -> Pte {
        set(pte, X86PteFlags::SPECIAL)
    }

    fn swp_entry_to_pte(entry: SwapEntry) -> Pte {
        let off_mask = (1u64 << SWP_OFFSET_BITS) - 1;
        let inverted = (!entry.offset & off_mask) << SWP_OFFSET_SHIFT;
        Pte(((entry.swap_type as u64 & 0x1f) << SWP_TYPE_SHIFT) | inverted)
    }
    fn pte_to_swp_entry(pte: Pte) -> SwapEntry {
        let off_mask = (1u64 << SWP_OFFSET_BITS) - 1;
        SwapEntry {
            swap_type: (pte.0 >> SWP_TYPE_SHIFT) as u8,
            offset: !(pte.0 >> SWP_OFFSET_SHIFT) & off_mask,
        }
    }
    #[inline(always)]
    fn pte_swp_soft_dirty(pte: Pte) -> bool {
        pte.0 & SWP_SOFT_DIRTY != 0
    }
    #[inline(always)]
    fn pte_swp_mksoft_dirty(pte: Pte) -> Pte {
        Pte(pte.0 | SWP_SOFT_DIRTY)
    }
    #[inline(always)]
    fn pte_swp_uffd_wp(pte: Pte) -> bool {
        pte.0 & SWP_UFFD_WP != 0
    }
    #[inline(always)]
    fn pte_swp_mkuffd_wp(pte: Pte) -> Pte {
        Pte(pte.0 | SWP_UFFD_WP)
    }
    #[inline(always)]
    fn pte_swp_clear_uffd_wp(pte: Pte) -> Pte {
        Pte(pte.0 & !SWP_UFFD_WP)
    }
    #[inline(always)]
    fn pte_swp_exclusive(pte: Pte) -> bool {
        pte.0 & SWP_EXCLUSIVE != 0
    }
    #[inline(always)]
    fn pte_swp_mkexclusive(pte: Pte) -> Pte {
        Pte(pte.0 | SWP_EXCLUSIVE)
    }
    #[inline(always)]
    fn pte_swp_clear_exclusive(pte: Pte) -> Pte {
        Pte(pte.0 & !SWP_EXCLUSIVE)
    }

    fn check_pte(pte: Pte) -> Result<(), String> {
        if !has(pte, X86PteFlags::PRESENT) {
            return Ok(());
        }
        if !G::SAVED_DIRTY {
            // 6.1 has no SavedDirty (its bit 58 is _PAGE_DEVMAP, never on the model's pages),
            // and Write=0 with Dirty=1 is an ordinary dirty read-only PTE there.
            if has(pte, X86PteFlags::SAVED_DIRTY) {
                return Err("bit 58 (SavedDirty from v6.6) set by the pre-v6.6 PTE code".into());
            }
            return Ok(());
        }
        if !has(pte, X86PteFlags::RW) && has(pte, X86PteFlags::DIRTY) {
            return Err(
                "Write=0 with Dirty=1 is the shadow-stack encoding; dirtiness of a \
                        write-protected PTE belongs in SavedDirty"
                    .into(),
            );
        }
        if has(pte, X86PteFlags::RW) && has(pte, X86PteFlags::SAVED_DIRTY) {
            return Err("SavedDirty set on a writable PTE".into());
        }
        Ok(())
    }

    /// v6.6+: `READ_ONCE` + `try_cmpxchg` loop applying `pte_wrprotect` (hardware may set Dirty
    /// concurrently, and Dirty must move to SavedDirty atomically). One read and one CAS here.
    /// 6.1: `clear_bit(_PAGE_BIT_RW)`, one locked read-modify-write and no separate load.
    #[inline(always)]
    fn ptep_set_wrprotect<C: Counter>(pt: &PteTable, idx: usize, _addr: VirtAddr, c: &mut C) {
        if !G::SAVED_DIRTY {
            pt.fetch_and(idx, !X86PteFlags::RW.bits());
            c.count(|o| o.pte_atomics += 1);
            return;
        }
        let mut old = pt.load(idx);
        let mut reads = 1;
        let mut cas = 1;
        while let Err(seen) = pt.cmpxchg(idx, old, Self::pte_wrprotect(Pte(old)).0) {
            old = seen;
            reads += 1;
            cas += 1;
        }
        c.count(|o| {
            o.pte_reads += reads;
            o.pte_atomics += cas;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use forkmodel::Arch;

    fn dirty_writable<A: Arch>(pfn: u64) -> Pte {
        A::pte_mkwrite(A::pte_mkdirty(A::pte_mkyoung(A::mk_pte(Pfn(pfn), false))))
    }

    /// `ptep_set_wrprotect` on a dirty writable PTE: (reads, atomics, writes) and the result.
    fn wrprotect_ops<A: Arch>() -> ((u64, u64, u64), Pte, Pte) {
        let mut pool = forkmodel::table::TablePool::new();
        let t = pool.alloc();
        let p = dirty_writable::<A>(9);
        pool.get(t).store(5, p.0);
        let mut ops = forkmodel::Ops::default();
        A::ptep_set_wrprotect(pool.get(t), 5, VirtAddr(0), &mut ops);
        (
            (ops.pte_reads, ops.pte_atomics, ops.pte_writes),
            Pte(pool.get(t).load(5)),
            A::pte_wrprotect(p),
        )
    }

    #[test]
    fn wrprotect_moves_dirty_to_saved_dirty_and_back() {
        let p = dirty_writable::<X86_64>(0x1234);
        assert!(X86_64::pte_write(p) && X86_64::pte_dirty(p));
        assert!(has(p, X86PteFlags::DIRTY) && !has(p, X86PteFlags::SAVED_DIRTY));
        let ro = X86_64::pte_wrprotect(p);
        assert!(!X86_64::pte_write(ro) && X86_64::pte_dirty(ro));
        assert!(!has(ro, X86PteFlags::DIRTY) && has(ro, X86PteFlags::SAVED_DIRTY));
        assert_eq!(X86_64::pte_mkwrite(ro), p);
        assert!(X86_64::check_pte(ro).is_ok());
        // The encoding a wrong wrprotect (plain clear of RW) leaves behind is caught.
        assert!(X86_64::check_pte(clear(p, X86PteFlags::RW)).is_err());
        let clean = X86_64::pte_mkclean(ro);
        assert!(!X86_64::pte_dirty(clean));
        assert_eq!(X86_64::pte_pfn(clean), Pfn(0x1234));
    }

    #[test]
    fn pre_saved_dirty_wrprotect_keeps_dirty_and_refuses_bit_58() {
        type A = X86_64NoSavedDirty;
        let p = dirty_writable::<A>(0x1234);
        // 6.1's pte_wrprotect clears RW only: Write=0 with Dirty=1 is ordinary there.
        let ro = A::pte_wrprotect(p);
        assert_eq!(ro, clear(p, X86PteFlags::RW));
        assert!(!A::pte_write(ro) && A::pte_dirty(ro) && A::check_pte(ro).is_ok());
        assert_eq!(A::pte_mkwrite(ro), p);
        assert!(!A::pte_dirty(A::pte_mkclean(ro)));
        // What the v6.6+ code would leave is not 6.1's.
        let v66 = X86_64::pte_wrprotect(p);
        assert!(A::check_pte(v66).is_err());
        assert!(!A::pte_dirty(v66), "6.1 reads SavedDirty as no dirt");
        // mkdirty on a read-only PTE sets Dirty, and pte_mkuffd_wp leaves RW alone (v6.5
        // made it write-protect).
        let d = A::pte_mkdirty(A::mk_pte(Pfn(7), false));
        assert!(has(d, X86PteFlags::DIRTY) && !has(d, X86PteFlags::SAVED_DIRTY));
        let u = A::pte_mkuffd_wp(p);
        assert!(A::pte_uffd_wp(u) && A::pte_write(u));
        assert!(!X86_64::pte_write(X86_64::pte_mkuffd_wp(dirty_writable::<
            X86_64,
        >(1))));
    }

    #[test]
    fn mkdirty_on_readonly_uses_saved_dirty() {
        let p = X86_64::pte_mkdirty(X86_64::mk_pte(Pfn(7), false));
        assert!(has(p, X86PteFlags::SAVED_DIRTY) && !has(p, X86PteFlags::DIRTY));
        assert!(X86_64::pte_soft_dirty(p));
    }

    fn swap_round_trip_at<A: Arch>() {
        let e = SwapEntry {
            swap_type: 3,
            offset: 0,
        };
        let p = A::swp_entry_to_pte(e);
        assert!(!A::pte_none(p) && !A::pte_present(p));
        assert_eq!(A::pte_to_swp_entry(p), e);
        let p = A::pte_swp_mkexclusive(A::pte_swp_mkuffd_wp(p));
        assert_eq!(A::pte_to_swp_entry(p), e);
        assert!(A::pte_swp_exclusive(p) && A::pte_swp_uffd_wp(p));
    }

    #[test]
    fn swap_entries_round_trip_and_are_not_none() {
        swap_round_trip_at::<X86_64>();
        swap_round_trip_at::<X86_64NoSavedDirty>();
    }

    #[test]
    fn ptep_set_wrprotect_is_one_read_one_cas() {
        let (ops, got, want) = wrprotect_ops::<X86_64>();
        assert_eq!(ops, (1, 1, 0));
        assert_eq!(got, want);
    }

    #[test]
    fn pre_saved_dirty_ptep_set_wrprotect_is_one_locked_bit_clear() {
        let (ops, got, want) = wrprotect_ops::<X86_64NoSavedDirty>();
        assert_eq!(ops, (0, 1, 0));
        assert_eq!(got, want);
        assert_eq!(
            got,
            clear(dirty_writable::<X86_64NoSavedDirty>(9), X86PteFlags::RW)
        );
    }

    /// One bit helper, chosen by `op` (0..8).
    fn step<A: Arch>(p: Pte, op: u8) -> Pte {
        match op {
            0 => A::pte_wrprotect(p),
            1 => A::pte_mkwrite(p),
            2 => A::pte_mkdirty(p),
            3 => A::pte_mkclean(p),
            4 => A::pte_mkold(p),
            5 => A::pte_mkyoung(p),
            6 => A::pte_wrprotect(A::pte_mkuffd_wp(p)),
            _ => A::pte_clear_soft_dirty(p),
        }
    }

    /// Apply a sequence of bit helpers, checking that every step keeps the PFN and the arch
    /// rule; returns where it ends, read arch-neutrally.
    fn walk_helpers<A: Arch>(pfn: u64, ops: &[u8]) -> Result<forkmodel::PteView, String> {
        let mut p = A::mk_pte(Pfn(pfn), false);
        for &op in ops {
            p = step::<A>(p, op);
            if A::pte_pfn(p) != Pfn(pfn) {
                return Err(format!("{p:?} lost PFN {pfn:#x}"));
            }
            A::check_pte(p).map_err(|e| format!("{p:?}: {e}"))?;
        }
        Ok(A::view(p))
    }

    proptest::proptest! {
        #[test]
        fn pfn_round_trips(pfn in 0u64..(1 << 40), exec: bool) {
            let p = X86_64::mk_pte(Pfn(pfn), exec);
            proptest::prop_assert_eq!(X86_64::pte_pfn(p), Pfn(pfn));
            proptest::prop_assert_eq!(X86_64::pte_pfn(X86_64::pte_advance_pfn(p, 3)), Pfn(pfn + 3));
            // Both generations encode PFNs and base bits alike.
            proptest::prop_assert_eq!(X86_64NoSavedDirty::mk_pte(Pfn(pfn), exec), p);
        }

        #[test]
        fn bit_helpers_never_touch_the_pfn_and_keep_the_shstk_rule(
            pfn in 0u64..(1 << 40),
            ops in proptest::collection::vec(0u8..8, 0..12),
        ) {
            let r = walk_helpers::<X86_64>(pfn, &ops);
            proptest::prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        }

        /// The pre-v6.6 helpers keep the PFN, never set bit 58, and agree with the v6.6+
        /// ones on every logical bit (write, dirty, young, soft-dirty, uffd-wp).
        #[test]
        fn pre_saved_dirty_helpers_match_the_v6_6_ones_logically(
            pfn in 0u64..(1 << 40),
            ops in proptest::collection::vec(0u8..8, 0..12),
        ) {
            let old = walk_helpers::<X86_64NoSavedDirty>(pfn, &ops);
            proptest::prop_assert!(old.is_ok(), "{}", old.clone().unwrap_err());
            proptest::prop_assert_eq!(old, walk_helpers::<X86_64>(pfn, &ops));
        }

        #[test]
        fn swap_round_trip(t in 0u8..32, off in 0u64..(1 << 50)) {
            let e = SwapEntry { swap_type: t, offset: off };
            proptest::prop_assert_eq!(X86_64::pte_to_swp_entry(X86_64::swp_entry_to_pte(e)), e);
            proptest::prop_assert_eq!(
                X86_64NoSavedDirty::pte_to_swp_entry(X86_64NoSavedDirty::swp_entry_to_pte(e)),
                e
            );
        }
    }
}
