//! Fixed workloads for instruction counts under callgrind
//! (`scripts/instructions.sh`): on a shared, noisy machine, times of small
//! changes drown in the spread between runs, but the instructions a
//! workload executes are the same on every run of the same binary.
//!
//! Each workload is one `#[inline(never)]` function named `measured_*`;
//! the script counts only inside it (`--toggle-collect`), so setup and
//! printing are left out. Run plain, it prints what it did (a check that
//! the workload works, not a measurement).
//!
//! ```text
//! instructions <workload> <requests>
//! workloads: packet-pair, lent-pair, lengths-pair,
//!            bson-decode, bson-decode-crate, bson-encode, bson-encode-crate
//! ```

mod common;

use bytes::{Bytes, BytesMut};
use common::{carry_packets, CHUNK};
use framewire::packet::{BorrowedEvent, Config, Connection, Event};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

/// Requests in flight at a time (the codecs bench's packet section uses 128).
const WINDOW: usize = 128;

/// `total` 16-byte echo requests between two core packet `Connection`s
/// configured by `config`, `WINDOW` in flight: `serve` is called on the
/// server after each piece of its input, `take_responses` on the client,
/// returning the payload bytes and count of the responses it took. Returns
/// the responses' payload bytes.
fn echo_pair(
    total: usize,
    config: Config,
    mut serve: impl FnMut(&mut Connection),
    mut take_responses: impl FnMut(&mut Connection) -> (u64, usize),
) -> u64 {
    let mut client = Connection::new(config).expect("config");
    let mut server = Connection::new(config).expect("config");
    let mut scratch = vec![0u8; CHUNK];
    let payload = Bytes::from_static(b"0123456789abcdef");
    let now = framewire::time::Instant::ZERO;
    let (mut sent, mut bytes, mut answered) = (0, 0u64, 0);
    while sent < total {
        let batch = WINDOW.min(total - sent);
        for _ in 0..batch {
            client
                .submit(0, 0, 0, payload.clone(), now, None)
                .expect("submit");
        }
        sent += batch;
        carry_packets(&mut client, &mut server, &mut scratch, &mut serve);
        carry_packets(&mut server, &mut client, &mut scratch, |cl| {
            let (b, n) = take_responses(cl);
            bytes += b;
            answered += n;
        });
    }
    assert_eq!(answered, total, "every request answered");
    bytes
}

/// The echo with events polled as `Event`s and answered with `respond`
/// (parsing on input, a `Bytes` and a queued event per packet).
#[inline(never)]
fn measured_packet_pair(total: usize) -> u64 {
    echo_pair(
        total,
        Config::default(),
        |srv| {
            while let Some(e) = srv.poll_event() {
                match e {
                    Event::RequestReceived {
                        channel,
                        tag,
                        flags,
                        payload,
                        ..
                    } => srv.respond(channel, tag, flags, payload).expect("respond"),
                    e => unreachable!("unexpected event {e:?}"),
                }
            }
        },
        |cl| {
            let (mut bytes, mut n) = (0, 0);
            while let Some(e) = cl.poll_event() {
                match e {
                    Event::ResponseReceived {
                        ok: true, payload, ..
                    } => {
                        bytes += payload.len() as u64;
                        n += 1;
                    }
                    e => unreachable!("unexpected event {e:?}"),
                }
            }
            (bytes, n)
        },
    )
}

/// The same echo between two `Connection`s parsing on poll: the server
/// answers each request in place (`poll_lent_answering`, its own payload
/// copied straight into the transmit queue), the client takes each
/// response lent (`poll_lent`): no `Bytes` and no queued event per packet.
#[inline(never)]
fn measured_lent_pair(total: usize) -> u64 {
    let lazy = Config {
        parse_on_poll: true,
        ..Config::default()
    };
    echo_pair(
        total,
        lazy,
        |srv| {
            let unanswered = srv.poll_lent_answering(|rq, answer| {
                answer.respond(rq.flags, rq.payload).expect("respond");
            });
            assert!(unanswered.is_none(), "every request answered in place");
        },
        |cl| {
            let (mut bytes, mut n) = (0, 0);
            while let Some(e) = cl.poll_lent() {
                match e {
                    BorrowedEvent::ResponseReceived {
                        ok: true, payload, ..
                    } => {
                        bytes += payload.len() as u64;
                        n += 1;
                    }
                    e => unreachable!("unexpected event {e:?}"),
                }
            }
            (bytes, n)
        },
    )
}

/// The anchor: the same echo with a tokio-util `LengthDelimitedCodec` at
/// each end (frames only: no tags, no bookkeeping).
#[inline(never)]
fn measured_lengths_pair(total: usize) -> u64 {
    let mut client = LengthDelimitedCodec::new();
    let mut server = LengthDelimitedCodec::new();
    let (mut to_server, mut server_in) = (BytesMut::new(), BytesMut::new());
    let (mut to_client, mut client_in) = (BytesMut::new(), BytesMut::new());
    let payload = Bytes::from_static(b"0123456789abcdef");
    let (mut sent, mut bytes, mut answered) = (0, 0u64, 0);
    while sent < total {
        let batch = WINDOW.min(total - sent);
        for _ in 0..batch {
            client
                .encode(payload.clone(), &mut to_server)
                .expect("encode");
        }
        sent += batch;
        server_in.extend_from_slice(&to_server);
        to_server.clear();
        while let Some(rq) = server.decode(&mut server_in).expect("valid") {
            server.encode(rq.freeze(), &mut to_client).expect("encode");
        }
        client_in.extend_from_slice(&to_client);
        to_client.clear();
        while let Some(rs) = client.decode(&mut client_in).expect("valid") {
            bytes += rs.len() as u64;
            answered += 1;
        }
    }
    assert_eq!(answered, total, "every request answered");
    bytes
}

/// WIRE.md's 50-byte benchmark document `{"seq": i, "pad": b"x"*26}`: an
/// int32 and a generic binary, as py-bson writes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Small {
    seq: i32,
    pad: bson::Binary,
}

/// `total` such documents, `seq` counting up, as py-bson encodes them.
fn small_documents(total: usize) -> Vec<Vec<u8>> {
    (0..total)
        .map(|seq| framewire::message::bson::to_vec(&small(seq)).expect("encodes"))
        .collect()
}

fn small(seq: usize) -> Small {
    Small {
        seq: i32::try_from(seq % (1 << 30)).expect("fits"),
        pad: bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![b'x'; 26],
        },
    }
}

/// Each document decoded by `framewire::message::bson::from_slice`
/// (validation first, then serde). Returns the sum of the `seq`s.
#[inline(never)]
fn measured_bson_decode(docs: &[Vec<u8>]) -> u64 {
    docs.iter()
        .map(|doc| {
            let small: Small = framewire::message::bson::from_slice(doc).expect("decodes");
            u64::try_from(small.seq).expect("seq") + small.pad.bytes.len() as u64
        })
        .sum()
}

/// The anchor: the `bson` crate's serde decoder alone.
#[inline(never)]
fn measured_bson_decode_crate(docs: &[Vec<u8>]) -> u64 {
    docs.iter()
        .map(|doc| {
            let small: Small = bson::deserialize_from_slice(doc).expect("decodes");
            u64::try_from(small.seq).expect("seq") + small.pad.bytes.len() as u64
        })
        .sum()
}

/// Each value encoded by `framewire::message::bson::encode_into` into a
/// reused buffer. Returns the bytes written.
#[inline(never)]
fn measured_bson_encode(values: &[Small]) -> u64 {
    let mut buf = Vec::with_capacity(64);
    values
        .iter()
        .map(|value| {
            buf.clear();
            framewire::message::bson::encode_into(value, &mut buf).expect("encodes") as u64
        })
        .sum()
}

/// The anchor: the `bson` crate's serde encoder alone.
#[inline(never)]
fn measured_bson_encode_crate(values: &[Small]) -> u64 {
    let mut buf = Vec::with_capacity(64);
    values
        .iter()
        .map(|value| {
            buf.clear();
            bson::serialize_to_buffer(value, &mut buf).expect("encodes");
            buf.len() as u64
        })
        .sum()
}

fn main() {
    // `cargo bench` passes `--bench`; positional arguments are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let workload = args.first().map_or("packet-pair", String::as_str);
    let total: usize = args
        .get(1)
        .map_or(100_000, |n| n.parse().expect("requests: a count"));
    let bytes = match workload {
        "packet-pair" => measured_packet_pair(total),
        "lent-pair" => measured_lent_pair(total),
        "lengths-pair" => measured_lengths_pair(total),
        "bson-decode" => measured_bson_decode(&small_documents(total)),
        "bson-decode-crate" => measured_bson_decode_crate(&small_documents(total)),
        "bson-encode" => measured_bson_encode(&(0..total).map(small).collect::<Vec<_>>()),
        "bson-encode-crate" => {
            measured_bson_encode_crate(&(0..total).map(small).collect::<Vec<_>>())
        }
        other => panic!(
            "unknown workload {other:?} (packet-pair, lent-pair, lengths-pair, bson-decode, \
             bson-decode-crate, bson-encode, bson-encode-crate)"
        ),
    };
    println!("{workload}: {total} requests, {bytes} response payload bytes");
}
