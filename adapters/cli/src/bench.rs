//! `framewire bench`: loopback throughput and latency.
//!
//! * A framing (`--codec length`, `bson`, …): frames of `--size` bytes are
//!   sent to an echo server (in this process, or `--connect ADDR`) with up
//!   to `--pipeline` frames in flight; each frame's latency is the time from
//!   queueing it to receiving its echo.
//! * `--codec packet`: packet-stream calls (rq_type 0, `--size`-byte
//!   payloads) against the test server, `--pipeline` calls in flight.
//!
//! A progress bar runs on stderr (when it is a terminal); the summary table
//! (throughput, median and p99 latency) goes to stdout, or one JSON object
//! with `--json`. Every echo is checked; a wrong one fails the run.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{doc, spec::BinarySubtype, Binary};
use bytes::Bytes;
use framewire::message::{bson as fwbson, json_header};
use framewire_tokio::packet::{serve, ServeOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::codec::{is_packet, FrameSpec};
use crate::conn::{FrameReader, FrameWriter};
use crate::echo::echo_connection;
use crate::error::{resolve, CliError};
use crate::packet::{call_error, connect, test_handler};
use crate::render::bytes_human;

/// What `bench` was asked to do.
pub(crate) struct BenchArgs {
    /// The codec (or `packet`).
    pub(crate) codec: FrameSpec,
    /// Frames or calls.
    pub(crate) count: u64,
    /// Payload size in bytes.
    pub(crate) size: usize,
    /// Frames or calls in flight at once.
    pub(crate) pipeline: usize,
    /// An external echo server instead of one in this process.
    pub(crate) connect: Option<String>,
    /// One JSON object instead of the table.
    pub(crate) json: bool,
}

/// What a run measured.
pub(crate) struct Measured {
    /// Frames or calls completed.
    pub(crate) count: u64,
    /// Payload bytes of one frame or call.
    pub(crate) payload_len: usize,
    /// Wall time of the whole run.
    pub(crate) elapsed: Duration,
    /// Every latency, sorted.
    pub(crate) latencies: Vec<Duration>,
}

impl Measured {
    /// The latency at quantile `q` (0..=1) by nearest rank.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        #[allow(clippy::cast_precision_loss)]
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }

    /// Frames or calls per second.
    pub(crate) fn rate(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.count as f64;
        n / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn progress(count: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The payload of every bench frame for `codec`, about `size` bytes.
pub(crate) fn bench_payload(codec: &FrameSpec, size: usize) -> Result<Bytes, CliError> {
    let bytes = match codec {
        FrameSpec::Fixed(f) => vec![b'x'; f.size()],
        FrameSpec::Bson(_) => {
            // {"pad": binary} is 15 bytes around the binary's bytes.
            let pad = Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![b'x'; size.saturating_sub(15)],
            };
            fwbson::to_vec(&doc! { "pad": pad }).map_err(|e| CliError::Usage {
                what: "--size",
                why: e.to_string(),
            })?
        }
        FrameSpec::JsonHeader(_) => {
            json_header::encode_message_vec("text/plain", "utf-8", "little", &vec![b'x'; size])
                .map_err(|e| CliError::Usage {
                    what: "--size",
                    why: e.to_string(),
                })?
        }
        _ => vec![b'x'; size],
    };
    Ok(Bytes::from(bytes))
}

/// Runs `bench` and prints the summary.
pub(crate) async fn run(args: BenchArgs) -> Result<(), CliError> {
    if args.count == 0 || args.pipeline == 0 {
        return Err(CliError::Usage {
            what: if args.count == 0 {
                "--count"
            } else {
                "--pipeline"
            },
            why: "must be at least 1".into(),
        });
    }
    let m = if is_packet(&args.codec) {
        bench_packet(&args).await?
    } else {
        bench_framing(&args).await?
    };
    print_summary(&args, &m);
    Ok(())
}

fn print_summary(args: &BenchArgs, m: &Measured) {
    #[allow(clippy::cast_precision_loss)]
    let mib_s = m.rate() * m.payload_len as f64 / (1024.0 * 1024.0);
    let median = m.quantile(0.5);
    let p99 = m.quantile(0.99);
    if args.json {
        let v = json!({
            "codec": args.codec.to_string(),
            "count": m.count,
            "payload": m.payload_len,
            "pipeline": args.pipeline,
            "elapsed_s": m.elapsed.as_secs_f64(),
            "per_second": m.rate(),
            "mib_per_second": mib_s,
            "median_us": median.as_secs_f64() * 1e6,
            "p99_us": p99.as_secs_f64() * 1e6,
        });
        println!("{v}");
        return;
    }
    let what = if is_packet(&args.codec) {
        "calls"
    } else {
        "frames"
    };
    let rows = [
        ("codec", args.codec.to_string()),
        (what, m.count.to_string()),
        ("payload", bytes_human(m.payload_len as u64)),
        ("in flight", args.pipeline.to_string()),
        ("elapsed", format!("{:.3} s", m.elapsed.as_secs_f64())),
        ("rate", format!("{:.0} {what}/s", m.rate())),
        ("throughput", format!("{mib_s:.1} MiB/s each way")),
        ("latency median", fmt_latency(median)),
        ("latency p99", fmt_latency(p99)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
}

fn fmt_latency(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// A loopback listener on a free port.
async fn loopback_listener() -> Result<TcpListener, CliError> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    TcpListener::bind(loopback)
        .await
        .map_err(|source| CliError::Bind {
            addr: loopback,
            source,
        })
}

/// Where the framing bench connects: `--connect`, or an echo server
/// started here (stopped when the guard drops).
async fn framing_target(
    args: &BenchArgs,
    framing: &FrameSpec,
) -> Result<(SocketAddr, Option<AbortOnDrop>), CliError> {
    if let Some(a) = &args.connect {
        return Ok((resolve(a).await?, None));
    }
    let listener = loopback_listener().await?;
    let addr = listener.local_addr().map_err(|source| CliError::Bind {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source,
    })?;
    let framing = framing.clone();
    let task = tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let f = framing.clone();
            tokio::spawn(async move {
                let _ = echo_connection(sock, f, |_, _| {}).await;
            });
        }
    });
    Ok((addr, Some(AbortOnDrop(task))))
}

/// Sends `count` copies of `payload`, at most as many unanswered as the
/// window has permits, stamping each frame's send time.
async fn send_frames(
    mut writer: FrameWriter<OwnedWriteHalf>,
    window: Arc<Semaphore>,
    stamps: Arc<Mutex<VecDeque<Instant>>>,
    payload: Bytes,
    count: u64,
    addr: SocketAddr,
) -> Result<FrameWriter<OwnedWriteHalf>, CliError> {
    let mut sent = 0u64;
    while sent < count {
        // Wait for one slot, then take every free one: one write per batch.
        let Ok(p) = window.acquire().await else { break };
        p.forget();
        let mut batch = 1u64;
        while sent + batch < count {
            match window.try_acquire() {
                Ok(p) => {
                    p.forget();
                    batch += 1;
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        for _ in 0..batch {
            writer
                .queue(payload.clone())
                .await
                .map_err(|source| CliError::Send {
                    index: sent + 1,
                    peer: addr,
                    source,
                })?;
            stamps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push_back(now);
            sent += 1;
        }
        writer.flush().await.map_err(|source| CliError::Send {
            index: sent,
            peer: addr,
            source,
        })?;
    }
    Ok(writer)
}

async fn bench_framing(args: &BenchArgs) -> Result<Measured, CliError> {
    let framing = args.codec.clone();
    let payload = bench_payload(&args.codec, args.size)?;
    let (addr, _server) = framing_target(args, &framing).await?;
    let sock = TcpStream::connect(addr)
        .await
        .map_err(|source| CliError::Connect { addr, source })?;
    let _ = sock.set_nodelay(true);
    let (rd, wr) = sock.into_split();
    let mut reader = FrameReader::new(rd, framing.clone());
    let writer = FrameWriter::new(wr, framing);
    let window = Arc::new(Semaphore::new(args.pipeline));
    let stamps = Arc::new(Mutex::new(VecDeque::<Instant>::with_capacity(
        args.pipeline,
    )));
    let count = args.count;
    let bar = progress(count);
    let start = Instant::now();

    let send = send_frames(
        writer,
        Arc::clone(&window),
        Arc::clone(&stamps),
        payload.clone(),
        count,
        addr,
    );
    let receive = async {
        let mut latencies = Vec::with_capacity(count as usize);
        let mut wrong = 0u64;
        while (latencies.len() as u64) < count {
            let frame = reader
                .next()
                .await
                .map_err(|source| CliError::Conn { peer: addr, source })?
                .ok_or(CliError::ClosedEarly {
                    peer: addr,
                    got: latencies.len() as u64,
                    expected: count,
                })?;
            let sent_at = stamps
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop_front()
                .unwrap_or_else(Instant::now);
            latencies.push(sent_at.elapsed());
            if frame != payload {
                wrong += 1;
            }
            window.add_permits(1);
            bar.inc(1);
        }
        Ok::<_, CliError>((latencies, wrong))
    };
    let (mut writer, (mut latencies, wrong)) = tokio::try_join!(send, receive)?;
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let _ = writer.shutdown().await;
    if wrong > 0 {
        return Err(CliError::Usage {
            what: "bench",
            why: format!("{wrong} of {count} echoes differ from what was sent"),
        });
    }
    latencies.sort_unstable();
    Ok(Measured {
        count,
        payload_len: payload.len(),
        elapsed,
        latencies,
    })
}

async fn bench_packet(args: &BenchArgs) -> Result<Measured, CliError> {
    let (addr, server) = if let Some(a) = &args.connect {
        (resolve(a).await?, None)
    } else {
        let listener = loopback_listener().await?;
        let server = serve(listener, test_handler, ServeOptions::new()).map_err(|source| {
            CliError::Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                source,
            }
        })?;
        (server.local_addr(), Some(server))
    };
    let conn = connect(addr).await?;
    let payload = Bytes::from(vec![b'x'; args.size]);
    let count = args.count;
    let bar = progress(count);
    let start = Instant::now();
    let mut in_flight = JoinSet::new();
    let mut issued = 0u64;
    let mut latencies = Vec::with_capacity(count as usize);
    let mut wrong = 0u64;
    while (latencies.len() as u64) < count {
        while issued < count && in_flight.len() < args.pipeline {
            let call = conn.call(0, 0, 0, payload.clone());
            in_flight.spawn(async move {
                let t = Instant::now();
                let r = call.await;
                (t.elapsed(), r)
            });
            issued += 1;
        }
        let Some(done) = in_flight.join_next().await else {
            break;
        };
        let (latency, result) = done.map_err(|e| CliError::Usage {
            what: "bench",
            why: format!("a call task failed: {e}"),
        })?;
        let response = result.map_err(|e| call_error(addr, e, f64::INFINITY))?;
        if !response.ok || response.payload != payload {
            wrong += 1;
        }
        latencies.push(latency);
        bar.inc(1);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let _ = conn.close().await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    if wrong > 0 {
        return Err(CliError::Usage {
            what: "bench",
            why: format!("{wrong} of {count} responses differ from what was sent"),
        });
    }
    latencies.sort_unstable();
    Ok(Measured {
        count,
        payload_len: args.size,
        elapsed,
        latencies,
    })
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let m = Measured {
            count: 100,
            payload_len: 1,
            elapsed: Duration::from_secs(1),
            latencies: (1..=100).map(Duration::from_micros).collect(),
        };
        assert_eq!(m.quantile(0.5), Duration::from_micros(50));
        assert_eq!(m.quantile(0.99), Duration::from_micros(99));
        assert_eq!(m.quantile(1.0), Duration::from_micros(100));
        assert!((m.rate() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn payloads_fit_their_codec() {
        use framewire::framing::Framing;
        for (codec, size) in [
            ("length", 64),
            ("bson", 64),
            ("lines", 10),
            ("fixed:8", 999),
            ("json-header", 16),
        ] {
            let codec: FrameSpec = codec.parse().unwrap();
            let p = bench_payload(&codec, size).unwrap();
            assert!(codec.header(&p).is_ok(), "{codec}");
        }
        assert_eq!(
            bench_payload(&"bson".parse().unwrap(), 64).unwrap().len(),
            64
        );
        assert_eq!(
            bench_payload(&"fixed:8".parse().unwrap(), 999)
                .unwrap()
                .len(),
            8
        );
    }
}
