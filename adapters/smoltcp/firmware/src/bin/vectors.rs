//! Runs the core's decoders on the target's instruction set (Cortex-M4F,
//! under `qemu-system-arm -machine mps2-an386`): the golden vectors of
//! shared/WIRE.md (socktools' length-prefixed frames, cs.packetstream
//! packets) fed in many chunkings, a few malformed inputs, and an echo of
//! length-prefixed frames over smoltcp TCP on a loopback device. Prints
//! through semihosting and exits with status 0 only if every check passed.

#![no_std]
#![no_main]

use core::mem::size_of;
use cortex_m::singleton;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use framewire::framing::{FrameError, Framing, LengthPrefixed};

use framewire::packet::wire::{Packet, PacketError, ParseLimits, EOF, ERQ};
use framewire::packet::BorrowedConnection;
use framewire::stream::{BorrowedFramedStream, ProtocolError, StreamError};
use framewire::varint::VarintError;
use framewire_firmware::echo::{self, EchoBuffers};
use framewire_firmware::Loopback;
use framewire_smoltcp::FramedSocket;
use smoltcp::iface::SocketStorage;

/// WIRE.md §3: socktools `[1, {"text": "hi", "n": [1, 2.5, null]}]`.
const SOCKTOOLS: &str =
    "00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d";
/// WIRE.md §3: `["chat", "hé"]`.
const SOCKTOOLS_CHAT: &str = "00000013 5b2263686174222c2022685c7530306539225d";

/// WIRE.md §2, the table of `bytes(Packet(...)).hex()`, in order, then two
/// packets with big fields checked against the real Python (core's wire.rs
/// tests). The tag-300 packet (200-byte payload) is built in `packet_stream`.
const PACKETS: [&str; 10] = [
    "08 02 02 01 68656c6c6f",
    "06 03 0e 02 616263",
    "05 02 03 05 01 78",
    "07 02 04 68656c6c6f",
    "07 02 3c 666c616773",
    "04 0c 83 7c 66",
    "1a 05 00 657863657074696f6e20647572696e672068616e646c6572",
    "03000200",
    "03010200",
    "0aa0808080800029076e6f",
];
/// Frames sent through the smoltcp echo.
const ECHO_FRAMES: u32 = 1000;
/// Requests sent through the smoltcp packet connection.
const ECHO_REQUESTS: u32 = 1000;

const BIG_REQUEST: &str = "140082808003a08080800081808080808080808000";

/// How an input is cut into chunks.
#[derive(Clone, Copy)]
enum Split {
    /// Chunks of this many bytes.
    Every(usize),
    /// Chunks of 1..=`max` bytes from a linear congruential generator.
    Random { seed: u32, max: usize },
}

const SPLITS: [Split; 12] = [
    Split::Every(1),
    Split::Every(2),
    Split::Every(3),
    Split::Every(4),
    Split::Every(7),
    Split::Every(16),
    Split::Every(64),
    Split::Every(usize::MAX),
    Split::Random { seed: 1, max: 5 },
    Split::Random { seed: 2, max: 13 },
    Split::Random { seed: 3, max: 40 },
    Split::Random { seed: 4, max: 300 },
];

/// Calls `f` on consecutive chunks of `input` cut by `split`.
fn for_chunks(input: &[u8], split: Split, mut f: impl FnMut(&[u8])) {
    let mut state = match split {
        Split::Every(_) => 0,
        Split::Random { seed, .. } => seed,
    };
    let mut rest = input;
    while !rest.is_empty() {
        let n = match split {
            Split::Every(n) => n,
            Split::Random { max, .. } => {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                1 + (state >> 16) as usize % max
            }
        };
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        f(chunk);
        rest = tail;
    }
}

/// Decodes hex digits (spaces ignored) into `out`; returns the length.
fn unhex(hex: &str, out: &mut [u8]) -> usize {
    let mut n = 0;
    let mut high = None;
    for c in hex.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("bad hex digit {c}"),
        };
        match high.take() {
            None => high = Some(v),
            Some(h) => {
                out[n] = (h << 4) | v;
                n += 1;
            }
        }
    }
    assert!(high.is_none(), "odd number of hex digits");
    n
}

/// Appends hex-decoded `hex` to `buf[*len..]`.
fn push_hex(buf: &mut [u8], len: &mut usize, hex: &str) {
    *len += unhex(hex, &mut buf[*len..]);
}

/// The word painted over the free stack before a run.
const PAINT: u32 = 0x5a5a_a5a5;

extern "C" {
    /// The end of `.bss`/`.uninit` (cortex-m-rt's linker script): the stack
    /// may grow down to here.
    static _stack_end: u32;
}

/// Paints the free stack (below the current stack pointer, minus a margin
/// for this function's own frame) with [`PAINT`].
fn paint_stack() {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let top = cortex_m::register::msp::read() as usize - 256;
    let mut at = bottom;
    while at < top {
        // SAFETY: [bottom, top) is RAM that nothing uses: below the live
        // stack, above every static.
        unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
}

/// The bytes of stack used since [`paint_stack`], from `top` down to the
/// lowest word that is no longer painted.
fn stack_used(top: usize) -> usize {
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let mut at = bottom;
    // SAFETY: reads RAM between the statics and the live stack.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    top - at
}

/// The four connections' run, in a frame of its own: everything it keeps on
/// the stack (the drivers, the interface, the socket set) is below the paint
/// mark.
#[inline(never)]
fn run_echo(
    device: &mut Loopback<4, 1500>,
    bufs: EchoBuffers<'_>,
) -> Result<echo::EchoOutcome, echo::RunError> {
    echo::run(device, bufs, ECHO_FRAMES, ECHO_REQUESTS, 60_000)
}

/// Counts checks and failures; prints each failure.
struct Report {
    checks: u32,
    failures: u32,
}

impl Report {
    fn check(&mut self, ok: bool, what: core::fmt::Arguments<'_>) {
        self.checks += 1;
        if !ok {
            self.failures += 1;
            hprintln!("FAIL: {}", what);
        }
    }
}

/// socktools' frames (u32 big-endian length prefix) through
/// `BorrowedFramedStream<LengthPrefixed>` in every chunking.
fn length_prefixed(r: &mut Report) {
    let mut input = [0u8; 128];
    let mut len = 0;
    push_hex(&mut input, &mut len, SOCKTOOLS);
    let first_end = len;
    push_hex(&mut input, &mut len, SOCKTOOLS_CHAT);
    let second_end = len;
    push_hex(&mut input, &mut len, "0000"); // the start of a third header
    let input = &input[..len];
    let expected: [&[u8]; 2] = [
        br#"[1, {"text": "hi", "n": [1, 2.5, null]}]"#,
        br#"["chat", "h\u00e9"]"#,
    ];

    for (i, split) in SPLITS.iter().enumerate() {
        // 48 bytes: the 44-byte frame fits, the stream compacts around it.
        let (mut rx, mut tx) = ([0u8; 48], [0u8; 8]);
        let mut s = BorrowedFramedStream::new(LengthPrefixed::new(), &mut rx, &mut tx);
        let mut got = 0usize;
        let mut error = None;
        for_chunks(input, *split, |chunk| {
            let mut rest = chunk;
            while !rest.is_empty() && error.is_none() {
                match s.handle_input(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) => error = Some(e),
                }
                loop {
                    match s.poll_frame() {
                        Ok(Some(frame)) => {
                            let ok = expected.get(got) == Some(&frame);
                            r.check(ok, format_args!("length-prefixed split {i}: frame {got}"));
                            got += 1;
                        }
                        Ok(None) => break,
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    }
                }
            }
        });
        r.check(
            error.is_none() && got == 2 && s.buffered_len() == 2,
            format_args!("length-prefixed split {i}: {got} frames, error {error:?}"),
        );
        // The peer closes two bytes into the third header.
        let eof = s.handle_eof().and_then(|()| s.poll_event().map(|_| ()));
        let truncated = StreamError::Protocol(ProtocolError::Truncated {
            have: 2,
            need: Some(4),
        });
        r.check(
            eof == Err(truncated),
            format_args!("length-prefixed split {i}: truncated close gave {eof:?}"),
        );
    }

    // Encoding gives the same bytes back.
    let f = LengthPrefixed::new();
    for (payload, frame) in expected
        .iter()
        .zip([&input[..first_end], &input[first_end..second_end]])
    {
        let mut out = [0u8; 64];
        let n = f.encode(payload, &mut out);
        r.check(
            n.map(|n| &out[..n]) == Ok(frame),
            format_args!("length-prefixed encode of {} bytes", payload.len()),
        );
    }

    // A huge length fails after its four bytes, whatever follows.
    let (mut rx, mut tx) = ([0u8; 48], [0u8; 8]);
    let mut s = BorrowedFramedStream::new(LengthPrefixed::new(), &mut rx, &mut tx);
    let taken = s.handle_input(&[0xff, 0xff, 0xff, 0xff]);
    let event = s.poll_event().map(|_| ());
    let too_long = StreamError::Protocol(ProtocolError::Frame(FrameError::FrameTooLong {
        len: 0xffff_ffff + 4,
        max: LengthPrefixed::DEFAULT_MAX_FRAME_LEN,
    }));
    r.check(
        taken == Ok(4) && event == Err(too_long),
        format_args!("ff ff ff ff: {taken:?} then {event:?}"),
    );
}

/// The packets of WIRE.md §2 as one stream: its bytes and the packets.
struct PacketStream {
    bytes: [u8; 512],
    len: usize,
    payload200: [u8; 200],
}

impl PacketStream {
    fn new() -> Self {
        let mut s = PacketStream {
            bytes: [0; 512],
            len: 0,
            payload200: [0; 200],
        };
        for (i, b) in s.payload200.iter_mut().enumerate() {
            *b = i as u8;
        }
        for (i, hex) in PACKETS.iter().enumerate() {
            push_hex(&mut s.bytes, &mut s.len, hex);
            if i == 6 {
                // "response tag 300, 200-byte payload": 81 4b 82 2c 04 00..c7.
                push_hex(&mut s.bytes, &mut s.len, "81 4b 82 2c 04");
                s.bytes[s.len..s.len + 200].copy_from_slice(&s.payload200);
                s.len += 200;
            }
        }
        push_hex(&mut s.bytes, &mut s.len, BIG_REQUEST);
        s
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// The packets in the stream, built from their fields as WIRE.md
    /// describes them.
    fn expected(&self) -> [Packet<'_>; 12] {
        [
            Packet::request(0, 2, 0, 0, b"hello").unwrap(),
            Packet::request(0, 3, 1, 3, b"abc").unwrap(),
            Packet::request(5, 2, 0, 0, b"x").unwrap(),
            Packet::response(0, 2, true, 0, b"hello").unwrap(),
            Packet::response(0, 2, true, 7, b"flags").unwrap(),
            Packet::response(0, 12, true, 63, b"f").unwrap(),
            Packet::failure(0, 5, "exception during handler"),
            Packet::response(0, 300, true, 0, &self.payload200).unwrap(),
            EOF,
            ERQ,
            Packet::response(7, 1 << 40, false, 5, b"no").unwrap(),
            Packet::request(1 << 33, 0, (1 << 63) - 1, 1 << 20, b"").unwrap(),
        ]
    }
}

/// The packet vectors: encoding each expected packet gives the golden bytes;
/// `Packet::parse` on a growing buffer and the varint length-prefixed
/// framed stream both decode the stream in every chunking.
fn packet_stream(r: &mut Report) {
    let ps = PacketStream::new();
    let input = ps.bytes();
    let expected = ps.expected();
    let limits = ParseLimits::default();

    // Encoding: the expected packets, back to back, are the golden stream.
    let mut out = [0u8; 512];
    let mut at = 0;
    for p in &expected {
        match p.encode(&mut out[at..]) {
            Ok(n) => at += n,
            Err(e) => r.check(false, format_args!("encode {p:?}: {e:?}")),
        }
    }
    r.check(
        &out[..at] == input,
        format_args!("packet encode: {at} bytes vs {} golden", input.len()),
    );

    for (i, split) in SPLITS.iter().enumerate() {
        // Packet::parse over a growing buffer.
        let mut acc = [0u8; 512];
        let (mut have, mut got) = (0usize, 0usize);
        let mut error = None;
        for_chunks(input, *split, |chunk| {
            acc[have..have + chunk.len()].copy_from_slice(chunk);
            have += chunk.len();
            while error.is_none() {
                match Packet::parse(&acc[..have], &limits) {
                    Ok(Some((p, n))) => {
                        let ok = expected.get(got) == Some(&p);
                        r.check(ok, format_args!("parse split {i}: packet {got} = {p:?}"));
                        got += 1;
                        acc.copy_within(n..have, 0);
                        have -= n;
                    }
                    Ok(None) => break,
                    Err(e) => error = Some(e),
                }
            }
        });
        r.check(
            error.is_none() && got == expected.len() && have == 0,
            format_args!("parse split {i}: {got} packets, {have} left, error {error:?}"),
        );

        // The same stream as BSUInt-length-prefixed frames: each frame is a
        // packet body. 208 bytes: the 205-byte packet fits.
        let (mut rx, mut tx) = ([0u8; 208], [0u8; 8]);
        let mut s = BorrowedFramedStream::new(LengthPrefixed::varint(), &mut rx, &mut tx);
        let mut got = 0usize;
        let mut error = None;
        for_chunks(input, *split, |chunk| {
            let mut rest = chunk;
            while !rest.is_empty() && error.is_none() {
                match s.handle_input(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) => error = Some(e),
                }
                while let Ok(Some(body)) = s.poll_frame() {
                    let mut whole = [0u8; 256];
                    let ok = expected.get(got).is_some_and(|p| {
                        let n = p.encode(&mut whole).unwrap_or(0);
                        n == p.encoded_len() && &whole[n - body.len()..n] == body
                    });
                    r.check(ok, format_args!("varint frames split {i}: body {got}"));
                    got += 1;
                }
            }
        });
        let closed = s.handle_eof().and_then(|()| s.poll_event().map(|_| ()));
        r.check(
            error.is_none() && got == expected.len() && closed.is_ok(),
            format_args!(
                "varint frames split {i}: {got} bodies, error {error:?}, close {closed:?}"
            ),
        );
    }

    // Malformed input is a typed error, not a panic.
    let too_many = Packet::parse(&[0x80; 12], &limits);
    r.check(
        too_many
            == Err(PacketError::Varint {
                field: framewire::packet::wire::Field::Length,
                error: VarintError::TooManyOctets { max: 10 },
            }),
        format_args!("12 x 0x80: {too_many:?}"),
    );
    // Non-canonical fields are accepted like the original: `80 05` = 5.
    let lenient = Packet::parse(&[0x05, 0x80, 0x05, 0x80, 0x04, 0x61], &limits);
    r.check(
        lenient == Ok(Some((Packet::response(0, 5, true, 0, b"a").unwrap(), 6))),
        format_args!("non-canonical: {lenient:?}"),
    );
}

#[entry]
fn main() -> ! {
    let mut r = Report {
        checks: 0,
        failures: 0,
    };
    length_prefixed(&mut r);
    hprintln!("length-prefixed vectors: {} checks", r.checks);
    let before = r.checks;
    packet_stream(&mut r);
    hprintln!("packet-stream vectors: {} checks", r.checks - before);

    // Length-prefixed frames echoed over smoltcp TCP on a loopback device.
    macro_rules! buf {
        ($n:expr) => {
            &mut singleton!(: [u8; $n] = [0; $n]).unwrap()[..]
        };
    }
    let device = singleton!(: Loopback<4, 1500> = Loopback::new()).unwrap();
    let sockets = singleton!(: [SocketStorage<'static>; 4] = Default::default()).unwrap();
    let bufs = EchoBuffers {
        sockets,
        socket_buffers: [
            [buf!(1024), buf!(1024)],
            [buf!(1024), buf!(1024)],
            [buf!(1024), buf!(1024)],
            [buf!(1024), buf!(1024)],
        ],
        frame_buffers: [
            [buf!(256), buf!(256)],
            [buf!(256), buf!(256)],
            [buf!(256), buf!(256)],
            [buf!(256), buf!(256)],
        ],
    };
    let top = cortex_m::register::msp::read() as usize;
    paint_stack();
    let outcome = run_echo(device, bufs);
    let stack = stack_used(top);
    r.check(
        outcome.is_ok_and(|o| o.frames == ECHO_FRAMES && o.requests == ECHO_REQUESTS),
        format_args!("framewire-smoltcp over loopback TCP: {outcome:?}"),
    );
    if let Ok(o) = outcome {
        hprintln!(
            "framewire-smoltcp over loopback TCP: {} frames echoed, {} requests answered, \
             both connections closed in order, {} simulated ms",
            o.frames,
            o.requests,
            o.millis
        );
    }
    hprintln!(
        "RAM of that run: {} B of statics (.bss: socket and framewire buffers, device), \
         {} B of stack at most (measured by painting)",
        core::ptr::addr_of!(_stack_end) as usize - 0x2000_0000,
        stack
    );

    hprintln!(
        "size_of on thumbv7em (bytes): FramedSocket<LengthPrefixed> {}, \
         BorrowedFramedStream<LengthPrefixed> {}, PacketSocket<4, 4> {}, \
         BorrowedConnection<4, 4> {}, tcp::Socket {}, SocketStorage {}, Interface {}",
        size_of::<FramedSocket<'_, LengthPrefixed>>(),
        size_of::<BorrowedFramedStream<'_, LengthPrefixed>>(),
        size_of::<echo::Conn<'_>>(),
        size_of::<BorrowedConnection<'_, { echo::MAX_PENDING }, { echo::MAX_INFLIGHT }>>(),
        size_of::<smoltcp::socket::tcp::Socket<'_>>(),
        size_of::<SocketStorage<'_>>(),
        size_of::<smoltcp::iface::Interface>(),
    );

    if r.failures == 0 {
        hprintln!("vectors: all {} checks passed", r.checks);
        debug::exit(debug::EXIT_SUCCESS);
    } else {
        hprintln!("vectors: {} of {} checks FAILED", r.failures, r.checks);
        debug::exit(debug::EXIT_FAILURE);
    }
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("PANIC: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
