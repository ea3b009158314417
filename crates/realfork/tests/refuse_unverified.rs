//! A layout that is not what was asked must not be timed. This test binary (its own process)
//! disables THP for itself with `prctl(PR_SET_THP_DISABLE)`, so `pte-order9` populates order-0
//! pages although sysfs offers THP: verification must refuse with exit code 2 and one line, and
//! `--allow-unverified` must time anyway and mark the records unverified.

use realfork::{RealArgs, run};

fn disable_thp_for_this_process() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only; it affects only this process,
    // which runs nothing but these tests.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "prctl: {}", std::io::Error::last_os_error());
}

fn args() -> RealArgs {
    RealArgs {
        layout: "pte-order9".into(),
        mem: "8M".into(),
        iters: 3,
        runs: 1,
        warmup: 0,
        ..Default::default()
    }
}

#[test]
fn wrong_layout_is_refused_with_one_line_and_exit_code_2() {
    disable_thp_for_this_process();
    let e = run(&args()).unwrap_err();
    assert_eq!(e.exit_code(), 2);
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
    let recs = run(&RealArgs {
        allow_unverified: true,
        ..args()
    })
    .unwrap();
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r.samples_ns.len(), 3);
    assert_eq!(r.variant.options, "unverified");
    assert_eq!(r.extra["verification"]["verified"], false);
    assert!(
        r.extra["verification"]["pre"]["failure"]
            .as_str()
            .unwrap()
            .starts_with("layout is not pte-order9")
    );
}
