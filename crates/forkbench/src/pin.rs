//! CPU pinning through `core_affinity`, with the id validated against the process's allowed
//! CPU mask first: `core_affinity` aborts the whole process for ids >= 1024, and silently
//! returns false for CPUs outside the mask.

use crate::args::UsageError;

/// CPUs this thread may run on (read before pinning: after pinning it is just the one CPU).
pub fn allowed_cpus() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

/// Pin the calling thread (and so every thread and child it creates later) to `cpu`.
pub fn pin_to(cpu: usize) -> Result<(), UsageError> {
    let allowed = allowed_cpus();
    if !allowed.contains(&cpu) {
        return Err(UsageError(format!(
            "CPU {cpu} is not in this process's allowed CPU set {allowed:?}"
        )));
    }
    if core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "cannot pin to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_ids_outside_the_mask_without_aborting() {
        // 4096 would abort inside core_affinity; validation must refuse it first.
        let e = pin_to(4096).unwrap_err();
        assert!(e.0.contains("not in this process's allowed CPU set"), "{e}");
        assert!(!allowed_cpus().is_empty());
    }
}
