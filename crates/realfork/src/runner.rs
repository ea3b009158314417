//! Orchestration of `forkbench real`: validate, pin, map and populate, verify, then for each run
//! time `warmup + iters` forks and re-verify; one [`RunRecord`] per run.
//!
//! `extra` keys of each record:
//! * `verification`: `{level, verified, pre: LayoutReport + summary, post: LayoutReport + summary}`
//! * `populate`: time to populate and to PTE-map, and every sysfs knob switched (with its
//!   original value, the value written and how long it was switched); `khugepaged_guard`
//!   (pte-order9 is `MADV_NOHUGEPAGE` after the split) and `thp_disabled_for_runs`
//!   (`PR_SET_THP_DISABLE` after the first verification, so khugepaged leaves the mm alone)
//! * `run_mean_ns`, `run_median_ns`, `reaped_mean_ns`, `reaped_median_ns`: this run's figures
//! * `reaped_ns`: fork-to-reaped per timed iteration; `warmup_ns`, `first_fork_ns`
//! * `core_probe_ns`: per timed iteration, the core-throughput probe taken just before the fork
//!   ([`crate::coreprobe`]; `null` with `--no-core-probe`)
//! * `child_start_ns`: per timed iteration, when the child first ran (its stamp minus t0);
//!   `child_ran_first`: whether that was before the parent's second timestamp
//! * `nivcsw`, `nvcsw`, `minflt`, `migrated`: per timed iteration, across the fork() call
//!   (migrated: the CPU changed or perf counted a cpu-migration)
//! * `disturbed` (bool per timed iteration), `disturbances` (`[{iter, reasons}]`),
//!   `disturbed_count`: preempted (involuntary context switch), blocked (voluntary context
//!   switch: fork() slept, e.g. on the mmap or anon_vma lock held by an rmap walker such as
//!   DAMON or kswapd, or a /proc reader), migrated (CPU changed or
//!   cpu-migrations counted), context-switch (perf counted one), child-ran-first (the child's
//!   stamp is earlier than the parent's second timestamp); such samples are kept, flagged
//! * `mode`: `{name, meaning, refresh_ns[], refresh_minflt[]}` (the refresh is outside timing)
//! * `counters`: perf totals over the timed fork() calls (`value`, `per_op`, or `null` + reason)
//! * `sched`: requested/effective policy, priority, fallback reason, total pause between
//!   iterations and how it was spent (`pause`: sleep or spin); `pinning`: requested CPU, allowed mask, CPU at start
//! * `cpu_load`: busy and steal % of every CPU during the run (`/proc/stat` deltas), and the
//!   busiest CPU other than the pinned one
//! * `timer`: cost of one `clock_gettime(CLOCK_MONOTONIC)` measured back to back before the
//!   runs, and its share of this run's mean fork time (the overhead inside each sample)
//! * `memory`: the runner's peak RSS (`VmHWM`) and the region's Rss after the run, and their
//!   difference (the runner's own memory), plus `VmPTE`
//! * `env`: the host environment; `runs`: how many runs were requested

use std::path::{Path, PathBuf};
use std::time::Duration;

use hostenv::counters::{self, Counters, Event, PerfCounters, Snapshot};
use hostenv::{cpu, procfs, sched, sysfs};
use results::{Instrument, RunRecord, SCHEMA_VERSION, Variant};
use serde_json::{Value, json};

use crate::RealError;
use crate::args::{Mode, Pause, Plan, RealArgs, SchedMode};
use crate::forkloop::{StampPage, timed_fork};
use crate::layout::{Layout, THP_ROOT, ThpInfo};
use crate::region::Region;
use crate::verify::{self, Deltas, LayoutReport};
use crate::vmstat::MmCounters;

/// Kernel config options recorded with every result (they change what fork costs).
pub const CONFIG_KEYS: &[&str] = &[
    "PAGE_MAPCOUNT",
    "NO_PAGE_MAPCOUNT",
    "MM_ID",
    "PARAVIRT",
    "PARAVIRT_XXL",
    "KVM_GUEST",
    "TRANSPARENT_HUGEPAGE",
    "TRANSPARENT_HUGEPAGE_ALWAYS",
    "TRANSPARENT_HUGEPAGE_MADVISE",
    "PGTABLE_LEVELS",
    "SPLIT_PTE_PTLOCKS",
    "PER_VMA_LOCK",
    "ARM64_CONTPTE",
    "MITIGATION_PAGE_TABLE_ISOLATION",
    "PAGE_TABLE_CHECK",
    "DEBUG_VM",
    "KASAN",
    "PROVE_LOCKING",
    "NUMA",
    "PREEMPT_NONE",
    "PREEMPT_VOLUNTARY",
    "PREEMPT",
    "PREEMPT_LAZY",
    "PREEMPT_DYNAMIC",
    "HZ",
    "MEMCG",
];

/// Run `forkbench real` and collect the records.
pub fn run(args: &RealArgs) -> Result<Vec<RunRecord>, RealError> {
    let mut out = Vec::new();
    run_each(args, &mut |r| out.push(r.clone()))?;
    Ok(out)
}

/// Run `forkbench real`, handing each record to `on_record` as soon as its run is verified.
pub fn run_each(args: &RealArgs, on_record: &mut dyn FnMut(&RunRecord)) -> Result<(), RealError> {
    let plan = args.plan()?;
    let thp = ThpInfo::read(Path::new(THP_ROOT));
    preflight(&plan, &thp)?;
    hostenv::cleanup::install();

    let allowed = cpu::allowed_cpus()?;
    let mut env = capture_env(&thp);
    env.pinned_cpu = plan.cpu;
    let label = plan
        .label
        .clone()
        .unwrap_or_else(|| env.kernel_release.clone());
    let arch = if env.arch.is_empty() {
        std::env::consts::ARCH.to_string()
    } else {
        env.arch.clone()
    };
    let pinned = plan.cpu.map(cpu::pin_current_thread).transpose()?;
    let pinning = json!({
        "requested_cpu": plan.cpu,
        "allowed_before": allowed.to_string(),
        "pinned": pinned.is_some(),
        "cpu_at_start": cpu::current_cpu(),
    });

    let timer = calibrate_timer();
    let stamp = StampPage::new().map_err(|e| RealError::io("mapping the stamp page", e))?;
    let mut region = Region::map(plan.mem).map_err(|e| RealError::io("mapping the region", e))?;
    let prep = prepare(&mut region, &plan, &thp)?;

    let t = hostenv::monotonic_ns();
    let obs = verify::observe(region.start(), region.len(), plan.use_pagemap);
    let mut pre = verify::judge(
        plan.layout,
        plan.mem,
        "before",
        obs,
        prep.deltas.clone(),
        false,
    );
    pre.verify_ns = hostenv::monotonic_ns().saturating_sub(t);
    if !pre.ok && !plan.allow_unverified {
        let hint = if hostenv::thp_disable_flag().ok() == Some(1) {
            " (THP is disabled for this process by prctl(PR_SET_THP_DISABLE))"
        } else {
            ""
        };
        return Err(RealError::Unverified(format!(
            "{}{hint}; refusing to time (--allow-unverified times anyway)",
            pre.failure()
        )));
    }

    // Keep khugepaged out of this mm during the runs: it scans an mm that ever had
    // MADV_HUGEPAGE under mmap_read_lock (nice 19, so it can be preempted while holding it),
    // and fork() then sleeps on mmap_write_lock inside the timed section. With THP disabled for
    // the process, khugepaged drops the mm at its next visit. fork() does not consult the flag
    // when copying, and the layout is already in place (and re-verified after every run).
    let thp_guard = ThpDisabled::set();
    let khugepaged_excluded = thp_guard.as_ref().map(|_| ()).map_err(Clone::clone);
    let mut counters = PerfCounters::open(&Event::ALL);
    let mut counters_ok = counters.status().iter().any(|s| s.available);
    let mut counter_failure: Option<String> = None;

    for run_index in 0..plan.runs {
        let vm0 = MmCounters::read(&thp.root);
        let stat0 = procfs::read_stat().ok();
        let (fifo, sched_info) = enter_sched(&plan);
        let data = run_loop(
            &mut region,
            &stamp,
            &plan,
            if counters_ok {
                Some(&mut counters as &mut dyn Counters)
            } else {
                None
            },
            fifo.as_ref().filter(|g| g.policy() == sched::Policy::Fifo),
        );
        drop(fifo);
        let data = data?;
        if let Some(e) = &data.counter_error {
            counters_ok = false;
            counter_failure.get_or_insert(e.clone());
        }
        let stat1 = procfs::read_stat().ok();
        let vm1 = MmCounters::read(&thp.root);

        let t = hostenv::monotonic_ns();
        let obs = verify::observe(region.start(), region.len(), plan.use_pagemap);
        let deltas = Deltas {
            run: match (&vm0, &vm1) {
                (Some(a), Some(b)) => Some(b.since(a)),
                _ => None,
            },
            ..Default::default()
        };
        let stage = format!("after run {run_index}");
        let mut post = verify::judge(plan.layout, plan.mem, &stage, obs, deltas, true);
        post.verify_ns = hostenv::monotonic_ns().saturating_sub(t);
        if !post.ok && !plan.allow_unverified {
            return Err(RealError::Unverified(format!(
                "{}; the samples of this run are discarded",
                post.failure()
            )));
        }

        let memory = memory_json(&post);
        let cpu_load = match (&stat0, &stat1) {
            (Some(a), Some(b)) => load_json(a, b, plan.cpu),
            _ => Value::Null,
        };
        let rec = record(RecordParts {
            plan: &plan,
            arch: &arch,
            label: &label,
            run_index,
            data,
            pre: &pre,
            post: &post,
            prep: &prep,
            khugepaged_excluded: &khugepaged_excluded,
            sched_info,
            pinning: pinning.clone(),
            cpu_load,
            timer: &timer,
            memory,
            counters: &counters,
            counters_used: counters_ok,
            counter_failure: counter_failure.clone(),
            env: &env,
        });
        on_record(&rec);
    }
    drop(thp_guard);
    drop(pinned);
    drop(region);
    Ok(())
}

/// THP disabled for this process (`PR_SET_THP_DISABLE`) while this exists; dropping it puts
/// the previous setting back (the library may run in a process that uses THP afterwards).
struct ThpDisabled {
    previous: bool,
}

impl ThpDisabled {
    fn set() -> Result<ThpDisabled, String> {
        let previous =
            hostenv::thp_disable_flag().map_err(|e| format!("PR_GET_THP_DISABLE: {e}"))?;
        hostenv::set_thp_disable(true).map_err(|e| format!("PR_SET_THP_DISABLE: {e}"))?;
        Ok(ThpDisabled {
            previous: previous != 0,
        })
    }
}

impl Drop for ThpDisabled {
    fn drop(&mut self) {
        // Re-allowing THP cannot fail for a process that could disable it.
        let _ = hostenv::set_thp_disable(self.previous);
    }
}

/// Checks that need the host but change nothing.
fn preflight(plan: &Plan, thp: &ThpInfo) -> Result<(), RealError> {
    thp.check(plan.layout).map_err(|e| {
        let hint = if plan.layout != Layout::Order0
            && plan.layout != Layout::Untouched
            && hostenv::thp_disable_flag().ok() == Some(1)
        {
            " (also: THP is disabled for this process by prctl(PR_SET_THP_DISABLE))"
        } else {
            ""
        };
        RealError::BadInput(format!("{e}{hint}"))
    })?;
    if let Some(c) = plan.cpu {
        cpu::validate(c, &cpu::allowed_cpus()?)?;
    }
    if plan.layout.populated() {
        let avail = procfs::mem_available_bytes()?;
        let need = plan.mem + (plan.mem / 16).max(64 << 20);
        if avail < need {
            return Err(RealError::BadInput(format!(
                "not enough memory: --mem {} MiB needs about {} MiB available, but MemAvailable is {} MiB",
                plan.mem >> 20,
                need >> 20,
                avail >> 20
            )));
        }
        if let Some((room, cg)) = procfs::cgroup_memory_headroom()
            && room < need
        {
            return Err(RealError::BadInput(format!(
                "not enough memory: --mem {} MiB needs about {} MiB, but the memory cgroup {cg} allows only {} MiB more",
                plan.mem >> 20,
                need >> 20,
                room >> 20
            )));
        }
    }
    Ok(())
}

/// Cost of one `clock_gettime(CLOCK_MONOTONIC)` call, measured back to back.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TimerCost {
    calls: u32,
    mean_ns: f64,
    median_ns: f64,
    min_ns: u64,
}

fn calibrate_timer() -> TimerCost {
    const CALLS: u32 = 100_000;
    let mut deltas = Vec::with_capacity(CALLS as usize);
    let mut prev = hostenv::monotonic_ns();
    for _ in 0..CALLS {
        let now = hostenv::monotonic_ns();
        deltas.push(now.saturating_sub(prev));
        prev = now;
    }
    let mean_ns = deltas.iter().sum::<u64>() as f64 / f64::from(CALLS);
    deltas.sort_unstable();
    TimerCost {
        calls: CALLS,
        mean_ns,
        median_ns: deltas[deltas.len() / 2] as f64,
        min_ns: deltas[0],
    }
}

/// The runner's own memory: peak RSS minus what the region holds.
fn memory_json(post: &LayoutReport) -> Value {
    let hwm = procfs::self_status_bytes("VmHWM");
    let rss = procfs::self_status_bytes("VmRSS");
    let region = post.observation.smaps.as_ref().map(|s| s.rss_kb * 1024);
    json!({
        "vm_hwm_bytes": hwm,
        "vm_rss_bytes": rss,
        "vm_pte_bytes": procfs::self_status_bytes("VmPTE"),
        "region_rss_bytes": region,
        "runner_own_peak_bytes": match (hwm, region) {
            (Some(h), Some(r)) => Some(h.saturating_sub(r)),
            _ => None,
        },
    })
}

fn capture_env(thp: &ThpInfo) -> hostenv::env::HostEnv {
    let r = &thp.root;
    let mut paths: Vec<PathBuf> = [
        "enabled",
        "defrag",
        "hpage_pmd_size",
        "shrink_underused",
        "use_zero_page",
        "khugepaged/defrag",
        "khugepaged/pages_to_scan",
        "khugepaged/scan_sleep_millisecs",
        "khugepaged/max_ptes_none",
        "khugepaged/max_ptes_shared",
        "khugepaged/max_ptes_swap",
    ]
    .iter()
    .map(|p| r.join(p))
    .collect();
    paths.extend(thp.sizes.keys().map(|&kb| thp.size_knob(kb)));
    hostenv::env::capture(&paths, CONFIG_KEYS)
}

/// What setting up the layout did.
#[derive(Debug, Clone)]
struct Prepared {
    populate_ns: u64,
    split_ns: Option<u64>,
    deltas: Deltas,
    knobs: Vec<Value>,
}

fn prepare(region: &mut Region, plan: &Plan, thp: &ThpInfo) -> Result<Prepared, RealError> {
    let madv = |r: &Region, a, name: &str| {
        r.madvise(a)
            .map_err(|e| RealError::io(format!("madvise({name})"), e))
    };
    let mut knobs = Vec::new();
    let mut split_ns = None;
    let mut deltas = Deltas::default();
    // The counter deltas below are system-wide. Hold a lock on the THP sysfs directory while
    // they are taken: shared for most layouts, exclusive while an mTHP knob is switched, so a
    // concurrent forkbench process's mTHP populate can neither move these deltas nor be moved
    // by them. (Best effort: without the directory there are no THP counters either.)
    let _lock = if plan.layout.populated() {
        let l = match plan.layout {
            Layout::Mthp { .. } => sysfs::ExclusiveLock::acquire(&thp.root),
            _ => sysfs::ExclusiveLock::acquire_shared(&thp.root),
        };
        match (l, plan.layout) {
            (Ok(l), _) => Some(l),
            (Err(e), Layout::Mthp { .. }) => return Err(e.into()),
            (Err(_), _) => None,
        }
    } else {
        None
    };
    let before = MmCounters::read(&thp.root);
    let mut populate_ns = 0;
    match plan.layout {
        Layout::Untouched => {}
        Layout::Order0 => {
            madv(region, libc::MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE")?;
            populate_ns = populate(region);
        }
        Layout::PteOrder9 | Layout::PmdOrder9 => {
            madv(region, libc::MADV_HUGEPAGE, "MADV_HUGEPAGE")?;
            populate_ns = populate(region);
        }
        Layout::Mthp { kb } => {
            let knob = thp.size_knob(kb);
            // Knob switching is serialised with every other forkbench process (whatever size
            // it switches) by the exclusive lock above; re-check under it that no larger size
            // is `always`.
            ThpInfo::read(&thp.root)
                .check(plan.layout)
                .map_err(RealError::BadInput)?;
            let t = hostenv::monotonic_ns();
            let guard = sysfs::SysfsGuard::set(&knob, "always").map_err(|e| {
                RealError::BadInput(format!(
                    "cannot enable mTHP size {kb}k for populating: {e}{}",
                    if hostenv::geteuid() != 0 {
                        " (needs root)"
                    } else {
                        ""
                    }
                ))
            })?;
            let original = guard.original().to_string();
            populate_ns = populate(region);
            guard.restore()?;
            let window = hostenv::monotonic_ns().saturating_sub(t);
            let now = sysfs::read_selected(&knob).unwrap_or_default();
            knobs.push(json!({
                "path": knob.display().to_string(),
                "original": original,
                "written": "always",
                "switched_ns": window,
                "restored_value": now,
            }));
        }
    }
    let after = MmCounters::read(&thp.root);
    if let (Some(a), Some(b)) = (&before, &after) {
        deltas.populate = Some(b.since(a));
    }
    if plan.layout == Layout::PteOrder9 {
        deltas.smaps_before_split =
            crate::smaps::read_range(region.start(), region.start() + region.len()).ok();
        let t = hostenv::monotonic_ns();
        region
            .pte_map_chunks()
            .map_err(|e| RealError::io("PTE-mapping the THPs", e))?;
        split_ns = Some(hostenv::monotonic_ns().saturating_sub(t));
        let split = MmCounters::read(&thp.root);
        if let (Some(a), Some(b)) = (&after, &split) {
            deltas.split = Some(b.since(a));
        }
        // Keep khugepaged from collapsing the PTE-mapped THPs back into PMD mappings during
        // the runs (seen on the development VM within seconds). Splits nothing, and fork does
        // not look at the flag for PTE-mapped memory.
        madv(
            region,
            libc::MADV_NOHUGEPAGE,
            "MADV_NOHUGEPAGE (khugepaged guard)",
        )?;
    }
    Ok(Prepared {
        populate_ns,
        split_ns,
        deltas,
        knobs,
    })
}

/// Write a non-zero byte to every page (so the THP shrinker never sees zero-filled pages).
fn populate(region: &mut Region) -> u64 {
    let t = hostenv::monotonic_ns();
    region.write_each_page(0x5a);
    hostenv::monotonic_ns().saturating_sub(t)
}

fn enter_sched(plan: &Plan) -> (Option<sched::FifoGuard>, Value) {
    let rt = sched::rt_budget();
    let requested = match plan.sched {
        SchedMode::Other => {
            return (
                None,
                json!({"requested": "other", "effective": "other", "rt_budget_us": rt}),
            );
        }
        SchedMode::Batch => "batch",
        SchedMode::Fifo => "fifo",
    };
    let mut fallback = None;
    if plan.sched == SchedMode::Fifo {
        match sched::set_fifo(plan.fifo_priority) {
            Ok(g) => {
                let p = g.priority();
                return (
                    Some(g),
                    json!({
                        "requested": requested,
                        "effective": "fifo",
                        "priority": p,
                        "children_inherit": true,
                        "rt_budget_us": rt,
                    }),
                );
            }
            Err(e) => fallback = Some(e.to_string()),
        }
    }
    match sched::set_batch() {
        Ok(g) => (
            Some(g),
            json!({
                "requested": requested,
                "effective": "batch",
                "children_inherit": true,
                "fallback": fallback,
                "rt_budget_us": rt,
            }),
        ),
        Err(e) => {
            let why = match fallback {
                Some(f) => format!("{f}; {e}"),
                None => e.to_string(),
            };
            (
                None,
                json!({
                    "requested": requested,
                    "effective": "other",
                    "fallback": why,
                    "rt_budget_us": rt,
                }),
            )
        }
    }
}

/// Samples and side measurements of one run.
#[derive(Debug, Default)]
struct RunData {
    samples: Vec<u64>,
    reaped: Vec<u64>,
    warmup: Vec<u64>,
    first_fork_ns: Option<u64>,
    nivcsw: Vec<u64>,
    nvcsw: Vec<u64>,
    minflt: Vec<u64>,
    migrated: Vec<bool>,
    disturbed: Vec<bool>,
    disturbances: Vec<Value>,
    refresh_ns: Vec<u64>,
    refresh_minflt: Vec<u64>,
    child_start: Vec<Option<u64>>,
    child_first: Vec<bool>,
    core_probe: Vec<u64>,
    pause_ns: u64,
    counters_total: Option<Snapshot>,
    counter_error: Option<String>,
}

fn add_into(total: &mut Snapshot, d: &Snapshot) {
    for (e, v) in &d.values {
        *total.values.entry(*e).or_insert(0) += v;
    }
    total.time_enabled_ns += d.time_enabled_ns;
    total.time_running_ns += d.time_running_ns;
}

fn run_loop<'c>(
    region: &mut Region,
    stamp: &StampPage,
    plan: &Plan,
    mut counters: Option<&mut (dyn Counters + 'c)>,
    fifo: Option<&sched::FifoGuard>,
) -> Result<RunData, RealError> {
    let mut d = RunData::default();
    let mut prev = match counters.as_deref_mut() {
        Some(c) => match c.read() {
            Ok(s) => Some(s),
            Err(e) => {
                d.counter_error = Some(format!("read: {e}"));
                counters = None;
                None
            }
        },
        None => None,
    };
    if counters.is_some() {
        d.counters_total = Some(Snapshot::default());
    }
    let fresh = plan.mode == Mode::Fresh && plan.layout.populated();
    let total = plan.warmup + plan.iters;
    for i in 0..total {
        let timed = i >= plan.warmup;
        let mut busy_ns = 0;
        if fresh {
            let ru0 = hostenv::getrusage_thread().map_err(|e| RealError::io("getrusage", e))?;
            let t = hostenv::monotonic_ns();
            region.write_each_page((i % 255 + 1) as u8);
            let ns = hostenv::monotonic_ns().saturating_sub(t);
            let ru1 = hostenv::getrusage_thread().map_err(|e| RealError::io("getrusage", e))?;
            busy_ns += ns;
            if timed {
                d.refresh_ns.push(ns);
                d.refresh_minflt.push(ru1.minflt.saturating_sub(ru0.minflt));
            }
        }
        let probe = plan.core_probe.then(crate::coreprobe::probe_ns);
        busy_ns += probe.unwrap_or(0);
        let f = timed_fork(stamp, counters.as_deref_mut())
            .map_err(|e| RealError::io(format!("timed fork {i} of run"), e))?;
        busy_ns += f.reaped_ns;
        if d.first_fork_ns.is_none() {
            d.first_fork_ns = Some(f.fork_ns);
        }
        let mut delta = None;
        if let Some(e) = &f.counter_error {
            d.counter_error.get_or_insert(e.clone());
            counters = None;
            d.counters_total = None;
        } else if let (Some(now), Some(p)) = (&f.counters, &prev) {
            delta = Some(now.since(p));
            prev = f.counters.clone();
        }
        if timed {
            let mut reasons = Vec::new();
            if f.nivcsw > 0 {
                reasons.push("preempted");
            }
            if f.nvcsw > 0 {
                reasons.push("blocked");
            }
            let migrations = delta.as_ref().and_then(|s| s.get(Event::CpuMigrations));
            let migrated = f.cpu_before != f.cpu_after || migrations.unwrap_or(0) > 0;
            if migrated {
                reasons.push("migrated");
            }
            if f.child_ran_first {
                reasons.push("child-ran-first");
            }
            if f.nivcsw == 0
                && f.nvcsw == 0
                && delta
                    .as_ref()
                    .and_then(|s| s.get(Event::ContextSwitches))
                    .unwrap_or(0)
                    > 0
            {
                reasons.push("context-switch");
            }
            let iter = d.samples.len();
            d.samples.push(f.fork_ns);
            d.reaped.push(f.reaped_ns);
            d.nivcsw.push(f.nivcsw);
            d.nvcsw.push(f.nvcsw);
            d.minflt.push(f.minflt);
            d.migrated.push(migrated);
            d.child_start.push(f.child_start_ns);
            d.child_first.push(f.child_ran_first);
            if let Some(p) = probe {
                d.core_probe.push(p);
            }
            d.disturbed.push(!reasons.is_empty());
            if !reasons.is_empty() {
                d.disturbances
                    .push(json!({"iter": iter, "reasons": reasons, "fork_ns": f.fork_ns}));
            }
            if let (Some(t), Some(dl)) = (d.counters_total.as_mut(), &delta) {
                add_into(t, dl);
            }
        } else {
            d.warmup.push(f.fork_ns);
        }
        if let Some(guard) = fifo {
            // Stay well under the RT throttling budget; outside any timed section.
            let pause = Duration::from_nanos((busy_ns / 5).max(1_000_000));
            match plan.pause {
                Pause::Spin => guard.spin_as_other(pause).map_err(RealError::from)?,
                Pause::Sleep => std::thread::sleep(pause),
            }
            d.pause_ns += u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX);
        }
    }
    Ok(d)
}

fn load_json(
    a: &std::collections::BTreeMap<usize, procfs::CpuTimes>,
    b: &std::collections::BTreeMap<usize, procfs::CpuTimes>,
    pinned: Option<usize>,
) -> Value {
    let load = procfs::load_between(a, b);
    let other_max = load
        .iter()
        .filter(|(c, _)| Some(**c) != pinned)
        .map(|(_, l)| l.busy_pct)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
    json!({
        "per_cpu": load.iter().map(|(c, l)| (c.to_string(), json!(l))).collect::<serde_json::Map<_, _>>(),
        "other_cpus_max_busy_pct": other_max,
    })
}

struct RecordParts<'a> {
    plan: &'a Plan,
    arch: &'a str,
    label: &'a str,
    run_index: u32,
    data: RunData,
    pre: &'a LayoutReport,
    post: &'a LayoutReport,
    prep: &'a Prepared,
    khugepaged_excluded: &'a Result<(), String>,
    sched_info: Value,
    pinning: Value,
    cpu_load: Value,
    timer: &'a TimerCost,
    memory: Value,
    counters: &'a PerfCounters,
    counters_used: bool,
    counter_failure: Option<String>,
    env: &'a hostenv::env::HostEnv,
}

fn report_json(r: &LayoutReport) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("summary".into(), r.summary().into());
        if !r.ok {
            m.insert("failure".into(), r.failure().into());
        }
    }
    v
}

/// Floats in records are rounded so that they survive a JSON round trip exactly (serde_json's
/// default float parser is exact for short decimals).
fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn record(p: RecordParts<'_>) -> RunRecord {
    let verified = p.pre.ok && p.post.ok;
    let mut options = Vec::new();
    match p.sched_info["effective"].as_str() {
        Some("fifo") => options.push("sched-fifo"),
        Some("batch") => options.push("sched-batch"),
        _ => {}
    }
    if !verified {
        options.push("unverified");
    }
    let d = p.data;
    let forks = d.samples.len() as u64;
    let mut status = p.counters.status().to_vec();
    if let Some(why) = &p.counter_failure {
        for s in status.iter_mut().filter(|s| s.available) {
            s.reason = Some(format!("counting stopped: {why}"));
        }
    }
    let counters_json = counters::report(
        &status,
        if p.counters_used {
            d.counters_total.as_ref()
        } else {
            None
        },
        forks,
    );
    let mode_meaning = match p.plan.mode {
        Mode::Steady => {
            "steady: the same parent forks again; after the first fork its PTEs stay write-protected and its pages are no longer AnonExclusive"
        }
        Mode::Fresh => {
            "fresh: before each fork one byte per page is written (outside the timed section), so the parent's PTEs are writable and its folios exclusive again"
        }
    };
    let f64s = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    // The same formula as `RunRecord::mean_ns`, so readers can compare the two exactly.
    let mean = |v: &[u64]| {
        (!v.is_empty()).then(|| v.iter().map(|&s| s as f64).sum::<f64>() / v.len() as f64)
    };
    let run_mean = mean(&d.samples);
    let reaped_mean = mean(&d.reaped).map(round3);
    let mut sched_json = p.sched_info;
    sched_json["pause_between_iterations_ns"] = d.pause_ns.into();
    if d.pause_ns > 0 {
        sched_json["pause"] = p.plan.pause.to_string().into();
    }
    let extra = json!({
        "verification": {
            "level": p.pre.level.min(p.post.level),
            "verified": verified,
            "pre": report_json(p.pre),
            "post": report_json(p.post),
        },
        "populate": {
            "populate_ns": p.prep.populate_ns,
            "pte_map_ns": p.prep.split_ns,
            "sysfs_switched": p.prep.knobs,
            "khugepaged_guard": p.plan.layout == Layout::PteOrder9,
            "thp_disabled_for_runs": match p.khugepaged_excluded {
                Ok(()) => json!(true),
                Err(e) => json!({"failed": e}),
            },
        },
        "run_mean_ns": run_mean,
        "run_median_ns": stats::median(&f64s(&d.samples)),
        "reaped_mean_ns": reaped_mean,
        "reaped_median_ns": stats::median(&f64s(&d.reaped)),
        "reaped_ns": d.reaped,
        "child_start_ns": d.child_start,
        "child_ran_first": d.child_first,
        "child_ran_first_count": d.child_first.iter().filter(|&&b| b).count(),
        "core_probe_ns": if d.core_probe.is_empty() { Value::Null } else { json!(d.core_probe) },
        "warmup_ns": d.warmup,
        "first_fork_ns": d.first_fork_ns,
        "first_fork_of_process": p.run_index == 0,
        "nivcsw": d.nivcsw,
        "nvcsw": d.nvcsw,
        "minflt": d.minflt,
        "migrated": d.migrated,
        "disturbed": d.disturbed,
        "disturbed_count": d.disturbances.len(),
        "disturbances": d.disturbances,
        "mode": {
            "name": p.plan.mode.to_string(),
            "meaning": mode_meaning,
            "refresh_ns": d.refresh_ns,
            "refresh_minflt": d.refresh_minflt,
        },
        "counters": counters_json,
        "sched": sched_json,
        "pinning": p.pinning,
        "cpu_load": p.cpu_load,
        "timer": {
            "what": "one clock_gettime(CLOCK_MONOTONIC) call, measured back to back before the runs; each fork sample contains about one such call",
            "calls": p.timer.calls,
            "per_call_mean_ns": round3(p.timer.mean_ns),
            "per_call_median_ns": p.timer.median_ns,
            "per_call_min_ns": p.timer.min_ns,
            "share_of_fork_mean_pct": run_mean.map(|m| round6(100.0 * p.timer.mean_ns / m)),
        },
        "memory": p.memory,
        "runs": p.plan.runs,
        "iters": p.plan.iters,
        "env": p.env,
    });
    RunRecord {
        schema: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        variant: Variant {
            instrument: Instrument::Real,
            arch: p.arch.to_string(),
            strategy: p.label.to_string(),
            layout: p.plan.layout.to_string(),
            mem_bytes: p.plan.mem,
            mode: p.plan.mode.to_string(),
            options: options.join(","),
        },
        run_index: p.run_index,
        warmup: p.plan.warmup,
        samples_ns: d.samples,
        ops: Default::default(),
        cpu: p.plan.cpu,
        extra,
    }
}
