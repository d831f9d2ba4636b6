//! The framing decoders that `benches/framing.rs` (criterion) and
//! `benches/ratios.rs` (one-process ratio table) compare.
//!
//! Every contender consumes the same prebuilt input (`u32` big-endian length
//! prefix + payload, as socktools and tokio-util's default
//! `LengthDelimitedCodec` frame it) in [`CHUNK`]-byte chunks, as if each chunk
//! had just been read from a socket, and returns a [`Tally`] of the frames it
//! saw so a broken decoder cannot look fast. Each keeps its buffers between
//! runs: nothing large is allocated or dropped inside a timed run (DESIGN.md
//! section 6, "benchmark traps").

// Each bench binary compiles this module; not every binary uses every item.
#![allow(dead_code)]

use std::hint::black_box;

use bytes::{Buf, BytesMut};
use framewire::framing::{Decode, Framing, LengthPrefixed};
use framewire::packet::Connection;
use framewire::stream::{BorrowedFramedStream, Event, FramedStream};
use tokio_util::codec::{Decoder, LengthDelimitedCodec};

/// The input is fed in chunks of this many bytes (64 KiB).
pub(crate) const CHUNK: usize = 64 * 1024;

/// Header bytes in front of every payload.
pub(crate) const HEADER: usize = 4;

/// `frames` frames of `payload` bytes each, `u32` BE length prefixed.
pub(crate) fn build_input(frames: usize, payload: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames * (HEADER + payload));
    for i in 0..frames {
        out.extend_from_slice(&(payload as u32).to_be_bytes());
        out.extend((0..payload).map(|k| (i + k) as u8));
    }
    out
}

/// What a contender saw: frames and payload bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Frames delivered.
    pub(crate) frames: u64,
    /// Payload bytes delivered.
    pub(crate) bytes: u64,
}

impl Tally {
    /// The tally a correct decoder gives for `build_input(frames, payload)`.
    pub(crate) fn expected(frames: usize, payload: usize) -> Tally {
        Tally {
            frames: frames as u64,
            bytes: (frames * payload) as u64,
        }
    }

    /// Counts one delivered payload (and keeps the optimizer from skipping it).
    #[inline]
    fn see(&mut self, payload: &[u8]) {
        self.frames += 1;
        self.bytes += payload.len() as u64;
        black_box(payload);
    }
}

/// (a) tokio-util's `LengthDelimitedCodec` (`Decoder::decode` on a
/// `BytesMut`, no I/O): each chunk is appended, then frames are decoded
/// until it returns `None`.
pub(crate) struct TokioUtil {
    codec: LengthDelimitedCodec,
    buf: BytesMut,
}

impl TokioUtil {
    /// A codec with tokio-util's defaults (`u32` BE, 8 MiB limit).
    pub(crate) fn new() -> Self {
        TokioUtil {
            codec: LengthDelimitedCodec::new(),
            buf: BytesMut::with_capacity(2 * CHUNK),
        }
    }

    /// Decodes all of `input`.
    pub(crate) fn run(&mut self, input: &[u8]) -> Tally {
        let mut t = Tally::default();
        for chunk in input.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            while let Some(frame) = self.codec.decode(&mut self.buf).expect("valid input") {
                t.see(&frame);
            }
        }
        assert!(self.buf.is_empty(), "input ends on a frame boundary");
        t
    }
}

/// A fixed receive buffer, as a hand-written decoder or a framing used
/// directly keeps it: chunks are copied in behind what is left of the last
/// one, frames are sliced out of it, and the partial tail is moved to the
/// front.
pub(crate) struct SliceBuf {
    buf: Vec<u8>,
    filled: usize,
}

impl SliceBuf {
    /// A buffer for chunks plus a partial frame of up to `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        SliceBuf {
            buf: vec![0; CHUNK + max_frame],
            filled: 0,
        }
    }

    /// Feeds `input` chunk by chunk; `frames(&buf)` slices the whole frames at
    /// the start of `buf` and returns how many bytes they took.
    #[inline]
    fn feed(&mut self, input: &[u8], mut frames: impl FnMut(&[u8]) -> usize) {
        for chunk in input.chunks(CHUNK) {
            self.buf[self.filled..self.filled + chunk.len()].copy_from_slice(chunk);
            self.filled += chunk.len();
            let used = frames(&self.buf[..self.filled]);
            self.buf.copy_within(used..self.filled, 0);
            self.filled -= used;
        }
        assert_eq!(self.filled, 0, "input ends on a frame boundary");
    }
}

/// (b) The bare hand-written decoder: reads the length, slices. Borrowed
/// `&[u8]` frames.
pub(crate) fn bare_borrowed(rx: &mut SliceBuf, input: &[u8]) -> Tally {
    let mut t = Tally::default();
    rx.feed(input, |buf| {
        let mut pos = 0;
        while let Some(head) = buf.get(pos..pos + HEADER) {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let Some(payload) = buf.get(pos + HEADER..pos + HEADER + len) else {
                break;
            };
            t.see(payload);
            pos += HEADER + len;
        }
        pos
    });
    t
}

/// (b') The bare hand-written decoder handing out `Bytes`: reads the length,
/// `split_to` + `advance` + `freeze` on a `BytesMut`.
pub(crate) struct BareBytes {
    buf: BytesMut,
}

impl BareBytes {
    /// An empty buffer with room for two chunks.
    pub(crate) fn new() -> Self {
        BareBytes {
            buf: BytesMut::with_capacity(2 * CHUNK),
        }
    }

    /// Decodes all of `input`.
    pub(crate) fn run(&mut self, input: &[u8]) -> Tally {
        let mut t = Tally::default();
        for chunk in input.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            while self.buf.len() >= HEADER {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if self.buf.len() < HEADER + len {
                    break;
                }
                let mut frame = self.buf.split_to(HEADER + len);
                frame.advance(HEADER);
                let frame = frame.freeze();
                t.see(&frame);
            }
        }
        assert!(self.buf.is_empty(), "input ends on a frame boundary");
        t
    }
}

/// (b'') The bare decoder handing out `Bytes` the cheapest way found: the
/// buffer is frozen once per chunk and every frame is a `Bytes::slice` of it;
/// the partial tail is taken back as a `BytesMut` (`try_into_mut`, no copy
/// once every frame has been dropped).
pub(crate) struct BareBytesSlice {
    buf: BytesMut,
}

impl BareBytesSlice {
    /// An empty buffer with room for two chunks.
    pub(crate) fn new() -> Self {
        BareBytesSlice {
            buf: BytesMut::with_capacity(2 * CHUNK),
        }
    }

    /// Decodes all of `input`.
    pub(crate) fn run(&mut self, input: &[u8]) -> Tally {
        let mut t = Tally::default();
        for chunk in input.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            let whole = std::mem::take(&mut self.buf).freeze();
            let mut pos = 0;
            while let Some(head) = whole.get(pos..pos + HEADER) {
                let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if whole.len() < pos + HEADER + len {
                    break;
                }
                let frame = whole.slice(pos + HEADER..pos + HEADER + len);
                t.see(&frame);
                pos += HEADER + len;
            }
            let mut rest = whole
                .try_into_mut()
                .unwrap_or_else(|b| BytesMut::from(&b[..]));
            rest.advance(pos);
            self.buf = rest;
        }
        assert!(self.buf.is_empty(), "input ends on a frame boundary");
        t
    }
}

/// (c) framewire's `LengthPrefixed::decode` used directly on the buffer.
pub(crate) fn framing_decode(
    framing: &mut LengthPrefixed,
    rx: &mut SliceBuf,
    input: &[u8],
) -> Tally {
    let mut t = Tally::default();
    rx.feed(input, |buf| {
        let mut pos = 0;
        loop {
            match framing.decode(&buf[pos..]).expect("valid input") {
                Decode::Frame { len, payload } => {
                    t.see(&buf[pos..][payload]);
                    pos += len;
                }
                Decode::Incomplete { .. } => break,
                Decode::Skip { .. } => unreachable!("no frame is over the limit"),
            }
        }
        pos
    });
    t
}

/// (d) framewire's no-alloc `BorrowedFramedStream`: `handle_input` each
/// chunk, then `poll_event` until `None`.
pub(crate) fn borrowed_stream(
    s: &mut BorrowedFramedStream<'_, LengthPrefixed>,
    input: &[u8],
) -> Tally {
    let mut t = Tally::default();
    for chunk in input.chunks(CHUNK) {
        let mut off = 0;
        while off < chunk.len() {
            off += s.handle_input(&chunk[off..]).expect("valid input");
            while let Some(event) = s.poll_event().expect("valid input") {
                match event {
                    Event::Frame(frame) => t.see(frame),
                    other => unreachable!("unexpected event {other:?}"),
                }
            }
        }
    }
    assert_eq!(s.buffered_len(), 0, "input ends on a frame boundary");
    t
}

/// The receive buffer size for [`borrowed_stream`]: two chunks.
pub(crate) const BORROWED_RX: usize = 2 * CHUNK;

/// (e) framewire's `FramedStream`: `handle_input` each chunk, then
/// `poll_event` until `None`; frames are `Bytes` sharing the receive buffer.
pub(crate) fn owned_stream(s: &mut FramedStream<LengthPrefixed>, input: &[u8]) -> Tally {
    let mut t = Tally::default();
    for chunk in input.chunks(CHUNK) {
        let mut off = 0;
        while off < chunk.len() {
            off += s.handle_input(&chunk[off..]).expect("valid input");
            while let Some(event) = s.poll_event().expect("valid input") {
                match event {
                    Event::Frame(frame) => t.see(&frame),
                    other => unreachable!("unexpected event {other:?}"),
                }
            }
        }
    }
    assert_eq!(s.buffered_len(), 0, "input ends on a frame boundary");
    t
}

/// Memory-bandwidth reference for large frames: one copy of every chunk into
/// a destination as large as the input, which is what any decoder that
/// receives into its own buffer does at least once.
pub(crate) struct OneCopy {
    dst: Vec<u8>,
}

impl OneCopy {
    /// A destination of `len` bytes (the input's size).
    pub(crate) fn new(len: usize) -> Self {
        OneCopy { dst: vec![0; len] }
    }

    /// Copies `input` chunk by chunk.
    pub(crate) fn run(&mut self, input: &[u8]) -> Tally {
        for (i, chunk) in input.chunks(CHUNK).enumerate() {
            self.dst[i * CHUNK..i * CHUNK + chunk.len()].copy_from_slice(chunk);
        }
        black_box(&self.dst);
        Tally {
            frames: 0,
            bytes: input.len() as u64,
        }
    }
}

/// Moves everything packet connection `from` has queued into `to` through
/// `scratch` (one copy out, as a socket write; one copy in, as a read),
/// calling `poll` on `to` after each piece of input it takes.
pub(crate) fn carry_packets(
    from: &mut Connection,
    to: &mut Connection,
    scratch: &mut [u8],
    mut poll: impl FnMut(&mut Connection),
) {
    loop {
        let n = from.fill_transmit(scratch);
        if n == 0 {
            break;
        }
        let mut off = 0;
        while off < n {
            off += to.handle_input(&scratch[off..n]).expect("valid input");
            poll(to);
        }
    }
}
