//! The on-disk schema of forkbench measurements: one [`ResultFile`] per suite invocation (what
//! `cargo xtask bench` writes under `results/`), holding the host environment once, one
//! [`RealContext`] per real-fork runner call and one [`RunRecord`] per measured run (the
//! contract's typed records, re-exported here so readers use one path). Schema-1 files load
//! through [`v1`]. Files are written compactly (one line per run) and atomically, never over an
//! existing file ([`fsio`]). This crate measures nothing and computes no statistics.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub mod fsio;
pub mod journal;
pub mod v1;

pub use contract::{
    Accel, Arch, CheckSummary, Clock, Contpte, CostModel, CounterValue, CpuBusy, Disturbance,
    GuestBoot, HostEnv, HostLoad, Instrument, KernelConfig, Mapcount, MemoryUse, Mode, ModelOrder,
    OpCounter, Pinning, Populate, RealContext, RealExtra, RealLayout, RealVariant, RunRecord,
    SCHEMA_VERSION, SampleUnit, Sched, SchedInfo, SimExtra, SimVariant, Strategy, TimerCost,
    Variant,
};
use serde::{Deserialize, Serialize};

/// Errors from loading or saving result files.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error(transparent)]
    Fs(#[from] fsio::FsError),
    #[error("{path}: not a forkbench result file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: schema version {found} is not supported (this build reads 1 and {SCHEMA_VERSION})"
    )]
    Schema { path: PathBuf, found: u32 },
    #[error("{path}: refusing to overwrite an existing result file")]
    Exists { path: PathBuf },
    #[error("{path}: schema-1 file cannot be upgraded: {why}")]
    Upgrade { path: PathBuf, why: String },
    #[error("{path}: not a forkbench journal: {why}")]
    Journal { path: PathBuf, why: String },
    /// Samples no measurement gives: they would make tables of NaN or infinity.
    #[error("{path}: run {run} of {variant}: {why}")]
    BadSamples {
        path: PathBuf,
        variant: String,
        run: u32,
        why: String,
    },
}

/// The largest sample taken for a measurement: 2^53 ns (104 days), where f64 stops being exact.
pub const MAX_SAMPLE_NS: u64 = 1 << 53;

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
    /// The configuration that produced the runs (the profile and plan, as the driver wrote it).
    pub config: serde_json::Value,
    /// The host, captured once for the file.
    pub env: HostEnv,
    /// One per real-fork runner call; `RunRecord.real.context` indexes this.
    #[serde(default)]
    pub contexts: Vec<RealContext>,
    /// Runs in the order they were executed.
    pub runs: Vec<RunRecord>,
    /// What the driver's load check found over the runs (the "machine was busy" warning), so
    /// readers judge the file by the same facts the bench printed. Absent in files written
    /// before it was recorded: their runs' `host_load` holds the same facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_check: Option<LoadCheck>,
}

/// The load check of a bench over its runs' [`HostLoad`]: whether it fired, the warning it
/// printed and the figures it was decided on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadCheck {
    /// The check fired: the machine was busy (another `forkbench` ran, or other CPUs were).
    pub busy: bool,
    /// The warning printed, when busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// Runs with a load figure.
    pub runs: usize,
    /// Mean and max over those runs of the busiest other CPU's % busy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpus_busy_pct_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_cpus_busy_pct_max: Option<f64>,
    /// Runs whose busiest other CPU was above 25 % busy.
    pub runs_over_25pct: usize,
    /// Mean and max over the runs of the share of the pinned CPU's time that went to other
    /// processes (a hog sharing the bench's CPU); absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_cpu_foreign_pct_mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_cpu_foreign_pct_max: Option<f64>,
    /// Runs during which another `forkbench` process was running.
    pub concurrent_forkbench_runs: usize,
}

impl ResultFile {
    /// An empty file of this schema.
    pub fn new(machine: &str, label: &str, created_utc: &str, env: HostEnv) -> ResultFile {
        ResultFile {
            schema: SCHEMA_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            machine: machine.into(),
            label: label.into(),
            created_utc: created_utc.into(),
            git_rev: String::new(),
            seed: 0,
            config: serde_json::Value::Null,
            env,
            contexts: Vec::new(),
            runs: Vec::new(),
            load_check: None,
        }
    }

    /// Read and validate a result file (schema 1 is upgraded) or a journal (`*.partial`, see
    /// [`journal`]); refuse samples no measurement gives ([`ResultFile::check_samples`]).
    pub fn load(path: &Path) -> Result<Self, ResultsError> {
        let f = if journal::is_journal(path) {
            journal::load(path)?
        } else {
            Self::parse(&fsio::read(path)?, path)?
        };
        f.check_samples(path)?;
        Ok(f)
    }

    /// Every run has samples, not all zero, none beyond [`MAX_SAMPLE_NS`]: such a run would
    /// render NaN or infinite tables. The error names the run and its variant.
    pub fn check_samples(&self, path: &Path) -> Result<(), ResultsError> {
        for r in &self.runs {
            let why = if r.samples_ns.is_empty() {
                Some("no samples".to_string())
            } else if r.samples_ns.iter().all(|&s| s == 0) {
                Some("every sample is 0 ns".to_string())
            } else {
                r.samples_ns.iter().find(|&&s| s > MAX_SAMPLE_NS).map(|s| {
                    format!("a sample of {s} ns is beyond any fork (limit {MAX_SAMPLE_NS})")
                })
            };
            if let Some(why) = why {
                return Err(ResultsError::BadSamples {
                    path: path.to_owned(),
                    variant: r.variant.id(),
                    run: r.run_index,
                    why,
                });
            }
        }
        Ok(())
    }

    /// Parse the text of a result file of any supported schema, in any JSON layout; `path`
    /// names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ResultsError> {
        let parse_err = |source| ResultsError::Parse {
            path: path.to_owned(),
            source,
        };
        let probe: serde_json::Value = serde_json::from_str(text).map_err(parse_err)?;
        let found = probe.get("schema").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
        match found {
            SCHEMA_VERSION => {
                let mut probe = probe;
                expand_context_envs(&mut probe);
                serde_json::from_value(probe).map_err(parse_err)
            }
            1 => {
                let old: v1::ResultFile = serde_json::from_value(probe).map_err(parse_err)?;
                old.upgrade().map_err(|why| ResultsError::Upgrade {
                    path: path.to_owned(),
                    why,
                })
            }
            _ => Err(ResultsError::Schema {
                path: path.to_owned(),
                found,
            }),
        }
    }

    /// The file as JSON: top-level keys one per line, and each context and each run record on
    /// one compact line (pretty-printing every sample on its own line would triple the size).
    pub fn to_json(&self) -> String {
        fn one<T: Serialize + ?Sized>(v: &T) -> String {
            serde_json::to_string(v).expect("result file serialises")
        }
        fn list<T: Serialize>(o: &mut String, key: &str, items: &[T], last: bool) {
            let _ = write!(o, "  \"{key}\": [");
            for (i, it) in items.iter().enumerate() {
                let sep = if i + 1 < items.len() { "," } else { "" };
                let _ = write!(o, "\n    {}{sep}", one(it));
            }
            if !items.is_empty() {
                o.push_str("\n  ");
            }
            o.push(']');
            o.push_str(if last { "\n" } else { ",\n" });
        }
        let mut o = String::from("{\n");
        let fields: [(&str, String); 9] = [
            ("schema", one(&self.schema)),
            ("tool_version", one(&self.tool_version)),
            ("machine", one(&self.machine)),
            ("label", one(&self.label)),
            ("created_utc", one(&self.created_utc)),
            ("git_rev", one(&self.git_rev)),
            ("seed", one(&self.seed)),
            ("config", one(&self.config)),
            ("env", one(&self.env)),
        ];
        for (k, v) in fields {
            let _ = writeln!(o, "  \"{k}\": {v},");
        }
        let env = serde_json::to_value(&self.env).expect("host env serialises");
        let contexts: Vec<serde_json::Value> = self
            .contexts
            .iter()
            .map(|c| compact_context_env(c, &env))
            .collect();
        if let Some(l) = &self.load_check {
            let _ = writeln!(o, "  \"load_check\": {},", one(l));
        }
        list(&mut o, "contexts", &contexts, false);
        list(&mut o, "runs", &self.runs, true);
        o.push_str("}\n");
        o
    }

    /// Write the file atomically as [`ResultFile::to_json`]; never overwrites.
    pub fn save_new(&self, path: &Path) -> Result<(), ResultsError> {
        fsio::write_new(path, self.to_json().as_bytes()).map_err(|e| match e {
            fsio::FsError::Exists { path } => ResultsError::Exists { path },
            e => ResultsError::Fs(e),
        })
    }

    /// The context a real-fork run was measured in.
    pub fn context_of(&self, r: &RunRecord) -> Option<&RealContext> {
        self.contexts.get(r.real.as_ref()?.context as usize)
    }

    /// Append one runner call's contexts and runs, re-indexing the runs' contexts (which count
    /// from 0 within the call) into this file's list.
    pub fn absorb(&mut self, contexts: Vec<RealContext>, runs: Vec<RunRecord>) {
        for c in &contexts {
            enrich_env(&mut self.env, &c.env);
        }
        let offset = self.contexts.len() as u32;
        self.contexts.extend(contexts);
        self.runs.extend(runs.into_iter().map(|mut r| {
            if let Some(x) = r.real.as_mut() {
                x.context += offset;
            }
            r
        }));
    }
}

/// Add to the file's host capture what a runner call on the same kernel captured beyond it
/// (kernel config options, more sysfs files), so the file says it once and each context keeps
/// only what really differed.
fn enrich_env(file: &mut HostEnv, ctx: &HostEnv) {
    if file.kernel_release != ctx.kernel_release {
        return;
    }
    let cfg = &mut file.kernel_config;
    if cfg.values.is_empty() {
        *cfg = ctx.kernel_config.clone();
    }
    for (path, value) in &ctx.sysfs {
        file.sysfs
            .entry(path.clone())
            .or_insert_with(|| value.clone());
    }
}

/// A context as written: its `env` replaced by `env_diff`, the top-level fields in which it
/// differs from the file's `env` (most of a host capture is the same for every runner call of a
/// suite run; what moves, e.g. `mem_available_bytes` or a THP knob, stays exact).
fn compact_context_env(c: &RealContext, file_env: &serde_json::Value) -> serde_json::Value {
    let mut v = serde_json::to_value(c).expect("context serialises");
    let (Some(obj), Some(base)) = (v.as_object_mut(), file_env.as_object()) else {
        return v;
    };
    let Some(serde_json::Value::Object(env)) = obj.remove("env") else {
        return v;
    };
    let diff: serde_json::Map<String, serde_json::Value> = env
        .into_iter()
        .filter(|(k, val)| base.get(k) != Some(val))
        .collect();
    obj.insert("env_diff".into(), serde_json::Value::Object(diff));
    v
}

/// The inverse of [`compact_context_env`] on a parsed schema-2 file: every context with an
/// `env_diff` gets the file's `env` with those fields replaced.
fn expand_context_envs(file: &mut serde_json::Value) {
    let Some(base) = file.get("env").and_then(|e| e.as_object()).cloned() else {
        return;
    };
    let Some(contexts) = file.get_mut("contexts").and_then(|c| c.as_array_mut()) else {
        return;
    };
    for c in contexts.iter_mut().filter_map(|c| c.as_object_mut()) {
        if c.contains_key("env") {
            continue;
        }
        if let Some(serde_json::Value::Object(diff)) = c.remove("env_diff") {
            let mut env = base.clone();
            env.extend(diff);
            c.insert("env".into(), serde_json::Value::Object(env));
        }
    }
}

#[cfg(test)]
mod tests;
