//! A runner started through `Runner::command` dies with its driver: the test re-runs its own
//! binary as a stand-in driver that starts a long-sleeping stand-in runner, SIGKILLs the
//! driver, and waits for the runner's end of a shared pipe to close.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use contract::{Invocation, ModelOpts, Runner};

const HELPER_ENV: &str = "CONTRACT_PDEATHSIG_RUNNER";

/// The stand-in driver: starts the runner (which inherits our stdout), prints its pid, then
/// waits forever for input that never comes.
#[test]
fn pdeathsig_driver_helper() {
    let Some(bin) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let mut child = Runner::new(bin)
        .command(&Invocation::Counts(ModelOpts::default()))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning the stand-in runner");
    println!("runner-pid {}", child.id());
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    let _ = child.kill();
    let _ = child.wait();
}

/// State letter of /proc/PID/stat, None when the process is gone.
fn state(pid: u32) -> Option<char> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.trim().chars().next()
}

#[test]
fn runner_dies_with_its_driver() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("forkbench");
    // `exec` keeps the pid (and the parent-death signal) of the spawned process.
    std::fs::write(&bin, "#!/bin/sh\nexec sleep 120\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut driver = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pdeathsig_driver_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, &bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(driver.stdout.take().unwrap());
    let mut pid = None;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        // libtest prints the test's name on the same line.
        if let Some((_, p)) = line.split_once("runner-pid ") {
            pid = Some(p.trim().parse::<u32>().unwrap());
            break;
        }
        line.clear();
    }
    let pid = pid.expect("the driver printed the runner's pid");
    assert!(
        matches!(state(pid), Some(c) if c != 'Z'),
        "runner not running"
    );
    driver.kill().unwrap(); // SIGKILL: no handler in the driver runs.
    driver.wait().unwrap();
    // The runner holds the write end of the driver's stdout: EOF means it has exited. Without
    // the parent-death signal it would sleep on for two minutes.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = Vec::new();
        let _ = out.read_to_end(&mut rest);
        let _ = tx.send(());
    });
    let closed = rx.recv_timeout(Duration::from_secs(60)).is_ok();
    if !closed {
        kill_stray(pid);
    }
    assert!(closed, "the runner outlived its SIGKILLed driver");
    // Its stdout closes while it exits; wait for the exit itself (a pidfd polls readable once
    // the process has terminated), then it is gone, or a zombie waiting for its new parent.
    assert!(
        exits_within(pid, Duration::from_secs(60)),
        "{:?}",
        state(pid)
    );
    assert!(matches!(state(pid), None | Some('Z')), "{:?}", state(pid));
}

/// Whether process `pid` has exited (or is already gone) within `limit`, through a pidfd.
fn exits_within(pid: u32, limit: Duration) -> bool {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is shared.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        // ESRCH: already reaped.
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let mut p = libc::pollfd {
        fd: fd as i32,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call; the fd is ours and closed below.
    let n = unsafe { libc::poll(&mut p, 1, limit.as_millis() as i32) };
    // SAFETY: closing the pidfd opened above, once.
    unsafe { libc::close(fd as i32) };
    n == 1
}

/// SIGKILL the stand-in runner this test started, should it outlive the test.
fn kill_stray(pid: u32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}
