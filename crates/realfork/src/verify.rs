//! Layout verification: observe a range (pagemap + kpageflags, smaps), then judge the
//! observation and the THP counter deltas against what the layout promises.
//!
//! Levels: **full** when PFNs and `/proc/kpageflags` are readable (root), so every folio is seen;
//! **partial** when only smaps, pagemap flags and the global counters are available (no
//! privileges); **none** when nothing is readable. Every check says whether it is *decisive*:
//! per-page and smaps checks always are, and so are "counter went up by at least N" checks; a
//! "global counter did not move" check is decisive only below full level, because at full level
//! the per-page evidence is exact and another process may move a global counter. A counter this
//! kernel does not have (6.1 has no per-size mTHP stats) is never taken for "+0": its check says
//! "not available on this kernel" and does not pass, without deciding.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::layout::{PAGE_SIZE, RealLayout};
use crate::pagemap::{self, Histogram, PagemapFlags};
use crate::smaps::{self, RangeSmaps};
use crate::vmstat::MmCounters;

/// How much of the layout could be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    None,
    Partial,
    Full,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::None => "none",
            Level::Partial => "partial",
            Level::Full => "full",
        })
    }
}

/// What was read from the range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub pagemap: Option<PagemapFlags>,
    pub histogram: Option<Histogram>,
    pub smaps: Option<RangeSmaps>,
    /// Why a source is missing.
    pub unavailable: Vec<String>,
}

/// The block size (pages) a mixed layout alternates in: 16 (64 KiB) for `mix-64k`, 512
/// (2 MiB) for `mix-pmd`; none for the uniform layouts.
pub fn mix_block_pages(layout: RealLayout) -> Option<u64> {
    match layout {
        RealLayout::Mix64k => Some(16),
        RealLayout::MixPmd => Some(crate::layout::PMD_SIZE / PAGE_SIZE),
        _ => None,
    }
}

/// [`observe`] for `layout`: a mixed layout's observation also tallies its blocks.
pub fn observe_layout(layout: RealLayout, start: u64, len: u64, use_pagemap: bool) -> Observation {
    observe_with_blocks(start, len, use_pagemap, mix_block_pages(layout))
}

/// Read pagemap (+ kpageflags when possible) and smaps for `[start, start + len)`.
pub fn observe(start: u64, len: u64, use_pagemap: bool) -> Observation {
    observe_with_blocks(start, len, use_pagemap, None)
}

fn observe_with_blocks(
    start: u64,
    len: u64,
    use_pagemap: bool,
    block_pages: Option<u64>,
) -> Observation {
    let mut o = Observation::default();
    let npages = (len / PAGE_SIZE) as usize;
    let entries = if use_pagemap {
        match pagemap::read_pagemap(start / PAGE_SIZE, npages) {
            Ok(e) => Some(e),
            Err(e) => {
                o.unavailable.push(format!("/proc/self/pagemap: {e}"));
                None
            }
        }
    } else {
        o.unavailable
            .push("pagemap and kpageflags not used (--no-pagemap)".into());
        None
    };
    if let Some(entries) = &entries {
        let flags = pagemap::pagemap_flags(entries);
        o.pagemap = Some(flags);
        if flags.present > 0 && !flags.pfn_visible {
            o.unavailable
                .push("PFNs are hidden in pagemap (needs CAP_SYS_ADMIN)".into());
        } else {
            match pagemap::KpageflagsFile::open() {
                Ok(mut k) => {
                    let first_vpn = start / PAGE_SIZE;
                    let scanned = match block_pages {
                        Some(b) => {
                            pagemap::folio_histogram_with_blocks(entries, first_vpn, &mut k, b)
                        }
                        None => pagemap::folio_histogram(entries, first_vpn, &mut k),
                    };
                    match scanned {
                        Ok(h) => o.histogram = Some(h),
                        Err(e) => o.unavailable.push(format!("/proc/kpageflags: {e}")),
                    }
                }
                Err(e) => o.unavailable.push(format!("/proc/kpageflags: {e}")),
            }
        }
    }
    match smaps::read_range(start, start + len) {
        Ok(s) => o.smaps = Some(s),
        Err(e) => o.unavailable.push(format!("/proc/self/smaps: {e}")),
    }
    o
}

/// Counter deltas that belong to one verification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deltas {
    /// Across populating the region.
    pub populate: Option<MmCounters>,
    /// Across the PTE-mapping `mprotect` step (pte-order9).
    pub split: Option<MmCounters>,
    /// smaps right after populating, before the split (pte-order9).
    pub smaps_before_split: Option<RangeSmaps>,
    /// Across a timed run.
    pub run: Option<MmCounters>,
}

/// One verification check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub decisive: bool,
    pub detail: String,
}

/// The verdict on a layout at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayoutReport {
    pub layout: String,
    /// `before` or `after run N`.
    pub stage: String,
    pub level: Level,
    pub ok: bool,
    pub observation: Observation,
    /// Non-zero counter deltas used by the checks.
    pub deltas: Deltas,
    pub checks: Vec<Check>,
    /// Time spent verifying (outside any timed section).
    pub verify_ns: u64,
}

struct Judge {
    level: Level,
    checks: Vec<Check>,
}

impl Judge {
    fn per_page(&mut self, name: &str, ok: bool, detail: String) {
        self.checks.push(Check {
            name: name.into(),
            ok,
            decisive: true,
            detail,
        });
    }

    /// A counter this kernel does not have: recorded as not passing, but not decisive (the
    /// per-page and smaps checks still decide), so absence is never taken for "+0".
    fn not_available(&mut self, name: &str, expected: String) {
        self.checks.push(Check {
            name: name.into(),
            ok: false,
            decisive: false,
            detail: format!("{name} not available on this kernel (expected {expected})"),
        });
    }

    fn at_least(&mut self, name: &str, delta: Option<i64>, min: i64) {
        let Some(delta) = delta else {
            return self.not_available(name, format!("at least {min:+}"));
        };
        self.checks.push(Check {
            name: name.into(),
            ok: delta >= min,
            decisive: true,
            detail: format!("{name} {delta:+} (expected at least {min:+})"),
        });
    }

    fn unchanged(&mut self, name: &str, delta: Option<i64>) {
        let Some(delta) = delta else {
            return self.not_available(name, "+0".into());
        };
        let decisive = self.level < Level::Full;
        self.checks.push(Check {
            name: name.into(),
            ok: delta == 0,
            decisive,
            detail: format!(
                "{name} {delta:+} (expected +0{})",
                if decisive {
                    ""
                } else {
                    "; global counter, informational at full level"
                }
            ),
        });
    }
}

/// Judge an observation of a `mem_bytes` region in `layout`. `after_run` adds the checks that
/// must hold once the fork children are gone.
pub fn judge(
    layout: RealLayout,
    mem_bytes: u64,
    stage: &str,
    obs: Observation,
    deltas: Deltas,
    after_run: bool,
) -> LayoutReport {
    let npages = mem_bytes / PAGE_SIZE;
    let mem_kb = mem_bytes / 1024;
    let populated = layout.populated();
    let any_counters = deltas.populate.is_some() || deltas.split.is_some() || deltas.run.is_some();
    let level = if obs.histogram.is_some() {
        Level::Full
    } else if obs.pagemap.is_some() || obs.smaps.is_some() || any_counters {
        Level::Partial
    } else {
        Level::None
    };
    let mut j = Judge {
        level,
        checks: Vec::new(),
    };
    let want_present = if populated { npages } else { 0 };

    if let Some(p) = &obs.pagemap {
        j.per_page(
            "present pages",
            p.present == want_present,
            format!(
                "{} of {npages} pages present (expected {want_present})",
                p.present
            ),
        );
        if after_run {
            j.per_page(
                "exclusive after fork",
                p.exclusive == p.present,
                format!(
                    "{} of {} present pages mapped exclusively (PM_MMAP_EXCLUSIVE); every child must be gone",
                    p.exclusive, p.present
                ),
            );
        }
    }

    if let (Some(h), true) = (&obs.histogram, layout.is_mixed()) {
        judge_mixed_folios(&mut j, layout, npages, h);
    } else if let (Some(h), Some(order)) = (&obs.histogram, layout.folio_order()) {
        let in_order = h.pages_of_order(order);
        j.per_page(
            "folio orders",
            in_order == npages && h.orders.len() == 1 && h.irregular_pages == 0,
            format!(
                "{in_order} of {npages} pages in order-{order} folios ({})",
                h.describe()
            ),
        );
        j.per_page(
            "natural alignment",
            h.misaligned_folios == 0,
            format!("{} misaligned folios", h.misaligned_folios),
        );
    } else if let Some(h) = &obs.histogram {
        j.per_page(
            "no folios",
            h.present == 0,
            format!("{} present pages (expected none)", h.present),
        );
    }

    if let Some(s) = &obs.smaps {
        j.per_page(
            "one VMA",
            s.single_exact_vma,
            format!(
                "{} VMA(s) overlap the region; expected exactly one covering it",
                s.vmas
            ),
        );
        let want_rss = if populated { mem_kb } else { 0 };
        j.per_page(
            "smaps Rss",
            s.rss_kb == want_rss,
            format!("Rss {} kB (expected {want_rss} kB)", s.rss_kb),
        );
        // mix-pmd: the even 2 MiB chunks, half the region, stay PMD-mapped.
        let want_huge = match layout {
            RealLayout::PmdOrder9 => mem_kb,
            RealLayout::MixPmd => mem_kb / 2,
            _ => 0,
        };
        j.per_page(
            "smaps AnonHugePages",
            s.anon_huge_kb == want_huge,
            format!(
                "AnonHugePages {} kB (expected {want_huge} kB: {})",
                s.anon_huge_kb,
                if layout == RealLayout::MixPmd {
                    "even chunks PMD-mapped, odd chunks PTE-mapped"
                } else if want_huge > 0 {
                    "PMD-mapped"
                } else {
                    "nothing PMD-mapped"
                }
            ),
        );
        // pte-order9 and mix-pmd are populated under MADV_HUGEPAGE and then switched to
        // MADV_NOHUGEPAGE (the khugepaged guard), so they end up `nh` like order0. mix-64k
        // has neither flag (the 64K knob's `always` applies without madvise).
        let flag = match layout {
            RealLayout::Order0 | RealLayout::PteOrder9 | RealLayout::MixPmd => Some("nh"),
            RealLayout::PmdOrder9 => Some("hg"),
            _ => None,
        };
        if let Some(flag) = flag {
            j.per_page(
                "madvise flag",
                s.vm_flags.iter().any(|f| f == flag),
                format!("VmFlags {:?} (expected {flag})", s.vm_flags.join(" ")),
            );
        }
    }

    // Large folios the populate allocates: mix-64k's even blocks, all of mix-pmd's chunks.
    let nfolios = match layout {
        RealLayout::Mix64k => (npages / 16).div_ceil(2) as i64,
        RealLayout::MixPmd => (npages >> 9) as i64,
        _ => layout
            .folio_order()
            .map(|o| (npages >> o) as i64)
            .unwrap_or(0),
    };
    // PMDs the PTE-mapping step splits: every chunk, or mix-pmd's odd ones.
    let nsplit = match layout {
        RealLayout::MixPmd => (npages >> 9) as i64 / 2,
        _ => nfolios,
    };
    if let Some(d) = &deltas.populate {
        match layout {
            RealLayout::Order0 => {
                j.unchanged("thp_fault_alloc", d.vm("thp_fault_alloc"));
                // Kernels before per-size stats have none: absent, not +0.
                let mut per_size = d
                    .mthp
                    .iter()
                    .filter(|(k, _)| k.ends_with("/anon_fault_alloc"))
                    .map(|(_, v)| *v)
                    .peekable();
                let mthp = per_size.peek().is_some().then(|| per_size.sum());
                j.unchanged("mTHP anon_fault_alloc (all sizes)", mthp);
            }
            RealLayout::PteOrder9 | RealLayout::PmdOrder9 | RealLayout::MixPmd => {
                j.at_least("thp_fault_alloc", d.vm("thp_fault_alloc"), nfolios);
                j.unchanged("thp_fault_fallback", d.vm("thp_fault_fallback"));
            }
            RealLayout::Mix64k => {
                // The odd blocks' order-0 faults find a PTE in their 64K range, which is no
                // allocation failure: no fallback is counted for them.
                j.at_least(
                    "64kB/anon_fault_alloc",
                    d.size_stat(64, "anon_fault_alloc"),
                    nfolios,
                );
                j.unchanged(
                    "64kB/anon_fault_fallback",
                    d.size_stat(64, "anon_fault_fallback"),
                );
                j.unchanged("thp_fault_alloc", d.vm("thp_fault_alloc"));
            }
            RealLayout::Mthp { kb } => {
                j.at_least(
                    &format!("{kb}kB/anon_fault_alloc"),
                    d.size_stat(kb, "anon_fault_alloc"),
                    nfolios,
                );
                j.unchanged(
                    &format!("{kb}kB/anon_fault_fallback"),
                    d.size_stat(kb, "anon_fault_fallback"),
                );
                j.unchanged("thp_fault_alloc", d.vm("thp_fault_alloc"));
            }
            RealLayout::Untouched => {}
        }
    }
    if let Some(s) = &deltas.smaps_before_split {
        j.per_page(
            "PMD-mapped before the split",
            s.anon_huge_kb == mem_kb,
            format!(
                "AnonHugePages {} kB right after populating (expected {mem_kb} kB)",
                s.anon_huge_kb
            ),
        );
    }
    if let Some(d) = &deltas.split {
        j.at_least("thp_split_pmd", d.vm("thp_split_pmd"), nsplit);
        j.unchanged("thp_split_page", d.vm("thp_split_page"));
        j.unchanged(
            "2048kB/nr_anon_partially_mapped",
            d.size_stat(2048, "nr_anon_partially_mapped"),
        );
    }
    if let Some(d) = &deltas.run {
        j.unchanged("thp_split_page", d.vm("thp_split_page"));
        j.unchanged("thp_collapse_alloc", d.vm("thp_collapse_alloc"));
        if let Some(kb) = layout.mthp_knob_kb() {
            j.unchanged(&format!("{kb}kB/split"), d.size_stat(kb, "split"));
        }
    }

    let decisive = j.checks.iter().filter(|c| c.decisive).count();
    let ok = level > Level::None && decisive > 0 && j.checks.iter().all(|c| c.ok || !c.decisive);
    let nz = |m: &Option<MmCounters>| m.as_ref().map(MmCounters::nonzero);
    LayoutReport {
        layout: layout.to_string(),
        stage: stage.to_string(),
        level,
        ok,
        observation: obs,
        deltas: Deltas {
            populate: nz(&deltas.populate),
            split: nz(&deltas.split),
            smaps_before_split: deltas.smaps_before_split,
            run: nz(&deltas.run),
        },
        checks: j.checks,
        verify_ns: 0,
    }
}

/// The per-page checks of a mixed layout: its orders in total, and block by block.
fn judge_mixed_folios(j: &mut Judge, layout: RealLayout, npages: u64, h: &Histogram) {
    let block = mix_block_pages(layout).unwrap_or(1);
    let nblocks = npages / block;
    let (even, odd) = (nblocks.div_ceil(2), nblocks / 2);
    let big_order = block.trailing_zeros();
    // mix-64k: half the pages in 64K folios, half order-0; mix-pmd: every page in an
    // order-9 folio (pagemap cannot tell a PMD mapping from PTEs: smaps does, below).
    let (want_big, want_small) = match layout {
        RealLayout::Mix64k => (even * block, odd * block),
        _ => (npages, 0),
    };
    let (big, small) = (h.pages_of_order(big_order), h.pages_of_order(0));
    let other_orders = h
        .orders
        .keys()
        .filter(|&&o| o != big_order && o != 0)
        .count();
    j.per_page(
        "folio orders",
        big == want_big && small == want_small && other_orders == 0 && h.irregular_pages == 0,
        format!(
            "{big} pages in order-{big_order} folios (expected {want_big}), {small} order-0 (expected {want_small}) ({})",
            h.describe()
        ),
    );
    j.per_page(
        "natural alignment",
        h.misaligned_folios == 0,
        format!("{} misaligned folios", h.misaligned_folios),
    );
    let Some(t) = &h.blocks else {
        return j.per_page(
            "per block",
            false,
            "no block tally was taken for this mixed layout".into(),
        );
    };
    let (want_odd_one, want_odd_small) = match layout {
        RealLayout::Mix64k => (0, odd),
        _ => (odd, 0),
    };
    j.per_page(
        "per block",
        t.block_pages == block
            && t.blocks == nblocks
            && t.even_one_folio == even
            && t.odd_one_folio == want_odd_one
            && t.odd_all_order0 == want_odd_small,
        format!(
            "{} (expected even blocks one order-{big_order} folio each, odd blocks {})",
            t.describe(),
            if layout == RealLayout::Mix64k {
                "all order-0"
            } else {
                "one order-9 folio each, PTE-mapped"
            }
        ),
    );
}

impl LayoutReport {
    /// The pre-run report a [`contract::RealContext`] carries (`pre_report`), read back.
    pub fn from_context(ctx: &contract::RealContext) -> Result<LayoutReport, serde_json::Error> {
        LayoutReport::deserialize(&ctx.pre_report)
    }

    /// One line: level, folio histogram (or smaps), key counter deltas.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} ({}, {}): ",
            if self.ok { "verified" } else { "NOT verified" },
            self.layout,
            self.stage,
            self.level
        );
        if let Some(h) = &self.observation.histogram {
            s.push_str(&h.describe());
            if h.misaligned_folios == 0 && h.present > 0 {
                s.push_str(", all naturally aligned");
            }
        } else if let Some(p) = &self.observation.pagemap {
            let _ = write!(s, "{} of {} pages present", p.present, p.pages);
        } else {
            s.push_str("no per-page view");
        }
        if let Some(sm) = &self.observation.smaps {
            let _ = write!(s, "; AnonHugePages {} kB", sm.anon_huge_kb);
        }
        if let Some(t) = self
            .observation
            .histogram
            .as_ref()
            .and_then(|h| h.blocks.as_ref())
        {
            let _ = write!(s, "; {}", t.describe());
        }
        for (stage, d) in [
            ("populate", &self.deltas.populate),
            ("PTE-mapping", &self.deltas.split),
            ("during the run", &self.deltas.run),
        ] {
            let Some(d) = d else { continue };
            let shown: Vec<String> = d
                .vmstat
                .iter()
                .chain(d.mthp.iter())
                .filter(|(k, v)| {
                    **v != 0
                        && (k.starts_with("thp_fault")
                            || k.starts_with("thp_split")
                            || k.starts_with("thp_collapse")
                            || k.ends_with("anon_fault_alloc")
                            || k.ends_with("anon_fault_fallback"))
                })
                .map(|(k, v)| format!("{k} {v:+}"))
                .collect();
            if !shown.is_empty() {
                let _ = write!(s, "; {stage}: {}", shown.join(", "));
            }
        }
        s
    }

    /// One line saying why the layout is not as asked (empty when it is).
    pub fn failure(&self) -> String {
        if self.ok {
            return String::new();
        }
        if self.level == Level::None {
            return format!(
                "cannot verify layout {}: {}",
                self.layout,
                self.observation.unavailable.join("; ")
            );
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|c| c.decisive && !c.ok)
            .map(|c| c.detail.as_str())
            .collect();
        format!(
            "layout is not {} ({}, verification {}): {}",
            self.layout,
            self.stage,
            self.level,
            failed.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagemap::OrderCount;
    use std::collections::BTreeMap;

    const MEM: u64 = 8 << 20;
    const PAGES: u64 = MEM / 4096;

    fn smaps(rss_kb: u64, huge_kb: u64, flag: &str) -> RangeSmaps {
        RangeSmaps {
            vmas: 1,
            single_exact_vma: true,
            rss_kb,
            anonymous_kb: rss_kb,
            anon_huge_kb: huge_kb,
            thp_eligible: Some(1),
            vm_flags: vec!["rd".into(), "wr".into(), flag.into()],
        }
    }

    fn hist(order: u32) -> Histogram {
        Histogram {
            pages: PAGES,
            present: PAGES,
            exclusive: PAGES,
            orders: BTreeMap::from([(
                order,
                OrderCount {
                    folios: PAGES >> order,
                    pages: PAGES,
                },
            )]),
            ..Default::default()
        }
    }

    fn flags() -> PagemapFlags {
        PagemapFlags {
            pages: PAGES,
            present: PAGES,
            swapped: 0,
            exclusive: PAGES,
            pfn_visible: true,
        }
    }

    fn counters(vm: &[(&str, i64)], mthp: &[(&str, i64)]) -> MmCounters {
        MmCounters {
            vmstat: vm.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            mthp: mthp.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn pte_order9_full_passes() {
        let obs = Observation {
            pagemap: Some(flags()),
            histogram: Some(hist(9)),
            smaps: Some(smaps(MEM / 1024, 0, "nh")),
            unavailable: vec![],
        };
        let d = Deltas {
            populate: Some(counters(&[("thp_fault_alloc", 4)], &[])),
            split: Some(counters(
                &[("thp_split_pmd", 4), ("thp_split_page", 0)],
                &[],
            )),
            smaps_before_split: Some(smaps(MEM / 1024, MEM / 1024, "hg")),
            run: None,
        };
        let r = judge(RealLayout::PteOrder9, MEM, "before", obs, d, false);
        assert_eq!(r.level, Level::Full);
        assert!(r.ok, "{}", r.failure());
        assert!(
            r.summary()
                .starts_with("verified pte-order9 (before, full): ")
        );
        assert!(
            r.summary().contains("; PTE-mapping: thp_split_pmd +4"),
            "{}",
            r.summary()
        );
        assert_eq!(r.failure(), "");
    }

    #[test]
    fn order0_where_pte_order9_was_asked_is_refused() {
        let obs = Observation {
            pagemap: Some(flags()),
            histogram: Some(hist(0)),
            smaps: Some(smaps(MEM / 1024, 0, "hg")),
            unavailable: vec![],
        };
        let d = Deltas {
            populate: Some(counters(&[("thp_fault_alloc", 0)], &[])),
            ..Default::default()
        };
        let r = judge(RealLayout::PteOrder9, MEM, "before", obs, d, false);
        assert!(!r.ok);
        let f = r.failure();
        assert!(
            f.starts_with("layout is not pte-order9 (before, verification full): "),
            "{f}"
        );
        assert!(f.contains("0 of 2048 pages in order-9 folios"), "{f}");
        assert!(
            f.contains("thp_fault_alloc +0 (expected at least +4)"),
            "{f}"
        );
        assert!(!f.contains('\n'));
    }

    #[test]
    fn global_counter_noise_is_informational_at_full_level_only() {
        let obs = || Observation {
            pagemap: Some(flags()),
            histogram: Some(hist(0)),
            smaps: Some(smaps(MEM / 1024, 0, "nh")),
            unavailable: vec![],
        };
        let noisy = || Deltas {
            populate: Some(counters(&[("thp_fault_alloc", 3)], &[])),
            ..Default::default()
        };
        let r = judge(RealLayout::Order0, MEM, "before", obs(), noisy(), false);
        assert_eq!(r.level, Level::Full);
        assert!(r.ok, "{}", r.failure());
        assert!(r.checks.iter().any(|c| !c.ok && !c.decisive));

        let mut o = obs();
        o.histogram = None;
        let r = judge(RealLayout::Order0, MEM, "before", o, noisy(), false);
        assert_eq!(r.level, Level::Partial);
        assert!(!r.ok);
    }

    #[test]
    fn partial_level_pmd_order9_uses_smaps() {
        let obs = Observation {
            pagemap: Some(PagemapFlags {
                pfn_visible: false,
                ..flags()
            }),
            histogram: None,
            smaps: Some(smaps(MEM / 1024, MEM / 1024, "hg")),
            unavailable: vec!["PFNs are hidden".into()],
        };
        let d = Deltas {
            populate: Some(counters(&[("thp_fault_alloc", 4)], &[])),
            ..Default::default()
        };
        let r = judge(
            RealLayout::PmdOrder9,
            MEM,
            "before",
            obs.clone(),
            d.clone(),
            false,
        );
        assert_eq!(r.level, Level::Partial);
        assert!(r.ok, "{}", r.failure());
        // The same smaps cannot pass as PTE-mapped.
        let r = judge(RealLayout::PteOrder9, MEM, "before", obs, d, false);
        assert!(!r.ok);
        assert!(r.failure().contains("AnonHugePages 8192 kB (expected 0 kB"));
    }

    #[test]
    fn nothing_readable_is_level_none_and_refused() {
        let obs = Observation {
            unavailable: vec!["/proc/self/smaps: Permission denied".into()],
            ..Default::default()
        };
        let r = judge(
            RealLayout::Order0,
            MEM,
            "before",
            obs,
            Deltas::default(),
            false,
        );
        assert_eq!(r.level, Level::None);
        assert!(!r.ok);
        assert_eq!(
            r.failure(),
            "cannot verify layout order0: /proc/self/smaps: Permission denied"
        );
    }

    /// An 8 MiB mix-64k region as built: 64 even blocks of one 64K folio, 64 odd blocks of 16
    /// order-0 pages (`arranged`), or the same totals in another arrangement.
    fn mix_64k_hist(arranged: bool) -> Histogram {
        let half = PAGES / 2;
        let blocks = PAGES / 16;
        Histogram {
            pages: PAGES,
            present: PAGES,
            exclusive: PAGES,
            orders: BTreeMap::from([
                (
                    0,
                    OrderCount {
                        folios: half,
                        pages: half,
                    },
                ),
                (
                    4,
                    OrderCount {
                        folios: half / 16,
                        pages: half,
                    },
                ),
            ]),
            blocks: Some(pagemap::BlockTally {
                block_pages: 16,
                blocks,
                even_one_folio: if arranged { blocks / 2 } else { blocks / 4 },
                even_all_order0: if arranged { 0 } else { blocks / 4 },
                odd_one_folio: if arranged { 0 } else { blocks / 4 },
                odd_all_order0: if arranged { blocks / 2 } else { blocks / 4 },
            }),
            ..Default::default()
        }
    }

    fn mix_64k_populate() -> Deltas {
        Deltas {
            populate: Some(counters(
                &[("thp_fault_alloc", 0)],
                &[
                    ("64kB/anon_fault_alloc", 64),
                    ("64kB/anon_fault_fallback", 0),
                ],
            )),
            ..Default::default()
        }
    }

    #[test]
    fn mix_64k_is_verified_block_by_block() {
        let obs = |h| Observation {
            pagemap: Some(flags()),
            histogram: Some(h),
            smaps: Some(smaps(MEM / 1024, 0, "mr")),
            unavailable: vec![],
        };
        let r = judge(
            RealLayout::Mix64k,
            MEM,
            "before",
            obs(mix_64k_hist(true)),
            mix_64k_populate(),
            false,
        );
        assert!(r.ok, "{}", r.failure());
        assert!(
            r.summary().contains(
                "16-page blocks: even 64: 64 one folio, 0 all order-0; odd 64: 0 one folio, 64 all order-0; 0 other"
            ),
            "{}",
            r.summary()
        );
        // Right totals, wrong arrangement: only the per-block check sees it.
        let r = judge(
            RealLayout::Mix64k,
            MEM,
            "before",
            obs(mix_64k_hist(false)),
            mix_64k_populate(),
            false,
        );
        assert!(!r.ok);
        let failed: Vec<&str> = r
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["per block"]);
        // Uniform 64K folios (the knob was `always` during the order-0 touch): refused.
        let r = judge(
            RealLayout::Mix64k,
            MEM,
            "before",
            obs(hist(4)),
            mix_64k_populate(),
            false,
        );
        assert!(!r.ok);
        assert!(
            r.failure().contains("0 order-0 (expected 1024)"),
            "{}",
            r.failure()
        );
        // Without kpageflags (partial level) the counters decide: a 64K fallback is refused.
        let partial = Observation {
            histogram: None,
            ..obs(mix_64k_hist(true))
        };
        let r = judge(
            RealLayout::Mix64k,
            MEM,
            "before",
            partial.clone(),
            mix_64k_populate(),
            false,
        );
        assert_eq!(r.level, Level::Partial);
        assert!(r.ok, "{}", r.failure());
        let mut d = mix_64k_populate();
        d.populate = Some(counters(
            &[("thp_fault_alloc", 0)],
            &[
                ("64kB/anon_fault_alloc", 64),
                ("64kB/anon_fault_fallback", 3),
            ],
        ));
        let r = judge(RealLayout::Mix64k, MEM, "before", partial, d, false);
        assert!(!r.ok);
        assert!(
            r.failure().contains("64kB/anon_fault_fallback +3"),
            "{}",
            r.failure()
        );
    }

    #[test]
    fn mix_pmd_needs_half_the_region_pmd_mapped() {
        let chunks = PAGES / 512;
        let mut h = hist(9);
        h.blocks = Some(pagemap::BlockTally {
            block_pages: 512,
            blocks: chunks,
            even_one_folio: chunks / 2,
            odd_one_folio: chunks / 2,
            ..Default::default()
        });
        let obs = |huge_kb| Observation {
            pagemap: Some(flags()),
            histogram: Some(h.clone()),
            smaps: Some(smaps(MEM / 1024, huge_kb, "nh")),
            unavailable: vec![],
        };
        let d = Deltas {
            populate: Some(counters(
                &[("thp_fault_alloc", 4), ("thp_fault_fallback", 0)],
                &[],
            )),
            split: Some(counters(
                &[("thp_split_pmd", 2), ("thp_split_page", 0)],
                &[],
            )),
            smaps_before_split: Some(smaps(MEM / 1024, MEM / 1024, "hg")),
            run: None,
        };
        let r = judge(
            RealLayout::MixPmd,
            MEM,
            "before",
            obs(MEM / 2048),
            d.clone(),
            false,
        );
        assert!(r.ok, "{}", r.failure());
        // Every chunk still PMD-mapped, or none: not the mix.
        for huge_kb in [MEM / 1024, 0] {
            let r = judge(
                RealLayout::MixPmd,
                MEM,
                "before",
                obs(huge_kb),
                d.clone(),
                false,
            );
            assert!(!r.ok, "{huge_kb}");
            assert!(
                r.failure().contains(&format!(
                    "AnonHugePages {huge_kb} kB (expected {} kB",
                    MEM / 2048
                )),
                "{}",
                r.failure()
            );
        }
        // Fewer PMD splits than odd chunks: refused.
        let mut short = d.clone();
        short.split = Some(counters(
            &[("thp_split_pmd", 1), ("thp_split_page", 0)],
            &[],
        ));
        assert!(
            !judge(
                RealLayout::MixPmd,
                MEM,
                "before",
                obs(MEM / 2048),
                short,
                false
            )
            .ok
        );
        // Without a block tally a mixed layout is not verified at full level.
        let mut no_tally = obs(MEM / 2048);
        if let Some(h) = no_tally.histogram.as_mut() {
            h.blocks = None;
        }
        let r = judge(RealLayout::MixPmd, MEM, "before", no_tally, d, false);
        assert!(!r.ok);
        assert!(r.failure().contains("no block tally"), "{}", r.failure());
    }

    #[test]
    fn after_run_requires_exclusive_pages_and_mthp_counters() {
        let mut f = flags();
        f.exclusive = PAGES - 16;
        let obs = Observation {
            pagemap: Some(f),
            histogram: Some(hist(4)),
            smaps: Some(smaps(MEM / 1024, 0, "")),
            unavailable: vec![],
        };
        let d = Deltas {
            run: Some(counters(&[], &[("64kB/split", 0)])),
            ..Default::default()
        };
        let r = judge(
            RealLayout::Mthp { kb: 64 },
            MEM,
            "after run 0",
            obs,
            d,
            true,
        );
        assert!(!r.ok);
        assert!(
            r.failure().contains("mapped exclusively"),
            "{}",
            r.failure()
        );
    }

    #[test]
    fn a_counter_the_kernel_lacks_is_not_available_not_plus_zero() {
        // A 6.1-like kernel: no per-size mTHP stats, and (here) no thp_split_page either.
        let obs = || Observation {
            pagemap: Some(flags()),
            histogram: Some(hist(9)),
            smaps: Some(smaps(MEM / 1024, 0, "nh")),
            unavailable: vec![],
        };
        let d = Deltas {
            populate: Some(counters(&[("thp_fault_alloc", 4)], &[])),
            split: Some(counters(&[("thp_split_pmd", 4)], &[])),
            ..Default::default()
        };
        let r = judge(RealLayout::PteOrder9, MEM, "before", obs(), d, false);
        for name in ["thp_split_page", "2048kB/nr_anon_partially_mapped"] {
            let c = r.checks.iter().find(|c| c.name == name).unwrap();
            assert!(!c.ok && !c.decisive, "{c:?}");
            assert_eq!(
                c.detail,
                format!("{name} not available on this kernel (expected +0)")
            );
        }
        // The per-page evidence still decides.
        assert!(r.ok, "{}", r.failure());

        // Without per-page evidence a missing "at least" counter cannot make it pass either.
        let d = Deltas {
            populate: Some(counters(&[], &[])),
            ..Default::default()
        };
        let r = judge(RealLayout::PmdOrder9, MEM, "before", obs(), d, false);
        let c = r
            .checks
            .iter()
            .find(|c| c.name == "thp_fault_alloc")
            .unwrap();
        assert_eq!(
            c.detail,
            "thp_fault_alloc not available on this kernel (expected at least +4)"
        );
        assert!(!c.ok);
        let r = judge(
            RealLayout::Order0,
            MEM,
            "before",
            obs(),
            Deltas {
                populate: Some(counters(&[("thp_fault_alloc", 0)], &[])),
                ..Default::default()
            },
            false,
        );
        let c = r
            .checks
            .iter()
            .find(|c| c.name.starts_with("mTHP"))
            .unwrap();
        assert!(c.detail.contains("not available on this kernel"), "{c:?}");
    }

    #[test]
    fn untouched_expects_nothing_present() {
        let obs = Observation {
            pagemap: Some(PagemapFlags {
                pages: PAGES,
                ..Default::default()
            }),
            histogram: Some(Histogram {
                pages: PAGES,
                ..Default::default()
            }),
            smaps: Some(smaps(0, 0, "")),
            unavailable: vec![],
        };
        let r = judge(
            RealLayout::Untouched,
            MEM,
            "before",
            obs,
            Deltas::default(),
            false,
        );
        assert!(r.ok, "{}", r.failure());
        assert!(r.summary().contains("no present pages"), "{}", r.summary());
    }
}
