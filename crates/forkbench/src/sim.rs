//! `forkbench counts` and `forkbench sim`: exact op counts of one model fork, and timed model
//! forks (the copy alone: restore and teardown stay outside the timed section). Strategies are
//! interleaved run by run in a seeded random order, all on the same populated model, so that
//! drift on a noisy machine hits every strategy alike.

use std::time::Instant;

use forkmodel::layout::SplitRng;
use forkmodel::{
    Arch, CopyStrategy, Counter, ForkConfig, Layout, MapcountModel, Mode, Model, NoCount, Ops,
    Order, StrategyId, StrategyVisitor,
};
use results::{Instrument, RunRecord, SCHEMA_VERSION, Variant};
use serde_json::json;

use crate::args::UsageError;

/// What to count or time.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub arch: String,
    /// arm64 contpte configuration (`on`, `off`, `basic`); None for the default.
    pub contpte: Option<String>,
    pub strategies: Vec<StrategyId>,
    pub order: Order,
    pub mem: u64,
    pub mode: Mode,
    pub mapcount: MapcountModel,
    pub iters: u32,
    pub runs: u32,
    pub warmup: u32,
    pub seed: u64,
    /// Time with op counting on (to measure what counting costs).
    pub count_while_timing: bool,
    /// Costs of privileged ops for the modelled time (None: report measured time only).
    pub cost_model: Option<crate::args::CostModel>,
    pub cpu: Option<usize>,
}

impl SimSpec {
    fn cfg(&self) -> ForkConfig {
        ForkConfig {
            mapcount: self.mapcount,
            resched_every: None,
        }
    }
}

/// Name of a mapcount model as the CLI spells it.
pub fn mapcount_name(m: MapcountModel) -> &'static str {
    match m {
        MapcountModel::PerPage => "per-page",
        MapcountModel::PerPageAndLarge => "per-page+large",
        MapcountModel::LargeOnly => "large-only",
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Fresh => "fresh",
        Mode::Steady => "steady",
    }
}

/// Op counts of one fork per strategy, with the engine's option label. In `steady` mode, of
/// the second fork of the parent.
pub fn counts(spec: &SimSpec) -> Result<(String, Vec<(StrategyId, Ops)>), UsageError> {
    struct V<'a>(&'a SimSpec);
    impl crate::ArchVisitor for V<'_> {
        type Output = Result<(String, Vec<(StrategyId, Ops)>), UsageError>;
        fn visit<A: Arch>(self) -> Self::Output {
            let spec = self.0;
            let layout =
                Layout::uniform(spec.mem, spec.order).map_err(|e| UsageError(e.to_string()))?;
            let mut model = Model::<A>::with_layout(&layout, spec.cfg())
                .map_err(|e| UsageError(e.to_string()))?;
            let rows = spec
                .strategies
                .iter()
                .map(|&s| (s, count_one(&mut model, s, spec.mode)))
                .collect();
            Ok((A::OPTIONS.to_string(), rows))
        }
    }
    crate::with_arch(&spec.arch, spec.contpte.as_deref(), V(spec))?
}

fn count_one<A: Arch>(model: &mut Model<A>, s: StrategyId, mode: Mode) -> Ops {
    model.restore_fresh();
    if mode == Mode::Steady {
        let child = model.fork_with(s, &mut NoCount);
        model.zap(child);
    }
    let mut ops = Ops::default();
    let child = model.fork_with(s, &mut ops);
    model.zap(child);
    model.restore_fresh();
    ops
}

/// Peak resident set of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Time `iters` forks with strategy `S`, returning nanoseconds per fork.
struct TimeForks<'a, A: Arch, C: Counter> {
    model: &'a mut Model<A>,
    counter: &'a mut C,
    iters: u32,
    mode: Mode,
}

impl<A: Arch, C: Counter> StrategyVisitor for TimeForks<'_, A, C> {
    type Output = Vec<u64>;
    fn visit<S: CopyStrategy>(self) -> Vec<u64> {
        let mut samples = Vec::with_capacity(self.iters as usize);
        for _ in 0..self.iters {
            if self.mode == Mode::Fresh {
                self.model.restore_fresh();
            }
            let t0 = Instant::now();
            let child = self.model.fork::<S, C>(self.counter);
            let dt = t0.elapsed();
            let child = std::hint::black_box(child);
            samples.push(dt.as_nanos() as u64);
            self.model.zap(child);
        }
        samples
    }
}

/// Run the timed simulation, handing each finished run to `emit` as soon as it ends.
pub fn sim(spec: &SimSpec, emit: &mut dyn FnMut(RunRecord)) -> Result<(), UsageError> {
    struct V<'a>(&'a SimSpec, &'a mut dyn FnMut(RunRecord));
    impl crate::ArchVisitor for V<'_> {
        type Output = Result<(), UsageError>;
        fn visit<A: Arch>(self) -> Self::Output {
            sim_arch::<A>(self.0, self.1)
        }
    }
    crate::with_arch(&spec.arch, spec.contpte.as_deref(), V(spec, emit))?
}

fn sim_arch<A: Arch>(spec: &SimSpec, emit: &mut dyn FnMut(RunRecord)) -> Result<(), UsageError> {
    let layout = Layout::uniform(spec.mem, spec.order).map_err(|e| UsageError(e.to_string()))?;
    let mut model =
        Model::<A>::with_layout(&layout, spec.cfg()).map_err(|e| UsageError(e.to_string()))?;
    // Deterministic counts first (outside any timing), one per strategy.
    let ops: Vec<(StrategyId, Ops)> = spec
        .strategies
        .iter()
        .map(|&s| (s, count_one(&mut model, s, spec.mode)))
        .collect();
    let ptes = spec.mem / forkmodel::PAGE_SIZE;
    let mut rng = SplitRng::new(spec.seed);
    let mut options = A::OPTIONS.to_string();
    if spec.mapcount != MapcountModel::PerPage {
        push_opt(&mut options, mapcount_name(spec.mapcount));
    }
    if spec.count_while_timing {
        push_opt(&mut options, "counting");
    }
    for run in 0..spec.runs {
        let mut order = spec.strategies.clone();
        // Fisher-Yates with the seeded generator: a new block order every run.
        for i in (1..order.len()).rev() {
            let j = rng.range(0, i as u64) as usize;
            order.swap(i, j);
        }
        for &s in &order {
            // Each block starts from the same parent state, whatever ran before it.
            model.restore_fresh();
            let time = |model: &mut Model<A>, iters: u32| -> Vec<u64> {
                if spec.count_while_timing {
                    let mut c = Ops::default();
                    s.visit(TimeForks {
                        model,
                        counter: &mut c,
                        iters,
                        mode: spec.mode,
                    })
                } else {
                    s.visit(TimeForks {
                        model,
                        counter: &mut NoCount,
                        iters,
                        mode: spec.mode,
                    })
                }
            };
            if spec.mode == Mode::Steady {
                // Steady state means the parent was forked before: one untimed fork first.
                let child = model.fork_with(s, &mut NoCount);
                model.zap(child);
            }
            let _ = time(&mut model, spec.warmup);
            let samples = time(&mut model, spec.iters);
            let mean = samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64;
            let fork_ops = ops_of(&ops, s);
            let modelled_add = spec.cost_model.map(|m| m.added_ns(&fork_ops));
            let op_map = fork_ops
                .fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            emit(RunRecord {
                schema: SCHEMA_VERSION,
                tool_version: env!("CARGO_PKG_VERSION").to_string(),
                variant: Variant {
                    instrument: Instrument::Sim,
                    arch: A::NAME.to_string(),
                    strategy: s.name().to_string(),
                    layout: format!("order{}", spec.order.get()),
                    mem_bytes: spec.mem,
                    mode: mode_name(spec.mode).to_string(),
                    options: options.clone(),
                },
                run_index: run,
                warmup: spec.warmup,
                samples_ns: samples,
                ops: op_map,
                cpu: spec.cpu,
                extra: json!({
                    "ptes": ptes,
                    "ns_per_pte": mean / ptes as f64,
                    "mapcount": mapcount_name(spec.mapcount),
                    "seed": spec.seed,
                    "model_bytes": model.footprint_bytes(),
                    "peak_rss_bytes": peak_rss_bytes(),
                    // Measured time never includes privileged ops; modelled = measured + this.
                    "cost_model": spec.cost_model.map(|m| json!({"tlbi_ns": m.tlbi_ns, "flush_tlb_mm_ns": m.flush_tlb_mm_ns})),
                    "modelled_add_ns": modelled_add,
                    "modelled_mean_ns": modelled_add.map(|a| mean + a),
                }),
            });
        }
    }
    Ok(())
}

fn ops_of(ops: &[(StrategyId, Ops)], s: StrategyId) -> Ops {
    ops.iter()
        .find(|(id, _)| *id == s)
        .map(|(_, o)| *o)
        .unwrap_or_default()
}

fn push_opt(options: &mut String, o: &str) {
    if !options.is_empty() {
        options.push(',');
    }
    options.push_str(o);
}
