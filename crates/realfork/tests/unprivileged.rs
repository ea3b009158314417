//! Without privileges the benchmark must still run: verification falls back to smaps, pagemap
//! flags and counters (level `partial`), SCHED_FIFO falls back to SCHED_BATCH with the reason
//! recorded, and kernel-mode perf counting degrades instead of failing. A fork() that fails
//! (EAGAIN under RLIMIT_NPROC) is one clear error line. As root, this test re-runs
//! this test binary as user `nobody` (uid/gid 65534) to check that; as another user it checks in
//! process.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use contract::{RealLayout, RealOpts, Sched, Size};
use realfork::run;
use realfork::verify::LayoutReport;

const HELPER_ENV: &str = "REALFORK_UNPRIVILEGED_HELPER";

fn check_unprivileged_run() {
    assert_ne!(hostenv::geteuid(), 0, "must run unprivileged");
    let out = run(&RealOpts {
        mem: Size(8 << 20),
        iters: 3,
        runs: 1,
        sched: Sched::Fifo,
        ..RealOpts::new(RealLayout::Order0)
    })
    .unwrap_or_else(|e| panic!("unprivileged run failed: {e}"));
    let pre = &out.context.pre;
    assert_eq!(pre.level, "partial", "{}", pre.summary);
    assert!(pre.ok, "{}", pre.summary);
    let r = &out.runs[0];
    let x = r.real.as_deref().unwrap();
    let post = x.post.as_ref().unwrap();
    assert!(post.ok && post.level == "partial", "{}", post.summary);
    assert!(!r.variant.options().contains("unverified"));
    let unavailable = LayoutReport::from_context(&out.context)
        .unwrap()
        .observation
        .unavailable
        .join("; ");
    assert!(unavailable.contains("PFNs are hidden"), "{unavailable}");
    let s = x.sched.as_ref().unwrap();
    if s.effective != Sched::Fifo {
        // Without CAP_SYS_NICE/RLIMIT_RTPRIO: SCHED_BATCH instead, with the reason recorded.
        assert_eq!(s.effective, Sched::Batch, "{s:?}");
        assert!(
            s.fallback
                .as_deref()
                .unwrap()
                .contains("sched_setscheduler(SCHED_FIFO)"),
            "{s:?}"
        );
        assert_eq!(r.variant.options(), "sched-batch");
    }
    // Every counter is either counted or has no value and a reason.
    for (name, c) in &x.counters {
        assert!(c.value.is_some() || c.reason.is_some(), "{name}: {c:?}");
    }
}

/// With the process limit reached, fork() fails with EAGAIN: one clear line, exit code 1, and
/// nothing left behind. Only for an unprivileged user (root ignores RLIMIT_NPROC).
fn check_fork_eagain_is_one_clear_error() {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid, writable rlimit struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut old) }, 0);
    let lim = libc::rlimit {
        rlim_cur: 1,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &lim) }, 0);
    let e = run(&RealOpts {
        mem: Size(8 << 20),
        iters: 3,
        runs: 1,
        ..RealOpts::new(RealLayout::Order0)
    })
    .unwrap_err();
    // SAFETY: restores the saved limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &old) }, 0);
    let msg = e.to_string();
    assert_eq!(e.exit_code(), 1, "{msg}");
    assert!(msg.contains("fork() failed: "), "{msg}");
    assert!(msg.contains("RLIMIT_NPROC"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
#[ignore = "helper process for unprivileged_run_falls_back_and_records_why; run by it"]
fn unprivileged_helper() {
    assert!(std::env::var(HELPER_ENV).is_ok(), "run by the other test");
    check_unprivileged_run();
    check_fork_eagain_is_one_clear_error();
}

#[test]
fn unprivileged_run_falls_back_and_records_why() {
    if hostenv::geteuid() != 0 {
        check_unprivileged_run();
        check_fork_eagain_is_one_clear_error();
        return;
    }
    // Run a copy of this binary from a world-readable directory: the build directory may not
    // be reachable for `nobody` (e.g. a CI checkout under a 0700 directory).
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("unprivileged-helper");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out_path = dir.path().join("out");
    let mut cmd = Command::new(&exe);
    cmd.args(["--ignored", "--exact", "unprivileged_helper", "--nocapture"])
        .env(HELPER_ENV, "1")
        .current_dir("/")
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap());
    // SAFETY: the closure runs in the forked child before exec and calls only setgroups,
    // setgid and setuid, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    assert!(
        status.success(),
        "unprivileged helper failed ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("1 passed"), "helper did not run: {out}");
}
