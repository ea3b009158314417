//! The runner as a user meets it: headline counts, JSON run records, the oracle, and one
//! clear error line with exit code 2 for every kind of bad input.

use std::process::Command;

use contract::OpCounter::{self, *};
use contract::{Arch, Contpte, CostModel, CountsRow, RunRecord, RunnerOutput, Strategy};

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

fn counts_json(strategy: &str, order: &str) -> CountsRow {
    counts_on(&["--arch", "x86_64"], strategy, order)
}

/// One strategy's counts row, read from `counts --json` (a header line, then the row).
fn counts_on(arch: &[&str], strategy: &str, order: &str) -> CountsRow {
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
    let parsed = RunnerOutput::parse(&out).expect("runner lines");
    assert_eq!(parsed.header, Some(contract::Header::current()));
    assert!(parsed.runs.is_empty() && parsed.contexts.is_empty());
    let [row] = <[CountsRow; 1]>::try_from(parsed.counts).expect("one counts row");
    row
}

fn sim_runs(args: &[&str]) -> Vec<RunRecord> {
    let (code, out, err) = forkbench(args);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with(r#"{"line":"header","schema":2,"#),
        "{out}"
    );
    RunnerOutput::parse(&out).expect("runner lines").runs
}

#[test]
fn headline_counts() {
    let up = counts_json("upstream", "9");
    assert_eq!(up.ops[&PtepGetCalls], 512);
    assert_eq!(up.ops[&RefcountAtomics], 1);
    assert_eq!(up.ops[&MapcountAtomics], 512);
    assert_eq!(
        up.ops.len(),
        OpCounter::ALL.len(),
        "every counter, zeros too"
    );
    assert_eq!(up.strategy, Strategy::Upstream);
    assert_eq!((up.arch, up.contpte), (Arch::X86_64, None));
    assert_eq!(up.order.get(), 9);
    assert_eq!(up.mem_bytes, 2 << 20);
    let mm = counts_json("mm-unstable", "9");
    assert_eq!(mm.ops[&PtepGetCalls], 1024);
    assert_eq!(mm.ops[&RefcountAtomics], 512);
    assert_eq!(counts_json("upstream", "0").ops[&RefcountAtomics], 512);
}

#[test]
fn arm64_contpte_headline_counts() {
    let ena = ["--arch", "arm64", "--contpte", "ena"];
    assert_eq!(
        counts_on(&ena, "fork-batching", "9").ops[&PtepGetRawReads],
        8704
    );
    assert_eq!(counts_on(&ena, "upstream", "9").ops[&PtepGetRawReads], 544);
    assert_eq!(counts_on(&ena, "ryan-v4", "9").ops[&PtepGetRawReads], 544);
    assert_eq!(counts_on(&ena, "upstream", "9").ops[&Tlbi], 0);
    assert_eq!(counts_on(&ena, "upstream", "9").contpte, Some(Contpte::Ena));
    // Without --contpte, arm64 models the v6.9 kernel.
    assert_eq!(
        counts_on(&["--arch", "arm64"], "upstream", "9").contpte,
        Some(Contpte::Ena)
    );
    // contpte without fork helpers unfolds every one of the 32 blocks.
    let basic = counts_on(
        &["--arch", "arm64", "--contpte", "basic"],
        "fork-batching",
        "9",
    );
    assert_eq!(basic.ops[&Tlbi], 32);
    assert_eq!(basic.contpte, Some(Contpte::Basic));
}

/// The counts rows of `counts --json` with these arguments, one per strategy.
fn counts_rows(args: &[&str]) -> Vec<CountsRow> {
    let mut all = vec!["counts"];
    all.extend_from_slice(args);
    all.push("--json");
    let (code, out, err) = forkbench(&all);
    assert_eq!(code, 0, "{err}");
    RunnerOutput::parse(&out).expect("runner lines").counts
}

/// The counters that tell `current` from `upstream`, in this order: ptep_get calls, raw
/// reads, all PTE reads, refcount, per-page mapcount and large-mapcount atomics, batches.
fn key_counts(r: &CountsRow) -> [u64; 7] {
    [
        PtepGetCalls,
        PtepGetRawReads,
        PteReads,
        RefcountAtomics,
        MapcountAtomics,
        LargeMapcountAtomics,
        Batches,
    ]
    .map(|c| r.ops[&c])
}

#[test]
fn current_counts_match_the_derivation_at_orders_4_and_9() {
    // x86_64, 1 GiB = 512 page tables of 512 PTEs, steady mode (the parent was forked before:
    // its PTEs are read-only, so no wrprotect read, no CAS, no AnonExclusive clear; only the
    // ptep_get reads remain in pte_reads).
    let rows = |order| {
        let r = counts_rows(&[
            "--strategy",
            "upstream,current",
            "--order",
            order,
            "--mem",
            "1G",
            "--mode",
            "steady",
        ]);
        let [up, cur] = <[CountsRow; 2]>::try_from(r).expect("two rows");
        assert_eq!(
            (up.strategy, cur.strategy),
            (Strategy::Upstream, Strategy::Current)
        );
        // The records say which mapcount model each kernel ran: the thread's per-page for
        // upstream, per-page+large for current (≥ v6.11 keeps _large_mapcount).
        assert_eq!(up.mapcount, contract::Mapcount::PerPage);
        assert_eq!(cur.mapcount, contract::Mapcount::PerPageAndLarge);
        for r in [&up, &cur] {
            assert_eq!(r.ops[&PteAtomics], 0, "{}", r.strategy);
            assert_eq!(r.ops[&AnonExclusiveClears], 0, "{}", r.strategy);
            assert_eq!(r.ops[&PteWrites], 512 * 512, "{}", r.strategy);
        }
        (key_counts(&up), key_counts(&cur))
    };
    // Order 4: 32 folios per table. upstream reads 1 + 15 + 1 (the next folio's first PTE,
    // whose PFN is past the folio end) per folio, except the table's last: 543 per table.
    // current caps max_nr at the folio's end: 16 per folio, 512 per table, one fewer read
    // per batch that ends before the table end. One folio_ref_add, 16 _mapcount incs and
    // (current only) one _large_mapcount update per batch.
    let (up, cur) = rows("4");
    assert_eq!(
        up,
        [
            543 * 512,
            543 * 512,
            543 * 512,
            32 * 512,
            512 * 512,
            0,
            32 * 512
        ]
    );
    assert_eq!(
        cur,
        [
            512 * 512,
            512 * 512,
            512 * 512,
            32 * 512,
            512 * 512,
            32 * 512,
            32 * 512
        ]
    );
    // Order 9: one folio = one table; the batch ends at the table end, where max_nr stops
    // both without a read: the same 512 reads per table; one large-mapcount update per batch.
    let (up, cur) = rows("9");
    assert_eq!(
        up,
        [512 * 512, 512 * 512, 512 * 512, 512, 512 * 512, 0, 512]
    );
    assert_eq!(
        cur,
        [512 * 512, 512 * 512, 512 * 512, 512, 512 * 512, 512, 512]
    );
}

#[test]
fn current_counts_on_arm64_contpte_gather_once_per_folio() {
    // arm64 contpte on, 2 MiB fresh, order 4: a 16-page folio is one CONT block; its first
    // ptep_get gathers 17 raw reads and pte_batch_hint = 16 already reaches the capped
    // max_nr, so current reads no further (32 x 17 = 544), where upstream also gathers the
    // next folio's block to stop (63 x 17 = 1071).
    let r = counts_rows(&[
        "--arch",
        "arm64",
        "--contpte",
        "ena",
        "--strategy",
        "upstream,current",
        "--order",
        "4",
        "--mem",
        "2M",
    ]);
    let [up, cur] = <[CountsRow; 2]>::try_from(r).expect("two rows");
    assert_eq!(key_counts(&up), [63, 1071, 1071 + 512, 32, 512, 0, 32]);
    assert_eq!(key_counts(&cur), [32, 544, 544 + 512, 32, 512, 32, 32]);
    assert_eq!((up.ops[&Tlbi], cur.ops[&Tlbi]), (0, 0));
}

#[test]
fn v6_1_counts_match_the_derivation_at_orders_4_and_9() {
    // x86_64, 1 GiB = 512 page tables of 512 PTEs, steady mode (no write-protect, no
    // AnonExclusive clear). 6.1 copies one PTE at a time like mm-unstable (v6.7), whatever
    // the folio order: one folio_get, one rmap dup, one batch per PTE. But it loads each PTE
    // once (copy_pte_range's plain dereferences and copy_present_pte's, merged by the
    // compiler) where mm-unstable calls ptep_get twice.
    let rows = |order, mode| {
        let r = counts_rows(&[
            "--strategy",
            "mm-unstable,v6.1",
            "--order",
            order,
            "--mem",
            "1G",
            "--mode",
            mode,
        ]);
        let [mm, old] = <[CountsRow; 2]>::try_from(r).expect("two rows");
        assert_eq!(
            (mm.strategy, old.strategy),
            (Strategy::MmUnstable, Strategy::V6_1)
        );
        // 6.1 has no _large_mapcount; its row says the thread's per-page model.
        assert_eq!(old.mapcount, contract::Mapcount::PerPage);
        assert_eq!((old.arch, old.contpte), (Arch::X86_64, None));
        for r in [&mm, &old] {
            assert_eq!(r.ops[&PteWrites], 512 * 512, "{}", r.strategy);
        }
        (mm, old)
    };
    let t = 512; // page tables
    for order in ["4", "9"] {
        let (mm, old) = rows(order, "steady");
        assert_eq!(
            key_counts(&mm),
            [1024 * t, 1024 * t, 1024 * t, 512 * t, 512 * t, 0, 512 * t],
            "order {order}"
        );
        assert_eq!(
            key_counts(&old),
            [512 * t, 512 * t, 512 * t, 512 * t, 512 * t, 0, 512 * t],
            "order {order}"
        );
        for r in [&mm, &old] {
            assert_eq!(r.ops[&PteAtomics], 0);
            assert_eq!(r.ops[&AnonExclusiveClears], 0);
        }
    }
    // Fresh memory, order 9 (2 MiB, one table): both write-protect every parent PTE with one
    // atomic, but 6.1's x86 code does it with a locked bit clear and no load, where v6.6+
    // reads the PTE first: 1536 PTE reads for mm-unstable, 512 for v6.1.
    let r = counts_rows(&[
        "--strategy",
        "mm-unstable,v6.1",
        "--order",
        "9",
        "--mem",
        "2M",
    ]);
    let [mm, old] = <[CountsRow; 2]>::try_from(r).expect("two rows");
    assert_eq!(
        [&mm, &old].map(|r| (
            r.ops[&PteReads],
            r.ops[&PteAtomics],
            r.ops[&AnonExclusiveClears]
        )),
        [(1536, 512, 512), (512, 512, 512)]
    );
    // On arm64 (no contpte before v6.9: `--contpte dis`) the write-protect is a load and a
    // CAS in every version: 512 + 512 reads.
    let r = counts_rows(&[
        "--arch",
        "arm64",
        "--contpte",
        "dis",
        "--strategy",
        "v6.1",
        "--order",
        "9",
        "--mem",
        "2M",
    ]);
    let [arm] = <[CountsRow; 1]>::try_from(r).expect("one row");
    assert_eq!(key_counts(&arm), [512, 512, 1024, 512, 512, 0, 512]);
    assert_eq!((arm.ops[&PteAtomics], arm.ops[&Tlbi]), (512, 0));
}

#[test]
fn v6_12_counts_as_current_on_both_arches() {
    // Debian's 6.12.117 caps folio_pte_batch at the folio end (a stable backport) and keeps
    // _large_mapcount, so at order 4 (2 MiB fresh) it reads 16 PTEs per folio and updates the
    // large mapcount once per batch: current's counts, x86_64 and arm64 contpte-ena alike.
    for (engine, want) in [
        (&["--arch", "x86_64"][..], [512, 512, 1024, 32, 512, 32, 32]),
        (
            &["--arch", "arm64", "--contpte", "ena"][..],
            [32, 544, 544 + 512, 32, 512, 32, 32],
        ),
    ] {
        let mut args = engine.to_vec();
        args.extend(["--strategy", "current,v6.12", "--order", "4", "--mem", "2M"]);
        let [cur, new] = <[CountsRow; 2]>::try_from(counts_rows(&args)).expect("two rows");
        assert_eq!(new.strategy, Strategy::V6_12);
        assert_eq!(new.mapcount, contract::Mapcount::PerPageAndLarge);
        assert_eq!(key_counts(&new), want, "{engine:?}");
        assert_eq!(new.ops, cur.ops, "{engine:?}");
    }
}

#[test]
fn sim_and_check_run_the_stand_ins_each_on_its_engine() {
    // One sim call with strategies on both x86 PTE codes: every run has both, interleaved,
    // each with its own counts.
    let recs = sim_runs(&[
        "sim",
        "--strategy",
        "v6.1,current",
        "--order",
        "9",
        "--mem",
        "4M",
        "--iters",
        "2",
        "--runs",
        "2",
        "--json",
    ]);
    assert_eq!(recs.len(), 4);
    for run in 0..2 {
        let mut names: Vec<String> = recs
            .iter()
            .filter(|r| r.run_index == run)
            .map(|r| r.variant.row_name())
            .collect();
        names.sort();
        assert_eq!(names, ["current", "v6.1"], "run {run}");
    }
    for r in &recs {
        assert_eq!(r.variant.arch(), Arch::X86_64);
        let want_reads = if r.variant.row_name() == "v6.1" {
            1024
        } else {
            2048
        };
        assert_eq!(r.op(PteReads), Some(want_reads), "{}", r.variant.id());
    }
    let (code, out, err) =
        forkbench(&["check", "--strategy", "v6.1,current,v6.12", "--random", "5"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ok: 5 layout(s) x 3 strategies"), "{out}");
}

#[test]
fn counts_text_names_a_mapcount_other_than_per_page() {
    let (code, out, err) = forkbench(&[
        "counts",
        "--strategy",
        "current",
        "--order",
        "9",
        "--mem",
        "2M",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("x86_64 current order 9 mem 2097152 (fresh, mapcount per-page+large):\n"),
        "{out}"
    );
    // v6.1's x86 PTE code (before SavedDirty) is named, as a non-default mapcount is.
    let (code, out, err) = forkbench(&["counts", "--strategy", "v6.1", "--mem", "2M"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("x86_64 v6.1 order 0 mem 2097152 (fresh, x86 PTE code no-saved-dirty):\n"),
        "{out}"
    );
    let (code, out, err) = forkbench(&[
        "counts",
        "--arch",
        "arm64",
        "--contpte",
        "dis",
        "--strategy",
        "v6.1",
        "--mem",
        "2M",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("arm64 contpte-dis v6.1 order 0 mem 2097152 (fresh):\n"),
        "{out}"
    );
    // Asking for CONFIG_NO_PAGE_MAPCOUNT keeps meaning it for current.
    let (code, out, err) = forkbench(&[
        "counts",
        "--strategy",
        "current",
        "--order",
        "9",
        "--mem",
        "2M",
        "--mapcount",
        "large-only",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(fresh, mapcount large-only):"), "{out}");
    assert!(out.contains("  mapcount_atomics         0\n"), "{out}");
    assert!(out.contains("  large_mapcount_atomics   1\n"), "{out}");
}

#[test]
fn counts_without_json_lists_every_counter() {
    let (code, out, err) = forkbench(&[
        "counts",
        "--strategy",
        "upstream",
        "--order",
        "9",
        "--mem",
        "2M",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("x86_64 upstream order 9 mem 2097152 (fresh):\n"),
        "{out}"
    );
    for c in OpCounter::ALL {
        assert!(out.contains(&format!("  {c:<24} ")), "{c} in {out}");
    }
}

#[test]
fn sim_reports_modelled_time_separately() {
    let recs = sim_runs(&[
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
    let [r] = <[RunRecord; 1]>::try_from(recs).expect("one run");
    let sim = r.sim.as_ref().unwrap();
    assert_eq!(sim.modelled_add_ns, Some(32_000.0));
    assert_eq!(
        sim.cost_model,
        Some(CostModel {
            tlbi_ns: 1000.0,
            flush_tlb_mm_ns: 0.0
        })
    );
    let measured = r.mean_ns();
    assert!((r.modelled_mean_ns().unwrap() - (measured + 32_000.0)).abs() < 1e-6);
    assert_eq!(r.variant.id(), "sim:arm64:upstream:order9:contpte-basic");
}

#[test]
fn sim_prints_one_run_record_per_strategy_and_run() {
    let recs = sim_runs(&[
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
    assert_eq!(recs.len(), 4);
    for r in &recs {
        assert_eq!(r.samples_ns.len(), 3);
        assert!(r.samples_ns.iter().all(|&s| s > 0));
        assert_eq!(r.variant.layout_name(), "order9");
        assert_eq!(r.cpu, Some(0));
        let sim = r.sim.as_ref().unwrap();
        assert_eq!(sim.ptes, 1024);
        assert!(sim.model_bytes > 0);
        assert!(r.ns_per_pte().unwrap() > 0.0);
        assert_eq!(r.sim.as_ref().unwrap().modelled_add_ns, None);
        assert_eq!(
            r.op(PtepGetCalls),
            Some(if r.variant.row_name() == "upstream" {
                1024
            } else {
                2048
            })
        );
    }
    // Each run contains both strategies: interleaved, not one strategy's runs back to back.
    for run in 0..2 {
        let names: Vec<_> = recs
            .iter()
            .filter(|r| r.run_index == run)
            .map(|r| r.variant.row_name())
            .collect();
        assert_eq!(names.len(), 2);
    }
}

#[test]
fn sim_without_json_prints_ns_per_pte() {
    let (code, out, err) = forkbench(&[
        "sim",
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
    ]);
    assert_eq!(code, 0, "{err}");
    let line = out.lines().next().unwrap();
    assert!(
        line.starts_with("upstream               run  0: mean "),
        "{line}"
    );
    assert!(line.ends_with(" ns/PTE"), "{line}");
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
    let all = format!("ok: 5 layout(s) x {} strategies", Strategy::ALL.len());
    assert!(out.starts_with(&all), "{out}");
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
        vec!["counts", "--arch", "x86_64", "--contpte", "ena"],
        vec!["counts", "--arch", "arm64", "--contpte", "maybe"],
        vec!["counts", "--arch", "arm64", "--contpte", "on"],
        vec!["check", "--contpte", "off", "--arch", "arm64"],
        vec!["check", "--order", "9", "--mem", "1M"],
        vec!["real", "--layout", "order7"],
        vec!["real", "--layout", "mthp-2M"],
        vec!["real", "--layout", "order0", "--mem", "3M"],
        vec!["real", "--layout", "order0", "--mode", "warm"],
        vec!["real", "--layout", "order0", "--label", "k"],
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
    // The one line keeps clap's list of choices.
    let (_, _, err) = forkbench(&["counts", "--arch", "arm64", "--contpte", "on"]);
    assert!(err.contains("[possible values: dis, ena, basic]"), "{err}");
}
