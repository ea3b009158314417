//! The stand-ins' op counts the instruction model prices: one fork of each stand-in at each
//! folio order, memory size and mode the exact files hold, taken from the model (`forkbench
//! counts`) and committed as `results/exact-counts.json`, so rendering the report needs no
//! runner. A layout's counts are built from them as the calibration builds its own: the mixes
//! are half one part, half the other; a huge PMD is derived
//! ([`crate::calibrate::features::huge_pmd_counts`]); `untouched` has none.

use std::collections::BTreeMap;
use std::path::Path;

use contract::{Arch, Contpte, Mapcount, Mode, ModelOrder, RealLayout, Runner, Size, Strategy};
use serde::{Deserialize, Serialize};

use super::data::{ExactData, StandIn};
use crate::calibrate::features::huge_pmd_counts;
use crate::calibrate::measure::{combine, parts};
use crate::runner::{self, ModelSpec, Ops};
use crate::{CalibrateError, Result};

/// Version of the counts file.
pub const COUNTS_SCHEMA: u32 = 1;
/// The `kind` tag of a counts file.
pub const COUNTS_KIND: &str = "forkbench-stand-in-counts";

/// Where a count was taken: engine, strategy and the populated memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CountsKey {
    pub arch: Arch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contpte: Option<Contpte>,
    pub strategy: Strategy,
    pub order: ModelOrder,
    pub mem_bytes: u64,
    pub mode: Mode,
}

/// One fork's op counts at one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountsEntry {
    #[serde(flatten)]
    pub key: CountsKey,
    pub ops: Ops,
}

/// The counts file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandInCounts {
    pub schema: u32,
    pub kind: String,
    /// forkbench's version and git revision that counted.
    pub tool_version: String,
    #[serde(default)]
    pub tool_rev: Option<String>,
    /// Sorted by key.
    pub entries: Vec<CountsEntry>,
}

impl StandInCounts {
    pub fn new(entries: Vec<CountsEntry>, tool_rev: Option<String>) -> StandInCounts {
        let mut entries = entries;
        entries.sort_by_key(|e| e.key);
        StandInCounts {
            schema: COUNTS_SCHEMA,
            kind: COUNTS_KIND.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            tool_rev,
            entries,
        }
    }

    /// Read a counts file; an absent one is empty (no exact files need none).
    pub fn load(path: &Path) -> Result<StandInCounts> {
        if !path.exists() {
            return Ok(StandInCounts::new(Vec::new(), None));
        }
        let text = results::fsio::read(path)?;
        let c: StandInCounts =
            serde_json::from_str(&text).map_err(|source| CalibrateError::Json {
                path: path.to_owned(),
                source,
            })?;
        if c.kind != COUNTS_KIND || c.schema != COUNTS_SCHEMA {
            return Err(CalibrateError::Input(format!(
                "{}: not a stand-in counts file of schema {COUNTS_SCHEMA} (kind {}, schema {})",
                path.display(),
                c.kind,
                c.schema
            )));
        }
        Ok(c)
    }

    /// Write it (atomically), as pretty JSON with a final newline.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("counts serialise") + "\n";
        Ok(results::fsio::write_replace(path, json.as_bytes())?)
    }

    fn get(&self, key: &CountsKey) -> Option<&Ops> {
        self.entries
            .binary_search_by(|e| e.key.cmp(key))
            .ok()
            .map(|i| &self.entries[i].ops)
    }

    /// One fork's counts of `layout` for `stand_in`: the model orders' counts combined as the
    /// layout's parts; a part missing from the file is an error that says how to make it.
    pub fn layout_counts(
        &self,
        arch: Arch,
        stand_in: StandIn,
        layout: RealLayout,
        mem_bytes: u64,
        mode: Mode,
    ) -> Result<Ops> {
        let pmd = huge_pmd_counts(mem_bytes);
        let mut found = Vec::new();
        for (share, order) in parts(layout)? {
            let ops = match order {
                None => &pmd,
                Some(order) => {
                    let key = CountsKey {
                        arch,
                        contpte: stand_in.contpte,
                        strategy: stand_in.strategy,
                        order,
                        mem_bytes,
                        mode,
                    };
                    self.get(&key).ok_or_else(|| {
                        CalibrateError::Input(format!(
                            "no stand-in counts for {arch} {} order {order} at {} {mode}: \
                             run `cargo xtask fidelity --counts` (results/exact-counts.json)",
                            stand_in.label(),
                            Size(mem_bytes)
                        ))
                    })?
                }
            };
            found.push((share, ops));
        }
        Ok(combine(&found))
    }
}

/// Every count the observations of `data` need, each once, sorted.
pub fn needed(data: &ExactData) -> Result<Vec<CountsKey>> {
    let mut keys = Vec::new();
    for o in &data.obs {
        for (_, order) in parts(o.layout)? {
            let Some(order) = order else { continue };
            keys.push(CountsKey {
                arch: o.kernel.arch,
                contpte: o.kernel.stand_in.contpte,
                strategy: o.kernel.stand_in.strategy,
                order,
                mem_bytes: o.mem_bytes,
                mode: o.mode,
            });
        }
    }
    keys.sort();
    keys.dedup();
    Ok(keys)
}

/// Take every needed count from the model, one `forkbench counts` call per engine, order,
/// memory and mode (each with the strategies it needs). The mapcount asked for is the
/// thread's per-page one; `v6.12` raises it to per-page+large itself.
pub fn measure(forkbench: &Path, keys: &[CountsKey]) -> Result<Vec<CountsEntry>> {
    let runner = Runner::new(forkbench);
    type Call = (Arch, Option<Contpte>, ModelOrder, u64, Mode);
    let mut calls: BTreeMap<Call, Vec<Strategy>> = BTreeMap::new();
    for k in keys {
        calls
            .entry((k.arch, k.contpte, k.order, k.mem_bytes, k.mode))
            .or_default()
            .push(k.strategy);
    }
    let mut out = Vec::new();
    for ((arch, contpte, order, mem_bytes, mode), strategies) in calls {
        let spec = ModelSpec {
            arch,
            contpte,
            order,
            mem: Size(mem_bytes),
            mode,
            mapcount: Mapcount::PerPage,
        };
        eprintln!(
            "fidelity: stand-in counts, {arch}{} order {order} {} {mode}",
            contpte
                .map(|c| format!(" {}", c.label()))
                .unwrap_or_default(),
            Size(mem_bytes)
        );
        for (strategy, ops) in runner::counts(&runner, &spec, &strategies)? {
            out.push(CountsEntry {
                key: CountsKey {
                    arch,
                    contpte,
                    strategy,
                    order,
                    mem_bytes,
                    mode,
                },
                ops,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::OpCounter;

    fn key(order: u8) -> CountsKey {
        CountsKey {
            arch: Arch::X86_64,
            contpte: None,
            strategy: Strategy::V6_12,
            order: ModelOrder::new(order).unwrap(),
            mem_bytes: 4 << 20,
            mode: Mode::Steady,
        }
    }

    #[test]
    fn layouts_combine_their_parts_and_missing_counts_say_how_to_make_them() {
        let ops = |b: u64| Ops::from([(OpCounter::Batches, b), (OpCounter::PteWrites, 1024)]);
        let c = StandInCounts::new(
            vec![
                CountsEntry {
                    key: key(9),
                    ops: ops(2),
                },
                CountsEntry {
                    key: key(0),
                    ops: ops(1024),
                },
            ],
            None,
        );
        assert_eq!(c.entries[0].key, key(0), "sorted");
        let si = StandIn {
            strategy: Strategy::V6_12,
            contpte: None,
        };
        let at = |l| c.layout_counts(Arch::X86_64, si, l, 4 << 20, Mode::Steady);
        assert_eq!(at(RealLayout::PteOrder9).unwrap(), ops(2));
        let mix = at(RealLayout::MixPmd).unwrap();
        assert_eq!(mix[&OpCounter::Batches], 1);
        assert_eq!(mix[&OpCounter::PteWrites], 512);
        // Two huge PMDs on 4 MiB, half of them in the mix.
        assert_eq!(mix[&OpCounter::RmapCalls], 1);
        assert!(at(RealLayout::Untouched).unwrap().is_empty());
        let e = at(RealLayout::Mthp { kb: 64 }).unwrap_err().to_string();
        assert!(
            e.contains("no stand-in counts for x86_64 v6.12 order 4 at 4M steady")
                && e.contains("cargo xtask fidelity --counts"),
            "{e}"
        );
    }

    #[test]
    fn the_file_round_trips_and_refuses_other_kinds() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.json");
        assert!(StandInCounts::load(&p).unwrap().entries.is_empty());
        let c = StandInCounts::new(
            vec![CountsEntry {
                key: key(4),
                ops: Ops::from([(OpCounter::Batches, 64)]),
            }],
            Some("abc".into()),
        );
        c.save(&p).unwrap();
        assert_eq!(StandInCounts::load(&p).unwrap(), c);
        std::fs::write(
            &p,
            r#"{"schema":1,"kind":"x","tool_version":"0","entries":[]}"#,
        )
        .unwrap();
        let e = StandInCounts::load(&p).unwrap_err().to_string();
        assert!(e.contains("not a stand-in counts file"), "{e}");
    }
}
