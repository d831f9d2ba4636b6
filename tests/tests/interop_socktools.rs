//! Interop with socktools 0.2's wire format (u32 big-endian length + Python
//! `json.dumps([msg_type, msg_data])`, and line mode) against a Python 3 peer
//! written from WIRE.md (socktools itself is Python 2 only).
//!
//! The Python echo server decodes each message and encodes it again with
//! `json.dumps`, so getting our own bytes back proves byte-identical encoding.

use std::net::TcpStream;
use std::time::Duration;

use framewire::framing::{Delimited, LengthPrefixed};
use framewire::message::socktools;
use framewire_std::server::Server;
use framewire_std::Framed;
use framewire_tests::{with_deadline, PythonPeer};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(60);

/// The same values as MESSAGES in tests/python/socktools_peer.py.
fn messages() -> Vec<(Value, Value)> {
    vec![
        (json!(1), json!({"text": "hi", "n": [1, 2.5, null]})),
        (json!("chat"), json!("h\u{e9}")),
        (
            json!(2),
            json!({"quote": "say \"hi\"\\now", "ctrl": "\t\n\r\u{1}", "emoji": "\u{1f430}"}),
        ),
        (
            json!(3),
            json!([
                1.0,
                1e16,
                1e-05,
                0.1,
                -0.0,
                123_456_789.125,
                9_007_199_254_740_993_u64,
                i64::MIN
            ]),
        ),
        (json!(4), Value::Null),
        (
            json!(5),
            json!({"b": true, "z": false, "nested": {"deep": [[], {}]}}),
        ),
        (json!(6), json!("x".repeat(100_000))),
    ]
}

const LINES: [&[u8]; 4] = [
    b"hello\n",
    b"second line\r\n",
    b"\n",
    "caf\u{e9}\n".as_bytes(),
];

fn lines() -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = LINES.iter().map(|l| l.to_vec()).collect();
    let mut long = vec![b'y'; 50_000];
    long.push(b'\n');
    all.push(long);
    all
}

fn line_framing() -> Delimited {
    // socktools' line mode: a message is a line *including* its "\n".
    Delimited::new().with_keep_delimiter(true)
}

#[test]
fn wire_md_golden_frames() {
    let body = socktools::encode(&1, &json!({"text": "hi", "n": [1, 2.5, null]})).unwrap();
    let mut framed = Framed::new(std::io::Cursor::new(Vec::new()), LengthPrefixed::default());
    framed.send(&body).unwrap();
    let wire: String = framed
        .get_ref()
        .get_ref()
        .iter()
        .fold(String::new(), |mut hex, b| {
            use std::fmt::Write;
            let _ = write!(hex, "{b:02x}");
            hex
        });
    assert_eq!(
        wire,
        "000000285b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d"
    );
}

#[test]
fn rust_client_with_python_json_server() {
    with_deadline(DEADLINE, || {
        let mut peer = PythonPeer::start("socktools_peer.py", &["server", "json"], true);
        let stream = TcpStream::connect(("127.0.0.1", peer.port.unwrap())).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut conn = Framed::new(stream, LengthPrefixed::default());
        for (msg_type, data) in messages() {
            let body = socktools::encode(&msg_type, &data).unwrap();
            conn.send(&body).unwrap();
            let reply = conn.recv().unwrap().expect("echo");
            assert_eq!(
                String::from_utf8_lossy(&reply[..reply.len().min(200)]),
                String::from_utf8_lossy(&body[..body.len().min(200)]),
                "Python re-encoded {msg_type} differently"
            );
            assert_eq!(&reply[..], &body[..]);
            assert_eq!(socktools::decode(&reply).unwrap(), (msg_type, data));
        }
        conn.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(conn.recv().unwrap(), None);
        let summary = peer.read_line_where(|l| l.starts_with('{'));
        assert!(summary.contains("\"echoed\": 7"), "{summary}");
    });
}

#[test]
fn python_client_with_rust_json_server() {
    with_deadline(DEADLINE, || {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .serve(|stream, _| {
                let mut conn = Framed::new(stream, LengthPrefixed::default());
                while let Some(body) = conn.recv().unwrap() {
                    let (msg_type, data) = socktools::decode(&body).unwrap();
                    conn.send(&socktools::encode(&msg_type, &data).unwrap())
                        .unwrap();
                }
            })
            .unwrap();
        let port = server.local_addr().port().to_string();
        let (summary, ok) =
            PythonPeer::start("socktools_peer.py", &["client", "json", &port], false)
                .finish(DEADLINE);
        assert!(ok, "{summary}");
        assert_eq!(summary["ok"], true);
        assert_eq!(summary["clean_close"], true);
        server.shutdown();
    });
}

#[test]
fn rust_client_with_python_line_server() {
    with_deadline(DEADLINE, || {
        let mut peer = PythonPeer::start("socktools_peer.py", &["server", "line"], true);
        let stream = TcpStream::connect(("127.0.0.1", peer.port.unwrap())).unwrap();
        let mut conn = Framed::new(stream, line_framing());
        for line in lines() {
            conn.queue(&line).unwrap();
        }
        conn.flush().unwrap();
        for line in lines() {
            assert_eq!(conn.recv().unwrap().as_deref(), Some(&line[..]));
        }
        conn.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(conn.recv().unwrap(), None);
        let summary = peer.read_line_where(|l| l.starts_with('{'));
        assert!(summary.contains("\"echoed\": 5"), "{summary}");
    });
}

#[test]
fn python_client_with_rust_line_server() {
    with_deadline(DEADLINE, || {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .serve(|stream, _| {
                let mut conn = Framed::new(stream, line_framing());
                while let Some(line) = conn.recv().unwrap() {
                    conn.send_bytes(line).unwrap();
                }
            })
            .unwrap();
        let port = server.local_addr().port().to_string();
        let (summary, ok) =
            PythonPeer::start("socktools_peer.py", &["client", "line", &port], false)
                .finish(DEADLINE);
        assert!(ok, "{summary}");
        server.shutdown();
    });
}
