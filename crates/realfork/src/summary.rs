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
//! belong there too and read the JSON records instead. Durations print with [`contract::fmt_ns`].

use contract::{RealContext, RealExtra, RunRecord, fmt_ns};

/// Mean, median and sample standard deviation; `None` for no samples.
pub fn mean_median_sd(samples: &[u64]) -> Option<(f64, f64, f64)> {
    let xs: Vec<f64> = samples.iter().map(|&s| s as f64).collect();
    let s = stats::Summary::of(&xs)?;
    Some((s.mean, stats::median(&xs)?, s.std))
}

fn real(rec: &RunRecord) -> Option<&RealExtra> {
    rec.real.as_deref()
}

fn with_options(mut line: String, rec: &RunRecord) -> String {
    let options = rec.variant.options();
    if !options.is_empty() {
        line.push_str(&format!(" [{options}]"));
    }
    line
}

/// Lines describing one record of the invocation `ctx`: the verification line before the first
/// run (and after any run whose check failed, and after the last), then the run's figures.
pub fn describe(ctx: &RealContext, rec: &RunRecord) -> Vec<String> {
    let mut out = Vec::new();
    let x = real(rec);
    if rec.run_index == 0 {
        out.push(format!("layout: {}", ctx.pre.summary));
        if let Some(s) = x.and_then(|x| x.sched.as_ref())
            && let Some(why) = &s.fallback
        {
            out.push(format!(
                "sched: fell back to SCHED_{}: {why}",
                s.effective.name().to_uppercase()
            ));
        }
    }
    let mut line = format!("{} run {}:", rec.variant.layout_name(), rec.run_index);
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
    line.push_str(&format!(
        ", {} disturbed",
        x.map_or(0, RealExtra::disturbed_count)
    ));
    if let Some((mean, _, _)) = x.and_then(|x| mean_median_sd(&x.reaped_ns)) {
        line.push_str(&format!("; fork->reaped mean {}", fmt_ns(mean)));
    }
    if let Some(first) = x.and_then(|x| x.first_fork_ns) {
        line.push_str(&format!("; first fork {}", fmt_ns(first as f64)));
    }
    out.push(with_options(line, rec));
    let last = rec.run_index + 1 == ctx.runs;
    if let Some(post) = x.and_then(|x| x.post.as_ref())
        && (!post.ok || last)
    {
        out.push(format!("layout: {}", post.summary));
    }
    out
}

/// One line over all records of one variant: `<layout> over R runs x N: fork mean (of run
/// means), std_rel (sample sd of run means / their mean), median of all samples, fork-to-reaped
/// mean, disturbed samples, timer overhead, runner memory`. `None` without records.
pub fn aggregate(ctx: &RealContext, recs: &[RunRecord]) -> Option<String> {
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
    let extras: Vec<&RealExtra> = recs.iter().filter_map(real).collect();
    let reaped: Vec<f64> = extras
        .iter()
        .flat_map(|x| &x.reaped_ns)
        .map(|&v| v as f64)
        .collect();
    let disturbed: usize = extras.iter().map(|x| x.disturbed_count()).sum();
    let child_first: usize = extras.iter().map(|x| x.child_ran_first.len()).sum();
    let mut line = format!(
        "{} over {} runs x {}: fork mean {} std_rel {:.2}%",
        first.variant.layout_name(),
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
    let probe: Vec<f64> = extras
        .iter()
        .flat_map(|x| &x.core_probe_ns)
        .map(|&v| v as f64)
        .collect();
    if let (Some(r), Some(p)) = (stats::pearson(&probe, &all), stats::Summary::of(&probe)) {
        line.push_str(&format!(
            "; core probe {} (sd {:.1}%), r {:.2} with fork time",
            fmt_ns(p.mean),
            100.0 * p.cv(),
            r
        ));
    }
    let t = ctx.timer.per_call_mean_ns;
    if t > 0.0 && runs.mean > 0.0 {
        line.push_str(&format!(
            "; timer {:.0} ns = {:.4}% of fork",
            t,
            100.0 * t / runs.mean
        ));
    }
    if let Some(m) = extras
        .iter()
        .filter_map(|x| x.memory.as_ref()?.runner_own_peak_bytes)
        .max()
    {
        line.push_str(&format!(
            "; runner memory beyond the region {:.1} MiB",
            m as f64 / f64::from(1 << 20)
        ));
    }
    Some(with_options(line, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{
        Accel, Arch, CheckSummary, HostEnv, MemoryUse, Mode, Pinning, Populate, RealLayout,
        RealVariant, Sched, TimerCost, Variant,
    };

    #[test]
    fn descriptive_figures() {
        assert_eq!(mean_median_sd(&[]), None);
        let (m, med, sd) = mean_median_sd(&[1, 2, 3, 4]).unwrap();
        assert_eq!(m, 2.5);
        assert_eq!(med, 2.5);
        assert!((sd - 1.290_994_448_7).abs() < 1e-9);
        assert_eq!(mean_median_sd(&[7]).unwrap(), (7.0, 7.0, 0.0));
    }

    fn check(summary: &str) -> CheckSummary {
        CheckSummary {
            level: "full".into(),
            ok: true,
            summary: summary.into(),
            failure: None,
        }
    }

    fn ctx(runs: u32) -> RealContext {
        RealContext {
            env: HostEnv::default(),
            layout: RealLayout::Order0,
            mem_bytes: 1 << 30,
            iters: 2,
            runs,
            pinning: Pinning::default(),
            timer: TimerCost {
                calls: 10,
                per_call_mean_ns: 20.0,
                per_call_median_ns: 20.0,
                per_call_min_ns: 19,
            },
            populate: Populate::default(),
            pre: check("verified order0 (before)"),
            pre_report: serde_json::Value::Null,
            guest: None,
            lab: None,
        }
    }

    fn rec(run_index: u32, samples: Vec<u64>) -> RunRecord {
        RunRecord {
            variant: Variant::Real(RealVariant {
                arch: Arch::X86_64,
                kernel: "k".into(),
                accel: Accel::Host,
                clock: Default::default(),
                layout: RealLayout::Order0,
                mem_bytes: 1 << 30,
                mode: Mode::Steady,
                sched: Sched::Fifo,
                unverified: false,
            }),
            run_index,
            warmup: 1,
            samples_ns: samples.clone(),
            cpu: Some(1),
            ops: Default::default(),
            sim: None,
            real: Some(Box::new(RealExtra {
                post: Some(check("verified order0 (after)")),
                reaped_ns: samples.iter().map(|s| s * 2).collect(),
                disturbances: vec![contract::Disturbance {
                    iter: 0,
                    reasons: vec!["preempted".into()],
                }],
                first_fork_ns: Some(5_000),
                memory: Some(MemoryUse {
                    runner_own_peak_bytes: Some(3 << 20),
                    ..MemoryUse::default()
                }),
                ..RealExtra::default()
            })),
            host_load: None,
        }
    }

    #[test]
    fn describe_reads_the_context_and_the_run() {
        let c = ctx(2);
        let lines = describe(&c, &rec(0, vec![900, 1100]));
        assert_eq!(
            lines,
            [
                "layout: verified order0 (before)",
                "order0 run 0: fork mean 1.00 µs median 1.00 µs sd 141 ns (14.1%) n=2, 1 disturbed; \
                 fork->reaped mean 2.00 µs; first fork 5.00 µs [sched-fifo]",
            ]
        );
        // After the last run, its verification line.
        let lines = describe(&c, &rec(1, vec![1000]));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[1], "layout: verified order0 (after)");
    }

    #[test]
    fn aggregate_over_runs() {
        assert_eq!(aggregate(&ctx(2), &[]), None);
        let recs = vec![rec(0, vec![900, 1100]), rec(1, vec![1000, 1000])];
        let line = aggregate(&ctx(2), &recs).unwrap();
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
        a.real.as_mut().unwrap().core_probe_ns = vec![90, 110, 100];
        b.real.as_mut().unwrap().core_probe_ns = vec![100, 120, 80];
        let line = aggregate(&ctx(2), &[a, b]).unwrap();
        assert!(
            line.contains("; core probe 100 ns (sd 14.1%), r 1.00 with fork time;"),
            "{line}"
        );
    }
}
