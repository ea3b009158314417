//! Small helpers for xtask: project root, building the runner, the target directory, the git
//! revision and the default label. Host facts come from `hostenv::host`.

use std::path::PathBuf;
use std::process::Command;

/// The workspace root (parent of this crate's manifest directory).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `cargo build --release -p forkbench`, returning the binary's path; cargo's current step
/// shows while it builds ([`crate::build`]).
pub fn build_runner() -> anyhow::Result<PathBuf> {
    crate::build::release_runner(&project_root(), &target_dir())
}

/// The cargo target directory (`CARGO_TARGET_DIR` or `<root>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
}

/// Default label: the kernel release as a path component (see [`path_component`]); `host`
/// when it cannot be read.
pub fn default_label() -> String {
    match hostenv::host::kernel_release().as_str() {
        "unknown" | "" => "host".into(),
        rel => path_component(rel),
    }
}

/// `git rev-parse HEAD`, with `-dirty` if the tree has changes; `unknown` outside git.
pub fn git_rev() -> String {
    let root = project_root();
    let rev = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(rev) = rev else {
        return "unknown".into();
    };
    let dirty = Command::new("git")
        .current_dir(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty { format!("{rev}-dirty") } else { rev }
}

/// `path` relative to the workspace root when it lies under it (as a user would type it),
/// else as given.
pub fn relative_to_root(path: &std::path::Path) -> String {
    let root = project_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A Markdown table of `rows` (the first is the header): columns as wide as their widest cell
/// (in characters), left-aligned where `left(column)`, else right-aligned.
pub fn markdown_table(rows: &[Vec<String>], left: impl Fn(usize) -> bool) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut w = vec![0usize; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut s = String::new();
    for (k, r) in rows.iter().enumerate() {
        s.push('|');
        for (i, c) in r.iter().enumerate() {
            let fill = " ".repeat(w[i] - c.chars().count());
            if left(i) {
                s.push_str(&format!(" {c}{fill} |"));
            } else {
                s.push_str(&format!(" {fill}{c} |"));
            }
        }
        s.push('\n');
        if k == 0 {
            s.push('|');
            for (i, wd) in w.iter().enumerate() {
                let dashes = "-".repeat(wd + 1);
                if left(i) {
                    s.push_str(&format!(":{dashes}|"));
                } else {
                    s.push_str(&format!("{dashes}:|"));
                }
            }
            s.push('\n');
        }
    }
    s
}

/// The one way a name from outside (a machine or label from a profile, a host name, a result
/// file's `machine` field) becomes a path component: characters outside `[A-Za-z0-9._+-]`
/// become `_`, leading dots are dropped (no `..`, no hidden files), at most 64 characters, and
/// an empty result is `unnamed`. A name never climbs out of the directory it is joined to.
pub fn path_component(name: &str) -> String {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s: String = mapped.trim_start_matches('.').chars().take(64).collect();
    if s.is_empty() { "unnamed".into() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_leave_their_directory() {
        for bad in [
            "../../x",
            "/etc/passwd",
            "..",
            ".",
            "",
            "a/../../b",
            "x\0y",
            ".hidden",
        ] {
            let c = path_component(bad);
            assert!(
                !c.contains('/') && !c.starts_with('.') && !c.is_empty(),
                "{bad:?} -> {c}"
            );
            let joined = std::path::Path::new("/r").join(&c);
            assert_eq!(joined.parent(), Some(std::path::Path::new("/r")), "{bad:?}");
        }
        assert_eq!(path_component("vm"), "vm");
        assert_eq!(path_component("6.18.0+"), "6.18.0+");
        assert_eq!(path_component("../../x"), "_.._x");
        assert_eq!(path_component(&"a".repeat(100)).len(), 64);
        // The default label is the kernel release in the same characters.
        let label = default_label();
        assert_eq!(label, path_component(&label));
    }
}
