//! What clap cannot check alone: the memory of a model run against its folio order, and the
//! privileged-op cost model (`--cost-model`). Words and sizes parse through the contract's
//! types in the CLI itself. Bad input becomes a [`UsageError`], which `main` prints as one line
//! and turns into exit code 2.

use contract::CostModel;
use forkmodel::{Ops, Order};

/// Bad command-line input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Nanoseconds the counted privileged ops of one fork add to its measured time: the *modelled*
/// time is `measured + sum(count x cost)` (userspace cannot run the privileged ops itself).
pub fn added_ns(m: &CostModel, ops: &Ops) -> f64 {
    ops.tlbi as f64 * m.tlbi_ns + ops.tlb_flush_mm as f64 * m.flush_tlb_mm_ns
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
        vals.insert(k.to_string(), parse_ns(k, v)?);
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

/// A cost in ns: finite and not negative; `what` names it in the error.
fn parse_ns(what: &str, v: &str) -> Result<f64, UsageError> {
    v.trim()
        .parse()
        .ok()
        .filter(|x: &f64| x.is_finite() && *x >= 0.0)
        .ok_or_else(|| {
            UsageError(format!(
                "{what}: '{}' is not a non-negative number of ns",
                v.trim()
            ))
        })
}

/// Parse `tlbi=NS,flush_tlb_mm=NS` (either key may be left out; unknown keys are errors).
pub fn parse_cost_model(s: &str) -> Result<CostModel, UsageError> {
    let mut m = CostModel::default();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--cost-model entry '{part}' is not KEY=NS")))?;
        let v = parse_ns(&format!("--cost-model {k}"), v)?;
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
    fn cost_models() {
        let m = parse_cost_model("tlbi=1500,flush_tlb_mm=2000.5").unwrap();
        assert_eq!((m.tlbi_ns, m.flush_tlb_mm_ns), (1500.0, 2000.5));
        let ops = forkmodel::Ops {
            tlbi: 32,
            tlb_flush_mm: 1,
            ..Default::default()
        };
        assert_eq!(added_ns(&m, &ops), 32.0 * 1500.0 + 2000.5);
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
    fn mem_must_hold_whole_folios() {
        let o9 = Order::new(9).unwrap();
        assert!(check_mem(2 << 20, o9).is_ok());
        assert!(
            check_mem(1 << 20, o9)
                .unwrap_err()
                .0
                .contains("not a multiple")
        );
        assert!(check_mem(0, o9).is_err());
        assert!(check_mem(128 << 30, Order::new(0).unwrap()).is_err());
    }
}
