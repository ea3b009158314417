//! The one way to run the runner: a typed [`Invocation`] (`counts`, `sim` or `real` with their
//! options) renders to the `forkbench` arguments, and [`Runner`] spawns the binary and parses
//! its `--json` lines back into typed [`RunnerLine`]s. The option structs are also the runner's
//! own clap arguments (feature `clap`), so what a driver renders is what the runner parses.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::str::FromStr;

use crate::record::{CountsRow, Header, RealContext, RunRecord, RunnerLine, SCHEMA_VERSION};
use crate::size::Size;
use crate::vocab::{
    Arch, Contpte, Mapcount, Mode, ModelOrder, Pause, RealLayout, Sched, Strategy, UnknownName,
};

/// A set of strategies: a comma list or `all` (every selectable strategy, in canonical order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strategies(pub Vec<Strategy>);

impl Strategies {
    pub fn all() -> Self {
        Strategies(Strategy::ALL.to_vec())
    }
}

impl FromStr for Strategies {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        if s.trim() == "all" {
            return Ok(Strategies::all());
        }
        let mut v = Vec::new();
        for part in s.split(',') {
            let id: Strategy = part.trim().parse()?;
            if !v.contains(&id) {
                v.push(id);
            }
        }
        Ok(Strategies(v))
    }
}

impl fmt::Display for Strategies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// What to model: engine, strategies and the populated memory (`counts` and `sim`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ModelOpts {
    /// Page-table engine
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Arch::X86_64))]
    pub arch: Arch,
    /// arm64 contpte: dis (pre-contpte kernel), ena (v6.9 with the fork helpers), basic
    /// (contpte without them); default ena on arm64
    #[cfg_attr(feature = "clap", arg(long))]
    pub contpte: Option<Contpte>,
    /// Strategies: a comma list of strategy names, or all (an unknown name lists the choices)
    #[cfg_attr(feature = "clap", arg(long = "strategy", default_value = "all"))]
    pub strategies: Strategies,
    /// Folio order of the populated memory (0..=9)
    #[cfg_attr(feature = "clap", arg(long, default_value = "0"))]
    pub order: ModelOrder,
    /// Populated memory, e.g. 2M, 1G
    #[cfg_attr(feature = "clap", arg(long, default_value = "1G"))]
    pub mem: Size,
    /// fresh: restore the freshly-faulted parent before each fork; steady: fork the same parent
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Mode::Fresh))]
    pub mode: Mode,
    /// Mapcount model: per-page (v6.7-v6.10), per-page+large (v6.11+), large-only
    /// (CONFIG_NO_PAGE_MAPCOUNT); `current` runs per-page as per-page+large
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Mapcount::PerPage))]
    pub mapcount: Mapcount,
}

impl Default for ModelOpts {
    fn default() -> Self {
        ModelOpts {
            arch: Arch::X86_64,
            contpte: None,
            strategies: Strategies::all(),
            order: ModelOrder::new(0).expect("order 0"),
            mem: Size(1 << 30),
            mode: Mode::Fresh,
            mapcount: Mapcount::PerPage,
        }
    }
}

/// Timing of model forks (`sim`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SimOpts {
    #[cfg_attr(feature = "clap", command(flatten))]
    pub model: ModelOpts,
    /// Timed forks per run
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub iters: u32,
    /// Runs per strategy
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub runs: u32,
    /// Untimed forks before each run
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 2))]
    pub warmup: u32,
    /// Pin to this CPU (validated against the allowed CPU set)
    #[cfg_attr(feature = "clap", arg(long))]
    pub cpu: Option<usize>,
    /// Seed of the per-run strategy order
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub seed: u64,
    /// Count ops while timing (to measure what counting costs)
    #[cfg_attr(feature = "clap", arg(long))]
    pub count: bool,
    /// Privileged-op costs for a modelled time beside the measured one: tlbi=NS,flush_tlb_mm=NS
    /// or a file of NAME_ns = NS lines
    #[cfg_attr(feature = "clap", arg(long))]
    pub cost_model: Option<String>,
}

impl Default for SimOpts {
    fn default() -> Self {
        SimOpts {
            model: ModelOpts::default(),
            iters: 100,
            runs: 8,
            warmup: 2,
            cpu: None,
            seed: 1,
            count: false,
            cost_model: None,
        }
    }
}

/// Timing of the real fork() on this kernel (`real`). Serde form: a guest's plan carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct RealOpts {
    /// Folio layout: order0, pte-order9, pmd-order9, mthp-<size> (e.g. mthp-64k; any mTHP size
    /// the kernel offers), mix-64k (64K mTHP and order-0 blocks alternating), mix-pmd
    /// (PMD-mapped and PTE-mapped THPs alternating) or untouched
    #[cfg_attr(feature = "clap", arg(long))]
    pub layout: RealLayout,
    /// Memory to populate, a multiple of 2 MiB (e.g. 1G, 512M, 64M)
    #[cfg_attr(feature = "clap", arg(long, default_value = "1G"))]
    pub mem: Size,
    /// Timed forks per run
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 100))]
    pub iters: u32,
    /// Runs (each is one record)
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 8))]
    pub runs: u32,
    /// Untimed forks before each run (the local profile's `[run] warmup`)
    #[cfg_attr(feature = "clap", arg(long, default_value_t = RealOpts::DEFAULT_WARMUP))]
    pub warmup: u32,
    /// steady: fork the same parent again (after the first fork its PTEs stay write-protected);
    /// fresh: before each fork, outside the timed section, write one byte per page so the
    /// parent's PTEs are writable and its folios exclusive again
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Mode::Steady))]
    pub mode: Mode,
    /// Pin to this CPU (validated against the process's allowed CPUs)
    #[cfg_attr(feature = "clap", arg(long))]
    pub cpu: Option<usize>,
    /// Scheduling: other (the child may preempt the parent inside fork(), such samples are
    /// flagged), batch (unprivileged: the child does not preempt its parent) or fifo (parent and
    /// children SCHED_FIFO, pausing between iterations for RT throttling; falls back to batch
    /// when not permitted, recording why); the default is the local profile's `[run] sched`
    #[cfg_attr(feature = "clap", arg(long, default_value_t = RealOpts::DEFAULT_SCHED))]
    pub sched: Sched,
    /// SCHED_FIFO priority for --sched fifo
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 10))]
    pub fifo_priority: i32,
    /// How --sched fifo pauses between iterations: sleep (the CPU may idle, as in the
    /// reference method) or spin (drop to SCHED_OTHER and busy-wait)
    #[cfg_attr(feature = "clap", arg(long, default_value_t = Pause::Sleep))]
    pub pause: Pause,
    /// Skip the core-throughput probe (under 1 ms of integer work timed before each fork,
    /// outside the timed section)
    #[cfg_attr(feature = "clap", arg(long))]
    pub no_core_probe: bool,
    /// Exact mode (a guest under QEMU icount, whose clock counts instructions): start each
    /// timed fork just after a timer tick, so no tick lands inside a fork shorter than the tick
    /// period (see realfork's `tick` module)
    #[cfg_attr(feature = "clap", arg(long))]
    pub tick_align: bool,
    /// Time even when the layout cannot be verified (records are marked unverified)
    #[cfg_attr(feature = "clap", arg(long))]
    pub allow_unverified: bool,
    /// Verify without pagemap/kpageflags, as an unprivileged user would (for testing)
    #[cfg_attr(feature = "clap", arg(long, hide = true))]
    pub no_pagemap: bool,
}

impl RealOpts {
    /// `forkbench real`'s default `--sched`: the local profile's (bench-configs/local.toml).
    pub const DEFAULT_SCHED: Sched = Sched::Fifo;
    /// `forkbench real`'s default `--warmup`: the local profile's.
    pub const DEFAULT_WARMUP: u32 = 2;

    /// What `forkbench real --layout L` runs with no other option: [`RealOpts::new`] with the
    /// local profile's scheduling and warm-up ([`RealOpts::DEFAULT_SCHED`],
    /// [`RealOpts::DEFAULT_WARMUP`]), so a hand-run runner measures like `cargo xtask bench`.
    pub fn runner_defaults(layout: RealLayout) -> Self {
        RealOpts {
            sched: Self::DEFAULT_SCHED,
            warmup: Self::DEFAULT_WARMUP,
            ..RealOpts::new(layout)
        }
    }

    /// A base for drivers that set what they measure with (`..RealOpts::new(layout)`):
    /// `sched other`, one warm-up fork and otherwise the runner's defaults. Kept as it was when
    /// the runner's defaults moved to the profile's ([`RealOpts::runner_defaults`]), so callers
    /// that leave `sched`/`warmup` unset measure as before.
    pub fn new(layout: RealLayout) -> Self {
        RealOpts {
            layout,
            mem: Size(1 << 30),
            iters: 100,
            runs: 8,
            warmup: 1,
            mode: Mode::Steady,
            cpu: None,
            sched: Sched::Other,
            fifo_priority: 10,
            pause: Pause::Sleep,
            no_core_probe: false,
            tick_align: false,
            allow_unverified: false,
            no_pagemap: false,
        }
    }
}

/// One call of the runner, always with `--json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `forkbench counts`: exact op counts of one model fork per strategy.
    Counts(ModelOpts),
    /// `forkbench sim`: timed model forks.
    Sim(SimOpts),
    /// `forkbench real`: timed real forks.
    Real(RealOpts),
}

fn push(a: &mut Vec<String>, flag: &str, v: impl fmt::Display) {
    a.push(format!("--{flag}"));
    a.push(v.to_string());
}

fn model_args(a: &mut Vec<String>, m: &ModelOpts) {
    push(a, "arch", m.arch);
    if let Some(c) = m.contpte {
        push(a, "contpte", c);
    }
    push(a, "strategy", &m.strategies);
    push(a, "order", m.order);
    push(a, "mem", m.mem);
    push(a, "mode", m.mode);
    push(a, "mapcount", m.mapcount);
}

impl Invocation {
    /// The subcommand name.
    pub fn subcommand(&self) -> &'static str {
        match self {
            Invocation::Counts(_) => "counts",
            Invocation::Sim(_) => "sim",
            Invocation::Real(_) => "real",
        }
    }

    /// The runner's arguments: the subcommand, every option spelled out, then `--json`.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![self.subcommand().to_string()];
        match self {
            Invocation::Counts(m) => model_args(&mut a, m),
            Invocation::Sim(s) => {
                model_args(&mut a, &s.model);
                push(&mut a, "iters", s.iters);
                push(&mut a, "runs", s.runs);
                push(&mut a, "warmup", s.warmup);
                if let Some(c) = s.cpu {
                    push(&mut a, "cpu", c);
                }
                push(&mut a, "seed", s.seed);
                if s.count {
                    a.push("--count".into());
                }
                if let Some(c) = &s.cost_model {
                    push(&mut a, "cost-model", c);
                }
            }
            Invocation::Real(r) => {
                push(&mut a, "layout", r.layout);
                push(&mut a, "mem", r.mem);
                push(&mut a, "iters", r.iters);
                push(&mut a, "runs", r.runs);
                push(&mut a, "warmup", r.warmup);
                push(&mut a, "mode", r.mode);
                if let Some(c) = r.cpu {
                    push(&mut a, "cpu", c);
                }
                push(&mut a, "sched", r.sched);
                push(&mut a, "fifo-priority", r.fifo_priority);
                push(&mut a, "pause", r.pause);
                for (on, flag) in [
                    (r.no_core_probe, "--no-core-probe"),
                    (r.tick_align, "--tick-align"),
                    (r.allow_unverified, "--allow-unverified"),
                    (r.no_pagemap, "--no-pagemap"),
                ] {
                    if on {
                        a.push(flag.into());
                    }
                }
            }
        }
        a.push("--json".into());
        a
    }
}

/// The runner's output could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("runner output: line {line} is not a runner line ({why}): {text}")]
    BadLine {
        line: usize,
        why: String,
        text: String,
    },
    #[error("runner output is schema {found} (this build reads {SCHEMA_VERSION})")]
    Schema { found: u32 },
    #[error("runner output: line {line} comes before the header line")]
    NoHeader { line: usize },
    #[error("runner output: a run refers to context {0}, which was not printed")]
    NoContext(u32),
}

/// Checks the framing of `--json` output line by line: a header of this schema first, then
/// contexts, runs and counts rows.
#[derive(Debug, Default)]
pub struct LineParser {
    header: Option<Header>,
    line: usize,
    contexts: u32,
}

impl LineParser {
    /// Parse one line; blank lines give `None`.
    pub fn feed(&mut self, text: &str) -> Result<Option<RunnerLine>, OutputError> {
        self.line += 1;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let parsed: RunnerLine = serde_json::from_str(text).map_err(|e| OutputError::BadLine {
            line: self.line,
            why: e.to_string(),
            text: text.chars().take(120).collect(),
        })?;
        match (&parsed, &self.header) {
            (RunnerLine::Header(h), _) => {
                if h.schema != SCHEMA_VERSION {
                    return Err(OutputError::Schema { found: h.schema });
                }
                self.header = Some(h.clone());
            }
            (_, None) => return Err(OutputError::NoHeader { line: self.line }),
            (RunnerLine::Context(_), Some(_)) => self.contexts += 1,
            (RunnerLine::Run(r), Some(_)) => {
                if let Some(x) = &r.real
                    && x.context >= self.contexts
                {
                    return Err(OutputError::NoContext(x.context));
                }
            }
            (RunnerLine::Counts(_), Some(_)) => {}
        }
        Ok(Some(parsed))
    }

    /// The header seen, if any.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }
}

/// Everything one invocation printed, in order within each kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerOutput {
    pub header: Option<Header>,
    pub contexts: Vec<RealContext>,
    pub runs: Vec<RunRecord>,
    pub counts: Vec<CountsRow>,
}

impl RunnerOutput {
    fn push(&mut self, line: RunnerLine) {
        match line {
            RunnerLine::Header(h) => self.header = Some(h),
            RunnerLine::Context(c) => self.contexts.push(*c),
            RunnerLine::Run(r) => self.runs.push(*r),
            RunnerLine::Counts(c) => self.counts.push(*c),
        }
    }

    /// Parse a whole `--json` output.
    pub fn parse(text: &str) -> Result<RunnerOutput, OutputError> {
        let mut p = LineParser::default();
        let mut out = RunnerOutput::default();
        for l in text.lines() {
            if let Some(line) = p.feed(l)? {
                out.push(line);
            }
        }
        Ok(out)
    }
}

/// The runner's exit code for bad input (arguments, sizes, a CPU not allowed, not enough memory).
pub const EXIT_USAGE: u8 = 2;
/// The runner's exit code for "not supported on this host": the layout cannot be produced here
/// (no THP, an mTHP size the kernel does not offer, a knob only root may switch) or did not
/// verify. Drivers record such a call as a skip; every other failure stops them.
pub const EXIT_UNSUPPORTED: u8 = 3;

/// A runner call that did not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {bin}: {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the runner's output: {0}")]
    Read(#[source] std::io::Error),
    /// The runner exited non-zero; `stderr_tail` is its last non-empty stderr line.
    #[error("`{command}` failed ({status}): {stderr_tail}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr_tail: String,
    },
    #[error(transparent)]
    Output(#[from] OutputError),
}

impl RunError {
    /// The runner's exit code, when it ran and failed.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            RunError::Failed { status, .. } => status.code(),
            _ => None,
        }
    }

    /// Exit 2: the runner refused its input (or the host cannot do it).
    pub fn is_usage(&self) -> bool {
        self.exit_code() == Some(i32::from(EXIT_USAGE))
    }

    /// Exit 3: this host cannot do what was asked (see [`EXIT_UNSUPPORTED`]).
    pub fn is_unsupported(&self) -> bool {
        self.exit_code() == Some(i32::from(EXIT_UNSUPPORTED))
    }
}

/// A `forkbench` binary to run invocations with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runner {
    pub bin: PathBuf,
    /// Run under `nice -n <nice>` when not 0.
    pub nice: i32,
}

impl Runner {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Runner {
            bin: bin.into(),
            nice: 0,
        }
    }

    /// The process for `inv` (stdio not set). It gets SIGTERM when the thread that spawns it
    /// dies (`PR_SET_PDEATHSIG`; kept across `nice`'s exec), so a driver killed by its pid
    /// alone leaves no runner behind, and SIGTERM lets the runner put back what it changed.
    pub fn command(&self, inv: &Invocation) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = if self.nice != 0 {
            let mut c = Command::new("nice");
            c.arg("-n").arg(self.nice.to_string()).arg(&self.bin);
            c
        } else {
            Command::new(&self.bin)
        };
        c.args(inv.args());
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and calls only prctl,
        // getppid, getpid and kill, which are async-signal-safe; it allocates nothing and
        // touches no lock.
        unsafe {
            c.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the prctl took effect: no signal will come.
                if libc::getppid() as u32 != parent {
                    libc::kill(libc::getpid(), libc::SIGTERM);
                }
                Ok(())
            });
        }
        c
    }

    /// The command line, for messages.
    pub fn command_line(&self, inv: &Invocation) -> String {
        format!("{} {}", self.bin.display(), inv.args().join(" "))
    }

    /// Run `inv`, handing each parsed line to `on_line` as it arrives (a run record as soon as
    /// its run is done). On failure the error carries the last stderr line.
    pub fn run_each(
        &self,
        inv: &Invocation,
        on_line: &mut dyn FnMut(RunnerLine),
    ) -> Result<(), RunError> {
        let mut child = self
            .command(inv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RunError::Spawn {
                bin: self.bin.display().to_string(),
                source,
            })?;
        let mut stderr = child.stderr.take().expect("piped stderr");
        let err_thread = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut parser = LineParser::default();
        let mut first_error = None;
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => match parser.feed(&l) {
                    Ok(Some(parsed)) if first_error.is_none() => on_line(parsed),
                    Ok(_) => {}
                    Err(e) => {
                        first_error.get_or_insert(RunError::Output(e));
                    }
                },
                Err(e) => {
                    first_error.get_or_insert(RunError::Read(e));
                    break;
                }
            }
        }
        let status = child.wait().map_err(RunError::Read)?;
        let stderr = err_thread.join().unwrap_or_default();
        if !status.success() {
            return Err(RunError::Failed {
                command: self.command_line(inv),
                status,
                stderr_tail: stderr
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            });
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Run `inv` and collect its output.
    pub fn run(&self, inv: &Invocation) -> Result<RunnerOutput, RunError> {
        let mut out = RunnerOutput::default();
        self.run_each(inv, &mut |l| out.push(l))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Header, RunnerLine};

    #[test]
    fn invocations_spell_every_option() {
        let sim = Invocation::Sim(SimOpts {
            model: ModelOpts {
                arch: Arch::Arm64,
                contpte: Some(Contpte::Ena),
                strategies: "mm-unstable,upstream".parse().unwrap(),
                order: ModelOrder::new(9).unwrap(),
                mem: Size(1 << 30),
                ..ModelOpts::default()
            },
            cpu: Some(1),
            seed: 7,
            cost_model: Some("/t/cm.toml".into()),
            ..SimOpts::default()
        });
        assert_eq!(
            sim.args().join(" "),
            "sim --arch arm64 --contpte ena --strategy mm-unstable,upstream --order 9 --mem 1G \
             --mode fresh --mapcount per-page --iters 100 --runs 8 --warmup 2 --cpu 1 --seed 7 \
             --cost-model /t/cm.toml --json"
        );
        let real = Invocation::Real(RealOpts {
            sched: Sched::Fifo,
            allow_unverified: true,
            ..RealOpts::new(RealLayout::Mthp { kb: 64 })
        });
        assert_eq!(
            real.args().join(" "),
            "real --layout mthp-64k --mem 1G --iters 100 --runs 8 --warmup 1 --mode steady \
             --sched fifo --fifo-priority 10 --pause sleep --allow-unverified --json"
        );
        assert_eq!(
            Strategies::all().to_string().split(',').count(),
            Strategy::ALL.len()
        );
        assert!("upstream,v6.7".parse::<Strategies>().is_err());
    }

    /// `forkbench real` run by hand measures like `cargo xtask bench` with the local profile:
    /// the runner's default sched and warm-up are the profile's `[run]` values.
    #[test]
    fn runner_defaults_are_the_local_profiles() {
        let profile = include_str!("../../../bench-configs/local.toml");
        let value = |key: &str| {
            let run = profile.split("[run]").nth(1).expect("[run] table");
            let line = run
                .lines()
                .find(|l| l.split('=').next().map(str::trim) == Some(key))
                .unwrap_or_else(|| panic!("[run] {key}"));
            let v = line.split('=').nth(1).unwrap();
            v.split('#')
                .next()
                .unwrap()
                .trim()
                .trim_matches('"')
                .to_string()
        };
        assert_eq!(value("sched"), RealOpts::DEFAULT_SCHED.to_string());
        assert_eq!(value("warmup"), RealOpts::DEFAULT_WARMUP.to_string());
        let d = RealOpts::runner_defaults(RealLayout::Order0);
        assert_eq!((d.sched, d.warmup), (Sched::Fifo, 2));
        // Everything else is `new`'s, which keeps sched other and one warm-up for drivers.
        let n = RealOpts::new(RealLayout::Order0);
        assert_eq!((n.sched, n.warmup), (Sched::Other, 1));
        assert_eq!(
            RealOpts {
                sched: n.sched,
                warmup: n.warmup,
                ..d
            },
            n
        );
        assert!(
            Invocation::Real(d)
                .args()
                .join(" ")
                .contains("--warmup 2 --mode steady --sched fifo")
        );
    }

    #[test]
    fn output_needs_a_header_of_this_schema_first() {
        let header = RunnerLine::Header(Header::current()).to_json();
        let out = RunnerOutput::parse(&format!("{header}\n\n")).unwrap();
        assert_eq!(out.header, Some(Header::current()));
        let rec = RunnerLine::Run(Box::new(crate::record::tests::sim_record())).to_json();
        assert!(matches!(
            RunnerOutput::parse(&rec),
            Err(OutputError::NoHeader { line: 1 })
        ));
        let out = RunnerOutput::parse(&format!("{header}\n{rec}\n")).unwrap();
        assert_eq!(out.runs.len(), 1);
        let old = r#"{"line":"header","schema":1,"tool_version":"0"}"#;
        assert_eq!(
            RunnerOutput::parse(old),
            Err(OutputError::Schema { found: 1 })
        );
        assert!(matches!(
            RunnerOutput::parse(&format!("{header}\nnot json")),
            Err(OutputError::BadLine { line: 2, .. })
        ));
    }

    #[test]
    fn runner_reports_the_last_stderr_line_and_exit_code() {
        let r = Runner::new("sh");
        // `sh counts ...` fails: sh cannot open a script called `counts`.
        let e = r
            .run(&Invocation::Counts(ModelOpts::default()))
            .unwrap_err();
        assert!(e.exit_code().is_some_and(|c| c != 0), "{e}");
        assert!(e.to_string().contains("counts"), "{e}");
        let e = Runner::new("/nonexistent/forkbench")
            .run(&Invocation::Counts(ModelOpts::default()))
            .unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }), "{e}");
    }
}
