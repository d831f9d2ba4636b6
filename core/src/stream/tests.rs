//! Tests of the framed stream, run against both buffer modes through one
//! small driver trait, with `Fixed`, the real `LengthPrefixed` and two test
//! framings of our own (a u32 length prefix without a built-in limit, and
//! newline-delimited lines whose frame size is never known in advance).

use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::*;
use crate::framing::{
    Decode, Delimited, EncodeError, Fixed, FrameError, FrameHeader, Framing, LengthPrefixed,
    OversizePolicy,
};

// ---------------------------------------------------------------- framings

/// u32 big-endian payload length; frames over `max` (header included) fail
/// or are skipped. `max = usize::MAX` means no limit of its own.
#[derive(Clone, Copy, Debug)]
struct TestLp {
    max: usize,
    skip: bool,
}

impl TestLp {
    const UNLIMITED: TestLp = TestLp {
        max: usize::MAX,
        skip: false,
    };
}

impl Framing for TestLp {
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        let Some(h) = buf.get(..4) else {
            return Ok(Decode::Incomplete { need: Some(4) });
        };
        let len = u64::from(u32::from_be_bytes(h.try_into().unwrap())) + 4;
        if len > self.max as u64 {
            if self.skip {
                return Ok(Decode::Skip {
                    len,
                    oversize: Some(Oversize {
                        len: Some(len),
                        max: self.max,
                    }),
                });
            }
            return Err(FrameError::FrameTooLong { len, max: self.max });
        }
        let len = usize::try_from(len).unwrap();
        if buf.len() < len {
            Ok(Decode::Incomplete { need: Some(len) })
        } else {
            Ok(Decode::Frame {
                len,
                payload: 4..len,
            })
        }
    }

    fn max_frame_len(&self) -> usize {
        self.max
    }

    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        if payload.len() > self.max.saturating_sub(4) {
            return Err(EncodeError::PayloadTooLong {
                len: payload.len(),
                max: self.max - 4,
            });
        }
        Ok(FrameHeader::new(&(payload.len() as u32).to_be_bytes()))
    }
}

/// Lines ending in `\n`, no limit of their own: the stream's buffer limit is
/// the only one, and the frame size is never known before the delimiter.
#[derive(Clone, Copy, Debug)]
struct TestLines;

impl Framing for TestLines {
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        Ok(match buf.iter().position(|&b| b == b'\n') {
            Some(i) => Decode::Frame {
                len: i + 1,
                payload: 0..i,
            },
            None => Decode::Incomplete { need: None },
        })
    }

    fn max_frame_len(&self) -> usize {
        usize::MAX
    }

    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        match payload.iter().position(|&b| b == b'\n') {
            Some(at) => Err(EncodeError::ContainsDelimiter { at }),
            None => Ok(FrameHeader::EMPTY),
        }
    }

    fn trailer(&self) -> &[u8] {
        b"\n"
    }
}

fn lp(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

// ---------------------------------------------------------------- drivers

/// What came out of a stream, owned, so both modes can be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rec {
    Frame(Vec<u8>),
    Skipped(Oversize),
    Closed,
    Err(StreamError),
}

/// The receive side of either mode.
trait Driver {
    fn input(&mut self, bytes: &[u8]) -> Result<usize, StreamError>;
    /// Through `receive_buffer` + `commit_received`.
    fn input_zero_copy(&mut self, bytes: &[u8]) -> Result<usize, StreamError>;
    fn eof(&mut self) -> Result<(), StreamError>;
    fn next(&mut self) -> Result<Option<Rec>, StreamError>;
    /// Through `drain_events_with`: every event available now.
    fn next_all(&mut self, out: &mut Vec<Rec>) -> Result<usize, StreamError>;
    fn counters(&self) -> Stats;
}

fn rec<T: AsRef<[u8]>>(e: Event<T>) -> Rec {
    match e {
        Event::Frame(f) => Rec::Frame(f.as_ref().to_vec()),
        Event::Skipped(o) => Rec::Skipped(o),
        Event::Closed => Rec::Closed,
    }
}

impl<F: Framing> Driver for BorrowedFramedStream<'_, F> {
    fn input(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        self.handle_input(bytes)
    }
    fn input_zero_copy(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        let spare = self.receive_buffer();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.commit_received(n)?;
        Ok(n)
    }
    fn eof(&mut self) -> Result<(), StreamError> {
        self.handle_eof()
    }
    fn next(&mut self) -> Result<Option<Rec>, StreamError> {
        Ok(self.poll_event()?.map(rec))
    }
    fn next_all(&mut self, out: &mut Vec<Rec>) -> Result<usize, StreamError> {
        self.drain_events_with(|e| out.push(rec(e)))
    }
    fn counters(&self) -> Stats {
        self.stats()
    }
}

#[cfg(feature = "alloc")]
impl<F: Framing> Driver for FramedStream<F> {
    fn input(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        self.handle_input(bytes)
    }
    fn input_zero_copy(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        let spare = self.receive_buffer();
        let n = spare.len().min(bytes.len());
        spare[..n].copy_from_slice(&bytes[..n]);
        self.commit_received(n)?;
        Ok(n)
    }
    fn eof(&mut self) -> Result<(), StreamError> {
        self.handle_eof()
    }
    fn next(&mut self) -> Result<Option<Rec>, StreamError> {
        Ok(self.poll_event()?.map(rec))
    }
    fn next_all(&mut self, out: &mut Vec<Rec>) -> Result<usize, StreamError> {
        self.drain_events_with(|e| out.push(rec(e)))
    }
    fn counters(&self) -> Stats {
        self.stats()
    }
}

/// Polls until `Ok(None)` or an error; returns how many things came out and
/// whether an error ended it.
fn drain<D: Driver>(d: &mut D, out: &mut Vec<Rec>, batch: bool) -> (usize, bool) {
    if batch {
        let before = out.len();
        return match d.next_all(out) {
            Ok(n) => {
                assert_eq!(n, out.len() - before, "drain_events_with miscounted");
                (n, false)
            }
            Err(e) => {
                out.push(Rec::Err(e));
                (out.len() - before, true)
            }
        };
    }
    let mut n = 0;
    loop {
        match d.next() {
            Ok(Some(r)) => {
                out.push(r);
                n += 1;
            }
            Ok(None) => return (n, false),
            Err(e) => {
                out.push(Rec::Err(e));
                return (n + 1, true);
            }
        }
    }
}

/// The standard driver loop: offers `input` cut at `cuts`, re-offering what
/// was refused after draining events, then the EOF. Stops at the first error.
fn drive<D: Driver>(
    d: &mut D,
    input: &[u8],
    cuts: &[usize],
    zero_copy: bool,
    batch: bool,
) -> Vec<Rec> {
    let mut out = Vec::new();
    let chunks = crate::testutil::split_at_cuts(input, cuts);
    for chunk in chunks {
        let mut rest = chunk;
        loop {
            let r = if zero_copy {
                d.input_zero_copy(rest)
            } else {
                d.input(rest)
            };
            let taken = match r {
                Ok(n) => n,
                Err(e) => {
                    out.push(Rec::Err(e));
                    return out;
                }
            };
            rest = &rest[taken..];
            let (polled, failed) = drain(d, &mut out, batch);
            if failed {
                return out;
            }
            if rest.is_empty() {
                break;
            }
            assert!(taken > 0 || polled > 0, "stream stalled with input left");
        }
    }
    if let Err(e) = d.eof() {
        out.push(Rec::Err(e));
        return out;
    }
    drain(d, &mut out, batch);
    out
}

/// Runs `input` through both modes, both input paths and both ways of
/// polling (`poll_event` one by one, `drain_events_with`), with a receive
/// buffer of `cap` bytes, and asserts they all agree, counters included
/// between the two ways of polling; returns the events.
fn run_both<F: Framing + Clone>(framing: &F, cap: usize, input: &[u8], cuts: &[usize]) -> Vec<Rec> {
    let mut results = Vec::new();
    for zero_copy in [false, true] {
        let mut borrowed_stats = Vec::new();
        #[cfg(feature = "alloc")]
        let mut owned_stats = Vec::new();
        for batch in [false, true] {
            let mut rx = vec![0u8; cap];
            let mut tx = [0u8; 16];
            let mut b = BorrowedFramedStream::new(framing.clone(), &mut rx, &mut tx);
            results.push(drive(&mut b, input, cuts, zero_copy, batch));
            borrowed_stats.push(b.counters());
            #[cfg(feature = "alloc")]
            {
                let mut o = FramedStream::new(framing.clone()).with_max_buffered(cap);
                results.push(drive(&mut o, input, cuts, zero_copy, batch));
                owned_stats.push(o.counters());
            }
        }
        assert_eq!(
            borrowed_stats[0], borrowed_stats[1],
            "counters, {input:?} cut at {cuts:?}"
        );
        #[cfg(feature = "alloc")]
        assert_eq!(
            owned_stats[0], owned_stats[1],
            "counters, {input:?} cut at {cuts:?}"
        );
    }
    for r in &results[1..] {
        assert_eq!(
            &results[0], r,
            "modes disagree on {input:?} cut at {cuts:?}"
        );
    }
    results.swap_remove(0)
}

/// `run_both` whole, byte by byte and at every two-way split.
fn run_all_ways<F: Framing + Clone>(framing: &F, cap: usize, input: &[u8]) -> Vec<Rec> {
    let whole = run_both(framing, cap, input, &[]);
    assert_eq!(whole, run_both(framing, cap, input, &vec![1; input.len()]));
    for cut in 0..=input.len() {
        assert_eq!(
            whole,
            run_both(framing, cap, input, &[cut]),
            "split at {cut}"
        );
    }
    whole
}

fn frame(p: &[u8]) -> Rec {
    Rec::Frame(p.to_vec())
}

fn proto(e: ProtocolError) -> Rec {
    Rec::Err(StreamError::Protocol(e))
}

// ---------------------------------------------------------------- receive

#[test]
fn frames_in_any_chunking_then_clean_close() {
    let mut input = lp(b"hello");
    input.extend(lp(b""));
    input.extend(lp(b"world!"));
    let out = run_all_ways(&TestLp::UNLIMITED, 64, &input);
    assert_eq!(
        out,
        [frame(b"hello"), frame(b""), frame(b"world!"), Rec::Closed]
    );
    let out = run_all_ways(&Fixed::new(3), 8, b"abcdefghi");
    assert_eq!(
        out,
        [frame(b"abc"), frame(b"def"), frame(b"ghi"), Rec::Closed]
    );
}

#[test]
fn empty_stream_closes_cleanly_once() {
    let (mut rx, mut tx) = ([0u8; 4], [0u8; 4]);
    let mut s = BorrowedFramedStream::new(Fixed::new(2), &mut rx, &mut tx);
    assert_eq!(s.poll_event(), Ok(None));
    assert_eq!(s.state(), StreamState::Open);
    s.handle_eof().unwrap();
    assert_eq!(s.state(), StreamState::Draining);
    s.handle_eof().unwrap(); // idempotent
    assert_eq!(s.poll_event(), Ok(Some(Event::Closed)));
    assert_eq!(s.state(), StreamState::Closed);
    assert!(s.is_terminal());
    assert_eq!(s.poll_event(), Ok(None)); // edge-triggered
    assert_eq!(s.poll_frame(), Ok(None));
    assert_eq!(s.handle_input(b"x"), Err(StreamError::InputAfterEof));
    assert!(s.receive_buffer().is_empty());
    assert_eq!(s.commit_received(0), Err(StreamError::InputAfterEof));
    // Half-close: sending still works after the peer closed.
    s.send(b"ok").unwrap();
    assert_eq!(s.poll_transmit(), Some(&b"ok"[..]));
}

#[test]
fn input_after_eof_is_local_misuse_and_takes_nothing() {
    let (mut rx, mut tx) = ([0u8; 4], [0u8; 4]);
    let mut s = BorrowedFramedStream::new(Fixed::new(2), &mut rx, &mut tx);
    s.handle_input(b"a").unwrap();
    s.handle_eof().unwrap();
    let e = s.handle_input(b"b").unwrap_err();
    assert_eq!(e, StreamError::InputAfterEof);
    assert_eq!(e.protocol(), None);
    assert_eq!(s.stats().bytes_received, 1);
    // The bytes before the EOF decide: truncated inside a frame.
    assert_eq!(
        s.poll_event(),
        Err(StreamError::Protocol(ProtocolError::Truncated {
            have: 1,
            need: Some(2)
        }))
    );
}

#[test]
fn eof_inside_a_frame_is_truncation_with_the_numbers() {
    // Inside the body: the frame's total size is known.
    let mut input = lp(b"ok");
    input.extend_from_slice(&lp(b"0123456789")[..7]);
    assert_eq!(
        run_all_ways(&TestLp::UNLIMITED, 64, &input),
        [
            frame(b"ok"),
            proto(ProtocolError::Truncated {
                have: 7,
                need: Some(14)
            })
        ]
    );
    // Inside the header: what is needed next.
    assert_eq!(
        run_all_ways(&TestLp::UNLIMITED, 64, b"\x00\x00"),
        [proto(ProtocolError::Truncated {
            have: 2,
            need: Some(4)
        })]
    );
    // A line without its delimiter: size unknown.
    assert_eq!(
        run_all_ways(&TestLines, 64, b"one\ntw"),
        [
            frame(b"one"),
            proto(ProtocolError::Truncated {
                have: 2,
                need: None
            })
        ]
    );
    // Inside a frame being skipped.
    let skip = TestLp { max: 8, skip: true };
    let mut input = lp(b"0123456789");
    input.truncate(9);
    assert_eq!(
        run_all_ways(&skip, 16, &input),
        [
            Rec::Skipped(Oversize {
                len: Some(14),
                max: 8
            }),
            proto(ProtocolError::Truncated {
                have: 9,
                need: Some(14)
            })
        ]
    );
}

#[test]
fn backpressure_takes_fewer_bytes_and_loses_nothing() {
    let input: Vec<u8> = [lp(b"aaaa"), lp(b"bbbb"), lp(b"cccc")].concat(); // 3 x 8
    let (mut rx, mut tx) = ([0u8; 10], [0u8; 4]);
    let mut s = BorrowedFramedStream::new(TestLp::UNLIMITED, &mut rx, &mut tx);
    assert_eq!(s.handle_input(&input), Ok(10));
    assert_eq!(s.handle_input(&input[10..]), Ok(0)); // full: nothing taken
    assert_eq!(s.poll_frame(), Ok(Some(&b"aaaa"[..])));
    assert_eq!(s.poll_frame(), Ok(None));
    assert_eq!(s.buffered_len(), 2);
    assert_eq!(s.handle_input(&input[10..]), Ok(8));
    assert_eq!(s.poll_frame(), Ok(Some(&b"bbbb"[..])));
    assert_eq!(s.handle_input(&input[18..]), Ok(6));
    assert_eq!(s.poll_frame(), Ok(Some(&b"cccc"[..])));
    assert_eq!(s.stats().bytes_received, 24);
    assert_eq!(s.stats().frames_received, 3);

    #[cfg(feature = "alloc")]
    {
        // The owned stream under the same limit behaves the same.
        let mut s = FramedStream::new(TestLp::UNLIMITED).with_max_buffered(10);
        assert_eq!(s.handle_input(&input), Ok(10));
        assert_eq!(s.handle_input(&input[10..]), Ok(0));
        assert!(s.receive_buffer().is_empty());
        assert_eq!(s.poll_frame().unwrap().as_deref(), Some(&b"aaaa"[..]));
        assert_eq!(s.receive_buffer().len(), 8);
        assert_eq!(s.handle_input(&input[10..]), Ok(8));
        assert_eq!(s.poll_frame().unwrap().as_deref(), Some(&b"bbbb"[..]));
    }
}

#[test]
fn four_gib_length_header_fails_without_buffering_past_the_limit() {
    let header = [0xff, 0xff, 0xff, 0xff];
    let need = Some(0xffff_ffff_usize + 4);
    // Our own prefix framing has no limit: the buffer limit catches it.
    assert_eq!(
        run_all_ways(&TestLp::UNLIMITED, 64, &header),
        [proto(ProtocolError::FrameExceedsBuffer {
            need,
            capacity: 64
        })]
    );
    let real = LengthPrefixed::new().with_max_frame_len(usize::MAX);
    assert_eq!(
        run_all_ways(&real, 64, &header),
        [proto(ProtocolError::FrameExceedsBuffer {
            need,
            capacity: 64
        })]
    );
    // The real framing's own limit (8 MiB) says so first.
    assert_eq!(
        run_all_ways(&LengthPrefixed::new(), 64, &header),
        [proto(ProtocolError::Frame(FrameError::FrameTooLong {
            len: 0xffff_ffff + 4,
            max: LengthPrefixed::DEFAULT_MAX_FRAME_LEN
        }))]
    );

    #[cfg(feature = "alloc")]
    {
        // Nothing is buffered beyond the header, however much body is offered.
        let mut s = FramedStream::new(TestLp::UNLIMITED).with_max_buffered(1 << 20);
        let mut input = header.to_vec();
        input.resize(4096, 0x55);
        assert_eq!(s.handle_input(&input[..4]), Ok(4));
        let e = s.poll_event().unwrap_err();
        assert_eq!(
            e.protocol(),
            Some(ProtocolError::FrameExceedsBuffer {
                need,
                capacity: 1 << 20
            })
        );
        assert_eq!(s.handle_input(&input[4..]), Err(e));
        assert_eq!(s.buffered_len(), 4);
        assert!(s.receive_buffer().is_empty());
    }
}

#[test]
fn frame_known_to_exceed_the_buffer_fails_at_its_header() {
    let mut input = lp(b"fits");
    input.extend(lp(&[7; 20]));
    assert_eq!(
        run_all_ways(&TestLp::UNLIMITED, 16, &input),
        [
            frame(b"fits"),
            proto(ProtocolError::FrameExceedsBuffer {
                need: Some(24),
                capacity: 16
            })
        ]
    );
}

#[test]
fn unknown_size_frame_fails_when_the_buffer_fills() {
    assert_eq!(
        run_all_ways(&TestLines, 8, b"short\nmuch too long\n"),
        [
            frame(b"short"),
            proto(ProtocolError::FrameExceedsBuffer {
                need: None,
                capacity: 8
            })
        ]
    );
    // A line of exactly the buffer size (delimiter included) fits.
    assert_eq!(
        run_all_ways(&TestLines, 8, b"1234567\n"),
        [frame(b"1234567"), Rec::Closed]
    );
}

#[test]
fn protocol_error_is_terminal_and_repeats_everywhere() {
    let framing = TestLp {
        max: 8,
        skip: false,
    };
    let err = ProtocolError::Frame(FrameError::FrameTooLong { len: 104, max: 8 });
    let se = StreamError::Protocol(err);

    let (mut rx, mut tx) = ([0u8; 16], [0u8; 16]);
    let mut s = BorrowedFramedStream::new(framing, &mut rx, &mut tx);
    s.send(b"hi").unwrap();
    s.handle_input(b"\x00\x00\x00\x01x\x00\x00\x00\x64")
        .unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"x"[..])));
    assert_eq!(s.poll_event(), Err(se));
    assert_eq!(s.poll_event(), Err(se));
    assert_eq!(s.poll_frame(), Err(se));
    assert_eq!(s.handle_input(b"more"), Err(se));
    assert_eq!(s.commit_received(0), Err(se));
    assert_eq!(s.handle_eof(), Err(se));
    assert_eq!(s.send(b"x"), Err(SendError::Protocol(err)));
    assert!(s.receive_buffer().is_empty());
    assert_eq!(s.state(), StreamState::Failed(err));
    assert!(s.is_terminal());
    // What was queued before can still go out.
    assert_eq!(s.poll_transmit(), Some(&b"\x00\x00\x00\x02hi"[..]));
    s.advance_transmit(6).unwrap();

    #[cfg(feature = "alloc")]
    {
        let mut s = FramedStream::new(framing);
        s.handle_input(b"\x00\x00\x00\x64").unwrap();
        assert_eq!(s.poll_event(), Err(se));
        assert_eq!(s.handle_input(b""), Err(se));
        assert_eq!(s.handle_eof(), Err(se));
        assert_eq!(s.poll_frame(), Err(se));
        assert_eq!(s.send_slice(b"x"), Err(SendError::Protocol(err)));
        assert_eq!(s.send(&b"x"[..]), Err(SendError::Protocol(err)));
        assert_eq!(s.state(), StreamState::Failed(err));
    }
}

#[test]
fn oversize_frames_are_skipped_and_counted() {
    let skip = TestLp { max: 8, skip: true };
    let input: Vec<u8> = [lp(b"a"), lp(&[9; 30]), lp(b"b"), lp(&[9; 5]), lp(b"c")].concat();
    let out = run_all_ways(&skip, 16, &input);
    let skipped = |len| {
        Rec::Skipped(Oversize {
            len: Some(len),
            max: 8,
        })
    };
    assert_eq!(
        out,
        [
            frame(b"a"),
            skipped(34),
            frame(b"b"),
            skipped(9),
            frame(b"c"),
            Rec::Closed
        ]
    );

    #[cfg(feature = "alloc")]
    {
        // The counters, and poll_frame passing over the skips.
        let mut s = FramedStream::new(skip).with_max_buffered(16);
        let mut frames = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = s.handle_input(rest).unwrap();
            rest = &rest[n..];
            while let Some(f) = s.poll_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames, [&b"a"[..], b"b", b"c"]);
        let st = s.stats();
        assert_eq!(st.frames_skipped, 2);
        assert_eq!(st.bytes_skipped, 34 + 9);
        assert_eq!(st.frames_received, 3);
        assert_eq!(st.bytes_received, input.len() as u64);
    }
}

#[test]
fn skipping_discards_without_buffering() {
    // A 1 MiB frame skipped through a 16-byte buffer.
    let skip = TestLp { max: 8, skip: true };
    let (mut rx, mut tx) = ([0u8; 16], [0u8; 1]);
    let mut s = BorrowedFramedStream::new(skip, &mut rx, &mut tx);
    s.handle_input(&(1u32 << 20).to_be_bytes()).unwrap();
    assert_eq!(
        s.poll_event(),
        Ok(Some(Event::Skipped(Oversize {
            len: Some((1 << 20) + 4),
            max: 8
        })))
    );
    let body = vec![0xeeu8; 4096];
    for _ in 0..255 {
        assert_eq!(s.handle_input(&body), Ok(4096));
        assert_eq!(s.buffered_len(), 0);
    }
    // The zero-copy path discards too.
    let spare = s.receive_buffer();
    assert_eq!(spare.len(), 16);
    spare.fill(0xee);
    s.commit_received(16).unwrap();
    assert_eq!(s.buffered_len(), 0);
    // Last 4080 body bytes, then a frame, in one chunk.
    let mut tail = vec![0xee; 4080];
    tail.extend(lp(b"next"));
    let mut rest = &tail[..];
    while !rest.is_empty() {
        let n = s.handle_input(rest).unwrap();
        rest = &rest[n..];
    }
    assert_eq!(s.poll_frame(), Ok(Some(&b"next"[..])));
    assert_eq!(s.stats().bytes_skipped, (1 << 20) + 4);
}

#[test]
fn real_length_prefixed_oversize_skip_and_truncation() {
    let f = LengthPrefixed::new()
        .with_max_frame_len(12)
        .with_oversize(OversizePolicy::Skip);
    let mut input: Vec<u8> = [lp(b"one"), lp(&[1; 100]), lp(b"two")].concat();
    let out = run_all_ways(&f, 32, &input);
    assert_eq!(
        out,
        [
            frame(b"one"),
            Rec::Skipped(Oversize {
                len: Some(104),
                max: 12
            }),
            frame(b"two"),
            Rec::Closed
        ]
    );
    input.extend_from_slice(&lp(b"three")[..6]);
    let out = run_all_ways(&f, 32, &input);
    assert_eq!(
        out.last(),
        Some(&proto(ProtocolError::Truncated {
            have: 6,
            need: Some(9)
        }))
    );
    // Default policy: the oversize frame is a protocol error.
    let f = LengthPrefixed::new().with_max_frame_len(12);
    let out = run_all_ways(&f, 32, &input);
    assert_eq!(
        out,
        [
            frame(b"one"),
            proto(ProtocolError::Frame(FrameError::FrameTooLong {
                len: 104,
                max: 12
            }))
        ]
    );
}

#[test]
fn commit_beyond_the_spare_space_is_refused() {
    let (mut rx, mut tx) = ([0u8; 8], [0u8; 1]);
    let mut s = BorrowedFramedStream::new(Fixed::new(2), &mut rx, &mut tx);
    assert_eq!(s.receive_buffer().len(), 8);
    assert_eq!(
        s.commit_received(9),
        Err(StreamError::CommitExceedsSpare {
            committed: 9,
            spare: 8
        })
    );
    assert_eq!(s.buffered_len(), 0);
    assert_eq!(s.stats().bytes_received, 0);
    s.receive_buffer()[..3].copy_from_slice(b"abc");
    s.commit_received(3).unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"ab"[..])));
}

#[test]
fn borrowed_poll_between_receive_buffer_and_commit_keeps_the_written_bytes() {
    // Polling the last buffered frame empties the buffer; the spare space
    // offered before must not move, or the commit would mark stale bytes.
    let (mut rx, mut tx) = ([0u8; 16], [0u8; 1]);
    let mut s = BorrowedFramedStream::new(Fixed::new(3), &mut rx, &mut tx);
    s.handle_input(b"abc").unwrap();
    s.receive_buffer()[..3].copy_from_slice(b"def");
    assert_eq!(s.poll_frame(), Ok(Some(&b"abc"[..])));
    s.commit_received(3).unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"def"[..])));
    assert_eq!(s.poll_frame(), Ok(None));
}

#[test]
fn input_voids_an_offered_spare_space() {
    // Bytes handed in through handle_input go where the offered spare space
    // was: committing into it afterwards would mark them twice.
    let (mut rx, mut tx) = ([0u8; 8], [0u8; 1]);
    let mut s = BorrowedFramedStream::new(Fixed::new(2), &mut rx, &mut tx);
    assert_eq!(s.receive_buffer().len(), 8);
    s.handle_input(b"ab").unwrap();
    assert_eq!(
        s.commit_received(1),
        Err(StreamError::CommitExceedsSpare {
            committed: 1,
            spare: 0
        })
    );
    // A commit uses up that much of the offer.
    assert_eq!(s.receive_buffer().len(), 6);
    s.commit_received(4).unwrap();
    assert_eq!(
        s.commit_received(3),
        Err(StreamError::CommitExceedsSpare {
            committed: 3,
            spare: 2
        })
    );
    assert_eq!(s.buffered_len(), 6);
}

#[test]
fn receive_buffer_offers_no_more_than_the_rest_of_a_large_frame() {
    fn check<D: Driver>(d: &mut D, spare_len: impl Fn(&mut D) -> usize) {
        // The header of a 40,000-byte frame and 1,000 bytes of it.
        let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let wire = [lp(&payload), lp(b"next")].concat();
        assert_eq!(d.input_zero_copy(&wire[..1_004]), Ok(1_004));
        assert_eq!(d.next(), Ok(None));
        // Reads are offered exactly the rest of the frame (in as many
        // pieces as the buffer grows by), never its successor's bytes.
        let mut off = 1_004;
        while off < 40_004 {
            let offered = spare_len(d);
            assert!(
                offered > 0 && off + offered <= 40_004,
                "offered {offered} at {off}"
            );
            off += d.input_zero_copy(&wire[off..]).unwrap();
            if off < 40_004 {
                assert_eq!(d.next(), Ok(None));
            }
        }
        assert_eq!(d.next(), Ok(Some(Rec::Frame(payload))));
        // A small frame's rest is not a reason to limit the read.
        assert!(spare_len(d) > 8);
        assert_eq!(d.input_zero_copy(&wire[40_004..]), Ok(8));
        assert_eq!(d.next(), Ok(Some(Rec::Frame(b"next".to_vec()))));
    }
    let (mut rx, mut tx) = (vec![0u8; 64 * 1024], [0u8; 1]);
    check(
        &mut BorrowedFramedStream::new(TestLp::UNLIMITED, &mut rx, &mut tx),
        |d| d.receive_buffer().len(),
    );
    #[cfg(feature = "alloc")]
    check(&mut FramedStream::new(TestLp::UNLIMITED), |d| {
        d.receive_buffer().len()
    });
}

#[test]
fn borrowed_receive_buffer_compacts_when_needed() {
    let (mut rx, mut tx) = ([0u8; 8], [0u8; 1]);
    let mut s = BorrowedFramedStream::new(Fixed::new(3), &mut rx, &mut tx);
    s.handle_input(b"abcdefg").unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"abc"[..])));
    assert_eq!(s.poll_frame(), Ok(Some(&b"def"[..])));
    // "g" sits at offset 6; the spare space is moved to after it at the front.
    let spare = s.receive_buffer();
    assert_eq!(spare.len(), 7);
    spare[..2].copy_from_slice(b"hi");
    s.commit_received(2).unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"ghi"[..])));
    // Appending through handle_input compacts too.
    s.handle_input(b"jklmn").unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"jkl"[..])));
    assert_eq!(s.handle_input(b"opqrstuvw"), Ok(6)); // 2 buffered + 6 = 8
    assert_eq!(s.poll_frame(), Ok(Some(&b"mno"[..])));
    assert_eq!(s.poll_frame(), Ok(Some(&b"pqr"[..])));
}

#[test]
#[cfg(feature = "alloc")]
fn owned_frames_share_the_receive_allocation() {
    let mut s = FramedStream::new(TestLp::UNLIMITED);
    let input: Vec<u8> = [lp(&[1; 100]), lp(&[2; 200]), lp(b"tail")].concat();
    let spare = s.receive_buffer();
    let region = spare.as_ptr_range();
    spare[..input.len()].copy_from_slice(&input);
    s.commit_received(input.len()).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = s.poll_frame().unwrap() {
        frames.push(f);
    }
    assert_eq!(frames.len(), 3);
    let mut offset = 0;
    for f in &frames {
        offset += 4;
        let r = f.as_ptr_range();
        assert!(
            region.start <= r.start && r.end <= region.end,
            "frame copied"
        );
        assert_eq!(r.start, region.start.wrapping_add(offset));
        offset += f.len();
    }
    // Frames received through handle_input share one allocation as well.
    let mut s = FramedStream::new(TestLp::UNLIMITED);
    s.handle_input(&input).unwrap();
    let a = s.poll_frame().unwrap().unwrap();
    let b = s.poll_frame().unwrap().unwrap();
    assert_eq!(a.as_ptr_range().end.wrapping_add(4), b.as_ptr());
}

#[test]
#[cfg(feature = "alloc")]
fn owned_receive_buffer_grows_with_arrivals_not_announcements() {
    let mut s = FramedStream::new(TestLp::UNLIMITED).with_max_buffered(1 << 24);
    // Announce 8 MiB; the spare space offered stays at the read chunk.
    s.handle_input(&(8u32 << 20).to_be_bytes()).unwrap();
    assert_eq!(s.poll_event(), Ok(None));
    assert_eq!(s.receive_buffer().len(), 16 * 1024);
    // A small limit caps the spare space.
    let mut s = FramedStream::new(Fixed::new(4)).with_max_buffered(10);
    assert_eq!(s.max_buffered(), 10);
    assert_eq!(s.receive_buffer().len(), 10);
    s.handle_input(b"abcdef").unwrap();
    assert_eq!(s.receive_buffer().len(), 4);
    // Large frames arrive through the spare space in pieces.
    let payload: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let input = lp(&payload);
    let mut s = FramedStream::new(TestLp::UNLIMITED);
    let mut pos = 0;
    while pos < input.len() {
        let spare = s.receive_buffer();
        let n = spare.len().min(input.len() - pos);
        assert!(n > 0);
        spare[..n].copy_from_slice(&input[pos..pos + n]);
        s.commit_received(n).unwrap();
        pos += n;
        if pos < input.len() {
            assert_eq!(s.poll_event(), Ok(None));
        }
    }
    assert_eq!(s.poll_frame().unwrap().as_deref(), Some(&payload[..]));
}

#[test]
#[cfg(feature = "alloc")]
fn default_limits_follow_the_framing() {
    let s = FramedStream::new(Fixed::new(4));
    assert_eq!(s.max_buffered(), DEFAULT_MIN_BUFFERED);
    assert_eq!(s.max_queued(), DEFAULT_MIN_QUEUED);
    let s = FramedStream::new(LengthPrefixed::new());
    assert_eq!(s.max_buffered(), LengthPrefixed::DEFAULT_MAX_FRAME_LEN);
    assert_eq!(s.max_queued(), LengthPrefixed::DEFAULT_MAX_FRAME_LEN);
}

#[test]
fn zero_copy_receive_never_offers_nothing_while_there_is_room() {
    // Regression: one free byte at the front and none at the back used to
    // give an empty receive buffer (the driver stalled).
    let (mut rx, mut tx) = ([0u8; 4], [0u8; 1]);
    let mut s = BorrowedFramedStream::new(TestLines, &mut rx, &mut tx);
    s.handle_input(b"\nabc").unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b""[..])));
    assert_eq!(s.poll_frame(), Ok(None));
    let spare = s.receive_buffer();
    assert_eq!(spare.len(), 1);
    spare[0] = b'\n';
    s.commit_received(1).unwrap();
    assert_eq!(s.poll_frame(), Ok(Some(&b"abc"[..])));
}

#[test]
fn real_delimited_lines_skip_truncation_and_buffer_limit() {
    let skip = Delimited::new()
        .with_max_line_len(8)
        .with_oversize(OversizePolicy::Skip);
    let input = b"one\nthis line is far too long\ntwo\n";
    assert_eq!(
        run_all_ways(&skip, 16, input),
        [
            frame(b"one"),
            Rec::Skipped(Oversize { len: None, max: 8 }),
            frame(b"two"),
            Rec::Closed
        ]
    );
    // A close while an over-long line is being discarded falls inside that
    // line: a truncation, not a clean close, whatever the chunking.
    assert_eq!(
        run_all_ways(&skip, 16, b"one\nthis line is far too long"),
        [
            frame(b"one"),
            Rec::Skipped(Oversize { len: None, max: 8 }),
            proto(ProtocolError::Truncated {
                have: 25,
                need: None
            })
        ]
    );
    // An unterminated last line is a truncation of unknown size.
    assert_eq!(
        run_all_ways(&skip, 16, b"one\ntw"),
        [
            frame(b"one"),
            proto(ProtocolError::Truncated {
                have: 2,
                need: None
            })
        ]
    );
    // Default policy: the framing's own limit.
    assert_eq!(
        run_all_ways(&Delimited::new().with_max_line_len(8), 16, input),
        [
            frame(b"one"),
            proto(ProtocolError::Frame(FrameError::LineTooLong {
                len: 9,
                max: 8
            }))
        ]
    );
    // A line limit above the buffer: the buffer's limit, size unknown.
    assert_eq!(
        run_all_ways(&Delimited::new(), 8, input),
        [
            frame(b"one"),
            proto(ProtocolError::FrameExceedsBuffer {
                need: None,
                capacity: 8
            })
        ]
    );
    // Sending appends the delimiter; the framing's checks apply.
    let (mut rx, mut tx) = ([0u8; 4], [0u8; 16]);
    let mut s = BorrowedFramedStream::new(Delimited::new(), &mut rx, &mut tx);
    s.send(b"hi").unwrap();
    assert_eq!(
        s.send(b"a\nb"),
        Err(SendError::Encode(EncodeError::ContainsDelimiter { at: 1 }))
    );
    assert_eq!(s.poll_transmit(), Some(&b"hi\n"[..]));
}

// ---------------------------------------------------------------- send

#[test]
fn borrowed_send_queue_limits_and_partial_writes() {
    let (mut rx, mut tx) = ([0u8; 4], [0xa5u8; 14]);
    let mut s = BorrowedFramedStream::new(TestLp::UNLIMITED, &mut rx, &mut tx);
    assert_eq!(s.poll_transmit(), None);
    s.send(b"abcd").unwrap(); // 8 bytes
    assert_eq!(
        s.send(b"efgh"),
        Err(SendError::QueueFull {
            queued: 8,
            required: 8,
            max: 14
        })
    );
    assert_eq!(
        s.send(&[0; 11]),
        Err(SendError::Encode(EncodeError::BufferTooSmall {
            required: 15
        }))
    );
    assert_eq!(s.queued_len(), 8); // nothing partially queued
    s.send(b"ef").unwrap(); // 6 bytes: exactly full
    assert_eq!(s.poll_transmit(), Some(&b"\0\0\0\x04abcd\0\0\0\x02ef"[..]));
    let mut written = Vec::new();
    for n in [3, 4] {
        written.extend_from_slice(&s.poll_transmit().unwrap()[..n]);
        s.advance_transmit(n).unwrap();
    }
    assert_eq!(s.queued_len(), 7);
    // Room at the back is short: the queue moves to the front.
    s.send(b"gh").unwrap();
    assert_eq!(
        s.advance_transmit(14),
        Err(SendError::AdvancePastQueued {
            written: 14,
            queued: 13
        })
    );
    while let Some(t) = s.poll_transmit() {
        let n = t.len().min(5);
        written.extend_from_slice(&t[..n]);
        s.advance_transmit(n).unwrap();
    }
    assert_eq!(written, [lp(b"abcd"), lp(b"ef"), lp(b"gh")].concat());
    let st = s.stats();
    assert_eq!((st.frames_sent, st.bytes_sent), (3, 20));
    // Encode errors from the framing pass through.
    let (mut rx, mut tx) = ([0u8; 4], [0u8; 16]);
    let mut s = BorrowedFramedStream::new(TestLines, &mut rx, &mut tx);
    assert_eq!(
        s.send(b"a\nb"),
        Err(SendError::Encode(EncodeError::ContainsDelimiter { at: 1 }))
    );
    s.send(b"ab").unwrap();
    assert_eq!(s.poll_transmit(), Some(&b"ab\n"[..]));
}

#[test]
fn send_after_close_is_refused_and_the_queue_drains() {
    let (mut rx, mut tx) = ([0u8; 4], [0u8; 16]);
    let mut s = BorrowedFramedStream::new(Fixed::new(2), &mut rx, &mut tx);
    s.send(b"ab").unwrap();
    s.close();
    assert!(s.is_send_closed());
    assert_eq!(s.send(b"cd"), Err(SendError::Closed));
    assert!(!s.send_finished());
    s.advance_transmit(2).unwrap();
    assert!(s.send_finished());

    #[cfg(feature = "alloc")]
    {
        let mut s = FramedStream::new(Fixed::new(2));
        s.close();
        assert!(s.send_finished());
        assert_eq!(s.send_slice(b"ab"), Err(SendError::Closed));
        assert_eq!(s.send(&b"ab"[..]), Err(SendError::Closed));
        // Wrong-size payloads are the framing's encode errors.
        let mut s = FramedStream::new(Fixed::new(2));
        assert_eq!(
            s.send_slice(b"abc"),
            Err(SendError::Encode(EncodeError::WrongSize {
                len: 3,
                expected: 2
            }))
        );
    }
}

#[test]
#[cfg(feature = "alloc")]
fn owned_send_shares_large_payloads_and_coalesces_copies() {
    let mut s = FramedStream::new(TestLp::UNLIMITED);
    let big = bytes::Bytes::from(vec![7u8; 1000]);
    s.send_slice(b"one").unwrap();
    s.send(big.clone()).unwrap();
    s.send(&b"small"[..]).unwrap();
    s.send_slice(b"two").unwrap();
    let chunks: Vec<&[u8]> = s.transmit_chunks().collect();
    // [header one, "one", header big] [big] [header small, "small", header two, "two"]
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[0],
        [lp(b"one"), (1000u32).to_be_bytes().to_vec()].concat()
    );
    assert_eq!(chunks[1].as_ptr(), big.as_ptr(), "payload was copied");
    assert_eq!(chunks[2], [lp(b"small"), lp(b"two")].concat());
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    assert_eq!(total, s.queued_len());
    let mut slices = [&[][..]; 2];
    assert_eq!(s.fill_transmit(&mut slices), 2);
    assert_eq!(slices[1].as_ptr(), big.as_ptr());
    assert_eq!(s.stats().frames_sent, 4);
}

#[test]
#[cfg(feature = "alloc")]
fn owned_partial_writes_across_chunks() {
    let mut s = FramedStream::new(TestLp::UNLIMITED);
    let big = bytes::Bytes::from(vec![3u8; 300]);
    s.send(big).unwrap();
    s.send_slice(b"x").unwrap();
    s.send(bytes::Bytes::from(vec![4u8; 100])).unwrap();
    let expected = [lp(&[3; 300]), lp(b"x"), lp(&[4; 100])].concat();
    assert_eq!(s.queued_len(), expected.len());
    let mut written = Vec::new();
    let mut step = 1;
    while let Some(t) = s.poll_transmit() {
        // Write up to `step` bytes, possibly spanning chunks (a vectored write).
        let mut n = 0;
        for c in s.transmit_chunks() {
            let k = c.len().min(step - n);
            written.extend_from_slice(&c[..k]);
            n += k;
            if n == step {
                break;
            }
        }
        assert!(!t.is_empty());
        s.advance_transmit(n).unwrap();
        step = step * 3 + 1;
    }
    assert_eq!(written, expected);
    assert_eq!(s.queued_len(), 0);
    assert_eq!(s.stats().bytes_sent, expected.len() as u64);
    assert_eq!(
        s.advance_transmit(1),
        Err(SendError::AdvancePastQueued {
            written: 1,
            queued: 0
        })
    );
    // pop_transmit hands the chunks over, in order.
    s.send_slice(b"ab").unwrap();
    s.send(bytes::Bytes::from(vec![5u8; 70])).unwrap();
    let mut popped = Vec::new();
    while let Some(c) = s.pop_transmit() {
        popped.extend_from_slice(&c);
    }
    assert_eq!(popped, [lp(b"ab"), lp(&[5; 70])].concat());
    assert_eq!(s.queued_len(), 0);
}

#[test]
#[cfg(feature = "alloc")]
fn owned_queue_limit() {
    let mut s = FramedStream::new(TestLp::UNLIMITED).with_max_queued(20);
    s.send(bytes::Bytes::from(vec![1u8; 100].split_off(90)))
        .unwrap(); // 14 bytes
    assert_eq!(
        s.send_slice(b"abc"),
        Err(SendError::QueueFull {
            queued: 14,
            required: 7,
            max: 20
        })
    );
    assert_eq!(
        s.send(bytes::Bytes::from(vec![0u8; 17])),
        Err(SendError::Encode(EncodeError::BufferTooSmall {
            required: 21
        }))
    );
    assert_eq!(s.queued_len(), 14);
    assert_eq!(s.transmit_chunks().map(<[u8]>::len).sum::<usize>(), 14);
    s.advance_transmit(10).unwrap();
    s.send_slice(b"abc").unwrap();
    assert_eq!(s.queued_len(), 11);
}

// ---------------------------------------------------------------- properties

/// Payloads of a multi-frame input; sizes up to 40 with frames over the
/// framing limit (`max` 24) skipped, and receive buffers from 8 to 64 bytes
/// (so some frames do not fit and end the stream).
fn payloads() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..12)
}

/// The events the stream must produce for `payloads`, a last frame cut after
/// `cut` bytes (if any), a limit of `max` with skipping, and a buffer of `cap`.
fn model(payloads: &[Vec<u8>], cut: Option<(Vec<u8>, usize)>, max: usize, cap: usize) -> Vec<Rec> {
    let mut out = Vec::new();
    let total = |p: &[u8]| p.len() + 4;
    for p in payloads {
        if total(p) > max {
            out.push(Rec::Skipped(Oversize {
                len: Some(total(p) as u64),
                max,
            }));
        } else if total(p) > cap {
            out.push(proto(ProtocolError::FrameExceedsBuffer {
                need: Some(total(p)),
                capacity: cap,
            }));
            return out;
        } else {
            out.push(frame(p));
        }
    }
    match cut {
        None => out.push(Rec::Closed),
        Some((_, have)) if have < 4 => out.push(proto(ProtocolError::Truncated {
            have,
            need: Some(4),
        })),
        Some((p, have)) => {
            let need = total(&p);
            if need > max {
                out.push(Rec::Skipped(Oversize {
                    len: Some(need as u64),
                    max,
                }));
            } else if need > cap {
                out.push(proto(ProtocolError::FrameExceedsBuffer {
                    need: Some(need),
                    capacity: cap,
                }));
                return out;
            }
            out.push(proto(ProtocolError::Truncated {
                have,
                need: Some(need),
            }));
        }
    }
    out
}

proptest! {
    #[test]
    fn split_invariance_in_both_modes(
        payloads in payloads(),
        last in proptest::option::of((proptest::collection::vec(any::<u8>(), 0..40), any::<prop::sample::Index>())),
        cap in 8usize..64,
        cuts in proptest::collection::vec(0usize..50, 0..40),
    ) {
        let max = 24;
        let framing = TestLp { max, skip: true };
        let mut input: Vec<u8> = payloads.iter().flat_map(|p| lp(p)).collect();
        let cut = last.map(|(p, i)| {
            let whole = lp(&p);
            let have = 1 + i.index(whole.len() - 1);
            input.extend_from_slice(&whole[..have]);
            (p, have)
        });
        let expected = model(&payloads, cut, max, cap);
        prop_assert_eq!(&run_both(&framing, cap, &input, &[]), &expected);
        prop_assert_eq!(&run_both(&framing, cap, &input, &cuts), &expected);
        let real = LengthPrefixed::new().with_max_frame_len(max).with_oversize(OversizePolicy::Skip);
        prop_assert_eq!(&run_both(&real, cap, &input, &cuts), &expected);
    }

    #[test]
    fn delimited_split_invariance_with_skips(
        lines in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 0..30), 0..10),
        last in proptest::collection::vec(b'a'..=b'z', 0..12),
        cap in 8usize..40,
        cuts in proptest::collection::vec(0usize..40, 0..30),
    ) {
        let max = 12;
        let framing = Delimited::new().with_max_line_len(max).with_oversize(OversizePolicy::Skip);
        let mut input: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        input.extend_from_slice(&last);
        let mut expected = Vec::new();
        let exceeds = proto(ProtocolError::FrameExceedsBuffer { need: None, capacity: cap });
        'model: {
            for l in &lines {
                // Too long is proven by max + 1 bytes without a delimiter.
                if l.len() > max && cap > max {
                    expected.push(Rec::Skipped(Oversize { len: None, max }));
                } else if l.len() + 1 > cap {
                    expected.push(exceeds);
                    break 'model;
                } else {
                    expected.push(frame(l));
                }
            }
            if last.is_empty() {
                expected.push(Rec::Closed);
            } else if last.len() >= cap {
                expected.push(exceeds);
            } else {
                expected.push(proto(ProtocolError::Truncated { have: last.len(), need: None }));
            }
        }
        prop_assert_eq!(&run_both(&framing, cap, &input, &[]), &expected);
        prop_assert_eq!(&run_both(&framing, cap, &input, &cuts), &expected);
    }

    #[test]
    fn lines_split_invariance(
        lines in proptest::collection::vec(proptest::collection::vec(0u8..=9, 0..20), 0..10),
        cap in 4usize..32,
        cuts in proptest::collection::vec(0usize..30, 0..30),
    ) {
        let input: Vec<u8> = lines.iter().flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
        let whole = run_both(&TestLines, cap, &input, &[]);
        prop_assert_eq!(&run_both(&TestLines, cap, &input, &cuts), &whole);
        let mut expected = Vec::new();
        for l in &lines {
            if l.len() + 1 > cap {
                expected.push(proto(ProtocolError::FrameExceedsBuffer { need: None, capacity: cap }));
                break;
            }
            expected.push(frame(l));
        }
        if expected.last().is_none_or(|r| !matches!(r, Rec::Err(_))) {
            expected.push(Rec::Closed);
        }
        prop_assert_eq!(whole, expected);
    }
}

#[cfg(feature = "alloc")]
proptest! {
    #[test]
    fn send_round_trips_through_receive(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..100), 0..10),
        writes in proptest::collection::vec(1usize..64, 1..20),
    ) {
        // What one side queues, written out in random partial writes, is what
        // the other side receives.
        let mut tx_side = FramedStream::new(TestLp::UNLIMITED);
        let (mut rx, mut tx) = ([0u8; 128], [0u8; 1024]);
        let mut b_tx = BorrowedFramedStream::new(TestLp::UNLIMITED, &mut rx, &mut tx);
        for p in &payloads {
            tx_side.send(bytes::Bytes::from(p.clone())).unwrap();
            b_tx.send(p).unwrap();
        }
        let mut wire = Vec::new();
        let mut i = 0;
        while tx_side.queued_len() > 0 {
            let n = writes[i % writes.len()].min(tx_side.queued_len());
            let mut left = n;
            for c in tx_side.transmit_chunks() {
                let k = c.len().min(left);
                wire.extend_from_slice(&c[..k]);
                left -= k;
                if left == 0 { break; }
            }
            tx_side.advance_transmit(n).unwrap();
            i += 1;
        }
        let mut wire2 = Vec::new();
        while let Some(t) = b_tx.poll_transmit() {
            let n = writes[i % writes.len()].min(t.len());
            wire2.extend_from_slice(&t[..n]);
            b_tx.advance_transmit(n).unwrap();
            i += 1;
        }
        prop_assert_eq!(&wire, &wire2);
        let out = run_both(&TestLp::UNLIMITED, 128, &wire, &writes);
        let mut expected: Vec<Rec> = payloads.iter().map(|p| frame(p)).collect();
        expected.push(Rec::Closed);
        prop_assert_eq!(out, expected);
    }
}
