//! `forkbench check`: run the correctness oracle on the benchmark layout or on random layouts,
//! for every strategy, and report what broke.

use contract::{Arch as ArchId, Contpte};
use forkmodel::oracle::{CheckFailure, check_layout};
use forkmodel::{Arch, ForkConfig, Layout, MapcountModel, Order, StrategyId};

use crate::args::UsageError;

/// Which layouts to check.
#[derive(Debug, Clone)]
pub enum CheckLayouts {
    /// The benchmark layout: `mem` bytes of folios of `order`.
    Uniform { order: Order, mem: u64 },
    /// `count` random layouts from `seed`, `seed + 1`, ...
    Random { count: u32, seed: u64 },
}

/// What a successful check covered.
#[derive(Debug, Clone, Default)]
pub struct CheckSummary {
    pub layouts: u32,
    pub forks: u64,
    pub batches: u64,
}

/// Run the oracle. `Ok(Err(..))` is a correctness failure; `Err` is bad input.
pub fn check(
    arch: ArchId,
    contpte: Option<Contpte>,
    strategies: &[StrategyId],
    layouts: &CheckLayouts,
    mapcount: MapcountModel,
    resched_every: Option<u32>,
) -> Result<Result<CheckSummary, (String, CheckFailure)>, UsageError> {
    struct V<'a> {
        strategies: &'a [StrategyId],
        layouts: &'a CheckLayouts,
        cfg: ForkConfig,
    }
    impl crate::ArchVisitor for V<'_> {
        type Output = Result<Result<CheckSummary, (String, CheckFailure)>, UsageError>;
        fn visit<A: Arch>(self) -> Self::Output {
            let mut summary = CheckSummary::default();
            let list: Vec<(String, Layout)> = match *self.layouts {
                CheckLayouts::Uniform { order, mem } => vec![(
                    format!("order {} x {} bytes", order.get(), mem),
                    Layout::uniform(mem, order).map_err(|e| UsageError(e.to_string()))?,
                )],
                CheckLayouts::Random { count, seed } => (0..count as u64)
                    .map(|i| {
                        let s = seed.wrapping_add(i);
                        (
                            format!("random layout seed {s}"),
                            forkmodel::layout::random_layout(s),
                        )
                    })
                    .collect(),
            };
            for (name, layout) in list {
                match check_layout::<A>(&layout, self.cfg, self.strategies) {
                    Ok(results) => {
                        summary.layouts += 1;
                        summary.forks += 2 * results.len() as u64;
                        summary.batches += results.iter().map(|r| r.batches as u64).sum::<u64>();
                    }
                    Err(f) => return Ok(Err((name, f))),
                }
            }
            Ok(Ok(summary))
        }
    }
    crate::with_arch(
        arch,
        contpte,
        V {
            strategies,
            layouts,
            cfg: ForkConfig {
                mapcount,
                resched_every,
            },
        },
    )?
}
