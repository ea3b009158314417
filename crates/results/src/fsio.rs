//! File input and output every writer of forkbench files shares: atomic writes that never
//! leave a half-written file (a synced temporary file, then a hard link that refuses to
//! overwrite, or a rename that replaces), and capped reads that refuse what is not a regular
//! file (a profile named `/dev/zero` must not read until the machine runs out of memory).

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Largest file forkbench reads (profiles, result files, reference files).
pub const MAX_READ_BYTES: u64 = 256 << 20;

/// Why a file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: refusing to overwrite an existing file")]
    Exists { path: PathBuf },
    #[error("{path}: not a regular file")]
    NotRegular { path: PathBuf },
    #[error("{path}: larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FsError + '_ {
    move |source| FsError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_tmp(path: &Path, bytes: &[u8]) -> Result<PathBuf, FsError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let dir = dir.unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        // O_NOFOLLOW: in a shared directory a planted symlink must not redirect the write.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(io(path)(e));
    }
    Ok(tmp)
}

/// Make a link or rename in `path`'s directory durable (best effort: the file is in place).
fn sync_dir_of(path: &Path) {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Ok(d) = fs::File::open(dir.unwrap_or(Path::new("."))) {
        let _ = d.sync_all();
    }
}

/// Write `bytes` to a new file `path`; never overwrites, never leaves a partial file.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    if path.exists() {
        return Err(FsError::Exists {
            path: path.to_owned(),
        });
    }
    let tmp = write_tmp(path, bytes)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir_of(path);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(FsError::Exists {
            path: path.to_owned(),
        }),
        Err(e) => Err(io(path)(e)),
    }
}

/// Write `bytes` to `path`, replacing what was there in one step (generated files).
pub fn write_replace(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let tmp = write_tmp(path, bytes)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(path)(e)
    })?;
    sync_dir_of(path);
    Ok(())
}

/// Read a regular file of at most `limit` bytes as UTF-8.
pub fn read_capped(path: &Path, limit: u64) -> Result<String, FsError> {
    let f = fs::File::open(path).map_err(io(path))?;
    let meta = f.metadata().map_err(io(path))?;
    if !meta.is_file() {
        return Err(FsError::NotRegular {
            path: path.to_owned(),
        });
    }
    let mut text = String::new();
    f.take(limit + 1)
        .read_to_string(&mut text)
        .map_err(io(path))?;
    if text.len() as u64 > limit {
        return Err(FsError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(text)
}

/// [`read_capped`] with [`MAX_READ_BYTES`].
pub fn read(path: &Path) -> Result<String, FsError> {
    read_capped(path, MAX_READ_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_refuses_overwrite_and_replace_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        write_new(&p, b"1").unwrap();
        assert!(matches!(write_new(&p, b"2"), Err(FsError::Exists { .. })));
        assert_eq!(read(&p).unwrap(), "1");
        write_replace(&p, b"3").unwrap();
        assert_eq!(read(&p).unwrap(), "3");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn reads_are_capped_and_regular_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big");
        fs::write(&p, vec![b'x'; 100]).unwrap();
        assert_eq!(read_capped(&p, 100).unwrap().len(), 100);
        assert!(matches!(
            read_capped(&p, 99),
            Err(FsError::TooLarge { limit: 99, .. })
        ));
        assert!(matches!(
            read(Path::new("/dev/zero")),
            Err(FsError::NotRegular { .. })
        ));
        assert!(matches!(
            read(dir.path()),
            Err(FsError::NotRegular { .. }) | Err(FsError::Io { .. })
        ));
    }
}
