//! Executors: how one planned call becomes runner lines (contexts and run records).
//! [`Release`] runs the release `forkbench` binary through the contract's typed
//! [`contract::Invocation`] and [`contract::Runner`]; tests use a mock. A real-fork call the
//! host cannot do (the runner exits 3, [`contract::EXIT_UNSUPPORTED`]: no THP, no such mTHP
//! size, no privilege) is a *skip with a note*; any other failure, exit 2 for bad input
//! included, stops the bench.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use contract::{HostLoad, Invocation, ModelOpts, RealOpts, RunnerLine, SimOpts, Strategies};

use crate::plan::Call;

/// Result of one call.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Done,
    /// The runner cannot do this (on this host); the note says why.
    Skipped(String),
}

/// Common per-call parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallCtx {
    pub cpu: usize,
    pub seed: u64,
}

pub trait Executor {
    /// Run one call (one run of every variant in it), handing over its contexts and run
    /// records (never the header) in the order the runner printed them; a run's
    /// `real.context` counts from 0 within the call.
    fn run(
        &mut self,
        call: &Call,
        ctx: CallCtx,
        emit: &mut dyn FnMut(RunnerLine),
    ) -> anyhow::Result<Outcome>;

    /// Time spent waiting for a quiet machine so far.
    fn waited(&self) -> Duration {
        Duration::ZERO
    }

    /// After the last call: release what the executor holds (guests power off).
    fn finish(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The runner invocation of one call: one run (`--runs 1`) of every variant in it.
pub fn invocation(call: &Call, ctx: CallCtx, cost_model: Option<&PathBuf>) -> Invocation {
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
        } => Invocation::Sim(SimOpts {
            model: ModelOpts {
                arch: *arch,
                contpte: *contpte,
                strategies: Strategies(strategies.clone()),
                order: *order,
                mem: *mem,
                mode: *mode,
                ..ModelOpts::default()
            },
            iters: *iters,
            runs: 1,
            warmup: *warmup,
            cpu: Some(ctx.cpu),
            seed: ctx.seed,
            count: false,
            cost_model: (*arch == contract::Arch::Arm64)
                .then(|| cost_model.map(|p| p.display().to_string()))
                .flatten(),
        }),
        Call::Real {
            layout,
            mem,
            iters,
            warmup,
            sched,
            mode,
            ..
        } => Invocation::Real(RealOpts {
            mem: *mem,
            iters: *iters,
            runs: 1,
            warmup: *warmup,
            mode: *mode,
            cpu: Some(ctx.cpu),
            sched: *sched,
            ..RealOpts::new(*layout)
        }),
    }
}

/// Does this failed call mean "not supported here" (a skip, recorded) rather than a broken
/// run or bad input? Only a real-fork call the runner refused with
/// [`contract::EXIT_UNSUPPORTED`] (no THP, an mTHP size not offered, needs root, the layout did
/// not verify); anything else, exit 2 for bad input included, stops the bench.
pub fn is_skip(call: &Call, code: Option<i32>) -> bool {
    code == Some(i32::from(contract::EXIT_UNSUPPORTED)) && matches!(call, Call::Real { .. })
}

/// Runs calls with the release runner.
pub struct Release {
    pub runner: contract::Runner,
    /// Handed to arm64 model calls as `--cost-model <file>`.
    pub cost_model_file: Option<PathBuf>,
    /// Before each call, wait up to this long for other `forkbench` processes to end.
    pub wait_quiet: Duration,
    /// Total time spent waiting so far.
    pub waited: Duration,
}

impl Release {
    pub fn new(bin: PathBuf, nice: i32, cost_model_file: Option<PathBuf>) -> Self {
        Release {
            runner: contract::Runner { bin, nice },
            cost_model_file,
            wait_quiet: Duration::ZERO,
            waited: Duration::ZERO,
        }
    }
}

impl Executor for Release {
    fn run(
        &mut self,
        call: &Call,
        ctx: CallCtx,
        emit: &mut dyn FnMut(RunnerLine),
    ) -> anyhow::Result<Outcome> {
        use hostenv::host;
        let inv = invocation(call, ctx, self.cost_model_file.as_ref());
        let t0 = std::time::Instant::now();
        while !host::pids_named("forkbench", &[]).is_empty() && t0.elapsed() < self.wait_quiet {
            std::thread::sleep(Duration::from_millis(200));
        }
        self.waited += t0.elapsed();
        let ticks0 = host::cpu_ticks();
        let own0 = hostenv::children_cpu_ns();
        // Another forkbench (someone else's benchmark) competing for the CPUs: those running
        // before the call, and those running when its first line arrives (the runner itself
        // among them, so one fewer).
        let before = host::pids_named("forkbench", &[]);
        let mut during: Option<Vec<u32>> = None;
        // Lines are held until the call ends so that each run can carry the load of the other
        // CPUs during its call (a busy machine makes noisy numbers).
        let mut lines: Vec<RunnerLine> = Vec::new();
        let result = self.runner.run_each(&inv, &mut |l| {
            if during.is_none() {
                during = Some(host::pids_named("forkbench", &[]));
            }
            if !matches!(l, RunnerLine::Header(_)) {
                lines.push(l);
            }
        });
        if let Err(e) = result {
            let why = match &e {
                contract::RunError::Failed { stderr_tail, .. } => stderr_tail.clone(),
                e => e.to_string(),
            };
            if is_skip(call, e.exit_code()) {
                return Ok(Outcome::Skipped(why));
            }
            bail!("{}: {e}", call.name());
        }
        let concurrent = match during {
            Some(mut d) => {
                d.extend(&before);
                d.sort_unstable();
                d.dedup();
                d.len().saturating_sub(1)
            }
            None => before.len(),
        };
        let ticks1 = host::cpu_ticks();
        let own = hostenv::children_cpu_ns().saturating_sub(own0);
        let busy = host::other_cpus_busy_pct(&ticks0, &ticks1, Some(ctx.cpu));
        let foreign = host::pinned_cpu_foreign_pct(
            &ticks0,
            &ticks1,
            ctx.cpu,
            own,
            hostenv::clock_ticks_per_sec(),
        );
        let round = |b: f64| (b * 10.0).round() / 10.0;
        let load = HostLoad {
            other_cpus_busy_pct: busy.map(round),
            pinned_cpu_foreign_pct: foreign.map(round),
            concurrent_forkbench: concurrent as u32,
        };
        for mut l in lines {
            if let RunnerLine::Run(r) = &mut l {
                r.host_load = Some(load);
            }
            emit(l);
        }
        Ok(Outcome::Done)
    }

    fn waited(&self) -> Duration {
        self.waited
    }
}

#[cfg(test)]
pub mod mock {
    //! A deterministic executor: records with synthetic samples, no processes, no clocks.

    use std::collections::BTreeMap;

    use super::*;
    use contract::{
        Arch, CheckSummary, HostEnv, OpCounter, RealContext, RealExtra, RealVariant, RunRecord,
        Sched, SimVariant, Strategy, Variant,
    };

    /// Fakes the runner. `missing_arches` / `real` control what the "host" cannot do.
    pub struct Mock {
        pub real: bool,
        pub missing_arches: Vec<Arch>,
        /// Calls in the order they were made.
        pub calls: Vec<(String, CallCtx)>,
        /// Multiply every sample by this (a synthetic regression).
        pub factor: f64,
        /// Fail (hard) on the call with this name.
        pub fail_on: Option<String>,
        /// Fail (hard) on the call with this 1-based number.
        pub fail_on_call: Option<usize>,
    }

    impl Default for Mock {
        fn default() -> Self {
            Mock {
                real: true,
                missing_arches: vec![],
                calls: vec![],
                factor: 1.0,
                fail_on: None,
                fail_on_call: None,
            }
        }
    }

    fn base_ns(strategy: Option<Strategy>, layout_has_9: bool) -> f64 {
        let s = match strategy {
            Some(Strategy::MmUnstable) => 1.00,
            Some(Strategy::HugetlbRmapCleanups) => 0.99,
            Some(Strategy::RyanV4) => 0.98,
            Some(Strategy::ForkBatching) => 0.70,
            Some(Strategy::Upstream) => 0.65,
            _ => 1.0,
        };
        let l = if layout_has_9 { 0.9 } else { 1.0 };
        10_000_000.0 * s * l
    }

    /// A real-fork context as the runner prints it.
    pub fn context(call: &Call) -> RealContext {
        let Call::Real {
            layout, mem, iters, ..
        } = call
        else {
            panic!("not a real call")
        };
        RealContext {
            env: HostEnv {
                kernel_release: "6.18.0-mock".into(),
                ..HostEnv::default()
            },
            layout: *layout,
            mem_bytes: mem.0,
            iters: *iters,
            runs: 1,
            pinning: Default::default(),
            timer: Default::default(),
            populate: Default::default(),
            pre: CheckSummary {
                level: "full".into(),
                ok: true,
                summary: format!("verified {layout}"),
                failure: None,
            },
            pre_report: serde_json::Value::Null,
            guest: None,
            lab: None,
        }
    }

    impl Executor for Mock {
        fn run(
            &mut self,
            call: &Call,
            ctx: CallCtx,
            emit: &mut dyn FnMut(RunnerLine),
        ) -> anyhow::Result<Outcome> {
            self.calls.push((call.name(), ctx));
            if self.fail_on.as_deref() == Some(call.name().as_str())
                || self.fail_on_call == Some(self.calls.len())
            {
                bail!("{} failed (exit status: 1): boom", call.name());
            }
            // Deterministic per-call jitter from the seed (±0.5 %).
            let jitter = |k: u64| {
                1.0 + ((ctx.seed.wrapping_mul(6364136223846793005).wrapping_add(k) >> 33) % 1000)
                    as f64
                    / 100_000.0
                    - 0.005
            };
            let mut runs: Vec<(Variant, Option<Strategy>, u32)> = Vec::new();
            let nine = match call {
                Call::Sim {
                    arch,
                    order,
                    strategies,
                    contpte,
                    mem,
                    iters,
                    mode,
                    ..
                } => {
                    if self.missing_arches.contains(arch) {
                        return Ok(Outcome::Skipped(format!(
                            "forkbench: error: arch '{arch}' is not available"
                        )));
                    }
                    for &s in strategies {
                        let v = Variant::Sim(SimVariant {
                            arch: *arch,
                            contpte: *contpte,
                            strategy: s,
                            order: *order,
                            mem_bytes: mem.0,
                            mode: *mode,
                            mapcount: Default::default(),
                            counting: false,
                        });
                        runs.push((v, Some(s), *iters));
                    }
                    order.get() == 9
                }
                Call::Real {
                    layout,
                    mem,
                    iters,
                    mode,
                    ..
                } => {
                    if !self.real {
                        return Ok(Outcome::Skipped(
                            "forkbench: error: the host cannot do this layout".into(),
                        ));
                    }
                    emit(RunnerLine::Context(Box::new(context(call))));
                    let v = Variant::Real(RealVariant {
                        arch: Arch::X86_64,
                        kernel: "6.18.0-mock".into(),
                        accel: Default::default(),
                        clock: contract::Clock::Wall,
                        layout: *layout,
                        mem_bytes: mem.0,
                        mode: *mode,
                        sched: Sched::Other,
                        unverified: false,
                    });
                    runs.push((v, None, *iters));
                    layout.to_string().contains('9')
                }
            };
            for (k, (variant, strategy, iters)) in runs.into_iter().enumerate() {
                let m = base_ns(strategy, nine) * jitter(k as u64) * self.factor;
                let real = matches!(variant, Variant::Real(_)).then(|| {
                    Box::new(RealExtra {
                        context: 0,
                        ..RealExtra::default()
                    })
                });
                emit(RunnerLine::Run(Box::new(RunRecord {
                    variant,
                    run_index: 0,
                    warmup: 0,
                    samples_ns: vec![m as u64; iters as usize],
                    cpu: Some(ctx.cpu),
                    ops: BTreeMap::from([(OpCounter::PteReads, 1000)]),
                    sim: None,
                    real,
                    host_load: None,
                })));
            }
            Ok(Outcome::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{Arch, Contpte, Mode, ModelOrder, RealLayout, Sched, Size, Strategy};

    #[test]
    fn invocations_of_calls() {
        let call = Call::Sim {
            arch: Arch::Arm64,
            order: ModelOrder::new(9).unwrap(),
            strategies: vec![Strategy::MmUnstable, Strategy::Upstream],
            contpte: Some(Contpte::Ena),
            mem: Size(1 << 30),
            iters: 100,
            warmup: 2,
            mode: Mode::Fresh,
        };
        let ctx = CallCtx { cpu: 1, seed: 7 };
        let f = PathBuf::from("/t/cm.toml");
        let a = invocation(&call, ctx, Some(&f)).args().join(" ");
        assert_eq!(
            a,
            "sim --arch arm64 --contpte ena --strategy mm-unstable,upstream --order 9 --mem 1G \
             --mode fresh --mapcount per-page --iters 100 --runs 1 --warmup 2 --cpu 1 --seed 7 \
             --cost-model /t/cm.toml --json"
        );
        // The cost model is for the arm64 engine only.
        let mut x86 = call.clone();
        if let Call::Sim { arch, contpte, .. } = &mut x86 {
            *arch = Arch::X86_64;
            *contpte = None;
        }
        assert!(
            !invocation(&x86, ctx, Some(&f))
                .args()
                .contains(&"--cost-model".to_string())
        );
        let real = Call::Real {
            layout: RealLayout::PteOrder9,
            mem: Size(1 << 30),
            iters: 100,
            warmup: 2,
            sched: Sched::Fifo,
            mode: Mode::Steady,
            kernel: None,
        };
        let a = invocation(&real, ctx, None).args().join(" ");
        assert_eq!(
            a,
            "real --layout pte-order9 --mem 1G --iters 100 --runs 1 --warmup 2 --mode steady \
             --cpu 1 --sched fifo --fifo-priority 10 --pause sleep --json"
        );
        // Only exit 3 ("not supported here") of a real-fork call is a skip.
        assert!(is_skip(&real, Some(3)));
        assert!(!is_skip(&real, Some(2)));
        assert!(!is_skip(&real, Some(1)));
        assert!(!is_skip(&call, Some(3)));
        assert!(!is_skip(&x86, Some(3)));
    }

    /// The release executor against a stand-in runner script: exit 3 of a real-fork call is a
    /// skip carrying the runner's last stderr line; other failures are errors.
    #[test]
    fn release_executor_skips_exit_3_and_fails_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("forkbench");
        std::fs::write(
            &bin,
            "#!/bin/sh\necho 'forkbench: not supported here: mTHP size 64k is not offered by this kernel' >&2\n\
             if [ \"$1\" = real ]; then exit 3; else exit 1; fi\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut r = Release::new(bin, 0, None);
        let ctx = CallCtx { cpu: 0, seed: 1 };
        let real = Call::Real {
            layout: RealLayout::Mthp { kb: 64 },
            mem: Size(2 << 20),
            iters: 1,
            warmup: 0,
            sched: Sched::Other,
            mode: Mode::Steady,
            kernel: None,
        };
        let out = r.run(&real, ctx, &mut |_| {}).unwrap();
        assert_eq!(
            out,
            Outcome::Skipped(
                "forkbench: not supported here: mTHP size 64k is not offered by this kernel".into()
            )
        );
        let sim = Call::Sim {
            arch: Arch::X86_64,
            order: ModelOrder::new(0).unwrap(),
            strategies: vec![Strategy::Upstream],
            contpte: None,
            mem: Size(2 << 20),
            iters: 1,
            warmup: 0,
            mode: Mode::Fresh,
        };
        let e = r.run(&sim, ctx, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("is not offered by this kernel"), "{e}");
    }

    fn stand_in(dir: &std::path::Path, script: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let bin = dir.join("forkbench");
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    fn real_call() -> Call {
        Call::Real {
            layout: RealLayout::Order0,
            mem: Size(2 << 20),
            iters: 1,
            warmup: 0,
            sched: Sched::Other,
            mode: Mode::Steady,
            kernel: None,
        }
    }

    /// A real-fork call refused with exit 2 for bad input (not a host limitation) stops the
    /// bench with the runner's message instead of being skipped.
    #[test]
    fn exit_2_for_bad_input_is_an_error_not_a_skip() {
        let d = tempfile::tempdir().unwrap();
        let bin = stand_in(
            d.path(),
            "#!/bin/sh\necho 'forkbench: error: not enough memory: --mem 30720 MiB needs about \
             32640 MiB available, but MemAvailable is 20000 MiB' >&2\nexit 2\n",
        );
        let mut r = Release::new(bin, 0, None);
        let e = r
            .run(&real_call(), CallCtx { cpu: 0, seed: 1 }, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("not enough memory"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    /// A runner printing a header of another schema stops the bench in one line.
    #[test]
    fn runner_of_another_schema_stops_the_bench() {
        let d = tempfile::tempdir().unwrap();
        let bin = stand_in(
            d.path(),
            "#!/bin/sh\necho '{\"line\":\"header\",\"schema\":1,\"tool_version\":\"0\"}'\n",
        );
        let mut r = Release::new(bin, 0, None);
        let mut lines = 0;
        let e = r
            .run(&real_call(), CallCtx { cpu: 0, seed: 1 }, &mut |_| {
                lines += 1
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("schema 1"), "{e}");
        assert_eq!(e.lines().count(), 1);
        assert_eq!(lines, 0);
    }
}
