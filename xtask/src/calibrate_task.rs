//! `cargo xtask calibrate`: fit per-operation costs of the model against the real fork() on
//! this machine and write a cost profile. The fit lives in the `calibrate` crate.

use std::process::ExitCode;

pub use calibrate::CalibrateArgs as Flags;

pub fn run(a: &Flags) -> anyhow::Result<ExitCode> {
    let bin = crate::util::build_runner()?;
    let p = calibrate::run_calibrate(&crate::util::project_root(), &bin, a)?;
    println!("cost profile: {}", p.display());
    Ok(ExitCode::SUCCESS)
}
