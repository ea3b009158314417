//! `cargo xtask fidelity --measure`: run the model for every configuration the tables need,
//! one `forkbench sim` per engine and order with the strategies interleaved by the runner.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use contract::{Runner, Variant};
use hostenv::host::{self, UtcStamp};

use super::cli::FidelityArgs;
use super::inputs::{INPUTS_SCHEMA, InputSettings, Inputs, Measurement, default_machine_costs};
use crate::profile::CostProfile;
use crate::runner::{self, ModelSpec, Timing};
use crate::tables::{Config, Table, thread_tables};
use crate::{CalibrateError, Result};

/// Every model configuration the tables need.
pub fn needed_configs(tables: &[Table]) -> BTreeSet<Config> {
    tables
        .iter()
        .flat_map(|t| &t.rows)
        .flat_map(|r| &r.cells)
        .filter_map(|c| c.model)
        .flat_map(|m| [m.new, m.base])
        .collect()
}

/// Run the model for every needed configuration (grouped into one `sim` call per engine and
/// order, strategies interleaved by the runner).
pub fn measure(
    forkbench: &Path,
    args: &FidelityArgs,
    profile: Option<(String, CostProfile)>,
) -> Result<Inputs> {
    let tables = thread_tables();
    let runner = Runner::new(forkbench);
    // Pinned, as the calibration's sweep: an unpinned model migrates between CPUs mid-run.
    let cpu = args
        .cpu
        .unwrap_or_else(crate::calibrate::measure::default_cpu);
    let mut groups = BTreeMap::<_, Vec<_>>::new();
    for c in needed_configs(&tables) {
        groups
            .entry((c.arch, c.contpte, c.order))
            .or_default()
            .push(c.strategy);
    }
    let mode = contract::Mode::Fresh;
    let mapcount = contract::Mapcount::PerPage;
    let mut measurements = Vec::new();
    let n = groups.len();
    for (i, ((arch, contpte, order), strategies)) in groups.into_iter().enumerate() {
        let spec = ModelSpec {
            arch,
            contpte,
            order,
            mem: args.mem,
            mode,
            mapcount,
        };
        let timing = Timing {
            iters: args.iters,
            runs: args.runs,
            cpu: Some(cpu),
        };
        let list: Vec<&str> = strategies.iter().map(|s| s.name()).collect();
        eprintln!(
            "fidelity: [{}/{n}] sim {arch} {} order {order}: {}",
            i + 1,
            contpte.map(|c| format!("contpte {c}")).unwrap_or_default(),
            list.join(",")
        );
        let recs = runner::sim(&runner, &spec, &strategies, &timing)?;
        for &s in &strategies {
            let rs: Vec<_> = recs
                .iter()
                .filter(|r| matches!(&r.variant, Variant::Sim(v) if v.strategy == s))
                .collect();
            let first = rs.first().ok_or_else(|| CalibrateError::Runner {
                cmd: runner.command_line(&runner::sim_invocation(&spec, &strategies, &timing)),
                msg: format!("no records for {s}"),
            })?;
            let cfg = Config {
                arch,
                contpte,
                strategy: s,
                order,
            };
            measurements.push(Measurement {
                key: cfg.key(),
                arch,
                contpte,
                strategy: s,
                order,
                run_means_ns: rs.iter().map(|r| r.mean_ns()).collect(),
                run_mins_ns: rs
                    .iter()
                    .map(|r| r.samples_ns.iter().copied().min().unwrap_or(0) as f64)
                    .collect(),
                ops: first.ops.clone(),
            });
        }
    }
    let (profile_file, profile) = match profile {
        Some((f, p)) => (Some(f), Some(p)),
        None => (None, None),
    };
    Ok(Inputs {
        schema: INPUTS_SCHEMA,
        created_utc: UtcStamp::now().rfc3339,
        host: host::hostname(),
        kernel: host::kernel_release(),
        cpu_model: host::cpu_model().unwrap_or_else(|| "unknown".into()),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        tool_rev: args.tool_rev.clone(),
        settings: InputSettings {
            mem: args.mem,
            iters: args.iters,
            runs: args.runs,
            mode,
            mapcount,
            cpu: Some(cpu),
        },
        machine_costs: default_machine_costs(),
        profile_file,
        profile,
        measurements,
    })
}
