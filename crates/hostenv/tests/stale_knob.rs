//! A knob left switched by a process that was SIGKILLed (nothing can restore after SIGKILL) must
//! not be taken for the original by the next guard: the journal keeps the true original, and
//! the next guard on the same file puts it back first and says so. The test re-runs this test
//! binary as a helper (the ignored test `stale_knob_helper`) that switches a temporary file
//! standing in for a sysfs knob, reports that on stdout and waits on stdin; the test then kills
//! it. Synchronised by the pipes, never by sleeping.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use hostenv::journal::{JOURNAL_ENV, Journal};
use hostenv::sysfs::{SysfsGuard, read_selected};

const HELPER_ENV: &str = "HOSTENV_STALE_KNOB_HELPER";
const SWITCHED: &str = "SWITCHED";

#[test]
#[ignore = "helper process for stale_knob_left_by_a_sigkilled_owner_is_put_back; it runs it"]
fn stale_knob_helper() {
    let path = std::env::var(HELPER_ENV).expect("run by the stale-knob test");
    let guard = SysfsGuard::set(&path, "always").expect("guard");
    assert_eq!(read_selected(&path).unwrap(), "always");
    println!("{SWITCHED}");
    use std::io::{Read, Write};
    std::io::stdout().flush().unwrap();
    // Hold the knob switched until killed (or, should the test die first, until stdin closes).
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    guard.restore().unwrap();
}

#[test]
fn stale_knob_left_by_a_sigkilled_owner_is_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let knob = dir.path().join("enabled");
    std::fs::write(&knob, "always inherit madvise [never]\n").unwrap();
    let journal_path = dir.path().join("journal").join("knobs.json");
    let stderr_path = dir.path().join("helper.stderr");
    let mut child = Command::new(std::env::current_exe().unwrap())
        // One test thread, as on a one-CPU host: the helper's line then follows libtest's.
        .args([
            "--ignored",
            "--exact",
            "stale_knob_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, &knob)
        .env(JOURNAL_ENV, &journal_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let helper_pid = child.id() as i32;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // `ends_with`, not `==`: with one test thread libtest prints `test stale_knob_helper ... `
    // before the helper's own line.
    let switched = lines.any(|l| l.map(|l| l.trim().ends_with(SWITCHED)).unwrap_or(false));
    assert!(
        switched,
        "helper never switched the knob: {}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(child.stdin.take());
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(
        read_selected(&knob).unwrap(),
        "always",
        "SIGKILL left the knob switched (the situation under test)"
    );

    // The next run switches the same knob to the same value, as a re-run of a killed mTHP
    // populate does. It must record the machine's value, not the one the dead run left.
    let journal = Journal::at(&journal_path);
    let guard = SysfsGuard::set_journalled(&knob, "always", &journal).unwrap();
    assert_eq!(guard.original(), "never", "the true original");
    let repaired = guard.repaired().expect("the repair is recorded");
    assert_eq!(repaired.found, "always");
    assert_eq!(repaired.original, "never");
    assert_eq!(repaired.written, "always");
    assert_eq!(repaired.owner_pid, helper_pid);
    assert_eq!(read_selected(&knob).unwrap(), "always");
    let entries = journal.entries().unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].owner_pid, std::process::id() as i32);
    assert_eq!(entries[0].original, "never");
    guard.restore().unwrap();
    assert_eq!(read_selected(&knob).unwrap(), "never");
    assert!(journal.entries().unwrap().is_empty());
}
