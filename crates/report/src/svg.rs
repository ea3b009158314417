//! SVG plots (plotters, SVG backend only, so no font libraries are linked):
//!
//! - [`mean_rel_bars`]: one case: `mean_rel` per row as horizontal bars, whiskers = 95% CI of the
//!   change (delta method), the baseline at 0.
//! - [`fork_time_by_order`]: real fork(): mean time per fork against the folio order of each
//!   layout, whiskers = ±1 std of run means, one series per kernel label.
//! - [`ops_stacked`]: model: op counts of one fork per strategy, stacked by op kind.
//!
//! Each returns the SVG document as a string; the caller writes it.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::cases::{Case, Row};

/// Error from drawing (plotters' backend errors, flattened to text).
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

fn perr<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(0x4c, 0x72, 0xb0),
    RGBColor(0xdd, 0x84, 0x52),
    RGBColor(0x55, 0xa8, 0x68),
    RGBColor(0xc4, 0x4e, 0x52),
    RGBColor(0x81, 0x72, 0xb3),
    RGBColor(0x93, 0x78, 0x60),
    RGBColor(0xda, 0x8b, 0xc3),
    RGBColor(0x8c, 0x8c, 0x8c),
];

fn seg_index(v: &SegmentValue<usize>) -> Option<usize> {
    match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => Some(*i),
        SegmentValue::Last => None,
    }
}

/// `mean_rel` bars with 95% CI whiskers for one case.
pub fn mean_rel_bars(case: &Case, machine: &str) -> Result<String, PlotError> {
    let rows: Vec<&Row> = case.rows.iter().filter(|r| r.cmp.is_some()).collect();
    let n = rows.len().max(1);
    let vals: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|r| {
            let c = r.cmp.expect("filtered");
            let m = c.rel.mean_rel * 100.0;
            let (lo, hi) =
                c.ci.map(|ci| ((ci.lo - 1.0) * 100.0, (ci.hi - 1.0) * 100.0))
                    .unwrap_or((m, m));
            (m, lo, hi)
        })
        .collect();
    let mut xmin = vals.iter().map(|v| v.1.min(v.0)).fold(0.0f64, f64::min);
    let mut xmax = vals.iter().map(|v| v.2.max(v.0)).fold(0.0f64, f64::max);
    let pad = ((xmax - xmin) * 0.08).max(0.5);
    xmin -= pad;
    xmax += pad;
    let height = 140 + 34 * n as u32;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let title = format!(
            "{machine}: {} — mean_rel vs {} (95% CI)",
            case.title(),
            case.baseline
        );
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(xmin..xmax, (0..n).into_segmented())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("change of mean fork time vs baseline, % (negative = faster)")
            .x_label_formatter(&|x| format!("{x:.0}%"))
            .y_labels(n)
            .y_label_formatter(&|v| {
                seg_index(v)
                    .and_then(|i| (n - 1).checked_sub(i))
                    .and_then(|i| names.get(i))
                    .cloned()
                    .unwrap_or_default()
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        // Row i is drawn top-down: segment n-1-i.
        for (i, (m, lo, hi)) in vals.iter().enumerate() {
            let s = n - 1 - i;
            let color = if rows[i].name == case.baseline {
                PALETTE[7]
            } else if *m < 0.0 {
                PALETTE[2]
            } else {
                PALETTE[3]
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(s)),
                    (*m, SegmentValue::Exact(s + 1)),
                ],
                color.mix(0.75).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            chart.draw_series(std::iter::once(bar)).map_err(perr)?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![
                        (*lo, SegmentValue::CenterOf(s)),
                        (*hi, SegmentValue::CenterOf(s)),
                    ],
                    BLACK.stroke_width(2),
                )))
                .map_err(perr)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("{m:+.1}%"),
                    (*hi, SegmentValue::CenterOf(s)),
                    ("sans-serif", 11),
                )))
                .map_err(perr)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Last)],
                BLACK.stroke_width(1),
            )))
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

/// Folio order of a real-fork layout name (for the x axis).
pub fn layout_order(layout: &str) -> Option<u32> {
    match layout {
        "order0" => Some(0),
        "mthp-64k" => Some(4),
        "pte-order9" | "pmd-order9" | "order9" => Some(9),
        l => l.strip_prefix("order").and_then(|n| n.parse().ok()),
    }
}

/// Real fork(): mean ms per fork against folio order, one marker series per (label, mapping):
/// PTE-mapped layouts are joined by a line, PMD-mapped drawn apart; `untouched` is skipped.
pub fn fork_time_by_order(rows: &[&Row], machine: &str) -> Result<String, PlotError> {
    // (order, mean ms, std ms, layout) per series name.
    type Point = (f64, f64, f64, String);
    let mut series: Vec<(String, Vec<Point>)> = Vec::new();
    for r in rows {
        let Some(order) = layout_order(&r.layout) else {
            continue;
        };
        let kind = if r.layout.starts_with("pmd") {
            "pmd-mapped"
        } else {
            "pte-mapped"
        };
        let name = format!("{} {kind}", r.label);
        let p = (
            f64::from(order),
            r.summary.mean / 1e6,
            r.summary.std / 1e6,
            r.layout.clone(),
        );
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(p),
            None => series.push((name, vec![p])),
        }
    }
    for (_, v) in &mut series {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1 + p.2))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.2;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mem = rows.first().map(|r| r.mem_bytes >> 20).unwrap_or(0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{machine}: real fork() of {mem} MiB — time per fork vs folio order"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5f64..11.0f64, 0.0..ymax)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_desc("folio order (0 = 4 KiB, 4 = 64 KiB, 9 = 2 MiB)")
            .y_desc("mean time per fork, ms (±1 std of run means)")
            .x_labels(11)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        for (si, (name, pts)) in series.iter().enumerate() {
            let color = PALETTE[si % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
                .map_err(perr)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            for p in pts {
                chart
                    .draw_series([
                        Circle::new((p.0, p.1), 5, color.filled()).into_dyn(),
                        PathElement::new(
                            vec![(p.0, (p.1 - p.2).max(0.0)), (p.0, p.1 + p.2)],
                            color.stroke_width(2),
                        )
                        .into_dyn(),
                        Text::new(
                            format!("{} {:.2} ms", p.3, p.1),
                            (p.0 + 0.12, p.1),
                            ("sans-serif", 11),
                        )
                        .into_dyn(),
                    ])
                    .map_err(perr)?;
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

/// Op kinds stacked in [`ops_stacked`], in drawing order.
pub const OP_KINDS: [&str; 9] = [
    "pte_reads",
    "pte_writes",
    "pte_atomics",
    "refcount_atomics",
    "mapcount_atomics",
    "large_mapcount_atomics",
    "rmap_calls",
    "tlbi",
    "batches",
];

/// Model: op counts of one fork per strategy (rows of `case`), stacked by op kind.
pub fn ops_stacked(case: &Case, machine: &str) -> Result<String, PlotError> {
    let rows: Vec<&Row> = case.rows.iter().filter(|r| !r.ops.is_empty()).collect();
    let n = rows.len().max(1);
    let total = |r: &Row| -> f64 {
        OP_KINDS
            .iter()
            .map(|k| r.ops.get(*k).copied().unwrap_or(0) as f64)
            .sum()
    };
    // Room on the right for the legend.
    let xmax = rows.iter().map(|r| total(r)).fold(1.0f64, f64::max) * 1.4 / 1e3;
    let height = (160 + 34 * n as u32).max(330);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{machine}: {} — op counts of one fork", case.title()),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(230)
            .build_cartesian_2d(0.0..xmax, (0..n).into_segmented())
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("operations per fork, thousands")
            .y_labels(n)
            .y_label_formatter(&|v| {
                seg_index(v)
                    .and_then(|i| (n - 1).checked_sub(i))
                    .and_then(|i| names.get(i))
                    .cloned()
                    .unwrap_or_default()
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        for (ki, kind) in OP_KINDS.iter().enumerate() {
            let color = PALETTE[ki % PALETTE.len()];
            let color = if ki >= PALETTE.len() {
                RGBColor(0x33, 0x33, 0x33)
            } else {
                color
            };
            let bars: Vec<Rectangle<(f64, SegmentValue<usize>)>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let start: f64 = OP_KINDS[..ki]
                        .iter()
                        .map(|k| r.ops.get(*k).copied().unwrap_or(0) as f64)
                        .sum::<f64>()
                        / 1e3;
                    let w = r.ops.get(*kind).copied().unwrap_or(0) as f64 / 1e3;
                    let s = n - 1 - i;
                    let mut bar = Rectangle::new(
                        [
                            (start, SegmentValue::Exact(s + 1)),
                            (start + w, SegmentValue::Exact(s)),
                        ],
                        color.filled(),
                    );
                    bar.set_margin(4, 4, 0, 0);
                    bar
                })
                .collect();
            chart
                .draw_series(bars)
                .map_err(perr)?
                .label(*kind)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}
