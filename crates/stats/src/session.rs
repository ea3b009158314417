//! Comparisons *across sessions*: two result files are two sessions (a host phase, a boot, a
//! machine state), and a session moves every run it holds by the same amount. The runs of one
//! file are therefore not independent samples of the variant's distribution: their spread
//! leaves out the session's own offset, and a Welch test between two files reads that offset
//! as an effect. Here the offset is measured (the spread of *session means* over sessions of
//! the same machine, kernel, tool and variant) and put into the comparison.
//!
//! The model, on the log scale (changes are ratios): the run means of session `s` are
//! `ln x = μ + b_s + e`, with a session offset `b_s ~ N(0, σ_b²)` and a run-to-run term
//! `e ~ N(0, σ_w²)`. A session's mean of `n` runs then varies by `σ_b² + σ_w²/n`.
//! - [`estimate`]: from `N` sessions, `S²` = the sample variance of their log means (`N - 1`
//!   degrees of freedom; it estimates `σ_b² + σ_w²/n` at the sessions' own run count) and `W`
//!   = the mean of their within-session terms `cv²/n`; `σ_b² ≈ max(0, S² - W)` is reported.
//! - [`compare`]: `d = ln(mean_B / mean_A)` has variance `2σ_b² + w_A + w_B` (`w = cv²/n` of
//!   each side). It is estimated as `V = 2·max(S², W) + e_A + e_B`, where `e = max(0, w - W)`
//!   is what a side's own runs add beyond what a session mean already holds (fewer or noisier
//!   runs than the sessions had). With sides like the sessions, `V = 2S²` and `d/√V` is
//!   Student's t with `N - 1` degrees of freedom exactly; in general the degrees of freedom
//!   are Welch–Satterthwaite's over the terms of `V`. So a noise measured from 3 sessions (2
//!   degrees of freedom, t(0.975) = 4.30) widens the interval far more than the same spread
//!   from 10 sessions would: the uncertainty of the estimate is in the interval.
//! - The verdict is the usual one ([`crate::compare`]) with a noise threshold per variant:
//!   the larger of the policy's and the measured session spread `S`, symmetric on the log
//!   scale (slower: the whole interval above `1 + T`; faster: below `1 / (1 + T)`). Changes
//!   within the spread that sessions show on their own are never called faster or slower.
//!
//! Exact measurements (instruction counts) have no session term: they are judged by
//! [`crate::exact`]-style rules elsewhere, not here.

use crate::{Comparison, Policy, RatioCi, Summary, Verdict, Welch, relative, t_dist, t_quantile};
use statrs::distribution::ContinuousCDF;

/// A variant's between-session noise, estimated from its session summaries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Between {
    /// Sessions the estimate comes from.
    pub sessions: usize,
    /// Degrees of freedom of `spread²`: `sessions - 1`.
    pub df: f64,
    /// `S`: the sample standard deviation of the sessions' log means (relative: 0.02 = 2%).
    pub spread: f64,
    /// `W`: the mean variance a session's own runs put into its log mean (`cv²/n`).
    pub within: f64,
    /// `sqrt(max(0, S² - W))`: the part of the spread that is the sessions' own offsets.
    pub between_sd: f64,
}

impl Between {
    /// The verdict's noise threshold for this variant: the larger of `floor` (the policy's)
    /// and the measured spread of session means.
    pub fn threshold(&self, floor: f64) -> f64 {
        floor.max(self.spread)
    }
}

/// `ln mean` and `cv²/n` of one session's summary; None when it cannot take part (fewer than
/// two runs, a mean that is not positive, a non-finite figure).
fn log_terms(s: &Summary) -> Option<(f64, f64)> {
    if s.n < 2 || !s.mean.is_finite() || s.mean <= 0.0 || !s.std.is_finite() {
        return None;
    }
    let cv = s.std / s.mean;
    Some((s.mean.ln(), cv * cv / s.n as f64))
}

/// Estimate the between-session noise of one variant from its sessions (one [`Summary`] of
/// run means per session). Sessions with fewer than two runs or a non-positive mean are left
/// out; None with fewer than two usable sessions (no spread can be measured).
pub fn estimate(sessions: &[Summary]) -> Option<Between> {
    let terms: Vec<(f64, f64)> = sessions.iter().filter_map(log_terms).collect();
    let n = terms.len();
    if n < 2 {
        return None;
    }
    let logs: Vec<f64> = terms.iter().map(|t| t.0).collect();
    let (_, spread) = crate::mean_sd(&logs);
    let within = terms.iter().map(|t| t.1).sum::<f64>() / n as f64;
    Some(Between {
        sessions: n,
        df: (n - 1) as f64,
        spread,
        within,
        between_sd: (spread * spread - within).max(0.0).sqrt(),
    })
}

/// The variance of `ln(mean_B / mean_A)` across two sessions and its degrees of freedom (see
/// the module's model), each side with its variant's noise (the same [`Between`] when both
/// sides are one variant). The two session terms come from sessions of one machine, so they
/// count as one term with the smaller of their degrees of freedom. None when a side cannot take
/// part (see [`log_terms`]).
pub fn variance(
    base: &Summary,
    base_noise: &Between,
    new: &Summary,
    new_noise: &Between,
) -> Option<(f64, f64)> {
    let (_, w_a) = log_terms(base)?;
    let (_, w_b) = log_terms(new)?;
    let session_term = |n: &Between| (n.spread * n.spread).max(n.within);
    let session = session_term(base_noise) + session_term(new_noise);
    let session_df = base_noise.df.min(new_noise.df);
    let e_a = (w_a - base_noise.within).max(0.0);
    let e_b = (w_b - new_noise.within).max(0.0);
    let v = session + e_a + e_b;
    let denom = session * session / session_df
        + e_a * e_a / (base.n as f64 - 1.0)
        + e_b * e_b / (new.n as f64 - 1.0);
    let df = if denom > 0.0 {
        v * v / denom
    } else {
        session_df
    };
    Some((v, df))
}

/// Compare `new` against `base`, two sessions of one variant, with its between-session
/// `noise` ([`compare_each`] with the same noise on both sides).
pub fn compare(base: &Summary, new: &Summary, noise: &Between, policy: &Policy) -> Comparison {
    compare_each(base, noise, new, noise, policy)
}

/// Compare `new` against `base`, two sessions, each side with its variant's between-session
/// noise: the t statistic, interval, p and minimum detectable effect come from [`variance`];
/// the verdict uses the larger of the two sides' [`Between::threshold`] with `policy.noise` as
/// its floor. `welch` carries this test's t, degrees of freedom and p; `runs_needed` is None
/// (more runs per side do not shrink the session term: more sessions would).
pub fn compare_each(
    base: &Summary,
    base_noise: &Between,
    new: &Summary,
    new_noise: &Between,
    policy: &Policy,
) -> Comparison {
    let within = crate::compare(base, new, policy);
    let Some((v, df)) = variance(base, base_noise, new, new_noise) else {
        return Comparison {
            verdict: Verdict::Unknown,
            runs_needed: None,
            ..within
        };
    };
    let d = (new.mean / base.mean).ln();
    let ratio = new.mean / base.mean;
    let (test, ci) = if v > 0.0 {
        let se = v.sqrt();
        let t = d / se;
        let p = t_dist(df).map(|dist| (2.0 * dist.sf(t.abs())).min(1.0));
        let tcrit = t_quantile(0.5 + policy.level / 2.0, df);
        match (p, tcrit) {
            (Some(p), Some(tc)) => (
                Some(Welch { t, df, p }),
                Some(RatioCi {
                    ratio,
                    lo: ratio * (-tc * se).exp(),
                    hi: ratio * (tc * se).exp(),
                }),
            ),
            _ => (None, None),
        }
    } else {
        (None, None)
    };
    // Symmetric on the log scale, as the session spread is: B slower than A by the threshold
    // is A faster than B by the same factor.
    let (up, down) = {
        let band = base_noise
            .threshold(policy.noise)
            .max(new_noise.threshold(policy.noise));
        (1.0 + band, 1.0 / (1.0 + band))
    };
    let verdict = match (test, ci) {
        (Some(w), Some(ci)) => {
            let sig = w.p < policy.alpha;
            if sig && ci.lo > up {
                Verdict::Slower
            } else if sig && ci.hi < down {
                Verdict::Faster
            } else if ci.lo >= down && ci.hi <= up {
                Verdict::Same
            } else {
                Verdict::Unknown
            }
        }
        _ => Verdict::Unknown,
    };
    let mde = match (
        t_quantile(1.0 - policy.alpha / 2.0, df),
        t_quantile(policy.power, df),
    ) {
        (Some(a), Some(b)) if v > 0.0 => Some((a + b) * v.sqrt()),
        _ => None,
    };
    Comparison {
        base: *base,
        new: *new,
        rel: relative(new, base),
        welch: test,
        ci,
        cv: within.cv,
        mde,
        verdict,
        runs_needed: None,
    }
}

#[cfg(test)]
mod tests;
