//! The folio layouts the benchmark can set up, and what the kernel's THP sysfs tree says about
//! which of them are possible on this host.
//!
//! | layout | how it is made | expected folios |
//! |---|---|---|
//! | `order0` | `MADV_NOHUGEPAGE`, write every page | order 0 only |
//! | `pte-order9` | `MADV_HUGEPAGE`, write every page, then per 2 MiB `mprotect(+4K, 4K, R)` and back | order 9, PTE-mapped (the folio is not split) |
//! | `pmd-order9` | `MADV_HUGEPAGE`, write every page | order 9, PMD-mapped |
//! | `mthp-<N>k` | no madvise; `hugepages-<N>kB/enabled` = `always` only while populating | order log2(N/4), PTE-mapped |
//! | `untouched` | nothing (the VMA has no pages, so fork skips it) | none |

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the kernel's THP knobs live.
pub const THP_ROOT: &str = "/sys/kernel/mm/transparent_hugepage";

/// Base page size assumed by the layouts (x86_64, arm64 with 4K pages).
pub const PAGE_SIZE: u64 = 4096;
/// PMD size with 4 KiB pages.
pub const PMD_SIZE: u64 = 2 << 20;

/// A memory layout to fork over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    Order0,
    PteOrder9,
    PmdOrder9,
    /// An mTHP size in KiB (a power of two between 8 KiB and the PMD size, exclusive).
    Mthp {
        kb: u64,
    },
    Untouched,
}

impl Layout {
    /// Folio order every populated page should be in; `None` for `untouched`.
    pub fn folio_order(self) -> Option<u32> {
        match self {
            Layout::Order0 => Some(0),
            Layout::PteOrder9 | Layout::PmdOrder9 => Some(9),
            Layout::Mthp { kb } => Some((kb / (PAGE_SIZE / 1024)).trailing_zeros()),
            Layout::Untouched => None,
        }
    }

    /// Whether the layout writes its pages.
    pub fn populated(self) -> bool {
        !matches!(self, Layout::Untouched)
    }

    /// Whether the layout needs PMD-sized THP.
    pub fn needs_pmd_thp(self) -> bool {
        matches!(self, Layout::PteOrder9 | Layout::PmdOrder9)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layout::Order0 => f.write_str("order0"),
            Layout::PteOrder9 => f.write_str("pte-order9"),
            Layout::PmdOrder9 => f.write_str("pmd-order9"),
            Layout::Mthp { kb } => write!(f, "mthp-{kb}k"),
            Layout::Untouched => f.write_str("untouched"),
        }
    }
}

/// Why a layout name was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutParseError(pub String);

impl fmt::Display for LayoutParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Layout {
    type Err = LayoutParseError;

    /// `order0`, `pte-order9`, `pmd-order9`, `untouched`, or `mthp-<N>k` (`k`, `K`, `kB` and
    /// `kb` are accepted, as is `mthp-<N>m`). Whether the kernel offers the size is checked later.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected =
            "expected order0, pte-order9, pmd-order9, mthp-<size> (e.g. mthp-64k) or untouched";
        match s {
            "order0" => return Ok(Layout::Order0),
            "pte-order9" => return Ok(Layout::PteOrder9),
            "pmd-order9" => return Ok(Layout::PmdOrder9),
            "untouched" => return Ok(Layout::Untouched),
            _ => {}
        }
        let Some(size) = s.strip_prefix("mthp-") else {
            return Err(LayoutParseError(format!(
                "unknown layout {s:?}: {expected}"
            )));
        };
        let lower = size.to_ascii_lowercase();
        let (num, mult) = if let Some(n) = lower.strip_suffix("kb").or(lower.strip_suffix('k')) {
            (n, 1)
        } else if let Some(n) = lower.strip_suffix("mb").or(lower.strip_suffix('m')) {
            (n, 1024)
        } else {
            return Err(LayoutParseError(format!(
                "unknown layout {s:?}: an mTHP size needs a unit, e.g. mthp-64k"
            )));
        };
        let kb = num
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .filter(|&kb| kb >= 8 && kb.is_power_of_two())
            .ok_or_else(|| {
                LayoutParseError(format!(
                    "unknown layout {s:?}: the mTHP size must be a power of two of at least 8k"
                ))
            })?;
        Ok(Layout::Mthp { kb })
    }
}

/// A THP setting as the fault path sees it for one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effective {
    Always,
    Madvise,
    Never,
}

/// What the THP sysfs tree offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThpInfo {
    pub root: PathBuf,
    /// Selected value of `enabled`; `None` if THP is not built in.
    pub enabled: Option<String>,
    /// PMD THP size in KiB (`hpage_pmd_size`).
    pub pmd_kb: u64,
    /// Anonymous THP sizes (those with an `enabled` knob) in KiB → selected value.
    pub sizes: BTreeMap<u64, String>,
}

impl ThpInfo {
    /// Read the tree at `root` (normally [`THP_ROOT`]). Missing files read as absent.
    pub fn read(root: &Path) -> ThpInfo {
        let enabled = hostenv::sysfs::read_selected(root.join("enabled")).ok();
        let pmd_kb = hostenv::sysfs::read_u64(root.join("hpage_pmd_size"))
            .map(|b| b / 1024)
            .unwrap_or(PMD_SIZE / 1024);
        let mut sizes = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(root) {
            for e in dir.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(kb) = name
                    .strip_prefix("hugepages-")
                    .and_then(|n| n.strip_suffix("kB"))
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                if let Ok(v) = hostenv::sysfs::read_selected(e.path().join("enabled")) {
                    sizes.insert(kb, v);
                }
            }
        }
        ThpInfo {
            root: root.to_path_buf(),
            enabled,
            pmd_kb,
            sizes,
        }
    }

    /// The `enabled` knob of one size.
    pub fn size_knob(&self, kb: u64) -> PathBuf {
        self.root.join(format!("hugepages-{kb}kB")).join("enabled")
    }

    /// The stats directory of one size.
    pub fn size_stats(&self, kb: u64) -> PathBuf {
        self.root.join(format!("hugepages-{kb}kB")).join("stats")
    }

    /// mTHP sizes (below the PMD size) that anonymous memory can use, ascending.
    pub fn mthp_sizes(&self) -> Vec<u64> {
        self.sizes
            .keys()
            .copied()
            .filter(|&kb| kb < self.pmd_kb)
            .collect()
    }

    /// How a size behaves for a VMA, resolving `inherit` through the top-level `enabled`.
    pub fn effective(&self, kb: u64) -> Effective {
        let top = match self.enabled.as_deref() {
            Some("always") => Effective::Always,
            Some("madvise") => Effective::Madvise,
            _ => Effective::Never,
        };
        match self.sizes.get(&kb).map(String::as_str) {
            Some("always") => Effective::Always,
            Some("madvise") => Effective::Madvise,
            Some("inherit") => top,
            Some(_) => Effective::Never,
            // Kernels without per-size knobs: the PMD size follows the top-level setting.
            None if kb == self.pmd_kb => top,
            None => Effective::Never,
        }
    }

    /// Check that `layout` can be produced here; the error is one line for the user.
    pub fn check(&self, layout: Layout) -> Result<(), String> {
        if (layout.needs_pmd_thp() || matches!(layout, Layout::Mthp { .. }))
            && self.enabled.is_none()
        {
            return Err(format!(
                "no THP available: {} does not exist (kernel without CONFIG_TRANSPARENT_HUGEPAGE?)",
                self.root.join("enabled").display()
            ));
        }
        match layout {
            Layout::PteOrder9 | Layout::PmdOrder9 => {
                if self.effective(self.pmd_kb) == Effective::Never {
                    return Err(format!(
                        "no THP available for {layout}: transparent_hugepage/enabled is {:?} and hugepages-{}kB/enabled is {:?}; \
                         it needs always or madvise",
                        self.enabled.as_deref().unwrap_or("?"),
                        self.pmd_kb,
                        self.sizes
                            .get(&self.pmd_kb)
                            .map(String::as_str)
                            .unwrap_or("(absent)")
                    ));
                }
            }
            Layout::Mthp { kb } => {
                let offered = self.mthp_sizes();
                if kb >= self.pmd_kb {
                    return Err(format!(
                        "{layout} is not an mTHP size below the PMD size ({}k); use pmd-order9 or pte-order9",
                        self.pmd_kb
                    ));
                }
                if !offered.contains(&kb) {
                    let list: Vec<String> = offered.iter().map(|k| format!("mthp-{k}k")).collect();
                    return Err(format!(
                        "mTHP size {kb}k is not offered by this kernel (offered: {})",
                        if list.is_empty() {
                            "none".to_string()
                        } else {
                            list.join(", ")
                        }
                    ));
                }
                // The fault path tries the largest eligible order first; for a VMA without
                // madvise that is every size whose effective setting is `always`.
                let larger: Vec<String> = self
                    .sizes
                    .keys()
                    .copied()
                    .filter(|&k| k > kb && self.effective(k) == Effective::Always)
                    .map(|k| format!("hugepages-{k}kB"))
                    .collect();
                if !larger.is_empty() {
                    return Err(format!(
                        "{layout} cannot be set up: larger sizes are enabled as always ({}), so faults would use them; \
                         set them to never or madvise",
                        larger.join(", ")
                    ));
                }
            }
            Layout::Order0 | Layout::Untouched => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "order0",
            "pte-order9",
            "pmd-order9",
            "untouched",
            "mthp-64k",
            "mthp-16k",
        ] {
            assert_eq!(s.parse::<Layout>().unwrap().to_string(), s);
        }
        assert_eq!(
            "mthp-64K".parse::<Layout>().unwrap(),
            Layout::Mthp { kb: 64 }
        );
        assert_eq!(
            "mthp-64kB".parse::<Layout>().unwrap(),
            Layout::Mthp { kb: 64 }
        );
        assert_eq!(
            "mthp-1m".parse::<Layout>().unwrap(),
            Layout::Mthp { kb: 1024 }
        );
        for bad in [
            "order9", "mthp-", "mthp-64", "mthp-48k", "mthp-4k", "mthp-xk", "", "Order0",
        ] {
            let e = bad.parse::<Layout>().unwrap_err();
            assert!(e.0.contains("layout"), "{bad}: {e}");
        }
    }

    #[test]
    fn folio_orders() {
        assert_eq!(Layout::Order0.folio_order(), Some(0));
        assert_eq!(Layout::PteOrder9.folio_order(), Some(9));
        assert_eq!(Layout::Mthp { kb: 64 }.folio_order(), Some(4));
        assert_eq!(Layout::Mthp { kb: 16 }.folio_order(), Some(2));
        assert_eq!(Layout::Mthp { kb: 1024 }.folio_order(), Some(8));
        assert_eq!(Layout::Untouched.folio_order(), None);
    }

    fn fake_tree(top: &str, sizes: &[(u64, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let choice = |v: &str| {
            ["always", "inherit", "madvise", "never"]
                .iter()
                .map(|c| {
                    if *c == v {
                        format!("[{c}]")
                    } else {
                        c.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        std::fs::write(d.path().join("enabled"), choice(top)).unwrap();
        std::fs::write(d.path().join("hpage_pmd_size"), "2097152\n").unwrap();
        for (kb, v) in sizes {
            let s = d.path().join(format!("hugepages-{kb}kB"));
            std::fs::create_dir(&s).unwrap();
            std::fs::write(s.join("enabled"), choice(v)).unwrap();
        }
        // A shmem-only size without an `enabled` knob is not offered for anon memory.
        std::fs::create_dir(d.path().join("hugepages-8kB")).unwrap();
        d
    }

    #[test]
    fn thp_info_from_a_fake_tree() {
        let d = fake_tree(
            "madvise",
            &[(16, "never"), (64, "never"), (2048, "inherit")],
        );
        let t = ThpInfo::read(d.path());
        assert_eq!(t.pmd_kb, 2048);
        assert_eq!(t.mthp_sizes(), vec![16, 64]);
        assert_eq!(t.effective(2048), Effective::Madvise);
        assert!(t.check(Layout::PteOrder9).is_ok());
        assert!(t.check(Layout::Mthp { kb: 64 }).is_ok());
        let e = t.check(Layout::Mthp { kb: 32 }).unwrap_err();
        assert_eq!(
            e,
            "mTHP size 32k is not offered by this kernel (offered: mthp-16k, mthp-64k)"
        );
        assert!(t.check(Layout::Mthp { kb: 8 }).is_err());
        assert!(
            t.check(Layout::Mthp { kb: 2048 })
                .unwrap_err()
                .contains("pmd-order9")
        );
    }

    #[test]
    fn no_thp_and_larger_sizes_always_are_refused() {
        let d = fake_tree("never", &[(64, "never"), (2048, "inherit")]);
        let t = ThpInfo::read(d.path());
        let e = t.check(Layout::PmdOrder9).unwrap_err();
        assert!(e.starts_with("no THP available for pmd-order9"), "{e}");
        assert!(t.check(Layout::Order0).is_ok());

        let d = fake_tree(
            "always",
            &[(64, "never"), (128, "never"), (2048, "inherit")],
        );
        let e = ThpInfo::read(d.path())
            .check(Layout::Mthp { kb: 64 })
            .unwrap_err();
        assert!(e.contains("hugepages-2048kB"), "{e}");

        let d = tempfile::tempdir().unwrap();
        let e = ThpInfo::read(&d.path().join("missing"))
            .check(Layout::PteOrder9)
            .unwrap_err();
        assert!(e.starts_with("no THP available"), "{e}");
    }
}
