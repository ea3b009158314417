//! `cargo xtask bench`: the walking skeleton of the suite. Runs the x86_64 model for all five
//! strategies at order 0 and order 9 (1 GiB, 100 iterations x 8 runs, `fresh`), strategies
//! interleaved run by run in a seeded random order, writes the raw samples to
//! `results/<machine>/<UTC timestamp>-<label>.json` and prints the thread's table per order.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use results::{ResultFile, RunRecord, SCHEMA_VERSION};

use crate::util;

/// Strategies in the thread's row order; the first is the baseline.
const KERNELS: [&str; 5] = [
    "mm-unstable",
    "hugetlb-rmap-cleanups",
    "ryan-v4",
    "fork-batching",
    "upstream",
];

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A small, fast run (64 MiB, 20 iterations x 3 runs) for smoke tests
    #[arg(long)]
    pub quick: bool,
    /// Label of this run (goes into the result file name)
    #[arg(long, default_value = "model")]
    pub label: String,
    /// Seed of the randomised run order (default: from the clock; recorded in the result)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for result files
    #[arg(long, default_value = "results")]
    pub out: String,
}

/// The plan of one bench invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub mem: &'static str,
    pub iters: u32,
    pub runs: u32,
    pub orders: [u32; 2],
}

impl Plan {
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                mem: "64M",
                iters: 20,
                runs: 3,
                orders: [0, 9],
            }
        } else {
            Plan {
                mem: "1G",
                iters: 100,
                runs: 8,
                orders: [0, 9],
            }
        }
    }
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 64
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

pub fn run(a: &BenchArgs) -> anyhow::Result<()> {
    if !valid_label(&a.label) {
        bail!(
            "label '{}' must be 1-64 characters of [A-Za-z0-9._-]",
            a.label
        );
    }
    let plan = Plan::new(a.quick);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?;
    let seed = a
        .seed
        .unwrap_or(now.as_secs() ^ u64::from(now.subsec_nanos()));
    let machine = util::hostname();
    let (stamp, rfc3339) = util::utc_stamps(now.as_secs());
    let out_path = util::project_root()
        .join(&a.out)
        .join(&machine)
        .join(format!("{stamp}-{}.json", a.label));
    if out_path.exists() {
        bail!("{} already exists; not overwriting", out_path.display());
    }

    eprintln!("building the release runner ...");
    let runner = util::build_runner()?;
    // Pin to the last CPU this process may use: CPU 0 takes most interrupts.
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let cpu = cpus - 1;

    let mut runs: Vec<RunRecord> = Vec::new();
    for (i, order) in plan.orders.iter().enumerate() {
        eprintln!(
            "[{}/{}] x86_64 model, order {order}, {} x {} forks of {} per strategy, seed {seed} ...",
            i + 1,
            plan.orders.len(),
            plan.runs,
            plan.iters,
            plan.mem
        );
        let mut child = Command::new(&runner)
            .args([
                "sim",
                "--arch",
                "x86_64",
                "--strategy",
                "all",
                "--mode",
                "fresh",
                "--json",
            ])
            .args(["--order", &order.to_string(), "--mem", plan.mem])
            .args([
                "--iters",
                &plan.iters.to_string(),
                "--runs",
                &plan.runs.to_string(),
            ])
            .args(["--seed", &seed.wrapping_add(*order as u64).to_string()])
            .args(["--cpu", &cpu.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", runner.display()))?;
        let stdout = child.stdout.take().context("runner stdout")?;
        let total = plan.runs as usize * KERNELS.len();
        let mut got = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading runner output")?;
            let rec: RunRecord = serde_json::from_str(&line).with_context(|| {
                format!("runner printed a line that is not a run record: {line}")
            })?;
            got += 1;
            eprintln!(
                "  {got:>2}/{total} {:<22} run {} mean {:>10.3} ms",
                rec.variant.strategy,
                rec.run_index,
                rec.mean_ns() / 1e6
            );
            runs.push(rec);
        }
        let status = child.wait().context("waiting for the runner")?;
        if !status.success() {
            bail!("the runner failed ({status}); no result file written");
        }
    }

    let file = ResultFile {
        schema: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        machine,
        label: a.label.clone(),
        created_utc: rfc3339,
        git_rev: util::git_rev(),
        seed,
        config: serde_json::json!({
            "instrument": "sim",
            "arch": "x86_64",
            "strategies": KERNELS,
            "baseline": KERNELS[0],
            "mem": plan.mem,
            "iters": plan.iters,
            "runs": plan.runs,
            "orders": plan.orders,
            "mode": "fresh",
            "cpu": cpu,
            "quick": a.quick,
        }),
        env: util::capture_env(),
        runs,
    };
    file.save_new(&out_path)
        .with_context(|| format!("saving {}", out_path.display()))?;
    println!("{}", render_tables(&file));
    println!("raw samples: {}", out_path.display());
    Ok(())
}

/// The thread's table for each order in the file, baseline `mm-unstable`.
pub fn render_tables(file: &ResultFile) -> String {
    let mut out = String::new();
    let mut layouts: Vec<&str> = Vec::new();
    for r in &file.runs {
        if !layouts.contains(&r.variant.layout.as_str()) {
            layouts.push(&r.variant.layout);
        }
    }
    for layout in layouts {
        let runs: Vec<&RunRecord> = file
            .runs
            .iter()
            .filter(|r| r.variant.layout == layout)
            .collect();
        let sums = report::summarise_by_strategy(&runs);
        let mem = runs.first().map(|r| r.variant.mem_bytes).unwrap_or(0);
        out.push_str(&format!(
            "\nfork, x86_64 model, {layout} ({} MiB, {} runs per kernel), baseline {}:\n\n",
            mem >> 20,
            sums.first().map(|s| s.1.n).unwrap_or(0),
            KERNELS[0]
        ));
        match report::relative_rows(&sums, KERNELS[0], &KERNELS) {
            Some(rows) => out.push_str(&report::thread_table(&rows)),
            None => out.push_str("(no baseline runs)\n"),
        }
        out.push_str("\nmean ns per PTE (median of run means):");
        for k in KERNELS {
            let per_pte: Vec<f64> = runs
                .iter()
                .filter(|r| r.variant.strategy == k)
                .filter_map(|r| r.extra["ns_per_pte"].as_f64())
                .collect();
            if let Some(m) = stats::median(&per_pte) {
                out.push_str(&format!(" {k} {m:.2};"));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use results::{Instrument, Variant};

    fn rec(strategy: &str, layout: &str, run: u32, mean: u64) -> RunRecord {
        RunRecord {
            schema: SCHEMA_VERSION,
            tool_version: "t".into(),
            variant: Variant {
                instrument: Instrument::Sim,
                arch: "x86_64".into(),
                strategy: strategy.into(),
                layout: layout.into(),
                mem_bytes: 1 << 30,
                mode: "fresh".into(),
                options: String::new(),
            },
            run_index: run,
            warmup: 0,
            samples_ns: vec![mean - 1, mean + 1],
            ops: Default::default(),
            cpu: None,
            extra: serde_json::json!({"ns_per_pte": mean as f64 / 262144.0}),
        }
    }

    #[test]
    fn tables_are_relative_to_mm_unstable() {
        let mut runs = Vec::new();
        for (run, (b, u)) in [(1000, 640), (1010, 650), (990, 630)]
            .into_iter()
            .enumerate()
        {
            runs.push(rec("mm-unstable", "order9", run as u32, b));
            runs.push(rec("upstream", "order9", run as u32, u));
        }
        let file = ResultFile {
            schema: SCHEMA_VERSION,
            tool_version: "t".into(),
            machine: "m".into(),
            label: "l".into(),
            created_utc: "x".into(),
            git_rev: "r".into(),
            seed: 1,
            config: serde_json::Value::Null,
            env: serde_json::Value::Null,
            runs,
        };
        let t = render_tables(&file);
        assert!(
            t.contains("| mm-unstable |       0.0% |      1.0% |"),
            "{t}"
        );
        assert!(
            t.contains("| upstream    |     -36.0% |      1.0% |"),
            "{t}"
        );
    }

    #[test]
    fn labels_are_checked_and_plans_sized() {
        assert!(valid_label("v6.9-rc1"));
        assert!(!valid_label("a/b"));
        assert!(!valid_label(""));
        assert_eq!(Plan::new(false).runs, 8);
        assert_eq!(Plan::new(false).iters, 100);
        assert_eq!(Plan::new(true).mem, "64M");
    }
}
