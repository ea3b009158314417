//! Library side of the `forkbench` runner: its command line ([`cli`], built from the contract's
//! option types), argument checks and the cost model ([`args`]), the three model commands
//! (`counts` and `sim` in [`sim`], `check` in [`check`]) and the knob-journal check
//! ([`doctor`]), kept out of `main.rs` so they can be tested. Each model command dispatches once
//! per [`Engine`] to a monomorphised (arch, strategy) instance; no logic of the model lives
//! here.

#![deny(unsafe_code)]

pub mod args;
pub mod check;
pub mod cli;
pub mod doctor;
pub mod sim;

use contract::{Arch as ArchId, Contpte, Strategy, X86PteCode};
use forkmodel::Arch;

/// Something generic over an arch engine.
pub trait ArchVisitor {
    type Output;
    fn visit<A: Arch>(self) -> Self::Output;
}

/// One model engine: the arch, arm64's contpte configuration (a kernel config choice, so the
/// caller's) and x86_64's PTE code (fixed by the kernel version, so the strategy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Engine {
    pub arch: ArchId,
    /// arm64 only; `None` = the default (`ena`).
    pub contpte: Option<Contpte>,
    /// x86_64 only.
    pub x86: X86PteCode,
}

impl Engine {
    /// The engine `strategy` runs on for `arch` and `contpte`.
    pub fn for_strategy(
        arch: ArchId,
        contpte: Option<Contpte>,
        strategy: Strategy,
    ) -> Result<Engine, args::UsageError> {
        if contpte.is_some() && arch != ArchId::Arm64 {
            return Err(args::UsageError(
                "--contpte applies to --arch arm64 only".into(),
            ));
        }
        Ok(Engine {
            arch,
            contpte,
            x86: strategy.x86_pte_code(),
        })
    }

    /// Run `v` with this engine.
    pub fn visit<V: ArchVisitor>(self, v: V) -> V::Output {
        use arch_arm64::{Arm64ContpteBasic, Arm64ContpteDis, Arm64ContpteEna};
        use arch_x86_64::{X86_64, X86_64NoSavedDirty};
        match self.arch {
            ArchId::X86_64 => match self.x86 {
                X86PteCode::SavedDirty => v.visit::<X86_64>(),
                X86PteCode::NoSavedDirty => v.visit::<X86_64NoSavedDirty>(),
            },
            ArchId::Arm64 => match self.contpte.unwrap_or(Contpte::Ena) {
                Contpte::Ena => v.visit::<Arm64ContpteEna>(),
                Contpte::Dis => v.visit::<Arm64ContpteDis>(),
                Contpte::Basic => v.visit::<Arm64ContpteBasic>(),
            },
        }
    }

    /// The engines `strategies` need, each with its strategies, in order of first use. On
    /// arm64 that is one engine; on x86_64 one per PTE code (`v6.1` has its own).
    pub fn groups(
        arch: ArchId,
        contpte: Option<Contpte>,
        strategies: &[Strategy],
    ) -> Result<Vec<(Engine, Vec<Strategy>)>, args::UsageError> {
        let mut groups: Vec<(Engine, Vec<Strategy>)> = Vec::new();
        for &s in strategies {
            let e = Engine::for_strategy(arch, contpte, s)?;
            // arm64 ignores the x86 code: every strategy shares its one engine.
            let key = |g: &Engine| g.arch == ArchId::Arm64 || g.x86 == e.x86;
            match groups.iter_mut().find(|(g, _)| key(g)) {
                Some((_, list)) => list.push(s),
                None => groups.push((e, vec![s])),
            }
        }
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_splits_v6_1_off_and_arm64_keeps_one_engine() {
        use Strategy::*;
        let list = [MmUnstable, V6_1, Current, V6_12];
        let g = Engine::groups(ArchId::X86_64, None, &list).unwrap();
        let shape: Vec<(X86PteCode, Vec<Strategy>)> =
            g.iter().map(|(e, s)| (e.x86, s.clone())).collect();
        assert_eq!(
            shape,
            [
                (X86PteCode::SavedDirty, vec![MmUnstable, Current, V6_12]),
                (X86PteCode::NoSavedDirty, vec![V6_1]),
            ]
        );
        let g = Engine::groups(ArchId::Arm64, Some(Contpte::Dis), &list).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].1, list);
        let e = Engine::groups(ArchId::X86_64, Some(Contpte::Dis), &list).unwrap_err();
        assert_eq!(e.0, "--contpte applies to --arch arm64 only");
    }
}
