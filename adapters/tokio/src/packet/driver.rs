//! The driver task: one per connection. It owns the core
//! [`Connection`](framewire::packet::Connection) and the transport, and moves
//! bytes, time and events between them; every protocol decision is the
//! core's.
//!
//! Each wakeup runs the same steps until none makes progress: take commands
//! (calls, abandons, close), collect finished handlers (their replies go to
//! the core), read once if the core has room, fire due timers, dispatch the
//! core's events (responses to their callers, requests to new handler
//! tasks), retry calls that waited for transmit room, and write everything
//! queued with vectored writes. Then it publishes its counters and sleeps.
//!
//! A source that answered `Pending` (the command queue, the handler
//! set, the socket's read side) has registered the task's waker, so it is
//! not polled again in the same wakeup: the steps after it repeat only
//! while the core itself has work (a round trip's wakeup is one pass and
//! one idle check, not two full passes).

use std::collections::{HashMap, VecDeque};
use std::future::{poll_fn, Future};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, IoSlice};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use framewire::packet::{
    reason, BorrowedEvent, ChannelError, Connection, Event, LentResponse, PeerCloseReason, State,
    SubmitError, TagWindow,
};
use framewire::time::{Duration as CoreDuration, Instant as CoreInstant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::batch::BatchRequest;
use super::batches::{Batches, BATCH_COPY_MAX};
use super::connection::{Builder, Finish, PacketConnection, Response, Shared, Snapshot, Status};
use super::error::{CallError, EndCause};
use super::handler::{Handler, InPlaceAnswer, Reply, Request};
use super::tasks::HandlerTasks;

/// What a call's future receives.
pub(crate) type Outcome = Result<Response, CallError>;

/// The most slices handed to one vectored write.
const MAX_SLICES: usize = 64;

/// A multiplicative hasher for the driver's maps. Their keys are chosen on
/// this side — call ids, our own `(channel, tag)`s, task ids — never by the
/// peer, so there is nothing to flood; SipHash was a visible share of the
/// per-call cost.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A handler's slots: this connection's, and the server's if shared.
type HandlerPermits = (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>);

/// Commands from handles and calls to the driver.
pub(crate) enum Command {
    Submit(SubmitCmd),
    /// The call's future was dropped.
    Abandon {
        id: u64,
    },
    /// Many requests, answered together.
    Batch(BatchCmd),
    /// The batch's future was dropped.
    AbandonBatch {
        id: u64,
    },
    EndRequests,
    Close,
    Abort,
    OpenChannel {
        channel: u64,
        reply: oneshot::Sender<Result<(), ChannelError>>,
    },
}

pub(crate) struct SubmitCmd {
    pub(crate) id: u64,
    pub(crate) channel: u64,
    pub(crate) rq_type: u64,
    pub(crate) flags: u64,
    pub(crate) payload: Bytes,
    pub(crate) deadline: Option<Instant>,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

/// A batch of requests from [`PacketConnection::call_batch`].
pub(crate) struct BatchCmd {
    pub(crate) id: u64,
    pub(crate) requests: Vec<BatchRequest>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) reply: oneshot::Sender<Vec<Outcome>>,
}

/// Which call waits for each of our requests in the core, by
/// `(channel, tag)`: a [`TagWindow`] of call ids per channel (our tags count
/// up on each), so O(1) without hashing. (Batch requests are found by
/// [`Batches::find`].)
struct Waiters {
    channels: Vec<(u64, TagWindow<u64>)>,
    /// The window length of each channel's map.
    window: usize,
}

impl Waiters {
    fn new(max_pending: usize) -> Self {
        Waiters {
            channels: Vec::new(),
            window: max_pending.saturating_mul(2).clamp(16, 1 << 16),
        }
    }

    fn channel(&mut self, channel: u64) -> Option<&mut TagWindow<u64>> {
        self.channels
            .iter_mut()
            .find(|(c, _)| *c == channel)
            .map(|(_, w)| w)
    }

    fn insert(&mut self, (channel, tag): (u64, u64), call: u64) {
        if let Some(w) = self.channel(channel) {
            w.insert(tag, call);
            return;
        }
        let mut w = TagWindow::new(self.window);
        w.insert(tag, call);
        self.channels.push((channel, w));
    }

    fn remove(&mut self, (channel, tag): (u64, u64)) -> Option<u64> {
        self.channel(channel)?.remove(tag)
    }

    fn clear(&mut self) {
        self.channels.clear();
    }
}

/// Requests waiting for room in the core, in order.
enum Deferred {
    Call(SubmitCmd),
    /// The rest of a batch (kept in its `BatchState`), with its deadline.
    Batch(u64, Option<Instant>),
}

impl Deferred {
    fn deadline(&self) -> Option<Instant> {
        match self {
            Deferred::Call(s) => s.deadline,
            Deferred::Batch(_, d) => *d,
        }
    }
}

pub(crate) struct Driver<S> {
    io: S,
    conn: Connection,
    /// Commands taken from `shared.commands` and not handled yet.
    cmds: VecDeque<Command>,
    status: watch::Sender<Status>,
    shared: Arc<Shared>,
    /// Time zero of the core's clock.
    epoch: Instant,

    /// Bytes read and not yet taken by the core: `read_buf[read_lo..read_hi]`.
    read_buf: Box<[u8]>,
    read_lo: usize,
    read_hi: usize,
    /// The transport reported its end (or failed): read no more.
    transport_eof: bool,

    /// Our calls in the core, by call id, and who waits for each
    /// `(channel, tag)`.
    calls: IdMap<u64, ((u64, u64), oneshot::Sender<Outcome>)>,
    ids: Waiters,
    /// Batches not fully answered, by id.
    batches: Batches,
    /// Calls and batches waiting for room in the core, in order.
    deferred: VecDeque<Deferred>,

    handler: Option<Arc<dyn Handler>>,
    in_place: Option<Arc<dyn InPlaceAnswer>>,
    handlers: HandlerTasks,
    /// Poll each handler once in the driver before spawning it.
    inline_handlers: bool,
    /// Handler slots held across the inline handlers of one dispatch (so
    /// each does not take and release them), released when it ends.
    inline_permits: Option<HandlerPermits>,
    conn_limit: Arc<Semaphore>,
    shared_limit: Option<Arc<Semaphore>>,

    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    close_timeout: Duration,
    close_timer: Pin<Box<Sleep>>,
    /// When the close began to be timed.
    close_started: Option<Instant>,

    /// Written bytes not yet flushed.
    unflushed: bool,
    /// `Instant::now()` taken once per step, for the calls submitted in it.
    now: Option<Instant>,
    /// The sources that answered `Pending` in this wakeup.
    idle: Idle,
    phase: Phase,
}

impl<S> Drop for Driver<S> {
    /// Finished or dropped with its task (the runtime shutting down): the
    /// handles' commands fail from now on, and those still queued are
    /// dropped, so their callers see the end.
    fn drop(&mut self) {
        self.shared.commands.close();
    }
}

/// Which of the driver's wakers are registered in the current wakeup: a
/// source that answered `Pending` wakes the task when it has something,
/// so polling it again before the wakeup ends would only repeat the check
/// (a lock or atomics each time).
#[derive(Clone, Copy, Default)]
struct Idle {
    /// The command queue.
    commands: bool,
    /// The handler tasks (cleared when one is spawned).
    handlers: bool,
    /// The transport's read side.
    read: bool,
}

/// Where the driver is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// The core reported `Event::Closed`: shut the write side, then finish.
    ShuttingDown,
    Finished,
}

/// Runs the in-place answerer; a panic is answered `exception during
/// handler` unless it answered first.
fn answer_caught(
    answerer: &dyn InPlaceAnswer,
    request: framewire::packet::LentRequest<'_>,
    answer: &mut framewire::packet::Answerer<'_>,
) {
    let caught = catch_unwind(AssertUnwindSafe(|| answerer.answer(request, answer)));
    if caught.is_err() {
        tracing::warn!("in-place answerer panicked");
        if !answer.answered() {
            let _ = answer.reject(reason::EXCEPTION_DURING_HANDLER);
        }
    }
}

/// Hands a handler's reply to the core.
fn send_reply(conn: &mut Connection, channel: u64, tag: u64, reply: Reply) {
    // A reply the core cannot send (flags too large, packet too long) is
    // answered by the core as a failed handler instead.
    let answered = match reply {
        Reply::Respond { flags, payload } => conn.respond_or_fail(channel, tag, flags, payload),
        Reply::Fail { reason } => conn.reject_or_fail(channel, tag, &reason),
    };
    if let Ok(Some(e)) = answered {
        tracing::debug!(channel, tag, error = %e, "unsendable reply");
    }
}

/// A time no timer will reach (for deadlines beyond Tokio's clock).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

fn core_duration(d: Duration) -> CoreDuration {
    CoreDuration::from_micros(u64::try_from(d.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX))
}

/// Whether the driver starts on a current-thread runtime, where handlers run
/// inline by default (see [`Builder::inline_handlers`]).
fn on_current_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> Driver<S> {
    pub(crate) fn new(
        io: S,
        conn: Connection,
        status: watch::Sender<Status>,
        shared: Arc<Shared>,
        builder: &Builder,
    ) -> Self {
        let now = Instant::now();
        let max_pending = conn.config().max_pending_outbound;
        Driver {
            io,
            conn,
            cmds: VecDeque::new(),
            status,
            shared,
            epoch: now,
            read_buf: vec![0u8; builder.read_buffer].into_boxed_slice(),
            read_lo: 0,
            read_hi: 0,
            transport_eof: false,
            calls: IdMap::default(),
            ids: Waiters::new(max_pending),
            batches: Batches::default(),
            deferred: VecDeque::new(),
            handler: builder.handler.clone(),
            in_place: builder.in_place.clone(),
            handlers: HandlerTasks::new(),
            inline_handlers: builder
                .inline_handlers
                .unwrap_or_else(on_current_thread_runtime),
            inline_permits: None,
            conn_limit: Arc::new(Semaphore::new(builder.max_concurrent_handlers)),
            shared_limit: builder.shared_handler_limit.clone(),
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
            close_timeout: builder.close_timeout,
            close_timer: Box::pin(tokio::time::sleep_until(now)),
            close_started: None,
            unflushed: false,
            now: None,
            idle: Idle::default(),
            phase: Phase::Running,
        }
    }

    pub(crate) async fn run(mut self) {
        poll_fn(|cx| self.poll_drive(cx)).await;
        self.publish();
    }

    /// The core's clock: microseconds since the connection started.
    fn core_now(&self, now: Instant) -> CoreInstant {
        CoreInstant::from_micros(
            u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
                .unwrap_or(u64::MAX),
        )
    }

    /// A core instant on Tokio's clock.
    fn tokio_instant(&self, t: CoreInstant) -> Instant {
        self.epoch
            .checked_add(Duration::from_micros(t.total_micros()))
            .unwrap_or_else(far_future)
    }

    /// The time of this step (one clock read for all the calls in it).
    fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.idle = Idle::default();
        loop {
            self.now = None;
            let mut progress = self.poll_commands(cx);
            progress |= self.poll_handlers(cx);
            progress |= self.poll_input(cx);
            progress |= self.poll_timers(cx);
            progress |= self.dispatch(cx);
            // Inline handlers may have taken a while.
            self.now = None;
            progress |= self.retry_deferred();
            match self.poll_output(cx) {
                Ok(p) => progress |= p,
                Err(e) => self.transport_lost(cx, EndCause::Io(e.kind())),
            }
            if self.phase == Phase::ShuttingDown {
                progress |= self.poll_finish_close(cx);
            }
            if self.phase == Phase::Finished {
                return Poll::Ready(());
            }
            if self.close_started.is_none() && self.conn.state() != State::Open {
                self.arm_close_timer();
                progress = true;
            }
            if !progress {
                self.publish();
                return Poll::Pending;
            }
        }
    }

    // ----- commands -----

    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.commands {
            return false;
        }
        if self.cmds.is_empty()
            && self
                .shared
                .commands
                .poll_take(cx, &mut self.cmds)
                .is_pending()
        {
            self.idle.commands = true;
            return false;
        }
        // A bounded batch, so that reading and writing are not starved; the
        // rest waits in `cmds` for the next pass.
        for _ in 0..256 {
            let Some(cmd) = self.cmds.pop_front() else {
                break;
            };
            self.command(cmd);
            if self.phase == Phase::Finished {
                break;
            }
        }
        true
    }

    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit(s) => {
                if self.deferred.is_empty() {
                    self.submit(s);
                } else {
                    self.deferred.push_back(Deferred::Call(s));
                }
            }
            Command::Abandon { id } => {
                if let Some((key, _)) = self.calls.remove(&id) {
                    self.ids.remove(key);
                    self.conn.abandon(key.0, key.1);
                } else {
                    self.deferred
                        .retain(|d| !matches!(d, Deferred::Call(s) if s.id == id));
                }
            }
            Command::Batch(b) => self.start_batch(b),
            Command::AbandonBatch { id } => self.abandon_batch(id),
            Command::EndRequests => self.conn.end_requests(),
            Command::Close => {
                self.conn.close();
                self.arm_close_timer();
            }
            Command::Abort => self.fail(EndCause::Aborted),
            Command::OpenChannel { channel, reply } => {
                let _ = reply.send(self.conn.open_channel(channel));
            }
        }
    }

    /// Hands a call to the core. Returns it if the core has no room yet.
    fn try_submit(&mut self, s: SubmitCmd) -> Option<SubmitCmd> {
        if s.reply.is_closed() {
            // The caller is gone already (its abandon follows or came).
            return None;
        }
        let now = self.now();
        let timeout = match s.deadline {
            Some(d) if d <= now => {
                let _ = s.reply.send(Err(CallError::TimedOut));
                return None;
            }
            Some(d) => Some(core_duration(d - now)),
            None => None,
        };
        let core_now = self.core_now(now);
        match self.conn.submit(
            s.channel,
            s.rq_type,
            s.flags,
            s.payload.clone(),
            core_now,
            timeout,
        ) {
            Ok(tag) => {
                let key = (s.channel, tag);
                self.ids.insert(key, s.id);
                self.calls.insert(s.id, (key, s.reply));
                None
            }
            // Back-pressure: wait for the peer to read (or for a slot,
            // which the call permits make rare).
            Err(SubmitError::TransmitFull { .. } | SubmitError::TooManyPending { .. }) => Some(s),
            Err(e) => {
                let _ = s.reply.send(Err(CallError::Submit(e)));
                None
            }
        }
    }

    fn submit(&mut self, s: SubmitCmd) {
        if let Some(s) = self.try_submit(s) {
            self.deferred.push_back(Deferred::Call(s));
        }
    }

    fn retry_deferred(&mut self) -> bool {
        let mut progress = false;
        while let Some(d) = self.deferred.pop_front() {
            let blocked = match d {
                Deferred::Call(s) => self.try_submit(s).map(Deferred::Call),
                Deferred::Batch(id, deadline) => {
                    // Progress if any of its requests went in.
                    let before = self.batches.get(id).map(|b| b.next);
                    let blocked = !self.submit_batch(id);
                    progress |= self.batches.get(id).map(|b| b.next) != before;
                    blocked.then_some(Deferred::Batch(id, deadline))
                }
            };
            if let Some(d) = blocked {
                self.deferred.push_front(d);
                break;
            }
            progress = true;
        }
        progress
    }

    // ----- batches -----

    fn start_batch(&mut self, b: BatchCmd) {
        if b.requests.is_empty() || b.reply.is_closed() {
            let _ = b.reply.send(Vec::new());
            return;
        }
        self.batches.start(b.id, b.requests, b.deadline, b.reply);
        if !self.deferred.is_empty() || !self.submit_batch(b.id) {
            self.deferred.push_back(Deferred::Batch(b.id, b.deadline));
        }
    }

    /// Hands the batch's unsent requests to the core until it has no room.
    /// Returns whether none is left to send.
    fn submit_batch(&mut self, id: u64) -> bool {
        let now = self.now();
        let core_now = self.core_now(now);
        let Some(batch) = self.batches.get(id) else {
            return true;
        };
        let timeout = match batch.deadline {
            Some(d) if d <= now => {
                // Past its deadline before it could be sent: every unsent
                // request times out.
                self.batches.fail_unsent(id, CallError::TimedOut);
                return true;
            }
            Some(d) => Some(core_duration(d - now)),
            None => None,
        };
        let conn = &mut self.conn;
        self.batches.send_with(id, |rq| {
            conn.submit(
                rq.channel,
                rq.rq_type,
                rq.flags,
                rq.payload.clone(),
                core_now,
                timeout,
            )
        })
    }

    /// The batch's future was dropped: its requests in the core are
    /// abandoned, the unsent ones forgotten.
    fn abandon_batch(&mut self, id: u64) {
        self.deferred
            .retain(|d| !matches!(d, Deferred::Batch(bid, _) if *bid == id));
        let conn = &mut self.conn;
        self.batches.abandon(id, |channel, tag| {
            conn.abandon(channel, tag);
        });
    }

    // ----- handlers -----

    fn spawn_handler(
        &mut self,
        cx: &mut Context<'_>,
        channel: u64,
        tag: u64,
        rq_type: u64,
        flags: u64,
        payload: Bytes,
    ) {
        // Taken out for the inline call (no reference count traffic), put
        // back below.
        let Some(handler) = self.handler.take() else {
            // accept_requests is false without a handler, so the core
            // answers such requests itself; this is unreachable in practice.
            let _ = self.conn.reject(channel, tag, reason::NO_REQUEST_HANDLER);
            return;
        };
        let request = Request {
            channel,
            tag,
            rq_type,
            flags,
            payload,
            connection: PacketConnection::non_owning(Arc::clone(&self.shared)),
        };
        // Slots free now are taken here, with no future (an inline dispatch
        // may still hold them from its previous handler); otherwise the
        // task waits for them.
        let permits = self
            .inline_permits
            .take()
            .or_else(|| self.try_handler_permits());
        if let Some(permits) = permits {
            if self.inline_handlers {
                self.run_inline(cx, &*handler, request, permits);
                self.handler = Some(handler);
                return;
            }
            self.handler = Some(Arc::clone(&handler));
            self.spawn_task((channel, tag), async move {
                let _permits = permits;
                handler.handle(request).await
            });
            return;
        }
        self.handler = Some(Arc::clone(&handler));
        let conn_limit = Arc::clone(&self.conn_limit);
        let shared_limit = self.shared_limit.clone();
        self.spawn_task((channel, tag), async move {
            // The semaphores are never closed.
            let _local = conn_limit.acquire_owned().await.ok();
            let _global = match shared_limit {
                Some(s) => s.acquire_owned().await.ok(),
                None => None,
            };
            handler.handle(request).await
        });
    }

    /// Runs a handler for request `key` in its own task, whose reply
    /// `poll_handlers` collects (so the handler set is polled again in this
    /// wakeup).
    fn spawn_task(&mut self, key: (u64, u64), task: impl Future<Output = Reply> + Send + 'static) {
        self.idle.handlers = false;
        self.handlers.spawn(key, task);
    }

    /// Handler slots (this connection's and the shared one), if free now.
    fn try_handler_permits(&self) -> Option<HandlerPermits> {
        let local = Arc::clone(&self.conn_limit).try_acquire_owned().ok()?;
        let global = match &self.shared_limit {
            Some(s) => Some(Arc::clone(s).try_acquire_owned().ok()?),
            None => None,
        };
        Some((local, global))
    }

    /// Polls a handler once here; if it has to wait, it goes on in its own
    /// task (with its slots).
    fn run_inline(
        &mut self,
        cx: &mut Context<'_>,
        handler: &dyn Handler,
        request: Request,
        permits: HandlerPermits,
    ) {
        let (channel, tag) = (request.channel, request.tag);
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let mut fut = handler.handle(request);
            match fut.as_mut().poll(cx) {
                Poll::Ready(reply) => Ok(reply),
                Poll::Pending => Err(fut),
            }
        }));
        match polled {
            Ok(Ok(reply)) => {
                // The slots are kept for the next inline handler of this
                // step (released at its end).
                self.inline_permits = Some(permits);
                send_reply(&mut self.conn, channel, tag, reply);
            }
            Ok(Err(fut)) => {
                self.spawn_task((channel, tag), async move {
                    let _permits = permits;
                    fut.await
                });
            }
            Err(_) => {
                tracing::warn!("request handler panicked");
                self.inline_permits = Some(permits);
                send_reply(&mut self.conn, channel, tag, Reply::exception());
            }
        }
    }

    fn poll_handlers(&mut self, cx: &mut Context<'_>) -> bool {
        if self.idle.handlers {
            return false;
        }
        let conn = &mut self.conn;
        let polled = self.handlers.poll_finished(cx, |(channel, tag), reply| {
            send_reply(conn, channel, tag, reply);
        });
        // Pending: the waker is registered; ready: the replies were all
        // taken, and a task finishing from now on wakes the driver.
        self.idle.handlers = polled.is_pending();
        polled.is_ready()
    }

    // ----- input -----

    /// Offers buffered bytes to the core and reads once more if it took them
    /// all (offering what was read at once, so the same pass dispatches
    /// it). Returns whether anything happened.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> bool {
        let progress = self.offer_input();
        if self.read_lo < self.read_hi {
            // The core is full (backpressure): read no more for now.
            return progress;
        }
        if self.idle.read || self.transport_eof || self.rx_over() {
            return progress;
        }
        self.read_lo = 0;
        self.read_hi = 0;
        let mut buf = ReadBuf::new(&mut self.read_buf);
        match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len();
                if n == 0 {
                    self.transport_eof = true;
                    self.conn.handle_eof();
                } else {
                    self.read_hi = n;
                    self.offer_input();
                }
                true
            }
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => true,
            Poll::Ready(Err(e)) => {
                self.transport_eof = true;
                self.transport_lost(cx, EndCause::Io(e.kind()));
                true
            }
            Poll::Pending => {
                self.idle.read = true;
                progress
            }
        }
    }

    /// Offers the buffered bytes to the core; returns whether it took any.
    fn offer_input(&mut self) -> bool {
        if self.read_lo == self.read_hi {
            return false;
        }
        if let Ok(n) = self
            .conn
            .handle_input(&self.read_buf[self.read_lo..self.read_hi])
        {
            self.read_lo += n;
            n > 0
        } else {
            // The receive side ended with a protocol error: the rest is of
            // no use.
            self.read_lo = self.read_hi;
            false
        }
    }

    /// The peer's stream has ended in the core (EOF packet, transport end or
    /// protocol error): nothing more to read.
    fn rx_over(&self) -> bool {
        self.conn.peer_closed().is_some() || self.conn.protocol_error().is_some()
    }

    // ----- timers -----

    fn arm_close_timer(&mut self) {
        if self.close_started.is_none() {
            self.close_started = Some(Instant::now());
            let deadline = Instant::now()
                .checked_add(self.close_timeout)
                .unwrap_or_else(far_future);
            self.close_timer.as_mut().reset(deadline);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let core = self.conn.poll_timeout().map(|t| self.tokio_instant(t));
        let deferred = self.deferred.iter().filter_map(Deferred::deadline).min();
        match (core, deferred) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_timers(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let next = self.next_deadline();
        if next != self.timer_at {
            if let Some(t) = next {
                self.timer.as_mut().reset(t);
            }
            self.timer_at = next;
        }
        if self.timer_at.is_some() && self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            self.conn.handle_timeout(self.core_now(now));
            // Calls that waited for transmit room past their deadline.
            let (expired, waiting): (VecDeque<_>, VecDeque<_>) = self
                .deferred
                .drain(..)
                .partition(|s| s.deadline().is_some_and(|d| d <= now));
            self.deferred = waiting;
            for s in expired {
                match s {
                    Deferred::Call(s) => {
                        let _ = s.reply.send(Err(CallError::TimedOut));
                    }
                    Deferred::Batch(id, _) => self.batches.fail_unsent(id, CallError::TimedOut),
                }
            }
            self.timer_at = None;
            progress = true;
        }
        if self.close_started.is_some() && self.close_timer.as_mut().poll(cx).is_ready() {
            self.fail_with(EndCause::Aborted, Finish::CloseTimedOut);
            progress = true;
        }
        progress
    }

    // ----- events -----

    /// Gives our request `(channel, tag)`'s caller its outcome.
    fn complete(&mut self, (channel, tag): (u64, u64), outcome: Outcome) {
        if let Some(request) = self.batches.find(channel, tag) {
            self.batches.complete(request, |_| outcome);
        } else if let Some(id) = self.ids.remove((channel, tag)) {
            self.complete_call(id, outcome);
        }
    }

    /// Sends call `id` its outcome.
    fn complete_call(&mut self, id: u64, outcome: Outcome) {
        if let Some((_, reply)) = self.calls.remove(&id) {
            let _ = reply.send(outcome);
        }
    }

    fn set_end(&mut self, cause: EndCause) {
        self.status.send_if_modified(|s| {
            if s.end.is_none() {
                s.end = Some(cause);
                true
            } else {
                false
            }
        });
    }

    fn end(&self) -> Option<EndCause> {
        self.status.borrow().end
    }

    fn dispatch(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let in_place = &self.in_place;
            let batches = &mut self.batches;
            let mut received = false;
            // A batch's short responses are copied into its buffer in the
            // core's loop (no event, no `Bytes`); the rest come back as
            // events.
            let receive = |r: LentResponse<'_>| {
                if r.payload.len() > BATCH_COPY_MAX {
                    return false;
                }
                let Some(request) = batches.find(r.channel, r.tag) else {
                    return false;
                };
                batches.complete_copied(request, r.ok, r.flags, r.payload);
                received = true;
                true
            };
            let event = match in_place {
                Some(answerer) => self.conn.poll_lent_handling(
                    |rq, answer| {
                        progress = true;
                        answer_caught(&**answerer, rq, answer);
                    },
                    receive,
                ),
                None => self.conn.poll_lent_handling(|_, _| {}, receive),
            };
            progress |= received;
            let Some(event) = event else {
                break;
            };
            progress = true;
            match event {
                BorrowedEvent::ResponseReceived {
                    channel,
                    tag,
                    ok,
                    flags,
                    ..
                } => {
                    // A batch's long one (found by its runs, without an
                    // entry per request), taken without copying; else a
                    // call's.
                    if let Some(request) = self.batches.find(channel, tag) {
                        let payload = self.conn.take_lent_payload();
                        self.batches
                            .complete(request, |_| Ok(Response { ok, flags, payload }));
                    } else if let Some(id) = self.ids.remove((channel, tag)) {
                        let payload = self.conn.take_lent_payload();
                        self.complete_call(id, Ok(Response { ok, flags, payload }));
                    }
                }
                BorrowedEvent::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    flags,
                    ..
                } => {
                    let payload = self.conn.take_lent_payload();
                    self.spawn_handler(cx, channel, tag, rq_type, flags, payload);
                }
                other => {
                    // No payload: the owned event costs no copy.
                    let event = other.to_event();
                    self.other_event(&event);
                }
            }
        }
        // Free the slots the inline handlers held for the others.
        self.inline_permits = None;
        // Calls still waiting for transmit room can never be sent now.
        if !self.deferred.is_empty() && self.rx_over() {
            let cause = self.end().unwrap_or(EndCause::TransportEof);
            self.cancel_deferred(CallError::Cancelled { cause });
        }
        progress
    }

    /// An event without a payload.
    fn other_event(&mut self, event: &Event) {
        match *event {
            Event::RequestTimedOut { channel, tag } => {
                self.complete((channel, tag), Err(CallError::TimedOut));
            }
            Event::RequestCancelled { channel, tag } => {
                let cause = self.end().unwrap_or(EndCause::TransportEof);
                self.complete((channel, tag), Err(CallError::Cancelled { cause }));
            }
            Event::PeerClosed { reason } => self.set_end(match reason {
                PeerCloseReason::EofPacket => EndCause::EofPacket,
                PeerCloseReason::TransportEof => EndCause::TransportEof,
            }),
            Event::ProtocolError(e) => {
                tracing::debug!(error = %e, "peer protocol error");
                self.set_end(EndCause::Protocol(e));
            }
            Event::Closed if self.phase == Phase::Running => {
                self.phase = Phase::ShuttingDown;
            }
            // ERQ and unknown responses need nothing here (the core counts
            // both); requests and responses are handled by `dispatch`.
            _ => {}
        }
    }

    /// Ends every call and batch request still waiting for room with `error`.
    fn cancel_deferred(&mut self, error: CallError) {
        for d in std::mem::take(&mut self.deferred) {
            match d {
                Deferred::Call(s) => {
                    let _ = s.reply.send(Err(error));
                }
                Deferred::Batch(id, _) => self.batches.fail_unsent(id, error),
            }
        }
    }

    // ----- output -----

    /// Writes everything queued, as few vectored writes as the transport
    /// allows; flushes once the queue is empty.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut progress = false;
        while self.conn.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            for chunk in self.conn.transmit_chunks().take(MAX_SLICES) {
                slices[n] = IoSlice::new(chunk);
                n += 1;
            }
            match Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "transport accepted no bytes",
                    ))
                }
                Poll::Ready(Ok(written)) => {
                    self.conn.advance_transmit(written);
                    self.unflushed = true;
                    progress = true;
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(progress),
            }
        }
        if self.unflushed {
            match Pin::new(&mut self.io).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(progress)
    }

    /// After `Event::Closed`: shut the write side down, then finish.
    fn poll_finish_close(&mut self, cx: &mut Context<'_>) -> bool {
        match Pin::new(&mut self.io).poll_shutdown(cx) {
            // A failed shutdown changes nothing: everything was delivered.
            Poll::Ready(_) => {
                self.finish(Finish::Closed);
                true
            }
            Poll::Pending => false,
        }
    }

    // ----- the end -----

    /// The transport failed (reset, broken pipe): nothing queued will go
    /// out and nothing more will come. The core handles what it still
    /// holds without waiting for transmit room (responses stalled behind
    /// its own refusals reach their callers), then everything left fails.
    fn transport_lost(&mut self, cx: &mut Context<'_>, cause: EndCause) {
        self.set_end(cause);
        self.conn.handle_transport_lost();
        self.dispatch(cx);
        self.fail(cause);
    }

    fn fail(&mut self, cause: EndCause) {
        self.fail_with(cause, Finish::Failed(cause));
    }

    fn fail_with(&mut self, cause: EndCause, finish: Finish) {
        if self.phase == Phase::Finished {
            return;
        }
        self.set_end(cause);
        let cause = self.end().unwrap_or(cause);
        for (_, (_, reply)) in self.calls.drain() {
            let _ = reply.send(Err(CallError::Cancelled { cause }));
        }
        self.cancel_deferred(CallError::Cancelled { cause });
        self.batches.fail_all(CallError::Cancelled { cause });
        self.ids.clear();
        self.handlers.abort_all();
        self.finish(finish);
    }

    fn finish(&mut self, finish: Finish) {
        self.phase = Phase::Finished;
        // Calls that have not reached the driver fail at once.
        self.shared.call_permits.close();
        let cause = self.status.borrow().end.unwrap_or(EndCause::TransportEof);
        for (_, (_, reply)) in self.calls.drain() {
            let _ = reply.send(Err(CallError::Cancelled { cause }));
        }
        self.cancel_deferred(CallError::Cancelled { cause });
        self.batches.fail_all(CallError::Cancelled { cause });
        self.ids.clear();
        // The getters show the final counters once `wait` returns.
        self.publish();
        self.status.send_modify(|s| s.finish = Some(finish));
    }

    /// Publishes the counters for the handles' getters.
    fn publish(&self) {
        let snapshot = Snapshot {
            stats: *self.conn.stats(),
            pending: self.calls.len()
                + self.batches.outstanding()
                + self
                    .deferred
                    .iter()
                    .filter(|d| matches!(d, Deferred::Call(_)))
                    .count(),
            inflight: self.conn.inflight_inbound(),
            state: self.conn.state(),
            peer_ended_requests: self.conn.peer_ended_requests(),
        };
        *self
            .shared
            .snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = snapshot;
    }
}
