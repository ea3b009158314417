//! Orchestration of `forkbench real`: validate, pin, map and populate, verify, then for each run
//! time `warmup + iters` forks and re-verify.
//!
//! What is the same for every run is captured once, in the [`RealContext`]: the host
//! environment, pinning, the timer's cost, how the layout was populated (sysfs knobs switched,
//! khugepaged guards) and the pre-run verification with its full report. Each run is one
//! [`RunRecord`] whose [`RealExtra`] holds only what changes per run: the post-run verification
//! summary, per-iteration vectors (fork-to-reaped, core probe, child start, context switches,
//! minor faults, fresh-mode refresh), sparse index lists (migrated, child ran first), the
//! disturbances with their reasons, perf counter totals, the scheduling had, the load on every
//! CPU and the runner's memory. Disturbance reasons: preempted (involuntary context switch),
//! blocked (voluntary context switch: fork() slept, e.g. on the mmap or anon_vma lock held by
//! an rmap walker such as DAMON or kswapd, or a /proc reader), migrated (CPU changed or
//! cpu-migrations counted), context-switch (perf counted one), child-ran-first (the child's
//! stamp is earlier than the parent's second timestamp); such samples are kept, flagged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use contract::{
    Accel, Arch, CheckSummary, CpuBusy, Disturbance, KnobSwitch, MemoryUse, Mode, Pause, Pinning,
    Populate, RealContext, RealExtra, RealLayout, RealOpts, RealVariant, RunRecord, Sched,
    SchedInfo, TimerCost, Variant,
};
use hostenv::counters::{self, Counters, Event, PerfCounters, Snapshot};
use hostenv::journal::{Journal, StaleKnob};
use hostenv::{cpu, procfs, sched, sysfs};

use crate::RealError;
use crate::args::{Plan, plan};
use crate::forkloop::{StampPage, timed_fork};
use crate::layout::{THP_ROOT, ThpInfo};
use crate::region::{BlockSelection, Region};
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

/// What one `forkbench real` invocation measured: its context (captured once) and one record
/// per run, each pointing at that context (`real.context == 0`).
#[derive(Debug, Clone, PartialEq)]
pub struct RealOutput {
    pub context: RealContext,
    pub runs: Vec<RunRecord>,
}

/// Run `forkbench real` and collect its context and records.
pub fn run(opts: &RealOpts) -> Result<RealOutput, RealError> {
    let mut context = None;
    let mut runs = Vec::new();
    run_each(opts, &mut |c| context = Some(c.clone()), &mut |r| {
        runs.push(r.clone())
    })?;
    let context = context.expect("run_each hands over the context before it returns Ok");
    Ok(RealOutput { context, runs })
}

/// Run `forkbench real`: `on_context` gets the invocation's context once, before the first run;
/// `on_record` each run's record as soon as the run is verified.
pub fn run_each(
    opts: &RealOpts,
    on_context: &mut dyn FnMut(&RealContext),
    on_record: &mut dyn FnMut(&RunRecord),
) -> Result<(), RealError> {
    let plan = plan(opts)?;
    if plan.tick_align {
        // Exact mode: every run's forks must see the same parent (see pin_malloc_footprint).
        hostenv::pin_malloc_footprint();
    }
    let arch = Arch::host().ok_or_else(|| {
        RealError::Unsupported(format!(
            "real fork runs on x86_64 and arm64 only, not {}",
            std::env::consts::ARCH
        ))
    })?;
    crate::layout::check_page_size(hostenv::page_size()).map_err(RealError::Unsupported)?;
    let mut thp = ThpInfo::read(Path::new(THP_ROOT));
    if plan.layout.mthp_knob_kb().is_some() && !repair_stale_knobs(&thp)?.is_empty() {
        thp = ThpInfo::read(&thp.root);
    }
    preflight(&plan, &thp)?;
    hostenv::cleanup::install();

    let allowed = cpu::allowed_cpus()?;
    let mut env = capture_env(&thp);
    env.pinned_cpu = plan.cpu;
    let pinned = plan.cpu.map(cpu::pin_current_thread).transpose()?;
    let pinning = Pinning {
        requested_cpu: plan.cpu,
        allowed_before: allowed.to_string(),
        pinned: pinned.is_some(),
        cpu_at_start: cpu::current_cpu(),
    };

    let timer = calibrate_timer();
    let stamp = StampPage::new().map_err(|e| RealError::io("mapping the stamp page", e))?;
    let mut region = Region::map(plan.mem).map_err(|e| RealError::io("mapping the region", e))?;
    let prep = prepare(&mut region, &plan, &thp)?;

    let t = hostenv::monotonic_ns();
    let obs = verify::observe_layout(plan.layout, region.start(), region.len(), plan.use_pagemap);
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
    let context = RealContext {
        env,
        layout: plan.layout,
        mem_bytes: plan.mem,
        iters: plan.iters,
        runs: plan.runs,
        pinning,
        timer,
        populate: Populate {
            populate_ns: prep.populate_ns,
            pte_map_ns: prep.split_ns,
            sysfs_switched: prep.knobs,
            khugepaged_guard: matches!(plan.layout, RealLayout::PteOrder9 | RealLayout::MixPmd),
            thp_disabled_for_runs: thp_guard.is_ok(),
            thp_disable_error: thp_guard.as_ref().err().cloned(),
        },
        pre: check_summary(&pre),
        pre_report: serde_json::to_value(&pre).unwrap_or_default(),
        guest: None,
        lab: None,
    };
    on_context(&context);

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
        let obs =
            verify::observe_layout(plan.layout, region.start(), region.len(), plan.use_pagemap);
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

        let cpu_load = match (&stat0, &stat1) {
            (Some(a), Some(b)) => procfs::load_between(a, b)
                .into_iter()
                .map(|(c, l)| (c, cpu_busy(l.busy_pct, l.steal_pct)))
                .collect(),
            _ => Default::default(),
        };
        let rec = record(RecordParts {
            plan: &plan,
            arch,
            kernel: &context.env.kernel_release,
            run_index,
            data,
            verified: pre.ok && post.ok,
            post: &post,
            sched_info,
            cpu_load,
            counters: &counters,
            counters_used: counters_ok,
            counter_failure: counter_failure.clone(),
        });
        on_record(&rec);
    }
    drop(thp_guard);
    drop(pinned);
    drop(region);
    Ok(())
}

/// A verification, summarised for a record.
fn check_summary(r: &LayoutReport) -> CheckSummary {
    CheckSummary {
        level: r.level.to_string(),
        ok: r.ok,
        summary: r.summary(),
        failure: (!r.ok).then(|| r.failure()),
    }
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

/// Before an mTHP run: put back every THP knob that a killed forkbench process left switched
/// (from the knob journal), so that neither the environment capture, nor the preflight's "no
/// larger size is `always`" check, nor the knob guard takes it for the machine's setting. Done
/// under the THP directory's exclusive lock, like every mTHP knob switch; each repair is one
/// stderr line.
fn repair_stale_knobs(thp: &ThpInfo) -> Result<Vec<StaleKnob>, RealError> {
    let journal = Journal::default_location();
    let left_by_the_dead = journal
        .entries()?
        .iter()
        .any(|e| e.path.starts_with(&thp.root) && !e.owner_alive());
    if !left_by_the_dead {
        return Ok(Vec::new());
    }
    let _lock = sysfs::ExclusiveLock::acquire(&thp.root)?;
    let repaired = journal.repair_stale(Some(&thp.root))?;
    for r in &repaired {
        r.announce();
    }
    Ok(repaired)
}

/// Test-only (kept out of `--help`): with this set to `1`, an mTHP populate stops right after
/// switching its knob, says so on stderr and waits until stdin closes, so a test can SIGKILL
/// the runner while the knob is switched without racing it.
#[doc(hidden)]
pub const HOLD_AFTER_KNOB_SWITCH_ENV: &str = "FORKBENCH_TEST_HOLD_AFTER_KNOB_SWITCH";

/// The stderr line [`HOLD_AFTER_KNOB_SWITCH_ENV`] makes the runner print.
#[doc(hidden)]
pub const KNOB_SWITCHED_LINE: &str =
    "forkbench: test hook: knob switched; holding until stdin closes";

fn hold_after_knob_switch_for_tests() {
    if std::env::var_os(HOLD_AFTER_KNOB_SWITCH_ENV).is_none_or(|v| v != "1") {
        return;
    }
    eprintln!("{KNOB_SWITCHED_LINE}");
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

/// Checks that need the host but change nothing.
fn preflight(plan: &Plan, thp: &ThpInfo) -> Result<(), RealError> {
    thp.check(plan.layout).map_err(|e| {
        let hint = if plan.layout != RealLayout::Order0
            && plan.layout != RealLayout::Untouched
            && hostenv::thp_disable_flag().ok() == Some(1)
        {
            " (also: THP is disabled for this process by prctl(PR_SET_THP_DISABLE))"
        } else {
            ""
        };
        RealError::Unsupported(format!("{e}{hint}"))
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
        per_call_mean_ns: round3(mean_ns),
        per_call_median_ns: deltas[deltas.len() / 2] as f64,
        per_call_min_ns: deltas[0],
    }
}

/// The runner's own memory: peak RSS minus what the region holds.
fn memory_use(post: &LayoutReport) -> MemoryUse {
    let hwm = procfs::self_status_bytes("VmHWM");
    let region = post.observation.smaps.as_ref().map(|s| s.rss_kb * 1024);
    MemoryUse {
        vm_hwm_bytes: hwm,
        vm_rss_bytes: procfs::self_status_bytes("VmRSS"),
        vm_pte_bytes: procfs::self_status_bytes("VmPTE"),
        region_rss_bytes: region,
        runner_own_peak_bytes: match (hwm, region) {
            (Some(h), Some(r)) => Some(h.saturating_sub(r)),
            _ => None,
        },
    }
}

fn capture_env(thp: &ThpInfo) -> contract::HostEnv {
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
    knobs: Vec<KnobSwitch>,
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
        let switches_knob = plan.layout.mthp_knob_kb().is_some();
        let l = if switches_knob {
            sysfs::ExclusiveLock::acquire(&thp.root)
        } else {
            sysfs::ExclusiveLock::acquire_shared(&thp.root)
        };
        match l {
            Ok(l) => Some(l),
            Err(e) if switches_knob => return Err(e.into()),
            Err(_) => None,
        }
    } else {
        None
    };
    let before = MmCounters::read(&thp.root);
    let mut populate_ns = 0;
    match plan.layout {
        RealLayout::Untouched => {}
        RealLayout::Order0 => {
            madv(region, libc::MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE")?;
            populate_ns = if plan.tick_align {
                // Exact mode: the frames' alignment must not change between runs.
                let t = hostenv::monotonic_ns();
                region.write_each_page_rotated(0x5a);
                hostenv::monotonic_ns().saturating_sub(t)
            } else {
                populate(region)
            };
        }
        RealLayout::PteOrder9 | RealLayout::PmdOrder9 | RealLayout::MixPmd => {
            madv(region, libc::MADV_HUGEPAGE, "MADV_HUGEPAGE")?;
            populate_ns = populate(region);
        }
        RealLayout::Mix64k => {
            let (ns, switched) = populate_mix_64k(region, thp)?;
            populate_ns = ns;
            knobs = switched;
        }
        RealLayout::Mthp { kb } => {
            // Larger sizes that are effectively `always` would take the faults (the fault path
            // tries the largest eligible order first): off while populating.
            let (ns, switched) = populate_with_mthp_knob(
                region,
                thp,
                plan.layout,
                kb,
                |now| now.larger_always(kb),
                |_, _, _| Ok(0),
            )?;
            populate_ns = ns;
            knobs = switched;
        }
    }
    let after = MmCounters::read(&thp.root);
    if let (Some(a), Some(b)) = (&before, &after) {
        deltas.populate = Some(b.since(a));
    }
    if matches!(plan.layout, RealLayout::PteOrder9 | RealLayout::MixPmd) {
        deltas.smaps_before_split =
            crate::smaps::read_range(region.start(), region.start() + region.len()).ok();
        // Keep khugepaged from collapsing the PTE-mapped THPs back into PMD mappings, from the
        // first split on: once a chunk is PTE-mapped, khugepaged may collapse it at its next
        // visit (seen on the development VM within seconds; with khugepaged scanning without
        // pause, every chunk of a 64M region came back PMD-mapped before the flag was set
        // after the loop; a 6.1 guest did it to one chunk during a CI run). The flag splits
        // nothing, and fork does not look at it for PTE-mapped memory.
        madv(
            region,
            libc::MADV_NOHUGEPAGE,
            "MADV_NOHUGEPAGE (khugepaged guard)",
        )?;
        let t = hostenv::monotonic_ns();
        // mix-pmd PTE-maps the odd chunks only; the even ones stay PMD-mapped (the
        // MADV_NOHUGEPAGE above only changes the VMA's flag, it splits no PMD mapping).
        if plan.layout == RealLayout::MixPmd {
            region.pte_map_chunks_of(BlockSelection::Odd)
        } else {
            region.pte_map_chunks()
        }
        .map_err(|e| RealError::io("PTE-mapping the THPs", e))?;
        split_ns = Some(hostenv::monotonic_ns().saturating_sub(t));
        let split = MmCounters::read(&thp.root);
        if let (Some(a), Some(b)) = (&after, &split) {
            deltas.split = Some(b.since(a));
        }
    }
    Ok(Prepared {
        populate_ns,
        split_ns,
        deltas,
        knobs,
    })
}

/// Populate `mix-64k`: with the 64K knob not `always`, fault one order-0 page into the first
/// page of every odd 64 KiB block; then switch the 64K knob to `always` (every other size that
/// is effectively `always` off, so no other order takes a fault) and write every page: an even
/// block gets one 64K folio, an odd block already has a PTE, so the 64K attempt fails its
/// "all PTEs empty" test and the remaining 15 pages fall back to order 0. Knobs are journalled
/// and restored as for `mthp-<size>`; returns the populate time and the switches, the 64K
/// knob first.
fn populate_mix_64k(
    region: &mut Region,
    thp: &ThpInfo,
) -> Result<(u64, Vec<KnobSwitch>), RealError> {
    const KB: u64 = 64;
    populate_with_mthp_knob(
        region,
        thp,
        RealLayout::Mix64k,
        KB,
        // Larger sizes would take the even blocks, smaller ones the odd blocks' empty halves.
        |now| now.always_except(KB),
        |region, now, needs_root| {
            // The odd blocks' order-0 pages: the 64K knob must not be `always` while they fault.
            let off = (now.effective(KB) == crate::layout::Effective::Always)
                .then(|| sysfs::SysfsGuard::set(now.size_knob(KB), "never"))
                .transpose()
                .map_err(|e| {
                    RealError::Unsupported(format!(
                        "cannot switch mTHP size {KB}k off for mix-64k's order-0 blocks: {e}{needs_root}"
                    ))
                })?;
            let t = hostenv::monotonic_ns();
            region.write_first_page_of_blocks(KB * 1024, BlockSelection::Odd, 0x5a);
            let ns = hostenv::monotonic_ns().saturating_sub(t);
            if let Some(g) = off {
                g.restore()?;
            }
            Ok(ns)
        },
    )
}

/// Populate `layout` with mTHP size `kb` switched to `always`: the sizes `off` picks are
/// switched to `never` first (largest first), then `prepare` runs, then `kb` goes `always` and
/// every page is written, then every knob is restored in reverse order. Knob switching is
/// serialised with every other forkbench process by the caller's exclusive lock; the tree is
/// read again under it. Each guard is journalled and restored on drop, on error and on signals.
/// Returns the time of `prepare` plus the populate, and the switches as restored: the wanted
/// size first (drivers read `sysfs_switched[0]` as it), then the others, smallest first.
fn populate_with_mthp_knob(
    region: &mut Region,
    thp: &ThpInfo,
    layout: RealLayout,
    kb: u64,
    off: impl FnOnce(&ThpInfo) -> Vec<u64>,
    prepare: impl FnOnce(&mut Region, &ThpInfo, &str) -> Result<u64, RealError>,
) -> Result<(u64, Vec<KnobSwitch>), RealError> {
    let now = ThpInfo::read(&thp.root);
    now.check(layout).map_err(RealError::Unsupported)?;
    let needs_root = if hostenv::geteuid() != 0 {
        " (needs root)"
    } else {
        ""
    };
    let t = hostenv::monotonic_ns();
    let mut guards = Vec::new();
    for other in off(&now).into_iter().rev() {
        let g = sysfs::SysfsGuard::set(now.size_knob(other), "never").map_err(|e| {
            RealError::Unsupported(format!(
                "cannot switch mTHP size {other}k off for populating {layout}: {e}{needs_root}"
            ))
        })?;
        guards.push(g);
    }
    let prepare_ns = prepare(region, &now, needs_root)?;
    let guard = sysfs::SysfsGuard::set(now.size_knob(kb), "always").map_err(|e| {
        RealError::Unsupported(format!(
            "cannot enable mTHP size {kb}k for populating: {e}{needs_root}"
        ))
    })?;
    guards.push(guard);
    hold_after_knob_switch_for_tests();
    let populate_ns = prepare_ns + populate(region);
    let mut restored = Vec::new();
    while let Some(g) = guards.pop() {
        // The true original: a value a killed run left here was put back by the guard (which
        // said so on stderr) or by `repair_stale_knobs`.
        let (path, original, written) = (
            g.path().to_path_buf(),
            g.original().to_string(),
            g.value().to_string(),
        );
        g.restore()?;
        restored.push((path, original, written));
    }
    let window = hostenv::monotonic_ns().saturating_sub(t);
    let knobs = restored
        .into_iter()
        .map(|(path, original, written)| KnobSwitch {
            restored_value: sysfs::read_selected(&path).unwrap_or_default(),
            path: path.display().to_string(),
            original,
            written,
            switched_ns: window,
        })
        .collect();
    Ok((populate_ns, knobs))
}

/// Write a non-zero byte to every page (so the THP shrinker never sees zero-filled pages).
fn populate(region: &mut Region) -> u64 {
    let t = hostenv::monotonic_ns();
    region.write_each_page(0x5a);
    hostenv::monotonic_ns().saturating_sub(t)
}

/// Enter the requested policy (falling back to batch, then other, with the reason). The
/// returned info's pause fields are filled in after the run.
fn enter_sched(plan: &Plan) -> (Option<sched::FifoGuard>, SchedInfo) {
    let info = |effective, priority, fallback| SchedInfo {
        requested: plan.sched,
        effective,
        priority,
        fallback,
        pause: None,
        pause_total_ns: 0,
    };
    if plan.sched == Sched::Other {
        return (None, info(Sched::Other, None, None));
    }
    let mut fallback = None;
    if plan.sched == Sched::Fifo {
        match sched::set_fifo(plan.fifo_priority) {
            Ok(g) => {
                let p = g.priority();
                return (Some(g), info(Sched::Fifo, Some(p), None));
            }
            Err(e) => fallback = Some(e.to_string()),
        }
    }
    match sched::set_batch() {
        Ok(g) => (Some(g), info(Sched::Batch, None, fallback)),
        Err(e) => {
            let why = match fallback {
                Some(f) => format!("{f}; {e}"),
                None => e.to_string(),
            };
            (None, info(Sched::Other, None, Some(why)))
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
    /// Indices of the timed iterations that migrated.
    migrated: Vec<u32>,
    disturbances: Vec<Disturbance>,
    refresh_ns: Vec<u64>,
    refresh_minflt: Vec<u64>,
    child_start: Vec<Option<u64>>,
    /// Indices of the timed iterations whose child ran first.
    child_first: Vec<u32>,
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
    // Exact mode: what counts as "an interrupt ran" depends on what a clock read costs here.
    let tick_gap = if plan.tick_align {
        crate::tick::gap_for(crate::tick::read_cost(1000))
    } else {
        crate::tick::GAP_NS
    };
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
        if plan.tick_align {
            crate::tick::after_interrupt(tick_gap, crate::tick::LIMIT_NS);
        }
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
            let iter = u32::try_from(d.samples.len()).expect("iterations fit u32 (MAX_ITERS)");
            d.samples.push(f.fork_ns);
            d.reaped.push(f.reaped_ns);
            d.nivcsw.push(f.nivcsw);
            d.nvcsw.push(f.nvcsw);
            d.minflt.push(f.minflt);
            if migrated {
                d.migrated.push(iter);
            }
            d.child_start.push(f.child_start_ns);
            if f.child_ran_first {
                d.child_first.push(iter);
            }
            if let Some(p) = probe {
                d.core_probe.push(p);
            }
            if !reasons.is_empty() {
                d.disturbances.push(Disturbance {
                    iter,
                    reasons: reasons.into_iter().map(String::from).collect(),
                });
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

struct RecordParts<'a> {
    plan: &'a Plan,
    arch: Arch,
    kernel: &'a str,
    run_index: u32,
    data: RunData,
    /// Both the pre-run and this run's verification passed.
    verified: bool,
    post: &'a LayoutReport,
    sched_info: SchedInfo,
    cpu_load: std::collections::BTreeMap<usize, CpuBusy>,
    counters: &'a PerfCounters,
    counters_used: bool,
    counter_failure: Option<String>,
}

/// Floats in records are rounded so that they survive a JSON round trip exactly (serde_json's
/// default float parser is exact for short decimals).
fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// One CPU's load for a record, rounded (see [`round3`]): an unrounded share such as
/// 10.256410256410255 % read back one ulp off in an arm64 TCG guest, so records did not
/// round-trip there.
fn cpu_busy(busy_pct: f64, steal_pct: f64) -> CpuBusy {
    CpuBusy {
        busy_pct: round3(busy_pct),
        steal_pct: round3(steal_pct),
    }
}

fn record(p: RecordParts<'_>) -> RunRecord {
    let d = p.data;
    let forks = d.samples.len() as u64;
    let mut status = p.counters.status().to_vec();
    if let Some(why) = &p.counter_failure {
        for s in status.iter_mut().filter(|s| s.available) {
            s.reason = Some(format!("counting stopped: {why}"));
        }
    }
    let counters = counters::report(
        &status,
        if p.counters_used {
            d.counters_total.as_ref()
        } else {
            None
        },
        forks,
    );
    let mut sched = p.sched_info;
    sched.pause_total_ns = d.pause_ns;
    if d.pause_ns > 0 {
        sched.pause = Some(p.plan.pause);
    }
    let effective = sched.effective;
    let extra = RealExtra {
        context: 0,
        post: Some(check_summary(p.post)),
        reaped_ns: d.reaped,
        core_probe_ns: d.core_probe,
        child_start_ns: d.child_start,
        child_ran_first: d.child_first,
        migrated: d.migrated,
        nivcsw: d.nivcsw,
        nvcsw: d.nvcsw,
        minflt: d.minflt,
        disturbances: d.disturbances,
        warmup_ns: d.warmup,
        first_fork_ns: d.first_fork_ns,
        refresh_ns: d.refresh_ns,
        refresh_minflt: d.refresh_minflt,
        counters,
        sched: Some(sched),
        cpu_load: p.cpu_load,
        memory: Some(memory_use(p.post)),
    };
    RunRecord {
        variant: Variant::Real(RealVariant {
            arch: p.arch,
            kernel: p.kernel.to_string(),
            accel: Accel::Host,
            clock: contract::Clock::Wall,
            layout: p.plan.layout,
            mem_bytes: p.plan.mem,
            mode: p.plan.mode,
            sched: effective,
            unverified: !p.verified,
        }),
        run_index: p.run_index,
        warmup: p.plan.warmup,
        samples_ns: d.samples,
        cpu: p.plan.cpu,
        ops: Default::default(),
        sim: None,
        real: Some(Box::new(extra)),
        host_load: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_load_survives_a_json_round_trip() {
        // A share whose unrounded value read back one ulp off in an arm64 TCG guest (not on
        // x86_64): long decimals are not parsed exactly everywhere; short ones are.
        let seen: f64 = "10.256410256410255".parse().unwrap();
        for (busy, steal) in [(seen, 0.0), (25.0 / 27.0, 1.0 / 3.0), (100.0, 0.0)] {
            let b = cpu_busy(busy, steal);
            let back: CpuBusy = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
            assert_eq!(back, b);
            assert!((b.busy_pct - busy).abs() < 1e-3);
        }
    }
}
