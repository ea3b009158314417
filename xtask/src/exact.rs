//! Exact rows in `table`, `compare` and `bench`: their options (`--exact-tolerance`,
//! `--exact-threshold`), the rule that timed and exact runs never meet in one comparison
//! ([`unit_refusal`]), and `compare` of exact rows ([`compare_exact`]): each side's runs must
//! agree, then a change beyond the threshold is faster/slower and anything smaller `same`. No
//! test, p-value or CI: the counts are exact (`stats::exact`). The statistical path for timed
//! rows stays in [`crate::compare`].

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use clap::Args;
use results::{ResultFile, SampleUnit, Variant};
use stats::Verdict;
use stats::exact::{ExactComparison, ExactPolicy, Undecided};

use crate::compare::{Matching, Report};

/// How exact rows are judged, in percent on the command line.
#[derive(Args, Debug, Clone, Copy, PartialEq)]
pub struct ExactArgs {
    /// Exact rows (QEMU icount): the runs of one row agree when (max - min) / median of their
    /// medians is at most this, in percent; a row whose runs do not agree gets no verdict
    #[arg(long, value_name = "PCT", default_value_t = stats::exact::DEFAULT_TOLERANCE * 100.0)]
    pub exact_tolerance: f64,
    /// Exact rows: a change beyond this, in percent, is faster/slower; anything smaller is
    /// `same`
    #[arg(long, value_name = "PCT", default_value_t = stats::exact::DEFAULT_THRESHOLD * 100.0)]
    pub exact_threshold: f64,
    /// Exact rows: the floor under both, in instructions: runs this close always agree and a
    /// change this small is `same` (a fork's fixed cost moves by up to ~1.7 k instructions
    /// between runner processes; docs/kernels.md)
    #[arg(long, value_name = "INSTR", default_value_t = stats::exact::DEFAULT_FLOOR)]
    pub exact_floor: f64,
}

impl Default for ExactArgs {
    fn default() -> Self {
        ExactArgs {
            exact_tolerance: stats::exact::DEFAULT_TOLERANCE * 100.0,
            exact_threshold: stats::exact::DEFAULT_THRESHOLD * 100.0,
            exact_floor: stats::exact::DEFAULT_FLOOR,
        }
    }
}

impl ExactArgs {
    /// The policy, or one error line naming the bad option.
    pub fn policy(&self) -> anyhow::Result<ExactPolicy> {
        for (name, v) in [
            ("--exact-tolerance", self.exact_tolerance),
            ("--exact-threshold", self.exact_threshold),
        ] {
            if !(v.is_finite() && (0.0..100.0).contains(&v)) {
                bail!("{name} must be a percentage in [0, 100), not {v}");
            }
        }
        if !(self.exact_floor.is_finite() && self.exact_floor >= 0.0) {
            bail!(
                "--exact-floor must be a number of instructions, 0 or more, not {}",
                self.exact_floor
            );
        }
        Ok(ExactPolicy {
            tolerance: self.exact_tolerance / 100.0,
            threshold: self.exact_threshold / 100.0,
            floor: self.exact_floor,
        })
    }

    /// The statistics policy of the tables, with these exact settings.
    pub fn stats_policy(&self) -> anyhow::Result<stats::Policy> {
        Ok(stats::Policy {
            exact: self.policy()?,
            ..stats::Policy::default()
        })
    }
}

/// The units of a selection's runs.
pub fn units(files: &[ResultFile]) -> BTreeSet<SampleUnit> {
    files
        .iter()
        .flat_map(|f| &f.runs)
        .map(|r| r.variant.unit())
        .collect()
}

fn unit_name(units: &BTreeSet<SampleUnit>) -> &'static str {
    match (
        units.contains(&SampleUnit::Nanoseconds),
        units.contains(&SampleUnit::Instructions),
    ) {
        (true, true) => "timed (ns) and exact (guest instructions) runs",
        (false, true) => "exact runs (guest instructions, QEMU icount)",
        _ => "timed runs (ns)",
    }
}

/// Why A and B cannot be compared: their runs are in different units (one side timed, the
/// other exact). None when both sides hold the same units.
pub fn unit_refusal(a: &[ResultFile], b: &[ResultFile], names: (&str, &str)) -> Option<String> {
    let (ua, ub) = (units(a), units(b));
    (ua != ub).then(|| {
        format!(
            "A ({}) holds {} and B ({}) {}: instructions and nanoseconds do not compare",
            names.0,
            unit_name(&ua),
            names.1,
            unit_name(&ub)
        )
    })
}

/// Keep only the runs in `unit` (files left empty are dropped).
pub fn only_unit(files: &[ResultFile], unit: SampleUnit) -> Vec<ResultFile> {
    files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.runs.retain(|r| r.variant.unit() == unit);
            f
        })
        .filter(|f| !f.runs.is_empty())
        .collect()
}

/// Run values (each run's median) per matching key.
fn run_values(files: &[ResultFile], matching: Matching) -> BTreeMap<Variant, Vec<f64>> {
    let mut m: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    for f in files {
        for r in &f.runs {
            if let Some(v) = stats::exact::run_value(&r.samples_ns) {
                m.entry(matching.key(&r.variant)).or_default().push(v);
            }
        }
    }
    m
}

/// One compared exact row.
#[derive(Debug, Clone)]
pub struct ExactLine {
    pub variant: Variant,
    pub cmp: ExactComparison,
}

/// Every exact variant present on both sides, B against A; the ids of those on one side only.
pub fn compare_lines(
    a: &[ResultFile],
    b: &[ResultFile],
    matching: Matching,
    policy: &ExactPolicy,
) -> (Vec<ExactLine>, Vec<String>) {
    let (ma, mb) = (run_values(a, matching), run_values(b, matching));
    let mut lines = Vec::new();
    let mut unmatched = Vec::new();
    for (v, xa) in &ma {
        match mb.get(v) {
            Some(xb) => {
                if let Some(cmp) = stats::exact::compare(xa, xb, policy) {
                    lines.push(ExactLine {
                        variant: v.clone(),
                        cmp,
                    });
                }
            }
            None => unmatched.push(format!("{} (A only)", v.id())),
        }
    }
    unmatched.extend(
        mb.keys()
            .filter(|k| !ma.contains_key(*k))
            .map(|v| format!("{} (B only)", v.id())),
    );
    let rank = crate::compare::row_rank(a, b);
    lines.sort_by_cached_key(|l| rank(&l.variant));
    (lines, unmatched)
}

/// A row's label: its layout, and its kernel when rows are matched kernel by kernel.
fn row_label(v: &Variant) -> String {
    match v {
        Variant::Real(r) if r.kernel != "fork" => format!("{} {}", r.kernel, r.layout),
        _ => v.layout_name(),
    }
}

fn verdict_text(c: &ExactComparison) -> String {
    match (c.verdict, c.undecided) {
        (Verdict::Unknown, Some(Undecided::Baseline)) => "unknown (A's runs disagree)".into(),
        (Verdict::Unknown, Some(Undecided::Row)) => "unknown (B's runs disagree)".into(),
        (Verdict::Unknown, Some(Undecided::Both)) => "unknown (runs disagree)".into(),
        (v, _) => v.to_string(),
    }
}

fn pct2(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn signed_pct2(x: f64) -> String {
    let v = (x * 10000.0).round() / 100.0;
    if v == 0.0 {
        "0.00%".into()
    } else {
        format!("{v:+.2}%")
    }
}

/// The exact comparison as a Markdown table (within 100 columns for the usual layouts).
pub fn render(lines: &[ExactLine]) -> String {
    let columns: Vec<String> = ["A", "B", "change", "A spread", "B spread", "verdict"]
        .map(String::from)
        .to_vec();
    let rows: Vec<(String, Vec<String>)> = lines
        .iter()
        .map(|l| {
            let c = &l.cmp;
            (
                row_label(&l.variant),
                vec![
                    report::exact::count(c.base.value),
                    report::exact::count(c.new.value),
                    signed_pct2(c.change),
                    pct2(c.base.spread),
                    pct2(c.new.spread),
                    verdict_text(c),
                ],
            )
        })
        .collect();
    // The row label is a layout, or a kernel and layout when rows match kernel by kernel.
    let corner = if lines.iter().any(|l| row_label(&l.variant).contains(' ')) {
        "kernel, layout"
    } else {
        "layout"
    };
    format!(
        "instructions per fork (the median of each side's run medians):\n\n{}",
        report::exact::grid_aligned(corner, &columns, &rows, &[5])
    )
}

/// B against A, exact rows only: refuse sides that ran differently (unless `allow_mixed`), then
/// per row each side's agreement, the change and the verdict. A regression: any row `slower`.
pub fn compare_exact(
    a: &[ResultFile],
    b: &[ResultFile],
    names: (&str, &str),
    matching: Matching,
    policy: &ExactPolicy,
) -> anyhow::Result<Report> {
    let (a_name, b_name) = names;
    let (lines, unmatched) = compare_lines(a, b, matching, policy);
    if lines.is_empty() {
        bail!("A ({a_name}) and B ({b_name}) have no exact variant in common; nothing to compare");
    }
    let mut t = format!("{}\n\n", report::exact::EXACT_NOTE);
    let floor = format!("{:.0}", policy.floor);
    let rule = format!(
        "B ({b_name}) against A ({a_name}), exact rows: each side's runs agree when their spread \
         is at most {} or {} instructions; a change beyond ±{} and {} instructions is \
         faster/slower, else same (--exact-tolerance, --exact-threshold, --exact-floor). No \
         p-values: the counts carry no sampling noise.",
        pct2(policy.tolerance),
        floor,
        pct2(policy.threshold),
        floor
    );
    t.push_str(&report::exact::fill(&rule, report::exact::WIDTH, ""));
    t.push('\n');
    t.push_str(&render(&lines));
    if !unmatched.is_empty() {
        t.push_str(&format!(
            "\n{} exact variant(s) on one side only were not compared: {}\n",
            unmatched.len(),
            unmatched.join(", ")
        ));
    }
    let count = |v: Verdict| lines.iter().filter(|l| l.cmp.verdict == v).count();
    let slower: Vec<&ExactLine> = lines
        .iter()
        .filter(|l| l.cmp.verdict == Verdict::Slower)
        .collect();
    t.push_str(&format!(
        "\n{} faster, {} slower, {} same, {} unknown (runs disagree)\n",
        count(Verdict::Faster),
        slower.len(),
        count(Verdict::Same),
        count(Verdict::Unknown)
    ));
    if slower.is_empty() {
        t.push_str(&format!(
            "no exact regression beyond {}\n",
            pct2(policy.threshold)
        ));
    } else {
        let line = format!(
            "REGRESSION beyond {}: {}",
            pct2(policy.threshold),
            slower
                .iter()
                .map(|l| format!("{} {}", row_label(&l.variant), signed_pct2(l.cmp.change)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        t.push_str(&report::exact::fill(&line, report::exact::WIDTH, "  "));
    }
    Ok(Report {
        text: t,
        regression: !slower.is_empty(),
    })
}

/// How each kind of row is judged: exact rows by their policy; timed rows of two files by the
/// machine's between-session noise (`cross`, None within one file).
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    pub exact: &'a ExactPolicy,
    pub cross: Option<&'a crate::cross_file::Cross>,
}

/// `compare`'s dispatch on the unit: refuse sides in different units ([`unit_refusal`]), then
/// timed rows through [`crate::compare::check_and_compare`] and exact rows through
/// [`compare_exact`], one section after the other.
pub fn compare_by_unit(
    a: &[ResultFile],
    b: &[ResultFile],
    names: (&str, &str),
    kernel_cmp: bool,
    threshold: f64,
    allow_mixed: bool,
    rules: Rules<'_>,
) -> anyhow::Result<Report> {
    let Rules {
        exact: policy,
        cross,
    } = rules;
    if let Some(why) = unit_refusal(a, b, names) {
        bail!("{why}");
    }
    let mut parts: Vec<Report> = Vec::new();
    for unit in units(a) {
        let (ua, ub) = (only_unit(a, unit), only_unit(b, unit));
        // Kernels compared in exact guests: timed runs of the model alone are no kernel rows.
        let real = |f: &[ResultFile]| {
            f.iter()
                .flat_map(|f| &f.runs)
                .any(|r| matches!(r.variant, Variant::Real(_)))
        };
        if unit == SampleUnit::Nanoseconds && kernel_cmp && !real(&ua) && !real(&ub) {
            continue;
        }
        parts.push(match unit {
            SampleUnit::Nanoseconds => crate::compare::check_and_compare(
                &ua,
                &ub,
                names,
                kernel_cmp,
                threshold,
                allow_mixed,
                cross,
            )?,
            SampleUnit::Instructions => exact_checked(&ua, &ub, names, allow_mixed, policy)?,
        });
    }
    Ok(Report {
        regression: parts.iter().any(|p| p.regression),
        text: parts
            .into_iter()
            .map(|p| p.text)
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// [`compare_exact`] after the checks every comparison makes: A and B hold the same kernels
/// or one each, and ran alike (unless `allow_mixed`, which then heads the output).
fn exact_checked(
    a: &[ResultFile],
    b: &[ResultFile],
    names: (&str, &str),
    allow_mixed: bool,
    policy: &ExactPolicy,
) -> anyhow::Result<Report> {
    use crate::conditions;
    if let Some(why) = crate::compare::kernel_mismatch(a, b) {
        bail!("{why}");
    }
    let all = |_: &results::RunRecord| true;
    let mixed = conditions::mismatches(&conditions::of(a, all), &conditions::of(b, all));
    let (an, bn) = (format!("A ({})", names.0), format!("B ({})", names.1));
    if !mixed.is_empty() && !allow_mixed {
        bail!("{}", conditions::refusal(&an, &bn, &mixed, "compare"));
    }
    let matching = crate::compare::matching_for(a, b, &mixed);
    let mut r = compare_exact(a, b, names, matching, policy)?;
    if !mixed.is_empty() {
        r.text = format!("{}\n\n{}", conditions::banner(&an, &bn, &mixed), r.text);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use report::fixtures::{DEBIAN_61, DEBIAN_612, EVERY_LAYOUT, ExactKernel, exact_file};
    use results::Clock;

    fn kernels() -> Vec<ExactKernel> {
        vec![
            ExactKernel::steady(DEBIAN_61, 188_500.0, 132.5, 5000.0, 5),
            ExactKernel::steady(DEBIAN_612, 461_500.0, 193.3, 6088.0, 5),
        ]
    }

    /// B's runs of `kernel` against A's, as `compare FILE --kernels A B` makes them.
    fn kernel_sides(f: &ResultFile, a: &str, b: &str) -> (Vec<ResultFile>, Vec<ResultFile>) {
        let all = std::slice::from_ref(f);
        (
            crate::compare::runs_of_kernel(all, a, "f").unwrap(),
            crate::compare::runs_of_kernel(all, b, "f").unwrap(),
        )
    }

    fn compare_text(f: &ResultFile, a: &str, b: &str) -> Report {
        let (sa, sb) = kernel_sides(f, a, b);
        let exact = ExactPolicy::default();
        let rules = Rules {
            exact: &exact,
            cross: None,
        };
        compare_by_unit(&sa, &sb, (a, b), true, 1.0, false, rules).unwrap()
    }

    fn assert_fits(what: &str, text: &str) {
        for l in text.lines() {
            assert!(
                l.chars().count() <= 100,
                "{what}: {} columns: {l}\n{text}",
                l.chars().count()
            );
        }
    }

    /// The widest realistic output: Debian's long releases as rows, every layout a guest can
    /// run, timed and exact; what `bench`, `table` (every text format by default) and `compare`
    /// print stays within 100 columns.
    #[test]
    fn every_table_fits_100_columns() {
        for clock in [Clock::Icount, Clock::Wall] {
            let f = exact_file(&kernels(), &EVERY_LAYOUT, clock);
            let files = std::slice::from_ref(&f);
            let policy = stats::Policy::default();
            let cases = crate::select::cases(files, None, &policy).unwrap();
            let bench = crate::bench::bench_tables(&cases, "ci", files, &policy, false);
            assert_fits(&format!("bench {clock}"), &bench);
            for fmt in [
                crate::table::Format::Auto,
                crate::table::Format::Thread,
                crate::table::Format::Combined,
            ] {
                let t = crate::table::render(&cases, "ci", fmt);
                assert_fits(&format!("table {fmt:?} {clock}"), &t);
            }
            if clock == Clock::Icount {
                let c = compare_text(&f, DEBIAN_61, DEBIAN_612);
                assert_fits("compare exact", &c.text);
                assert!(bench.contains("instructions per PTE copied"), "{bench}");
                assert!(bench.contains(" instr |"), "{bench}");
                assert!(!bench.contains("emulated: these times"), "{bench}");
            } else {
                assert!(bench.starts_with(report::EMULATED_NOTE), "{bench}");
                assert!(!bench.contains(" instr"), "{bench}");
            }
        }
    }

    #[test]
    fn timed_and_exact_sides_are_refused_in_one_line() {
        let exact = exact_file(&kernels(), &["order0"], Clock::Icount);
        let timed = exact_file(&kernels(), &["order0"], Clock::Wall);
        let e = compare_by_unit(
            std::slice::from_ref(&timed),
            std::slice::from_ref(&exact),
            ("A", "B"),
            false,
            1.0,
            false,
            Rules {
                exact: &ExactPolicy::default(),
                cross: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "A (A) holds timed runs (ns) and B (B) exact runs (guest instructions, QEMU icount): \
             instructions and nanoseconds do not compare"
        );
    }

    #[test]
    fn the_same_kernel_twice_is_same_and_one_percent_more_is_a_regression() {
        let mut ks = kernels();
        ks[0].label = "a".into();
        ks[1] = ks[0].clone();
        ks[1].label = "b".into();
        let f = exact_file(&ks, &EVERY_LAYOUT, Clock::Icount);
        let r = compare_text(&f, "a", "b");
        assert!(!r.regression, "{}", r.text);
        assert!(
            r.text.contains(&format!(
                "0 faster, 0 slower, {} same, 0 unknown",
                EVERY_LAYOUT.len()
            )),
            "{}",
            r.text
        );
        assert!(
            !r.text.contains(" p ") && !r.text.contains("CI"),
            "{}",
            r.text
        );
        ks[1].run_factors = vec![1.01; 5];
        let f = exact_file(&ks, &["order0", "untouched"], Clock::Icount);
        let r = compare_text(&f, "a", "b");
        assert!(r.regression, "{}", r.text);
        assert!(
            r.text.contains("REGRESSION beyond 0.50%: order0 +1.00%"),
            "{}",
            r.text
        );
        // Runs that disagree decide nothing, and do not fail the compare.
        ks[1].run_factors = vec![1.0, 1.0, 1.03, 1.0, 1.0];
        let f = exact_file(&ks, &["order0"], Clock::Icount);
        let r = compare_text(&f, "a", "b");
        assert!(!r.regression, "{}", r.text);
        assert!(r.text.contains("unknown (B's runs disagree)"), "{}", r.text);
    }

    #[test]
    fn options_are_percentages() {
        let bad = ExactArgs {
            exact_tolerance: -1.0,
            ..ExactArgs::default()
        };
        assert_eq!(
            bad.policy().unwrap_err().to_string(),
            "--exact-tolerance must be a percentage in [0, 100), not -1"
        );
        assert_eq!(
            ExactArgs::default().policy().unwrap(),
            ExactPolicy::default()
        );
        let bad = ExactArgs {
            exact_floor: -5.0,
            ..ExactArgs::default()
        };
        assert_eq!(
            bad.policy().unwrap_err().to_string(),
            "--exact-floor must be a number of instructions, 0 or more, not -5"
        );
    }
}
