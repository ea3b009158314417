//! Git plumbing for bisection: the revision list between good and bad, the dirty-tree check,
//! and detached worktrees in a scratch directory. The user's checkout, index and branch are
//! never touched; worktrees are removed when [`Worktrees`] is dropped (and stale ones from an
//! interrupted run are removed before a new one starts).

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Detached worktrees under `root`, removed on drop.
pub struct Worktrees {
    repo: PathBuf,
    root: PathBuf,
    made: Vec<PathBuf>,
}

impl Worktrees {
    /// Worktrees of `repo` under `root` (stale ones from an interrupted run are removed).
    pub fn new(repo: &Path, root: &Path) -> Result<Worktrees, GitError> {
        let w = Worktrees {
            repo: repo.to_path_buf(),
            root: root.to_path_buf(),
            made: Vec::new(),
        };
        if root.exists() {
            if let Ok(entries) = std::fs::read_dir(root) {
                for e in entries.flatten() {
                    let _ = git(
                        repo,
                        &["worktree", "remove", "--force", &e.path().to_string_lossy()],
                    );
                }
            }
            let _ = std::fs::remove_dir_all(root);
        }
        let _ = git(repo, &["worktree", "prune"]);
        std::fs::create_dir_all(root).map_err(|e| GitError::Failed {
            args: "mkdir".into(),
            msg: format!("{}: {e}", root.display()),
        })?;
        Ok(w)
    }

    /// A worktree at `rev` (created once per revision).
    pub fn checkout(&mut self, rev: &Rev) -> Result<PathBuf, GitError> {
        let dir = self.root.join(&rev.hash[..rev.hash.len().min(12)]);
        if !self.made.contains(&dir) {
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
            self.made.push(dir.clone());
        }
        Ok(dir)
    }

    /// Remove every worktree made so far.
    pub fn remove_all(&mut self) {
        for d in self.made.drain(..) {
            let _ = git(
                &self.repo,
                &["worktree", "remove", "--force", &d.to_string_lossy()],
            );
            let _ = std::fs::remove_dir_all(&d);
        }
        let _ = git(&self.repo, &["worktree", "prune"]);
        let _ = std::fs::remove_dir(&self.root);
    }
}

impl Drop for Worktrees {
    fn drop(&mut self) {
        self.remove_all();
    }
}
