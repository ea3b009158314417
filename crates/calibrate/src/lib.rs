//! Calibration and fidelity for forkbench.
//!
//! * [`calibrate`]: time the real `fork()` on the host for several folio layouts, take the
//!   model's exact op counts for the same layouts, and fit per-operation costs by non-negative
//!   least squares ([`nnls`]); cross-validate by leaving one layout out; write the fitted
//!   [`profile::CostProfile`] to `results/calibration/<host>-<UTC>.json`.
//! * [`fidelity`]: every fork table the LKML thread published beside the model's reproduction
//!   (`results/fidelity.md`), rendered deterministically from a committed measurement file
//!   (`results/fidelity-inputs.json`).
//! * [`instructions`]: the real kernels' exact instructions per fork (QEMU icount guests,
//!   `results/exact/`) explained by the op counts of the strategies that stand for them: a
//!   section of `results/fidelity.md`.
//! * [`profile::CostProfile::caption`]: the one-line "cost profile: …" caption that every table
//!   computed with a calibrated profile carries.
//!
//! The entry points for `cargo xtask calibrate` / `cargo xtask fidelity` are
//! [`calibrate::run_calibrate`] with [`calibrate::CalibrateArgs`] and
//! [`fidelity::run_fidelity`] with [`fidelity::FidelityArgs`]. Both tasks are split by layer:
//! `cli` (flags and the entry point), `measure` (runner calls, through [`runner`]), `fit` or
//! `evaluate` (pure arithmetic) and `render` (text).

pub mod calibrate;
pub mod fidelity;
pub mod instructions;
pub mod microbench;
pub mod nnls;
pub mod profile;
pub mod runner;
pub mod tables;

pub use calibrate::{CalibrateArgs, run_calibrate};
pub use fidelity::{FidelityArgs, run_fidelity};

pub use profile::CostProfile;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Fs(#[from] results::fsio::FsError),
    #[error("{path}: {source}")]
    Json {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Run(#[from] contract::RunError),
    #[error("running `{cmd}` failed: {msg}")]
    Runner { cmd: String, msg: String },
    #[error("fit: {0}")]
    Fit(String),
    #[error("{0}")]
    Input(String),
    #[error(
        "{path} is stale: regenerate it with `cargo xtask fidelity` (it renders from {inputs}); first difference at line {line}"
    )]
    Stale {
        path: std::path::PathBuf,
        inputs: String,
        line: usize,
    },
}

/// Result alias of this crate.
pub type Result<T, E = CalibrateError> = std::result::Result<T, E>;
