//! `forkbench check`: run the correctness oracle on the benchmark layout or on random layouts,
//! for every strategy (each on its engine), and report what broke.

use contract::{Arch as ArchId, Contpte};
use forkmodel::oracle::{CheckFailure, Reference, StrategyCheck, check_layout_against};
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

/// Run the oracle. `Ok(Err(..))` is a correctness failure; `Err` is bad input. Strategies on
/// different engines (x86_64's `v6.1`) are checked on each engine and must still agree.
pub fn check(
    arch: ArchId,
    contpte: Option<Contpte>,
    strategies: &[StrategyId],
    layouts: &CheckLayouts,
    mapcount: MapcountModel,
    resched_every: Option<u32>,
) -> Result<Result<CheckSummary, (String, CheckFailure)>, UsageError> {
    struct V<'a> {
        layout: &'a Layout,
        strategies: &'a [StrategyId],
        cfg: ForkConfig,
        reference: &'a mut Option<Reference>,
    }
    impl crate::ArchVisitor for V<'_> {
        type Output = Result<Vec<StrategyCheck>, CheckFailure>;
        fn visit<A: Arch>(self) -> Self::Output {
            check_layout_against::<A>(self.layout, self.cfg, self.strategies, self.reference)
        }
    }
    let groups = crate::Engine::groups(arch, contpte, strategies)?;
    let list: Vec<(String, Layout)> = match *layouts {
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
    let cfg = ForkConfig {
        mapcount,
        resched_every,
    };
    let mut summary = CheckSummary::default();
    for (name, layout) in list {
        let mut reference = None;
        for (engine, strategies) in &groups {
            let v = V {
                layout: &layout,
                strategies,
                cfg,
                reference: &mut reference,
            };
            match engine.visit(v) {
                Ok(results) => {
                    summary.forks += 2 * results.len() as u64;
                    summary.batches += results.iter().map(|r| r.batches as u64).sum::<u64>();
                }
                Err(f) => return Ok(Err((name, f))),
            }
        }
        summary.layouts += 1;
    }
    Ok(Ok(summary))
}
