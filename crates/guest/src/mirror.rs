//! The Debian archive this host already uses, read from its own apt sources: deb822 files
//! under `/etc/apt/sources.list.d/*.sources`, else the one-line entries of
//! `/etc/apt/sources.list` (and `sources.list.d/*.list`). Kernel packages and kernel sources are
//! fetched from that archive, so a user behind a proxy or a local mirror gets theirs; forkbench
//! names no archive host of its own anywhere.
//!
//! The Debian archive is the entry that serves a Debian suite (a codename or `stable`,
//! `testing`, ... with or without `-updates`/`-backports`, never `-security`) with component
//! `main`; third-party entries (a vendor's SDK, a language runtime) serve their own suites and
//! are passed over.

use std::path::{Path, PathBuf};

/// Where apt keeps its sources on a Debian host.
pub const APT_ETC: &str = "/etc/apt";

/// Debian's codenames and aliases, newest last (an entry serving one of these is Debian's).
const DEBIAN_SUITES: &[&str] = &[
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
];

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "no Debian archive in this host's apt sources ({dir}/sources.list.d/*.sources, \
         {dir}/sources.list): add the mirror you use there, or pass --mirror URL"
    )]
    NotFound { dir: PathBuf },
}

/// One apt source: its URIs and suites, and whether it carries `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    uris: Vec<String>,
    suites: Vec<String>,
    main: bool,
}

impl Source {
    fn is_debian_archive(&self) -> bool {
        self.main
            && self.suites.iter().any(|s| {
                let base = s
                    .strip_suffix("-updates")
                    .or_else(|| s.strip_suffix("-backports"))
                    .unwrap_or(s);
                DEBIAN_SUITES.contains(&base)
            })
            && !self.suites.iter().any(|s| s.ends_with("-security"))
    }
}

/// Parse deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`, blank-line separated).
/// Only `deb` stanzas that are not `Enabled: no` count.
fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut types = Vec::new();
        let mut uris = Vec::new();
        let mut suites = Vec::new();
        let mut components = Vec::new();
        let mut enabled = true;
        for line in stanza.lines() {
            let line = line.trim_end();
            if line.trim_start().starts_with('#') || line.starts_with(char::is_whitespace) {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let words = || {
                value
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types = words(),
                "uris" => uris = words(),
                "suites" => suites = words(),
                "components" => components = words(),
                "enabled" => enabled = !value.trim().eq_ignore_ascii_case("no"),
                _ => {}
            }
        }
        if enabled && types.iter().any(|t| t == "deb") && !uris.is_empty() {
            out.push(Source {
                uris,
                suites,
                main: components.iter().any(|c| c == "main"),
            });
        }
    }
    out
}

/// Parse one-line entries: `deb [options] URI suite component...`.
fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        // Options in brackets may hold spaces: skip to the closing bracket.
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').map_or("", |(_, after)| after),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(Source {
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
            main: words.any(|c| c == "main"),
        });
    }
    out
}

/// Files in `dir` ending in `ext`, sorted by name (apt's order).
fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The Debian archive URI of the apt configuration under `etc` (normally [`APT_ETC`]), without a
/// trailing slash: deb822 sources first, then `sources.list` and `*.list` files.
pub fn debian_mirror_in(etc: &Path) -> Result<String, MirrorError> {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let parts = etc.join("sources.list.d");
    let deb822 = files_with(&parts, "sources")
        .into_iter()
        .flat_map(|p| parse_deb822(&read(&p)));
    let one_line = std::iter::once(etc.join("sources.list"))
        .chain(files_with(&parts, "list"))
        .flat_map(|p| parse_one_line(&read(&p)));
    deb822
        .chain(one_line)
        .find(Source::is_debian_archive)
        .and_then(|s| s.uris.into_iter().next())
        .map(|u| u.trim_end_matches('/').to_string())
        .ok_or_else(|| MirrorError::NotFound {
            dir: etc.to_owned(),
        })
}

/// The Debian archive this host uses: `$FORKBENCH_DEBIAN_MIRROR` when set (a host that is not
/// Debian, or a mirror apt does not know), else [`debian_mirror_in`] of [`APT_ETC`].
pub fn debian_mirror() -> Result<String, MirrorError> {
    match std::env::var("FORKBENCH_DEBIAN_MIRROR") {
        Ok(m) if !m.trim().is_empty() => Ok(m.trim().trim_end_matches('/').to_string()),
        _ => debian_mirror_in(Path::new(APT_ETC)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sources.list.d")).unwrap();
        for (name, text) in files {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    const VENDOR: &str = "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\n\
                          Components: main\n";

    #[test]
    fn deb822_debian_entry_wins_over_vendor_and_security_entries() {
        let d = etc(&[
            ("sources.list.d/00vendor.sources", VENDOR),
            (
                "sources.list.d/debian.sources",
                "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\n\
                 Suites: bookworm bookworm-updates\nComponents: main\n\n\
                 Types: deb\nURIs: http://mirror.example/debian-security\n\
                 Suites: bookworm-security\nComponents: main\n",
            ),
        ]);
        assert_eq!(
            debian_mirror_in(d.path()).unwrap(),
            "http://mirror.example/debian"
        );
    }

    #[test]
    fn security_only_and_disabled_stanzas_are_not_the_archive() {
        let d = etc(&[(
            "sources.list.d/debian.sources",
            "Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\n\
             Components: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example/debian\n\
             Suites: trixie\nComponents: main\n\nTypes: deb-src\nURIs: http://src.example/d\n\
             Suites: trixie\nComponents: main\n",
        )]);
        assert!(matches!(
            debian_mirror_in(d.path()),
            Err(MirrorError::NotFound { .. })
        ));
    }

    #[test]
    fn one_line_sources_are_read_when_no_deb822_entry_matches() {
        let d = etc(&[
            ("sources.list.d/vendor.sources", VENDOR),
            (
                "sources.list",
                "# deb http://old.example/debian buster main\n\
                 deb [arch=amd64 signed-by=/k.gpg] http://local.example/debian stable main contrib\n",
            ),
        ]);
        assert_eq!(
            debian_mirror_in(d.path()).unwrap(),
            "http://local.example/debian"
        );
    }

    #[test]
    fn backports_and_codename_aliases_count_and_components_matter() {
        let d = etc(&[(
            "sources.list",
            "deb http://c.example/debian bookworm contrib\n\
             deb http://b.example/debian bookworm-backports main\n",
        )]);
        assert_eq!(
            debian_mirror_in(d.path()).unwrap(),
            "http://b.example/debian"
        );
    }

    #[test]
    fn no_sources_at_all_names_where_it_looked() {
        let d = tempfile::tempdir().unwrap();
        let e = debian_mirror_in(d.path()).unwrap_err().to_string();
        assert!(e.contains("sources.list.d/*.sources"), "{e}");
        assert!(e.contains("--mirror"), "{e}");
    }
}
