//! Errors of the async packet connection.

use std::io;
use std::time::Duration;

use framewire::packet::SubmitError;

pub use framewire::packet::EndCause;

/// Why a call produced no response. (A *failure response* from the peer is
/// not an error: it is a [`Response`](super::Response) with `ok == false`, as
/// in the original.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer's stream ended before the response arrived; it never will.
    #[error("request cancelled: {cause}")]
    Cancelled {
        /// How the stream ended.
        cause: EndCause,
    },
    /// The request's timeout passed first (waiting for room to send counts
    /// too). The request is forgotten: a late response is ignored.
    #[error("request timed out")]
    TimedOut,
    /// The core refused to send the request (this side ended its requests,
    /// the channel is not open, a field or the payload is too large, ...).
    /// Nothing was sent.
    #[error("cannot send request: {0}")]
    Submit(SubmitError),
    /// The connection had ended (or ended while the request waited for room
    /// to be sent).
    #[error("connection ended: {cause}")]
    Failed {
        /// How it ended.
        cause: EndCause,
    },
}

impl From<CallError> for io::Error {
    fn from(e: CallError) -> Self {
        let kind = match e {
            CallError::Failed {
                cause: EndCause::Io(kind),
            } => kind,
            CallError::Cancelled { .. } | CallError::Failed { .. } => {
                io::ErrorKind::ConnectionAborted
            }
            CallError::TimedOut => io::ErrorKind::TimedOut,
            CallError::Submit(SubmitError::PeerGone) => io::ErrorKind::NotConnected,
            CallError::Submit(_) => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

/// Why a connection did not end in an orderly close
/// ([`PacketConnection::close`](super::PacketConnection::close),
/// [`PacketConnection::wait`](super::PacketConnection::wait)). The transport
/// is closed either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// The close timeout passed before our EOF was written and the peer's
    /// stream ended; the transport was dropped.
    #[error("orderly close did not finish within {timeout:?}; transport dropped")]
    TimedOut {
        /// The close timeout.
        timeout: Duration,
    },
    /// The connection failed before the close completed.
    #[error("connection failed before the close completed: {cause}")]
    Failed {
        /// How it ended.
        cause: EndCause,
    },
}
