//! `cargo xtask calibrate`: fit per-operation costs of the model to the real `fork()` on this
//! machine.
//!
//! **Data.** The real benchmark (`forkbench real`) times 1 GiB forks of `order0`, `pte-order9`,
//! an mTHP layout when the kernel offers one (default `mthp-64k`) and `untouched` (mapped, never
//! faulted: no PTEs to copy, so it measures the fixed per-fork cost), interleaved round by round.
//! The model gives exact op counts of one fork of the same layouts (`forkbench counts`, strategy
//! `upstream` — the host runs a v6.9+ kernel — plus `mm-unstable` for a calibrated v6.7
//! prediction) and its measured userspace copy time (`forkbench sim`).
//!
//! **Identifiability.** Every raw counter is either per PTE (PTE reads, writes, atomics,
//! `_mapcount` atomics, page tables) or per batch (refcount atomic, rmap call, batch set-up,
//! `_large_mapcount` atomic), and on these layouts each group moves (almost) in lockstep: with
//! one column per raw counter the design matrix is wider than it has rows, and its rank is
//! recorded in the profile. So the fit is done on **grouped** features:
//! `fixed` (1 per fork), `per_page` (`mapcount_atomics`: the per-page rmap atomic plus all the
//! per-PTE kernel work the model does not count), `per_batch` (`batches`: one refcount atomic,
//! one rmap call and the batch set-up; `refcount_atomics` and `rmap_calls` equal `batches` on
//! every calibration layout). The raw PTE load/store/CAS costs, which only *differ* between
//! strategies, are not identifiable from layouts at all and are **fixed from a userspace
//! microbenchmark** ([`crate::microbench`]) before the fit.
//!
//! **Fit.** NNLS ([`crate::nnls`]) of real time minus the fixed microbenchmark terms over the
//! grouped features, each row weighted by 1/real time (relative error). Four rows (three PTE
//! layouts + untouched), three unknowns: one degree of freedom of residual. Cross-validation
//! drops one PTE layout, fits the other two + untouched exactly and predicts the held-out one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::microbench::{PteOpCosts, measure_pte_ops};
use crate::nnls;
use crate::profile::{
    AltFit, CostProfile, CostTerm, CrossValidation, LayoutFit, PROFILE_KIND, PROFILE_SCHEMA,
    Prediction, Settings, fmt_ns,
};
use crate::runner::{self, ModelSpec, Ops, Timing};
use crate::util;
use crate::{CalibrateError, Result};

/// Arguments of `cargo xtask calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Memory per fork (real and model)
    #[arg(long, default_value = "1G")]
    pub mem: String,
    /// Timed forks per run
    #[arg(long, default_value_t = 100)]
    pub iters: u32,
    /// Runs per layout (interleaved round by round)
    #[arg(long, default_value_t = 8)]
    pub runs: u32,
    /// CPU to pin to (default: the last CPU)
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Scheduling of the real benchmark: other, batch or fifo
    #[arg(long, default_value = "fifo")]
    pub sched: String,
    /// Repeat mode of real fork and model: steady (fork the same parent again) or fresh
    #[arg(long, default_value = "steady")]
    pub mode: String,
    /// mTHP layout size, e.g. 64k; `none` to skip (default: 64k if the kernel offers it, else
    /// the smallest offered size above 8k)
    #[arg(long)]
    pub mthp: Option<String>,
    /// Model mapcount variant matching the host kernel (v6.11+ with CONFIG_PAGE_MAPCOUNT:
    /// per-page+large)
    #[arg(long, default_value = "per-page+large")]
    pub mapcount: String,
    /// Output directory of the profile (default: <root>/results/calibration)
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Do not measure: refit the raw data stored in an existing profile and write a new one
    #[arg(long, value_name = "PROFILE")]
    pub refit: Option<PathBuf>,
}

/// Strategy the host kernel runs, and the extra strategy predicted with the fitted costs.
pub const FITTED_STRATEGY: &str = "upstream";
pub const OTHER_STRATEGY: &str = "mm-unstable";

/// What was observed for one layout.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutObs {
    pub layout: String,
    /// Model folio order; None for `untouched`.
    pub order: Option<u32>,
    pub real_run_means_ns: Vec<f64>,
    /// Op counts of one fork by strategy (empty for `untouched`).
    pub counts: BTreeMap<String, Ops>,
    /// Model measured mean copy time by strategy, ns.
    pub model_measured_ns: BTreeMap<String, f64>,
}

/// Raw counters used for the full-feature rank diagnosis.
pub const RAW_COUNTERS: &[&str] = &[
    "pte_reads",
    "pte_writes",
    "pte_atomics",
    "refcount_atomics",
    "mapcount_atomics",
    "large_mapcount_atomics",
    "rmap_calls",
    "batches",
    "resched_checks",
    "pte_tables_allocated",
];

/// The cost terms: three fitted groups plus three raw PTE operations fixed from `micro`.
pub fn default_terms(micro: &PteOpCosts) -> Vec<CostTerm> {
    let t = |name: &str, ns: f64, source: &str, counters: &[&str], d: &str| CostTerm {
        name: name.into(),
        ns,
        source: source.into(),
        counters: counters.iter().map(|c| (c.to_string(), 1.0)).collect(),
        description: d.into(),
    };
    vec![
        t(
            "fixed",
            0.0,
            "fitted",
            &[],
            "per fork: process creation, dup_mmap of the other VMAs, flush_tlb_mm, exit/wait as seen by the timer",
        ),
        t(
            "per_page",
            0.0,
            "fitted",
            &["mapcount_atomics"],
            "per copied PTE: the _mapcount atomic plus every per-PTE cost the model does not count (struct page/folio lookups, vm_normal_page, page-table allocation share, cache misses)",
        ),
        t(
            "per_batch",
            0.0,
            "fitted",
            &["batches"],
            "per batch: folio refcount atomic, one rmap call, batch set-up and the _large_mapcount atomic (equal to batches on every calibration layout)",
        ),
        t(
            "pte_read",
            micro.pte_read_ns,
            "microbench",
            &["pte_reads"],
            "raw PTE load (READ_ONCE), fixed from the microbenchmark",
        ),
        t(
            "pte_write",
            micro.pte_write_ns,
            "microbench",
            &["pte_writes"],
            "raw PTE store (WRITE_ONCE), fixed from the microbenchmark",
        ),
        t(
            "pte_atomic",
            micro.pte_atomic_ns,
            "microbench",
            &["pte_atomics"],
            "PTE compare-and-swap (wrprotect), fixed from the microbenchmark",
        ),
    ]
}

/// Diagnostic feature set: the per-batch term split into the order-0 single-PTE path
/// (`batches − large_mapcount_atomics`, i.e. batches of small folios) and the large-folio batch
/// path (`large_mapcount_atomics`: one per large-folio batch with the v6.11+ mapcount model).
/// With four layouts it is exactly determined (no residual degrees of freedom).
pub fn split_terms(micro: &PteOpCosts) -> Vec<CostTerm> {
    let mut t = default_terms(micro);
    let i = t
        .iter()
        .position(|x| x.name == "per_batch")
        .expect("per_batch term");
    t[i] = CostTerm {
        name: "per_small_batch".into(),
        ns: 0.0,
        source: "fitted".into(),
        counters: vec![
            ("batches".into(), 1.0),
            ("large_mapcount_atomics".into(), -1.0),
        ],
        description:
            "per single-PTE copy of a small folio (the order-0 path): refcount atomic, rmap call"
                .into(),
    };
    t.insert(
        i + 1,
        CostTerm {
            name: "per_large_batch".into(),
            ns: 0.0,
            source: "fitted".into(),
            counters: vec![("large_mapcount_atomics".into(), 1.0)],
            description: "per large-folio batch: folio_pte_batch, refcount atomic, rmap call, _large_mapcount atomic".into(),
        },
    );
    t
}

/// Fit the `fitted` terms of `terms` to `rows` (op counts, real ns) by NNLS with rows weighted
/// by 1/real time; fixed terms keep their cost and are subtracted first.
pub fn fit_terms(terms: &[CostTerm], rows: &[(&Ops, f64)]) -> Result<Vec<CostTerm>> {
    let fitted: Vec<usize> = (0..terms.len())
        .filter(|&i| terms[i].source == "fitted")
        .collect();
    if rows.is_empty() || fitted.is_empty() {
        return Err(CalibrateError::Fit("nothing to fit".into()));
    }
    let mut a = Vec::new();
    let mut b = Vec::new();
    for (ops, real) in rows {
        if !(real.is_finite() && *real > 0.0) {
            return Err(CalibrateError::Fit(format!("bad real time {real}")));
        }
        let w = 1.0 / real;
        let known: f64 = terms
            .iter()
            .filter(|t| t.source != "fitted")
            .map(|t| t.ns * t.feature(ops))
            .sum();
        a.push(fitted.iter().map(|&i| w * terms[i].feature(ops)).collect());
        b.push(w * (real - known));
    }
    let sol = nnls::nnls(&a, &b);
    let mut out = terms.to_vec();
    for (k, &i) in fitted.iter().enumerate() {
        out[i].ns = sol.x[k];
    }
    Ok(out)
}

fn predict(terms: &[CostTerm], ops: &Ops) -> f64 {
    terms.iter().map(|t| t.ns * t.feature(ops)).sum()
}

fn counts_of<'a>(l: &'a LayoutObs, strategy: &str) -> Option<&'a Ops> {
    l.counts.get(strategy)
}

static EMPTY: std::sync::LazyLock<Ops> = std::sync::LazyLock::new(Ops::new);

fn fit_rows<'a>(obs: &'a [LayoutObs], skip: Option<&str>) -> Vec<(&'a Ops, f64)> {
    obs.iter()
        .filter(|l| Some(l.layout.as_str()) != skip)
        .map(|l| {
            let ops = counts_of(l, FITTED_STRATEGY).unwrap_or(&EMPTY);
            (ops, runner::mean_std(&l.real_run_means_ns).0)
        })
        .collect()
}

/// Machine and run facts recorded in the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    pub host: String,
    pub created_utc: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub tool_version: String,
}

/// Fit, cross-validate and assemble the profile (pure: no measuring, no I/O).
pub fn build_profile(
    obs: &[LayoutObs],
    micro: &PteOpCosts,
    settings: Settings,
    meta: Meta,
) -> Result<CostProfile> {
    let terms = default_terms(micro);
    let costs = fit_terms(&terms, &fit_rows(obs, None))?;
    let mut layouts = Vec::new();
    let mut sq = 0.0;
    for l in obs {
        let ops = counts_of(l, FITTED_STRATEGY).cloned().unwrap_or_default();
        let (real, sd) = runner::mean_std(&l.real_run_means_ns);
        let fitted = predict(&costs, &ops);
        let rel = fitted / real - 1.0;
        sq += rel * rel;
        layouts.push(LayoutFit {
            layout: l.layout.clone(),
            order: l.order,
            real_mean_ns: real,
            real_std_ns: sd,
            real_run_means_ns: l.real_run_means_ns.clone(),
            model_measured_ns: l.model_measured_ns.get(FITTED_STRATEGY).copied(),
            fitted_ns: fitted,
            residual_ns: fitted - real,
            residual_rel: rel,
            counts: ops,
        });
    }
    let residual_rms_rel = (sq / obs.len().max(1) as f64).sqrt();
    // Full-feature rank: one column per raw counter plus the constant.
    let full: Vec<Vec<f64>> = obs
        .iter()
        .map(|l| {
            let ops = counts_of(l, FITTED_STRATEGY).unwrap_or(&EMPTY);
            let mut row = vec![1.0];
            row.extend(
                RAW_COUNTERS
                    .iter()
                    .map(|c| ops.get(*c).copied().unwrap_or(0) as f64),
            );
            row
        })
        .collect();
    let full_feature_rank = (nnls::rank(&full), RAW_COUNTERS.len() + 1);
    // Leave one PTE layout out.
    let mut cross_validation = Vec::new();
    for held in obs.iter().filter(|l| l.order.is_some()) {
        let rows = fit_rows(obs, Some(&held.layout));
        let c = fit_terms(&terms, &rows)?;
        let ops = counts_of(held, FITTED_STRATEGY).unwrap_or(&EMPTY);
        let real = runner::mean_std(&held.real_run_means_ns).0;
        let p = predict(&c, ops);
        cross_validation.push(CrossValidation {
            held_out: held.layout.clone(),
            fitted_on: obs
                .iter()
                .filter(|l| l.layout != held.layout)
                .map(|l| l.layout.clone())
                .collect(),
            predicted_ns: p,
            real_ns: real,
            error_rel: p / real - 1.0,
            costs: c
                .iter()
                .filter(|t| t.source == "fitted")
                .map(|t| (t.name.clone(), t.ns))
                .collect(),
        });
    }
    let mut predictions = Vec::new();
    for l in obs.iter().filter(|l| l.order.is_some()) {
        for (s, ops) in &l.counts {
            predictions.push(Prediction {
                strategy: s.clone(),
                layout: l.layout.clone(),
                predicted_ns: predict(&costs, ops),
                model_measured_ns: l.model_measured_ns.get(s).copied(),
                counts: ops.clone(),
            });
        }
    }
    let notes = vec![
        format!(
            "Underdetermined as posed: the design matrix with every raw counter as its own column has rank {} for {} columns and {} layouts. Per-PTE counters (PTE loads/stores, _mapcount atomics, page tables) and per-batch counters (refcount atomic, rmap call, batch, _large_mapcount) move almost in lockstep across layouts, so only a constant, a per-PTE and a per-batch cost are identifiable. The fit uses those three grouped features; raw PTE load/store/CAS costs are fixed from a userspace microbenchmark ({} entries, best of {} passes) and are not fitted.",
            full_feature_rank.0, full_feature_rank.1, obs.len(), micro.entries, micro.passes
        ),
        "Rows are weighted by 1/real time (relative least squares); `untouched` (no PTEs) anchors the fixed per-fork term.".into(),
        "Predictions for other strategies (mm-unstable) depend on the microbenchmark costs for the ops that differ (e.g. the second ptep_get per PTE) and on per_batch for the per-PTE refcount/rmap; they are extrapolations, not fits.".into(),
    ];
    let mut alternative_fits = Vec::new();
    let st = split_terms(micro);
    if let Ok(c) = fit_terms(&st, &fit_rows(obs, None)) {
        let residual_rel = obs
            .iter()
            .map(|l| {
                let ops = counts_of(l, FITTED_STRATEGY).unwrap_or(&EMPTY);
                let real = runner::mean_std(&l.real_run_means_ns).0;
                (l.layout.clone(), predict(&c, ops) / real - 1.0)
            })
            .collect();
        alternative_fits.push(AltFit {
            name: "split per-batch".into(),
            costs: c,
            residual_rel,
            note: "per_batch split into the small-folio single-PTE path and the large-folio batch path; four unknowns for four layouts, so it fits exactly and cannot be cross-validated. Diagnostic only: it shows whether a large-folio batch costs more than a single-PTE copy.".into(),
        });
    }
    Ok(CostProfile {
        alternative_fits,
        schema: PROFILE_SCHEMA,
        kind: PROFILE_KIND.into(),
        host: meta.host,
        created_utc: meta.created_utc,
        kernel: meta.kernel,
        arch: meta.arch,
        cpu_model: meta.cpu_model,
        tool_version: meta.tool_version,
        settings,
        costs,
        layouts,
        full_feature_rank,
        residual_rms_rel,
        cross_validation,
        predictions,
        microbench: Some(*micro),
        notes,
    })
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// Human-readable report of a profile (markdown).
pub fn render_report(p: &CostProfile) -> String {
    let mut s = String::new();
    s.push_str(&format!("{}\n\n", p.caption()));
    s.push_str(
        "| layout | real fork (mean ± sd of run means) | model before (measured userspace) | model after (fitted costs × counts) | residual |\n|---|---|---|---|---|\n",
    );
    for l in &p.layouts {
        s.push_str(&format!(
            "| {} | {} ± {} | {} | {} | {} |\n",
            l.layout,
            fmt_ns(l.real_mean_ns),
            fmt_ns(l.real_std_ns),
            l.model_measured_ns.map_or("—".into(), fmt_ns),
            fmt_ns(l.fitted_ns),
            pct(l.residual_rel)
        ));
    }
    let base = p.layouts.iter().find(|l| l.order == Some(0));
    if let Some(b) = base {
        s.push_str("\n| ratio | real | model before | model after |\n|---|---|---|---|\n");
        for l in p.layouts.iter().filter(|l| l.order.is_some_and(|o| o > 0)) {
            let before = match (l.model_measured_ns, b.model_measured_ns) {
                (Some(x), Some(y)) => format!("{:.3}", x / y),
                _ => "—".into(),
            };
            s.push_str(&format!(
                "| {}/{} | {:.3} | {} | {:.3} |\n",
                l.layout,
                b.layout,
                l.real_mean_ns / b.real_mean_ns,
                before,
                l.fitted_ns / b.fitted_ns
            ));
        }
    }
    s.push_str("\n| cost term | ns | source | feature |\n|---|---|---|---|\n");
    for t in &p.costs {
        let f: Vec<String> = t.counters.iter().map(|(c, _)| c.clone()).collect();
        s.push_str(&format!(
            "| {} | {:.3} | {} | {} |\n",
            t.name,
            t.ns,
            t.source,
            if f.is_empty() {
                "1 per fork".into()
            } else {
                f.join(" + ")
            }
        ));
    }
    s.push_str("\n| cross-validation: held out | fitted on | predicted | real | error |\n|---|---|---|---|---|\n");
    for c in &p.cross_validation {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            c.held_out,
            c.fitted_on.join(", "),
            fmt_ns(c.predicted_ns),
            fmt_ns(c.real_ns),
            pct(c.error_rel)
        ));
    }
    // Calibrated prediction of the other strategy against the fitted one.
    let mut rows = String::new();
    for pr in p
        .predictions
        .iter()
        .filter(|x| x.strategy == OTHER_STRATEGY)
    {
        if let Some(up) = p
            .predictions
            .iter()
            .find(|x| x.strategy == FITTED_STRATEGY && x.layout == pr.layout)
        {
            let meas = match (up.model_measured_ns, pr.model_measured_ns) {
                (Some(u), Some(m)) => pct(u / m - 1.0),
                _ => "—".into(),
            };
            rows.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                pr.layout,
                fmt_ns(pr.predicted_ns),
                fmt_ns(up.predicted_ns),
                pct(up.predicted_ns / pr.predicted_ns - 1.0),
                meas
            ));
        }
    }
    if !rows.is_empty() {
        s.push_str(&format!(
            "\n| layout | {OTHER_STRATEGY} predicted | {FITTED_STRATEGY} predicted | change (calibrated) | change (model measured) |\n|---|---|---|---|---|\n{rows}"
        ));
    }
    for a in &p.alternative_fits {
        let c: Vec<String> = a
            .costs
            .iter()
            .filter(|t| t.source == "fitted")
            .map(|t| format!("{} {}", t.name, fmt_ns(t.ns)))
            .collect();
        let r: Vec<String> = a
            .residual_rel
            .iter()
            .map(|(l, x)| format!("{l} {}", pct(*x)))
            .collect();
        s.push_str(&format!(
            "\ndiagnostic fit \"{}\": {}; residuals {}. {}\n",
            a.name,
            c.join(", "),
            r.join(", "),
            a.note
        ));
    }
    s.push_str(&format!(
        "\nfull-feature rank {} of {}; fit rms {:.2}%\n",
        p.full_feature_rank.0,
        p.full_feature_rank.1,
        p.residual_rms_rel * 100.0
    ));
    for n in &p.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

/// mTHP sizes (KiB) the kernel offers, from /sys/kernel/mm/transparent_hugepage/hugepages-*kB.
pub fn mthp_sizes_kib(thp_dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(thp_dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Pick the mTHP layout: 64 KiB when offered, else the smallest size in 16 KiB..1 MiB.
pub fn pick_mthp(sizes: &[u64]) -> Option<u64> {
    if sizes.contains(&64) {
        return Some(64);
    }
    sizes.iter().copied().find(|&s| (16..=1024).contains(&s))
}

/// Folio order of an mTHP size with 4 KiB pages.
pub fn order_of_kib(kib: u64) -> Option<u32> {
    (kib >= 4 && kib.is_power_of_two()).then(|| (kib / 4).trailing_zeros())
}

fn observations_from_profile(p: &CostProfile) -> Vec<LayoutObs> {
    p.layouts
        .iter()
        .map(|l| {
            let mut counts = BTreeMap::new();
            let mut measured = BTreeMap::new();
            for pr in p.predictions.iter().filter(|x| x.layout == l.layout) {
                counts.insert(pr.strategy.clone(), pr.counts.clone());
                if let Some(m) = pr.model_measured_ns {
                    measured.insert(pr.strategy.clone(), m);
                }
            }
            LayoutObs {
                layout: l.layout.clone(),
                order: l.order,
                real_run_means_ns: l.real_run_means_ns.clone(),
                counts,
                model_measured_ns: measured,
            }
        })
        .collect()
}

fn default_cpu() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() - 1)
        .unwrap_or(0)
}

/// Entry point of `cargo xtask calibrate`: measure (or refit), write the profile, print the
/// report. Returns the path of the new profile.
pub fn run_calibrate(root: &Path, forkbench: &Path, args: &CalibrateArgs) -> Result<PathBuf> {
    let (created_utc, compact) = util::utc_stamps(util::now_secs());
    let meta = Meta {
        host: util::host_name(),
        created_utc,
        kernel: util::kernel_release(),
        arch: util::host_arch().into(),
        cpu_model: util::cpu_model(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
    };
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| root.join("results/calibration"));
    let profile = if let Some(path) = &args.refit {
        let old = CostProfile::load(path)?;
        let micro = old.microbench.ok_or_else(|| {
            CalibrateError::Input(format!("{}: no microbenchmark data", path.display()))
        })?;
        let obs = observations_from_profile(&old);
        let mut p = build_profile(
            &obs,
            &micro,
            old.settings.clone(),
            Meta {
                created_utc: old.created_utc.clone(),
                host: old.host.clone(),
                kernel: old.kernel.clone(),
                arch: old.arch.clone(),
                cpu_model: old.cpu_model.clone(),
                tool_version: meta.tool_version.clone(),
            },
        )?;
        p.notes.push(format!(
            "Refitted at {} from the measurements in {}.",
            meta.created_utc,
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        p
    } else {
        measure_and_fit(forkbench, args, meta)?
    };
    let host = &profile.host;
    let path = out_dir.join(format!("{host}-{compact}.json"));
    let json = serde_json::to_string_pretty(&profile).expect("profile serialises") + "\n";
    util::write_new(&path, json.as_bytes())?;
    println!("{}", render_report(&profile));
    println!("wrote {}", path.display());
    Ok(path)
}

fn measure_and_fit(forkbench: &Path, args: &CalibrateArgs, meta: Meta) -> Result<CostProfile> {
    let arch = meta.arch.clone();
    let mut layouts: Vec<(String, Option<u32>)> =
        vec![("order0".into(), Some(0)), ("pte-order9".into(), Some(9))];
    let mthp = match args.mthp.as_deref() {
        Some("none") => None,
        Some(s) => {
            let kib: u64 = s
                .trim_end_matches(['k', 'K'])
                .parse()
                .map_err(|_| CalibrateError::Input(format!("bad --mthp size {s:?}")))?;
            Some(kib)
        }
        None => pick_mthp(&mthp_sizes_kib(Path::new(
            "/sys/kernel/mm/transparent_hugepage",
        ))),
    };
    if let Some(kib) = mthp {
        let order = order_of_kib(kib)
            .filter(|o| (1..=9).contains(o))
            .ok_or_else(|| CalibrateError::Input(format!("mTHP size {kib}k is not order 1..9")))?;
        layouts.push((format!("mthp-{kib}k"), Some(order)));
    }
    layouts.push(("untouched".into(), None));
    let strategies = format!("{FITTED_STRATEGY},{OTHER_STRATEGY}");
    let cpu = args.cpu.unwrap_or_else(default_cpu);
    eprintln!("calibrate: microbenchmark of PTE load/store/CAS");
    let micro = measure_pte_ops(1 << 18, 15);
    let mut obs = Vec::new();
    for (layout, order) in &layouts {
        let mut o = LayoutObs {
            layout: layout.clone(),
            order: *order,
            real_run_means_ns: vec![],
            counts: BTreeMap::new(),
            model_measured_ns: BTreeMap::new(),
        };
        if let Some(order) = order {
            let spec = ModelSpec {
                arch: arch.clone(),
                contpte: None,
                order: *order,
                mem: args.mem.clone(),
                mode: args.mode.clone(),
                mapcount: args.mapcount.clone(),
            };
            eprintln!("calibrate: model counts and sim, order {order}");
            o.counts = runner::counts(forkbench, &spec, &strategies)?;
            let recs = runner::sim(
                forkbench,
                &spec,
                &strategies,
                &Timing {
                    iters: args.iters,
                    runs: args.runs,
                    cpu: Some(cpu),
                },
            )?;
            for s in [FITTED_STRATEGY, OTHER_STRATEGY] {
                let r: Vec<_> = recs
                    .iter()
                    .filter(|r| r.variant.strategy == s)
                    .cloned()
                    .collect();
                o.model_measured_ns
                    .insert(s.into(), runner::run_stats(&r).0);
            }
        }
        obs.push(o);
    }
    for round in 0..args.runs {
        for o in obs.iter_mut() {
            eprintln!(
                "calibrate: real fork, round {}/{}, {}",
                round + 1,
                args.runs,
                o.layout
            );
            let recs = runner::real(
                forkbench,
                &o.layout,
                &args.mem,
                &args.mode,
                &args.sched,
                &Timing {
                    iters: args.iters,
                    runs: 1,
                    cpu: Some(cpu),
                },
            )?;
            o.real_run_means_ns
                .extend(recs.iter().map(results::RunRecord::mean_ns));
        }
    }
    let settings = Settings {
        mem: args.mem.clone(),
        iters: args.iters,
        runs: args.runs,
        cpu: Some(cpu),
        sched: args.sched.clone(),
        mode: args.mode.clone(),
        strategy: FITTED_STRATEGY.into(),
        mapcount: args.mapcount.clone(),
        weighting: "relative (rows weighted by 1/real time)".into(),
    };
    build_profile(&obs, &micro, settings, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(pairs: &[(&str, u64)]) -> Ops {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    /// Synthetic counts shaped like `forkbench counts --mode steady` for 1 GiB of upstream.
    fn upstream_counts(order: u32) -> Ops {
        let ptes = 262_144u64;
        let batches = ptes >> order;
        ops(&[
            (
                "pte_reads",
                ptes + if order == 0 || order == 9 { 0 } else { batches },
            ),
            ("pte_writes", ptes),
            ("pte_atomics", 0),
            ("mapcount_atomics", ptes),
            ("refcount_atomics", batches),
            ("rmap_calls", batches),
            ("batches", batches),
            (
                "large_mapcount_atomics",
                if order > 0 { batches } else { 0 },
            ),
            ("pte_tables_allocated", 512),
        ])
    }

    fn micro() -> PteOpCosts {
        PteOpCosts {
            pte_read_ns: 0.5,
            pte_write_ns: 0.5,
            pte_atomic_ns: 6.0,
            entries: 8,
            passes: 1,
        }
    }

    fn synthetic(truth: (f64, f64, f64)) -> Vec<LayoutObs> {
        let m = micro();
        let mut obs = Vec::new();
        for (layout, order) in [
            ("order0", Some(0)),
            ("pte-order9", Some(9)),
            ("mthp-64k", Some(4)),
            ("untouched", None),
        ] {
            let c = order.map(upstream_counts).unwrap_or_default();
            let f = |k: &str| c.get(k).copied().unwrap_or(0) as f64;
            let real = truth.0
                + truth.1 * f("mapcount_atomics")
                + truth.2 * f("batches")
                + m.pte_read_ns * f("pte_reads")
                + m.pte_write_ns * f("pte_writes");
            let mut counts = BTreeMap::new();
            if order.is_some() {
                counts.insert(FITTED_STRATEGY.to_string(), c.clone());
            }
            obs.push(LayoutObs {
                layout: layout.into(),
                order,
                real_run_means_ns: vec![real * 0.99, real * 1.01],
                counts,
                model_measured_ns: BTreeMap::new(),
            });
        }
        obs
    }

    fn settings() -> Settings {
        Settings {
            mem: "1G".into(),
            iters: 1,
            runs: 2,
            cpu: None,
            sched: "fifo".into(),
            mode: "steady".into(),
            strategy: FITTED_STRATEGY.into(),
            mapcount: "per-page+large".into(),
            weighting: "relative".into(),
        }
    }

    fn meta() -> Meta {
        Meta {
            host: "t".into(),
            created_utc: "2026-01-01T00:00:00Z".into(),
            kernel: "6.18".into(),
            arch: "x86_64".into(),
            cpu_model: "cpu".into(),
            tool_version: "0".into(),
        }
    }

    #[test]
    fn recovers_exact_synthetic_costs_and_cross_validates_exactly() {
        let obs = synthetic((120_000.0, 45.0, 30.0));
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert!(
            (p.cost("fixed").unwrap() - 120_000.0).abs() < 1e-3,
            "{:?}",
            p.costs
        );
        assert!((p.cost("per_page").unwrap() - 45.0).abs() < 1e-6);
        assert!((p.cost("per_batch").unwrap() - 30.0).abs() < 1e-6);
        assert!(p.residual_rms_rel < 1e-9);
        assert_eq!(p.cross_validation.len(), 3);
        for c in &p.cross_validation {
            assert!(c.error_rel.abs() < 1e-9, "{c:?}");
            assert_eq!(c.fitted_on.len(), 3);
        }
        // Four layouts cannot identify eleven raw-counter costs.
        assert_eq!(p.full_feature_rank, (4, RAW_COUNTERS.len() + 1));
        let r = render_report(&p);
        assert!(
            r.contains("| pte-order9/order0 |") && r.contains("cost profile: t"),
            "{r}"
        );
    }

    #[test]
    fn split_fit_separates_small_and_large_batches() {
        // Truth: small-folio copies 30 ns, large-folio batches 100 ns.
        let mut obs = synthetic((120_000.0, 45.0, 30.0));
        for l in obs.iter_mut().filter(|l| l.order.is_some_and(|o| o > 0)) {
            let b = l.counts[FITTED_STRATEGY]["batches"] as f64;
            for r in l.real_run_means_ns.iter_mut() {
                *r += 70.0 * b;
            }
        }
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        let a = &p.alternative_fits[0];
        let get = |n: &str| a.costs.iter().find(|t| t.name == n).unwrap().ns;
        assert!(
            (get("per_small_batch") - 30.0).abs() < 1e-6,
            "{:?}",
            a.costs
        );
        assert!(
            (get("per_large_batch") - 100.0).abs() < 1e-6,
            "{:?}",
            a.costs
        );
        assert!(a.residual_rel.iter().all(|(_, r)| r.abs() < 1e-9));
        // The grouped fit cannot represent it: cross-validation shows the misfit.
        assert!(p.cross_validation.iter().any(|c| c.error_rel.abs() > 0.05));
    }

    #[test]
    fn negative_per_batch_evidence_is_clamped_to_zero() {
        // Order-9 slower per PTE than order 0 would need a negative per-batch cost.
        let mut obs = synthetic((100_000.0, 40.0, 0.0));
        obs[1].real_run_means_ns = vec![20e6, 20e6];
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        assert_eq!(p.cost("per_batch").unwrap(), 0.0);
        assert!(p.costs.iter().all(|t| t.ns >= 0.0));
    }

    #[test]
    fn fit_refuses_bad_rows() {
        let terms = default_terms(&micro());
        let o = Ops::new();
        assert!(fit_terms(&terms, &[]).is_err());
        assert!(fit_terms(&terms, &[(&o, f64::NAN)]).is_err());
    }

    #[test]
    fn mthp_detection_and_orders() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "hugepages-2048kB",
            "hugepages-32kB",
            "hugepages-16kB",
            "other",
        ] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        assert_eq!(mthp_sizes_kib(dir.path()), vec![16, 32, 2048]);
        assert_eq!(pick_mthp(&[16, 32, 2048]), Some(16));
        assert_eq!(pick_mthp(&[16, 64, 2048]), Some(64));
        assert_eq!(pick_mthp(&[2048]), None);
        assert_eq!(order_of_kib(64), Some(4));
        assert_eq!(order_of_kib(2048), Some(9));
        assert_eq!(order_of_kib(48), None);
    }

    #[test]
    fn refit_reconstructs_observations() {
        let obs = synthetic((120_000.0, 45.0, 30.0));
        let p = build_profile(&obs, &micro(), settings(), meta()).unwrap();
        let back = observations_from_profile(&p);
        let q = build_profile(&back, &micro(), settings(), meta()).unwrap();
        assert_eq!(p.costs, q.costs);
    }
}
