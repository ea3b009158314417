//! Performance counters for the calling thread behind the small [`Counters`] trait, so callers
//! can be tested with [`MockCounters`] and the backend (today `perf-event2`) can be swapped.
//!
//! [`PerfCounters::open`] probes every event on its own first (with `include_kernel()`, since the
//! interesting work is in the kernel), retries user-only on a permission error, and builds one
//! group from the events that passed. A missing event is reported with its reason and reads as
//! `None`; opening never fails. A hardware event that cannot be opened is `no PMU` only when the
//! kernel lists no core PMU ([`core_pmus`]: `cpu` on x86, `armv8_pmuv3_0`, `apple_*_pmu`, ... on
//! arm64); with one, the PMU just lacks that event (`event not supported by the PMU ...`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use contract::CounterValue;
use perf_event::events::{Cache, CacheId, CacheOp, CacheResult, Hardware, Software};
use perf_event::{Builder, Counter, Group};
use serde::Serialize;

/// The events forkbench asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Event {
    TaskClock,
    PageFaults,
    ContextSwitches,
    CpuMigrations,
    Cycles,
    Instructions,
    BranchMisses,
    DtlbLoadMisses,
}

impl Event {
    /// Every event, software first.
    pub const ALL: [Event; 8] = [
        Event::TaskClock,
        Event::PageFaults,
        Event::ContextSwitches,
        Event::CpuMigrations,
        Event::Cycles,
        Event::Instructions,
        Event::BranchMisses,
        Event::DtlbLoadMisses,
    ];

    /// The `perf stat` name.
    pub fn name(self) -> &'static str {
        match self {
            Event::TaskClock => "task-clock",
            Event::PageFaults => "page-faults",
            Event::ContextSwitches => "context-switches",
            Event::CpuMigrations => "cpu-migrations",
            Event::Cycles => "cycles",
            Event::Instructions => "instructions",
            Event::BranchMisses => "branch-misses",
            Event::DtlbLoadMisses => "dTLB-load-misses",
        }
    }

    /// Whether the event needs a hardware PMU.
    pub fn is_hardware(self) -> bool {
        !matches!(
            self,
            Event::TaskClock | Event::PageFaults | Event::ContextSwitches | Event::CpuMigrations
        )
    }

    fn builder(self) -> Builder<'static> {
        match self {
            Event::TaskClock => Builder::new(Software::TASK_CLOCK),
            Event::PageFaults => Builder::new(Software::PAGE_FAULTS),
            Event::ContextSwitches => Builder::new(Software::CONTEXT_SWITCHES),
            Event::CpuMigrations => Builder::new(Software::CPU_MIGRATIONS),
            Event::Cycles => Builder::new(Hardware::CPU_CYCLES),
            Event::Instructions => Builder::new(Hardware::INSTRUCTIONS),
            Event::BranchMisses => Builder::new(Hardware::BRANCH_MISSES),
            Event::DtlbLoadMisses => Builder::new(Cache {
                which: CacheId::DTLB,
                operation: CacheOp::READ,
                result: CacheResult::MISS,
            }),
        }
    }
}

/// Whether an event is counted, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventStatus {
    pub event: Event,
    /// The event is in the group and will be read.
    pub available: bool,
    /// Kernel-mode work is counted (false if only user mode was permitted).
    pub kernel: bool,
    /// Why the event is missing, or why kernel mode is excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counter values at one moment (cumulative since open).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub values: BTreeMap<Event, u64>,
    pub time_enabled_ns: u64,
    pub time_running_ns: u64,
}

impl Snapshot {
    /// `self - earlier`, per event present in both (saturating).
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        Snapshot {
            values: self
                .values
                .iter()
                .filter_map(|(e, v)| Some((*e, v.saturating_sub(*earlier.values.get(e)?))))
                .collect(),
            time_enabled_ns: self.time_enabled_ns.saturating_sub(earlier.time_enabled_ns),
            time_running_ns: self.time_running_ns.saturating_sub(earlier.time_running_ns),
        }
    }

    /// The value of one event, if counted.
    pub fn get(&self, e: Event) -> Option<u64> {
        self.values.get(&e).copied()
    }
}

/// A set of counters on the calling thread that can be switched on and off around a region.
pub trait Counters {
    /// One entry per requested event.
    fn status(&self) -> &[EventStatus];
    /// Start counting.
    fn enable(&mut self) -> io::Result<()>;
    /// Stop counting.
    fn disable(&mut self) -> io::Result<()>;
    /// Cumulative values of the available events.
    fn read(&mut self) -> io::Result<Snapshot>;
}

/// Counter totals over `ops` operations, by `perf stat` name: per requested event its `value`
/// and `per_op`, or no value and the reason; plus `time_enabled_ns` / `time_running_ns` (as
/// values) when counters were read.
pub fn report(
    status: &[EventStatus],
    total: Option<&Snapshot>,
    ops: u64,
) -> BTreeMap<String, CounterValue> {
    let mut m = BTreeMap::new();
    for s in status {
        let v = total.and_then(|t| t.get(s.event)).filter(|_| s.available);
        let reason = match (&s.reason, v, total) {
            (Some(r), _, _) => Some(r.clone()),
            (None, None, None) => Some("counters were not read".to_string()),
            (None, None, Some(_)) => Some("not counted".to_string()),
            _ => None,
        };
        m.insert(
            s.event.name().to_string(),
            CounterValue {
                value: v,
                // Rounded so that a record survives a JSON round trip exactly.
                per_op: v
                    .filter(|_| ops > 0)
                    .map(|v| (v as f64 / ops as f64 * 1e3).round() / 1e3),
                kernel: v.map(|_| s.kernel),
                reason,
            },
        );
    }
    if let Some(t) = total {
        for (name, ns) in [
            ("time_enabled_ns", t.time_enabled_ns),
            ("time_running_ns", t.time_running_ns),
        ] {
            m.insert(
                name.to_string(),
                CounterValue {
                    value: Some(ns),
                    per_op: None,
                    kernel: None,
                    reason: None,
                },
            );
        }
    }
    m
}

/// Where the kernel lists its PMUs.
pub const EVENT_SOURCE_DEVICES: &str = "/sys/bus/event_source/devices";

/// The core (CPU) PMUs under `devices_dir` (normally [`EVENT_SOURCE_DEVICES`]), sorted: devices
/// with a `type` file that are named `cpu` (x86), `cpu_core`/`cpu_atom` (hybrid x86), or that
/// have a `cpus` file, which the arm64 PMU drivers give each core PMU (`armv8_pmuv3_0`,
/// `armv8_cortex_a72`, `apple_avalanche_pmu`); uncore PMUs have `cpumask` instead. Known arm64
/// core PMU names count even without `cpus`. Empty when there is none (a VM without a PMU).
pub fn core_pmus(devices_dir: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(devices_dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = dir
        .flatten()
        .filter(|e| e.path().join("type").exists())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, path)| {
            matches!(name.as_str(), "cpu" | "cpu_core" | "cpu_atom")
                || name.starts_with("armv8_")
                || (name.starts_with("apple_") && name.ends_with("_pmu"))
                || path.join("cpus").exists()
        })
        .map(|(name, _)| name)
        .collect();
    out.sort();
    out
}

/// [`core_pmus`] of this host.
pub fn host_core_pmus() -> Vec<String> {
    core_pmus(Path::new(EVENT_SOURCE_DEVICES))
}

/// Why opening an event failed, in words a result file can carry (looks up this host's core
/// PMUs; see [`explain_with`]).
pub fn explain(event: Event, err: &io::Error) -> String {
    explain_with(event, err, &host_core_pmus())
}

/// [`explain`] given the host's core PMUs: a hardware event that does not exist is `no PMU`
/// only when there is no core PMU; otherwise that PMU lacks the event.
pub fn explain_with(event: Event, err: &io::Error, core_pmus: &[String]) -> String {
    let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    match err.raw_os_error() {
        Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP) if event.is_hardware() => {
            if core_pmus.is_empty() {
                format!("no PMU ({err})")
            } else {
                format!(
                    "event not supported by the PMU ({}): {err}",
                    core_pmus.join(", ")
                )
            }
        }
        Some(libc::ENOENT | libc::ENODEV | libc::EOPNOTSUPP | libc::E2BIG) => {
            format!("not supported by this kernel ({err})")
        }
        Some(libc::EACCES | libc::EPERM) => {
            format!("permission denied (perf_event_paranoid={paranoid}): {err}")
        }
        _ if err.kind() == io::ErrorKind::Unsupported => {
            format!("not supported by this kernel ({err})")
        }
        _ => err.to_string(),
    }
}

fn is_permission(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

/// `perf_event_open` counters for the calling thread (children are not counted).
pub struct PerfCounters {
    group: Option<Group>,
    members: Vec<(Event, Counter)>,
    status: Vec<EventStatus>,
}

impl std::fmt::Debug for PerfCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PerfCounters")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl PerfCounters {
    /// Probe and open `events`; see the module docs. Never fails.
    pub fn open(events: &[Event]) -> PerfCounters {
        let pmus = host_core_pmus();
        let explain = |e: Event, err: &io::Error| explain_with(e, err, &pmus);
        let mut status = Vec::new();
        let mut wanted = Vec::new();
        for &e in events {
            match e.builder().include_kernel().build() {
                Ok(_) => {
                    wanted.push((e, true));
                    status.push(EventStatus {
                        event: e,
                        available: true,
                        kernel: true,
                        reason: None,
                    });
                }
                Err(err) if is_permission(&err) => match e.builder().build() {
                    Ok(_) => {
                        wanted.push((e, false));
                        status.push(EventStatus {
                            event: e,
                            available: true,
                            kernel: false,
                            reason: Some(format!("user mode only: {}", explain(e, &err))),
                        });
                    }
                    Err(err2) => status.push(EventStatus {
                        event: e,
                        available: false,
                        kernel: false,
                        reason: Some(explain(e, &err2)),
                    }),
                },
                Err(err) => status.push(EventStatus {
                    event: e,
                    available: false,
                    kernel: false,
                    reason: Some(explain(e, &err)),
                }),
            }
        }
        let mut group = if wanted.is_empty() {
            None
        } else {
            match Group::new() {
                Ok(g) => Some(g),
                Err(err) => {
                    let why = format!("cannot create counter group: {err}");
                    for s in status.iter_mut().filter(|s| s.available) {
                        s.available = false;
                        s.reason = Some(why.clone());
                    }
                    None
                }
            }
        };
        let mut members = Vec::new();
        if let Some(g) = group.as_mut() {
            for (e, kernel) in wanted {
                let mut b = e.builder();
                if kernel {
                    b.include_kernel();
                }
                match g.add(&b) {
                    Ok(c) => members.push((e, c)),
                    Err(err) => {
                        if let Some(s) = status.iter_mut().find(|s| s.event == e) {
                            s.available = false;
                            s.reason = Some(format!("cannot join group: {}", explain(e, &err)));
                        }
                    }
                }
            }
        }
        if members.is_empty() {
            group = None;
        }
        PerfCounters {
            group,
            members,
            status,
        }
    }
}

impl Counters for PerfCounters {
    fn status(&self) -> &[EventStatus] {
        &self.status
    }

    fn enable(&mut self) -> io::Result<()> {
        match self.group.as_mut() {
            Some(g) => g.enable(),
            None => Ok(()),
        }
    }

    fn disable(&mut self) -> io::Result<()> {
        match self.group.as_mut() {
            Some(g) => g.disable(),
            None => Ok(()),
        }
    }

    fn read(&mut self) -> io::Result<Snapshot> {
        let Some(g) = self.group.as_mut() else {
            return Ok(Snapshot::default());
        };
        let data = g.read()?;
        let mut values = BTreeMap::new();
        for (e, c) in &self.members {
            if let Some(entry) = data.get(c) {
                values.insert(*e, entry.value());
            }
        }
        let ns = |d: Option<std::time::Duration>| {
            d.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        };
        Ok(Snapshot {
            values,
            time_enabled_ns: ns(data.time_enabled()),
            time_running_ns: ns(data.time_running()),
        })
    }
}

/// A scripted stand-in for tests: each `read` returns the next snapshot (the last one repeats).
#[derive(Debug, Clone)]
pub struct MockCounters {
    pub status: Vec<EventStatus>,
    pub reads: Vec<Snapshot>,
    pub enabled: bool,
    pub enables: u64,
    next: usize,
}

impl MockCounters {
    /// Available `events` that read the given snapshots in turn.
    pub fn new(status: Vec<EventStatus>, reads: Vec<Snapshot>) -> Self {
        MockCounters {
            status,
            reads,
            enabled: false,
            enables: 0,
            next: 0,
        }
    }
}

impl Counters for MockCounters {
    fn status(&self) -> &[EventStatus] {
        &self.status
    }
    fn enable(&mut self) -> io::Result<()> {
        self.enabled = true;
        self.enables += 1;
        Ok(())
    }
    fn disable(&mut self) -> io::Result<()> {
        self.enabled = false;
        Ok(())
    }
    fn read(&mut self) -> io::Result<Snapshot> {
        let s = self
            .reads
            .get(self.next.min(self.reads.len().saturating_sub(1)))
            .cloned()
            .unwrap_or_default();
        self.next += 1;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_counters_work_and_hardware_degrade() {
        let mut c = PerfCounters::open(&Event::ALL);
        assert_eq!(c.status().len(), Event::ALL.len());
        let pmus = host_core_pmus();
        for s in c.status() {
            if !s.available {
                let r = s.reason.as_deref().unwrap_or("");
                assert!(!r.is_empty(), "{s:?}");
                if s.event.is_hardware() {
                    // "no PMU" exactly when the kernel lists no core PMU.
                    assert_eq!(r.starts_with("no PMU"), pmus.is_empty(), "{s:?} {pmus:?}");
                }
            }
        }
        c.enable().unwrap();
        let v: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        std::hint::black_box(&v);
        c.disable().unwrap();
        let snap = c.read().unwrap();
        if c.status()[0].available {
            assert!(snap.get(Event::TaskClock).unwrap() > 0);
            assert!(snap.time_enabled_ns > 0);
        }
        if pmus.is_empty() {
            assert_eq!(snap.get(Event::Cycles), None);
        }
    }

    #[test]
    fn core_pmus_are_found_by_name_or_cpus_file_not_only_as_cpu() {
        let d = tempfile::tempdir().unwrap();
        let dev = |name: &str, files: &[&str]| {
            let p = d.path().join(name);
            std::fs::create_dir_all(&p).unwrap();
            for f in files {
                std::fs::write(p.join(f), "1\n").unwrap();
            }
        };
        // This x86 VM: software PMUs and msr (which has events/) but no core PMU.
        dev("software", &["type"]);
        dev("tracepoint", &["type"]);
        dev("msr", &["type"]);
        std::fs::create_dir_all(d.path().join("msr/events")).unwrap();
        assert!(core_pmus(d.path()).is_empty());
        // An arm64 host: the core PMU is not called `cpu`; an uncore PMU has `cpumask`.
        dev("armv8_pmuv3_0", &["type", "cpus"]);
        dev("arm_cmn_0", &["type", "cpumask"]);
        dev("apple_blizzard_pmu", &["type"]);
        dev("not_a_pmu", &[]);
        assert_eq!(
            core_pmus(d.path()),
            vec!["apple_blizzard_pmu".to_string(), "armv8_pmuv3_0".into()]
        );
        dev("cpu", &["type"]);
        assert!(core_pmus(d.path()).contains(&"cpu".to_string()));
        assert!(core_pmus(&d.path().join("missing")).is_empty());
    }

    #[test]
    fn report_marks_missing_events_null_with_reason() {
        let status = vec![
            EventStatus {
                event: Event::TaskClock,
                available: true,
                kernel: true,
                reason: None,
            },
            EventStatus {
                event: Event::Cycles,
                available: false,
                kernel: false,
                reason: Some("no PMU (No such file or directory (os error 2))".into()),
            },
        ];
        let snap = Snapshot {
            values: BTreeMap::from([(Event::TaskClock, 1000)]),
            time_enabled_ns: 5,
            time_running_ns: 5,
        };
        let j = report(&status, Some(&snap), 10);
        assert_eq!(j["task-clock"].value, Some(1000));
        assert_eq!(j["task-clock"].per_op, Some(100.0));
        assert_eq!(j["task-clock"].kernel, Some(true));
        assert_eq!(j["task-clock"].reason, None);
        assert_eq!(j["cycles"].value, None);
        assert!(j["cycles"].reason.as_deref().unwrap().starts_with("no PMU"));
        assert_eq!(j["time_enabled_ns"].value, Some(5));
        assert_eq!(report(&status, Some(&snap), 0)["task-clock"].per_op, None);
        // Per-op values are rounded to survive a JSON round trip: 1000/3 = 333.333.
        let third = report(&status, Some(&snap), 3);
        assert_eq!(third["task-clock"].per_op, Some(333.333));
        let json = serde_json::to_string(&third).unwrap();
        assert_eq!(
            serde_json::from_str::<BTreeMap<String, CounterValue>>(&json).unwrap(),
            third
        );
        let j = report(&status, None, 10);
        assert_eq!(j["task-clock"].value, None);
        assert_eq!(
            j["task-clock"].reason.as_deref(),
            Some("counters were not read")
        );
        assert!(!j.contains_key("time_enabled_ns"));
    }

    #[test]
    fn explain_maps_errnos() {
        let enoent = io::Error::from_raw_os_error(libc::ENOENT);
        let eopnotsupp = io::Error::from_raw_os_error(libc::EOPNOTSUPP);
        let none: &[String] = &[];
        let arm = ["armv8_pmuv3_0".to_string()];
        assert!(explain_with(Event::Cycles, &enoent, none).starts_with("no PMU"));
        // A PMU that lacks one event is still a PMU.
        for err in [&enoent, &eopnotsupp] {
            let why = explain_with(Event::DtlbLoadMisses, err, &arm);
            assert!(
                why.starts_with("event not supported by the PMU (armv8_pmuv3_0): "),
                "{why}"
            );
        }
        assert!(explain_with(Event::TaskClock, &enoent, &arm).starts_with("not supported"));
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert!(explain(Event::TaskClock, &eacces).starts_with("permission denied"));
    }

    #[test]
    fn snapshot_since_and_mock() {
        let a = Snapshot {
            values: BTreeMap::from([(Event::PageFaults, 3)]),
            ..Default::default()
        };
        let b = Snapshot {
            values: BTreeMap::from([(Event::PageFaults, 10), (Event::Cycles, 1)]),
            ..Default::default()
        };
        assert_eq!(b.since(&a).values, BTreeMap::from([(Event::PageFaults, 7)]));
        let mut m = MockCounters::new(vec![], vec![a.clone(), b.clone()]);
        m.enable().unwrap();
        assert_eq!(m.read().unwrap(), a);
        assert_eq!(m.read().unwrap(), b);
        assert_eq!(m.read().unwrap(), b);
        assert_eq!(m.enables, 1);
    }
}
