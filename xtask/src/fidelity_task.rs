//! `cargo xtask fidelity`: regenerate results/fidelity.md, the model beside every fork table
//! of the thread. The evaluation lives in the `calibrate` crate.

use std::process::ExitCode;

pub use calibrate::FidelityArgs as Flags;

pub fn run(a: &Flags) -> anyhow::Result<ExitCode> {
    let bin = crate::util::build_runner()?;
    let p = calibrate::run_fidelity(&crate::util::project_root(), &bin, a)?;
    println!("wrote {}", p.display());
    Ok(ExitCode::SUCCESS)
}
