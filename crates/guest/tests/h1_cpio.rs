//! The cpio writer's archives, read back by GNU cpio: `cpio -t` lists every entry and
//! `cpio -i` extracts the same bytes and modes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use guest::cpio::CpioWriter;

/// Whether `cpio` can run; without it (and without CI) the test says why it skips.
fn cpio_available() -> bool {
    match Command::new("cpio").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "cpio is not installed (apt-get install cpio) and CI is set"
            );
            eprintln!("skipped: cpio is not installed (apt-get install cpio)");
            false
        }
    }
}

fn cpio(args: &[&str], dir: &Path, archive: &[u8]) -> String {
    let mut child = Command::new("cpio")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cpio {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sample_archive(host_file: &Path) -> Vec<u8> {
    let mut w = CpioWriter::new(Vec::new());
    w.add_dir("dev", 0o755).unwrap();
    w.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
    w.add_dir("/forkbench", 0o755).unwrap();
    w.add_file("forkbench/plan.json", 0o644, b"{\"version\":1}\n")
        .unwrap();
    w.add_file("forkbench/empty", 0o600, b"").unwrap();
    w.add_file_from("init", 0o755, host_file).unwrap();
    w.finish().unwrap()
}

fn host_payload(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    // Sizes that exercise every padding remainder, and bytes that are not text.
    let bytes: Vec<u8> = (0..100_003u32).map(|i| (i * 31 % 256) as u8).collect();
    let path = dir.join("payload.bin");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[test]
fn cpio_lists_every_entry() {
    if !cpio_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (payload, _) = host_payload(dir.path());
    let listing = cpio(&["-t", "--quiet"], dir.path(), &sample_archive(&payload));
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names,
        [
            "dev",
            "dev/console",
            "forkbench",
            "forkbench/plan.json",
            "forkbench/empty",
            "init"
        ]
    );
}

#[test]
fn cpio_extracts_identical_bytes_and_modes() {
    if !cpio_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (payload, bytes) = host_payload(dir.path());
    let archive = sample_archive(&payload);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    // Device nodes need privileges to create; extract everything else.
    cpio(
        &[
            "-i",
            "-d",
            "--quiet",
            "--no-absolute-filenames",
            "-f",
            "dev/console",
        ],
        &out,
        &archive,
    );
    assert_eq!(std::fs::read(out.join("init")).unwrap(), bytes);
    assert_eq!(
        std::fs::read(out.join("forkbench/plan.json")).unwrap(),
        b"{\"version\":1}\n"
    );
    assert_eq!(std::fs::read(out.join("forkbench/empty")).unwrap(), b"");
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("init"), 0o755);
    assert_eq!(mode("forkbench/empty"), 0o600);
    assert!(out.join("forkbench").is_dir());
}

#[test]
fn cpio_reads_the_device_node_numbers() {
    if !cpio_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (payload, _) = host_payload(dir.path());
    let listing = cpio(
        &["-t", "-v", "--quiet"],
        dir.path(),
        &sample_archive(&payload),
    );
    let console = listing
        .lines()
        .find(|l| l.ends_with("dev/console"))
        .unwrap();
    assert!(console.starts_with("crw-------"), "{console}");
    assert!(
        console.contains("5,") && console.contains(" 1 "),
        "{console}"
    );
}
