//! `cargo xtask compare A B [--threshold PCT]`: per variant present in both selections, B
//! against A (Welch test, 95% CI of the ratio, verdict with the threshold as noise level).
//! `cargo xtask compare FILE --kernels A B`: the same between two kernels of one selection
//! (a file of guest runs holds several), B's real-fork runs against A's.
//! Like with like: sides that differ in machine, sched, mem, CPU model, privileges or
//! accelerator ([`crate::conditions`]) are refused, naming each field, unless `--allow-mixed`
//! (then the output says what was mixed). A *kernel comparison* (the sides' real-fork runs are
//! of different kernels, or `--kernels`) compares real-fork rows only: the model runs in
//! userspace, so its rows are left out, or shown apart as a *tool change* when the tool
//! revisions differ. Exit 1 when any compared variant is *slower*: significant and the whole
//! CI above +threshold (a CI gate; tool-change rows never count); exit 0 otherwise; exit 2 on
//! bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use results::{ResultFile, Variant};
use stats::{Policy, Summary, Verdict};

use crate::{conditions, select, util};

/// The default `--threshold`, in percent: the verdicts' noise threshold everywhere.
pub const DEFAULT_THRESHOLD: f64 = stats::DEFAULT_NOISE * 100.0;

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Baseline: result file, directory or label (with --kernels: the selection holding both
    /// kernels)
    pub a: String,
    /// Candidate: result file, directory or label (not with --kernels)
    pub b: Option<String>,
    /// Compare two kernels of the selection A: the baseline kernel, then the candidate; each a
    /// `uname -r` release or a row name such as `6.12.107+deb13-cloud-amd64 (tcg)`
    #[arg(long, num_args = 2, value_names = ["KERNEL_A", "KERNEL_B"], conflicts_with = "b")]
    pub kernels: Option<Vec<String>>,
    /// Regression threshold in percent (also the noise level of the verdict); the default is
    /// the one `table` and `bench` use
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    pub threshold: f64,
    /// Compare anyway when A and B differ in machine, sched, mem, CPU model, privileges or
    /// accelerator (the output then says which)
    #[arg(long)]
    pub allow_mixed: bool,
    /// Give verdicts even when a side's load check fired (the bench's "machine was busy"
    /// warning); by default such a side's rows are unknown
    #[arg(long)]
    pub allow_busy: bool,
    /// Where labels are looked up (and the machine's noise files, under <machine>/noise/)
    #[arg(long, default_value = "results")]
    pub results: String,
    #[command(flatten)]
    pub exact: crate::exact::ExactArgs,
}

/// One compared variant.
#[derive(Debug, Clone)]
pub struct Line {
    pub variant: Variant,
    pub cmp: stats::Comparison,
    /// Across files: what the between-session rule made of the row ([`crate::cross_file`]).
    pub noise: Option<crate::cross_file::RowNoise>,
}

/// What row matching ignores: the kernel (A and B are two kernels), and with `--allow-mixed`
/// the fields the sides were allowed to differ in.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Matching {
    pub any_kernel: bool,
    pub any_sched: bool,
    pub any_mem: bool,
    pub any_accel: bool,
}

impl Matching {
    /// The matching key of a variant: real-fork rows by layout, mode, sched and (guest runs)
    /// accelerator, model rows by everything.
    pub(crate) fn key(&self, v: &Variant) -> Variant {
        let mut v = v.clone();
        match &mut v {
            Variant::Real(real) => {
                if self.any_kernel {
                    real.kernel = "fork".into();
                }
                if self.any_sched {
                    real.sched = results::Sched::Other;
                }
                if self.any_mem {
                    real.mem_bytes = 0;
                }
                if self.any_accel {
                    real.accel = results::Accel::Host;
                }
            }
            Variant::Sim(sim) => {
                if self.any_mem {
                    sim.mem_bytes = 0;
                }
            }
        }
        v
    }
}

/// Run means per matching key (labels are ignored: they name what is being compared).
fn means(files: &[ResultFile], matching: Matching) -> BTreeMap<Variant, Vec<f64>> {
    let mut m: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    for f in files {
        for r in &f.runs {
            m.entry(matching.key(&r.variant))
                .or_default()
                .push(r.mean_ns());
        }
    }
    m
}

/// The kernel releases of a selection's real-fork runs.
pub fn releases(files: &[ResultFile]) -> BTreeSet<&str> {
    files
        .iter()
        .flat_map(|f| &f.runs)
        .filter_map(|r| match &r.variant {
            Variant::Real(v) => Some(v.kernel.as_str()),
            Variant::Sim(_) => None,
        })
        .collect()
}

/// Is B against A a kernel comparison: both sides hold real-fork runs, of different kernels?
/// (`--kernels A B` always is.) Otherwise it compares two runs of the same kernel(s), e.g. two
/// tool revisions on one machine.
pub fn kernels_differ(a: &[ResultFile], b: &[ResultFile]) -> bool {
    let (ka, kb) = (releases(a), releases(b));
    !ka.is_empty() && !kb.is_empty() && ka != kb
}

/// The tool revisions of a selection: `git <rev>, tool <version>` per distinct pair.
pub fn revisions(files: &[ResultFile]) -> BTreeSet<String> {
    files
        .iter()
        .map(|f| format!("git {}, tool {}", f.git_rev, f.tool_version))
        .collect()
}

/// Keep only the runs `keep` selects (files left empty are dropped).
fn only(files: &[ResultFile], keep: impl Fn(&results::RunRecord) -> bool) -> Vec<ResultFile> {
    files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.runs.retain(&keep);
            f
        })
        .filter(|f| !f.runs.is_empty())
        .collect()
}

fn is_real(r: &results::RunRecord) -> bool {
    matches!(r.variant, Variant::Real(_))
}

/// Why A and B do not compare kernel by kernel: one holds several kernels (guest runs) and the
/// other different ones. `None` when they compare: at most one kernel each (the kernels are
/// what is compared), or the same kernels on both sides (compared kernel by kernel).
pub fn kernel_mismatch(a: &[ResultFile], b: &[ResultFile]) -> Option<String> {
    let (ka, kb) = (releases(a), releases(b));
    if (ka.len() <= 1 && kb.len() <= 1) || ka == kb {
        return None;
    }
    let list = |k: &BTreeSet<&str>| k.iter().copied().collect::<Vec<_>>().join(", ");
    Some(format!(
        "A holds real-fork runs of kernels {} and B of {}: compare two kernels of one file with `--kernels A B`",
        list(&ka),
        list(&kb)
    ))
}

/// The real-fork runs of `kernel` (a release or a row name) in `files`; one error line naming
/// the selection's kernels when there are none.
pub fn runs_of_kernel(
    files: &[ResultFile],
    kernel: &str,
    what: &str,
) -> anyhow::Result<Vec<ResultFile>> {
    let is_it = |r: &results::RunRecord| match &r.variant {
        Variant::Real(v) => {
            v.kernel == kernel || report::kernel_row_name(&v.kernel, v.accel) == kernel
        }
        Variant::Sim(_) => false,
    };
    if !files.iter().flat_map(|f| &f.runs).any(is_it) {
        let known = report::kernel_order(files);
        bail!(
            "kernel '{kernel}' is not in {what} (kernels: {})",
            if known.is_empty() {
                "none: no real-fork runs".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(files
        .iter()
        .map(|f| {
            let mut f = f.clone();
            f.runs.retain(is_it);
            f
        })
        .filter(|f| !f.runs.is_empty())
        .collect())
}

/// Compare every variant present on both sides (kernel by kernel when both hold the same
/// several kernels, see [`kernel_mismatch`]); the second value counts variants on one side only.
#[cfg(test)]
pub fn compare(a: &[ResultFile], b: &[ResultFile], threshold: f64) -> (Vec<Line>, usize) {
    let any_kernel = releases(a).len() <= 1 && releases(b).len() <= 1;
    let (lines, unmatched) = compare_matching(
        a,
        b,
        threshold,
        Matching {
            any_kernel,
            ..Matching::default()
        },
    );
    (lines, unmatched.len())
}

/// [`compare`] with an explicit matching; returns the lines in row order (real fork first,
/// then kernels in the files' order, layouts in the thread's order) and the ids of the
/// variants present on one side only, each with its side.
pub fn compare_matching(
    a: &[ResultFile],
    b: &[ResultFile],
    threshold: f64,
    matching: Matching,
) -> (Vec<Line>, Vec<String>) {
    let policy = Policy {
        noise: threshold / 100.0,
        ..Policy::default()
    };
    let (ma, mb) = (means(a, matching), means(b, matching));
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    for (v, xa) in &ma {
        let Some(xb) = mb.get(v) else {
            unmatched.push(format!("{} (A only)", v.id()));
            continue;
        };
        if let (Some(sa), Some(sb)) = (Summary::of(xa), Summary::of(xb)) {
            out.push(Line {
                variant: v.clone(),
                cmp: stats::compare(&sa, &sb, &policy),
                noise: None,
            });
        }
    }
    unmatched.extend(
        mb.keys()
            .filter(|k| !ma.contains_key(*k))
            .map(|v| format!("{} (B only)", v.id())),
    );
    let rank = row_rank(a, b);
    out.sort_by_cached_key(|l| rank(&l.variant));
    (out, unmatched)
}

/// The order compared rows print in: real fork first, kernel by kernel in the files' order
/// ([`report::kernel_order`]), layouts in the tables' order; then the model's rows.
pub fn row_rank(
    a: &[ResultFile],
    b: &[ResultFile],
) -> impl Fn(&Variant) -> (usize, usize, usize, String) {
    let mut all = a.to_vec();
    all.extend(b.iter().cloned());
    let kernels = report::kernel_order(&all);
    let rank = |list: &[&str], x: &str| list.iter().position(|s| *s == x).unwrap_or(list.len());
    move |v: &Variant| match v {
        Variant::Real(r) => {
            let k = report::kernel_row_name(&r.kernel, r.accel);
            (
                0,
                kernels
                    .iter()
                    .position(|x| *x == k)
                    .unwrap_or(kernels.len()),
                rank(&report::cases::LAYOUT_ORDER, &v.layout_name()),
                v.id(),
            )
        }
        Variant::Sim(_) => (1, 0, 0, v.id()),
    }
}

/// The comparison as a Markdown table; rows judged across files add a `noise` column (the
/// row's threshold and sessions) and say why a verdict is unknown.
pub fn render(lines: &[Line]) -> String {
    let with_noise = lines.iter().any(|l| l.noise.is_some());
    let mut header: Vec<String> = ["variant", "A ms", "B ms", "change", "95% CI", "p"]
        .map(String::from)
        .to_vec();
    if with_noise {
        header.push("noise".into());
    }
    header.push("verdict".into());
    // Left-aligned columns: the names, the interval and the verdict.
    let last = header.len() - 1;
    let left = move |i: usize| i == 0 || i == 4 || i == last;
    let mut rows: Vec<Vec<String>> = vec![header];
    for l in lines {
        let c = &l.cmp;
        let mut row = vec![
            l.variant.id(),
            format!("{:.3}", c.base.mean / 1e6),
            format!("{:.3}", c.new.mean / 1e6),
            report::pct(c.rel.mean_rel),
            c.ci.map(|ci| {
                format!(
                    "[{}, {}]",
                    report::pct(ci.lo - 1.0),
                    report::pct(ci.hi - 1.0)
                )
            })
            .unwrap_or_else(|| "n/a".into()),
            c.welch
                .map(|w| {
                    if w.p < 0.001 {
                        "<0.001".to_string()
                    } else {
                        format!("{:.3}", w.p)
                    }
                })
                .unwrap_or_else(|| "n/a".into()),
        ];
        if with_noise {
            row.push(l.noise.as_ref().map_or_else(|| "n/a".into(), |n| n.cell()));
        }
        row.push(
            match (
                crate::cross_file::verdict_text(c.verdict, l.noise.as_ref()),
                c.verdict,
                c.runs_needed,
            ) {
                (Some(text), _, _) => text,
                (None, Verdict::Unknown, Some(n)) => format!("unknown (~{n} runs)"),
                (None, v, _) => v.to_string(),
            },
        );
        rows.push(row);
    }
    util::markdown_table(&rows, left)
}

/// The threshold a row's verdict used, in percent: its measured noise threshold when judged
/// across files, else `threshold`.
fn row_threshold(l: &Line, threshold: f64) -> f64 {
    match &l.noise {
        Some(crate::cross_file::RowNoise::Measured { threshold: t, .. }) => t * 100.0,
        _ => threshold,
    }
}

/// The verdict counts and the regression line of a list of compared rows.
fn summary(lines: &[Line], threshold: f64) -> (String, bool) {
    let count = |v: Verdict| lines.iter().filter(|l| l.cmp.verdict == v).count();
    let slower: Vec<&Line> = lines
        .iter()
        .filter(|l| l.cmp.verdict == Verdict::Slower)
        .collect();
    let mut s = format!(
        "{} faster, {} slower, {} same, {} unknown\n",
        count(Verdict::Faster),
        slower.len(),
        count(Verdict::Same),
        count(Verdict::Unknown)
    );
    let per_row = lines.iter().any(|l| l.noise.is_some());
    if slower.is_empty() && per_row {
        s.push_str("no significant regression beyond each row's noise threshold\n");
    } else if slower.is_empty() {
        s.push_str(&format!(
            "no significant regression beyond {threshold:.1}%\n"
        ));
    } else {
        s.push_str(&format!(
            "REGRESSION beyond {}: {}\n",
            if per_row {
                "the noise threshold".to_string()
            } else {
                format!("{threshold:.1}%")
            },
            slower
                .iter()
                .map(|l| {
                    let mut t = format!("{} {}", l.variant.id(), report::pct(l.cmp.rel.mean_rel));
                    if per_row {
                        t.push_str(&format!(" (threshold {:.1}%)", row_threshold(l, threshold)));
                    }
                    t
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    (s, !slower.is_empty())
}

/// How rows of A and B match: across kernels when each side holds one, across the fields
/// `--allow-mixed` let differ.
pub fn matching_for(
    a: &[ResultFile],
    b: &[ResultFile],
    mixed: &[conditions::Mismatch],
) -> Matching {
    Matching {
        any_kernel: releases(a).len() <= 1 && releases(b).len() <= 1,
        any_sched: conditions::mixed(mixed, "sched"),
        any_mem: conditions::mixed(mixed, "mem"),
        any_accel: conditions::mixed(mixed, "accel"),
    }
}

/// A comparison checked and computed: what `run` prints, and whether it is a regression.
#[derive(Debug)]
pub struct Report {
    pub text: String,
    pub regression: bool,
}

/// Compare B against A: refuse sides that do not compare like with like (unless
/// `allow_mixed`), keep only real-fork rows when the kernels differ (`kernel_cmp`), and show
/// model rows then only when the tool revisions differ, as a tool change that never counts as
/// a regression. `cross`: A and B are separate files (sessions), judged with the machine's
/// between-session noise ([`crate::cross_file`]); None within one file (`--kernels`).
pub fn check_and_compare(
    a: &[ResultFile],
    b: &[ResultFile],
    names: (&str, &str),
    kernel_cmp: bool,
    threshold: f64,
    allow_mixed: bool,
    cross: Option<&crate::cross_file::Cross>,
) -> anyhow::Result<Report> {
    let (a_name, b_name) = names;
    if let Some(why) = kernel_mismatch(a, b) {
        bail!("{why}");
    }
    let keep = |r: &results::RunRecord| !kernel_cmp || is_real(r);
    let mixed = conditions::mismatches(&conditions::of(a, keep), &conditions::of(b, keep));
    if !mixed.is_empty() && !allow_mixed {
        bail!(
            "{}",
            conditions::refusal(
                &format!("A ({a_name})"),
                &format!("B ({b_name})"),
                &mixed,
                "compare"
            )
        );
    }
    let matching = matching_for(a, b, &mixed);
    let (main_a, main_b) = if kernel_cmp {
        (only(a, is_real), only(b, is_real))
    } else {
        (a.to_vec(), b.to_vec())
    };
    let (mut lines, unmatched) = compare_matching(&main_a, &main_b, threshold, matching);
    let across = crate::cross_file::judge_lines(
        cross,
        (&main_a, &main_b),
        &mut lines,
        matching,
        threshold / 100.0,
    )?;
    if lines.is_empty() {
        if kernel_cmp {
            bail!(
                "A ({a_name}) and B ({b_name}) have no real-fork variant in common; nothing to compare"
            );
        }
        bail!("A and B have no variant in common; nothing to compare");
    }
    let mut t = String::new();
    let emulated = a
        .iter()
        .chain(b)
        .flat_map(|f| &f.runs)
        .any(|r| matches!(&r.variant, Variant::Real(v) if v.accel == results::Accel::Tcg));
    if emulated {
        t.push_str(&format!("{}\n\n", report::EMULATED_NOTE));
    }
    if !mixed.is_empty() {
        t.push_str(&format!(
            "{}\n\n",
            conditions::banner(&format!("A ({a_name})"), &format!("B ({b_name})"), &mixed)
        ));
    }
    let noise = if threshold == DEFAULT_THRESHOLD {
        "the default noise threshold".to_string()
    } else {
        format!("default {DEFAULT_THRESHOLD:.1}%")
    };
    t.push_str(&format!(
        "B ({b_name}) against A ({a_name}), threshold {threshold:.1}% ({noise}{}):\n",
        if across.is_some() {
            "; across files, at least each row's measured noise"
        } else {
            ""
        }
    ));
    if kernel_cmp {
        let kernels = |f: &[ResultFile]| {
            let mut k = report::kernel_order(f);
            k.dedup();
            k.join(" + ")
        };
        t.push_str(&format!(
            "kernel comparison ({} vs {}): real-fork rows only\n",
            kernels(a),
            kernels(b)
        ));
    }
    t.push_str(across.as_deref().unwrap_or_default());
    t.push('\n');
    t.push_str(&render(&lines));
    if !unmatched.is_empty() {
        // Named, so nothing is dropped silently; a long list is cut.
        let shown = if unmatched.len() > 6 {
            format!(
                "{}, ... and {} more",
                unmatched[..3].join(", "),
                unmatched.len() - 3
            )
        } else {
            unmatched.join(", ")
        };
        t.push_str(&format!(
            "\n{} variant(s) present on one side only were not compared: {shown}\n",
            unmatched.len(),
        ));
    }
    let (verdicts, regression) = summary(&lines, threshold);
    t.push('\n');
    t.push_str(&verdicts);
    if kernel_cmp {
        let (sim_a, sim_b) = (only(a, |r| !is_real(r)), only(b, |r| !is_real(r)));
        let (ra, rb) = (revisions(a), revisions(b));
        if !sim_a.is_empty() && !sim_b.is_empty() && ra != rb {
            let (mut tool, _) = compare_matching(&sim_a, &sim_b, threshold, matching);
            let across = crate::cross_file::judge_lines(
                cross,
                (&sim_a, &sim_b),
                &mut tool,
                matching,
                threshold / 100.0,
            )?;
            let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(" + ");
            t.push_str(&format!(
                "\nTool change, not a kernel regression (the model runs in userspace; its rows \
                 differ because the tool did):\n  A: {}\n  B: {}\n\n",
                join(&ra),
                join(&rb)
            ));
            t.push_str(across.as_deref().unwrap_or_default());
            t.push_str(&render(&tool));
            t.push('\n');
            t.push_str(
                &summary(&tool, threshold)
                    .0
                    .replace("REGRESSION", "tool change")
                    .replace(
                        "no significant regression",
                        "no significant tool-change slowdown",
                    ),
            );
        } else if !sim_a.is_empty() || !sim_b.is_empty() {
            let n = means(&sim_a, Matching::default())
                .into_keys()
                .chain(means(&sim_b, Matching::default()).into_keys())
                .collect::<BTreeSet<_>>()
                .len();
            t.push_str(&format!(
                "\n{n} model variant(s) left out: the model does not depend on the kernel{}\n",
                if ra == rb {
                    ", and both sides ran the same tool revision"
                } else {
                    ", and only one side has model runs"
                }
            ));
        }
    }
    Ok(Report {
        text: t,
        regression,
    })
}

pub fn run(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    if !(args.threshold >= 0.0 && args.threshold < 100.0) {
        bail!("--threshold must be a percentage in [0, 100)");
    }
    let root = util::project_root();
    let dir = root.join(&args.results);
    let load = |sel: &String| -> anyhow::Result<Vec<ResultFile>> {
        Ok(select::resolve(std::slice::from_ref(sel), &dir)?
            .into_iter()
            .map(|x| x.1)
            .collect())
    };
    let names = |files: &[ResultFile]| {
        files
            .iter()
            .map(|f| f.label.as_str())
            .collect::<Vec<_>>()
            .join("+")
    };
    let (a, b, a_name, b_name, kernel_cmp) = match (&args.b, &args.kernels) {
        (Some(b), None) => {
            let (a, b) = (load(&args.a)?, load(b)?);
            let (an, bn) = (names(&a), names(&b));
            let k = kernels_differ(&a, &b);
            (a, b, an, bn, k)
        }
        (None, Some(ks)) => {
            let [ka, kb] = ks.as_slice() else {
                bail!("--kernels takes two kernels: the baseline, then the candidate");
            };
            if ka == kb {
                bail!("--kernels names '{ka}' twice; give two different kernels");
            }
            let all = load(&args.a)?;
            let a = runs_of_kernel(&all, ka, &args.a)?;
            let b = runs_of_kernel(&all, kb, &args.a)?;
            (a, b, ka.clone(), kb.clone(), true)
        }
        (None, None) => {
            bail!("compare needs two selections A B, or one with --kernels KERNEL_A KERNEL_B")
        }
        (Some(_), Some(_)) => {
            bail!("--kernels compares kernels of one selection; give one, not A and B")
        }
    };
    let mut all = a.clone();
    all.extend(b.iter().cloned());
    select::check_mix(&all, true)?;
    // Two selections are two sessions (or more); `--kernels` compares within one.
    let cross = crate::cross_file::Cross {
        results_dir: dir.clone(),
        allow_busy: args.allow_busy,
    };
    // Timed rows take the statistical path, exact rows (guest instructions) their own.
    let r = crate::exact::compare_by_unit(
        &a,
        &b,
        (&a_name, &b_name),
        kernel_cmp,
        args.threshold,
        args.allow_mixed,
        crate::exact::Rules {
            exact: &args.exact.policy()?,
            cross: args.b.is_some().then_some(&cross),
        },
    )?;
    print!("{}", r.text);
    Ok(if r.regression {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::bench::execute;
    use crate::exec::mock::Mock;
    use crate::progress::Recorder;

    fn mock_file(factor: f64, seed: u64, label: &str) -> ResultFile {
        let p = crate::profile::load(None, &util::project_root()).unwrap();
        let plan = crate::plan::plan(&p, false, seed);
        let mut m = Mock {
            factor,
            ..Mock::default()
        };
        let ex = execute(&plan, &mut m, 1, seed, &mut Recorder::default()).unwrap();
        let mut f = ResultFile::new("m", label, "2026-01-01T00:00:00Z", Default::default());
        f.seed = seed;
        f.contexts = ex.contexts;
        f.runs = ex.runs;
        f
    }

    #[test]
    fn a_five_percent_regression_fails_and_a_rerun_passes() {
        let a = mock_file(1.0, 1, "base");
        let rerun = mock_file(1.0, 2, "rerun");
        let slow = mock_file(1.05, 3, "slow");
        let (lines, unmatched) = compare(std::slice::from_ref(&a), &[rerun], 2.0);
        assert_eq!(unmatched, 0);
        assert!(!lines.is_empty());
        assert!(
            lines.iter().all(|l| l.cmp.verdict != Verdict::Slower),
            "{}",
            render(&lines)
        );
        let (lines, _) = compare(&[a], &[slow], 2.0);
        assert!(
            lines.iter().all(|l| l.cmp.verdict == Verdict::Slower),
            "{}",
            render(&lines)
        );
        let t = render(&lines);
        assert!(t.contains("| sim:x86_64:upstream:order9 "), "{t}");
        assert!(t.contains("5.0%"), "{t}");
    }

    use crate::table::kernel_fixture::{K61, K612, two_kernels};

    fn args(a: &std::path::Path, kernels: &[&str]) -> CompareArgs {
        CompareArgs {
            a: a.display().to_string(),
            b: None,
            kernels: Some(kernels.iter().map(|k| k.to_string()).collect()),
            threshold: 2.0,
            allow_mixed: false,
            allow_busy: false,
            results: "results".into(),
            exact: Default::default(),
        }
    }

    #[test]
    fn two_kernels_of_one_file_compare_layout_by_layout() {
        let f = two_kernels(results::Accel::Tcg);
        let all = std::slice::from_ref(&f);
        let a = runs_of_kernel(all, K61, "f").unwrap();
        let b = runs_of_kernel(all, &format!("{K612} (tcg)"), "f").unwrap();
        assert!(kernel_mismatch(&a, &b).is_none());
        let (lines, unmatched) = compare(&a, &b, 2.0);
        // order0 and pte-order9 on both; mthp-64k only on 6.12, and named.
        assert_eq!(lines.len(), 2);
        assert_eq!(unmatched, 1);
        let any_kernel = Matching {
            any_kernel: true,
            ..Matching::default()
        };
        let (_, named) = compare_matching(&a, &b, 2.0, any_kernel);
        assert_eq!(named, ["real:x86_64:fork:mthp-64k:tcg (B only)"]);
        let t = render(&lines);
        let pte9 = lines
            .iter()
            .find(|l| l.variant.layout_name() == "pte-order9")
            .unwrap();
        assert_eq!(pte9.cmp.verdict, Verdict::Faster, "{t}");
        assert!(t.contains("-75.0%"), "{t}");
        // B against itself: nothing to report.
        let (same, _) = compare(&a, &a, 2.0);
        assert!(same.iter().all(|l| l.cmp.verdict != Verdict::Slower));
        // The other way round is a regression: exit 1.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("20260101T000000Z-guests.json");
        f.save_new(&p).unwrap();
        assert_eq!(run(&args(&p, &[K61, K612])).unwrap(), ExitCode::SUCCESS);
        assert_eq!(run(&args(&p, &[K612, K61])).unwrap(), ExitCode::from(1));
    }

    #[test]
    fn a_kernel_not_in_the_file_is_one_error_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("20260101T000000Z-guests.json");
        two_kernels(results::Accel::Tcg).save_new(&p).unwrap();
        let e = format!("{:#}", run(&args(&p, &[K61, "6.9.0"])).unwrap_err());
        assert_eq!(
            e,
            format!(
                "kernel '6.9.0' is not in {} (kernels: {K61} (tcg), {K612} (tcg))",
                p.display()
            )
        );
        let e = format!("{:#}", run(&args(&p, &[K61, K61])).unwrap_err());
        assert!(e.contains("twice"), "{e}");
        let mut no_b = args(&p, &[]);
        no_b.kernels = None;
        let e = format!("{:#}", run(&no_b).unwrap_err());
        assert!(e.contains("--kernels KERNEL_A KERNEL_B"), "{e}");
    }

    #[test]
    fn files_of_several_kernels_compare_kernel_by_kernel() {
        let a = two_kernels(results::Accel::Tcg);
        let (lines, unmatched) = compare(std::slice::from_ref(&a), std::slice::from_ref(&a), 2.0);
        // Each kernel's layouts against the same kernel's: 2 + 3, none merged.
        assert_eq!((lines.len(), unmatched), (5, 0));
        let mut one = a.clone();
        one.runs.retain(|r| r.variant.row_name() == K612);
        let e = kernel_mismatch(&[a], &[one]).unwrap();
        assert!(e.contains("--kernels A B"), "{e}");
    }

    /// A's or B's file of the A/B scenario: the mock's quick plan on kernel `kernel`, real runs
    /// under `sched`, by `euid`, on `cpu`, from tool revision `rev`; model samples x `model`.
    /// A mock bench file of `label`: real runs on `kernel` under `sched`, tool revision `rev`,
    /// the model's samples scaled by `model`.
    pub(crate) fn side(
        label: &str,
        kernel: &str,
        sched: results::Sched,
        rev: &str,
        model: f64,
    ) -> ResultFile {
        let mut f = mock_file(1.0, 7, label);
        f.git_rev = rev.into();
        f.env.cpu_model = Some("AMD EPYC 7B13".into());
        for r in &mut f.runs {
            match &mut r.variant {
                Variant::Real(v) => {
                    v.kernel = kernel.into();
                    v.sched = sched;
                }
                Variant::Sim(_) => {
                    for s in &mut r.samples_ns {
                        *s = (*s as f64 * model) as u64;
                    }
                }
            }
        }
        f
    }

    /// B against A across files, with a noise file of 1% session spread around A's means.
    fn ab(a: &ResultFile, b: &ResultFile, allow_mixed: bool) -> anyhow::Result<Report> {
        use crate::cross_file::{Cross, fixtures};
        let d = tempfile::tempdir().unwrap();
        fixtures::store(d.path(), &fixtures::noise_around(a, 0.01, "6.1", "noise"));
        let cross = Cross {
            results_dir: d.path().into(),
            allow_busy: false,
        };
        let (a, b) = (std::slice::from_ref(a), std::slice::from_ref(b));
        check_and_compare(
            a,
            b,
            ("A", "B"),
            kernels_differ(a, b),
            1.0,
            allow_mixed,
            Some(&cross),
        )
    }

    use results::Sched::{Batch, Fifo};

    #[test]
    fn each_differing_field_is_refused_by_name() {
        let a = side("A", "6.1", Fifo, "r1", 1.0);
        let sched = side("B", "6.12", Batch, "r1", 1.0);
        let e = ab(&a, &sched, false).unwrap_err().to_string();
        assert_eq!(
            e,
            "A (A) and B (B) differ in sched (fifo vs batch): pass --allow-mixed to compare anyway"
        );
        let mut mem = side("B", "6.12", Fifo, "r1", 1.0);
        for r in &mut mem.runs {
            if let Variant::Real(v) = &mut r.variant {
                v.mem_bytes = 128 << 20;
            }
        }
        let e = ab(&a, &mem, false).unwrap_err().to_string();
        assert!(e.contains("differ in mem (1 GiB vs 128 MiB)"), "{e}");
        let mut cpu = side("B", "6.12", Fifo, "r1", 1.0);
        cpu.env.cpu_model = Some("Ampere Altra".into());
        let e = ab(&a, &cpu, false).unwrap_err().to_string();
        assert!(
            e.contains("differ in cpu model (AMD EPYC 7B13 vs Ampere Altra)"),
            "{e}"
        );
        let mut user = side("B", "6.12", Fifo, "r1", 1.0);
        for c in &mut user.contexts {
            c.env.euid = 1000;
        }
        let e = ab(&a, &user, false).unwrap_err().to_string();
        assert!(
            e.contains("differ in privileges (root vs not root (euid 1000))"),
            "{e}"
        );
        // Several at once: one line, every field.
        let e = ab(
            &a,
            &{
                let mut x = sched.clone();
                x.env.cpu_model = Some("Ampere Altra".into());
                x
            },
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains(
                "differ in sched (fifo vs batch), cpu model (AMD EPYC 7B13 vs Ampere Altra):"
            ),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn allow_mixed_goes_on_and_says_what_was_mixed() {
        let a = side("A", "6.1", Fifo, "r1", 1.0);
        let b = side("B", "6.12", Batch, "r1", 1.0);
        let r = ab(&a, &b, true).unwrap();
        assert!(
            r.text.starts_with(
                "MIXED (--allow-mixed): A (A) and B (B) differ in sched (fifo vs batch); \
                 rows were matched regardless\n"
            ),
            "{}",
            r.text
        );
        // Matched by layout across the sched modes: all 5 real layouts, none on one side only.
        assert_eq!(
            r.text.matches("| real:x86_64:fork:").count(),
            5,
            "{}",
            r.text
        );
        assert!(!r.text.contains("one side only"), "{}", r.text);
    }

    #[test]
    fn a_kernel_comparison_reports_real_rows_and_the_model_only_as_a_tool_change() {
        // Same tool revision: the model is left out, even 50% slower.
        let a = side("A", "6.1", Fifo, "r1", 1.0);
        let b = side("B", "6.12", Fifo, "r1", 1.5);
        let r = ab(&a, &b, false).unwrap();
        assert!(!r.regression, "{}", r.text);
        assert!(
            r.text
                .contains("kernel comparison (6.1 vs 6.12): real-fork rows only"),
            "{}",
            r.text
        );
        assert_eq!(r.text.matches("| real:").count(), 5, "{}", r.text);
        assert!(!r.text.contains("| sim:"), "{}", r.text);
        assert!(
            r.text.contains("30 model variant(s) left out: the model does not depend on the kernel, and both sides ran the same tool revision"),
            "{}",
            r.text
        );
        // Another tool revision: the model's rows are shown apart, and do not fail the compare.
        let b2 = side("B", "6.12", Fifo, "r2", 1.5);
        let r = ab(&a, &b2, false).unwrap();
        assert!(!r.regression, "{}", r.text);
        let (kernel, tool) = r
            .text
            .split_once("Tool change, not a kernel regression")
            .unwrap();
        assert!(!kernel.contains("| sim:"), "{kernel}");
        assert!(
            tool.contains("\n  A: git r1, tool 0.1.0\n  B: git r2, tool 0.1.0\n"),
            "{tool}"
        );
        assert_eq!(tool.matches("| sim:").count(), 30, "{tool}");
        assert!(
            tool.contains("tool change beyond the noise threshold"),
            "{tool}"
        );
        assert!(!tool.contains("REGRESSION"), "{tool}");
        // The same kernel on both sides (two tool revisions, the CI gate): the model counts.
        let a2 = side("A", "6.12", Fifo, "r1", 1.0);
        let r = ab(&a2, &b2, false).unwrap();
        assert!(r.regression, "{}", r.text);
        assert!(
            r.text
                .contains("REGRESSION beyond the noise threshold: sim:"),
            "{}",
            r.text
        );
        // Real rows come first.
        let first_row = r
            .text
            .lines()
            .find(|l| l.starts_with("| real:") || l.starts_with("| sim:"));
        assert!(first_row.unwrap().starts_with("| real:"), "{}", r.text);
    }

    #[test]
    fn one_noise_threshold_default() {
        assert_eq!(DEFAULT_THRESHOLD, 1.0);
        let p = args(std::path::Path::new("x"), &[]);
        assert_eq!(p.threshold, 2.0, "the test helper's own value");
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            c: CompareArgs,
        }
        let c = Cli::parse_from(["compare", "A", "B"]).c;
        assert_eq!(c.threshold, stats::DEFAULT_NOISE * 100.0);
        assert_eq!(Policy::default().noise, stats::DEFAULT_NOISE);
    }
}
