//! Host facts every driver asks for, read in one place: CPU model (see [`crate::cpuid`]), host
//! name, kernel release, the host arch in forkbench's spelling, UTC time stamps, per-CPU busy
//! share between two moments, and other running processes by name.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::macros::format_description;

use crate::procfs::{self, CpuTimes};

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The CPU model: `model name` of `/proc/cpuinfo` (x86), else the core design decoded from the
/// MIDR (arm64: e.g. `Neoverse-N1`; see [`crate::cpuid`]); `None` when neither is readable.
/// Never runs lscpu (it may be missing, and its output follows the locale).
pub fn cpu_model() -> Option<String> {
    crate::cpuid::CpuIdentity::host().cpu_model()
}

/// The host name; `unknown` when unreadable.
pub fn hostname() -> String {
    read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into())
}

/// `uname -r`; `unknown` when unreadable.
pub fn kernel_release() -> String {
    read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())
}

/// This host's arch as forkbench spells it (`x86_64`, `arm64`), or Rust's name for others.
pub fn arch_name() -> &'static str {
    contract::Arch::host().map_or(std::env::consts::ARCH, contract::Arch::name)
}

/// A moment in UTC, written two ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtcStamp {
    /// RFC 3339, e.g. `2026-11-25T20:30:00Z`.
    pub rfc3339: String,
    /// For file names, e.g. `20261125T203000Z`.
    pub compact: String,
}

impl UtcStamp {
    /// `secs` since the Unix epoch.
    pub fn at(secs: i64) -> UtcStamp {
        let t = OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let rfc = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        let compact = format_description!("[year][month][day]T[hour][minute][second]Z");
        UtcStamp {
            rfc3339: t.format(&rfc).expect("formats a valid date"),
            compact: t.format(&compact).expect("formats a valid date"),
        }
    }

    /// Now.
    pub fn now() -> UtcStamp {
        UtcStamp::at(OffsetDateTime::now_utc().unix_timestamp())
    }
}

/// Per-CPU tick counters now (empty when `/proc/stat` is unreadable).
pub fn cpu_ticks() -> BTreeMap<usize, CpuTimes> {
    procfs::read_stat().unwrap_or_default()
}

/// Busy % of the busiest CPU other than `pinned` between two [`cpu_ticks`] snapshots.
pub fn other_cpus_busy_pct(
    before: &BTreeMap<usize, CpuTimes>,
    after: &BTreeMap<usize, CpuTimes>,
    pinned: Option<usize>,
) -> Option<f64> {
    procfs::load_between(before, after)
        .into_iter()
        .filter(|(c, l)| Some(*c) != pinned && l.ticks > 0)
        .map(|(_, l)| l.busy_pct)
        .reduce(f64::max)
}

/// % of the pinned CPU's time between two [`cpu_ticks`] snapshots that went to others: its
/// busy time minus `own_ns`, the CPU time of the runner call itself (its process and reaped
/// forks, [`crate::children_cpu_ns`]), over the whole interval; clamped to 0..=100 (tick
/// sampling makes a quiet call's estimate scatter around zero). A CPU hog sharing the pinned
/// CPU shows here, where [`other_cpus_busy_pct`] cannot see it.
pub fn pinned_cpu_foreign_pct(
    before: &BTreeMap<usize, CpuTimes>,
    after: &BTreeMap<usize, CpuTimes>,
    pinned: usize,
    own_ns: u64,
    ticks_per_sec: u64,
) -> Option<f64> {
    let load = procfs::load_between(before, after).remove(&pinned)?;
    if load.ticks == 0 {
        return None;
    }
    let busy_ticks = load.busy_pct / 100.0 * load.ticks as f64;
    let own_ticks = own_ns as f64 * ticks_per_sec as f64 / 1e9;
    Some((100.0 * (busy_ticks - own_ticks) / load.ticks as f64).clamp(0.0, 100.0))
}

/// Pids of running processes whose `comm` is `name`, except `except`, ascending.
pub fn pids_named(name: &str, except: &[u32]) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !except.contains(pid))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_of_known_moments() {
        let s = UtcStamp::at(0);
        assert_eq!(s.rfc3339, "1970-01-01T00:00:00Z");
        assert_eq!(s.compact, "19700101T000000Z");
        // 2024-02-29 (a leap day) 12:34:56.
        let s = UtcStamp::at(1_709_210_096);
        assert_eq!(s.rfc3339, "2024-02-29T12:34:56Z");
        assert_eq!(s.compact, "20240229T123456Z");
        assert!(UtcStamp::now().rfc3339.starts_with("20"));
    }

    #[test]
    fn host_facts_are_readable_here() {
        assert!(!hostname().is_empty());
        assert_ne!(kernel_release(), "unknown");
        assert!(["x86_64", "arm64"].contains(&arch_name()) || !arch_name().is_empty());
        let me = std::process::id();
        let comm = std::fs::read_to_string(format!("/proc/{me}/comm")).unwrap();
        assert!(pids_named(comm.trim(), &[]).contains(&me));
        assert!(!pids_named(comm.trim(), &[me]).contains(&me));
    }

    #[test]
    fn busiest_other_cpu() {
        let t = |total, idle| CpuTimes {
            total,
            idle,
            steal: 0,
        };
        let a = BTreeMap::from([(0, t(100, 50)), (1, t(100, 50)), (2, t(100, 100))]);
        let b = BTreeMap::from([(0, t(200, 60)), (1, t(200, 140)), (2, t(200, 190))]);
        // CPU 0: 90% busy (pinned, ignored); CPU 1: 10%; CPU 2: 10%.
        assert_eq!(other_cpus_busy_pct(&a, &b, Some(0)), Some(10.0));
        assert_eq!(other_cpus_busy_pct(&a, &b, None), Some(90.0));
    }

    #[test]
    fn foreign_share_of_the_pinned_cpu() {
        let t = |total, idle| CpuTimes {
            total,
            idle,
            steal: 0,
        };
        let a = BTreeMap::from([(0, t(100, 50)), (1, t(100, 50))]);
        let b = BTreeMap::from([(0, t(200, 60)), (1, t(200, 140))]);
        // CPU 0: 90 of 100 ticks busy; the call itself ran 0.4 s = 40 ticks at 100 Hz.
        let got = pinned_cpu_foreign_pct(&a, &b, 0, 400_000_000, 100).unwrap();
        assert!((got - 50.0).abs() < 1e-9, "{got}");
        // The call's own time beyond the busy time (tick sampling) clamps at 0.
        assert_eq!(
            pinned_cpu_foreign_pct(&a, &b, 1, 400_000_000, 100),
            Some(0.0)
        );
        assert_eq!(pinned_cpu_foreign_pct(&a, &b, 7, 0, 100), None);
        assert_eq!(pinned_cpu_foreign_pct(&a, &a, 0, 0, 100), None);
    }

    #[test]
    fn a_waited_childs_cpu_time_is_counted() {
        let before = crate::children_cpu_ns();
        let st = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(crate::children_cpu_ns() > before);
    }
}
