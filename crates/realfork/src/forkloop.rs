//! One timed `fork()`: the only place that forks.
//!
//! Order of events in the parent, with the timed section marked:
//!
//! ```text
//! block SIGINT/SIGTERM/SIGHUP · getrusage · sched_getcpu · counters on
//! t0 = CLOCK_MONOTONIC ── fork() ── t1 = CLOCK_MONOTONIC          <- primary sample: t1 - t0
//! counters off · getrusage · sched_getcpu · track child · unblock signals
//! waitpid(child) ── t2 = CLOCK_MONOTONIC                          <- fork-to-reaped: t2 - t0
//! ```
//!
//! The child calls `_exit(0)` at once (it inherits the blocked signals, so a Ctrl-C cannot run
//! a handler in it). Signals are blocked only until the child is tracked, so a signal arriving
//! later kills and reaps it (see `hostenv::cleanup`); none can strike between fork() and
//! tracking.

use std::io;

use hostenv::counters::{Counters, Snapshot};
use hostenv::{getrusage_thread, monotonic_ns, sched_getcpu};

/// Measurements of one fork.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForkTiming {
    /// Parent's fork() call, ns.
    pub fork_ns: u64,
    /// From before fork() until the child was reaped, ns.
    pub reaped_ns: u64,
    /// Involuntary context switches of the parent thread across fork().
    pub nivcsw: u64,
    /// Page faults (minor) of the parent thread across fork().
    pub minflt: u64,
    pub cpu_before: Option<usize>,
    pub cpu_after: Option<usize>,
    /// Counter values after this fork (cumulative), if counters are in use and worked.
    pub counters: Option<Snapshot>,
    /// Why counters failed during this fork (the caller stops using them).
    pub counter_error: Option<String>,
}

struct SigBlock {
    old: libc::sigset_t,
}

impl SigBlock {
    fn new() -> io::Result<SigBlock> {
        // SAFETY: sigset_t is plain data; the calls below initialise it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t we own.
        unsafe { libc::sigemptyset(&mut set) };
        for s in hostenv::cleanup::HANDLED_SIGNALS {
            // SAFETY: `set` is valid; s is a valid signal number.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        // SAFETY: both pointers are valid sigset_t values.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(SigBlock { old })
    }
}

impl Drop for SigBlock {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new`.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

/// Wait for `pid`, retrying on EINTR; error unless it exited with status 0.
fn reap(pid: libc::pid_t) -> io::Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable int.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(io::Error::new(e.kind(), format!("waitpid({pid}): {e}")));
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "fork child {pid} ended abnormally (wait status {status:#x})"
        )))
    }
}

/// Fork once as described in the module docs. With `counters`, they are enabled just around
/// the fork() call and read after it.
pub fn timed_fork<'c>(mut counters: Option<&mut (dyn Counters + 'c)>) -> io::Result<ForkTiming> {
    let block = SigBlock::new()?;
    let ru0 = getrusage_thread()?;
    let cpu_before = sched_getcpu();
    let mut counter_error = None;
    if let Some(c) = counters.as_deref_mut()
        && let Err(e) = c.enable()
    {
        counter_error = Some(format!("enable: {e}"));
    }
    let t0 = monotonic_ns();
    // SAFETY: the child calls only `_exit`, which is async-signal-safe, so forking a
    // multi-threaded process is fine.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child: leave at once without running any Rust or atexit code.
        unsafe { libc::_exit(0) };
    }
    let t1 = monotonic_ns();
    let fork_err = (pid < 0).then(io::Error::last_os_error);
    if let Some(c) = counters.as_deref_mut()
        && let Err(e) = c.disable()
    {
        counter_error.get_or_insert(format!("disable: {e}"));
    }
    let ru1 = getrusage_thread();
    let cpu_after = sched_getcpu();
    if let Some(e) = fork_err {
        return Err(io::Error::new(e.kind(), format!("fork: {e}")));
    }
    let tracked = hostenv::cleanup::track_child(pid);
    drop(block);
    let reaped = reap(pid);
    let t2 = monotonic_ns();
    drop(tracked);
    reaped?;
    let ru1 = ru1?;
    let snapshot = match counters {
        Some(c) if counter_error.is_none() => match c.read() {
            Ok(s) => Some(s),
            Err(e) => {
                counter_error = Some(format!("read: {e}"));
                None
            }
        },
        _ => None,
    };
    Ok(ForkTiming {
        fork_ns: t1.saturating_sub(t0),
        reaped_ns: t2.saturating_sub(t0),
        nivcsw: ru1.nivcsw.saturating_sub(ru0.nivcsw),
        minflt: ru1.minflt.saturating_sub(ru0.minflt),
        cpu_before,
        cpu_after,
        counters: snapshot,
        counter_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostenv::counters::{Event, EventStatus, MockCounters};
    use std::collections::BTreeMap;

    #[test]
    fn forks_and_reaps() {
        let t = timed_fork(None).unwrap();
        assert!(t.reaped_ns >= t.fork_ns);
        assert!(t.counters.is_none());
    }

    #[test]
    fn counters_are_switched_around_the_fork_and_read() {
        let snap = hostenv::counters::Snapshot {
            values: BTreeMap::from([(Event::PageFaults, 5)]),
            ..Default::default()
        };
        let mut m = MockCounters::new(
            vec![EventStatus {
                event: Event::PageFaults,
                available: true,
                kernel: true,
                reason: None,
            }],
            vec![snap.clone()],
        );
        let t = timed_fork(Some(&mut m)).unwrap();
        assert_eq!(m.enables, 1);
        assert!(!m.enabled);
        assert_eq!(t.counters, Some(snap));
        assert_eq!(t.counter_error, None);
    }
}
