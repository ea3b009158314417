//! Machine profiles (`bench-configs/*.toml`): what to run on which machine. `local.toml` is
//! embedded in the binary and used when no `--config` is given. Unknown keys and bad values
//! are rejected with `file:line: key 'table.key': message`. The format is documented in
//! `bench-configs/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use contract::{Arch, Contpte, Mode, ModelOrder, RealLayout, Sched, Size, Strategy};
use hostenv::cpuid::CpuIdentity;
use serde::{Deserialize, Serialize};

/// Upper bounds of the counts in a profile: far beyond any useful run, low enough that no
/// product of them overflows.
pub const MAX_ITERS: u32 = 1_000_000;
pub const MAX_RUNS: u32 = 10_000;
pub const MAX_WARMUP: u32 = 10_000;

/// The embedded default profile.
pub const LOCAL_TOML: &str = include_str!("../../bench-configs/local.toml");

/// A profile error: one line, with file, line and key when known.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {}{msg}", line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!("key '{k}': ")).unwrap_or_default())]
pub struct ProfileError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub msg: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Directory under `results/`; `auto` = the host name.
    pub name: String,
    /// Expected host arch: `x86_64`, `aarch64` or `auto` (this host).
    pub arch: String,
    /// Substring expected in the host's CPU model name (`a|b` = any of them); empty = any. On
    /// arm64 the model name is the core decoded from the MIDR (e.g. `Neoverse-N1`). The second
    /// source: used when `midr` is empty or the host's MIDR is unreadable.
    #[serde(default)]
    pub cpu_model: String,
    /// arm64: accepted MIDR implementer:part pairs (`0x41:0xd0c`, or `0x61` for any part of an
    /// implementer); any CPU of the host matching one is enough. Empty = not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub midr: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunCfg {
    /// CPU to pin to: an id or `"last"`.
    pub cpu: toml::Value,
    /// Scheduling of real-fork runs (SCHED_FIFO needs privilege; the runner falls back).
    pub sched: Sched,
    pub mem: Size,
    pub iters: u32,
    pub runs: u32,
    pub warmup: u32,
    /// Model repeat mode.
    pub mode: Mode,
    /// Niceness of the runner (`nice -n`), -20..=19; negative values need root (without it
    /// `nice` warns and the runner keeps the default priority). 0 = not wrapped.
    #[serde(default)]
    pub nice: i32,
    /// Which instruments `bench` runs: `real`, `sim` or `all` (the default); `--instrument`
    /// wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<crate::plan::Instruments>,
}

/// Overrides applied by `--quick`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub mem: Option<Size>,
    pub iters: Option<u32>,
    pub runs: Option<u32>,
    pub warmup: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelCfg {
    pub arches: Vec<Arch>,
    pub strategies: Vec<Strategy>,
    pub orders: Vec<ModelOrder>,
    /// arm64 only: contpte variants; the first is the arm64 baseline's.
    #[serde(default)]
    pub contpte: Vec<Contpte>,
    pub baseline: Strategy,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RealCfg {
    pub layouts: Vec<RealLayout>,
    pub baseline: RealLayout,
    /// Overrides of `[run]` for the real benchmark.
    pub iters: Option<u32>,
    pub runs: Option<u32>,
    pub mem: Option<Size>,
    pub warmup: Option<u32>,
    /// `steady` (fork the same parent again; the runner's default) or `fresh` (re-dirty every
    /// page before each fork, outside the timed section: one fault per PTE per fork).
    pub mode: Option<Mode>,
    /// `"offered"`: add an `mthp-<size>` layout for every mTHP size the host's kernel offers
    /// for anonymous memory (16 KiB to 1 MiB), after `order0` ([`expand_offered_mthp`]).
    #[serde(default)]
    pub mthp_sizes: Option<String>,
}

/// Anonymous mTHP sizes a sweep takes (KiB): order 2 (16 KiB) to order 8 (1 MiB). Order 1 is
/// not offered for anonymous memory; 2 MiB is the PMD size (`pte-order9`, `pmd-order9`).
pub const SWEEP_MTHP_KB: std::ops::RangeInclusive<u64> = 16..=1024;

/// Resolve `[real] mthp_sizes = "offered"`: insert `mthp-<kb>` for every size in `offered`
/// (KiB, from /sys/kernel/mm/transparent_hugepage/hugepages-*kB) within [`SWEEP_MTHP_KB`] that
/// the list lacks, in ascending size, after the last layout smaller than it (so `order0`,
/// then the mTHP sizes, then the order-9 layouts). Returns the sizes added.
pub fn expand_offered_mthp(p: &mut Profile, offered: &[u64]) -> Vec<u64> {
    let Some(r) = p.real.as_mut() else {
        return vec![];
    };
    if r.mthp_sizes.as_deref() != Some("offered") {
        return vec![];
    }
    let mut added = Vec::new();
    let mut sizes: Vec<u64> = offered
        .iter()
        .copied()
        .filter(|kb| SWEEP_MTHP_KB.contains(kb) && kb.is_power_of_two())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for kb in sizes {
        let l = RealLayout::Mthp { kb };
        if r.layouts.contains(&l) {
            continue;
        }
        let order = l.folio_order();
        let at = r
            .layouts
            .iter()
            // Only uniform layouts have an order to sort by (untouched and the mixes none).
            .rposition(|x| x.folio_order().is_some() && x.folio_order() < order)
            .map_or(0, |i| i + 1);
        r.layouts.insert(at, l);
        added.push(kb);
    }
    added
}

/// The raw file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub machine: Machine,
    pub run: RunCfg,
    #[serde(default)]
    pub quick: Overrides,
    pub model: Option<ModelCfg>,
    pub real: Option<RealCfg>,
    /// Privileged-op cost model (ns per op) for the arm64 engine; see bench-configs/README.md.
    #[serde(default)]
    pub cost_model: BTreeMap<String, toml::Value>,
    /// Set after loading: where it came from and its short name.
    #[serde(skip_deserializing)]
    pub source: String,
    #[serde(skip_deserializing)]
    pub profile: String,
}

/// Which CPU to pin to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuSel {
    Id(usize),
    Last,
}

impl Profile {
    pub fn cpu(&self) -> CpuSel {
        match &self.run.cpu {
            toml::Value::Integer(i) => CpuSel::Id(*i as usize),
            _ => CpuSel::Last,
        }
    }
}

/// Line (1-based) of `key = ...` inside `[table]` (or of the header when `key` is None).
fn locate(src: &str, table: &str, key: Option<&str>) -> Option<usize> {
    let mut cur = String::new();
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|t| t.split(']').next()) {
            cur = h.trim().to_string();
            if key.is_none() && cur == table {
                return Some(i + 1);
            }
            continue;
        }
        if let Some(k) = key
            && cur == table
            && let Some((lhs, _)) = t.split_once('=')
            && lhs.trim() == k
        {
            return Some(i + 1);
        }
    }
    None
}

/// Table and key at a byte offset of `src`.
fn key_at(src: &str, offset: usize) -> (usize, Option<String>) {
    let before = &src[..offset.min(src.len())];
    let line_no = before.matches('\n').count() + 1;
    let mut table = String::new();
    let mut key = None;
    for (i, line) in src.lines().enumerate() {
        if i + 1 > line_no {
            break;
        }
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|t| t.split(']').next()) {
            table = h.trim().to_string();
            key = None;
        } else if i + 1 == line_no
            && let Some((lhs, _)) = t.split_once('=')
        {
            key = Some(lhs.trim().to_string());
        }
    }
    let full = match key {
        Some(k) if table.is_empty() => Some(k),
        Some(k) => Some(format!("{table}.{k}")),
        None if table.is_empty() => None,
        None => Some(table),
    };
    (line_no, full)
}

/// Parse and validate a profile. `file` names it in errors; `name` is its short name.
pub fn parse(src: &str, file: &str, name: &str) -> Result<Profile, ProfileError> {
    let mut p: Profile = toml::from_str(src).map_err(|e| {
        let (line, mut key) = match e.span() {
            Some(s) => {
                let (l, k) = key_at(src, s.start);
                (Some(l), k)
            }
            None => (None, None),
        };
        let msg = e.message().trim().to_string();
        // "unknown field `x`" / "missing field `x`": name the field itself.
        if let Some(f) = msg.split('`').nth(1)
            && (msg.starts_with("unknown field") || msg.starts_with("missing field"))
        {
            let table = key.as_deref().map(|k| {
                k.rsplit_once('.')
                    .map(|(t, last)| if last == f { t } else { k })
                    .unwrap_or(if k == f { "" } else { k })
                    .to_string()
            });
            key = Some(match table {
                Some(t) if !t.is_empty() => format!("{t}.{f}"),
                _ => f.to_string(),
            });
        }
        ProfileError {
            file: file.into(),
            line,
            key,
            msg,
        }
    })?;
    p.source = file.into();
    p.profile = name.into();
    validate(&p, src)?;
    Ok(p)
}

fn validate(p: &Profile, src: &str) -> Result<(), ProfileError> {
    let err = |table: &str, key: &str, msg: String| ProfileError {
        file: p.source.clone(),
        line: locate(src, table, Some(key)),
        key: Some(format!("{table}.{key}")),
        msg,
    };
    let one_of = |table: &str, key: &str, v: &str, allowed: &[&str]| {
        if allowed.contains(&v) {
            Ok(())
        } else {
            Err(err(
                table,
                key,
                format!("'{v}' is not one of {}", allowed.join(", ")),
            ))
        }
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !name_ok(&p.machine.name) {
        return Err(err(
            "machine",
            "name",
            "must be 1-64 characters of [A-Za-z0-9._-]".into(),
        ));
    }
    one_of(
        "machine",
        "arch",
        &p.machine.arch,
        &["auto", "x86_64", "aarch64"],
    )?;
    for m in &p.machine.midr {
        hostenv::cpuid::parse_midr_pattern(m).map_err(|e| err("machine", "midr", e))?;
    }
    match &p.run.cpu {
        toml::Value::Integer(i) if *i >= 0 && *i < 1024 => {}
        toml::Value::String(s) if s == "last" => {}
        v => {
            return Err(err(
                "run",
                "cpu",
                format!("{v} is not a CPU id (0-1023) or \"last\""),
            ));
        }
    }
    if !(-20..=19).contains(&p.run.nice) {
        return Err(err(
            "run",
            "nice",
            format!("{} is outside -20..=19", p.run.nice),
        ));
    }
    if let Some(i) = p.run.instrument {
        let missing = match i {
            crate::plan::Instruments::Real if p.real.is_none() => Some("[real]"),
            crate::plan::Instruments::Sim if p.model.is_none() => Some("[model]"),
            _ => None,
        };
        if let Some(table) = missing {
            return Err(err(
                "run",
                "instrument",
                format!("'{i}' needs a {table} table, and the profile has none"),
            ));
        }
    }
    let mem_ok = |table: &str, v: Size| {
        if v.0 >= 2 << 20 && v.0.is_multiple_of(2 << 20) {
            Ok(())
        } else {
            Err(err(
                table,
                "mem",
                format!("'{v}' is not a positive multiple of 2M (e.g. 1G, 64M)"),
            ))
        }
    };
    mem_ok("run", p.run.mem)?;
    let counts = |table: &str, iters: Option<u32>, runs: Option<u32>, warmup: Option<u32>| {
        if iters == Some(0) {
            return Err(err(table, "iters", "must be at least 1".into()));
        }
        for (key, v, max) in [
            ("iters", iters, MAX_ITERS),
            ("runs", runs, MAX_RUNS),
            ("warmup", warmup, MAX_WARMUP),
        ] {
            if let Some(v) = v
                && v > max
            {
                return Err(err(
                    table,
                    key,
                    format!("{v} is more than the limit of {max}"),
                ));
            }
        }
        if let Some(r) = runs
            && r < 2
        {
            return Err(err(
                table,
                "runs",
                "must be at least 2 (a standard deviation needs two runs)".into(),
            ));
        }
        Ok(())
    };
    counts(
        "run",
        Some(p.run.iters),
        Some(p.run.runs),
        Some(p.run.warmup),
    )?;
    if let Some(m) = p.quick.mem {
        mem_ok("quick", m)?;
    }
    counts("quick", p.quick.iters, p.quick.runs, p.quick.warmup)?;
    if p.model.is_none() && p.real.is_none() {
        return Err(ProfileError {
            file: p.source.clone(),
            line: None,
            key: None,
            msg: "a profile needs a [model] or a [real] table (or both)".into(),
        });
    }
    if let Some(m) = &p.model {
        let nonempty = |key: &str, n: usize| {
            if n == 0 {
                Err(err("model", key, "must not be empty".into()))
            } else {
                Ok(())
            }
        };
        nonempty("arches", m.arches.len())?;
        nonempty("strategies", m.strategies.len())?;
        nonempty("orders", m.orders.len())?;
        if !m.strategies.contains(&m.baseline) {
            return Err(err(
                "model",
                "baseline",
                format!("'{}' is not one of model.strategies", m.baseline),
            ));
        }
    }
    if let Some(r) = &p.real {
        if r.layouts.is_empty() {
            return Err(err("real", "layouts", "must not be empty".into()));
        }
        if !r.layouts.contains(&r.baseline) {
            return Err(err(
                "real",
                "baseline",
                format!("'{}' is not one of real.layouts", r.baseline),
            ));
        }
        if let Some(m) = r.mem {
            mem_ok("real", m)?;
        }
        if let Some(v) = &r.mthp_sizes
            && v != "offered"
        {
            return Err(err(
                "real",
                "mthp_sizes",
                format!("'{v}' is not \"offered\" (the only value)"),
            ));
        }
        counts("real", r.iters, r.runs, r.warmup)?;
    }
    for (k, v) in &p.cost_model {
        match (k.as_str(), v) {
            ("source" | "note", toml::Value::String(_)) => {}
            (k, toml::Value::Float(_) | toml::Value::Integer(_)) if k.ends_with("_ns") => {
                let x = v.as_float().or(v.as_integer().map(|i| i as f64));
                if !x.is_some_and(|x| x.is_finite() && x >= 0.0) {
                    return Err(err(
                        "cost_model",
                        k,
                        "must be a finite, non-negative number".into(),
                    ));
                }
            }
            (k, _) => {
                return Err(err(
                    "cost_model",
                    k,
                    "cost keys end in _ns and hold a number of nanoseconds per op; \
                     'source' and 'note' hold text"
                        .into(),
                ));
            }
        }
    }
    Ok(())
}

/// Resolve `--config NAME|PATH` (None = the embedded `local.toml`) and load it.
pub fn load(config: Option<&str>, root: &Path) -> Result<Profile, ProfileError> {
    let Some(c) = config else {
        return parse(LOCAL_TOML, "bench-configs/local.toml (embedded)", "local");
    };
    let as_path = PathBuf::from(c);
    let path = if c.contains('/') || c.ends_with(".toml") {
        as_path
    } else {
        root.join("bench-configs").join(format!("{c}.toml"))
    };
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| c.to_string());
    let src = results::fsio::read(&path).map_err(|e| ProfileError {
        file: path.display().to_string(),
        line: None,
        key: None,
        msg: format!("cannot read profile: {e}"),
    })?;
    parse(&src, &path.display().to_string(), &name)
}

/// The host's arch as profiles spell it.
pub fn host_arch() -> &'static str {
    std::env::consts::ARCH
}

/// Check the profile against this host, knowing only its CPU model name (on arm64 the core
/// decoded from the MIDR, as `hostenv::host::cpu_model` gives it). Err(message) when it is for
/// another machine. [`check_host_cpu`] also uses the MIDR itself.
#[cfg(test)]
pub fn check_host(p: &Profile, arch: &str, cpu_model: Option<&str>) -> Result<(), String> {
    let cpu = CpuIdentity {
        model_name: cpu_model.map(str::to_string),
        ..Default::default()
    };
    check_host_cpu(p, arch, &cpu)
}

/// Check the profile against this host: its arch, then its CPU, decided by the MIDR
/// (implementer:part, `machine.midr`) when the profile names one and the host's is readable,
/// else by the model name (`machine.cpu_model`). Err(message) when it is for another machine.
pub fn check_host_cpu(p: &Profile, arch: &str, cpu: &CpuIdentity) -> Result<(), String> {
    if p.machine.arch != "auto" && p.machine.arch != arch {
        return Err(format!(
            "profile '{}' is for {} but this host is {arch}; pass --force to run it anyway",
            p.profile, p.machine.arch
        ));
    }
    let host = cpu.cpu_model().unwrap_or_else(|| "unknown".into());
    if !p.machine.midr.is_empty() && !cpu.midrs.is_empty() {
        // Validated when the profile was parsed; a bad pattern matches nothing.
        if p.machine
            .midr
            .iter()
            .any(|m| cpu.matches_midr(m).unwrap_or(false))
        {
            return Ok(());
        }
        let have: Vec<String> = cpu
            .midrs
            .iter()
            .map(|m| format!("{} ({})", m.midr.key(), m.midr.describe()))
            .collect();
        return Err(format!(
            "profile '{}' expects a CPU with MIDR {} but this host has {}; pass --force to run it anyway",
            p.profile,
            p.machine.midr.join(" or "),
            have.join(", ")
        ));
    }
    if p.machine.cpu_model.is_empty() {
        if !p.machine.midr.is_empty() {
            return Err(format!(
                "profile '{}' identifies its machine by MIDR ({}) but this host's MIDR is not readable \
                 (CPU '{host}'); pass --force to run it anyway",
                p.profile,
                p.machine.midr.join(" or ")
            ));
        }
        return Ok(());
    }
    let lower = host.to_lowercase();
    // `a|b`: any of the alternatives.
    if !p
        .machine
        .cpu_model
        .split('|')
        .any(|alt| lower.contains(&alt.trim().to_lowercase()))
    {
        return Err(format!(
            "profile '{}' expects CPU '{}' but this host has '{host}'; pass --force to run it anyway",
            p.profile, p.machine.cpu_model
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_mthp_sizes_are_inserted_in_size_order() {
        let src = r#"
[machine]
name = "s"
arch = "auto"
[run]
cpu = "last"
sched = "fifo"
mem = "1G"
iters = 10
runs = 2
warmup = 1
mode = "steady"
[real]
layouts = ["order0", "pte-order9", "pmd-order9", "untouched"]
baseline = "order0"
mthp_sizes = "offered"
"#;
        let mut p = parse(src, "s.toml", "s").unwrap();
        let added = expand_offered_mthp(&mut p, &[8, 2048, 64, 16, 1024, 32]);
        assert_eq!(added, vec![16, 32, 64, 1024]);
        let names: Vec<String> = p
            .real
            .as_ref()
            .unwrap()
            .layouts
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "order0",
                "mthp-16k",
                "mthp-32k",
                "mthp-64k",
                "mthp-1024k",
                "pte-order9",
                "pmd-order9",
                "untouched"
            ]
        );
        // Idempotent, and a profile without the key is left alone.
        assert!(expand_offered_mthp(&mut p, &[16, 64]).is_empty());
        // The mixed layouts have no order to sort by: the sizes still go after order0.
        let mut m = parse(
            &src.replace("\"untouched\"]", "\"untouched\", \"mix-64k\", \"mix-pmd\"]"),
            "s.toml",
            "s",
        )
        .unwrap();
        assert_eq!(expand_offered_mthp(&mut m, &[16]), vec![16]);
        let layouts = &m.real.as_ref().unwrap().layouts;
        assert_eq!(layouts[1].to_string(), "mthp-16k", "{layouts:?}");
        assert_eq!(layouts.last().unwrap().to_string(), "mix-pmd");
        let mut q = parse(
            &src.replace("mthp_sizes = \"offered\"\n", ""),
            "s.toml",
            "s",
        )
        .unwrap();
        assert!(expand_offered_mthp(&mut q, &[16]).is_empty());
        let e = parse(&src.replace("\"offered\"", "\"all\""), "s.toml", "s").unwrap_err();
        assert!(e.to_string().contains("mthp_sizes"), "{e}");
    }

    fn root() -> PathBuf {
        crate::util::project_root()
    }

    #[test]
    fn shipped_profiles_parse() {
        for name in ["local", "ci", "aa", "altra", "m2", "xeon"] {
            let p = load(Some(name), &root()).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(p.profile, name);
        }
        let p = load(None, &root()).unwrap();
        assert_eq!(p.machine.arch, "auto");
        assert_eq!(p.run.iters, 100);
        assert_eq!(p.run.runs, 8);
        assert_eq!(p.run.mem, Size(1 << 30));
        // The embedded copy is the file on disk.
        let disk = std::fs::read_to_string(root().join("bench-configs/local.toml")).unwrap();
        assert_eq!(disk, LOCAL_TOML);
    }

    fn with(edit: &str, new: &str) -> String {
        assert!(LOCAL_TOML.contains(edit), "{edit}");
        LOCAL_TOML.replacen(edit, new, 1)
    }

    fn err_of(src: &str) -> String {
        parse(src, "t.toml", "t").unwrap_err().to_string()
    }

    fn line_of(src: &str, needle: &str) -> usize {
        src.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    #[test]
    fn stand_in_strategies_are_profile_words() {
        use contract::Strategy::*;
        let src = with(
            r#"strategies = ["mm-unstable", "hugetlb-rmap-cleanups", "ryan-v4", "fork-batching", "upstream"]"#,
            r#"strategies = ["v6.1", "mm-unstable", "v6.12", "current"]"#,
        )
        .replacen(r#"baseline = "mm-unstable""#, r#"baseline = "v6.1""#, 1);
        let m = parse(&src, "t.toml", "t").unwrap().model.unwrap();
        assert_eq!(m.strategies, [V6_1, MmUnstable, V6_12, Current]);
        assert_eq!(m.baseline, V6_1);
        let e = err_of(&src.replacen(r#""v6.12""#, r#""v6.13""#, 1));
        assert!(
            e.contains("key 'model.strategies': unknown strategy 'v6.13'")
                && e.contains("v6.1, v6.12"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_key() {
        let src = with("iters = 100", "iters = 100\nitres = 5");
        let e = err_of(&src);
        let l = line_of(&src, "itres");
        assert!(
            e.starts_with(&format!("t.toml:{l}: key 'run.itres': unknown field")),
            "{e}"
        );

        let src = with("iters = 100", "iters = \"many\"");
        let e = err_of(&src);
        let l = line_of(&src, "\"many\"");
        assert!(
            e.starts_with(&format!("t.toml:{l}: key 'run.iters': invalid type")),
            "{e}"
        );

        let src = with("orders = [0, 9]", "orders = [0, 12]");
        let e = err_of(&src);
        let l = line_of(&src, "orders = [0, 12]");
        assert!(
            e.starts_with(&format!(
                "t.toml:{l}: key 'model.orders': unknown folio order '12'"
            )),
            "{e}"
        );

        let src = with("mem = \"1G\"", "mem = \"1.5G\"");
        assert!(
            err_of(&src).contains("key 'run.mem': invalid size '1.5G'"),
            "{}",
            err_of(&src)
        );
        // Sizes are the contract's: `1GiB` is accepted like on the runner's command line;
        // a size that is not a multiple of 2M is refused.
        // One syntax everywhere (contract::size::parse_size): 1G, 1GiB and 1024M are one size.
        for spelling in ["1G", "1GiB", "1024M", "1024MiB", "1073741824"] {
            let src = with("mem = \"1G\"", &format!("mem = \"{spelling}\""));
            let p = parse(&src, "t.toml", "t").unwrap();
            assert_eq!(p.run.mem, Size(1 << 30), "{spelling}");
            assert_eq!(p.run.mem, spelling.parse::<Size>().unwrap(), "{spelling}");
        }
        let src = with("mem = \"1G\"", "mem = \"3M\"");
        assert!(
            err_of(&src).contains("key 'run.mem': '3M' is not a positive multiple of 2M"),
            "{}",
            err_of(&src)
        );
        let src = with("cpu = \"last\"", "cpu = \"first\"");
        assert!(err_of(&src).contains("key 'run.cpu'"), "{}", err_of(&src));
        let src = with("nice = -20", "nice = -21");
        assert!(err_of(&src).contains("key 'run.nice': -21 is outside -20..=19"));
        let src = with("runs = 8", "runs = 1");
        assert!(err_of(&src).contains("key 'run.runs': must be at least 2"));
        let src = with("\"upstream\"]", "\"downstream\"]");
        assert!(
            err_of(&src).contains("key 'model.strategies': unknown strategy 'downstream'"),
            "{}",
            err_of(&src)
        );
        let src = with("contpte = [", "contpte = [\"on\", ");
        assert!(
            err_of(&src).contains("key 'model.contpte': unknown contpte mode 'on'"),
            "{}",
            err_of(&src)
        );
        let src = with("\"untouched\"]", "\"untouched\", \"order3\"]");
        assert!(
            err_of(&src).contains("key 'real.layouts'"),
            "{}",
            err_of(&src)
        );
        let src = with("[cost_model]", "[cost_model]\ntlbi = 3");
        assert!(
            err_of(&src).contains("key 'cost_model.tlbi'"),
            "{}",
            err_of(&src)
        );
        let src = with("[machine]", "[machien]\n[machine]");
        assert!(
            err_of(&src).contains("key 'machien': unknown field"),
            "{}",
            err_of(&src)
        );
        let src: String = LOCAL_TOML
            .lines()
            .filter(|l| !l.starts_with("mode ="))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = err_of(&src);
        assert!(e.contains("key 'run.mode': missing field"), "{e}");
    }

    #[test]
    fn counts_are_bounded_and_costs_finite() {
        for (edit, new, key) in [
            ("warmup = 2", "warmup = 4294967295", "run.warmup"),
            ("iters = 100", "iters = 4000000000", "run.iters"),
            ("runs = 8", "runs = 100000", "run.runs"),
        ] {
            let e = err_of(&with(edit, new));
            assert!(e.contains(&format!("key '{key}'")), "{e}");
            assert!(e.contains("is more than the limit"), "{e}");
        }
        for bad in ["inf", "nan", "-1.0"] {
            let e = err_of(&with(
                "[cost_model]",
                &format!("[cost_model]\ntlbi_page_ns = {bad}"),
            ));
            assert!(
                e.contains("key 'cost_model.tlbi_page_ns': must be a finite, non-negative number"),
                "{e}"
            );
        }
        // The largest counts a profile allows plan without overflow.
        let src = with("warmup = 2", &format!("warmup = {MAX_WARMUP}")).replacen(
            "iters = 100",
            &format!("iters = {MAX_ITERS}"),
            1,
        );
        let p = parse(&src, "t.toml", "t").unwrap();
        let plan = crate::plan::plan(&p, false, 1);
        assert!(
            plan.groups
                .iter()
                .all(|g| g.forks() >= u64::from(MAX_ITERS))
        );
        let huge = crate::plan::Call::Real {
            layout: RealLayout::Order0,
            mem: Size(2 << 20),
            iters: u32::MAX,
            warmup: u32::MAX,
            sched: Sched::Other,
            mode: Mode::Steady,
            kernel: None,
        };
        assert_eq!(huge.forks(), 2 * u64::from(u32::MAX));
    }

    /// `--config /dev/zero` must not read until memory runs out.
    #[test]
    fn device_profiles_are_refused_in_one_line() {
        let e = load(Some("/dev/zero"), &root()).unwrap_err().to_string();
        assert!(e.contains("/dev/zero: cannot read profile"), "{e}");
        assert!(e.contains("not a regular file"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn missing_profile_is_one_line() {
        let e = load(Some("nosuch"), &root()).unwrap_err().to_string();
        assert!(e.contains("nosuch.toml: cannot read profile"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }

    /// An arm64 host as `CpuIdentity::read` sees it from `/proc/cpuinfo` (no model name).
    fn arm64(blocks: &[(&str, &str)]) -> CpuIdentity {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("proc")).unwrap();
        let info: String = blocks
            .iter()
            .enumerate()
            .map(|(n, (imp, part))| {
                format!(
                    "processor\t: {n}\nCPU implementer\t: {imp}\nCPU architecture: 8\n\
                     CPU variant\t: 0x3\nCPU part\t: {part}\nCPU revision\t: 1\n\n"
                )
            })
            .collect();
        std::fs::write(d.path().join("proc/cpuinfo"), info).unwrap();
        CpuIdentity::read(d.path())
    }

    #[test]
    fn wrong_machine_needs_force() {
        let altra = load(Some("altra"), &root()).unwrap();
        let e = check_host(&altra, "x86_64", Some("AMD EPYC 7B13")).unwrap_err();
        assert!(e.contains("is for aarch64 but this host is x86_64"), "{e}");
        let e = check_host(&altra, "aarch64", Some("Apple M2 Avalanche")).unwrap_err();
        assert!(e.contains("expects CPU"), "{e}");
        // What hostenv now names an Altra's cores (arm64 cpuinfo has no model name).
        assert!(check_host(&altra, "aarch64", Some("Neoverse-N1")).is_ok());
        let local = load(None, &root()).unwrap();
        assert!(check_host(&local, "riscv64", None).is_ok());
    }

    #[test]
    fn arm64_machines_are_decided_by_midr() {
        let altra = load(Some("altra"), &root()).unwrap();
        let m2 = load(Some("m2"), &root()).unwrap();
        let altra_cpu = arm64(&[("0x41", "0xd0c"); 4]);
        let m2_cpu = arm64(&[
            ("0x61", "0x032"),
            ("0x61", "0x032"),
            ("0x61", "0x033"),
            ("0x61", "0x033"),
        ]);
        let qemu_max = arm64(&[("0x00", "0x051"); 2]);
        // An Altra without lscpu: accepted from the MIDR alone.
        assert_eq!(altra_cpu.model_name, None);
        assert_eq!(check_host_cpu(&altra, "aarch64", &altra_cpu), Ok(()));
        assert_eq!(check_host_cpu(&m2, "aarch64", &m2_cpu), Ok(()));
        // Not any aarch64 host.
        for (p, cpu) in [
            (&m2, &altra_cpu),
            (&m2, &qemu_max),
            (&altra, &m2_cpu),
            (&altra, &qemu_max),
        ] {
            let e = check_host_cpu(p, "aarch64", cpu).unwrap_err();
            assert!(e.contains("expects a CPU with MIDR"), "{e}");
            assert!(e.ends_with("pass --force to run it anyway"), "{e}");
        }
        let e = check_host_cpu(&m2, "aarch64", &altra_cpu).unwrap_err();
        assert!(e.contains("this host has 0x41:0xd0c (Neoverse-N1)"), "{e}");
        // No readable MIDR: the model name decides where the profile has one...
        let named = |m: &str| CpuIdentity {
            model_name: Some(m.into()),
            ..Default::default()
        };
        assert!(check_host_cpu(&altra, "aarch64", &named("Neoverse-N1")).is_ok());
        assert!(check_host_cpu(&m2, "aarch64", &named("Apple M2 Avalanche")).is_ok());
        assert!(check_host_cpu(&m2, "aarch64", &named("Neoverse-N1")).is_err());
        // ...and nothing known is refused, not accepted.
        let e = check_host_cpu(&altra, "aarch64", &CpuIdentity::default()).unwrap_err();
        assert!(e.contains("'unknown'"), "{e}");
    }

    #[test]
    fn midr_patterns_are_validated_with_file_line_and_key() {
        let src = with("[machine]", "[machine]\nmidr = [\"0x41:d0c\"]");
        let e = err_of(&src);
        let l = line_of(&src, "midr =");
        assert!(
            e.starts_with(&format!("t.toml:{l}: key 'machine.midr': '0x41:d0c'")),
            "{e}"
        );
        let p = parse(
            &with("[machine]", "[machine]\nmidr = [\"0x41:0xd0c\", \"0x61\"]"),
            "t.toml",
            "t",
        )
        .unwrap();
        assert_eq!(p.machine.midr, ["0x41:0xd0c", "0x61"]);
    }

    #[test]
    fn the_instrument_key_selects_what_runs() {
        use crate::plan::Instruments;
        assert_eq!(
            parse(LOCAL_TOML, "t.toml", "t").unwrap().run.instrument,
            None
        );
        let src = with("warmup = 2 ", "instrument = \"real\"\nwarmup = 2 ");
        let p = parse(&src, "t.toml", "t").unwrap();
        assert_eq!(p.run.instrument, Some(Instruments::Real));
        let src = with("warmup = 2 ", "instrument = \"kernel\"\nwarmup = 2 ");
        let e = err_of(&src);
        let l = line_of(&src, "instrument =");
        assert!(
            e.starts_with(&format!("t.toml:{l}: key 'run.instrument': ")),
            "{e}"
        );
        // `real` without a [real] table would plan nothing.
        let src = with("warmup = 2 ", "instrument = \"real\"\nwarmup = 2 ");
        let (cut, end) = (
            src.find("[real]").unwrap(),
            src.find("[cost_model]").unwrap(),
        );
        let src = format!("{}{}", &src[..cut], &src[end..]);
        let e = err_of(&src);
        assert!(
            e.contains(
                "key 'run.instrument': 'real' needs a [real] table, and the profile has none"
            ),
            "{e}"
        );
    }
}
