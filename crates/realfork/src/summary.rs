//! The short human-readable summary `forkbench real` prints without `--json`: the layout
//! verification line and, per run, mean / median / standard deviation of the fork() samples.
//! Only these three descriptive figures are computed here; real statistics (CIs, tests between
//! variants) belong to the `stats` crate and read the JSON records instead.

use results::RunRecord;

/// Mean, median and sample standard deviation; `None` for no samples.
pub fn mean_median_sd(samples: &[u64]) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / n;
    let mut v = samples.to_vec();
    v.sort_unstable();
    let mid = v.len() / 2;
    let median = if v.len().is_multiple_of(2) {
        (v[mid - 1] as f64 + v[mid] as f64) / 2.0
    } else {
        v[mid] as f64
    };
    let sd = if samples.len() > 1 {
        (samples
            .iter()
            .map(|&s| (s as f64 - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0))
            .sqrt()
    } else {
        0.0
    };
    Some((mean, median, sd))
}

/// A duration in ns with a readable unit.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Lines describing one record: the verification line before the first run (and after any run
/// whose check failed or was partial), then the run's figures.
pub fn describe(rec: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let v = &rec.extra["verification"];
    if rec.run_index == 0
        && let Some(s) = v["pre"]["summary"].as_str()
    {
        out.push(format!("layout: {s}"));
        if let Some(s) = rec.extra["sched"]["fallback"].as_str() {
            out.push(format!("sched: fell back to SCHED_OTHER: {s}"));
        }
    }
    let reaped: Vec<u64> = rec.extra["reaped_ns"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default();
    let disturbed = rec.extra["disturbed_count"].as_u64().unwrap_or(0);
    let mut line = format!("{} run {}:", rec.variant.layout, rec.run_index);
    match mean_median_sd(&rec.samples_ns) {
        Some((mean, median, sd)) => line.push_str(&format!(
            " fork mean {} median {} sd {} ({:.1}%) n={}",
            fmt_ns(mean),
            fmt_ns(median),
            fmt_ns(sd),
            if mean > 0.0 { 100.0 * sd / mean } else { 0.0 },
            rec.samples_ns.len()
        )),
        None => line.push_str(" no samples"),
    }
    line.push_str(&format!(", {disturbed} disturbed"));
    if let Some((mean, _, _)) = mean_median_sd(&reaped) {
        line.push_str(&format!("; fork->reaped mean {}", fmt_ns(mean)));
    }
    if let Some(first) = rec.extra["first_fork_ns"].as_u64() {
        line.push_str(&format!("; first fork {}", fmt_ns(first as f64)));
    }
    if !rec.variant.options.is_empty() {
        line.push_str(&format!(" [{}]", rec.variant.options));
    }
    out.push(line);
    let post = &v["post"];
    let last = u64::from(rec.run_index) + 1 == rec.extra["runs"].as_u64().unwrap_or(0);
    if (post["ok"] == false || last)
        && let Some(s) = post["summary"].as_str()
    {
        out.push(format!("layout: {s}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptive_figures() {
        assert_eq!(mean_median_sd(&[]), None);
        let (m, med, sd) = mean_median_sd(&[1, 2, 3, 4]).unwrap();
        assert_eq!(m, 2.5);
        assert_eq!(med, 2.5);
        assert!((sd - 1.290_994_448_7).abs() < 1e-9);
        assert_eq!(mean_median_sd(&[7]).unwrap(), (7.0, 7.0, 0.0));
        assert_eq!(fmt_ns(1_500_000.0), "1.500 ms");
        assert_eq!(fmt_ns(1_500.0), "1.50 µs");
        assert_eq!(fmt_ns(15.0), "15 ns");
    }
}
