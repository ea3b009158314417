//! A full filesystem (a 64 KiB tmpfs mounted for the test; root only): atomic writes leave
//! neither a temporary file nor a partial result, a replaced file keeps its old content, and a
//! bench journal that hits ENOSPC keeps every record it wrote whole.

use std::path::{Path, PathBuf};
use std::process::Command;

use results::{ResultFile, fsio, journal};

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    fn mount(size: &str) -> Option<TinyFs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TinyFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn tiny() -> Option<TinyFs> {
    let fs = TinyFs::mount("64k");
    if fs.is_none() {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
    }
    fs
}

#[test]
fn atomic_writes_on_a_full_filesystem_leave_nothing_half_written() {
    let Some(fs) = tiny() else { return };
    let big = vec![b'x'; 1 << 20];
    let target = fs.path().join("r.json");
    let e = fsio::write_new(&target, &big).unwrap_err().to_string();
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(fs.names(), Vec::<String>::new(), "nothing may be left");

    let old: PathBuf = fs.path().join("ref.json");
    fsio::write_new(&old, b"{\"good\":[1.0]}").unwrap();
    assert!(fsio::write_replace(&old, &big).is_err());
    assert_eq!(fsio::read(&old).unwrap(), "{\"good\":[1.0]}");
    assert_eq!(fs.names(), vec!["ref.json".to_string()]);
}

#[test]
fn a_journal_that_fills_the_disk_keeps_every_whole_record() {
    let Some(fs) = tiny() else { return };
    let mut meta = ResultFile::new("m", "l", "2026-01-01T00:00:00Z", Default::default());
    meta.config = serde_json::json!({"k": 1});
    let path = journal::path_for(&fs.path().join("r.json"));
    let mut w = journal::Writer::create(&path, &meta).unwrap();
    let mut run: results::RunRecord = serde_json::from_value(serde_json::json!({
        "variant": {"instrument": "sim", "arch": "x86_64", "strategy": "upstream", "order": 9,
                    "mem_bytes": 1073741824u64, "mode": "fresh"},
        "run_index": 0, "warmup": 2, "samples_ns": []
    }))
    .unwrap();
    run.samples_ns = (0..1000).map(|i| 5_000_000 + i).collect();
    let mut written = 0;
    let err = loop {
        match w.run(&run) {
            Ok(()) => written += 1,
            Err(e) => break e.to_string(),
        }
        assert!(written < 1000, "a 64 KiB filesystem never filled");
    };
    assert!(err.contains("No space left on device"), "{err}");
    drop(w);
    let back = ResultFile::load(&path).unwrap();
    assert!(written > 0);
    assert_eq!(
        back.runs.len(),
        written,
        "every whole record, and no torn one"
    );
    assert!(back.runs.iter().all(|r| r.samples_ns == run.samples_ns));
}
