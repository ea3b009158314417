//! Small `/proc` readers: per-CPU times from `/proc/stat` (to record the load on the other CPUs
//! during a run; parsed here because `procfs::KernelStats` lists CPUs by position, not id, and
//! an offline CPU would shift the rest), `MemAvailable` and this process's memory (through the
//! `procfs` crate), and the memory cgroup's headroom.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::HostError;

/// Cumulative times of one CPU from `/proc/stat`, in USER_HZ ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub total: u64,
    /// idle + iowait.
    pub idle: u64,
    pub steal: u64,
}

/// Per-CPU times (`cpuN` lines; the aggregate `cpu` line is skipped).
pub fn parse_stat(text: &str) -> BTreeMap<usize, CpuTimes> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(name) = it.next() else { continue };
        let Some(id) = name
            .strip_prefix("cpu")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
        // included in user/nice.
        let get = |i: usize| v.get(i).copied().unwrap_or(0);
        let total = (0..8).map(get).sum();
        out.insert(
            id,
            CpuTimes {
                total,
                idle: get(3) + get(4),
                steal: get(7),
            },
        );
    }
    out
}

/// Snapshot of `/proc/stat`.
pub fn read_stat() -> Result<BTreeMap<usize, CpuTimes>, HostError> {
    let text = std::fs::read_to_string("/proc/stat").map_err(|e| HostError::io("/proc/stat", e))?;
    Ok(parse_stat(&text))
}

/// Load of one CPU between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuLoad {
    /// Non-idle share of the interval, percent (steal included).
    pub busy_pct: f64,
    /// Time stolen by the hypervisor, percent.
    pub steal_pct: f64,
    /// Ticks elapsed on this CPU.
    pub ticks: u64,
}

/// Busy and steal percentages per CPU between `before` and `after`.
pub fn load_between(
    before: &BTreeMap<usize, CpuTimes>,
    after: &BTreeMap<usize, CpuTimes>,
) -> BTreeMap<usize, CpuLoad> {
    let mut out = BTreeMap::new();
    for (cpu, a) in after {
        let Some(b) = before.get(cpu) else { continue };
        let total = a.total.saturating_sub(b.total);
        let idle = a.idle.saturating_sub(b.idle);
        let steal = a.steal.saturating_sub(b.steal);
        let pct = |x: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * x as f64 / total as f64
            }
        };
        out.insert(
            *cpu,
            CpuLoad {
                busy_pct: pct(total.saturating_sub(idle)),
                steal_pct: pct(steal),
                ticks: total,
            },
        );
    }
    out
}

/// `MemAvailable` in bytes (through the `procfs` crate).
pub fn mem_available_bytes() -> Result<u64, HostError> {
    use ::procfs::Current;
    let m = ::procfs::Meminfo::current().map_err(|e| HostError::Io {
        path: "/proc/meminfo".into(),
        error: std::io::Error::other(e.to_string()),
    })?;
    m.mem_available.ok_or_else(|| HostError::Io {
        path: "/proc/meminfo".into(),
        error: std::io::Error::other("no MemAvailable line"),
    })
}

/// The memory cgroup limit that applies to this process: the smallest `limit - usage` over its
/// cgroup and every ancestor (v2 `memory.max`/`memory.current`, or v1
/// `memory.limit_in_bytes`/`memory.usage_in_bytes`), with the directory that sets it. `None`
/// when there is no memory cgroup or no limit anywhere.
pub fn cgroup_memory_headroom() -> Option<(u64, String)> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for l in cg.lines() {
        let mut it = l.splitn(3, ':');
        let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
        if ctrl.is_empty() {
            candidates.push(("/sys/fs/cgroup", path, "memory.max", "memory.current"));
        } else if ctrl.split(',').any(|c| c == "memory") {
            candidates.push((
                "/sys/fs/cgroup/memory",
                path,
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
            ));
        }
    }
    let mut best: Option<(u64, String)> = None;
    for (root, rel, max_file, cur_file) in candidates {
        let root = std::path::Path::new(root);
        let mut dir = root.join(rel.trim().trim_start_matches('/'));
        loop {
            let max = crate::sysfs::read_trimmed(dir.join(max_file))
                .ok()
                .and_then(|m| m.parse::<u64>().ok());
            let cur = crate::sysfs::read_u64(dir.join(cur_file));
            // v1 reports "no limit" as a huge number; v2 as "max" (which does not parse).
            if let (Some(max), Some(cur)) = (max, cur)
                && max < 1 << 60
            {
                let room = max.saturating_sub(cur);
                if best.as_ref().is_none_or(|b| room < b.0) {
                    best = Some((room, dir.display().to_string()));
                }
            }
            if dir == root || !dir.pop() {
                break;
            }
        }
    }
    best
}

/// This process's memory figures from `/proc/self/status`, in bytes (through `procfs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SelfMemory {
    /// Peak resident set (`VmHWM`).
    pub hwm: Option<u64>,
    /// Resident set now (`VmRSS`).
    pub rss: Option<u64>,
    /// Page tables (`VmPTE`).
    pub pte: Option<u64>,
}

/// [`SelfMemory`] now; all `None` when `/proc/self/status` cannot be read.
pub fn self_memory() -> SelfMemory {
    let Ok(s) = ::procfs::process::Process::myself().and_then(|p| p.status()) else {
        return SelfMemory::default();
    };
    let kb = |v: Option<u64>| v.and_then(|k| k.checked_mul(1024));
    SelfMemory {
        hwm: kb(s.vmhwm),
        rss: kb(s.vmrss),
        pte: kb(s.vmpte),
    }
}

/// A field of `/proc/self/status` in bytes: `VmHWM`, `VmRSS` or `VmPTE`.
pub fn self_status_bytes(field: &str) -> Option<u64> {
    let m = self_memory();
    match field {
        "VmHWM" => m.hwm,
        "VmRSS" => m.rss,
        "VmPTE" => m.pte,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT1: &str = "cpu  10 0 10 100 0 0 0 0 0 0\n\
                         cpu0 5 0 5 50 0 0 0 0 0 0\n\
                         cpu1 5 0 5 50 0 0 0 0 0 0\n\
                         intr 1 2 3\nctxt 99\n";
    const STAT2: &str = "cpu  0 0 0 0 0 0 0 0 0 0\n\
                         cpu0 55 0 5 50 0 0 0 0 0 0\n\
                         cpu1 5 0 5 140 10 0 0 0 0 0\n";

    #[test]
    fn stat_load_between_snapshots() {
        let a = parse_stat(STAT1);
        let b = parse_stat(STAT2);
        assert_eq!(a.len(), 2);
        let l = load_between(&a, &b);
        assert_eq!(l[&0].busy_pct, 100.0);
        assert_eq!(l[&0].ticks, 50);
        assert_eq!(l[&1].busy_pct, 0.0);
        assert_eq!(l[&1].ticks, 100);
    }

    #[test]
    fn steal_counts_as_busy_and_is_reported() {
        let a = parse_stat("cpu0 0 0 0 0 0 0 0 0 0 0\n");
        let b = parse_stat("cpu0 0 0 0 50 0 0 0 50 0 0\n");
        let l = load_between(&a, &b);
        assert_eq!(l[&0].busy_pct, 50.0);
        assert_eq!(l[&0].steal_pct, 50.0);
    }

    #[test]
    fn memory_and_cgroup_headroom() {
        assert!(mem_available_bytes().unwrap() > 0);
        assert!(self_status_bytes("VmHWM").unwrap() > 0);
        // Best effort: a limit, if any, is a finite number with the cgroup that sets it.
        if let Some((_, path)) = cgroup_memory_headroom() {
            assert!(path.starts_with("/sys/fs/cgroup"), "{path}");
        }
        assert!(!read_stat().unwrap().is_empty());
    }

    #[test]
    fn own_memory_and_available_memory_are_read() {
        let m = self_memory();
        let (hwm, rss) = (m.hwm.unwrap(), m.rss.unwrap());
        assert!(hwm >= rss && rss > 0, "{m:?}");
        assert_eq!(self_status_bytes("VmRSS").map(|r| r > 0), Some(true));
        assert_eq!(self_status_bytes("VmSwap"), None);
        assert!(mem_available_bytes().unwrap() > 0);
    }
}
