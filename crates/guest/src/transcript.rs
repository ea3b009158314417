//! What a guest's console says, as typed messages: [`Message`] is one frame's payload parsed
//! (the live launcher in [`crate::qemu`] reads them frame by frame), and [`read_transcript`]
//! decodes a whole console capture after the fact (a LAVA job's log, a saved console) into the
//! Hello, every step's lines with its StepDone, and the Bye. Anything short of a complete,
//! checked run is an error that says where the console stopped.

use contract::RunnerLine;

use crate::frame::{Frame, FrameDecoder, FrameError, FrameKind};
use crate::plan::{GuestHello, StepDone};

/// Console lines quoted in an error.
const LAST_LINES: usize = 8;

/// One frame's payload, typed by its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello(GuestHello),
    /// A `forkbench real` line: header, context or run.
    Line(RunnerLine),
    /// Output of an Exec step.
    Output(Vec<u8>),
    StepDone(StepDone),
    /// The guest hit an error; it powers off next.
    Error(String),
    /// The guest is powering off (the reason).
    Bye(String),
}

/// A frame whose payload is not what its kind promises.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the guest sent a {kind} frame that does not parse: {error}")]
pub struct BadMessage {
    pub kind: FrameKind,
    pub error: String,
}

impl Message {
    /// Parse a checked frame's payload.
    pub fn from_frame(f: Frame) -> Result<Message, BadMessage> {
        let bad = |error: serde_json::Error| BadMessage {
            kind: f.kind,
            error: error.to_string(),
        };
        let text = |p: Vec<u8>| String::from_utf8_lossy(&p).into_owned();
        Ok(match f.kind {
            FrameKind::Hello => Message::Hello(serde_json::from_slice(&f.payload).map_err(bad)?),
            FrameKind::Line => Message::Line(serde_json::from_slice(&f.payload).map_err(bad)?),
            FrameKind::StepDone => {
                Message::StepDone(serde_json::from_slice(&f.payload).map_err(bad)?)
            }
            FrameKind::Output => Message::Output(f.payload),
            FrameKind::Error => Message::Error(text(f.payload)),
            FrameKind::Bye => Message::Bye(text(f.payload)),
        })
    }
}

/// One finished step: what it printed and how it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub lines: Vec<RunnerLine>,
    pub output: Vec<u8>,
    pub done: StepDone,
}

/// A complete guest run read from its console.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    pub hello: GuestHello,
    /// In the order the guest ran them.
    pub steps: Vec<Step>,
    /// The Bye frame's reason (`plan done` after a complete plan).
    pub bye: String,
}

/// Why a console capture is not a complete run. One line each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TranscriptError {
    #[error("guest console: {0}")]
    Frame(#[from] FrameError),
    #[error(transparent)]
    BadMessage(#[from] BadMessage),
    #[error(
        "no forkbench Hello on the console (the kernel did not reach forkbench's init); last \
         console lines: {}",
        Lines(last_lines)
    )]
    NoHello { last_lines: Vec<String> },
    #[error("the guest sent a second Hello (it restarted?)")]
    SecondHello,
    #[error("the guest's init reported an error: {message}")]
    GuestReported { message: String },
    #[error("the guest finished step {got} where step {expected} was due")]
    StepOrder { expected: usize, got: usize },
    #[error("the guest sent a {kind} frame after its Bye")]
    AfterBye { kind: FrameKind },
    #[error(
        "the console ends after {steps} finished steps without the guest's Bye (it hung, \
         crashed or was stopped); last console lines: {}",
        Lines(last_lines)
    )]
    Unfinished {
        steps: usize,
        last_lines: Vec<String>,
    },
}

/// Console lines for a message: `a | b | c`.
struct Lines<'a>(&'a [String]);

impl std::fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(no console output)");
        }
        f.write_str(&self.0.join(" | "))
    }
}

/// Decode a whole console capture: a Hello, then each step's lines and output ending in its
/// StepDone (steps numbered from 0, in order), then a Bye. The first damaged or missing frame,
/// an Error frame, or a console that ends before the Bye is an error.
pub fn read_transcript(console: &[u8]) -> Result<Transcript, TranscriptError> {
    let mut decoder = FrameDecoder::new();
    let frames = decoder.push(console);
    let mut hello: Option<GuestHello> = None;
    let mut steps: Vec<Step> = Vec::new();
    let mut lines: Vec<RunnerLine> = Vec::new();
    let mut output: Vec<u8> = Vec::new();
    let mut bye: Option<String> = None;
    for f in frames {
        let f = f?;
        if bye.is_some() {
            return Err(TranscriptError::AfterBye { kind: f.kind });
        }
        let m = Message::from_frame(f)?;
        match (m, hello.is_some()) {
            (Message::Hello(h), false) => hello = Some(h),
            (Message::Hello(_), true) => return Err(TranscriptError::SecondHello),
            (Message::Error(message), _) => return Err(TranscriptError::GuestReported { message }),
            (_, false) => {
                return Err(TranscriptError::NoHello {
                    last_lines: decoder.tail_lines(LAST_LINES),
                });
            }
            (Message::Line(l), true) => lines.push(l),
            (Message::Output(o), true) => output.extend(o),
            (Message::StepDone(done), true) => {
                if done.step != steps.len() {
                    return Err(TranscriptError::StepOrder {
                        expected: steps.len(),
                        got: done.step,
                    });
                }
                steps.push(Step {
                    lines: std::mem::take(&mut lines),
                    output: std::mem::take(&mut output),
                    done,
                });
            }
            (Message::Bye(reason), true) => bye = Some(reason),
        }
    }
    let last_lines = || decoder.tail_lines(LAST_LINES);
    let Some(hello) = hello else {
        return Err(TranscriptError::NoHello {
            last_lines: last_lines(),
        });
    };
    let Some(bye) = bye else {
        return Err(TranscriptError::Unfinished {
            steps: steps.len(),
            last_lines: last_lines(),
        });
    };
    Ok(Transcript { hello, steps, bye })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode;
    use contract::Header;

    fn hello() -> GuestHello {
        GuestHello {
            kernel_release: "6.12.0-test".into(),
            arch: "x86_64".into(),
            page_size: 4096,
            cpus: 1,
            ..GuestHello::default()
        }
    }

    fn done(step: usize) -> StepDone {
        StepDone {
            step,
            ok: true,
            exit_code: Some(0),
            error: None,
            unsupported: false,
        }
    }

    /// A console: kernel noise, then the frames of `messages` in order, numbered from 0.
    fn console(messages: &[(FrameKind, Vec<u8>)]) -> Vec<u8> {
        let mut text = String::from("[    0.000000] Linux version 6.12.0-test\r\n");
        for (seq, (kind, payload)) in messages.iter().enumerate() {
            text.push_str(&encode(*kind, seq as u64, payload));
        }
        text.into_bytes()
    }

    fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn two_steps() -> Vec<(FrameKind, Vec<u8>)> {
        let header = RunnerLine::Header(Header::current());
        vec![
            (FrameKind::Hello, json(&hello())),
            (FrameKind::Line, header.to_json().into_bytes()),
            (FrameKind::StepDone, json(&done(0))),
            (FrameKind::Output, b"out".to_vec()),
            (FrameKind::StepDone, json(&done(1))),
            (FrameKind::Bye, b"plan done".to_vec()),
        ]
    }

    #[test]
    fn a_complete_run_reads_as_steps() {
        let t = read_transcript(&console(&two_steps())).unwrap();
        assert_eq!(t.hello, hello());
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].lines.len(), 1);
        assert!(matches!(t.steps[0].lines[0], RunnerLine::Header(_)));
        assert_eq!(t.steps[1].output, b"out");
        assert_eq!(t.steps[1].done, done(1));
        assert_eq!(t.bye, "plan done");
    }

    #[test]
    fn a_console_cut_before_the_bye_is_unfinished() {
        let mut m = two_steps();
        m.truncate(3);
        let e = read_transcript(&console(&m)).unwrap_err();
        assert!(
            matches!(e, TranscriptError::Unfinished { steps: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("Linux version"), "{e}");
    }

    #[test]
    fn no_hello_quotes_the_console() {
        let e = read_transcript(b"[    1.0] Kernel panic - not syncing: VFS\n").unwrap_err();
        assert!(e.to_string().contains("Kernel panic"), "{e}");
        let mut m = two_steps();
        m.remove(0);
        // Seq 0 is missing: the decoder reports the loss first.
        assert!(read_transcript(&console(&m)).is_err());
    }

    #[test]
    fn damage_errors_and_restarts_are_refused() {
        let mut bytes = console(&two_steps());
        let at = bytes.windows(4).position(|w| w == b"done").unwrap() + 20;
        bytes[at] ^= 0x01;
        let e = read_transcript(&bytes).unwrap_err();
        assert!(matches!(e, TranscriptError::Frame(_)), "{e}");

        let mut m = two_steps();
        m.insert(2, (FrameKind::Error, b"populate failed".to_vec()));
        let e = read_transcript(&console(&m)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the guest's init reported an error: populate failed"
        );

        let mut m = two_steps();
        m.insert(3, (FrameKind::Hello, json(&hello())));
        assert_eq!(
            read_transcript(&console(&m)).unwrap_err(),
            TranscriptError::SecondHello
        );

        let mut m = two_steps();
        m[4] = (FrameKind::StepDone, json(&done(3)));
        assert_eq!(
            read_transcript(&console(&m)).unwrap_err(),
            TranscriptError::StepOrder {
                expected: 1,
                got: 3
            }
        );

        let mut m = two_steps();
        m[1] = (FrameKind::Line, b"{not json".to_vec());
        assert!(matches!(
            read_transcript(&console(&m)).unwrap_err(),
            TranscriptError::BadMessage(BadMessage {
                kind: FrameKind::Line,
                ..
            })
        ));
    }
}
