//! DESIGN.md section 6, "packet stream over loopback TCP": framewire's packet
//! connections against bare Tokio / tokio-util echoes of the same bytes, one
//! connection, in one run.
//!
//! ```text
//! cargo bench -p framewire-tests --bench loopback              # ~30 s
//! cargo bench -p framewire-tests --bench loopback -- --quick   # ~10 s, noisier
//! cargo bench -p framewire-tests --bench loopback -- --strict  # exit 1 on a MISS
//! ```
//!
//! Every contender is a client and an echo server, each on its own thread
//! with its own current-thread Tokio runtime (the std adapter: its own
//! threads), over one loopback TCP connection with `TCP_NODELAY`. Both
//! threads are pinned (`sched_setaffinity`; threads they start inherit it):
//! "same CPU" puts both on CPU 0, "cross CPU" the client on CPU 0 and the
//! server on CPU 1. Payloads are 16 bytes.
//!
//! * **Pipelined**: windows of `W` requests (default 1024, `--window W`:
//!   the regime of DESIGN.md's anchors, which this bench reproduces there:
//!   about 45 M/s for the bare echo, 5 M/s for `Framed`; at 128 the kernel's
//!   per-window cost dominates and the bare echo is only ~2x `Framed`) are sent, then all
//!   `W` answers awaited, for a fixed time. framewire: `W` `call` futures
//!   joined, or (the `call_batch` contender) one `call_batch` of `W`; the anchor: tokio-util `Framed<TcpStream, LengthDelimitedCodec>`
//!   (`feed` x W, `flush`, `next` x W) against a `FramedRead`/`FramedWrite`
//!   echo (`send_all`, which flushes whenever its input runs dry). The
//!   anchor does no request bookkeeping at all. The limit: a bare pipelined
//!   echo, hand-framed on Tokio sockets (one `write_all` per window, one
//!   `read_exact` of all the answers; the server writes back the whole
//!   frames of each read); every contender is also shown as a share of it.
//! * **Round trips**: one request at a time, each timed; median and p99.
//!   The anchor: a bare Tokio TCP ping-pong of a 20-byte message
//!   (`write_all`, `read_exact`).
//!
//! * **cs.packetstream** (the Python original, 20240630, from the venv that
//!   `framewire_tests::python()` finds): `tests/python/packetstream_bench.py`
//!   runs the same two modes with a forked echo server (no shared GIL),
//!   once with `packet_grace=0` and once with the default grace (0.01 s),
//!   pinned like the Rust contenders; its JSON line is parsed here. It runs
//!   3x as long as the Rust contenders, and at least one whole window (a
//!   window of 1024 takes 0.7-1.2 s; of 128, 40-200 ms). Without
//!   the venv these contenders are skipped with a `SKIP` line.
//!
//! Runs are interleaved over `rounds` rounds (3, `--quick` 2, `--rounds N`;
//! the Rust round-trip contenders run three times as many, see
//! `ROUND_TRIP_ROUNDS`); each round is a new connection on new runtimes.
//! For each contender and
//! placement the best round counts (the highest rate; the lowest median and
//! the lowest p99), because interference only ever slows a run down.

// Counts here are far below 2^52: converting them to f64 loses nothing.
#![allow(clippy::cast_precision_loss)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, FramedRead, FramedWrite, LengthDelimitedCodec};

/// Payload bytes per request.
const PAYLOAD: usize = 16;

/// The bare ping-pong message: a `u32` BE length and the payload.
const MSG: usize = 4 + PAYLOAD;

/// The whole run is aborted (exit 2) after this long: a bench must not hang.
const WATCHDOG: Duration = Duration::from_secs(300);

/// Run-size knobs; `--quick` shortens them.
struct Plan {
    rounds: usize,
    window: usize,
    pipelined_for: Duration,
    round_trips: usize,
}

impl Plan {
    fn new(args: &[String]) -> Plan {
        let quick = args.iter().any(|a| a == "--quick");
        let number = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .and_then(|n| n.parse::<usize>().ok())
        };
        let window = number("--window").unwrap_or(1024);
        Plan {
            rounds: number("--rounds")
                .filter(|&r| r > 0)
                .unwrap_or(if quick { 2 } else { 3 }),
            window,
            pipelined_for: Duration::from_millis(if quick { 150 } else { 300 }),
            round_trips: if quick { 2_000 } else { 5_000 },
        }
    }
}

/// Pins the calling thread to `cpu` (threads it spawns inherit it). Returns
/// whether that worked; a machine with fewer CPUs runs unpinned.
fn pin(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn payload() -> Bytes {
    Bytes::from_static(b"0123456789abcdef")
}

/// The echo servers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Server {
    /// `FramedRead` -> `send_all` -> `FramedWrite`.
    Framed,
    /// `read_exact` 20 bytes, `write_all` them back.
    BarePingPong,
    /// The limit for pipelined windows: a hand-framed echo on bare Tokio
    /// sockets. The server reads up to 64 KiB and writes back every whole
    /// frame it holds in one `write_all`; the client writes each window as
    /// one buffer and reads until every answer is in, checking each frame.
    BareEcho,
    /// std blocking `read_exact` / `write_all`.
    StdPingPong,
    /// framewire-tokio `Builder::start` with an echo handler, default
    /// settings (on this bench's current-thread runtimes: handlers polled
    /// inline first).
    FwTokio,
    /// The same with `Builder::inline_handlers(false)`: a Tokio task per
    /// request, the default on a multi-threaded runtime.
    FwTokioTasks,
    /// An echo answered in place (`Builder::answer_in_place`); the client
    /// sends each window as one `PacketConnection::call_batch` (pipelined
    /// only).
    FwTokioBatch,
    /// framewire-std `Builder::start` with an echo handler.
    FwStd,
    /// cs.packetstream (Python, tests/python/packetstream_bench.py), client
    /// and echo server with `packet_grace=0`.
    PyGrace0,
    /// The same with the original's default `packet_grace` (0.01 s).
    PyGraceDefault,
}

async fn accept(listener: StdListener) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let (sock, _) = listener.accept().await.expect("accept");
    sock.set_nodelay(true).expect("nodelay");
    sock
}

/// Serves one connection until the client's end.
fn serve(kind: Server, listener: StdListener) {
    match kind {
        Server::StdPingPong => {
            let (mut sock, _) = listener.accept().expect("accept");
            sock.set_nodelay(true).expect("nodelay");
            let mut buf = [0u8; MSG];
            while sock.read_exact(&mut buf).is_ok() {
                sock.write_all(&buf).expect("echo write");
            }
        }
        Server::FwStd => {
            let (sock, _) = listener.accept().expect("accept");
            sock.set_nodelay(true).expect("nodelay");
            let conn = framewire_std::packet::Builder::new()
                .handler(|rq: framewire_std::packet::Request| (rq.flags, rq.payload))
                .start(sock)
                .expect("std server");
            let _ = conn.wait();
        }
        _ => runtime().block_on(async move {
            let sock = accept(listener).await;
            match kind {
                Server::Framed => {
                    let (rd, wr) = sock.into_split();
                    let mut rd =
                        FramedRead::new(rd, LengthDelimitedCodec::new()).map_ok(BytesMut::freeze);
                    let mut wr = FramedWrite::new(wr, LengthDelimitedCodec::new());
                    let _ = wr.send_all(&mut rd).await;
                }
                Server::BarePingPong => {
                    let mut sock = sock;
                    let mut buf = [0u8; MSG];
                    while sock.read_exact(&mut buf).await.is_ok() {
                        sock.write_all(&buf).await.expect("echo write");
                    }
                }
                Server::BareEcho => bare_echo(sock).await,
                Server::FwTokio | Server::FwTokioTasks | Server::FwTokioBatch => {
                    use framewire_tokio::packet::{Builder, Reply, Request};
                    let builder = Builder::new().handler(|rq: Request| async move {
                        Reply::with_flags(rq.flags, rq.payload)
                    });
                    let builder = if kind == Server::FwTokioTasks {
                        builder.inline_handlers(false)
                    } else {
                        builder
                    };
                    // The call_batch contender's server answers in place
                    // (the same echo, with no future, task or `Bytes`).
                    let builder = if kind == Server::FwTokioBatch {
                        builder.answer_in_place(
                            |rq: framewire_tokio::packet::LentRequest<'_>,
                             answer: &mut framewire_tokio::packet::Answerer<'_>| {
                                let _ = answer.respond_or_fail(rq.flags, rq.payload);
                            },
                        )
                    } else {
                        builder
                    };
                    let conn = builder.start(sock).expect("tokio server");
                    let _ = conn.wait().await;
                }
                Server::StdPingPong | Server::FwStd | Server::PyGrace0 | Server::PyGraceDefault => {
                    unreachable!()
                }
            }
        }),
    }
}

/// The bare pipelined echo server: reads what has arrived, writes back the
/// whole frames among it (`u32` BE length prefixes, parsed by hand) and keeps
/// a partial frame's bytes for the next read.
async fn bare_echo(mut sock: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        match sock.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        let whole = whole_frames(&buf[..have]);
        sock.write_all(&buf[..whole]).await.expect("echo write");
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

/// How many leading bytes of `buf` are whole length-prefixed frames.
fn whole_frames(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Some(head) = buf.get(at..at + 4) {
        let len = u32::from_be_bytes(head.try_into().expect("4 bytes")) as usize;
        if buf.len() - at - 4 < len {
            break;
        }
        at += 4 + len;
    }
    at
}

/// A client: which implementation, and how it drives the echo.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Pipelined,
    RoundTrips,
}

/// What one client run measured.
#[derive(Clone, Debug, Default)]
struct Run {
    /// Requests per second.
    rate: f64,
    /// Round-trip times, sorted (round-trip mode only).
    rtts: Vec<Duration>,
}

/// Times `$n` round trips of `$body` after `$n / 10` untimed ones; a
/// [`Run`] with every round trip's time.
macro_rules! time_round_trips {
    ($n:expr, $body:block) => {{
        let n: usize = $n;
        for _ in 0..n / 10 $body
        let mut rtts = Vec::with_capacity(n);
        let start = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            $body
            rtts.push(t.elapsed());
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        rtts.sort_unstable();
        Run { rate, rtts }
    }};
}

/// Runs windows of `$window` requests (`$body` does one) for `$time`, after
/// a tenth of that as warm-up; a [`Run`] with the request rate.
macro_rules! time_windows {
    ($time:expr, $window:expr, $body:block) => {{
        let (time, window): (Duration, usize) = ($time, $window);
        let warm = Instant::now();
        while warm.elapsed() < time / 10 $body
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed() < time {
            $body
            done += window;
        }
        Run {
            rate: done as f64 / start.elapsed().as_secs_f64(),
            rtts: Vec::new(),
        }
    }};
}

fn check(payload: &[u8]) {
    assert_eq!(payload, &b"0123456789abcdef"[..], "echo mismatch");
}

fn message() -> [u8; MSG] {
    let mut msg = [0u8; MSG];
    msg[..4].copy_from_slice(&(PAYLOAD as u32).to_be_bytes());
    msg[4..].copy_from_slice(&payload());
    msg
}

/// The client side of one run against `kind`'s server at `addr`.
fn client(kind: Server, mode: Mode, addr: SocketAddr, plan: &Plan) -> Run {
    match kind {
        Server::StdPingPong | Server::FwStd => std_client(kind, mode, addr, plan),
        _ => runtime().block_on(tokio_client(kind, mode, addr, plan)),
    }
}

/// The clients on plain threads.
fn std_client(kind: Server, mode: Mode, addr: SocketAddr, plan: &Plan) -> Run {
    let (time, n, w) = (plan.pipelined_for, plan.round_trips, plan.window);
    let mut sock = StdStream::connect(addr).expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    if kind == Server::StdPingPong {
        let msg = message();
        let mut buf = [0u8; MSG];
        return time_round_trips!(n, {
            sock.write_all(&msg).expect("write");
            sock.read_exact(&mut buf).expect("read");
            check(&buf[4..]);
        });
    }
    let conn = framewire_std::packet::PacketConnection::new(sock).expect("std client");
    let p = payload();
    let run = match mode {
        Mode::RoundTrips => time_round_trips!(n, {
            check(&conn.call(0, 0, p.clone()).expect("call").payload);
        }),
        Mode::Pipelined => time_windows!(time, w, {
            let calls: Vec<_> = (0..w)
                .map(|_| conn.submit(0, 0, p.clone()).expect("submit"))
                .collect();
            for call in calls {
                check(&call.wait().expect("call").payload);
            }
        }),
    };
    conn.close().expect("close");
    run
}

/// The clients on a current-thread Tokio runtime.
async fn tokio_client(kind: Server, mode: Mode, addr: SocketAddr, plan: &Plan) -> Run {
    let (time, n, w) = (plan.pipelined_for, plan.round_trips, plan.window);
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.set_nodelay(true).expect("nodelay");
    let p = payload();
    match (kind, mode) {
        (Server::BarePingPong, _) => {
            let msg = message();
            let mut buf = [0u8; MSG];
            time_round_trips!(n, {
                sock.write_all(&msg).await.expect("write");
                sock.read_exact(&mut buf).await.expect("read");
                check(&buf[4..]);
            })
        }
        (Server::BareEcho, _) => {
            let window: Vec<u8> = (0..w).flat_map(|_| message()).collect();
            let mut back = vec![0u8; window.len()];
            time_windows!(time, w, {
                sock.write_all(&window).await.expect("write");
                sock.read_exact(&mut back).await.expect("read");
                for frame in back.chunks_exact(MSG) {
                    assert_eq!(frame[..4], (PAYLOAD as u32).to_be_bytes(), "length");
                    check(&frame[4..]);
                }
            })
        }
        (Server::Framed, Mode::RoundTrips) => {
            let mut f = Framed::new(sock, LengthDelimitedCodec::new());
            time_round_trips!(n, {
                f.send(p.clone()).await.expect("send");
                check(&f.next().await.expect("echo").expect("recv"));
            })
        }
        (Server::Framed, Mode::Pipelined) => {
            let mut f = Framed::new(sock, LengthDelimitedCodec::new());
            time_windows!(time, w, {
                for _ in 0..w {
                    f.feed(p.clone()).await.expect("feed");
                }
                SinkExt::<Bytes>::flush(&mut f).await.expect("flush");
                for _ in 0..w {
                    check(&f.next().await.expect("echo").expect("recv"));
                }
            })
        }
        _ => {
            use framewire_tokio::packet::BatchRequest;
            let conn = framewire_tokio::packet::PacketConnection::new(sock).expect("tokio client");
            let run = match mode {
                Mode::RoundTrips => time_round_trips!(n, {
                    check(&conn.call(0, 0, 0, p.clone()).await.expect("call").payload);
                }),
                Mode::Pipelined if kind == Server::FwTokioBatch => time_windows!(time, w, {
                    let batch = (0..w).map(|_| BatchRequest::new(0, 0, 0, p.clone()));
                    for r in conn.call_batch(batch).await {
                        check(&r.expect("call").payload);
                    }
                }),
                Mode::Pipelined => time_windows!(time, w, {
                    let calls = (0..w).map(|_| conn.call(0, 0, 0, p.clone()));
                    for r in futures_util::future::join_all(calls).await {
                        check(&r.expect("call").payload);
                    }
                }),
            };
            conn.close().await.expect("close");
            run
        }
    }
}

/// One client + server run, pinned to `(client_cpu, server_cpu)`.
fn run(kind: Server, mode: Mode, cpus: (usize, usize), plan: &Plan) -> Run {
    if matches!(kind, Server::PyGrace0 | Server::PyGraceDefault) {
        return python_run(kind, mode, cpus, plan);
    }
    let listener = StdListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    thread::scope(|s| {
        let server = s.spawn(move || {
            pin(cpus.1);
            serve(kind, listener);
        });
        let client = s.spawn(move || {
            pin(cpus.0);
            client(kind, mode, addr, plan)
        });
        let run = client.join().expect("client");
        server.join().expect("server");
        run
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// A contender's best figures over the rounds.
#[derive(Clone, Copy, Default)]
struct Best {
    rate: f64,
    median: Option<Duration>,
    p99: Option<Duration>,
}

impl Best {
    fn take(&mut self, run: &Run) {
        self.rate = self.rate.max(run.rate);
        if !run.rtts.is_empty() {
            let (m, p) = (percentile(&run.rtts, 0.5), percentile(&run.rtts, 0.99));
            self.median = Some(self.median.map_or(m, |b| b.min(m)));
            self.p99 = Some(self.p99.map_or(p, |b| b.min(p)));
        }
    }
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M/s", rate / 1e6)
    } else if rate < 1e3 {
        format!("{rate:.0} /s")
    } else {
        format!("{:.1} k/s", rate / 1e3)
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn name(kind: Server) -> &'static str {
    match kind {
        Server::Framed => "tokio-util Framed + LengthDelimitedCodec",
        Server::BarePingPong => "bare tokio TcpStream ping-pong",
        Server::BareEcho => "bare tokio pipelined echo (hand-framed, the limit)",
        Server::StdPingPong => "bare std TcpStream ping-pong",
        Server::FwTokio => "framewire-tokio PacketConnection",
        Server::FwTokioTasks => "framewire-tokio, a task per request",
        Server::FwTokioBatch => "framewire-tokio call_batch, answered in place",
        Server::FwStd => "framewire-std PacketConnection",
        Server::PyGrace0 => "cs.packetstream (Python), packet_grace 0",
        Server::PyGraceDefault => "cs.packetstream (Python), default packet_grace 0.01 s",
    }
}

/// The runs: every contender of each mode, unless `--only pipelined|round-trips`
/// (for profiling) or `--filter TEXT` (contenders whose name contains it)
/// says otherwise.
/// The Rust round-trip contenders run this many times as many rounds as the
/// rest. Each round is a new connection on new runtimes, and on these
/// machines a connection's median settles in one of a few levels (the bare
/// ping-pong at 15.5, 17.3 or 18.9 µs on one CPU, from run to run): with
/// three rounds the best one often missed a contender's lowest level, and
/// a ratio moved by 20% between runs. A round of 5,000 round trips takes
/// about 0.1 s, so the extra rounds cost little.
const ROUND_TRIP_ROUNDS: usize = 3;

/// Whether `kind` runs in every round of `mode`, not only every
/// `ROUND_TRIP_ROUNDS`th: the Rust round-trip contenders.
fn extra_rounds(mode: Mode, kind: Server) -> bool {
    mode == Mode::RoundTrips && !matches!(kind, Server::PyGrace0 | Server::PyGraceDefault)
}

fn jobs(args: &[String]) -> Vec<(Mode, Server)> {
    let pipelined = [
        Server::BareEcho,
        Server::Framed,
        Server::FwTokio,
        Server::FwTokioTasks,
        Server::FwTokioBatch,
        Server::FwStd,
        Server::PyGrace0,
        Server::PyGraceDefault,
    ];
    let round_trips = [
        Server::BarePingPong,
        Server::StdPingPong,
        Server::Framed,
        Server::FwTokio,
        Server::FwTokioTasks,
        Server::FwStd,
        Server::PyGrace0,
        Server::PyGraceDefault,
    ];
    // The Python contenders only when the venv with the original is there.
    let available = |k: Server| {
        !matches!(k, Server::PyGrace0 | Server::PyGraceDefault) || python_bench().is_some()
    };
    // `--only pipelined|round-trips` runs one mode (for profiling); the
    // targets of the other are then not printed.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    // `--filter TEXT` runs only the contenders whose name contains it.
    let filter = args
        .iter()
        .position(|a| a == "--filter")
        .and_then(|i| args.get(i + 1))
        .map_or("", String::as_str);
    pipelined
        .iter()
        .filter(|&&k| only != Some("round-trips") && name(k).contains(filter) && available(k))
        .map(|&k| (Mode::Pipelined, k))
        .chain(
            round_trips
                .iter()
                .filter(|&&k| only != Some("pipelined") && name(k).contains(filter) && available(k))
                .map(|&k| (Mode::RoundTrips, k)),
        )
        .collect()
}

/// Prints the target table; returns how many targets there were and how
/// many were missed.
fn targets(
    placements: &[(&str, (usize, usize))],
    find: &dyn Fn(usize, Mode, Server) -> Option<Best>,
) -> (usize, usize) {
    println!("\n| target | ratio | need | result |\n|---|---:|---:|---|");
    let mut misses = 0;
    let mut total = 0;
    let mut target = |what: String, ratio: f64, need: f64, at_least: bool| {
        let pass = if at_least {
            ratio >= need
        } else {
            ratio <= need
        };
        total += 1;
        if !pass {
            misses += 1;
        }
        println!(
            "| {what} | {ratio:.2}x | {} {need}x | {} |",
            if at_least { ">=" } else { "<=" },
            if pass { "PASS" } else { "MISS" }
        );
    };
    for (p, (place, _)) in placements.iter().enumerate() {
        if let Some(framed) = find(p, Mode::Pipelined, Server::Framed) {
            for kind in [Server::FwTokio, Server::FwTokioTasks, Server::FwTokioBatch] {
                let Some(fw) = find(p, Mode::Pipelined, kind) else {
                    continue;
                };
                target(
                    format!("{place}: pipelined, {} / tokio-util Framed", name(kind)),
                    fw.rate / framed.rate,
                    2.0,
                    true,
                );
            }
        }
        for py in [Server::PyGrace0, Server::PyGraceDefault] {
            let (Some(fw), Some(orig)) = (
                find(p, Mode::Pipelined, Server::FwTokio),
                find(p, Mode::Pipelined, py),
            ) else {
                continue;
            };
            target(
                format!(
                    "{place}: pipelined, {} / {}",
                    name(Server::FwTokio),
                    name(py)
                ),
                fw.rate / orig.rate,
                100.0,
                true,
            );
        }
        let Some(bare) = find(p, Mode::RoundTrips, Server::BarePingPong) else {
            continue;
        };
        let bare = bare.median.expect("timed");
        for kind in [Server::FwTokio, Server::FwTokioTasks, Server::FwStd] {
            let Some(m) = find(p, Mode::RoundTrips, kind).and_then(|b| b.median) else {
                continue;
            };
            target(
                format!("{place}: round-trip median, {} / bare tokio", name(kind)),
                m.as_secs_f64() / bare.as_secs_f64(),
                1.2,
                false,
            );
        }
    }
    (total, misses)
}

/// The Python interpreter for the cs.packetstream contenders, if the venv
/// with the original is there (checked once: `import cs.packetstream`);
/// otherwise `None`, after one `SKIP` line saying why.
fn python_bench() -> Option<&'static std::path::Path> {
    static PYTHON: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let skip = |why: String| {
                println!("SKIP cs.packetstream contenders: {why}");
                None
            };
            let venv = framewire_tests::repo_root().join(".venv/bin/python");
            if std::env::var_os("FRAMEWIRE_PYTHON").is_none() && !venv.exists() {
                return skip(format!(
                    "no Python venv at {} (run scripts/setup.sh or set FRAMEWIRE_PYTHON)",
                    venv.display()
                ));
            }
            let python = framewire_tests::python();
            match std::process::Command::new(&python)
                .args(["-c", "import cs.packetstream"])
                .output()
            {
                Ok(out) if out.status.success() => Some(python),
                Ok(out) => skip(format!(
                    "{} cannot import cs.packetstream: {}",
                    python.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => skip(format!("cannot run {}: {e}", python.display())),
            }
        })
        .as_deref()
}

/// One run of `tests/python/packetstream_bench.py` (client and forked echo
/// server of the original), pinned to `cpus`; its JSON line as a [`Run`].
fn python_run(kind: Server, mode: Mode, cpus: (usize, usize), plan: &Plan) -> Run {
    let python = python_bench().expect("only scheduled when available");
    let secs = format!("{:.3}", plan.pipelined_for.as_secs_f64() * 3.0);
    let (window, n) = (plan.window.to_string(), plan.round_trips.to_string());
    let (c, s) = (cpus.0.to_string(), cpus.1.to_string());
    let grace = if kind == Server::PyGrace0 {
        "0"
    } else {
        "default"
    };
    let mode = if mode == Mode::Pipelined {
        "pipelined"
    } else {
        "rtt"
    };
    let out = std::process::Command::new(python)
        .arg(framewire_tests::python_script("packetstream_bench.py"))
        .args([mode, "--grace", grace, "--window", &window, "--secs", &secs])
        .args(["--n", &n, "--rtts", "--client-cpu", &c, "--server-cpu", &s])
        .args(["--timeout", "60"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run packetstream_bench.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().rev().find(|l| l.starts_with('{'));
    let json: Option<serde_json::Value> = line.and_then(|l| serde_json::from_str(l).ok());
    let Some(json) = json.filter(|j| out.status.success() && j["ok"] == true) else {
        panic!(
            "packetstream_bench.py {mode} --grace {grace} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut rtts: Vec<Duration> = json["rtts_us"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(serde_json::Value::as_f64)
                .map(|us| Duration::from_secs_f64(us / 1e6))
                .collect()
        })
        .unwrap_or_default();
    rtts.sort_unstable();
    Run {
        rate: json["rate"].as_f64().expect("rate"),
        rtts,
    }
}

/// Every pipelined contender's rate as a share of the bare echo's (the
/// limit of the transport for these windows), and where the 2x-`Framed`
/// target lies against that limit.
fn limit_shares(
    placements: &[(&str, (usize, usize))],
    jobs: &[(Mode, Server)],
    find: &dyn Fn(usize, Mode, Server) -> Option<Best>,
) {
    let mut rows = Vec::new();
    for (p, (place, _)) in placements.iter().enumerate() {
        let Some(bare) = find(p, Mode::Pipelined, Server::BareEcho) else {
            continue;
        };
        for &(mode, kind) in jobs {
            if mode != Mode::Pipelined || kind == Server::BareEcho {
                continue;
            }
            if let Some(b) = find(p, mode, kind) {
                rows.push(format!(
                    "| {place}: {} | {:.2}x |",
                    name(kind),
                    b.rate / bare.rate
                ));
            }
        }
        if let Some(framed) = find(p, Mode::Pipelined, Server::Framed) {
            rows.push(format!(
                "| {place}: the 2x-Framed target itself | {:.2}x |",
                2.0 * framed.rate / bare.rate
            ));
        }
    }
    if !rows.is_empty() {
        println!("\n| pipelined, share of the bare echo (no target) | ratio |\n|---|---:|");
        for row in rows {
            println!("{row}");
        }
    }
}

/// Side-by-side figures against cs.packetstream that have no DESIGN target
/// (round trips; framewire-std pipelined).
fn python_comparisons(
    placements: &[(&str, (usize, usize))],
    find: &dyn Fn(usize, Mode, Server) -> Option<Best>,
) {
    let mut rows = Vec::new();
    for (p, (place, _)) in placements.iter().enumerate() {
        for py in [Server::PyGrace0, Server::PyGraceDefault] {
            for kind in [Server::FwTokio, Server::FwTokioBatch, Server::FwStd] {
                if let (Some(fw), Some(orig)) =
                    (find(p, Mode::Pipelined, kind), find(p, Mode::Pipelined, py))
                {
                    rows.push(format!(
                        "| {place}: pipelined rate, {} / {} | {:.0}x |",
                        name(kind),
                        name(py),
                        fw.rate / orig.rate
                    ));
                }
            }
            for kind in [Server::FwTokio, Server::FwStd] {
                let fw = find(p, Mode::RoundTrips, kind).and_then(|b| b.median);
                let orig = find(p, Mode::RoundTrips, py).and_then(|b| b.median);
                if let (Some(fw), Some(orig)) = (fw, orig) {
                    rows.push(format!(
                        "| {place}: round-trip median, {} / {} | {:.1}x |",
                        name(py),
                        name(kind),
                        orig.as_secs_f64() / fw.as_secs_f64()
                    ));
                }
            }
        }
    }
    if !rows.is_empty() {
        println!("\n| against cs.packetstream (no target) | ratio |\n|---|---:|");
        for row in rows {
            println!("{row}");
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strict = args.iter().any(|a| a == "--strict");
    let plan = Plan::new(&args);
    let started = Instant::now();
    thread::spawn(|| {
        thread::sleep(WATCHDOG);
        eprintln!("loopback bench: watchdog expired after {WATCHDOG:?}");
        std::process::exit(2);
    });

    let ncpu = thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut placements = vec![("same CPU (0+0)", (0, 0))];
    if ncpu >= 2 {
        placements.push(("cross CPU (0+1)", (0, 1)));
    }
    let jobs = jobs(&args);
    let mut best = vec![vec![Best::default(); jobs.len()]; placements.len()];
    for round in 0..plan.rounds * ROUND_TRIP_ROUNDS {
        for (p, &(_, cpus)) in placements.iter().enumerate() {
            for (j, &(mode, kind)) in jobs.iter().enumerate() {
                if round % ROUND_TRIP_ROUNDS == 0 || extra_rounds(mode, kind) {
                    best[p][j].take(&run(kind, mode, cpus, &plan));
                }
            }
        }
    }
    let find = |p: usize, mode: Mode, kind: Server| {
        jobs.iter()
            .position(|&(m, k)| m == mode && k == kind)
            .map(|j| best[p][j])
    };

    println!(
        "\nframewire loopback ({ncpu} CPUs, {} rounds, Rust round trips {}, window {}, {:.1} s)\n",
        plan.rounds,
        plan.rounds * ROUND_TRIP_ROUNDS,
        plan.window,
        started.elapsed().as_secs_f64()
    );
    println!(
        "| placement | mode | contender | rate | median | p99 |\n|---|---|---|---:|---:|---:|"
    );
    for (p, (place, _)) in placements.iter().enumerate() {
        for &(mode, kind) in &jobs {
            let b = find(p, mode, kind).expect("ran");
            let mode_name = match mode {
                Mode::Pipelined => format!("pipelined x{}", plan.window),
                Mode::RoundTrips => "round trips".into(),
            };
            println!(
                "| {place} | {mode_name} | {} | {} | {} | {} |",
                name(kind),
                fmt_rate(b.rate),
                b.median.map_or_else(|| "-".into(), us),
                b.p99.map_or_else(|| "-".into(), us),
            );
        }
    }

    let (total, misses) = targets(&placements, &find);
    limit_shares(&placements, &jobs, &find);
    python_comparisons(&placements, &find);
    println!("\n{} of {total} targets met", total - misses);
    if strict && misses > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
