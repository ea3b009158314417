//! Boards that boot their own kernel and rootfs (a lab's Altra, M2 or Xeon with the distro it
//! tests): the plan runs in the board's userspace from a lava-test-shell definition instead of
//! as an initramfs's `/init`. The static forkbench and the plan are downloaded by the board;
//! `forkbench run-plan` prints the same Hello, record and Bye frames a guest's init prints, so
//! the job log decodes with `lava fetch` like any other. `lava testdef` writes the artifacts
//! and the test definition, and prints the `metadata` and `test` lines to put in the board's
//! job (after its own deploy and boot actions, with a login shell).

use anyhow::Context;
use contract::{Accel, Clock};
use yaml_serde::Value;

use super::job::{self, JobMeta, map, minutes, s};
use super::{TestdefArgs, seed_of};
use crate::util;

/// The test definition's name: LAVA reports its results as suite `<n>_forkbench`.
pub const NAME: &str = "forkbench";
/// The LAVA test case that says whether `forkbench run-plan` finished.
pub const CASE: &str = "run-plan";

/// The shell steps: fetch the static runner and the plan, run the plan, report the case.
fn steps(base_url: &str) -> Vec<String> {
    vec![
        "cd \"$(mktemp -d)\"".into(),
        format!(
            "for f in forkbench plan.json; do wget -q -O \"$f\" \"{base_url}/$f\" || curl -fsS -o \
             \"$f\" \"{base_url}/$f\" || {{ lava-test-case {CASE} --result fail; exit 1; }}; done"
        ),
        "chmod +x forkbench".into(),
        format!(
            "if ./forkbench run-plan plan.json; then lava-test-case {CASE} --result pass; else \
             lava-test-case {CASE} --result fail; fi"
        ),
    ]
}

/// The lava-test-shell definition.
pub fn definition(base_url: &str) -> Value {
    map([
        (
            "metadata",
            map([
                ("format", s("Lava-Test Test Definition 1.0")),
                ("name", s(NAME)),
                (
                    "description",
                    s(
                        "forkbench's real-fork plan in this board's own userspace; the records \
                       come back as framed console lines (cargo xtask lava fetch)",
                    ),
                ),
            ]),
        ),
        (
            "run",
            map([(
                "steps",
                Value::Sequence(steps(base_url).into_iter().map(s).collect()),
            )]),
        ),
    ])
}

/// `lava testdef`.
pub fn run(t: &TestdefArgs) -> anyhow::Result<()> {
    let seed = seed_of(&t.plan)?;
    // The guest plan does not depend on the row label; `fetch` uses the board's release.
    let lp = job::lab_plan(t.plan.config.as_deref(), t.plan.quick, seed, "rootfs")?;
    std::fs::create_dir_all(&t.artifacts)
        .with_context(|| format!("creating {}", t.artifacts.display()))?;
    eprintln!("building the static forkbench for {} ...", t.arch);
    let payload = guest::payload::build_payload(&util::project_root(), t.arch)
        .context("building the static forkbench")?;
    std::fs::copy(&payload, t.artifacts.join("forkbench"))
        .with_context(|| format!("copying the runner into {}", t.artifacts.display()))?;
    results::fsio::write_replace(
        &t.artifacts.join("plan.json"),
        lp.guest.to_json().as_bytes(),
    )?;
    let base = t.artifact_url.trim_end_matches('/');
    let def = yaml_serde::to_string(&definition(base))?;
    results::fsio::write_replace(&t.artifacts.join("forkbench-testdef.yaml"), def.as_bytes())?;
    let meta = JobMeta {
        profile: t.plan.config.clone(),
        quick: t.plan.quick,
        seed,
        kernel: None,
        image: "rootfs".into(),
        arch: t.arch,
        accel: Accel::Host,
        clock: Clock::Wall,
        plan_digest: job::plan_digest(&lp.guest),
        git_rev: util::git_rev(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        kconfig: Vec::new(),
        shell: true,
    };
    let metadata: yaml_serde::Mapping = meta
        .to_metadata()
        .into_iter()
        .map(|(k, v)| (s(k), s(v)))
        .collect();
    let (_, job_minutes) = super::timeouts(&lp, t.arch, None);
    let fragment = map([
        ("metadata", Value::Mapping(metadata)),
        (
            "actions",
            Value::Sequence(vec![map([(
                "test",
                map([
                    ("timeout", minutes(job_minutes)),
                    (
                        "definitions",
                        Value::Sequence(vec![map([
                            ("from", s("inline")),
                            ("name", s(NAME)),
                            ("path", s("inline/forkbench.yaml")),
                            ("repository", definition(base)),
                        ])]),
                    ),
                ]),
            )])]),
        ),
    ]);
    print!(
        "# Add to the board's job: these metadata entries, and this test action after its deploy \
         and boot (login shell) actions.\n{}",
        yaml_serde::to_string(&fragment)?
    );
    eprintln!(
        "wrote forkbench, plan.json and forkbench-testdef.yaml to {} (served at {base})",
        t.artifacts.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_fetches_runs_and_reports() {
        let d = definition("http://localhost:8000/fb");
        assert_eq!(d["metadata"]["name"], s(NAME));
        let steps: Vec<&str> = d["run"]["steps"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            steps[1].contains("http://localhost:8000/fb/$f"),
            "{steps:?}"
        );
        assert!(
            steps[3].starts_with("if ./forkbench run-plan plan.json"),
            "{steps:?}"
        );
        assert!(steps[3].contains("lava-test-case run-plan --result pass"));
    }
}
