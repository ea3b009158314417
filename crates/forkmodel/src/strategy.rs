//! The five fork-copy strategies of the LKML thread ("kernels"), named as the thread names
//! them, plus a test-only mutant. Each is a zero-sized type implementing [`CopyStrategy`], so
//! the copy loop is monomorphised per (arch, strategy); [`StrategyId`] picks one at run time,
//! once, outside the hot loop.

use std::fmt;
use std::str::FromStr;

/// How a strategy walks the PTEs of one page table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// v6.7: one PTE per `copy_present_pte`, which reads the PTE a second time.
    PerPteV67,
    /// Ryan v4: the arch says how many PTEs form a batch (`pte_batch_remaining`).
    ArchRemaining,
    /// v6.9 `folio_pte_batch`; `hint` uses `pte_batch_hint`, `folio_end_check` is the
    /// same-folio test (only the mutant turns it off).
    FolioPteBatch { hint: bool, folio_end_check: bool },
}

/// A fork-copy strategy.
pub trait CopyStrategy: 'static {
    /// Which strategy this is.
    const ID: StrategyId;
    /// Its walk.
    const WALK: Walk;
}

/// Names of the strategies as the thread uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StrategyId {
    /// `mm-unstable`: v6.7 per-PTE loop, two `ptep_get` per present PTE.
    MmUnstable,
    /// `hugetlb-rmap-cleanups`: the same loop on top of David's rmap API cleanups
    /// (`folio_try_dup_anon_rmap_pte` instead of `page_try_dup_anon_rmap`); identical counts.
    HugetlbRmapCleanups,
    /// `ryan-v4`: Ryan's v4 02/16, arch `pte_batch_remaining`, `ptep_set_wrprotects`,
    /// `set_ptes_full`, one `ptep_get` per batch.
    RyanV4,
    /// `fork-batching`: David's Dec 2023 prototype, `folio_pte_batch` with `ptep_get` on every
    /// PTE and no arch hint.
    ForkBatching,
    /// `upstream`: v6.9+, `folio_pte_batch` + `pte_batch_hint`, `wrprotect_ptes`, `set_ptes`.
    Upstream,
    /// Test-only mutant: `upstream` without the same-folio stop (the "Bad page state" bug).
    #[doc(hidden)]
    OverrunMutant,
}

impl StrategyId {
    /// The five real strategies, baseline first.
    pub const ALL: [StrategyId; 5] = [
        StrategyId::MmUnstable,
        StrategyId::HugetlbRmapCleanups,
        StrategyId::RyanV4,
        StrategyId::ForkBatching,
        StrategyId::Upstream,
    ];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            StrategyId::MmUnstable => "mm-unstable",
            StrategyId::HugetlbRmapCleanups => "hugetlb-rmap-cleanups",
            StrategyId::RyanV4 => "ryan-v4",
            StrategyId::ForkBatching => "fork-batching",
            StrategyId::Upstream => "upstream",
            StrategyId::OverrunMutant => "overrun-mutant",
        }
    }

    /// Run `visitor` with this strategy's type.
    pub fn visit<V: StrategyVisitor>(self, visitor: V) -> V::Output {
        match self {
            StrategyId::MmUnstable => visitor.visit::<MmUnstable>(),
            StrategyId::HugetlbRmapCleanups => visitor.visit::<HugetlbRmapCleanups>(),
            StrategyId::RyanV4 => visitor.visit::<RyanV4>(),
            StrategyId::ForkBatching => visitor.visit::<ForkBatching>(),
            StrategyId::Upstream => visitor.visit::<Upstream>(),
            StrategyId::OverrunMutant => visitor.visit::<OverrunMutant>(),
        }
    }
}

impl fmt::Display for StrategyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown strategy '{0}' (expected one of: mm-unstable, hugetlb-rmap-cleanups, ryan-v4, fork-batching, upstream)"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for StrategyId {
    type Err = UnknownStrategy;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyId::ALL
            .into_iter()
            .find(|id| id.name() == s)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
}

/// Something generic over a strategy type, run through [`StrategyId::visit`].
pub trait StrategyVisitor {
    type Output;
    fn visit<S: CopyStrategy>(self) -> Self::Output;
}

macro_rules! strategy {
    ($(#[$doc:meta])* $ty:ident, $id:ident, $walk:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $ty;
        impl CopyStrategy for $ty {
            const ID: StrategyId = StrategyId::$id;
            const WALK: Walk = $walk;
        }
    };
}

strategy!(
    /// v6.7 per-PTE copy (`mm-unstable`).
    MmUnstable, MmUnstable, Walk::PerPteV67);
strategy!(
    /// v6.7 loop with folio rmap API (`hugetlb-rmap-cleanups`).
    HugetlbRmapCleanups, HugetlbRmapCleanups, Walk::PerPteV67);
strategy!(
    /// Ryan Roberts' v4 (`ryan-v4`).
    RyanV4, RyanV4, Walk::ArchRemaining);
strategy!(
    /// David Hildenbrand's prototype (`fork-batching`).
    ForkBatching, ForkBatching, Walk::FolioPteBatch { hint: false, folio_end_check: true });
strategy!(
    /// v6.9+ mainline (`upstream`).
    Upstream, Upstream, Walk::FolioPteBatch { hint: true, folio_end_check: true });
strategy!(
    /// Test-only: batches may run past the folio end.
    OverrunMutant, OverrunMutant, Walk::FolioPteBatch { hint: true, folio_end_check: false });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_mutant_is_not_selectable() {
        for id in StrategyId::ALL {
            assert_eq!(id.name().parse::<StrategyId>(), Ok(id));
        }
        assert!("overrun-mutant".parse::<StrategyId>().is_err());
        let e = "v6.7".parse::<StrategyId>().unwrap_err();
        assert!(e.to_string().contains("unknown strategy 'v6.7'"));
    }
}
