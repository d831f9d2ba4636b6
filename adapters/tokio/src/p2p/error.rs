//! The node's errors.

use std::io;
use std::time::Duration;

use framewire::message::socktools::JsonError;
use framewire::p2p::{EncodeFrameError, RefuseReason, SendError, TooLarge};

/// Why a message was not sent or a handler not registered. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer cannot take it (unknown, connecting, closing, full queue under
    /// [`FullPolicy::Reject`](framewire::p2p::FullPolicy::Reject), too large).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The message could not be framed (not JSON-encodable, or over `max_frame_len`).
    #[error(transparent)]
    Encode(#[from] EncodeFrameError),
    /// A broadcast frame is longer than a send queue may hold.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// A message type that JSON cannot express (handler registration).
    #[error("message type cannot be written as JSON: {0}")]
    Type(#[source] JsonError),
}

/// Why [`Node::connect_to`](super::Node::connect_to) failed. The peer is not in the table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Refused before connecting: `good_peer`, the peer limit, or shutdown.
    #[error("not connecting: {0}")]
    Refused(#[from] RefuseReason),
    /// The address could not be resolved or the connect failed.
    #[error("connect failed: {0}")]
    Io(#[from] io::Error),
    /// The address resolved to nothing.
    #[error("the address resolved to nothing")]
    NoAddress,
    /// The connect took longer than the configured timeout.
    #[error("connect timed out after {0:?}")]
    TimedOut(Duration),
    /// The node closed the peer while it was connecting (shutdown).
    #[error("the node closed the peer while it was connecting")]
    Abandoned,
}
