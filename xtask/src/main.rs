//! `cargo xtask`: thin orchestration. `bench` builds the release `forkbench` runner, runs the
//! model for every strategy at order 0 and order 9 (strategies interleaved run by run inside
//! each runner call), saves every raw sample under `results/`, and prints the thread's
//! relative-mean table per order.

mod bench;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "forkbench tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the suite and print the thread's tables
    Bench(bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let r = match cli.task {
        Task::Bench(a) => bench::run(&a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
