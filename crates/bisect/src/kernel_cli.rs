//! `cargo xtask bisect --kernel-tree DIR`: checks every input before the first build (exit 2
//! with one line), builds the guest payload, runs the search with a
//! [`crate::kernel::KernelMeasure`], prints the table and `first bad commit: <sha> <subject>`,
//! and writes the log (every build and boot with its time and samples, every verdict) under
//! `--out` — also when the search stops early, so that no measurement is lost.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use contract::{RealLayout, Size};
use guest::qemu::AccelChoice;
use serde_json::json;

use crate::cli::{BisectArgs, CliError, ensure_writable, render, short, watch_signals, write_log};
use crate::decide::Policy;
use crate::git::{Worktrees, ensure_clean, rev_range};
use crate::kernel::{
    Build, DefaultBuild, GuestSetup, KernelMeasure, SHIPPED_FRAGMENT, default_jobs,
};
use crate::search::{Config, Report, SearchError, bisect};

/// Guest memory for the fork region when `--mem` is not given: large enough that a fork's
/// page-table copy dominates its fixed cost under TCG.
pub const DEFAULT_KERNEL_MEM: Size = Size(512 << 20);
/// Forks per boot when `--iters` is not given. A boot's sample is its fastest fork; on a
/// shared host, phases in which every fork runs ~1.5x slower last a second or more (seen here:
/// all 20 forks of a 20-fork boot slow in 5 of 12 boots), and 100 forks of 512 MiB span ~2.5 s,
/// enough to contain a quiet phase (12 boots of 6.12 and 6.1: every sample within 10% of its
/// kernel's fastest).
pub const DEFAULT_KERNEL_ITERS: u32 = 100;

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(msg.into())
}

fn need_tool(name: &str, why: &str) -> Result<(), CliError> {
    match guest::fetch::which_in_path(name) {
        Some(_) => Ok(()),
        None => Err(usage(format!("{name} is not in PATH: {why}"))),
    }
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
    let iters = a.iters.unwrap_or(DEFAULT_KERNEL_ITERS);
    let layout = k.layout.unwrap_or(RealLayout::PteOrder9);
    let mem = a.mem.unwrap_or(DEFAULT_KERNEL_MEM);
    let (qemu, package) = guest::qemu::qemu_binary(arch);
    need_tool(qemu, &format!("apt-get install {package}"))?;
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
        need_tool("make", "apt-get install make")?;
        if arch != host && arch == contract::Arch::Arm64 {
            need_tool(
                "aarch64-linux-gnu-gcc",
                "apt-get install gcc-aarch64-linux-gnu",
            )?;
        }
        if arch != host && arch == contract::Arch::X86_64 {
            need_tool(
                "x86_64-linux-gnu-gcc",
                "apt-get install gcc-x86-64-linux-gnu",
            )?;
        }
    }
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
    let setup = GuestSetup {
        arch,
        layout,
        mem,
        iters,
        accel: k.accel.unwrap_or(AccelChoice::Auto),
        payload,
        boot_timeout: k.boot_timeout.map(Duration::from_secs),
    };
    let cfg = Config {
        // Kernel-mode samples are guest fork times on a possibly shared host: see
        // decide::split_slow.
        policy: Policy {
            alpha: a.alpha,
            set_aside_slow: true,
        },
        endpoint_runs: a.endpoint_runs,
        min_runs: a.min_runs,
        max_runs: a.max_runs,
        exact: false,
        higher_is_better: false,
        threshold_pct: a.threshold,
    };
    eprintln!(
        "bisecting {} revisions of {} ({} .. {}): {layout} fork of {mem} x{} per boot, {arch} guests",
        revs.len(),
        tree.display(),
        short(&revs[0].hash),
        short(&revs[revs.len() - 1].hash),
        iters
    );
    let mut meas = KernelMeasure::new(&mut wt, build, setup.clone(), cancelled.clone());
    let result = bisect(&revs, &mut meas, &cfg);
    let steps = std::mem::take(&mut meas.log);
    drop(meas);
    wt.remove_all();
    let what = format!("kernel-{layout}");
    let mut log = json!({
        "mode": "kernel",
        "kernel_tree": tree,
        "good": a.good,
        "bad": a.bad,
        "arch": arch,
        "layout": layout,
        "mem": mem,
        "iters": iters,
        "accel": setup.accel.to_string(),
        "build": build_desc,
        "config": {
            "alpha": a.alpha, "endpoint_runs": a.endpoint_runs, "min_runs": a.min_runs,
            "max_runs": a.max_runs, "threshold_pct": a.threshold,
        },
        "steps": steps,
    });
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
            print!(
                "{}",
                render(
                    &report,
                    &format!("{layout} fork time (ns) in {arch} guests")
                )
            );
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
                | SearchError::WrongDirection { .. }
                | SearchError::TooFew) => CliError::Usage(e.to_string()),
                e => CliError::Other(e.to_string()),
            })
        }
    }
}
