//! `cargo xtask table [PATHS|LABELS...] [--baseline LABEL | --baseline-kernel NAME] [--format F]`:
//! merge result files (e.g. one per kernel, each with its `--label`) into the thread's tables.
//! Refuses to mix machines or instruments unless `--allow-mixed`; files of several LAVA devices
//! (`lava fetch`) merge without it, a row per device (their labels name the device). A file with real runs of
//! several kernels (guests) renders with the kernels as rows: by default the combined table
//! (order-0 and order-9 pte-map columns first, relative to the first kernel), then the compact
//! verdict table (`--format extended` for the wide one). In a table of several kernels the
//! model's rows are left out, or listed apart as a tool change when tool revisions differ. Tables of TCG runs carry [`report::EMULATED_NOTE`] above them.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, ValueEnum};
use results::Instrument;

use crate::{select, util};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum Format {
    /// `thread`; for real-fork runs of several kernels (kernels as rows) the combined table,
    /// then the compact verdict table
    Auto,
    /// The thread's `| kernel | mean_rel | std_rel |` table per case
    Thread,
    /// The thread's combined table: machine header, one column group per order
    Combined,
    /// Means, CI of the change, Welch p, minimum detectable effect and verdict
    Extended,
    /// One row per variant for pandas (`pd.read_csv`); every column: docs/suite.md, "Exports"
    Csv,
    /// The same as a JSON array of records, keys in the CSV's order (`pd.read_json`)
    Json,
    /// Long format, one row per timed fork (`pd.read_csv`); columns: docs/suite.md, "Exports"
    Samples,
    /// The same as JSON lines (`pd.read_json(path, lines=True)`)
    SamplesJsonl,
    /// What `bench` prints: combined tables, then the compact verdict table
    #[value(skip)]
    Bench,
}

#[derive(Args, Debug)]
pub struct TableArgs {
    /// Result files, directories or labels [default: the newest file under results/]
    pub paths: Vec<String>,
    /// Baseline row: a label, strategy, layout or row name; with real-fork runs of several
    /// kernels, a kernel (`uname -r` release or row name such as
    /// `6.12.107+deb13-cloud-amd64 (tcg)`) [default: each profile's baseline; the first kernel]
    #[arg(long, visible_alias = "baseline-kernel", value_name = "NAME")]
    pub baseline: Option<String>,
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Only this instrument's runs
    #[arg(long, value_enum)]
    pub instrument: Option<Instrument>,
    /// Merge files of different machines or instruments anyway
    #[arg(long)]
    pub allow_mixed: bool,
    /// Give verdicts across files even when a file's load check fired (the bench's "machine
    /// was busy" warning)
    #[arg(long)]
    pub allow_busy: bool,
    /// Where labels are looked up and the newest file is found
    #[arg(long, default_value = "results")]
    pub results: String,
    /// Use the *modelled* time of model runs (measured userspace time + counted privileged
    /// ops x the profile's cost model, the runs' `sim.modelled_add_ns`) instead of the measured
    /// time
    #[arg(long)]
    pub modelled: bool,
    #[command(flatten)]
    pub exact: crate::exact::ExactArgs,
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

/// Render cases in a format; `machine` heads the combined tables. Text tables of timed runs
/// under TCG start with [`report::EMULATED_NOTE`]; exact rows follow in tables of their own
/// ([`render_text`]).
pub fn render(cases: &[report::Case], machine: &str, f: Format) -> String {
    let f = resolve_auto(cases, f);
    match f {
        Format::Csv | Format::Json | Format::Samples | Format::SamplesJsonl => {
            render_tables(cases, machine, f)
        }
        _ => render_text(cases, machine, f),
    }
}

/// Text formats, by unit: long kernel row names shortened (with their legend first), the
/// timed cases in format `f`, then the exact cases' tables (the same in every text format).
pub fn render_text(cases: &[report::Case], machine: &str, f: Format) -> String {
    let mut cases = cases.to_vec();
    let legend = report::legend::shorten_kernel_rows(&mut cases);
    let (exact, timed): (Vec<report::Case>, Vec<report::Case>) =
        cases.into_iter().partition(report::Case::is_exact);
    let mut out = text_preamble(&timed, &exact, legend);
    if !timed.is_empty() {
        out.push_str(&render_tables(&timed, machine, f));
    }
    if !exact.is_empty() {
        if !timed.is_empty() {
            out.push('\n');
        }
        out.push_str(&report::exact::exact_tables_body(&exact));
    }
    out
}

/// What text output says first: what its numbers are (emulated time, exact instructions),
/// then the legend of short kernel row names.
pub fn text_preamble(
    timed: &[report::Case],
    exact: &[report::Case],
    legend: Option<String>,
) -> String {
    let mut out = String::new();
    if report::emulated(timed) {
        out.push_str(&format!("{}\n\n", report::EMULATED_NOTE));
    }
    if !exact.is_empty() {
        out.push_str(&format!("{}\n\n", report::exact::EXACT_NOTE));
    }
    if let Some(l) = legend {
        out.push_str(&format!("{l}\n"));
    }
    out
}

/// What [`Format::Auto`] renders as: kernel rows read best as the thread's combined table
/// plus the extended one; everything else as before.
pub fn resolve_auto(cases: &[report::Case], f: Format) -> Format {
    match f {
        Format::Auto if report::has_kernel_rows(cases) => Format::Bench,
        Format::Auto => Format::Thread,
        f => f,
    }
}

/// Does `name` name a kernel of the selection's real-fork runs (release or row name)?
pub fn names_kernel(files: &[results::ResultFile], name: &str) -> bool {
    files
        .iter()
        .flat_map(|f| &f.runs)
        .any(|r| match &r.variant {
            results::Variant::Real(v) => {
                v.kernel == name || report::kernel_row_name(&v.kernel, v.accel) == name
            }
            results::Variant::Sim(_) => false,
        })
}

/// The cases of a selection. A baseline naming a kernel applies to the real-fork rows only
/// (the model's runs keep their own baseline); anything else goes to [`select::cases`].
pub fn cases_for(
    files: &[results::ResultFile],
    baseline: Option<&str>,
) -> anyhow::Result<Vec<report::Case>> {
    cases_with(files, baseline, &stats::Policy::default())
}

/// [`cases_for`] under `policy` (e.g. the exact rows' `--exact-tolerance`).
pub fn cases_with(
    files: &[results::ResultFile],
    baseline: Option<&str>,
    policy: &stats::Policy,
) -> anyhow::Result<Vec<report::Case>> {
    let policy = *policy;
    let Some(kernel) = baseline.filter(|b| names_kernel(files, b)) else {
        return select::cases(files, baseline, &policy);
    };
    let mut out = Vec::new();
    for (inst, b) in [(Instrument::Real, Some(kernel)), (Instrument::Sim, None)] {
        let part = select::filter_instrument(files.to_vec(), Some(inst));
        if part.iter().any(|f| !f.runs.is_empty()) {
            out.extend(select::cases(&part, b, &policy)?);
        }
    }
    Ok(out)
}

pub(crate) fn render_tables(cases: &[report::Case], machine: &str, f: Format) -> String {
    match f {
        // Resolved by `render`.
        Format::Auto => report::thread_tables(cases),
        Format::Thread => report::thread_tables(cases),
        Format::Combined => combined(cases, machine),
        Format::Extended => format!(
            "{}verdict noise threshold: ±{}% (the default of `table` and `compare`)\n",
            report::extended_tables(cases),
            crate::compare::DEFAULT_THRESHOLD
        ),
        Format::Csv => report::export::to_csv(cases),
        Format::Json => report::export::to_json(cases),
        // Per-fork rows come from the files, not from cases: `run` renders them with `samples`.
        Format::Samples | Format::SamplesJsonl => String::new(),
        Format::Bench => {
            let mut s = combined(cases, machine);
            s.push_str(&report::verdict_table(cases, stats::DEFAULT_NOISE));
            s.push_str("(--format extended: means, CI of the change, Welch p and MDE per row)\n");
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

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// The per-fork export of `files` (named by `names`) for the long formats; None for the others.
pub fn samples(names: &[String], files: &[results::ResultFile], f: Format) -> Option<String> {
    let pairs: Vec<(String, &results::ResultFile)> =
        names.iter().cloned().zip(files.iter()).collect();
    match f {
        Format::Samples => Some(report::export::samples_csv(&pairs)),
        Format::SamplesJsonl => Some(report::export::samples_jsonl(&pairs)),
        _ => None,
    }
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
    let names: Vec<String> = loaded.iter().map(|(p, _)| file_name(p)).collect();
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
    // Long format carries machine and instrument per row: no mix to refuse, no cases to build.
    if let Some(out) = samples(&names, &files, a.format) {
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    // Results of several lab devices are one table with a row per device: their machines and
    // CPUs differ by design; everything else must still match.
    let devices = select::lab_devices(&files);
    select::check_mix(&files, a.allow_mixed || devices.is_some())?;
    // Labels merged into one table must have run alike (sched, mem, CPU model, privileges).
    let mut mixed = crate::conditions::mixed_labels(&files);
    if devices.is_some() {
        for (_, _, m) in &mut mixed {
            m.retain(|x| x.field != "machine" && x.field != "cpu model");
        }
        mixed.retain(|(_, _, m)| !m.is_empty());
    }
    if let Some((first, other, m)) = mixed.first()
        && !a.allow_mixed
    {
        bail!(
            "{}",
            crate::conditions::refusal(&format!("'{first}'"), &format!("'{other}'"), m, "merge")
        );
    }
    let export = matches!(a.format, Format::Csv | Format::Json);
    // A table of several kernels is about the kernels: the model runs in userspace and does
    // not depend on them. Its rows are left out unless the files' tool revisions differ, and
    // then they follow under their own heading (exports keep every row: they have columns).
    let model_part = match kernel_table_model_rows(&files, a.instrument, export) {
        ModelRows::Keep => None,
        ModelRows::LeftOut(n) => {
            files = select::filter_instrument(files, Some(Instrument::Real));
            println!(
                "{n} model run(s) left out: the model does not depend on the kernel, and every file ran the same tool revision (--instrument sim shows them)\n"
            );
            None
        }
        ModelRows::ToolChange(revs) => {
            let sim = select::filter_instrument(files.clone(), Some(Instrument::Sim));
            files = select::filter_instrument(files, Some(Instrument::Real));
            Some((sim, revs))
        }
    };
    let mut cases = cases_with(&files, a.baseline.as_deref(), &a.exact.stats_policy()?)?;
    // Rows of different files are different sessions: judged with the machine's noise.
    let cross = crate::cross_file::Cross {
        results_dir: results_dir.clone(),
        allow_busy: a.allow_busy,
    };
    let across = crate::cross_file::judge_cases(&cross, &files, &mut cases, stats::DEFAULT_NOISE)?;
    for (first, other, m) in &mixed {
        let line = crate::conditions::banner(&format!("'{first}'"), &format!("'{other}'"), m);
        // Exports stay parseable: the banner goes to stderr there.
        match resolve_auto(&cases, a.format) {
            Format::Csv | Format::Json => eprintln!("{line}"),
            _ => println!("{line}\n"),
        }
    }
    if let Some(d) = &devices
        && !matches!(resolve_auto(&cases, a.format), Format::Csv | Format::Json)
    {
        println!(
            "rows are LAVA devices ({}): each ran on its own hardware, so a change compares \
             devices, not kernels\n",
            d.join(", ")
        );
    }
    let machine = files
        .iter()
        .map(|f| f.machine.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
        .join("+");
    print!("{}", render(&cases, &machine, a.format));
    if let Some(notes) = across {
        match resolve_auto(&cases, a.format) {
            Format::Csv | Format::Json => eprint!("{notes}"),
            _ => print!("\n{notes}"),
        }
    }
    if let Some((sim, revs)) = model_part {
        println!(
            "\nTool change, not a kernel regression: the model's rows below differ by tool revision only"
        );
        for r in revs {
            println!("  {r}");
        }
        println!();
        let mut sim_cases = cases_for(&sim, a.baseline.as_deref())?;
        let across =
            crate::cross_file::judge_cases(&cross, &sim, &mut sim_cases, stats::DEFAULT_NOISE)?;
        print!("{}", render(&sim_cases, &machine, a.format));
        if let Some(notes) = across {
            print!("\n{notes}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a table does with the model's rows.
#[derive(Debug, PartialEq)]
pub enum ModelRows {
    /// Not a table of several kernels, an export, or an instrument was chosen: as they are.
    Keep,
    /// A table of several kernels made by one tool revision: this many model runs left out.
    LeftOut(usize),
    /// A table of several kernels made by these tool revisions: model rows apart.
    ToolChange(Vec<String>),
}

/// The rule of `compare` for `table`: with real-fork runs of several kernels in the selection,
/// model rows are not part of the kernel comparison.
pub fn kernel_table_model_rows(
    files: &[results::ResultFile],
    instrument: Option<Instrument>,
    export: bool,
) -> ModelRows {
    let model_runs = files
        .iter()
        .flat_map(|f| &f.runs)
        .filter(|r| matches!(r.variant, results::Variant::Sim(_)))
        .count();
    if export
        || instrument.is_some()
        || model_runs == 0
        || crate::compare::releases(files).len() < 2
    {
        return ModelRows::Keep;
    }
    let with_model: Vec<results::ResultFile> = files
        .iter()
        .filter(|f| {
            f.runs
                .iter()
                .any(|r| matches!(r.variant, results::Variant::Sim(_)))
        })
        .cloned()
        .collect();
    let revs = crate::compare::revisions(&with_model);
    if revs.len() < 2 {
        ModelRows::LeftOut(model_runs)
    } else {
        ModelRows::ToolChange(revs.into_iter().collect())
    }
}

#[cfg(test)]
mod modelled_tests {
    use super::*;

    /// The committed schema-1 file renders the tables it rendered before schema 2 (the
    /// snapshots were taken with the schema-1 reader), real fork first since issue 15.
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

/// A synthetic result file of guest runs of two kernels, for the table and compare tests.
#[cfg(test)]
pub(crate) mod kernel_fixture {
    use results::{Accel, Arch, Mode, RealLayout, RealVariant, ResultFile, RunRecord, Sched};

    pub const K61: &str = "6.1.0-50-cloud-amd64";
    pub const K612: &str = "6.12.107+deb13-cloud-amd64";

    fn run(kernel: &str, accel: Accel, layout: &str, run: u32, mean_ns: f64) -> RunRecord {
        RunRecord {
            variant: results::Variant::Real(RealVariant {
                arch: Arch::X86_64,
                kernel: kernel.into(),
                accel,
                clock: contract::Clock::Wall,
                layout: layout.parse::<RealLayout>().unwrap(),
                mem_bytes: 64 << 20,
                mode: Mode::Steady,
                sched: Sched::Other,
                unverified: false,
            }),
            run_index: run,
            warmup: 0,
            samples_ns: [0.998, 1.001, 1.003, 0.998]
                .iter()
                .map(|f| (mean_ns * f).round() as u64)
                .collect(),
            cpu: None,
            ops: Default::default(),
            sim: None,
            real: None,
            host_load: None,
        }
    }

    /// 6.1 and 6.12 × {order0, pte-order9, mthp-64k (6.12 only)} × 3 runs, interleaved by run;
    /// 6.12 forks pte-mapped THPs 4x faster.
    pub fn two_kernels(accel: Accel) -> ResultFile {
        let drift = [[-0.010, 0.000, 0.012], [0.006, -0.008, 0.001]];
        let mut runs = Vec::new();
        for r in 0..3u32 {
            for (ki, (k, order0, pte9)) in [(K61, 14.0e6, 9.0e6), (K612, 13.8e6, 2.25e6)]
                .into_iter()
                .enumerate()
            {
                let d = 1.0 + drift[ki][r as usize];
                runs.push(run(k, accel, "order0", r, order0 * d));
                runs.push(run(k, accel, "pte-order9", r, pte9 * d));
                if k == K612 {
                    runs.push(run(k, accel, "mthp-64k", r, 3.0e6 * d));
                }
            }
        }
        let mut f = ResultFile::new("vm", "guests", "2026-01-01T00:00:00Z", Default::default());
        f.git_rev = "r".into();
        f.seed = 1;
        f.runs = runs;
        f
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::kernel_fixture::{K61, K612, two_kernels};
    use super::*;

    #[test]
    fn kernels_render_as_rows_with_the_emulated_note_only_under_tcg() {
        let tcg = two_kernels(results::Accel::Tcg);
        let cases = cases_for(std::slice::from_ref(&tcg), None).unwrap();
        let t = render(&cases, "vm", Format::Auto);
        let first = t.lines().next().unwrap();
        assert_eq!(
            first,
            "emulated: these times show code-path differences, not hardware costs"
        );
        // The combined table, kernels as rows, order-0 and order-9 (pte-map) columns first.
        assert!(
            t.contains("|  order-0 (pte-map)  |  order-9 (pte-map)  | order-4 (64K mTHP)  |"),
            "{t}"
        );
        // Long releases get short row names and a legend.
        assert!(
            t.contains(&format!(
                "kernels (short row names):\n  6.1.0-50       = {K61} (tcg)\n  6.12.107+deb13 = {K612} (tcg)\n"
            )),
            "{t}"
        );
        assert!(t.contains("| 6.1.0-50          |     0.0% |"), "{t}");
        assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
        assert!(t.contains("|   -75.0% |"), "{t}");
        assert!(t.contains("|      n/a |      n/a |"), "{t}");
        // Then the extended table with the verdict.
        assert!(t.contains("| faster "), "{t}");
        for f in [Format::Thread, Format::Extended, Format::Combined] {
            assert!(render(&cases, "vm", f).starts_with(report::EMULATED_NOTE));
        }
        assert!(!render(&cases, "vm", Format::Csv).contains("emulated"));
        let kvm = two_kernels(results::Accel::Kvm);
        let cases = cases_for(&[kvm], None).unwrap();
        let t = render(&cases, "vm", Format::Auto);
        assert!(!t.contains("emulated"), "{t}");
        assert!(t.contains("| 6.12.107+deb13    |"), "{t}");
        assert!(t.contains(&format!("6.12.107+deb13 = {K612} (kvm)")), "{t}");
    }

    /// `--format samples`: a header, then one line per timed fork of every run.
    #[test]
    fn samples_have_one_row_per_fork() {
        let f = two_kernels(results::Accel::Tcg);
        let forks: usize = f.runs.iter().map(|r| r.samples_ns.len()).sum();
        let names = ["g.json".to_string()];
        let csv = samples(&names, std::slice::from_ref(&f), Format::Samples).unwrap();
        assert_eq!(csv.lines().count(), 1 + forks);
        assert_eq!(
            csv.lines().next().unwrap(),
            report::export::SAMPLE_COLUMNS.join(",")
        );
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with(&format!("g.json,vm,guests,{K61},tcg,real,x86_64,order0,0,")),
            "{csv}"
        );
        let jsonl = samples(&names, &[f], Format::SamplesJsonl).unwrap();
        assert_eq!(jsonl.lines().count(), forks);
        assert!(samples(&names, &[], Format::Csv).is_none());
    }

    #[test]
    fn a_baseline_kernel_is_a_release_or_a_row_name() {
        let f = two_kernels(results::Accel::Tcg);
        for b in [K612.to_string(), format!("{K612} (tcg)")] {
            let cases = cases_for(std::slice::from_ref(&f), Some(&b)).unwrap();
            assert!(cases.iter().all(|c| c.baseline == format!("{K612} (tcg)")));
            let t = render(&cases, "vm", Format::Thread);
            assert!(t.contains("300.4%"), "{t}");
        }
        let e = cases_for(&[f], Some("6.9.0")).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "baseline kernel '6.9.0' is not in the selection (kernels: {K61} (tcg), {K612} (tcg))"
            )
        );
    }

    #[test]
    fn a_table_of_two_kernels_leaves_the_model_out_unless_the_tool_changed() {
        use crate::compare::tests::side;
        use results::Sched::Fifo;
        let a = side("A", "6.1", Fifo, "r1", 1.0);
        let b = side("B", "6.12", Fifo, "r1", 1.5);
        let sim_runs = a
            .runs
            .iter()
            .chain(&b.runs)
            .filter(|r| matches!(r.variant, results::Variant::Sim(_)))
            .count();
        assert!(sim_runs > 0);
        let both = [a.clone(), b.clone()];
        assert_eq!(
            kernel_table_model_rows(&both, None, false),
            ModelRows::LeftOut(sim_runs)
        );
        // Another tool revision: the model's rows are a tool change, listed apart.
        let b2 = side("B", "6.12", Fifo, "r2", 1.5);
        let ModelRows::ToolChange(revs) = kernel_table_model_rows(&[a.clone(), b2], None, false)
        else {
            panic!("two revisions are a tool change");
        };
        assert_eq!(revs.len(), 2, "{revs:?}");
        // One kernel (two runs of it), a chosen instrument or an export: rows as they are.
        let same = side("B", "6.1", Fifo, "r1", 1.5);
        assert_eq!(
            kernel_table_model_rows(&[a.clone(), same], None, false),
            ModelRows::Keep
        );
        assert_eq!(
            kernel_table_model_rows(&both, Some(Instrument::Sim), false),
            ModelRows::Keep
        );
        assert_eq!(kernel_table_model_rows(&both, None, true), ModelRows::Keep);
    }

    #[test]
    fn table_reads_a_file_of_two_kernels() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("20260101T000000Z-guests.json");
        two_kernels(results::Accel::Tcg).save_new(&p).unwrap();
        let args = |baseline: Option<&str>| TableArgs {
            paths: vec![p.display().to_string()],
            baseline: baseline.map(str::to_string),
            format: Format::Auto,
            instrument: None,
            allow_mixed: false,
            allow_busy: false,
            results: d.path().display().to_string(),
            modelled: false,
            exact: Default::default(),
        };
        assert_eq!(run(&args(None)).unwrap(), ExitCode::SUCCESS);
        assert_eq!(run(&args(Some(K612))).unwrap(), ExitCode::SUCCESS);
        let e = run(&args(Some("6.9.0"))).unwrap_err();
        assert_eq!(format!("{e:#}").lines().count(), 1, "{e:#}");
    }
}

#[cfg(test)]
mod like_with_like_tests {
    use super::*;

    /// Labels `A` (fifo) and `B` (batch), saved; returns the table arguments for both.
    fn two_labels(d: &std::path::Path, b_sched: results::Sched) -> TableArgs {
        let mut paths = Vec::new();
        for (label, sched) in [("A", results::Sched::Fifo), ("B", b_sched)] {
            let mut f = crate::bench::tests::mock_file(1);
            f.label = label.into();
            for r in &mut f.runs {
                if let results::Variant::Real(v) = &mut r.variant {
                    v.sched = sched;
                }
            }
            let p = d.join(format!("20260101T000000Z-{label}.json"));
            f.save_new(&p).unwrap();
            paths.push(p.display().to_string());
        }
        TableArgs {
            paths,
            baseline: None,
            format: Format::Auto,
            instrument: None,
            allow_mixed: false,
            allow_busy: false,
            results: d.display().to_string(),
            modelled: false,
            exact: Default::default(),
        }
    }

    #[test]
    fn labels_that_ran_differently_are_refused_by_field() {
        let d = tempfile::tempdir().unwrap();
        let a = two_labels(d.path(), results::Sched::Batch);
        let e = format!("{:#}", run(&a).unwrap_err());
        assert_eq!(
            e,
            "'A' and 'B' differ in sched (fifo vs batch): pass --allow-mixed to merge anyway"
        );
        let allowed = TableArgs {
            allow_mixed: true,
            allow_busy: false,
            ..a
        };
        assert_eq!(run(&allowed).unwrap(), ExitCode::SUCCESS);
        let files: Vec<results::ResultFile> = allowed
            .paths
            .iter()
            .map(|p| select::load(std::path::Path::new(p)).unwrap())
            .collect();
        let mixed = crate::conditions::mixed_labels(&files);
        assert_eq!(
            crate::conditions::banner("'A'", "'B'", &mixed[0].2),
            "MIXED (--allow-mixed): 'A' and 'B' differ in sched (fifo vs batch); rows were matched regardless"
        );
        // Alike: merged without a word.
        let d2 = tempfile::tempdir().unwrap();
        let same = two_labels(d2.path(), results::Sched::Fifo);
        assert_eq!(run(&same).unwrap(), ExitCode::SUCCESS);
    }
}
