//! Cross-file verdicts end to end through `compare` and `table`, on synthetic result files and
//! noise files written where the tasks look for them.

use std::path::Path;
use std::process::ExitCode;

use results::{Accel, Arch, Mode, RealLayout, RealVariant, ResultFile, RunRecord, Sched, Variant};

use super::fixtures::{busy, noise_around, store};
use crate::compare::{CompareArgs, run};

fn real(kernel: &str, layout: RealLayout) -> RealVariant {
    RealVariant {
        arch: Arch::X86_64,
        kernel: kernel.into(),
        accel: Accel::Host,
        clock: Default::default(),
        layout,
        mem_bytes: 1 << 30,
        mode: Mode::Steady,
        sched: Sched::Fifo,
        unverified: false,
    }
}

/// A bench file of machine `vm`: 8 runs of order0 (35 ms) and pte-order9 (11 ms x `pte_x`) on
/// `kernel`, made at `created` by tool revision `rev`; run means spread ±1%.
fn bench_file(label: &str, kernel: &str, created: &str, rev: &str, pte_x: f64) -> ResultFile {
    let mut f = ResultFile::new("vm", label, created, Default::default());
    f.git_rev = rev.into();
    f.seed = created.len() as u64 + label.len() as u64;
    f.env.kernel_release = kernel.into();
    for run in 0..8u32 {
        let wobble = 1.0 + 0.01 * (f64::from(run % 3) - 1.0);
        for (layout, ns) in [
            (RealLayout::Order0, 35e6),
            (RealLayout::PteOrder9, 11e6 * pte_x),
        ] {
            f.runs.push(RunRecord {
                variant: Variant::Real(real(kernel, layout)),
                run_index: run,
                warmup: 0,
                samples_ns: vec![(ns * wobble) as u64; 4],
                cpu: Some(1),
                ops: Default::default(),
                sim: None,
                real: None,
                host_load: None,
            });
        }
    }
    f.load_check = Some(crate::bench::load_check(&f.runs));
    f
}

/// Save files under `<dir>/vm/` and compare the second against the first.
fn compare_files(dir: &Path, a: &ResultFile, b: &ResultFile, allow_busy: bool) -> ExitCode {
    let path = |f: &ResultFile| {
        let p = dir.join("vm").join(format!(
            "{}-{}.json",
            f.created_utc.replace(['-', ':'], ""),
            f.label
        ));
        if !p.exists() {
            f.save_new(&p).unwrap();
        }
        p.display().to_string()
    };
    run(&CompareArgs {
        a: path(a),
        b: Some(path(b)),
        kernels: None,
        threshold: 1.0,
        allow_mixed: false,
        allow_busy,
        results: dir.display().to_string(),
        exact: Default::default(),
    })
    .unwrap()
}

/// The text `compare` prints for B against A (the report, as `run` prints it).
fn report(dir: &Path, a: &ResultFile, b: &ResultFile, allow_busy: bool) -> crate::compare::Report {
    let cross = super::Cross {
        results_dir: dir.to_owned(),
        allow_busy,
    };
    let (a, b) = (std::slice::from_ref(a), std::slice::from_ref(b));
    crate::compare::check_and_compare(
        a,
        b,
        ("A", "B"),
        crate::compare::kernels_differ(a, b),
        1.0,
        false,
        Some(&cross),
    )
    .unwrap()
}

/// The cells of a layout's row, trimmed.
fn row(text: &str, layout: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.starts_with(&format!("| real:x86_64:fork:{layout}:")))
        .unwrap_or_else(|| panic!("no {layout} row in\n{text}"))
        .split('|')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// The last two cells of a row: noise and verdict.
fn noise_and_verdict(text: &str, layout: &str) -> (String, String) {
    let mut r = row(text, layout);
    let v = r.pop().unwrap();
    (r.pop().unwrap(), v)
}

/// The synthetic check: a measured noise of 2% and a +20% change on pte-order9 is
/// slower (exit 1); the same change with no noise estimate is unknown, with the reason.
#[test]
fn two_percent_noise_and_a_twenty_percent_change_is_slower() {
    let d = tempfile::tempdir().unwrap();
    let a = bench_file("A", "6.18.44", "2026-12-05T01:00:00Z", "r1", 1.0);
    let b = bench_file("B", "6.18.44", "2026-12-05T02:00:00Z", "r1", 1.2);
    // No noise measured for vm: no verdict, and the reason.
    let r = report(d.path(), &a, &b, false);
    assert!(!r.regression, "{}", r.text);
    assert_eq!(
        noise_and_verdict(&r.text, "pte-order9").1,
        "unknown (between-session noise not measured here: cargo xtask noise)",
        "{}",
        r.text
    );
    assert_eq!(compare_files(d.path(), &a, &b, false), ExitCode::SUCCESS);
    // Measured: 2% between sessions (by another tool revision, so A and B are not sessions of
    // it), on this kernel.
    store(d.path(), &noise_around(&a, 0.02, "6.18.44", "r0"));
    let r = report(d.path(), &a, &b, false);
    assert!(r.regression, "{}", r.text);
    assert_eq!(row(&r.text, "pte-order9")[3], "20.0%", "{}", r.text);
    assert_eq!(
        noise_and_verdict(&r.text, "pte-order9"),
        ("±2.0% (3)".into(), "slower".into()),
        "{}",
        r.text
    );
    // No change: inside the noise, but the interval is too wide to call it the same.
    assert_eq!(
        noise_and_verdict(&r.text, "order0"),
        ("±2.0% (3)".into(), "unknown".into()),
        "{}",
        r.text
    );
    assert!(
        r.text.contains(
            "REGRESSION beyond the noise threshold: real:x86_64:fork:pte-order9:sched-fifo 20.0% \
             (threshold 2.0%)"
        ),
        "{}",
        r.text
    );
    assert!(
        r.text.contains(
            "/vm/noise/noise-20261205T001000Z-6.18.44.json (measured 2026-12-05T00:10:00Z on \
             kernel 6.18.44, git r0, 3 sessions: 3 run 600 s apart, 0 result files)\n"
        ),
        "{}",
        r.text
    );
    assert_eq!(compare_files(d.path(), &a, &b, false), ExitCode::from(1));
}

/// A/A: two sessions of one kernel, one an hour after the other, their pte-order9 4% apart
/// (inside the machine's session spread): no faster or slower. They are sessions of the noise
/// file's machine, kernel and tool, so the estimate takes them in too.
#[test]
fn two_sessions_of_one_kernel_are_never_called_different() {
    let d = tempfile::tempdir().unwrap();
    let a = bench_file("A", "6.18.44", "2026-12-05T01:00:00Z", "r1", 1.0);
    let a2 = bench_file("A2", "6.18.44", "2026-12-05T02:00:00Z", "r1", 1.04);
    store(d.path(), &noise_around(&a, 0.03, "6.18.44", "r1"));
    let r = report(d.path(), &a, &a2, false);
    assert!(!r.regression, "{}", r.text);
    assert!(r.text.contains("0 faster, 0 slower"), "{}", r.text);
    assert!(
        r.text.contains(
            "A and B counted as sessions of that noise too (same machine, kernel and tool)"
        ),
        "{}",
        r.text
    );
    let (noise, _) = noise_and_verdict(&r.text, "pte-order9");
    assert!(noise.ends_with("% (5)"), "{}", r.text);
    // Today's rule (within-file Welch over the two files' runs) calls the same 4% slower.
    let (lines, _) =
        crate::compare::compare(std::slice::from_ref(&a), std::slice::from_ref(&a2), 1.0);
    assert!(
        lines
            .iter()
            .any(|l| l.cmp.verdict == stats::Verdict::Slower),
        "the within-file rule should have been fooled"
    );
}

/// A side whose load check fired gets no verdict unless `--allow-busy`; old files without a
/// stored check are judged by their runs' load figures, as `bench` judged them.
/// One machine name on two CPUs (a VM moved to other hardware) is two machines: with
/// `--allow-mixed` the rows are matched, but the noise of neither applies, whatever the change;
/// and noise measured on another CPU is not used.
#[test]
fn sides_on_two_cpus_get_no_verdict() {
    let d = tempfile::tempdir().unwrap();
    let mut a = bench_file("A", "6.18.44", "2026-12-05T01:00:00Z", "r1", 1.0);
    a.env.cpu_model = Some("CPU one".into());
    let mut b = bench_file("B", "6.18.44", "2026-12-05T02:00:00Z", "r1", 1.5);
    store(d.path(), &noise_around(&a, 0.02, "6.18.44", "r0"));
    b.env.cpu_model = Some("CPU two".into());
    let judged = |a: &ResultFile, b: &ResultFile| {
        let cross = super::Cross {
            results_dir: d.path().to_owned(),
            allow_busy: false,
        };
        let (a, b) = (std::slice::from_ref(a), std::slice::from_ref(b));
        crate::compare::check_and_compare(a, b, ("A", "B"), false, 1.0, true, Some(&cross)).unwrap()
    };
    let r = judged(&a, &b);
    assert!(!r.regression, "{}", r.text);
    assert!(
        r.text.contains(
            "no verdicts: A and B ran on different CPUs: CPU one vs CPU two; no machine's \
             noise applies to both"
        ),
        "{}",
        r.text
    );
    assert_eq!(
        noise_and_verdict(&r.text, "pte-order9").1,
        "unknown (A and B ran on different CPUs)",
        "{}",
        r.text
    );
    // Both sides on the other CPU: the noise file, measured on A's CPU, does not apply.
    let mut a2 = a.clone();
    a2.env.cpu_model = Some("CPU two".into());
    let r = judged(&a2, &b);
    assert_eq!(
        noise_and_verdict(&r.text, "pte-order9").1,
        format!("unknown ({})", super::NOT_MEASURED),
        "{}",
        r.text
    );
}

#[test]
fn a_busy_side_gets_no_verdict() {
    let d = tempfile::tempdir().unwrap();
    let a = bench_file("A", "6.18.44", "2026-12-05T01:00:00Z", "r1", 1.0);
    let mut b = bench_file("B", "6.18.44", "2026-12-05T02:00:00Z", "r1", 1.5);
    busy(&mut b);
    store(d.path(), &noise_around(&a, 0.02, "6.18.44", "r0"));
    let r = report(d.path(), &a, &b, false);
    assert!(!r.regression, "{}", r.text);
    assert_eq!(
        noise_and_verdict(&r.text, "pte-order9").1,
        "unknown (B was measured on a busy machine)",
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("busy: B (B): the machine was busy: the busiest other CPU was 60% busy"),
        "{}",
        r.text
    );
    assert!(
        r.text.contains("(--allow-busy to judge anyway)"),
        "{}",
        r.text
    );
    let r = report(d.path(), &a, &b, true);
    assert!(r.regression, "{}", r.text);
    // The same facts from the runs alone (a file written before the check was stored).
    b.load_check = None;
    let mut a_busy = a.clone();
    busy(&mut a_busy);
    a_busy.load_check = None;
    let r = report(d.path(), &a_busy, &b, false);
    assert_eq!(
        noise_and_verdict(&r.text, "order0").1,
        "unknown (A and B were measured on a busy machine)",
        "{}",
        r.text
    );
}

/// Noise measured on kernel A applies when B ran another kernel: the machine's, said so.
#[test]
fn noise_of_one_kernel_applies_to_the_machine_and_says_so() {
    let d = tempfile::tempdir().unwrap();
    let a = bench_file("A", "6.18.44-v782", "2026-11-30T05:03:29Z", "r0", 1.0);
    let b = bench_file("B", "6.18.44-v1252", "2026-12-05T02:00:00Z", "r1", 1.0);
    store(d.path(), &noise_around(&b, 0.05, "6.18.44-v1300", "r2"));
    let r = report(d.path(), &a, &b, false);
    assert!(
        r.text.contains(
            "measured on another kernel than the sides' (6.18.44-v1252, 6.18.44-v782): the \
             machine's noise is taken to hold for them"
        ),
        "{}",
        r.text
    );
    assert!(r.text.contains("0 faster, 0 slower"), "{}", r.text);
    // A noise file of B's kernel is preferred over a newer one of another kernel.
    store(d.path(), &{
        let mut n = noise_around(&b, 0.01, "6.18.44-v1252", "r2");
        n.created_utc = "2026-12-01T00:00:00Z".into();
        n
    });
    let r = report(d.path(), &a, &b, false);
    assert!(r.text.contains("on kernel 6.18.44-v1252"), "{}", r.text);
    assert!(!r.text.contains("another kernel"), "{}", r.text);
}

/// Exact rows (instruction counts) have no session term: the rule leaves them as they are.
#[test]
fn exact_rows_are_left_to_their_own_rule() {
    let d = tempfile::tempdir().unwrap();
    let mut a = bench_file("A", "6.1", "2026-12-05T01:00:00Z", "r1", 1.0);
    let mut b = bench_file("B", "6.1", "2026-12-05T02:00:00Z", "r1", 1.0);
    for f in [&mut a, &mut b] {
        for r in &mut f.runs {
            if let Variant::Real(v) = &mut r.variant {
                v.clock = contract::Clock::Icount;
                v.accel = Accel::Tcg;
            }
        }
    }
    let r = report(d.path(), &a, &b, false);
    assert!(!r.text.contains("not measured here"), "{}", r.text);
    assert!(!r.text.contains("| noise |"), "{}", r.text);
}

/// `table A B`: rows of another label than the baseline are judged across files; the notes
/// under the table say with what.
#[test]
fn table_rows_of_two_files_are_judged_across_sessions() {
    let d = tempfile::tempdir().unwrap();
    let a = bench_file("A", "6.18.44", "2026-12-05T01:00:00Z", "r1", 1.0);
    let b = bench_file("B", "6.18.44", "2026-12-05T02:00:00Z", "r1", 1.2);
    let files = vec![a.clone(), b.clone()];
    let cross = super::Cross {
        results_dir: d.path().to_owned(),
        allow_busy: false,
    };
    let verdict = |cases: &[report::Case], layout: &str| {
        let c = cases.iter().find(|c| c.layout == layout).unwrap();
        let r = c.rows.iter().find(|r| r.label == "B").unwrap();
        r.cmp.unwrap().verdict
    };
    let mut cases = crate::table::cases_for(&files, None).unwrap();
    assert_eq!(
        verdict(&cases, "order0"),
        stats::Verdict::Same,
        "within-file rule"
    );
    let notes = super::judge_cases(&cross, &files, &mut cases, 0.01)
        .unwrap()
        .unwrap();
    assert_eq!(verdict(&cases, "pte-order9"), stats::Verdict::Unknown);
    assert!(
        notes.contains("'B' (B) against 'A' (A): cross-file comparison")
            && notes.contains(super::NOT_MEASURED),
        "{notes}"
    );
    store(d.path(), &noise_around(&a, 0.02, "6.18.44", "r0"));
    let mut cases = crate::table::cases_for(&files, None).unwrap();
    let notes = super::judge_cases(&cross, &files, &mut cases, 0.01)
        .unwrap()
        .unwrap();
    assert_eq!(
        verdict(&cases, "pte-order9"),
        stats::Verdict::Slower,
        "{notes}"
    );
    assert!(
        notes.contains("noise threshold real:x86_64:fork:pte-order9:sched-fifo: ±2.0% (3)"),
        "{notes}"
    );
    // One file's layouts against each other: one session, nothing to judge.
    let mut one = crate::table::cases_for(std::slice::from_ref(&a), None).unwrap();
    assert_eq!(
        super::judge_cases(&cross, std::slice::from_ref(&a), &mut one, 0.01).unwrap(),
        None
    );
}
