//! Measures what reading `/proc/self/pagemap` and `/proc/kpageflags` costs for a folio scan of
//! a populated region, with realfork's own readers (one `pread` for the whole pagemap range; a
//! small cache of 4 KiB kpageflags blocks) against the `procfs` crate's (`PageMap` and
//! `KPageFlags`, a seek + buffered read per lookup). It decides which reader `realfork::verify`
//! uses. Root only; run: `cargo run --release -p realfork --example kpageflags_readers -- 256M`.

use std::io;
use std::time::Instant;

use realfork::pagemap::{self, KpageflagsFile, PM_PFN_MASK, PageFlags};

/// `procfs::KPageFlags` behind realfork's `PageFlags` trait; PFNs it cannot read (beyond RAM)
/// read as "no page", as realfork's reader does.
struct ProcfsFlags(procfs::KPageFlags);

impl PageFlags for ProcfsFlags {
    fn flags(&mut self, pfn: u64) -> io::Result<u64> {
        Ok(self
            .0
            .get_info(procfs::process::Pfn(pfn))
            .map(|f| f.bits())
            .unwrap_or(pagemap::kpf::NOPAGE))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size = std::env::args().nth(1).unwrap_or_else(|| "256M".into());
    let len = contract::parse_size(&size)? as usize;
    let page = 4096usize;
    // A private anonymous region of order-0 folios, every page written.
    // SAFETY: a fresh anonymous mapping; nothing else refers to it; unmapped at the end.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: `base..base+len` is the mapping made above.
    unsafe { libc::madvise(base, len, libc::MADV_NOHUGEPAGE) };
    for off in (0..len).step_by(page) {
        // SAFETY: `off < len`, inside the writable mapping.
        unsafe { *(base as *mut u8).add(off) = 0x5a };
    }
    let first_vpn = base as u64 / page as u64;
    let npages = len / page;
    let (mut ours, mut theirs, mut ours_pm, mut theirs_pm) = (vec![], vec![], vec![], vec![]);
    for round in 0..5 {
        for ours_first in [round % 2 == 0, round % 2 == 1] {
            if ours_first {
                let t = Instant::now();
                let entries = pagemap::read_pagemap(first_vpn, npages)?;
                ours_pm.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let h =
                    pagemap::folio_histogram(&entries, first_vpn, &mut KpageflagsFile::open()?)?;
                ours.push(t.elapsed().as_secs_f64());
                assert_eq!(h.pages_of_order(0), npages as u64, "{}", h.describe());
            } else {
                let t = Instant::now();
                let mut pm = procfs::process::Process::myself()?.pagemap()?;
                let infos = pm.get_range_info(first_vpn as usize..first_vpn as usize + npages)?;
                theirs_pm.push(t.elapsed().as_secs_f64());
                let entries: Vec<u64> = infos
                    .iter()
                    .map(|i| match i {
                        procfs::process::PageInfo::MemoryPage(m) => {
                            m.bits() | (m.get_page_frame_number().0 & PM_PFN_MASK)
                        }
                        procfs::process::PageInfo::SwapPage(s) => s.bits(),
                    })
                    .collect();
                let t = Instant::now();
                let h = pagemap::folio_histogram(
                    &entries,
                    first_vpn,
                    &mut ProcfsFlags(procfs::KPageFlags::new()?),
                )?;
                theirs.push(t.elapsed().as_secs_f64());
                assert_eq!(h.pages_of_order(0), npages as u64, "{}", h.describe());
            }
        }
    }
    println!("{size} of order-0 pages ({npages} PFNs), median of 5 interleaved rounds:");
    println!(
        "  pagemap:    realfork {:8.1} ms   procfs {:8.1} ms",
        median(ours_pm) * 1e3,
        median(theirs_pm) * 1e3
    );
    println!(
        "  kpageflags: realfork {:8.1} ms   procfs {:8.1} ms",
        median(ours) * 1e3,
        median(theirs) * 1e3
    );
    // SAFETY: unmapping the region mapped above; nothing refers to it any more.
    unsafe { libc::munmap(base, len) };
    Ok(())
}
