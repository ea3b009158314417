//! A newc ("070701") cpio writer for the guest's initramfs.
//!
//! Each entry is a 110-byte ASCII header (magic and 13 fields of 8 hex digits: ino, mode, uid,
//! gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check), the
//! NUL-terminated name padded to a multiple of 4, then the data padded to a multiple of 4. The
//! archive ends with the `TRAILER!!!` entry and is padded to 512 bytes. Owner is root, mtime 0,
//! so the same inputs give the same bytes. Names are stored without a leading `/`; parent
//! directories are not implied: add them first, as the kernel's unpacker does not create them.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;
const PERMISSION_BITS: u32 = 0o7777;

/// Writes a newc cpio archive to `W`.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

/// The fields of one header that differ between entries.
struct Entry<'a> {
    name: &'a str,
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// A directory; `mode` is its permission bits (e.g. `0o755`).
    pub fn add_dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let name = entry_name(path)?;
        self.header(&Entry {
            name: &name,
            mode: S_IFDIR | (mode & PERMISSION_BITS),
            nlink: 2,
            size: 0,
            rdev: (0, 0),
        })
    }

    /// A regular file with these contents.
    pub fn add_file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        let name = entry_name(path)?;
        self.header(&Entry {
            name: &name,
            mode: S_IFREG | (mode & PERMISSION_BITS),
            nlink: 1,
            size: data.len() as u64,
            rdev: (0, 0),
        })?;
        self.write(data)?;
        self.pad(4)
    }

    /// A regular file copied from `host_path` without reading it into memory. A file that
    /// changes size while it is copied is an error (the header already holds its size).
    pub fn add_file_from(&mut self, path: &str, mode: u32, host_path: &Path) -> io::Result<()> {
        let name = entry_name(path)?;
        let file = File::open(host_path).map_err(|e| with_path(e, host_path))?;
        let size = file.metadata().map_err(|e| with_path(e, host_path))?.len();
        if size > u64::from(u32::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: larger than newc's 4 GiB limit", host_path.display()),
            ));
        }
        self.header(&Entry {
            name: &name,
            mode: S_IFREG | (mode & PERMISSION_BITS),
            nlink: 1,
            size,
            rdev: (0, 0),
        })?;
        let mut reader = file.take(size);
        let copied = io::copy(&mut reader, &mut CountingWriter(self))?;
        if copied != size || reader.into_inner().read(&mut [0u8; 1])? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{}: changed size while it was copied", host_path.display()),
            ));
        }
        self.pad(4)
    }

    /// A character device node (e.g. `dev/console`, 5:1).
    pub fn add_char_dev(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let name = entry_name(path)?;
        self.header(&Entry {
            name: &name,
            mode: S_IFCHR | (mode & PERMISSION_BITS),
            nlink: 1,
            size: 0,
            rdev: (major, minor),
        })
    }

    /// Writes the trailer, pads the archive to 512 bytes and hands back the writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.next_ino = 0;
        self.header(&Entry {
            name: TRAILER,
            mode: 0,
            nlink: 1,
            size: 0,
            rdev: (0, 0),
        })?;
        self.pad(512)?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self, e: &Entry<'_>) -> io::Result<()> {
        let size = u32::try_from(e.size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "entry larger than 4 GiB"))?;
        let ino = self.next_ino;
        self.next_ino = self.next_ino.wrapping_add(1);
        let namesize = e.name.len() + 1;
        let fields = [
            ino,
            e.mode,
            0,
            0,
            e.nlink,
            0,
            size,
            0,
            0,
            e.rdev.0,
            e.rdev.1,
            namesize as u32,
            0,
        ];
        let mut head = String::with_capacity(110 + namesize);
        head.push_str(MAGIC);
        for f in fields {
            head.push_str(&format!("{f:08x}"));
        }
        head.push_str(e.name);
        head.push('\0');
        self.write(head.as_bytes())?;
        self.pad(4)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self, to: u64) -> io::Result<()> {
        let n = (to - self.written % to) % to;
        self.write(&vec![0u8; n as usize])
    }
}

/// Lets `io::copy` stream into the archive while the byte count stays right.
struct CountingWriter<'a, W: Write>(&'a mut CpioWriter<W>);

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.out.flush()
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The stored name: relative, no empty, `.` or `..` components, no NUL.
fn entry_name(path: &str) -> io::Result<String> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad initramfs path {path:?}: {why}"),
        )
    };
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(bad("empty"));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(bad("has a . or .. component"));
    }
    let name = parts.join("/");
    if name == TRAILER {
        return Err(bad("is the trailer's name"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(archive: &[u8], entry_at: usize, index: usize) -> u32 {
        let at = entry_at + 6 + index * 8;
        u32::from_str_radix(std::str::from_utf8(&archive[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn a_file_entry_has_the_newc_layout() {
        let mut w = CpioWriter::new(Vec::new());
        w.add_file("/init", 0o755, b"hello").unwrap();
        let a = w.finish().unwrap();
        assert_eq!(&a[..6], b"070701");
        assert_eq!(field(&a, 0, 1), S_IFREG | 0o755);
        assert_eq!(field(&a, 0, 6), 5);
        assert_eq!(field(&a, 0, 11), 5); // "init\0"
        // 110 + 5 = 115, padded to 116; data 5 bytes padded to 8.
        assert_eq!(&a[110..115], b"init\0");
        assert_eq!(&a[116..121], b"hello");
        assert_eq!(&a[124..130], b"070701");
        assert_eq!(&a[124 + 110..124 + 110 + 11], b"TRAILER!!!\0");
        assert_eq!(a.len() % 512, 0);
    }

    #[test]
    fn a_char_device_records_its_numbers() {
        let mut w = CpioWriter::new(Vec::new());
        w.add_char_dev("dev/console", 0o600, 5, 1).unwrap();
        let a = w.finish().unwrap();
        assert_eq!(field(&a, 0, 1), S_IFCHR | 0o600);
        assert_eq!((field(&a, 0, 9), field(&a, 0, 10)), (5, 1));
    }

    #[test]
    fn inodes_are_distinct_and_output_is_reproducible() {
        let build = || {
            let mut w = CpioWriter::new(Vec::new());
            w.add_dir("forkbench", 0o755).unwrap();
            w.add_file("forkbench/a", 0o644, b"a").unwrap();
            w.finish().unwrap()
        };
        let a = build();
        assert_eq!(a, build());
        assert_eq!(field(&a, 0, 0), 1);
        let second = 110 + "forkbench\0".len();
        let second = second.div_ceil(4) * 4;
        assert_eq!(field(&a, second, 0), 2);
    }

    #[test]
    fn bad_names_are_refused() {
        let mut w = CpioWriter::new(Vec::new());
        for bad in ["", "/", "a/../b", "./x", "a\0b", "TRAILER!!!"] {
            let e = w.add_file(bad, 0o644, b"").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn streaming_a_missing_file_names_it() {
        let mut w = CpioWriter::new(Vec::new());
        let e = w
            .add_file_from("x", 0o644, Path::new("/nonexistent/forkbench-cpio-test"))
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/forkbench-cpio-test"));
    }
}
