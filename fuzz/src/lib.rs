//! Shared harness of framewire's fuzz targets (see `fuzz/README.md`).
//!
//! Every framing target takes its input in one layout, so that seeds are easy
//! to write by hand (`fuzz/seeds/generate.py`) and libFuzzer's mutations of
//! the data stay meaningful:
//!
//! ```text
//! input := config[CONFIG_LEN] n_cuts:u8 cut[n_cuts] data
//! ```
//!
//! * `config` picks the framing's configuration; missing bytes read as
//!   zero, and an all-zero configuration is the framing's plain one (each
//!   target's documentation says which byte means what);
//! * each `cut` is the length of one chunk of `data` handed to the decoder
//!   (0 is an empty read); what is left after the cuts goes in one last chunk;
//! * `data` is the byte stream.
//!
//! [`check_framing`] then runs the same bytes
//!
//! 1. through the bare [`Framing::decode`] in the fuzzed chunking and in one
//!    piece (the decode contract is asserted on every call: `need` beyond the
//!    buffer, frames inside it and within `max_frame_len`, skips of at least
//!    one byte, and never more than the framing's limit buffered while it
//!    says `Incomplete`);
//! 2. through [`FramedStream`] (`handle_input`, and `receive_buffer` +
//!    `commit_received`) and [`BorrowedFramedStream`] in the fuzzed chunking,
//!    and through `FramedStream` in one piece, ending with `handle_eof`;
//!
//! and asserts that all of them produce the same events, that the streams
//! end the way the bare decoder says they must (the same protocol error, a
//! clean close, or truncation), that the receive buffer never holds more than
//! its limit, and that every payload the framing can encode decodes back to
//! itself.

pub mod connection;

use arbitrary::Unstructured;
use framewire::framing::{Decode, FrameError, Framing, Oversize};
use framewire::packet::reason;
use framewire::packet::wire::Packet;
use framewire::stream::{BorrowedFramedStream, Event, FramedStream, ProtocolError, StreamError};

/// Bytes of configuration at the start of every framing target's input.
pub const CONFIG_LEN: usize = 16;

/// The largest frame limit a fuzz target configures: small enough that the
/// low `-malloc_limit_mb` of `scripts/fuzz.sh` catches any allocation sized
/// by a length field rather than by the limit.
pub const MAX_FUZZ_LIMIT: usize = 1 << 20;

/// A framing target's input, split (see the crate documentation).
#[derive(Debug)]
pub struct Input<'a> {
    /// The configuration bytes (zero-padded).
    pub config: [u8; CONFIG_LEN],
    /// Chunk lengths, in order.
    pub cuts: Vec<usize>,
    /// The byte stream.
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Splits a fuzz input.
    pub fn parse(bytes: &'a [u8]) -> Self {
        let mut config = [0u8; CONFIG_LEN];
        let n = bytes.len().min(CONFIG_LEN);
        config[..n].copy_from_slice(&bytes[..n]);
        let rest = &bytes[n..];
        let (cuts, data) = match rest.split_first() {
            Some((&count, rest)) => {
                let count = usize::from(count).min(rest.len());
                let (cuts, data) = rest.split_at(count);
                (cuts.iter().map(|&c| usize::from(c)).collect(), data)
            }
            None => (Vec::new(), rest),
        };
        Input { config, cuts, data }
    }

    /// Splits an input that has configuration bytes but no chunk list.
    pub fn parse_raw(bytes: &'a [u8]) -> Self {
        let mut config = [0u8; CONFIG_LEN];
        let n = bytes.len().min(CONFIG_LEN);
        config[..n].copy_from_slice(&bytes[..n]);
        Input {
            config,
            cuts: Vec::new(),
            data: &bytes[n..],
        }
    }

    /// An [`Unstructured`] over the configuration bytes.
    pub fn config(&self) -> Unstructured<'_> {
        Unstructured::new(&self.config)
    }

    /// Configuration byte `i`.
    pub fn byte(&self, i: usize) -> u8 {
        self.config[i]
    }

    /// Configuration bytes `i` and `i + 1`, little-endian.
    pub fn u16(&self, i: usize) -> u16 {
        u16::from_le_bytes([self.config[i], self.config[i + 1]])
    }

    /// A limit from bytes `i..i + 3`: `default` when the `u16` at `i` is 0
    /// (so an all-zero configuration is the plain one), `m - 1` otherwise,
    /// times 16 (at most [`MAX_FUZZ_LIMIT`]) when bit 0 of byte `i + 2` is
    /// set.
    pub fn limit(&self, i: usize, default: usize) -> usize {
        let m = usize::from(self.u16(i));
        if m == 0 {
            default
        } else if self.byte(i + 2) & 1 == 1 {
            (m * 16).min(MAX_FUZZ_LIMIT)
        } else {
            m - 1
        }
    }
}

/// Cuts `data` into chunks of the given lengths; the rest is one last chunk
/// (always present, possibly empty).
pub fn chunks<'d>(data: &'d [u8], cuts: &[usize]) -> Vec<&'d [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut rest = data;
    for &c in cuts {
        let (a, b) = rest.split_at(c.min(rest.len()));
        out.push(a);
        rest = b;
    }
    out.push(rest);
    out
}

/// What a bare decoder produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// A frame's payload.
    Frame(Vec<u8>),
    /// The first `Skip` of an over-long frame.
    Skipped(Oversize),
    /// The protocol error that ended decoding.
    Error(FrameError),
}

/// The result of running a byte stream through a bare decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Frames, skips and the final error, in order.
    pub out: Vec<Out>,
    /// Whether the stream would close cleanly here: nothing buffered, no skip
    /// owed, no line being discarded (and no error).
    pub clean_end: bool,
}

/// Runs `data` through `framing.decode` in the given chunking, with a
/// growing buffer as a stream does, asserting the decode contract on every
/// call. `bound` is the most bytes the framing may leave buffered while it
/// says `Incomplete` (its `max_frame_len`, or its longest header if that is
/// longer).
pub fn run_framing<F: Framing>(framing: &mut F, data: &[u8], cuts: &[usize], bound: usize) -> Run {
    let max_frame = framing.max_frame_len();
    let mut buf: Vec<u8> = Vec::new();
    let mut skip_remaining: u64 = 0;
    let mut out = Vec::new();
    for chunk in chunks(data, cuts) {
        let mut chunk = chunk;
        if skip_remaining > 0 {
            let n = usize::try_from(skip_remaining)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            chunk = &chunk[n..];
            skip_remaining -= n as u64;
        }
        buf.extend_from_slice(chunk);
        while skip_remaining == 0 {
            match framing.decode(&buf) {
                Ok(Decode::Incomplete { need }) => {
                    if let Some(need) = need {
                        assert!(
                            need > buf.len(),
                            "Incomplete {{ need: {need} }} with {} buffered",
                            buf.len()
                        );
                        assert!(
                            need <= bound,
                            "Incomplete {{ need: {need} }} over the bound {bound}"
                        );
                    }
                    assert!(
                        buf.len() <= bound,
                        "{} bytes buffered and still Incomplete (bound {bound})",
                        buf.len()
                    );
                    break;
                }
                Ok(Decode::Frame { len, payload }) => {
                    assert!(
                        len > 0 && len <= buf.len(),
                        "Frame of {len} with {} buffered",
                        buf.len()
                    );
                    assert!(
                        payload.start <= payload.end && payload.end <= len,
                        "payload {payload:?} of a frame of {len}"
                    );
                    assert!(
                        len <= max_frame,
                        "Frame of {len} over max_frame_len {max_frame}"
                    );
                    out.push(Out::Frame(buf[payload].to_vec()));
                    buf.drain(..len);
                }
                Ok(Decode::Skip { len, oversize }) => {
                    assert!(len > 0, "Skip of 0 bytes");
                    if let Some(o) = oversize {
                        if let Some(l) = o.len {
                            assert!(l > o.max as u64, "Skipped {o:?} is not over the limit");
                        }
                        out.push(Out::Skipped(o));
                    }
                    let here = usize::try_from(len).unwrap_or(usize::MAX).min(buf.len());
                    buf.drain(..here);
                    skip_remaining = len - here as u64;
                }
                Err(e) => {
                    out.push(Out::Error(e));
                    return Run {
                        out,
                        clean_end: false,
                    };
                }
            }
        }
    }
    let clean_end = buf.is_empty() && skip_remaining == 0 && !framing.is_discarding();
    Run { out, clean_end }
}

/// What a framed stream reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SOut {
    /// A frame's payload.
    Frame(Vec<u8>),
    /// An over-long frame skipped.
    Skipped(Oversize),
    /// A clean close.
    Closed,
    /// The terminal protocol error.
    Error(ProtocolError),
}

fn protocol(e: StreamError) -> ProtocolError {
    match e {
        StreamError::Protocol(p) => p,
        other => panic!("local error from a correctly driven stream: {other:?}"),
    }
}

/// How bytes go into a [`FramedStream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// `handle_input`.
    HandleInput,
    /// `receive_buffer` + `commit_received`.
    ReceiveBuffer,
}

/// Drains `poll_event` of a `FramedStream` into `out`; `Err` once the stream
/// failed (the error is pushed).
fn drain_owned<F: Framing>(s: &mut FramedStream<F>, out: &mut Vec<SOut>) -> Result<(), ()> {
    loop {
        match s.poll_event() {
            Ok(None) => return Ok(()),
            Ok(Some(Event::Frame(b))) => out.push(SOut::Frame(b.to_vec())),
            Ok(Some(Event::Skipped(o))) => out.push(SOut::Skipped(o)),
            Ok(Some(Event::Closed)) => out.push(SOut::Closed),
            Ok(Some(_)) => unreachable!("unknown stream event"),
            Err(e) => {
                out.push(SOut::Error(protocol(e)));
                // Terminal: the same error again, and no more events.
                assert_eq!(s.poll_event().map_err(protocol), Err(protocol(e)));
                return Err(());
            }
        }
    }
}

/// Runs `data` through a [`FramedStream`] with a receive limit of
/// `max_buffered`, in the given chunking, then the peer's EOF.
pub fn run_owned<F: Framing>(
    framing: F,
    max_buffered: usize,
    data: &[u8],
    cuts: &[usize],
    feed: Feed,
) -> Vec<SOut> {
    let mut s = FramedStream::new(framing).with_max_buffered(max_buffered);
    let mut out = Vec::new();
    for chunk in chunks(data, cuts) {
        let mut rest = chunk;
        loop {
            let buffered = s.buffered_len();
            let taken = match feed {
                Feed::HandleInput => s.handle_input(rest),
                Feed::ReceiveBuffer => {
                    let spare = s.receive_buffer();
                    let n = spare.len().min(rest.len());
                    spare[..n].copy_from_slice(&rest[..n]);
                    s.commit_received(n).map(|()| n)
                }
            };
            let taken = match taken {
                Ok(n) => n,
                Err(e) => {
                    out.push(SOut::Error(protocol(e)));
                    return out;
                }
            };
            assert!(taken <= rest.len());
            assert!(
                s.buffered_len() <= s.max_buffered(),
                "{} buffered over the limit {}",
                s.buffered_len(),
                s.max_buffered()
            );
            rest = &rest[taken..];
            let events = out.len();
            if drain_owned(&mut s, &mut out).is_err() {
                return out;
            }
            if rest.is_empty() {
                break;
            }
            // Refused bytes: draining must make room (a full buffer always
            // decides: a frame, a skip or an error), or the next offer is
            // the same as this one.
            assert!(
                taken > 0 || out.len() > events || s.buffered_len() != buffered,
                "stream stalled: {buffered} bytes buffered, input refused, no event"
            );
        }
    }
    s.handle_eof().map_err(protocol).ok();
    if drain_owned(&mut s, &mut out).is_ok() {
        // After the end, nothing more, and input is refused.
        assert_eq!(s.poll_event(), Ok(None));
        assert!(s.state().is_terminal() || !out.contains(&SOut::Closed));
    }
    out
}

/// Runs `data` through a [`BorrowedFramedStream`] over a receive slice of
/// `capacity` bytes, in the given chunking, then the peer's EOF.
pub fn run_borrowed<F: Framing>(
    framing: F,
    capacity: usize,
    data: &[u8],
    cuts: &[usize],
) -> Vec<SOut> {
    let mut rx = vec![0u8; capacity];
    let mut tx = [0u8; 8];
    let mut s = BorrowedFramedStream::new(framing, &mut rx, &mut tx);
    let mut out = Vec::new();
    let drain = |s: &mut BorrowedFramedStream<'_, F>, out: &mut Vec<SOut>| -> Result<(), ()> {
        loop {
            match s.poll_event() {
                Ok(None) => return Ok(()),
                Ok(Some(Event::Frame(b))) => out.push(SOut::Frame(b.to_vec())),
                Ok(Some(Event::Skipped(o))) => out.push(SOut::Skipped(o)),
                Ok(Some(Event::Closed)) => out.push(SOut::Closed),
                Ok(Some(_)) => unreachable!("unknown stream event"),
                Err(e) => {
                    out.push(SOut::Error(protocol(e)));
                    return Err(());
                }
            }
        }
    };
    for chunk in chunks(data, cuts) {
        let mut rest = chunk;
        loop {
            let buffered = s.buffered_len();
            let taken = match s.handle_input(rest) {
                Ok(n) => n,
                Err(e) => {
                    out.push(SOut::Error(protocol(e)));
                    return out;
                }
            };
            assert!(s.buffered_len() <= capacity);
            rest = &rest[taken..];
            let events = out.len();
            if drain(&mut s, &mut out).is_err() {
                return out;
            }
            if rest.is_empty() {
                break;
            }
            assert!(
                taken > 0 || out.len() > events || s.buffered_len() != buffered,
                "borrowed stream stalled: {buffered} bytes buffered, input refused, no event"
            );
        }
    }
    s.handle_eof().map_err(protocol).ok();
    let _ = drain(&mut s, &mut out);
    out
}

/// The stream events a bare decoder's run calls for, when the receive
/// buffer is large enough for every frame: its frames and skips, then its
/// error, or a clean close, or (for `None`) some truncation.
fn expected_stream(run: &Run) -> (Vec<SOut>, Option<SOut>) {
    let mut body = Vec::new();
    for o in &run.out {
        match o {
            Out::Frame(f) => body.push(SOut::Frame(f.clone())),
            Out::Skipped(s) => body.push(SOut::Skipped(*s)),
            Out::Error(e) => return (body, Some(SOut::Error(ProtocolError::Frame(*e)))),
        }
    }
    if run.clean_end {
        (body, Some(SOut::Closed))
    } else {
        (body, None)
    }
}

/// Checks one framing on one fuzz input (see the crate documentation).
/// `fresh` builds the framing in its initial state; `bound` is as for
/// [`run_framing`]; `spare` (0..=255 from the input) sizes the stream's
/// receive buffer beyond the bound. Returns the one-piece run.
pub fn check_framing<F: Framing + Clone + core::fmt::Debug>(
    fresh: &F,
    bound: usize,
    input: &Input<'_>,
    spare: usize,
) -> Run {
    let data = input.data;
    let whole = run_framing(&mut fresh.clone(), data, &[], bound);
    let chunked = run_framing(&mut fresh.clone(), data, &input.cuts, bound);
    assert_eq!(
        whole, chunked,
        "bare decoder: chunked input differs from one piece ({fresh:?})"
    );

    // Streams with room for any frame must match the bare decoder.
    let capacity = bound + 1 + spare;
    let (body, end) = expected_stream(&whole);
    let owned_whole = run_owned(fresh.clone(), capacity, data, &[], Feed::HandleInput);
    assert_eq!(
        &owned_whole[..body.len().min(owned_whole.len())],
        &body[..],
        "stream frames differ from the bare decoder ({fresh:?})"
    );
    match &end {
        Some(end) => assert_eq!(
            owned_whole.len(),
            body.len() + 1,
            "stream events {owned_whole:?}, expected {body:?} + {end:?}"
        ),
        None => assert_eq!(owned_whole.len(), body.len() + 1),
    }
    let last = owned_whole.last().expect("a stream always ends");
    match &end {
        Some(end) => assert_eq!(
            last, end,
            "stream ended differently from the bare decoder ({fresh:?})"
        ),
        None => assert!(
            matches!(last, SOut::Error(ProtocolError::Truncated { .. })),
            "close inside a frame must be Truncated, got {last:?} ({fresh:?})"
        ),
    }
    for (feed, name) in [
        (Feed::HandleInput, "handle_input"),
        (Feed::ReceiveBuffer, "receive_buffer"),
    ] {
        let chunked = run_owned(fresh.clone(), capacity, data, &input.cuts, feed);
        assert_eq!(
            owned_whole, chunked,
            "FramedStream ({name}): chunked input differs from one piece ({fresh:?})"
        );
    }
    let borrowed = run_borrowed(fresh.clone(), capacity, data, &input.cuts);
    assert_eq!(
        owned_whole, borrowed,
        "BorrowedFramedStream differs from FramedStream ({fresh:?})"
    );

    // A receive buffer smaller than the framing's frames: whatever happens
    // (FrameExceedsBuffer), it must not depend on the chunking.
    let small = 1 + spare % bound.max(1);
    let a = run_owned(fresh.clone(), small, data, &[], Feed::HandleInput);
    let b = run_owned(fresh.clone(), small, data, &input.cuts, Feed::HandleInput);
    assert_eq!(
        a, b,
        "small buffer ({small}): chunked input differs from one piece ({fresh:?}, cuts {:?})",
        input.cuts
    );
    let c = run_borrowed(fresh.clone(), small, data, &input.cuts);
    assert_eq!(
        a, c,
        "small buffer ({small}): BorrowedFramedStream differs ({fresh:?})"
    );

    check_reencode(fresh, &whole);
    whole
}

/// Every decoded payload that the framing agrees to encode must decode back
/// to itself as exactly one frame.
pub fn check_reencode<F: Framing + Clone>(fresh: &F, run: &Run) {
    for o in &run.out {
        let Out::Frame(payload) = o else { continue };
        check_encode(fresh, payload);
    }
}

/// If `framing` encodes `payload`, the frame decodes back to it, whole and
/// one byte at a time.
pub fn check_encode<F: Framing + Clone>(fresh: &F, payload: &[u8]) {
    let Ok(len) = fresh.encoded_len(payload) else {
        return;
    };
    assert!(len > 0, "an empty frame for {payload:?}");
    let mut frame = vec![0u8; len];
    let n = fresh
        .encode(payload, &mut frame)
        .expect("encoded_len succeeded, so encode must");
    assert_eq!(n, len);
    assert!(
        fresh.encode(payload, &mut frame[..len - 1]).is_err(),
        "encode into a buffer one byte short must fail"
    );
    let run = run_framing(&mut fresh.clone(), &frame, &[], usize::MAX);
    assert_eq!(
        run.out,
        [Out::Frame(payload.to_vec())],
        "payload {payload:?} encoded as {frame:?} does not decode back"
    );
    assert!(run.clean_end, "encoded frame {frame:?} leaves bytes behind");
    // Byte by byte when short; long frames in a few uneven pieces (a byte
    // at a time would cost a decode call per byte on every run).
    let cuts = if frame.len() <= 64 {
        vec![1; frame.len()]
    } else {
        vec![1, 2, 3, frame.len() / 3, frame.len() / 5]
    };
    let split = run_framing(&mut fresh.clone(), &frame, &cuts, usize::MAX);
    assert_eq!(run, split);
}

/// A failure text a connection sends by itself (see [`refusal`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The text is `channel C: tag already in use: N`.
    pub tag_in_use: bool,
    /// The text is cut to the packet limit (not whole).
    pub cut: bool,
}

/// Whether `payload` is a failure text a connection with packet limit `max`
/// sends by itself for `(channel, tag)` (one of `packet::reason`'s refusals):
/// whole, or cut to the longest prefix whose packet fits `max` when the whole
/// one would not; and which.
pub fn refusal(channel: u64, tag: u64, payload: &[u8], max: usize) -> Option<Refusal> {
    let mut buf = [0u8; reason::TagInUse::MAX_LEN];
    let n = reason::TagInUse { channel, tag }.encode(&mut buf);
    let texts: [&[u8]; 5] = [
        reason::NO_REQUEST_HANDLER.as_bytes(),
        reason::REQUESTS_NO_LONGER_ALLOWED.as_bytes(),
        reason::SHUTTING_DOWN.as_bytes(),
        reason::UNKNOWN_CHANNEL.as_bytes(),
        &buf[..n],
    ];
    let len = |t: &[u8]| Packet::failure_bytes(channel, tag, t).encoded_len();
    let cut_from = |t: &[u8]| {
        let n = payload.len();
        n < t.len() && t.starts_with(payload) && len(payload) <= max && len(&t[..=n]) > max
    };
    texts.iter().enumerate().find_map(|(i, t)| {
        let whole = t[..] == payload[..];
        (whole || cut_from(t)).then_some(Refusal {
            tag_in_use: i == 4,
            cut: !whole,
        })
    })
}
