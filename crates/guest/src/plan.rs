//! What the guest runs and what it reports: the plan (JSON, at [`PLAN_PATH`] in the
//! initramfs), the Hello and StepDone payloads, and the host's commands.
//!
//! With `interactive: true` the guest sends Hello, then waits for `go <i>` lines on its
//! console, runs step `i` and ends it with a StepDone frame, until `poweroff`. With
//! `interactive: false` it runs every step in order and powers off.

use serde::{Deserialize, Serialize};

/// Where the plan is in the initramfs.
pub const PLAN_PATH: &str = "/forkbench/plan.json";
/// On the kernel command line of a guest whose clock counts instructions (the host puts it
/// there under icount): its init then runs every Real step with `tick_align`.
pub const EXACT_MARKER: &str = "forkbench.clock=icount";

/// Whether a kernel command line (`/proc/cmdline`) carries [`EXACT_MARKER`].
pub fn exact_mode(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == EXACT_MARKER)
}

/// What a Real step changes in exact mode, so that every fork of every run counts the same
/// instructions: each timed fork starts just after a tick (a tick inside a fork adds its
/// thousands of instructions to that sample only), and SCHED_OTHER becomes SCHED_FIFO (under
/// SCHED_OTHER the new child may preempt its parent inside fork() and run to its exit there:
/// measured on Debian 6.12 x86_64, `untouched` forks counted 134 k or 317 k instructions
/// depending on it).
pub fn make_exact(opts: &mut contract::RealOpts) {
    opts.tick_align = true;
    if opts.sched == contract::Sched::Other {
        opts.sched = contract::Sched::Fifo;
    }
}

/// The plan format this build reads and writes.
pub const PLAN_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestPlan {
    pub version: u32,
    pub interactive: bool,
    /// Real steps run pinned to the guest's last online CPU, whatever their `cpu` says. The
    /// host cannot know that CPU when it writes the plan: an icount guest gets one vCPU, a KVM
    /// guest the configured number, and `auto` decides at boot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_last_cpu: bool,
    pub steps: Vec<GuestStep>,
}

/// One thing the guest does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "lowercase")]
pub enum GuestStep {
    /// `forkbench real` in-process; its header, context and runs come back as Line frames.
    Real(contract::RealOpts),
    /// A program in the initramfs; its stdout and stderr (merged) come back as Output frames.
    /// Killed after `timeout_secs`.
    Exec {
        path: String,
        args: Vec<String>,
        timeout_secs: u64,
    },
}

/// Why a plan could not be read. One line.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("plan is not valid JSON for this version: {0}")]
    Json(#[from] serde_json::Error),
    #[error("plan version {found} is not the version {PLAN_VERSION} this build reads")]
    Version { found: u32 },
}

impl GuestPlan {
    /// A plan of this build's version.
    pub fn new(interactive: bool, steps: Vec<GuestStep>) -> Self {
        GuestPlan {
            version: PLAN_VERSION,
            interactive,
            pin_last_cpu: false,
            steps,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plans serialise")
    }

    pub fn from_json(text: &str) -> Result<GuestPlan, PlanError> {
        // The version is checked first, so an old or new plan says so rather than naming a
        // field this build does not know.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly = serde_json::from_str(text)?;
        if v.version != PLAN_VERSION {
            return Err(PlanError::Version { found: v.version });
        }
        Ok(serde_json::from_str(text)?)
    }
}

/// What the guest found when it came up (the Hello frame's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GuestHello {
    /// `uname -r`.
    pub kernel_release: String,
    /// The contract's arch name (`x86_64`, `arm64`), else the Rust arch name.
    pub arch: String,
    pub page_size: u64,
    pub cpus: usize,
    pub mem_total_kib: u64,
    /// `/sys/kernel/mm/transparent_hugepage/enabled`, e.g. `always [madvise] never`.
    pub thp: Option<String>,
    /// mTHP sizes the kernel offers, e.g. `64kB`, smallest first.
    pub mthp_sizes: Vec<String>,
    /// The CPU PMU under `/sys/bus/event_source/devices` (`cpu`, `armv8_pmuv3_0`, ...).
    pub pmu: Option<String>,
    /// The clock the guest's measurements read: `icount` when its kernel command line carries
    /// [`EXACT_MARKER`] (exact mode: samples are instructions), else `wall`.
    #[serde(default)]
    pub clock: contract::Clock,
    /// Anything the guest could not set up or read, one line each.
    pub notes: Vec<String>,
}

/// The end of one step (the StepDone frame's JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDone {
    pub step: usize,
    pub ok: bool,
    /// A Real step: the exit code `forkbench real` would have had; Exec: the program's.
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    /// The guest's kernel cannot give this layout (`forkbench real`'s exit 3): a skip.
    pub unsupported: bool,
}

/// A line the host writes to the guest's console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCommand {
    /// Run step `i` of an interactive plan.
    Go(usize),
    /// Power off now.
    Poweroff,
}

impl HostCommand {
    /// The line to write, newline included.
    pub fn line(self) -> String {
        match self {
            HostCommand::Go(i) => format!("go {i}\n"),
            HostCommand::Poweroff => "poweroff\n".to_string(),
        }
    }

    /// Reads one line (without its end); `None` for anything else.
    pub fn parse(line: &str) -> Option<HostCommand> {
        let line = line.trim();
        if line == "poweroff" {
            return Some(HostCommand::Poweroff);
        }
        let i = line.strip_prefix("go ")?.trim().parse().ok()?;
        Some(HostCommand::Go(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contract::{Mode, RealLayout, Sched, Size};

    fn sample_plan() -> GuestPlan {
        GuestPlan::new(
            true,
            vec![
                GuestStep::Real(contract::RealOpts {
                    mem: Size(16 << 20),
                    iters: 5,
                    runs: 2,
                    cpu: Some(1),
                    mode: Mode::Fresh,
                    sched: Sched::Fifo,
                    ..contract::RealOpts::new(RealLayout::Mthp { kb: 64 })
                }),
                GuestStep::Exec {
                    path: "/forkbench/tests/hostenv".into(),
                    args: vec!["--test-threads=1".into()],
                    timeout_secs: 600,
                },
            ],
        )
    }

    #[test]
    fn plan_round_trips_through_json() {
        let plan = sample_plan();
        let text = plan.to_json();
        assert_eq!(GuestPlan::from_json(&text).unwrap(), plan);
        assert!(text.contains("\"step\": \"real\""), "{text}");
        assert!(text.contains("\"step\": \"exec\""), "{text}");
    }

    #[test]
    fn another_version_is_refused_by_number() {
        let text = sample_plan()
            .to_json()
            .replace("\"version\": 1", "\"version\": 9");
        let e = GuestPlan::from_json(&text).unwrap_err();
        assert_eq!(
            e.to_string(),
            "plan version 9 is not the version 1 this build reads"
        );
    }

    #[test]
    fn unknown_fields_and_bad_json_are_errors() {
        let text = sample_plan()
            .to_json()
            .replace("\"interactive\"", "\"interactiv\"");
        assert!(GuestPlan::from_json(&text).is_err());
        assert!(GuestPlan::from_json("{").is_err());
        assert!(GuestPlan::from_json("").is_err());
    }

    #[test]
    fn exact_mode_is_the_marker_word_and_makes_runs_tick_aligned_and_fifo() {
        assert!(exact_mode(
            "console=ttyS0 norandmaps forkbench.clock=icount quiet"
        ));
        assert!(!exact_mode("console=ttyS0 forkbench.clock=icountx"));
        assert!(!exact_mode(""));
        let mut o = contract::RealOpts::new(contract::RealLayout::Order0);
        o.sched = contract::Sched::Other;
        make_exact(&mut o);
        assert!(o.tick_align);
        assert_eq!(o.sched, contract::Sched::Fifo);
        o.sched = contract::Sched::Batch;
        make_exact(&mut o);
        assert_eq!(o.sched, contract::Sched::Batch);
    }

    #[test]
    fn hello_and_step_done_round_trip() {
        let hello = GuestHello {
            kernel_release: "6.12.107+deb13-cloud-amd64".into(),
            arch: "x86_64".into(),
            page_size: 4096,
            cpus: 2,
            mem_total_kib: 1_000_000,
            thp: Some("always [madvise] never".into()),
            mthp_sizes: vec!["16kB".into(), "64kB".into()],
            pmu: Some("cpu".into()),
            clock: contract::Clock::Icount,
            notes: vec!["no PMU".into()],
        };
        let text = serde_json::to_string(&hello).unwrap();
        assert_eq!(serde_json::from_str::<GuestHello>(&text).unwrap(), hello);
        let done = StepDone {
            step: 3,
            ok: false,
            exit_code: Some(3),
            error: Some("mTHP size 64 kB is not offered".into()),
            unsupported: true,
        };
        let text = serde_json::to_string(&done).unwrap();
        assert_eq!(serde_json::from_str::<StepDone>(&text).unwrap(), done);
    }

    #[test]
    fn host_commands_round_trip() {
        for c in [
            HostCommand::Go(0),
            HostCommand::Go(17),
            HostCommand::Poweroff,
        ] {
            assert_eq!(HostCommand::parse(&c.line()), Some(c));
        }
        assert_eq!(HostCommand::parse("go\r"), None);
        assert_eq!(HostCommand::parse("go -1"), None);
        assert_eq!(HostCommand::parse("reboot"), None);
        assert_eq!(HostCommand::parse("go 2\r"), Some(HostCommand::Go(2)));
    }
}
