//! The async packet connection and server: pipelining, many connections,
//! timeouts, abandoned calls, back-pressure, graceful shutdown, calls in both
//! directions, and interop with the blocking std adapter.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use framewire::packet::{reason, Config, SubmitError};
use framewire_tokio::packet::{
    serve, BatchRequest, Builder, CallError, CloseError, EndCause, PacketConnection, PacketServer,
    Reply, Request, ServeOptions, State,
};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every test ends within this.
const DEADLINE: Duration = Duration::from_secs(60);

async fn deadline<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(DEADLINE, f)
        .await
        .expect("test deadline passed")
}

/// Waits until `cond` holds (the handles' getters reflect the driver's last
/// step, a moment after the fact).
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("never happened: {what}");
}

/// Polls `fut` until `cond` holds and leaves it unfinished: panics if it
/// finishes first (the caller chose a future that cannot).
async fn poll_until<F>(fut: &mut F, what: &str, mut cond: impl FnMut() -> bool)
where
    F: Future + Unpin,
    F::Output: std::fmt::Debug,
{
    for _ in 0..2_000 {
        if cond() {
            return;
        }
        if let Ok(out) = tokio::time::timeout(Duration::from_millis(5), &mut *fut).await {
            panic!("finished before {what}: {out:?}");
        }
    }
    panic!("never happened: {what}");
}

/// A deterministic pseudo-random number (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A server whose handler echoes payload and flags.
async fn echo_server(options: ServeOptions) -> PacketServer {
    serve(
        listener().await,
        |rq: Request| async move { Reply::with_flags(rq.flags, rq.payload) },
        options,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_pipelined_requests_each_reach_their_caller() {
    deadline(async {
        const N: u32 = 10_000;
        const SEED: u64 = 0x5eed_f00d;
        let server = serve(
            listener().await,
            |rq: Request| async move {
                let index = u32::from_be_bytes(rq.payload[..4].try_into().unwrap());
                let delay_us = mix(SEED ^ u64::from(index)) % 2_001;
                tokio::time::sleep(Duration::from_micros(delay_us)).await;
                Reply::with_flags(u64::from(index % 7), rq.payload)
            },
            ServeOptions::new(),
        )
        .unwrap();
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let mut calls: FuturesUnordered<_> = (0..N)
            .map(|i| {
                let call = client.call(0, 1, 0, Bytes::copy_from_slice(&i.to_be_bytes()));
                async move { (i, call.await) }
            })
            .collect();
        let mut seen = vec![false; N as usize];
        while let Some((i, response)) = calls.next().await {
            let response = response.unwrap();
            assert!(response.ok);
            assert_eq!(
                &response.payload[..],
                &i.to_be_bytes(),
                "call {i} got another's response"
            );
            assert_eq!(response.flags, u64::from(i % 7));
            assert!(!seen[i as usize]);
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        eventually("client idle", || client.pending_calls() == 0).await;
        let stats = client.stats();
        assert_eq!(stats.requests_sent, u64::from(N));
        assert_eq!(stats.responses_received, u64::from(N));
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_connections_at_once() {
    deadline(async {
        let server = echo_server(ServeOptions::new().max_connections(150)).await;
        let addr = server.local_addr();
        let clients: Vec<_> = (0..100u64)
            .map(|c| {
                tokio::spawn(async move {
                    let conn = PacketConnection::connect(addr).await.unwrap();
                    // Some one at a time, some all at once.
                    for i in 0..5u64 {
                        let r = conn.call(0, 0, c, format!("{c}:{i}")).await.unwrap();
                        assert_eq!(
                            (r.flags, &r.payload[..]),
                            (c, format!("{c}:{i}").as_bytes())
                        );
                    }
                    let calls: Vec<_> = (0..20u64)
                        .map(|i| conn.call(0, 0, i, vec![c as u8; 100]))
                        .collect();
                    for (i, call) in calls.into_iter().enumerate() {
                        let r = call.await.unwrap();
                        assert_eq!((r.flags, &r.payload[..]), (i as u64, &[c as u8; 100][..]));
                    }
                    conn.close().await.unwrap();
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        assert_eq!(server.accepted_connections(), 100);
        eventually("every connection served", || {
            server.served_connections() == 100
        })
        .await;
        assert_eq!(server.active_connections(), 0);
        server.shutdown().await;
    })
    .await;
}

/// A server where request type 1 takes `slow` to answer.
async fn slow_server(slow: Duration) -> PacketServer {
    serve(
        listener().await,
        move |rq: Request| async move {
            if rq.rq_type == 1 {
                tokio::time::sleep(slow).await;
            }
            Reply::ok(rq.payload)
        },
        ServeOptions::new().connection(Builder::new().close_timeout(Duration::from_secs(2))),
    )
    .unwrap()
}

#[tokio::test]
async fn per_request_timeout_fires_and_the_connection_goes_on() {
    deadline(async {
        let server = slow_server(Duration::from_millis(400)).await;
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let r = client
            .request(1, &b"slow"[..])
            .timeout(Duration::from_millis(50))
            .await;
        assert_eq!(r, Err(CallError::TimedOut));
        assert!(started.elapsed() >= Duration::from_millis(50));
        eventually("timed-out call forgotten", || client.pending_calls() == 0).await;
        assert_eq!(client.stats().timed_out, 1, "the core's clock ended it");
        // The connection is fine; the late response is ignored.
        let r = client.call(0, 0, 0, &b"fast"[..]).await.unwrap();
        assert_eq!(&r.payload[..], b"fast");
        eventually("late response counted", || {
            client.stats().unknown_responses == 1
        })
        .await;

        // The builder's default timeout applies to plain calls.
        let impatient = Builder::new()
            .call_timeout(Some(Duration::from_millis(30)))
            .connect(server.local_addr())
            .await
            .unwrap();
        assert_eq!(
            impatient.call(0, 1, 0, &b"x"[..]).await,
            Err(CallError::TimedOut)
        );
        // ... unless a request says otherwise.
        let r = impatient.request(1, &b"y"[..]).no_timeout().await.unwrap();
        assert_eq!(&r.payload[..], b"y");
        impatient.close().await.unwrap();
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_dropped_call_is_abandoned_in_the_core() {
    deadline(async {
        let server = slow_server(Duration::from_secs(2)).await;
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let mut call = Box::pin(client.call(0, 1, 0, &b"forget me"[..]));
        // Poll it until it has been sent, then drop it.
        poll_until(&mut call, "the slow call was sent", || {
            client.stats().requests_sent == 1
        })
        .await;
        drop(call);
        eventually("abandoned call cleaned up", || client.pending_calls() == 0).await;
        assert_eq!(client.stats().requests_sent, 1);
        // Its response arrives later and is ignored.
        eventually("late response counted", || {
            client.stats().unknown_responses == 1
        })
        .await;
        assert_eq!(client.stats().responses_received, 0);

        // A call dropped before it was ever polled sends nothing.
        drop(client.call(0, 0, 0, &b"never"[..]));
        let r = client.call(0, 0, 0, &b"after"[..]).await.unwrap();
        assert_eq!(&r.payload[..], b"after");
        assert_eq!(client.stats().requests_sent, 2);
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_calls_than_max_pending_all_complete() {
    deadline(async {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let server = serve(
            listener().await,
            move |rq: Request| {
                let (running, most) = (Arc::clone(&r), Arc::clone(&m));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Reply::ok(rq.payload)
                }
            },
            ServeOptions::new(),
        )
        .unwrap();
        let client = Builder::new()
            .config(Config {
                max_pending_outbound: 4,
                ..Config::default()
            })
            .connect(server.local_addr())
            .await
            .unwrap();
        let calls: Vec<_> = (0..300u32)
            .map(|i| client.call(0, 0, 0, Bytes::copy_from_slice(&i.to_be_bytes())))
            .collect();
        let results = futures_util::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(&r.unwrap().payload[..], &(i as u32).to_be_bytes());
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 4, "{most} requests were in flight at once");
        assert!(most >= 1);
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_full_transmit_queue_makes_callers_wait() {
    deadline(async {
        // A pipe of 64 bytes and a transmit budget of 256: most calls wait
        // for the peer to read before the core takes them.
        let (a, b) = tokio::io::duplex(64);
        let server = Builder::new()
            .handler(|rq: Request| async move { Reply::ok(rq.payload) })
            .start(b)
            .unwrap();
        let client = Builder::new()
            .config(Config {
                max_transmit_buffer: 256,
                ..Config::default()
            })
            .start(a)
            .unwrap();
        let calls: Vec<_> = (0..100u8)
            .map(|i| client.call(0, 0, 0, vec![i; 1000]))
            .collect();
        let results = futures_util::future::join_all(calls).await;
        for (i, r) in results.into_iter().enumerate() {
            assert_eq!(r.unwrap().payload, vec![i as u8; 1000]);
        }
        client.close().await.unwrap();
        server.wait().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_requests_in_flight() {
    deadline(async {
        const N: usize = 20;
        let started = Arc::new(AtomicUsize::new(0));
        let s = Arc::clone(&started);
        let token = CancellationToken::new();
        let server = serve(
            listener().await,
            move |rq: Request| {
                let started = Arc::clone(&s);
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Reply::ok(rq.payload)
                }
            },
            ServeOptions::new().shutdown_token(token.clone()),
        )
        .unwrap();
        let addr = server.local_addr();
        let client = PacketConnection::connect(addr).await.unwrap();
        let calls: Vec<_> = (0..N as u8)
            .map(|i| client.call(0, 0, 0, vec![i]))
            .collect();
        let results = tokio::spawn(futures_util::future::join_all(calls));
        eventually("every request running", || {
            started.load(Ordering::SeqCst) == N
        })
        .await;

        token.cancel();
        let results = results.await.unwrap();
        for (i, r) in results.into_iter().enumerate() {
            let r = r.unwrap();
            assert!(r.ok);
            assert_eq!(&r.payload[..], &[i as u8]);
        }
        // The server closed in order: ERQ, the responses, EOF.
        assert_eq!(client.wait().await, Ok(()));
        assert_eq!(client.end_cause(), Some(EndCause::EofPacket));
        assert!(client.peer_ended_requests());
        assert_eq!(client.state(), State::Closed);
        // The client cannot call any more.
        assert!(matches!(
            client.call(0, 0, 0, &b"late"[..]).await,
            Err(CallError::Failed {
                cause: EndCause::EofPacket
            })
        ));
        server.wait().await;
        // Nobody listens any more.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    })
    .await;
}

#[tokio::test]
async fn shutdown_on_a_signal_future() {
    deadline(async {
        let server = echo_server(ServeOptions::new()).await;
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        assert!(client.call(0, 0, 0, &b"x"[..]).await.unwrap().ok);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.shutdown_on(rx));
        tx.send(()).unwrap();
        serving.await.unwrap();
        assert_eq!(client.wait().await, Ok(()));
    })
    .await;
}

#[tokio::test]
async fn the_server_calls_the_client_back() {
    deadline(async {
        let server = serve(
            listener().await,
            |rq: Request| async move {
                // Ask the client, and pass its answer on.
                match rq.connection().call(0, 7, 0, rq.payload.clone()).await {
                    Ok(r) if r.ok => Reply::ok(r.payload),
                    Ok(r) => Reply::fail(format!(
                        "client refused: {}",
                        r.failure_reason().unwrap_or_default()
                    )),
                    Err(e) => Reply::fail(e.to_string()),
                }
            },
            ServeOptions::new(),
        )
        .unwrap();
        let client = Builder::new()
            .handler(|rq: Request| async move {
                assert_eq!(rq.rq_type, 7);
                let mut answer = b"client says: ".to_vec();
                answer.extend_from_slice(&rq.payload);
                Reply::ok(answer)
            })
            .connect(server.local_addr())
            .await
            .unwrap();
        let r = client.call(0, 0, 0, &b"hi"[..]).await.unwrap();
        assert!(r.ok, "{:?}", r.failure_reason());
        assert_eq!(&r.payload[..], b"client says: hi");
        client.close().await.unwrap();

        // A client without a handler refuses, as the original does.
        let plain = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let r = plain.call(0, 0, 0, &b"hi"[..]).await.unwrap();
        assert!(!r.ok);
        assert_eq!(
            r.failure_reason().as_deref(),
            Some(&*format!("client refused: {}", reason::NO_REQUEST_HANDLER))
        );
        plain.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

/// Counts the handlers alive: one is made when a handler starts and
/// dropped with its future.
struct Alive(Arc<AtomicUsize>);

impl Alive {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Alive(Arc::clone(count))
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn handlers_still_running_are_aborted_when_their_connection_ends() {
    deadline(async {
        let alive = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&alive);
        let server = serve(
            listener().await,
            move |_rq: Request| {
                let guard = Alive::new(&counted);
                async move {
                    let _guard = guard;
                    std::future::pending::<Reply>().await
                }
            },
            ServeOptions::new().connection(Builder::new().close_timeout(Duration::from_millis(50))),
        )
        .unwrap();
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let calls: Vec<_> = (0..2)
            .map(|_| tokio::spawn(client.call(0, 0, 0, &b"never answered"[..])))
            .collect();
        eventually("both handlers running", || {
            alive.load(Ordering::SeqCst) == 2
        })
        .await;
        // The peer goes away: the server's connection ends (after its close
        // timeout, its handlers never answering) and drops their futures.
        client.abort();
        for call in calls {
            assert!(call.await.unwrap().is_err());
        }
        eventually("the handlers aborted", || alive.load(Ordering::SeqCst) == 0).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn failures_and_unsendable_replies() {
    deadline(async {
        let server = serve(
            listener().await,
            |rq: Request| async move {
                match rq.rq_type {
                    // Flags the wire cannot carry.
                    0 => Reply::with_flags(u64::MAX, rq.payload),
                    // A packet over the limit.
                    1 => Reply::ok(vec![0u8; 2 * 1024 * 1024]),
                    2 => Reply::fail("nope"),
                    3 => Reply::from(Err::<(), _>("handler error")),
                    4 => panic!("handler panics"),
                    _ => Reply::from(7u64),
                }
            },
            ServeOptions::new().connection(Builder::new().config(Config {
                max_packet_len: 1024 * 1024,
                max_receive_buffer: 1024 * 1024 + 65_536,
                ..Config::default()
            })),
        )
        .unwrap();
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        for rq_type in [0, 1, 3, 4] {
            let r = client.call(0, rq_type, 0, &b"x"[..]).await.unwrap();
            assert!(!r.ok, "type {rq_type}");
            assert_eq!(
                r.failure_reason().as_deref(),
                Some(reason::EXCEPTION_DURING_HANDLER),
                "type {rq_type}"
            );
        }
        let r = client.call(0, 2, 0, &b"x"[..]).await.unwrap();
        assert_eq!((r.ok, &r.payload[..]), (false, &b"nope"[..]));
        let r = client.call(0, 5, 0, &b"x"[..]).await.unwrap();
        assert_eq!((r.ok, r.flags, r.payload.len()), (true, 7, 0));
        // The local side refuses what it cannot send, without sending.
        assert!(matches!(
            client.call(0, 0, u64::MAX, &b"x"[..]).await,
            Err(CallError::Submit(SubmitError::Field(_)))
        ));
        assert!(matches!(
            client.call(5, 0, 0, &b"x"[..]).await,
            Err(CallError::Submit(SubmitError::UnknownChannel {
                channel: 5
            }))
        ));
        client.end_requests();
        assert!(matches!(
            client.call(0, 0, 0, &b"x"[..]).await,
            Err(CallError::Submit(SubmitError::RequestsEnded))
        ));
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn calls_outstanding_when_the_peer_goes_away_are_cancelled() {
    deadline(async {
        let (a, mut b) = tokio::io::duplex(4096);
        let client = PacketConnection::new(a).unwrap();
        let call = tokio::spawn(client.call(0, 0, 0, &b"anyone?"[..]));
        // Read the request, then vanish without an EOF packet.
        let mut buf = [0u8; 64];
        let n = b.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"\x0a\x02\x02\x01anyone?");
        drop(b);
        assert_eq!(
            call.await.unwrap(),
            Err(CallError::Cancelled {
                cause: EndCause::TransportEof
            })
        );
        assert!(client.wait().await.is_err() || client.is_finished());
    })
    .await;
}

#[tokio::test]
async fn close_is_bounded_by_the_close_timeout() {
    deadline(async {
        let (a, mut b) = tokio::io::duplex(4096);
        let client = Builder::new()
            .close_timeout(Duration::from_millis(100))
            .start(a)
            .unwrap();
        // The peer reads our ERQ and EOF but never sends its own.
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 64];
            while let Ok(n) = b.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            got
        });
        assert_eq!(
            client.close().await,
            Err(CloseError::TimedOut {
                timeout: Duration::from_millis(100)
            })
        );
        assert_eq!(reader.await.unwrap(), b"\x03\x01\x02\x00\x03\x00\x02\x00");
        assert_eq!(client.end_cause(), Some(EndCause::Aborted));
    })
    .await;
}

#[tokio::test]
async fn dropping_the_last_handle_closes_in_order() {
    deadline(async {
        let (a, mut b) = tokio::io::duplex(4096);
        let client = PacketConnection::new(a).unwrap();
        let clone = client.clone();
        drop(client);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!clone.is_finished(), "a clone keeps it open");
        drop(clone);
        let mut buf = [0u8; 8];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"\x03\x01\x02\x00\x03\x00\x02\x00", "ERQ then EOF");
        b.write_all(b"\x03\x00\x02\x00").await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_tokio_client_with_the_std_server() {
    use framewire_std::packet as stdp;
    deadline(async {
        let std_server = stdp::PacketServer::serve(
            framewire_std::server::Server::bind("127.0.0.1:0").unwrap(),
            stdp::Builder::new().handler(|rq: stdp::Request| (rq.flags, rq.payload)),
        )
        .unwrap();
        let client = PacketConnection::connect(std_server.local_addr())
            .await
            .unwrap();
        let calls: Vec<_> = (0..500u32)
            .map(|i| client.call(0, 0, u64::from(i), Bytes::copy_from_slice(&i.to_be_bytes())))
            .collect();
        for (i, r) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            let r = r.unwrap();
            assert_eq!(
                (r.flags, &r.payload[..]),
                (i as u64, &(i as u32).to_be_bytes()[..])
            );
        }
        let big = client.call(0, 0, 0, vec![3u8; 1 << 20]).await.unwrap();
        assert_eq!(big.payload.len(), 1 << 20);
        assert_eq!(client.close().await, Ok(()));
        tokio::task::spawn_blocking(move || std_server.shutdown())
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_std_client_with_the_tokio_server() {
    use framewire_std::packet as stdp;
    deadline(async {
        let server = serve(
            listener().await,
            |rq: Request| async move {
                if rq.rq_type == 9 {
                    // Call the std client back.
                    return match rq.connection().call(0, 1, 0, rq.payload.clone()).await {
                        Ok(r) => Reply::with_flags(r.flags, r.payload),
                        Err(e) => Reply::fail(e.to_string()),
                    };
                }
                Reply::with_flags(rq.flags, rq.payload)
            },
            ServeOptions::new(),
        )
        .unwrap();
        let addr = server.local_addr();
        tokio::task::spawn_blocking(move || {
            let client = stdp::Builder::new()
                .handler(|rq: stdp::Request| {
                    let mut v = b"std: ".to_vec();
                    v.extend_from_slice(&rq.payload);
                    (42u64, v)
                })
                .connect(addr)
                .unwrap();
            for i in 0..50u64 {
                let r = client.call(0, i, format!("n{i}")).unwrap();
                assert_eq!(
                    (r.ok, r.flags, &r.payload[..]),
                    (true, i, format!("n{i}").as_bytes())
                );
            }
            let pending: Vec<_> = (0..500u32)
                .map(|i| client.submit(0, 0, i.to_be_bytes().to_vec()).unwrap())
                .collect();
            for (i, p) in pending.into_iter().enumerate() {
                assert_eq!(&p.wait().unwrap().payload[..], &(i as u32).to_be_bytes());
            }
            let r = client.call(9, 0, &b"hello"[..]).unwrap();
            assert_eq!(
                (r.ok, r.flags, &r.payload[..]),
                (true, 42, &b"std: hello"[..])
            );
            client.close().unwrap();
        })
        .await
        .unwrap();
        eventually("connection served", || server.served_connections() == 1).await;
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn tokio_to_tokio_over_a_one_byte_pipe() {
    deadline(async {
        let (a, b) = tokio::io::duplex(1);
        let server = Builder::new()
            .handler(|rq: Request| async move { Reply::with_flags(rq.flags + 1, rq.payload) })
            .start(b)
            .unwrap();
        let client = PacketConnection::new(a).unwrap();
        let calls: Vec<_> = (0..50u64)
            .map(|i| client.call(0, 0, i, vec![i as u8; i as usize * 7]))
            .collect();
        for (i, r) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            let r = r.unwrap();
            assert_eq!((r.flags, r.payload.len()), (i as u64 + 1, i * 7));
        }
        client.close().await.unwrap();
        server.wait().await.unwrap();
        assert_eq!(server.stats().requests_received, 50);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_concurrency_is_bounded_per_connection_and_overall() {
    deadline(async {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let handler = {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            move |rq: Request| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Reply::ok(rq.payload)
                }
            }
        };
        // Per connection: 3 at once.
        let server = serve(
            listener().await,
            handler.clone(),
            ServeOptions::new().connection(Builder::new().max_concurrent_handlers(3)),
        )
        .unwrap();
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let calls: Vec<_> = (0..60u8).map(|i| client.call(0, 0, 0, vec![i])).collect();
        for r in futures_util::future::join_all(calls).await {
            assert!(r.unwrap().ok);
        }
        let seen = most.swap(0, Ordering::SeqCst);
        assert!(
            (1..=3).contains(&seen),
            "{seen} handlers at once on one connection"
        );
        client.close().await.unwrap();
        server.shutdown().await;

        // Overall: 2 at once over three connections.
        let server = serve(
            listener().await,
            handler,
            ServeOptions::new().max_handlers(2),
        )
        .unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(
                PacketConnection::connect(server.local_addr())
                    .await
                    .unwrap(),
            );
        }
        let calls: Vec<_> = clients
            .iter()
            .flat_map(|c| (0..20u8).map(|i| c.call(0, 0, 0, vec![i])))
            .collect();
        for r in futures_util::future::join_all(calls).await {
            assert!(r.unwrap().ok);
        }
        let seen = most.load(Ordering::SeqCst);
        assert!(
            (1..=2).contains(&seen),
            "{seen} handlers at once in the server"
        );
        for c in clients {
            c.close().await.unwrap();
        }
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_to_be_accepted() {
    deadline(async {
        let server = echo_server(ServeOptions::new().max_connections(2)).await;
        let addr = server.local_addr();
        let c1 = PacketConnection::connect(addr).await.unwrap();
        let c2 = PacketConnection::connect(addr).await.unwrap();
        assert!(c1.call(0, 0, 0, &b"1"[..]).await.unwrap().ok);
        assert!(c2.call(0, 0, 0, &b"2"[..]).await.unwrap().ok);
        // The third connects (listen backlog) but is not served...
        let c3 = PacketConnection::connect(addr).await.unwrap();
        let waiting = c3.call(0, 0, 0, &b"3"[..]);
        let waiting = tokio::spawn(waiting);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "served beyond max_connections");
        assert_eq!(server.active_connections(), 2);
        // ... until a slot frees.
        c1.close().await.unwrap();
        let r = waiting.await.unwrap().unwrap();
        assert_eq!(&r.payload[..], b"3");
        assert_eq!(server.accepted_connections(), 3);
        c2.close().await.unwrap();
        c3.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

// ----- batches -----

/// A batch's payload for request `i`: its index, so every outcome can be
/// checked against its own request.
fn indexed(i: u32) -> BatchRequest {
    BatchRequest::new(
        0,
        0,
        u64::from(i % 5),
        Bytes::copy_from_slice(&i.to_be_bytes()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_calls_at_once_each_answer_reaches_its_caller() {
    deadline(async {
        const SEED: u64 = 0x0ba7_c4e5;
        // Answers out of order: each request sleeps a pseudo-random time.
        let server = serve(
            listener().await,
            |rq: Request| async move {
                let delay_us = mix(SEED ^ u64::from_be_bytes(rq.payload[..8].try_into().unwrap()));
                tokio::time::sleep(Duration::from_micros(delay_us % 1_500)).await;
                Reply::with_flags(rq.flags, rq.payload)
            },
            ServeOptions::new(),
        )
        .unwrap();
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        // Eight tasks: four send batches, four plain calls, all at once;
        // every payload is unique (task, index).
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let payload = |i: u64| Bytes::copy_from_slice(&((t << 32) | i).to_be_bytes());
                if t % 2 == 0 {
                    for round in 0..5u64 {
                        let base = round * 300;
                        let batch =
                            (base..base + 300).map(|i| BatchRequest::new(0, 0, i % 9, payload(i)));
                        let results = client.call_batch(batch).await;
                        assert_eq!(results.len(), 300);
                        for (i, r) in (base..).zip(results) {
                            let r = r.unwrap();
                            assert_eq!((r.ok, r.flags), (true, i % 9));
                            assert_eq!(r.payload, payload(i), "task {t} request {i}");
                        }
                    }
                } else {
                    let calls: Vec<_> = (0..500u64)
                        .map(|i| client.call(0, 0, i % 9, payload(i)))
                        .collect();
                    for (i, r) in (0..).zip(futures_util::future::join_all(calls).await) {
                        assert_eq!(r.unwrap().payload, payload(i), "task {t} call {i}");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(client.pending_calls(), 0);
        assert_eq!(client.stats().responses_received, 4 * 1_500 + 4 * 500);
        // An empty batch is answered at once with nothing.
        assert!(client.call_batch(Vec::new()).await.is_empty());
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_the_limits_waits_for_room() {
    deadline(async {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let server = serve(
            listener().await,
            move |rq: Request| {
                let (running, most) = (Arc::clone(&r), Arc::clone(&m));
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Reply::ok(rq.payload)
                }
            },
            ServeOptions::new(),
        )
        .unwrap();
        // At most 4 waiting responses, and a transmit queue of 256 bytes.
        let client = Builder::new()
            .config(Config {
                max_pending_outbound: 4,
                max_transmit_buffer: 256,
                ..Config::default()
            })
            .connect(server.local_addr())
            .await
            .unwrap();
        let batch = client.call_batch((0..300).map(indexed));
        // A plain call at the same time waits its turn too.
        let call = client.call(0, 0, 0, &b"alone"[..]);
        let (results, alone) = tokio::join!(batch, call);
        for (i, r) in (0u32..).zip(results) {
            assert_eq!(r.unwrap().payload[..], i.to_be_bytes());
        }
        assert_eq!(&alone.unwrap().payload[..], b"alone");
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=4).contains(&most),
            "{most} requests were in flight at once"
        );
        // Big payloads through a 64-byte pipe: the transmit limit holds the
        // rest of the batch back until the peer reads.
        let (a, b) = tokio::io::duplex(64);
        let echo = Builder::new()
            .handler(|rq: Request| async move { Reply::ok(rq.payload) })
            .start(b)
            .unwrap();
        let small = Builder::new()
            .config(Config {
                max_transmit_buffer: 256,
                ..Config::default()
            })
            .start(a)
            .unwrap();
        let results = small
            .call_batch((0..50u8).map(|i| BatchRequest::new(0, 0, 0, vec![i; 1000])))
            .await;
        for (i, r) in (0u8..).zip(results) {
            assert_eq!(r.unwrap().payload, vec![i; 1000]);
        }
        small.close().await.unwrap();
        echo.wait().await.unwrap();
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn batch_timeouts_and_errors_are_per_request() {
    deadline(async {
        // rq_type 1 sleeps 3 s; the batch's timeout is 1 s, time enough for
        // the fast ones on a loaded machine.
        let server = slow_server(Duration::from_secs(3)).await;
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        client.open_channel(3).await.unwrap();
        let batch = vec![
            BatchRequest::new(0, 0, 0, &b"fast"[..]),
            BatchRequest::new(0, 1, 0, &b"slow"[..]),
            // Flags that cannot be encoded: refused by the core.
            BatchRequest::new(0, 0, u64::MAX, &b"bad"[..]),
            // A channel the peer never opened: refused by the peer.
            BatchRequest::new(3, 0, 0, &b"elsewhere"[..]),
            BatchRequest::new(0, 0, 0, &b"fast too"[..]),
        ];
        let results = client
            .call_batch(batch)
            .timeout(Duration::from_secs(1))
            .await;
        assert_eq!(&results[0].as_ref().unwrap().payload[..], b"fast");
        assert_eq!(results[1], Err(CallError::TimedOut));
        assert!(
            matches!(results[2], Err(CallError::Submit(_))),
            "{:?}",
            results[2]
        );
        // (The original's text, literally.)
        let refused = results[3].as_ref().unwrap();
        assert_eq!(
            refused.failure_reason().as_deref(),
            Some("unknown channel %d")
        );
        assert_eq!(&results[4].as_ref().unwrap().payload[..], b"fast too");
        eventually("timed-out request forgotten", || {
            client.pending_calls() == 0
        })
        .await;
        assert_eq!(client.stats().timed_out, 1);
        // The builder's call timeout applies unless the batch says otherwise.
        let impatient = Builder::new()
            .call_timeout(Some(Duration::from_millis(30)))
            .connect(server.local_addr())
            .await
            .unwrap();
        let slow = || vec![BatchRequest::new(0, 1, 0, &b"s"[..])];
        assert_eq!(
            impatient.call_batch(slow()).await,
            vec![Err(CallError::TimedOut)]
        );
        let r = impatient.call_batch(slow()).no_timeout().await;
        assert_eq!(&r[0].as_ref().unwrap().payload[..], b"s");
        impatient.close().await.unwrap();
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn a_dropped_batch_is_abandoned_in_the_core() {
    deadline(async {
        let server = slow_server(Duration::from_secs(2)).await;
        let client = PacketConnection::connect(server.local_addr())
            .await
            .unwrap();
        let mut batch =
            Box::pin(client.call_batch((0..10).map(|i| BatchRequest::new(0, 1, 0, vec![i]))));
        // Poll it until all ten are sent, then drop it.
        poll_until(&mut batch, "the slow batch was sent", || {
            client.stats().requests_sent == 10
        })
        .await;
        drop(batch);
        eventually("abandoned batch cleaned up", || client.pending_calls() == 0).await;
        assert_eq!(client.stats().requests_sent, 10);
        eventually("late responses counted", || {
            client.stats().unknown_responses == 10
        })
        .await;
        assert_eq!(client.stats().responses_received, 0);
        // A batch dropped before it was polled sends nothing.
        drop(client.call_batch((0..5).map(indexed)));
        let r = client.call_batch((0..3).map(indexed)).await;
        assert_eq!(r.len(), 3);
        assert_eq!(client.stats().requests_sent, 13);
        client.close().await.unwrap();
        server.shutdown().await;
    })
    .await;
}

#[tokio::test]
async fn batch_requests_outstanding_when_the_peer_goes_away_are_cancelled() {
    deadline(async {
        let (a, mut b) = tokio::io::duplex(4096);
        let client = PacketConnection::new(a).unwrap();
        let batch = tokio::spawn(client.call_batch((0..3).map(indexed)));
        // Read the requests, answer the first, then vanish.
        let mut buf = [0u8; 256];
        let mut got = 0;
        // Three requests of a 4-byte payload: 8 bytes each.
        while got < 3 * 8 {
            got += b.read(&mut buf[got..]).await.unwrap();
        }
        let answer =
            framewire::packet::wire::Packet::response(0, 2, true, 0, &[0, 0, 0, 0]).unwrap();
        let mut bytes = vec![0u8; answer.encoded_len()];
        answer.encode(&mut bytes).unwrap();
        b.write_all(&bytes).await.unwrap();
        drop(b);
        let results = batch.await.unwrap();
        assert_eq!(&results[0].as_ref().unwrap().payload[..], [0, 0, 0, 0]);
        let cancelled = Err(CallError::Cancelled {
            cause: EndCause::TransportEof,
        });
        assert_eq!(results[1..], [cancelled.clone(), cancelled]);
        // A batch on a finished connection fails at once.
        client.wait().await.ok();
        let late = client.call_batch((0..2).map(indexed)).await;
        assert_eq!(late.len(), 2);
        assert!(late.iter().all(Result::is_err));
    })
    .await;
}

#[tokio::test]
async fn an_aborted_connection_fails_its_batches() {
    deadline(async {
        // A peer that reads and never answers; at most 2 requests waiting,
        // so most of the batch is not even sent when the abort comes.
        let (a, mut b) = tokio::io::duplex(4096);
        let client = Builder::new()
            .config(Config {
                max_pending_outbound: 2,
                ..Config::default()
            })
            .start(a)
            .unwrap();
        let batch = tokio::spawn(client.call_batch((0..10).map(indexed)));
        let mut buf = [0u8; 64];
        let mut got = 0;
        while got < 2 * 8 {
            got += b.read(&mut buf[got..]).await.unwrap();
        }
        eventually("two requests sent", || client.stats().requests_sent == 2).await;
        client.abort();
        let results = batch.await.unwrap();
        let aborted = Err(CallError::Cancelled {
            cause: EndCause::Aborted,
        });
        assert_eq!(results, vec![aborted; 10]);
        assert_eq!(client.pending_calls(), 0);
    })
    .await;
}
