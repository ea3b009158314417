//! `cargo xtask calibrate`: fit per-operation costs of the model to the real `fork()` on this
//! machine.
//!
//! **Data.** The real benchmark (`forkbench real`) times 1 GiB forks of `order0`, `pte-order9`,
//! an mTHP layout when the kernel offers one (default `mthp-64k`) and `untouched` (mapped, never
//! faulted: no PTEs to copy, so it measures the fixed per-fork cost), interleaved round by round.
//! The model gives exact op counts of one fork of the same layouts (`forkbench counts`, strategy
//! `upstream` — the host runs a v6.9+ kernel — plus `mm-unstable` for a calibrated v6.7
//! prediction) and its measured userspace copy time (`forkbench sim`).
//!
//! **Identifiability.** Every raw counter is either per PTE (PTE reads, writes, atomics,
//! `_mapcount` atomics, page tables) or per batch (refcount atomic, rmap call, batch set-up,
//! `_large_mapcount` atomic), and on these layouts each group moves (almost) in lockstep: with
//! one column per raw counter the design matrix is wider than it has rows, and its rank is
//! recorded in the profile. So the fit is done on **grouped** features:
//! `fixed` (1 per fork), `per_page` (`mapcount_atomics`: the per-page rmap atomic plus all the
//! per-PTE kernel work the model does not count), `per_batch` (`batches`: one refcount atomic,
//! one rmap call and the batch set-up; `refcount_atomics` and `rmap_calls` equal `batches` on
//! every calibration layout). The raw PTE load/store/CAS costs, which only *differ* between
//! strategies, are not identifiable from layouts at all and are **fixed from a userspace
//! microbenchmark** ([`crate::microbench`]) before the fit.
//!
//! **Fit.** NNLS ([`crate::nnls`]) of real time minus the fixed microbenchmark terms over the
//! grouped features, each row weighted by 1/real time (relative error). Four rows (three PTE
//!
//! **Layers.** [`cli`]: the flags and the entry point; [`measure`]: the runner calls and the
//! microbenchmark; [`fit`]: the fit, cross-validation and profile assembly (pure); [`render`]:
//! the printed report.

pub mod cli;
pub mod fit;
pub mod measure;
pub mod render;

pub use cli::{CalibrateArgs, run_calibrate};
pub use fit::{
    FITTED_STRATEGY, LayoutObs, Meta, OTHER_STRATEGY, RAW_COUNTERS, build_profile, default_terms,
    fit_terms, split_terms,
};
pub use measure::{mthp_sizes_kib, order_of_kib, pick_mthp};
pub use render::render_report;
