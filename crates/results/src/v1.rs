//! Schema 1, kept so the files written before schema 2 still load: strings where schema 2 has
//! enums, an untyped `extra` per record repeating the real-fork environment and verification in
//! every record. [`ResultFile::upgrade`] turns one into a schema-2 [`crate::ResultFile`],
//! best effort for the details (`extra` keys it does not know are dropped).

use std::collections::BTreeMap;

use contract::{
    Accel, CheckSummary, Contpte, CounterValue, CpuBusy, Disturbance, HostEnv, HostLoad, Mapcount,
    MemoryUse, Mode, ModelOrder, OpCounter, Pinning, Populate, RealContext, RealExtra, RealLayout,
    RealVariant, RunRecord, SchedInfo, SimExtra, SimVariant, TimerCost,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The schema-1 variant: every field a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// `sim` or `real`.
    pub instrument: String,
    pub arch: String,
    /// Strategy name for the model; the kernel label for real fork.
    pub strategy: String,
    /// `order9` for the model; `pte-order9`, ... for real fork.
    pub layout: String,
    pub mem_bytes: u64,
    pub mode: String,
    /// Comma list: `contpte-ena`, `sched-fifo`, `unverified`, ...
    #[serde(default)]
    pub options: String,
}

/// The schema-1 run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord1 {
    pub variant: Variant,
    pub run_index: u32,
    pub warmup: u32,
    pub samples_ns: Vec<u64>,
    #[serde(default)]
    pub ops: BTreeMap<String, u64>,
    #[serde(default)]
    pub cpu: Option<usize>,
    #[serde(default)]
    pub extra: Value,
}

/// The schema-1 result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    pub schema: u32,
    pub tool_version: String,
    pub machine: String,
    pub label: String,
    pub created_utc: String,
    pub git_rev: String,
    pub seed: u64,
    pub config: Value,
    /// xtask's small capture: kernel, arch, cpu_model, cpus_online (a count), cpus_allowed (a
    /// list), thp_enabled, thp_defrag, governor, smt, aslr, hostname.
    pub env: Value,
    pub runs: Vec<RunRecord1>,
}

/// sysfs paths of the facts schema 1 kept under short names in the file's `env`.
pub const SMT_CONTROL: &str = "/sys/devices/system/cpu/smt/control";
pub const ASLR: &str = "/proc/sys/kernel/randomize_va_space";
pub const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
pub const THP_DEFRAG: &str = "/sys/kernel/mm/transparent_hugepage/defrag";

/// `T` from `v`, taking `T::default()` for whatever `v` lacks or has in another shape.
fn lenient<T: Default + Serialize + DeserializeOwned>(v: &Value) -> T {
    let Ok(Value::Object(mut base)) = serde_json::to_value(T::default()) else {
        return serde_json::from_value(v.clone()).unwrap_or_default();
    };
    if let Value::Object(m) = v {
        for (k, x) in m {
            if let Some(slot) = base.get_mut(k) {
                let old = std::mem::replace(slot, x.clone());
                if serde_json::from_value::<T>(Value::Object(base.clone())).is_err() {
                    base.insert(k.clone(), old);
                }
            }
        }
    }
    serde_json::from_value(Value::Object(base)).unwrap_or_default()
}

fn get<T: DeserializeOwned>(v: &Value, key: &str) -> Option<T> {
    serde_json::from_value(v.get(key)?.clone()).ok()
}

fn u64_list(v: &Value, key: &str) -> Vec<u64> {
    get(v, key).unwrap_or_default()
}

/// Indices of the `true` entries of a list of booleans.
fn true_indices(v: &Value, key: &str) -> Vec<u32> {
    let flags: Vec<bool> = get(v, key).unwrap_or_default();
    (0..flags.len() as u32)
        .filter(|&i| flags[i as usize])
        .collect()
}

fn check_summary(v: &Value) -> Option<CheckSummary> {
    Some(CheckSummary {
        level: get(v, "level")?,
        ok: get(v, "ok")?,
        summary: get(v, "summary").unwrap_or_default(),
        failure: get(v, "failure"),
    })
}

fn host_load(extra: &Value) -> Option<HostLoad> {
    let busy: Option<f64> = get(extra, "xtask_other_cpus_busy_pct");
    let conc: Option<u32> = get(extra, "xtask_concurrent_forkbench");
    (busy.is_some() || conc.is_some()).then(|| HostLoad {
        other_cpus_busy_pct: busy,
        pinned_cpu_foreign_pct: None,
        concurrent_forkbench: conc.unwrap_or(0),
    })
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| format!("{what}: {e}"))
}

fn sim_variant(v: &Variant, extra: &Value) -> Result<SimVariant, String> {
    let order = v
        .layout
        .strip_prefix("order")
        .ok_or_else(|| format!("model layout '{}' is not order<N>", v.layout))?;
    let mut out = SimVariant {
        arch: parse("arch", &v.arch)?,
        contpte: None,
        strategy: parse("strategy", &v.strategy)?,
        order: parse::<ModelOrder>("order", order)?,
        mem_bytes: v.mem_bytes,
        mode: parse::<Mode>("mode", &v.mode)?,
        mapcount: get(extra, "mapcount").unwrap_or_default(),
        counting: false,
    };
    for o in v
        .options
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        if let Some(c) = o.strip_prefix("contpte-") {
            out.contpte = Some(parse::<Contpte>("contpte", c)?);
        } else if o == "counting" {
            out.counting = true;
        } else {
            out.mapcount = parse::<Mapcount>("option", o)?;
        }
    }
    Ok(out)
}

fn real_variant(v: &Variant, extra: &Value) -> Result<RealVariant, String> {
    let kernel = extra
        .get("env")
        .and_then(|e| e.get("kernel_release"))
        .and_then(Value::as_str)
        .unwrap_or(&v.strategy)
        .to_string();
    let mut out = RealVariant {
        arch: parse("arch", &v.arch)?,
        kernel,
        accel: Accel::Host,
        clock: contract::Clock::Wall,
        layout: parse::<RealLayout>("layout", &v.layout)?,
        mem_bytes: v.mem_bytes,
        mode: parse::<Mode>("mode", &v.mode)?,
        sched: contract::Sched::Other,
        unverified: false,
    };
    for o in v
        .options
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        if let Some(s) = o.strip_prefix("sched-") {
            out.sched = parse("sched", s)?;
        } else if o == "unverified" {
            out.unverified = true;
        } else {
            out.accel = parse::<Accel>("option", o)?;
        }
    }
    Ok(out)
}

fn sim_extra(extra: &Value) -> Option<SimExtra> {
    let ptes: u64 = get(extra, "ptes")?;
    Some(SimExtra {
        ptes,
        seed: get(extra, "seed").unwrap_or(0),
        model_bytes: get(extra, "model_bytes").unwrap_or(0),
        peak_rss_bytes: get(extra, "peak_rss_bytes"),
        cost_model: get(extra, "cost_model"),
        modelled_add_ns: get(extra, "modelled_add_ns"),
    })
}

fn sched_info(v: &Value) -> Option<SchedInfo> {
    Some(SchedInfo {
        requested: get(v, "requested")?,
        effective: get(v, "effective")?,
        priority: get(v, "priority"),
        fallback: get(v, "fallback"),
        pause: get(v, "pause"),
        pause_total_ns: get(v, "pause_total_ns")
            .or_else(|| get(v, "pause_between_iterations_ns"))
            .unwrap_or(0),
    })
}

fn real_extra(extra: &Value, context: u32) -> RealExtra {
    let mode = extra.get("mode").cloned().unwrap_or(Value::Null);
    let cpu_load: BTreeMap<usize, CpuBusy> = extra
        .get("cpu_load")
        .and_then(|c| c.get("per_cpu"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    Some((k.parse().ok()?, serde_json::from_value(v.clone()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    RealExtra {
        context,
        post: extra
            .get("verification")
            .and_then(|v| v.get("post"))
            .and_then(check_summary),
        reaped_ns: u64_list(extra, "reaped_ns"),
        core_probe_ns: u64_list(extra, "core_probe_ns"),
        child_start_ns: get(extra, "child_start_ns").unwrap_or_default(),
        child_ran_first: true_indices(extra, "child_ran_first"),
        migrated: true_indices(extra, "migrated"),
        nivcsw: u64_list(extra, "nivcsw"),
        nvcsw: u64_list(extra, "nvcsw"),
        minflt: u64_list(extra, "minflt"),
        disturbances: get::<Vec<Disturbance>>(extra, "disturbances").unwrap_or_default(),
        warmup_ns: u64_list(extra, "warmup_ns"),
        first_fork_ns: get(extra, "first_fork_ns"),
        refresh_ns: u64_list(&mode, "refresh_ns"),
        refresh_minflt: u64_list(&mode, "refresh_minflt"),
        counters: get::<BTreeMap<String, CounterValue>>(extra, "counters").unwrap_or_default(),
        sched: extra.get("sched").and_then(sched_info),
        cpu_load,
        memory: extra.get("memory").map(lenient::<MemoryUse>),
    }
}

fn context(v: &RealVariant, extra: &Value) -> RealContext {
    let pre = extra.get("verification").and_then(|x| x.get("pre"));
    RealContext {
        env: extra.get("env").map(lenient::<HostEnv>).unwrap_or_default(),
        layout: v.layout,
        mem_bytes: v.mem_bytes,
        iters: get(extra, "iters").unwrap_or(0),
        runs: get(extra, "runs").unwrap_or(1),
        pinning: extra
            .get("pinning")
            .map(lenient::<Pinning>)
            .unwrap_or_default(),
        timer: extra
            .get("timer")
            .map(lenient::<TimerCost>)
            .unwrap_or_default(),
        populate: extra
            .get("populate")
            .map(lenient::<Populate>)
            .unwrap_or_default(),
        pre: pre.and_then(check_summary).unwrap_or(CheckSummary {
            level: "none".into(),
            ok: false,
            summary: "no verification recorded".into(),
            failure: None,
        }),
        pre_report: pre.cloned().unwrap_or(Value::Null),
        guest: None,
        lab: None,
    }
}

/// The file-level environment: the first real-fork record's full capture when there is one,
/// else schema 1's small capture; its short-named facts go under their sysfs paths.
fn file_env(old_env: &Value, first_real: Option<&Value>) -> HostEnv {
    let mut env = match first_real.and_then(|e| e.get("env")) {
        Some(e) => lenient::<HostEnv>(e),
        None => {
            let s = |k: &str| old_env.get(k).and_then(Value::as_str).map(str::to_string);
            HostEnv {
                kernel_release: s("kernel").unwrap_or_default(),
                arch: s("arch").unwrap_or_default(),
                hostname: s("hostname").unwrap_or_default(),
                cpu_model: s("cpu_model"),
                cpus_allowed: old_env
                    .get("cpus_allowed")
                    .and_then(Value::as_array)
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Value::as_u64)
                            .map(|i| i.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    }),
                ..HostEnv::default()
            }
        }
    };
    for (key, path) in [
        ("smt", SMT_CONTROL),
        ("aslr", ASLR),
        ("thp_enabled", THP_ENABLED),
        ("thp_defrag", THP_DEFRAG),
    ] {
        if let Some(v) = old_env.get(key).filter(|v| !v.is_null()) {
            let text = v.as_str().map(str::to_string).unwrap_or(v.to_string());
            env.sysfs
                .entry(path.to_string())
                .or_insert(Some(contract_selected(&text)));
        }
    }
    env
}

/// `always [madvise] never` → `madvise` (as hostenv records sysfs choices).
fn contract_selected(s: &str) -> String {
    match (s.find('['), s.find(']')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => s.to_string(),
    }
}

impl ResultFile {
    /// The same measurements in schema 2. Real-fork records become one context per runner
    /// process (a record that was its process's first fork starts a new context for its layout).
    pub fn upgrade(self) -> Result<crate::ResultFile, String> {
        let first_real = self
            .runs
            .iter()
            .find(|r| r.variant.instrument == "real")
            .map(|r| &r.extra);
        let env = file_env(&self.env, first_real);
        let mut contexts: Vec<RealContext> = Vec::new();
        let mut open: BTreeMap<RealLayout, u32> = BTreeMap::new();
        let mut runs = Vec::with_capacity(self.runs.len());
        for (i, r) in self.runs.into_iter().enumerate() {
            let at = |e: String| format!("run {i} ({}): {e}", r.variant.strategy);
            let ops: BTreeMap<OpCounter, u64> = r
                .ops
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, *v)))
                .collect();
            let (variant, sim, real) = match r.variant.instrument.as_str() {
                "sim" => (
                    contract::Variant::Sim(sim_variant(&r.variant, &r.extra).map_err(at)?),
                    sim_extra(&r.extra),
                    None,
                ),
                "real" => {
                    let v = real_variant(&r.variant, &r.extra).map_err(at)?;
                    let new_process =
                        r.extra.get("first_fork_of_process") != Some(&Value::Bool(false));
                    let ctx = match open.get(&v.layout) {
                        Some(&c) if !new_process => c,
                        _ => {
                            contexts.push(context(&v, &r.extra));
                            let c = contexts.len() as u32 - 1;
                            open.insert(v.layout, c);
                            c
                        }
                    };
                    let x = real_extra(&r.extra, ctx);
                    (contract::Variant::Real(v), None, Some(Box::new(x)))
                }
                other => return Err(at(format!("unknown instrument '{other}'"))),
            };
            runs.push(RunRecord {
                variant,
                run_index: r.run_index,
                warmup: r.warmup,
                samples_ns: r.samples_ns,
                cpu: r.cpu,
                ops,
                sim,
                real,
                host_load: host_load(&r.extra),
            });
        }
        Ok(crate::ResultFile {
            schema: contract::SCHEMA_VERSION,
            tool_version: self.tool_version,
            machine: self.machine,
            label: self.label,
            created_utc: self.created_utc,
            git_rev: self.git_rev,
            seed: self.seed,
            config: self.config,
            env,
            contexts,
            runs,
            load_check: None,
        })
    }
}
