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
//! The child stores its own CLOCK_MONOTONIC reading in a shared "stamp" page ([`StampPage`])
//! and calls `_exit(0)` (it inherits the blocked signals, so a Ctrl-C cannot run a handler in
//! it). A stamp earlier than `t1` means the child ran before the parent's second timestamp, so
//! the sample includes part of the child's life (typically its whole exit under SCHED_OTHER,
//! where the new child preempts its parent on the same CPU); such samples are flagged. The stamp
//! page is a separate 4 KiB `MAP_SHARED` VMA: fork duplicates the VMA but copies no page table
//! entries for it.
//!
//! Signals are blocked only until the child is tracked, so a signal arriving later kills and
//! reaps it (see `hostenv::cleanup`); none can strike between fork() and tracking.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

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
    /// Voluntary context switches (the parent blocked inside fork(), e.g. on a lock) across it.
    pub nvcsw: u64,
    /// Page faults (minor) of the parent thread across fork().
    pub minflt: u64,
    pub cpu_before: Option<usize>,
    pub cpu_after: Option<usize>,
    /// Counter values after this fork (cumulative), if counters are in use and worked.
    pub counters: Option<Snapshot>,
    /// Why counters failed during this fork (the caller stops using them).
    pub counter_error: Option<String>,
    /// The child's first timestamp minus t0, if it stamped (it always does unless it was killed).
    pub child_start_ns: Option<u64>,
    /// The child ran before the parent's second timestamp.
    pub child_ran_first: bool,
}

/// One shared anonymous page holding the child's timestamp; see the module docs.
#[derive(Debug)]
pub struct StampPage {
    ptr: NonNull<AtomicU64>,
}

const STAMP_LEN: usize = 4096;

impl StampPage {
    /// Map and pre-fault the page.
    pub fn new() -> io::Result<StampPage> {
        // SAFETY: a fresh shared anonymous mapping at a kernel-chosen address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STAMP_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("mmap of the stamp page: {e}"),
            ));
        }
        let ptr = NonNull::new(p.cast::<AtomicU64>())
            .ok_or_else(|| io::Error::other("mmap returned null"))?;
        let page = StampPage { ptr };
        page.cell().store(0, Ordering::SeqCst);
        Ok(page)
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page aligned, readable and writable, zero-filled (a valid
        // AtomicU64) and lives as long as `self`; only atomic accesses touch it.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for StampPage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the page mapped in `new`; no reference to it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), STAMP_LEN) };
    }
}

/// A fork() failure with a hint at the usual cause.
fn fork_error(e: io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EAGAIN) => {
            "; a process limit was hit (RLIMIT_NPROC, the pids cgroup's pids.max, kernel.pid_max or kernel.threads-max)"
        }
        Some(libc::ENOMEM) => {
            "; not enough memory for the child's page tables and kernel structures (memory cgroup limit or overcommit policy)"
        }
        _ => "",
    };
    io::Error::new(e.kind(), format!("fork() failed: {e}{hint}"))
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
pub fn timed_fork<'c>(
    stamp: &StampPage,
    mut counters: Option<&mut (dyn Counters + 'c)>,
) -> io::Result<ForkTiming> {
    let cell = stamp.cell();
    cell.store(0, Ordering::SeqCst);
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
        // In the child: clock_gettime (vDSO) and an atomic store are async-signal-safe.
        cell.store(monotonic_ns().max(1), Ordering::SeqCst);
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
        return Err(fork_error(e));
    }
    let tracked = hostenv::cleanup::track_child(pid);
    drop(block);
    let reaped = reap(pid);
    let t2 = monotonic_ns();
    drop(tracked);
    reaped?;
    let ru1 = ru1?;
    let child_stamp = cell.load(Ordering::SeqCst);
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
        nvcsw: ru1.nvcsw.saturating_sub(ru0.nvcsw),
        minflt: ru1.minflt.saturating_sub(ru0.minflt),
        cpu_before,
        cpu_after,
        counters: snapshot,
        counter_error,
        child_start_ns: (child_stamp != 0).then(|| child_stamp.saturating_sub(t0)),
        child_ran_first: child_stamp != 0 && child_stamp < t1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hostenv::counters::{Event, EventStatus, MockCounters};
    use std::collections::BTreeMap;

    #[test]
    fn forks_and_reaps() {
        let stamp = StampPage::new().unwrap();
        let t = timed_fork(&stamp, None).unwrap();
        assert!(t.reaped_ns >= t.fork_ns);
        assert!(t.counters.is_none());
        // The child stamped before it was reaped.
        let start = t.child_start_ns.expect("child stamped");
        assert!(start <= t.reaped_ns);
        assert_eq!(t.child_ran_first, start < t.fork_ns);
    }

    #[test]
    fn fork_errors_name_the_likely_cause() {
        let e = fork_error(io::Error::from_raw_os_error(libc::EAGAIN));
        assert!(e.to_string().starts_with("fork() failed: "), "{e}");
        assert!(e.to_string().contains("RLIMIT_NPROC"), "{e}");
        let e = fork_error(io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(e.to_string().contains("page tables"), "{e}");
        assert!(!e.to_string().contains('\n'));
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
        let stamp = StampPage::new().unwrap();
        let t = timed_fork(&stamp, Some(&mut m)).unwrap();
        assert_eq!(m.enables, 1);
        assert!(!m.enabled);
        assert_eq!(t.counters, Some(snap));
        assert_eq!(t.counter_error, None);
    }
}
