//! Reading sysfs-style files and writing them under a guard that restores the original value.
//!
//! [`SysfsGuard::set`] takes an exclusive `flock` on the file (so two guards, in this process or
//! in another forkbench process, never interleave and record each other's value as "original"),
//! puts back what a process that died while it had the file switched left there (from the knob
//! [`crate::journal`]; one line on stderr says so), remembers the selected value, arms a
//! signal-safe restore (see [`crate::cleanup`]), journals the switch, then writes the new value
//! and checks it reads back. The original value is written back by [`SysfsGuard::restore`], on
//! drop (also while unwinding from a panic), from the panic hook, and from the
//! SIGINT/SIGTERM/SIGHUP handler; after SIGKILL, by the next guard on the same file (or
//! `forkbench doctor --repair`).

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use crate::HostError;
use crate::cleanup::{self, RestoreToken};
use crate::journal::{Journal, StaleKnob};

/// Read a file and trim surrounding whitespace.
pub fn read_trimmed(path: impl AsRef<Path>) -> Result<String, HostError> {
    let path = path.as_ref();
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| HostError::io(path, e))
}

/// The selected value of a sysfs choice file: the bracketed word of
/// `always inherit madvise [never]`, or the whole trimmed text when nothing is bracketed.
pub fn selected(raw: &str) -> String {
    if let Some(open) = raw.find('[')
        && let Some(len) = raw[open + 1..].find(']')
    {
        return raw[open + 1..open + 1 + len].trim().to_string();
    }
    raw.trim().to_string()
}

/// [`selected`] of a file's contents.
pub fn read_selected(path: impl AsRef<Path>) -> Result<String, HostError> {
    read_trimmed(path).map(|s| selected(&s))
}

/// Read an integer-valued file (e.g. a counter); `None` if missing or not a number.
pub fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read_trimmed(path).ok()?.parse().ok()
}

/// An exclusive (or, from [`ExclusiveLock::acquire_shared`], shared) `flock` on a file or
/// directory, held until the value is dropped. Other
/// processes (and other open files in this one) that lock the same path wait for it; e.g. a lock
/// on the THP sysfs directory serialises every forkbench process that switches an mTHP knob.
#[derive(Debug)]
pub struct ExclusiveLock {
    path: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

impl ExclusiveLock {
    /// Block until the exclusive lock on `path` is held.
    pub fn acquire(path: impl AsRef<Path>) -> Result<ExclusiveLock, HostError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| HostError::io(&path, e))?;
        let lock = crate::sys::flock_exclusive(file).map_err(|e| HostError::io(&path, e))?;
        Ok(ExclusiveLock { path, _lock: lock })
    }

    /// Block until a shared lock on `path` is held: shared holders run together, but not
    /// while anyone holds the exclusive lock.
    pub fn acquire_shared(path: impl AsRef<Path>) -> Result<ExclusiveLock, HostError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| HostError::io(&path, e))?;
        let lock = crate::sys::flock_shared(file).map_err(|e| HostError::io(&path, e))?;
        Ok(ExclusiveLock { path, _lock: lock })
    }

    /// The locked path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A file value changed for the lifetime of the guard; see the module docs.
#[derive(Debug)]
pub struct SysfsGuard {
    path: PathBuf,
    original: String,
    value: String,
    _lock: nix::fcntl::Flock<File>,
    token: Option<RestoreToken>,
    /// The journal holding this guard's entry, until the original reads back.
    journal: Option<Journal>,
    repaired: Option<StaleKnob>,
}

impl SysfsGuard {
    /// Lock `path`, remember its selected value and write `value`, journalled in
    /// [`Journal::default_location`]. If the file already holds `value` nothing is written (but
    /// the guard still restores on every exit path).
    pub fn set(path: impl AsRef<Path>, value: &str) -> Result<SysfsGuard, HostError> {
        Self::set_journalled(path, value, &Journal::default_location())
    }

    /// [`SysfsGuard::set`] with the switch journalled in `journal`.
    pub fn set_journalled(
        path: impl AsRef<Path>,
        value: &str,
        journal: &Journal,
    ) -> Result<SysfsGuard, HostError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| HostError::io(&path, e))?;
        let lock = crate::sys::flock_exclusive(file).map_err(|e| HostError::io(&path, e))?;
        // Under the lock no live guard has this file switched: an entry for it is left over.
        let repaired = journal.settle(&path)?;
        if let Some(r) = &repaired {
            r.announce();
        }
        let original = read_selected(&path)?;
        let token = cleanup::arm_restore(&path, original.as_bytes())?;
        let mut guard = SysfsGuard {
            path,
            original,
            value: value.to_string(),
            _lock: lock,
            token: Some(token),
            journal: None,
            repaired,
        };
        if guard.original != value {
            // Journalled before the write: a SIGKILL from here on leaves the true original
            // on disk for the next guard.
            journal.record(&guard.path, &guard.original, value)?;
            guard.journal = Some(journal.clone());
            fs::write(&guard.path, value).map_err(|e| HostError::io(&guard.path, e))?;
            let now = read_selected(&guard.path)?;
            if now != value {
                return Err(HostError::Mismatch {
                    path: guard.path.clone(),
                    wrote: value.to_string(),
                    found: now,
                });
            }
        }
        // On an error above, `guard` drops and restores the original value.
        Ok(guard)
    }

    /// The path this guard holds.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value the file had before the guard changed it.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// The value the guard wrote.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// What this guard found left switched by a dead process and put back before starting.
    pub fn repaired(&self) -> Option<&StaleKnob> {
        self.repaired.as_ref()
    }

    /// Write the original value back and check that it reads back.
    pub fn restore(mut self) -> Result<(), HostError> {
        self.restore_inner()
    }

    fn restore_inner(&mut self) -> Result<(), HostError> {
        let Some(token) = self.token.take() else {
            return Ok(());
        };
        let result = (|| {
            let now = read_selected(&self.path)?;
            if now != self.original {
                fs::write(&self.path, &self.original).map_err(|e| HostError::io(&self.path, e))?;
            }
            let now = read_selected(&self.path)?;
            if now != self.original {
                return Err(HostError::Mismatch {
                    path: self.path.clone(),
                    wrote: self.original.clone(),
                    found: now,
                });
            }
            Ok(())
        })();
        // Keep the signal-safe restore armed until the value is back.
        drop(token);
        if result.is_ok()
            && let Some(journal) = self.journal.take()
        {
            // A left-over entry is harmless (the next guard finds the original in place and
            // drops it), so a failure to remove it is not this restore's failure.
            let _ = journal.forget(&self.path);
        }
        result
    }
}

impl Drop for SysfsGuard {
    fn drop(&mut self) {
        // Errors cannot be reported from drop; `restore()` reports them.
        let _ = self.restore_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard journalled beside the file, not in the machine's journal.
    fn set(path: impl AsRef<Path>, value: &str) -> Result<SysfsGuard, HostError> {
        let path = path.as_ref();
        SysfsGuard::set_journalled(path, value, &Journal::at(path.with_file_name("knobs.json")))
    }

    fn knob(dir: &Path) -> PathBuf {
        let p = dir.join("enabled");
        fs::write(&p, "always inherit madvise [never]\n").unwrap();
        p
    }

    #[test]
    fn selected_parses_choice_files_and_plain_values() {
        assert_eq!(selected("always inherit madvise [never]"), "never");
        assert_eq!(selected("[always] madvise never\n"), "always");
        assert_eq!(selected("4096\n"), "4096");
        assert_eq!(selected("  [ x ] "), "x");
        assert_eq!(selected("unterminated [brace"), "unterminated [brace");
        assert_eq!(selected(""), "");
    }

    #[test]
    fn guard_writes_then_restores_explicitly() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = knob(dir.path());
        let g = set(&p, "always").unwrap();
        assert_eq!(g.original(), "never");
        assert_eq!(read_selected(&p).unwrap(), "always");
        g.restore().unwrap();
        assert_eq!(read_selected(&p).unwrap(), "never");
    }

    #[test]
    fn the_switch_is_journalled_while_it_lasts() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = knob(dir.path());
        let journal = Journal::at(dir.path().join("knobs.json"));
        let g = SysfsGuard::set_journalled(&p, "always", &journal).unwrap();
        assert_eq!(g.repaired(), None);
        let e = journal.entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].original, "never");
        assert_eq!(e[0].written, "always");
        assert_eq!(e[0].owner_pid, std::process::id() as i32);
        g.restore().unwrap();
        assert!(journal.entries().unwrap().is_empty());
        // Nothing to switch, nothing to journal.
        let g = SysfsGuard::set_journalled(&p, "never", &journal).unwrap();
        assert!(journal.entries().unwrap().is_empty());
        drop(g);
    }

    #[test]
    fn guard_restores_on_drop_and_on_panic() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = knob(dir.path());
        {
            let _g = set(&p, "always").unwrap();
            assert_eq!(read_selected(&p).unwrap(), "always");
        }
        assert_eq!(read_selected(&p).unwrap(), "never");

        let p2 = p.clone();
        let r = std::panic::catch_unwind(move || {
            let _g = set(&p2, "madvise").unwrap();
            assert_eq!(read_selected(&p2).unwrap(), "madvise");
            panic!("boom (expected by this test)");
        });
        assert!(r.is_err());
        assert_eq!(read_selected(&p).unwrap(), "never");
    }

    #[test]
    fn sequential_guards_see_the_true_original() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = knob(dir.path());
        let p2 = p.clone();
        let first = set(&p, "always").unwrap();
        // A second guard on another thread blocks on the flock until the first is restored, so
        // it records "never", not "always", as the original.
        let t = std::thread::spawn(move || {
            let g = set(&p2, "madvise").unwrap();
            let orig = g.original().to_string();
            g.restore().unwrap();
            orig
        });
        first.restore().unwrap();
        assert_eq!(t.join().unwrap(), "never");
        assert_eq!(read_selected(&p).unwrap(), "never");
    }

    #[test]
    fn exclusive_lock_on_a_directory_serialises_holders() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let first = ExclusiveLock::acquire(dir.path()).unwrap();
        assert_eq!(first.path(), dir.path());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = dir.path().to_path_buf();
        let t = std::thread::spawn(move || {
            let second = ExclusiveLock::acquire(&p).unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        // The second holder cannot get the lock while the first holds it.
        assert!(rx.try_recv().is_err());
        drop(first);
        rx.recv().unwrap();
        t.join().unwrap();
    }

    #[test]
    fn missing_file_is_one_clear_error() {
        let err = set("/nonexistent/forkbench/knob", "always").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("/nonexistent/forkbench/knob: "), "{msg}");
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn same_value_writes_nothing_but_still_restores() {
        let _l = crate::TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let p = knob(dir.path());
        let g = set(&p, "never").unwrap();
        // Untouched file keeps its full choice text.
        assert_eq!(
            fs::read_to_string(&p).unwrap(),
            "always inherit madvise [never]\n"
        );
        g.restore().unwrap();
        assert_eq!(read_selected(&p).unwrap(), "never");
    }
}
