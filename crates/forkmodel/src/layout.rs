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
    /// `count` unpinned folios of `order` back to back (the benchmark's layout, kept compact
    /// so that describing 1 GiB of order-0 folios costs no memory).
    Folios { order: Order, count: u64 },
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
    /// Clear the dirty bit (MADV_FREE on anon memory, writeback on file pages).
    MkClean,
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
                Chunk::Folio { order, .. } => {
                    cursor.next_multiple_of(order.nr_pages()) + order.nr_pages()
                }
                Chunk::Folios { order, count } => {
                    cursor.next_multiple_of(order.nr_pages()) + count * order.nr_pages()
                }
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
    #[error(
        "memory size {mem} bytes is not a multiple of the order-{order} folio size ({folio} bytes)"
    )]
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
    #[error(
        "region {0}: a large folio cannot back a shared anonymous or special mapping in this model"
    )]
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
        if !mem_bytes.is_multiple_of(order.bytes()) {
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
                chunks: vec![Chunk::Folios {
                    order,
                    count: folios,
                }],
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
            let has_folio = r
                .chunks
                .iter()
                .any(|c| matches!(c, Chunk::Folio { .. } | Chunk::Folios { .. }));
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

/// A small deterministic generator (xorshift64*), so random layouts need no RNG crate and a
/// seed reproduces a layout exactly on every machine.
#[derive(Debug, Clone)]
pub struct SplitRng(u64);

impl SplitRng {
    /// A generator from `seed` (any value, including 0).
    pub fn new(seed: u64) -> SplitRng {
        SplitRng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// True with probability `pct`/100.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.next_u64() % 100 < pct
    }
}

/// A random layout exercising every rule of the copy path: mixed folio orders 0..=9, VMAs
/// that start and end inside large folios, pinned anon folios, private and shared, anon and
/// file, special PFN mappings, uffd-wp, soft-dirty tracking on and off, swap and none PTEs,
/// and per-PTE holes and bit differences.
pub fn random_layout(seed: u64) -> Layout {
    let mut rng = SplitRng::new(seed);
    let nr_regions = rng.range(1, 3);
    let mut regions = Vec::new();
    for ri in 0..nr_regions {
        let start = VirtAddr(DEFAULT_BASE.0 + ri * 64 * PMD_SIZE);
        let kind = rng.range(0, 99);
        let (backing, shared, special) = match kind {
            0..=59 => (Backing::Anon, false, false),
            60..=74 => (Backing::File, false, false),
            75..=89 => (Backing::File, true, false),
            _ => (Backing::File, false, true),
        };
        let target = rng.range(64, 1300);
        let mut chunks = Vec::new();
        let mut r = Region {
            start,
            backing,
            shared,
            chunks: Vec::new(),
            vmas: Vec::new(),
            tweaks: Vec::new(),
        };
        while r.populated_pages() < target {
            let pick = rng.range(0, 99);
            let chunk = if special {
                if pick < 80 {
                    Chunk::Special {
                        pages: rng.range(1, 40),
                    }
                } else {
                    Chunk::None {
                        pages: rng.range(1, 20),
                    }
                }
            } else if pick < 70 {
                let order = [0u32, 0, 1, 2, 3, 4, 4, 5, 6, 9][rng.range(0, 9) as usize];
                Chunk::Folio {
                    order: Order::new(order).expect("valid order"),
                    pinned: backing == Backing::Anon && rng.chance(12),
                }
            } else if pick < 85 {
                Chunk::None {
                    pages: rng.range(1, 40),
                }
            } else if backing == Backing::Anon {
                Chunk::Swap {
                    pages: rng.range(1, 10),
                    exclusive: rng.chance(50),
                }
            } else {
                Chunk::None {
                    pages: rng.range(1, 8),
                }
            };
            chunks.push(chunk);
            r.chunks = chunks.clone();
        }
        let total = r.populated_pages() + rng.range(0, 16);
        // Cut the region into 1..=4 VMAs at arbitrary page offsets (often inside folios).
        let nr_vmas = rng.range(1, 4).min(total);
        let mut cuts: Vec<u64> = (1..nr_vmas).map(|_| rng.range(1, total - 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut prev = 0;
        for cut in cuts.into_iter().chain(std::iter::once(total)) {
            let uffd_wp = rng.chance(25);
            r.vmas.push(VmaPiece {
                pages: cut - prev,
                writable: rng.chance(80),
                uffd_wp,
                uffd_event_fork: uffd_wp && rng.chance(60),
                soft_dirty_tracking: rng.chance(35),
                has_anon_vma: backing == Backing::Anon || rng.chance(60),
            });
            prev = cut;
        }
        for _ in 0..rng.range(0, total / 8 + 1) {
            let page = rng.range(0, total - 1);
            let tweak = match rng.range(0, 5) {
                0 => Tweak::Unmap,
                1 => Tweak::UffdWp,
                2 => Tweak::ClearSoftDirty,
                3 => Tweak::Wrprotect,
                4 => Tweak::MkOld,
                _ => Tweak::MkClean,
            };
            r.tweaks.push((page, tweak));
        }
        regions.push(r);
    }
    Layout { regions }
}

#[cfg(test)]
mod random_tests {
    use super::*;

    #[test]
    fn random_layouts_are_valid_and_reproducible() {
        for seed in 0..200 {
            let l = random_layout(seed);
            l.validate().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(l, random_layout(seed));
        }
        assert_ne!(random_layout(1), random_layout(2));
    }
}
