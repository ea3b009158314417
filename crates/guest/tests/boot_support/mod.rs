//! What the boot tests share: finding (or fetching) a Debian kernel, building the payload,
//! and skipping with provisioning advice when the machine lacks QEMU or apt (failing instead
//! under `CI=true`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use contract::{Arch, GuestBoot, RealContext, RunRecord, RunnerLine};
use guest::image::KernelImage;
use guest::qemu::GuestEvent;
use guest::{fetch, payload, qemu};

/// One guest at a time: the machine has few cores and TCG is CPU-bound.
pub static ONE_GUEST: Mutex<()> = Mutex::new(());
static EXTRACT: Mutex<()> = Mutex::new(());

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (print why and how to provision) or, under CI, fail.
pub fn skip(why: &str) {
    let how = "provision with: apt-get install qemu-system-x86 qemu-system-arm \
               gcc-aarch64-linux-gnu dpkg && rustup target add aarch64-unknown-linux-gnu \
               (kernels are fetched into the kernel cache on first use)";
    if ci() {
        panic!("{why}; {how}");
    }
    eprintln!("skipping: {why}; {how}");
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// A kernel and a payload to boot it with.
pub struct Kit {
    pub image: KernelImage,
    pub payload: PathBuf,
}

/// The Debian `release` kernel for `arch` and the payload, or `None` after [`skip`].
pub fn kit(release: &str, arch: Arch) -> Option<Kit> {
    let (binary, package) = qemu::qemu_binary(arch);
    if fetch::which_in_path(binary).is_none() {
        skip(&format!(
            "{binary} is not installed (apt-get install {package})"
        ));
        return None;
    }
    let cache = match fetch::default_cache_dir() {
        Ok(c) => c,
        Err(e) => {
            skip(&e.to_string());
            return None;
        }
    };
    let deb = match fetch::fetch(release, arch, &cache) {
        Ok(d) => d,
        Err(e) => {
            skip(&format!("no Debian {release} kernel for {arch}: {e}"));
            return None;
        }
    };
    let image = extracted(&deb).unwrap_or_else(|e| panic!("{}: {e}", deb.display()));
    // A prebuilt payload (e.g. from another checkout) spares the release build.
    let var = format!(
        "FORKBENCH_GUEST_PAYLOAD_{}",
        payload::target_triple(arch)
            .split('-')
            .next()
            .unwrap_or_default()
            .to_uppercase()
    );
    let payload = match std::env::var_os(&var) {
        Some(p) => PathBuf::from(p),
        None => built_payload(arch),
    };
    Some(Kit { image, payload })
}

/// The payload, built once per test binary (sources edited meanwhile do not rebuild it).
fn built_payload(arch: Arch) -> PathBuf {
    static BUILT: Mutex<Vec<(Arch, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(a, _)| *a == arch) {
        return p.clone();
    }
    let p = payload::build_payload(&workspace_root(), arch)
        .unwrap_or_else(|e| panic!("guest payload: {e}"));
    built.push((arch, p.clone()));
    p
}

/// The package's image, unpacked once under target/guest-kernels.
fn extracted(deb: &Path) -> Result<KernelImage, guest::image::ImageError> {
    let _one = EXTRACT.lock().unwrap_or_else(|e| e.into_inner());
    let stem = deb
        .file_stem()
        .expect("a .deb name")
        .to_string_lossy()
        .into_owned();
    let dir = workspace_root().join("target/guest-kernels").join(stem);
    let done = dir.join(".complete");
    if done.exists() {
        let boot = dir.join("boot");
        let find = |prefix: &str| {
            std::fs::read_dir(&boot)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
        };
        if let Some(vmlinuz) = find("vmlinuz-") {
            let mut image = KernelImage::open(&vmlinuz)?;
            image.config = find("config-");
            return Ok(image);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("extraction dir");
    let image = KernelImage::from_deb(deb, &dir)?;
    std::fs::write(&done, b"").expect("extraction marker");
    Ok(image)
}

/// The lines of one step, sorted by kind.
#[derive(Default)]
pub struct Collected {
    pub headers: usize,
    pub contexts: Vec<RealContext>,
    pub runs: Vec<RunRecord>,
    pub output: Vec<u8>,
}

impl Collected {
    pub fn on_event(&mut self, e: GuestEvent) {
        match e {
            GuestEvent::Line(RunnerLine::Header(_)) => self.headers += 1,
            GuestEvent::Line(RunnerLine::Context(c)) => self.contexts.push(*c),
            GuestEvent::Line(RunnerLine::Run(r)) => self.runs.push(*r),
            GuestEvent::Line(RunnerLine::Counts(_)) => panic!("a guest printed op counts"),
            GuestEvent::Output(o) => self.output.extend(o),
        }
    }

    pub fn guest(&self) -> &GuestBoot {
        self.contexts[0]
            .guest
            .as_ref()
            .expect("contexts carry the guest boot")
    }
}
