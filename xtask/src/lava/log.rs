//! A LAVA job log: one YAML flow mapping per line (`{"dt": ..., "lvl": ..., "msg": ...}`; a
//! server's log is the same records as a YAML list, `- {...}`). Not strict JSON (`! "5.066"`
//! appears), so each line goes through a YAML parser. The console is the `target` and
//! `feedback` lines in order; LAVA's verdicts are the `results` lines.
//!
//! An exit code or a job health is not enough: a guest that never prints the monitor's end
//! pattern makes the monitor time out, and the job may still "finish correctly". So a log is
//! accepted only when LAVA's `job` result passed, the monitor's own result passed, and the
//! monitor counted as many finished steps as the frames carry.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Deserialize;
use yaml_serde::Value;

/// One log record.
#[derive(Debug, Clone, Deserialize)]
struct Record {
    lvl: String,
    #[serde(default)]
    msg: Value,
}

/// One LAVA result (`lvl: results`).
#[derive(Debug, Clone, PartialEq)]
pub struct LavaResult {
    /// The test suite: `lava` for LAVA's own actions, the monitor's name for its cases.
    pub definition: String,
    pub case: String,
    /// `pass`, `fail`, `skip` or `unknown`.
    pub result: String,
    /// The `extra` mapping's scalar entries (`status`, `fail` ...), and the job result's
    /// `error_msg`.
    pub extra: BTreeMap<String, String>,
}

/// What a job log holds for forkbench.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobLog {
    /// The device's console, lines joined with `\n`.
    pub console: Vec<u8>,
    pub results: Vec<LavaResult>,
    /// `error` lines, in order (LAVA's own explanation of a failure).
    pub errors: Vec<String>,
    /// Lines that were not log records (a dispatcher's stray output).
    pub skipped_lines: usize,
    /// The QEMU command line a `qemu` device ran (LAVA's `Boot command:` line).
    pub boot_command: Option<String>,
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Tagged(t) => scalar(&t.value),
        _ => None,
    }
}

impl JobLog {
    /// Parse a log.
    pub fn parse(text: &str) -> JobLog {
        let mut log = JobLog::default();
        for line in text.lines() {
            let t = line.trim_start();
            let t = t.strip_prefix("- ").unwrap_or(t);
            if !t.starts_with('{') {
                if !t.trim().is_empty() {
                    log.skipped_lines += 1;
                }
                continue;
            }
            let Ok(rec) = yaml_serde::from_str::<Record>(t) else {
                log.skipped_lines += 1;
                continue;
            };
            match rec.lvl.as_str() {
                "target" | "feedback" => {
                    if let Some(text) = scalar(&rec.msg) {
                        log.console.extend_from_slice(text.as_bytes());
                    }
                    log.console.push(b'\n');
                }
                "results" => {
                    let get = |k: &str| rec.msg.get(k).and_then(scalar).unwrap_or_default();
                    let mut extra: BTreeMap<String, String> = rec
                        .msg
                        .get("extra")
                        .and_then(Value::as_mapping)
                        .map(|m| {
                            m.iter()
                                .filter_map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
                                .collect()
                        })
                        .unwrap_or_default();
                    // The job's own result says why it failed beside `extra`.
                    if let Some(e) = rec.msg.get("error_msg").and_then(scalar) {
                        extra.insert("error_msg".into(), e);
                    }
                    log.results.push(LavaResult {
                        definition: get("definition"),
                        case: get("case"),
                        result: get("result"),
                        extra,
                    });
                }
                "info" => {
                    if let Some(cmd) = scalar(&rec.msg)
                        .and_then(|m| m.strip_prefix("Boot command: ").map(str::to_string))
                    {
                        log.boot_command = Some(cmd);
                    }
                }
                "error" => {
                    if let Some(e) = scalar(&rec.msg) {
                        log.errors.push(e);
                    }
                }
                _ => {}
            }
        }
        log
    }

    /// The accelerator and clock a `qemu` device really ran under, read from its QEMU command
    /// line (a device dictionary can override a job's context); `None` without one.
    pub fn qemu_clock(&self) -> Option<(contract::Accel, contract::Clock)> {
        let cmd = self.boot_command.as_deref()?;
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let kvm = args.contains(&"-enable-kvm")
            || args
                .windows(2)
                .any(|w| w[0] == "-accel" && w[1].starts_with("kvm"));
        let icount = args.contains(&"-icount");
        Some(match (kvm, icount) {
            (true, _) => (contract::Accel::Kvm, contract::Clock::Wall),
            (false, true) => (contract::Accel::Tcg, contract::Clock::Icount),
            (false, false) => (contract::Accel::Tcg, contract::Clock::Wall),
        })
    }

    fn result(&self, definition: &str, case: &str) -> Option<&LavaResult> {
        self.results
            .iter()
            .rev()
            .find(|r| r.definition == definition && r.case == case)
    }

    /// The monitor's results for finished steps (one per StepDone frame it saw).
    pub fn steps_seen(&self, monitor: &str) -> usize {
        self.results
            .iter()
            .filter(|r| r.definition == monitor && r.case == "done")
            .count()
    }

    /// LAVA's verdict on the job: its `job` result passed, and the monitor's (`shell`: the
    /// test shell's `run-plan` case) too. The error names what failed, with LAVA's reason.
    pub fn check_passed(&self, shell: bool) -> anyhow::Result<()> {
        let why = |r: &LavaResult| {
            r.extra
                .get("error_msg")
                .or_else(|| r.extra.get("fail"))
                .or_else(|| r.extra.get("status"))
                .cloned()
                .or_else(|| self.errors.last().cloned())
                .unwrap_or_else(|| "no reason given".into())
        };
        let Some(job) = self.result("lava", "job") else {
            bail!(
                "the log has no final `job` result: the job did not finish (still running, or \
                 the log is cut){}",
                self.last_error()
            );
        };
        if job.result != "pass" {
            bail!("LAVA failed the job: {}", why(job));
        }
        if shell {
            let case = super::testdef::CASE;
            let suffix = format!("_{}", super::testdef::NAME);
            let Some(r) = self
                .results
                .iter()
                .rev()
                .find(|r| r.definition.ends_with(&suffix) && r.case == case)
            else {
                bail!("the log has no `{case}` result: the test shell never ran the plan");
            };
            if r.result != "pass" {
                bail!(
                    "`forkbench run-plan` failed on the board (test case {case}: {})",
                    r.result
                );
            }
            return Ok(());
        }
        let Some(m) = self.result("lava", "lava-test-monitor") else {
            bail!("the log has no result of the monitor: the test action never ran");
        };
        let status_ok = m.extra.get("status").is_none_or(|s| s == "passed");
        if m.result != "pass" || !status_ok {
            bail!(
                "the monitor failed ({}): the guest never printed its Bye frame, so it hung or \
                 stopped",
                why(m)
            );
        }
        Ok(())
    }

    fn last_error(&self) -> String {
        self.errors
            .last()
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSED: &str = r#"{"dt": "2026-12-04T23:52:58.7", "lvl": "results", "msg": {"case": "validate", "definition": "lava", "result": "pass"}}
{"dt": "2026-12-04T23:52:58.9", "lvl": "results", "msg": {"case": "file-download", "definition": "lava", "extra": {"label": "kernel", "size": ! "11735552"}, "result": "pass"}}
{"dt": "2026-12-04T23:52:58.98", "lvl": "info", "msg": "Boot command: /usr/bin/qemu-system-x86_64 -nographic -m 640 -accel tcg -cpu max -icount shift=0,sleep=off -smp 1 -no-reboot -kernel /k"}
{"dt": "2026-12-04T23:53:11.98", "lvl": "target", "msg": "START"}
{"dt": "2026-12-04T23:53:11.99", "lvl": "target", "msg": ""}
{"dt": "2026-12-04T23:53:11.99", "lvl": "target", "msg": "@@FB1 done 3 0 $ 00000000 QUJD@@"}
{"dt": "2026-12-04T23:53:11.99", "lvl": "results", "msg": {"case": "done", "definition": "forkbench", "extra": {"test_case_id": "done"}, "level": "3.1", "measurement": ! "3.0", "result": "pass"}}
{"dt": "2026-12-04T23:53:11.99", "lvl": "results", "msg": {"case": "lava-test-monitor", "definition": "lava", "duration": "13.01", "extra": {"status": "passed"}, "level": "3.1", "namespace": "common", "result": "pass"}}
{"dt": "2026-12-04T23:53:12.01", "lvl": "feedback", "msg": "[    6.464173] reboot: Power down", "ns": "common"}
{"dt": "2026-12-04T23:53:12.28", "lvl": "results", "msg": {"case": "job", "definition": "lava", "result": "pass"}}
"#;

    #[test]
    fn a_passed_log_gives_its_console_and_results() {
        let log = JobLog::parse(PASSED);
        assert_eq!(
            String::from_utf8(log.console.clone()).unwrap(),
            "START\n\n@@FB1 done 3 0 $ 00000000 QUJD@@\n[    6.464173] reboot: Power down\n"
        );
        assert_eq!(log.steps_seen("forkbench"), 1);
        assert_eq!(log.results[1].extra["size"], "11735552");
        log.check_passed(false).unwrap();
        assert_eq!(
            log.qemu_clock(),
            Some((contract::Accel::Tcg, contract::Clock::Icount))
        );
        let mut kvm = log.clone();
        kvm.boot_command = Some("qemu-system-x86_64 -cpu host -enable-kvm -m 640".into());
        assert_eq!(
            kvm.qemu_clock(),
            Some((contract::Accel::Kvm, contract::Clock::Wall))
        );
        // A server's log is the same records as a YAML list.
        let listed: String = PASSED.lines().map(|l| format!("- {l}\n")).collect();
        assert_eq!(JobLog::parse(&listed), log);
    }

    #[test]
    fn a_monitor_that_timed_out_fails_even_when_the_job_passed() {
        let hung = PASSED.replace(
            r#""extra": {"status": "passed"}, "level": "3.1", "namespace": "common", "result": "pass""#,
            r#""extra": {"status": "failed"}, "level": "3.1", "namespace": "common", "result": "pass""#,
        );
        let e = JobLog::parse(&hung).check_passed(false).unwrap_err();
        assert!(e.to_string().contains("the monitor failed (failed)"), "{e}");
    }

    #[test]
    fn a_failed_or_cut_job_says_why() {
        let failed = PASSED.replace(
            r#"{"case": "job", "definition": "lava", "result": "pass"}"#,
            r#"{"case": "job", "definition": "lava", "error_msg": "Connection closed", "error_type": "Infrastructure", "result": "fail"}"#,
        );
        let e = JobLog::parse(&failed).check_passed(false).unwrap_err();
        assert_eq!(e.to_string(), "LAVA failed the job: Connection closed");
        let cut: String = PASSED.lines().take(5).map(|l| format!("{l}\n")).collect();
        let e = JobLog::parse(&cut).check_passed(false).unwrap_err();
        assert!(e.to_string().contains("no final `job` result"), "{e}");
        let log = JobLog::parse("Traceback (most recent call last):\n{not: [yaml\n");
        assert_eq!(log.skipped_lines, 2);
        assert!(log.console.is_empty());
    }
}
