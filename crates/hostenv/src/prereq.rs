//! What this host lets a benchmark do, read once before it starts: effective user (root or
//! not), the THP mode, each mTHP size and its mode, the core PMUs, `perf_event_paranoid`, SMT
//! and turbo/boost where sysfs shows them. Every reader takes the filesystem root it reads
//! under (`/` on the host, a directory of fixture files in tests) and never fails: a fact that
//! cannot be read is `None` (or empty). What each fact changes is the caller's to say.

use std::path::{Path, PathBuf};

use crate::sysfs;

/// The THP tree, relative to the filesystem root.
const THP_DIR: &str = "sys/kernel/mm/transparent_hugepage";
/// `perf_event_paranoid`, relative to the filesystem root.
const PARANOID: &str = "proc/sys/kernel/perf_event_paranoid";
/// SMT control (`on`, `off`, `forceoff`, `notsupported`, `notimplemented`).
const SMT_CONTROL: &str = "sys/devices/system/cpu/smt/control";
/// Whether sibling threads are online (`1`/`0`).
const SMT_ACTIVE: &str = "sys/devices/system/cpu/smt/active";
/// Boost switch of acpi-cpufreq and amd-pstate (`1` = on).
const CPUFREQ_BOOST: &str = "sys/devices/system/cpu/cpufreq/boost";
/// intel_pstate's turbo switch (`1` = turbo off).
const INTEL_NO_TURBO: &str = "sys/devices/system/cpu/intel_pstate/no_turbo";
/// Where the kernel lists its PMUs.
const PMU_DEVICES: &str = "sys/bus/event_source/devices";

/// Turbo/boost as sysfs shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Boost {
    /// Whether boost/turbo is on.
    pub on: bool,
    /// The file it was read from: `cpufreq/boost` or `intel_pstate/no_turbo`.
    pub source: &'static str,
}

/// The host facts that decide what a benchmark can do here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prereqs {
    /// Effective user id (0 = root).
    pub euid: u32,
    /// Selected value of `transparent_hugepage/enabled`; `None` without THP.
    pub thp: Option<String>,
    /// Per-size knobs `hugepages-<N>kB/enabled`: size in KiB and selected value, ascending
    /// (the PMD size among them).
    pub thp_sizes: Vec<(u64, String)>,
    /// Core (CPU) PMUs; empty when there is none (a VM without a PMU).
    pub core_pmus: Vec<String>,
    pub perf_event_paranoid: Option<i32>,
    /// `smt/control`; `None` when the kernel has no SMT control.
    pub smt_control: Option<String>,
    /// `smt/active`.
    pub smt_active: Option<bool>,
    /// `None` when no boost switch is visible (most VMs).
    pub boost: Option<Boost>,
}

impl Prereqs {
    /// The facts of this host.
    pub fn host() -> Self {
        Prereqs::read(Path::new("/"), crate::geteuid())
    }

    /// The facts under filesystem root `root` for a process of effective user `euid`.
    pub fn read(root: &Path, euid: u32) -> Self {
        let at = |rel: &str| -> PathBuf { root.join(rel) };
        let thp_dir = at(THP_DIR);
        let flag = |rel: &str| {
            sysfs::read_trimmed(at(rel))
                .ok()
                .and_then(|s| parse_flag(&s))
        };
        let boost = match (flag(CPUFREQ_BOOST), flag(INTEL_NO_TURBO)) {
            (Some(on), _) => Some(Boost {
                on,
                source: "cpufreq/boost",
            }),
            (None, Some(no_turbo)) => Some(Boost {
                on: !no_turbo,
                source: "intel_pstate/no_turbo",
            }),
            (None, None) => None,
        };
        Prereqs {
            euid,
            thp: sysfs::read_selected(thp_dir.join("enabled")).ok(),
            thp_sizes: thp_sizes(&thp_dir),
            core_pmus: crate::counters::core_pmus(&at(PMU_DEVICES)),
            perf_event_paranoid: sysfs::read_trimmed(at(PARANOID))
                .ok()
                .and_then(|s| s.parse().ok()),
            smt_control: sysfs::read_trimmed(at(SMT_CONTROL)).ok(),
            smt_active: flag(SMT_ACTIVE),
            boost,
        }
    }

    pub fn is_root(&self) -> bool {
        self.euid == 0
    }

    /// The selected value of the size knob of `kb` KiB, if the kernel has one.
    pub fn size_mode(&self, kb: u64) -> Option<&str> {
        self.thp_sizes
            .iter()
            .find(|(k, _)| *k == kb)
            .map(|(_, m)| m.as_str())
    }
}

/// `1`/`0` (also `on`/`off`, `y`/`n`) as a flag.
pub fn parse_flag(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "on" | "y" | "Y" => Some(true),
        "0" | "off" | "n" | "N" => Some(false),
        _ => None,
    }
}

/// The size in KiB of a per-size THP directory name (`hugepages-64kB` → 64).
pub fn size_dir_kb(name: &str) -> Option<u64> {
    name.strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()
}

/// Per-size knobs under a THP directory: `(KiB, selected value)` of every `hugepages-<N>kB`
/// with an `enabled` file, ascending.
pub fn thp_sizes(thp_dir: &Path) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = std::fs::read_dir(thp_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let kb = size_dir_kb(&e.file_name().to_string_lossy())?;
                    let mode = sysfs::read_selected(e.path().join("enabled")).ok()?;
                    Some((kb, mode))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// The development VM's files: THP madvise, mTHP sizes never, no PMU, paranoid 2, no boost.
    #[test]
    fn a_vm_without_pmu_or_boost() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        put(
            r,
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        for kb in [16, 32, 64, 128, 256, 512, 1024] {
            put(
                r,
                &format!("sys/kernel/mm/transparent_hugepage/hugepages-{kb}kB/enabled"),
                "always inherit madvise [never]\n",
            );
        }
        put(
            r,
            "sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled",
            "always [inherit] madvise never\n",
        );
        // A size directory without a knob is not a size.
        std::fs::create_dir_all(r.join("sys/kernel/mm/transparent_hugepage/hugepages-8kB"))
            .unwrap();
        put(r, "proc/sys/kernel/perf_event_paranoid", "2\n");
        put(r, "sys/devices/system/cpu/smt/control", "notimplemented\n");
        put(r, "sys/devices/system/cpu/smt/active", "0\n");
        std::fs::create_dir_all(r.join("sys/bus/event_source/devices/software")).unwrap();
        let p = Prereqs::read(r, 1000);
        assert!(!p.is_root());
        assert_eq!(p.thp.as_deref(), Some("madvise"));
        assert_eq!(p.thp_sizes.len(), 8);
        assert_eq!(p.thp_sizes[0], (16, "never".to_string()));
        assert_eq!(p.size_mode(2048), Some("inherit"));
        assert_eq!(p.size_mode(8), None);
        assert!(p.core_pmus.is_empty());
        assert_eq!(p.perf_event_paranoid, Some(2));
        assert_eq!(p.smt_control.as_deref(), Some("notimplemented"));
        assert_eq!(p.smt_active, Some(false));
        assert_eq!(p.boost, None);
    }

    /// A bare-metal Intel host: a core PMU, SMT on, turbo read from intel_pstate; cpufreq's
    /// boost file wins when both exist.
    #[test]
    fn bare_metal_with_pmu_smt_and_turbo() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        put(r, "sys/bus/event_source/devices/cpu/type", "4\n");
        put(r, "sys/devices/system/cpu/smt/control", "on\n");
        put(r, "sys/devices/system/cpu/smt/active", "1\n");
        put(r, "sys/devices/system/cpu/intel_pstate/no_turbo", "0\n");
        let p = Prereqs::read(r, 0);
        assert!(p.is_root());
        assert_eq!(p.thp, None);
        assert!(p.thp_sizes.is_empty());
        assert_eq!(p.core_pmus, vec!["cpu".to_string()]);
        assert_eq!(p.perf_event_paranoid, None);
        assert_eq!(p.smt_active, Some(true));
        assert_eq!(
            p.boost,
            Some(Boost {
                on: true,
                source: "intel_pstate/no_turbo"
            })
        );
        put(r, "sys/devices/system/cpu/cpufreq/boost", "0\n");
        assert_eq!(
            Prereqs::read(r, 0).boost.map(|b| (b.on, b.source)),
            Some((false, "cpufreq/boost"))
        );
    }

    #[test]
    fn names_and_flags() {
        assert_eq!(size_dir_kb("hugepages-64kB"), Some(64));
        assert_eq!(size_dir_kb("hugepages-2048kB"), Some(2048));
        assert_eq!(size_dir_kb("hugepages-64k"), None);
        assert_eq!(size_dir_kb("enabled"), None);
        assert_eq!(parse_flag(" 1\n"), Some(true));
        assert_eq!(parse_flag("off"), Some(false));
        assert_eq!(parse_flag("maybe"), None);
    }

    /// The host read never panics and agrees with the process's euid.
    #[test]
    fn the_host_reads() {
        let p = Prereqs::host();
        assert_eq!(p.euid, crate::geteuid());
    }
}
