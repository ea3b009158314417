//! The runner as a user meets it: headline counts, JSON run records, the oracle, and one
//! clear error line with exit code 2 for every kind of bad input.

use std::process::Command;

fn forkbench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn counts_json(strategy: &str, order: &str) -> serde_json::Value {
    counts_on(&["--arch", "x86_64"], strategy, order)
}

fn counts_on(arch: &[&str], strategy: &str, order: &str) -> serde_json::Value {
    let mut args = vec!["counts"];
    args.extend_from_slice(arch);
    args.extend_from_slice(&[
        "--strategy",
        strategy,
        "--order",
        order,
        "--mem",
        "2M",
        "--json",
    ]);
    let (code, out, err) = forkbench(&args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

#[test]
fn headline_counts() {
    let up = counts_json("upstream", "9");
    assert_eq!(up["ptep_get_calls"], 512);
    assert_eq!(up["refcount_atomics"], 1);
    assert_eq!(up["mapcount_atomics"], 512);
    let mm = counts_json("mm-unstable", "9");
    assert_eq!(mm["ptep_get_calls"], 1024);
    assert_eq!(mm["refcount_atomics"], 512);
    assert_eq!(counts_json("upstream", "0")["refcount_atomics"], 512);
}

#[test]
fn arm64_contpte_headline_counts() {
    let on = ["--arch", "arm64", "--contpte", "on"];
    assert_eq!(
        counts_on(&on, "fork-batching", "9")["ptep_get_raw_reads"],
        8704
    );
    assert_eq!(counts_on(&on, "upstream", "9")["ptep_get_raw_reads"], 544);
    assert_eq!(counts_on(&on, "ryan-v4", "9")["ptep_get_raw_reads"], 544);
    assert_eq!(counts_on(&on, "upstream", "9")["tlbi"], 0);
    assert_eq!(counts_on(&on, "upstream", "9")["options"], "contpte-ena");
    // contpte without fork helpers unfolds every one of the 32 blocks.
    let basic = counts_on(
        &["--arch", "arm64", "--contpte", "basic"],
        "fork-batching",
        "9",
    );
    assert_eq!(basic["tlbi"], 32);
    assert_eq!(basic["options"], "contpte-basic");
}

#[test]
fn sim_reports_modelled_time_separately() {
    let (code, out, err) = forkbench(&[
        "sim",
        "--arch",
        "arm64",
        "--contpte",
        "basic",
        "--strategy",
        "upstream",
        "--order",
        "9",
        "--mem",
        "2M",
        "--iters",
        "2",
        "--runs",
        "1",
        "--json",
        "--cost-model",
        "tlbi=1000,flush_tlb_mm=0",
    ]);
    assert_eq!(code, 0, "{err}");
    let r: results::RunRecord = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(r.extra["modelled_add_ns"], 32_000.0);
    let measured = r.mean_ns();
    assert!((r.extra["modelled_mean_ns"].as_f64().unwrap() - (measured + 32_000.0)).abs() < 1e-6);
}

#[test]
fn sim_prints_one_run_record_per_strategy_and_run() {
    let (code, out, err) = forkbench(&[
        "sim",
        "--strategy",
        "upstream,mm-unstable",
        "--order",
        "9",
        "--mem",
        "4M",
        "--iters",
        "3",
        "--runs",
        "2",
        "--json",
        "--cpu",
        "0",
    ]);
    assert_eq!(code, 0, "{err}");
    let recs: Vec<results::RunRecord> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 4);
    for r in &recs {
        assert_eq!(r.samples_ns.len(), 3);
        assert!(r.samples_ns.iter().all(|&s| s > 0));
        assert_eq!(r.variant.layout, "order9");
        assert_eq!(r.cpu, Some(0));
        assert_eq!(
            r.ops["ptep_get_calls"],
            if r.variant.strategy == "upstream" {
                1024
            } else {
                2048
            }
        );
    }
    // Each run contains both strategies: interleaved, not one strategy's runs back to back.
    for run in 0..2 {
        let names: Vec<_> = recs
            .iter()
            .filter(|r| r.run_index == run)
            .map(|r| r.variant.strategy.as_str())
            .collect();
        assert_eq!(names.len(), 2);
    }
}

#[test]
fn check_passes_on_random_layouts() {
    let (code, out, err) = forkbench(&[
        "check",
        "--random",
        "5",
        "--seed",
        "100",
        "--resched-every",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 5 layout(s) x 5 strategies"), "{out}");
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        vec!["counts", "--arch", "sparc"],
        vec!["counts", "--strategy", "v6.7"],
        vec!["counts", "--order", "10"],
        vec!["counts", "--order", "9", "--mem", "3M"],
        vec!["counts", "--mem", "lots"],
        vec!["sim", "--mem", "2M", "--cpu", "4096"],
        vec!["sim", "--mem", "2M", "--iters", "0"],
        vec!["sim", "--mem", "2M", "--mode", "warm"],
        vec!["check", "--random", "0"],
        vec!["counts", "--mapcount", "none"],
        vec!["counts", "--arch", "x86_64", "--contpte", "on"],
        vec!["counts", "--arch", "arm64", "--contpte", "maybe"],
        vec!["sim", "--mem", "2M", "--cost-model", "tlbi=fast"],
        vec!["sim", "--cpu", "abc"],
        vec!["sim", "--iters", "-1"],
        vec!["frobnicate"],
    ] {
        let (code, out, err) = forkbench(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        let lines: Vec<_> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {err}");
        assert!(
            lines[0].starts_with("forkbench: error: "),
            "{args:?}: {err}"
        );
    }
}
