//! `cargo xtask noise [--config P] [--sessions N] [--gap DUR] [--instrument real|sim|all]`:
//! measure this machine's *between-session noise*. It runs the profile as N separate sessions
//! (each a whole `bench` with its own runner calls, a pause of `--gap` between them), adds the
//! result files of the same machine, kernel and tool already under `results/<machine>/`, and
//! writes every session's summary per variant to
//! `results/<machine>/noise/noise-<UTC>-<kernel>.json` (commit it like results). Cross-file
//! verdicts (`compare A B`, `table A B`) read it ([`crate::cross_file`]).
//!
//! Safe like `bench`, whose path each session takes: the sessions' own result files live in a
//! temporary directory, so Ctrl-C (during a session or a pause) leaves no partial noise file,
//! the runner restores the sysfs knobs it switched, and the noise file is written atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use results::ResultFile;

use crate::bench::{self, BenchArgs};
use crate::noise_file::{self, NoiseFile, Tools};
use crate::plan::Instruments;
use crate::{select, util};

#[derive(Args, Debug)]
pub struct NoiseArgs {
    /// Machine profile, as for `bench` [default: the embedded local.toml]
    #[arg(long)]
    pub config: Option<String>,
    /// Sessions to run (at least 2; the estimate's degrees of freedom are sessions - 1, so
    /// more sessions make sharper verdicts)
    #[arg(long, default_value_t = 3)]
    pub sessions: usize,
    /// Pause between two sessions: seconds, or with a unit (`90s`, `10m`, `1h`); sessions
    /// further apart catch slower changes of the machine
    #[arg(long, default_value = "10m", value_parser = parse_gap)]
    pub gap: Duration,
    /// What each session runs: real (real fork, the default: comparing kernels), sim (the
    /// model) or all
    #[arg(long, value_enum, default_value_t = Instruments::Real)]
    pub instrument: Instruments,
    /// Sessions of the profile's [quick] sizes (their variants differ from full runs')
    #[arg(long)]
    pub quick: bool,
    /// Run a profile made for another machine
    #[arg(long)]
    pub force: bool,
    /// Before each runner call, wait up to this many seconds for other forkbench processes
    #[arg(long, default_value_t = 60)]
    pub wait_quiet: u64,
    /// Results directory: the noise file goes to <out>/<machine>/noise/, and result files
    /// under <out>/<machine>/ count as sessions
    #[arg(long, default_value = "results")]
    pub out: String,
    /// Print one session's plan, run nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// `--gap`: `600`, `600s`, `10m`, `1h`.
pub fn parse_gap(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a pause: give seconds, or e.g. 90s, 10m, 1h"))?;
    n.checked_mul(mult)
        .filter(|&secs| secs <= 7 * 24 * 3600)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("'{s}' is longer than a week"))
}

/// Wait `gap` before session `next`, saying so once a minute; a signal ends the wait (and the
/// task, with no noise file).
fn pause(gap: Duration, next: usize, total: usize, stop: &AtomicBool) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut said = None;
    while t0.elapsed() < gap {
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted before session {next} of {total}; no noise file written");
        }
        let left = gap.saturating_sub(t0.elapsed()).as_secs();
        let minute = left / 60;
        if said != Some(minute) {
            eprintln!(
                "noise: session {next} of {total} starts in {}:{:02} (Ctrl-C stops, writing nothing)",
                left / 60,
                left % 60
            );
            said = Some(minute);
        }
        std::thread::sleep(Duration::from_millis(250).min(gap.saturating_sub(t0.elapsed())));
    }
    Ok(())
}

pub fn run(a: &NoiseArgs) -> anyhow::Result<ExitCode> {
    let stop = bench::stop_on_signals()?;
    let out = {
        let o = PathBuf::from(&a.out);
        if o.is_absolute() {
            o
        } else {
            util::project_root().join(o)
        }
    };
    let written = measure(
        a,
        &out,
        &mut |b: &BenchArgs| bench::run_host(b),
        &mut |gap, next, total| pause(gap, next, total, &stop),
        &stop,
    )?;
    if let Some(p) = written {
        println!(
            "wrote {} (commit it with the results: compare and table read it)",
            util::relative_to_root(&p)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A runner of one session: `bench` with these arguments, returning its result file.
pub type RunSession<'a> = dyn FnMut(&BenchArgs) -> anyhow::Result<Option<PathBuf>> + 'a;
/// The pause before session `next` of `total`.
pub type Pause<'a> = dyn FnMut(Duration, usize, usize) -> anyhow::Result<()> + 'a;

/// The sessions, the estimate and the noise file under `out` (None for `--dry-run`).
pub fn measure(
    a: &NoiseArgs,
    out: &Path,
    run_session: &mut RunSession<'_>,
    pause: &mut Pause<'_>,
    stop: &AtomicBool,
) -> anyhow::Result<Option<PathBuf>> {
    if !(2..=100).contains(&a.sessions) {
        bail!("--sessions must be 2..100: one session has no spread to measure");
    }
    let scratch = tempfile::Builder::new()
        .prefix("forkbench-noise-")
        .tempdir()
        .context("creating a temporary directory for the sessions")?;
    let mut files: Vec<ResultFile> = Vec::new();
    for i in 1..=a.sessions {
        if i > 1 {
            pause(a.gap, i, a.sessions)?;
        }
        eprintln!("noise: session {i} of {}", a.sessions);
        let args = session_args(a, i, scratch.path(), a.dry_run);
        let written = match run_session(&args) {
            Ok(w) => w,
            Err(_) if stop.load(Ordering::Relaxed) => {
                bail!(
                    "interrupted in session {i} of {}; no noise file written",
                    a.sessions
                )
            }
            Err(e) => return Err(e.context(format!("session {i} of {}", a.sessions))),
        };
        let Some(path) = written else {
            return Ok(None); // --dry-run: one plan is enough
        };
        files.push(select::load(&path)?);
    }
    let noise = noise_of(a, &files, out)?;
    print!("{}", render(&noise));
    let stamp = hostenv::host::UtcStamp::at(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs() as i64,
    );
    let path = noise_file::dir(out, &noise.machine)
        .join(noise_file::file_name(&stamp.compact, &noise.kernel));
    let text = serde_json::to_string_pretty(&NoiseFile {
        created_utc: stamp.rfc3339,
        ..noise
    })
    .context("serialising the noise file")?;
    results::fsio::write_new(&path, format!("{text}\n").as_bytes())
        .with_context(|| "writing the noise file".to_string())?;
    Ok(Some(path))
}

/// `bench`'s arguments for session `i`: the profile as asked, written to `scratch`, no tables.
fn session_args(a: &NoiseArgs, i: usize, scratch: &Path, dry_run: bool) -> BenchArgs {
    BenchArgs {
        config: a.config.clone(),
        label: Some(format!("noise-{i}")),
        quick: a.quick,
        seed: None,
        out: scratch.display().to_string(),
        force: a.force,
        dry_run,
        wait_quiet: a.wait_quiet,
        kernels: Vec::new(),
        kernel_debs: Vec::new(),
        arch: None,
        accel: bench::AccelArg::Auto,
        clock: bench::ClockArg::Auto,
        instrument: Some(a.instrument),
        with_model: false,
        boot_timeout: None,
        guest_mem: None,
        append: Vec::new(),
        verbose: false,
        session_only: true,
        exact: Default::default(),
    }
}

/// The noise file of these sessions, with the result files under `out/<machine>/` that are
/// sessions of the same machine, kernel and tool (for the sessions' variants).
fn noise_of(a: &NoiseArgs, sessions: &[ResultFile], out: &Path) -> anyhow::Result<NoiseFile> {
    let first = sessions.first().context("no sessions were run")?;
    let kernel_of = |f: &ResultFile| {
        f.runs
            .iter()
            .find_map(|r| match &r.variant {
                results::Variant::Real(v) => Some(v.kernel.clone()),
                results::Variant::Sim(_) => None,
            })
            .or_else(|| Some(f.env.kernel_release.clone()).filter(|k| !k.is_empty()))
            .unwrap_or_else(|| "unknown".into())
    };
    let kernel = kernel_of(first);
    if let Some(other) = sessions.iter().find(|f| kernel_of(f) != kernel) {
        bail!(
            "the sessions ran different kernels ({kernel}, then {}): the machine was rebooted \
             into another kernel; measure again",
            kernel_of(other)
        );
    }
    let profile = first
        .config
        .get("profile")
        .and_then(|p| p.get("profile"))
        .and_then(|p| p.as_str())
        .unwrap_or("")
        .to_string();
    let mut noise = NoiseFile {
        kind: noise_file::KIND.into(),
        schema: noise_file::SCHEMA,
        machine: first.machine.clone(),
        cpu_model: first.env.cpu_model.clone().unwrap_or_default(),
        kernel,
        git_rev: first.git_rev.clone(),
        tool_version: first.tool_version.clone(),
        created_utc: String::new(),
        profile,
        quick: a.quick,
        gap_secs: a.gap.as_secs(),
        sessions: Vec::new(),
        variants: Vec::new(),
    };
    let mut all: Vec<(String, ResultFile)> = sessions
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                format!("noise session {} of {}", i + 1, sessions.len()),
                f.clone(),
            )
        })
        .collect();
    let measured: std::collections::BTreeSet<results::Variant> = sessions
        .iter()
        .flat_map(|f| f.runs.iter().map(|r| r.variant.clone()))
        .collect();
    let mut tools = Tools::new(&util::project_root());
    let machine_dir = out.join(util::path_component(&noise.machine));
    let existing = if machine_dir.is_dir() {
        select::json_files(&machine_dir)?
    } else {
        Vec::new()
    };
    for p in existing {
        // A file that does not load is no session; `table` names it when asked for it.
        let Ok(f) = ResultFile::load(&p) else {
            continue;
        };
        let counts = f.runs.iter().any(|r| {
            measured.contains(&r.variant)
                && noise_file::counts_as_session(&f, &r.variant, &noise, &mut tools)
        });
        if counts
            && !all
                .iter()
                .any(|(_, s)| s.created_utc == f.created_utc && s.seed == f.seed)
        {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            all.push((name, f));
        }
    }
    let refs: Vec<(String, &ResultFile)> = all.iter().map(|(n, f)| (n.clone(), f)).collect();
    let (list, variants) = noise_file::gather(&refs, Some(&measured));
    noise.sessions = list;
    noise.variants = variants;
    let busy = noise.sessions.iter().filter(|s| s.busy).count();
    if busy > 0 {
        eprintln!(
            "{}",
            crate::progress::fill(
                &format!(
                    "warning: {busy} of {} sessions ran on a busy machine: they are kept (they \
                     only widen the estimate), but a quiet machine gives sharper verdicts",
                    noise.sessions.len()
                ),
                crate::progress::WIDTH
            )
        );
    }
    Ok(noise)
}

/// The estimate per variant: sessions, their means, the spread of the session means, what the
/// sessions' own runs put into it, and the between-session part.
pub fn render(noise: &NoiseFile) -> String {
    let mut rows: Vec<Vec<String>> = vec![
        [
            "variant",
            "sessions",
            "session means, ms",
            "spread",
            "within",
            "between",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for vs in &noise.variants {
        let sums: Vec<stats::Summary> = vs.sessions.iter().map(|s| s.summary()).collect();
        let est = stats::session::estimate(&sums);
        let means = vs
            .sessions
            .iter()
            .map(|s| format!("{:.3}", s.mean_ns / 1e6))
            .collect::<Vec<_>>()
            .join(" ");
        let pct = |x: Option<f64>| x.map_or_else(|| "n/a".into(), report::pct);
        rows.push(vec![
            vs.variant.id(),
            vs.sessions.len().to_string(),
            means,
            pct(est.map(|e| e.spread)),
            pct(est.map(|e| e.within.sqrt())),
            pct(est.map(|e| e.between_sd)),
        ]);
    }
    let mut s = format!(
        "between-session noise of {} on kernel {} ({} sessions, {} s apart):\n\n",
        noise.machine,
        noise.kernel,
        noise.sessions.len(),
        noise.gap_secs
    );
    s.push_str(&util::markdown_table(&rows, |i| i == 0 || i == 2));
    s.push_str(
        "\nspread: sd of the session means (relative), the noise threshold of cross-file verdicts;\n\
         within: what a session's own runs put into its mean; between: sqrt(spread² - within²).\n",
    );
    s
}

#[cfg(test)]
mod tests;
