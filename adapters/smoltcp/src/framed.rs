//! Framed messages over a smoltcp TCP socket: [`FramedSocket`].

use core::fmt;

use framewire::framing::Framing;
use framewire::stream::{BorrowedFramedStream, Event, SendError, StreamError, StreamState};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};

use crate::error::Error;
use crate::link::{Endpoint, Link, LinkStats, Progress, PumpError};

/// A framed byte stream over a smoltcp [`tcp::Socket`], in buffers the
/// application lends: the core's [`BorrowedFramedStream`] plus the few
/// bytes the driver remembers about the socket. No allocation.
///
/// The driver does not own the socket (smoltcp keeps it in a `SocketSet`):
/// every call that moves bytes takes `&mut tcp::Socket`. Use one driver per
/// connection; to reuse a socket for a new connection, make a new driver.
///
/// # Buffers and limits
///
/// * `rx`: frames are reassembled here, so it must hold the largest frame
///   accepted, header included (a longer one fails the stream with
///   [`ProtocolError::FrameExceedsBuffer`](framewire::stream::ProtocolError::FrameExceedsBuffer)
///   as soon as its header is seen). Frames are borrowed from it.
/// * `tx`: frames are queued here until the socket's transmit buffer takes
///   them; it bounds the queued output and must hold the largest frame sent.
///
/// The socket's own buffers can be any size, much smaller than a frame:
/// frames cross them in pieces, wherever the ring wraps.
///
/// # Main loop
///
/// 1. `iface.poll(now, &mut device, &mut sockets)`.
/// 2. [`poll_socket`](Self::poll_socket): bytes from the socket into the
///    core, queued bytes into the socket.
/// 3. [`poll_event`](Self::poll_event) until `Ok(None)`; [`send`](Self::send)
///    replies. If a send reports [`SendError::QueueFull`], poll the socket
///    (and the interface) to make room, then send again.
/// 4. [`poll_socket`](Self::poll_socket) again if anything was sent or
///    drained, then sleep for
///    `earliest(iface.poll_delay(now, &sockets), framed.poll_delay(now, socket))`
///    ([`earliest`](crate::time::earliest)).
///
/// ```
/// use framewire::framing::LengthPrefixed;
/// use framewire_smoltcp::FramedSocket;
///
/// let (mut rx, mut tx) = ([0u8; 1024], [0u8; 1024]);
/// let mut framed = FramedSocket::new(LengthPrefixed::new(), &mut rx, &mut tx);
/// framed.send(b"hello").unwrap();
/// assert_eq!(framed.stream().queued_len(), 9); // 4-byte header + payload
/// ```
pub struct FramedSocket<'a, F> {
    stream: BorrowedFramedStream<'a, F>,
    link: Link,
}

impl<'a, F: Framing> FramedSocket<'a, F> {
    /// A driver framing with `framing`, reassembling frames in `rx` and
    /// queueing output in `tx`.
    ///
    /// # Panics
    ///
    /// If `rx` is empty.
    pub fn new(framing: F, rx: &'a mut [u8], tx: &'a mut [u8]) -> Self {
        Self::from_stream(BorrowedFramedStream::new(framing, rx, tx))
    }

    /// The RAM this connection uses besides the smoltcp socket: the driver
    /// value plus buffers of `rx_len` and `tx_len` bytes. Nothing else is
    /// ever allocated. See the [crate documentation](crate#ram-per-connection).
    pub const fn ram_bytes(rx_len: usize, tx_len: usize) -> usize {
        rx_len + tx_len + core::mem::size_of::<Self>()
    }

    /// A driver over an existing stream (which may already hold bytes).
    pub fn from_stream(stream: BorrowedFramedStream<'a, F>) -> Self {
        FramedSocket {
            stream,
            link: Link::default(),
        }
    }

    /// Moves bytes: everything the socket has received that the core's
    /// buffer can take (calling smoltcp's `recv` again after the ring's
    /// wraparound), the peer's FIN, and everything queued that the socket's
    /// transmit buffer can take (resuming partial sends on the next call).
    /// Sends our FIN once [`close`](Self::close) was called and the queue is
    /// empty. Returns what moved.
    ///
    /// Decoding happens in [`poll_event`](Self::poll_event), not here: call
    /// it after this, and call this again after draining events (frames
    /// make room in the core's buffer) and after sending.
    ///
    /// Errors: [`Error::ConnectionLost`] when the connection ended without
    /// the peer's FIN or with output of ours undelivered (sticky). A peer
    /// protocol error is reported by [`poll_event`](Self::poll_event), not
    /// here: the driver just stops reading.
    pub fn poll_socket(
        &mut self,
        socket: &mut tcp::Socket<'_>,
    ) -> Result<Progress, Error<StreamError>> {
        self.link
            .pump(&mut self.stream, socket)
            .map_err(|e| match e {
                PumpError::Endpoint(e) => Error::Core(e),
                PumpError::Lost(lost) => Error::ConnectionLost(lost),
            })
    }

    /// The next event: a frame (borrowed from the receive buffer until the
    /// next `&mut self` call), a skipped over-long frame, or the peer's
    /// clean close. See [`BorrowedFramedStream::poll_event`].
    pub fn poll_event(&mut self) -> Result<Option<Event<&[u8]>>, StreamError> {
        self.stream.poll_event()
    }

    /// The next frame, passing over skips and the close. See
    /// [`BorrowedFramedStream::poll_frame`].
    pub fn poll_frame(&mut self) -> Result<Option<&[u8]>, StreamError> {
        self.stream.poll_frame()
    }

    /// Frames `payload` into the transmit buffer, all or nothing; it goes
    /// out on the next [`poll_socket`](Self::poll_socket). See
    /// [`BorrowedFramedStream::send`] for the errors.
    pub fn send(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.stream.send(payload)
    }

    /// Ends our sending side: once everything queued is in the socket, the
    /// next [`poll_socket`](Self::poll_socket) closes the socket's sending
    /// half (our FIN). Receiving goes on until the peer closes.
    pub fn close(&mut self) {
        self.stream.close();
    }

    /// When this driver wants [`poll_socket`](Self::poll_socket) called:
    /// `Some(Instant::ZERO)` (that is, now, in the convention of smoltcp's
    /// `Interface::poll_at`) if a poll would move bytes, the peer's FIN, our
    /// FIN, or report a lost connection; `None` if only the network can
    /// change that. The framed stream has no timers of its own.
    ///
    /// Frames already in the core's buffer are not counted: drain
    /// [`poll_event`](Self::poll_event) before asking.
    pub fn poll_at(&self, socket: &tcp::Socket<'_>) -> Option<Instant> {
        self.link
            .wants_poll(&self.stream, socket)
            .then_some(Instant::ZERO)
    }

    /// [`poll_at`](Self::poll_at) as a delay from `now` (zero or `None`), to
    /// combine with `Interface::poll_delay`.
    pub fn poll_delay(&self, now: Instant, socket: &tcp::Socket<'_>) -> Option<Duration> {
        crate::time::delay_until(now, self.poll_at(socket))
    }

    /// Whether the peer's FIN was handed to the core.
    pub fn peer_closed(&self) -> bool {
        self.link.eof
    }

    /// Whether [`close`](Self::close) was called, everything queued went to
    /// the socket, and the socket's sending half was closed.
    pub fn send_finished(&self) -> bool {
        self.link.fin_sent
    }

    /// The counters of bytes moved between the socket and the core.
    pub fn link_stats(&self) -> LinkStats {
        self.link.stats
    }

    /// The core stream (state, counters, buffered and queued byte counts).
    pub fn stream(&self) -> &BorrowedFramedStream<'a, F> {
        &self.stream
    }

    /// The core stream, mutably (for the calls this driver does not wrap).
    pub fn stream_mut(&mut self) -> &mut BorrowedFramedStream<'a, F> {
        &mut self.stream
    }

    /// The core stream, giving up the driver.
    pub fn into_stream(self) -> BorrowedFramedStream<'a, F> {
        self.stream
    }
}

impl<F: Framing> Endpoint for BorrowedFramedStream<'_, F> {
    type Error = StreamError;

    fn wants_input(&self) -> bool {
        self.state() == StreamState::Open && self.buffered_len() < self.max_buffered()
    }

    fn input(&mut self, bytes: &[u8]) -> Result<usize, StreamError> {
        self.handle_input(bytes)
    }

    fn eof(&mut self) -> Result<(), StreamError> {
        self.handle_eof()
    }

    fn pending(&self) -> Option<&[u8]> {
        self.poll_transmit()
    }

    fn advance(&mut self, n: usize) {
        // `n` never exceeds what `pending` showed, so this cannot fail.
        let advanced = self.advance_transmit(n);
        debug_assert!(advanced.is_ok(), "advanced past the queue: {advanced:?}");
    }

    fn queued(&self) -> usize {
        self.queued_len()
    }

    fn send_finished(&self) -> bool {
        BorrowedFramedStream::send_finished(self)
    }
}

impl<F: fmt::Debug> fmt::Debug for FramedSocket<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramedSocket")
            .field("stream", &self.stream)
            .field("peer_closed", &self.link.eof)
            .field("fin_sent", &self.link.fin_sent)
            .field("lost", &self.link.lost)
            .field("stats", &self.link.stats)
            .finish()
    }
}
