//! Descriptions of what the parent process has mapped before it forks: regions of folios of
//! chosen orders, none and swap PTEs, split into VMAs with their own flags, plus per-PTE
//! tweaks (unmapped holes, uffd-wp markers, cleared soft-dirty, write-protected PTEs). The
//! populate path in `model.rs` turns a [`Layout`] into page tables through a fault-path model.

use crate::mm::Backing;
use crate::types::{Order, PAGE_SIZE, PMD_SIZE, VirtAddr};

/// What occupies the next stretch of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    /// One folio, faulted in with one `set_ptes` (VA-aligned to its size; the cursor is
    /// aligned up first, leaving none PTEs).
    Folio { order: Order, pinned: bool },
    /// `pages` none PTEs.
    None { pages: u64 },
    /// `pages` swap entries, each in its own slot.
    Swap { pages: u64, exclusive: bool },
    /// `pages` special PTEs (raw PFNs without `struct page`; makes the VMAs VM_PFNMAP).
    Special { pages: u64 },
}

/// One VMA cut from a region, in order, `pages` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmaPiece {
    pub pages: u64,
    /// VM_WRITE (else the piece is mprotect'ed read-only after populating).
    pub writable: bool,
    /// VM_UFFD_WP registered.
    pub uffd_wp: bool,
    /// The child keeps uffd-wp (UFFD_FEATURE_EVENT_FORK).
    pub uffd_event_fork: bool,
    /// Soft-dirty tracking is active (VM_SOFTDIRTY clear).
    pub soft_dirty_tracking: bool,
    /// The VMA has an anon_vma (always true for anon memory that was faulted).
    pub has_anon_vma: bool,
}

impl VmaPiece {
    /// A plain writable piece.
    pub fn plain(pages: u64) -> VmaPiece {
        VmaPiece {
            pages,
            writable: true,
            uffd_wp: false,
            uffd_event_fork: false,
            soft_dirty_tracking: false,
            has_anon_vma: true,
        }
    }
}

/// A per-PTE change applied after populating (page index within the region).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tweak {
    /// Unmap the page (MADV_DONTNEED of one page): a hole inside a folio.
    Unmap,
    /// Set the uffd-wp marker (and write-protect), where the VMA has VM_UFFD_WP.
    UffdWp,
    /// Clear the soft-dirty bit and write-protect (`clear_refs` 4).
    ClearSoftDirty,
    /// Write-protect (as a previous fork or KSM would have).
    Wrprotect,
    /// Clear the accessed bit (reclaim scanning).
    MkOld,
}

/// A contiguous range of address space with one backing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Start address; must be PMD-aligned.
    pub start: VirtAddr,
    pub backing: Backing,
    /// MAP_SHARED (no COW).
    pub shared: bool,
    pub chunks: Vec<Chunk>,
    /// VMAs covering the region exactly.
    pub vmas: Vec<VmaPiece>,
    /// `(page index, tweak)` applied in order after populating.
    pub tweaks: Vec<(u64, Tweak)>,
}

impl Region {
    /// Pages the chunks occupy, including alignment padding.
    pub fn populated_pages(&self) -> u64 {
        let mut cursor = 0u64;
        for chunk in &self.chunks {
            cursor = match chunk {
                Chunk::Folio { order, .. } => cursor.next_multiple_of(order.nr_pages()) + order.nr_pages(),
                Chunk::None { pages } | Chunk::Swap { pages, .. } | Chunk::Special { pages } => {
                    cursor + pages
                }
            };
        }
        cursor
    }

    /// Pages spanned by the VMAs.
    pub fn vma_pages(&self) -> u64 {
        self.vmas.iter().map(|v| v.pages).sum()
    }
}

/// Everything the parent has mapped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    pub regions: Vec<Region>,
}

/// Why a layout cannot be populated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("memory size must be greater than zero")]
    Empty,
    #[error("memory size {mem} bytes is not a multiple of the order-{order} folio size ({folio} bytes)")]
    NotMultiple { mem: u64, order: u8, folio: u64 },
    #[error("region {0} does not start on a 2 MiB boundary")]
    Unaligned(usize),
    #[error("region {index}: chunks need {chunk_pages} pages but its VMAs span {vma_pages}")]
    SizeMismatch {
        index: usize,
        chunk_pages: u64,
        vma_pages: u64,
    },
    #[error("region {0} overlaps the previous region")]
    Overlap(usize),
    #[error("region {0} has an empty VMA")]
    EmptyVma(usize),
    #[error("region {index}: tweak at page {page} is outside the region")]
    TweakOutside { index: usize, page: u64 },
    #[error("region {0}: a large folio cannot back a shared anonymous or special mapping in this model")]
    Unsupported(usize),
}

/// Where the benchmark region starts (a typical mmap address, 2 MiB-aligned).
pub const DEFAULT_BASE: VirtAddr = VirtAddr(0x7f00_0000_0000);

impl Layout {
    /// The thread's benchmark layout: `mem_bytes` of private anonymous memory, written, in
    /// folios of `order`, in one VMA.
    pub fn uniform(mem_bytes: u64, order: Order) -> Result<Layout, LayoutError> {
        if mem_bytes == 0 {
            return Err(LayoutError::Empty);
        }
        if mem_bytes % order.bytes() != 0 {
            return Err(LayoutError::NotMultiple {
                mem: mem_bytes,
                order: order.get(),
                folio: order.bytes(),
            });
        }
        let pages = mem_bytes / PAGE_SIZE;
        let folios = mem_bytes / order.bytes();
        Ok(Layout {
            regions: vec![Region {
                start: DEFAULT_BASE,
                backing: Backing::Anon,
                shared: false,
                chunks: (0..folios)
                    .map(|_| Chunk::Folio {
                        order,
                        pinned: false,
                    })
                    .collect(),
                vmas: vec![VmaPiece::plain(pages)],
                tweaks: Vec::new(),
            }],
        })
    }

    /// Total pages spanned by all VMAs.
    pub fn total_pages(&self) -> u64 {
        self.regions.iter().map(Region::vma_pages).sum()
    }

    /// Check the layout is well formed.
    pub fn validate(&self) -> Result<(), LayoutError> {
        let mut prev_end = 0u64;
        for (i, r) in self.regions.iter().enumerate() {
            if r.start.0 % PMD_SIZE != 0 {
                return Err(LayoutError::Unaligned(i));
            }
            if r.start.0 < prev_end {
                return Err(LayoutError::Overlap(i));
            }
            let chunk_pages = r.populated_pages();
            let vma_pages = r.vma_pages();
            if chunk_pages > vma_pages || vma_pages == 0 {
                return Err(LayoutError::SizeMismatch {
                    index: i,
                    chunk_pages,
                    vma_pages,
                });
            }
            if r.vmas.iter().any(|v| v.pages == 0) {
                return Err(LayoutError::EmptyVma(i));
            }
            if let Some(&(page, _)) = r.tweaks.iter().find(|(p, _)| *p >= vma_pages) {
                return Err(LayoutError::TweakOutside { index: i, page });
            }
            let has_special = r.chunks.iter().any(|c| matches!(c, Chunk::Special { .. }));
            let has_folio = r.chunks.iter().any(|c| matches!(c, Chunk::Folio { .. }));
            if (r.shared && r.backing == Backing::Anon) || (has_special && has_folio) {
                return Err(LayoutError::Unsupported(i));
            }
            prev_end = r.start.0 + vma_pages * PAGE_SIZE;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_checks_multiples() {
        let o9 = Order::new(9).unwrap();
        assert!(Layout::uniform(2 << 20, o9).is_ok());
        assert_eq!(
            Layout::uniform(1 << 20, o9),
            Err(LayoutError::NotMultiple {
                mem: 1 << 20,
                order: 9,
                folio: 2 << 20
            })
        );
        assert_eq!(Layout::uniform(0, o9), Err(LayoutError::Empty));
        let l = Layout::uniform(4 << 20, o9).unwrap();
        assert_eq!(l.total_pages(), 1024);
        l.validate().unwrap();
    }

    #[test]
    fn folio_chunks_are_aligned_up() {
        let r = Region {
            start: DEFAULT_BASE,
            backing: Backing::Anon,
            shared: false,
            chunks: vec![
                Chunk::None { pages: 1 },
                Chunk::Folio {
                    order: Order::new(4).unwrap(),
                    pinned: false,
                },
            ],
            vmas: vec![VmaPiece::plain(32)],
            tweaks: vec![],
        };
        assert_eq!(r.populated_pages(), 32);
    }
}
