//! Console framing between the guest's init and the host: records survive kernel log noise.
//!
//! The guest writes each message as one or more text lines on its console:
//!
//! ```text
//! \n@@FB1 <kind> <seq> <part> <more> <crc32> <base64>@@\n
//! ```
//!
//! - `kind`: `hello`, `line`, `output`, `done`, `error` or `bye` ([`FrameKind`]);
//! - `seq`: the message number, decimal, counting up from 0 per guest;
//! - `part`: the chunk index within the message, decimal from 0; `more` is `+` when more chunks
//!   follow and `$` on the last one. A payload is cut into chunks of at most [`CHUNK_BYTES`]
//!   raw bytes, so no console line is longer than about 300 bytes;
//! - `crc32`: 8 lowercase hex digits, CRC-32 (IEEE) of the text `kind seq part more base64`
//!   (the fields between the marker and the checksum, then the payload, single spaces), so a
//!   damaged seq or kind is caught as well as a damaged payload;
//! - `base64`: the chunk, standard alphabet with padding (empty for an empty payload).
//!
//! Kernel messages (`printk.time=1`: each starts with `[`) may be printed in the middle of a
//! frame line. A frame line never contains `[`, so inside a frame line the decoder cuts
//! everything from a `[` up to the next `\n` out as a console line of its own. `\r` is
//! ignored inside frames. A frame that does not check out is an error naming its seq, never a
//! frame; console lines outside frames are kept (the last [`KEPT_LINES`]) for error messages.
//!
//! Host→guest commands are plain lines on the guest's console (see [`crate::plan::HostCommand`]).

use std::collections::VecDeque;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The marker every frame line starts with.
pub const MARKER: &str = "@@FB1 ";
/// Raw payload bytes per frame line (base64: 256 characters).
pub const CHUNK_BYTES: usize = 192;
/// Console lines kept for [`FrameDecoder::tail_lines`].
pub const KEPT_LINES: usize = 200;
/// A frame candidate longer than this is not a frame (garbage starting with `@`).
const MAX_FRAME_LINE: usize = 1024;
/// A reassembled message larger than this is refused (a runaway sender).
const MAX_MESSAGE: usize = 64 << 20;
/// A console line longer than this is cut (kept lines stay bounded).
const MAX_CONSOLE_LINE: usize = 4096;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// The guest is up: a [`crate::plan::GuestHello`] as JSON.
    Hello,
    /// One `contract::RunnerLine` as JSON.
    Line,
    /// Raw stdout/stderr bytes of an Exec step.
    Output,
    /// A [`crate::plan::StepDone`] as JSON.
    StepDone,
    /// The guest hit an error (UTF-8 text); it powers off next.
    Error,
    /// The guest is powering off (UTF-8 reason, may be empty).
    Bye,
}

impl FrameKind {
    pub const ALL: [FrameKind; 6] = [
        FrameKind::Hello,
        FrameKind::Line,
        FrameKind::Output,
        FrameKind::StepDone,
        FrameKind::Error,
        FrameKind::Bye,
    ];

    /// The name on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            FrameKind::Hello => "hello",
            FrameKind::Line => "line",
            FrameKind::Output => "output",
            FrameKind::StepDone => "done",
            FrameKind::Error => "error",
            FrameKind::Bye => "bye",
        }
    }

    pub fn from_wire(name: &str) -> Option<FrameKind> {
        FrameKind::ALL.into_iter().find(|k| k.wire_name() == name)
    }
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// A frame that did not check out. Every message is one line and names the seq when it could
/// be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("corrupt console frame (seq {}): {reason}", seq_text(*.seq))]
    Corrupt { seq: Option<u64>, reason: String },
    #[error("console frame seq {seq} is incomplete: {reason}")]
    Incomplete { seq: u64, reason: String },
    #[error("console frames lost: expected seq {expected}, got seq {got}")]
    Lost { expected: u64, got: u64 },
}

fn seq_text(seq: Option<u64>) -> String {
    seq.map_or_else(|| "unreadable".to_string(), |s| s.to_string())
}

fn checksum(kind: &str, seq: &str, part: &str, more: &str, b64: &str) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for (i, field) in [kind, seq, part, more, b64].into_iter().enumerate() {
        if i > 0 {
            h.update(b" ");
        }
        h.update(field.as_bytes());
    }
    h.finalize()
}

/// The console text for one message: one line per [`CHUNK_BYTES`] of payload (at least one),
/// each preceded and followed by `\n`.
pub fn encode(kind: FrameKind, seq: u64, payload: &[u8]) -> String {
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(CHUNK_BYTES).collect()
    };
    let mut out = String::with_capacity(payload.len() * 4 / 3 + chunks.len() * 48);
    let seq_s = seq.to_string();
    for (part, chunk) in chunks.iter().enumerate() {
        let part_s = part.to_string();
        let more = if part + 1 < chunks.len() { "+" } else { "$" };
        let b64 = BASE64.encode(chunk);
        let crc = checksum(kind.wire_name(), &seq_s, &part_s, more, &b64);
        out.push('\n');
        out.push_str(MARKER);
        out.push_str(&format!(
            "{} {seq_s} {part_s} {more} {crc:08x} {b64}@@",
            kind.wire_name()
        ));
        out.push('\n');
    }
    out
}

/// One checked frame line.
struct Chunk {
    kind: FrameKind,
    seq: u64,
    part: u64,
    last: bool,
    bytes: Vec<u8>,
}

fn parse_chunk(line: &str) -> Result<Chunk, FrameError> {
    let body = line
        .strip_prefix(MARKER)
        .ok_or_else(|| corrupt(None, "no frame marker"))?;
    // The seq is read before anything is checked, so every error can name it.
    let fields: Vec<&str> = body.splitn(6, ' ').collect();
    let seq_guess = fields.get(1).and_then(|s| s.parse::<u64>().ok());
    let body = body
        .strip_suffix("@@")
        .ok_or_else(|| corrupt(seq_guess, "no end marker"))?;
    let fields: Vec<&str> = body.splitn(6, ' ').collect();
    let [kind, seq, part, more, crc, b64] = fields[..] else {
        return Err(corrupt(seq_guess, "wrong number of fields"));
    };
    let want = u32::from_str_radix(crc, 16)
        .ok()
        .filter(|_| crc.len() == 8)
        .ok_or_else(|| corrupt(seq_guess, "bad checksum field"))?;
    if checksum(kind, seq, part, more, b64) != want {
        return Err(corrupt(seq_guess, "checksum mismatch"));
    }
    let seq = seq_guess.ok_or_else(|| corrupt(None, "bad seq field"))?;
    let kind = FrameKind::from_wire(kind)
        .ok_or_else(|| corrupt(Some(seq), &format!("unknown kind {kind:?}")))?;
    let part = part
        .parse::<u64>()
        .map_err(|_| corrupt(Some(seq), "bad part field"))?;
    let last = match more {
        "$" => true,
        "+" => false,
        _ => return Err(corrupt(Some(seq), "bad continuation flag")),
    };
    let bytes = BASE64
        .decode(b64)
        .map_err(|e| corrupt(Some(seq), &format!("bad base64: {e}")))?;
    Ok(Chunk {
        kind,
        seq,
        part,
        last,
        bytes,
    })
}

fn corrupt(seq: Option<u64>, reason: &str) -> FrameError {
    FrameError::Corrupt {
        seq,
        reason: reason.to_string(),
    }
}

/// Where the decoder is within the console stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a console line.
    LineStart,
    /// Inside an ordinary console line.
    Console,
    /// Inside a frame candidate (a line that started with `@`).
    Frame,
    /// Inside a kernel message printed in the middle of a frame candidate.
    FrameNoise,
}

/// A message being reassembled from its chunks.
struct Partial {
    kind: FrameKind,
    seq: u64,
    next_part: u64,
    bytes: Vec<u8>,
}

/// Turns console bytes, in reads of any size, into frames; keeps the other console lines.
pub struct FrameDecoder {
    state: State,
    console: Vec<u8>,
    noise: Vec<u8>,
    candidate: Vec<u8>,
    lines: VecDeque<String>,
    partial: Option<Partial>,
    next_seq: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        FrameDecoder {
            state: State::LineStart,
            console: Vec::new(),
            noise: Vec::new(),
            candidate: Vec::new(),
            lines: VecDeque::new(),
            partial: None,
            next_seq: 0,
        }
    }

    /// Feed console bytes; returns the messages completed and the errors found, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        let mut out = Vec::new();
        for &b in bytes {
            self.push_byte(b, &mut out);
        }
        out
    }

    /// The last `n` console lines that were not frames (kernel messages included), oldest
    /// first, with the current unfinished line last.
    pub fn tail_lines(&self, n: usize) -> Vec<String> {
        let mut all: Vec<String> = self.lines.iter().cloned().collect();
        let pending = match self.state {
            State::Console => Some(&self.console),
            State::FrameNoise => Some(&self.noise),
            _ => None,
        };
        if let Some(p) = pending.map(|p| clean_line(p)).filter(|l| !l.is_empty()) {
            all.push(p);
        }
        let skip = all.len().saturating_sub(n);
        all.split_off(skip)
    }

    fn push_byte(&mut self, b: u8, out: &mut Vec<Result<Frame, FrameError>>) {
        match self.state {
            State::LineStart => match b {
                b'\n' | b'\r' => {}
                b'@' => {
                    self.candidate.clear();
                    self.candidate.push(b);
                    self.state = State::Frame;
                }
                _ => {
                    self.console.clear();
                    self.console.push(b);
                    self.state = State::Console;
                }
            },
            State::Console => {
                if b == b'\n' {
                    let line = std::mem::take(&mut self.console);
                    self.console_line(&line, out);
                    self.state = State::LineStart;
                } else if self.console.len() < MAX_CONSOLE_LINE {
                    self.console.push(b);
                }
            }
            State::Frame => match b {
                b'\n' => {
                    let line = std::mem::take(&mut self.candidate);
                    self.frame_line(&line, out);
                    self.state = State::LineStart;
                }
                b'\r' => {}
                b'[' => {
                    self.noise.clear();
                    self.noise.push(b);
                    self.state = State::FrameNoise;
                }
                _ => {
                    self.candidate.push(b);
                    if self.candidate.len() > MAX_FRAME_LINE {
                        // Not a frame: an ordinary console line that happens to start with `@`.
                        self.console = std::mem::take(&mut self.candidate);
                        self.state = State::Console;
                    }
                }
            },
            State::FrameNoise => {
                if b == b'\n' {
                    let noise = std::mem::take(&mut self.noise);
                    if is_kernel_stamp(&noise) {
                        self.keep_line(clean_line(&noise));
                        self.state = State::Frame;
                    } else {
                        // Not a kernel line cutting in: a damaged byte that read as `[`. The
                        // frame line ends here, and is reported as the damaged frame it is.
                        let mut line = std::mem::take(&mut self.candidate);
                        line.extend_from_slice(&noise);
                        self.frame_line(&line, out);
                        self.state = State::LineStart;
                    }
                } else if self.noise.len() < MAX_CONSOLE_LINE {
                    self.noise.push(b);
                }
            }
        }
    }

    fn keep_line(&mut self, line: String) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn console_line(&mut self, raw: &[u8], out: &mut Vec<Result<Frame, FrameError>>) {
        let line = clean_line(raw);
        // A frame line with a damaged marker is still a frame gone wrong, not console text.
        if looks_like_frame(&line) {
            let seq = line.split(' ').nth(2).and_then(|s| s.parse::<u64>().ok());
            out.push(Err(corrupt(seq, "frame marker damaged")));
        }
        self.keep_line(line);
    }

    fn frame_line(&mut self, raw: &[u8], out: &mut Vec<Result<Frame, FrameError>>) {
        let text = String::from_utf8_lossy(raw);
        if !text.starts_with(MARKER) {
            self.console_line(raw, out);
            return;
        }
        match parse_chunk(&text) {
            Ok(chunk) => self.chunk(chunk, out),
            Err(e) => {
                if let FrameError::Corrupt { seq: Some(s), .. } = e {
                    if self.partial.as_ref().is_some_and(|p| p.seq == s) {
                        self.partial = None;
                    }
                    // Reported once as corrupt, not again as lost.
                    if s == self.next_seq {
                        self.next_seq += 1;
                    }
                }
                out.push(Err(e));
            }
        }
    }

    fn chunk(&mut self, c: Chunk, out: &mut Vec<Result<Frame, FrameError>>) {
        if let Some(p) = self.partial.take_if(|p| p.seq != c.seq) {
            out.push(Err(FrameError::Incomplete {
                seq: p.seq,
                reason: format!("seq {} started before its last part", c.seq),
            }));
        }
        let mut p = match self.partial.take() {
            Some(p) => p,
            None => {
                if c.part != 0 {
                    out.push(Err(FrameError::Incomplete {
                        seq: c.seq,
                        reason: format!("part {} arrived without part 0", c.part),
                    }));
                    return;
                }
                if c.seq != self.next_seq {
                    out.push(Err(FrameError::Lost {
                        expected: self.next_seq,
                        got: c.seq,
                    }));
                }
                Partial {
                    kind: c.kind,
                    seq: c.seq,
                    next_part: 0,
                    bytes: Vec::new(),
                }
            }
        };
        if c.part != p.next_part || c.kind != p.kind {
            out.push(Err(FrameError::Incomplete {
                seq: p.seq,
                reason: format!("expected part {} of kind {}", p.next_part, p.kind),
            }));
            self.next_seq = p.seq + 1;
            return;
        }
        if p.bytes.len() + c.bytes.len() > MAX_MESSAGE {
            out.push(Err(FrameError::Incomplete {
                seq: p.seq,
                reason: format!("larger than {MAX_MESSAGE} bytes"),
            }));
            self.next_seq = p.seq + 1;
            return;
        }
        p.bytes.extend_from_slice(&c.bytes);
        p.next_part += 1;
        if c.last {
            self.next_seq = p.seq + 1;
            out.push(Ok(Frame {
                kind: p.kind,
                seq: p.seq,
                payload: p.bytes,
            }));
        } else {
            self.partial = Some(p);
        }
    }
}

/// One damaged byte leaves either the start or the end marker whole: a line that has one of
/// them (or the rest of the start marker) was a frame.
fn looks_like_frame(line: &str) -> bool {
    if line.len() > MAX_FRAME_LINE {
        return false;
    }
    line.contains("@FB1 ")
        || line.contains("@@FB")
        || (line.contains("FB1 ") && line.ends_with("@@"))
        || (line.starts_with('@') && line.ends_with("@@") && line.len() > 4)
}

/// Whether `line` starts as a kernel log line does with `printk.time=1`: `[`, spaces, digits,
/// `.`, digits, `]`.
fn is_kernel_stamp(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"[") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    let int = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let Some(rest) = rest[int..].strip_prefix(b".") else {
        return false;
    };
    let frac = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    int > 0 && frac > 0 && rest[frac..].starts_with(b"]")
}

fn clean_line(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw)
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(text: &[u8]) -> Vec<Result<Frame, FrameError>> {
        FrameDecoder::new().push(text)
    }

    #[test]
    fn one_short_frame_round_trips() {
        let text = encode(FrameKind::Hello, 0, b"{\"a\":1}");
        assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 1);
        let got = decode_all(text.as_bytes());
        assert_eq!(
            got,
            vec![Ok(Frame {
                kind: FrameKind::Hello,
                seq: 0,
                payload: b"{\"a\":1}".to_vec()
            })]
        );
    }

    #[test]
    fn empty_payload_is_one_frame() {
        let text = encode(FrameKind::Bye, 0, b"");
        let got = decode_all(text.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().payload, b"");
    }

    #[test]
    fn long_payload_is_several_short_lines() {
        let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let text = encode(FrameKind::Output, 0, &payload);
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 5000usize.div_ceil(CHUNK_BYTES));
        assert!(lines.iter().all(|l| l.len() < 320), "line too long");
        let got = decode_all(text.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().payload, payload);
    }

    #[test]
    fn kernel_line_in_the_middle_of_a_frame_is_cut_out_and_kept() {
        let text = encode(FrameKind::Line, 0, b"hello world");
        let mid = text.len() / 2;
        let noisy = format!(
            "{}[   12.345678] random: crng init done\r\n{}",
            &text[..mid],
            &text[mid..]
        );
        let mut d = FrameDecoder::new();
        let got = d.push(noisy.as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().payload, b"hello world");
        assert_eq!(
            d.tail_lines(5),
            vec!["[   12.345678] random: crng init done".to_string()]
        );
    }

    #[test]
    fn crlf_line_endings_and_console_lines_around_frames() {
        let mut text =
            String::from("[    0.000000] Linux version 6.12\r\nRun /init as init process\r\n");
        text.push_str(&encode(FrameKind::Hello, 0, b"x").replace('\n', "\r\n"));
        text.push_str("some stray line\r\n");
        text.push_str(&encode(FrameKind::Bye, 1, b"").replace('\n', "\r\n"));
        let mut d = FrameDecoder::new();
        let got = d.push(text.as_bytes());
        let kinds: Vec<FrameKind> = got.iter().map(|f| f.as_ref().unwrap().kind).collect();
        assert_eq!(kinds, vec![FrameKind::Hello, FrameKind::Bye]);
        assert_eq!(
            d.tail_lines(2),
            vec![
                "Run /init as init process".to_string(),
                "some stray line".to_string()
            ]
        );
        assert_eq!(d.tail_lines(10).len(), 3);
    }

    #[test]
    fn a_flipped_payload_byte_is_an_error_naming_the_seq() {
        let text = encode(FrameKind::Line, 7, b"the payload bytes");
        let i = text.find("@@\n").unwrap() - 3;
        let mut bytes = text.into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let got = decode_all(&bytes);
        assert_eq!(got.len(), 1);
        let err = got[0].as_ref().unwrap_err();
        assert!(err.to_string().contains("seq 7"), "{err}");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn a_damaged_seq_is_caught_by_the_checksum() {
        let text = encode(FrameKind::Line, 12, b"abc").replace(" 12 ", " 13 ");
        let got = decode_all(text.as_bytes());
        assert!(
            matches!(got[..], [Err(FrameError::Corrupt { .. })]),
            "{got:?}"
        );
    }

    #[test]
    fn a_missing_chunk_is_an_error_not_a_short_message() {
        let payload = vec![b'x'; CHUNK_BYTES * 3];
        let text = encode(FrameKind::Output, 0, &payload);
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        // Lines alternate "\n" and the frame line: drop the middle chunk.
        let without: String = lines
            .iter()
            .filter(|l| !l.contains(" 0 1 + "))
            .copied()
            .collect();
        let got = decode_all(without.as_bytes());
        assert!(got.iter().all(|r| r.is_err()), "{got:?}");
        assert!(got[0].as_ref().unwrap_err().to_string().contains("seq 0"));
    }

    #[test]
    fn a_lost_message_is_reported_and_the_next_one_kept() {
        let text = format!(
            "{}{}",
            encode(FrameKind::Hello, 0, b"a"),
            encode(FrameKind::Line, 2, b"c")
        );
        let got = decode_all(text.as_bytes());
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[1],
            Err(FrameError::Lost {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(got[2].as_ref().unwrap().seq, 2);
    }

    #[test]
    fn garbage_is_console_text() {
        let mut d = FrameDecoder::new();
        let got = d.push(b"@@@@ \x00\xff not a frame\n@\n@@FB\n\x1b[0m");
        assert!(got.iter().all(|r| r.is_err()) || got.is_empty());
        // "@@FB" alone is a damaged frame, the rest is console text.
        assert!(got.len() <= 1, "{got:?}");
        let got = d.push(encode(FrameKind::Hello, 0, b"ok").as_bytes());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap().payload, b"ok");
    }

    #[test]
    fn a_runaway_line_starting_with_at_is_not_a_frame() {
        let mut d = FrameDecoder::new();
        let mut line = vec![b'@'; 5000];
        line.push(b'\n');
        assert!(d.push(&line).is_empty());
        assert_eq!(d.tail_lines(1)[0].len(), MAX_CONSOLE_LINE);
    }

    #[test]
    fn kind_names_round_trip() {
        for k in FrameKind::ALL {
            assert_eq!(FrameKind::from_wire(k.wire_name()), Some(k));
        }
    }
}
