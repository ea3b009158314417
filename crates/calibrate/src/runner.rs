//! The runner calls calibration and fidelity make, typed: a [`ModelSpec`] and [`Timing`] become
//! a [`contract::Invocation`] (`counts`, `sim` or `real`), run by [`contract::Runner`], whose
//! typed output is handed back.

use std::collections::BTreeMap;

use contract::{
    Arch, Contpte, Invocation, Mapcount, Mode, ModelOpts, ModelOrder, OpCounter, RealLayout,
    RealOpts, RunRecord, Runner, Sched, SimOpts, Size, Strategies, Strategy,
};

use crate::Result;

/// Op counts of one fork.
pub type Ops = BTreeMap<OpCounter, u64>;

/// What to model: engine and knobs shared by `counts` and `sim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub arch: Arch,
    /// arm64 only (`None`: the runner's default, `ena`).
    pub contpte: Option<Contpte>,
    pub order: ModelOrder,
    pub mem: Size,
    pub mode: Mode,
    pub mapcount: Mapcount,
}

impl ModelSpec {
    fn opts(&self, strategies: &[Strategy]) -> ModelOpts {
        ModelOpts {
            arch: self.arch,
            contpte: self.contpte,
            strategies: Strategies(strategies.to_vec()),
            order: self.order,
            mem: self.mem,
            mode: self.mode,
            mapcount: self.mapcount,
        }
    }
}

/// Timing knobs shared by `sim` and `real`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub iters: u32,
    pub runs: u32,
    pub cpu: Option<usize>,
}

/// The `counts` invocation for `strategies`.
pub fn counts_invocation(spec: &ModelSpec, strategies: &[Strategy]) -> Invocation {
    Invocation::Counts(spec.opts(strategies))
}

/// The `sim` invocation for `strategies`: one record per (strategy, run).
pub fn sim_invocation(spec: &ModelSpec, strategies: &[Strategy], t: &Timing) -> Invocation {
    Invocation::Sim(SimOpts {
        model: spec.opts(strategies),
        iters: t.iters,
        runs: t.runs,
        cpu: t.cpu,
        ..SimOpts::default()
    })
}

/// The `real` invocation for one layout.
pub fn real_invocation(
    layout: RealLayout,
    mem: Size,
    mode: Mode,
    sched: Sched,
    t: &Timing,
) -> Invocation {
    Invocation::Real(RealOpts {
        mem,
        mode,
        sched,
        iters: t.iters,
        runs: t.runs,
        cpu: t.cpu,
        ..RealOpts::new(layout)
    })
}

/// Exact op counts of one fork per strategy (`forkbench counts`).
pub fn counts(
    runner: &Runner,
    spec: &ModelSpec,
    strategies: &[Strategy],
) -> Result<BTreeMap<Strategy, Ops>> {
    let out = runner.run(&counts_invocation(spec, strategies))?;
    Ok(out
        .counts
        .into_iter()
        .map(|row| (row.strategy, row.ops))
        .collect())
}

/// Timed model forks (`forkbench sim`): one record per (strategy, run).
pub fn sim(
    runner: &Runner,
    spec: &ModelSpec,
    strategies: &[Strategy],
    t: &Timing,
) -> Result<Vec<RunRecord>> {
    Ok(runner.run(&sim_invocation(spec, strategies, t))?.runs)
}

/// Timed real forks of one layout (`forkbench real`).
pub fn real(
    runner: &Runner,
    layout: RealLayout,
    mem: Size,
    mode: Mode,
    sched: Sched,
    t: &Timing,
) -> Result<Vec<RunRecord>> {
    Ok(runner
        .run(&real_invocation(layout, mem, mode, sched, t))?
        .runs)
}

/// Mean and sample standard deviation of the run means (the thread's unit: one run).
pub fn run_stats(recs: &[RunRecord]) -> (f64, f64) {
    let means: Vec<f64> = recs.iter().map(RunRecord::mean_ns).collect();
    stats::mean_sd(&means)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec {
            arch: Arch::Arm64,
            contpte: Some(Contpte::Dis),
            order: ModelOrder::new(9).unwrap(),
            mem: Size(1 << 30),
            mode: Mode::Steady,
            mapcount: Mapcount::PerPageAndLarge,
        }
    }

    #[test]
    fn invocations_carry_every_knob() {
        let both = [Strategy::Upstream, Strategy::MmUnstable];
        assert_eq!(
            counts_invocation(&spec(), &both).args().join(" "),
            "counts --arch arm64 --contpte dis --strategy upstream,mm-unstable --order 9 \
             --mem 1G --mode steady --mapcount per-page+large --json"
        );
        let t = Timing {
            iters: 50,
            runs: 3,
            cpu: Some(1),
        };
        let sim = sim_invocation(&spec(), &both[..1], &t).args().join(" ");
        assert!(
            sim.starts_with("sim --arch arm64 --contpte dis --strategy upstream --order 9")
                && sim.contains("--iters 50 --runs 3")
                && sim.contains("--cpu 1"),
            "{sim}"
        );
        let real = real_invocation(
            RealLayout::Mthp { kb: 64 },
            Size(64 << 20),
            Mode::Steady,
            Sched::Fifo,
            &t,
        )
        .args()
        .join(" ");
        assert!(
            real.starts_with("real --layout mthp-64k --mem 64M --iters 50 --runs 3")
                && real.contains("--sched fifo")
                && real.contains("--cpu 1"),
            "{real}"
        );
    }

    #[test]
    fn runner_failures_are_errors() {
        let e = counts(
            &Runner::new("/nonexistent/forkbench"),
            &spec(),
            &[Strategy::Upstream],
        )
        .unwrap_err();
        assert!(matches!(e, crate::CalibrateError::Run(_)), "{e}");
    }
}
