//! `/proc/self/smaps`: the VMAs overlapping a range and their Rss, Anonymous, AnonHugePages and
//! THPeligible. AnonHugePages counts PMD-mapped THP only, which is how PMD- and PTE-mapped
//! order-9 folios are told apart without privileges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One VMA of smaps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vma {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    /// `Name: value` fields; sizes in kB as printed.
    pub fields: BTreeMap<String, u64>,
    pub vm_flags: Vec<String>,
}

fn parse_header(line: &str) -> Option<(u64, u64, String)> {
    let mut it = line.split_whitespace();
    let range = it.next()?;
    let perms = it.next()?;
    let (a, b) = range.split_once('-')?;
    let a = u64::from_str_radix(a, 16).ok()?;
    let b = u64::from_str_radix(b, 16).ok()?;
    // The device field of a header looks like "00:00"; field lines end with ':' on the name.
    if perms.len() != 4 {
        return None;
    }
    Some((a, b, perms.to_string()))
}

/// Parse smaps text into VMAs.
pub fn parse(text: &str) -> Vec<Vma> {
    let mut out: Vec<Vma> = Vec::new();
    for line in text.lines() {
        if let Some((start, end, perms)) = parse_header(line) {
            out.push(Vma {
                start,
                end,
                perms,
                ..Default::default()
            });
            continue;
        }
        let Some(v) = out.last_mut() else { continue };
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        if k == "VmFlags" {
            v.vm_flags = rest.split_whitespace().map(str::to_string).collect();
        } else if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
            v.fields.insert(k.to_string(), n);
        }
    }
    out
}

/// smaps summed over the VMAs that overlap `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RangeSmaps {
    /// VMAs overlapping the range.
    pub vmas: u64,
    /// Exactly one VMA, and it is exactly the range.
    pub single_exact_vma: bool,
    pub rss_kb: u64,
    pub anonymous_kb: u64,
    pub anon_huge_kb: u64,
    /// THPeligible of the (first) VMA.
    pub thp_eligible: Option<u64>,
    /// VmFlags of the (first) VMA (`hg` = MADV_HUGEPAGE, `nh` = MADV_NOHUGEPAGE).
    pub vm_flags: Vec<String>,
}

/// Sum the VMAs overlapping `[start, end)`.
pub fn for_range(vmas: &[Vma], start: u64, end: u64) -> RangeSmaps {
    let hits: Vec<&Vma> = vmas
        .iter()
        .filter(|v| v.start < end && start < v.end)
        .collect();
    let sum = |k: &str| {
        hits.iter()
            .map(|v| v.fields.get(k).copied().unwrap_or(0))
            .sum()
    };
    RangeSmaps {
        vmas: hits.len() as u64,
        single_exact_vma: hits.len() == 1 && hits[0].start == start && hits[0].end == end,
        rss_kb: sum("Rss"),
        anonymous_kb: sum("Anonymous"),
        anon_huge_kb: sum("AnonHugePages"),
        thp_eligible: hits
            .first()
            .and_then(|v| v.fields.get("THPeligible").copied()),
        vm_flags: hits.first().map(|v| v.vm_flags.clone()).unwrap_or_default(),
    }
}

/// Read `/proc/self/smaps` and summarise `[start, end)`.
pub fn read_range(start: u64, end: u64) -> std::io::Result<RangeSmaps> {
    let text = std::fs::read_to_string("/proc/self/smaps")?;
    Ok(for_range(&parse(&text), start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
55d0a0000000-55d0a0001000 r--p 00000000 fd:01 1234    /usr/bin/x
Size:                  4 kB
Rss:                   4 kB
VmFlags: rd mr mw me
7f0000000000-7f0040000000 rw-p 00000000 00:00 0
Size:            1048576 kB
KernelPageSize:        4 kB
Rss:             1048576 kB
Anonymous:       1048576 kB
AnonHugePages:   1048576 kB
THPeligible:    1
VmFlags: rd wr mr mw me ac hg
7f0040000000-7f0040001000 ---p 00000000 00:00 0
Rss:                   0 kB
THPeligible:    0
VmFlags: mr mw me
";

    #[test]
    fn parses_vmas_and_fields() {
        let v = parse(SMAPS);
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].start, 0x7f00_0000_0000);
        assert_eq!(v[1].fields["AnonHugePages"], 1_048_576);
        assert_eq!(v[1].fields["THPeligible"], 1);
        assert_eq!(v[1].perms, "rw-p");
        assert!(v[1].vm_flags.contains(&"hg".to_string()));
    }

    #[test]
    fn range_summary() {
        let v = parse(SMAPS);
        let r = for_range(&v, 0x7f00_0000_0000, 0x7f00_4000_0000);
        assert!(r.single_exact_vma);
        assert_eq!(r.anon_huge_kb, 1_048_576);
        assert_eq!(r.thp_eligible, Some(1));
        let r = for_range(&v, 0x7f00_0000_0000, 0x7f00_4000_1000);
        assert_eq!(r.vmas, 2);
        assert!(!r.single_exact_vma);
        let r = for_range(&v, 0x1000, 0x2000);
        assert_eq!(r.vmas, 0);
        assert_eq!(r.thp_eligible, None);
    }
}
