//! What a packet connection reports, and its errors. The errors, [`State`]
//! and [`Stats`] are shared by `Connection` (feature `alloc`) and
//! [`BorrowedConnection`](super::BorrowedConnection); `Event` (feature
//! `alloc`) carries `Bytes` payloads, and
//! [`BorrowedEvent`](super::BorrowedEvent) borrowed ones.

use core::fmt;

#[cfg(feature = "alloc")]
use bytes::Bytes;

use super::wire::{FieldError, PacketError};

/// Something that happened on a connection, from
/// [`Connection::poll_event`](super::Connection::poll_event). Every event is
/// edge-triggered: it is reported once.
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The peer asks for something. Answer it with
    /// [`Connection::respond`](super::Connection::respond) or
    /// [`Connection::reject`](super::Connection::reject), in any order
    /// relative to other requests.
    RequestReceived {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
        /// The user request type (wire type minus one).
        rq_type: u64,
        /// The request flags, as the peer gave them.
        flags: u64,
        /// The request payload.
        payload: Bytes,
    },
    /// A response to one of our requests.
    ResponseReceived {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
        /// The ok bit. A failure has `ok == false`; its payload is the
        /// UTF-8 reason (see [`reason`](super::reason)).
        ok: bool,
        /// The response's user flags (`pflags >> 1`).
        flags: u64,
        /// The response payload.
        payload: Bytes,
    },
    /// One of our requests will never be answered: the peer's stream ended
    /// (EOF packet, transport EOF or protocol error) before its response.
    RequestCancelled {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
    },
    /// One of our requests passed its deadline. It is forgotten: a late
    /// response counts as an unknown response.
    RequestTimedOut {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
    },
    /// The peer sent ERQ: it sends no more requests, and any it sends now are
    /// refused with `requests no longer allowed`.
    PeerEndedRequests,
    /// The peer's stream ended cleanly. Reported once, and then
    /// [`Event::RequestCancelled`] for each of our requests still waiting.
    /// The connection then finishes its own side by itself (ERQ if not sent,
    /// the responses still owed, EOF).
    PeerClosed {
        /// How it ended.
        reason: PeerCloseReason,
    },
    /// A response whose `(channel, tag)` matches none of our waiting requests
    /// (never sent, answered already, timed out or abandoned). Counted in
    /// [`Stats::unknown_responses`]; the connection carries on.
    UnknownResponse {
        /// The response's channel.
        channel: u64,
        /// The response's tag.
        tag: u64,
    },
    /// The peer broke the protocol. This ends the receive side like an EOF
    /// (then [`Event::RequestCancelled`] for each waiting request) and the
    /// connection finishes its own side as after [`Event::PeerClosed`]. It is
    /// reported instead of `PeerClosed`.
    ProtocolError(ProtocolError),
    /// Our orderly close is complete: our EOF has been handed to the
    /// transport (through `advance_transmit`) and the peer's stream has ended.
    /// The driver may close the transport. Reported once, last.
    Closed,
}

/// How the peer's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PeerCloseReason {
    /// The EOF packet (`03 00 02 00`).
    EofPacket,
    /// The transport ended ([`Connection::handle_eof`](super::Connection::handle_eof))
    /// between packets, without an EOF packet.
    TransportEof,
}

/// The peer broke the protocol; the receive side is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ProtocolError {
    /// The bytes are not a valid packet.
    Packet(PacketError),
    /// A request with wire type 0 that is not exactly EOF or ERQ. The
    /// original logs "malformed EOF packet received" and stops reading as if
    /// at EOF; so do we, reporting it.
    MalformedMarker {
        /// The packet's channel.
        channel: u64,
        /// The packet's tag.
        tag: u64,
    },
    /// A tag above [`Config::max_tag`](super::Config::max_tag).
    TagTooLarge {
        /// The tag received.
        tag: u64,
        /// The configured maximum.
        max: u64,
    },
    /// The transport ended inside a packet.
    Truncated {
        /// Bytes of the packet received.
        have: usize,
        /// The packet's whole length, if its length prefix was complete.
        need: Option<usize>,
    },
}

impl From<PacketError> for ProtocolError {
    fn from(e: PacketError) -> Self {
        ProtocolError::Packet(e)
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Packet(e) => write!(f, "invalid packet: {e}"),
            ProtocolError::MalformedMarker { channel, tag } => write!(
                f,
                "malformed EOF packet received (request type 0 on channel {channel}, tag {tag})"
            ),
            ProtocolError::TagTooLarge { tag, max } => {
                write!(f, "tag {tag} over the maximum of {max}")
            }
            ProtocolError::Truncated {
                have,
                need: Some(need),
            } => {
                write!(f, "stream ended inside a packet: {have} of {need} bytes")
            }
            ProtocolError::Truncated { have, need: None } => write!(
                f,
                "stream ended inside a packet's length prefix ({have} bytes)"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ProtocolError {}

/// Why [`Connection::handle_input`](super::Connection::handle_input) refused
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum InputError {
    /// Local misuse: input after [`Connection::handle_eof`](super::Connection::handle_eof).
    AfterTransportEof,
    /// The peer broke the protocol earlier; the receive side is over.
    Failed(ProtocolError),
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::AfterTransportEof => f.write_str("input after the transport's end"),
            InputError::Failed(e) => write!(f, "connection failed: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for InputError {}

/// Why [`Connection::submit`](super::Connection::submit) did not send a
/// request. Nothing was queued and no tag was used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SubmitError {
    /// The peer's stream has ended (EOF, transport EOF or protocol error),
    /// or the transport is lost
    /// ([`Connection::handle_transport_lost`](super::Connection::handle_transport_lost),
    /// even while packets received before the loss are still being handled):
    /// no response could ever arrive.
    PeerGone,
    /// We sent ERQ ([`Connection::end_requests`](super::Connection::end_requests)
    /// or [`Connection::close`](super::Connection::close)).
    RequestsEnded,
    /// The channel is not open.
    UnknownChannel {
        /// The channel asked for.
        channel: u64,
    },
    /// A field cannot be encoded.
    Field(FieldError),
    /// [`Config::max_pending_outbound`](super::Config::max_pending_outbound)
    /// requests are already waiting for responses.
    TooManyPending {
        /// The limit.
        max: usize,
    },
    /// [`Config::max_transmit_buffer`](super::Config::max_transmit_buffer)
    /// bytes are already queued: write some out first.
    TransmitFull {
        /// Bytes queued.
        queued: usize,
        /// The limit.
        max: usize,
    },
    /// The packet would be longer than
    /// [`Config::max_packet_len`](super::Config::max_packet_len).
    PayloadTooLong {
        /// The packet's encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The channel's next tag would exceed [`Config::max_tag`](super::Config::max_tag).
    TagsExhausted {
        /// The channel.
        channel: u64,
    },
    /// [`BorrowedConnection`](super::BorrowedConnection) only: the packet
    /// does not fit in the free part of the transmit buffer; write some out
    /// first (if `required` exceeds the whole buffer less the 8 bytes kept
    /// for ERQ and EOF, it never will).
    NoRoom {
        /// The packet's encoded length.
        required: usize,
        /// Bytes free for it now.
        free: usize,
    },
}

impl From<FieldError> for SubmitError {
    fn from(e: FieldError) -> Self {
        SubmitError::Field(e)
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::PeerGone => {
                f.write_str("the peer's stream has ended or the transport is lost")
            }
            SubmitError::RequestsEnded => f.write_str("this side has ended its requests"),
            SubmitError::UnknownChannel { channel } => write!(f, "channel {channel} is not open"),
            SubmitError::Field(e) => write!(f, "{e}"),
            SubmitError::TooManyPending { max } => {
                write!(f, "{max} requests already waiting for responses")
            }
            SubmitError::TransmitFull { queued, max } => {
                write!(f, "transmit queue holds {queued} bytes (limit {max})")
            }
            SubmitError::PayloadTooLong { len, max } => {
                write!(f, "packet of {len} bytes over the limit of {max}")
            }
            SubmitError::TagsExhausted { channel } => {
                write!(f, "no tags left on channel {channel}")
            }
            SubmitError::NoRoom { required, free } => no_room(f, *required, *free),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SubmitError {}

/// Why [`Connection::respond`](super::Connection::respond) or
/// [`Connection::reject`](super::Connection::reject) did not answer. Nothing
/// was queued; the request is still in flight unless the error says it is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RespondError {
    /// No request with this `(channel, tag)` is waiting for our answer
    /// (never received, answered already, or refused by the connection).
    NotInFlight {
        /// The channel given.
        channel: u64,
        /// The tag given.
        tag: u64,
    },
    /// The flags cannot be encoded.
    Field(FieldError),
    /// The response would be longer than
    /// [`Config::max_packet_len`](super::Config::max_packet_len).
    PayloadTooLong {
        /// The packet's encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// [`BorrowedConnection`](super::BorrowedConnection) only: the response
    /// does not fit in the free part of the transmit buffer; write some out
    /// and answer again (the request stays in flight).
    NoRoom {
        /// The packet's encoded length.
        required: usize,
        /// Bytes free for it now.
        free: usize,
    },
}

fn no_room(f: &mut fmt::Formatter<'_>, required: usize, free: usize) -> fmt::Result {
    write!(
        f,
        "packet of {required} bytes does not fit the {free} bytes free in the transmit buffer"
    )
}

impl fmt::Display for RespondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespondError::NotInFlight { channel, tag } => {
                write!(f, "no request {channel}:{tag} awaits an answer")
            }
            RespondError::Field(e) => write!(f, "{e}"),
            RespondError::PayloadTooLong { len, max } => {
                write!(f, "packet of {len} bytes over the limit of {max}")
            }
            RespondError::NoRoom { required, free } => no_room(f, *required, *free),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for RespondError {}

/// Why [`Connection::open_channel`](super::Connection::open_channel) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ChannelError {
    /// [`Config::max_channels`](super::Config::max_channels) are open already.
    TooManyChannels {
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelError::TooManyChannels { max } => {
                write!(f, "{max} channels are open already")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ChannelError {}

/// The life cycle of a connection, from
/// [`Connection::state`](super::Connection::state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Both directions are open.
    Open,
    /// Closing: [`Connection::close`](super::Connection::close) was called or
    /// the peer's stream ended; ERQ, owed responses and EOF are on their way
    /// and/or the peer's EOF is awaited. A connection whose transport was
    /// lost before its EOF went out stays here (its output was dropped).
    Closing,
    /// Our EOF has been transmitted and the peer's stream has ended.
    Closed,
}

/// Counters of a connection, from [`Connection::stats`](super::Connection::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Stats {
    /// Packets parsed from the peer (markers included).
    pub packets_received: u64,
    /// Peer requests delivered as [`Event::RequestReceived`].
    pub requests_received: u64,
    /// Responses to our requests delivered as [`Event::ResponseReceived`].
    pub responses_received: u64,
    /// Responses matching none of our waiting requests.
    pub unknown_responses: u64,
    /// Requests we sent.
    pub requests_sent: u64,
    /// Answers we queued through `respond` / `reject` (an answer queued
    /// before a loss counts even if the loss dropped it unsent).
    pub responses_sent: u64,
    /// Peer requests the connection refused itself (every reason in
    /// [`reason`](super::reason) but the application's own rejections).
    pub requests_refused: u64,
    /// Of those, requests whose tag was in flight or used before.
    pub tags_reused: u64,
    /// Peer requests that get no answer on the wire: dropped because our
    /// EOF had already been queued, or because the transport was lost
    /// (`handle_transport_lost`): the refusals the connection would have
    /// made itself and the requests over the in-flight limit, handled after
    /// the loss, and the answers given through `respond` / `reject` after
    /// it (those requests were delivered, so they count in
    /// `requests_received` too, not in `responses_sent`).
    pub requests_dropped: u64,
    /// Our requests ended by [`Event::RequestTimedOut`].
    pub timed_out: u64,
    /// Our requests ended by [`Event::RequestCancelled`].
    pub cancelled: u64,
    /// Remembered peer tags forgotten to stay within
    /// [`Config::max_remembered_tags`](super::Config::max_remembered_tags).
    pub tags_forgotten: u64,
    /// Bytes taken by `handle_input`.
    pub bytes_received: u64,
    /// Bytes taken after the peer's EOF packet, and ignored.
    pub bytes_ignored: u64,
    /// Bytes handed to the transport (`advance_transmit`).
    pub bytes_sent: u64,
}
