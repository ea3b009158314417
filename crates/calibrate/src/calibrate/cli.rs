//! `cargo xtask calibrate`: its flags and entry point. The sweep of real forks is a results file
//! (run by xtask through the suite, or given with `--from`); this reads it, measures the model's
//! counts, fits, writes the new profile under `results/calibration/` (never overwriting one)
//! and prints the report.

use std::path::{Path, PathBuf};

use clap::Args;
use contract::Mapcount;
use hostenv::host::{self, UtcStamp};
use results::ResultFile;

use super::fit::{FITTED_STRATEGY, Meta, build_profile, observations_from_profile};
use super::measure::{measure, sweep_of};
use super::render::render_report;
use crate::profile::{CostProfile, Settings};
use crate::{CalibrateError, Result};

/// Arguments of `cargo xtask calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Fit the real-fork runs of this results file (a sweep the suite wrote) instead of running
    /// the sweep first
    #[arg(long, value_name = "RESULTS", conflicts_with = "refit")]
    pub from: Option<PathBuf>,
    /// Profile of the sweep the suite runs first: a name in bench-configs/ or a path
    #[arg(long, default_value = "sweep")]
    pub config: String,
    /// Run the sweep at the profile's [quick] sizes (a smoke test; too short to calibrate with)
    #[arg(long)]
    pub quick: bool,
    /// CPU to pin the model's timing to (default: the sweep's CPU)
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Timed model forks per run for the "model before calibration" column (0 runs: skip)
    #[arg(long, default_value_t = 20)]
    pub sim_iters: u32,
    /// Model runs for that column
    #[arg(long, default_value_t = 3)]
    pub sim_runs: u32,
    /// Model mapcount variant matching the host kernel (v6.11+ with CONFIG_PAGE_MAPCOUNT:
    /// per-page+large)
    #[arg(long, default_value_t = Mapcount::PerPageAndLarge)]
    pub mapcount: Mapcount,
    /// Output directory of the profile (default: <root>/results/calibration)
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Do not measure: refit the raw data stored in an existing profile and write a new one
    #[arg(long, value_name = "PROFILE")]
    pub refit: Option<PathBuf>,
}

/// `path` relative to `root` when it is inside it.
fn rel(root: &Path, path: &Path) -> String {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    abs.strip_prefix(&root)
        .unwrap_or(&abs)
        .to_string_lossy()
        .into_owned()
}

/// Refit the observations stored in the profile at `path` (keeping its machine facts).
fn refit(path: &Path, created: &UtcStamp) -> Result<CostProfile> {
    let old = CostProfile::load(path)?;
    let micro = old.microbench.ok_or_else(|| {
        CalibrateError::Input(format!("{}: no microbenchmark data", path.display()))
    })?;
    let obs = observations_from_profile(&old);
    let mut p = build_profile(
        &obs,
        &micro,
        old.settings.clone(),
        Meta {
            created_utc: old.created_utc.clone(),
            host: old.host.clone(),
            kernel: old.kernel.clone(),
            arch: old.arch.clone(),
            cpu_model: old.cpu_model.clone(),
            tool_version: old.tool_version.clone(),
            tool_rev: old.tool_rev.clone(),
            results_file: old.results_file.clone(),
        },
    )?;
    p.notes.push(format!(
        "Refitted at {} from the measurements in {}.",
        created.rfc3339,
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    Ok(p)
}

/// Fit the sweep in `results` (model counts measured now) into a profile.
pub fn profile_from_results(
    root: &Path,
    forkbench: &Path,
    results: &Path,
    args: &CalibrateArgs,
) -> Result<CostProfile> {
    let file = ResultFile::load(results).map_err(|e| CalibrateError::Input(e.to_string()))?;
    let sweep = sweep_of(&file, results)?;
    if file.env.hostname != host::hostname() {
        return Err(CalibrateError::Input(format!(
            "{}: measured on host {:?}, this is {:?}: the model's counts and microbenchmark must come from the machine that forked",
            results.display(),
            file.env.hostname,
            host::hostname()
        )));
    }
    let m = measure(forkbench, args, sweep)?;
    let settings = Settings {
        mem: contract::Size(m.sweep.mem_bytes),
        iters: m.sweep.iters,
        runs: m.sweep.runs,
        cpu: m.sweep.cpu,
        sched: m.sweep.sched,
        mode: m.sweep.mode,
        strategy: FITTED_STRATEGY,
        mapcount: args.mapcount,
        weighting: "relative (rows weighted by 1/real time); real time = median of run means"
            .into(),
    };
    let meta = Meta {
        host: file.env.hostname.clone(),
        created_utc: UtcStamp::now().rfc3339,
        kernel: m.sweep.kernel.clone(),
        arch: file.env.arch.clone(),
        cpu_model: file
            .env
            .cpu_model
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        tool_version: file.tool_version.clone(),
        tool_rev: (!file.git_rev.is_empty()).then(|| file.git_rev.clone()),
        results_file: Some(rel(root, results)),
    };
    build_profile(&m.obs, &m.micro, settings, meta)
}

/// Entry point of `cargo xtask calibrate` once the sweep exists (`results`), or with `--refit`:
/// fit, write the profile, print the report. Returns the path of the new profile.
pub fn run_calibrate(
    root: &Path,
    forkbench: &Path,
    args: &CalibrateArgs,
    results: Option<&Path>,
) -> Result<PathBuf> {
    let created = UtcStamp::now();
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| root.join("results/calibration"));
    let profile = match (&args.refit, results) {
        (Some(path), _) => refit(path, &created)?,
        (None, Some(r)) => profile_from_results(root, forkbench, r, args)?,
        (None, None) => {
            return Err(CalibrateError::Input(
                "nothing to fit: give --from RESULTS or --refit PROFILE".into(),
            ));
        }
    };
    let path = out_dir.join(format!("{}-{}.json", profile.host, created.compact));
    let json = serde_json::to_string_pretty(&profile).expect("profile serialises") + "\n";
    results::fsio::write_new(&path, json.as_bytes())?;
    println!("{}", render_report(&profile));
    println!("wrote {}", path.display());
    Ok(path)
}
