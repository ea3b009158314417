//! Exact mode: start each timed fork just after a timer interrupt.
//!
//! Under QEMU `-icount shift=0,sleep=off` the guest's CLOCK_MONOTONIC advances exactly one ns
//! per executed guest instruction, so a fork sample counts the instructions run between its two
//! clock reads: the fork's own, and those of any interrupt that lands in the window. The
//! periodic tick is the one that matters: it fires every 1/HZ s of guest time (4 M instructions
//! at HZ=250), so a fork of 2 M instructions caught it in about half of its samples and the
//! median of a run flipped between "with" and "without" a tick. Started right after a tick, a
//! fork shorter than the tick period never contains one, and a longer one always contains the
//! same number at the same places.
//!
//! [`after_interrupt`] spins on the clock until two consecutive reads are further apart than a
//! clock read can be: something (the tick) ran in between. It is meant for exact mode only: on
//! a wall clock, preemption and frequency changes make gaps too, and the spin adds nothing.

/// Consecutive clock reads further apart than this mean an interrupt ran in between: a vDSO
/// read costs ~80 guest instructions under icount, a tick's interrupt thousands.
pub const GAP_NS: u64 = 1_000;

/// The longest spin: 50 ms of guest time is five tick periods even at HZ=100.
pub const LIMIT_NS: u64 = 50_000_000;

/// The least distance between two consecutive clock reads over `reads` reads: what one read
/// costs. A vDSO read is ~80 guest instructions; a kernel whose clocksource has no vDSO path
/// (a tinyconfig build's) makes every read a system call of a thousand or more, and a fixed
/// gap would then see an "interrupt" between any two reads.
pub fn read_cost(reads: usize) -> u64 {
    let mut prev = hostenv::monotonic_ns();
    let mut least = u64::MAX;
    for _ in 0..reads {
        let now = hostenv::monotonic_ns();
        least = least.min(now.saturating_sub(prev));
        prev = now;
    }
    if least == u64::MAX { 0 } else { least }
}

/// The gap that means an interrupt ran, for a clock whose reads cost `read_ns`: [`GAP_NS`]
/// beyond the read's own cost.
pub fn gap_for(read_ns: u64) -> u64 {
    read_ns.saturating_add(GAP_NS)
}

/// Spin until an interrupt has run (see the module docs); the ns spun, or `None` when none came
/// within `limit_ns` (a tickless CPU): the fork then starts anyway.
pub fn after_interrupt(gap_ns: u64, limit_ns: u64) -> Option<u64> {
    let start = hostenv::monotonic_ns();
    let mut prev = start;
    loop {
        let now = hostenv::monotonic_ns();
        if now.saturating_sub(prev) > gap_ns {
            return Some(now.saturating_sub(start));
        }
        if now.saturating_sub(start) > limit_ns {
            return None;
        }
        prev = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_sits_above_what_a_read_costs() {
        assert_eq!(gap_for(80), 1080);
        assert_eq!(gap_for(1500), 2500);
        assert_eq!(gap_for(u64::MAX), u64::MAX);
    }

    #[test]
    fn a_read_costs_less_than_a_spin_to_the_next_interrupt() {
        // On any clock two back-to-back reads are closer than the 50 ms limit.
        let c = read_cost(100);
        assert!(c < LIMIT_NS, "{c}");
    }
}
