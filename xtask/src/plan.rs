//! From a profile to a plan: the *groups* (one runner call shape each: a model arch/order/contpte
//! or a real-fork layout) and the *schedule* — for every run index a fresh seeded random
//! permutation of the groups, so every variant's run r happens in the same round (run-level
//! interleaving, drift hits all variants alike). Inside a model call the runner interleaves the
//! strategies in its own seeded order.

use contract::{Arch, Contpte, Mode, ModelOrder, RealLayout, Sched, Size, Strategy};
use serde::Serialize;

use crate::profile::Profile;

/// Which instruments a bench runs: `--instrument`, else the profile's `[run] instrument`,
/// else all. Comparing kernels → `real` (the kernel is what is measured); exploring
/// strategies → `sim` (the model runs in userspace: the booted kernel does not change it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Instruments {
    /// Real fork() of the kernel only: no model groups
    Real,
    /// The model only: no real-fork groups
    Sim,
    /// Both
    #[default]
    All,
}

impl Instruments {
    pub fn sim(self) -> bool {
        self != Instruments::Real
    }
    pub fn real(self) -> bool {
        self != Instruments::Sim
    }
}

impl std::fmt::Display for Instruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Instruments::Real => "real",
            Instruments::Sim => "sim",
            Instruments::All => "all",
        })
    }
}

/// One runner invocation shape (run once per round with `--runs 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "instrument", rename_all = "lowercase")]
pub enum Call {
    Sim {
        arch: Arch,
        order: ModelOrder,
        strategies: Vec<Strategy>,
        /// arm64 only.
        contpte: Option<Contpte>,
        mem: Size,
        iters: u32,
        warmup: u32,
        mode: Mode,
    },
    Real {
        layout: RealLayout,
        mem: Size,
        iters: u32,
        warmup: u32,
        sched: Sched,
        /// `[real] mode`, steady by default.
        mode: Mode,
        /// The kernel under test (its label) when the call runs in a booted guest; `None` on
        /// the host's own kernel.
        #[serde(skip_serializing_if = "Option::is_none")]
        kernel: Option<String>,
    },
}

impl Call {
    /// A short name for progress lines and notes.
    pub fn name(&self) -> String {
        match self {
            Call::Sim {
                arch,
                order,
                contpte,
                ..
            } => match contpte {
                Some(c) => format!("sim {arch} order{order} {}", c.label()),
                None => format!("sim {arch} order{order}"),
            },
            Call::Real {
                layout,
                kernel: None,
                ..
            } => format!("real {layout}"),
            Call::Real {
                layout,
                kernel: Some(k),
                ..
            } => format!("real {layout} on {k}"),
        }
    }

    /// Run records one call prints.
    pub fn records_per_call(&self) -> usize {
        match self {
            Call::Sim { strategies, .. } => strategies.len(),
            Call::Real { .. } => 1,
        }
    }

    /// Forks one call times (iterations + warm-up, per record), for the time estimate.
    pub fn forks(&self) -> u64 {
        match self {
            Call::Sim {
                iters,
                warmup,
                strategies,
                ..
            } => (u64::from(*iters) + u64::from(*warmup)) * strategies.len() as u64,
            Call::Real { iters, warmup, .. } => u64::from(*iters) + u64::from(*warmup),
        }
    }

    /// Populated memory of the call.
    pub fn mem(&self) -> Size {
        match self {
            Call::Sim { mem, .. } | Call::Real { mem, .. } => *mem,
        }
    }
}

/// Sizes after `--quick`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sizes {
    pub mem: Size,
    pub iters: u32,
    pub runs: u32,
    pub warmup: u32,
}

/// The plan of one bench invocation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub groups: Vec<Call>,
    /// Rounds (= runs per variant).
    pub runs: u32,
    /// Model sizes.
    pub sizes: Sizes,
    /// `(round, group index)` in execution order.
    pub order: Vec<(u32, usize)>,
}

/// A small deterministic generator (SplitMix64) for the schedule.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..=hi.
    pub fn upto(&mut self, hi: usize) -> usize {
        (self.next_u64() % (hi as u64 + 1)) as usize
    }
}

/// For each of `runs` rounds a fresh random permutation of `0..groups` (Fisher–Yates).
pub fn schedule(groups: usize, runs: u32, seed: u64) -> Vec<(u32, usize)> {
    let mut rng = SplitMix::new(seed);
    let mut out = Vec::with_capacity(groups * runs as usize);
    for r in 0..runs {
        let mut perm: Vec<usize> = (0..groups).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, rng.upto(i));
        }
        out.extend(perm.into_iter().map(|g| (r, g)));
    }
    out
}

/// Seed handed to the runner for one call (its in-call strategy order).
pub fn call_seed(seed: u64, round: u32, group: usize) -> u64 {
    let mut r = SplitMix::new(seed ^ (u64::from(round) << 32) ^ group as u64);
    r.next_u64()
}

/// Build the plan of a profile: the instruments of its `[run] instrument` (all by default).
pub fn plan(p: &Profile, quick: bool, seed: u64) -> Plan {
    let instruments = p.run.instrument.unwrap_or_default();
    let q = |v: Option<u32>, d: u32| if quick { v.unwrap_or(d) } else { d };
    let sizes = Sizes {
        mem: if quick {
            p.quick.mem.unwrap_or(p.run.mem)
        } else {
            p.run.mem
        },
        iters: q(p.quick.iters, p.run.iters),
        runs: q(p.quick.runs, p.run.runs),
        warmup: q(p.quick.warmup, p.run.warmup),
    };
    let mut groups = Vec::new();
    if let Some(m) = p.model.as_ref().filter(|_| instruments.sim()) {
        for &arch in &m.arches {
            for &order in &m.orders {
                let opts: Vec<Option<Contpte>> = if arch == Arch::Arm64 && !m.contpte.is_empty() {
                    // Keep the canonical order of options but the profile's selection.
                    Contpte::ALL
                        .iter()
                        .filter(|c| m.contpte.contains(c))
                        .map(|&c| Some(c))
                        .collect()
                } else {
                    vec![None]
                };
                for contpte in opts {
                    groups.push(Call::Sim {
                        arch,
                        order,
                        strategies: m.strategies.clone(),
                        contpte,
                        mem: sizes.mem,
                        iters: sizes.iters,
                        warmup: sizes.warmup,
                        mode: p.run.mode,
                    });
                }
            }
        }
    }
    if let Some(r) = p.real.as_ref().filter(|_| instruments.real()) {
        // --quick shrinks the real benchmark like the model; its own overrides apply otherwise.
        let (mem, iters, warmup) = if quick {
            (sizes.mem, sizes.iters, sizes.warmup)
        } else {
            (
                r.mem.unwrap_or(sizes.mem),
                r.iters.unwrap_or(sizes.iters),
                r.warmup.unwrap_or(sizes.warmup),
            )
        };
        for &layout in &r.layouts {
            groups.push(Call::Real {
                layout,
                mem,
                iters,
                warmup,
                sched: p.run.sched,
                mode: r.mode.unwrap_or(Mode::Steady),
                kernel: None,
            });
        }
    }
    let runs = if quick {
        sizes.runs
    } else {
        p.real
            .as_ref()
            .filter(|_| instruments.real())
            .and_then(|r| r.runs)
            .map_or(sizes.runs, |r| r.max(sizes.runs))
    };
    let order = schedule(groups.len(), runs, seed);
    Plan {
        groups,
        runs,
        sizes,
        order,
    }
}

/// The plan for kernels under test: every real-fork group once per kernel (in `kernels`' order,
/// so the first kernel is the baseline), model groups only when asked for (they do not depend on
/// the kernel), and a fresh schedule, so each round runs every layout in every kernel in a
/// random order — run-level interleaving across the guests.
pub fn for_kernels(plan: Plan, kernels: &[String], with_model: bool, seed: u64) -> Plan {
    let mut groups = Vec::new();
    for g in plan.groups {
        match g {
            Call::Sim { .. } if with_model => groups.push(g),
            Call::Sim { .. } => {}
            Call::Real { .. } => {
                for k in kernels {
                    let mut c = g.clone();
                    if let Call::Real { kernel, .. } = &mut c {
                        *kernel = Some(k.clone());
                    }
                    groups.push(c);
                }
            }
        }
    }
    let order = schedule(groups.len(), plan.runs, seed);
    Plan {
        groups,
        order,
        ..plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_a_permutation_per_round_and_seeded() {
        let s = schedule(6, 8, 42);
        assert_eq!(s.len(), 48);
        for r in 0..8 {
            let mut g: Vec<usize> = s.iter().filter(|x| x.0 == r).map(|x| x.1).collect();
            g.sort_unstable();
            assert_eq!(g, (0..6).collect::<Vec<_>>());
        }
        // Rounds come in order: all of round r before round r+1.
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(s, schedule(6, 8, 42));
        assert_ne!(s, schedule(6, 8, 43));
        // Not the same permutation every round.
        let first: Vec<usize> = s[..6].iter().map(|x| x.1).collect();
        assert!(
            (1..8).any(|r| s[r * 6..r * 6 + 6].iter().map(|x| x.1).collect::<Vec<_>>() != first)
        );
    }

    #[test]
    fn local_plan_has_every_variant() {
        let p = crate::profile::load(None, &crate::util::project_root()).unwrap();
        let plan = plan(&p, false, 1);
        // x86_64 x 2 orders + arm64 x 2 orders x 2 contpte + 5 real layouts.
        assert_eq!(plan.groups.len(), 2 + 4 + 5);
        assert_eq!(plan.runs, 8);
        assert_eq!(plan.order.len(), 11 * 8);
        assert_eq!(plan.sizes.mem, Size(1 << 30));
        let quick = super::plan(&p, true, 1);
        assert_eq!(quick.sizes.mem, Size(64 << 20));
        assert_eq!(quick.runs, 3);
        assert!(quick.groups.iter().all(|g| match g {
            Call::Sim { mem, iters, .. } | Call::Real { mem, iters, .. } =>
                *mem == Size(64 << 20) && *iters == 20,
        }));
        assert_eq!(
            plan.groups[2].name(),
            "sim arm64 order0 contpte-dis",
            "{:?}",
            plan.groups
        );
    }

    #[test]
    fn instruments_choose_the_groups() {
        let mut p = crate::profile::load(None, &crate::util::project_root()).unwrap();
        let count = |plan: &Plan| {
            let sim = plan
                .groups
                .iter()
                .filter(|g| matches!(g, Call::Sim { .. }))
                .count();
            (sim, plan.groups.len() - sim)
        };
        // (model groups, real-fork groups) of the local profile: 2 + 4 model, 5 layouts.
        for (which, want) in [
            (None, (6, 5)),
            (Some(Instruments::All), (6, 5)),
            (Some(Instruments::Real), (0, 5)),
            (Some(Instruments::Sim), (6, 0)),
        ] {
            p.run.instrument = which;
            let plan = plan(&p, true, 1);
            assert_eq!(count(&plan), want, "{which:?}");
            assert_eq!(plan.order.len(), plan.groups.len() * 3, "{which:?}");
        }
        // Kernels under test: every layout per kernel, the model only with `all`.
        let ks = ["a".to_string(), "b".to_string()];
        p.run.instrument = Some(Instruments::Real);
        let k = for_kernels(plan(&p, true, 1), &ks, Instruments::Real.sim(), 1);
        assert_eq!(count(&k), (0, 10));
        p.run.instrument = Some(Instruments::All);
        let k = for_kernels(plan(&p, true, 1), &ks, Instruments::All.sim(), 1);
        assert_eq!(count(&k), (6, 10));
    }
}
