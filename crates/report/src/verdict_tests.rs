//! The compact verdict table (within 100 columns) and the verbose extended table's real-fork
//! columns (spread without drift, core-probe correlation), on synthetic result files.

use results::{Accel, Arch, Instrument, Mode, RealExtra, ResultFile, RunRecord, Variant};
use stats::Policy;

use super::*;
use crate::tests::{file, rec};

const KERNEL: &str = "6.18.44-fc-v782";

/// A host real-fork run of `layout`: four samples around `mean_ns` (the third slow, as a
/// drifting host makes it) and a core probe that rises with them.
fn host_rec(layout: &str, run: u32, mean_ns: f64) -> RunRecord {
    let mut r = rec(Instrument::Real, KERNEL, layout, "", run, mean_ns);
    if let Variant::Real(v) = &mut r.variant {
        v.arch = Arch::X86_64;
        v.accel = Accel::Host;
        v.mem_bytes = 64 << 20;
        v.mode = Mode::Steady;
        v.sched = results::Sched::Fifo;
    }
    let f = [0.99, 1.00, 1.02, 0.99];
    r.samples_ns = f.iter().map(|f| (mean_ns * f).round() as u64).collect();
    r.real = Some(Box::new(RealExtra {
        core_probe_ns: f.iter().map(|f| (400_000.0 * f) as u64).collect(),
        ..RealExtra::default()
    }));
    r
}

/// What `bench --quick` makes on the development VM: the model (arm64, 2 orders x 2 contpte x
/// 5 strategies, longest row names) and the 5 real layouts, 3 runs each.
fn quick_like_file() -> ResultFile {
    let mut runs = Vec::new();
    let strategies = [
        "mm-unstable",
        "hugetlb-rmap-cleanups",
        "ryan-v4",
        "fork-batching",
        "upstream",
    ];
    for run in 0..3u32 {
        let drift = [1.0, 1.013, 0.991][run as usize];
        for (i, s) in strategies.iter().enumerate() {
            for order in ["order0", "order9"] {
                for c in ["contpte-dis", "contpte-ena"] {
                    let m = 500_000.0 * (1.0 + 0.2 * i as f64) * drift;
                    runs.push(rec(Instrument::Sim, s, order, c, run, m));
                }
            }
        }
        for (layout, m) in [
            ("order0", 4.1e6),
            ("pte-order9", 1.2e6),
            ("pmd-order9", 0.09e6),
            ("mthp-64k", 0.9e6),
            ("untouched", 0.05e6),
        ] {
            runs.push(host_rec(layout, run, m * drift));
        }
    }
    file("vm", "6.18.44-fc-v782", runs)
}

#[test]
fn the_verdict_table_fits_100_columns_and_names_its_threshold() {
    let f = quick_like_file();
    let policy = Policy::default();
    let cases = build_cases(std::slice::from_ref(&f), None, &policy).unwrap();
    let t = verdict_table(&cases, policy.noise);
    for l in t.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    assert!(t.contains("noise threshold ±1.0%"), "{t}");
    // One heading per case, every row once.
    assert_eq!(t.matches("| model arm64 order").count(), 2, "{t}");
    assert!(
        t.contains("| real fork(), x86_64, 64M steady, 3 runs"),
        "{t}"
    );
    assert!(t.contains("|   order0 sched-fifo"), "{t}");
    assert_eq!(t.matches("| baseline ").count(), 3, "{t}");
    insta::assert_snapshot!(t);
    // Another threshold is printed as given.
    assert!(verdict_table(&cases, 0.02).contains("noise threshold ±2.0%"));
}

#[test]
fn verbose_real_rows_show_spread_without_drift_and_probe_r() {
    let f = quick_like_file();
    let cases = build_cases(std::slice::from_ref(&f), None, &Policy::default()).unwrap();
    let real = cases
        .iter()
        .find(|c| c.instrument == Instrument::Real)
        .unwrap();
    let row = real.rows.iter().find(|r| r.layout == "order0").unwrap();
    let s = real_spread(std::slice::from_ref(&f), row).unwrap();
    // The same figures the runner's summary line computes.
    let per_run: Vec<Vec<f64>> = f
        .runs
        .iter()
        .filter(|r| r.variant.layout_name() == "order0" && r.real.is_some())
        .map(|r| r.samples_ns.iter().map(|&x| x as f64).collect())
        .collect();
    assert_eq!(per_run.len(), 3);
    let want = stats::regrouped(&per_run).unwrap().std;
    assert!((s.std_without_drift_ns.unwrap() - want).abs() < 1e-6);
    // The probe moves with the forks inside each run: r is high.
    assert!(s.probe_r.unwrap() > 0.5, "{s:?}");
    // Model rows have none.
    let sim_row = &cases[0].rows[0];
    assert_eq!(real_spread(std::slice::from_ref(&f), sim_row), None);

    let t = extended_tables_verbose(&cases, std::slice::from_ref(&f));
    let header = t
        .lines()
        .find(|l| l.starts_with("| kernel") && l.contains("std_rel w/o drift"))
        .expect("real-fork header");
    assert!(
        header.ends_with("| std_rel w/o drift | probe r |"),
        "{header}"
    );
    // The real case's rows carry the two columns, relative to the baseline (order0) mean like
    // std_rel; the model's tables are as before.
    let base = row.summary.mean;
    let want = want / base;
    let order0 = t
        .lines()
        .find(|l| l.starts_with("| order0 sched-fifo"))
        .unwrap();
    assert!(
        order0.ends_with(&format!(" {} |    {:.2} |", pct(want), s.probe_r.unwrap())),
        "{order0}"
    );
    // A non-baseline row too is relative to the baseline's mean, not its own.
    let pmd = real.rows.iter().find(|r| r.layout == "pmd-order9").unwrap();
    let sd = real_spread(std::slice::from_ref(&f), pmd)
        .unwrap()
        .std_without_drift_ns
        .unwrap();
    let line = t
        .lines()
        .find(|l| l.starts_with("| pmd-order9 sched-fifo"))
        .unwrap();
    assert!(
        line.contains(&format!("| {:>17} |", pct(sd / base))),
        "{line}"
    );
    assert_ne!(pct(sd / base), pct(sd / pmd.summary.mean));
    assert_eq!(t.matches("std_rel w/o drift").count(), 1, "{t}");
    let plain = extended_tables(&cases);
    let first_model = plain.split("\n\n").take(2).collect::<Vec<_>>().join("\n\n");
    assert!(t.starts_with(&first_model));
}
