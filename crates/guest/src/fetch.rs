//! Debian kernel packages for the guest tests and demos, fetched with a private apt
//! configuration: its own sources.list, lists, cache and preferences under the cache dir, so the
//! host's apt setup is never read for sources nor written. Release 6.1 comes from `bookworm`,
//! 6.12 from `stable`; the package is the highest `linux-image-<release>.*-cloud-<arch>-unsigned`.
//! A `.deb` already in the cache dir is reused without touching the network. The archive is the
//! one this host's apt already uses ([`crate::mirror`]), or the one given: forkbench names none.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use contract::Arch;

/// The kernel releases this module knows a Debian suite for.
pub const RELEASES: [&str; 2] = ["6.1", "6.12"];

/// The keyring that signs Debian's archive (package `debian-archive-keyring`).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unknown kernel release '{0}' (expected 6.1 or 6.12)")]
    UnknownRelease(String),
    #[error(
        "apt-get not found: fetching Debian kernel packages needs a Debian-family host \
         (elsewhere, pass an image with --kernel or a package with --kernel-deb)"
    )]
    NotDebian,
    #[error(transparent)]
    Mirror(#[from] crate::mirror::MirrorError),
    #[error("{KEYRING} is missing: apt-get install debian-archive-keyring")]
    NoKeyring,
    #[error("no cache directory: set FORKBENCH_KERNEL_CACHE (HOME and XDG_CACHE_HOME are unset)")]
    NoCacheDir,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {last_line}")]
    Apt {
        command: String,
        status: String,
        last_line: String,
    },
    #[error("no package matching {pattern} for {arch} in Debian {suite}")]
    NoPackage {
        pattern: String,
        arch: String,
        suite: String,
    },
    #[error("apt-get download {package} left no .deb in {dir}")]
    NotDownloaded { package: String, dir: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The Debian suite that ships `release`'s cloud kernels.
pub fn suite(release: &str) -> Result<&'static str, FetchError> {
    match release {
        "6.1" => Ok("bookworm"),
        "6.12" => Ok("stable"),
        other => Err(FetchError::UnknownRelease(other.to_string())),
    }
}

/// Debian's name for `arch`.
pub fn debian_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    }
}

/// `$FORKBENCH_KERNEL_CACHE`, else `$XDG_CACHE_HOME/forkbench/kernels`, else
/// `~/.cache/forkbench/kernels` (the home from `$HOME`, else the user's passwd entry: CI and
/// service managers may start without `HOME`).
pub fn default_cache_dir() -> Result<PathBuf, FetchError> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = non_empty("FORKBENCH_KERNEL_CACHE") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("forkbench/kernels"));
    }
    non_empty("HOME")
        .map(PathBuf::from)
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::current())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .map(|h| h.join(".cache/forkbench/kernels"))
        .ok_or(FetchError::NoCacheDir)
}

/// Whether `package` (a name, no version) is a cloud kernel image of `release` for `arch`:
/// `linux-image-6.1.0-50-cloud-amd64-unsigned` is 6.1's, never 6.12's.
fn is_wanted(package: &str, release: &str, arch: &str) -> bool {
    let Some(rest) = package.strip_prefix(&format!("linux-image-{release}.")) else {
        return false;
    };
    rest.ends_with(&format!("-cloud-{arch}-unsigned"))
        && !rest.contains("-dbg")
        && rest.starts_with(|c: char| c.is_ascii_digit())
}

/// Natural order: digit runs compare as numbers, the rest byte by byte (6.1.0-50 > 6.1.0-9).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if o != Ordering::Equal {
                    return o;
                }
                (a, b) = (&a[da..], &b[db..]);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z..]
}

/// The highest already fetched `.deb` of `release` for `arch` in `cache_dir`, if any.
pub fn cached(release: &str, arch: Arch, cache_dir: &Path) -> Result<Option<PathBuf>, FetchError> {
    suite(release)?;
    let darch = debian_arch(arch);
    let entries = match std::fs::read_dir(cache_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(cache_dir)(e)),
    };
    let mut best: Option<String> = None;
    for entry in entries {
        let name = entry.map_err(io_err(cache_dir))?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(&format!("_{darch}.deb")) else {
            continue;
        };
        let package = stem.split('_').next().unwrap_or_default();
        if is_wanted(package, release, darch)
            && best
                .as_deref()
                .is_none_or(|b| natural_cmp(name, b) == Ordering::Greater)
        {
            best = Some(name.to_string());
        }
    }
    Ok(best.map(|b| cache_dir.join(b)))
}

/// The `.deb` of the highest cloud kernel image of `release` (`6.1` or `6.12`) for `arch`:
/// reused from `cache_dir` when there, else fetched into it (apt lists refreshed first) from
/// the Debian archive of this host's apt sources ([`crate::mirror::debian_mirror`]).
pub fn fetch(release: &str, arch: Arch, cache_dir: &Path) -> Result<PathBuf, FetchError> {
    fetch_from(release, arch, cache_dir, None)
}

/// [`fetch`] from the archive `mirror` (a URI such as `http://HOST/debian`), or, when `None`,
/// from the one this host's apt sources use.
pub fn fetch_from(
    release: &str,
    arch: Arch,
    cache_dir: &Path,
    mirror: Option<&str>,
) -> Result<PathBuf, FetchError> {
    let suite = suite(release)?;
    if let Some(deb) = cached(release, arch, cache_dir)? {
        return Ok(deb);
    }
    let mirror = match mirror {
        Some(m) => m.trim_end_matches('/').to_string(),
        None => crate::mirror::debian_mirror()?,
    };
    let apt = PrivateApt::new(cache_dir, &mirror)?;
    apt.update()?;
    let darch = debian_arch(arch);
    let pattern = format!("linux-image-{release}.*-cloud-{darch}-unsigned");
    let package = apt
        .search(&format!(
            "^linux-image-{}\\..*-cloud-{darch}-unsigned$",
            release.replace('.', "\\.")
        ))?
        .into_iter()
        .filter(|p| is_wanted(p, release, darch))
        .max_by(|a, b| natural_cmp(a, b))
        .ok_or_else(|| FetchError::NoPackage {
            pattern,
            arch: darch.to_string(),
            suite: suite.to_string(),
        })?;
    apt.download(&package, darch, cache_dir)
}

/// apt-get and apt-cache pointed at a private state under `<cache>/apt`.
struct PrivateApt {
    root: PathBuf,
}

impl PrivateApt {
    fn new(cache_dir: &Path, mirror: &str) -> Result<Self, FetchError> {
        if which_in_path("apt-get").is_none() || which_in_path("apt-cache").is_none() {
            return Err(FetchError::NotDebian);
        }
        if !Path::new(KEYRING).exists() {
            return Err(FetchError::NoKeyring);
        }
        let root = cache_dir.join("apt");
        for d in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "lists/partial",
            "cache/archives/partial",
        ] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let sources: String = ["bookworm", "stable"]
            .iter()
            .map(|s| format!("deb [signed-by={KEYRING} arch=amd64,arm64] {mirror} {s} main\n"))
            .collect();
        let list = root.join("etc/sources.list");
        std::fs::write(&list, sources).map_err(io_err(&list))?;
        let prefs = root.join("etc/preferences");
        std::fs::write(&prefs, "").map_err(io_err(&prefs))?;
        Ok(PrivateApt { root })
    }

    fn options(&self) -> Vec<String> {
        let r = |p: &str| self.root.join(p).display().to_string();
        [
            format!("Dir::Etc::SourceList={}", r("etc/sources.list")),
            format!("Dir::Etc::SourceParts={}", r("etc/sources.list.d")),
            format!("Dir::Etc::Preferences={}", r("etc/preferences")),
            format!("Dir::Etc::PreferencesParts={}", r("etc/preferences.d")),
            format!("Dir::State::Lists={}", r("lists")),
            format!("Dir::Cache={}", r("cache")),
            "APT::Architectures::=amd64".to_string(),
            "APT::Architectures::=arm64".to_string(),
            // The private lists and cache need no lock, and taking the system's would need root.
            "Debug::NoLocking=1".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    fn run(&self, tool: &str, args: &[&str], cwd: Option<&Path>) -> Result<String, FetchError> {
        let mut c = Command::new(tool);
        c.args(self.options()).args(args).stdin(Stdio::null());
        if let Some(d) = cwd {
            c.current_dir(d);
        }
        let command = format!("{tool} {}", args.join(" "));
        let out = c.output().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FetchError::NotDebian,
            _ => FetchError::Apt {
                command: command.clone(),
                status: "not started".into(),
                last_line: e.to_string(),
            },
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last_line = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("(no output)")
                .to_string();
            return Err(FetchError::Apt {
                command,
                status: out.status.to_string(),
                last_line,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn update(&self) -> Result<(), FetchError> {
        self.run("apt-get", &["-q", "update"], None).map(drop)
    }

    /// Package names matching the regex `pattern`.
    fn search(&self, pattern: &str) -> Result<Vec<String>, FetchError> {
        let out = self.run("apt-cache", &["search", "--names-only", pattern], None)?;
        Ok(out
            .lines()
            .filter_map(|l| l.split(" - ").next())
            // A foreign-arch package may be listed as NAME:ARCH.
            .filter_map(|n| n.trim().split(':').next())
            .map(str::to_string)
            .filter(|n| !n.is_empty())
            .collect())
    }

    /// Download `package:arch` into a scratch dir under `cache_dir`, then move it in, so an
    /// interrupted download never leaves a `.deb` that a later run would reuse.
    fn download(&self, package: &str, arch: &str, cache_dir: &Path) -> Result<PathBuf, FetchError> {
        let scratch = tempfile::Builder::new()
            .prefix(".download-")
            .tempdir_in(cache_dir)
            .map_err(io_err(cache_dir))?;
        self.run(
            "apt-get",
            &["-q", "download", &format!("{package}:{arch}")],
            Some(scratch.path()),
        )?;
        let not_there = || FetchError::NotDownloaded {
            package: package.to_string(),
            dir: cache_dir.to_owned(),
        };
        let name = std::fs::read_dir(scratch.path())
            .map_err(io_err(scratch.path()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
            .ok_or_else(not_there)?;
        // apt-get escapes the epoch's ':' as %3a; keep its name, it is what `cached` reads.
        let dest = cache_dir.join(&name);
        std::fs::rename(scratch.path().join(&name), &dest).map_err(io_err(&dest))?;
        Ok(dest)
    }
}

/// `name`'s path in `$PATH`, if it is there.
pub fn which_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_map_to_suites() {
        assert_eq!(suite("6.1").unwrap(), "bookworm");
        assert_eq!(suite("6.12").unwrap(), "stable");
        assert!(matches!(suite("5.10"), Err(FetchError::UnknownRelease(_))));
    }

    #[test]
    fn release_prefixes_do_not_overlap() {
        let p61 = "linux-image-6.1.0-50-cloud-amd64-unsigned";
        let p612 = "linux-image-6.12.107+deb13-cloud-amd64-unsigned";
        assert!(is_wanted(p61, "6.1", "amd64"));
        assert!(!is_wanted(p61, "6.12", "amd64"));
        assert!(is_wanted(p612, "6.12", "amd64"));
        assert!(!is_wanted(p612, "6.1", "amd64"));
        assert!(!is_wanted(p612, "6.12", "arm64"));
        assert!(!is_wanted(
            "linux-image-6.1.0-50-cloud-amd64-unsigned-dbg",
            "6.1",
            "amd64"
        ));
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        assert_eq!(natural_cmp("6.1.0-50", "6.1.0-9"), Ordering::Greater);
        assert_eq!(natural_cmp("6.12.107", "6.12.57"), Ordering::Greater);
        assert_eq!(natural_cmp("6.1.0-09", "6.1.0-9"), Ordering::Equal);
        assert_eq!(natural_cmp("a", "a1"), Ordering::Less);
    }

    #[test]
    fn cached_picks_the_highest_matching_deb() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "linux-image-6.1.0-9-cloud-amd64-unsigned_6.1.52-1_amd64.deb",
            "linux-image-6.1.0-50-cloud-amd64-unsigned_6.1.176-1_amd64.deb",
            "linux-image-6.1.0-50-cloud-arm64-unsigned_6.1.176-1_arm64.deb",
            "linux-image-6.12.107+deb13-cloud-amd64-unsigned_6.12.107-1_amd64.deb",
            "unrelated.deb",
        ] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let got = cached("6.1", Arch::X86_64, dir.path()).unwrap().unwrap();
        assert_eq!(
            got.file_name().unwrap(),
            "linux-image-6.1.0-50-cloud-amd64-unsigned_6.1.176-1_amd64.deb"
        );
        let got = cached("6.12", Arch::X86_64, dir.path()).unwrap().unwrap();
        assert!(got.to_str().unwrap().contains("6.12.107"));
        assert!(cached("6.12", Arch::Arm64, dir.path()).unwrap().is_none());
        // A reused .deb needs no apt at all.
        assert_eq!(
            fetch("6.1", Arch::Arm64, dir.path())
                .unwrap()
                .file_name()
                .unwrap(),
            "linux-image-6.1.0-50-cloud-arm64-unsigned_6.1.176-1_arm64.deb"
        );
    }

    #[test]
    fn a_missing_cache_dir_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            cached("6.1", Arch::X86_64, &dir.path().join("nope"))
                .unwrap()
                .is_none()
        );
    }
}
