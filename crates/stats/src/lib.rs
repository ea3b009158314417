//! Statistics over run means, on `statrs`. The unit of measurement is one run (the mean of its
//! forks), not one fork: forks within a run are not independent (treating them as independent
//! would be pseudo-replication). Relative figures follow the LKML thread: `mean_rel = mean / mean_baseline - 1`,
//! `std_rel = std / mean_baseline` (sample std, n-1).
//!
//! On top of that: Welch's two-sample t-test, the 95% CI of the ratio of means by the delta
//! method on logs, the minimum detectable effect (MDE) for a measured CV and n, and a
//! Pinpoint-style verdict `faster | slower | same | unknown` that says how many runs per side
//! would settle an `unknown`. Pure functions, no I/O. Exact measurements (guest instruction
//! counts) are judged apart, without any of that: [`exact`].

pub mod exact;

use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::Statistics;

/// Mean and sample standard deviation of a set of run means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n-1); 0 when n < 2.
    pub std: f64,
}

impl Summary {
    /// Summarise `xs`; None when empty or when a value is not finite.
    pub fn of(xs: &[f64]) -> Option<Summary> {
        if xs.is_empty() || xs.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let n = xs.len();
        let mean = xs.mean();
        let std = if n < 2 { 0.0 } else { xs.std_dev() };
        Some(Summary { n, mean, std })
    }

    /// Coefficient of variation (std / mean).
    pub fn cv(&self) -> f64 {
        self.std / self.mean
    }

    fn var(&self) -> f64 {
        self.std * self.std
    }
}

/// A variant's summary relative to the baseline's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relative {
    pub mean_rel: f64,
    pub std_rel: f64,
}

/// `mean_rel` and `std_rel` of `s` against `baseline`, as the thread computes them.
pub fn relative(s: &Summary, baseline: &Summary) -> Relative {
    Relative {
        mean_rel: s.mean / baseline.mean - 1.0,
        std_rel: s.std / baseline.mean,
    }
}

/// Run-to-run variation with slow drift taken out: the samples of all runs, in the order they
/// were taken, dealt round-robin into as many groups as there were runs, and the Summary of the
/// group means. Each group then spans the whole session instead of one stretch of it, so drift
/// slower than one iteration (host load, frequency, a neighbour's memory traffic) is shared by
/// all groups and drops out; what is left is the iteration-to-iteration noise. Set beside the
/// runs' own Summary, the difference is the share of the run-to-run spread that is drift between
/// runs. None with fewer than two runs or a run without samples.
pub fn regrouped(runs: &[Vec<f64>]) -> Option<Summary> {
    let groups = runs.len();
    if groups < 2 || runs.iter().any(Vec::is_empty) {
        return None;
    }
    let mut sums = vec![0.0; groups];
    let mut counts = vec![0usize; groups];
    for (i, x) in runs.iter().flatten().enumerate() {
        sums[i % groups] += x;
        counts[i % groups] += 1;
    }
    let means: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect();
    Summary::of(&means)
}

/// Pearson's correlation coefficient of paired samples; None for fewer than three pairs,
/// unequal lengths, non-finite values or a constant side.
pub fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    if xs.len() != ys.len() || xs.len() < 3 || xs.iter().chain(ys).any(|v| !v.is_finite()) {
        return None;
    }
    let (sx, sy) = (xs.std_dev(), ys.std_dev());
    if sx == 0.0 || sy == 0.0 {
        return None;
    }
    Some(xs.covariance(ys) / (sx * sy))
}

/// Median of `xs` (None when empty).
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// Mean and sample standard deviation (n-1) of `xs`, summed in order: `(NaN, NaN)` when empty,
/// sd 0 for one value. Unlike [`Summary::of`] it never refuses: a non-finite value makes the
/// result non-finite, which a report can print as such.
pub fn mean_sd(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, sd)
}

/// Result of Welch's unequal-variance t-test of `new` against `base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Welch {
    /// `(mean_new - mean_base) / se`; infinite when both variances are 0 and the means differ.
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// Two-sided p-value.
    pub p: f64,
}

fn t_dist(df: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, df).ok()
}

/// Quantile `q` of Student's t with `df` degrees of freedom.
pub fn t_quantile(q: f64, df: f64) -> Option<f64> {
    t_dist(df)?.try_inverse_cdf(q).ok()
}

/// Welch's t-test (two-sided). None when a side has fewer than 2 runs.
/// With zero variance on both sides: p = 1 if the means are equal, else 0.
pub fn welch(base: &Summary, new: &Summary) -> Option<Welch> {
    if base.n < 2 || new.n < 2 {
        return None;
    }
    let (na, nb) = (base.n as f64, new.n as f64);
    let (qa, qb) = (base.var() / na, new.var() / nb);
    let se2 = qa + qb;
    let diff = new.mean - base.mean;
    if se2 == 0.0 {
        let df = na + nb - 2.0;
        return Some(if diff == 0.0 {
            Welch { t: 0.0, df, p: 1.0 }
        } else {
            Welch {
                t: diff.signum() * f64::INFINITY,
                df,
                p: 0.0,
            }
        });
    }
    let t = diff / se2.sqrt();
    let df = se2 * se2 / (qa * qa / (na - 1.0) + qb * qb / (nb - 1.0));
    let p = (2.0 * t_dist(df)?.sf(t.abs())).min(1.0);
    Some(Welch { t, df, p })
}

/// A ratio of means `new / base` with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioCi {
    pub ratio: f64,
    pub lo: f64,
    pub hi: f64,
}

/// Confidence interval (`level`, e.g. 0.95) of `new.mean / base.mean` by the delta method on
/// the log scale: `se_log = sqrt(v_new/(n_new m_new²) + v_base/(n_base m_base²))`,
/// `[r·exp(-t·se_log), r·exp(t·se_log)]` with t the Student quantile at the Welch df.
/// None when a side has fewer than 2 runs or a mean is not positive.
pub fn ratio_ci(base: &Summary, new: &Summary, level: f64) -> Option<RatioCi> {
    if base.mean <= 0.0 || new.mean <= 0.0 {
        return None;
    }
    let w = welch(base, new)?;
    let ratio = new.mean / base.mean;
    let se_log = (new.var() / (new.n as f64 * new.mean * new.mean)
        + base.var() / (base.n as f64 * base.mean * base.mean))
        .sqrt();
    if se_log == 0.0 {
        return Some(RatioCi {
            ratio,
            lo: ratio,
            hi: ratio,
        });
    }
    let tcrit = t_quantile(0.5 + level / 2.0, w.df)?;
    Some(RatioCi {
        ratio,
        lo: ratio * (-tcrit * se_log).exp(),
        hi: ratio * (tcrit * se_log).exp(),
    })
}

/// Minimum detectable relative effect of a two-sided t-test with `n` runs per side at run-to-run
/// coefficient of variation `cv`: `(t(1-α/2, 2n-2) + t(power, 2n-2)) · sqrt(2/n) · cv`
/// (the usual power formula with Student's t). None for n < 2 or a non-finite cv.
pub fn mde(cv: f64, n: usize, alpha: f64, power: f64) -> Option<f64> {
    if n < 2 || !cv.is_finite() || cv < 0.0 {
        return None;
    }
    let df = 2.0 * (n as f64 - 1.0);
    let k = t_quantile(1.0 - alpha / 2.0, df)? + t_quantile(power, df)?;
    Some(k * (2.0 / n as f64).sqrt() * cv)
}

/// Largest number of runs per side that [`runs_needed`] will propose.
pub const MAX_RUNS: usize = 100_000;

/// Smallest n (runs per side, at least 2) whose [`mde`] is at most `effect`; None when even
/// [`MAX_RUNS`] would not do or the inputs are not usable.
pub fn runs_needed(cv: f64, effect: f64, alpha: f64, power: f64) -> Option<usize> {
    if effect.is_nan() || effect <= 0.0 || !cv.is_finite() {
        return None;
    }
    let ok = |n: usize| mde(cv, n, alpha, power).is_some_and(|m| m <= effect);
    if !ok(MAX_RUNS) {
        return None;
    }
    // mde falls monotonically with n: binary search.
    let (mut lo, mut hi) = (2usize, MAX_RUNS);
    if ok(lo) {
        return Some(lo);
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if ok(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// The decision on one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Significant (p < α) and the whole CI of the ratio is below `1 - noise`.
    Faster,
    /// Significant and the whole CI is above `1 + noise`.
    Slower,
    /// The whole CI lies within `1 ± noise`: any difference is below the noise threshold.
    Same,
    /// None of the above: more runs are needed (see [`Comparison::runs_needed`]).
    Unknown,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Same => "same",
            Verdict::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The default noise threshold (relative): changes whose whole CI lies within ±this are "same",
/// and "faster"/"slower" need the whole CI beyond it. `table`, `compare` and `bench` all use
/// it unless told otherwise, and print it.
pub const DEFAULT_NOISE: f64 = 0.01;

/// Decision parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Significance level of the t-test (two-sided).
    pub alpha: f64,
    /// Power for the MDE and runs-needed figures.
    pub power: f64,
    /// Confidence level of the ratio's interval.
    pub level: f64,
    /// Relative noise threshold: smaller changes are "same" (criterion's noise threshold).
    pub noise: f64,
    /// How exact rows (guest instruction counts) are judged instead: no test, see [`exact`].
    pub exact: exact::ExactPolicy,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            alpha: 0.05,
            power: 0.8,
            level: 0.95,
            noise: DEFAULT_NOISE,
            exact: exact::ExactPolicy::default(),
        }
    }
}

/// Everything the extended table shows for one variant against its baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub base: Summary,
    pub new: Summary,
    pub rel: Relative,
    pub welch: Option<Welch>,
    pub ci: Option<RatioCi>,
    /// Pooled run-to-run CV, `sqrt((s_base² + s_new²)/2) / mean_base`.
    pub cv: f64,
    /// Minimum detectable effect at this CV and `min(n_base, n_new)` runs per side.
    pub mde: Option<f64>,
    pub verdict: Verdict,
    /// For `Unknown`: runs per side (at this CV) that would resolve the distance between the
    /// observed change and the noise threshold (at least half the threshold).
    pub runs_needed: Option<usize>,
}

/// Compare `new` against `base` under `policy`.
pub fn compare(base: &Summary, new: &Summary, policy: &Policy) -> Comparison {
    let rel = relative(new, base);
    let welch = welch(base, new);
    let ci = ratio_ci(base, new, policy.level);
    // With a single run on a side there is no run-to-run variation to measure.
    let cv = if base.n < 2 || new.n < 2 {
        f64::NAN
    } else {
        ((base.var() + new.var()) / 2.0).sqrt() / base.mean
    };
    let n = base.n.min(new.n);
    let mde = mde(cv, n, policy.alpha, policy.power);
    let noise = policy.noise;
    let verdict = match (welch, ci) {
        (Some(w), Some(ci)) => {
            let sig = w.p < policy.alpha;
            if sig && ci.lo > 1.0 + noise {
                Verdict::Slower
            } else if sig && ci.hi < 1.0 - noise {
                Verdict::Faster
            } else if ci.lo >= 1.0 - noise && ci.hi <= 1.0 + noise {
                Verdict::Same
            } else {
                Verdict::Unknown
            }
        }
        _ => Verdict::Unknown,
    };
    let runs_needed = if verdict == Verdict::Unknown {
        let d = rel.mean_rel.abs();
        let target = (d - noise).abs().max(noise / 2.0);
        runs_needed(cv, target, policy.alpha, policy.power)
    } else {
        None
    };
    Comparison {
        base: *base,
        new: *new,
        rel,
        welch,
        ci,
        cv,
        mde,
        verdict,
        runs_needed,
    }
}

/// Comparisons across sessions (two result files): the between-session noise they need.
pub mod session;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sd_of_values() {
        let (m, s) = mean_sd(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - 1.0).abs() < 1e-12);
        assert_eq!(mean_sd(&[5.0]), (5.0, 0.0));
        assert!(mean_sd(&[]).0.is_nan());
        assert!(mean_sd(&[1.0, f64::NAN]).0.is_nan());
    }

    #[test]
    fn pearson_matches_hand_computed_values() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&x, &[2.0, 4.0, 6.0, 8.0]).unwrap() - 1.0).abs() < 1e-12);
        assert!((pearson(&x, &[8.0, 6.0, 4.0, 2.0]).unwrap() + 1.0).abs() < 1e-12);
        // scipy.stats.pearsonr([1,2,3,4],[1,3,2,4]) = 0.8
        assert!((pearson(&x, &[1.0, 3.0, 2.0, 4.0]).unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(pearson(&x, &[1.0, 1.0, 1.0, 1.0]), None);
        assert_eq!(pearson(&x[..2], &[1.0, 2.0]), None);
        assert_eq!(pearson(&x, &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn regrouping_removes_a_step_between_runs_but_keeps_noise() {
        // Two runs with a 10% step between them and identical noise inside: the runs differ,
        // the regrouped groups (each half from either run) do not.
        let a = vec![100.0, 102.0, 98.0, 100.0];
        let b: Vec<f64> = a.iter().map(|x| x * 1.1).collect();
        let runs = vec![a.clone(), b];
        let blocked = Summary::of(&[100.0, 110.0]).unwrap();
        let r = regrouped(&runs).unwrap();
        assert!(blocked.cv() > 0.06);
        // Groups: indices 0,2,4,6 = 100,98,110,107.8 and 1,3,5,7 = 102,100,112.2,110.
        assert!((r.mean - 105.0).abs() < 1e-9);
        assert!((r.std - (106.05_f64 - 103.95).abs() / 2f64.sqrt()).abs() < 1e-9);
        assert!(r.cv() < blocked.cv() / 4.0);
        // Identical samples: no spread either way.
        let same = vec![vec![1.0, 1.0], vec![1.0, 1.0]];
        assert_eq!(regrouped(&same).unwrap().std, 0.0);
        assert_eq!(regrouped(&[vec![1.0]]), None);
        assert_eq!(regrouped(&[vec![1.0], vec![]]), None);
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn summary_matches_hand_computation() {
        // mean 5, deviations -3,-1,1,3 → sum of squares 20, /3 → std sqrt(20/3).
        let s = Summary::of(&[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.std - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Summary::of(&[3.0]).unwrap().std, 0.0);
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn relative_is_against_baseline_mean() {
        let base = Summary {
            n: 8,
            mean: 100.0,
            std: 1.0,
        };
        let v = Summary {
            n: 8,
            mean: 64.0,
            std: 2.0,
        };
        let r = relative(&v, &base);
        assert!((r.mean_rel + 0.36).abs() < 1e-12);
        assert!((r.std_rel - 0.02).abs() < 1e-12);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    // Reference values below were computed independently with Python 3 + SciPy 1.17.1:
    //   from scipy import stats; import numpy as np
    //   a = np.array(A); b = np.array(B)
    //   r = stats.ttest_ind(b, a, equal_var=False)          # t, p, r.df
    //   se = np.sqrt(b.var(ddof=1)/(len(b)*b.mean()**2) + a.var(ddof=1)/(len(a)*a.mean()**2))
    //   tc = stats.t.ppf(0.975, r.df); q = b.mean()/a.mean()
    //   (q*np.exp(-tc*se), q*np.exp(tc*se))
    const A: [f64; 8] = [14.21, 14.35, 14.02, 14.30, 14.18, 14.44, 14.09, 14.27];
    const B: [f64; 8] = [13.49, 13.60, 13.71, 13.38, 13.55, 13.52, 13.80, 13.41];

    #[test]
    fn welch_matches_scipy() {
        let a = Summary::of(&A).unwrap();
        let b = Summary::of(&B).unwrap();
        let w = welch(&a, &b).unwrap();
        assert!(close(w.t, -9.637_590_220_037_506, 1e-9), "{w:?}");
        assert!(close(w.df, 13.975_079_717_943, 1e-9), "{w:?}");
        assert!(close(w.p, 1.495_403_853_752_191_8e-7, 1e-6), "{w:?}");
        let ci = ratio_ci(&a, &b, 0.95).unwrap();
        assert!(close(ci.ratio, 0.952_573_335_675_390_9, 1e-12), "{ci:?}");
        assert!(close(ci.lo, 0.942_309_475_098_769_4, 1e-9), "{ci:?}");
        assert!(close(ci.hi, 0.962_948_992_680_595_9, 1e-9), "{ci:?}");
    }

    #[test]
    fn welch_unequal_sizes_matches_scipy() {
        // Unequal n and variances; a p-value near 0.04 checks the tail, not just the sign.
        let a = Summary::of(&[10.0, 10.4, 9.8, 10.1, 10.3]).unwrap();
        let b = Summary::of(&[10.2, 10.9, 10.5, 10.1, 11.0, 10.6, 10.3]).unwrap();
        let w = welch(&a, &b).unwrap();
        assert!(close(w.t, 2.344_997_532_411_863_3, 1e-9), "{w:?}");
        assert!(close(w.df, 9.999_561_630_604_38, 1e-9), "{w:?}");
        assert!(close(w.p, 0.040_989_865_226_179_846, 1e-6), "{w:?}");
        let ci = ratio_ci(&a, &b, 0.95).unwrap();
        assert!(close(ci.lo, 1.002_025_588_944_615_5, 1e-9), "{ci:?}");
        assert!(close(ci.hi, 1.077_257_958_667_426_5, 1e-9), "{ci:?}");
    }

    #[test]
    fn degenerate_inputs() {
        let one = Summary::of(&[1.0]).unwrap();
        let two = Summary::of(&[1.0, 1.0]).unwrap();
        assert!(welch(&one, &two).is_none());
        let w = welch(&two, &two).unwrap();
        assert_eq!(w.p, 1.0);
        let other = Summary::of(&[2.0, 2.0]).unwrap();
        assert_eq!(welch(&two, &other).unwrap().p, 0.0);
        let ci = ratio_ci(&two, &other, 0.95).unwrap();
        assert_eq!((ci.lo, ci.hi), (2.0, 2.0));
        let c = compare(&two, &other, &Policy::default());
        assert_eq!(c.verdict, Verdict::Slower);
        let c = compare(&one, &other, &Policy::default());
        assert_eq!(c.verdict, Verdict::Unknown);
        assert_eq!(c.runs_needed, None);
    }

    #[test]
    fn mde_and_runs_needed_match_the_anchor_table() {
        // Reference values (two-sided, α = 0.05, power 0.8, equal n): rows CV → (MDE at 8 runs,
        // runs for 1 %, runs for 0.5 %).
        let rows = [
            (0.003, 0.0045, 3, 7),
            (0.005, 0.0075, 6, 17),
            (0.008, 0.012, 12, 42),
            (0.010, 0.015, 17, 64),
            (0.020, 0.030, 64, 253),
        ];
        for (cv, m8, n1, n05) in rows {
            let m = mde(cv, 8, 0.05, 0.8).unwrap();
            assert!((m - m8).abs() < 0.0006, "cv {cv}: mde {m}");
            assert_eq!(runs_needed(cv, 0.01, 0.05, 0.8), Some(n1), "cv {cv}");
            assert_eq!(runs_needed(cv, 0.005, 0.05, 0.8), Some(n05), "cv {cv}");
        }
        // And one exact value: t(0.975,14) = 2.1447866879, t(0.8,14) = 0.8681228915 (SciPy).
        let m = mde(0.01, 8, 0.05, 0.8).unwrap();
        assert!(close(
            m,
            (2.144_786_687_9 + 0.868_054_781_6) * 0.5 * 0.01,
            1e-9
        ));
        assert_eq!(runs_needed(0.0, 0.01, 0.05, 0.8), Some(2));
        assert_eq!(runs_needed(1.0, 1e-6, 0.05, 0.8), None);
    }

    #[test]
    fn verdicts() {
        let p = Policy::default();
        let s = |mean: f64, std: f64, n: usize| Summary { n, mean, std };
        // 5 % slower, 0.5 % CV, 8 runs: clearly slower.
        assert_eq!(
            compare(&s(100.0, 0.5, 8), &s(105.0, 0.5, 8), &p).verdict,
            Verdict::Slower
        );
        assert_eq!(
            compare(&s(100.0, 0.5, 8), &s(95.0, 0.5, 8), &p).verdict,
            Verdict::Faster
        );
        // 0.1 % apart with 0.2 % CV: the CI sits inside ±1 %.
        assert_eq!(
            compare(&s(100.0, 0.2, 8), &s(100.1, 0.2, 8), &p).verdict,
            Verdict::Same
        );
        // 2 % apart with 5 % CV: cannot tell; needs more runs.
        let c = compare(&s(100.0, 5.0, 8), &s(102.0, 5.0, 8), &p);
        assert_eq!(c.verdict, Verdict::Unknown);
        let n = c.runs_needed.unwrap();
        assert!(n > 8, "{n}");
        // Significant but inside the noise threshold is not "slower".
        let c = compare(&s(100.0, 0.1, 8), &s(100.5, 0.1, 8), &p);
        assert!(c.welch.unwrap().p < 0.05);
        assert_eq!(c.verdict, Verdict::Same);
    }
}
