//! `cargo xtask report [PATHS|LABELS...] [--out DIR]`: SVG plots of a selection (default: the
//! newest result file of every machine under `results/`, into `results/<machine>/plots/`):
//! mean_rel bars with 95% CI whiskers per case, every fork of each row per case (strip plot),
//! real fork() time against folio order and by folio size (order0, each mTHP size, pte-order9,
//! pmd-order9), and stacked op counts per strategy and arch. Exact rows (guest instructions)
//! get plots of their own, named `...-exact-...`, in instructions: never beside timed rows.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use results::{Instrument, ResultFile, SampleUnit};

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
    /// Every fork of each row of a case.
    Forks(usize),
    ForkTime(String, SampleUnit),
    /// Real fork() by folio size, per arch and unit.
    FolioSize(String, SampleUnit),
    Ops(usize),
}

impl PlotKind {
    /// Whether `publish` draws it into `results/<machine>/plots/` and links it: every plot but
    /// the per-fork strips (one SVG element per fork: ~0.4-0.8 MB each, `report` draws them).
    pub fn published(&self) -> bool {
        !matches!(self, PlotKind::Forks(_))
    }
}

/// File names of the plots of `cases` (deterministic; README links use the same names).
pub fn plot_names(cases: &[report::Case]) -> Vec<(String, PlotKind)> {
    let mut out = Vec::new();
    let inst = |i: Instrument| match i {
        Instrument::Sim => "sim",
        Instrument::Real => "real",
    };
    // Exact plots carry `exact` in their names: timed and exact never share a plot.
    let exact = |u: SampleUnit| match u {
        SampleUnit::Nanoseconds => "",
        SampleUnit::Instructions => "-exact",
    };
    for (i, c) in cases.iter().enumerate() {
        let what = if c.layout.is_empty() {
            "layouts"
        } else {
            c.layout.as_str()
        };
        let x = exact(c.unit);
        out.push((
            format!("{}-{}-{what}{x}-mean_rel.svg", inst(c.instrument), c.arch),
            PlotKind::MeanRel(i),
        ));
        out.push((
            format!("{}-{}-{what}{x}-forks.svg", inst(c.instrument), c.arch),
            PlotKind::Forks(i),
        ));
    }
    let mut arches: Vec<(&str, SampleUnit)> = Vec::new();
    for c in cases.iter().filter(|c| c.instrument == Instrument::Real) {
        if !arches.contains(&(c.arch.as_str(), c.unit)) {
            arches.push((&c.arch, c.unit));
        }
    }
    for (a, u) in arches {
        let (what, x) = match u {
            SampleUnit::Nanoseconds => ("fork-time", ""),
            SampleUnit::Instructions => ("fork-instr", "-exact"),
        };
        out.push((
            format!("real-{a}{x}-{what}-by-order.svg"),
            PlotKind::ForkTime(a.to_string(), u),
        ));
        out.push((
            format!("real-{a}{x}-{what}-by-folio-size.svg"),
            PlotKind::FolioSize(a.to_string(), u),
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

/// Does `run` of `file` belong to `row`? The row's identity as `report::build_cases` names it:
/// label, instrument, arch, layout, memory, mode, strategy or kernel (with its accelerator)
/// and options (a kernel row's options leave the accelerator out).
fn run_is_row(file: &ResultFile, run: &results::RunRecord, row: &report::Row) -> bool {
    let v = &run.variant;
    let options_ok = match v {
        results::Variant::Real(x) => {
            let mut o: Vec<String> = Vec::new();
            if x.sched != results::Sched::Other {
                o.push(format!("sched-{}", x.sched));
            }
            if x.unverified {
                o.push("unverified".into());
            }
            x.accel == row.accel && (row.options == v.options() || row.options == o.join(","))
        }
        results::Variant::Sim(_) => row.options == v.options(),
    };
    file.label == row.label
        && v.instrument() == row.instrument
        && v.unit() == row.unit
        && v.arch().to_string() == row.arch
        && v.layout_name() == row.layout
        && v.mem_bytes() == row.mem_bytes
        && v.mode().to_string() == row.mode
        && v.row_name() == row.strategy
        && options_ok
}

/// One strip per row of `case`: every timed fork of the row's runs.
pub fn strips(files: &[ResultFile], case: &report::Case) -> Vec<report::svg::Strip> {
    case.rows
        .iter()
        .map(|row| report::svg::Strip {
            name: row.name.clone(),
            samples_ns: files
                .iter()
                .flat_map(|f| f.runs.iter().filter(move |r| run_is_row(f, r, row)))
                .flat_map(|r| r.samples_ns.iter().copied())
                .collect(),
        })
        .collect()
}

/// Draw the plots of `cases` (built from `files`) into `dir`, all of them or only the
/// [`PlotKind::published`] ones; returns the written paths.
pub fn write_plots(
    files: &[ResultFile],
    cases: &[report::Case],
    machine: &str,
    dir: &Path,
    only_published: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    for (name, kind) in plot_names(cases) {
        if only_published && !kind.published() {
            continue;
        }
        let svg = match &kind {
            PlotKind::MeanRel(i) => report::svg::mean_rel_bars(&cases[*i], machine)?,
            PlotKind::Ops(i) => report::svg::ops_stacked(&cases[*i], machine)?,
            PlotKind::Forks(i) => report::svg::fork_distribution(
                &cases[*i].title(),
                &strips(files, &cases[*i]),
                machine,
                cases[*i].unit,
            )?,
            PlotKind::ForkTime(arch, unit) | PlotKind::FolioSize(arch, unit) => {
                let rows: Vec<&report::Row> = cases
                    .iter()
                    .filter(|c| {
                        c.instrument == Instrument::Real && c.arch == *arch && c.unit == *unit
                    })
                    .flat_map(|c| c.rows.iter())
                    .collect();
                if matches!(kind, PlotKind::ForkTime(..)) {
                    report::svg::fork_time_by_order(&rows, machine)?
                } else {
                    report::svg::fork_time_by_folio_size(&rows, machine)?
                }
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
        for p in write_plots(&files, &cases, &machine, &dir, false)? {
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

    /// Every timed fork of the committed file lands in exactly one strip of one case, and
    /// each strip holds its row's runs (run count x forks per run).
    #[test]
    fn strips_hold_every_fork_once() {
        let p = util::project_root().join("results/vm/20261125T210102Z-6.18.44-fc-v595.json");
        let files = vec![select::load(&p).unwrap()];
        let cases = select::cases(&files, None, &stats::Policy::default()).unwrap();
        let mut total = 0;
        for c in &cases {
            for (strip, row) in strips(&files, c).iter().zip(&c.rows) {
                assert_eq!(strip.name, row.name);
                assert_eq!(
                    strip.samples_ns.len(),
                    row.run_means.len() * 100,
                    "{}",
                    row.name
                );
                total += strip.samples_ns.len();
            }
        }
        assert_eq!(total, 28000);
        let names = plot_names(&cases);
        assert!(
            names
                .iter()
                .any(|(n, k)| n == "real-x86_64-layouts-forks.svg" && !k.published())
        );
        assert!(
            names
                .iter()
                .any(|(n, k)| n == "real-x86_64-fork-time-by-folio-size.svg" && k.published())
        );
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
