//! Kernel mode end to end, without compiling a kernel: a throwaway git tree whose
//! `--build-cmd` prints Debian's x86_64 6.12 image (fork batching: fast) before a chosen commit
//! and the 6.1 image (per-PTE copy: slower) from it on. Every measurement is a real boot under
//! QEMU. The bisection must name that commit, skip a revision whose build fails and one whose
//! kernel does not boot (both with their reasons), log every build and boot with its time,
//! and leave no worktree behind. Without QEMU or the kernels the test says how to provision
//! them and passes, unless `CI=true`. Bad kernel-mode inputs are refused before any build.

use std::path::{Path, PathBuf};

use bisect::Decision;
use bisect::cli::{BisectArgs, CliError, run};
use bisect::search::Outcome;
use clap::Parser;
use contract::Arch;
use guest::fetch;
use guest::image::KernelImage;

mod support;
use support::{init_repo, sh, worktrees_left};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// The Debian `release` x86_64 kernel package, or `None` after saying why (a failure under CI).
fn debian_kernel(release: &str) -> Option<PathBuf> {
    let how = "provision with: bash tools/provision-guests.sh";
    let found = fetch::which_in_path("qemu-system-x86_64")
        .ok_or_else(|| "qemu-system-x86_64 is not installed".to_string())
        .and_then(|_| fetch::default_cache_dir().map_err(|e| e.to_string()))
        .and_then(|dir| fetch::fetch(release, Arch::X86_64, &dir).map_err(|e| e.to_string()));
    match found {
        Ok(deb) => Some(deb),
        Err(e) if ci() => panic!("{e}; {how}"),
        Err(e) => {
            eprintln!("skipping: {e}; {how}");
            None
        }
    }
}

/// `cargo xtask bisect ARGS` as parsed by clap.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: BisectArgs,
}

fn parse(args: &[&str]) -> BisectArgs {
    Cli::try_parse_from(std::iter::once("bisect").chain(args.iter().copied()))
        .unwrap()
        .args
}

/// A tree of `n` commits (0..n): `regressed` appears at `step_at`; `nobuild` exists only in
/// commit `build_fails`, `notakernel` (the build prints a kernel that does not boot) only in
/// commit `boot_fails`. Returns the hashes.
fn make_tree(
    repo: &Path,
    n: usize,
    step_at: usize,
    build_fails: usize,
    boot_fails: usize,
) -> Vec<String> {
    init_repo(repo);
    let mut hashes = Vec::new();
    for i in 0..n {
        std::fs::write(repo.join("version"), format!("{i}\n")).unwrap();
        let toggle = |name: &str, present: bool| {
            let p = repo.join(name);
            if present {
                std::fs::write(&p, "this is not a kernel\n").unwrap();
            } else if p.exists() {
                std::fs::remove_file(&p).unwrap();
            }
        };
        toggle("regressed", i >= step_at);
        toggle("nobuild", i == build_fails);
        toggle("notakernel", i == boot_fails);
        let subject = if i == step_at {
            "mm: copy PTEs one by one again".to_string()
        } else {
            format!("commit {i}")
        };
        sh(repo, &format!("git add -A && git commit -q -m '{subject}'"));
        hashes.push(sh(repo, "git rev-parse HEAD"));
    }
    hashes
}

#[test]
fn names_the_commit_that_made_fork_slower_and_skips_broken_revisions() {
    let (Some(old), Some(new)) = (debian_kernel("6.1"), debian_kernel("6.12")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let old = KernelImage::from_deb(&old, &tmp.path().join("old")).unwrap();
    let new = KernelImage::from_deb(&new, &tmp.path().join("new")).unwrap();
    // A kernel that does not boot: the 6.12 bzImage with 4 KiB of its compressed payload
    // zeroed. Its header still passes the image checks; the decompressor halts the guest.
    let corrupt = tmp.path().join("corrupt-bzImage");
    let mut bytes = std::fs::read(&new.path).unwrap();
    assert!(bytes.len() > 3 << 20, "{} bytes", bytes.len());
    bytes[2 << 20..(2 << 20) + 4096].fill(0);
    std::fs::write(&corrupt, bytes).unwrap();
    let repo = tmp.path().join("tree");
    // Six commits: the search probes 2 (its build fails), then 1 (does not boot), then 3 (good)
    // and 4 (bad): both skips are exercised and neither is next to the step.
    let (step_at, build_fails, boot_fails) = (4, 2, 1);
    let hashes = make_tree(&repo, 6, step_at, build_fails, boot_fails);
    let last = hashes.len() - 1;
    let build_cmd = format!(
        "if [ -f nobuild ]; then echo 'mm/memory.c:1: error: simulated compile failure' >&2; exit 2; fi; \
         if [ -f notakernel ]; then echo '{}'; exit 0; fi; \
         echo building; if [ -f regressed ]; then echo '{}'; else echo '{}'; fi",
        corrupt.display(),
        old.path.display(),
        new.path.display()
    );
    let out = tmp.path().join("log");
    let tree = repo.to_string_lossy().into_owned();
    let log_dir = out.to_string_lossy().into_owned();
    // 512 MiB: under TCG a fork has ~2 ms of fixed cost that a small mapping would let
    // dominate; the 6.1/6.12 gap is ~30%. 100 forks per boot (kernel mode's default, given
    // here so the test does not depend on it): a boot's sample is its fastest fork, and on a
    // shared host slow phases last over a second, which 20 forks did not outlast. ~10 s per
    // boot and measurement here: 6 per endpoint (so 2 slowed boots can be set aside, see
    // decide::split_slow) and 3+ per probe keep the test near 5 minutes (10 on the CI VMs).
    let a = parse(&[
        "--kernel-tree",
        &tree,
        "--good",
        &hashes[0],
        "--bad",
        &hashes[last],
        "--build-cmd",
        &build_cmd,
        "--arch",
        "x86_64",
        "--accel",
        "tcg",
        "--boot-timeout",
        "30",
        "--mem",
        "512M",
        "--iters",
        "100",
        "--endpoint-runs",
        "6",
        "--min-runs",
        "3",
        "--max-runs",
        "10",
        "--log-dir",
        &log_dir,
    ]);
    let started = std::time::Instant::now();
    let report = run(&a, &workspace()).unwrap_or_else(|e| panic!("bisect failed: {e}"));
    eprintln!("bisect took {:.0} s", started.elapsed().as_secs_f64());
    let Outcome::Found { index } = report.outcome else {
        panic!("no single commit: {:?}", report.outcome);
    };
    assert_eq!(report.revs[index].hash, hashes[step_at]);
    assert_eq!(report.revs[index].subject, "mm: copy PTEs one by one again");
    let probe = |i: usize| report.tested.iter().find(|t| t.rev.hash == hashes[i]);
    let skipped = probe(build_fails).expect("the build-failure revision was probed");
    assert_eq!(skipped.decision, Decision::Unknown);
    let note = skipped.note.as_deref().unwrap_or("");
    assert!(
        note.contains("build failed") && note.contains("simulated compile failure"),
        "{note}"
    );
    let skipped = probe(boot_fails).expect("the boot-failure revision was probed");
    assert_eq!(skipped.decision, Decision::Unknown);
    let note = skipped.note.as_deref().unwrap_or("");
    assert!(
        note.contains("boot") && note.contains("did not reach forkbench's init"),
        "{note}"
    );
    assert_eq!(worktrees_left(&repo), 0, "worktrees left behind");

    let log_file = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a log file");
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&log_file).unwrap()).unwrap();
    let steps = log["steps"].as_array().unwrap();
    let boots: Vec<_> = steps.iter().filter(|s| s["step"] == "boot").collect();
    assert!(boots.len() > 2 * 5 + 2 * 3, "{} boots", boots.len());
    for b in &boots {
        let (boot, wall) = (b["ms"].as_u64().unwrap(), b["wall_ms"].as_u64().unwrap());
        assert!(0 < boot && boot <= wall, "{b}");
        if b["rev"] == hashes[boot_fails].as_str() {
            // The one boot of the kernel that does not boot, with the reason.
            assert_eq!(b["ok"], false, "{b}");
            assert!(b["error"].as_str().unwrap().contains("console"), "{b}");
            continue;
        }
        assert_eq!(b["ok"], true, "{b}");
        assert_eq!(b["samples"].as_array().unwrap().len(), 1);
        assert_eq!(b["forks_ns"].as_array().unwrap().len(), 100);
        assert_eq!(b["accel"], "tcg");
    }
    let builds: Vec<_> = steps.iter().filter(|s| s["step"] == "build").collect();
    assert_eq!(builds.len(), 6, "one build per tested revision");
    let failed: Vec<_> = builds.iter().filter(|b| b["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["rev"], hashes[build_fails].as_str());
    let release = |i: usize| {
        boots
            .iter()
            .find(|b| b["rev"] == hashes[i].as_str())
            .map(|b| b["release"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert!(release(0).starts_with("6.12"), "{}", release(0));
    assert!(release(last).starts_with("6.1."), "{}", release(last));
    assert_eq!(
        log["outcome"]["report"]["outcome"]["index"].as_u64(),
        Some(step_at as u64)
    );
    // The log as quoted in the note: each revision, its verdict and samples.
    for t in log["outcome"]["report"]["tested"].as_array().unwrap() {
        eprintln!(
            "log: #{} {} {} n={} mean={:.3e} {}",
            t["index"],
            &t["rev"]["hash"].as_str().unwrap()[..12],
            t["decision"],
            t["samples"].as_array().unwrap().len(),
            t["mean"].as_f64().unwrap_or(f64::NAN),
            t["note"].as_str().unwrap_or("")
        );
    }
    for s in steps {
        let forks: Vec<u64> = s["forks_ns"]
            .as_array()
            .map(|f| f.iter().filter_map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        eprintln!(
            "log: {} {} {} ms ok={} sample={} forks max={:?} {}",
            s["step"],
            &s["rev"].as_str().unwrap()[..12],
            s["ms"],
            s["ok"],
            s["samples"],
            forks.iter().max(),
            s["error"].as_str().unwrap_or("")
        );
    }
}

#[test]
fn bad_kernel_inputs_are_refused_before_any_build() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("tree");
    let hashes = make_tree(&repo, 10, 5, 100, 100);
    let tree = repo.to_string_lossy().into_owned();
    let usage = |args: &[&str], want: &str| {
        let mut full = vec!["--good", &hashes[0], "--bad", &hashes[9]];
        full.extend_from_slice(args);
        match run(&parse(&full), &workspace()) {
            Err(e @ CliError::Usage(_)) => {
                assert_eq!(e.exit_code(), 2);
                let msg = e.to_string();
                assert!(msg.contains(want), "{msg} lacks {want}");
                assert!(!msg.contains('\n'), "one line: {msg}");
            }
            other => panic!("{args:?}: {other:?}"),
        }
    };
    let missing = tmp.path().join("missing").to_string_lossy().into_owned();
    usage(&["--kernel-tree", &missing], "not a directory");
    if fetch::which_in_path("qemu-system-x86_64").is_none() {
        eprintln!("skipping the rest: qemu-system-x86_64 is not installed");
        return;
    }
    let x86 = ["--arch", "x86_64"];
    usage(
        &[&["--kernel-tree", &tree][..], &x86].concat(),
        "not a Linux tree",
    );
    usage(
        &[&["--kernel-tree", &tree, "--build-cmd", " "][..], &x86].concat(),
        "--build-cmd is empty",
    );
    usage(
        &[
            &["--kernel-tree", &tree, "--build-cmd", "true", "--jobs", "0"][..],
            &x86,
        ]
        .concat(),
        "--jobs",
    );
    // A dirty tree is refused like in the other modes.
    std::fs::write(repo.join("version"), "dirty\n").unwrap();
    usage(
        &[&["--kernel-tree", &tree, "--build-cmd", "true"][..], &x86].concat(),
        "uncommitted changes",
    );
    // Kernel flags without --kernel-tree are refused, not silently ignored.
    let parsed = parse(&[
        "--good", &hashes[0], "--bad", &hashes[9], "--cmd", "true", "--layout", "order0",
    ]);
    match run(&parsed, &workspace()) {
        Err(e @ CliError::Usage(_)) => {
            assert_eq!(e.to_string(), "--layout needs --kernel-tree")
        }
        other => panic!("{other:?}"),
    }
}
