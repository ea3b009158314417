//! A finished lab job as one more [`Executor`]: the guest ran the plan's steps in order on the
//! device; this hands each call the records of its step, stamped with where it ran, so the
//! suite's own `execute_to` and [`crate::bench::Saving`] turn them into a result file exactly
//! as for the host's runner or the local guests.
//!
//! Everything is checked before a file is reserved: the job passed (LAVA's results), its
//! frames decode into a complete transcript, the transcript has one finished step per planned
//! step, the plan is the one this checkout makes from the job's metadata, and no step failed
//! (a layout the kernel cannot give is a skip, as with guests). So a bad job writes nothing.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use contract::{Accel, Clock, LabBoot, RunnerLine, Variant};
use guest::transcript::{Step, Transcript};
use results::{ResultFile, SCHEMA_VERSION};

use super::job::{JobMeta, LabPlan, lab_plan, plan_digest};
use super::log::JobLog;
use crate::exec::{CallCtx, Executor, Outcome};
use crate::plan::Call;

/// Replays a job's steps, in plan order.
pub struct Replay {
    /// The call of each plan step (the plan's `order`), beside the step the guest ran.
    steps: Vec<(Call, Step)>,
    /// The next step a call may take (calls of a skipped group are never made, so steps are
    /// passed over, never taken out of order).
    cursor: usize,
    label: String,
    accel: Accel,
    clock: Clock,
    lab: LabBoot,
}

impl Executor for Replay {
    fn run(
        &mut self,
        call: &Call,
        _ctx: CallCtx,
        emit: &mut dyn FnMut(RunnerLine),
    ) -> anyhow::Result<Outcome> {
        let Some(i) = self.steps[self.cursor..]
            .iter()
            .position(|(c, _)| c == call)
            .map(|i| i + self.cursor)
        else {
            bail!("{}: the job ran no step for this call", call.name());
        };
        self.cursor = i + 1;
        let step = &self.steps[i].1;
        for line in &step.lines {
            let mut line = line.clone();
            match &mut line {
                RunnerLine::Run(r) => {
                    if let Variant::Real(v) = &mut r.variant {
                        v.kernel = self.label.clone();
                        v.accel = self.accel;
                        v.clock = self.clock;
                    }
                }
                RunnerLine::Context(c) => c.lab = Some(self.lab.clone()),
                RunnerLine::Header(_) | RunnerLine::Counts(_) => continue,
            }
            emit(line);
        }
        crate::kernels::step_outcome(step.done.clone(), &self.label, call)
    }
}

/// Where a job ran, as the result file names it.
#[derive(Debug, Clone)]
pub struct Ran {
    /// The server's URL, or `lava-run`.
    pub server: String,
    pub job_id: String,
    /// The device's name: the result file's machine, `results/<device>/`.
    pub device: String,
    pub device_type: String,
}

/// A checked job, ready to become a result file.
pub struct CheckedJob {
    /// `accel` and `clock` as the device really ran (see [`JobLog::qemu_clock`]).
    pub meta: JobMeta,
    pub lab_plan: LabPlan,
    pub transcript: Transcript,
    /// The row of the tables: the job's kernel label, else the release the device reported.
    pub label: String,
    pub ran: Ran,
}

/// Check a job's definition and log (see the module's list); the first problem is the error.
pub fn check_job(definition: &str, log_text: &str, ran: Ran) -> anyhow::Result<CheckedJob> {
    let mut meta = JobMeta::from_definition(definition)?;
    let log = JobLog::parse(log_text);
    log.check_passed(meta.shell)?;
    // Records say how the device really ran: a lab's device dictionary can override the QEMU
    // options the job asked for in its context.
    if meta.accel != Accel::Host
        && let Some((accel, clock)) = log.qemu_clock()
        && (accel, clock) != (meta.accel, meta.clock)
    {
        eprintln!(
            "note: the job asked for {}/{} but the device ran QEMU under {accel}/{clock} (its \
             dictionary set QEMU's options): the records say {accel}/{clock}",
            meta.accel, meta.clock
        );
        meta.accel = accel;
        meta.clock = clock;
    }
    let transcript = guest::transcript::read_transcript(&log.console)
        .context("the job's console does not decode")?;
    let label = meta
        .kernel
        .clone()
        .unwrap_or_else(|| transcript.hello.kernel_release.clone());
    let lab_plan = lab_plan(meta.profile.as_deref(), meta.quick, meta.seed, &label)
        .context("rebuilding the job's plan from its metadata")?;
    let digest = plan_digest(&lab_plan.guest);
    if digest != meta.plan_digest {
        bail!(
            "the job ran plan {} but this checkout makes plan {digest} from its profile {}, seed \
             {}: the profile or the tool changed since (job written at git {}); fetch with that \
             revision",
            meta.plan_digest,
            meta.profile.as_deref().unwrap_or("local"),
            meta.seed,
            meta.git_rev
        );
    }
    let planned = lab_plan.guest.steps.len();
    if transcript.steps.len() != planned {
        bail!(
            "the guest finished {} of the plan's {planned} steps",
            transcript.steps.len()
        );
    }
    let seen = log.steps_seen(super::job::MONITOR_NAME);
    if !meta.shell && seen != planned {
        bail!("LAVA's monitor counted {seen} finished steps, the frames {planned}");
    }
    if let Some(s) = transcript
        .steps
        .iter()
        .find(|s| !s.done.ok && !s.done.unsupported)
    {
        bail!(
            "step {} failed on the device: {}",
            s.done.step,
            s.done
                .error
                .as_deref()
                .unwrap_or("no reason given by the guest")
        );
    }
    Ok(CheckedJob {
        meta,
        lab_plan,
        transcript,
        label,
        ran,
    })
}

/// Write a checked job's result file under `out_dir/<device>/` and print its tables.
pub fn save(
    job: CheckedJob,
    out_dir: &std::path::Path,
    label: Option<&str>,
    stop: &AtomicBool,
) -> anyhow::Result<PathBuf> {
    let CheckedJob {
        meta,
        lab_plan,
        transcript,
        label: kernel_label,
        ran,
    } = job;
    let LabPlan { profile, plan, .. } = lab_plan;
    let machine = crate::util::path_component(&ran.device);
    let label = match label {
        Some(l) => l.to_string(),
        None => default_label(&ran.device, &kernel_label),
    };
    if !crate::bench::valid_label(&label) {
        bail!("label '{label}' must be 1-64 characters of [A-Za-z0-9._+-]");
    }
    let lab = LabBoot {
        server: ran.server.clone(),
        job_id: ran.job_id.clone(),
        device: ran.device.clone(),
        device_type: ran.device_type.clone(),
        image: meta.image.clone(),
        config: meta.kconfig.clone(),
    };
    let env = transcript
        .steps
        .iter()
        .flat_map(|s| &s.lines)
        .find_map(|l| match l {
            RunnerLine::Context(c) => Some(c.env.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("clock before 1970")?;
    let stamp = hostenv::host::UtcStamp::at(now.as_secs() as i64);
    let mut config = crate::bench::file_config(
        &profile,
        meta.quick,
        false,
        std::slice::from_ref(&kernel_label),
        0,
        &plan,
    );
    if let Some(c) = config.as_object_mut() {
        c.insert("lab".into(), serde_json::to_value(&lab)?);
        c.insert("lab_git_rev".into(), meta.git_rev.clone().into());
    }
    let file = ResultFile {
        schema: SCHEMA_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        machine: machine.clone(),
        label: label.clone(),
        created_utc: stamp.rfc3339.clone(),
        git_rev: if meta.git_rev.is_empty() {
            crate::util::git_rev()
        } else {
            meta.git_rev.clone()
        },
        seed: meta.seed,
        config,
        env,
        contexts: Vec::new(),
        runs: Vec::new(),
        load_check: None,
    };
    let (out_path, journal) = crate::bench::reserve(
        &out_dir.join(&machine),
        &stamp.compact,
        &crate::util::path_component(&label),
        &file,
    )?;
    let steps = plan
        .order
        .iter()
        .map(|&(_, g)| plan.groups[g].clone())
        .zip(transcript.steps)
        .collect();
    let mut replay = Replay {
        steps,
        cursor: 0,
        label: kernel_label,
        accel: meta.accel,
        clock: meta.clock,
        lab,
    };
    crate::bench::Saving {
        plan: &plan,
        file,
        out_path,
        journal,
        cpu: 0,
        seed: meta.seed,
        machine: &machine,
        publish_hint: false,
        verbose: false,
        session_only: false,
        policy: stats::Policy::default(),
    }
    .run(&mut replay, stop)
}

/// The default label of a lab result: the device, then the kernel, so files of several
/// devices (or kernels) merge in one table with a row each.
pub fn default_label(device: &str, kernel: &str) -> String {
    let l = format!(
        "{}-{}",
        crate::util::path_component(device),
        crate::util::path_component(kernel)
    );
    if crate::bench::valid_label(&l) {
        l
    } else {
        let d: String = crate::util::path_component(device)
            .chars()
            .take(64)
            .collect();
        if crate::bench::valid_label(&d) {
            d
        } else {
            "lab".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_device_and_kernel() {
        assert_eq!(
            default_label("qemu01", "6.12.117+deb13-cloud-amd64"),
            "qemu01-6.12.117+deb13-cloud-amd64"
        );
        let long = "k".repeat(80);
        assert_eq!(default_label("altra-01", &long), "altra-01");
    }
}
