//! Async cs.packetstream connections: the Tokio driver of
//! [`framewire::packet::Connection`].
//!
//! A [`PacketConnection`] is symmetric like the original's: the same
//! connection sends requests ([`call`](PacketConnection::call),
//! [`request`](PacketConnection::request)) and serves the peer's (a
//! [`Handler`] given to the [`Builder`]). [`serve`] runs a server of many such
//! connections. Every protocol rule — tags, matching, failure responses,
//! ERQ/EOF, the orderly close, limits — is the core's; this module moves
//! bytes, time and events:
//!
//! * **One driver task per connection** owns the core and the transport. It
//!   reads into its buffer ([`DEFAULT_READ_BUFFER`]) and feeds the core (which
//!   stops taking bytes while its limits say so: back-pressure), routes
//!   responses to their callers, runs the handlers of peer requests, and writes
//!   everything the core has queued with vectored writes — one `writev` per
//!   wakeup however many packets are queued (no `packet_grace` sleep).
//! * **Calls** are `'static` futures ([`Call`]) that talk to the driver through
//!   a command queue; any number can be in flight. At most
//!   [`Config::max_pending_outbound`] (default 1024) wait for responses at
//!   once: the next caller waits for a slot instead of failing, as it does
//!   while the core's transmit queue is full. Dropping a call abandons the
//!   request in the core.
//! * **Batches** ([`call_batch`](PacketConnection::call_batch)): many
//!   requests in one command, their outcomes delivered together with one
//!   wakeup — the fast path for pipelined small requests (no future, channel
//!   message or wakeup per request). Same limits, timeouts and abandon on
//!   drop as calls.
//! * **Time**: Tokio's clock relative to the connection's start is the core's
//!   clock. The driver arms one timer from the core's `poll_timeout` and
//!   calls `handle_timeout` when it fires, which ends the calls whose
//!   timeout passed ([`CallError::TimedOut`]).
//! * **Handlers** run concurrently, at most
//!   [`Builder::max_concurrent_handlers`] per connection (default
//!   [`DEFAULT_MAX_CONCURRENT_HANDLERS`]); requests waiting for a slot are
//!   bounded by [`Config::max_inflight_inbound`] (default 256), beyond which
//!   the connection stops reading. On a multi-threaded runtime each runs in
//!   its own task. On a current-thread runtime the driver polls each handler
//!   once itself first, and only one that has to wait gets a task
//!   ([`Builder::inline_handlers`] chooses either). A handler that fails or
//!   panics, or whose reply cannot be sent, is answered `exception during
//!   handler`.
//! * **Closing**: [`close`](PacketConnection::close) (or the peer's end, or
//!   dropping the last owning handle) runs the core's orderly close — ERQ,
//!   the responses still owed, EOF, the peer's EOF — bounded by
//!   [`Builder::close_timeout`] (default [`DEFAULT_CLOSE_TIMEOUT`]).
//!
//! **Memory per connection**: the core's buffers (bounded by its [`Config`]),
//! the read buffer, one entry per call in flight and one task per peer
//! request in flight.
//!
//! Differences from the original worth knowing: a call outstanding when the
//! peer goes away fails with [`CallError::Cancelled`] (the original's caller
//! hangs); closing is bounded by a timeout.
//!
//! ```
//! use framewire_tokio::packet::{Builder, PacketConnection, Reply, Request};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
//! let (a, b) = tokio::io::duplex(64 * 1024);
//! // A server: requests are echoed with their flags.
//! let server = Builder::new()
//!     .handler(|rq: Request| async move { Reply::with_flags(rq.flags, rq.payload) })
//!     .start(b)?;
//! let client = PacketConnection::new(a)?;
//!
//! let response = client.call(0, 0, 5, &b"hello"[..]).await?;
//! assert!(response.ok);
//! assert_eq!((response.flags, &response.payload[..]), (5, &b"hello"[..]));
//!
//! // Many requests in flight at once.
//! let calls: Vec<_> = (0..10u8).map(|i| client.call(0, 0, 0, vec![i])).collect();
//! for (i, call) in calls.into_iter().enumerate() {
//!     assert_eq!(call.await?.payload[..], [i as u8]);
//! }
//!
//! client.close().await?; // ERQ, EOF, the peer's EOF
//! server.wait().await?; // the other side finished too
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod batches;
mod connection;
mod driver;
mod error;
mod handler;
mod mailbox;
mod runs;
mod server;
mod tasks;
#[cfg(test)]
mod tests;

pub use self::batch::{Batch, BatchRequest};
pub use self::connection::{
    Builder, Call, CallBuilder, PacketConnection, Response, DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_CONCURRENT_HANDLERS, DEFAULT_READ_BUFFER,
};
pub use self::error::{CallError, CloseError, EndCause};
pub use self::handler::{Handler, InPlaceAnswer, Reply, Request};
pub use self::server::{
    serve, PacketServer, ServeOptions, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_HANDLERS,
};
pub use framewire::packet::{Answerer, Config, LentRequest, State, Stats};
