//! The core-throughput probe: a fixed amount of throughput-bound integer work, timed just before
//! every fork (outside the timed section), so each fork sample carries a reading of how much of
//! its core the measuring CPU had at that moment.
//!
//! Why: on a VM whose vCPU shares a physical core with work the guest cannot see (the host's SMT
//! sibling), the core's execution resources change for seconds at a time. Throughput-bound code
//! (independent operations, like fork's per-PTE loop) slows down when the sibling is busy.
//! Latency-bound code (one dependent chain) hardly does, so a clock-frequency change and an SMT
//! neighbour can be told apart (README, "Precision on this VM", has the measured figures). The
//! probe lets a reader see that a run's mean moved because its core did, instead of guessing.

use std::hint::black_box;

/// Rounds of the probe loop: about 0.8–0.9 ms on the development VM's vCPU.
const ROUNDS: u64 = 400_000;

/// Run the probe once and return its duration in ns.
pub fn probe_ns() -> u64 {
    let t0 = hostenv::monotonic_ns();
    let sum = work(black_box(ROUNDS));
    black_box(sum);
    hostenv::monotonic_ns().saturating_sub(t0)
}

/// Four independent add/xor chains: at most four operations in flight per step, no loads or
/// stores, so the time depends on the execution ports the thread gets, not on memory.
fn work(rounds: u64) -> u64 {
    let (mut a, mut b, mut c, mut d) = (1u64, 2u64, 3u64, 4u64);
    for k in 0..rounds {
        a = a.wrapping_add(b ^ k);
        b = b.wrapping_add(c ^ k);
        c = c.wrapping_add(d ^ k);
        d = d.wrapping_add(a ^ k);
        // Keep the compiler from folding or vectorising the chains away.
        if k & 0xffff == 0 {
            (a, b, c, d) = black_box((a, b, c, d));
        }
    }
    a ^ b ^ c ^ d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_work_is_done_and_depends_on_its_input() {
        assert_ne!(work(1000), work(1001));
        assert_eq!(work(1000), work(1000));
        assert!(probe_ns() > 0);
    }
}
