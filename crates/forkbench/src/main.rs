//! `forkbench`: the release-built runner, with seven subcommands. `counts` prints exact op
//! counts of one model fork, `sim` times model forks, `check` runs the correctness oracle,
//! `real` times the real fork() on this kernel, `bisect-run` is one `git bisect run` step, and
//! `doctor` reports (and with `--repair` restores) sysfs knobs a killed run left switched, and
//! `run-plan` runs a guest plan in this userspace with the guest's framed output (a lab board).
//! With `--json`, `counts`, `sim` and `real` print the contract's runner lines (a header first).
//! Bad input is one error line and exit code 2; a layout this host cannot give exits 3 (drivers
//! record a skip); a failed check exits 1. A `bisect-run` step exits 0 (good), 1 (bad) or 125
//! (skip), and 255 for anything else, a panic included.
//! Started as PID 1 (the `/init` of a guest's initramfs) it is the guest's init instead:
//! `guest::init::run_as_init` runs the plan in the initramfs and powers the guest off.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use contract::{Header, RunnerLine};
use forkbench::args::{UsageError, check_mem};
use forkbench::check::{CheckLayouts, check};
use forkbench::cli::{Cli, Command};
use forkbench::sim::{SimSpec, counts, folio_order, sim};

enum Failure {
    /// Exit with this code, having said what there was to say.
    Code(u8),
    Usage(UsageError),
    /// This host cannot do it (exit 3; drivers skip).
    Unsupported(String),
    Check(String),
    Other(anyhow::Error),
}

impl From<UsageError> for Failure {
    fn from(e: UsageError) -> Self {
        Failure::Usage(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Other(e.into())
    }
}

fn header() -> String {
    RunnerLine::Header(Header::current()).to_json()
}

fn run(cli: Cli) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Counts(a) => {
            let spec = SimSpec::counts(&a.opts)?;
            let rows = counts(&spec)?;
            if a.json {
                writeln!(out, "{}", header())?;
            }
            for row in rows {
                if a.json {
                    writeln!(out, "{}", RunnerLine::Counts(Box::new(row)).to_json())?;
                    continue;
                }
                // x86_64's PTE code follows the strategy's kernel; only the pre-v6.6 one is
                // named, e.g. `v6.1`'s.
                let code = row.strategy.x86_pte_code();
                let x86 = if row.arch == contract::Arch::X86_64
                    && code != contract::X86PteCode::SavedDirty
                {
                    format!(", x86 PTE code {}", code.name())
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{}{} {} order {} mem {} ({}{}{x86}):",
                    row.arch,
                    row.contpte
                        .map(|c| format!(" {}", c.label()))
                        .unwrap_or_default(),
                    row.strategy,
                    row.order,
                    row.mem_bytes,
                    row.mode,
                    // The thread's per-page is the default; any other model is named, e.g.
                    // `current`'s per-page+large.
                    if row.mapcount == contract::Mapcount::PerPage {
                        String::new()
                    } else {
                        format!(", mapcount {}", row.mapcount)
                    }
                )?;
                for (k, v) in &row.ops {
                    writeln!(out, "  {k:<24} {v}")?;
                }
            }
            out.flush()?;
        }
        Command::Sim(a) => {
            let spec = SimSpec::sim(&a.opts)?;
            // Pinned for the whole simulation; the guard puts the mask back at the end.
            let _pinned = spec
                .cpu
                .map(hostenv::cpu::pin_current_thread)
                .transpose()
                .map_err(|e| UsageError(e.to_string()))?;
            if a.json {
                writeln!(out, "{}", header())?;
            }
            let mut io_err = None;
            sim(&spec, &mut |rec| {
                let line = if a.json {
                    RunnerLine::Run(Box::new(rec)).to_json()
                } else {
                    let mut v = rec.samples_ns.clone();
                    v.sort_unstable();
                    format!(
                        "{:<22} run {:>2}: mean {:>12.0} ns  median {:>10} ns  {:.2} ns/PTE",
                        rec.variant.row_name(),
                        rec.run_index,
                        rec.mean_ns(),
                        v[v.len() / 2],
                        rec.ns_per_pte().unwrap_or(f64::NAN)
                    )
                };
                if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                    io_err.get_or_insert(e);
                }
            })?;
            if let Some(e) = io_err {
                return Err(e.into());
            }
        }
        Command::BisectRun(a) => {
            drop(out);
            // Internal errors exit 255 (git stops the bisection): any code 1..=127 but 125
            // would mark the commit bad under `git bisect run`.
            return match bisect::cli::bisect_run_step(&a, "forkbench") {
                0 => Ok(()),
                code => Err(Failure::Code(code)),
            };
        }
        Command::RunPlan(a) => {
            drop(out);
            let text = std::fs::read_to_string(&a.plan)
                .map_err(|e| UsageError(format!("{}: {e}", a.plan.display())))?;
            let plan = guest::plan::GuestPlan::from_json(&text)
                .map_err(|e| UsageError(format!("{}: {e}", a.plan.display())))?;
            if plan.interactive {
                return Err(UsageError(format!(
                    "{}: an interactive plan waits for a host's commands; run-plan runs \
                     non-interactive plans",
                    a.plan.display()
                ))
                .into());
            }
            return guest::init::run_plan_here(&plan)
                .map_err(|e| Failure::Other(anyhow::anyhow!(e)));
        }
        Command::Doctor(a) => {
            drop(out);
            return match forkbench::doctor::run(&a) {
                0 => Ok(()),
                code => Err(Failure::Code(code)),
            };
        }
        Command::Real(a) => {
            // Nothing is printed until every run is done and verified: an error, a refused
            // layout or Ctrl-C leaves no partial result behind.
            let done = realfork::run(&a.opts).map_err(|e| match e.exit_code() {
                contract::EXIT_USAGE => Failure::Usage(UsageError(e.to_string())),
                contract::EXIT_UNSUPPORTED => Failure::Unsupported(e.to_string()),
                _ => Failure::Other(anyhow::anyhow!("{e}")),
            })?;
            let mut lines = Vec::new();
            if a.json {
                lines.push(header());
                lines.push(RunnerLine::Context(Box::new(done.context.clone())).to_json());
                lines.extend(
                    done.runs
                        .iter()
                        .map(|r| RunnerLine::Run(Box::new(r.clone())).to_json()),
                );
            } else {
                lines.extend(
                    done.runs
                        .iter()
                        .flat_map(|r| realfork::summary::describe(&done.context, r)),
                );
                lines.extend(realfork::summary::aggregate(&done.context, &done.runs));
            }
            for line in lines {
                writeln!(out, "{line}")?;
            }
            out.flush()?;
        }
        Command::Check(a) => {
            let strategies = a.strategies.0;
            let layouts = match a.random {
                Some(0) => return Err(UsageError("--random must be at least 1".into()).into()),
                Some(count) => CheckLayouts::Random {
                    count,
                    seed: a.seed,
                },
                None => {
                    let order = folio_order(a.order);
                    check_mem(a.mem.bytes(), order)?;
                    CheckLayouts::Uniform {
                        order,
                        mem: a.mem.bytes(),
                    }
                }
            };
            if a.resched_every == Some(0) {
                return Err(UsageError("--resched-every must be at least 1".into()).into());
            }
            match check(
                a.arch,
                a.contpte,
                &strategies,
                &layouts,
                a.mapcount,
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
                    )?;
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
    // As a guest's init there are no arguments to parse; anywhere else PID 1 is never us.
    if std::process::id() == 1 {
        guest::init::run_as_init();
    }
    // Under `git bisect run`, a panic's exit code 101 and a usage error's 2 would both read as
    // "this commit is bad": a bisect-run step panics and fails with 255 (git stops) instead.
    let bisect_step = std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "bisect-run");
    if bisect_step {
        bisect::cli::abort_bisect_on_panic();
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other bad-input error: clap's message up to the blank line
            // before its usage block, so `[possible values: ...]` and tips stay.
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let msg = if msg.is_empty() {
                "error: invalid arguments".to_string()
            } else {
                msg.join(" ")
            };
            eprintln!("forkbench: {msg} (see forkbench --help)");
            return ExitCode::from(if bisect_step {
                bisect::cli::EXIT_ABORT_BISECT
            } else {
                2
            });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Code(c)) => ExitCode::from(c),
        Err(Failure::Usage(e)) => {
            eprintln!("forkbench: error: {e}");
            ExitCode::from(contract::EXIT_USAGE)
        }
        Err(Failure::Unsupported(msg)) => {
            eprintln!("forkbench: not supported here: {msg}");
            ExitCode::from(contract::EXIT_UNSUPPORTED)
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
