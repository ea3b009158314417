//! Non-negative least squares (Lawson & Hanson, "Solving Least Squares Problems", 1974, ch. 23:
//! the active-set algorithm NNLS), plus the small dense linear algebra it needs: a Householder-QR
//! least-squares solve and a numerical rank.
//!
//! Matrices are dense row-major `&[Vec<f64>]` (m rows of n columns); the problems here are tiny
//! (a handful of layouts × a handful of cost features).

/// Result of [`nnls`].
#[derive(Debug, Clone, PartialEq)]
pub struct NnlsSolution {
    /// The minimiser, every entry ≥ 0.
    pub x: Vec<f64>,
    /// Euclidean norm of the residual `A x − b`.
    pub residual_norm: f64,
    /// Outer iterations used.
    pub iterations: usize,
}

fn dims(a: &[Vec<f64>]) -> (usize, usize) {
    (a.len(), a.first().map_or(0, Vec::len))
}

fn matvec(a: &[Vec<f64>], x: &[f64]) -> Vec<f64> {
    a.iter()
        .map(|row| row.iter().zip(x).map(|(p, q)| p * q).sum())
        .collect()
}

/// Residual `A x − b`.
pub fn residual(a: &[Vec<f64>], x: &[f64], b: &[f64]) -> Vec<f64> {
    matvec(a, x).iter().zip(b).map(|(p, q)| p - q).collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Least squares `min ‖A[:, cols] y − b‖` by Householder QR. Columns whose pivot vanishes
/// (linearly dependent on earlier ones) get coefficient 0, so the result is a basic solution.
/// Returns one coefficient per entry of `cols`.
pub fn lstsq_cols(a: &[Vec<f64>], b: &[f64], cols: &[usize]) -> Vec<f64> {
    let m = a.len();
    let k = cols.len();
    // Working copy: column-major R (m × k) and the right-hand side.
    let mut r: Vec<Vec<f64>> = cols
        .iter()
        .map(|&c| a.iter().map(|row| row[c]).collect())
        .collect();
    let mut qb = b.to_vec();
    let scale: f64 = r.iter().map(|c| norm(c)).fold(0.0, f64::max).max(1e-300);
    let tol = 1e-12 * scale * (m.max(k) as f64);
    let mut dependent = vec![false; k];
    let mut row = 0; // next pivot row
    let mut pivot_row = vec![usize::MAX; k];
    for j in 0..k {
        if row >= m {
            dependent[j] = true;
            continue;
        }
        let alpha = norm(&r[j][row..]);
        if alpha <= tol {
            dependent[j] = true;
            continue;
        }
        let sign = if r[j][row] >= 0.0 { 1.0 } else { -1.0 };
        let mut v: Vec<f64> = r[j][row..].to_vec();
        v[0] += sign * alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        let reflect = |col: &mut [f64]| {
            let dot: f64 = v.iter().zip(col.iter()).map(|(p, q)| p * q).sum();
            let f = 2.0 * dot / vnorm2;
            for (c, vi) in col.iter_mut().zip(&v) {
                *c -= f * vi;
            }
        };
        for col in r.iter_mut().skip(j) {
            reflect(&mut col[row..]);
        }
        reflect(&mut qb[row..]);
        pivot_row[j] = row;
        row += 1;
    }
    // Back substitution over the independent columns.
    let mut y = vec![0.0; k];
    for j in (0..k).rev() {
        if dependent[j] {
            continue;
        }
        let pr = pivot_row[j];
        let mut s = qb[pr];
        for (jj, yj) in y.iter().enumerate().skip(j + 1) {
            if !dependent[jj] {
                s -= r[jj][pr] * yj;
            }
        }
        y[j] = s / r[j][pr];
    }
    y
}

/// Numerical rank of `A` after scaling every column to unit norm (so counters of very different
/// magnitudes compare fairly); zero columns do not count.
pub fn rank(a: &[Vec<f64>]) -> usize {
    let (m, n) = dims(a);
    let mut cols: Vec<Vec<f64>> = (0..n)
        .map(|c| a.iter().map(|row| row[c]).collect::<Vec<f64>>())
        .filter_map(|c| {
            let nn = norm(&c);
            (nn > 0.0).then(|| c.iter().map(|x| x / nn).collect())
        })
        .collect();
    // Modified Gram-Schmidt with re-orthogonalisation.
    let mut basis: Vec<Vec<f64>> = Vec::new();
    for c in cols.iter_mut() {
        for _ in 0..2 {
            for q in &basis {
                let d: f64 = q.iter().zip(c.iter()).map(|(p, r)| p * r).sum();
                for (ci, qi) in c.iter_mut().zip(q) {
                    *ci -= d * qi;
                }
            }
        }
        let nn = norm(c);
        if nn > 1e-9 * (m.max(1) as f64).sqrt() {
            basis.push(c.iter().map(|x| x / nn).collect());
        }
    }
    basis.len()
}

/// Whether `x` lies in the row span of `rows` (adding it as a row leaves the rank as it was):
/// a least-squares fit on `rows` then determines the prediction `x · cost`.
pub fn in_row_span(rows: &[Vec<f64>], x: &[f64]) -> bool {
    let r = rank(rows);
    let mut m = rows.to_vec();
    m.push(x.to_vec());
    rank(&m) == r
}

/// Lawson–Hanson NNLS: `min ‖A x − b‖₂` subject to `x ≥ 0`.
///
/// Panics if `b.len()` differs from the number of rows of `A` or rows have unequal lengths.
pub fn nnls(a: &[Vec<f64>], b: &[f64]) -> NnlsSolution {
    let (m, n) = dims(a);
    assert_eq!(m, b.len(), "nnls: A has {m} rows but b has {}", b.len());
    assert!(a.iter().all(|r| r.len() == n), "nnls: ragged matrix");
    let mut x = vec![0.0; n];
    let mut passive = vec![false; n];
    let scale = a
        .iter()
        .flatten()
        .fold(0.0f64, |acc, v| acc.max(v.abs()))
        .max(1e-300)
        * norm(b).max(1e-300);
    let tol = 1e-12 * scale * (m.max(n) as f64);
    let gradient = |x: &[f64]| -> Vec<f64> {
        let r = residual(a, x, b); // A x − b
        (0..n)
            .map(|j| -a.iter().zip(&r).map(|(row, ri)| row[j] * ri).sum::<f64>())
            .collect()
    };
    let mut iterations = 0;
    let max_outer = 3 * n + 10;
    while iterations < max_outer {
        let w = gradient(&x);
        let cand = (0..n)
            .filter(|&j| !passive[j] && w[j] > tol)
            .max_by(|&i, &j| w[i].total_cmp(&w[j]));
        let Some(t) = cand else { break };
        iterations += 1;
        passive[t] = true;
        loop {
            let cols: Vec<usize> = (0..n).filter(|&j| passive[j]).collect();
            let y = lstsq_cols(a, b, &cols);
            let mut s = vec![0.0; n];
            for (&c, &v) in cols.iter().zip(&y) {
                s[c] = v;
            }
            if cols.iter().all(|&j| s[j] > 0.0) {
                x = s;
                break;
            }
            // Step from x towards s as far as feasibility allows.
            let alpha = cols
                .iter()
                .filter(|&&j| s[j] <= 0.0)
                .map(|&j| x[j] / (x[j] - s[j]))
                .fold(f64::INFINITY, f64::min);
            for j in 0..n {
                x[j] += alpha * (s[j] - x[j]);
            }
            let mut moved = false;
            for j in cols {
                if x[j] <= 1e-15 * (1.0 + x.iter().fold(0.0f64, |a, v| a.max(v.abs()))) {
                    x[j] = 0.0;
                    passive[j] = false;
                    moved = true;
                }
            }
            if !moved {
                // Numerical corner: force the smallest coefficient out to guarantee progress.
                if let Some(j) = (0..n)
                    .filter(|&j| passive[j])
                    .min_by(|&i, &j| x[i].total_cmp(&x[j]))
                {
                    x[j] = 0.0;
                    passive[j] = false;
                }
            }
            if !passive.iter().any(|&p| p) {
                break;
            }
        }
    }
    let residual_norm = norm(&residual(a, &x, b));
    NnlsSolution {
        x,
        residual_norm,
        iterations,
    }
}

/// NNLS with a ridge pull towards `prior`: `min ‖A x − b‖² + λ‖x − prior‖²`, `x ≥ 0`, solved as
/// plain NNLS on the stacked system `[A; √λ I] x = [b; √λ prior]`.
pub fn nnls_ridge(a: &[Vec<f64>], b: &[f64], lambda: f64, prior: &[f64]) -> NnlsSolution {
    let (_, n) = dims(a);
    assert_eq!(prior.len(), n, "nnls_ridge: prior has the wrong length");
    let s = lambda.max(0.0).sqrt();
    let mut aa = a.to_vec();
    let mut bb = b.to_vec();
    for j in 0..n {
        let mut row = vec![0.0; n];
        row[j] = s;
        aa.push(row);
        bb.push(s * prior[j]);
    }
    nnls(&aa, &bb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], eps: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(p, q)| (p - q).abs() <= eps)
    }

    #[test]
    fn identity_with_positive_solution() {
        let a = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let s = nnls(&a, &[1.0, 2.0]);
        assert!(close(&s.x, &[1.0, 2.0], 1e-12), "{s:?}");
        assert!(s.residual_norm < 1e-12);
    }

    #[test]
    fn identity_clamps_negative_component() {
        let a = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let s = nnls(&a, &[1.0, -2.0]);
        assert!(close(&s.x, &[1.0, 0.0], 1e-12), "{s:?}");
        assert!((s.residual_norm - 2.0).abs() < 1e-12);
    }

    #[test]
    fn overdetermined_hand_solved() {
        // Normal equations [[2,1],[1,2]] x = [4,4] → x = (4/3, 4/3).
        let a = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let s = nnls(&a, &[1.0, 1.0, 3.0]);
        assert!(close(&s.x, &[4.0 / 3.0, 4.0 / 3.0], 1e-12), "{s:?}");
        // Residual (1/3, 1/3, −1/3).
        assert!((s.residual_norm - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn negative_slope_is_clamped_to_the_mean() {
        // Unconstrained: intercept 4, slope −1. With x ≥ 0 the slope is 0 and the intercept is
        // the mean of b (2); KKT: gradient of the slope = [1,2,3]·[1,0,−1] = −2 < 0.
        let a = vec![vec![1.0, 1.0], vec![1.0, 2.0], vec![1.0, 3.0]];
        let s = nnls(&a, &[3.0, 2.0, 1.0]);
        assert!(close(&s.x, &[2.0, 0.0], 1e-12), "{s:?}");
    }

    #[test]
    fn kkt_holds_on_a_mixed_problem() {
        // 4 × 3: the unconstrained solution has one negative entry.
        let a = vec![
            vec![1.0, 2.0, 0.5],
            vec![1.0, 0.0, 1.0],
            vec![1.0, 1.0, 3.0],
            vec![1.0, 4.0, 0.0],
        ];
        let b = [5.0, 1.0, 2.0, 9.0];
        let s = nnls(&a, &b);
        let r = residual(&a, &s.x, &b);
        for j in 0..3 {
            let g: f64 = a.iter().zip(&r).map(|(row, ri)| row[j] * ri).sum();
            assert!(s.x[j] >= 0.0);
            if s.x[j] > 0.0 {
                assert!(g.abs() < 1e-9, "active gradient {g}");
            } else {
                assert!(g >= -1e-9, "inactive gradient {g}");
            }
        }
    }

    #[test]
    fn zero_rhs_gives_zero() {
        let a = vec![vec![1.0, 2.0], vec![3.0, 4.0]];
        let s = nnls(&a, &[0.0, 0.0]);
        assert_eq!(s.x, vec![0.0, 0.0]);
        assert_eq!(s.iterations, 0);
    }

    #[test]
    fn duplicate_columns_still_fit_exactly() {
        let a = vec![vec![1.0, 1.0], vec![2.0, 2.0]];
        let s = nnls(&a, &[1.0, 2.0]);
        assert!((s.x[0] + s.x[1] - 1.0).abs() < 1e-12, "{s:?}");
        assert!(s.x.iter().all(|&v| v >= 0.0));
        assert!(s.residual_norm < 1e-12);
    }

    #[test]
    fn very_different_column_scales() {
        // Counts of 1 vs 262144 per fork, costs of 1e5 ns and 50 ns.
        let a = vec![vec![1.0, 0.0], vec![1.0, 262_144.0], vec![1.0, 131_072.0]];
        let truth = [1e5, 50.0];
        let b: Vec<f64> = a
            .iter()
            .map(|r| r[0] * truth[0] + r[1] * truth[1])
            .collect();
        let s = nnls(&a, &b);
        assert!(
            (s.x[0] - 1e5).abs() < 1e-4 && (s.x[1] - 50.0).abs() < 1e-9,
            "{s:?}"
        );
    }

    #[test]
    fn ridge_pulls_an_unidentified_direction_to_the_prior() {
        // One equation x0 + x1 = 2: the prior (1.5, 0.5) satisfies it, so ridge picks it.
        let a = vec![vec![1.0, 1.0]];
        let s = nnls_ridge(&a, &[2.0], 1e-6, &[1.5, 0.5]);
        assert!(close(&s.x, &[1.5, 0.5], 1e-5), "{s:?}");
    }

    #[test]
    fn rank_of_collinear_counters() {
        // Columns: per-fork constant, PTEs, 2×PTEs (collinear), batches.
        let a = vec![
            vec![1.0, 0.0, 0.0, 0.0],
            vec![1.0, 512.0, 1024.0, 512.0],
            vec![1.0, 512.0, 1024.0, 1.0],
        ];
        assert_eq!(rank(&a), 3);
        assert_eq!(rank(&[vec![0.0, 0.0]]), 0);
        assert_eq!(rank(&[vec![1.0, 0.0], vec![0.0, 1.0]]), 2);
    }

    #[test]
    fn a_row_is_in_the_span_only_when_it_adds_no_rank() {
        // Two layouts that only ever carry PTEs and batches together at 512:1.
        let rows = vec![vec![1.0, 512.0, 1.0], vec![1.0, 1024.0, 2.0]];
        assert!(in_row_span(&rows, &[1.0, 768.0, 1.5]));
        assert!(
            !in_row_span(&rows, &[1.0, 512.0, 512.0]),
            "a new batch ratio"
        );
        assert!(!in_row_span(&[], &[1.0, 0.0, 0.0]));
    }

    #[test]
    fn lstsq_basic_solution_for_dependent_columns() {
        let a = vec![vec![1.0, 2.0], vec![1.0, 2.0]];
        let y = lstsq_cols(&a, &[3.0, 3.0], &[0, 1]);
        assert!(close(&y, &[3.0, 0.0], 1e-12), "{y:?}");
    }
}
