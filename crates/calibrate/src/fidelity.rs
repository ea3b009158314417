//! `cargo xtask fidelity`: `results/fidelity.md`, every fork table of the thread (kernel-model.md
//! §7, tables 1–7) beside the model's reproduction with the same rows and columns, whether sign
//! and ranking agree, and the reason where they do not.
//!
//! Two steps. `--measure` runs the model (`forkbench sim`, fresh mode, the thread's 1 GiB,
//! 100 × 8) for every configuration the tables need and writes `results/fidelity-inputs.json`
//! (with the newest calibration profile of this host embedded, when there is one). Rendering is
//! a pure function of that file ([`render`]), so a test regenerates the report from the
//! committed inputs and fails when the committed report is stale ([`check_fresh`]).
//!
//! **Model value of a cell.** Each cell compares a `new` configuration with a `base` one:
//! `change = T(new) / T(base) − 1`. Primary `T`: for x86_64 (Xeon) cells, the calibrated
//! profile's prediction from the op counts (the measured userspace time without a profile); for
//! arm64 (M2, Altra) cells, the measured userspace time plus the counted privileged operations
//! priced with the documented per-machine assumptions ([`default_machine_costs`]): range-TLBIs
//! (one per 64 KiB block unfold/fold) and `flush_tlb_mm`. The alternative (measured for x86,
//! host profile + privileged ops for arm64) is shown beside it. Measured times are the median of
//! the per-run fastest forks.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::profile::{CostProfile, newest_profile};
use crate::runner::{self, ModelSpec, Ops, Timing};
use crate::tables::{Config, Machine, ModelCell, RankBy, Table, thread_tables};
use crate::util;
use crate::{CalibrateError, Result};

/// Arguments of `cargo xtask fidelity`.
#[derive(Debug, Clone, Args)]
pub struct FidelityArgs {
    /// Re-measure the model first and rewrite the inputs file (otherwise only render)
    #[arg(long)]
    pub measure: bool,
    /// Only check that the report is up to date with its inputs (exit with an error if stale)
    #[arg(long, conflicts_with = "measure")]
    pub check: bool,
    /// Inputs file (default: <root>/results/fidelity-inputs.json)
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Report file (default: <root>/results/fidelity.md)
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Calibration profile to embed when measuring (default: the newest of this host under
    /// results/calibration); without --measure, re-price the existing inputs with it
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// No calibration profile (model time = measured userspace time); without --measure, drop
    /// the profile from the existing inputs
    #[arg(long, conflicts_with = "profile")]
    pub no_profile: bool,
    /// Memory per model fork when measuring
    #[arg(long, default_value = "1G")]
    pub mem: String,
    /// Timed forks per run when measuring
    #[arg(long, default_value_t = 100)]
    pub iters: u32,
    /// Runs per configuration when measuring
    #[arg(long, default_value_t = 8)]
    pub runs: u32,
    /// CPU to pin the model to when measuring
    #[arg(long)]
    pub cpu: Option<usize>,
}

/// Version of the inputs file.
pub const INPUTS_SCHEMA: u32 = 1;

/// Privileged-operation costs assumed for a machine the model cannot run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCosts {
    /// One range TLBI for a 64 KiB block (contpte unfold/fold), ns.
    pub tlbi_ns: f64,
    /// One `flush_tlb_mm`, ns.
    pub flush_tlb_mm_ns: f64,
    /// Where the figure comes from.
    pub basis: String,
}

/// The documented assumptions for Ampere Altra and Apple M2. Not measured, not fitted.
pub fn default_machine_costs() -> BTreeMap<String, MachineCosts> {
    BTreeMap::from([
        (
            "Altra".to_string(),
            MachineCosts {
                tlbi_ns: 16_000.0,
                flush_tlb_mm_ns: 2_000.0,
                basis: "assumption: Neoverse N1 has no FEAT_TLBIRANGE, so a 64 KiB range is 16 broadcast TLBI VALE1IS + DSB ISH; ~1 µs per broadcast TLBI on an 80-core mesh (order of magnitude, not measured)".into(),
            },
        ),
        (
            "M2".to_string(),
            MachineCosts {
                tlbi_ns: 2_000.0,
                flush_tlb_mm_ns: 500.0,
                basis: "assumption: ~8x cheaper broadcast invalidation on a small SoC (FEAT_TLBIRANGE; guest TLBIs do not trap); order of magnitude, not measured".into(),
            },
        ),
    ])
}

/// Measurement settings recorded in the inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSettings {
    pub mem: String,
    pub iters: u32,
    pub runs: u32,
    pub mode: String,
    pub mapcount: String,
    pub cpu: Option<usize>,
}

/// One measured model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub key: String,
    pub arch: String,
    pub contpte: Option<String>,
    pub strategy: String,
    pub order: u32,
    /// Mean of each run, ns (the thread's statistic; kept for reference).
    pub run_means_ns: Vec<f64>,
    /// Fastest fork of each run, ns: the model's work is deterministic, so disturbances from
    /// other load only add time; the report uses the median of these.
    #[serde(default)]
    pub run_mins_ns: Vec<f64>,
    /// Op counts of one fork.
    pub ops: Ops,
}

/// Everything the report is rendered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub schema: u32,
    pub created_utc: String,
    pub host: String,
    pub kernel: String,
    pub cpu_model: String,
    pub tool_version: String,
    pub settings: InputSettings,
    pub machine_costs: BTreeMap<String, MachineCosts>,
    pub profile_file: Option<String>,
    pub profile: Option<CostProfile>,
    pub measurements: Vec<Measurement>,
}

impl Inputs {
    /// Load an inputs file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = util::read(path)?;
        let v: Self = serde_json::from_str(&text).map_err(|source| CalibrateError::Json {
            path: path.to_owned(),
            source,
        })?;
        if v.schema != INPUTS_SCHEMA {
            return Err(CalibrateError::Input(format!(
                "{}: inputs schema {} (this build reads {INPUTS_SCHEMA})",
                path.display(),
                v.schema
            )));
        }
        Ok(v)
    }

    fn get(&self, c: &Config) -> Option<&Measurement> {
        let k = c.key();
        self.measurements.iter().find(|m| m.key == k)
    }
}

/// Every model configuration the tables need.
pub fn needed_configs(tables: &[Table]) -> BTreeSet<Config> {
    tables
        .iter()
        .flat_map(|t| &t.rows)
        .flat_map(|r| &r.cells)
        .filter_map(|c| c.model)
        .flat_map(|m| [m.new, m.base])
        .collect()
}

/// Run the model for every needed configuration (grouped into one `sim` call per engine and
/// order, strategies interleaved by the runner).
pub fn measure(
    forkbench: &Path,
    args: &FidelityArgs,
    profile: Option<(String, CostProfile)>,
) -> Result<Inputs> {
    let tables = thread_tables();
    let mut groups: BTreeMap<(&str, Option<&str>, u32), Vec<&str>> = BTreeMap::new();
    for c in needed_configs(&tables) {
        groups
            .entry((c.arch, c.contpte, c.order))
            .or_default()
            .push(c.strategy);
    }
    let mode = "fresh";
    let mapcount = "per-page";
    let mut measurements = Vec::new();
    let n = groups.len();
    for (i, ((arch, contpte, order), strategies)) in groups.into_iter().enumerate() {
        let spec = ModelSpec {
            arch: arch.into(),
            contpte: contpte.map(Into::into),
            order,
            mem: args.mem.clone(),
            mode: mode.into(),
            mapcount: mapcount.into(),
        };
        let list = strategies.join(",");
        eprintln!(
            "fidelity: [{}/{n}] sim {arch} {} order {order}: {list}",
            i + 1,
            contpte.map(|c| format!("contpte {c}")).unwrap_or_default()
        );
        let recs = runner::sim(
            forkbench,
            &spec,
            &list,
            &Timing {
                iters: args.iters,
                runs: args.runs,
                cpu: args.cpu,
            },
        )?;
        for s in strategies {
            let rs: Vec<_> = recs.iter().filter(|r| r.variant.strategy == s).collect();
            let first = rs.first().ok_or_else(|| CalibrateError::Runner {
                cmd: format!("forkbench sim --strategy {list}"),
                msg: format!("no records for {s}"),
            })?;
            let cfg = Config {
                arch,
                contpte,
                strategy: s,
                order,
            };
            measurements.push(Measurement {
                key: cfg.key(),
                arch: arch.into(),
                contpte: contpte.map(Into::into),
                strategy: s.into(),
                order,
                run_means_ns: rs.iter().map(|r| r.mean_ns()).collect(),
                run_mins_ns: rs
                    .iter()
                    .map(|r| r.samples_ns.iter().copied().min().unwrap_or(0) as f64)
                    .collect(),
                ops: first.ops.clone(),
            });
        }
    }
    let (profile_file, profile) = match profile {
        Some((f, p)) => (Some(f), Some(p)),
        None => (None, None),
    };
    Ok(Inputs {
        schema: INPUTS_SCHEMA,
        created_utc: util::utc_stamps(util::now_secs()).0,
        host: util::host_name(),
        kernel: util::kernel_release(),
        cpu_model: util::cpu_model(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        settings: InputSettings {
            mem: args.mem.clone(),
            iters: args.iters,
            runs: args.runs,
            mode: mode.into(),
            mapcount: mapcount.into(),
            cpu: args.cpu,
        },
        machine_costs: default_machine_costs(),
        profile_file,
        profile,
        measurements,
    })
}

/// Times of one configuration on one machine.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Times {
    measured_ns: f64,
    calibrated_ns: Option<f64>,
    privileged_ns: f64,
}

impl Times {
    /// Primary: x86 (Xeon) cells use the calibrated profile when there is one; arm64 cells use
    /// measured userspace time + privileged ops x the assumed costs.
    fn primary(&self, machine: Machine) -> f64 {
        match machine {
            Machine::Xeon => self.calibrated_ns.unwrap_or(self.measured_ns),
            _ => self.measured_ns + self.privileged_ns,
        }
    }
    /// Alternative: x86 measured userspace time; arm64 the host's calibrated profile applied to
    /// the arm64 counts + privileged ops (None without a profile).
    fn alternative(&self, machine: Machine) -> Option<f64> {
        match machine {
            Machine::Xeon => self.calibrated_ns.map(|_| self.measured_ns),
            _ => self.calibrated_ns.map(|c| c + self.privileged_ns),
        }
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
    let calibrated_ns = inputs.profile.as_ref().map(|p| p.predict(&m.ops));
    let privileged_ns = match machine {
        Machine::Xeon => 0.0,
        other => inputs
            .machine_costs
            .get(other.name())
            .map(|c| {
                c.tlbi_ns * m.ops.get("tlbi").copied().unwrap_or(0) as f64
                    + c.flush_tlb_mm_ns * m.ops.get("tlb_flush_mm").copied().unwrap_or(0) as f64
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
    /// Primary model change, percent.
    pub model: f64,
    /// Alternative model change, percent (see [`Times`]); None without a profile.
    pub alternative: Option<f64>,
    pub new_ops: Ops,
    pub base_ops: Ops,
}

fn eval(inputs: &Inputs, mc: &ModelCell, machine: Machine) -> Option<CellEval> {
    let n = inputs.get(&mc.new)?;
    let b = inputs.get(&mc.base)?;
    let tn = times(inputs, n, machine);
    let tb = times(inputs, b, machine);
    let alternative = match (tn.alternative(machine), tb.alternative(machine)) {
        (Some(a), Some(b)) => Some((a / b - 1.0) * 100.0),
        _ => None,
    };
    Some(CellEval {
        model: (tn.primary(machine) / tb.primary(machine) - 1.0) * 100.0,
        alternative,
        new_ops: n.ops.clone(),
        base_ops: b.ops.clone(),
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

/// `+1.2%`, `−3.4%` (typographic minus, as the thread prints).
pub fn fmt_pct(v: f64) -> String {
    let s = format!("{:+.1}%", v);
    s.replace('-', "−")
}

fn class_name(c: i8) -> &'static str {
    match c {
        1 => "+",
        -1 => "−",
        _ => "≈0",
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

impl RowAgreement {
    fn ok(&self) -> bool {
        self.sign_agree == self.sign_total && self.rank_agree == self.rank_total
    }
}

type Grid = Vec<Vec<Option<CellEval>>>;

fn grid(inputs: &Inputs, t: &Table) -> Grid {
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
            e.new_ops.get("tlbi").copied().unwrap_or(0)
                + e.base_ops.get("tlbi").copied().unwrap_or(0)
                > 0
        })
    };
    !(tl(&g[a.0][a.1]) || tl(&g[b.0][b.1]))
}

/// Sign and ranking agreement per row; `alternative` evaluates the alternative model values
/// (cells without one are skipped).
pub fn agreements(t: &Table, g: &Grid, alternative: bool) -> Vec<RowAgreement> {
    let val = |e: &CellEval| {
        if alternative {
            e.alternative
        } else {
            Some(e.model)
        }
    };
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

/// Counters shown in the ops column, with short names.
const OPS_SHOWN: &[(&str, &str)] = &[
    ("ptep_get_raw_reads", "ptep_get raw reads"),
    ("pte_reads", "PTE reads"),
    ("pte_atomics", "PTE atomics"),
    ("pte_writes", "PTE writes"),
    ("tlbi", "TLBI"),
    ("refcount_atomics", "refcount atomics"),
    ("rmap_calls", "rmap calls"),
    ("batches", "batches"),
];

fn per_table(ops: &Ops, k: &str) -> f64 {
    let tables = ops.get("pte_tables_allocated").copied().unwrap_or(0).max(1) as f64;
    ops.get(k).copied().unwrap_or(0) as f64 / tables
}

fn ops_text(t: &Table, ri: usize, g: &Grid) -> String {
    // The row's highest-order modelled cell.
    let best = t.rows[ri]
        .cells
        .iter()
        .enumerate()
        .filter_map(|(ci, c)| Some((c.model?.new.order, ci)))
        .max_by_key(|&(o, ci)| (o, std::cmp::Reverse(ci)));
    let Some((order, ci)) = best else {
        return "—".into();
    };
    let Some(e) = &g[ri][ci] else {
        return "—".into();
    };
    let mut parts = Vec::new();
    for (k, name) in OPS_SHOWN {
        let (n, b) = (per_table(&e.new_ops, k), per_table(&e.base_ops, k));
        if (n - b).abs() > 1e-9 {
            parts.push(format!("{name} {} vs {}", trim(n), trim(b)));
        }
    }
    if parts.is_empty() {
        format!("o{order}: same counts")
    } else {
        format!("o{order}, per 512 PTEs, new vs base: {}", parts.join("; "))
    }
}

fn trim(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn agreement_text(agree: usize, total: usize, misses: &[String]) -> String {
    if total == 0 {
        "n/a".into()
    } else if agree == total {
        format!("✓ {agree}/{total}")
    } else {
        format!("✗ {agree}/{total} ({})", misses.join(", "))
    }
}

/// Render `results/fidelity.md` from its inputs (deterministic).
pub fn render(inputs: &Inputs) -> String {
    let tables = thread_tables();
    let mut s = String::new();
    s.push_str("# Fidelity: the model against the thread's fork tables\n\n");
    s.push_str("<!-- Generated by `cargo xtask fidelity` from results/fidelity-inputs.json; do not edit. A test fails when this file is stale. -->\n\n");
    s.push_str(&format!(
        "Model measurements: {} ({}, Linux {}), {} UTC, forkbench {}; `forkbench sim --mode {} --mapcount {} --mem {}`, {} forks x {} runs per configuration{}.\n\n",
        inputs.host,
        inputs.cpu_model,
        inputs.kernel,
        inputs.created_utc,
        inputs.tool_version,
        inputs.settings.mode,
        inputs.settings.mapcount,
        inputs.settings.mem,
        inputs.settings.iters,
        inputs.settings.runs,
        inputs.settings.cpu.map(|c| format!(", pinned to CPU {c}")).unwrap_or_default()
    ));
    if let Some((cv, key)) = inputs
        .measurements
        .iter()
        .map(|m| {
            let (mean, sd) = runner::mean_std(&m.run_means_ns);
            (sd / mean * 100.0, m.key.as_str())
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
    {
        s.push_str(&format!(
            "Largest run-to-run CV of the run means of a model configuration: {cv:.1}% (`{key}`): the host is a shared 2-CPU VM.\n\n"
        ));
    }
    match &inputs.profile {
        Some(p) => s.push_str(&format!(
            "{} (file `results/calibration/{}`).\n\n",
            p.caption(),
            inputs.profile_file.as_deref().unwrap_or("?")
        )),
        None => s.push_str("cost profile: none (model time = measured userspace time).\n\n"),
    }
    s.push_str("## How to read this\n\n");
    s.push_str("- Each cell is `thread / model`: the thread's % change of mean fork time against the table's baseline, and the model's (negative = faster).\n");
    s.push_str("- **Model value (primary).** x86_64 (Xeon) cells: the calibrated cost profile above applied to the model's exact op counts (measured userspace time when there is no profile). arm64 (M2, Altra) cells: the model's measured userspace time (on this x86 host) plus the counted privileged operations x the assumed per-machine costs below (TLBIs cannot run in userspace). Measured times are the median of the per-run fastest forks.\n");
    s.push_str("- **Alternative** (detail tables, `a`): x86_64 cells the measured userspace time; arm64 cells this host's calibrated profile applied to the arm64 op counts plus the same privileged costs. The summary scores both.\n");
    s.push_str("- **Sign** agrees when both values fall in the same class: `+`, `−`, or `≈0` for |change| ≤ 1.0% (the thread's run-to-run sd is 1–2%).\n");
    s.push_str(&format!("- **Ranking** compares pairs of cells (rows within a column, or for one-row and by-size tables, columns within a row) and agrees when the model orders a pair as the thread does. Pairs the thread cannot order (within {THREAD_TIE_PP} pp), the model cannot order (within {MODEL_TIE_PP} pp) or that use the same model configurations (e.g. rows differing only by compiler) are skipped.\n"));
    s.push_str("- **Ops** lists the model's exact op counts per page table (512 PTEs) for the row's highest-order cell, new vs base, where they differ.\n");
    s.push_str("- **Why** is shown when sign or ranking disagree. The model runs in userspace on this host: it cannot see compiler/inlining effects, branch and call overhead, the kernel's per-PTE folio/rmap work beyond the counted ops, cache-coherence costs of another machine (80-core Altra vs an M2 VM vs a Xeon), or TLBI/DSB costs (priced by assumption).\n\n");
    s.push_str("Privileged-op cost assumptions (documented, not measured, not fitted to the tables):\n\n| machine | range TLBI (64 KiB block) | flush_tlb_mm | basis |\n|---|---|---|---|\n");
    for (m, c) in &inputs.machine_costs {
        s.push_str(&format!(
            "| {m} | {} ns | {} ns | {} |\n",
            c.tlbi_ns, c.flush_tlb_mm_ns, c.basis
        ));
    }
    s.push_str("| Xeon | — | — | x86 fork issues no range TLBIs; flush_tlb_mm is inside the profile's fixed per-fork term |\n\n");
    // Summary.
    let mut summary = String::from(
        "## Summary\n\n| table | cells | sign agrees | ranking agrees | sign agrees (alternative) | ranking agrees (alternative) |\n|---|---|---|---|---|---|\n",
    );
    let mut body = String::new();
    let (mut tot_s, mut tot_sa, mut tot_r, mut tot_ra) = (0, 0, 0, 0);
    for t in &tables {
        let g = grid(inputs, t);
        let ag = agreements(t, &g, false);
        let agm = agreements(t, &g, true);
        let sum = |v: &[RowAgreement]| {
            v.iter().fold((0, 0, 0, 0), |a, r| {
                (
                    a.0 + r.sign_agree,
                    a.1 + r.sign_total,
                    a.2 + r.rank_agree,
                    a.3 + r.rank_total,
                )
            })
        };
        let (sa, st, ra, rt) = sum(&ag);
        let (msa, mst, mra, mrt) = sum(&agm);
        tot_s += st;
        tot_sa += sa;
        tot_r += rt;
        tot_ra += ra;
        summary.push_str(&format!(
            "| {}. {} | {} | {sa}/{st} | {ra}/{rt} | {msa}/{mst} | {mra}/{mrt} |\n",
            t.id, t.title, st
        ));
        body.push_str(&format!("## Table {}: {}\n\n", t.id, t.title));
        body.push_str(&format!(
            "Source: {}.  \nModel: {}  \nLimits: {}\n\n",
            t.source, t.mapping, t.limits
        ));
        body.push_str(&format!(
            "| | {} | sign | ranking | ops | why (when they disagree) |\n|---|{}---|---|---|---|\n",
            t.columns
                .iter()
                .map(|c| format!("{c}: thread / model"))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(t.columns.len())
        ));
        for (ri, r) in t.rows.iter().enumerate() {
            let cells: Vec<String> = r
                .cells
                .iter()
                .enumerate()
                .map(|(ci, c)| {
                    let th = if c.thread.is_some() {
                        c.text.to_string()
                    } else {
                        "—".into()
                    };
                    let mo = match (&c.model, &g[ri][ci]) {
                        (None, _) => "n/m".to_string(),
                        (Some(_), None) => "no data".to_string(),
                        (Some(_), Some(e)) => fmt_pct(e.model),
                    };
                    if c.thread.is_none() && c.model.is_none() {
                        "—".into()
                    } else {
                        format!("{th} / {mo}")
                    }
                })
                .collect();
            let a = &ag[ri];
            let why = if a.ok() { "—" } else { r.why };
            body.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                r.label,
                cells.join(" | "),
                agreement_text(a.sign_agree, a.sign_total, &a.sign_misses),
                agreement_text(a.rank_agree, a.rank_total, &a.rank_misses),
                ops_text(t, ri, &g),
                why
            ));
        }
        // Detail: measured-only vs primary, and the configurations.
        body.push_str(&format!(
            "\nDetail (p = primary, a = alternative: {}):\n\n| | {} |\n|---|{}\n",
            if t.rows
                .iter()
                .flat_map(|r| &r.cells)
                .any(|c| c.machine != Machine::Xeon)
            {
                "p = measured userspace + privileged ops, a = host profile + privileged ops"
            } else {
                "p = calibrated profile, a = measured userspace"
            },
            t.columns.join(" | "),
            "---|".repeat(t.columns.len())
        ));
        for (ri, r) in t.rows.iter().enumerate() {
            let cells: Vec<String> = r
                .cells
                .iter()
                .enumerate()
                .map(|(ci, c)| match (&c.model, &g[ri][ci]) {
                    (Some(mc), Some(e)) => format!(
                        "p {} · a {} · `{}` vs `{}`",
                        fmt_pct(e.model),
                        e.alternative.map_or("—".into(), fmt_pct),
                        mc.new.key(),
                        mc.base.key()
                    ),
                    (Some(_), None) => "no data".into(),
                    (None, _) => "n/m".into(),
                })
                .collect();
            body.push_str(&format!("| {} | {} |\n", r.label, cells.join(" | ")));
        }
        body.push('\n');
        let _ = class_name; // classes are described in the text
    }
    summary.push_str(&format!(
        "| all | {tot_s} | {tot_sa}/{tot_s} | {tot_ra}/{tot_r} | | |\n\n"
    ));
    s.push_str(&summary);
    s.push_str(&body);
    s
}

/// Regenerate the report from `inputs` and compare with `report`; a stale or missing report is
/// an error that says how to regenerate it.
pub fn check_fresh(inputs: &Path, report: &Path) -> Result<()> {
    let want = render(&Inputs::load(inputs)?);
    let have = std::fs::read_to_string(report).unwrap_or_default();
    if have == want {
        return Ok(());
    }
    let line = have
        .lines()
        .zip(want.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| have.lines().count().min(want.lines().count()))
        + 1;
    Err(CalibrateError::Stale {
        path: report.to_owned(),
        inputs: inputs.to_owned(),
        line,
    })
}

/// Entry point of `cargo xtask fidelity`: optionally measure, then render. Returns the report path.
pub fn run_fidelity(root: &Path, forkbench: &Path, args: &FidelityArgs) -> Result<PathBuf> {
    let inputs_path = args
        .inputs
        .clone()
        .unwrap_or_else(|| root.join("results/fidelity-inputs.json"));
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| root.join("results/fidelity.md"));
    if args.check {
        check_fresh(&inputs_path, &out)?;
        println!("{} is up to date", out.display());
        return Ok(out);
    }
    if args.measure {
        let profile = if args.no_profile {
            None
        } else {
            let path = args
                .profile
                .clone()
                .or_else(|| newest_profile(&root.join("results/calibration"), &util::host_name()));
            match path {
                Some(p) => Some((
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    CostProfile::load(&p)?,
                )),
                None => None,
            }
        };
        let inputs = measure(forkbench, args, profile)?;
        let json = serde_json::to_string_pretty(&inputs).expect("inputs serialise") + "\n";
        util::write_replace(&inputs_path, json.as_bytes())?;
        eprintln!("fidelity: wrote {}", inputs_path.display());
    } else if args.profile.is_some() || args.no_profile {
        // Re-price the existing measurements with another cost profile (or none).
        let mut inputs = Inputs::load(&inputs_path)?;
        match &args.profile {
            Some(p) => {
                inputs.profile = Some(CostProfile::load(p)?);
                inputs.profile_file = Some(
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            None => {
                inputs.profile = None;
                inputs.profile_file = None;
            }
        }
        let json = serde_json::to_string_pretty(&inputs).expect("inputs serialise") + "\n";
        util::write_replace(&inputs_path, json.as_bytes())?;
        eprintln!(
            "fidelity: re-priced {} with the new profile",
            inputs_path.display()
        );
    }
    let inputs = Inputs::load(&inputs_path)?;
    util::write_replace(&out, render(&inputs).as_bytes())?;
    println!("wrote {}", out.display());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Synthetic inputs: every needed configuration, with times and ops derived from the key so
    /// the report is fully populated.
    pub(super) fn synthetic(profile: bool) -> Inputs {
        let mut measurements = Vec::new();
        for c in needed_configs(&thread_tables()) {
            let batched = c.strategy == "upstream" || c.strategy == "fork-batching";
            let per_pte = if batched {
                10.0 - c.order as f64 * 0.5
            } else {
                11.0
            };
            let tlbi = if c.contpte == Some("basic") {
                16_384
            } else {
                0
            };
            let ops = Ops::from([
                ("pte_tables_allocated".to_string(), 512),
                ("mapcount_atomics".to_string(), 262_144),
                (
                    "batches".to_string(),
                    if batched { 262_144 >> c.order } else { 262_144 },
                ),
                ("tlbi".to_string(), tlbi),
                ("tlb_flush_mm".to_string(), 1),
            ]);
            measurements.push(Measurement {
                key: c.key(),
                arch: c.arch.into(),
                contpte: c.contpte.map(Into::into),
                strategy: c.strategy.into(),
                order: c.order,
                run_means_ns: vec![per_pte * 262_144.0; 2],
                run_mins_ns: vec![per_pte * 262_144.0; 2],
                ops,
            });
        }
        Inputs {
            schema: INPUTS_SCHEMA,
            created_utc: "2026-01-01T00:00:00Z".into(),
            host: "test".into(),
            kernel: "6.18".into(),
            cpu_model: "cpu".into(),
            tool_version: "0".into(),
            settings: InputSettings {
                mem: "1G".into(),
                iters: 1,
                runs: 2,
                mode: "fresh".into(),
                mapcount: "per-page".into(),
                cpu: None,
            },
            machine_costs: default_machine_costs(),
            profile_file: profile.then(|| "test.json".into()),
            profile: profile.then(crate::profile::tests::sample_profile),
            measurements,
        }
    }

    #[test]
    fn every_table_and_row_is_rendered() {
        let r = render(&synthetic(true));
        for t in thread_tables() {
            assert!(
                r.contains(&format!("## Table {}: {}", t.id, t.title)),
                "table {}",
                t.id
            );
            for row in &t.rows {
                assert!(
                    r.contains(&format!("| {} |", row.label)),
                    "row {}",
                    row.label
                );
            }
        }
        assert!(r.contains("cost profile: box"), "caption missing");
        assert!(!r.contains("no data"));
        assert_eq!(r, render(&synthetic(true)), "rendering is deterministic");
        let r2 = render(&synthetic(false));
        assert!(r2.contains("cost profile: none"));
    }

    #[test]
    fn missing_measurements_are_marked() {
        let mut i = synthetic(false);
        i.measurements.clear();
        let r = render(&i);
        assert!(r.contains("no data"));
    }

    #[test]
    fn sign_classes_and_formatting() {
        assert_eq!(sign_class(1.0), 0);
        assert_eq!(sign_class(-1.0), 0);
        assert_eq!(sign_class(1.01), 1);
        assert_eq!(sign_class(-36.3), -1);
        assert_eq!(fmt_pct(-1.25), "−1.2%");
        assert_eq!(fmt_pct(3.0), "+3.0%");
    }

    #[test]
    fn ranking_counts_and_skips_same_source_rows() {
        let i = synthetic(false);
        let tables = thread_tables();
        // Table 3: rows 1–3 share a model and are not ranked against each other; each of them
        // is ranked against row 4 in the four columns.
        let t3 = &tables[2];
        let g = grid(&i, t3);
        let ag = agreements(t3, &g, false);
        assert_eq!(ag[0].rank_total, 4);
        // 12 pairs minus two the thread cannot order (−3.3 vs −3.6, −0.1 vs −0.4).
        assert_eq!(ag[3].rank_total, 10);
        assert_eq!(ag[0].sign_total, 4);
        // Table 6 ranks sizes within a row: 9 sizes → 36 pairs minus ties in the thread.
        let t6 = &tables[5];
        let ag6 = agreements(t6, &grid(&i, t6), false);
        assert!(ag6[0].rank_total > 0 && ag6[0].rank_total <= 36);
    }

    #[test]
    fn check_fresh_detects_stale_and_accepts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let inp = dir.path().join("in.json");
        let rep = dir.path().join("f.md");
        let i = synthetic(false);
        std::fs::write(&inp, serde_json::to_string(&i).unwrap()).unwrap();
        std::fs::write(&rep, "old\n").unwrap();
        let e = check_fresh(&inp, &rep).unwrap_err();
        assert!(e.to_string().contains("cargo xtask fidelity"), "{e}");
        std::fs::write(&rep, render(&i)).unwrap();
        check_fresh(&inp, &rep).unwrap();
    }
}
