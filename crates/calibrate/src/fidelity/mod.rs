//! `cargo xtask fidelity`: `results/fidelity.md`, each of the seven fork tables the LKML thread
//! published ([`crate::tables`]) beside the model's reproduction with the same rows and columns,
//! whether sign and ranking agree, and the reason where they do not.
//!
//! Two steps. `--measure` runs the model (`forkbench sim`, fresh mode, the thread's 1 GiB,
//! 100 × 8) for every configuration the tables need and writes `results/fidelity-inputs.json`
//! (with the newest calibration profile of this host embedded, when there is one). Rendering is
//! a pure function of that file ([`render()`]), so a test regenerates the report from the
//! committed inputs and fails when the committed report is stale ([`check_fresh`]).
//!
//! **Model values of a cell.** Each cell compares a `new` configuration with a `base` one:
//! `change = T(new) / T(base) − 1`, in two models ([`ModelKind`]). The **measured model**'s `T`
//! is the model's measured userspace time on this host (the median of the per-run fastest
//! forks); the **calibrated model**'s `T` is the embedded calibration profile applied to the
//! exact op counts (absent without a profile). In arm64 (M2, Altra) cells both add the counted
//! privileged operations priced with the documented per-machine assumptions
//! ([`default_machine_costs`]): range-TLBIs (one per 64 KiB block unfold/fold) and
//! `flush_tlb_mm`. The summary scores sign and ranking for each model, per table and in total;
//! a row that disagrees in either model shows its reason ([`rows_without_reason`] finds one
//! that does not).
//!
//! **Provenance.** `--check` also refuses inputs whose profile was fitted on another host,
//! kernel or CPU than the measurements, or differs from the committed file it names
//! ([`check_provenance`]).
//!
//! **Layers.** [`cli`]: flags and the entry point; [`inputs`]: the inputs file; [`measure`]:
//! the runner calls; [`evaluate`]: cell values and agreement (pure); [`render`]: the report;
//! [`provenance`]: one machine behind the measurements and their profile.

pub mod cli;
pub mod evaluate;
pub mod inputs;
pub mod measure;
pub mod provenance;
pub mod render;

pub use cli::{FidelityArgs, run_fidelity};
pub use evaluate::{
    CellEval, MODEL_TIE_PP, ModelKind, RowAgreement, THREAD_TIE_PP, agreements, median, sign_class,
};
pub use inputs::{
    INPUTS_SCHEMA, InputSettings, Inputs, MachineCosts, Measurement, default_machine_costs,
};
pub use measure::{measure, needed_configs};
pub use provenance::{MachineFacts, check_provenance, machine_mismatch};
pub use render::{ReportInputs, check_fresh, fmt_pct, render, render_report, rows_without_reason};

/// Synthetic inputs for the tests of every layer.
#[cfg(test)]
pub(crate) mod test_inputs {
    use contract::{Contpte, OpCounter, Strategy};

    use super::*;
    use crate::runner::Ops;
    use crate::tables::thread_tables;

    /// Every needed configuration, with times and ops derived from the configuration so the
    /// report is fully populated.
    pub(crate) fn synthetic(profile: bool) -> Inputs {
        let mut measurements = Vec::new();
        for c in needed_configs(&thread_tables()) {
            let batched = c.strategy == Strategy::Upstream || c.strategy == Strategy::ForkBatching;
            let order = c.order.get();
            let per_pte = if batched {
                10.0 - order as f64 * 0.5
            } else {
                11.0
            };
            let tlbi = if c.contpte == Some(Contpte::Basic) {
                16_384
            } else {
                0
            };
            let ops = Ops::from([
                (OpCounter::PteTablesAllocated, 512),
                (OpCounter::MapcountAtomics, 262_144),
                (
                    OpCounter::Batches,
                    if batched { 262_144 >> order } else { 262_144 },
                ),
                (OpCounter::Tlbi, tlbi),
                (OpCounter::TlbFlushMm, 1),
            ]);
            measurements.push(Measurement {
                key: c.key(),
                arch: c.arch,
                contpte: c.contpte,
                strategy: c.strategy,
                order: c.order,
                run_means_ns: vec![per_pte * 262_144.0; 2],
                run_mins_ns: vec![per_pte * 262_144.0; 2],
                ops,
            });
        }
        Inputs {
            schema: INPUTS_SCHEMA,
            created_utc: "2026-01-01T00:00:00Z".into(),
            host: "test".into(),
            kernel: "6.18".into(),
            cpu_model: "cpu".into(),
            tool_version: "0".into(),
            tool_rev: None,
            settings: InputSettings {
                mem: contract::Size(1 << 30),
                iters: 1,
                runs: 2,
                mode: contract::Mode::Fresh,
                mapcount: contract::Mapcount::PerPage,
                cpu: None,
            },
            machine_costs: default_machine_costs(),
            profile_file: profile.then(|| "test.json".into()),
            profile: profile.then(crate::profile::tests::sample_profile),
            measurements,
        }
    }
}
