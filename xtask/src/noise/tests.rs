//! `cargo xtask noise` on the mock runner: sessions through `bench`'s own path, result files
//! beside the results counted as sessions, nothing written when stopped.

use std::sync::atomic::AtomicBool;

use super::*;
use crate::bench::HostFacts;
use crate::exec::Executor;
use crate::exec::mock::Mock;

fn args(sessions: usize) -> NoiseArgs {
    NoiseArgs {
        config: None,
        sessions,
        gap: Duration::from_secs(600),
        instrument: Instruments::Real,
        quick: true,
        force: false,
        wait_quiet: 0,
        out: String::new(),
        dry_run: false,
    }
}

/// A session of `bench` on the mock whose samples are scaled by `factor` (the session's own
/// offset), written where `b` says.
fn mock_session(b: &BenchArgs, factor: f64) -> anyhow::Result<Option<PathBuf>> {
    let never = AtomicBool::new(false);
    bench::bench_written(b, &HostFacts::default(), &never, &[], &mut |_, _| {
        Ok(Box::new(Mock {
            factor,
            ..Mock::default()
        }) as Box<dyn Executor>)
    })
}

fn noise_files(out: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for m in std::fs::read_dir(out).into_iter().flatten().flatten() {
        let d = m.path().join("noise");
        v.extend(
            std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path()),
        );
    }
    v
}

#[test]
fn sessions_make_a_noise_file_and_results_beside_them_count() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path();
    // A bench already made here by this tool on the mock's kernel: one more session. One of
    // another kernel is not.
    let mut bench_args = session_args(&args(3), 0, out, false);
    bench_args.label = Some("earlier".into());
    let earlier = mock_session(&bench_args, 1.06).unwrap().unwrap();
    let mut other = select::load(&earlier).unwrap();
    for r in &mut other.runs {
        if let results::Variant::Real(v) = &mut r.variant {
            v.kernel = "6.1.0-other".into();
        }
    }
    other.seed += 1;
    other
        .save_new(&earlier.with_file_name("20200101T000000Z-other.json"))
        .unwrap();
    let factors = [1.0, 1.03, 0.97];
    let mut n = 0;
    let mut pauses = Vec::new();
    let written = measure(
        &args(3),
        out,
        &mut |b: &BenchArgs| {
            assert!(b.session_only && b.instrument == Some(Instruments::Real));
            n += 1;
            mock_session(b, factors[n - 1])
        },
        &mut |gap, next, total| {
            pauses.push((gap.as_secs(), next, total));
            Ok(())
        },
        &AtomicBool::new(false),
    )
    .unwrap()
    .unwrap();
    assert_eq!(pauses, [(600, 2, 3), (600, 3, 3)]);
    assert_eq!(noise_files(out), std::slice::from_ref(&written));
    let name = written.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("noise-") && name.ends_with("-6.18.0-mock.json"),
        "{name}"
    );
    let nf = NoiseFile::load(&written).unwrap();
    assert_eq!(nf.kernel, "6.18.0-mock");
    assert_eq!(nf.gap_secs, 600);
    assert!(nf.quick);
    let sources: Vec<&str> = nf.sessions.iter().map(|s| s.source.as_str()).collect();
    assert_eq!(sources.len(), 4, "{sources:?}");
    assert_eq!(
        &sources[..3],
        [
            "noise session 1 of 3",
            "noise session 2 of 3",
            "noise session 3 of 3"
        ]
    );
    assert!(sources[3].ends_with("-earlier.json"), "{sources:?}");
    // Real layouts only, each with the four sessions; their spread is the mock's offsets'.
    assert!(!nf.variants.is_empty());
    for vs in &nf.variants {
        assert!(
            matches!(vs.variant, results::Variant::Real(_)),
            "{:?}",
            vs.variant
        );
        assert_eq!(vs.sessions.len(), 4, "{}", vs.variant.id());
        let sums: Vec<stats::Summary> = vs.sessions.iter().map(|s| s.summary()).collect();
        let est = stats::session::estimate(&sums).unwrap();
        let logs = [1.0f64, 1.03, 0.97, 1.06].map(f64::ln);
        let (_, want) = stats::mean_sd(&logs);
        assert!(
            (est.spread - want).abs() < 0.004,
            "{} vs {want}",
            est.spread
        );
    }
    // The session files themselves stayed in the scratch directory.
    let machine_dir = written.parent().unwrap().parent().unwrap();
    assert_eq!(select::json_files(machine_dir).unwrap().len(), 2);
    let table = render(&nf);
    assert!(
        table.contains("| real:x86_64:6.18.0-mock:order0 "),
        "{table}"
    );
}

#[test]
fn a_stop_leaves_no_noise_file() {
    let d = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(false);
    let mut n = 0;
    let e = measure(
        &args(3),
        d.path(),
        &mut |b: &BenchArgs| {
            n += 1;
            if n == 2 {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                anyhow::bail!("interrupted");
            }
            mock_session(b, 1.0)
        },
        &mut |_, _, _| Ok(()),
        &stop,
    )
    .unwrap_err();
    assert_eq!(
        format!("{e:#}"),
        "interrupted in session 2 of 3; no noise file written"
    );
    assert!(noise_files(d.path()).is_empty());
    // Stopped in a pause: the same.
    let stop = AtomicBool::new(true);
    let e = pause(Duration::from_secs(600), 2, 3, &stop).unwrap_err();
    assert_eq!(
        e.to_string(),
        "interrupted before session 2 of 3; no noise file written"
    );
}

#[test]
fn bad_arguments_are_one_line() {
    let d = tempfile::tempdir().unwrap();
    let e = measure(
        &args(1),
        d.path(),
        &mut |_: &BenchArgs| unreachable!(),
        &mut |_, _, _| Ok(()),
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("--sessions must be 2..100"),
        "{e}"
    );
    assert_eq!(parse_gap("90"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_gap("90s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_gap("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(parse_gap("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_gap("0"), Ok(Duration::ZERO));
    assert!(parse_gap("ten").unwrap_err().contains("not a pause"));
    assert!(
        parse_gap("200h")
            .unwrap_err()
            .contains("longer than a week")
    );
    // A dry run prints one session's plan and writes nothing.
    let mut a = args(3);
    a.dry_run = true;
    let mut calls = 0;
    let r = measure(
        &a,
        d.path(),
        &mut |b: &BenchArgs| {
            calls += 1;
            assert!(b.dry_run);
            Ok(None)
        },
        &mut |_, _, _| Ok(()),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((r, calls), (None, 1));
}
