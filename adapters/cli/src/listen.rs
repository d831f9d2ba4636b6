//! `framewire listen ADDR --codec C`: accept connections and print every
//! frame, document or message received.
//!
//! The first line on stderr is `framewire: listening on ADDR (codec C)`,
//! with the real port when ADDR ends in `:0`. Then, on stdout, one line per
//! event, readable:
//!
//! ```text
//! [1 127.0.0.1:50432] connected
//! [1 127.0.0.1:50432] frame 1: 5 bytes "hello"
//! [1 127.0.0.1:50432] closed after 1 frames (9 bytes)
//! ```
//!
//! or, with `--json`, as JSON lines with an `event` member (`open`, `frame`,
//! `close`, `error`).

use std::net::SocketAddr;

use bytes::Bytes;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::codec::FrameSpec;
use crate::conn::{ConnError, FrameReader};
use crate::error::{resolve, CliError};
use crate::show;

/// What `listen` was asked to do.
pub(crate) struct ListenArgs {
    /// Where to listen.
    pub(crate) addr: String,
    /// The codec, with its limits.
    pub(crate) codec: FrameSpec,
    /// JSON lines instead of readable text.
    pub(crate) json: bool,
    /// Exit after this many frames.
    pub(crate) count: Option<u64>,
    /// Serve one connection, then exit (non-zero if it ended in an error).
    pub(crate) once: bool,
    /// Connections served at once; accepting pauses beyond.
    pub(crate) max_connections: usize,
}

/// Connections `listen` and `echo` serve at once unless
/// `--max-connections` says otherwise; accepting pauses beyond.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Waits for a free connection slot, then accepts a connection. A failed
/// accept (the peer reset first, out of file descriptors) concerns that
/// connection only: it is reported and accepting goes on after a pause.
pub(crate) async fn accept_slot(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    loop {
        // The semaphore is never closed.
        let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
            return std::future::pending().await;
        };
        match listener.accept().await {
            Ok((sock, peer)) => return (sock, peer, permit),
            Err(e) => {
                eprintln!("framewire: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// A connection event, from a connection task to the printer.
pub(crate) enum Record {
    /// A connection was accepted.
    Open { conn: u64, peer: SocketAddr },
    /// A frame arrived.
    Frame {
        conn: u64,
        peer: SocketAddr,
        index: u64,
        bytes: Bytes,
    },
    /// The peer closed between frames.
    Close {
        conn: u64,
        peer: SocketAddr,
        frames: u64,
        bytes: u64,
    },
    /// The connection failed.
    Error {
        conn: u64,
        peer: SocketAddr,
        error: ConnError,
    },
}

/// Prints records, readable or as JSON lines.
pub(crate) struct Printer {
    /// The codec, for describing frames.
    pub(crate) codec: FrameSpec,
    /// JSON lines.
    pub(crate) json: bool,
}

impl Printer {
    /// Prints one record on stdout.
    pub(crate) fn print(&self, record: &Record) {
        let line = if self.json {
            let mut m = Map::new();
            match record {
                Record::Open { conn, peer } => {
                    header(&mut m, "open", *conn, *peer);
                }
                Record::Frame {
                    conn,
                    peer,
                    index,
                    bytes,
                } => {
                    header(&mut m, "frame", *conn, *peer);
                    m.insert("index".into(), Value::from(*index));
                    m.extend(show::view(&self.codec, bytes).json);
                }
                Record::Close {
                    conn,
                    peer,
                    frames,
                    bytes,
                } => {
                    header(&mut m, "close", *conn, *peer);
                    m.insert("frames".into(), Value::from(*frames));
                    m.insert("bytes".into(), Value::from(*bytes));
                }
                Record::Error { conn, peer, error } => {
                    header(&mut m, "error", *conn, *peer);
                    m.insert("error".into(), Value::from(error.to_string()));
                }
            }
            Value::Object(m).to_string()
        } else {
            match record {
                Record::Open { conn, peer } => format!("[{conn} {peer}] connected"),
                Record::Frame {
                    conn,
                    peer,
                    index,
                    bytes,
                } => {
                    let v = show::view(&self.codec, bytes);
                    format!("[{conn} {peer}] {} {index}: {}", v.kind, v.text)
                }
                Record::Close {
                    conn,
                    peer,
                    frames,
                    bytes,
                } => format!("[{conn} {peer}] closed after {frames} frames ({bytes} bytes)"),
                Record::Error { conn, peer, error } => format!("[{conn} {peer}] error: {error}"),
            }
        };
        println!("{line}");
    }
}

fn header(m: &mut Map<String, Value>, event: &str, conn: u64, peer: SocketAddr) {
    m.insert("event".into(), Value::from(event));
    m.insert("conn".into(), Value::from(conn));
    m.insert("peer".into(), Value::from(peer.to_string()));
}

/// Binds `addr` and announces the bound address on stderr.
pub(crate) async fn bind(addr: &str, what: &str) -> Result<TcpListener, CliError> {
    let addr = resolve(addr).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| CliError::Bind { addr, source })?;
    eprintln!("framewire: listening on {local} ({what})");
    Ok(listener)
}

/// Runs `listen`.
pub(crate) async fn run(args: ListenArgs) -> Result<(), CliError> {
    let framing = args.codec.clone();
    let listener = bind(&args.addr, &format!("codec {}", args.codec)).await?;
    let printer = Printer {
        codec: args.codec.clone(),
        json: args.json,
    };
    let (tx, mut rx) = mpsc::channel::<Record>(1024);
    let mut next_conn = 1u64;
    let mut accepting = true;
    let mut frames_seen = 0u64;
    if args.count == Some(0) {
        return Ok(());
    }
    let slots = Arc::new(Semaphore::new(args.max_connections.max(1)));
    loop {
        tokio::select! {
            (sock, peer, permit) = accept_slot(&listener, &slots), if accepting => {
                let conn = next_conn;
                next_conn += 1;
                if args.once {
                    accepting = false;
                }
                let task = read_connection(sock, peer, conn, framing.clone(), tx.clone());
                tokio::spawn(async move {
                    task.await;
                    drop(permit);
                });
            }
            record = rx.recv() => {
                // The listener keeps a sender, so the channel never closes.
                let Some(record) = record else { return Ok(()) };
                printer.print(&record);
                match record {
                    Record::Frame { .. } => {
                        frames_seen += 1;
                        if args.count.is_some_and(|c| frames_seen >= c) {
                            return Ok(());
                        }
                    }
                    Record::Close { .. } if args.once => return Ok(()),
                    Record::Error { peer, error, .. } if args.once => {
                        return Err(CliError::Conn { peer, source: error });
                    }
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Reads one connection's frames into `tx` until it ends.
async fn read_connection(
    sock: TcpStream,
    peer: SocketAddr,
    conn: u64,
    framing: FrameSpec,
    tx: mpsc::Sender<Record>,
) {
    if tx.send(Record::Open { conn, peer }).await.is_err() {
        return;
    }
    let mut reader = FrameReader::new(sock, framing);
    let mut index = 0u64;
    let end = loop {
        match reader.next().await {
            Ok(Some(bytes)) => {
                index += 1;
                let record = Record::Frame {
                    conn,
                    peer,
                    index,
                    bytes,
                };
                if tx.send(record).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                break Record::Close {
                    conn,
                    peer,
                    frames: index,
                    bytes: reader.bytes_received(),
                }
            }
            Err(error) => break Record::Error { conn, peer, error },
        }
    };
    let _ = tx.send(end).await;
}
