//! Deciding whether a candidate revision behaves like the good or the bad endpoint.
//!
//! A noisy candidate is called **bad** only when (1) both a two-sided Mann-Whitney U test and
//! Welch's t-test say it differs from the good samples at `alpha`, and (2) its mean lies on the
//! bad side of the midpoint between the endpoints' means with 95% confidence (counting the
//! uncertainty of all three means); **good** symmetrically; anything else is **unknown**
//! (measure more, or skip). Two tests that must agree keep one outlier run from deciding a
//! commit; the midpoint rule tolerates drift after the step (a revision slightly beyond the
//! bad endpoint is still bad). A deterministic metric
//! is compared exactly: equal to good is good, anything else is bad.
//!
//! An **exact** measurement (instructions per fork counted by an icount guest: the same kernel
//! gives the same count, whatever the host's load) is decided by [`decide_exact`]: within the
//! exact threshold of one endpoint and not of the other, it is like that one; beyond the
//! threshold of both it is a *partial* change, decided by the midpoint and marked as such.
//!
//! Timings on a shared host have one-sided noise: a neighbour on the physical core slows a whole
//! stretch of seconds by a fixed factor (about 1.45x for a guest's fork loop on the CI VMs),
//! never speeds it up. With [`Policy::set_aside_slow`] a minority of runs far above their
//! revision's median are set aside before any test ([`split_slow`]); the logs keep them.

use contract::SampleUnit;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};
use stats::{Summary, welch};

/// The verdict on one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Behaves like the good endpoint.
    Good,
    /// Behaves like the bad endpoint.
    Bad,
    /// Not enough evidence either way.
    Unknown,
}

/// How sure a decision must be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Significance level of each test.
    pub alpha: f64,
    /// Set aside runs that interference made slow ([`split_slow`]) before deciding.
    pub set_aside_slow: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            alpha: 0.05,
            set_aside_slow: false,
        }
    }
}

impl Policy {
    /// The runs of `xs` this policy decides on: all of them, or those [`split_slow`] keeps.
    pub fn kept(&self, xs: &[f64]) -> Vec<f64> {
        if self.set_aside_slow {
            split_slow(xs).0
        } else {
            xs.to_vec()
        }
    }

    /// The runs of `xs` this policy sets aside as slowed by interference.
    pub fn set_aside(&self, xs: &[f64]) -> Vec<f64> {
        if self.set_aside_slow {
            split_slow(xs).1
        } else {
            Vec::new()
        }
    }
}

/// Fewest runs of one revision from which slow ones are set aside: below it the median and
/// its spread say too little.
pub const MIN_RUNS_TO_SET_ASIDE: usize = 5;

/// Splits `xs` into (kept, set aside): a run is set aside when it lies more than 3.5 robust
/// standard deviations above the median (1.4826 x the median absolute deviation, but at least
/// 1% of the median, so a tight cluster does not shed ordinary spread), and only when such runs
/// are at most a third of `xs` and `xs` has [`MIN_RUNS_TO_SET_ASIDE`] runs. Only the slow side
/// is screened: interference adds time; a fast run is news. Order is kept within each part.
pub fn split_slow(xs: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let keep_all = || (xs.to_vec(), Vec::new());
    if xs.len() < MIN_RUNS_TO_SET_ASIDE || xs.iter().any(|x| !x.is_finite()) {
        return keep_all();
    }
    let Some(med) = stats::median(xs) else {
        return keep_all();
    };
    let deviations: Vec<f64> = xs.iter().map(|x| (x - med).abs()).collect();
    let Some(mad) = stats::median(&deviations) else {
        return keep_all();
    };
    let scale = (1.4826 * mad).max(0.01 * med.abs());
    let limit = med + 3.5 * scale;
    let slow = xs.iter().filter(|&&x| x > limit).count();
    if slow == 0 || 3 * slow > xs.len() {
        return keep_all();
    }
    xs.iter().partition(|&&x| x <= limit)
}

/// The change between two exact counts that is a difference, in percent (`--exact-threshold`).
pub const DEFAULT_EXACT_THRESHOLD_PCT: f64 = 0.5;

/// The relative change from `from` to `to` in percent; from a zero it is 0 when `to` is zero
/// too, else infinite (any change is past any threshold), never NaN.
pub fn change_pct(from: f64, to: f64) -> f64 {
    if from == 0.0 {
        if to == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(to)
        }
    } else {
        (to / from - 1.0) * 100.0
    }
}

/// Whether exact counts `reference` and `value` are the same: `value` within `threshold_pct`
/// of `reference`. The one agreement rule of exact mode (to be the workspace's shared one).
pub fn exact_same(reference: f64, value: f64, threshold_pct: f64) -> bool {
    change_pct(reference, value).abs() <= threshold_pct
}

/// The statistic of one exact run: the median of its forks' counts (ties and the odd
/// interrupt that lands inside a fork move it least).
pub fn exact_statistic(counts: &[f64]) -> Option<f64> {
    stats::median(counts)
}

/// Where an exact count lies relative to the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExactPlace {
    /// Within the threshold of good only.
    LikeGood,
    /// Within the threshold of bad only.
    LikeBad,
    /// Beyond the threshold of both, between them: part of the change is in.
    Partial,
    /// Beyond the threshold of both, past good (away from bad).
    BeyondGood,
    /// Beyond the threshold of both, past bad (the change and more).
    BeyondBad,
}

impl ExactPlace {
    /// Whether the count is like neither endpoint (the decision came from the midpoint).
    pub fn by_midpoint(self) -> bool {
        !matches!(self, ExactPlace::LikeGood | ExactPlace::LikeBad)
    }
}

/// The facts behind an exact decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExactEvidence {
    /// Change from good's count to this one, percent.
    pub vs_good_pct: f64,
    /// Change from bad's count to this one, percent.
    pub vs_bad_pct: f64,
    /// (value - good) / (bad - good): 0 = good's count, 1 = bad's.
    pub position: f64,
    pub place: ExactPlace,
}

/// Decide an exact count `value` against the endpoints' counts, which differ beyond
/// `threshold_pct` (the search refuses endpoints that do not). Like one endpoint and not the
/// other: that one. Like neither: the side of the midpoint between them decides (a partial
/// change at the midpoint itself counts as bad), and [`ExactPlace`] says it was so.
pub fn decide_exact(
    good: f64,
    bad: f64,
    value: f64,
    threshold_pct: f64,
) -> (Decision, ExactEvidence) {
    let position = (value - good) / (bad - good);
    let (like_good, like_bad) = (
        exact_same(good, value, threshold_pct),
        exact_same(bad, value, threshold_pct),
    );
    let place = match (like_good, like_bad) {
        (true, false) => ExactPlace::LikeGood,
        (false, true) => ExactPlace::LikeBad,
        // Like both cannot happen with endpoints apart; the midpoint settles it if it does.
        _ if position < 0.0 => ExactPlace::BeyondGood,
        _ if position > 1.0 => ExactPlace::BeyondBad,
        _ => ExactPlace::Partial,
    };
    let decision = match place {
        ExactPlace::LikeGood | ExactPlace::BeyondGood => Decision::Good,
        ExactPlace::LikeBad | ExactPlace::BeyondBad => Decision::Bad,
        ExactPlace::Partial if position < 0.5 => Decision::Good,
        ExactPlace::Partial => Decision::Bad,
    };
    let evidence = ExactEvidence {
        vs_good_pct: change_pct(good, value),
        vs_bad_pct: change_pct(bad, value),
        position,
        place,
    };
    (decision, evidence)
}

/// A per-fork value with its unit: `3.409 M instr` or `19.80 ms`.
pub fn fmt_value(x: f64, unit: SampleUnit) -> String {
    match unit {
        SampleUnit::Nanoseconds => contract::fmt_ns(x),
        SampleUnit::Instructions => {
            let a = x.abs();
            if !x.is_finite() {
                format!("{x} instr")
            } else if a >= 1e9 {
                format!("{:.3} G instr", x / 1e9)
            } else if a >= 1e6 {
                format!("{:.3} M instr", x / 1e6)
            } else if a >= 1e4 {
                format!("{:.1} k instr", x / 1e3)
            } else {
                format!("{x:.0} instr")
            }
        }
    }
}

/// The evidence behind a decision.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Max of the rank-test and Welch p-values against the good samples.
    pub p_vs_good: f64,
    /// Max of the rank-test and Welch p-values against the bad samples.
    pub p_vs_bad: f64,
    /// (candidate mean - good mean) / (bad mean - good mean): 0 = like good, 1 = like bad.
    pub position: f64,
}

/// Whether every sample of every group is the same value within its group (a deterministic
/// metric such as an op count).
pub fn is_deterministic(groups: &[&[f64]]) -> bool {
    groups.iter().all(|g| g.windows(2).all(|w| w[0] == w[1]))
}

/// p-value that `a` and `b` differ: the larger of the two-sided Mann-Whitney U and Welch
/// p-values, so both tests must agree. 1.0 when either side is too small to test, or when a
/// test has no answer (`f64::max` would silently drop a NaN and let the other test decide).
pub fn p_differ(a: &[f64], b: &[f64]) -> f64 {
    let (Some(sa), Some(sb)) = (Summary::of(a), Summary::of(b)) else {
        return 1.0;
    };
    let Some(w) = welch(&sa, &sb) else {
        return 1.0;
    };
    let mw = mann_whitney_p(a, b);
    if w.p.is_nan() || mw.is_nan() {
        return 1.0;
    }
    w.p.max(mw)
}

/// p-value that the endpoints differ: exact (0 or 1) when both are deterministic, else
/// [`p_differ`]. 1.0 when a side has no samples.
pub fn p_endpoints(good: &[f64], bad: &[f64]) -> f64 {
    match (good.first(), bad.first()) {
        (Some(g), Some(b)) if is_deterministic(&[good, bad]) => {
            if g == b {
                1.0
            } else {
                0.0
            }
        }
        (Some(_), Some(_)) => p_differ(good, bad),
        _ => 1.0,
    }
}

/// The mean of `xs` as a running mean, so samples near `f64::MAX` do not overflow the sum to
/// infinity; NaN when empty.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.iter()
        .enumerate()
        .fold(0.0, |m, (i, &x)| m + (x - m) / (i + 1) as f64)
}

/// Two-sided Mann-Whitney U p-value. Exact (by counting rank arrangements) for small samples
/// without ties, else the normal approximation with tie correction and continuity
/// correction. (statrs 0.19.1's exact method returns p = 1 for U = 0, so it is not used.)
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (m, n) = (a.len(), b.len());
    if m == 0 || n == 0 {
        return 1.0;
    }
    // Midranks of the pooled sample.
    let mut pooled: Vec<(f64, usize)> = a
        .iter()
        .map(|&x| (x, 0))
        .chain(b.iter().map(|&x| (x, 1)))
        .collect();
    pooled.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut ranks = vec![0.0; pooled.len()];
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < pooled.len() {
        let mut j = i;
        while j + 1 < pooled.len() && pooled[j + 1].0 == pooled[i].0 {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in ranks.iter_mut().take(j + 1).skip(i) {
            *k = r;
        }
        let t = (j - i + 1) as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let r1: f64 = pooled
        .iter()
        .zip(&ranks)
        .filter(|(p, _)| p.1 == 0)
        .map(|(_, r)| r)
        .sum();
    let (mf, nf) = (m as f64, n as f64);
    let u1 = r1 - mf * (mf + 1.0) / 2.0;
    let u = u1.min(mf * nf - u1);
    if tie_term == 0.0 && m * n <= 400 {
        // counts[k] = arrangements with U = k, built up one observation at a time.
        let max_u = m * n;
        let mut table = vec![vec![vec![0f64; max_u + 1]; n + 1]; m + 1];
        // With one sample empty there is one arrangement, with U = 0.
        for (i, rows) in table.iter_mut().enumerate() {
            for (j, counts) in rows.iter_mut().enumerate() {
                if i == 0 || j == 0 {
                    counts[0] = 1.0;
                }
            }
        }
        for i in 1..=m {
            for j in 1..=n {
                for k in 0..=i * j {
                    let from_a = if k >= j { table[i - 1][j][k - j] } else { 0.0 };
                    let from_b = table[i][j - 1][k];
                    table[i][j][k] = from_a + from_b;
                }
            }
        }
        let counts = &table[m][n];
        let total: f64 = counts.iter().sum();
        let le: f64 = counts.iter().take(u as usize + 1).sum();
        return (2.0 * le / total).min(1.0);
    }
    let mean = mf * nf / 2.0;
    let nt = mf + nf;
    let var = mf * nf / 12.0 * ((nt + 1.0) - tie_term / (nt * (nt - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = ((mean - u).abs() - 0.5).max(0.0) / var.sqrt();
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    (2.0 * normal.sf(z)).min(1.0)
}

/// Which side of the endpoints' midpoint the candidate's mean lies on, with 95% confidence
/// (the uncertainty of all three means counted), or None when the interval straddles it.
/// A revision may sit a little beyond either endpoint (drift after the step): only the side
/// matters.
fn beyond_midpoint(good: &[f64], bad: &[f64], cand: &[f64]) -> Option<Decision> {
    let (g, b, c) = (Summary::of(good)?, Summary::of(bad)?, Summary::of(cand)?);
    if c.n < 2 {
        return None;
    }
    let step = b.mean - g.mean;
    if step == 0.0 {
        return None;
    }
    let d = (c.mean - (g.mean + b.mean) / 2.0) * step.signum();
    let q = |s: &Summary| s.std * s.std / s.n as f64;
    let se = (q(&c) + (q(&g) + q(&b)) / 4.0).sqrt();
    let t = stats::t_quantile(0.975, (c.n - 1) as f64)?;
    if d - t * se > 0.0 {
        Some(Decision::Bad)
    } else if d + t * se < 0.0 {
        Some(Decision::Good)
    } else {
        None
    }
}

/// Classify `cand` against the endpoints' samples. Without samples on any side there is
/// nothing to compare: unknown. `position` is NaN only when the endpoints' means are equal,
/// which both entry points refuse before deciding anything.
pub fn decide(good: &[f64], bad: &[f64], cand: &[f64], policy: &Policy) -> (Decision, Evidence) {
    let (good, bad, cand) = (policy.kept(good), policy.kept(bad), policy.kept(cand));
    let (good, bad, cand) = (good.as_slice(), bad.as_slice(), cand.as_slice());
    let (mg, mb, mc) = (mean(good), mean(bad), mean(cand));
    let position = if mb != mg && mc.is_finite() {
        (mc - mg) / (mb - mg)
    } else {
        f64::NAN
    };
    if good.is_empty() || bad.is_empty() || cand.is_empty() {
        return (
            Decision::Unknown,
            Evidence {
                p_vs_good: 1.0,
                p_vs_bad: 1.0,
                position,
            },
        );
    }
    if is_deterministic(&[good, bad, cand]) {
        let d = if cand[0] == good[0] {
            Decision::Good
        } else {
            Decision::Bad
        };
        let p = |x: f64| if cand[0] == x { 1.0 } else { 0.0 };
        return (
            d,
            Evidence {
                p_vs_good: p(good[0]),
                p_vs_bad: p(bad[0]),
                position,
            },
        );
    }
    let p_vs_good = p_differ(good, cand);
    let p_vs_bad = p_differ(bad, cand);
    let ev = Evidence {
        p_vs_good,
        p_vs_bad,
        position,
    };
    let a = policy.alpha;
    let side = beyond_midpoint(good, bad, cand);
    let d = if p_vs_good < a && side == Some(Decision::Bad) {
        Decision::Bad
    } else if p_vs_bad < a && side == Some(Decision::Good) {
        Decision::Good
    } else {
        Decision::Unknown
    };
    (d, ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(center: f64, spread: &[f64]) -> Vec<f64> {
        spread.iter().map(|d| center * (1.0 + d)).collect()
    }

    const NOISE: [f64; 8] = [0.01, -0.012, 0.004, -0.003, 0.008, -0.009, 0.0, 0.002];

    #[test]
    fn clear_steps_are_decided() {
        let good = around(100.0, &NOISE);
        let bad = around(110.0, &NOISE);
        let p = Policy::default();
        assert_eq!(
            decide(&good, &bad, &around(110.2, &NOISE[..5]), &p).0,
            Decision::Bad
        );
        assert_eq!(
            decide(&good, &bad, &around(99.8, &NOISE[..5]), &p).0,
            Decision::Good
        );
    }

    #[test]
    fn too_few_or_ambiguous_samples_are_unknown() {
        let good = around(100.0, &NOISE);
        let bad = around(110.0, &NOISE);
        let p = Policy::default();
        // Two runs cannot make the rank test significant at 5%.
        assert_eq!(
            decide(&good, &bad, &around(110.0, &NOISE[..2]), &p).0,
            Decision::Unknown
        );
        // Halfway between: unlike both, or like neither.
        assert_eq!(
            decide(&good, &bad, &around(105.0, &NOISE), &p).0,
            Decision::Unknown
        );
        assert_eq!(decide(&good, &bad, &[], &p).0, Decision::Unknown);
    }

    #[test]
    fn drift_past_the_bad_endpoint_is_still_bad() {
        // Low noise, and the candidate sits 1% beyond bad: it clearly differs from bad too,
        // but it is on the bad side of the step.
        let tiny = [0.001, -0.001, 0.0005, -0.0005, 0.0, 0.0002];
        let good = around(100.0, &tiny);
        let bad = around(76.0, &tiny);
        let (d, ev) = decide(&good, &bad, &around(75.2, &tiny[..3]), &Policy::default());
        assert!(ev.p_vs_bad < 0.05);
        assert_eq!(d, Decision::Bad);
    }

    #[test]
    fn deterministic_metrics_compare_exactly() {
        let p = Policy::default();
        assert!(is_deterministic(&[&[3.0, 3.0], &[4.0]]));
        assert_eq!(decide(&[512.0], &[1024.0], &[512.0], &p).0, Decision::Good);
        assert_eq!(decide(&[512.0], &[1024.0], &[1024.0], &p).0, Decision::Bad);
        // A third value is a change from good: the change has started.
        assert_eq!(decide(&[512.0], &[1024.0], &[600.0], &p).0, Decision::Bad);
    }

    #[test]
    fn degenerate_samples_decide_nothing_and_never_panic() {
        let p = Policy::default();
        // An empty reference side with all-equal candidates used to index good[0] and panic.
        for (good, bad) in [
            (&[][..], &[][..]),
            (&[][..], &[2.0][..]),
            (&[1.0][..], &[][..]),
        ] {
            let (d, ev) = decide(good, bad, &[5.0, 5.0, 5.0], &p);
            assert_eq!(d, Decision::Unknown);
            assert_eq!((ev.p_vs_good, ev.p_vs_bad), (1.0, 1.0));
        }
        assert_eq!(p_endpoints(&[], &[1.0]), 1.0);
        assert_eq!(p_endpoints(&[0.0, 0.0], &[0.0, 0.0]), 1.0);
        assert_eq!(p_endpoints(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
        // Samples near f64::MAX: the mean does not overflow, so the position is a number.
        let big = f64::MAX * 0.75;
        let good = [big * 0.5, big * 0.5];
        let bad = [big, big];
        let (d, ev) = decide(&good, &bad, &[big, big], &p);
        assert_eq!(d, Decision::Bad);
        assert!((ev.position - 1.0).abs() < 1e-12, "{ev:?}");
        assert_eq!(mean(&[f64::MAX, f64::MAX]), f64::MAX);
        // All-zero endpoints with noisy candidates: evidence, not NaN.
        let (d, ev) = decide(&[0.0; 4], &[1.0; 4], &[0.0, 0.1, 0.0, 0.1], &p);
        assert!(!ev.p_vs_good.is_nan() && !ev.p_vs_bad.is_nan() && !ev.position.is_nan());
        assert_ne!(d, Decision::Bad);
    }

    /// A CI run's kernel bisect (ms, fastest of 100 forks per boot, Debian 6.12 good and 6.1
    /// bad under TCG): three of the probe's ten boots ran entirely in a slowed stretch.
    const CI_GOOD: [f64; 5] = [20.114, 20.035, 20.194, 20.412, 21.059];
    const CI_BAD: [f64; 5] = [32.097, 30.950, 30.770, 31.173, 31.448];
    const CI_PROBE: [f64; 10] = [
        20.190, 28.541, 29.424, 20.872, 22.187, 19.825, 29.500, 19.915, 20.083, 20.261,
    ];

    #[test]
    fn a_slowed_minority_is_set_aside_and_nothing_else() {
        let (kept, aside) = split_slow(&CI_PROBE);
        assert_eq!(aside, vec![28.541, 29.424, 29.500]);
        assert_eq!(kept.len(), 7);
        assert!(kept.contains(&22.187), "ordinary spread is kept");
        // Four of ten slowed is too many to call interference: nothing is set aside.
        let mut four = CI_PROBE.to_vec();
        four[0] = 29.0;
        assert!(split_slow(&four).1.is_empty());
        // Too few runs to judge.
        assert!(split_slow(&CI_PROBE[..4]).1.is_empty());
        // Fast runs are never set aside.
        assert!(
            split_slow(&[20.0, 20.1, 20.2, 20.1, 20.0, 5.0])
                .1
                .is_empty()
        );
        // A tight cluster keeps a run 3% above it (the 1% floor on the spread).
        assert!(
            split_slow(&[100.0, 100.0, 100.0, 100.0, 103.0])
                .1
                .is_empty()
        );
        assert_eq!(
            split_slow(&[100.0, 100.0, 100.0, 100.0, 104.0]).1,
            vec![104.0]
        );
        assert!(split_slow(&[1.0, 2.0, f64::NAN, 1.0, 1.0]).1.is_empty());
    }

    #[test]
    fn setting_slowed_runs_aside_decides_the_ci_probe() {
        let strict = Policy::default();
        let screening = Policy {
            set_aside_slow: true,
            ..strict
        };
        // Without screening the slowed boots widen the mean's interval across the midpoint.
        assert_eq!(
            decide(&CI_GOOD, &CI_BAD, &CI_PROBE, &strict).0,
            Decision::Unknown
        );
        assert_eq!(
            decide(&CI_GOOD, &CI_BAD, &CI_PROBE, &screening).0,
            Decision::Good
        );
        // Screening never turns a bad revision good: slowed runs of a bad kernel stay bad.
        let bad_probe: Vec<f64> = CI_PROBE.iter().map(|x| x * 1.5).collect();
        assert_eq!(
            decide(&CI_GOOD, &CI_BAD, &bad_probe, &screening).0,
            Decision::Bad
        );
        assert_eq!(screening.set_aside(&CI_PROBE).len(), 3);
        assert!(strict.set_aside(&CI_PROBE).is_empty());
        assert_eq!(strict.kept(&CI_PROBE), CI_PROBE.to_vec());
    }

    #[test]
    fn exact_counts_are_like_one_endpoint_partial_or_beyond() {
        // Measured: 512 MiB pte-order9 under icount, sched fifo, median of 10 forks, Debian
        // 6.12 (good) and 6.1 (bad), x86_64.
        let (good, bad, t) = (13_175_815.0, 17_110_302.0, DEFAULT_EXACT_THRESHOLD_PCT);
        let d = |v: f64| decide_exact(good, bad, v, t);
        // Other boots of each endpoint's kernel: up to 0.15% off.
        assert_eq!(d(13_165_522.0).0, Decision::Good);
        assert_eq!(d(13_165_522.0).1.place, ExactPlace::LikeGood);
        assert_eq!(d(17_131_094.0).0, Decision::Bad);
        assert_eq!(d(17_131_094.0).1.place, ExactPlace::LikeBad);
        // Exactly at the threshold is still the same; just past it is not.
        assert_eq!(d(good * 1.005).1.place, ExactPlace::LikeGood);
        assert_eq!(d(good * 1.0051).1.place, ExactPlace::Partial);
        assert_eq!(d(good * 1.0051).0, Decision::Good);
        // A partial change decides by the midpoint, and says so.
        let (dec, ev) = d(16_000_000.0);
        assert_eq!((dec, ev.place), (Decision::Bad, ExactPlace::Partial));
        assert!(
            ev.place.by_midpoint() && (ev.position - 0.7178).abs() < 0.001,
            "{ev:?}"
        );
        assert_eq!(d((good + bad) / 2.0).0, Decision::Bad);
        // Past either endpoint: that side, marked.
        assert_eq!(d(12_000_000.0).1.place, ExactPlace::BeyondGood);
        assert_eq!(d(12_000_000.0).0, Decision::Good);
        assert_eq!(d(18_000_000.0).1.place, ExactPlace::BeyondBad);
        assert_eq!(d(18_000_000.0).0, Decision::Bad);
        // A speed-up is decided the same way (bad lower than good).
        assert_eq!(decide_exact(bad, good, 13_170_000.0, t).0, Decision::Bad);
        assert_eq!(decide_exact(bad, good, 17_100_000.0, t).0, Decision::Good);
        let ev = d(13_165_522.0).1;
        assert!((ev.vs_good_pct + 0.0781).abs() < 0.001, "{ev:?}");
        assert!((ev.vs_bad_pct + 23.055).abs() < 0.01, "{ev:?}");
    }

    #[test]
    fn exact_values_agree_within_the_threshold_and_print_their_unit() {
        assert!(exact_same(1_812_000.0, 1_815_000.0, 0.5));
        assert!(!exact_same(1_812_000.0, 1_825_000.0, 0.5));
        assert!(exact_same(0.0, 0.0, 0.0) && !exact_same(0.0, 1.0, 50.0));
        assert_eq!(exact_statistic(&[5.0, 1.0, 9.0, 7.0, 3.0]), Some(5.0));
        assert_eq!(exact_statistic(&[]), None);
        assert_eq!(
            fmt_value(1_812_345.0, SampleUnit::Instructions),
            "1.812 M instr"
        );
        assert_eq!(
            fmt_value(65_432.0, SampleUnit::Instructions),
            "65.4 k instr"
        );
        assert_eq!(
            fmt_value(19_800_000.0, SampleUnit::Nanoseconds),
            "19.800 ms"
        );
    }

    #[test]
    fn mann_whitney_matches_independent_values() {
        // Complete separation of 6 vs 6: exact two-sided p = 2 / C(12, 6) = 2 / 924.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0];
        assert!((mann_whitney_p(&a, &b) - 2.0 / 924.0).abs() < 1e-12);
        // 3 vs 3 separated: 2 / C(6, 3) = 0.1; and symmetric.
        assert!((mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]) - 0.1).abs() < 1e-12);
        assert_eq!(mann_whitney_p(&a, &b), mann_whitney_p(&b, &a));
        // Interleaved 3 vs 3: U = 3; the 20 arrangements have U = 0..9 with counts
        // 1,1,2,3,3,3,3,2,1,1, so P(U <= 3) = 7/20 and p = 0.7 (counted by hand).
        assert!((mann_whitney_p(&[1.0, 3.0, 5.0], &[2.0, 4.0, 6.0]) - 0.7).abs() < 1e-12);
        // Ties use the normal approximation. By hand: midranks give U = 2.5, mean 8, tie term
        // 30, var = 16/12 x (9 - 30/56) = 11.2857, z = (5.5 - 0.5)/3.3594 = 1.4884,
        // p = 2 x (1 - Phi(1.4884)) = 0.1366; scipy.stats.mannwhitneyu(..., method='asymptotic')
        // gives 0.136658 (and 2/924, 0.7 for the exact cases above).
        let p = mann_whitney_p(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 4.0, 5.0]);
        assert!((p - 0.1366).abs() < 0.0005, "{p}");
    }

    #[test]
    fn p_differ_needs_both_tests() {
        // One huge outlier makes Welch unsure; the rank test alone would say "differs".
        let a = [100.0, 100.1, 99.9, 100.05, 99.95, 100.02];
        let b = [101.0, 101.1, 100.9, 101.05, 100.95, 10_000.0];
        let p = p_differ(&a, &b);
        assert!(p > 0.05, "{p}");
        let c = [101.0, 101.1, 100.9, 101.05, 100.95, 101.02];
        assert!(p_differ(&a, &c) < 0.01);
    }
}
