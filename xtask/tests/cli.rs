//! The `xtask` binary on hostile input: devices for files, samples no measurement gives, and
//! `fidelity --check` saying what it did. Every refusal is one line and exit 2.

use std::path::Path;
use std::process::{Command, Output};

mod support;
use support::xtask;

fn one_line_error(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("xtask: error: "), "{err}");
    err
}

#[test]
fn devices_are_refused_not_read() {
    let o = xtask(&["bench", "--dry-run", "--config", "/dev/zero"]);
    let e = one_line_error(&o);
    assert!(
        e.contains("/dev/zero") && e.contains("not a regular file"),
        "{e}"
    );
    let o = xtask(&["table", "/dev/zero"]);
    let e = one_line_error(&o);
    assert!(
        e.contains("/dev/zero") && e.contains("not a regular file"),
        "{e}"
    );
}

/// The committed result file with its first run's samples replaced.
fn file_with_samples(dir: &Path, samples: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text =
        std::fs::read_to_string(root.join("results/vm/20261125T210102Z-6.18.44-fc-v595.json"))
            .unwrap();
    let key = text.find("\"samples_ns\":").unwrap();
    let at = key + text[key..].find('[').unwrap();
    let end = at + text[at..].find(']').unwrap() + 1;
    let bad = format!("{}{samples}{}", &text[..at], &text[end..]);
    let p = dir.join("20260101T000000Z-bad.json");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, bad).unwrap();
    p.display().to_string()
}

/// `cargo xtask fidelity --check --inputs INPUTS --output REPORT`.
fn fidelity_check(inputs: &Path, report: &Path) -> Output {
    xtask(&[
        "fidelity",
        "--check",
        "--inputs",
        inputs.to_str().unwrap(),
        "--output",
        report.to_str().unwrap(),
    ])
}

/// All-zero or u64::MAX samples would render NaN tables (or overflow `--modelled` in debug
/// builds): refused in one line naming the variant.
#[test]
fn impossible_samples_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for samples in ["[0,0,0]", "[18446744073709551615,18446744073709551615]"] {
        let p = file_with_samples(d.path(), samples);
        for extra in [&[][..], &["--modelled"][..]] {
            let mut args = vec!["table", p.as_str()];
            args.extend_from_slice(extra);
            let e = one_line_error(&xtask(&args));
            assert!(e.contains("run 0 of "), "{e}");
        }
    }
}

#[test]
fn fidelity_check_says_it_checked() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("fidelity.md");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(root.join("results/fidelity.md"), &out).unwrap();
    let o = fidelity_check(&root.join("results/fidelity-inputs.json"), &out);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("is up to date"), "{stdout}");
    assert!(!stdout.contains("wrote"), "{stdout}");
}

/// `fidelity --check` on a doctored copy of the committed inputs (the report copied beside it)
/// refuses, in one line naming the field and both values: an embedded profile from another
/// host, then measurements from another kernel.
#[test]
fn fidelity_check_refuses_a_profile_from_another_machine() {
    let d = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = d.path().join("fidelity.md");
    std::fs::copy(root.join("results/fidelity.md"), &out).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("results/fidelity-inputs.json")).unwrap(),
    )
    .unwrap();
    assert!(
        committed["profile"].is_object(),
        "the committed inputs embed a profile"
    );
    let check = |doctored: &serde_json::Value| {
        let inputs = d.path().join("inputs.json");
        std::fs::write(&inputs, doctored.to_string()).unwrap();
        fidelity_check(&inputs, &out)
    };
    let mut other_host = committed.clone();
    other_host["profile"]["host"] = "doctored-host".into();
    let e = one_line_error(&check(&other_host));
    let host = committed["host"].as_str().unwrap();
    assert!(
        e.contains(&format!(
            "host `{host}` (measured) vs `doctored-host` (profile)"
        )),
        "{e}"
    );
    let mut other_kernel = committed.clone();
    other_kernel["kernel"] = "0.0.1-doctored".into();
    let e = one_line_error(&check(&other_kernel));
    let kernel = committed["profile"]["kernel"].as_str().unwrap();
    assert!(
        e.contains(&format!(
            "kernel `0.0.1-doctored` (measured) vs `{kernel}` (profile)"
        )),
        "{e}"
    );
    // Host, kernel and CPU consistent, but the embedded costs are not the committed file's.
    let mut other_costs = committed.clone();
    other_costs["profile"]["costs"][0]["ns"] = 1.0.into();
    let e = one_line_error(&check(&other_costs));
    assert!(
        e.contains("the embedded calibration profile differs from")
            && e.contains("costs[0].ns 1.0 (embedded) vs"),
        "{e}"
    );
}

/// Bad flags of the measuring tasks are refused before anything is built or measured.
#[test]
fn bad_flags_are_refused_before_measuring() {
    for (args, want) in [
        (
            &["calibrate", "--mapcount", "rt"][..],
            "invalid value 'rt' for '--mapcount <MAPCOUNT>'",
        ),
        (
            &["calibrate", "--from", "x.json", "--refit", "y.json"][..],
            "cannot be used with",
        ),
        (
            &[
                "bisect",
                "--good",
                "a",
                "--bad",
                "b",
                "--metric",
                "sim:x86_64:upstream:order9:tlbi",
                "--min-runs",
                "5",
                "--max-runs",
                "2",
            ][..],
            "--min-runs",
        ),
    ] {
        let o = xtask(args);
        let e = one_line_error(&o);
        assert!(e.contains(want), "{args:?}: {e}");
    }
}

/// A misspelt task or flag: one line, exit 2, and clap's suggestion of the right spelling.
#[test]
fn clap_suggestions_are_kept() {
    let e = one_line_error(&xtask(&["publsh"]));
    assert!(
        e.contains("unrecognized subcommand 'publsh'")
            && e.contains("tip: a similar subcommand exists: 'publish'"),
        "{e}"
    );
    let e = one_line_error(&xtask(&["bench", "--dry-rnu"]));
    assert!(
        e.contains("tip: a similar argument exists: '--dry-run'"),
        "{e}"
    );
}

/// One size syntax on the command line: `1G`, `1GiB` and `1024M` are the same size; a size
/// that is none of these is refused in one line.
#[test]
fn sizes_on_the_command_line() {
    for size in ["1G", "1GiB", "1024M"] {
        let o = xtask(&["bench", "--dry-run", "--quick", "--guest-mem", size]);
        assert!(
            o.status.success(),
            "{size}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let e = one_line_error(&xtask(&["bench", "--dry-run", "--guest-mem", "1.5G"]));
    assert!(e.contains("invalid size '1.5G'"), "{e}");
}

/// `cargo xtask table FILE | head` : the reader has gone; xtask ends quietly by SIGPIPE, as C
/// tools do, instead of panicking in `println!` (exit 101 and a "Broken pipe" panic message).
#[test]
fn a_closed_stdout_ends_xtask_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../results/vm/20261125T210102Z-6.18.44-fc-v595.json");
    let (reader, writer) = std::io::pipe().unwrap();
    // Closed before xtask starts: its first write to stdout meets EPIPE, whatever the timing.
    drop(reader);
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["table", file.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.signal(), Some(13), "{:?}: {err}", o.status);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn icount_under_kvm_is_refused_before_any_kernel_is_opened() {
    // The kernel path does not exist: the flags alone decide.
    let o = xtask(&[
        "bench",
        "--kernel",
        "/nonexistent/bzImage",
        "--clock",
        "icount",
        "--accel",
        "kvm",
    ]);
    let e = one_line_error(&o);
    assert!(
        e.contains("--clock icount") && e.contains("--accel tcg"),
        "{e}"
    );
}
