//! The LAVA path for real: `cargo xtask lava submit --local` writes a job for Debian's 6.12
//! x86_64 kernel, renders a `qemu` device dictionary from LAVA's own `qemu.jinja2`, runs the job
//! through Debian's `lava-dispatcher` (`lava-run`, no server), decodes the frames in the job log
//! and writes a result file with verified order0 and pte-order9 records, stamped with the lab
//! device. A kernel that never reaches init makes the job fail: one error line, no file.
//! Without lava-dispatcher, QEMU, LAVA's templates or the kernel the test says how to provision
//! them and passes, unless `CI=true`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use contract::{Accel, Arch, Clock, RealLayout, Variant};
use guest::fetch;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// What the test needs, or why not (a failure under CI).
fn provisioned() -> Option<PathBuf> {
    let how = "provision with: bash tools/provision-guests.sh && bash tools/provision-lava.sh";
    let templates = [
        std::env::var_os("FORKBENCH_LAVA_TEMPLATES").map(PathBuf::from),
        Some(PathBuf::from("/usr/share/lava-server/device-types")),
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("forkbench/lava/device-types")),
    ];
    let found = fetch::which_in_path("lava-run")
        .ok_or_else(|| "lava-run is not installed (lava-dispatcher)".to_string())
        .and_then(|_| {
            fetch::which_in_path("qemu-system-x86_64")
                .ok_or_else(|| "qemu-system-x86_64 is not installed".to_string())
        })
        .and_then(|_| {
            templates
                .iter()
                .flatten()
                .any(|t| t.join("qemu.jinja2").is_file())
                .then_some(())
                .ok_or_else(|| "LAVA's device-type templates are not there".to_string())
        })
        .and_then(|_| fetch::default_cache_dir().map_err(|e| e.to_string()))
        .and_then(|dir| fetch::fetch("6.12", Arch::X86_64, &dir).map_err(|e| e.to_string()));
    match found {
        Ok(deb) => Some(deb),
        Err(e) if ci() => panic!("{e}; {how}"),
        Err(e) => {
            eprintln!("skipping: {e}; {how}");
            None
        }
    }
}

const PROFILE: &str = r#"
[machine]
name = "lava-test"
arch = "auto"
cpu_model = ""
description = "order-0 and pte-mapped order-9, small: a LAVA job through lava-run"

[run]
cpu = "last"
sched = "other"
mem = "16M"
iters = 5
runs = 2
warmup = 1
mode = "fresh"
nice = 0

[model]
arches = ["x86_64"]
strategies = ["mm-unstable"]
orders = [0]
baseline = "mm-unstable"

[real]
layouts = ["order0", "pte-order9"]
baseline = "order0"
"#;

fn xtask(args: &[&str], extra: &[&Path]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .args(extra)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ cargo xtask {} ...\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// `lava submit --local` into `dir`: the command's output.
fn submit(deb: &Path, dir: &Path, seed: &str, more: &[&str]) -> Output {
    let profile = dir.join("lava-test.toml");
    std::fs::write(&profile, PROFILE).unwrap();
    let mut args = vec!["lava", "submit", "--local", "--seed", seed];
    args.extend_from_slice(more);
    xtask(
        &args,
        &[
            Path::new("--kernel"),
            deb,
            Path::new("--config"),
            &profile,
            Path::new("--artifacts"),
            &dir.join("artifacts"),
            Path::new("--results"),
            &dir.join("results"),
        ],
    )
}

#[test]
fn a_lava_run_job_comes_back_as_verified_records_of_the_lab_device() {
    let Some(deb) = provisioned() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = submit(&deb, dir.path(), "11", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "lava submit --local failed");
    // A qemu device under TCG runs exact, as local guests do: instructions, not times.
    assert!(
        stdout.contains("exact: guest instructions (QEMU icount)"),
        "{stdout}"
    );

    let device_dir = dir.path().join("results/lava-run-qemu");
    let files: Vec<PathBuf> = std::fs::read_dir(&device_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    let [file] = &files[..] else {
        panic!("one result file under {}: {files:?}", device_dir.display())
    };
    let f = results::ResultFile::load(file).unwrap();
    assert_eq!(f.machine, "lava-run-qemu");
    // Every context says where it ran: the lab device, not a local guest.
    assert!(!f.contexts.is_empty());
    for c in &f.contexts {
        let lab = c.lab.as_ref().expect("a lab context");
        assert_eq!(
            (lab.server.as_str(), lab.device_type.as_str()),
            ("lava-run", "qemu")
        );
        assert!(lab.image.starts_with("linux-image-6.12"), "{lab:?}");
        assert!(c.guest.is_none());
        assert!(c.pre.ok && c.pre.level == "full", "{:?}", c.pre);
        assert!(
            c.env.kernel_release.starts_with("6.12"),
            "{}",
            c.env.kernel_release
        );
    }
    for layout in [RealLayout::Order0, RealLayout::PteOrder9] {
        let runs: Vec<_> = f
            .runs
            .iter()
            .filter(|r| matches!(&r.variant, Variant::Real(v) if v.layout == layout))
            .collect();
        assert_eq!(runs.len(), 2, "both runs of {layout}");
        for r in runs {
            let Variant::Real(v) = &r.variant else {
                unreachable!()
            };
            assert_eq!((v.accel, v.clock), (Accel::Tcg, Clock::Icount));
            assert!(v.kernel.starts_with("6.12"), "{}", v.kernel);
            assert_eq!(r.samples_ns.len(), 5);
            assert!(r.samples_ns.iter().all(|&s| s > 0));
            let post = r.real.as_ref().and_then(|x| x.post.as_ref());
            assert!(
                post.is_some_and(|p| p.ok),
                "{layout} verified after the run"
            );
        }
    }
    // The job's result table, as `table` prints it.
    let table = xtask(&["table"], &[file.as_path()]);
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("pte-order9"), "{table}");
    println!("{table}");

    // The same job fetched again from its log as another device's: the two files merge into
    // one table, a row per device.
    let artifacts = dir.path().join("artifacts");
    let log = std::fs::read_dir(&artifacts)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("lava-run's log");
    let refetch = xtask(
        &["lava", "fetch", "--device-name", "other-qemu", "--log"],
        &[
            &log,
            Path::new("--definition"),
            &artifacts.join("job.yaml"),
            Path::new("--results"),
            &dir.path().join("results"),
        ],
    );
    assert!(refetch.status.success());
    let other = std::fs::read_dir(dir.path().join("results/other-qemu"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let merged = xtask(&["table"], &[file.as_path(), other.as_path()]);
    assert!(
        merged.status.success(),
        "two devices merge without --allow-mixed"
    );
    let merged = String::from_utf8_lossy(&merged.stdout);
    assert!(
        merged.contains("rows are LAVA devices (lava-run-qemu, other-qemu)"),
        "{merged}"
    );
    assert!(merged.contains("| other-qemu-6.12"), "{merged}");

    // A kernel that finds no init panics; the job fails and nothing is written.
    let bad = submit(&deb, dir.path(), "12", &["--append", "rdinit=/nope"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("xtask: error: "), "{err}");
    assert!(
        last.contains("LAVA failed the job") || last.contains("monitor"),
        "{last}"
    );
    let after: Vec<_> = std::fs::read_dir(&device_dir).unwrap().collect();
    assert_eq!(after.len(), 1, "no file (nor journal) for the failed job");
}
