//! The blocking packet connection over real sockets: calls, concurrency,
//! pipelining, the handler contract, failures, timeouts, close ordering,
//! backpressure and the multi-client server. Every test runs under a
//! deadline, so a hang fails it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire::packet::reason;
use framewire::packet::SubmitError;
use framewire_std::packet::{
    Builder, CallError, CloseError, Config, EndCause, PacketConnection, PacketServer, Reply,
    Request,
};
use framewire_std::server::Server;

/// Runs `body` on a thread; fails the test if it takes longer than `limit`.
fn with_deadline<T: Send + 'static>(
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            handle.join().expect("test body thread");
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sender dropped without a value or a panic"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test did not finish within {limit:?} (hang)")
        }
    }
}

const LIMIT: Duration = Duration::from_secs(30);

/// The interop handler table (see tests/python/packetstream_peer.py):
/// 0 echo, 1 reverse, 2 (flags, payload), 3 fails, 4 text, 5 nothing,
/// 6 flags = len, 7 slow echo, other: fails.
fn table(rq: Request) -> Result<Reply, String> {
    match rq.rq_type {
        0 => Ok(rq.payload.into()),
        1 => Ok(rq.payload.iter().rev().copied().collect::<Vec<u8>>().into()),
        2 => Ok((rq.flags, rq.payload).into()),
        3 => Err("rq_type 3 always fails".into()),
        4 => std::str::from_utf8(&rq.payload)
            .map(|t| format!("text:{t}").into())
            .map_err(|e| e.to_string()),
        5 => Ok(().into()),
        6 => Ok((rq.payload.len() as u64).into()),
        7 => {
            thread::sleep(Duration::from_millis(200));
            Ok(rq.payload.into())
        }
        other => Err(format!("unknown rq_type {other}")),
    }
}

fn table_server() -> Builder {
    Builder::new().handler(table)
}

fn unix_pair(server: &Builder) -> (PacketConnection, PacketConnection) {
    let (a, b) = UnixStream::pair().unwrap();
    let server = server.start(b).unwrap();
    let client = PacketConnection::new(a).unwrap();
    (client, server)
}

fn tcp_pair(server: &Builder) -> (PacketConnection, PacketConnection) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = PacketConnection::connect(addr).unwrap();
    let (stream, _) = listener.accept().unwrap();
    (client, server.start(stream).unwrap())
}

fn expect_ok(conn: &PacketConnection, rq_type: u64, flags: u64, payload: &[u8]) -> (u64, Bytes) {
    let r = conn.call(rq_type, flags, payload.to_vec()).unwrap();
    assert!(r.ok, "rq_type {rq_type}: failure {:?}", r.failure_reason());
    (r.flags, r.payload)
}

fn check_table(client: &PacketConnection) {
    assert_eq!(
        expect_ok(client, 0, 0, b"hello"),
        (0, Bytes::from_static(b"hello"))
    );
    assert_eq!(
        expect_ok(client, 1, 0, b"abc"),
        (0, Bytes::from_static(b"cba"))
    );
    assert_eq!(
        expect_ok(client, 2, 63, b"f"),
        (63, Bytes::from_static(b"f"))
    );
    let r = client.call(3, 0, &b"x"[..]).unwrap();
    assert_eq!((r.ok, r.flags), (false, 0));
    assert_eq!(
        r.failure_reason().as_deref(),
        Some(reason::EXCEPTION_DURING_HANDLER)
    );
    assert_eq!(
        expect_ok(client, 4, 0, "hé".as_bytes()),
        (0, Bytes::from("text:hé"))
    );
    assert_eq!(expect_ok(client, 5, 9, b"ignored"), (0, Bytes::new()));
    assert_eq!(expect_ok(client, 6, 0, &[0; 300]), (300, Bytes::new()));
    assert_eq!(
        expect_ok(client, 7, 0, b"slow"),
        (0, Bytes::from_static(b"slow"))
    );
    let r = client.call(4, 0, &b"\xff"[..]).unwrap();
    assert_eq!(
        r.failure_reason().as_deref(),
        Some(reason::EXCEPTION_DURING_HANDLER)
    );
}

#[test]
fn unix_pair_call_and_response() {
    with_deadline(LIMIT, || {
        let (client, server) = unix_pair(&table_server());
        check_table(&client);
        assert_eq!(client.stats().requests_sent, 9);
        client.close().unwrap();
        server.wait().unwrap();
        assert_eq!(client.end_cause(), Some(EndCause::EofPacket));
        assert_eq!(server.end_cause(), Some(EndCause::EofPacket));
        assert_eq!(server.stats().requests_received, 9);
    });
}

#[test]
fn tcp_loopback_call_and_response() {
    with_deadline(LIMIT, || {
        let (client, server) = tcp_pair(&table_server());
        check_table(&client);
        // The server side can call too: the connection is symmetric.
        let r = server.call(0, 0, &b"to the client"[..]).unwrap();
        assert_eq!(
            r.failure_reason().as_deref(),
            Some(reason::NO_REQUEST_HANDLER)
        );
        drop(client); // an orderly close
        server.wait().unwrap();
    });
}

#[test]
fn payload_sizes_up_to_one_mebibyte() {
    with_deadline(LIMIT, || {
        let (client, _server) = tcp_pair(&table_server());
        for size in [
            0usize,
            1,
            127,
            128,
            4095,
            4096,
            4097,
            65_535,
            65_536,
            300_000,
            1 << 20,
        ] {
            let payload: Vec<u8> = (0..size).map(|i| (i * 131 + 7) as u8).collect();
            let (flags, echoed) = expect_ok(&client, 2, size as u64 % 64, &payload);
            assert_eq!(flags, size as u64 % 64);
            assert_eq!(echoed.len(), size);
            assert!(echoed == payload, "payload of {size} bytes changed");
            let (_, reversed) = expect_ok(&client, 1, 0, &payload);
            assert!(reversed.iter().eq(payload.iter().rev()));
        }
    });
}

#[test]
fn many_threads_share_one_connection() {
    with_deadline(Duration::from_secs(60), || {
        let server = Builder::new().handler(|rq: Request| {
            // Answer with the request's flags doubled and its payload
            // reversed, so a misrouted response shows.
            (
                rq.flags * 2,
                rq.payload.iter().rev().copied().collect::<Vec<u8>>(),
            )
        });
        let (client, server) = tcp_pair(&server);
        thread::scope(|s| {
            for t in 0..8u64 {
                let client = &client;
                s.spawn(move || {
                    for i in 0..500u64 {
                        let id = t * 1_000_000 + i;
                        let payload = format!("thread {t} call {i}");
                        let r = client.call(0, id, payload.clone()).unwrap();
                        assert!(r.ok);
                        assert_eq!(r.flags, id * 2);
                        let want: Vec<u8> = payload.bytes().rev().collect();
                        assert_eq!(&r.payload[..], &want[..]);
                    }
                });
            }
        });
        assert_eq!(client.stats().responses_received, 4000);
        assert_eq!(client.stats().unknown_responses, 0);
        assert_eq!(client.pending_calls(), 0);
        client.close().unwrap();
        server.wait().unwrap();
        assert_eq!(server.stats().requests_received, 4000);
    });
}

#[test]
fn thousand_pipelined_submits() {
    with_deadline(LIMIT, || {
        let (client, server) = unix_pair(&table_server());
        let calls: Vec<_> = (0..1000u64)
            .map(|i| {
                let payload = format!("request {i}").into_bytes();
                (i, client.submit(2, i, payload).unwrap())
            })
            .collect();
        assert!(client.pending_calls() <= 1000);
        for (i, call) in calls {
            let tag = call.tag();
            assert_eq!(tag, i + 2, "channel 0 tags count up from 2");
            let r = call.wait().unwrap();
            assert!(r.ok);
            assert_eq!(r.flags, i);
            assert_eq!(r.payload, format!("request {i}").into_bytes());
        }
        client.close().unwrap();
        server.wait().unwrap();
        assert_eq!(server.stats().requests_received, 1000);
    });
}

#[test]
fn every_handler_return_kind() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|rq: Request| -> Result<Reply, &'static str> {
            Ok(match rq.rq_type {
                0 => ().into(),
                1 => 7u64.into(),
                2 => vec![1u8, 2, 3].into(),
                3 => Bytes::from_static(b"bytes").into(),
                4 => (&b"static"[..]).into(),
                5 => String::from("string").into(),
                6 => "str".into(),
                7 => (5u64, Bytes::from_static(b"pair")).into(),
                8 => (6u64, vec![9u8]).into(),
                9 => (u64::MAX >> 3, &b"big flags"[..]).into(),
                // One bit too many for a response's flags: a failure.
                10 => (u64::MAX >> 2).into(),
                _ => return Err("no such type"),
            })
        });
        let (client, _server) = unix_pair(&server);
        let want: [(u64, &[u8]); 10] = [
            (0, b""),
            (7, b""),
            (0, &[1, 2, 3]),
            (0, b"bytes"),
            (0, b"static"),
            (0, b"string"),
            (0, b"str"),
            (5, b"pair"),
            (6, &[9]),
            (u64::MAX >> 3, b"big flags"),
        ];
        for (rq_type, (flags, payload)) in want.into_iter().enumerate() {
            let r = client.call(rq_type as u64, 0, Bytes::new()).unwrap();
            assert!(r.ok, "rq_type {rq_type}");
            assert_eq!(
                (r.flags, &r.payload[..]),
                (flags, payload),
                "rq_type {rq_type}"
            );
        }
        let r = client.call(10, 0, Bytes::new()).unwrap();
        assert_eq!(
            r.failure_reason().as_deref(),
            Some(reason::EXCEPTION_DURING_HANDLER)
        );
    });
}

/// A stateful handler object.
struct Counter(AtomicUsize);

impl framewire_std::packet::Handler for Counter {
    fn handle(&self, _: Request) -> Result<Reply, framewire_std::packet::HandlerError> {
        Ok((self.0.fetch_add(1, Ordering::SeqCst) as u64).into())
    }
}

#[test]
fn plain_closures_and_handler_objects() {
    with_deadline(LIMIT, || {
        // A closure returning a plain value (no Result).
        let (client, _server) = unix_pair(&Builder::new().handler(|rq: Request| rq.flags + 1));
        assert_eq!(client.call(0, 41, Bytes::new()).unwrap().flags, 42);

        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let (client, _server) = unix_pair(&Builder::new().handler_arc(counter.clone()));
        for i in 0..5 {
            assert_eq!(client.call(0, 0, Bytes::new()).unwrap().flags, i);
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn handler_error_and_panic_become_failures() {
    with_deadline(LIMIT, || {
        let server = Builder::new()
            .workers(1)
            .handler(|rq: Request| -> Result<u64, String> {
                match rq.rq_type {
                    0 => Err("refused".into()),
                    1 => panic!("handler panics (expected in this test)"),
                    _ => Ok(rq.rq_type),
                }
            });
        let (client, server) = unix_pair(&server);
        for _ in 0..3 {
            for rq_type in [0, 1] {
                let r = client.call(rq_type, 0, Bytes::new()).unwrap();
                assert!(!r.ok);
                assert_eq!(r.flags, 0);
                assert_eq!(&r.payload[..], reason::EXCEPTION_DURING_HANDLER.as_bytes());
            }
            // The (single) worker survived its panics.
            assert_eq!(client.call(2, 0, Bytes::new()).unwrap().flags, 2);
        }
        assert_eq!(server.worker_threads(), 1);
    });
}

#[test]
fn a_handler_reply_over_the_limit_is_a_failure() {
    with_deadline(LIMIT, || {
        let config = Config {
            max_packet_len: 1024,
            max_receive_buffer: 64 * 1024,
            ..Config::default()
        };
        let server = Builder::new()
            .config(config)
            .handler(|rq: Request| vec![0u8; rq.flags as usize]);
        let (client, _server) = unix_pair(&server);
        assert_eq!(
            client.call(0, 1000, Bytes::new()).unwrap().payload.len(),
            1000
        );
        let r = client.call(0, 2000, Bytes::new()).unwrap();
        assert_eq!(
            r.failure_reason().as_deref(),
            Some(reason::EXCEPTION_DURING_HANDLER)
        );
    });
}

#[test]
fn no_handler_answers_no_request_handler() {
    with_deadline(LIMIT, || {
        let (a, b) = UnixStream::pair().unwrap();
        let client = PacketConnection::new(a).unwrap();
        let server = PacketConnection::new(b).unwrap();
        for _ in 0..3 {
            let r = client.call(0, 0, &b"anyone?"[..]).unwrap();
            assert!(!r.ok);
            assert_eq!(
                r.failure_reason().as_deref(),
                Some(reason::NO_REQUEST_HANDLER)
            );
        }
        assert_eq!(server.stats().requests_refused, 3);
        client.close().unwrap();
        server.wait().unwrap();
    });
}

/// Reads from a raw socket until EOF.
fn read_to_end(mut s: UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    out
}

#[test]
fn slow_request_then_erq_eof_gives_erq_response_eof() {
    // WIRE.md: the original server's output for [request 30 (slow), ERQ, EOF].
    with_deadline(LIMIT, || {
        let (mut raw, b) = UnixStream::pair().unwrap();
        let server = table_server().start(b).unwrap();
        // request tag 30, rq_type 7 (wire 8), payload "slow"; ERQ; EOF
        raw.write_all(&[0x07, 0x1e, 0x02, 0x08]).unwrap();
        raw.write_all(b"slow").unwrap();
        raw.write_all(&[0x03, 0x01, 0x02, 0x00, 0x03, 0x00, 0x02, 0x00])
            .unwrap();
        let got = read_to_end(raw);
        assert_eq!(
            got,
            [
                &[0x03, 0x01, 0x02, 0x00, 0x06, 0x1e, 0x04][..],
                b"slow",
                &[0x03, 0x00, 0x02, 0x00]
            ]
            .concat()
        );
        server.wait().unwrap();
        assert_eq!(server.end_cause(), Some(EndCause::EofPacket));
    });
}

#[test]
fn responses_of_running_handlers_go_out_before_eof() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|rq: Request| {
            thread::sleep(Duration::from_millis(u64::from(rq.payload[0]) * 20));
            rq.payload
        });
        let (client, server) = unix_pair(&server);
        // Slowest first: they complete (and are answered) in reverse order.
        let calls: Vec<_> = (0..4u8)
            .rev()
            .map(|i| client.submit(0, 0, vec![i]).unwrap())
            .collect();
        // Close right away: ERQ and EOF go out, the server finishes its
        // running handlers and answers them before its EOF.
        let closer = thread::spawn({
            let started = Instant::now();
            move || {
                client.close().unwrap();
                (client, started.elapsed())
            }
        });
        for (i, call) in (0..4u8).rev().zip(calls) {
            assert_eq!(&call.wait().unwrap().payload[..], &[i]);
        }
        let (client, took) = closer.join().unwrap();
        assert!(
            took >= Duration::from_millis(60),
            "the close waited for the peer: {took:?}"
        );
        server.wait().unwrap();
        assert_eq!(server.stats().responses_sent, 4);
        assert_eq!(client.stats().responses_received, 4);
        // After closing, calls fail without sending anything.
        assert!(matches!(
            client.call(0, 0, Bytes::new()),
            Err(CallError::Submit(
                SubmitError::RequestsEnded | SubmitError::PeerGone
            ))
        ));
    });
}

#[test]
fn peer_transport_closing_cancels_outstanding_calls() {
    with_deadline(LIMIT, || {
        let (a, mut raw) = UnixStream::pair().unwrap();
        let client = PacketConnection::new(a).unwrap();
        let calls: Vec<_> = (0..5)
            .map(|_| client.submit(0, 0, &b"lost"[..]).unwrap())
            .collect();
        // Wait for the requests to arrive, then vanish without an EOF packet.
        let mut got = vec![0u8; 5 * 8];
        raw.read_exact(&mut got).unwrap();
        drop(raw);
        for call in calls {
            assert_eq!(
                call.wait(),
                Err(CallError::Cancelled {
                    cause: EndCause::TransportEof
                })
            );
        }
        assert_eq!(client.stats().cancelled, 5);
        // New calls fail at once.
        assert!(matches!(
            client.call(0, 0, Bytes::new()),
            Err(CallError::Submit(SubmitError::PeerGone) | CallError::Failed { .. })
        ));
        // The close ends at once; writing our EOF may fail since the peer is gone.
        let _ = client.close();
        assert!(client.is_finished());
    });
}

#[test]
fn peer_eof_packet_cancels_outstanding_calls() {
    with_deadline(LIMIT, || {
        let (a, mut raw) = UnixStream::pair().unwrap();
        let client = PacketConnection::new(a).unwrap();
        let call = client.submit(0, 0, &b"x"[..]).unwrap();
        let mut got = [0u8; 5];
        raw.read_exact(&mut got).unwrap();
        assert_eq!(got, [0x04, 0x02, 0x02, 0x01, b'x']);
        raw.write_all(&[0x03, 0x00, 0x02, 0x00]).unwrap(); // EOF packet
        assert_eq!(
            call.wait(),
            Err(CallError::Cancelled {
                cause: EndCause::EofPacket
            })
        );
        // Our side finishes by itself: ERQ then EOF, then the transport's end.
        raw.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            read_to_end(raw),
            [0x03, 0x01, 0x02, 0x00, 0x03, 0x00, 0x02, 0x00]
        );
        client.wait().unwrap();
    });
}

#[test]
fn peer_protocol_error_cancels_outstanding_calls() {
    with_deadline(LIMIT, || {
        let (a, mut raw) = UnixStream::pair().unwrap();
        let client = PacketConnection::new(a).unwrap();
        let call = client.submit(0, 0, Bytes::new()).unwrap();
        // A request with wire type 0 that is not EOF/ERQ: malformed marker.
        raw.write_all(&[0x03, 0x07, 0x02, 0x00]).unwrap();
        let err = call.wait().unwrap_err();
        assert!(
            matches!(
                err,
                CallError::Cancelled {
                    cause: EndCause::Protocol(_)
                }
            ),
            "{err:?}"
        );
        drop(raw);
        let _ = client.close();
        assert!(matches!(client.end_cause(), Some(EndCause::Protocol(_))));
    });
}

#[test]
fn call_timeouts() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|rq: Request| {
            thread::sleep(Duration::from_millis(rq.flags));
            rq.payload
        });
        let (client, _server) = unix_pair(&server);
        let started = Instant::now();
        // The handler answers after 1.5 s: the call must end at its own
        // deadline, before the answer exists (no bound tighter than that,
        // so a loaded machine cannot fail it).
        let r = client.call_with(0, 0, 1500, &b"late"[..], Some(Duration::from_millis(50)));
        assert_eq!(r, Err(CallError::TimedOut));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_millis(1500),
            "{took:?}"
        );
        assert_eq!(client.pending_calls(), 0);
        // A fast call meanwhile is unaffected.
        assert_eq!(
            &client
                .call_with(0, 0, 0, &b"quick"[..], Some(Duration::from_secs(5)))
                .unwrap()
                .payload[..],
            b"quick"
        );
        // The late response arrives and is ignored.
        let until = Instant::now() + Duration::from_secs(10);
        while client.stats().unknown_responses == 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(client.stats().unknown_responses, 1);
        assert_eq!(client.stats().timed_out, 1);

        // The builder's default timeout applies to call and submit.
        let (a, b) = UnixStream::pair().unwrap();
        let _server = Builder::new()
            .handler(|_: Request| thread::sleep(Duration::from_millis(300)))
            .start(b)
            .unwrap();
        let client = Builder::new()
            .call_timeout(Some(Duration::from_millis(30)))
            .start(a)
            .unwrap();
        assert_eq!(client.call(0, 0, Bytes::new()), Err(CallError::TimedOut));
        let pending = client.submit(0, 0, Bytes::new()).unwrap();
        assert_eq!(pending.wait(), Err(CallError::TimedOut));
    });
}

#[test]
fn waiting_with_a_limit_does_not_end_the_call() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|rq: Request| {
            thread::sleep(Duration::from_millis(200));
            rq.payload
        });
        let (client, _server) = unix_pair(&server);
        let call = client.submit(0, 0, &b"patience"[..]).unwrap();
        assert_eq!(call.try_wait(), None);
        assert_eq!(call.wait_timeout(Duration::from_millis(20)), None);
        let r = call.wait_timeout(Duration::from_secs(5)).unwrap().unwrap();
        assert_eq!(&r.payload[..], b"patience");
        // The outcome stays available.
        assert_eq!(call.try_wait(), Some(Ok(r.clone())));
        assert_eq!(call.wait(), Ok(r));
    });
}

#[test]
fn dropping_a_pending_call_abandons_it() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|rq: Request| {
            thread::sleep(Duration::from_millis(100));
            rq.payload
        });
        let (client, _server) = unix_pair(&server);
        let call = client.submit(0, 0, &b"never mind"[..]).unwrap();
        assert_eq!(client.pending_calls(), 1);
        drop(call);
        assert_eq!(client.pending_calls(), 0);
        let until = Instant::now() + Duration::from_secs(5);
        while client.stats().unknown_responses == 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(client.stats().unknown_responses, 1);
        // The connection carries on.
        assert_eq!(
            &client.call(0, 0, &b"still here"[..]).unwrap().payload[..],
            b"still here"
        );
        // Dropping a finished call changes nothing.
        let call = client.submit(0, 0, &b"done"[..]).unwrap();
        while call.try_wait().is_none() {
            thread::sleep(Duration::from_millis(1));
        }
        drop(call);
        assert_eq!(client.stats().unknown_responses, 1);
    });
}

#[test]
fn close_is_bounded_when_the_peer_never_closes() {
    with_deadline(LIMIT, || {
        let (a, raw) = UnixStream::pair().unwrap();
        let client = Builder::new()
            .close_timeout(Duration::from_millis(200))
            .start(a)
            .unwrap();
        let call = client.submit(0, 0, Bytes::new()).unwrap();
        let started = Instant::now();
        assert_eq!(
            client.close(),
            Err(CloseError::TimedOut {
                timeout: Duration::from_millis(200)
            })
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(
            call.wait(),
            Err(CallError::Cancelled {
                cause: EndCause::Aborted
            })
        );
        // The peer saw our request, ERQ and EOF, then the transport's end.
        assert_eq!(
            read_to_end(raw),
            [0x03, 0x02, 0x02, 0x01, 0x03, 0x01, 0x02, 0x00, 0x03, 0x00, 0x02, 0x00]
        );
        drop(client); // no second wait
    });
}

#[test]
fn abort_cancels_everything_at_once() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|_: Request| thread::sleep(Duration::from_secs(60)));
        let (client, server) = unix_pair(&server);
        let calls: Vec<_> = (0..3)
            .map(|_| client.submit(0, 0, Bytes::new()).unwrap())
            .collect();
        client.abort();
        for call in calls {
            assert_eq!(
                call.wait(),
                Err(CallError::Cancelled {
                    cause: EndCause::Aborted
                })
            );
        }
        assert!(matches!(
            client.close(),
            Err(CloseError::Failed {
                cause: EndCause::Aborted
            })
        ));
        // The server's handlers are still sleeping: its close gives up on them.
        server.abort();
        assert!(server.is_finished());
    });
}

#[test]
fn end_requests_then_serve_on() {
    with_deadline(LIMIT, || {
        let (client, server) = unix_pair(&table_server());
        let call = client.submit(7, 0, &b"in flight"[..]).unwrap();
        client.end_requests();
        assert_eq!(
            client.call(0, 0, Bytes::new()),
            Err(CallError::Submit(SubmitError::RequestsEnded))
        );
        // Our request in flight is still answered.
        assert_eq!(&call.wait().unwrap().payload[..], b"in flight");
        let until = Instant::now() + Duration::from_secs(5);
        while !server.peer_ended_requests() && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(server.peer_ended_requests());
        client.close().unwrap();
    });
}

#[test]
fn channels_opened_on_both_sides() {
    with_deadline(LIMIT, || {
        let (client, server) = unix_pair(&table_server());
        client.open_channel(5).unwrap();
        server.open_channel(5).unwrap();
        let call = client.submit_with(5, 0, 0, &b"on five"[..], None).unwrap();
        assert_eq!((call.channel(), call.tag()), (5, 0));
        assert_eq!(&call.wait().unwrap().payload[..], b"on five");
        // A channel the peer has not opened: refused by the peer's core.
        client.open_channel(6).unwrap();
        let r = client.call_with(6, 0, 0, Bytes::new(), None).unwrap();
        assert_eq!(r.failure_reason().as_deref(), Some(reason::UNKNOWN_CHANNEL));
        assert_eq!(
            client.call_with(7, 0, 0, Bytes::new(), None),
            Err(CallError::Submit(SubmitError::UnknownChannel {
                channel: 7
            }))
        );
    });
}

#[test]
fn both_sides_call_each_other_with_large_payloads() {
    // Both ends serve and call at once with payloads larger than the socket
    // buffers: a driver whose reader blocks on writes would deadlock here.
    with_deadline(Duration::from_secs(60), || {
        let echo = Builder::new().handler(|rq: Request| rq.payload);
        let (a, b) = UnixStream::pair().unwrap();
        let left = echo.start(a).unwrap();
        let right = echo.start(b).unwrap();
        let payload = Bytes::from(
            (0..256 * 1024)
                .map(|i| (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        thread::scope(|s| {
            for conn in [&left, &right, &left, &right] {
                let payload = payload.clone();
                s.spawn(move || {
                    let calls: Vec<_> = (0..8)
                        .map(|_| conn.submit(0, 0, payload.clone()).unwrap())
                        .collect();
                    for call in calls {
                        assert_eq!(call.wait().unwrap().payload, payload);
                    }
                });
            }
        });
        left.close().unwrap();
        right.wait().unwrap();
    });
}

#[test]
fn backpressure_bounds_queued_requests() {
    with_deadline(LIMIT, || {
        struct Gate {
            open: Mutex<bool>,
            changed: Condvar,
        }
        let gate = Arc::new(Gate {
            open: Mutex::new(false),
            changed: Condvar::new(),
        });
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let server = Builder::new()
            .workers(2)
            .config(Config {
                max_inflight_inbound: 4,
                ..Config::default()
            })
            .handler({
                let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
                move |rq: Request| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let mut open = gate.open.lock().unwrap();
                    while !*open {
                        open = gate.changed.wait(open).unwrap();
                    }
                    drop(open);
                    running.fetch_sub(1, Ordering::SeqCst);
                    rq.payload
                }
            });
        let (client, server) = unix_pair(&server);
        let calls: Vec<_> = (0..100u32)
            .map(|i| client.submit(0, 0, i.to_be_bytes().to_vec()).unwrap())
            .collect();
        // Two handlers run, two requests wait for them; the rest stay unread.
        let until = Instant::now() + Duration::from_secs(5);
        while (server.inflight_requests() < 4 || running.load(Ordering::SeqCst) < 2)
            && Instant::now() < until
        {
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(100));
        assert_eq!(server.inflight_requests(), 4);
        assert_eq!(server.stats().requests_received, 4);
        assert_eq!(running.load(Ordering::SeqCst), 2);
        assert_eq!(server.worker_threads(), 2);
        *gate.open.lock().unwrap() = true;
        gate.changed.notify_all();
        for (i, call) in (0..100u32).zip(calls) {
            assert_eq!(&call.wait().unwrap().payload[..], &i.to_be_bytes());
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(server.stats().requests_received, 100);
        assert!(server.inflight_requests() == 0);
    });
}

#[test]
fn submit_waits_for_room_when_too_many_are_pending() {
    with_deadline(LIMIT, || {
        let server = Builder::new().handler(|rq: Request| {
            thread::sleep(Duration::from_millis(2));
            rq.payload
        });
        let (a, b) = UnixStream::pair().unwrap();
        let _server = server.start(b).unwrap();
        let client = Builder::new()
            .config(Config {
                max_pending_outbound: 8,
                ..Config::default()
            })
            .start(a)
            .unwrap();
        // 100 submits with at most 8 waiting: later submits wait for earlier
        // responses instead of failing.
        let calls: Vec<_> = (0..100u8)
            .map(|i| client.submit(0, 0, vec![i]).unwrap())
            .collect();
        for (i, call) in (0..100u8).zip(calls) {
            assert_eq!(&call.wait().unwrap().payload[..], &[i]);
        }
        // With a timeout, waiting for room is bounded by it: the room comes
        // only when the handler answers, 2 s later (the bound below is loose
        // so a loaded machine cannot fail it).
        let server = Builder::new().handler(|_: Request| thread::sleep(Duration::from_secs(2)));
        let (a, b) = UnixStream::pair().unwrap();
        let _server = server.start(b).unwrap();
        let client = Builder::new()
            .config(Config {
                max_pending_outbound: 1,
                ..Config::default()
            })
            .start(a)
            .unwrap();
        let _first = client.submit(0, 0, Bytes::new()).unwrap();
        let started = Instant::now();
        assert!(matches!(
            client.submit_with(0, 0, 0, Bytes::new(), Some(Duration::from_millis(50))),
            Err(CallError::TimedOut)
        ));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    });
}

#[test]
fn server_with_many_clients() {
    with_deadline(Duration::from_secs(60), || {
        let server = PacketServer::serve(
            Server::bind("127.0.0.1:0").unwrap().max_connections(8),
            table_server(),
        )
        .unwrap();
        let addr = server.local_addr();
        thread::scope(|s| {
            for c in 0..6u64 {
                s.spawn(move || {
                    let client = PacketConnection::connect(addr).unwrap();
                    for i in 0..200u64 {
                        let payload = format!("client {c} call {i}");
                        let r = client.call(2, c * 1000 + i, payload.clone()).unwrap();
                        assert_eq!(
                            (r.flags, &r.payload[..]),
                            (c * 1000 + i, payload.as_bytes())
                        );
                    }
                    client.close().unwrap();
                });
            }
        });
        let until = Instant::now() + Duration::from_secs(5);
        while server.served_connections() < 6 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.served_connections(), 6);
        server.shutdown();
    });
}

#[test]
fn server_shutdown_closes_connected_clients() {
    with_deadline(LIMIT, || {
        let server =
            PacketServer::serve(Server::bind("127.0.0.1:0").unwrap(), table_server()).unwrap();
        let client = PacketConnection::connect(server.local_addr()).unwrap();
        let idle = PacketConnection::connect(server.local_addr()).unwrap();
        // A slow request in flight when the server shuts down is answered
        // before the server's EOF.
        let call = client.submit(7, 0, &b"finish me"[..]).unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while server.active_connections() < 2 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(50));
        server.shutdown();
        assert_eq!(&call.wait().unwrap().payload[..], b"finish me");
        // Both clients saw the server's EOF and finished their side by themselves.
        client.wait().unwrap();
        idle.wait().unwrap();
        assert_eq!(idle.end_cause(), Some(EndCause::EofPacket));
        assert!(matches!(
            idle.call(0, 0, Bytes::new()),
            Err(CallError::Submit(SubmitError::PeerGone))
        ));
    });
}

#[test]
fn a_client_that_just_disconnects_ends_its_server_connection() {
    with_deadline(LIMIT, || {
        let server =
            PacketServer::serve(Server::bind("127.0.0.1:0").unwrap(), table_server()).unwrap();
        let mut raw = TcpStream::connect(server.local_addr()).unwrap();
        // request tag 2, rq_type 0, "hi"
        raw.write_all(&[0x05, 0x02, 0x02, 0x01, b'h', b'i'])
            .unwrap();
        let mut got = [0u8; 5];
        raw.read_exact(&mut got).unwrap();
        assert_eq!(got, [0x04, 0x02, 0x04, b'h', b'i']);
        drop(raw);
        let until = Instant::now() + Duration::from_secs(5);
        while server.served_connections() < 1 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.served_connections(), 1);
        assert_eq!(server.active_connections(), 0);
        server.shutdown();
    });
}

#[test]
fn dropping_the_connection_closes_in_order() {
    with_deadline(LIMIT, || {
        let (a, raw) = UnixStream::pair().unwrap();
        let conn = PacketConnection::new(a).unwrap();
        let peer = thread::spawn(move || {
            let mut raw = raw;
            let mut got = [0u8; 8];
            raw.read_exact(&mut got).unwrap();
            raw.write_all(&[0x03, 0x00, 0x02, 0x00]).unwrap();
            let mut rest = Vec::new();
            raw.read_to_end(&mut rest).unwrap();
            (got, rest)
        });
        drop(conn); // ERQ, EOF, waits for the peer's EOF, shuts down
        let (got, rest) = peer.join().unwrap();
        assert_eq!(got, [0x03, 0x01, 0x02, 0x00, 0x03, 0x00, 0x02, 0x00]);
        assert!(rest.is_empty());
    });
}

#[test]
fn worker_threads_end_with_the_connection() {
    with_deadline(LIMIT, || {
        let server = Builder::new().workers(3).handler(|rq: Request| {
            thread::sleep(Duration::from_millis(20));
            rq.payload
        });
        let (client, server) = unix_pair(&server);
        let calls: Vec<_> = (0..9)
            .map(|_| client.submit(0, 0, Bytes::new()).unwrap())
            .collect();
        for call in calls {
            call.wait().unwrap();
        }
        // Started as needed, never more than configured.
        assert_eq!(server.worker_threads(), 3);
        client.close().unwrap();
        server.wait().unwrap();
        let until = Instant::now() + Duration::from_secs(5);
        while server.worker_threads() > 0 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(server.worker_threads(), 0);
    });
}

#[test]
fn a_handler_can_call_the_peer_back() {
    with_deadline(LIMIT, || {
        // Left's handler answers type 1 by calling right (type 0) on the
        // same connection and returning what right said.
        let me: Arc<std::sync::OnceLock<std::sync::Weak<PacketConnection>>> = Arc::default();
        let left_builder = Builder::new().handler({
            let me = me.clone();
            move |rq: Request| -> Result<Bytes, String> {
                let conn = me
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .ok_or("no connection")?;
                let r = conn.call(0, 0, rq.payload).map_err(|e| e.to_string())?;
                Ok(Bytes::from([&b"via left: "[..], &r.payload].concat()))
            }
        });
        let (a, b) = UnixStream::pair().unwrap();
        let left = Arc::new(left_builder.start(a).unwrap());
        me.set(Arc::downgrade(&left)).unwrap();
        let right = Builder::new()
            .handler(|rq: Request| Bytes::from([&b"right: "[..], &rq.payload].concat()))
            .start(b)
            .unwrap();
        let r = right.call(1, 0, &b"ping"[..]).unwrap();
        assert_eq!(&r.payload[..], b"via left: right: ping");
        right.close().unwrap();
        left.wait().unwrap();
    });
}

#[test]
fn handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<PacketConnection>();
    send_sync::<framewire_std::packet::PendingCall>();
    send_sync::<PacketServer>();
    send_sync::<Builder>();
}
