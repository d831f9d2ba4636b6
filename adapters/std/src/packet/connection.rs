//! The connection: its shared state, the writer thread, and the
//! commands callers use.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use framewire::packet::{
    ChannelError, Config, Connection, Event, PeerCloseReason, State as ConnState, Stats,
    SubmitError,
};
use framewire::time::{Duration as CoreDuration, Instant as CoreInstant};

use super::client::{PendingCall, Response, Slot};
use super::error::{CallError, CloseError, EndCause};
use super::handler::{Handler, IntoOutcome, Request};
use super::reading::{reader_loop, ReadRole, ReadSide};
use super::Split;

/// Default number of handler threads per connection (the original runs its
/// handlers on a `Later(4)`).
pub const DEFAULT_WORKERS: usize = 4;

/// Default [`Config::max_inflight_inbound`] of a [`Builder`]: peer requests
/// running or waiting for a handler thread. When reached, the connection
/// stops reading until one is answered.
pub const DEFAULT_MAX_INFLIGHT: usize = 64;

/// Default bound on [`PacketConnection::close`]: how long the orderly close
/// may take before the transport is shut down.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default size of the read buffer (one `read` at most), used by whichever
/// thread reads.
pub const DEFAULT_READ_BUFFER: usize = 64 * 1024;

/// The most bytes handed to one `write_all` (copied out of the core's queue
/// first, so the lock is not held during the write).
const MAX_WRITE: usize = 256 * 1024;

/// The staging buffer kept between writes; a larger one is freed once the
/// queue is drained.
const KEPT_WRITE_BUF: usize = 64 * 1024;

/// Configures and starts [`PacketConnection`]s. Cheap to clone (a server
/// starts one connection per client from it).
///
/// ```
/// use framewire_std::packet::{Builder, Config, Request};
/// use std::time::Duration;
///
/// let builder = Builder::new()
///     .handler(|rq: Request| -> Result<Vec<u8>, String> {
///         match rq.rq_type {
///             0 => Ok(rq.payload.to_vec()),
///             other => Err(format!("unknown request type {other}")),
///         }
///     })
///     .workers(8)
///     .call_timeout(Some(Duration::from_secs(5)))
///     .config(Config { max_inflight_inbound: 32, ..Config::default() });
/// # drop(builder);
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    config: Config,
    handler: Option<Arc<dyn Handler>>,
    workers: usize,
    close_timeout: Duration,
    call_timeout: Option<Duration>,
    read_buffer: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            config: Config {
                max_inflight_inbound: DEFAULT_MAX_INFLIGHT,
                ..Config::default()
            },
            handler: None,
            workers: DEFAULT_WORKERS,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            call_timeout: None,
            read_buffer: DEFAULT_READ_BUFFER,
        }
    }
}

impl Builder {
    /// The defaults: no handler (the peer's requests are answered `no
    /// request handler`), [`DEFAULT_WORKERS`], [`DEFAULT_MAX_INFLIGHT`],
    /// [`DEFAULT_CLOSE_TIMEOUT`], calls without a timeout.
    pub fn new() -> Self {
        Builder::default()
    }

    /// The core's limits. [`Config::accept_requests`] is overridden: it is
    /// true exactly when a handler is set. [`Config::max_inflight_inbound`]
    /// bounds the requests running or queued for the workers.
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves the peer's requests with `handler`, on the worker pool.
    #[must_use]
    pub fn handler<F, O>(self, handler: F) -> Self
    where
        F: Fn(Request) -> O + Send + Sync + 'static,
        O: IntoOutcome,
    {
        self.handler_arc(Arc::new(handler))
    }

    /// Serves the peer's requests with a shared [`Handler`] object.
    #[must_use]
    pub fn handler_arc(mut self, handler: Arc<dyn Handler>) -> Self {
        self.handler = Some(handler);
        self
    }

    /// Handler threads (started as needed, at most `n`). Panics if `n` is 0.
    #[must_use]
    pub fn workers(mut self, n: usize) -> Self {
        assert!(n > 0, "a packet connection needs at least one worker");
        self.workers = n;
        self
    }

    /// How long [`PacketConnection::close`] (and dropping the connection)
    /// waits for the orderly close before shutting the transport down.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The timeout of [`PacketConnection::call`] and
    /// [`PacketConnection::submit`] (default none).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The read buffer's size (default [`DEFAULT_READ_BUFFER`]).
    /// Panics if `n` is 0.
    #[must_use]
    pub fn read_buffer(mut self, n: usize) -> Self {
        assert!(n > 0, "the read buffer must hold at least one byte");
        self.read_buffer = n;
        self
    }

    /// Starts a connection over `stream`: spawns its background reader.
    /// Fails if the configuration is invalid
    /// ([`io::ErrorKind::InvalidInput`]) or the stream cannot be split.
    pub fn start<S: Split>(&self, stream: S) -> io::Result<PacketConnection> {
        let mut config = self.config;
        config.accept_requests = self.handler.is_some();
        let conn =
            Connection::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        stream.prepare()?;
        let (read_side, read_timeouts) =
            ReadSide::new(Box::new(stream.try_split()?), self.read_buffer);
        let control = stream.try_split()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(conn, read_side, read_timeouts)),
            progress: Condvar::new(),
            done: Condvar::new(),
            reader_wake: Condvar::new(),
            jobs_ready: Condvar::new(),
            writer_ready: Condvar::new(),
            writer: Mutex::new(Box::new(stream)),
            control: Box::new(move |how| control.shutdown(how)),
            epoch: Instant::now(),
            handler: self.handler.clone(),
            max_workers: self.workers,
            close_timeout: self.close_timeout,
        });
        let reader_shared = Arc::clone(&shared);
        let reader = thread::Builder::new()
            .name("framewire-packet-reader".into())
            .spawn(move || reader_loop(&reader_shared))?;
        Ok(PacketConnection {
            shared,
            reader: Some(reader),
            call_timeout: self.call_timeout,
        })
    }

    /// Connects to a TCP address and starts a connection over it.
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<PacketConnection> {
        self.start(TcpStream::connect(addr)?)
    }
}

/// A blocking cs.packetstream connection. See the [module docs](super).
///
/// Every method takes `&self`: share the connection between threads by
/// reference (scoped threads) or in an `Arc`, and call from all of them at
/// once. Dropping it closes it in an orderly way (bounded by the close
/// timeout) and joins its reader and writer threads.
pub struct PacketConnection {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
    call_timeout: Option<Duration>,
}

impl fmt::Debug for PacketConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketConnection")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl PacketConnection {
    /// A connection over `stream` with the [`Builder`] defaults (no handler).
    pub fn new<S: Split>(stream: S) -> io::Result<Self> {
        Builder::new().start(stream)
    }

    /// Connects to a TCP address with the [`Builder`] defaults.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Builder::new().connect(addr)
    }

    /// A [`Builder`] for a configured connection.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Sends a request on channel 0 and blocks for its response (the
    /// original's `conn(rq_type, payload, flags)`). Uses the builder's call
    /// timeout.
    ///
    /// The calling thread writes the request itself (unless another thread
    /// is writing, which then carries it along) and, unless another thread
    /// is reading, reads the response itself, for the lowest latency (see
    /// the [module docs](super)). The timeout covers waiting for the
    /// response, not a write held up by a peer that does not read.
    pub fn call(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Bytes>,
    ) -> Result<Response, CallError> {
        self.call_with(0, rq_type, flags, payload, self.call_timeout)
    }

    /// Sends a request on `channel` with its own `timeout` and blocks for
    /// its response.
    pub fn call_with(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<Response, CallError> {
        self.shared
            .submit(channel, rq_type, flags, &payload.into(), timeout, true)?
            .wait()
    }

    /// Sends a request on channel 0 and returns at once with a handle on
    /// it (the original's `submit`). Uses the builder's call timeout.
    ///
    /// The request is written by the connection's writer thread, together
    /// with whatever else was queued meanwhile, so a burst of submits goes
    /// out in few writes. Blocks only while the core's limits are reached
    /// (too many requests waiting for responses, or too many bytes not yet
    /// written): a flood of submits waits for the peer instead of growing
    /// memory.
    pub fn submit(
        &self,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Bytes>,
    ) -> Result<PendingCall, CallError> {
        self.submit_with(0, rq_type, flags, payload, self.call_timeout)
    }

    /// [`submit`](Self::submit) on `channel` with its own `timeout`
    /// (counted from now; waiting for room counts too).
    pub fn submit_with(
        &self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Bytes>,
        timeout: Option<Duration>,
    ) -> Result<PendingCall, CallError> {
        self.shared
            .submit(channel, rq_type, flags, &payload.into(), timeout, false)
    }

    /// Opens channel `channel` on this side (a framewire extension; see
    /// [`Connection::open_channel`]).
    pub fn open_channel(&self, channel: u64) -> Result<(), ChannelError> {
        self.shared.lock().conn.open_channel(channel)
    }

    /// Sends ERQ: this side sends no more requests (calls then fail with
    /// [`SubmitError::RequestsEnded`]); the peer's requests are still
    /// served and our calls in flight still answered.
    pub fn end_requests(&self) {
        let mut st = self.shared.lock();
        st.conn.end_requests();
        self.shared.kick_writer(&mut st);
    }

    /// Closes in an orderly way and waits for the end: ERQ, the responses
    /// of requests still running, EOF, then the peer's end of stream. Our
    /// calls in flight may still be answered until the peer's EOF; the
    /// peer's new requests are refused. If this takes longer than the close
    /// timeout the transport is shut down ([`CloseError::TimedOut`]), and
    /// anything outstanding fails with [`CallError::Cancelled`]. Idempotent.
    pub fn close(&self) -> Result<(), CloseError> {
        self.shared.begin_close();
        self.shared.wait_done()
    }

    /// Begins [`close`](Self::close) without waiting.
    pub fn begin_close(&self) {
        self.shared.begin_close();
    }

    /// Blocks until the connection has ended: after the peer closed (this
    /// side then finishes by itself: owed responses, EOF) or a failure. A
    /// server thread calls this to serve a connection until its client
    /// leaves. Bounded by the close timeout once a close has begun.
    pub fn wait(&self) -> Result<(), CloseError> {
        self.shared.wait_done()
    }

    /// Shuts the transport down now, without the orderly close: calls in
    /// flight fail with [`CallError::Cancelled`] (cause
    /// [`EndCause::Aborted`]).
    pub fn abort(&self) {
        let mut st = self.shared.lock();
        self.shared.fail(&mut st, EndCause::Aborted);
    }

    /// Whether the connection has ended (closed or failed).
    pub fn is_finished(&self) -> bool {
        self.shared.lock().finished()
    }

    /// How the peer's stream ended, if it has.
    pub fn end_cause(&self) -> Option<EndCause> {
        self.shared.lock().end
    }

    /// The core's life-cycle state.
    pub fn state(&self) -> ConnState {
        self.shared.lock().conn.state()
    }

    /// Whether the peer sent ERQ (it sends no more requests).
    pub fn peer_ended_requests(&self) -> bool {
        self.shared.lock().conn.peer_ended_requests()
    }

    /// The core's counters.
    pub fn stats(&self) -> Stats {
        *self.shared.lock().conn.stats()
    }

    /// Our requests waiting for a response.
    pub fn pending_calls(&self) -> usize {
        self.shared.lock().conn.pending_outbound()
    }

    /// Peer requests accepted and not yet answered: running in a handler or
    /// queued for one. At most [`Config::max_inflight_inbound`].
    pub fn inflight_requests(&self) -> usize {
        self.shared.lock().conn.inflight_inbound()
    }

    /// Handler threads started and still alive.
    pub fn worker_threads(&self) -> usize {
        self.shared.lock().workers
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for PacketConnection {
    fn drop(&mut self) {
        let _ = self.close();
        let writer = self.shared.lock().writer_thread.take();
        for handle in [self.reader.take(), writer].into_iter().flatten() {
            if handle.thread().id() != thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// What the threads of one connection share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Signalled (when someone waits) after any change others may wait for:
    /// bytes written, requests answered, responses, the end.
    progress: Condvar,
    /// Signalled when the connection finishes or a close begins (for
    /// [`Shared::wait_done`], which needs nothing else).
    done: Condvar,
    /// Wakes idle workers.
    pub(super) jobs_ready: Condvar,
    /// Wakes the background reader: the read role was given back, the
    /// connection is closing or failed, or reading ended.
    pub(super) reader_wake: Condvar,
    /// Wakes the writer thread.
    writer_ready: Condvar,
    /// The write half. Only the holder of `State::writing` locks it.
    writer: Mutex<Box<dyn Write + Send>>,
    /// Shuts the transport down.
    control: Box<dyn Fn(Shutdown) -> io::Result<()> + Send + Sync>,
    /// Time zero of the core's clock.
    epoch: Instant,
    pub(super) handler: Option<Arc<dyn Handler>>,
    pub(super) max_workers: usize,
    close_timeout: Duration,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Shared")
            .field("state", &st.conn.state())
            .field("pending_calls", &st.calls.len())
            .field("queued_requests", &st.jobs.len())
            .field("reading", &st.read.describe())
            .field("end", &st.end)
            .field("finish", &st.finish)
            .finish_non_exhaustive()
    }
}

/// The mutable part, under one lock.
pub(crate) struct State {
    pub(super) conn: Connection,
    /// Our calls waiting, by `(channel, tag)`.
    calls: HashMap<(u64, u64), Arc<Slot>>,
    /// Peer requests waiting for a worker.
    pub(super) jobs: VecDeque<Request>,
    /// Worker threads alive, and of those, waiting for a job.
    pub(super) workers: usize,
    pub(super) idle_workers: usize,
    /// Who reads, and who waits to. See `reading`.
    pub(super) read: ReadRole,
    /// Some thread is writing (holds the write half).
    writing: bool,
    /// The writer's staging buffer, kept between writes.
    write_buf: Vec<u8>,
    writer_thread: Option<JoinHandle<()>>,
    writer_waiting: bool,
    progress_waiters: usize,
    /// How the connection ended, once it has.
    finish: Option<Finish>,
    /// Why the peer's stream ended (the first cause seen).
    pub(super) end: Option<EndCause>,
    pub(super) close_deadline: Option<Instant>,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug)]
enum Finish {
    /// The core reported [`Event::Closed`]: the orderly end.
    Closed,
    /// The transport failed or was shut down: no more I/O.
    Failed(EndCause),
    /// The close timeout passed; the transport was shut down.
    CloseTimedOut,
}

impl State {
    fn new(conn: Connection, read_side: Box<ReadSide>, read_timeouts: bool) -> Self {
        State {
            conn,
            calls: HashMap::new(),
            jobs: VecDeque::new(),
            workers: 0,
            idle_workers: 0,
            read: ReadRole::new(read_side, read_timeouts),
            writing: false,
            write_buf: Vec::new(),
            writer_thread: None,
            writer_waiting: false,
            progress_waiters: 0,
            finish: None,
            end: None,
            close_deadline: None,
        }
    }

    /// Nothing more will happen on this connection.
    pub(super) fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The transport failed or was shut down, and why.
    fn failure(&self) -> Option<EndCause> {
        match self.finish {
            Some(Finish::Failed(cause)) => Some(cause),
            Some(Finish::CloseTimedOut) => Some(EndCause::Aborted),
            Some(Finish::Closed) | None => None,
        }
    }

    pub(super) fn failed(&self) -> bool {
        self.failure().is_some()
    }

    /// The peer's stream has ended (nothing more to read).
    pub(super) fn rx_over(&self) -> bool {
        self.conn.peer_closed().is_some() || self.conn.protocol_error().is_some()
    }
}

fn core_duration(d: Duration) -> CoreDuration {
    CoreDuration::from_micros(u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX))
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The core's clock: microseconds since the connection started.
    pub(super) fn now(&self) -> CoreInstant {
        CoreInstant::from_micros(
            u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX),
        )
    }

    /// A core instant on the std clock (`None` if it is beyond it).
    fn to_std(&self, t: CoreInstant) -> Option<Instant> {
        self.epoch
            .checked_add(Duration::from_micros(t.total_micros()))
    }

    fn notify_progress(&self, st: &State) {
        if st.progress_waiters > 0 {
            self.progress.notify_all();
        }
    }

    pub(super) fn wait_progress<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        until: Option<Instant>,
    ) -> MutexGuard<'a, State> {
        st.progress_waiters += 1;
        st = match until {
            None => self
                .progress
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner),
            Some(t) => {
                let d = t.saturating_duration_since(Instant::now());
                self.progress
                    .wait_timeout(st, d)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        st.progress_waiters -= 1;
        st
    }

    /// Drains the core's events: responses to their callers, requests to the
    /// workers. Returns how many events there were.
    pub(super) fn dispatch(self: &Arc<Self>, st: &mut State) -> usize {
        self.dispatch_for(st, false)
    }

    /// [`dispatch`](Self::dispatch) by a worker holding the read role, which
    /// runs the first new request itself (`own_job`).
    pub(super) fn dispatch_for(self: &Arc<Self>, st: &mut State, own_job: bool) -> usize {
        let mut count = 0;
        let mut new_jobs = false;
        while let Some(event) = st.conn.poll_event() {
            count += 1;
            match event {
                Event::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    flags,
                    payload,
                } => {
                    st.jobs.push_back(Request {
                        channel,
                        tag,
                        rq_type,
                        flags,
                        payload,
                    });
                    new_jobs = true;
                }
                Event::ResponseReceived {
                    channel,
                    tag,
                    ok,
                    flags,
                    payload,
                } => {
                    if let Some(slot) = st.calls.remove(&(channel, tag)) {
                        slot.complete(Ok(Response { ok, flags, payload }));
                    }
                }
                Event::RequestTimedOut { channel, tag } => {
                    if let Some(slot) = st.calls.remove(&(channel, tag)) {
                        slot.complete(Err(CallError::TimedOut));
                    }
                }
                Event::RequestCancelled { channel, tag } => {
                    let cause = st.end.unwrap_or(EndCause::TransportEof);
                    if let Some(slot) = st.calls.remove(&(channel, tag)) {
                        slot.complete(Err(CallError::Cancelled { cause }));
                    }
                }
                Event::PeerClosed { reason } => {
                    st.end.get_or_insert(match reason {
                        PeerCloseReason::EofPacket => EndCause::EofPacket,
                        PeerCloseReason::TransportEof => EndCause::TransportEof,
                    });
                }
                Event::ProtocolError(e) => {
                    st.end.get_or_insert(EndCause::Protocol(e));
                }
                Event::Closed => {
                    st.finish = Some(Finish::Closed);
                    self.done.notify_all();
                    // Our EOF is out and the peer's stream has ended.
                    let _ = (self.control)(Shutdown::Write);
                    self.jobs_ready.notify_all();
                    self.writer_ready.notify_all();
                }
                // ERQ from the peer and unknown responses need nothing here
                // (both are counted in the core's stats).
                _ => {}
            }
        }
        if new_jobs {
            self.start_workers(st, own_job);
        }
        self.notify_progress(st);
        count
    }

    /// Ends all I/O: records `cause`, shuts the transport down (which ends
    /// the reading, and with it every call in flight) and wakes everyone.
    pub(super) fn fail(self: &Arc<Self>, st: &mut State, cause: EndCause) {
        if st.finished() {
            return;
        }
        st.finish = Some(Finish::Failed(cause));
        st.end.get_or_insert(cause);
        st.jobs.clear();
        let _ = (self.control)(Shutdown::Both);
        if st.read.is_done() {
            // The reading ended before (the peer's EOF): the core may still
            // hold input behind output that can now never go out.
            st.conn.handle_transport_lost();
            self.dispatch(st);
            st.jobs.clear();
        }
        self.progress.notify_all();
        self.done.notify_all();
        self.jobs_ready.notify_all();
        self.writer_ready.notify_all();
        self.reader_wake.notify_all();
    }

    /// Writes out everything queued, unless another thread is writing (it
    /// will). The lock is released during each write.
    pub(super) fn write_out<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        if st.writing || st.failed() || st.conn.transmit_len() == 0 {
            return st;
        }
        st.writing = true;
        let mut buf = std::mem::take(&mut st.write_buf);
        loop {
            buf.clear();
            for chunk in st.conn.transmit_chunks() {
                let room = MAX_WRITE - buf.len();
                if room == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            if buf.is_empty() || st.failed() {
                break;
            }
            drop(st);
            let result = {
                let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
                w.write_all(&buf).and_then(|()| w.flush())
            };
            st = self.lock();
            match result {
                Ok(()) => {
                    st.conn.advance_transmit(buf.len());
                    self.dispatch(&mut st);
                }
                Err(e) => {
                    self.fail(&mut st, EndCause::Io(e.kind()));
                    break;
                }
            }
        }
        if buf.capacity() > KEPT_WRITE_BUF {
            buf = Vec::new();
        }
        st.write_buf = buf;
        st.writing = false;
        st
    }

    /// Has queued output written by the writer thread (started on first
    /// need), for threads that must not block on a write.
    pub(super) fn kick_writer(self: &Arc<Self>, st: &mut State) {
        if st.writing || st.failed() || st.conn.transmit_len() == 0 {
            return;
        }
        if st.writer_waiting {
            self.writer_ready.notify_one();
        } else if st.writer_thread.is_none() {
            let shared = Arc::clone(self);
            match thread::Builder::new()
                .name("framewire-packet-writer".into())
                .spawn(move || writer_loop(&shared))
            {
                Ok(handle) => st.writer_thread = Some(handle),
                Err(e) => self.fail(st, EndCause::Io(e.kind())),
            }
        }
        // Otherwise the writer thread is between two checks and will see
        // the new bytes at its next one (under this lock).
    }

    fn submit(
        self: &Arc<Self>,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &Bytes,
        timeout: Option<Duration>,
        write_now: bool,
    ) -> Result<PendingCall, CallError> {
        let give_up = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        loop {
            if let Some(cause) = st.failure() {
                return Err(CallError::Failed { cause });
            }
            let now = self.now();
            let remaining =
                give_up.map(|t| core_duration(t.saturating_duration_since(Instant::now())));
            match st
                .conn
                .submit(channel, rq_type, flags, payload.clone(), now, remaining)
            {
                Ok(tag) => {
                    let slot = Arc::new(Slot::default());
                    st.calls.insert((channel, tag), Arc::clone(&slot));
                    let deadline = remaining.and_then(|d| self.to_std(now + d));
                    if write_now {
                        drop(self.write_out(st));
                    } else {
                        self.kick_writer(&mut st);
                        drop(st);
                    }
                    return Ok(PendingCall::new(
                        Arc::clone(self),
                        slot,
                        channel,
                        tag,
                        deadline,
                    ));
                }
                Err(SubmitError::TransmitFull { .. } | SubmitError::TooManyPending { .. }) => {
                    if give_up.is_some_and(|t| Instant::now() >= t) {
                        return Err(CallError::TimedOut);
                    }
                    if !st.writing && st.conn.transmit_len() > 0 && give_up.is_none() {
                        st = self.write_out(st);
                    } else {
                        // With a timeout, never block in a write (a peer that
                        // does not read would hold it forever): the writer
                        // thread writes while this caller waits for room.
                        self.kick_writer(&mut st);
                        st = self.wait_progress(st, give_up);
                    }
                }
                Err(e) => return Err(CallError::Submit(e)),
            }
        }
    }

    /// A caller's deadline passed: let the core end what is due.
    pub(super) fn handle_timeout(self: &Arc<Self>) {
        let mut st = self.lock();
        let now = self.now();
        st.conn.handle_timeout(now);
        self.dispatch(&mut st);
    }

    /// A caller dropped its handle: forget the call.
    pub(super) fn abandon(&self, channel: u64, tag: u64) {
        let mut st = self.lock();
        if st.calls.remove(&(channel, tag)).is_some() {
            st.conn.abandon(channel, tag);
            self.notify_progress(&st);
        }
    }

    pub(super) fn begin_close(self: &Arc<Self>) {
        let mut st = self.lock();
        if st.finished() {
            return;
        }
        if st.close_deadline.is_none() {
            st.close_deadline = Instant::now().checked_add(self.close_timeout);
        }
        st.conn.close();
        self.dispatch(&mut st);
        self.kick_writer(&mut st);
        // Wake `wait` callers so they observe the deadline, and the
        // background reader: a closing connection reads without its grace.
        self.done.notify_all();
        self.reader_wake.notify_all();
    }

    pub(super) fn wait_done(self: &Arc<Self>) -> Result<(), CloseError> {
        let mut st = self.lock();
        loop {
            match st.finish {
                Some(Finish::Closed) => return Ok(()),
                Some(Finish::Failed(cause)) => return Err(CloseError::Failed { cause }),
                Some(Finish::CloseTimedOut) => {
                    return Err(CloseError::TimedOut {
                        timeout: self.close_timeout,
                    })
                }
                None => {}
            }
            match st.close_deadline {
                Some(d) if Instant::now() >= d => {
                    self.fail(&mut st, EndCause::Aborted);
                    st.finish = Some(Finish::CloseTimedOut);
                }
                None => {
                    st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
                }
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    st = self
                        .done
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

/// The writer thread: writes what reading caused to be queued.
fn writer_loop(shared: &Arc<Shared>) {
    let mut st = shared.lock();
    while !st.finished() {
        if !st.writing && st.conn.transmit_len() > 0 {
            st = shared.write_out(st);
            continue;
        }
        st.writer_waiting = true;
        st = shared
            .writer_ready
            .wait(st)
            .unwrap_or_else(PoisonError::into_inner);
        st.writer_waiting = false;
    }
}
