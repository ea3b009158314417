//! The instruction fit (pure): NNLS of instructions per fork over a feature set's terms, rows
//! weighted by 1/instructions (relative error); each cost's uncertainty from the residual
//! covariance; leave-one-layout-out; a fit of one kernel applied to another's counts.
//!
//! **Uncertainty.** An exact run repeats to 0.01%, so a bootstrap over runs would say the
//! costs are known to that: it is not what limits them. What does is how well the terms
//! explain the layouts, so each cost's sd is the weighted least-squares one on the costs NNLS
//! left free: `s² (AᵀA)⁻¹`, with `s²` the weighted residual sum of squares over its degrees of
//! freedom (rows minus free costs). No sd without a degree of freedom; none for a cost at its
//! bound (0); and none for a cost the rows do not identify (its column in the span of the
//! others': its split with them is arbitrary, only their sum is fitted).

use crate::nnls;
use crate::runner::Ops;

use super::terms::Term;

/// One fit row: a fork's op counts and its instructions.
pub type Row<'a> = (&'a Ops, f64);

/// Costs of a term set fitted to rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Instructions per unit of each term's feature.
    pub cost: Vec<f64>,
    /// Its sd (see the module doc), where one exists.
    pub sd: Vec<Option<f64>>,
    /// Whether the rows tell the term apart from the others.
    pub identified: Vec<bool>,
    /// Rows minus free costs.
    pub dof: usize,
}

/// The feature row of a fork's counts.
pub fn features(terms: &[Term], ops: &Ops) -> Vec<f64> {
    terms.iter().map(|t| t.feature(ops)).collect()
}

/// Predicted instructions of a fork's counts.
pub fn predict(terms: &[Term], cost: &[f64], ops: &Ops) -> f64 {
    terms
        .iter()
        .zip(cost)
        .map(|(t, c)| c * t.feature(ops))
        .sum()
}

/// Fit `terms` to `rows` by NNLS, rows weighted by 1/instructions. None without rows or with
/// a row that has no positive, finite count.
pub fn fit(terms: &[Term], rows: &[Row<'_>]) -> Option<Fit> {
    if rows.is_empty() || rows.iter().any(|(_, y)| !(y.is_finite() && *y > 0.0)) {
        return None;
    }
    let plain: Vec<Vec<f64>> = rows.iter().map(|(o, _)| features(terms, o)).collect();
    let a = weighted(&plain, rows);
    let b = vec![1.0; rows.len()];
    let sol = nnls::nnls(&a, &b);
    let n = terms.len();
    let full = nnls::rank(&plain);
    let identified: Vec<bool> = (0..n)
        .map(|j| {
            let without: Vec<Vec<f64>> = plain
                .iter()
                .map(|r| {
                    r.iter()
                        .enumerate()
                        .filter(|&(i, _)| i != j)
                        .map(|(_, v)| *v)
                        .collect()
                })
                .collect();
            plain.iter().any(|r| r[j] != 0.0) && nnls::rank(&without) < full
        })
        .collect();
    let free: Vec<usize> = (0..n).filter(|&j| sol.x[j] > 0.0).collect();
    let dof = rows.len().saturating_sub(free.len());
    let mut sd = vec![None; n];
    if dof > 0 {
        let s2 = sol.residual_norm.powi(2) / dof as f64;
        if let Some(inv) = normal_inverse(&a, &free) {
            for (k, &j) in free.iter().enumerate() {
                if identified[j] {
                    sd[j] = Some((s2 * inv[k][k]).max(0.0).sqrt());
                }
            }
        }
    }
    Some(Fit {
        cost: sol.x,
        sd,
        identified,
        dof,
    })
}

/// The fit's design matrix: each row's features divided by its instructions (so every row's
/// target is 1 and the fit minimises relative errors).
fn weighted(plain: &[Vec<f64>], rows: &[Row<'_>]) -> Vec<Vec<f64>> {
    plain
        .iter()
        .zip(rows)
        .map(|(f, (_, y))| f.iter().map(|v| v / y).collect())
        .collect()
}

/// `(AᵀA)⁻¹` on the columns `cols` (Gauss-Jordan with partial pivoting); None when singular.
fn normal_inverse(a: &[Vec<f64>], cols: &[usize]) -> Option<Vec<Vec<f64>>> {
    let k = cols.len();
    let mut m: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            let mut row: Vec<f64> = (0..k)
                .map(|j| a.iter().map(|r| r[cols[i]] * r[cols[j]]).sum())
                .collect();
            row.extend((0..k).map(|j| if i == j { 1.0 } else { 0.0 }));
            row
        })
        .collect();
    let scale = (0..k).map(|i| m[i][i].abs()).fold(0.0, f64::max);
    for c in 0..k {
        let p = (c..k).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].abs() <= 1e-12 * scale {
            return None;
        }
        m.swap(c, p);
        let d = m[c][c];
        for v in m[c].iter_mut() {
            *v /= d;
        }
        for r in 0..k {
            if r != c {
                let f = m[r][c];
                if f != 0.0 {
                    let pivot = m[c].clone();
                    for (v, pv) in m[r].iter_mut().zip(pivot) {
                        *v -= f * pv;
                    }
                }
            }
        }
    }
    Some(m.into_iter().map(|r| r[k..].to_vec()).collect())
}

/// How many times the predicted instructions the rows it leans on add up to: `Σ|uᵢ| / |Σuᵢ|`,
/// with `uᵢ` row `i`'s share of the prediction (least squares on the costs NNLS left free, whose
/// prediction is linear in the rows). 1 when every row adds; large when the prediction is a
/// difference of larger rows, whose small misfits it then inherits many times over.
pub fn leverage(terms: &[Term], source: &[Row<'_>], target: &Ops) -> Option<f64> {
    let f = fit(terms, source)?;
    let plain: Vec<Vec<f64>> = source.iter().map(|(o, _)| features(terms, o)).collect();
    let a = weighted(&plain, source);
    let free: Vec<usize> = (0..terms.len()).filter(|&j| f.cost[j] > 0.0).collect();
    let inv = normal_inverse(&a, &free)?;
    let x = features(terms, target);
    // u_i = x_F (A_FᵀA_F)⁻¹ a_{i,F}, each row's b_i being 1.
    let xm: Vec<f64> = (0..free.len())
        .map(|k| {
            free.iter()
                .enumerate()
                .map(|(l, &j)| x[j] * inv[l][k])
                .sum()
        })
        .collect();
    let u: Vec<f64> = a
        .iter()
        .map(|row| free.iter().zip(&xm).map(|(&j, m)| row[j] * m).sum())
        .collect();
    let total: f64 = u.iter().sum();
    (total != 0.0).then(|| u.iter().map(|v| v.abs()).sum::<f64>() / total.abs())
}

/// A prediction of one row from a fit that did not see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    pub predicted: f64,
    /// `predicted / measured - 1`.
    pub error: f64,
    /// The fitted rows determine this prediction (its features are in their span); otherwise
    /// it rests on costs nothing fitted saw.
    pub determined: bool,
}

/// Predict `target` rows with a fit of `terms` on `source` rows (None when that fit fails).
pub fn transfer(terms: &[Term], source: &[Row<'_>], target: &[Row<'_>]) -> Option<Vec<Held>> {
    let f = fit(terms, source)?;
    let span: Vec<Vec<f64>> = source.iter().map(|(o, _)| features(terms, o)).collect();
    Some(
        target
            .iter()
            .map(|(o, y)| {
                let p = predict(terms, &f.cost, o);
                Held {
                    predicted: p,
                    error: p / y - 1.0,
                    determined: nnls::in_row_span(&span, &features(terms, o)),
                }
            })
            .collect(),
    )
}

/// Leave one group out: `groups[i]` names row `i`'s group (its layout); each group's rows are
/// predicted from a fit on all other rows. None for a row whose group leaves nothing to fit.
pub fn leave_group_out<G: PartialEq>(
    terms: &[Term],
    rows: &[Row<'_>],
    groups: &[G],
) -> Vec<Option<Held>> {
    let mut out = vec![None; rows.len()];
    for (i, g) in groups.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let (held, rest): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&k| groups[k] == *g);
        let source: Vec<Row<'_>> = rest.iter().map(|&k| rows[k]).collect();
        let target: Vec<Row<'_>> = held.iter().map(|&k| rows[k]).collect();
        if let Some(h) = transfer(terms, &source, &target) {
            for (k, h) in held.into_iter().zip(h) {
                out[k] = Some(h);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instructions::terms::*;
    use contract::OpCounter::*;
    use proptest::prelude::*;

    /// One fork of `tables` full page tables of folios of `order` (`None`: huge PMDs) as
    /// `v6.12` counts them in steady mode.
    pub(crate) fn fork(order: Option<u32>, tables: u64) -> Ops {
        let Some(order) = order else {
            return Ops::from([(PteTablesAllocated, tables), (RmapCalls, tables)]);
        };
        let ptes = 512 * tables;
        let batches = ptes >> order;
        Ops::from([
            (PteWrites, ptes),
            (PteReads, ptes),
            (Batches, batches),
            (LargeMapcountAtomics, if order > 0 { batches } else { 0 }),
            (PteTablesAllocated, tables),
        ])
    }

    fn set() -> Vec<Term> {
        vec![FIXED, PER_TABLE, PER_PTE, PER_SMALL_BATCH, PER_LARGE_BATCH]
    }

    const TRUTH: [f64; 5] = [150_000.0, 900.0, 40.0, 95.0, 400.0];

    fn layouts() -> Vec<Ops> {
        let mut v = Vec::new();
        for tables in [32, 128] {
            for o in [Some(0), Some(2), Some(4), Some(9), None] {
                v.push(fork(o, tables));
            }
        }
        v.push(Ops::new());
        v
    }

    #[test]
    fn costs_are_recovered_with_zero_sd_from_exact_counts() {
        let ops = layouts();
        let rows: Vec<Row<'_>> = ops
            .iter()
            .map(|o| (o, predict(&set(), &TRUTH, o)))
            .collect();
        let f = fit(&set(), &rows).unwrap();
        for (c, t) in f.cost.iter().zip(TRUTH) {
            assert!((c / t - 1.0).abs() < 1e-9, "{c} vs {t}");
        }
        assert!(f.identified.iter().all(|&i| i), "{:?}", f.identified);
        assert_eq!(f.dof, rows.len() - 5);
        for sd in &f.sd {
            assert!(sd.unwrap() < 1e-6, "{sd:?}");
        }
    }

    #[test]
    fn noise_gives_each_cost_an_sd_near_its_true_scatter() {
        // 1% multiplicative noise on the per-PTE path of each row: the per-PTE cost's sd is of
        // the order of 1% of it, and its estimate within a few sd of the truth.
        let ops = layouts();
        let wiggle = [1.0, -1.0, 0.5, -0.5, 0.0, 1.0, -1.0, 0.5, -0.5, 0.0, 0.0];
        let rows: Vec<Row<'_>> = ops
            .iter()
            .zip(wiggle)
            .map(|(o, w)| (o, predict(&set(), &TRUTH, o) * (1.0 + 0.01 * w)))
            .collect();
        let f = fit(&set(), &rows).unwrap();
        let sd = f.sd[2].unwrap();
        assert!(sd > 0.0 && sd < 0.05 * TRUTH[2], "{sd}");
        assert!(
            (f.cost[2] - TRUTH[2]).abs() < 4.0 * sd,
            "{} ± {sd}",
            f.cost[2]
        );
    }

    #[test]
    fn a_kernel_without_large_batches_does_not_identify_them() {
        // 6.1: every PTE is its own batch, so per-PTE and per-small-batch move together.
        let ops: Vec<Ops> = [32, 128]
            .iter()
            .flat_map(|&t| {
                let mut o = fork(Some(0), t);
                o.remove(&LargeMapcountAtomics);
                [o, fork(None, t)]
            })
            .chain([Ops::new()])
            .collect();
        let rows: Vec<Row<'_>> = ops
            .iter()
            .map(|o| (o, predict(&set(), &TRUTH, o)))
            .collect();
        let f = fit(&set(), &rows).unwrap();
        assert_eq!(f.identified, [true, true, false, false, false]);
        assert_eq!((f.sd[2], f.sd[3], f.sd[4]), (None, None, None));
        // Their sum per PTE is what the rows fix.
        assert!((f.cost[2] + f.cost[3] - (TRUTH[2] + TRUTH[3])).abs() < 1e-6);
        // Applied to a large-folio fork it is not determined.
        let big = fork(Some(9), 128);
        let h = transfer(&set(), &rows, &[(&big, 1e6)]).unwrap();
        assert!(!h[0].determined);
        let small = fork(Some(0), 64);
        let h = transfer(&set(), &rows, &[(&small, predict(&set(), &TRUTH, &small))]);
        let h = h.unwrap()[0];
        assert!(h.determined && h.error.abs() < 1e-6, "{h:?}");
    }

    #[test]
    fn leave_group_out_holds_out_both_sizes_of_a_layout() {
        let ops = layouts();
        let rows: Vec<Row<'_>> = ops
            .iter()
            .map(|o| (o, predict(&set(), &TRUTH, o)))
            .collect();
        // Groups: the layout index within each memory size; untouched alone.
        let groups: Vec<usize> = (0..ops.len())
            .map(|i| if i == 10 { 99 } else { i % 5 })
            .collect();
        let held = leave_group_out(&set(), &rows, &groups);
        for (i, h) in held.iter().enumerate() {
            let h = h.unwrap();
            match i % 5 {
                // order 0 is the only small-batch layout, pmd-order9 the only one whose tables
                // hold no PTEs: nothing else prices them.
                0 | 4 if i != 10 => assert!(!h.determined, "row {i}"),
                _ => assert!(h.determined && h.error.abs() < 1e-6, "row {i}: {h:?}"),
            }
        }
    }

    #[test]
    fn a_difference_of_large_layouts_has_high_leverage() {
        // pmd-order9 from mix-pmd and pte-order9: 2·mix − pte, two rows ~10× its size.
        let terms = [FIXED, PER_TABLE, PER_PTE];
        let t = [1000.0, 5000.0, 100.0];
        let ops = [fork(Some(9), 128), fork(Some(9), 32), Ops::new()];
        let mut mix = fork(Some(9), 64);
        mix.insert(PteTablesAllocated, 128);
        let mix_small = {
            let mut m = fork(Some(9), 16);
            m.insert(PteTablesAllocated, 32);
            m
        };
        let rows_ops = [
            ops[0].clone(),
            ops[1].clone(),
            ops[2].clone(),
            mix,
            mix_small,
        ];
        let rows: Vec<Row<'_>> = rows_ops
            .iter()
            .map(|o| (o, predict(&terms, &t, o)))
            .collect();
        let pmd = fork(None, 128);
        let lev = leverage(&terms, &rows, &pmd).unwrap();
        assert!(lev > 10.0, "{lev}");
        // A layout inside the others' range leans on them with positive shares only.
        let mid = fork(Some(9), 64);
        let lev = leverage(&terms, &rows, &mid).unwrap();
        assert!(lev < 2.0, "{lev}");
    }

    proptest! {
        /// NNLS invariants on random weighted problems: every cost ≥ 0, KKT (the gradient of a
        /// free cost vanishes, that of a cost at its bound points outwards), and the fit is no
        /// worse than any other non-negative point tried.
        #[test]
        fn fit_is_non_negative_and_optimal(
            costs in proptest::collection::vec(0.0f64..500.0, 5),
            noise in proptest::collection::vec(-0.05f64..0.05, 11),
            probe in proptest::collection::vec(0.0f64..500.0, 5),
        ) {
            let ops = layouts();
            let mut c = costs.clone();
            c[0] += 1000.0; // every row positive
            let rows: Vec<Row<'_>> = ops
                .iter()
                .zip(&noise)
                .map(|(o, e)| (o, predict(&set(), &c, o) * (1.0 + e)))
                .collect();
            let f = fit(&set(), &rows).unwrap();
            prop_assert!(f.cost.iter().all(|&x| x >= 0.0));
            let loss = |x: &[f64]| -> f64 {
                rows.iter().map(|(o, y)| (predict(&set(), x, o) / y - 1.0).powi(2)).sum()
            };
            let best = loss(&f.cost);
            let mut p = probe.clone();
            p[0] += 1000.0;
            prop_assert!(best <= loss(&p) * (1.0 + 1e-9) + 1e-12);
            // KKT on the weighted problem.
            for j in 0..5 {
                let g: f64 = rows
                    .iter()
                    .map(|(o, y)| {
                        let fj = set()[j].feature(o) / y;
                        fj * (predict(&set(), &f.cost, o) / y - 1.0)
                    })
                    .sum();
                let scale: f64 = rows.iter().map(|(o, y)| (set()[j].feature(o) / y).abs()).sum::<f64>().max(1e-300);
                if f.cost[j] > 0.0 {
                    prop_assert!(g.abs() <= 1e-6 * scale, "free cost {j}: gradient {g}");
                } else {
                    prop_assert!(g >= -1e-6 * scale, "bound cost {j}: gradient {g}");
                }
            }
            // Scaling every row's instructions scales every cost.
            let scaled: Vec<Row<'_>> = rows.iter().map(|(o, y)| (*o, 3.0 * y)).collect();
            let g = fit(&set(), &scaled).unwrap();
            for (a, b) in f.cost.iter().zip(&g.cost) {
                prop_assert!((3.0 * a - b).abs() <= 1e-6 * b.abs().max(1.0));
            }
        }
    }
}
