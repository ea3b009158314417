//! The system calls `hostenv` needs, through `nix` (affinity with its `CpuSet`, getcpu,
//! rusage, clocks, uname, flock, prctl, ids, page size). Only the scheduling-policy calls,
//! which `nix` does not wrap, use `libc` directly; each of those `unsafe` blocks is here.

use std::fs::File;
use std::io;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sched::CpuSet;
use nix::sys::resource::{UsageWho, getrusage};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::{Pid, SysconfVar, sysconf};

/// The number of CPU ids a `cpu_set_t` can hold.
pub const CPU_SETSIZE: usize = CpuSet::count();

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The calling thread's allowed CPU ids (`sched_getaffinity(0)`), ascending.
pub fn sched_getaffinity() -> io::Result<Vec<usize>> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0)).map_err(errno)?;
    Ok((0..CPU_SETSIZE)
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .collect())
}

/// Set the calling thread's allowed CPUs. Ids `>= CPU_SETSIZE` give `EINVAL` (never an abort).
pub fn sched_setaffinity(cpus: &[usize]) -> io::Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(errno)?;
    }
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(errno)
}

/// The CPU the calling thread runs on right now (`sched_getcpu`).
pub fn sched_getcpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
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
    let ru = getrusage(UsageWho::RUSAGE_THREAD).map_err(errno)?;
    let u = |v: libc::c_long| u64::try_from(v).unwrap_or(0);
    Ok(Rusage {
        minflt: u(ru.minor_page_faults()),
        majflt: u(ru.major_page_faults()),
        nvcsw: u(ru.voluntary_context_switches()),
        nivcsw: u(ru.involuntary_context_switches()),
    })
}

/// CPU time (user + system, ns) of this process's children that have been waited for: a
/// runner's own time and that of the forks it reaped.
pub fn children_cpu_ns() -> u64 {
    let Ok(ru) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return 0;
    };
    let ns = |t: nix::sys::time::TimeVal| {
        (t.tv_sec().max(0) as u64) * 1_000_000_000 + (t.tv_usec().max(0) as u64) * 1_000
    };
    ns(ru.user_time()) + ns(ru.system_time())
}

/// `sysconf(_SC_CLK_TCK)`: the unit of `/proc/stat` (USER_HZ, 100 on Linux).
pub fn clock_ticks_per_sec() -> u64 {
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(100)
}

/// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds (vDSO, no syscall on x86_64 with tsc).
#[inline(always)]
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC always exists on Linux; the error arm is never taken.
    let Ok(ts) = clock_gettime(ClockId::CLOCK_MONOTONIC) else {
        return 0;
    };
    (ts.tv_sec() as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec() as u64)
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
    let u = nix::sys::utsname::uname().map_err(errno)?;
    let s = |f: &std::ffi::OsStr| f.to_string_lossy().into_owned();
    Ok(Uname {
        sysname: s(u.sysname()),
        nodename: s(u.nodename()),
        release: s(u.release()),
        version: s(u.version()),
        machine: s(u.machine()),
    })
}

fn flock(f: File, arg: FlockArg) -> io::Result<Flock<File>> {
    let mut f = f;
    loop {
        match Flock::lock(f, arg) {
            Ok(l) => return Ok(l),
            Err((back, Errno::EINTR)) => f = back,
            // A kernel built without CONFIG_FILE_LOCKING (tinyconfig) has no flock(2): say so
            // rather than a bare "Function not implemented" on whatever path was locked.
            Err((_, Errno::ENOSYS)) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "flock(2) is not implemented: the kernel was built without \
                     CONFIG_FILE_LOCKING, which the sysfs knob journal needs",
                ));
            }
            Err((_, e)) => return Err(errno(e)),
        }
    }
}

/// Block until `f` holds the exclusive `flock`; it is released when the returned lock drops.
pub fn flock_exclusive(f: File) -> io::Result<Flock<File>> {
    flock(f, FlockArg::LockExclusive)
}

/// Take the exclusive `flock` if nobody holds it; `None` if someone does.
pub fn try_flock_exclusive(f: File) -> io::Result<Option<Flock<File>>> {
    match flock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Block until `f` holds a shared `flock`.
pub fn flock_shared(f: File) -> io::Result<Flock<File>> {
    flock(f, FlockArg::LockShared)
}

/// `prctl(PR_GET_THP_DISABLE)`: the process-wide THP-disable setting (0 = THP allowed).
pub fn thp_disable_flag() -> io::Result<i32> {
    nix::sys::prctl::get_thp_disable()
        .map(i32::from)
        .map_err(errno)
}

/// `prctl(PR_SET_THP_DISABLE, on)`: disable (or re-allow) THP for the whole process. It also
/// makes khugepaged drop this mm at its next visit instead of scanning it again.
pub fn set_thp_disable(on: bool) -> io::Result<()> {
    nix::sys::prctl::set_thp_disable(on).map_err(errno)
}

/// Effective user id.
pub fn geteuid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Process id.
pub fn getpid() -> i32 {
    nix::unistd::getpid().as_raw()
}

/// The base page size (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> Option<u64> {
    sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v > 0)
}

/// Fix glibc's allocator so the process's resident footprint does not drift from one run to
/// the next: large blocks (pagemap reads, sample buffers) always get their own mapping, freed
/// with them, instead of glibc raising its mmap threshold after the first free and keeping
/// them in a heap that only grows; and the heap's free top goes back to the kernel at once.
/// A fork copies the parent's whole address space, so a heap a few hundred KiB larger in a
/// later run is a few thousand more instructions per fork in exact mode. `false` where the C
/// library refused (or is not glibc).
pub fn pin_malloc_footprint() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: mallopt only sets allocator parameters; called before the timed runs, on the
        // thread that allocates, with constant in-range values.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 4096) == 1
                && libc::mallopt(libc::M_TOP_PAD, 0) == 1
        }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
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
        assert!(b >= a && a > 0);
        let u = uname().unwrap();
        assert!(!u.release.is_empty());
        assert_eq!(
            u.release,
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap()
                .trim()
        );
        getrusage_thread().unwrap();
        assert!(page_size().unwrap() >= 4096);
        sched_get().unwrap();
        assert_eq!(getpid(), std::process::id() as i32);
    }

    #[test]
    fn thp_disable_round_trips() {
        let before = thp_disable_flag().unwrap();
        set_thp_disable(true).unwrap();
        assert_eq!(thp_disable_flag().unwrap(), 1);
        set_thp_disable(before != 0).unwrap();
        assert_eq!(thp_disable_flag().unwrap(), before);
    }

    #[test]
    fn exclusive_flock_excludes_a_second_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        std::fs::write(&p, "").unwrap();
        let held = flock_exclusive(File::open(&p).unwrap()).unwrap();
        let other = File::open(&p).unwrap();
        assert!(matches!(
            Flock::lock(other, FlockArg::LockExclusiveNonblock),
            Err((_, Errno::EWOULDBLOCK))
        ));
        drop(held);
        assert!(Flock::lock(File::open(&p).unwrap(), FlockArg::LockExclusiveNonblock).is_ok());
    }
}
