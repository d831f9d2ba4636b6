//! The peer table: who is connected, in which state, with what queued for them.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

use super::queue::{FullPolicy, PushOutcome, QueueLimits, QueueStats, SendQueue, TooLarge};
use crate::stream::ProtocolError;
use crate::time::{Duration, Instant};

/// Default limit on peers in the table (connecting, up and closing together): 256.
///
/// socktools has no explicit limit; its `GreenPool(1000)` runs two greenlets per peer
/// besides 22 of its own, which caps it near 489 peers.
pub const DEFAULT_MAX_PEERS: usize = 256;

/// Default bound on undelivered [`Event`]s: 1024. Past it the oldest are dropped and
/// counted ([`TableStats::events_lost`]); a driver that drains events after every call
/// never gets near it.
pub const DEFAULT_MAX_EVENTS: usize = 1024;

/// The most messages [`PeerTable::poll_transmit`] hands out at once by default.
pub const DEFAULT_TRANSMIT_BATCH: usize = 64;

/// A peer's identity in the table: assigned by the table, increasing, never reused
/// (not even for a refused connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerId(pub(crate) u64);

impl PeerId {
    /// The number behind the id.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// The peer connected to us (accepted by the listener).
    Inbound,
    /// We connected to the peer (`connect_to`).
    Outbound,
}

/// Where a peer is in its life. socktools has no handshake, so there is no state between
/// connected and up.
///
/// ```text
///  admit(Inbound) ─────────────────────────┐
///  admit(Outbound) → Connecting ─connected─┴→ Up ─close─→ Closing ─remove─→ (gone, PeerLeft)
///                        └─connect_failed─→ (gone, ConnectFailed)
/// ```
/// `remove` works from any state (the connection is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PeerState {
    /// Outbound, the transport is not connected yet. Counts towards the peer limit;
    /// cannot be sent to.
    Connecting,
    /// Connected: receives sends and broadcasts.
    Up,
    /// Being closed: no new messages; what is queued is still written unless the close
    /// was an abort. The driver closes the connection when
    /// [`PeerTable::poll_transmit`] says [`Transmit::Finish`].
    Closing,
}

/// What the table knows about a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerInfo<A> {
    /// The table's id for the peer.
    pub id: PeerId,
    /// The driver's address information (opaque to the table).
    pub addr: A,
    /// Who connected to whom.
    pub direction: Direction,
    /// The state.
    pub state: PeerState,
    /// When the peer was admitted.
    pub since: Instant,
    /// When the last frame arrived from the peer (`since` until then).
    pub last_seen: Instant,
}

/// Why a peer left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LeaveReason {
    /// Closed locally ([`PeerTable::close`] by the application).
    Closed,
    /// The peer closed the connection.
    PeerClosed,
    /// Its send queue was full under [`FullPolicy::Disconnect`].
    SlowPeer,
    /// Nothing arrived from it for the configured idle timeout.
    IdleTimeout,
    /// It sent a message that is not a socktools `[type, data]` JSON pair while
    /// [`Config::disconnect_on_malformed`] was set.
    Malformed,
    /// It broke the framing (an over-long frame, a close inside a frame).
    Protocol(ProtocolError),
    /// The transport failed (a read or write error; the driver has the details).
    Transport,
    /// The node is shutting down.
    Shutdown,
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::Closed => f.write_str("closed locally"),
            LeaveReason::PeerClosed => f.write_str("closed by the peer"),
            LeaveReason::SlowPeer => f.write_str("send queue full (slow peer disconnected)"),
            LeaveReason::IdleTimeout => f.write_str("idle timeout"),
            LeaveReason::Malformed => f.write_str("malformed message"),
            LeaveReason::Protocol(e) => write!(f, "protocol error: {e}"),
            LeaveReason::Transport => f.write_str("transport error"),
            LeaveReason::Shutdown => f.write_str("node shutting down"),
        }
    }
}

/// Why a peer was not admitted. A refused peer is never in the table, never sent
/// anything, and never dispatched; the driver closes its connection at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RefuseReason {
    /// The `good_peer` predicate said no.
    NotGood,
    /// The table already holds `max` peers.
    TooManyPeers {
        /// The configured limit.
        max: usize,
    },
    /// [`PeerTable::begin_shutdown`] was called.
    ShuttingDown,
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::NotGood => f.write_str("refused by good_peer"),
            RefuseReason::TooManyPeers { max } => write!(f, "peer limit of {max} reached"),
            RefuseReason::ShuttingDown => f.write_str("node shutting down"),
        }
    }
}

impl core::error::Error for RefuseReason {}

/// Something the application may want to know; from [`PeerTable::poll_event`].
/// Every variant is edge-triggered: reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Event<A> {
    /// A peer is up (inbound: admitted; outbound: connected).
    PeerJoined(PeerInfo<A>),
    /// A peer that had joined is gone from the table.
    PeerLeft {
        /// Its last known information.
        info: PeerInfo<A>,
        /// Why it left.
        reason: LeaveReason,
        /// Messages queued for it that were never written.
        unsent: usize,
    },
    /// A connection was refused; nothing was sent to it.
    PeerRefused {
        /// Its address.
        addr: A,
        /// Who connected.
        direction: Direction,
        /// Why.
        reason: RefuseReason,
    },
    /// An outbound connection attempt failed before the peer joined.
    ConnectFailed {
        /// The id it had while connecting.
        peer: PeerId,
        /// The address.
        addr: A,
    },
    /// Messages for a slow peer were dropped by its queue's policy. Consecutive drops
    /// for the same peer are merged into one event.
    MessagesDropped {
        /// The peer.
        peer: PeerId,
        /// How many messages.
        count: u64,
        /// [`FullPolicy::DropNewest`] (new messages not queued) or
        /// [`FullPolicy::DropOldest`] (queued messages evicted).
        policy: FullPolicy,
    },
}

/// What happened to a message sent to one peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Sent {
    /// Queued.
    Queued,
    /// Queued after the `dropped` oldest queued messages were dropped
    /// ([`FullPolicy::DropOldest`]).
    QueuedDroppingOldest {
        /// How many.
        dropped: usize,
    },
    /// Not queued: the queue was full ([`FullPolicy::DropNewest`]).
    DroppedNewest,
    /// Not queued: the queue was full and the peer is being disconnected
    /// ([`FullPolicy::Disconnect`]).
    Disconnected,
}

impl Sent {
    /// Whether the message was queued.
    pub fn is_queued(self) -> bool {
        matches!(self, Sent::Queued | Sent::QueuedDroppingOldest { .. })
    }
}

/// Why a message could not be sent to a peer. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SendError {
    /// No such peer (it left, or never was).
    UnknownPeer(PeerId),
    /// The peer is still connecting.
    NotConnected(PeerId),
    /// The peer is closing.
    Closing(PeerId),
    /// The peer's queue is full and the policy is [`FullPolicy::Reject`].
    QueueFull {
        /// The peer.
        peer: PeerId,
        /// Messages queued.
        messages: usize,
        /// Bytes queued.
        bytes: usize,
    },
    /// The message alone is longer than a queue may hold.
    TooLarge(TooLarge),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::UnknownPeer(p) => write!(f, "no such peer: {p}"),
            SendError::NotConnected(p) => write!(f, "{p} is still connecting"),
            SendError::Closing(p) => write!(f, "{p} is closing"),
            SendError::QueueFull {
                peer,
                messages,
                bytes,
            } => write!(
                f,
                "send queue of {peer} is full ({messages} messages, {bytes} bytes queued)"
            ),
            SendError::TooLarge(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl core::error::Error for SendError {}

impl From<TooLarge> for SendError {
    fn from(e: TooLarge) -> Self {
        SendError::TooLarge(e)
    }
}

/// What a broadcast did, peer by peer and in total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Every peer that was up, in id order, with what happened to its copy.
    pub outcomes: Vec<(PeerId, Result<Sent, SendError>)>,
    /// Peers whose queue took the message.
    pub queued: usize,
    /// Peers for which it was dropped ([`Sent::DroppedNewest`]).
    pub dropped: usize,
    /// Peers that refused it ([`SendError::QueueFull`]).
    pub rejected: usize,
    /// Peers disconnected because their queue was full ([`Sent::Disconnected`]).
    pub disconnected: usize,
}

/// What arrived in one frame from a peer, for [`PeerTable::handle_frame`] (the router
/// decides it: see `Dispatch::received` with feature `json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Received {
    /// A message with at least one handler (or a default handler).
    Handled,
    /// A message of a type with no handler: dropped, as socktools does.
    Unknown,
    /// A zero-length frame: dropped, as socktools does.
    Empty,
    /// Not a `[type, data]` JSON pair: socktools logs it and carries on.
    Malformed,
}

/// What the driver should do with a peer's connection after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub enum Verdict {
    /// Keep reading.
    Continue,
    /// Stop reading: the peer is closing or gone.
    Stop,
}

/// What the writer of a peer's connection should do, from [`PeerTable::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub enum Transmit {
    /// This many messages were appended to the output vector: write them, then poll
    /// again.
    Frames(usize),
    /// Nothing to write: wait until something is sent to the peer.
    Idle,
    /// The peer is closing and everything that was to be written has been handed out:
    /// close the connection, then call [`PeerTable::remove`].
    Finish,
    /// The peer is not in the table: drop the connection.
    Gone,
}

/// A peer that started closing, from [`PeerTable::poll_close`]: the driver wakes its
/// writer and, without `flush`, drops the connection at once (its writer may be stuck
/// writing to a peer that does not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CloseRequest {
    /// The peer.
    pub peer: PeerId,
    /// Whether what is queued is still to be written (else: abort).
    pub flush: bool,
}

/// Per-peer counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeerStats {
    /// Messages queued now.
    pub queued: usize,
    /// Bytes queued now.
    pub queued_bytes: usize,
    /// The send queue's counters.
    pub queue: QueueStats,
    /// Frames received.
    pub frames_received: u64,
    /// Of those, messages with no handler.
    pub unknown: u64,
    /// Of those, zero-length frames.
    pub empty: u64,
    /// Of those, malformed messages.
    pub malformed: u64,
}

/// Table-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TableStats {
    /// Peers admitted.
    pub admitted: u64,
    /// Connections refused.
    pub refused: u64,
    /// Peers that joined and then left.
    pub left: u64,
    /// Outbound attempts that failed.
    pub connect_failed: u64,
    /// Broadcasts made.
    pub broadcasts: u64,
    /// Messages dropped by full queues (both drop policies).
    pub messages_dropped: u64,
    /// Slow peers disconnected ([`FullPolicy::Disconnect`]).
    pub slow_disconnects: u64,
    /// Events dropped because nobody polled them ([`Config::max_events`]).
    pub events_lost: u64,
}

/// The table's limits and policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// At most this many peers, whatever their state (default [`DEFAULT_MAX_PEERS`]).
    pub max_peers: usize,
    /// Every peer's send queue (default: 100 messages, 8 MiB, drop newest).
    pub queue: QueueLimits,
    /// Close peers from which no frame arrived for this long (default `None`: never).
    /// socktools drops peers silent for 10 s from its table (without closing them);
    /// `Some(Duration::from_secs(10))` gets that, with the connection closed.
    pub idle_timeout: Option<Duration>,
    /// Disconnect a peer that sends a malformed message (default `false`: count it and
    /// carry on, as socktools does).
    pub disconnect_on_malformed: bool,
    /// At most this many undelivered events (default [`DEFAULT_MAX_EVENTS`]).
    pub max_events: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_peers: DEFAULT_MAX_PEERS,
            queue: QueueLimits::default(),
            idle_timeout: None,
            disconnect_on_malformed: false,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

#[derive(Debug)]
struct Peer<A> {
    info: PeerInfo<A>,
    queue: SendQueue,
    /// Set when the peer starts closing; reported in `PeerLeft`.
    close_reason: Option<LeaveReason>,
    /// Whether `PeerJoined` was reported (a `PeerLeft` is due on removal).
    joined: bool,
    /// Messages discarded so far (abort, removal).
    unsent: usize,
    /// Closing without flushing.
    aborted: bool,
    frames_received: u64,
    unknown: u64,
    empty: u64,
    malformed: u64,
}

/// The peers of a P2P node, with their send queues: the bookkeeping of socktools'
/// `known_peers`, `good_peer` and per-peer `sendq`, with no I/O.
///
/// `A` is the driver's address type (a `SocketAddr`, an endpoint handle, ...); the
/// table only stores and reports it.
///
/// # Calling order
///
/// * **inputs**: [`admit`](Self::admit) a connection (inbound when accepted, outbound
///   before connecting), then [`connected`](Self::connected) or
///   [`connect_failed`](Self::connect_failed) for outbound ones;
///   [`handle_frame`](Self::handle_frame) for each frame received;
///   [`remove`](Self::remove) when a connection is gone;
///   [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
/// * **commands**: [`send_to`](Self::send_to), [`broadcast`](Self::broadcast),
///   [`close`](Self::close), [`begin_shutdown`](Self::begin_shutdown).
/// * **outputs**: [`poll_transmit`](Self::poll_transmit) per peer (the writer),
///   [`poll_event`](Self::poll_event) and [`poll_close`](Self::poll_close) after every
///   call, [`poll_timeout`](Self::poll_timeout).
/// * getters: [`peer`](Self::peer), [`peers`](Self::peers), [`peer_stats`](Self::peer_stats),
///   [`stats`](Self::stats), ...
///
/// A driver runs, per connection, a reader (frames → router → handlers, and
/// `handle_frame`) and a writer (`poll_transmit` → write → repeat; wait when `Idle`; close
/// the connection and `remove` on `Finish`). After any command that can queue or close,
/// wake the writers concerned.
///
/// ```
/// use bytes::Bytes;
/// use framewire::p2p::{Config, Direction, Event, PeerTable, Transmit};
/// use framewire::time::Instant;
///
/// let mut table: PeerTable<&str> = PeerTable::new(Config::default());
/// let now = Instant::ZERO;
/// let a = table.admit("10.0.0.1:5000", Direction::Inbound, now, |_| true).unwrap();
/// let b = table.admit("10.0.0.2:5000", Direction::Outbound, now, |_| true).unwrap();
/// assert!(table.connected(b, now));
/// assert!(matches!(table.poll_event(), Some(Event::PeerJoined(info)) if info.id == a));
/// assert!(matches!(table.poll_event(), Some(Event::PeerJoined(info)) if info.id == b));
///
/// // Encoded once, queued for both.
/// let frame = Bytes::from_static(b"\0\0\0\x0b[\"ping\", 1]");
/// let report = table.broadcast(frame.clone()).unwrap();
/// assert_eq!(report.queued, 2);
///
/// // A writer takes what is queued for its peer.
/// let mut out = Vec::new();
/// assert_eq!(table.poll_transmit(a, &mut out), Transmit::Frames(1));
/// assert_eq!(out[0].as_ptr(), frame.as_ptr());
/// assert_eq!(table.poll_transmit(a, &mut out), Transmit::Idle);
/// ```
#[derive(Debug)]
pub struct PeerTable<A> {
    config: Config,
    peers: BTreeMap<PeerId, Peer<A>>,
    next_id: u64,
    events: VecDeque<Event<A>>,
    closes: VecDeque<CloseRequest>,
    stats: TableStats,
    shutting_down: bool,
    batch_messages: usize,
    batch_bytes: usize,
}

impl<A: Clone> PeerTable<A> {
    /// An empty table.
    pub fn new(config: Config) -> Self {
        PeerTable {
            config,
            peers: BTreeMap::new(),
            next_id: 1,
            events: VecDeque::new(),
            closes: VecDeque::new(),
            stats: TableStats::default(),
            shutting_down: false,
            batch_messages: DEFAULT_TRANSMIT_BATCH,
            batch_bytes: 256 * 1024,
        }
    }

    /// Sets how much one [`poll_transmit`](Self::poll_transmit) hands out: at most
    /// `messages` messages and, past the first, `bytes` bytes (defaults 64 and 256 KiB).
    #[must_use]
    pub fn with_transmit_batch(mut self, messages: usize, bytes: usize) -> Self {
        self.batch_messages = messages.max(1);
        self.batch_bytes = bytes;
        self
    }

    fn push_event(&mut self, event: Event<A>) {
        if let (
            Event::MessagesDropped {
                peer,
                count,
                policy,
            },
            Some(Event::MessagesDropped {
                peer: last_peer,
                count: last_count,
                policy: last_policy,
            }),
        ) = (&event, self.events.back_mut())
        {
            if peer == last_peer && policy == last_policy {
                *last_count += count;
                return;
            }
        }
        if self.config.max_events == 0 {
            self.stats.events_lost += 1;
            return;
        }
        while self.events.len() >= self.config.max_events {
            self.events.pop_front();
            self.stats.events_lost += 1;
        }
        self.events.push_back(event);
    }

    // ----- inputs -----

    /// Decides on a new connection: refused if the node is shutting down, if the table is
    /// full, or if `good_peer` (socktools' `good_peer(addr)`, given the would-be
    /// [`PeerInfo`]) says no; the predicate is only asked when the other checks pass.
    ///
    /// Admitted inbound peers are [`PeerState::Up`] at once ([`Event::PeerJoined`]);
    /// outbound ones are [`PeerState::Connecting`] until [`connected`](Self::connected).
    /// socktools asks `good_peer` of inbound peers only (and drops later messages from
    /// peers it turns against); here it decides both directions, once, at admission.
    ///
    /// Errors: the [`RefuseReason`], also reported as [`Event::PeerRefused`]. The driver
    /// must close a refused connection without writing to it.
    pub fn admit<F>(
        &mut self,
        addr: A,
        direction: Direction,
        now: Instant,
        good_peer: F,
    ) -> Result<PeerId, RefuseReason>
    where
        F: FnOnce(&PeerInfo<A>) -> bool,
    {
        let id = PeerId(self.next_id);
        self.next_id += 1;
        let info = PeerInfo {
            id,
            addr,
            direction,
            state: match direction {
                Direction::Inbound => PeerState::Up,
                Direction::Outbound => PeerState::Connecting,
            },
            since: now,
            last_seen: now,
        };
        let refusal = if self.shutting_down {
            Some(RefuseReason::ShuttingDown)
        } else if self.peers.len() >= self.config.max_peers {
            Some(RefuseReason::TooManyPeers {
                max: self.config.max_peers,
            })
        } else if !good_peer(&info) {
            Some(RefuseReason::NotGood)
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.stats.refused += 1;
            self.push_event(Event::PeerRefused {
                addr: info.addr,
                direction,
                reason,
            });
            return Err(reason);
        }
        self.stats.admitted += 1;
        let joined = direction == Direction::Inbound;
        if joined {
            self.push_event(Event::PeerJoined(info.clone()));
        }
        self.peers.insert(
            id,
            Peer {
                info,
                queue: SendQueue::new(self.config.queue),
                close_reason: None,
                joined,
                unsent: 0,
                aborted: false,
                frames_received: 0,
                unknown: 0,
                empty: 0,
                malformed: 0,
            },
        );
        Ok(id)
    }

    /// An outbound peer's transport is connected: it is up ([`Event::PeerJoined`]).
    ///
    /// Returns `false` if the peer is not [`PeerState::Connecting`] any more. If it was
    /// closed meanwhile (e.g. by [`begin_shutdown`](Self::begin_shutdown)) it is removed
    /// with [`Event::ConnectFailed`] (it never joined); the driver drops the connection.
    pub fn connected(&mut self, peer: PeerId, now: Instant) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        match p.info.state {
            PeerState::Connecting => {
                p.info.state = PeerState::Up;
                p.info.last_seen = now;
                p.joined = true;
                let info = p.info.clone();
                self.push_event(Event::PeerJoined(info));
                true
            }
            PeerState::Closing if !p.joined => {
                // Closed while connecting: the attempt is abandoned.
                let addr = p.info.addr.clone();
                self.peers.remove(&peer);
                self.stats.connect_failed += 1;
                self.push_event(Event::ConnectFailed { peer, addr });
                false
            }
            PeerState::Up | PeerState::Closing => false,
        }
    }

    /// An outbound connection attempt failed: the peer is removed
    /// ([`Event::ConnectFailed`]). Returns whether it was connecting.
    pub fn connect_failed(&mut self, peer: PeerId) -> bool {
        match self.peers.get(&peer) {
            Some(p) if !p.joined => {
                let p = self.peers.remove(&peer).map(|p| p.info);
                if let Some(info) = p {
                    self.stats.connect_failed += 1;
                    self.push_event(Event::ConnectFailed {
                        peer,
                        addr: info.addr,
                    });
                }
                true
            }
            _ => false,
        }
    }

    /// Records a frame received from `peer` (its `last_seen` becomes `now`) and what the
    /// router made of it.
    ///
    /// Returns [`Verdict::Stop`] if the peer is unknown or closing, or if the frame was
    /// malformed under [`Config::disconnect_on_malformed`] (the peer is then closed with
    /// [`LeaveReason::Malformed`], flushing its queue).
    pub fn handle_frame(&mut self, peer: PeerId, now: Instant, received: Received) -> Verdict {
        let disconnect = self.config.disconnect_on_malformed;
        let Some(p) = self.peers.get_mut(&peer) else {
            return Verdict::Stop;
        };
        p.info.last_seen = p.info.last_seen.max(now);
        p.frames_received += 1;
        match received {
            Received::Handled => {}
            Received::Unknown => p.unknown += 1,
            Received::Empty => p.empty += 1,
            Received::Malformed => p.malformed += 1,
        }
        if p.info.state == PeerState::Closing {
            return Verdict::Stop;
        }
        if received == Received::Malformed && disconnect {
            self.close(peer, LeaveReason::Malformed, true);
            return Verdict::Stop;
        }
        Verdict::Continue
    }

    /// The connection to `peer` is gone (closed after [`Transmit::Finish`], or failed):
    /// the peer leaves the table. Reports [`Event::PeerLeft`] if it had joined, with the
    /// reason given when it started closing, else `reason`; messages still queued are
    /// counted as unsent. Returns its last information.
    pub fn remove(&mut self, peer: PeerId, reason: LeaveReason) -> Option<PeerInfo<A>> {
        let mut p = self.peers.remove(&peer)?;
        p.unsent += p.queue.clear();
        if p.joined {
            self.stats.left += 1;
            self.push_event(Event::PeerLeft {
                info: p.info.clone(),
                reason: p.close_reason.unwrap_or(reason),
                unsent: p.unsent,
            });
        } else {
            self.stats.connect_failed += 1;
            self.push_event(Event::ConnectFailed {
                peer,
                addr: p.info.addr.clone(),
            });
        }
        Some(p.info)
    }

    /// Closes peers idle for [`Config::idle_timeout`] (aborting: their queues are
    /// discarded, [`LeaveReason::IdleTimeout`]). Returns how many.
    pub fn handle_timeout(&mut self, now: Instant) -> usize {
        let Some(idle) = self.config.idle_timeout else {
            return 0;
        };
        let expired: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.info.state == PeerState::Up && now >= p.info.last_seen + idle)
            .map(|p| p.info.id)
            .collect();
        for &id in &expired {
            self.close(id, LeaveReason::IdleTimeout, false);
        }
        expired.len()
    }

    // ----- commands -----

    fn push_to(&mut self, peer: PeerId, frame: Bytes) -> Result<Sent, SendError> {
        let Some(p) = self.peers.get_mut(&peer) else {
            return Err(SendError::UnknownPeer(peer));
        };
        match p.info.state {
            PeerState::Connecting => return Err(SendError::NotConnected(peer)),
            PeerState::Closing => return Err(SendError::Closing(peer)),
            PeerState::Up => {}
        }
        let outcome = p.queue.push(frame)?;
        let (messages, bytes, policy) = (p.queue.len(), p.queue.bytes(), p.queue.limits().policy);
        match outcome {
            PushOutcome::Queued => Ok(Sent::Queued),
            PushOutcome::QueuedDroppingOldest { dropped } => {
                self.stats.messages_dropped += dropped as u64;
                self.push_event(Event::MessagesDropped {
                    peer,
                    count: dropped as u64,
                    policy: FullPolicy::DropOldest,
                });
                Ok(Sent::QueuedDroppingOldest { dropped })
            }
            PushOutcome::DroppedNewest => {
                self.stats.messages_dropped += 1;
                self.push_event(Event::MessagesDropped {
                    peer,
                    count: 1,
                    policy: FullPolicy::DropNewest,
                });
                Ok(Sent::DroppedNewest)
            }
            PushOutcome::Full if policy == FullPolicy::Disconnect => {
                self.stats.slow_disconnects += 1;
                self.close(peer, LeaveReason::SlowPeer, false);
                Ok(Sent::Disconnected)
            }
            PushOutcome::Full => Err(SendError::QueueFull {
                peer,
                messages,
                bytes,
            }),
        }
    }

    /// Queues an encoded frame for one peer (socktools' `send_raw(data, to_peer)`).
    ///
    /// Errors: the peer is unknown, connecting or closing; the frame is longer than a
    /// queue's byte bound; the queue is full under [`FullPolicy::Reject`]. Under the other
    /// policies a full queue is an `Ok` outcome ([`Sent`]).
    pub fn send_to(&mut self, peer: PeerId, frame: Bytes) -> Result<Sent, SendError> {
        self.push_to(peer, frame)
    }

    /// Queues the same encoded frame (one allocation, shared) for every peer that is up
    /// (socktools' `send_raw(data)` with no peer).
    ///
    /// Errors: [`TooLarge`] (nothing queued anywhere) if the frame is longer than a
    /// queue's byte bound.
    pub fn broadcast(&mut self, frame: Bytes) -> Result<Broadcast, TooLarge> {
        self.broadcast_where(frame, |_| true)
    }

    /// [`broadcast`](Self::broadcast) to every peer that is up except `except` (relaying
    /// what one peer said to the others).
    pub fn broadcast_except(
        &mut self,
        frame: Bytes,
        except: PeerId,
    ) -> Result<Broadcast, TooLarge> {
        self.broadcast_where(frame, |info| info.id != except)
    }

    /// [`broadcast`](Self::broadcast) to the peers that are up and for which `filter`
    /// returns true.
    pub fn broadcast_where<F>(&mut self, frame: Bytes, mut filter: F) -> Result<Broadcast, TooLarge>
    where
        F: FnMut(&PeerInfo<A>) -> bool,
    {
        let max = self.config.queue.max_bytes;
        if frame.len() > max {
            return Err(TooLarge {
                len: frame.len(),
                max,
            });
        }
        self.stats.broadcasts += 1;
        let targets: Vec<PeerId> = self
            .peers
            .values()
            .filter(|p| p.info.state == PeerState::Up && filter(&p.info))
            .map(|p| p.info.id)
            .collect();
        let mut report = Broadcast {
            outcomes: Vec::with_capacity(targets.len()),
            ..Broadcast::default()
        };
        let last = targets.len().saturating_sub(1);
        let mut frame = Some(frame);
        for (i, id) in targets.into_iter().enumerate() {
            // Every peer gets a handle to the same bytes; the last one takes ours.
            let copy = if i == last {
                frame.take()
            } else {
                frame.clone()
            };
            let Some(copy) = copy else { break };
            let outcome = self.push_to(id, copy);
            match outcome {
                Ok(Sent::Queued | Sent::QueuedDroppingOldest { .. }) => report.queued += 1,
                Ok(Sent::DroppedNewest) => report.dropped += 1,
                Ok(Sent::Disconnected) => report.disconnected += 1,
                Err(SendError::QueueFull { .. }) => report.rejected += 1,
                Err(_) => {}
            }
            report.outcomes.push((id, outcome));
        }
        Ok(report)
    }

    /// Starts closing `peer`: no more messages are queued for it. With `flush` what is
    /// queued is still written first; without, it is discarded (counted as unsent).
    /// The writer then gets [`Transmit::Finish`]. The first reason given is the one
    /// [`Event::PeerLeft`] reports; a later close without `flush` still aborts.
    ///
    /// A peer that is still connecting is closed too; [`connected`](Self::connected) then
    /// returns `false`. Returns whether the peer exists.
    pub fn close(&mut self, peer: PeerId, reason: LeaveReason, flush: bool) -> bool {
        let Some(p) = self.peers.get_mut(&peer) else {
            return false;
        };
        let was_closing = p.info.state == PeerState::Closing;
        p.info.state = PeerState::Closing;
        p.close_reason.get_or_insert(reason);
        if !flush {
            p.unsent += p.queue.clear();
        }
        if !was_closing || (!flush && !p.aborted) {
            p.aborted = !flush;
            self.closes.push_back(CloseRequest { peer, flush });
        }
        true
    }

    /// Refuses every new peer from now on and closes every peer (flushing,
    /// [`LeaveReason::Shutdown`]). Returns the peers closed.
    pub fn begin_shutdown(&mut self) -> Vec<PeerId> {
        self.shutting_down = true;
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for &id in &ids {
            self.close(id, LeaveReason::Shutdown, true);
        }
        ids
    }

    // ----- outputs -----

    /// What the writer of `peer`'s connection should do next; moves the messages to
    /// write into `out` (at most the transmit batch, see
    /// [`with_transmit_batch`](Self::with_transmit_batch)).
    pub fn poll_transmit(&mut self, peer: PeerId, out: &mut Vec<Bytes>) -> Transmit {
        let Some(p) = self.peers.get_mut(&peer) else {
            return Transmit::Gone;
        };
        if p.info.state == PeerState::Connecting {
            return Transmit::Idle;
        }
        let n = p.queue.pop_into(out, self.batch_messages, self.batch_bytes);
        if n > 0 {
            Transmit::Frames(n)
        } else if p.info.state == PeerState::Closing {
            Transmit::Finish
        } else {
            Transmit::Idle
        }
    }

    /// The next peer that started closing (by [`close`](Self::close), a full queue under
    /// [`FullPolicy::Disconnect`], a malformed message, an idle timeout or
    /// [`begin_shutdown`](Self::begin_shutdown)), oldest first. Poll it after every call,
    /// like [`poll_event`](Self::poll_event); a peer appears once when it starts closing
    /// and once more if a flushing close is turned into an abort.
    pub fn poll_close(&mut self) -> Option<CloseRequest> {
        self.closes.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event<A>> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the earliest
    /// moment an up peer becomes idle for too long (`None` without an idle timeout or
    /// peers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout?;
        self.peers
            .values()
            .filter(|p| p.info.state == PeerState::Up)
            .map(|p| p.info.last_seen + idle)
            .min()
    }

    // ----- getters -----

    /// One peer's information.
    pub fn peer(&self, peer: PeerId) -> Option<&PeerInfo<A>> {
        self.peers.get(&peer).map(|p| &p.info)
    }

    /// Every peer in the table (any state), in id order.
    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo<A>> + '_ {
        self.peers.values().map(|p| &p.info)
    }

    /// One peer's counters.
    pub fn peer_stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.peers.get(&peer).map(|p| PeerStats {
            queued: p.queue.len(),
            queued_bytes: p.queue.bytes(),
            queue: p.queue.stats(),
            frames_received: p.frames_received,
            unknown: p.unknown,
            empty: p.empty,
            malformed: p.malformed,
        })
    }

    /// Peers in the table, any state.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The table-wide counters.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Whether [`begin_shutdown`](Self::begin_shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }
}
