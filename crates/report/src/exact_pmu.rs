//! The cross-check of exact rows on guests with a PMU: under icount QEMU's emulated PMUv3
//! (arm64) counts the instructions it retires, so the guest's `instructions` counter and the
//! clock-derived count of the same forks measure one thing two ways. They need not be equal:
//! the clock counts every instruction between the two time stamps (the syscall's entry and
//! exit, a timer interrupt in the window, the child if it ran first), the counter only what
//! the forking task retired while it was enabled. A row whose two counts drift apart says the
//! clock picked up something the fork did not do.

use crate::cases::Case;
use crate::exact::{count, grid_aligned};

/// One row of the cross-check: (kernel, layout, clock per fork, counter per fork, runs).
struct Check {
    kernel: String,
    layout: String,
    clock: f64,
    pmu: f64,
    runs: usize,
}

/// Every exact row that carries the guest's `instructions` counter, in case order.
fn checks(cases: &[Case]) -> Vec<(String, Check)> {
    let mut out = Vec::new();
    for c in cases.iter().filter(|c| c.is_exact()) {
        for r in c.rows.iter().filter(|r| !r.pmu_check.is_empty()) {
            let n = r.pmu_check.len() as f64;
            let clock = r.pmu_check.iter().map(|(c, _)| c).sum::<f64>() / n;
            let pmu = r.pmu_check.iter().map(|(_, p)| p).sum::<f64>() / n;
            out.push((
                format!("{}, {} MiB {}", r.arch, r.mem_bytes >> 20, r.mode),
                Check {
                    kernel: r.name.clone(),
                    layout: r.layout.clone(),
                    clock,
                    pmu,
                    runs: r.pmu_check.len(),
                },
            ));
        }
    }
    out
}

/// `counter / clock - 1` in percent with two decimals and a sign.
fn difference(clock: f64, pmu: f64) -> String {
    format!("{:+.2}%", (pmu / clock - 1.0) * 100.0)
}

/// The cross-check table of every exact row whose guest counted instructions (empty when none
/// did: x86_64 guests under TCG have no PMU).
pub fn pmu_crosscheck(cases: &[Case]) -> String {
    let checks = checks(cases);
    if checks.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\ncross-check: the guest's PMU `instructions` counter per fork (QEMU's PMUv3 under icount)\n\
         against the clock's count (the mean of the same forks); the clock also counts the syscall\n\
         entry and exit and whatever ran in the window:\n\n",
    );
    let columns: Vec<String> = ["layout", "clock", "PMU", "PMU - clock", "runs"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut group = String::new();
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let flush = |group: &str, rows: &mut Vec<(String, Vec<String>)>, out: &mut String| {
        if !rows.is_empty() {
            out.push_str(&format!("{group}:\n\n"));
            out.push_str(&grid_aligned("kernel", &columns, rows, &[0]));
            out.push('\n');
            rows.clear();
        }
    };
    for (g, c) in checks {
        if g != group {
            flush(&group, &mut rows, &mut out);
            group = g;
        }
        rows.push((
            c.kernel,
            vec![
                c.layout,
                count(c.clock),
                count(c.pmu),
                difference(c.clock, c.pmu),
                c.runs.to_string(),
            ],
        ));
    }
    flush(&group, &mut rows, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_signed_percent() {
        assert_eq!(difference(1000.0, 1001.0), "+0.10%");
        assert_eq!(difference(65_300.0, 67_279.0), "+3.03%");
        assert_eq!(difference(2000.0, 1990.0), "-0.50%");
    }

    #[test]
    fn no_counter_no_table() {
        assert_eq!(pmu_crosscheck(&[]), "");
    }
}
