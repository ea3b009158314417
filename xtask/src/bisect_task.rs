//! `cargo xtask bisect`: find the commit that changed a metric (noise-aware; exact for op
//! counts), or with `--kernel-tree DIR` the kernel commit that changed fork()'s cost (each
//! revision built, booted in QEMU, measured). The search lives in the `bisect` crate; this is
//! its task entry.

use std::process::ExitCode;

pub use bisect::cli::BisectArgs as Flags;

pub fn run(a: &Flags) -> anyhow::Result<ExitCode> {
    if a.kernel.kernel_tree.is_some() {
        // A signal kills the guests' QEMUs (hostenv's cleanup tracks them) and sets the
        // bisection's stop flag; the search then unwinds, removes its worktrees, writes its log
        // and exits 130, instead of the process dying by the signal with worktrees left.
        hostenv::cleanup::keep_running_on_signal();
    }
    match bisect::cli::run(a, &crate::util::project_root()) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // The bisect crate's exit codes (e.g. "no change found") are part of its interface.
        Err(e) => {
            eprintln!("xtask: error: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
    }
}
