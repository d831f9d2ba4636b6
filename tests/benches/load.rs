//! Load test of the Tokio packet server over loopback; stops by itself.
//!
//! ```text
//! cargo bench -p framewire-tests --bench load -- [--connections 1000] [--requests 1000]
//!     [--inflight 32] [--idle 1000] [--soak-secs 180] [--soak-connections 100]
//!     [--soak-rate 20000]
//! ```
//! (`FRAMEWIRE_SOAK_SECS` also sets the soak's duration.)
//!
//! Three phases, in one process with the server (`framewire_tokio::packet::serve`,
//! an echo handler):
//!
//! 1. **Idle memory**: the process's VmRSS before and after opening `--idle`
//!    connections, each answered once then left idle. Measured twice: with
//!    raw sockets as clients (the server's side of a connection, plus a
//!    socket handle) and with `PacketConnection` clients (both ends).
//! 2. **Load**: `--connections` client connections at once, each making
//!    `--requests` calls with `--inflight` in flight; each payload carries
//!    its connection and sequence number and must come back to the very
//!    call that sent it. Counts lost (errors) and misrouted responses.
//! 3. **Soak**: `--soak-connections` connections calling at a steady total
//!    `--soak-rate` for `--soak-secs`; VmRSS sampled every 5 s; reports the
//!    samples and the drift (max − min after the first sample).
//!
//! Exits non-zero if anything was lost or misrouted.

#![allow(clippy::cast_precision_loss)] // figures printed, not computed on

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire::packet::wire::Packet;
use framewire_tokio::packet::{
    serve, Builder, PacketConnection, PacketServer, Reply, Request, ServeOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Command-line options.
struct Options {
    connections: u64,
    requests: u64,
    inflight: u64,
    idle: u64,
    soak_secs: u64,
    soak_connections: u64,
    soak_rate: u64,
}

fn options() -> Options {
    let mut o = Options {
        connections: 1000,
        requests: 1000,
        inflight: 32,
        idle: 1000,
        soak_secs: std::env::var("FRAMEWIRE_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(180),
        soak_connections: 100,
        soak_rate: 20_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || -> u64 {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", args[i]))
        };
        let field = match args[i].as_str() {
            "--connections" => &mut o.connections,
            "--requests" => &mut o.requests,
            "--inflight" => &mut o.inflight,
            "--idle" => &mut o.idle,
            "--soak-secs" => &mut o.soak_secs,
            "--soak-connections" => &mut o.soak_connections,
            "--soak-rate" => &mut o.soak_rate,
            // `cargo bench` passes `--bench`; ignore flags we do not know.
            _ => {
                i += 1;
                continue;
            }
        };
        *field = value();
        i += 2;
    }
    o.inflight = o.inflight.clamp(1, o.requests.max(1));
    o.soak_connections = o.soak_connections.max(1);
    o.soak_rate = o.soak_rate.max(1);
    o
}

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Raises the soft open-files limit to the hard one (two ends per
/// connection live in this process).
fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A payload naming its connection and sequence number.
fn payload(conn: u64, seq: u64) -> Bytes {
    let mut p = Vec::with_capacity(16);
    p.extend_from_slice(&conn.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    Bytes::from(p)
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    lost: AtomicU64,
    misrouted: AtomicU64,
}

impl Counts {
    /// One call's outcome.
    async fn call(&self, conn: &PacketConnection, id: u64, seq: u64) {
        let sent = payload(id, seq);
        match conn.call(0, 0, seq & 0xff, sent.clone()).await {
            Ok(r) if r.ok && r.payload == sent && r.flags == seq & 0xff => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {
                self.misrouted.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                if self.lost.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("call failed: {e}");
                }
            }
        }
    }
}

fn server(max_connections: usize) -> PacketServer {
    // A listen backlog of 4096 (Tokio's `bind` uses 1024): a connect storm
    // that overflows the accept queue ends in SYN cookies, some of which
    // fail, and those clients are reset by the kernel (seen here on 2 vCPUs
    // with 1,000 simultaneous connects; `nstat TcpExtListenOverflows`).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4096).unwrap();
    serve(
        listener,
        |rq: Request| async move { Reply::with_flags(rq.flags, rq.payload) },
        ServeOptions::new()
            .connection(Builder::new().close_timeout(Duration::from_secs(30)))
            .max_connections(max_connections),
    )
    .unwrap()
}

/// Phase 1: VmRSS per idle connection.
async fn idle_phase(server: &PacketServer, n: u64) {
    let addr = server.local_addr();
    // One request packet (tag 2, type 0), answered before the connection
    // is counted as set up.
    let mut request = vec![0u8; 64];
    let len = Packet::request(0, 2, 0, 0, b"idle")
        .unwrap()
        .encode(&mut request)
        .unwrap();
    request.truncate(len);

    let before = rss_kib();
    let mut raw = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&request).await.unwrap();
        let mut buf = [0u8; 64];
        let got = s.read(&mut buf).await.unwrap();
        assert!(got > 0, "no response");
        raw.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "idle, raw-socket clients: {n} connections, VmRSS {before} -> {after} KiB: {:.1} KiB per connection (server side + a client socket handle)",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    drop(raw);
    wait_for_drain(server).await;

    let before = rss_kib();
    let mut conns = Vec::new();
    for _ in 0..n {
        let c = PacketConnection::connect(addr).await.unwrap();
        c.call(0, 0, 0, &b"idle"[..]).await.unwrap();
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib();
    println!(
        "idle, PacketConnection clients: {n} connections, VmRSS {before} -> {after} KiB: {:.1} KiB per connection (both ends)",
        (after.saturating_sub(before)) as f64 / n as f64
    );
    for c in &conns {
        c.begin_close();
    }
    drop(conns);
    wait_for_drain(server).await;
}

/// Waits (bounded) until the server has no connection left.
async fn wait_for_drain(server: &PacketServer) {
    for _ in 0..3000 {
        if server.active_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} server connections still open",
        server.active_connections()
    );
}

/// Phase 2: many connections, many requests each.
async fn load_phase(server: &PacketServer, o: &Options) -> Arc<Counts> {
    let addr = server.local_addr();
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // At most 64 handshakes at once: all connections are open together
    // during the run, but their SYNs do not arrive in one burst.
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    for id in 0..o.connections {
        let counts = Arc::clone(&counts);
        let connecting = Arc::clone(&connecting);
        let (requests, inflight) = (o.requests, o.inflight);
        tasks.spawn(async move {
            let permit = connecting.acquire().await.expect("semaphore");
            let connected = PacketConnection::connect(addr).await;
            drop(permit);
            let conn = match connected {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("connect failed: {e}");
                    counts.lost.fetch_add(requests, Ordering::Relaxed);
                    return;
                }
            };
            let mut workers = tokio::task::JoinSet::new();
            for w in 0..inflight {
                let conn = conn.clone();
                let counts = Arc::clone(&counts);
                workers.spawn(async move {
                    let mut seq = w;
                    while seq < requests {
                        counts.call(&conn, id, seq).await;
                        seq += inflight;
                    }
                });
            }
            while workers.join_next().await.is_some() {}
            let _ = conn.close().await;
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("client task");
    }
    let elapsed = start.elapsed();
    let total = o.connections * o.requests;
    println!(
        "load: {} connections x {} requests ({} in flight each) = {total} calls in {:.2} s ({:.0} calls/s): ok {}, lost {}, misrouted {}",
        o.connections,
        o.requests,
        o.inflight,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        counts.ok.load(Ordering::Relaxed),
        counts.lost.load(Ordering::Relaxed),
        counts.misrouted.load(Ordering::Relaxed),
    );
    println!("load: VmRSS after {} KiB", rss_kib());
    wait_for_drain(server).await;
    counts
}

/// Phase 3: a steady rate for a while, memory sampled.
async fn soak_phase(server: &PacketServer, o: &Options) -> Arc<Counts> {
    let addr = server.local_addr();
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs(o.soak_secs);
    let period = Duration::from_secs_f64(o.soak_connections as f64 / o.soak_rate as f64);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..o.soak_connections {
        let counts = Arc::clone(&counts);
        tasks.spawn(async move {
            let conn = PacketConnection::connect(addr).await.expect("connect");
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0;
            while Instant::now() < until {
                tick.tick().await;
                counts.call(&conn, id, seq).await;
                seq += 1;
            }
            let _ = conn.close().await;
        });
    }
    let start = Instant::now();
    let mut samples = Vec::new();
    let (mut last_ok, mut last_t) = (0, start);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(5).min(until - Instant::now())).await;
        let ok = counts.ok.load(Ordering::Relaxed);
        let rss = rss_kib();
        println!(
            "soak: t={:>4.0} s VmRSS {rss} KiB, {:.0} calls/s",
            start.elapsed().as_secs_f64(),
            (ok - last_ok) as f64 / last_t.elapsed().as_secs_f64()
        );
        (last_ok, last_t) = (ok, Instant::now());
        samples.push(rss);
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("soak task");
    }
    let steady = if samples.len() > 1 {
        &samples[1..]
    } else {
        &samples[..]
    };
    let (min, max) = (
        steady.iter().min().copied().unwrap_or(0),
        steady.iter().max().copied().unwrap_or(0),
    );
    println!(
        "soak: {} connections at {} calls/s for {} s: ok {}, lost {}, misrouted {}; VmRSS after the first sample: min {min} KiB, max {max} KiB, drift {} KiB",
        o.soak_connections,
        o.soak_rate,
        o.soak_secs,
        counts.ok.load(Ordering::Relaxed),
        counts.lost.load(Ordering::Relaxed),
        counts.misrouted.load(Ordering::Relaxed),
        max - min
    );
    counts
}

fn main() {
    let o = options();
    let nofile = raise_nofile();
    let needed = 2 * (o.connections.max(o.idle).max(o.soak_connections)) + 64;
    assert!(
        nofile >= needed,
        "open-files limit {nofile} is below the {needed} this run needs"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = runtime.block_on(async {
        let max = usize::try_from(o.connections.max(o.idle).max(o.soak_connections)).unwrap() + 16;
        let server = server(max);
        println!(
            "framewire-tokio packet server on {} (open-files limit {nofile}); VmRSS at start {} KiB",
            server.local_addr(),
            rss_kib()
        );
        idle_phase(&server, o.idle).await;
        let load = load_phase(&server, &o).await;
        let soak = if o.soak_secs > 0 {
            Some(soak_phase(&server, &o).await)
        } else {
            None
        };
        server.shutdown().await;
        let bad = |c: &Counts| {
            c.lost.load(Ordering::Relaxed) + c.misrouted.load(Ordering::Relaxed)
        };
        bad(&load) == 0
            && load.ok.load(Ordering::Relaxed) == o.connections * o.requests
            && soak.as_deref().is_none_or(|s| bad(s) == 0)
    });
    if !ok {
        eprintln!("FAILED: calls lost or misrouted");
        std::process::exit(1);
    }
}
