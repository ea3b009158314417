//! Provenance of the fidelity inputs: the model measurements and the calibration profile they
//! embed must come from one host and kernel, and the embedded profile must be the committed
//! profile file it names. A report whose calibrated values price one machine's measurements with
//! another machine's costs would look valid and mean nothing, so `fidelity --check` refuses it.

use std::path::Path;

use serde_json::Value;

use super::inputs::Inputs;
use crate::profile::CostProfile;
use crate::{CalibrateError, Result};

/// Differences listed in full before the rest are only counted.
const DIFFS_SHOWN: usize = 3;
/// Longest value shown in an error line.
const VALUE_CHARS: usize = 60;

/// The machine facts a model measurement and a calibration must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineFacts<'a> {
    pub host: &'a str,
    pub kernel: &'a str,
    pub cpu_model: &'a str,
}

impl<'a> MachineFacts<'a> {
    /// The machine the inputs were measured on.
    pub fn of_inputs(i: &'a Inputs) -> Self {
        Self {
            host: &i.host,
            kernel: &i.kernel,
            cpu_model: &i.cpu_model,
        }
    }

    /// The machine the profile was fitted on.
    pub fn of_profile(p: &'a CostProfile) -> Self {
        Self {
            host: &p.host,
            kernel: &p.kernel,
            cpu_model: &p.cpu_model,
        }
    }
}

/// Every field where `measured` and `profile` differ, as `field `a` (measured) vs `b`
/// (profile)`; empty when they are one machine.
pub fn machine_mismatch(measured: MachineFacts, profile: MachineFacts) -> Vec<String> {
    [
        ("host", measured.host, profile.host),
        ("kernel", measured.kernel, profile.kernel),
        ("cpu_model", measured.cpu_model, profile.cpu_model),
    ]
    .into_iter()
    .filter(|(_, a, b)| a != b)
    .map(|(f, a, b)| format!("{f} `{a}` (measured) vs `{b}` (profile)"))
    .collect()
}

/// The hint every machine mismatch ends with.
pub const ONE_MACHINE_HINT: &str = "calibrate and measure on one host and kernel (`cargo xtask calibrate`, then `cargo xtask fidelity --measure`)";

/// Check that `inputs` (read from `inputs_path`) were measured on the host and kernel of the
/// profile they embed, and that the embedded profile equals its file under `calibration_dir`
/// when that file exists. Inputs without a profile cite nothing and pass.
pub fn check_provenance(inputs: &Inputs, inputs_path: &Path, calibration_dir: &Path) -> Result<()> {
    let Some(embedded) = &inputs.profile else {
        return Ok(());
    };
    let cited = inputs.profile_file.as_deref().unwrap_or("(unnamed)");
    let differs = machine_mismatch(
        MachineFacts::of_inputs(inputs),
        MachineFacts::of_profile(embedded),
    );
    if !differs.is_empty() {
        return Err(CalibrateError::Input(format!(
            "{}: the model was measured on another machine than its calibration profile {cited} was fitted on: {}; {ONE_MACHINE_HINT}",
            inputs_path.display(),
            differs.join(", ")
        )));
    }
    let Some(name) = &inputs.profile_file else {
        return Ok(());
    };
    if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
        return Err(CalibrateError::Input(format!(
            "{}: profile_file {name:?} is not a file name under {}",
            inputs_path.display(),
            calibration_dir.display()
        )));
    }
    let file = calibration_dir.join(name);
    if !file.exists() {
        return Ok(());
    }
    let committed = CostProfile::load(&file)?;
    let diffs = value_diffs(&to_value(embedded), &to_value(&committed));
    if diffs.is_empty() {
        return Ok(());
    }
    let mut shown: Vec<String> = diffs
        .iter()
        .take(DIFFS_SHOWN)
        .map(|(path, a, b)| format!("{path} {a} (embedded) vs {b} (file)"))
        .collect();
    if diffs.len() > DIFFS_SHOWN {
        shown.push(format!("and {} more", diffs.len() - DIFFS_SHOWN));
    }
    Err(CalibrateError::Input(format!(
        "{}: the embedded calibration profile differs from {}: {}",
        inputs_path.display(),
        file.display(),
        shown.join(", ")
    )))
}

fn to_value(p: &CostProfile) -> Value {
    serde_json::to_value(p).expect("a cost profile serialises")
}

/// Leaves where `a` and `b` differ, as `(path, a, b)` with the values as short JSON. Both sides
/// went through the same typed profile, so field order and absent defaults cannot differ.
fn value_diffs(a: &Value, b: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    diff_into(String::new(), a, b, &mut out);
    out
}

fn diff_into(path: String, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff_into(child(k), va, vb, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff_into(format!("{path}[{i}]"), va, vb, out);
            }
        }
        _ if a != b => out.push((path, short(a), short(b))),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::Array(a) => format!("[{} items]", a.len()),
        other => other.to_string(),
    };
    if s.chars().count() > VALUE_CHARS {
        format!("{}…", s.chars().take(VALUE_CHARS).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::test_inputs::synthetic;

    /// Synthetic inputs measured on the sample profile's machine, and a calibration directory
    /// holding that profile under the name the inputs cite.
    fn consistent() -> (Inputs, tempfile::TempDir) {
        let mut i = synthetic(true);
        let p = i.profile.clone().unwrap();
        i.host = p.host.clone();
        i.kernel = p.kernel.clone();
        i.cpu_model = p.cpu_model.clone();
        let dir = tempfile::tempdir().unwrap();
        let name = i.profile_file.clone().unwrap();
        std::fs::write(
            dir.path().join(name),
            serde_json::to_string_pretty(&p).unwrap(),
        )
        .unwrap();
        (i, dir)
    }

    fn err(i: &Inputs, dir: &Path) -> String {
        check_provenance(i, Path::new("in.json"), dir)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn committed_inputs_cite_their_own_machine_and_profile() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let path = root.join("results/fidelity-inputs.json");
        let i = Inputs::load(&path).unwrap();
        check_provenance(&i, &path, &root.join("results/calibration")).unwrap();
    }

    #[test]
    fn consistent_inputs_pass_and_inputs_without_profile_cite_nothing() {
        let (i, dir) = consistent();
        check_provenance(&i, Path::new("in.json"), dir.path()).unwrap();
        let mut none = synthetic(false);
        none.host = "elsewhere".into();
        check_provenance(&none, Path::new("in.json"), dir.path()).unwrap();
        // A cited file that is not there (e.g. a profile from another clone) is not compared.
        let empty = tempfile::tempdir().unwrap();
        check_provenance(&i, Path::new("in.json"), empty.path()).unwrap();
    }

    #[test]
    fn a_profile_from_another_host_fails_naming_host_with_both_values() {
        let (mut i, dir) = consistent();
        i.profile.as_mut().unwrap().host = "otherbox".into();
        let e = err(&i, dir.path());
        assert!(
            e.contains("host `box` (measured) vs `otherbox` (profile)"),
            "{e}"
        );
        assert!(
            !e.contains("kernel `"),
            "only the differing field is named: {e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn measurements_on_another_kernel_or_cpu_fail_naming_each_field() {
        let (mut i, dir) = consistent();
        i.kernel = "6.19.0".into();
        let e = err(&i, dir.path());
        assert!(
            e.contains("kernel `6.19.0` (measured) vs `6.18.0` (profile)"),
            "{e}"
        );
        assert!(!e.contains("host `"), "{e}");
        i.cpu_model = "Other CPU".into();
        let e = err(&i, dir.path());
        assert!(e.contains("kernel `6.19.0`"), "{e}");
        assert!(
            e.contains("cpu_model `Other CPU` (measured) vs `Test CPU` (profile)"),
            "{e}"
        );
    }

    #[test]
    fn an_embedded_profile_that_differs_from_its_file_fails() {
        // Doctored embedded copy: one cost changed.
        let (mut i, dir) = consistent();
        i.profile.as_mut().unwrap().costs[1].ns = 5.0;
        let e = err(&i, dir.path());
        assert!(
            e.contains("differs from") && e.contains("costs[1].ns 5.0 (embedded) vs 25.0 (file)"),
            "{e}"
        );
        // Doctored file: host and kernel changed in the file only (the inputs agree with their
        // embedded copy, so only the file comparison can catch it).
        let (i, dir) = consistent();
        let file = dir.path().join(i.profile_file.as_deref().unwrap());
        let mut p = i.profile.clone().unwrap();
        p.host = "otherbox".into();
        p.kernel = "6.1.0".into();
        std::fs::write(&file, serde_json::to_string(&p).unwrap()).unwrap();
        let e = err(&i, dir.path());
        assert!(
            e.contains(r#"host "box" (embedded) vs "otherbox" (file)"#)
                && e.contains(r#"kernel "6.18.0" (embedded) vs "6.1.0" (file)"#),
            "{e}"
        );
    }

    #[test]
    fn many_differences_are_counted_not_listed() {
        let (mut i, dir) = consistent();
        let p = i.profile.as_mut().unwrap();
        p.host = "a".into();
        p.kernel = "b".into();
        p.cpu_model = "c".into();
        p.arch = "d".into();
        p.created_utc = "e".into();
        i.host = "a".into();
        i.kernel = "b".into();
        i.cpu_model = "c".into();
        let e = err(&i, dir.path());
        assert!(e.contains("and 2 more"), "{e}");
    }

    #[test]
    fn profile_file_must_be_a_plain_name() {
        let (mut i, dir) = consistent();
        i.profile_file = Some("../elsewhere.json".into());
        let e = err(&i, dir.path());
        assert!(e.contains("is not a file name under"), "{e}");
    }
}
