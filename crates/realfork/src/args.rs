//! Validation of `forkbench real`'s options ([`contract::RealOpts`], the runner's clap arguments)
//! into a [`Plan`]: what the types alone cannot say (sizes in whole PMDs, iteration bounds, the
//! SCHED_FIFO priority range).
//! Every bad input becomes one error line with exit code 2.

use contract::{Mode, Pause, RealLayout, RealOpts, Sched, Size};

use crate::RealError;
use crate::layout::PMD_SIZE;

/// Validated options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub layout: RealLayout,
    pub mem: u64,
    pub iters: u32,
    pub runs: u32,
    pub warmup: u32,
    /// `steady`: fork the same parent again; after the first fork its PTEs stay write-protected
    /// and its pages are no longer AnonExclusive. `fresh`: before each fork one byte per page is
    /// written (outside the timed section), so the parent's PTEs are writable and its folios
    /// exclusive again; the time and faults of that refresh are recorded.
    pub mode: Mode,
    pub cpu: Option<usize>,
    pub sched: Sched,
    pub fifo_priority: i32,
    /// How the fifo loop pauses between iterations, outside the timed section. On the
    /// development VM neither is better for run-to-run spread (docs, "Precision"): `spin` removes
    /// the slow first fork after an idle vCPU but makes the host's fast state more frequent and
    /// so the drift between runs larger.
    pub pause: Pause,
    pub core_probe: bool,
    /// Start each timed fork just after a timer interrupt (exact mode; `tick` module).
    pub tick_align: bool,
    pub allow_unverified: bool,
    pub use_pagemap: bool,
}

/// Most timed forks per run (keeps sample vectors small).
pub const MAX_ITERS: u32 = 1_000_000;

/// Validate everything that can be checked without touching the host.
pub fn plan(o: &RealOpts) -> Result<Plan, RealError> {
    let bad = RealError::BadInput;
    let mem = o.mem.bytes();
    if mem == 0 || !mem.is_multiple_of(PMD_SIZE) {
        return Err(bad(format!(
            "--mem must be a positive multiple of 2 MiB (got {} = {mem} bytes)",
            o.mem
        )));
    }
    if mem > 1 << 46 {
        return Err(bad(format!(
            "--mem {} is beyond any machine this runs on",
            Size(mem)
        )));
    }
    if o.iters == 0 || o.iters > MAX_ITERS {
        return Err(bad(format!("--iters must be between 1 and {MAX_ITERS}")));
    }
    if o.runs == 0 {
        return Err(bad("--runs must be at least 1".into()));
    }
    if o.warmup > MAX_ITERS {
        return Err(bad(format!("--warmup must be at most {MAX_ITERS}")));
    }
    // Checked whatever --sched says: a priority SCHED_FIFO refuses would otherwise only show
    // up as a silent fallback to SCHED_BATCH.
    let (lo, hi) = hostenv::sched::fifo_priority_range()?;
    if !(lo..=hi).contains(&o.fifo_priority) {
        return Err(bad(format!(
            "--fifo-priority must be between {lo} and {hi} (the SCHED_FIFO priorities), got {}",
            o.fifo_priority
        )));
    }
    Ok(Plan {
        layout: o.layout,
        mem,
        iters: o.iters,
        runs: o.runs,
        warmup: o.warmup,
        mode: o.mode,
        cpu: o.cpu,
        sched: o.sched,
        fifo_priority: o.fifo_priority,
        pause: o.pause,
        core_probe: !o.no_core_probe,
        tick_align: o.tick_align,
        allow_unverified: o.allow_unverified,
        use_pagemap: !o.no_pagemap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_validates_every_field_with_one_line_errors() {
        let ok = RealOpts {
            mem: Size(64 << 20),
            ..RealOpts::new(RealLayout::PteOrder9)
        };
        let p = plan(&ok).unwrap();
        assert_eq!(p.layout, RealLayout::PteOrder9);
        assert_eq!(p.mem, 64 << 20);
        assert_eq!(p.mode, Mode::Steady);
        assert!(p.core_probe && p.use_pagemap && !p.allow_unverified);
        let cases: Vec<(RealOpts, &str)> = vec![
            (
                RealOpts {
                    mem: Size(3 << 20),
                    ..ok.clone()
                },
                "multiple of 2 MiB (got 3M = 3145728 bytes)",
            ),
            (
                RealOpts {
                    mem: Size(0),
                    ..ok.clone()
                },
                "multiple of 2 MiB",
            ),
            (
                RealOpts {
                    mem: Size(1 << 50),
                    ..ok.clone()
                },
                "beyond any machine",
            ),
            (
                RealOpts {
                    iters: 0,
                    ..ok.clone()
                },
                "--iters",
            ),
            (
                RealOpts {
                    iters: MAX_ITERS + 1,
                    ..ok.clone()
                },
                "--iters",
            ),
            (
                RealOpts {
                    runs: 0,
                    ..ok.clone()
                },
                "--runs",
            ),
            (
                RealOpts {
                    warmup: MAX_ITERS + 1,
                    ..ok.clone()
                },
                "--warmup",
            ),
        ];
        for (a, want) in cases {
            let e = plan(&a).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg:?} should contain {want:?}");
            assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn fifo_priority_outside_the_sched_fifo_range_is_refused_up_front() {
        let ok = RealOpts {
            mem: Size(64 << 20),
            sched: Sched::Fifo,
            ..RealOpts::new(RealLayout::Order0)
        };
        for good in [1, 10, 99] {
            let p = plan(&RealOpts {
                fifo_priority: good,
                ..ok.clone()
            })
            .unwrap();
            assert_eq!(p.fifo_priority, good);
        }
        for (priority, sched) in [
            (0, Sched::Fifo),
            (100, Sched::Fifo),
            (-1, Sched::Fifo),
            (i32::MAX, Sched::Fifo),
            (0, Sched::Batch),
        ] {
            let e = plan(&RealOpts {
                fifo_priority: priority,
                sched,
                ..ok.clone()
            })
            .unwrap_err();
            assert_eq!(e.exit_code(), 2, "{e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "--fifo-priority must be between 1 and 99 (the SCHED_FIFO priorities), got {priority}"
                )
            );
        }
    }
}
