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
pub const ARCHES: &[&str] = &["x86_64", "arm64"];

/// Something generic over an arch engine.
pub trait ArchVisitor {
    type Output;
    fn visit<A: Arch>(self) -> Self::Output;
}

/// Run `v` with the engine called `name`; `contpte` (`on`, `off`, `basic`; arm64 only,
/// default `on`) picks the arm64 contpte configuration.
pub fn with_arch<V: ArchVisitor>(
    name: &str,
    contpte: Option<&str>,
    v: V,
) -> Result<V::Output, args::UsageError> {
    use arch_arm64::{Arm64ContpteBasic, Arm64ContpteDis, Arm64ContpteEna};
    match name {
        "x86_64" | "x86-64" | "x86" => match contpte {
            None => Ok(v.visit::<arch_x86_64::X86_64>()),
            Some(_) => Err(args::UsageError(
                "--contpte applies to --arch arm64 only".into(),
            )),
        },
        "arm64" | "aarch64" => match contpte.unwrap_or("on") {
            "on" | "ena" | "contpte-ena" => Ok(v.visit::<Arm64ContpteEna>()),
            "off" | "dis" | "contpte-dis" => Ok(v.visit::<Arm64ContpteDis>()),
            "basic" | "contpte-basic" => Ok(v.visit::<Arm64ContpteBasic>()),
            other => Err(args::UsageError(format!(
                "unknown --contpte '{other}' (expected on, off or basic)"
            ))),
        },
        other => Err(args::UsageError(format!(
            "unknown arch '{other}' (available: {})",
            ARCHES.join(", ")
        ))),
    }
}
