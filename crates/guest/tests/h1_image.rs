//! Kernel image detection on Debian's real images (in /tmp/kx, when present) and on synthetic
//! headers: truncated and random files are not kernels; gzip'd and EFI-zboot arm64 Images are.

use std::io::Write;
use std::path::{Path, PathBuf};

use contract::Arch;
use guest::image::{ImageError, KernelImage, config_facts};

const KX: &str = "/tmp/kx";
const DEBS: &str = "/root/.cache/forkbench/kernels";

/// Unpack the provisioned Debian packages (tools/provision-guests.sh) under KX, each into a
/// directory of its own, when KX holds none yet.
fn unpack_provisioned() {
    let Ok(debs) = std::fs::read_dir(DEBS) else {
        return;
    };
    for deb in debs.filter_map(Result::ok).map(|e| e.path()) {
        let Some(stem) = deb.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        let dir = Path::new(KX).join(stem);
        if deb.extension().is_some_and(|e| e == "deb") && !dir.exists() {
            let ok = std::fs::create_dir_all(&dir).is_ok()
                && std::process::Command::new("dpkg-deb")
                    .arg("-x")
                    .arg(&deb)
                    .arg(&dir)
                    .status()
                    .is_ok_and(|s| s.success());
            if !ok {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
    }
}

/// The extracted images, or a skip with the reason (a failure under CI).
fn real_images() -> Vec<PathBuf> {
    if std::fs::read_dir(KX).map_or(true, |mut d| d.next().is_none()) {
        unpack_provisioned();
    }
    let found: Vec<PathBuf> = std::fs::read_dir(KX)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .flat_map(|pkg| {
            std::fs::read_dir(pkg.path().join("boot"))
                .into_iter()
                .flatten()
        })
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("vmlinuz-")
        })
        .collect();
    if found.is_empty() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no kernel images under {KX} and CI is set"
        );
        eprintln!("skipped: no kernel images under {KX} (dpkg-deb -x a linux-image .deb there)");
    }
    found
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn arm64_image(release: &str) -> Vec<u8> {
    let mut img = vec![0u8; 0x40];
    img[0..2].copy_from_slice(b"MZ");
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    img.extend(std::iter::repeat_n(0x5a, 3000));
    img.extend_from_slice(b"Linux version %s (%s)\0");
    img.extend_from_slice(format!("Linux version {release} (builder@host) #1 SMP\n\0").as_bytes());
    img.extend(std::iter::repeat_n(0xa5, 5000));
    img
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn debian_images_have_their_arch_release_and_config() {
    for path in real_images() {
        let img = KernelImage::open(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let release = name.strip_prefix("vmlinuz-").unwrap();
        let want_arch = if name.ends_with("arm64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        };
        assert_eq!(img.arch, want_arch, "{name}");
        assert_eq!(img.release.as_deref(), Some(release), "{name}");
        let config = img.config.expect("config next to the image");
        assert!(config.ends_with(format!("config-{release}")));
        let facts = config_facts(&config);
        assert!(
            facts
                .iter()
                .any(|(k, v)| k == "TRANSPARENT_HUGEPAGE" && v == "y"),
            "{name}: {facts:?}"
        );
        if name.contains("6.12") && want_arch == Arch::Arm64 {
            assert!(
                facts.iter().any(|(k, v)| k == "ARM64_CONTPTE" && v == "y"),
                "{facts:?}"
            );
        }
    }
}

#[test]
fn a_debian_package_unpacks_to_its_image() {
    let Some(deb) = std::fs::read_dir(DEBS)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.to_string_lossy().contains("6.12") && p.to_string_lossy().ends_with("amd64.deb")
        })
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "no 6.12 amd64 .deb in {DEBS} and CI is set"
        );
        eprintln!("skipped: no linux-image 6.12 amd64 .deb in {DEBS}");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let img = KernelImage::from_deb(&deb, work.path()).unwrap();
    assert_eq!(img.arch, Arch::X86_64);
    assert!(img.release.as_deref().unwrap().starts_with("6.12"));
    assert!(img.config.unwrap().starts_with(work.path()));
}

#[test]
fn a_file_that_is_not_a_package_is_a_dpkg_error() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = write(dir.path(), "bogus.deb", b"not an ar archive");
    let e = KernelImage::from_deb(&bogus, &dir.path().join("x")).unwrap_err();
    assert!(
        matches!(e, ImageError::DpkgDeb { .. } | ImageError::DpkgDebMissing),
        "{e}"
    );
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
    let e = KernelImage::from_deb(&dir.path().join("missing.deb"), dir.path()).unwrap_err();
    assert!(matches!(e, ImageError::Io { .. }), "{e}");
}

#[test]
fn truncated_empty_random_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut random = Vec::with_capacity(8192);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..8192 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.push(x as u8);
    }
    let mut truncated_bz = vec![0u8; 0x100];
    truncated_bz[0..2].copy_from_slice(b"MZ");
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("random", &random[..]),
        ("truncated", &truncated_bz[..]),
        ("text", &b"#!/bin/sh\necho hi\n"[..]),
        ("gzip-not-arm64", &gzip(b"hello world, not a kernel")[..]),
        ("gzip-broken", &[0x1f, 0x8b, 8, 0, 1, 2, 3][..]),
    ] {
        let p = write(dir.path(), name, bytes);
        let e = KernelImage::open(&p).unwrap_err();
        assert!(matches!(e, ImageError::NotAKernel { .. }), "{name}: {e}");
        assert!(e.to_string().contains(name), "{e}");
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }
    let e = KernelImage::open(&dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, ImageError::Io { .. }), "{e}");
    let e = KernelImage::open(dir.path()).unwrap_err();
    assert!(e.to_string().contains("not a kernel image"), "{e}");
}

#[test]
fn synthetic_bzimage_release_comes_from_the_setup_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = vec![0u8; 0x1000];
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x20e..0x210].copy_from_slice(&(0x300u16).to_le_bytes());
    img[0x500..0x500 + 22].copy_from_slice(b"6.9.0-rc1+ (me@box) #3");
    let p = write(dir.path(), "bzImage", &img);
    let k = KernelImage::open(&p).unwrap();
    assert_eq!(
        (k.arch, k.release.as_deref()),
        (Arch::X86_64, Some("6.9.0-rc1+"))
    );
    assert_eq!(k.config, None);
}

#[test]
fn plain_and_gzipped_arm64_images_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let plain = arm64_image("6.12.0-test");
    for (name, bytes) in [("Image", plain.clone()), ("Image.gz", gzip(&plain))] {
        let p = write(dir.path(), name, &bytes);
        let k = KernelImage::open(&p).unwrap();
        assert_eq!(
            (k.arch, k.release.as_deref()),
            (Arch::Arm64, Some("6.12.0-test")),
            "{name}"
        );
    }
}

#[test]
fn an_efi_zboot_image_with_gzip_payload_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let payload = gzip(&arm64_image("6.13.0-zboot"));
    let mut img = vec![0u8; 0x200];
    img[0..2].copy_from_slice(b"MZ");
    img[4..8].copy_from_slice(b"zimg");
    img[8..12].copy_from_slice(&(0x200u32).to_le_bytes());
    img[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img[0x18..0x1c].copy_from_slice(b"gzip");
    img.extend_from_slice(&payload);
    let p = write(dir.path(), "vmlinuz.efi", &img);
    let k = KernelImage::open(&p).unwrap();
    assert_eq!(
        (k.arch, k.release.as_deref()),
        (Arch::Arm64, Some("6.13.0-zboot"))
    );
    img[0x18..0x1c].copy_from_slice(b"zstd");
    let p = write(dir.path(), "vmlinuz.zstd", &img);
    let e = KernelImage::open(&p).unwrap_err();
    assert!(e.to_string().contains("compressed with zstd"), "{e}");
}

#[test]
fn a_kernel_tree_image_finds_the_tree_config() {
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("arch/arm64/boot");
    std::fs::create_dir_all(&boot).unwrap();
    std::fs::write(dir.path().join(".config"), "CONFIG_ARM64_CONTPTE=y\n").unwrap();
    let p = write(&boot, "Image", &arm64_image("6.14.0"));
    let k = KernelImage::open(&p).unwrap();
    assert_eq!(
        k.config.as_deref(),
        Some(dir.path().join(".config").as_path())
    );
}
