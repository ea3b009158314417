//! `cargo xtask calibrate`: fit per-operation costs of the model to the real `fork()` on this
//! machine, choosing the cost model by how well it predicts layouts it was not fitted on.
//!
//! **Data.** A sweep of the real benchmark run by the suite (`bench-configs/sweep.toml`):
//! 1 GiB forks of `order0`, every mTHP size the kernel offers from 16 KiB to 1 MiB,
//! `pte-order9`, `pmd-order9` and `untouched` (mapped, never faulted: the fixed per-fork cost),
//! interleaved round by round, with the suite's statistics; the same results file gives the
//! real-fork table and the fork-time-by-folio-size plot. The model gives the exact op counts of
//! one fork of each PTE-mapped layout (`forkbench counts`, strategy [`fit::FITTED_STRATEGY`]);
//! `pmd-order9`'s are derived ([`features::huge_pmd_counts`]).
//!
//! **Features.** [`features`] names what the kernel does per fork, per page table, per
//! PTE-mapped page, per batch — the single-PTE path of a small folio or one large-folio batch —
//! and per huge PMD; raw PTE load/store/CAS costs, which no layout separates, are fixed from a
//! userspace microbenchmark. **Fit:** NNLS ([`crate::nnls`]), rows weighted by 1/real time.
//! **Selection:** every candidate feature set is cross-validated by leaving one layout out; the
//! set with the smallest worst held-out error prices the model. A bootstrap over runs gives
//! each cost's sd.
//!
//! **Layers.** [`cli`]: the flags and the entry point; [`measure`]: the sweep file, the runner
//! calls and the microbenchmark; [`features`] and [`fit`]: the terms, fits, cross-validation
//! and profile assembly (pure); [`render`]: the printed report.

pub mod cli;
pub mod features;
pub mod fit;
pub mod measure;
pub mod render;

pub use cli::{CalibrateArgs, profile_from_results, run_calibrate};
pub use fit::{
    FITTED_STRATEGY, LayoutObs, Meta, OTHER_STRATEGIES, RAW_COUNTERS, build_profile, fit_terms,
    leave_one_out, select,
};
pub use measure::sweep_of;
pub use render::{render_cost_model, render_report};
