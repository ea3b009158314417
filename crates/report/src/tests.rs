//! Snapshot and shape tests of the tables, exports and plots, on synthetic result files.

use results::{
    Accel, Arch, HostEnv, Instrument, Mode, RealLayout, RealVariant, ResultFile, RunRecord, Sched,
    SimVariant, Variant,
};
use stats::Policy;

use super::*;

/// Eight z-scores with mean 0 and sample standard deviation exactly 1 (after normalisation).
fn unit_z() -> Vec<f64> {
    let raw = [-1.3, 0.4, 0.9, -0.2, 1.6, -0.7, 0.1, -0.8];
    let m = raw.iter().sum::<f64>() / 8.0;
    let c: Vec<f64> = raw.iter().map(|x| x - m).collect();
    let sd = (c.iter().map(|x| x * x).sum::<f64>() / 7.0).sqrt();
    c.iter().map(|x| x / sd).collect()
}

/// A run record whose single sample is `mean_ns`. `row` is the strategy (model) or the kernel
/// (real fork); `layout` is `order<N>` (model) or a real layout; `options` the model's
/// `contpte-<x>`.
pub(crate) fn rec(
    inst: Instrument,
    row: &str,
    layout: &str,
    options: &str,
    run: u32,
    mean_ns: f64,
) -> RunRecord {
    let variant = match inst {
        Instrument::Sim => Variant::Sim(SimVariant {
            arch: Arch::Arm64,
            contpte: options.strip_prefix("contpte-").map(|c| c.parse().unwrap()),
            strategy: row.parse().unwrap(),
            order: layout.trim_start_matches("order").parse().unwrap(),
            mem_bytes: 1 << 30,
            mode: Mode::Fresh,
            mapcount: Default::default(),
            counting: false,
        }),
        Instrument::Real => Variant::Real(RealVariant {
            arch: Arch::Arm64,
            kernel: row.into(),
            accel: Default::default(),
            clock: Default::default(),
            layout: layout.parse::<RealLayout>().unwrap(),
            mem_bytes: 1 << 30,
            mode: Mode::Fresh,
            sched: Sched::Other,
            unverified: false,
        }),
    };
    RunRecord {
        variant,
        run_index: run,
        warmup: 0,
        samples_ns: vec![mean_ns.round() as u64],
        cpu: None,
        ops: Default::default(),
        sim: None,
        real: None,
        host_load: None,
    }
}

pub(crate) fn file(machine: &str, label: &str, runs: Vec<RunRecord>) -> ResultFile {
    let mut f = ResultFile::new(machine, label, "2026-01-01T00:00:00Z", HostEnv::default());
    f.git_rev = "r".into();
    f.seed = 1;
    f.runs = runs;
    f
}

/// Runs of one variant whose run means have exactly `mean_rel`/`std_rel` against `base_ns`.
fn runs_with(
    strategy: &str,
    options: &str,
    layout: &str,
    base_ns: f64,
    mean_rel: f64,
    std_rel: f64,
) -> Vec<RunRecord> {
    unit_z()
        .iter()
        .enumerate()
        .map(|(i, z)| {
            let m = base_ns * (1.0 + mean_rel) + z * std_rel * base_ns;
            rec(Instrument::Sim, strategy, layout, options, i as u32, m)
        })
        .collect()
}

#[test]
fn thread_format_shape() {
    let rows = vec![
        RelRow {
            kernel: "mm-unstable".into(),
            mean_rel: 0.0,
            std_rel: 0.008,
        },
        RelRow {
            kernel: "hugetlb-rmap-cleanups".into(),
            mean_rel: -0.033,
            std_rel: 0.011,
        },
        RelRow {
            kernel: "fork-batching".into(),
            mean_rel: -0.381,
            std_rel: 0.0049,
        },
        RelRow {
            kernel: "tiny".into(),
            mean_rel: -0.0001,
            std_rel: 0.0,
        },
    ];
    insta::assert_snapshot!(thread_table(&rows));
}

/// The thread's M2 fork table (Ryan's contpte v4 cover letter / patch 15/16): contpte-dis
/// -1.0% (sd 2.0%) at order 0 and -0.1% at order 9, contpte-ena +2.6% and -25.4%. The thread
/// gives no baseline std and no other stds, so those below (1.1%, 1.2%, 0.1%, 1.5%, 0.7%) are
/// assumptions of this test. The thread's rows `baseline`/`contpte-dis`/`contpte-ena` are typed variants here: mm-unstable
/// without contpte, and with contpte dis and ena.
fn m2_file() -> ResultFile {
    let b = 14_000_000.0;
    let mut runs = Vec::new();
    for (layout, dis, dis_sd, ena, ena_sd, base_sd) in [
        ("order0", -0.010, 0.020, 0.026, 0.015, 0.011),
        ("order9", -0.001, 0.001, -0.254, 0.007, 0.012),
    ] {
        runs.extend(runs_with("mm-unstable", "", layout, b, 0.0, base_sd));
        runs.extend(runs_with(
            "mm-unstable",
            "contpte-dis",
            layout,
            b,
            dis,
            dis_sd,
        ));
        runs.extend(runs_with(
            "mm-unstable",
            "contpte-ena",
            layout,
            b,
            ena,
            ena_sd,
        ));
    }
    file("Apple M2 VM", "v4", runs)
}

#[test]
fn thread_m2_fork_table_from_synthetic_samples() {
    let cases = build_cases(&[m2_file()], Some("mm-unstable"), &Policy::default()).unwrap();
    assert_eq!(cases.len(), 2);
    let combined = combined_from_cases(&cases, "Apple M2 VM");
    assert_eq!(combined.len(), 1);
    let t = combined_table(&combined[0]);
    insta::assert_snapshot!(t);
    assert!(
        t.contains("| mm-unstable contpte-dis |    -1.0% |     2.0% |    -0.1% |     0.1% |"),
        "{t}"
    );
    assert!(
        t.contains("|     2.6% |     1.5% |   -25.4% |     0.7% |"),
        "{t}"
    );
    insta::assert_snapshot!("m2_thread_order9", thread_table(&rel_rows(&cases[1])));
}

#[test]
fn extended_and_exports() {
    let cases = build_cases(&[m2_file()], Some("mm-unstable"), &Policy::default()).unwrap();
    insta::assert_snapshot!(extended_table(&cases[1]));
    let csv = export::to_csv(&cases);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "machine,label,instrument,arch,layout,mem_bytes,mode,options,strategy,case,kernel,baseline,\
         n,mean_ns,std_ns,mean_rel,std_rel,ratio,ci_lo,ci_hi,p,t,df,cv,mde,verdict,runs_needed,\
         unit,instr,change,run_spread,runs_agree,instr_per_pte,instr_per_pmd"
    );
    assert_eq!(lines.count(), 6);
    let json_text = export::to_json(&cases);
    // Keys in the CSV's column order, not alphabetical (pandas keeps the order it reads).
    let first = json_text.lines().nth(1).unwrap();
    let positions: Vec<usize> = export::COLUMNS
        .iter()
        .map(|k| first.find(&format!("\"{k}\":")).expect(k))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{first}");
    assert!(
        first
            .trim_start()
            .starts_with("{\"machine\":\"Apple M2 VM\",\"label\":\"v4\","),
        "{first}"
    );
    let json: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let recs = json.as_array().unwrap();
    assert_eq!(recs.len(), 6);
    let ena9 = recs
        .iter()
        .find(|r| r["kernel"] == "mm-unstable contpte-ena" && r["layout"] == "order9")
        .unwrap();
    assert_eq!(ena9["verdict"], "faster");
    assert!((ena9["mean_rel"].as_f64().unwrap() + 0.254).abs() < 1e-6);
}

/// Long format: one record per timed fork, columns in [`export::SAMPLE_COLUMNS`] order, the
/// variant's fields filled per instrument, disturbances named on their fork.
#[test]
fn samples_export_has_one_row_per_fork() {
    let mut sim = rec(
        Instrument::Sim,
        "upstream",
        "order9",
        "contpte-ena",
        0,
        10.0,
    );
    sim.samples_ns = vec![10, 11, 12];
    let mut real = rec(Instrument::Real, "6.12.0", "mthp-16k", "", 1, 20.0);
    real.samples_ns = vec![20, 21];
    real.real = Some(Box::new(results::RealExtra {
        disturbances: vec![results::Disturbance {
            iter: 1,
            reasons: vec!["preempted".into(), "migrated".into()],
        }],
        ..Default::default()
    }));
    let a = file("m", "A", vec![sim]);
    let b = file("m", "B, with a comma", vec![real]);
    let files = [("a.json".to_string(), &a), ("b.json".to_string(), &b)];
    let csv = export::samples_csv(&files);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "file,machine,label,kernel,accel,instrument,arch,layout,order,strategy,contpte,mapcount,\
         counting,sched,unverified,mem_bytes,mode,options,run,iteration,ns,disturbed,unit,instr"
    );
    // 3 + 2 forks.
    assert_eq!(lines.len(), 1 + 5);
    assert_eq!(
        lines[1],
        "a.json,m,A,,,sim,arm64,order9,9,upstream,ena,per-page,false,,,1073741824,fresh,contpte-ena,0,0,10,,ns,"
    );
    assert_eq!(
        lines[5],
        "b.json,m,\"B, with a comma\",6.12.0,host,real,arm64,mthp-16k,2,,,,,other,false,1073741824,fresh,,1,1,21,preempted+migrated,ns,"
    );
    let jsonl = export::samples_jsonl(&files);
    assert_eq!(jsonl.lines().count(), 5);
    for line in jsonl.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v.as_object().unwrap().len(), export::SAMPLE_COLUMNS.len());
        assert!(line.starts_with("{\"file\":"), "{line}");
    }
}

#[test]
fn baseline_must_exist_and_selection_must_not_be_empty() {
    let err = build_cases(&[m2_file()], Some("nosuch"), &Policy::default()).unwrap_err();
    assert!(matches!(err, CaseError::UnknownBaseline(..)), "{err}");
    assert!(err.to_string().contains("nosuch"));
    let empty = file("m", "l", Vec::new());
    assert_eq!(
        build_cases(&[empty], None, &Policy::default()).unwrap_err(),
        CaseError::Empty
    );
}

#[test]
fn labels_become_rows_and_real_layouts_become_rows() {
    // Two labelled model runs: rows carry the label; the first file's mm-unstable is baseline.
    let a = file(
        "m",
        "v6.8",
        runs_with("mm-unstable", "", "order9", 1e7, 0.0, 0.005),
    );
    let b = file(
        "m",
        "v6.9",
        runs_with("mm-unstable", "", "order9", 1e7, -0.3, 0.005),
    );
    let cases = build_cases(&[a, b], None, &Policy::default()).unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].baseline, "v6.8 mm-unstable");
    let t = thread_table(&rel_rows(&cases[0]));
    assert!(
        t.contains("| v6.9 mm-unstable |     -30.0% |      0.5% |"),
        "{t}"
    );
    // One label of real fork: rows are layouts, baseline order0.
    let mut runs = Vec::new();
    for (i, (l, m)) in [("pte-order9", 9e6), ("order0", 1.4e7), ("order0", 1.41e7)]
        .into_iter()
        .enumerate()
    {
        runs.push(rec(Instrument::Real, "host", l, "", i as u32, m));
    }
    let cases = build_cases(&[file("m", "k", runs)], None, &Policy::default()).unwrap();
    assert_eq!(cases[0].baseline, "order0");
    assert_eq!(cases[0].rows[0].name, "order0");
    assert_eq!(cases[0].rows[1].name, "pte-order9");
}

/// The trimmed text of every `<text>` element of an SVG document.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

/// The left axis of a plot: (top, bottom, y of each tick mark), from plotters' polylines
/// (`X,top X,bottom` for the axis, `X-5,y X,y` for a tick).
fn left_axis(svg: &str) -> (f64, f64, Vec<f64>) {
    let lines: Vec<Vec<(f64, f64)>> = svg
        .split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let pts = &p[p.find("points=\"")? + 8..];
            let pts = &pts[..pts.find('"')?];
            Some(
                pts.split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect(),
            )
        })
        .collect();
    let axis = &lines[0];
    let x = axis[0].0;
    let ticks = lines
        .iter()
        .filter(|l| l.len() == 2 && l[1].0 == x && l[0].0 == x - 5.0 && l[0].1 == l[1].1)
        .map(|l| l[0].1)
        .collect();
    (axis[0].1, axis[1].1, ticks)
}

/// Every `#RRGGBB` of the document is a palette colour, the neutral grey, black or white.
fn assert_palette_only(svg: &str) {
    let allowed = svg::allowed_colours();
    for (i, _) in svg.match_indices('#') {
        let hex = &svg[i..i + 7];
        assert!(
            allowed.iter().any(|a| a == hex),
            "{hex} is not in the palette"
        );
    }
}

#[test]
fn bar_charts_have_one_slot_per_row_and_no_empty_one() {
    let cases = build_cases(&[m2_file()], Some("mm-unstable"), &Policy::default()).unwrap();
    let case = &cases[1];
    let s = svg::mean_rel_bars(case, "Apple M2 VM").unwrap();
    assert!(s.starts_with("<svg") && s.contains("contpte-ena") && s.contains("-25.4%"));
    let (top, bottom, ticks) = left_axis(&s);
    let n = case.rows.len();
    assert_eq!(ticks.len(), n, "one tick per row: {ticks:?}");
    // n equal slots fill the axis: the top row's centre is half a slot below its top.
    let slot = (bottom - top) / n as f64;
    let first = ticks.iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        (first - top - slot / 2.0).abs() <= 2.0,
        "{top} {first} {slot}"
    );
    let texts = svg_texts(&s);
    for r in &case.rows {
        assert_eq!(
            texts.iter().filter(|t| **t == r.name).count(),
            1,
            "{}",
            r.name
        );
    }
    assert_palette_only(&s);
    let mut c = case.clone();
    for (i, r) in c.rows.iter_mut().enumerate() {
        r.ops
            .insert("pte_reads".into(), 1_000_000 + 250_000 * i as u64);
        r.ops.insert("tlbi".into(), 512);
    }
    let s = svg::ops_stacked(&c, "m").unwrap();
    let (_, _, ticks) = left_axis(&s);
    assert_eq!(ticks.len(), c.rows.len());
    assert_palette_only(&s);
    let texts = svg_texts(&s);
    assert!(texts.iter().any(|t| t == "pte_reads"));
    // Op-count ticks are SI, never `1000.0`.
    assert!(texts.iter().any(|t| t == "1M"), "{texts:?}");
    assert!(texts.iter().any(|t| t == "500k"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.ends_with(".0")), "{texts:?}");
}

/// Two kernels (kernel rows) over order0, three mTHP sizes, pte- and pmd-order9, the two mixed
/// layouts and untouched.
fn sweep_cases() -> Vec<Case> {
    let mut runs = Vec::new();
    let layouts = [
        ("order0", 14e6),
        ("mthp-16k", 12e6),
        ("mthp-64k", 9e6),
        ("mthp-128k", 8.5e6),
        ("pte-order9", 8e6),
        ("pmd-order9", 0.4e6),
        ("mix-64k", 11e6),
        ("mix-pmd", 4.2e6),
        ("untouched", 0.05e6),
    ];
    for run in 0..3u32 {
        for (k, f) in [("6.1.0", 1.0), ("6.12.0", 0.5)] {
            for (l, ns) in layouts {
                let mut r = rec(
                    Instrument::Real,
                    k,
                    l,
                    "",
                    run,
                    ns * f * (1.0 + run as f64 * 0.01),
                );
                r.samples_ns = vec![r.samples_ns[0], r.samples_ns[0] + 1000];
                runs.push(r);
            }
        }
    }
    build_cases(&[file("m", "guests", runs)], None, &Policy::default()).unwrap()
}

#[test]
fn fork_time_plots_tick_every_order_and_every_folio_size() {
    let cases = sweep_cases();
    let rows: Vec<&Row> = cases.iter().flat_map(|c| c.rows.iter()).collect();
    let s = svg::fork_time_by_order(&rows, "m").unwrap();
    let texts = svg_texts(&s);
    for order in 0..=9 {
        assert!(
            texts.contains(&order.to_string()),
            "no tick {order}: {texts:?}"
        );
    }
    assert!(texts.iter().any(|t| t == "6.12.0 pmd-mapped"), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("mthp-16k ") && t.ends_with(" ms"))
    );
    assert!(!texts.iter().any(|t| t.contains("mix-")), "{texts:?}");
    assert_palette_only(&s);
    let s = svg::fork_time_by_folio_size(&rows, "m").unwrap();
    let texts = svg_texts(&s);
    let sizes = ["4K", "16K", "64K", "128K", "2M pte", "2M pmd"];
    let at: Vec<usize> = sizes
        .iter()
        .map(|l| texts.iter().position(|t| t == l).expect(l))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
    // No single folio size: neither untouched nor the mixed layouts get a slot.
    assert!(
        !texts
            .iter()
            .any(|t| t.contains("untouched") || t.contains("mix-"))
    );
    assert!(texts.iter().any(|t| t == "6.1.0") && texts.iter().any(|t| t == "6.12.0"));
    // Every run mean is a dot (radius 3; markers are bigger): 2 kernels x 6 layouts x 3 runs.
    assert_eq!(s.matches("r=\"3\"").count(), 36, "{s}");
    // The two kernels differ in marker: circles (and the legend's) for the first, squares
    // (rects) for the second.
    assert_eq!(s.matches("r=\"4\"").count(), 6 + 1);
    assert!(s.matches("<rect").count() > 6);
    assert_palette_only(&s);
}

#[test]
fn the_distribution_plot_has_one_dot_per_fork() {
    let strips = vec![
        svg::Strip {
            name: "order0".into(),
            samples_ns: (0..250).map(|i| 14_000_000 + i * 1000).collect(),
        },
        svg::Strip {
            name: "pmd-order9".into(),
            samples_ns: (0..120).map(|i| 300_000 + i * 100).collect(),
        },
    ];
    let s = svg::fork_distribution(
        "fork, x86_64 real fork()",
        &strips,
        "m",
        results::SampleUnit::Nanoseconds,
    )
    .unwrap();
    assert_eq!(s.matches("<circle").count(), 370);
    let texts = svg_texts(&s);
    // 47x apart: a log axis, labelled in ms.
    assert!(texts.iter().any(|t| t.contains("log scale")), "{texts:?}");
    assert!(
        texts.iter().any(|t| t == "order0 (median 14.12 ms)"),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t == "1") && texts.iter().any(|t| t == "10"),
        "{texts:?}"
    );
    let (_, _, ticks) = left_axis(&s);
    assert_eq!(ticks.len(), 2);
    assert_palette_only(&s);
}

#[test]
fn tick_labels_are_short() {
    assert_eq!(svg::tick(1000.0), "1000");
    assert_eq!(svg::tick(12.5), "12.5");
    assert_eq!(svg::tick(0.05), "0.05");
    assert_eq!(svg::si(1_000_000.0), "1M");
    assert_eq!(svg::si(1_500_000.0), "1.5M");
    assert_eq!(svg::si(500_000.0), "500k");
    assert_eq!(svg::si(0.0), "0");
    assert_eq!(
        svg::nice_ticks(0.0, 7.0, 8),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    );
    assert_eq!(
        svg::nice_ticks(-16.0, 92.0, 12),
        (-1..=9).map(|k| k as f64 * 10.0).collect::<Vec<_>>()
    );
}

const K61: &str = "6.1.0-50-cloud-amd64";
const K612: &str = "6.12.107+deb13-cloud-amd64";

/// A real-fork run of `kernel` in a guest under `accel`: four samples around `mean_ns`.
fn guest_rec(kernel: &str, accel: Accel, layout: &str, run: u32, mean_ns: f64) -> RunRecord {
    let mut r = rec(Instrument::Real, kernel, layout, "", run, mean_ns);
    if let Variant::Real(v) = &mut r.variant {
        v.arch = Arch::X86_64;
        v.accel = accel;
        v.mem_bytes = 64 << 20;
        v.mode = Mode::Steady;
    }
    r.samples_ns = [0.998, 1.001, 1.003, 0.998]
        .iter()
        .map(|f| (mean_ns * f).round() as u64)
        .collect();
    r
}

/// Two kernels × {order0, pte-order9, pmd-order9, mthp-64k} × 3 runs, interleaved by run;
/// 6.1 has no mthp-64k (skipped: no per-size mTHP). 6.12 forks pte-mapped THPs in batches.
fn two_kernel_file(accel: Accel) -> ResultFile {
    let base: [(&str, Option<f64>, f64); 4] = [
        ("order0", Some(14.0e6), 13.8e6),
        ("pte-order9", Some(9.0e6), 2.25e6),
        ("pmd-order9", Some(0.40e6), 0.402e6),
        ("mthp-64k", None, 3.0e6),
    ];
    // Run-to-run drift, different per kernel so the std is not identical.
    let drift = [[-0.010, 0.000, 0.012], [0.006, -0.008, 0.001]];
    let mut runs = Vec::new();
    for run in 0..3u32 {
        for (ki, kernel) in [K61, K612].into_iter().enumerate() {
            for (layout, old, new) in base {
                let mean = if ki == 0 { old } else { Some(new) };
                if let Some(m) = mean {
                    let m = m * (1.0 + drift[ki][run as usize]);
                    runs.push(guest_rec(kernel, accel, layout, run, m));
                }
            }
        }
    }
    file("vm", "kernels", runs)
}

#[test]
fn kernels_are_rows_with_order0_and_pte_order9_columns() {
    let f = two_kernel_file(Accel::Tcg);
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    // One case per layout, the thread's two columns first.
    let layouts: Vec<&str> = cases.iter().map(|c| c.layout.as_str()).collect();
    assert_eq!(layouts, ["order0", "pte-order9", "pmd-order9", "mthp-64k"]);
    let k61 = format!("{K61} (tcg)");
    let k612 = format!("{K612} (tcg)");
    for c in &cases {
        assert_eq!(c.kernel_rows, [k61.clone(), k612.clone()], "{}", c.title());
    }
    assert_eq!(cases[0].baseline, k61);
    assert_eq!(cases[3].baseline, k612);
    assert_eq!(cases[3].baseline_absent.as_deref(), Some(k61.as_str()));
    assert!(emulated(&cases));
    let combined = combined_from_cases(&cases, "vm");
    assert_eq!(combined.len(), 1);
    let t = combined_table(&combined[0]);
    insta::assert_snapshot!("kernel_rows_combined", t);
    // Wider than 100 columns: the last groups continue in a second block.
    assert!(t.lines().all(|l| l.chars().count() <= 100), "{t}");
    // Baseline 0.0%, the faster kernel negative; 6.1's mthp-64k is n/a, not 0. A row's
    // blocks joined read as one row.
    let row = |k: &str| {
        let parts: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with(&format!("| {k} ")))
            .collect();
        assert_eq!(parts.len(), 2, "{t}");
        parts
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if i == 0 {
                    l.to_string()
                } else {
                    l.splitn(3, '|').nth(2).unwrap().to_string()
                }
            })
            .collect::<String>()
    };
    let (old, new) = (row(&k61), row(&k612));
    assert!(old.contains("|     0.0% |     1.1% |     0.0% |"), "{old}");
    assert!(old.ends_with("|      n/a |      n/a |"), "{old}");
    assert!(
        new.contains("|    -1.5% |") && new.contains("|   -75.0% |"),
        "{new}"
    );
    let ext = extended_tables(&cases);
    insta::assert_snapshot!("kernel_rows_extended", ext);
    assert!(ext.contains("| faster"), "{ext}");
    insta::assert_snapshot!("kernel_rows_thread", thread_tables(&cases));
}

#[test]
fn the_emulated_note_is_for_tcg_runs_only() {
    let kvm = build_cases(&[two_kernel_file(Accel::Kvm)], None, &Policy::default()).unwrap();
    assert!(!emulated(&kvm));
    assert_eq!(kvm[0].rows[0].name, format!("{K61} (kvm)"));
    let host = build_cases(&[m2_file()], Some("mm-unstable"), &Policy::default()).unwrap();
    assert!(!emulated(&host));
    // One tcg run among host runs is enough.
    let mut f = two_kernel_file(Accel::Host);
    assert!(!emulated(
        &build_cases(std::slice::from_ref(&f), None, &Policy::default()).unwrap()
    ));
    if let Variant::Real(v) = &mut f.runs[0].variant {
        v.accel = Accel::Tcg;
    }
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    assert!(emulated(&cases));
    // Host kernels are bare releases.
    assert!(cases[0].kernel_rows.contains(&K612.to_string()));
    assert_eq!(
        EMULATED_NOTE,
        "emulated: these times show code-path differences, not hardware costs"
    );
}

#[test]
fn kernel_baselines_name_kernels_and_layout_baselines_are_ignored() {
    let f = two_kernel_file(Accel::Tcg);
    let p = Policy::default();
    // By release or by row name.
    for b in [K612.to_string(), format!("{K612} (tcg)")] {
        let cases = build_cases(std::slice::from_ref(&f), Some(&b), &p).unwrap();
        assert!(cases.iter().all(|c| c.baseline == format!("{K612} (tcg)")));
        assert!(cases.iter().all(|c| c.baseline_absent.is_none()));
        let t = thread_table(&rel_rows(&cases[1]));
        assert!(t.contains("300.4%"), "{t}");
    }
    // A profile's layout baseline does not name a row here: the first kernel stays baseline.
    let cases = build_cases(std::slice::from_ref(&f), Some("order0"), &p).unwrap();
    assert_eq!(cases[1].baseline, format!("{K61} (tcg)"));
    let e = build_cases(std::slice::from_ref(&f), Some("6.9.0"), &p).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "baseline kernel '6.9.0' is not in the selection (kernels: {K61} (tcg), {K612} (tcg))"
        )
    );
}

#[test]
fn kernel_order_follows_the_config_then_the_runs() {
    let mut f = two_kernel_file(Accel::Tcg);
    f.runs.reverse();
    assert_eq!(
        kernel_order(std::slice::from_ref(&f)),
        [format!("{K612} (tcg)"), format!("{K61} (tcg)")]
    );
    f.config = serde_json::json!({ "kernels": [K61, K612] });
    assert_eq!(
        kernel_order(std::slice::from_ref(&f)),
        [format!("{K61} (tcg)"), format!("{K612} (tcg)")]
    );
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    assert_eq!(cases[0].baseline, format!("{K61} (tcg)"));
    assert_eq!(cases[0].rows[0].name, format!("{K61} (tcg)"));
}

#[test]
fn one_guest_kernel_keeps_layouts_as_rows() {
    let mut f = two_kernel_file(Accel::Tcg);
    f.runs.retain(|r| r.variant.row_name() == K612);
    let cases = build_cases(&[f], None, &Policy::default()).unwrap();
    assert_eq!(cases.len(), 1);
    assert!(cases[0].kernel_rows.is_empty());
    assert_eq!(cases[0].baseline, "order0 tcg");
    assert!(emulated(&cases));
}

/// The baseline and row names of the one case built from sim records of (strategy, contpte)
/// pairs at order 9, each with the mapcount its strategy runs with.
fn sim_row_names(pairs: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut runs = Vec::new();
    for (i, &(strategy, contpte)) in pairs.iter().enumerate() {
        let mut r = rec(Instrument::Sim, strategy, "order9", contpte, i as u32, 1e7);
        if let Variant::Sim(v) = &mut r.variant {
            v.mapcount = v.strategy.effective_mapcount(v.mapcount);
        }
        runs.push(r);
    }
    let cases = build_cases(&[file("m", "k", runs)], None, &Policy::default()).unwrap();
    let names = cases[0].rows.iter().map(|r| r.name.clone()).collect();
    (cases[0].baseline.clone(), names)
}

#[test]
fn current_rows_carry_their_mapcount_and_sort_by_engine() {
    // `current` runs per-page as per-page+large, and its records say so: the row names carry
    // the option, and the rows still follow the engine order (dis, ena, basic) after upstream.
    let (_, names) = sim_row_names(&[
        ("current", "contpte-basic"),
        ("current", "contpte-ena"),
        ("upstream", "contpte-ena"),
        ("current", "contpte-dis"),
        ("mm-unstable", "contpte-dis"),
    ]);
    assert_eq!(
        names,
        [
            "mm-unstable contpte-dis",
            "upstream contpte-ena",
            "current contpte-dis,per-page+large",
            "current contpte-ena,per-page+large",
            "current contpte-basic,per-page+large",
        ]
    );
}

#[test]
fn stand_in_rows_follow_current_and_mm_unstable_stays_the_default_baseline() {
    // The kernels' stand-ins come after the thread's strategies and `current`, in the
    // contract's order, so the model's default baseline is still mm-unstable.
    let (baseline, names) = sim_row_names(
        &["v6.12", "current", "v6.1", "upstream", "mm-unstable"].map(|s| (s, "contpte-dis")),
    );
    assert_eq!(
        names,
        [
            "mm-unstable contpte-dis",
            "upstream contpte-dis",
            "current contpte-dis,per-page+large",
            "v6.1 contpte-dis",
            "v6.12 contpte-dis,per-page+large",
        ]
    );
    assert_eq!(baseline, "mm-unstable contpte-dis");
    assert_eq!(
        crate::cases::STRATEGY_ORDER.len(),
        results::Strategy::ALL.len()
    );
    // A stand-in can be the baseline by name.
    let cases = build_cases(
        &[file(
            "m",
            "k",
            vec![rec(Instrument::Sim, "v6.1", "order9", "", 0, 1e7)],
        )],
        Some("v6.1"),
        &Policy::default(),
    )
    .unwrap();
    assert_eq!(cases[0].baseline, "v6.1");
}

#[test]
fn mixed_layouts_have_headings_and_sit_before_untouched() {
    use crate::cases::{KERNEL_COLUMN_ORDER, LAYOUT_ORDER, layout_heading};
    assert_eq!(layout_heading("mix-64k"), "mix (64K mTHP + order-0)");
    assert_eq!(layout_heading("mix-pmd"), "mix (pmd-map + pte-map)");
    for order in [&LAYOUT_ORDER[..], &KERNEL_COLUMN_ORDER[..]] {
        let at = |l: &str| order.iter().position(|x| *x == l).unwrap();
        assert!(at("pmd-order9") < at("mix-64k"), "{order:?}");
        assert!(at("mix-64k") < at("mix-pmd") && at("mix-pmd") < at("untouched"));
    }
}
