//! The folio layouts the benchmark can set up ([`RealLayout`], named in the contract), and what
//! the kernel's THP sysfs tree says about which of them are possible on this host.
//!
//! | layout | how it is made | expected folios |
//! |---|---|---|
//! | `order0` | `MADV_NOHUGEPAGE`, write every page | order 0 only |
//! | `pte-order9` | `MADV_HUGEPAGE`, write every page, then per 2 MiB `mprotect(+4K, 4K, R)` and back | order 9, PTE-mapped (the folio is not split) |
//! | `pmd-order9` | `MADV_HUGEPAGE`, write every page | order 9, PMD-mapped |
//! | `mthp-<N>k` | no madvise; only while populating, `hugepages-<N>kB/enabled` = `always` and each larger size that is effectively `always` = `never` | order log2(N/4), PTE-mapped |
//! | `untouched` | nothing (the VMA has no pages, so fork skips it) | none |
//!
//! The layouts assume 4 KiB base pages (order 9 = a 2 MiB PMD); [`check_page_size`] refuses
//! 16K and 64K kernels (Asahi on M2, some arm64 distributions) as "not supported here".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layouts are the contract's words; what they need from the host is here.
pub use contract::{PAGE_SIZE, PMD_SIZE, RealLayout};

/// Check the kernel's base page size (`sysconf(_SC_PAGESIZE)`; `None` = unknown). Only 4 KiB is
/// supported: with 16K or 64K pages the folio orders and the PMD size of every layout differ.
pub fn check_page_size(page_size: Option<u64>) -> Result<(), String> {
    match page_size {
        Some(PAGE_SIZE) => Ok(()),
        Some(p) => Err(format!(
            "this kernel uses {} KiB pages; forkbench real supports 4 KiB pages only \
             (its layouts' folio orders and 2 MiB PMD size assume 4K)",
            p / 1024
        )),
        None => Err("cannot read the kernel's page size (sysconf(_SC_PAGESIZE))".into()),
    }
}

/// Where the kernel's THP knobs live.
pub const THP_ROOT: &str = "/sys/kernel/mm/transparent_hugepage";

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

    /// Sizes above `kb` whose effective setting is `always` (directly or inherited from the
    /// top-level `enabled`), ascending. The fault path tries the largest eligible order first,
    /// and for a VMA without madvise that is every such size: an `mthp-<kb>k` populate switches
    /// their own knobs to `never` for its duration.
    pub fn larger_always(&self, kb: u64) -> Vec<u64> {
        self.sizes
            .keys()
            .copied()
            .filter(|&k| k > kb && self.effective(k) == Effective::Always)
            .collect()
    }

    /// Sizes other than `kb` whose effective setting is `always`, ascending: a `mix-64k`
    /// populate switches them all off, since a smaller size would take the order-0 blocks'
    /// empty pages and a larger one the mTHP blocks.
    pub fn always_except(&self, kb: u64) -> Vec<u64> {
        self.sizes
            .keys()
            .copied()
            .filter(|&k| k != kb && self.effective(k) == Effective::Always)
            .collect()
    }

    /// Check that `layout` can be produced here; the error is one line for the user.
    pub fn check(&self, layout: RealLayout) -> Result<(), String> {
        if (layout.needs_pmd_thp() || layout.mthp_knob_kb().is_some()) && self.enabled.is_none() {
            return Err(format!(
                "no THP available: {} does not exist (kernel without CONFIG_TRANSPARENT_HUGEPAGE?)",
                self.root.join("enabled").display()
            ));
        }
        match layout {
            RealLayout::PteOrder9 | RealLayout::PmdOrder9 | RealLayout::MixPmd => {
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
            RealLayout::Mthp { .. } | RealLayout::Mix64k => {
                // mix-64k's even blocks are 64K mTHPs: it needs that size like mthp-64k.
                let kb = layout.mthp_knob_kb().unwrap_or_default();
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
                // Larger sizes that are `always` would win the fault: the runner switches
                // them off while populating (see `larger_always`).
            }
            RealLayout::Order0 | RealLayout::Untouched => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spellings_realfork_documents_parse() {
        for s in [
            "order0",
            "pte-order9",
            "pmd-order9",
            "untouched",
            "mthp-64k",
            "mthp-16k",
        ] {
            assert_eq!(s.parse::<RealLayout>().unwrap().to_string(), s);
        }
        for (s, kb) in [("mthp-64K", 64), ("mthp-64kB", 64), ("mthp-1m", 1024)] {
            assert_eq!(
                s.parse::<RealLayout>().unwrap(),
                RealLayout::Mthp { kb },
                "{s}"
            );
        }
        for bad in [
            "order9", "mthp-", "mthp-64", "mthp-48k", "mthp-4k", "mthp-xk", "", "Order0",
        ] {
            let e = bad.parse::<RealLayout>().unwrap_err();
            assert!(
                e.to_string().contains("layout") || e.what == "mTHP size",
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn folio_orders() {
        assert_eq!(RealLayout::Order0.folio_order(), Some(0));
        assert_eq!(RealLayout::PteOrder9.folio_order(), Some(9));
        assert_eq!(RealLayout::Mthp { kb: 64 }.folio_order(), Some(4));
        assert_eq!(RealLayout::Mthp { kb: 16 }.folio_order(), Some(2));
        assert_eq!(RealLayout::Mthp { kb: 1024 }.folio_order(), Some(8));
        assert_eq!(RealLayout::Untouched.folio_order(), None);
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
        assert!(t.check(RealLayout::PteOrder9).is_ok());
        assert!(t.check(RealLayout::Mthp { kb: 64 }).is_ok());
        let e = t.check(RealLayout::Mthp { kb: 32 }).unwrap_err();
        assert_eq!(
            e,
            "mTHP size 32k is not offered by this kernel (offered: mthp-16k, mthp-64k)"
        );
        assert!(t.check(RealLayout::Mthp { kb: 8 }).is_err());
        assert!(
            t.check(RealLayout::Mthp { kb: 2048 })
                .unwrap_err()
                .contains("pmd-order9")
        );
    }

    #[test]
    fn mixed_layouts_need_what_their_halves_need() {
        let d = fake_tree(
            "madvise",
            &[(16, "never"), (64, "never"), (2048, "inherit")],
        );
        let t = ThpInfo::read(d.path());
        assert_eq!(t.check(RealLayout::Mix64k), Ok(()));
        assert_eq!(t.check(RealLayout::MixPmd), Ok(()));
        // No 64K size: mix-64k cannot be built, mix-pmd still can.
        let d = fake_tree("madvise", &[(16, "never"), (2048, "inherit")]);
        let t = ThpInfo::read(d.path());
        assert_eq!(
            t.check(RealLayout::Mix64k).unwrap_err(),
            "mTHP size 64k is not offered by this kernel (offered: mthp-16k)"
        );
        assert_eq!(t.check(RealLayout::MixPmd), Ok(()));
        // THP `never`: mix-pmd is refused like pmd-order9.
        let d = fake_tree("never", &[(64, "never"), (2048, "inherit")]);
        let e = ThpInfo::read(d.path())
            .check(RealLayout::MixPmd)
            .unwrap_err();
        assert!(e.starts_with("no THP available for mix-pmd"), "{e}");
        assert_eq!(RealLayout::Mix64k.folio_order(), None);
    }

    #[test]
    fn no_thp_is_refused_and_larger_sizes_always_are_listed_for_switching_off() {
        let d = fake_tree("never", &[(64, "never"), (2048, "inherit")]);
        let t = ThpInfo::read(d.path());
        let e = t.check(RealLayout::PmdOrder9).unwrap_err();
        assert!(e.starts_with("no THP available for pmd-order9"), "{e}");
        assert!(t.check(RealLayout::Order0).is_ok());
        assert!(t.larger_always(64).is_empty());

        // Debian's default: top-level `always`, every size `inherit` but 64k.
        let d = fake_tree(
            "always",
            &[
                (16, "inherit"),
                (64, "never"),
                (128, "madvise"),
                (256, "always"),
                (2048, "inherit"),
            ],
        );
        let t = ThpInfo::read(d.path());
        assert_eq!(t.check(RealLayout::Mthp { kb: 64 }), Ok(()));
        assert_eq!(t.larger_always(64), vec![256, 2048]);
        assert_eq!(t.larger_always(16), vec![256, 2048]);
        assert_eq!(t.always_except(64), vec![16, 256, 2048]);
        assert_eq!(t.always_except(256), vec![16, 2048]);
        assert!(t.larger_always(2048).is_empty());

        let d = tempfile::tempdir().unwrap();
        let e = ThpInfo::read(&d.path().join("missing"))
            .check(RealLayout::PteOrder9)
            .unwrap_err();
        assert!(e.starts_with("no THP available"), "{e}");
    }

    #[test]
    fn only_4k_pages_are_supported() {
        assert_eq!(check_page_size(Some(4096)), Ok(()));
        for (size, kib) in [(16384, 16), (65536, 64)] {
            let e = check_page_size(Some(size)).unwrap_err();
            assert!(
                e.starts_with(&format!("this kernel uses {kib} KiB pages; ")),
                "{e}"
            );
            assert!(!e.contains('\n'));
        }
        assert!(check_page_size(None).is_err());
        assert_eq!(check_page_size(hostenv::page_size()), Ok(()), "this host");
    }
}
