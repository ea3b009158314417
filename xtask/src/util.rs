//! Small helpers for xtask: project root, cargo invocation, UTC timestamps, git revision,
//! host facts.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (parent of this crate's manifest directory).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo build --release -p forkbench`, returning the binary's path.
pub fn build_runner() -> anyhow::Result<PathBuf> {
    let status = bisect::measure::cargo_build_forkbench(&project_root(), None)
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p forkbench failed ({status})");
    }
    Ok(target_dir().join("release").join("forkbench"))
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// CPUs this process may run on (from `Cpus_allowed_list` in /proc/self/status), sorted.
pub fn allowed_cpus() -> Vec<usize> {
    let list = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .and_then(|l| l.split(':').nth(1))
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_default();
    let mut out = parse_cpu_list(&list);
    if out.is_empty() {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        out = (0..n).collect();
    }
    out
}

/// Parse a kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(s: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<usize>().ok()),
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The host's CPU model: `model name` from /proc/cpuinfo, else lscpu's `Model name`
/// (arm64 cpuinfo has none), else None.
pub fn cpu_model() -> Option<String> {
    let from_cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
    });
    from_cpuinfo.or_else(|| {
        let o = Command::new("lscpu").output().ok()?;
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.trim_start().starts_with("Model name:"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
    })
}

/// Per-CPU `(busy, total)` jiffies from /proc/stat (busy = total - idle - iowait).
pub fn cpu_ticks() -> Vec<(usize, u64, u64)> {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return Vec::new();
    };
    parse_cpu_ticks(&stat)
}

/// Parse the `cpuN ...` lines of /proc/stat.
pub fn parse_cpu_ticks(stat: &str) -> Vec<(usize, u64, u64)> {
    stat.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let id: usize = it.next()?.strip_prefix("cpu")?.parse().ok()?;
            let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
            if v.len() < 5 {
                return None;
            }
            let total: u64 = v.iter().take(8).sum();
            let idle = v[3] + v[4];
            Some((id, total - idle, total))
        })
        .collect()
}

/// Busy percentage of every CPU except `pinned` between two [`cpu_ticks`] samples (the
/// busiest one), or None when nothing can be said.
pub fn other_cpus_busy_pct(
    before: &[(usize, u64, u64)],
    after: &[(usize, u64, u64)],
    pinned: usize,
) -> Option<f64> {
    before
        .iter()
        .filter(|b| b.0 != pinned)
        .filter_map(|b| {
            let a = after.iter().find(|a| a.0 == b.0)?;
            let total = a.2.checked_sub(b.2)?;
            let busy = a.1.checked_sub(b.1)?;
            (total > 0).then(|| 100.0 * busy as f64 / total as f64)
        })
        .reduce(f64::max)
}

/// Pids of running processes named `name` (from /proc/*/comm), except `except`.
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

/// Default label: the kernel release, reduced to label characters.
pub fn default_label() -> String {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let l: String = rel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if l.is_empty() { "host".into() } else { l }
}

/// Seconds since the epoch as `YYYYMMDDTHHMMSSZ` and RFC 3339.
pub fn utc_stamps(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    (
        format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z"),
    )
}

/// `git rev-parse HEAD`, with `-dirty` if the tree has changes; `unknown` outside git.
pub fn git_rev() -> String {
    let root = project_root();
    let rev = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(rev) = rev else {
        return "unknown".into();
    };
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// Host facts recorded with every result file (the real-fork runs carry their own, fuller
/// capture in each record's `extra`).
pub fn capture_env(cpu_model: Option<String>) -> serde_json::Value {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let governor = read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor");
    serde_json::json!({
        "kernel": read("/proc/sys/kernel/osrelease"),
        "arch": std::env::consts::ARCH,
        "cpu_model": cpu_model,
        "cpus_online": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpus_allowed": allowed_cpus(),
        "thp_enabled": read("/sys/kernel/mm/transparent_hugepage/enabled"),
        "thp_defrag": read("/sys/kernel/mm/transparent_hugepage/defrag"),
        "governor": governor,
        "smt": read("/sys/devices/system/cpu/smt/control"),
        "aslr": read("/proc/sys/kernel/randomize_va_space"),
        "hostname": hostname(),
    })
}

/// The host name (`unknown` if it cannot be read).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_known_dates() {
        assert_eq!(utc_stamps(0).1, "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56Z = 1709210096
        assert_eq!(utc_stamps(1_709_210_096).0, "20240229T123456Z");
        // 2026-11-25T19:25:46Z
        assert_eq!(utc_stamps(1_795_634_746).1, "2026-11-25T19:25:46Z");
    }

    #[test]
    fn other_cpu_load() {
        let before = parse_cpu_ticks("cpu  1 2 3 4 5\ncpu0 10 0 0 90 0 0 0 0\ncpu1 0 0 0 100 0\n");
        let after =
            parse_cpu_ticks("cpu  1 2 3 4 5\ncpu0 60 0 0 140 0 0 0 0\ncpu1 100 0 0 100 0\n");
        assert_eq!(before, vec![(0, 10, 100), (1, 0, 100)]);
        // CPU 0: 50 busy of 100 ticks; CPU 1 (pinned) is ignored.
        assert_eq!(other_cpus_busy_pct(&before, &after, 1), Some(50.0));
        assert_eq!(other_cpus_busy_pct(&before, &after, 0), Some(100.0));
        assert_eq!(other_cpus_busy_pct(&before[..1], &after, 0), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,6,8-9"), vec![0, 1, 2, 3, 6, 8, 9]);
        assert_eq!(parse_cpu_list("1"), vec![1]);
        assert!(parse_cpu_list("").is_empty());
        assert!(!allowed_cpus().is_empty());
    }
}
