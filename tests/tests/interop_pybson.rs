//! Interop with the real py-bson 0.5.10 `sendobj`/`recvobj` over loopback
//! TCP, both directions. Values are compared after decoding, not only byte
//! counts.

use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Document};
use framewire::framing::BsonDocument;
use framewire::message::bson::{object_id_from_pybson, timestamp_from_py_uint64};
use framewire_std::server::Server;
use framewire_std::Framed;
use framewire_tests::{with_deadline, PythonPeer};

const DEADLINE: Duration = Duration::from_secs(120);

fn binary(subtype: BinarySubtype, bytes: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype,
        bytes: bytes.to_vec(),
    })
}

/// Documents covering every type py-bson encodes, each with what a py-bson
/// echo (decode with py-bson, encode again) gives back, per WIRE.md.
fn catalogue() -> Vec<(Document, Document)> {
    let same = |d: Document| (d.clone(), d);
    let oid = bson::oid::ObjectId::parse_str("000102030405060708090a0b").unwrap();
    vec![
        same(doc! { "hello": "world" }),
        same(doc! { "t": true, "f": false }),
        same(doc! { "i32": 42_i32, "i32_min": i32::MIN, "i32_max": i32::MAX }),
        same(doc! { "i64": 1_i64 << 40, "i64_min": i64::MIN, "i64_max": i64::MAX }),
        same(
            doc! { "u64_max": timestamp_from_py_uint64(u64::MAX), "u64_lo": timestamp_from_py_uint64(1 << 63) },
        ),
        same(doc! { "float": 3.25, "neg": -1e300, "tiny": 5e-324, "zero": 0.0 }),
        same(doc! { "str": "hello", "utf8": "h\u{e9}llo \u{1f430}", "empty": "", "": "empty key" }),
        same(
            doc! { "bytes": binary(BinarySubtype::Generic, &[0, 1, 0xfe, 0xff]), "empty": binary(BinarySubtype::Generic, b"") },
        ),
        same(doc! { "uuid": binary(BinarySubtype::Uuid, &[0x12; 16]) }),
        same(
            doc! { "dt": DateTime::from_millis(1_719_748_800_123), "before_1970": DateTime::from_millis(-86_400_000) },
        ),
        same(doc! { "none": Bson::Null }),
        same(
            doc! { "nested": { "a": { "b": [1_i32, "two", 3.5, Bson::Null, { "c": true }] } }, "empty_doc": {} },
        ),
        same(doc! { "list": [1_i32, 2_i32, 3_i32], "empty_list": [] }),
        // py-bson's lossy echo (WIRE.md quirks): a small int64 comes back as int32,
        (doc! { "n": 5_i64 }, doc! { "n": 5_i32 }),
        // binary subtypes other than 0/3/4 come back as subtype 0, subtype 3 as 4,
        (
            doc! { "user": binary(BinarySubtype::UserDefined(0x80), b"abc"), "old_uuid": binary(BinarySubtype::UuidOld, &[7; 16]) },
            doc! { "user": binary(BinarySubtype::Generic, b"abc"), "old_uuid": binary(BinarySubtype::Uuid, &[7; 16]) },
        ),
        // and an ObjectId comes back as its 24 hex digits in a binary.
        (
            doc! { "oid": oid },
            doc! { "oid": binary(BinarySubtype::Generic, b"000102030405060708090a0b") },
        ),
    ]
}

fn big_document() -> Document {
    doc! { "kind": "big", "blob": binary(BinarySubtype::Generic, &vec![0xab; 70_000]), "text": "x".repeat(100) }
}

fn small(seq: i32) -> Document {
    doc! { "seq": seq, "pad": binary(BinarySubtype::Generic, &[b'x'; 26]) }
}

#[test]
fn rust_client_with_python_recvobj_sendobj_echo_server() {
    with_deadline(DEADLINE, || {
        let mut peer = PythonPeer::start("bson_peer.py", &["server"], true);
        let stream = TcpStream::connect(("127.0.0.1", peer.port.unwrap())).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let writer_stream = stream.try_clone().unwrap();

        let mut sent: Vec<(Document, Document)> = catalogue();
        sent.push((big_document(), big_document()));
        sent.extend((0..10_000).map(|i| (small(i), small(i))));
        let to_send: Vec<Document> = sent.iter().map(|(d, _)| d.clone()).collect();

        // Write everything back to back from one thread while reading on
        // another, so neither side's socket buffer can deadlock the echo.
        let writer = thread::spawn(move || {
            let mut out = Framed::new(writer_stream, BsonDocument::default());
            for doc in &to_send {
                out.send_obj(doc).unwrap();
            }
            out.get_ref().shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut input = Framed::new(stream, BsonDocument::default());
        for (i, (_, expected)) in sent.iter().enumerate() {
            let got: Document = input
                .recv_obj()
                .unwrap()
                .unwrap_or_else(|| panic!("py-bson closed after {i} documents"));
            assert_eq!(&got, expected, "document {i}");
        }
        writer.join().unwrap();
        assert_eq!(
            input.recv_obj::<Document>().unwrap(),
            None,
            "clean close after the last echo"
        );
        let summary = peer.read_line_where(|l| l.starts_with('{'));
        assert!(
            summary.contains(&format!("\"echoed\": {}", sent.len())),
            "{summary}"
        );
    });
}

#[test]
fn python_client_with_rust_echo_server() {
    with_deadline(DEADLINE, || {
        let server = Server::bind("127.0.0.1:0")
            .unwrap()
            .serve(|stream, _| {
                let mut conn = Framed::new(stream, BsonDocument::default());
                while let Some(doc) = conn.recv_obj::<Document>().unwrap() {
                    conn.send_obj(&doc).unwrap();
                }
            })
            .unwrap();
        let port = server.local_addr().port().to_string();
        let peer = PythonPeer::start("bson_peer.py", &["client", &port], false);
        let (summary, ok) = peer.finish(DEADLINE);
        assert!(ok, "python client failed: {summary}");
        assert_eq!(summary["received"], 13 + 1 + 10_000);
        assert_eq!(summary["mismatches"], 0);
        assert_eq!(summary["clean_close"], true);
        server.shutdown();
    });
}

#[test]
fn object_id_round_trip_helper_matches_pybson_echo() {
    let hex = b"000102030405060708090a0b";
    assert_eq!(
        object_id_from_pybson(hex).unwrap().to_hex(),
        "000102030405060708090a0b"
    );
}
