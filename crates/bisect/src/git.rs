//! Git plumbing for bisection: the revision list between good and bad, the dirty-tree check,
//! and detached worktrees in a scratch directory. The user's checkout, index and branch are
//! never touched.
//!
//! Worktrees are owned: each [`Worktrees`] session lives in its own directory under the
//! scratch root, named after its pid, and holds an exclusive `flock` on the lock file inside
//! it for its whole life. A new session sweeps only the directories whose lock it can take
//! (their owner is gone), so two bisections of one repository never remove each other's
//! worktrees. A session's worktrees are removed when it is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::search::Rev;

/// A git command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("git {args}: {msg}")]
    Failed { args: String, msg: String },
    #[error("{0} is not an ancestor of {1}: bisect needs good before bad on one line of history")]
    NotAncestor(String, String),
    #[error("the work tree of {0} has uncommitted changes; commit or stash them first")]
    Dirty(String),
}

/// Run git in `repo` and return its trimmed stdout.
pub fn git(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| GitError::Failed {
            args: args.join(" "),
            msg: e.to_string(),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(GitError::Failed {
            args: args.join(" "),
            msg: err.lines().next().unwrap_or("failed").to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Refuse a work tree with uncommitted changes to tracked files.
pub fn ensure_clean(repo: &Path) -> Result<(), GitError> {
    if git(repo, &["status", "--porcelain", "--untracked-files=no"])?.is_empty() {
        Ok(())
    } else {
        Err(GitError::Dirty(repo.display().to_string()))
    }
}

/// `[good, ..., bad]` along the first-parent ancestry path.
pub fn rev_range(repo: &Path, good: &str, bad: &str) -> Result<Vec<Rev>, GitError> {
    let g = git(
        repo,
        &["rev-parse", "--verify", &format!("{good}^{{commit}}")],
    )?;
    let b = git(
        repo,
        &["rev-parse", "--verify", &format!("{bad}^{{commit}}")],
    )?;
    let anc = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["merge-base", "--is-ancestor", &g, &b])
        .status()
        .map_err(|e| GitError::Failed {
            args: "merge-base".into(),
            msg: e.to_string(),
        })?;
    if !anc.success() || g == b {
        return Err(GitError::NotAncestor(good.into(), bad.into()));
    }
    let subject = |h: &str| git(repo, &["log", "-1", "--format=%s", h]);
    let mut revs = vec![Rev {
        hash: g.clone(),
        subject: subject(&g)?,
    }];
    let list = git(
        repo,
        &[
            "log",
            "--reverse",
            "--first-parent",
            "--ancestry-path",
            "--format=%H%x09%s",
            &format!("{g}..{b}"),
        ],
    )?;
    for line in list.lines() {
        let (hash, subj) = line.split_once('\t').unwrap_or((line, ""));
        revs.push(Rev {
            hash: hash.to_string(),
            subject: subj.to_string(),
        });
    }
    Ok(revs)
}

/// The lock file inside each session directory.
const LOCK_FILE: &str = ".lock";
/// Prefix of a session directory still being set up (renamed once its lock is held).
const STAGING_PREFIX: &str = ".new-";
/// Sessions made by this process so far, for unique names.
static SESSIONS: AtomicU64 = AtomicU64::new(0);

fn fs_failed(what: &str, path: &Path, e: impl std::fmt::Display) -> GitError {
    GitError::Failed {
        args: what.into(),
        msg: format!("{}: {e}", path.display()),
    }
}

/// An exclusive lock on `path` if nobody holds one; `Ok(None)` while another holder lives.
fn try_lock(path: &Path) -> std::io::Result<Option<Flock<File>>> {
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

/// Whether process `pid` exists (a staging directory's owner).
fn process_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) != Err(Errno::ESRCH)
}

/// Remove the worktrees in `dir` (and `dir`), unregistering them from `repo`.
fn remove_session_dir(repo: &Path, dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().join(".git").exists() {
                let _ = git(
                    repo,
                    &["worktree", "remove", "--force", &e.path().to_string_lossy()],
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Remove what dead sessions left under `root`: session directories whose lock is free,
/// staging directories whose process is gone, and worktrees placed directly under the root
/// by versions before sessions. Live sessions' directories are left alone.
fn sweep_stale(repo: &Path, root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix(STAGING_PREFIX) {
            // Set up in a moment by a live process: never touched while it lives.
            let pid = rest.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| !process_alive(p)) {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if path.join(LOCK_FILE).is_file() {
            // Holding the dead owner's lock while removing keeps a second sweeper out.
            if let Ok(Some(_lock)) = try_lock(&path.join(LOCK_FILE)) {
                remove_session_dir(repo, &path);
            }
        } else if path.join(".git").exists() {
            let _ = git(
                repo,
                &["worktree", "remove", "--force", &path.to_string_lossy()],
            );
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// This process's detached worktrees of one repository, in a session directory of their own
/// under the scratch root; removed on drop.
pub struct Worktrees {
    repo: PathBuf,
    root: PathBuf,
    session: PathBuf,
    made: Vec<PathBuf>,
    closed: bool,
    /// Held for the session's whole life: a sweeper that can take it knows we are gone.
    _lock: Flock<File>,
}

impl Worktrees {
    /// A new session of worktrees of `repo` under `root`, after removing what dead sessions
    /// left there.
    pub fn new(repo: &Path, root: &Path) -> Result<Worktrees, GitError> {
        sweep_stale(repo, root);
        let _ = git(repo, &["worktree", "prune"]);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{nanos:08x}-{}",
            std::process::id(),
            SESSIONS.fetch_add(1, Ordering::Relaxed)
        );
        let staging = root.join(format!("{STAGING_PREFIX}{name}"));
        // The directory is visible under its final name only once its lock is held, so a
        // sweeper never sees a live session without a held lock. Another session's drop may
        // remove the empty root between the two calls: try again.
        let mut made = Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        for _ in 0..5 {
            made = std::fs::create_dir_all(root).and_then(|()| std::fs::create_dir(&staging));
            if !matches!(&made, Err(e) if e.kind() == std::io::ErrorKind::NotFound) {
                break;
            }
        }
        made.map_err(|e| fs_failed("mkdir", &staging, e))?;
        let lock = match try_lock(&staging.join(LOCK_FILE)) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(fs_failed("flock", &staging, "locked by another process"));
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(fs_failed("flock", &staging, e));
            }
        };
        let session = root.join(&name);
        if let Err(e) = std::fs::rename(&staging, &session) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(fs_failed("rename", &staging, e));
        }
        Ok(Worktrees {
            repo: repo.to_path_buf(),
            root: root.to_path_buf(),
            session,
            made: Vec::new(),
            closed: false,
            _lock: lock,
        })
    }

    /// This session's directory (its worktrees and its lock file are inside).
    pub fn session_dir(&self) -> &Path {
        &self.session
    }

    /// A worktree at `rev` (created once per revision).
    pub fn checkout(&mut self, rev: &Rev) -> Result<PathBuf, GitError> {
        self.ensure_open()?;
        let dir = self.session.join(&rev.hash[..rev.hash.len().min(12)]);
        if !self.made.contains(&dir) {
            self.add_worktree(&dir, rev)?;
        }
        Ok(dir)
    }

    /// One worktree named `slot`, moved to `rev` on every call (`git checkout --detach
    /// --force`): files that differ get new mtimes and untracked build products stay, so an
    /// incremental build (`make`, ccache) rebuilds only what the revision changed.
    pub fn checkout_moving(&mut self, slot: &str, rev: &Rev) -> Result<PathBuf, GitError> {
        self.ensure_open()?;
        let dir = self.session.join(slot);
        if self.made.contains(&dir) {
            git(
                &dir,
                &["checkout", "--quiet", "--detach", "--force", &rev.hash],
            )?;
        } else {
            self.add_worktree(&dir, rev)?;
        }
        Ok(dir)
    }

    fn ensure_open(&self) -> Result<(), GitError> {
        if self.closed {
            return Err(GitError::Failed {
                args: "worktree add".into(),
                msg: "the worktree session was already removed".into(),
            });
        }
        Ok(())
    }

    /// `git worktree add --detach --force DIR REV`, remembered for [`Self::remove_all`].
    fn add_worktree(&mut self, dir: &Path, rev: &Rev) -> Result<(), GitError> {
        git(
            &self.repo,
            &[
                "worktree",
                "add",
                "--detach",
                "--force",
                &dir.to_string_lossy(),
                &rev.hash,
            ],
        )?;
        self.made.push(dir.to_path_buf());
        Ok(())
    }

    /// Remove every worktree made so far and the session directory (the lock stays held
    /// until drop, so no sweeper races the removal).
    pub fn remove_all(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for d in self.made.drain(..) {
            let _ = git(
                &self.repo,
                &["worktree", "remove", "--force", &d.to_string_lossy()],
            );
        }
        let _ = std::fs::remove_dir_all(&self.session);
        let _ = git(&self.repo, &["worktree", "prune"]);
        // Only when empty: other sessions may live here.
        let _ = std::fs::remove_dir(&self.root);
    }
}

impl Drop for Worktrees {
    fn drop(&mut self) {
        self.remove_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, cmd: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A throwaway repository of two commits; returns its path and the second's hash.
    fn repo(root: &Path) -> (PathBuf, Rev) {
        let repo = root.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        sh(
            &repo,
            "git init -q && git config user.email t@example.com && git config user.name t \
             && git config commit.gpgsign false && echo 1 > f && git add f \
             && git commit -q -m one && echo 2 > f && git commit -qam two",
        );
        let hash = sh(&repo, "git rev-parse HEAD");
        let subject = "two".into();
        (repo, Rev { hash, subject })
    }

    fn registered(repo: &Path) -> usize {
        sh(repo, "git worktree list --porcelain")
            .lines()
            .filter(|l| l.starts_with("worktree "))
            .count()
            - 1
    }

    #[test]
    fn a_second_session_leaves_the_first_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, rev) = repo(tmp.path());
        let root = tmp.path().join("worktrees");
        let mut first = Worktrees::new(&repo, &root).unwrap();
        let first_tree = first.checkout(&rev).unwrap();
        let mut second = Worktrees::new(&repo, &root).unwrap();
        assert_ne!(first.session_dir(), second.session_dir());
        assert!(
            first_tree.join("f").is_file(),
            "the live session's worktree was swept"
        );
        let second_tree = second.checkout(&rev).unwrap();
        assert_eq!(registered(&repo), 2);
        drop(second);
        assert!(!second_tree.exists());
        assert_eq!(
            std::fs::read_to_string(first_tree.join("f")).unwrap(),
            "2\n"
        );
        drop(first);
        assert_eq!(registered(&repo), 0);
        assert!(
            !root.exists(),
            "the empty root is removed with the last session"
        );
    }

    #[test]
    fn a_moving_worktree_follows_the_revision_and_keeps_untracked_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, two) = repo(tmp.path());
        let one = Rev {
            hash: sh(&repo, "git rev-parse HEAD~1"),
            subject: "one".into(),
        };
        let root = tmp.path().join("worktrees");
        let mut w = Worktrees::new(&repo, &root).unwrap();
        let a = w.checkout_moving("build", &one).unwrap();
        assert_eq!(std::fs::read_to_string(a.join("f")).unwrap(), "1\n");
        std::fs::write(a.join("built.o"), b"object").unwrap();
        let b = w.checkout_moving("build", &two).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "2\n");
        assert!(b.join("built.o").is_file(), "build products survive a move");
        assert_eq!(registered(&repo), 1);
        drop(w);
        assert_eq!(registered(&repo), 0);
        assert!(!b.exists());
    }

    #[test]
    fn dead_sessions_and_old_layouts_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let (repo, rev) = repo(tmp.path());
        let root = tmp.path().join("worktrees");
        // A session whose owner is gone: its directory and lock file stay, the lock does not.
        let dead = root.join("1-dead-0");
        std::fs::create_dir_all(&dead).unwrap();
        File::create(dead.join(LOCK_FILE)).unwrap();
        let tree = dead.join("abc");
        git(
            &repo,
            &[
                "worktree",
                "add",
                "--detach",
                &tree.to_string_lossy(),
                &rev.hash,
            ],
        )
        .unwrap();
        // A worktree placed directly under the root, as before sessions.
        let old = root.join("0123456789ab");
        git(
            &repo,
            &[
                "worktree",
                "add",
                "--detach",
                &old.to_string_lossy(),
                &rev.hash,
            ],
        )
        .unwrap();
        // A live owner's lock is respected even without a Worktrees in this process.
        let held = root.join("2-held-0");
        std::fs::create_dir_all(&held).unwrap();
        let _held_lock = try_lock(&held.join(LOCK_FILE)).unwrap().unwrap();
        assert_eq!(registered(&repo), 2);
        let w = Worktrees::new(&repo, &root).unwrap();
        assert!(!dead.exists() && !old.exists());
        assert!(held.join(LOCK_FILE).exists());
        assert_eq!(registered(&repo), 0);
        drop(w);
        assert!(held.exists());
    }
}
