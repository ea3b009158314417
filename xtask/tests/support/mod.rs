//! What the `xtask` binary's integration tests share: running it.

use std::process::{Command, Output};

/// Run the `xtask` binary with `args`, stdin closed, and collect its output.
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}
