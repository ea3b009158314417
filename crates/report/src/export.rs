//! CSV and JSON exports of the case rows, loadable by pandas (`pd.read_csv(path)`,
//! `pd.read_json(path)`, one record per row). Columns, in order:
//!
//! | column | meaning |
//! |---|---|
//! | `machine`, `label` | result file's machine and label |
//! | `instrument` | `sim` (model) or `real` (fork() on the host) |
//! | `arch`, `layout`, `mem_bytes`, `mode`, `options`, `strategy` | the variant |
//! | `case` | the case (table) title; `kernel` the row name; `baseline` the case's baseline row |
//! | `n` | runs; `mean_ns`, `std_ns` mean and sample std of run means |
//! | `mean_rel`, `std_rel` | as in the thread (fractions, not percent) |
//! | `ratio`, `ci_lo`, `ci_hi` | mean / baseline mean and its 95% CI (delta method on logs) |
//! | `p`, `t`, `df` | Welch's t-test against the baseline |
//! | `cv`, `mde` | pooled CV and minimum detectable effect (fractions) |
//! | `verdict`, `runs_needed` | `faster`, `slower`, `same`, `unknown` (+ runs per side to settle), or `baseline` |
//!
//! Missing values are empty in CSV and `null` in JSON.

use serde_json::{Value, json};

use crate::cases::Case;

/// Column names of [`to_csv`] and keys of [`to_json`], in order.
pub const COLUMNS: [&str; 26] = [
    "machine",
    "label",
    "instrument",
    "arch",
    "layout",
    "mem_bytes",
    "mode",
    "options",
    "strategy",
    "case",
    "kernel",
    "baseline",
    "n",
    "mean_ns",
    "std_ns",
    "mean_rel",
    "std_rel",
    "ratio",
    "ci_lo",
    "ci_hi",
    "p",
    "t",
    "df",
    "cv",
    "mde",
    "verdict",
];

fn num(x: Option<f64>) -> Value {
    match x {
        Some(v) if v.is_finite() => json!(v),
        _ => Value::Null,
    }
}

/// All rows as JSON objects (keys [`COLUMNS`] plus `runs_needed`).
pub fn records(cases: &[Case]) -> Vec<serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    for c in cases {
        for r in &c.rows {
            let m = r.cmp;
            // The baseline row is compared with itself: only its relative figures mean anything.
            let is_base = r.name == c.baseline;
            let t = if is_base { None } else { m };
            let inst = match r.instrument {
                results::Instrument::Sim => "sim",
                results::Instrument::Real => "real",
            };
            let vals = [
                json!(r.machine),
                json!(r.label),
                json!(inst),
                json!(r.arch),
                json!(r.layout),
                json!(r.mem_bytes),
                json!(r.mode),
                json!(r.options),
                json!(r.strategy),
                json!(c.title()),
                json!(r.name),
                json!(c.baseline),
                json!(r.summary.n),
                num(Some(r.summary.mean)),
                num(Some(r.summary.std)),
                num(m.map(|m| m.rel.mean_rel)),
                num(m.map(|m| m.rel.std_rel)),
                num(m.and_then(|m| m.ci).map(|c| c.ratio)),
                num(t.and_then(|m| m.ci).map(|c| c.lo)),
                num(t.and_then(|m| m.ci).map(|c| c.hi)),
                num(t.and_then(|m| m.welch).map(|w| w.p)),
                num(t.and_then(|m| m.welch).map(|w| w.t)),
                num(t.and_then(|m| m.welch).map(|w| w.df)),
                num(m.map(|m| m.cv)),
                num(t.and_then(|m| m.mde)),
                if is_base {
                    json!("baseline")
                } else {
                    m.map(|m| json!(m.verdict.as_str())).unwrap_or(Value::Null)
                },
            ];
            let mut obj = serde_json::Map::new();
            for (k, v) in COLUMNS.iter().zip(vals) {
                obj.insert((*k).into(), v);
            }
            obj.insert(
                "runs_needed".into(),
                t.and_then(|m| m.runs_needed)
                    .map(|n| json!(n))
                    .unwrap_or(Value::Null),
            );
            out.push(obj);
        }
    }
    out
}

/// JSON array of records (pretty-printed).
pub fn to_json(cases: &[Case]) -> String {
    let v: Vec<Value> = records(cases).into_iter().map(Value::Object).collect();
    serde_json::to_string_pretty(&v).expect("json") + "\n"
}

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => return String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// CSV with a header line: [`COLUMNS`] then `runs_needed`.
pub fn to_csv(cases: &[Case]) -> String {
    let mut out = COLUMNS.join(",");
    out.push_str(",runs_needed\n");
    for rec in records(cases) {
        let line: Vec<String> = COLUMNS
            .iter()
            .chain(std::iter::once(&"runs_needed"))
            .map(|k| csv_field(&rec[*k]))
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}
