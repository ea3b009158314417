//! The short human-readable summary `forkbench real` prints without `--json`: the layout
//! verification line and, per run, mean / median / standard deviation of the fork() samples,
//! then one line over all runs ([`aggregate`]): mean of run means, run-to-run `std_rel`, median
//! over all samples (and the run-to-run `std_rel` of the run medians), fork-to-reaped, disturbed
//! samples, the core probe (mean, sd and correlation with fork time; see [`crate::coreprobe`]),
//! timer overhead and the runner's own memory. Beside `std_rel` it prints the same figure
//! "without drift" ([`stats::regrouped`]): the samples dealt round-robin into as many groups as
//! runs, so that slow drift of the host, shared by all groups, drops out. A large gap between the
//! two says the run-to-run spread comes from the host drifting between runs, not from the forks.
//! Means, standard deviations and medians come from the `stats` crate; tests between variants
//! belong there too and read the JSON records instead.

use results::RunRecord;

/// Mean, median and sample standard deviation; `None` for no samples.
pub fn mean_median_sd(samples: &[u64]) -> Option<(f64, f64, f64)> {
    let xs: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    let s = stats::Summary::of(&xs)?;
    Some((s.mean, stats::median(&xs)?, s.std))
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
            let to = rec.extra["sched"]["effective"]
                .as_str()
                .unwrap_or("other")
                .to_uppercase();
            out.push(format!("sched: fell back to SCHED_{to}: {s}"));
        }
    }
    let reaped = u64s(&rec.extra["reaped_ns"]);
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

fn u64s(v: &serde_json::Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64()).collect())
        .unwrap_or_default()
}

/// One line over all records of one variant: `<layout> over R runs x N: fork mean (of run
/// means), std_rel (sample sd of run means / their mean), median of all samples, fork-to-reaped
/// mean, disturbed samples, timer overhead, runner memory`. `None` without records.
pub fn aggregate(recs: &[RunRecord]) -> Option<String> {
    let first = recs.first()?;
    let means: Vec<f64> = recs.iter().map(RunRecord::mean_ns).collect();
    let runs = stats::Summary::of(&means)?;
    let per_run: Vec<Vec<f64>> = recs
        .iter()
        .map(|r| r.samples_ns.iter().map(|&s| s as f64).collect())
        .collect();
    let all: Vec<f64> = per_run.concat();
    let median = stats::median(&all)?;
    let run_medians: Vec<f64> = per_run.iter().filter_map(|xs| stats::median(xs)).collect();
    let medians = stats::Summary::of(&run_medians)?;
    let short_term = stats::regrouped(&per_run).map(|s| s.cv());
    let reaped: Vec<f64> = recs
        .iter()
        .flat_map(|r| u64s(&r.extra["reaped_ns"]))
        .map(|x| x as f64)
        .collect();
    let disturbed: u64 = recs
        .iter()
        .filter_map(|r| r.extra["disturbed_count"].as_u64())
        .sum();
    let child_first: u64 = recs
        .iter()
        .filter_map(|r| r.extra["child_ran_first_count"].as_u64())
        .sum();
    let mut line = format!(
        "{} over {} runs x {}: fork mean {} std_rel {:.2}%",
        first.variant.layout,
        recs.len(),
        first.samples_ns.len(),
        fmt_ns(runs.mean),
        100.0 * runs.cv(),
    );
    if let Some(cv) = short_term {
        line.push_str(&format!(" (without drift {:.2}%)", 100.0 * cv));
    }
    line.push_str(&format!(
        " median {} (run medians std_rel {:.2}%)",
        fmt_ns(median),
        100.0 * medians.cv(),
    ));
    if let Some(r) = stats::Summary::of(&reaped) {
        line.push_str(&format!("; fork->reaped mean {}", fmt_ns(r.mean)));
    }
    line.push_str(&format!(
        "; disturbed {disturbed} of {} (child ran first {child_first})",
        all.len()
    ));
    let probe: Vec<f64> = recs
        .iter()
        .flat_map(|r| u64s(&r.extra["core_probe_ns"]))
        .map(|x| x as f64)
        .collect();
    if let (Some(r), Some(p)) = (stats::pearson(&probe, &all), stats::Summary::of(&probe)) {
        line.push_str(&format!(
            "; core probe {} (sd {:.1}%), r {:.2} with fork time",
            fmt_ns(p.mean),
            100.0 * p.cv(),
            r
        ));
    }
    if let Some(t) = first.extra["timer"]["per_call_mean_ns"].as_f64()
        && runs.mean > 0.0
    {
        line.push_str(&format!(
            "; timer {:.0} ns = {:.4}% of fork",
            t,
            100.0 * t / runs.mean
        ));
    }
    if let Some(m) = recs
        .iter()
        .filter_map(|r| r.extra["memory"]["runner_own_peak_bytes"].as_u64())
        .max()
    {
        line.push_str(&format!(
            "; runner memory beyond the region {:.1} MiB",
            m as f64 / f64::from(1 << 20)
        ));
    }
    if !first.variant.options.is_empty() {
        line.push_str(&format!(" [{}]", first.variant.options));
    }
    Some(line)
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

    fn rec(run_index: u32, samples: Vec<u64>) -> RunRecord {
        RunRecord {
            schema: results::SCHEMA_VERSION,
            tool_version: "0".into(),
            variant: results::Variant {
                instrument: results::Instrument::Real,
                arch: "x86_64".into(),
                strategy: "k".into(),
                layout: "order0".into(),
                mem_bytes: 1 << 30,
                mode: "steady".into(),
                options: "sched-fifo".into(),
            },
            run_index,
            warmup: 1,
            samples_ns: samples.clone(),
            ops: Default::default(),
            cpu: Some(1),
            extra: serde_json::json!({
                "reaped_ns": samples.iter().map(|s| s * 2).collect::<Vec<_>>(),
                "disturbed_count": 1,
                "child_ran_first_count": 0,
                "timer": {"per_call_mean_ns": 20.0},
                "memory": {"runner_own_peak_bytes": 3 << 20},
            }),
        }
    }

    #[test]
    fn aggregate_over_runs() {
        assert_eq!(aggregate(&[]), None);
        let recs = vec![rec(0, vec![900, 1100]), rec(1, vec![1000, 1000])];
        let line = aggregate(&recs).unwrap();
        // Run means 1000 and 1000: std_rel 0; regrouped round-robin: (900+1000)/2 and
        // (1100+1000)/2, std_rel 7.07%; median of all four samples 1000.
        assert_eq!(
            line,
            "order0 over 2 runs x 2: fork mean 1.00 µs std_rel 0.00% (without drift 7.07%) median 1.00 µs \
             (run medians std_rel 0.00%); \
             fork->reaped mean 2.00 µs; disturbed 2 of 4 (child ran first 0); \
             timer 20 ns = 2.0000% of fork; runner memory beyond the region 3.0 MiB [sched-fifo]"
        );
    }

    #[test]
    fn aggregate_reports_the_core_probe_and_its_correlation() {
        let mut a = rec(0, vec![900, 1100, 1000]);
        let mut b = rec(1, vec![1000, 1200, 800]);
        // Probe readings exactly proportional to the fork times: r = 1; sd/mean of the six
        // readings is 14.14/100 (Python: statistics.stdev([90,110,100,100,120,80]) / 100).
        a.extra["core_probe_ns"] = serde_json::json!([90, 110, 100]);
        b.extra["core_probe_ns"] = serde_json::json!([100, 120, 80]);
        let line = aggregate(&[a, b]).unwrap();
        assert!(
            line.contains("; core probe 100 ns (sd 14.1%), r 1.00 with fork time;"),
            "{line}"
        );
    }
}
