use std::io;

use framewire::stream::{ProtocolError, SendError, StreamError};

/// What went wrong in a blocking framed exchange.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol (the connection is unusable from now on);
    /// this includes a close inside a frame ([`ProtocolError::Truncated`]).
    #[error("peer protocol error: {0}")]
    Protocol(ProtocolError),
    /// This side misused the stream (e.g. input after end of stream).
    #[error("stream misuse: {0}")]
    Stream(StreamError),
    /// A payload could not be framed or queued.
    #[error("cannot send: {0}")]
    Send(SendError),
    /// A BSON document could not be encoded or decoded.
    #[cfg(feature = "bson")]
    #[error("BSON: {0}")]
    Bson(#[from] framewire::message::bson::BsonError),
}

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        match e.protocol() {
            Some(p) => Error::Protocol(p),
            None => Error::Stream(e),
        }
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Protocol(p) => Error::Protocol(p),
            other => Error::Send(other),
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(e) => e,
            Error::Protocol(ProtocolError::Truncated { .. }) => {
                io::Error::new(io::ErrorKind::UnexpectedEof, e)
            }
            Error::Protocol(_) => io::Error::new(io::ErrorKind::InvalidData, e),
            other => io::Error::new(io::ErrorKind::InvalidInput, other),
        }
    }
}
