//! Parsing and validation of the runner's arguments: sizes (`2M`, `1G`, `1GiB`), folio
//! orders, strategy lists. Bad input becomes a [`UsageError`], which `main` prints as one line
//! and turns into exit code 2.

use forkmodel::{Order, StrategyId};

/// Bad command-line input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parse a byte size: a number with an optional K/M/G/T suffix (binary units, optional `iB`/`B`).
pub fn parse_size(s: &str) -> Result<u64, UsageError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        UsageError(format!(
            "invalid size '{s}' (examples: 4096, 2M, 1G, 512KiB)"
        ))
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift).ok_or_else(bad)
}

/// Parse a folio order (0..=9).
pub fn parse_order(s: &str) -> Result<Order, UsageError> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| UsageError(format!("invalid order '{s}' (expected 0..=9)")))?;
    Order::new(n).map_err(|e| UsageError(e.to_string()))
}

/// Parse a strategy name, a comma-separated list, or `all`.
pub fn parse_strategies(s: &str) -> Result<Vec<StrategyId>, UsageError> {
    if s == "all" {
        return Ok(StrategyId::ALL.to_vec());
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let id: StrategyId = part
            .trim()
            .parse()
            .map_err(|e: forkmodel::strategy::UnknownStrategy| UsageError(e.to_string()))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Parse the mapcount model name.
pub fn parse_mapcount(s: &str) -> Result<forkmodel::MapcountModel, UsageError> {
    use forkmodel::MapcountModel::*;
    match s {
        "per-page" => Ok(PerPage),
        "per-page+large" => Ok(PerPageAndLarge),
        "large-only" => Ok(LargeOnly),
        _ => Err(UsageError(format!(
            "unknown mapcount model '{s}' (expected per-page, per-page+large or large-only)"
        ))),
    }
}

/// Per-operation costs of privileged work userspace cannot run (ns per op), used to compute a
/// *modelled* time beside the measured one: `modelled = measured + sum(count x cost)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CostModel {
    /// One range TLB invalidation of a 64 KiB contpte block (TLBI x16 or a range TLBI, + DSB).
    pub tlbi_ns: f64,
    /// One `flush_tlb_mm` of the parent at the end of fork.
    pub flush_tlb_mm_ns: f64,
}

impl CostModel {
    /// Nanoseconds the counted privileged ops of one fork add.
    pub fn added_ns(&self, ops: &forkmodel::Ops) -> f64 {
        ops.tlbi as f64 * self.tlbi_ns + ops.tlb_flush_mm as f64 * self.flush_tlb_mm_ns
    }
}

/// Parse a cost model: `tlbi=NS,flush_tlb_mm=NS`, or the path of a file of `name_ns = NS`
/// lines (a profile's `[cost_model]` table, as `cargo xtask bench` writes it). In a file,
/// `tlbi_ns` is the cost of one contpte convert's invalidation; without it
/// `tlbi_range_ns + dsb_ish_ns` (a range TLBI and its barrier) is used; `flush_tlb_mm_ns`, else
/// `tlbi_page_ns + dsb_ish_ns` (an ASID-wide TLBI and its barrier). Other `_ns` keys are
/// accepted and unused; other lines are ignored.
pub fn parse_cost_model_arg(s: &str) -> Result<CostModel, UsageError> {
    let path = std::path::Path::new(s);
    if !s.contains('=') && path.exists() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UsageError(format!("--cost-model {s}: {e}")))?;
        return parse_cost_model_file(&text)
            .map_err(|e| UsageError(format!("--cost-model {s}: {}", e.0)));
    }
    parse_cost_model(s)
}

fn parse_cost_model_file(text: &str) -> Result<CostModel, UsageError> {
    let mut vals = std::collections::BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if !k.ends_with("_ns") {
            continue;
        }
        let v: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                UsageError(format!(
                    "{k}: '{}' is not a non-negative number of ns",
                    v.trim()
                ))
            })?;
        vals.insert(k.to_string(), v);
    }
    let get = |k: &str| vals.get(k).copied();
    let dsb = get("dsb_ish_ns").unwrap_or(0.0);
    Ok(CostModel {
        tlbi_ns: get("tlbi_ns")
            .or_else(|| get("tlbi_range_ns").map(|r| r + dsb))
            .unwrap_or(0.0),
        flush_tlb_mm_ns: get("flush_tlb_mm_ns")
            .or_else(|| get("tlbi_page_ns").map(|p| p + dsb))
            .unwrap_or(0.0),
    })
}

/// Parse `tlbi=NS,flush_tlb_mm=NS` (either key may be left out; unknown keys are errors).
pub fn parse_cost_model(s: &str) -> Result<CostModel, UsageError> {
    let mut m = CostModel::default();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--cost-model entry '{part}' is not KEY=NS")))?;
        let v: f64 = v
            .trim()
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite() && *x >= 0.0)
            .ok_or_else(|| {
                UsageError(format!(
                    "--cost-model {k}: '{v}' is not a non-negative number of ns"
                ))
            })?;
        match k.trim() {
            "tlbi" => m.tlbi_ns = v,
            "flush_tlb_mm" => m.flush_tlb_mm_ns = v,
            other => {
                return Err(UsageError(format!(
                    "--cost-model: unknown op '{other}' (expected tlbi, flush_tlb_mm)"
                )));
            }
        }
    }
    Ok(m)
}

/// Check that `mem` is a positive multiple of the folio size, and not absurdly large for the
/// model (each 4 KiB page costs 64 B of records plus 16 B of PTEs, parent and child).
pub fn check_mem(mem: u64, order: Order) -> Result<(), UsageError> {
    if mem == 0 {
        return Err(UsageError("--mem must be greater than zero".into()));
    }
    if !mem.is_multiple_of(order.bytes()) {
        return Err(UsageError(format!(
            "--mem {mem} is not a multiple of the order-{} folio size ({} bytes)",
            order.get(),
            order.bytes()
        )));
    }
    if mem > 64 << 30 {
        return Err(UsageError(format!(
            "--mem {mem} is larger than the model supports (64 GiB)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2M").unwrap(), 2 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64kb").unwrap(), 64 << 10);
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn cost_models() {
        let m = parse_cost_model("tlbi=1500,flush_tlb_mm=2000.5").unwrap();
        assert_eq!((m.tlbi_ns, m.flush_tlb_mm_ns), (1500.0, 2000.5));
        let ops = forkmodel::Ops {
            tlbi: 32,
            tlb_flush_mm: 1,
            ..Default::default()
        };
        assert_eq!(m.added_ns(&ops), 32.0 * 1500.0 + 2000.5);
        assert!(parse_cost_model("tlbi=-1").is_err());
        assert!(
            parse_cost_model("dsb=3")
                .unwrap_err()
                .0
                .contains("unknown op 'dsb'")
        );
        assert!(parse_cost_model("tlbi").is_err());
        assert_eq!(parse_cost_model("").unwrap(), CostModel::default());
        // A profile's [cost_model] table, as a file.
        let m = parse_cost_model_file(
            "source = \"assumption\"\ntlbi_page_ns = 30.0\ntlbi_range_ns = 60.0 # one RVALE1IS\ndsb_ish_ns = 40.0\nisb_ns = 10\n",
        )
        .unwrap();
        assert_eq!((m.tlbi_ns, m.flush_tlb_mm_ns), (100.0, 70.0));
        assert!(parse_cost_model_file("tlbi_ns = lots\n").is_err());
    }

    #[test]
    fn orders_strategies_and_mem() {
        assert_eq!(parse_order("9").unwrap().get(), 9);
        assert!(parse_order("10").unwrap_err().0.contains("out of range"));
        assert_eq!(parse_strategies("all").unwrap().len(), 5);
        assert_eq!(
            parse_strategies("upstream,mm-unstable,upstream").unwrap(),
            vec![StrategyId::Upstream, StrategyId::MmUnstable]
        );
        assert!(parse_strategies("upstream,bogus").is_err());
        let o9 = Order::new(9).unwrap();
        assert!(check_mem(2 << 20, o9).is_ok());
        assert!(
            check_mem(1 << 20, o9)
                .unwrap_err()
                .0
                .contains("not a multiple")
        );
        assert!(check_mem(0, o9).is_err());
    }
}
