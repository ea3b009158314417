//! Decisions on *exact* measurements: guest instruction counts under QEMU icount, where the
//! same fork of the same kernel costs the same instructions every time, up to what lands in
//! one fork's window (a timer tick, a deferred work item). There is no sampling noise to
//! model, so no t-test, p-value or confidence interval: a t-test on (near) zero variance
//! declares a 0.01% difference "certain", which says nothing about the kernel.
//!
//! Instead:
//! - a run's value is the **median** of its forks' samples (an interrupt in one fork's window
//!   moves that fork only; the median ignores it), see [`run_value`];
//! - a row's runs **agree** when `max - min` of the run values is at most the tolerance
//!   ([`DEFAULT_TOLERANCE`], 0.1% of the median) or the floor ([`DEFAULT_FLOOR`], 2000
//!   instructions), whichever is larger; a row whose runs do not agree names the runs that
//!   differ and gets no verdict ([`agreement`]);
//! - between two rows, `change = value / baseline value - 1` with each value the median of its
//!   run values; a change beyond the threshold ([`DEFAULT_THRESHOLD`], 0.5%) *and* the floor is
//!   faster/slower, anything smaller is `same` ([`compare`]).
//!
//! **Why a floor.** A fork's fixed cost is not quite a constant of the kernel: measured here,
//! the `untouched` and `pmd-order9` rows (128-800 k instructions) of one kernel move by up to
//! ~1.7 k instructions between runner processes (0.1-2%), while every fork of one process
//! agrees to tens. Not the timer tick (forks start just after one), not the parent's RSS
//! (equal in runs that differ); the kernel's allocator state that a process inherits is the
//! likely cause, unproven. Below
//! the floor a difference is not judged: a relative tolerance alone would flag small rows of
//! a kernel that did not change.
//!
//! Pure functions over plain numbers, shared by the tables, `compare` and the kernel bisect.

use crate::{Verdict, median};

/// Default agreement tolerance between the runs of one row (relative spread, 0.1%).
pub const DEFAULT_TOLERANCE: f64 = 0.001;

/// Default change beyond which one exact row is faster or slower than another (0.5%).
pub const DEFAULT_THRESHOLD: f64 = 0.005;

/// Default floor of both (instructions): see the module docs' "Why a floor".
pub const DEFAULT_FLOOR: f64 = 2000.0;

/// How exact rows are judged: the runs' agreement tolerance and the change threshold, both
/// relative (fractions, not percent), and the absolute floor under both (instructions).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactPolicy {
    pub tolerance: f64,
    pub threshold: f64,
    pub floor: f64,
}

impl Default for ExactPolicy {
    fn default() -> Self {
        ExactPolicy {
            tolerance: DEFAULT_TOLERANCE,
            threshold: DEFAULT_THRESHOLD,
            floor: DEFAULT_FLOOR,
        }
    }
}

impl ExactPolicy {
    /// The largest spread (instructions) the runs of a row of `value` may have.
    pub fn allowed_spread(&self, value: f64) -> f64 {
        (self.tolerance * value).max(self.floor)
    }

    /// The smallest change (instructions) against a baseline of `value` that is a verdict.
    pub fn smallest_change(&self, value: f64) -> f64 {
        (self.threshold * value).max(self.floor)
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
    /// `max - min` within the policy's allowed spread ([`ExactPolicy::allowed_spread`]).
    pub agree: bool,
    /// When the runs disagree: every run further than half the allowed spread from the row's
    /// value (never empty then: if max - min exceeds it, max or min is that far).
    pub off: Vec<OffRun>,
}

/// Do the run values of one row agree under `policy`? None without runs, with a value that
/// is not finite, or with a median that is not positive (no relative spread exists).
pub fn agreement(run_values: &[f64], policy: &ExactPolicy) -> Option<Agreement> {
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
    let allowed = policy.allowed_spread(value);
    let agree = max - min <= allowed;
    let off = if agree {
        Vec::new()
    } else {
        run_values
            .iter()
            .enumerate()
            .filter(|(_, v)| (*v - value).abs() > allowed / 2.0)
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
    let base = agreement(base, policy)?;
    let new = agreement(new, policy)?;
    Some(compare_agreements(base, new, policy))
}

/// [`compare`] of two rows already summarised (their agreement is the one they were made with).
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
    let delta = new.value - base.value;
    let beyond = delta.abs() > policy.smallest_change(base.value);
    let verdict = match undecided {
        Some(_) => Verdict::Unknown,
        None if beyond && delta > 0.0 => Verdict::Slower,
        None if beyond => Verdict::Faster,
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

    /// The relative rules alone (no floor).
    const REL: ExactPolicy = ExactPolicy {
        tolerance: DEFAULT_TOLERANCE,
        threshold: DEFAULT_THRESHOLD,
        floor: 0.0,
    };

    #[test]
    fn runs_agree_within_the_tolerance_and_name_the_ones_that_do_not() {
        let a = agreement(&[1000.0, 1000.5, 999.8], &REL).unwrap();
        assert!(a.agree && a.off.is_empty(), "{a:?}");
        assert_eq!(a.value, 1000.0);
        assert!((a.spread - 0.0007).abs() < 1e-12);
        // Run 2 is 2% off: flagged by index and value.
        let d = agreement(&[1000.0, 1000.2, 1020.0, 999.9], &REL).unwrap();
        assert!(!d.agree);
        assert_eq!(
            d.off,
            [OffRun {
                index: 2,
                value: 1020.0
            }]
        );
        // One run always agrees with itself.
        assert!(agreement(&[5.0], &REL).unwrap().agree);
        assert_eq!(agreement(&[], &REL), None);
        assert_eq!(agreement(&[0.0, 0.0], &REL), None);
        assert_eq!(agreement(&[1.0, f64::NAN], &REL), None);
    }

    #[test]
    fn the_floor_lets_small_rows_agree_and_large_rows_keep_the_tolerance() {
        let p = ExactPolicy::default();
        // x86_64 6.12 `untouched`, 256 MiB, runs measured in separate processes: 0.26% apart
        // (330 instructions), inside the 2000-instruction floor.
        let untouched = [
            127_501.0, 127_348.5, 127_415.0, 127_495.0, 127_339.0, 127_672.0,
        ];
        assert!(agreement(&untouched, &p).unwrap().agree);
        assert!(!agreement(&untouched, &REL).unwrap().agree);
        // A large row: 0.1% of 10 M is 10 k instructions; the floor does not widen it.
        let order0 = [10_321_064.0, 10_321_128.0, 10_477_584.0];
        let a = agreement(&order0, &p).unwrap();
        assert!(!a.agree);
        assert_eq!(a.off.len(), 1);
        assert_eq!(p.allowed_spread(10e6), 10_000.0);
        assert_eq!(p.allowed_spread(127e3), 2000.0);
        // Changes: 1% of 127 k (1270) is under the floor, 3 k is over it.
        let base = [127_000.0; 3];
        let up = |d: f64| compare(&base, &[127_000.0 + d; 3], &p).unwrap().verdict;
        assert_eq!(up(1270.0), Verdict::Same);
        assert_eq!(up(3000.0), Verdict::Slower);
        assert_eq!(up(-3000.0), Verdict::Faster);
    }

    #[test]
    fn changes_beyond_the_threshold_decide_and_disagreement_does_not() {
        let p = REL;
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
        /// Without a floor units do not matter: scaling every value by one factor changes no
        /// agreement, change or verdict.
        #[test]
        fn invariant_under_scaling(
            base in runs_near(3.0e6, 0.002),
            new in runs_near(3.1e6, 0.002),
            k in 1e-3..1e3f64,
        ) {
            let p = REL;
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
            jump in 0.003..0.5f64,
        ) {
            runs.push(1.0e6 * (1.0 + jump));
            let c = compare(&runs, &runs, &ExactPolicy::default()).unwrap();
            prop_assert_eq!(c.verdict, Verdict::Unknown);
            prop_assert!(!c.base.off.is_empty());
        }
    }
}
