//! DESIGN.md section 6 targets as ratios measured side by side in one run.
//!
//! ```text
//! cargo bench -p framewire-tests --bench ratios              # ~15 s
//! cargo bench -p framewire-tests --bench ratios -- --quick   # ~5 s, noisier
//! cargo bench -p framewire-tests --bench ratios -- --strict  # exit 1 on a MISS
//! ```
//!
//! Prints a markdown table of rates and one of target ratios (PASS/MISS).
//! Absolute rates depend on the machine and on whatever else runs on it;
//! only the ratios, taken between contenders timed in the same process in
//! interleaved rounds, are compared with the targets. Nothing here is a
//! test: `cargo test` does not build or run it.
//!
//! 1. Framing decode: the same prebuilt input (`u32` BE length + payload),
//!    fed in 64 KiB chunks to tokio-util's `LengthDelimitedCodec`, a bare
//!    hand-written decoder (borrowed slices, and `Bytes`), framewire's
//!    `LengthPrefixed::decode`, `BorrowedFramedStream` and `FramedStream`.
//!    Each contender is timed in rounds interleaved with the others; its best
//!    round counts (interference only ever slows a round down).
//! 2. BSON objects over loopback TCP: framewire-std `Framed<TcpStream,
//!    BsonDocument>` `send_obj`/`recv_obj` against py-bson's
//!    `sendobj`/`recvobj` (`tests/python/pybson_bench.py`, run as a
//!    subprocess that times itself). Both ends of both implementations are
//!    pinned: "same CPU" puts client and echo server on CPU 0, "cross CPU"
//!    puts the client on CPU 0 and the server on CPU 1 (DESIGN.md: placement
//!    decides loopback latency more than anything else). Every socket has
//!    TCP_NODELAY. For the bound analysis the same 50-byte document also goes
//!    through bare sockets in each mode, without any BSON or framing work
//!    (`bare bytes, ...`): what the loopback and the syscalls alone allow.
//!
//! Every BSON run also reports objects per CPU-second: the CPU time of its
//! client and server together during the timed part (per thread, from
//! `/proc/.../schedstat`). With both ends on one CPU that is the rate an idle
//! machine would show, and it hardly moves when other processes take the
//! CPU away, which the wall-clock rates do.
//!
//! `--only framing|bson` runs one section; `--filter TEXT` runs only the
//! BSON contenders whose name contains TEXT (for profiling; ratios whose
//! two sides did not both run are left out).

// Counts and byte totals here are far below 2^52: converting them to f64 for
// rates loses nothing.
#![allow(clippy::cast_precision_loss)]

mod common;

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    bare_borrowed, borrowed_stream, build_input, framing_decode, owned_stream, BareBytes,
    BareBytesSlice, OneCopy, SliceBuf, Tally, TokioUtil, BORROWED_RX,
};
use framewire::framing::{BsonDocument, LengthPrefixed};
use framewire::stream::{BorrowedFramedStream, FramedStream};
use framewire_std::Framed;
use framewire_tests::PythonPeer;
use serde::{Deserialize, Serialize};

/// WIRE.md's 50-byte benchmark document `{"seq": 0, "pad": b"x"*26}` as
/// py-bson's `bson.dumps` writes it.
const BENCH_DOC_SEQ0: &str = "3200000010736571000000000005706164001a00000000787878787878787878787878787878787878787878787878787800";

/// `{"seq": i, "pad": b"x"*26}`: `seq` is an int32 (0x10) and `pad` a
/// generic binary (0x05 subtype 0), as py-bson encodes them.
#[derive(Serialize, Deserialize)]
struct Small {
    seq: i32,
    pad: bson::Binary,
}

impl Small {
    fn new(seq: i32) -> Small {
        Small {
            seq,
            pad: bson::Binary {
                subtype: bson::spec::BinarySubtype::Generic,
                bytes: vec![b'x'; 26],
            },
        }
    }
}

/// Objects in flight per window in the pipelined runs.
const WINDOW: usize = 64;

/// Round trips/objects sent before the timed part of a loopback run.
const WARMUP: usize = 200;

/// Run-size knobs; `--quick` divides them.
struct Plan {
    rounds: usize,
    bson_rounds: usize,
    small_runs: usize,
    large_runs: usize,
    rust_rtt: usize,
    rust_pipelined: usize,
    rust_batched: usize,
    py_rtt: usize,
    py_pipelined: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let d = if quick { 4 } else { 1 };
        Plan {
            rounds: if quick { 3 } else { 7 },
            bson_rounds: if quick { 1 } else { 3 },
            small_runs: 10,
            large_runs: 20,
            rust_rtt: 10_000 / d,
            rust_pipelined: 40_000 / d,
            rust_batched: 200_000 / d,
            py_rtt: 2_000 / d,
            py_pipelined: 6_000 / d,
        }
    }
}

impl Plan {
    /// Objects per Rust (or bare) run in `mode`.
    fn rust_n(&self, mode: Mode) -> usize {
        match mode {
            Mode::Rtt => self.rust_rtt,
            Mode::Pipelined => self.rust_pipelined,
            Mode::Batched => self.rust_batched,
        }
    }
}

/// One measured rate.
struct Rate {
    section: &'static str,
    name: String,
    per_sec: f64,
    unit: &'static str,
}

/// One target: `num / den >= need`.
struct Target {
    what: String,
    num: f64,
    den: f64,
    need: f64,
}

impl Target {
    fn ratio(&self) -> f64 {
        self.num / self.den
    }

    fn pass(&self) -> bool {
        self.ratio() >= self.need
    }
}

/// Pins the calling thread to `cpu` (threads it spawns inherit it). Returns
/// whether that worked; a machine with fewer CPUs runs unpinned.
fn pin(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

type Contender<'a> = (&'static str, Box<dyn FnMut(&[u8]) -> Tally + 'a>);

/// Times every contender `runs` times over `input` per round, rounds
/// interleaved; returns each one's best rate in `per_run` units per second.
fn race(
    input: &[u8],
    want: Tally,
    per_run: f64,
    runs: usize,
    rounds: usize,
    contenders: &mut [Contender<'_>],
) -> Vec<(&'static str, f64)> {
    for (name, run) in contenders.iter_mut() {
        // Warm-up, and a correctness check: a decoder that skips frames
        // does not get to look fast.
        assert_eq!(run(input), want, "{name} decoded the input wrongly");
    }
    let mut best = vec![0f64; contenders.len()];
    for _ in 0..rounds {
        for (i, (_, run)) in contenders.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..runs {
                black_box(run(black_box(input)));
            }
            let rate = per_run * runs as f64 / start.elapsed().as_secs_f64();
            best[i] = best[i].max(rate);
        }
    }
    contenders.iter().map(|(n, _)| *n).zip(best).collect()
}

fn small_frames_section(plan: &Plan, rates: &mut Vec<Rate>, targets: &mut Vec<Target>) {
    // 16-byte payloads: 65,536 frames, 1.25 MiB.
    let (frames, payload) = (64 * 1024, 16);
    let input = build_input(frames, payload);
    let want = Tally::expected(frames, payload);

    let mut tokio = TokioUtil::new();
    let mut rx = SliceBuf::new(payload + 4);
    let mut rx2 = SliceBuf::new(payload + 4);
    let mut bare = BareBytes::new();
    let mut bare_slice = BareBytesSlice::new();
    let mut framing = LengthPrefixed::new();
    let (mut rxb, mut txb) = (vec![0u8; BORROWED_RX], vec![0u8; 64]);
    let mut borrowed = BorrowedFramedStream::new(LengthPrefixed::new(), &mut rxb, &mut txb);
    let mut owned = FramedStream::new(LengthPrefixed::new());
    let mut contenders: Vec<Contender<'_>> = vec![
        (
            "tokio-util LengthDelimitedCodec",
            Box::new(|i| tokio.run(i)),
        ),
        (
            "bare decoder, borrowed slices",
            Box::new(|i| bare_borrowed(&mut rx, i)),
        ),
        (
            "bare decoder, Bytes via split_to",
            Box::new(|i| bare.run(i)),
        ),
        (
            "bare decoder, Bytes via slice",
            Box::new(|i| bare_slice.run(i)),
        ),
        (
            "framewire LengthPrefixed::decode",
            Box::new(|i| framing_decode(&mut framing, &mut rx2, i)),
        ),
        (
            "framewire BorrowedFramedStream",
            Box::new(|i| borrowed_stream(&mut borrowed, i)),
        ),
        (
            "framewire FramedStream (Bytes)",
            Box::new(|i| owned_stream(&mut owned, i)),
        ),
    ];
    let small = race(
        &input,
        want,
        frames as f64,
        plan.small_runs,
        plan.rounds,
        &mut contenders,
    );
    drop(contenders);
    let r = |name: &str| small.iter().find(|(n, _)| *n == name).expect("ran").1;
    let tokio_rate = r("tokio-util LengthDelimitedCodec");
    let bare_slices = r("bare decoder, borrowed slices");
    // The faster of the two bare `Bytes` decoders is the reference.
    let bare_bytes = r("bare decoder, Bytes via split_to").max(r("bare decoder, Bytes via slice"));
    for (fw, bare, bare_name) in [
        (
            "framewire LengthPrefixed::decode",
            bare_slices,
            "bare (slices)",
        ),
        (
            "framewire BorrowedFramedStream",
            bare_slices,
            "bare (slices)",
        ),
        ("framewire FramedStream (Bytes)", bare_bytes, "bare (Bytes)"),
    ] {
        targets.push(Target {
            what: format!("16 B frames: {fw} / tokio-util"),
            num: r(fw),
            den: tokio_rate,
            need: 3.0,
        });
        targets.push(Target {
            what: format!("16 B frames: {fw} / {bare_name}"),
            num: r(fw),
            den: bare,
            need: 0.5,
        });
    }
    for (name, rate) in small {
        rates.push(Rate {
            section: "decode 16 B frames",
            name: name.into(),
            per_sec: rate,
            unit: "frames/s",
        });
    }
}

fn large_frames_section(plan: &Plan, rates: &mut Vec<Rate>, targets: &mut Vec<Target>) {
    // 64 KiB payloads: 64 frames, 4 MiB.
    let (frames, payload) = (64, 64 * 1024);
    let input = build_input(frames, payload);
    let want = Tally::expected(frames, payload);
    let mut copy = OneCopy::new(input.len());
    let mut tokio = TokioUtil::new();
    let mut owned = FramedStream::new(LengthPrefixed::new());
    let mut rx = SliceBuf::new(payload + 4);
    let mut contenders: Vec<Contender<'_>> = vec![
        (
            "one memcpy of the input (reference)",
            Box::new(|i| {
                copy.run(i);
                want
            }),
        ),
        (
            "tokio-util LengthDelimitedCodec",
            Box::new(|i| tokio.run(i)),
        ),
        (
            "bare decoder, borrowed slices",
            Box::new(|i| bare_borrowed(&mut rx, i)),
        ),
        (
            "framewire FramedStream (Bytes)",
            Box::new(|i| owned_stream(&mut owned, i)),
        ),
    ];
    let large = race(
        &input,
        want,
        input.len() as f64 / f64::from(1 << 30),
        plan.large_runs,
        plan.rounds,
        &mut contenders,
    );
    drop(contenders);
    let r = |name: &str| large.iter().find(|(n, _)| *n == name).expect("ran").1;
    targets.push(Target {
        what: "64 KiB frames: FramedStream / one memcpy (one copy ≈ 1, two ≤ 0.5)".into(),
        num: r("framewire FramedStream (Bytes)"),
        den: r("one memcpy of the input (reference)"),
        need: 0.5,
    });
    targets.push(Target {
        what: "64 KiB frames: FramedStream / tokio-util (no worse)".into(),
        num: r("framewire FramedStream (Bytes)"),
        den: r("tokio-util LengthDelimitedCodec"),
        need: 0.9,
    });
    for (name, rate) in large {
        rates.push(Rate {
            section: "decode 64 KiB frames",
            name: name.into(),
            per_sec: rate,
            unit: "GiB/s",
        });
    }
}

/// How the Rust client drives the echo.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `send_obj`, then `recv_obj`: one round trip at a time.
    Rtt,
    /// `send_obj` x WINDOW, then `recv_obj` x WINDOW (one write per object,
    /// as py-bson's `sendobj`).
    Pipelined,
    /// Like `Pipelined`, but each window is encoded into the output queue
    /// (`queue_obj`) and written with one `flush`; the echo server flushes
    /// when its input runs dry. The same objects and bytes; framewire's
    /// batching API.
    Batched,
}

fn nodelay(s: &TcpStream) {
    s.set_nodelay(true).expect("TCP_NODELAY");
}

/// The echo server: every object back as it came (decoded and re-encoded,
/// as py-bson's `sendobj(recvobj())`), until the client closes.
fn echo_server(listener: &TcpListener, cpu: usize, batched: bool) {
    pin(cpu);
    let (sock, _) = listener.accept().expect("accept");
    nodelay(&sock);
    let mut conn = Framed::new(sock, BsonDocument::new());
    while let Some(obj) = conn.recv_obj::<Small>().expect("echo recv") {
        if batched {
            conn.queue_obj(&obj).expect("queue");
            if conn.stream().buffered_len() == 0 {
                conn.flush().expect("flush");
            }
        } else {
            conn.send_obj(&obj).expect("echo send");
        }
    }
    conn.flush().expect("flush");
}

fn check(obj: Option<Small>, seq: i32) {
    let obj = obj.expect("echo closed early");
    assert_eq!(obj.seq, seq, "echo out of order");
    assert_eq!(obj.pad.bytes.len(), 26);
}

fn client_run(conn: &mut Framed<TcpStream, BsonDocument>, mode: Mode, start: usize, n: usize) {
    let mut seq = start;
    while seq < start + n {
        let batch = if mode == Mode::Rtt {
            1
        } else {
            WINDOW.min(start + n - seq)
        };
        for k in seq..seq + batch {
            let obj = Small::new(k as i32);
            if mode == Mode::Batched {
                conn.queue_obj(&obj).expect("queue");
            } else {
                conn.send_obj(&obj).expect("send");
            }
        }
        if mode == Mode::Batched {
            conn.flush().expect("flush");
        }
        for k in seq..seq + batch {
            check(conn.recv_obj().expect("recv"), k as i32);
        }
        seq += batch;
    }
}

/// What one BSON loopback run measured.
#[derive(Clone, Copy, Default)]
struct Speed {
    /// Objects per second (wall clock).
    wall: f64,
    /// Objects per CPU-second of client and server together (0 if the CPU
    /// time is not available).
    cpu: f64,
}

impl Speed {
    fn new(objects: usize, wall: Duration, cpu: Option<Duration>) -> Speed {
        Speed {
            wall: objects as f64 / wall.as_secs_f64(),
            cpu: cpu
                .filter(|c| !c.is_zero())
                .map_or(0.0, |c| objects as f64 / c.as_secs_f64()),
        }
    }

    fn max(self, other: Speed) -> Speed {
        Speed {
            wall: self.wall.max(other.wall),
            cpu: self.cpu.max(other.cpu),
        }
    }
}

/// The calling thread's id (from `/proc/thread-self`), for [`threads_cpu`].
fn thread_id() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_str()?.to_owned())
}

/// CPU time so far of these threads of this process together, from their
/// `schedstat` (nanoseconds); `None` if any is unavailable.
fn threads_cpu(tids: &[Option<String>]) -> Option<Duration> {
    let mut total = Duration::ZERO;
    for tid in tids {
        let path = format!("/proc/self/task/{}/schedstat", tid.as_ref()?);
        let stat = std::fs::read_to_string(path).ok()?;
        total += Duration::from_nanos(stat.split_whitespace().next()?.parse().ok()?);
    }
    Some(total)
}

/// Runs `server` and `client` on their own threads; `client` gets a
/// function that reads the CPU time of both threads so far.
fn client_server<R: Send>(
    server: impl FnOnce() + Send,
    client: impl FnOnce(&dyn Fn() -> Option<Duration>) -> R + Send,
) -> R {
    thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let server = scope.spawn(move || {
            let _ = tx.send(thread_id());
            server();
        });
        let server_tid = rx.recv().expect("server thread id");
        let result = scope
            .spawn(move || {
                let tids = [thread_id(), server_tid];
                client(&|| threads_cpu(&tids))
            })
            .join()
            .expect("client");
        server.join().expect("server");
        result
    })
}

/// Objects per second of a Rust client + echo server pair over loopback.
fn rust_bson(mode: Mode, n: usize, client_cpu: usize, server_cpu: usize) -> Speed {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    client_server(
        move || echo_server(&listener, server_cpu, mode == Mode::Batched),
        move |cpu| {
            pin(client_cpu);
            let sock = TcpStream::connect(addr).expect("connect");
            nodelay(&sock);
            let mut conn = Framed::new(sock, BsonDocument::new());
            client_run(&mut conn, mode, 0, WARMUP);
            let (cpu0, start) = (cpu(), Instant::now());
            client_run(&mut conn, mode, WARMUP, n);
            let (wall, cpu1) = (start.elapsed(), cpu());
            Speed::new(n, wall, cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)))
        },
    )
}

/// Objects per second of py-bson's `sendobj`/`recvobj`, measured by the
/// Python helper itself.
fn python_bson(mode: &str, n: usize, client_cpu: usize, server_cpu: usize) -> Speed {
    let (n, c, s) = (
        n.to_string(),
        client_cpu.to_string(),
        server_cpu.to_string(),
    );
    let window = WINDOW.to_string();
    let args = [
        mode,
        &n,
        "--window",
        &window,
        "--client-cpu",
        &c,
        "--server-cpu",
        &s,
    ];
    let peer = PythonPeer::start("pybson_bench.py", &args, false);
    let (summary, ok) = peer.finish(Duration::from_secs(120));
    assert!(ok, "pybson_bench.py failed: {summary}");
    Speed {
        wall: summary["rate"].as_f64().expect("rate in the summary"),
        cpu: summary["cpu_rate"].as_f64().unwrap_or(0.0),
    }
}

/// The 50-byte benchmark document (`seq 0`) as bare bytes, for the bound
/// contenders.
fn bench_doc() -> Vec<u8> {
    framewire::message::bson::to_vec(&Small::new(0)).expect("encode")
}

/// The bare-bytes echo server of the bound contenders: reads whatever is
/// there (up to 64 KiB), and echoes every complete 50-byte message with one
/// `write` each, or (`batched`) all complete messages of a read with one
/// `write`. No BSON, no framing state: only the syscalls and the loopback.
fn bare_echo_server(listener: &TcpListener, cpu: usize, batched: bool) {
    use std::io::{Read, Write};
    pin(cpu);
    let (mut sock, _) = listener.accept().expect("accept");
    nodelay(&sock);
    let size = bench_doc().len();
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    loop {
        let n = sock.read(&mut buf[have..]).expect("bare echo read");
        if n == 0 {
            break;
        }
        have += n;
        let whole = have - have % size;
        if batched {
            sock.write_all(&buf[..whole]).expect("bare echo write");
        } else {
            for msg in buf[..whole].chunks_exact(size) {
                sock.write_all(msg).expect("bare echo write");
            }
        }
        buf.copy_within(whole..have, 0);
        have -= whole;
    }
}

/// Messages per second of the bare-bytes client against
/// [`bare_echo_server`]: `Rtt` writes one message and reads it back;
/// `Pipelined` writes `WINDOW` messages with one `write` each, then reads the
/// window back; `Batched` writes the window with one `write`.
fn bare_bson(mode: Mode, n: usize, client_cpu: usize, server_cpu: usize) -> Speed {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = move || bare_echo_server(&listener, server_cpu, mode == Mode::Batched);
    client_server(server, move |cpu| {
        pin(client_cpu);
        let mut sock = TcpStream::connect(addr).expect("connect");
        nodelay(&sock);
        let doc = bench_doc();
        let window = if mode == Mode::Rtt { 1 } else { WINDOW };
        let out: Vec<u8> = doc.repeat(window);
        let mut back = vec![0u8; out.len()];
        let mut run = |count: usize| {
            for _ in 0..count.div_ceil(window) {
                if mode == Mode::Pipelined {
                    for msg in out.chunks_exact(doc.len()) {
                        sock.write_all(msg).expect("write");
                    }
                } else {
                    sock.write_all(&out).expect("write");
                }
                sock.read_exact(&mut back).expect("read");
                assert!(back == out, "bare echo mismatch");
            }
        };
        run(WARMUP);
        let (cpu0, start) = (cpu(), Instant::now());
        run(n);
        let (wall, cpu1) = (start.elapsed(), cpu());
        let objects = n.div_ceil(window) * window;
        Speed::new(
            objects,
            wall,
            cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a)),
        )
    })
}

/// One BSON loopback contender.
#[derive(Clone, Copy, PartialEq)]
enum BsonRun {
    /// `pybson_bench.py` in this mode.
    Py(&'static str),
    /// framewire-std `Framed` in this mode.
    Rust(Mode),
    /// Bare bytes in this mode (the bound).
    Bare(Mode),
}

/// Every BSON contender, in run order, with its name.
const BSON_RUNS: [(&str, BsonRun); 10] = [
    ("py-bson sendobj/recvobj, round trips", BsonRun::Py("rtt")),
    (
        "py-bson sendobj/recvobj, pipelined x64",
        BsonRun::Py("pipelined"),
    ),
    (
        "framewire send_obj/recv_obj, round trips",
        BsonRun::Rust(Mode::Rtt),
    ),
    (
        "framewire send_obj/recv_obj, pipelined x64",
        BsonRun::Rust(Mode::Pipelined),
    ),
    (
        "framewire queue+flush, pipelined x64 batched",
        BsonRun::Rust(Mode::Batched),
    ),
    (
        "bare bytes (no BSON), round trips",
        BsonRun::Bare(Mode::Rtt),
    ),
    (
        "bare bytes (no BSON), pipelined x64, one write each",
        BsonRun::Bare(Mode::Pipelined),
    ),
    (
        "bare bytes (no BSON), pipelined x64, one write per window",
        BsonRun::Bare(Mode::Batched),
    ),
    // Bound analysis only (not py-bson's sendobj/recvobj, no target).
    (
        "py-bson dumps/loads, batched by hand x64 (not sendobj)",
        BsonRun::Py("batched"),
    ),
    (
        "py-bson dumps+loads only, no socket (1 encode + 1 decode)",
        BsonRun::Py("codec"),
    ),
];

fn bson_section(plan: &Plan, filter: &str, rates: &mut Vec<Rate>, targets: &mut Vec<Target>) {
    let doc = bench_doc();
    let golden: Vec<u8> = (0..BENCH_DOC_SEQ0.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&BENCH_DOC_SEQ0[i..i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(doc, golden, "the Rust benchmark document is not py-bson's");

    let cpus = thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut placements = vec![("same CPU (0+0)", 0, 0)];
    if cpus >= 2 {
        placements.push(("cross CPU (0+1)", 0, 1));
    }
    let runs: Vec<bool> = BSON_RUNS.iter().map(|(n, _)| n.contains(filter)).collect();
    // Every run is repeated `bson_rounds` times, interleaved with the others;
    // the best of each counts (interference only ever slows a run down).
    let mut best = vec![[Speed::default(); BSON_RUNS.len()]; placements.len()];
    for _ in 0..plan.bson_rounds {
        for (&(_, c, s), best) in placements.iter().zip(best.iter_mut()) {
            for (i, &(_, run)) in BSON_RUNS.iter().enumerate() {
                if !runs[i] {
                    continue;
                }
                let got = match run {
                    BsonRun::Py(mode) => python_bson(
                        mode,
                        if mode == "rtt" {
                            plan.py_rtt
                        } else {
                            plan.py_pipelined
                        },
                        c,
                        s,
                    ),
                    BsonRun::Rust(mode) => rust_bson(mode, plan.rust_n(mode), c, s),
                    BsonRun::Bare(mode) => bare_bson(mode, plan.rust_n(mode), c, s),
                };
                best[i] = best[i].max(got);
            }
        }
    }
    bson_report(&placements, &best, &runs, rates, targets);
}

/// The per-CPU-second figures of one placement: rates, and the framewire /
/// py-bson and bound ratios on that basis (information, not targets).
fn bson_cpu_report(
    place: &str,
    same_cpu: bool,
    speeds: &[Speed; BSON_RUNS.len()],
    runs: &[bool],
    rates: &mut Vec<Rate>,
    targets: &mut Vec<Target>,
) {
    let section = if same_cpu {
        "BSON per CPU-second (client + server), same CPU"
    } else {
        "BSON per CPU-second (client + server), cross CPU"
    };
    for (i, &(name, _)) in BSON_RUNS.iter().enumerate() {
        if runs[i] && speeds[i].cpu > 0.0 {
            rates.push(Rate {
                section,
                name: name.into(),
                per_sec: speeds[i].cpu,
                unit: "objects/CPU-s",
            });
        }
    }
    let cpu = speeds.map(|b| b.cpu);
    let [py_rtt, py_pipe, rs_rtt, rs_pipe, rs_batch, bare_rtt, bare_pipe, bare_batch, py_batch, py_codec] =
        cpu;
    for (what, num, den) in [
        ("round trips / py-bson", rs_rtt, py_rtt),
        (
            "pipelined x64, one write per object / py-bson",
            rs_pipe,
            py_pipe,
        ),
        (
            "pipelined x64, framewire batched writes / py-bson",
            rs_batch,
            py_pipe,
        ),
        ("bound: bare bytes round trips / py-bson", bare_rtt, py_rtt),
        (
            "bound: bare bytes, one write each / py-bson",
            bare_pipe,
            py_pipe,
        ),
        (
            "bound: bare bytes, one write per window / py-bson",
            bare_batch,
            py_pipe,
        ),
        (
            "framewire batched / py-bson batched by hand",
            rs_batch,
            py_batch,
        ),
        (
            "py-bson pipelined: share of the CPU in dumps+loads",
            py_pipe,
            py_codec / 2.0,
        ),
    ] {
        if num > 0.0 && den > 0.0 {
            targets.push(Target {
                what: format!("BSON {place}, per CPU-second: {what}"),
                num,
                den,
                need: 0.0,
            });
        }
    }
}

/// The BSON rates, targets and bounds of `bson_section`'s best runs.
fn bson_report(
    placements: &[(&'static str, usize, usize)],
    best: &[[Speed; BSON_RUNS.len()]],
    runs: &[bool],
    rates: &mut Vec<Rate>,
    targets: &mut Vec<Target>,
) {
    for (&(place, c, s), speeds) in placements.iter().zip(best) {
        let best = speeds.map(|b| b.wall);
        let [py_rtt, py_pipe, rs_rtt, rs_pipe, rs_batch, bare_rtt, bare_pipe, bare_batch, py_batch, py_codec] =
            best;
        let section = if c == s {
            "BSON loopback, same CPU"
        } else {
            "BSON loopback, cross CPU"
        };
        for (i, &(name, _)) in BSON_RUNS.iter().enumerate() {
            if runs[i] {
                rates.push(Rate {
                    section,
                    name: name.into(),
                    per_sec: best[i],
                    unit: "objects/s",
                });
            }
        }
        for (what, num, den, need) in [
            ("round trips", rs_rtt, py_rtt, 50.0),
            (
                "pipelined x64, one write per object",
                rs_pipe,
                py_pipe,
                50.0,
            ),
            (
                "pipelined x64, framewire batched writes",
                rs_batch,
                py_pipe,
                50.0,
            ),
            // The bounds: what bare sockets in the same mode reach against
            // py-bson (no need: information, always shown as met).
            ("bound: bare bytes round trips", bare_rtt, py_rtt, 0.0),
            ("bound: bare bytes, one write each", bare_pipe, py_pipe, 0.0),
            (
                "bound: bare bytes, one write per window",
                bare_batch,
                py_pipe,
                0.0,
            ),
        ] {
            if num > 0.0 && den > 0.0 {
                targets.push(Target {
                    what: format!("BSON {place}: {what} / py-bson"),
                    num,
                    den,
                    need,
                });
            }
        }
        // Like for like: both sides batched by hand; and the share of
        // py-bson's pipelined time per object that is its encoder and
        // decoder (an echoed object is encoded and decoded twice).
        for (what, num, den) in [
            (
                "framewire batched / py-bson dumps/loads batched by hand",
                rs_batch,
                py_batch,
            ),
            (
                "py-bson pipelined: share of the time in dumps+loads",
                py_pipe,
                py_codec / 2.0,
            ),
        ] {
            if num > 0.0 && den > 0.0 {
                targets.push(Target {
                    what: format!("BSON {place}: {what}"),
                    num,
                    den,
                    need: 0.0,
                });
            }
        }
        for (what, num, den) in [
            ("round trips", rs_rtt, bare_rtt),
            ("one write per object", rs_pipe, bare_pipe),
            ("batched", rs_batch, bare_batch),
        ] {
            if num > 0.0 && den > 0.0 {
                targets.push(Target {
                    what: format!(
                        "BSON {place}: framewire / bare bytes, {what} (share of the bound)"
                    ),
                    num,
                    den,
                    need: 0.0,
                });
            }
        }
    }
    for (&(place, c, s), speeds) in placements.iter().zip(best) {
        bson_cpu_report(place, c == s, speeds, runs, rates, targets);
    }
}

fn fmt_rate(rate: f64, unit: &str) -> String {
    if unit == "GiB/s" {
        format!("{rate:.2} {unit}")
    } else if rate >= 1e6 {
        format!("{:.1} M{unit}", rate / 1e6)
    } else if rate >= 1e3 {
        format!("{:.1} k{unit}", rate / 1e3)
    } else {
        format!("{rate:.0} {unit}")
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let strict = args.iter().any(|a| a == "--strict");
    let plan = Plan::new(quick);
    let started = Instant::now();

    let mut rates = Vec::new();
    let mut targets = Vec::new();
    // The single-threaded decode comparison runs pinned to CPU 1 (the BSON
    // runs place their own threads) so it is not migrated mid-round.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let filter = args
        .iter()
        .position(|a| a == "--filter")
        .and_then(|i| args.get(i + 1))
        .map_or("", String::as_str);
    let pinned = thread::scope(|s| {
        s.spawn(|| {
            let pinned = pin(1) || pin(0);
            if only.is_none_or(|o| o == "framing") {
                small_frames_section(&plan, &mut rates, &mut targets);
                large_frames_section(&plan, &mut rates, &mut targets);
            }
            pinned
        })
        .join()
        .expect("framing section")
    });
    if only.is_none_or(|o| o == "bson") {
        bson_section(&plan, filter, &mut rates, &mut targets);
    }

    println!(
        "\nframewire ratios ({} CPUs available, decode thread {}pinned, {} rounds, {:.1} s)\n",
        thread::available_parallelism().map_or(1, std::num::NonZero::get),
        if pinned { "" } else { "not " },
        plan.rounds,
        started.elapsed().as_secs_f64()
    );
    println!("| section | contender | rate |\n|---|---|---:|");
    for r in &rates {
        println!(
            "| {} | {} | {} |",
            r.section,
            r.name,
            fmt_rate(r.per_sec, r.unit)
        );
    }
    // Rows with no need (bounds and shares) are information, not targets.
    let (targets, info): (Vec<Target>, Vec<Target>) =
        targets.into_iter().partition(|t| t.need > 0.0);
    println!("\n| target | ratio | need | result |\n|---|---:|---:|---|");
    let mut misses = 0;
    for t in &targets {
        if !t.pass() {
            misses += 1;
        }
        println!(
            "| {} | {:.2}x | >= {}x | {} |",
            t.what,
            t.ratio(),
            t.need,
            if t.pass() { "PASS" } else { "MISS" }
        );
    }
    if !info.is_empty() {
        println!("\n| bound or share (no target) | ratio |\n|---|---:|");
        for t in &info {
            println!("| {} | {:.2}x |", t.what, t.ratio());
        }
    }
    println!(
        "\n{} of {} targets met",
        targets.len() - misses,
        targets.len()
    );
    if strict && misses > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
