//! One gateway connection: a WebSocket client relayed to a TCP service.
//!
//! Two directions run concurrently in the connection's task, each strictly
//! sequential (read one unit, hand it on, wait until the other side took it,
//! read the next), so neither side is read faster than the other accepts:
//!
//! * up (client -> service): read one WebSocket message, write it (framed,
//!   if so configured) to TCP;
//! * down (service -> client): read from TCP, cut frames (framed mode) or
//!   take the chunk (raw mode), send each as one WebSocket message.
//!
//! How each direction ends decides how the other is wound down (see the
//! module documentation of [`crate::gateway`] for the close codes).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use framewire::framing::{Decode, EncodeError, FrameError, Framing};
use framewire::stream::{Event, FramedStream, ProtocolError, StreamError};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError as WsProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use super::{FrameSpec, GatewayConfig, GatewayMode, Shared};

type Ws = WebSocketStream<TcpStream>;
type WsTx = SplitSink<Ws, Message>;
type WsRx = SplitStream<Ws>;

/// The longest close reason RFC 6455 allows (125-byte control payload minus
/// the 2-byte code).
const MAX_REASON: usize = 123;

/// A close frame to send: code and reason (cut to [`MAX_REASON`] bytes at a
/// character boundary).
fn close_frame(code: CloseCode, reason: &str) -> CloseFrame {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    CloseFrame {
        code,
        reason: reason[..end].to_owned().into(),
    }
}

/// Per-connection byte and message counts, for the logs.
#[derive(Default)]
struct Tally {
    up_messages: AtomicU64,
    up_bytes: AtomicU64,
    down_messages: AtomicU64,
    down_bytes: AtomicU64,
}

impl Tally {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// State the two directions share (one task; atomics only to keep the
/// future `Send`).
#[derive(Default)]
struct Flags {
    /// Down is inside a WebSocket send (between `start_send` and the end of
    /// its flush).
    sending: AtomicBool,
    /// Up read a ping since down last finished a send: its automatic pong
    /// may be partly written.
    ping_pending: AtomicBool,
    tally: Tally,
}

/// How the up direction (client -> service) ended.
enum Up {
    /// The client sent a close frame (everything before it was written to TCP).
    ClientClosed(Option<CloseFrame>),
    /// The client broke a rule of the gateway: close it with this frame.
    Refuse(CloseFrame),
    /// The WebSocket failed (reset, protocol error); `code`, if any, is worth
    /// trying to send.
    WsFailed(String, Option<CloseCode>),
    /// Writing to the service failed.
    TcpFailed(io::Error),
}

/// How the down direction (service -> client) ended.
enum Down {
    /// The service closed its side; every frame before was sent.
    TcpEof,
    /// The service's bytes break the framing; every frame before was sent.
    Refuse(CloseFrame),
    /// Reading from the service failed.
    TcpFailed(io::Error),
    /// The WebSocket is closing (the client's close arrived): nothing more
    /// can be sent through tungstenite.
    Closing,
    /// The WebSocket failed.
    WsFailed(String),
}

/// The down direction's buffers, kept outside its future so that the
/// direction can be resumed over another writer (after the client's close).
struct DownState {
    framed: Option<FramedStream<FrameSpec>>,
    raw: BytesMut,
    raw_chunk: usize,
    /// Messages cut but not yet sent, oldest first.
    pending: VecDeque<Bytes>,
    /// The service's EOF has been seen and every frame before it cut.
    eof: bool,
    /// A framing error found after the frames in `pending`.
    failed: Option<CloseFrame>,
}

impl DownState {
    fn new(config: &GatewayConfig) -> Self {
        let framed = match &config.mode {
            GatewayMode::Raw => None,
            GatewayMode::Framed(spec) => {
                let mut s = FramedStream::new(spec.clone());
                if let Some(max) = config.max_buffered {
                    s = s.with_max_buffered(max);
                }
                Some(s)
            }
        };
        DownState {
            framed,
            raw: BytesMut::new(),
            raw_chunk: config.raw_chunk_len,
            pending: VecDeque::new(),
            eof: false,
            failed: None,
        }
    }
}

/// Where down sends its messages.
enum WsOut<'a> {
    /// Through tungstenite.
    Sink(&'a mut WsTx),
    /// Directly onto the socket as unmasked binary frames, after the client's
    /// close arrived and while tungstenite holds its close reply back (it
    /// sends it when the socket is next flushed through it).
    Raw(&'a mut TcpStream),
}

enum SendFail {
    Closing,
    Failed(String),
}

impl WsOut<'_> {
    async fn send(&mut self, data: Bytes) -> Result<(), SendFail> {
        match self {
            WsOut::Sink(tx) => match tx.send(Message::Binary(data)).await {
                Ok(()) => Ok(()),
                Err(WsError::Protocol(WsProtocolError::SendAfterClosing)) => Err(SendFail::Closing),
                Err(e) => Err(SendFail::Failed(e.to_string())),
            },
            WsOut::Raw(tcp) => {
                let mut out = Vec::with_capacity(data.len() + 10);
                Frame::message(data, OpCode::Data(OpData::Binary), true)
                    .format(&mut out)
                    .map_err(|e| SendFail::Failed(e.to_string()))?;
                tcp.write_all(&out)
                    .await
                    .map_err(|e| SendFail::Failed(e.to_string()))
            }
        }
    }
}

/// The close frame for a framing error on the service's side.
fn stream_error_close(e: &StreamError) -> CloseFrame {
    let too_big = matches!(
        e,
        StreamError::Protocol(
            ProtocolError::FrameExceedsBuffer { .. }
                | ProtocolError::Frame(
                    FrameError::FrameTooLong { .. }
                        | FrameError::LineTooLong { .. }
                        | FrameError::ContentTooLong { .. }
                        | FrameError::JsonHeaderTooLong { .. }
                )
        )
    );
    let code = if too_big {
        CloseCode::Size
    } else {
        CloseCode::Invalid
    };
    close_frame(code, &format!("service sent a bad frame: {e}"))
}

/// The close frame for a WebSocket message the framing refuses, with the
/// reason spelled out by decoding the message as a frame.
fn malformed_close(spec: &FrameSpec, message: &[u8], e: EncodeError) -> CloseFrame {
    if let EncodeError::PayloadTooLong { len, max } = e {
        return close_frame(
            CloseCode::Size,
            &format!("frame payload of {len} bytes is over the {spec} limit of {max}"),
        );
    }
    let why = if matches!(e, EncodeError::Malformed) {
        // Self-delimiting formats: say what is wrong with the bytes.
        match spec.clone().decode(message) {
            Err(fe) => fe.to_string(),
            Ok(Decode::Incomplete { need: Some(need) }) => {
                format!("truncated frame: {} of {need} bytes", message.len())
            }
            Ok(Decode::Incomplete { need: None }) => {
                format!("truncated frame: {} bytes", message.len())
            }
            Ok(Decode::Frame { len, .. }) if len < message.len() => {
                format!("a frame of {len} bytes and {} more", message.len() - len)
            }
            Ok(_) => e.to_string(),
        }
    } else {
        e.to_string()
    };
    close_frame(CloseCode::Invalid, &format!("not one {spec} frame: {why}"))
}

/// Writes `parts` to TCP as one write when small, part by part otherwise.
async fn write_parts(tcp: &mut OwnedWriteHalf, parts: [&[u8]; 3]) -> io::Result<()> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let nonempty = parts.iter().filter(|p| !p.is_empty()).count();
    if nonempty > 1 && total <= 64 * 1024 {
        tcp.write_all(&parts.concat()).await
    } else {
        for p in parts {
            if !p.is_empty() {
                tcp.write_all(p).await?;
            }
        }
        Ok(())
    }
}

/// Client -> service.
async fn up(rx: &mut WsRx, tcp: &mut OwnedWriteHalf, mode: &GatewayMode, flags: &Flags) -> Up {
    loop {
        let msg = match rx.next().await {
            None => return Up::WsFailed("client went away without a close handshake".into(), None),
            Some(Ok(m)) => m,
            Some(Err(WsError::Capacity(e))) => {
                let reason = match e {
                    CapacityError::MessageTooLong { size, max_size } => {
                        format!("message of {size} bytes is over the limit of {max_size}")
                    }
                    other @ CapacityError::TooManyHeaders => other.to_string(),
                };
                return Up::Refuse(close_frame(CloseCode::Size, &reason));
            }
            Some(Err(WsError::Utf8(e))) => {
                return Up::Refuse(close_frame(
                    CloseCode::Unsupported,
                    &format!("text messages are not supported ({e})"),
                ))
            }
            Some(Err(e @ WsError::Protocol(_))) => {
                return Up::WsFailed(e.to_string(), Some(CloseCode::Protocol))
            }
            Some(Err(e)) => return Up::WsFailed(e.to_string(), None),
        };
        match msg {
            Message::Binary(data) => {
                let written = match mode {
                    GatewayMode::Raw => tcp.write_all(&data).await,
                    GatewayMode::Framed(spec) => match spec.header(&data) {
                        Ok(h) => write_parts(tcp, [h.as_slice(), &data, spec.trailer()]).await,
                        Err(e) => return Up::Refuse(malformed_close(spec, &data, e)),
                    },
                };
                if let Err(e) = written {
                    return Up::TcpFailed(e);
                }
                Tally::add(&flags.tally.up_messages, 1);
                Tally::add(&flags.tally.up_bytes, data.len() as u64);
            }
            Message::Text(_) => {
                return Up::Refuse(close_frame(
                    CloseCode::Unsupported,
                    "text messages are not supported: send binary messages",
                ))
            }
            Message::Ping(_) => flags.ping_pending.store(true, Relaxed),
            Message::Pong(_) | Message::Frame(_) => {}
            // If down is inside a send now, tungstenite's automatic close
            // reply goes out with that send (see `relay`).
            Message::Close(frame) => return Up::ClientClosed(frame),
        }
    }
}

/// Service -> client: sends what is pending, reads more, until the service's
/// EOF, a framing error, or a failure.
async fn down(
    st: &mut DownState,
    tcp: &mut OwnedReadHalf,
    mut out: WsOut<'_>,
    flags: &Flags,
) -> Down {
    loop {
        while let Some(m) = st.pending.front() {
            let len = m.len() as u64;
            flags.sending.store(true, Relaxed);
            let sent = out.send(m.clone()).await;
            flags.sending.store(false, Relaxed);
            match sent {
                Ok(()) => {
                    st.pending.pop_front();
                    flags.ping_pending.store(false, Relaxed);
                    Tally::add(&flags.tally.down_messages, 1);
                    Tally::add(&flags.tally.down_bytes, len);
                }
                Err(SendFail::Closing) => return Down::Closing,
                Err(SendFail::Failed(e)) => return Down::WsFailed(e),
            }
        }
        if let Some(close) = st.failed.take() {
            return Down::Refuse(close);
        }
        if st.eof {
            return Down::TcpEof;
        }
        match &mut st.framed {
            None => {
                st.raw.reserve(st.raw_chunk);
                let n = match (&mut *tcp)
                    .take(st.raw_chunk as u64)
                    .read_buf(&mut st.raw)
                    .await
                {
                    Ok(n) => n,
                    Err(e) => return Down::TcpFailed(e),
                };
                if n == 0 {
                    st.eof = true;
                } else {
                    st.pending.push_back(st.raw.split().freeze());
                }
            }
            Some(fs) => {
                let spare = fs.receive_buffer();
                if !spare.is_empty() {
                    let n = match tcp.read(spare).await {
                        Ok(n) => n,
                        Err(e) => return Down::TcpFailed(e),
                    };
                    let r = if n == 0 {
                        fs.handle_eof()
                    } else {
                        fs.commit_received(n)
                    };
                    if let Err(e) = r {
                        st.failed = Some(stream_error_close(&e));
                        continue;
                    }
                }
                // Cut every frame now buffered (this also makes room when
                // the buffer was full).
                loop {
                    match fs.poll_event() {
                        Ok(Some(Event::Frame(f))) => st.pending.push_back(f),
                        Ok(Some(Event::Closed)) => {
                            st.eof = true;
                            break;
                        }
                        // Skipped over-long frames (a framing configured to
                        // skip them): nothing to deliver.
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            st.failed = Some(stream_error_close(&e));
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Reads and drops the client's messages until its close (or the end of the
/// connection, or `deadline`), after the gateway sent its own close.
async fn drain_ws(rx: &mut WsRx, deadline: Instant) {
    let _ = timeout_at(deadline, async {
        while let Some(Ok(m)) = rx.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}

/// Reads and drops the service's bytes until its EOF or `deadline`; returns
/// how many there were.
async fn drain_tcp(tcp: &mut OwnedReadHalf, deadline: Instant) -> u64 {
    let mut dropped = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    let _ = timeout_at(deadline, async {
        while let Ok(n @ 1..) = tcp.read(&mut buf).await {
            dropped += n as u64;
        }
    })
    .await;
    dropped
}

/// Sends `frame` as the gateway's close and waits (bounded) for the client's
/// reply, dropping anything else it sends.
async fn close_ws(tx: &mut WsTx, rx: &mut WsRx, frame: CloseFrame, close_timeout: Duration) {
    let deadline = Instant::now() + close_timeout;
    match timeout_at(deadline, tx.send(Message::Close(Some(frame)))).await {
        Ok(Ok(())) => drain_ws(rx, deadline).await,
        Ok(Err(e)) => debug!(error = %e, "could not send the close frame"),
        Err(_) => debug!("timed out sending the close frame"),
    }
}

/// Connects to the service (bounded by the connect timeout), then relays
/// until both sides are done.
pub(super) async fn serve(mut ws: Ws, peer: SocketAddr, shared: Arc<Shared>) {
    let config = &shared.config;
    let connect = timeout(config.connect_timeout, TcpStream::connect(&*shared.target));
    let tcp = tokio::select! {
        r = connect => r,
        () = shared.shutdown.cancelled() => {
            let frame = close_frame(CloseCode::Away, "gateway shutting down");
            let _ = timeout(config.close_timeout, ws.close(Some(frame))).await;
            return;
        }
    };
    let tcp = match tcp {
        Ok(Ok(tcp)) => tcp,
        failed => {
            let reason = match failed {
                Ok(Err(e)) => format!("cannot connect to {}: {e}", shared.target),
                _ => format!(
                    "connecting to {} timed out after {:?}",
                    shared.target, config.connect_timeout
                ),
            };
            warn!(%peer, target = %shared.target, %reason, "service unreachable");
            let (mut tx, mut rx) = ws.split();
            close_ws(
                &mut tx,
                &mut rx,
                close_frame(CloseCode::Error, &reason),
                config.close_timeout,
            )
            .await;
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    info!(%peer, target = %shared.target, "relaying");
    relay(ws, tcp, peer, &shared).await;
}

/// What ended the relay first.
enum First {
    Up(Up),
    Down(Down),
    Shutdown,
}

#[allow(clippy::too_many_lines)]
async fn relay(ws: Ws, tcp: TcpStream, peer: SocketAddr, shared: &Shared) {
    let config = &shared.config;
    let close_timeout = config.close_timeout;
    let (mut tx, mut rx) = ws.split();
    let (mut tcp_r, mut tcp_w) = tcp.into_split();
    let mut st = DownState::new(config);
    let flags = Flags::default();

    let mut up_fut = Box::pin(up(&mut rx, &mut tcp_w, &config.mode, &flags));
    let mut down_fut = Box::pin(down(&mut st, &mut tcp_r, WsOut::Sink(&mut tx), &flags));
    let first = tokio::select! {
        u = &mut up_fut => First::Up(u),
        d = &mut down_fut => First::Down(d),
        () = shared.shutdown.cancelled() => First::Shutdown,
    };

    let outcome: String = match first {
        First::Up(Up::ClientClosed(frame)) => {
            drop(up_fut);
            // Everything the client sent before its close is written: the
            // service gets an EOF, answers what it has, and closes.
            let _ = tcp_w.shutdown().await;
            let deadline = Instant::now() + close_timeout;
            let clean = !flags.sending.load(Relaxed) && !flags.ping_pending.load(Relaxed);
            if clean {
                // Down is waiting on a TCP read (cancel-safe): stop it and go
                // on over the raw socket, ahead of tungstenite's close reply.
                drop(down_fut);
                let Ok(mut ws) = rx.reunite(tx) else {
                    unreachable!("halves of one WebSocket")
                };
                let end = timeout_at(
                    deadline,
                    down(&mut st, &mut tcp_r, WsOut::Raw(ws.get_mut()), &flags),
                )
                .await;
                // Sends the close reply tungstenite queued.
                let _ = timeout(close_timeout, SinkExt::close(&mut ws)).await;
                match end {
                    Ok(Down::TcpEof) => format!(
                        "client closed ({}), service finished",
                        describe(frame.as_ref())
                    ),
                    Ok(Down::Refuse(f)) => format!(
                        "client closed; then the service sent a bad frame: {}",
                        f.reason
                    ),
                    Ok(Down::TcpFailed(e)) => {
                        format!("client closed; then the service failed: {e}")
                    }
                    Ok(Down::Closing | Down::WsFailed(_)) => {
                        "client closed; then the client went away".to_owned()
                    }
                    Err(_) => "client closed; the service did not finish within the close timeout"
                        .to_owned(),
                }
            } else {
                // The close reply leaves with the send in flight: nothing
                // more can follow it. Let that send finish, then drop what the
                // service still says.
                let _ = timeout_at(deadline, &mut down_fut).await;
                drop(down_fut);
                let dropped = drain_tcp(&mut tcp_r, deadline).await;
                let _ = timeout(close_timeout, tx.close()).await;
                format!(
                    "client closed ({}) while a message was in flight; {dropped} later service bytes dropped",
                    describe(frame.as_ref())
                )
            }
        }
        First::Down(Down::Closing) => {
            // The client's close arrived while down was sending; up has it.
            drop(down_fut);
            let deadline = Instant::now() + close_timeout;
            let _ = timeout_at(deadline, &mut up_fut).await;
            drop(up_fut);
            let _ = tcp_w.shutdown().await;
            let dropped = drain_tcp(&mut tcp_r, deadline).await;
            let _ = timeout(close_timeout, tx.close()).await;
            format!("client closed while a message was in flight; {dropped} later service bytes dropped")
        }
        First::Up(Up::Refuse(frame)) => {
            drop(up_fut);
            drop(down_fut);
            let _ = tcp_w.shutdown().await;
            let reason = format!(
                "refused the client ({}): {}",
                u16::from(frame.code),
                frame.reason
            );
            close_ws(&mut tx, &mut rx, frame, close_timeout).await;
            reason
        }
        First::Up(Up::WsFailed(e, code)) => {
            drop(up_fut);
            drop(down_fut);
            let _ = tcp_w.shutdown().await;
            if let Some(code) = code {
                let _ = timeout(
                    close_timeout,
                    tx.send(Message::Close(Some(close_frame(code, &e)))),
                )
                .await;
            }
            format!("client connection failed: {e}")
        }
        First::Up(Up::TcpFailed(e)) | First::Down(Down::TcpFailed(e)) => {
            drop(up_fut);
            drop(down_fut);
            let reason = format!("service connection failed: {e}");
            close_ws(
                &mut tx,
                &mut rx,
                close_frame(CloseCode::Error, &reason),
                close_timeout,
            )
            .await;
            reason
        }
        First::Down(Down::TcpEof) => {
            drop(down_fut);
            // Every frame the service sent has been delivered. Close, and keep
            // forwarding the client's messages (the service closed only its
            // sending side) until the client's close reply.
            let deadline = Instant::now() + close_timeout;
            let frame = close_frame(CloseCode::Normal, "service closed the connection");
            let sent = timeout_at(deadline, tx.send(Message::Close(Some(frame)))).await;
            if matches!(sent, Ok(Ok(()))) {
                let _ = timeout_at(deadline, &mut up_fut).await;
            }
            drop(up_fut);
            let _ = tcp_w.shutdown().await;
            "service closed the connection".to_owned()
        }
        First::Down(Down::Refuse(frame)) => {
            drop(up_fut);
            drop(down_fut);
            let _ = tcp_w.shutdown().await;
            let reason = format!("closed ({}): {}", u16::from(frame.code), frame.reason);
            close_ws(&mut tx, &mut rx, frame, close_timeout).await;
            reason
        }
        First::Down(Down::WsFailed(e)) => {
            drop(up_fut);
            drop(down_fut);
            let _ = tcp_w.shutdown().await;
            format!("client connection failed: {e}")
        }
        First::Shutdown => {
            drop(up_fut);
            drop(down_fut);
            let _ = tcp_w.shutdown().await;
            close_ws(
                &mut tx,
                &mut rx,
                close_frame(CloseCode::Away, "gateway shutting down"),
                close_timeout,
            )
            .await;
            "gateway shutting down".to_owned()
        }
    };
    let t = &flags.tally;
    info!(
        %peer,
        up_messages = t.up_messages.load(Relaxed),
        up_bytes = t.up_bytes.load(Relaxed),
        down_messages = t.down_messages.load(Relaxed),
        down_bytes = t.down_bytes.load(Relaxed),
        "connection ended: {outcome}"
    );
}

fn describe(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) => format!("{} {:?}", u16::from(f.code), f.reason.as_str()),
        None => "no code".to_owned(),
    }
}
