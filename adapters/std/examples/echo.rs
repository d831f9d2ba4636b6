//! The main job for a newcomer: two echo servers on loopback (BSON documents,
//! py-bson `sendobj`/`recvobj` compatible, and u32 big-endian length-prefixed
//! frames, socktools style), a client against each, and every message that
//! flows printed.
//!
//! ```sh
//! cargo run -p framewire-std --features bson --example echo
//! ```

use std::net::TcpStream;

use bson::{doc, Document};
use framewire::framing::{BsonDocument, LengthPrefixed};
use framewire_std::server::Server;
use framewire_std::{Error, Framed};

fn main() -> Result<(), Error> {
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
    println!(
        "summary: {} BSON documents ({bson_bytes} bytes) and {} frames ({frame_bytes} payload bytes) echoed intact",
        docs.len(),
        frames.len()
    );
    Ok(())
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
