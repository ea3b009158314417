//! The initramfs a kernel under test boots with, wherever it boots (a local QEMU guest, a LAVA
//! device): a newc cpio archive holding `/init` (the static forkbench payload), the plan at
//! [`crate::plan::PLAN_PATH`], a `/dev/console` node and any extra files.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::cpio::CpioWriter;
use crate::plan::GuestPlan;

/// A file of the archive that could not be read or written. One line.
#[derive(Debug, thiserror::Error)]
#[error("initramfs {path}: {source}")]
pub struct InitramfsError {
    /// The archive, or the input file that failed.
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Write the initramfs to `path` (uncompressed: decompressing under TCG costs more than
/// reading). `extra_files` are (path in the guest, host file); their parent directories are
/// created.
pub fn write_initramfs(
    payload: &Path,
    plan: &GuestPlan,
    extra_files: &[(String, PathBuf)],
    path: &Path,
) -> Result<(), InitramfsError> {
    let err = |source| InitramfsError {
        path: path.to_owned(),
        source,
    };
    let file = File::create(path).map_err(err)?;
    let mut w = CpioWriter::new(BufWriter::new(file));
    let mut dirs: Vec<String> = ["dev", "proc", "sys", "run", "tmp", "forkbench"]
        .map(String::from)
        .to_vec();
    for (guest_path, _) in extra_files {
        let rel = guest_path.trim_start_matches('/');
        let mut parent = Path::new(rel).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(p.display().to_string());
            parent = p.parent();
        }
    }
    // Parents before children; the unpacker does not create missing directories.
    dirs.sort();
    dirs.dedup();
    dirs.sort_by_key(|d| d.matches('/').count());
    for d in &dirs {
        w.add_dir(d, 0o755).map_err(err)?;
    }
    w.add_char_dev("dev/console", 0o600, 5, 1).map_err(err)?;
    w.add_file_from("init", 0o755, payload)
        .map_err(|source| InitramfsError {
            path: payload.to_owned(),
            source,
        })?;
    let plan_path = crate::plan::PLAN_PATH.trim_start_matches('/');
    w.add_file(plan_path, 0o644, plan.to_json().as_bytes())
        .map_err(err)?;
    for (guest_path, host) in extra_files {
        w.add_file_from(guest_path.trim_start_matches('/'), 0o755, host)
            .map_err(|source| InitramfsError {
                path: host.clone(),
                source,
            })?;
    }
    let mut out = w.finish().map_err(err)?;
    out.flush().map_err(err)?;
    Ok(())
}
