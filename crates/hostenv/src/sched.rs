//! Scheduling policy of the calling thread: switch to SCHED_FIFO or SCHED_BATCH (without
//! `SCHED_RESET_ON_FORK`, so children inherit it) under a guard that restores the previous policy,
//! and read the RT throttling budget.
//!
//! Why SCHED_BATCH: a new SCHED_BATCH task never preempts the running task at wake-up (the fair
//! class skips wake-up preemption for non-SCHED_NORMAL tasks), so a forked child pinned to the
//! parent's CPU waits until the parent blocks, as under SCHED_FIFO. Unlike SCHED_FIFO it needs no
//! privilege, which makes it the fallback when SCHED_FIFO is not permitted.

use serde::Serialize;

use crate::HostError;
use crate::sys;

/// A scheduling policy as it is recorded in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// SCHED_OTHER (CFS/EEVDF).
    Other,
    /// SCHED_FIFO.
    Fifo,
    /// SCHED_BATCH.
    Batch,
    /// Anything else (SCHED_BATCH, SCHED_IDLE, SCHED_RR, SCHED_DEADLINE).
    Unusual,
}

/// The calling thread's current policy, static priority and whether `SCHED_RESET_ON_FORK` is set.
pub fn current() -> Result<(Policy, i32, bool), HostError> {
    let (raw, prio) = sys::sched_get().map_err(|error| HostError::Sys {
        what: "sched_getscheduler",
        error,
    })?;
    let reset = raw & libc::SCHED_RESET_ON_FORK != 0;
    let policy = match raw & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_OTHER => Policy::Other,
        libc::SCHED_FIFO => Policy::Fifo,
        libc::SCHED_BATCH => Policy::Batch,
        _ => Policy::Unusual,
    };
    Ok((policy, prio, reset))
}

/// The calling thread runs SCHED_FIFO (or SCHED_BATCH) while this exists; dropping it restores
/// the previous policy and priority.
#[derive(Debug)]
pub struct FifoGuard {
    previous: (i32, i32),
    policy: Policy,
    priority: i32,
}

impl FifoGuard {
    /// The static priority in use (0 for SCHED_BATCH).
    pub fn priority(&self) -> i32 {
        self.priority
    }

    /// The policy in use.
    pub fn policy(&self) -> Policy {
        self.policy
    }
}

/// Switch the calling thread to SCHED_BATCH (no privilege needed). Children forked while the
/// guard lives inherit it.
pub fn set_batch() -> Result<FifoGuard, HostError> {
    let previous = sys::sched_get().map_err(|error| HostError::Sys {
        what: "sched_getscheduler",
        error,
    })?;
    sys::sched_set(libc::SCHED_BATCH, 0).map_err(|error| HostError::Sys {
        what: "sched_setscheduler(SCHED_BATCH)",
        error,
    })?;
    Ok(FifoGuard {
        previous,
        policy: Policy::Batch,
        priority: 0,
    })
}

impl FifoGuard {
    /// Busy-wait for `pause` as SCHED_OTHER, then return to the guard's policy. For pausing a
    /// SCHED_FIFO loop without idling the CPU: the time does not count against the RT budget,
    /// a runnable normal task can take the CPU meanwhile, and the CPU (on a VM, the vCPU) never
    /// goes idle. Fails only if the policy cannot be restored, which leaves the thread SCHED_OTHER.
    pub fn spin_as_other(&self, pause: std::time::Duration) -> Result<(), HostError> {
        let (policy, priority) = match self.policy {
            Policy::Fifo => (libc::SCHED_FIFO, self.priority),
            Policy::Batch => (libc::SCHED_BATCH, 0),
            Policy::Other | Policy::Unusual => (libc::SCHED_OTHER, 0),
        };
        sys::sched_set(libc::SCHED_OTHER, 0).map_err(|error| HostError::Sys {
            what: "sched_setscheduler(SCHED_OTHER) for the pause",
            error,
        })?;
        let until = crate::monotonic_ns()
            .saturating_add(u64::try_from(pause.as_nanos()).unwrap_or(u64::MAX));
        while crate::monotonic_ns() < until {
            std::hint::spin_loop();
        }
        sys::sched_set(policy, priority).map_err(|error| HostError::Sys {
            what: "sched_setscheduler after the pause",
            error,
        })
    }
}

impl Drop for FifoGuard {
    fn drop(&mut self) {
        // Lowering one's own policy is always permitted.
        let _ = sys::sched_set(self.previous.0, self.previous.1);
    }
}

/// The valid SCHED_FIFO static priorities (`sched_get_priority_min/max`; 1..=99 on Linux).
pub fn fifo_priority_range() -> Result<(i32, i32), HostError> {
    sys::sched_priority_range(libc::SCHED_FIFO).map_err(|error| HostError::Sys {
        what: "sched_get_priority_min/max(SCHED_FIFO)",
        error,
    })
}

/// `Invalid` unless `priority` is a valid SCHED_FIFO priority.
pub fn check_fifo_priority(priority: i32) -> Result<(), HostError> {
    let (lo, hi) = fifo_priority_range()?;
    if !(lo..=hi).contains(&priority) {
        return Err(HostError::Invalid(format!(
            "SCHED_FIFO priority {priority} is outside {lo}..={hi}"
        )));
    }
    Ok(())
}

/// Switch the calling thread to SCHED_FIFO at `priority`. Children forked while the guard lives
/// inherit SCHED_FIFO. Fails with the OS error (typically EPERM without CAP_SYS_NICE or an
/// RLIMIT_RTPRIO) and leaves the policy unchanged.
pub fn set_fifo(priority: i32) -> Result<FifoGuard, HostError> {
    check_fifo_priority(priority)?;
    let previous = sys::sched_get().map_err(|error| HostError::Sys {
        what: "sched_getscheduler",
        error,
    })?;
    sys::sched_set(libc::SCHED_FIFO, priority).map_err(|error| HostError::Sys {
        what: "sched_setscheduler(SCHED_FIFO)",
        error,
    })?;
    Ok(FifoGuard {
        previous,
        policy: Policy::Fifo,
        priority,
    })
}

/// RT throttling: (`sched_rt_runtime_us`, `sched_rt_period_us`); runtime -1 means unlimited.
pub fn rt_budget() -> Option<(i64, i64)> {
    let r = crate::sysfs::read_trimmed("/proc/sys/kernel/sched_rt_runtime_us").ok()?;
    let p = crate::sysfs::read_trimmed("/proc/sys/kernel/sched_rt_period_us").ok()?;
    Some((r.parse().ok()?, p.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_guard_restores_or_reports_eperm() {
        let before = current().unwrap();
        match set_fifo(10) {
            Ok(g) => {
                assert_eq!(current().unwrap().0, Policy::Fifo);
                assert_eq!(g.priority(), 10);
                drop(g);
                assert_eq!(current().unwrap(), before);
            }
            Err(HostError::Sys { error, .. }) => {
                assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}");
                assert_eq!(current().unwrap(), before);
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    #[test]
    fn batch_guard_sets_and_restores() {
        let before = current().unwrap();
        let g = set_batch().unwrap();
        assert_eq!(g.policy(), Policy::Batch);
        assert_eq!(current().unwrap().0, Policy::Batch);
        drop(g);
        assert_eq!(current().unwrap(), before);
    }

    #[test]
    fn spin_pause_returns_to_the_guarded_policy() {
        let before = current().unwrap();
        let pause = std::time::Duration::from_micros(200);
        let g = set_batch().unwrap();
        let t = crate::monotonic_ns();
        g.spin_as_other(pause).unwrap();
        assert!(
            crate::monotonic_ns() - t >= 200_000,
            "the pause is never cut short"
        );
        assert_eq!(current().unwrap().0, Policy::Batch);
        drop(g);
        if let Ok(g) = set_fifo(7) {
            g.spin_as_other(pause).unwrap();
            assert_eq!(current().unwrap(), (Policy::Fifo, 7, false));
        }
        assert_eq!(current().unwrap(), before);
    }

    #[test]
    fn bad_priority_is_rejected() {
        assert!(matches!(set_fifo(1000), Err(HostError::Invalid(_))));
    }
}
