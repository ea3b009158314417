//! Bisection of a fork-cost metric over a commit range.
//!
//! - [`decide`]: is a revision's metric like the good endpoint's, like the bad one's, or can
//!   we not tell yet? Noisy metrics use a rank test and Welch's t-test together, plus the
//!   candidate's position between the endpoints; deterministic metrics (op counts) compare
//!   exactly.
//! - [`search`]: the bisection itself over an ordered list of revisions, generic over a
//!   [`search::Measure`]r, adding runs while a revision is undecided and skipping it when it
//!   stays undecided.
//! - [`git`]: revision lists and detached worktrees under a scratch directory, removed on
//!   drop; the user's checkout and branch are never touched.
//! - [`measure`]: turning a command's output (one sample per line, the runner's JSON lines, or
//!   a result file) into samples, and the metric names of this workspace, spelled with the
//!   runner contract's words: `sim:ENGINE:STRATEGY:orderN:WHAT` (ENGINE `x86_64` or
//!   `arm64[/dis|/ena|/basic]`; WHAT `time`, `ns_per_pte`, `ptes`, `model_bytes`,
//!   `peak_rss_bytes` or an op counter) and `real:LAYOUT:fork`, run as typed
//!   [`contract::Invocation`]s.
//! - [`kernel`] and [`kernel_cli`]: kernel mode, `--kernel-tree DIR`: each revision built
//!   (`--build-cmd` or tinyconfig plus a shipped fragment), booted in a QEMU guest through the
//!   `guest` crate and its fork time measured inside, one boot per measurement.
//! - [`cli`]: `cargo xtask bisect` and `forkbench bisect-run` (whose internal errors exit 255,
//!   so `git bisect run` stops rather than marking a revision bad).

pub mod cli;
pub mod decide;
pub mod git;
pub mod kernel;
pub mod kernel_build;
pub mod kernel_cli;
pub mod measure;
pub mod search;

pub use decide::{Decision, Policy};
pub use search::{Measure, Outcome, Tested};
