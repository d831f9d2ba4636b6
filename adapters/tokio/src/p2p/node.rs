//! The node: shared state, commands, the accept and timer tasks.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use framewire::p2p::{
    encode_frame, Broadcast, Direction, PeerId, PeerStats, PeerTable, Router, Sent, TableStats,
    Tick, Ticker,
};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{core_duration, Config};
use super::conn::{self, ConnCtl};
use super::error::{ConnectError, Error};
use super::{Event, PeerInfo};

type SyncFn = dyn Fn(&Node, PeerId, Value) + Send + Sync;
type AsyncFn = dyn Fn(Node, PeerId, Value) -> BoxFuture<'static, ()> + Send + Sync;
type AnyFn = dyn Fn(&Node, PeerId, Value, Value) + Send + Sync;
type TickFn = dyn Fn(&Node, Tick) + Send + Sync;

/// A registered message handler.
#[derive(Clone)]
pub(super) enum Handler {
    Sync(Arc<SyncFn>),
    Async(Arc<AsyncFn>),
    /// The handler of types without one: also gets the type.
    Any(Arc<AnyFn>),
}

/// The table and the connections' controls, under one lock.
pub(super) struct State {
    pub(super) table: PeerTable<SocketAddr>,
    pub(super) conns: HashMap<PeerId, Arc<ConnCtl>>,
}

impl State {
    /// Wakes the writer of `peer`, if it has one.
    pub(super) fn wake(&self, peer: PeerId) {
        if let Some(ctl) = self.conns.get(&peer) {
            ctl.wake.notify_one();
        }
    }
}

pub(super) struct Inner {
    pub(super) config: Config,
    state: Mutex<State>,
    pub(super) router: RwLock<Router<Handler>>,
    ticks: RwLock<Vec<Arc<TickFn>>>,
    events: broadcast::Sender<Event>,
    timer_wake: Notify,
    pub(super) shutdown: CancellationToken,
    pub(super) tasks: TaskTracker,
    origin: tokio::time::Instant,
    local_addrs: Mutex<Vec<SocketAddr>>,
}

/// A socktools-style P2P node: listens ([`listen`](Self::listen)) and connects
/// ([`connect_to`](Self::connect_to)), dispatches messages to handlers by type
/// ([`on`](Self::on), [`on_sync`](Self::on_sync)), sends ([`send_to`](Self::send_to),
/// [`broadcast`](Self::broadcast)) and ticks ([`on_tick`](Self::on_tick)).
///
/// A `Node` is a cheap handle (`Clone`); handlers receive one to reply with. The node runs
/// until [`shutdown`](Self::shutdown): dropping the handles does not stop its tasks.
#[derive(Clone)]
pub struct Node {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("local_addrs", &*lock(&self.inner.local_addrs))
            .field("peers", &self.with_state(|s| s.table.len()))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Node {
    /// A node that does not listen yet (a pure client, or [`listen`](Self::listen) after
    /// registering handlers, so that no message arrives before its handler).
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the node spawns its timer task).
    pub fn new(config: Config) -> Node {
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let table = PeerTable::new(config.table_config());
        let node = Node {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(State {
                    table,
                    conns: HashMap::new(),
                }),
                router: RwLock::new(Router::new()),
                ticks: RwLock::new(Vec::new()),
                events,
                timer_wake: Notify::new(),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                origin: tokio::time::Instant::now(),
                local_addrs: Mutex::new(Vec::new()),
            }),
        };
        node.inner.tasks.spawn(timer_task(node.clone()));
        node
    }

    /// A node listening on `addr` (socktools' `TCPSock(bind=addr)` + `start_server()`).
    pub async fn bind(addr: impl ToSocketAddrs, config: Config) -> io::Result<Node> {
        let node = Node::new(config);
        node.listen(addr).await?;
        Ok(node)
    }

    /// Starts accepting peers on `addr`; returns the bound address. May be called more
    /// than once (several listeners).
    pub async fn listen(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        lock(&self.inner.local_addrs).push(local);
        self.inner.tasks.spawn(accept_task(self.clone(), listener));
        Ok(local)
    }

    /// The address of the first listener.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.local_addrs).first().copied()
    }

    /// Connects to a peer (socktools' `connect_to`); returns its id once it is up. The
    /// peer is admitted first (peer limit, `good_peer`); the connect is bounded by
    /// [`Config::connect_timeout`].
    pub async fn connect_to(&self, addr: impl ToSocketAddrs) -> Result<PeerId, ConnectError> {
        let addr = tokio::net::lookup_host(addr)
            .await?
            .next()
            .ok_or(ConnectError::NoAddress)?;
        let now = self.now();
        let good = self.inner.config.good_peer.clone();
        let id = self.with_state(|s| {
            s.table.admit(addr, Direction::Outbound, now, |info| {
                good.as_ref().is_none_or(|g| g(info))
            })
        })?;
        let timeout = self.inner.config.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.with_state(|s| s.table.connect_failed(id));
                return Err(ConnectError::Io(e));
            }
            Err(_) => {
                self.with_state(|s| s.table.connect_failed(id));
                return Err(ConnectError::TimedOut(timeout));
            }
        };
        let now = self.now();
        let ctl = self.with_state(|s| {
            if s.table.connected(id, now) {
                let ctl = Arc::new(ConnCtl::new());
                s.conns.insert(id, ctl.clone());
                Some(ctl)
            } else {
                None
            }
        });
        let ctl = ctl.ok_or(ConnectError::Abandoned)?;
        self.spawn_peer(id, stream, ctl);
        Ok(id)
    }

    // ----- handlers -----

    /// Adds an async handler for `msg_type` (after any it already has; all run, in
    /// order). It gets a node handle, the sender's id and the message data.
    ///
    /// ```no_run
    /// # fn f(node: &framewire_tokio::p2p::Node) -> Result<(), framewire_tokio::p2p::Error> {
    /// node.on("ping", |node, peer, data| async move {
    ///     let _ = node.send_to(peer, "pong", &data);
    /// })?;
    /// # Ok(()) }
    /// ```
    pub fn on<T, F, Fut>(&self, msg_type: &T, handler: F) -> Result<(), Error>
    where
        T: Serialize + ?Sized,
        F: Fn(Node, PeerId, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Arc<AsyncFn> =
            Arc::new(move |node, peer, data| Box::pin(handler(node, peer, data)));
        self.add_handler(msg_type, Handler::Async(handler))
    }

    /// Adds a synchronous handler for `msg_type` (cheaper: no future); see [`on`](Self::on).
    pub fn on_sync<T, F>(&self, msg_type: &T, handler: F) -> Result<(), Error>
    where
        T: Serialize + ?Sized,
        F: Fn(&Node, PeerId, Value) + Send + Sync + 'static,
    {
        self.add_handler(msg_type, Handler::Sync(Arc::new(handler)))
    }

    fn add_handler<T: Serialize + ?Sized>(
        &self,
        msg_type: &T,
        handler: Handler,
    ) -> Result<(), Error> {
        self.inner
            .router
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .add(msg_type, handler)
            .map_err(Error::Type)
    }

    /// Sets the handler of message types that have none; it also gets the type. Without
    /// one such messages are dropped (socktools) and counted
    /// ([`PeerStats::unknown`]).
    pub fn on_unknown<F>(&self, handler: F)
    where
        F: Fn(&Node, PeerId, Value, Value) + Send + Sync + 'static,
    {
        let _ = self
            .inner
            .router
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .set_default(Some(Handler::Any(Arc::new(handler))));
    }

    /// Adds a tick handler, called every [`Config::tick_interval`] on a fixed grid (no
    /// drift); after a stall the missed ticks are skipped, not replayed
    /// ([`Tick::missed`]). Tick handlers run in the node's timer task, one after the
    /// other: keep them short.
    pub fn on_tick<F>(&self, handler: F)
    where
        F: Fn(&Node, Tick) + Send + Sync + 'static,
    {
        self.inner
            .ticks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(handler));
        self.inner.timer_wake.notify_one();
    }

    // ----- sending -----

    /// Frames a message (`uint32be(len) + json.dumps([type, data])`), within
    /// [`Config::max_frame_len`].
    pub fn encode<T, D>(&self, msg_type: &T, data: &D) -> Result<Bytes, Error>
    where
        T: Serialize + ?Sized,
        D: Serialize + ?Sized,
    {
        Ok(encode_frame(
            msg_type,
            data,
            self.inner.config.max_frame_len,
        )?)
    }

    /// Sends a message to one peer (socktools' `send_msg(..., to_peer)`): it is queued
    /// for the peer's writer. Under the drop and disconnect policies a full queue is an
    /// `Ok` outcome ([`Sent`]); under `Reject` it is an error.
    pub fn send_to<T, D>(&self, peer: PeerId, msg_type: &T, data: &D) -> Result<Sent, Error>
    where
        T: Serialize + ?Sized,
        D: Serialize + ?Sized,
    {
        let frame = self.encode(msg_type, data)?;
        self.send_frame_to(peer, frame)
    }

    /// Sends an already framed message (from [`encode`](Self::encode); socktools'
    /// `send_raw`) to one peer.
    pub fn send_frame_to(&self, peer: PeerId, frame: Bytes) -> Result<Sent, Error> {
        self.with_state(|s| {
            let sent = s.table.send_to(peer, frame)?;
            if sent.is_queued() {
                s.wake(peer);
            }
            Ok(sent)
        })
    }

    /// Sends a message to every peer that is up: encoded once, the same bytes queued for
    /// all. Returns what happened for each peer.
    pub fn broadcast<T, D>(&self, msg_type: &T, data: &D) -> Result<Broadcast, Error>
    where
        T: Serialize + ?Sized,
        D: Serialize + ?Sized,
    {
        let frame = self.encode(msg_type, data)?;
        self.broadcast_frame(frame)
    }

    /// [`broadcast`](Self::broadcast) to every peer but `except` (relaying).
    pub fn broadcast_except<T, D>(
        &self,
        except: PeerId,
        msg_type: &T,
        data: &D,
    ) -> Result<Broadcast, Error>
    where
        T: Serialize + ?Sized,
        D: Serialize + ?Sized,
    {
        let frame = self.encode(msg_type, data)?;
        self.with_state(|s| {
            let report = s.table.broadcast_except(frame, except)?;
            wake_queued(s, &report);
            Ok(report)
        })
    }

    /// Broadcasts an already framed message.
    pub fn broadcast_frame(&self, frame: Bytes) -> Result<Broadcast, Error> {
        self.with_state(|s| {
            let report = s.table.broadcast(frame)?;
            wake_queued(s, &report);
            Ok(report)
        })
    }

    // ----- peers -----

    /// Every peer in the table (connecting, up or closing), in id order.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.with_state(|s| s.table.peers().cloned().collect())
    }

    /// One peer.
    pub fn peer(&self, peer: PeerId) -> Option<PeerInfo> {
        self.with_state(|s| s.table.peer(peer).cloned())
    }

    /// One peer's counters (queue length and bytes, drops, frames received, ...).
    pub fn peer_stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.with_state(|s| s.table.peer_stats(peer))
    }

    /// The node's counters.
    pub fn stats(&self) -> TableStats {
        self.with_state(|s| s.table.stats())
    }

    /// Closes a peer gracefully: what is queued is written first (within
    /// [`Config::close_timeout`]), then it leaves with
    /// [`LeaveReason::Closed`](framewire::p2p::LeaveReason::Closed). Returns whether it
    /// was in the table.
    pub fn close_peer(&self, peer: PeerId) -> bool {
        self.with_state(|s| {
            s.table
                .close(peer, framewire::p2p::LeaveReason::Closed, true)
        })
    }

    /// Subscribes to the node's events (peers joined, left, refused, failed connects,
    /// messages dropped). Events from before the call are not seen.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Stops accepting and connecting, closes every peer after writing what is queued
    /// for it (each bounded by [`Config::close_timeout`]), stops the timer, and waits
    /// for all the node's tasks.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let _ = self.with_state(|s| s.table.begin_shutdown());
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    // ----- internals -----

    /// The core's time: microseconds since the node was created.
    pub(super) fn now(&self) -> framewire::time::Instant {
        let micros = self.inner.origin.elapsed().as_micros();
        framewire::time::Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn tokio_instant(&self, at: framewire::time::Instant) -> tokio::time::Instant {
        self.inner.origin + Duration::from_micros(at.total_micros())
    }

    /// Runs `f` on the state, then delivers the core's events and close requests.
    pub(super) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut state = lock(&self.inner.state);
        let result = f(&mut state);
        while let Some(event) = state.table.poll_event() {
            // No subscriber is not an error.
            let _ = self.inner.events.send(event);
        }
        while let Some(close) = state.table.poll_close() {
            if let Some(ctl) = state.conns.get(&close.peer) {
                if close.flush {
                    ctl.closing.cancel();
                } else {
                    ctl.abort.cancel();
                }
                ctl.wake.notify_one();
            }
        }
        result
    }

    fn admit_inbound(&self, stream: TcpStream, addr: SocketAddr) {
        let now = self.now();
        let good = self.inner.config.good_peer.clone();
        let admitted = self.with_state(|s| {
            let id = s.table.admit(addr, Direction::Inbound, now, |info| {
                good.as_ref().is_none_or(|g| g(info))
            })?;
            let ctl = Arc::new(ConnCtl::new());
            s.conns.insert(id, ctl.clone());
            Ok::<_, framewire::p2p::RefuseReason>((id, ctl))
        });
        match admitted {
            Ok((id, ctl)) => {
                if self.inner.config.idle_timeout.is_some() {
                    self.inner.timer_wake.notify_one();
                }
                self.spawn_peer(id, stream, ctl);
            }
            Err(reason) => {
                // Refused: closed without a byte written (the event was reported).
                tracing::debug!(%addr, %reason, "peer refused");
                drop(stream);
            }
        }
    }

    fn spawn_peer(&self, id: PeerId, stream: TcpStream, ctl: Arc<ConnCtl>) {
        self.inner
            .tasks
            .spawn(conn::run_peer(self.clone(), id, stream, ctl));
    }

    /// The connection task of `peer` ended: it leaves the table.
    pub(super) fn finish_peer(&self, peer: PeerId, reason: framewire::p2p::LeaveReason) {
        self.with_state(|s| {
            s.conns.remove(&peer);
            s.table.remove(peer, reason);
        });
    }
}

fn wake_queued(state: &State, report: &Broadcast) {
    for (peer, outcome) in &report.outcomes {
        if matches!(outcome, Ok(sent) if sent.is_queued()) {
            state.wake(*peer);
        }
    }
}

async fn accept_task(node: Node, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            () = node.inner.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, addr)) => node.admit_inbound(stream, addr),
            Err(e) => {
                // Out of descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::select! {
                    () = node.inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// Drives the core ticker for `on_tick` handlers and the table's idle timeout.
async fn timer_task(node: Node) {
    let period = core_duration(
        node.inner
            .config
            .tick_interval
            .max(Duration::from_millis(1)),
    );
    let mut ticker: Option<Ticker> = None;
    loop {
        let handlers: Vec<Arc<TickFn>> = node
            .inner
            .ticks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if handlers.is_empty() {
            ticker = None;
        } else if ticker.is_none() {
            // The grid starts when the first handler is registered.
            ticker = Some(Ticker::new(period, node.now()));
        }
        let idle = node.with_state(|s| s.table.poll_timeout());
        let next = ticker
            .as_ref()
            .map(Ticker::next_deadline)
            .into_iter()
            .chain(idle)
            .min();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(node.tokio_instant(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = node.inner.shutdown.cancelled() => return,
            () = node.inner.timer_wake.notified() => continue,
            () = sleep => {}
        }
        let now = node.now();
        node.with_state(|s| s.table.handle_timeout(now));
        if let Some(tick) = ticker.as_mut().and_then(|t| t.poll(now)) {
            for handler in &handlers {
                let call = std::panic::AssertUnwindSafe(|| handler(&node, tick));
                if std::panic::catch_unwind(call).is_err() {
                    tracing::error!(index = tick.index, "tick handler panicked");
                }
            }
        }
    }
}
