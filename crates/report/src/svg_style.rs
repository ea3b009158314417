//! What the plots of [`crate::svg`] share about series and units: every series gets its own
//! (colour, marker) pair ([`series_style`], [`draw_marker`], [`legend_entry`]), so no two series look alike even past
//! the palette's seven series colours; a row's point and spread in the unit it was measured in
//! ([`Scale`], [`point`]): timed rows in ms (mean ± 1 std of run means), exact rows in millions
//! of guest instructions (the median of run medians, whiskers from the lowest to the highest
//! run); the folio-size axis's short labels ([`folio_size_label`]).

use plotters::chart::SeriesAnno;
use plotters::prelude::*;
use results::SampleUnit;

use crate::cases::Row;
use crate::svg::{Axis, PALETTE, PlotError};

/// Marker shapes, in the order series take them.
pub const MARKERS: [&str; 4] = ["circle", "square", "triangle", "diamond"];

/// The colour and marker of series `i`: colours from the palette's first seven (black is kept
/// for whiskers), markers cycling every series, so pairs repeat only after 28 series.
pub fn series_style(i: usize) -> (RGBColor, usize) {
    (PALETTE[i % (PALETTE.len() - 1)], i % MARKERS.len())
}

/// Draw a filled marker of shape `shape` (an index into [`MARKERS`]) at `at`, about 9 px wide.
pub fn draw_marker<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<Axis, Axis>>,
    at: (f64, f64),
    shape: usize,
    color: RGBColor,
) -> Result<(), PlotError> {
    let style = color.filled();
    let r = match shape % MARKERS.len() {
        0 => chart.draw_series(std::iter::once(Circle::new(at, 4, style))),
        1 => chart.draw_series(std::iter::once(
            EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], style),
        )),
        2 => chart.draw_series(std::iter::once(TriangleMarker::new(at, 5, style))),
        _ => chart.draw_series(std::iter::once(
            EmptyElement::at(at) + Polygon::new(vec![(0, -5), (5, 0), (0, 5), (-5, 0)], style),
        )),
    };
    r.map(|_| ()).map_err(|e| PlotError(format!("{e:?}")))
}

/// Label a series and give its legend entry a line of `stroke` px with the series' marker.
pub fn legend_entry<'a, DB: DrawingBackend + 'a>(
    anno: &mut SeriesAnno<'a, DB>,
    name: String,
    shape: usize,
    color: RGBColor,
    stroke: u32,
) {
    anno.label(name);
    let line = move |(x, y): (i32, i32)| {
        EmptyElement::at((x, y))
            + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(stroke))
    };
    let fill = color.filled();
    match shape % MARKERS.len() {
        0 => anno.legend(move |c| line(c) + Circle::new((10, 0), 4, fill)),
        1 => anno.legend(move |c| line(c) + Rectangle::new([(6, -4), (14, 4)], fill)),
        2 => anno.legend(move |c| line(c) + TriangleMarker::new((10, 0), 5, fill)),
        _ => anno.legend(move |c| {
            line(c) + Polygon::new(vec![(10, -5), (15, 0), (10, 5), (5, 0)], fill)
        }),
    };
}

/// How a unit reads on an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    /// Samples per axis unit.
    pub div: f64,
    /// The axis unit after a value: `ms`, `M instr`.
    pub suffix: &'static str,
    /// What a value is, for axis titles.
    pub what: &'static str,
}

/// The axis scale of `unit`.
pub fn scale(unit: SampleUnit) -> Scale {
    match unit {
        SampleUnit::Nanoseconds => Scale {
            div: 1e6,
            suffix: "ms",
            what: "time per fork, ms",
        },
        SampleUnit::Instructions => Scale {
            div: 1e6,
            suffix: "M instr",
            what: "guest instructions per fork, M",
        },
    }
}

/// A row's value and the ends of its whiskers, in its scale's units: timed, mean ± 1 std of the
/// run means; exact, the median of the run medians with the lowest and highest run.
pub fn point(r: &Row) -> (f64, f64, f64) {
    let s = scale(r.unit);
    match &r.exact {
        Some(e) => {
            let lo = r.run_means.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = r
                .run_means
                .iter()
                .copied()
                .fold(f64::NEG_INFINITY, f64::max);
            (e.own.value / s.div, lo / s.div, hi / s.div)
        }
        None => {
            let (m, sd) = (r.summary.mean / s.div, r.summary.std / s.div);
            (m, (m - sd).max(0.0), m + sd)
        }
    }
}

/// What the whiskers of [`point`] span, for axis titles.
pub fn whiskers_text(unit: SampleUnit) -> &'static str {
    match unit {
        SampleUnit::Nanoseconds => "whiskers ±1 std of run means",
        SampleUnit::Instructions => "whiskers: min to max run",
    }
}

/// A layout's folio size for the folio-size axis, short enough for a dozen slots side by
/// side: `4K`, `64K`, `1M`, `2M pte`, `2M pmd` (the axis title says what they are).
pub fn folio_size_label(layout: &str) -> String {
    match layout {
        "order0" => "4K".into(),
        "pte-order9" => "2M pte".into(),
        "pmd-order9" => "2M pmd".into(),
        l => match l
            .strip_prefix("mthp-")
            .and_then(|k| k.strip_suffix('k'))
            .and_then(|k| k.parse::<u64>().ok())
        {
            Some(kb) if kb >= 1024 && kb % 1024 == 0 => format!("{}M", kb / 1024),
            Some(kb) => format!("{kb}K"),
            None => l.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_of_28_differs_in_colour_or_marker() {
        let styles: Vec<(RGBColor, usize)> = (0..28).map(series_style).collect();
        for (i, a) in styles.iter().enumerate() {
            for b in &styles[..i] {
                assert!(a.0 != b.0 || a.1 != b.1, "series {i}");
            }
        }
        // Neighbours differ in both.
        for w in styles.windows(2) {
            assert!(w[0].0 != w[1].0 && w[0].1 != w[1].1);
        }
    }

    #[test]
    fn folio_size_labels_are_short() {
        let l: Vec<String> = [
            "order0",
            "mthp-16k",
            "mthp-1024k",
            "pte-order9",
            "pmd-order9",
        ]
        .iter()
        .map(|l| folio_size_label(l))
        .collect();
        assert_eq!(l, ["4K", "16K", "1M", "2M pte", "2M pmd"]);
    }
}
