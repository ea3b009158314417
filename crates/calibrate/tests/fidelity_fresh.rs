//! The committed `results/fidelity.md` must be exactly what its committed inputs
//! (`results/fidelity-inputs.json`) render to: regenerate, compare, fail with a hint. Every
//! row of it that disagrees with the thread (in either model) gives its reason.

use std::path::PathBuf;

#[test]
fn committed_fidelity_report_is_fresh() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let inputs = root.join("results/fidelity-inputs.json");
    let report = root.join("results/fidelity.md");
    assert!(
        inputs.exists(),
        "{} is missing: run `cargo xtask fidelity --measure` and commit it with results/fidelity.md",
        inputs.display()
    );
    if let Err(e) =
        calibrate::fidelity::check_fresh(&calibrate::fidelity::ReportInputs::at(&root), &report)
    {
        panic!(
            "{e}\nhint: `cargo xtask fidelity` re-renders results/fidelity.md from the committed inputs (no measuring); commit the result"
        );
    }
}

#[test]
fn committed_fidelity_report_gives_every_disagreement_a_reason() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let report = std::fs::read_to_string(root.join("results/fidelity.md")).unwrap();
    let missing = calibrate::fidelity::rows_without_reason(&report);
    assert!(
        missing.is_empty(),
        "rows that disagree without a reason (add one to crates/calibrate/src/tables.rs):\n{}",
        missing.join("\n")
    );
}
