//! Exact rows end to end: cases keyed by unit, instructions per PTE, agreement and verdicts,
//! the tables' text and width, on synthetic icount files ([`crate::fixtures`]).

use results::Clock;
use stats::{Policy, Verdict};

use crate::cases::build_cases;
use crate::exact::{PerCopy, exact_tables, per_copy};
use crate::fixtures::{DEBIAN_61, DEBIAN_612, EVERY_LAYOUT, ExactKernel, exact_file};
use crate::{legend, tables};

const LAYOUTS: [&str; 5] = [
    "order0",
    "pte-order9",
    "pmd-order9",
    "mthp-64k",
    "untouched",
];

fn k61() -> ExactKernel {
    ExactKernel::steady(DEBIAN_61, 188_500.0, 132.5, 5000.0, 5)
}

fn k612() -> ExactKernel {
    ExactKernel::steady(DEBIAN_612, 461_500.0, 193.3, 6088.0, 5)
}

fn verdicts(cases: &[crate::Case]) -> Vec<(String, String, Verdict)> {
    cases
        .iter()
        .flat_map(|c| {
            c.rows.iter().filter(|r| r.name != c.baseline).map(|r| {
                let v = r.exact.as_ref().unwrap().cmp.as_ref().unwrap().verdict;
                (c.layout.clone(), r.name.clone(), v)
            })
        })
        .collect()
}

#[test]
fn exact_and_timed_runs_never_share_a_case() {
    let exact = exact_file(&[k61(), k612()], &LAYOUTS, Clock::Icount);
    let mut timed = exact_file(&[k61(), k612()], &LAYOUTS, Clock::Wall);
    timed.label = "exact".into();
    let mut both = exact.clone();
    both.runs.extend(timed.runs);
    let cases = build_cases(&[both], None, &Policy::default()).unwrap();
    assert_eq!(cases.len(), 10);
    assert_eq!(cases.iter().filter(|c| c.is_exact()).count(), 5);
    for c in &cases {
        assert!(c.rows.iter().all(|r| r.unit == c.unit), "{}", c.title());
        // Exact rows carry no statistics of noise; timed rows no exact agreement.
        for r in &c.rows {
            assert_eq!(c.is_exact(), r.exact.is_some() && r.cmp.is_none());
        }
    }
    // The timed renderers pass the exact cases over.
    let t = tables::thread_tables(&cases);
    assert_eq!(t.matches("real fork()").count(), 5, "{t}");
    assert!(!t.contains("exact"), "{t}");
}

#[test]
fn a_run_is_its_median_and_instructions_per_pte_are_net_of_untouched() {
    let f = exact_file(&[k61(), k612()], &LAYOUTS, Clock::Icount);
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    for c in &cases {
        for r in &c.rows {
            // The tick in the last fork does not move the run's value.
            let e = r.exact.as_ref().unwrap();
            assert!(e.own.agree && e.own.spread == 0.0, "{}", r.name);
            let k = if r.name.starts_with("6.12") {
                k612()
            } else {
                k61()
            };
            assert_eq!(e.own.value, k.count(&r.layout).round(), "{}", r.layout);
            let per = per_copy(&cases, r);
            let want = |x: f64, got: f64| (x - got).abs() < 1e-3;
            match (r.layout.as_str(), per) {
                ("untouched", None) => {}
                ("pmd-order9", Some(PerCopy::Pmd(x))) => assert!(want(k.per_pmd, x), "{x}"),
                (_, Some(PerCopy::Pte(x))) => assert!(want(k.per_pte, x), "{} {x}", r.layout),
                (l, p) => panic!("{l}: {p:?}"),
            }
        }
    }
}

#[test]
fn mix_pmd_prices_its_pmd_half_at_pmd_order9_and_needs_untouched() {
    let f = exact_file(
        &[k61()],
        &["mix-pmd", "pmd-order9", "untouched"],
        Clock::Icount,
    );
    let cases = build_cases(std::slice::from_ref(&f), None, &Policy::default()).unwrap();
    let row = |l: &str| cases[0].rows.iter().find(|r| r.layout == l).unwrap();
    match per_copy(&cases, row("mix-pmd")) {
        Some(PerCopy::Pte(x)) => assert!((x - 132.5).abs() < 1e-2, "{x}"),
        p => panic!("{p:?}"),
    }
    // Without untouched runs of the kernel there is no figure, and the table says why.
    let f = exact_file(&[k61()], &["order0", "pte-order9"], Clock::Icount);
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    assert_eq!(
        per_copy(&cases, &cases[0].rows[0]),
        Some(PerCopy::Missing("no untouched runs of this kernel"))
    );
    let t = exact_tables(&cases);
    assert!(
        t.contains("order0: no untouched runs of this kernel"),
        "{t}"
    );
}

#[test]
fn the_same_kernel_twice_is_the_same_on_every_layout() {
    let mut a = k612();
    a.label = "a".into();
    let mut b = k612();
    b.label = "b".into();
    let f = exact_file(&[a, b], &EVERY_LAYOUT, Clock::Icount);
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    let v = verdicts(&cases);
    assert_eq!(v.len(), EVERY_LAYOUT.len());
    assert!(v.iter().all(|(_, _, v)| *v == Verdict::Same), "{v:?}");
}

#[test]
fn one_percent_more_instructions_is_slower_and_half_a_percent_less_is_same() {
    let base = k61();
    let mut slower = k61();
    slower.label = "slower".into();
    slower.run_factors = vec![1.01; 5];
    let mut close = k61();
    close.label = "close".into();
    close.run_factors = vec![0.996; 5];
    let f = exact_file(&[base, slower, close], &LAYOUTS[..1], Clock::Icount);
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    let v = verdicts(&cases);
    assert_eq!(
        v.iter().map(|x| (x.1.as_str(), x.2)).collect::<Vec<_>>(),
        [
            ("slower (tcg)", Verdict::Slower),
            ("close (tcg)", Verdict::Same)
        ]
    );
}

#[test]
fn rows_whose_runs_disagree_get_no_verdict_and_name_the_runs() {
    let mut shaky = k612();
    shaky.run_factors = vec![1.0, 1.0, 1.02, 1.0, 1.0];
    let f = exact_file(&[k61(), shaky], &LAYOUTS, Clock::Icount);
    let mut cases = build_cases(&[f], None, &Policy::default()).unwrap();
    assert!(
        verdicts(&cases)
            .iter()
            .all(|(_, _, v)| *v == Verdict::Unknown)
    );
    let legend = legend::shorten_kernel_rows(&mut cases).unwrap();
    assert!(legend.contains("6.12.117+deb13 = 6.12.117+deb13-cloud-amd64 (tcg)"));
    let t = exact_tables(&cases);
    assert!(t.contains("| unknown (runs disagree) |"), "{t}");
    assert!(t.contains("- x86_64 order0, 6.12.117+deb13: run 2 "), "{t}");
    assert!(t.contains("(spread 2.00%)"), "{t}");
    insta::assert_snapshot!("exact_tables_runs_disagree", format!("{legend}\n{t}"));
}

#[test]
fn exact_tables_fit_100_columns_with_every_layout_and_debian_names() {
    let f = exact_file(&[k61(), k612()], &EVERY_LAYOUT, Clock::Icount);
    let mut cases = build_cases(&[f], None, &Policy::default()).unwrap();
    let legend = legend::shorten_kernel_rows(&mut cases).unwrap();
    let t = format!("{legend}\n{}", exact_tables(&cases));
    for l in t.lines() {
        assert!(
            l.chars().count() <= 100,
            "{} columns: {l}",
            l.chars().count()
        );
    }
    // Every layout is a column somewhere, in instructions.
    for l in EVERY_LAYOUT {
        assert!(t.contains(&format!(" {l} |")), "{l}\n{t}");
    }
    assert!(t.contains(" instr |"), "{t}");
    assert!(!t.contains(" ms ") && !t.contains("p <"), "{t}");
}

#[test]
fn a_guest_pmu_count_is_set_beside_the_clock_for_every_row_that_has_one() {
    let mut f = exact_file(&[k61(), k612()], &LAYOUTS, Clock::Icount);
    // The counter reads 1% above the clock's mean in 6.1's runs; 6.12's guest had no PMU.
    for r in f.runs.iter_mut() {
        let results::Variant::Real(v) = &r.variant else {
            continue;
        };
        if v.kernel != DEBIAN_61 {
            continue;
        }
        let per_op = r.mean_ns() * 1.01;
        r.real.as_mut().unwrap().counters.insert(
            "instructions".into(),
            results::CounterValue {
                value: Some((per_op * r.samples_ns.len() as f64) as u64),
                per_op: Some(per_op),
                kernel: Some(true),
                reason: None,
            },
        );
    }
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    let t = crate::exact_pmu::pmu_crosscheck(&cases);
    for l in LAYOUTS {
        let line = t
            .lines()
            .find(|x| x.contains(DEBIAN_61) && x.contains(&format!(" {l} ")))
            .unwrap_or_else(|| panic!("no {l} line:\n{t}"));
        assert!(line.contains(" +1.00% |"), "{line}");
    }
    assert!(!t.contains(DEBIAN_612), "{t}");
    assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
    // The counter table is part of the exact tables.
    assert!(exact_tables(&cases).contains(&t));
}
