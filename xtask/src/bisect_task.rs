//! `cargo xtask bisect`: find the commit that changed a metric (noise-aware; exact for op
//! counts). The search lives in the `bisect` crate; this is its task entry.

use std::process::ExitCode;

pub use bisect::cli::BisectArgs as Flags;

pub fn run(a: &Flags) -> anyhow::Result<ExitCode> {
    match bisect::cli::run(a, &crate::util::project_root()) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // The bisect crate's exit codes (e.g. "no change found") are part of its interface.
        Err(e) => {
            eprintln!("xtask: error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}
