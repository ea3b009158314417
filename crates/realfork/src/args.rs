//! Command-line arguments of `forkbench real` ([`RealArgs`], flattened into the binary's clap
//! parser) and their validation into a [`Plan`]. Values are taken as strings and checked here,
//! so every bad input becomes one error line with exit code 2.

use std::fmt;

use crate::RealError;
use crate::layout::{Layout, PMD_SIZE};

/// Time the real fork() on this kernel.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct RealArgs {
    /// Folio layout: order0, pte-order9, pmd-order9, mthp-<size> (e.g. mthp-64k; any mTHP size the kernel offers) or untouched
    #[arg(long)]
    pub layout: String,
    /// Memory to populate, a multiple of 2 MiB (e.g. 1G, 512M, 64M)
    #[arg(long, default_value = "1G")]
    pub mem: String,
    /// Timed forks per run
    #[arg(long, default_value_t = 100)]
    pub iters: u32,
    /// Runs (each is one JSON record)
    #[arg(long, default_value_t = 8)]
    pub runs: u32,
    /// Untimed forks before each run
    #[arg(long, default_value_t = 1)]
    pub warmup: u32,
    /// steady: fork the same parent again (after the first fork its PTEs stay write-protected);
    /// fresh: before each fork, outside the timed section, write one byte per page so the parent's
    /// PTEs are writable and its folios exclusive again
    #[arg(long, default_value = "steady")]
    pub mode: String,
    /// Pin to this CPU (validated against the process's allowed CPUs)
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Scheduling: other (SCHED_OTHER; the child may preempt the parent inside fork(), such
    /// samples are flagged), batch (SCHED_BATCH, unprivileged: the child does not preempt its
    /// parent) or fifo (parent and children SCHED_FIFO, with a pause between iterations for RT
    /// throttling; falls back to batch when not permitted, recording why)
    #[arg(long, default_value = "other")]
    pub sched: String,
    /// SCHED_FIFO priority for --sched fifo
    #[arg(long, default_value_t = 10)]
    pub fifo_priority: i32,
    /// How --sched fifo pauses between iterations (the pause keeps RT time under the throttling
    /// budget): sleep (nanosleep; the CPU may idle, as in the reference method) or spin (drop to
    /// SCHED_OTHER and busy-wait, so the CPU never idles between forks)
    #[arg(long, default_value = "sleep")]
    pub pause: String,
    /// Skip the core-throughput probe (under 1 ms of integer work timed before each fork,
    /// outside the timed section, recorded as `extra.core_probe_ns`)
    #[arg(long)]
    pub no_core_probe: bool,
    /// Kernel label recorded as the variant's strategy (default: uname -r)
    #[arg(long)]
    pub label: Option<String>,
    /// Time even when the layout cannot be verified (records are marked unverified)
    #[arg(long)]
    pub allow_unverified: bool,
    /// Print one JSON run record per line
    #[arg(long)]
    pub json: bool,
    /// Verify without pagemap/kpageflags, as an unprivileged user would (for testing)
    #[arg(long, hide = true)]
    pub no_pagemap: bool,
}

impl Default for RealArgs {
    fn default() -> Self {
        RealArgs {
            layout: "order0".into(),
            mem: "1G".into(),
            iters: 100,
            runs: 8,
            warmup: 1,
            mode: "steady".into(),
            cpu: None,
            sched: "other".into(),
            fifo_priority: 10,
            pause: "sleep".into(),
            no_core_probe: false,
            label: None,
            allow_unverified: false,
            json: false,
            no_pagemap: false,
        }
    }
}

/// Which regime the forks measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Fork the same parent again and again. The first fork write-protects the parent's PTEs
    /// and clears PageAnonExclusive; later forks find them that way (the child has exited, so the
    /// folios are mapped once again, but their PTEs stay read-only).
    Steady,
    /// Before every fork, write one byte per page: each write faults on the read-only PTE and
    /// the kernel reuses the now-exclusive folio (no copy), so the parent's PTEs are writable and
    /// its pages AnonExclusive again, as after populating. Costs one fault per PTE (one per PMD
    /// for pmd-order9) outside the timed section; the time and the faults are recorded.
    Fresh,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Steady => "steady",
            Mode::Fresh => "fresh",
        })
    }
}

/// The requested scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedMode {
    Other,
    Batch,
    Fifo,
}

/// How the fifo loop pauses between iterations, outside the timed section. On the development
/// VM neither is better for run-to-run spread (README, "Precision"): `spin` removes the slow
/// first fork after an idle vCPU but makes the host's fast state more frequent and so the drift
/// between runs larger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// Leave SCHED_FIFO for SCHED_OTHER and busy-wait: RT time stays under budget, any runnable
    /// normal task gets the CPU, and the CPU never goes idle.
    Spin,
    /// Sleep: the CPU may go idle for the pause.
    Sleep,
}

impl fmt::Display for Pause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pause::Spin => "spin",
            Pause::Sleep => "sleep",
        })
    }
}

/// Validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub layout: Layout,
    pub mem: u64,
    pub iters: u32,
    pub runs: u32,
    pub warmup: u32,
    pub mode: Mode,
    pub cpu: Option<usize>,
    pub sched: SchedMode,
    pub fifo_priority: i32,
    pub pause: Pause,
    pub core_probe: bool,
    pub label: Option<String>,
    pub allow_unverified: bool,
    pub use_pagemap: bool,
}

/// Most timed forks per run (keeps sample vectors small).
pub const MAX_ITERS: u32 = 1_000_000;

/// Parse a size such as `1G`, `512M`, `64m`, `2MiB`, `4096` (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad size {s:?}: expected e.g. 1G, 512M or 64M"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("bad size {s:?}: unknown unit {unit:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("bad size {s:?}: too large"))
}

impl RealArgs {
    /// Validate everything that can be checked without touching the host.
    pub fn plan(&self) -> Result<Plan, RealError> {
        let bad = RealError::BadInput;
        let layout: Layout = self
            .layout
            .parse()
            .map_err(|e: crate::layout::LayoutParseError| bad(e.0))?;
        let mem = parse_size(&self.mem).map_err(|e| bad(format!("--mem: {e}")))?;
        if mem == 0 || mem % PMD_SIZE != 0 {
            return Err(bad(format!(
                "--mem must be a positive multiple of 2 MiB (got {} = {mem} bytes)",
                self.mem
            )));
        }
        if mem > 1 << 46 {
            return Err(bad(format!(
                "--mem {} is beyond any machine this runs on",
                self.mem
            )));
        }
        if self.iters == 0 || self.iters > MAX_ITERS {
            return Err(bad(format!("--iters must be between 1 and {MAX_ITERS}")));
        }
        if self.runs == 0 {
            return Err(bad("--runs must be at least 1".into()));
        }
        if self.warmup > MAX_ITERS {
            return Err(bad(format!("--warmup must be at most {MAX_ITERS}")));
        }
        let mode = match self.mode.as_str() {
            "steady" => Mode::Steady,
            "fresh" => Mode::Fresh,
            m => {
                return Err(bad(format!(
                    "unknown --mode {m:?}: expected steady or fresh"
                )));
            }
        };
        let sched = match self.sched.as_str() {
            "other" => SchedMode::Other,
            "batch" => SchedMode::Batch,
            "fifo" => SchedMode::Fifo,
            s => {
                return Err(bad(format!(
                    "unknown --sched {s:?}: expected other, batch or fifo"
                )));
            }
        };
        let pause = match self.pause.as_str() {
            "spin" => Pause::Spin,
            "sleep" => Pause::Sleep,
            p => {
                return Err(bad(format!(
                    "unknown --pause {p:?}: expected spin or sleep"
                )));
            }
        };
        if let Some(l) = &self.label
            && (l.is_empty() || l.contains(|c: char| c.is_control() || c == ':'))
        {
            return Err(bad(format!(
                "--label {l:?} must be non-empty, without ':' or control characters"
            )));
        }
        Ok(Plan {
            layout,
            mem,
            iters: self.iters,
            runs: self.runs,
            warmup: self.warmup,
            mode,
            cpu: self.cpu,
            sched,
            fifo_priority: self.fifo_priority,
            pause,
            core_probe: !self.no_core_probe,
            label: self.label.clone(),
            allow_unverified: self.allow_unverified,
            use_pagemap: !self.no_pagemap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        real: RealArgs,
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("2MiB").unwrap(), 2 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn clap_defaults_match_default_impl() {
        let cli = Cli::try_parse_from(["x", "--layout", "order0"]).unwrap();
        assert_eq!(cli.real, RealArgs::default());
        assert!(Cli::try_parse_from(["x"]).is_err(), "--layout is required");
    }

    #[test]
    fn plan_validates_every_field_with_one_line_errors() {
        let ok = RealArgs {
            layout: "pte-order9".into(),
            mem: "64M".into(),
            ..Default::default()
        };
        let p = ok.plan().unwrap();
        assert_eq!(p.layout, Layout::PteOrder9);
        assert_eq!(p.mem, 64 << 20);
        let cases: Vec<(RealArgs, &str)> = vec![
            (
                RealArgs {
                    layout: "order7".into(),
                    ..ok.clone()
                },
                "unknown layout",
            ),
            (
                RealArgs {
                    mem: "3M".into(),
                    ..ok.clone()
                },
                "multiple of 2 MiB",
            ),
            (
                RealArgs {
                    mem: "0".into(),
                    ..ok.clone()
                },
                "multiple of 2 MiB",
            ),
            (
                RealArgs {
                    mem: "lots".into(),
                    ..ok.clone()
                },
                "--mem: bad size",
            ),
            (
                RealArgs {
                    iters: 0,
                    ..ok.clone()
                },
                "--iters",
            ),
            (
                RealArgs {
                    runs: 0,
                    ..ok.clone()
                },
                "--runs",
            ),
            (
                RealArgs {
                    mode: "warm".into(),
                    ..ok.clone()
                },
                "unknown --mode",
            ),
            (
                RealArgs {
                    sched: "rr".into(),
                    ..ok.clone()
                },
                "unknown --sched",
            ),
            (
                RealArgs {
                    pause: "nap".into(),
                    ..ok.clone()
                },
                "unknown --pause",
            ),
            (
                RealArgs {
                    label: Some("a:b".into()),
                    ..ok.clone()
                },
                "--label",
            ),
        ];
        for (a, want) in cases {
            let e = a.plan().unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg:?} should contain {want:?}");
            assert!(!msg.contains('\n'));
        }
    }
}
