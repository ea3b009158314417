//! The benchmark's memory: one private anonymous VMA, 2 MiB aligned, with a PROT_NONE guard
//! page on each side so no later mapping can merge into it. All `mmap`/`madvise`/`mprotect`
//! calls and the raw page writes live here.

use std::io;
use std::ptr::NonNull;

use crate::layout::{PAGE_SIZE, PMD_SIZE};

/// Which of a region's equal blocks (numbered from 0 at the region's start) an operation
/// touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockSelection {
    All,
    /// Blocks 1, 3, 5, ...
    Odd,
}

impl BlockSelection {
    /// Whether block number `index` is selected.
    pub fn includes(self, index: usize) -> bool {
        match self {
            BlockSelection::All => true,
            BlockSelection::Odd => index % 2 == 1,
        }
    }
}

/// A mapped region; unmapped (with its guards) on drop.
#[derive(Debug)]
pub struct Region {
    start: NonNull<u8>,
    len: usize,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

impl Region {
    /// Map `len` bytes (a positive multiple of 2 MiB) at a 2 MiB-aligned address.
    pub fn map(len: u64) -> io::Result<Region> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("region too large"))?;
        let pmd = PMD_SIZE as usize;
        let page = PAGE_SIZE as usize;
        if len == 0 || len % pmd != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "region length must be a positive multiple of 2 MiB",
            ));
        }
        let total = len
            .checked_add(2 * pmd)
            .ok_or_else(|| io::Error::other("region too large"))?;
        // SAFETY: anonymous private mapping at a kernel-chosen address; no existing memory is
        // affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("mmap of {total} bytes: {e}"),
            ));
        }
        let base = p as usize;
        let start = (base + page).next_multiple_of(pmd);
        let guard_lo = start - page;
        let guard_hi = start + len;
        let end = base + total;
        let result = (|| {
            // SAFETY: both guard pages lie inside the mapping created above, which only this
            // function knows about.
            let rc = unsafe { libc::mprotect(guard_lo as *mut _, page, libc::PROT_NONE) };
            check(rc, "mprotect guard")?;
            // SAFETY: as above.
            let rc = unsafe { libc::mprotect(guard_hi as *mut _, page, libc::PROT_NONE) };
            check(rc, "mprotect guard")?;
            if guard_lo > base {
                // SAFETY: [base, guard_lo) is slack of our own mapping.
                let rc = unsafe { libc::munmap(p, guard_lo - base) };
                check(rc, "munmap slack")?;
            }
            if guard_hi + page < end {
                // SAFETY: [guard_hi + page, end) is slack of our own mapping.
                let rc =
                    unsafe { libc::munmap((guard_hi + page) as *mut _, end - guard_hi - page) };
                check(rc, "munmap slack")?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            // SAFETY: unmapping our own mapping (parts may already be gone, which munmap allows).
            unsafe { libc::munmap(p, total) };
            return Err(e);
        }
        let start = NonNull::new(start as *mut u8).ok_or_else(|| io::Error::other("null map"))?;
        Ok(Region { start, len })
    }

    /// Start address.
    pub fn start(&self) -> u64 {
        self.start.as_ptr() as u64
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len as u64
    }

    /// `madvise` the whole region.
    pub fn madvise(&self, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly our mapping; the advice values used do not free memory.
        let rc = unsafe { libc::madvise(self.start.as_ptr().cast(), self.len, advice) };
        check(rc, "madvise")
    }

    /// PTE-map every 2 MiB THP without splitting the folio: for each 2 MiB chunk, make its
    /// second page read-only and then read-write again (the kernel selftests' cow.c recipe).
    /// The VMA splits and merges back into one.
    pub fn pte_map_chunks(&mut self) -> io::Result<()> {
        self.pte_map_chunks_of(BlockSelection::All)
    }

    /// [`Region::pte_map_chunks`] for the selected 2 MiB chunks only; the others keep their
    /// mapping (a PMD-mapped THP stays PMD-mapped).
    pub fn pte_map_chunks_of(&mut self, which: BlockSelection) -> io::Result<()> {
        let page = PAGE_SIZE as usize;
        let pmd = PMD_SIZE as usize;
        for off in (0..self.len).step_by(pmd) {
            if !which.includes(off / pmd) {
                continue;
            }
            // SAFETY: off + page + page <= len, so the page lies inside our mapping; it is made
            // read-only and back with no access in between.
            let p = unsafe { self.start.as_ptr().add(off + page) };
            // SAFETY: see above.
            let rc = unsafe { libc::mprotect(p.cast(), page, libc::PROT_READ) };
            check(rc, "mprotect(PROT_READ)")?;
            // SAFETY: see above.
            let rc = unsafe { libc::mprotect(p.cast(), page, libc::PROT_READ | libc::PROT_WRITE) };
            check(rc, "mprotect(PROT_READ|PROT_WRITE)")?;
        }
        Ok(())
    }

    /// Write `value` to the first byte of the first page of each selected `block_bytes` block
    /// (a multiple of the page size), in address order: one fault per block.
    pub fn write_first_page_of_blocks(
        &mut self,
        block_bytes: u64,
        which: BlockSelection,
        value: u8,
    ) {
        let block = block_bytes.max(PAGE_SIZE) as usize;
        for off in (0..self.len).step_by(block) {
            if which.includes(off / block) {
                // SAFETY: off < len and the whole region is mapped read-write; `&mut self`
                // means no one else writes.
                unsafe { self.start.as_ptr().add(off).write_volatile(value) };
            }
        }
    }

    /// Write `value` to the first byte of every 4 KiB page, in address order.
    pub fn write_each_page(&mut self, value: u8) {
        let page = PAGE_SIZE as usize;
        for off in (0..self.len).step_by(page) {
            // SAFETY: off < len and the whole region is mapped read-write (the PTE-mapping step
            // restores PROT_WRITE before returning); `&mut self` means no one else writes.
            unsafe { self.start.as_ptr().add(off).write_volatile(value) };
        }
    }
}

/// Pages per arm64 contiguous-PTE block (4 KiB granule): the unit of [`Region::write_each_page_rotated`].
pub const CONT_BLOCK_PAGES: usize = 16;

/// The page index touched `j`-th within 16-page block `block` by the rotated order: block `b`
/// starts at page `b mod 16`, so the block's last page is touched `15 - b mod 16`-th.
pub fn rotated_page(block: usize, j: usize) -> usize {
    block * CONT_BLOCK_PAGES + (j + block) % CONT_BLOCK_PAGES
}

impl Region {
    /// Write `value` to the first byte of every 4 KiB page, block by 16-page block, each block
    /// in an order rotated by its index ([`rotated_page`]).
    ///
    /// Why: a kernel hands a run of faults consecutive page frames, so with address order a
    /// region's frame numbers are its page numbers plus one offset, and whether each block's
    /// last page is also the last of a 16-frame group (arm64 ≥ 6.9 then tries a contpte fold
    /// on every `set_ptes` there: ~40 instructions × 4096 blocks per 256 MiB fork) is decided
    /// once per process by that offset — the same kernel measured 1.6% apart between runs.
    /// Rotated, the blocks' last pages fall on every residue mod 16 in turn: whatever the
    /// offset, 1 block in 16 is a fold candidate, in every run.
    pub fn write_each_page_rotated(&mut self, value: u8) {
        let page = PAGE_SIZE as usize;
        let pages = self.len / page;
        for block in 0..pages.div_ceil(CONT_BLOCK_PAGES) {
            for j in 0..CONT_BLOCK_PAGES {
                let p = rotated_page(block, j);
                if p < pages {
                    // SAFETY: p < pages, so the byte is inside the mapped read-write region;
                    // `&mut self` means no one else writes.
                    unsafe { self.start.as_ptr().add(p * page).write_volatile(value) };
                }
            }
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let page = PAGE_SIZE as usize;
        // SAFETY: unmaps exactly our region and its two guard pages.
        unsafe { libc::munmap(self.start.as_ptr().sub(page).cast(), self.len + 2 * page) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_order_touches_every_page_once_and_spreads_the_last_pages_over_all_residues() {
        let blocks = 64;
        let mut seen = vec![false; blocks * CONT_BLOCK_PAGES];
        let mut last_at = Vec::new();
        for b in 0..blocks {
            for j in 0..CONT_BLOCK_PAGES {
                let p = rotated_page(b, j);
                assert_eq!(p / CONT_BLOCK_PAGES, b, "stays in its block");
                assert!(!seen[p], "page {p} touched twice");
                seen[p] = true;
                if p % CONT_BLOCK_PAGES == CONT_BLOCK_PAGES - 1 {
                    // The frame it gets, with consecutive frames from any base: base + time.
                    last_at.push(b * CONT_BLOCK_PAGES + j);
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        // Whatever the base frame, exactly 1 block in 16 has its last page on a last frame.
        for base in 0..CONT_BLOCK_PAGES {
            let candidates = last_at
                .iter()
                .filter(|&&t| (base + t) % CONT_BLOCK_PAGES == CONT_BLOCK_PAGES - 1)
                .count();
            assert_eq!(candidates, blocks / CONT_BLOCK_PAGES, "base {base}");
        }
    }

    #[test]
    fn maps_aligned_single_vma_with_guards() {
        let mut r = Region::map(4 << 20).unwrap();
        assert_eq!(r.start() % PMD_SIZE, 0);
        assert_eq!(r.len(), 4 << 20);
        r.madvise(libc::MADV_NOHUGEPAGE).unwrap();
        r.write_each_page(0x5a);
        let s = crate::smaps::read_range(r.start(), r.start() + r.len()).unwrap();
        assert!(s.single_exact_vma, "{s:?}");
        assert_eq!(s.rss_kb, 4096);
    }

    #[test]
    fn first_page_of_odd_blocks_faults_one_page_per_odd_block() {
        let mut r = Region::map(2 << 20).unwrap();
        r.madvise(libc::MADV_NOHUGEPAGE).unwrap();
        r.write_first_page_of_blocks(64 << 10, BlockSelection::Odd, 0x5a);
        let e = crate::pagemap::read_pagemap(r.start() / PAGE_SIZE, 512).unwrap();
        let present: Vec<usize> = (0..512)
            .filter(|&i| e[i] & crate::pagemap::PM_PRESENT != 0)
            .collect();
        let want: Vec<usize> = (0..32).filter(|b| b % 2 == 1).map(|b| b * 16).collect();
        assert_eq!(present, want);
        assert!(BlockSelection::All.includes(0) && !BlockSelection::Odd.includes(2));
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(Region::map(0).is_err());
        assert!(Region::map(4096).is_err());
    }
}
