//! The on-disk schema of forkbench measurements: one [`RunRecord`] per measured run (what the
//! `forkbench` binary prints with `--json`) and one [`ResultFile`] per suite invocation (what
//! `cargo xtask bench` writes under `results/`). Saving is atomic (temp file + link) and never
//! overwrites an existing file. This crate measures nothing and computes no statistics.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub mod fsio;

use serde::{Deserialize, Serialize};

/// Version of the JSON schema written by this crate; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Errors from loading or saving result files.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a forkbench result file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: schema version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    Schema { path: PathBuf, found: u32 },
    #[error("{path}: refusing to overwrite an existing result file")]
    Exists { path: PathBuf },
}

/// Which instrument produced a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Instrument {
    /// The userspace model of the kernel's fork-copy path.
    Sim,
    /// The real `fork()` on the host kernel.
    Real,
}

/// What was measured: one cell of a results table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
pub struct Variant {
    pub instrument: Instrument,
    /// `x86_64`, `arm64`, … (for `real`, the host arch).
    pub arch: String,
    /// Strategy name for the model (`mm-unstable`, `upstream`, …); kernel label for `real`.
    pub strategy: String,
    /// Layout: `order0`, `order9`, … for the model; `order0`, `pte-order9`, … for real fork.
    pub layout: String,
    /// Bytes of populated memory.
    pub mem_bytes: u64,
    /// `fresh` or `steady`.
    pub mode: String,
    /// Engine options that change behaviour (e.g. `contpte-ena`); empty when none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
}

impl Variant {
    /// A short, stable identifier, e.g. `sim:x86_64:upstream:order9`.
    pub fn id(&self) -> String {
        let inst = match self.instrument {
            Instrument::Sim => "sim",
            Instrument::Real => "real",
        };
        let mut id = format!("{inst}:{}:{}:{}", self.arch, self.strategy, self.layout);
        if !self.options.is_empty() {
            id.push(':');
            id.push_str(&self.options);
        }
        id
    }
}

/// One measured run: `iterations` timed forks after `warmup` untimed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub tool_version: String,
    pub variant: Variant,
    /// Index of this run within its variant (0-based).
    pub run_index: u32,
    pub warmup: u32,
    /// One sample per timed iteration, nanoseconds.
    pub samples_ns: Vec<u64>,
    /// Operation counts of one fork, by counter name (model only; deterministic).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ops: BTreeMap<String, u64>,
    /// CPU the run was pinned to, if any.
    #[serde(default)]
    pub cpu: Option<usize>,
    /// Instrument-specific details (layout report, counters, environment notes).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

impl RunRecord {
    /// Mean of the samples in nanoseconds (NaN when there are none).
    pub fn mean_ns(&self) -> f64 {
        if self.samples_ns.is_empty() {
            return f64::NAN;
        }
        self.samples_ns.iter().map(|&s| s as f64).sum::<f64>() / self.samples_ns.len() as f64
    }
}

/// One suite invocation: every run of every variant, plus how and where they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    pub schema: u32,
    pub tool_version: String,
    /// Machine name (profile name or host name).
    pub machine: String,
    /// User label for this run (e.g. a kernel name).
    pub label: String,
    /// UTC timestamp, RFC 3339.
    pub created_utc: String,
    /// `git rev-parse HEAD` of the workspace, with `-dirty` when the tree had changes.
    pub git_rev: String,
    /// Seed of the randomised run order.
    pub seed: u64,
    /// The configuration that produced the runs.
    pub config: serde_json::Value,
    /// Environment capture (kernel, CPU model, governor, THP settings, …).
    pub env: serde_json::Value,
    /// Runs in the order they were executed.
    pub runs: Vec<RunRecord>,
}

impl ResultFile {
    /// Read and validate a result file.
    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let text = fs::read_to_string(path).map_err(|source| ResultsError::Io {
            path: path.to_owned(),
            source,
        })?;
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ResultsError::Parse {
                path: path.to_owned(),
                source,
            })?;
        let found = probe.get("schema").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        if found != SCHEMA_VERSION {
            return Err(ResultsError::Schema {
                path: path.to_owned(),
                found,
            });
        }
        serde_json::from_value(probe).map_err(|source| ResultsError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Write the file atomically: a temporary file in the same directory is written and synced,
    /// then hard-linked to `path` (which fails if `path` exists, so nothing is ever overwritten)
    /// and removed. A crash leaves either no file or a complete one.
    pub fn save_new(&self, path: &Path) -> Result<(), ResultsError> {
        let io = |source| ResultsError::Io {
            path: path.to_owned(),
            source,
        };
        if path.exists() {
            return Err(ResultsError::Exists {
                path: path.to_owned(),
            });
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        if let Some(dir) = dir {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let dir = dir.unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self).expect("result file serialises");
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(io(e));
        }
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(ResultsError::Exists {
                path: path.to_owned(),
            }),
            Err(e) => Err(io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_file() -> ResultFile {
        ResultFile {
            schema: SCHEMA_VERSION,
            tool_version: "0.1.0".into(),
            machine: "test".into(),
            label: "x".into(),
            created_utc: "2026-01-01T00:00:00Z".into(),
            git_rev: "abc".into(),
            seed: 7,
            config: serde_json::json!({"k": 1}),
            env: serde_json::Value::Null,
            runs: vec![RunRecord {
                schema: SCHEMA_VERSION,
                tool_version: "0.1.0".into(),
                variant: Variant {
                    instrument: Instrument::Sim,
                    arch: "x86_64".into(),
                    strategy: "upstream".into(),
                    layout: "order9".into(),
                    mem_bytes: 1 << 30,
                    mode: "fresh".into(),
                    options: String::new(),
                },
                run_index: 0,
                warmup: 1,
                samples_ns: vec![10, 20, 30],
                ops: BTreeMap::from([("batches".to_string(), 512)]),
                cpu: Some(1),
                extra: serde_json::Value::Null,
            }],
        }
    }

    #[test]
    fn save_then_load_round_trips_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m/r.json");
        let f = sample_file();
        f.save_new(&path).unwrap();
        assert_eq!(ResultFile::load(&path).unwrap(), f);
        let err = f.save_new(&path).unwrap_err();
        assert!(matches!(err, ResultsError::Exists { .. }), "{err}");
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn load_rejects_other_schema_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.json");
        fs::write(&p, "{\"schema\": 99}").unwrap();
        assert!(matches!(
            ResultFile::load(&p),
            Err(ResultsError::Schema { found: 99, .. })
        ));
        fs::write(&p, "not json").unwrap();
        assert!(matches!(
            ResultFile::load(&p),
            Err(ResultsError::Parse { .. })
        ));
    }

    #[test]
    fn variant_id_and_mean() {
        let f = sample_file();
        assert_eq!(f.runs[0].variant.id(), "sim:x86_64:upstream:order9");
        assert_eq!(f.runs[0].mean_ns(), 20.0);
    }
}
