//! A WebSocket-to-TCP gateway, so that browsers reach TCP services.
//!
//! [`Gateway`] accepts WebSocket clients and connects each one to a TCP
//! service (one TCP connection per WebSocket connection), then moves bytes
//! both ways. Only **binary** messages carry data.
//!
//! ```no_run
//! use framewire_tokio::gateway::{FrameSpec, Gateway, GatewayConfig, GatewayMode};
//! # async fn run() -> std::io::Result<()> {
//! let config = GatewayConfig::new()
//!     .with_mode(GatewayMode::Framed(FrameSpec::Packet(Default::default())));
//! let gateway = Gateway::bind("127.0.0.1:8080", "127.0.0.1:7000", config).await?;
//! println!("ws://{}", gateway.local_addr());
//! let handle = gateway.spawn();
//! // ... later:
//! let stats = handle.shutdown().await?;
//! println!("served {} connections", stats.served);
//! # Ok(()) }
//! ```
//!
//! # Modes
//!
//! * [`GatewayMode::Raw`] (websockify style): the bytes of each binary
//!   message are written to TCP as they are; bytes from TCP are sent as
//!   binary messages as they arrive (at most
//!   [`raw_chunk_len`](GatewayConfig::with_raw_chunk_len) bytes each). Message
//!   boundaries mean nothing: the client sees a byte stream cut anywhere,
//!   and may cut its own stream anywhere.
//! * [`GatewayMode::Framed`]: **each WebSocket message carries exactly one
//!   frame, in both directions.** The message is the frame's *payload* as
//!   the core [`Framing`](framewire::framing::Framing) defines it: toward
//!   TCP the gateway writes the framing's header, the message, and the
//!   framing's trailer; from TCP it cuts frames with the framing (a
//!   [`FramedStream`](framewire::stream::FramedStream)) and sends each
//!   frame's payload as one message. Concretely, for each [`FrameSpec`]:
//!
//!   | framing | a WebSocket message is | the gateway adds toward TCP |
//!   |---|---|---|
//!   | `length…` | the payload, without the length | the length field |
//!   | `lines` | the line, without `\n` | `\n` |
//!   | `fixed:N` | exactly `N` bytes | nothing |
//!   | `bson` | one whole BSON document (it carries its own length) | nothing |
//!   | `json-header` | one whole message: u16 prefix, JSON header, content | nothing |
//!   | `packet` | one whole cs.packetstream packet, BSUInt length included | nothing |
//!
//!   For the self-delimiting formats (`bson`, `json-header`, `packet`,
//!   `fixed`) the message is the whole unit, byte for byte what travels on
//!   TCP, and the gateway checks that it is **exactly one well-formed
//!   frame** (no more, no fewer bytes, within the limit) before writing it,
//!   so a client can never desynchronise the service's stream. A message
//!   the framing refuses (a line containing `\n`, a fixed frame of the wrong
//!   size, a truncated or over-long packet, two documents in one message)
//!   closes the connection with **1007** (or **1009** when over the
//!   framing's limit) and a reason naming the problem; nothing of that
//!   message reaches TCP.
//!
//! # Closing
//!
//! | what happens | the gateway does | WebSocket close |
//! |---|---|---|
//! | the client sends a close | every message before it is already written to TCP; shuts down the TCP write half; keeps forwarding the service's bytes (frames) until the service closes, at most [`close_timeout`](GatewayConfig::with_close_timeout); then completes the close | the client's code echoed |
//! | the service closes (TCP EOF) | forwards every frame before the EOF, then closes; the client's messages until its close reply still go to TCP | **1000** `service closed the connection` |
//! | the service's bytes break the framing (or a frame is over its limit) | frames before the error are delivered; TCP is shut down | **1007** (**1009** over a limit) with the framing error |
//! | the service closes inside a frame | as above | **1007** `… truncated …` |
//! | connecting fails or times out, or TCP fails (reset) | TCP is dropped | **1011** with the reason |
//! | a text message | TCP write half shut down | **1003** |
//! | a message over [`max_message_size`](GatewayConfig::with_max_message_size) | TCP write half shut down | **1009** |
//! | a malformed frame (framed mode) | TCP write half shut down | **1007** (**1009** over the framing's limit) |
//! | [`GatewayHandle::shutdown`] | TCP write half shut down | **1001** `gateway shutting down` |
//!
//! After a close the client's close reply is awaited at most
//! `close_timeout`. Pings are answered by tungstenite.
//!
//! About the first row: RFC 6455 lets the side that *receives* a close
//! finish what it is sending before it replies, and tungstenite and Node's
//! `ws` deliver those messages; browsers drop every message that arrives
//! after their own `close()`. A browser client that wants the service's last
//! words waits for them (e.g. the packet stream's EOF packet) before closing.
//! In one corner — the client's close arrives while a send to that client is
//! blocked (the client is not reading), or right after a ping whose pong may
//! still be half-written — tungstenite's reply has to go out first; the
//! service's later bytes are then read and dropped (counted in the log)
//! until it closes.
//!
//! # Limits and back-pressure
//!
//! | limit | default | setting |
//! |---|---|---|
//! | WebSocket message (and frame) size | 16 MiB | [`max_message_size`](GatewayConfig::with_max_message_size) |
//! | frame on the TCP side | the framing's limit (16 MiB for `bson` and `packet`, 8 MiB for `length`, 64 KiB lines) | the [`FrameSpec`]'s framing |
//! | bytes buffered from TCP for an incomplete frame | the framing's limit, at least 64 KiB | [`max_buffered`](GatewayConfig::with_max_buffered) |
//! | raw mode chunk | 64 KiB | [`raw_chunk_len`](GatewayConfig::with_raw_chunk_len) |
//! | concurrent connections | 1024 | [`max_connections`](GatewayConfig::with_max_connections) |
//! | WebSocket handshake time | 10 s | [`handshake_timeout`](GatewayConfig::with_handshake_timeout) |
//! | TCP connect time | 10 s | [`connect_timeout`](GatewayConfig::with_connect_timeout) |
//! | close handshake / service drain | 5 s | [`close_timeout`](GatewayConfig::with_close_timeout) |
//!
//! Over `max_connections` the WebSocket upgrade is refused with **HTTP 503**
//! (`Retry-After: 1`), counted in [`GatewayStats::refused`]; at most
//! `max_connections` such refusals run at once, beyond that the socket is
//! simply closed.
//!
//! Each direction reads one unit (a message, a TCP read), hands it on and
//! waits until the other side has taken it before reading the next, so the
//! gateway never buffers more than one message and one TCP read per
//! direction and connection: a slow reader slows the writer down.
//!
//! Logs go through `tracing` (connections at `info`, failures at `warn`,
//! details at `debug`).

mod conn;
mod spec;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

pub use self::spec::{FrameSpec, SpecError};

/// How WebSocket messages map to the TCP byte stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GatewayMode {
    /// Messages are arbitrary chunks of the byte stream (websockify style).
    #[default]
    Raw,
    /// Each message is exactly one frame of this framing (see the module
    /// documentation for what the message holds).
    Framed(FrameSpec),
}

impl fmt::Display for GatewayMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayMode::Raw => f.write_str("raw"),
            GatewayMode::Framed(spec) => write!(f, "framed {spec}"),
        }
    }
}

/// Gateway settings; every limit has a documented default (see the module
/// documentation).
///
/// ```
/// use std::time::Duration;
/// use framewire_tokio::gateway::{GatewayConfig, GatewayMode};
/// let config = GatewayConfig::new()
///     .with_mode(GatewayMode::Framed("length".parse().unwrap()))
///     .with_max_connections(100)
///     .with_connect_timeout(Duration::from_secs(2));
/// assert_eq!(config.max_message_size(), 16 << 20);
/// assert_eq!(config.max_connections(), 100);
/// ```
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    mode: GatewayMode,
    max_message_size: usize,
    max_buffered: Option<usize>,
    raw_chunk_len: usize,
    max_connections: usize,
    handshake_timeout: Duration,
    connect_timeout: Duration,
    close_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig::new()
    }
}

impl GatewayConfig {
    /// Default [`with_max_message_size`](Self::with_max_message_size): 16 MiB.
    pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
    /// Default [`with_raw_chunk_len`](Self::with_raw_chunk_len): 64 KiB.
    pub const DEFAULT_RAW_CHUNK_LEN: usize = 64 * 1024;
    /// Default [`with_max_connections`](Self::with_max_connections): 1024.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
    /// Default [`with_handshake_timeout`](Self::with_handshake_timeout): 10 s.
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`with_connect_timeout`](Self::with_connect_timeout): 10 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default [`with_close_timeout`](Self::with_close_timeout): 5 s.
    pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

    /// Raw mode and the defaults.
    pub fn new() -> Self {
        GatewayConfig {
            mode: GatewayMode::Raw,
            max_message_size: Self::DEFAULT_MAX_MESSAGE_SIZE,
            max_buffered: None,
            raw_chunk_len: Self::DEFAULT_RAW_CHUNK_LEN,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: Self::DEFAULT_HANDSHAKE_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            close_timeout: Self::DEFAULT_CLOSE_TIMEOUT,
        }
    }

    /// Sets the mode. Default [`GatewayMode::Raw`].
    #[must_use]
    pub fn with_mode(mut self, mode: GatewayMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the largest WebSocket message (and WebSocket frame) accepted from
    /// a client; a bigger one closes the connection with 1009. Default
    /// [`DEFAULT_MAX_MESSAGE_SIZE`](Self::DEFAULT_MAX_MESSAGE_SIZE).
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    #[must_use]
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        assert!(max > 0, "max_message_size must be at least 1");
        self.max_message_size = max;
        self
    }

    /// Sets how many bytes from TCP may be buffered for an incomplete frame
    /// (framed mode); a frame needing more closes with 1009. Default: the
    /// framing's `max_frame_len`, at least 64 KiB.
    ///
    /// # Panics
    ///
    /// If `max` is 0.
    #[must_use]
    pub fn with_max_buffered(mut self, max: usize) -> Self {
        assert!(max > 0, "max_buffered must be at least 1");
        self.max_buffered = Some(max);
        self
    }

    /// Sets the largest TCP read sent as one message in raw mode. Default
    /// [`DEFAULT_RAW_CHUNK_LEN`](Self::DEFAULT_RAW_CHUNK_LEN).
    ///
    /// # Panics
    ///
    /// If `len` is 0.
    #[must_use]
    pub fn with_raw_chunk_len(mut self, len: usize) -> Self {
        assert!(len > 0, "raw_chunk_len must be at least 1");
        self.raw_chunk_len = len;
        self
    }

    /// Sets how many connections (handshakes included) may be open at once;
    /// more are refused with HTTP 503. Default
    /// [`DEFAULT_MAX_CONNECTIONS`](Self::DEFAULT_MAX_CONNECTIONS).
    ///
    /// # Panics
    ///
    /// If `n` is 0.
    #[must_use]
    pub fn with_max_connections(mut self, n: usize) -> Self {
        assert!(n > 0, "max_connections must be at least 1");
        self.max_connections = n;
        self
    }

    /// Sets how long a client has to complete the WebSocket handshake.
    /// Default [`DEFAULT_HANDSHAKE_TIMEOUT`](Self::DEFAULT_HANDSHAKE_TIMEOUT).
    #[must_use]
    pub fn with_handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// Sets how long connecting to the service may take (then: close 1011).
    /// Default [`DEFAULT_CONNECT_TIMEOUT`](Self::DEFAULT_CONNECT_TIMEOUT).
    #[must_use]
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Sets how long a close may take: the client's close reply, and the
    /// service's remaining output after the client closed. Default
    /// [`DEFAULT_CLOSE_TIMEOUT`](Self::DEFAULT_CLOSE_TIMEOUT).
    #[must_use]
    pub fn with_close_timeout(mut self, t: Duration) -> Self {
        self.close_timeout = t;
        self
    }

    /// The mode.
    pub fn mode(&self) -> &GatewayMode {
        &self.mode
    }

    /// The WebSocket message size limit.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The TCP-side buffer limit, if set (else the framing's default).
    pub fn max_buffered(&self) -> Option<usize> {
        self.max_buffered
    }

    /// The raw mode chunk size.
    pub fn raw_chunk_len(&self) -> usize {
        self.raw_chunk_len
    }

    /// The connection limit.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The handshake timeout.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The close timeout.
    pub fn close_timeout(&self) -> Duration {
        self.close_timeout
    }

    fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }
}

/// Gateway counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Connections open now (handshakes included).
    pub active: usize,
    /// WebSocket connections accepted and finished.
    pub served: u64,
    /// Upgrades refused over the connection limit.
    pub refused: u64,
    /// Connections whose WebSocket handshake failed or timed out.
    pub failed_handshakes: u64,
}

#[derive(Default)]
struct Counters {
    active: AtomicUsize,
    served: AtomicU64,
    refused: AtomicU64,
    failed_handshakes: AtomicU64,
}

/// What every connection task shares.
struct Shared {
    target: Arc<str>,
    config: GatewayConfig,
    counters: Counters,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    refusals: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn stats(&self) -> GatewayStats {
        GatewayStats {
            active: self.counters.active.load(Relaxed),
            served: self.counters.served.load(Relaxed),
            refused: self.counters.refused.load(Relaxed),
            failed_handshakes: self.counters.failed_handshakes.load(Relaxed),
        }
    }
}

/// Decrements `active` when a connection ends, however it ends.
struct ActiveGuard(Arc<Shared>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.counters.active.fetch_sub(1, Relaxed);
    }
}

/// A bound gateway; [`run`](Gateway::run) it or [`spawn`](Gateway::spawn) it.
pub struct Gateway {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("local_addr", &self.local_addr)
            .field("target", &self.shared.target)
            .field("mode", &self.shared.config.mode)
            .finish_non_exhaustive()
    }
}

/// Stops a [`Gateway`] that is [`run`](Gateway::run)ning (clone it freely).
#[derive(Clone, Debug)]
pub struct ShutdownTrigger(CancellationToken);

impl ShutdownTrigger {
    /// Stops accepting, closes every connection with 1001 and makes
    /// [`Gateway::run`] return once they are done.
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

impl Gateway {
    /// Listens for WebSocket clients on `ws_addr`; each one is relayed to
    /// `tcp_target` (`host:port`, or anything whose `Display` is; resolved at
    /// each connection).
    pub async fn bind(
        ws_addr: impl ToSocketAddrs,
        tcp_target: impl fmt::Display,
        config: GatewayConfig,
    ) -> io::Result<Gateway> {
        let listener = TcpListener::bind(ws_addr).await?;
        let local_addr = listener.local_addr()?;
        let refusals = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        Ok(Gateway {
            listener,
            local_addr,
            shared: Arc::new(Shared {
                target: tcp_target.to_string().into(),
                config,
                counters: Counters::default(),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                refusals,
            }),
        })
    }

    /// The address clients connect to (`ws://<local_addr>/`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> GatewayStats {
        self.shared.stats()
    }

    /// A handle that makes [`run`](Self::run) return (for a CLI's Ctrl-C).
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.shared.shutdown.clone())
    }

    /// Accepts and relays clients until a [`ShutdownTrigger`] fires, then
    /// closes every connection (1001) and returns once all are done (each
    /// bounded by the close timeout).
    pub async fn run(self) -> io::Result<()> {
        let Gateway {
            listener,
            local_addr,
            shared,
        } = self;
        info!(%local_addr, target = %shared.target, mode = %shared.config.mode, "gateway listening");
        loop {
            let accepted = tokio::select! {
                () = shared.shutdown.cancelled() => break,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, peer)) => admit(&shared, stream, peer),
                Err(e) => {
                    // Out of descriptors and the like: pause, don't spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        drop(listener);
        shared.tracker.close();
        shared.tracker.wait().await;
        info!(%local_addr, "gateway stopped");
        Ok(())
    }

    /// Runs the gateway on a task of its own.
    pub fn spawn(self) -> GatewayHandle {
        let local_addr = self.local_addr;
        let shared = Arc::clone(&self.shared);
        let task = tokio::spawn(self.run());
        GatewayHandle {
            local_addr,
            shared,
            task,
        }
    }
}

/// A [`Gateway`] running on its own task.
#[derive(Debug)]
pub struct GatewayHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<io::Result<()>>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("target", &self.target)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl GatewayHandle {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The counters so far.
    pub fn stats(&self) -> GatewayStats {
        self.shared.stats()
    }

    /// A trigger that stops the gateway without waiting.
    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.shared.shutdown.clone())
    }

    /// Stops accepting, closes every connection with 1001 (each bounded by
    /// the close timeout), waits for them, and returns the final counters.
    pub async fn shutdown(self) -> io::Result<GatewayStats> {
        self.shared.shutdown.cancel();
        match self.task.await {
            Ok(r) => r?,
            Err(e) => return Err(io::Error::other(e)),
        }
        Ok(self.shared.stats())
    }
}

/// Starts a connection's task, or refuses it over the limit.
fn admit(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let config = &shared.config;
    let counters = &shared.counters;
    let admitted = counters
        .active
        .fetch_update(Relaxed, Relaxed, |n| {
            (n < config.max_connections).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        counters.refused.fetch_add(1, Relaxed);
        let Ok(permit) = Arc::clone(&shared.refusals).try_acquire_owned() else {
            debug!(%peer, "over the connection limit, too many refusals running: dropped");
            return;
        };
        warn!(%peer, limit = config.max_connections, "over the connection limit: 503");
        let limit = config.handshake_timeout;
        let shutdown = shared.shutdown.clone();
        shared.tracker.spawn(async move {
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let refuse = |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
                let mut r =
                    http::Response::new(Some("gateway connection limit reached".to_owned()));
                *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                Err(r)
            };
            tokio::select! {
                _ = timeout(limit, tokio_tungstenite::accept_hdr_async(stream, refuse)) => {}
                () = shutdown.cancelled() => {}
            }
            drop(permit);
        });
        return;
    }
    let guard = ActiveGuard(Arc::clone(shared));
    let shared = Arc::clone(shared);
    shared.tracker.clone().spawn(async move {
        let _guard = guard;
        let ws_config = shared.config.websocket_config();
        let handshake = timeout(
            shared.config.handshake_timeout,
            tokio_tungstenite::accept_async_with_config(stream, Some(ws_config)),
        );
        let ws = tokio::select! {
            r = handshake => r,
            () = shared.shutdown.cancelled() => return,
        };
        match ws {
            Ok(Ok(ws)) => {
                conn::serve(ws, peer, Arc::clone(&shared)).await;
                shared.counters.served.fetch_add(1, Relaxed);
            }
            Ok(Err(e)) => {
                shared.counters.failed_handshakes.fetch_add(1, Relaxed);
                debug!(%peer, error = %e, "WebSocket handshake failed");
            }
            Err(_) => {
                shared.counters.failed_handshakes.fetch_add(1, Relaxed);
                debug!(%peer, "WebSocket handshake timed out");
            }
        }
    });
}
