//! The host side of forkbench's real-fork measurements: CPU pinning validated against the
//! process's allowed CPU mask, scheduling policy (SCHED_FIFO with a restoring guard), sysfs reads
//! and guarded writes that are restored on drop, on panic and on SIGINT/SIGTERM/SIGHUP, tracking
//! of child processes so a signal never leaves one behind, environment capture (kernel, CPU,
//! memory, selected sysfs values and kernel config options), `/proc` helpers (per-CPU load, memory
//! available) and perf counters behind a small [`counters::Counters`] trait that degrades
//! gracefully when an event (e.g. any hardware event on a VM without a PMU) is missing.
//!
//! This crate knows nothing about forks, folios or page tables; `realfork` builds on it.
//! `unsafe` code lives only in the small `sys` (libc wrappers) and [`cleanup`] (signal handler)
//! modules.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod cleanup;
pub mod counters;
pub mod cpu;
pub mod env;
pub mod host;
pub mod procfs;
pub mod sched;
mod sys;
pub mod sysfs;

use std::io;
use std::path::PathBuf;

pub use sys::{
    Rusage, Uname, geteuid, getrusage_thread, monotonic_ns, page_size, sched_getcpu,
    set_thp_disable, thp_disable_flag, uname,
};

/// Errors from host operations. Each renders as one self-contained line.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The CPU id is not in the process's allowed set (or is beyond `CPU_SETSIZE`).
    #[error("CPU {cpu} is not in this process's allowed CPU set ({allowed})")]
    CpuNotAllowed { cpu: usize, allowed: String },
    /// Pinning failed although the id was allowed.
    #[error("cannot pin to CPU {cpu}: {source}")]
    Pin {
        cpu: usize,
        #[source]
        source: io::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// A written or restored value did not read back as expected.
    #[error("{path}: wrote {wrote:?} but it reads back as {found:?}")]
    Mismatch {
        path: PathBuf,
        wrote: String,
        found: String,
    },
    /// A value the caller asked for is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The path or value cannot be kept in a signal-safe restore slot.
    #[error("{path}: path or value too long to restore from a signal handler")]
    TooLongForSignalRestore { path: PathBuf },
    /// All signal-safe slots of a kind are in use.
    #[error("too many {what} at once (at most {max})")]
    RegistryFull { what: &'static str, max: usize },
}

impl HostError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Serialises unit tests that use the process-wide cleanup registry or sysfs guards.
#[cfg(test)]
pub(crate) static TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
