//! The main job for a newcomer: three servers on loopback (BSON documents,
//! py-bson `sendobj`/`recvobj` compatible; u32 big-endian length-prefixed
//! frames, socktools style; and a cs.packetstream request/response server), a
//! client against each, and every message that flows printed.
//!
//! ```sh
//! cargo run -p framewire-std --features bson --example echo
//! ```

use std::net::TcpStream;

use bson::{doc, Document};
use framewire::framing::{BsonDocument, LengthPrefixed};
use framewire_std::packet::{Builder, PacketConnection, PacketServer, Request};
use framewire_std::server::Server;
use framewire_std::Framed;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // BSON echo server: decode each document, send it back.
    let bson_server = Server::bind("127.0.0.1:0")?
        .max_connections(8)
        .serve(|stream, peer| {
            let mut conn = Framed::new(stream, BsonDocument::default());
            loop {
                match conn.recv_obj::<Document>() {
                    Ok(Some(doc)) => {
                        println!("  bson server  <- {peer}: {doc}");
                        if let Err(e) = conn.send_obj(&doc) {
                            eprintln!("  bson server: send failed: {e}");
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        eprintln!("  bson server: {e}");
                        return;
                    }
                }
            }
        })?;

    // Length-prefixed echo server: frames back unchanged.
    let frame_server = Server::bind("127.0.0.1:0")?
        .max_connections(8)
        .serve(|stream, peer| {
            let mut conn = Framed::new(stream, LengthPrefixed::default());
            while let Ok(Some(frame)) = conn.recv() {
                println!(
                    "  frame server <- {peer}: {} bytes {}",
                    frame.len(),
                    preview(&frame)
                );
                if conn.send_bytes(frame).is_err() {
                    return;
                }
            }
        })?;

    println!("BSON echo server on {}", bson_server.local_addr());
    let mut client = Framed::new(
        TcpStream::connect(bson_server.local_addr())?,
        BsonDocument::default(),
    );
    let docs = [
        doc! { "hello": "world" },
        doc! { "seq": 1_i32, "pad": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: b"x".repeat(26) } },
        doc! { "nested": { "list": [1_i32, "two", 3.5, bson::Bson::Null], "ok": true } },
    ];
    let mut bson_bytes = 0;
    for doc in &docs {
        client.send_obj(doc)?;
        let echo: Document = client.recv_obj()?.expect("server closed early");
        assert_eq!(&echo, doc, "echo differs");
        println!("  bson client  -> sent and got back {echo}");
        bson_bytes += framewire::message::bson::to_vec(doc)?.len();
    }
    drop(client);

    println!(
        "length-prefixed echo server on {}",
        frame_server.local_addr()
    );
    let mut client = Framed::new(
        TcpStream::connect(frame_server.local_addr())?,
        LengthPrefixed::default(),
    );
    let big = vec![0xab; 70_000];
    let frames: [&[u8]; 4] = [
        b"hello",
        b"",
        b"[1, {\"text\": \"hi\", \"n\": [1, 2.5, null]}]",
        &big,
    ];
    for frame in frames {
        client.queue(frame)?;
    }
    client.flush()?; // all four frames in one vectored write
    let mut frame_bytes = 0;
    for frame in frames {
        let echo = client.recv()?.expect("server closed early");
        assert_eq!(&echo[..], frame, "echo differs");
        frame_bytes += frame.len();
        println!("  frame client -> got back {} bytes", echo.len());
    }
    drop(client);

    bson_server.shutdown();
    frame_server.shutdown();

    let calls = packet_stream()?;
    println!(
        "summary: {} BSON documents ({bson_bytes} bytes) and {} frames ({frame_bytes} payload bytes) echoed intact, {calls} packet-stream calls answered",
        docs.len(),
        frames.len()
    );
    Ok(())
}

/// A cs.packetstream server (type 0 echoes, type 1 reverses, type 2 echoes
/// without printing, others fail)
/// and a client making synchronous and pipelined calls.
fn packet_stream() -> Result<usize, Box<dyn std::error::Error>> {
    let handler = Builder::new().handler(|rq: Request| {
        if rq.rq_type != 2 {
            println!(
                "  packet server <- request tag {} type {} flags {} payload {}",
                rq.tag,
                rq.rq_type,
                rq.flags,
                preview(&rq.payload)
            );
        }
        match rq.rq_type {
            0 | 2 => Ok((rq.flags, rq.payload.to_vec())),
            1 => Ok((0, rq.payload.iter().rev().copied().collect())),
            other => Err(format!("no such request type {other}")),
        }
    });
    let server = PacketServer::serve(Server::bind("127.0.0.1:0")?, handler)?;
    println!("packet-stream server on {}", server.local_addr());
    let client = PacketConnection::connect(server.local_addr())?;
    let mut answered = 0;
    for (rq_type, flags, payload) in [(0, 7, &b"hello"[..]), (1, 0, b"stressed"), (9, 0, b"?")] {
        let r = client.call(rq_type, flags, payload)?;
        match r.failure_reason() {
            None => println!(
                "  packet client -> type {rq_type}: ok, flags {}, payload {}",
                r.flags,
                preview(&r.payload)
            ),
            Some(reason) => println!("  packet client -> type {rq_type}: failed: {reason:?}"),
        }
        answered += 1;
    }
    let pending: Vec<_> = (0..100u32)
        .map(|i| client.submit(2, u64::from(i), i.to_be_bytes().to_vec()))
        .collect::<Result<_, _>>()?;
    for (i, call) in pending.into_iter().enumerate() {
        let r = call.wait()?;
        assert_eq!(r.flags, i as u64, "response routed to the wrong call");
        answered += 1;
    }
    println!("  packet client -> 100 pipelined calls (type 2) in flight at once, every response matched to its call");
    client.close()?; // ERQ, EOF, then the server's EOF
    server.shutdown();
    Ok(answered)
}

/// The first bytes of a frame, readable.
fn preview(frame: &[u8]) -> String {
    const MAX: usize = 48;
    let shown = &frame[..frame.len().min(MAX)];
    let mut text = format!("{:?}", String::from_utf8_lossy(shown));
    if frame.len() > MAX {
        text.push_str(" ...");
    }
    text
}
