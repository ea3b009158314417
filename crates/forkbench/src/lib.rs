//! Library side of the `forkbench` runner: its command line ([`cli`], built from the contract's
//! option types), argument checks and the cost model ([`args`]), the three model commands
//! (`counts` and `sim` in [`sim`], `check` in [`check`]) and the knob-journal check
//! ([`doctor`]), kept out of `main.rs` so they can be tested. Each model command dispatches once
//! to a monomorphised (arch, strategy) instance; no logic of the model lives here.

#![deny(unsafe_code)]

pub mod args;
pub mod check;
pub mod cli;
pub mod doctor;
pub mod sim;

use contract::{Arch as ArchId, Contpte};
use forkmodel::Arch;

/// Something generic over an arch engine.
pub trait ArchVisitor {
    type Output;
    fn visit<A: Arch>(self) -> Self::Output;
}

/// Run `v` with the engine `arch`; `contpte` (arm64 only, default `ena`) picks the arm64
/// contpte configuration.
pub fn with_arch<V: ArchVisitor>(
    arch: ArchId,
    contpte: Option<Contpte>,
    v: V,
) -> Result<V::Output, args::UsageError> {
    use arch_arm64::{Arm64ContpteBasic, Arm64ContpteDis, Arm64ContpteEna};
    match arch {
        ArchId::X86_64 => match contpte {
            None => Ok(v.visit::<arch_x86_64::X86_64>()),
            Some(_) => Err(args::UsageError(
                "--contpte applies to --arch arm64 only".into(),
            )),
        },
        ArchId::Arm64 => match contpte.unwrap_or(Contpte::Ena) {
            Contpte::Ena => Ok(v.visit::<Arm64ContpteEna>()),
            Contpte::Dis => Ok(v.visit::<Arm64ContpteDis>()),
            Contpte::Basic => Ok(v.visit::<Arm64ContpteBasic>()),
        },
    }
}
