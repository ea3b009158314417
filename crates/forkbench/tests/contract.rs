//! Driver and runner agree: what a driver renders from a typed `contract::Invocation` is what
//! the runner's CLI parses back into the same options, and what the runner prints parses back
//! into typed rows and records through `contract::Runner`.

use clap::Parser;
use contract::{
    Arch, Contpte, Invocation, Mapcount, Mode, ModelOpts, ModelOrder, OpCounter, Pause, RealLayout,
    RealOpts, Runner, Sched, SimOpts, Size, Strategies, Strategy,
};
use forkbench::cli::{Cli, Command};

fn parse(inv: &Invocation) -> Cli {
    let argv = std::iter::once("forkbench".to_string()).chain(inv.args());
    match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => panic!("{:?} does not parse: {e}", inv.args()),
    }
}

fn model(arch: Arch, contpte: Option<Contpte>) -> ModelOpts {
    ModelOpts {
        arch,
        contpte,
        strategies: "ryan-v4,upstream".parse().unwrap(),
        order: ModelOrder::new(9).unwrap(),
        mem: Size(2 << 20),
        mode: Mode::Steady,
        mapcount: Mapcount::LargeOnly,
    }
}

#[test]
fn every_invocation_parses_into_the_same_options() {
    let counts = [
        ModelOpts::default(),
        model(Arch::X86_64, None),
        model(Arch::Arm64, Some(Contpte::Basic)),
    ];
    for m in counts {
        let inv = Invocation::Counts(m.clone());
        let Command::Counts(a) = parse(&inv).command else {
            panic!("not counts: {:?}", inv.args())
        };
        assert_eq!(a.opts, m);
        assert!(a.json, "invocations always ask for JSON");
    }

    let sims = [
        SimOpts::default(),
        SimOpts {
            model: model(Arch::Arm64, Some(Contpte::Ena)),
            iters: 7,
            runs: 3,
            warmup: 0,
            cpu: Some(1),
            seed: 42,
            count: true,
            cost_model: Some("tlbi=1500,flush_tlb_mm=2000".into()),
        },
    ];
    for s in sims {
        let inv = Invocation::Sim(s.clone());
        let Command::Sim(a) = parse(&inv).command else {
            panic!("not sim: {:?}", inv.args())
        };
        assert_eq!(a.opts, s);
        assert!(a.json);
    }

    let every_option = RealOpts {
        layout: RealLayout::Mthp { kb: 64 },
        mem: Size(64 << 20),
        iters: 20,
        runs: 3,
        warmup: 2,
        mode: Mode::Fresh,
        cpu: Some(1),
        sched: Sched::Fifo,
        fifo_priority: 20,
        pause: Pause::Spin,
        no_core_probe: true,
        tick_align: true,
        allow_unverified: true,
        no_pagemap: true,
    };
    for r in [RealOpts::new(RealLayout::Order0), every_option] {
        let inv = Invocation::Real(r.clone());
        let Command::Real(a) = parse(&inv).command else {
            panic!("not real: {:?}", inv.args())
        };
        assert_eq!(a.opts, r);
        assert!(a.json);
    }
}

#[test]
fn the_runners_defaults_are_the_contracts() {
    let cli = Cli::try_parse_from(["forkbench", "real", "--layout", "pte-order9"]).unwrap();
    let Command::Real(a) = cli.command else {
        panic!("not real")
    };
    // The local profile's sched fifo and two warm-up forks (RealOpts::runner_defaults).
    assert_eq!(a.opts, RealOpts::runner_defaults(RealLayout::PteOrder9));
    assert_eq!((a.opts.sched, a.opts.warmup), (contract::Sched::Fifo, 2));
    assert!(!a.json);
    let cli = Cli::try_parse_from(["forkbench", "sim"]).unwrap();
    let Command::Sim(a) = cli.command else {
        panic!("not sim")
    };
    assert_eq!(a.opts, SimOpts::default());
}

#[test]
fn counts_run_through_the_contract_runner_are_typed() {
    let runner = Runner::new(env!("CARGO_BIN_EXE_forkbench"));
    let out = runner
        .run(&Invocation::Counts(ModelOpts {
            strategies: Strategies(vec![Strategy::Upstream, Strategy::MmUnstable]),
            order: ModelOrder::new(9).unwrap(),
            mem: Size(2 << 20),
            ..ModelOpts::default()
        }))
        .unwrap();
    assert_eq!(out.header, Some(contract::Header::current()));
    assert_eq!(out.counts.len(), 2);
    let up = &out.counts[0];
    assert_eq!(up.strategy, Strategy::Upstream);
    assert_eq!(up.arch, Arch::X86_64);
    assert_eq!(up.ops[&OpCounter::PtepGetCalls], 512);
    assert_eq!(up.ops[&OpCounter::RefcountAtomics], 1);
    assert_eq!(up.ops[&OpCounter::MapcountAtomics], 512);
    assert_eq!(out.counts[1].strategy, Strategy::MmUnstable);
    assert_eq!(out.counts[1].ops[&OpCounter::PtepGetCalls], 1024);
}

#[test]
fn sim_run_through_the_contract_runner_is_typed() {
    let runner = Runner::new(env!("CARGO_BIN_EXE_forkbench"));
    let out = runner
        .run(&Invocation::Sim(SimOpts {
            model: ModelOpts {
                arch: Arch::Arm64,
                strategies: Strategies(vec![Strategy::Upstream]),
                order: ModelOrder::new(4).unwrap(),
                mem: Size(2 << 20),
                ..ModelOpts::default()
            },
            iters: 3,
            runs: 2,
            cost_model: Some("tlbi=10".into()),
            ..SimOpts::default()
        }))
        .unwrap();
    assert_eq!(out.runs.len(), 2);
    for (i, r) in out.runs.iter().enumerate() {
        assert_eq!(r.run_index as usize, i);
        assert_eq!(r.samples_ns.len(), 3);
        assert_eq!(r.variant.id(), "sim:arm64:upstream:order4:contpte-ena");
        let sim = r.sim.as_ref().expect("sim records carry SimExtra");
        assert_eq!(sim.ptes, 512);
        assert_eq!(sim.seed, 1);
        let tlbi = r.op(OpCounter::Tlbi).unwrap();
        assert_eq!(sim.modelled_add_ns, Some(10.0 * tlbi as f64));
        assert!(r.real.is_none());
    }
    let e = runner
        .run(&Invocation::Sim(SimOpts {
            model: ModelOpts {
                order: ModelOrder::new(9).unwrap(),
                mem: Size(1 << 20),
                ..ModelOpts::default()
            },
            ..SimOpts::default()
        }))
        .unwrap_err();
    assert!(e.is_usage(), "{e}");
    assert!(e.to_string().contains("not a multiple"), "{e}");
}
