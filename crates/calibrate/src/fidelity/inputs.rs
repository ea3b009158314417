//! The inputs file (`results/fidelity-inputs.json`) the report renders from: measurement
//! settings, the privileged-op cost assumptions per machine, the embedded calibration profile,
//! and one [`Measurement`] per model configuration.

use std::collections::BTreeMap;
use std::path::Path;

use contract::{Arch, Contpte, Mapcount, Mode, ModelOrder, Size, Strategy};
use serde::{Deserialize, Deserializer, Serialize};

use crate::profile::CostProfile;
use crate::runner::Ops;
use crate::tables::Config;
use crate::{CalibrateError, Result};

/// Version of the inputs file.
pub const INPUTS_SCHEMA: u32 = 1;

/// Privileged-operation costs assumed for a machine the model cannot run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCosts {
    /// One range TLBI for a 64 KiB block (contpte unfold/fold), ns.
    pub tlbi_ns: f64,
    /// One `flush_tlb_mm`, ns.
    pub flush_tlb_mm_ns: f64,
    /// Where the figure comes from.
    pub basis: String,
}

/// The documented assumptions for Ampere Altra and Apple M2. Not measured, not fitted.
pub fn default_machine_costs() -> BTreeMap<String, MachineCosts> {
    BTreeMap::from([
        (
            "Altra".to_string(),
            MachineCosts {
                tlbi_ns: 16_000.0,
                flush_tlb_mm_ns: 2_000.0,
                basis: "assumption: Neoverse N1 has no FEAT_TLBIRANGE, so a 64 KiB range is 16 broadcast TLBI VALE1IS + DSB ISH; ~1 µs per broadcast TLBI on an 80-core mesh (order of magnitude, not measured)".into(),
            },
        ),
        (
            "M2".to_string(),
            MachineCosts {
                tlbi_ns: 2_000.0,
                flush_tlb_mm_ns: 500.0,
                basis: "assumption: ~8x cheaper broadcast invalidation on a small SoC (FEAT_TLBIRANGE; guest TLBIs do not trap); order of magnitude, not measured".into(),
            },
        ),
    ])
}

/// Measurement settings recorded in the inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSettings {
    pub mem: Size,
    pub iters: u32,
    pub runs: u32,
    pub mode: Mode,
    pub mapcount: Mapcount,
    pub cpu: Option<usize>,
}

/// Inputs files written before the runner contract (among them the committed one) spell the
/// contpte modes `on` and `off`; they read as `ena` and `dis`, and are written back in the
/// contract's one spelling.
fn contpte_any_spelling<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Contpte>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match s.as_str() {
        "on" => Ok(Some(Contpte::Ena)),
        "off" => Ok(Some(Contpte::Dis)),
        other => other.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// One measured model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// [`Config::key`] when measured; the report shows it as stored.
    pub key: String,
    pub arch: Arch,
    #[serde(default, deserialize_with = "contpte_any_spelling")]
    pub contpte: Option<Contpte>,
    pub strategy: Strategy,
    pub order: ModelOrder,
    /// Mean of each run, ns (the thread's statistic; kept for reference).
    pub run_means_ns: Vec<f64>,
    /// Fastest fork of each run, ns: the model's work is deterministic, so disturbances from
    /// other load only add time; the report uses the median of these.
    #[serde(default)]
    pub run_mins_ns: Vec<f64>,
    /// Op counts of one fork.
    pub ops: Ops,
}

impl Measurement {
    /// Whether this measured `c`.
    pub fn is(&self, c: &Config) -> bool {
        (self.arch, self.contpte, self.strategy, self.order)
            == (c.arch, c.contpte, c.strategy, c.order)
    }
}

/// Everything the report is rendered from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub schema: u32,
    pub created_utc: String,
    pub host: String,
    pub kernel: String,
    pub cpu_model: String,
    pub tool_version: String,
    /// Git revision of the tool that measured (`-dirty` when its tree had changes); absent in
    /// inputs measured before it was recorded.
    #[serde(default)]
    pub tool_rev: Option<String>,
    pub settings: InputSettings,
    pub machine_costs: BTreeMap<String, MachineCosts>,
    pub profile_file: Option<String>,
    pub profile: Option<CostProfile>,
    pub measurements: Vec<Measurement>,
}

impl Inputs {
    /// Load an inputs file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = results::fsio::read(path)?;
        let v: Self = serde_json::from_str(&text).map_err(|source| CalibrateError::Json {
            path: path.to_owned(),
            source,
        })?;
        if v.schema != INPUTS_SCHEMA {
            return Err(CalibrateError::Input(format!(
                "{}: inputs schema {} (this build reads {INPUTS_SCHEMA})",
                path.display(),
                v.schema
            )));
        }
        Ok(v)
    }

    /// The measurement of `c`, if there is one.
    pub fn get(&self, c: &Config) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.is(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_inputs_load_with_the_old_contpte_spelling() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results/fidelity-inputs.json");
        let i = Inputs::load(&path).unwrap();
        let arm: Vec<&Measurement> = i
            .measurements
            .iter()
            .filter(|m| m.arch == Arch::Arm64)
            .collect();
        assert!(arm.iter().all(|m| m.contpte.is_some()));
        let on = arm
            .iter()
            .find(|m| m.contpte == Some(Contpte::Ena) && m.strategy == Strategy::Upstream)
            .expect("the committed inputs have contpte-ena upstream");
        // Written in the one spelling; that reads again, and so does the old `on`.
        let json = serde_json::to_string(on).unwrap();
        assert!(json.contains(r#""contpte":"ena""#), "{json}");
        assert_eq!(&serde_json::from_str::<Measurement>(&json).unwrap(), *on);
        let old = json.replace(r#""contpte":"ena""#, r#""contpte":"on""#);
        assert_eq!(
            serde_json::from_str::<Measurement>(&old).unwrap().contpte,
            Some(Contpte::Ena)
        );
        let bad = json.replace(r#""contpte":"ena""#, r#""contpte":"arm64-ena""#);
        assert!(serde_json::from_str::<Measurement>(&bad).is_err());
    }
}
