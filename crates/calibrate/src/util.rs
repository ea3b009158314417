//! Small helpers: UTC timestamps without a date crate, host facts from procfs, and atomic file
//! writes (temporary file + rename or link).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::{CalibrateError, Result};

/// `(rfc3339, compact)` UTC stamps for `secs` since the epoch, e.g.
/// `("2026-11-25T20:30:00Z", "20261125T203000Z")`.
pub fn utc_stamps(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
    )
}

/// Seconds since the Unix epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The host name (`/proc/sys/kernel/hostname`), `unknown-host` if unreadable.
pub fn host_name() -> String {
    read_trim("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown-host".into())
}

/// `uname -r` (`/proc/sys/kernel/osrelease`).
pub fn kernel_release() -> String {
    read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())
}

/// The first `model name` of /proc/cpuinfo.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The host arch as forkbench spells it.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> CalibrateError + '_ {
    move |source| CalibrateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_tmp(path: &Path, bytes: &[u8]) -> Result<std::path::PathBuf> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let dir = dir.unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(path)(e));
    }
    Ok(tmp)
}

/// Write `bytes` to a new file `path` atomically; never overwrites (hard link of a synced
/// temporary file, which fails if `path` exists).
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.exists() {
        return Err(CalibrateError::Exists {
            path: path.to_owned(),
        });
    }
    let tmp = write_tmp(path, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(CalibrateError::Exists {
            path: path.to_owned(),
        }),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Write `bytes` to `path` atomically, replacing any previous content (rename of a synced
/// temporary file). Used for generated files such as `results/fidelity.md`.
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_tmp(path, bytes)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err(path)(e)
    })
}

/// Read a file to a string with the path in the error.
pub fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_known_dates() {
        assert_eq!(utc_stamps(0).0, "1970-01-01T00:00:00Z");
        assert_eq!(utc_stamps(951_782_400).0, "2000-02-29T00:00:00Z");
        assert_eq!(utc_stamps(1_795_638_600).1, "20261125T203000Z");
    }

    #[test]
    fn write_new_refuses_overwrite_and_replace_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_new(&p, b"1").unwrap();
        assert!(matches!(
            write_new(&p, b"2"),
            Err(CalibrateError::Exists { .. })
        ));
        assert_eq!(read(&p).unwrap(), "1");
        write_replace(&p, b"3").unwrap();
        assert_eq!(read(&p).unwrap(), "3");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
