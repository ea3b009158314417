//! Decisions on *exact* measurements: guest instruction counts under QEMU icount, where the
//! same fork of the same kernel costs the same instructions every time, up to what lands in
//! one fork's window (a timer tick, a deferred work item). There is no sampling noise to
//! model, so no t-test, p-value or confidence interval: a t-test on (near) zero variance
//! declares a 0.01% difference "certain", which says nothing about the kernel.
//!
//! Instead:
//! - a run's value is the **median** of its forks' samples (an interrupt in one fork's window
//!   moves that fork only; the median ignores it), see [`run_value`];
//! - a row's runs **agree** when `(max - min) / median` of the run values is at most the
//!   tolerance ([`DEFAULT_TOLERANCE`], 0.1%); a row whose runs do not agree names the runs
//!   that differ and gets no verdict ([`agreement`]);
//! - between two rows, `change = value / baseline value - 1` with each value the median of its
//!   run values; `|change| > threshold` ([`DEFAULT_THRESHOLD`], 0.5%) is faster/slower,
//!   anything smaller is `same` ([`compare`]).
//!
//! Pure functions over plain numbers, shared by the tables, `compare` and the kernel bisect.

use crate::{Verdict, median};

/// Default agreement tolerance between the runs of one row (relative spread, 0.1%).
pub const DEFAULT_TOLERANCE: f64 = 0.001;

/// Default change beyond which one exact row is faster or slower than another (0.5%).
pub const DEFAULT_THRESHOLD: f64 = 0.005;

/// How exact rows are judged: the runs' agreement tolerance and the change threshold, both
/// relative (fractions, not percent).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactPolicy {
    pub tolerance: f64,
    pub threshold: f64,
}

impl Default for ExactPolicy {
    fn default() -> Self {
        ExactPolicy {
            tolerance: DEFAULT_TOLERANCE,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// The value of one exact run: the median of its forks' samples (None without samples).
pub fn run_value(samples: &[u64]) -> Option<f64> {
    let v: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    median(&v)
}

/// One run that lies away from its row's median by more than half the tolerance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffRun {
    /// Index of the run in the row's run order.
    pub index: usize,
    pub value: f64,
}

/// The runs of one exact row, taken together.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Runs.
    pub n: usize,
    /// The row's value: the median of its run values.
    pub value: f64,
    /// `(max - min) / value` of the run values (0 for one run).
    pub spread: f64,
    /// `spread <= tolerance`.
    pub agree: bool,
    /// When the runs disagree: every run further than `tolerance / 2` from the row's value
    /// (never empty then: if max - min exceeds the tolerance, max or min is that far).
    pub off: Vec<OffRun>,
}

/// Do the run values of one row agree within `tolerance`? None without runs, with a value that
/// is not finite, or with a median that is not positive (no relative spread exists).
pub fn agreement(run_values: &[f64], tolerance: f64) -> Option<Agreement> {
    if run_values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let value = median(run_values)?;
    if value <= 0.0 {
        return None;
    }
    let max = run_values.iter().copied().fold(f64::MIN, f64::max);
    let min = run_values.iter().copied().fold(f64::MAX, f64::min);
    let spread = (max - min) / value;
    let agree = spread <= tolerance;
    let off = if agree {
        Vec::new()
    } else {
        run_values
            .iter()
            .enumerate()
            .filter(|(_, v)| (*v / value - 1.0).abs() > tolerance / 2.0)
            .map(|(index, &value)| OffRun { index, value })
            .collect()
    };
    Some(Agreement {
        n: run_values.len(),
        value,
        spread,
        agree,
        off,
    })
}

/// Why an exact comparison has no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecided {
    /// The baseline's runs do not agree.
    Baseline,
    /// The compared row's runs do not agree.
    Row,
    /// Neither side's runs agree.
    Both,
}

/// One exact row against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactComparison {
    pub base: Agreement,
    pub new: Agreement,
    /// `new.value / base.value - 1` (negative = fewer instructions).
    pub change: f64,
    /// `Faster`/`Slower` beyond the threshold, `Same` within it, `Unknown` when a side's runs
    /// do not agree (see `undecided`).
    pub verdict: Verdict,
    pub undecided: Option<Undecided>,
}

/// Compare the run values of `new` against those of `base`. None when either side has no
/// usable runs ([`agreement`]).
pub fn compare(base: &[f64], new: &[f64], policy: &ExactPolicy) -> Option<ExactComparison> {
    let base = agreement(base, policy.tolerance)?;
    let new = agreement(new, policy.tolerance)?;
    Some(compare_agreements(base, new, policy))
}

/// [`compare`] of two rows already summarised (their tolerance is the one they were made with).
pub fn compare_agreements(
    base: Agreement,
    new: Agreement,
    policy: &ExactPolicy,
) -> ExactComparison {
    let change = new.value / base.value - 1.0;
    let undecided = match (base.agree, new.agree) {
        (true, true) => None,
        (false, true) => Some(Undecided::Baseline),
        (true, false) => Some(Undecided::Row),
        (false, false) => Some(Undecided::Both),
    };
    let verdict = match undecided {
        Some(_) => Verdict::Unknown,
        None if change > policy.threshold => Verdict::Slower,
        None if change < -policy.threshold => Verdict::Faster,
        None => Verdict::Same,
    };
    ExactComparison {
        base,
        new,
        change,
        verdict,
        undecided,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_run_is_the_median_of_its_forks() {
        // One fork caught a timer tick: the run's value is untouched by it.
        assert_eq!(run_value(&[1000, 1001, 5000, 1000, 999]), Some(1000.0));
        assert_eq!(run_value(&[4, 2]), Some(3.0));
        assert_eq!(run_value(&[]), None);
    }

    #[test]
    fn runs_agree_within_the_tolerance_and_name_the_ones_that_do_not() {
        let a = agreement(&[1000.0, 1000.5, 999.8], DEFAULT_TOLERANCE).unwrap();
        assert!(a.agree && a.off.is_empty(), "{a:?}");
        assert_eq!(a.value, 1000.0);
        assert!((a.spread - 0.0007).abs() < 1e-12);
        // Run 2 is 2% off: flagged by index and value.
        let d = agreement(&[1000.0, 1000.2, 1020.0, 999.9], DEFAULT_TOLERANCE).unwrap();
        assert!(!d.agree);
        assert_eq!(
            d.off,
            [OffRun {
                index: 2,
                value: 1020.0
            }]
        );
        // One run always agrees with itself.
        assert!(agreement(&[5.0], DEFAULT_TOLERANCE).unwrap().agree);
        assert_eq!(agreement(&[], DEFAULT_TOLERANCE), None);
        assert_eq!(agreement(&[0.0, 0.0], DEFAULT_TOLERANCE), None);
        assert_eq!(agreement(&[1.0, f64::NAN], DEFAULT_TOLERANCE), None);
    }

    #[test]
    fn changes_beyond_the_threshold_decide_and_disagreement_does_not() {
        let p = ExactPolicy::default();
        let base = [1000.0, 1000.0, 1000.3];
        let v = |new: &[f64]| compare(&base, new, &p).unwrap();
        assert_eq!(v(&[1010.0, 1010.0, 1010.2]).verdict, Verdict::Slower);
        assert_eq!(v(&[990.0, 990.0, 990.1]).verdict, Verdict::Faster);
        // 0.4% is inside the 0.5% threshold: the same, however many runs agree on it.
        assert_eq!(v(&[1004.0, 1004.0, 1004.0]).verdict, Verdict::Same);
        let c = v(&[1010.0, 1030.0, 1010.0]);
        assert_eq!(
            (c.verdict, c.undecided),
            (Verdict::Unknown, Some(Undecided::Row))
        );
        let c = compare(&[1000.0, 1100.0, 1000.0], &base, &p).unwrap();
        assert_eq!(c.undecided, Some(Undecided::Baseline));
        let c = compare(&[1000.0, 1100.0], &[1.0, 2.0], &p).unwrap();
        assert_eq!(c.undecided, Some(Undecided::Both));
    }

    /// Run values near `v`: each within ±`rel` of it.
    fn runs_near(v: f64, rel: f64) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(-1.0..1.0f64, 1..9)
            .prop_map(move |d| d.iter().map(|x| v * (1.0 + x * rel)).collect())
    }

    proptest! {
        /// Units do not matter: scaling every value by one factor changes no agreement,
        /// change or verdict.
        #[test]
        fn invariant_under_scaling(
            base in runs_near(3.0e6, 0.002),
            new in runs_near(3.1e6, 0.002),
            k in 1e-3..1e3f64,
        ) {
            let p = ExactPolicy::default();
            let c = compare(&base, &new, &p).unwrap();
            let scale = |v: &[f64]| v.iter().map(|x| x * k).collect::<Vec<_>>();
            let s = compare(&scale(&base), &scale(&new), &p).unwrap();
            prop_assert_eq!(c.verdict, s.verdict);
            prop_assert_eq!(c.undecided, s.undecided);
            prop_assert!((c.change - s.change).abs() < 1e-9);
            prop_assert_eq!(c.base.off.len(), s.base.off.len());
        }

        /// A/A: the same agreeing runs on both sides, in any order, are `same`.
        #[test]
        fn the_same_runs_twice_are_the_same(
            runs in runs_near(8.87e6, 0.0004),
            rot in 0usize..8,
        ) {
            let mut other = runs.clone();
            let r = rot % other.len();
            other.rotate_left(r);
            let c = compare(&runs, &other, &ExactPolicy::default()).unwrap();
            prop_assert!(c.base.agree && c.new.agree);
            prop_assert_eq!(c.verdict, Verdict::Same);
            prop_assert!(c.change.abs() < 1e-12);
        }

        /// Two agreeing samples of one kernel (each within the tolerance) never differ.
        #[test]
        fn agreeing_rows_of_one_value_are_never_different(
            a in runs_near(1.0e6, 0.0004),
            b in runs_near(1.0e6, 0.0004),
        ) {
            let c = compare(&a, &b, &ExactPolicy::default()).unwrap();
            prop_assert_eq!(c.verdict, Verdict::Same);
        }

        /// A 1% shift of agreeing runs is slower; -1% is faster.
        #[test]
        fn a_one_percent_shift_decides(runs in runs_near(2.0e6, 0.0004)) {
            let p = ExactPolicy::default();
            let up: Vec<f64> = runs.iter().map(|x| x * 1.01).collect();
            let down: Vec<f64> = runs.iter().map(|x| x * 0.99).collect();
            prop_assert_eq!(compare(&runs, &up, &p).unwrap().verdict, Verdict::Slower);
            prop_assert_eq!(compare(&runs, &down, &p).unwrap().verdict, Verdict::Faster);
        }

        /// A row whose runs spread beyond the tolerance gets no verdict, and names at least
        /// one run.
        #[test]
        fn disagreeing_runs_get_no_verdict(
            mut runs in runs_near(1.0e6, 0.0004),
            jump in 0.002..0.5f64,
        ) {
            runs.push(1.0e6 * (1.0 + jump));
            let c = compare(&runs, &runs, &ExactPolicy::default()).unwrap();
            prop_assert_eq!(c.verdict, Verdict::Unknown);
            prop_assert!(!c.base.off.is_empty());
        }
    }
}
