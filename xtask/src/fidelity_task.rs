//! `cargo xtask fidelity`: regenerate results/fidelity.md, the model beside every fork table
//! of the thread. The evaluation lives in the `calibrate` crate.

use std::process::ExitCode;

pub use calibrate::FidelityArgs as Flags;

pub fn run(a: &Flags) -> anyhow::Result<ExitCode> {
    // Only `--measure` and `--counts` run the model; checking, rendering and re-pricing need
    // no runner.
    let bin = if a.measure || a.counts {
        crate::util::build_runner()?
    } else {
        std::path::PathBuf::new()
    };
    let mut a = a.clone();
    if a.measure || a.counts {
        a.tool_rev = Some(crate::util::git_rev()).filter(|r| r != "unknown");
    }
    // `run_fidelity` says what it did ("wrote …" or "… is up to date").
    calibrate::run_fidelity(&crate::util::project_root(), &bin, &a)?;
    Ok(ExitCode::SUCCESS)
}
