//! Limits and options of a packet `Connection`, and the configuration
//! errors of both connections.

use core::fmt;

use super::wire::EOF_BYTES;
#[cfg(feature = "alloc")]
use super::wire::{ParseLimits, DEFAULT_MAX_PACKET_LEN};
#[cfg(feature = "alloc")]
use crate::varint::VarintRules;

/// The smallest packet limit (`max_packet_len` of [`Config`] and
/// [`BorrowedConfig`](super::BorrowedConfig), length prefix included) a
/// connection accepts: 4 bytes, the length of the EOF and ERQ markers
/// (`03 00 02 00`, `03 01 02 00`), which every connection must be able to
/// send and receive to end its stream.
///
/// With exactly this limit a connection still works in the small: a
/// request with an empty payload on channel 0 with a tag and wire type
/// under 128 is 4 bytes (`03 02 02 01`), and every response and refusal
/// with an empty payload on channel 0 with a tag under 128 is 3 (the
/// connection's own refusals are cut to the limit, down to no text). A
/// smaller limit could never carry the end of the stream, so it is refused
/// with [`ConfigError::PacketLimitTooSmall`].
pub const MIN_MAX_PACKET_LEN: usize = EOF_BYTES.len();

/// Memory charged for each queued event on top of its payload, so that a
/// flood of empty packets is bounded by [`Config::max_receive_buffer`] too.
#[cfg(feature = "alloc")]
pub const EVENT_OVERHEAD: usize = 64;

/// Limits and options of a [`Connection`](super::Connection). Every quantity
/// the peer controls is bounded here; the defaults suit a general-purpose
/// server.
///
/// ```
/// use framewire::packet::Config;
/// let config = Config {
///     accept_requests: false, // a pure client: requests get "no request handler"
///     max_pending_outbound: 64,
///     ..Config::default()
/// };
/// assert!(config.validate().is_ok());
/// ```
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// The longest packet, length prefix included, accepted from the peer and
    /// allowed to be sent. Default [`DEFAULT_MAX_PACKET_LEN`] (16 MiB); at
    /// least [`MIN_MAX_PACKET_LEN`] (4, the EOF and ERQ markers). The
    /// original has no limit.
    pub max_packet_len: usize,
    /// How varints are read. Default: the original's leniency (leading `0x80`
    /// octets accepted), at most 10 octets.
    pub varint: VarintRules,
    /// Whether requests from the peer are delivered as
    /// [`Event::RequestReceived`](super::Event::RequestReceived). When `false`
    /// every request is answered `no request handler`, like an original
    /// `PacketConnection` without a `request_handler`. Default `true`.
    pub accept_requests: bool,
    /// Our requests awaiting a response, all channels together. Beyond it
    /// [`Connection::submit`](super::Connection::submit) fails with
    /// [`SubmitError::TooManyPending`](super::SubmitError::TooManyPending).
    /// Default 1024.
    pub max_pending_outbound: usize,
    /// Peer requests delivered and not yet answered. When reached, the
    /// connection stops reading at the next request that would be accepted
    /// (backpressure: `handle_input` takes fewer bytes) until one is answered.
    /// Default 256.
    pub max_inflight_inbound: usize,
    /// The largest tag accepted from the peer (a larger one is a protocol
    /// error) and used by us (then `submit` fails with
    /// [`SubmitError::TagsExhausted`](super::SubmitError::TagsExhausted)).
    /// Default `u64::MAX`.
    pub max_tag: u64,
    /// Bytes held for the peer: buffered input (partial packets) plus the
    /// payloads of events not yet polled, each event charged
    /// [`EVENT_OVERHEAD`] more. `handle_input` takes no more than fits. Must be
    /// at least `max_packet_len`. Default `max_packet_len + 64 KiB`.
    pub max_receive_buffer: usize,
    /// Bytes queued for transmission. While at least this much is queued,
    /// `submit` fails with
    /// [`SubmitError::TransmitFull`](super::SubmitError::TransmitFull) and
    /// input that would queue a failure response waits (a peer that does not
    /// read stops being read). Responses to accepted requests are always
    /// queued, so the queue can exceed it by the responses in flight (each at
    /// most `max_packet_len`). Default 1 MiB.
    pub max_transmit_buffer: usize,
    /// Channels that can be opened besides channel 0. Default 16.
    pub max_channels: usize,
    /// Completed peer tags remembered (all channels) above each channel's
    /// high-water mark, to refuse reuse. See the tag rules on
    /// [`Connection`](super::Connection). At least 1. Default 1024.
    pub max_remembered_tags: usize,
    /// Payloads up to this length are copied into the transmit buffer (so
    /// small packets coalesce into one contiguous slice); longer ones are
    /// queued as their own `Bytes` chunk without copying. Default 4096.
    pub copy_threshold: usize,
    /// When packets are parsed. `false` (default): as they arrive, in
    /// [`handle_input`](super::Connection::handle_input), each becoming a
    /// queued [`Event`](super::Event) whose payload is split off the receive
    /// buffer. `true`: as events are polled, one packet per event, so
    /// [`poll_lent`](super::Connection::poll_lent) can lend a payload
    /// straight from the receive buffer and
    /// [`poll_lent_answering`](super::Connection::poll_lent_answering) can
    /// answer a request in place, with no `Bytes` and no queued event per
    /// packet. The events, their order and the bytes sent are the same
    /// either way; what differs is when a packet's effects happen (a
    /// refusal is queued, a request counts as in flight, the peer's end is
    /// seen): on the poll that reaches it rather than on input. The
    /// receive budget ([`max_receive_buffer`](Self::max_receive_buffer))
    /// then counts the unparsed packets instead of the queued events.
    pub parse_on_poll: bool,
}

#[cfg(feature = "alloc")]
impl Default for Config {
    fn default() -> Self {
        Config {
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
            varint: VarintRules::default(),
            accept_requests: true,
            max_pending_outbound: 1024,
            max_inflight_inbound: 256,
            max_tag: u64::MAX,
            max_receive_buffer: DEFAULT_MAX_PACKET_LEN + 64 * 1024,
            max_transmit_buffer: 1024 * 1024,
            max_channels: 16,
            max_remembered_tags: 1024,
            copy_threshold: 4096,
            parse_on_poll: false,
        }
    }
}

/// A configuration that cannot work (a `Config`, or a
/// [`BorrowedConfig`](super::BorrowedConfig) with its buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_receive_buffer` is smaller than `max_packet_len`: a packet of the
    /// maximum length could never be received.
    ReceiveBufferTooSmall {
        /// The configured receive buffer.
        max_receive_buffer: usize,
        /// The configured packet length.
        max_packet_len: usize,
    },
    /// The packet limit is under [`MIN_MAX_PACKET_LEN`]: the EOF and ERQ
    /// markers (4 bytes each), which end every stream, could neither be sent
    /// nor received.
    PacketLimitTooSmall {
        /// The configured packet limit (for a
        /// [`BorrowedConfig`](super::BorrowedConfig) without one: the
        /// receive buffer's length).
        max_packet_len: usize,
        /// The least that works ([`MIN_MAX_PACKET_LEN`]).
        min: usize,
    },
    /// A limit that must be at least 1 is 0.
    Zero {
        /// The field's name.
        field: &'static str,
    },
    /// [`BorrowedConnection`](super::BorrowedConnection): the transmit
    /// buffer cannot hold the longest failure response the connection may
    /// have to send plus ERQ and EOF.
    TransmitBufferTooSmall {
        /// The buffer's length.
        len: usize,
        /// The least that works
        /// ([`MIN_TRANSMIT_BUFFER`](super::MIN_TRANSMIT_BUFFER)).
        min: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ReceiveBufferTooSmall {
                max_receive_buffer,
                max_packet_len,
            } => write!(
                f,
                "max_receive_buffer {max_receive_buffer} is smaller than max_packet_len {max_packet_len}"
            ),
            ConfigError::PacketLimitTooSmall {
                max_packet_len,
                min,
            } => write!(
                f,
                "max_packet_len {max_packet_len} is under the minimum of {min} (the EOF and ERQ markers)"
            ),
            ConfigError::Zero { field } => write!(f, "{field} must be at least 1"),
            ConfigError::TransmitBufferTooSmall { len, min } => {
                write!(f, "transmit buffer of {len} bytes is under the minimum of {min}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// Refuses a packet limit under [`MIN_MAX_PACKET_LEN`] (both connections).
pub(crate) fn check_packet_limit(max_packet_len: usize) -> Result<(), ConfigError> {
    if max_packet_len < MIN_MAX_PACKET_LEN {
        return Err(ConfigError::PacketLimitTooSmall {
            max_packet_len,
            min: MIN_MAX_PACKET_LEN,
        });
    }
    Ok(())
}

#[cfg(feature = "alloc")]
impl Config {
    /// Checks that the limits are consistent: `max_packet_len` at least
    /// [`MIN_MAX_PACKET_LEN`]
    /// ([`PacketLimitTooSmall`](ConfigError::PacketLimitTooSmall)),
    /// `max_receive_buffer` at least `max_packet_len`
    /// ([`ReceiveBufferTooSmall`](ConfigError::ReceiveBufferTooSmall)), and
    /// `max_remembered_tags`, `max_inflight_inbound`, `max_pending_outbound`
    /// and `max_transmit_buffer` at least 1 ([`Zero`](ConfigError::Zero)).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_packet_limit(self.max_packet_len)?;
        if self.max_receive_buffer < self.max_packet_len {
            return Err(ConfigError::ReceiveBufferTooSmall {
                max_receive_buffer: self.max_receive_buffer,
                max_packet_len: self.max_packet_len,
            });
        }
        for (field, value) in [
            ("max_remembered_tags", self.max_remembered_tags),
            ("max_inflight_inbound", self.max_inflight_inbound),
            ("max_pending_outbound", self.max_pending_outbound),
            ("max_transmit_buffer", self.max_transmit_buffer),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { field });
            }
        }
        Ok(())
    }

    /// The wire parse limits this configuration implies.
    pub fn parse_limits(&self) -> ParseLimits {
        ParseLimits {
            max_packet_len: self.max_packet_len,
            varint: self.varint,
        }
    }
}
