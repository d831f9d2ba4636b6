//! The errors of a framed stream, split by whose fault they are.
//!
//! * [`ProtocolError`]: the peer broke the protocol. The stream is terminal
//!   from then on and every later fallible call returns the same error.
//! * The other variants of [`StreamError`] and [`SendError`]: the caller
//!   misused the API or asked for something that cannot be sent. Nothing
//!   changed; the stream is as it was before the call.

use core::fmt;

use crate::framing::{EncodeError, FrameError};

/// The peer broke the protocol. After one of these the stream is in a
/// terminal state: [`handle_input`](super::BorrowedFramedStream::handle_input),
/// [`handle_eof`](super::BorrowedFramedStream::handle_eof),
/// [`poll_event`](super::BorrowedFramedStream::poll_event) and
/// [`send`](super::BorrowedFramedStream::send) all return this same error again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProtocolError {
    /// The framing rejected the bytes.
    Frame(FrameError),
    /// The peer closed its sending side inside a frame.
    Truncated {
        /// Bytes of the unfinished frame that had arrived.
        have: usize,
        /// The frame's total size, if the framing knew it (for a header that
        /// was itself cut short: the bytes needed for the next decision).
        need: Option<usize>,
    },
    /// A frame does not fit the receive buffer.
    FrameExceedsBuffer {
        /// The bytes the frame needs, if the framing knows (a length prefix
        /// does). `None`: the buffer filled up to `capacity` without the
        /// framing finding the end of the frame.
        need: Option<usize>,
        /// The receive buffer's limit (`max_buffered`, or the length of the
        /// caller's receive slice).
        capacity: usize,
    },
}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> Self {
        ProtocolError::Frame(e)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(e) => fmt::Display::fmt(e, f),
            ProtocolError::Truncated {
                have,
                need: Some(need),
            } => write!(
                f,
                "peer closed inside a frame: {have} of {need} bytes received"
            ),
            ProtocolError::Truncated { have, need: None } => write!(
                f,
                "peer closed inside a frame: {have} bytes of an unfinished frame received"
            ),
            ProtocolError::FrameExceedsBuffer {
                need: Some(need),
                capacity,
            } => write!(
                f,
                "frame needs {need} bytes, over the receive buffer limit of {capacity}"
            ),
            ProtocolError::FrameExceedsBuffer {
                need: None,
                capacity,
            } => write!(
                f,
                "receive buffer limit of {capacity} bytes reached inside a frame"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Frame(e) => Some(e),
            _ => None,
        }
    }
}

/// An error of the receive side ([`handle_input`](super::BorrowedFramedStream::handle_input),
/// [`commit_received`](super::BorrowedFramedStream::commit_received),
/// [`handle_eof`](super::BorrowedFramedStream::handle_eof),
/// [`poll_event`](super::BorrowedFramedStream::poll_event)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StreamError {
    /// The peer broke the protocol (terminal; repeated on every later call).
    Protocol(ProtocolError),
    /// Local misuse: input was handed in after
    /// [`handle_eof`](super::BorrowedFramedStream::handle_eof). Nothing was taken.
    InputAfterEof,
    /// Local misuse: more bytes were committed than the receive buffer had
    /// spare. Nothing was committed.
    CommitExceedsSpare {
        /// Bytes the caller tried to commit.
        committed: usize,
        /// Spare bytes the receive buffer offered.
        spare: usize,
    },
}

impl StreamError {
    /// The peer's protocol error, if this is one (rather than local misuse).
    pub fn protocol(&self) -> Option<ProtocolError> {
        match self {
            StreamError::Protocol(e) => Some(*e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for StreamError {
    fn from(e: ProtocolError) -> Self {
        StreamError::Protocol(e)
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Protocol(e) => fmt::Display::fmt(e, f),
            StreamError::InputAfterEof => f.write_str("input handed in after end of stream"),
            StreamError::CommitExceedsSpare { committed, spare } => write!(
                f,
                "committed {committed} received bytes, but only {spare} were spare"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StreamError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

/// An error of the send side ([`send`](super::BorrowedFramedStream::send),
/// [`advance_transmit`](super::BorrowedFramedStream::advance_transmit)). Except for
/// [`SendError::Protocol`] these are local: nothing was queued, the stream is
/// unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SendError {
    /// The framing cannot send this payload. `BufferTooSmall { required }`
    /// means the whole frame is larger than the output queue can ever hold
    /// (the caller's transmit slice, or `max_queued`).
    Encode(EncodeError),
    /// The frame would fit an empty queue but not next to what is queued now:
    /// write some of the queued bytes out and try again.
    QueueFull {
        /// Bytes queued now.
        queued: usize,
        /// Bytes the frame needs.
        required: usize,
        /// The queue's limit.
        max: usize,
    },
    /// [`close`](super::BorrowedFramedStream::close) was called; nothing more can be sent.
    Closed,
    /// [`advance_transmit`](super::BorrowedFramedStream::advance_transmit) reported more
    /// bytes written than were queued. Nothing was dropped.
    AdvancePastQueued {
        /// Bytes reported written.
        written: usize,
        /// Bytes queued.
        queued: usize,
    },
    /// The peer broke the protocol earlier; the stream is terminal.
    Protocol(ProtocolError),
}

impl From<EncodeError> for SendError {
    fn from(e: EncodeError) -> Self {
        SendError::Encode(e)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Encode(e) => fmt::Display::fmt(e, f),
            SendError::QueueFull {
                queued,
                required,
                max,
            } => write!(
                f,
                "output queue full: {queued} bytes queued, a frame of {required} would exceed the limit of {max}"
            ),
            SendError::Closed => f.write_str("send after close"),
            SendError::AdvancePastQueued { written, queued } => write!(
                f,
                "{written} bytes reported written, but only {queued} were queued"
            ),
            SendError::Protocol(e) => write!(f, "stream failed earlier: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Encode(e) => Some(e),
            SendError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}
