//! Snapshots of the global THP event counters (`thp_*` and `nr_anon_transparent_hugepages` in
//! `/proc/vmstat`) and of the per-size mTHP stats (`hugepages-<N>kB/stats/*`), and their deltas.
//! These are system-wide: other processes can move them too, which the verifier accounts for.
//! A counter this kernel does not have is absent (`None`), never read as 0.
//! `/proc/vmstat` is read through the `procfs` crate.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Global THP counters at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MmCounters {
    /// `/proc/vmstat` entries starting with `thp_` plus `nr_anon_transparent_hugepages`.
    pub vmstat: BTreeMap<String, i64>,
    /// `"64kB/anon_fault_alloc"` → value, for every size and stats file.
    pub mthp: BTreeMap<String, i64>,
}

/// Keep the vmstat keys the verifier cares about.
pub fn filter_vmstat<'a>(
    all: impl IntoIterator<Item = (&'a String, &'a i64)>,
) -> BTreeMap<String, i64> {
    all.into_iter()
        .filter(|(k, _)| k.starts_with("thp_") || k.as_str() == "nr_anon_transparent_hugepages")
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

impl MmCounters {
    /// Read `/proc/vmstat` and the mTHP stats under `thp_root`; `None` if vmstat is unreadable.
    pub fn read(thp_root: &Path) -> Option<MmCounters> {
        let vmstat = filter_vmstat(&procfs::vmstat().ok()?);
        let mut mthp = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(thp_root) {
            for e in dir.flatten() {
                let size = e.file_name().to_string_lossy().into_owned();
                let Some(size) = size.strip_prefix("hugepages-") else {
                    continue;
                };
                let Ok(stats) = std::fs::read_dir(e.path().join("stats")) else {
                    continue;
                };
                for s in stats.flatten() {
                    if let Some(v) = hostenv::sysfs::read_u64(s.path()) {
                        mthp.insert(
                            format!("{size}/{}", s.file_name().to_string_lossy()),
                            i64::try_from(v).unwrap_or(i64::MAX),
                        );
                    }
                }
            }
        }
        Some(MmCounters { vmstat, mthp })
    }

    /// `self - before` for every key in both.
    pub fn since(&self, before: &MmCounters) -> MmCounters {
        let d = |a: &BTreeMap<String, i64>, b: &BTreeMap<String, i64>| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v - b.get(k)?)))
                .collect()
        };
        MmCounters {
            vmstat: d(&self.vmstat, &before.vmstat),
            mthp: d(&self.mthp, &before.mthp),
        }
    }

    /// A vmstat value; `None` when this kernel does not have the counter (absent is not 0:
    /// a check that needs it must not pass on no evidence).
    pub fn vm(&self, key: &str) -> Option<i64> {
        self.vmstat.get(key).copied()
    }

    /// An mTHP stat of one size; `None` when the kernel has no such stat (e.g. 6.1 has no
    /// per-size stats at all).
    pub fn size_stat(&self, kb: u64, stat: &str) -> Option<i64> {
        self.mthp.get(&format!("{kb}kB/{stat}")).copied()
    }

    /// Only the non-zero entries (for compact reports of deltas).
    pub fn nonzero(&self) -> MmCounters {
        MmCounters {
            vmstat: self
                .vmstat
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            mthp: self
                .mthp
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_and_filters() {
        let all: BTreeMap<String, i64> = [
            ("nr_free_pages", 5),
            ("thp_fault_alloc", 10),
            ("thp_split_pmd", 3),
            ("nr_anon_transparent_hugepages", 2),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let v = filter_vmstat(&all);
        assert_eq!(v.len(), 3);
        let a = MmCounters {
            vmstat: v,
            mthp: BTreeMap::from([("64kB/anon_fault_alloc".into(), 7)]),
        };
        let mut b = a.clone();
        *b.vmstat.get_mut("thp_split_pmd").unwrap() += 512;
        *b.mthp.get_mut("64kB/anon_fault_alloc").unwrap() += 16;
        let d = b.since(&a);
        assert_eq!(d.vm("thp_split_pmd"), Some(512));
        assert_eq!(d.vm("thp_fault_alloc"), Some(0));
        assert_eq!(d.size_stat(64, "anon_fault_alloc"), Some(16));
        assert_eq!(d.nonzero().vmstat.len(), 1);
        // A counter the kernel lacks is absent in the delta too, not 0.
        assert_eq!(d.vm("thp_split_page"), None);
        assert_eq!(d.size_stat(2048, "nr_anon_partially_mapped"), None);
        let mut older = a.clone();
        older.vmstat.remove("thp_split_pmd");
        assert_eq!(b.since(&older).vm("thp_split_pmd"), None);
    }

    #[test]
    fn reads_this_host() {
        let c = MmCounters::read(Path::new(crate::layout::THP_ROOT)).unwrap();
        assert!(c.vmstat.contains_key("thp_fault_alloc"));
    }
}
