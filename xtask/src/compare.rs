//! `cargo xtask compare A B [--threshold PCT]`: per variant present in both selections, B
//! against A (Welch test, 95% CI of the ratio, verdict with the threshold as noise level).
//! `cargo xtask compare FILE --kernels A B`: the same between two kernels of one selection
//! (a file of guest runs holds several), B's real-fork runs against A's.
//! Exit 1 when any variant is *slower*: significant and the whole CI above +threshold (a CI
//! gate); exit 0 otherwise; exit 2 on bad input.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use results::{ResultFile, Variant};
use stats::{Policy, Summary, Verdict};

use crate::{select, util};

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
    /// Regression threshold in percent (also the noise level of the verdict)
    #[arg(long, default_value_t = 2.0)]
    pub threshold: f64,
    /// Compare files of different machines anyway
    #[arg(long)]
    pub allow_mixed: bool,
    /// Where labels are looked up
    #[arg(long, default_value = "results")]
    pub results: String,
}

/// One compared variant.
#[derive(Debug, Clone)]
pub struct Line {
    pub variant: Variant,
    pub cmp: stats::Comparison,
}

/// Run means per variant. Labels are ignored (they name the kernels being compared), and so
/// is a real-fork run's kernel release when `any_kernel` (A and B are usually different
/// kernels).
fn means(files: &[ResultFile], any_kernel: bool) -> BTreeMap<Variant, Vec<f64>> {
    let mut m: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    for f in files {
        for r in &f.runs {
            let mut v = r.variant.clone();
            if let Variant::Real(real) = &mut v
                && any_kernel
            {
                real.kernel = "fork".into();
            }
            m.entry(v).or_default().push(r.mean_ns());
        }
    }
    m
}

/// The kernel releases of a selection's real-fork runs.
fn releases(files: &[ResultFile]) -> BTreeSet<&str> {
    files
        .iter()
        .flat_map(|f| &f.runs)
        .filter_map(|r| match &r.variant {
            Variant::Real(v) => Some(v.kernel.as_str()),
            Variant::Sim(_) => None,
        })
        .collect()
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
/// several kernels, see [`kernel_mismatch`]).
pub fn compare(a: &[ResultFile], b: &[ResultFile], threshold: f64) -> (Vec<Line>, usize) {
    let policy = Policy {
        noise: threshold / 100.0,
        ..Policy::default()
    };
    let any_kernel = releases(a).len() <= 1 && releases(b).len() <= 1;
    let (ma, mb) = (means(a, any_kernel), means(b, any_kernel));
    let mut out = Vec::new();
    let mut unmatched = 0;
    for (v, xa) in &ma {
        let Some(xb) = mb.get(v) else {
            unmatched += 1;
            continue;
        };
        if let (Some(sa), Some(sb)) = (Summary::of(xa), Summary::of(xb)) {
            out.push(Line {
                variant: v.clone(),
                cmp: stats::compare(&sa, &sb, &policy),
            });
        }
    }
    unmatched += mb.keys().filter(|k| !ma.contains_key(*k)).count();
    (out, unmatched)
}

/// The comparison as a Markdown table.
pub fn render(lines: &[Line]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "variant".into(),
        "A ms".into(),
        "B ms".into(),
        "change".into(),
        "95% CI".into(),
        "p".into(),
        "verdict".into(),
    ]];
    for l in lines {
        let c = &l.cmp;
        rows.push([
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
            match (c.verdict, c.runs_needed) {
                (Verdict::Unknown, Some(n)) => format!("unknown (~{n} runs)"),
                (v, _) => v.to_string(),
            },
        ]);
    }
    let mut w = [0usize; 7];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let mut s = String::new();
    for (k, r) in rows.iter().enumerate() {
        s.push('|');
        for (i, c) in r.iter().enumerate() {
            if i == 0 || i == 4 || i == 6 {
                s.push_str(&format!(" {:<wd$} |", c, wd = w[i]));
            } else {
                s.push_str(&format!(" {:>wd$} |", c, wd = w[i]));
            }
        }
        s.push('\n');
        if k == 0 {
            s.push('|');
            for (i, wd) in w.iter().enumerate() {
                if i == 0 || i == 4 || i == 6 {
                    s.push_str(&format!(":{}|", "-".repeat(wd + 1)));
                } else {
                    s.push_str(&format!("{}:|", "-".repeat(wd + 1)));
                }
            }
            s.push('\n');
        }
    }
    s
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
    let (a, b, a_name, b_name) = match (&args.b, &args.kernels) {
        (Some(b), None) => {
            let (a, b) = (load(&args.a)?, load(b)?);
            let (an, bn) = (names(&a), names(&b));
            (a, b, an, bn)
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
            (a, b, ka.clone(), kb.clone())
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
    if !args.allow_mixed {
        let ma: std::collections::BTreeSet<&str> = all.iter().map(|f| f.machine.as_str()).collect();
        if ma.len() > 1 {
            bail!(
                "A and B come from different machines ({}); pass --allow-mixed to compare anyway",
                ma.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
    }
    if let Some(why) = kernel_mismatch(&a, &b) {
        bail!("{why}");
    }
    let (lines, unmatched) = compare(&a, &b, args.threshold);
    if lines.is_empty() {
        bail!("A and B have no variant in common; nothing to compare");
    }
    let emulated = all
        .iter()
        .flat_map(|f| &f.runs)
        .any(|r| matches!(&r.variant, Variant::Real(v) if v.accel == results::Accel::Tcg));
    if emulated {
        println!("{}\n", report::EMULATED_NOTE);
    }
    println!(
        "B ({b_name}) against A ({a_name}), threshold {:.1}%:\n",
        args.threshold
    );
    print!("{}", render(&lines));
    if unmatched > 0 {
        println!("\n{unmatched} variant(s) present on one side only were not compared");
    }
    let slower: Vec<&Line> = lines
        .iter()
        .filter(|l| l.cmp.verdict == Verdict::Slower)
        .collect();
    let count = |v: Verdict| lines.iter().filter(|l| l.cmp.verdict == v).count();
    println!(
        "\n{} faster, {} slower, {} same, {} unknown",
        count(Verdict::Faster),
        slower.len(),
        count(Verdict::Same),
        count(Verdict::Unknown)
    );
    if slower.is_empty() {
        println!("no significant regression beyond {:.1}%", args.threshold);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "REGRESSION beyond {:.1}%: {}",
            args.threshold,
            slower
                .iter()
                .map(|l| format!("{} {}", l.variant.id(), report::pct(l.cmp.rel.mean_rel)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
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
            results: "results".into(),
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
        // order0 and pte-order9 on both; mthp-64k only on 6.12.
        assert_eq!(lines.len(), 2);
        assert_eq!(unmatched, 1);
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
}
