//! The real `fork()` microbenchmark: map one 2 MiB-aligned anonymous VMA, set it up in a chosen
//! folio layout (order-0, PTE- or PMD-mapped order-9, an mTHP size, or untouched), prove the
//! layout with pagemap + kpageflags, smaps and THP counter deltas, then time the parent's
//! `fork()` over it with `CLOCK_MONOTONIC`, run by run, and re-verify after every run.
//!
//! [`run`] takes the contract's [`contract::RealOpts`] and returns a [`RealOutput`]: one
//! [`contract::RealContext`] (host environment, pinning, timer cost, populate and the pre-run
//! verification, captured once) and one [`contract::RunRecord`] per run, whose `samples_ns` are
//! the fork() calls and whose typed [`contract::RealExtra`] holds what changes per run
//! (see `runner.rs`). Host concerns (pinning, SCHED_FIFO, sysfs guards, counters, signals, the
//! journal of switched knobs) come from `hostenv`. This crate prints nothing but the one stderr
//! line per knob that a killed run left switched and this run put back; [`summary`] only
//! formats lines for the binary.
//!
//! Every bad input is a [`RealError`] whose [`RealError::exit_code`] is 2 and whose message is
//! one line; so is a layout that is not what was asked (unless `--allow-unverified`).

#![deny(unsafe_op_in_unsafe_fn)]

pub mod args;
pub mod coreprobe;
mod forkloop;
pub mod layout;
pub mod pagemap;
mod region;
mod runner;
pub mod smaps;
pub mod summary;
pub mod tick;
pub mod verify;
pub mod vmstat;

pub use args::{Plan, plan};
pub use layout::RealLayout;
pub use runner::{HOLD_AFTER_KNOB_SWITCH_ENV, KNOB_SWITCHED_LINE, RealOutput, run, run_each};

use hostenv::HostError;

/// Why `forkbench real` stopped. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum RealError {
    /// Bad arguments or a request this host cannot satisfy (unknown layout, mTHP size not
    /// offered, no THP, not enough memory, CPU not allowed). Exit code 2.
    #[error("{0}")]
    BadInput(String),
    /// This host cannot produce the layout (no THP, mTHP size not offered, switching a knob
    /// needs root, another arch). Exit code 3: a driver records a skip.
    #[error("{0}")]
    Unsupported(String),
    /// The layout is not what was asked, or cannot be verified. Exit code 3, like
    /// [`RealError::Unsupported`]: this host did not give the layout.
    #[error("{0}")]
    Unverified(String),
    /// A host operation failed. Exit code 1.
    #[error(transparent)]
    Host(HostError),
    /// An I/O or system call failed. Exit code 1. The message ends with the OS error, so it is
    /// not also the `source()` (a chain printer would print it twice).
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

impl RealError {
    /// [`contract::EXIT_USAGE`] for bad input, [`contract::EXIT_UNSUPPORTED`] for a layout
    /// this host cannot give, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RealError::BadInput(_) => contract::EXIT_USAGE,
            RealError::Unsupported(_) | RealError::Unverified(_) => contract::EXIT_UNSUPPORTED,
            RealError::Host(_) | RealError::Io { .. } => 1,
        }
    }

    /// Whether this is a usage-style error (exit code 2).
    pub fn is_usage(&self) -> bool {
        self.exit_code() == contract::EXIT_USAGE
    }

    pub(crate) fn io(what: impl Into<String>, error: std::io::Error) -> Self {
        RealError::Io {
            what: what.into(),
            error,
        }
    }
}

impl From<HostError> for RealError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::CpuNotAllowed { .. } | HostError::Invalid(_) => {
                RealError::BadInput(e.to_string())
            }
            e => RealError::Host(e),
        }
    }
}
