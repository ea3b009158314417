//! A handled signal (SIGINT, SIGTERM) that arrives while a sysfs guard is armed and a child is
//! tracked must restore the guarded value, kill and reap the child, and still terminate the
//! process by that signal. Each test re-runs this test binary as a helper process (the ignored
//! test `signal_helper`), which arms a guard on a temporary file standing in for a sysfs knob,
//! forks a child that waits forever, prints the child's pid and raises the signal on itself.
//! Nothing here sleeps or depends on timing.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use hostenv::cleanup;
use hostenv::sysfs::{SysfsGuard, read_selected};

const HELPER_ENV: &str = "HOSTENV_SIGNAL_HELPER";

#[test]
#[ignore = "helper process for the signal tests in this file; they run it"]
fn signal_helper() {
    let spec = std::env::var(HELPER_ENV).expect("run by the signal tests");
    let (sig, path) = spec.split_once(':').expect("SIG:PATH");
    let sig: i32 = sig.parse().expect("signal number");
    // A test run started in the background by a shell without job control inherits SIGINT
    // ignored, and `cleanup::install` rightly leaves an ignored signal alone (as under nohup):
    // start from the default so the handler under test is installed.
    // SAFETY: SIG_DFL installs no handler; no other thread of this helper handles signals.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
    let guard = SysfsGuard::set(path, "always").expect("guard");
    assert_eq!(read_selected(path).unwrap(), "always");
    // SAFETY: the child only calls async-signal-safe functions (pause) until it is killed.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        loop {
            // SAFETY: pause is async-signal-safe and takes no arguments.
            unsafe { libc::pause() };
        }
    }
    assert!(pid > 0, "fork failed");
    let _child = cleanup::track_child(pid).expect("track");
    println!("CHILD_PID={pid}");
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    // SAFETY: raise only sends a signal to this thread; the installed handler terminates.
    unsafe { libc::raise(sig) };
    drop(guard);
    panic!("still alive after raise({sig})");
}

/// The pid after `CHILD_PID=` anywhere in the helper's stdout. Not a prefix match: with one
/// test thread (one usable CPU, or `--test-threads=1`) libtest prints `test signal_helper ... `
/// before the test runs, so the helper's line continues that one.
fn child_pid(stdout: &str) -> Option<i32> {
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD_PID=").map(|(_, p)| p))
        .and_then(|p| p.trim().parse().ok())
}

fn run_helper(sig: i32) {
    run_helper_with_threads(sig, None);
}

/// Run the helper; `test_threads` sets its libtest thread count (None: libtest's default,
/// which is one on a host with one usable CPU).
fn run_helper_with_threads(sig: i32, test_threads: Option<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let knob = dir.path().join("enabled");
    std::fs::write(&knob, "always inherit madvise [never]\n").unwrap();
    // Output goes to files, not pipes: a child left behind would hold a pipe open forever.
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--ignored", "--exact", "signal_helper", "--nocapture"]);
    if let Some(n) = test_threads {
        cmd.arg(format!("--test-threads={n}"));
    }
    let status = cmd
        .env(HELPER_ENV, format!("{sig}:{}", knob.display()))
        .env(hostenv::journal::JOURNAL_ENV, dir.path().join("knobs.json"))
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let pid = child_pid(&stdout);
    // Reaped by the helper's handler, the pid is gone. Had it been left behind it would still
    // exist (pausing, reparented to init); kill it then, so the failing test leaves nothing.
    let left_behind = pid.filter(|p| Path::new(&format!("/proc/{p}")).exists());
    if let Some(p) = left_behind {
        // SAFETY: kill takes no pointers; p is the helper's child that we are failing on.
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    assert_eq!(
        status.signal(),
        Some(sig),
        "helper should die by signal {sig}: {status:?}\nstdout: {stdout}\nstderr: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    assert_eq!(read_selected(&knob).unwrap(), "never", "knob not restored");
    assert!(
        pid.is_some(),
        "helper did not print its child's pid: {stdout}"
    );
    assert_eq!(left_behind, None, "child was left behind");
}

#[test]
fn sigterm_restores_knob_and_reaps_child() {
    run_helper(libc::SIGTERM);
}

#[test]
fn sigint_restores_knob_and_reaps_child() {
    run_helper(libc::SIGINT);
}

#[test]
fn one_test_thread_as_on_a_one_cpu_host() {
    run_helper_with_threads(libc::SIGTERM, Some(1));
}

#[test]
fn the_child_pid_is_found_after_libtests_own_text() {
    assert_eq!(child_pid("CHILD_PID=42\n"), Some(42));
    assert_eq!(
        child_pid("running 1 test\ntest signal_helper ... CHILD_PID=42\n"),
        Some(42)
    );
    assert_eq!(child_pid("running 1 test\n"), None);
}
