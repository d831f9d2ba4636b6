//! Callers and idle workers read the stream themselves (the read role; see
//! `framewire_std::packet::READ_LINGER`): callers on several threads with
//! responses interleaved, peer requests read by a waiting caller, timeouts,
//! backpressure, resets and aborts while a caller reads, and a stream
//! without read timeouts. Every test runs under a deadline, so a hang (a
//! byte nobody reads) fails it; none asserts on timing.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use framewire::packet::reason;
use framewire_std::packet::{
    Builder, CallError, Config, EndCause, PacketConnection, Request, Split,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Runs `body` on a thread; fails the test if it takes longer than `LIMIT`.
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

/// A Unix stream that records the name of the thread of every read that
/// returned bytes, and takes read timeouts only if `timeouts`.
struct Recorded {
    inner: UnixStream,
    reads: Arc<Mutex<Vec<String>>>,
    timeouts: bool,
}

impl Recorded {
    fn new(inner: UnixStream, timeouts: bool) -> (Recorded, Arc<Mutex<Vec<String>>>) {
        let reads = Arc::default();
        let stream = Recorded {
            inner,
            reads: Arc::clone(&reads),
            timeouts,
        };
        (stream, reads)
    }
}

impl Read for Recorded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            let name = thread::current().name().unwrap_or("?").to_owned();
            self.reads.lock().unwrap().push(name);
        }
        Ok(n)
    }
}

impl Write for Recorded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Split for Recorded {
    fn try_split(&self) -> io::Result<Self> {
        Ok(Recorded {
            inner: self.inner.try_clone()?,
            reads: Arc::clone(&self.reads),
            timeouts: self.timeouts,
        })
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        if self.timeouts {
            self.inner.set_read_timeout(timeout)
        } else {
            Err(io::ErrorKind::Unsupported.into())
        }
    }
}

/// A gate handlers wait at until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn pass(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.changed.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }
}

fn spawn_named<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .unwrap()
}

#[test]
fn callers_on_several_threads_get_their_own_interleaved_responses() {
    with_deadline(|| {
        const THREADS: usize = 6;
        const ROUNDS: usize = 40;
        // Every round, the server holds all THREADS requests until each is
        // in a handler, then answers them in whatever order its workers
        // finish: one reading caller reads the others' responses.
        let barrier = Arc::new(Barrier::new(THREADS));
        let server = Builder::new().workers(THREADS).handler({
            let barrier = Arc::clone(&barrier);
            move |rq: Request| {
                barrier.wait();
                (rq.flags, rq.payload)
            }
        });
        let (a, b) = UnixStream::pair().unwrap();
        let (a, reads) = Recorded::new(a, true);
        let _server = server.start(b).unwrap();
        let client = Arc::new(PacketConnection::new(a).unwrap());
        let callers: Vec<_> = (0..THREADS)
            .map(|t| {
                let client = Arc::clone(&client);
                spawn_named(&format!("caller-{t}"), move || {
                    for round in 0..ROUNDS {
                        let payload = format!("{t}/{round}");
                        let flags = (t * 1000 + round) as u64;
                        let r = if round % 3 == 0 {
                            // Some with a deadline (reading with a socket
                            // timeout), some through submit + wait.
                            client
                                .call_with(0, 0, flags, payload.clone(), Some(LIMIT))
                                .unwrap()
                        } else if round % 3 == 1 {
                            client
                                .submit(0, flags, payload.clone())
                                .unwrap()
                                .wait()
                                .unwrap()
                        } else {
                            client.call(0, flags, payload.clone()).unwrap()
                        };
                        assert!(r.ok);
                        assert_eq!(r.flags, flags);
                        assert_eq!(&r.payload[..], payload.as_bytes());
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        assert_eq!(client.stats().responses_received, (THREADS * ROUNDS) as u64);
        // The callers read for themselves (and for each other): not every
        // response went through the background reader.
        let reads = reads.lock().unwrap();
        assert!(
            reads.iter().any(|n| n.starts_with("caller-")),
            "no caller ever read: {reads:?}"
        );
        drop(reads);
        client.close().unwrap();
    });
}

#[test]
fn a_single_caller_reads_its_own_responses() {
    with_deadline(|| {
        let (a, b) = UnixStream::pair().unwrap();
        let (a, reads) = Recorded::new(a, true);
        let _server = Builder::new()
            .handler(|rq: Request| rq.payload)
            .start(b)
            .unwrap();
        let client = PacketConnection::new(a).unwrap();
        let caller = spawn_named("the-caller", move || {
            for i in 0..200u32 {
                let r = client.call(0, 0, i.to_be_bytes().to_vec()).unwrap();
                assert_eq!(&r.payload[..], &i.to_be_bytes());
            }
            client.close().unwrap();
        });
        caller.join().unwrap();
        let reads = reads.lock().unwrap();
        assert!(
            reads.iter().any(|n| n == "the-caller"),
            "the caller never read: {reads:?}"
        );
    });
}

#[test]
fn peer_requests_are_served_while_a_caller_reads() {
    with_deadline(|| {
        // Right answers type 1 by calling left back five times on the same
        // connection (left serves type 0) before it answers: left's caller,
        // waiting, reads those requests, and left's workers answer them.
        let me: Arc<std::sync::OnceLock<std::sync::Weak<PacketConnection>>> = Arc::default();
        let right_builder = Builder::new().handler({
            let me = Arc::clone(&me);
            move |rq: Request| -> Result<Bytes, String> {
                let conn = me
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .ok_or("no connection")?;
                let mut sum = 0u64;
                for i in 0..5u64 {
                    let r = conn
                        .call(0, i, rq.payload.clone())
                        .map_err(|e| e.to_string())?;
                    sum += r.flags;
                }
                Ok(Bytes::from(format!("{sum}")))
            }
        });
        let (a, b) = UnixStream::pair().unwrap();
        let (a, _reads) = Recorded::new(a, true);
        let left = Builder::new()
            .workers(1)
            .handler(|rq: Request| (rq.flags * 10, rq.payload))
            .start(a)
            .unwrap();
        let right = Arc::new(right_builder.start(b).unwrap());
        me.set(Arc::downgrade(&right)).unwrap();
        for round in 0..20 {
            let r = left.call(1, 0, format!("round {round}")).unwrap();
            assert_eq!(&r.payload[..], b"100"); // 10 * (0 + 1 + 2 + 3 + 4)
        }
        assert_eq!(left.stats().requests_received, 100);
        left.close().unwrap();
        right.wait().unwrap();
    });
}

#[test]
fn a_caller_reading_without_a_handler_gets_peer_requests_refused() {
    with_deadline(|| {
        // Left has no handler: the requests right sends while left's caller
        // waits are refused by left's core, and right reports what it got.
        let me: Arc<std::sync::OnceLock<std::sync::Weak<PacketConnection>>> = Arc::default();
        let right_builder = Builder::new().handler({
            let me = Arc::clone(&me);
            move |_: Request| -> Result<String, String> {
                let conn = me
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .ok_or("no connection")?;
                let r = conn.call(0, 0, Bytes::new()).map_err(|e| e.to_string())?;
                Ok(r.failure_reason().unwrap_or_default().into_owned())
            }
        });
        let (a, b) = UnixStream::pair().unwrap();
        let left = PacketConnection::new(a).unwrap();
        let right = Arc::new(right_builder.start(b).unwrap());
        me.set(Arc::downgrade(&right)).unwrap();
        for _ in 0..20 {
            let r = left.call(0, 0, Bytes::new()).unwrap();
            assert_eq!(&r.payload[..], reason::NO_REQUEST_HANDLER.as_bytes());
        }
        left.close().unwrap();
        right.wait().unwrap();
    });
}

#[test]
fn a_reading_caller_that_times_out_hands_the_role_on() {
    with_deadline(|| {
        // Type 9 is never answered before the end; type 8 is answered once
        // the test opens its gate, after the caller of type 9 timed out.
        let never = Arc::new(Gate::default());
        let later = Arc::new(Gate::default());
        // Workers enough for every type-9 request held (one per round and
        // the last one) and the others.
        let server = Builder::new().workers(8).handler({
            let (never, later) = (Arc::clone(&never), Arc::clone(&later));
            move |rq: Request| {
                match rq.flags {
                    9 => never.pass(),
                    8 => later.pass(),
                    _ => {}
                }
                rq.payload
            }
        });
        let (a, b) = UnixStream::pair().unwrap();
        let (a, _reads) = Recorded::new(a, true);
        let _server = server.start(b).unwrap();
        let client = Arc::new(PacketConnection::new(a).unwrap());
        for round in 0..5 {
            assert_eq!(
                &client.call(0, 0, &b"warm"[..]).unwrap().payload[..],
                b"warm"
            );
            let timing_out = {
                let client = Arc::clone(&client);
                spawn_named("timing-out", move || {
                    client.call_with(0, 0, 9, Bytes::new(), Some(Duration::from_millis(30)))
                })
            };
            let waiting = {
                let client = Arc::clone(&client);
                spawn_named("waiting", move || {
                    client.call(0, 8, format!("later {round}"))
                })
            };
            assert_eq!(timing_out.join().unwrap(), Err(CallError::TimedOut));
            later.open();
            let r = waiting.join().unwrap().unwrap();
            assert_eq!(r.payload, format!("later {round}").as_bytes());
            *later.open.lock().unwrap() = false;
        }
        // A wait with a limit, while no one else reads, leaves the call on.
        let pending = client.submit(0, 9, &b"patience"[..]).unwrap();
        assert_eq!(pending.wait_timeout(Duration::from_millis(20)), None);
        never.open();
        let r = pending.wait_timeout(LIMIT).unwrap().unwrap();
        assert_eq!(&r.payload[..], b"patience");
        assert_eq!(client.stats().timed_out, 5);
        client.close().unwrap();
    });
}

#[test]
fn a_reading_caller_blocked_by_backpressure_times_out_then_completes() {
    with_deadline(|| {
        // Left serves at most 2 requests at once with one worker held at a
        // gate. Right floods left with 20 requests, then answers left's
        // call: left's caller cannot read that response until the gate
        // opens (the requests before it stay unread), so a call with a
        // timeout times out; after the gate opens everything completes.
        let gate = Arc::new(Gate::default());
        let left = Builder::new()
            .workers(1)
            .config(Config {
                max_inflight_inbound: 2,
                ..Config::default()
            })
            .handler({
                let gate = Arc::clone(&gate);
                move |rq: Request| {
                    gate.pass();
                    rq.payload
                }
            });
        let right = Builder::new().handler(|rq: Request| rq.payload);
        let (a, b) = UnixStream::pair().unwrap();
        let left = Arc::new(left.start(a).unwrap());
        let right = Arc::new(right.start(b).unwrap());
        // Queued in right's core before left's request reaches right, so
        // right's response to it follows them on the stream.
        let flood: Vec<_> = (0..20u32)
            .map(|i| right.submit(0, 0, i.to_be_bytes().to_vec()).unwrap())
            .collect();
        let r = left.call_with(0, 0, 0, &b"stuck"[..], Some(Duration::from_millis(50)));
        assert_eq!(r, Err(CallError::TimedOut));
        let waiting = {
            let left = Arc::clone(&left);
            spawn_named("blocked-caller", move || left.call(0, 0, &b"after"[..]))
        };
        gate.open();
        assert_eq!(&waiting.join().unwrap().unwrap().payload[..], b"after");
        for (i, call) in (0..20u32).zip(flood) {
            assert_eq!(&call.wait().unwrap().payload[..], &i.to_be_bytes());
        }
        assert_eq!(left.stats().requests_received, 20);
        left.close().unwrap();
        right.wait().unwrap();
    });
}

#[test]
fn a_response_held_back_behind_the_in_flight_limit_reaches_its_reading_caller() {
    with_deadline(|| {
        // Left runs one request at a time (held at a gate). Right answers
        // left's type-1 call only after sending left two requests of its
        // own, so left's core takes the first, holds the second and the
        // response behind it (in-flight limit 1), and delivers the response
        // when the worker answers the first: to a caller that must not be
        // blocked in a read then (no more bytes come).
        let gate = Arc::new(Gate::default());
        let left = Builder::new()
            .workers(1)
            .config(Config {
                max_inflight_inbound: 1,
                ..Config::default()
            })
            .handler({
                let gate = Arc::clone(&gate);
                move |rq: Request| {
                    gate.pass();
                    rq.payload
                }
            });
        let me: Arc<std::sync::OnceLock<std::sync::Weak<PacketConnection>>> = Arc::default();
        let (sent, first_requests) = mpsc::channel();
        let right = Builder::new().handler({
            let me = Arc::clone(&me);
            let sent = Mutex::new(sent);
            move |rq: Request| -> Result<Bytes, String> {
                if rq.rq_type != 1 {
                    return Ok(rq.payload);
                }
                let conn = me
                    .get()
                    .and_then(std::sync::Weak::upgrade)
                    .ok_or("no connection")?;
                let calls: Vec<_> = (0..2u8)
                    .map(|i| conn.submit(0, 0, vec![i]))
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
                sent.lock().unwrap().send(calls).unwrap();
                Ok(rq.payload)
            }
        });
        let (a, b) = UnixStream::pair().unwrap();
        let (a, _reads) = Recorded::new(a, true);
        let left = Arc::new(left.start(a).unwrap());
        let right = Arc::new(right.start(b).unwrap());
        me.set(Arc::downgrade(&right)).unwrap();
        let opener = {
            let (left, gate) = (Arc::clone(&left), Arc::clone(&gate));
            thread::spawn(move || {
                // The first request runs (and the rest is held back).
                while left.stats().requests_received == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
                gate.open();
            })
        };
        // A first call (answered plainly) so that the background reader
        // has handed the role over and the next caller reads for itself.
        assert_eq!(&left.call(0, 0, &b"warm"[..]).unwrap().payload[..], b"warm");
        let r = left.call(1, 0, &b"held back"[..]).unwrap();
        assert_eq!(&r.payload[..], b"held back");
        opener.join().unwrap();
        for calls in first_requests.try_iter() {
            for (i, call) in (0..2u8).zip(calls) {
                assert_eq!(&call.wait().unwrap().payload[..], &[i]);
            }
        }
        assert_eq!(left.stats().requests_received, 2);
        left.close().unwrap();
        right.wait().unwrap();
    });
}

#[test]
fn a_reset_while_callers_read_ends_every_call() {
    with_deadline(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut raw, _) = listener.accept().unwrap();
        let client = Arc::new(PacketConnection::new(sock).unwrap());
        let callers: Vec<_> = (0..3)
            .map(|t| {
                let client = Arc::clone(&client);
                spawn_named(&format!("reset-caller-{t}"), move || {
                    let timeout = (t == 0).then_some(LIMIT);
                    client.call_with(0, 0, 0, &b"lost"[..], timeout)
                })
            })
            .collect();
        // All three requests are in (8 bytes each), none answered: reset.
        let mut got = [0u8; 24];
        raw.read_exact(&mut got).unwrap();
        rustix::net::sockopt::set_socket_linger(raw.as_fd(), Some(Duration::ZERO)).unwrap();
        drop(raw);
        for c in callers {
            match c.join().unwrap() {
                Err(CallError::Cancelled { .. } | CallError::Failed { .. }) => {}
                other => panic!("expected the call to end with the connection: {other:?}"),
            }
        }
        assert!(client.end_cause().is_some());
        let _ = client.close();
        assert!(client.is_finished());
    });
}

#[test]
fn an_abort_while_a_caller_reads_cancels_its_call() {
    with_deadline(|| {
        let (a, mut raw) = UnixStream::pair().unwrap();
        let client = Arc::new(PacketConnection::new(a).unwrap());
        let caller = {
            let client = Arc::clone(&client);
            spawn_named("aborted-caller", move || client.call(0, 0, &b"lost"[..]))
        };
        let mut got = [0u8; 8];
        raw.read_exact(&mut got).unwrap();
        client.abort();
        assert_eq!(
            caller.join().unwrap(),
            Err(CallError::Cancelled {
                cause: EndCause::Aborted
            })
        );
        assert!(client.is_finished());
    });
}

#[test]
fn a_stream_without_read_timeouts_still_serves_every_kind_of_call() {
    with_deadline(|| {
        // Callers with a deadline cannot read such a stream (they would
        // overrun it): they wait while others read.
        let (a, b) = UnixStream::pair().unwrap();
        let (a, reads) = Recorded::new(a, false);
        let slow = Arc::new(Gate::default());
        let _server = Builder::new()
            .handler({
                let slow = Arc::clone(&slow);
                move |rq: Request| {
                    if rq.flags == 9 {
                        slow.pass();
                    }
                    rq.payload
                }
            })
            .start(b)
            .unwrap();
        let client = Arc::new(PacketConnection::new(a).unwrap());
        let callers: Vec<_> = (0..4)
            .map(|t| {
                let client = Arc::clone(&client);
                spawn_named(&format!("no-timeout-{t}"), move || {
                    for i in 0..50u32 {
                        let timeout = (t % 2 == 0).then_some(LIMIT);
                        let r = client
                            .call_with(0, 0, 0, i.to_be_bytes().to_vec(), timeout)
                            .unwrap();
                        assert_eq!(&r.payload[..], &i.to_be_bytes());
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
        assert_eq!(
            client.call_with(0, 0, 9, Bytes::new(), Some(Duration::from_millis(30))),
            Err(CallError::TimedOut)
        );
        slow.open();
        // Only threads without a deadline read: even-numbered callers never.
        let reads = reads.lock().unwrap();
        assert!(
            !reads
                .iter()
                .any(|n| n == "no-timeout-0" || n == "no-timeout-2"),
            "a caller with a deadline read a stream without read timeouts: {reads:?}"
        );
        drop(reads);
        client.close().unwrap();
    });
}
