//! The bookkeeping of a socktools-style P2P node, with no I/O (feature `alloc`; message
//! encoding and routing with feature `json`).
//!
//! socktools' `TCPSock` is a node that both listens and connects, keeps a table of peers
//! (`known_peers`), admits them through `good_peer`, gives each a bounded send queue and
//! a writer, broadcasts by putting the same encoded bytes in every queue, dispatches
//! received `[msg_type, msg_data]` messages to handlers by type, and runs a periodic
//! tick. This module is all of that except the sockets and tasks, which belong to a
//! driver (`framewire-tokio`'s `p2p::Node`):
//!
//! * [`PeerTable`]: peers with core-assigned [`PeerId`]s, the driver's address, a
//!   [`PeerState`] and [`Direction`]; admission ([`PeerTable::admit`]: peer limit and the
//!   `good_peer` predicate, refusals reported); per-peer [`SendQueue`]s fed by
//!   [`PeerTable::send_to`] and [`PeerTable::broadcast`] (one shared [`Bytes`](bytes::Bytes)
//!   frame for all) and drained by [`PeerTable::poll_transmit`]; [`Event`]s; idle
//!   timeouts.
//! * [`SendQueue`]: 100 messages by default (socktools' `LightQueue(100)`) plus a byte
//!   bound, with an explicit [`FullPolicy`] when a slow peer lets it fill up.
//! * `Router` and `encode_frame` (feature `json`): socktools' wire format
//!   (`uint32be(len) + json.dumps([type, data])`), routing by type with socktools'
//!   treatment of unknown types, empty frames and malformed messages.
//! * [`Ticker`]: the periodic tick on a fixed grid (default [`DEFAULT_TICK_INTERVAL`],
//!   socktools' 0.25 s), skipping rather than bursting after a stall.
//!
//! Time is always an argument ([`crate::time::Instant`]).
//!
//! # Differences from socktools 0.2
//!
//! * Queues never block the sender: a full queue applies a [`FullPolicy`] (socktools'
//!   `put` blocks, so one slow peer stalls every broadcast).
//! * `good_peer` is asked once per connection, for inbound and outbound peers alike
//!   (socktools asks it on accept and again for every received message).
//! * A refused peer is closed without a byte written and reported
//!   ([`Event::PeerRefused`]); socktools closes it silently.
//! * Peers that go away are closed and reported ([`Event::PeerLeft`]); socktools'
//!   idle timeout only forgets them. The idle timeout is off by default.
//! * Ticks keep to their grid; socktools' loop drifts by the lateness of every sleep.

mod queue;
#[cfg(feature = "json")]
mod router;
mod table;
#[cfg(test)]
mod tests;
mod tick;

pub use queue::{
    FullPolicy, PushOutcome, QueueLimits, QueueStats, SendQueue, TooLarge,
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES,
};
#[cfg(feature = "json")]
pub use router::{
    encode_frame, type_key, Dispatch, EncodeFrameError, Route, Router, DEFAULT_MAX_FRAME_LEN,
    HEADER_LEN,
};
pub use table::{
    Broadcast, CloseRequest, Config, Direction, Event, LeaveReason, PeerId, PeerInfo, PeerState,
    PeerStats, PeerTable, Received, RefuseReason, SendError, Sent, TableStats, Transmit, Verdict,
    DEFAULT_MAX_EVENTS, DEFAULT_MAX_PEERS, DEFAULT_TRANSMIT_BATCH,
};
pub use tick::{Tick, Ticker, DEFAULT_TICK_INTERVAL};
