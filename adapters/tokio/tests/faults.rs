//! Fault injection over loopback TCP against the Tokio adapter: a peer that
//! resets inside a frame, half-closes, reads or writes one byte at a time,
//! never reads, sends garbage after a valid frame, floods requests beyond
//! the in-flight limit, answers tags it was never asked, or sends requests
//! after ERQ. Each test checks the documented end state (typed error, event,
//! counters) and that everything accepted before the fault is delivered.
//! Every test runs under a deadline on port 0; none times anything.
//!
//! The misbehaving peer is a raw socket driven by the core's sans-IO
//! [`Connection`] (for well-formed packets) plus hand-written bytes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use framewire::framing::{FrameError, LengthPrefixed};
use framewire::packet::wire::{Packet, PacketError, EOF_BYTES, ERQ_BYTES};
use framewire::packet::{
    reason, Config, Connection, Event, PeerCloseReason, ProtocolError as PacketProtocolError,
};
use framewire::time::Instant as CoreInstant;
use framewire_tokio::codec::{CodecError, FrameCodec};
use framewire_tokio::packet::{Builder, EndCause, PacketConnection, Reply, Request};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::codec::Framed;

const DEADLINE: Duration = Duration::from_secs(60);

async fn deadline<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("test deadline passed")
}

/// Waits until `cond` holds (the handles' getters follow the driver).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("never happened: {what}");
}

/// A connected loopback pair: (client, server side).
async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

/// Closes `sock` with a TCP reset instead of a FIN.
fn reset(sock: TcpStream) {
    sock.set_zero_linger().unwrap();
    drop(sock);
}

fn packet(p: &Packet<'_>) -> Vec<u8> {
    let mut out = vec![0; p.encoded_len()];
    p.encode(&mut out).unwrap();
    out
}

/// A raw peer: a socket and the core's sans-IO connection.
struct Raw {
    sock: TcpStream,
    conn: Connection,
    pending: Vec<u8>,
    eof: bool,
    read_size: usize,
}

impl Raw {
    fn new(sock: TcpStream, config: Config) -> Raw {
        Raw {
            sock,
            conn: Connection::new(config).unwrap(),
            pending: Vec::new(),
            eof: false,
            read_size: 64 * 1024,
        }
    }

    async fn flush(&mut self) {
        while let Some(chunk) = self.conn.poll_transmit() {
            let chunk = chunk.to_vec();
            self.sock.write_all(&chunk).await.unwrap();
            self.conn.advance_transmit(chunk.len());
        }
    }

    fn submit(&mut self, payload: Vec<u8>) -> u64 {
        self.conn
            .submit(0, 0, 0, Bytes::from(payload), CoreInstant::ZERO, None)
            .unwrap()
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.conn.poll_event() {
                return Some(e);
            }
            if !self.pending.is_empty() {
                if let Ok(n) = self.conn.handle_input(&self.pending) {
                    self.pending.drain(..n);
                    if n > 0 {
                        continue;
                    }
                } else {
                    self.pending.clear();
                }
            }
            if self.eof {
                return None;
            }
            let mut buf = vec![0; self.read_size];
            match self.sock.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    self.conn.handle_eof();
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    async fn responses(&mut self, n: usize) -> HashMap<u64, (bool, Bytes)> {
        let mut out = HashMap::new();
        while out.len() < n {
            match self.next_event().await {
                Some(Event::ResponseReceived {
                    tag, ok, payload, ..
                }) => {
                    assert!(out.insert(tag, (ok, payload)).is_none(), "tag {tag} twice");
                }
                Some(_) => {}
                None => panic!("stream ended after {} of {n} responses", out.len()),
            }
        }
        out
    }

    async fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next_event().await {
            out.push(e);
        }
        out
    }
}

fn echo_builder() -> Builder {
    Builder::new().handler(|rq: Request| async move { Reply::ok(rq.payload) })
}

/// A builder whose handler waits for `gate` before echoing.
fn gated_builder(gate: &Arc<Notify>) -> Builder {
    let gate = Arc::clone(gate);
    Builder::new().handler(move |rq: Request| {
        let gate = Arc::clone(&gate);
        async move {
            gate.notified().await;
            // Pass the permit on to the next waiter.
            gate.notify_one();
            Reply::ok(rq.payload)
        }
    })
}

// ----- codec -----

#[tokio::test]
async fn codec_reset_inside_a_frame_after_two_frames() {
    deadline(async {
        let (mut client, server) = tcp_pair().await;
        let mut framed = Framed::new(server, FrameCodec::length_prefixed());
        client
            .write_all(b"\0\0\0\x03one\0\0\0\x03two\0\0\0\x10half")
            .await
            .unwrap();
        assert_eq!(&framed.next().await.unwrap().unwrap()[..], b"one");
        assert_eq!(&framed.next().await.unwrap().unwrap()[..], b"two");
        reset(client);
        match framed.next().await {
            Some(Err(CodecError::Io(e))) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
            }
            Some(Err(CodecError::Truncated { have, need })) => {
                assert_eq!((have, need), (8, Some(20)));
            }
            other => panic!("expected a reset or Truncated, got {other:?}"),
        }
        assert_eq!(framed.codec().stats().frames_decoded, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_half_close_still_gets_every_echo() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let echo = tokio::spawn(async move {
            let mut framed = Framed::new(server, FrameCodec::length_prefixed());
            let mut n = 0;
            while let Some(frame) = framed.next().await {
                framed.send(frame.unwrap()).await.unwrap();
                n += 1;
            }
            n
        });
        let (mut rd, mut wr) = client.into_split();
        let writer = tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..500u32 {
                out.extend_from_slice(&256u32.to_be_bytes());
                out.extend_from_slice(&i.to_be_bytes().repeat(64));
            }
            wr.write_all(&out).await.unwrap();
            // End our writes; keep reading.
            wr.shutdown().await.unwrap();
            wr
        });
        let mut got = Vec::new();
        rd.read_to_end(&mut got).await.unwrap();
        drop(writer.await.unwrap());
        assert_eq!(got.len(), 500 * 260);
        for (i, frame) in got.chunks(260).enumerate() {
            assert_eq!(frame[..4], 256u32.to_be_bytes());
            assert_eq!(frame[4..], (i as u32).to_be_bytes().repeat(64)[..]);
        }
        assert_eq!(echo.await.unwrap(), 500);
    })
    .await;
}

#[tokio::test]
async fn codec_slow_reader_and_slow_writer_one_byte_at_a_time() {
    deadline(async {
        let (mut client, server) = tcp_pair().await;
        client.set_nodelay(true).unwrap();
        let frames: Vec<Bytes> = (0..20u8)
            .map(|i| Bytes::from(vec![i; 1000 + usize::from(i)]))
            .collect();
        let sent = frames.clone();
        let server = tokio::spawn(async move {
            let mut framed = Framed::new(server, FrameCodec::length_prefixed());
            for f in sent {
                framed.feed(f).await.unwrap();
            }
            SinkExt::<Bytes>::flush(&mut framed).await.unwrap();
            let mut got = Vec::new();
            while let Some(f) = framed.next().await {
                got.push(f.unwrap());
            }
            got
        });
        let mut stream = framewire::stream::FramedStream::new(LengthPrefixed::new());
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while got.len() < frames.len() {
            assert_eq!(client.read(&mut byte).await.unwrap(), 1);
            assert_eq!(stream.handle_input(&byte).unwrap(), 1);
            while let Some(f) = stream.poll_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
        let mut out = Vec::new();
        for f in &frames[..5] {
            out.extend_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
            out.extend_from_slice(f);
        }
        for b in &out {
            client.write_all(std::slice::from_ref(b)).await.unwrap();
        }
        client.shutdown().await.unwrap();
        assert_eq!(server.await.unwrap(), frames[..5]);
    })
    .await;
}

#[tokio::test]
async fn codec_garbage_after_a_valid_frame() {
    deadline(async {
        let (mut client, server) = tcp_pair().await;
        let mut framed = Framed::new(server, FrameCodec::length_prefixed());
        client
            .write_all(b"\0\0\0\x02ok\xff\xff\xff\xffgarbage")
            .await
            .unwrap();
        assert_eq!(&framed.next().await.unwrap().unwrap()[..], b"ok");
        match framed.next().await {
            Some(Err(CodecError::Frame(FrameError::FrameTooLong { len, max }))) => {
                assert_eq!((len, max), (0xffff_ffff + 4, 8 << 20));
            }
            other => panic!("expected FrameTooLong, got {other:?}"),
        }
        assert!(framed.codec().is_failed());
        assert_eq!(framed.codec().stats().frames_decoded, 1);
    })
    .await;
}

// ----- packet connections -----

#[tokio::test]
async fn packet_reset_inside_a_packet_after_answered_requests() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let server = echo_builder().start(server).unwrap();
        let mut raw = Raw::new(client, Config::default());
        let tags: Vec<u64> = (0..3u8).map(|i| raw.submit(vec![i; 10])).collect();
        raw.flush().await;
        let responses = raw.responses(3).await;
        for (i, tag) in tags.iter().enumerate() {
            assert_eq!(responses[tag], (true, Bytes::from(vec![i as u8; 10])));
        }
        raw.sock.write_all(&[40, 9, 2]).await.unwrap();
        eventually("the partial packet is read", || {
            server.stats().bytes_received >= 3 * 14 + 3
        })
        .await;
        reset(raw.sock);
        let err = server.wait().await.unwrap_err();
        let cause = server.end_cause().unwrap();
        assert!(
            matches!(
                cause,
                EndCause::Io(std::io::ErrorKind::ConnectionReset)
                    | EndCause::Protocol(PacketProtocolError::Truncated {
                        have: 3,
                        need: Some(41)
                    })
            ),
            "{cause:?} ({err:?})"
        );
        let stats = server.stats();
        assert_eq!((stats.requests_received, stats.responses_sent), (3, 3));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_half_close_still_gets_every_response() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let server = Builder::new()
            .handler(|rq: Request| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Reply::ok(rq.payload)
            })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        let tags: Vec<u64> = (0..200u32)
            .map(|i| raw.submit(i.to_be_bytes().to_vec()))
            .collect();
        raw.flush().await;
        raw.sock.shutdown().await.unwrap();
        let responses = raw.responses(200).await;
        for (i, tag) in tags.iter().enumerate() {
            let want = Bytes::copy_from_slice(&(i as u32).to_be_bytes());
            assert_eq!(responses[tag], (true, want), "tag {tag}");
        }
        let rest = raw.drain().await;
        assert!(
            rest.contains(&Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            }),
            "{rest:?}"
        );
        server.wait().await.unwrap();
        assert_eq!(server.end_cause(), Some(EndCause::TransportEof));
        assert_eq!(server.stats().responses_sent, 200);
    })
    .await;
}

#[tokio::test]
async fn packet_slow_reader_gets_large_responses_intact() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let server = Builder::new()
            .handler(|rq: Request| async move { Reply::ok(vec![rq.payload[0]; 16 * 1024]) })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        raw.read_size = 1;
        let tags: Vec<u64> = (0..10u8).map(|i| raw.submit(vec![i])).collect();
        raw.flush().await;
        let responses = raw.responses(10).await;
        for (i, tag) in tags.iter().enumerate() {
            assert_eq!(
                responses[tag],
                (true, Bytes::from(vec![i as u8; 16 * 1024]))
            );
        }
        drop(raw);
        let _ = server.wait().await;
        assert_eq!(server.stats().responses_sent, 10);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_peer_that_never_reads_gets_back_pressure_and_everything_later() {
    deadline(async {
        const PAYLOAD: usize = 64 * 1024;
        const N: u32 = 1024;
        let (client, server) = tcp_pair().await;
        let conn = Builder::new()
            .config(Config {
                max_transmit_buffer: 256 * 1024,
                ..Config::default()
            })
            .start(client)
            .unwrap();
        // 64 MiB of requests at once; nobody reads.
        let calls: Vec<_> = (0..N)
            .map(|i| {
                let mut payload = vec![0u8; PAYLOAD];
                payload[..4].copy_from_slice(&i.to_be_bytes());
                tokio::spawn(conn.call(0, 0, 0, payload))
            })
            .collect();
        // Back-pressure: sending stops short of all of them and stays there.
        let mut last = u64::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let sent = conn.stats().requests_sent;
            if sent == last {
                break;
            }
            last = sent;
        }
        assert!(
            last < u64::from(N),
            "all {N} requests sent with nobody reading"
        );
        assert!(conn.pending_calls() <= 1024);
        // The peer reads and answers: every call completes with its own
        // payload, in order of arrival.
        let mut raw = Raw::new(
            server,
            Config {
                max_inflight_inbound: 4096,
                ..Config::default()
            },
        );
        // (Spawned calls reach the driver in any order.)
        let mut seen = vec![false; N as usize];
        for _ in 0..N {
            match raw.next_event().await {
                Some(Event::RequestReceived {
                    channel,
                    tag,
                    payload,
                    ..
                }) => {
                    assert_eq!(payload.len(), PAYLOAD);
                    let i = u32::from_be_bytes(payload[..4].try_into().unwrap()) as usize;
                    assert!(!std::mem::replace(&mut seen[i], true), "request {i} twice");
                    raw.conn
                        .respond(channel, tag, 0, payload.slice(..4))
                        .unwrap();
                    raw.flush().await;
                }
                other => panic!("expected a request, got {other:?}"),
            }
        }
        for (i, call) in calls.into_iter().enumerate() {
            let response = call.await.unwrap().unwrap();
            assert_eq!(response.payload[..], (i as u32).to_be_bytes());
        }
        conn.abort();
    })
    .await;
}

#[tokio::test]
async fn packet_garbage_after_a_valid_request_still_answers_it() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let gate = Arc::new(Notify::new());
        let server = gated_builder(&gate).start(server).unwrap();
        let mut raw = Raw::new(client, Config::default());
        let tag = raw.submit(b"accepted".to_vec());
        raw.flush().await;
        eventually("the request is in flight", || {
            server.inflight_requests() == 1
        })
        .await;
        let (prefix, n) = framewire::varint::encode_array(u64::MAX - 10);
        raw.sock.write_all(&prefix[..n]).await.unwrap();
        raw.sock.write_all(b"junk").await.unwrap();
        eventually("the protocol error", || server.end_cause().is_some()).await;
        assert_eq!(
            server.end_cause(),
            Some(EndCause::Protocol(PacketProtocolError::Packet(
                PacketError::TooLong {
                    len: u64::MAX,
                    max: 16 << 20
                }
            )))
        );
        gate.notify_one();
        let responses = raw.responses(1).await;
        assert_eq!(responses[&tag], (true, Bytes::from_static(b"accepted")));
        let rest = raw.drain().await;
        assert!(
            rest.contains(&Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            }),
            "{rest:?}"
        );
        let _ = server.wait().await;
        assert_eq!(server.stats().responses_sent, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_flood_beyond_the_inflight_limit() {
    deadline(async {
        const LIMIT: usize = 8;
        const N: u32 = 500;
        let (client, server) = tcp_pair().await;
        let gate = Arc::new(Notify::new());
        let server = gated_builder(&gate)
            .max_concurrent_handlers(2)
            .config(Config {
                max_inflight_inbound: LIMIT,
                ..Config::default()
            })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(
            client,
            Config {
                max_pending_outbound: N as usize,
                ..Config::default()
            },
        );
        let tags: Vec<u64> = (0..N)
            .map(|i| raw.submit(i.to_be_bytes().to_vec()))
            .collect();
        raw.flush().await;
        eventually("the limit is reached", || {
            server.inflight_requests() == LIMIT
        })
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(server.inflight_requests(), LIMIT);
        assert_eq!(server.stats().requests_received, LIMIT as u64);
        gate.notify_one();
        let responses = raw.responses(N as usize).await;
        for (i, tag) in tags.iter().enumerate() {
            let want = Bytes::copy_from_slice(&(i as u32).to_be_bytes());
            assert_eq!(responses[tag], (true, want), "tag {tag}");
        }
        let stats = server.stats();
        assert_eq!(
            (stats.requests_received, stats.requests_refused),
            (u64::from(N), 0)
        );
    })
    .await;
}

#[tokio::test]
async fn packet_responses_to_unknown_tags_are_counted_and_ignored() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let conn = PacketConnection::new(client).unwrap();
        let mut raw = Raw::new(server, Config::default());
        for tag in [2, 99, 1 << 40] {
            let p = Packet::response(0, tag, true, 0, b"stray").unwrap();
            raw.sock.write_all(&packet(&p)).await.unwrap();
        }
        eventually("three unknown responses", || {
            conn.stats().unknown_responses == 3
        })
        .await;
        let call = tokio::spawn(conn.call(0, 0, 0, &b"real"[..]));
        let Some(Event::RequestReceived {
            channel,
            tag,
            payload,
            ..
        }) = raw.next_event().await
        else {
            panic!("expected the request");
        };
        assert_eq!(&payload[..], b"real");
        raw.conn.respond(channel, tag, 0, payload).unwrap();
        raw.flush().await;
        let response = call.await.unwrap().unwrap();
        assert!(response.ok);
        assert_eq!(&response.payload[..], b"real");
        assert_eq!(conn.stats().unknown_responses, 3);
        assert!(!conn.is_finished());
    })
    .await;
}

#[tokio::test]
async fn packet_requests_after_erq_are_refused() {
    deadline(async {
        let (client, server) = tcp_pair().await;
        let called = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&called);
        let server = Builder::new()
            .handler(move |rq: Request| {
                count.fetch_add(1, Ordering::SeqCst);
                async move { Reply::ok(rq.payload) }
            })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        let before = raw.submit(b"before".to_vec());
        raw.flush().await;
        // ERQ by hand (our core does not know, so it still submits).
        raw.sock.write_all(&ERQ_BYTES).await.unwrap();
        let after: Vec<u64> = (0..2).map(|_| raw.submit(b"after".to_vec())).collect();
        raw.flush().await;
        let responses = raw.responses(3).await;
        assert_eq!(responses[&before], (true, Bytes::from_static(b"before")));
        for tag in &after {
            assert_eq!(
                responses[tag],
                (
                    false,
                    Bytes::from_static(reason::REQUESTS_NO_LONGER_ALLOWED.as_bytes())
                )
            );
        }
        assert_eq!(called.load(Ordering::SeqCst), 1);
        assert!(server.peer_ended_requests());
        let stats = server.stats();
        assert_eq!((stats.requests_received, stats.requests_refused), (1, 2));
        raw.sock.write_all(&EOF_BYTES).await.unwrap();
        let rest = raw.drain().await;
        assert!(
            rest.contains(&Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            }),
            "{rest:?}"
        );
        server.wait().await.unwrap();
        assert_eq!(server.end_cause(), Some(EndCause::EofPacket));
    })
    .await;
}

/// A peer that floods requests the connection refuses itself, never reads,
/// answers our call behind the flood, then resets: the refusals fill the
/// socket and the core's transmit queue, so the core holds the rest of the
/// input (the answer included) waiting for transmit room. The reset hands
/// the core `handle_transport_lost`: the refusals are dropped, the answer
/// still reaches the call (before, the call was cancelled), and the
/// connection ends with the I/O error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_reset_while_refusals_wait_for_room_still_delivers_the_answer() {
    deadline(async {
        // Small socket buffers: the refusals fill them quickly.
        let listener = tokio::net::TcpSocket::new_v4().unwrap();
        listener.set_recv_buffer_size(4096).unwrap();
        listener.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = listener.listen(1).unwrap();
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let client = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut raw, _) = listener.accept().await.unwrap();
        let conn = Builder::new()
            .config(Config {
                max_packet_len: 1024,
                max_receive_buffer: 256 * 1024,
                max_transmit_buffer: 64,
                ..Config::default()
            })
            .start(client)
            .unwrap();
        let call = tokio::spawn(conn.request(0, &b"q"[..]).no_timeout().send());
        eventually("the request is sent", || conn.stats().requests_sent == 1).await;
        // Requests on a channel nobody opened (refused, about 22 bytes
        // each), then the answer to our call (channel 0, tag 2).
        let mut input = Vec::new();
        for tag in 0..4000u64 {
            input.extend(packet(&Packet::request(9, tag, 0, 0, b"").unwrap()));
        }
        input.extend(packet(&Packet::response(0, 2, true, 0, b"late").unwrap()));
        raw.write_all(&input).await.unwrap();
        let total = input.len() as u64;
        eventually("the connection took every byte", || {
            conn.stats().bytes_received == total
        })
        .await;
        let stats = conn.stats();
        assert!(
            stats.requests_refused < 4000,
            "the refusals did not wait for room: {stats:?}"
        );
        assert!(!call.is_finished());
        reset(raw);
        let response = call.await.unwrap().expect("the answer is delivered");
        assert!(response.ok);
        assert_eq!(&response.payload[..], b"late");
        assert!(conn.wait().await.is_err());
        assert!(
            matches!(conn.end_cause(), Some(EndCause::Io(_))),
            "{:?}",
            conn.end_cause()
        );
    })
    .await;
}
