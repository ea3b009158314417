//! Thin, safe wrappers over the few libc calls `hostenv` needs (affinity, scheduling policy,
//! rusage, clocks, uname, flock, prctl). Every `unsafe` block of the crate outside the signal
//! handler lives here; each returns `io::Result` instead of aborting on bad input.

use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;

/// `CPU_SETSIZE`: the number of CPU ids a `cpu_set_t` can hold.
pub const CPU_SETSIZE: usize = libc::CPU_SETSIZE as usize;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn empty_cpu_set() -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is a plain bit array; all-zero is the valid empty set.
    unsafe { MaybeUninit::<libc::cpu_set_t>::zeroed().assume_init() }
}

/// The calling thread's allowed CPU ids (`sched_getaffinity(0)`), ascending.
pub fn sched_getaffinity() -> io::Result<Vec<usize>> {
    let mut set = empty_cpu_set();
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    check(unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &mut set) })?;
    Ok((0..CPU_SETSIZE)
        // SAFETY: i < CPU_SETSIZE, so CPU_ISSET stays inside the set.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

/// Set the calling thread's allowed CPUs. Ids `>= CPU_SETSIZE` give `EINVAL` (never an abort).
pub fn sched_setaffinity(cpus: &[usize]) -> io::Result<()> {
    let mut set = empty_cpu_set();
    for &c in cpus {
        if c >= CPU_SETSIZE {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: c < CPU_SETSIZE was checked just above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    check(unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) })?;
    Ok(())
}

/// The CPU the calling thread runs on right now (`sched_getcpu`).
pub fn sched_getcpu() -> Option<usize> {
    // SAFETY: no arguments, no memory is touched.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// The calling thread's scheduling policy (with flags such as `SCHED_RESET_ON_FORK`) and
/// static priority.
pub fn sched_get() -> io::Result<(i32, i32)> {
    // SAFETY: no memory is touched.
    let policy = check(unsafe { libc::sched_getscheduler(0) })?;
    let mut param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid, writable sched_param.
    check(unsafe { libc::sched_getparam(0, &mut param) })?;
    Ok((policy, param.sched_priority))
}

/// Set the calling thread's scheduling policy and static priority.
pub fn sched_set(policy: i32, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param that outlives the call.
    check(unsafe { libc::sched_setscheduler(0, policy, &param) })?;
    Ok(())
}

/// Valid static priority range of a policy.
pub fn sched_priority_range(policy: i32) -> io::Result<(i32, i32)> {
    // SAFETY: no memory is touched.
    let lo = check(unsafe { libc::sched_get_priority_min(policy) })?;
    // SAFETY: no memory is touched.
    let hi = check(unsafe { libc::sched_get_priority_max(policy) })?;
    Ok((lo, hi))
}

/// Resource usage of the calling thread (`RUSAGE_THREAD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rusage {
    pub minflt: u64,
    pub majflt: u64,
    pub nvcsw: u64,
    pub nivcsw: u64,
}

/// `getrusage(RUSAGE_THREAD)`.
pub fn getrusage_thread() -> io::Result<Rusage> {
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `ru` points to writable memory of the right size and type.
    check(unsafe { libc::getrusage(libc::RUSAGE_THREAD, ru.as_mut_ptr()) })?;
    // SAFETY: getrusage succeeded, so it filled the struct (which was zeroed anyway).
    let ru = unsafe { ru.assume_init() };
    let u = |v: libc::c_long| u64::try_from(v).unwrap_or(0);
    Ok(Rusage {
        minflt: u(ru.ru_minflt),
        majflt: u(ru.ru_majflt),
        nvcsw: u(ru.ru_nvcsw),
        nivcsw: u(ru.ru_nivcsw),
    })
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds (vDSO, no syscall on x86_64 with tsc).
#[inline(always)]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The fields of `uname(2)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Uname {
    pub sysname: String,
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

/// `uname(2)`.
pub fn uname() -> io::Result<Uname> {
    let mut u = MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: `u` points to writable memory for a utsname.
    check(unsafe { libc::uname(u.as_mut_ptr()) })?;
    // SAFETY: uname succeeded and filled the struct (which was zeroed anyway).
    let u = unsafe { u.assume_init() };
    let s = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Uname {
        sysname: s(&u.sysname),
        nodename: s(&u.nodename),
        release: s(&u.release),
        version: s(&u.version),
        machine: s(&u.machine),
    })
}

/// `flock(fd, LOCK_EX)`: blocks until this open file holds the exclusive lock. The lock goes
/// away when the file is closed.
pub fn flock_exclusive(f: &File) -> io::Result<()> {
    flock(f, libc::LOCK_EX)
}

/// `flock(fd, LOCK_SH)`: blocks until this open file holds a shared lock.
pub fn flock_shared(f: &File) -> io::Result<()> {
    flock(f, libc::LOCK_SH)
}

fn flock(f: &File, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: the fd is valid for the lifetime of `f`.
        let rc = unsafe { libc::flock(f.as_raw_fd(), op) };
        match check(rc) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `prctl(PR_GET_THP_DISABLE)`: the process-wide THP-disable setting (0 = THP allowed).
pub fn thp_disable_flag() -> io::Result<i32> {
    // SAFETY: PR_GET_THP_DISABLE takes no pointer arguments.
    check(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) })
}

/// `prctl(PR_SET_THP_DISABLE, on)`: disable (or re-allow) THP for the whole process. It also
/// makes khugepaged drop this mm at its next visit instead of scanning it again.
pub fn set_thp_disable(on: bool) -> io::Result<()> {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(on), 0, 0, 0) })?;
    Ok(())
}

/// Effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Process id.
pub fn getpid() -> i32 {
    // SAFETY: getpid cannot fail and touches no memory.
    unsafe { libc::getpid() }
}

/// The base page size (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> Option<u64> {
    // SAFETY: sysconf takes an integer and touches no memory.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setaffinity_rejects_huge_ids_without_aborting() {
        let err = sched_setaffinity(&[CPU_SETSIZE + 5]).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn basic_queries_work() {
        assert!(!sched_getaffinity().unwrap().is_empty());
        assert!(sched_getcpu().is_some());
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        assert!(!uname().unwrap().release.is_empty());
        getrusage_thread().unwrap();
        assert!(page_size().unwrap() >= 4096);
        sched_get().unwrap();
    }
}
