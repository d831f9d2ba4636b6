//! The connection handle, its builder, and calls.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use framewire::packet::{ChannelError, Config, ConfigError, State, Stats};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::{oneshot, watch, AcquireError, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::coop::Unconstrained;
use tokio::time::Instant;

use super::driver::{Command, Driver, Outcome, SubmitCmd};
use super::error::{CallError, CloseError, EndCause};
use super::handler::{Handler, InPlaceAnswer};
use super::mailbox::Mailbox;

/// Default bound on the handlers of one connection running at once
/// ([`Builder::max_concurrent_handlers`]). Requests beyond it wait in the
/// core (at most [`Config::max_inflight_inbound`], default 256, then the
/// connection stops reading).
pub const DEFAULT_MAX_CONCURRENT_HANDLERS: usize = 64;

/// Default bound on the orderly close ([`Builder::close_timeout`]).
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default size of the driver's read buffer (one read at most).
pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;

/// Configures and starts [`PacketConnection`]s. Cheap to clone.
///
/// ```
/// use framewire::packet::Config;
/// use framewire_tokio::packet::{Builder, Reply, Request};
/// use std::time::Duration;
///
/// let builder = Builder::new()
///     .handler(|rq: Request| async move {
///         match rq.rq_type {
///             0 => Reply::ok(rq.payload),
///             other => Reply::fail(format!("unknown request type {other}")),
///         }
///     })
///     .max_concurrent_handlers(16)
///     .call_timeout(Some(Duration::from_secs(5)))
///     .config(Config { max_pending_outbound: 256, ..Config::default() });
/// # drop(builder);
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(crate) config: Config,
    pub(crate) handler: Option<Arc<dyn Handler>>,
    pub(crate) in_place: Option<Arc<dyn InPlaceAnswer>>,
    pub(crate) max_concurrent_handlers: usize,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    pub(crate) read_buffer: usize,
    /// `None`: decided by the runtime the connection starts on
    /// ([`Builder::inline_handlers`]).
    pub(crate) inline_handlers: Option<bool>,
    /// A limit shared with other connections (the server's).
    pub(crate) shared_handler_limit: Option<Arc<Semaphore>>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("handler", &self.handler.is_some())
            .field("answer_in_place", &self.in_place.is_some())
            .field("max_concurrent_handlers", &self.max_concurrent_handlers)
            .field("call_timeout", &self.call_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("read_buffer", &self.read_buffer)
            .field("inline_handlers", &self.inline_handlers)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: Config::default(),
            handler: None,
            in_place: None,
            max_concurrent_handlers: DEFAULT_MAX_CONCURRENT_HANDLERS,
            call_timeout: None,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            read_buffer: DEFAULT_READ_BUFFER,
            inline_handlers: None,
            shared_handler_limit: None,
        }
    }
}

impl Builder {
    /// The defaults: no handler (the peer's requests are answered `no
    /// request handler`), the core's default [`Config`] (1024 calls waiting
    /// for responses, 256 peer requests in flight, 16 MiB packets),
    /// [`DEFAULT_MAX_CONCURRENT_HANDLERS`], [`DEFAULT_CLOSE_TIMEOUT`], calls
    /// without a timeout, [`DEFAULT_READ_BUFFER`].
    pub fn new() -> Self {
        Builder::default()
    }

    /// The core's limits. [`Config::accept_requests`] is overridden: it is
    /// true exactly when a handler or an in-place answerer is set; so is
    /// [`Config::parse_on_poll`] (the driver parses as it polls).
    /// [`Config::max_pending_outbound`] bounds the calls in flight (more
    /// callers wait for room); [`Config::max_inflight_inbound`] bounds the
    /// peer's requests accepted and not answered.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves the peer's requests with `handler`, each in its own task.
    #[must_use]
    pub fn handler<H: Handler>(self, handler: H) -> Self {
        self.handler_arc(Arc::new(handler))
    }

    /// Serves the peer's requests with a shared handler object.
    #[must_use]
    pub fn handler_arc(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Answers requests in place, before the [`handler`](Self::handler):
    /// `answer` is called inside the connection's driver for each request,
    /// with the request lent (its payload borrowed from the receive
    /// buffer) and an [`Answerer`](framewire::packet::Answerer) that encodes
    /// the response straight into the transmit queue. A request it leaves
    /// unanswered goes to the handler (or, without one, is answered `no
    /// request handler`).
    ///
    /// This is the cheapest way to serve a request: no `Bytes`, no task, no
    /// future, no handler slot, and the request never counts as in flight.
    /// It suits answers computed at once from the request (echo, lookups,
    /// counters); like an inline handler it holds up the connection while
    /// it runs. A panic is caught and answered `exception during handler`
    /// (unless it answered first).
    ///
    /// ```
    /// use framewire_tokio::packet::{Answerer, Builder, LentRequest, Reply, Request};
    ///
    /// let builder = Builder::new()
    ///     // Type 0 is an echo, answered in place ...
    ///     .answer_in_place(|rq: LentRequest<'_>, answer: &mut Answerer<'_>| {
    ///         if rq.rq_type == 0 {
    ///             let _ = answer.respond_or_fail(rq.flags, rq.payload);
    ///         }
    ///     })
    ///     // ... the rest goes to the async handler.
    ///     .handler(|rq: Request| async move { Reply::fail(format!("no type {}", rq.rq_type)) });
    /// # drop(builder);
    /// ```
    #[must_use]
    pub fn answer_in_place<A: InPlaceAnswer>(mut self, answer: A) -> Self {
        self.in_place = Some(Arc::new(answer));
        self
    }

    /// Handlers of this connection running at once (default
    /// [`DEFAULT_MAX_CONCURRENT_HANDLERS`]; at least 1). More requests wait
    /// for a slot, bounded by [`Config::max_inflight_inbound`].
    #[must_use]
    pub fn max_concurrent_handlers(mut self, n: usize) -> Self {
        self.max_concurrent_handlers = n.max(1);
        self
    }

    /// The timeout of [`PacketConnection::call`] and of
    /// [`PacketConnection::request`] unless it sets its own (default none).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long an orderly close may take — from [`PacketConnection::close`],
    /// from the peer's end of stream, or from dropping every owning handle —
    /// before the transport is dropped ([`CloseError::TimedOut`]).
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The driver's read buffer (default [`DEFAULT_READ_BUFFER`]; at least 1).
    #[must_use]
    pub fn read_buffer(mut self, n: usize) -> Self {
        self.read_buffer = n.max(1);
        self
    }

    /// Whether each handler is polled once inside the connection's driver
    /// task before it gets a task of its own.
    ///
    /// **Default: decided by the runtime the connection starts on.** On a
    /// current-thread runtime handlers are polled inline, because a task there
    /// runs on the same thread as the driver anyway: it would only add a
    /// spawn and two wakeups per request. On a multi-threaded runtime every
    /// request gets its own task, so that one connection's handlers can run
    /// in parallel on the runtime's workers. This sets it either way.
    ///
    /// Inline, a handler that answers on its first poll — no `.await` that
    /// has to wait — costs no task spawn, no semaphore wait and no wakeup:
    /// for cheap handlers (echo, lookups, counters) this roughly halves the
    /// server side's cost per request. A handler that does wait is moved into
    /// its own task from where it stopped, as usual. The concurrency bounds
    /// still apply: when no slot is free the request waits for one in its own
    /// task. Panics are caught and answered `exception during handler`, as in
    /// a task.
    ///
    /// The cost: while a handler runs inline, the connection does not read
    /// or write, and on a multi-threaded runtime inline handlers of one
    /// connection run one after another instead of in parallel. Turn it off
    /// for handlers that compute for long before their first `.await`.
    ///
    /// ```
    /// use framewire_tokio::packet::{Builder, Reply, Request};
    ///
    /// // Every request in its own task, whatever the runtime.
    /// let builder = Builder::new()
    ///     .handler(|rq: Request| async move { Reply::ok(rq.payload) })
    ///     .inline_handlers(false);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn inline_handlers(mut self, inline: bool) -> Self {
        self.inline_handlers = Some(inline);
        self
    }

    /// Starts a connection over `io`: spawns its driver task on the current
    /// Tokio runtime. Fails only on an invalid [`Config`].
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn start<S>(&self, io: S) -> Result<PacketConnection, ConfigError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut config = self.config;
        config.accept_requests = self.handler.is_some() || self.in_place.is_some();
        // The driver polls events lent: packets are parsed as it polls.
        config.parse_on_poll = true;
        let conn = framewire::packet::Connection::new(config)?;
        let (status_tx, status_rx) = watch::channel(Status::default());
        let shared = Arc::new(Shared {
            commands: Mailbox::new(),
            call_permits: Arc::new(Semaphore::new(config.max_pending_outbound)),
            next_call: AtomicU64::new(0),
            status: status_rx,
            snapshot: Mutex::new(Snapshot::default()),
            call_timeout: self.call_timeout,
            close_timeout: self.close_timeout,
        });
        let driver = Driver::new(io, conn, status_tx, Arc::clone(&shared), self);
        tokio::spawn(driver.run());
        Ok(PacketConnection {
            shared: Arc::clone(&shared),
            owner: Some(Arc::new(Owner { shared })),
        })
    }

    /// Connects to a TCP address (with `TCP_NODELAY`: the driver coalesces
    /// its own writes) and starts a connection over it.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<PacketConnection> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        self.start(stream)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

/// How the driver finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Orderly: our EOF written and the peer's stream ended.
    Closed,
    /// The transport failed or was aborted.
    Failed(EndCause),
    /// The close timeout passed.
    CloseTimedOut,
}

/// What the driver publishes for waiters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) end: Option<EndCause>,
    pub(crate) finish: Option<Finish>,
}

/// Counters the driver publishes whenever it goes idle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub(crate) stats: Stats,
    pub(crate) pending: usize,
    pub(crate) inflight: usize,
    pub(crate) state: State,
    pub(crate) peer_ended_requests: bool,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            stats: Stats::default(),
            pending: 0,
            inflight: 0,
            state: State::Open,
            peer_ended_requests: false,
        }
    }
}

/// What handles, calls and the driver share.
pub(crate) struct Shared {
    /// Commands to the driver.
    pub(crate) commands: Mailbox<Command>,
    /// One permit per call waiting for its response:
    /// `Config::max_pending_outbound` of them.
    pub(crate) call_permits: Arc<Semaphore>,
    pub(crate) next_call: AtomicU64,
    status: watch::Receiver<Status>,
    pub(crate) snapshot: Mutex<Snapshot>,
    pub(crate) call_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
}

impl Shared {
    fn snapshot(&self) -> Snapshot {
        *self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// The error for a call made on (or outlived by) a finished connection.
    pub(crate) fn ended(&self) -> CallError {
        let status = self.status();
        let cause = match status.finish {
            Some(Finish::Failed(cause)) => cause,
            _ => status.end.unwrap_or(EndCause::Aborted),
        };
        CallError::Failed { cause }
    }

    /// Hands `cmd` to the driver. Once the driver has finished the mailbox
    /// is closed and `cmd` is dropped here, with any reply sender in it: its
    /// receiver then reports the connection's end.
    pub(crate) fn send(&self, cmd: Command) {
        let _ = self.commands.send(cmd);
    }

    async fn wait_finished(&self) -> Result<(), CloseError> {
        let mut status = self.status.clone();
        let finish = match status.wait_for(|s| s.finish.is_some()).await {
            Ok(s) => s.finish,
            // The driver is gone without a word: its task was dropped (the
            // runtime is shutting down).
            Err(_) => Some(Finish::Failed(EndCause::Aborted)),
        };
        match finish {
            Some(Finish::Closed) | None => Ok(()),
            Some(Finish::Failed(cause)) => Err(CloseError::Failed { cause }),
            Some(Finish::CloseTimedOut) => Err(CloseError::TimedOut {
                timeout: self.close_timeout,
            }),
        }
    }
}

/// Begins the orderly close when the last owning handle goes.
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.send(Command::Close);
    }
}

/// One end of an async cs.packetstream connection. See the
/// [module documentation](super).
///
/// A cheap handle: clone it freely, move clones into tasks, call from all of
/// them at once. When the last clone of the handle returned by
/// [`Builder::start`] / [`PacketConnection::connect`] is dropped, the
/// connection closes in an orderly way by itself (ERQ, our calls' responses
/// still accepted, EOF, bounded by the close timeout). The handle a
/// [`Request`](super::Request) carries does not count.
#[derive(Clone)]
pub struct PacketConnection {
    pub(crate) shared: Arc<Shared>,
    owner: Option<Arc<Owner>>,
}

impl fmt::Debug for PacketConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketConnection")
            .field("status", &self.shared.status())
            .field("owning", &self.owner.is_some())
            .finish_non_exhaustive()
    }
}

impl PacketConnection {
    /// A handle that does not keep the connection open (for requests).
    pub(crate) fn non_owning(shared: Arc<Shared>) -> Self {
        PacketConnection {
            shared,
            owner: None,
        }
    }

    /// A connection over `io` with the [`Builder`] defaults (no handler).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn new<S>(io: S) -> Result<Self, ConfigError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Builder::new().start(io)
    }

    /// Connects to a TCP address with the [`Builder`] defaults.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Builder::new().connect(addr).await
    }

    /// A [`Builder`] for a configured connection.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Sends a request and returns a future of its response (the original's
    /// `conn(rq_type, payload, flags)`, on any channel). Uses the builder's
    /// call timeout; see [`request`](Self::request) for per-request options.
    ///
    /// Any number of calls may be in flight on one connection. At most
    /// [`Config::max_pending_outbound`] wait for responses at once: beyond
    /// that a call waits for room (back-pressure, not an error), as it does
    /// while the core's transmit queue is full
    /// ([`Config::max_transmit_buffer`], a peer that does not read). The
    /// timeout covers that wait too.
    ///
    /// The request is sent when the returned [`Call`] is first polled.
    /// Dropping the `Call` before it completes abandons the request: the
    /// core forgets it and ignores its response.
    pub fn call(&self, channel: u64, rq_type: u64, flags: u64, payload: impl Into<Bytes>) -> Call {
        Call::start(
            Arc::clone(&self.shared),
            channel,
            rq_type,
            flags,
            payload.into(),
            self.shared.call_timeout,
        )
    }

    /// A request of `rq_type` carrying `payload`, with options (channel,
    /// flags, timeout) set on the returned [`CallBuilder`]; `.await` it (or
    /// [`send`](CallBuilder::send) it for a [`Call`]).
    ///
    /// ```no_run
    /// # async fn demo(conn: framewire_tokio::packet::PacketConnection) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let response = conn
    ///     .request(3, &b"ping"[..])
    ///     .flags(1)
    ///     .timeout(Duration::from_millis(500))
    ///     .await?;
    /// assert!(response.ok);
    /// # Ok(()) }
    /// ```
    pub fn request(&self, rq_type: u64, payload: impl Into<Bytes>) -> CallBuilder {
        CallBuilder {
            shared: Arc::clone(&self.shared),
            channel: 0,
            rq_type,
            flags: 0,
            payload: payload.into(),
            timeout: self.shared.call_timeout,
        }
    }

    /// Opens channel `channel` on this side (a framewire extension; see
    /// [`Connection::open_channel`](framewire::packet::Connection::open_channel)).
    pub async fn open_channel(&self, channel: u64) -> Result<(), ChannelError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .send(Command::OpenChannel { channel, reply: tx });
        // A finished connection has no channels to open: report success so
        // that the calls that follow fail with the connection's end.
        rx.await.unwrap_or(Ok(()))
    }

    /// Sends ERQ: this side sends no more requests (calls then fail with
    /// [`SubmitError::RequestsEnded`](framewire::packet::SubmitError::RequestsEnded));
    /// the peer's requests are still served and our calls in flight still
    /// answered.
    pub fn end_requests(&self) {
        self.shared.send(Command::EndRequests);
    }

    /// Begins [`close`](Self::close) without waiting.
    pub fn begin_close(&self) {
        self.shared.send(Command::Close);
    }

    /// Closes in an orderly way and waits for the end: ERQ, the responses of
    /// the peer's requests still running, EOF, then the peer's end of stream.
    /// Our calls in flight may still be answered until the peer's EOF; the
    /// peer's new requests are refused. Bounded by the close timeout
    /// ([`CloseError::TimedOut`]; calls still outstanding then fail with
    /// [`CallError::Cancelled`]). Idempotent.
    pub async fn close(&self) -> Result<(), CloseError> {
        self.begin_close();
        self.wait().await
    }

    /// Waits until the connection has ended: after an orderly close (from
    /// either side) `Ok`, else how it failed. A server task awaits this to
    /// serve a connection until its client leaves.
    pub async fn wait(&self) -> Result<(), CloseError> {
        self.shared.wait_finished().await
    }

    /// Drops the transport now, without the orderly close: calls in flight
    /// fail with [`CallError::Cancelled`] (cause [`EndCause::Aborted`]).
    pub fn abort(&self) {
        self.shared.send(Command::Abort);
    }

    /// Whether the connection has ended (closed or failed).
    pub fn is_finished(&self) -> bool {
        self.shared.status().finish.is_some()
    }

    /// How the peer's stream (or the transport) ended, if it has.
    pub fn end_cause(&self) -> Option<EndCause> {
        self.shared.status().end
    }

    /// The core's life-cycle state, as of the driver's last step.
    pub fn state(&self) -> State {
        self.shared.snapshot().state
    }

    /// Whether the peer sent ERQ, as of the driver's last step.
    pub fn peer_ended_requests(&self) -> bool {
        self.shared.snapshot().peer_ended_requests
    }

    /// The core's counters, as of the driver's last step.
    pub fn stats(&self) -> Stats {
        self.shared.snapshot().stats
    }

    /// Our calls sent (or waiting for transmit room) and not yet answered,
    /// as of the driver's last step. Calls waiting for a
    /// [`max_pending_outbound`](Config::max_pending_outbound) slot are not
    /// counted: they have not reached the driver.
    pub fn pending_calls(&self) -> usize {
        self.shared.snapshot().pending
    }

    /// The peer's requests accepted and not yet answered (running in a
    /// handler or waiting for a handler slot), as of the driver's last step.
    pub fn inflight_requests(&self) -> usize {
        self.shared.snapshot().inflight
    }
}

/// The peer's answer to a request: the original's `(ok, flags, payload)`.
///
/// A failure is a response too (`ok == false`, flags 0, a UTF-8 reason as
/// payload, e.g. `exception during handler`), not an error: see
/// [`failure_reason`](Response::failure_reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The response's user flags.
    pub flags: u64,
    /// The response payload.
    pub payload: Bytes,
}

impl Response {
    /// For a failure response, its reason (the payload as UTF-8, invalid
    /// sequences replaced); `None` when `ok`.
    ///
    /// ```
    /// use framewire_tokio::packet::Response;
    /// let r = Response { ok: false, flags: 0, payload: "no request handler".into() };
    /// assert_eq!(r.failure_reason().as_deref(), Some("no request handler"));
    /// ```
    pub fn failure_reason(&self) -> Option<Cow<'_, str>> {
        (!self.ok).then(|| String::from_utf8_lossy(&self.payload))
    }
}

/// A request with options, from [`PacketConnection::request`]. `.await` it,
/// or [`send`](Self::send) it for a [`Call`] to keep.
#[derive(Debug)]
#[must_use = "a request is sent only when awaited (or its Call polled)"]
pub struct CallBuilder {
    shared: Arc<Shared>,
    channel: u64,
    rq_type: u64,
    flags: u64,
    payload: Bytes,
    timeout: Option<Duration>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl CallBuilder {
    /// The channel (default 0).
    pub fn channel(mut self, channel: u64) -> Self {
        self.channel = channel;
        self
    }

    /// The request flags (default 0).
    pub fn flags(mut self, flags: u64) -> Self {
        self.flags = flags;
        self
    }

    /// The timeout, counted from now (default the builder's call timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// No timeout, whatever the builder's call timeout.
    pub fn no_timeout(mut self) -> Self {
        self.timeout = None;
        self
    }

    /// The call, as a future to keep, move or select on.
    pub fn send(self) -> Call {
        Call::start(
            self.shared,
            self.channel,
            self.rq_type,
            self.flags,
            self.payload,
            self.timeout,
        )
    }
}

impl IntoFuture for CallBuilder {
    type Output = Result<Response, CallError>;
    type IntoFuture = Call;

    fn into_future(self) -> Call {
        self.send()
    }
}

/// A request in flight: a future of its response. `'static` and `Send`:
/// spawn it, keep many at once, or `select!` on it.
///
/// Dropping it before it completes abandons the request (the core stops
/// waiting for it and its response is ignored; its slot under
/// [`Config::max_pending_outbound`] is freed).
#[must_use = "a call does nothing unless polled; dropping it abandons the request"]
pub struct Call {
    state: CallState,
}

/// Where a [`Call`] is. A state machine rather than a boxed `async` block:
/// in the common case (a slot free at once) a call costs no allocation of
/// its own, only its response channel and the command to the driver.
enum CallState {
    /// Not polled yet.
    Start(CallArgs),
    /// Waiting for a slot under `max_pending_outbound` (rare: boxed).
    Acquiring(CallArgs, AcquireFuture),
    /// Handed to the driver; waiting for the outcome. Dropping the call in
    /// this state tells the driver to abandon the request (before the slot
    /// is released).
    Waiting {
        shared: Arc<Shared>,
        id: u64,
        /// Outside Tokio's cooperative budget: the outcome arrives once, from
        /// the driver task, so a call cannot keep its caller busy. In the
        /// budget, `join_all` over 1,024 calls answered in one pass polled
        /// each about five times (every call after the 128th of a poll was
        /// told to yield and polled again).
        rx: Unconstrained<oneshot::Receiver<Outcome>>,
        _permit: OwnedSemaphorePermit,
    },
    Done,
}

/// A call's request, before it reaches the driver.
struct CallArgs {
    shared: Arc<Shared>,
    channel: u64,
    rq_type: u64,
    flags: u64,
    payload: Bytes,
    deadline: Option<Instant>,
}

/// Waits for a slot; `None` when the call's deadline passed first, an
/// error when the permits were closed (the driver finished).
type AcquireFuture =
    Pin<Box<dyn Future<Output = Option<Result<OwnedSemaphorePermit, AcquireError>>> + Send>>;

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call").finish_non_exhaustive()
    }
}

impl Future for Call {
    type Output = Result<Response, CallError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                CallState::Start(args) => {
                    match Arc::clone(&args.shared.call_permits).try_acquire_owned() {
                        Ok(permit) => this.submit(permit),
                        // The permits are closed when the driver finishes.
                        Err(TryAcquireError::Closed) => {
                            return Poll::Ready(Err(this.finish_ended()));
                        }
                        Err(TryAcquireError::NoPermits) => {
                            let acquire = Arc::clone(&args.shared.call_permits).acquire_owned();
                            let deadline = args.deadline;
                            let wait: AcquireFuture = Box::pin(async move {
                                match deadline {
                                    Some(d) => tokio::time::timeout_at(d, acquire).await.ok(),
                                    None => Some(acquire.await),
                                }
                            });
                            let CallState::Start(args) =
                                std::mem::replace(&mut this.state, CallState::Done)
                            else {
                                unreachable!("in the start state")
                            };
                            this.state = CallState::Acquiring(args, wait);
                        }
                    }
                }
                CallState::Acquiring(_, wait) => match wait.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        this.state = CallState::Done;
                        return Poll::Ready(Err(CallError::TimedOut));
                    }
                    Poll::Ready(Some(Err(_))) => return Poll::Ready(Err(this.finish_ended())),
                    Poll::Ready(Some(Ok(permit))) => this.submit(permit),
                },
                CallState::Waiting { rx, .. } => {
                    let outcome = match Pin::new(rx).poll(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(outcome) => outcome,
                    };
                    // Answered: nothing to abandon; the slot is released.
                    let CallState::Waiting { shared, .. } =
                        std::mem::replace(&mut this.state, CallState::Done)
                    else {
                        unreachable!("in the waiting state")
                    };
                    return Poll::Ready(outcome.unwrap_or_else(|_| Err(shared.ended())));
                }
                CallState::Done => panic!("Call polled after completion"),
            }
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if let CallState::Waiting { shared, id, .. } = &self.state {
            // Sent before the permit (a field) is released: the driver hears
            // of the abandon before the slot is reused.
            shared.send(Command::Abandon { id: *id });
        }
    }
}

impl Call {
    fn start(
        shared: Arc<Shared>,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: Bytes,
        timeout: Option<Duration>,
    ) -> Call {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        Call {
            state: CallState::Start(CallArgs {
                shared,
                channel,
                rq_type,
                flags,
                payload,
                deadline,
            }),
        }
    }

    /// The connection's end as this call's error; the call is done.
    fn finish_ended(&mut self) -> CallError {
        match std::mem::replace(&mut self.state, CallState::Done) {
            CallState::Start(args) | CallState::Acquiring(args, _) => args.shared.ended(),
            CallState::Waiting { shared, .. } => shared.ended(),
            CallState::Done => unreachable!("a finished call is not polled"),
        }
    }

    /// With a slot: hands the request to the driver (the next state is
    /// `Waiting`, or `Done` with the error stored for the caller).
    fn submit(&mut self, permit: OwnedSemaphorePermit) {
        let (CallState::Start(args) | CallState::Acquiring(args, _)) =
            std::mem::replace(&mut self.state, CallState::Done)
        else {
            unreachable!("submitted once, from the start or acquiring state")
        };
        let CallArgs {
            shared,
            channel,
            rq_type,
            flags,
            payload,
            deadline,
        } = args;
        let id = shared.next_call.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel::<Outcome>();
        let cmd = Command::Submit(SubmitCmd {
            id,
            channel,
            rq_type,
            flags,
            payload,
            deadline,
            reply: tx,
        });
        shared.send(cmd);
        self.state = CallState::Waiting {
            shared,
            id,
            rx: tokio::task::unconstrained(rx),
            _permit: permit,
        };
    }
}
