//! Grouping of result files into *cases* (one relative table each) and *rows* (one variant
//! each, summarised over its run means and compared with the case's baseline row).
//!
//! - Model runs (`sim`): a case is (arch, layout, mem, mode); a row is the strategy, plus the
//!   engine options (e.g. `contpte-ena`) when present, prefixed by the file's label when the
//!   selection holds more than one label.
//! - Real-fork runs: with one label, a case is (arch, mem, mode) and a row is the layout, so the
//!   table shows what the folio layout costs on this kernel; with several labels (one per
//!   kernel), a case is (arch, layout, mem, mode) and a row is the label.
//!
//! The baseline of a case is the first row (in row order) whose name, label or strategy equals
//! the requested baseline.

use std::collections::BTreeMap;

use results::{Instrument, ResultFile, RunRecord};
use stats::{Comparison, Policy, Summary};

/// Thread row order of the model's strategies (the contract's canonical order).
pub const STRATEGY_ORDER: [&str; 5] = {
    let all = results::Strategy::ALL;
    [
        all[0].name(),
        all[1].name(),
        all[2].name(),
        all[3].name(),
        all[4].name(),
    ]
};

/// Row order of engine options (contpte-dis first: it is the pre-contpte kernel).
pub const OPTIONS_ORDER: [&str; 4] = ["", "contpte-dis", "contpte-ena", "contpte-basic"];

/// Row/column order of the real benchmark's layouts.
pub const LAYOUT_ORDER: [&str; 7] = [
    "order0",
    "order4",
    "mthp-64k",
    "order9",
    "pte-order9",
    "pmd-order9",
    "untouched",
];

/// Errors from building cases.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaseError {
    #[error("the selection holds no runs")]
    Empty,
    #[error("baseline '{0}' matches no row in {1} (rows: {2})")]
    UnknownBaseline(String, String, String),
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
    /// `Variant::options`.
    pub options: String,
    pub mem_bytes: u64,
    pub mode: String,
    /// Mean of each run, ns, in run order.
    pub run_means: Vec<f64>,
    pub summary: Summary,
    /// Op counts of one fork (model only; identical across runs).
    pub ops: BTreeMap<String, u64>,
    /// Against the case's baseline (the baseline row compares with itself: 0 %); None only
    /// when a summary is unusable.
    pub cmp: Option<Comparison>,
}

/// One relative table.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub instrument: Instrument,
    pub arch: String,
    /// The case's layout; empty for a real-fork case whose rows are layouts.
    pub layout: String,
    pub mem_bytes: u64,
    pub mode: String,
    pub machine: String,
    pub baseline: String,
    pub rows: Vec<Row>,
}

impl Case {
    /// `fork, x86_64 model, order9 (1024 MiB, fresh)`.
    pub fn title(&self) -> String {
        let inst = match self.instrument {
            Instrument::Sim => "model",
            Instrument::Real => "real fork()",
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

    /// The key of the combined table this case belongs to (all layouts of one instrument/arch).
    pub fn group_key(&self) -> (Instrument, String, u64, String) {
        (
            self.instrument,
            self.arch.clone(),
            self.mem_bytes,
            self.mode.clone(),
        )
    }
}

/// Column heading of a layout in the combined table: `order-0 (pte-map)`, …
pub fn layout_heading(layout: &str) -> String {
    match layout {
        "order0" => "order-0 (pte-map)".into(),
        "order9" | "pte-order9" => "order-9 (pte-map)".into(),
        "pmd-order9" => "order-9 (pmd-map)".into(),
        "mthp-64k" => "order-4 (64K mTHP)".into(),
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

/// Build the cases of a selection of result files. `baseline`: explicit baseline (row name,
/// label or strategy); by default `mm-unstable` for the model, the first file's label for
/// real-fork runs of several kernels, and `order0` for real-fork layouts of one kernel.
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
    // (case key, row key) → runs
    type CaseKey = (Instrument, String, String, u64, String);
    let mut cases: Vec<(CaseKey, String)> = Vec::new(); // key, machine
    let mut rows: BTreeMap<CaseKey, Vec<(SortKey, Row)>> = BTreeMap::new();
    type SortKey = (usize, usize, usize, usize, String);
    for (fi, f) in files.iter().enumerate() {
        let li = labels.iter().position(|l| *l == f.label).unwrap_or(0);
        for r in &f.runs {
            let v = &r.variant;
            let inst = v.instrument();
            let layout = v.layout_name();
            let options = v.options();
            let by_layout = inst == Instrument::Real && !multi;
            let key: CaseKey = (
                inst,
                v.arch().to_string(),
                if by_layout {
                    String::new()
                } else {
                    layout.clone()
                },
                v.mem_bytes(),
                v.mode().to_string(),
            );
            let mut name = String::new();
            if multi {
                name.push_str(&f.label);
            }
            let row_name = v.row_name();
            let part = match inst {
                Instrument::Sim => row_name.as_str(),
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
            let sort: SortKey = (
                li,
                rank(&STRATEGY_ORDER, &row_name),
                rank(&LAYOUT_ORDER, &layout),
                rank(&OPTIONS_ORDER, &options),
                name.clone(),
            );
            if !cases.iter().any(|(k, _)| *k == key) {
                cases.push((key.clone(), f.machine.clone()));
            }
            let list = rows.entry(key).or_default();
            match list.iter_mut().find(|(_, row)| row.name == name) {
                Some((_, row)) => row.run_means.push(r.mean_ns()),
                None => list.push((sort, new_row(&name, f, r, fi))),
            }
        }
    }
    if cases.is_empty() {
        return Err(CaseError::Empty);
    }
    // Order cases: instrument, arch, layout order, mem.
    cases.sort_by(|(a, _), (b, _)| {
        (a.0, &a.1, rank(&LAYOUT_ORDER, &a.2), &a.2, a.3, &a.4).cmp(&(
            b.0,
            &b.1,
            rank(&LAYOUT_ORDER, &b.2),
            &b.2,
            b.3,
            &b.4,
        ))
    });
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
        let default_base = match key.0 {
            Instrument::Sim => STRATEGY_ORDER[0],
            Instrument::Real if multi => labels[0],
            Instrument::Real => "order0",
        };
        let want = baseline.unwrap_or(default_base);
        let found = rows
            .iter()
            .find(|r| r.name == want)
            .or_else(|| rows.iter().find(|r| r.label == want || r.strategy == want))
            .or_else(|| {
                rows.iter()
                    .find(|r| key.0 == Instrument::Real && r.layout == want)
            });
        let case_stub = Case {
            instrument: key.0,
            arch: key.1.clone(),
            layout: key.2.clone(),
            mem_bytes: key.3,
            mode: key.4.clone(),
            machine,
            baseline: String::new(),
            rows: Vec::new(),
        };
        let base = match found {
            Some(b) => b.clone(),
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
        for r in &mut rows {
            r.cmp = (base.summary.mean.is_finite() && r.summary.mean.is_finite())
                .then(|| stats::compare(&base.summary, &r.summary, policy));
        }
        out.push(Case {
            baseline: base.name.clone(),
            rows,
            ..case_stub
        });
    }
    Ok(out)
}

fn new_row(name: &str, f: &ResultFile, r: &RunRecord, _fi: usize) -> Row {
    let v = &r.variant;
    Row {
        name: name.to_string(),
        label: f.label.clone(),
        machine: f.machine.clone(),
        instrument: v.instrument(),
        arch: v.arch().to_string(),
        strategy: v.row_name(),
        layout: v.layout_name(),
        options: v.options(),
        mem_bytes: v.mem_bytes(),
        mode: v.mode().to_string(),
        run_means: vec![r.mean_ns()],
        summary: Summary {
            n: 0,
            mean: f64::NAN,
            std: f64::NAN,
        },
        ops: r.ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        cmp: None,
    }
}
