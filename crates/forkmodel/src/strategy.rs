//! The five fork-copy strategies of the LKML thread ("kernels"), named as the thread names
//! them, today's kernels (`current`), the stand-ins for the released kernels 6.1 and 6.12
//! (`v6.1`, `v6.12`), plus a test-only mutant. Each is a zero-sized type implementing
//! [`CopyStrategy`], so the copy loop is monomorphised per (arch, strategy); a [`StrategyId`]
//! (the contract's `Strategy`) picks one at run time, once, outside the hot loop.

/// How a strategy walks the PTEs of one page table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// v6.7: one PTE per `copy_present_pte`, which reads the PTE a second time.
    PerPteV67,
    /// v6.1: one PTE per `copy_present_pte`, which uses the value `copy_pte_range` loaded
    /// (6.1 dereferences the PTE pointer three times per PTE, but plainly, with nothing in
    /// between that writes memory, so the compiler emits one load).
    PerPteV61,
    /// Ryan v4: the arch says how many PTEs form a batch (`pte_batch_remaining`).
    ArchRemaining,
    /// `folio_pte_batch`; `hint` uses `pte_batch_hint`, `end` is how a batch is kept inside
    /// its folio.
    FolioPteBatch { hint: bool, end: BatchEnd },
}

/// How `folio_pte_batch` keeps a batch inside its folio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchEnd {
    /// v6.9: read the next PTE and stop when its PFN is past the folio's last page. A batch
    /// that ends at a folio end before `max_nr` pays one extra `ptep_get`.
    PfnCheck,
    /// ≈v6.15 (`folio_pte_batch_flags`): cap `max_nr` at the folio's remaining pages first;
    /// the loop never reads past the folio.
    FolioCap,
    /// Test-only mutant: neither; a batch may run into the next folio.
    Unbounded,
}

impl BatchEnd {
    /// The value of the copy loop's const generic for this end (const generics take no
    /// enums on stable Rust).
    pub const fn id(self) -> u8 {
        match self {
            BatchEnd::PfnCheck => 0,
            BatchEnd::FolioCap => 1,
            BatchEnd::Unbounded => 2,
        }
    }
}

/// A fork-copy strategy.
pub trait CopyStrategy: 'static {
    /// Which strategy this is.
    const ID: StrategyId;
    /// Its walk.
    const WALK: Walk;
}

/// The strategies' names are the contract's ([`contract::Strategy`]); this crate gives each
/// its type and walk (the `strategy!` list below and [`VisitStrategy::visit`]).
pub use contract::Strategy as StrategyId;

/// Run a [`StrategyVisitor`] with a strategy's type: the one run-time dispatch, outside the
/// hot loop. Adding a strategy means a variant in the contract and an arm here.
pub trait VisitStrategy {
    /// Run `visitor` with this strategy's type.
    fn visit<V: StrategyVisitor>(self, visitor: V) -> V::Output;
}

impl VisitStrategy for StrategyId {
    #[inline]
    fn visit<V: StrategyVisitor>(self, visitor: V) -> V::Output {
        match self {
            StrategyId::MmUnstable => visitor.visit::<MmUnstable>(),
            StrategyId::HugetlbRmapCleanups => visitor.visit::<HugetlbRmapCleanups>(),
            StrategyId::RyanV4 => visitor.visit::<RyanV4>(),
            StrategyId::ForkBatching => visitor.visit::<ForkBatching>(),
            StrategyId::Upstream => visitor.visit::<Upstream>(),
            StrategyId::Current => visitor.visit::<Current>(),
            StrategyId::V6_1 => visitor.visit::<V6_1>(),
            StrategyId::V6_12 => visitor.visit::<V6_12>(),
            StrategyId::OverrunMutant => visitor.visit::<OverrunMutant>(),
        }
    }
}

/// Something generic over a strategy type, run through [`VisitStrategy::visit`].
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
    ForkBatching, ForkBatching, Walk::FolioPteBatch { hint: false, end: BatchEnd::PfnCheck });
strategy!(
    /// v6.9 mainline (`upstream`).
    Upstream, Upstream, Walk::FolioPteBatch { hint: true, end: BatchEnd::PfnCheck });
strategy!(
    /// Today's mainline, ≈v6.15+ (`current`): the capped batch; its large-folio mapcount is
    /// [`contract::Strategy::effective_mapcount`], applied per fork by the model.
    Current, Current, Walk::FolioPteBatch { hint: true, end: BatchEnd::FolioCap });
strategy!(
    /// Debian's 6.1.176 (`v6.1`): the per-PTE loop with one PTE load per PTE.
    V6_1, V6_1, Walk::PerPteV61);
strategy!(
    /// Debian's 6.12.117 (`v6.12`): the hinted batch capped at the folio end (6.12.y carries
    /// the cap as a stable backport); its large-folio mapcount is
    /// [`contract::Strategy::effective_mapcount`]. The same walk as [`Current`], kept apart
    /// because `current` follows today's mainline and this one stays 6.12.
    V6_12, V6_12, Walk::FolioPteBatch { hint: true, end: BatchEnd::FolioCap });
strategy!(
    /// Test-only: batches may run past the folio end.
    OverrunMutant, OverrunMutant, Walk::FolioPteBatch { hint: true, end: BatchEnd::Unbounded });

#[cfg(test)]
mod tests {
    use super::*;

    struct Id;
    impl StrategyVisitor for Id {
        type Output = StrategyId;
        fn visit<S: CopyStrategy>(self) -> StrategyId {
            S::ID
        }
    }

    #[test]
    fn every_contract_strategy_visits_its_own_type() {
        for &id in StrategyId::ALL.iter().chain([&StrategyId::OverrunMutant]) {
            assert_eq!(id.visit(Id), id);
        }
        assert_eq!(
            <OverrunMutant as CopyStrategy>::WALK,
            Walk::FolioPteBatch {
                hint: true,
                end: BatchEnd::Unbounded
            }
        );
        assert_eq!(
            <Current as CopyStrategy>::WALK,
            Walk::FolioPteBatch {
                hint: true,
                end: BatchEnd::FolioCap
            }
        );
        assert_eq!(
            <V6_12 as CopyStrategy>::WALK,
            <Current as CopyStrategy>::WALK
        );
        assert_eq!(<V6_1 as CopyStrategy>::WALK, Walk::PerPteV61);
    }
}
