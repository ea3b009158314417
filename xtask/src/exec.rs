//! Executors: how one planned call becomes run records. [`Runner`] spawns the release
//! `forkbench` binary (one process per call, JSON lines on stdout); tests use a mock. An engine
//! or instrument that is not built yet (the runner exits 2 for an arm64 or real-fork call) is
//! a *skip with a note*, not a failure.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use results::{RunRecord, SCHEMA_VERSION};

use crate::plan::Call;

/// What the runner binary supports, probed from its `--help` texts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Caps {
    /// `forkbench real` exists.
    pub real: bool,
    /// `forkbench sim --contpte` exists.
    pub contpte_flag: bool,
    /// `forkbench sim --cost-model` exists.
    pub cost_model_flag: bool,
    /// `forkbench real --sched` exists.
    pub sched_flag: bool,
    /// `forkbench real --mode` exists.
    pub real_mode_flag: bool,
    /// `forkbench real --label` exists.
    pub real_label_flag: bool,
}

/// Result of one call.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Done,
    /// The runner cannot do this yet (or not on this host); the note says why.
    Skipped(String),
}

/// Common per-call parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallCtx {
    pub cpu: usize,
    pub seed: u64,
}

pub trait Executor {
    fn caps(&mut self) -> anyhow::Result<Caps>;
    /// Run one call (one run of every variant in it), handing over records as they arrive.
    fn run(
        &mut self,
        call: &Call,
        ctx: CallCtx,
        emit: &mut dyn FnMut(RunRecord),
    ) -> anyhow::Result<Outcome>;
}

/// Spawns the release runner.
pub struct Runner {
    pub bin: PathBuf,
    /// The bench label, passed to real-fork calls as the kernel label (their rows' name).
    pub label: Option<String>,
    /// Passed as `--cost-model <file>` to arm64 model calls when the runner has the flag.
    pub cost_model_file: Option<PathBuf>,
    /// Run the runner under `nice -n <nice>` when not 0.
    pub nice: i32,
    /// Before each call, wait up to this long for other `forkbench` processes to end.
    pub wait_quiet: std::time::Duration,
    /// Total time spent waiting so far.
    pub waited: std::time::Duration,
    caps: Option<Caps>,
}

impl Runner {
    pub fn new(bin: PathBuf, cost_model_file: Option<PathBuf>) -> Self {
        Runner {
            bin,
            label: None,
            nice: 0,
            wait_quiet: std::time::Duration::ZERO,
            waited: std::time::Duration::ZERO,
            cost_model_file,
            caps: None,
        }
    }

    fn help(&self, args: &[&str]) -> String {
        Command::new(&self.bin)
            .args(args)
            .output()
            .map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s
            })
            .unwrap_or_default()
    }

    /// The argument list of one call.
    pub fn args(
        call: &Call,
        ctx: CallCtx,
        caps: &Caps,
        cost_model: Option<&PathBuf>,
        label: Option<&str>,
    ) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |k: &str, v: String| {
            a.push(k.to_string());
            a.push(v);
        };
        match call {
            Call::Sim {
                arch,
                order,
                strategies,
                contpte,
                mem,
                iters,
                warmup,
                mode,
            } => {
                push("--arch", arch.clone());
                push("--strategy", strategies.join(","));
                push("--order", order.to_string());
                push("--mem", mem.clone());
                push("--iters", iters.to_string());
                push("--runs", "1".into());
                push("--warmup", warmup.to_string());
                push("--mode", mode.clone());
                push("--seed", ctx.seed.to_string());
                push("--cpu", ctx.cpu.to_string());
                if let Some(c) = contpte
                    && caps.contpte_flag
                {
                    push("--contpte", c.clone());
                }
                if arch == "arm64"
                    && caps.cost_model_flag
                    && let Some(f) = cost_model
                {
                    push("--cost-model", f.display().to_string());
                }
                a.insert(0, "sim".into());
            }
            Call::Real {
                layout,
                mem,
                iters,
                warmup,
                sched,
                mode,
            } => {
                push("--layout", layout.clone());
                push("--mem", mem.clone());
                push("--iters", iters.to_string());
                push("--runs", "1".into());
                push("--warmup", warmup.to_string());
                push("--cpu", ctx.cpu.to_string());
                if caps.sched_flag {
                    push("--sched", sched.clone());
                }
                if caps.real_mode_flag {
                    push("--mode", mode.clone());
                }
                if caps.real_label_flag
                    && let Some(l) = label
                {
                    push("--label", l.to_string());
                }
                a.insert(0, "real".into());
            }
        }
        a.push("--json".into());
        a
    }
}

/// Does this failed call mean "not available yet / here" rather than a broken run?
/// Exit 2 (a usage error: unknown arch, subcommand, layout or flag) for arm64 model calls and
/// for real-fork calls; everything else is a failure.
pub fn is_skip(call: &Call, code: Option<i32>) -> bool {
    code == Some(2)
        && match call {
            Call::Sim { arch, .. } => arch != "x86_64",
            Call::Real { .. } => true,
        }
}

impl Executor for Runner {
    fn caps(&mut self) -> anyhow::Result<Caps> {
        if let Some(c) = &self.caps {
            return Ok(c.clone());
        }
        let top = self.help(&["--help"]);
        if top.is_empty() {
            bail!("cannot run {}", self.bin.display());
        }
        let sim = self.help(&["sim", "--help"]);
        let real = top
            .lines()
            .any(|l| l.trim_start().starts_with("real ") || l.trim() == "real");
        let real_help = if real {
            self.help(&["real", "--help"])
        } else {
            String::new()
        };
        let c = Caps {
            real,
            contpte_flag: sim.contains("--contpte"),
            cost_model_flag: sim.contains("--cost-model"),
            sched_flag: real_help.contains("--sched"),
            real_mode_flag: real_help.contains("--mode"),
            real_label_flag: real_help.contains("--label"),
        };
        self.caps = Some(c.clone());
        Ok(c)
    }

    fn run(
        &mut self,
        call: &Call,
        ctx: CallCtx,
        emit: &mut dyn FnMut(RunRecord),
    ) -> anyhow::Result<Outcome> {
        let caps = self.caps()?;
        if matches!(call, Call::Real { .. }) && !caps.real {
            return Ok(Outcome::Skipped("`forkbench real` is not built yet".into()));
        }
        let args = Self::args(
            call,
            ctx,
            &caps,
            self.cost_model_file.as_ref(),
            self.label.as_deref(),
        );
        let t0 = std::time::Instant::now();
        while !crate::util::pids_named("forkbench", &[]).is_empty()
            && t0.elapsed() < self.wait_quiet
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        self.waited += t0.elapsed();
        let ticks0 = crate::util::cpu_ticks();
        // Another forkbench (someone else's benchmark) competing for the CPUs.
        let others0 = crate::util::pids_named("forkbench", &[]);
        let mut cmd = if self.nice != 0 {
            let mut c = Command::new("nice");
            c.arg("-n").arg(self.nice.to_string()).arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        let mut child = cmd
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        let mut stderr = child.stderr.take().context("runner stderr")?;
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().context("runner stdout")?;
        let mut bad_line = None;
        // Records are held until the call ends so that each can carry the load of the other
        // CPUs during its call (a busy machine makes noisy numbers).
        let mut recs: Vec<RunRecord> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading runner output")?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RunRecord>(&line) {
                Ok(r) if r.schema == SCHEMA_VERSION => recs.push(r),
                Ok(r) => {
                    bad_line.get_or_insert(format!(
                        "runner printed schema {} (this xtask reads {SCHEMA_VERSION})",
                        r.schema
                    ));
                }
                Err(e) => {
                    bad_line.get_or_insert(format!(
                        "runner printed a line that is not a run record ({e}): {}",
                        line.chars().take(120).collect::<String>()
                    ));
                }
            }
        }
        let others1 = crate::util::pids_named("forkbench", &[child.id()]);
        let status = child.wait().context("waiting for the runner")?;
        let mut others = others0;
        others.extend(others1);
        others.sort_unstable();
        others.dedup();
        let stderr = err_thread.join().unwrap_or_default();
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string();
        if !status.success() {
            if is_skip(call, status.code()) {
                return Ok(Outcome::Skipped(last));
            }
            bail!(
                "{} failed ({status}): {last}\n  command: {} {}",
                call.name(),
                self.bin.display(),
                args.join(" ")
            );
        }
        if let Some(b) = bad_line {
            bail!("{}: {b}", call.name());
        }
        let busy = crate::util::other_cpus_busy_pct(&ticks0, &crate::util::cpu_ticks(), ctx.cpu);
        for mut r in recs {
            if r.extra.is_null() {
                r.extra = serde_json::json!({});
            }
            if let Some(o) = r.extra.as_object_mut() {
                if let Some(b) = busy {
                    o.insert(
                        "xtask_other_cpus_busy_pct".into(),
                        serde_json::json!((b * 10.0).round() / 10.0),
                    );
                }
                o.insert(
                    "xtask_concurrent_forkbench".into(),
                    serde_json::json!(others.len()),
                );
            }
            emit(r);
        }
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
pub mod mock {
    //! A deterministic executor: records with synthetic samples, no processes, no clocks.

    use super::*;
    use results::{Instrument, Variant};

    /// Fakes the runner. `missing_arches` / `real` control what is "not built yet".
    pub struct Mock {
        pub caps: Caps,
        pub missing_arches: Vec<String>,
        /// Calls in the order they were made.
        pub calls: Vec<(String, CallCtx)>,
        /// Multiply every sample by this (a synthetic regression).
        pub factor: f64,
        /// Fail (hard) on the call with this name.
        pub fail_on: Option<String>,
    }

    impl Default for Mock {
        fn default() -> Self {
            Mock {
                caps: Caps {
                    real: true,
                    ..Caps::default()
                },
                missing_arches: vec![],
                calls: vec![],
                factor: 1.0,
                fail_on: None,
            }
        }
    }

    fn base_ns(strategy: &str, layout: &str) -> f64 {
        let s = match strategy {
            "mm-unstable" => 1.00,
            "hugetlb-rmap-cleanups" => 0.99,
            "ryan-v4" => 0.98,
            "fork-batching" => 0.70,
            "upstream" => 0.65,
            _ => 1.0,
        };
        let l = if layout.contains('9') { 0.9 } else { 1.0 };
        10_000_000.0 * s * l
    }

    impl Executor for Mock {
        fn caps(&mut self) -> anyhow::Result<Caps> {
            Ok(self.caps.clone())
        }

        fn run(
            &mut self,
            call: &Call,
            ctx: CallCtx,
            emit: &mut dyn FnMut(RunRecord),
        ) -> anyhow::Result<Outcome> {
            self.calls.push((call.name(), ctx));
            if self.fail_on.as_deref() == Some(call.name().as_str()) {
                bail!("{} failed (exit status: 1): boom", call.name());
            }
            // Deterministic per-call jitter from the seed (±0.5 %).
            let jitter = |k: u64| {
                1.0 + ((ctx.seed.wrapping_mul(6364136223846793005).wrapping_add(k) >> 33) % 1000)
                    as f64
                    / 100_000.0
                    - 0.005
            };
            let (inst, arch, strategies, layout, mem, iters, options) = match call {
                Call::Sim {
                    arch,
                    order,
                    strategies,
                    contpte,
                    mem,
                    iters,
                    ..
                } => {
                    if self.missing_arches.contains(arch) {
                        return Ok(Outcome::Skipped(format!(
                            "forkbench: error: arch '{arch}' is not built yet"
                        )));
                    }
                    (
                        Instrument::Sim,
                        arch.clone(),
                        strategies.clone(),
                        format!("order{order}"),
                        mem.clone(),
                        *iters,
                        contpte.as_ref().map(|c| format!("contpte-{c}")),
                    )
                }
                Call::Real {
                    layout, mem, iters, ..
                } => {
                    if !self.caps.real {
                        return Ok(Outcome::Skipped("`forkbench real` is not built yet".into()));
                    }
                    (
                        Instrument::Real,
                        "x86_64".to_string(),
                        vec!["host".to_string()],
                        layout.clone(),
                        mem.clone(),
                        *iters,
                        None,
                    )
                }
            };
            for (k, s) in strategies.iter().enumerate() {
                let m = base_ns(s, &layout) * jitter(k as u64) * self.factor;
                emit(RunRecord {
                    schema: SCHEMA_VERSION,
                    tool_version: "mock".into(),
                    variant: Variant {
                        instrument: inst,
                        arch: arch.clone(),
                        strategy: s.clone(),
                        layout: layout.clone(),
                        mem_bytes: crate::profile::parse_size(&mem).unwrap_or(0),
                        mode: "fresh".into(),
                        options: options.clone().unwrap_or_default(),
                    },
                    run_index: 0,
                    warmup: 0,
                    samples_ns: vec![m as u64; iters as usize],
                    ops: [("pte_reads".to_string(), 1000u64)].into_iter().collect(),
                    cpu: Some(ctx.cpu),
                    extra: serde_json::Value::Null,
                });
            }
            Ok(Outcome::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_arguments() {
        let call = Call::Sim {
            arch: "arm64".into(),
            order: 9,
            strategies: vec!["mm-unstable".into(), "upstream".into()],
            contpte: Some("ena".into()),
            mem: "1G".into(),
            iters: 100,
            warmup: 2,
            mode: "fresh".into(),
        };
        let ctx = CallCtx { cpu: 1, seed: 7 };
        let a = Runner::args(&call, ctx, &Caps::default(), None, None).join(" ");
        assert_eq!(
            a,
            "sim --arch arm64 --strategy mm-unstable,upstream --order 9 --mem 1G --iters 100 \
             --runs 1 --warmup 2 --mode fresh --seed 7 --cpu 1 --json"
        );
        let caps = Caps {
            real: true,
            contpte_flag: true,
            cost_model_flag: true,
            sched_flag: true,
            real_mode_flag: true,
            real_label_flag: true,
        };
        let f = PathBuf::from("/t/cm.toml");
        let a = Runner::args(&call, ctx, &caps, Some(&f), None).join(" ");
        assert!(
            a.ends_with("--contpte ena --cost-model /t/cm.toml --json"),
            "{a}"
        );
        let real = Call::Real {
            layout: "pte-order9".into(),
            mem: "1G".into(),
            iters: 100,
            warmup: 2,
            sched: "fifo".into(),
            mode: "steady".into(),
        };
        let a = Runner::args(&real, ctx, &caps, None, Some("v6.9")).join(" ");
        assert_eq!(
            a,
            "real --layout pte-order9 --mem 1G --iters 100 --runs 1 --warmup 2 --cpu 1 \
             --sched fifo --mode steady --label v6.9 --json"
        );
        assert!(is_skip(&call, Some(2)));
        assert!(is_skip(&real, Some(2)));
        assert!(!is_skip(&real, Some(1)));
        let mut x86 = call.clone();
        if let Call::Sim { arch, .. } = &mut x86 {
            *arch = "x86_64".into();
        }
        assert!(!is_skip(&x86, Some(2)));
    }
}
