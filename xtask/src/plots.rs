//! `cargo xtask report [PATHS|LABELS...] [--out DIR]`: SVG plots of a selection (default: the
//! newest result file of every machine under `results/`, into `results/<machine>/plots/`):
//! mean_rel bars with 95% CI whiskers per case, real fork() time against folio order, and
//! stacked op counts per strategy and arch.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use results::{Instrument, ResultFile};

use crate::{select, util};

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Result files, directories or labels [default: the newest file of every machine]
    pub paths: Vec<String>,
    /// Output directory [default: results/<machine>/plots]
    #[arg(long)]
    pub out: Option<String>,
    /// Baseline row (as for `table`)
    #[arg(long)]
    pub baseline: Option<String>,
    /// Merge files of different machines or instruments anyway
    #[arg(long)]
    pub allow_mixed: bool,
    #[arg(long, default_value = "results")]
    pub results: String,
}

/// A plot to draw: its file name and what it shows.
#[derive(Debug, Clone, PartialEq)]
pub enum PlotKind {
    MeanRel(usize),
    ForkTime(String),
    Ops(usize),
}

/// File names of the plots of `cases` (deterministic; README links use the same names).
pub fn plot_names(cases: &[report::Case]) -> Vec<(String, PlotKind)> {
    let mut out = Vec::new();
    let inst = |i: Instrument| match i {
        Instrument::Sim => "sim",
        Instrument::Real => "real",
    };
    for (i, c) in cases.iter().enumerate() {
        let what = if c.layout.is_empty() {
            "layouts"
        } else {
            c.layout.as_str()
        };
        out.push((
            format!("{}-{}-{what}-mean_rel.svg", inst(c.instrument), c.arch),
            PlotKind::MeanRel(i),
        ));
    }
    let mut arches: Vec<&str> = Vec::new();
    for c in cases.iter().filter(|c| c.instrument == Instrument::Real) {
        if !arches.contains(&c.arch.as_str()) {
            arches.push(&c.arch);
        }
    }
    for a in arches {
        out.push((
            format!("real-{a}-fork-time-by-order.svg"),
            PlotKind::ForkTime(a.to_string()),
        ));
    }
    for (i, c) in cases.iter().enumerate() {
        if c.instrument == Instrument::Sim && c.rows.iter().any(|r| !r.ops.is_empty()) {
            out.push((
                format!("sim-{}-{}-ops.svg", c.arch, c.layout),
                PlotKind::Ops(i),
            ));
        }
    }
    out
}

/// Draw every plot of `cases` into `dir`; returns the written paths.
pub fn write_plots(
    cases: &[report::Case],
    machine: &str,
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, kind) in plot_names(cases) {
        let svg = match kind {
            PlotKind::MeanRel(i) => report::svg::mean_rel_bars(&cases[i], machine)?,
            PlotKind::Ops(i) => report::svg::ops_stacked(&cases[i], machine)?,
            PlotKind::ForkTime(arch) => {
                let rows: Vec<&report::Row> = cases
                    .iter()
                    .filter(|c| c.instrument == Instrument::Real && c.arch == arch)
                    .flat_map(|c| c.rows.iter())
                    .collect();
                report::svg::fork_time_by_order(&rows, machine)?
            }
        };
        let p = dir.join(util::path_component(&name));
        std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?;
        written.push(p);
    }
    Ok(written)
}

/// Newest file of every machine directory under `results_dir`.
pub fn newest_per_machine(results_dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for d in select::machine_dirs(results_dir)? {
        let files = select::json_files(&d)?;
        if let Some(f) = files
            .iter()
            .max_by_key(|p| p.file_name().map(|n| n.to_os_string()))
        {
            let name = d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((name, f.clone()));
        }
    }
    Ok(out)
}

pub fn run(a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let root = util::project_root();
    let results_dir = root.join(&a.results);
    let selections: Vec<(String, Vec<ResultFile>)> = if a.paths.is_empty() {
        let mut v = Vec::new();
        for (m, p) in newest_per_machine(&results_dir)? {
            v.push((m, vec![select::load(&p)?]));
        }
        if v.is_empty() {
            anyhow::bail!(
                "no result files under {}; run `cargo xtask bench` first",
                results_dir.display()
            );
        }
        v
    } else {
        let files: Vec<ResultFile> = select::resolve(&a.paths, &results_dir)?
            .into_iter()
            .map(|x| x.1)
            .collect();
        select::check_mix(&files, a.allow_mixed)?;
        vec![(files[0].machine.clone(), files)]
    };
    for (machine, files) in selections {
        let cases = select::cases(&files, a.baseline.as_deref(), &stats::Policy::default())?;
        let dir = match &a.out {
            Some(o) => PathBuf::from(o),
            // The machine comes from a file's contents: it must not climb out of results/.
            None => results_dir
                .join(util::path_component(&machine))
                .join("plots"),
        };
        for p in write_plots(&cases, &machine, &dir)? {
            println!("{}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A result file whose `machine` is `../../x` or an absolute path draws its plots under
    /// `results/`, never outside.
    #[test]
    fn machine_names_from_files_stay_under_results() {
        let d = tempfile::tempdir().unwrap();
        let results = d.path().join("deep/results");
        for (i, evil) in ["../../x", "/tmp/forkbench-evil-plots"]
            .into_iter()
            .enumerate()
        {
            let mut f = crate::bench::tests::mock_file(1);
            f.machine = evil.into();
            let p = d.path().join(format!("20260101T00000{i}Z-a.json"));
            f.save_new(&p).unwrap();
            let args = ReportArgs {
                paths: vec![p.display().to_string()],
                out: None,
                baseline: None,
                allow_mixed: false,
                results: results.display().to_string(),
            };
            run(&args).unwrap();
        }
        assert!(!d.path().join("x").exists());
        assert!(!std::path::Path::new("/tmp/forkbench-evil-plots/plots").exists());
        let svgs: Vec<PathBuf> = select_svgs(d.path());
        assert!(!svgs.is_empty());
        assert!(svgs.iter().all(|p| p.starts_with(&results)), "{svgs:?}");
    }

    fn select_svgs(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "svg") {
                    out.push(p);
                }
            }
        }
        out
    }
}
