//! Statistics over run means. The unit of measurement is one run (the mean of its forks), not
//! one fork: forks within a run are not independent. Relative figures follow the thread:
//! `mean_rel = mean / mean_baseline - 1`, `std_rel = std / mean_baseline` (sample std, n-1).
//! Pure functions, no I/O.

/// Mean and sample standard deviation of a set of run means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n-1); 0 when n < 2.
    pub std: f64,
}

impl Summary {
    /// Summarise `xs`; None when empty.
    pub fn of(xs: &[f64]) -> Option<Summary> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let std = if n < 2 {
            0.0
        } else {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Some(Summary { n, mean, std })
    }

    /// Coefficient of variation.
    pub fn cv(&self) -> f64 {
        self.std / self.mean
    }
}

/// A variant's summary relative to the baseline's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relative {
    pub mean_rel: f64,
    pub std_rel: f64,
}

/// `mean_rel` and `std_rel` of `s` against `baseline`.
pub fn relative(s: &Summary, baseline: &Summary) -> Relative {
    Relative {
        mean_rel: s.mean / baseline.mean - 1.0,
        std_rel: s.std / baseline.mean,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_hand_computation() {
        // mean 5, deviations -3,-1,1,3 → sum of squares 20, /3 → std sqrt(20/3).
        let s = Summary::of(&[2.0, 4.0, 6.0, 8.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        assert!((s.std - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Summary::of(&[3.0]).unwrap().std, 0.0);
        assert!(Summary::of(&[]).is_none());
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
}
