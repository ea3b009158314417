//! Turning command output into samples, and the metric names of this workspace
//! (`sim:ENGINE:STRATEGY:orderN:WHAT`, `real:LAYOUT:fork`, spelled with the runner contract's
//! words) into typed runner invocations.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use contract::{
    Arch, Contpte, Invocation, ModelOpts, ModelOrder, OpCounter, RealLayout, RealOpts, RunRecord,
    Runner, RunnerOutput, SimOpts, Size, Strategies, Strategy, UnknownName,
};
use results::ResultFile;

use crate::git::Worktrees;
use crate::search::{Measure, MeasureError, Rev};

/// Parse a command's stdout: a forkbench result file (run means), the runner's `--json` lines
/// (run means), or plain numbers one per line.
pub fn parse_samples(stdout: &str) -> Result<Vec<f64>, String> {
    let text = stdout.trim();
    if text.is_empty() {
        return Err("the command printed nothing".into());
    }
    if text.starts_with('{') {
        if let Ok(f) = ResultFile::parse(text, Path::new("the command's output")) {
            return Ok(f.runs.iter().map(RunRecord::mean_ns).collect());
        }
        let out = RunnerOutput::parse(text)
            .map_err(|e| format!("neither a result file nor runner output: {e}"))?;
        if out.runs.is_empty() {
            return Err("the runner output holds no run record".into());
        }
        return Ok(out.runs.iter().map(RunRecord::mean_ns).collect());
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| format!("'{l}' is not a number"))
        })
        .collect()
}

/// Run `cmd` with `sh -c` in `dir`; stdout on success, the last stderr line on failure.
pub fn run_shell(dir: &Path, cmd: &str, envs: &[(&str, String)]) -> Result<String, String> {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).current_dir(dir);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().map_err(|e| format!("cannot run sh: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("`{cmd}` failed ({}): {last}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `cargo build --release -p forkbench --bin forkbench` in `dir` (with `CARGO_TARGET_DIR` =
/// `target_dir` when given), using `$CARGO` when cargo runs us. Shared by xtask and bisect.
pub fn cargo_build_forkbench(
    dir: &Path,
    target_dir: Option<&Path>,
) -> std::io::Result<std::process::ExitStatus> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(dir).args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "forkbench",
        "--bin",
        "forkbench",
    ]);
    if let Some(t) = target_dir {
        c.env("CARGO_TARGET_DIR", t);
    }
    c.status()
}

/// `Abort` once Ctrl-C was seen.
fn check_cancelled(cancelled: &AtomicBool) -> Result<(), MeasureError> {
    if cancelled.load(Ordering::SeqCst) {
        Err(MeasureError::Abort("interrupted".into()))
    } else {
        Ok(())
    }
}

/// A worktree of `rev`, unless Ctrl-C was seen (a failed checkout aborts the bisection).
fn checkout(
    worktrees: &mut Worktrees,
    rev: &Rev,
    cancelled: &AtomicBool,
) -> Result<std::path::PathBuf, MeasureError> {
    check_cancelled(cancelled)?;
    worktrees
        .checkout(rev)
        .map_err(|e| MeasureError::Abort(e.to_string()))
}

/// External mode: run a user command in a worktree of each revision.
pub struct ExternalCommand<'a> {
    pub worktrees: &'a mut Worktrees,
    pub cmd: String,
    pub cancelled: Arc<AtomicBool>,
}

impl Measure for ExternalCommand<'_> {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
        let dir = checkout(self.worktrees, rev, &self.cancelled)?;
        let out = run_shell(
            &dir,
            &self.cmd,
            &[("FORKBENCH_BISECT_REV", rev.hash.clone())],
        );
        check_cancelled(&self.cancelled)?;
        let out = out.map_err(MeasureError::Skip)?;
        parse_samples(&out).map_err(MeasureError::Skip)
    }
}

/// What a model metric reads from its runner output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimWhat {
    /// Mean fork time of the run (ns).
    Time,
    /// Mean ns per PTE copied.
    NsPerPte,
    /// PTEs copied per fork.
    Ptes,
    /// Bytes the model's arena and tables take.
    ModelBytes,
    /// The runner's peak RSS after the run.
    PeakRssBytes,
    /// An exact op count of one fork (`forkbench counts`).
    Op(OpCounter),
}

impl SimWhat {
    /// The run-record values, besides the op counters, a metric can name.
    pub const RECORD_VALUES: [SimWhat; 5] = [
        SimWhat::Time,
        SimWhat::NsPerPte,
        SimWhat::Ptes,
        SimWhat::ModelBytes,
        SimWhat::PeakRssBytes,
    ];

    /// The name in a metric.
    pub fn name(self) -> &'static str {
        match self {
            SimWhat::Time => "time",
            SimWhat::NsPerPte => "ns_per_pte",
            SimWhat::Ptes => "ptes",
            SimWhat::ModelBytes => "model_bytes",
            SimWhat::PeakRssBytes => "peak_rss_bytes",
            SimWhat::Op(c) => c.name(),
        }
    }

    fn parse(s: &str) -> Option<SimWhat> {
        SimWhat::RECORD_VALUES
            .into_iter()
            .find(|w| w.name() == s)
            .or_else(|| s.parse().ok().map(SimWhat::Op))
    }

    /// This value of one run record.
    fn of(self, r: &RunRecord) -> Option<f64> {
        let sim = r.sim.as_ref();
        match self {
            SimWhat::Time => Some(r.mean_ns()),
            SimWhat::NsPerPte => r.ns_per_pte(),
            SimWhat::Ptes => sim.map(|x| x.ptes as f64),
            SimWhat::ModelBytes => sim.map(|x| x.model_bytes as f64),
            SimWhat::PeakRssBytes => sim.and_then(|x| x.peak_rss_bytes).map(|b| b as f64),
            SimWhat::Op(c) => r.op(c).map(|n| n as f64),
        }
    }
}

/// What a workspace metric measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metric {
    /// The model: `sim:ENGINE:STRATEGY:orderN:WHAT`, ENGINE `x86_64` or `arm64[/CONTPTE]`
    /// (CONTPTE `dis`, `ena` or `basic`; `ena` when omitted).
    Sim {
        arch: Arch,
        contpte: Option<Contpte>,
        strategy: Strategy,
        order: ModelOrder,
        what: SimWhat,
    },
    /// Real fork: `real:LAYOUT:fork`.
    Real { layout: RealLayout },
}

/// A metric name that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad metric '{0}': {1} (grammar: sim:ENGINE:STRATEGY:orderN:WHAT with ENGINE x86_64 or arm64[/dis|/ena|/basic] and WHAT time, ns_per_pte, ptes, model_bytes, peak_rss_bytes or an op counter; or real:LAYOUT:fork. Examples: sim:x86_64:upstream:order9:time, sim:arm64/dis:fork-batching:order9:ptep_get_raw_reads, real:pte-order9:fork)"
)]
pub struct BadMetric(pub String, pub String);

impl Metric {
    /// Parse a metric name.
    pub fn parse(s: &str) -> Result<Metric, BadMetric> {
        let bad = |why: String| BadMetric(s.to_string(), why);
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["sim", engine, strategy, order, what] => {
                let (arch, contpte) = match engine.split_once('/') {
                    None => (*engine, None),
                    Some((arch, c)) => (arch, Some(c)),
                };
                let arch: Arch = arch.parse().map_err(|e: UnknownName| bad(e.to_string()))?;
                let contpte = match (arch, contpte) {
                    (Arch::X86_64, None) => None,
                    (Arch::X86_64, Some(_)) => {
                        return Err(bad("contpte is an arm64 mode".into()));
                    }
                    (Arch::Arm64, None) => Some(Contpte::Ena),
                    (Arch::Arm64, Some(c)) => {
                        Some(c.parse().map_err(|e: UnknownName| bad(e.to_string()))?)
                    }
                };
                let strategy: Strategy = strategy
                    .parse()
                    .map_err(|e: UnknownName| bad(e.to_string()))?;
                let order = order
                    .strip_prefix("order")
                    .and_then(|o| o.parse::<ModelOrder>().ok())
                    .ok_or_else(|| bad("the fourth field must be order0..order9".into()))?;
                let what = SimWhat::parse(what).ok_or_else(|| {
                    bad(format!(
                        "unknown WHAT '{what}' (not a run-record value or an op counter)"
                    ))
                })?;
                Ok(Metric::Sim {
                    arch,
                    contpte,
                    strategy,
                    order,
                    what,
                })
            }
            ["real", layout, "fork"] => Ok(Metric::Real {
                layout: layout
                    .parse()
                    .map_err(|e: UnknownName| bad(e.to_string()))?,
            }),
            _ => Err(bad(
                "expected sim:ENGINE:STRATEGY:orderN:WHAT or real:LAYOUT:fork".into(),
            )),
        }
    }

    /// Whether the metric is deterministic (an op count: exact comparison, one run per
    /// revision).
    pub fn exact(&self) -> bool {
        matches!(
            self,
            Metric::Sim {
                what: SimWhat::Op(_),
                ..
            }
        )
    }

    /// The runner call of one run: `counts` for op counts (2 MiB suffice, they scale
    /// exactly), else one `sim` or `real` run of `iters` forks over `mem`.
    pub fn invocation(&self, mem: Size, iters: u32) -> Invocation {
        match *self {
            Metric::Sim {
                arch,
                contpte,
                strategy,
                order,
                ..
            } => {
                let model = ModelOpts {
                    arch,
                    contpte,
                    strategies: Strategies(vec![strategy]),
                    order,
                    mem: if self.exact() { Size(2 << 20) } else { mem },
                    ..ModelOpts::default()
                };
                if self.exact() {
                    Invocation::Counts(model)
                } else {
                    Invocation::Sim(SimOpts {
                        model,
                        iters,
                        runs: 1,
                        ..SimOpts::default()
                    })
                }
            }
            Metric::Real { layout } => Invocation::Real(RealOpts {
                mem,
                iters,
                runs: 1,
                ..RealOpts::new(layout)
            }),
        }
    }

    /// The metric's value(s) from the runner's output: one per run record, or the op count of
    /// the metric's strategy.
    pub fn extract(&self, out: &RunnerOutput) -> Result<Vec<f64>, String> {
        match *self {
            Metric::Sim {
                strategy,
                what: SimWhat::Op(c),
                ..
            } => {
                let row = out
                    .counts
                    .iter()
                    .find(|r| r.strategy == strategy)
                    .ok_or_else(|| format!("the runner printed no counts for {strategy}"))?;
                row.ops
                    .get(&c)
                    .map(|&n| vec![n as f64])
                    .ok_or_else(|| format!("this revision's runner does not report '{c}'"))
            }
            Metric::Sim { what, .. } => {
                if out.runs.is_empty() {
                    return Err("the runner printed no run record".into());
                }
                out.runs
                    .iter()
                    .map(|r| {
                        what.of(r).ok_or_else(|| {
                            format!("this revision's run record has no {}", what.name())
                        })
                    })
                    .collect()
            }
            Metric::Real { .. } => {
                if out.runs.is_empty() {
                    return Err("the runner printed no run record".into());
                }
                Ok(out.runs.iter().map(RunRecord::mean_ns).collect())
            }
        }
    }
}

/// Self mode: build each revision's release runner (into a shared target directory, so
/// dependencies compile once) and measure a workspace metric with it.
pub struct WorkspaceMetric<'a> {
    pub worktrees: &'a mut Worktrees,
    pub metric: Metric,
    pub target_dir: std::path::PathBuf,
    pub mem: Size,
    pub iters: u32,
    pub cancelled: Arc<AtomicBool>,
    /// The revision whose runner was last built and copied into the worktree session.
    pub last_built: Option<String>,
}

impl WorkspaceMetric<'_> {
    /// Build the runner of the checkout `dir` into the shared target directory and copy it to
    /// `bin`, holding the target directory's lock from the build to the copy so that no other
    /// bisection's build lands in between.
    fn build(&self, dir: &Path, bin: &Path) -> Result<(), MeasureError> {
        let abort = |what: &str, e: &dyn std::fmt::Display| {
            MeasureError::Abort(format!("{what} {}: {e}", self.target_dir.display()))
        };
        std::fs::create_dir_all(&self.target_dir).map_err(|e| abort("cannot create", &e))?;
        let lock_path = self.target_dir.join(".bisect-build.lock");
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| abort("cannot open the build lock in", &e))?;
        let _lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| abort("cannot lock", &e))?;
        let st = cargo_build_forkbench(dir, Some(&self.target_dir))
            .map_err(|e| MeasureError::Abort(format!("cannot run cargo: {e}")))?;
        if !st.success() {
            return Err(MeasureError::Skip(format!("build failed ({st})")));
        }
        std::fs::copy(self.target_dir.join("release").join("forkbench"), bin)
            .map_err(|e| abort("cannot copy the runner from", &e))?;
        Ok(())
    }
}

impl Measure for WorkspaceMetric<'_> {
    fn measure(&mut self, rev: &Rev) -> Result<Vec<f64>, MeasureError> {
        let dir = checkout(self.worktrees, rev, &self.cancelled)?;
        // Our own copy of this revision's runner: the shared target directory's may be
        // rebuilt at any time by another bisection of the same workspace.
        let bin = self
            .worktrees
            .session_dir()
            .join(format!("forkbench-{}", &rev.hash[..rev.hash.len().min(12)]));
        if self.last_built.as_deref() != Some(rev.hash.as_str()) {
            self.build(&dir, &bin)?;
            check_cancelled(&self.cancelled)?;
            self.last_built = Some(rev.hash.clone());
        }
        // The runner is the one this revision built: a revision from before the runner
        // contract does not understand the invocation, and is skipped with the runner's words.
        let out = Runner::new(&bin)
            .run(&self.metric.invocation(self.mem, self.iters))
            .map_err(|e| MeasureError::Skip(format!("runner failed: {e}")));
        check_cancelled(&self.cancelled)?;
        self.metric.extract(&out?).map_err(MeasureError::Skip)
    }
}

#[cfg(test)]
mod tests {
    use contract::{Header, Mapcount, Mode, RunnerLine, SimExtra, SimVariant, Variant};

    use super::*;

    fn sim_record(samples: Vec<u64>) -> RunRecord {
        RunRecord {
            variant: Variant::Sim(SimVariant {
                arch: Arch::X86_64,
                contpte: None,
                strategy: Strategy::Upstream,
                order: ModelOrder::new(9).unwrap(),
                mem_bytes: 64 << 20,
                mode: Mode::Fresh,
                mapcount: Mapcount::PerPage,
                counting: false,
            }),
            run_index: 0,
            warmup: 2,
            samples_ns: samples,
            cpu: None,
            ops: Default::default(),
            sim: Some(SimExtra {
                ptes: 10,
                seed: 1,
                model_bytes: 4096,
                peak_rss_bytes: Some(1 << 20),
                cost_model: None,
                modelled_add_ns: None,
            }),
            real: None,
            host_load: None,
        }
    }

    fn runner_output(runs: &[RunRecord]) -> String {
        let mut lines = vec![RunnerLine::Header(Header::current()).to_json()];
        lines.extend(
            runs.iter()
                .map(|r| RunnerLine::Run(Box::new(r.clone())).to_json()),
        );
        lines.join("\n") + "\n"
    }

    #[test]
    fn samples_from_numbers_runner_lines_and_result_files() {
        assert_eq!(
            parse_samples("1.5\n2\n\n3e2\n").unwrap(),
            vec![1.5, 2.0, 300.0]
        );
        assert!(parse_samples("1\nfast\n").unwrap_err().contains("'fast'"));
        assert!(parse_samples("  \n").is_err());
        let runs = [sim_record(vec![10, 20]), sim_record(vec![30])];
        assert_eq!(
            parse_samples(&runner_output(&runs)).unwrap(),
            vec![15.0, 30.0]
        );
        // Run lines without the header are not runner output.
        let headless = RunnerLine::Run(Box::new(runs[0].clone())).to_json();
        assert!(parse_samples(&headless).is_err());
        let mut file = ResultFile::new("m", "l", "2026-01-01T00:00:00Z", Default::default());
        file.runs = runs.to_vec();
        assert_eq!(parse_samples(&file.to_json()).unwrap(), vec![15.0, 30.0]);
        let pretty = serde_json::to_string_pretty(&file).unwrap();
        assert_eq!(parse_samples(&pretty).unwrap(), vec![15.0, 30.0]);
        assert!(
            parse_samples(&runner_output(&[]))
                .unwrap_err()
                .contains("no run record")
        );
    }

    #[test]
    fn metric_names_use_the_contract_words() {
        let m = Metric::parse("sim:arm64:fork-batching:order9:ptep_get_raw_reads").unwrap();
        assert!(m.exact());
        assert_eq!(
            m.invocation(Size(64 << 20), 20).args().join(" "),
            "counts --arch arm64 --contpte ena --strategy fork-batching --order 9 --mem 2M \
             --mode fresh --mapcount per-page --json"
        );
        let d = Metric::parse("sim:arm64/dis:upstream:order0:tlbi").unwrap();
        assert!(matches!(
            d,
            Metric::Sim {
                contpte: Some(Contpte::Dis),
                what: SimWhat::Op(OpCounter::Tlbi),
                ..
            }
        ));
        let t = Metric::parse("sim:x86_64:upstream:order9:time").unwrap();
        assert!(!t.exact());
        assert_eq!(
            t.invocation(Size(64 << 20), 20).args().join(" "),
            "sim --arch x86_64 --strategy upstream --order 9 --mem 64M --mode fresh \
             --mapcount per-page --iters 20 --runs 1 --warmup 2 --seed 1 --json"
        );
        let r = Metric::parse("real:pte-order9:fork").unwrap();
        assert!(
            r.invocation(Size(64 << 20), 20)
                .args()
                .join(" ")
                .starts_with("real --layout pte-order9 --mem 64M --iters 20 --runs 1 ")
        );
        for bad in [
            "sim:x86_64:upstream:9:time",
            "sim:sparc:upstream:order9:time",
            "sim:arm64-dis:upstream:order9:time",
            "sim:arm64/on:upstream:order9:time",
            "sim:x86_64/ena:upstream:order9:time",
            "sim:x86_64:v6.7:order9:time",
            "sim:x86_64:upstream:order10:time",
            "sim:x86_64:upstream:order9:speed",
            "real:order9:fork",
            "real:x",
            "nope",
        ] {
            assert!(Metric::parse(bad).is_err(), "{bad}");
        }
        assert!(
            Metric::parse("sim:arm64-dis:upstream:order9:time")
                .unwrap_err()
                .to_string()
                .contains("arm64[/dis|/ena|/basic]")
        );
    }

    #[test]
    fn metrics_read_typed_fields() {
        let out = RunnerOutput::parse(&runner_output(&[sim_record(vec![10, 30])])).unwrap();
        let value = |name: &str| {
            Metric::parse(&format!("sim:x86_64:upstream:order9:{name}"))
                .unwrap()
                .extract(&out)
        };
        assert_eq!(value("time").unwrap(), vec![20.0]);
        assert_eq!(value("ns_per_pte").unwrap(), vec![2.0]);
        assert_eq!(value("ptes").unwrap(), vec![10.0]);
        assert_eq!(value("model_bytes").unwrap(), vec![4096.0]);
        assert_eq!(value("peak_rss_bytes").unwrap(), vec![(1 << 20) as f64]);
        let counts = format!(
            "{}\n{}\n",
            RunnerLine::Header(Header::current()).to_json(),
            r#"{"line":"counts","arch":"arm64","contpte":"ena","strategy":"fork-batching","order":9,"mem_bytes":2097152,"mode":"fresh","ops":{"ptep_get_raw_reads":8704}}"#
        );
        let out = RunnerOutput::parse(&counts).unwrap();
        let m = Metric::parse("sim:arm64:fork-batching:order9:ptep_get_raw_reads").unwrap();
        assert_eq!(m.extract(&out).unwrap(), vec![8704.0]);
        let missing = Metric::parse("sim:arm64:fork-batching:order9:tlbi").unwrap();
        assert!(missing.extract(&out).unwrap_err().contains("'tlbi'"));
        let other = Metric::parse("sim:arm64:upstream:order9:tlbi").unwrap();
        assert!(
            other
                .extract(&out)
                .unwrap_err()
                .contains("no counts for upstream")
        );
    }
}
