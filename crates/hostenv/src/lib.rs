//! The host side of forkbench's real-fork measurements: CPU pinning validated against the
//! process's allowed CPU mask, scheduling policy (SCHED_FIFO with a restoring guard), sysfs reads
//! and guarded writes that are restored on drop, on panic and on SIGINT/SIGTERM/SIGHUP (and,
//! after a SIGKILL, by the next run, from an on-disk [`journal`] of switched knobs), tracking
//! of child processes so a signal never leaves one behind, environment capture (kernel, CPU,
//! memory, selected sysfs values and kernel config options; on arm64 the CPU is named from its
//! MIDR by [`cpuid`]), `/proc` helpers (per-CPU load, memory available) and perf counters behind
//! a small [`counters::Counters`] trait that degrades gracefully when an event (e.g. any hardware
//! event on a VM without a PMU) is missing; core PMUs are found by name or `cpus` file, not only
//! as x86's `cpu`. [`prereq`] reads what the host lets a benchmark do (root, THP and
//! mTHP modes, PMU, `perf_event_paranoid`, SMT, boost) from sysfs and procfs text.
//!
//! This crate knows nothing about forks, folios or page tables; `realfork` builds on it.
//! `unsafe` code lives only in the small `sys` (libc wrappers) and [`cleanup`] (signal handler)
//! modules. It prints one thing: the stderr line of [`journal::StaleKnob::announce`] when a
//! guard puts back a knob that a dead process left switched.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod cleanup;
pub mod counters;
pub mod cpu;
pub mod cpuid;
pub mod env;
pub mod host;
pub mod journal;
pub mod prereq;
pub mod procfs;
pub mod sched;
mod sys;
pub mod sysfs;

use std::io;
use std::path::PathBuf;

pub use sys::{
    Rusage, Uname, children_cpu_ns, clock_ticks_per_sec, geteuid, getrusage_thread, monotonic_ns,
    page_size, pin_malloc_footprint, sched_getcpu, set_thp_disable, thp_disable_flag, uname,
};

/// Errors from host operations. Each renders as one self-contained line that already ends with
/// the OS error, so none of them reports that error again as its `source()`: a chain printer
/// (anyhow's `{:#}`) would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The CPU id is not in the process's allowed set (or is beyond `CPU_SETSIZE`).
    #[error("CPU {cpu} is not in this process's allowed CPU set ({allowed})")]
    CpuNotAllowed { cpu: usize, allowed: String },
    /// Pinning failed although the id was allowed.
    #[error("cannot pin to CPU {cpu}: {error}")]
    Pin { cpu: usize, error: io::Error },
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    /// A system call failed.
    #[error("{what}: {error}")]
    Sys {
        what: &'static str,
        error: io::Error,
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
    pub(crate) fn io(path: impl Into<PathBuf>, error: io::Error) -> Self {
        HostError::Io {
            path: path.into(),
            error,
        }
    }
}

/// Serialises unit tests that use the process-wide cleanup registry or sysfs guards.
#[cfg(test)]
pub(crate) static TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    /// What anyhow's `{:#}` prints: the message, then each `source()` after ": ".
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(s) = next {
            out.push_str(": ");
            out.push_str(&s.to_string());
            next = s.source();
        }
        out
    }

    #[test]
    fn the_os_error_is_rendered_once_even_through_a_chain_printer() {
        let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
        let os = enoent().to_string();
        let errors = [
            sysfs::read_trimmed("/nonexistent/forkbench/knob").unwrap_err(),
            HostError::io("/run/forkbench/knobs.json", enoent()),
            HostError::Sys {
                what: "sched_setscheduler",
                error: enoent(),
            },
            HostError::Pin {
                cpu: 1,
                error: enoent(),
            },
        ];
        for e in errors {
            let shown = chain(&e);
            assert_eq!(shown.matches(&os).count(), 1, "{shown}");
            assert_eq!(shown, e.to_string(), "one self-contained line");
        }
    }
}
