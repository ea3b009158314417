//! `cargo xtask table --format samples|json` and `publish --headline` through the binary, on
//! the committed result file.

use std::path::Path;
use std::process::{Command, Output};

const COMMITTED: &str = "results/vm/20261125T210102Z-6.18.44-fc-v595.json";

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// One line per timed fork: the file's samples, counted independently of the exporter.
#[test]
fn samples_are_one_row_per_fork() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join(COMMITTED)).unwrap()).unwrap();
    let forks: usize = file["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["samples_ns"].as_array().unwrap().len())
        .sum();
    assert_eq!(forks, 28000);
    let csv = stdout(&xtask(&["table", COMMITTED, "--format", "samples"]));
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("file,machine,label,kernel,accel,instrument,arch,layout,order,"),
        "{csv:.300}"
    );
    assert_eq!(lines.count(), forks);
}

/// JSON export keys in the CSV's column order.
#[test]
fn json_export_keys_follow_the_csv_columns() {
    let csv = stdout(&xtask(&["table", COMMITTED, "--format", "csv"]));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let json = stdout(&xtask(&["table", COMMITTED, "--format", "json"]));
    let first = json.lines().nth(1).unwrap();
    let keys: Vec<&str> = first
        .split("\":")
        .filter_map(|part| part.rsplit('"').next())
        .take(header.len())
        .collect();
    assert_eq!(keys, header, "{first}");
}

/// The committed run is from a dirty tree: `publish --headline` refuses it in one line.
#[test]
fn publish_refuses_a_dirty_headline() {
    let o = xtask(&["publish", "--headline", COMMITTED]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("-dirty is from a dirty tree") && err.contains("--allow-dirty"),
        "{err}"
    );
}
