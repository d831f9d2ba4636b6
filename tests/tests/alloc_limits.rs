//! Hostile length headers allocate nothing beyond the limits.
//!
//! A counting global allocator (`cap`, a safe wrapper: no `unsafe` here)
//! records every byte allocated in this test binary. Each scenario hands a
//! decoder a length header announcing far more than its limit — up to
//! 2^64 − 1 with a varint, 2^31 − 1 with BSON — followed by plenty of bytes,
//! and checks both the typed error (with the numbers) and the bytes allocated
//! while decoding: the *total* allocated (not only the peak) must stay under
//! a small bound, far below the announced length and below the limit.
//!
//! The allocator counts every thread, so the scenarios hold one lock and the
//! input is built before counting starts.

use std::alloc::System;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::BytesMut;
use framewire::framing::{BsonDocument, FrameError, LengthPrefixed};
use framewire::packet::wire::PacketError;
use framewire::packet::{Config, Connection, Event, InputError, ProtocolError};
use framewire::stream::{FramedStream, ProtocolError as StreamProtocolError, StreamError};
use framewire_std::{Error as StdError, Framed};
use framewire_tokio::codec::{CodecError, FrameCodec};
use tokio_util::codec::Decoder;

#[global_allocator]
static ALLOC: cap::Cap<System> = cap::Cap::new(System, usize::MAX);

/// Serialises the scenarios (the counters are process-wide).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes allocated (in total, freed or not) while `f` runs, and its result.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = ALLOC.total_allocated();
    let out = f();
    (ALLOC.total_allocated() - before, out)
}

/// The varint (BSUInt) of `u64::MAX`: ten octets.
const VARINT_U64_MAX: [u8; 10] = [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];

/// A BSON int32 length of 2^31 − 1, little-endian.
const BSON_I32_MAX: [u8; 4] = [0xff, 0xff, 0xff, 0x7f];

/// A bound far below every limit in play (the smallest is 8 MiB): what a
/// decoder may allocate for bookkeeping and its first buffer.
const SMALL: usize = 256 * 1024;

/// The hostile header followed by 4 MiB of filler the decoder must not keep.
fn hostile(header: &[u8]) -> Vec<u8> {
    let mut v = header.to_vec();
    v.resize(header.len() + 4 * 1024 * 1024, 0x41);
    v
}

/// Feeds `input` to a framed stream in `chunk`-byte pieces (a socket read's
/// worth), polling after each, until the stream fails; returns the bytes
/// allocated meanwhile and the error.
fn feed_stream<F: framewire::framing::Framing>(
    stream: &mut FramedStream<F>,
    input: &[u8],
    chunk: usize,
) -> (usize, StreamError) {
    allocated_by(|| {
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(input.len());
            match stream.handle_input(&input[offset..end]) {
                Ok(n) => offset += n,
                Err(e) => break e,
            }
            if let Err(e) = stream.poll_event() {
                break e;
            }
            assert!(offset < input.len(), "the whole input was accepted");
        }
    })
}

/// The hostile headers of one framing: the error expected for each.
fn varint_cases() -> Vec<(Vec<u8>, FrameError)> {
    let (near_max, n) = framewire::varint::encode_array(u64::MAX - 10);
    vec![
        // 10 + u64::MAX overflows the frame size: an invalid length.
        (
            VARINT_U64_MAX.to_vec(),
            FrameError::InvalidLength {
                raw: u64::MAX,
                adjustment: 0,
            },
        ),
        (
            near_max[..n].to_vec(),
            FrameError::FrameTooLong {
                len: u64::MAX,
                max: 8 << 20,
            },
        ),
        // 2^31 - 1 after a 5-octet varint.
        (
            framewire::varint::encode_array(0x7fff_ffff).0[..5].to_vec(),
            FrameError::FrameTooLong {
                len: 0x7fff_ffff + 5,
                max: 8 << 20,
            },
        ),
    ]
}

#[test]
fn framed_stream_varint_lengths_up_to_u64_max() {
    let _g = serial();
    for (header, expected) in varint_cases() {
        let input = hostile(&header);
        // Socket-sized reads: only the first buffer is ever allocated.
        let mut stream = FramedStream::new(LengthPrefixed::varint());
        let (bytes, err) = feed_stream(&mut stream, &input, 64 * 1024);
        assert_eq!(
            err.protocol(),
            Some(StreamProtocolError::Frame(expected)),
            "{err:?}"
        );
        assert!(bytes < SMALL, "{header:x?}: allocated {bytes} bytes");
        // All 4 MiB offered at once: copied (under the 8 MiB limit), no more.
        let mut stream = FramedStream::new(LengthPrefixed::varint());
        let (bytes, err) = feed_stream(&mut stream, &input, usize::MAX);
        assert_eq!(
            err.protocol(),
            Some(StreamProtocolError::Frame(expected)),
            "{err:?}"
        );
        assert!(
            bytes <= stream.max_buffered(),
            "{header:x?}: allocated {bytes} bytes"
        );
    }
}

#[test]
fn framed_stream_bson_length_of_i32_max() {
    let _g = serial();
    let input = hostile(&BSON_I32_MAX);
    let expected = Some(StreamProtocolError::Frame(FrameError::FrameTooLong {
        len: 0x7fff_ffff,
        max: 16 << 20,
    }));
    let mut stream = FramedStream::new(BsonDocument::new());
    let (bytes, err) = feed_stream(&mut stream, &input, 64 * 1024);
    assert_eq!(err.protocol(), expected, "{err:?}");
    assert!(bytes < SMALL, "allocated {bytes} bytes");
    let mut stream = FramedStream::new(BsonDocument::new());
    let (bytes, err) = feed_stream(&mut stream, &input, usize::MAX);
    assert_eq!(err.protocol(), expected, "{err:?}");
    assert!(bytes <= stream.max_buffered(), "allocated {bytes} bytes");
}

/// An announced length inside the limit but never completed: the buffer
/// grows with what arrives, never to the announced size up front, and never
/// past the limit.
#[test]
fn framed_stream_in_limit_length_grows_with_arrivals_only() {
    let _g = serial();
    let limit = 8 * 1024 * 1024;
    // u32 BE header announcing limit - 4 payload bytes; 100 KiB arrive.
    let mut input = u32::try_from(limit - 4).unwrap().to_be_bytes().to_vec();
    input.resize(4 + 100 * 1024, 0x41);
    let mut stream = FramedStream::new(LengthPrefixed::new());
    let (bytes, ()) = allocated_by(|| {
        let mut offset = 0;
        while offset < input.len() {
            let n = stream.handle_input(&input[offset..]).unwrap();
            offset += n;
            assert!(stream.poll_event().unwrap().is_none());
        }
    });
    assert_eq!(stream.buffered_len(), input.len());
    assert!(bytes < 4 * 100 * 1024 + SMALL, "allocated {bytes} bytes");
    assert!(bytes < limit);
}

#[test]
fn packet_connection_length_of_u64_max() {
    let _g = serial();
    let input = hostile(&VARINT_U64_MAX);
    let mut conn = Connection::new(Config::default()).unwrap();
    let (bytes, err) = allocated_by(|| {
        let mut offset = 0;
        loop {
            let end = (offset + 64 * 1024).min(input.len());
            match conn.handle_input(&input[offset..end]) {
                Ok(0) => break None,
                Ok(n) => offset += n,
                Err(e) => break Some(e),
            }
            while conn.poll_event().is_some() {}
        }
    });
    // The error is reported as an event; further input is refused with it.
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    let expected = ProtocolError::Packet(PacketError::TooLong {
        len: u64::MAX,
        max: 16 << 20,
    });
    assert!(
        events.contains(&Event::ProtocolError(expected))
            || err == Some(InputError::Failed(expected)),
        "{err:?} {events:?}"
    );
    assert_eq!(conn.handle_input(b"x"), Err(InputError::Failed(expected)));
    assert!(bytes < SMALL, "allocated {bytes} bytes");
}

#[test]
fn tokio_codec_varint_lengths_up_to_u64_max() {
    let _g = serial();
    for (header, expected) in varint_cases() {
        let mut src = BytesMut::from(&hostile(&header)[..]);
        let mut codec = FrameCodec::varint();
        let (bytes, result) = allocated_by(|| codec.decode(&mut src));
        match result {
            Err(CodecError::Frame(e)) => assert_eq!(e, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        assert!(bytes < SMALL, "{header:x?}: allocated {bytes} bytes");
    }
}

#[test]
fn tokio_codec_bson_length_of_i32_max() {
    let _g = serial();
    let mut src = BytesMut::from(&hostile(&BSON_I32_MAX)[..]);
    let mut codec = FrameCodec::bson_document();
    let (bytes, result) = allocated_by(|| codec.decode(&mut src));
    match result {
        Err(CodecError::Frame(FrameError::FrameTooLong { len, max })) => {
            assert_eq!((len, max), (0x7fff_ffff, 16 << 20));
        }
        other => panic!("expected FrameTooLong, got {other:?}"),
    }
    assert!(bytes < SMALL, "allocated {bytes} bytes");
}

/// In the limit but incomplete: the codec reserves at most
/// [`MIN_RESERVE`](framewire_tokio::codec::MIN_RESERVE) beyond what arrived.
#[test]
fn tokio_codec_in_limit_length_reserves_little() {
    let _g = serial();
    let mut src = BytesMut::with_capacity(64);
    src.extend_from_slice(&(8u32 * 1024 * 1024 - 4).to_be_bytes());
    src.extend_from_slice(b"abc");
    let mut codec = FrameCodec::length_prefixed();
    let (bytes, result) = allocated_by(|| codec.decode(&mut src));
    assert!(matches!(result, Ok(None)), "{result:?}");
    assert!(
        bytes <= framewire_tokio::codec::MIN_RESERVE + 4096,
        "allocated {bytes} bytes"
    );
}

/// The std adapter over a socket: the hostile header and 4 MiB of filler go
/// through a real `read` loop; the receive side allocates little and
/// reports the typed error.
#[test]
fn std_framed_varint_and_bson_over_a_socket() {
    let _g = serial();
    let mut cases: Vec<_> = varint_cases()
        .into_iter()
        .map(|(h, e)| (h, e, false))
        .collect();
    cases.push((
        BSON_I32_MAX.to_vec(),
        FrameError::FrameTooLong {
            len: 0x7fff_ffff,
            max: 16 << 20,
        },
        true,
    ));
    for (header, expected, bson) in cases {
        let (mut a, b) = UnixStream::pair().unwrap();
        let input = hostile(&header);
        // The writer may block on the full socket once the reader stops:
        // write from a thread and ignore its broken pipe.
        let writer = std::thread::spawn(move || {
            let _ = a.write_all(&input);
        });
        let (bytes, err) = if bson {
            let mut framed = Framed::new(b, BsonDocument::new());
            allocated_by(move || framed.recv().unwrap_err())
        } else {
            let mut framed = Framed::new(b, LengthPrefixed::varint());
            allocated_by(move || framed.recv().unwrap_err())
        };
        match err {
            StdError::Protocol(StreamProtocolError::Frame(e)) => assert_eq!(e, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
        writer.join().unwrap();
        // Counted: the reader's buffer, and the writer thread's own small
        // allocations.
        assert!(bytes < SMALL, "{header:x?}: allocated {bytes} bytes");
    }
}

/// A stream error is terminal and says so on the next call.
#[test]
fn stream_error_is_terminal() {
    let _g = serial();
    let mut stream = FramedStream::new(BsonDocument::new());
    let err = stream.handle_input(&BSON_I32_MAX).and_then(|_| {
        stream.poll_event()?;
        Ok(0)
    });
    assert!(matches!(err, Err(StreamError::Protocol(_))), "{err:?}");
    assert!(stream.is_terminal());
    assert!(stream.handle_input(b"\x05\0\0\0\0").is_err());
}

#[test]
fn the_hostile_varint_is_u64_max() {
    let (bytes, n) = framewire::varint::encode_array(u64::MAX);
    assert_eq!(bytes[..n], VARINT_U64_MAX);
}

/// The counter sees allocations (so the bounds above can fail).
#[test]
fn the_counter_counts() {
    let _g = serial();
    let (bytes, v) = allocated_by(|| Vec::<u8>::with_capacity(1 << 20));
    assert!(bytes >= 1 << 20, "counted {bytes}");
    drop(v);
}

/// A server answering the original's requests (tags counting up from 2 on
/// channel 0, so 0 and 1 are never used) holds no more memory after 1,000
/// of them than after 50: its memory of used tags is a run, not an entry
/// per tag up to `Config::max_remembered_tags` (it was about 20 bytes per
/// request, some 20 KB per connection, before the first tag was forgotten).
#[test]
fn tag_memory_of_a_counting_peer_stays_flat() {
    let _g = serial();
    let now = framewire::time::Instant::ZERO;
    let mut client = Connection::new(Config::default()).unwrap();
    let mut server = Connection::new(Config::default()).unwrap();
    let mut wire = vec![0u8; 64 * 1024];
    let mut round = |client: &mut Connection, server: &mut Connection| {
        for _ in 0..10 {
            client.submit(0, 0, 0, &b"ping"[..], now, None).unwrap();
        }
        let n = client.fill_transmit(&mut wire);
        assert_eq!(server.handle_input(&wire[..n]), Ok(n));
        while let Some(e) = server.poll_event() {
            let Event::RequestReceived { tag, .. } = e else {
                panic!("{e:?}")
            };
            server.respond(0, tag, 0, &b"pong"[..]).unwrap();
        }
        let n = server.fill_transmit(&mut wire);
        assert_eq!(client.handle_input(&wire[..n]), Ok(n));
        while client.poll_event().is_some() {}
    };
    for _ in 0..5 {
        round(&mut client, &mut server);
    }
    let held = ALLOC.allocated();
    for _ in 0..95 {
        round(&mut client, &mut server);
    }
    assert_eq!(server.remembered_tags(), 1000, "every tag is remembered");
    let grown = ALLOC.allocated().saturating_sub(held);
    assert!(grown < 1024, "grew {grown} bytes over 950 requests");
}
