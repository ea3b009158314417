//! The instruction model: real kernels' instructions per fork (exact guests, QEMU icount)
//! explained by the op counts of the model strategies that stand for them, as a section of
//! `results/fidelity.md`.
//!
//! **Inputs.** The committed exact result files, `results/exact/*.json` (written by `cargo
//! xtask bench --config exact --kernel ...`; every run an icount run), and the stand-ins' op
//! counts for every folio order, memory size and mode they hold, `results/exact-counts.json`
//! (`cargo xtask fidelity --counts` takes them from the model). Rendering is a pure function of
//! the two ([`section`]), so `cargo xtask fidelity --check` keeps the section fresh.
//!
//! **Kernels.** Each kernel is told apart by series (6.1 or 6.12, from its release) and build
//! (Debian's package or self-built), which fixes its stand-in ([`data::StandIn`]): `v6.1` (on
//! arm64 without contpte), `v6.12` (on arm64 with contpte unless its config turns it off).
//!
//! **Fit.** Per group of kernels (one arch, one build) one feature set ([`terms`]), chosen as
//! the calibrated time model chooses its own: the smallest worst leave-one-layout-out error,
//! here over both kernels. NNLS, rows weighted by 1/instructions, sd from the residual
//! covariance ([`fit`]). Tests: (a) leave one layout out (both memory sizes) within each kernel,
//! goal ±3%; (b) one kernel's costs on the other's counts, goal ±10%; and where order 0's
//! instructions went from 6.1 to 6.12 ([`model::Growth`]).
//!
//! **Layers.** [`data`]: the exact files; [`counts`]: the stand-ins' counts file and how it is
//! made; [`terms`], [`fit`], [`model`]: pure arithmetic; [`render`]: the text.

pub mod causes;
pub mod counts;
pub mod data;
pub mod fit;
pub mod model;
pub mod render;
pub mod terms;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use counts::StandInCounts;
pub use data::{ExactData, load_dir};
pub use model::{InstrModel, analyse};
pub use render::render_section;

use crate::Result;

/// Where the instruction model's inputs live, relative to the repository root.
pub const EXACT_DIR: &str = "results/exact";
pub const COUNTS_FILE: &str = "results/exact-counts.json";

/// The section rendered from the exact files of `exact_dir` and the counts file `counts`.
pub fn section(exact_dir: &Path, counts: &Path) -> Result<String> {
    let data = load_dir(exact_dir)?;
    let counts = StandInCounts::load(counts)?;
    Ok(render_section(&analyse(&data, &counts)?))
}

/// Take from the model (`forkbench`) every count the exact files of `exact_dir` need and write
/// them to `counts` (replacing it).
pub fn measure_counts(
    forkbench: &Path,
    exact_dir: &Path,
    counts: &Path,
    tool_rev: Option<String>,
) -> Result<()> {
    let data = load_dir(exact_dir)?;
    let keys = counts::needed(&data)?;
    let entries = counts::measure(forkbench, &keys)?;
    StandInCounts::new(entries, tool_rev).save(counts)?;
    eprintln!(
        "fidelity: wrote {} ({} counts)",
        counts.display(),
        keys.len()
    );
    Ok(())
}
