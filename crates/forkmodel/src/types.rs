//! Address and size newtypes shared by the core and the arch engines.

use std::fmt;

/// log2 of the base page size (4 KiB on both modelled arches).
pub const PAGE_SHIFT: u32 = 12;
/// Base page size in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// Entries in one last-level page table (4 KiB granule, 8-byte entries).
pub const PTRS_PER_PTE: usize = 512;
/// Bytes mapped by one last-level page table (one PMD entry).
pub const PMD_SIZE: u64 = PAGE_SIZE * PTRS_PER_PTE as u64;
/// Largest folio order the model populates (a PMD-sized folio).
pub const MAX_FOLIO_ORDER: u8 = 9;

/// A page frame number: index of a 4 KiB physical page.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The frame `n` pages after this one.
    #[inline(always)]
    pub const fn add(self, n: u64) -> Pfn {
        Pfn(self.0 + n)
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:#x})", self.0)
    }
}

/// A user virtual address.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(pub u64);

impl VirtAddr {
    /// Index of this address's entry within its last-level page table.
    #[inline(always)]
    pub const fn pte_index(self) -> usize {
        ((self.0 >> PAGE_SHIFT) as usize) & (PTRS_PER_PTE - 1)
    }
    /// Index of the last-level page table (the PMD slot) covering this address.
    #[inline(always)]
    pub const fn pmd_index(self) -> u64 {
        self.0 / PMD_SIZE
    }
    /// The end of the PMD range containing this address, capped at `end` (`pmd_addr_end`).
    #[inline(always)]
    pub const fn pmd_addr_end(self, end: VirtAddr) -> VirtAddr {
        let boundary = (self.0 / PMD_SIZE + 1) * PMD_SIZE;
        if boundary < end.0 {
            VirtAddr(boundary)
        } else {
            end
        }
    }
    /// `self + n` pages.
    #[inline(always)]
    pub const fn add_pages(self, n: u64) -> VirtAddr {
        VirtAddr(self.0 + n * PAGE_SIZE)
    }
    /// Whether the address is page-aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

/// A folio order (log2 of its page count), validated to `0..=MAX_FOLIO_ORDER`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Order(u8);

/// An order outside `0..=MAX_FOLIO_ORDER`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("folio order {0} is out of range (0..={MAX_FOLIO_ORDER})")]
pub struct BadOrder(pub u32);

impl Order {
    /// Validate an order.
    pub fn new(order: u32) -> Result<Order, BadOrder> {
        if order <= MAX_FOLIO_ORDER as u32 {
            Ok(Order(order as u8))
        } else {
            Err(BadOrder(order))
        }
    }
    /// The order as a number.
    #[inline(always)]
    pub const fn get(self) -> u8 {
        self.0
    }
    /// Pages in a folio of this order.
    #[inline(always)]
    pub const fn nr_pages(self) -> u64 {
        1 << self.0
    }
    /// Bytes in a folio of this order.
    pub const fn bytes(self) -> u64 {
        PAGE_SIZE << self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmd_addr_end_caps_at_end_and_boundary() {
        let a = VirtAddr(PMD_SIZE + 5 * PAGE_SIZE);
        assert_eq!(
            a.pmd_addr_end(VirtAddr(10 * PMD_SIZE)),
            VirtAddr(2 * PMD_SIZE)
        );
        assert_eq!(
            a.pmd_addr_end(VirtAddr(PMD_SIZE + 9 * PAGE_SIZE)),
            VirtAddr(PMD_SIZE + 9 * PAGE_SIZE)
        );
        assert_eq!(a.pte_index(), 5);
        assert_eq!(a.pmd_index(), 1);
    }

    #[test]
    fn order_validation() {
        assert_eq!(Order::new(9).unwrap().nr_pages(), 512);
        assert_eq!(Order::new(10), Err(BadOrder(10)));
        assert_eq!(Order::new(0).unwrap().bytes(), 4096);
    }
}
