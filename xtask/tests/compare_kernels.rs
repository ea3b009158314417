//! The A/B scenario of issue 15 through the `xtask` binary: kernel A benched with label `A`,
//! kernel B with label `B`, then `cargo xtask compare A B` and `table A B`. Sides that ran
//! differently are refused naming the field; alike, compare reports only real-fork rows, and
//! model rows only as a tool change when the tool revisions differ.

use std::path::Path;
use std::process::Output;

use results::{
    Accel, Arch, CheckSummary, HostEnv, Mode, ModelOrder, RealContext, RealExtra, RealLayout,
    RealVariant, ResultFile, RunRecord, Sched, SimVariant, Strategy, Variant,
};

mod support;
use support::xtask;

fn context(layout: RealLayout, euid: u32) -> RealContext {
    RealContext {
        env: HostEnv {
            euid,
            cpu_model: Some("AMD EPYC 7B13".into()),
            ..HostEnv::default()
        },
        layout,
        mem_bytes: 64 << 20,
        iters: 4,
        runs: 1,
        pinning: Default::default(),
        timer: Default::default(),
        populate: Default::default(),
        pre: CheckSummary {
            level: "full".into(),
            ok: true,
            summary: "verified".into(),
            failure: None,
        },
        pre_report: serde_json::Value::Null,
        guest: None,
        lab: None,
    }
}

fn record(variant: Variant, run: u32, mean_ns: f64, context: Option<u32>) -> RunRecord {
    RunRecord {
        variant,
        run_index: run,
        warmup: 0,
        samples_ns: [0.998, 1.001, 1.003, 0.998]
            .iter()
            .map(|f| (mean_ns * f).round() as u64)
            .collect(),
        cpu: Some(1),
        ops: Default::default(),
        sim: None,
        real: context.map(|c| {
            Box::new(RealExtra {
                context: c,
                ..RealExtra::default()
            })
        }),
        host_load: None,
    }
}

/// One side: 3 runs each of two real-fork layouts on `kernel` under `sched` (forks `real_x`
/// as long as A's) and two model strategies (`model_x` as long), made by tool revision `rev`.
fn side(dir: &Path, label: &str, kernel: &str, sched: Sched, rev: &str, real_x: f64, model_x: f64) {
    let mut f = ResultFile::new("box", label, "2026-01-01T00:00:00Z", HostEnv::default());
    f.env.cpu_model = Some("AMD EPYC 7B13".into());
    f.git_rev = rev.into();
    f.seed = 1;
    let drift = [0.996, 1.0, 1.004];
    for (run, d) in drift.iter().enumerate() {
        let run = run as u32;
        for (layout, ns) in [(RealLayout::Order0, 14e6), (RealLayout::PteOrder9, 9e6)] {
            f.contexts.push(context(layout, 0));
            let c = f.contexts.len() as u32 - 1;
            let v = Variant::Real(RealVariant {
                arch: Arch::X86_64,
                kernel: kernel.into(),
                accel: Accel::Host,
                clock: Default::default(),
                layout,
                mem_bytes: 64 << 20,
                mode: Mode::Steady,
                sched,
                unverified: false,
            });
            f.runs.push(record(v, run, ns * d * real_x, Some(c)));
        }
        for (strategy, ns) in [(Strategy::MmUnstable, 10e6), (Strategy::Upstream, 6e6)] {
            let v = Variant::Sim(SimVariant {
                arch: Arch::X86_64,
                contpte: None,
                strategy,
                order: ModelOrder::new(9).unwrap(),
                mem_bytes: 64 << 20,
                mode: Mode::Fresh,
                mapcount: Default::default(),
                counting: false,
            });
            f.runs.push(record(v, run, ns * d * model_x, None));
        }
    }
    let p = dir
        .join("box")
        .join(format!("20260101T00000{}Z-{label}.json", label.len()));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    f.save_new(&p).unwrap();
}

/// The machine's between-session noise as `cargo xtask noise` stores it: three sessions of
/// each of A's variants (on kernel 6.1.0), their means 1% apart (log sd 0.01).
fn noise(dir: &Path) {
    let real = |layout: &str| {
        serde_json::json!({"instrument": "real", "arch": "x86_64", "kernel": "6.1.0",
            "layout": layout, "mem_bytes": 64u64 << 20, "mode": "steady", "sched": "fifo"})
    };
    let sim = |strategy: &str| {
        serde_json::json!({"instrument": "sim", "arch": "x86_64", "strategy": strategy,
            "order": 9, "mem_bytes": 64u64 << 20, "mode": "fresh"})
    };
    let variants: Vec<serde_json::Value> = [
        (real("order0"), 14e6),
        (real("pte-order9"), 9e6),
        (sim("mm-unstable"), 10e6),
        (sim("upstream"), 6e6),
    ]
    .into_iter()
    .map(|(variant, ns)| {
        let sessions: Vec<serde_json::Value> = [-0.01f64, 0.0, 0.01]
            .iter()
            .enumerate()
            .map(|(i, o)| {
                serde_json::json!({"session": i, "runs": 3, "mean_ns": ns * o.exp(),
                    "std_ns": ns * 0.004})
            })
            .collect();
        serde_json::json!({"variant": variant, "sessions": sessions})
    })
    .collect();
    let sessions: Vec<serde_json::Value> = (0..3)
        .map(|i| {
            serde_json::json!({"source": format!("noise session {} of 3", i + 1),
                "created_utc": format!("2025-12-31T0{i}:00:00Z"), "seed": i,
                "git_rev": "r0", "busy": false})
        })
        .collect();
    let file = serde_json::json!({"kind": "forkbench-noise", "schema": 1, "machine": "box",
        "kernel": "6.1.0", "git_rev": "r0", "tool_version": "0.1.0",
        "created_utc": "2025-12-31T03:00:00Z", "profile": "ci", "quick": false,
        "gap_secs": 600, "sessions": sessions, "variants": variants});
    let p = dir.join("box/noise/noise-20251231T030000Z-6.1.0.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, file.to_string()).unwrap();
}

fn out(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_b_runs_of_two_kernels_compare_like_with_like() {
    let d = tempfile::tempdir().unwrap();
    let results = d.path().display().to_string();
    // A: kernel 6.1, fifo. B: kernel 6.12, batch (no root for fifo); the model 50% slower.
    side(d.path(), "A", "6.1.0", Sched::Fifo, "r1", 1.0, 1.0);
    side(d.path(), "Bbatch", "6.12.0", Sched::Batch, "r1", 0.75, 1.5);
    let (code, stdout, err) = out(&xtask(&["compare", "A", "Bbatch", "--results", &results]));
    assert_eq!(code, Some(2), "{stdout}{err}");
    assert_eq!(
        err,
        "xtask: error: A (A) and B (Bbatch) differ in sched (fifo vs batch): pass --allow-mixed \
         to compare anyway\n"
    );
    let (code, _, err) = out(&xtask(&["table", "A", "Bbatch", "--results", &results]));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("differ in sched (fifo vs batch)"), "{err}");
    // Allowed: matched by layout, and the output says what was mixed.
    let (code, stdout, _) = out(&xtask(&[
        "compare",
        "A",
        "Bbatch",
        "--allow-mixed",
        "--results",
        &results,
    ]));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.starts_with("MIXED (--allow-mixed): A (A) and B (Bbatch) differ in sched"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("| real:x86_64:fork:").count(), 2, "{stdout}");

    // B alike (fifo), same tool revision: only the real-fork rows; the model is left out.
    // Two files are two sessions: without the machine's noise, no verdict.
    side(d.path(), "B", "6.12.0", Sched::Fifo, "r1", 0.75, 1.5);
    let (code, stdout, err) = out(&xtask(&["compare", "A", "B", "--results", &results]));
    assert_eq!(code, Some(0), "{stdout}{err}");
    assert!(
        stdout.contains("0 faster, 0 slower, 0 same, 2 unknown"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .matches("| unknown (between-session noise not measured here: cargo xtask noise) |")
            .count(),
        2,
        "{stdout}"
    );
    // With it (measured on kernel A), a 25% change still shows.
    noise(d.path());
    let (code, stdout, err) = out(&xtask(&["compare", "A", "B", "--results", &results]));
    assert_eq!(code, Some(0), "{stdout}{err}");
    assert!(
        stdout.starts_with(
            "B (B) against A (A), threshold 1.0% (the default noise threshold; across files, \
             at least each row's measured noise):\n\
             kernel comparison (6.1.0 vs 6.12.0): real-fork rows only\n\
             cross-file comparison: each result file is one session; verdicts include the \
             machine's between-session noise\n\
             noise: "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("(measured 2025-12-31T03:00:00Z on kernel 6.1.0, git r0, 3 sessions: 3 run 600 s apart, 0 result files)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| real:x86_64:fork:pte-order9:sched-fifo |"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("| real:").count(), 2, "{stdout}");
    assert!(!stdout.contains("| sim:"), "{stdout}");
    assert!(stdout.contains("2 faster, 0 slower"), "{stdout}");
    assert!(
        stdout.contains("2 model variant(s) left out: the model does not depend on the kernel, and both sides ran \
             the same tool revision"),
        "{stdout}"
    );

    // B from another tool revision: the model's rows appear, apart, as a tool change; exit 0.
    side(d.path(), "Bnewtool", "6.12.0", Sched::Fifo, "r2", 0.75, 1.5);
    let (code, stdout, err) = out(&xtask(&["compare", "A", "Bnewtool", "--results", &results]));
    assert_eq!(code, Some(0), "{stdout}{err}");
    let (kernel, tool) = stdout
        .split_once("Tool change, not a kernel regression")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(!kernel.contains("| sim:"), "{kernel}");
    assert_eq!(tool.matches("| sim:x86_64:").count(), 2, "{tool}");
    assert!(
        tool.contains("\n  A: git r1, tool 0.1.0\n  B: git r2, tool 0.1.0\n"),
        "{tool}"
    );
    assert!(
        tool.contains("tool change beyond the noise threshold"),
        "{tool}"
    );
}
