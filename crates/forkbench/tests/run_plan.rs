//! `forkbench run-plan`: a guest plan run in this userspace (a lab board's own rootfs) prints
//! the guest's frames on stdout, which decode into the same records a guest's init sends;
//! an interactive or unreadable plan is one error line and exit 2.

use std::process::Command;

use contract::{RealLayout, RealOpts, RunnerLine, Size};
use guest::plan::{GuestPlan, GuestStep};
use guest::transcript::read_transcript;

fn run_plan(plan: &GuestPlan) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.json");
    std::fs::write(&path, plan.to_json()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .arg("run-plan")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_plan_run_from_a_shell_frames_its_records_like_a_guest() {
    let step = GuestStep::Real(RealOpts {
        mem: Size(4 << 20),
        iters: 3,
        runs: 1,
        warmup: 1,
        ..RealOpts::new(RealLayout::Order0)
    });
    let mut plan = GuestPlan::new(false, vec![step.clone(), step]);
    plan.pin_last_cpu = true;
    let out = run_plan(&plan);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let t = read_transcript(&out.stdout).expect("the frames decode");
    assert_eq!(t.bye, "plan done");
    assert_eq!(t.steps.len(), 2);
    for s in &t.steps {
        assert!(s.done.ok, "{:?}", s.done);
        let runs: Vec<_> = s
            .lines
            .iter()
            .filter_map(|l| match l {
                RunnerLine::Run(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].samples_ns.len(), 3);
        assert!(
            s.lines
                .iter()
                .any(|l| matches!(l, RunnerLine::Context(c) if c.layout == RealLayout::Order0))
        );
    }
    assert!(t.hello.page_size > 0 && t.hello.cpus > 0);
}

#[test]
fn interactive_or_unreadable_plans_are_one_error_line() {
    let out = run_plan(&GuestPlan::new(true, vec![]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("an interactive plan"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_forkbench"))
        .args(["run-plan", "/nonexistent/plan.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/nonexistent/plan.json"), "{stderr}");
}
