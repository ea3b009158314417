//! Tables of *exact* rows: real fork() in QEMU guests under icount, whose samples are guest
//! instructions, not nanoseconds. They never share a table or a column with timed rows:
//!
//! - [`EXACT_NOTE`], the banner that says what the numbers are and are not;
//! - instructions per fork, kernels as rows and layouts as columns ([`instruction_tables`]);
//! - instructions per PTE copied, `(layout - untouched) / PTEs` ([`per_copy`]), per PMD for
//!   `pmd-order9`;
//! - the exact verdicts: each row's runs' agreement, the change against the baseline and
//!   `faster | slower | same | unknown (runs disagree)` ([`exact_verdict_table`]), with the runs
//!   that differ named below it. No p-value, CI or MDE: `stats::exact` says why.
//!
//! Every line fits [`WIDTH`] columns: wide tables continue in a second block of columns.

use results::RealLayout;
use stats::Verdict;
use stats::exact::{Agreement, ExactComparison, ExactPolicy, Undecided};

use crate::cases::{Case, Row, kernel_row_name};

/// The widest line any table here prints.
pub const WIDTH: usize = 100;

/// What every exact table says above it (in place of the emulated-time note).
pub const EXACT_NOTE: &str = "exact: guest instructions (QEMU icount), not time: the guest kernel's instruction path\n\
     length; no caches, no atomics' cost, no TLB";

/// An exact row's runs taken together, and the row against its case's baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactRow {
    pub own: Agreement,
    /// None when the baseline has no usable runs.
    pub cmp: Option<ExactComparison>,
}

/// A count with 4 significant digits and a k/M/G prefix: `3.026 M`, `827.6 k`, `135.4`.
pub fn count(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let (v, prefix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, " G"),
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e3 => (x / 1e3, " k"),
        _ => (x, ""),
    };
    format!("{}{prefix}", sig4(v))
}

/// `v` (below 1000 in magnitude) with 4 significant digits.
fn sig4(v: f64) -> String {
    let digits = if v == 0.0 {
        1
    } else {
        (v.abs().log10().floor() as i32 + 1).clamp(1, 4)
    };
    let dec = (4 - digits) as usize;
    let s = format!("{v:.dec$}");
    // Rounding may carry into a fifth digit (999.96 → 1000.0): drop the decimal then.
    if s.trim_start_matches('-')
        .split('.')
        .next()
        .map_or(0, str::len)
        > 3
        && dec > 0
    {
        format!("{v:.0}")
    } else {
        s
    }
}

/// Instructions as the tables print them: `3.026 M instr`.
pub fn instr(x: f64) -> String {
    format!("{} instr", count(x))
}

/// A relative change with two decimals and a sign: `+48.04%`, `-0.03%`, `0.00%`.
fn change_text(x: f64) -> String {
    if !x.is_finite() {
        return "n/a".into();
    }
    let v = (x * 10000.0).round() / 100.0;
    if v == 0.0 {
        "0.00%".into()
    } else {
        format!("{v:+.2}%")
    }
}

/// A spread as a percentage with two decimals: `0.06%`.
fn spread_text(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

/// What one layout's row costs per unit it copies, net of the kernel's `untouched` row.
#[derive(Debug, Clone, PartialEq)]
pub enum PerCopy {
    /// Instructions per PTE copied.
    Pte(f64),
    /// Instructions per PMD copied (`pmd-order9`: no PTEs to copy).
    Pmd(f64),
    /// No figure, and why.
    Missing(&'static str),
}

impl PerCopy {
    /// The table cell: `135.4`, `1.236 k/PMD`, `-`.
    pub fn cell(&self) -> String {
        match self {
            PerCopy::Pte(x) => count(*x),
            PerCopy::Pmd(x) => format!("{}/PMD", count(*x)),
            PerCopy::Missing(_) => "-".into(),
        }
    }
}

/// The PTEs and PMDs a fork of `layout` over `mem` bytes copies with `page`-byte pages (a PMD
/// maps `page / 8` pages); None for `untouched` and names that are no layout.
pub fn copied(layout: &str, mem: u64, page: u64) -> Option<(u64, u64)> {
    let pmd = page * (page / 8);
    match layout.parse::<RealLayout>().ok()? {
        RealLayout::Order0 | RealLayout::PteOrder9 | RealLayout::Mthp { .. } => {
            Some((mem / page, 0))
        }
        // 64 KiB mTHPs and order-0 pages alternate: every page is PTE-mapped.
        RealLayout::Mix64k => Some((mem / page, 0)),
        RealLayout::PmdOrder9 => Some((0, mem / pmd)),
        // Half PMD-mapped, half PTE-mapped order-9 THPs.
        RealLayout::MixPmd => Some((mem / 2 / page, mem / 2 / pmd)),
        RealLayout::Untouched => None,
    }
}

/// The identity of an exact row apart from its layout: the rows of one kernel.
fn same_kernel(a: &Row, b: &Row) -> bool {
    a.label == b.label
        && a.strategy == b.strategy
        && a.accel == b.accel
        && a.options == b.options
        && a.arch == b.arch
        && a.mem_bytes == b.mem_bytes
        && a.mode == b.mode
        && a.unit == b.unit
}

/// The row of `layout` of the same kernel as `row`, among every case's rows.
fn sibling<'a>(cases: &'a [Case], row: &Row, layout: &str) -> Option<&'a Row> {
    cases
        .iter()
        .flat_map(|c| &c.rows)
        .find(|r| r.layout == layout && same_kernel(r, row))
}

fn value(r: &Row) -> Option<f64> {
    r.exact.as_ref().map(|e| e.own.value)
}

/// Instructions per PTE (or per PMD) of `row`: `(value - untouched) / copied`, with the
/// kernel's own `untouched` row from `cases`; `mix-pmd` first takes off its PMD half at the
/// kernel's `pmd-order9` cost per PMD. None for `untouched` itself and for model rows.
pub fn per_copy(cases: &[Case], row: &Row) -> Option<PerCopy> {
    let v = value(row)?;
    let Some(page) = row.page_size.filter(|p| *p >= 8) else {
        return Some(PerCopy::Missing("no page size recorded"));
    };
    let (ptes, pmds) = copied(&row.layout, row.mem_bytes, page)?;
    let Some(untouched) = sibling(cases, row, "untouched").and_then(value) else {
        return Some(PerCopy::Missing("no untouched runs of this kernel"));
    };
    let net = v - untouched;
    Some(match (ptes, pmds) {
        (0, 0) => PerCopy::Missing("nothing copied"),
        (0, pmds) => PerCopy::Pmd(net / pmds as f64),
        (ptes, 0) => PerCopy::Pte(net / ptes as f64),
        (ptes, pmds) => match sibling(cases, row, "pmd-order9").and_then(|p| per_copy(cases, p)) {
            Some(PerCopy::Pmd(per_pmd)) => {
                PerCopy::Pte((net - per_pmd * pmds as f64) / ptes as f64)
            }
            _ => PerCopy::Missing("mix-pmd needs this kernel's pmd-order9 runs"),
        },
    })
}

/// Split `widths` (of columns after a first column of width `first`) into consecutive blocks
/// whose Markdown lines (`| a | b |`) fit `max` columns; every block holds at least one.
fn blocks(first: usize, widths: &[usize], max: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = first + 4;
    for (i, w) in widths.iter().enumerate() {
        if i > start && line + w + 3 > max {
            out.push(start..i);
            start = i;
            line = first + 4;
        }
        line += w + 3;
    }
    if start < widths.len() || out.is_empty() {
        out.push(start..widths.len());
    }
    out
}

/// A Markdown table (first column left-aligned, the others right-aligned) that continues in
/// further blocks of columns when it would be wider than [`WIDTH`].
pub fn grid(corner: &str, columns: &[String], rows: &[(String, Vec<String>)]) -> String {
    grid_aligned(corner, columns, rows, &[])
}

/// [`grid`] whose columns listed in `left` (indexes into `columns`) are left-aligned.
pub fn grid_aligned(
    corner: &str,
    columns: &[String],
    rows: &[(String, Vec<String>)],
    left: &[usize],
) -> String {
    let len = |s: &str| s.chars().count();
    let w0 = rows
        .iter()
        .map(|(n, _)| len(n))
        .chain([len(corner)])
        .max()
        .unwrap_or(0);
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .filter_map(|(_, c)| c.get(i).map(|s| len(s)))
                .chain([len(h)])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let pad_left = |s: &str, w: usize| format!("{}{s}", " ".repeat(w.saturating_sub(len(s))));
    let pad_right = |s: &str, w: usize| format!("{s}{}", " ".repeat(w.saturating_sub(len(s))));
    let mut out = String::new();
    for (b, range) in blocks(w0, &widths, WIDTH).into_iter().enumerate() {
        if b > 0 {
            out.push('\n');
        }
        let mut head = format!("| {} |", pad_right(corner, w0));
        let mut sep = format!("|:{}|", "-".repeat(w0 + 1));
        let pad = |i: usize, s: &str| {
            if left.contains(&i) {
                pad_right(s, widths[i])
            } else {
                pad_left(s, widths[i])
            }
        };
        for i in range.clone() {
            head.push_str(&format!(" {} |", pad(i, &columns[i])));
            if left.contains(&i) {
                sep.push_str(&format!(":{}|", "-".repeat(widths[i] + 1)));
            } else {
                sep.push_str(&format!("{}:|", "-".repeat(widths[i] + 1)));
            }
        }
        out.push_str(&format!("{head}\n{sep}\n"));
        for (name, cells) in rows {
            let mut line = format!("| {} |", pad_right(name, w0));
            for i in range.clone() {
                let c = cells.get(i).map_or("", String::as_str);
                line.push_str(&format!(" {} |", pad(i, c)));
            }
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// One group of exact cases (one arch, memory and mode): kernels as rows, layouts as columns.
struct Matrix<'a> {
    heading: String,
    kernels: Vec<String>,
    layouts: Vec<String>,
    /// (kernel, layout) → row.
    cells: Vec<(String, String, &'a Row)>,
}

impl Matrix<'_> {
    fn cell(&self, kernel: &str, layout: &str) -> Option<&Row> {
        self.cells
            .iter()
            .find(|(k, l, _)| k == kernel && l == layout)
            .map(|c| c.2)
    }
}

/// The kernel a row stands for in a matrix: its name in kernel-rows and label-rows cases,
/// the kernel (with its options) when the case's rows are layouts.
fn matrix_row_name(c: &Case, r: &Row) -> String {
    if !c.layout.is_empty() {
        return r.name.clone();
    }
    let k = kernel_row_name(&r.strategy, r.accel);
    if r.options.is_empty() {
        k
    } else {
        format!("{k} {}", r.options)
    }
}

fn matrices(cases: &[Case]) -> Vec<Matrix<'_>> {
    let mut out: Vec<(_, Matrix)> = Vec::new();
    for c in cases.iter().filter(|c| c.is_exact()) {
        let key = c.group_key();
        let idx = match out.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                out.push((
                    key,
                    Matrix {
                        heading: format!(
                            "fork, {} real fork() exact ({} MiB, {}, {} runs per cell)",
                            c.arch,
                            c.mem_bytes >> 20,
                            c.mode,
                            runs_text(c)
                        ),
                        kernels: Vec::new(),
                        layouts: Vec::new(),
                        cells: Vec::new(),
                    },
                ));
                out.len() - 1
            }
        };
        let m = &mut out[idx].1;
        for k in &c.kernel_rows {
            if !m.kernels.contains(k) {
                m.kernels.push(k.clone());
            }
        }
        for r in &c.rows {
            let k = matrix_row_name(c, r);
            if !m.kernels.contains(&k) {
                m.kernels.push(k.clone());
            }
            if !m.layouts.contains(&r.layout) {
                m.layouts.push(r.layout.clone());
            }
            m.cells.push((k, r.layout.clone(), r));
        }
    }
    for (_, m) in &mut out {
        // `untouched` last: it is what the other columns are net of.
        m.layouts.sort_by_key(|l| l == "untouched");
    }
    out.into_iter().map(|(_, m)| m).collect()
}

fn runs_text(c: &Case) -> String {
    let mut ns: Vec<usize> = c.rows.iter().map(|r| r.run_means.len()).collect();
    ns.sort_unstable();
    ns.dedup();
    match ns.as_slice() {
        [n] => n.to_string(),
        _ => format!("{}-{}", ns.first().unwrap_or(&0), ns.last().unwrap_or(&0)),
    }
}

/// Does this row's run set agree?
fn agrees(r: &Row) -> bool {
    r.exact.as_ref().is_some_and(|e| e.own.agree)
}

/// Per group: instructions per fork (kernels x layouts; `*` marks a cell whose runs disagree),
/// then instructions per PTE copied.
pub fn instruction_tables(cases: &[Case]) -> String {
    let mut out = String::new();
    for m in matrices(cases) {
        let mut star = false;
        let rows: Vec<(String, Vec<String>)> = m
            .kernels
            .iter()
            .map(|k| {
                let cells = m
                    .layouts
                    .iter()
                    .map(|l| match m.cell(k, l) {
                        Some(r) if value(r).is_some() => {
                            let mark = if agrees(r) { "" } else { "*" };
                            star |= !agrees(r);
                            format!("{}{mark}", count(value(r).unwrap_or(f64::NAN)))
                        }
                        _ => "n/a".into(),
                    })
                    .collect();
                (k.clone(), cells)
            })
            .collect();
        out.push_str(&format!(
            "{}\ninstructions per fork (the median of the runs' medians):\n\n",
            m.heading
        ));
        out.push_str(&grid("kernel", &m.layouts, &rows));
        if star {
            out.push_str("* the runs of this cell disagree: see the verdicts below\n");
        }
        out.push('\n');
        out.push_str(&per_copy_table(cases, &m));
    }
    out
}

/// Instructions per PTE copied of one matrix, with the reasons for every dash.
fn per_copy_table(cases: &[Case], m: &Matrix) -> String {
    let layouts: Vec<String> = m
        .layouts
        .iter()
        .filter(|l| *l != "untouched")
        .cloned()
        .collect();
    let mut why: Vec<String> = Vec::new();
    let mut star = false;
    let rows: Vec<(String, Vec<String>)> = m
        .kernels
        .iter()
        .map(|k| {
            let cells = layouts
                .iter()
                .map(|l| {
                    let Some(r) = m.cell(k, l) else {
                        return "n/a".to_string();
                    };
                    match per_copy(cases, r) {
                        Some(PerCopy::Missing(reason)) => {
                            let line = format!("{k}, {l}: {reason}");
                            if !why.contains(&line) {
                                why.push(line);
                            }
                            "-".into()
                        }
                        Some(p) => {
                            // From runs that disagree (the row's or its untouched row's).
                            let shaky = !agrees(r)
                                || sibling(cases, r, "untouched").is_some_and(|u| !agrees(u));
                            star |= shaky;
                            format!("{}{}", p.cell(), if shaky { "*" } else { "" })
                        }
                        None => "n/a".into(),
                    }
                })
                .collect();
            (k.clone(), cells)
        })
        .collect();
    let mut out = String::from(
        "instructions per PTE copied: (layout - untouched) / (memory / page size); pmd-order9\n\
         copies PMDs, not PTEs: per PMD; mix-pmd: its PTE half, the PMD half priced as pmd-order9:\n\n",
    );
    out.push_str(&grid("kernel", &layouts, &rows));
    if star {
        out.push_str("* from runs that disagree (this layout's or untouched's)\n");
    }
    for w in why {
        out.push_str(&format!("- {w}\n"));
    }
    out.push('\n');
    out
}

/// The verdict cell of an exact row.
fn verdict_text(r: &Row, c: &Case) -> String {
    let Some(e) = &r.exact else {
        return "n/a".into();
    };
    if r.name == c.baseline {
        return if e.own.agree {
            "baseline".into()
        } else {
            "baseline (runs disagree)".into()
        };
    }
    match &e.cmp {
        None => "n/a".into(),
        Some(cmp) => match (cmp.verdict, cmp.undecided) {
            (Verdict::Unknown, Some(Undecided::Baseline)) => {
                "unknown (baseline runs disagree)".into()
            }
            (Verdict::Unknown, Some(_)) => "unknown (runs disagree)".into(),
            (v, _) => v.to_string(),
        },
    }
}

/// The heading of an exact case in the verdict table: `x86_64 order0, 256M steady, 5 runs`.
fn case_heading(c: &Case) -> String {
    let mem = if c.mem_bytes >= 1 << 30 && c.mem_bytes.is_multiple_of(1 << 30) {
        format!("{}G", c.mem_bytes >> 30)
    } else {
        format!("{}M", c.mem_bytes >> 20)
    };
    let what = if c.layout.is_empty() {
        "layouts".to_string()
    } else {
        c.layout.clone()
    };
    format!("{} {what}, {mem} {}, {} runs", c.arch, c.mode, runs_text(c))
}

/// Rows of a case in table order: kernel rows in kernel order (a kernel without runs here has
/// None), else the case's rows.
fn ordered(c: &Case) -> Vec<(String, Option<&Row>)> {
    if c.kernel_rows.is_empty() {
        c.rows.iter().map(|r| (r.name.clone(), Some(r))).collect()
    } else {
        c.kernel_rows
            .iter()
            .map(|n| (n.clone(), c.rows.iter().find(|r| &r.name == n)))
            .collect()
    }
}

/// The verdicts of every exact case: per case a heading row, then per row its instructions,
/// the change against the case's baseline, the runs' spread and the verdict; under the table,
/// every row whose runs disagree, with the runs that differ (run index and value).
pub fn exact_verdict_table(cases: &[Case], policy: &ExactPolicy) -> String {
    let headers = ["kernel", "instructions", "change", "spread", "verdict"].map(String::from);
    let mut lines: Vec<Option<[String; 5]>> = Vec::new();
    let mut headings: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for c in cases.iter().filter(|c| c.is_exact()) {
        headings.push(case_heading(c));
        lines.push(None);
        for (name, r) in ordered(c) {
            let Some(r) = r else {
                lines.push(Some([
                    format!("  {name}"),
                    "n/a".into(),
                    "n/a".into(),
                    "n/a".into(),
                    "no runs".into(),
                ]));
                continue;
            };
            let e = r.exact.as_ref();
            let change = match e.and_then(|e| e.cmp.as_ref()) {
                Some(_) if r.name == c.baseline => String::new(),
                Some(cmp) => change_text(cmp.change),
                None => "n/a".into(),
            };
            lines.push(Some([
                format!("  {name}"),
                e.map_or_else(|| "n/a".into(), |e| instr(e.own.value)),
                change,
                e.map_or_else(|| "n/a".into(), |e| spread_text(e.own.spread)),
                verdict_text(r, c),
            ]));
            if let Some(e) = e.filter(|e| !e.own.agree) {
                let runs: Vec<String> = e
                    .own
                    .off
                    .iter()
                    .map(|o| {
                        let idx = r
                            .run_indexes
                            .get(o.index)
                            .copied()
                            .unwrap_or(o.index as u32);
                        format!("run {idx} {}", count(o.value))
                    })
                    .collect();
                notes.push(format!(
                    "{} {}, {name}: {} vs the median {} (spread {})",
                    c.arch,
                    if c.layout.is_empty() {
                        &r.layout
                    } else {
                        &c.layout
                    },
                    runs.join(", "),
                    count(e.own.value),
                    spread_text(e.own.spread)
                ));
            }
        }
    }
    let floor = format!("{:.0}", policy.floor);
    let mut out = format!(
        "Exact verdicts against each case's baseline: a row's runs agree when their spread\n\
         (max - min) is at most {} of the median or {} instructions; a change beyond ±{}\n\
         and {} instructions is faster/slower, else same; rows whose runs disagree get no\n\
         verdict. No p-values: the counts carry no sampling noise.\n\n",
        spread_text(policy.tolerance),
        floor,
        spread_text(policy.threshold),
        floor
    );
    let right = [false, true, true, true, false];
    out.push_str(&crate::tables::headed_table(
        &headers, right, &lines, &headings,
    ));
    if !notes.is_empty() {
        out.push_str(
            "\nruns that disagree (run index as in --format samples, each run's median):\n",
        );
        for n in notes {
            out.push_str(&fill(&format!("- {n}"), WIDTH, "  "));
        }
    }
    out
}

/// `text` wrapped at spaces to lines of at most `width` columns, continuation lines indented.
pub fn fill(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let extra = if line.is_empty() { 0 } else { 1 };
        if !line.is_empty() && line.chars().count() + extra + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
        } else if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Everything about the exact cases among `cases`: the banner, the instruction tables and the
/// verdicts; empty when there are none.
pub fn exact_tables(cases: &[Case]) -> String {
    let body = exact_tables_body(cases);
    if body.is_empty() {
        return body;
    }
    format!("{EXACT_NOTE}\n\n{body}")
}

/// [`exact_tables`] without the banner (for output that prints it at its top).
pub fn exact_tables_body(cases: &[Case]) -> String {
    let Some(first) = cases.iter().find(|c| c.is_exact()) else {
        return String::new();
    };
    format!(
        "{}{}{}",
        instruction_tables(cases),
        exact_verdict_table(cases, &first.exact_policy),
        crate::exact_pmu::pmu_crosscheck(cases)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_four_significant_digits_and_a_prefix() {
        assert_eq!(count(3_026_000.0), "3.026 M");
        assert_eq!(instr(3_026_000.0), "3.026 M instr");
        assert_eq!(count(13_127_270.0), "13.13 M");
        assert_eq!(count(827_641.0), "827.6 k");
        assert_eq!(count(135.44), "135.4");
        assert_eq!(count(2.5), "2.500");
        assert_eq!(count(999_960.0), "1000 k");
        assert_eq!(count(1.5e9), "1.500 G");
        assert_eq!(count(0.0), "0.000");
        assert_eq!(count(-12.345), "-12.35");
        assert_eq!(count(f64::NAN), "n/a");
    }

    #[test]
    fn changes_and_spreads_have_two_decimals() {
        assert_eq!(change_text(0.48041), "+48.04%");
        assert_eq!(change_text(-0.0003), "-0.03%");
        assert_eq!(change_text(0.00001), "0.00%");
        assert_eq!(spread_text(0.0006), "0.06%");
    }

    #[test]
    fn copies_count_ptes_and_pmds_by_layout() {
        let m = 256 << 20;
        assert_eq!(copied("order0", m, 4096), Some((65536, 0)));
        assert_eq!(copied("mthp-64k", m, 4096), Some((65536, 0)));
        assert_eq!(copied("mix-64k", m, 4096), Some((65536, 0)));
        assert_eq!(copied("pmd-order9", m, 4096), Some((0, 128)));
        assert_eq!(copied("mix-pmd", m, 4096), Some((32768, 64)));
        // 64 KiB pages: a PMD maps 512 MiB.
        assert_eq!(copied("pmd-order9", 1 << 30, 65536), Some((0, 2)));
        assert_eq!(copied("untouched", m, 4096), None);
    }

    #[test]
    fn wide_grids_continue_in_blocks_that_fit() {
        let cols: Vec<String> = (0..12).map(|i| format!("mthp-{}k", 16 << i)).collect();
        let rows = vec![(
            "6.12.117+deb13-cloud-amd64 (tcg)".to_string(),
            cols.iter().map(|_| "13.13 M*".to_string()).collect(),
        )];
        let g = grid("kernel", &cols, &rows);
        assert!(g.lines().all(|l| l.chars().count() <= WIDTH), "{g}");
        // Every column appears once, in order.
        let heads: Vec<&str> = g
            .lines()
            .filter(|l| l.starts_with("| kernel"))
            .flat_map(|l| l.split('|').skip(2))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(heads, cols.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(g.matches("| kernel").count() > 1, "{g}");
    }

    #[test]
    fn filled_lines_fit() {
        let t = "- x86_64 order0, 6.12.117+deb13: run 0 13.06 M, run 1 13.02 M, run 3 13.17 M, \
                 run 4 13.17 M vs the median 13.13 M (spread 1.14%)";
        let f = fill(t, 60, "  ");
        assert!(f.lines().all(|l| l.chars().count() <= 60), "{f}");
        assert_eq!(
            f.split_whitespace().collect::<Vec<_>>(),
            t.split_whitespace().collect::<Vec<_>>()
        );
    }
}
