//! Grouping of result files into *cases* (one relative table each) and *rows* (one variant
//! each, summarised over its run means and compared with the case's baseline row).
//!
//! - Model runs (`sim`): a case is (arch, layout, mem, mode); a row is the strategy, plus the
//!   engine options (e.g. `contpte-ena`) when present, prefixed by the file's label when the
//!   selection holds more than one label.
//! - Real-fork runs: with one label, a case is (arch, mem, mode) and a row is the layout, so the
//!   table shows what the folio layout costs on this kernel; with several labels (one per
//!   kernel), a case is (arch, layout, mem, mode) and a row is the label.
//! - Real-fork runs of several kernels under one label (guests booted by `bench --kernel A
//!   --kernel B`): a case is (arch, layout, mem, mode) and a row is the kernel, named by
//!   [`kernel_row_name`] (`6.12.107+deb13-cloud-amd64 (tcg)`); every case lists every kernel of
//!   its group ([`Case::kernel_rows`]) so a layout a kernel could not run reads n/a.
//!
//! The baseline of a case is the first row (in row order) whose name, label or strategy equals
//! the requested baseline.
//!
//! Exact runs (QEMU icount: samples are guest instructions, [`SampleUnit::Instructions`]) never
//! share a case with timed runs: the unit is part of every case's key. Their rows carry the
//! median of each run and an [`ExactRow`] (runs' agreement, change and verdict, no statistics
//! of sampling noise) instead of a [`Comparison`].

use std::collections::BTreeMap;

use results::{Accel, Instrument, ResultFile, RunRecord, SampleUnit, Variant};
use stats::exact::{ExactPolicy, agreement, compare_agreements, run_value};
use stats::{Comparison, Policy, Summary};

use crate::exact::ExactRow;

/// Thread row order of the model's strategies (the contract's canonical order: the thread's
/// five, `current`, then the kernels' stand-ins).
pub const STRATEGY_ORDER: [&str; results::Strategy::ALL.len()] = {
    let all = results::Strategy::ALL;
    let mut names = [""; results::Strategy::ALL.len()];
    let mut i = 0;
    while i < all.len() {
        names[i] = all[i].name();
        i += 1;
    }
    names
};

/// Row order of engine options (contpte-dis first: it is the pre-contpte kernel).
pub const OPTIONS_ORDER: [&str; 4] = ["", "contpte-dis", "contpte-ena", "contpte-basic"];

/// Row/column order of the real benchmark's layouts.
pub const LAYOUT_ORDER: [&str; 9] = [
    "order0",
    "order4",
    "mthp-64k",
    "order9",
    "pte-order9",
    "pmd-order9",
    "mix-64k",
    "mix-pmd",
    "untouched",
];

/// Column order of kernel-rows tables: the thread's order-0 and order-9 (pte-map) first.
pub const KERNEL_COLUMN_ORDER: [&str; 9] = [
    "order0",
    "pte-order9",
    "order9",
    "pmd-order9",
    "order4",
    "mthp-64k",
    "mix-64k",
    "mix-pmd",
    "untouched",
];

/// Errors from building cases.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaseError {
    #[error("the selection holds no runs")]
    Empty,
    #[error("baseline '{0}' matches no row in {1} (rows: {2})")]
    UnknownBaseline(String, String, String),
    #[error("baseline kernel '{0}' is not in the selection (kernels: {1})")]
    UnknownKernel(String, String),
}

/// One row: a variant summarised over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub label: String,
    pub machine: String,
    pub instrument: Instrument,
    pub arch: String,
    /// The variant's row name: the strategy (model) or the kernel release (real fork).
    pub strategy: String,
    /// `Variant::layout_name`.
    pub layout: String,
    /// `Variant::options` (in kernel rows without the accelerator, which the name carries).
    pub options: String,
    /// Where a real-fork kernel ran (`host` for the model).
    pub accel: Accel,
    pub mem_bytes: u64,
    pub mode: String,
    /// What the samples count: ns (timed) or guest instructions (exact).
    pub unit: SampleUnit,
    /// The value of each run, in run order: the mean of its samples (timed, ns) or their
    /// median (exact, instructions: see `stats::exact`).
    pub run_means: Vec<f64>,
    /// The `run_index` of each of those runs.
    pub run_indexes: Vec<u32>,
    /// Exact rows whose guest counted `instructions` (arm64: QEMU's PMUv3 under icount): per
    /// run, (the mean of its samples, the counter per fork). Empty without the counter.
    pub pmu_check: Vec<(f64, f64)>,
    /// Base page size of the kernel that ran (real fork, from the first run's context).
    pub page_size: Option<u64>,
    pub summary: Summary,
    /// Op counts of one fork (model only; identical across runs).
    pub ops: BTreeMap<String, u64>,
    /// Against the case's baseline (the baseline row compares with itself: 0 %); None only
    /// when a summary is unusable, and always for exact rows (see `exact`).
    pub cmp: Option<Comparison>,
    /// Exact rows only: the runs' agreement and the change against the baseline.
    pub exact: Option<ExactRow>,
    /// The variant of the row's first run (what a noise estimate of the row is looked up by).
    pub variant: Variant,
}

/// One relative table.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub instrument: Instrument,
    /// The unit of every row's samples (one case never mixes units).
    pub unit: SampleUnit,
    pub arch: String,
    /// The case's layout; empty for a real-fork case whose rows are layouts.
    pub layout: String,
    pub mem_bytes: u64,
    pub mode: String,
    pub machine: String,
    pub baseline: String,
    pub rows: Vec<Row>,
    /// Kernel rows only: every kernel row name of this case's (arch, mem, mode) group, in row
    /// order, including kernels without runs in this case. Empty for other cases.
    pub kernel_rows: Vec<String>,
    /// Kernel rows only: the baseline kernel when it has no runs in this case (the case's
    /// `baseline` is then the first kernel that has).
    pub baseline_absent: Option<String>,
    /// How exact rows were judged (printed above their verdicts).
    pub exact_policy: ExactPolicy,
}

impl Case {
    /// `fork, x86_64 model, order9 (1024 MiB, fresh)`; exact cases say so:
    /// `fork, x86_64 real fork() exact, order0 (256 MiB, steady)`.
    pub fn title(&self) -> String {
        let inst = match (self.instrument, self.unit) {
            (Instrument::Sim, _) => "model",
            (Instrument::Real, SampleUnit::Nanoseconds) => "real fork()",
            (Instrument::Real, SampleUnit::Instructions) => "real fork() exact",
        };
        let what = if self.layout.is_empty() {
            "layouts".to_string()
        } else {
            self.layout.clone()
        };
        format!(
            "fork, {} {inst}, {what} ({} MiB, {})",
            self.arch,
            self.mem_bytes >> 20,
            self.mode
        )
    }

    /// The key of the combined table this case belongs to (all layouts of one instrument,
    /// unit and arch).
    pub fn group_key(&self) -> (Instrument, SampleUnit, String, u64, String) {
        (
            self.instrument,
            self.unit,
            self.arch.clone(),
            self.mem_bytes,
            self.mode.clone(),
        )
    }

    /// Are this case's samples guest instructions?
    pub fn is_exact(&self) -> bool {
        self.unit == SampleUnit::Instructions
    }
}

/// Column heading of a layout in the combined table: `order-0 (pte-map)`, …
pub fn layout_heading(layout: &str) -> String {
    match layout {
        "order0" => "order-0 (pte-map)".into(),
        "order9" | "pte-order9" => "order-9 (pte-map)".into(),
        "pmd-order9" => "order-9 (pmd-map)".into(),
        "mthp-64k" => "order-4 (64K mTHP)".into(),
        "mix-64k" => "mix (64K mTHP + order-0)".into(),
        "mix-pmd" => "mix (pmd-map + pte-map)".into(),
        "untouched" => "untouched".into(),
        l => match l.strip_prefix("order") {
            Some(n) => format!("order-{n} (pte-map)"),
            None => l.to_string(),
        },
    }
}

fn rank(list: &[&str], x: &str) -> usize {
    list.iter().position(|s| *s == x).unwrap_or(list.len())
}

/// Place of a layout among [`LAYOUT_ORDER`]: an mTHP size there or not (`mthp-16k` ...
/// `mthp-1024k`, a sweep) sits where `mthp-64k` does, in folio-size order.
fn layout_place(layout: &str) -> (usize, u64) {
    match layout
        .strip_prefix("mthp-")
        .and_then(|k| k.strip_suffix('k'))
        .and_then(|k| k.parse::<u64>().ok())
    {
        Some(kb) => (rank(&LAYOUT_ORDER, "mthp-64k"), kb),
        None => (rank(&LAYOUT_ORDER, layout), 0),
    }
}

/// Row name of a real-fork kernel: its release, marked with the accelerator when it ran in a
/// guest (`6.12.107+deb13-cloud-amd64 (tcg)`); the host's own kernel is its bare release.
pub fn kernel_row_name(kernel: &str, accel: Accel) -> String {
    match accel {
        Accel::Host => kernel.to_string(),
        a => format!("{kernel} ({a})"),
    }
}

/// The kernel row name of a real-fork variant (None for the model).
fn kernel_of(v: &Variant) -> Option<String> {
    match v {
        Variant::Real(r) => Some(kernel_row_name(&r.kernel, r.accel)),
        Variant::Sim(_) => None,
    }
}

/// Real-fork options other than the accelerator (which a kernel row's name already carries).
pub(crate) fn options_without_accel(v: &Variant) -> String {
    match v {
        Variant::Real(r) => {
            let mut o: Vec<String> = Vec::new();
            if r.sched != results::Sched::Other {
                o.push(format!("sched-{}", r.sched));
            }
            if r.unverified {
                o.push("unverified".into());
            }
            o.join(",")
        }
        Variant::Sim(_) => v.options(),
    }
}

/// The kernels (row names, see [`kernel_row_name`]) of the selection's real-fork runs, in the
/// order they first appear in the runs; a file's `config.kernels` (releases, in the order the
/// kernels were given) comes first when the driver wrote one, since runs are shuffled per round.
pub fn kernel_order(files: &[ResultFile]) -> Vec<String> {
    let mut seen: Vec<(String, String)> = Vec::new(); // (row name, release)
    for f in files {
        for r in &f.runs {
            if let Variant::Real(v) = &r.variant {
                let name = kernel_row_name(&v.kernel, v.accel);
                if !seen.iter().any(|(n, _)| *n == name) {
                    seen.push((name, v.kernel.clone()));
                }
            }
        }
    }
    let given: Vec<&str> = files
        .iter()
        .filter_map(|f| f.config.get("kernels").and_then(|k| k.as_array()))
        .flatten()
        .filter_map(|k| k.as_str())
        .collect();
    // Stable: kernels the config does not name keep their run order, after those it names.
    seen.sort_by_key(|(_, release)| rank(&given, release));
    seen.into_iter().map(|(n, _)| n).collect()
}

/// Does the selection hold real-fork runs of more than one kernel under one label? Then its
/// real-fork cases are *kernel rows*: one case per layout, one row per kernel.
fn has_kernel_rows(files: &[ResultFile]) -> bool {
    let mut per_label: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in files {
        let ks = per_label.entry(&f.label).or_default();
        for r in &f.runs {
            if let Some(k) = kernel_of(&r.variant)
                && !ks.contains(&k)
            {
                ks.push(k);
            }
        }
    }
    per_label.values().any(|ks| ks.len() > 1)
}

/// Does `want` name this row (its name, label, strategy/kernel release, or kernel row name)?
fn names_row(r: &Row, want: &str) -> bool {
    r.name == want
        || r.label == want
        || r.strategy == want
        || (r.instrument == Instrument::Real && kernel_row_name(&r.strategy, r.accel) == want)
}

/// Build the cases of a selection of result files. `baseline`: explicit baseline (row name,
/// label, strategy or kernel); by default `mm-unstable` for the model, the first file's label
/// for real-fork runs of several labels, the first kernel ([`kernel_order`]) for real-fork runs
/// of several kernels, and `order0` for real-fork layouts of one kernel. In kernel rows a
/// layout does not name a row, so a layout baseline (e.g. a profile's `order0`) is ignored there.
pub fn build_cases(
    files: &[ResultFile],
    baseline: Option<&str>,
    policy: &Policy,
) -> Result<Vec<Case>, CaseError> {
    let mut labels: Vec<&str> = Vec::new();
    for f in files {
        if !labels.contains(&f.label.as_str()) {
            labels.push(&f.label);
        }
    }
    let multi = labels.len() > 1;
    let by_kernel = has_kernel_rows(files);
    let kernels = if by_kernel {
        kernel_order(files)
    } else {
        Vec::new()
    };
    // (case key, row key) → runs
    let mut cases: Vec<(CaseKey, String)> = Vec::new(); // key, machine
    let mut rows: BTreeMap<CaseKey, Vec<(SortKey, Row)>> = BTreeMap::new();
    type SortKey = (usize, usize, usize, (usize, u64), usize, String);
    for f in files {
        let li = labels.iter().position(|l| *l == f.label).unwrap_or(0);
        for r in &f.runs {
            let v = &r.variant;
            let inst = v.instrument();
            let layout = v.layout_name();
            let kernel_rows = inst == Instrument::Real && by_kernel;
            let options = if kernel_rows {
                options_without_accel(v)
            } else {
                v.options()
            };
            let by_layout = inst == Instrument::Real && !multi && !by_kernel;
            let key = CaseKey {
                inst,
                unit: v.unit(),
                arch: v.arch().to_string(),
                layout: if by_layout {
                    String::new()
                } else {
                    layout.clone()
                },
                mem: v.mem_bytes(),
                mode: v.mode().to_string(),
            };
            let mut name = String::new();
            if multi {
                name.push_str(&f.label);
            }
            let row_name = v.row_name();
            let kernel = kernel_of(v).unwrap_or_default();
            let part = match inst {
                Instrument::Sim => row_name.as_str(),
                Instrument::Real if kernel_rows => kernel.as_str(),
                Instrument::Real if by_layout => layout.as_str(),
                Instrument::Real => "",
            };
            for p in [part, options.as_str()] {
                if !p.is_empty() {
                    if !name.is_empty() {
                        name.push(' ');
                    }
                    name.push_str(p);
                }
            }
            let ki = if kernel_rows {
                rank_owned(&kernels, &kernel)
            } else {
                0
            };
            let sort: SortKey = (
                li,
                ki,
                rank(&STRATEGY_ORDER, &row_name),
                layout_place(&layout),
                // By the engine option first: `contpte-ena,per-page+large` (a `current`
                // row) sorts with `contpte-ena`.
                rank(&OPTIONS_ORDER, options.split(',').next().unwrap_or("")),
                name.clone(),
            );
            if !cases.iter().any(|(k, _)| *k == key) {
                cases.push((key.clone(), f.machine.clone()));
            }
            let list = rows.entry(key).or_default();
            match list.iter_mut().find(|(_, row)| row.name == name) {
                Some((_, row)) => {
                    row.run_means.push(run_statistic(r));
                    row.run_indexes.push(r.run_index);
                    row.pmu_check.extend(pmu_check(r));
                }
                None => list.push((sort, new_row(&name, &options, f, r))),
            }
        }
    }
    if cases.is_empty() {
        return Err(CaseError::Empty);
    }
    // Order cases: instrument, arch, layout order (kernel rows: the thread's order-0 and
    // order-9 pte-map columns first), mem.
    let layout_rank = |k: &CaseKey| {
        if k.inst == Instrument::Real && by_kernel {
            rank(&KERNEL_COLUMN_ORDER, &k.layout)
        } else {
            rank(&LAYOUT_ORDER, &k.layout)
        }
    };
    // Timed cases before exact ones: they are separate tables.
    cases.sort_by(|(a, _), (b, _)| {
        (
            a.inst,
            a.unit,
            &a.arch,
            layout_rank(a),
            &a.layout,
            a.mem,
            &a.mode,
        )
            .cmp(&(
                b.inst,
                b.unit,
                &b.arch,
                layout_rank(b),
                &b.layout,
                b.mem,
                &b.mode,
            ))
    });
    // Kernel rows: every row name of each (arch, mem, mode) group, in row order, so a layout
    // a kernel could not run still shows that kernel (as n/a).
    let mut group_rows: BTreeMap<CaseKey, Vec<(SortKey, String)>> = BTreeMap::new();
    if by_kernel {
        for (key, list) in &rows {
            if key.inst != Instrument::Real {
                continue;
            }
            let g = group_rows.entry(key.group()).or_default();
            for (sort, row) in list {
                if !g.iter().any(|(_, n)| *n == row.name) {
                    g.push((sort.clone(), row.name.clone()));
                }
            }
        }
        for g in group_rows.values_mut() {
            g.sort();
        }
    }
    // A kernel baseline must name a row somewhere in the selection's kernel rows.
    let kernel_baseline = match baseline {
        _ if !by_kernel => None,
        // A layout is a column here, never a row.
        Some(b) if b.parse::<results::RealLayout>().is_ok() => None,
        Some(b) => {
            let known = rows
                .iter()
                .filter(|(k, _)| k.inst == Instrument::Real)
                .flat_map(|(_, l)| l.iter())
                .any(|(_, r)| names_row(r, b));
            if !known {
                return Err(CaseError::UnknownKernel(b.to_string(), kernels.join(", ")));
            }
            Some(b)
        }
        None => None,
    };
    let mut out = Vec::new();
    for (key, machine) in cases {
        let mut list = rows.remove(&key).unwrap_or_default();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rows: Vec<Row> = list.into_iter().map(|(_, r)| r).collect();
        for r in &mut rows {
            r.summary = Summary::of(&r.run_means).unwrap_or(Summary {
                n: r.run_means.len(),
                mean: f64::NAN,
                std: f64::NAN,
            });
        }
        let kernel_case = key.inst == Instrument::Real && by_kernel;
        let default_base = match key.inst {
            Instrument::Sim => STRATEGY_ORDER[0],
            Instrument::Real if multi => labels[0],
            Instrument::Real if by_kernel => kernels.first().map_or("", String::as_str),
            Instrument::Real => "order0",
        };
        let want = if kernel_case {
            kernel_baseline.unwrap_or(default_base)
        } else {
            baseline.unwrap_or(default_base)
        };
        let found = rows
            .iter()
            .find(|r| r.name == want)
            .or_else(|| rows.iter().find(|r| names_row(r, want)))
            .or_else(|| {
                rows.iter()
                    .find(|r| key.inst == Instrument::Real && !kernel_case && r.layout == want)
            });
        let case_stub = Case {
            instrument: key.inst,
            unit: key.unit,
            arch: key.arch.clone(),
            layout: key.layout.clone(),
            mem_bytes: key.mem,
            mode: key.mode.clone(),
            machine,
            baseline: String::new(),
            rows: Vec::new(),
            kernel_rows: if kernel_case {
                group_rows
                    .get(&key.group())
                    .map(|g| g.iter().map(|(_, n)| n.clone()).collect())
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
            baseline_absent: None,
            exact_policy: policy.exact,
        };
        let mut baseline_absent = None;
        let base = match found {
            Some(b) => b.clone(),
            // A kernel that did not run this layout (skipped there): the first kernel that did
            // is this column's baseline, and the tables say so.
            None if kernel_case => {
                baseline_absent = Some(want.to_string());
                rows[0].clone()
            }
            // An implicit default that does not exist (e.g. a real-fork run without order0):
            // fall back to the first row.
            None if baseline.is_none() => rows[0].clone(),
            None => {
                return Err(CaseError::UnknownBaseline(
                    want.to_string(),
                    case_stub.title(),
                    rows.iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
            }
        };
        if key.unit == SampleUnit::Instructions {
            compare_exact(&mut rows, &base, &policy.exact);
        } else {
            for r in &mut rows {
                r.cmp = (base.summary.mean.is_finite() && r.summary.mean.is_finite())
                    .then(|| stats::compare(&base.summary, &r.summary, policy));
            }
        }
        out.push(Case {
            baseline: base.name.clone(),
            rows,
            baseline_absent,
            ..case_stub
        });
    }
    Ok(out)
}

/// What makes a case: instrument, unit, arch, layout (empty when the rows are layouts), memory
/// and mode.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CaseKey {
    inst: Instrument,
    unit: SampleUnit,
    arch: String,
    layout: String,
    mem: u64,
    mode: String,
}

impl CaseKey {
    /// The key of this case's group (every layout of it): the layout left out.
    fn group(&self) -> CaseKey {
        CaseKey {
            layout: String::new(),
            ..self.clone()
        }
    }
}

/// The statistic of one run: the mean of its samples, or for exact runs their median (a tick
/// in one fork's window moves that fork only).
fn run_statistic(r: &RunRecord) -> f64 {
    match r.variant.unit() {
        SampleUnit::Nanoseconds => r.mean_ns(),
        SampleUnit::Instructions => run_value(&r.samples_ns).unwrap_or(f64::NAN),
    }
}

/// An exact run's clock (the mean of its samples, instructions per fork) beside its guest's
/// `instructions` counter per fork; None for timed runs and runs without the counter.
fn pmu_check(r: &RunRecord) -> Option<(f64, f64)> {
    if r.variant.unit() != SampleUnit::Instructions {
        return None;
    }
    let per_op = r.real.as_ref()?.counters.get("instructions")?.per_op?;
    let clock = r.mean_ns();
    (clock.is_finite() && per_op.is_finite() && clock > 0.0).then_some((clock, per_op))
}

/// Exact rows: each row's runs' agreement and its change against `base` (no test: the
/// counts are exact, see `stats::exact`).
fn compare_exact(rows: &mut [Row], base: &Row, policy: &ExactPolicy) {
    let base_agreement = agreement(&base.run_means, policy);
    for r in rows.iter_mut() {
        r.cmp = None;
        r.exact = agreement(&r.run_means, policy).map(|own| ExactRow {
            cmp: base_agreement
                .clone()
                .map(|b| compare_agreements(b, own.clone(), policy)),
            own,
        });
    }
}

fn rank_owned(list: &[String], x: &str) -> usize {
    list.iter().position(|s| s == x).unwrap_or(list.len())
}

fn new_row(name: &str, options: &str, f: &ResultFile, r: &RunRecord) -> Row {
    let v = &r.variant;
    Row {
        name: name.to_string(),
        label: f.label.clone(),
        machine: f.machine.clone(),
        instrument: v.instrument(),
        arch: v.arch().to_string(),
        strategy: v.row_name(),
        layout: v.layout_name(),
        options: options.to_string(),
        accel: match v {
            Variant::Real(r) => r.accel,
            Variant::Sim(_) => Accel::Host,
        },
        mem_bytes: v.mem_bytes(),
        mode: v.mode().to_string(),
        unit: v.unit(),
        run_means: vec![run_statistic(r)],
        run_indexes: vec![r.run_index],
        pmu_check: pmu_check(r).into_iter().collect(),
        page_size: f
            .context_of(r)
            .and_then(|c| c.guest.as_ref().map(|g| g.page_size).or(c.env.page_size)),
        summary: Summary {
            n: 0,
            mean: f64::NAN,
            std: f64::NAN,
        },
        ops: r.ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        cmp: None,
        exact: None,
        variant: v.clone(),
    }
}

#[cfg(test)]
mod layout_place_tests {
    use super::layout_place;

    #[test]
    fn mthp_sizes_sit_by_folio_size_where_mthp_64k_does() {
        let mut v = [
            "untouched",
            "mthp-1024k",
            "pte-order9",
            "mthp-16k",
            "order0",
            "mthp-64k",
            "pmd-order9",
            "mix-64k",
        ];
        v.sort_by_key(|l| layout_place(l));
        assert_eq!(
            v,
            [
                "order0",
                "mthp-16k",
                "mthp-64k",
                "mthp-1024k",
                "pte-order9",
                "pmd-order9",
                "mix-64k",
                "untouched"
            ]
        );
    }
}
