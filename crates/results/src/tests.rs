//! Round trips, the compact layout, schema-1 upgrades (on the committed files too) and refusals.

use std::collections::BTreeMap;
use std::fs;

use super::*;

fn sim_run(i: u32) -> RunRecord {
    RunRecord {
        variant: Variant::Sim(SimVariant {
            arch: Arch::X86_64,
            contpte: None,
            strategy: Strategy::Upstream,
            order: ModelOrder::new(9).unwrap(),
            mem_bytes: 1 << 30,
            mode: Mode::Fresh,
            mapcount: Mapcount::PerPage,
            counting: false,
        }),
        run_index: i,
        warmup: 1,
        samples_ns: vec![10, 20, 30],
        cpu: Some(1),
        ops: BTreeMap::from([(OpCounter::Batches, 512)]),
        sim: Some(SimExtra {
            ptes: 3,
            seed: 1,
            model_bytes: 4,
            peak_rss_bytes: None,
            cost_model: None,
            modelled_add_ns: Some(1.5),
        }),
        real: None,
        host_load: Some(HostLoad {
            other_cpus_busy_pct: Some(2.5),
            pinned_cpu_foreign_pct: None,
            concurrent_forkbench: 0,
        }),
    }
}

fn real_context() -> RealContext {
    RealContext {
        env: HostEnv {
            kernel_release: "6.18.0".into(),
            ..HostEnv::default()
        },
        layout: RealLayout::Order0,
        mem_bytes: 1 << 30,
        iters: 3,
        runs: 1,
        pinning: Pinning::default(),
        timer: TimerCost::default(),
        populate: Populate::default(),
        pre: CheckSummary {
            level: "full".into(),
            ok: true,
            summary: "verified".into(),
            failure: None,
        },
        pre_report: serde_json::json!({"checks": []}),
        guest: None,
        lab: None,
    }
}

fn real_run(context: u32) -> RunRecord {
    RunRecord {
        variant: Variant::Real(RealVariant {
            arch: Arch::X86_64,
            kernel: "6.18.0".into(),
            accel: Accel::Host,
            clock: Default::default(),
            layout: RealLayout::Order0,
            mem_bytes: 1 << 30,
            mode: Mode::Steady,
            sched: Sched::Other,
            unverified: false,
        }),
        run_index: 0,
        warmup: 1,
        samples_ns: vec![100, 200, 300],
        cpu: Some(1),
        ops: BTreeMap::new(),
        sim: None,
        real: Some(Box::new(RealExtra {
            context,
            reaped_ns: vec![1, 2, 3],
            ..RealExtra::default()
        })),
        host_load: None,
    }
}

fn sample_file() -> ResultFile {
    let mut f = ResultFile::new("test", "x", "2026-01-01T00:00:00Z", HostEnv::default());
    f.git_rev = "abc".into();
    f.seed = 7;
    f.config = serde_json::json!({"k": 1.25});
    f.absorb(vec![], vec![sim_run(0), sim_run(1)]);
    f.absorb(vec![real_context()], vec![real_run(0)]);
    f.absorb(vec![real_context()], vec![real_run(0)]);
    f
}

#[test]
fn save_then_load_round_trips_and_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m/r.json");
    let f = sample_file();
    f.save_new(&path).unwrap();
    assert_eq!(ResultFile::load(&path).unwrap(), f);
    let err = f.save_new(&path).unwrap_err();
    assert!(matches!(err, ResultsError::Exists { .. }), "{err}");
    // No temporary files left behind.
    let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn absorb_reindexes_contexts() {
    let f = sample_file();
    assert_eq!(f.contexts.len(), 2);
    let ctx: Vec<u32> = f
        .runs
        .iter()
        .filter_map(|r| r.real.as_ref().map(|x| x.context))
        .collect();
    assert_eq!(ctx, vec![0, 1]);
    assert_eq!(f.context_of(&f.runs[3]), Some(&f.contexts[1]));
    assert_eq!(f.context_of(&f.runs[0]), None);
}

#[test]
fn files_are_compact_and_any_layout_loads() {
    let f = sample_file();
    let text = f.to_json();
    // One line per run and per context, plus the top-level keys and brackets.
    // `{`, 9 keys, 2 list openers and closers, 2 contexts, 4 runs, `}`.
    assert_eq!(text.lines().count(), 1 + 9 + 4 + 2 + 4 + 1, "{text}");
    assert!(text.lines().any(|l| {
        l.trim_start()
            .starts_with(r#"{"variant":{"instrument":"sim""#)
    }));
    let p = std::path::Path::new("t.json");
    let pretty = serde_json::to_string_pretty(&f).unwrap();
    assert_eq!(ResultFile::parse(&pretty, p).unwrap(), f);
    let dense = serde_json::to_string(&f).unwrap();
    assert_eq!(ResultFile::parse(&dense, p).unwrap(), f);
    // With realistic sample counts the samples dominate: pretty-printing puts each on a line.
    let mut big = f.clone();
    big.runs[0].samples_ns = (0..10_000).map(|i| 3_000_000 + i).collect();
    let (compact, pretty) = (big.to_json(), serde_json::to_string_pretty(&big).unwrap());
    assert!(
        compact.len() * 2 < pretty.len(),
        "{} vs {}",
        compact.len(),
        pretty.len()
    );
}

#[test]
fn contexts_store_only_how_their_env_differs_from_the_files() {
    let mut f = sample_file();
    f.env = HostEnv {
        kernel_release: "6.18.0".into(),
        hostname: "box".into(),
        mem_available_bytes: Some(10 << 30),
        ..HostEnv::default()
    };
    f.contexts[0].env = HostEnv {
        mem_available_bytes: Some(9 << 30),
        ..f.env.clone()
    };
    f.contexts[1].env = f.env.clone();
    let text = f.to_json();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"pre_report\""))
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains(r#""env_diff":{"mem_available_bytes":9663676416}"#),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(r#""env_diff":{}"#), "{}", lines[1]);
    assert!(!lines[0].contains("\"hostname\""));
    let back = ResultFile::parse(&text, std::path::Path::new("t.json")).unwrap();
    assert_eq!(back, f);
    assert_eq!(back.contexts[0].env.hostname, "box");
    // What a runner call captured beyond the file's own capture moves up into the file's.
    let mut g = ResultFile::new("m", "l", "t", f.env.clone());
    let mut c = real_context();
    c.env = f.env.clone();
    c.env
        .kernel_config
        .values
        .insert("CONFIG_HZ".into(), "250".into());
    c.env.sysfs.insert("/sys/x".into(), Some("always".into()));
    g.absorb(vec![c.clone()], vec![real_run(0)]);
    assert_eq!(g.env.kernel_config.values["CONFIG_HZ"], "250");
    assert_eq!(g.env.sysfs["/sys/x"].as_deref(), Some("always"));
    assert!(g.to_json().contains(r#""env_diff":{}"#));
    // Another kernel's capture is left alone.
    let mut other = c;
    other.env.kernel_release = "6.1.0".into();
    other.env.sysfs.insert("/sys/y".into(), None);
    g.absorb(vec![other], vec![]);
    assert!(!g.env.sysfs.contains_key("/sys/y"));
    assert_eq!(back.contexts[0].env.mem_available_bytes, Some(9 << 30));
}

#[test]
fn load_rejects_other_schema_garbage_and_devices() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.json");
    fs::write(&p, "{\"schema\": 99}").unwrap();
    assert!(matches!(
        ResultFile::load(&p),
        Err(ResultsError::Schema { found: 99, .. })
    ));
    fs::write(&p, "not json").unwrap();
    assert!(matches!(
        ResultFile::load(&p),
        Err(ResultsError::Parse { .. })
    ));
    assert!(matches!(
        ResultFile::load(std::path::Path::new("/dev/zero")),
        Err(ResultsError::Fs(fsio::FsError::NotRegular { .. }))
    ));
}

/// A schema-1 file as xtask wrote it: a model record, two real-fork records of one process
/// (`first_fork_of_process` true then false) and one of another.
const V1: &str = r#"{
  "schema": 1, "tool_version": "0.1.0", "machine": "vm", "label": "k1",
  "created_utc": "2026-01-01T00:00:00Z", "git_rev": "r", "seed": 3,
  "config": {"profile": {"model": {"baseline": "mm-unstable"}}},
  "env": {"kernel": "6.18.0-k", "arch": "x86_64", "cpus_allowed": [0, 1], "smt": "notsupported",
          "aslr": "2", "thp_enabled": "always [madvise] never"},
  "runs": [
    {"schema": 1, "tool_version": "0.1.0",
     "variant": {"instrument": "sim", "arch": "arm64", "strategy": "ryan-v4", "layout": "order9",
                 "mem_bytes": 1048576, "mode": "fresh", "options": "contpte-ena"},
     "run_index": 0, "warmup": 2, "samples_ns": [5, 7], "ops": {"tlbi": 4, "no_such_op": 1},
     "cpu": 1, "extra": {"ptes": 256, "seed": 9, "model_bytes": 100, "peak_rss_bytes": 5,
       "mapcount": "per-page", "modelled_add_ns": 2.5, "run_mean_ns": 6.0,
       "xtask_other_cpus_busy_pct": 3.5, "xtask_concurrent_forkbench": 1}},
    {"schema": 1, "tool_version": "0.1.0",
     "variant": {"instrument": "real", "arch": "x86_64", "strategy": "label-k", "layout": "mthp-64k",
                 "mem_bytes": 1048576, "mode": "steady", "options": "sched-fifo"},
     "run_index": 0, "warmup": 1, "samples_ns": [100, 110, 120], "cpu": 1,
     "extra": {"env": {"kernel_release": "6.18.0-k", "hostname": "vm", "sysfs": {}},
       "first_fork_of_process": true, "iters": 3, "runs": 2,
       "verification": {"level": "full",
         "pre": {"level": "full", "ok": true, "summary": "verified mthp-64k", "checks": []},
         "post": {"level": "full", "ok": true, "summary": "still mthp-64k"}},
       "reaped_ns": [1, 2, 3], "child_ran_first": [false, true, false],
       "migrated": [true, false, false], "minflt": [2, 2, 3],
       "disturbances": [{"fork_ns": 110, "iter": 1, "reasons": ["child-ran-first"]}],
       "counters": {"context-switches": {"kernel": true, "per_op": 0.5, "value": 2}},
       "cpu_load": {"per_cpu": {"0": {"busy_pct": 4.0, "steal_pct": 0.0, "ticks": 9}}},
       "sched": {"requested": "fifo", "effective": "fifo", "pause_between_iterations_ns": 7},
       "mode": {"name": "steady", "refresh_ns": [], "refresh_minflt": []},
       "timer": {"calls": 10, "per_call_mean_ns": 20.5, "per_call_median_ns": 20.0,
                 "per_call_min_ns": 19, "what": "clock_gettime"},
       "pinning": {"allowed_before": "0-1", "cpu_at_start": 1, "pinned": true, "requested_cpu": 1},
       "populate": {"populate_ns": 5, "khugepaged_guard": false, "thp_disabled_for_runs": true}}},
    {"schema": 1, "tool_version": "0.1.0",
     "variant": {"instrument": "real", "arch": "x86_64", "strategy": "label-k", "layout": "mthp-64k",
                 "mem_bytes": 1048576, "mode": "steady", "options": "sched-fifo"},
     "run_index": 1, "warmup": 1, "samples_ns": [100], "cpu": 1,
     "extra": {"first_fork_of_process": false, "reaped_ns": [4]}},
    {"schema": 1, "tool_version": "0.1.0",
     "variant": {"instrument": "real", "arch": "x86_64", "strategy": "label-k", "layout": "mthp-64k",
                 "mem_bytes": 1048576, "mode": "steady", "options": "sched-fifo,unverified"},
     "run_index": 2, "warmup": 1, "samples_ns": [90], "cpu": 1,
     "extra": {"first_fork_of_process": true}}
  ]
}"#;

#[test]
fn schema_1_upgrades_to_typed_records() {
    let f = ResultFile::parse(V1, std::path::Path::new("v1.json")).unwrap();
    assert_eq!(f.schema, SCHEMA_VERSION);
    assert_eq!(f.runs.len(), 4);
    let sim = &f.runs[0];
    assert_eq!(sim.variant.id(), "sim:arm64:ryan-v4:order9:contpte-ena");
    assert_eq!(sim.ops, BTreeMap::from([(OpCounter::Tlbi, 4)]));
    assert_eq!(sim.modelled_mean_ns(), Some(8.5));
    assert_eq!(sim.sim.as_ref().unwrap().peak_rss_bytes, Some(5));
    assert_eq!(
        sim.host_load,
        Some(HostLoad {
            other_cpus_busy_pct: Some(3.5),
            pinned_cpu_foreign_pct: None,
            concurrent_forkbench: 1
        })
    );
    let real = &f.runs[1];
    // The kernel comes from the runner's environment capture, not the label.
    assert_eq!(
        real.variant.id(),
        "real:x86_64:6.18.0-k:mthp-64k:sched-fifo"
    );
    let x = real.real.as_ref().unwrap();
    assert_eq!(x.child_ran_first, vec![1]);
    assert_eq!(x.migrated, vec![0]);
    assert_eq!(x.disturbed_count(), 1);
    assert_eq!(x.cpu_load[&0].busy_pct, 4.0);
    assert_eq!(x.sched.as_ref().unwrap().pause_total_ns, 7);
    assert_eq!(x.post.as_ref().unwrap().summary, "still mthp-64k");
    assert_eq!(x.counters["context-switches"].value, Some(2));
    // Records of one process share a context; a new process starts another.
    let ctx: Vec<u32> = f.runs[1..]
        .iter()
        .map(|r| r.real.as_ref().unwrap().context)
        .collect();
    assert_eq!(ctx, vec![0, 0, 1]);
    assert_eq!(f.contexts.len(), 2);
    let c = f.context_of(real).unwrap();
    assert_eq!((c.iters, c.runs, c.timer.calls), (3, 2, 10));
    assert!(c.pre.ok && c.populate.thp_disabled_for_runs && c.pinning.pinned);
    assert_eq!(c.env.kernel_release, "6.18.0-k");
    // A record without an environment keeps its label as the kernel; options survive.
    assert_eq!(f.runs[3].variant.options(), "sched-fifo,unverified");
    assert_eq!(f.runs[3].variant.row_name(), "label-k");
    // The file's environment: the runner's capture plus schema 1's short-named facts.
    assert_eq!(f.env.hostname, "vm");
    assert_eq!(
        f.env.sysfs[v1::SMT_CONTROL].as_deref(),
        Some("notsupported")
    );
    assert_eq!(f.env.sysfs[v1::THP_ENABLED].as_deref(), Some("madvise"));
    // And the upgraded file saves as schema 2 and loads back equal.
    let again = ResultFile::parse(&f.to_json(), std::path::Path::new("v2.json")).unwrap();
    assert_eq!(again, f);
}

#[test]
fn bad_schema_1_values_name_the_run() {
    let bad = V1.replace("\"ryan-v4\"", "\"ryan-v5\"");
    let e = ResultFile::parse(&bad, std::path::Path::new("v1.json"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("run 0 (ryan-v5): strategy: unknown strategy 'ryan-v5'"),
        "{e}"
    );
}

fn committed_result_files() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let mut out = Vec::new();
    for d in fs::read_dir(&root).unwrap().flatten() {
        if !d.path().is_dir() {
            continue;
        }
        for f in fs::read_dir(d.path()).unwrap().flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            // Result files are named `<YYYYMMDDTHHMMSSZ>-<label>.json` (bisect logs are not).
            if n.ends_with(".json")
                && n.len() > 17
                && n.as_bytes()[8] == b'T'
                && n.as_bytes()[15] == b'Z'
            {
                out.push(f.path());
            }
        }
    }
    out
}

/// Every committed result file loads (the schema-1 ones upgraded), and re-saved as schema 2 it
/// takes at most half the bytes per sample and loads back equal.
#[test]
fn committed_files_load_and_shrink() {
    let files = committed_result_files();
    assert!(!files.is_empty());
    for p in files {
        let text = fs::read_to_string(&p).unwrap();
        let f = ResultFile::load(&p).unwrap_or_else(|e| panic!("{e}"));
        let samples: usize = f.runs.iter().map(|r| r.samples_ns.len()).sum();
        assert!(samples > 0, "{}", p.display());
        let v2 = f.to_json();
        let (before, after) = (
            text.len() as f64 / samples as f64,
            v2.len() as f64 / samples as f64,
        );
        eprintln!(
            "{}: {} runs, {samples} samples, {:.1} -> {:.1} B/sample",
            p.display(),
            f.runs.len(),
            before,
            after
        );
        if text.contains("\"schema\": 1") {
            assert!(after <= before / 2.0, "{before} -> {after}");
        }
        assert_eq!(
            ResultFile::parse(&v2, &p).unwrap(),
            f,
            "{} round trip",
            p.display()
        );
    }
}

/// `cargo test -p results -- --ignored save_committed_as_v2`: writes each committed file in
/// schema 2 under the temp dir (to compare sizes by hand).
#[test]
#[ignore]
fn save_committed_as_v2() {
    for p in committed_result_files() {
        let f = ResultFile::load(&p).unwrap();
        let out =
            std::env::temp_dir().join(format!("v2-{}", p.file_name().unwrap().to_string_lossy()));
        let _ = fs::remove_file(&out);
        f.save_new(&out).unwrap();
        eprintln!("wrote {}", out.display());
    }
}

#[test]
fn journal_streams_records_and_loads_back_even_when_torn() {
    let dir = tempfile::tempdir().unwrap();
    let path = journal::path_for(&dir.path().join("r.json"));
    assert!(path.to_string_lossy().ends_with("r.json.partial"));
    let f = sample_file();
    let mut w = journal::Writer::create(&path, &f).unwrap();
    // A second journal at the same path is refused (it reserves the name).
    assert!(matches!(
        journal::Writer::create(&path, &f),
        Err(ResultsError::Exists { .. })
    ));
    for c in &f.contexts {
        w.context(c).unwrap();
    }
    for r in &f.runs {
        w.run(r).unwrap();
    }
    w.skipped("real mthp-64k", "no mTHP here").unwrap();
    drop(w);
    let back = ResultFile::load(&path).unwrap();
    assert_eq!(back.runs, f.runs);
    assert_eq!(back.contexts, f.contexts);
    assert_eq!(back.config["partial"], true);
    assert_eq!(back.config["skipped"][0]["group"], "real mthp-64k");
    // A kill in the middle of a line: the torn line is dropped, the rest loads.
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"run\": {\"varia");
    fs::write(&path, &text).unwrap();
    assert_eq!(ResultFile::load(&path).unwrap().runs.len(), f.runs.len());
    // Garbage in the middle is an error; a file that is not a journal too.
    fs::write(&path, format!("{{}}\n{text}")).unwrap();
    assert!(ResultFile::load(&path).is_err());
    fs::write(&path, "").unwrap();
    let e = ResultFile::load(&path).unwrap_err().to_string();
    assert!(e.contains("not a forkbench journal"), "{e}");
    assert!(matches!(
        ResultFile::load(std::path::Path::new("/dev/zero.partial")),
        Err(ResultsError::Fs(_))
    ));
}

#[test]
fn samples_no_measurement_gives_are_refused_naming_the_variant() {
    let dir = tempfile::tempdir().unwrap();
    for (samples, why) in [
        (vec![0, 0, 0], "every sample is 0 ns"),
        (vec![u64::MAX, 5], "beyond any fork"),
        (vec![], "no samples"),
    ] {
        let mut f = sample_file();
        f.runs[1].samples_ns = samples;
        let p = dir.path().join(format!("{}.json", why.len()));
        f.save_new(&p).unwrap();
        let e = ResultFile::load(&p).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
        assert!(e.contains(&f.runs[1].variant.id()), "{e}");
        assert!(e.contains("run 1 of"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }
}
