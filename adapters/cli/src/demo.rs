//! `framewire demo`: the main job for a newcomer. Starts a BSON echo server
//! and a packet-stream test server on loopback, runs clients against them,
//! shows what goes over the wire, and checks every answer. Exits non-zero
//! if any check fails.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire::framing::BsonDocument;
use framewire::packet::wire::{Packet, ParseLimits};
use framewire_tokio::packet::{
    serve, Builder, Config, PacketConnection, PacketServer, ServeOptions,
};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::codec::FrameSpec;
use crate::conn::{FrameReader, FrameWriter};
use crate::docjson;
use crate::echo::echo_connection;
use crate::error::CliError;
use crate::packet::{expected, test_handler};
use crate::render::{hex_preview, readable};
use crate::show::packet_fields;

/// Requests in the pipelined batch.
const BATCH: usize = 1000;

/// Deadline for each part of the demo (it takes well under a second).
const PART_DEADLINE: Duration = Duration::from_secs(20);

/// The checks made so far.
#[derive(Default)]
struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    /// Records a check; returns the mark to print after it.
    fn check(&mut self, ok: bool, what: impl Into<String>) -> &'static str {
        if ok {
            self.passed += 1;
            "✓"
        } else {
            self.failed.push(what.into());
            "✗ FAILED"
        }
    }

    fn total(&self) -> usize {
        self.passed + self.failed.len()
    }

    /// Prints the verdict; an error if any check failed.
    fn verdict(&self) -> Result<(), CliError> {
        if self.failed.is_empty() {
            println!("  checks                   all {} passed", self.total());
            return Ok(());
        }
        println!(
            "  checks                   {} of {} FAILED:",
            self.failed.len(),
            self.total()
        );
        for f in &self.failed {
            println!("    - {f}");
        }
        Err(CliError::Checks {
            what: "demo",
            failed: self.failed.len(),
            total: self.total(),
        })
    }
}

/// Runs the demo.
pub(crate) async fn run() -> Result<(), CliError> {
    let started = Instant::now();
    let mut checks = Checks::default();
    println!("framewire demo: two servers and their clients on loopback; every answer is checked.");
    println!();

    let Servers {
        bson_addr,
        bson_task,
        mut notes,
        packet_server,
    } = start_servers().await?;
    let packet_addr = packet_server.local_addr();

    // --- BSON ----------------------------------------------------------
    let bson = tokio::time::timeout(PART_DEADLINE, bson_part(bson_addr, &mut checks, &mut notes))
        .await
        .map_err(|_| CliError::Timeout {
            what: "demo: BSON echo".into(),
            secs: PART_DEADLINE.as_secs_f64(),
        })??;
    println!();

    // --- packet stream -----------------------------------------------------
    let tap = Arc::new(Mutex::new(TapLog::default()));
    let sock = TcpStream::connect(packet_addr)
        .await
        .map_err(|source| CliError::Connect {
            addr: packet_addr,
            source,
        })?;
    let _ = sock.set_nodelay(true);
    let conn = PacketConnection::new(Tap {
        inner: sock,
        log: Arc::clone(&tap),
    })
    .map_err(|e| CliError::Usage {
        what: "demo",
        why: e.to_string(),
    })?;
    let calls = tokio::time::timeout(
        PART_DEADLINE,
        packet_part(&conn, &tap, &mut checks, packet_addr),
    )
    .await
    .map_err(|_| CliError::Timeout {
        what: "demo: packet stream".into(),
        secs: PART_DEADLINE.as_secs_f64(),
    })??;
    println!();

    // --- closing -----------------------------------------------------------
    let closed = tokio::time::timeout(PART_DEADLINE, conn.close()).await;
    let (sent, received) = tap_take(&tap);
    let close_ok = matches!(closed, Ok(Ok(())));
    let mark = checks.check(close_ok, "orderly close of the packet connection");
    println!("closing the packet connection (ERQ, then EOF, both ways) {mark}");
    for (dir, bytes) in [("->", &sent), ("<-", &received)] {
        for p in packets(bytes) {
            println!("  {dir} {p}");
        }
    }
    let (wire_sent, wire_received) = {
        let log = tap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (log.total_sent, log.total_received)
    };
    packet_server.shutdown().await;
    bson_task.abort();
    println!();

    print_summary(&bson, &calls, (wire_sent, wire_received), started.elapsed());
    checks.verdict()
}

fn print_summary(bson: &BsonSummary, calls: &CallSummary, wire: (u64, u64), elapsed: Duration) {
    println!("summary");
    println!(
        "  BSON documents echoed    {} ({} bytes each way), 1 malformed document refused",
        bson.docs, bson.bytes
    );
    println!(
        "  packet-stream calls      {} answered ({} sequential, {BATCH} pipelined)",
        calls.total, calls.sequential
    );
    println!(
        "  packet bytes on the wire {} sent, {} received",
        wire.0, wire.1
    );
    println!(
        "  pipelined batch          {BATCH} in {:.0} ms; {} came back in a different order than sent",
        calls.batch_time.as_secs_f64() * 1000.0,
        calls.reordered
    );
    println!("  elapsed                  {:.2} s", elapsed.as_secs_f64());
}

/// The two servers, running.
struct Servers {
    bson_addr: SocketAddr,
    bson_task: tokio::task::JoinHandle<()>,
    /// Errors the BSON server met, one line each.
    notes: mpsc::UnboundedReceiver<String>,
    packet_server: PacketServer,
}

async fn start_servers() -> Result<Servers, CliError> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let bind_err = |source| CliError::Bind {
        addr: loopback,
        source,
    };
    let bson_listener = TcpListener::bind(loopback).await.map_err(bind_err)?;
    let bson_addr = bson_listener.local_addr().map_err(bind_err)?;
    let (server_notes, notes) = mpsc::unbounded_channel::<String>();
    let bson_task = tokio::spawn(async move {
        while let Ok((sock, _)) = bson_listener.accept().await {
            let notes = server_notes.clone();
            tokio::spawn(async move {
                let framing = FrameSpec::Bson(BsonDocument::new());
                if let Err(e) = echo_connection(sock, framing, |_, _| {}).await {
                    let _ = notes.send(e.to_string());
                }
            });
        }
    });
    let packet_listener = TcpListener::bind(loopback).await.map_err(bind_err)?;
    // Every request of the pipelined batch may be in the handler at once.
    let config = Config {
        max_inflight_inbound: 2 * BATCH,
        ..Config::default()
    };
    let options = ServeOptions::new()
        .connection(Builder::new().config(config).max_concurrent_handlers(BATCH))
        .max_handlers(2 * BATCH);
    let packet_server = serve(packet_listener, test_handler, options).map_err(bind_err)?;
    println!("servers");
    println!(
        "  BSON echo server           {bson_addr}   documents back to back, as py-bson's sendobj/recvobj"
    );
    println!(
        "  packet-stream test server  {}   cs.packetstream requests and responses",
        packet_server.local_addr()
    );
    println!();
    Ok(Servers {
        bson_addr,
        bson_task,
        notes,
        packet_server,
    })
}

/// What the BSON part moved.
struct BsonSummary {
    docs: usize,
    bytes: u64,
}

async fn bson_part(
    addr: SocketAddr,
    checks: &mut Checks,
    notes: &mut mpsc::UnboundedReceiver<String>,
) -> Result<BsonSummary, CliError> {
    println!("1. BSON documents: the client sends JSON-described documents, the server decodes and re-encodes each");
    let docs = [
        json!({"hello": "world"}),
        json!({"seq": 1, "pad": {"$binary": {"base64": "eHh4eHh4eHh4eHh4", "subType": "00"}}}),
        json!({"nested": {"list": [1, "two", 3.5, null], "ok": true}, "big": 9_223_372_036_854_775_808_u64}),
    ];
    let sock = TcpStream::connect(addr)
        .await
        .map_err(|source| CliError::Connect { addr, source })?;
    let (rd, wr) = sock.into_split();
    let framing = FrameSpec::Bson(BsonDocument::new());
    let mut reader = FrameReader::new(rd, framing.clone());
    let mut writer = FrameWriter::new(wr, framing);
    for doc in &docs {
        let bytes =
            Bytes::from(
                docjson::json_to_bson(doc.clone()).map_err(|e| CliError::Usage {
                    what: "demo",
                    why: e.to_string(),
                })?,
            );
        println!("  -> {doc}");
        println!("     {} bytes: {}", bytes.len(), hex_preview(&bytes, 24));
        writer
            .queue(bytes.clone())
            .await
            .map_err(|source| CliError::Send {
                index: 1,
                peer: addr,
                source,
            })?;
        writer.flush().await.map_err(|source| CliError::Send {
            index: 1,
            peer: addr,
            source,
        })?;
        let echo = reader
            .next()
            .await
            .map_err(|source| CliError::Conn { peer: addr, source })?;
        let intact = echo.as_ref() == Some(&bytes);
        let shown = echo
            .as_deref()
            .and_then(|b| docjson::bson_to_json(b).ok())
            .map_or_else(|| "nothing".to_owned(), |v| v.to_string());
        let mark = checks.check(intact, format!("BSON echo of {doc}"));
        println!("  <- {shown}  same bytes back {mark}");
    }
    let _ = writer.shutdown().await;
    let end = reader
        .next()
        .await
        .map_err(|source| CliError::Conn { peer: addr, source })?;
    let clean = end.is_none();
    let mark = checks.check(clean, "BSON server closes after the client");
    println!("  (client closes; the server closes too {mark})");
    let bytes = writer.bytes_written();
    let mark = checks.check(
        bytes == reader.bytes_received(),
        "as many BSON bytes back as sent",
    );
    println!(
        "  {} bytes sent, {} received {mark}",
        bytes,
        reader.bytes_received()
    );

    // Well framed (length 8, last byte 0x00) but not a valid document: an
    // element of type 0x13 (decimal128) whose 16 bytes are missing.
    let bad = b"\x08\x00\x00\x00\x13a\x00\x00";
    println!(
        "  -> a malformed document: {} (a decimal128 element cut short)",
        hex_preview(bad, 24)
    );
    let mut sock = TcpStream::connect(addr)
        .await
        .map_err(|source| CliError::Connect { addr, source })?;
    let io_err = |source: io::Error| CliError::Conn {
        peer: addr,
        source: source.into(),
    };
    sock.write_all(bad).await.map_err(io_err)?;
    let mut back = Vec::new();
    // The server closes the connection (it may reset it: unread input).
    let _ = sock.read_to_end(&mut back).await;
    let note = notes.recv().await.unwrap_or_default();
    let refused = back.is_empty() && note.contains("malformed");
    let mark = checks.check(refused, "malformed BSON document refused, not echoed");
    println!("  <- nothing: the server closed the connection {mark}");
    println!("     server: {note}");
    Ok(BsonSummary {
        docs: docs.len(),
        bytes,
    })
}

/// What the packet part did.
struct CallSummary {
    total: usize,
    sequential: usize,
    batch_time: Duration,
    reordered: usize,
}

async fn packet_part(
    conn: &PacketConnection,
    tap: &Arc<Mutex<TapLog>>,
    checks: &mut Checks,
    addr: SocketAddr,
) -> Result<CallSummary, CliError> {
    println!("2. packet stream: one request at a time; the bytes are what went over the socket");
    let requests: [(u64, u64, &[u8], &str); 5] = [
        (0, 0, b"hello", "type 0 echoes"),
        (1, 0, b"stressed", "type 1 reverses"),
        (2, 0, b"", "type 2 answers flags 7 and \"flags\""),
        (3, 5, b"abc", "type 3 echoes flags and payload"),
        (
            9,
            0,
            b"?",
            "other types fail, as the original's handler raising",
        ),
    ];
    for (rq_type, flags, payload, what) in requests {
        let r = conn
            .request(rq_type, Bytes::from_static(payload))
            .flags(flags)
            .await
            .map_err(|e| crate::packet::call_error(addr, e, PART_DEADLINE.as_secs_f64()))?;
        let (sent, received) = tap_take(tap);
        println!("  {what}");
        for p in packets(&sent) {
            println!("    -> {p}");
        }
        for p in packets(&received) {
            println!("    <- {p}");
        }
        let want = expected(rq_type, flags, payload);
        let got = (r.ok, r.flags, r.payload.to_vec());
        let mark = checks.check(got == want, format!("packet call type {rq_type}"));
        println!(
            "       {} flags {} payload {} {mark}",
            if r.ok { "ok" } else { "failed" },
            r.flags,
            readable(&r.payload, 40)
        );
    }
    println!();

    println!("3. pipelined: {BATCH} requests of type 4 in flight at once on the same connection;");
    println!("   the server delays each by (payload length mod 50) ms, so answers come back out of order");
    let start = Instant::now();
    let mut set = JoinSet::new();
    let mut payloads = Vec::with_capacity(BATCH);
    for i in 0..BATCH {
        // 4 to 49 bytes: the index, then padding.
        let len = 4 + (i * 7919) % 46;
        let mut p = format!("{i:04}").into_bytes();
        p.resize(len, b'.');
        let payload = Bytes::from(p);
        payloads.push(payload.clone());
        let call = conn.call(0, 4, 0, payload);
        set.spawn(async move { (i, call.await) });
    }
    let mut order = Vec::with_capacity(BATCH);
    let mut matched = 0;
    while let Some(done) = set.join_next().await {
        let Ok((i, result)) = done else { continue };
        let r =
            result.map_err(|e| crate::packet::call_error(addr, e, PART_DEADLINE.as_secs_f64()))?;
        if r.ok && r.payload == payloads[i] {
            matched += 1;
        }
        order.push(i);
    }
    let batch_time = start.elapsed();
    let (sent, received) = tap_take(tap);
    let reordered = order
        .iter()
        .enumerate()
        .filter(|(pos, i)| pos != *i)
        .count();
    println!(
        "  {} requests sent ({} bytes), {} responses received ({} bytes) in {:.0} ms",
        packets(&sent).len(),
        sent.len(),
        packets(&received).len(),
        received.len(),
        batch_time.as_secs_f64() * 1000.0
    );
    let first: Vec<String> = order.iter().take(8).map(|i| format!("#{i}")).collect();
    println!(
        "  answers arrived in this order: {} …; {reordered} of {BATCH} not where they were sent",
        first.join(" ")
    );
    let mark = checks.check(
        matched == BATCH && order.len() == BATCH,
        "every pipelined response matched to its request",
    );
    println!("  every response carried its own request's payload: {matched} of {BATCH} {mark}");
    Ok(CallSummary {
        total: requests.len() + BATCH,
        sequential: requests.len(),
        batch_time,
        reordered,
    })
}

/// The packets in `bytes`, described (at most a few shown in full).
fn packets(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Ok(Some((p, used))) = Packet::parse(rest, &ParseLimits::default()) {
        let (text, _) = packet_fields(&p);
        out.push(format!("{:<26} {text}", hex_short(&rest[..used])));
        rest = &rest[used..];
    }
    if !rest.is_empty() {
        out.push(format!("{:<26} (partial packet)", hex_short(rest)));
    }
    out
}

/// The first 8 bytes in hex, then `…` if there are more.
fn hex_short(bytes: &[u8]) -> String {
    let mut s = hex_preview(&bytes[..bytes.len().min(8)], 8);
    if bytes.len() > 8 {
        s.push_str(" …");
    }
    s
}

/// Bytes seen going each way through a [`Tap`].
#[derive(Default)]
struct TapLog {
    sent: Vec<u8>,
    received: Vec<u8>,
    total_sent: u64,
    total_received: u64,
}

/// Takes what the tap saw since the last call.
fn tap_take(tap: &Mutex<TapLog>) -> (Vec<u8>, Vec<u8>) {
    let mut log = tap
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    (
        std::mem::take(&mut log.sent),
        std::mem::take(&mut log.received),
    )
}

/// A transport that records what goes through it, to show the real bytes.
struct Tap<S> {
    inner: S,
    log: Arc<Mutex<TapLog>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let new = &buf.filled()[before..];
            let mut log = self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            log.received.extend_from_slice(new);
            log.total_received += new.len() as u64;
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            let mut log = self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            log.sent.extend_from_slice(&buf[..n]);
            log.total_sent += n as u64;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            let mut log = self
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut left = n;
            for b in bufs {
                let take = left.min(b.len());
                log.sent.extend_from_slice(&b[..take]);
                left -= take;
                if left == 0 {
                    break;
                }
            }
            log.total_sent += n as u64;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
