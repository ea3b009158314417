//! The runner's command line. `counts`, `sim` and `real` take the contract's option structs
//! ([`contract::ModelOpts`], [`contract::SimOpts`], [`contract::RealOpts`]) as they are, plus
//! `--json`, so what a driver renders with [`contract::Invocation::args`] is exactly what this
//! parses. `check` has its own flags, spelled with the contract's types; so has `doctor`.

use clap::{Args, Parser, Subcommand};
use contract::{
    Arch, Contpte, Mapcount, ModelOpts, ModelOrder, RealOpts, SimOpts, Size, Strategies,
};

#[derive(Parser)]
#[command(
    name = "forkbench",
    version,
    about = "Measure and explain what fork() costs when it copies page tables"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Exact op counts of one model fork (deterministic)
    Counts(CountsArgs),
    /// Time model forks: per-iteration timings of the page-table copy only
    Sim(SimArgs),
    /// Run the correctness oracle on the benchmark layout or random layouts
    Check(CheckArgs),
    /// Time the real fork() on this kernel
    Real(RealArgs),
    /// One `git bisect run` step: run a command, compare with recorded good/bad samples, exit 0 (good), 1 (bad) or 125 (skip)
    BisectRun(bisect::cli::BisectRunArgs),
    /// Report sysfs knobs a killed `real` run left switched (from the knob journal); exit 1 if one is stale
    Doctor(DoctorArgs),
    /// Run a guest plan (the `real` steps a kernel-under-test guest runs) in this userspace,
    /// printing the guest's framed records on stdout: a lab board with its own rootfs
    RunPlan(RunPlanArgs),
}

/// `forkbench run-plan`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RunPlanArgs {
    /// The plan (JSON, as `cargo xtask lava testdef` writes it; non-interactive)
    pub plan: std::path::PathBuf,
}

/// `forkbench doctor`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct DoctorArgs {
    /// Put every stale knob back to its journalled original and drop the entries of dead runs
    #[arg(long)]
    pub repair: bool,
    /// The knob journal to read (default: $FORKBENCH_KNOB_JOURNAL, else /run/forkbench/knobs.json
    /// as root, else $XDG_RUNTIME_DIR/forkbench/knobs.json or /tmp/forkbench-<uid>/knobs.json)
    #[arg(long, value_name = "PATH")]
    pub journal: Option<std::path::PathBuf>,
}

/// `forkbench counts`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct CountsArgs {
    #[command(flatten)]
    pub opts: ModelOpts,
    /// Print JSON lines: a header, then one counts row per strategy
    #[arg(long)]
    pub json: bool,
}

/// `forkbench sim`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct SimArgs {
    #[command(flatten)]
    pub opts: SimOpts,
    /// Print JSON lines: a header, then one run record per strategy and run
    #[arg(long)]
    pub json: bool,
}

/// `forkbench real`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RealArgs {
    #[command(flatten)]
    pub opts: RealOpts,
    /// Print JSON lines: a header, the invocation's context, then one run record per run
    #[arg(long)]
    pub json: bool,
}

/// `forkbench check`.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct CheckArgs {
    /// Page-table engine
    #[arg(long, default_value_t = Arch::X86_64)]
    pub arch: Arch,
    /// arm64 contpte: dis, ena (default on arm64), basic
    #[arg(long)]
    pub contpte: Option<Contpte>,
    /// Strategies to check against each other: a comma list, or all
    #[arg(long = "strategy", default_value = "all")]
    pub strategies: Strategies,
    /// Folio order of the benchmark layout (ignored with --random)
    #[arg(long, default_value = "9")]
    pub order: ModelOrder,
    /// Memory of the benchmark layout (ignored with --random)
    #[arg(long, default_value = "16M")]
    pub mem: Size,
    /// Check this many random layouts instead
    #[arg(long)]
    pub random: Option<u32>,
    /// First seed for --random
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Mapcount model: per-page, per-page+large, large-only (`current` runs per-page as
    /// per-page+large)
    #[arg(long, default_value_t = Mapcount::PerPage)]
    pub mapcount: Mapcount,
    /// Make need_resched() true every N checks (exercises the restart path)
    #[arg(long)]
    pub resched_every: Option<u32>,
}
