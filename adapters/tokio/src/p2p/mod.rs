//! A socktools-style P2P node on Tokio: one node listens and connects, keeps a table of
//! peers, admits them through a `good_peer` predicate, dispatches `[type, data]` JSON
//! messages to handlers by type, sends to one peer or broadcasts to all, and ticks.
//!
//! The bookkeeping is [`framewire::p2p`] (sans-IO): the peer table, the bounded per-peer
//! send queues and their full policies, the router, the ticker. This module owns the
//! sockets and tasks:
//!
//! * an accept task per [`Node::listen`] (refused peers are closed before a byte is
//!   written to them);
//! * per peer, one task running a reader (frames → router → handlers) and a writer fed
//!   from the core's queue for that peer (vectored writes of the shared frames);
//! * a timer task driving the core [`Ticker`](framewire::p2p::Ticker) for
//!   [`Node::on_tick`] and the idle timeout.
//!
//! The wire format is socktools' (WIRE.md §3): `uint32be(len) + json.dumps([type, data])`,
//! byte for byte, so a Python socktools peer (or any client writing those bytes) talks to
//! a [`Node`] directly.
//!
//! ```no_run
//! use framewire_tokio::p2p::{Config, Node};
//!
//! # async fn run() -> std::io::Result<()> {
//! let node = Node::bind("127.0.0.1:0", Config::default()).await?;
//! node.on_sync("ping", |node, peer, data| {
//!     // Reply with the same data: queued for the peer's writer.
//!     let _ = node.send_to(peer, "pong", &data);
//! })
//! .expect("a string is a valid type");
//! let other = Node::new(Config::default());
//! let peer = other.connect_to(node.local_addr().unwrap()).await.expect("connected");
//! other.send_to(peer, "ping", &1).expect("queued");
//! // ...
//! other.shutdown().await;
//! node.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Limits (defaults)
//!
//! | what | default | setting |
//! |---|---|---|
//! | frame length, header included, both directions | 1 MiB | [`Config::max_frame_len`] |
//! | peers (connecting, up and closing) | 256 | [`Config::max_peers`] |
//! | queued messages per peer | 100 (socktools) | [`Config::queue`] |
//! | queued bytes per peer | 8 MiB | [`Config::queue`] |
//! | outbound connect | 10 s (socktools' timeout) | [`Config::connect_timeout`] |
//! | flushing a closing peer | 5 s | [`Config::close_timeout`] |
//! | undelivered events per subscriber | 1024 | [`Config::event_capacity`] |
//!
//! Closing a peer gracefully (shutdown, [`Node::close_peer`], the peer's own close)
//! writes what is queued for it, sends a FIN, and reads and discards until the peer's
//! FIN, so the socket is never closed with unread bytes (which would reset the
//! connection and could destroy the last messages); all within [`Config::close_timeout`].
//! An abort (a slow peer under [`FullPolicy::Disconnect`], an idle timeout) drops the
//! connection at once.
//!
//! Handlers for one peer run one at a time, in the order its messages arrive, inside
//! that peer's task: a slow handler slows down reading from that peer only (spawn a task
//! for long work). A handler that panics is logged and the peer carries on, as socktools'
//! `handler_wrapper` does.

mod config;
mod conn;
mod error;
mod node;

pub use config::{
    Config, GoodPeer, DEFAULT_CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_EVENT_CAPACITY,
};
pub use error::{ConnectError, Error};
pub use framewire::p2p::{
    Broadcast, Direction, FullPolicy, LeaveReason, PeerId, PeerState, PeerStats, QueueLimits,
    RefuseReason, SendError, Sent, TableStats, Tick, DEFAULT_MAX_FRAME_LEN, DEFAULT_MAX_PEERS,
    DEFAULT_TICK_INTERVAL,
};
pub use node::Node;
/// JSON values as handlers receive them.
pub use serde_json::Value;

/// What the node knows about a peer; `addr` is the remote socket address.
pub type PeerInfo = framewire::p2p::PeerInfo<std::net::SocketAddr>;

/// What [`Node::events`] reports: peers joined, left (with the reason), refused, failed
/// connects, and messages dropped by full queues.
pub type Event = framewire::p2p::Event<std::net::SocketAddr>;
