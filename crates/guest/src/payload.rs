//! The guest's `/init`: a static forkbench built for the guest's architecture with
//! `cargo build --release -p forkbench --target <triple> --target-dir target/guest` and
//! `+crt-static` (glibc, linked statically: the initramfs has no loader and no libraries).
//! Cargo's own freshness check is the cache: a second call with nothing changed is a no-op.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use contract::Arch;

/// The cross linker for aarch64 guests (Debian package `gcc-aarch64-linux-gnu`).
pub const AARCH64_LINKER: &str = "aarch64-linux-gnu-gcc";

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the Rust target {triple} is not installed: rustup target add {triple}")]
    TargetMissing { triple: &'static str },
    #[error("the linker {linker} is not in PATH: apt-get install gcc-aarch64-linux-gnu")]
    LinkerMissing { linker: &'static str },
    #[error("cannot run {cargo}: {source}")]
    CargoSpawn {
        cargo: String,
        source: std::io::Error,
    },
    #[error("building the {triple} guest payload failed ({status}): {last_lines}")]
    Build {
        triple: &'static str,
        status: String,
        last_lines: String,
    },
    #[error("cargo succeeded but {0} is missing")]
    NotBuilt(PathBuf),
}

/// The Rust target triple a guest of `arch` runs.
pub fn target_triple(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-unknown-linux-gnu",
        Arch::Arm64 => "aarch64-unknown-linux-gnu",
    }
}

/// Where [`build_payload`] leaves the binary.
pub fn payload_path(workspace_root: &Path, arch: Arch) -> PathBuf {
    workspace_root
        .join("target/guest")
        .join(target_triple(arch))
        .join("release/forkbench")
}

/// `$CARGO` when run under cargo (the same toolchain), else `cargo` from PATH.
fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Whether rustc has the standard library for `triple` (what `rustup target add` installs).
fn target_installed(triple: &str) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", triple])
        .stderr(Stdio::null())
        .output()
    else {
        // No rustc to ask: let cargo report what is missing.
        return true;
    };
    out.status.success() && Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_dir()
}

/// Build (or find up to date) the static forkbench for `arch` and return its path.
pub fn build_payload(workspace_root: &Path, arch: Arch) -> Result<PathBuf, PayloadError> {
    let triple = target_triple(arch);
    if !target_installed(triple) {
        return Err(PayloadError::TargetMissing { triple });
    }
    let env_triple = triple.to_uppercase().replace('-', "_");
    let mut c = Command::new(cargo());
    c.current_dir(workspace_root)
        .args(["build", "--release", "--quiet", "-p", "forkbench"])
        .args(["--target", triple])
        .arg("--target-dir")
        .arg(workspace_root.join("target/guest"))
        // Per-target flags reach only the target's crates, not build scripts or proc macros
        // (which must stay dynamic host binaries).
        .env(
            format!("CARGO_TARGET_{env_triple}_RUSTFLAGS"),
            "-C target-feature=+crt-static",
        )
        // The release profile keeps line tables for the host's profiles; in the initramfs they
        // are 15 of 21 MB, unpacked at every boot.
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if arch == Arch::Arm64 && Arch::host() != Some(Arch::Arm64) {
        if crate::fetch::which_in_path(AARCH64_LINKER).is_none() {
            return Err(PayloadError::LinkerMissing {
                linker: AARCH64_LINKER,
            });
        }
        c.env(format!("CARGO_TARGET_{env_triple}_LINKER"), AARCH64_LINKER);
    }
    let out = c.output().map_err(|source| PayloadError::CargoSpawn {
        cargo: cargo(),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let last_lines = lines[lines.len().saturating_sub(3)..].join(" | ");
        return Err(PayloadError::Build {
            triple,
            status: out.status.to_string(),
            last_lines,
        });
    }
    let bin = payload_path(workspace_root, arch);
    if !bin.is_file() {
        return Err(PayloadError::NotBuilt(bin));
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_and_paths() {
        assert_eq!(target_triple(Arch::Arm64), "aarch64-unknown-linux-gnu");
        assert_eq!(
            payload_path(Path::new("/w"), Arch::X86_64),
            Path::new("/w/target/guest/x86_64-unknown-linux-gnu/release/forkbench")
        );
    }

    #[test]
    fn an_unknown_target_is_reported_as_not_installed() {
        assert!(!target_installed("nonexistent-unknown-none"));
    }
}
