//! Errors of the blocking packet connection.

use std::io;

use framewire::packet::SubmitError;

pub use framewire::packet::EndCause;

/// Why a call produced no response. (A *failure response* from the peer is
/// not an error here: it is a [`Response`](super::Response) with `ok ==
/// false`, as in the original.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The peer's stream ended before the response arrived; it never will.
    #[error("request cancelled: {cause}")]
    Cancelled {
        /// How the stream ended.
        cause: EndCause,
    },
    /// The request's timeout passed first. The request is forgotten: a late
    /// response is ignored.
    #[error("request timed out")]
    TimedOut,
    /// The request could not be sent (the peer is gone, this side ended its
    /// requests, a field or the payload is too large, …). Nothing was sent.
    #[error("cannot send request: {0}")]
    Submit(SubmitError),
    /// The transport failed while the request was being queued.
    #[error("connection failed: {cause}")]
    Failed {
        /// How the connection ended.
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

/// Why [`PacketConnection::close`](super::PacketConnection::close) did not
/// end in an orderly close. The connection is shut down either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// The close timeout passed before our EOF was written and the peer's
    /// stream ended; the transport was shut down.
    #[error("orderly close did not finish within {timeout:?}; transport shut down")]
    TimedOut {
        /// The close timeout.
        timeout: std::time::Duration,
    },
    /// The connection failed before the close completed.
    #[error("connection failed before the close completed: {cause}")]
    Failed {
        /// How it ended.
        cause: EndCause,
    },
}
