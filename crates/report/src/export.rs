//! CSV and JSON exports for pandas/R. Every column of every export is documented in one
//! place, `docs/suite.md` ("Exports"); the orders below are the files' column orders.
//!
//! - [`to_csv`] / [`to_json`]: one record per table row (a variant summarised over its runs),
//!   columns [`COLUMNS`]. `pd.read_csv(path)`, `pd.read_json(path)` (an array of records).
//! - [`samples_csv`] / [`samples_jsonl`]: long format, one record per timed fork, columns
//!   [`SAMPLE_COLUMNS`]. `pd.read_csv(path)`, `pd.read_json(path, lines=True)`.
//!
//! Missing values are empty in CSV and `null` in JSON. JSON objects keep the column order
//! (written key by key: `serde_json::Map` would sort them). Exact rows (guest instructions,
//! `unit` = `instr`) fill their own columns and leave every ns and test column empty: the two
//! never share a column.

use results::{ResultFile, RunRecord, Variant};
use serde_json::{Value, json};

use crate::cases::{Case, Row};
use crate::exact::{PerCopy, per_copy};

/// Column names of [`to_csv`] and keys of [`to_json`], in order.
pub const COLUMNS: [&str; 34] = [
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
    "runs_needed",
    "unit",
    "instr",
    "change",
    "run_spread",
    "runs_agree",
    "instr_per_pte",
    "instr_per_pmd",
];

/// The exact columns (`instr` .. `instr_per_pmd`) of a row; all null for timed rows.
fn exact_fields(cases: &[Case], r: &Row, is_base: bool) -> [Value; 6] {
    let Some(e) = &r.exact else {
        return std::array::from_fn(|_| Value::Null);
    };
    let per = per_copy(cases, r);
    [
        num(Some(e.own.value)),
        if is_base {
            Value::Null
        } else {
            num(e.cmp.as_ref().map(|c| c.change))
        },
        num(Some(e.own.spread)),
        json!(e.own.agree),
        num(match per {
            Some(PerCopy::Pte(x)) => Some(x),
            _ => None,
        }),
        num(match per {
            Some(PerCopy::Pmd(x)) => Some(x),
            _ => None,
        }),
    ]
}

/// The verdict column: `baseline`, the timed verdict, or the exact one.
fn verdict_value(r: &Row, is_base: bool) -> Value {
    if is_base {
        return json!("baseline");
    }
    match (&r.cmp, &r.exact) {
        (Some(m), _) => json!(m.verdict.as_str()),
        (None, Some(e)) => e
            .cmp
            .as_ref()
            .map(|c| json!(c.verdict.as_str()))
            .unwrap_or(Value::Null),
        (None, None) => Value::Null,
    }
}

fn num(x: Option<f64>) -> Value {
    match x {
        Some(v) if v.is_finite() => json!(v),
        _ => Value::Null,
    }
}

/// All rows as values in [`COLUMNS`] order.
pub fn records(cases: &[Case]) -> Vec<[Value; 34]> {
    let mut out = Vec::new();
    for c in cases {
        for r in &c.rows {
            let m = r.cmp;
            // The baseline row is compared with itself: only its relative figures mean anything.
            let is_base = r.name == c.baseline;
            let t = if is_base { None } else { m };
            let exact = r.exact.is_some();
            // Exact rows have no mean in ns: their value is in `instr`.
            let ns = |x: f64| if exact { Value::Null } else { num(Some(x)) };
            let [instr, change, spread, agree, per_pte, per_pmd] = exact_fields(cases, r, is_base);
            out.push([
                json!(r.machine),
                json!(r.label),
                json!(r.instrument.to_string()),
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
                ns(r.summary.mean),
                ns(r.summary.std),
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
                verdict_value(r, is_base),
                t.and_then(|m| m.runs_needed)
                    .map(|n| json!(n))
                    .unwrap_or(Value::Null),
                json!(r.unit.suffix()),
                instr,
                change,
                spread,
                agree,
                per_pte,
                per_pmd,
            ]);
        }
    }
    out
}

/// One JSON object with `keys` in this order (no whitespace).
fn json_object(keys: &[&str], vals: &[Value]) -> String {
    let mut o = String::from("{");
    for (i, (k, v)) in keys.iter().zip(vals).enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&Value::from(*k).to_string());
        o.push(':');
        o.push_str(&v.to_string());
    }
    o.push('}');
    o
}

/// JSON array of records, one per line, keys in [`COLUMNS`] order.
pub fn to_json(cases: &[Case]) -> String {
    let lines: Vec<String> = records(cases)
        .iter()
        .map(|r| format!("  {}", json_object(&COLUMNS, r)))
        .collect();
    if lines.is_empty() {
        return "[]\n".into();
    }
    format!("[\n{}\n]\n", lines.join(",\n"))
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

fn csv_line(vals: &[Value]) -> String {
    let mut line = vals.iter().map(csv_field).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

/// CSV with a header line, columns [`COLUMNS`].
pub fn to_csv(cases: &[Case]) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for rec in records(cases) {
        out.push_str(&csv_line(&rec));
    }
    out
}

/// Column names of [`samples_csv`] and keys of [`samples_jsonl`], in order.
pub const SAMPLE_COLUMNS: [&str; 24] = [
    "file",
    "machine",
    "label",
    "kernel",
    "accel",
    "instrument",
    "arch",
    "layout",
    "order",
    "strategy",
    "contpte",
    "mapcount",
    "counting",
    "sched",
    "unverified",
    "mem_bytes",
    "mode",
    "options",
    "run",
    "iteration",
    "ns",
    "disturbed",
    "unit",
    "instr",
];

/// One timed fork per record, in file order, then run order, then iteration order. `files`
/// pairs each result file with the name its `file` column carries.
pub fn sample_records<'a>(
    files: &'a [(String, &'a ResultFile)],
) -> impl Iterator<Item = [Value; 24]> + 'a {
    files.iter().flat_map(|(name, f)| {
        f.runs.iter().flat_map(move |r| {
            let head = run_fields(name, f, r);
            r.samples_ns.iter().enumerate().map(move |(i, ns)| {
                let disturbed = r
                    .real
                    .as_ref()
                    .and_then(|x| x.disturbances.iter().find(|d| d.iter as usize == i))
                    .map(|d| json!(d.reasons.join("+")))
                    .unwrap_or(Value::Null);
                let mut rec: [Value; 24] = std::array::from_fn(|_| Value::Null);
                rec[..18].clone_from_slice(&head);
                rec[18] = json!(r.run_index);
                rec[19] = json!(i);
                let unit = r.variant.unit();
                // An exact sample is instructions: `instr`, never `ns`.
                match unit {
                    results::SampleUnit::Nanoseconds => rec[20] = json!(ns),
                    results::SampleUnit::Instructions => rec[23] = json!(ns),
                }
                rec[21] = disturbed;
                rec[22] = json!(unit.suffix());
                rec
            })
        })
    })
}

/// The variant columns of [`SAMPLE_COLUMNS`] (`file` .. `options`) of one run.
fn run_fields(name: &str, f: &ResultFile, r: &RunRecord) -> [Value; 18] {
    let v = &r.variant;
    let (kernel, accel, order, strategy, contpte, mapcount, counting, sched, unverified) = match v {
        // The model runs in userspace: no kernel forked, so `kernel` stays empty.
        Variant::Sim(s) => (
            Value::Null,
            Value::Null,
            json!(s.order.get()),
            json!(s.strategy.to_string()),
            s.contpte
                .map(|c| json!(c.to_string()))
                .unwrap_or(Value::Null),
            json!(s.mapcount.to_string()),
            json!(s.counting),
            Value::Null,
            Value::Null,
        ),
        Variant::Real(x) => (
            json!(x.kernel),
            json!(x.accel.to_string()),
            x.layout
                .folio_order()
                .map(|o| json!(o))
                .unwrap_or(Value::Null),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            json!(x.sched.to_string()),
            json!(x.unverified),
        ),
    };
    [
        json!(name),
        json!(f.machine),
        json!(f.label),
        kernel,
        accel,
        json!(v.instrument().to_string()),
        json!(v.arch().to_string()),
        json!(v.layout_name()),
        order,
        strategy,
        contpte,
        mapcount,
        counting,
        sched,
        unverified,
        json!(v.mem_bytes()),
        json!(v.mode().to_string()),
        json!(v.options()),
    ]
}

/// Long format CSV: a header line ([`SAMPLE_COLUMNS`]), then one line per timed fork.
pub fn samples_csv(files: &[(String, &ResultFile)]) -> String {
    let mut out = SAMPLE_COLUMNS.join(",");
    out.push('\n');
    for rec in sample_records(files) {
        out.push_str(&csv_line(&rec));
    }
    out
}

/// Long format JSON lines: one object per timed fork, keys in [`SAMPLE_COLUMNS`] order.
pub fn samples_jsonl(files: &[(String, &ResultFile)]) -> String {
    let mut out = String::new();
    for rec in sample_records(files) {
        out.push_str(&json_object(&SAMPLE_COLUMNS, &rec));
        out.push('\n');
    }
    out
}
