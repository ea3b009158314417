//! Verdicts across result files. Two files are two sessions, and the spread of sessions on a
//! machine is often far above the spread of runs within one; so `compare A B` and `table A B`
//! judge a row of one file against a row of another with the machine's *between-session
//! noise* ([`stats::session`]), read from the noise files `cargo xtask noise` wrote
//! ([`crate::noise_file`]):
//! - the estimate of a variant comes from the newest noise file of the sides' machine that
//!   holds it, preferring one measured on a kernel of either side: the noise is the machine's,
//!   measured once on one kernel and taken to hold for the kernels compared on it (the output
//!   names the file, when and on which kernel it was measured, and its sessions);
//! - a side's file that is itself a session of that noise file (same machine, kernel, tool)
//!   and not yet in it counts as one more session: the estimate pools every session there is;
//! - no estimate: `unknown (between-session noise not measured here: cargo xtask noise)`;
//! - a side whose load check fired: `unknown (A was measured on a busy machine)`, unless
//!   `--allow-busy`; sides of different machines: unknown, no machine's noise applies;
//! - exact rows (instruction counts) keep their own rule: they have no session term.
//!
//! Within one file (layouts of one bench, kernels interleaved by `--kernel`) runs share the
//! session and keep the within-file test; this module is not asked about them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use contract::SampleUnit;
use results::{ResultFile, Variant};
use stats::session::Between;
use stats::{Comparison, Policy, Summary};

use crate::noise_file::{self, NoiseFile, Tools};

/// What the between-session rule made of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowNoise {
    /// Judged with the measured noise: the row's threshold (fraction) and sessions.
    Measured { threshold: f64, sessions: usize },
    /// No verdict, and why (the text in brackets after `unknown`).
    Unknown(String),
}

impl RowNoise {
    /// The threshold column: `±3.1% (5)`, or `n/a`.
    pub fn cell(&self) -> String {
        match self {
            RowNoise::Measured {
                threshold,
                sessions,
            } => format!("±{} ({sessions})", report::pct(*threshold)),
            RowNoise::Unknown(_) => "n/a".into(),
        }
    }
}

/// The reason given when a machine has no noise estimate for a row.
pub const NOT_MEASURED: &str = "between-session noise not measured here: cargo xtask noise";

/// One side of a cross-file comparison: its name (`A`, `B`) and files.
pub struct Side<'a> {
    pub name: &'a str,
    pub files: Vec<&'a ResultFile>,
}

/// A noise estimate found for a variant.
struct Found {
    between: Between,
    file: usize,
}

/// A noise file that holds a variant: its place, rank, estimate and the sides it took in.
struct Candidate {
    file: usize,
    rank: (bool, usize, String),
    between: Between,
    folded: BTreeSet<usize>,
}

/// The estimate of `key` from noise file `nf`'s sessions and the sides' files that are
/// sessions of it (not busy, not listed already), and which sides those were; None with
/// fewer than two sessions.
fn pooled(
    nf: &NoiseFile,
    sides: &[Side<'_>],
    tools: &mut Tools,
    key: &Variant,
    keyf: &dyn Fn(&Variant) -> Variant,
) -> Option<(Between, BTreeSet<usize>)> {
    let mut summaries: Vec<Summary> = nf
        .variants
        .iter()
        .filter(|vs| keyf(&vs.variant) == *key)
        .flat_map(|vs| vs.sessions.iter().map(|s| s.summary()))
        .collect();
    if summaries.is_empty() {
        return None;
    }
    let mut folded = BTreeSet::new();
    for (si, side) in sides.iter().enumerate() {
        for f in &side.files {
            if nf.has_session(&f.created_utc, f.seed) || noise_file::load_check(f).busy {
                continue;
            }
            for (v, s) in noise_file::session_summaries(f) {
                // One session, one summary (even if several of its variants match the key).
                if keyf(&v) == *key && noise_file::counts_as_session(f, &v, nf, tools) {
                    summaries.push(s);
                    folded.insert(si);
                    break;
                }
            }
        }
    }
    Some((stats::session::estimate(&summaries)?, folded))
}

/// Judges the rows of one cross-file comparison and remembers what it used, for the header.
pub struct Judge<'a> {
    sides: [Side<'a>; 2],
    noise: Vec<(PathBuf, NoiseFile)>,
    tools: Tools,
    /// Why no row gets a verdict, whatever the noise (busy sides, two machines).
    blocked: Option<String>,
    busy_lines: Vec<String>,
    policy: Policy,
    used: BTreeSet<usize>,
    /// Sides that counted as a session of a noise file.
    folded: BTreeSet<usize>,
    any_measured: bool,
    any_missing: bool,
}

impl<'a> Judge<'a> {
    /// A judge for `a` against `b`: the noise files of their machine under `results_dir`,
    /// whether a busy side may still get verdicts, and the threshold floor (a fraction).
    pub fn new(
        results_dir: &Path,
        a: Side<'a>,
        b: Side<'a>,
        allow_busy: bool,
        floor: f64,
    ) -> anyhow::Result<Judge<'a>> {
        let machines: BTreeSet<&str> = a
            .files
            .iter()
            .chain(&b.files)
            .map(|f| f.machine.as_str())
            .collect();
        let cpus: BTreeSet<&str> = a
            .files
            .iter()
            .chain(&b.files)
            .filter_map(|f| f.env.cpu_model.as_deref())
            .filter(|c| !c.is_empty())
            .collect();
        let mut blocked = None;
        let noise = if machines.len() != 1 {
            blocked = Some(format!(
                "{} and {} are of different machines: no machine's noise applies",
                a.name, b.name
            ));
            Vec::new()
        } else if cpus.len() > 1 {
            // One machine name, two CPUs (a VM moved to other hardware): two machines.
            blocked = Some(format!(
                "{} and {} ran on different CPUs: {}; no machine's noise applies to both",
                a.name,
                b.name,
                cpus.iter().copied().collect::<Vec<_>>().join(" vs ")
            ));
            Vec::new()
        } else {
            let cpu = cpus.first().copied().unwrap_or("");
            let mut all =
                noise_file::load_all(results_dir, machines.first().copied().unwrap_or(""))?;
            all.retain(|(_, nf)| nf.fits_cpu(cpu));
            all
        };
        let mut busy_names = Vec::new();
        let mut busy_lines = Vec::new();
        for side in [&a, &b] {
            let mut busy = false;
            for f in &side.files {
                let check = noise_file::load_check(f);
                if let (true, Some(w)) = (check.busy, check.warning.as_ref()) {
                    busy = true;
                    busy_lines.push(format!(
                        "{} ({}): {}",
                        side.name,
                        f.label,
                        w.trim_start_matches("warning: ")
                    ));
                }
            }
            if busy {
                busy_names.push(side.name);
            }
        }
        if !busy_names.is_empty() && !allow_busy && blocked.is_none() {
            blocked = Some(match busy_names.as_slice() {
                [one] => format!("{one} was measured on a busy machine"),
                _ => format!(
                    "{} were measured on a busy machine",
                    busy_names.join(" and ")
                ),
            });
        }
        Ok(Judge {
            sides: [a, b],
            noise,
            tools: Tools::new(&crate::util::project_root()),
            blocked,
            busy_lines,
            policy: Policy {
                noise: floor,
                ..Policy::default()
            },
            used: BTreeSet::new(),
            folded: BTreeSet::new(),
            any_measured: false,
            any_missing: false,
        })
    }

    /// The kernels the sides' runs of the variants `which` takes measured.
    fn kernels(&self, which: &dyn Fn(&Variant) -> bool) -> BTreeSet<String> {
        self.sides
            .iter()
            .flat_map(|s| &s.files)
            .flat_map(|f| {
                f.runs
                    .iter()
                    .filter(|r| which(&r.variant))
                    .filter_map(|r| noise_file::kernel_of(f, &r.variant))
            })
            .collect()
    }

    /// The estimate for `key` (a variant as matched by `keyf`): the best noise file holding
    /// it (one measured on a kernel of the sides first, then the most sessions, then the
    /// newest), with the sides' files that are sessions of it added.
    fn find(&mut self, key: &Variant, keyf: &dyn Fn(&Variant) -> Variant) -> Option<Found> {
        let side_kernels = self.kernels(&|v| keyf(v) == *key);
        let mut best: Option<Candidate> = None;
        for (i, (_, nf)) in self.noise.iter().enumerate() {
            let Some((between, folded)) = pooled(nf, &self.sides, &mut self.tools, key, keyf)
            else {
                continue;
            };
            let rank = (
                side_kernels.contains(&nf.kernel),
                between.sessions,
                nf.created_utc.clone(),
            );
            if best.as_ref().is_none_or(|b| rank > b.rank) {
                best = Some(Candidate {
                    file: i,
                    rank,
                    between,
                    folded,
                });
            }
        }
        let best = best?;
        self.used.insert(best.file);
        self.folded.extend(best.folded);
        Some(Found {
            between: best.between,
            file: best.file,
        })
    }

    /// Judge one cross-file row: `cmp` is today's comparison of `new` (variant `new_key`, of
    /// side B) against `base` (`base_key`, side A). Returns the comparison to show and what
    /// the rule made of it; exact rows come back as they were, with None.
    pub fn judge(
        &mut self,
        base_key: &Variant,
        new_key: &Variant,
        keyf: &dyn Fn(&Variant) -> Variant,
        cmp: &Comparison,
    ) -> (Comparison, Option<RowNoise>) {
        if new_key.unit() == SampleUnit::Instructions || base_key.unit() == SampleUnit::Instructions
        {
            return (*cmp, None);
        }
        let unknown = |why: String| {
            (
                Comparison {
                    verdict: stats::Verdict::Unknown,
                    runs_needed: None,
                    ..*cmp
                },
                Some(RowNoise::Unknown(why)),
            )
        };
        if let Some(why) = &self.blocked {
            // The row says what; the header line above the table says the rest.
            return unknown(why.split(':').next().unwrap_or(why).to_string());
        }
        let base = self.find(base_key, keyf);
        let new = if base_key == new_key {
            base.as_ref().map(|f| Found {
                between: f.between,
                file: f.file,
            })
        } else {
            self.find(new_key, keyf)
        };
        let (Some(base), Some(new)) = (base, new) else {
            self.any_missing = true;
            return unknown(NOT_MEASURED.into());
        };
        self.any_measured = true;
        let c = stats::session::compare_each(
            &cmp.base,
            &base.between,
            &cmp.new,
            &new.between,
            &self.policy,
        );
        let threshold = base
            .between
            .threshold(self.policy.noise)
            .max(new.between.threshold(self.policy.noise));
        let sessions = base.between.sessions.min(new.between.sessions);
        (
            c,
            Some(RowNoise::Measured {
                threshold,
                sessions,
            }),
        )
    }

    /// What the verdicts rested on, for above the table: the noise files used (when, on which
    /// kernel, how many sessions), the sides that counted as sessions, busy sides, or why no
    /// estimate applied.
    pub fn header(&self) -> String {
        let mut s = String::from(
            "cross-file comparison: each result file is one session; verdicts include the \
             machine's between-session noise\n",
        );
        for l in &self.busy_lines {
            s.push_str(&format!("busy: {l}\n"));
        }
        if let Some(why) = &self.blocked {
            s.push_str(&format!(
                "no verdicts: {why}{}\n",
                if why.contains("busy") {
                    " (--allow-busy to judge anyway)"
                } else {
                    ""
                }
            ));
            return s;
        }
        let kernels = self.kernels(&|_| true);
        for &i in &self.used {
            let (path, nf) = &self.noise[i];
            let own = nf
                .sessions
                .iter()
                .filter(|s| s.source.starts_with("noise session"))
                .count();
            s.push_str(&format!(
                "noise: {} (measured {} on kernel {}, git {}, {} sessions: {own} run {} s apart, {} \
                 result files)\n",
                crate::util::relative_to_root(path),
                nf.created_utc,
                nf.kernel,
                short_rev(&nf.git_rev),
                nf.sessions.len(),
                nf.gap_secs,
                nf.sessions.len() - own,
            ));
            if !kernels.contains(&nf.kernel) {
                s.push_str(&format!(
                    "  measured on another kernel than the sides' ({}): the machine's noise is \
                     taken to hold for them\n",
                    kernels.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if !self.folded.is_empty() {
            let names: Vec<&str> = self.folded.iter().map(|&i| self.sides[i].name).collect();
            s.push_str(&format!(
                "  {} counted as {} of that noise too (same machine, kernel and tool)\n",
                names.join(" and "),
                if names.len() == 1 {
                    "a session"
                } else {
                    "sessions"
                }
            ));
        }
        if self.any_missing {
            s.push_str(&format!(
                "rows without a noise estimate: unknown ({NOT_MEASURED})\n"
            ));
        }
        if self.any_measured {
            s.push_str(
                "noise column: a row's threshold, the larger of the floor and the spread of \
                 session means, and (in brackets) the sessions it was measured from\n",
            );
        }
        s
    }
}

fn short_rev(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

/// Where and how `compare` and `table` judge across files: the results directory holding the
/// machines' noise files, and whether busy sides still get verdicts.
#[derive(Debug, Clone)]
pub struct Cross {
    pub results_dir: PathBuf,
    pub allow_busy: bool,
}

/// Judge `compare`'s rows of A against B across files (nothing to do without `cross`): each
/// line's comparison is replaced by the between-session one, with `floor` (a fraction, the
/// `--threshold`) under every row's threshold. Returns the header to print above the table.
pub fn judge_lines(
    cross: Option<&Cross>,
    (a, b): (&[ResultFile], &[ResultFile]),
    lines: &mut [crate::compare::Line],
    matching: crate::compare::Matching,
    floor: f64,
) -> anyhow::Result<Option<String>> {
    let Some(cross) = cross else {
        return Ok(None);
    };
    let mut judge = Judge::new(
        &cross.results_dir,
        Side {
            name: "A",
            files: a.iter().collect(),
        },
        Side {
            name: "B",
            files: b.iter().collect(),
        },
        cross.allow_busy,
        floor,
    )?;
    let keyf = |v: &Variant| matching.key(v);
    for l in lines.iter_mut() {
        let (cmp, noise) = judge.judge(&l.variant, &l.variant, &keyf, &l.cmp);
        l.cmp = cmp;
        l.noise = noise;
    }
    Ok(Some(judge.header()))
}

/// The verdict text of a row judged by the rule: `unknown (why)` when it has no verdict.
pub fn verdict_text(verdict: stats::Verdict, noise: Option<&RowNoise>) -> Option<String> {
    match noise {
        Some(RowNoise::Unknown(why)) if verdict == stats::Verdict::Unknown => {
            Some(format!("unknown ({why})"))
        }
        _ => None,
    }
}

/// Judge `table`'s rows across files: a row of another file than its case's baseline row (a
/// row of another label, or of a label merged from several files) gets the between-session
/// comparison in place of the within-file one. Returns the notes to print under the tables:
/// per pair of labels what the verdicts rested on, and each judged variant's threshold.
pub fn judge_cases(
    cross: &Cross,
    files: &[ResultFile],
    cases: &mut [report::Case],
    floor: f64,
) -> anyhow::Result<Option<String>> {
    let of_label =
        |label: &str| -> Vec<&ResultFile> { files.iter().filter(|f| f.label == label).collect() };
    let keyf = |v: &Variant| {
        crate::compare::Matching {
            any_kernel: true,
            ..Default::default()
        }
        .key(v)
    };
    let mut judges: Vec<((String, String), Judge<'_>)> = Vec::new();
    let mut thresholds: std::collections::BTreeMap<String, String> = Default::default();
    for case in cases.iter_mut() {
        let Some(base) = case.rows.iter().find(|r| r.name == case.baseline).cloned() else {
            continue;
        };
        for row in case.rows.iter_mut() {
            let one_session = row.label == base.label && of_label(&row.label).len() == 1;
            let Some(cmp) = row.cmp else {
                continue;
            };
            if row.name == base.name || one_session {
                continue;
            }
            let pair = (base.label.clone(), row.label.clone());
            let at = match judges.iter().position(|(p, _)| *p == pair) {
                Some(i) => i,
                None => {
                    let j = Judge::new(
                        &cross.results_dir,
                        Side {
                            name: "A",
                            files: of_label(&base.label),
                        },
                        Side {
                            name: "B",
                            files: of_label(&row.label),
                        },
                        cross.allow_busy,
                        floor,
                    )?;
                    judges.push((pair, j));
                    judges.len() - 1
                }
            };
            let judge = &mut judges[at].1;
            let (c, noise) = judge.judge(&keyf(&base.variant), &keyf(&row.variant), &keyf, &cmp);
            row.cmp = Some(c);
            if let Some(RowNoise::Measured { .. }) = &noise {
                thresholds.insert(
                    keyf(&row.variant).id(),
                    noise.as_ref().map(RowNoise::cell).unwrap_or_default(),
                );
            }
        }
    }
    if judges.is_empty() {
        return Ok(None);
    }
    let mut s = String::new();
    for ((base, new), j) in &judges {
        s.push_str(&format!("'{new}' (B) against '{base}' (A): {}", j.header()));
    }
    for (id, cell) in &thresholds {
        s.push_str(&format!("noise threshold {id}: {cell}\n"));
    }
    Ok(Some(s))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Synthetic noise files for tests: sessions around a result file's own means.
    use super::*;
    use crate::noise_file::{Session, SessionMeans, VariantSessions};

    /// A noise file of `f`'s machine and every variant of `f`: three sessions whose log means
    /// sit at -spread, 0, +spread around the file's means (so their sd is `spread`), 8 runs of
    /// 0.5% each; measured on `kernel` by tool revision `rev`.
    pub fn noise_around(f: &ResultFile, spread: f64, kernel: &str, rev: &str) -> NoiseFile {
        let offsets = [-spread, 0.0, spread];
        let sessions = (0..3)
            .map(|i| Session {
                source: format!("noise session {} of 3", i + 1),
                created_utc: format!("2026-12-05T00:0{i}:00Z"),
                seed: 100 + i as u64,
                git_rev: rev.into(),
                busy: false,
            })
            .collect();
        let variants = noise_file::session_summaries(f)
            .into_iter()
            .map(|(variant, s)| VariantSessions {
                variant,
                sessions: offsets
                    .iter()
                    .enumerate()
                    .map(|(i, o)| SessionMeans {
                        session: i,
                        runs: 8,
                        mean_ns: s.mean * o.exp(),
                        std_ns: s.mean * o.exp() * 0.005,
                    })
                    .collect(),
            })
            .collect();
        NoiseFile {
            kind: noise_file::KIND.into(),
            schema: noise_file::SCHEMA,
            machine: f.machine.clone(),
            cpu_model: f.env.cpu_model.clone().unwrap_or_default(),
            kernel: kernel.into(),
            git_rev: rev.into(),
            tool_version: f.tool_version.clone(),
            created_utc: "2026-12-05T00:10:00Z".into(),
            profile: "local".into(),
            quick: false,
            gap_secs: 600,
            sessions,
            variants,
        }
    }

    /// Write `noise` where `compare` and `table` look for it under `results_dir`.
    pub fn store(results_dir: &Path, noise: &NoiseFile) -> PathBuf {
        let p = noise_file::dir(results_dir, &noise.machine).join(noise_file::file_name(
            &noise.created_utc.replace(['-', ':'], ""),
            &noise.kernel,
        ));
        results::fsio::write_new(&p, serde_json::to_string(noise).unwrap().as_bytes()).unwrap();
        p
    }

    /// Mark `f` as measured on a busy machine, as `bench` records it.
    pub fn busy(f: &mut ResultFile) {
        for r in &mut f.runs {
            r.host_load = Some(results::HostLoad {
                other_cpus_busy_pct: Some(60.0),
                pinned_cpu_foreign_pct: None,
                concurrent_forkbench: 0,
            });
        }
        f.load_check = Some(crate::bench::load_check(&f.runs));
        assert!(f.load_check.as_ref().unwrap().busy);
    }
}

#[cfg(test)]
mod tests;
