//! The node's configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use framewire::p2p::{FullPolicy, QueueLimits, DEFAULT_MAX_FRAME_LEN, DEFAULT_MAX_PEERS};

use super::PeerInfo;

/// Default time allowed for an outbound connect: 10 s (socktools' `timeout`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a closing peer gets to take what is queued for it: 5 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default number of events a subscriber of [`Node::events`](super::Node::events) may
/// fall behind before it misses some: 1024.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// socktools' `good_peer(addr)`: whether to talk to a peer at all.
///
/// It is called with the node's internal lock held: it must not call the node.
pub type GoodPeer = Arc<dyn Fn(&PeerInfo) -> bool + Send + Sync>;

/// The node's limits and policies. Every field has a documented default
/// ([`Config::default`]); the `with_*` methods set one each.
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// Peers in the table, whatever their state (default
    /// [`DEFAULT_MAX_PEERS`](framewire::p2p::DEFAULT_MAX_PEERS), 256). Connections over
    /// the limit are refused.
    pub max_peers: usize,
    /// Largest frame sent or received, its 4-byte header included (default
    /// [`DEFAULT_MAX_FRAME_LEN`](framewire::p2p::DEFAULT_MAX_FRAME_LEN), 1 MiB). A peer
    /// announcing a longer frame is disconnected
    /// ([`LeaveReason::Protocol`](framewire::p2p::LeaveReason::Protocol)) before its body
    /// is buffered.
    pub max_frame_len: usize,
    /// Every peer's send queue: 100 messages (socktools), 8 MiB, and what to do when it
    /// is full (default [`FullPolicy::DropNewest`]).
    pub queue: QueueLimits,
    /// The period of [`Node::on_tick`](super::Node::on_tick) (default 250 ms,
    /// socktools' `tick_interval`; at least 1 ms).
    pub tick_interval: Duration,
    /// Close peers that sent nothing for this long (default `None`: never).
    pub idle_timeout: Option<Duration>,
    /// Disconnect a peer that sends a malformed message (default `false`: count it and
    /// carry on, as socktools does).
    pub disconnect_on_malformed: bool,
    /// Time allowed for an outbound connect (default [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Time a closing peer gets to take what is queued for it before the connection is
    /// dropped (default [`DEFAULT_CLOSE_TIMEOUT`]).
    pub close_timeout: Duration,
    /// Capacity of the event channel (default [`DEFAULT_EVENT_CAPACITY`]).
    pub event_capacity: usize,
    /// socktools' `good_peer`: asked once per connection, inbound and outbound (default
    /// `None`: everyone is welcome).
    pub good_peer: Option<GoodPeer>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_peers: DEFAULT_MAX_PEERS,
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            queue: QueueLimits::default(),
            tick_interval: Duration::from_millis(250),
            idle_timeout: None,
            disconnect_on_malformed: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            good_peer: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_peers", &self.max_peers)
            .field("max_frame_len", &self.max_frame_len)
            .field("queue", &self.queue)
            .field("tick_interval", &self.tick_interval)
            .field("idle_timeout", &self.idle_timeout)
            .field("disconnect_on_malformed", &self.disconnect_on_malformed)
            .field("connect_timeout", &self.connect_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("good_peer", &self.good_peer.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl Config {
    /// Sets [`good_peer`](Self::good_peer). The predicate runs with the node's lock held:
    /// it must not call the node.
    #[must_use]
    pub fn with_good_peer<F>(mut self, good_peer: F) -> Self
    where
        F: Fn(&PeerInfo) -> bool + Send + Sync + 'static,
    {
        self.good_peer = Some(Arc::new(good_peer));
        self
    }

    /// Sets [`max_peers`](Self::max_peers).
    #[must_use]
    pub fn with_max_peers(mut self, max: usize) -> Self {
        self.max_peers = max;
        self
    }

    /// Sets [`max_frame_len`](Self::max_frame_len).
    #[must_use]
    pub fn with_max_frame_len(mut self, max: usize) -> Self {
        self.max_frame_len = max;
        self
    }

    /// Sets the send queue's full policy.
    #[must_use]
    pub fn with_queue_policy(mut self, policy: FullPolicy) -> Self {
        self.queue.policy = policy;
        self
    }

    /// Sets the send queue's bounds: messages and bytes.
    #[must_use]
    pub fn with_queue_bounds(mut self, max_messages: usize, max_bytes: usize) -> Self {
        self.queue.max_messages = max_messages;
        self.queue.max_bytes = max_bytes;
        self
    }

    /// Sets [`tick_interval`](Self::tick_interval).
    #[must_use]
    pub fn with_tick_interval(mut self, interval: Duration) -> Self {
        self.tick_interval = interval;
        self
    }

    /// Sets [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`disconnect_on_malformed`](Self::disconnect_on_malformed).
    #[must_use]
    pub fn with_disconnect_on_malformed(mut self, disconnect: bool) -> Self {
        self.disconnect_on_malformed = disconnect;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    #[must_use]
    pub fn with_close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`event_capacity`](Self::event_capacity) (at least 1).
    #[must_use]
    pub fn with_event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity;
        self
    }

    pub(super) fn table_config(&self) -> framewire::p2p::Config {
        framewire::p2p::Config {
            max_peers: self.max_peers,
            queue: self.queue,
            idle_timeout: self.idle_timeout.map(core_duration),
            disconnect_on_malformed: self.disconnect_on_malformed,
            ..framewire::p2p::Config::default()
        }
    }
}

/// A std duration as the core's, saturating.
pub(super) fn core_duration(d: Duration) -> framewire::time::Duration {
    framewire::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
