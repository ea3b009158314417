//! Text tables: the thread's `| kernel | mean_rel | std_rel |` table, the thread's combined
//! table (machine header, one column group per layout, `mean | stdev` sub-columns), and the
//! `extended` table with CI, p-value, MDE and verdict. Sign convention: negative = faster.
//! Kernel-rows cases (see [`crate::cases`]) render with the kernels as rows and the layouts as
//! the combined table's columns; a kernel without runs of a layout reads `n/a` there. Runs
//! under TCG get [`EMULATED_NOTE`] above their tables ([`emulated`]).

use std::collections::BTreeMap;

use crate::cases::{Case, Row, layout_heading};

/// What every table of emulated (TCG guest) runs says above it.
pub const EMULATED_NOTE: &str =
    "emulated: these times show code-path differences, not hardware costs";

/// Does any row of these cases come from a guest under TCG?
pub fn emulated(cases: &[Case]) -> bool {
    cases
        .iter()
        .flat_map(|c| &c.rows)
        .any(|r| r.accel == results::Accel::Tcg)
}

/// Whether any case has kernels as rows (real fork of several kernels under one label).
pub fn has_kernel_rows(cases: &[Case]) -> bool {
    cases.iter().any(|c| !c.kernel_rows.is_empty())
}

/// The note under a kernel-rows case whose baseline kernel did not run its layout.
fn absent_baseline_note(c: &Case, heading: &str) -> Option<String> {
    c.baseline_absent.as_ref().map(|b| {
        format!(
            "{heading}: {b} has no runs; relative to {} instead",
            c.baseline
        )
    })
}

/// One row of a relative-mean table.
#[derive(Debug, Clone, PartialEq)]
pub struct RelRow {
    pub kernel: String,
    pub mean_rel: f64,
    pub std_rel: f64,
}

/// A fraction as the thread prints it: one decimal, percent, never `-0.0%`.
pub fn pct(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let v = (x * 1000.0).round() / 10.0;
    let v = if v == 0.0 { 0.0 } else { v };
    format!("{v:.1}%")
}

/// Render rows as the thread's `| kernel | mean_rel | std_rel |` table (the shape pandas'
/// `to_markdown` gives: left-aligned text, right-aligned numbers padded by two).
pub fn thread_table(rows: &[RelRow]) -> String {
    let headers = ["kernel", "mean_rel", "std_rel"];
    let cells: Vec<[String; 3]> = rows
        .iter()
        .map(|r| [r.kernel.clone(), pct(r.mean_rel), pct(r.std_rel)])
        .collect();
    let mut w = headers.map(str::len);
    for c in &cells {
        for i in 0..3 {
            w[i] = w[i].max(c[i].len());
        }
    }
    // pandas/tabulate pad every numeric column by at least two spaces on the left.
    let w = [w[0], w[1] + 2, w[2] + 2];
    let row = |c: [&str; 3]| {
        format!(
            "| {:<a$} | {:>b$} | {:>d$} |\n",
            c[0],
            c[1],
            c[2],
            a = w[0],
            b = w[1],
            d = w[2]
        )
    };
    let mut out = row(headers);
    out.push_str(&format!(
        "|:{}|{}:|{}:|\n",
        "-".repeat(w[0] + 1),
        "-".repeat(w[1] + 1),
        "-".repeat(w[2] + 1)
    ));
    for c in &cells {
        out.push_str(&row([c[0].as_str(), c[1].as_str(), c[2].as_str()]));
    }
    out
}

/// The relative rows of a case (its baseline reads 0.0%; a kernel without runs here, n/a).
pub fn rel_rows(case: &Case) -> Vec<RelRow> {
    let rel = |r: &Row| RelRow {
        kernel: r.name.clone(),
        mean_rel: r.cmp.map(|c| c.rel.mean_rel).unwrap_or(f64::NAN),
        std_rel: r.cmp.map(|c| c.rel.std_rel).unwrap_or(f64::NAN),
    };
    if case.kernel_rows.is_empty() {
        return case.rows.iter().map(rel).collect();
    }
    case.kernel_rows
        .iter()
        .map(|n| match case.rows.iter().find(|r| &r.name == n) {
            Some(r) => rel(r),
            None => RelRow {
                kernel: n.clone(),
                mean_rel: f64::NAN,
                std_rel: f64::NAN,
            },
        })
        .collect()
}

/// Every case as a title line plus the thread's table.
pub fn thread_tables(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        out.push_str(&format!(
            "{}, {} runs, baseline {}:\n\n",
            c.title(),
            runs_text(c),
            c.baseline
        ));
        out.push_str(&thread_table(&rel_rows(c)));
        if let Some(n) = absent_baseline_note(c, "note") {
            out.push_str(&format!("\n{n}\n"));
        }
        out.push('\n');
    }
    out
}

fn runs_text(c: &Case) -> String {
    let mut ns: Vec<usize> = c.rows.iter().map(|r| r.summary.n).collect();
    ns.sort_unstable();
    ns.dedup();
    match ns.as_slice() {
        [n] => n.to_string(),
        _ => format!("{}-{}", ns.first().unwrap_or(&0), ns.last().unwrap_or(&0)),
    }
}

/// Per column `(mean_rel, std_rel)` of one row (None when the row has no runs there).
pub type CombinedCells = Vec<Option<(f64, f64)>>;

/// One block of the combined table: a machine header, the benchmark name, and per column group
/// (layout) the `mean | stdev` of every row, relative to that column's baseline.
pub struct Combined {
    pub machine: String,
    pub bench: String,
    /// Column headings, e.g. `order-0 (pte-map)`.
    pub columns: Vec<String>,
    /// Row name → per column `(mean_rel, std_rel)` (None when the row has no runs there).
    pub rows: Vec<(String, CombinedCells)>,
    /// Lines printed under the table (e.g. a column whose baseline kernel has no runs).
    pub notes: Vec<String>,
}

/// Render the thread's combined table:
///
/// ```text
/// | Apple M2 VM   |   order-0 (pte-map)   |   order-9 (pte-map)   |
/// | fork          |-----------------------|-----------------------|
/// | microbench    |    mean   |   stdev   |    mean   |   stdev   |
/// |---------------|-----------|-----------|-----------|-----------|
/// | baseline      |      0.0% |      1.1% |      0.0% |      1.2% |
/// ```
pub fn combined_table(t: &Combined) -> String {
    let cell = |v: Option<(f64, f64)>, i: usize| {
        v.map(|p| pct(if i == 0 { p.0 } else { p.1 }))
            .unwrap_or_else(|| "n/a".into())
    };
    let mut w0 = t.machine.len().max(t.bench.len()).max("microbench".len());
    for (n, _) in &t.rows {
        w0 = w0.max(n.len());
    }
    // Sub-column width: the widest cell, padded by two, and wide enough for the group heading.
    let mut c = "stdev".len();
    for (_, vals) in &t.rows {
        for v in vals {
            c = c.max(cell(*v, 0).len()).max(cell(*v, 1).len());
        }
    }
    c += 2;
    for h in &t.columns {
        // A group's inner width is 2c + 5; keep a space either side of the heading.
        while 2 * c + 5 < h.len() + 2 {
            c += 1;
        }
    }
    let inner = 2 * c + 5;
    let mut out = String::new();
    out.push_str(&format!("| {:<w0$} |", t.machine));
    for h in &t.columns {
        let left = (inner - h.len()) / 2;
        let right = inner - h.len() - left;
        out.push_str(&format!("{}{h}{}|", " ".repeat(left), " ".repeat(right)));
    }
    out.push('\n');
    out.push_str(&format!("| {:<w0$} |", t.bench));
    for _ in &t.columns {
        out.push_str(&format!("{}|", "-".repeat(inner)));
    }
    out.push('\n');
    out.push_str(&format!("| {:<w0$} |", "microbench"));
    for _ in &t.columns {
        out.push_str(&format!(" {:>c$} | {:>c$} |", "mean", "stdev"));
    }
    out.push('\n');
    out.push_str(&format!("|{}|", "-".repeat(w0 + 2)));
    for _ in &t.columns {
        out.push_str(&format!("{}|{}|", "-".repeat(c + 2), "-".repeat(c + 2)));
    }
    out.push('\n');
    for (name, vals) in &t.rows {
        out.push_str(&format!("| {name:<w0$} |"));
        for v in vals {
            out.push_str(&format!(" {:>c$} | {:>c$} |", cell(*v, 0), cell(*v, 1)));
        }
        out.push('\n');
    }
    for n in &t.notes {
        out.push_str(&format!("\n{n}\n"));
    }
    out
}

/// Combine the cases of one instrument/arch/mem/mode into combined tables (one per group, in
/// case order). `machine` heads the first column.
pub fn combined_from_cases(cases: &[Case], machine: &str) -> Vec<Combined> {
    type GroupKey = (results::Instrument, String, u64, String);
    let mut groups: Vec<(GroupKey, Vec<&Case>)> = Vec::new();
    for c in cases {
        let k = c.group_key();
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(c),
            None => groups.push((k, vec![c])),
        }
    }
    groups
        .into_iter()
        .map(|((inst, arch, _mem, _mode), cs)| {
            let inst = match inst {
                results::Instrument::Sim => "model",
                results::Instrument::Real => "real",
            };
            // Real fork of one kernel: a single case whose rows are layouts; show it as one
            // column of the kernel instead.
            let columns: Vec<String> = cs
                .iter()
                .map(|c| {
                    if c.layout.is_empty() {
                        "all layouts".to_string()
                    } else {
                        layout_heading(&c.layout)
                    }
                })
                .collect();
            // Kernel rows: every kernel of the group, in kernel order.
            let mut names: Vec<String> = cs
                .iter()
                .find(|c| !c.kernel_rows.is_empty())
                .map(|c| c.kernel_rows.clone())
                .unwrap_or_default();
            for c in &cs {
                for r in &c.rows {
                    if !names.contains(&r.name) {
                        names.push(r.name.clone());
                    }
                }
            }
            let mut map: BTreeMap<&str, Vec<Option<(f64, f64)>>> = BTreeMap::new();
            for n in &names {
                let vals = cs
                    .iter()
                    .map(|c| {
                        c.rows
                            .iter()
                            .find(|r| &r.name == n)
                            .and_then(|r| r.cmp)
                            .map(|m| (m.rel.mean_rel, m.rel.std_rel))
                    })
                    .collect();
                map.insert(n, vals);
            }
            let notes = cs
                .iter()
                .zip(&columns)
                .filter_map(|(c, h)| absent_baseline_note(c, h))
                .collect();
            Combined {
                machine: machine.to_string(),
                bench: format!("fork, {arch} {inst}"),
                notes,
                columns,
                rows: names
                    .iter()
                    .map(|n| (n.clone(), map.remove(n.as_str()).unwrap_or_default()))
                    .collect(),
            }
        })
        .collect()
}

fn time_unit(ns: f64) -> (&'static str, f64, usize) {
    if ns >= 1e6 {
        ("ms", 1e6, 3)
    } else if ns >= 1e3 {
        ("us", 1e3, 1)
    } else {
        ("ns", 1.0, 0)
    }
}

fn p_text(p: f64) -> String {
    if p < 0.001 {
        "<0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// The extended table of one case: absolute means, relative figures, 95% CI of the change,
/// Welch p, minimum detectable effect and verdict.
pub fn extended_table(case: &Case) -> String {
    let base_mean = case
        .rows
        .iter()
        .find(|r| r.name == case.baseline)
        .map(|r| r.summary.mean)
        .unwrap_or(f64::NAN);
    let (unit, div, dec) = time_unit(base_mean);
    let headers: Vec<String> = [
        "kernel".to_string(),
        "runs".into(),
        format!("mean {unit}"),
        format!("std {unit}"),
        "mean_rel".into(),
        "std_rel".into(),
        "95% CI".into(),
        "p".into(),
        "MDE".into(),
        "verdict".into(),
    ]
    .to_vec();
    let mut cells: Vec<Vec<String>> = Vec::new();
    // Kernel rows: every kernel of the group in kernel order; one without runs here is n/a.
    let order: Vec<Option<&Row>> = if case.kernel_rows.is_empty() {
        case.rows.iter().map(Some).collect()
    } else {
        case.kernel_rows
            .iter()
            .map(|n| case.rows.iter().find(|r| &r.name == n))
            .collect()
    };
    for (i, r) in order.into_iter().enumerate() {
        let Some(r) = r else {
            let mut v = vec![case.kernel_rows[i].clone(), "0".into()];
            v.extend((0..8).map(|_| "n/a".to_string()));
            cells.push(v);
            continue;
        };
        let mut v = vec![
            r.name.clone(),
            r.summary.n.to_string(),
            format!("{:.dec$}", r.summary.mean / div),
            format!("{:.dec$}", r.summary.std / div),
        ];
        match r.cmp {
            Some(c) if r.name != case.baseline => {
                v.push(pct(c.rel.mean_rel));
                v.push(pct(c.rel.std_rel));
                v.push(
                    c.ci.map(|ci| format!("[{}, {}]", pct(ci.lo - 1.0), pct(ci.hi - 1.0)))
                        .unwrap_or_else(|| "n/a".into()),
                );
                v.push(c.welch.map(|w| p_text(w.p)).unwrap_or_else(|| "n/a".into()));
                v.push(c.mde.map(pct).unwrap_or_else(|| "n/a".into()));
                v.push(match (c.verdict, c.runs_needed) {
                    (stats::Verdict::Unknown, Some(n)) => format!("unknown (~{n} runs)"),
                    (v, _) => v.to_string(),
                });
            }
            Some(c) => {
                v.push(pct(c.rel.mean_rel));
                v.push(pct(c.rel.std_rel));
                v.extend(["".into(), "".into(), "".into(), "baseline".into()]);
            }
            None => v.extend((0..6).map(|_| "n/a".to_string())),
        }
        cells.push(v);
    }
    let mut w: Vec<usize> = headers.iter().map(String::len).collect();
    for c in &cells {
        for (i, x) in c.iter().enumerate() {
            w[i] = w[i].max(x.len());
        }
    }
    let line = |c: &[String]| {
        let mut s = String::from("|");
        for (i, x) in c.iter().enumerate() {
            if i == 0 || i == 6 || i == 9 {
                s.push_str(&format!(" {:<wd$} |", x, wd = w[i]));
            } else {
                s.push_str(&format!(" {:>wd$} |", x, wd = w[i]));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&headers);
    out.push('|');
    for (i, wd) in w.iter().enumerate() {
        if i == 0 || i == 6 || i == 9 {
            out.push_str(&format!(":{}|", "-".repeat(wd + 1)));
        } else {
            out.push_str(&format!("{}:|", "-".repeat(wd + 1)));
        }
    }
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
    }
    if let Some(n) = absent_baseline_note(case, "note") {
        out.push_str(&format!("\n{n}\n"));
    }
    out
}

/// Every case as a title plus its extended table.
pub fn extended_tables(cases: &[Case]) -> String {
    let mut out = String::new();
    for c in cases {
        out.push_str(&format!("{}, baseline {}:\n\n", c.title(), c.baseline));
        out.push_str(&extended_table(c));
        out.push('\n');
    }
    out
}
