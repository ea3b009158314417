//! A LAVA v2 job that runs a profile's real-fork plan on one lab device, and the metadata that
//! ties the job's log back to that plan.
//!
//! The plan is the one `bench --kernel` runs ([`crate::plan::for_kernels`] with one kernel),
//! made non-interactive: the guest runs the steps in the plan's interleaved order (every
//! round, every layout) and powers off, since no host talks to a lab device's console. The
//! job deploys the kernel and the initramfs ([`guest::initramfs`]), boots them, and a
//! `monitors` test action watches the console from the guest's Hello frame to its Bye frame.
//! The records themselves travel in the frames and come back through the job log.
//!
//! [`JobMeta`] goes into the job's `metadata` (strings, as LAVA keeps them): the profile, the
//! seed and `quick` (which rebuild the plan), the kernel's row label, and a digest of the
//! guest plan, so `lava fetch` can refuse a log whose plan this checkout would not make.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use contract::{Accel, Arch, Clock, Invocation};
use guest::plan::{GuestPlan, GuestStep};
use yaml_serde::{Mapping, Value};

use crate::exec::{CallCtx, invocation};
use crate::plan::{Call, Instruments, Plan};
use crate::profile::{self, Profile};

/// The metadata key prefix of everything forkbench puts in a job.
const KEY: &str = "forkbench.";

/// The console line the monitor starts at (the guest's Hello frame, first chunk) and ends at
/// (the Bye frame), and the StepDone frames it counts as LAVA test results.
pub const MONITOR_START: &str = "@@FB1 hello 0 0 ";
pub const MONITOR_END: &str = "@@FB1 bye ";
pub const MONITOR_PATTERN: &str = r"@@FB1 (?P<test_case_id>done) (?P<measurement>\d+) 0 ";
/// The monitor's name: its results are test suite `forkbench` in LAVA.
pub const MONITOR_NAME: &str = "forkbench";

/// What a job carries about the plan it runs (its `metadata`, `forkbench.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobMeta {
    /// `--config` as given (a profile name or path); `None`: the embedded local profile.
    pub profile: Option<String>,
    pub quick: bool,
    pub seed: u64,
    /// The kernel's row label; `None` when the board boots its own kernel (then the row is the
    /// release its Hello reports).
    pub kernel: Option<String>,
    /// The image booted (file name), or `rootfs` for the board's own kernel.
    pub image: String,
    pub arch: Arch,
    /// Where the kernel runs: `host` on a board, `tcg`/`kvm` on a QEMU device.
    pub accel: Accel,
    pub clock: Clock,
    /// [`plan_digest`] of the guest plan.
    pub plan_digest: String,
    pub git_rev: String,
    pub tool_version: String,
    /// The image's config facts (THP, mTHP, contpte, page size), `K=V` joined by spaces.
    pub kconfig: Vec<(String, String)>,
    /// The plan runs from a lava-test-shell in the board's own userspace (no monitor).
    pub shell: bool,
}

impl JobMeta {
    /// The job's `metadata` entries.
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(format!("{KEY}{k}"), v);
        };
        if let Some(p) = &self.profile {
            put("profile", p.clone());
        }
        put("quick", self.quick.to_string());
        put("seed", self.seed.to_string());
        if let Some(k) = &self.kernel {
            put("kernel", k.clone());
        }
        put("image", self.image.clone());
        put("arch", self.arch.to_string());
        put("accel", self.accel.to_string());
        put("clock", self.clock.to_string());
        put("plan-digest", self.plan_digest.clone());
        put("git-rev", self.git_rev.clone());
        put("tool-version", self.tool_version.clone());
        put(
            "transport",
            if self.shell { "shell" } else { "monitor" }.to_string(),
        );
        if !self.kconfig.is_empty() {
            let kc: Vec<String> = self
                .kconfig
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            put("kconfig", kc.join(" "));
        }
        m
    }

    /// Read the `forkbench.*` metadata of a job definition (the YAML a server hands back).
    pub fn from_definition(definition: &str) -> anyhow::Result<JobMeta> {
        let v: Value =
            yaml_serde::from_str(definition).context("the job definition is not YAML")?;
        let meta = v.get("metadata").and_then(Value::as_mapping);
        let get = |k: &str| -> Option<String> {
            let v = meta?.get(format!("{KEY}{k}"))?;
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                Value::Bool(b) => Some(b.to_string()),
                _ => None,
            }
        };
        let need = |k: &str| {
            get(k).with_context(|| {
                format!(
                    "the job has no metadata {KEY}{k}: it was not written by `cargo xtask lava \
                     job` (or its metadata was edited)"
                )
            })
        };
        fn parsed<T: std::str::FromStr>(k: &str, v: String) -> anyhow::Result<T>
        where
            T::Err: std::fmt::Display,
        {
            v.parse()
                .map_err(|e| anyhow::anyhow!("metadata {KEY}{k} '{v}': {e}"))
        }
        Ok(JobMeta {
            profile: get("profile"),
            quick: need("quick")? == "true",
            seed: parsed("seed", need("seed")?)?,
            kernel: get("kernel"),
            image: need("image")?,
            arch: parsed("arch", need("arch")?)?,
            accel: parsed("accel", need("accel")?)?,
            clock: parsed("clock", need("clock")?)?,
            plan_digest: need("plan-digest")?,
            git_rev: get("git-rev").unwrap_or_default(),
            tool_version: get("tool-version").unwrap_or_default(),
            kconfig: get("kconfig")
                .map(|s| {
                    s.split_whitespace()
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .unwrap_or_default(),
            shell: get("transport").as_deref() == Some("shell"),
        })
    }
}

/// The plan a lab job runs: the profile's real-fork groups for one kernel, interleaved over
/// the rounds, and the guest plan that runs them in that order.
#[derive(Debug, Clone)]
pub struct LabPlan {
    pub profile: Profile,
    pub plan: Plan,
    pub guest: GuestPlan,
}

/// Build the plan of a lab job: the profile's real-fork layouts for the kernel labelled
/// `kernel`, scheduled with `seed`, one guest step per (round, layout) in execution order.
pub fn lab_plan(
    config: Option<&str>,
    quick: bool,
    seed: u64,
    kernel: &str,
) -> anyhow::Result<LabPlan> {
    let root = crate::util::project_root();
    let mut profile = profile::load(config, &root)?;
    profile.run.instrument = Some(Instruments::Real);
    let base = crate::plan::plan(&profile, quick, seed);
    if !base.groups.iter().any(|g| matches!(g, Call::Real { .. })) {
        bail!(
            "profile {} has no [real] layouts: nothing to run on a lab device",
            profile.profile
        );
    }
    let plan = crate::plan::for_kernels(base, &[kernel.to_string()], false, seed);
    let ctx = CallCtx { cpu: 0, seed: 0 };
    let steps = plan
        .order
        .iter()
        .filter_map(|&(_, g)| match invocation(&plan.groups[g], ctx, None) {
            Invocation::Real(o) => Some(GuestStep::Real(o)),
            _ => None,
        })
        .collect();
    let mut guest = GuestPlan::new(false, steps);
    // The device's CPU count is known only when it runs.
    guest.pin_last_cpu = true;
    Ok(LabPlan {
        profile,
        plan,
        guest,
    })
}

/// A stable digest of a guest plan (FNV-1a 64 of its JSON), to recognise it in a job.
pub fn plan_digest(plan: &GuestPlan) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in plan.to_json().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// LAVA's name for an architecture (job `context: arch`).
pub fn lava_arch(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "amd64",
        Arch::Arm64 => "arm64",
    }
}

/// A YAML string.
pub fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

/// A YAML mapping, keys in the order given.
pub fn map<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

/// A LAVA timeout of `m` minutes.
pub fn minutes(m: u64) -> Value {
    map([("minutes", Value::Number(m.into()))])
}

/// How a job boots its device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// LAVA's `qemu` device type: the kernel and initramfs on QEMU's command line; `context`
    /// carries the QEMU options of [`super::device::QemuDevice`].
    Qemu { context: Mapping },
    /// A board: kernel and initramfs over TFTP, booted by its bootloader (`u-boot`, `grub`,
    /// `grub-efi`, `ipxe`) with the `ramdisk` commands of its device type.
    Board { method: String },
}

/// Everything a job definition says.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub device_type: String,
    pub job_name: String,
    pub meta: JobMeta,
    pub boot: Boot,
    pub kernel_url: String,
    pub ramdisk_url: String,
    /// Kernel parameters after the console (which the device type or QEMU's arch decides).
    pub kernel_params: String,
    pub job_minutes: u64,
    /// The longest a step may run: the monitor's wait between two StepDone frames.
    pub step_minutes: u64,
    pub boot_minutes: u64,
}

impl JobSpec {
    /// The job definition (YAML), with a comment saying what made it.
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        let deploy_and_boot = match &self.boot {
            Boot::Qemu { .. } => {
                let console = guest::qemu::console_device(self.meta.arch);
                let append = format!("console={console} {}", self.kernel_params);
                vec![
                    map([(
                        "deploy",
                        map([
                            ("to", s("tmpfs")),
                            ("timeout", minutes(10)),
                            (
                                "images",
                                map([
                                    (
                                        "kernel",
                                        map([
                                            ("url", s(&self.kernel_url)),
                                            (
                                                "image_arg",
                                                s(format!(
                                                    "-kernel {{kernel}} -append \"{append}\""
                                                )),
                                            ),
                                        ]),
                                    ),
                                    (
                                        "ramdisk",
                                        map([
                                            ("url", s(&self.ramdisk_url)),
                                            ("image_arg", s("-initrd {ramdisk}")),
                                        ]),
                                    ),
                                ]),
                            ),
                        ]),
                    )]),
                    map([(
                        "boot",
                        map([
                            ("method", s("qemu")),
                            ("media", s("tmpfs")),
                            ("timeout", minutes(self.boot_minutes)),
                        ]),
                    )]),
                ]
            }
            Boot::Board { method } => {
                let mut kernel = Mapping::new();
                kernel.insert(s("url"), s(&self.kernel_url));
                if self.meta.arch == Arch::Arm64 {
                    // An arm64 Image, booted with booti.
                    kernel.insert(s("type"), s("image"));
                }
                vec![
                    map([(
                        "deploy",
                        map([
                            ("to", s("tftp")),
                            ("timeout", minutes(10)),
                            ("kernel", Value::Mapping(kernel)),
                            (
                                "ramdisk",
                                map([
                                    ("url", s(&self.ramdisk_url)),
                                    // The initramfs is complete: LAVA adds nothing to it.
                                    ("install_modules", Value::Bool(false)),
                                    ("install_overlay", Value::Bool(false)),
                                ]),
                            ),
                        ]),
                    )]),
                    map([(
                        "boot",
                        map([
                            ("method", s(method)),
                            ("commands", s("ramdisk")),
                            ("timeout", minutes(self.boot_minutes)),
                        ]),
                    )]),
                ]
            }
        };
        let mut actions = deploy_and_boot;
        actions.push(monitor_action(self.job_minutes));
        let mut context = match &self.boot {
            Boot::Qemu { context } => context.clone(),
            Boot::Board { .. } => {
                let mut c = Mapping::new();
                c.insert(s("extra_kernel_args"), s(&self.kernel_params));
                c
            }
        };
        context.insert(s("arch"), s(lava_arch(self.meta.arch)));
        let metadata: Mapping = self
            .meta
            .to_metadata()
            .into_iter()
            .map(|(k, v)| (s(k), s(v)))
            .collect();
        let job = map([
            ("device_type", s(&self.device_type)),
            ("job_name", s(&self.job_name)),
            (
                "timeouts",
                map([
                    ("job", minutes(self.job_minutes)),
                    ("action", minutes(self.job_minutes)),
                    ("connection", minutes(self.step_minutes)),
                ]),
            ),
            ("priority", s("medium")),
            ("visibility", s("public")),
            ("metadata", Value::Mapping(metadata)),
            ("context", Value::Mapping(context)),
            ("actions", Value::Sequence(actions)),
        ]);
        let text = yaml_serde::to_string(&job).context("writing the job definition")?;
        Ok(format!(
            "# forkbench real-fork plan on a LAVA {} device: written by `cargo xtask lava job`.\n\
             # The guest prints its records as framed lines on the console; `cargo xtask lava \
             fetch` decodes them from the job log.\n{text}",
            self.device_type
        ))
    }
}

/// The `test` action: a monitor from the Hello frame to the Bye frame, one LAVA result per
/// StepDone frame (case `done`, its frame number as the measurement).
fn monitor_action(job_minutes: u64) -> Value {
    map([(
        "test",
        map([
            ("timeout", minutes(job_minutes)),
            (
                "monitors",
                Value::Sequence(vec![map([
                    ("name", s(MONITOR_NAME)),
                    ("start", s(MONITOR_START)),
                    ("end", s(MONITOR_END)),
                    ("pattern", s(MONITOR_PATTERN)),
                ])]),
            ),
        ]),
    )])
}

/// Copy `from` into `dir` under its own file name; returns the copy.
pub fn copy_into(from: &Path, dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let name = from
        .file_name()
        .with_context(|| format!("{}: not a file", from.display()))?;
    let to = dir.join(name);
    std::fs::copy(from, &to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> JobMeta {
        JobMeta {
            profile: Some("ci".into()),
            quick: true,
            seed: 42,
            kernel: Some("6.12".into()),
            image: "vmlinuz-6.12".into(),
            arch: Arch::X86_64,
            accel: Accel::Tcg,
            clock: Clock::Icount,
            plan_digest: "0123456789abcdef".into(),
            git_rev: "abc".into(),
            tool_version: "0.1.0".into(),
            kconfig: vec![("CONFIG_TRANSPARENT_HUGEPAGE".into(), "y".into())],
            shell: false,
        }
    }

    #[test]
    fn metadata_round_trips_through_a_definition() {
        let spec = JobSpec {
            device_type: "qemu".into(),
            job_name: "t".into(),
            meta: meta(),
            boot: Boot::Qemu {
                context: Mapping::new(),
            },
            kernel_url: "file:///k".into(),
            ramdisk_url: "file:///r".into(),
            kernel_params: guest::qemu::KERNEL_PARAMS.into(),
            job_minutes: 30,
            step_minutes: 20,
            boot_minutes: 5,
        };
        let text = spec.to_yaml().unwrap();
        assert_eq!(JobMeta::from_definition(&text).unwrap(), meta());
        assert!(text.contains("@@FB1 hello 0 0 "), "{text}");
        assert!(
            text.contains("-append \"console=ttyS0 printk.time=1"),
            "{text}"
        );
        let v: Value = yaml_serde::from_str(&text).unwrap();
        assert_eq!(v["context"]["arch"], s("amd64"));
        assert_eq!(
            v["timeouts"]["connection"]["minutes"],
            Value::Number(20.into())
        );
    }

    #[test]
    fn a_definition_without_forkbench_metadata_says_so() {
        let e = JobMeta::from_definition("device_type: qemu\nmetadata: {}\n").unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("the job has no metadata forkbench."), "{e}");
        assert!(e.contains("not written by `cargo xtask lava job`"), "{e}");
        assert!(JobMeta::from_definition(": : :").is_err());
    }

    #[test]
    fn the_lab_plan_runs_every_round_in_order_non_interactively() {
        let lp = lab_plan(Some("ci"), true, 7, "k").unwrap();
        assert!(!lp.guest.interactive && lp.guest.pin_last_cpu);
        assert_eq!(lp.guest.steps.len(), lp.plan.order.len());
        assert!(lp.plan.groups.iter().all(|g| matches!(
            g,
            Call::Real { kernel: Some(k), .. } if k == "k"
        )));
        // The same inputs make the same plan; another seed another order.
        let again = lab_plan(Some("ci"), true, 7, "k").unwrap();
        assert_eq!(plan_digest(&lp.guest), plan_digest(&again.guest));
        let other = lab_plan(Some("ci"), true, 8, "k").unwrap();
        assert_ne!(plan_digest(&lp.guest), plan_digest(&other.guest));
    }
}
