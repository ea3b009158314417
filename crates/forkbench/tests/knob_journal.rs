//! `forkbench doctor` on a knob journal with every kind of entry (stale, left over, in use, knob
//! gone), standing in for sysfs with temporary files; and `real`'s up-front check of
//! `--fifo-priority`.

use std::path::Path;
use std::process::Command;

fn forkbench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> i32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id() as i32;
    c.wait().unwrap();
    pid
}

fn knob(dir: &Path, name: &str, value: &str) -> String {
    let d = dir.join(name);
    std::fs::create_dir(&d).unwrap();
    let p = d.join("enabled");
    std::fs::write(&p, value).unwrap();
    p.display().to_string()
}

fn selected(p: &str) -> String {
    hostenv::sysfs::read_selected(p).unwrap()
}

#[test]
fn doctor_reports_a_stale_knob_and_repair_restores_it() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = std::fs::canonicalize(dir.path()).unwrap();
    let stale = knob(&dir_path, "stale", "always inherit madvise [never]");
    // Left switched: the dead run wrote `always`.
    std::fs::write(&stale, "always").unwrap();
    let restored = knob(&dir_path, "restored", "always inherit madvise [never]");
    let in_use = knob(&dir_path, "in-use", "always");
    let gone = dir_path.join("gone").join("enabled").display().to_string();
    let me = std::process::id() as i32;
    let dead = dead_pid();
    let entry = |path: &str, pid: i32, start: Option<u64>| {
        serde_json::json!({
            "path": path, "original": "never", "written": "always",
            "owner_pid": pid, "owner_start": start,
        })
    };
    let journal = dir_path.join("knobs.json");
    std::fs::write(
        &journal,
        serde_json::json!({
            "version": 1,
            "entries": [
                entry(&stale, dead, Some(1)),
                entry(&restored, dead, Some(1)),
                entry(&in_use, me, hostenv::journal::process_start(me)),
                entry(&gone, dead, Some(1)),
            ],
        })
        .to_string(),
    )
    .unwrap();
    let j = journal.display().to_string();

    let (code, out, err) = forkbench(&["doctor", "--journal", &j]);
    assert_eq!(code, 1, "a stale knob, not repaired: {out}{err}");
    assert!(err.is_empty(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], format!("knob journal {j}: 4 entries"));
    assert_eq!(
        lines[1],
        format!(
            "stale: {stale} reads \"always\", not its journalled original \"never\"; pid {dead} (gone) wrote \"always\" and died before restoring it"
        )
    );
    assert!(lines[2].starts_with(&format!("left over: {restored} already reads its original")));
    assert!(lines[3].starts_with(&format!("in use: {in_use} reads \"always\"")));
    assert!(lines[4].starts_with(&format!("left over: {gone} no longer exists")));
    assert!(
        lines[5].starts_with("1 stale knob; `forkbench doctor --repair`"),
        "{out}"
    );
    assert_eq!(selected(&stale), "always", "reporting changes nothing");

    let (code, out, err) = forkbench(&["doctor", "--journal", &j, "--repair"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("repaired: {stale} read \"always\"")),
        "{out}"
    );
    assert!(
        out.contains("dropped: 2 left-over entries of dead runs"),
        "{out}"
    );
    assert!(
        out.ends_with("clean: no knob differs from its journalled original\n"),
        "{out}"
    );
    assert_eq!(selected(&stale), "never");
    assert_eq!(
        selected(&in_use),
        "always",
        "a running owner's knob is left alone"
    );

    let (code, out, _) = forkbench(&["doctor", "--journal", &j]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with(&format!("knob journal {j}: 1 entry\nin use: {in_use}")),
        "{out}"
    );
}

#[test]
fn doctor_on_what_is_not_a_journal_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (code, out, err) = forkbench(&["doctor", "--journal", &d]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err, format!("forkbench: error: {d}: not a regular file\n"));
    // A journal that does not exist yet is an empty one.
    let none = dir.path().join("none.json").display().to_string();
    let (code, out, _) = forkbench(&["doctor", "--journal", &none]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("knob journal {none}: 0 entries\nclean")),
        "{out}"
    );
}

#[test]
fn fifo_priority_outside_the_sched_fifo_range_is_one_line_and_exit_2() {
    for p in ["0", "100", "-5"] {
        let (code, out, err) = forkbench(&[
            "real",
            "--layout",
            "untouched",
            "--mem",
            "2M",
            "--iters",
            "1",
            "--runs",
            "1",
            "--sched",
            "fifo",
            &format!("--fifo-priority={p}"),
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(
            err,
            format!(
                "forkbench: error: --fifo-priority must be between 1 and 99 (the SCHED_FIFO priorities), got {p}\n"
            )
        );
    }
}
