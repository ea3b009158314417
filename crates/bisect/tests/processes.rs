//! Bisection across processes, with this test binary as its own child (`BISECT_TEST_CHILD`
//! names the part it plays): a live worktree session survives a second one and a SIGKILLed
//! owner's is swept; SIGINT, SIGTERM and SIGHUP end a bisection with its worktrees removed;
//! `git bisect run` over a `bisect-run` step names the right commit, and stops (exit 255)
//! instead of blaming one when the reference is empty or the step panics.
//!
//! No libtest harness: a child is one thread, so a signal is handled before the search reads
//! its flag. Children and parents meet through pipes and FIFOs, never sleeps.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use support::{init_repo, sh, worktrees_left};

use bisect::cli::{
    BisectArgs, BisectRunArgs, abort_bisect_on_panic, bisect_run_step, run as run_bisect,
};
use bisect::git::Worktrees;
use bisect::search::Rev;
use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CHILD: &str = "BISECT_TEST_CHILD";

#[derive(Parser)]
struct BisectChild {
    #[command(flatten)]
    args: BisectArgs,
    #[arg(long)]
    workspace: PathBuf,
}

#[derive(Parser)]
struct StepChild {
    #[command(flatten)]
    args: BisectRunArgs,
}

/// The child's part; returns its exit code.
fn child(role: &str) -> u8 {
    let args: Vec<String> = std::env::args().collect();
    match role {
        // Hold a worktree session of `repo` under `root` at `rev` until stdin closes.
        "hold" => {
            let (repo, root, rev) = (Path::new(&args[1]), Path::new(&args[2]), &args[3]);
            let mut w = Worktrees::new(repo, root).unwrap();
            let tree = w
                .checkout(&Rev {
                    hash: rev.clone(),
                    subject: String::new(),
                })
                .unwrap();
            println!("{}", tree.display());
            std::io::stdout().flush().unwrap();
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            0
        }
        "bisect" => {
            let c = BisectChild::parse();
            match run_bisect(&c.args, &c.workspace) {
                Ok(_) => 0,
                Err(e) => {
                    eprintln!("bisect: {e}");
                    e.exit_code()
                }
            }
        }
        // What `forkbench bisect-run` does.
        "bisect-run" => {
            abort_bisect_on_panic();
            bisect_run_step(&StepChild::parse().args, "bisect-run")
        }
        "panic" => {
            abort_bisect_on_panic();
            panic!("a deliberate bug in a bisect-run step");
        }
        other => panic!("unknown child role {other}"),
    }
}

/// A repository of `n` commits whose `count` file steps from 512 to 1024 at `step_at`.
fn make_repo(root: &Path, n: usize, step_at: usize) -> (PathBuf, Vec<String>) {
    let repo = root.join("repo");
    init_repo(&repo);
    let mut hashes = Vec::new();
    for i in 0..n {
        let count = if i >= step_at { 1024 } else { 512 };
        std::fs::write(repo.join("count"), format!("{count}\n")).unwrap();
        std::fs::write(repo.join("log.txt"), format!("commit {i}\n")).unwrap();
        sh(
            &repo,
            &format!("git add -A && git commit -q -m 'commit {i}'"),
        );
        hashes.push(sh(&repo, "git rev-parse HEAD"));
    }
    (repo, hashes)
}

fn spawn_child(role: &str, args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(CHILD, role).args(args);
    c
}

/// Start a `hold` child and return it with the worktree it made.
fn hold(repo: &Path, root: &Path, rev: &str) -> (Child, PathBuf) {
    let mut c = spawn_child(
        "hold",
        &[&repo.to_string_lossy(), &root.to_string_lossy(), rev],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (c, PathBuf::from(line.trim()))
}

fn a_live_session_survives_and_a_killed_ones_is_swept() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 2, 1);
    let root = tmp.path().join("worktrees");
    let (mut first, first_tree) = hold(&repo, &root, &hashes[1]);
    assert!(first_tree.join("count").is_file());
    let (mut second, second_tree) = hold(&repo, &root, &hashes[1]);
    assert!(
        first_tree.join("count").is_file(),
        "starting a second session removed the first's live worktree"
    );
    assert_eq!(worktrees_left(&repo), 2);
    // The first ends normally: its own worktree goes, the second's stays.
    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    assert!(!first_tree.exists());
    assert!(second_tree.join("count").is_file());
    // The second is killed: nothing of it is removed until the next session sweeps it.
    second.kill().unwrap();
    second.wait().unwrap();
    assert!(second_tree.exists());
    let w = Worktrees::new(&repo, &root).unwrap();
    assert!(
        !second_tree.exists(),
        "the killed session's worktree was not swept"
    );
    drop(w);
    assert_eq!(worktrees_left(&repo), 0);
    assert!(!root.exists());
}

/// The command of an exact bisection that, on its first run only, says so through the FIFO
/// `started` and waits until `release` is opened and closed.
fn pausing_cmd(dir: &Path) -> String {
    let p = |n: &str| dir.join(n).display().to_string();
    format!(
        "if [ ! -e {m} ]; then : > {m}; echo started > {s}; read x < {r} || true; fi; cat count",
        m = p("first-run"),
        s = p("started"),
        r = p("release"),
    )
}

fn signals_end_a_bisection_with_its_worktrees_removed() {
    for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, hashes) = make_repo(tmp.path(), 8, 5);
        sh(tmp.path(), "mkfifo started release");
        let ws = tmp.path().join("ws");
        let cmd = pausing_cmd(tmp.path());
        let mut c = spawn_child(
            "bisect",
            &[
                "--good",
                &hashes[0],
                "--bad",
                &hashes[7],
                "--exact",
                "--cmd",
                &cmd,
                "--repo",
                &repo.to_string_lossy(),
                "--workspace",
                &ws.to_string_lossy(),
            ],
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        // The first run is under way in a worktree.
        std::fs::read_to_string(tmp.path().join("started")).unwrap();
        assert_eq!(worktrees_left(&repo), 1, "{sig}");
        kill(Pid::from_raw(c.id() as i32), sig).unwrap();
        std::fs::write(tmp.path().join("release"), "go\n").unwrap();
        let status = c.wait().unwrap();
        let mut err = String::new();
        c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert_eq!(status.code(), Some(130), "{sig}: {status}, {err}");
        assert!(err.contains("interrupted"), "{sig}: {err}");
        assert_eq!(worktrees_left(&repo), 0, "{sig}: a worktree was left");
        assert!(!ws.join("target/bisect/worktrees").exists(), "{sig}");
    }
}

/// `git bisect run` over this binary's `bisect-run` step; git's exit status and output.
fn git_bisect_run(repo: &Path, good: &str, bad: &str, reference: &Path) -> (bool, String) {
    sh(repo, &format!("git bisect start {bad} {good}"));
    let out = Command::new("git")
        .current_dir(repo)
        .env(CHILD, "bisect-run")
        .args(["bisect", "run"])
        .arg(std::env::current_exe().unwrap())
        .args(["--cmd", "cat count", "--reference"])
        .arg(reference)
        .output()
        .unwrap();
    sh(repo, "git bisect reset >/dev/null 2>&1");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn git_bisect_run_names_the_commit_or_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 8, 6);
    // An empty reference: the step used to panic (101, read as "bad") and git named c1.
    let empty = tmp.path().join("empty.json");
    std::fs::write(&empty, r#"{"good":[],"bad":[]}"#).unwrap();
    let (ok, text) = git_bisect_run(&repo, &hashes[0], &hashes[7], &empty);
    assert!(!ok, "{text}");
    assert!(!text.contains("is the first bad commit"), "{text}");
    assert!(text.contains("'good' samples are empty"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // A recorded reference: the right commit.
    let reference = tmp.path().join("ref.json");
    for (which, hash) in [("good", &hashes[0]), ("bad", &hashes[7])] {
        sh(&repo, &format!("git checkout -q {hash}"));
        let st = Command::new(std::env::current_exe().unwrap())
            .current_dir(&repo)
            .env(CHILD, "bisect-run")
            .args(["--cmd", "cat count", "--record", which, "--reference"])
            .arg(&reference)
            .status()
            .unwrap();
        assert!(st.success(), "{which}");
    }
    sh(&repo, "git checkout -q -");
    let (ok, text) = git_bisect_run(&repo, &hashes[0], &hashes[7], &reference);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("{} is the first bad commit", hashes[6])),
        "{text}"
    );
}

fn a_panicking_step_exits_255() {
    let out = spawn_child("panic", &[]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(255), "{err}");
    assert!(err.contains("deliberate"), "{err}");
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(CHILD) {
        return ExitCode::from(child(&role));
    }
    let tests: [(&str, fn()); 4] = [
        (
            "a_live_session_survives_and_a_killed_ones_is_swept",
            a_live_session_survives_and_a_killed_ones_is_swept,
        ),
        (
            "signals_end_a_bisection_with_its_worktrees_removed",
            signals_end_a_bisection_with_its_worktrees_removed,
        ),
        (
            "git_bisect_run_names_the_commit_or_stops",
            git_bisect_run_names_the_commit_or_stops,
        ),
        ("a_panicking_step_exits_255", a_panicking_step_exits_255),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if std::panic::catch_unwind(test).is_ok() {
            println!("test {name} ... ok");
            passed += 1;
        } else {
            println!("test {name} ... FAILED");
            failed += 1;
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
