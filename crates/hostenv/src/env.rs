//! Environment capture: kernel (release, version string, command line), this process's command
//! line, CPU model, online and allowed CPUs, the pinned CPU (set by the caller), base page size,
//! hypervisor flag, cpufreq governors, memory, clock source, perf and RT settings, the PMUs the
//! kernel exposes, the values of caller-chosen sysfs files, and caller-chosen kernel config
//! options (from `/proc/config.gz` or `/boot/config-<release>`), into the contract's [`HostEnv`].
//! Everything is best effort: a value that cannot be read is `null`, never an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The snapshot types are the contract's (they travel in result files); this module fills them.
pub use contract::{HostEnv, KernelConfig};

use crate::{cpu, sys, sysfs};

/// cpu0's raw MIDR_EL1 (arm64 kernels that expose it): recorded with the sysfs values.
pub const MIDR_EL1_CPU0: &str = "/sys/devices/system/cpu/cpu0/regs/identification/midr_el1";

/// Capture the host environment plus the given sysfs files and kernel config options. On arm64
/// `cpu_model` is the core design decoded from the MIDR ([`crate::cpuid`]) and cpu0's raw
/// `midr_el1`, when the kernel has it, is among the sysfs values; the per-field MIDRs of every
/// CPU are [`crate::cpuid::CpuIdentity::host`].
pub fn capture(sysfs_paths: &[PathBuf], config_keys: &[&str]) -> HostEnv {
    let mut sysfs_paths = sysfs_paths.to_vec();
    let midr = PathBuf::from(MIDR_EL1_CPU0);
    if midr.exists() && !sysfs_paths.contains(&midr) {
        sysfs_paths.push(midr);
    }
    let u = sys::uname().unwrap_or_default();
    let meminfo = {
        use ::procfs::Current;
        ::procfs::Meminfo::current().ok()
    };
    let rt = crate::sched::rt_budget();
    let mut pmus: Vec<String> = std::fs::read_dir("/sys/bus/event_source/devices")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    pmus.sort();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let online = cpu::online_cpus().ok();
    let cpufreq_governor = online
        .iter()
        .flat_map(|s| s.ids())
        .filter_map(|c| {
            sysfs::read_trimmed(format!(
                "/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
            ))
            .ok()
            .map(|g| (c, g))
        })
        .collect();
    let dmi = |f: &str| sysfs::read_trimmed(format!("/sys/class/dmi/id/{f}")).ok();
    let dmi_product = match (dmi("sys_vendor"), dmi("product_name")) {
        (Some(v), Some(p)) => Some(format!("{v} {p}")),
        (v, p) => v.or(p),
    };
    HostEnv {
        kernel_cmdline: sysfs::read_trimmed("/proc/cmdline").ok(),
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        pinned_cpu: None,
        page_size: sys::page_size(),
        hypervisor_flag: cpu_flag(&cpuinfo, "hypervisor"),
        hypervisor_type: sysfs::read_trimmed("/sys/hypervisor/type").ok(),
        dmi_product,
        cpufreq_governor,
        kernel_config: kernel_config(&u.release, config_keys),
        kernel_release: u.release,
        kernel_version: u.version,
        arch: u.machine,
        hostname: u.nodename,
        cpu_model: crate::host::cpu_model(),
        cpus_online: online.map(|s| s.to_string()),
        cpus_allowed: cpu::allowed_cpus().ok().map(|s| s.to_string()),
        mem_total_bytes: meminfo.as_ref().map(|m| m.mem_total),
        mem_available_bytes: meminfo.as_ref().and_then(|m| m.mem_available),
        swap_total_bytes: meminfo.as_ref().map(|m| m.swap_total),
        euid: sys::geteuid(),
        clocksource: sysfs::read_trimmed(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .ok(),
        perf_event_paranoid: sysfs::read_trimmed("/proc/sys/kernel/perf_event_paranoid")
            .ok()
            .and_then(|s| s.parse().ok()),
        pmus,
        core_pmus: crate::counters::host_core_pmus(),
        cpu_midr: crate::cpuid::CpuIdentity::host()
            .midrs
            .iter()
            .map(|m| contract::CpuMidr {
                implementer: m.midr.implementer,
                variant: m.midr.variant,
                part: m.midr.part,
                revision: m.midr.revision,
                cpus: m.cpus,
                core: m.midr.core_name().map(str::to_string),
            })
            .collect(),
        sched_rt_runtime_us: rt.map(|r| r.0),
        sched_rt_period_us: rt.map(|r| r.1),
        thp_disabled_by_prctl: sys::thp_disable_flag().ok(),
        sysfs: sysfs_paths
            .iter()
            .map(|p| {
                (
                    p.to_string_lossy().into_owned(),
                    sysfs::read_selected(p).ok(),
                )
            })
            .collect(),
    }
}

/// `model name` of the first CPU in `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// Whether the first CPU's `flags` line in `/proc/cpuinfo` has `flag`; `None` without a flags
/// line.
pub fn cpu_flag(cpuinfo: &str, flag: &str) -> Option<bool> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "flags").then(|| v.split_whitespace().any(|f| f == flag))
    })
}

/// Values of `keys` (with or without the `CONFIG_` prefix) in a kernel config text. Options
/// that are "not set" or absent are reported as `n`.
pub fn parse_kernel_config(text: &str, keys: &[&str]) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=')
            && k.starts_with("CONFIG_")
        {
            all.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    keys.iter()
        .map(|k| {
            let full = if k.starts_with("CONFIG_") {
                k.to_string()
            } else {
                format!("CONFIG_{k}")
            };
            let v = all.get(&full).cloned().unwrap_or_else(|| "n".to_string());
            (full, v)
        })
        .collect()
}

/// A gzip file decompressed to text (at most 64 MiB: a kernel config is about 300 KB).
fn read_gzip_text(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path)?)
        .take(64 << 20)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Read the running kernel's config and pick `keys`.
pub fn kernel_config(release: &str, keys: &[&str]) -> KernelConfig {
    let mut errors = Vec::new();
    if Path::new("/proc/config.gz").exists() {
        match read_gzip_text(Path::new("/proc/config.gz")) {
            Ok(text) => {
                return KernelConfig {
                    source: Some("/proc/config.gz".into()),
                    values: parse_kernel_config(&text, keys),
                    error: None,
                };
            }
            Err(e) => errors.push(format!("/proc/config.gz: {e}")),
        }
    }
    let boot = format!("/boot/config-{release}");
    match std::fs::read_to_string(&boot) {
        Ok(text) => KernelConfig {
            source: Some(boot),
            values: parse_kernel_config(&text, keys),
            error: None,
        },
        Err(e) => {
            errors.push(format!("{boot}: {e}"));
            KernelConfig {
                source: None,
                values: BTreeMap::new(),
                error: Some(errors.join("; ")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_config_parsing() {
        let text = "# comment\nCONFIG_PAGE_MAPCOUNT=y\n# CONFIG_NO_PAGE_MAPCOUNT is not set\n\
                    CONFIG_HZ=250\nCONFIG_LOCALVERSION=\"-fc\"\n";
        let v = parse_kernel_config(
            text,
            &[
                "PAGE_MAPCOUNT",
                "CONFIG_NO_PAGE_MAPCOUNT",
                "HZ",
                "LOCALVERSION",
            ],
        );
        assert_eq!(v["CONFIG_PAGE_MAPCOUNT"], "y");
        assert_eq!(v["CONFIG_NO_PAGE_MAPCOUNT"], "n");
        assert_eq!(v["CONFIG_HZ"], "250");
        assert_eq!(v["CONFIG_LOCALVERSION"], "-fc");
    }

    #[test]
    fn gzip_configs_are_read_in_process() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.gz");
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&p).unwrap(),
            flate2::Compression::default(),
        );
        gz.write_all(b"CONFIG_HZ=250\n").unwrap();
        gz.finish().unwrap();
        let text = read_gzip_text(&p).unwrap();
        assert_eq!(parse_kernel_config(&text, &["HZ"])["CONFIG_HZ"], "250");
        std::fs::write(&p, b"not gzip").unwrap();
        assert!(read_gzip_text(&p).is_err());
    }

    #[test]
    fn cpuinfo_model() {
        assert_eq!(
            parse_cpu_model("processor\t: 0\nmodel name\t: AMD EPYC\n").as_deref(),
            Some("AMD EPYC")
        );
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
        let info = "processor\t: 0\nflags\t\t: fpu vme hypervisor lahf_lm\n";
        assert_eq!(cpu_flag(info, "hypervisor"), Some(true));
        assert_eq!(cpu_flag(info, "hyper"), Some(false));
        assert_eq!(cpu_flag("processor : 0\n", "hypervisor"), None);
    }

    #[test]
    fn capture_never_fails() {
        let e = capture(&[PathBuf::from("/nonexistent")], &["HZ"]);
        assert!(!e.kernel_release.is_empty());
        assert_eq!(e.sysfs["/nonexistent"], None);
        assert!(!e.command_line.is_empty());
        assert_eq!(e.pinned_cpu, None);
        assert!(e.page_size.unwrap() >= 4096);
        serde_json::to_string(&e).unwrap();
    }
}
