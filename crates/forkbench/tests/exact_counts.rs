//! The committed stand-in counts of the instruction model (`results/exact-counts.json`, written
//! by `cargo xtask fidelity --counts`) must be what `forkbench counts` gives now: a model change
//! that moves them fails here, with the command that refreshes them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use contract::{OpCounter, RunnerOutput, Size};
use serde_json::Value;

#[test]
fn committed_exact_counts_are_the_models_counts() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../results/exact-counts.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        // No exact files committed yet: nothing is priced, nothing to hold.
        assert!(!path.exists());
        return;
    };
    let file: Value = serde_json::from_str(&text).expect("counts file is JSON");
    let entries = file["entries"].as_array().expect("entries");
    assert!(!entries.is_empty(), "an empty counts file is not committed");
    // One call per (arch, contpte, order, mem, mode), with every strategy of it.
    type Call = (String, Option<String>, u64, u64, String);
    type Ops = BTreeMap<OpCounter, u64>;
    let mut calls: BTreeMap<Call, Vec<(String, Ops)>> = BTreeMap::new();
    for e in entries {
        let s = |k: &str| {
            e[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {e}"))
                .to_string()
        };
        let n = |k: &str| e[k].as_u64().unwrap_or_else(|| panic!("{k} in {e}"));
        let ops: BTreeMap<OpCounter, u64> =
            serde_json::from_value(e["ops"].clone()).expect("ops by counter");
        calls
            .entry((
                s("arch"),
                e["contpte"].as_str().map(String::from),
                n("order"),
                n("mem_bytes"),
                s("mode"),
            ))
            .or_default()
            .push((s("strategy"), ops));
    }
    for ((arch, contpte, order, mem, mode), want) in calls {
        let strategies: Vec<&str> = want.iter().map(|(s, _)| s.as_str()).collect();
        let mut args = vec!["counts".to_string(), "--arch".into(), arch.clone()];
        if let Some(c) = &contpte {
            args.extend(["--contpte".into(), c.clone()]);
        }
        args.extend([
            "--strategy".into(),
            strategies.join(","),
            "--order".into(),
            order.to_string(),
            "--mem".into(),
            Size(mem).to_string(),
            "--mode".into(),
            mode.clone(),
            "--json".into(),
        ]);
        let out = Command::new(env!("CARGO_BIN_EXE_forkbench"))
            .args(&args)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = RunnerOutput::parse(&String::from_utf8_lossy(&out.stdout))
            .expect("runner lines")
            .counts;
        for (strategy, ops) in &want {
            let row = rows
                .iter()
                .find(|r| r.strategy.name() == strategy)
                .unwrap_or_else(|| panic!("no {strategy} row for {args:?}"));
            let got: BTreeMap<OpCounter, u64> = row
                .ops
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (*k, *v))
                .collect();
            let want: BTreeMap<OpCounter, u64> = ops
                .iter()
                .filter(|(_, v)| **v != 0)
                .map(|(k, v)| (*k, *v))
                .collect();
            assert_eq!(
                got,
                want,
                "`forkbench {}` no longer gives the committed counts: run `cargo xtask fidelity --counts` and commit results/exact-counts.json with results/fidelity.md",
                args.join(" ")
            );
        }
    }
}
