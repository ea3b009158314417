//! Bisection over throwaway git repositories whose COMMAND prints noisy samples (seeded, so
//! every run of the test sees the same numbers): a 10% step is found exactly; a 2% step under
//! 5% noise with few runs is reported as unknown or ambiguous, never as a wrong commit; an
//! exact metric takes one run per revision; dirty trees and bad ranges are refused; worktrees
//! are gone afterwards; two bisections of one repository at once both find the step; bad
//! arguments and an unwritable `--out` are refused before anything is measured.

mod support;

use std::path::{Path, PathBuf};
use support::{init_repo, sh, worktrees_left};

use bisect::Decision;
use bisect::cli::{BisectArgs, CliError, run};
use bisect::search::Outcome;

/// A repository of `n` commits; commit `i` (0-based) has `level` = 100, or `100 * (1 + step)`
/// from commit `step_at` on, and `noise` = the relative noise amplitude. Returns its path and
/// the commit hashes.
fn make_repo(
    root: &Path,
    n: usize,
    step_at: usize,
    step: f64,
    noise: f64,
) -> (PathBuf, Vec<String>) {
    let repo = root.join("repo");
    init_repo(&repo);
    let mut hashes = Vec::new();
    for i in 0..n {
        let level = if i >= step_at {
            100.0 * (1.0 + step)
        } else {
            100.0
        };
        std::fs::write(repo.join("level"), format!("{level}\n")).unwrap();
        std::fs::write(repo.join("noise"), format!("{noise}\n")).unwrap();
        std::fs::write(
            repo.join("count"),
            format!("{}\n", if i >= step_at { 1024 } else { 512 }),
        )
        .unwrap();
        std::fs::write(repo.join("log.txt"), format!("commit {i}\n")).unwrap();
        sh(
            &repo,
            &format!("git add -A && git commit -q -m 'commit {i}'"),
        );
        hashes.push(sh(&repo, "git rev-parse HEAD"));
    }
    (repo, hashes)
}

/// Prints 3 samples around `level` with uniform relative noise; each call uses the next seed
/// from a counter file outside the repository.
fn noisy_cmd(root: &Path) -> String {
    let state = root.join("seed");
    format!(
        "n=$(cat {s} 2>/dev/null || echo 0); echo $((n+1)) > {s}; \
         awk -v seed=$n -v lvl=$(cat level) -v nz=$(cat noise) \
         'BEGIN {{ srand(seed); for (i = 0; i < 3; i++) printf \"%.6f\\n\", lvl * (1 + nz * (2 * rand() - 1)) }}'",
        s = state.display()
    )
}

fn args(good: &str, bad: &str, cmd: String, repo: &Path) -> BisectArgs {
    BisectArgs {
        good: good.into(),
        bad: bad.into(),
        metric: None,
        cmd: Some(cmd),
        repo: Some(repo.to_path_buf()),
        threshold: None,
        max_runs: 10,
        min_runs: 3,
        endpoint_runs: 6,
        higher_is_better: false,
        exact: false,
        alpha: 0.05,
        mem: Some("64M".parse().unwrap()),
        iters: Some(20),
        out: PathBuf::from("results/bisect"),
        kernel: Default::default(),
    }
}

#[test]
fn finds_a_ten_percent_step() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 17, 11, 0.10, 0.02);
    let ws = tmp.path().join("ws");
    let r = run(
        &args(&hashes[0], &hashes[16], noisy_cmd(tmp.path()), &repo),
        &ws,
    )
    .unwrap();
    match r.outcome {
        Outcome::Found { index } => assert_eq!(r.revs[index].hash, hashes[11]),
        o => panic!("{o:?}"),
    }
    for t in &r.tested {
        match t.decision {
            Decision::Good => assert!(t.index < 11),
            Decision::Bad => assert!(t.index >= 11),
            Decision::Unknown => {}
        }
    }
    assert_eq!(worktrees_left(&repo), 0);
    // The session log was written.
    assert_eq!(
        std::fs::read_dir(ws.join("results/bisect"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn small_step_under_noise_is_unknown_not_guessed() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 17, 9, 0.02, 0.05);
    let ws = tmp.path().join("ws");
    let mut a = args(&hashes[0], &hashes[16], noisy_cmd(tmp.path()), &repo);
    a.max_runs = 3;
    match run(&a, &ws) {
        // The endpoints themselves may not be told apart: refused with the numbers.
        Err(CliError::Usage(msg)) => assert!(msg.contains("do not differ"), "{msg}"),
        Err(e) => panic!("{e}"),
        Ok(r) => {
            // Every decision made is right, and the noise forced at least one skip.
            for t in &r.tested {
                match t.decision {
                    Decision::Good => assert!(t.index < 9, "{t:?}"),
                    Decision::Bad => assert!(t.index >= 9, "{t:?}"),
                    Decision::Unknown => assert!(t.runs <= 3),
                }
            }
            assert!(r.tested.iter().any(|t| t.decision == Decision::Unknown));
            match r.outcome {
                Outcome::Found { index } => assert_eq!(index, 9),
                Outcome::Ambiguous { candidates } => assert!(candidates.contains(&9)),
            }
        }
    }
    assert_eq!(worktrees_left(&repo), 0);
}

#[test]
fn exact_metric_needs_one_run_per_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 20, 13, 0.0, 0.0);
    let ws = tmp.path().join("ws");
    let calls = tmp.path().join("calls");
    let cmd = format!("echo x >> {}; cat count", calls.display());
    let mut a = args(&hashes[0], &hashes[19], cmd, &repo);
    a.exact = true;
    let r = run(&a, &ws).unwrap();
    assert!(matches!(r.outcome, Outcome::Found { index: 13 }));
    assert!(r.tested.iter().all(|t| t.runs == 1 && t.samples.len() == 1));
    let n_calls = std::fs::read_to_string(&calls).unwrap().lines().count();
    assert_eq!(
        n_calls,
        r.tested.len(),
        "one command run per tested revision"
    );
}

#[test]
fn refuses_dirty_trees_and_bad_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 4, 2, 0.0, 0.0);
    let ws = tmp.path().join("ws");
    // good after bad.
    let e = run(
        &args(&hashes[3], &hashes[0], "cat count".into(), &repo),
        &ws,
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    // Unknown revision.
    let e = run(&args("nope", &hashes[3], "cat count".into(), &repo), &ws).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    // Endpoints that do not differ.
    let e = run(
        &args(&hashes[2], &hashes[3], "cat count".into(), &repo),
        &ws,
    )
    .unwrap_err();
    assert!(e.to_string().contains("do not differ"), "{e}");
    // A dirty work tree: the user's changes stay untouched.
    std::fs::write(repo.join("count"), "7\n").unwrap();
    let e = run(
        &args(&hashes[0], &hashes[3], "cat count".into(), &repo),
        &ws,
    )
    .unwrap_err();
    assert!(e.to_string().contains("uncommitted changes"), "{e}");
    assert_eq!(std::fs::read_to_string(repo.join("count")).unwrap(), "7\n");
    assert_eq!(sh(&repo, "git rev-parse HEAD"), hashes[3]);
}

#[test]
fn a_failing_revision_is_skipped_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 9, 5, 0.0, 0.0);
    let ws = tmp.path().join("ws");
    // Commit 4's "build" fails.
    let cmd = format!(
        "if [ \"$FORKBENCH_BISECT_REV\" = {} ]; then echo boom >&2; exit 3; fi; cat count",
        hashes[4]
    );
    let mut a = args(&hashes[0], &hashes[8], cmd, &repo);
    a.exact = true;
    let r = run(&a, &ws).unwrap();
    let t4 = r
        .tested
        .iter()
        .find(|t| t.index == 4)
        .expect("commit 4 tested");
    assert_eq!(t4.decision, Decision::Unknown);
    assert!(t4.note.as_deref().unwrap_or("").contains("boom"), "{t4:?}");
    // 3 is good and 5 bad, so the first bad commit is 4 or 5: ambiguous, as git bisect says.
    match r.outcome {
        Outcome::Ambiguous { candidates } => assert_eq!(candidates, vec![4, 5]),
        o => panic!("{o:?}"),
    }
}

#[test]
fn two_concurrent_bisects_of_one_repo_both_find_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 12, 7, 0.0, 0.0);
    let ws = tmp.path().join("ws");
    sh(tmp.path(), "mkfifo a-started a-go b-started");
    let p = |n: &str| tmp.path().join(n).display().to_string();
    // The first bisection stops in its first run, inside its worktree, until the second has
    // started (and so swept the scratch directory) and made its own first run.
    let cmd_a = format!(
        "if [ ! -e {m} ]; then : > {m}; echo a > {s}; read x < {g} || true; fi; cat count",
        m = p("a-first"),
        s = p("a-started"),
        g = p("a-go")
    );
    let cmd_b = format!(
        "if [ ! -e {m} ]; then : > {m}; echo b > {s}; fi; cat count",
        m = p("b-first"),
        s = p("b-started")
    );
    let bisection = |cmd: String| {
        let mut a = args(&hashes[0], &hashes[11], cmd, &repo);
        a.exact = true;
        let ws = ws.clone();
        std::thread::spawn(move || run(&a, &ws).map_err(|e| e.to_string()))
    };
    let first = bisection(cmd_a);
    std::fs::read_to_string(tmp.path().join("a-started")).unwrap();
    let second = bisection(cmd_b);
    std::fs::read_to_string(tmp.path().join("b-started")).unwrap();
    std::fs::write(tmp.path().join("a-go"), "go\n").unwrap();
    for (name, h) in [("first", first), ("second", second)] {
        let r = h.join().unwrap().unwrap_or_else(|e| panic!("{name}: {e}"));
        match r.outcome {
            Outcome::Found { index } => assert_eq!(index, 7, "{name}"),
            o => panic!("{name}: {o:?}"),
        }
        assert!(
            r.tested.iter().all(|t| t.decision != Decision::Unknown),
            "{name}: {:?}",
            r.tested
        );
    }
    assert_eq!(worktrees_left(&repo), 0);
}

/// A command that counts its runs in `dir/runs`.
fn counting_cmd(dir: &Path) -> String {
    format!("echo x >> {}; cat count", dir.join("runs").display())
}

#[test]
fn an_unwritable_out_is_refused_before_measuring() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 4, 2, 0.0, 0.0);
    let ws = tmp.path().join("ws");
    // Root ignores permission bits: a directory under a regular file cannot be made by anyone.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for out in [file.join("bisect"), PathBuf::from("/proc/forkbench-bisect")] {
        let mut a = args(&hashes[0], &hashes[3], counting_cmd(tmp.path()), &repo);
        a.exact = true;
        a.out = out.clone();
        let e = run(&a, &ws).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        let msg = e.to_string();
        assert!(msg.contains("--out") && !msg.contains('\n'), "{msg}");
        assert!(
            !tmp.path().join("runs").exists(),
            "{}: measured before refusing",
            out.display()
        );
    }
}

#[test]
fn bad_run_counts_and_levels_are_refused_before_measuring() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, hashes) = make_repo(tmp.path(), 4, 2, 0.0, 0.0);
    let ws = tmp.path().join("ws");
    let base = args(&hashes[0], &hashes[3], counting_cmd(tmp.path()), &repo);
    let bad: [(&str, BisectArgs); 5] = [
        (
            "--min-runs",
            BisectArgs {
                min_runs: 5,
                max_runs: 2,
                ..base.clone()
            },
        ),
        (
            "--min-runs",
            BisectArgs {
                min_runs: 0,
                ..base.clone()
            },
        ),
        (
            "--alpha",
            BisectArgs {
                alpha: 2.0,
                ..base.clone()
            },
        ),
        (
            "--alpha",
            BisectArgs {
                alpha: f64::NAN,
                ..base.clone()
            },
        ),
        (
            "--iters",
            BisectArgs {
                iters: Some(0),
                ..base.clone()
            },
        ),
    ];
    for (flag, a) in bad {
        let e = run(&a, &ws).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(flag), "{flag}: {e}");
    }
    assert!(!tmp.path().join("runs").exists());
}
