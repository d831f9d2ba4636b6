//! Fault injection over loopback TCP against the blocking adapter: a peer
//! that resets inside a frame, half-closes, reads or writes one byte at a
//! time, never reads, sends garbage after a valid frame, floods requests
//! beyond the in-flight limit, answers tags it was never asked, or sends
//! requests after ERQ. Each test checks the documented end state (typed
//! error, event, counters) and that everything accepted before the fault is
//! delivered. Every test runs under a deadline on port 0; none times
//! anything.
//!
//! The misbehaving peer is a raw socket driven by the core's sans-IO
//! [`Connection`] (for well-formed packets) plus hand-written bytes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use framewire::framing::{FrameError, LengthPrefixed};
use framewire::packet::wire::{Packet, PacketError, ERQ_BYTES};
use framewire::packet::{
    reason, Config, Connection, Event, PeerCloseReason, ProtocolError as PacketProtocolError,
};
use framewire::stream::ProtocolError;
use framewire::time::Instant as CoreInstant;
use framewire_std::packet::{Builder, CallError, EndCause, PacketConnection, Request};
use framewire_std::{Error, Framed};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` on a thread; fails the test if it takes longer than [`LIMIT`].
fn with_deadline<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(v) => {
            handle.join().expect("test body thread");
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sender dropped without a value or a panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {LIMIT:?}"),
    }
}

/// A connected loopback pair: (client, server side).
fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Closes `sock` with a TCP reset (SO_LINGER 0) instead of a FIN.
fn reset(sock: TcpStream) {
    rustix::net::sockopt::set_socket_linger(sock.as_fd(), Some(Duration::ZERO)).unwrap();
    drop(sock);
}

/// Waits until `cond` holds (the connections' getters follow their threads).
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..5_000 {
        if cond() {
            return;
        }
        thread::sleep(Duration::from_millis(2));
    }
    panic!("never happened: {what}");
}

/// One encoded packet.
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
    /// Read size (1 for a slow reader).
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

    /// Writes everything the core queued.
    fn flush(&mut self) {
        while let Some(chunk) = self.conn.poll_transmit() {
            let chunk = chunk.to_vec();
            self.sock.write_all(&chunk).unwrap();
            self.conn.advance_transmit(chunk.len());
        }
    }

    fn submit(&mut self, rq_type: u64, payload: Vec<u8>) -> u64 {
        self.conn
            .submit(0, rq_type, 0, Bytes::from(payload), CoreInstant::ZERO, None)
            .unwrap()
    }

    /// The next event, reading as needed; `None` once the peer's stream has
    /// ended and every event was taken.
    fn next_event(&mut self) -> Option<Event> {
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
            match self.sock.read(&mut buf) {
                Ok(0) | Err(_) => {
                    self.eof = true;
                    self.conn.handle_eof();
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// Collects responses (tag -> (ok, payload)) until `n` arrived.
    fn responses(&mut self, n: usize) -> HashMap<u64, (bool, Bytes)> {
        let mut out = HashMap::new();
        while out.len() < n {
            match self.next_event() {
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

    /// Reads to the end; the events seen.
    fn drain(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.next_event()).collect()
    }
}

/// A one-shot gate that handlers wait on.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.cv.wait(open).unwrap();
        }
    }
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

// ----- framed -----

#[test]
fn framed_reset_inside_a_frame_after_two_frames() {
    with_deadline(|| {
        let (mut client, server) = tcp_pair();
        let mut framed = Framed::new(server, LengthPrefixed::new());
        client
            .write_all(b"\0\0\0\x03one\0\0\0\x03two\0\0\0\x10half")
            .unwrap();
        assert_eq!(framed.recv().unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(framed.recv().unwrap().as_deref(), Some(&b"two"[..]));
        reset(client);
        match framed.recv() {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            // The reset may be seen as the end of the stream inside a frame.
            Err(Error::Protocol(ProtocolError::Truncated { have, need })) => {
                assert_eq!((have, need), (8, Some(20)));
            }
            other => panic!("expected a reset or Truncated, got {other:?}"),
        }
        assert_eq!(framed.stats().frames_received, 2);
    });
}

#[test]
fn framed_half_close_still_gets_every_echo() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        let echo = thread::spawn(move || {
            let mut framed = Framed::new(server, LengthPrefixed::new());
            let mut n = 0;
            while let Some(frame) = framed.recv().unwrap() {
                framed.send_bytes(frame).unwrap();
                n += 1;
            }
            n
        });
        let mut framed = Framed::new(client, LengthPrefixed::new());
        for i in 0..500u32 {
            framed.queue(&i.to_be_bytes().repeat(64)).unwrap();
        }
        framed.flush().unwrap();
        // End our writes; keep reading.
        framed.get_ref().shutdown(Shutdown::Write).unwrap();
        for i in 0..500u32 {
            let frame = framed.recv().unwrap().expect("an echo");
            assert_eq!(&frame[..], &i.to_be_bytes().repeat(64)[..]);
        }
        assert_eq!(framed.recv().unwrap(), None);
        assert_eq!(echo.join().unwrap(), 500);
    });
}

#[test]
fn framed_slow_reader_and_slow_writer_one_byte_at_a_time() {
    with_deadline(|| {
        let (mut client, server) = tcp_pair();
        client.set_nodelay(true).unwrap();
        let frames: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 1000 + usize::from(i)]).collect();
        let expected = frames.clone();
        let server = thread::spawn(move || {
            let mut framed = Framed::new(server, LengthPrefixed::new());
            for f in &frames {
                framed.queue(f).unwrap();
            }
            framed.flush().unwrap();
            // Then read what the slow writer sends.
            let mut got = Vec::new();
            while let Some(f) = framed.recv().unwrap() {
                got.push(f);
            }
            got
        });
        // Slow reader: one byte per read, decoded by the core.
        let mut stream = framewire::stream::FramedStream::new(LengthPrefixed::new());
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while got.len() < expected.len() {
            assert_eq!(client.read(&mut byte).unwrap(), 1);
            assert_eq!(stream.handle_input(&byte).unwrap(), 1);
            while let Some(f) = stream.poll_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, expected);
        // Slow writer: one byte per write.
        let mut out = Vec::new();
        for f in &expected[..5] {
            out.extend_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
            out.extend_from_slice(f);
        }
        for b in &out {
            client.write_all(std::slice::from_ref(b)).unwrap();
        }
        client.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.join().unwrap(), expected[..5]);
    });
}

#[test]
fn framed_garbage_after_a_valid_frame() {
    with_deadline(|| {
        let (mut client, server) = tcp_pair();
        let mut framed = Framed::new(server, LengthPrefixed::new());
        client
            .write_all(b"\0\0\0\x02ok\xff\xff\xff\xffgarbage")
            .unwrap();
        assert_eq!(framed.recv().unwrap().as_deref(), Some(&b"ok"[..]));
        match framed.recv() {
            Err(Error::Protocol(ProtocolError::Frame(FrameError::FrameTooLong { len, max }))) => {
                assert_eq!((len, max), (0xffff_ffff + 4, 8 << 20));
            }
            other => panic!("expected FrameTooLong, got {other:?}"),
        }
        // Terminal: the same error again.
        assert!(matches!(framed.recv(), Err(Error::Protocol(_))));
        assert_eq!(framed.stats().frames_received, 1);
    });
}

// ----- packet connections -----

fn echo_builder() -> Builder {
    Builder::new().handler(|rq: Request| rq.payload)
}

#[test]
fn packet_reset_inside_a_packet_after_answered_requests() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        let server = echo_builder().start(server).unwrap();
        let mut raw = Raw::new(client, Config::default());
        let tags: Vec<u64> = (0..3u8).map(|i| raw.submit(0, vec![i; 10])).collect();
        raw.flush();
        let responses = raw.responses(3);
        for (i, tag) in tags.iter().enumerate() {
            assert_eq!(responses[tag], (true, Bytes::from(vec![i as u8; 10])));
        }
        // Half a packet (announces 40 bytes, sends 3), then a reset.
        raw.sock.write_all(&[40, 9, 2]).unwrap();
        eventually("the partial packet is read", || {
            server.stats().bytes_received >= 3 * 14 + 3
        });
        reset(raw.sock);
        let err = server.wait().unwrap_err();
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
    });
}

#[test]
fn packet_half_close_still_gets_every_response() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        // Slow handlers: the requests are still running at the half-close.
        let server = Builder::new()
            .handler(|rq: Request| {
                thread::sleep(Duration::from_millis(1));
                rq.payload
            })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        let tags: Vec<u64> = (0..200u32)
            .map(|i| raw.submit(0, i.to_be_bytes().to_vec()))
            .collect();
        raw.flush();
        raw.sock.shutdown(Shutdown::Write).unwrap();
        let responses = raw.responses(200);
        for (i, tag) in tags.iter().enumerate() {
            let want = Bytes::copy_from_slice(&(i as u32).to_be_bytes());
            assert_eq!(responses[tag], (true, want), "tag {tag}");
        }
        // Then the server's orderly end: ERQ, EOF.
        let rest = raw.drain();
        assert!(
            rest.contains(&Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            }),
            "{rest:?}"
        );
        server.wait().unwrap();
        assert_eq!(server.end_cause(), Some(EndCause::TransportEof));
        assert_eq!(server.stats().responses_sent, 200);
    });
}

#[test]
fn packet_slow_reader_gets_large_responses_intact() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        let server = Builder::new()
            .handler(|rq: Request| vec![rq.payload[0]; 16 * 1024])
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        raw.read_size = 1;
        let tags: Vec<u64> = (0..10u8).map(|i| raw.submit(0, vec![i])).collect();
        raw.flush();
        let responses = raw.responses(10);
        for (i, tag) in tags.iter().enumerate() {
            assert_eq!(
                responses[tag],
                (true, Bytes::from(vec![i as u8; 16 * 1024]))
            );
        }
        drop(raw);
        let _ = server.wait();
        assert_eq!(server.stats().responses_sent, 10);
    });
}

#[test]
fn packet_peer_that_never_reads_gets_back_pressure_and_everything_later() {
    with_deadline(|| {
        const PAYLOAD: usize = 64 * 1024;
        const MAX_TX: usize = 256 * 1024;
        let (client, server) = tcp_pair();
        let conn = Builder::new()
            .config(Config {
                max_transmit_buffer: MAX_TX,
                ..Config::default()
            })
            .start(client)
            .unwrap();
        // Submit until back-pressure shows (a submit cannot get room).
        let mut accepted = Vec::new();
        let mut blocked = false;
        for i in 0..1024u32 {
            let mut payload = vec![0u8; PAYLOAD];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            match conn.submit_with(0, 0, 0, payload, Some(Duration::from_millis(300))) {
                Ok(call) => accepted.push(call),
                Err(CallError::TimedOut) => {
                    blocked = true;
                    break;
                }
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert!(blocked, "1024 x 64 KiB accepted with nobody reading");
        let n = accepted.len();
        assert!(n > 0);
        // The calls stay pending: their requests are in our queue or the
        // sockets, nothing else. (Their own timeouts end them later.)
        drop(accepted);
        // The peer starts reading: every accepted request arrives, in order.
        let mut raw = Raw::new(
            server,
            Config {
                accept_requests: true,
                max_inflight_inbound: 4096,
                ..Config::default()
            },
        );
        let mut seen = 0u32;
        while (seen as usize) < n {
            match raw.next_event() {
                Some(Event::RequestReceived { payload, .. }) => {
                    assert_eq!(payload.len(), PAYLOAD);
                    assert_eq!(payload[..4], seen.to_be_bytes());
                    seen += 1;
                }
                Some(_) => {}
                None => panic!("stream ended after {seen} of {n} requests"),
            }
        }
        // Not an orderly close: the raw peer answers nothing.
        conn.abort();
        drop(conn);
        // Nothing beyond what was accepted was sent.
        let rest = raw.drain();
        assert!(
            !rest
                .iter()
                .any(|e| matches!(e, Event::RequestReceived { .. })),
            "{rest:?}"
        );
    });
}

#[test]
fn packet_garbage_after_a_valid_request_still_answers_it() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        let gate = Arc::new(Gate::default());
        let handler_gate = Arc::clone(&gate);
        let server = Builder::new()
            .handler(move |rq: Request| {
                handler_gate.wait();
                rq.payload
            })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        let tag = raw.submit(0, b"accepted".to_vec());
        raw.flush();
        eventually("the request is in flight", || {
            server.inflight_requests() == 1
        });
        // A length prefix of u64::MAX - 10, then junk.
        let (prefix, n) = framewire::varint::encode_array(u64::MAX - 10);
        raw.sock.write_all(&prefix[..n]).unwrap();
        raw.sock.write_all(b"junk").unwrap();
        eventually("the protocol error", || server.end_cause().is_some());
        assert_eq!(
            server.end_cause(),
            Some(EndCause::Protocol(PacketProtocolError::Packet(
                PacketError::TooLong {
                    len: u64::MAX,
                    max: 16 << 20
                }
            )))
        );
        gate.open();
        // The accepted request is still answered, then ERQ and EOF.
        let responses = raw.responses(1);
        assert_eq!(responses[&tag], (true, Bytes::from_static(b"accepted")));
        let rest = raw.drain();
        assert!(
            rest.contains(&Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            }),
            "{rest:?}"
        );
        let _ = server.wait();
        assert_eq!(server.stats().responses_sent, 1);
    });
}

#[test]
fn packet_flood_beyond_the_inflight_limit() {
    with_deadline(|| {
        const LIMIT_INFLIGHT: usize = 8;
        const N: u32 = 500;
        let (client, server) = tcp_pair();
        let gate = Arc::new(Gate::default());
        let handler_gate = Arc::clone(&gate);
        let server = Builder::new()
            .handler(move |rq: Request| {
                handler_gate.wait();
                rq.payload
            })
            .workers(2)
            .config(Config {
                max_inflight_inbound: LIMIT_INFLIGHT,
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
            .map(|i| raw.submit(0, i.to_be_bytes().to_vec()))
            .collect();
        raw.flush();
        eventually("the limit is reached", || {
            server.inflight_requests() == LIMIT_INFLIGHT
        });
        // The connection stopped reading: no more accepted.
        thread::sleep(Duration::from_millis(50));
        assert_eq!(server.inflight_requests(), LIMIT_INFLIGHT);
        assert_eq!(server.stats().requests_received, LIMIT_INFLIGHT as u64);
        gate.open();
        let responses = raw.responses(N as usize);
        for (i, tag) in tags.iter().enumerate() {
            let want = Bytes::copy_from_slice(&(i as u32).to_be_bytes());
            assert_eq!(responses[tag], (true, want), "tag {tag}");
        }
        let stats = server.stats();
        assert_eq!(
            (stats.requests_received, stats.requests_refused),
            (u64::from(N), 0)
        );
    });
}

#[test]
fn packet_responses_to_unknown_tags_are_counted_and_ignored() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        let conn = PacketConnection::new(client).unwrap();
        let mut raw = Raw::new(server, Config::default());
        // Responses nobody asked for.
        for tag in [2, 99, 1 << 40] {
            let p = Packet::response(0, tag, true, 0, b"stray").unwrap();
            raw.sock.write_all(&packet(&p)).unwrap();
        }
        eventually("three unknown responses", || {
            conn.stats().unknown_responses == 3
        });
        // The connection goes on: a real call is answered.
        let call = conn.submit(0, 0, &b"real"[..]).unwrap();
        let Some(Event::RequestReceived {
            channel,
            tag,
            payload,
            ..
        }) = raw.next_event()
        else {
            panic!("expected the request");
        };
        raw.conn.respond(channel, tag, 0, payload.clone()).unwrap();
        raw.flush();
        assert_eq!(call.tag(), tag);
        assert_eq!(&payload[..], b"real");
        let response = call.wait().unwrap();
        assert!(response.ok);
        assert_eq!(&response.payload[..], b"real");
        assert_eq!(conn.stats().unknown_responses, 3);
        assert!(!conn.is_finished());
    });
}

#[test]
fn packet_requests_after_erq_are_refused() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        let called = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&called);
        let server = Builder::new()
            .handler(move |rq: Request| {
                seen.lock().unwrap().push(rq.tag);
                rq.payload
            })
            .start(server)
            .unwrap();
        let mut raw = Raw::new(client, Config::default());
        let before = raw.submit(0, b"before".to_vec());
        raw.flush();
        // ERQ by hand (our core does not know it was sent, so it still
        // submits), then two requests.
        raw.sock.write_all(&ERQ_BYTES).unwrap();
        let after: Vec<u64> = (0..2).map(|_| raw.submit(0, b"after".to_vec())).collect();
        raw.flush();
        let responses = raw.responses(3);
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
        assert_eq!(*called.lock().unwrap(), [before]);
        assert!(server.peer_ended_requests());
        let stats = server.stats();
        assert_eq!((stats.requests_received, stats.requests_refused), (1, 2));
        // The connection is still usable in the other direction until EOF.
        raw.sock
            .write_all(&framewire::packet::wire::EOF_BYTES)
            .unwrap();
        let rest = raw.drain();
        assert!(
            rest.contains(&Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            }),
            "{rest:?}"
        );
        server.wait().unwrap();
        assert_eq!(server.end_cause(), Some(EndCause::EofPacket));
    });
}

/// A peer that floods requests the connection refuses itself and never
/// reads, then resets: the refusals fill the socket and then the core's
/// transmit queue, so the core stops taking input behind the next refusal.
/// The reset must still end the waiting call (`Cancelled`) instead of
/// leaving it to wait for transmit room that can never come (the core's
/// `handle_transport_lost`; with `handle_eof` alone it waited forever:
/// this test failed so before the reader called it).
#[test]
fn packet_reset_while_refusals_wait_for_room_ends_waiting_calls() {
    with_deadline(|| {
        let (client, server) = tcp_pair();
        // Small socket buffers: the refusals fill them quickly.
        rustix::net::sockopt::set_socket_send_buffer_size(client.as_fd(), 4096).unwrap();
        rustix::net::sockopt::set_socket_recv_buffer_size(server.as_fd(), 4096).unwrap();
        let conn = Builder::new()
            .config(Config {
                max_packet_len: 1024,
                max_receive_buffer: 2048,
                max_transmit_buffer: 64,
                ..Config::default()
            })
            .start(client)
            .unwrap();
        let call = conn.submit(0, 0, &b"never answered"[..]).unwrap();
        let mut raw = server;
        // Requests on a channel nobody opened, until the connection stops
        // taking them (the socket stays full).
        let mut flood = Vec::new();
        for tag in 0..4096u64 {
            flood.extend(packet(&Packet::request(9, tag, 0, 0, b"").unwrap()));
        }
        raw.set_nonblocking(true).unwrap();
        let mut written = 0usize;
        let mut blocked = 0;
        while blocked < 100 {
            assert!(written < 64 << 20, "the connection never stopped reading");
            match raw.write(&flood) {
                Ok(n) => {
                    written += n;
                    blocked = 0;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    blocked += 1;
                    thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(conn.stats().requests_refused > 0);
        assert!(call.try_wait().is_none());
        reset(raw);
        let outcome = call
            .wait_timeout(Duration::from_secs(30))
            .expect("the waiting call never ended after the reset");
        assert!(
            matches!(outcome, Err(CallError::Cancelled { .. })),
            "{outcome:?}"
        );
        assert!(conn.wait().is_err(), "not an orderly end");
        assert!(
            matches!(conn.end_cause(), Some(EndCause::Io(_))),
            "{:?}",
            conn.end_cause()
        );
    });
}
