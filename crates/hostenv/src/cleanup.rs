//! Last-resort cleanup that also runs on SIGINT, SIGTERM and SIGHUP (and on panic, even with
//! `panic = "abort"`): restores armed file values (sysfs knobs written by
//! [`crate::sysfs::SysfsGuard`]) and kills and reaps tracked child processes, then lets the signal
//! terminate the process as it would have.
//!
//! The handlers are registered through `signal-hook` (which chains any handler installed before).
//! The registry is a fixed set of slots made of atomics, so the signal action reads it without
//! locks or allocation and calls only async-signal-safe functions (`open`, `write`, `close`,
//! `kill`, `waitpid`, `_exit`, and signal-hook's default-action emulation). A forked child that receives
//! one of these signals before it exits just calls `_exit`: only the process that installed the
//! handlers restores anything. SIGKILL cannot be caught; nothing can restore after it.

use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};

use crate::HostError;

/// Most file values that can be armed at once.
pub const RESTORE_SLOTS: usize = 16;
/// Most children that can be tracked at once.
pub const CHILD_SLOTS: usize = 64;
const PATH_MAX: usize = 256;
const VALUE_MAX: usize = 64;

const FREE: u8 = 0;
const FILLING: u8 = 1;
const ARMED: u8 = 2;

struct RestoreSlot {
    state: AtomicU8,
    /// Bumped on every arm, so the handler can tell a slot that was refilled while it read it.
    generation: AtomicUsize,
    path: [AtomicU8; PATH_MAX],
    path_len: AtomicUsize,
    value: [AtomicU8; VALUE_MAX],
    value_len: AtomicUsize,
}

impl RestoreSlot {
    const fn new() -> Self {
        RestoreSlot {
            state: AtomicU8::new(FREE),
            generation: AtomicUsize::new(0),
            path: [const { AtomicU8::new(0) }; PATH_MAX],
            path_len: AtomicUsize::new(0),
            value: [const { AtomicU8::new(0) }; VALUE_MAX],
            value_len: AtomicUsize::new(0),
        }
    }
}

static RESTORE: [RestoreSlot; RESTORE_SLOTS] = [const { RestoreSlot::new() }; RESTORE_SLOTS];
static CHILDREN: [AtomicI32; CHILD_SLOTS] = [const { AtomicI32::new(0) }; CHILD_SLOTS];
static OWNER_PID: AtomicI32 = AtomicI32::new(0);
/// Whether a handled signal ends the process after cleaning up (the default).
static TERMINATE: AtomicBool = AtomicBool::new(true);
static INSTALL: Once = Once::new();

/// Signals whose default action is to terminate and that a user or a service manager sends.
pub const HANDLED_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// After a handled signal has restored the armed values and killed the tracked children, let
/// the process go on instead of ending it: for a driver whose own handler (a stop flag) then
/// winds down and reports, e.g. `cargo xtask bench` with its guests.
pub fn keep_running_on_signal() {
    TERMINATE.store(false, Ordering::SeqCst);
}

/// Let a write to a closed pipe end the process quietly, as it ends C tools (`cargo xtask table
/// | head`), instead of Rust's default: SIGPIPE ignored, so `println!` panics on EPIPE. For
/// drivers whose output people read; the runner keeps the default and reports EPIPE as an
/// error. Children spawned later start with SIGPIPE at its default anyway (std resets it).
pub fn die_quietly_on_broken_pipe() {
    // SAFETY: setting SIGPIPE's disposition to SIG_DFL installs no handler, so no code runs in
    // signal context; it only changes what the kernel does on EPIPE, for the whole process.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
}

/// Install the signal handlers and the panic hook (once per process; later calls do nothing).
/// A signal that is currently ignored (e.g. SIGHUP under `nohup`) stays ignored.
pub fn install() {
    INSTALL.call_once(|| {
        OWNER_PID.store(crate::sys::getpid(), Ordering::SeqCst);
        for sig in HANDLED_SIGNALS {
            install_handler(sig);
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_armed();
            previous(info);
        }));
    });
}

fn install_handler(sig: i32) {
    if currently_ignored(sig) {
        return;
    }
    // SAFETY: the action only makes async-signal-safe calls (atomics, open/write/close,
    // kill/waitpid, getpid, _exit, and signal-hook's emulate_default_handler).
    let _ = unsafe { signal_hook::low_level::register(sig, move || on_signal(sig)) };
}

/// Whether `sig` is set to `SIG_IGN` now (e.g. SIGHUP under `nohup`).
fn currently_ignored(sig: i32) -> bool {
    // SAFETY: sigaction is plain data; all-zero is a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries; `old` is a valid, writable sigaction.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), &mut old) };
    rc == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// A slot armed by [`arm_restore`]: while it exists, a signal or panic writes `value` to `path`.
#[derive(Debug)]
pub(crate) struct RestoreToken {
    slot: usize,
}

/// Arm a restore of `value` into `path`. Call before changing the file.
pub(crate) fn arm_restore(path: &Path, value: &[u8]) -> Result<RestoreToken, HostError> {
    install();
    let p = path.as_os_str().as_encoded_bytes();
    if p.len() >= PATH_MAX || value.len() > VALUE_MAX || p.contains(&0) {
        return Err(HostError::TooLongForSignalRestore {
            path: path.to_owned(),
        });
    }
    for (i, s) in RESTORE.iter().enumerate() {
        if s.state
            .compare_exchange(FREE, FILLING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            for (j, &b) in p.iter().enumerate() {
                s.path[j].store(b, Ordering::Relaxed);
            }
            s.path_len.store(p.len(), Ordering::Relaxed);
            for (j, &b) in value.iter().enumerate() {
                s.value[j].store(b, Ordering::Relaxed);
            }
            s.value_len.store(value.len(), Ordering::Relaxed);
            s.generation.fetch_add(1, Ordering::Relaxed);
            s.state.store(ARMED, Ordering::Release);
            return Ok(RestoreToken { slot: i });
        }
    }
    Err(HostError::RegistryFull {
        what: "guarded file values",
        max: RESTORE_SLOTS,
    })
}

impl Drop for RestoreToken {
    fn drop(&mut self) {
        RESTORE[self.slot].state.store(FREE, Ordering::Release);
    }
}

/// A child process that is killed (SIGKILL) and reaped if this process gets a handled signal
/// while the child is tracked. Untracks on drop; it does not wait for the child itself.
#[derive(Debug)]
pub struct TrackedChild {
    slot: usize,
    pid: i32,
}

impl TrackedChild {
    /// The tracked process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }
}

/// Track `pid` until the returned value is dropped. Untrack right after reaping the child, so the
/// id cannot have been reused in between.
pub fn track_child(pid: i32) -> Result<TrackedChild, HostError> {
    install();
    for (i, c) in CHILDREN.iter().enumerate() {
        if c.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Ok(TrackedChild { slot: i, pid });
        }
    }
    Err(HostError::RegistryFull {
        what: "tracked children",
        max: CHILD_SLOTS,
    })
}

impl Drop for TrackedChild {
    fn drop(&mut self) {
        CHILDREN[self.slot].store(0, Ordering::Release);
    }
}

/// Write every armed value back (async-signal-safe; used by the handler and the panic hook).
fn restore_armed() {
    for s in RESTORE.iter() {
        let st = s.state.load(Ordering::Acquire);
        let generation = s.generation.load(Ordering::Acquire);
        if st != ARMED {
            continue;
        }
        let mut path = [0u8; PATH_MAX];
        let plen = s.path_len.load(Ordering::Relaxed).min(PATH_MAX - 1);
        for (j, b) in path.iter_mut().take(plen).enumerate() {
            *b = s.path[j].load(Ordering::Relaxed);
        }
        let mut value = [0u8; VALUE_MAX];
        let vlen = s.value_len.load(Ordering::Relaxed).min(VALUE_MAX);
        for (j, b) in value.iter_mut().take(vlen).enumerate() {
            *b = s.value[j].load(Ordering::Relaxed);
        }
        if s.state.load(Ordering::Acquire) != ARMED
            || s.generation.load(Ordering::Acquire) != generation
        {
            continue;
        }
        // SAFETY: `path` is NUL-terminated (plen < PATH_MAX and the buffer was zeroed);
        // open/write/close are async-signal-safe and `value[..vlen]` is in bounds.
        unsafe {
            let fd = libc::open(
                path.as_ptr().cast(),
                libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::write(fd, value.as_ptr().cast(), vlen);
                libc::close(fd);
            }
        }
    }
}

/// Kill and reap every tracked child (async-signal-safe).
fn reap_tracked() {
    for c in CHILDREN.iter() {
        let pid = c.load(Ordering::Acquire);
        if pid <= 0 {
            continue;
        }
        // SAFETY: kill and waitpid are async-signal-safe; a null status pointer is allowed.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            while libc::waitpid(pid, std::ptr::null_mut(), 0) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
        }
        c.store(0, Ordering::Release);
    }
}

fn on_signal(sig: libc::c_int) {
    // SAFETY: getpid is async-signal-safe.
    let me = unsafe { libc::getpid() };
    if me != OWNER_PID.load(Ordering::Acquire) {
        // A forked child that has not exited yet: it owns nothing to restore.
        // SAFETY: _exit is async-signal-safe and never returns.
        unsafe { libc::_exit(128 + sig) };
    }
    restore_armed();
    reap_tracked();
    if !TERMINATE.load(Ordering::Acquire) {
        return;
    }
    // Terminate with the signal's default action, so the exit status says what happened.
    let _ = signal_hook::low_level::emulate_default_handler(sig);
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + sig) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_slots_are_reused_after_drop() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("knob");
        let tokens: Vec<_> = (0..RESTORE_SLOTS)
            .map(|_| arm_restore(&p, b"never"))
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(matches!(
            arm_restore(&p, b"never"),
            Err(HostError::RegistryFull { .. })
        ));
        drop(tokens);
        let t = arm_restore(&p, b"never").unwrap();
        drop(t);
    }

    #[test]
    fn overlong_values_are_refused() {
        let long = "x".repeat(PATH_MAX + 1);
        assert!(arm_restore(Path::new(&long), b"v").is_err());
        assert!(arm_restore(Path::new("/tmp/x"), &[b'v'; VALUE_MAX + 1]).is_err());
    }

    #[test]
    fn child_slots_track_and_untrack() {
        let a = track_child(1_000_001).unwrap();
        assert_eq!(a.pid(), 1_000_001);
        assert!(
            CHILDREN
                .iter()
                .any(|c| c.load(Ordering::Relaxed) == 1_000_001)
        );
        drop(a);
        assert!(
            !CHILDREN
                .iter()
                .any(|c| c.load(Ordering::Relaxed) == 1_000_001)
        );
    }
}
