//! `cargo xtask calibrate`: run the folio-size sweep through the suite (`bench --config sweep`:
//! real fork of every layout, interleaved, written as a results file whose table and plot
//! `cargo xtask table` / `publish` render), then fit the model's costs to it and write a cost
//! profile. `--from RESULTS` fits an existing sweep. The fit lives in the `calibrate` crate.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

pub use calibrate::CalibrateArgs as Flags;

/// The bench flags of the sweep, parsed as the command line would be.
#[derive(Parser)]
struct SweepCli {
    #[command(flatten)]
    bench: crate::bench::BenchArgs,
}

/// The `bench` invocation that runs the sweep.
fn sweep_args(a: &Flags) -> anyhow::Result<crate::bench::BenchArgs> {
    let mut argv = vec![
        "bench",
        "--config",
        a.config.as_str(),
        "--instrument",
        "real",
    ];
    if a.quick {
        argv.push("--quick");
    }
    Ok(SweepCli::try_parse_from(argv)
        .context("building the sweep's bench flags")?
        .bench)
}

pub fn run(a: &Flags) -> anyhow::Result<ExitCode> {
    let root = crate::util::project_root();
    let results = match (&a.from, &a.refit) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(_)) => None,
        (None, None) => {
            eprintln!(
                "calibrate: running the sweep (cargo xtask bench --config {} --instrument real{})",
                a.config,
                if a.quick { " --quick" } else { "" }
            );
            match crate::bench::run_host(&sweep_args(a)?)? {
                Some(p) => Some(p),
                None => anyhow::bail!("the sweep wrote no result file"),
            }
        }
    };
    let bin = crate::util::build_runner()?;
    let p = calibrate::run_calibrate(&root, &bin, a, results.as_deref())?;
    println!("cost profile: {}", p.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Parser)]
    struct CalibrateCli {
        #[command(flatten)]
        flags: Flags,
    }

    #[test]
    fn the_sweep_runs_the_sweep_profile_real_only() {
        let f = CalibrateCli::try_parse_from(["calibrate", "--quick"])
            .unwrap()
            .flags;
        let b = sweep_args(&f).unwrap();
        assert_eq!(b.config.as_deref(), Some("sweep"));
        assert!(b.quick);
        assert_eq!(b.instrument, Some(crate::plan::Instruments::Real));
    }
}
