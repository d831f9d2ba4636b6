//! Every framing, both directions, side by side with tokio-util, a memcpy and
//! bare hand-written splitters; BSON objects; the packet connection with no
//! I/O; memory while streaming 1 GiB. One process, interleaved rounds, the
//! best round counts (see `tests/benches/CODECS.md` for figures).
//!
//! ```text
//! cargo bench -p framewire-tests --bench codecs                 # ~1 min
//! cargo bench -p framewire-tests --bench codecs -- --quick      # ~15 s, noisier
//! cargo bench -p framewire-tests --bench codecs -- --only decode,memory --csv /tmp/c.csv
//! cargo bench -p framewire-tests --bench codecs -- --strict     # exit 1 on a MISS
//! # profiling: --framing length,lines and --size 16,65536 (decode/encode), --filter TEXT
//! # (contender names), --rounds N, --turn-ms MS (how long each contender runs per round)
//! python3 scripts/plot-codecs.py target/codecs.csv docs/decode-throughput.svg
//! ```
//!
//! Prints markdown tables and writes every figure to a CSV (`--csv FILE`,
//! default `<target dir>/codecs.csv`) in long form: `section, group,
//! contender, size_bytes, metric, value`. Sections (`--only` takes a
//! comma-separated list of them):
//!
//! 1. `decode`: `LengthPrefixed` (u32 BE), `Delimited` (`\n` lines),
//!    `BsonDocument`, `Fixed`, `JsonHeader` and `PacketFraming`
//!    (cs.packetstream packets, BSUInt length), payloads of 16 B, 256 B,
//!    4 KiB and 64 KiB, the same prebuilt input fed in 64 KiB chunks to:
//!    framewire `FramedStream` (`handle_input` + `poll_event`: `Bytes`
//!    frames; `handle_input` + `poll_event_with`: lent `&[u8]`;
//!    `receive_buffer` + `commit_received` + `poll_event_with`: read in place
//!    as the std adapter does), framewire-tokio's `FrameCodec`, tokio-util's
//!    equivalent where one exists (`LengthDelimitedCodec`; `LinesCodec`,
//!    which makes a `String` per line, and `AnyDelimiterCodec`, which makes
//!    `Bytes`, the fair comparison; `LengthDelimitedCodec` configured for
//!    BSON's self-inclusive little-endian `i32`), bare splitters (length:
//!    slices and `Bytes`; lines: `memchr`), and a memcpy of every chunk into
//!    one reused 64 KiB buffer (the physical limit: any decoder copies each
//!    byte into its buffer once). Every contender's frame count, byte count
//!    and a signature of each frame's length, first and last byte are
//!    checked against the input before it is timed. A separate untimed pass
//!    checks for payload copies: it reads into `receive_buffer`, remembers
//!    where each byte was written, and compares every frame's pointer with
//!    the address its first byte was read to.
//! 2. `encode`: the same frames through `FramedStream::send` (`Bytes`, not
//!    copied) and `send_slice` (copied), the queue drained into a simulated
//!    socket every 64 KiB (`transmit_chunks`, `advance_transmit`), against
//!    tokio-util's `Encoder::encode` into a `BytesMut` written out the same
//!    way, and a memcpy of the wire bytes into the socket. The socket copies
//!    into a reused 256 KiB ring; the first run's output is checked against
//!    the expected wire bytes.
//! 3. `bson`: WIRE.md's 50-byte `{"seq": i, "pad": b"x"*26}` and a ~4 KiB
//!    document through `framewire::message::bson` (with and without the
//!    framed stream) and through the `bson` crate directly.
//! 4. `packet`: two `framewire::packet::Connection`s wired back to back in
//!    memory (`fill_transmit` -> `handle_input`), 16-byte requests answered
//!    by an echo, 1 or 128 in flight, events polled owned (`poll_event`,
//!    `respond`); and 128 in flight parsing on poll, the server answering
//!    in place as framewire-tokio's does and the client taking responses
//!    lent through `poll_lent` (framewire-tokio's driver takes a batch's
//!    through `poll_lent_handling`); tokio-util `LengthDelimitedCodec`
//!    doing the same exchange in memory as the anchor.
//! 5. `memory`: 1 GiB (`--quick`: 256 MiB) of 64 KiB frames through
//!    `FramedStream`, and through framewire-tokio `FrameCodec` and
//!    tokio-util `LengthDelimitedCodec` over a `tokio::io::duplex`; VmRSS
//!    sampled every 16 MiB (first, last, max).
//!
//! Absolute rates depend on the machine and what else runs on it; targets
//! are ratios between contenders timed in the same process.

// Counts and byte totals here are far below 2^52: converting them to f64 for
// rates loses nothing.
#![allow(clippy::cast_precision_loss)]

mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::ops::Range;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use common::CHUNK;
use framewire::framing::{
    BsonDocument, Delimited, Fixed, Framing, JsonHeader, LengthPrefixed, PacketFraming,
};
use framewire::packet::wire::Packet;
use framewire::packet::{BorrowedEvent, Config, Connection, Event as PacketEvent};
use framewire::stream::{Event, FramedStream};
use framewire_tokio::codec::FrameCodec;
use serde::{Deserialize, Serialize};
use tokio_util::codec::{
    AnyDelimiterCodec, BytesCodec, Decoder, Encoder, LengthDelimitedCodec, LinesCodec,
};

/// Payload sizes of the framing sections.
const SIZES: [usize; 4] = [16, 256, 4 * 1024, 64 * 1024];

/// Input per framing and size: about this many bytes, at least 64 frames.
const INPUT_BYTES: usize = 2 << 20;

// ---------------------------------------------------------------------------
// Plan, results, output
// ---------------------------------------------------------------------------

/// Run-size knobs; `--quick` shrinks them.
struct Plan {
    /// Interleaved rounds per race.
    rounds: usize,
    /// How long one contender's turn in a round lasts (runs are calibrated
    /// to it).
    turn: Duration,
    /// Bytes streamed by each memory run.
    memory_bytes: u64,
    /// The framings of the decode and encode sections (`--framing`).
    kinds: Vec<Kind>,
    /// Only contenders whose name contains this (`--filter`, for
    /// profiling); targets that need a missing contender are left out.
    filter: Option<String>,
    /// The payload sizes of the decode and encode sections (`--size`).
    sizes: Vec<usize>,
}

impl Plan {
    /// Drops the contenders `--filter` leaves out.
    fn keep<'a>(&self, mut list: Vec<Contender<'a>>) -> Vec<Contender<'a>> {
        if let Some(f) = &self.filter {
            list.retain(|c| c.name.contains(f.as_str()));
        }
        list
    }
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                rounds: 5,
                turn: Duration::from_millis(3),
                memory_bytes: 256 << 20,
                kinds: Kind::ALL.to_vec(),
                filter: None,
                sizes: SIZES.to_vec(),
            }
        } else {
            Plan {
                rounds: 10,
                turn: Duration::from_millis(10),
                memory_bytes: 1 << 30,
                kinds: Kind::ALL.to_vec(),
                filter: None,
                sizes: SIZES.to_vec(),
            }
        }
    }
}

/// One figure for the CSV.
struct Figure {
    section: &'static str,
    group: String,
    contender: String,
    size: usize,
    metric: &'static str,
    value: f64,
}

/// One target: `value >= need` (or `<=` when `at_most`).
struct Target {
    what: String,
    value: f64,
    need: f64,
    unit: &'static str,
    at_most: bool,
}

impl Target {
    fn ratio(what: String, num: f64, den: f64, need: f64) -> Target {
        Target {
            what,
            value: num / den,
            need,
            unit: "x",
            at_most: false,
        }
    }

    fn pass(&self) -> bool {
        if self.at_most {
            self.value <= self.need
        } else {
            self.value >= self.need
        }
    }
}

/// Everything measured in one run.
#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    targets: Vec<Target>,
    /// Markdown, in the order sections ran.
    text: String,
}

impl Report {
    fn figure(
        &mut self,
        section: &'static str,
        group: &str,
        contender: &str,
        size: usize,
        metric: &'static str,
        value: f64,
    ) {
        self.figures.push(Figure {
            section,
            group: group.into(),
            contender: contender.into(),
            size,
            metric,
            value,
        });
    }

    fn csv(&self) -> String {
        let mut out = String::from("section,group,contender,size_bytes,metric,value\n");
        for f in &self.figures {
            let _ = writeln!(
                out,
                "{},{},\"{}\",{},{},{}",
                f.section,
                f.group,
                f.contender.replace('"', "\"\""),
                f.size,
                f.metric,
                f.value
            );
        }
        out
    }
}

fn fmt_size(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

fn fmt_count(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.1} M", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k", rate / 1e3)
    } else {
        format!("{rate:.0} ")
    }
}

/// Pins the calling thread to `cpu`. Returns whether that worked.
fn pin(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

// ---------------------------------------------------------------------------
// Counting and racing
// ---------------------------------------------------------------------------

/// What a contender saw: frames, payload bytes, and an order-dependent
/// signature of every frame's length, first and last byte, so a contender
/// that skips or misplaces frames cannot look fast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Count {
    frames: u64,
    bytes: u64,
    sig: u64,
}

impl Count {
    /// A packet response: counted, its tag summed into the signature.
    #[inline]
    fn response(&mut self, tag: u64, payload: &[u8]) {
        self.frames += 1;
        self.bytes += payload.len() as u64;
        self.sig = self.sig.wrapping_add(tag);
    }

    #[inline]
    fn see(&mut self, payload: &[u8]) {
        let len = payload.len() as u64;
        let first = payload.first().map_or(0, |&b| u64::from(b));
        let last = payload.last().map_or(0, |&b| u64::from(b));
        self.frames += 1;
        self.bytes += len;
        self.sig = self.sig.rotate_left(7) ^ (len | first << 40 | last << 48);
        black_box(payload);
    }

    /// A count of `frames` that wrote `bytes` (encoders, memcpy): no
    /// signature.
    fn plain(frames: usize, bytes: usize) -> Count {
        Count {
            frames: frames as u64,
            bytes: bytes as u64,
            sig: 0,
        }
    }
}

/// A simulated socket for the encoders: every write is copied into a reused
/// 256 KiB ring (as `write` copies into the kernel); the verification run
/// also keeps everything written.
struct Sink {
    ring: Vec<u8>,
    pos: usize,
    written: usize,
    capture: Option<Vec<u8>>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            ring: vec![0; 256 * 1024],
            pos: 0,
            written: 0,
            capture: None,
        }
    }

    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        self.written += bytes.len();
        if let Some(c) = &mut self.capture {
            c.extend_from_slice(bytes);
        }
        while !bytes.is_empty() {
            if self.pos == self.ring.len() {
                self.pos = 0;
            }
            let n = bytes.len().min(self.ring.len() - self.pos);
            self.ring[self.pos..self.pos + n].copy_from_slice(&bytes[..n]);
            self.pos += n;
            bytes = &bytes[n..];
        }
        black_box(&self.ring);
    }

    /// Bytes written since the last call.
    fn take_written(&mut self) -> usize {
        std::mem::take(&mut self.written)
    }
}

type Run<'a> = Box<dyn FnMut(&mut Sink) -> Count + 'a>;

/// A contender: its name and one run over its input (references such as the
/// memcpy return the expected count; everything else counts what it saw).
struct Contender<'a> {
    name: &'static str,
    run: Run<'a>,
}

fn contender<'a>(name: &'static str, run: impl FnMut(&mut Sink) -> Count + 'a) -> Contender<'a> {
    Contender {
        name,
        run: Box::new(run),
    }
}

/// Checks every contender once against `want` (and, for encoders, the
/// written bytes against `wire`), calibrates how many runs fill a turn,
/// then times `rounds` interleaved rounds (the starting contender rotates),
/// every run on its own. Returns each contender's fastest run, in seconds.
fn race(
    plan: &Plan,
    what: &str,
    want: Count,
    wire: Option<&[u8]>,
    contenders: &mut [Contender<'_>],
) -> Vec<f64> {
    let mut sink = Sink::new();
    let mut runs = Vec::with_capacity(contenders.len());
    for c in contenders.iter_mut() {
        if wire.is_some() {
            sink.capture = Some(Vec::new());
        }
        let got = (c.run)(&mut sink);
        if let Some(wire) = wire {
            let out = sink.capture.take().expect("captured");
            assert!(
                out == wire,
                "{what}: {} wrote {} bytes that differ from the expected {} (first difference at {:?})",
                c.name,
                out.len(),
                wire.len(),
                out.iter().zip(wire).position(|(a, b)| a != b)
            );
        }
        assert_eq!(got, want, "{what}: {} saw the input wrongly", c.name);
        // Calibrate on a second, warm run.
        let start = Instant::now();
        black_box((c.run)(&mut sink));
        let once = start.elapsed().as_secs_f64().max(1e-7);
        runs.push(((plan.turn.as_secs_f64() / once).ceil() as usize).clamp(1, 100_000));
    }
    let n = contenders.len();
    let mut best = vec![f64::INFINITY; n];
    for round in 0..plan.rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let c = &mut contenders[i];
            // Each run is timed on its own: on a shared machine a run that
            // was not preempted is the one that shows the code's cost.
            for _ in 0..runs[i] {
                let start = Instant::now();
                black_box((c.run)(&mut sink));
                best[i] = best[i].min(start.elapsed().as_secs_f64());
            }
        }
    }
    best
}

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Length,
    Lines,
    Bson,
    Fixed,
    JsonHeader,
    Packet,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Length,
        Kind::Lines,
        Kind::Bson,
        Kind::Fixed,
        Kind::JsonHeader,
        Kind::Packet,
    ];

    /// The CSV group name.
    fn name(self) -> &'static str {
        match self {
            Kind::Length => "length",
            Kind::Lines => "lines",
            Kind::Bson => "bson",
            Kind::Fixed => "fixed",
            Kind::JsonHeader => "json_header",
            Kind::Packet => "packet",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Kind::Length => "LengthPrefixed (u32 BE)",
            Kind::Lines => "Delimited (\\n lines)",
            Kind::Bson => "BsonDocument",
            Kind::Fixed => "Fixed",
            Kind::JsonHeader => "JsonHeader",
            Kind::Packet => "PacketFraming (cs.packetstream)",
        }
    }

    /// What "payload size" means for this framing.
    fn size_note(self) -> &'static str {
        match self {
            Kind::Length => "payload after a 4-byte length",
            Kind::Lines => "line without its `\\n`",
            Kind::Bson => "whole document (`{\"p\": binary}`)",
            Kind::Fixed => "frame",
            Kind::JsonHeader => {
                "content after a ~110-byte prefix + JSON header (frames are whole messages)"
            }
            Kind::Packet => "request payload after a 4-8 byte header (frames are whole packets)",
        }
    }
}

/// A prebuilt stream of frames.
struct Wire {
    /// The bytes on the wire.
    bytes: Vec<u8>,
    /// What a sender hands over for each frame.
    payloads: Vec<Bytes>,
    /// The same, as text (lines only; tokio-util's line encoders take `str`).
    lines: Vec<String>,
    /// Where each frame's delivered payload is in `bytes`.
    delivered: Vec<Range<usize>>,
}

impl Wire {
    /// What a correct framewire decoder sees.
    fn want(&self) -> Count {
        let mut c = Count::default();
        for r in &self.delivered {
            c.see(&self.bytes[r.clone()]);
        }
        c
    }
}

/// A tiny xorshift, for payload contents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn fill(&mut self, out: &mut [u8], text: bool) {
        for chunk in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            for (o, b) in chunk.iter_mut().zip(r) {
                // Text: printable ASCII only (no `\n`, no `\r`).
                *o = if text { b' ' + b % 94 } else { b };
            }
        }
    }
}

const JSON_TYPE: &str = "binary/custom-client-binary-type";

fn build(kind: Kind, size: usize) -> Wire {
    let frames = (INPUT_BYTES / (size + 4)).max(64);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ size as u64);
    let mut w = Wire {
        bytes: Vec::with_capacity(frames * (size + 128)),
        payloads: Vec::with_capacity(frames),
        lines: Vec::new(),
        delivered: Vec::with_capacity(frames),
    };
    let mut content = vec![0u8; size];
    for i in 0..frames {
        rng.fill(&mut content, kind == Kind::Lines);
        let at = w.bytes.len();
        match kind {
            Kind::Length => {
                w.bytes.extend_from_slice(&(size as u32).to_be_bytes());
                w.bytes.extend_from_slice(&content);
                w.payloads.push(Bytes::copy_from_slice(&content));
                w.delivered.push(at + 4..at + 4 + size);
            }
            Kind::Lines => {
                w.bytes.extend_from_slice(&content);
                w.bytes.push(b'\n');
                w.payloads.push(Bytes::copy_from_slice(&content));
                w.lines
                    .push(String::from_utf8(content.clone()).expect("ASCII"));
                w.delivered.push(at..at + size);
            }
            Kind::Bson => {
                // {"p": <binary of size - 13 bytes>}: 4 (length) + 1 (type)
                // + 2 ("p\0") + 4 (binary length) + 1 (subtype) + data + 1.
                let k = size - 13;
                let mut doc = Vec::with_capacity(size);
                doc.extend_from_slice(&(size as i32).to_le_bytes());
                doc.extend_from_slice(b"\x05p\0");
                doc.extend_from_slice(&(k as i32).to_le_bytes());
                doc.push(0);
                doc.extend_from_slice(&content[..k]);
                doc.push(0);
                w.bytes.extend_from_slice(&doc);
                w.payloads.push(Bytes::from(doc));
                w.delivered.push(at..at + size);
            }
            Kind::Fixed => {
                w.bytes.extend_from_slice(&content);
                w.payloads.push(Bytes::copy_from_slice(&content));
                w.delivered.push(at..at + size);
            }
            Kind::JsonHeader => {
                let msg = framewire::message::json_header::encode_message_vec(
                    JSON_TYPE, "binary", "little", &content,
                )
                .expect("encodes");
                w.bytes.extend_from_slice(&msg);
                w.delivered.push(at..at + msg.len());
                w.payloads.push(Bytes::from(msg));
            }
            Kind::Packet => {
                let p = Packet::request(0, i as u64 + 2, 0, 0, &content).expect("fields");
                let mut out = vec![0u8; p.encoded_len()];
                p.encode(&mut out).expect("fits");
                w.bytes.extend_from_slice(&out);
                w.delivered.push(at..at + out.len());
                w.payloads.push(Bytes::from(out));
            }
        }
    }
    w
}

// ---------------------------------------------------------------------------
// Decoders
// ---------------------------------------------------------------------------

/// Feeds `input` to `s` through `handle_input` in 64 KiB chunks, offering
/// what was refused again after `poll` has taken the frames out.
#[inline]
fn feed<F: Framing>(
    s: &mut FramedStream<F>,
    input: &[u8],
    mut poll: impl FnMut(&mut FramedStream<F>),
) {
    for chunk in input.chunks(CHUNK) {
        let mut off = 0;
        while off < chunk.len() {
            off += s.handle_input(&chunk[off..]).expect("valid input");
            poll(s);
        }
    }
    assert_eq!(s.buffered_len(), 0, "input ends on a frame boundary");
}

/// framewire `FramedStream`: `handle_input` each chunk, `poll_event` (frames
/// are `Bytes` sharing the receive buffer).
fn fw_bytes<F: Framing>(s: &mut FramedStream<F>, input: &[u8]) -> Count {
    let mut t = Count::default();
    feed(s, input, |s| {
        while let Some(event) = s.poll_event().expect("valid input") {
            match event {
                Event::Frame(frame) => t.see(&frame),
                other => unreachable!("unexpected event {other:?}"),
            }
        }
    });
    t
}

/// framewire `FramedStream`: `handle_input` each chunk, `poll_event_with`
/// (frames lent as `&[u8]`).
fn fw_lend<F: Framing>(s: &mut FramedStream<F>, input: &[u8]) -> Count {
    let mut t = Count::default();
    feed(s, input, |s| while let Some(()) = lend_one(s, &mut t) {});
    t
}

/// One `poll_event_with`, counting the lent frame.
#[inline]
fn lend_one<F: Framing>(s: &mut FramedStream<F>, t: &mut Count) -> Option<()> {
    s.poll_event_with(|event| match event {
        Event::Frame(frame) => t.see(frame),
        other => unreachable!("unexpected event {other:?}"),
    })
    .expect("valid input")
}

/// framewire `FramedStream`: `handle_input` each chunk, then
/// `drain_events_with` (every frame available, lent as `&[u8]`, in one call).
fn fw_drain<F: Framing>(s: &mut FramedStream<F>, input: &[u8]) -> Count {
    let mut t = Count::default();
    feed(s, input, |s| {
        s.drain_events_with(|event| match event {
            Event::Frame(frame) => t.see(frame),
            other => unreachable!("unexpected event {other:?}"),
        })
        .expect("valid input");
    });
    t
}

/// framewire `FramedStream` read in place: each chunk is copied into
/// `receive_buffer` (as a socket `read` would write it) and committed,
/// frames lent by `poll_event_with`.
fn fw_in_place<F: Framing>(s: &mut FramedStream<F>, input: &[u8]) -> Count {
    let mut t = Count::default();
    for chunk in input.chunks(CHUNK) {
        let mut off = 0;
        while off < chunk.len() {
            let spare = s.receive_buffer();
            let n = spare.len().min(chunk.len() - off);
            assert!(n > 0, "receive_buffer offered no room after a drain");
            spare[..n].copy_from_slice(&chunk[off..off + n]);
            s.commit_received(n).expect("valid input");
            off += n;
            while let Some(()) = lend_one(s, &mut t) {}
        }
    }
    assert_eq!(s.buffered_len(), 0, "input ends on a frame boundary");
    t
}

/// Any tokio-util `Decoder` on a `BytesMut`, no I/O: each chunk appended,
/// then `decode` until `None`.
struct Tok<D> {
    codec: D,
    buf: BytesMut,
}

impl<D> Tok<D>
where
    D: Decoder,
    D::Item: AsRef<[u8]>,
    D::Error: std::fmt::Debug,
{
    fn new(codec: D) -> Self {
        Tok {
            codec,
            buf: BytesMut::with_capacity(2 * CHUNK),
        }
    }

    fn run(&mut self, input: &[u8]) -> Count {
        let mut t = Count::default();
        for chunk in input.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            while let Some(frame) = self.codec.decode(&mut self.buf).expect("valid input") {
                t.see(frame.as_ref());
            }
        }
        assert!(self.buf.is_empty(), "input ends on a frame boundary");
        t
    }
}

/// tokio-util's `LengthDelimitedCodec` set up for BSON documents: a `u32`
/// little-endian length that counts itself, kept in the frame, 16 MiB
/// documents. With `num_skip(0)` tokio-util counts the length from the start
/// of the header, so a self-inclusive length needs adjustment 0: the
/// often-quoted `length_adjustment(-4)` yields the document's first `len - 4`
/// bytes (it is right only with the default `num_skip`, which strips the
/// length field). The race's check of every frame's length, first and last
/// byte catches the difference.
fn tokio_bson_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_offset(0)
        .length_field_type::<u32>()
        .little_endian()
        .length_adjustment(0)
        .num_skip(0)
        .max_frame_length(16 << 20)
        .new_codec()
}

/// A fixed receive buffer for the bare splitters: chunks are copied in
/// behind the last partial frame, frames are sliced out, the partial tail is
/// moved to the front.
struct Rx {
    buf: Vec<u8>,
    filled: usize,
}

impl Rx {
    fn new(max_frame: usize) -> Rx {
        Rx {
            buf: vec![0; CHUNK + max_frame],
            filled: 0,
        }
    }

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

/// Bare length decoder, borrowed slices: reads the `u32` BE length, slices.
fn bare_length(rx: &mut Rx, input: &[u8]) -> Count {
    let mut t = Count::default();
    rx.feed(input, |buf| {
        let mut pos = 0;
        while let Some(&head) = buf[pos..].first_chunk::<4>() {
            let len = u32::from_be_bytes(head) as usize;
            let Some(payload) = buf.get(pos + 4..pos + 4 + len) else {
                break;
            };
            t.see(payload);
            pos += 4 + len;
        }
        pos
    });
    t
}

/// Bare length decoder handing out `Bytes`: one `freeze` per chunk, every
/// frame a `Bytes::slice` of it, the tail taken back with `try_into_mut`
/// (`common::BareBytesSlice`, with this bench's `Count`).
struct BareBytes {
    buf: BytesMut,
}

impl BareBytes {
    fn run(&mut self, input: &[u8]) -> Count {
        let mut t = Count::default();
        for chunk in input.chunks(CHUNK) {
            self.buf.extend_from_slice(chunk);
            let whole = std::mem::take(&mut self.buf).freeze();
            let mut pos = 0;
            while let Some(&head) = whole[pos..].first_chunk::<4>() {
                let len = u32::from_be_bytes(head) as usize;
                if whole.len() < pos + 4 + len {
                    break;
                }
                let frame = whole.slice(pos + 4..pos + 4 + len);
                t.see(&frame);
                pos += 4 + len;
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

/// Bare line splitter: `memchr` for `\n`, borrowed slices.
fn bare_memchr(rx: &mut Rx, input: &[u8]) -> Count {
    let mut t = Count::default();
    rx.feed(input, |buf| {
        let mut pos = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) {
            t.see(&buf[pos..pos + nl]);
            pos += nl + 1;
        }
        pos
    });
    t
}

/// One memcpy of every chunk into a reused 64 KiB buffer.
fn memcpy_chunks(dst: &mut [u8], input: &[u8]) {
    for chunk in input.chunks(CHUNK) {
        dst[..chunk.len()].copy_from_slice(chunk);
        black_box(&dst);
    }
}

// ---------------------------------------------------------------------------
// Section 1: decode
// ---------------------------------------------------------------------------

const MEMCPY: &str = "memcpy of each chunk (reference)";
const FW_BYTES: &str = "framewire FramedStream poll_event (Bytes)";
const FW_LEND: &str = "framewire FramedStream poll_event_with (&[u8])";
const FW_DRAIN: &str = "framewire FramedStream drain_events_with (&[u8])";
const FW_IN_PLACE: &str = "framewire FramedStream receive_buffer + poll_event_with";
const FW_TOKIO: &str = "framewire-tokio FrameCodec (Decoder)";
const TOKIO_LENGTH: &str = "tokio-util LengthDelimitedCodec";
const TOKIO_BSON: &str = "tokio-util LengthDelimitedCodec (BSON: u32 LE, adj 0, skip 0)";
const TOKIO_LINES: &str = "tokio-util LinesCodec (String)";
const TOKIO_ANY: &str = "tokio-util AnyDelimiterCodec (Bytes)";
const BARE_SLICES: &str = "bare length decoder (slices)";
const BARE_BYTES: &str = "bare length decoder (Bytes)";
const BARE_MEMCHR: &str = "bare memchr splitter (slices)";

/// The framewire contenders for framing `f`.
fn fw_decoders<'a, F: Framing + Clone + 'a>(f: &F, input: &'a [u8]) -> Vec<Contender<'a>> {
    let mut bytes = FramedStream::new(f.clone());
    let mut lend = FramedStream::new(f.clone());
    let mut drain = FramedStream::new(f.clone());
    let mut in_place = FramedStream::new(f.clone());
    let mut codec = Tok::new(FrameCodec::new(f.clone()));
    vec![
        contender(FW_BYTES, move |_| fw_bytes(&mut bytes, input)),
        contender(FW_LEND, move |_| fw_lend(&mut lend, input)),
        contender(FW_DRAIN, move |_| fw_drain(&mut drain, input)),
        contender(FW_IN_PLACE, move |_| fw_in_place(&mut in_place, input)),
        contender(FW_TOKIO, move |_| codec.run(input)),
    ]
}

fn decode_contenders(kind: Kind, size: usize, w: &Wire) -> Vec<Contender<'_>> {
    let input = &w.bytes[..];
    let want = w.want();
    let mut dst = vec![0u8; CHUNK];
    let mut list = vec![contender(MEMCPY, move |_| {
        memcpy_chunks(&mut dst, input);
        want
    })];
    match kind {
        Kind::Length => {
            let mut rx = Rx::new(size + 4);
            let mut bb = BareBytes {
                buf: BytesMut::with_capacity(2 * CHUNK),
            };
            let mut tok = Tok::new(LengthDelimitedCodec::new());
            list.push(contender(BARE_SLICES, move |_| bare_length(&mut rx, input)));
            list.push(contender(BARE_BYTES, move |_| bb.run(input)));
            list.push(contender(TOKIO_LENGTH, move |_| tok.run(input)));
            list.extend(fw_decoders(&LengthPrefixed::new(), input));
        }
        Kind::Lines => {
            let mut rx = Rx::new(size + 1);
            let mut lines = Tok::new(LinesCodec::new());
            let mut any = Tok::new(AnyDelimiterCodec::new(b"\n".to_vec(), b"\n".to_vec()));
            list.push(contender(BARE_MEMCHR, move |_| bare_memchr(&mut rx, input)));
            list.push(contender(TOKIO_LINES, move |_| lines.run(input)));
            list.push(contender(TOKIO_ANY, move |_| any.run(input)));
            list.extend(fw_decoders(&Delimited::new(), input));
        }
        Kind::Bson => {
            let mut tok = Tok::new(tokio_bson_codec());
            list.push(contender(TOKIO_BSON, move |_| tok.run(input)));
            list.extend(fw_decoders(&BsonDocument::new(), input));
        }
        Kind::Fixed => list.extend(fw_decoders(&Fixed::new(size), input)),
        Kind::JsonHeader => list.extend(fw_decoders(&JsonHeader::new(), input)),
        Kind::Packet => list.extend(fw_decoders(&PacketFraming::new(), input)),
    }
    list
}

/// Where each read put its bytes: (stream offset, address, length).
type Reads = Vec<(usize, usize, usize)>;

/// The address stream byte `off` was read to.
fn read_address(reads: &Reads, off: usize) -> (usize, usize) {
    let i = reads.partition_point(|&(o, _, _)| o <= off) - 1;
    let (o, addr, len) = reads[i];
    assert!(off < o + len, "offset {off} was read");
    (addr + (off - o), o)
}

/// What [`copy_check`] found.
#[derive(Clone, Copy, Default)]
struct Copies {
    /// Frames delivered.
    frames: usize,
    /// Frames delivered somewhere other than where they were read to.
    moved: usize,
    /// Payload bytes those moves copied, at least, after the first frame.
    moved_bytes: usize,
    /// The same for the first frame alone: it arrives while the receive
    /// buffer grows from 16 KiB with what has arrived (never by an
    /// announced length), and a reallocation copies what is buffered.
    first_moved_bytes: usize,
}

/// Frames and payload bytes delivered somewhere other than where their
/// first byte was read to (so copied at least once after the read), over
/// the whole input, reading in place as [`fw_in_place`] does.
fn copy_check<F: Framing>(framing: F, w: &Wire, lend: bool) -> Copies {
    let mut s = FramedStream::new(framing);
    let mut reads: Reads = Vec::new();
    let mut found = Copies::default();
    let mut next = 0usize;
    let mut stream_off = 0;
    for chunk in w.bytes.chunks(CHUNK) {
        let mut off = 0;
        while off < chunk.len() {
            let spare = s.receive_buffer();
            let n = spare.len().min(chunk.len() - off);
            assert!(n > 0, "receive_buffer offered no room after a drain");
            spare[..n].copy_from_slice(&chunk[off..off + n]);
            reads.push((stream_off, spare.as_ptr() as usize, n));
            s.commit_received(n).expect("valid input");
            off += n;
            stream_off += n;
            loop {
                let got = if lend {
                    s.poll_event_with(|e| match e {
                        Event::Frame(f) => (f.as_ptr() as usize, f.len()),
                        other => unreachable!("unexpected event {other:?}"),
                    })
                    .expect("valid input")
                } else {
                    s.poll_event().expect("valid input").map(|e| match e {
                        Event::Frame(f) => (f.as_ptr() as usize, f.len()),
                        other => unreachable!("unexpected event {other:?}"),
                    })
                };
                let Some((ptr, len)) = got else { break };
                let r = w.delivered[next].clone();
                assert_eq!(len, r.len(), "frame {next} length");
                let (addr, _) = read_address(&reads, r.start);
                if ptr != addr {
                    found.moved += 1;
                    // The payload bytes buffered before the read that
                    // completed the frame moved with it (all of them if the
                    // frame arrived in one read and still moved).
                    let (_, last_read) = read_address(&reads, r.end - 1);
                    let bytes = if last_read > r.start {
                        last_read - r.start
                    } else {
                        r.len()
                    };
                    if next == 0 {
                        found.first_moved_bytes += bytes;
                    } else {
                        found.moved_bytes += bytes;
                    }
                }
                next += 1;
            }
        }
    }
    assert_eq!(next, w.delivered.len(), "every frame delivered");
    found.frames = next;
    found
}

fn copy_check_kind(kind: Kind, size: usize, w: &Wire, lend: bool) -> Copies {
    match kind {
        Kind::Length => copy_check(LengthPrefixed::new(), w, lend),
        Kind::Lines => copy_check(Delimited::new(), w, lend),
        Kind::Bson => copy_check(BsonDocument::new(), w, lend),
        Kind::Fixed => copy_check(Fixed::new(size), w, lend),
        Kind::JsonHeader => copy_check(JsonHeader::new(), w, lend),
        Kind::Packet => copy_check(PacketFraming::new(), w, lend),
    }
}

/// Best rates of one race: contender -> (frames/s, GB/s of wire bytes).
type Rates = Vec<(&'static str, f64, f64)>;

fn rate_of(rates: &Rates, name: &str) -> Option<(f64, f64)> {
    rates
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, f, g)| (f, g))
}

/// A table cell: frames/s and GB/s.
type Cell = (f64, f64);

/// One table per framing: a row per contender, a column per size.
struct SizeTable {
    rows: Vec<(&'static str, [Option<Cell>; SIZES.len()])>,
}

impl SizeTable {
    fn new() -> SizeTable {
        SizeTable { rows: Vec::new() }
    }

    fn set(&mut self, name: &'static str, col: usize, cell: (f64, f64)) {
        if let Some((_, cells)) = self.rows.iter_mut().find(|(n, _)| *n == name) {
            cells[col] = Some(cell);
        } else {
            let mut cells = [None; SIZES.len()];
            cells[col] = Some(cell);
            self.rows.push((name, cells));
        }
    }

    /// The markdown table, cells "GB/s (frames/s)".
    fn render(&self, heading: &str, out: &mut String) {
        let _ = write!(out, "\n### {heading}\n\n| contender |");
        for size in SIZES {
            let _ = write!(out, " {} |", fmt_size(size));
        }
        let _ = writeln!(out, "\n|---|{}", "---:|".repeat(SIZES.len()));
        for (name, cells) in &self.rows {
            let _ = write!(out, "| {name} |");
            for cell in cells {
                match cell {
                    Some((fps, gbps)) => {
                        let _ = write!(out, " {gbps:.2} GB/s ({}fr/s) |", fmt_count(*fps));
                    }
                    None => out.push_str(" |"),
                }
            }
            out.push('\n');
        }
    }
}

/// Races `list` over wire `w` and records frames/s and GB/s of every
/// contender in `report` and `table`.
#[allow(clippy::too_many_arguments)]
fn measure(
    plan: &Plan,
    section: &'static str,
    kind: Kind,
    (col, size): (usize, usize),
    w: &Wire,
    want: Count,
    encode: bool,
    mut list: Vec<Contender<'_>>,
    report: &mut Report,
    table: &mut SizeTable,
) -> Rates {
    let what = format!("{section} {} {}", kind.name(), fmt_size(size));
    let wire = encode.then_some(&w.bytes[..]);
    let best = race(plan, &what, want, wire, &mut list);
    let rates: Rates = list
        .iter()
        .zip(&best)
        .map(|(c, &secs)| {
            (
                c.name,
                want.frames as f64 / secs,
                w.bytes.len() as f64 / secs / 1e9,
            )
        })
        .collect();
    for &(name, fps, gbps) in &rates {
        report.figure(section, kind.name(), name, size, "frames_per_s", fps);
        report.figure(section, kind.name(), name, size, "gb_per_s", gbps);
        table.set(name, col, (fps, gbps));
    }
    rates
}

/// The copy check of one framing and size: a table row, figures, and for
/// 64 KiB length frames a target.
fn copies_row(kind: Kind, size: usize, w: &Wire, report: &mut Report, out: &mut String) {
    let shared = copy_check_kind(kind, size, w, false);
    let lent = copy_check_kind(kind, size, w, true);
    let (moved_b, moved_l, frames) = (shared.moved, lent.moved, shared.frames);
    let moved_bytes = shared.moved_bytes.max(lent.moved_bytes);
    let first = shared.first_moved_bytes.max(lent.first_moved_bytes);
    let payload: usize = w.delivered.iter().map(ExactSizeIterator::len).sum();
    for (name, moved) in [(FW_BYTES, moved_b), (FW_LEND, moved_l)] {
        report.figure(
            "copies",
            kind.name(),
            name,
            size,
            "frames_moved",
            moved as f64,
        );
    }
    report.figure(
        "copies",
        kind.name(),
        "FramedStream",
        size,
        "payload_bytes_moved",
        moved_bytes as f64,
    );
    report.figure(
        "copies",
        kind.name(),
        "FramedStream",
        size,
        "first_frame_bytes_moved",
        first as f64,
    );
    let _ = writeln!(
        out,
        "| {} | {} | {frames} | {moved_b} | {moved_l} | {first} | {moved_bytes} ({:.2}% of payload) |",
        kind.name(),
        fmt_size(size),
        100.0 * moved_bytes as f64 / payload as f64
    );
    if size == 64 * 1024 && kind == Kind::Length {
        report.targets.push(Target {
            what: "decode length 64 KiB: payload bytes copied after the read, after the first frame (FramedStream, Bytes and lend)".into(),
            value: moved_bytes as f64,
            need: 0.0,
            unit: " B",
            at_most: true,
        });
    }
}

fn decode_section(plan: &Plan, report: &mut Report) {
    let mut text = String::from("\n## Decode\n\nGB/s of wire bytes (10^9 B/s) and frames/s, input fed in 64 KiB chunks; fastest of the interleaved runs.\n");
    let mut copies = String::from(
        "\n### Payload copies after the read (FramedStream, read in place)\n\nThe first frame arrives while the receive buffer grows from 16 KiB with what has arrived (never by a length the peer announced); a reallocation then copies what is buffered, once per stream. The last column counts every later frame.\n\n| framing | size | frames | moved (Bytes) | moved (lend) | first frame: bytes moved | later frames: payload bytes moved, at least |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    for &kind in &plan.kinds {
        let mut table = SizeTable::new();
        for (col, size) in SIZES.into_iter().enumerate() {
            if !plan.sizes.contains(&size) {
                continue;
            }
            let w = build(kind, size);
            let list = plan.keep(decode_contenders(kind, size, &w));
            let rates = measure(
                plan,
                "decode",
                kind,
                (col, size),
                &w,
                w.want(),
                false,
                list,
                report,
                &mut table,
            );
            decode_targets(kind, size, &rates, report);
            copies_row(kind, size, &w, report, &mut copies);
        }
        table.render(
            &format!("{} (size = {})", kind.title(), kind.size_note()),
            &mut text,
        );
    }
    text.push_str(&copies);
    println!("{text}");
    report.text.push_str(&text);
}

fn decode_targets(kind: Kind, size: usize, rates: &Rates, report: &mut Report) {
    let label = format!("{} {}", kind.name(), fmt_size(size));
    let mut ratio = |fw: &str, other: &str, need: f64| {
        if let (Some((num, _)), Some((den, _))) = (rate_of(rates, fw), rate_of(rates, other)) {
            report.targets.push(Target::ratio(
                format!("decode {label}: {fw} / {other}"),
                num,
                den,
                need,
            ));
        }
    };
    match (kind, size) {
        (Kind::Length, 16) => {
            ratio(FW_BYTES, TOKIO_LENGTH, 3.0);
            ratio(FW_LEND, TOKIO_LENGTH, 3.0);
            ratio(FW_BYTES, BARE_BYTES, 0.5);
            ratio(FW_DRAIN, BARE_SLICES, 0.5);
        }
        (Kind::Length, 65536) => {
            ratio(FW_BYTES, MEMCPY, 0.8);
            ratio(FW_LEND, MEMCPY, 0.8);
            ratio(FW_BYTES, TOKIO_LENGTH, 0.9);
        }
        (Kind::Lines, 16) => {
            ratio(FW_BYTES, TOKIO_ANY, 3.0);
            ratio(FW_BYTES, TOKIO_LINES, 3.0);
            ratio(FW_DRAIN, BARE_MEMCHR, 0.5);
        }
        (Kind::Lines, _) => ratio(FW_DRAIN, BARE_MEMCHR, 0.5),
        (Kind::Bson, 16) => ratio(FW_BYTES, TOKIO_BSON, 3.0),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Section 2: encode
// ---------------------------------------------------------------------------

/// Writes everything queued in `s` to the sink.
#[inline]
fn drain<F: Framing>(s: &mut FramedStream<F>, sink: &mut Sink) {
    let mut n = 0;
    for chunk in s.transmit_chunks() {
        sink.write(chunk);
        n += chunk.len();
    }
    s.advance_transmit(n).expect("queued");
}

fn fw_send<F: Framing>(s: &mut FramedStream<F>, payloads: &[Bytes], sink: &mut Sink) -> Count {
    for p in payloads {
        s.send(p.clone()).expect("sendable");
        if s.queued_len() >= CHUNK {
            drain(s, sink);
        }
    }
    drain(s, sink);
    Count::plain(payloads.len(), sink.take_written())
}

fn fw_send_slice<F: Framing>(
    s: &mut FramedStream<F>,
    payloads: &[Bytes],
    sink: &mut Sink,
) -> Count {
    for p in payloads {
        s.send_slice(p).expect("sendable");
        if s.queued_len() >= CHUNK {
            drain(s, sink);
        }
    }
    drain(s, sink);
    Count::plain(payloads.len(), sink.take_written())
}

/// A tokio-util `Encoder` into a `BytesMut`, written out every 64 KiB.
fn tok_encode<I, E: Encoder<I>>(
    codec: &mut E,
    buf: &mut BytesMut,
    items: impl ExactSizeIterator<Item = I>,
    sink: &mut Sink,
) -> Count
where
    E::Error: std::fmt::Debug,
{
    let frames = items.len();
    for item in items {
        codec.encode(item, buf).expect("encodable");
        if buf.len() >= CHUNK {
            sink.write(buf);
            buf.clear();
        }
    }
    sink.write(buf);
    buf.clear();
    Count::plain(frames, sink.take_written())
}

const ENC_MEMCPY: &str = "memcpy of the wire bytes (reference)";
const ENC_SEND: &str = "framewire FramedStream send (Bytes) + drain";
const ENC_SEND_SLICE: &str = "framewire FramedStream send_slice + drain";
const ENC_FW_TOKIO: &str = "framewire-tokio FrameCodec (Encoder<Bytes>)";
const ENC_TOKIO_LENGTH: &str = "tokio-util LengthDelimitedCodec (Encoder<Bytes>)";
const ENC_TOKIO_LINES: &str = "tokio-util LinesCodec (Encoder<&str>)";
const ENC_TOKIO_ANY: &str = "tokio-util AnyDelimiterCodec (Encoder<&str>)";
const ENC_TOKIO_BYTES: &str = "tokio-util BytesCodec (no framing, no check)";

fn fw_encoders<'a, F: Framing + Clone + 'a>(f: &F, payloads: &'a [Bytes]) -> Vec<Contender<'a>> {
    let mut a = FramedStream::new(f.clone());
    let mut b = FramedStream::new(f.clone());
    let mut codec = FrameCodec::new(f.clone());
    let mut buf = BytesMut::with_capacity(2 * CHUNK);
    vec![
        contender(ENC_SEND, move |sink| fw_send(&mut a, payloads, sink)),
        contender(ENC_SEND_SLICE, move |sink| {
            fw_send_slice(&mut b, payloads, sink)
        }),
        contender(ENC_FW_TOKIO, move |sink| {
            tok_encode(&mut codec, &mut buf, payloads.iter().cloned(), sink)
        }),
    ]
}

fn encode_contenders(kind: Kind, size: usize, w: &Wire) -> Vec<Contender<'_>> {
    let wire = &w.bytes[..];
    let frames = w.payloads.len();
    let payloads = &w.payloads[..];
    let mut list = vec![contender(ENC_MEMCPY, move |sink| {
        for chunk in wire.chunks(CHUNK) {
            sink.write(chunk);
        }
        Count::plain(frames, sink.take_written())
    })];
    let mut buf = BytesMut::with_capacity(2 * CHUNK);
    match kind {
        Kind::Length => {
            let mut c = LengthDelimitedCodec::new();
            list.push(contender(ENC_TOKIO_LENGTH, move |sink| {
                tok_encode(&mut c, &mut buf, payloads.iter().cloned(), sink)
            }));
            list.extend(fw_encoders(&LengthPrefixed::new(), payloads));
        }
        Kind::Lines => {
            let lines = &w.lines[..];
            let mut c = LinesCodec::new();
            let mut c2 = AnyDelimiterCodec::new(b"\n".to_vec(), b"\n".to_vec());
            let mut buf2 = BytesMut::with_capacity(2 * CHUNK);
            list.push(contender(ENC_TOKIO_LINES, move |sink| {
                tok_encode(&mut c, &mut buf, lines.iter().map(String::as_str), sink)
            }));
            list.push(contender(ENC_TOKIO_ANY, move |sink| {
                tok_encode(&mut c2, &mut buf2, lines.iter().map(String::as_str), sink)
            }));
            list.extend(fw_encoders(&Delimited::new(), payloads));
        }
        Kind::Bson => {
            let mut c = BytesCodec::new();
            list.push(contender(ENC_TOKIO_BYTES, move |sink| {
                tok_encode(&mut c, &mut buf, payloads.iter().cloned(), sink)
            }));
            list.extend(fw_encoders(&BsonDocument::new(), payloads));
        }
        Kind::Fixed => list.extend(fw_encoders(&Fixed::new(size), payloads)),
        Kind::JsonHeader => list.extend(fw_encoders(&JsonHeader::new(), payloads)),
        Kind::Packet => list.extend(fw_encoders(&PacketFraming::new(), payloads)),
    }
    list
}

fn encode_section(plan: &Plan, report: &mut Report) {
    let mut text = String::from(
        "\n## Encode\n\nGB/s of wire bytes written to the simulated socket, and frames/s; fastest of the interleaved runs.\n",
    );
    let mut ratios = String::from(
        "\n### Encode ratios against tokio-util (information; no target)\n\n| framing | size | send (Bytes) / tokio-util | send_slice / tokio-util |\n|---|---|---:|---:|\n",
    );
    for &kind in &plan.kinds {
        let mut table = SizeTable::new();
        for (col, size) in SIZES.into_iter().enumerate() {
            if !plan.sizes.contains(&size) {
                continue;
            }
            let w = build(kind, size);
            let want = Count::plain(w.payloads.len(), w.bytes.len());
            let list = plan.keep(encode_contenders(kind, size, &w));
            let rates = measure(
                plan,
                "encode",
                kind,
                (col, size),
                &w,
                want,
                true,
                list,
                report,
                &mut table,
            );
            let tokio = match kind {
                Kind::Length => ENC_TOKIO_LENGTH,
                Kind::Lines => ENC_TOKIO_ANY,
                Kind::Bson => ENC_TOKIO_BYTES,
                _ => continue,
            };
            let r = |n: &str| rate_of(&rates, n).map(|r| r.0);
            if let (Some(t), Some(a), Some(b)) = (r(tokio), r(ENC_SEND), r(ENC_SEND_SLICE)) {
                let _ = writeln!(
                    ratios,
                    "| {} ({tokio}) | {} | {:.2}x | {:.2}x |",
                    kind.name(),
                    fmt_size(size),
                    a / t,
                    b / t
                );
            }
        }
        table.render(kind.title(), &mut text);
    }
    text.push_str(&ratios);
    println!("{text}");
    report.text.push_str(&text);
}

// ---------------------------------------------------------------------------
// Section 3: BSON objects
// ---------------------------------------------------------------------------

/// WIRE.md's benchmark document, `{"seq": i, "pad": b"x"*26}` (50 bytes).
#[derive(Serialize, Deserialize)]
struct Small {
    seq: i32,
    pad: bson::Binary,
}

/// WIRE.md's hex of `Small { seq: 0 }` as py-bson writes it.
const SMALL_SEQ0: &str = "3200000010736571000000000005706164001a00000000787878787878787878787878787878787878787878787878787800";

/// A ~4 KiB document: strings, arrays, nested documents, floats, a binary.
#[derive(Serialize, Deserialize)]
struct Big {
    seq: i32,
    name: String,
    tags: Vec<String>,
    values: Vec<f64>,
    items: Vec<Item>,
    blob: bson::Binary,
}

#[derive(Serialize, Deserialize)]
struct Item {
    id: i64,
    label: String,
    score: f64,
    ok: bool,
}

trait Doc: Serialize + for<'de> Deserialize<'de> {
    fn make(seq: i32) -> Self;
    fn seq(&self) -> i32;
}

impl Doc for Small {
    fn make(seq: i32) -> Self {
        Small {
            seq,
            pad: bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![b'x'; 26],
            },
        }
    }
    fn seq(&self) -> i32 {
        self.seq
    }
}

impl Doc for Big {
    fn make(seq: i32) -> Self {
        Big {
            seq,
            name: format!("document number {seq}"),
            tags: (0..16).map(|i| format!("tag-{i:03}")).collect(),
            values: (0..128)
                .map(|i| f64::from(i) * 0.25 + f64::from(seq))
                .collect(),
            items: (0..32)
                .map(|i| Item {
                    id: i64::from(seq) * 100 + i64::from(i),
                    label: format!("item {i}"),
                    score: f64::from(i) / 3.0,
                    ok: i % 2 == 0,
                })
                .collect(),
            blob: bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![0xa5; 640],
            },
        }
    }
    fn seq(&self) -> i32 {
        self.seq
    }
}

/// A count over decoded objects: frames, and the sum of `seq` as the
/// signature.
fn see_obj(t: &mut Count, seq: i32) {
    t.frames += 1;
    t.sig = t.sig.wrapping_add(seq as u64);
}

fn bson_decode_framed<T: Doc>(s: &mut FramedStream<BsonDocument>, input: &[u8]) -> Count {
    let mut t = Count::default();
    for chunk in input.chunks(CHUNK) {
        let mut off = 0;
        while off < chunk.len() {
            off += s.handle_input(&chunk[off..]).expect("valid input");
            while let Some(seq) = s
                .poll_event_with(|e| match e {
                    Event::Frame(doc) => framewire::message::bson::from_slice::<T>(doc)
                        .expect("document")
                        .seq(),
                    other => unreachable!("unexpected event {other:?}"),
                })
                .expect("valid input")
            {
                see_obj(&mut t, seq);
            }
        }
    }
    t
}

fn bson_decode_tokio<T: Doc>(tok: &mut Tok<LengthDelimitedCodec>, input: &[u8]) -> Count {
    let mut t = Count::default();
    for chunk in input.chunks(CHUNK) {
        tok.buf.extend_from_slice(chunk);
        while let Some(doc) = tok.codec.decode(&mut tok.buf).expect("valid input") {
            let obj: T = bson::deserialize_from_slice(&doc).expect("document");
            see_obj(&mut t, obj.seq());
        }
    }
    t
}

const B_FW_FROM: &str = "framewire message::bson::from_slice (pre-cut documents)";
const B_BSON_FROM: &str = "bson::deserialize_from_slice (pre-cut documents)";
const B_FW_FRAMED: &str = "framewire FramedStream<BsonDocument> poll_event_with + from_slice";
const B_TOKIO_FRAMED: &str =
    "tokio-util LengthDelimitedCodec (BSON) + bson::deserialize_from_slice";
const B_FW_INTO: &str = "framewire message::bson::encode_into (reused Vec) + write";
const B_BSON_INTO: &str = "bson::serialize_to_buffer (reused Vec) + write";
const B_FW_VEC: &str = "framewire message::bson::to_vec (new Vec) + write";
const B_BSON_VEC: &str = "bson::serialize_to_vec (new Vec) + write";
const B_FW_SEND: &str = "framewire to_vec + FramedStream<BsonDocument> send + drain";

/// The objects of one BSON run and their documents, back to back.
struct Docs<T> {
    objs: Vec<T>,
    wire: Vec<u8>,
    ranges: Vec<Range<usize>>,
}

impl<T: Doc> Docs<T> {
    fn new() -> Docs<T> {
        let one = framewire::message::bson::to_vec(&T::make(0)).expect("encodes");
        let n = (INPUT_BYTES / one.len()).clamp(64, 40_000);
        let objs: Vec<T> = (0..n).map(|i| T::make(i as i32)).collect();
        let mut wire = Vec::new();
        let mut ranges = Vec::with_capacity(n);
        for o in &objs {
            let at = wire.len();
            framewire::message::bson::encode_into(o, &mut wire).expect("encodes");
            ranges.push(at..wire.len());
        }
        Docs { objs, wire, ranges }
    }
}

/// Objects per second of every BSON decoder.
fn bson_decoders<T: Doc>(plan: &Plan, label: &str, docs: &Docs<T>) -> Vec<(&'static str, f64)> {
    let n = docs.objs.len();
    let want = Count {
        frames: n as u64,
        bytes: 0,
        sig: (0..n).map(|i| i as u64).sum(),
    };
    let input = &docs.wire[..];
    let ranges = &docs.ranges[..];
    let mut s = FramedStream::new(BsonDocument::new());
    let mut tok = Tok::new(tokio_bson_codec());
    let dec = vec![
        contender(B_FW_FROM, |_| {
            let mut t = Count::default();
            for r in ranges {
                let o: T = framewire::message::bson::from_slice(&input[r.clone()]).expect("doc");
                see_obj(&mut t, o.seq());
            }
            t
        }),
        contender(B_BSON_FROM, |_| {
            let mut t = Count::default();
            for r in ranges {
                let o: T = bson::deserialize_from_slice(&input[r.clone()]).expect("doc");
                see_obj(&mut t, o.seq());
            }
            t
        }),
        contender(B_FW_FRAMED, |_| bson_decode_framed::<T>(&mut s, input)),
        contender(B_TOKIO_FRAMED, |_| bson_decode_tokio::<T>(&mut tok, input)),
    ];
    let mut dec = plan.keep(dec);
    let best = race(plan, &format!("bson decode {label}"), want, None, &mut dec);
    dec.iter()
        .zip(&best)
        .map(|(c, &secs)| (c.name, n as f64 / secs))
        .collect()
}

/// Objects per second of every BSON encoder; each one's output must be the
/// same bytes.
fn bson_encoders<T: Doc>(plan: &Plan, label: &str, docs: &Docs<T>) -> Vec<(&'static str, f64)> {
    let n = docs.objs.len();
    let objs = &docs.objs[..];
    let mut scratch = Vec::with_capacity(8192);
    let mut scratch2 = Vec::with_capacity(8192);
    let mut fs = FramedStream::new(BsonDocument::new());
    let written = Count::plain(n, docs.wire.len());
    let enc = vec![
        contender(B_FW_INTO, |sink| {
            for o in objs {
                scratch.clear();
                framewire::message::bson::encode_into(o, &mut scratch).expect("encodes");
                sink.write(&scratch);
            }
            Count::plain(n, sink.take_written())
        }),
        contender(B_BSON_INTO, |sink| {
            for o in objs {
                scratch2.clear();
                bson::serialize_to_buffer(o, &mut scratch2).expect("encodes");
                sink.write(&scratch2);
            }
            Count::plain(n, sink.take_written())
        }),
        contender(B_FW_VEC, |sink| {
            for o in objs {
                sink.write(&framewire::message::bson::to_vec(o).expect("encodes"));
            }
            Count::plain(n, sink.take_written())
        }),
        contender(B_BSON_VEC, |sink| {
            for o in objs {
                sink.write(&bson::serialize_to_vec(o).expect("encodes"));
            }
            Count::plain(n, sink.take_written())
        }),
        contender(B_FW_SEND, |sink| {
            for o in objs {
                let doc = framewire::message::bson::to_vec(o).expect("encodes");
                fs.send(doc).expect("sendable");
                if fs.queued_len() >= CHUNK {
                    drain(&mut fs, sink);
                }
            }
            drain(&mut fs, sink);
            Count::plain(n, sink.take_written())
        }),
    ];
    let mut enc = plan.keep(enc);
    let best = race(
        plan,
        &format!("bson encode {label}"),
        written,
        Some(&docs.wire),
        &mut enc,
    );
    enc.iter()
        .zip(&best)
        .map(|(c, &secs)| (c.name, n as f64 / secs))
        .collect()
}

fn bson_section_for<T: Doc>(
    plan: &Plan,
    label: &'static str,
    report: &mut Report,
    text: &mut String,
) {
    let docs = Docs::<T>::new();
    let n = docs.objs.len();
    let size = docs.wire.len() / n;
    let dec_rates = bson_decoders(plan, label, &docs);
    let enc_rates = bson_encoders(plan, label, &docs);
    let _ = writeln!(text, "\n### {label} ({size} B documents, {n} per run)\n\n| contender | objects/s | MB/s |\n|---|---:|---:|");
    for (dir, rates) in [("decode", &dec_rates), ("encode", &enc_rates)] {
        for &(name, rate) in rates {
            let _ = writeln!(
                text,
                "| {dir}: {name} | {}obj/s | {:.0} |",
                fmt_count(rate),
                rate * size as f64 / 1e6
            );
            report.figure(
                "bson",
                label,
                &format!("{dir}: {name}"),
                size,
                "objects_per_s",
                rate,
            );
        }
    }
    let all: Vec<(&str, f64)> = dec_rates.iter().chain(&enc_rates).copied().collect();
    let r = |name: &str| all.iter().find(|(n, _)| *n == name).map(|r| r.1);
    for (what, num, den) in [
        (
            "decode, pre-cut: framewire from_slice / bson crate",
            B_FW_FROM,
            B_BSON_FROM,
        ),
        (
            "decode, framed: FramedStream + from_slice / tokio-util + bson crate",
            B_FW_FRAMED,
            B_TOKIO_FRAMED,
        ),
        (
            "encode, reused Vec: framewire encode_into / bson serialize_to_buffer",
            B_FW_INTO,
            B_BSON_INTO,
        ),
        (
            "encode, new Vec: framewire to_vec / bson serialize_to_vec",
            B_FW_VEC,
            B_BSON_VEC,
        ),
    ] {
        if let (Some(num), Some(den)) = (r(num), r(den)) {
            let _ = writeln!(text, "| ratio {what} | {:.2}x | |", num / den);
            report.figure(
                "bson",
                label,
                &format!("ratio {what}"),
                size,
                "ratio",
                num / den,
            );
        }
    }
}

fn bson_section(plan: &Plan, report: &mut Report) {
    // The small document must be WIRE.md's bytes.
    let seq0 = framewire::message::bson::to_vec(&Small::make(0)).expect("encodes");
    let hex = seq0.iter().fold(String::new(), |mut h, b| {
        let _ = write!(h, "{b:02x}");
        h
    });
    assert_eq!(hex, SMALL_SEQ0, "the small document is WIRE.md's");
    let mut text = String::from(
        "\n## BSON objects (framing + serde)\n\nobjects/s; MB/s of document bytes. `framewire::message::bson` as on main at run time.\n",
    );
    bson_section_for::<Small>(plan, "small", report, &mut text);
    bson_section_for::<Big>(plan, "big", report, &mut text);
    println!("{text}");
    report.text.push_str(&text);
}

// ---------------------------------------------------------------------------
// Section 4: packet connections in memory
// ---------------------------------------------------------------------------

/// Moves everything `from` has queued into `to` through a 64 KiB scratch
/// buffer, handing every event `to` reports to `on_event`.
fn carry(
    from: &mut Connection,
    to: &mut Connection,
    scratch: &mut [u8],
    mut on_event: impl FnMut(&mut Connection, PacketEvent),
) {
    common::carry_packets(from, to, scratch, |to| {
        while let Some(e) = to.poll_event() {
            on_event(to, e);
        }
    });
}

/// A client and an echo server, back to back.
struct PacketPair {
    client: Connection,
    server: Connection,
    scratch: Vec<u8>,
    payload: Bytes,
}

impl PacketPair {
    fn new() -> PacketPair {
        PacketPair {
            client: Connection::new(Config::default()).expect("config"),
            server: Connection::new(Config::default()).expect("config"),
            scratch: vec![0; CHUNK],
            payload: Bytes::from_static(b"0123456789abcdef"),
        }
    }

    /// Both ends parsing on poll (`Config::parse_on_poll`): the path
    /// framewire-tokio drives.
    fn lent() -> PacketPair {
        let lazy = Config {
            parse_on_poll: true,
            ..Config::default()
        };
        PacketPair {
            client: Connection::new(lazy).expect("config"),
            server: Connection::new(lazy).expect("config"),
            ..PacketPair::new()
        }
    }

    /// `window` requests submitted.
    fn submit(&mut self, window: usize) {
        let now = framewire::time::Instant::ZERO;
        for _ in 0..window {
            self.client
                .submit(0, 0, 0, self.payload.clone(), now, None)
                .expect("submit");
        }
    }

    /// `total` requests in windows of `window`: each window submitted, then
    /// carried both ways by `exchange`; every request is answered.
    fn windows(&mut self, total: usize, window: usize, mut exchange: impl FnMut(&mut PacketPair)) {
        let mut sent = 0;
        while sent < total {
            let batch = window.min(total - sent);
            self.submit(batch);
            sent += batch;
            exchange(self);
        }
        assert_eq!(self.client.pending_outbound(), 0, "every request answered");
    }

    /// As [`run`](Self::run), the server answering each request in place
    /// (`poll_lent_answering`) and the client taking each response lent
    /// (`poll_lent`): no `Bytes` and no queued event per packet.
    fn run_lent(&mut self, total: usize, window: usize) -> Count {
        let mut t = Count::default();
        self.windows(total, window, |p| {
            common::carry_packets(&mut p.client, &mut p.server, &mut p.scratch, |srv| {
                let unanswered = srv.poll_lent_answering(|rq, answer| {
                    answer.respond(rq.flags, rq.payload).expect("respond");
                });
                assert!(unanswered.is_none(), "every request answered in place");
            });
            common::carry_packets(&mut p.server, &mut p.client, &mut p.scratch, |cl| {
                while let Some(e) = cl.poll_lent() {
                    match e {
                        BorrowedEvent::ResponseReceived {
                            ok: true,
                            tag,
                            payload,
                            ..
                        } => t.response(tag, payload),
                        e => unreachable!("unexpected event {e:?}"),
                    }
                }
            });
        });
        t
    }

    /// `total` requests, `window` in flight at a time; returns the count of
    /// responses (frames) and their payload bytes; the signature sums the
    /// tags answered.
    fn run(&mut self, total: usize, window: usize) -> Count {
        let mut t = Count::default();
        self.windows(total, window, |p| {
            carry(
                &mut p.client,
                &mut p.server,
                &mut p.scratch,
                |srv, e| match e {
                    PacketEvent::RequestReceived {
                        channel,
                        tag,
                        flags,
                        payload,
                        ..
                    } => srv.respond(channel, tag, flags, payload).expect("respond"),
                    e => unreachable!("unexpected event {e:?}"),
                },
            );
            carry(
                &mut p.server,
                &mut p.client,
                &mut p.scratch,
                |_, e| match e {
                    PacketEvent::ResponseReceived {
                        ok: true,
                        tag,
                        payload,
                        ..
                    } => t.response(tag, &payload),
                    e => unreachable!("unexpected event {e:?}"),
                },
            );
        });
        t
    }
}

/// The anchor: tokio-util `LengthDelimitedCodec` on both ends, in memory:
/// the client encodes `window` 16-byte requests, the server decodes each and
/// encodes it back, the client decodes the answers.
struct TokioPair {
    client: LengthDelimitedCodec,
    server: LengthDelimitedCodec,
    to_server: BytesMut,
    server_in: BytesMut,
    to_client: BytesMut,
    client_in: BytesMut,
    payload: Bytes,
}

impl TokioPair {
    fn new() -> TokioPair {
        TokioPair {
            client: LengthDelimitedCodec::new(),
            server: LengthDelimitedCodec::new(),
            to_server: BytesMut::with_capacity(CHUNK),
            server_in: BytesMut::with_capacity(CHUNK),
            to_client: BytesMut::with_capacity(CHUNK),
            client_in: BytesMut::with_capacity(CHUNK),
            payload: Bytes::from_static(b"0123456789abcdef"),
        }
    }

    fn run(&mut self, total: usize, window: usize) -> Count {
        let mut t = Count::default();
        let mut sent = 0;
        while sent < total {
            let batch = window.min(total - sent);
            for _ in 0..batch {
                self.client
                    .encode(self.payload.clone(), &mut self.to_server)
                    .expect("encode");
            }
            sent += batch;
            self.server_in.extend_from_slice(&self.to_server);
            self.to_server.clear();
            while let Some(rq) = self.server.decode(&mut self.server_in).expect("valid") {
                self.server
                    .encode(rq.freeze(), &mut self.to_client)
                    .expect("encode");
            }
            self.client_in.extend_from_slice(&self.to_client);
            self.to_client.clear();
            while let Some(rs) = self.client.decode(&mut self.client_in).expect("valid") {
                t.frames += 1;
                t.bytes += rs.len() as u64;
            }
        }
        t
    }
}

fn packet_section(plan: &Plan, report: &mut Report) {
    const TOTAL: usize = 4096;
    let mut text = String::from(
        "\n## Packet connections in memory (no I/O)\n\n16-byte requests, echo responses, 4096 per run.\n\n| contender | requests/s |\n|---|---:|\n",
    );
    let mut w1 = PacketPair::new();
    let mut w128 = PacketPair::new();
    let mut lent = PacketPair::lent();
    let mut tok = TokioPair::new();
    // Tags on channel 0 start at 2 (0 and 1 are EOF and ERQ) and go on
    // across runs, so the signature is checked on frames only: each run
    // answers every request it made (asserted inside).
    let want = Count {
        frames: TOTAL as u64,
        bytes: 16 * TOTAL as u64,
        sig: 0,
    };
    let strip = |mut c: Count| {
        c.sig = 0;
        c
    };
    let list = vec![
        contender("framewire packet::Connection pair, 1 in flight", |_| {
            strip(w1.run(TOTAL, 1))
        }),
        contender("framewire packet::Connection pair, 128 in flight", |_| {
            strip(w128.run(TOTAL, 128))
        }),
        contender(
            "tokio-util LengthDelimitedCodec both ends, 128 in flight (anchor)",
            |_| tok.run(TOTAL, 128),
        ),
        contender(
            "framewire packet::Connection pair, parse on poll, answered in place, 128 in flight",
            |_| strip(lent.run_lent(TOTAL, 128)),
        ),
    ];
    let mut list = plan.keep(list);
    let best = race(plan, "packet pair", want, None, &mut list);
    let rates: Vec<(&str, f64)> = list
        .iter()
        .zip(&best)
        .map(|(c, &s)| (c.name, TOTAL as f64 / s))
        .collect();
    drop(list);
    for &(name, rate) in &rates {
        let _ = writeln!(text, "| {name} | {}rq/s |", fmt_count(rate));
        report.figure("packet", "pair", name, 16, "requests_per_s", rate);
    }
    if rates.len() == 4 {
        let _ = writeln!(
            text,
            "| ratio: Connection pair x128 / tokio-util anchor | {:.2}x |",
            rates[1].1 / rates[2].1
        );
        let _ = writeln!(
            text,
            "| ratio: Connection pair x128, parse on poll, answered in place / tokio-util anchor | {:.2}x |",
            rates[3].1 / rates[2].1
        );
    }
    println!("{text}");
    report.text.push_str(&text);
}

// ---------------------------------------------------------------------------
// Section 5: memory
// ---------------------------------------------------------------------------

/// The process's resident set, KiB.
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// VmRSS samples, one every [`SAMPLE_EVERY`] bytes of frames.
struct Samples {
    before: u64,
    kib: Vec<u64>,
    next: u64,
    seen: u64,
}

const SAMPLE_EVERY: u64 = 16 << 20;

impl Samples {
    fn new() -> Samples {
        Samples {
            before: vm_rss_kib(),
            kib: Vec::new(),
            next: SAMPLE_EVERY,
            seen: 0,
        }
    }

    #[inline]
    fn frame(&mut self, len: usize) {
        self.seen += len as u64;
        if self.seen >= self.next {
            self.next += SAMPLE_EVERY;
            self.kib.push(vm_rss_kib());
        }
    }

    fn first(&self) -> u64 {
        self.kib[0]
    }

    fn last(&self) -> u64 {
        *self.kib.last().expect("sampled")
    }

    fn max(&self) -> u64 {
        *self.kib.iter().max().expect("sampled")
    }
}

/// 64 frames of 64 KiB, `u32` BE length-prefixed (4 MiB), streamed until
/// `total` bytes of payload have gone through.
fn memory_input() -> Vec<u8> {
    build(Kind::Length, 64 * 1024).bytes
}

fn memory_framed_stream(input: &[u8], total: u64) -> Samples {
    let mut s = FramedStream::new(LengthPrefixed::new());
    let mut m = Samples::new();
    while m.seen < total {
        for chunk in input.chunks(CHUNK) {
            let mut off = 0;
            while off < chunk.len() {
                off += s.handle_input(&chunk[off..]).expect("valid input");
                while let Some(frame) = s.poll_frame().expect("valid input") {
                    black_box(&frame);
                    m.frame(frame.len());
                }
            }
        }
    }
    m
}

/// Streams `input` repeatedly through a `tokio::io::duplex` into a
/// `FramedRead` with `codec` on a current-thread runtime.
fn memory_duplex<D>(input: &[u8], total: u64, codec: D) -> Samples
where
    D: Decoder,
    D::Item: AsRef<[u8]>,
    D::Error: std::fmt::Debug,
{
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let input = Bytes::copy_from_slice(input);
    rt.block_on(async move {
        let (mut tx, rx) = tokio::io::duplex(CHUNK);
        let rounds = total.div_ceil(input.len() as u64);
        let writer = async move {
            for _ in 0..rounds {
                tx.write_all(&input).await.expect("write");
            }
            drop(tx);
        };
        let reader = async move {
            let mut frames = tokio_util::codec::FramedRead::new(rx, codec);
            let mut m = Samples::new();
            while let Some(frame) = frames.next().await {
                let frame = frame.expect("valid input");
                black_box(frame.as_ref());
                m.frame(frame.as_ref().len());
            }
            m
        };
        let ((), m) = tokio::join!(writer, reader);
        m
    })
}

/// A named memory run.
type MemoryRun<'a> = (&'static str, Box<dyn Fn() -> Samples + 'a>);

fn memory_section(plan: &Plan, report: &mut Report) {
    let input = memory_input();
    let total = plan.memory_bytes;
    let mut text = format!(
        "\n## Memory while streaming {} MiB of 64 KiB frames\n\nVmRSS of the whole process (KiB), sampled every 16 MiB of frames.\n\n| path | before | first | last | max | max - first | samples |\n|---|---:|---:|---:|---:|---:|---:|\n",
        total >> 20
    );
    let runs: [MemoryRun<'_>; 3] = [
        (
            "framewire FramedStream (handle_input, 64 KiB chunks)",
            Box::new(|| memory_framed_stream(&input, total)),
        ),
        (
            "framewire-tokio FrameCodec over tokio::io::duplex",
            Box::new(|| memory_duplex(&input, total, FrameCodec::new(LengthPrefixed::new()))),
        ),
        (
            "tokio-util LengthDelimitedCodec over tokio::io::duplex",
            Box::new(|| memory_duplex(&input, total, LengthDelimitedCodec::new())),
        ),
    ];
    for (name, run) in runs {
        let start = Instant::now();
        let m = run();
        let secs = start.elapsed().as_secs_f64();
        let growth = m.max() - m.first();
        let _ = writeln!(
            text,
            "| {name} ({:.2} GB/s) | {} | {} | {} | {} | {} | {} |",
            m.seen as f64 / secs / 1e9,
            m.before,
            m.first(),
            m.last(),
            m.max(),
            growth,
            m.kib.len()
        );
        for (metric, v) in [
            ("rss_before_kib", m.before),
            ("rss_first_kib", m.first()),
            ("rss_last_kib", m.last()),
            ("rss_max_kib", m.max()),
        ] {
            report.figure("memory", "length", name, 65536, metric, v as f64);
        }
        report.targets.push(Target {
            what: format!("memory flat: {name}: VmRSS max - first sample"),
            value: growth as f64,
            need: 1024.0,
            unit: " KiB",
            at_most: true,
        });
    }
    println!("{text}");
    report.text.push_str(&text);
}

// ---------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------

/// `<target dir>/codecs.csv`: the bench binary is `<target>/<profile>/deps/codecs-*`.
fn default_csv() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("codecs.csv"), |t| t.join("codecs.csv"))
}

const SECTIONS: [&str; 5] = ["decode", "encode", "bson", "packet", "memory"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let strict = args.iter().any(|a| a == "--strict");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let csv = value("--csv").map_or_else(default_csv, PathBuf::from);
    let only: Vec<String> = value("--only").map_or_else(
        || SECTIONS.iter().map(|s| (*s).to_string()).collect(),
        |s| s.split(',').map(str::to_string).collect(),
    );
    for s in &only {
        assert!(
            SECTIONS.contains(&s.as_str()),
            "unknown section {s:?} (one of {SECTIONS:?})"
        );
    }
    let mut plan = Plan::new(quick);
    plan.filter = value("--filter");
    if let Some(n) = value("--rounds") {
        plan.rounds = n.parse().expect("--rounds takes a count");
    }
    if let Some(ms) = value("--turn-ms") {
        plan.turn = Duration::from_millis(ms.parse().expect("--turn-ms takes milliseconds"));
    }
    if let Some(list) = value("--size") {
        plan.sizes = list
            .split(',')
            .map(|n| n.parse().expect("--size takes sizes in bytes"))
            .collect();
    }
    if let Some(list) = value("--framing") {
        plan.kinds = list
            .split(',')
            .map(|name| {
                *Kind::ALL
                    .iter()
                    .find(|k| k.name() == name)
                    .unwrap_or_else(|| panic!("unknown framing {name:?}"))
            })
            .collect();
    }
    let started = Instant::now();
    let wants = |s: &str| only.iter().any(|o| o == s);

    // Everything runs on one thread pinned to CPU 1 (the memory section's
    // Tokio runtime is current-thread, on the same thread).
    let (report, pinned) = thread::scope(|scope| {
        scope
            .spawn(|| {
                let pinned = pin(1) || pin(0);
                let mut report = Report::default();
                if wants("decode") {
                    decode_section(&plan, &mut report);
                }
                if wants("encode") {
                    encode_section(&plan, &mut report);
                }
                if wants("bson") {
                    bson_section(&plan, &mut report);
                }
                if wants("packet") {
                    packet_section(&plan, &mut report);
                }
                // Memory last: its 1 GiB runs leave the heap in a state that
                // changes where later buffers land (and with it the speed of
                // the copy-bound 64 KiB decoders by up to 30%); growth is
                // measured from its own first sample either way.
                if wants("memory") {
                    memory_section(&plan, &mut report);
                }
                (report, pinned)
            })
            .join()
            .expect("bench thread")
    });

    let misses = print_targets(&plan, &report, pinned, quick, started);
    if let Some(dir) = csv.parent() {
        std::fs::create_dir_all(dir).expect("CSV directory");
    }
    std::fs::write(&csv, report.csv()).expect("write CSV");
    println!("CSV: {}", csv.display());
    if strict && misses > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints the targets table; returns the number missed.
fn print_targets(
    plan: &Plan,
    report: &Report,
    pinned: bool,
    quick: bool,
    started: Instant,
) -> usize {
    let mut misses = 0;
    let mut t = format!(
        "\n## Targets\n\n{} CPUs available, bench thread {}pinned, {} rounds of {} ms per contender{}, {:.1} s in all.\n\n| target | value | need | result |\n|---|---:|---:|---|\n",
        thread::available_parallelism().map_or(1, std::num::NonZero::get),
        if pinned { "" } else { "not " },
        plan.rounds,
        plan.turn.as_millis(),
        if quick { " (--quick)" } else { "" },
        started.elapsed().as_secs_f64()
    );
    for target in &report.targets {
        if !target.pass() {
            misses += 1;
        }
        let _ = writeln!(
            t,
            "| {} | {}{} | {} {}{} | {} |",
            target.what,
            if target.unit == "x" {
                format!("{:.3}", target.value)
            } else {
                format!("{:.0}", target.value)
            },
            target.unit,
            if target.at_most { "<=" } else { ">=" },
            target.need,
            target.unit,
            if target.pass() { "PASS" } else { "MISS" }
        );
    }
    let _ = writeln!(
        t,
        "\n{} of {} targets met",
        report.targets.len() - misses,
        report.targets.len()
    );
    println!("{t}");
    misses
}
