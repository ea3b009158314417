//! The bisection over an ordered list of revisions `[good, ..., bad]`. Endpoints are measured
//! first and must differ (else the search refuses, with the numbers); an endpoint whose
//! measurement crashed is measured again, up to `endpoint_retries` times. Each probed revision
//! gets `min_runs` runs, more while undecided up to `max_runs`, and is skipped if still
//! undecided or if it cannot be measured (a crash included). Exact measurements
//! (`exact_threshold_pct`) take one run per revision and are decided by
//! [`crate::decide::decide_exact`]. The result names the first bad revision, or the set it
//! must be in when skipped revisions leave it ambiguous.

use contract::SampleUnit;
use serde::Serialize;
use stats::Summary;

use crate::decide::{
    Decision, Evidence, ExactEvidence, Policy, change_pct, decide, decide_exact, exact_same,
    exact_statistic, fmt_value, mean, p_endpoints,
};

/// One revision of the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rev {
    pub hash: String,
    pub subject: String,
}

/// Why a measurement produced no samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeasureError {
    /// This revision cannot be measured (build or run failure): skip it.
    Skip(String),
    /// The measurement crashed (a guest kernel's panic or oops): a probe is skipped, an
    /// endpoint measured again.
    Crashed(String),
    /// Stop the whole search (Ctrl-C, or the tool itself broke).
    Abort(String),
}

/// Progress of the search, for a measurer that reports it (`git bisect`-like lines).
#[derive(Debug)]
pub enum SearchEvent<'a> {
    /// `rev` is probed next; `left` candidates remain after it, roughly `steps` more probes.
    Probe {
        rev: &'a Rev,
        left: usize,
        steps: u32,
    },
    /// A revision (an endpoint or a probe) has its verdict.
    Decided(&'a Tested),
    /// The `which` endpoint's measurement crashed; it is measured again (`attempt` of
    /// `1 + endpoint_retries`).
    Retry {
        rev: &'a Rev,
        which: &'static str,
        attempt: usize,
        reason: &'a str,
    },
}

/// Something that measures the metric at a revision: one call is one run.
pub trait Measure {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError>;
    /// Told what the search does; nothing by default.
    fn event(&mut self, _event: &SearchEvent<'_>) {}
}

/// Knobs of the search.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// Runs per endpoint (noisy metrics).
    pub endpoint_runs: usize,
    /// First runs per probed revision (noisy metrics).
    pub min_runs: usize,
    /// Most runs per probed revision before it is skipped as unknown.
    pub max_runs: usize,
    /// The metric is deterministic (op counts): one run per revision, exact comparison.
    pub exact: bool,
    /// Exact measurements compared within this threshold (percent): one run per revision,
    /// its samples' median compared by [`decide_exact`]. Overrides `exact` and `policy`.
    pub exact_threshold_pct: Option<f64>,
    /// What the samples count (for messages).
    pub unit: SampleUnit,
    /// Measurements of an endpoint that crashed, repeated before the search gives up.
    pub endpoint_retries: usize,
    /// Larger values are better (else lower is better).
    pub higher_is_better: bool,
    /// Smallest relative change between the endpoints worth bisecting, in percent.
    pub threshold_pct: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            policy: Policy::default(),
            endpoint_runs: 5,
            min_runs: 3,
            max_runs: 10,
            exact: false,
            exact_threshold_pct: None,
            unit: SampleUnit::Nanoseconds,
            endpoint_retries: 3,
            higher_is_better: false,
            threshold_pct: None,
        }
    }
}

/// What was learnt about one revision.
#[derive(Debug, Clone, Serialize)]
pub struct Tested {
    /// Index into the revision list.
    pub index: usize,
    pub rev: Rev,
    pub runs: usize,
    pub samples: Vec<f64>,
    /// Samples the policy set aside as slowed by interference (also in `samples`); `mean`, `ci`
    /// and the decision use the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set_aside: Vec<f64>,
    pub mean: f64,
    /// 95% confidence interval of the mean (NaN for fewer than 2 samples).
    pub ci: (f64, f64),
    pub decision: Decision,
    pub evidence: Option<Evidence>,
    /// Exact mode: the count against the endpoints'.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactEvidence>,
    /// Why it was skipped, when it was.
    pub note: Option<String>,
}

impl Tested {
    /// `good`, `bad` or `skip (why)`, as tables and progress lines say it.
    pub fn verdict(&self) -> String {
        match self.decision {
            Decision::Good => "good".to_string(),
            Decision::Bad => "bad".to_string(),
            Decision::Unknown => format!("skip ({})", self.note.as_deref().unwrap_or("unknown")),
        }
    }
}

/// The answer.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Outcome {
    /// The first bad revision.
    Found { index: usize },
    /// Skipped revisions leave several candidates for the first bad one.
    Ambiguous { candidates: Vec<usize> },
}

/// A finished search.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub revs: Vec<Rev>,
    /// Every tested revision, in the order tested (good and bad endpoints first).
    pub tested: Vec<Tested>,
    pub outcome: Outcome,
}

/// Why the search did not run to the end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SearchError {
    #[error("need at least two revisions (good and bad)")]
    TooFew,
    #[error("cannot measure the {which} endpoint {rev}: {reason}")]
    Endpoint {
        which: &'static str,
        rev: String,
        reason: String,
    },
    #[error(
        "good and bad do not differ: good mean {good_mean:.6e} (n={good_n}), bad mean {bad_mean:.6e} (n={bad_n}), change {change_pct:+.2}%, p={p:.3}{extra}"
    )]
    NoDifference {
        good_mean: f64,
        good_n: usize,
        bad_mean: f64,
        bad_n: usize,
        change_pct: f64,
        p: f64,
        extra: String,
    },
    #[error(
        "good {}/fork and bad {}/fork differ by {change_pct:+.2}%, within the exact threshold {threshold_pct}%: nothing to bisect",
        fmt_value(*good, *unit), fmt_value(*bad, *unit)
    )]
    ExactNoDifference {
        good: f64,
        bad: f64,
        change_pct: f64,
        threshold_pct: f64,
        unit: SampleUnit,
    },
    #[error(
        "bad ({bad_mean:.6e}) is not worse than good ({good_mean:.6e}) when {dir} is better; swap them or pass --higher-is-better"
    )]
    WrongDirection {
        good_mean: f64,
        bad_mean: f64,
        dir: &'static str,
    },
    #[error("aborted: {0}")]
    Aborted(String),
}

fn ci95(xs: &[f64]) -> (f64, f64) {
    match Summary::of(xs) {
        Some(s) if s.n >= 2 => {
            let t = stats::t_quantile(0.975, (s.n - 1) as f64).unwrap_or(f64::NAN);
            let h = t * s.std / (s.n as f64).sqrt();
            (s.mean - h, s.mean + h)
        }
        _ => (f64::NAN, f64::NAN),
    }
}

fn collect(m: &mut dyn Measure, rev: &Rev, runs: usize) -> Result<Vec<f64>, MeasureError> {
    let mut all = Vec::new();
    for _ in 0..runs {
        all.extend(m.measure(rev)?);
    }
    Ok(all)
}

/// `runs` measurements of endpoint `i`; a crashed one is repeated up to `cfg.endpoint_retries`
/// times in all, each crash told to `m`.
fn measure_endpoint(
    m: &mut dyn Measure,
    rev: &Rev,
    which: &'static str,
    runs: usize,
    cfg: &Config,
) -> Result<Vec<f64>, SearchError> {
    let mut all = Vec::new();
    let mut crashes = 0;
    while all.len() < runs {
        match m.measure(rev) {
            Ok(s) => all.push(s),
            Err(MeasureError::Crashed(reason)) if crashes < cfg.endpoint_retries => {
                crashes += 1;
                m.event(&SearchEvent::Retry {
                    rev,
                    which,
                    attempt: crashes + 1,
                    reason: &reason,
                });
            }
            Err(MeasureError::Crashed(reason)) => {
                return Err(SearchError::Endpoint {
                    which,
                    rev: rev.hash.clone(),
                    reason: format!("{reason} (crashed {} times in a row)", crashes + 1),
                });
            }
            Err(MeasureError::Skip(reason)) => {
                return Err(SearchError::Endpoint {
                    which,
                    rev: rev.hash.clone(),
                    reason,
                });
            }
            Err(MeasureError::Abort(r)) => return Err(SearchError::Aborted(r)),
        }
    }
    let all: Vec<f64> = all.into_iter().flatten().collect();
    if all.is_empty() {
        return Err(SearchError::Endpoint {
            which,
            rev: rev.hash.clone(),
            reason: "no samples".into(),
        });
    }
    Ok(all)
}

/// The endpoints' reference values in exact mode (their samples' medians), refused when they
/// are the same within the threshold (or below `--threshold`). Either direction is a change.
fn exact_endpoints(
    good: &[f64],
    bad: &[f64],
    t: f64,
    cfg: &Config,
) -> Result<(f64, f64), SearchError> {
    let (g, b) = (
        exact_statistic(good).unwrap_or(f64::NAN),
        exact_statistic(bad).unwrap_or(f64::NAN),
    );
    let t = t.max(cfg.threshold_pct.unwrap_or(0.0));
    if exact_same(g, b, t) || !(g.is_finite() && b.is_finite()) {
        return Err(SearchError::ExactNoDifference {
            good: g,
            bad: b,
            change_pct: change_pct(g, b),
            threshold_pct: t,
            unit: cfg.unit,
        });
    }
    Ok((g, b))
}

/// Noisy or deterministic endpoints must differ (p, `--threshold`) in the bad direction.
fn check_endpoints(good: &[f64], bad: &[f64], cfg: &Config) -> Result<(), SearchError> {
    let (good_kept, bad_kept) = (cfg.policy.kept(good), cfg.policy.kept(bad));
    let (mg, mb) = (mean(&good_kept), mean(&bad_kept));
    let change_pct = change_pct(mg, mb);
    let p = p_endpoints(&good_kept, &bad_kept);
    let below_threshold = cfg.threshold_pct.is_some_and(|t| change_pct.abs() < t);
    if p >= cfg.policy.alpha || below_threshold {
        return Err(SearchError::NoDifference {
            good_mean: mg,
            good_n: good_kept.len(),
            bad_mean: mb,
            bad_n: bad_kept.len(),
            change_pct,
            p,
            extra: match cfg.threshold_pct {
                Some(t) if below_threshold => format!(", below the {t}% threshold"),
                _ => String::new(),
            },
        });
    }
    let worse = if cfg.higher_is_better {
        mb < mg
    } else {
        mb > mg
    };
    if !worse && !cfg.exact {
        return Err(SearchError::WrongDirection {
            good_mean: mg,
            bad_mean: mb,
            dir: if cfg.higher_is_better {
                "higher"
            } else {
                "lower"
            },
        });
    }
    Ok(())
}

/// The endpoints' samples and, in exact mode, their reference values.
struct Endpoints {
    good: Vec<f64>,
    bad: Vec<f64>,
    exact: Option<(f64, f64, f64)>,
}

impl Endpoints {
    /// Decide a candidate's samples.
    fn decide(
        &self,
        samples: &[f64],
        cfg: &Config,
    ) -> (Decision, Option<Evidence>, Option<ExactEvidence>) {
        match self.exact {
            Some((g, b, t)) => match exact_statistic(samples) {
                Some(v) => {
                    let (d, ev) = decide_exact(g, b, v, t);
                    (d, None, Some(ev))
                }
                None => (Decision::Unknown, None, None),
            },
            None => {
                let (d, ev) = decide(&self.good, &self.bad, samples, &cfg.policy);
                (d, Some(ev), None)
            }
        }
    }
}

/// A revision's record, with its summary of `samples` filled in.
fn tested(index: usize, rev: &Rev, runs: usize, samples: Vec<f64>, cfg: &Config) -> Tested {
    let kept = cfg.policy.kept(&samples);
    Tested {
        index,
        rev: rev.clone(),
        runs,
        set_aside: cfg.policy.set_aside(&samples),
        mean: mean(&kept),
        ci: ci95(&kept),
        samples,
        decision: Decision::Unknown,
        evidence: None,
        exact: None,
        note: None,
    }
}

/// Measure and decide one probed revision: `min_runs` runs, more while undecided (one in
/// exact modes); a skip or crash leaves it unknown with the reason.
fn probe(
    m: &mut dyn Measure,
    rev: &Rev,
    index: usize,
    ends: &Endpoints,
    cfg: &Config,
) -> Result<Tested, SearchError> {
    let one_run = cfg.exact || ends.exact.is_some();
    let first = if one_run { 1 } else { cfg.min_runs.max(1) };
    let (mut samples, mut runs, mut note) = (Vec::new(), 0, None);
    let mut verdict = (Decision::Unknown, None, None);
    let mut want = first;
    loop {
        match collect(m, rev, want - runs) {
            Ok(s) => {
                samples.extend(s);
                runs = want;
            }
            Err(MeasureError::Skip(reason) | MeasureError::Crashed(reason)) => {
                note = Some(reason);
                break;
            }
            Err(MeasureError::Abort(r)) => return Err(SearchError::Aborted(r)),
        }
        verdict = ends.decide(&samples, cfg);
        if verdict.0 != Decision::Unknown || one_run || runs >= cfg.max_runs.max(first) {
            break;
        }
        want = runs + 1;
    }
    let mut t = tested(index, rev, runs, samples, cfg);
    (t.decision, t.evidence, t.exact) = verdict;
    if t.decision == Decision::Unknown && note.is_none() {
        note = Some(format!("still unknown after {runs} runs: skipped"));
    }
    t.note = note;
    Ok(t)
}

/// Bisect `revs` (`revs[0]` good, last bad) with `m`.
pub fn bisect(revs: &[Rev], m: &mut dyn Measure, cfg: &Config) -> Result<Report, SearchError> {
    if revs.len() < 2 {
        return Err(SearchError::TooFew);
    }
    let endpoint_runs = if cfg.exact || cfg.exact_threshold_pct.is_some() {
        1
    } else {
        cfg.endpoint_runs.max(2)
    };
    let last = revs.len() - 1;
    let good = measure_endpoint(m, &revs[0], "good", endpoint_runs, cfg)?;
    let bad = measure_endpoint(m, &revs[last], "bad", endpoint_runs, cfg)?;
    let ends = match cfg.exact_threshold_pct {
        Some(t) => {
            let (g, b) = exact_endpoints(&good, &bad, t, cfg)?;
            Endpoints {
                good,
                bad,
                exact: Some((g, b, t)),
            }
        }
        None => {
            check_endpoints(&good, &bad, cfg)?;
            Endpoints {
                good,
                bad,
                exact: None,
            }
        }
    };
    let mut tested = Vec::new();
    for (i, samples, d) in [
        (0, &ends.good, Decision::Good),
        (last, &ends.bad, Decision::Bad),
    ] {
        let mut t = self::tested(i, &revs[i], endpoint_runs, samples.clone(), cfg);
        t.decision = d;
        t.exact = ends.decide(samples, cfg).2;
        m.event(&SearchEvent::Decided(&t));
        tested.push(t);
    }
    let (mut lo, mut hi) = (0usize, last);
    let mut skipped: Vec<usize> = Vec::new();
    loop {
        let mid = (lo + hi) / 2;
        let Some(pick) = (lo + 1..hi)
            .filter(|i| !skipped.contains(i))
            .min_by_key(|&i| (i as i64 - mid as i64).abs())
        else {
            break;
        };
        let rev = &revs[pick];
        let open = (lo + 1..hi).filter(|i| !skipped.contains(i)).count() - 1;
        let left = open / 2;
        m.event(&SearchEvent::Probe {
            rev,
            left,
            steps: usize::BITS - left.leading_zeros(),
        });
        let t = probe(m, rev, pick, &ends, cfg)?;
        match t.decision {
            Decision::Good => lo = pick,
            Decision::Bad => hi = pick,
            Decision::Unknown => skipped.push(pick),
        }
        m.event(&SearchEvent::Decided(&t));
        tested.push(t);
    }
    let open: Vec<usize> = (lo + 1..hi).filter(|i| skipped.contains(i)).collect();
    let outcome = if open.is_empty() {
        Outcome::Found { index: hi }
    } else {
        let mut c = open;
        c.push(hi);
        Outcome::Ambiguous { candidates: c }
    };
    Ok(Report {
        revs: revs.to_vec(),
        tested,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mock history: the metric steps from 100 to `100 * (1 + step)` at `bad_from`, with
    /// deterministic pseudo-noise of relative size `noise`.
    struct Mock {
        bad_from: usize,
        step: f64,
        noise: f64,
        calls: Vec<usize>,
        state: u64,
        broken: Vec<usize>,
        /// (revision, crashes left before it measures).
        crashing: Vec<(usize, usize)>,
        retries_told: Vec<(usize, usize)>,
    }

    impl Measure for Mock {
        fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
            let i: usize = rev.hash.parse().unwrap();
            self.calls.push(i);
            if self.broken.contains(&i) {
                return Err(MeasureError::Skip("build failed".into()));
            }
            if let Some((_, left)) = self.crashing.iter_mut().find(|(r, n)| *r == i && *n > 0) {
                *left -= 1;
                return Err(MeasureError::Crashed("the guest kernel panicked".into()));
            }
            let level = if i >= self.bad_from {
                100.0 * (1.0 + self.step)
            } else {
                100.0
            };
            self.state = self
                .state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (self.state >> 11) as f64 / (1u64 << 53) as f64;
            Ok(vec![level * (1.0 + self.noise * (2.0 * u - 1.0))])
        }

        fn event(&mut self, event: &SearchEvent<'_>) {
            if let SearchEvent::Retry { rev, attempt, .. } = event {
                self.retries_told
                    .push((rev.hash.parse().unwrap(), *attempt));
            }
        }
    }

    fn revs(n: usize) -> Vec<Rev> {
        (0..n)
            .map(|i| Rev {
                hash: i.to_string(),
                subject: format!("commit {i}"),
            })
            .collect()
    }

    fn mock(bad_from: usize, step: f64, noise: f64) -> Mock {
        Mock {
            bad_from,
            step,
            noise,
            calls: vec![],
            state: 42,
            broken: vec![],
            crashing: vec![],
            retries_told: vec![],
        }
    }

    fn exact(threshold: f64) -> Config {
        Config {
            exact_threshold_pct: Some(threshold),
            unit: SampleUnit::Instructions,
            ..Config::default()
        }
    }

    #[test]
    fn exact_counts_take_one_run_per_revision_and_find_the_step() {
        // Counts a few hundred instructions apart within a kernel (0.02% noise), 29% between.
        let mut m = mock(9, 0.29, 0.0002);
        let r = bisect(&revs(17), &mut m, &exact(0.5)).unwrap();
        assert!(
            matches!(r.outcome, Outcome::Found { index: 9 }),
            "{:?}",
            r.outcome
        );
        assert!(r.tested.iter().all(|t| t.runs == 1 && t.exact.is_some()));
        let mut seen = m.calls.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), m.calls.len(), "measured twice: {:?}", m.calls);
        // A speed-up is a change too: bisected the same way.
        let mut m = mock(4, -0.2, 0.0);
        let r = bisect(&revs(10), &mut m, &exact(0.5)).unwrap();
        assert!(
            matches!(r.outcome, Outcome::Found { index: 4 }),
            "{:?}",
            r.outcome
        );
    }

    #[test]
    fn exact_endpoints_within_the_threshold_are_refused_with_both_counts() {
        let mut m = mock(5, 0.003, 0.0);
        let e = bisect(&revs(10), &mut m, &exact(0.5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "good 100 instr/fork and bad 100 instr/fork differ by +0.30%, within the exact threshold 0.5%: nothing to bisect"
        );
        assert_eq!(m.calls, [0, 9], "only the endpoints were measured");
        // --threshold raises the bar further.
        let mut m = mock(5, 0.03, 0.0);
        let cfg = Config {
            threshold_pct: Some(5.0),
            ..exact(0.5)
        };
        let e = bisect(&revs(10), &mut m, &cfg).unwrap_err();
        assert!(
            e.to_string().contains("within the exact threshold 5%"),
            "{e}"
        );
    }

    #[test]
    fn a_crashing_endpoint_is_booted_again_a_crashing_probe_is_skipped() {
        let mut m = mock(6, 0.3, 0.0);
        m.crashing = vec![(0, 2), (9, 1), (4, 1)];
        let r = bisect(&revs(10), &mut m, &exact(0.5)).unwrap();
        assert_eq!(m.retries_told, [(0, 2), (0, 3), (9, 2)]);
        let probe = r.tested.iter().find(|t| t.index == 4).unwrap();
        assert_eq!(probe.decision, Decision::Unknown);
        assert_eq!(probe.note.as_deref(), Some("the guest kernel panicked"));
        assert!(
            matches!(r.outcome, Outcome::Found { index: 6 }),
            "{:?}",
            r.outcome
        );
        // An endpoint that crashes on every boot ends the search, saying how often.
        let mut m = mock(6, 0.3, 0.0);
        m.crashing = vec![(9, 100)];
        let e = bisect(&revs(10), &mut m, &exact(0.5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot measure the bad endpoint 9: the guest kernel panicked (crashed 4 times in a row)"
        );
        assert_eq!(m.calls.iter().filter(|&&c| c == 9).count(), 4);
    }

    #[test]
    fn finds_a_clear_step() {
        let mut m = mock(11, 0.10, 0.02);
        let cfg = Config {
            endpoint_runs: 8,
            ..Config::default()
        };
        let r = bisect(&revs(17), &mut m, &cfg).unwrap();
        assert!(
            matches!(r.outcome, Outcome::Found { index: 11 }),
            "{:?}",
            r.outcome
        );
    }

    #[test]
    fn exact_metrics_take_one_run_per_revision() {
        let mut m = mock(5, 1.0, 0.0);
        let cfg = Config {
            exact: true,
            ..Config::default()
        };
        let r = bisect(&revs(17), &mut m, &cfg).unwrap();
        assert!(matches!(r.outcome, Outcome::Found { index: 5 }));
        assert!(r.tested.iter().all(|t| t.runs == 1));
        let mut seen = m.calls.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(
            seen.len(),
            m.calls.len(),
            "a revision was measured twice: {:?}",
            m.calls
        );
    }

    #[test]
    fn skipped_revisions_make_the_answer_ambiguous_not_wrong() {
        let mut m = mock(8, 0.0, 0.0);
        m.step = 1.0;
        m.broken = vec![7];
        let cfg = Config {
            exact: true,
            ..Config::default()
        };
        let r = bisect(&revs(12), &mut m, &cfg).unwrap();
        match r.outcome {
            Outcome::Ambiguous { candidates } => assert_eq!(candidates, vec![7, 8]),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn all_zero_endpoints_are_refused_without_nan() {
        let mut zero = mock(0, -1.0, 0.0);
        let e = bisect(&revs(6), &mut zero, &Config::default()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("do not differ"), "{text}");
        assert!(!text.contains("NaN"), "{text}");
        assert!(matches!(e, SearchError::NoDifference { change_pct, .. } if change_pct == 0.0));
        // From zero to something: a change past any threshold, not NaN.
        assert_eq!(change_pct(0.0, 3.0), f64::INFINITY);
        assert_eq!(change_pct(100.0, 110.0).round(), 10.0);
    }

    #[test]
    fn refuses_endpoints_that_do_not_differ_or_point_the_wrong_way() {
        // Identical endpoints.
        let mut m = mock(100, 0.0, 0.0);
        let e = bisect(&revs(10), &mut m, &Config::default()).unwrap_err();
        assert!(
            matches!(e, SearchError::NoDifference { p, .. } if p == 1.0),
            "{e}"
        );
        // A real but small change below the threshold.
        let mut m = mock(5, 0.01, 0.001);
        let cfg = Config {
            threshold_pct: Some(5.0),
            ..Config::default()
        };
        let e = bisect(&revs(10), &mut m, &cfg).unwrap_err();
        assert!(e.to_string().contains("below the 5% threshold"), "{e}");
        let mut m = mock(5, -0.3, 0.01);
        let e = bisect(&revs(10), &mut m, &Config::default()).unwrap_err();
        assert!(matches!(e, SearchError::WrongDirection { .. }), "{e}");
        let mut m = mock(5, -0.3, 0.01);
        let cfg = Config {
            higher_is_better: true,
            ..Config::default()
        };
        assert!(bisect(&revs(10), &mut m, &cfg).is_ok());
    }
}
