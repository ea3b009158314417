//! `cargo xtask fidelity`: its flags and entry point. Optionally measures (writing the inputs
//! file and the stand-ins' counts for the instruction model) or re-prices the stored inputs with
//! another profile, then renders the report; `--check` only compares (provenance first, then
//! freshness against all its inputs). A profile fitted on another host, kernel
//! or CPU than the measurements is refused before measuring or re-pricing.

use std::path::{Path, PathBuf};

use clap::Args;
use contract::Size;

use super::inputs::Inputs;
use super::measure::measure;
use super::provenance::{MachineFacts, ONE_MACHINE_HINT, check_provenance, machine_mismatch};
use super::render::{ReportInputs, check_fresh};
use crate::Result;
use crate::profile::{CostProfile, newest_profile};

/// Arguments of `cargo xtask fidelity`.
#[derive(Debug, Clone, Args)]
pub struct FidelityArgs {
    /// Re-measure the model first and rewrite the inputs file (otherwise only render)
    #[arg(long)]
    pub measure: bool,
    /// Only check that the report is up to date with its inputs (exit with an error if stale)
    #[arg(long, conflicts_with = "measure")]
    pub check: bool,
    /// Inputs file (default: <root>/results/fidelity-inputs.json)
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Report file (default: <root>/results/fidelity.md)
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Take the stand-ins' op counts the exact files need from the model first (`forkbench
    /// counts`; seconds) and rewrite the counts file; `--measure` does it too
    #[arg(long, conflicts_with = "check")]
    pub counts: bool,
    /// The instruction model's exact result files (default: <root>/results/exact)
    #[arg(long)]
    pub exact_dir: Option<PathBuf>,
    /// The stand-ins' op counts file (default: <root>/results/exact-counts.json)
    #[arg(long)]
    pub exact_counts: Option<PathBuf>,
    /// Calibration profile to embed when measuring (default: the newest of this host under
    /// results/calibration); without --measure, re-price the existing inputs with it
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// No calibration profile (model time = measured userspace time); without --measure, drop
    /// the profile from the existing inputs
    #[arg(long, conflicts_with = "profile")]
    pub no_profile: bool,
    /// Memory per model fork when measuring
    #[arg(long, default_value = "1G")]
    pub mem: Size,
    /// Timed forks per run when measuring
    #[arg(long, default_value_t = 100)]
    pub iters: u32,
    /// Runs per configuration when measuring
    #[arg(long, default_value_t = 8)]
    pub runs: u32,
    /// CPU to pin the model to when measuring [default: the last CPU this process may use,
    /// as calibrate's sweep]
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Git revision of the tool, recorded in the inputs when measuring; filled by the caller
    /// (xtask), not a flag.
    #[arg(skip)]
    pub tool_rev: Option<String>,
}

/// Entry point of `cargo xtask fidelity`: optionally measure, then render. Returns the report path.
pub fn run_fidelity(root: &Path, forkbench: &Path, args: &FidelityArgs) -> Result<PathBuf> {
    let defaults = ReportInputs::at(root);
    let report_inputs = ReportInputs {
        inputs: args.inputs.clone().unwrap_or(defaults.inputs),
        exact_dir: args.exact_dir.clone().unwrap_or(defaults.exact_dir),
        exact_counts: args.exact_counts.clone().unwrap_or(defaults.exact_counts),
    };
    let inputs_path = report_inputs.inputs.clone();
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| root.join("results/fidelity.md"));
    let calibration_dir = root.join("results/calibration");
    if args.check {
        // Provenance first: a doctored profile also makes the report stale, and "stale" would
        // hide that the inputs mix two machines.
        check_provenance(&Inputs::load(&inputs_path)?, &inputs_path, &calibration_dir)?;
        check_fresh(&report_inputs, &out)?;
        println!("{} is up to date", out.display());
        return Ok(out);
    }
    if args.measure || args.counts {
        crate::instructions::measure_counts(
            forkbench,
            &report_inputs.exact_dir,
            &report_inputs.exact_counts,
            args.tool_rev.clone(),
        )?;
    }
    if args.measure {
        let profile = if args.no_profile {
            None
        } else {
            let path = args
                .profile
                .clone()
                .or_else(|| newest_profile(&calibration_dir, &hostenv::host::hostname()));
            match path {
                Some(p) => {
                    let profile = CostProfile::load(&p)?;
                    refuse_other_machine(&p, &profile)?;
                    Some((
                        p.file_name()
                            .unwrap_or_default()
                            .to_string_lossy()
                            .into_owned(),
                        profile,
                    ))
                }
                None => None,
            }
        };
        let inputs = measure(forkbench, args, profile)?;
        let json = serde_json::to_string_pretty(&inputs).expect("inputs serialise") + "\n";
        results::fsio::write_replace(&inputs_path, json.as_bytes())?;
        eprintln!("fidelity: wrote {}", inputs_path.display());
    } else if args.profile.is_some() || args.no_profile {
        // Re-price the existing measurements with another cost profile (or none).
        let mut inputs = Inputs::load(&inputs_path)?;
        match &args.profile {
            Some(p) => {
                inputs.profile = Some(CostProfile::load(p)?);
                inputs.profile_file = Some(
                    p.file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            None => {
                inputs.profile = None;
                inputs.profile_file = None;
            }
        }
        check_provenance(&inputs, &inputs_path, &calibration_dir)?;
        let json = serde_json::to_string_pretty(&inputs).expect("inputs serialise") + "\n";
        results::fsio::write_replace(&inputs_path, json.as_bytes())?;
        eprintln!(
            "fidelity: re-priced {} with the new profile",
            inputs_path.display()
        );
    }
    results::fsio::write_replace(&out, report_inputs.render()?.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(out)
}

/// Refuse to measure with a profile fitted on another machine than this one: the inputs would
/// fail `--check` after the whole measurement.
fn refuse_other_machine(path: &Path, profile: &CostProfile) -> Result<()> {
    let (host, kernel) = (hostenv::host::hostname(), hostenv::host::kernel_release());
    let cpu_model = hostenv::host::cpu_model().unwrap_or_else(|| "unknown".into());
    let here = MachineFacts {
        host: &host,
        kernel: &kernel,
        cpu_model: &cpu_model,
    };
    let differs = machine_mismatch(here, MachineFacts::of_profile(profile));
    if differs.is_empty() {
        return Ok(());
    }
    Err(crate::CalibrateError::Input(format!(
        "{} was fitted on another machine than this one: {}; {ONE_MACHINE_HINT}",
        path.display(),
        differs.join(", ")
    )))
}
