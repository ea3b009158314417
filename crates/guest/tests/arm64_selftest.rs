//! The workspace's own `hostenv` and `realfork` tests, built for aarch64, run inside Debian's
//! arm64 6.12 kernel (TCG, `-cpu max`: an emulated PMUv3, THP `always`, mTHP, contpte). This
//! keeps the arm64 host defects fixed (MIDR decoding, PMU detection by name, mTHP under THP
//! `always`, absent vmstat counters, ...): every test binary of the two crates is one Exec
//! step of a non-interactive plan, and each must exit 0.

mod boot_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use boot_support::{kit, skip, workspace_root};
use contract::Arch;
use guest::plan::{GuestPlan, GuestStep};
use guest::qemu::{AccelChoice, Guest, GuestConfig, GuestEvent};

/// Build the test binaries of `packages` for aarch64 (static, like the payload) and return
/// `(name, path)` of each.
fn aarch64_test_binaries(packages: &[&str]) -> Result<Vec<(String, PathBuf)>, String> {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(cargo);
    c.current_dir(&root)
        .args([
            "test",
            "--no-run",
            "--message-format=json-render-diagnostics",
        ])
        .args(["--target", "aarch64-unknown-linux-gnu"])
        .arg("--target-dir")
        .arg(root.join("target/guest"))
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
            guest::payload::AARCH64_LINKER,
        )
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    for p in packages {
        c.args(["-p", p]);
    }
    let out = c.output().map_err(|e| format!("running cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!("cargo test --no-run for aarch64: {}", out.status));
    }
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" || v["profile"]["test"] != true {
            continue;
        }
        let Some(exe) = v["executable"].as_str() else {
            continue;
        };
        let name = Path::new(exe)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        bins.push((name, PathBuf::from(exe)));
    }
    Ok(bins)
}

#[test]
fn hostenv_and_realfork_tests_pass_in_an_arm64_6_12_guest() {
    if guest::fetch::which_in_path(guest::payload::AARCH64_LINKER).is_none() {
        skip("aarch64-linux-gnu-gcc is missing (apt-get install gcc-aarch64-linux-gnu)");
        return;
    }
    let Some(kit) = kit("6.12", Arch::Arm64) else {
        return;
    };
    let bins = aarch64_test_binaries(&["hostenv", "realfork"]).unwrap_or_else(|e| panic!("{e}"));
    // hostenv: lib + 2 integration tests; realfork: lib + 3.
    assert!(bins.len() >= 7, "test binaries: {bins:?}");
    let steps = bins
        .iter()
        .map(|(name, _)| GuestStep::Exec {
            path: format!("/tests/{name}"),
            // One thread: several tests pin and fork. The initramfs
            // has no shell, which that hostenv test runs as its child.
            args: vec![
                "--test-threads=1".into(),
                "--skip".into(),
                "a_waited_childs_cpu_time_is_counted".into(),
            ],
            timeout_secs: 900,
        })
        .collect();
    let mut cfg = GuestConfig::new(kit.image, kit.payload, GuestPlan::new(false, steps));
    cfg.accel = AccelChoice::Tcg;
    // The real-fork tests populate up to 64 MiB per test, several at a time in one binary.
    cfg.mem = contract::Size(2 << 30);
    cfg.step_timeout = Duration::from_secs(900);
    cfg.extra_files = bins
        .iter()
        .map(|(name, path)| (format!("/tests/{name}"), path.clone()))
        .collect();
    let mut g = Guest::boot(cfg).unwrap_or_else(|e| panic!("{e}"));
    let hello = g.hello().clone();
    assert!(hello.kernel_release.starts_with("6.12."), "{hello:?}");
    let mut outputs: Vec<u8> = Vec::new();
    let done = g
        .run_all(&mut |e| {
            if let GuestEvent::Output(o) = e {
                outputs.extend(o);
            }
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&outputs);
    eprintln!("{text}");
    assert_eq!(done.len(), bins.len(), "every test binary ran");
    for (d, (name, _)) in done.iter().zip(&bins) {
        assert!(
            d.ok && d.exit_code == Some(0),
            "{name} failed in the arm64 guest: {d:?}"
        );
    }
    // The PMU the guest has is found (the defect: only x86's "cpu" PMU was looked for).
    assert!(
        hello.pmu.as_deref().is_some_and(|p| p.contains("armv8")),
        "{hello:?}"
    );
    assert!(
        text.matches("test result: ok.").count() >= bins.len(),
        "every binary reported its result"
    );
}
