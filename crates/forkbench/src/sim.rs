//! `forkbench counts` and `forkbench sim`: exact op counts of one model fork, and timed model
//! forks (the copy alone: restore and teardown stay outside the timed section). Strategies are
//! interleaved run by run in a seeded random order, all on the same populated model, so that
//! drift on a noisy machine hits every strategy alike. Both produce the contract's typed rows
//! and records ([`CountsRow`], [`RunRecord`] with [`SimExtra`]).

use std::time::Instant;

use contract::{
    Arch as ArchId, Contpte, CostModel, CountsRow, ModelOpts, ModelOrder, RunRecord, SimExtra,
    SimOpts, SimVariant, Variant,
};
use forkmodel::layout::SplitRng;
use forkmodel::{
    Arch, CopyStrategy, Counter, ForkConfig, Layout, MapcountModel, Mode, Model, NoCount, Ops,
    Order, StrategyId, StrategyVisitor, VisitStrategy,
};

use crate::args::{UsageError, added_ns, check_mem, parse_cost_model_arg};

/// What to count or time, checked.
#[derive(Debug, Clone)]
pub struct SimSpec {
    pub arch: ArchId,
    /// arm64 contpte configuration; `None` for the default (`ena` on arm64).
    pub contpte: Option<Contpte>,
    pub strategies: Vec<StrategyId>,
    pub order: ModelOrder,
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
    pub cost_model: Option<CostModel>,
    pub cpu: Option<usize>,
}

impl SimSpec {
    /// A counting spec from `counts` options: checks what clap cannot (memory against the
    /// folio size, contpte only on arm64).
    pub fn counts(m: &ModelOpts) -> Result<SimSpec, UsageError> {
        check_mem(m.mem.bytes(), folio_order(m.order))?;
        if m.strategies.0.is_empty() {
            return Err(UsageError("--strategy names no strategy".into()));
        }
        // Each strategy's engine exists (contpte only on arm64).
        crate::Engine::groups(m.arch, m.contpte, &m.strategies.0)?;
        Ok(SimSpec {
            arch: m.arch,
            contpte: m.contpte,
            strategies: m.strategies.0.clone(),
            order: m.order,
            mem: m.mem.bytes(),
            mode: m.mode,
            mapcount: m.mapcount,
            iters: 0,
            runs: 0,
            warmup: 0,
            seed: 0,
            count_while_timing: false,
            cost_model: None,
            cpu: None,
        })
    }

    /// A timing spec from `sim` options (the CPU is recorded, not pinned, here).
    pub fn sim(s: &SimOpts) -> Result<SimSpec, UsageError> {
        let mut spec = SimSpec::counts(&s.model)?;
        if s.iters == 0 || s.runs == 0 {
            return Err(UsageError("--iters and --runs must be at least 1".into()));
        }
        spec.iters = s.iters;
        spec.runs = s.runs;
        spec.warmup = s.warmup;
        spec.seed = s.seed;
        spec.count_while_timing = s.count;
        spec.cost_model = s
            .cost_model
            .as_deref()
            .map(parse_cost_model_arg)
            .transpose()?;
        spec.cpu = s.cpu;
        Ok(spec)
    }

    fn cfg(&self) -> ForkConfig {
        ForkConfig {
            mapcount: self.mapcount,
            resched_every: None,
        }
    }

    fn layout(&self) -> Result<Layout, UsageError> {
        Layout::uniform(self.mem, folio_order(self.order)).map_err(|e| UsageError(e.to_string()))
    }
}

/// The model's folio order for the contract's (both are 0..=9).
pub fn folio_order(o: ModelOrder) -> Order {
    Order::new(u32::from(o.get())).expect("ModelOrder is within the model's orders")
}

/// A populated model of one [`Engine`](crate::Engine), behind one dynamic dispatch per call
/// (a count, or a block of timed forks), never per fork or PTE: the copy inside stays
/// monomorphised per (arch, strategy).
trait EngineModel {
    fn arch(&self) -> ArchId;
    fn contpte(&self) -> Option<Contpte>;
    /// Op counts of one fork (in `steady` mode, of the second fork of the parent).
    fn count(&mut self, s: StrategyId, mode: Mode) -> Ops;
    /// Make the parent as populated again.
    fn restore_fresh(&mut self);
    /// One untimed fork and teardown (what `steady` mode starts from).
    fn fork_untimed(&mut self, s: StrategyId);
    /// Time `iters` forks, in nanoseconds each, counting ops meanwhile if `counting`.
    fn time(&mut self, s: StrategyId, iters: u32, mode: Mode, counting: bool) -> Vec<u64>;
    fn footprint_bytes(&self) -> usize;
}

impl<A: Arch> EngineModel for Model<A> {
    fn arch(&self) -> ArchId {
        A::ID
    }
    fn contpte(&self) -> Option<Contpte> {
        A::CONTPTE
    }
    fn count(&mut self, s: StrategyId, mode: Mode) -> Ops {
        count_one(self, s, mode)
    }
    fn restore_fresh(&mut self) {
        Model::restore_fresh(self)
    }
    fn fork_untimed(&mut self, s: StrategyId) {
        let child = self.fork_with(s, &mut NoCount);
        self.zap(child);
    }
    fn time(&mut self, s: StrategyId, iters: u32, mode: Mode, counting: bool) -> Vec<u64> {
        if counting {
            let mut c = Ops::default();
            s.visit(TimeForks {
                model: self,
                counter: &mut c,
                iters,
                mode,
            })
        } else {
            s.visit(TimeForks {
                model: self,
                counter: &mut NoCount,
                iters,
                mode,
            })
        }
    }
    fn footprint_bytes(&self) -> usize {
        Model::footprint_bytes(self)
    }
}

/// One populated model per engine the spec's strategies need, and which model each
/// strategy runs on (x86_64's `v6.1` has its own engine, [`crate::Engine::groups`]).
struct Models {
    models: Vec<Box<dyn EngineModel>>,
    of: Vec<(StrategyId, usize)>,
}

impl Models {
    fn populate(spec: &SimSpec) -> Result<Models, UsageError> {
        struct Populate<'a>(&'a Layout, ForkConfig);
        impl crate::ArchVisitor for Populate<'_> {
            type Output = Result<Box<dyn EngineModel>, UsageError>;
            fn visit<A: Arch>(self) -> Self::Output {
                let m = Model::<A>::with_layout(self.0, self.1)
                    .map_err(|e| UsageError(e.to_string()))?;
                Ok(Box::new(m))
            }
        }
        let layout = spec.layout()?;
        let mut models = Vec::new();
        let mut of = Vec::new();
        for (engine, strategies) in
            crate::Engine::groups(spec.arch, spec.contpte, &spec.strategies)?
        {
            of.extend(strategies.into_iter().map(|s| (s, models.len())));
            models.push(engine.visit(Populate(&layout, spec.cfg()))?);
        }
        Ok(Models { models, of })
    }

    fn of(&mut self, s: StrategyId) -> &mut dyn EngineModel {
        let i = self
            .of
            .iter()
            .find(|(id, _)| *id == s)
            .map(|&(_, i)| i)
            .expect("every spec strategy has a model");
        self.models[i].as_mut()
    }
}

/// Op counts of one fork per strategy. In `steady` mode, of the second fork of the parent.
pub fn counts(spec: &SimSpec) -> Result<Vec<CountsRow>, UsageError> {
    let mut models = Models::populate(spec)?;
    Ok(spec
        .strategies
        .iter()
        .map(|&s| {
            let m = models.of(s);
            CountsRow {
                arch: m.arch(),
                contpte: m.contpte(),
                strategy: s,
                order: spec.order,
                mem_bytes: spec.mem,
                mode: spec.mode,
                // What the strategy's kernel keeps (`current` adds the large mapcount).
                mapcount: s.effective_mapcount(spec.mapcount),
                ops: m.count(s, spec.mode).to_map(),
            }
        })
        .collect())
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
    let mut models = Models::populate(spec)?;
    // Deterministic counts first (outside any timing), one per strategy.
    let ops: Vec<(StrategyId, Ops)> = spec
        .strategies
        .iter()
        .map(|&s| (s, models.of(s).count(s, spec.mode)))
        .collect();
    let ptes = spec.mem / forkmodel::PAGE_SIZE;
    let mut rng = SplitRng::new(spec.seed);
    for run in 0..spec.runs {
        let mut order = spec.strategies.clone();
        // Fisher-Yates with the seeded generator: a new block order every run.
        for i in (1..order.len()).rev() {
            let j = rng.range(0, i as u64) as usize;
            order.swap(i, j);
        }
        for &s in &order {
            let model = models.of(s);
            // Each block starts from the same parent state, whatever ran before it.
            model.restore_fresh();
            if spec.mode == Mode::Steady {
                // Steady state means the parent was forked before: one untimed fork first.
                model.fork_untimed(s);
            }
            let counting = spec.count_while_timing;
            let _ = model.time(s, spec.warmup, spec.mode, counting);
            let samples = model.time(s, spec.iters, spec.mode, counting);
            let fork_ops = ops_of(&ops, s);
            emit(RunRecord {
                variant: Variant::Sim(SimVariant {
                    arch: model.arch(),
                    contpte: model.contpte(),
                    strategy: s,
                    order: spec.order,
                    mem_bytes: spec.mem,
                    mode: spec.mode,
                    mapcount: s.effective_mapcount(spec.mapcount),
                    counting,
                }),
                run_index: run,
                warmup: spec.warmup,
                samples_ns: samples,
                cpu: spec.cpu,
                ops: fork_ops.to_map(),
                sim: Some(SimExtra {
                    ptes,
                    seed: spec.seed,
                    model_bytes: model.footprint_bytes() as u64,
                    peak_rss_bytes: peak_rss_bytes(),
                    cost_model: spec.cost_model,
                    // Measured time never includes privileged ops; modelled = measured + this.
                    modelled_add_ns: spec.cost_model.map(|m| added_ns(&m, &fork_ops)),
                }),
                real: None,
                host_load: None,
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
