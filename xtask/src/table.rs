//! `cargo xtask table [PATHS|LABELS...] [--baseline LABEL] [--format F]`: merge result files
//! (e.g. one per kernel, each with its `--label`) into the thread's tables. Refuses to mix
//! machines or instruments unless `--allow-mixed`.

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

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Inst {
    Sim,
    Real,
}

impl From<Inst> for Instrument {
    fn from(i: Inst) -> Self {
        match i {
            Inst::Sim => Instrument::Sim,
            Inst::Real => Instrument::Real,
        }
    }
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
    pub instrument: Option<Inst>,
    /// Merge files of different machines or instruments anyway
    #[arg(long)]
    pub allow_mixed: bool,
    /// Where labels are looked up and the newest file is found
    #[arg(long, default_value = "results")]
    pub results: String,
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

pub fn run(a: &TableArgs) -> anyhow::Result<()> {
    let root = util::project_root();
    let results_dir = root.join(&a.results);
    let paths = if a.paths.is_empty() {
        vec![select::newest(&results_dir)?.display().to_string()]
    } else {
        a.paths.clone()
    };
    let loaded = select::resolve(&paths, &results_dir)?;
    let files: Vec<_> = loaded.into_iter().map(|(_, f)| f).collect();
    let files = select::filter_instrument(files, a.instrument.map(Into::into));
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
    Ok(())
}
