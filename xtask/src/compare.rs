//! `cargo xtask compare A B [--threshold PCT]`: per variant present in both selections, B
//! against A (Welch test, 95% CI of the ratio, verdict with the threshold as noise level).
//! Exit 1 when any variant is *slower*: significant and the whole CI above +threshold (a CI
//! gate); exit 0 otherwise; exit 2 on bad input.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use results::{ResultFile, Variant};
use stats::{Policy, Summary, Verdict};

use crate::{select, util};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Baseline: result file, directory or label
    pub a: String,
    /// Candidate: result file, directory or label
    pub b: String,
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
/// is a real-fork run's kernel release (A and B are usually different kernels).
fn means(files: &[ResultFile]) -> BTreeMap<Variant, Vec<f64>> {
    let mut m: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
    for f in files {
        for r in &f.runs {
            let mut v = r.variant.clone();
            if let Variant::Real(real) = &mut v {
                real.kernel = "fork".into();
            }
            m.entry(v).or_default().push(r.mean_ns());
        }
    }
    m
}

/// Compare every variant present on both sides.
pub fn compare(a: &[ResultFile], b: &[ResultFile], threshold: f64) -> (Vec<Line>, usize) {
    let policy = Policy {
        noise: threshold / 100.0,
        ..Policy::default()
    };
    let (ma, mb) = (means(a), means(b));
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
    let a: Vec<ResultFile> = select::resolve(std::slice::from_ref(&args.a), &dir)?
        .into_iter()
        .map(|x| x.1)
        .collect();
    let b: Vec<ResultFile> = select::resolve(std::slice::from_ref(&args.b), &dir)?
        .into_iter()
        .map(|x| x.1)
        .collect();
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
    let (lines, unmatched) = compare(&a, &b, args.threshold);
    if lines.is_empty() {
        bail!("A and B have no variant in common; nothing to compare");
    }
    println!(
        "B ({}) against A ({}), threshold {:.1}%:\n",
        b.iter()
            .map(|f| f.label.as_str())
            .collect::<Vec<_>>()
            .join("+"),
        a.iter()
            .map(|f| f.label.as_str())
            .collect::<Vec<_>>()
            .join("+"),
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
}
