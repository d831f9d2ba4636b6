//! The cs.packetstream connection without allocation: caller-owned receive
//! and transmit buffers, and fixed-capacity bookkeeping. See
//! [`BorrowedConnection`].

use core::fmt;

use super::config::{check_packet_limit, ConfigError};
use super::event::{
    ChannelError, InputError, PeerCloseReason, ProtocolError, RespondError, State, Stats,
    SubmitError,
};
use super::reason::{TagInUse, UNKNOWN_CHANNEL};
use super::rules::{self, Head, Kind, RxEnd, SendState, Transport};
use super::tags::{self, TagSet};
use super::wire::{Packet, ParseLimits, EOF, EOF_BYTES, ERQ, ERQ_BYTES, MAX_HEADER_LEN};
use crate::time::{Duration, Instant};
use crate::varint::VarintRules;

/// Unknown-response events held before parsing pauses until one is polled.
pub const UNKNOWN_RESPONSE_QUEUE: usize = 4;

/// Transmit bytes always kept free for ERQ and EOF (4 bytes each).
const MARKER_RESERVE: usize = 8;

/// The smallest transmit buffer a [`BorrowedConnection`] accepts: the
/// longest failure response it may have to send itself (`channel C: tag
/// already in use: N` with 20-digit numbers, 92 bytes) plus ERQ and EOF.
pub const MIN_TRANSMIT_BUFFER: usize = 92 + MARKER_RESERVE;

/// Options of a [`BorrowedConnection`]. Its capacities come from its const
/// generics and its buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BorrowedConfig {
    /// The longest packet, length prefix included, accepted from the peer
    /// and allowed to be sent. `None` (default): the receive buffer's
    /// length, which is also the most it may be. At least
    /// [`MIN_MAX_PACKET_LEN`](super::MIN_MAX_PACKET_LEN) (4, the EOF and ERQ
    /// markers).
    pub max_packet_len: Option<usize>,
    /// How varints are read. Default: the original's leniency.
    pub varint: VarintRules,
    /// Whether peer requests are delivered; when `false` each is answered
    /// `no request handler` (then `MAX_INFLIGHT` may be 0). Default `true`.
    pub accept_requests: bool,
    /// The largest tag accepted from the peer and used by us. Default
    /// `u64::MAX`.
    pub max_tag: u64,
}

impl Default for BorrowedConfig {
    fn default() -> Self {
        BorrowedConfig {
            max_packet_len: None,
            varint: VarintRules::default(),
            accept_requests: true,
            max_tag: u64::MAX,
        }
    }
}

/// Something that happened on a [`BorrowedConnection`], from
/// [`poll_event`](BorrowedConnection::poll_event): the same events as the
/// alloc connection's `Event`, with payloads borrowed from the receive
/// buffer (valid until the next call on the connection). Every event is
/// reported once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum BorrowedEvent<'a> {
    /// The peer asks for something; answer with
    /// [`respond`](BorrowedConnection::respond) or
    /// [`reject`](BorrowedConnection::reject), in any order.
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
        payload: &'a [u8],
    },
    /// A response to one of our requests.
    ResponseReceived {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
        /// The ok bit; a failure's payload is the UTF-8 reason.
        ok: bool,
        /// The response's user flags (`pflags >> 1`).
        flags: u64,
        /// The response payload.
        payload: &'a [u8],
    },
    /// One of our requests will never be answered: the peer's stream ended.
    RequestCancelled {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
    },
    /// One of our requests passed its deadline (a late response is unknown).
    RequestTimedOut {
        /// The request's channel.
        channel: u64,
        /// The request's tag.
        tag: u64,
    },
    /// The peer sent ERQ.
    PeerEndedRequests,
    /// The peer's stream ended cleanly (then a `RequestCancelled` per
    /// waiting request).
    PeerClosed {
        /// How it ended.
        reason: PeerCloseReason,
    },
    /// A response matching none of our waiting requests.
    UnknownResponse {
        /// The response's channel.
        channel: u64,
        /// The response's tag.
        tag: u64,
    },
    /// The peer broke the protocol; reported instead of `PeerClosed`.
    ProtocolError(ProtocolError),
    /// Our EOF was transmitted and the peer's stream has ended; reported
    /// once, last.
    Closed,
}

#[cfg(feature = "alloc")]
impl BorrowedEvent<'_> {
    /// The same event as the alloc connection's
    /// [`Event`](super::Event), its payload copied.
    pub fn to_event(&self) -> super::Event {
        self.to_event_with(bytes::Bytes::copy_from_slice)
    }

    /// The same event as the alloc connection's, its payload (if it has
    /// one) made by `payload`.
    pub(super) fn to_event_with(self, payload: impl FnOnce(&[u8]) -> bytes::Bytes) -> super::Event {
        use super::Event;
        match self {
            BorrowedEvent::RequestReceived {
                channel,
                tag,
                rq_type,
                flags,
                payload: p,
            } => Event::RequestReceived {
                channel,
                tag,
                rq_type,
                flags,
                payload: payload(p),
            },
            BorrowedEvent::ResponseReceived {
                channel,
                tag,
                ok,
                flags,
                payload: p,
            } => Event::ResponseReceived {
                channel,
                tag,
                ok,
                flags,
                payload: payload(p),
            },
            BorrowedEvent::RequestCancelled { channel, tag } => {
                Event::RequestCancelled { channel, tag }
            }
            BorrowedEvent::RequestTimedOut { channel, tag } => {
                Event::RequestTimedOut { channel, tag }
            }
            BorrowedEvent::PeerEndedRequests => Event::PeerEndedRequests,
            BorrowedEvent::PeerClosed { reason } => Event::PeerClosed { reason },
            BorrowedEvent::UnknownResponse { channel, tag } => {
                Event::UnknownResponse { channel, tag }
            }
            BorrowedEvent::ProtocolError(e) => Event::ProtocolError(e),
            BorrowedEvent::Closed => Event::Closed,
        }
    }
}

#[cfg(feature = "alloc")]
impl super::Event {
    /// The same event with its payload lent (what
    /// [`Connection::poll_lent`](super::Connection::poll_lent) returns).
    pub fn lend(&self) -> BorrowedEvent<'_> {
        use super::Event;
        match *self {
            Event::RequestReceived {
                channel,
                tag,
                rq_type,
                flags,
                ref payload,
            } => BorrowedEvent::RequestReceived {
                channel,
                tag,
                rq_type,
                flags,
                payload,
            },
            Event::ResponseReceived {
                channel,
                tag,
                ok,
                flags,
                ref payload,
            } => BorrowedEvent::ResponseReceived {
                channel,
                tag,
                ok,
                flags,
                payload,
            },
            Event::RequestCancelled { channel, tag } => {
                BorrowedEvent::RequestCancelled { channel, tag }
            }
            Event::RequestTimedOut { channel, tag } => {
                BorrowedEvent::RequestTimedOut { channel, tag }
            }
            Event::PeerEndedRequests => BorrowedEvent::PeerEndedRequests,
            Event::PeerClosed { reason } => BorrowedEvent::PeerClosed { reason },
            Event::UnknownResponse { channel, tag } => {
                BorrowedEvent::UnknownResponse { channel, tag }
            }
            Event::ProtocolError(e) => BorrowedEvent::ProtocolError(e),
            Event::Closed => BorrowedEvent::Closed,
        }
    }
}

// ----- fixed-capacity bookkeeping -----

/// A slot of `MAX_PENDING`: one of our requests.
#[derive(Clone, Copy, Debug)]
struct Pending {
    channel: u64,
    tag: u64,
    /// Microseconds; `u64::MAX` = no deadline.
    deadline: u64,
    state: PendingState,
}

#[derive(Clone, Copy, Debug)]
enum PendingState {
    Free,
    Waiting,
    /// Answered; the event is not polled yet. `payload` is an absolute
    /// receive-stream position.
    Response {
        seq: u32,
        ok: bool,
        flags: u64,
        payload: usize,
        len: usize,
    },
    Cancelled {
        seq: u32,
    },
    TimedOut {
        seq: u32,
    },
}

impl Pending {
    fn waiting(&self) -> bool {
        matches!(self.state, PendingState::Waiting)
    }
}

const NO_DEADLINE: u64 = u64::MAX;

const PENDING_FREE: Pending = Pending {
    channel: 0,
    tag: 0,
    deadline: NO_DEADLINE,
    state: PendingState::Free,
};

/// A slot of `MAX_INFLIGHT`: a peer request accepted, until it is both
/// answered and polled.
#[derive(Clone, Copy, Debug)]
struct Inflight {
    channel: u64,
    tag: u64,
    rq_type: u64,
    flags: u64,
    /// Absolute receive-stream position of the payload.
    payload: usize,
    len: usize,
    seq: u32,
    used: bool,
    answered: bool,
    unpolled: bool,
}

const INFLIGHT_FREE: Inflight = Inflight {
    channel: 0,
    tag: 0,
    rq_type: 0,
    flags: 0,
    payload: 0,
    len: 0,
    seq: 0,
    used: false,
    answered: false,
    unpolled: false,
};

impl Inflight {
    fn in_flight(&self) -> bool {
        self.used && !self.answered
    }
}

/// A channel: ours to send on and the peer's tags on it. Packed without
/// `Option`/`u128` so that every table entry is a multiple of 8 bytes with
/// 8-byte alignment on every target (the memory formula is then exact).
#[derive(Clone, Copy, Debug)]
struct Channel {
    id: u64,
    /// Our next tag, unless `tags_exhausted` (`u64::MAX` was used).
    next_tag: u64,
    /// Every peer tag below this counts as used (all of them if
    /// `floor_past_max`).
    floor: u64,
    open: bool,
    tags_exhausted: bool,
    floor_past_max: bool,
}

impl Channel {
    const CLOSED: Channel = Channel {
        id: 0,
        next_tag: 0,
        floor: 0,
        open: false,
        tags_exhausted: false,
        floor_past_max: false,
    };

    fn opened(id: u64, first_tag: u64) -> Channel {
        Channel {
            id,
            next_tag: first_tag,
            open: true,
            ..Channel::CLOSED
        }
    }

    fn next_tag(&self) -> Option<u64> {
        (!self.tags_exhausted).then_some(self.next_tag)
    }

    fn set_next_tag(&mut self, next: Option<u64>) {
        self.tags_exhausted = next.is_none();
        self.next_tag = next.unwrap_or(0);
    }

    fn floor(&self) -> u128 {
        if self.floor_past_max {
            1 << 64
        } else {
            u128::from(self.floor)
        }
    }

    fn set_floor(&mut self, floor: u128) {
        self.floor_past_max = floor > u128::from(u64::MAX);
        self.floor = floor as u64;
    }
}

/// A remembered peer tag above its channel's floor. `chan` is 0 for
/// channel 0 and `i + 1` for channel slot `i`.
#[derive(Clone, Copy, Debug)]
struct TagEntry {
    chan: usize,
    tag: u64,
}

const TAG_EMPTY: TagEntry = TagEntry { chan: 0, tag: 0 };

#[derive(Clone, Copy, Debug)]
struct Unknown {
    channel: u64,
    tag: u64,
    seq: u32,
}

const UNKNOWN_EMPTY: Unknown = Unknown {
    channel: 0,
    tag: 0,
    seq: 0,
};

/// The tables, borrowed from the generic wrapper so the engine's code is
/// compiled once whatever the capacities.
struct Tables<'t> {
    chan0: &'t mut Channel,
    channels: &'t mut [Channel],
    pending: &'t mut [Pending],
    inflight: &'t mut [Inflight],
    tags: &'t mut [TagEntry],
}

impl Tables<'_> {
    /// The index of an open channel: 0 for channel 0, `i + 1` for slot `i`.
    fn find_channel(&self, channel: u64) -> Option<usize> {
        if channel == 0 {
            return Some(0);
        }
        find_channel(self.channels, channel)
    }

    fn chan(&mut self, idx: usize) -> &mut Channel {
        match idx {
            0 => self.chan0,
            i => &mut self.channels[i - 1],
        }
    }

    fn find_inflight(&self, channel: u64, tag: u64) -> Option<usize> {
        self.inflight
            .iter()
            .position(|s| s.in_flight() && s.channel == channel && s.tag == tag)
    }

    fn find_waiting(&self, channel: u64, tag: u64) -> Option<usize> {
        self.pending
            .iter()
            .position(|p| p.waiting() && p.channel == channel && p.tag == tag)
    }
}

fn find_channel(channels: &[Channel], channel: u64) -> Option<usize> {
    if channel == 0 {
        return Some(0);
    }
    channels
        .iter()
        .position(|c| c.open && c.id == channel)
        .map(|i| i + 1)
}

fn waiting_count(pending: &[Pending]) -> usize {
    pending.iter().filter(|p| p.waiting()).count()
}

fn inflight_count(inflight: &[Inflight]) -> usize {
    inflight.iter().filter(|s| s.in_flight()).count()
}

fn earliest_deadline(pending: &[Pending]) -> Option<Instant> {
    pending
        .iter()
        .filter(|p| p.waiting() && p.deadline != NO_DEADLINE)
        .map(|p| p.deadline)
        .min()
        .map(Instant::from_micros)
}

/// One channel's view of the shared tag pool.
struct PoolView<'p> {
    entries: &'p mut [TagEntry],
    len: &'p mut usize,
    chan: usize,
}

impl PoolView<'_> {
    fn position(&self, tag: u64) -> Option<usize> {
        self.entries[..*self.len]
            .iter()
            .position(|e| e.chan == self.chan && e.tag == tag)
    }
}

impl TagSet for PoolView<'_> {
    fn contains(&self, tag: u64) -> bool {
        self.position(tag).is_some()
    }

    fn first(&self) -> Option<u64> {
        self.entries[..*self.len]
            .iter()
            .filter(|e| e.chan == self.chan)
            .map(|e| e.tag)
            .min()
    }

    fn remove(&mut self, tag: u64) -> bool {
        match self.position(tag) {
            Some(i) => {
                *self.len -= 1;
                self.entries[i] = self.entries[*self.len];
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, tag: u64) -> bool {
        if self.contains(tag) || *self.len == self.entries.len() {
            return false;
        }
        self.entries[*self.len] = TagEntry {
            chan: self.chan,
            tag,
        };
        *self.len += 1;
        true
    }
}

// ----- buffers -----

/// The receive buffer: `buf[hold..parse]` holds packets whose events are
/// not polled yet, `buf[parse..end]` unparsed bytes, the rest is free.
/// Positions stored in events are absolute (`base` is the absolute position
/// of `buf[0]`, wrapping), so compaction does not touch them.
struct RxBuf<'a> {
    buf: &'a mut [u8],
    base: usize,
    hold: usize,
    parse: usize,
    end: usize,
}

impl RxBuf<'_> {
    fn free(&self) -> usize {
        self.buf.len() - (self.end - self.hold)
    }

    fn append(&mut self, data: &[u8]) -> usize {
        let n = self.free().min(data.len());
        if self.buf.len() - self.end < n {
            self.buf.copy_within(self.hold..self.end, 0);
            self.base = self.base.wrapping_add(self.hold);
            self.parse -= self.hold;
            self.end -= self.hold;
            self.hold = 0;
        }
        self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
        self.end += n;
        n
    }

    fn abs(&self, idx: usize) -> usize {
        self.base.wrapping_add(idx)
    }
}

/// The transmit queue: `buf[start..end]` is queued.
struct TxBuf<'a> {
    buf: &'a mut [u8],
    start: usize,
    end: usize,
    queued_total: u64,
    sent_total: u64,
}

impl TxBuf<'_> {
    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Appends a packet; the caller checked that it fits.
    fn push(&mut self, packet: &Packet<'_>) {
        let mut header = [0u8; MAX_HEADER_LEN];
        let h = packet.encode_header(&mut header);
        let payload = packet.payload();
        let total = h + payload.len();
        if self.buf.len() - self.end < total {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf[self.end..self.end + h].copy_from_slice(&header[..h]);
        self.buf[self.end + h..self.end + total].copy_from_slice(payload);
        self.end += total;
        self.queued_total += total as u64;
    }

    /// Drops everything queued without counting it as sent (the transport
    /// is gone: `Closed`, which needs our EOF sent, must not follow).
    fn discard(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn advance(&mut self, n: usize) -> usize {
        let n = n.min(self.len());
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        self.sent_total += n as u64;
        n
    }
}

// ----- the engine: all logic, compiled once -----

/// Which event `poll_event` reports next.
#[derive(Clone, Copy)]
enum Source {
    Pending(usize),
    Inflight(usize),
    Unknown(usize),
    Erq,
    End,
    Closed,
}

// The same flags as the alloc connection's; a state enum would not be
// clearer.
#[allow(clippy::struct_excessive_bools)]
struct Engine<'a> {
    limits: ParseLimits,
    accept_requests: bool,
    max_tag: u64,
    rx: RxBuf<'a>,
    tx: TxBuf<'a>,
    rx_end: Option<RxEnd>,
    /// What the driver said of the transport (one byte, so the state's
    /// size, and the RAM figures in the docs, stay as they were).
    transport: Transport,
    peer_erq: bool,
    /// Parsing stopped at a whole packet for lack of room; see `resume`.
    stalled: bool,
    send: SendState,
    /// Request/response events not yet polled (their packets are held in rx).
    held: usize,
    next_seq: u32,
    erq_event: Option<u32>,
    end_event: Option<u32>,
    closed_event: Option<u32>,
    unknown: [Unknown; UNKNOWN_RESPONSE_QUEUE],
    unknown_len: usize,
    tags_len: usize,
    stats: Stats,
}

impl<'a> Engine<'a> {
    fn new(
        config: &BorrowedConfig,
        rx: &'a mut [u8],
        tx: &'a mut [u8],
        max_inflight: usize,
    ) -> Result<Self, ConfigError> {
        let max_packet_len = config.max_packet_len.unwrap_or(rx.len());
        if max_packet_len > rx.len() {
            return Err(ConfigError::ReceiveBufferTooSmall {
                max_receive_buffer: rx.len(),
                max_packet_len,
            });
        }
        check_packet_limit(max_packet_len)?;
        if tx.len() < MIN_TRANSMIT_BUFFER {
            return Err(ConfigError::TransmitBufferTooSmall {
                len: tx.len(),
                min: MIN_TRANSMIT_BUFFER,
            });
        }
        if max_inflight == 0 && config.accept_requests {
            return Err(ConfigError::Zero {
                field: "MAX_INFLIGHT",
            });
        }
        Ok(Engine {
            limits: ParseLimits {
                max_packet_len,
                varint: config.varint,
            },
            accept_requests: config.accept_requests,
            max_tag: config.max_tag,
            rx: RxBuf {
                buf: rx,
                base: 0,
                hold: 0,
                parse: 0,
                end: 0,
            },
            tx: TxBuf {
                buf: tx,
                start: 0,
                end: 0,
                queued_total: 0,
                sent_total: 0,
            },
            rx_end: None,
            transport: Transport::Open,
            peer_erq: false,
            stalled: false,
            send: SendState::Open,
            held: 0,
            next_seq: 0,
            erq_event: None,
            end_event: None,
            closed_event: None,
            unknown: [UNKNOWN_EMPTY; UNKNOWN_RESPONSE_QUEUE],
            unknown_len: 0,
            tags_len: 0,
            stats: Stats::default(),
        })
    }

    fn seq(&mut self) -> u32 {
        let s = self.next_seq;
        self.next_seq = s.wrapping_add(1);
        s
    }

    /// Transmit bytes free for a packet other than ERQ/EOF.
    fn tx_room(&self) -> usize {
        let mut reserve = 0;
        if !self.send.erq_queued() {
            reserve += ERQ_BYTES.len();
        }
        if !self.send.eof_queued() {
            reserve += EOF_BYTES.len();
        }
        (self.tx.buf.len() - self.tx.len()).saturating_sub(reserve)
    }

    // ----- inputs -----

    fn handle_input(&mut self, t: &mut Tables<'_>, data: &[u8]) -> Result<usize, InputError> {
        if self.transport != Transport::Open {
            return Err(InputError::AfterTransportEof);
        }
        match self.rx_end {
            Some(RxEnd::Failed(e)) => return Err(InputError::Failed(e)),
            Some(RxEnd::Closed(_)) => {
                self.stats.bytes_received += data.len() as u64;
                self.stats.bytes_ignored += data.len() as u64;
                return Ok(data.len());
            }
            None => {}
        }
        let take = self.rx.append(data);
        self.stats.bytes_received += take as u64;
        self.pump(t);
        Ok(take)
    }

    fn handle_eof(&mut self, t: &mut Tables<'_>) {
        if self.transport == Transport::Open {
            self.transport = Transport::Eof;
            self.pump(t);
        }
    }

    fn handle_transport_lost(&mut self, t: &mut Tables<'_>) {
        // From here on the EOF, and the input stalled behind a refusal or a
        // full in-flight table, are handled without waiting for room.
        self.transport = Transport::Lost;
        self.pump(t);
        // Nothing queued before can be sent (nothing is queued from now on).
        self.tx.discard();
    }

    fn handle_timeout(&mut self, t: &mut Tables<'_>, now: Instant) {
        let now = now.total_micros();
        let n = self.finish_waiting(
            t.pending,
            |p| p.deadline != NO_DEADLINE && p.deadline <= now,
            |p| (p.deadline, p.channel, p.tag),
            |seq| PendingState::TimedOut { seq },
        );
        self.stats.timed_out += n as u64;
    }

    // ----- commands -----

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        t: &mut Tables<'_>,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        rules::submit_gate(self.transport, self.rx_end.is_some(), self.send)?;
        let Some(ci) = t.find_channel(channel) else {
            return Err(SubmitError::UnknownChannel { channel });
        };
        let max_tag = self.max_tag;
        let Some(tag) = t.chan(ci).next_tag().filter(|&x| x <= max_tag) else {
            return Err(SubmitError::TagsExhausted { channel });
        };
        let packet = Packet::request(channel, tag, rq_type, flags, payload)?;
        let slot = t
            .pending
            .iter()
            .position(|p| matches!(p.state, PendingState::Free));
        let slot = match slot {
            Some(s) if waiting_count(t.pending) < t.pending.len() => s,
            _ => {
                return Err(SubmitError::TooManyPending {
                    max: t.pending.len(),
                })
            }
        };
        let len = packet.encoded_len();
        if len > self.limits.max_packet_len {
            return Err(SubmitError::PayloadTooLong {
                len,
                max: self.limits.max_packet_len,
            });
        }
        let free = self.tx_room();
        if len > free {
            return Err(SubmitError::NoRoom {
                required: len,
                free,
            });
        }
        t.chan(ci).set_next_tag(tag.checked_add(1));
        self.queue(&packet);
        t.pending[slot] = Pending {
            channel,
            tag,
            deadline: timeout.map_or(NO_DEADLINE, |d| (now + d).total_micros()),
            state: PendingState::Waiting,
        };
        self.stats.requests_sent += 1;
        Ok(tag)
    }

    fn answer(
        &mut self,
        t: &mut Tables<'_>,
        slot: usize,
        packet: &Packet<'_>,
    ) -> Result<(), RespondError> {
        let len = packet.encoded_len();
        if len > self.limits.max_packet_len {
            return Err(RespondError::PayloadTooLong {
                len,
                max: self.limits.max_packet_len,
            });
        }
        // After a loss there is nothing to make room for.
        let free = self.tx_room();
        if len > free && self.transport.can_send() {
            return Err(RespondError::NoRoom {
                required: len,
                free,
            });
        }
        let s = &mut t.inflight[slot];
        s.answered = true;
        if !s.unpolled {
            s.used = false;
        }
        if self.transport.can_send() {
            self.tx.push(packet);
            self.stats.responses_sent += 1;
        } else {
            // The transport is lost: nobody will send it.
            self.stats.requests_dropped += 1;
        }
        self.maybe_send_eof(t);
        self.resume(t);
        Ok(())
    }

    fn end_requests(&mut self) {
        if self.send == SendState::Open {
            self.send = SendState::RequestsEnded;
            // The reserve guarantees room.
            self.queue(&ERQ);
        }
    }

    fn close(&mut self, t: &mut Tables<'_>) {
        self.begin_close(t);
        self.pump(t);
    }

    // ----- outputs -----

    fn poll_event<'s>(&'s mut self, t: &mut Tables<'_>) -> Option<BorrowedEvent<'s>> {
        let source = self.oldest(t)?;
        let (event, payload) = self.take(t, source);
        // The payload's index, taken before `update_hold` may rebase the
        // (then empty) buffer. Neither that nor parsing moves received bytes,
        // so the payload stays where it is until the next call.
        let range = payload.map(|(at, len)| {
            let i = at.wrapping_sub(self.rx.base);
            i..i + len
        });
        if range.is_some() {
            self.held -= 1;
            self.update_hold(t);
        }
        // Parsing may resume now that room was freed.
        self.resume(t);
        Some(match (event, range) {
            (
                BorrowedEvent::ResponseReceived {
                    channel,
                    tag,
                    ok,
                    flags,
                    ..
                },
                Some(range),
            ) => BorrowedEvent::ResponseReceived {
                channel,
                tag,
                ok,
                flags,
                payload: &self.rx.buf[range],
            },
            (
                BorrowedEvent::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    flags,
                    ..
                },
                Some(range),
            ) => BorrowedEvent::RequestReceived {
                channel,
                tag,
                rq_type,
                flags,
                payload: &self.rx.buf[range],
            },
            (event, _) => event,
        })
    }

    /// Removes the event at `source` from the books: the event (payload
    /// left empty) and, for a request or response, where its payload is.
    fn take(
        &mut self,
        t: &mut Tables<'_>,
        source: Source,
    ) -> (BorrowedEvent<'static>, Option<(usize, usize)>) {
        match source {
            Source::Pending(i) => {
                let p = &mut t.pending[i];
                let (channel, tag) = (p.channel, p.tag);
                match core::mem::replace(&mut p.state, PendingState::Free) {
                    PendingState::Response {
                        ok,
                        flags,
                        payload,
                        len,
                        ..
                    } => (
                        BorrowedEvent::ResponseReceived {
                            channel,
                            tag,
                            ok,
                            flags,
                            payload: &[],
                        },
                        Some((payload, len)),
                    ),
                    PendingState::Cancelled { .. } => {
                        (BorrowedEvent::RequestCancelled { channel, tag }, None)
                    }
                    _ => (BorrowedEvent::RequestTimedOut { channel, tag }, None),
                }
            }
            Source::Inflight(i) => {
                let s = &mut t.inflight[i];
                s.unpolled = false;
                if s.answered {
                    s.used = false;
                }
                (
                    BorrowedEvent::RequestReceived {
                        channel: s.channel,
                        tag: s.tag,
                        rq_type: s.rq_type,
                        flags: s.flags,
                        payload: &[],
                    },
                    Some((s.payload, s.len)),
                )
            }
            Source::Unknown(i) => {
                let u = self.unknown[i];
                self.unknown_len -= 1;
                self.unknown[i] = self.unknown[self.unknown_len];
                let (channel, tag) = (u.channel, u.tag);
                (BorrowedEvent::UnknownResponse { channel, tag }, None)
            }
            Source::Erq => {
                self.erq_event = None;
                (BorrowedEvent::PeerEndedRequests, None)
            }
            Source::End => {
                self.end_event = None;
                // `end_event` is only set together with `rx_end`.
                let event = match self
                    .rx_end
                    .unwrap_or(RxEnd::Closed(PeerCloseReason::TransportEof))
                {
                    RxEnd::Failed(e) => BorrowedEvent::ProtocolError(e),
                    RxEnd::Closed(reason) => BorrowedEvent::PeerClosed { reason },
                };
                (event, None)
            }
            Source::Closed => {
                self.closed_event = None;
                (BorrowedEvent::Closed, None)
            }
        }
    }

    /// The unpolled event with the oldest sequence number.
    fn oldest(&self, t: &Tables<'_>) -> Option<Source> {
        let mut best: Option<(u32, Source)> = None;
        let mut consider = |seq: u32, source: Source| {
            // Ages are distances back from `next_seq`: wrapping-safe as long
            // as fewer than 2^32 events are unpolled.
            let age = self.next_seq.wrapping_sub(seq);
            if best.is_none_or(|(a, _)| age > a) {
                best = Some((age, source));
            }
        };
        for (i, p) in t.pending.iter().enumerate() {
            match p.state {
                PendingState::Response { seq, .. }
                | PendingState::Cancelled { seq }
                | PendingState::TimedOut { seq } => consider(seq, Source::Pending(i)),
                PendingState::Free | PendingState::Waiting => {}
            }
        }
        for (i, s) in t.inflight.iter().enumerate() {
            if s.used && s.unpolled {
                consider(s.seq, Source::Inflight(i));
            }
        }
        for (i, u) in self.unknown[..self.unknown_len].iter().enumerate() {
            consider(u.seq, Source::Unknown(i));
        }
        if let Some(seq) = self.erq_event {
            consider(seq, Source::Erq);
        }
        if let Some(seq) = self.end_event {
            consider(seq, Source::End);
        }
        if let Some(seq) = self.closed_event {
            consider(seq, Source::Closed);
        }
        best.map(|(_, s)| s)
    }

    /// Moves `hold` to the oldest packet still referenced by an event.
    fn update_hold(&mut self, t: &Tables<'_>) {
        if self.held == 0 {
            self.rx.hold = self.rx.parse;
            self.reset_rx_if_empty();
            return;
        }
        let base = self.rx.base;
        let idx = |abs: usize| abs.wrapping_sub(base);
        let from_pending = t.pending.iter().filter_map(|p| match p.state {
            PendingState::Response { payload, .. } => Some(idx(payload)),
            _ => None,
        });
        let from_inflight = t
            .inflight
            .iter()
            .filter(|s| s.used && s.unpolled)
            .map(|s| idx(s.payload));
        if let Some(min) = from_pending.chain(from_inflight).min() {
            self.rx.hold = min;
        }
    }

    fn reset_rx_if_empty(&mut self) {
        let rx = &mut self.rx;
        if rx.hold == rx.end {
            rx.base = rx.base.wrapping_add(rx.end);
            rx.hold = 0;
            rx.parse = 0;
            rx.end = 0;
        }
    }

    fn advance_transmit(&mut self, t: &mut Tables<'_>, n: usize) {
        let n = self.tx.advance(n);
        self.stats.bytes_sent += n as u64;
        self.check_closed();
        self.resume(t);
    }

    // ----- internals -----

    /// Queues `packet` (the caller checked that it fits), or drops it once
    /// the transport is lost.
    fn queue(&mut self, packet: &Packet<'_>) {
        if self.transport.can_send() {
            self.tx.push(packet);
        }
    }

    /// Gives every waiting request matching `pick` the final state `make`,
    /// with sequence numbers in the order of `key` (the alloc connection's
    /// order: `(deadline, channel, tag)` for timeouts, `(channel, tag)` for
    /// cancellations). Returns how many.
    fn finish_waiting<K: Ord>(
        &mut self,
        pending: &mut [Pending],
        pick: impl Fn(&Pending) -> bool,
        key: impl Fn(&Pending) -> K,
        make: fn(u32) -> PendingState,
    ) -> usize {
        let mut n = 0;
        loop {
            let mut best: Option<(usize, K)> = None;
            for (i, p) in pending.iter().enumerate() {
                if p.waiting() && pick(p) {
                    let k = key(p);
                    if best.as_ref().is_none_or(|(_, b)| k < *b) {
                        best = Some((i, k));
                    }
                }
            }
            let Some((i, _)) = best else {
                return n;
            };
            pending[i].state = make(self.seq());
            n += 1;
        }
    }

    fn begin_close(&mut self, t: &mut Tables<'_>) {
        self.end_requests();
        if self.send == SendState::RequestsEnded {
            self.send = SendState::Closing;
        }
        self.maybe_send_eof(t);
    }

    fn maybe_send_eof(&mut self, t: &Tables<'_>) {
        if self.send == SendState::Closing && inflight_count(t.inflight) == 0 {
            self.queue(&EOF);
            self.send = SendState::EofQueued {
                end: rules::eof_end(self.transport, self.tx.queued_total),
            };
            self.check_closed();
        }
    }

    fn check_closed(&mut self) {
        if let SendState::EofQueued { end } = self.send {
            if self.rx_end.is_some() && self.tx.sent_total >= end {
                self.send = SendState::Closed;
                self.closed_event = Some(self.seq());
            }
        }
    }

    fn end_rx(&mut self, t: &mut Tables<'_>, end: RxEnd) {
        self.rx_end = Some(end);
        self.stats.bytes_ignored += (self.rx.end - self.rx.parse) as u64;
        self.rx.end = self.rx.parse;
        self.end_event = Some(self.seq());
        let n = self.finish_waiting(
            t.pending,
            |_| true,
            |p| (p.channel, p.tag),
            |seq| PendingState::Cancelled { seq },
        );
        self.stats.cancelled += n as u64;
        self.begin_close(t);
        self.check_closed();
    }

    fn resume(&mut self, t: &mut Tables<'_>) {
        if self.stalled {
            self.pump(t);
        }
    }

    fn pump(&mut self, t: &mut Tables<'_>) {
        self.stalled = false;
        while self.rx_end.is_none() {
            let unparsed = &self.rx.buf[self.rx.parse..self.rx.end];
            let (head, len) = match Packet::parse(unparsed, &self.limits) {
                Err(e) => {
                    self.end_rx(t, RxEnd::Failed(ProtocolError::Packet(e)));
                    return;
                }
                Ok(None) => {
                    if self.transport != Transport::Open {
                        let end = if unparsed.is_empty() {
                            RxEnd::Closed(PeerCloseReason::TransportEof)
                        } else {
                            RxEnd::Failed(ProtocolError::Truncated {
                                have: unparsed.len(),
                                need: Packet::peek_len(unparsed, &self.limits).ok().flatten(),
                            })
                        };
                        self.end_rx(t, end);
                    }
                    return;
                }
                Ok(Some((packet, len))) => (Head::of(&packet), len),
            };
            if !self.dispatch(t, head, len) {
                self.stalled = self.rx_end.is_none();
                return;
            }
        }
    }

    /// Consumes the packet of `len` bytes at the parse position. A packet
    /// whose payload an event refers to must be counted in `held` first.
    fn consume(&mut self, len: usize) {
        self.rx.parse += len;
        self.stats.packets_received += 1;
        if self.held == 0 {
            self.rx.hold = self.rx.parse;
            self.reset_rx_if_empty();
        }
    }

    /// The absolute position of the payload of the packet at the parse
    /// position.
    fn payload_at(&self, head: &Head, len: usize) -> usize {
        self.rx.abs(self.rx.parse + len - head.payload_len)
    }

    fn dispatch(&mut self, t: &mut Tables<'_>, head: Head, len: usize) -> bool {
        match head.kind(self.max_tag) {
            Kind::Eof => {
                self.consume(len);
                self.end_rx(t, RxEnd::Closed(PeerCloseReason::EofPacket));
                false
            }
            Kind::Erq => {
                self.consume(len);
                if !self.peer_erq {
                    self.peer_erq = true;
                    self.erq_event = Some(self.seq());
                }
                true
            }
            Kind::MalformedMarker => {
                self.consume(len);
                self.end_rx(
                    t,
                    RxEnd::Failed(ProtocolError::MalformedMarker {
                        channel: head.channel,
                        tag: head.tag,
                    }),
                );
                false
            }
            Kind::TagTooLarge => {
                self.end_rx(
                    t,
                    RxEnd::Failed(ProtocolError::TagTooLarge {
                        tag: head.tag,
                        max: self.max_tag,
                    }),
                );
                false
            }
            Kind::Request { rq_type } => self.on_request(t, head, rq_type, len),
            Kind::Response => self.on_response(t, head, len),
        }
    }

    fn on_response(&mut self, t: &mut Tables<'_>, head: Head, len: usize) -> bool {
        let waiting = t.find_waiting(head.channel, head.tag);
        if waiting.is_none() && self.unknown_len == UNKNOWN_RESPONSE_QUEUE {
            return false;
        }
        let at = self.payload_at(&head, len);
        let seq = self.seq();
        if let Some(i) = waiting {
            let (ok, flags) = head.status();
            t.pending[i].state = PendingState::Response {
                seq,
                ok,
                flags,
                payload: at,
                len: head.payload_len,
            };
            self.held += 1;
            self.consume(len);
            self.stats.responses_received += 1;
        } else {
            self.unknown[self.unknown_len] = Unknown {
                channel: head.channel,
                tag: head.tag,
                seq,
            };
            self.unknown_len += 1;
            self.consume(len);
            self.stats.unknown_responses += 1;
        }
        true
    }

    fn on_request(&mut self, t: &mut Tables<'_>, head: Head, rq_type: u64, len: usize) -> bool {
        let chan = t.find_channel(head.channel);
        let in_use = chan.map(|ci| {
            let floor = t.chan(ci).floor();
            t.find_inflight(head.channel, head.tag).is_some()
                || tags::contains(floor, &self.pool(t, ci), head.tag)
        });
        let refusal = rules::refusal(self.accept_requests, self.peer_erq, self.send, in_use);
        match (refusal, chan) {
            (None, Some(ci)) => self.accept(t, ci, head, rq_type, len),
            (refusal, _) => self.refuse(
                refusal.unwrap_or(rules::Refusal::Text(UNKNOWN_CHANNEL)),
                head,
                len,
            ),
        }
    }

    /// Answers a peer request with a failure response of our own, or drops it
    /// once our EOF is queued or the transport is lost. False: no room to
    /// queue it yet.
    fn refuse(&mut self, refusal: rules::Refusal, head: Head, len: usize) -> bool {
        if self.send.eof_queued() || self.transport == Transport::Lost {
            self.consume(len);
            self.stats.requests_dropped += 1;
            return true;
        }
        let mut text = [0u8; TagInUse::MAX_LEN];
        let packet = rules::refusal_packet(
            refusal,
            head.channel,
            head.tag,
            &mut text,
            self.limits.max_packet_len,
        );
        if packet.encoded_len() > self.tx_room() {
            return false;
        }
        self.consume(len);
        self.stats.requests_refused += 1;
        if refusal == rules::Refusal::TagInUse {
            self.stats.tags_reused += 1;
        }
        self.queue(&packet);
        true
    }

    /// Delivers a peer request. False: no in-flight slot (backpressure).
    fn accept(
        &mut self,
        t: &mut Tables<'_>,
        ci: usize,
        head: Head,
        rq_type: u64,
        len: usize,
    ) -> bool {
        let room = inflight_count(t.inflight) < t.inflight.len();
        let Some(slot) = room
            .then(|| t.inflight.iter().position(|s| !s.used))
            .flatten()
        else {
            if self.transport == Transport::Lost {
                // It could never be answered: dropped, not waited for.
                self.consume(len);
                self.stats.requests_dropped += 1;
                return true;
            }
            return false;
        };
        let at = self.payload_at(&head, len);
        t.inflight[slot] = Inflight {
            channel: head.channel,
            tag: head.tag,
            rq_type,
            flags: head.pflags,
            payload: at,
            len: head.payload_len,
            seq: self.seq(),
            used: true,
            answered: false,
            unpolled: true,
        };
        self.held += 1;
        self.consume(len);
        self.stats.requests_received += 1;
        self.remember(t, ci, head.tag);
        true
    }

    fn pool<'p>(&'p mut self, t: &'p mut Tables<'_>, chan: usize) -> PoolView<'p> {
        PoolView {
            entries: &mut *t.tags,
            len: &mut self.tags_len,
            chan,
        }
    }

    /// Records a peer tag on channel index `ci`, within `REMEMBERED_TAGS`
    /// entries, exactly as the alloc connection does within
    /// `max_remembered_tags`: when the pool is full the channel's oldest
    /// remembered tag (the new one included) is forgotten.
    fn remember(&mut self, t: &mut Tables<'_>, ci: usize, tag: u64) {
        let mut floor = t.chan(ci).floor();
        let full = self.tags_len == t.tags.len();
        let mut pool = PoolView {
            entries: &mut *t.tags,
            len: &mut self.tags_len,
            chan: ci,
        };
        if full && tags::needs_entry(floor, &pool, tag) {
            match pool.first() {
                Some(oldest) if oldest < tag => {
                    tags::forget_oldest(&mut floor, &mut pool);
                    tags::insert(&mut floor, &mut pool, tag);
                }
                _ => {
                    tags::forget_new(&mut floor, &mut pool, tag);
                }
            }
            self.stats.tags_forgotten += 1;
        } else {
            tags::insert(&mut floor, &mut pool, tag);
        }
        t.chan(ci).set_floor(floor);
    }
}

/// One end of a cs.packetstream connection without allocation: the
/// no-alloc twin of `Connection` (feature `alloc`), over caller-owned
/// buffers and fixed-capacity tables, for firmware without a heap (for
/// example over a smoltcp TCP socket).
///
/// * `MAX_PENDING`: our requests waiting for a response (the alloc
///   `max_pending_outbound`); may be 0 for a pure server.
/// * `MAX_INFLIGHT`: peer requests delivered and not answered; when
///   reached, parsing stops at the next request to accept (backpressure).
///   At least 1 unless `accept_requests` is false.
/// * `MAX_CHANNELS` (default 4): channels that can be opened besides 0.
/// * `REMEMBERED_TAGS` (default 16): peer tags remembered above the
///   channels' high-water marks (the alloc `max_remembered_tags`).
///
/// [`BorrowedConnection`] runs the same rules as the alloc
/// `Connection` and puts the same bytes on the wire
/// (the shared decisions live in `rules`, `tags` and
/// [`reason`](super::reason); a differential test drives both with the same
/// random operations and compares every byte and event). What differs is
/// where state is kept:
///
/// * received bytes stay in the caller's `rx` slice, and request/response
///   payloads are borrowed from it ([`BorrowedEvent`]);
/// * outbound packets are encoded into the caller's `tx` slice, one
///   contiguous queue ([`poll_transmit`](BorrowedConnection::poll_transmit));
/// * waiting requests, peer requests in flight, channels and remembered tags
///   live in arrays sized by const generics.
///
/// # Example
///
/// ```
/// use framewire::packet::{BorrowedConfig, BorrowedConnection, BorrowedEvent};
/// use framewire::time::Instant;
///
/// let (mut crx, mut ctx) = ([0u8; 256], [0u8; 256]);
/// let (mut srx, mut stx) = ([0u8; 256], [0u8; 256]);
/// // Up to 4 requests of ours waiting, 4 of the peer's in flight.
/// let mut client =
///     BorrowedConnection::<4, 4>::new(BorrowedConfig::default(), &mut crx, &mut ctx).unwrap();
/// let mut server =
///     BorrowedConnection::<4, 4>::new(BorrowedConfig::default(), &mut srx, &mut stx).unwrap();
///
/// let tag = client.submit(0, 0, 0, b"hello", Instant::ZERO, None).unwrap();
/// assert_eq!(tag, 2); // channel 0 tags start at 2
/// let wire = client.poll_transmit().unwrap();
/// assert_eq!(wire, b"\x08\x02\x02\x01hello");
///
/// // A driver writes what it can and reports it; the rest stays queued.
/// assert_eq!(server.handle_input(wire), Ok(9));
/// client.advance_transmit(9);
///
/// // The payload is borrowed from the server's receive buffer: copy what is
/// // needed, then answer (the borrow ends before `respond`).
/// let Some(BorrowedEvent::RequestReceived { channel, tag, payload, .. }) = server.poll_event()
/// else {
///     panic!("expected a request")
/// };
/// let mut reply = [0u8; 16];
/// reply[..payload.len()].copy_from_slice(payload);
/// let n = payload.len();
/// server.respond(channel, tag, 0, &reply[..n]).unwrap();
///
/// let wire = server.poll_transmit().unwrap();
/// assert_eq!(client.handle_input(wire), Ok(wire.len()));
/// let len = wire.len();
/// server.advance_transmit(len);
/// assert!(matches!(
///     client.poll_event(),
///     Some(BorrowedEvent::ResponseReceived { tag: 2, ok: true, payload: b"hello", .. })
/// ));
/// ```
///
/// # Memory
///
/// Everything is in the value and the two buffers; nothing grows:
///
/// ```text
/// RAM = rx.len() + tx.len() + size_of::<BorrowedConnection<P, I, C, T>>()
///     = rx.len() + tx.len() + BASE_BYTES
///       + P·PENDING_ENTRY_BYTES + I·INFLIGHT_ENTRY_BYTES
///       + C·CHANNEL_ENTRY_BYTES + T·TAG_ENTRY_BYTES
/// ```
///
/// ([`BorrowedConnection::BASE_BYTES`] and the other constants; the
/// buffers may live anywhere, e.g. in `static`s). Measured for thumbv7em
/// (32-bit) / x86_64: a waiting-request entry is 48 / 56 bytes, an in-flight
/// entry 48 / 56, a channel 32 / 32, a remembered tag 16 / 16, and the base
/// (state, counters, channel 0, the unknown-response queue) 408 / 480.
/// Typical totals, buffers included (default `C = 4`, `T = 16`):
///
/// | `P` | `I` | rx + tx | thumbv7em | x86_64 |
/// |---|---|---|---|---|
/// | 4 | 4 | 512 + 512 | 2 200 B | 2 336 B |
/// | 8 | 8 | 1 024 + 1 024 | 3 608 B | 3 808 B |
/// | 16 | 16 | 2 048 + 2 048 | 6 424 B | 6 752 B |
/// | 32 | 8 | 4 096 + 4 096 | 10 904 B | 11 296 B |
///
/// [`BorrowedConnection::ram_bytes`] computes it for given buffers; a
/// unit test checks the formula against `size_of` on the build target.
///
/// # Differences from the alloc `Connection`
///
/// Only in what the fixed capacities imply; the rules and bytes are the same:
///
/// * Limits come from the const generics and the buffers: `MAX_PENDING`
///   for `max_pending_outbound`, `MAX_INFLIGHT` for `max_inflight_inbound`,
///   `MAX_CHANNELS` and `REMEMBERED_TAGS` for `max_channels` and
///   `max_remembered_tags`, `rx.len()` for `max_receive_buffer` (and the
///   default packet length limit).
/// * The receive buffer holds unparsed bytes and the packets of unpolled
///   request/response events. `handle_input` takes what fits; parsing also
///   pauses when [`UNKNOWN_RESPONSE_QUEUE`] unknown-response events are
///   unpolled. Both resume as events are polled.
/// * The transmit buffer is a hard limit: a packet that does not fit is
///   refused with [`SubmitError::NoRoom`] / [`RespondError::NoRoom`] (nothing
///   queued; write some out and retry), and a failure response the connection
///   owes waits (parsing pauses) until it fits. 8 bytes are always kept for
///   ERQ and EOF, so `end_requests` and `close` cannot fail.
/// * **Sizing the transmit buffer.** Since a response that does not fit
///   waits, two ends that both submit requests can fill both transmit
///   buffers with bytes the other cannot read yet, and then each waits for
///   the other (the alloc `Connection` instead queues responses past its
///   soft limit). This cannot happen when `tx.len()` is at least `8 +
///   MAX_PENDING × (largest request packet) + P_peer × max(largest response
///   packet, 92)`, where `P_peer` bounds the peer's waiting requests (its
///   `MAX_PENDING` or `max_pending_outbound`) and neither side abandons or
///   times out requests still queued: unsent requests are then at most
///   `MAX_PENDING`, and unsent responses and failure responses at most the
///   peer's waiting requests. A pure client or pure server (requests in one
///   direction) needs no margin: the requesting side never stops reading.
/// * A waiting-request slot is reused once its final event (response,
///   cancellation or timeout) has been polled, an in-flight slot once the
///   request was both polled and answered; a driver that polls events after
///   every call (as it should) never notices.
/// * Payloads are `&[u8]` valid until the next call on the connection;
///   copy what must outlive it.
///
/// # Method groups and calling order
///
/// As `Connection`: **inputs**
/// [`handle_input`](Self::handle_input) (may take fewer bytes than offered:
/// offer the rest again after draining events, answering and transmitting),
/// [`handle_eof`](Self::handle_eof), [`handle_timeout`](Self::handle_timeout);
/// **commands** [`submit`](Self::submit), [`respond`](Self::respond),
/// [`reject`](Self::reject), [`abandon`](Self::abandon),
/// [`end_requests`](Self::end_requests), [`close`](Self::close),
/// [`open_channel`](Self::open_channel); **outputs**
/// [`poll_transmit`](Self::poll_transmit) then
/// [`advance_transmit`](Self::advance_transmit) (or
/// [`fill_transmit`](Self::fill_transmit)), [`poll_timeout`](Self::poll_timeout),
/// [`poll_event`](Self::poll_event); **getters** on `&self`.
///
/// After any input or command: write out what `poll_transmit` shows (partial
/// writes are fine: report them with `advance_transmit`, the rest stays
/// queued), re-arm the timer from `poll_timeout`, and drain `poll_event`.
///
/// # Rules
///
/// Exactly those of `Connection`: tags from 2 on
/// channel 0 (0 on other channels), never reused; `rq_type + 1` on the wire;
/// the ok bit; peer requests refused in the original's order with its
/// texts (`no request handler`, `requests no longer allowed`, `rejecting
/// request: runstate.cancelled`, `unknown channel %d` literally, `channel
/// C: tag already in use: N`); duplicate in-flight tags refused while the
/// original still gets its answer; reused tags refused, within bounded tag
/// memory; EOF/ERQ recognised by exact equality; unknown responses reported;
/// the orderly close (ERQ, owed responses, EOF, then `Closed` once our EOF
/// is transmitted and the peer's stream has ended).
pub struct BorrowedConnection<
    'a,
    const MAX_PENDING: usize,
    const MAX_INFLIGHT: usize,
    const MAX_CHANNELS: usize = 4,
    const REMEMBERED_TAGS: usize = 16,
> {
    engine: Engine<'a>,
    chan0: Channel,
    channels: [Channel; MAX_CHANNELS],
    pending: [Pending; MAX_PENDING],
    inflight: [Inflight; MAX_INFLIGHT],
    tags: [TagEntry; REMEMBERED_TAGS],
}

/// Bytes of one waiting-request slot (`MAX_PENDING` of them).
pub const PENDING_ENTRY_BYTES: usize = core::mem::size_of::<Pending>();
/// Bytes of one in-flight slot (`MAX_INFLIGHT` of them).
pub const INFLIGHT_ENTRY_BYTES: usize = core::mem::size_of::<Inflight>();
/// Bytes of one channel slot (`MAX_CHANNELS` of them).
pub const CHANNEL_ENTRY_BYTES: usize = core::mem::size_of::<Channel>();
/// Bytes of one remembered tag (`REMEMBERED_TAGS` of them).
pub const TAG_ENTRY_BYTES: usize = core::mem::size_of::<TagEntry>();

impl<
        'a,
        const MAX_PENDING: usize,
        const MAX_INFLIGHT: usize,
        const MAX_CHANNELS: usize,
        const REMEMBERED_TAGS: usize,
    > BorrowedConnection<'a, MAX_PENDING, MAX_INFLIGHT, MAX_CHANNELS, REMEMBERED_TAGS>
{
    /// Bytes of the connection value besides its tables (state, counters,
    /// channel 0, the unknown-response queue).
    pub const BASE_BYTES: usize = core::mem::size_of::<Engine<'static>>() + CHANNEL_ENTRY_BYTES;

    /// The RAM a connection with buffers of `rx_len` and `tx_len` bytes
    /// uses in all: the value itself plus the buffers. Nothing else is ever
    /// allocated.
    pub const fn ram_bytes(rx_len: usize, tx_len: usize) -> usize {
        rx_len + tx_len + core::mem::size_of::<Self>()
    }

    /// A new connection receiving into `rx` and queueing output in `tx`.
    ///
    /// Errors: the packet limit exceeds `rx`
    /// ([`ReceiveBufferTooSmall`](ConfigError::ReceiveBufferTooSmall)) or is
    /// under [`MIN_MAX_PACKET_LEN`](super::MIN_MAX_PACKET_LEN)
    /// ([`PacketLimitTooSmall`](ConfigError::PacketLimitTooSmall)), `tx` is
    /// shorter than [`MIN_TRANSMIT_BUFFER`], or `MAX_INFLIGHT` is 0 while
    /// requests are accepted.
    pub fn new(
        config: BorrowedConfig,
        rx: &'a mut [u8],
        tx: &'a mut [u8],
    ) -> Result<Self, ConfigError> {
        // Channel 0 skips the EOF and ERQ tags.
        let chan0 = Channel::opened(0, 2);
        Ok(BorrowedConnection {
            engine: Engine::new(&config, rx, tx, MAX_INFLIGHT)?,
            chan0,
            channels: [Channel::CLOSED; MAX_CHANNELS],
            pending: [PENDING_FREE; MAX_PENDING],
            inflight: [INFLIGHT_FREE; MAX_INFLIGHT],
            tags: [TAG_EMPTY; REMEMBERED_TAGS],
        })
    }

    #[inline]
    fn split(&mut self) -> (&mut Engine<'a>, Tables<'_>) {
        (
            &mut self.engine,
            Tables {
                chan0: &mut self.chan0,
                channels: &mut self.channels,
                pending: &mut self.pending,
                inflight: &mut self.inflight,
                tags: &mut self.tags,
            },
        )
    }

    // ----- inputs -----

    /// Bytes received from the transport; returns how many were taken
    /// (fewer than offered when the receive buffer is full of unparsed bytes
    /// and unpolled packets: offer the rest again after polling events,
    /// answering requests and transmitting). After the peer's EOF packet
    /// every byte is taken and ignored.
    ///
    /// Errors: [`InputError::Failed`] after a protocol error,
    /// [`InputError::AfterTransportEof`] after [`handle_eof`](Self::handle_eof)
    /// or [`handle_transport_lost`](Self::handle_transport_lost).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, InputError> {
        let (e, mut t) = self.split();
        e.handle_input(&mut t, data)
    }

    /// The transport will deliver no more bytes: buffered packets are still
    /// handled, then the receive side ends (`PeerClosed` with
    /// `TransportEof`, or `Truncated` inside a packet). Idempotent.
    pub fn handle_eof(&mut self) {
        let (e, mut t) = self.split();
        e.handle_eof(&mut t);
    }

    /// The transport is gone both ways (a reset, a dead link): what is
    /// queued can never be sent and no more bytes will come. A driver calls
    /// it instead of `handle_eof` when the connection is lost, not merely
    /// half-closed. May follow `handle_eof`. Idempotent. The same as the
    /// alloc `Connection::handle_transport_lost`:
    ///
    /// * **Output**: the queued output is dropped (none of it counts as
    ///   sent), and from now on **nothing is queued**:
    ///   [`poll_transmit`](Self::poll_transmit) stays `None`.
    ///   [`submit`](Self::submit) fails with [`SubmitError::PeerGone`]. An
    ///   answer given through [`respond`](Self::respond) or
    ///   [`reject`](Self::reject) to a request in flight is accepted (never
    ///   `NoRoom`; the request is no longer in flight) and dropped, counted
    ///   in `requests_dropped` instead of `responses_sent`.
    ///   [`end_requests`](Self::end_requests) and [`close`](Self::close)
    ///   still move the state on but their ERQ and EOF are dropped too.
    /// * **Input**: buffered packets are still handled (responses and
    ///   requests are delivered; events queued before the loss stay queued),
    ///   without waiting for transmit room: the refusals the connection
    ///   would make itself, and peer requests beyond the in-flight limit, are
    ///   dropped (counted in `requests_dropped`). Then the receive side ends
    ///   as with [`handle_eof`](Self::handle_eof): waiting requests end with
    ///   `RequestCancelled`. If unpolled events hold packets back, this
    ///   happens as they are polled.
    /// * **Close**: `Closed` needs our EOF transmitted, so it follows a loss
    ///   only if our EOF had been transmitted before it;
    ///   [`state`](Self::state) otherwise stays `Closing`.
    pub fn handle_transport_lost(&mut self) {
        let (e, mut t) = self.split();
        e.handle_transport_lost(&mut t);
    }

    /// The clock reads `now`: every request whose deadline is at or before
    /// `now` ends with `RequestTimedOut`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (e, mut t) = self.split();
        e.handle_timeout(&mut t, now);
    }

    // ----- commands -----

    /// Queues a request of user type `rq_type` (sent as `rq_type + 1`) with
    /// `flags` and a copy of `payload` on `channel`; returns its tag. It ends
    /// with `ResponseReceived`, `RequestTimedOut` (after `timeout` from
    /// `now`) or `RequestCancelled`.
    ///
    /// Checked in the alloc connection's order, nothing queued on error:
    /// peer gone or transport lost ([`SubmitError::PeerGone`]), ERQ sent, channel open, tag left, fields encodable,
    /// `MAX_PENDING`, packet length; then [`SubmitError::NoRoom`] if the
    /// packet does not fit in the transmit buffer now.
    ///
    /// Deadlines are kept in 8 bytes: one that saturates at the end of
    /// [`Instant`]'s range (`u64::MAX` µs, some 584,000 years) counts as
    /// none.
    pub fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        let (e, mut t) = self.split();
        e.submit(&mut t, channel, rq_type, flags, payload, now, timeout)
    }

    /// Answers the peer's request `(channel, tag)`: `pflags = (flags << 1) |
    /// 1` and a copy of `payload`. On error nothing is queued and the request
    /// stays in flight ([`RespondError::NoRoom`]: transmit, then retry).
    /// After [`handle_transport_lost`](Self::handle_transport_lost) the
    /// answer is accepted but dropped, not queued (counted in
    /// `requests_dropped`).
    pub fn respond(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: &[u8],
    ) -> Result<(), RespondError> {
        let (e, mut t) = self.split();
        let Some(slot) = t.find_inflight(channel, tag) else {
            return Err(RespondError::NotInFlight { channel, tag });
        };
        let packet =
            Packet::response(channel, tag, true, flags, payload).map_err(RespondError::Field)?;
        e.answer(&mut t, slot, &packet)
    }

    /// Answers the peer's request `(channel, tag)` with a failure (`pflags =
    /// 0`, `reason` as the payload), e.g.
    /// [`reason::EXCEPTION_DURING_HANDLER`](super::reason::EXCEPTION_DURING_HANDLER).
    /// After a loss it is dropped as [`respond`](Self::respond) says.
    pub fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError> {
        let (e, mut t) = self.split();
        let Some(slot) = t.find_inflight(channel, tag) else {
            return Err(RespondError::NotInFlight { channel, tag });
        };
        e.answer(&mut t, slot, &Packet::failure(channel, tag, reason))
    }

    /// Stops waiting for our request `(channel, tag)`: no event will come
    /// for it and a late response counts as unknown. Returns whether it was
    /// waiting.
    pub fn abandon(&mut self, channel: u64, tag: u64) -> bool {
        let (_, t) = self.split();
        match t.find_waiting(channel, tag) {
            Some(i) => {
                t.pending[i] = PENDING_FREE;
                true
            }
            None => false,
        }
    }

    /// Sends ERQ: we send no more requests (ours may still be answered, the
    /// peer's are still served). Idempotent; never fails (room is kept).
    /// After a loss the ERQ is dropped, not queued.
    pub fn end_requests(&mut self) {
        self.engine.end_requests();
    }

    /// Begins the orderly close: ERQ (if not sent), the responses still owed
    /// as they are given, then EOF; new peer requests are refused
    /// meanwhile. `Closed` follows once our EOF is transmitted and the
    /// peer's stream has ended. Idempotent. After a loss the ERQ and EOF are
    /// dropped, not queued, and `Closed` does not follow.
    pub fn close(&mut self) {
        let (e, mut t) = self.split();
        e.close(&mut t);
    }

    /// Opens `channel` for requests both ways (channel 0 is always open); a
    /// framewire extension both ends must make. Our tags on it start at 0.
    /// Idempotent. Errors: `MAX_CHANNELS` are open already.
    pub fn open_channel(&mut self, channel: u64) -> Result<(), ChannelError> {
        if find_channel(&self.channels, channel).is_some() {
            return Ok(());
        }
        let Some(slot) = self.channels.iter_mut().find(|c| !c.open) else {
            return Err(ChannelError::TooManyChannels { max: MAX_CHANNELS });
        };
        *slot = Channel::opened(channel, 0);
        Ok(())
    }

    // ----- outputs -----

    /// The next event, if any; a request's or response's payload borrows
    /// the receive buffer until the next call on the connection. Polling
    /// frees room, so parsing resumes by itself if it was waiting.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<BorrowedEvent<'_>> {
        let (e, mut t) = self.split();
        e.poll_event(&mut t)
    }

    /// Every queued outbound byte, as one contiguous slice (`None` when
    /// nothing is queued). Should be polled after every input and command.
    /// Always `None` after
    /// [`handle_transport_lost`](Self::handle_transport_lost).
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        let tx = &self.engine.tx;
        (tx.start < tx.end).then(|| &tx.buf[tx.start..tx.end])
    }

    /// Bytes queued for transmission.
    pub fn transmit_len(&self) -> usize {
        self.engine.tx.len()
    }

    /// `n` queued bytes were written to the transport (clamped to what is
    /// queued). Unwritten bytes stay queued, in order.
    pub fn advance_transmit(&mut self, n: usize) {
        let (e, mut t) = self.split();
        e.advance_transmit(&mut t, n);
    }

    /// Copies as much queued output as fits into `out`, marks it
    /// transmitted, and returns its length.
    pub fn fill_transmit(&mut self, out: &mut [u8]) -> usize {
        let n = match self.poll_transmit() {
            Some(q) => {
                let n = q.len().min(out.len());
                out[..n].copy_from_slice(&q[..n]);
                n
            }
            None => 0,
        };
        self.advance_transmit(n);
        n
    }

    /// The earliest request deadline, for the driver's timer; call
    /// [`handle_timeout`](Self::handle_timeout) when it passes.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest_deadline(&self.pending)
    }

    // ----- getters -----

    /// Where the connection is in its life cycle.
    pub fn state(&self) -> State {
        let e = &self.engine;
        if e.send == SendState::Closed {
            State::Closed
        } else if e.send.closing() || e.rx_end.is_some() {
            State::Closing
        } else {
            State::Open
        }
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.engine.stats
    }

    /// The packet length limit in force.
    pub fn max_packet_len(&self) -> usize {
        self.engine.limits.max_packet_len
    }

    /// How the peer's stream ended cleanly, if it did.
    pub fn peer_closed(&self) -> Option<PeerCloseReason> {
        match self.engine.rx_end {
            Some(RxEnd::Closed(r)) => Some(r),
            _ => None,
        }
    }

    /// The peer's protocol error, if its stream ended with one.
    pub fn protocol_error(&self) -> Option<ProtocolError> {
        match self.engine.rx_end {
            Some(RxEnd::Failed(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether the peer sent ERQ.
    pub fn peer_ended_requests(&self) -> bool {
        self.engine.peer_erq
    }

    /// Whether we queued ERQ (after which `submit` fails).
    pub fn requests_ended(&self) -> bool {
        self.engine.send.erq_queued()
    }

    /// Whether our EOF has been queued. After a loss, whether it would have
    /// been (it was dropped).
    pub fn eof_queued(&self) -> bool {
        self.engine.send.eof_queued()
    }

    /// Whether [`handle_transport_lost`](Self::handle_transport_lost) was
    /// called: nothing is queued any more.
    pub fn transport_lost(&self) -> bool {
        self.engine.transport == Transport::Lost
    }

    /// Our requests waiting for a response.
    pub fn pending_outbound(&self) -> usize {
        waiting_count(&self.pending)
    }

    /// Whether our request `(channel, tag)` is waiting for a response.
    pub fn is_pending(&self, channel: u64, tag: u64) -> bool {
        self.pending
            .iter()
            .any(|p| p.waiting() && p.channel == channel && p.tag == tag)
    }

    /// Peer requests delivered and not answered yet.
    pub fn inflight_inbound(&self) -> usize {
        inflight_count(&self.inflight)
    }

    /// Whether the peer's request `(channel, tag)` awaits our answer.
    pub fn is_inflight(&self, channel: u64, tag: u64) -> bool {
        self.inflight
            .iter()
            .any(|s| s.in_flight() && s.channel == channel && s.tag == tag)
    }

    /// Whether `channel` is open.
    pub fn is_channel_open(&self, channel: u64) -> bool {
        find_channel(&self.channels, channel).is_some()
    }

    /// The tag our next request on `channel` will use.
    pub fn next_tag(&self, channel: u64) -> Option<u64> {
        match find_channel(&self.channels, channel)? {
            0 => self.chan0.next_tag(),
            i => self.channels[i - 1].next_tag(),
        }
    }

    /// Bytes received and not parsed yet.
    pub fn receive_buffered(&self) -> usize {
        self.engine.rx.end - self.engine.rx.parse
    }

    /// Bytes of the receive buffer in use: unparsed bytes plus packets of
    /// unpolled events.
    pub fn receive_used(&self) -> usize {
        self.engine.rx.end - self.engine.rx.hold
    }

    /// Peer tags remembered individually (at most `REMEMBERED_TAGS`).
    pub fn remembered_tags(&self) -> usize {
        self.engine.tags_len
    }
}

impl<const P: usize, const I: usize, const C: usize, const T: usize> fmt::Debug
    for BorrowedConnection<'_, P, I, C, T>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BorrowedConnection")
            .field("state", &self.state())
            .field("pending", &self.pending_outbound())
            .field("inflight", &self.inflight_inbound())
            .field("receive_used", &self.receive_used())
            .field("transmit_len", &self.transmit_len())
            .finish_non_exhaustive()
    }
}
