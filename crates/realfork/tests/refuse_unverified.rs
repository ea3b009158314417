//! A layout that is not what was asked must not be timed. This test binary (its own process)
//! disables THP for itself with `prctl(PR_SET_THP_DISABLE)`, so `pte-order9` populates order-0
//! pages although sysfs offers THP: verification must refuse with exit code 2 and one line, and
//! `--allow-unverified` must time anyway and mark the records unverified.

use contract::{RealLayout, RealOpts, Size};
use realfork::run;

fn disable_thp_for_this_process() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only; it affects only this process,
    // which runs nothing but these tests.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl: {}", std::io::Error::last_os_error());
}

fn args() -> RealOpts {
    RealOpts {
        mem: Size(8 << 20),
        iters: 3,
        runs: 1,
        warmup: 0,
        ..RealOpts::new(RealLayout::PteOrder9)
    }
}

#[test]
fn wrong_layout_is_refused_with_one_line_and_exit_code_3() {
    disable_thp_for_this_process();
    let e = run(&args()).unwrap_err();
    assert_eq!(e.exit_code(), contract::EXIT_UNSUPPORTED);
    let msg = e.to_string();
    assert!(
        msg.starts_with("layout is not pte-order9 (before, verification "),
        "{msg}"
    );
    assert!(msg.contains("PR_SET_THP_DISABLE"), "{msg}");
    assert!(
        msg.ends_with("refusing to time (--allow-unverified times anyway)"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

#[test]
fn allow_unverified_times_and_marks_the_records() {
    disable_thp_for_this_process();
    let out = run(&RealOpts {
        allow_unverified: true,
        ..args()
    })
    .unwrap();
    assert_eq!(out.runs.len(), 1);
    let r = &out.runs[0];
    assert_eq!(r.samples_ns.len(), 3);
    assert_eq!(r.variant.options(), "unverified");
    assert!(!out.context.pre.ok);
    assert!(
        out.context
            .pre
            .failure
            .as_deref()
            .unwrap()
            .starts_with("layout is not pte-order9")
    );
}
