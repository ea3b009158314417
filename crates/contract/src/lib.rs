//! The contract between forkbench's runner and everything that drives it (xtask, calibrate,
//! bisect, a guest init): one vocabulary ([`vocab`]), one size parser and duration formatter
//! ([`size`]), the typed records the runner prints ([`record`]) and the typed way to invoke it
//! ([`invoke`]). Nothing here measures; result files on disk are the `results` crate's.

pub mod invoke;
pub mod record;
pub mod size;
pub mod vocab;

pub use invoke::{
    EXIT_UNSUPPORTED, EXIT_USAGE, Invocation, LineParser, ModelOpts, OutputError, RealOpts,
    RunError, Runner, RunnerOutput, SimOpts, Strategies,
};
pub use record::*;
pub use size::{BadSize, Size, fmt_ns, parse_size};
pub use vocab::*;
