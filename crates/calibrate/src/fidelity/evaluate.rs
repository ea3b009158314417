//! The model's value of each cell and its agreement with the thread (pure): times of a
//! configuration on a machine, the change of a cell in the measured and the calibrated model
//! ([`ModelKind`]), sign classes, and pairwise ranking per row.

use contract::OpCounter;

use super::inputs::{Inputs, Measurement};
use crate::runner::Ops;
use crate::tables::{Machine, ModelCell, RankBy, Table};

/// Times of one configuration on one machine.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Times {
    measured_ns: f64,
    calibrated_ns: Option<f64>,
    privileged_ns: f64,
}

/// Which model prices a configuration. Both add the counted privileged operations x the
/// assumed costs of the cell's machine (none on the Xeon: x86 fork issues no range TLBIs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// The model's measured userspace time on this host.
    Measured,
    /// The calibration profile applied to the model's exact op counts (absent without one).
    Calibrated,
}

impl ModelKind {
    /// Both, in the order the report shows them.
    pub const ALL: [ModelKind; 2] = [ModelKind::Measured, ModelKind::Calibrated];

    /// `measured` / `calibrated`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Measured => "measured",
            ModelKind::Calibrated => "calibrated",
        }
    }
}

impl Times {
    /// Time of the configuration in `kind`'s model (None: calibrated without a profile).
    fn of(&self, kind: ModelKind) -> Option<f64> {
        let userspace = match kind {
            ModelKind::Measured => Some(self.measured_ns),
            ModelKind::Calibrated => self.calibrated_ns,
        };
        userspace.map(|t| t + self.privileged_ns)
    }
}

/// Median: robust to runs disturbed by other load on a shared machine.
pub fn median(v: &[f64]) -> f64 {
    stats::median(v).unwrap_or(f64::NAN)
}

fn times(inputs: &Inputs, m: &Measurement, machine: Machine) -> Times {
    let measured_ns = if m.run_mins_ns.is_empty() {
        median(&m.run_means_ns)
    } else {
        median(&m.run_mins_ns)
    };
    // With the locality this host's layout of that folio order showed (if the profile has it).
    let calibrated_ns = inputs
        .profile
        .as_ref()
        .map(|p| p.predict_at(&m.ops, Some(m.order)));
    let privileged_ns = match machine {
        Machine::Xeon => 0.0,
        other => inputs
            .machine_costs
            .get(other.name())
            .map(|c| {
                c.tlbi_ns * m.ops.get(&OpCounter::Tlbi).copied().unwrap_or(0) as f64
                    + c.flush_tlb_mm_ns
                        * m.ops.get(&OpCounter::TlbFlushMm).copied().unwrap_or(0) as f64
            })
            .unwrap_or(0.0),
    };
    Times {
        measured_ns,
        calibrated_ns,
        privileged_ns,
    }
}

/// The model's value for one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct CellEval {
    /// Change in the measured model, percent.
    pub measured: f64,
    /// Change in the calibrated model, percent; None without a profile.
    pub calibrated: Option<f64>,
    pub new_ops: Ops,
    pub base_ops: Ops,
    /// The measurements' stored keys (`Config::key` when they were measured).
    pub new_key: String,
    pub base_key: String,
}

fn eval(inputs: &Inputs, mc: &ModelCell, machine: Machine) -> Option<CellEval> {
    let n = inputs.get(&mc.new)?;
    let b = inputs.get(&mc.base)?;
    let tn = times(inputs, n, machine);
    let tb = times(inputs, b, machine);
    let change = |kind| match (tn.of(kind), tb.of(kind)) {
        (Some(a), Some(b)) => Some((a / b - 1.0) * 100.0),
        _ => None,
    };
    Some(CellEval {
        measured: change(ModelKind::Measured).expect("measured times always exist"),
        calibrated: change(ModelKind::Calibrated),
        new_ops: n.ops.clone(),
        base_ops: b.ops.clone(),
        new_key: n.key.clone(),
        base_key: b.key.clone(),
    })
}

/// Thread values closer than this (percentage points) are not ranked: the thread's sd is 1–2%.
pub const THREAD_TIE_PP: f64 = 1.0;
/// Model values closer than this (percentage points) are not ranked.
pub const MODEL_TIE_PP: f64 = 0.1;

/// Sign class with a ±1% dead band (the thread's run-to-run sd is 1–2%).
pub fn sign_class(pct: f64) -> i8 {
    if pct.abs() <= 1.0 {
        0
    } else if pct > 0.0 {
        1
    } else {
        -1
    }
}

/// Agreement of one row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RowAgreement {
    pub sign_agree: usize,
    pub sign_total: usize,
    pub rank_agree: usize,
    pub rank_total: usize,
    pub sign_misses: Vec<String>,
    pub rank_misses: Vec<String>,
}

impl CellEval {
    /// The change in `kind`'s model, percent.
    pub fn change(&self, kind: ModelKind) -> Option<f64> {
        match kind {
            ModelKind::Measured => Some(self.measured),
            ModelKind::Calibrated => self.calibrated,
        }
    }
}

impl RowAgreement {
    /// Sign and ranking agree everywhere.
    pub fn ok(&self) -> bool {
        self.sign_agree == self.sign_total && self.rank_agree == self.rank_total
    }
}

/// The model's value of every cell of a table, row by row.
pub type Grid = Vec<Vec<Option<CellEval>>>;

/// Evaluate every cell of `t`.
pub fn grid(inputs: &Inputs, t: &Table) -> Grid {
    t.rows
        .iter()
        .map(|r| {
            r.cells
                .iter()
                .map(|c| c.model.as_ref().and_then(|m| eval(inputs, m, c.machine)))
                .collect()
        })
        .collect()
}

/// Source identity of a cell: cells with the same source get the same model value up to the
/// machine's privileged-op costs, so the model cannot rank them.
fn same_source(t: &Table, a: (usize, usize), b: (usize, usize), g: &Grid) -> bool {
    let ca = &t.rows[a.0].cells[a.1];
    let cb = &t.rows[b.0].cells[b.1];
    if ca.model != cb.model {
        return false;
    }
    if ca.machine == cb.machine {
        return true;
    }
    // Same configurations on two machines: distinct only through privileged ops.
    let tl = |e: &Option<CellEval>| {
        e.as_ref().is_some_and(|e| {
            e.new_ops.get(&OpCounter::Tlbi).copied().unwrap_or(0)
                + e.base_ops.get(&OpCounter::Tlbi).copied().unwrap_or(0)
                > 0
        })
    };
    !(tl(&g[a.0][a.1]) || tl(&g[b.0][b.1]))
}

/// Sign and ranking agreement per row of `kind`'s model (cells without a value in it are
/// skipped).
pub fn agreements(t: &Table, g: &Grid, kind: ModelKind) -> Vec<RowAgreement> {
    let val = |e: &CellEval| e.change(kind);
    let mut out = vec![RowAgreement::default(); t.rows.len()];
    for (ri, r) in t.rows.iter().enumerate() {
        for (ci, c) in r.cells.iter().enumerate() {
            if let (Some(th), Some(v)) = (c.thread, g[ri][ci].as_ref().and_then(val)) {
                out[ri].sign_total += 1;
                if sign_class(th) == sign_class(v) {
                    out[ri].sign_agree += 1;
                } else {
                    out[ri].sign_misses.push(t.columns[ci].to_string());
                }
            }
        }
    }
    // Pairs to rank.
    let mut pairs = Vec::new();
    let (nr, nc) = (t.rows.len(), t.columns.len());
    match t.rank_by {
        RankBy::Rows => {
            for ci in 0..nc {
                for a in 0..nr {
                    for b in a + 1..nr {
                        pairs.push(((a, ci), (b, ci)));
                    }
                }
            }
        }
        RankBy::Columns => {
            for ri in 0..nr {
                for a in 0..nc {
                    for b in a + 1..nc {
                        pairs.push(((ri, a), (ri, b)));
                    }
                }
            }
        }
    }
    for (a, b) in pairs {
        let (Some(ta), Some(tb)) = (t.rows[a.0].cells[a.1].thread, t.rows[b.0].cells[b.1].thread)
        else {
            continue;
        };
        let (Some(ma), Some(mb)) = (
            g[a.0][a.1].as_ref().and_then(val),
            g[b.0][b.1].as_ref().and_then(val),
        ) else {
            continue;
        };
        if (ta - tb).abs() < THREAD_TIE_PP
            || (ma - mb).abs() < MODEL_TIE_PP
            || same_source(t, a, b, g)
        {
            continue; // the thread or the model cannot order this pair
        }
        let agree = (ta - tb).signum() == (ma - mb).signum();
        let label = |p: (usize, usize)| match t.rank_by {
            RankBy::Rows => format!("{} ({})", t.rows[p.0].label, t.columns[p.1]),
            RankBy::Columns => t.columns[p.1].to_string(),
        };
        for (me, other) in [(a, b), (b, a)] {
            if t.rank_by == RankBy::Columns && me != a {
                continue; // one row: count each pair once
            }
            out[me.0].rank_total += 1;
            if agree {
                out[me.0].rank_agree += 1;
            } else {
                out[me.0]
                    .rank_misses
                    .push(format!("{} vs {}", label(me), label(other)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::test_inputs::synthetic;
    use crate::tables::thread_tables;

    #[test]
    fn sign_classes_have_a_one_percent_dead_band() {
        assert_eq!(sign_class(1.0), 0);
        assert_eq!(sign_class(-1.0), 0);
        assert_eq!(sign_class(1.01), 1);
        assert_eq!(sign_class(-36.3), -1);
    }

    #[test]
    fn ranking_counts_and_skips_same_source_rows() {
        let i = synthetic(false);
        let tables = thread_tables();
        // Table 3: rows 1–3 share a model and are not ranked against each other; each of them
        // is ranked against row 4 in the four columns.
        let t3 = &tables[2];
        let g = grid(&i, t3);
        let ag = agreements(t3, &g, ModelKind::Measured);
        assert_eq!(ag[0].rank_total, 4);
        // 12 pairs minus two the thread cannot order (−3.3 vs −3.6, −0.1 vs −0.4).
        assert_eq!(ag[3].rank_total, 10);
        assert_eq!(ag[0].sign_total, 4);
        // Table 6 ranks sizes within a row: 9 sizes → 36 pairs minus ties in the thread.
        let t6 = &tables[5];
        let ag6 = agreements(t6, &grid(&i, t6), ModelKind::Measured);
        assert!(ag6[0].rank_total > 0 && ag6[0].rank_total <= 36);
    }

    #[test]
    fn arm64_cells_add_the_privileged_ops_of_their_machine() {
        let i = synthetic(false);
        let basic = i
            .measurements
            .iter()
            .find(|m| m.contpte == Some(contract::Contpte::Basic))
            .unwrap();
        let xeon = times(&i, basic, Machine::Xeon);
        let altra = times(&i, basic, Machine::Altra);
        assert_eq!(xeon.privileged_ns, 0.0);
        // 16384 TLBIs at 16 µs plus one flush_tlb_mm at 2 µs.
        assert_eq!(altra.privileged_ns, 16_384.0 * 16_000.0 + 2_000.0);
    }
}
