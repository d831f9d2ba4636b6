//! The request/response state machine of cs.packetstream's `PacketConnection`.

use alloc::collections::{BTreeMap, BinaryHeap, VecDeque};
use core::cmp::Reverse;

use bytes::Bytes;

use super::borrowed::BorrowedEvent;
use super::config::{Config, ConfigError, EVENT_OVERHEAD};
use super::event::{
    ChannelError, Event, InputError, PeerCloseReason, ProtocolError, RespondError, State, Stats,
    SubmitError,
};
use super::lent::{or_fail, Answerer, LentRequest, LentResponse};
use super::reason;
use super::receive::ReceiveBuffer;
use super::rules::{self, Head, Kind, RxEnd, SendState, Transport};
use super::tags::TagMemory;
use super::transmit::{Staged, TransmitChunks, TransmitQueue};
use super::window::TagWindow;
use super::wire::{small_header, Packet, ParseLimits, EOF, ERQ};
use crate::time::{Duration, Instant};

mod fast;

/// One end of a cs.packetstream connection, as a sans-IO state machine.
///
/// Either end may send requests and answer the other's; the byte stream is
/// the same in both directions and the two ends are symmetric (the original
/// has no client/server roles at this level).
///
/// # Method groups and calling order
///
/// * **Inputs** — [`handle_input`](Self::handle_input) (bytes from the
///   transport, in any chunking; it may take fewer than offered: that is
///   backpressure), [`handle_eof`](Self::handle_eof) (the transport's end),
///   [`handle_transport_lost`](Self::handle_transport_lost) (the transport
///   is gone both ways), [`handle_timeout`](Self::handle_timeout) (the clock reached
///   [`poll_timeout`](Self::poll_timeout)).
/// * **Commands** — [`submit`](Self::submit), [`respond`](Self::respond),
///   [`reject`](Self::reject), [`abandon`](Self::abandon),
///   [`end_requests`](Self::end_requests), [`close`](Self::close),
///   [`open_channel`](Self::open_channel). They only change state and queue
///   bytes; nothing is written anywhere.
/// * **Outputs** — [`poll_transmit`](Self::poll_transmit) /
///   [`transmit_chunks`](Self::transmit_chunks) then
///   [`advance_transmit`](Self::advance_transmit) (or
///   [`fill_transmit`](Self::fill_transmit)), [`poll_timeout`](Self::poll_timeout),
///   [`poll_event`](Self::poll_event).
/// * **Getters** on `&self`: [`state`](Self::state), [`stats`](Self::stats), …
///
/// After any input or command a driver should, in this order: write out
/// everything [`poll_transmit`](Self::poll_transmit) offers (there is no
/// write delay: everything queued is visible at once, so one `write` or
/// `writev` carries it all), re-arm its timer from
/// [`poll_timeout`](Self::poll_timeout), and drain
/// [`poll_event`](Self::poll_event). When `handle_input` took fewer bytes
/// than offered, offer the rest again after draining events, answering
/// requests and writing out; the connection resumes parsing by itself as soon
/// as room appears (polling events, answering, advancing the transmit queue).
///
/// # Rules (those of the original, byte for byte where observable)
///
/// * **Tags**: ours come from a per-channel counter starting at 2 on channel 0
///   (0 and 1 are the EOF and ERQ tags) and at 0 on other channels,
///   incrementing, never reused.
/// * **Peer requests** are checked in the original's order, and refused with a
///   failure response (`pflags = 0`, UTF-8 reason) from [`reason`]:
///   1. [`Config::accept_requests`] is false → `no request handler`;
///   2. after the peer's ERQ → `requests no longer allowed`;
///   3. after we began closing ([`close`](Self::close), or the peer's end) →
///      `rejecting request: runstate.cancelled` (the original's shutdown text;
///      the original itself might serve or silently drop such a request);
///   4. channel not open → `unknown channel %d`, literally;
///   5. tag in flight or used before on this channel →
///      `channel C: tag already in use: N`.
///
///   A request arriving after our EOF was queued cannot be answered and is
///   dropped (counted in [`Stats::requests_dropped`]); the peer sees our EOF
///   and cancels it.
/// * **Duplicate tags** — *difference from the original, which is unsafe
///   here*: a duplicate of an in-flight tag is refused at once and the
///   original request **still gets its response** (the original loses it); a
///   tag reused after its response went out is **refused** (the original runs
///   the handler and never answers, so its peer waits forever).
/// * **Tag memory is bounded** — the original remembers every tag for the
///   connection's life. Here each channel remembers a high-water mark plus
///   the tags above it, at most [`Config::max_remembered_tags`] in all;
///   counting up (what every original client does) costs nothing. When the
///   limit is hit, the oldest remembered tag is forgotten by raising the
///   mark, and the unused tags below it count as used from then on
///   ([`Stats::tags_forgotten`]).
/// * **Markers**: EOF and ERQ are recognised by exact equality. A request
///   with wire type 0 that is neither is a protocol error; the original
///   treats it as EOF and so do we (receive side ends), reporting
///   [`Event::ProtocolError`] instead of [`Event::PeerClosed`].
/// * **Responses** that match no waiting request are counted and reported
///   ([`Event::UnknownResponse`]); the connection carries on.
/// * **End of the peer's stream** (EOF packet, transport EOF between packets,
///   or a protocol error): every waiting request of ours is cancelled
///   ([`Event::RequestCancelled`]), and this side closes by itself as with
///   [`close`](Self::close). Bytes after an EOF packet are ignored, as the
///   original stops reading.
/// * **Orderly close** ([`close`](Self::close)): ERQ now (if not sent), then
///   the responses to requests still in flight as they are given, then EOF
///   once none is left; our own waiting requests may still be answered until
///   the peer's EOF. [`Event::Closed`] follows when our EOF has been
///   transmitted and the peer's stream has ended. For a peer that sends
///   `[request 30 (slow), ERQ, EOF]` the output is ERQ, response, EOF, as
///   the original's.
///
/// # Payloads
///
/// Received payloads are `Bytes` slices of the receive buffer (no copy);
/// holding one keeps that buffer's allocation alive, so copy a small payload
/// that must outlive many later packets.
///
/// # Limits
///
/// See [`Config`]: packet length, waiting requests, in-flight peer requests
/// (backpressure), tag values, channels, remembered tags, receive and
/// transmit bytes. Memory held is about `max_receive_buffer +
/// max_transmit_buffer + max_packet_len × max_inflight_inbound` plus the
/// bookkeeping of waiting and in-flight requests and remembered tags.
#[derive(Debug)]
pub struct Connection {
    config: Config,
    limits: ParseLimits,
    /// Bytes of packets not yet handled.
    rx: ReceiveBuffer,
    rx_end: Option<RxEnd>,
    /// What the driver said of the transport.
    transport: Transport,
    peer_erq: bool,
    /// Parsing stopped at a whole packet for lack of room; see `resume`.
    stalled: bool,
    events: VecDeque<Event>,
    /// Payload bytes plus [`EVENT_OVERHEAD`] per event in `events`.
    event_cost: usize,
    tx: TransmitQueue,
    send: SendState,
    /// The open channels, each with its tables of our waiting requests and
    /// the peer's requests in flight.
    channels: Channels,
    /// Our requests awaiting a response, all channels.
    pending: usize,
    /// The deadlines of our waiting requests, earliest first. Entries of
    /// requests that ended otherwise are dropped lazily, but never left at
    /// the top (so [`poll_timeout`](Self::poll_timeout) is exact), and the
    /// heap is rebuilt when they outnumber the live ones.
    deadlines: BinaryHeap<Reverse<(Instant, u64, u64)>>,
    /// Waiting requests with a deadline.
    timed: usize,
    /// Peer requests delivered and not answered yet, all channels.
    inflight: usize,
    /// Window lengths of each channel's tables.
    pending_window: usize,
    inflight_window: usize,
    /// Tags remembered individually, all channels.
    remembered: usize,
    /// What the last `poll_lent` lent, released by the next call.
    lent: Lent,
    stats: Stats,
}

/// What [`Connection::poll_lent`] lent last; released (the packet removed
/// from the receive buffer, the event dropped) by the next call that needs
/// the buffer.
#[derive(Debug, Default)]
enum Lent {
    #[default]
    Nothing,
    /// The first `len` bytes of `rx`: a packet parsed on poll.
    Packet { len: usize, payload_len: usize },
    /// A queued event, taken out of the queue.
    Event(Event),
}

/// A packet whose event carries its payload, handled up to the delivery:
/// it is still the first `len` bytes of `rx`, its payload the last
/// `payload_len` of them.
#[derive(Clone, Copy, Debug)]
struct Delivery {
    channel: u64,
    tag: u64,
    /// The request's user type; `None` for a response.
    rq_type: Option<u64>,
    pflags: u64,
    len: usize,
    payload_len: usize,
}

impl Delivery {
    /// A response's fields and `payload`, for `receive`.
    fn lend_response<'a>(&self, payload: &'a [u8]) -> LentResponse<'a> {
        LentResponse {
            channel: self.channel,
            tag: self.tag,
            ok: self.pflags & 1 != 0,
            flags: self.pflags >> 1,
            payload,
        }
    }

    /// The event, with `payload`.
    fn lend<'a>(&self, payload: &'a [u8]) -> BorrowedEvent<'a> {
        let (channel, tag) = (self.channel, self.tag);
        match self.rq_type {
            Some(rq_type) => BorrowedEvent::RequestReceived {
                channel,
                tag,
                rq_type,
                flags: self.pflags,
                payload,
            },
            None => BorrowedEvent::ResponseReceived {
                channel,
                tag,
                ok: self.pflags & 1 != 0,
                flags: self.pflags >> 1,
                payload,
            },
        }
    }

    /// The event, owning `payload`.
    fn into_event(self, payload: Bytes) -> Event {
        // The lent view with no payload, given the owned one instead.
        self.lend(&[]).to_event_with(|_| payload)
    }
}

/// What handling one received packet came to.
enum Step {
    /// A request or response to deliver with its payload.
    Deliver(Delivery),
    /// The packet is handled (any events it made are queued): go on.
    Handled,
    /// A whole packet waits for room (events, in-flight slots, transmit
    /// queue).
    Blocked,
    /// No whole packet, or the receive side has ended.
    Idle,
}

#[derive(Debug)]
struct Channel {
    /// Our next tag; `None` once `u64::MAX` was used.
    next_tag: Option<u64>,
    /// The peer's tags on this channel.
    seen: TagMemory,
    /// Our requests awaiting a response, with their deadlines.
    pending: TagWindow<Option<Instant>>,
    /// The peer's requests delivered and not answered yet.
    inflight: TagWindow<()>,
}

impl Channel {
    fn new(first_tag: u64, pending_window: usize, inflight_window: usize) -> Self {
        Channel {
            next_tag: Some(first_tag),
            seen: TagMemory::default(),
            pending: TagWindow::new(pending_window),
            inflight: TagWindow::new(inflight_window),
        }
    }
}

/// The open channels: channel 0, always open and nearly always the only
/// one, without a map look-up; the others (a framewire extension) in a map.
#[derive(Debug)]
struct Channels {
    zero: Channel,
    others: BTreeMap<u64, Channel>,
}

impl Channels {
    fn get(&self, channel: u64) -> Option<&Channel> {
        if channel == 0 {
            Some(&self.zero)
        } else {
            self.others.get(&channel)
        }
    }

    #[inline]
    fn get_mut(&mut self, channel: u64) -> Option<&mut Channel> {
        if channel == 0 {
            Some(&mut self.zero)
        } else {
            self.others.get_mut(&channel)
        }
    }

    fn contains_key(&self, channel: u64) -> bool {
        channel == 0 || self.others.contains_key(&channel)
    }

    fn len(&self) -> usize {
        1 + self.others.len()
    }

    /// Opens `channel` (not 0, which is always open).
    fn insert(&mut self, channel: u64, ch: Channel) {
        debug_assert_ne!(channel, 0, "channel 0 is always open");
        self.others.insert(channel, ch);
    }

    /// Every channel in ascending order.
    fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut Channel)> {
        core::iter::once((0, &mut self.zero)).chain(self.others.iter_mut().map(|(&c, ch)| (c, ch)))
    }
}

/// The window length of a per-channel table whose live entries are bounded
/// by `limit`: twice that, so that one old entry holding back the front
/// costs nothing until the window has moved on by `limit`, within
/// `16..=65,536` slots.
fn window_len(limit: usize) -> usize {
    limit.saturating_mul(2).clamp(16, 1 << 16)
}

fn event_cost(event: &Event) -> usize {
    EVENT_OVERHEAD
        + match event {
            Event::RequestReceived { payload, .. } | Event::ResponseReceived { payload, .. } => {
                payload.len()
            }
            _ => 0,
        }
}

impl Connection {
    /// A new connection (no bytes exchanged yet; the protocol has no
    /// handshake).
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        let pending_window = window_len(config.max_pending_outbound);
        let inflight_window = window_len(config.max_inflight_inbound);
        // Channel 0 skips the EOF and ERQ tags.
        let channels = Channels {
            zero: Channel::new(2, pending_window, inflight_window),
            others: BTreeMap::new(),
        };
        Ok(Connection {
            limits: config.parse_limits(),
            config,
            rx: ReceiveBuffer::default(),
            rx_end: None,
            transport: Transport::Open,
            peer_erq: false,
            stalled: false,
            events: VecDeque::new(),
            event_cost: 0,
            tx: TransmitQueue::default(),
            send: SendState::Open,
            channels,
            pending: 0,
            deadlines: BinaryHeap::new(),
            timed: 0,
            inflight: 0,
            pending_window,
            inflight_window,
            remembered: 0,
            lent: Lent::Nothing,
            stats: Stats::default(),
        })
    }

    // ----- inputs -----

    /// Bytes received from the transport. Returns how many were taken: fewer
    /// than offered when the receive budget
    /// ([`Config::max_receive_buffer`]) is used up by partial packets and
    /// unpolled events — offer the rest again after polling events,
    /// answering requests and transmitting.
    ///
    /// After the peer's EOF packet every byte is taken and ignored, as the
    /// original stops reading. After a protocol error this fails with
    /// [`InputError::Failed`], and after [`handle_eof`](Self::handle_eof)
    /// or [`handle_transport_lost`](Self::handle_transport_lost) with
    /// [`InputError::AfterTransportEof`].
    pub fn handle_input(&mut self, data: &[u8]) -> Result<usize, InputError> {
        self.release_lent();
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
        let held = self.rx.len() + self.event_cost;
        let room = self.config.max_receive_buffer.saturating_sub(held);
        let take = room.min(data.len());
        self.rx.append(&data[..take]);
        self.stats.bytes_received += take as u64;
        self.pump();
        Ok(take)
    }

    /// The transport will deliver no more bytes. Buffered packets are still
    /// processed; the receive side then ends with [`Event::PeerClosed`]
    /// (`TransportEof`), or [`Event::ProtocolError`] (`Truncated`) if it
    /// stopped inside a packet. Idempotent.
    ///
    /// Only the receive side ends: our output still waits to be transmitted
    /// (a half-closed peer may still read it), and input stalled behind a
    /// refusal waiting for transmit room is handled once room appears. If
    /// the transport is gone both ways, call
    /// [`handle_transport_lost`](Self::handle_transport_lost) instead, or
    /// waiting requests may never end.
    pub fn handle_eof(&mut self) {
        if self.transport == Transport::Open {
            self.transport = Transport::Eof;
            self.pump();
        }
    }

    /// The transport is gone both ways (a reset, a dead link, a failed
    /// write): what is queued can never be sent and no more bytes will come.
    /// A driver calls it instead of `handle_eof` when the connection is
    /// lost, not merely half-closed. May follow `handle_eof`. Idempotent.
    ///
    /// * **Output**: the queued output is dropped (none of it counts as
    ///   sent), and from now on **nothing is queued**:
    ///   [`poll_transmit`](Self::poll_transmit) stays `None` and
    ///   [`transmit_len`](Self::transmit_len) 0. [`submit`](Self::submit)
    ///   fails with [`SubmitError::PeerGone`]. An answer given through
    ///   [`respond`](Self::respond) or [`reject`](Self::reject) to a request
    ///   in flight is accepted (the request is no longer in flight; a handler
    ///   cannot know the link died) and dropped, counted in
    ///   [`Stats::requests_dropped`] instead of [`Stats::responses_sent`].
    ///   [`end_requests`](Self::end_requests) and [`close`](Self::close)
    ///   still move the state on ([`requests_ended`](Self::requests_ended),
    ///   [`eof_queued`](Self::eof_queued)) but their ERQ and EOF are dropped
    ///   too.
    /// * **Input**: buffered packets are still handled (responses and
    ///   requests are delivered; events queued before the loss stay queued),
    ///   without waiting for transmit room: the refusals the connection would
    ///   make itself, and peer requests beyond
    ///   [`Config::max_inflight_inbound`], are dropped (counted in
    ///   [`Stats::requests_dropped`]). Then the receive side ends as with
    ///   [`handle_eof`](Self::handle_eof): waiting requests end with
    ///   [`Event::RequestCancelled`]. If unpolled events hold packets back,
    ///   this happens as they are polled.
    /// * **Close**: [`Event::Closed`] needs our EOF transmitted, so it
    ///   follows a loss only if our EOF had been transmitted (through
    ///   `advance_transmit`) before it; [`state`](Self::state) otherwise
    ///   stays [`State::Closing`].
    pub fn handle_transport_lost(&mut self) {
        // From here on the end of input, and the input stalled behind a
        // refusal or a full in-flight table, are handled without waiting.
        self.transport = Transport::Lost;
        self.pump();
        // Nothing queued before can be sent (nothing is queued from now on).
        self.tx.discard();
    }

    /// The clock reads `now`: every request whose deadline is at or before
    /// `now` ends with [`Event::RequestTimedOut`].
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((deadline, channel, tag))) = self.deadlines.peek() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            // An entry of a request that ended otherwise is skipped.
            let Some(ch) = self.channels.get_mut(channel) else {
                continue;
            };
            if ch.pending.get(tag) != Some(&Some(deadline)) {
                continue;
            }
            ch.pending.remove(tag);
            self.pending -= 1;
            self.timed -= 1;
            self.stats.timed_out += 1;
            self.push_event(Event::RequestTimedOut { channel, tag });
        }
        self.prune_deadlines();
    }

    // ----- commands -----

    /// Sends a request of user type `rq_type` (sent as `rq_type + 1`) with
    /// `flags` and `payload` on `channel`; returns its tag. The response
    /// arrives as [`Event::ResponseReceived`] with this `(channel, tag)`, or
    /// the request ends with [`Event::RequestTimedOut`] after `timeout` (from
    /// `now`), or [`Event::RequestCancelled`] if the peer's stream ends first.
    ///
    /// `payload` is anything that becomes `Bytes` without copying (`Bytes`,
    /// `Vec<u8>`, `&'static [u8]`, `String`); copy a borrowed slice with
    /// `Bytes::copy_from_slice`. Payloads longer than
    /// [`Config::copy_threshold`] are queued without copying.
    ///
    /// Checked in this order, nothing queued on error: the peer's stream has
    /// not ended and the transport is not lost
    /// ([`handle_transport_lost`](Self::handle_transport_lost)), else
    /// [`SubmitError::PeerGone`]; we have not sent ERQ, the channel is open, a tag is left,
    /// the fields encode, fewer than [`Config::max_pending_outbound`] are
    /// waiting, the transmit queue is under [`Config::max_transmit_buffer`],
    /// the packet fits [`Config::max_packet_len`].
    pub fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: impl Into<Bytes>,
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        rules::submit_gate(self.transport, self.rx_end.is_some(), self.send)?;
        let Some(ch) = self.channels.get_mut(channel) else {
            return Err(SubmitError::UnknownChannel { channel });
        };
        let Some(tag) = ch.next_tag.filter(|&t| t <= self.config.max_tag) else {
            return Err(SubmitError::TagsExhausted { channel });
        };
        let payload = payload.into();
        let packet = Packet::request(channel, tag, rq_type, flags, &payload)?;
        if self.pending >= self.config.max_pending_outbound {
            return Err(SubmitError::TooManyPending {
                max: self.config.max_pending_outbound,
            });
        }
        if self.tx.len() >= self.config.max_transmit_buffer {
            return Err(SubmitError::TransmitFull {
                queued: self.tx.len(),
                max: self.config.max_transmit_buffer,
            });
        }
        // A small request on channel 0 whose payload is copied has its
        // header written straight; the rest is staged by the general
        // encoder. (Here and in `Answerer::respond`, not inside
        // `TransmitQueue::stage`: there the choice cost 61 instructions a
        // request more in `scripts/instructions.sh`'s lent pair, carried
        // through `Staged`, and made the eager pair dearer too.)
        let small = if channel == 0 && payload.len() <= self.config.copy_threshold {
            small_header(tag, packet.f_field(), packet.rq_type_wire(), payload.len())
        } else {
            None
        };
        let (staged, len) = if let Some((_, n)) = &small {
            (None, n + payload.len())
        } else {
            let staged = self.tx.stage(&packet);
            let len = staged.len;
            (Some(staged), len)
        };
        if len > self.config.max_packet_len {
            return Err(SubmitError::PayloadTooLong {
                len,
                max: self.config.max_packet_len,
            });
        }
        let deadline = timeout.map(|d| now + d);
        ch.next_tag = tag.checked_add(1);
        ch.pending.add(tag, deadline);
        self.pending += 1;
        if let Some(d) = deadline {
            self.deadlines.push(Reverse((d, channel, tag)));
            self.timed += 1;
        }
        match (staged, small) {
            (Some(staged), _) => self.queue_staged(&staged, &payload, Some(&payload)),
            (None, Some((header, n))) if self.transport.can_send() => {
                self.tx.push_small(header, n, &payload);
            }
            (None, _) => {}
        }
        self.stats.requests_sent += 1;
        Ok(tag)
    }

    /// Answers the peer's request `(channel, tag)` successfully: the
    /// response carries `pflags = (flags << 1) | 1` and `payload`.
    ///
    /// After [`handle_transport_lost`](Self::handle_transport_lost) an
    /// answer is accepted but dropped, not queued (counted in
    /// [`Stats::requests_dropped`]); the errors are the same.
    pub fn respond(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: impl Into<Bytes>,
    ) -> Result<(), RespondError> {
        if !self.is_inflight(channel, tag) {
            return Err(RespondError::NotInFlight { channel, tag });
        }
        let payload = payload.into();
        let packet =
            Packet::response(channel, tag, true, flags, &payload).map_err(RespondError::Field)?;
        self.answer(&packet, Some(&payload))
    }

    /// Answers the peer's request `(channel, tag)` with a failure: `pflags =
    /// 0` and `reason` as the payload. The original's server sends
    /// [`reason::EXCEPTION_DURING_HANDLER`] when its handler fails. After a
    /// loss it is dropped as [`respond`](Self::respond) says.
    pub fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError> {
        if !self.is_inflight(channel, tag) {
            return Err(RespondError::NotInFlight { channel, tag });
        }
        self.answer(&Packet::failure(channel, tag, reason), None)
    }

    /// Answers a handler's reply as [`respond`](Self::respond) does, but when
    /// the reply cannot be sent (flags that cannot be encoded, a packet over
    /// [`Config::max_packet_len`]) answers the original's failure for a
    /// handler that raised, [`reason::EXCEPTION_DURING_HANDLER`], instead:
    /// the peer learns that its request failed rather than waiting forever.
    ///
    /// Returns `Ok(None)` when the reply went out as given, `Ok(Some(e))`
    /// when the failure went out in its place because of `e`, and `Err` when
    /// nothing could be sent (the request is not in flight, or even the
    /// failure is over the limits).
    pub fn respond_or_fail(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: impl Into<Bytes>,
    ) -> Result<Option<RespondError>, RespondError> {
        let answered = self.respond(channel, tag, flags, payload);
        or_fail(answered, || {
            self.reject(channel, tag, reason::EXCEPTION_DURING_HANDLER)
        })
    }

    /// [`reject`](Self::reject) with `reason`, falling back to
    /// [`reason::EXCEPTION_DURING_HANDLER`] when `reason` makes the packet too
    /// long; the results are those of
    /// [`respond_or_fail`](Self::respond_or_fail).
    pub fn reject_or_fail(
        &mut self,
        channel: u64,
        tag: u64,
        reason: &str,
    ) -> Result<Option<RespondError>, RespondError> {
        let answered = self.reject(channel, tag, reason);
        or_fail(answered, || {
            self.reject(channel, tag, reason::EXCEPTION_DURING_HANDLER)
        })
    }

    fn answer(&mut self, packet: &Packet<'_>, owned: Option<&Bytes>) -> Result<(), RespondError> {
        let staged = self.tx.stage(packet);
        let len = staged.len;
        if len > self.config.max_packet_len {
            return Err(RespondError::PayloadTooLong {
                len,
                max: self.config.max_packet_len,
            });
        }
        self.leave_inflight(packet.channel(), packet.tag());
        // Once the transport is lost nobody will send it (`after_answer`
        // counts it dropped).
        self.queue_staged(&staged, packet.payload(), owned);
        self.after_answer();
        Ok(())
    }

    /// The peer's request `(channel, tag)` is no longer in flight.
    fn leave_inflight(&mut self, channel: u64, tag: u64) {
        if let Some(ch) = self.channels.get_mut(channel) {
            if ch.inflight.remove(tag).is_some() {
                self.inflight -= 1;
            }
        }
    }

    /// Counts an answer just queued (or dropped, the transport being lost),
    /// and sends EOF or resumes parsing if it was waiting for it.
    fn after_answer(&mut self) {
        if self.transport.can_send() {
            self.stats.responses_sent += 1;
        } else {
            self.stats.requests_dropped += 1;
        }
        self.maybe_send_eof();
        self.resume();
    }

    /// Stops waiting for our request `(channel, tag)`: no event will come for
    /// it, and its response, if it arrives, counts as unknown. Returns whether
    /// it was waiting. (For a driver whose caller gave up.)
    pub fn abandon(&mut self, channel: u64, tag: u64) -> bool {
        self.take_pending(channel, tag)
    }

    /// Sends ERQ: we send no more requests. Our waiting requests may still be
    /// answered; the peer's requests are still served. Idempotent. (After a
    /// loss the ERQ is dropped, not queued.)
    pub fn end_requests(&mut self) {
        if self.send == SendState::Open {
            self.send = SendState::RequestsEnded;
            self.queue_packet(&ERQ, None);
        }
    }

    /// Begins the orderly close: ERQ (if not sent), the responses to the
    /// requests still in flight as they are given, then EOF once none is
    /// left. New peer requests are refused meanwhile. [`Event::Closed`]
    /// follows when our EOF is transmitted and the peer's stream has ended.
    /// Idempotent. (After a loss the ERQ and EOF are dropped, not queued,
    /// and `Closed` does not follow.)
    pub fn close(&mut self) {
        self.begin_close();
        self.pump();
    }

    /// Opens channel `channel` for requests in both directions (channel 0 is
    /// always open). Other channels are a framewire extension: the original
    /// has no way to open one and refuses them with `unknown channel %d`; both
    /// ends must open a channel before using it. Our tags on a new channel
    /// start at 0. Idempotent.
    pub fn open_channel(&mut self, channel: u64) -> Result<(), ChannelError> {
        if self.channels.contains_key(channel) {
            return Ok(());
        }
        if self.channels.len() > self.config.max_channels {
            return Err(ChannelError::TooManyChannels {
                max: self.config.max_channels,
            });
        }
        self.channels.insert(
            channel,
            Channel::new(0, self.pending_window, self.inflight_window),
        );
        Ok(())
    }

    // ----- outputs -----

    /// The next event, if any. Polling frees receive budget, so parsing
    /// resumes by itself if it was waiting for room. With
    /// [`Config::parse_on_poll`] the next packet is parsed here when no
    /// event is queued.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.release_lent();
        if self.events.is_empty() && self.config.parse_on_poll {
            if let Some(d) = self.parse_next() {
                self.accept(&d);
                let payload = self.take_payload(d.len, d.payload_len);
                return Some(d.into_event(payload));
            }
        }
        let event = self.events.pop_front()?;
        self.event_cost -= event_cost(&event);
        self.resume();
        Some(event)
    }

    /// The next event, as [`poll_event`](Self::poll_event) gives it, but
    /// with its payload lent instead of owned: valid until the next call on
    /// the connection. With [`Config::parse_on_poll`] a packet's payload is
    /// lent straight from the receive buffer (no `Bytes`, no queued event);
    /// [`take_lent_payload`](Self::take_lent_payload) turns it into `Bytes`
    /// without copying when the caller needs to keep it.
    ///
    /// ```
    /// use framewire::packet::{BorrowedEvent, Config, Connection};
    /// use framewire::time::Instant;
    ///
    /// let lazy = Config { parse_on_poll: true, ..Config::default() };
    /// let mut client = Connection::new(lazy).unwrap();
    /// let mut server = Connection::new(lazy).unwrap();
    /// client.submit(0, 0, 0, &b"ping"[..], Instant::ZERO, None).unwrap();
    /// let mut wire = [0u8; 64];
    /// let n = client.fill_transmit(&mut wire);
    /// server.handle_input(&wire[..n]).unwrap();
    /// let Some(BorrowedEvent::RequestReceived { channel, tag, payload, .. }) = server.poll_lent()
    /// else {
    ///     panic!("a request");
    /// };
    /// assert_eq!(payload, b"ping");
    /// server.respond(channel, tag, 0, &b"pong"[..]).unwrap();
    /// ```
    pub fn poll_lent(&mut self) -> Option<BorrowedEvent<'_>> {
        self.poll_lent_answering(|_, _| {})
    }

    /// [`poll_lent`](Self::poll_lent), answering requests in place: each
    /// peer request is first lent to `answer`, and if it answers through
    /// the [`Answerer`] the response is encoded straight into the transmit
    /// queue (its payload copied from wherever it is borrowed, the
    /// request's own payload included) and the request is done: no event
    /// is returned for it and it never counts as in flight. A request
    /// `answer` leaves unanswered is returned as
    /// [`BorrowedEvent::RequestReceived`], to be answered later as usual.
    ///
    /// ```
    /// use framewire::packet::{BorrowedEvent, Config, Connection};
    /// use framewire::time::Instant;
    ///
    /// let lazy = Config { parse_on_poll: true, ..Config::default() };
    /// let (mut client, mut server) = (Connection::new(lazy).unwrap(), Connection::new(lazy).unwrap());
    /// client.submit(0, 0, 5, &b"echo me"[..], Instant::ZERO, None).unwrap();
    /// let mut wire = [0u8; 64];
    /// let n = client.fill_transmit(&mut wire);
    /// server.handle_input(&wire[..n]).unwrap();
    /// // An echo server: every request answered with its own flags and payload.
    /// let none = server.poll_lent_answering(|rq, answer| {
    ///     answer.respond(rq.flags, rq.payload).unwrap();
    /// });
    /// assert!(none.is_none());
    /// let n = server.fill_transmit(&mut wire);
    /// client.handle_input(&wire[..n]).unwrap();
    /// let Some(BorrowedEvent::ResponseReceived { ok: true, flags: 5, payload, .. }) = client.poll_lent()
    /// else {
    ///     panic!("a response");
    /// };
    /// assert_eq!(payload, b"echo me");
    /// ```
    pub fn poll_lent_answering(
        &mut self,
        answer: impl FnMut(LentRequest<'_>, &mut Answerer<'_>),
    ) -> Option<BorrowedEvent<'_>> {
        self.poll_lent_handling(answer, |_| false)
    }

    /// [`poll_lent_answering`](Self::poll_lent_answering), also lending
    /// each response to one of our requests to `receive` first: a response
    /// it takes (returns `true` for) is done, with no event; one it leaves
    /// is returned as [`BorrowedEvent::ResponseReceived`] as usual (its
    /// payload then still available to
    /// [`take_lent_payload`](Self::take_lent_payload)).
    ///
    /// It handles a run of packets in one call, which makes many small
    /// responses cheaper than as many returned events: a pipelining client
    /// copies each payload where it belongs and keeps larger ones (left to
    /// be returned) without copying. Unknown responses (to no waiting
    /// request) are not lent; they are counted and reported as usual.
    ///
    /// ```
    /// use framewire::packet::{BorrowedEvent, Config, Connection};
    /// use framewire::time::Instant;
    ///
    /// let lazy = Config { parse_on_poll: true, ..Config::default() };
    /// let (mut client, mut server) = (Connection::new(lazy).unwrap(), Connection::new(lazy).unwrap());
    /// let short_tag = client.submit(0, 0, 0, &b"short"[..], Instant::ZERO, None).unwrap();
    /// let long_tag = client.submit(0, 0, 0, &[7u8; 300][..], Instant::ZERO, None).unwrap();
    /// let mut wire = [0u8; 1024];
    /// let n = client.fill_transmit(&mut wire);
    /// server.handle_input(&wire[..n]).unwrap();
    /// assert!(server.poll_lent_answering(|rq, a| a.respond(0, rq.payload).unwrap()).is_none());
    /// let n = server.fill_transmit(&mut wire);
    /// client.handle_input(&wire[..n]).unwrap();
    ///
    /// // Short payloads are copied out in place; longer ones come back as events.
    /// let mut short = Vec::new();
    /// let event = client.poll_lent_handling(
    ///     |_, _| {},
    ///     |response| {
    ///         if response.payload.len() > 100 {
    ///             return false;
    ///         }
    ///         short.push((response.tag, response.payload.to_vec()));
    ///         true
    ///     },
    /// );
    /// let Some(BorrowedEvent::ResponseReceived { tag, ok: true, payload, .. }) = event else {
    ///     panic!("the long response");
    /// };
    /// assert_eq!((tag, payload.len()), (long_tag, 300));
    /// assert_eq!(short, [(short_tag, b"short".to_vec())]);
    /// ```
    pub fn poll_lent_handling(
        &mut self,
        mut answer: impl FnMut(LentRequest<'_>, &mut Answerer<'_>),
        mut receive: impl FnMut(LentResponse<'_>) -> bool,
    ) -> Option<BorrowedEvent<'_>> {
        self.release_lent();
        loop {
            if self.events.is_empty() && self.config.parse_on_poll {
                // The fast path has offered its packets to the closures
                // already.
                let (next, offered) = match self.fast_next(&mut answer, &mut receive) {
                    Some(d) => (Some(d), true),
                    None => (self.parse_next(), false),
                };
                match next {
                    Some(d) => {
                        if !offered {
                            let payload = &self.rx.unhandled()[d.len - d.payload_len..d.len];
                            if let Some(rq_type) = d.rq_type {
                                let request = LentRequest {
                                    channel: d.channel,
                                    tag: d.tag,
                                    rq_type,
                                    flags: d.pflags,
                                    payload,
                                };
                                let limits =
                                    (self.config.max_packet_len, self.transport.can_send());
                                if Answerer::offer(&mut self.tx, limits, request, &mut answer) {
                                    self.rx.consume(d.len);
                                    self.answered(d.channel, d.tag, false);
                                    continue;
                                }
                            } else if receive(d.lend_response(payload)) {
                                self.rx.consume(d.len);
                                continue;
                            }
                        }
                        self.accept(&d);
                        self.lent = Lent::Packet {
                            len: d.len,
                            payload_len: d.payload_len,
                        };
                        return Some(d.lend(&self.rx.unhandled()[d.len - d.payload_len..d.len]));
                    }
                    None if self.events.is_empty() => return None,
                    None => {}
                }
            }
            let event = self.events.pop_front()?;
            self.event_cost -= event_cost(&event);
            match event {
                Event::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    flags,
                    ref payload,
                } => {
                    let request = LentRequest {
                        channel,
                        tag,
                        rq_type,
                        flags,
                        payload,
                    };
                    let limits = (self.config.max_packet_len, self.transport.can_send());
                    if Answerer::offer(&mut self.tx, limits, request, &mut answer) {
                        self.answered(channel, tag, true);
                        continue;
                    }
                }
                Event::ResponseReceived {
                    channel,
                    tag,
                    ok,
                    flags,
                    ref payload,
                } => {
                    let response = LentResponse {
                        channel,
                        tag,
                        ok,
                        flags,
                        payload,
                    };
                    if receive(response) {
                        continue;
                    }
                }
                _ => {}
            }
            self.resume();
            self.lent = Lent::Event(event);
            return self.lent_event();
        }
    }

    /// The queued event taken out by `poll_lent_answering`, lent.
    fn lent_event(&self) -> Option<BorrowedEvent<'_>> {
        match &self.lent {
            Lent::Event(e) => Some(e.lend()),
            _ => None,
        }
    }

    /// The payload of the request or response the last
    /// [`poll_lent`](Self::poll_lent) returned, as `Bytes`, without copying
    /// (a slice of the receive buffer, as [`poll_event`](Self::poll_event)
    /// would have given it); empty if that event had no payload or it was
    /// taken already. Call it before anything else on the connection: the
    /// next call releases what was lent.
    pub fn take_lent_payload(&mut self) -> Bytes {
        match core::mem::take(&mut self.lent) {
            Lent::Packet { len, payload_len } => self.take_payload(len, payload_len),
            Lent::Event(
                Event::RequestReceived { payload, .. } | Event::ResponseReceived { payload, .. },
            ) => payload,
            Lent::Event(_) | Lent::Nothing => Bytes::new(),
        }
    }

    /// Removes what the last `poll_lent` lent: its packet from `rx`.
    fn release_lent(&mut self) {
        if !matches!(self.lent, Lent::Nothing) {
            if let Lent::Packet { len, .. } = core::mem::take(&mut self.lent) {
                self.rx.consume(len);
            }
        }
    }

    /// Bookkeeping after `poll_lent_answering`'s closure answered the
    /// request `(channel, tag)`: it leaves the in-flight table if it was
    /// there (a queued event), else its tag is remembered as used.
    fn answered(&mut self, channel: u64, tag: u64, was_in_flight: bool) {
        if was_in_flight {
            self.leave_inflight(channel, tag);
        } else {
            self.remember(channel, tag, false);
        }
        self.after_answer();
    }

    /// The first contiguous slice of queued outbound bytes. Headers and
    /// payloads up to [`Config::copy_threshold`] are coalesced into one
    /// slice; a longer payload starts a new one (see
    /// [`transmit_chunks`](Self::transmit_chunks) to write them all at once).
    /// Should be polled after every input and command. Always `None` after
    /// [`handle_transport_lost`](Self::handle_transport_lost).
    #[must_use]
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        self.tx.front()
    }

    /// Every queued outbound slice, in order, for a vectored write.
    pub fn transmit_chunks(&self) -> TransmitChunks<'_> {
        self.tx.chunks()
    }

    /// Bytes queued for transmission.
    pub fn transmit_len(&self) -> usize {
        self.tx.len()
    }

    /// `n` queued bytes were written to the transport (clamped to what is
    /// queued).
    pub fn advance_transmit(&mut self, n: usize) {
        let n = self.tx.advance(n);
        self.after_transmit(n);
    }

    /// Copies as much queued output as fits into `out`, marks it
    /// transmitted, and returns its length (for drivers that own their send
    /// buffer).
    pub fn fill_transmit(&mut self, out: &mut [u8]) -> usize {
        let n = self.tx.fill(out);
        self.after_transmit(n);
        n
    }

    fn after_transmit(&mut self, n: usize) {
        self.stats.bytes_sent += n as u64;
        self.check_closed();
        self.resume();
    }

    /// The earliest request deadline, for the driver's timer; call
    /// [`handle_timeout`](Self::handle_timeout) when it passes. Should be
    /// polled after every `submit`, response and timeout.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.peek().map(|&Reverse((d, _, _))| d)
    }

    // ----- getters -----

    /// Where the connection is in its life cycle.
    pub fn state(&self) -> State {
        if self.send == SendState::Closed {
            State::Closed
        } else if self.send.closing() || self.rx_end.is_some() {
            State::Closing
        } else {
            State::Open
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How the peer's stream ended cleanly, if it did.
    pub fn peer_closed(&self) -> Option<PeerCloseReason> {
        match self.rx_end {
            Some(RxEnd::Closed(r)) => Some(r),
            _ => None,
        }
    }

    /// The peer's protocol error, if its stream ended with one. The
    /// connection is then in a terminal error state on the receive side.
    pub fn protocol_error(&self) -> Option<ProtocolError> {
        match self.rx_end {
            Some(RxEnd::Failed(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether the peer sent ERQ.
    pub fn peer_ended_requests(&self) -> bool {
        self.peer_erq
    }

    /// Whether we queued ERQ (after which `submit` fails).
    pub fn requests_ended(&self) -> bool {
        self.send.erq_queued()
    }

    /// Whether our EOF has been queued (nothing more will be queued). After
    /// a loss, whether it would have been (it was dropped).
    pub fn eof_queued(&self) -> bool {
        self.send.eof_queued()
    }

    /// Whether [`handle_transport_lost`](Self::handle_transport_lost) was
    /// called: nothing is queued any more.
    pub fn transport_lost(&self) -> bool {
        self.transport == Transport::Lost
    }

    /// Our requests waiting for a response.
    pub fn pending_outbound(&self) -> usize {
        self.pending
    }

    /// Whether our request `(channel, tag)` is waiting for a response.
    pub fn is_pending(&self, channel: u64, tag: u64) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|ch| ch.pending.contains(tag))
    }

    /// Peer requests delivered and not answered yet.
    pub fn inflight_inbound(&self) -> usize {
        self.inflight
    }

    /// Whether the peer's request `(channel, tag)` awaits our answer.
    pub fn is_inflight(&self, channel: u64, tag: u64) -> bool {
        self.channels
            .get(channel)
            .is_some_and(|ch| ch.inflight.contains(tag))
    }

    /// Whether `channel` is open.
    pub fn is_channel_open(&self, channel: u64) -> bool {
        self.channels.contains_key(channel)
    }

    /// The tag our next request on `channel` will use.
    pub fn next_tag(&self, channel: u64) -> Option<u64> {
        self.channels.get(channel).and_then(|c| c.next_tag)
    }

    /// Bytes received and not handled yet: incomplete packets, and with
    /// [`Config::parse_on_poll`] whole packets not polled yet too (not a
    /// packet lent by [`poll_lent`](Self::poll_lent)).
    pub fn receive_buffered(&self) -> usize {
        match self.lent {
            Lent::Packet { len, .. } => self.rx.len() - len,
            _ => self.rx.len(),
        }
    }

    /// Whether a whole received packet is held unprocessed for lack of room
    /// (unpolled events, in-flight slots, transmit queue). It is handled,
    /// and its events queued, by the next call that makes room (answering a
    /// request, polling events, transmitting), not by more input: a driver
    /// that waits for a response must not wait for the transport alone.
    pub fn input_stalled(&self) -> bool {
        self.stalled
    }

    /// Peer tags remembered individually (see [`Config::max_remembered_tags`]).
    pub fn remembered_tags(&self) -> usize {
        self.remembered
    }

    /// Entries in the deadline heap, live or not (for tests of its bound).
    #[cfg(test)]
    pub(crate) fn deadline_entries(&self) -> usize {
        self.deadlines.len()
    }

    // ----- internals -----

    fn push_event(&mut self, event: Event) {
        self.event_cost += event_cost(&event);
        self.events.push_back(event);
    }

    /// Queues `packet`, or drops it once the transport is lost.
    fn queue_packet(&mut self, packet: &Packet<'_>, owned: Option<&Bytes>) {
        let staged = self.tx.stage(packet);
        self.queue_staged(&staged, packet.payload(), owned);
    }

    /// Queues the packet just staged (its header in the transmit queue's
    /// scratch buffer, `payload` its payload), or drops it once the
    /// transport is lost. `owned` is the payload as `Bytes`, if the caller
    /// gave it so: one over the copy threshold is queued without copying.
    fn queue_staged(&mut self, staged: &Staged, payload: &[u8], owned: Option<&Bytes>) {
        if !self.transport.can_send() {
            return;
        }
        match owned {
            Some(bytes) if bytes.len() > self.config.copy_threshold => {
                self.tx.push_staged_shared(staged, bytes.clone());
            }
            _ => self.tx.push_staged(staged, payload),
        }
    }

    fn begin_close(&mut self) {
        self.end_requests();
        if self.send == SendState::RequestsEnded {
            self.send = SendState::Closing;
        }
        self.maybe_send_eof();
    }

    fn maybe_send_eof(&mut self) {
        if self.send == SendState::Closing && self.inflight == 0 {
            self.queue_packet(&EOF, None);
            self.send = SendState::EofQueued {
                end: rules::eof_end(self.transport, self.tx.queued_total()),
            };
            self.check_closed();
        }
    }

    fn check_closed(&mut self) {
        if let SendState::EofQueued { end } = self.send {
            if self.rx_end.is_some() && self.tx.sent_total() >= end {
                self.send = SendState::Closed;
                self.push_event(Event::Closed);
            }
        }
    }

    /// The receive side is over: report it, cancel our waiting requests,
    /// close our side.
    fn end_rx(&mut self, end: RxEnd) {
        self.rx_end = Some(end);
        self.stats.bytes_ignored += self.rx.clear() as u64;
        self.push_event(match end {
            RxEnd::Closed(reason) => Event::PeerClosed { reason },
            RxEnd::Failed(e) => Event::ProtocolError(e),
        });
        self.deadlines.clear();
        self.timed = 0;
        self.pending = 0;
        // In (channel, tag) order.
        let mut cancelled = VecDeque::new();
        for (channel, ch) in self.channels.iter_mut() {
            if !ch.pending.is_empty() {
                cancelled.extend(
                    ch.pending
                        .drain_sorted()
                        .into_iter()
                        .map(|(tag, _)| (channel, tag)),
                );
            }
        }
        for (channel, tag) in cancelled {
            self.stats.cancelled += 1;
            self.push_event(Event::RequestCancelled { channel, tag });
        }
        self.begin_close();
        self.check_closed();
    }

    /// Resumes parsing if it stopped for lack of room (events, in-flight
    /// slots, transmit queue).
    fn resume(&mut self) {
        if self.stalled {
            self.pump();
        }
    }

    /// Parses and handles buffered packets until the buffer holds no whole
    /// packet or something blocks; with [`Config::parse_on_poll`], nothing
    /// (the polls parse).
    fn pump(&mut self) {
        self.release_lent();
        if self.config.parse_on_poll {
            return;
        }
        self.stalled = false;
        while self.rx_end.is_none() {
            if self.event_cost >= self.config.max_receive_buffer {
                self.stalled = true;
                return;
            }
            match self.step() {
                Step::Deliver(d) => {
                    self.accept(&d);
                    let payload = self.take_payload(d.len, d.payload_len);
                    self.push_event(d.into_event(payload));
                }
                Step::Handled => {}
                Step::Blocked => {
                    self.stalled = true;
                    return;
                }
                Step::Idle => return,
            }
        }
    }

    /// With [`Config::parse_on_poll`]: handles packets until one is to be
    /// delivered or an event is queued; nothing lent.
    #[inline]
    fn parse_next(&mut self) -> Option<Delivery> {
        self.stalled = false;
        while self.events.is_empty() {
            match self.step() {
                Step::Deliver(d) => return Some(d),
                Step::Handled => {}
                Step::Blocked => {
                    self.stalled = true;
                    return None;
                }
                Step::Idle => return None,
            }
        }
        None
    }

    /// Handles the whole packet at the front of `rx`, if there is one, up to
    /// its delivery: a delivered packet stays in `rx` for the caller.
    // Inlined into both loops: counted by `scripts/instructions.sh`, 50
    // fewer instructions a request than a call.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn step(&mut self) -> Step {
        if self.rx_end.is_some() {
            return Step::Idle;
        }
        let (head, len) = match Packet::parse_inlined(self.rx.unhandled(), &self.limits) {
            Err(e) => {
                self.end_rx(RxEnd::Failed(ProtocolError::Packet(e)));
                return Step::Handled;
            }
            Ok(None) => {
                if self.transport == Transport::Open {
                    return Step::Idle;
                }
                if self.rx.is_empty() {
                    self.end_rx(RxEnd::Closed(PeerCloseReason::TransportEof));
                } else {
                    let have = self.rx.len();
                    let need = Packet::peek_len(self.rx.unhandled(), &self.limits)
                        .ok()
                        .flatten();
                    self.end_rx(RxEnd::Failed(ProtocolError::Truncated { have, need }));
                }
                return Step::Handled;
            }
            Ok(Some((packet, len))) => (Head::of(&packet), len),
        };
        match head.kind(self.config.max_tag) {
            Kind::Eof => {
                self.rx.consume(len);
                self.stats.packets_received += 1;
                self.end_rx(RxEnd::Closed(PeerCloseReason::EofPacket));
            }
            Kind::Erq => {
                self.rx.consume(len);
                self.stats.packets_received += 1;
                if !self.peer_erq {
                    self.peer_erq = true;
                    self.push_event(Event::PeerEndedRequests);
                }
            }
            Kind::MalformedMarker => {
                self.rx.consume(len);
                self.stats.packets_received += 1;
                self.end_rx(RxEnd::Failed(ProtocolError::MalformedMarker {
                    channel: head.channel,
                    tag: head.tag,
                }));
            }
            Kind::TagTooLarge => {
                self.end_rx(RxEnd::Failed(ProtocolError::TagTooLarge {
                    tag: head.tag,
                    max: self.config.max_tag,
                }));
            }
            Kind::Request { rq_type } => return self.on_request(head, rq_type, len),
            Kind::Response => return self.on_response(head, len),
        }
        Step::Handled
    }

    fn on_response(&mut self, head: Head, len: usize) -> Step {
        self.stats.packets_received += 1;
        if self.take_pending(head.channel, head.tag) {
            self.stats.responses_received += 1;
            Step::Deliver(Delivery {
                channel: head.channel,
                tag: head.tag,
                rq_type: None,
                pflags: head.pflags,
                len,
                payload_len: head.payload_len,
            })
        } else {
            self.rx.consume(len);
            self.stats.unknown_responses += 1;
            self.push_event(Event::UnknownResponse {
                channel: head.channel,
                tag: head.tag,
            });
            Step::Handled
        }
    }

    fn on_request(&mut self, head: Head, rq_type: u64, len: usize) -> Step {
        let channel = self.channels.get(head.channel);
        let refusal = rules::refusal(
            self.config.accept_requests,
            self.peer_erq,
            self.send,
            channel.map(|ch| ch.inflight.contains(head.tag) || ch.seen.contains(head.tag)),
        );
        if let Some(refusal) = refusal {
            // Once our EOF is queued the refusal cannot be sent; once the
            // transport is lost it never will be: dropped, not waited for.
            if self.send.eof_queued() || self.transport == Transport::Lost {
                self.rx.consume(len);
                self.stats.packets_received += 1;
                self.stats.requests_dropped += 1;
                return Step::Handled;
            }
            if self.tx.len() >= self.config.max_transmit_buffer {
                return Step::Blocked;
            }
            self.rx.consume(len);
            self.stats.packets_received += 1;
            self.stats.requests_refused += 1;
            if refusal == rules::Refusal::TagInUse {
                self.stats.tags_reused += 1;
            }
            let mut text = [0u8; reason::TagInUse::MAX_LEN];
            let packet = rules::refusal_packet(
                refusal,
                head.channel,
                head.tag,
                &mut text,
                self.config.max_packet_len,
            );
            self.queue_packet(&packet, None);
            return Step::Handled;
        }
        if self.inflight >= self.config.max_inflight_inbound {
            if self.transport == Transport::Lost {
                // It could never be answered: dropped, not waited for.
                self.rx.consume(len);
                self.stats.packets_received += 1;
                self.stats.requests_dropped += 1;
                return Step::Handled;
            }
            return Step::Blocked;
        }
        self.stats.packets_received += 1;
        self.stats.requests_received += 1;
        Step::Deliver(Delivery {
            channel: head.channel,
            tag: head.tag,
            rq_type: Some(rq_type),
            pflags: head.pflags,
            len,
            payload_len: head.payload_len,
        })
    }

    /// A delivered request is in flight from now on (a response needs
    /// nothing more).
    fn accept(&mut self, d: &Delivery) {
        if d.rq_type.is_some() {
            self.remember(d.channel, d.tag, true);
        }
    }

    /// Removes the packet of `len` bytes from the front of `rx` and returns
    /// its payload (its last `payload_len` bytes) without copying.
    fn take_payload(&mut self, len: usize, payload_len: usize) -> Bytes {
        self.rx.split_packet(len, payload_len)
    }

    /// Ends our waiting request `(channel, tag)`; returns whether it was
    /// waiting.
    fn take_pending(&mut self, channel: u64, tag: u64) -> bool {
        let Some(deadline) = self
            .channels
            .get_mut(channel)
            .and_then(|ch| ch.pending.remove(tag))
        else {
            return false;
        };
        self.pending -= 1;
        if deadline.is_some() {
            self.timed -= 1;
            self.prune_deadlines();
        }
        true
    }

    /// Drops deadline entries of requests no longer waiting from the top of
    /// the heap, and rebuilds it when such entries outnumber the live ones
    /// (so it holds at most about twice the waiting requests).
    fn prune_deadlines(&mut self) {
        let channels = &self.channels;
        let live = |&Reverse((d, channel, tag)): &Reverse<(Instant, u64, u64)>| {
            channels
                .get(channel)
                .and_then(|ch| ch.pending.get(tag))
                .is_some_and(|&w| w == Some(d))
        };
        while let Some(top) = self.deadlines.peek() {
            if live(top) {
                break;
            }
            self.deadlines.pop();
        }
        if self.deadlines.len() > 2 * self.timed + 32 {
            self.deadlines.retain(live);
        }
    }

    /// Records the peer's accepted request `(channel, tag)` as in flight (if
    /// `in_flight`: it is not when answered at once) and its tag as used.
    #[inline]
    fn remember(&mut self, channel: u64, tag: u64, in_flight: bool) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if in_flight {
            ch.inflight.add(tag, ());
            self.inflight += 1;
        }
        let delta = ch.seen.insert(tag);
        self.remembered = self.remembered.saturating_add_signed(delta);
        if self.remembered > self.config.max_remembered_tags {
            self.forget_over_limit(channel);
        }
    }

    /// Forgets `channel`'s oldest remembered tags until the count is
    /// within [`Config::max_remembered_tags`] again (or it has none left).
    #[cold]
    #[inline(never)]
    fn forget_over_limit(&mut self, channel: u64) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        while self.remembered > self.config.max_remembered_tags {
            let freed = ch.seen.forget_oldest();
            if freed == 0 {
                break;
            }
            self.remembered -= freed;
            self.stats.tags_forgotten += 1;
        }
    }
}
