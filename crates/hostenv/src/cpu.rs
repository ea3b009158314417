//! CPU pinning that validates the id against the process's allowed CPU mask first (so a bad
//! `--cpu` is one clear error, not `EINVAL`), plus a guard that puts the previous mask back.

use std::collections::BTreeSet;
use std::fmt;

use crate::HostError;
use crate::sys;

/// A set of CPU ids, printed in the kernel's list format (`0-3,6`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuSet(BTreeSet<usize>);

impl CpuSet {
    /// A set from ids.
    pub fn from_ids(ids: impl IntoIterator<Item = usize>) -> Self {
        CpuSet(ids.into_iter().collect())
    }

    /// Parse the kernel's list format (`0-3,6`, as in `/sys/devices/system/cpu/online`).
    pub fn parse_list(s: &str) -> Result<Self, HostError> {
        let bad = || HostError::Invalid(format!("not a CPU list: {s:?}"));
        let mut set = BTreeSet::new();
        for part in s.trim().split(',').filter(|p| !p.is_empty()) {
            let (a, b) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let a: usize = a.trim().parse().map_err(|_| bad())?;
            let b: usize = b.trim().parse().map_err(|_| bad())?;
            if b < a || b - a > 1 << 20 {
                return Err(bad());
            }
            set.extend(a..=b);
        }
        Ok(CpuSet(set))
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.0.contains(&cpu)
    }

    /// The ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().copied()
    }

    /// Number of CPUs in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<usize> = self.ids().collect();
        let mut first = true;
        let mut i = 0;
        while i < ids.len() {
            let mut j = i;
            while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if j == i {
                write!(f, "{}", ids[i])?;
            } else {
                write!(f, "{}-{}", ids[i], ids[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// The calling thread's allowed CPUs (`sched_getaffinity`). Read it before pinning: afterwards it
/// is just the pinned CPU.
pub fn allowed_cpus() -> Result<CpuSet, HostError> {
    sys::sched_getaffinity()
        .map(CpuSet::from_ids)
        .map_err(|error| HostError::Sys {
            what: "sched_getaffinity",
            error,
        })
}

/// Check that `cpu` may be used: it must be in `allowed` (which implies `< CPU_SETSIZE`).
pub fn validate(cpu: usize, allowed: &CpuSet) -> Result<(), HostError> {
    if cpu >= sys::CPU_SETSIZE || !allowed.contains(cpu) {
        return Err(HostError::CpuNotAllowed {
            cpu,
            allowed: allowed.to_string(),
        });
    }
    Ok(())
}

/// The calling thread pinned to one CPU; dropping it restores the previous mask.
#[derive(Debug)]
pub struct Pinned {
    cpu: usize,
    previous: CpuSet,
}

impl Pinned {
    /// The CPU pinned to.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// The mask before pinning.
    pub fn previous(&self) -> &CpuSet {
        &self.previous
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let ids: Vec<usize> = self.previous.ids().collect();
        // Nothing sensible to do if this fails: the thread stays pinned.
        let _ = sys::sched_setaffinity(&ids);
    }
}

/// Pin the calling thread to `cpu` after validating it against the current allowed mask, then
/// check that the mask really is `{cpu}`.
pub fn pin_current_thread(cpu: usize) -> Result<Pinned, HostError> {
    let previous = allowed_cpus()?;
    validate(cpu, &previous)?;
    sys::sched_setaffinity(&[cpu]).map_err(|error| HostError::Pin { cpu, error })?;
    let pinned = Pinned { cpu, previous };
    let now = allowed_cpus()?;
    if now != CpuSet::from_ids([cpu]) {
        return Err(HostError::Pin {
            cpu,
            error: std::io::Error::other(format!("mask is {now} after pinning")),
        });
    }
    Ok(pinned)
}

/// The CPU the calling thread runs on now.
pub fn current_cpu() -> Option<usize> {
    sys::sched_getcpu()
}

/// Online CPUs (`/sys/devices/system/cpu/online`).
pub fn online_cpus() -> Result<CpuSet, HostError> {
    let s = crate::sysfs::read_trimmed("/sys/devices/system/cpu/online")?;
    CpuSet::parse_list(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_format_round_trips() {
        for s in ["0", "0-1", "0-3,6", "1,3,5-7", ""] {
            assert_eq!(CpuSet::parse_list(s).unwrap().to_string(), s);
        }
        assert_eq!(CpuSet::parse_list("0-1\n").unwrap().len(), 2);
        assert!(CpuSet::parse_list("3-1").is_err());
        assert!(CpuSet::parse_list("x").is_err());
    }

    #[test]
    fn validate_rejects_ids_outside_the_mask_and_beyond_cpu_setsize() {
        let allowed = CpuSet::from_ids([0, 1]);
        assert!(validate(1, &allowed).is_ok());
        for bad in [2, 7, 1023, 1024, 5000, usize::MAX] {
            let e = validate(bad, &allowed).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("CPU {bad} is not in this process's allowed CPU set (0-1)")
            );
        }
    }

    #[test]
    fn pinning_a_huge_id_is_an_error_not_an_abort() {
        let before = allowed_cpus().unwrap();
        let e = pin_current_thread(1024).unwrap_err();
        assert!(matches!(e, HostError::CpuNotAllowed { cpu: 1024, .. }));
        let e = pin_current_thread(usize::MAX).unwrap_err();
        assert!(matches!(e, HostError::CpuNotAllowed { .. }));
        assert_eq!(allowed_cpus().unwrap(), before);
    }

    #[test]
    fn pin_and_restore() {
        let before = allowed_cpus().unwrap();
        let target = before.ids().last().unwrap();
        {
            let p = pin_current_thread(target).unwrap();
            assert_eq!(p.cpu(), target);
            assert_eq!(allowed_cpus().unwrap(), CpuSet::from_ids([target]));
            assert_eq!(current_cpu(), Some(target));
        }
        assert_eq!(allowed_cpus().unwrap(), before);
    }
}
