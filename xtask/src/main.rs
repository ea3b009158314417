//! `cargo xtask`: thin orchestration of the suite, ten tasks, each a module with its flags
//! and a `run(&Flags) -> Result<ExitCode>`. `bench` runs a machine profile through the release
//! `forkbench` runner (driven only through the contract's typed invocation) and writes a result
//! file; `table` and `compare` read result files; `publish` renders results/*/README.md;
//! `report` draws SVG plots; `bisect` finds the commit that changed a metric; `calibrate` fits
//! the model's op costs to this machine; `fidelity` regenerates results/fidelity.md; `kernels`
//! fetches kernels under test, `lava` runs the plan on a LAVA lab's devices and `noise`
//! measures the between-session noise cross-file verdicts need. Bad input
//! is one line `xtask: error: …` and exit 2; `compare` exits 1 on a significant regression.

mod bench;
mod bisect_task;
mod build;
mod calibrate_task;
mod compare;
mod conditions;
mod cross_file;
mod exact;
mod exec;
mod fidelity_task;
mod kernels;
mod lava;
mod noise;
mod noise_file;
mod plan;
mod plots;
mod prereq;
mod profile;
mod progress;
mod publish;
mod select;
mod table;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "forkbench tasks",
    version
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run a machine profile and print the thread's tables
    Bench(bench::BenchArgs),
    /// Merge result files into the thread's tables (or extended/csv/json)
    Table(table::TableArgs),
    /// Compare two results; exit 1 on a significant regression beyond the threshold
    Compare(compare::CompareArgs),
    /// Render results/<machine>/README.md, results/README.md and the plots
    Publish(publish::PublishArgs),
    /// Write SVG plots
    Report(plots::ReportArgs),
    /// Find the commit that changed a metric (noise-aware; exact for op counts)
    Bisect(bisect_task::Flags),
    /// Fit per-operation costs of the model against the real fork() on this machine
    Calibrate(calibrate_task::Flags),
    /// Regenerate results/fidelity.md: the model beside every fork table of the thread
    Fidelity(fidelity_task::Flags),
    /// Fetch Debian kernel packages to boot with `bench --kernel`, or show what an image is
    Kernels(kernels::KernelsArgs),
    /// Run the real-fork plan on the devices of a LAVA lab: write jobs, submit, fetch results
    Lava(lava::LavaArgs),
    /// Measure this machine's between-session noise (cross-file verdicts need it)
    Noise(noise::NoiseArgs),
}

/// Usage errors as one line (`xtask: error: …`, exit 2); help and version print as usual.
fn parse() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    Cli::try_parse().map_err(|e| match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("{}", clap_error_line(&e.render().to_string()));
            ExitCode::from(2)
        }
    })
}

/// clap's error as one line: its message (up to the blank line before the usage block) and
/// its tips (`tip: a similar subcommand exists: 'bench'`), which say how to fix it.
fn clap_error_line(text: &str) -> String {
    let msg: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let msg = msg.join(" ");
    let msg = msg.strip_prefix("error: ").unwrap_or(&msg);
    let tips: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tip: "))
        .collect();
    let mut line = format!("xtask: error: {msg}");
    for t in tips {
        line.push_str("; ");
        line.push_str(t);
    }
    line.push_str(" (see cargo xtask --help)");
    line
}

fn main() -> ExitCode {
    hostenv::cleanup::die_quietly_on_broken_pipe();
    let cli = match parse() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = match &cli.task {
        Task::Bench(a) => bench::run(a),
        Task::Table(a) => table::run(a),
        Task::Compare(a) => compare::run(a),
        Task::Publish(a) => publish::run(a),
        Task::Report(a) => plots::run(a),
        Task::Bisect(a) => bisect_task::run(a),
        Task::Calibrate(a) => calibrate_task::run(a),
        Task::Fidelity(a) => fidelity_task::run(a),
        Task::Kernels(a) => kernels::run(a),
        Task::Lava(a) => lava::run(a),
        Task::Noise(a) => noise::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}

/// An error as one line: anyhow's chain joined by ": ", newlines folded, and a cause left out
/// when the message before it already ends with it (errors that print their source, such as
/// `path: os error`, would otherwise say the OS error twice).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !msg.is_empty() && msg.ends_with(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// clap's tips survive the one-line form: a misspelt task names the right one.
    #[test]
    fn clap_tips_are_kept() {
        let e = super::Cli::try_parse_from(["xtask", "publsh"])
            .err()
            .unwrap();
        let line = super::clap_error_line(&e.render().to_string());
        assert_eq!(
            line,
            "xtask: error: unrecognized subcommand 'publsh'; tip: a similar subcommand exists: \
             'publish' (see cargo xtask --help)"
        );
        let e = super::Cli::try_parse_from(["xtask", "bench", "--quik"])
            .err()
            .unwrap();
        let line = super::clap_error_line(&e.render().to_string());
        assert!(line.contains("unexpected argument '--quik'"), "{line}");
        assert!(
            line.contains("tip: a similar argument exists: '--quick'"),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
    }

    /// A failed save says the OS error once.
    #[test]
    fn os_errors_are_said_once() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let f = results::ResultFile::new("m", "l", "x", Default::default());
        let e = f.save_new(&file.join("sub/r.json")).unwrap_err();
        let e = anyhow::Error::new(e).context("saving r.json");
        let msg = super::one_line(&e);
        assert_eq!(msg.matches("Not a directory").count(), 1, "{msg}");
        assert!(msg.starts_with("saving r.json: "), "{msg}");
    }
}
