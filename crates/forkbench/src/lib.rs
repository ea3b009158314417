//! Library side of the `forkbench` runner: argument types and the three model commands
//! (`counts`, `sim`, `check`), kept out of `main.rs` so they can be tested. Each command
//! dispatches once to a monomorphised (arch, strategy) instance; no logic of the model lives
//! here.

#![deny(unsafe_code)]

pub mod args;
pub mod check;
pub mod pin;
pub mod sim;

use forkmodel::Arch;

/// Model engines this build knows.
pub const ARCHES: &[&str] = &["x86_64"];

/// Something generic over an arch engine.
pub trait ArchVisitor {
    type Output;
    fn visit<A: Arch>(self) -> Self::Output;
}

/// Run `v` with the engine called `name`.
pub fn with_arch<V: ArchVisitor>(name: &str, v: V) -> Result<V::Output, args::UsageError> {
    match name {
        "x86_64" | "x86-64" | "x86" => Ok(v.visit::<arch_x86_64::X86_64>()),
        "arm64" | "aarch64" => Err(args::UsageError(
            "arch 'arm64' is not built yet (the arm64/contpte engine is a separate issue); available: x86_64".into(),
        )),
        other => Err(args::UsageError(format!(
            "unknown arch '{other}' (available: {})",
            ARCHES.join(", ")
        ))),
    }
}
