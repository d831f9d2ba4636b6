//! The drivers' errors.

use core::fmt;

use smoltcp::socket::tcp;

/// The TCP connection ended without a clean close: the socket reached
/// `CLOSED` or `TIME-WAIT` before the peer's FIN arrived (a reset, a refused
/// or timed-out connect, a smoltcp timeout, or a local `abort`), or with
/// bytes of ours that will never be delivered.
///
/// Sticky: every later poll of the driver returns it again. Frames or
/// packets the core had already taken in are still delivered by its
/// `poll_event`; only bytes that never reached the core are lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLost {
    /// The socket's state when the loss was noticed.
    pub state: tcp::State,
    /// Bytes of ours not delivered: still queued in the core plus still in
    /// the socket's transmit buffer.
    pub unsent: usize,
    /// Whether the peer's FIN had arrived before (its data is complete).
    pub peer_closed: bool,
}

impl fmt::Display for ConnectionLost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.peer_closed {
            write!(
                f,
                "connection closed ({}) with {} bytes of ours unsent",
                self.state, self.unsent
            )
        } else {
            write!(
                f,
                "connection lost ({}) before the peer's FIN, {} bytes of ours unsent",
                self.state, self.unsent
            )
        }
    }
}

impl core::error::Error for ConnectionLost {}

/// An error of a driver's poll: the core's (`E`: the framed stream's
/// [`StreamError`](framewire::stream::StreamError), or the packet
/// connection's input error), or the TCP connection's loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The core refused the peer's bytes or its end of stream. For a peer
    /// protocol error the core is terminal and says so on every call.
    Core(E),
    /// The TCP connection ended without a clean close.
    ConnectionLost(ConnectionLost),
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Core(e) => fmt::Display::fmt(e, f),
            Error::ConnectionLost(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

impl<E> From<ConnectionLost> for Error<E> {
    fn from(e: ConnectionLost) -> Self {
        Error::ConnectionLost(e)
    }
}
