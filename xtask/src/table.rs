//! `cargo xtask table [PATHS|LABELS...] [--baseline LABEL] [--format F]`: merge result files
//! (e.g. one per kernel, each with its `--label`) into the thread's tables. Refuses to mix
//! machines or instruments unless `--allow-mixed`.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use results::Instrument;

use crate::{select, util};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Format {
    /// The thread's `| kernel | mean_rel | std_rel |` table per case
    Thread,
    /// The thread's combined table: machine header, one column group per order
    Combined,
    /// Means, CI of the change, Welch p, minimum detectable effect and verdict
    Extended,
    /// One row per variant for pandas (`pd.read_csv`); columns in bench-configs/README.md
    Csv,
    /// The same as a JSON array of records (`pd.read_json`)
    Json,
    /// What `bench` prints: combined tables, then extended tables
    #[value(skip)]
    Bench,
}

#[derive(Args, Debug)]
pub struct TableArgs {
    /// Result files, directories or labels [default: the newest file under results/]
    pub paths: Vec<String>,
    /// Baseline row: a label, strategy, layout or row name [default: each profile's baseline]
    #[arg(long)]
    pub baseline: Option<String>,
    #[arg(long, value_enum, default_value = "thread")]
    pub format: Format,
    /// Only this instrument's runs
    #[arg(long, value_enum)]
    pub instrument: Option<Instrument>,
    /// Merge files of different machines or instruments anyway
    #[arg(long)]
    pub allow_mixed: bool,
    /// Where labels are looked up and the newest file is found
    #[arg(long, default_value = "results")]
    pub results: String,
    /// Use the *modelled* time of model runs (measured userspace time + counted privileged
    /// ops x the profile's cost model, the runs' `sim.modelled_add_ns`) instead of the measured
    /// time
    #[arg(long)]
    pub modelled: bool,
}

/// Shift every sample of runs that carry a modelled add-on by it, so tables of the result read
/// modelled time. Returns how many runs were shifted.
pub fn to_modelled(files: &mut [results::ResultFile]) -> usize {
    let mut n = 0;
    for f in files.iter_mut() {
        for r in f.runs.iter_mut() {
            if let Some(add) = r.sim.as_ref().and_then(|x| x.modelled_add_ns) {
                // `as` saturates (NaN and negatives to 0); so does the sum: a sample near
                // u64::MAX stays there for `check_samples` to refuse, never wraps.
                let add = add.round() as u64;
                for s in r.samples_ns.iter_mut() {
                    *s = s.saturating_add(add);
                }
                n += 1;
            }
        }
    }
    n
}

/// Render cases in a format; `machine` heads the combined tables.
pub fn render(cases: &[report::Case], machine: &str, f: Format) -> String {
    match f {
        Format::Thread => report::thread_tables(cases),
        Format::Combined => combined(cases, machine),
        Format::Extended => report::extended_tables(cases),
        Format::Csv => report::export::to_csv(cases),
        Format::Json => report::export::to_json(cases),
        Format::Bench => {
            let mut s = combined(cases, machine);
            s.push_str(&report::extended_tables(cases));
            s.push_str(
                "Sign convention: negative = faster. mean_rel/std_rel as in the thread (std over run means / baseline mean);\n\
                 95% CI of the change by the delta method on logs; p from Welch's t-test; MDE at α=0.05, power 0.8;\n\
                 verdict: faster/slower = significant and the whole CI beyond ±1%, same = CI within ±1%.\n",
            );
            s
        }
    }
}

fn combined(cases: &[report::Case], machine: &str) -> String {
    let mut s = String::new();
    for c in report::combined_from_cases(cases, machine) {
        s.push_str(&report::combined_table(&c));
        s.push('\n');
    }
    s
}

pub fn run(a: &TableArgs) -> anyhow::Result<ExitCode> {
    let root = util::project_root();
    let results_dir = root.join(&a.results);
    let paths = if a.paths.is_empty() {
        vec![select::newest(&results_dir)?.display().to_string()]
    } else {
        a.paths.clone()
    };
    let loaded = select::resolve(&paths, &results_dir)?;
    let files: Vec<_> = loaded.into_iter().map(|(_, f)| f).collect();
    let mut files = select::filter_instrument(files, a.instrument);
    if a.modelled {
        let n = to_modelled(&mut files);
        if n == 0 {
            bail!(
                "no run in the selection carries a modelled time (run the bench with a profile whose [cost_model] has *_ns costs)"
            );
        }
        println!(
            "modelled time: measured userspace time + counted privileged ops x cost model ({n} runs)"
        );
    }
    if files.iter().all(|f| f.runs.is_empty()) {
        bail!("the selection holds no runs");
    }
    select::check_mix(&files, a.allow_mixed)?;
    let cases = select::cases(&files, a.baseline.as_deref(), &stats::Policy::default())?;
    let machine = files
        .iter()
        .map(|f| f.machine.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join("+");
    print!("{}", render(&cases, &machine, a.format));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod modelled_tests {
    use super::*;

    /// The committed schema-1 file renders the tables it rendered before schema 2 (the
    /// snapshots were taken with the schema-1 reader).
    #[test]
    fn schema_1_file_renders_as_before() {
        let p = util::project_root().join("results/vm/20261125T210102Z-6.18.44-fc-v595.json");
        let f = select::load(&p).unwrap();
        let cases = select::cases(&[f], None, &stats::Policy::default()).unwrap();
        insta::assert_snapshot!("v1_file_thread", render(&cases, "vm", Format::Thread));
        insta::assert_snapshot!("v1_file_extended", render(&cases, "vm", Format::Extended));
        insta::assert_snapshot!("v1_file_combined", render(&cases, "vm", Format::Combined));
    }

    #[test]
    fn modelled_shifts_only_runs_with_an_add_on() {
        let rec = |add: Option<f64>| results::RunRecord {
            variant: results::Variant::Sim(results::SimVariant {
                arch: results::Arch::Arm64,
                contpte: Some(results::Contpte::Basic),
                strategy: results::Strategy::Upstream,
                order: results::ModelOrder::new(9).unwrap(),
                mem_bytes: 1 << 20,
                mode: results::Mode::Fresh,
                mapcount: Default::default(),
                counting: false,
            }),
            run_index: 0,
            warmup: 0,
            samples_ns: vec![100, 200],
            cpu: None,
            ops: Default::default(),
            sim: Some(results::SimExtra {
                ptes: 256,
                seed: 1,
                model_bytes: 0,
                peak_rss_bytes: None,
                cost_model: None,
                modelled_add_ns: add,
            }),
            real: None,
            host_load: None,
        };
        let mut f = results::ResultFile::new("m", "l", "x", Default::default());
        f.runs = vec![rec(Some(1000.0)), rec(None)];
        let mut files = vec![f];
        assert_eq!(to_modelled(&mut files), 1);
        assert_eq!(files[0].runs[0].samples_ns, vec![1100, 1200]);
        assert_eq!(files[0].runs[1].samples_ns, vec![100, 200]);
        // Near u64::MAX the sum saturates (load refuses such samples; this never panics).
        files[0].runs[0].samples_ns = vec![u64::MAX - 1];
        to_modelled(&mut files);
        assert_eq!(files[0].runs[0].samples_ns, vec![u64::MAX]);
    }
}
