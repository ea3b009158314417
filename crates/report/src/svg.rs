//! SVG plots (plotters, SVG backend only, so no font libraries are linked). Every colour comes
//! from [`PALETTE`] (Okabe-Ito, colour-blind safe) or is [`NEUTRAL`] grey, black or white;
//! categorical axes have exactly one slot per category; tick labels are integers, short
//! decimals or SI (`500k`, `1.5M`), never `1000.0`.
//!
//! - [`mean_rel_bars`]: one case: `mean_rel` per row as horizontal bars coloured by verdict
//!   (blue faster, vermillion slower, grey otherwise), whiskers = 95% CI of the change.
//! - [`fork_time_by_order`]: real fork(): mean time per fork against the folio order of each
//!   layout (a tick at every order 0..9), whiskers = ±1 std of run means, one series per kernel.
//! - [`fork_time_by_folio_size`]: real fork(): time per fork across folio sizes, order0, every
//!   mTHP size present, pte-order9 and pmd-order9 (David's sweep): every run mean as a dot, the
//!   mean as a bar, ±1 std whiskers, one series per kernel.
//! - [`fork_distribution`]: one case: every timed fork of each row as a dot (a strip plot),
//!   with the median; a log axis when the rows differ by more than 30x.
//! - [`ops_stacked`]: model: op counts of one fork per strategy, stacked by op kind.
//!
//! Every series has its own colour and marker ([`crate::svg_style`]). Exact rows (guest
//! instructions) plot in millions of instructions with axes that say so, never beside timed
//! rows: callers pass rows of one unit.
//!
//! Each returns the SVG document as a string; the caller writes it.

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::cases::{Case, Row};
use crate::svg_style::{
    draw_marker, folio_size_label, legend_entry, point, scale, series_style, whiskers_text,
};

/// Error from drawing (plotters' backend errors, flattened to text).
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(pub(crate) String);

fn perr<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

/// Okabe-Ito's colour-blind-safe palette (Okabe & Ito 2008), in the order series take them.
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xb2), // blue
    RGBColor(0xe6, 0x9f, 0x00), // orange
    RGBColor(0x00, 0x9e, 0x73), // bluish green
    RGBColor(0xd5, 0x5e, 0x00), // vermillion
    RGBColor(0x56, 0xb4, 0xe9), // sky blue
    RGBColor(0xcc, 0x79, 0xa7), // reddish purple
    RGBColor(0xf0, 0xe4, 0x42), // yellow
    RGBColor(0x00, 0x00, 0x00), // black
];
/// Baselines and a ninth category.
pub const NEUTRAL: RGBColor = RGBColor(0x99, 0x99, 0x99);
const FASTER: RGBColor = PALETTE[0];
const SLOWER: RGBColor = PALETTE[3];

/// Every colour a plot may contain, as the SVG writes them (`#RRGGBB`, upper case).
pub fn allowed_colours() -> Vec<String> {
    PALETTE
        .iter()
        .chain([&NEUTRAL, &WHITE, &BLACK])
        .map(|c| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2))
        .collect()
}

/// A tick label: integers without `.0`, else the fewest decimals (at most 3) that show it.
pub fn tick(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    for d in 0..=3 {
        let s = format!("{x:.d$}");
        if (s.parse::<f64>().unwrap_or(f64::NAN) - x).abs() <= x.abs() * 1e-9 {
            return s;
        }
    }
    format!("{x:.3}")
}

/// An SI tick label for counts: `0`, `500`, `1k`, `1.5k`, `2M`.
pub fn si(x: f64) -> String {
    let (v, unit) = if x.abs() >= 1e9 {
        (x / 1e9, "G")
    } else if x.abs() >= 1e6 {
        (x / 1e6, "M")
    } else if x.abs() >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    format!("{}{unit}", tick((v * 1000.0).round() / 1000.0))
}

/// About `target` round tick values (1, 2, 2.5 or 5 x 10^k apart) covering `lo..=hi`.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let span = (hi - lo).abs().max(f64::MIN_POSITIVE);
    let raw = span / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Ticks of a log10 axis spanning `lo..hi` (log10 values): 1, 2, 5 x 10^k inside the range.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    for k in (lo.floor() as i32)..=(hi.ceil() as i32) {
        for m in [1.0f64, 2.0, 5.0] {
            let v = (m * 10f64.powi(k)).log10();
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
    }
    out
}

/// A linear axis over `lo..hi` whose ticks (labels and grid lines) are exactly `ticks`.
#[derive(Debug, Clone)]
pub struct Axis {
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        // No light (minor) grid lines: only the chosen ticks.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// A categorical axis of `n` slots: slot `i` spans `i-0.5..i+0.5` and has one tick, at `i`.
fn slots(n: usize) -> Axis {
    numeric(-0.5, n as f64 - 0.5, (0..n).map(|i| i as f64).collect())
}

/// The slot a tick value stands for.
fn slot_of(v: f64, n: usize) -> Option<usize> {
    let i = v.round();
    ((v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n).then_some(i as usize)
}

fn numeric(lo: f64, hi: f64, ticks: Vec<f64>) -> Axis {
    let hi = if hi > lo { hi } else { lo + 1.0 };
    Axis { lo, hi, ticks }
}

fn left_text(s: String, at: (f64, f64), size: u32) -> Text<'static, (f64, f64), String> {
    Text::new(
        s,
        at,
        ("sans-serif", size)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center)),
    )
}

/// An error bar from `a` to `b` (data coordinates) with caps `cap` long across it.
fn whisker(
    a: (f64, f64),
    b: (f64, f64),
    cap: f64,
    vertical: bool,
    style: ShapeStyle,
) -> Vec<PathElement<(f64, f64)>> {
    let capped = |p: (f64, f64)| {
        if vertical {
            PathElement::new(vec![(p.0 - cap, p.1), (p.0 + cap, p.1)], style)
        } else {
            PathElement::new(vec![(p.0, p.1 - cap), (p.0, p.1 + cap)], style)
        }
    };
    vec![PathElement::new(vec![a, b], style), capped(a), capped(b)]
}

/// `mean_rel` bars with 95% CI whiskers for one case.
/// Exact cases: the change in guest instructions, without whiskers (no CI: the counts are
/// exact), coloured by the exact verdict.
pub fn mean_rel_bars(case: &Case, machine: &str) -> Result<String, PlotError> {
    let change = |r: &Row| -> Option<(f64, f64, f64)> {
        if let Some(c) = r.cmp {
            let m = c.rel.mean_rel * 100.0;
            let (lo, hi) =
                c.ci.map(|ci| ((ci.lo - 1.0) * 100.0, (ci.hi - 1.0) * 100.0))
                    .unwrap_or((m, m));
            return Some((m, lo, hi));
        }
        let m = r.exact.as_ref()?.cmp.as_ref()?.change * 100.0;
        Some((m, m, m))
    };
    let rows: Vec<&Row> = case.rows.iter().filter(|r| change(r).is_some()).collect();
    let n = rows.len().max(1);
    let vals: Vec<(f64, f64, f64)> = rows.iter().filter_map(|r| change(r)).collect();
    let mut xmin = vals.iter().map(|v| v.1.min(v.0)).fold(0.0f64, f64::min);
    let mut xmax = vals.iter().map(|v| v.2.max(v.0)).fold(0.0f64, f64::max);
    let span = (xmax - xmin).max(1.0);
    xmin -= span * 0.04;
    // Room right of the longest whisker for its value label.
    xmax += span * 0.14;
    let gap = span * 0.012;
    let height = 150 + 34 * n as u32;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let title = if case.is_exact() {
            format!(
                "{machine}: {} — change in instructions vs {}",
                case.title(),
                case.baseline
            )
        } else {
            format!(
                "{machine}: {} — mean_rel vs {} (95% CI)",
                case.title(),
                case.baseline
            )
        };
        let names: Vec<String> = rows.iter().map(|r| r.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(55)
            .y_label_area_size(230)
            .build_cartesian_2d(numeric(xmin, xmax, nice_ticks(xmin, xmax, 12)), slots(n))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE)
            .x_desc(if case.is_exact() {
                "change in guest instructions vs baseline, % (negative = fewer); exact: no CI; \
                 blue faster, vermillion slower, grey neither or runs disagree"
            } else {
                "change of mean vs baseline, % (negative = faster); whiskers: 95% CI; \
                 blue faster, vermillion slower, grey neither"
            })
            .x_label_formatter(&|x| format!("{}%", tick(*x)))
            .y_label_formatter(&|v| {
                slot_of(*v, n)
                    .and_then(|s| names.get(n - 1 - s))
                    .cloned()
                    .unwrap_or_default()
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        // Row i is drawn top-down: slot n-1-i.
        for (i, (m, lo, hi)) in vals.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            // Coloured by the verdict, not the sign: a change inside the noise stays grey.
            let verdict = rows[i].cmp.map(|c| c.verdict.as_str()).or_else(|| {
                rows[i]
                    .exact
                    .as_ref()
                    .and_then(|e| e.cmp.as_ref())
                    .map(|c| c.verdict.as_str())
            });
            let color = match verdict {
                _ if rows[i].name == case.baseline => NEUTRAL,
                Some("faster") => FASTER,
                Some("slower") => SLOWER,
                _ => NEUTRAL,
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.3), (*m, y + 0.3)],
                    color.mix(0.8).filled(),
                )))
                .map_err(perr)?;
            chart
                .draw_series(whisker(
                    (*lo, y),
                    (*hi, y),
                    0.15,
                    false,
                    BLACK.stroke_width(2),
                ))
                .map_err(perr)?;
            // Right of everything drawn on this row, so it never covers a whisker or bar.
            let right = hi.max(*m).max(0.0) + gap;
            chart
                .draw_series(std::iter::once(left_text(
                    // Exact changes are decided at ±0.5%: two decimals.
                    if case.is_exact() {
                        format!("{m:+.2}%")
                    } else {
                        format!("{m:+.1}%")
                    },
                    (right, y),
                    11,
                )))
                .map_err(perr)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, -0.5), (0.0, n as f64 - 0.5)],
                BLACK.stroke_width(1),
            )))
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

/// Folio order of a real-fork layout name (for the x axis); None for `untouched`, the mixed
/// layouts and names that are no layout.
pub fn layout_order(layout: &str) -> Option<u32> {
    match layout {
        "order9" => Some(9),
        l => match l.parse::<results::RealLayout>() {
            Ok(rl) => rl.folio_order(),
            Err(_) => l.strip_prefix("order").and_then(|n| n.parse().ok()),
        },
    }
}

/// The series a real-fork row belongs to: its kernel or label when the rows are kernels or
/// labels, else (rows are layouts of one run, named `order0` or `order0 sched-fifo`) the run's
/// label: the layouts of one kernel are one series along the axis, not a series each.
fn series_of(r: &Row) -> String {
    let is_layout = r.name == r.layout || r.name.starts_with(&format!("{} ", r.layout));
    if is_layout || r.name.is_empty() {
        r.label.clone()
    } else {
        r.name.clone()
    }
}

/// Real fork(): mean ms per fork against folio order, one series per (kernel, mapping):
/// PTE-mapped layouts are joined by a line, PMD-mapped drawn apart; `untouched` is skipped.
pub fn fork_time_by_order(rows: &[&Row], machine: &str) -> Result<String, PlotError> {
    let unit = rows.first().map(|r| r.unit).unwrap_or_default();
    let sc = scale(unit);
    // (order, value, (whisker low, high), layout) per series name.
    type Point = (f64, f64, (f64, f64), String);
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
        let name = format!("{} {kind}", series_of(r));
        let (v, lo, hi) = point(r);
        let p = (f64::from(order), v, (lo, hi), r.layout.clone());
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
        .flat_map(|(_, v)| v.iter().map(|p| p.2.1.max(p.1)))
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
                format!(
                    "{machine}: real fork() of {mem} MiB — {} vs folio order",
                    if unit == results::SampleUnit::Instructions {
                        "guest instructions per fork (exact)"
                    } else {
                        "time per fork"
                    }
                ),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(
                // A tick at every order, 9 (PMD size) included; room right for labels.
                numeric(-0.5, 11.5, (0..=9).map(f64::from).collect()),
                numeric(0.0, ymax, nice_ticks(0.0, ymax, 8)),
            )
            .map_err(perr)?;
        chart
            .configure_mesh()
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE)
            .x_desc("folio order (0 = 4 KiB, 4 = 64 KiB, 9 = 2 MiB)")
            .y_desc(format!("{} ({})", sc.what, whiskers_text(unit)))
            .x_label_formatter(&|x| tick(*x))
            .y_label_formatter(&|y| tick(*y))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        // Approximate pixels per order and plot height, to keep labels apart.
        const UNIT_PX: f64 = 67.0;
        const PLOT_PX: f64 = 420.0;
        // Boxes (x, y, width in px) a label must not cover: every marker, then every label.
        let mut placed: Vec<(f64, f64, f64)> = series
            .iter()
            .flat_map(|(_, pts)| pts.iter())
            .map(|p| (p.0 * UNIT_PX - 8.0, p.1 / ymax * PLOT_PX, 16.0))
            .collect();
        for (si, (name, pts)) in series.iter().enumerate() {
            let (color, shape) = series_style(si);
            let anno = chart
                .draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.0, p.1)),
                    color.stroke_width(2),
                ))
                .map_err(perr)?;
            legend_entry(anno, name.clone(), shape, color, 2);
            for p in pts {
                draw_marker(&mut chart, (p.0, p.1), shape, color)?;
                // Drawn over the marker, capped, so a spread narrower than it still shows.
                chart
                    .draw_series(whisker(
                        (p.0, p.2.0),
                        (p.0, p.2.1),
                        0.12,
                        true,
                        BLACK.stroke_width(2),
                    ))
                    .map_err(perr)?;
                let text = format!("{} {} {}", p.3, tick_ms(p.1), sc.suffix);
                // A label that would cover an earlier one is left out (the axis still reads).
                // The label starts 0.22 orders right of its marker.
                let (x_px, y_px) = ((p.0 + 0.22) * UNIT_PX, p.1 / ymax * PLOT_PX);
                let w_px = text.chars().count() as f64 * 6.0;
                if placed
                    .iter()
                    .any(|(x, y, w)| x_px < x + w && *x < x_px + w_px && (y - y_px).abs() < 13.0)
                {
                    continue;
                }
                placed.push((x_px, y_px, w_px));
                chart
                    .draw_series(std::iter::once(left_text(text, (p.0 + 0.22, p.1), 11)))
                    .map_err(perr)?;
            }
        }
        draw_legend(&mut chart, None)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

/// The series legend every plot with one uses: upper right, on a light box; `font_px` sets the
/// label size (plotters' default otherwise).
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    font_px: Option<u32>,
) -> Result<(), PlotError> {
    let mut legend = chart.configure_series_labels();
    legend
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight);
    if let Some(px) = font_px {
        legend.label_font(("sans-serif", px));
    }
    legend.draw().map_err(perr)
}

/// Milliseconds with two decimals, or three below 0.1 ms.
fn tick_ms(ms: f64) -> String {
    if ms.abs() < 0.1 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.2}")
    }
}

/// Real fork() across folio sizes: one slot per layout present (order0, the mTHP sizes
/// ascending, pte-order9, pmd-order9; `untouched` and the mixed layouts, which have no single
/// folio size, left out), one series per kernel (or label), side by side within a slot, each
/// in its own colour and marker: every run as a dot, the value as a bar with the series'
/// marker, whiskers (timed: ±1 std of run means; exact: lowest to highest run). The value is
/// written above the bar when the series have room for it.
pub fn fork_time_by_folio_size(rows: &[&Row], machine: &str) -> Result<String, PlotError> {
    let unit = rows.first().map(|r| r.unit).unwrap_or_default();
    let sc = scale(unit);
    let mut layouts: Vec<results::RealLayout> = Vec::new();
    for r in rows {
        if let Ok(l) = r.layout.parse::<results::RealLayout>()
            && l.folio_order().is_some()
            && !layouts.contains(&l)
        {
            layouts.push(l);
        }
    }
    layouts.sort_by_key(|l| l.rank());
    let names: Vec<String> = layouts.iter().map(|l| l.to_string()).collect();
    let mut series: Vec<String> = Vec::new();
    for r in rows {
        let s = series_of(r);
        if names.contains(&r.layout) && !series.contains(&s) {
            series.push(s);
        }
    }
    let n = names.len().max(1);
    let k = series.len().max(1);
    let width = 0.7 / k as f64;
    let ymax = rows
        .iter()
        .filter(|r| names.contains(&r.layout))
        .flat_map(|r| {
            let (v, _, hi) = point(r);
            r.run_means
                .iter()
                .map(|x| x / sc.div)
                .chain([v, hi])
                .collect::<Vec<_>>()
        })
        .fold(0.0f64, f64::max)
        .max(1e-6)
        * 1.15;
    const PLOT_W: u32 = 1000;
    // Pixels one series gets in a slot: a value label needs about 45.
    let series_px = f64::from(PLOT_W - 110) / n as f64 * width;
    let mem = rows.first().map(|r| r.mem_bytes >> 20).unwrap_or(0);
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (PLOT_W, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let what = if unit == results::SampleUnit::Instructions {
            "guest instructions per fork by folio size (exact)"
        } else {
            "time per fork by folio size"
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{machine}: real fork() of {mem} MiB — {what}"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(slots(n), numeric(0.0, ymax, nice_ticks(0.0, ymax, 8)))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE)
            .x_desc(
                "folio size (4K: order0; 16K-1M: mthp-<size>; 2M pte: pte-order9; \
                 2M pmd: pmd-order9)",
            )
            .y_desc(format!(
                "{} (dots: runs; bar: value; {})",
                sc.what,
                whiskers_text(unit)
            ))
            .x_label_formatter(&|x| {
                slot_of(*x, n)
                    .and_then(|i| names.get(i))
                    .map(|l| folio_size_label(l))
                    .unwrap_or_default()
            })
            .y_label_formatter(&|y| tick(*y))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        for (si, s) in series.iter().enumerate() {
            let (color, shape) = series_style(si);
            let offset = (si as f64 - (k as f64 - 1.0) / 2.0) * width;
            let mut values: Vec<(f64, f64)> = Vec::new();
            for r in rows.iter().filter(|r| series_of(r) == *s) {
                let Some(slot) = names.iter().position(|l| *l == r.layout) else {
                    continue;
                };
                let x = slot as f64 + offset;
                let (v, lo, hi) = point(r);
                values.push((x, v));
                let m = r.run_means.len().max(1) as f64;
                chart
                    .draw_series(r.run_means.iter().enumerate().map(|(j, run)| {
                        // Spread the runs across the series' width, in run order.
                        let dx = (j as f64 + 0.5) / m - 0.5;
                        Circle::new(
                            (x + dx * width * 0.6, run / sc.div),
                            3,
                            color.mix(0.55).filled(),
                        )
                    }))
                    .map_err(perr)?;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x - width * 0.4, v), (x + width * 0.4, v)],
                        color.stroke_width(3),
                    )))
                    .map_err(perr)?;
                chart
                    .draw_series(whisker(
                        (x, lo),
                        (x, hi),
                        width * 0.15,
                        true,
                        BLACK.stroke_width(2),
                    ))
                    .map_err(perr)?;
                draw_marker(&mut chart, (x, v), shape, color)?;
                if series_px >= 45.0 {
                    chart
                        .draw_series(std::iter::once(Text::new(
                            tick_ms(v),
                            (x, hi.max(v) + ymax * 0.015),
                            ("sans-serif", 11)
                                .into_font()
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Center, VPos::Bottom)),
                        )))
                        .map_err(perr)?;
                }
            }
            values.sort_by(|a, b| a.0.total_cmp(&b.0));
            let anno = chart
                .draw_series(LineSeries::new(values, color.mix(0.6).stroke_width(1)))
                .map_err(perr)?;
            legend_entry(anno, s.clone(), shape, color, 3);
        }
        draw_legend(&mut chart, None)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

/// One strip of [`fork_distribution`]: a row name and every timed fork of its runs, ns.
#[derive(Debug, Clone, PartialEq)]
pub struct Strip {
    pub name: String,
    pub samples_ns: Vec<u64>,
}

fn median(v: &[u64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable();
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2] as f64,
        n => (s[n / 2 - 1] as f64 + s[n / 2] as f64) / 2.0,
    }
}

/// Per-fork distribution of one case: a strip per row (top-down in `strips` order), every
/// fork one dot (jittered across the strip, deterministically), a black bar at the median.
/// The time axis is log10 when the slowest fork is more than 30x the fastest.
pub fn fork_distribution(
    title: &str,
    strips: &[Strip],
    machine: &str,
    unit: results::SampleUnit,
) -> Result<String, PlotError> {
    let sc = scale(unit);
    let n = strips.len().max(1);
    let all = strips.iter().flat_map(|s| s.samples_ns.iter().copied());
    let lo = all.clone().min().unwrap_or(1).max(1) as f64 / 1e6;
    let hi = all.max().unwrap_or(1).max(1) as f64 / 1e6;
    let log = hi / lo > 30.0;
    let to_x = |ms: f64| if log { ms.max(1e-6).log10() } else { ms };
    let (xlo, xhi) = if log {
        (lo.log10() - 0.05, hi.log10() + 0.05)
    } else {
        let pad = ((hi - lo) * 0.05).max(hi * 0.01);
        ((lo - pad).max(0.0), hi + pad)
    };
    let ticks = if log {
        log_ticks(xlo, xhi)
    } else {
        nice_ticks(xlo, xhi, 8)
    };
    let labels: Vec<String> = strips
        .iter()
        .map(|s| {
            format!(
                "{} (median {} {})",
                s.name,
                tick_ms(median(&s.samples_ns) / 1e6),
                sc.suffix
            )
        })
        .collect();
    let height = 150 + 40 * n as u32;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{machine}: {title} — every fork"),
                ("sans-serif", 16),
            )
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(300)
            .build_cartesian_2d(numeric(xlo, xhi, ticks), slots(n))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE)
            .x_desc(format!(
                "{} ({}one dot per fork, bar = median)",
                sc.what,
                if log { "log scale; " } else { "" }
            ))
            .x_label_formatter(&|x| tick(if log { 10f64.powf(*x) } else { *x }))
            .y_label_formatter(&|v| {
                slot_of(*v, n)
                    .and_then(|s| labels.get(n - 1 - s))
                    .cloned()
                    .unwrap_or_default()
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        for (i, s) in strips.iter().enumerate() {
            let y = (n - 1 - i) as f64;
            let (color, _) = series_style(i);
            chart
                .draw_series(s.samples_ns.iter().enumerate().map(|(j, ns)| {
                    // Golden-ratio jitter: spread evenly, the same on every render.
                    let dy = ((j as f64 * 0.618_033_988_75).fract() - 0.5) * 0.6;
                    Circle::new(
                        (to_x(*ns as f64 / 1e6), y + dy),
                        2,
                        color.mix(0.45).filled(),
                    )
                }))
                .map_err(perr)?;
            let m = to_x(median(&s.samples_ns) / 1e6);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(m, y - 0.4), (m, y + 0.4)],
                    BLACK.stroke_width(3),
                )))
                .map_err(perr)?;
        }
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
    let count = |r: &Row, k: &str| r.ops.get(k).copied().unwrap_or(0) as f64;
    let total = |r: &Row| -> f64 { OP_KINDS.iter().map(|k| count(r, k)).sum() };
    // Room on the right for the legend.
    let xmax = rows.iter().map(|r| total(r)).fold(1.0f64, f64::max) * 1.4;
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
            .x_label_area_size(45)
            .y_label_area_size(230)
            .build_cartesian_2d(numeric(0.0, xmax, nice_ticks(0.0, xmax, 8)), slots(n))
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE)
            .x_desc("operations per fork")
            .x_label_formatter(&|x| si(*x))
            .y_label_formatter(&|v| {
                slot_of(*v, n)
                    .and_then(|s| names.get(n - 1 - s))
                    .cloned()
                    .unwrap_or_default()
            })
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(perr)?;
        for (ki, kind) in OP_KINDS.iter().enumerate() {
            // Eight palette colours, then the neutral grey for the ninth kind.
            let color = PALETTE.get(ki).copied().unwrap_or(NEUTRAL);
            let bars: Vec<Rectangle<(f64, f64)>> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let start: f64 = OP_KINDS[..ki].iter().map(|k| count(r, k)).sum();
                    let y = (n - 1 - i) as f64;
                    Rectangle::new(
                        [(start, y - 0.32), (start + count(r, kind), y + 0.32)],
                        color.filled(),
                    )
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
        draw_legend(&mut chart, Some(11))?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}
