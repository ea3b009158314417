//! The host-side launcher: builds the initramfs (`/init` = the static forkbench payload, the
//! plan, `/dev/console`, extra files), boots a kernel image in `qemu-system-x86_64` or
//! `qemu-system-aarch64` with the serial console on QEMU's stdin/stdout, and talks to the
//! guest's init through [`crate::frame`]: Hello, then `go <i>` per step (interactive plans) or
//! every step in order, then `poweroff`.
//!
//! QEMU runs in its own process group with `PR_SET_PDEATHSIG`, tracked by
//! [`hostenv::cleanup`]: SIGINT/SIGTERM/SIGHUP of this process kill it before the process
//! ends, and a dead driver leaves no guest behind. Every wait has a deadline (`boot_timeout`
//! for the Hello frame, `step_timeout` per step) and every failure is one line naming what the
//! console said last.
//!
//! Accelerator: `tcg` always works; `kvm` needs the guest arch to be the host's and `/dev/kvm`
//! to open, and is tried for real, since a nested KVM can open and still fail on the first
//! instruction it cannot emulate; `auto` tries KVM when it could work and falls back to TCG,
//! recording why. Every run record coming back gets the accelerator actually used, and every
//! context the [`contract::GuestBoot`] of its guest.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contract::{Accel, Arch, Clock, GuestBoot, RunnerLine, Size, Variant};

use crate::frame::{Frame, FrameDecoder, FrameError, FrameKind};
use crate::image::{ImageError, KernelImage};
use crate::plan::{GuestHello, GuestPlan, GuestStep, HostCommand, StepDone};
use crate::transcript::{BadMessage, Message};

/// Guest memory beyond the largest step's: the kernel, its slab and page cache, and the
/// guest's own process (see [`guest_mem_for`]).
pub const KERNEL_HEADROOM: u64 = 256 << 20;
/// The least guest RAM [`guest_mem_for`] gives (THP needs 512 MiB of RAM after the kernel's
/// reservations).
pub const MIN_GUEST_MEM: u64 = 640 << 20;
/// Console lines quoted in an error.
const LAST_LINES: usize = 8;
/// How long a guest gets to power off after `poweroff`.
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(60);
/// `--accel auto`'s KVM attempt waits at most this long for Hello: a KVM guest that works is
/// up in seconds, and one that cannot run (a nested host, a kernel hanging silently under
/// KVM) would otherwise hold the bench for the whole boot timeout before TCG is tried.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why `auto`'s KVM attempt failed, per guest arch, for the rest of this process: the next
/// guests of that arch go straight to TCG with the same reason instead of failing again.
static KVM_FAILED: Mutex<Vec<(Arch, String)>> = Mutex::new(Vec::new());

fn kvm_failed_before(arch: Arch) -> Option<String> {
    let failed = KVM_FAILED.lock().unwrap_or_else(|e| e.into_inner());
    failed
        .iter()
        .find(|(a, _)| *a == arch)
        .map(|(_, why)| why.clone())
}

fn remember_kvm_failure(arch: Arch, why: &str) {
    let mut failed = KVM_FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if !failed.iter().any(|(a, _)| *a == arch) {
        failed.push((arch, why.to_string()));
    }
}

/// Which accelerator to boot under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelChoice {
    /// KVM when the guest arch is the host's and KVM works, else TCG (the reason recorded).
    #[default]
    Auto,
    /// KVM or an error.
    Kvm,
    /// TCG (emulated).
    Tcg,
}

impl fmt::Display for AccelChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            AccelChoice::Auto => "auto",
            AccelChoice::Kvm => "kvm",
            AccelChoice::Tcg => "tcg",
        })
    }
}

impl FromStr for AccelChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AccelChoice::Auto),
            "kvm" => Ok(AccelChoice::Kvm),
            "tcg" => Ok(AccelChoice::Tcg),
            other => Err(format!(
                "unknown accelerator '{other}' (expected auto, kvm or tcg)"
            )),
        }
    }
}

/// Which clock the guest's measurements read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockChoice {
    /// Exact under emulation: `icount` whenever the guest runs under TCG, `wall` under KVM.
    #[default]
    Auto,
    /// QEMU `-icount shift=0,sleep=off` (TCG only): one guest instruction is one guest ns.
    Icount,
    /// Real time, also under TCG ("timed TCG": noisy, kept for whoever asks for it).
    Wall,
}

impl ClockChoice {
    /// The clock a guest under `accel` gets, or why this choice cannot have it.
    pub fn resolve(self, accel: Accel) -> Result<Clock, GuestError> {
        match (self, accel) {
            (ClockChoice::Auto, Accel::Tcg) | (ClockChoice::Icount, Accel::Tcg) => {
                Ok(Clock::Icount)
            }
            (ClockChoice::Icount, _) => Err(GuestError::IcountNeedsTcg),
            (ClockChoice::Auto | ClockChoice::Wall, _) => Ok(Clock::Wall),
        }
    }
}

impl fmt::Display for ClockChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            ClockChoice::Auto => "auto",
            ClockChoice::Icount => "icount",
            ClockChoice::Wall => "wall",
        })
    }
}

impl FromStr for ClockChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(ClockChoice::Auto),
            "icount" => Ok(ClockChoice::Icount),
            "wall" => Ok(ClockChoice::Wall),
            other => Err(format!(
                "unknown guest clock '{other}' (expected auto, icount or wall)"
            )),
        }
    }
}

/// Everything one guest boot needs.
#[derive(Debug, Clone)]
pub struct GuestConfig {
    pub image: KernelImage,
    pub accel: AccelChoice,
    /// The guest clock; under icount the guest gets one vCPU whatever `vcpus` says.
    pub clock: ClockChoice,
    /// Guest RAM (`-m`); [`GuestConfig::new`] sizes it with [`guest_mem_for`].
    pub mem: Size,
    pub vcpus: u32,
    /// From launching QEMU to the Hello frame.
    pub boot_timeout: Duration,
    /// From `go <i>` (or the previous step's end) to the step's StepDone.
    pub step_timeout: Duration,
    /// The static forkbench that becomes `/init` ([`crate::payload::build_payload`]).
    pub payload: PathBuf,
    /// More files for the initramfs: (path in the guest, host file). Parent directories are
    /// created.
    pub extra_files: Vec<(String, PathBuf)>,
    pub plan: GuestPlan,
    /// Appended to the kernel command line.
    pub cmdline_extra: Vec<String>,
}

impl GuestConfig {
    /// Defaults: auto accel, 2 vCPUs, memory from the plan, a boot timeout for emulated boots
    /// of the image's arch (x86_64 ~4 s, arm64 1-2 min here), 10 min per step.
    pub fn new(image: KernelImage, payload: PathBuf, plan: GuestPlan) -> Self {
        let payload_bytes = std::fs::metadata(&payload).map_or(64 << 20, |m| m.len());
        let boot_timeout = match image.arch {
            Arch::X86_64 => Duration::from_secs(60),
            Arch::Arm64 => Duration::from_secs(300),
        };
        GuestConfig {
            mem: guest_mem_for(&plan, payload_bytes),
            image,
            accel: AccelChoice::Auto,
            clock: ClockChoice::Auto,
            vcpus: 2,
            boot_timeout,
            step_timeout: Duration::from_secs(600),
            payload,
            extra_files: Vec::new(),
            plan,
            cmdline_extra: Vec::new(),
        }
    }
}

/// Guest RAM for `plan` with an initramfs of `initramfs_bytes`:
/// `max(M + M/16 + 2·I + 256 MiB, 640 MiB)`, rounded up to 2 MiB, where `M` is the largest
/// Real step's `mem` and `I` the initramfs. `M/16` covers the region's `struct page`s (1/64)
/// and the page tables of parent and child (1/256 each) with room for THP fragmentation; `2·I`
/// the archive and its unpacked copy in the rootfs (both stay in RAM); 256 MiB the kernel
/// itself. The floor: with under 512 MiB of RAM the kernel switches THP off at boot, whatever
/// the command line asks, and every THP layout would be unsupported.
pub fn guest_mem_for(plan: &GuestPlan, initramfs_bytes: u64) -> Size {
    let largest = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            GuestStep::Real(o) => Some(o.mem.bytes()),
            GuestStep::Exec { .. } => None,
        })
        .max()
        .unwrap_or(0);
    guest_mem(largest, initramfs_bytes)
}

/// [`guest_mem_for`]'s formula, for a largest populated region of `largest` bytes.
pub fn guest_mem(largest: u64, initramfs_bytes: u64) -> Size {
    let total = (largest + largest / 16 + 2 * initramfs_bytes + KERNEL_HEADROOM).max(MIN_GUEST_MEM);
    Size(total.div_ceil(2 << 20) * (2 << 20))
}

/// The QEMU system emulator for `arch` and the Debian package that has it.
pub fn qemu_binary(arch: Arch) -> (&'static str, &'static str) {
    match arch {
        Arch::X86_64 => ("qemu-system-x86_64", "qemu-system-x86"),
        Arch::Arm64 => ("qemu-system-aarch64", "qemu-system-arm"),
    }
}

/// `uname -m` of a guest of `arch`.
fn uname_machine(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64",
        Arch::Arm64 => "aarch64",
    }
}

/// Console lines for a message: `a | b | c`.
struct Lines<'a>(&'a [String]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(no console output)");
        }
        f.write_str(&self.0.join(" | "))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{binary} not found: apt-get install {package}")]
    QemuMissing {
        binary: &'static str,
        package: &'static str,
    },
    #[error("{path}: not a kernel image ({reason})")]
    NotAKernel { path: PathBuf, reason: String },
    #[error("kernel image: {0}")]
    Image(ImageError),
    #[error("the image is a {image} kernel but the guest was asked to be {asked}")]
    ArchMismatch { image: Arch, asked: Arch },
    #[error("--clock icount needs an emulated guest (--accel tcg): KVM runs at hardware speed")]
    IcountNeedsTcg,
    #[error("--accel kvm: {reason}")]
    KvmUnavailable { reason: String },
    #[error("initramfs {path}: {source}")]
    Initramfs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error(
        "the kernel did not reach forkbench's init within {secs} s; last console lines: {}",
        Lines(last_lines)
    )]
    BootTimeout { secs: u64, last_lines: Vec<String> },
    #[error(
        "guest step {step} did not finish within {secs} s; last console lines: {}",
        Lines(last_lines)
    )]
    StepTimeout {
        step: usize,
        secs: u64,
        last_lines: Vec<String>,
    },
    #[error("the guest died ({status}); last console lines: {}", Lines(last_lines))]
    GuestDied {
        status: String,
        last_lines: Vec<String>,
    },
    #[error("the guest kernel panicked: {line}")]
    GuestPanicked { line: String },
    /// An oops, a double fault, or the boot decompressor's halt: the guest is killed at once
    /// (whatever it measured after such a line is not a sample of a working kernel).
    #[error(
        "the guest kernel crashed: {line}; last console lines: {}",
        Lines(last_lines)
    )]
    GuestCrashed {
        line: String,
        last_lines: Vec<String>,
    },
    #[error("the guest ran out of memory (raise the guest memory): {line}")]
    OutOfMemory { line: String },
    #[error("interrupted: QEMU killed")]
    Interrupted,
    #[error("guest console: {0}")]
    Frame(#[from] FrameError),
    #[error("the guest's init reported an error: {message}")]
    GuestReported { message: String },
    #[error("the guest sent a {kind} frame that does not parse: {error}")]
    BadMessage { kind: FrameKind, error: String },
    #[error("guest step: {0}")]
    Step(String),
    #[error("writing to the guest console: {0}")]
    Console(std::io::Error),
}

impl GuestError {
    /// The guest's kernel crashed (a panic, an oops, a double fault, a halt): a fact about
    /// that boot, which a caller may retry, never a measurement.
    pub fn is_kernel_crash(&self) -> bool {
        matches!(
            self,
            GuestError::GuestPanicked { .. } | GuestError::GuestCrashed { .. }
        )
    }
}

impl From<ImageError> for GuestError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::NotAKernel { path, reason } => GuestError::NotAKernel { path, reason },
            other => GuestError::Image(other),
        }
    }
}

/// What a guest sends back during a step.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestEvent {
    /// A `forkbench real` line: header, context (with `guest` set) or run (with `accel` set).
    Line(RunnerLine),
    /// Output of an Exec step (stdout and stderr).
    Output(Vec<u8>),
}

/// What the reader threads tell the waiting thread.
enum Msg {
    Frame(Result<Frame, FrameError>),
    OutOfMemory(String),
    Panic(String),
    /// A kernel crash that need not panic (see [`CRASH_MARKERS`]).
    Crash(String),
    /// QEMU reported a fatal accelerator error (a paused VM would otherwise sit until the
    /// timeout).
    QemuFatal(String),
    ConsoleClosed,
}

/// What the caller was waiting for, to name the timeout.
#[derive(Clone, Copy)]
enum Waiting {
    Boot(Duration),
    Step(usize),
    Poweroff,
}

/// A running guest whose init has said Hello.
pub struct Guest {
    child: Child,
    /// Whether `child` has been reaped (then `tracked` is gone too).
    reaped: bool,
    tracked: Option<hostenv::cleanup::TrackedChild>,
    stdin: Option<ChildStdin>,
    rx: Receiver<Msg>,
    decoder: Arc<Mutex<FrameDecoder>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    hello: GuestHello,
    boot: GuestBoot,
    accel_reason: String,
    plan: GuestPlan,
    step_timeout: Duration,
    /// This side killed QEMU (so its death by signal is not an interruption).
    killed: bool,
    said_bye: bool,
    /// Keeps the initramfs until QEMU is gone.
    workdir: Option<tempfile::TempDir>,
}

impl fmt::Debug for Guest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guest")
            .field("pid", &self.child.id())
            .field("boot", &self.boot)
            .finish_non_exhaustive()
    }
}

/// A QEMU binary found in PATH, with its version line.
struct Qemu {
    binary: &'static str,
    path: PathBuf,
    version: String,
}

impl Qemu {
    fn find(arch: Arch) -> Result<Qemu, GuestError> {
        let (binary, package) = qemu_binary(arch);
        let path = crate::fetch::which_in_path(binary)
            .ok_or(GuestError::QemuMissing { binary, package })?;
        let version = Command::new(&path)
            .arg("--version")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".to_string());
        Ok(Qemu {
            binary,
            path,
            version,
        })
    }
}

/// Whether KVM could run a guest of `arch` here; the reason it cannot otherwise. (`auto`
/// still falls back to TCG if a KVM guest then fails before its init.)
pub fn kvm_possible(arch: Arch) -> Result<(), String> {
    if Arch::host() != Some(arch) {
        return Err(format!(
            "guest arch {} is not the host's ({})",
            uname_machine(arch),
            std::env::consts::ARCH
        ));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// The kernel parameters every boot of a kernel under test gets after its console (a local
/// guest here, a LAVA device through its job). THP starts in `madvise` mode (Debian's cloud
/// kernels default to `never`): each layout then asks for what it needs, as on a host set up
/// for forkbench.
pub const KERNEL_PARAMS: &str =
    "printk.time=1 loglevel=4 panic=-1 rdinit=/init transparent_hugepage=madvise";

/// The serial console of a QEMU guest of `arch`.
pub fn console_device(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "ttyS0",
        Arch::Arm64 => "ttyAMA0",
    }
}

/// The early console of `arch`: a kernel that dies before its console is up (a corrupt
/// image's decompressor, an early panic) says so at once rather than at the boot timeout.
pub fn early_console(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "earlyprintk=serial",
        Arch::Arm64 => "earlycon",
    }
}

/// What an icount guest's kernel command line adds (see [`cmdline`]); the guest's init looks
/// for [`crate::plan::EXACT_MARKER`] in it.
pub const EXACT_CMDLINE: &str = "norandmaps forkbench.clock=icount";

/// The kernel command line: the console, the early console, [`KERNEL_PARAMS`], under icount
/// [`EXACT_CMDLINE`], then `extra`, so its parameters win.
///
/// `norandmaps`, because with address randomisation every process lays out its stack, binary
/// and mappings elsewhere, spans a different number of page tables, and so its fork executes a
/// different number of instructions (measured on Debian 6.12 x86_64, 256 MiB: `untouched`
/// varied 174-185 k instructions and `pmd-order9` 845-866 k between processes, against 0.2% and
/// 0.04% without); and the marker that tells the guest's init to start every timed fork just
/// after a tick.
pub fn cmdline(arch: Arch, clock: Clock, extra: &[String]) -> String {
    let mut c = format!(
        "console={} {} {KERNEL_PARAMS}",
        console_device(arch),
        early_console(arch)
    );
    if clock == Clock::Icount {
        c.push(' ');
        c.push_str(EXACT_CMDLINE);
    }
    for e in extra {
        c.push(' ');
        c.push_str(e);
    }
    c
}

/// QEMU's options for an exact guest clock (see [`qemu_args`]'s note on icount).
pub const ICOUNT_ARGS: &[&str] = &["-icount", "shift=0,sleep=off"];

/// QEMU's machine and CPU options for a guest of `arch` under `accel` (also the CPU of the
/// QEMU device dictionary a LAVA lab gets from `cargo xtask lava device`).
pub fn machine_cpu_args(arch: Arch, accel: Accel) -> &'static [&'static str] {
    match (arch, accel == Accel::Kvm) {
        (Arch::X86_64, true) => &["-cpu", "host"],
        (Arch::X86_64, false) => &["-cpu", "max"],
        (Arch::Arm64, true) => &["-M", "virt,gic-version=max", "-cpu", "host"],
        // The implementation-defined pointer-authentication algorithm is the cheapest for TCG
        // (kernel functions sign their return addresses); nothing fork does depends on it.
        (Arch::Arm64, false) => &["-M", "virt", "-cpu", "max,pauth-impdef=on"],
    }
}

/// QEMU's arguments. `-nodefaults -display none` rather than `-nographic`: no default
/// devices to emulate, and nothing but the serial console on stdio (`-nographic` would
/// multiplex the monitor onto it too). `signal=off`: a ^C byte in the input is data.
///
/// Under `clock` icount: `-icount shift=0,sleep=off` (every guest instruction advances the
/// guest clock by 2^0 ns; an idle vCPU jumps to its next timer instead of sleeping, so host
/// time never leaks in) and one vCPU, since icount runs TCG single-threaded and a second vCPU's
/// instructions would land in the measuring CPU's clock.
fn qemu_args(
    cfg: &GuestConfig,
    accel: Accel,
    clock: Clock,
    kernel: &Path,
    initrd: &Path,
) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    let kvm = accel == Accel::Kvm;
    push(&["-accel", if kvm { "kvm" } else { "tcg" }]);
    if clock == Clock::Icount {
        push(ICOUNT_ARGS);
    }
    push(machine_cpu_args(cfg.image.arch, accel));
    let mib = cfg.mem.bytes().div_ceil(1 << 20);
    let vcpus = vcpus_for(cfg, clock);
    push(&["-smp", &vcpus.to_string(), "-m", &format!("{mib}M")]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    push(&[
        "-chardev",
        "stdio,id=con,signal=off",
        "-serial",
        "chardev:con",
    ]);
    push(&["-no-reboot"]);
    a.push("-kernel".into());
    a.push(kernel.display().to_string());
    a.push("-initrd".into());
    a.push(initrd.display().to_string());
    a.push("-append".into());
    a.push(cmdline(cfg.image.arch, clock, &cfg.cmdline_extra));
    a
}

/// The guest's vCPUs: one under icount, else what the configuration asks.
fn vcpus_for(cfg: &GuestConfig, clock: Clock) -> u32 {
    match clock {
        Clock::Icount => 1,
        Clock::Wall => cfg.vcpus,
    }
}

/// Why a launch failed, with QEMU's last stderr line (for the auto fallback's reason).
struct LaunchFailure {
    error: GuestError,
    stderr_last: Option<String>,
}

impl Guest {
    /// Build the initramfs, start QEMU and wait for the guest's Hello.
    pub fn boot(cfg: GuestConfig) -> Result<Guest, GuestError> {
        // Read the image again: a hand-made KernelImage may name any file.
        let checked = KernelImage::open(&cfg.image.path)?;
        if checked.arch != cfg.image.arch {
            return Err(GuestError::ArchMismatch {
                image: checked.arch,
                asked: cfg.image.arch,
            });
        }
        let arch = cfg.image.arch;
        let qemu = Qemu::find(arch)?;
        let workdir = tempfile::Builder::new()
            .prefix("forkbench-guest-")
            .tempdir()
            .map_err(|source| GuestError::Initramfs {
                path: std::env::temp_dir(),
                source,
            })?;
        let initrd = workdir.path().join("initramfs.cpio");
        crate::initramfs::write_initramfs(&cfg.payload, &cfg.plan, &cfg.extra_files, &initrd)
            .map_err(|e| GuestError::Initramfs {
                path: e.path,
                source: e.source,
            })?;
        let try_accel = |accel, reason: String| launch(&cfg, &qemu, &initrd, accel, reason);
        let mut guest = match cfg.accel {
            // Exact counting exists only under emulation: icount never tries KVM.
            AccelChoice::Kvm if cfg.clock == ClockChoice::Icount => Err(GuestError::IcountNeedsTcg),
            AccelChoice::Auto if cfg.clock == ClockChoice::Icount => {
                try_accel(Accel::Tcg, "auto: --clock icount needs tcg".into()).map_err(|f| f.error)
            }
            AccelChoice::Tcg => try_accel(Accel::Tcg, "asked for tcg".into()).map_err(|f| f.error),
            AccelChoice::Kvm => {
                kvm_possible(arch).map_err(|reason| GuestError::KvmUnavailable { reason })?;
                try_accel(Accel::Kvm, "asked for kvm".into()).map_err(|f| f.error)
            }
            AccelChoice::Auto => match kvm_possible(arch).and_then(|()| {
                kvm_failed_before(arch).map_or(Ok(()), |why| Err(format!("earlier: {why}")))
            }) {
                Err(why) => {
                    try_accel(Accel::Tcg, format!("auto: no kvm: {why}")).map_err(|f| f.error)
                }
                Ok(()) => {
                    let mut probe = cfg.clone();
                    probe.boot_timeout = probe.boot_timeout.min(KVM_PROBE_TIMEOUT);
                    match launch(&probe, &qemu, &initrd, Accel::Kvm, "auto: kvm works".into()) {
                        Ok(g) => Ok(g),
                        Err(LaunchFailure {
                            error: e @ (GuestError::Interrupted | GuestError::OutOfMemory { .. }),
                            ..
                        }) => Err(e),
                        Err(f) => {
                            let why = f.stderr_last.unwrap_or_else(|| f.error.to_string());
                            remember_kvm_failure(arch, &why);
                            try_accel(Accel::Tcg, format!("kvm: guest failed before init: {why}"))
                                .map_err(|f| f.error)
                        }
                    }
                }
            },
        }?;
        guest.workdir = Some(workdir);
        Ok(guest)
    }

    /// What the guest found when it came up.
    pub fn hello(&self) -> &GuestHello {
        &self.hello
    }

    /// The accelerator in use and why.
    pub fn accel(&self) -> (Accel, String) {
        (self.boot.accel, self.accel_reason.clone())
    }

    /// Milliseconds from starting QEMU to the Hello frame.
    pub fn boot_ms(&self) -> u64 {
        self.boot.boot_ms
    }

    /// How this guest was booted, as records carry it.
    pub fn boot_info(&self) -> &GuestBoot {
        &self.boot
    }

    /// The last console lines (kernel messages and anything else that was not a frame).
    pub fn last_lines(&self) -> Vec<String> {
        last_lines(&self.decoder, &self.stderr_tail)
    }

    /// Run step `i` of an interactive plan, handing its lines and output to `on_event` as
    /// they arrive. A step that fails or is unsupported in the guest is `Ok` with that
    /// [`StepDone`]; an error means the guest is gone or unusable.
    pub fn run_step(
        &mut self,
        i: usize,
        on_event: &mut dyn FnMut(GuestEvent),
    ) -> Result<StepDone, GuestError> {
        if !self.plan.interactive {
            return Err(GuestError::Step(
                "the plan is not interactive: use run_all".into(),
            ));
        }
        if i >= self.plan.steps.len() {
            return Err(GuestError::Step(format!(
                "no step {i}: the plan has {}",
                self.plan.steps.len()
            )));
        }
        self.send(HostCommand::Go(i))?;
        let deadline = Instant::now() + self.step_timeout;
        loop {
            let f = self.recv(deadline, Waiting::Step(i))?;
            if let Some(done) = self.handle(f, on_event)? {
                if done.step != i {
                    return Err(self.fail(GuestError::Step(format!(
                        "asked for step {i}, the guest finished step {}",
                        done.step
                    ))));
                }
                return Ok(done);
            }
            if self.said_bye {
                return Err(self.fail(GuestError::Step(format!(
                    "the guest powered off during step {i}"
                ))));
            }
        }
    }

    /// Run a non-interactive plan to its end: the guest runs every step and powers off.
    /// Returns each step's StepDone in order.
    pub fn run_all(
        &mut self,
        on_event: &mut dyn FnMut(GuestEvent),
    ) -> Result<Vec<StepDone>, GuestError> {
        if self.plan.interactive {
            return (0..self.plan.steps.len())
                .map(|i| self.run_step(i, on_event))
                .collect();
        }
        let mut done = Vec::new();
        let mut deadline = Instant::now() + self.step_timeout;
        while !self.said_bye {
            let f = self.recv(deadline, Waiting::Step(done.len()))?;
            if let Some(d) = self.handle(f, on_event)? {
                done.push(d);
                deadline = Instant::now() + self.step_timeout;
            }
        }
        Ok(done)
    }

    /// Power the guest off and wait for QEMU to exit.
    pub fn shutdown(mut self) -> Result<(), GuestError> {
        if !self.said_bye && !self.reaped {
            // A guest that already powered off has closed its console.
            let _ = self.send(HostCommand::Poweroff);
        }
        let deadline = Instant::now() + POWEROFF_TIMEOUT;
        loop {
            match self.recv(deadline, Waiting::Poweroff) {
                Ok(_) => continue,
                Err(GuestError::GuestDied { status, last_lines }) => {
                    // QEMU exits 0 after the guest powers off (-no-reboot).
                    return if status == "exit status: 0" {
                        Ok(())
                    } else {
                        Err(GuestError::GuestDied { status, last_lines })
                    };
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send(&mut self, c: HostCommand) -> Result<(), GuestError> {
        let stdin = self.stdin.as_mut().ok_or_else(|| {
            GuestError::Console(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        })?;
        stdin
            .write_all(c.line().as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(GuestError::Console)
    }

    /// Act on a frame: pass lines and output on (records stamped with this guest), return a
    /// StepDone.
    fn handle(
        &mut self,
        f: Frame,
        on_event: &mut dyn FnMut(GuestEvent),
    ) -> Result<Option<StepDone>, GuestError> {
        let message = Message::from_frame(f).map_err(|BadMessage { kind, error }| {
            self.fail(GuestError::BadMessage { kind, error })
        })?;
        match message {
            Message::Line(line) => {
                on_event(GuestEvent::Line(self.stamp(line)));
                Ok(None)
            }
            Message::Output(bytes) => {
                on_event(GuestEvent::Output(bytes));
                Ok(None)
            }
            Message::StepDone(done) => Ok(Some(done)),
            Message::Bye(_) => {
                self.said_bye = true;
                Ok(None)
            }
            Message::Hello(_) => Err(self.fail(GuestError::BadMessage {
                kind: FrameKind::Hello,
                error: "a second hello (the guest restarted?)".into(),
            })),
            // `recv` turns these into errors.
            Message::Error(_) => Ok(None),
        }
    }

    /// Record where a line was measured: runs get the accelerator, contexts the boot.
    fn stamp(&self, mut line: RunnerLine) -> RunnerLine {
        match &mut line {
            RunnerLine::Run(r) => {
                if let Variant::Real(v) = &mut r.variant {
                    v.accel = self.boot.accel;
                    v.clock = self.boot.clock;
                }
            }
            RunnerLine::Context(c) => c.guest = Some(self.boot.clone()),
            RunnerLine::Header(_) | RunnerLine::Counts(_) => {}
        }
        line
    }

    /// The next frame, or the error that ends this guest: a timeout, an Error frame, a
    /// console frame that does not check out, OOM, a panic, or QEMU gone.
    fn recv(&mut self, deadline: Instant, waiting: Waiting) -> Result<Frame, GuestError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = match self.rx.recv_timeout(left) {
            Ok(m) => m,
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                let last_lines = self.last_lines();
                return Err(match waiting {
                    Waiting::Boot(timeout) => GuestError::BootTimeout {
                        secs: secs_of(timeout),
                        last_lines,
                    },
                    Waiting::Step(step) => GuestError::StepTimeout {
                        step,
                        secs: self.step_timeout.as_secs(),
                        last_lines,
                    },
                    Waiting::Poweroff => GuestError::GuestDied {
                        status: format!(
                            "did not power off within {} s, killed",
                            POWEROFF_TIMEOUT.as_secs()
                        ),
                        last_lines,
                    },
                });
            }
            Err(RecvTimeoutError::Disconnected) => Msg::ConsoleClosed,
        };
        match msg {
            Msg::Frame(Ok(f)) if f.kind == FrameKind::Error => {
                let message = String::from_utf8_lossy(&f.payload).into_owned();
                Err(self.fail(GuestError::GuestReported { message }))
            }
            Msg::Frame(Ok(f)) => Ok(f),
            Msg::Frame(Err(e)) => Err(self.fail(GuestError::Frame(e))),
            Msg::OutOfMemory(line) => Err(self.fail(GuestError::OutOfMemory { line })),
            Msg::Panic(line) => Err(self.fail(GuestError::GuestPanicked { line })),
            Msg::Crash(line) => {
                let last_lines = self.last_lines();
                Err(self.fail(GuestError::GuestCrashed { line, last_lines }))
            }
            Msg::QemuFatal(line) => {
                self.kill();
                Err(GuestError::GuestDied {
                    status: line,
                    last_lines: self.last_lines(),
                })
            }
            Msg::ConsoleClosed => {
                let status = self.reap();
                Err(self.died(status))
            }
        }
    }

    /// The error for a QEMU that exited by itself.
    fn died(&self, status: Option<ExitStatus>) -> GuestError {
        use std::os::unix::process::ExitStatusExt;
        if !self.killed
            && status.and_then(|s| s.signal()).is_some_and(|s| {
                [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGKILL].contains(&s)
            })
        {
            return GuestError::Interrupted;
        }
        GuestError::GuestDied {
            status: status.map_or_else(|| "unknown status".to_string(), |s| s.to_string()),
            last_lines: self.last_lines(),
        }
    }

    /// Kill QEMU and hand back `e` (the guest is unusable after it).
    fn fail(&mut self, e: GuestError) -> GuestError {
        self.kill();
        e
    }

    /// Kill QEMU's process group and reap it.
    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        self.killed = true;
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: killpg only sends a signal; QEMU leads its own group (process_group(0)),
        // and it is not reaped yet, so the id cannot name anyone else's group.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        self.reap();
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        if self.reaped {
            return None;
        }
        self.stdin = None;
        let status = self.child.wait().ok();
        self.reaped = true;
        // Untrack only after reaping, so the id cannot have been reused in between.
        self.tracked = None;
        status
    }
}

/// Whole seconds for a message (a sub-second timeout reads as 1 s, not 0 s).
fn secs_of(d: Duration) -> u64 {
    d.as_secs().max(1)
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.kill();
    }
}

fn last_lines(decoder: &Mutex<FrameDecoder>, stderr_tail: &Mutex<VecDeque<String>>) -> Vec<String> {
    let mut lines = decoder
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .tail_lines(LAST_LINES);
    let stderr = stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
    lines.extend(stderr.iter().map(|l| format!("qemu: {l}")));
    lines
}

/// Start QEMU under `accel` and wait for Hello.
fn launch(
    cfg: &GuestConfig,
    qemu: &Qemu,
    initrd: &Path,
    accel: Accel,
    accel_reason: String,
) -> Result<Guest, LaunchFailure> {
    use std::os::unix::process::CommandExt;
    let fail = |error| LaunchFailure {
        error,
        stderr_last: None,
    };
    let clock = cfg.clock.resolve(accel).map_err(fail)?;
    let mut c = Command::new(&qemu.path);
    c.args(qemu_args(cfg, accel, clock, &cfg.image.path, initrd))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: a terminal's ^C reaches this process, which decides; and the whole
        // group can be killed at once.
        .process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and calls only prctl,
    // getppid, getpid and kill, which are async-signal-safe; it allocates nothing.
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the prctl took effect: no signal will come.
            if libc::getppid() as u32 != parent {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = c.spawn().map_err(|source| {
        fail(match source.kind() {
            std::io::ErrorKind::NotFound => {
                let (binary, package) = qemu_binary(cfg.image.arch);
                GuestError::QemuMissing { binary, package }
            }
            _ => GuestError::Spawn {
                binary: qemu.binary.to_string(),
                source,
            },
        })
    })?;
    let tracked = match hostenv::cleanup::track_child(child.id() as i32) {
        Ok(t) => Some(t),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(GuestError::Spawn {
                binary: qemu.binary.to_string(),
                source: std::io::Error::other(e.to_string()),
            }));
        }
    };
    let (tx, rx) = channel();
    let decoder = Arc::new(Mutex::new(FrameDecoder::new()));
    let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    spawn_console_reader(stdout, Arc::clone(&decoder), tx.clone());
    spawn_stderr_reader(stderr, Arc::clone(&stderr_tail), tx);
    let boot = GuestBoot {
        accel,
        clock,
        accel_reason: accel_reason.clone(),
        qemu: qemu.version.clone(),
        image: cfg.image.path.file_name().map_or_else(
            || cfg.image.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        guest_arch: uname_machine(cfg.image.arch).to_string(),
        vcpus: vcpus_for(cfg, clock),
        guest_mem_bytes: cfg.mem.bytes(),
        boot_ms: 0,
        page_size: 0,
        config: cfg
            .image
            .config
            .as_deref()
            .map(crate::image::config_facts)
            .unwrap_or_default(),
    };
    let mut guest = Guest {
        stdin: child.stdin.take(),
        child,
        reaped: false,
        tracked,
        rx,
        decoder,
        stderr_tail,
        hello: GuestHello::default(),
        boot,
        accel_reason,
        plan: cfg.plan.clone(),
        step_timeout: cfg.step_timeout,
        killed: false,
        said_bye: false,
        workdir: None,
    };
    let deadline = started + cfg.boot_timeout;
    let first = match guest.recv(deadline, Waiting::Boot(cfg.boot_timeout)) {
        Ok(f) => f,
        Err(e) => {
            // QEMU's own "error:" line says more than an assertion that follows it.
            let stderr_last = {
                let tail = guest.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
                tail.iter()
                    .find(|l| l.contains("error"))
                    .or(tail.back())
                    .cloned()
            };
            return Err(LaunchFailure {
                error: e,
                stderr_last,
            });
        }
    };
    guest.boot.boot_ms = started.elapsed().as_millis() as u64;
    if first.kind != FrameKind::Hello {
        let e = guest.fail(GuestError::BadMessage {
            kind: first.kind,
            error: "expected hello first".into(),
        });
        return Err(fail(e));
    }
    match serde_json::from_slice::<GuestHello>(&first.payload) {
        Ok(h) => {
            guest.boot.page_size = h.page_size;
            if !h.arch.is_empty() {
                guest.boot.guest_arch = match h.arch.as_str() {
                    "arm64" => "aarch64".to_string(),
                    other => other.to_string(),
                };
            }
            guest.hello = h;
            Ok(guest)
        }
        Err(e) => {
            let e = guest.fail(GuestError::BadMessage {
                kind: FrameKind::Hello,
                error: e.to_string(),
            });
            Err(fail(e))
        }
    }
}

/// Reads QEMU's stdout (the guest console): frames through the decoder, and every raw line
/// checked for the kernel's OOM and panic messages.
fn spawn_console_reader(
    mut stdout: impl Read + Send + 'static,
    decoder: Arc<Mutex<FrameDecoder>>,
    tx: Sender<Msg>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut line: Vec<u8> = Vec::new();
        // The line being received already raised its alarm (see below).
        let mut alarmed = false;
        loop {
            let n = match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let frames = decoder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(&buf[..n]);
            for chunk in buf[..n].split_inclusive(|&b| b == b'\n') {
                line.extend_from_slice(chunk);
                if line.len() > 4096 {
                    line.drain(..line.len() - 4096);
                }
                if chunk.ends_with(b"\n") {
                    if let Some(m) = console_alarm(&line).filter(|_| !alarmed) {
                        let _ = tx.send(m);
                    }
                    line.clear();
                    alarmed = false;
                }
            }
            // A guest that stops mid-line (the x86 decompressor's `-- System halted` has no
            // newline) is heard now, not at its timeout.
            if !alarmed && let Some(m) = console_alarm(&line) {
                let _ = tx.send(m);
                alarmed = true;
            }
            for f in frames {
                if tx.send(Msg::Frame(f)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Msg::ConsoleClosed);
    });
}

/// The first lines of the kernel's crash reports that do not panic by themselves (x86_64 and
/// arm64 oopses, an x86 double fault), and the x86 boot decompressor's halt. An oops kills only
/// the task it hit (e.g. a fork child) and the guest goes on: without these, a crashed kernel
/// could hand back a sample, or sit until a timeout.
/// (A user program's fault reads `general protection fault ip:...`: not matched.)
pub const CRASH_MARKERS: [&str; 9] = [
    "Oops:",
    "BUG: kernel NULL pointer dereference",
    "BUG: unable to handle",
    "general protection fault, ",
    "general protection fault: ",
    "double fault",
    "Unable to handle kernel",
    "Internal error:",
    "-- System halted",
];

/// A console line that ends the guest's usefulness: the OOM killer, a panic or a crash.
fn console_alarm(raw: &[u8]) -> Option<Msg> {
    let text = String::from_utf8_lossy(raw);
    let line = text.trim().to_string();
    if line.contains("Out of memory") {
        Some(Msg::OutOfMemory(line))
    } else if line.contains("Kernel panic") {
        Some(Msg::Panic(line))
    } else if CRASH_MARKERS.iter().any(|m| line.contains(m)) {
        Some(Msg::Crash(line))
    } else {
        None
    }
}

/// Keeps QEMU's last stderr lines and reports the fatal ones at once.
fn spawn_stderr_reader(
    stderr: impl Read + Send + 'static,
    tail: Arc<Mutex<VecDeque<String>>>,
    tx: Sender<Msg>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let line = line.trim().to_string();
            if line.is_empty() {
                continue;
            }
            {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == 3 {
                    t.pop_front();
                }
                t.push_back(line.clone());
            }
            // A nested KVM that cannot emulate an instruction pauses the VM and waits.
            if line.contains("KVM internal error") {
                let _ = tx.send(Msg::QemuFatal(line));
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{RealLayout, RealOpts};

    fn real(mem: u64) -> GuestStep {
        GuestStep::Real(RealOpts {
            mem: Size(mem),
            ..RealOpts::new(RealLayout::Order0)
        })
    }

    #[test]
    fn guest_memory_follows_the_largest_step() {
        let plan = GuestPlan::new(true, vec![real(16 << 20), real(1 << 30)]);
        let m = guest_mem_for(&plan, 10 << 20);
        assert_eq!(
            m.bytes(),
            (1 << 30) + (64 << 20) + (20 << 20) + KERNEL_HEADROOM
        );
        assert_eq!(m.bytes() % (2 << 20), 0);
        let empty = GuestPlan::new(false, vec![]);
        assert_eq!(guest_mem_for(&empty, 1).bytes(), MIN_GUEST_MEM);
    }

    #[test]
    fn clock_choices_resolve_by_accelerator() {
        assert_eq!(
            ClockChoice::Auto.resolve(Accel::Tcg).unwrap(),
            Clock::Icount
        );
        assert_eq!(ClockChoice::Auto.resolve(Accel::Kvm).unwrap(), Clock::Wall);
        assert_eq!(ClockChoice::Wall.resolve(Accel::Tcg).unwrap(), Clock::Wall);
        assert_eq!(
            ClockChoice::Icount.resolve(Accel::Tcg).unwrap(),
            Clock::Icount
        );
        assert!(matches!(
            ClockChoice::Icount.resolve(Accel::Kvm),
            Err(GuestError::IcountNeedsTcg)
        ));
        for c in [ClockChoice::Auto, ClockChoice::Icount, ClockChoice::Wall] {
            assert_eq!(c.to_string().parse::<ClockChoice>().unwrap(), c);
        }
        assert!("cycles".parse::<ClockChoice>().is_err());
    }

    #[test]
    fn accel_choices_parse_and_print() {
        for a in [AccelChoice::Auto, AccelChoice::Kvm, AccelChoice::Tcg] {
            assert_eq!(a.to_string().parse::<AccelChoice>().unwrap(), a);
        }
        assert_eq!(
            "hvf".parse::<AccelChoice>().unwrap_err(),
            "unknown accelerator 'hvf' (expected auto, kvm or tcg)"
        );
    }

    #[test]
    fn an_icount_guest_is_told_so_and_runs_without_address_randomisation() {
        let exact = cmdline(Arch::X86_64, Clock::Icount, &[]);
        assert!(exact.contains(" norandmaps"), "{exact}");
        assert!(crate::plan::exact_mode(&exact), "{exact}");
        let timed = cmdline(Arch::X86_64, Clock::Wall, &[]);
        assert!(!timed.contains("norandmaps") && !crate::plan::exact_mode(&timed));
    }

    #[test]
    fn command_line_per_arch() {
        assert_eq!(
            cmdline(Arch::Arm64, Clock::Wall, &["rdinit=/nope".into()]),
            "console=ttyAMA0 earlycon printk.time=1 loglevel=4 panic=-1 rdinit=/init \
             transparent_hugepage=madvise rdinit=/nope"
        );
        assert!(
            cmdline(Arch::X86_64, Clock::Wall, &[])
                .starts_with("console=ttyS0 earlyprintk=serial ")
        );
    }

    #[test]
    fn console_alarms() {
        assert!(matches!(
            console_alarm(b"[   3.1] Out of memory: Killed process 50 (forkbench)\n"),
            Some(Msg::OutOfMemory(l)) if l.starts_with("[   3.1] Out of memory")
        ));
        assert!(matches!(
            console_alarm(b"[   0.9] Kernel panic - not syncing: No working init found.\r\n"),
            Some(Msg::Panic(_))
        ));
        assert!(console_alarm(b"[   0.1] Memory: 100K/200K available\n").is_none());
        // Crashes that do not panic by themselves (lines as 6.12 prints them).
        for line in [
            "[   9.8] BUG: kernel NULL pointer dereference, address: 0000000000000008",
            "[   9.8] Oops: Oops: 0000 [#1] PREEMPT SMP NOPTI",
            "[   9.8] Oops: general protection fault, probably for non-canonical address",
            "[   9.8] traps: PANIC: double fault, error_code: 0x0",
            "[   9.8] Unable to handle kernel NULL pointer dereference at virtual address 0",
            "[   9.8] Internal error: Oops: 0000000096000004 [#1] SMP",
            " -- System halted",
        ] {
            assert!(
                matches!(console_alarm(line.as_bytes()), Some(Msg::Crash(l)) if l == line.trim()),
                "{line}"
            );
        }
        assert!(console_alarm(b"[   1.0] BUG: sleeping function called\n").is_none());
        assert!(
            console_alarm(b"[   1.0] traps: a[9] general protection fault ip:4011 sp:7ffc\n")
                .is_none()
        );
    }

    #[test]
    fn kvm_is_refused_for_a_foreign_arch() {
        let foreign = match Arch::host() {
            Some(Arch::X86_64) => Arch::Arm64,
            _ => Arch::X86_64,
        };
        assert!(
            kvm_possible(foreign)
                .unwrap_err()
                .contains("is not the host's")
        );
    }
}
