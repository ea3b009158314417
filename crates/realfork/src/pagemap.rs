//! `/proc/self/pagemap` and `/proc/kpageflags`: decoding, and the folio-order histogram of a
//! virtual range. The analysis is a pure function over pagemap entries and a [`PageFlags`]
//! source, so it is tested on synthetic data; [`KpageflagsFile`] is the real source.
//!
//! For each present page in virtual order: a page without the compound bits is an order-0 folio;
//! a COMPOUND_HEAD page starts a folio whose size is 1 + the number of COMPOUND_TAIL pages that
//! follow it in PFN order. The folio counts in the histogram when all its pages are mapped here,
//! virtually contiguous and in PFN order; it is "misaligned" when its virtual or physical start
//! is not a multiple of its size. Anything else (a tail without its head, a folio mapped only
//! partly or out of order) is counted as irregular pages.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use serde::{Deserialize, Serialize};

/// pagemap bit 63: page present in RAM.
pub const PM_PRESENT: u64 = 1 << 63;
/// pagemap bit 62: page swapped.
pub const PM_SWAP: u64 = 1 << 62;
/// pagemap bit 61: file page or shared anon.
pub const PM_FILE: u64 = 1 << 61;
/// pagemap bit 56: page exclusively mapped (mapped once).
pub const PM_MMAP_EXCLUSIVE: u64 = 1 << 56;
/// pagemap bits 0-54: PFN (zero without CAP_SYS_ADMIN).
pub const PM_PFN_MASK: u64 = (1 << 55) - 1;

/// `/proc/kpageflags` bits (include/uapi/linux/kernel-page-flags.h).
pub mod kpf {
    pub const ANON: u64 = 1 << 12;
    pub const COMPOUND_HEAD: u64 = 1 << 15;
    pub const COMPOUND_TAIL: u64 = 1 << 16;
    pub const HUGE: u64 = 1 << 17;
    pub const NOPAGE: u64 = 1 << 20;
    pub const THP: u64 = 1 << 22;
    pub const ZERO_PAGE: u64 = 1 << 24;
}

/// Largest folio the scan will follow (order 18, a PUD); larger compound runs are irregular.
pub const MAX_SCAN_PAGES: u64 = 1 << 18;

/// A source of kpageflags words by PFN.
pub trait PageFlags {
    /// Flags of `pfn`; PFNs beyond the end of memory read as [`kpf::NOPAGE`].
    fn flags(&mut self, pfn: u64) -> io::Result<u64>;
}

/// Synthetic flags for tests: missing PFNs read as 0 (a plain order-0 page).
impl PageFlags for HashMap<u64, u64> {
    fn flags(&mut self, pfn: u64) -> io::Result<u64> {
        Ok(self.get(&pfn).copied().unwrap_or(0))
    }
}

/// `/proc/kpageflags`, read in 4 KiB blocks; at most [`CACHE_BLOCKS`] blocks are cached (the
/// scan reads a folio's PFNs in order, so a small cache suffices and the runner's own memory
/// stays small even for 1 GiB of scattered order-0 pages). Kept instead of `procfs::KPageFlags`
/// (a seek and a buffered 8 KiB read per lookup): the scan of 256 MiB of order-0 pages took
/// 1.30 s with this reader and 9.88 s with procfs's on the development VM
/// (`cargo run --release -p realfork --example kpageflags_readers -- 256M`, medians of 5).
#[derive(Debug)]
pub struct KpageflagsFile {
    file: File,
    cache: HashMap<u64, Box<[u64]>>,
}

const BLOCK: u64 = 512;
/// Most kpageflags blocks kept in memory (4 KiB each).
pub const CACHE_BLOCKS: usize = 256;

impl KpageflagsFile {
    /// Open `/proc/kpageflags` (root only).
    pub fn open() -> io::Result<Self> {
        Ok(KpageflagsFile {
            file: File::open("/proc/kpageflags")?,
            cache: HashMap::new(),
        })
    }
}

impl PageFlags for KpageflagsFile {
    fn flags(&mut self, pfn: u64) -> io::Result<u64> {
        let block = pfn / BLOCK;
        if !self.cache.contains_key(&block) {
            if self.cache.len() >= CACHE_BLOCKS {
                self.cache.clear();
            }
            let mut buf = vec![0u8; (BLOCK * 8) as usize];
            let mut got = 0;
            while got < buf.len() {
                let n = self
                    .file
                    .read_at(&mut buf[got..], block * BLOCK * 8 + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let words: Box<[u64]> = (0..BLOCK as usize)
                .map(|i| {
                    if (i + 1) * 8 <= got {
                        u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
                    } else {
                        kpf::NOPAGE
                    }
                })
                .collect();
            self.cache.insert(block, words);
        }
        Ok(self.cache[&block][(pfn % BLOCK) as usize])
    }
}

/// Read `npages` pagemap entries starting at virtual page number `first_vpn`.
pub fn read_pagemap(first_vpn: u64, npages: usize) -> io::Result<Vec<u64>> {
    let f = File::open("/proc/self/pagemap")?;
    let mut buf = vec![0u8; npages * 8];
    let mut got = 0;
    while got < buf.len() {
        let n = f.read_at(&mut buf[got..], first_vpn * 8 + got as u64)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short read from /proc/self/pagemap",
            ));
        }
        got += n;
    }
    Ok(buf
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// What the pagemap flags alone say (no privileges needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PagemapFlags {
    pub pages: u64,
    pub present: u64,
    pub swapped: u64,
    /// Present pages with PM_MMAP_EXCLUSIVE (mapped by this process only).
    pub exclusive: u64,
    /// Whether PFNs are visible (every present page has a non-zero PFN).
    pub pfn_visible: bool,
}

/// Count the pagemap flags of a range.
pub fn pagemap_flags(entries: &[u64]) -> PagemapFlags {
    let mut f = PagemapFlags {
        pages: entries.len() as u64,
        ..Default::default()
    };
    let mut zero_pfn = 0;
    for &e in entries {
        if e & PM_PRESENT != 0 {
            f.present += 1;
            if e & PM_MMAP_EXCLUSIVE != 0 {
                f.exclusive += 1;
            }
            if e & PM_PFN_MASK == 0 {
                zero_pfn += 1;
            }
        } else if e & PM_SWAP != 0 {
            f.swapped += 1;
        }
    }
    f.pfn_visible = f.present > 0 && zero_pfn == 0;
    f
}

/// Folios of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderCount {
    pub folios: u64,
    pub pages: u64,
}

/// The folio-order histogram of a virtual range; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Histogram {
    pub pages: u64,
    pub present: u64,
    pub exclusive: u64,
    /// Order → folios fully mapped here, contiguously and in PFN order.
    pub orders: BTreeMap<u32, OrderCount>,
    /// Counted folios whose virtual or physical start is not a multiple of their size.
    pub misaligned_folios: u64,
    /// Large folios only partly mapped here (or out of order).
    pub partial_folios: u64,
    /// Present pages not in any counted folio.
    pub irregular_pages: u64,
    /// Counted large folios whose head has KPF_THP.
    pub thp_folios: u64,
    pub anon_pages: u64,
    pub zero_pages: u64,
    /// Block by block, when the scan was asked for it ([`folio_histogram_with_blocks`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<BlockTally>,
    /// Physical locality, in virtual-address order: steps from one present page to the next
    /// whose PFN is not the previous one plus one. Fork walks the struct pages in this order,
    /// so each break is a jump in the memmap the hardware prefetcher cannot follow.
    #[serde(default)]
    pub pfn_breaks: u64,
    /// Of those, steps of more than [`FAR_PFN_STEP`] pages: the next struct page lies in
    /// another 4 KiB page of the memmap.
    #[serde(default)]
    pub far_pfn_jumps: u64,
}

/// A PFN step beyond which the next `struct page` (64 bytes) is in another memmap page.
pub const FAR_PFN_STEP: u64 = 64;

impl Histogram {
    /// Pages in counted folios of `order`.
    pub fn pages_of_order(&self, order: u32) -> u64 {
        self.orders.get(&order).map_or(0, |c| c.pages)
    }

    /// `"512 order-9 folios (100.0% of 262144 pages)"`-style description.
    pub fn describe(&self) -> String {
        if self.present == 0 {
            return format!("no present pages of {}", self.pages);
        }
        let mut parts: Vec<String> = self
            .orders
            .iter()
            .rev()
            .map(|(o, c)| {
                format!(
                    "{} order-{o} folios ({:.1}%)",
                    c.folios,
                    100.0 * c.pages as f64 / self.pages.max(1) as f64
                )
            })
            .collect();
        if self.irregular_pages > 0 {
            parts.push(format!("{} irregular pages", self.irregular_pages));
        }
        if self.misaligned_folios > 0 {
            parts.push(format!("{} misaligned", self.misaligned_folios));
        }
        format!(
            "{} of {} pages present: {}",
            self.present,
            self.pages,
            parts.join(", ")
        )
    }
}

/// How the equal blocks of a range are populated, block by block: blocks are `block_pages`
/// pages counted from the start of the range, and numbered from 0 there (so "even" is the
/// first, third, ... block). Each block is either exactly one counted folio of the block's size
/// starting at its start, or all order-0 folios, or neither ("other").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlockTally {
    pub block_pages: u64,
    pub blocks: u64,
    pub even_one_folio: u64,
    pub even_all_order0: u64,
    pub odd_one_folio: u64,
    pub odd_all_order0: u64,
}

impl BlockTally {
    /// Blocks that are neither one folio nor all order-0.
    pub fn other(&self) -> u64 {
        self.blocks
            - self.even_one_folio
            - self.even_all_order0
            - self.odd_one_folio
            - self.odd_all_order0
    }

    /// `"8192 of 8192 even 16-page blocks one folio, ..."`-style description.
    pub fn describe(&self) -> String {
        let (even, odd) = (self.blocks.div_ceil(2), self.blocks / 2);
        format!(
            "{}-page blocks: even {even}: {} one folio, {} all order-0; odd {odd}: {} one folio, {} all order-0; {} other",
            self.block_pages,
            self.even_one_folio,
            self.even_all_order0,
            self.odd_one_folio,
            self.odd_all_order0,
            self.other()
        )
    }
}

/// Build the folio histogram of `entries` (pagemap words of consecutive virtual pages starting
/// at `first_vpn`), looking PFNs up in `flags`.
pub fn folio_histogram(
    entries: &[u64],
    first_vpn: u64,
    flags: &mut dyn PageFlags,
) -> io::Result<Histogram> {
    folio_walk(entries, first_vpn, flags, &mut |_, _| {})
}

/// [`folio_histogram`] with the [`BlockTally`] of `block_pages`-page blocks (a power of two)
/// from the same scan in [`Histogram::blocks`].
pub fn folio_histogram_with_blocks(
    entries: &[u64],
    first_vpn: u64,
    flags: &mut dyn PageFlags,
    block_pages: u64,
) -> io::Result<Histogram> {
    let b = block_pages.max(1) as usize;
    let nblocks = entries.len().div_ceil(b);
    let mut one_folio = vec![false; nblocks];
    let mut order0 = vec![0u64; nblocks];
    let mut h = folio_walk(entries, first_vpn, flags, &mut |i, size| {
        if size == 1 {
            order0[i / b] += 1;
        }
        if size == b as u64 && i.is_multiple_of(b) {
            one_folio[i / b] = true;
        }
    })?;
    let mut t = BlockTally {
        block_pages: b as u64,
        blocks: nblocks as u64,
        ..Default::default()
    };
    for k in 0..nblocks {
        let whole = one_folio[k];
        let small = order0[k] == b as u64;
        match (k % 2 == 0, whole, small) {
            (true, true, _) => t.even_one_folio += 1,
            (true, false, true) => t.even_all_order0 += 1,
            (false, true, _) => t.odd_one_folio += 1,
            (false, false, true) => t.odd_all_order0 += 1,
            _ => {}
        }
    }
    h.blocks = Some(t);
    Ok(h)
}

/// The scan behind [`folio_histogram`]: `on_folio(index, pages)` is called for every counted
/// folio (order-0 pages included) with the index of its first page in `entries`.
fn folio_walk(
    entries: &[u64],
    first_vpn: u64,
    flags: &mut dyn PageFlags,
    on_folio: &mut dyn FnMut(usize, u64),
) -> io::Result<Histogram> {
    let mut h = Histogram {
        pages: entries.len() as u64,
        ..Default::default()
    };
    let present = |e: u64| e & PM_PRESENT != 0;
    let pfn = |e: u64| e & PM_PFN_MASK;
    let mut prev: Option<u64> = None;
    for &e in entries.iter().filter(|&&e| present(e)) {
        let p = pfn(e);
        if let Some(q) = prev
            && p != q + 1
        {
            h.pfn_breaks += 1;
            if p.abs_diff(q) > FAR_PFN_STEP {
                h.far_pfn_jumps += 1;
            }
        }
        prev = Some(p);
    }
    let n = entries.len();
    let mut i = 0;
    while i < n {
        let e = entries[i];
        if !present(e) {
            i += 1;
            continue;
        }
        h.present += 1;
        if e & PM_MMAP_EXCLUSIVE != 0 {
            h.exclusive += 1;
        }
        let p = pfn(e);
        let f = flags.flags(p)?;
        if f & kpf::ANON != 0 {
            h.anon_pages += 1;
        }
        if f & kpf::ZERO_PAGE != 0 {
            h.zero_pages += 1;
        }
        if f & kpf::COMPOUND_TAIL != 0 {
            // A tail whose head is not right before it in this range.
            h.irregular_pages += 1;
            i += 1;
            continue;
        }
        if f & kpf::COMPOUND_HEAD == 0 {
            h.orders.entry(0).or_default().folios += 1;
            h.orders.entry(0).or_default().pages += 1;
            on_folio(i, 1);
            i += 1;
            continue;
        }
        // Folio size: the head plus the tails that follow in PFN order.
        let mut size = 1u64;
        while size < MAX_SCAN_PAGES && flags.flags(p + size)? & kpf::COMPOUND_TAIL != 0 {
            size += 1;
        }
        // How many of its pages are mapped here, in order, right after the head.
        let mut mapped = 1u64;
        while mapped < size
            && i + (mapped as usize) < n
            && present(entries[i + mapped as usize])
            && pfn(entries[i + mapped as usize]) == p + mapped
        {
            mapped += 1;
        }
        let rest = mapped - 1;
        if mapped == size && size.is_power_of_two() {
            let order = size.trailing_zeros();
            let c = h.orders.entry(order).or_default();
            c.folios += 1;
            c.pages += size;
            on_folio(i, size);
            if !(first_vpn + i as u64).is_multiple_of(size) || !p.is_multiple_of(size) {
                h.misaligned_folios += 1;
            }
            if f & kpf::THP != 0 {
                h.thp_folios += 1;
            }
        } else {
            h.partial_folios += 1;
            h.irregular_pages += mapped;
        }
        // Account the followers (exclusive/anon) that were consumed with the head.
        for j in 1..=rest as usize {
            let ej = entries[i + j];
            h.present += 1;
            if ej & PM_MMAP_EXCLUSIVE != 0 {
                h.exclusive += 1;
            }
            if f & kpf::ANON != 0 {
                h.anon_pages += 1;
            }
        }
        i += mapped as usize;
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: u64 = kpf::COMPOUND_HEAD | kpf::ANON;
    const TAIL: u64 = kpf::COMPOUND_TAIL | kpf::ANON;

    fn pte(pfn: u64) -> u64 {
        PM_PRESENT | PM_MMAP_EXCLUSIVE | pfn
    }

    /// Flags for folios of `order` at the given head PFNs.
    fn folios(order: u32, heads: &[u64], thp: bool) -> HashMap<u64, u64> {
        let mut m = HashMap::new();
        for &h in heads {
            m.insert(h, HEAD | if thp { kpf::THP } else { 0 });
            for t in 1..(1u64 << order) {
                m.insert(h + t, TAIL | if thp { kpf::THP } else { 0 });
            }
        }
        m
    }

    #[test]
    fn entry_bits_decode() {
        let e = PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1234;
        assert_eq!(e & PM_PFN_MASK, 0x1234);
        let f = pagemap_flags(&[e, 0, PM_SWAP, PM_PRESENT]);
        assert_eq!(f.pages, 4);
        assert_eq!(f.present, 2);
        assert_eq!(f.swapped, 1);
        assert_eq!(f.exclusive, 1);
        assert!(
            !f.pfn_visible,
            "a present page with PFN 0 means PFNs are hidden"
        );
        assert!(pagemap_flags(&[e]).pfn_visible);
    }

    #[test]
    fn order0_pages_scattered() {
        let entries: Vec<u64> = [900, 17, 5000, 18].iter().map(|&p| pte(p)).collect();
        let h = folio_histogram(&entries, 1000, &mut HashMap::new()).unwrap();
        assert_eq!(h.present, 4);
        assert_eq!(
            h.orders[&0],
            OrderCount {
                folios: 4,
                pages: 4
            }
        );
        assert_eq!(h.irregular_pages, 0);
        assert_eq!(h.exclusive, 4);
    }

    #[test]
    fn order9_folios_aligned_and_contiguous() {
        // Two 2 MiB folios at PFNs 0x40000 and 0x80000, mapped at vpn 0x200 (2 MiB aligned).
        let mut flags = folios(9, &[0x40000, 0x80000], true);
        let mut entries: Vec<u64> = (0..512).map(|i| pte(0x40000 + i)).collect();
        entries.extend((0..512).map(|i| pte(0x80000 + i)));
        let h = folio_histogram(&entries, 0x200, &mut flags).unwrap();
        assert_eq!(h.orders.len(), 1);
        assert_eq!(
            h.orders[&9],
            OrderCount {
                folios: 2,
                pages: 1024
            }
        );
        assert_eq!(h.present, 1024);
        assert_eq!(h.exclusive, 1024);
        assert_eq!(h.anon_pages, 1024);
        assert_eq!(h.thp_folios, 2);
        assert_eq!(h.misaligned_folios, 0);
        assert_eq!(h.irregular_pages, 0);
        assert_eq!(h.pages_of_order(9), 1024);
        assert!(
            h.describe().contains("2 order-9 folios (100.0%)"),
            "{}",
            h.describe()
        );
    }

    #[test]
    fn misaligned_virtual_start_is_flagged() {
        let mut flags = folios(4, &[0x100], false);
        let entries: Vec<u64> = (0..16).map(|i| pte(0x100 + i)).collect();
        let h = folio_histogram(&entries, 0x208, &mut flags).unwrap();
        assert_eq!(h.orders[&4].folios, 1);
        assert_eq!(h.misaligned_folios, 1);
    }

    #[test]
    fn partially_mapped_and_orphan_tails_are_irregular() {
        // An order-4 folio whose first 8 pages are mapped, then a hole, then 3 of its tails.
        let mut flags = folios(4, &[0x200], false);
        let mut entries: Vec<u64> = (0..8).map(|i| pte(0x200 + i)).collect();
        entries.push(0);
        entries.extend((12..15).map(|i| pte(0x200 + i)));
        let h = folio_histogram(&entries, 0, &mut flags).unwrap();
        assert!(h.orders.is_empty());
        assert_eq!(h.partial_folios, 1);
        assert_eq!(h.irregular_pages, 11);
        assert_eq!(h.present, 11);
    }

    #[test]
    fn out_of_order_mapping_is_irregular() {
        let mut flags = folios(1, &[0x10], false);
        let entries = vec![pte(0x10), pte(0x99)];
        let h = folio_histogram(&entries, 0, &mut flags).unwrap();
        assert_eq!(h.partial_folios, 1);
        assert_eq!(h.irregular_pages, 1);
        // 0x99 is a plain order-0 page.
        assert_eq!(h.orders[&0].folios, 1);
    }

    #[test]
    fn mixed_orders_and_holes() {
        let mut flags = folios(4, &[0x1000], false);
        flags.extend(folios(2, &[0x2000], false));
        let mut entries: Vec<u64> = (0..16).map(|i| pte(0x1000 + i)).collect();
        entries.extend((0..4).map(|i| pte(0x2000 + i)));
        entries.extend([0, 0, pte(0x3000), PM_SWAP]);
        let h = folio_histogram(&entries, 0, &mut flags).unwrap();
        assert_eq!(h.pages, 24);
        assert_eq!(h.present, 21);
        assert_eq!(h.orders[&4].folios, 1);
        assert_eq!(h.orders[&2].folios, 1);
        assert_eq!(h.orders[&0].folios, 1);
        assert_eq!(h.irregular_pages, 0);
    }

    #[test]
    fn pfn_breaks_count_steps_off_the_next_pfn_and_far_jumps_beyond_a_memmap_page() {
        // 4 pages in order, a hole, 2 more after a near step (+3), then a far step (+1000)
        // and a step backwards by one.
        let entries = vec![
            pte(100),
            pte(101),
            pte(102),
            pte(103),
            0,
            pte(106),
            pte(107),
            pte(1107),
            pte(1106),
        ];
        let h = folio_histogram(&entries, 0, &mut HashMap::new()).unwrap();
        // 103→106 (a hole in the VA range does not count as a break by itself), 107→1107,
        // 1107→1106.
        assert_eq!(h.pfn_breaks, 3);
        assert_eq!(h.far_pfn_jumps, 1);
        let in_order: Vec<u64> = (0..64).map(|i| pte(0x4000 + i)).collect();
        let h = folio_histogram(&in_order, 0, &mut HashMap::new()).unwrap();
        assert_eq!((h.pfn_breaks, h.far_pfn_jumps), (0, 0));
    }

    #[test]
    fn shared_pages_are_not_exclusive() {
        let entries = vec![PM_PRESENT | 5, PM_PRESENT | PM_MMAP_EXCLUSIVE | 6];
        let h = folio_histogram(&entries, 0, &mut HashMap::new()).unwrap();
        assert_eq!(h.exclusive, 1);
    }

    #[test]
    fn block_tally_classifies_alternating_blocks() {
        // Four 16-page blocks: a 64K folio, 16 order-0 pages, a 64K folio, then a block of a
        // 32K folio and 8 order-0 pages (neither).
        let mut flags = folios(4, &[0x1000, 0x2000], true);
        flags.extend(folios(3, &[0x3000], true));
        let mut entries: Vec<u64> = (0..16).map(|i| pte(0x1000 + i)).collect();
        entries.extend((0..16).map(|i| pte(0x5000 + 7 * i)));
        entries.extend((0..16).map(|i| pte(0x2000 + i)));
        entries.extend((0..8).map(|i| pte(0x3000 + i)));
        entries.extend((0..8).map(|i| pte(0x6000 + 3 * i)));
        let mut h = folio_histogram_with_blocks(&entries, 0, &mut flags, 16).unwrap();
        let t = h.blocks.take().unwrap();
        assert_eq!(h, folio_histogram(&entries, 0, &mut flags).unwrap());
        assert_eq!(
            t,
            BlockTally {
                block_pages: 16,
                blocks: 4,
                even_one_folio: 2,
                even_all_order0: 0,
                odd_one_folio: 0,
                odd_all_order0: 1,
            }
        );
        assert_eq!(t.other(), 1);
        assert!(
            t.describe()
                .starts_with("16-page blocks: even 2: 2 one folio, 0 all order-0; odd 2: 0 one folio, 1 all order-0; 1 other"),
            "{}",
            t.describe()
        );
        // A 64K folio that starts mid-block is not "one folio" for either block.
        let mut flags = folios(4, &[0x1000], true);
        let mut entries: Vec<u64> = (0..8).map(|i| pte(0x7000 + 2 * i)).collect();
        entries.extend((0..16).map(|i| pte(0x1000 + i)));
        entries.extend((0..8).map(|i| pte(0x8000 + 2 * i)));
        let t = folio_histogram_with_blocks(&entries, 0, &mut flags, 16)
            .unwrap()
            .blocks
            .unwrap();
        assert_eq!((t.even_one_folio, t.odd_one_folio, t.other()), (0, 0, 2));
    }

    #[test]
    fn real_pagemap_of_a_touched_page() {
        let v = vec![7u8; 4096 * 4];
        let vpn = v.as_ptr() as u64 / 4096;
        let e = read_pagemap(vpn, 2).unwrap();
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|&x| x & PM_PRESENT != 0));
        drop(v);
    }
}
