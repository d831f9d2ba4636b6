//! cs.packetstream connections over a smoltcp TCP socket: [`PacketSocket`].

use core::fmt;

use framewire::packet::{
    BorrowedConfig, BorrowedConnection, BorrowedEvent, ChannelError, ConfigError, InputError,
    RespondError, State, SubmitError,
};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

use crate::error::Error;
use crate::link::{Endpoint, Link, LinkStats, Progress, PumpError};
use crate::time::{duration_to_core, earliest, from_core, to_core};

/// The connection and its receive buffer's length (which the core does not
/// report), as the pump sees them.
struct Conn<'a, const P: usize, const I: usize, const C: usize, const T: usize> {
    conn: BorrowedConnection<'a, P, I, C, T>,
    rx_len: usize,
}

impl<const P: usize, const I: usize, const C: usize, const T: usize> Endpoint
    for Conn<'_, P, I, C, T>
{
    type Error = InputError;

    fn wants_input(&self) -> bool {
        // After the peer's EOF packet the core takes (and ignores) anything;
        // after a protocol error it takes nothing more.
        self.conn.protocol_error().is_none()
            && (self.conn.peer_closed().is_some() || self.conn.receive_used() < self.rx_len)
    }

    fn input(&mut self, bytes: &[u8]) -> Result<usize, InputError> {
        self.conn.handle_input(bytes)
    }

    fn eof(&mut self) -> Result<(), InputError> {
        self.conn.handle_eof();
        Ok(())
    }

    fn pending(&self) -> Option<&[u8]> {
        self.conn.poll_transmit()
    }

    fn advance(&mut self, n: usize) {
        self.conn.advance_transmit(n);
    }

    fn queued(&self) -> usize {
        self.conn.transmit_len()
    }

    fn send_finished(&self) -> bool {
        // As the std driver: our EOF is out and the peer's stream has ended.
        self.conn.state() == State::Closed && self.conn.transmit_len() == 0
    }

    fn connection_lost(&mut self) {
        // Nothing queued can be sent and no more bytes will come: the core
        // drops its output, stops waiting for transmit room (a core stalled
        // on a refusal would otherwise never see the end) and cancels our
        // waiting requests (`RequestCancelled`) instead of leaving them to
        // hang. (Found by the `borrowed_connection` fuzz target.)
        self.conn.handle_transport_lost();
    }
}

/// A cs.packetstream connection over a smoltcp [`tcp::Socket`]: the core's
/// no-alloc [`BorrowedConnection`] (requests, responses, tags, failure
/// texts, ERQ/EOF, the orderly close, timeouts, limits) plus the few bytes
/// the driver remembers about the socket. No allocation.
///
/// Capacities are the const generics (as [`BorrowedConnection`]): `P` of our
/// requests waiting for responses, `I` of the peer's requests in flight, `C`
/// extra channels (default 4), `T` remembered peer tags (default 16). The
/// receive buffer bounds a packet (and the default packet limit); the
/// transmit buffer bounds the queued output.
///
/// Time is smoltcp's [`Instant`] and [`Duration`], converted for the core
/// ([`crate::time`]): give [`poll_socket`](Self::poll_socket) and
/// [`submit`](Self::submit) the same clock the interface polls with.
///
/// # Main loop
///
/// 1. `iface.poll(now, &mut device, &mut sockets)`.
/// 2. [`poll_socket(socket, now)`](Self::poll_socket): expired request
///    deadlines, bytes from the socket into the core, queued bytes into
///    the socket.
/// 3. [`poll_event`](Self::poll_event) until `None`; answer requests with
///    [`respond`](Self::respond) (copy the payload first: it borrows the
///    receive buffer), [`submit`](Self::submit) new ones. On
///    `NoRoom` errors, poll the socket and the interface, then retry.
/// 4. [`poll_socket`](Self::poll_socket) again if anything was queued or
///    polled, then sleep for
///    `earliest(iface.poll_delay(now, &sockets), conn.poll_delay(now, socket))`:
///    [`poll_delay`](Self::poll_delay) includes the core's next request
///    deadline.
///
/// ```
/// use framewire::packet::BorrowedConfig;
/// use framewire_smoltcp::PacketSocket;
/// use smoltcp::time::Instant;
///
/// let (mut rx, mut tx) = ([0u8; 512], [0u8; 512]);
/// let mut conn = PacketSocket::<4, 4>::new(BorrowedConfig::default(), &mut rx, &mut tx).unwrap();
/// let tag = conn.submit(0, 0, 0, b"ping", Instant::from_millis(0), None).unwrap();
/// assert_eq!(tag, 2);
/// assert_eq!(conn.connection().transmit_len(), 8);
/// ```
pub struct PacketSocket<'a, const P: usize, const I: usize, const C: usize = 4, const T: usize = 16>
{
    ep: Conn<'a, P, I, C, T>,
    link: Link,
}

impl<'a, const P: usize, const I: usize, const C: usize, const T: usize>
    PacketSocket<'a, P, I, C, T>
{
    /// The RAM this connection uses besides the smoltcp socket: the driver
    /// value (the core connection with its fixed tables, and the socket
    /// state) plus buffers of `rx_len` and `tx_len` bytes. Nothing else is
    /// ever allocated. See the [crate documentation](crate#ram-per-connection).
    pub const fn ram_bytes(rx_len: usize, tx_len: usize) -> usize {
        rx_len + tx_len + core::mem::size_of::<Self>()
    }

    /// A connection receiving into `rx` and queueing output in `tx`.
    ///
    /// Errors: as [`BorrowedConnection::new`] (the packet limit exceeds
    /// `rx`, `tx` is shorter than
    /// [`MIN_TRANSMIT_BUFFER`](framewire::packet::MIN_TRANSMIT_BUFFER), or
    /// `I` is 0 while requests are accepted).
    pub fn new(
        config: BorrowedConfig,
        rx: &'a mut [u8],
        tx: &'a mut [u8],
    ) -> Result<Self, ConfigError> {
        let rx_len = rx.len();
        Ok(PacketSocket {
            ep: Conn {
                conn: BorrowedConnection::new(config, rx, tx)?,
                rx_len,
            },
            link: Link::default(),
        })
    }

    /// Tells the core the time (`now`: request deadlines at or before it
    /// end with `RequestTimedOut`), then moves bytes: everything the socket
    /// has received that the core can take (calling smoltcp's `recv` again
    /// after the ring's wraparound), the peer's FIN, and everything queued
    /// that the socket's transmit buffer can take (partial sends resume on
    /// the next call). Sends our FIN once the orderly close is complete
    /// (our EOF packet out, the peer's stream ended). Returns what moved.
    ///
    /// Errors: [`Error::ConnectionLost`] when the connection ended without
    /// the peer's FIN or with output of ours undelivered (sticky); the core
    /// is then told the transport ended, so requests of ours still waiting
    /// end with `RequestCancelled`. Peer protocol errors come out of
    /// [`poll_event`](Self::poll_event) (`ProtocolError`); the driver stops
    /// reading then.
    pub fn poll_socket(
        &mut self,
        socket: &mut tcp::Socket<'_>,
        now: Instant,
    ) -> Result<Progress, Error<InputError>> {
        self.handle_timeout(now);
        let mut total = Progress::default();
        // Transmitting can let parsing resume (a failure response it owed
        // now fits), which frees receive room: go round while that happens.
        for _ in 0..4 {
            let progress = self.link.pump(&mut self.ep, socket).map_err(|e| match e {
                PumpError::Endpoint(e) => Error::Core(e),
                PumpError::Lost(lost) => Error::ConnectionLost(lost),
            })?;
            total.received += progress.received;
            total.sent += progress.sent;
            if !progress.any() || !self.link.wants_poll(&self.ep, socket) {
                break;
            }
        }
        Ok(total)
    }

    /// Tells the core the time without moving bytes: request deadlines at
    /// or before `now` end with `RequestTimedOut`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = to_core(now);
        if self.ep.conn.poll_timeout().is_some_and(|at| at <= now) {
            self.ep.conn.handle_timeout(now);
        }
    }

    /// The next event; a request's or response's payload borrows the
    /// receive buffer until the next call. See [`BorrowedConnection::poll_event`].
    pub fn poll_event(&mut self) -> Option<BorrowedEvent<'_>> {
        self.ep.conn.poll_event()
    }

    /// Queues a request (user type `rq_type`, `flags`, a copy of `payload`)
    /// on `channel`; returns its tag. With a `timeout` it ends with
    /// `RequestTimedOut` at `now + timeout` unless answered. It goes out on
    /// the next [`poll_socket`](Self::poll_socket). See
    /// [`BorrowedConnection::submit`] for the errors
    /// ([`SubmitError::NoRoom`]: transmit first, then retry).
    pub fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        self.ep.conn.submit(
            channel,
            rq_type,
            flags,
            payload,
            to_core(now),
            timeout.map(duration_to_core),
        )
    }

    /// Answers the peer's request `(channel, tag)` with `flags` and a copy
    /// of `payload`. See [`BorrowedConnection::respond`].
    pub fn respond(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: &[u8],
    ) -> Result<(), RespondError> {
        self.ep.conn.respond(channel, tag, flags, payload)
    }

    /// Answers the peer's request `(channel, tag)` with a failure carrying
    /// `reason`. See [`BorrowedConnection::reject`].
    pub fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError> {
        self.ep.conn.reject(channel, tag, reason)
    }

    /// Sends ERQ: no more requests from us. See
    /// [`BorrowedConnection::end_requests`].
    pub fn end_requests(&mut self) {
        self.ep.conn.end_requests();
    }

    /// Begins the orderly close (ERQ, owed responses, EOF; then our FIN once
    /// the peer's stream has ended too). See [`BorrowedConnection::close`].
    pub fn close(&mut self) {
        self.ep.conn.close();
    }

    /// Opens a channel besides 0. See [`BorrowedConnection::open_channel`].
    pub fn open_channel(&mut self, channel: u64) -> Result<(), ChannelError> {
        self.ep.conn.open_channel(channel)
    }

    /// When this driver wants [`poll_socket`](Self::poll_socket) called: the
    /// core's next request deadline, or `Some(Instant::ZERO)` (now, in the
    /// convention of smoltcp's `Interface::poll_at`) if a poll would move
    /// bytes, the peer's FIN, our FIN, or report a lost connection; `None`
    /// if only the network can change anything.
    ///
    /// Events already available are not counted: drain
    /// [`poll_event`](Self::poll_event) before asking.
    pub fn poll_at(&self, socket: &tcp::Socket<'_>) -> Option<Instant> {
        let io = self
            .link
            .wants_poll(&self.ep, socket)
            .then_some(Instant::ZERO);
        earliest(io, self.ep.conn.poll_timeout().map(from_core))
    }

    /// [`poll_at`](Self::poll_at) as a delay from `now`, to combine with
    /// `Interface::poll_delay`.
    pub fn poll_delay(&self, now: Instant, socket: &tcp::Socket<'_>) -> Option<Duration> {
        crate::time::delay_until(now, self.poll_at(socket))
    }

    /// Whether the socket's FIN has been handed to the core.
    pub fn peer_closed(&self) -> bool {
        self.link.eof
    }

    /// Whether the close is complete on our side and our FIN was queued.
    pub fn send_finished(&self) -> bool {
        self.link.fin_sent
    }

    /// The counters of bytes moved between the socket and the core.
    pub fn link_stats(&self) -> LinkStats {
        self.link.stats
    }

    /// The core connection (state, counters, getters).
    pub fn connection(&self) -> &BorrowedConnection<'a, P, I, C, T> {
        &self.ep.conn
    }

    /// The core connection, mutably (for the calls this driver does not
    /// wrap, e.g. `abandon`).
    pub fn connection_mut(&mut self) -> &mut BorrowedConnection<'a, P, I, C, T> {
        &mut self.ep.conn
    }
}

impl<const P: usize, const I: usize, const C: usize, const T: usize> fmt::Debug
    for PacketSocket<'_, P, I, C, T>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketSocket")
            .field("connection", &self.ep.conn)
            .field("peer_closed", &self.link.eof)
            .field("fin_sent", &self.link.fin_sent)
            .field("lost", &self.link.lost)
            .field("stats", &self.link.stats)
            .finish()
    }
}
