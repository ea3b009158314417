//! Building the release runner with a sign of life: `cargo build --release -p forkbench` with
//! its stderr read line by line, so the minute it may take shows cargo's current step (a
//! spinner on a terminal, one plain line per step otherwise) instead of silence. Cargo writes
//! plain `Compiling x v…` lines (no progress bar) when its stderr is a pipe; a failed build's
//! own output is printed as cargo wrote it.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// One line of cargo's stderr, as the spinner shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `Compiling forkbench v0.1.0 (/path)` → `forkbench`.
    Compiling(String),
    /// Another progress verb with its crate: `Checking`, `Downloaded`, `Locking`, ...
    Other(String, String),
    /// `Finished release [optimized] target(s) in 1m 02s` → the text after `Finished`.
    Finished(String),
    /// Anything else (warnings, errors, their context lines).
    Text,
}

/// Parse one line of cargo's stderr (`--color never`).
pub fn parse_line(line: &str) -> Step {
    let t = line.trim_start();
    let Some((verb, rest)) = t.split_once(char::is_whitespace) else {
        return Step::Text;
    };
    // Cargo's status lines are a right-aligned capitalised verb; a message is `error: ...`.
    let is_verb = verb.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && verb.chars().all(|c| c.is_ascii_alphabetic())
        && line.starts_with(' ');
    if !is_verb {
        return Step::Text;
    }
    let rest = rest.trim();
    let krate = rest.split_whitespace().next().unwrap_or("").to_string();
    match verb {
        "Compiling" => Step::Compiling(krate),
        "Finished" => Step::Finished(rest.to_string()),
        _ => Step::Other(verb.to_string(), krate),
    }
}

/// What the spinner (or a plain line) says for a step; `None` for lines it does not show.
pub fn step_text(step: &Step) -> Option<String> {
    match step {
        Step::Compiling(k) => Some(format!("compiling {k}")),
        Step::Other(v, k) => Some(format!("{} {k}", v.to_lowercase())),
        Step::Finished(rest) => Some(format!("finished {rest}")),
        Step::Text => None,
    }
}

/// `cargo build --release -p forkbench --bin forkbench` in `root`, returning the binary's path.
pub fn release_runner(root: &Path, target_dir: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--color",
            "never",
            "-p",
            "forkbench",
            "--bin",
            "forkbench",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo build")?;
    let stderr = child.stderr.take().context("cargo's stderr")?;
    let spinner = std::io::stderr().is_terminal().then(|| {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} building the release runner: {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s.set_message("starting cargo");
        s
    });
    if spinner.is_none() {
        eprintln!("building the release runner ...");
    }
    let mut kept: Vec<String> = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        let step = parse_line(&line);
        match (&spinner, step_text(&step)) {
            (Some(s), Some(t)) => s.set_message(t),
            (None, Some(t)) => eprintln!("  {t}"),
            (_, None) => {}
        }
        kept.push(line);
    }
    let status = child.wait().context("waiting for cargo build")?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if !status.success() {
        // The compiler's messages, as cargo wrote them.
        for l in kept.iter().filter(|l| parse_line(l) == Step::Text) {
            eprintln!("{l}");
        }
        bail!("cargo build --release -p forkbench failed ({status})");
    }
    Ok(target_dir.join("release").join("forkbench"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cargo's stderr of a release build, as a pipe gets it.
    #[test]
    fn cargo_lines_become_steps() {
        let text = [
            "   Compiling libc v0.2.177",
            "   Compiling contract v0.1.0 (/work/i15-ux/crates/contract)",
            "    Checking stats v0.1.0 (/work/i15-ux/crates/stats)",
            "warning: unused variable: `x`",
            "  --> crates/realfork/src/lib.rs:3:9",
            "   |",
            "error[E0425]: cannot find value `y` in this scope",
            "    Finished `release` profile [optimized + debuginfo] target(s) in 1m 02s",
        ]
        .join("\n");
        let steps: Vec<Step> = text.lines().map(parse_line).collect();
        assert_eq!(
            steps,
            vec![
                Step::Compiling("libc".into()),
                Step::Compiling("contract".into()),
                Step::Other("Checking".into(), "stats".into()),
                Step::Text,
                Step::Text,
                Step::Text,
                Step::Text,
                Step::Finished(
                    "`release` profile [optimized + debuginfo] target(s) in 1m 02s".into()
                ),
            ]
        );
        let shown: Vec<String> = steps.iter().filter_map(step_text).collect();
        assert_eq!(
            shown,
            [
                "compiling libc",
                "compiling contract",
                "checking stats",
                "finished `release` profile [optimized + debuginfo] target(s) in 1m 02s"
            ]
        );
        // A message is never a step, even when it starts with a capital.
        assert_eq!(parse_line("Compiling failed"), Step::Text);
        assert_eq!(parse_line(""), Step::Text);
    }
}
