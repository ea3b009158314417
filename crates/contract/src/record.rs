//! What the runner prints and the result files keep, typed: the [`Variant`] a run measured, the
//! [`RunRecord`] of one run with its instrument's details ([`SimExtra`], [`RealExtra`]), the
//! per-invocation [`RealContext`] (environment and layout verification, captured once, not per
//! run), op-count rows, and the [`RunnerLine`] framing of the runner's `--json` output.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::vocab::{
    Accel, Arch, Clock, Contpte, Instrument, Mapcount, Mode, ModelOrder, OpCounter, Pause,
    RealLayout, SampleUnit, Sched, Strategy,
};

/// Version of the record and result-file schema; bumped on any incompatible change.
/// 1: strings everywhere, untyped `extra`, environment per record. 2: this module.
pub const SCHEMA_VERSION: u32 = 2;

fn is_false(b: &bool) -> bool {
    !*b
}

/// CPU-numbered maps: JSON keys are strings, and inside the internally tagged [`RunnerLine`]
/// serde hands them over as strings, which a `usize` key refuses; read them as digits.
fn cpu_keys<'de, D, V>(d: D) -> Result<BTreeMap<usize, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    BTreeMap::<String, V>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| {
            k.parse()
                .map(|cpu| (cpu, v))
                .map_err(|_| serde::de::Error::custom(format!("'{k}' is not a CPU number")))
        })
        .collect()
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A model variant: engine, strategy and the populated memory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SimVariant {
    pub arch: Arch,
    /// arm64 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contpte: Option<Contpte>,
    pub strategy: Strategy,
    pub order: ModelOrder,
    pub mem_bytes: u64,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mapcount: Mapcount,
    /// Ops were counted while timing (to measure what counting costs).
    #[serde(default, skip_serializing_if = "is_false")]
    pub counting: bool,
}

/// A real-fork variant: the kernel that ran, where, and the layout forked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RealVariant {
    pub arch: Arch,
    /// `uname -r` of the kernel that forked.
    pub kernel: String,
    /// Where that kernel ran.
    #[serde(default, skip_serializing_if = "is_default")]
    pub accel: Accel,
    /// What the samples count: `wall` (ns) or `icount` (guest instructions, exact).
    #[serde(default, skip_serializing_if = "is_default")]
    pub clock: Clock,
    pub layout: RealLayout,
    pub mem_bytes: u64,
    pub mode: Mode,
    /// The policy the forks actually ran under (after any fallback).
    pub sched: Sched,
    /// The layout check failed and `--allow-unverified` timed anyway.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unverified: bool,
}

/// What was measured: one cell of a results table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "instrument", rename_all = "lowercase")]
pub enum Variant {
    Sim(SimVariant),
    Real(RealVariant),
}

impl Variant {
    pub fn instrument(&self) -> Instrument {
        match self {
            Variant::Sim(_) => Instrument::Sim,
            Variant::Real(_) => Instrument::Real,
        }
    }

    pub fn arch(&self) -> Arch {
        match self {
            Variant::Sim(v) => v.arch,
            Variant::Real(v) => v.arch,
        }
    }

    pub fn mem_bytes(&self) -> u64 {
        match self {
            Variant::Sim(v) => v.mem_bytes,
            Variant::Real(v) => v.mem_bytes,
        }
    }

    /// The unit of this variant's samples: instructions for an icount guest, else ns.
    pub fn unit(&self) -> SampleUnit {
        match self {
            Variant::Sim(_) => SampleUnit::Nanoseconds,
            Variant::Real(v) => v.clock.unit(),
        }
    }

    pub fn mode(&self) -> Mode {
        match self {
            Variant::Sim(v) => v.mode,
            Variant::Real(v) => v.mode,
        }
    }

    /// `order9` for the model, `pte-order9`, `mthp-64k`, ... for real fork.
    pub fn layout_name(&self) -> String {
        match self {
            Variant::Sim(v) => format!("order{}", v.order),
            Variant::Real(v) => v.layout.to_string(),
        }
    }

    /// The row this run belongs to: the strategy for the model, the kernel for real fork.
    pub fn row_name(&self) -> String {
        match self {
            Variant::Sim(v) => v.strategy.name().to_string(),
            Variant::Real(v) => v.kernel.clone(),
        }
    }

    /// Behaviour-changing options, comma-separated, in a fixed order: `contpte-ena`,
    /// `large-only`, `counting` for the model; `sched-fifo`, `kvm`, `unverified` for real fork.
    /// Empty when none.
    pub fn options(&self) -> String {
        let mut o: Vec<String> = Vec::new();
        match self {
            Variant::Sim(v) => {
                o.extend(v.contpte.map(Contpte::label));
                if v.mapcount != Mapcount::PerPage {
                    o.push(v.mapcount.name().into());
                }
                if v.counting {
                    o.push("counting".into());
                }
            }
            Variant::Real(v) => {
                if v.sched != Sched::Other {
                    o.push(format!("sched-{}", v.sched));
                }
                if v.accel != Accel::Host {
                    o.push(v.accel.name().into());
                }
                if v.clock != Clock::Wall {
                    o.push(v.clock.name().into());
                }
                if v.unverified {
                    o.push("unverified".into());
                }
            }
        }
        o.join(",")
    }

    /// A short, stable identifier, e.g. `sim:x86_64:upstream:order9` or
    /// `real:x86_64:6.18.0:pte-order9:sched-fifo`.
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}:{}:{}:{}",
            self.instrument(),
            self.arch(),
            self.row_name(),
            self.layout_name()
        );
        let opts = self.options();
        if !opts.is_empty() {
            id.push(':');
            id.push_str(&opts);
        }
        id
    }
}

/// The privileged-op costs a modelled time adds (ns per op).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostModel {
    /// One range TLB invalidation of a 64 KiB contpte block, with its barrier.
    pub tlbi_ns: f64,
    /// One `flush_tlb_mm` of the parent at the end of fork.
    pub flush_tlb_mm_ns: f64,
}

/// Model-run details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimExtra {
    /// PTEs copied per fork.
    pub ptes: u64,
    /// Seed of the per-run strategy order.
    pub seed: u64,
    /// Bytes the model's arena and tables take.
    pub model_bytes: u64,
    /// The runner's peak RSS after this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Costs of privileged ops, when a modelled time was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_model: Option<CostModel>,
    /// ns the counted privileged ops add to one fork: modelled = measured + this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modelled_add_ns: Option<f64>,
}

/// Interference the driver saw during the runner call that produced a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostLoad {
    /// Busiest CPU other than the pinned one, % busy over the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpus_busy_pct: Option<f64>,
    /// % of the pinned CPU's time during the call that went to processes other than the
    /// runner and its forks (a CPU hog sharing the bench's CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_cpu_foreign_pct: Option<f64>,
    /// Other `forkbench` processes running during the call.
    pub concurrent_forkbench: u32,
}

/// Layout verification, summarised (the full report of the first check is in the
/// [`RealContext`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSummary {
    /// `full` (pagemap + kpageflags), `partial` or `none`.
    pub level: String,
    pub ok: bool,
    /// One line: what was seen.
    pub summary: String,
    /// Why the check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// One perf counter over the timed fork() calls of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterValue {
    /// Total; `None` when the event could not be counted.
    #[serde(default)]
    pub value: Option<u64>,
    /// Per fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_op: Option<f64>,
    /// Whether kernel-mode events were included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<bool>,
    /// Why there is no value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Why a timed iteration is flagged (its sample is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disturbance {
    /// Index of the timed iteration.
    pub iter: u32,
    /// `preempted`, `blocked`, `migrated`, `child-ran-first`, `context-switch`.
    pub reasons: Vec<String>,
}

/// The scheduling a run got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchedInfo {
    pub requested: Sched,
    pub effective: Sched,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Why the requested policy was not had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// How the fifo loop paused between iterations, and for how long in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    #[serde(default)]
    pub pause_total_ns: u64,
}

/// Busy and steal share of one CPU over a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CpuBusy {
    pub busy_pct: f64,
    pub steal_pct: f64,
}

/// The runner's memory after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryUse {
    pub vm_hwm_bytes: Option<u64>,
    pub vm_rss_bytes: Option<u64>,
    pub vm_pte_bytes: Option<u64>,
    pub region_rss_bytes: Option<u64>,
    /// Peak RSS minus what the region holds: the runner's own memory.
    pub runner_own_peak_bytes: Option<u64>,
}

/// Real-fork run details: what changes from run to run. Per-iteration vectors have one entry
/// per timed fork; sparse facts are index lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RealExtra {
    /// Index into the file's (or the runner output's) contexts.
    pub context: u32,
    /// Verification after this run.
    pub post: Option<CheckSummary>,
    /// Fork-to-reaped per timed iteration (ns).
    pub reaped_ns: Vec<u64>,
    /// Core-throughput probe before each timed fork (ns); empty when off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub core_probe_ns: Vec<u64>,
    /// When the child first ran, per timed iteration (its stamp minus t0, ns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_start_ns: Vec<Option<u64>>,
    /// Iterations whose child ran before the parent's second timestamp.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_ran_first: Vec<u32>,
    /// Iterations that changed CPU (or counted a cpu-migration).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrated: Vec<u32>,
    /// Involuntary / voluntary context switches and minor faults across each fork() call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nivcsw: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvcsw: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minflt: Vec<u64>,
    /// Flagged iterations (samples kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disturbances: Vec<Disturbance>,
    /// Untimed warm-up forks (ns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warmup_ns: Vec<u64>,
    /// The first fork of this run, warm-up included (ns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_fork_ns: Option<u64>,
    /// `fresh` mode: the untimed refresh before each fork (ns, minor faults).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refresh_ns: Vec<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refresh_minflt: Vec<u64>,
    /// perf counters by event name (`cycles`, `task-clock`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, CounterValue>,
    pub sched: Option<SchedInfo>,
    /// Busy/steal per CPU over the run.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "cpu_keys"
    )]
    pub cpu_load: BTreeMap<usize, CpuBusy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryUse>,
}

impl RealExtra {
    /// Iterations flagged as disturbed.
    pub fn disturbed_count(&self) -> usize {
        self.disturbances.len()
    }

    /// Busiest CPU other than `pinned` over the run.
    pub fn other_cpus_max_busy_pct(&self, pinned: Option<usize>) -> Option<f64> {
        self.cpu_load
            .iter()
            .filter(|(c, _)| Some(**c) != pinned)
            .map(|(_, l)| l.busy_pct)
            .reduce(f64::max)
    }
}

/// Kernel config options, with where they were read from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelConfig {
    /// `/proc/config.gz` or `/boot/config-<release>`; `None` if neither was readable.
    pub source: Option<String>,
    /// Requested option → `y`, `m`, a value, or `n` for "is not set" / absent.
    pub values: BTreeMap<String, String>,
    /// Why nothing could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A snapshot of the host a measurement ran on (captured by `hostenv::env::capture`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostEnv {
    pub kernel_release: String,
    pub kernel_version: String,
    /// `/proc/cmdline`.
    pub kernel_cmdline: Option<String>,
    /// This process's arguments (`argv`).
    pub command_line: Vec<String>,
    pub arch: String,
    pub hostname: String,
    pub cpu_model: Option<String>,
    pub cpus_online: Option<String>,
    /// The allowed CPU mask when the environment was captured (before any pinning).
    pub cpus_allowed: Option<String>,
    /// The CPU the measuring thread is pinned to (`None`: not pinned).
    pub pinned_cpu: Option<usize>,
    /// Base page size in bytes.
    pub page_size: Option<u64>,
    /// The `hypervisor` CPU flag (x86: running as a guest); `None` without a flags line.
    pub hypervisor_flag: Option<bool>,
    /// `/sys/hypervisor/type` and the DMI product, when readable.
    pub hypervisor_type: Option<String>,
    pub dmi_product: Option<String>,
    /// cpufreq `scaling_governor` per CPU id; empty without cpufreq.
    #[serde(deserialize_with = "cpu_keys")]
    pub cpufreq_governor: BTreeMap<usize, String>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
    pub euid: u32,
    pub clocksource: Option<String>,
    pub perf_event_paranoid: Option<i64>,
    /// PMUs under `/sys/bus/event_source/devices` (every event source, uncore and software
    /// ones included; see `core_pmus` for whether there is a hardware CPU PMU).
    pub pmus: Vec<String>,
    /// The CPU PMUs among them (`cpu`, `cpu_core`, `armv8_pmuv3_0`, `apple_*_pmu`, ...); empty
    /// means no hardware PMU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub core_pmus: Vec<String>,
    /// arm64: each distinct MIDR_EL1 with its CPU count and decoded core name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_midr: Vec<CpuMidr>,
    pub sched_rt_runtime_us: Option<i64>,
    pub sched_rt_period_us: Option<i64>,
    /// `prctl(PR_GET_THP_DISABLE)` of the capturing process.
    pub thp_disabled_by_prctl: Option<i32>,
    /// Requested sysfs files → selected value (`None` when unreadable).
    pub sysfs: BTreeMap<String, Option<String>>,
    pub kernel_config: KernelConfig,
}

/// A sysfs knob the runner switched while populating, and what it put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnobSwitch {
    pub path: String,
    pub original: String,
    pub written: String,
    pub switched_ns: u64,
    pub restored_value: String,
}

/// How the layout was set up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Populate {
    pub populate_ns: u64,
    /// pte-order9: time to PTE-map the THPs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pte_map_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysfs_switched: Vec<KnobSwitch>,
    /// pte-order9: `MADV_NOHUGEPAGE` after the split, so khugepaged does not collapse it.
    pub khugepaged_guard: bool,
    /// `PR_SET_THP_DISABLE` held during the runs (khugepaged leaves the mm alone).
    pub thp_disabled_for_runs: bool,
    /// Why it could not be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thp_disable_error: Option<String>,
}

/// Cost of one `clock_gettime(CLOCK_MONOTONIC)`, measured back to back before the runs (each
/// fork sample contains about one such call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimerCost {
    pub calls: u32,
    pub per_call_mean_ns: f64,
    pub per_call_median_ns: f64,
    pub per_call_min_ns: u64,
}

/// CPU pinning of a real-fork invocation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pinning {
    pub requested_cpu: Option<usize>,
    pub allowed_before: String,
    pub pinned: bool,
    pub cpu_at_start: Option<usize>,
}

/// What one `forkbench real` invocation set up, once for all its runs: the host, the plan, the
/// populate, the first (pre-run) verification with its full report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealContext {
    pub env: HostEnv,
    pub layout: RealLayout,
    pub mem_bytes: u64,
    pub iters: u32,
    pub runs: u32,
    pub pinning: Pinning,
    pub timer: TimerCost,
    pub populate: Populate,
    /// Verification before the first run, summarised.
    pub pre: CheckSummary,
    /// The full pre-run layout report (pagemap/kpageflags/smaps/vmstat observations); its
    /// shape belongs to `realfork::verify::LayoutReport`.
    pub pre_report: serde_json::Value,
    /// Set when the kernel ran in a QEMU guest: how it was booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<GuestBoot>,
    /// Set when the kernel ran on a lab device under a lab scheduler (LAVA): which device,
    /// which job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lab: Option<LabBoot>,
}

/// One arm64 MIDR_EL1 value (implementer/variant/part/revision) and how many CPUs have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMidr {
    pub implementer: u32,
    pub variant: u32,
    pub part: u32,
    pub revision: u32,
    pub cpus: usize,
    /// The decoded core name (Neoverse-N1, Apple M2 Avalanche, QEMU-max), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<String>,
}

/// How a kernel under test was booted in a QEMU guest (one per guest boot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestBoot {
    /// The accelerator the guest ran under.
    pub accel: Accel,
    /// Why that accelerator: asked for, or why `auto` fell back to TCG.
    pub accel_reason: String,
    /// The guest's clock: `icount` (1 ns per guest instruction) or `wall`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub clock: Clock,
    /// `qemu-system-* --version`, first line.
    pub qemu: String,
    /// The kernel image booted (its file name; a Debian package's name when taken from one).
    pub image: String,
    /// Guest architecture (`uname -m` style: x86_64, aarch64).
    pub guest_arch: String,
    pub vcpus: u32,
    pub guest_mem_bytes: u64,
    /// Wall time from launching QEMU to the guest's first frame, ms.
    pub boot_ms: u64,
    /// Guest page size in bytes.
    pub page_size: u64,
    /// Config lines of the image's kernel config that matter here (THP, mTHP, contpte, page size).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<(String, String)>,
}

/// Where a LAVA lab ran a kernel under test (one per lab job). The device's own facts (CPUs,
/// memory, THP, release) are the context's `env`, captured on the device; the run's `accel`
/// says whether the device was a board (`host`) or a QEMU device of the lab (`tcg`, `kvm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabBoot {
    /// The LAVA server the job ran on (its URL), or `lava-run` for a dispatcher run without
    /// a server.
    pub server: String,
    pub job_id: String,
    /// The device's name in the lab (its hostname there).
    pub device: String,
    pub device_type: String,
    /// The kernel image booted (its file name; a Debian package's name when taken from one),
    /// or `rootfs` when the board booted its own kernel and userspace.
    pub image: String,
    /// Config lines of the image's kernel config that matter here (THP, mTHP, contpte, page size).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<(String, String)>,
}

/// Exact op counts of one model fork (`forkbench counts --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsRow {
    pub arch: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contpte: Option<Contpte>,
    pub strategy: Strategy,
    pub order: ModelOrder,
    pub mem_bytes: u64,
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub mapcount: Mapcount,
    pub ops: BTreeMap<OpCounter, u64>,
}

/// One measured run: `samples_ns.len()` timed forks after `warmup` untimed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub variant: Variant,
    /// Index of this run within its variant (0-based).
    pub run_index: u32,
    pub warmup: u32,
    /// One sample per timed iteration, nanoseconds.
    pub samples_ns: Vec<u64>,
    /// CPU the run was pinned to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<usize>,
    /// Operation counts of one fork (model only; deterministic).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ops: BTreeMap<OpCounter, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimExtra>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<Box<RealExtra>>,
    /// Filled in by the driver (xtask), not the runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_load: Option<HostLoad>,
}

impl RunRecord {
    /// Mean of the samples in nanoseconds (NaN when there are none).
    pub fn mean_ns(&self) -> f64 {
        if self.samples_ns.is_empty() {
            return f64::NAN;
        }
        self.samples_ns.iter().map(|&s| s as f64).sum::<f64>() / self.samples_ns.len() as f64
    }

    /// Model only: mean ns per PTE copied.
    pub fn ns_per_pte(&self) -> Option<f64> {
        let ptes = self.sim.as_ref()?.ptes;
        (ptes > 0).then(|| self.mean_ns() / ptes as f64)
    }

    /// Model only: measured mean plus the modelled privileged ops.
    pub fn modelled_mean_ns(&self) -> Option<f64> {
        Some(self.mean_ns() + self.sim.as_ref()?.modelled_add_ns?)
    }

    /// The value of an op counter (model only).
    pub fn op(&self, c: OpCounter) -> Option<u64> {
        self.ops.get(&c).copied()
    }
}

/// The first line of every `--json` output: which schema the lines that follow are in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub schema: u32,
    pub tool_version: String,
}

impl Header {
    /// This build's header.
    pub fn current() -> Header {
        Header {
            schema: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

/// One line of the runner's `--json` output. A `header` comes first; a real-fork invocation
/// prints its `context` before its runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "lowercase")]
pub enum RunnerLine {
    Header(Header),
    Context(Box<RealContext>),
    Run(Box<RunRecord>),
    Counts(Box<CountsRow>),
}

impl RunnerLine {
    /// One JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("runner lines serialise")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sim_record() -> RunRecord {
        RunRecord {
            variant: Variant::Sim(SimVariant {
                arch: Arch::Arm64,
                contpte: Some(Contpte::Ena),
                strategy: Strategy::Upstream,
                order: ModelOrder::new(9).unwrap(),
                mem_bytes: 1 << 30,
                mode: Mode::Fresh,
                mapcount: Mapcount::PerPage,
                counting: false,
            }),
            run_index: 0,
            warmup: 2,
            samples_ns: vec![10, 20, 30],
            cpu: Some(1),
            ops: BTreeMap::from([(OpCounter::Batches, 512), (OpCounter::Tlbi, 32)]),
            sim: Some(SimExtra {
                ptes: 10,
                seed: 1,
                model_bytes: 0,
                peak_rss_bytes: None,
                cost_model: None,
                modelled_add_ns: Some(5.0),
            }),
            real: None,
            host_load: None,
        }
    }

    #[test]
    fn variants_name_rows_layouts_and_options() {
        let r = sim_record();
        assert_eq!(r.variant.id(), "sim:arm64:upstream:order9:contpte-ena");
        assert_eq!(r.mean_ns(), 20.0);
        assert_eq!(r.ns_per_pte(), Some(2.0));
        assert_eq!(r.modelled_mean_ns(), Some(25.0));
        assert_eq!(r.op(OpCounter::Tlbi), Some(32));
        let real = Variant::Real(RealVariant {
            arch: Arch::X86_64,
            kernel: "6.18.0".into(),
            accel: Accel::Tcg,
            clock: Default::default(),
            layout: RealLayout::Mthp { kb: 64 },
            mem_bytes: 1 << 30,
            mode: Mode::Steady,
            sched: Sched::Fifo,
            unverified: false,
        });
        assert_eq!(real.id(), "real:x86_64:6.18.0:mthp-64k:sched-fifo,tcg");
        assert_eq!(real.row_name(), "6.18.0");
        assert_eq!(real.unit(), SampleUnit::Nanoseconds);
        // An exact (icount) run is another variant in another unit: it never shares a cell
        // with a timed run.
        let Variant::Real(mut exact) = real.clone() else {
            unreachable!()
        };
        exact.clock = Clock::Icount;
        let exact = Variant::Real(exact);
        assert_eq!(
            exact.id(),
            "real:x86_64:6.18.0:mthp-64k:sched-fifo,tcg,icount"
        );
        assert_eq!(exact.unit(), SampleUnit::Instructions);
        assert_ne!(exact, real);
        let j = serde_json::to_string(&real).unwrap();
        assert!(
            !j.contains("clock"),
            "a wall clock is the default and not written: {j}"
        );
        let j = serde_json::to_string(&exact).unwrap();
        assert!(j.contains(r#""clock":"icount""#), "{j}");
        assert_eq!(serde_json::from_str::<Variant>(&j).unwrap(), exact);
    }

    #[test]
    fn runner_lines_round_trip_and_are_tagged() {
        let lines = [
            RunnerLine::Header(Header::current()),
            RunnerLine::Run(Box::new(sim_record())),
        ];
        for l in lines {
            let j = l.to_json();
            assert!(!j.contains('\n'));
            let back: RunnerLine = serde_json::from_str(&j).unwrap();
            assert_eq!(back, l);
        }
        // CPU-numbered maps survive the tagged framing.
        let mut real = sim_record();
        real.real = Some(Box::new(RealExtra {
            cpu_load: BTreeMap::from([(
                1,
                CpuBusy {
                    busy_pct: 50.0,
                    steal_pct: 0.0,
                },
            )]),
            ..RealExtra::default()
        }));
        let env = HostEnv {
            cpufreq_governor: BTreeMap::from([(0, "performance".to_string())]),
            ..HostEnv::default()
        };
        let env_line = serde_json::to_string(&env).unwrap();
        assert_eq!(serde_json::from_str::<HostEnv>(&env_line).unwrap(), env);
        let l = RunnerLine::Run(Box::new(real));
        assert_eq!(serde_json::from_str::<RunnerLine>(&l.to_json()).unwrap(), l);
        let j = RunnerLine::Run(Box::new(sim_record())).to_json();
        assert!(
            j.starts_with(r#"{"line":"run","variant":{"instrument":"sim","arch":"arm64","#),
            "{j}"
        );
        assert!(j.contains(r#""ops":{"tlbi":32,"batches":512}"#), "{j}");
    }
}
