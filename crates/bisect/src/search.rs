//! The bisection over an ordered list of revisions `[good, ..., bad]`. Endpoints are measured
//! first and must differ (else the search refuses, with the numbers); each probed revision
//! gets `min_runs` runs, more while undecided up to `max_runs`, and is skipped if still
//! undecided or if it cannot be measured. The result names the first bad revision, or the
//! set it must be in when skipped revisions leave it ambiguous.

use serde::Serialize;
use stats::Summary;

use crate::decide::{Decision, Evidence, Policy, decide, mean, p_endpoints};

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
    /// Why it was skipped, when it was.
    pub note: Option<String>,
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

/// The relative change from `good` to `bad` in percent; from a zero mean it is 0 when bad is
/// zero too, else infinite (any change is past any threshold), never NaN.
fn change_pct(good: f64, bad: f64) -> f64 {
    if good == 0.0 {
        if bad == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(bad)
        }
    } else {
        (bad / good - 1.0) * 100.0
    }
}

/// Bisect `revs` (`revs[0]` good, last bad) with `m`.
pub fn bisect(revs: &[Rev], m: &mut dyn Measure, cfg: &Config) -> Result<Report, SearchError> {
    if revs.len() < 2 {
        return Err(SearchError::TooFew);
    }
    let endpoint_runs = if cfg.exact {
        1
    } else {
        cfg.endpoint_runs.max(2)
    };
    let last = revs.len() - 1;
    let measure_endpoint = |m: &mut dyn Measure, i: usize, which: &'static str| {
        collect(m, &revs[i], endpoint_runs).map_err(|e| match e {
            MeasureError::Skip(reason) => SearchError::Endpoint {
                which,
                rev: revs[i].hash.clone(),
                reason,
            },
            MeasureError::Abort(r) => SearchError::Aborted(r),
        })
    };
    let good = measure_endpoint(m, 0, "good")?;
    let bad = measure_endpoint(m, last, "bad")?;
    if good.is_empty() || bad.is_empty() {
        return Err(SearchError::Endpoint {
            which: if good.is_empty() { "good" } else { "bad" },
            rev: revs[if good.is_empty() { 0 } else { last }].hash.clone(),
            reason: "no samples".into(),
        });
    }
    let (good_kept, bad_kept) = (cfg.policy.kept(&good), cfg.policy.kept(&bad));
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
    let endpoint = |i: usize, samples: &[f64], d: Decision| Tested {
        index: i,
        rev: revs[i].clone(),
        runs: endpoint_runs,
        samples: samples.to_vec(),
        set_aside: cfg.policy.set_aside(samples),
        mean: mean(&cfg.policy.kept(samples)),
        ci: ci95(&cfg.policy.kept(samples)),
        decision: d,
        evidence: None,
        note: None,
    };
    let mut tested = vec![
        endpoint(0, &good, Decision::Good),
        endpoint(last, &bad, Decision::Bad),
    ];
    for t in &tested {
        m.event(&SearchEvent::Decided(t));
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
        let first = if cfg.exact { 1 } else { cfg.min_runs.max(1) };
        let mut t = Tested {
            index: pick,
            rev: rev.clone(),
            runs: 0,
            samples: Vec::new(),
            set_aside: Vec::new(),
            mean: f64::NAN,
            ci: (f64::NAN, f64::NAN),
            decision: Decision::Unknown,
            evidence: None,
            note: None,
        };
        let mut want = first;
        loop {
            match collect(m, rev, want - t.runs) {
                Ok(s) => {
                    t.samples.extend(s);
                    t.runs = want;
                }
                Err(MeasureError::Skip(reason)) => {
                    t.note = Some(reason);
                    break;
                }
                Err(MeasureError::Abort(r)) => return Err(SearchError::Aborted(r)),
            }
            let (d, ev) = decide(&good, &bad, &t.samples, &cfg.policy);
            t.decision = d;
            t.evidence = Some(ev);
            if d != Decision::Unknown || cfg.exact || t.runs >= cfg.max_runs.max(first) {
                break;
            }
            want = t.runs + 1;
        }
        let kept = cfg.policy.kept(&t.samples);
        t.set_aside = cfg.policy.set_aside(&t.samples);
        t.mean = mean(&kept);
        t.ci = ci95(&kept);
        match t.decision {
            Decision::Good => lo = pick,
            Decision::Bad => hi = pick,
            Decision::Unknown => {
                if t.note.is_none() {
                    t.note = Some(format!("still unknown after {} runs: skipped", t.runs));
                }
                skipped.push(pick);
            }
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
    }

    impl Measure for Mock {
        fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
            let i: usize = rev.hash.parse().unwrap();
            self.calls.push(i);
            if self.broken.contains(&i) {
                return Err(MeasureError::Skip("build failed".into()));
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
        }
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
