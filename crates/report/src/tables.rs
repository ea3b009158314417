//! Text tables: the thread's `| kernel | mean_rel | std_rel |` table, the thread's combined
//! table (machine header, one column group per layout, `mean | stdev` sub-columns), and the
//! `extended` table with CI, p-value, MDE and verdict. Sign convention: negative = faster.
//! Kernel-rows cases (see [`crate::cases`]) render with the kernels as rows and the layouts as
//! the combined table's columns; a kernel without runs of a layout reads `n/a` there. Timed runs
//! under TCG get [`EMULATED_NOTE`] above their tables ([`emulated`]). These tables are of timed
//! rows only: every function here passes exact cases (guest instructions) over, which
//! [`crate::exact`] renders. Combined tables wider than 100 columns continue in a second block.

use std::collections::BTreeMap;

use crate::cases::{Case, Row, layout_heading};

/// What every table of emulated (TCG guest) runs says above it.
pub const EMULATED_NOTE: &str =
    "emulated: these times show code-path differences, not hardware costs";

/// Does any timed row of these cases come from a guest under TCG?
pub fn emulated(cases: &[Case]) -> bool {
    timed(cases)
        .flat_map(|c| &c.rows)
        .any(|r| r.accel == results::Accel::Tcg)
}

/// The timed cases among `cases` (exact ones have tables of their own).
pub fn timed(cases: &[Case]) -> impl Iterator<Item = &Case> {
    cases.iter().filter(|c| !c.is_exact())
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
    for c in timed(cases) {
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
    // As many column groups per block as fit the width; the rest continue below.
    let per_block = (crate::exact::WIDTH.saturating_sub(w0 + 4) / (inner + 1)).max(1);
    let mut out = String::new();
    let mut start = 0;
    while start < t.columns.len() || start == 0 {
        let end = (start + per_block).min(t.columns.len());
        if start > 0 {
            out.push('\n');
        }
        out.push_str(&combined_block(t, start..end, w0, c, &cell));
        start = end;
        if end == t.columns.len() {
            break;
        }
    }
    for n in &t.notes {
        out.push('\n');
        out.push_str(&crate::exact::fill(n, crate::exact::WIDTH, "  "));
    }
    out
}

/// The combined table's column groups `range`, with the row names: one block of it.
fn combined_block(
    t: &Combined,
    range: std::ops::Range<usize>,
    w0: usize,
    c: usize,
    cell: &dyn Fn(Option<(f64, f64)>, usize) -> String,
) -> String {
    let inner = 2 * c + 5;
    let columns = &t.columns[range.clone()];
    let mut out = String::new();
    out.push_str(&format!("| {:<w0$} |", t.machine));
    for h in columns {
        let left = (inner - h.len()) / 2;
        let right = inner - h.len() - left;
        out.push_str(&format!("{}{h}{}|", " ".repeat(left), " ".repeat(right)));
    }
    out.push('\n');
    out.push_str(&format!("| {:<w0$} |", t.bench));
    for _ in columns {
        out.push_str(&format!("{}|", "-".repeat(inner)));
    }
    out.push('\n');
    out.push_str(&format!("| {:<w0$} |", "microbench"));
    for _ in columns {
        out.push_str(&format!(" {:>c$} | {:>c$} |", "mean", "stdev"));
    }
    out.push('\n');
    out.push_str(&format!("|{}|", "-".repeat(w0 + 2)));
    for _ in columns {
        out.push_str(&format!("{}|{}|", "-".repeat(c + 2), "-".repeat(c + 2)));
    }
    out.push('\n');
    for (name, vals) in &t.rows {
        out.push_str(&format!("| {name:<w0$} |"));
        for v in vals.get(range.clone()).unwrap_or_default() {
            out.push_str(&format!(" {:>c$} | {:>c$} |", cell(*v, 0), cell(*v, 1)));
        }
        out.push('\n');
    }
    out
}

/// Combine the cases of one instrument/arch/mem/mode into combined tables (one per group, in
/// case order). `machine` heads the first column.
pub fn combined_from_cases(cases: &[Case], machine: &str) -> Vec<Combined> {
    type GroupKey = (
        results::Instrument,
        results::SampleUnit,
        String,
        u64,
        String,
    );
    let mut groups: Vec<(GroupKey, Vec<&Case>)> = Vec::new();
    for c in timed(cases) {
        let k = c.group_key();
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, v)) => v.push(c),
            None => groups.push((k, vec![c])),
        }
    }
    groups
        .into_iter()
        .map(|((inst, _unit, arch, _mem, _mode), cs)| {
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
    for c in timed(cases) {
        out.push_str(&format!("{}, baseline {}:\n\n", c.title(), c.baseline));
        out.push_str(&extended_table(c));
        out.push('\n');
    }
    out
}

/// A change as a signed percentage with one decimal (`+3.4%`, `-1.2%`, `0.0%`).
fn signed_pct(x: f64) -> String {
    let s = pct(x);
    if x.is_finite() && !s.starts_with('-') && s != "0.0%" {
        format!("+{s}")
    } else {
        s
    }
}

/// A case's short heading in the verdict table: `real fork(), x86_64, 64M steady, 3 runs` or
/// `model x86_64 order9, 64M fresh, 3 runs`.
fn verdict_heading(c: &Case) -> String {
    let mem = if c.mem_bytes >= 1 << 30 && c.mem_bytes.is_multiple_of(1 << 30) {
        format!("{}G", c.mem_bytes >> 30)
    } else {
        format!("{}M", c.mem_bytes >> 20)
    };
    let what = match (c.instrument, c.layout.is_empty()) {
        (results::Instrument::Real, true) => format!("real fork(), {}", c.arch),
        (results::Instrument::Real, false) => format!("real fork(), {} {}", c.arch, c.layout),
        (results::Instrument::Sim, _) => format!("model {} {}", c.arch, c.layout),
    };
    format!("{what}, {mem} {}, {} runs", c.mode, runs_text(c))
}

/// The verdict column: `faster`, `slower`, `same`, `unknown ~12` (runs per side needed),
/// `baseline`.
fn verdict_cell(r: &Row, c: &Case) -> String {
    match r.cmp {
        None => "n/a".into(),
        Some(_) if r.name == c.baseline => "baseline".into(),
        Some(m) => match (m.verdict, m.runs_needed) {
            (stats::Verdict::Unknown, Some(n)) => format!("unknown ~{n}"),
            (v, _) => v.to_string(),
        },
    }
}

/// One compact table of every case's verdicts, for a terminal of 100 columns: per case a
/// heading row, then per row its mean, the change against the case's baseline, the 95% CI of
/// that change and the verdict. `noise` is the threshold the verdicts used (a fraction), printed
/// above the table. Row names are indented under their case's heading.
pub fn verdict_table(cases: &[Case], noise: f64) -> String {
    let headers = ["variant", "mean", "change", "95% CI of change", "verdict"];
    // None = a case heading spanning the row.
    let mut cells: Vec<Option<[String; 5]>> = Vec::new();
    let mut headings: Vec<String> = Vec::new();
    for c in timed(cases) {
        headings.push(verdict_heading(c));
        cells.push(None);
        let order: Vec<(String, Option<&Row>)> = if c.kernel_rows.is_empty() {
            c.rows.iter().map(|r| (r.name.clone(), Some(r))).collect()
        } else {
            c.kernel_rows
                .iter()
                .map(|n| (n.clone(), c.rows.iter().find(|r| &r.name == n)))
                .collect()
        };
        for (name, r) in order {
            let Some(r) = r else {
                cells.push(Some([
                    format!("  {name}"),
                    "n/a".into(),
                    "n/a".into(),
                    "n/a".into(),
                    "no runs".into(),
                ]));
                continue;
            };
            let (unit, div, dec) = time_unit(r.summary.mean);
            let mean = format!("{:.dec$} {unit}", r.summary.mean / div);
            let (change, ci) = match r.cmp {
                Some(_) if r.name == c.baseline => (String::new(), String::new()),
                Some(m) => (
                    signed_pct(m.rel.mean_rel),
                    m.ci.map(|ci| {
                        let lo = signed_pct(ci.lo - 1.0);
                        let lo = lo.strip_suffix('%').unwrap_or(&lo);
                        format!("{lo}..{}", signed_pct(ci.hi - 1.0))
                    })
                    .unwrap_or_else(|| "n/a".into()),
                ),
                None => ("n/a".into(), "n/a".into()),
            };
            cells.push(Some([
                format!("  {name}"),
                mean,
                change,
                ci,
                verdict_cell(r, c),
            ]));
        }
    }
    let mut out = format!(
        "Verdicts against each case's baseline (noise threshold ±{}: a change whose whole 95% CI\n\
         lies within it is \"same\"; faster/slower need p < 0.05 and the CI beyond it; unknown ~N:\n\
         about N runs per side would decide; negative = faster):\n\n",
        pct(noise)
    );
    let right = [false, true, true, false, false];
    out.push_str(&headed_table(
        &headers.map(String::from),
        right,
        &cells,
        &headings,
    ));
    out
}

/// A table of five columns (`right`: which are right-aligned) whose `None` lines are headings
/// spanning the row, taken in order from `headings`.
pub(crate) fn headed_table(
    headers: &[String; 5],
    right: [bool; 5],
    lines: &[Option<[String; 5]>],
    headings: &[String],
) -> String {
    let len = |s: &str| s.chars().count();
    let mut w = headers.clone().map(|h| len(&h));
    for l in lines.iter().flatten() {
        for i in 0..5 {
            w[i] = w[i].max(len(&l[i]));
        }
    }
    // A heading may be wider than the name column: it spans the whole row.
    let inner: usize = w.iter().sum::<usize>() + 3 * 4;
    let pad = |s: &str, n: usize, right: bool| {
        let fill = " ".repeat(n.saturating_sub(len(s)));
        if right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let line = |c: &[String; 5]| {
        let mut s = String::from("|");
        for i in 0..5 {
            s.push_str(&format!(" {} |", pad(&c[i], w[i], right[i])));
        }
        s.push('\n');
        s
    };
    let mut out = line(headers);
    out.push('|');
    for i in 0..5 {
        let dashes = "-".repeat(w[i] + 1);
        out.push_str(&if right[i] {
            format!("{dashes}:|")
        } else {
            format!(":{dashes}|")
        });
    }
    out.push('\n');
    let mut h = headings.iter();
    for l in lines {
        match l {
            Some(c) => out.push_str(&line(c)),
            None => {
                let text = h.next().map(String::as_str).unwrap_or("");
                out.push_str(&format!("| {} |\n", pad(text, inner, false)));
            }
        }
    }
    out
}

/// What the JSON of a real-fork row holds beyond its run means: the run-to-run spread "without
/// drift" (the standard deviation of the group means when the samples are dealt round-robin
/// into as many groups as runs, [`stats::regrouped`]; far below the runs' own std it says the
/// host drifted between runs) and the correlation of the core-throughput probe with fork time
/// (Pearson r over every timed fork).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RealSpread {
    /// ns; the verbose table divides it by the baseline mean, as `std_rel`.
    pub std_without_drift_ns: Option<f64>,
    pub probe_r: Option<f64>,
}

/// [`RealSpread`] of a real-fork row, from the runs of `files` that make it up (same label,
/// kernel, layout, memory, mode and options); `None` for model rows and rows without runs.
pub fn real_spread(files: &[results::ResultFile], row: &Row) -> Option<RealSpread> {
    if row.instrument != results::Instrument::Real {
        return None;
    }
    let runs: Vec<&results::RunRecord> = files
        .iter()
        .filter(|f| f.label == row.label)
        .flat_map(|f| &f.runs)
        .filter(|r| match &r.variant {
            results::Variant::Real(v) => {
                v.kernel == row.strategy
                    && v.accel == row.accel
                    && r.variant.unit() == row.unit
                    && r.variant.layout_name() == row.layout
                    && r.variant.mem_bytes() == row.mem_bytes
                    && r.variant.mode().to_string() == row.mode
                    && (r.variant.options() == row.options
                        || crate::cases::options_without_accel(&r.variant) == row.options)
            }
            results::Variant::Sim(_) => false,
        })
        .collect();
    if runs.is_empty() {
        return None;
    }
    let per_run: Vec<Vec<f64>> = runs
        .iter()
        .map(|r| r.samples_ns.iter().map(|&s| s as f64).collect())
        .collect();
    let without_drift = stats::regrouped(&per_run).map(|s| s.std);
    let mut probe = Vec::new();
    let mut forks = Vec::new();
    for r in &runs {
        if let Some(x) = r.real.as_deref()
            && x.core_probe_ns.len() == r.samples_ns.len()
        {
            probe.extend(x.core_probe_ns.iter().map(|&v| v as f64));
            forks.extend(r.samples_ns.iter().map(|&v| v as f64));
        }
    }
    Some(RealSpread {
        std_without_drift_ns: without_drift,
        probe_r: stats::pearson(&probe, &forks),
    })
}

/// The extended tables of `--verbose`: [`extended_tables`] with, on real-fork cases, two more
/// columns from the runs in `files`: `std_rel w/o drift` (relative to the baseline mean, as
/// `std_rel`) and `probe r` ([`RealSpread`]).
pub fn extended_tables_verbose(cases: &[Case], files: &[results::ResultFile]) -> String {
    let mut out = String::new();
    for c in timed(cases) {
        out.push_str(&format!("{}, baseline {}:\n\n", c.title(), c.baseline));
        let table = extended_table(c);
        if c.instrument != results::Instrument::Real {
            out.push_str(&table);
            out.push('\n');
            continue;
        }
        // The extended table's rows, in its order: append the two columns to each line.
        let names: Vec<String> = if c.kernel_rows.is_empty() {
            c.rows.iter().map(|r| r.name.clone()).collect()
        } else {
            c.kernel_rows.clone()
        };
        let base_mean = c
            .rows
            .iter()
            .find(|r| r.name == c.baseline)
            .map(|r| r.summary.mean)
            .unwrap_or(f64::NAN);
        let extra: Vec<[String; 2]> = names
            .iter()
            .map(|n| {
                let s = c
                    .rows
                    .iter()
                    .find(|r| &r.name == n)
                    .and_then(|r| real_spread(files, r));
                [
                    s.and_then(|s| s.std_without_drift_ns)
                        .map(|sd| pct(sd / base_mean))
                        .unwrap_or_else(|| "n/a".into()),
                    s.and_then(|s| s.probe_r)
                        .map(|r| format!("{r:.2}"))
                        .unwrap_or_else(|| "n/a".into()),
                ]
            })
            .collect();
        let heads = ["std_rel w/o drift", "probe r"];
        let w = [
            extra
                .iter()
                .map(|e| e[0].len())
                .chain([heads[0].len()])
                .max()
                .unwrap_or(0),
            extra
                .iter()
                .map(|e| e[1].len())
                .chain([heads[1].len()])
                .max()
                .unwrap_or(0),
        ];
        let mut lines = table.lines();
        let with = |line: &str, a: &str, b: &str| {
            format!("{line} {a:>w0$} | {b:>w1$} |\n", w0 = w[0], w1 = w[1])
        };
        if let Some(h) = lines.next() {
            out.push_str(&with(h, heads[0], heads[1]));
        }
        if let Some(sep) = lines.next() {
            out.push_str(&format!(
                "{sep}{}:|{}:|\n",
                "-".repeat(w[0] + 1),
                "-".repeat(w[1] + 1)
            ));
        }
        for e in &extra {
            match lines.next() {
                Some(l) => out.push_str(&with(l, &e[0], &e[1])),
                None => break,
            }
        }
        // Notes under the table, unchanged.
        for l in lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}
