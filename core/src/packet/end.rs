//! Why a driven connection ended: the vocabulary the std and Tokio drivers
//! share.

use core::fmt;
use std::io;

use super::ProtocolError;

/// Why a connection driven over a transport ended (the peer's stream, the
/// transport, or this side giving up). Reported by the drivers in
/// `framewire-std` and `framewire-tokio`, and carried by their call errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndCause {
    /// The peer sent its EOF packet (an orderly end).
    EofPacket,
    /// The transport ended between packets without an EOF packet.
    TransportEof,
    /// The peer broke the protocol (including a transport end inside a
    /// packet).
    Protocol(ProtocolError),
    /// Reading or writing the transport failed.
    Io(io::ErrorKind),
    /// This side gave up: the driver's close timeout passed, or it was told
    /// to abort.
    Aborted,
}

impl fmt::Display for EndCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndCause::EofPacket => f.write_str("the peer closed the connection"),
            EndCause::TransportEof => f.write_str("the transport ended without an EOF packet"),
            EndCause::Protocol(e) => write!(f, "peer protocol error: {e}"),
            EndCause::Io(kind) => write!(f, "transport failed: {kind}"),
            EndCause::Aborted => f.write_str("the connection was aborted on this side"),
        }
    }
}
