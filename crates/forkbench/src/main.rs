//! `forkbench`: the release-built runner. `counts` prints exact op counts of one model fork,
//! `sim` times model forks (JSON lines of run records with `--json`), `check` runs the
//! correctness oracle. Bad input is one error line and exit code 2; a failed check exits 1.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use forkbench::args::{
    UsageError, check_mem, parse_mapcount, parse_order, parse_size, parse_strategies,
};
use forkbench::check::{CheckLayouts, check};
use forkbench::sim::{SimSpec, counts, mapcount_name, sim};
use forkmodel::Mode;

#[derive(Parser)]
#[command(
    name = "forkbench",
    version,
    about = "Measure and explain what fork() costs when it copies page tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Exact op counts of one model fork (deterministic)
    Counts(ModelArgs),
    /// Time model forks: per-iteration timings of the page-table copy only
    Sim(SimArgs),
    /// Run the correctness oracle on the benchmark layout or random layouts
    Check(CheckArgs),
    /// Time the real fork() on this kernel
    Real(realfork::RealArgs),
    /// One `git bisect run` step: run a command, compare with recorded good/bad samples, exit 0 (good), 1 (bad) or 125 (skip)
    BisectRun(bisect::cli::BisectRunArgs),
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Page-table engine: x86_64 or arm64
    #[arg(long, default_value = "x86_64")]
    arch: String,
    /// arm64 contpte: on (v6.9 with fork helpers), off, basic (contpte without fork helpers)
    #[arg(long)]
    contpte: Option<String>,
    /// Strategy: mm-unstable, hugetlb-rmap-cleanups, ryan-v4, fork-batching, upstream, a comma list, or all
    #[arg(long, default_value = "all")]
    strategy: String,
    /// Folio order of the populated memory (0..=9)
    #[arg(long, default_value = "0")]
    order: String,
    /// Populated memory, e.g. 2M, 1G
    #[arg(long, default_value = "1G")]
    mem: String,
    /// fresh: restore the freshly-faulted parent before each fork; steady: fork the same parent again
    #[arg(long, default_value = "fresh")]
    mode: String,
    /// Mapcount model: per-page (v6.7-v6.10), per-page+large (v6.11+), large-only (CONFIG_NO_PAGE_MAPCOUNT)
    #[arg(long, default_value = "per-page")]
    mapcount: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SimArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Timed forks per run
    #[arg(long, default_value_t = 100)]
    iters: u32,
    /// Runs per strategy
    #[arg(long, default_value_t = 8)]
    runs: u32,
    /// Untimed forks before each run
    #[arg(long, default_value_t = 2)]
    warmup: u32,
    /// Pin to this CPU (validated against the allowed CPU set)
    #[arg(long)]
    cpu: Option<usize>,
    /// Seed of the per-run strategy order
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Count ops while timing (to measure what counting costs)
    #[arg(long)]
    count: bool,
    /// Privileged-op costs for a modelled time beside the measured one: tlbi=NS,flush_tlb_mm=NS or a file of NAME_ns = NS lines
    #[arg(long)]
    cost_model: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    /// Page-table engine: x86_64 or arm64
    #[arg(long, default_value = "x86_64")]
    arch: String,
    /// arm64 contpte: on, off, basic
    #[arg(long)]
    contpte: Option<String>,
    /// Strategies to check against each other
    #[arg(long, default_value = "all")]
    strategy: String,
    /// Folio order of the benchmark layout (ignored with --random)
    #[arg(long, default_value = "9")]
    order: String,
    /// Memory of the benchmark layout (ignored with --random)
    #[arg(long, default_value = "16M")]
    mem: String,
    /// Check this many random layouts instead
    #[arg(long)]
    random: Option<u32>,
    /// First seed for --random
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Mapcount model
    #[arg(long, default_value = "per-page")]
    mapcount: String,
    /// Make need_resched() true every N checks (exercises the restart path)
    #[arg(long)]
    resched_every: Option<u32>,
}

fn model_spec(m: &ModelArgs) -> Result<SimSpec, UsageError> {
    let order = parse_order(&m.order)?;
    let mem = parse_size(&m.mem)?;
    check_mem(mem, order)?;
    Ok(SimSpec {
        arch: m.arch.clone(),
        contpte: m.contpte.clone(),
        strategies: parse_strategies(&m.strategy)?,
        order,
        mem,
        mode: m.mode.parse::<Mode>().map_err(UsageError)?,
        mapcount: parse_mapcount(&m.mapcount)?,
        iters: 0,
        runs: 0,
        warmup: 0,
        seed: 0,
        count_while_timing: false,
        cost_model: None,
        cpu: None,
    })
}

enum Failure {
    /// Exit with this code, having said what there was to say.
    Code(u8),
    Usage(UsageError),
    Check(String),
    Other(anyhow::Error),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure::Usage(e)
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Counts(m) => {
            let spec = model_spec(&m)?;
            let (options, rows) = counts(&spec)?;
            for (s, ops) in rows {
                if m.json {
                    let mut obj = serde_json::Map::new();
                    obj.insert("arch".into(), spec.arch.clone().into());
                    obj.insert("options".into(), options.clone().into());
                    obj.insert("strategy".into(), s.name().into());
                    obj.insert("order".into(), spec.order.get().into());
                    obj.insert("mem_bytes".into(), spec.mem.into());
                    obj.insert("mode".into(), m.mode.clone().into());
                    obj.insert("mapcount".into(), mapcount_name(spec.mapcount).into());
                    for (k, v) in ops.fields() {
                        obj.insert(k.into(), v.into());
                    }
                    writeln!(out, "{}", serde_json::Value::Object(obj))
                        .map_err(|e| Failure::Other(e.into()))?;
                } else {
                    writeln!(
                        out,
                        "{} {} order {} mem {} ({}):",
                        spec.arch,
                        s,
                        spec.order.get(),
                        spec.mem,
                        m.mode
                    )
                    .map_err(|e| Failure::Other(e.into()))?;
                    for (k, v) in ops.fields() {
                        writeln!(out, "  {k:<24} {v}").map_err(|e| Failure::Other(e.into()))?;
                    }
                }
            }
        }
        Command::Sim(a) => {
            let mut spec = model_spec(&a.model)?;
            if a.iters == 0 || a.runs == 0 {
                return Err(UsageError("--iters and --runs must be at least 1".into()).into());
            }
            spec.iters = a.iters;
            spec.runs = a.runs;
            spec.warmup = a.warmup;
            spec.seed = a.seed;
            spec.count_while_timing = a.count;
            spec.cost_model = a
                .cost_model
                .as_deref()
                .map(forkbench::args::parse_cost_model_arg)
                .transpose()?;
            if let Some(cpu) = a.cpu {
                forkbench::pin::pin_to(cpu)?;
                spec.cpu = Some(cpu);
            }
            let json = a.model.json;
            let mut io_err = None;
            sim(&spec, &mut |rec| {
                let line = if json {
                    serde_json::to_string(&rec).expect("run record serialises")
                } else {
                    let mut v = rec.samples_ns.clone();
                    v.sort_unstable();
                    format!(
                        "{:<22} run {:>2}: mean {:>12.0} ns  median {:>10} ns  {:.2} ns/PTE",
                        rec.variant.strategy,
                        rec.run_index,
                        rec.mean_ns(),
                        v[v.len() / 2],
                        rec.extra["ns_per_pte"].as_f64().unwrap_or(f64::NAN)
                    )
                };
                if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                    io_err.get_or_insert(e);
                }
            })?;
            if let Some(e) = io_err {
                return Err(Failure::Other(e.into()));
            }
        }
        Command::BisectRun(a) => {
            drop(out);
            return match bisect::cli::bisect_run(&a) {
                Ok(0) => Ok(()),
                Ok(code) => Err(Failure::Code(code)),
                Err(e) => {
                    // Any code 1..=127 but 125 would mark the commit bad under `git bisect
                    // run`; 255 makes git stop the bisection instead.
                    eprintln!("forkbench: error: {e}");
                    Err(Failure::Code(255))
                }
            };
        }
        Command::Real(a) => {
            // Nothing is printed until every run is done and verified: an error, a refused
            // layout or Ctrl-C leaves no partial result behind.
            let recs = realfork::run(&a).map_err(|e| {
                if e.is_usage() {
                    Failure::Usage(UsageError(e.to_string()))
                } else {
                    Failure::Other(anyhow::anyhow!("{e}"))
                }
            })?;
            let mut lines = Vec::new();
            if a.json {
                for rec in &recs {
                    lines.push(serde_json::to_string(rec).map_err(|e| Failure::Other(e.into()))?);
                }
            } else {
                lines.extend(recs.iter().flat_map(realfork::summary::describe));
                lines.extend(realfork::summary::aggregate(&recs));
            }
            for line in lines {
                writeln!(out, "{line}").map_err(|e| Failure::Other(e.into()))?;
            }
            out.flush().map_err(|e| Failure::Other(e.into()))?;
        }
        Command::Check(a) => {
            let strategies = parse_strategies(&a.strategy)?;
            let layouts = match a.random {
                Some(0) => return Err(UsageError("--random must be at least 1".into()).into()),
                Some(count) => CheckLayouts::Random {
                    count,
                    seed: a.seed,
                },
                None => {
                    let order = parse_order(&a.order)?;
                    let mem = parse_size(&a.mem)?;
                    check_mem(mem, order)?;
                    CheckLayouts::Uniform { order, mem }
                }
            };
            if a.resched_every == Some(0) {
                return Err(UsageError("--resched-every must be at least 1".into()).into());
            }
            let mapcount = parse_mapcount(&a.mapcount)?;
            match check(
                &a.arch,
                a.contpte.as_deref(),
                &strategies,
                &layouts,
                mapcount,
                a.resched_every,
            )? {
                Ok(s) => {
                    writeln!(
                        out,
                        "ok: {} layout(s) x {} strategies, {} forks checked ({} batches in first forks), all strategies agree",
                        s.layouts,
                        strategies.len(),
                        s.forks,
                        s.batches
                    )
                    .map_err(|e| Failure::Other(e.into()))?;
                }
                Err((name, f)) => {
                    let mut msg = format!("{name}: {} (fork {})", f.strategy, f.fork);
                    for v in f.violations.iter().take(10) {
                        msg.push_str(&format!("\n  {v}"));
                    }
                    return Err(Failure::Check(msg));
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other bad-input error (clap adds a usage hint below it).
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("forkbench: {first} (see forkbench --help)");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Code(c)) => ExitCode::from(c),
        Err(Failure::Usage(e)) => {
            eprintln!("forkbench: error: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Check(msg)) => {
            eprintln!("forkbench: check FAILED: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Other(e)) => {
            eprintln!("forkbench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
