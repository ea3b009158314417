//! Tables in the LKML thread's format, from result files:
//!
//! ```text
//! | kernel                |   mean_rel |   std_rel |
//! |:----------------------|-----------:|----------:|
//! | mm-unstable           |       0.0% |      0.8% |
//! ```
//!
//! (the shape pandas' `to_markdown` gives: left-aligned text column, right-aligned numbers,
//! one decimal, percent). This crate measures nothing.

use results::RunRecord;
use stats::{Summary, relative};

/// One row of a relative-mean table.
#[derive(Debug, Clone, PartialEq)]
pub struct RelRow {
    pub kernel: String,
    pub mean_rel: f64,
    pub std_rel: f64,
}

/// Summaries of run means per strategy, in first-seen order.
pub fn summarise_by_strategy(runs: &[&RunRecord]) -> Vec<(String, Summary)> {
    let mut order: Vec<String> = Vec::new();
    for r in runs {
        if !order.contains(&r.variant.strategy) {
            order.push(r.variant.strategy.clone());
        }
    }
    order
        .into_iter()
        .filter_map(|s| {
            let means: Vec<f64> = runs
                .iter()
                .filter(|r| r.variant.strategy == s)
                .map(|r| r.mean_ns())
                .collect();
            Summary::of(&means).map(|sum| (s, sum))
        })
        .collect()
}

/// Rows relative to `baseline`, in the order of `kernels` (the baseline's row reads 0.0%).
/// None when the baseline has no runs.
pub fn relative_rows(
    summaries: &[(String, Summary)],
    baseline: &str,
    kernels: &[&str],
) -> Option<Vec<RelRow>> {
    let base = summaries.iter().find(|(k, _)| k == baseline)?.1;
    Some(
        kernels
            .iter()
            .filter_map(|k| summaries.iter().find(|(n, _)| n == k))
            .map(|(k, s)| {
                let r = relative(s, &base);
                RelRow {
                    kernel: k.clone(),
                    mean_rel: r.mean_rel,
                    std_rel: r.std_rel,
                }
            })
            .collect(),
    )
}

fn pct(x: f64) -> String {
    // Avoid "-0.0%" for tiny negatives, as the thread's tables never show it.
    let v = (x * 1000.0).round() / 10.0;
    let v = if v == 0.0 { 0.0 } else { v };
    format!("{v:.1}%")
}

/// Render rows as the thread's `| kernel | mean_rel | std_rel |` table.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_format_shape() {
        let rows = vec![
            RelRow {
                kernel: "mm-unstable".into(),
                mean_rel: 0.0,
                std_rel: 0.008,
            },
            RelRow {
                kernel: "hugetlb-rmap-cleanups".into(),
                mean_rel: -0.033,
                std_rel: 0.011,
            },
            RelRow {
                kernel: "fork-batching".into(),
                mean_rel: -0.381,
                std_rel: 0.0049,
            },
            RelRow {
                kernel: "tiny".into(),
                mean_rel: -0.0001,
                std_rel: 0.0,
            },
        ];
        insta::assert_snapshot!(thread_table(&rows));
    }
}
