//! The tokio-util codecs over real transports: every framing over loopback
//! TCP and over a one-byte duplex pipe, limits, truncation, the skip policy,
//! split invariance, and the golden bytes of WIRE.md.

use std::fmt::Debug;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use framewire::framing::{
    BsonDocument, Delimited, FrameError, Framing, JsonHeader, LengthField, LengthPrefixed,
    Oversize, OversizePolicy,
};
use framewire::message::json_header::encode_message_vec;
use framewire_tokio::codec::{CodecError, FrameCodec, FrameWriter};
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead};

/// Every network test ends within this.
const DEADLINE: Duration = Duration::from_secs(30);

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(s.len().is_multiple_of(2), "odd hex string");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// A BSON-framed payload: int32 LE length counting itself, body, 0x00.
fn bson_doc(body: &[u8]) -> Bytes {
    let len = 4 + body.len() + 1;
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(len as i32).to_le_bytes());
    v.extend_from_slice(body);
    v.push(0);
    Bytes::from(v)
}

fn json_msg(content: &[u8]) -> Bytes {
    Bytes::from(encode_message_vec("binary/x", "binary", "little", content).expect("encodes"))
}

/// Each framing with payloads it can carry (empty and large ones included).
/// A named framing and payloads it can carry.
type Case = (&'static str, FrameCodec<Box<dyn FramingBox>>, Vec<Bytes>);

fn cases() -> Vec<Case> {
    let big = Bytes::from((0..200_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let text = |s: &str| Bytes::copy_from_slice(s.as_bytes());
    vec![
        (
            "u32 length",
            boxed(LengthPrefixed::new()),
            vec![text("hello"), Bytes::new(), big.clone(), text("x")],
        ),
        (
            "varint length",
            boxed(LengthPrefixed::varint()),
            vec![
                text("a"),
                Bytes::from(vec![9u8; 300]),
                big.clone(),
                Bytes::new(),
            ],
        ),
        (
            "u16 LE counting itself",
            boxed(
                LengthPrefixed::new()
                    .with_length_field(LengthField::U16_LE)
                    .with_includes_header(true),
            ),
            vec![text("hi"), Bytes::from(vec![1u8; 60_000]), Bytes::new()],
        ),
        (
            "bson document",
            boxed(BsonDocument::new()),
            vec![
                bson_doc(b""),
                bson_doc(b"\x02hello\0\x06\0\0\0world\0"),
                bson_doc(&big),
            ],
        ),
        (
            "lines",
            boxed(Delimited::new()),
            vec![
                text("hello"),
                text(""),
                text("a longer line, still no newline"),
            ],
        ),
        (
            "crlf delimited",
            boxed(Delimited::new().with_delimiter(b"\r\n")),
            vec![text("one"), text("two"), text("")],
        ),
        (
            "fixed 3",
            boxed(framewire::framing::Fixed::new(3)),
            vec![text("abc"), text("def"), text("\0\0\0")],
        ),
        (
            "json header",
            boxed(JsonHeader::new()),
            vec![
                json_msg(b""),
                json_msg(br#"{"action": "search", "value": "morpheus"}"#),
                json_msg(&big),
            ],
        ),
    ]
}

/// Object-safe framing, so the cases can share one codec type.
trait FramingBox: Framing + Send + Sync + Debug {
    fn clone_box(&self) -> Box<dyn FramingBox>;
}

impl<F: Framing + Clone + Send + Sync + Debug + 'static> FramingBox for F {
    fn clone_box(&self) -> Box<dyn FramingBox> {
        Box::new(self.clone())
    }
}

impl Framing for Box<dyn FramingBox> {
    fn decode(&mut self, buf: &[u8]) -> Result<framewire::framing::Decode, FrameError> {
        (**self).decode(buf)
    }
    fn max_frame_len(&self) -> usize {
        (**self).max_frame_len()
    }
    fn header(
        &self,
        payload: &[u8],
    ) -> Result<framewire::framing::FrameHeader, framewire::framing::EncodeError> {
        (**self).header(payload)
    }
    fn trailer(&self) -> &[u8] {
        (**self).trailer()
    }
    fn reset(&mut self) {
        (**self).reset();
    }
    fn is_discarding(&self) -> bool {
        (**self).is_discarding()
    }
}

fn boxed<F: FramingBox + 'static>(f: F) -> FrameCodec<Box<dyn FramingBox>> {
    FrameCodec::new(Box::new(f))
}

fn fresh(codec: &FrameCodec<Box<dyn FramingBox>>) -> FrameCodec<Box<dyn FramingBox>> {
    FrameCodec::new(codec.framing().clone_box())
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// Sends `payloads` through `Framed` on one side and collects them on the
/// other until the sender's close.
async fn framed_roundtrip<T>(
    tx: T,
    rx: T,
    codec: &FrameCodec<Box<dyn FramingBox>>,
    payloads: &[Bytes],
) -> Vec<Bytes>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut sender = Framed::new(tx, fresh(codec));
    let to_send = payloads.to_vec();
    let send = tokio::spawn(async move {
        for p in to_send {
            sender.feed(p).await.unwrap();
        }
        SinkExt::<Bytes>::close(&mut sender).await.unwrap();
    });
    let mut receiver = FramedRead::new(rx, fresh(codec));
    let mut got = Vec::new();
    while let Some(frame) = receiver.next().await {
        got.push(frame.unwrap());
    }
    send.await.unwrap();
    got
}

#[tokio::test]
async fn every_framing_over_loopback_tcp() {
    tokio::time::timeout(DEADLINE, async {
        for (name, codec, payloads) in cases() {
            let (a, b) = tcp_pair().await;
            let got = framed_roundtrip(a, b, &codec, &payloads).await;
            assert_eq!(got, payloads, "{name}");
        }
    })
    .await
    .expect("deadline");
}

#[tokio::test]
async fn every_framing_over_a_one_byte_pipe() {
    tokio::time::timeout(DEADLINE, async {
        for (name, codec, payloads) in cases() {
            // Leave the 200 kB payloads out: one byte per wakeup is slow.
            let payloads: Vec<Bytes> = payloads.into_iter().filter(|p| p.len() < 70_000).collect();
            let (a, b) = tokio::io::duplex(1);
            let got = framed_roundtrip(a, b, &codec, &payloads).await;
            assert_eq!(got, payloads, "{name}");
        }
    })
    .await
    .expect("deadline");
}

#[tokio::test]
async fn frame_writer_sends_every_framing() {
    tokio::time::timeout(DEADLINE, async {
        for (name, codec, payloads) in cases() {
            let (a, b) = tcp_pair().await;
            let framing = codec.framing().clone_box();
            let to_send = payloads.clone();
            let send = tokio::spawn(async move {
                let mut w = FrameWriter::new(a, framing).with_backpressure_boundary(1024);
                // As a Sink: send_all with back-pressure...
                let mut items = futures_util::stream::iter(
                    to_send.clone().into_iter().map(Ok::<_, CodecError>),
                );
                w.send_all(&mut items).await.unwrap();
                // ...and directly.
                for p in to_send {
                    w.write_frame(p).await.unwrap();
                }
                assert_eq!(w.queued_len(), 0);
                w.shutdown().await.unwrap();
            });
            let mut rx = FramedRead::new(b, fresh(&codec));
            let mut got = Vec::new();
            while let Some(f) = rx.next().await {
                got.push(f.unwrap());
            }
            send.await.unwrap();
            let mut expected = payloads.clone();
            expected.extend(payloads);
            assert_eq!(got, expected, "{name}");
        }
    })
    .await
    .expect("deadline");
}

#[tokio::test]
async fn frame_writer_over_a_one_byte_pipe_with_a_large_body() {
    tokio::time::timeout(DEADLINE, async {
        let (a, b) = tokio::io::duplex(7);
        let body = Bytes::from((0..20_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>());
        let sent = body.clone();
        let send = tokio::spawn(async move {
            let mut w = FrameWriter::new(a, LengthPrefixed::varint());
            w.queue(Bytes::from_static(b"small")).unwrap();
            w.queue(sent).unwrap();
            w.queue(Bytes::from_static(b"")).unwrap();
            w.flush().await.unwrap();
            w.shutdown().await.unwrap();
        });
        let got: Vec<Bytes> = FramedRead::new(b, FrameCodec::varint())
            .map(Result::unwrap)
            .collect()
            .await;
        send.await.unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"small"), body, Bytes::new()]);
    })
    .await
    .expect("deadline");
}

#[tokio::test]
async fn frame_writer_refuses_unsendable_payloads() {
    let (a, _b) = tokio::io::duplex(64);
    let mut w = FrameWriter::new(a, Delimited::new());
    match w.queue(Bytes::from_static(b"two\nlines")) {
        Err(CodecError::Encode(framewire::framing::EncodeError::ContainsDelimiter { at: 3 })) => {}
        other => panic!("expected ContainsDelimiter, got {other:?}"),
    }
    assert_eq!(w.queued_len(), 0);
}

#[tokio::test]
async fn oversize_frame_is_a_typed_error_after_the_good_frames() {
    tokio::time::timeout(DEADLINE, async {
        let (mut a, b) = tcp_pair().await;
        let mut wire = Vec::new();
        wire.extend_from_slice(b"\0\0\0\x02ok");
        wire.extend_from_slice(&100u32.to_be_bytes());
        wire.extend_from_slice(&[0u8; 100]);
        a.write_all(&wire).await.unwrap();
        a.shutdown().await.unwrap();
        let codec = FrameCodec::new(LengthPrefixed::new().with_max_frame_len(16));
        let mut rx = FramedRead::new(b, codec);
        assert_eq!(rx.next().await.unwrap().unwrap(), Bytes::from_static(b"ok"));
        match rx.next().await {
            Some(Err(CodecError::Frame(FrameError::FrameTooLong { len: 104, max: 16 }))) => {}
            other => panic!("expected FrameTooLong, got {other:?}"),
        }
        assert!(rx.next().await.is_none(), "the stream ends after an error");
        assert!(rx.decoder().is_failed());
        // The codec repeats its error.
        let mut buf = BytesMut::from(&b"\0\0\0\x01x"[..]);
        assert!(matches!(
            rx.decoder_mut().decode(&mut buf),
            Err(CodecError::Frame(FrameError::FrameTooLong { .. }))
        ));
    })
    .await
    .expect("deadline");
}

#[test]
fn a_limit_below_the_framing_is_frame_exceeds_buffer() {
    let mut codec = FrameCodec::lines().with_max_buffered(8);
    let mut buf = BytesMut::from(&b"0123456"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"7");
    match codec.decode(&mut buf) {
        Err(CodecError::FrameExceedsBuffer {
            need: None,
            capacity: 8,
        }) => {}
        other => panic!("expected FrameExceedsBuffer, got {other:?}"),
    }
    let mut codec = FrameCodec::length_prefixed().with_max_buffered(10);
    let mut buf = BytesMut::from(&b"\0\0\0\x07"[..]);
    match codec.decode(&mut buf) {
        Err(CodecError::FrameExceedsBuffer {
            need: Some(11),
            capacity: 10,
        }) => {}
        other => panic!("expected FrameExceedsBuffer, got {other:?}"),
    }
}

#[test]
fn untrusted_length_does_not_reserve_the_announced_size() {
    let mut codec = FrameCodec::length_prefixed();
    // 8 MiB - 4 announced, 4 bytes of it present.
    let mut buf = BytesMut::from(&(8 * 1024 * 1024 - 4u32).to_be_bytes()[..]);
    buf.extend_from_slice(b"abcd");
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(
        buf.capacity() <= 2 * framewire_tokio::codec::MIN_RESERVE,
        "reserved {} bytes for 8 bytes received",
        buf.capacity()
    );
    // A frame known to be small is reserved whole.
    let mut codec = FrameCodec::length_prefixed();
    let mut buf = BytesMut::from(&b"\0\0\x10\0"[..]);
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() >= 4 + 4096);
}

/// Writes `wire` and closes; collects what a `FramedRead` with `codec`
/// makes of it, over a pipe of `pipe` bytes.
async fn read_all<D>(wire: Vec<u8>, codec: D, pipe: usize) -> (Vec<Result<Bytes, CodecError>>, D)
where
    D: Decoder<Item = Bytes, Error = CodecError> + Send + 'static,
{
    let (mut a, b) = tokio::io::duplex(pipe);
    let write = tokio::spawn(async move {
        a.write_all(&wire).await.unwrap();
        a.shutdown().await.unwrap();
    });
    let mut rx = FramedRead::new(b, codec);
    let mut out = Vec::new();
    while let Some(item) = rx.next().await {
        out.push(item);
    }
    write.await.unwrap();
    (out, rx.into_parts().codec)
}

#[tokio::test]
async fn partial_frame_at_eof_is_truncated_and_earlier_frames_arrive() {
    tokio::time::timeout(DEADLINE, async {
        for pipe in [1, 3, 4096] {
            // Two whole frames, then 3 of a 10-byte payload.
            let mut wire = b"\0\0\0\x01a\0\0\0\x02bc".to_vec();
            wire.extend_from_slice(b"\0\0\0\x0axyz");
            let (got, _) = read_all(wire, FrameCodec::length_prefixed(), pipe).await;
            assert_eq!(got.len(), 3, "pipe {pipe}: {got:?}");
            assert_eq!(got[0].as_ref().unwrap(), &Bytes::from_static(b"a"));
            assert_eq!(got[1].as_ref().unwrap(), &Bytes::from_static(b"bc"));
            assert!(
                matches!(
                    got[2],
                    Err(CodecError::Truncated {
                        have: 7,
                        need: Some(14)
                    })
                ),
                "pipe {pipe}: {:?}",
                got[2]
            );

            // A cut inside the length prefix.
            let (got, _) = read_all(
                b"\0\0\0\x01a\0\0".to_vec(),
                FrameCodec::length_prefixed(),
                pipe,
            )
            .await;
            assert_eq!(got.len(), 2);
            assert!(matches!(
                got[1],
                Err(CodecError::Truncated {
                    have: 2,
                    need: Some(4)
                })
            ));

            // A line without its newline.
            let (got, _) = read_all(b"one\ntw".to_vec(), FrameCodec::lines(), pipe).await;
            assert_eq!(got.len(), 2);
            assert!(matches!(
                got[1],
                Err(CodecError::Truncated {
                    have: 2,
                    need: None
                })
            ));

            // A clean close between frames is no error.
            let (got, _) = read_all(b"one\ntwo\n".to_vec(), FrameCodec::lines(), pipe).await;
            assert_eq!(got.len(), 2);
            assert!(got.iter().all(Result::is_ok));
        }
    })
    .await
    .expect("deadline");
}

#[tokio::test]
async fn skip_policy_drops_oversize_frames_longer_than_the_buffer() {
    tokio::time::timeout(DEADLINE, async {
        let framing = LengthPrefixed::new()
            .with_max_frame_len(64)
            .with_oversize(OversizePolicy::Skip);
        let mut wire = Vec::new();
        let mut frame = |p: &[u8]| {
            wire.extend_from_slice(&(p.len() as u32).to_be_bytes());
            wire.extend_from_slice(p);
        };
        frame(b"first");
        frame(&vec![1u8; 10_000]);
        frame(b"second");
        frame(&vec![2u8; 100_000]);
        frame(b"third");
        for pipe in [1, 17, 65_536] {
            let (got, codec) = read_all(wire.clone(), FrameCodec::new(framing), pipe).await;
            let got: Vec<Bytes> = got.into_iter().map(Result::unwrap).collect();
            assert_eq!(
                got,
                [&b"first"[..], b"second", b"third"].map(Bytes::from_static),
                "pipe {pipe}"
            );
            let stats = codec.stats();
            assert_eq!(stats.frames_skipped, 2);
            assert_eq!(stats.bytes_skipped, 10_004 + 100_004);
            assert_eq!(
                stats.last_skipped,
                Some(Oversize {
                    len: Some(100_004),
                    max: 64
                })
            );
            assert_eq!(stats.frames_decoded, 3);
        }

        // A close inside a skipped frame is a truncation with its numbers.
        let mut wire = b"\0\0\0\x01a".to_vec();
        wire.extend_from_slice(&1000u32.to_be_bytes());
        wire.extend_from_slice(&[0u8; 500]);
        let (got, _) = read_all(wire, FrameCodec::new(framing), 9).await;
        assert_eq!(got.len(), 2);
        assert!(
            matches!(
                got[1],
                Err(CodecError::Truncated {
                    have: 504,
                    need: Some(1004)
                })
            ),
            "{:?}",
            got[1]
        );

        // Over-long lines are skipped up to their newline.
        let lines = Delimited::new()
            .with_max_line_len(8)
            .with_oversize(OversizePolicy::Skip);
        let mut wire = b"short\n".to_vec();
        wire.extend_from_slice(&[b'x'; 5000]);
        wire.extend_from_slice(b"\nnext\n");
        let (got, codec) = read_all(wire, FrameCodec::new(lines.clone()), 3).await;
        let got: Vec<Bytes> = got.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, [&b"short"[..], b"next"].map(Bytes::from_static));
        assert_eq!(codec.stats().frames_skipped, 1);

        // ... and a close inside one is a truncation.
        let mut wire = b"short\n".to_vec();
        wire.extend_from_slice(&[b'x'; 50]);
        let (got, _) = read_all(wire, FrameCodec::new(lines), 3).await;
        assert_eq!(got.len(), 2);
        assert!(matches!(
            got[1],
            Err(CodecError::Truncated { need: None, .. })
        ));
    })
    .await
    .expect("deadline");
}

#[test]
fn frames_share_the_read_buffer() {
    let mut codec = FrameCodec::length_prefixed();
    let mut buf = BytesMut::new();
    for p in [&b"one"[..], b"two", b"three"] {
        codec.encode(p, &mut buf).unwrap();
    }
    let base = buf.as_ptr() as usize;
    let end = base + buf.len();
    let mut frames = Vec::new();
    while let Some(f) = codec.decode(&mut buf).unwrap() {
        frames.push(f);
    }
    assert_eq!(
        frames,
        [&b"one"[..], b"two", b"three"].map(Bytes::from_static)
    );
    for f in &frames {
        let p = f.as_ptr() as usize;
        assert!(p >= base && p + f.len() <= end, "payload was copied");
    }
    assert_eq!(codec.stats().frames_decoded, 3);
    assert_eq!(codec.stats().frames_encoded, 3);
}

// ----- golden bytes (WIRE.md) -----

#[test]
fn golden_socktools_json_frame() {
    let body = br#"[1, {"text": "hi", "n": [1, 2.5, null]}]"#;
    let wire = hex(
        "00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d",
    );
    let mut codec = FrameCodec::length_prefixed();
    let mut out = BytesMut::new();
    codec.encode(Bytes::from_static(body), &mut out).unwrap();
    assert_eq!(&out[..], &wire[..]);
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(codec.decode(&mut buf).unwrap().as_deref(), Some(&body[..]));

    let wire = hex("00000013 5b2263686174222c2022685c7530306539225d");
    let mut buf = BytesMut::from(&wire[..]);
    assert_eq!(
        codec.decode(&mut buf).unwrap().as_deref(),
        Some(&br#"["chat", "h\u00e9"]"#[..])
    );
}

#[test]
fn golden_pybson_documents() {
    let hello = hex("16000000 02 68656c6c6f00 06000000 776f726c6400 00");
    let small = hex("3200000010736571000000000005706164001a00000000787878787878787878787878787878787878787878787878787800");
    let mut wire = BytesMut::new();
    let mut codec = FrameCodec::bson_document();
    codec.encode(&hello[..], &mut wire).unwrap();
    codec.encode(&small[..], &mut wire).unwrap();
    let mut expected = hello.clone();
    expected.extend_from_slice(&small);
    assert_eq!(&wire[..], &expected[..], "documents are sent as they are");
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some(&hello[..])
    );
    assert_eq!(
        codec.decode(&mut wire).unwrap().as_deref(),
        Some(&small[..])
    );
    assert_eq!(codec.decode(&mut wire).unwrap(), None);
}

#[test]
fn golden_packetstream_packets_as_varint_frames() {
    let mut codec = FrameCodec::varint();
    let mut wire = BytesMut::from(
        &hex("08 02 02 01 68656c6c6f  06 03 0e 02 616263  1a 05 00 657863657074696f6e20647572696e672068616e646c6572 03000200")[..],
    );
    let bodies: Vec<Bytes> = std::iter::from_fn(|| codec.decode(&mut wire).unwrap()).collect();
    assert_eq!(
        bodies,
        [
            Bytes::from(hex("02 02 01 68656c6c6f")),
            Bytes::from(hex("03 0e 02 616263")),
            Bytes::from(hex(
                "05 00 657863657074696f6e20647572696e672068616e646c6572"
            )),
            Bytes::from(hex("00 02 00")),
        ]
    );
    // Response tag 300 with a 200-byte payload: length 203 = 81 4b.
    let mut body = hex("82 2c 04");
    body.extend((0..200u8).collect::<Vec<_>>());
    let mut out = BytesMut::new();
    codec.encode(&body[..], &mut out).unwrap();
    assert_eq!(&out[..2], &hex("81 4b")[..]);
    assert_eq!(&out[2..], &body[..]);
}

#[test]
fn golden_line_mode_and_json_header() {
    let mut lines = FrameCodec::new(Delimited::new().with_keep_delimiter(true));
    let mut out = BytesMut::new();
    lines.encode(&b"hello\n"[..], &mut out).unwrap();
    assert_eq!(&out[..], &hex("68656c6c6f0a")[..]);
    assert_eq!(
        lines.decode(&mut out).unwrap().as_deref(),
        Some(&b"hello\n"[..])
    );

    let request = hex(
        "0067 7b22627974656f72646572223a20226c6974746c65222c2022636f6e74656e742d74797065223a2022746578742f6a736f6e222c2022636f6e74656e742d656e636f64696e67223a20227574662d38222c2022636f6e74656e742d6c656e677468223a2034317d
         7b22616374696f6e223a2022736561726368222c202276616c7565223a20226d6f727068657573227d",
    );
    let mut codec = FrameCodec::json_header();
    let mut buf = BytesMut::from(&request[..]);
    buf.extend_from_slice(&request[..50]); // the start of another
    assert_eq!(
        codec.decode(&mut buf).unwrap().as_deref(),
        Some(&request[..])
    );
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    let mut out = BytesMut::new();
    codec.encode(&request[..], &mut out).unwrap();
    assert_eq!(&out[..], &request[..]);
}

#[test]
fn errors_convert_to_io_errors() {
    let e: io::Error = CodecError::Truncated {
        have: 1,
        need: Some(2),
    }
    .into();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(
        e.to_string(),
        "stream ended inside a frame: 1 of 2 bytes received"
    );
    let e: io::Error = CodecError::Frame(FrameError::FrameTooLong { len: 9, max: 8 }).into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    let e: io::Error = CodecError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "x")).into();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    let e: io::Error = CodecError::Encode(framewire::framing::EncodeError::Malformed).into();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}

#[cfg(feature = "bson")]
#[tokio::test]
async fn bson_objects_over_framed_tcp() {
    use framewire_tokio::codec::BsonObjectCodec;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    struct Msg {
        seq: i32,
        text: String,
    }

    tokio::time::timeout(DEADLINE, async {
        let (a, b) = tcp_pair().await;
        let msgs: Vec<Msg> = (0..50)
            .map(|seq| Msg {
                seq,
                text: "x".repeat(seq as usize * 100),
            })
            .collect();
        let to_send = msgs.clone();
        let send = tokio::spawn(async move {
            let mut tx = tokio_util::codec::FramedWrite::new(a, BsonObjectCodec::<Msg>::new());
            for m in &to_send {
                tx.feed(m).await.unwrap();
            }
            SinkExt::<&Msg>::close(&mut tx).await.unwrap();
        });
        let got: Vec<Msg> = FramedRead::new(b, BsonObjectCodec::<Msg>::new())
            .map(Result::unwrap)
            .collect()
            .await;
        send.await.unwrap();
        assert_eq!(got, msgs);

        // A document of the wrong shape is a BSON error, and the stream goes on.
        let mut codec = BsonObjectCodec::<Msg>::new();
        let mut buf = BytesMut::new();
        codec
            .encode(
                &Msg {
                    seq: 1,
                    text: "ok".into(),
                },
                &mut buf,
            )
            .unwrap();
        let mut wrong = BytesMut::new();
        BsonObjectCodec::<std::collections::BTreeMap<String, i32>>::new()
            .encode(
                std::collections::BTreeMap::from([("seq".to_string(), 1)]),
                &mut wrong,
            )
            .unwrap();
        wrong.extend_from_slice(&buf);
        assert!(matches!(codec.decode(&mut wrong), Err(CodecError::Bson(_))));
        assert_eq!(codec.decode(&mut wrong).unwrap().unwrap().text, "ok");
    })
    .await
    .expect("deadline");
}

// ----- split invariance -----

/// Decodes `wire` delivered in `chunks` (sizes, cycled), then the EOF: the
/// frames, and the error that ended them, if any.
fn decode_chunked(
    codec: &mut FrameCodec<Box<dyn FramingBox>>,
    wire: &[u8],
    chunks: &[usize],
) -> (Vec<Bytes>, Option<String>) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < wire.len() {
        let n = chunks[i % chunks.len()].clamp(1, wire.len() - at);
        i += 1;
        buf.extend_from_slice(&wire[at..at + n]);
        at += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(f)) => out.push(f),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(f)) => out.push(f),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

fn payloads_for(kind: usize) -> impl Strategy<Value = Vec<Bytes>> {
    let raw = proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..12);
    raw.prop_map(move |ps| {
        ps.into_iter()
            .map(|p| match kind {
                3 => bson_doc(&p),
                4 => Bytes::from(p.into_iter().filter(|&b| b != b'\n').collect::<Vec<_>>()),
                5 => Bytes::from(
                    p.into_iter()
                        .filter(|&b| b != b'\r' && b != b'\n')
                        .collect::<Vec<_>>(),
                ),
                6 => {
                    let mut p = p;
                    p.resize(5, 7);
                    Bytes::from(p)
                }
                7 => json_msg(&p),
                _ => Bytes::from(p),
            })
            .collect()
    })
}

fn framing_for(kind: usize) -> FrameCodec<Box<dyn FramingBox>> {
    match kind {
        0 => boxed(LengthPrefixed::new()),
        1 => boxed(LengthPrefixed::varint()),
        2 => boxed(
            LengthPrefixed::new()
                .with_length_field(LengthField::U16_LE)
                .with_includes_header(true),
        ),
        3 => boxed(BsonDocument::new()),
        4 => boxed(Delimited::new()),
        5 => boxed(
            Delimited::new()
                .with_delimiter(b"\r\n")
                .with_strip_cr(false),
        ),
        6 => boxed(framewire::framing::Fixed::new(5)),
        7 => boxed(JsonHeader::new()),
        // Length prefix with a skip limit: payloads over 28 bytes vanish.
        _ => boxed(
            LengthPrefixed::new()
                .with_max_frame_len(32)
                .with_oversize(OversizePolicy::Skip),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_splits_agree_with_one_shot(
        (kind, payloads) in (0usize..9).prop_flat_map(|k| (Just(k), payloads_for(k))),
        chunks in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let template = framing_for(kind);
        let mut wire = BytesMut::new();
        // The skip case encodes with an unlimited twin of its framing.
        let mut encoder = if kind == 8 { boxed(LengthPrefixed::new()) } else { fresh(&template) };
        for p in &payloads {
            encoder.encode(p.clone(), &mut wire).unwrap();
        }
        let one_shot = decode_chunked(&mut fresh(&template), &wire, &[wire.len().max(1)]);
        let split = decode_chunked(&mut fresh(&template), &wire, &chunks);
        let bytewise = decode_chunked(&mut fresh(&template), &wire, &[1]);
        let expected: Vec<Bytes> = if kind == 8 {
            payloads.iter().filter(|p| p.len() <= 28).cloned().collect()
        } else {
            payloads.clone()
        };
        prop_assert_eq!(&one_shot, &(expected, None));
        prop_assert_eq!(&split, &one_shot);
        prop_assert_eq!(&bytewise, &one_shot);
    }

    #[test]
    fn random_splits_agree_on_truncation(
        payloads in payloads_for(0),
        cut in 1usize..200,
        chunks in proptest::collection::vec(1usize..40, 1..20),
    ) {
        let mut wire = BytesMut::new();
        let mut codec = FrameCodec::length_prefixed();
        for p in &payloads {
            codec.encode(p.clone(), &mut wire).unwrap();
        }
        let cut = cut.min(wire.len());
        let wire = &wire[..wire.len() - cut];
        let template = framing_for(0);
        let one_shot = decode_chunked(&mut fresh(&template), wire, &[wire.len().max(1)]);
        let split = decode_chunked(&mut fresh(&template), wire, &chunks);
        prop_assert_eq!(split, one_shot);
    }
}
