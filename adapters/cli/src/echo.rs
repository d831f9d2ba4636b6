//! `framewire echo ADDR --codec C`: an echo server.
//!
//! * Framings: every frame goes back unchanged, except BSON documents, which
//!   are decoded and re-encoded (a malformed document ends its connection
//!   with a clear error instead of being echoed).
//! * `packet`: a cs.packetstream test server (see [`crate::packet`]).
//!
//! The first line on stderr is `framewire: listening on ADDR (echo, codec
//! C)`. Connection events go to stdout (`[N peer] connected`, `closed after
//! …`, `error: …`), and with `--verbose` every frame too.

use std::net::SocketAddr;

use bytes::Bytes;
use framewire::message::bson as fwbson;
use tokio::net::TcpStream;

use crate::codec::{is_packet, FrameSpec};
use crate::conn::{ConnError, FrameReader, FrameWriter};
use crate::error::CliError;
use crate::listen::{accept_slot, bind, Printer, Record};

/// What `echo` was asked to do.
pub(crate) struct EchoArgs {
    /// Where to listen.
    pub(crate) addr: String,
    /// The codec, with its limits.
    pub(crate) codec: FrameSpec,
    /// The frame limit, if not the codec's default.
    pub(crate) max_frame: Option<usize>,
    /// Print every frame.
    pub(crate) verbose: bool,
    /// JSON lines.
    pub(crate) json: bool,
    /// Connections served at once; accepting pauses beyond.
    pub(crate) max_connections: usize,
}

/// Why an echo connection ended early.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EchoError {
    /// The connection failed.
    #[error("{0}")]
    Conn(#[from] ConnError),
    /// A BSON document that the framing accepted but whose elements do not
    /// decode.
    #[error("document {index} is malformed, not echoed: {source}")]
    Bson {
        /// 1-based index of the document on the connection.
        index: u64,
        /// Why.
        source: fwbson::BsonError,
    },
}

/// Runs `echo` for a framing.
pub(crate) async fn run(args: EchoArgs) -> Result<(), CliError> {
    if is_packet(&args.codec) {
        return crate::packet::serve_cli(&args).await;
    }
    let framing = args.codec.clone();
    let listener = bind(&args.addr, &format!("echo, codec {}", args.codec)).await?;
    let printer = std::sync::Arc::new(Printer {
        codec: args.codec.clone(),
        json: args.json,
    });
    let mut next_conn = 1u64;
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(args.max_connections.max(1)));
    loop {
        tokio::select! {
            (sock, peer, permit) = accept_slot(&listener, &slots) => {
                let conn = next_conn;
                next_conn += 1;
                let printer = printer.clone();
                let framing = framing.clone();
                let verbose = args.verbose;
                tokio::spawn(async move {
                    printer.print(&Record::Open { conn, peer });
                    let on_frame = |index: u64, bytes: &Bytes| {
                        if verbose {
                            printer.print(&Record::Frame { conn, peer, index, bytes: bytes.clone() });
                        }
                    };
                    match echo_connection(sock, framing, on_frame).await {
                        Ok((frames, bytes)) => printer.print(&Record::Close { conn, peer, frames, bytes }),
                        Err(e) => print_echo_error(&printer, conn, peer, &e),
                    }
                    drop(permit);
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

fn print_echo_error(printer: &Printer, conn: u64, peer: SocketAddr, e: &EchoError) {
    if printer.json {
        let v = serde_json::json!({
            "event": "error", "conn": conn, "peer": peer.to_string(), "error": e.to_string(),
        });
        println!("{v}");
    } else {
        println!("[{conn} {peer}] error: {e}");
    }
}

/// Echoes one connection's frames until it closes; returns the frames and
/// bytes received.
pub(crate) async fn echo_connection(
    sock: TcpStream,
    framing: FrameSpec,
    mut on_frame: impl FnMut(u64, &Bytes),
) -> Result<(u64, u64), EchoError> {
    let _ = sock.set_nodelay(true);
    let is_bson = matches!(framing, FrameSpec::Bson(_));
    let (rd, wr) = sock.into_split();
    let mut reader = FrameReader::new(rd, framing.clone());
    let mut writer = FrameWriter::new(wr, framing);
    let mut index = 0u64;
    while let Some(first) = reader.next().await? {
        let mut frame = Some(first);
        // Answer everything already buffered, then write once.
        while let Some(f) = frame {
            index += 1;
            on_frame(index, &f);
            let reply = if is_bson {
                let doc = fwbson::document_from_slice(&f)
                    .map_err(|source| EchoError::Bson { index, source })?;
                Bytes::from(
                    fwbson::document_to_vec(&doc)
                        .map_err(|source| EchoError::Bson { index, source })?,
                )
            } else {
                f
            };
            writer.queue(reply).await?;
            frame = reader.next_buffered()?;
        }
        writer.flush().await?;
    }
    let _ = writer.shutdown().await;
    Ok((index, reader.bytes_received()))
}
