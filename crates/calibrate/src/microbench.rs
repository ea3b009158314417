//! A userspace microbenchmark of the raw page-table operations the model counts but that the
//! layout fit cannot separate (their counts move together with the per-page counts): a PTE load
//! (`READ_ONCE`), a PTE store (`WRITE_ONCE`) and a PTE compare-and-swap (x86 `try_cmpxchg` in
//! `ptep_set_wrprotect`). Each walks a page-table-sized array sequentially, like the copy loop.
//! The costs it returns are *fixed* in the fit, never fitted. Timing only; no test asserts on it.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Per-operation costs in nanoseconds (best pass of several).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PteOpCosts {
    pub pte_read_ns: f64,
    pub pte_write_ns: f64,
    pub pte_atomic_ns: f64,
    /// Entries per pass (a 1 GiB model's parent tables: 262144 × 8 bytes = 2 MiB).
    pub entries: usize,
    pub passes: usize,
}

/// Time `passes` sequential passes over `entries` PTE-sized atomics for each operation and keep
/// the fastest pass (the least disturbed one).
pub fn measure_pte_ops(entries: usize, passes: usize) -> PteOpCosts {
    let table: Vec<AtomicU64> = (0..entries as u64)
        .map(|i| AtomicU64::new((i << 12) | 0x67))
        .collect();
    let best = |f: &dyn Fn() -> u64| -> f64 {
        let mut best = f64::INFINITY;
        for _ in 0..passes.max(1) {
            let t = Instant::now();
            black_box(f());
            let ns = t.elapsed().as_nanos() as f64 / entries.max(1) as f64;
            best = best.min(ns);
        }
        best
    };
    let read = || {
        let mut acc = 0u64;
        for e in &table {
            acc = acc.wrapping_add(black_box(e.load(Ordering::Relaxed)));
        }
        acc
    };
    let write = || {
        for (i, e) in table.iter().enumerate() {
            e.store(black_box((i as u64) << 12 | 0x65), Ordering::Relaxed);
        }
        0
    };
    let cas = || {
        let mut n = 0u64;
        for e in &table {
            let old = e.load(Ordering::Relaxed);
            if e.compare_exchange(old, old & !2, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                n += 1;
            }
        }
        n
    };
    let pte_read_ns = best(&read);
    let pte_write_ns = best(&write);
    // The CAS pass includes its own load; subtract the load so the three costs add up the way
    // the counters do (a wrprotect counts one pte_read and one pte_atomic).
    let pte_atomic_ns = (best(&cas) - pte_read_ns).max(0.0);
    PteOpCosts {
        pte_read_ns,
        pte_write_ns,
        pte_atomic_ns,
        entries,
        passes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_finite_non_negative_costs() {
        let c = measure_pte_ops(1024, 2);
        for v in [c.pte_read_ns, c.pte_write_ns, c.pte_atomic_ns] {
            assert!(v.is_finite() && v >= 0.0, "{c:?}");
        }
        assert_eq!((c.entries, c.passes), (1024, 2));
    }
}
