//! The instruction model of the exact files (pure): every kernel priced from its stand-in's
//! counts; per group of kernels (one arch, one build) one feature set, the candidate whose
//! worst leave-one-layout-out error over the group's kernels is smallest; each kernel's fit,
//! held-out errors and costs; the cross-kernel transfers; and where order 0's instructions
//! went between 6.1 and 6.12 ([`Growth`]).

use contract::{Arch, Mode, RealLayout};

use super::counts::StandInCounts;
use super::data::{Build, ExactData, ExactObs, Kernel, Series};
use super::fit::{self, Fit, Held, Row};
use super::terms::{FeatureSet, Part, Term, candidate_sets};
use crate::Result;
use crate::runner::Ops;

/// One observation with its stand-in counts, fitted value and held-out prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct ObsRow {
    pub obs: ExactObs,
    pub ops: Ops,
    /// Instructions per fork, measured.
    pub value: f64,
    /// The kernel's own fit on all its rows.
    pub fitted: f64,
    /// Fitted on the kernel's other layouts (both memory sizes of this layout left out).
    pub held: Option<Held>,
}

impl ObsRow {
    fn row(&self) -> Row<'_> {
        (&self.ops, self.value)
    }
}

/// One kernel under the group's feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelModel {
    pub kernel: Kernel,
    pub rows: Vec<ObsRow>,
    pub fit: Fit,
}

impl KernelModel {
    fn fit_rows(&self) -> Vec<Row<'_>> {
        self.rows.iter().map(ObsRow::row).collect()
    }

    /// The largest |held-out error| over the layouts `scored` (untouched excluded: it anchors
    /// the fixed cost); a row without a prediction counts as infinite.
    pub fn worst_held(&self, scored: &[RealLayout]) -> f64 {
        self.rows
            .iter()
            .filter(|r| scored.contains(&r.obs.layout))
            .map(|r| match r.held {
                Some(h) if h.error.is_finite() => h.error.abs(),
                _ => f64::INFINITY,
            })
            .fold(0.0, f64::max)
    }

    /// RMS of the in-sample relative residuals.
    pub fn rms(&self) -> f64 {
        let n = self.rows.len().max(1) as f64;
        (self
            .rows
            .iter()
            .map(|r| (r.fitted / r.value - 1.0).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
    }
}

/// One kernel's fit applied to another kernel's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfer {
    /// Index of the source and target kernel in the group.
    pub from: usize,
    pub to: usize,
    /// One per target row.
    pub held: Vec<Held>,
}

/// Order 0's instructions per fork in 6.1 and 6.12 at one memory size, and where the change
/// lies: each part's contribution under each kernel's own fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub mem_bytes: u64,
    /// Measured instructions per fork: 6.1, 6.12.
    pub old: f64,
    pub new: f64,
    /// Per part: (6.1's fitted contribution, 6.12's).
    pub parts: Vec<(Part, f64, f64)>,
    /// Of the copy path's change: what the stand-ins' counts change (at 6.1's costs), and what
    /// the costs per op change (at 6.12's counts).
    pub copy_counts: f64,
    pub copy_costs: f64,
    /// PTEs copied (the same in both).
    pub ptes: f64,
}

/// One group: the kernels of one arch and build, under one feature set.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupModel {
    pub arch: Arch,
    pub build: Build,
    pub set: FeatureSet,
    /// Every candidate's name and score (worst held-out error over the group's kernels).
    pub scores: Vec<(&'static str, f64)>,
    /// The layouts the score counts.
    pub scored: Vec<RealLayout>,
    pub kernels: Vec<KernelModel>,
    pub transfers: Vec<Transfer>,
    /// Per (6.1, 6.12) pair: its indices and order 0's growth at each memory size.
    pub growth: Vec<((usize, usize), Vec<Growth>)>,
}

/// The whole instruction model of the exact files.
#[derive(Debug, Clone, PartialEq)]
pub struct InstrModel {
    pub files: Vec<String>,
    pub groups: Vec<GroupModel>,
    /// Kernels left out, with why.
    pub left_out: Vec<String>,
}

/// Goal of the within-kernel test: every layout's held-out error within ±3%.
pub const LOLO_GOAL: f64 = 0.03;
/// Goal of the cross-kernel test: within ±10%.
pub const TRANSFER_GOAL: f64 = 0.10;

/// Model every kernel of `data` with `counts`.
pub fn analyse(data: &ExactData, counts: &StandInCounts) -> Result<InstrModel> {
    let mut left_out: Vec<String> = data
        .skipped
        .iter()
        .map(|(a, k)| format!("{a} {k}: no stand-in for its series (6.1 and 6.12 have one)"))
        .collect();
    // Kernels, in the data's order, each with its rows.
    let mut kernels: Vec<(Kernel, Vec<ObsRow>)> = Vec::new();
    for o in &data.obs {
        let ops = counts.layout_counts(
            o.kernel.arch,
            o.kernel.stand_in,
            o.layout,
            o.mem_bytes,
            o.mode,
        )?;
        let row = ObsRow {
            value: o.value(),
            obs: o.clone(),
            ops,
            fitted: f64::NAN,
            held: None,
        };
        match kernels.iter_mut().find(|(k, _)| *k == o.kernel) {
            Some((_, rows)) => rows.push(row),
            None => kernels.push((o.kernel.clone(), vec![row])),
        }
    }
    let mut groups = Vec::new();
    let mut keys: Vec<(Arch, Build)> = kernels.iter().map(|(k, _)| (k.arch, k.build)).collect();
    keys.dedup();
    for (arch, build) in keys {
        let members: Vec<(Kernel, Vec<ObsRow>)> = kernels
            .iter()
            .filter(|(k, _)| k.arch == arch && k.build == build)
            .cloned()
            .collect();
        let (fit_able, thin): (Vec<_>, Vec<_>) = members
            .into_iter()
            .partition(|(_, rows)| layouts_of(rows).len() >= 3);
        for (k, rows) in thin {
            left_out.push(format!(
                "{} ({}): {} layout(s); leaving one out needs at least 3",
                k.label,
                arch,
                layouts_of(&rows).len()
            ));
        }
        if !fit_able.is_empty() {
            groups.push(model_group(arch, build, fit_able));
        }
    }
    Ok(InstrModel {
        files: data.files.clone(),
        groups,
        left_out,
    })
}

fn layouts_of(rows: &[ObsRow]) -> Vec<RealLayout> {
    let mut v: Vec<RealLayout> = rows.iter().map(|r| r.obs.layout).collect();
    v.sort_by_key(|l| l.rank());
    v.dedup();
    v
}

/// One kernel under `terms`: its fit and every layout held out.
fn model_kernel(terms: &[Term], kernel: &Kernel, rows: &[ObsRow]) -> Option<KernelModel> {
    let fit_rows: Vec<Row<'_>> = rows.iter().map(ObsRow::row).collect();
    let f = fit::fit(terms, &fit_rows)?;
    let groups: Vec<RealLayout> = rows.iter().map(|r| r.obs.layout).collect();
    let held = fit::leave_group_out(terms, &fit_rows, &groups);
    let rows = rows
        .iter()
        .zip(held)
        .map(|(r, h)| ObsRow {
            fitted: fit::predict(terms, &f.cost, &r.ops),
            held: h,
            ..r.clone()
        })
        .collect();
    Some(KernelModel {
        kernel: kernel.clone(),
        rows,
        fit: f,
    })
}

/// Fit every candidate to every kernel of the group, pick one set, and derive the transfers
/// and the growth under it.
fn model_group(arch: Arch, build: Build, members: Vec<(Kernel, Vec<ObsRow>)>) -> GroupModel {
    let sets = candidate_sets();
    let mut per_set: Vec<Vec<KernelModel>> = sets
        .iter()
        .map(|s| {
            members
                .iter()
                .filter_map(|(k, rows)| model_kernel(&s.terms, k, rows))
                .collect()
        })
        .collect();
    // Scored: the layouts (but untouched) that some set predicts from the others, per kernel.
    let mut scored: Vec<RealLayout> = Vec::new();
    for ms in &per_set {
        for m in ms {
            for r in &m.rows {
                let l = r.obs.layout;
                if l != RealLayout::Untouched
                    && r.held.is_some_and(|h| h.determined)
                    && !scored.contains(&l)
                {
                    scored.push(l);
                }
            }
        }
    }
    scored.sort_by_key(|l| l.rank());
    let score = |ms: &[KernelModel]| -> f64 {
        if ms.len() < members.len() {
            return f64::INFINITY;
        }
        ms.iter().map(|m| m.worst_held(&scored)).fold(0.0, f64::max)
    };
    let rms = |ms: &[KernelModel]| ms.iter().map(KernelModel::rms).sum::<f64>();
    let scores: Vec<(&'static str, f64)> = sets
        .iter()
        .zip(&per_set)
        .map(|(s, ms)| (s.name, score(ms)))
        .collect();
    let mut best = 0;
    for i in 1..sets.len() {
        let (w, b) = (scores[i].1, scores[best].1);
        let tie = (w == b) || (w - b).abs() <= 1e-9 * b.abs().max(1.0);
        if (!tie && w < b) || (tie && rms(&per_set[i]) < rms(&per_set[best]) - 1e-12) {
            best = i;
        }
    }
    let set = sets[best].clone();
    let kernels = per_set.swap_remove(best);
    let mut transfers = Vec::new();
    for from in 0..kernels.len() {
        for to in 0..kernels.len() {
            if from == to {
                continue;
            }
            let held = fit::transfer(
                &set.terms,
                &kernels[from].fit_rows(),
                &kernels[to].fit_rows(),
            );
            if let Some(held) = held {
                transfers.push(Transfer { from, to, held });
            }
        }
    }
    let mut growth = Vec::new();
    for (i, old) in kernels.iter().enumerate() {
        for (j, new) in kernels.iter().enumerate() {
            if old.kernel.series == Series::V6_1 && new.kernel.series == Series::V6_12 {
                growth.push(((i, j), order0_growth(&set.terms, old, new)));
            }
        }
    }
    GroupModel {
        arch,
        build,
        set,
        scores,
        scored,
        kernels,
        transfers,
        growth,
    }
}

/// Order 0 in `old` and `new` at every memory size both have, split by part.
fn order0_growth(terms: &[Term], old: &KernelModel, new: &KernelModel) -> Vec<Growth> {
    let at = |m: &KernelModel, mem: u64, mode: Mode| {
        m.rows
            .iter()
            .find(|r| {
                r.obs.layout == RealLayout::Order0 && r.obs.mem_bytes == mem && r.obs.mode == mode
            })
            .cloned()
    };
    let mut out = Vec::new();
    for a in old
        .rows
        .iter()
        .filter(|r| r.obs.layout == RealLayout::Order0)
    {
        let Some(b) = at(new, a.obs.mem_bytes, a.obs.mode) else {
            continue;
        };
        let contribution = |m: &KernelModel, ops: &Ops, part: Part| -> f64 {
            terms
                .iter()
                .zip(&m.fit.cost)
                .filter(|(t, _)| t.part == part)
                .map(|(t, c)| c * t.feature(ops))
                .sum()
        };
        let parts = [Part::Outside, Part::Table, Part::CopyPath]
            .into_iter()
            .map(|p| {
                (
                    p,
                    contribution(old, &a.ops, p),
                    contribution(new, &b.ops, p),
                )
            })
            .collect();
        let (mut copy_counts, mut copy_costs) = (0.0, 0.0);
        for (k, t) in terms.iter().enumerate() {
            if t.part != Part::CopyPath {
                continue;
            }
            let (fa, fb) = (t.feature(&a.ops), t.feature(&b.ops));
            copy_counts += old.fit.cost[k] * (fb - fa);
            copy_costs += fb * (new.fit.cost[k] - old.fit.cost[k]);
        }
        out.push(Growth {
            mem_bytes: a.obs.mem_bytes,
            old: a.value,
            new: b.value,
            parts,
            copy_counts,
            copy_costs,
            ptes: super::terms::PER_PTE.feature(&a.ops),
        });
    }
    out
}
