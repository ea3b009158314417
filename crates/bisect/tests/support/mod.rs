//! What the bisect integration tests share: a shell step that must succeed, a throwaway
//! repository's set-up, and the count of worktrees a bisection left.

use std::path::Path;
use std::process::Command;

/// Run `cmd` with `sh -c` in `dir`; it must succeed. Returns its trimmed stdout.
pub fn sh(dir: &Path, cmd: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git init` in `repo` (created), with a committer and no signing.
pub fn init_repo(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    sh(
        repo,
        "git init -q && git config user.email t@example.com && git config user.name t \
         && git config commit.gpgsign false",
    );
}

/// Worktrees of `repo` besides its own checkout.
pub fn worktrees_left(repo: &Path) -> usize {
    sh(repo, "git worktree list --porcelain")
        .lines()
        .filter(|l| l.starts_with("worktree "))
        .count()
        - 1
}
