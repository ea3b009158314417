//! What `bench` can and cannot do on this host, printed before the first run (and by
//! `--dry-run`): one line per fact from [`hostenv::prereq::Prereqs`], each with what it changes
//! for this plan (root, THP mode, the mTHP sizes the plan uses and the others, PMU,
//! `perf_event_paranoid`, SMT, turbo/boost).

use contract::Sched;
use hostenv::prereq::Prereqs;

use crate::plan::{Call, Plan};

/// The PMD size in KiB (4 KiB pages: order 9).
const PMD_KB: u64 = 2048;

/// What of the plan depends on the host's facts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlanNeeds {
    /// Real-fork calls on the host's kernel ask for SCHED_FIFO.
    pub fifo: bool,
    /// Host real-fork calls exist at all.
    pub real: bool,
    /// mTHP sizes (KiB) of the plan's host layouts, ascending.
    pub mthp_kb: Vec<u64>,
    /// pte-order9 or pmd-order9 on the host.
    pub pmd_thp: bool,
}

impl PlanNeeds {
    pub fn of(plan: &Plan) -> Self {
        let mut n = PlanNeeds::default();
        for g in &plan.groups {
            if let Call::Real {
                layout,
                sched,
                kernel: None,
                ..
            } = g
            {
                n.real = true;
                n.fifo |= *sched == Sched::Fifo;
                // mix-64k switches the 64K knob like mthp-64k; mix-pmd needs PMD THP.
                if let Some(kb) = layout.mthp_knob_kb()
                    && !n.mthp_kb.contains(&kb)
                {
                    n.mthp_kb.push(kb);
                }
                n.pmd_thp |= layout.needs_pmd_thp();
            }
        }
        n.mthp_kb.sort_unstable();
        n
    }
}

/// A size in KiB as `64K`, `2M`.
fn kb_text(kb: u64) -> String {
    if kb >= 1024 && kb.is_multiple_of(1024) {
        format!("{}M", kb / 1024)
    } else {
        format!("{kb}K")
    }
}

/// The lines, each `fact: value (what it changes)`.
pub fn lines(p: &Prereqs, needs: &PlanNeeds) -> Vec<String> {
    let mut out = Vec::new();
    let root = p.is_root();
    out.push(if root {
        "root: yes (sched fifo, mTHP layouts and sysfs knob switches all possible)".to_string()
    } else {
        format!(
            "root: no, uid {} (sched fifo falls back to batch; mTHP layouts cannot be set up \
             and are skipped; sysfs knobs cannot be switched; results differ from root runs)",
            p.euid
        )
    });
    let thp = p.thp.as_deref();
    out.push(match thp {
        None => "THP: absent (pte-order9, pmd-order9 and mTHP layouts are skipped)".into(),
        Some("never") if needs.pmd_thp => {
            "THP: never (pte-order9 and pmd-order9 are skipped: they need always or madvise)".into()
        }
        Some(m @ ("always" | "madvise")) => {
            format!("THP: {m} (order-9 layouts madvise their region; order0 opts out)")
        }
        Some(m) => format!("THP: {m}"),
    });
    for &kb in &needs.mthp_kb {
        let size = kb_text(kb);
        out.push(match p.size_mode(kb) {
            None => format!("mTHP {size}: not offered (mthp-{kb}k layouts are skipped)"),
            Some(m) if root => format!(
                "mTHP {size}: {m} (mthp-{kb}k layouts switch it to always for their runs and \
                 restore it)"
            ),
            Some("always") => format!(
                "mTHP {size}: always (mthp-{kb}k runs as is; larger sizes set to always would win \
                 the fault and only root can switch them off)"
            ),
            Some(m) => format!(
                "mTHP {size}: {m} (mthp-{kb}k layouts need root to switch it to always: skipped)"
            ),
        });
    }
    // The other mTHP sizes, runs of one mode folded; a planned size breaks a run.
    let mut runs: Vec<(u64, u64, &str)> = Vec::new();
    let mut broken = true;
    for (kb, m) in p.thp_sizes.iter().filter(|(kb, _)| *kb < PMD_KB) {
        if needs.mthp_kb.contains(kb) {
            broken = true;
            continue;
        }
        match runs.last_mut() {
            Some(last) if !broken && last.2 == m => last.1 = *kb,
            _ => runs.push((*kb, *kb, m)),
        }
        broken = false;
    }
    if !runs.is_empty() {
        let text: Vec<String> = runs
            .iter()
            .map(|&(a, b, m)| match a == b {
                true => format!("{} {m}", kb_text(a)),
                false => format!("{}-{} {m}", kb_text(a), kb_text(b)),
            })
            .collect();
        out.push(format!(
            "mTHP other sizes: {} (not in this plan)",
            text.join(", ")
        ));
    }
    out.push(if p.core_pmus.is_empty() {
        "PMU: none (no hardware counters: cycles/instructions are not recorded)".to_string()
    } else {
        format!(
            "PMU: {} (hardware counters available)",
            p.core_pmus.join(", ")
        )
    });
    out.push(match p.perf_event_paranoid {
        None => "perf_event_paranoid: unreadable (counters may be refused)".into(),
        Some(n) if root => format!("perf_event_paranoid: {n} (root: no limit on counters)"),
        Some(n) if n <= 1 => format!("perf_event_paranoid: {n} (counters open unprivileged)"),
        Some(n) => format!(
            "perf_event_paranoid: {n} (unprivileged: kernel-side counts refused; set it to 1 or \
             run as root)"
        ),
    });
    let smt = match (p.smt_control.as_deref(), p.smt_active) {
        (None, _) => None,
        (Some(c @ ("notsupported" | "notimplemented")), _) => Some(format!(
            "SMT: {c} (no sibling thread shares the pinned CPU)"
        )),
        (Some(c), Some(true)) => Some(format!(
            "SMT: {c}, active (a sibling thread shares the pinned core: keep it idle)"
        )),
        (Some(c), _) => Some(format!("SMT: {c}, inactive (no sibling thread)")),
    };
    out.extend(smt);
    out.push(match p.boost {
        None => "turbo/boost: not visible in sysfs (the clock may still vary)".into(),
        Some(b) if b.on => format!(
            "turbo/boost: on ({}; clock varies with load and heat: expect more drift)",
            b.source
        ),
        Some(b) => format!("turbo/boost: off ({}; steadier clock)", b.source),
    });
    if !needs.real {
        // The model runs in userspace: only root (nice) and SMT/boost matter to it.
        out.retain(|l| !l.starts_with("THP") && !l.starts_with("mTHP"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(euid: u32) -> Prereqs {
        Prereqs {
            euid,
            thp: Some("madvise".into()),
            thp_sizes: [16, 32, 64, 128, 256, 512, 1024]
                .into_iter()
                .map(|kb| (kb, "never".to_string()))
                .chain([(2048, "inherit".to_string())])
                .collect(),
            core_pmus: Vec::new(),
            perf_event_paranoid: Some(2),
            smt_control: Some("notimplemented".into()),
            smt_active: Some(false),
            boost: None,
        }
    }

    fn local_needs() -> PlanNeeds {
        let p = crate::profile::load(None, &crate::util::project_root()).unwrap();
        PlanNeeds::of(&crate::plan::plan(&p, true, 1))
    }

    /// mix-64k needs the 64K knob like mthp-64k, mix-pmd PMD THP like pmd-order9.
    #[test]
    fn mixed_layouts_need_the_knobs_of_their_halves() {
        use contract::RealLayout;
        let mut p = crate::profile::load(None, &crate::util::project_root()).unwrap();
        let r = p.real.as_mut().unwrap();
        r.layouts = vec![RealLayout::Mix64k];
        let needs = PlanNeeds::of(&crate::plan::plan(&p, true, 1));
        assert_eq!((needs.mthp_kb.clone(), needs.pmd_thp), (vec![64], false));
        p.real.as_mut().unwrap().layouts = vec![RealLayout::MixPmd];
        let needs = PlanNeeds::of(&crate::plan::plan(&p, true, 1));
        assert_eq!((needs.mthp_kb.clone(), needs.pmd_thp), (vec![], true));
    }

    /// The development VM as root, with the local profile: the brief's example line among
    /// them, one line per fact, each with its consequence, none wider than 100 columns.
    #[test]
    fn the_vm_as_root() {
        let needs = local_needs();
        assert_eq!(
            needs,
            PlanNeeds {
                fifo: true,
                real: true,
                mthp_kb: vec![64],
                pmd_thp: true
            }
        );
        let l = lines(&vm(0), &needs);
        let want = [
            "root: yes (sched fifo, mTHP layouts and sysfs knob switches all possible)",
            "THP: madvise (order-9 layouts madvise their region; order0 opts out)",
            "mTHP 64K: never (mthp-64k layouts switch it to always for their runs and restore it)",
            "mTHP other sizes: 16K-32K never, 128K-1M never (not in this plan)",
            "PMU: none (no hardware counters: cycles/instructions are not recorded)",
            "perf_event_paranoid: 2 (root: no limit on counters)",
            "SMT: notimplemented (no sibling thread shares the pinned CPU)",
            "turbo/boost: not visible in sysfs (the clock may still vary)",
        ];
        assert_eq!(l, want);
        for line in &l {
            assert!(line.len() + "  ".len() <= 100, "{line}");
        }
    }

    /// Without root: fifo falls back, mTHP layouts are skipped, paranoid limits counters.
    #[test]
    fn without_root_it_says_what_is_lost() {
        let mut p = vm(1000);
        p.thp_sizes[2].1 = "always".into();
        p.core_pmus = vec!["cpu".into()];
        p.smt_control = Some("on".into());
        p.smt_active = Some(true);
        p.boost = Some(hostenv::prereq::Boost {
            on: true,
            source: "cpufreq/boost",
        });
        let l = lines(&p, &local_needs()).join("\n");
        for want in [
            "root: no, uid 1000 (sched fifo falls back to batch; mTHP layouts cannot be set up",
            "mTHP 64K: always (mthp-64k runs as is;",
            "PMU: cpu (hardware counters available)",
            "perf_event_paranoid: 2 (unprivileged: kernel-side counts refused",
            "SMT: on, active (a sibling thread shares the pinned core",
            "turbo/boost: on (cpufreq/boost;",
        ] {
            assert!(l.contains(want), "{want}\n{l}");
        }
        p.thp_sizes[2].1 = "never".into();
        p.thp = Some("never".into());
        let l = lines(&p, &local_needs()).join("\n");
        assert!(
            l.contains("mTHP 64K: never (mthp-64k layouts need root"),
            "{l}"
        );
        assert!(
            l.contains("THP: never (pte-order9 and pmd-order9 are skipped"),
            "{l}"
        );
        p.thp_sizes.clear();
        let l = lines(&p, &local_needs()).join("\n");
        assert!(
            l.contains("mTHP 64K: not offered (mthp-64k layouts are skipped)"),
            "{l}"
        );
    }

    /// Prerequisite lines from fixture sysfs/proc text, end to end.
    #[test]
    fn lines_from_fixture_files() {
        let d = tempfile::tempdir().unwrap();
        let put = |rel: &str, text: &str| {
            let p = d.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never\n",
        );
        put(
            "sys/kernel/mm/transparent_hugepage/hugepages-64kB/enabled",
            "always inherit [madvise] never\n",
        );
        put("proc/sys/kernel/perf_event_paranoid", "-1\n");
        put("sys/devices/system/cpu/cpufreq/boost", "0\n");
        let p = Prereqs::read(d.path(), 0);
        let l = lines(&p, &local_needs());
        assert!(
            l.contains(
                &"THP: always (order-9 layouts madvise their region; order0 opts out)".into()
            ),
            "{l:?}"
        );
        assert!(
            l.iter()
                .any(|x| x.starts_with("mTHP 64K: madvise (mthp-64k layouts switch")),
            "{l:?}"
        );
        assert!(
            l.contains(&"turbo/boost: off (cpufreq/boost; steadier clock)".into()),
            "{l:?}"
        );
        assert!(!l.iter().any(|x| x.starts_with("SMT")), "{l:?}");
        // A model-only plan leaves out the THP lines.
        let l = lines(&p, &PlanNeeds::default());
        assert!(
            !l.iter()
                .any(|x| x.starts_with("THP") || x.starts_with("mTHP")),
            "{l:?}"
        );
    }
}
