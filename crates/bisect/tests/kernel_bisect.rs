//! Kernel mode end to end, without compiling a kernel: a throwaway git tree whose
//! `--build-cmd` prints Debian's x86_64 6.12 image (fork batching: fewer instructions) before
//! a chosen commit and the 6.1 image (per-PTE copy) from it on. Every measurement is a real
//! boot under QEMU, in exact mode (TCG with icount: instructions per fork, one boot per
//! revision). The bisection must name that commit, skip a revision whose build fails and one
//! whose kernel does not boot (both with their reasons), log every build and boot with its
//! forks' instruction counts, and leave no worktree behind; endpoints with the same kernel
//! exit 2 with both counts; an arm64 tree (6.12 arm64, then 6.1 arm64) names its commit too.
//! Without QEMU or the kernels the test says how to provision them
//! and passes, unless `CI=true`. Bad kernel-mode inputs are refused before any build.

use std::path::{Path, PathBuf};

use bisect::Decision;
use bisect::cli::{BisectArgs, CliError, run};
use bisect::decide::ExactPlace;
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

/// The Debian `release` kernel image for `arch`, unpacked under `dir`, or `None` after saying
/// why (a failure under CI).
fn debian_kernel(release: &str, arch: Arch, dir: &Path) -> Option<KernelImage> {
    let how = "provision with: bash tools/provision-guests.sh";
    let (qemu, _) = guest::qemu::qemu_binary(arch);
    let found = fetch::which_in_path(qemu)
        .ok_or_else(|| format!("{qemu} is not installed"))
        .and_then(|_| fetch::default_cache_dir().map_err(|e| e.to_string()))
        .and_then(|cache| fetch::fetch(release, arch, &cache).map_err(|e| e.to_string()));
    match found {
        Ok(deb) => Some(
            KernelImage::from_deb(&deb, &dir.join(format!("{release}-{arch}")))
                .unwrap_or_else(|e| panic!("{}: {e}", deb.display())),
        ),
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

/// The build command of a tree made by [`make_tree`]: fails where `nobuild` exists, prints
/// `broken` where `notakernel` exists, `after` where `regressed` exists, else `before`.
fn build_cmd(broken: &Path, before: &Path, after: &Path) -> String {
    format!(
        "if [ -f nobuild ]; then echo 'mm/memory.c:1: error: simulated compile failure' >&2; exit 2; fi; \
         if [ -f notakernel ]; then echo '{}'; exit 0; fi; \
         echo building; if [ -f regressed ]; then echo '{}'; else echo '{}'; fi",
        broken.display(),
        after.display(),
        before.display()
    )
}

/// The only JSON log in `dir`.
fn read_log(dir: &Path) -> serde_json::Value {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap()
}

/// `bisect ... --accel ACCEL` over `hashes` with `build_cmd`, logging into `log_dir` (`tcg`:
/// exact mode).
/// An x86_64 guest reaches its init in ~7-11 s on an idle 2-core host (arm64: ~3 s); the
/// boot timeout leaves room for a host busy with other jobs, which slows QEMU but leaves the
/// instruction counts as they are.
fn exact_args(
    repo: &Path,
    hashes: &[String],
    build_cmd: &str,
    arch: &str,
    accel: &str,
    log_dir: &Path,
) -> BisectArgs {
    parse(&[
        "--kernel-tree",
        &repo.to_string_lossy(),
        "--good",
        &hashes[0],
        "--bad",
        &hashes[hashes.len() - 1],
        "--build-cmd",
        build_cmd,
        "--arch",
        arch,
        "--accel",
        accel,
        "--boot-timeout",
        "240",
        "--log-dir",
        &log_dir.to_string_lossy(),
    ])
}

/// Print what the note quotes: each revision's verdict and count, each step.
fn print_log(log: &serde_json::Value) {
    let tested = log["outcome"]["report"]["tested"].as_array();
    for t in tested.into_iter().flatten() {
        eprintln!(
            "log: #{} {} {} forks={} place={} {}",
            t["index"],
            &t["rev"]["hash"].as_str().unwrap()[..12],
            t["decision"],
            t["samples"].as_array().unwrap().len(),
            t["exact"]["place"],
            t["note"].as_str().unwrap_or("")
        );
    }
    for s in log["steps"].as_array().unwrap() {
        eprintln!(
            "log: {} {} {} ms (wall {}) ok={} value={} {} {}",
            s["step"],
            &s["rev"].as_str().unwrap()[..12],
            s["ms"],
            s["wall_ms"],
            s["ok"],
            s["value"],
            s["unit"],
            s["error"].as_str().unwrap_or("")
        );
    }
}

/// The checks both arches share on a finished exact bisection's log: one boot per booted
/// revision, every ok boot with `iters` forks counted in instructions whose median is its
/// value, and the verdicts' exact evidence.
fn check_exact_log(log: &serde_json::Value, hashes: &[String]) -> Vec<serde_json::Value> {
    assert_eq!(log["measurement"], "exact");
    assert_eq!(log["unit"], "instr");
    assert_eq!(log["sched"], "fifo");
    let iters = log["iters"].as_u64().unwrap() as usize;
    assert_eq!(iters, 10, "exact mode's default forks per boot");
    let steps = log["steps"].as_array().unwrap();
    let boots: Vec<_> = steps
        .iter()
        .filter(|s| s["step"] == "boot")
        .cloned()
        .collect();
    for h in hashes {
        let n = boots.iter().filter(|b| b["rev"] == h.as_str()).count();
        assert!(n <= 1, "{h} booted {n} times");
    }
    for b in boots.iter().filter(|b| b["ok"] == true) {
        let (boot, wall) = (b["ms"].as_u64().unwrap(), b["wall_ms"].as_u64().unwrap());
        assert!(0 < boot && boot <= wall, "{b}");
        assert_eq!(b["unit"], "instr", "{b}");
        assert_eq!(b["accel"], "tcg", "{b}");
        let mut forks: Vec<u64> = b["forks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(forks.len(), iters, "{b}");
        forks.sort_unstable();
        let median = (forks[iters / 2 - 1] + forks[iters / 2]) as f64 / 2.0;
        assert_eq!(b["value"].as_f64(), Some(median), "{b}");
    }
    let tested = log["outcome"]["report"]["tested"].as_array();
    for t in tested.into_iter().flatten() {
        let forks = t["samples"].as_array().unwrap().len();
        assert!(forks == 0 || forks == iters, "{t}");
        assert!(t["runs"].as_u64().unwrap() <= 1, "{t}");
        if forks > 0 {
            assert!(t["exact"]["vs_good_pct"].is_number(), "{t}");
        }
    }
    boots
}

#[test]
fn names_the_commit_that_made_fork_slower_and_skips_broken_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let (Some(old), Some(new)) = (
        debian_kernel("6.1", Arch::X86_64, tmp.path()),
        debian_kernel("6.12", Arch::X86_64, tmp.path()),
    ) else {
        return;
    };
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
    let out = tmp.path().join("log");
    let cmd = build_cmd(&corrupt, &new.path, &old.path);
    // Exact mode's defaults: 10 forks of 512 MiB per boot, one boot per revision.
    let a = exact_args(&repo, &hashes, &cmd, "x86_64", "tcg", &out);
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
        note.contains("boot or measurement failed") && note.contains("System halted"),
        "{note}"
    );
    // The revisions either side of the step are each exactly like their endpoint.
    let place = |i: usize| probe(i).and_then(|t| t.exact).map(|e| e.place);
    assert_eq!(place(step_at - 1), Some(ExactPlace::LikeGood));
    assert_eq!(place(step_at), Some(ExactPlace::LikeBad));
    assert_eq!(worktrees_left(&repo), 0, "worktrees left behind");

    let log = read_log(&out);
    print_log(&log);
    let boots = check_exact_log(&log, &hashes);
    // One boot per revision that built: good, bad, 1 (halts), 3, 4; none for 2.
    let booted: Vec<&str> = boots.iter().map(|b| b["rev"].as_str().unwrap()).collect();
    let mut want: Vec<&str> = [0, last, boot_fails, 3, 4]
        .map(|i| hashes[i].as_str())
        .to_vec();
    let mut got = booted.clone();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "one boot per built revision");
    let failed: Vec<_> = boots.iter().filter(|b| b["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["rev"], hashes[boot_fails].as_str());
    assert_eq!(failed[0]["crashed"], true, "a halted guest is a crash");
    let builds: Vec<_> = log["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "build")
        .collect();
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
}

/// Also `--accel auto`: where KVM might run the guests, one boot of the good endpoint tells
/// whether it does (a nested KVM can fail on its first instructions), and the bisection is
/// timed under KVM, exact under TCG.
#[test]
fn endpoints_with_the_same_kernel_exit_2_with_both_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(new) = debian_kernel("6.12", Arch::X86_64, tmp.path()) else {
        return;
    };
    let repo = tmp.path().join("tree");
    let hashes = make_tree(&repo, 3, 100, 100, 100);
    let out = tmp.path().join("log");
    let cmd = build_cmd(&new.path, &new.path, &new.path);
    let a = exact_args(&repo, &hashes, &cmd, "x86_64", "auto", &out);
    let e = run(&a, &workspace()).expect_err("the same kernel twice is no change");
    assert_eq!(e.exit_code(), 2, "{e}");
    let msg = e.to_string();
    eprintln!("{msg}");
    assert!(matches!(e, CliError::Usage(_)), "{msg}");
    let log = read_log(&out);
    let probes: Vec<_> = log["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "accel-probe")
        .collect();
    if Arch::host() == Some(Arch::X86_64) && guest::qemu::kvm_possible(Arch::X86_64).is_ok() {
        assert_eq!(probes.len(), 1, "{probes:?}");
        let exact = probes[0]["accel"] == "tcg";
        assert_eq!(log["measurement"], if exact { "exact" } else { "timed" });
        eprintln!(
            "KVM {}",
            if exact {
                "failed: exact under TCG"
            } else {
                "works: timed"
            }
        );
        if !exact {
            assert!(msg.starts_with("good and bad do not differ"), "{msg}");
            return;
        }
    } else {
        assert!(probes.is_empty(), "{probes:?}");
    }
    // e.g. good 13.176 M instr/fork and bad 13.166 M instr/fork differ by -0.08%, within ...
    let words: Vec<&str> = msg.split(' ').collect();
    assert_eq!(words[0], "good", "{msg}");
    assert_eq!(&words[2..6], ["M", "instr/fork", "and", "bad"], "{msg}");
    assert_eq!(&words[7..10], ["M", "instr/fork", "differ"], "{msg}");
    assert!(
        msg.ends_with("within the exact threshold 0.5%: nothing to bisect"),
        "{msg}"
    );
    let count = |w: &str| w.parse::<f64>().unwrap();
    assert!((10.0..20.0).contains(&count(words[1])), "{msg}");
    assert!(
        (count(words[1]) / count(words[6]) - 1.0).abs() < 0.005,
        "{msg}"
    );
    // The log is written anyway: both boots, with their forks.
    assert!(
        log["outcome"]["error"]
            .as_str()
            .unwrap()
            .contains("nothing to bisect")
    );
    let boots = check_exact_log(&log, &hashes);
    assert_eq!(boots.len(), 2, "one boot per endpoint");
    assert_eq!(worktrees_left(&repo), 0, "worktrees left behind");
}

/// The same under arm64 guests (6.12 arm64 good, 6.1 arm64 bad), without broken revisions:
/// under icount an arm64 guest reaches its init in ~3 s here.
#[test]
fn names_the_commit_in_arm64_guests() {
    let tmp = tempfile::tempdir().unwrap();
    let (Some(old), Some(new)) = (
        debian_kernel("6.1", Arch::Arm64, tmp.path()),
        debian_kernel("6.12", Arch::Arm64, tmp.path()),
    ) else {
        return;
    };
    let repo = tmp.path().join("tree");
    let hashes = make_tree(&repo, 4, 2, 100, 100);
    let out = tmp.path().join("log");
    let cmd = build_cmd(&new.path, &new.path, &old.path);
    let a = exact_args(&repo, &hashes, &cmd, "arm64", "tcg", &out);
    let started = std::time::Instant::now();
    let report = run(&a, &workspace()).unwrap_or_else(|e| panic!("bisect failed: {e}"));
    eprintln!("arm64 bisect took {:.0} s", started.elapsed().as_secs_f64());
    assert!(
        matches!(report.outcome, Outcome::Found { index: 2 }),
        "{:?}",
        report.outcome
    );
    let log = read_log(&out);
    print_log(&log);
    let boots = check_exact_log(&log, &hashes);
    assert!(boots.iter().all(|b| b["ok"] == true), "{boots:?}");
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
    // Exact-mode options that cannot be.
    let x86_cmd = [&["--kernel-tree", &tree, "--build-cmd", "true"][..], &x86].concat();
    usage(
        &[&x86_cmd[..], &["--clock", "icount", "--accel", "kvm"]].concat(),
        "--clock icount needs --accel tcg",
    );
    usage(
        &[&x86_cmd[..], &["--clock", "wall", "--exact-threshold", "1"]].concat(),
        "--exact-threshold needs exact measurements",
    );
    usage(
        &[&x86_cmd[..], &["--accel", "tcg", "--exact-threshold=-1"]].concat(),
        "--exact-threshold must be a non-negative percentage",
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
