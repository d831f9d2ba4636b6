//! Serving many packet connections with one async handler.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection::Builder;
use super::handler::Handler;

/// Default [`ServeOptions::max_connections`]: connections served at once;
/// beyond it the server stops accepting and clients wait in the listen
/// backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Default [`ServeOptions::max_handlers`]: handlers running at once over all
/// connections together (each connection also has its own bound,
/// [`Builder::max_concurrent_handlers`]).
pub const DEFAULT_MAX_HANDLERS: usize = 1024;

/// How long the accept loop pauses after an accept error (out of file
/// descriptors, ...) before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Options of [`serve`].
///
/// ```
/// use framewire_tokio::packet::{Builder, ServeOptions};
/// use std::time::Duration;
/// use tokio_util::sync::CancellationToken;
///
/// let stop = CancellationToken::new();
/// let options = ServeOptions::new()
///     .connection(Builder::new().close_timeout(Duration::from_secs(2)))
///     .max_connections(100)
///     .max_handlers(200)
///     .shutdown_token(stop.clone());
/// # drop(options);
/// ```
#[derive(Clone, Debug)]
pub struct ServeOptions {
    builder: Builder,
    max_connections: usize,
    max_handlers: usize,
    token: Option<CancellationToken>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            builder: Builder::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_handlers: DEFAULT_MAX_HANDLERS,
            token: None,
        }
    }
}

impl ServeOptions {
    /// The defaults: [`Builder::new`] per connection,
    /// [`DEFAULT_MAX_CONNECTIONS`], [`DEFAULT_MAX_HANDLERS`], shut down only
    /// through the [`PacketServer`] handle.
    pub fn new() -> Self {
        ServeOptions::default()
    }

    /// How each connection is configured (limits, per-connection handler
    /// bound, close timeout, call timeout for calls back to the client). Its
    /// handler, if any, is replaced by the one given to [`serve`].
    #[must_use]
    pub fn connection(mut self, builder: Builder) -> Self {
        self.builder = builder;
        self
    }

    /// Connections served at once (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Handlers running at once over all connections (at least 1).
    #[must_use]
    pub fn max_handlers(mut self, n: usize) -> Self {
        self.max_handlers = n.max(1);
        self
    }

    /// Shuts the server down gracefully when `token` is cancelled.
    #[must_use]
    pub fn shutdown_token(mut self, token: CancellationToken) -> Self {
        self.token = Some(token);
        self
    }
}

#[derive(Debug, Default)]
struct Counts {
    active: AtomicUsize,
    accepted: AtomicU64,
    served: AtomicU64,
}

/// A running server, from [`serve`]. Dropping it begins the graceful
/// shutdown (without waiting for it); keep it for as long as the server
/// should run.
#[derive(Debug)]
pub struct PacketServer {
    local_addr: SocketAddr,
    token: CancellationToken,
    counts: Arc<Counts>,
    task: Option<JoinHandle<()>>,
}

/// Serves cs.packetstream connections accepted on `listener`, answering
/// every client's requests with `handler`.
///
/// * Every client gets a [`PacketConnection`](super::PacketConnection)
///   started from the options' [`Builder`] with `handler`; each request runs
///   in its own task, at most [`Builder::max_concurrent_handlers`] per
///   connection and [`ServeOptions::max_handlers`] in all. A handler can call
///   its client back through [`Request::connection`](super::Request::connection).
/// * At most [`ServeOptions::max_connections`] connections at once; then the
///   server stops accepting until one ends.
/// * Graceful shutdown — [`PacketServer::shutdown`], the options'
///   cancellation token, [`PacketServer::shutdown_on`] (e.g. `ctrl_c`), or
///   dropping the handle: the server stops accepting, and every connection
///   closes in an orderly way: ERQ at once, the requests in flight answered
///   (new ones are refused with `rejecting request: runstate.cancelled`),
///   EOF, then the client's EOF awaited, bounded by the builder's close
///   timeout.
///
/// Accepted sockets get `TCP_NODELAY` (the driver coalesces its own writes).
///
/// # Panics
///
/// Outside a Tokio runtime.
///
/// ```
/// use framewire_tokio::packet::{serve, PacketConnection, Reply, Request, ServeOptions};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let server = serve(
///     listener,
///     |rq: Request| async move { Reply::ok(rq.payload) },
///     ServeOptions::new(),
/// )?;
/// let client = PacketConnection::connect(server.local_addr()).await?;
/// let response = client.call(0, 0, 0, &b"hi"[..]).await?;
/// assert_eq!(&response.payload[..], b"hi");
/// client.close().await?;
/// server.shutdown().await;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    options: ServeOptions,
) -> io::Result<PacketServer> {
    let local_addr = listener.local_addr()?;
    let mut builder = options.builder.handler(handler);
    builder.shared_handler_limit = Some(Arc::new(Semaphore::new(options.max_handlers)));
    // Check the configuration once, not at every connection.
    let mut config = builder.config;
    config.accept_requests = true;
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let token = options
        .token
        .map_or_else(CancellationToken::new, |t| t.child_token());
    let counts = Arc::new(Counts::default());
    let task = tokio::spawn(accept_loop(
        listener,
        builder,
        Arc::new(Semaphore::new(options.max_connections)),
        token.clone(),
        Arc::clone(&counts),
    ));
    Ok(PacketServer {
        local_addr,
        token,
        counts,
        task: Some(task),
    })
}

async fn accept_loop(
    listener: TcpListener,
    builder: Builder,
    slots: Arc<Semaphore>,
    token: CancellationToken,
    counts: Arc<Counts>,
) {
    let tracker = TaskTracker::new();
    loop {
        let slot = tokio::select! {
            () = token.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = match builder.start(stream) {
            Ok(conn) => conn,
            // The configuration was validated in `serve`.
            Err(e) => {
                tracing::error!(error = %e, "cannot start a connection");
                continue;
            }
        };
        counts.accepted.fetch_add(1, Ordering::Relaxed);
        counts.active.fetch_add(1, Ordering::Relaxed);
        let token = token.clone();
        let counts = Arc::clone(&counts);
        tracker.spawn(async move {
            let result = tokio::select! {
                result = conn.wait() => result,
                () = token.cancelled() => conn.close().await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(conn);
            counts.active.fetch_sub(1, Ordering::Relaxed);
            counts.served.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    // Stop accepting at once; then let every connection finish its close.
    drop(listener);
    tracker.close();
    tracker.wait().await;
}

impl PacketServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections being served now.
    pub fn active_connections(&self) -> usize {
        self.counts.active.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn accepted_connections(&self) -> u64 {
        self.counts.accepted.load(Ordering::Relaxed)
    }

    /// Connections that have ended.
    pub fn served_connections(&self) -> u64 {
        self.counts.served.load(Ordering::Relaxed)
    }

    /// The token that shuts this server down (cancel it from anywhere).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Whether the shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Shuts down gracefully (see [`serve`]) and waits until every
    /// connection has ended.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        self.join().await;
    }

    /// Waits until the server has shut down (through its token), then until
    /// every connection has ended.
    pub async fn wait(mut self) {
        self.token.cancelled().await;
        self.join().await;
    }

    /// Serves until `signal` completes (e.g. `tokio::signal::ctrl_c()`) or
    /// the token is cancelled, then shuts down gracefully and waits.
    pub async fn shutdown_on<F: Future>(self, signal: F) {
        tokio::select! {
            _ = signal => {}
            () = self.token.cancelled() => {}
        }
        self.shutdown().await;
    }

    async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PacketServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
