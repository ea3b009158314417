//! The real thing, as root: SIGKILL `forkbench real --layout mthp-64k` while its knob is
//! switched, then a new run must end with the knob at the machine's true original (read at the
//! start of the test and written back at its end whatever happens). The runner is stopped right
//! after switching the knob by a test-only environment variable and reports it on stderr: the
//! test waits for that line, never for time.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use contract::RunnerOutput;
use hostenv::sysfs::read_selected;
use realfork::layout::{THP_ROOT, ThpInfo};

/// Writes the knob's true original back when the test ends, passed or failed.
struct PutBack {
    knob: PathBuf,
    original: String,
}

impl Drop for PutBack {
    fn drop(&mut self) {
        if read_selected(&self.knob).ok().as_deref() != Some(self.original.as_str()) {
            let _ = std::fs::write(&self.knob, &self.original);
        }
    }
}

fn real_args() -> Vec<&'static str> {
    vec![
        "real", "--layout", "mthp-64k", "--mem", "64M", "--iters", "1", "--runs", "1", "--warmup",
        "0",
    ]
}

#[test]
fn sigkill_during_an_mthp_populate_then_a_new_run_restores_the_true_original() {
    if hostenv::geteuid() != 0 {
        eprintln!("skipped: switching an mTHP knob needs root");
        return;
    }
    let thp = ThpInfo::read(Path::new(THP_ROOT));
    assert!(
        thp.mthp_sizes().contains(&64),
        "this kernel offers no 64 KiB mTHP size; the test needs hugepages-64kB"
    );
    let knob = thp.size_knob(64);
    let original = read_selected(&knob).unwrap();
    let _put_back = PutBack {
        knob: knob.clone(),
        original: original.clone(),
    };
    assert_ne!(
        original, "always",
        "the knob is `always` already, so a stale `always` could not be told from it"
    );

    let bin = env!("CARGO_BIN_EXE_forkbench");
    let mut child = Command::new(bin)
        .args(real_args())
        .env(realfork::HOLD_AFTER_KNOB_SWITCH_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let killed_pid = child.id();
    let mut stderr = Vec::new();
    let mut switched = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap_or_default();
        if line == realfork::KNOB_SWITCHED_LINE {
            switched = true;
            break;
        }
        stderr.push(line);
    }
    let during = read_selected(&knob).unwrap();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(child.stdin.take());
    assert!(
        switched,
        "the runner never said it switched the knob: {stderr:?}"
    );
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    assert_eq!(during, "always", "switched while populating");
    assert_eq!(
        read_selected(&knob).unwrap(),
        "always",
        "SIGKILL left the knob switched (the situation under test)"
    );

    // `forkbench doctor` sees it (exit 1) without touching it.
    let doctor = Command::new(bin).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(1), "{report}");
    assert!(
        report.contains(&format!(
            "stale: {} reads \"always\", not its journalled original {original:?}; pid {killed_pid} (gone)",
            knob.display()
        )),
        "{report}"
    );
    assert_eq!(read_selected(&knob).unwrap(), "always");

    // A new run puts the true original back first, says so in one line, records it as the
    // original and leaves it there.
    let mut args = real_args();
    args.push("--json");
    let out = Command::new(bin).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let said: Vec<&str> = stderr
        .lines()
        // Only this test's knob: under THP `always` the run also switches the larger sizes.
        .filter(|l| l.contains("died before restoring it") && l.contains(&*knob.to_string_lossy()))
        .collect();
    assert_eq!(
        said,
        [format!(
            "forkbench: {} read \"always\", left by pid {killed_pid} (which wrote \"always\" and died before restoring it); restored the journalled original {original:?}",
            knob.display()
        )],
        "{stderr}"
    );
    let parsed = RunnerOutput::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let ctx = &parsed.contexts[0];
    let sw = &ctx.populate.sysfs_switched[0];
    assert_eq!(sw.path, knob.display().to_string());
    assert_eq!(sw.original, original, "the true original is recorded");
    assert_eq!(sw.restored_value, original);
    let captured = ctx.env.sysfs.get(&knob.display().to_string()).cloned();
    assert_eq!(
        captured.flatten().as_deref(),
        Some(original.as_str()),
        "the host capture sees the true value"
    );
    assert_eq!(read_selected(&knob).unwrap(), original);

    let doctor = Command::new(bin).arg("doctor").output().unwrap();
    assert_eq!(
        doctor.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&doctor.stdout)
    );
}
