//! Synthetic result files of exact (QEMU icount) guest runs, for the tests of this crate and of
//! xtask (feature `fixtures`). Instruction counts are made up but shaped like real ones: each
//! layout's count is the kernel's `untouched` count plus a cost per PTE (per PMD for
//! `pmd-order9`), every fork of a run reads the same count but one, which catches a timer tick.

use results::{
    Accel, Arch, CheckSummary, Clock, GuestBoot, Mode, RealContext, RealExtra, RealLayout,
    RealVariant, ResultFile, RunRecord, Sched, Variant,
};

/// Memory of every fixture run: 256 MiB.
pub const MEM: u64 = 256 << 20;
/// Guest page size.
pub const PAGE: u64 = 4096;
/// Forks per run.
pub const FORKS: usize = 20;

/// One kernel of an exact fixture: its row label, instructions of `untouched`, per PTE and per
/// PMD, and a factor per run (1.0 = every run reads the same count).
#[derive(Debug, Clone)]
pub struct ExactKernel {
    pub label: String,
    pub untouched: f64,
    pub per_pte: f64,
    pub per_pmd: f64,
    pub run_factors: Vec<f64>,
}

impl ExactKernel {
    /// A kernel whose runs all agree exactly.
    pub fn steady(label: &str, untouched: f64, per_pte: f64, per_pmd: f64, runs: usize) -> Self {
        ExactKernel {
            label: label.into(),
            untouched,
            per_pte,
            per_pmd,
            run_factors: vec![1.0; runs],
        }
    }

    /// The count one fork of `layout` takes on this kernel (before run factors).
    pub fn count(&self, layout: &str) -> f64 {
        let ptes = (MEM / PAGE) as f64;
        let pmds = (MEM / (PAGE * PAGE / 8)) as f64;
        self.untouched
            + match layout {
                "untouched" => 0.0,
                "pmd-order9" => self.per_pmd * pmds,
                "mix-pmd" => self.per_pte * ptes / 2.0 + self.per_pmd * pmds / 2.0,
                _ => self.per_pte * ptes,
            }
    }
}

fn context(label: &str) -> RealContext {
    RealContext {
        env: Default::default(),
        layout: RealLayout::Order0,
        mem_bytes: MEM,
        iters: FORKS as u32,
        runs: 1,
        pinning: Default::default(),
        timer: Default::default(),
        populate: Default::default(),
        pre: CheckSummary {
            level: "full".into(),
            ok: true,
            summary: String::new(),
            failure: None,
        },
        pre_report: serde_json::Value::Null,
        guest: Some(GuestBoot {
            accel: Accel::Tcg,
            accel_reason: "asked for".into(),
            clock: Clock::Icount,
            qemu: "QEMU emulator version 7.2".into(),
            image: label.into(),
            guest_arch: "x86_64".into(),
            vcpus: 1,
            guest_mem_bytes: 640 << 20,
            boot_ms: 1000,
            page_size: PAGE,
            config: Vec::new(),
        }),
        lab: None,
    }
}

/// A file of exact runs: every kernel x every layout x its runs, interleaved by run; the last
/// fork of every run reads 5% more (a tick: the run's median ignores it).
pub fn exact_file(kernels: &[ExactKernel], layouts: &[&str], clock: Clock) -> ResultFile {
    let mut f = ResultFile::new("ci", "exact", "2026-01-01T00:00:00Z", Default::default());
    f.git_rev = "r".into();
    f.contexts = kernels.iter().map(|k| context(&k.label)).collect();
    f.config = serde_json::json!({
        "kernels": kernels.iter().map(|k| k.label.clone()).collect::<Vec<_>>(),
    });
    let runs = kernels
        .iter()
        .map(|k| k.run_factors.len())
        .max()
        .unwrap_or(0);
    for run in 0..runs {
        for (ki, k) in kernels.iter().enumerate() {
            let Some(factor) = k.run_factors.get(run) else {
                continue;
            };
            for layout in layouts {
                let count = (k.count(layout) * factor).round() as u64;
                let mut samples = vec![count; FORKS];
                samples[FORKS - 1] = count + count / 20;
                f.runs.push(RunRecord {
                    variant: Variant::Real(RealVariant {
                        arch: Arch::X86_64,
                        kernel: k.label.clone(),
                        accel: Accel::Tcg,
                        clock,
                        layout: layout.parse().expect("a layout"),
                        mem_bytes: MEM,
                        mode: Mode::Steady,
                        sched: Sched::Other,
                        unverified: false,
                    }),
                    run_index: run as u32,
                    warmup: 2,
                    samples_ns: samples,
                    cpu: Some(0),
                    ops: Default::default(),
                    sim: None,
                    real: Some(Box::new(RealExtra {
                        context: ki as u32,
                        ..Default::default()
                    })),
                    host_load: None,
                });
            }
        }
    }
    f
}

/// Every real layout a guest of these kernels can run (x86_64, 4K pages): the widest table.
pub const EVERY_LAYOUT: [&str; 13] = [
    "order0",
    "mthp-16k",
    "mthp-32k",
    "mthp-64k",
    "mthp-128k",
    "mthp-256k",
    "mthp-512k",
    "mthp-1024k",
    "pte-order9",
    "pmd-order9",
    "mix-64k",
    "mix-pmd",
    "untouched",
];

/// Debian's 6.1 and 6.12 cloud kernels as they name themselves: the longest realistic rows.
pub const DEBIAN_61: &str = "6.1.0-50-cloud-amd64";
pub const DEBIAN_612: &str = "6.12.117+deb13-cloud-amd64";
