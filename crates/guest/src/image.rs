//! Kernel images: what arch a file boots, its release, its config; Debian packages unpacked.
//!
//! Recognised: an x86 bzImage (`HdrS` at 0x202; the release from the setup header's
//! `kernel_version` string), an arm64 `Image` (`ARM\x64` at 0x38; the release from the
//! `Linux version ` banner), a gzip'd arm64 `Image` (Debian's older `vmlinuz`) and an arm64 EFI
//! zboot image whose payload is gzip. Anything else is [`ImageError::NotAKernel`].

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use contract::Arch;
use flate2::read::MultiGzDecoder;

const BANNER: &[u8] = b"Linux version ";
const ARM64_MAGIC_AT: usize = 0x38;
const ARM64_MAGIC: &[u8; 4] = b"ARM\x64";
const BZIMAGE_MAGIC_AT: usize = 0x202;
const BZIMAGE_MAGIC: &[u8; 4] = b"HdrS";
/// `kernel_version` in the x86 setup header: offset of the string, minus 0x200.
const BZIMAGE_VERSION_FIELD: usize = 0x20e;
const GZIP_MAGIC: &[u8; 2] = b"\x1f\x8b";

/// A kernel image to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    pub path: PathBuf,
    pub arch: Arch,
    /// `uname -r` of the kernel, when the image says it.
    pub release: Option<String>,
    /// Its `.config`, when one was found next to it.
    pub config: Option<PathBuf>,
}

/// Why a file is not a kernel this tool can boot. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("{}: not a kernel image: {reason}", path.display())]
    NotAKernel { path: PathBuf, reason: String },
    #[error(
        "dpkg-deb is not installed (it unpacks --kernel-deb packages; install the dpkg package, or extract the image yourself and pass --kernel)"
    )]
    DpkgDebMissing,
    #[error("{}: dpkg-deb -x failed: {message}", deb.display())]
    DpkgDeb { deb: PathBuf, message: String },
    #[error("{}: the package holds no boot/vmlinuz-* (is it a linux-image package?)", deb.display())]
    NoImageInDeb { deb: PathBuf },
}

impl KernelImage {
    /// Reads the header of `path` and works out its arch, release and config.
    pub fn open(path: &Path) -> Result<KernelImage, ImageError> {
        let io_err = |error| ImageError::Io {
            path: path.to_path_buf(),
            error,
        };
        let not_kernel = |reason: &str| ImageError::NotAKernel {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let mut file = File::open(path).map_err(io_err)?;
        if !file.metadata().map_err(io_err)?.is_file() {
            return Err(not_kernel("not a regular file"));
        }
        let head = read_up_to(&mut file, 4096).map_err(io_err)?;
        let (arch, release) = if has_at(&head, BZIMAGE_MAGIC_AT, BZIMAGE_MAGIC) {
            (
                Arch::X86_64,
                bzimage_release(&head, &mut file).map_err(io_err)?,
            )
        } else if has_at(&head, ARM64_MAGIC_AT, ARM64_MAGIC) {
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            (Arch::Arm64, find_release(file).map_err(io_err)?)
        } else if has_at(&head, 0, GZIP_MAGIC) {
            file.seek(SeekFrom::Start(0)).map_err(io_err)?;
            gzip_arm64(MultiGzDecoder::new(file)).map_err(|e| not_kernel(&e))?
        } else if has_at(&head, 0, b"MZ") && has_at(&head, 4, b"zimg") {
            let (offset, size, method) =
                zboot_payload(&head).ok_or_else(|| not_kernel("EFI zboot header too short"))?;
            if method != "gzip" {
                return Err(not_kernel(&format!(
                    "EFI zboot image compressed with {method}; decompress it and pass the Image"
                )));
            }
            file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
            gzip_arm64(MultiGzDecoder::new(file.take(size))).map_err(|e| not_kernel(&e))?
        } else if head.len() < 0x240 {
            return Err(not_kernel(&format!("only {} bytes long", head.len())));
        } else {
            return Err(not_kernel(
                "no bzImage (HdrS at 0x202), arm64 Image (ARM\\x64 at 0x38) or gzip header",
            ));
        };
        let config = find_config(path, release.as_deref());
        Ok(KernelImage {
            path: path.to_path_buf(),
            arch,
            release,
            config,
        })
    }

    /// A kernel image or a Debian `linux-image-*` package, told apart by content (a package
    /// is an `ar` archive); a package is unpacked into `workdir` as [`KernelImage::from_deb`]
    /// does.
    pub fn open_any(path: &Path, workdir: &Path) -> Result<KernelImage, ImageError> {
        if is_deb(path) {
            KernelImage::from_deb(path, workdir)
        } else {
            KernelImage::open(path)
        }
    }

    /// Unpacks a Debian `linux-image-*` package into `workdir` with `dpkg-deb -x` and opens
    /// its `boot/vmlinuz-*`, with `boot/config-*` as its config.
    pub fn from_deb(deb: &Path, workdir: &Path) -> Result<KernelImage, ImageError> {
        if !deb.is_file() {
            return Err(ImageError::Io {
                path: deb.to_path_buf(),
                error: io::Error::new(io::ErrorKind::NotFound, "no such file"),
            });
        }
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(workdir)
            .output()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => ImageError::DpkgDebMissing,
                _ => ImageError::DpkgDeb {
                    deb: deb.to_path_buf(),
                    message: e.to_string(),
                },
            })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let message = stderr
                .lines()
                .find(|l| !l.trim().is_empty())
                .map_or_else(|| out.status.to_string(), |l| l.trim().to_string());
            return Err(ImageError::DpkgDeb {
                deb: deb.to_path_buf(),
                message,
            });
        }
        let boot = workdir.join("boot");
        let first_with = |prefix: &str| -> Option<PathBuf> {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&boot)
                .ok()?
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect();
            found.sort();
            found.into_iter().next()
        };
        let vmlinuz = first_with("vmlinuz-").ok_or_else(|| ImageError::NoImageInDeb {
            deb: deb.to_path_buf(),
        })?;
        let mut image = KernelImage::open(&vmlinuz)?;
        if let Some(config) = first_with("config-") {
            image.config = Some(config);
        }
        Ok(image)
    }
}

/// The config lines that change what fork costs or which layouts exist: THP, mTHP, contpte,
/// page size and page-table levels. `# CONFIG_X is not set` reads as `n`. An unreadable file
/// gives nothing.
pub fn config_facts(path: &Path) -> Vec<(String, String)> {
    const WANTED: &[&str] = &[
        "TRANSPARENT_HUGEPAGE",
        "THP_",
        "_THP",
        "MTHP",
        "ARM64_CONTPTE",
        "PAGE_SIZE",
        "K_PAGES",
        "PAGE_SHIFT",
        "PAGE_MAPCOUNT",
        "MM_ID",
        "PGTABLE_LEVELS",
        "ARM64_VA_BITS",
    ];
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# CONFIG_") {
                let name = rest.strip_suffix(" is not set")?;
                return Some((name.to_string(), "n".to_string()));
            }
            let (name, value) = line.strip_prefix("CONFIG_")?.split_once('=')?;
            Some((name.to_string(), value.trim_matches('"').to_string()))
        })
        .filter(|(name, _)| WANTED.iter().any(|w| name.contains(w)))
        .collect()
}

/// Is `path` a Debian package (an `ar` archive)? Unreadable files are not: opening them as an
/// image then says why.
fn is_deb(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"!<arch>\n"
}

fn has_at(bytes: &[u8], at: usize, magic: &[u8]) -> bool {
    bytes.get(at..at + magic.len()) == Some(magic)
}

fn read_up_to(r: &mut impl Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    r.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn bzimage_release(head: &[u8], file: &mut File) -> io::Result<Option<String>> {
    let Some(field) = head.get(BZIMAGE_VERSION_FIELD..BZIMAGE_VERSION_FIELD + 2) else {
        return Ok(None);
    };
    let offset = u16::from_le_bytes([field[0], field[1]]);
    if offset == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0x200 + u64::from(offset)))?;
    let text = read_up_to(file, 256)?;
    Ok(release_token(&text))
}

/// The release: the first word, if it looks like one (starts with a digit, printable).
fn release_token(text: &[u8]) -> Option<String> {
    let end = text
        .iter()
        .position(|&b| b == b' ' || b == 0)
        .unwrap_or(text.len());
    let word = std::str::from_utf8(&text[..end]).ok()?;
    let plausible = word.len() <= 128
        && word.starts_with(|c: char| c.is_ascii_digit())
        && word.bytes().all(|b| b.is_ascii_graphic());
    plausible.then(|| word.to_string())
}

/// Streams through `r` for the first `Linux version <release> ` banner.
fn find_release(mut r: impl Read) -> io::Result<Option<String>> {
    const CHUNK: usize = 1 << 20;
    const KEEP: usize = 256;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + KEEP);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut chunk)?;
        buf.extend_from_slice(&chunk[..n]);
        let mut from = 0;
        while let Some(i) = find(&buf[from..], BANNER) {
            let at = from + i + BANNER.len();
            if buf.len() - at < 130 && n != 0 {
                break; // The release may straddle the next read.
            }
            if let Some(release) = release_token(&buf[at..buf.len().min(at + 130)]) {
                return Ok(Some(release));
            }
            from = at;
        }
        if n == 0 {
            return Ok(None);
        }
        let keep_from = buf.len().saturating_sub(KEEP);
        buf.drain(..keep_from);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A gzip stream that must hold an arm64 Image.
fn gzip_arm64(mut r: impl Read) -> Result<(Arch, Option<String>), String> {
    let head = read_up_to(&mut r, 64).map_err(|e| format!("gzip data does not decompress: {e}"))?;
    if !has_at(&head, ARM64_MAGIC_AT, ARM64_MAGIC) {
        return Err("gzip data is not an arm64 Image (no ARM\\x64 at 0x38)".into());
    }
    let release = find_release(r).map_err(|e| format!("gzip data does not decompress: {e}"))?;
    Ok((Arch::Arm64, release))
}

/// EFI zboot: payload offset and size (little-endian u32 at 8 and 12), compression name at 0x18.
fn zboot_payload(head: &[u8]) -> Option<(u64, u64, String)> {
    let u32_at = |at: usize| -> Option<u64> {
        let b = head.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    };
    let name = head.get(0x18..0x18 + 32)?;
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Some((
        u32_at(8)?,
        u32_at(12)?,
        String::from_utf8_lossy(&name[..end]).into_owned(),
    ))
}

/// `config-<release>` next to the image (Debian's /boot), else a kernel tree's `.config`
/// (`arch/<arch>/boot/<image>` is three levels below it).
fn find_config(image: &Path, release: Option<&str>) -> Option<PathBuf> {
    let dir = image.parent()?;
    if let Some(r) = release {
        let c = dir.join(format!("config-{r}"));
        if c.is_file() {
            return Some(c);
        }
    }
    let name = image.file_name()?.to_string_lossy();
    if let Some(suffix) = name.strip_prefix("vmlinuz-") {
        let c = dir.join(format!("config-{suffix}"));
        if c.is_file() {
            return Some(c);
        }
    }
    let mut up = Some(dir);
    for _ in 0..3 {
        up = up.and_then(Path::parent);
    }
    let c = up?.join(".config");
    c.is_file().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_tokens() {
        assert_eq!(
            release_token(b"6.12.107+deb13-cloud-amd64 (debian-kernel@lists) #1").as_deref(),
            Some("6.12.107+deb13-cloud-amd64")
        );
        assert_eq!(release_token(b"%s (%s) %s\n"), None);
        assert_eq!(release_token(b""), None);
    }

    #[test]
    fn banner_found_across_read_boundaries() {
        let mut data = vec![0u8; (1 << 20) - 20];
        data.extend_from_slice(b"Linux version %s\0");
        data.extend_from_slice(b"Linux version 6.1.0-50-cloud-arm64 (x) #1\0");
        assert_eq!(
            find_release(io::Cursor::new(&data)).unwrap().as_deref(),
            Some("6.1.0-50-cloud-arm64")
        );
    }

    #[test]
    fn config_facts_pick_thp_and_page_size_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(
            &p,
            "CONFIG_TRANSPARENT_HUGEPAGE=y\n# CONFIG_TRANSPARENT_HUGEPAGE_ALWAYS is not set\n\
             CONFIG_ARM64_CONTPTE=y\nCONFIG_ARM64_4K_PAGES=y\nCONFIG_PGTABLE_LEVELS=4\n\
             CONFIG_HZ=250\nCONFIG_LOCALVERSION=\"\"\n",
        )
        .unwrap();
        let facts = config_facts(&p);
        let names: Vec<&str> = facts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "TRANSPARENT_HUGEPAGE",
                "TRANSPARENT_HUGEPAGE_ALWAYS",
                "ARM64_CONTPTE",
                "ARM64_4K_PAGES",
                "PGTABLE_LEVELS"
            ]
        );
        assert_eq!(facts[1].1, "n");
        assert!(config_facts(&dir.path().join("missing")).is_empty());
    }
}
