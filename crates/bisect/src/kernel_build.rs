//! Building one revision in kernel mode. `--build-cmd CMD` runs `sh -c CMD` in the worktree
//! and boots the path on the last non-empty line of its stdout; otherwise [`DefaultBuild`]:
//! `tinyconfig`, the shipped fragment (plus `--config-fragment`) merged with
//! `scripts/kconfig/merge_config.sh -m`, `olddefconfig`, then the arch's image target, out of
//! tree in the session's build directory. Every step runs in its own process group, killed on
//! Ctrl-C; a failed step skips the revision with its last lines.
//!
//! Prerequisites are named before they fail: [`missing_build_tools`] (make, the compilers,
//! flex, bison, bc, perl) before the first build, [`missing_config_headers`] (libelf for
//! objtool and BTF, openssl for signing keys and certificates) once `olddefconfig` has written
//! the config, each as the Debian packages to install. A bare `make tinyconfig` without flex
//! says only `Error 2`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use contract::Arch;

use crate::search::MeasureError;

/// The config fragment shipped with forkbench, merged onto `tinyconfig`.
pub const SHIPPED_FRAGMENT: &str = include_str!("../kernel/forkbench.config");
/// Build-output lines kept with a failure.
const TAIL_LINES: usize = 8;

/// The default build of one arch: commands run in the worktree, and the image they leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBuild {
    pub arch: Arch,
    /// The arch of the machine building (a different guest arch cross-compiles).
    pub host: Arch,
    pub jobs: usize,
    /// Compile through `ccache`.
    pub ccache: bool,
    /// Out-of-tree build directory (`make O=`), shared by every revision.
    pub out_dir: PathBuf,
    /// Fragments merged onto tinyconfig, in order.
    pub fragments: Vec<PathBuf>,
}

impl DefaultBuild {
    fn make_vars(&self) -> Vec<String> {
        let (arch, cross) = match self.arch {
            Arch::X86_64 => ("x86_64", "x86_64-linux-gnu-"),
            Arch::Arm64 => ("arm64", "aarch64-linux-gnu-"),
        };
        let mut v = vec![format!("ARCH={arch}")];
        let cross = if self.arch == self.host { "" } else { cross };
        if !cross.is_empty() {
            v.push(format!("CROSS_COMPILE={cross}"));
        }
        if self.ccache {
            v.push(format!("CC=ccache {cross}gcc"));
        }
        v.push(format!("O={}", self.out_dir.display()));
        v
    }

    /// The image target of the arch.
    pub fn target(&self) -> &'static str {
        match self.arch {
            Arch::X86_64 => "bzImage",
            Arch::Arm64 => "Image",
        }
    }

    /// Every command, as argv, run in order in the worktree.
    pub fn commands(&self) -> Vec<Vec<String>> {
        let make = |extra: &[String]| {
            let mut c = vec!["make".to_string()];
            c.extend(self.make_vars());
            c.extend(extra.iter().cloned());
            c
        };
        let mut merge = vec![
            "sh".to_string(),
            "scripts/kconfig/merge_config.sh".into(),
            "-m".into(),
            "-O".into(),
            self.out_dir.display().to_string(),
            self.out_dir.join(".config").display().to_string(),
        ];
        merge.extend(self.fragments.iter().map(|f| f.display().to_string()));
        vec![
            make(&["tinyconfig".into()]),
            merge,
            make(&["olddefconfig".into()]),
            make(&[format!("-j{}", self.jobs), self.target().into()]),
        ]
    }

    /// Where the image lands.
    pub fn image(&self) -> PathBuf {
        let arch_dir = match self.arch {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        };
        self.out_dir
            .join("arch")
            .join(arch_dir)
            .join("boot")
            .join(self.target())
    }
}

/// How each revision is built.
#[derive(Debug, Clone)]
pub enum Build {
    /// `sh -c CMD`; the last non-empty stdout line is the image.
    Command(String),
    Default(DefaultBuild),
}

/// The last non-empty line of `stdout`: the image path of a `--build-cmd`.
pub fn image_line(stdout: &str) -> Option<&str> {
    stdout.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The last `n` non-empty lines of `text`, joined with " | ".
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// A finished child process.
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Run `cmd` in its own process group with its output captured, killing the group if
/// `cancelled` is set meanwhile (`None` then).
fn run_cancellable(
    mut cmd: Command,
    cancelled: &AtomicBool,
) -> Result<Option<Finished>, std::io::Error> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn()?;
    let reader = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if cancelled.load(Ordering::SeqCst) {
            let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break None;
        }
        // Polled, so that a Ctrl-C reaches a build in its own process group.
        std::thread::sleep(Duration::from_millis(50));
    };
    let (stdout, stderr) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    Ok(status.map(|status| Finished {
        status,
        stdout,
        stderr,
    }))
}

/// The CPUs this process may use (the default `make -j`).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the default build of `arch` on a `host` machine runs, each with the Debian package it
/// comes in. The host `gcc` builds kconfig and the other host tools also when cross-compiling.
pub fn build_tools(arch: Arch, host: Arch) -> Vec<(&'static str, &'static str)> {
    let mut tools = vec![("make", "make"), ("gcc", "gcc")];
    if arch != host {
        tools.push(match arch {
            Arch::Arm64 => ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
            Arch::X86_64 => ("x86_64-linux-gnu-gcc", "gcc-x86-64-linux-gnu"),
        });
    }
    tools.extend([
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("perl", "perl"),
    ]);
    tools
}

/// The packages of [`build_tools`] whose command `in_path` does not find.
pub fn missing_build_tools(
    arch: Arch,
    host: Arch,
    in_path: impl Fn(&str) -> bool,
) -> Vec<&'static str> {
    build_tools(arch, host)
        .into_iter()
        .filter(|(tool, _)| !in_path(tool))
        .map(|(_, package)| package)
        .collect()
}

/// Host headers a kernel config needs: (an option that needs it, header, Debian package).
const CONFIG_HEADERS: [(&str, &str, &str); 5] = [
    ("CONFIG_OBJTOOL", "gelf.h", "libelf-dev"),
    ("CONFIG_DEBUG_INFO_BTF", "gelf.h", "libelf-dev"),
    ("CONFIG_MODULE_SIG", "openssl/opensslv.h", "libssl-dev"),
    (
        "CONFIG_SYSTEM_TRUSTED_KEYRING",
        "openssl/opensslv.h",
        "libssl-dev",
    ),
    (
        "CONFIG_MODULE_SIG_FORMAT",
        "openssl/opensslv.h",
        "libssl-dev",
    ),
];

/// The packages whose headers `config` (a `.config`'s text) needs and `has_header` does not
/// find, each once.
pub fn missing_config_headers(
    config: &str,
    has_header: impl Fn(&str) -> bool,
) -> Vec<&'static str> {
    let mut missing: Vec<&'static str> = Vec::new();
    for (option, header, package) in CONFIG_HEADERS {
        let enabled = config.lines().any(|l| l.trim() == format!("{option}=y"));
        if enabled && !missing.contains(&package) && !has_header(header) {
            missing.push(package);
        }
    }
    missing
}

/// Whether the host compiler (`gcc`, which builds objtool and the signing tools) finds
/// `<header>`.
pub fn host_has_header(header: &str) -> bool {
    let child = Command::new("gcc")
        .args(["-E", "-x", "c", "-", "-o", "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "#include <{header}>");
    }
    child.wait().is_ok_and(|s| s.success())
}

/// Build one revision in `dir` (its worktree): the path of the image it made, a skip with the
/// failing step's last lines, or an abort (interrupted; the config needs headers this host
/// lacks, which every revision would fail on alike). `--build-cmd` sees
/// `FORKBENCH_BISECT_REV` and `FORKBENCH_ARCH`.
pub fn build_in(
    dir: &Path,
    build: &Build,
    rev: &str,
    arch: Arch,
    cancelled: &AtomicBool,
) -> Result<PathBuf, MeasureError> {
    match build {
        Build::Command(cmd) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(cmd).current_dir(dir);
            c.env("FORKBENCH_BISECT_REV", rev)
                .env("FORKBENCH_ARCH", arch.to_string());
            let out = run_build(c, "--build-cmd", cancelled)?;
            match image_line(&out) {
                Some(p) => Ok(dir.join(p)),
                None => Err(MeasureError::Skip(
                    "build failed: the build command printed no image path".into(),
                )),
            }
        }
        Build::Default(d) => {
            let commands = d.commands();
            let (image_step, config_steps) = commands.split_last().expect("four steps");
            for argv in config_steps {
                run_argv(dir, argv, cancelled)?;
            }
            let config = std::fs::read_to_string(d.out_dir.join(".config")).unwrap_or_default();
            let missing = missing_config_headers(&config, host_has_header);
            if !missing.is_empty() {
                return Err(MeasureError::Abort(format!(
                    "the kernel config needs host headers this machine lacks: apt-get install {} (or bash tools/provision-guests.sh)",
                    missing.join(" ")
                )));
            }
            run_argv(dir, image_step, cancelled)?;
            Ok(d.image())
        }
    }
}

/// Run one default-build step, `argv`, in `dir`.
fn run_argv(dir: &Path, argv: &[String], cancelled: &AtomicBool) -> Result<String, MeasureError> {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).current_dir(dir);
    run_build(c, &format!("`{}`", argv.join(" ")), cancelled)
}

/// Run one build command; its stdout on success, else a skip with its last lines.
fn run_build(c: Command, what: &str, cancelled: &AtomicBool) -> Result<String, MeasureError> {
    match run_cancellable(c, cancelled) {
        Err(e) => Err(MeasureError::Abort(format!("cannot run {what}: {e}"))),
        Ok(None) => Err(MeasureError::Abort("interrupted".into())),
        Ok(Some(f)) if f.status.success() => Ok(f.stdout),
        Ok(Some(f)) => {
            let last = if f.stderr.trim().is_empty() {
                tail(&f.stdout, TAIL_LINES)
            } else {
                tail(&f.stderr, TAIL_LINES)
            };
            Err(MeasureError::Skip(format!(
                "build failed: {what} ({}): {last}",
                f.status
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_build_tools_are_named_by_their_debian_packages() {
        let have = |present: &'static [&'static str]| move |t: &str| present.contains(&t);
        assert_eq!(
            missing_build_tools(
                Arch::X86_64,
                Arch::X86_64,
                have(&["make", "gcc", "perl", "bc"])
            ),
            ["flex", "bison"]
        );
        assert_eq!(
            missing_build_tools(
                Arch::Arm64,
                Arch::X86_64,
                have(&["make", "gcc", "flex", "bison", "bc", "perl"])
            ),
            ["gcc-aarch64-linux-gnu"]
        );
        assert!(missing_build_tools(Arch::X86_64, Arch::X86_64, |_| true).is_empty());
        assert!(
            !build_tools(Arch::Arm64, Arch::Arm64)
                .iter()
                .any(|(t, _)| t.contains("linux-gnu"))
        );
    }

    #[test]
    fn the_config_decides_which_headers_the_build_needs() {
        let config = "CONFIG_64BIT=y\nCONFIG_OBJTOOL=y\nCONFIG_DEBUG_INFO_BTF=y\n# CONFIG_MODULE_SIG is not set\n";
        assert_eq!(missing_config_headers(config, |_| false), ["libelf-dev"]);
        assert!(missing_config_headers(config, |h| h == "gelf.h").is_empty());
        let signed = "CONFIG_MODULE_SIG=y\nCONFIG_SYSTEM_TRUSTED_KEYRING=y\n";
        assert_eq!(missing_config_headers(signed, |_| false), ["libssl-dev"]);
        assert!(missing_config_headers("CONFIG_OBJTOOL=m\n", |_| false).is_empty());
        // The real compiler: a header every C library has, and one nobody has.
        if guest::fetch::which_in_path("gcc").is_some() {
            assert!(host_has_header("stdio.h"));
            assert!(!host_has_header("no/such/forkbench-header.h"));
        }
    }

    fn build(arch: Arch, host: Arch, ccache: bool) -> DefaultBuild {
        DefaultBuild {
            arch,
            host,
            jobs: 2,
            ccache,
            out_dir: PathBuf::from("/s/build"),
            fragments: vec![PathBuf::from("/s/forkbench.config")],
        }
    }

    #[test]
    fn the_x86_64_default_build_is_tinyconfig_plus_the_fragment_then_bzimage() {
        let b = build(Arch::X86_64, Arch::X86_64, false);
        let cmds: Vec<String> = b.commands().iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            cmds,
            [
                "make ARCH=x86_64 O=/s/build tinyconfig",
                "sh scripts/kconfig/merge_config.sh -m -O /s/build /s/build/.config /s/forkbench.config",
                "make ARCH=x86_64 O=/s/build olddefconfig",
                "make ARCH=x86_64 O=/s/build -j2 bzImage",
            ]
        );
        assert_eq!(b.image(), PathBuf::from("/s/build/arch/x86/boot/bzImage"));
    }

    #[test]
    fn arm64_cross_compiles_and_ccache_wraps_the_cross_compiler() {
        let b = build(Arch::Arm64, Arch::X86_64, true);
        let cmds = b.commands();
        assert_eq!(
            cmds[3],
            [
                "make",
                "ARCH=arm64",
                "CROSS_COMPILE=aarch64-linux-gnu-",
                "CC=ccache aarch64-linux-gnu-gcc",
                "O=/s/build",
                "-j2",
                "Image"
            ]
        );
        // Every make sees the same compiler, so the config's compiler checks match the build.
        assert!(
            cmds.iter()
                .filter(|c| c[0] == "make")
                .all(|c| c.contains(&"CC=ccache aarch64-linux-gnu-gcc".to_string()))
        );
        assert_eq!(b.image(), PathBuf::from("/s/build/arch/arm64/boot/Image"));
        // Native arm64 with ccache: no cross prefix.
        let native = build(Arch::Arm64, Arch::Arm64, true);
        assert!(native.commands()[0].contains(&"CC=ccache gcc".to_string()));
        assert!(
            !native.commands()[0]
                .iter()
                .any(|a| a.starts_with("CROSS_COMPILE"))
        );
    }

    #[test]
    fn the_shipped_fragment_has_what_the_guest_needs() {
        for opt in [
            "CONFIG_64BIT=y",
            "CONFIG_BLK_DEV_INITRD=y",
            "CONFIG_DEVTMPFS=y",
            "CONFIG_PROC_FS=y",
            "CONFIG_SYSFS=y",
            "CONFIG_SERIAL_8250_CONSOLE=y",
            "CONFIG_SERIAL_AMBA_PL011_CONSOLE=y",
            "CONFIG_TRANSPARENT_HUGEPAGE=y",
            "CONFIG_PROC_PAGE_MONITOR=y",
            "CONFIG_ADVISE_SYSCALLS=y",
            "CONFIG_ARM64_CONTPTE=y",
        ] {
            assert!(SHIPPED_FRAGMENT.lines().any(|l| l == opt), "{opt} missing");
        }
    }

    #[test]
    fn the_image_is_the_last_non_empty_stdout_line() {
        assert_eq!(
            image_line("make: ok\n  arch/x86/boot/bzImage  \n\n"),
            Some("arch/x86/boot/bzImage")
        );
        assert_eq!(image_line("\n \n"), None);
        assert_eq!(tail("a\nb\n\nc\nd\n", 2), "c | d");
    }

    #[test]
    fn a_cancelled_build_is_killed_with_its_process_group() {
        let cancelled = AtomicBool::new(true);
        let mut c = Command::new("sh");
        // A grandchild that would outlive a plain kill of `sh`.
        c.arg("-c").arg("sleep 600 & wait");
        let r = run_cancellable(c, &cancelled).unwrap();
        assert!(r.is_none());
        let done = run_cancellable(
            {
                let mut c = Command::new("sh");
                c.arg("-c").arg("echo out; echo err >&2; exit 3");
                c
            },
            &AtomicBool::new(false),
        )
        .unwrap()
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!((done.stdout.trim(), done.stderr.trim()), ("out", "err"));
    }
}
