//! Progress display for `cargo xtask bench`: an indicatif bar with ETA on a terminal, plain
//! lines (with elapsed time and ETA) when stderr is not a terminal or `CI` is set, and a
//! recording sink for tests. The ETA is time, not a count of runs ([`Eta`]): each group's
//! seconds per call as measured so far; before a group's first call, the plan's estimate for
//! it, scaled by how far off the estimate was for calls of the same kind (model, real fork on
//! the host, real fork in a guest) that did finish.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use results::RunRecord;

use crate::plan::{Call, Plan};

pub trait Progress {
    /// Expected number of run records and the plan's time per call ([`Eta`]).
    fn start(&mut self, total: u64, eta: Eta);
    /// One record arrived from call `call`, round `round`.
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord);
    /// A call of group `group` returned after `secs` seconds.
    fn call_done(&mut self, group: usize, secs: f64);
    /// Expect `by` fewer records and no more calls of `group` (it was skipped).
    fn shrink(&mut self, group: usize, by: u64);
    /// A note (e.g. why a group is skipped); shown without breaking the bar.
    fn note(&mut self, msg: &str);
    fn finish(&mut self);
}

/// The right display for this process: a bar on a TTY unless `CI` is set.
pub fn auto() -> Box<dyn Progress> {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0");
    if std::io::stderr().is_terminal() && !ci {
        Box::new(Bar::default())
    } else {
        Box::new(Plain::new())
    }
}

fn fmt_dur(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Terminal width the bench's own lines are wrapped to.
pub const WIDTH: usize = 100;

/// `text` wrapped at spaces to lines of at most `width` columns (a word longer than that, such
/// as a path, stands alone on its line); continuation lines are indented by two spaces.
pub fn fill(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let cols = line.chars().count();
        if cols > 0 && cols + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = format!("  {word}");
        } else {
            if cols > 0 {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    out.push_str(&line);
    out
}

/// An estimate as people read it: `~40 s` under a minute (never `~0 min`), else `~3 min`.
pub fn fmt_estimate(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 59.5 {
        format!("~{} s", (s.round() as u64).max(1))
    } else {
        format!("~{} min", (s / 60.0).round() as u64)
    }
}

/// What a call's time is learnt with: calls of one kind are off from the plan's estimate by a
/// similar factor.
fn kind_of(c: &Call) -> usize {
    match c {
        Call::Sim { .. } => 0,
        Call::Real { kernel: None, .. } => 1,
        Call::Real {
            kernel: Some(_), ..
        } => 2,
    }
}

/// Time left of a bench, learnt from the calls that finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Eta {
    /// Per group: its kind ([`kind_of`]).
    kind: Vec<usize>,
    /// Per group: the plan's estimate of one call, seconds.
    estimate: Vec<f64>,
    /// Per group: calls not yet made.
    left: Vec<u32>,
    /// Per group: measured seconds and calls.
    measured: Vec<(f64, u32)>,
}

impl Eta {
    /// The plan's calls with [`crate::bench::call_estimate_secs`] each.
    pub fn of(plan: &Plan) -> Self {
        let mut left = vec![0u32; plan.groups.len()];
        for &(_, g) in &plan.order {
            left[g] += 1;
        }
        Eta::new(
            plan.groups.iter().map(kind_of).collect(),
            plan.groups
                .iter()
                .map(crate::bench::call_estimate_secs)
                .collect(),
            left,
        )
    }

    /// Groups of `kind`s with an `estimate` (seconds per call) and `left` calls each.
    pub fn new(kind: Vec<usize>, estimate: Vec<f64>, left: Vec<u32>) -> Self {
        let measured = vec![(0.0, 0); kind.len()];
        Eta {
            kind,
            estimate,
            left,
            measured,
        }
    }

    /// A call of `group` took `secs`.
    pub fn done(&mut self, group: usize, secs: f64) {
        if let Some(l) = self.left.get_mut(group) {
            *l = l.saturating_sub(1);
            let m = &mut self.measured[group];
            m.0 += secs.max(0.0);
            m.1 += 1;
        }
    }

    /// No more calls of `group`.
    pub fn skip(&mut self, group: usize) {
        if let Some(l) = self.left.get_mut(group) {
            *l = 0;
        }
    }

    /// Expected seconds of one more call of `group`.
    pub fn per_call(&self, group: usize) -> f64 {
        let (secs, n) = self.measured[group];
        if n > 0 {
            return secs / f64::from(n);
        }
        // Measured against estimated, over the finished calls of the same kind.
        let (mut took, mut planned) = (0.0, 0.0);
        for g in 0..self.kind.len() {
            let (s, n) = self.measured[g];
            if n > 0 && self.kind[g] == self.kind[group] {
                took += s;
                planned += self.estimate[g] * f64::from(n);
            }
        }
        let scale = if planned > 0.0 { took / planned } else { 1.0 };
        self.estimate[group] * scale
    }

    /// Seconds until every call left is made.
    pub fn remaining(&self) -> f64 {
        (0..self.left.len())
            .map(|g| f64::from(self.left[g]) * self.per_call(g))
            .sum()
    }
}

fn rec_text(call: &str, round: u32, rec: &RunRecord) -> String {
    let (row, options) = (rec.variant.row_name(), rec.variant.options());
    let what = if options.is_empty() || call.contains(&options) {
        row
    } else {
        format!("{row} {options}")
    };
    // An exact (icount) run's samples are instructions: its median, in instructions.
    let value = match rec.variant.unit() {
        results::SampleUnit::Nanoseconds => format!("{:.3} ms", rec.mean_ns() / 1e6),
        results::SampleUnit::Instructions => stats::exact::run_value(&rec.samples_ns)
            .map_or_else(|| "n/a".into(), report::exact::instr),
    };
    format!("run {} {call}: {what} {value}", round + 1)
}

/// indicatif bar; its ETA (the prefix) is [`Eta::remaining`], updated as calls finish.
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
    eta: Eta,
}

impl Progress for Bar {
    fn start(&mut self, total: u64, eta: Eta) {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {prefix}\n{msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b.set_prefix(fmt_dur(eta.remaining()));
        b.enable_steady_tick(std::time::Duration::from_millis(500));
        self.eta = eta;
        self.bar = Some(b);
    }
    fn call_done(&mut self, group: usize, secs: f64) {
        self.eta.done(group, secs);
        if let Some(b) = &self.bar {
            b.set_prefix(fmt_dur(self.eta.remaining()));
        }
    }
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord) {
        if let Some(b) = &self.bar {
            // One line of a 100-column terminal: a wrapped message would break the redraw.
            b.set_message(
                rec_text(call, round, rec)
                    .chars()
                    .take(WIDTH)
                    .collect::<String>(),
            );
            b.inc(1);
        }
    }
    fn shrink(&mut self, group: usize, by: u64) {
        self.eta.skip(group);
        if let Some(b) = &self.bar {
            b.set_length(b.length().unwrap_or(0).saturating_sub(by));
            b.set_prefix(fmt_dur(self.eta.remaining()));
        }
    }
    fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(fill(&format!("note: {msg}"), WIDTH)),
            None => eprintln!("{}", fill(&format!("note: {msg}"), WIDTH)),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Plain lines on stderr.
pub struct Plain {
    t0: Instant,
    total: u64,
    done: u64,
    eta: Eta,
}

impl Plain {
    pub fn new() -> Self {
        Plain {
            t0: Instant::now(),
            total: 0,
            done: 0,
            eta: Eta::default(),
        }
    }
}

impl Progress for Plain {
    fn start(&mut self, total: u64, eta: Eta) {
        self.t0 = Instant::now();
        self.total = total;
        eprintln!("{total} runs to make, {}", fmt_estimate(eta.remaining()));
        self.eta = eta;
    }
    fn call_done(&mut self, group: usize, secs: f64) {
        self.eta.done(group, secs);
    }
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord) {
        self.done += 1;
        let el = self.t0.elapsed().as_secs_f64();
        // Printed as the call's records arrive, before the call is done: what is left after it.
        let eta = self.eta.remaining();
        let w = self.total.to_string().len();
        eprintln!(
            "[{:>w$}/{}] {} (elapsed {}, ETA {})",
            self.done,
            self.total,
            rec_text(call, round, rec),
            fmt_dur(el),
            fmt_dur(eta)
        );
    }
    fn shrink(&mut self, group: usize, by: u64) {
        self.eta.skip(group);
        self.total = self.total.saturating_sub(by);
    }
    fn note(&mut self, msg: &str) {
        eprintln!("note: {msg}");
    }
    fn finish(&mut self) {
        eprintln!(
            "{} runs in {}",
            self.done,
            fmt_dur(self.t0.elapsed().as_secs_f64())
        );
    }
}

/// Records what happened (tests).
#[cfg(test)]
#[derive(Default, Debug)]
pub struct Recorder {
    pub total: u64,
    pub done: u64,
    pub notes: Vec<String>,
    pub lines: Vec<String>,
    /// `(group, secs)` of every finished call.
    pub calls: Vec<(usize, f64)>,
}

#[cfg(test)]
impl Progress for Recorder {
    fn start(&mut self, total: u64, _eta: Eta) {
        self.total = total;
    }
    fn call_done(&mut self, group: usize, secs: f64) {
        self.calls.push((group, secs));
    }
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord) {
        self.done += 1;
        self.lines.push(rec_text(call, round, rec));
    }
    fn shrink(&mut self, _group: usize, by: u64) {
        self.total -= by;
    }
    fn note(&mut self, msg: &str) {
        self.notes.push(msg.to_string());
    }
    fn finish(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The case: 5 of 105 runs done in 6 s said 2:11 by run count. With a plan of
    /// 100 short model calls (estimated 0.1 s each, measured 0.05 s) and 5 real calls
    /// (estimated 1 s, measured 1.2 s) the ETA follows the time per group kind.
    #[test]
    fn eta_from_measured_time_per_group() {
        // Groups: 0, 1 model; 2 real. Calls left: 50, 50, 5.
        let mut eta = Eta::new(vec![0, 0, 1], vec![0.1, 0.1, 1.0], vec![50, 50, 5]);
        // Before anything ran: the plan's estimate.
        assert!((eta.remaining() - (100.0 * 0.1 + 5.0)).abs() < 1e-9);
        // One real call took 1.2 s: the real group is learnt, the model untouched.
        eta.done(2, 1.2);
        assert!((eta.per_call(2) - 1.2).abs() < 1e-9);
        assert!((eta.remaining() - (10.0 + 4.0 * 1.2)).abs() < 1e-9);
        // A model call of group 0 took half its estimate: group 1 (same kind, never run yet)
        // is scaled by the same factor.
        eta.done(0, 0.05);
        assert!((eta.per_call(0) - 0.05).abs() < 1e-9);
        assert!((eta.per_call(1) - 0.05).abs() < 1e-9);
        assert!((eta.remaining() - (49.0 * 0.05 + 50.0 * 0.05 + 4.0 * 1.2)).abs() < 1e-9);
        // Group 1's own measurement wins over the kind's factor once it has one.
        eta.done(1, 0.2);
        assert!((eta.per_call(1) - 0.2).abs() < 1e-9);
        // A skipped group costs nothing more.
        eta.skip(2);
        assert!((eta.remaining() - (49.0 * 0.05 + 49.0 * 0.2)).abs() < 1e-9);
        // Out-of-range groups are ignored rather than panicking.
        eta.done(9, 1.0);
        eta.skip(9);
    }

    /// An ETA of a quick plan from the real plan: every group's calls are counted once.
    #[test]
    fn eta_of_a_plan_counts_every_call() {
        let p = crate::profile::load(None, &crate::util::project_root()).unwrap();
        let plan = crate::plan::plan(&p, true, 1);
        let eta = Eta::of(&plan);
        let sum: f64 = plan
            .order
            .iter()
            .map(|&(_, g)| crate::bench::call_estimate_secs(&plan.groups[g]))
            .sum();
        assert!((eta.remaining() - sum).abs() < 1e-6);
    }

    #[test]
    fn long_lines_are_wrapped_at_spaces() {
        let w = "warning: another forkbench process was running during 3 of 105 runs (someone \
                 else's benchmark competing for the CPUs); expect noisy numbers";
        let f = fill(w, 40);
        assert!(f.lines().all(|l| l.chars().count() <= 40), "{f}");
        assert!(f.lines().skip(1).all(|l| l.starts_with("  ")), "{f}");
        assert_eq!(
            f.split_whitespace().collect::<Vec<_>>(),
            w.split_whitespace().collect::<Vec<_>>()
        );
        assert_eq!(fill("short", 40), "short");
    }

    #[test]
    fn estimates_under_a_minute_are_seconds() {
        assert_eq!(fmt_estimate(0.2), "~1 s");
        assert_eq!(fmt_estimate(24.6), "~25 s");
        assert_eq!(fmt_estimate(59.4), "~59 s");
        assert_eq!(fmt_estimate(60.0), "~1 min");
        assert_eq!(fmt_estimate(261.0), "~4 min");
    }
}
