//! The exact measurements the instruction model explains: every icount run of the committed
//! exact result files (`results/exact/*.json`), grouped into one observation per (arch,
//! kernel, layout, memory, mode), and each kernel told apart by version (6.1 or 6.12) and build
//! (Debian's package or self-built from the same source), which fixes the model strategy and
//! engine that stand for it ([`StandIn`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use contract::{Arch, Clock, Contpte, Mode, RealLayout, Strategy, Variant};
use results::ResultFile;

use crate::{CalibrateError, Result};

/// Which kernel series a kernel under test belongs to: the two the model has stand-ins for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    V6_1,
    V6_12,
}

impl Series {
    /// The series of a kernel release (`6.1.0-50-cloud-amd64`, `6.12.117+deb13-cloud-arm64`,
    /// `6.1.176`): its first two numbers. None for any other series.
    pub fn of_release(release: &str) -> Option<Series> {
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        match (parts.next()?, parts.next()?) {
            ("6", "1") => Some(Series::V6_1),
            ("6", "12") => Some(Series::V6_12),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }
}

/// How a kernel was built: Debian's cloud package, or built here from Debian's `linux-source`
/// with forkbench's config fragment (tinyconfig + `crates/bisect/kernel/forkbench.config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Build {
    Debian,
    SelfBuilt,
}

impl Build {
    pub const fn name(self) -> &'static str {
        match self {
            Build::Debian => "Debian",
            Build::SelfBuilt => "self-built",
        }
    }
}

/// The model strategy and engine whose op counts price a kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StandIn {
    pub strategy: Strategy,
    /// arm64 only.
    pub contpte: Option<Contpte>,
}

impl StandIn {
    /// The stand-in of a kernel of `series` on `arch`: `v6.1` (on arm64 without contpte, which
    /// 6.1 does not have), `v6.12` (on arm64 with contpte unless the kernel's config says
    /// `CONFIG_ARM64_CONTPTE` is off).
    pub fn of(arch: Arch, series: Series, contpte_off: bool) -> StandIn {
        let (strategy, contpte) = match series {
            Series::V6_1 => (Strategy::V6_1, Contpte::Dis),
            Series::V6_12 if contpte_off => (Strategy::V6_12, Contpte::Dis),
            Series::V6_12 => (Strategy::V6_12, Contpte::Ena),
        };
        StandIn {
            strategy,
            contpte: (arch == Arch::Arm64).then_some(contpte),
        }
    }

    /// `v6.1`, `v6.12 contpte-ena`.
    pub fn label(&self) -> String {
        match self.contpte {
            Some(c) => format!("{} {}", self.strategy, c.label()),
            None => self.strategy.to_string(),
        }
    }
}

/// A kernel under test, as the exact files name and describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Kernel {
    pub arch: Arch,
    /// The row label of its runs (`uname -r` unless labelled).
    pub label: String,
    /// The guest's `uname -r`.
    pub release: String,
    pub series: Series,
    pub build: Build,
    pub stand_in: StandIn,
}

/// One (kernel, layout, memory, mode): the run values of every exact run of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactObs {
    pub kernel: Kernel,
    pub layout: RealLayout,
    pub mem_bytes: u64,
    pub mode: Mode,
    /// Each run's value: the median of its forks' instruction counts.
    pub run_values: Vec<f64>,
}

impl ExactObs {
    /// Instructions per fork: the median of the run values.
    pub fn value(&self) -> f64 {
        stats::median(&self.run_values).unwrap_or(f64::NAN)
    }

    /// `(max - min) / median` of the run values.
    pub fn spread(&self) -> f64 {
        let any = stats::exact::ExactPolicy {
            tolerance: f64::INFINITY,
            ..Default::default()
        };
        stats::exact::agreement(&self.run_values, &any).map_or(f64::NAN, |a| a.spread)
    }
}

/// What the exact files gave: observations in table order, and the kernels left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExactData {
    /// The files read, relative names, sorted.
    pub files: Vec<String>,
    pub obs: Vec<ExactObs>,
    /// Kernels of a series without a stand-in, with their arch (left out, named in the report).
    pub skipped: Vec<(Arch, String)>,
}

/// The `*.json` files of `dir`, sorted; an absent directory has none.
pub fn exact_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    Ok(v)
}

/// Read every exact file of `dir` ([`exact_files`]).
pub fn load_dir(dir: &Path) -> Result<ExactData> {
    let mut files = Vec::new();
    for p in exact_files(dir)? {
        let f = ResultFile::load(&p)
            .map_err(|e| CalibrateError::Input(format!("{}: {e}", p.display())))?;
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        files.push((name, f));
    }
    collect(&files)
}

/// The observations of named result files (pure). A timed (non-icount) real run is refused: an
/// exact file holds instruction counts only.
pub fn collect(files: &[(String, ResultFile)]) -> Result<ExactData> {
    let mut out = ExactData {
        files: files.iter().map(|(n, _)| n.clone()).collect(),
        ..ExactData::default()
    };
    out.files.sort();
    type Key = (Arch, String, RealLayout, u64, Mode);
    let mut groups: BTreeMap<Key, (Kernel, Vec<f64>)> = BTreeMap::new();
    for (name, f) in files {
        for r in &f.runs {
            let Variant::Real(v) = &r.variant else {
                continue;
            };
            if v.clock != Clock::Icount {
                return Err(CalibrateError::Input(format!(
                    "{name}: a {} run of {} is timed ({} clock): exact files hold icount runs only",
                    v.layout, v.kernel, v.clock
                )));
            }
            if v.unverified {
                return Err(CalibrateError::Input(format!(
                    "{name}: a {} run of {} is unverified: its layout was not what it claims",
                    v.layout, v.kernel
                )));
            }
            let ctx = f.context_of(r);
            let release = ctx
                .map(|c| c.env.kernel_release.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| v.kernel.clone());
            let Some(series) = Series::of_release(&release) else {
                let k = (v.arch, v.kernel.clone());
                if !out.skipped.contains(&k) {
                    out.skipped.push(k);
                }
                continue;
            };
            let guest = ctx.and_then(|c| c.guest.as_ref());
            let image = guest.map_or("", |g| g.image.as_str());
            let build = if image.ends_with(".deb") || image.starts_with("linux-image-") {
                Build::Debian
            } else {
                Build::SelfBuilt
            };
            let contpte_off = guest.is_some_and(|g| {
                g.config
                    .iter()
                    .any(|(k, val)| k == "ARM64_CONTPTE" && val == "n")
            });
            let kernel = Kernel {
                arch: v.arch,
                label: v.kernel.clone(),
                release,
                series,
                build,
                stand_in: StandIn::of(v.arch, series, contpte_off),
            };
            let Some(value) = stats::exact::run_value(&r.samples_ns) else {
                continue;
            };
            let key = (v.arch, v.kernel.clone(), v.layout, v.mem_bytes, v.mode);
            let e = groups
                .entry(key)
                .or_insert_with(|| (kernel.clone(), Vec::new()));
            if e.0 != kernel {
                return Err(CalibrateError::Input(format!(
                    "{name}: kernel label {} names two kernels ({} and {}): label them apart",
                    v.kernel, e.0.release, kernel.release
                )));
            }
            e.1.push(value);
        }
    }
    out.obs = groups
        .into_iter()
        .map(
            |((_, _, layout, mem_bytes, mode), (kernel, run_values))| ExactObs {
                kernel,
                layout,
                mem_bytes,
                mode,
                run_values,
            },
        )
        .collect();
    out.obs.sort_by(|a, b| {
        (
            a.kernel.arch,
            a.kernel.build,
            a.kernel.series,
            &a.kernel.label,
        )
            .cmp(&(
                b.kernel.arch,
                b.kernel.build,
                b.kernel.series,
                &b.kernel.label,
            ))
            .then(a.layout.rank().cmp(&b.layout.rank()))
            .then(a.mem_bytes.cmp(&b.mem_bytes))
    });
    out.skipped.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_from_debian_and_self_built_releases() {
        assert_eq!(
            Series::of_release("6.1.0-50-cloud-amd64"),
            Some(Series::V6_1)
        );
        assert_eq!(
            Series::of_release("6.12.117+deb13-cloud-arm64"),
            Some(Series::V6_12)
        );
        assert_eq!(Series::of_release("6.1.176"), Some(Series::V6_1));
        assert_eq!(Series::of_release("6.12.117-dirty"), Some(Series::V6_12));
        assert_eq!(Series::of_release("6.18.44-fc"), None);
        assert_eq!(Series::of_release("6.10.3"), None);
        assert_eq!(Series::of_release("k"), None);
    }

    #[test]
    fn stand_ins_follow_series_arch_and_contpte() {
        let s = StandIn::of(Arch::X86_64, Series::V6_1, false);
        assert_eq!(
            (s.strategy, s.contpte, s.label()),
            (Strategy::V6_1, None, "v6.1".into())
        );
        let s = StandIn::of(Arch::Arm64, Series::V6_1, false);
        assert_eq!(s.label(), "v6.1 contpte-dis");
        let s = StandIn::of(Arch::Arm64, Series::V6_12, false);
        assert_eq!(s.label(), "v6.12 contpte-ena");
        let s = StandIn::of(Arch::Arm64, Series::V6_12, true);
        assert_eq!(s.label(), "v6.12 contpte-dis");
        assert_eq!(StandIn::of(Arch::X86_64, Series::V6_12, true).contpte, None);
    }
}
