//! Blocking cs.packetstream connections: the std driver of
//! [`framewire::packet::Connection`].
//!
//! A [`PacketConnection`] is symmetric like the original's: one connection
//! can both send requests ([`call`](PacketConnection::call),
//! [`submit`](PacketConnection::submit)) and serve the peer's (a
//! [`Handler`] given to the [`Builder`]). Every protocol rule — tags,
//! matching, failure responses, ERQ/EOF, the orderly close, limits — is the
//! core's; this module only moves bytes, time and events:
//!
//! * **reading** is done by one thread at a time, whichever holds the *read
//!   role*: it feeds the core, routes responses to their waiting callers,
//!   queues requests for the workers, and stops reading while the core's
//!   limits say so (backpressure). A caller waiting for its response takes
//!   the role itself when nobody else reads (with the stream's read timeout
//!   set from its deadline, see [`Split::set_read_timeout`]), so a
//!   synchronous round trip costs no thread switch beyond the transport's;
//!   an idle worker reads the next request and runs it itself; the
//!   background **reader thread** reads when nobody else does — it takes the
//!   role once it has been free for [`READ_LINGER`] (at once when the
//!   connection starts, closes or fails), so the peer's bytes never wait
//!   longer than that unread. A caller that finds another thread reading
//!   gets its response handed over (and is offered the role when that
//!   thread stops);
//! * **writes** are done by whichever thread changed the connection (a
//!   caller, a worker), one at a time, everything queued in one write — no
//!   `packet_grace` sleep. Output reading causes (failure responses, ERQ,
//!   EOF) goes through a small writer thread so a reader never blocks on a
//!   write;
//! * **handlers** run on a bounded pool of worker threads (default
//!   [`DEFAULT_WORKERS`], like the original's `Later(4)`); requests waiting
//!   for a worker are bounded by the core's
//!   [`max_inflight_inbound`](framewire::packet::Config::max_inflight_inbound),
//!   and responses go out in completion order;
//! * **time** is `std::time::Instant` relative to the connection's start;
//!   a caller waiting for a response with a timeout wakes itself at its
//!   deadline and tells the core.
//!
//! **Threads and memory** per connection: the background reader; the
//! writer (started at its first use); up to [`Builder::workers`] handler
//! threads, started as requests arrive (none without a handler). Besides the core's buffers
//! (bounded by its [`Config`]), the read buffer ([`DEFAULT_READ_BUFFER`])
//! and a write staging buffer (at most 256 KiB while writing, at most 64 KiB
//! kept). All threads end when the connection does; dropping it joins the
//! reader and writer.
//!
//! A handler may make calls on its own connection (a calling worker reads
//! like any caller), but must not `close` it: the close waits for
//! the handler's own response and would only end at the close timeout.
//!
//! Differences from the original worth knowing: a call outstanding when the
//! peer goes away fails with [`CallError::Cancelled`] (the original's caller
//! hangs); [`close`](PacketConnection::close) is bounded by a timeout; a
//! handler that panics is answered `exception during handler` like one that
//! fails.
//!
//! ```
//! use framewire_std::packet::{Builder, PacketConnection, Request};
//! use std::os::unix::net::UnixStream;
//!
//! let (a, b) = UnixStream::pair()?;
//! // A server: requests of type 0 are echoed with their flags.
//! let server = Builder::new()
//!     .handler(|rq: Request| (rq.flags, rq.payload))
//!     .start(b)?;
//! let client = PacketConnection::new(a)?;
//!
//! let response = client.call(0, 5, &b"hello"[..])?;
//! assert!(response.ok);
//! assert_eq!((response.flags, &response.payload[..]), (5, &b"hello"[..]));
//!
//! // Many requests in flight at once.
//! let pending: Vec<_> = (0..10u8)
//!     .map(|i| client.submit(0, 0, vec![i]))
//!     .collect::<Result<_, _>>()?;
//! for (i, call) in pending.into_iter().enumerate() {
//!     assert_eq!(call.wait()?.payload[..], [i as u8]);
//! }
//!
//! client.close()?; // ERQ, EOF, the peer's EOF
//! server.wait()?; // the server side finished too
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod connection;
mod error;
mod handler;
mod pool;
mod reading;
mod server;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub use self::client::{PendingCall, Response};
pub use self::connection::{
    Builder, PacketConnection, DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_INFLIGHT, DEFAULT_READ_BUFFER,
    DEFAULT_WORKERS,
};
pub use self::error::{CallError, CloseError, EndCause};
pub use self::handler::{Handler, HandlerError, IntoOutcome, Reply, Request};
pub use self::reading::READ_LINGER;
pub use self::server::PacketServer;
pub use framewire::packet::{Config, Stats};

/// A byte stream that can be used from two threads at once — one reading,
/// one writing — and shut down from a third, as sockets can.
///
/// Implemented for [`TcpStream`] and [`UnixStream`].
pub trait Split: Read + Write + Send + Sync + Sized + 'static {
    /// Another handle on the same stream (e.g. `try_clone`).
    fn try_split(&self) -> io::Result<Self>;

    /// Shuts down one or both directions; a thread blocked reading or
    /// writing the stream must return.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;

    /// Called once before use. The default does nothing; for TCP it sets
    /// `TCP_NODELAY`, since the connection coalesces its own writes and
    /// Nagle's algorithm would only delay them.
    fn prepare(&self) -> io::Result<()> {
        Ok(())
    }

    /// Sets the read timeout of the stream (of every handle on it, as for
    /// sockets): a read blocked longer returns `WouldBlock` or `TimedOut`.
    /// `None` blocks without limit; `Some` is never zero.
    ///
    /// A caller waiting for its response with a deadline reads the stream
    /// itself only if this works. The default returns
    /// [`io::ErrorKind::Unsupported`]: such callers then leave reading to
    /// other threads.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let _ = timeout;
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Split for TcpStream {
    fn try_split(&self) -> io::Result<Self> {
        self.try_clone()
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }

    fn prepare(&self) -> io::Result<()> {
        self.set_nodelay(true)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

#[cfg(unix)]
impl Split for UnixStream {
    fn try_split(&self) -> io::Result<Self> {
        self.try_clone()
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        UnixStream::set_read_timeout(self, timeout)
    }
}
