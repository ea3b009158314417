//! The between-session noise file, `results/<machine>/noise/noise-<UTC>-<kernel>.json`: what
//! `cargo xtask noise` measured on one machine, kernel and tool revision, kept as every
//! session's summary per variant (runs, mean and sd of the run means), so the estimate is
//! recomputed on reading and can take in more sessions. A *session* is one result file: one
//! runner process per call, one stretch of the machine's life. What counts as a session of a
//! noise file ([`counts_as_session`]): a result file of the same machine, kernel (`uname -r`)
//! and tool (the same tool version, and git revisions whose code does not differ).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;
use results::{ResultFile, Variant};
use serde::{Deserialize, Serialize};
use stats::Summary;

use crate::util;

/// `kind` of a noise file.
pub const KIND: &str = "forkbench-noise";
/// The noise file's format version.
pub const SCHEMA: u32 = 1;

/// One machine's between-session noise, measured on one kernel by one tool revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseFile {
    pub kind: String,
    pub schema: u32,
    /// The result files' `machine`.
    pub machine: String,
    /// The sessions' CPU model (`env.cpu_model`): a machine name can outlive its hardware (a
    /// VM moved to another host), and a noise estimate holds for one CPU only. Empty in files
    /// written before it was recorded: those match any CPU.
    #[serde(default)]
    pub cpu_model: String,
    /// `uname -r` of the kernel every session ran on.
    pub kernel: String,
    /// The tool revision of the sessions `noise` ran (`-dirty` as in result files).
    pub git_rev: String,
    pub tool_version: String,
    /// When `noise` finished, RFC 3339.
    pub created_utc: String,
    /// The profile the sessions ran, and whether with `--quick`.
    pub profile: String,
    pub quick: bool,
    /// The pause between two sessions, seconds.
    pub gap_secs: u64,
    pub sessions: Vec<Session>,
    pub variants: Vec<VariantSessions>,
}

/// One session: a result file, made by `noise` or found beside the results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// `noise session 2 of 3`, or the result file's name.
    pub source: String,
    pub created_utc: String,
    pub seed: u64,
    pub git_rev: String,
    /// Its load check fired (the machine was busy): kept, as it only widens the estimate.
    pub busy: bool,
}

/// The sessions of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantSessions {
    pub variant: Variant,
    pub sessions: Vec<SessionMeans>,
}

/// One session's runs of a variant, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SessionMeans {
    /// Index into [`NoiseFile::sessions`].
    pub session: usize,
    pub runs: usize,
    /// Mean and sample sd of the run means, ns.
    pub mean_ns: f64,
    pub std_ns: f64,
}

impl SessionMeans {
    pub fn summary(&self) -> Summary {
        Summary {
            n: self.runs,
            mean: self.mean_ns,
            std: self.std_ns,
        }
    }
}

impl NoiseFile {
    /// Whether this estimate holds for a side measured on `cpu_model`.
    pub fn fits_cpu(&self, cpu_model: &str) -> bool {
        self.cpu_model.is_empty() || self.cpu_model == cpu_model
    }

    /// Read a noise file; one error line naming it when it is not one.
    pub fn load(path: &Path) -> anyhow::Result<NoiseFile> {
        let text = results::fsio::read(path)?;
        let f: NoiseFile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a forkbench noise file: {e}", path.display()))?;
        if f.kind != KIND || f.schema != SCHEMA {
            bail!(
                "{}: not a forkbench noise file of schema {SCHEMA} (kind '{}', schema {})",
                path.display(),
                f.kind,
                f.schema
            );
        }
        if let Some(bad) = f
            .variants
            .iter()
            .flat_map(|v| &v.sessions)
            .find(|s| s.session >= f.sessions.len())
        {
            bail!(
                "{}: a variant names session {} of {}",
                path.display(),
                bad.session,
                f.sessions.len()
            );
        }
        Ok(f)
    }

    /// Does the file list this session already (by creation time and seed)?
    pub fn has_session(&self, created_utc: &str, seed: u64) -> bool {
        self.sessions
            .iter()
            .any(|s| s.created_utc == created_utc && s.seed == seed)
    }
}

/// `results/<machine>/noise`.
pub fn dir(results_dir: &Path, machine: &str) -> PathBuf {
    results_dir
        .join(util::path_component(machine))
        .join("noise")
}

/// `noise-<YYYYMMDDTHHMMSSZ>-<kernel>.json`: not a result file's name, so result file
/// listings never take it for one.
pub fn file_name(stamp_compact: &str, kernel: &str) -> String {
    format!(
        "noise-{stamp_compact}-{}.json",
        util::path_component(kernel)
    )
}

/// Every noise file of `machine` under `results_dir`, newest name first; none when the
/// directory does not exist.
pub fn load_all(results_dir: &Path, machine: &str) -> anyhow::Result<Vec<(PathBuf, NoiseFile)>> {
    let d = dir(results_dir, machine);
    let Ok(rd) = std::fs::read_dir(&d) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("noise-") && n.ends_with(".json")
            })
        })
        .collect();
    paths.sort();
    paths.reverse();
    paths
        .into_iter()
        .map(|p| NoiseFile::load(&p).map(|f| (p, f)))
        .collect()
}

/// The run means of each variant of a result file, summarised: the file as one session.
pub fn session_summaries(f: &ResultFile) -> BTreeMap<Variant, Summary> {
    let mut means: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    for r in &f.runs {
        means
            .entry(r.variant.clone())
            .or_default()
            .push(r.mean_ns());
    }
    means
        .into_iter()
        .filter_map(|(v, xs)| Some((v, Summary::of(&xs)?)))
        .collect()
}

/// The kernel a result file's runs of `v` measured: the variant's own for real fork, the
/// host's for the model (it runs in userspace on the host).
pub fn kernel_of(f: &ResultFile, v: &Variant) -> Option<String> {
    match v {
        Variant::Real(r) => Some(r.kernel.clone()),
        Variant::Sim(_) => Some(f.env.kernel_release.clone()).filter(|k| !k.is_empty()),
    }
}

/// The load check of a result file: as stored, or (files written before it was) as `bench`
/// decides it from the runs' own load figures.
pub fn load_check(f: &ResultFile) -> results::LoadCheck {
    f.load_check
        .clone()
        .unwrap_or_else(|| crate::bench::load_check(&f.runs))
}

/// Whether two tool revisions are the same tool: the same version and the same git revision,
/// or two clean revisions whose trees differ only in `results/` and Markdown (committing a
/// result file moves HEAD, not the tool). A `-dirty` revision is only itself. Answers are
/// remembered: one `git diff` per pair.
#[derive(Debug, Default)]
pub struct Tools {
    root: PathBuf,
    known: HashMap<(String, String), bool>,
}

impl Tools {
    pub fn new(root: &Path) -> Tools {
        Tools {
            root: root.to_owned(),
            known: HashMap::new(),
        }
    }

    pub fn same(&mut self, (rev_a, ver_a): (&str, &str), (rev_b, ver_b): (&str, &str)) -> bool {
        if ver_a != ver_b {
            return false;
        }
        if rev_a == rev_b {
            return true;
        }
        let clean = |r: &str| !r.ends_with("-dirty") && !r.is_empty() && r != "unknown";
        if !clean(rev_a) || !clean(rev_b) {
            return false;
        }
        let key = (rev_a.min(rev_b).to_string(), rev_a.max(rev_b).to_string());
        if let Some(&k) = self.known.get(&key) {
            return k;
        }
        let same = Command::new("git")
            .current_dir(&self.root)
            .args(["diff", "--quiet", rev_a, rev_b, "--", "."])
            .args([":(exclude)results", ":(exclude)*.md"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        self.known.insert(key, same);
        same
    }
}

/// Is result file `f` a session of `noise`'s machine, kernel and tool (for variant `v`)?
pub fn counts_as_session(
    f: &ResultFile,
    v: &Variant,
    noise: &NoiseFile,
    tools: &mut Tools,
) -> bool {
    f.machine == noise.machine
        && noise.fits_cpu(f.env.cpu_model.as_deref().unwrap_or(""))
        && kernel_of(f, v).as_deref() == Some(noise.kernel.as_str())
        && tools.same(
            (&f.git_rev, &f.tool_version),
            (&noise.git_rev, &noise.tool_version),
        )
}

/// Gather sessions into a noise file's lists: each result file (with its name or `source`)
/// one session; variants in `keep` only (all when None), each variant's sessions in order.
pub fn gather(
    sessions: &[(String, &ResultFile)],
    keep: Option<&std::collections::BTreeSet<Variant>>,
) -> (Vec<Session>, Vec<VariantSessions>) {
    let mut list = Vec::new();
    let mut by_variant: BTreeMap<Variant, Vec<SessionMeans>> = BTreeMap::new();
    for (i, (source, f)) in sessions.iter().enumerate() {
        list.push(Session {
            source: source.clone(),
            created_utc: f.created_utc.clone(),
            seed: f.seed,
            git_rev: f.git_rev.clone(),
            busy: load_check(f).busy,
        });
        for (v, s) in session_summaries(f) {
            if keep.is_some_and(|k| !k.contains(&v)) {
                continue;
            }
            by_variant.entry(v).or_default().push(SessionMeans {
                session: i,
                runs: s.n,
                mean_ns: s.mean,
                std_ns: s.std,
            });
        }
    }
    let variants = by_variant
        .into_iter()
        .map(|(variant, sessions)| VariantSessions { variant, sessions })
        .collect();
    (list, variants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_files_are_not_result_files() {
        let n = file_name("20261205T010203Z", "6.18.44-fc-v1252");
        assert_eq!(n, "noise-20261205T010203Z-6.18.44-fc-v1252.json");
        assert!(!crate::select::is_result_name(&n));
    }

    #[test]
    fn a_bad_noise_file_is_one_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("noise-x.json");
        std::fs::write(&p, "{}").unwrap();
        let e = format!("{:#}", NoiseFile::load(&p).unwrap_err());
        assert!(e.contains("not a forkbench noise file"), "{e}");
        assert_eq!(e.lines().count(), 1);
        std::fs::write(
            &p,
            serde_json::json!({"kind": "other", "schema": 1, "machine": "m", "kernel": "k",
                "git_rev": "r", "tool_version": "0", "created_utc": "t", "profile": "p",
                "quick": false, "gap_secs": 0, "sessions": [], "variants": []})
            .to_string(),
        )
        .unwrap();
        let e = format!("{:#}", NoiseFile::load(&p).unwrap_err());
        assert!(e.contains("kind 'other'"), "{e}");
    }

    /// A commit of results or docs leaves the tool as it was; a commit of code does not.
    #[test]
    fn committing_results_keeps_the_tool() {
        let d = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let o = Command::new("git")
                .current_dir(d.path())
                .args([
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "-c",
                    "commit.gpgsign=false",
                ])
                .args(args)
                .output()
                .unwrap();
            assert!(o.status.success(), "git {args:?}: {o:?}");
            String::from_utf8(o.stdout).unwrap().trim().to_string()
        };
        let commit = |path: &str, text: &str| {
            let p = d.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            git(&["add", "-A"]);
            git(&["commit", "-q", "-m", path]);
            git(&["rev-parse", "HEAD"])
        };
        git(&["init", "-q"]);
        let code = commit("src/lib.rs", "fn a() {}");
        let results = commit("results/vm/20260101T000000Z-a.json", "{}");
        let docs = commit("docs/suite.md", "# suite");
        let changed = commit("src/lib.rs", "fn b() {}");
        let mut t = Tools::new(d.path());
        let v = "0.1.0";
        assert!(t.same((&code, v), (&results, v)));
        assert!(t.same((&docs, v), (&code, v)));
        assert!(!t.same((&code, v), (&changed, v)));
        assert!(!t.same((&results, v), (&changed, v)));
    }

    #[test]
    fn tools_are_the_same_by_version_and_code() {
        let mut t = Tools::new(&util::project_root());
        assert!(t.same(("a", "0.1.0"), ("a", "0.1.0")));
        assert!(!t.same(("a", "0.1.0"), ("a", "0.2.0")));
        assert!(!t.same(("a-dirty", "0.1.0"), ("b", "0.1.0")));
        // Revisions git does not know are not the same tool.
        assert!(!t.same(("0000000", "0.1.0"), ("1111111", "0.1.0")));
    }
}
