//! Progress display for `cargo xtask bench`: an indicatif bar with ETA on a terminal, plain
//! lines (with elapsed time and ETA) when stderr is not a terminal or `CI` is set, and a
//! recording sink for tests.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use results::RunRecord;

pub trait Progress {
    /// Expected number of run records.
    fn start(&mut self, total: u64);
    /// One record arrived from call `call`, round `round`.
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord);
    /// Expect `by` fewer records (a group was skipped).
    fn shrink(&mut self, by: u64);
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

fn rec_text(call: &str, round: u32, rec: &RunRecord) -> String {
    let (row, options) = (rec.variant.row_name(), rec.variant.options());
    let what = if options.is_empty() || call.contains(&options) {
        row
    } else {
        format!("{row} {options}")
    };
    format!(
        "run {} {call}: {what} {:.3} ms",
        round + 1,
        rec.mean_ns() / 1e6
    )
}

/// indicatif bar.
#[derive(Default)]
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Progress for Bar {
    fn start(&mut self, total: u64) {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} ETA {eta_precise}\n{msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar = Some(b);
    }
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord) {
        if let Some(b) = &self.bar {
            b.set_message(rec_text(call, round, rec));
            b.inc(1);
        }
    }
    fn shrink(&mut self, by: u64) {
        if let Some(b) = &self.bar {
            b.set_length(b.length().unwrap_or(0).saturating_sub(by));
        }
    }
    fn note(&mut self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("note: {msg}")),
            None => eprintln!("note: {msg}"),
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
}

impl Plain {
    pub fn new() -> Self {
        Plain {
            t0: Instant::now(),
            total: 0,
            done: 0,
        }
    }
}

impl Progress for Plain {
    fn start(&mut self, total: u64) {
        self.t0 = Instant::now();
        self.total = total;
        eprintln!("{total} runs to make");
    }
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord) {
        self.done += 1;
        let el = self.t0.elapsed().as_secs_f64();
        let eta = el / self.done as f64 * self.total.saturating_sub(self.done) as f64;
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
    fn shrink(&mut self, by: u64) {
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
}

#[cfg(test)]
impl Progress for Recorder {
    fn start(&mut self, total: u64) {
        self.total = total;
    }
    fn record(&mut self, call: &str, round: u32, rec: &RunRecord) {
        self.done += 1;
        self.lines.push(rec_text(call, round, rec));
    }
    fn shrink(&mut self, by: u64) {
        self.total -= by;
    }
    fn note(&mut self, msg: &str) {
        self.notes.push(msg.to_string());
    }
    fn finish(&mut self) {}
}
