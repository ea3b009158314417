//! Real forks on this machine with small regions (16 MiB) and few iterations, one test at a
//! time (they share global THP counters and, for mTHP, a global knob). The tests check layouts,
//! verification, records and error handling; they never assert anything about timing.
//!
//! THP-dependent tests fail with a clear message when the host offers no THP: a silent pass
//! would hide that the layouts were never exercised.

use std::path::Path;
use std::sync::Mutex;

use realfork::layout::{Layout, THP_ROOT, ThpInfo};
use realfork::{RealArgs, RealError, run};
use results::{Instrument, RunRecord};
use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

const MEM: u64 = 16 << 20;
const PAGES: u64 = MEM / 4096;

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn args(layout: &str) -> RealArgs {
    RealArgs {
        layout: layout.into(),
        mem: "16M".into(),
        iters: 5,
        runs: 2,
        warmup: 1,
        ..Default::default()
    }
}

fn is_root() -> bool {
    hostenv::geteuid() == 0
}

fn require_thp(layout: Layout) {
    let thp = ThpInfo::read(Path::new(THP_ROOT));
    if let Err(why) = thp.check(layout) {
        panic!(
            "THP unavailable on this host, so {layout} cannot be tested: {why}. \
             This test needs transparent_hugepage/enabled = madvise or always."
        );
    }
}

fn verification(r: &RunRecord) -> &Value {
    &r.extra["verification"]
}

/// Checks every record must pass.
fn common(records: &[RunRecord], layout: &str, runs: usize, iters: usize) {
    assert_eq!(records.len(), runs);
    let release = hostenv::uname().unwrap().release;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.run_index as usize, i);
        assert_eq!(r.variant.instrument, Instrument::Real);
        assert_eq!(r.variant.layout, layout);
        assert_eq!(r.variant.arch, std::env::consts::ARCH);
        assert_eq!(r.variant.strategy, release);
        assert_eq!(r.variant.mem_bytes, MEM);
        assert_eq!(r.samples_ns.len(), iters);
        let reaped: Vec<u64> = r.extra["reaped_ns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(reaped.len(), iters);
        for (f, rp) in r.samples_ns.iter().zip(&reaped) {
            assert!(rp >= f, "fork-to-reaped includes the fork");
        }
        assert_eq!(r.extra["disturbed"].as_array().unwrap().len(), iters);
        let probes = r.extra["core_probe_ns"].as_array().unwrap();
        assert_eq!(probes.len(), iters, "one core probe per timed fork");
        assert!(probes.iter().all(|p| p.as_u64().unwrap() > 0));
        assert_eq!(r.extra["child_ran_first"].as_array().unwrap().len(), iters);
        let starts = r.extra["child_start_ns"].as_array().unwrap();
        assert_eq!(starts.len(), iters);
        assert!(starts.iter().all(Value::is_u64), "every child stamped");
        // Per-run figures agree with the samples.
        assert_eq!(r.extra["run_mean_ns"].as_f64(), Some(r.mean_ns()));
        assert!(r.extra["run_median_ns"].as_f64().unwrap() > 0.0);
        assert!(r.extra["reaped_mean_ns"].as_f64().unwrap() >= r.mean_ns());
        // Timer overhead and the runner's own memory are measured, not assumed.
        let t = &r.extra["timer"];
        assert!(t["per_call_mean_ns"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["share_of_fork_mean_pct"].as_f64().is_some(), "{t}");
        let m = &r.extra["memory"];
        assert!(m["vm_hwm_bytes"].as_u64().unwrap() > 0, "{m}");
        assert!(m["runner_own_peak_bytes"].is_u64(), "{m}");
        // Environment capture (issue item 6).
        let env = &r.extra["env"];
        for key in [
            "kernel_release",
            "kernel_version",
            "cpus_online",
            "cpus_allowed",
        ] {
            assert!(env[key].is_string(), "{key}: {}", env[key]);
        }
        assert!(!env["command_line"].as_array().unwrap().is_empty());
        assert_eq!(env["page_size"], 4096);
        assert_eq!(env["pinned_cpu"].as_u64().map(|c| c as usize), r.cpu);
        assert!(env["kernel_config"]["values"].is_object());
        assert!(env["cpufreq_governor"].is_object());
        let sysfs = env["sysfs"].as_object().unwrap();
        for k in ["enabled", "defrag", "khugepaged/pages_to_scan"] {
            assert!(
                sysfs.contains_key(&format!("{THP_ROOT}/{k}")),
                "{k} missing from {sysfs:?}"
            );
        }
        let thp = ThpInfo::read(Path::new(THP_ROOT));
        for kb in thp.sizes.keys() {
            let knob = thp.size_knob(*kb).display().to_string();
            assert!(sysfs.contains_key(&knob), "{knob} missing");
        }
        assert_eq!(r.extra["warmup_ns"].as_array().unwrap().len(), 1);
        let v = verification(r);
        assert_eq!(v["verified"], true, "{}", v["post"]["summary"]);
        if is_root() {
            assert_eq!(
                v["level"], "full",
                "running as root gives full verification"
            );
        }
        // The record round-trips through the results schema.
        let line = serde_json::to_string(r).unwrap();
        assert!(!line.contains('\n'));
        let back: RunRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, r);
    }
}

fn histogram<'a>(r: &'a RunRecord, stage: &str) -> &'a Value {
    &verification(r)[stage]["observation"]["histogram"]
}

#[test]
fn order0_is_verified_and_timed() {
    let _s = serial();
    let recs = run(&args("order0")).unwrap();
    common(&recs, "order0", 2, 5);
    if is_root() {
        for stage in ["pre", "post"] {
            let h = histogram(&recs[1], stage);
            assert_eq!(h["orders"]["0"]["folios"], PAGES, "{h}");
            assert_eq!(h["irregular_pages"], 0);
        }
        assert_eq!(
            verification(&recs[0])["post"]["observation"]["pagemap"]["exclusive"],
            PAGES
        );
    }
    let smaps = &verification(&recs[0])["pre"]["observation"]["smaps"];
    assert_eq!(smaps["anon_huge_kb"], 0);
    assert_eq!(smaps["single_exact_vma"], true);
    // Software counters work here; a missing counter is null with a reason, never an error.
    let c = &recs[0].extra["counters"];
    for name in [
        "task-clock",
        "page-faults",
        "context-switches",
        "cpu-migrations",
    ] {
        assert!(
            c[name]["value"].is_u64() || c[name]["reason"].is_string(),
            "{name}: {}",
            c[name]
        );
    }
    if !Path::new("/sys/bus/event_source/devices/cpu").exists() {
        for name in [
            "cycles",
            "instructions",
            "branch-misses",
            "dTLB-load-misses",
        ] {
            assert!(c[name]["value"].is_null(), "{name}");
            assert!(
                c[name]["reason"].as_str().unwrap().starts_with("no PMU"),
                "{name}: {}",
                c[name]
            );
        }
    }
    assert!(recs[0].extra["cpu_load"]["per_cpu"].is_object());
    assert!(recs[0].extra["env"]["kernel_release"].is_string());
    let lines = realfork::summary::describe(&recs[0]);
    assert!(
        lines[0].starts_with("layout: verified order0 (before, "),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("order0 run 0: fork mean "),
        "{lines:?}"
    );
}

#[test]
fn pte_order9_is_pte_mapped_without_splitting_folios() {
    require_thp(Layout::PteOrder9);
    let _s = serial();
    let recs = run(&args("pte-order9")).unwrap();
    common(&recs, "pte-order9", 2, 5);
    // THP is disabled only during the runs (khugepaged guard) and allowed again afterwards.
    assert_eq!(hostenv::thp_disable_flag().unwrap(), 0);
    assert_eq!(recs[0].extra["populate"]["thp_disabled_for_runs"], true);
    assert_eq!(recs[0].extra["populate"]["khugepaged_guard"], true);
    let v = verification(&recs[0]);
    assert_eq!(v["pre"]["observation"]["smaps"]["anon_huge_kb"], 0);
    assert_eq!(
        v["pre"]["deltas"]["smaps_before_split"]["anon_huge_kb"],
        MEM / 1024
    );
    assert!(
        v["pre"]["deltas"]["split"]["vmstat"]["thp_split_pmd"]
            .as_i64()
            .unwrap()
            >= 8
    );
    if is_root() {
        for stage in ["pre", "post"] {
            let h = histogram(&recs[1], stage);
            assert_eq!(h["orders"]["9"]["folios"], MEM >> 21, "{h}");
            assert_eq!(h["misaligned_folios"], 0);
            assert_eq!(h["partial_folios"], 0);
        }
    }
}

#[test]
fn pmd_order9_is_pmd_mapped() {
    require_thp(Layout::PmdOrder9);
    let _s = serial();
    let recs = run(&args("pmd-order9")).unwrap();
    common(&recs, "pmd-order9", 2, 5);
    let v = verification(&recs[1]);
    assert_eq!(
        v["post"]["observation"]["smaps"]["anon_huge_kb"],
        MEM / 1024
    );
    if is_root() {
        assert_eq!(
            histogram(&recs[1], "post")["orders"]["9"]["folios"],
            MEM >> 21
        );
    }
}

#[test]
fn mthp_knob_is_switched_only_while_populating_and_restored() {
    let thp = ThpInfo::read(Path::new(THP_ROOT));
    let sizes = thp.mthp_sizes();
    let kb = if sizes.contains(&64) {
        64
    } else {
        *sizes.first().unwrap_or_else(|| {
            panic!("this kernel offers no mTHP sizes; the mTHP layout cannot be tested")
        })
    };
    let layout = Layout::Mthp { kb };
    require_thp(layout);
    let knob = thp.size_knob(kb);
    let _s = serial();
    let before = hostenv::sysfs::read_selected(&knob).unwrap();
    let result = run(&args(&layout.to_string()));
    let after = hostenv::sysfs::read_selected(&knob).unwrap();
    assert_eq!(after, before, "{} was not restored", knob.display());
    if !is_root() {
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        return;
    }
    let recs = result.unwrap();
    common(&recs, &layout.to_string(), 2, 5);
    let sw = &recs[0].extra["populate"]["sysfs_switched"][0];
    assert_eq!(sw["original"], before.as_str());
    assert_eq!(sw["written"], "always");
    assert_eq!(sw["restored_value"], before.as_str());
    let order = layout.folio_order().unwrap();
    let h = histogram(&recs[1], "post");
    assert_eq!(
        h["orders"][order.to_string()]["folios"],
        PAGES >> order,
        "{h}"
    );
    assert_eq!(
        verification(&recs[0])["pre"]["observation"]["smaps"]["anon_huge_kb"],
        0
    );
}

#[test]
fn untouched_forks_an_empty_vma() {
    let _s = serial();
    let recs = run(&args("untouched")).unwrap();
    common(&recs, "untouched", 2, 5);
    assert_eq!(
        verification(&recs[0])["pre"]["observation"]["smaps"]["rss_kb"],
        0
    );
}

#[test]
fn the_core_probe_can_be_switched_off() {
    let _s = serial();
    let recs = run(&RealArgs {
        no_core_probe: true,
        runs: 1,
        ..args("untouched")
    })
    .unwrap();
    assert_eq!(recs[0].samples_ns.len(), 5);
    assert!(recs[0].extra["core_probe_ns"].is_null());
}

#[test]
fn fresh_mode_rewrites_every_page_outside_the_timed_section() {
    let _s = serial();
    let a = RealArgs {
        mode: "fresh".into(),
        runs: 1,
        ..args("order0")
    };
    let recs = run(&a).unwrap();
    common(&recs, "order0", 1, 5);
    assert_eq!(recs[0].variant.mode, "fresh");
    let m = &recs[0].extra["mode"];
    let faults: Vec<u64> = m["refresh_minflt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(faults.len(), 5);
    // Every PTE was write-protected by the previous fork, so every page write faults (and the
    // kernel reuses the page: the layout stays order-0, as the post-run check proved).
    assert!(faults.iter().all(|&f| f >= PAGES), "{faults:?}");
    assert_eq!(m["refresh_ns"].as_array().unwrap().len(), 5);

    let steady = run(&RealArgs {
        runs: 1,
        ..args("order0")
    })
    .unwrap();
    assert!(
        steady[0].extra["mode"]["refresh_ns"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn fifo_runs_parent_and_children_or_records_why_not() {
    let _s = serial();
    let cpu = hostenv::cpu::allowed_cpus().unwrap().ids().last().unwrap();
    for pause in ["sleep", "spin"] {
        let a = RealArgs {
            sched: "fifo".into(),
            pause: pause.into(),
            cpu: Some(cpu),
            runs: 1,
            ..args("order0")
        };
        let before = hostenv::sched::current().unwrap();
        let recs = run(&a).unwrap();
        assert_eq!(
            hostenv::sched::current().unwrap(),
            before,
            "policy restored"
        );
        common(&recs, "order0", 1, 5);
        assert_eq!(recs[0].cpu, Some(cpu));
        let s = &recs[0].extra["sched"];
        assert_eq!(s["requested"], "fifo");
        if is_root() {
            assert_eq!(s["effective"], "fifo", "{s}");
            assert_eq!(recs[0].variant.options, "sched-fifo");
            // Warm-up plus 5 timed forks, each followed by at least 1 ms.
            assert!(s["pause_between_iterations_ns"].as_u64().unwrap() >= 6_000_000);
            assert_eq!(s["pause"], pause, "{s}");
        } else if s["effective"] == "other" {
            assert!(s["fallback"].is_string());
        }
    }
}

#[test]
fn batch_runs_parent_and_children_without_privileges() {
    let _s = serial();
    let cpu = hostenv::cpu::allowed_cpus().unwrap().ids().last().unwrap();
    let before = hostenv::sched::current().unwrap();
    let recs = run(&RealArgs {
        sched: "batch".into(),
        cpu: Some(cpu),
        runs: 1,
        ..args("order0")
    })
    .unwrap();
    assert_eq!(hostenv::sched::current().unwrap(), before);
    common(&recs, "order0", 1, 5);
    let s = &recs[0].extra["sched"];
    assert_eq!(s["effective"], "batch", "{s}");
    assert_eq!(recs[0].variant.options, "sched-batch");
    assert_eq!(s["pause_between_iterations_ns"], 0);
    assert!(s.get("pause").is_none(), "no pause, so no pause kind: {s}");
}

#[test]
fn bad_cpu_ids_are_one_line_errors_with_exit_code_2() {
    let allowed = hostenv::cpu::allowed_cpus().unwrap();
    let outside = allowed.ids().last().unwrap() + 1;
    for cpu in [outside, 1023, 1024, 5000, usize::MAX] {
        let e = run(&RealArgs {
            cpu: Some(cpu),
            ..args("order0")
        })
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert_eq!(
            e.to_string(),
            format!("CPU {cpu} is not in this process's allowed CPU set ({allowed})")
        );
    }
}

#[test]
fn bad_inputs_are_one_line_errors_with_exit_code_2() {
    let cases: Vec<(RealArgs, &str)> = vec![
        (args("order7"), "unknown layout \"order7\""),
        (
            args("mthp-8k"),
            "mTHP size 8k is not offered by this kernel (offered: ",
        ),
        (args("mthp-2m"), "use pmd-order9"),
        (
            RealArgs {
                mem: "16T".into(),
                ..args("order0")
            },
            "not enough memory: --mem 16777216 MiB needs about",
        ),
        (
            RealArgs {
                mem: "3M".into(),
                ..args("order0")
            },
            "multiple of 2 MiB",
        ),
        (
            RealArgs {
                mode: "warm".into(),
                ..args("order0")
            },
            "unknown --mode",
        ),
    ];
    for (a, want) in cases {
        let e: RealError = run(&a).unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.exit_code(), 2, "{msg}");
        assert!(msg.contains(want), "{msg:?} should contain {want:?}");
        assert!(!msg.contains('\n'), "{msg:?}");
    }
}

#[test]
fn without_pagemap_verification_is_partial() {
    let _s = serial();
    let a = RealArgs {
        no_pagemap: true,
        runs: 1,
        ..args("order0")
    };
    let recs = run(&a).unwrap();
    let v = verification(&recs[0]);
    assert_eq!(v["level"], "partial");
    assert_eq!(v["verified"], true, "{}", v["pre"]["summary"]);
    assert!(v["pre"]["observation"]["histogram"].is_null());
}
