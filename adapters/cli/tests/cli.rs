//! End-to-end tests of the `framewire` binary: real processes on loopback,
//! port 0 everywhere, a deadline on every wait.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStderr, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use predicates::prelude::*;

/// Deadline for one command.
const TIMEOUT: Duration = Duration::from_secs(30);

fn framewire() -> Command {
    let mut c = Command::cargo_bin("framewire").unwrap();
    c.timeout(TIMEOUT);
    c
}

/// A background `framewire` process (a server), killed on drop.
struct Server {
    child: Child,
    addr: String,
    stderr: BufReader<ChildStderr>,
}

impl Server {
    /// Starts `framewire ARGS` and reads the bound address from its first
    /// stderr line (`framewire: listening on ADDR (...)`).
    fn start(args: &[&str]) -> Server {
        let mut child = StdCommand::cargo_bin("framewire")
            .unwrap()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).unwrap();
        let addr = first
            .strip_prefix("framewire: listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected first stderr line: {first:?}"))
            .to_owned();
        Server {
            child,
            addr,
            stderr,
        }
    }

    /// Waits (with a deadline) for the process to exit by itself and
    /// returns its success, stdout and the rest of its stderr.
    fn finish(mut self) -> (bool, String, String) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "server did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        self.stderr.read_to_string(&mut err).unwrap();
        (status.success(), out, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `stderr` is exactly one line starting `framewire: ` and
/// containing `what`, with no panic or backtrace.
fn one_clear_line(stderr: &[u8], what: &str) {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got {text:?}");
    assert!(lines[0].starts_with("framewire: "), "{text:?}");
    assert!(lines[0].contains(what), "{text:?} lacks {what:?}");
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text:?}"
    );
}

#[test]
fn listen_and_send_bson_documents() {
    let server = Server::start(&[
        "listen",
        "127.0.0.1:0",
        "--codec",
        "bson",
        "--json",
        "--count",
        "3",
    ]);
    framewire()
        .args(["send", &server.addr, "--codec", "bson"])
        .write_stdin(
            "{\"hello\": \"world\"}\n\n{\"n\": [1, 2.5, null], \"big\": 9223372036854775808}\n{\"b\": {\"$binary\": {\"base64\": \"AAE=\", \"subType\": \"00\"}}}\n",
        )
        .assert()
        .success()
        .stderr(predicate::str::contains("sent 3 frames (84 bytes)"));
    let (ok, out, _) = server.finish();
    assert!(ok);
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "open");
    let docs: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "frame")
        .map(|e| &e["doc"])
        .collect();
    assert_eq!(
        docs,
        [
            &serde_json::json!({"hello": "world"}),
            &serde_json::json!({"n": [1, 2.5, null], "big": 9_223_372_036_854_775_808_u64}),
            &serde_json::json!({"b": {"$binary": {"base64": "AAE=", "subType": "00"}}}),
        ]
    );
    // bson.dumps({"hello": "world"}) is 22 bytes.
    assert_eq!(events[1]["len"], 22);
}

#[test]
fn listen_and_send_length_prefixed_frames() {
    let server = Server::start(&["listen", "127.0.0.1:0", "--codec", "length:2:le", "--once"]);
    framewire()
        .args(["send", &server.addr, "--codec", "length:2:le"])
        .write_stdin("hello\n\nsecond frame\n")
        .assert()
        .success();
    let (ok, out, _) = server.finish();
    assert!(ok);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[0].ends_with("] connected"), "{out}");
    assert!(lines[1].ends_with("] frame 1: 5 bytes \"hello\""), "{out}");
    assert!(lines[2].ends_with("] frame 2: 0 bytes \"\""), "{out}");
    assert!(
        lines[3].ends_with("] frame 3: 12 bytes \"second frame\""),
        "{out}"
    );
    // 3 frames of 2-byte headers + 17 payload bytes.
    assert!(
        lines[4].ends_with("] closed after 3 frames (23 bytes)"),
        "{out}"
    );
}

#[test]
fn listen_shows_binary_frames_as_hex() {
    let server = Server::start(&["listen", "127.0.0.1:0", "--json", "--count", "1"]);
    framewire()
        .args(["send", &server.addr, "--hex", "00ff 10"])
        .assert()
        .success();
    let (ok, out, _) = server.finish();
    assert!(ok);
    let frame: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert_eq!(frame["hex"], "00ff10");
    assert_eq!(frame["len"], 3);
}

#[test]
fn echo_re_encodes_bson_and_refuses_malformed_documents() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--codec", "bson"]);
    framewire()
        .args([
            "send",
            &server.addr,
            "--codec",
            "bson",
            "--replies",
            "--json",
        ])
        .write_stdin("{\"a\": 1, \"b\": \"two\"}\n{\"c\": [true]}\n")
        .assert()
        .success()
        .stdout(
            "{\"event\":\"reply\",\"index\":1,\"len\":23,\"doc\":{\"a\":1,\"b\":\"two\"}}\n\
             {\"event\":\"reply\",\"index\":2,\"len\":17,\"doc\":{\"c\":[true]}}\n",
        );
    // Well framed (length 8, ends in 0x00) but element type 0x13 with a
    // truncated value: the server says why and closes instead of echoing.
    let out = framewire()
        .args([
            "send",
            &server.addr,
            "--codec",
            "bson",
            "--hex",
            "--replies",
            "0800000013610000",
        ])
        .assert()
        .failure()
        .get_output()
        .clone();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("closed the connection after 0 of 1 replies"),
        "{err}"
    );
}

#[test]
fn refused_connection_is_one_line() {
    // Bind a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = framewire()
        .args(["send", &format!("127.0.0.1:{port}"), "hello"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "cannot connect to 127.0.0.1:");
}

#[test]
fn bad_address_is_one_line() {
    let out = framewire()
        .args(["send", "no-port-here", "hello"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "bad address \"no-port-here\"");
    let out = framewire()
        .args(["listen", "127.0.0.1:99999"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "bad address \"127.0.0.1:99999\"");
}

#[test]
fn bad_json_is_one_line_and_sends_nothing() {
    let out = framewire()
        // Nothing listens here, and nothing is tried: input is checked first.
        .args(["send", "127.0.0.1:9", "--codec", "bson"])
        .write_stdin("{\"ok\": 1}\n{\"broken\": \n")
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "input line 2: bad JSON");
    let out = framewire()
        .args(["send", "127.0.0.1:9", "--codec", "bson", "[1, 2]"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "must be a JSON object, not an array");
}

#[test]
fn bad_codec_is_one_line() {
    let out = framewire()
        .args(["listen", "127.0.0.1:0", "--codec", "length:9"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "bad codec \"length:9\": length width \"9\"");
}

#[test]
fn oversized_frames_are_one_line_on_both_sides() {
    // Sending: 300 bytes do not fit a 1-byte length.
    let out = framewire()
        .args([
            "send",
            "127.0.0.1:9",
            "--codec",
            "length:1",
            &"x".repeat(300),
        ])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "payload of 300 bytes is over the limit of 255");

    // Receiving: the listener's limit is 16 bytes (header included); a
    // 100-byte frame fails the connection as soon as its header is read.
    let server = Server::start(&["listen", "127.0.0.1:0", "--max-frame", "16", "--once"]);
    framewire()
        .args(["send", &server.addr, &"y".repeat(100)])
        .assert()
        .success();
    let (ok, out, err) = server.finish();
    assert!(!ok, "listen --once must fail on a protocol error");
    assert!(
        out.contains("error: frame of 104 bytes is over the limit of 16"),
        "{out}"
    );
    one_clear_line(err.as_bytes(), "frame of 104 bytes is over the limit of 16");
}

#[test]
fn demo_exits_zero_and_prints_its_summary() {
    let out = framewire()
        .arg("demo")
        .assert()
        .success()
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stdout);
    for part in [
        "servers",
        "1. BSON documents",
        "2. packet stream",
        "3. pipelined: 1000 requests",
        "ERQ (end of requests)",
        "summary",
        "packet-stream calls      1005 answered",
    ] {
        assert!(text.contains(part), "demo output lacks {part:?}:\n{text}");
    }
    let checks = text
        .lines()
        .find(|l| l.trim_start().starts_with("checks"))
        .unwrap_or_else(|| panic!("no checks line:\n{text}"));
    assert!(
        checks.contains("all") && checks.ends_with("passed"),
        "{checks}"
    );
    assert!(!text.contains("FAILED"), "{text}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn call_against_the_packet_echo_server() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--codec", "packet"]);
    let call = |args: &[&str]| {
        let mut c = framewire();
        c.arg("call").arg(&server.addr).args(args);
        c
    };
    call(&["0", "hello"])
        .assert()
        .success()
        .stdout("ok flags 0 payload \"hello\"\n");
    call(&["1", "stressed"])
        .assert()
        .success()
        .stdout("ok flags 0 payload \"desserts\"\n");
    call(&["2"])
        .assert()
        .success()
        .stdout("ok flags 7 payload \"flags\"\n");
    call(&["3", "abc", "--flags", "63"])
        .assert()
        .success()
        .stdout("ok flags 63 payload \"abc\"\n");
    call(&["4", "--hex", "00ff", "--json"])
        .assert()
        .success()
        .stdout("{\"ok\":true,\"flags\":0,\"len\":2,\"hex\":\"00ff\"}\n");
    // Other types: the original's answer when its handler raises.
    let out = call(&["9", "?"])
        .assert()
        .failure()
        .stdout("failed flags 0 payload \"exception during handler\"\n")
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "request failed: exception during handler");
    // A channel the server never opened: the original's literal text.
    let out = call(&["0", "x", "--channel", "3"])
        .assert()
        .failure()
        .stdout("failed flags 0 payload \"unknown channel %d\"\n")
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "request failed: unknown channel %d");
}

#[test]
fn call_errors_are_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = framewire()
        .args(["call", &format!("127.0.0.1:{port}"), "0", "hi"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "cannot connect to 127.0.0.1:");
    let out = framewire()
        .args(["call", "127.0.0.1:9", "0", "--hex", "abc"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "bad hex: odd number of hex digits (3)");
}

#[test]
fn listen_decodes_raw_packets() {
    let server = Server::start(&["listen", "127.0.0.1:0", "--codec", "packet", "--count", "2"]);
    // A request (tag 2, rq_type 0, "hello") and the ERQ marker, as hex.
    framewire()
        .args(["send", &server.addr, "--codec", "packet", "--hex"])
        .write_stdin("0802020168656c6c6f\n03010200\n")
        .assert()
        .success();
    let (ok, out, _) = server.finish();
    assert!(ok);
    assert!(
        out.contains("] packet 1: 9 bytes request tag 2 type 0 flags 0 \"hello\""),
        "{out}"
    );
    assert!(
        out.contains("] packet 2: 4 bytes ERQ (end of requests)"),
        "{out}"
    );
    // Text is not a packet; a truncated packet is refused before sending.
    let out = framewire()
        .args(["send", "127.0.0.1:9", "--codec", "packet", "hello"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "raw packets are given as hex");
    let out = framewire()
        .args([
            "send",
            "127.0.0.1:9",
            "--codec",
            "packet",
            "--hex",
            "0802020168",
        ])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "input line 1:");
}

#[test]
fn bench_against_an_external_echo_server() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--codec", "bson"]);
    let out = framewire()
        .args(["bench", "--codec", "bson", "--connect", &server.addr])
        .args(["--count", "200", "--size", "100", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 200);
    assert_eq!(v["payload"], 100);
}

#[test]
fn bench_prints_a_summary_table() {
    for codec in ["packet", "length", "bson"] {
        let out = framewire()
            .args([
                "bench",
                "--codec",
                codec,
                "--count",
                "300",
                "--pipeline",
                "8",
            ])
            .assert()
            .success()
            .get_output()
            .clone();
        let text = String::from_utf8_lossy(&out.stdout);
        for row in [
            "codec",
            "rate",
            "throughput",
            "latency median",
            "latency p99",
        ] {
            assert!(text.contains(row), "{codec}: no {row:?} in\n{text}");
        }
        assert!(text.contains("300"), "{text}");
    }
    let out = framewire()
        .args(["bench", "--codec", "lines", "--count", "100", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 100);
    assert_eq!(v["codec"], "lines");
    assert!(v["p99_us"].as_f64().unwrap() >= v["median_us"].as_f64().unwrap());
}

#[test]
fn gateway_relays_websocket_messages_to_a_tcp_echo_server() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let echo = Server::start(&["echo", "127.0.0.1:0", "--codec", "length"]);
    let framed = Server::start(&[
        "gateway",
        "--ws",
        "127.0.0.1:0",
        "--tcp",
        &echo.addr,
        "--frame",
        "length",
    ]);
    let raw = Server::start(&["gateway", "--ws", "127.0.0.1:0", "--tcp", &echo.addr]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(TIMEOUT, async {
            // Framed: one message = one frame's payload, both ways.
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", framed.addr))
                .await
                .unwrap();
            for payload in [&b"hello"[..], b"", &[0u8, 255, 7]] {
                ws.send(Message::binary(payload.to_vec())).await.unwrap();
                match ws.next().await.unwrap().unwrap() {
                    Message::Binary(got) => assert_eq!(&got[..], payload),
                    other => panic!("unexpected {other:?}"),
                }
            }
            ws.close(None).await.unwrap();

            // Raw: the client speaks the length-prefixed stream itself.
            let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/", raw.addr))
                .await
                .unwrap();
            ws.send(Message::binary(b"\0\0\0\x05hel".to_vec()))
                .await
                .unwrap();
            ws.send(Message::binary(b"lo".to_vec())).await.unwrap();
            let mut got = Vec::new();
            while got.len() < 9 {
                match ws.next().await.unwrap().unwrap() {
                    Message::Binary(b) => got.extend_from_slice(&b),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(got, b"\0\0\0\x05hello");
            ws.close(None).await.unwrap();
        })
        .await
        .expect("gateway test deadline");
    });
}

#[test]
fn gateway_errors_are_one_line() {
    let out = framewire()
        .args(["gateway", "--ws", "127.0.0.1:0", "--tcp", "nowhere"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "bad address \"nowhere\"");
    let out = framewire()
        .args([
            "gateway",
            "--ws",
            "127.0.0.1:0",
            "--tcp",
            "127.0.0.1:9",
            "--frame",
            "xml",
        ])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "bad codec \"xml\"");
}

#[test]
fn lines_and_json_header_messages() {
    let server = Server::start(&["echo", "127.0.0.1:0", "--codec", "lines"]);
    framewire()
        .args(["send", &server.addr, "--codec", "lines", "--replies"])
        .write_stdin("first line\nsecond\n")
        .assert()
        .success()
        .stdout("reply 1: 10 bytes \"first line\"\nreply 2: 6 bytes \"second\"\n");

    let server = Server::start(&[
        "listen",
        "127.0.0.1:0",
        "--codec",
        "json-header",
        "--json",
        "--count",
        "2",
    ]);
    framewire()
        .args(["send", &server.addr, "--codec", "json-header"])
        .write_stdin("{\"action\": \"search\", \"value\": \"morpheus\"}\nnot json\n")
        .assert()
        .success();
    let (ok, out, _) = server.finish();
    assert!(ok);
    let frames: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "frame")
        .collect();
    // The tutorial's request: a 103-byte header, 41 bytes of JSON content.
    assert_eq!(frames[0]["len"], 2 + 103 + 41);
    assert_eq!(frames[0]["header"]["content-type"], "text/json");
    assert_eq!(frames[0]["header"]["content-length"], 41);
    assert_eq!(
        frames[0]["content"],
        serde_json::json!({"action": "search", "value": "morpheus"})
    );
    assert_eq!(frames[1]["header"]["content-type"], "text/plain");
    assert_eq!(frames[1]["text"], "not json");
}

#[test]
fn a_fixed_frame_of_the_wrong_size_is_one_line() {
    let out = framewire()
        .args(["send", "127.0.0.1:9", "--codec", "fixed:4", "abc"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "payload of 3 bytes in a fixed framing of 4");
}

#[test]
fn a_call_nobody_answers_times_out_in_one_line() {
    // A listener prints packets but never answers them.
    let server = Server::start(&["listen", "127.0.0.1:0", "--codec", "packet", "--once"]);
    let out = framewire()
        .args(["call", &server.addr, "0", "anyone?", "--timeout", "0.3"])
        .assert()
        .failure()
        .get_output()
        .clone();
    one_clear_line(&out.stderr, "no answer within 0.3 s");
    let (ok, out, _) = server.finish();
    assert!(ok);
    assert!(
        out.contains("request tag 2 type 0 flags 0 \"anyone?\""),
        "{out}"
    );
}
