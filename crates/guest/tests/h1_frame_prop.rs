//! Property tests of the console framing: any payloads survive split reads, `\r\n` endings
//! and kernel lines printed at any byte position; a damaged byte is never accepted silently.

use guest::frame::{Frame, FrameDecoder, FrameError, FrameKind, encode};
use proptest::prelude::*;

fn kind() -> impl Strategy<Value = FrameKind> {
    proptest::sample::select(FrameKind::ALL.to_vec())
}

fn messages() -> impl Strategy<Value = Vec<(FrameKind, Vec<u8>)>> {
    proptest::collection::vec(
        (kind(), proptest::collection::vec(any::<u8>(), 0..700)),
        1..5,
    )
}

fn encode_all(msgs: &[(FrameKind, Vec<u8>)]) -> Vec<u8> {
    msgs.iter()
        .enumerate()
        .flat_map(|(seq, (k, p))| encode(*k, seq as u64, p).into_bytes())
        .collect()
}

fn expected(msgs: &[(FrameKind, Vec<u8>)]) -> Vec<Frame> {
    msgs.iter()
        .enumerate()
        .map(|(seq, (k, p))| Frame {
            kind: *k,
            seq: seq as u64,
            payload: p.clone(),
        })
        .collect()
}

fn feed(bytes: &[u8], cuts: &[usize]) -> Vec<Result<Frame, FrameError>> {
    let mut d = FrameDecoder::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    for c in cuts {
        out.extend(d.push(&bytes[at..c]));
        at = c;
    }
    out.extend(d.push(&bytes[at..]));
    out
}

fn kernel_line(n: u32) -> String {
    format!(
        "[{:5}.{:06}] virtio_net virtio0 eth0: msg {n} (a=1, b=[x])\r\n",
        n % 1000,
        n
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn split_reads_give_the_same_frames(
        msgs in messages(),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes = encode_all(&msgs);
        let got: Vec<Frame> = feed(&bytes, &cuts).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(got, expected(&msgs));
    }

    #[test]
    fn kernel_lines_at_any_byte_are_cut_out(
        msgs in messages(),
        inserts in proptest::collection::vec((any::<usize>(), any::<u32>()), 1..6),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        crlf in any::<bool>(),
    ) {
        let clean = encode_all(&msgs);
        let clean = if crlf {
            String::from_utf8(clean).unwrap().replace('\n', "\r\n").into_bytes()
        } else {
            clean
        };
        let mut positions: Vec<(usize, u32)> =
            inserts.iter().map(|(p, n)| (p % (clean.len() + 1), *n)).collect();
        positions.sort_unstable();
        let mut noisy = Vec::new();
        let mut at = 0;
        for (p, n) in &positions {
            noisy.extend_from_slice(&clean[at..*p]);
            noisy.extend_from_slice(kernel_line(*n).as_bytes());
            at = *p;
        }
        noisy.extend_from_slice(&clean[at..]);
        let mut d = FrameDecoder::new();
        let results = d.push(&noisy);
        let got: Vec<Frame> = results.into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(got, expected(&msgs));
        // Every kernel line is kept for error messages, whole.
        let tail = d.tail_lines(100);
        for (_, n) in &positions {
            let want = kernel_line(*n);
            prop_assert!(tail.iter().any(|l| l == want.trim_end()), "{:?} not in {:?}", want, tail);
        }
        // The same bytes in pieces decode the same.
        let pieces: Vec<Frame> = feed(&noisy, &cuts).into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(pieces, expected(&msgs));
    }

    #[test]
    fn a_changed_byte_is_never_accepted(
        msgs in messages(),
        pos in any::<usize>(),
        new in any::<u8>(),
    ) {
        let mut bytes = encode_all(&msgs);
        let pos = pos % bytes.len();
        prop_assume!(bytes[pos] != new);
        bytes[pos] = new;
        // Later console output ends a frame line whose `\n` was hit.
        bytes.push(b'\n');
        let got = FrameDecoder::new().push(&bytes);
        let want = expected(&msgs);
        // Whatever decodes is exactly one of the messages sent; the damage is reported unless
        // it hit only the framing's separators (a `\n` turned into `\r`, say).
        for f in got.iter().flatten() {
            prop_assert!(want.contains(f), "accepted a frame that was not sent: {:?}", f);
        }
        let ok = got.iter().filter(|r| r.is_ok()).count();
        if ok < want.len() {
            prop_assert!(got.iter().any(|r| r.is_err()), "a message vanished without an error");
        }
    }

    #[test]
    fn garbage_never_panics_and_never_makes_frames(
        bytes in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let got = FrameDecoder::new().push(&bytes);
        prop_assert!(got.iter().all(|r| r.is_err()));
    }
}
