//! Stand-alone driver for the calibrate crate until `cargo xtask calibrate|fidelity` is wired:
//! `cargo run --release -p calibrate --example cli -- calibrate|fidelity [ARGS]`. The workspace
//! root is the current directory and the runner is `target/release/forkbench`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fit per-operation costs against the real fork() on this machine
    Calibrate(calibrate::CalibrateArgs),
    /// Generate results/fidelity.md (with --measure: re-measure its inputs first)
    Fidelity(calibrate::FidelityArgs),
}

fn main() {
    let cli = Cli::parse();
    let root = std::env::current_dir().expect("cwd");
    let bin = root.join("target/release/forkbench");
    let r = match &cli.cmd {
        Cmd::Calibrate(a) => calibrate::run_calibrate(&root, &bin, a).map(|_| ()),
        Cmd::Fidelity(a) => calibrate::run_fidelity(&root, &bin, a).map(|_| ()),
    };
    if let Err(e) = r {
        eprintln!("calibrate: error: {e}");
        std::process::exit(2);
    }
}
