//! `cargo xtask calibrate`: its flags and entry point. Measures (or refits a stored profile),
//! writes the new profile under `results/calibration/` (never overwriting one) and prints the
//! report.

use std::path::{Path, PathBuf};

use clap::Args;
use contract::{Mapcount, Mode, Sched, Size};
use hostenv::host::{self, UtcStamp};

use super::fit::{FITTED_STRATEGY, Meta, build_profile, observations_from_profile};
use super::measure::measure;
use super::render::render_report;
use crate::profile::{CostProfile, Settings};
use crate::{CalibrateError, Result};

/// Arguments of `cargo xtask calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Memory per fork (real and model)
    #[arg(long, default_value = "1G")]
    pub mem: Size,
    /// Timed forks per run
    #[arg(long, default_value_t = 100)]
    pub iters: u32,
    /// Runs per layout (interleaved round by round)
    #[arg(long, default_value_t = 8)]
    pub runs: u32,
    /// CPU to pin to (default: the last CPU this process may use)
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Scheduling of the real benchmark
    #[arg(long, default_value_t = Sched::Fifo)]
    pub sched: Sched,
    /// Repeat mode of real fork and model: steady (fork the same parent again) or fresh
    #[arg(long, default_value_t = Mode::Steady)]
    pub mode: Mode,
    /// mTHP layout size, e.g. 64k; `none` to skip (default: 64k if the kernel offers it, else
    /// the smallest offered size from 16k to 1M)
    #[arg(long)]
    pub mthp: Option<String>,
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

/// This machine and build, now.
fn this_host(created: &UtcStamp) -> Meta {
    Meta {
        host: host::hostname(),
        created_utc: created.rfc3339.clone(),
        kernel: host::kernel_release(),
        arch: host::arch_name().into(),
        cpu_model: host::cpu_model().unwrap_or_else(|| "unknown".into()),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Refit the observations stored in the profile at `path` (keeping its machine facts).
fn refit(path: &Path, now: &Meta) -> Result<CostProfile> {
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
            tool_version: now.tool_version.clone(),
        },
    )?;
    p.notes.push(format!(
        "Refitted at {} from the measurements in {}.",
        now.created_utc,
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    Ok(p)
}

/// Entry point of `cargo xtask calibrate`: measure (or refit), write the profile, print the
/// report. Returns the path of the new profile.
pub fn run_calibrate(root: &Path, forkbench: &Path, args: &CalibrateArgs) -> Result<PathBuf> {
    let created = UtcStamp::now();
    let meta = this_host(&created);
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| root.join("results/calibration"));
    let profile = if let Some(path) = &args.refit {
        refit(path, &meta)?
    } else {
        let m = measure(forkbench, args)?;
        let settings = Settings {
            mem: args.mem,
            iters: args.iters,
            runs: args.runs,
            cpu: Some(m.cpu),
            sched: args.sched,
            mode: args.mode,
            strategy: FITTED_STRATEGY,
            mapcount: args.mapcount,
            weighting: "relative (rows weighted by 1/real time)".into(),
        };
        build_profile(&m.obs, &m.micro, settings, meta)?
    };
    let path = out_dir.join(format!("{}-{}.json", profile.host, created.compact));
    let json = serde_json::to_string_pretty(&profile).expect("profile serialises") + "\n";
    results::fsio::write_new(&path, json.as_bytes())?;
    println!("{}", render_report(&profile));
    println!("wrote {}", path.display());
    Ok(path)
}
