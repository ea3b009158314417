//! An on-disk journal of the knobs [`crate::sysfs::SysfsGuard`] has switched, so a value left
//! behind by a process that died before restoring it (SIGKILL, OOM kill) is not taken for the
//! original by the next run.
//!
//! One small JSON file holds one [`Entry`] per switched knob: its path, the true original, the
//! value written and the owner (pid and start time, so a reused pid is not taken for the owner).
//! A guard adds its entry while it holds the knob's `flock` and before it writes the knob, and
//! removes it, under the same lock, once the original reads back. The file is replaced
//! atomically (`results::fsio`: temporary file, fsync, rename) while a lock file beside it is
//! held, and read with a size cap. The signal
//! handler cannot rewrite JSON: it restores the knob and leaves the entry, which the next guard
//! drops silently because the knob already holds the original.
//!
//! Where: `$FORKBENCH_KNOB_JOURNAL` if set; else `/run/forkbench/knobs.json` for root; else
//! `$XDG_RUNTIME_DIR/forkbench/knobs.json`; else `/tmp/forkbench-<uid>/knobs.json` (a directory
//! that must be this user's own).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use results::fsio::{self, FsError};
use serde::{Deserialize, Serialize};

use crate::HostError;
use crate::sysfs::read_selected;

/// Environment variable naming the journal file (tests, or a non-default location).
pub const JOURNAL_ENV: &str = "FORKBENCH_KNOB_JOURNAL";
/// A journal holds a handful of entries; anything larger is not one.
const MAX_JOURNAL_BYTES: u64 = 1 << 20;
const FORMAT_VERSION: u32 = 1;

/// One switched knob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The knob (canonical path when it could be resolved).
    pub path: PathBuf,
    /// Its selected value before the owner switched it: the value to put back.
    pub original: String,
    /// What the owner wrote.
    pub written: String,
    pub owner_pid: i32,
    /// The owner's start time (`/proc/<pid>/stat` field 22), so a reused pid is not the owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_start: Option<u64>,
}

impl Entry {
    /// Whether the process that wrote this entry still runs (a zombie does not).
    pub fn owner_alive(&self) -> bool {
        match process_start(self.owner_pid) {
            Some(start) => self.owner_start.is_none_or(|s| s == start),
            None => false,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct JournalFile {
    version: u32,
    entries: Vec<Entry>,
}

/// A knob that was found switched by a process that is gone, and has been put back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleKnob {
    pub path: PathBuf,
    /// What the knob read when it was found.
    pub found: String,
    /// The journalled original, now written back.
    pub original: String,
    /// What the dead owner had written.
    pub written: String,
    pub owner_pid: i32,
}

impl StaleKnob {
    /// One line saying what was found and done.
    pub fn message(&self) -> String {
        format!(
            "{} read {:?}, left by pid {} (which wrote {:?} and died before restoring it); restored the journalled original {:?}",
            self.path.display(),
            self.found,
            self.owner_pid,
            self.written,
            self.original
        )
    }

    /// Say so on stderr, once, as the runner's other messages do.
    pub fn announce(&self) {
        eprintln!("forkbench: {}", self.message());
    }
}

/// What the journal says about one knob, and what the knob reads now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub entry: Entry,
    pub owner_alive: bool,
    /// The knob's selected value now; `None` if it no longer exists.
    pub current: Option<String>,
}

impl Status {
    /// The owner is gone and the knob still differs from its journalled original.
    pub fn is_stale(&self) -> bool {
        !self.owner_alive
            && self
                .current
                .as_ref()
                .is_some_and(|c| *c != self.entry.original)
    }
}

/// The start time of a live process, or `None` if `pid` is gone or a zombie.
pub fn process_start(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `state` is field 3; starttime is field 22.
    fields.nth(18)?.parse().ok()
}

/// The journal file (see the module docs for where it lives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    path: PathBuf,
    /// The directory must be this user's own (it is in a world-writable place).
    private_dir: bool,
}

fn invalid(path: &Path, msg: impl Into<String>) -> HostError {
    HostError::io(path, io::Error::other(msg.into()))
}

/// A file error of the journal as one host error line: `path: what went wrong`.
fn fs_error(path: &Path, e: FsError) -> HostError {
    match e {
        FsError::Io { path, source } => HostError::io(path, source),
        FsError::NotRegular { .. } => invalid(path, "not a regular file"),
        other => invalid(path, other.to_string()),
    }
}

/// The journal's key for a knob: its canonical path, when it resolves.
fn key(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// This process's identity as an owner.
fn me() -> (i32, Option<u64>) {
    let pid = crate::sys::getpid();
    (pid, process_start(pid))
}

/// Put `entry`'s original back into its knob if it differs; call with the knob's `flock` held.
/// A knob that no longer exists needs nothing.
fn restore_entry(entry: &Entry) -> Result<Option<StaleKnob>, HostError> {
    let found = match read_selected(&entry.path) {
        Ok(v) => v,
        Err(HostError::Io { error, .. }) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    if found == entry.original {
        return Ok(None);
    }
    fs::write(&entry.path, &entry.original).map_err(|e| HostError::io(&entry.path, e))?;
    let now = read_selected(&entry.path)?;
    if now != entry.original {
        return Err(HostError::Mismatch {
            path: entry.path.clone(),
            wrote: entry.original.clone(),
            found: now,
        });
    }
    Ok(Some(StaleKnob {
        path: entry.path.clone(),
        found,
        original: entry.original.clone(),
        written: entry.written.clone(),
        owner_pid: entry.owner_pid,
    }))
}

/// The journal, read and locked for a change.
struct Locked<'j> {
    journal: &'j Journal,
    _lock: nix::fcntl::Flock<File>,
    entries: Vec<Entry>,
}

impl Locked<'_> {
    fn save(&self) -> Result<(), HostError> {
        let path = &self.journal.path;
        let mut body = serde_json::to_vec_pretty(&JournalFile {
            version: FORMAT_VERSION,
            entries: self.entries.clone(),
        })
        .map_err(|e| invalid(path, e.to_string()))?;
        body.push(b'\n');
        fsio::write_replace(path, &body).map_err(|e| fs_error(path, e))
    }
}

impl Journal {
    /// A journal at an explicit path.
    pub fn at(path: impl Into<PathBuf>) -> Journal {
        Journal {
            path: path.into(),
            private_dir: false,
        }
    }

    /// The journal every forkbench process of this user shares (see the module docs).
    pub fn default_location() -> Journal {
        if let Some(p) = std::env::var_os(JOURNAL_ENV).filter(|p| !p.is_empty()) {
            return Journal::at(p);
        }
        let uid = crate::geteuid();
        if uid == 0 {
            return Journal::at("/run/forkbench/knobs.json");
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Journal::at(PathBuf::from(d).join("forkbench").join("knobs.json"));
        }
        Journal {
            path: PathBuf::from(format!("/tmp/forkbench-{uid}/knobs.json")),
            private_dir: true,
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries now (none if the journal does not exist yet).
    pub fn entries(&self) -> Result<Vec<Entry>, HostError> {
        let text = match fsio::read_capped(&self.path, MAX_JOURNAL_BYTES) {
            Ok(t) => t,
            Err(FsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new());
            }
            Err(FsError::TooLarge { .. }) => {
                return Err(invalid(
                    &self.path,
                    format!("larger than {MAX_JOURNAL_BYTES} bytes, so not a knob journal"),
                ));
            }
            Err(e) => return Err(fs_error(&self.path, e)),
        };
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let file: JournalFile = serde_json::from_str(&text).map_err(|e| {
            invalid(
                &self.path,
                format!("not a knob journal ({e}); inspect it, put its knobs back and remove it"),
            )
        })?;
        if file.version != FORMAT_VERSION {
            return Err(invalid(
                &self.path,
                format!(
                    "knob journal version {} (this forkbench reads {FORMAT_VERSION})",
                    file.version
                ),
            ));
        }
        Ok(file.entries)
    }

    /// Each entry with its owner's liveness and what its knob reads now.
    pub fn status(&self) -> Result<Vec<Status>, HostError> {
        Ok(self
            .entries()?
            .into_iter()
            .map(|entry| Status {
                owner_alive: entry.owner_alive(),
                current: read_selected(&entry.path).ok(),
                entry,
            })
            .collect())
    }

    fn ensure_dir(&self) -> Result<(), HostError> {
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(if self.private_dir { 0o700 } else { 0o755 })
            .create(dir)
            .map_err(|e| HostError::io(dir, e))?;
        if self.private_dir {
            let meta = fs::symlink_metadata(dir).map_err(|e| HostError::io(dir, e))?;
            if !meta.is_dir() || meta.uid() != crate::geteuid() || meta.mode() & 0o022 != 0 {
                return Err(invalid(
                    dir,
                    "not a directory of this user's own that only it can write; refusing to keep the knob journal there",
                ));
            }
        }
        Ok(())
    }

    fn lock(&self) -> Result<Locked<'_>, HostError> {
        self.ensure_dir()?;
        let lock_path = with_suffix(&self.path, ".lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(|e| HostError::io(&lock_path, e))?;
        let lock = crate::sys::flock_exclusive(file).map_err(|e| HostError::io(&lock_path, e))?;
        let entries = self.entries()?;
        Ok(Locked {
            journal: self,
            _lock: lock,
            entries,
        })
    }

    /// Before switching `knob` (its `flock` held): restore what an earlier owner left switched
    /// and drop its entry. Returns the repair, if a value had to be put back.
    pub(crate) fn settle(&self, knob: &Path) -> Result<Option<StaleKnob>, HostError> {
        let key = key(knob);
        let mut j = self.lock()?;
        let Some(i) = j.entries.iter().position(|e| e.path == key) else {
            return Ok(None);
        };
        let repaired = restore_entry(&j.entries[i])?;
        j.entries.retain(|e| e.path != key);
        j.save()?;
        Ok(repaired)
    }

    /// Journal that this process switches `knob` from `original` to `written` (its `flock`
    /// held, before writing it).
    pub(crate) fn record(
        &self,
        knob: &Path,
        original: &str,
        written: &str,
    ) -> Result<(), HostError> {
        let key = key(knob);
        let (owner_pid, owner_start) = me();
        let mut j = self.lock()?;
        j.entries.retain(|e| e.path != key);
        j.entries.push(Entry {
            path: key,
            original: original.to_string(),
            written: written.to_string(),
            owner_pid,
            owner_start,
        });
        j.save()
    }

    /// Drop this process's entry for `knob` once its original reads back.
    pub(crate) fn forget(&self, knob: &Path) -> Result<(), HostError> {
        let key = key(knob);
        let (pid, _) = me();
        let mut j = self.lock()?;
        let before = j.entries.len();
        j.entries.retain(|e| !(e.path == key && e.owner_pid == pid));
        if j.entries.len() != before {
            j.save()?;
        }
        Ok(())
    }

    /// Restore every knob (under `under`, if given) whose entry's owner is gone, and drop those
    /// entries. A knob whose `flock` someone holds is in use and left alone. Returns what had to
    /// be put back.
    pub fn repair_stale(&self, under: Option<&Path>) -> Result<Vec<StaleKnob>, HostError> {
        let mut repaired = Vec::new();
        let candidates: Vec<Entry> = self
            .entries()?
            .into_iter()
            .filter(|e| under.is_none_or(|u| e.path.starts_with(u)) && !e.owner_alive())
            .collect();
        for entry in candidates {
            let knob_lock = match File::open(&entry.path) {
                Ok(f) => crate::sys::try_flock_exclusive(f)
                    .map_err(|e| HostError::io(&entry.path, e))?
                    .map(Some),
                // A knob that is gone leaves only its entry to drop.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Some(None),
                Err(e) => return Err(HostError::io(&entry.path, e)),
            };
            let Some(_knob_lock) = knob_lock else {
                continue;
            };
            let mut j = self.lock()?;
            let Some(i) = j.entries.iter().position(|e| *e == entry) else {
                continue;
            };
            if let Some(r) = restore_entry(&j.entries[i])? {
                repaired.push(r);
            }
            j.entries.remove(i);
            j.save()?;
        }
        Ok(repaired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knob(dir: &Path, value: &str) -> PathBuf {
        let p = dir.join("enabled");
        fs::write(&p, value).unwrap();
        p
    }

    /// The pid of a process that has exited and been reaped.
    /// Forked here rather than spawned: a guest has no `true` binary (nor any other).
    fn dead_pid() -> i32 {
        // SAFETY: the child calls only _exit, which is async-signal-safe.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: _exit takes no pointers and ends the child at once.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        let mut status = 0;
        // SAFETY: status is a valid, writable int; pid is our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        pid
    }

    #[test]
    fn process_start_tells_live_from_gone() {
        assert!(process_start(std::process::id() as i32).is_some());
        assert_eq!(process_start(0), None);
        assert_eq!(process_start(-1), None);
        let (pid, start) = me();
        let entry = Entry {
            path: "/x".into(),
            original: "never".into(),
            written: "always".into(),
            owner_pid: pid,
            owner_start: start,
        };
        assert!(entry.owner_alive());
        // Same pid, another start time: a reused pid is not the owner.
        let reused = Entry {
            owner_start: start.map(|s| s + 1),
            ..entry.clone()
        };
        assert!(!reused.owner_alive());
        let gone = Entry {
            owner_pid: dead_pid(),
            owner_start: Some(1),
            ..entry
        };
        assert!(!gone.owner_alive());
    }

    #[test]
    fn record_and_forget_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path().join("sub").join("knobs.json"));
        let k = knob(dir.path(), "always inherit madvise [never]\n");
        assert!(j.entries().unwrap().is_empty(), "missing journal is empty");
        j.record(&k, "never", "always").unwrap();
        let e = j.entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, fs::canonicalize(&k).unwrap());
        assert_eq!(
            (e[0].original.as_str(), e[0].written.as_str()),
            ("never", "always")
        );
        assert_eq!(e[0].owner_pid, std::process::id() as i32);
        assert!(e[0].owner_alive());
        j.forget(&k).unwrap();
        assert!(j.entries().unwrap().is_empty());
        let mut left: Vec<String> = fs::read_dir(j.path().parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["knobs.json", "knobs.json.lock"], "no temporary left");
    }

    #[test]
    fn a_dead_owners_switched_knob_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path().join("knobs.json"));
        let k = knob(dir.path(), "always");
        let mut l = j.lock().unwrap();
        l.entries.push(Entry {
            path: key(&k),
            original: "never".into(),
            written: "always".into(),
            owner_pid: dead_pid(),
            owner_start: Some(1),
        });
        l.save().unwrap();
        drop(l);
        let st = j.status().unwrap();
        assert!(st[0].is_stale(), "{st:?}");
        let r = j.repair_stale(Some(dir.path())).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].found, "always");
        assert_eq!(r[0].original, "never");
        assert!(
            r[0].message()
                .contains("restored the journalled original \"never\"")
        );
        assert!(!r[0].message().contains('\n'));
        assert_eq!(read_selected(&k).unwrap(), "never");
        assert!(j.entries().unwrap().is_empty());
    }

    #[test]
    fn a_live_owners_entry_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::at(dir.path().join("knobs.json"));
        let k = knob(dir.path(), "always");
        j.record(&k, "never", "always").unwrap();
        assert!(!j.status().unwrap()[0].is_stale());
        assert!(j.repair_stale(None).unwrap().is_empty());
        assert_eq!(read_selected(&k).unwrap(), "always");
        assert_eq!(j.entries().unwrap().len(), 1);
    }

    #[test]
    fn what_is_not_a_journal_is_one_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Journal::at(dir.path()).entries().unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
        let e = Journal::at("/dev/zero").entries().unwrap_err().to_string();
        assert!(e.ends_with("not a regular file"), "{e}");
        let big = dir.path().join("big.json");
        fs::write(&big, vec![b' '; MAX_JOURNAL_BYTES as usize + 1]).unwrap();
        let e = Journal::at(&big).entries().unwrap_err().to_string();
        assert!(e.contains("larger than"), "{e}");
        let bad = dir.path().join("bad.json");
        fs::write(&bad, "{not json").unwrap();
        let e = Journal::at(&bad).entries().unwrap_err().to_string();
        assert!(e.contains("not a knob journal"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
}
