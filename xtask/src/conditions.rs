//! What each side of a comparison ran under, read from its result files, so `compare` and
//! `table` compare like with like: the machine, the sched policy real fork really ran under
//! (`RealVariant::sched`, after any fallback), the populated memory (`mem_bytes` of the
//! variants), the CPU model (the file's `HostEnv` and each real-fork context's own capture,
//! which is the guest's for guest runs), the privileges of the real-fork runner (its
//! context's `euid`: without root, fifo falls back and mTHP layouts fail) and where the kernel
//! ran (`accel`). Schema-1 files are upgraded on load and read the same way; a fact a side
//! does not record (no real-fork runs, so no sched or privileges; no CPU model captured) is
//! unknown there and not compared.

use std::collections::BTreeSet;

use results::{ResultFile, RunRecord, Variant};

/// The facts of one side; each a set, since a side may hold several files.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Conditions {
    pub machine: BTreeSet<String>,
    pub sched: BTreeSet<String>,
    pub mem: BTreeSet<u64>,
    pub cpu_model: BTreeSet<String>,
    pub privileges: BTreeSet<String>,
    pub accel: BTreeSet<String>,
}

/// Privileges as a table says them.
fn privileges(euid: u32) -> String {
    if euid == 0 {
        "root".into()
    } else {
        format!("not root (euid {euid})")
    }
}

/// The facts of `files`' runs that `keep` selects (e.g. only the real-fork runs of a kernel
/// comparison).
pub fn of(files: &[ResultFile], keep: impl Fn(&RunRecord) -> bool) -> Conditions {
    let mut c = Conditions::default();
    for f in files {
        let runs: Vec<&RunRecord> = f.runs.iter().filter(|r| keep(r)).collect();
        if runs.is_empty() {
            continue;
        }
        c.machine.insert(f.machine.clone());
        // The file's capture is the host's: what the model ran on, and the host kernel's CPU.
        let host_runs = runs.iter().any(|r| match &r.variant {
            Variant::Sim(_) => true,
            Variant::Real(v) => v.accel == results::Accel::Host,
        });
        if host_runs && let Some(m) = &f.env.cpu_model {
            c.cpu_model.insert(m.trim().to_string());
        }
        for r in runs {
            c.mem.insert(r.variant.mem_bytes());
            if let Variant::Real(v) = &r.variant {
                c.sched.insert(v.sched.to_string());
                c.accel.insert(v.accel.to_string());
                if let Some(ctx) = f.context_of(r) {
                    c.privileges.insert(privileges(ctx.env.euid));
                    if let Some(m) = &ctx.env.cpu_model {
                        c.cpu_model.insert(m.trim().to_string());
                    }
                }
            }
        }
    }
    c
}

/// One field in which the sides differ, with each side's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub field: &'static str,
    pub a: String,
    pub b: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} vs {})", self.field, self.a, self.b)
    }
}

fn mib(b: u64) -> String {
    if b >= 1 << 30 && b.is_multiple_of(1 << 30) {
        format!("{} GiB", b >> 30)
    } else {
        format!("{} MiB", b >> 20)
    }
}

/// The fields in which `a` and `b` differ, in a fixed order. A field is compared only when
/// both sides know it.
pub fn mismatches(a: &Conditions, b: &Conditions) -> Vec<Mismatch> {
    fn join(s: &BTreeSet<String>) -> String {
        s.iter().cloned().collect::<Vec<_>>().join(" + ")
    }
    let mut out = Vec::new();
    let mut check = |field: &'static str, x: &BTreeSet<String>, y: &BTreeSet<String>| {
        if !x.is_empty() && !y.is_empty() && x != y {
            out.push(Mismatch {
                field,
                a: join(x),
                b: join(y),
            });
        }
    };
    let mem = |c: &Conditions| c.mem.iter().map(|&m| mib(m)).collect::<BTreeSet<_>>();
    check("machine", &a.machine, &b.machine);
    check("sched", &a.sched, &b.sched);
    check("mem", &mem(a), &mem(b));
    check("cpu model", &a.cpu_model, &b.cpu_model);
    check("privileges", &a.privileges, &b.privileges);
    check("accel", &a.accel, &b.accel);
    out
}

/// `sched (fifo vs batch), cpu model (X vs Y)`.
pub fn list(m: &[Mismatch]) -> String {
    m.iter()
        .map(Mismatch::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The refusal: one line naming every differing field and both values.
pub fn refusal(a: &str, b: &str, m: &[Mismatch], verb: &str) -> String {
    format!(
        "{a} and {b} differ in {}: pass --allow-mixed to {verb} anyway",
        list(m)
    )
}

/// The line a table allowed to mix prints above itself.
pub fn banner(a: &str, b: &str, m: &[Mismatch]) -> String {
    format!(
        "MIXED (--allow-mixed): {a} and {b} differ in {}; rows were matched regardless",
        list(m)
    )
}

/// Every label of a selection (in order) whose runs differ from the first label's, with the
/// fields: what `table` refuses to merge into one table without `--allow-mixed`.
pub fn mixed_labels(files: &[ResultFile]) -> Vec<(String, String, Vec<Mismatch>)> {
    let mut labels: Vec<&str> = Vec::new();
    for f in files {
        if !labels.contains(&f.label.as_str()) {
            labels.push(&f.label);
        }
    }
    let side =
        |l: &str| -> Vec<ResultFile> { files.iter().filter(|f| f.label == l).cloned().collect() };
    let Some((first, rest)) = labels.split_first() else {
        return Vec::new();
    };
    let base = of(&side(first), |_| true);
    rest.iter()
        .filter_map(|l| {
            let m = mismatches(&base, &of(&side(l), |_| true));
            (!m.is_empty()).then(|| (first.to_string(), l.to_string(), m))
        })
        .collect()
}

/// Is `field` among the mismatches?
pub fn mixed(m: &[Mismatch], field: &str) -> bool {
    m.iter().any(|x| x.field == field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(sched: &str, mem: u64, cpu: &str, euid: &str) -> Conditions {
        let set = |s: &str| {
            if s.is_empty() {
                BTreeSet::new()
            } else {
                BTreeSet::from([s.to_string()])
            }
        };
        Conditions {
            machine: set("m"),
            sched: set(sched),
            mem: BTreeSet::from([mem]),
            cpu_model: set(cpu),
            privileges: set(euid),
            accel: set("host"),
        }
    }

    #[test]
    fn each_differing_field_is_named_with_both_values() {
        let a = facts("fifo", 64 << 20, "X", "root");
        assert!(mismatches(&a, &a).is_empty());
        let b = facts("batch", 1 << 30, "Y", "not root (euid 1000)");
        let m = mismatches(&a, &b);
        assert_eq!(
            refusal("A", "B", &m, "compare"),
            "A and B differ in sched (fifo vs batch), mem (64 MiB vs 1 GiB), cpu model (X vs Y), \
             privileges (root vs not root (euid 1000)): pass --allow-mixed to compare anyway"
        );
        // Unknown on one side (a model-only file has no sched): not compared.
        let c = facts("", 64 << 20, "", "");
        assert!(mismatches(&a, &c).is_empty());
    }
}
