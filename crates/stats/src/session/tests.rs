//! The session model checked by simulation (seeded, so every run sees the same draws) and by
//! properties: A/A comparisons of sessions drawn with a between-session offset stay near the
//! nominal false-positive rate, and a 20% shift is still found.

use super::*;
use proptest::prelude::*;

/// SplitMix64 with Box–Muller normals: enough randomness for a simulation, no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// How sessions are drawn: a session offset of sd `between`, runs of sd `within` around it
/// (both relative, on the log scale), `runs` runs per session.
#[derive(Clone, Copy)]
struct World {
    between: f64,
    within: f64,
    runs: usize,
}

impl World {
    /// The summary of one session's run means, the variant's true mean being `mu`.
    fn session(&self, rng: &mut Rng, mu: f64) -> Summary {
        let offset = self.between * rng.normal();
        let xs: Vec<f64> = (0..self.runs)
            .map(|_| mu * (offset + self.within * rng.normal()).exp())
            .collect();
        Summary::of(&xs).unwrap()
    }

    fn noise(&self, rng: &mut Rng, sessions: usize) -> Between {
        let s: Vec<Summary> = (0..sessions).map(|_| self.session(rng, 1e7)).collect();
        estimate(&s).unwrap()
    }
}

/// Rates over `trials` comparisons of B (true mean x `shift`) against A, each side a fresh
/// session, the noise measured from `sessions` other sessions:
/// `(faster or slower, slower, p < alpha, today's within-file rule said faster or slower)`.
fn rates(w: World, sessions: usize, shift: f64, trials: usize, seed: u64) -> [f64; 4] {
    let mut rng = Rng(seed);
    let p = Policy::default();
    let mut counts = [0usize; 4];
    for _ in 0..trials {
        let noise = w.noise(&mut rng, sessions);
        let a = w.session(&mut rng, 1e7);
        let b = w.session(&mut rng, 1e7 * shift);
        let c = compare(&a, &b, &noise, &p);
        let naive = crate::compare(&a, &b, &p);
        let called = |v: Verdict| matches!(v, Verdict::Faster | Verdict::Slower);
        counts[0] += usize::from(called(c.verdict));
        counts[1] += usize::from(c.verdict == Verdict::Slower);
        counts[2] += usize::from(c.welch.is_some_and(|t| t.p < p.alpha));
        counts[3] += usize::from(called(naive.verdict));
    }
    counts.map(|c| c as f64 / trials as f64)
}

/// The worlds of the simulation: this VM's pte-order9 as measured (session offsets of a few
/// percent, runs of ~6%, 8 runs), a world of pure session offsets, one without any.
const WORLDS: [World; 3] = [
    World {
        between: 0.05,
        within: 0.06,
        runs: 8,
    },
    World {
        between: 0.10,
        within: 0.01,
        runs: 8,
    },
    World {
        between: 0.0,
        within: 0.05,
        runs: 8,
    },
];

#[test]
fn aa_comparisons_stay_near_the_nominal_false_positive_rate() {
    for (i, w) in WORLDS.iter().enumerate() {
        for sessions in [3, 5] {
            let [called, _, sig, naive] = rates(*w, sessions, 1.0, 4000, 11 + i as u64);
            eprintln!(
                "A/A σ_b {} σ_w {} {} runs, {sessions} noise sessions: faster/slower {:.2}%, \
                 p<0.05 {:.2}%, today's rule {:.1}%",
                w.between,
                w.within,
                w.runs,
                called * 100.0,
                sig * 100.0,
                naive * 100.0
            );
            // The test itself holds its level (4000 trials: ±0.7% at 2 sd around 5%) ...
            assert!(sig < 0.065, "p < 0.05 in {:.2}% of A/A trials", sig * 100.0);
            // ... and the verdict, which also wants the interval beyond the noise threshold,
            // is rarer still.
            assert!(called <= sig, "{called} > {sig}");
            if w.between >= 0.05 {
                // Today's rule reads session offsets as effects.
                assert!(naive > 0.3, "today's rule: {:.1}%", naive * 100.0);
            }
        }
    }
}

#[test]
fn a_twenty_percent_shift_is_found_with_two_percent_session_noise() {
    let w = World {
        between: 0.02,
        within: 0.03,
        runs: 8,
    };
    for (sessions, want) in [(3, 0.7), (5, 0.9), (8, 0.95)] {
        let [called, slower, _, _] = rates(w, sessions, 1.2, 2000, 5);
        eprintln!(
            "+20%, σ_b 0.02 σ_w 0.03 8 runs, {sessions} noise sessions: slower in {:.1}%",
            slower * 100.0
        );
        assert_eq!(called, slower, "a slowdown is never called faster");
        assert!(slower >= want, "{sessions} sessions: slower in {slower}");
    }
}

fn s(mean: f64, std: f64, n: usize) -> Summary {
    Summary { n, mean, std }
}

#[test]
fn measured_two_percent_noise_and_a_twenty_percent_change_is_slower() {
    // Three sessions 2% apart (sd of the log means 0.02), 8 runs of 1% each.
    let at = |x: f64| s(100.0 * x.exp(), 1.0 * x.exp(), 8);
    let noise = estimate(&[at(-0.02), at(0.0), at(0.02)]).unwrap();
    assert!((noise.spread - 0.02).abs() < 1e-12, "{noise:?}");
    assert_eq!((noise.sessions, noise.df), (3, 2.0));
    assert!((noise.within - 0.0001 / 8.0).abs() < 1e-9, "{noise:?}");
    let p = Policy::default();
    let c = compare(&s(100.0, 1.0, 8), &s(120.0, 1.2, 8), &noise, &p);
    assert_eq!(c.verdict, Verdict::Slower, "{c:?}");
    // V = 2·0.02² (the sides' runs add nothing beyond the sessions'), t(0.975, 2) = 4.3027.
    let ci = c.ci.unwrap();
    let half = 4.302_652_729_7 * (2.0f64 * 0.0004).sqrt();
    assert!((ci.lo - 1.2 * (-half).exp()).abs() < 1e-6, "{ci:?}");
    assert!((c.welch.unwrap().df - 2.0).abs() < 1e-9);
    // The same +2% is inside the noise: not a verdict, although today's rule calls it slower.
    let small = compare(&s(100.0, 0.2, 8), &s(102.0, 0.2, 8), &noise, &p);
    assert_eq!(small.verdict, Verdict::Unknown);
    assert_eq!(
        crate::compare(&s(100.0, 0.2, 8), &s(102.0, 0.2, 8), &p).verdict,
        Verdict::Slower
    );
}

#[test]
fn estimates_need_two_usable_sessions() {
    assert_eq!(estimate(&[s(1.0, 0.1, 8)]), None);
    assert_eq!(estimate(&[s(1.0, 0.1, 8), s(1.0, 0.0, 1)]), None);
    assert_eq!(estimate(&[s(1.0, 0.1, 8), s(-1.0, 0.1, 8)]), None);
    let e = estimate(&[s(1.0, 0.0, 2), s(1.0, 0.0, 2)]).unwrap();
    assert_eq!((e.spread, e.within, e.between_sd), (0.0, 0.0, 0.0));
    // Identical sessions and sides without spread: nothing to test with, no verdict.
    let c = compare(&s(1.0, 0.0, 2), &s(2.0, 0.0, 2), &e, &Policy::default());
    assert_eq!(c.verdict, Verdict::Unknown);
    // A side of one run has no within term to judge: no verdict.
    let noise = estimate(&[s(1.0, 0.01, 8), s(1.01, 0.01, 8)]).unwrap();
    let c = compare(
        &s(1.0, 0.0, 1),
        &s(2.0, 0.01, 8),
        &noise,
        &Policy::default(),
    );
    assert_eq!((c.verdict, c.ci), (Verdict::Unknown, None));
}

fn summary() -> impl Strategy<Value = Summary> {
    (1.0f64..1e9, 0.0f64..0.3, 2usize..20).prop_map(|(mean, cv, n)| s(mean, mean * cv, n))
}

fn noise() -> impl Strategy<Value = Between> {
    prop::collection::vec((0.5f64..2.0, 0.0f64..0.2, 2usize..12), 2..8).prop_map(|xs| {
        let ss: Vec<Summary> = xs.iter().map(|&(m, cv, n)| s(m, m * cv, n)).collect();
        estimate(&ss).unwrap()
    })
}

proptest! {
    /// The session term only ever widens: the variance is at least what the sides' own runs
    /// give, as in a within-file comparison.
    #[test]
    fn never_narrower_than_the_sides_own_runs(a in summary(), b in summary(), n in noise()) {
        let (v, df) = variance(&a, &n, &b, &n).unwrap();
        let (_, wa) = log_terms(&a).unwrap();
        let (_, wb) = log_terms(&b).unwrap();
        prop_assert!(v >= wa + wb - 1e-15, "{v} < {wa} + {wb}");
        prop_assert!(df > 0.0);
        // One variant's noise on both sides is the single-noise comparison.
        let p = Policy::default();
        prop_assert_eq!(compare(&a, &b, &n, &p), compare_each(&a, &n, &b, &n, &p));
    }

    /// A side against itself is never faster or slower, however small the noise.
    #[test]
    fn a_side_against_itself_has_no_verdict(a in summary(), n in noise()) {
        let c = compare(&a, &a, &n, &Policy::default());
        prop_assert!(!matches!(c.verdict, Verdict::Faster | Verdict::Slower));
    }

    /// Swapping the sides swaps faster and slower; scaling both leaves everything else.
    #[test]
    fn symmetric_and_scale_free(a in summary(), b in summary(), n in noise(), k in 0.01f64..100.0) {
        let p = Policy::default();
        let ab = compare(&a, &b, &n, &p).verdict;
        let ba = compare(&b, &a, &n, &p).verdict;
        let flip = |v: Verdict| match v {
            Verdict::Faster => Verdict::Slower,
            Verdict::Slower => Verdict::Faster,
            v => v,
        };
        prop_assert_eq!(ab, flip(ba));
        let scale = |x: &Summary| s(x.mean * k, x.std * k, x.n);
        let scaled = compare(&scale(&a), &scale(&b), &n, &p);
        let plain = compare(&a, &b, &n, &p);
        prop_assert_eq!(scaled.verdict, plain.verdict);
        let (pp, sp) = (plain.welch.map(|w| w.p), scaled.welch.map(|w| w.p));
        let same_p = match (pp, sp) {
            (Some(x), Some(y)) => (x - y).abs() < 1e-9,
            (x, y) => x == y,
        };
        prop_assert!(same_p, "{pp:?} vs {sp:?}");
    }

    // No property "more session noise never lowers p": with Satterthwaite's degrees of
    // freedom a larger session term can raise the df faster than it widens the interval, and
    // then p falls (found by proptest: p 0.1443 -> 0.1426 with the spread x1.5; 0.0038 ->
    // 0.0015 for a huge change). A conservative df (the smallest of the terms') would make it
    // hold; see the closing note of 2026-12-05.
}
