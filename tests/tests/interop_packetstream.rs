//! Interop with the real cs.packetstream 20240630 over loopback TCP, both
//! directions: the Rust `PacketConnection` calling the original's
//! `PacketConnection` server (tests/python/packetstream_peer.py, handler
//! table by rq_type), and the original's client calling a Rust server with
//! the same table. Shutdown from either side must complete cleanly.

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use framewire::packet::reason;
use framewire_std::packet::{Builder, EndCause, PacketConnection, PacketServer, Reply, Request};
use framewire_std::server::Server;
use framewire_tests::{with_deadline, PythonPeer};

const DEADLINE: Duration = Duration::from_secs(120);

const PEER: &str = "packetstream_peer.py";

/// Payloads the peer's way: `make_payload` in packetstream_peer.py (any
/// deterministic bytes do; text for rq_type 4 is valid UTF-8 with
/// multi-byte characters).
fn make_payload(size: usize, seed: usize, text: bool) -> Vec<u8> {
    if text {
        let unit = "h\u{e9} \u{1f430} ".as_bytes(); // 9 bytes
        let mut body: Vec<u8> = unit
            .iter()
            .copied()
            .cycle()
            .take(size - size % unit.len())
            .collect();
        body.resize(size, b'x');
        return body;
    }
    (0..size)
        .map(|i| ((i * 131 + seed * 7 + 3) & 0xff) as u8)
        .collect()
}

/// What the peer's handler table answers: `(ok, flags, payload)`.
fn expected(rq_type: u64, flags: u64, payload: &[u8]) -> (bool, u64, Vec<u8>) {
    let fail = (
        false,
        0,
        reason::EXCEPTION_DURING_HANDLER.as_bytes().to_vec(),
    );
    match rq_type {
        0 | 7 => (true, 0, payload.to_vec()),
        1 => (true, 0, payload.iter().rev().copied().collect()),
        2 => (true, flags, payload.to_vec()),
        4 => match std::str::from_utf8(payload) {
            Ok(t) => (true, 0, format!("text:{t}").into_bytes()),
            Err(_) => fail,
        },
        5 => (true, 0, Vec::new()),
        6 => (true, payload.len() as u64, Vec::new()),
        _ => fail,
    }
}

/// The same table as a Rust handler, for the original's client.
fn table(rq: Request) -> Result<Reply, String> {
    match rq.rq_type {
        0 => Ok(rq.payload.into()),
        1 => Ok(rq.payload.iter().rev().copied().collect::<Vec<u8>>().into()),
        2 => Ok((rq.flags, rq.payload).into()),
        4 => std::str::from_utf8(&rq.payload)
            .map(|t| format!("text:{t}").into())
            .map_err(|e| e.to_string()),
        5 => Ok(().into()),
        6 => Ok((rq.payload.len() as u64).into()),
        7 => {
            thread::sleep(Duration::from_millis(200));
            Ok(rq.payload.into())
        }
        other => Err(format!("rq_type {other} fails")),
    }
}

fn check(conn: &PacketConnection, rq_type: u64, flags: u64, payload: &[u8]) -> bool {
    let want = expected(rq_type, flags, payload);
    let got = conn.call(rq_type, flags, payload.to_vec()).unwrap();
    assert_eq!(
        (got.ok, got.flags, got.payload.len()),
        (want.0, want.1, want.2.len()),
        "rq_type {rq_type}, flags {flags}, {} bytes",
        payload.len()
    );
    assert!(got.payload == want.2, "rq_type {rq_type}: payload differs");
    !want.0
}

fn connect(peer: &PythonPeer) -> PacketConnection {
    PacketConnection::connect(("127.0.0.1", peer.port.expect("server prints its port"))).unwrap()
}

#[test]
fn rust_client_sync_calls_of_every_kind_to_python_server() {
    with_deadline(DEADLINE, || {
        let peer = PythonPeer::start(PEER, &["server"], true);
        let client = connect(&peer);
        let (mut calls, mut failures) = (0u64, 0u64);
        for rq_type in 0..7u64 {
            for size in [0usize, 1, 1024, 65_536, 1 << 20] {
                for flags in [0u64, 1, 63] {
                    let payload = make_payload(size, rq_type as usize, rq_type == 4);
                    failures += u64::from(check(&client, rq_type, flags, &payload));
                    calls += 1;
                }
            }
        }
        for (rq_type, flags, payload) in [
            (7, 0, &b""[..]),
            (7, 5, b"slow"),
            (4, 0, b"\xff\xfe not utf-8"),
            (8, 0, b"unknown"),
            (300, 2, b"x"), // wire rq_type 301: two octets
        ] {
            failures += u64::from(check(&client, rq_type, flags, payload));
            calls += 1;
        }
        // Shutdown from the Rust side: ERQ, EOF, the original's EOF.
        client.close().unwrap();
        assert_eq!(client.end_cause(), Some(EndCause::EofPacket));
        assert_eq!(client.stats().unknown_responses, 0);
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok, "{summary}");
        assert_eq!(summary["ok"], true, "{summary}");
        assert_eq!(summary["served"], calls, "{summary}");
        assert_eq!(summary["handler_exceptions"], failures, "{summary}");
        assert_eq!(summary["by_rq_type"]["3"], 15, "{summary}");
    });
}

#[test]
fn rust_client_pipelines_a_thousand_submits_to_python_server() {
    with_deadline(DEADLINE, || {
        let peer = PythonPeer::start(PEER, &["server"], true);
        let client = connect(&peer);
        let cases: Vec<(u64, u64, Vec<u8>)> = (0..1000usize)
            .map(|i| {
                let rq_type = if i % 100 == 99 { 7 } else { (i % 7) as u64 };
                let mut payload = format!("rq{i}:").into_bytes();
                payload.extend(make_payload((i * 37) % 2000, i, rq_type == 4));
                (rq_type, i as u64, payload)
            })
            .collect();
        let pending: Vec<_> = cases
            .iter()
            .map(|(rq_type, flags, payload)| {
                client.submit(*rq_type, *flags, payload.clone()).unwrap()
            })
            .collect();
        assert_eq!(
            pending.first().map(framewire_std::packet::PendingCall::tag),
            Some(2)
        );
        for ((rq_type, flags, payload), call) in cases.iter().zip(pending) {
            let got = call.wait().unwrap();
            let want = expected(*rq_type, *flags, payload);
            assert_eq!(
                (got.ok, got.flags, &got.payload[..]),
                (want.0, want.1, &want.2[..])
            );
        }
        assert_eq!(client.stats().responses_received, 1000);
        client.close().unwrap();
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok && summary["ok"] == true, "{summary}");
        assert_eq!(summary["served"], 1000, "{summary}");
    });
}

#[test]
fn exact_bytes_with_the_original_and_its_default_grace() {
    with_deadline(DEADLINE, || {
        let peer = PythonPeer::start(PEER, &["rawserver", "--grace", "default"], true);
        let client = connect(&peer);
        let r = client.call(0, 0, &b"hello"[..]).unwrap();
        assert_eq!((r.ok, r.flags, &r.payload[..]), (true, 0, &b"hello"[..]));
        let r = client.call(2, 63, &b"f"[..]).unwrap();
        assert_eq!((r.ok, r.flags, &r.payload[..]), (true, 63, &b"f"[..]));
        let r = client.call(3, 0, Bytes::new()).unwrap();
        assert_eq!(
            r.failure_reason().as_deref(),
            Some(reason::EXCEPTION_DURING_HANDLER)
        );
        client.close().unwrap();
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok && summary["ok"] == true, "{summary}");
        // What the original received from us, byte for byte (WIRE.md):
        // request tag 2 rq_type 0 "hello", tag 3 rq_type 2 flags 63 "f",
        // tag 4 rq_type 3, then ERQ and EOF.
        let rx = concat!(
            "08020201",
            "68656c6c6f",
            "0503",
            "817e",
            "03",
            "66",
            "03040204",
            "03010200",
            "03000200"
        );
        assert_eq!(summary["rx_hex"], rx, "{summary}");
        // And what it sent: the responses (63 as F = 83 7c), its ERQ and EOF.
        let tx = concat!(
            "07020468656c6c6f",
            "0403837c66",
            "1a0400",
            "657863657074696f6e20647572696e672068616e646c6572",
            "03010200",
            "03000200"
        );
        assert_eq!(summary["tx_hex"], tx, "{summary}");
        assert_eq!(summary["requests"][1]["flags"], 63, "{summary}");
    });
}

#[test]
fn rust_close_waits_for_the_originals_slow_response() {
    with_deadline(DEADLINE, || {
        let peer = PythonPeer::start(PEER, &["server"], true);
        let client = connect(&peer);
        let slow = client.submit(7, 0, &b"slow"[..]).unwrap();
        // ERQ and EOF go out at once; the original finishes the running
        // request and answers it before its own EOF.
        client.close().unwrap();
        assert_eq!(&slow.wait().unwrap().payload[..], b"slow");
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok && summary["ok"] == true, "{summary}");
        assert_eq!(summary["served"], 1, "{summary}");
    });
}

/// Serves one connection with the table; returns the connection's result
/// and end cause once it has ended.
fn serve_one(listener: TcpListener) -> thread::JoinHandle<(bool, Option<EndCause>, u64)> {
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let conn = Builder::new().handler(table).start(stream).unwrap();
        let result = conn.wait();
        (
            result.is_ok(),
            conn.end_cause(),
            conn.stats().requests_received,
        )
    })
}

#[test]
fn python_client_all_scenarios_against_rust_server() {
    with_deadline(DEADLINE, || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        let server = serve_one(listener);
        let peer = PythonPeer::start(PEER, &["client", &port, "--scenario", "all"], false);
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok, "{summary}");
        assert_eq!(summary["ok"], true, "{summary}");
        assert_eq!(summary["mismatches"], 0, "{summary}");
        assert_eq!(summary["scenarios"]["pipelined"], 1000, "{summary}");
        let calls = summary["calls"].as_u64().unwrap();
        assert!(calls > 1000, "{summary}");
        assert!(
            summary["expected_failures"].as_u64().unwrap() > 0,
            "{summary}"
        );
        // Shutdown from the Python side: its ERQ and EOF end our side cleanly.
        let (clean, cause, served) = server.join().unwrap();
        assert!(clean);
        assert_eq!(cause, Some(EndCause::EofPacket));
        assert_eq!(served, calls);
    });
}

#[test]
fn python_client_with_default_grace_against_rust_packet_server() {
    with_deadline(DEADLINE, || {
        let server = PacketServer::serve(
            Server::bind("127.0.0.1:0").unwrap(),
            Builder::new().handler(table),
        )
        .unwrap();
        let port = server.local_addr().port().to_string();
        let peer = PythonPeer::start(
            PEER,
            &[
                "client",
                &port,
                "--scenario",
                "sync",
                "--grace",
                "default",
                "--max-payload",
                "1024",
            ],
            false,
        );
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok && summary["ok"] == true, "{summary}");
        assert_eq!(summary["mismatches"], 0, "{summary}");
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while server.served_connections() < 1 && std::time::Instant::now() < until {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.served_connections(), 1);
        server.shutdown();
    });
}
