//! Selecting result files for `table`, `compare`, `publish` and `report`: arguments may be
//! files, directories (every `*.json` inside, recursively) or labels (the newest file with that
//! label under `results/`); then the selection is checked (no mixed machines or instruments
//! unless allowed) and turned into cases with each instrument's baseline.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use results::{Instrument, ResultFile};
use stats::Policy;

/// Is this the name `bench` gives result files: `<YYYYMMDDTHHMMSSZ>-<label>.json`? Other JSON
/// files (e.g. calibration data under `results/calibration/`) are not result files.
pub fn is_result_name(name: &str) -> bool {
    let b = name.as_bytes();
    name.ends_with(".json")
        && b.len() > 22
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
}

/// The machine directories under `results_dir` (`results/<machine>/`), sorted.
pub fn machine_dirs(results_dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results_dir)
        .with_context(|| format!("reading {}", results_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Every result file (see [`is_result_name`]) under `dir`, sorted by path.
pub fn json_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?;
        for e in rd {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .is_some_and(|n| is_result_name(&n.to_string_lossy()))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Load one file (errors are one line: path and reason).
pub fn load(p: &Path) -> anyhow::Result<ResultFile> {
    ResultFile::load(p).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Resolve arguments to loaded files. An argument that is not an existing path is a label:
/// the newest file under `results_dir` whose label matches.
pub fn resolve(args: &[String], results_dir: &Path) -> anyhow::Result<Vec<(PathBuf, ResultFile)>> {
    let mut out: Vec<(PathBuf, ResultFile)> = Vec::new();
    for a in args {
        let p = PathBuf::from(a);
        if p.is_dir() {
            let files = json_files(&p)?;
            if files.is_empty() {
                bail!(
                    "{}: no result files (*.json) in this directory",
                    p.display()
                );
            }
            for f in files {
                let r = load(&f)?;
                out.push((f, r));
            }
        } else if p.exists() || a.ends_with(".json") || a.contains('/') {
            let r = load(&p)?;
            out.push((p, r));
        } else {
            out.push(by_label(a, results_dir)?);
        }
    }
    if out.is_empty() {
        bail!("no result files selected");
    }
    Ok(out)
}

/// The newest file under `dir` labelled `label`.
pub fn by_label(label: &str, dir: &Path) -> anyhow::Result<(PathBuf, ResultFile)> {
    let files = if dir.is_dir() {
        json_files(dir)?
    } else {
        vec![]
    };
    let mut known = BTreeSet::new();
    let mut hit = None;
    for f in files {
        // Unreadable files do not stop a label search; they are reported when named directly.
        let Ok(r) = ResultFile::load(&f) else {
            continue;
        };
        if r.label == label {
            hit = Some((f, r));
        } else {
            known.insert(r.label);
        }
    }
    hit.ok_or_else(|| {
        anyhow::anyhow!(
            "unknown label '{label}': no result file with that label under {} (labels: {})",
            dir.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.into_iter().collect::<Vec<_>>().join(", ")
            }
        )
    })
}

/// The newest result file under `dir` (for commands run without arguments).
pub fn newest(dir: &Path) -> anyhow::Result<PathBuf> {
    let files = if dir.is_dir() {
        json_files(dir)?
    } else {
        vec![]
    };
    // Newest by the timestamp the file name starts with.
    files
        .into_iter()
        .max_by_key(|p| p.file_name().map(|n| n.to_os_string()))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no result files under {}; run `cargo xtask bench` first",
                dir.display()
            )
        })
}

fn instruments(f: &ResultFile) -> BTreeSet<Instrument> {
    f.runs.iter().map(|r| r.variant.instrument()).collect()
}

/// Refuse selections that mix machines, or files with different instruments, unless allowed.
pub fn check_mix(files: &[ResultFile], allow_mixed: bool) -> anyhow::Result<()> {
    if files.iter().all(|f| f.runs.is_empty()) {
        bail!("the selection holds no runs");
    }
    if allow_mixed || files.len() < 2 {
        return Ok(());
    }
    let machines: BTreeSet<&str> = files.iter().map(|f| f.machine.as_str()).collect();
    if machines.len() > 1 {
        bail!(
            "the selection mixes machines ({}); numbers from different machines do not compare — pass --allow-mixed to merge anyway",
            machines.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    let first = instruments(&files[0]);
    if let Some(f) = files.iter().find(|f| instruments(f) != first) {
        let names = |s: &BTreeSet<Instrument>| {
            s.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join("+")
        };
        bail!(
            "the selection mixes instruments ({} in '{}', {} in '{}'); pass --instrument sim|real or --allow-mixed",
            names(&first),
            files[0].label,
            names(&instruments(f)),
            f.label
        );
    }
    Ok(())
}

/// The LAVA devices of a selection in which every file is a lab job's result (`lava fetch`
/// writes `config.lab`) and more than one device appears: a table whose rows are devices (each
/// file's label names its device). `None` for anything else.
pub fn lab_devices(files: &[ResultFile]) -> Option<Vec<String>> {
    let mut devices: Vec<String> = Vec::new();
    for f in files {
        let d = f.config.get("lab")?.get("device")?.as_str()?;
        if !devices.iter().any(|x| x == d) {
            devices.push(d.to_string());
        }
    }
    (devices.len() > 1).then_some(devices)
}

/// Keep only runs of `inst` (all when None).
pub fn filter_instrument(files: Vec<ResultFile>, inst: Option<Instrument>) -> Vec<ResultFile> {
    match inst {
        None => files,
        Some(i) => files
            .into_iter()
            .map(|mut f| {
                f.runs.retain(|r| r.variant.instrument() == i);
                f
            })
            .collect(),
    }
}

fn config_baseline(f: &ResultFile, inst: Instrument) -> Option<String> {
    let key = match inst {
        Instrument::Sim => "model",
        Instrument::Real => "real",
    };
    f.config
        .get("profile")
        .and_then(|p| p.get(key))
        .and_then(|m| m.get("baseline"))
        .and_then(|b| b.as_str())
        .map(str::to_string)
}

/// Cases of a selection, one instrument at a time (real fork first: the tables about the
/// kernel lead), with `baseline` or each instrument's profile baseline (from the first file),
/// the report crate's defaults otherwise.
pub fn cases(
    files: &[ResultFile],
    baseline: Option<&str>,
    policy: &Policy,
) -> anyhow::Result<Vec<report::Case>> {
    let mut out = Vec::new();
    let labels: BTreeSet<&str> = files.iter().map(|f| f.label.as_str()).collect();
    for inst in [Instrument::Real, Instrument::Sim] {
        let part = filter_instrument(files.to_vec(), Some(inst));
        if part.iter().all(|f| f.runs.is_empty()) {
            continue;
        }
        let part: Vec<ResultFile> = part.into_iter().filter(|f| !f.runs.is_empty()).collect();
        // With several labels of real fork, rows are labels: the profile's layout baseline
        // does not name a row then.
        let default = if inst == Instrument::Real && labels.len() > 1 {
            None
        } else {
            config_baseline(&part[0], inst)
        };
        let b = baseline.map(str::to_string).or(default);
        out.extend(report::build_cases(&part, b.as_deref(), policy)?);
    }
    if out.is_empty() {
        bail!("the selection holds no runs");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_names() {
        assert!(is_result_name("20261125T201925Z-6.18.44-fc-v595.json"));
        assert!(is_result_name("20260101T000000Z-x.json"));
        assert!(!is_result_name("vm-20261125T203136Z.json"));
        assert!(!is_result_name("20261125T201925Z-.json"));
        assert!(!is_result_name(".20261125T201925Z-a.json.tmp-1"));
        assert!(!is_result_name("README.md"));
    }

    #[test]
    fn bad_files_are_one_line_errors() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.json");
        let e = resolve(&[missing.display().to_string()], d.path()).unwrap_err();
        assert!(format!("{e:#}").contains("nope.json"), "{e:#}");
        let corrupt = d.path().join("c.json");
        std::fs::write(&corrupt, "{not json").unwrap();
        let e = format!(
            "{:#}",
            resolve(&[corrupt.display().to_string()], d.path()).unwrap_err()
        );
        assert!(e.contains("not a forkbench result file"), "{e}");
        assert_eq!(e.lines().count(), 1);
        let old = d.path().join("old.json");
        std::fs::write(&old, "{\"schema\": 0, \"runs\": []}").unwrap();
        let e = format!(
            "{:#}",
            resolve(&[old.display().to_string()], d.path()).unwrap_err()
        );
        assert!(e.contains("schema version 0 is not supported"), "{e}");
        // Schema-1 files load (upgraded); the committed ones are checked in `results`.
        let e = format!("{:#}", resolve(&["v6.99".into()], d.path()).unwrap_err());
        assert!(e.starts_with("unknown label 'v6.99'"), "{e}");
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = format!(
            "{:#}",
            resolve(&[empty.display().to_string()], d.path()).unwrap_err()
        );
        assert!(e.contains("no result files"), "{e}");
    }

    fn file(machine: &str, label: &str, inst: Instrument, factor: f64) -> ResultFile {
        let runs = (0..4)
            .flat_map(|i| {
                [results::Strategy::MmUnstable, results::Strategy::Upstream]
                    .into_iter()
                    .map(move |s| {
                        let base = if s == results::Strategy::Upstream {
                            6e6
                        } else {
                            1e7
                        };
                        let variant = match inst {
                            Instrument::Sim => results::Variant::Sim(results::SimVariant {
                                arch: results::Arch::X86_64,
                                contpte: None,
                                strategy: s,
                                order: results::ModelOrder::new(9).unwrap(),
                                mem_bytes: 1 << 30,
                                mode: results::Mode::Fresh,
                                mapcount: Default::default(),
                                counting: false,
                            }),
                            Instrument::Real => results::Variant::Real(results::RealVariant {
                                arch: results::Arch::X86_64,
                                kernel: s.to_string(),
                                accel: Default::default(),
                                clock: contract::Clock::Wall,
                                layout: results::RealLayout::PteOrder9,
                                mem_bytes: 1 << 30,
                                mode: results::Mode::Fresh,
                                sched: results::Sched::Other,
                                unverified: false,
                            }),
                        };
                        results::RunRecord {
                            variant,
                            run_index: i,
                            warmup: 0,
                            samples_ns: vec![(base * factor * (1.0 + 0.001 * f64::from(i))) as u64],
                            cpu: None,
                            ops: Default::default(),
                            sim: None,
                            real: None,
                            host_load: None,
                        }
                    })
            })
            .collect();
        let mut f = ResultFile::new(machine, label, "x", Default::default());
        f.git_rev = "r".into();
        f.seed = 1;
        f.runs = runs;
        f
    }

    #[test]
    fn files_of_several_lab_devices_are_device_rows() {
        let lab = |machine: &str| {
            let mut f = file(machine, &format!("{machine}-6.12"), Instrument::Real, 1.0);
            f.config = serde_json::json!({"lab": {"device": machine, "device_type": "qemu"}});
            f
        };
        let (a, b) = (lab("altra-01"), lab("m2-01"));
        assert_eq!(
            lab_devices(&[a.clone(), b.clone()]),
            Some(vec!["altra-01".to_string(), "m2-01".to_string()])
        );
        // One device, or a file not from a lab: not a device table.
        assert_eq!(lab_devices(&[a.clone(), a.clone()]), None);
        let host = file("m3", "C", Instrument::Real, 1.0);
        assert_eq!(lab_devices(&[a, b, host]), None);
    }

    #[test]
    fn mixing_needs_allow_mixed() {
        let a = file("m1", "A", Instrument::Sim, 1.0);
        let b = file("m2", "B", Instrument::Sim, 1.0);
        let e = check_mix(&[a.clone(), b.clone()], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mixes machines (m1, m2)"), "{e}");
        assert!(check_mix(&[a.clone(), b], true).is_ok());
        let r = file("m1", "R", Instrument::Real, 1.0);
        let e = check_mix(&[a.clone(), r], false).unwrap_err().to_string();
        assert!(
            e.contains("mixes instruments (sim in 'A', real in 'R')"),
            "{e}"
        );
        let empty = ResultFile { runs: vec![], ..a };
        assert!(check_mix(&[empty], false).is_err());
    }

    #[test]
    fn two_labelled_runs_make_one_thread_table() {
        let a = file("m", "v6.8", Instrument::Sim, 1.0);
        let b = file("m", "v6.9", Instrument::Sim, 0.9);
        check_mix(&[a.clone(), b.clone()], false).unwrap();
        let cs = cases(&[a.clone(), b.clone()], None, &Policy::default()).unwrap();
        let t = report::thread_tables(&cs);
        assert!(t.contains("baseline v6.8 mm-unstable"), "{t}");
        assert!(t.contains("| v6.8 mm-unstable |       0.0% |"), "{t}");
        assert!(t.contains("| v6.9 mm-unstable |     -10.0% |"), "{t}");
        assert!(t.contains("| v6.9 upstream    |     -46.0% |"), "{t}");
        // An explicit baseline label; an unknown one is an error naming it.
        let cases2 = cases(&[a.clone(), b.clone()], Some("v6.9"), &Policy::default()).unwrap();
        assert_eq!(cases2[0].baseline, "v6.9 mm-unstable");
        let e = cases(&[a, b], Some("v7.0"), &Policy::default()).unwrap_err();
        assert!(
            e.to_string().contains("baseline 'v7.0' matches no row"),
            "{e}"
        );
    }
}
