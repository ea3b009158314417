//! `cargo xtask bisect --kernel-tree DIR`: checks every input before the first build (exit 2
//! with one line; the default build's tools named as the Debian packages to install), chooses
//! exact or timed measurement ([`Measurement::choose`]), builds the guest payload, runs the
//! search with a [`crate::kernel::KernelMeasure`], prints the table (exact: instructions per
//! fork against both endpoints) and `first bad commit: <sha> <subject>`, and writes the log
//! (every build and boot with its time and forks in their unit, every verdict) under `--out`
//! — also when the search stops early, so that no measurement is lost.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use contract::{RealLayout, Size};
use guest::qemu::{AccelChoice, ClockChoice};
use serde_json::json;

use crate::cli::{
    BisectArgs, CliError, ensure_writable, render, render_outcome, short, watch_signals, write_log,
};
use crate::decide::{DEFAULT_EXACT_THRESHOLD_PCT, ExactPlace, Policy, exact_statistic};
use crate::git::{Worktrees, ensure_clean, rev_range};
use crate::kernel::{GuestSetup, KernelArgs, KernelMeasure, Measurement};
use crate::kernel_build::{
    Build, DefaultBuild, SHIPPED_FRAGMENT, default_jobs, missing_build_tools,
};
use crate::search::{Config, MeasureError, Report, Rev, SearchError, bisect};

/// The fork region when `--mem` is not given. Timed: large enough that a fork's page-table
/// copy dominates its fixed cost under TCG. Exact: the medians of separate boots of one kernel
/// differ by a few thousand to 15 thousand instructions per fork whatever the size (KASLR,
/// randomised slabs), which at 128 MiB of pte-order9 (6.12: 3.41 M) came to 0.45% over four
/// boots, too close to the 0.5% threshold; at 512 MiB (6.12: 13.18 M, 6.1: 17.11 M) to at most
/// 0.15% over four boots of each.
pub const DEFAULT_KERNEL_MEM: Size = Size(512 << 20);
/// Timed guests' forks per boot when `--iters` is not given. A boot's sample is its fastest
/// fork; on a shared host, phases in which every fork runs ~1.5x slower last a second or more
/// (seen here: all 20 forks of a 20-fork boot slow in 5 of 12 boots), and 100 forks of 512 MiB
/// span ~2.5 s, enough to contain a quiet phase (12 boots of 6.12 and 6.1: every sample within
/// 10% of its kernel's fastest).
pub const DEFAULT_KERNEL_ITERS: u32 = 100;
/// Exact guests' forks per boot: their median is the revision's count.
pub const DEFAULT_EXACT_ITERS: u32 = 10;

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

fn need_tool(name: &str, why: &str) -> Result<(), CliError> {
    match guest::fetch::which_in_path(name) {
        Some(_) => Ok(()),
        None => Err(usage(format!("{name} is not in PATH: {why}"))),
    }
}

/// The measurement `k` asks for ([`Measurement::choose`]: `None` until a boot tells) and the
/// exact threshold.
fn choose_measurement(
    k: &KernelArgs,
    accel: AccelChoice,
    arch: contract::Arch,
) -> Result<(Option<Measurement>, f64), CliError> {
    let measurement =
        Measurement::choose(k.clock.unwrap_or(ClockChoice::Auto), accel, arch).map_err(usage)?;
    let threshold = k.exact_threshold.unwrap_or(DEFAULT_EXACT_THRESHOLD_PCT);
    if !(threshold.is_finite() && threshold >= 0.0) {
        return Err(usage("--exact-threshold must be a non-negative percentage"));
    }
    if k.exact_threshold.is_some() && measurement == Some(Measurement::Timed) {
        return Err(usage(
            "--exact-threshold needs exact measurements (--clock icount, or auto under TCG)",
        ));
    }
    Ok((measurement, threshold))
}

/// Check how revisions will be built: a non-empty `--build-cmd`, or a Linux tree and the
/// default build's tools (named as Debian packages). Returns the `--config-fragment`, made
/// absolute.
fn check_build_inputs(
    k: &KernelArgs,
    tree: &Path,
    arch: contract::Arch,
    host: contract::Arch,
) -> Result<Option<PathBuf>, CliError> {
    let user_fragment = match &k.config_fragment {
        Some(f) => Some(
            std::fs::canonicalize(f)
                .map_err(|e| usage(format!("--config-fragment {}: {e}", f.display())))?,
        ),
        None => None,
    };
    if let Some(cmd) = &k.build_cmd {
        if cmd.trim().is_empty() {
            return Err(usage("--build-cmd is empty"));
        }
    } else {
        if !tree.join("scripts/kconfig/merge_config.sh").is_file() {
            return Err(usage(format!(
                "--kernel-tree {}: not a Linux tree (no scripts/kconfig/merge_config.sh); give --build-cmd to build it your way",
                tree.display()
            )));
        }
        let missing = missing_build_tools(arch, host, |t| guest::fetch::which_in_path(t).is_some());
        if !missing.is_empty() {
            return Err(usage(format!(
                "the default kernel build needs {} (not in PATH): apt-get install {} (or bash tools/provision-guests.sh), or give --build-cmd",
                missing.join(", "),
                missing.join(" ")
            )));
        }
    }
    Ok(user_fragment)
}

/// Run a kernel bisection (`a.kernel.kernel_tree` is set; `a` passed [`crate::cli::run`]'s
/// checks). `workspace` is this workspace's root: the guest payload is built there and the
/// worktrees live under its `target/bisect/`.
pub fn run(a: &BisectArgs, workspace: &Path) -> Result<Report, CliError> {
    let k = &a.kernel;
    let tree = k.kernel_tree.clone().expect("kernel mode");
    if !tree.is_dir() {
        return Err(usage(format!(
            "--kernel-tree {}: not a directory",
            tree.display()
        )));
    }
    let host = contract::Arch::host()
        .ok_or_else(|| usage("kernel mode needs an x86_64 or aarch64 host"))?;
    let arch = k.arch.unwrap_or(host);
    let accel = k.accel.unwrap_or(AccelChoice::Auto);
    let (chosen, exact_threshold) = choose_measurement(k, accel, arch)?;
    let layout = k.layout.unwrap_or(RealLayout::PteOrder9);
    let mem = a.mem.unwrap_or(DEFAULT_KERNEL_MEM);
    let (qemu, package) = guest::qemu::qemu_binary(arch);
    need_tool(qemu, &format!("apt-get install {package}"))?;
    let user_fragment = check_build_inputs(k, &tree, arch, host)?;
    if k.jobs == Some(0) {
        return Err(usage("--jobs must be at least 1"));
    }
    if k.boot_timeout == Some(0) {
        return Err(usage("--boot-timeout must be at least 1 second"));
    }
    ensure_clean(&tree).map_err(|e| usage(e.to_string()))?;
    let revs = rev_range(&tree, &a.good, &a.bad).map_err(|e| usage(e.to_string()))?;
    let out_dir = if a.out.is_absolute() {
        a.out.clone()
    } else {
        workspace.join(&a.out)
    };
    ensure_writable(&out_dir, "--out")?;
    let cancelled = watch_signals()?;
    eprintln!("building the guest payload (static forkbench for {arch}) ...");
    let payload = guest::payload::build_payload(workspace, arch)
        .map_err(|e| CliError::Other(format!("guest payload: {e}")))?;
    let scratch = workspace.join("target").join("bisect");
    let mut wt = Worktrees::new(&tree, &scratch.join("worktrees"))
        .map_err(|e| CliError::Other(e.to_string()))?;
    let (build, build_desc) = make_build(k, &wt, arch, host, user_fragment)?;
    let setup = GuestSetup {
        arch,
        layout,
        mem,
        iters: 0,
        accel,
        // Until a boot tells (`chosen` is None), boots are timed.
        measurement: chosen.unwrap_or(Measurement::Timed),
        payload,
        boot_timeout: k.boot_timeout.map(Duration::from_secs),
    };
    let mut meas = KernelMeasure::new(&mut wt, build, setup, cancelled.clone());
    let settled = settle(&mut meas, chosen, &revs[0]);
    let result = settled.clone().and_then(|m| {
        meas.guest.iters = iters_for(a, m);
        let cfg = search_config(a, m, exact_threshold);
        eprintln!(
            "bisecting {} revisions of {} ({} .. {}): {layout} fork of {mem} x{} per boot, {arch} guests, {}",
            revs.len(),
            tree.display(),
            short(&revs[0].hash),
            short(&revs[revs.len() - 1].hash),
            meas.guest.iters,
            match cfg.exact_threshold_pct {
                Some(t) => format!("exact (instructions, one boot per revision, threshold {t}%)"),
                None => "timed (decided over several boots per revision)".to_string(),
            }
        );
        bisect(&revs, &mut meas, &cfg)
    });
    let (steps, guest) = (std::mem::take(&mut meas.log), meas.guest.clone());
    drop(meas);
    wt.remove_all();
    let exact = settled.as_ref().ok() == Some(&Measurement::Exact);
    let what = format!("kernel-{layout}");
    let mut log = session_log(
        a,
        &tree,
        &guest,
        &settled,
        exact_threshold,
        build_desc,
        steps,
    );
    let save = |log: &mut serde_json::Value, outcome: serde_json::Value| {
        log["outcome"] = outcome;
        match write_log(&out_dir, &what, log) {
            Ok(p) => {
                println!("log: {}", p.display());
                Ok(())
            }
            Err(e) => Err(CliError::Other(format!("writing the log: {e}"))),
        }
    };
    match result {
        Ok(report) => {
            print_table(&report, &guest, exact, exact_threshold);
            let outcome = json!({ "report": report });
            save(&mut log, outcome)?;
            Ok(report)
        }
        Err(e) => {
            let interrupted = cancelled.load(Ordering::SeqCst);
            save(
                &mut log,
                json!({ "error": e.to_string(), "interrupted": interrupted }),
            )?;
            Err(match e {
                SearchError::Aborted(_) if interrupted => CliError::Interrupted,
                e @ (SearchError::NoDifference { .. }
                | SearchError::ExactNoDifference { .. }
                | SearchError::WrongDirection { .. }
                | SearchError::TooFew) => CliError::Usage(e.to_string()),
                e => CliError::Other(e.to_string()),
            })
        }
    }
}

/// The measurement of this bisection: `chosen`, or what a boot of the good endpoint `good`
/// shows ([`KernelMeasure::settle_accel`]).
fn settle(
    meas: &mut KernelMeasure<'_>,
    chosen: Option<Measurement>,
    good: &Rev,
) -> Result<Measurement, SearchError> {
    if let Some(m) = chosen {
        return Ok(m);
    }
    eprintln!("KVM may run the guests: booting the good endpoint once to see whether it does");
    meas.settle_accel(good, ENDPOINT_RETRIES)
        .map_err(|e| match e {
            MeasureError::Abort(r) => SearchError::Aborted(r),
            MeasureError::Skip(reason) | MeasureError::Crashed(reason) => SearchError::Endpoint {
                which: "good",
                rev: good.hash.clone(),
                reason,
            },
        })
}

/// Forks per boot: `--iters`, else the measurement's default.
fn iters_for(a: &BisectArgs, m: Measurement) -> u32 {
    a.iters.unwrap_or(match m {
        Measurement::Exact => DEFAULT_EXACT_ITERS,
        Measurement::Timed => DEFAULT_KERNEL_ITERS,
    })
}

/// The search's configuration for measurement `m`.
fn search_config(a: &BisectArgs, m: Measurement, exact_threshold: f64) -> Config {
    let exact = m == Measurement::Exact;
    Config {
        // Timed kernel-mode samples are guest fork times on a possibly shared host: see
        // decide::split_slow. Exact ones are decided by decide::decide_exact.
        policy: Policy {
            alpha: a.alpha,
            set_aside_slow: !exact,
        },
        endpoint_runs: a.endpoint_runs,
        min_runs: a.min_runs,
        max_runs: a.max_runs,
        exact: false,
        exact_threshold_pct: exact.then_some(exact_threshold),
        unit: m.unit(),
        endpoint_retries: ENDPOINT_RETRIES,
        higher_is_better: false,
        threshold_pct: a.threshold,
    }
}

/// How revisions are built, and that as the log says it.
fn make_build(
    k: &KernelArgs,
    wt: &Worktrees,
    arch: contract::Arch,
    host: contract::Arch,
    user_fragment: Option<PathBuf>,
) -> Result<(Build, serde_json::Value), CliError> {
    let build = match &k.build_cmd {
        Some(cmd) => Build::Command(cmd.clone()),
        None => {
            let shipped = wt.session_dir().join("forkbench.config");
            std::fs::write(&shipped, SHIPPED_FRAGMENT)
                .map_err(|e| CliError::Other(format!("writing {}: {e}", shipped.display())))?;
            let mut fragments = vec![shipped];
            fragments.extend(user_fragment.clone());
            Build::Default(DefaultBuild {
                arch,
                host,
                jobs: k.jobs.unwrap_or_else(default_jobs),
                ccache: guest::fetch::which_in_path("ccache").is_some(),
                out_dir: wt.session_dir().join("build"),
                fragments,
            })
        }
    };
    let build_desc = match &build {
        Build::Command(c) => json!({ "cmd": c }),
        Build::Default(d) => json!({
            "commands": d.commands().iter().map(|c| c.join(" ")).collect::<Vec<_>>(),
            "image": d.image(),
            "fragments": d.fragments,
        }),
    };
    Ok((build, build_desc))
}

/// The session's log, without its outcome.
fn session_log(
    a: &BisectArgs,
    tree: &Path,
    guest: &GuestSetup,
    settled: &Result<Measurement, SearchError>,
    exact_threshold: f64,
    build: serde_json::Value,
    steps: Vec<crate::kernel::StepLog>,
) -> serde_json::Value {
    let exact = settled.as_ref().ok() == Some(&Measurement::Exact);
    json!({
        "mode": "kernel",
        "kernel_tree": tree,
        "good": a.good,
        "bad": a.bad,
        "arch": guest.arch,
        "layout": guest.layout,
        "mem": guest.mem,
        "iters": guest.iters,
        "sched": "fifo",
        "accel": guest.accel.to_string(),
        "measurement": settled.as_ref().ok().map(|&m| match m {
            Measurement::Exact => "exact",
            Measurement::Timed => "timed",
        }),
        "unit": settled.as_ref().ok().map(|m| m.unit().suffix()),
        "build": build,
        "config": if exact {
            json!({ "exact_threshold_pct": exact_threshold, "threshold_pct": a.threshold,
                    "endpoint_retries": ENDPOINT_RETRIES, "statistic": "median" })
        } else {
            json!({ "alpha": a.alpha, "endpoint_runs": a.endpoint_runs, "min_runs": a.min_runs,
                    "max_runs": a.max_runs, "threshold_pct": a.threshold,
                    "endpoint_retries": ENDPOINT_RETRIES, "statistic": "fastest" })
        },
        "steps": steps,
    })
}

/// Print the table of a finished bisection: instructions (exact) or times (timed).
fn print_table(report: &Report, guest: &GuestSetup, exact: bool, exact_threshold: f64) {
    let (layout, arch) = (guest.layout, guest.arch);
    if exact {
        let what = format!(
            "{layout} fork in {arch} guests: instructions per fork (median of {} forks, one boot per revision), exact threshold {exact_threshold}%",
            guest.iters
        );
        print!("{}", render_exact(report, &what));
    } else {
        let what = format!("{layout} fork time (ns) in {arch} guests");
        print!("{}", render(report, &what));
    }
}

/// Boots of an endpoint that crashed, repeated before the bisection gives up: a kernel that
/// crashes in ~1 of 10 boots (6.12 under QEMU 7.2's TCG) then stops a bisection about once in
/// 10^4.
pub const ENDPOINT_RETRIES: usize = 3;

/// How a place between the endpoints reads in the table.
pub fn place_name(place: ExactPlace) -> &'static str {
    match place {
        ExactPlace::LikeGood => "like good",
        ExactPlace::LikeBad => "like bad",
        ExactPlace::Partial => "partial change",
        ExactPlace::BeyondGood => "beyond good",
        ExactPlace::BeyondBad => "beyond bad",
    }
}

/// The exact table: every tested revision in history order with its instructions per fork
/// (the median of its forks), its change against both endpoints, and its decision (marked
/// when the midpoint decided it); then the answer.
pub fn render_exact(r: &Report, what: &str) -> String {
    let mut rows: Vec<_> = r.tested.iter().collect();
    rows.sort_by_key(|t| t.index);
    let mut s = format!(
        "\nbisect of {what}\n\n| # | commit | subject | instr/fork | vs good | vs bad | decision |\n|--:|:--|:--|--:|--:|--:|:--|\n"
    );
    for t in rows {
        let count =
            exact_statistic(&t.samples).map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
        let (vs_good, vs_bad) = t.exact.map_or(("-".into(), "-".into()), |e| {
            (
                format!("{:+.2}%", e.vs_good_pct),
                format!("{:+.2}%", e.vs_bad_pct),
            )
        });
        let mut d = t.verdict();
        if let Some(e) = t.exact.filter(|e| e.place.by_midpoint()) {
            d.push_str(&format!(
                " ({}, {:.0}% of the way: by the midpoint)",
                place_name(e.place),
                e.position * 100.0
            ));
        }
        s.push_str(&format!(
            "| {} | {} | {} | {count} | {vs_good} | {vs_bad} | {} |\n",
            t.index,
            short(&t.rev.hash),
            t.rev.subject.replace('|', "/"),
            // Console lines in a skip's reason are joined with '|'.
            d.replace('|', "/"),
        ));
    }
    s.push_str(&render_outcome(r));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::{Decision, decide_exact};
    use crate::search::{Outcome, Rev, Tested};

    /// A revision tested with `forks` (its count is their median), decided against the
    /// endpoints' counts as the search would.
    fn tested(index: usize, forks: &[f64], note: Option<&str>) -> Tested {
        let (good, bad) = (13_170_292.0, 17_119_226.0);
        let verdict = exact_statistic(forks).map(|v| decide_exact(good, bad, v, 0.5));
        Tested {
            index,
            rev: Rev {
                hash: format!("{index}{}", "e".repeat(39)),
                subject: format!("commit {index}"),
            },
            runs: usize::from(!forks.is_empty()),
            samples: forks.to_vec(),
            set_aside: vec![],
            mean: crate::decide::mean(forks),
            ci: (f64::NAN, f64::NAN),
            decision: verdict.map_or(Decision::Unknown, |v| v.0),
            evidence: None,
            exact: verdict.map(|v| v.1),
            note: note.map(String::from),
        }
    }

    #[test]
    fn the_exact_table_shows_counts_against_both_endpoints_and_marks_the_midpoint() {
        let revs: Vec<Rev> = (0..6)
            .map(|i| Rev {
                hash: format!("{i}{}", "e".repeat(39)),
                subject: format!("commit {i}"),
            })
            .collect();
        let report = Report {
            revs,
            tested: vec![
                tested(0, &[13_170_100.0, 13_170_292.0, 13_170_500.0], None),
                tested(5, &[17_119_226.0], None),
                tested(
                    2,
                    &[],
                    Some("boot or measurement failed: the guest kernel crashed: Oops | RIP"),
                ),
                tested(3, &[15_900_000.0], None),
                tested(1, &[13_171_000.0], None),
                tested(4, &[17_105_352.0], None),
            ],
            outcome: Outcome::Found { index: 3 },
        };
        insta::assert_snapshot!(render_exact(&report, "pte-order9 fork"));
    }
}
