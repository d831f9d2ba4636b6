//! The model of the packet-connection targets (`packet_connection`,
//! `borrowed_connection`): two connections joined by simulated links, driven
//! by a list of operations, checked after every step.
//!
//! * [`Op`], [`OpList`] and the stable input encoding of operations;
//! * [`AllocCfg`] / [`BorrowedCfg`]: a connection's limits from fuzz bytes;
//! * [`Endpoint`]: the alloc [`Connection`] and the no-alloc
//!   [`BorrowedConnection`] behind one interface (events come out owned);
//! * [`World`]: the two ends, their links and the model, with
//!   [`World::step`], [`World::settle`] and the orderly [`World::finish`].
//!
//! # Input encoding of operations
//!
//! The configurations (`#[derive(Arbitrary)]` structs of integers and
//! booleans: integers little-endian, a `bool` is bit 0 of a byte, an
//! `Option` a `bool` byte then the value) come first; then operations, one
//! after the other until the input ends (at most [`MAX_OPS`]). An operation
//! is a code byte then its fields in declaration order (`who`: bit 0 of a
//! byte, `A` = 0; `Inject`'s bytes: a length byte, then that many bytes or
//! as many as are left). The codes are fixed ([`Op::code`]); a code a target
//! does not know is mapped onto the ones it knows (modulo their number). A
//! new operation gets a new code, so an input written with the known codes
//! (the seeds `fuzz/seeds/generate.py` writes) keeps its meaning when
//! operations are added.
//!
//! # What the model checks
//!
//! After every step:
//!
//! * every submitted request ends exactly once (response, cancellation or
//!   timeout; `abandon` ends it silently), and after the final orderly drain
//!   none is left;
//! * a response reaches only the request it answers: the same `(channel,
//!   tag)`, with the payload and flags the peer gave it, or a failure text of
//!   `packet::reason` the peer's connection generated (whole, or cut exactly
//!   where it would pass the peer's `max_packet_len`), unless hostile input
//!   was injected, which only relaxes these payload checks;
//! * a request reaches the peer unaltered and no `(channel, tag)` is
//!   delivered twice, none without `accept_requests`;
//! * everything a connection transmits (hostile input or not) is a stream of
//!   canonical, well-formed packets within its own `max_packet_len`: each
//!   request one it submitted, sent once; each response an answer it gave,
//!   sent once, or a refusal with a `reason` text; ERQ at most once; nothing
//!   after EOF;
//! * timeouts fire exactly at their deadlines and `poll_timeout` is the
//!   earliest one;
//! * a `BorrowedConnection` never holds more than its receive buffer
//!   (`receive_buffered <= receive_used <= rx.len()`), never queues more
//!   than its transmit buffer and always keeps room for ERQ and EOF, and
//!   never has more than `P` waiting, `I` in flight or `T` remembered tags;
//!   an alloc `Connection` stays within its `Config` (its transmit queue
//!   over the limit by at most one packet, ERQ, EOF and the answers given
//!   since it was last under it);
//! * a failed `submit` changes nothing and `NoRoom` is only reported (by a
//!   `BorrowedConnection`) when the packet does not fit; answers fail only
//!   with `NoRoom` or `PayloadTooLong`;
//! * the counters (`stats`) agree with the requests, answers, events and
//!   bytes seen;
//! * after a loss nothing is queued or transmitted (`submit` fails with
//!   `PeerGone`; an answer is accepted, never `NoRoom`, counted in
//!   `requests_dropped` and never reaches the peer), a second loss changes
//!   nothing, input is refused, events queued before it are still
//!   delivered, once the events are drained the receive side has ended and
//!   no request waits (nor is input stalled), and `Closed` (state and event)
//!   is reported exactly when our EOF had been transmitted before the loss.
//!
//! How a shut write side behaves is the target's choice
//! ([`Rules::shut_keeps_output`]): its output is kept queued and never
//! written, or (as a driver whose socket can no longer send must) dropped.
//! With output dropped, the final drain must also close both ends (a lost
//! end only if its EOF went out before the loss) with every request and
//! answer on the wire.
//!
//! With `FRAMEWIRE_FUZZ_STATES` set in the environment, every run prints the
//! [`World::reached`] states to stderr (`found-*` seeds are named after
//! them).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::marker::PhantomData;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use framewire::packet::reason;
use framewire::packet::wire::{Packet, ParseLimits};
use framewire::packet::{
    BorrowedConfig, BorrowedConnection, ChannelError, Config, Connection, Event, InputError,
    ProtocolError, RespondError, State, Stats, SubmitError, MIN_TRANSMIT_BUFFER,
};
use framewire::time::{Duration, Instant};
use framewire::varint::VarintRules;

use crate::{refusal, Refusal};

/// The most operations of one input (the rest is not decoded).
pub const MAX_OPS: usize = 400;

/// How a target drives the model.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Operations' channel numbers are taken modulo this.
    pub channels: u8,
    /// An alloc end's `max_channels` is its byte modulo this.
    pub alloc_channels: u8,
    /// An alloc end's `max_remembered_tags` is 1 + its byte modulo this.
    pub alloc_remembered_tags: u8,
    /// A shut write side keeps what its end queues afterwards (never
    /// written) instead of dropping it.
    pub shut_keeps_output: bool,
}

/// One of the two ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The first end.
    A,
    /// The second end.
    B,
}

impl Who {
    /// The other end.
    #[must_use]
    pub fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }
}

impl<'a> Arbitrary<'a> for Who {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(if u8::arbitrary(u)? & 1 == 0 {
            Who::A
        } else {
            Who::B
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1))
    }
}

/// One step of a scenario. Codes in [`Op::code`]; `channel` fields are taken
/// modulo [`Rules::channels`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `who` submits a request (`len` payload bytes; timeout in ms).
    Submit {
        /// The end.
        who: Who,
        /// Its channel.
        channel: u8,
        /// Its request type.
        rq_type: u8,
        /// Its flags.
        flags: u8,
        /// Payload length.
        len: u8,
        /// Timeout in ms.
        timeout: Option<u8>,
    },
    /// `who` answers one of the requests in flight.
    Respond {
        /// The end.
        who: Who,
        /// Which request in flight (modulo their number).
        pick: u8,
        /// The answer's flags.
        flags: u8,
        /// Payload length.
        len: u8,
    },
    /// `who` rejects one of the requests in flight.
    Reject {
        /// The end.
        who: Who,
        /// Which request in flight; its parity picks the text.
        pick: u8,
    },
    /// `who` abandons one of its waiting requests.
    Abandon {
        /// The end.
        who: Who,
        /// Which waiting request.
        pick: u8,
    },
    /// `who` ends its requests (ERQ).
    EndRequests {
        /// The end.
        who: Who,
    },
    /// `who` closes.
    Close {
        /// The end.
        who: Who,
    },
    /// `who` opens a channel.
    OpenChannel {
        /// The end.
        who: Who,
        /// The channel.
        channel: u8,
    },
    /// A partial write of `who`'s queued bytes onto the link.
    Write {
        /// The end.
        who: Who,
        /// At most this many bytes.
        n: u16,
    },
    /// A partial read: up to `n` bytes of the link into `who`.
    Read {
        /// The end.
        who: Who,
        /// At most this many bytes (at least one).
        n: u16,
    },
    /// `who`'s write side is shut: the peer gets EOF once the link drains;
    /// what `who` queues from now on is kept or dropped
    /// ([`Rules::shut_keeps_output`]).
    ShutWrite {
        /// The end.
        who: Who,
    },
    /// The clock advances; both ends handle their timeouts.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// Raw bytes onto the link towards `who` (a hostile or broken peer).
    Inject {
        /// The receiving end.
        who: Who,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// `who`'s transport is lost both ways (`handle_transport_lost`), after
    /// reading up to `read` more bytes without polling (events queued at the
    /// loss). What is on the link towards it is lost; the peer gets EOF once
    /// its link drains and what it writes goes nowhere. With `both`, the
    /// peer's transport is lost too (a reset seen at both ends).
    Lose {
        /// The end.
        who: Who,
        /// Bytes read (unpolled) before the loss.
        read: u16,
        /// The peer's transport is lost too.
        both: bool,
    },
    /// A well-formed packet with chosen fields onto the link towards `who`.
    Craft {
        /// The receiving end.
        who: Who,
        /// Its channel.
        channel: u8,
        /// Its tag (or `u64::MAX - tag` with `big_tag`).
        tag: u8,
        /// A tag near `u64::MAX`.
        big_tag: bool,
        /// `Some`: a request of wire type `rq_type_wire`; `None`: a response.
        rq_type_wire: Option<u8>,
        /// Its flags.
        pflags: u8,
        /// Payload length.
        len: u8,
    },
    /// Bytes the peer sent before, again, onto the link towards `who`.
    Replay {
        /// The receiving end.
        who: Who,
        /// Offset into what the peer transmitted (modulo its length).
        from: u16,
        /// At most this many bytes.
        len: u16,
    },
    /// Up to 40 empty requests (or responses) towards `who` on one channel,
    /// tags `start + i * (step % 8 + 1)`: sparse tags to remember and
    /// forget, tags reused, more requests than in-flight slots.
    Flood {
        /// The receiving end.
        who: Who,
        /// The channel.
        channel: u8,
        /// The first tag.
        start: u8,
        /// The tag step (modulo 8, plus one).
        step: u8,
        /// How many (modulo 41).
        count: u8,
        /// Requests (or responses).
        requests: bool,
    },
    /// `who` answers every request in flight, oldest first, until one fails
    /// (a server driver).
    AnswerAll {
        /// The end.
        who: Who,
        /// Respond (or reject).
        ok: bool,
    },
}

/// Every operation code, in order.
pub const ALL_OPS: [u8; 17] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

impl Op {
    /// The operation's code in the input encoding: `Submit` 0, `Respond` 1,
    /// `Reject` 2, `Abandon` 3, `EndRequests` 4, `Close` 5, `OpenChannel` 6,
    /// `Write` 7, `Read` 8, `ShutWrite` 9, `Advance` 10, `Inject` 11, `Lose`
    /// 12, `Craft` 13, `Replay` 14, `Flood` 15, `AnswerAll` 16.
    pub fn code(&self) -> u8 {
        match self {
            Op::Submit { .. } => 0,
            Op::Respond { .. } => 1,
            Op::Reject { .. } => 2,
            Op::Abandon { .. } => 3,
            Op::EndRequests { .. } => 4,
            Op::Close { .. } => 5,
            Op::OpenChannel { .. } => 6,
            Op::Write { .. } => 7,
            Op::Read { .. } => 8,
            Op::ShutWrite { .. } => 9,
            Op::Advance { .. } => 10,
            Op::Inject { .. } => 11,
            Op::Lose { .. } => 12,
            Op::Craft { .. } => 13,
            Op::Replay { .. } => 14,
            Op::Flood { .. } => 15,
            Op::AnswerAll { .. } => 16,
        }
    }

    /// Decodes one operation whose code is one of `codes` (see the module
    /// documentation).
    ///
    /// # Errors
    ///
    /// Never with non-empty `codes`: missing bytes read as zeros.
    pub fn decode(u: &mut Unstructured<'_>, codes: &[u8]) -> arbitrary::Result<Op> {
        let code = u8::arbitrary(u)?;
        let code = if codes.contains(&code) {
            code
        } else {
            codes[usize::from(code) % codes.len()]
        };
        Ok(match code {
            0 => Op::Submit {
                who: Who::arbitrary(u)?,
                channel: u.arbitrary()?,
                rq_type: u.arbitrary()?,
                flags: u.arbitrary()?,
                len: u.arbitrary()?,
                timeout: u.arbitrary()?,
            },
            1 => Op::Respond {
                who: Who::arbitrary(u)?,
                pick: u.arbitrary()?,
                flags: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            2 => Op::Reject {
                who: Who::arbitrary(u)?,
                pick: u.arbitrary()?,
            },
            3 => Op::Abandon {
                who: Who::arbitrary(u)?,
                pick: u.arbitrary()?,
            },
            4 => Op::EndRequests {
                who: Who::arbitrary(u)?,
            },
            5 => Op::Close {
                who: Who::arbitrary(u)?,
            },
            6 => Op::OpenChannel {
                who: Who::arbitrary(u)?,
                channel: u.arbitrary()?,
            },
            7 => Op::Write {
                who: Who::arbitrary(u)?,
                n: u.arbitrary()?,
            },
            8 => Op::Read {
                who: Who::arbitrary(u)?,
                n: u.arbitrary()?,
            },
            9 => Op::ShutWrite {
                who: Who::arbitrary(u)?,
            },
            10 => Op::Advance { ms: u.arbitrary()? },
            11 => {
                let who = Who::arbitrary(u)?;
                let n = usize::from(u8::arbitrary(u)?).min(u.len());
                Op::Inject {
                    who,
                    bytes: u.bytes(n)?.to_vec(),
                }
            }
            12 => Op::Lose {
                who: Who::arbitrary(u)?,
                read: u.arbitrary()?,
                both: u.arbitrary()?,
            },
            13 => Op::Craft {
                who: Who::arbitrary(u)?,
                channel: u.arbitrary()?,
                tag: u.arbitrary()?,
                big_tag: u.arbitrary()?,
                rq_type_wire: u.arbitrary()?,
                pflags: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            14 => Op::Replay {
                who: Who::arbitrary(u)?,
                from: u.arbitrary()?,
                len: u.arbitrary()?,
            },
            15 => Op::Flood {
                who: Who::arbitrary(u)?,
                channel: u.arbitrary()?,
                start: u.arbitrary()?,
                step: u.arbitrary()?,
                count: u.arbitrary()?,
                requests: u.arbitrary()?,
            },
            16 => Op::AnswerAll {
                who: Who::arbitrary(u)?,
                ok: u.arbitrary()?,
            },
            other => unreachable!("operation code {other} not in the table"),
        })
    }
}

/// The operations a target knows.
pub trait OpSet {
    /// Their codes ([`Op::code`]).
    const CODES: &'static [u8];
}

/// The operations of a scenario, decoded with the codes of `S` until the
/// input ends (at most [`MAX_OPS`]).
pub struct OpList<S>(pub Vec<Op>, PhantomData<S>);

impl<S> core::fmt::Debug for OpList<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<'a, S: OpSet> Arbitrary<'a> for OpList<S> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let mut ops = Vec::new();
        while !u.is_empty() && ops.len() < MAX_OPS {
            ops.push(Op::decode(u, S::CODES)?);
        }
        Ok(OpList(ops, PhantomData))
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// Mostly no limit; sometimes a small one (10..=65).
pub fn max_tag(b: u8) -> u64 {
    if b < 200 {
        u64::MAX
    } else {
        u64::from(b - 190)
    }
}

/// An alloc `Connection`'s limits.
#[derive(Arbitrary, Debug)]
pub struct AllocCfg {
    /// `max_packet_len` 16..=1039.
    pub max_packet_len: u16,
    /// `max_receive_buffer` beyond `max_packet_len` (modulo 2048).
    pub receive_extra: u16,
    /// `accept_requests` (also when `max_packet_len` is not a multiple of 5).
    pub accept_requests: bool,
    /// `max_pending_outbound` 1..=8.
    pub max_pending_outbound: u8,
    /// `max_inflight_inbound` 1..=8.
    pub max_inflight_inbound: u8,
    /// `max_tag` ([`max_tag`]).
    pub max_tag: u8,
    /// `max_transmit_buffer` 1..=2048.
    pub max_transmit_buffer: u16,
    /// `max_channels` ([`Rules::alloc_channels`]).
    pub max_channels: u8,
    /// `max_remembered_tags` ([`Rules::alloc_remembered_tags`]).
    pub max_remembered_tags: u8,
    /// `copy_threshold`.
    pub copy_threshold: u8,
    /// Varints must be canonical.
    pub canonical: bool,
    /// `parse_on_poll`: packets parsed as events are polled.
    pub parse_on_poll: bool,
}

impl AllocCfg {
    /// The configuration.
    pub fn config(&self, rules: &Rules) -> Config {
        let max_packet_len = 16 + usize::from(self.max_packet_len % 1024);
        Config {
            max_packet_len,
            varint: VarintRules {
                require_canonical: self.canonical,
                max_octets: 10,
            },
            accept_requests: self.accept_requests || !self.max_packet_len.is_multiple_of(5),
            max_pending_outbound: 1 + usize::from(self.max_pending_outbound % 8),
            max_inflight_inbound: 1 + usize::from(self.max_inflight_inbound % 8),
            max_tag: max_tag(self.max_tag),
            max_receive_buffer: max_packet_len + usize::from(self.receive_extra % 2048),
            max_transmit_buffer: 1 + usize::from(self.max_transmit_buffer % 2048),
            max_channels: usize::from(self.max_channels % rules.alloc_channels),
            max_remembered_tags: 1 + usize::from(
                self.max_remembered_tags % rules.alloc_remembered_tags,
            ),
            copy_threshold: usize::from(self.copy_threshold),
            parse_on_poll: self.parse_on_poll,
        }
    }
}

/// A `BorrowedConnection`'s buffers and options.
#[derive(Arbitrary, Debug)]
pub struct BorrowedCfg {
    /// Receive buffer 16..=2063 bytes.
    pub rx_len: u16,
    /// Transmit buffer `MIN_TRANSMIT_BUFFER..=+2047` bytes.
    pub tx_len: u16,
    /// `max_packet_len` 16..=rx; `None`: the receive buffer's length.
    pub max_packet_len: Option<u16>,
    /// `accept_requests` (also when `rx_len` is not a multiple of 5).
    pub accept_requests: bool,
    /// `max_tag` ([`max_tag`]).
    pub max_tag: u8,
    /// Varints must be canonical.
    pub canonical: bool,
}

impl BorrowedCfg {
    /// The receive buffer's length.
    pub fn rx_len(&self) -> usize {
        16 + usize::from(self.rx_len % 2048)
    }

    /// The transmit buffer's length.
    pub fn tx_len(&self) -> usize {
        MIN_TRANSMIT_BUFFER + usize::from(self.tx_len % 2048)
    }

    /// The configuration.
    pub fn config(&self) -> BorrowedConfig {
        let rx = self.rx_len();
        BorrowedConfig {
            max_packet_len: self.max_packet_len.map(|m| 16 + usize::from(m) % (rx - 15)),
            varint: VarintRules {
                require_canonical: self.canonical,
                max_octets: 10,
            },
            accept_requests: self.accept_requests || !self.rx_len.is_multiple_of(5),
            max_tag: max_tag(self.max_tag),
        }
    }
}

/// The two connection types behind one interface; events come out owned.
#[allow(missing_docs, clippy::missing_errors_doc)]
pub trait Endpoint {
    fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError>;
    fn respond(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: &[u8],
    ) -> Result<(), RespondError>;
    fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError>;
    fn abandon(&mut self, channel: u64, tag: u64) -> bool;
    fn end_requests(&mut self);
    fn close(&mut self);
    fn open_channel(&mut self, channel: u64) -> Result<(), ChannelError>;
    fn handle_input(&mut self, data: &[u8]) -> Result<usize, InputError>;
    fn handle_eof(&mut self);
    fn handle_transport_lost(&mut self);
    fn transport_lost(&self) -> bool;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_event(&mut self) -> Option<Event>;
    fn transmit_len(&self) -> usize;
    /// Appends the first `n` queued bytes to `out`.
    fn transmit_prefix(&self, n: usize, out: &mut Vec<u8>);
    fn advance_transmit(&mut self, n: usize);
    fn poll_timeout(&self) -> Option<Instant>;
    fn state(&self) -> State;
    fn pending_outbound(&self) -> usize;
    fn is_pending(&self, channel: u64, tag: u64) -> bool;
    fn inflight_inbound(&self) -> usize;
    fn is_inflight(&self, channel: u64, tag: u64) -> bool;
    fn next_tag(&self, channel: u64) -> Option<u64>;
    fn protocol_error(&self) -> Option<ProtocolError>;
    fn receive_buffered(&self) -> usize;
    /// Unparsed bytes plus held packets (the alloc connection: unparsed).
    fn receive_used(&self) -> usize;
    /// The alloc connection's `input_stalled` (`None`: no such notion).
    fn input_stalled(&self) -> Option<bool>;
    fn remembered_tags(&self) -> usize;
    fn requests_ended(&self) -> bool;
    fn eof_queued(&self) -> bool;
    fn max_packet_len(&self) -> usize;
    fn stats(&self) -> Stats;
}

impl<const P: usize, const I: usize, const C: usize, const T: usize> Endpoint
    for BorrowedConnection<'_, P, I, C, T>
{
    fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        BorrowedConnection::submit(self, channel, rq_type, flags, payload, now, timeout)
    }
    fn respond(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: &[u8],
    ) -> Result<(), RespondError> {
        BorrowedConnection::respond(self, channel, tag, flags, payload)
    }
    fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError> {
        BorrowedConnection::reject(self, channel, tag, reason)
    }
    fn abandon(&mut self, channel: u64, tag: u64) -> bool {
        BorrowedConnection::abandon(self, channel, tag)
    }
    fn end_requests(&mut self) {
        BorrowedConnection::end_requests(self);
    }
    fn close(&mut self) {
        BorrowedConnection::close(self);
    }
    fn open_channel(&mut self, channel: u64) -> Result<(), ChannelError> {
        BorrowedConnection::open_channel(self, channel)
    }
    fn handle_input(&mut self, data: &[u8]) -> Result<usize, InputError> {
        BorrowedConnection::handle_input(self, data)
    }
    fn handle_eof(&mut self) {
        BorrowedConnection::handle_eof(self);
    }
    fn handle_transport_lost(&mut self) {
        BorrowedConnection::handle_transport_lost(self);
    }
    fn transport_lost(&self) -> bool {
        BorrowedConnection::transport_lost(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        BorrowedConnection::handle_timeout(self, now);
    }
    fn poll_event(&mut self) -> Option<Event> {
        BorrowedConnection::poll_event(self).map(|e| e.to_event())
    }
    fn transmit_len(&self) -> usize {
        BorrowedConnection::transmit_len(self)
    }
    fn transmit_prefix(&self, n: usize, out: &mut Vec<u8>) {
        let queued = self.poll_transmit().unwrap_or(&[]);
        assert_eq!(queued.len(), self.transmit_len(), "poll_transmit length");
        out.extend_from_slice(&queued[..n]);
    }
    fn advance_transmit(&mut self, n: usize) {
        BorrowedConnection::advance_transmit(self, n);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        BorrowedConnection::poll_timeout(self)
    }
    fn state(&self) -> State {
        BorrowedConnection::state(self)
    }
    fn pending_outbound(&self) -> usize {
        BorrowedConnection::pending_outbound(self)
    }
    fn is_pending(&self, channel: u64, tag: u64) -> bool {
        BorrowedConnection::is_pending(self, channel, tag)
    }
    fn inflight_inbound(&self) -> usize {
        BorrowedConnection::inflight_inbound(self)
    }
    fn is_inflight(&self, channel: u64, tag: u64) -> bool {
        BorrowedConnection::is_inflight(self, channel, tag)
    }
    fn next_tag(&self, channel: u64) -> Option<u64> {
        BorrowedConnection::next_tag(self, channel)
    }
    fn protocol_error(&self) -> Option<ProtocolError> {
        BorrowedConnection::protocol_error(self)
    }
    fn receive_buffered(&self) -> usize {
        BorrowedConnection::receive_buffered(self)
    }
    fn receive_used(&self) -> usize {
        BorrowedConnection::receive_used(self)
    }
    fn input_stalled(&self) -> Option<bool> {
        None
    }
    fn remembered_tags(&self) -> usize {
        BorrowedConnection::remembered_tags(self)
    }
    fn requests_ended(&self) -> bool {
        BorrowedConnection::requests_ended(self)
    }
    fn eof_queued(&self) -> bool {
        BorrowedConnection::eof_queued(self)
    }
    fn max_packet_len(&self) -> usize {
        BorrowedConnection::max_packet_len(self)
    }
    fn stats(&self) -> Stats {
        *BorrowedConnection::stats(self)
    }
}

impl Endpoint for Connection {
    fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        Connection::submit(
            self,
            channel,
            rq_type,
            flags,
            payload.to_vec(),
            now,
            timeout,
        )
    }
    fn respond(
        &mut self,
        channel: u64,
        tag: u64,
        flags: u64,
        payload: &[u8],
    ) -> Result<(), RespondError> {
        Connection::respond(self, channel, tag, flags, payload.to_vec())
    }
    fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError> {
        Connection::reject(self, channel, tag, reason)
    }
    fn abandon(&mut self, channel: u64, tag: u64) -> bool {
        Connection::abandon(self, channel, tag)
    }
    fn end_requests(&mut self) {
        Connection::end_requests(self);
    }
    fn close(&mut self) {
        Connection::close(self);
    }
    fn open_channel(&mut self, channel: u64) -> Result<(), ChannelError> {
        Connection::open_channel(self, channel)
    }
    fn handle_input(&mut self, data: &[u8]) -> Result<usize, InputError> {
        Connection::handle_input(self, data)
    }
    fn handle_eof(&mut self) {
        Connection::handle_eof(self);
    }
    fn handle_transport_lost(&mut self) {
        Connection::handle_transport_lost(self);
    }
    fn transport_lost(&self) -> bool {
        Connection::transport_lost(self)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Connection::handle_timeout(self, now);
    }
    fn poll_event(&mut self) -> Option<Event> {
        Connection::poll_event(self)
    }
    fn transmit_len(&self) -> usize {
        Connection::transmit_len(self)
    }
    fn transmit_prefix(&self, n: usize, out: &mut Vec<u8>) {
        assert_eq!(
            self.poll_transmit().is_none(),
            self.transmit_len() == 0,
            "poll_transmit and transmit_len disagree"
        );
        let mut left = n;
        for chunk in self.transmit_chunks() {
            let k = chunk.len().min(left);
            out.extend_from_slice(&chunk[..k]);
            left -= k;
            if left == 0 {
                break;
            }
        }
        assert_eq!(left, 0, "transmit_chunks shorter than transmit_len");
    }
    fn advance_transmit(&mut self, n: usize) {
        Connection::advance_transmit(self, n);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Connection::poll_timeout(self)
    }
    fn state(&self) -> State {
        Connection::state(self)
    }
    fn pending_outbound(&self) -> usize {
        Connection::pending_outbound(self)
    }
    fn is_pending(&self, channel: u64, tag: u64) -> bool {
        Connection::is_pending(self, channel, tag)
    }
    fn inflight_inbound(&self) -> usize {
        Connection::inflight_inbound(self)
    }
    fn is_inflight(&self, channel: u64, tag: u64) -> bool {
        Connection::is_inflight(self, channel, tag)
    }
    fn next_tag(&self, channel: u64) -> Option<u64> {
        Connection::next_tag(self, channel)
    }
    fn protocol_error(&self) -> Option<ProtocolError> {
        Connection::protocol_error(self)
    }
    fn receive_buffered(&self) -> usize {
        Connection::receive_buffered(self)
    }
    fn receive_used(&self) -> usize {
        Connection::receive_buffered(self)
    }
    fn input_stalled(&self) -> Option<bool> {
        Some(Connection::input_stalled(self))
    }
    fn remembered_tags(&self) -> usize {
        Connection::remembered_tags(self)
    }
    fn requests_ended(&self) -> bool {
        Connection::requests_ended(self)
    }
    fn eof_queued(&self) -> bool {
        Connection::eof_queued(self)
    }
    fn max_packet_len(&self) -> usize {
        self.config().max_packet_len
    }
    fn stats(&self) -> Stats {
        *Connection::stats(self)
    }
}

/// What an end may hold, by kind.
#[derive(Debug, Clone, Copy)]
enum Limits {
    Borrowed {
        rx_len: usize,
        tx_len: usize,
        max_packet_len: usize,
        accept_requests: bool,
        /// `P`, `I` and `T`.
        max_pending: usize,
        max_inflight: usize,
        max_tags: usize,
    },
    Alloc(Config),
}

impl Limits {
    fn max_packet_len(&self) -> usize {
        match self {
            Limits::Borrowed { max_packet_len, .. } => *max_packet_len,
            Limits::Alloc(c) => c.max_packet_len,
        }
    }

    fn accept_requests(&self) -> bool {
        match self {
            Limits::Borrowed {
                accept_requests, ..
            } => *accept_requests,
            Limits::Alloc(c) => c.accept_requests,
        }
    }
}

#[derive(Debug, Clone)]
struct Sent {
    rq_type: u64,
    flags: u64,
    payload: Vec<u8>,
    deadline: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Response,
    Cancelled,
    TimedOut,
    Abandoned,
}

/// One end: its connection, its model, the link towards it and the record of
/// everything it transmitted.
#[allow(clippy::struct_excessive_bools)]
pub struct End<'a> {
    conn: Box<dyn Endpoint + 'a>,
    limits: Limits,
    /// Every request we submitted, forever.
    sent: BTreeMap<(u64, u64), Sent>,
    pending: BTreeSet<(u64, u64)>,
    ended: BTreeMap<(u64, u64), Ended>,
    /// Peer requests delivered and not answered, in delivery order.
    inflight: Vec<(u64, u64)>,
    received: BTreeSet<(u64, u64)>,
    /// What we answered, by the peer's `(channel, tag)`.
    answered: BTreeMap<(u64, u64), (bool, u64, Vec<u8>)>,
    /// Bytes on the way to this end.
    inbox: VecDeque<u8>,
    eof_pending: bool,
    eof_delivered: bool,
    read_failed: bool,
    /// This end's write side is shut (an op, after `Closed`, or by the final
    /// drain): the peer gets EOF, and what is queued is kept or dropped
    /// ([`Rules::shut_keeps_output`]).
    write_shut: bool,
    /// What this end writes goes nowhere (its peer's transport was lost):
    /// written out and dropped, as by a driver whose writes still succeed.
    write_void: bool,
    /// `handle_transport_lost` was called.
    lost: bool,
    /// At the loss: our EOF had been transmitted (so `Closed` must follow).
    eof_sent_at_loss: bool,
    /// At the loss: bytes transmitted (nothing more may be).
    bytes_sent_at_loss: u64,
    /// Answers given after the loss (accepted and dropped).
    dropped_answers: BTreeSet<(u64, u64)>,
    peer_erq_seen: bool,
    peer_end_seen: bool,
    closed_seen: bool,
    /// `UnknownResponse` events.
    unknown_seen: u64,
    /// Alloc end: bytes of answers queued since the transmit queue was last
    /// under its limit (answers to accepted requests are always queued).
    answered_since_low: usize,
    /// Every byte this end transmitted (delivered or dropped), and how much
    /// of it has been checked as packets.
    wire: Vec<u8>,
    wire_checked: usize,
    /// What was seen on the wire so far.
    wire_requests: BTreeSet<(u64, u64)>,
    wire_answers: BTreeSet<(u64, u64)>,
    wire_erq: bool,
    wire_eof: bool,
}

impl<'a> End<'a> {
    fn new(conn: Box<dyn Endpoint + 'a>, limits: Limits) -> Self {
        End {
            conn,
            limits,
            sent: BTreeMap::new(),
            pending: BTreeSet::new(),
            ended: BTreeMap::new(),
            inflight: Vec::new(),
            received: BTreeSet::new(),
            answered: BTreeMap::new(),
            inbox: VecDeque::new(),
            eof_pending: false,
            eof_delivered: false,
            read_failed: false,
            write_shut: false,
            write_void: false,
            lost: false,
            eof_sent_at_loss: false,
            bytes_sent_at_loss: 0,
            dropped_answers: BTreeSet::new(),
            peer_erq_seen: false,
            peer_end_seen: false,
            closed_seen: false,
            unknown_seen: 0,
            answered_since_low: 0,
            wire: Vec::new(),
            wire_checked: 0,
            wire_requests: BTreeSet::new(),
            wire_answers: BTreeSet::new(),
            wire_erq: false,
            wire_eof: false,
        }
    }

    /// A `BorrowedConnection<P, I, C, T>` over `rx` and `tx`.
    pub fn borrowed<const P: usize, const I: usize, const C: usize, const T: usize>(
        cfg: &BorrowedCfg,
        rx: &'a mut [u8],
        tx: &'a mut [u8],
    ) -> Self {
        let (rx_len, tx_len) = (rx.len(), tx.len());
        let config = cfg.config();
        let conn =
            BorrowedConnection::<P, I, C, T>::new(config, rx, tx).expect("valid borrowed config");
        let max_packet_len = config.max_packet_len.unwrap_or(rx_len);
        assert_eq!(conn.max_packet_len(), max_packet_len);
        End::new(
            Box::new(conn),
            Limits::Borrowed {
                rx_len,
                tx_len,
                max_packet_len,
                accept_requests: config.accept_requests,
                max_pending: P,
                max_inflight: I,
                max_tags: T,
            },
        )
    }

    /// An alloc `Connection`.
    pub fn alloc(config: Config) -> Self {
        let conn = Connection::new(config).expect("valid config");
        End::new(Box::new(conn), Limits::Alloc(config))
    }

    fn end_request(&mut self, key: (u64, u64), how: Ended) {
        assert!(
            self.pending.remove(&key),
            "{key:?} ended ({how:?}) but was not pending (ended before: {:?})",
            self.ended.get(&key)
        );
        assert!(self.ended.insert(key, how).is_none(), "{key:?} ended twice");
    }

    /// Records an answer the connection accepted (`before`: its stats before
    /// the call): queued, or after a loss dropped and counted as dropped.
    fn record_answer(&mut self, key: (u64, u64), answer: (bool, u64, Vec<u8>), before: &Stats) {
        let after = self.conn.stats();
        assert!(
            !self.conn.is_inflight(key.0, key.1),
            "{key:?} still in flight"
        );
        if self.lost {
            assert_eq!(
                (after.responses_sent, after.requests_dropped),
                (before.responses_sent, before.requests_dropped + 1),
                "answer to {key:?} after the loss: not counted as dropped"
            );
            assert_eq!(self.conn.transmit_len(), 0, "answer queued after the loss");
            assert!(self.dropped_answers.insert(key));
        } else {
            assert_eq!(after.responses_sent, before.responses_sent + 1);
            self.answered_since_low += answer.2.len() + 40;
            self.answered.insert(key, answer);
        }
    }

    /// Takes the first `n` queued bytes off the connection, records them,
    /// and checks every whole packet among them.
    fn take_transmit(
        &mut self,
        who: Who,
        n: usize,
        reached: &mut BTreeSet<&'static str>,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        self.conn.transmit_prefix(n, &mut out);
        self.conn.advance_transmit(n);
        self.wire.extend_from_slice(&out);
        self.check_wire(who, reached);
        out
    }

    /// Everything this end sent parses as canonical packets within its
    /// `max_packet_len`, and each is one it had to send.
    fn check_wire(&mut self, who: Who, reached: &mut BTreeSet<&'static str>) {
        let max = self.limits.max_packet_len();
        let limits = ParseLimits {
            max_packet_len: max,
            varint: VarintRules {
                require_canonical: true,
                max_octets: 10,
            },
        };
        loop {
            let rest = &self.wire[self.wire_checked..];
            if rest.is_empty() {
                return;
            }
            let (p, n) = match Packet::parse(rest, &limits) {
                Ok(Some(x)) => x,
                Ok(None) => return,
                Err(e) => panic!(
                    "{who:?} sent a bad packet (limit {max}): {e} at {:?}",
                    &rest[..rest.len().min(32)]
                ),
            };
            let (channel, tag, is_eof, is_erq) = (p.channel(), p.tag(), p.is_eof(), p.is_erq());
            let (rq_type, flags, status) = (p.request_type(), p.pflags(), p.response_status());
            let payload = p.payload().to_vec();
            self.wire_checked += n;
            let key = (channel, tag);
            assert!(!self.wire_eof, "{who:?} sent {key:?} after its EOF");
            if is_eof {
                self.wire_eof = true;
            } else if is_erq {
                assert!(!self.wire_erq, "{who:?} sent ERQ twice");
                self.wire_erq = true;
            } else if let Some(rq_type) = rq_type {
                assert!(!self.wire_erq, "{who:?} sent request {key:?} after its ERQ");
                let sent = self
                    .sent
                    .get(&key)
                    .unwrap_or_else(|| panic!("{who:?} sent request {key:?} never submitted"));
                assert_eq!(
                    (sent.rq_type, sent.flags, &sent.payload[..]),
                    (rq_type, flags, &payload[..]),
                    "{who:?}: request {key:?} altered on the wire"
                );
                assert!(
                    self.wire_requests.insert(key),
                    "{who:?} sent request {key:?} twice"
                );
            } else {
                let (ok, flags) = status.expect("a packet is a request or a response");
                let answer = self.answered.get(&key);
                let is_answer = !self.wire_answers.contains(&key)
                    && answer.is_some_and(|(a_ok, a_flags, a_payload)| {
                        (*a_ok, *a_flags, &a_payload[..]) == (ok, flags, &payload[..])
                    });
                if is_answer {
                    self.wire_answers.insert(key);
                } else {
                    let refused =
                        refusal(channel, tag, &payload, max).filter(|_| !ok && flags == 0);
                    assert!(
                        refused.is_some(),
                        "{who:?} sent response {key:?} ({ok}, {flags}, {payload:?}) it never gave \
                         (answered: {answer:?})"
                    );
                    if let Some(Refusal { tag_in_use, cut }) = refused {
                        if tag_in_use {
                            reached.insert("tag-in-use");
                        }
                        if cut {
                            reached.insert("refusal-cut");
                        }
                    }
                }
            }
        }
    }

    /// At the end: every byte was sent, the last packet is EOF, and every
    /// request and answer went out.
    fn check_wire_done(&self, who: Who) {
        assert_eq!(
            self.wire_checked,
            self.wire.len(),
            "{who:?}: transmitted bytes end inside a packet"
        );
        assert!(self.wire_eof, "{who:?} never sent EOF");
        for key in self.sent.keys() {
            assert!(
                self.wire_requests.contains(key),
                "{who:?}: request {key:?} never sent"
            );
        }
        for key in self.answered.keys() {
            assert!(
                self.wire_answers.contains(key),
                "{who:?}: answer to {key:?} never sent"
            );
        }
    }
}

fn payload(len: u8, seed: u8) -> Vec<u8> {
    (0..len).map(|i| i.wrapping_mul(31) ^ seed).collect()
}

/// Whether runs print the states they reach (`FRAMEWIRE_FUZZ_STATES`).
fn print_states() -> bool {
    static PRINT: OnceLock<bool> = OnceLock::new();
    *PRINT.get_or_init(|| std::env::var_os("FRAMEWIRE_FUZZ_STATES").is_some())
}

/// Two ends, their links, the clock, and the model.
pub struct World<'a> {
    a: End<'a>,
    b: End<'a>,
    now: Instant,
    hostile: bool,
    rules: Rules,
    /// Notable states reached (the names of the `found-*` seeds):
    /// `submit-no-room`, `respond-no-room`, `receive-buffer-full`,
    /// `refusal-cut`, `tag-in-use`, `tags-reused`, `tags-forgotten`,
    /// `alloc-peer-response` (a `BorrowedConnection` got an alloc peer's
    /// answer), `timeout`, `late-response` (an answer to a request that had
    /// timed out or was abandoned), `unknown-response`, `cancelled`,
    /// `peer-erq`, `protocol-error`, `lost`, `closed-after-loss`.
    reached: BTreeSet<&'static str>,
}

impl<'a> World<'a> {
    /// Two ends at time zero.
    pub fn new(a: End<'a>, b: End<'a>, rules: Rules) -> Self {
        World {
            a,
            b,
            now: Instant::ZERO,
            hostile: false,
            rules,
            reached: BTreeSet::new(),
        }
    }

    /// Runs the operations, checking after each, then the orderly end.
    /// `label` names the run in the printed states.
    pub fn run(mut self, ops: &[Op], label: &str) {
        for op in ops.iter().take(MAX_OPS) {
            self.step(op);
            self.settle(matches!(op, Op::Advance { .. }));
        }
        self.finish();
        if print_states() {
            eprintln!("states ({label}): {:?}", self.reached);
        }
    }

    /// The notable states reached so far.
    pub fn reached(&self) -> &BTreeSet<&'static str> {
        &self.reached
    }

    fn pair(&mut self, who: Who) -> (&mut End<'a>, &mut End<'a>) {
        match who {
            Who::A => (&mut self.a, &mut self.b),
            Who::B => (&mut self.b, &mut self.a),
        }
    }

    /// Drains `who`'s events into the model, checking each; returns how
    /// many.
    fn poll(&mut self, who: Who) -> usize {
        let now = self.now;
        let hostile = self.hostile;
        let reached = &mut self.reached;
        let (me, peer) = match who {
            Who::A => (&mut self.a, &mut self.b),
            Who::B => (&mut self.b, &mut self.a),
        };
        let mut n = 0;
        while let Some(event) = me.conn.poll_event() {
            n += 1;
            assert!(!me.closed_seen, "{who:?}: event {event:?} after Closed");
            match event {
                Event::RequestReceived {
                    channel,
                    tag,
                    rq_type,
                    flags,
                    payload,
                } => {
                    let key = (channel, tag);
                    assert!(
                        me.received.insert(key),
                        "{who:?}: request {key:?} delivered twice"
                    );
                    assert!(me.conn.is_inflight(channel, tag));
                    assert!(
                        me.limits.accept_requests(),
                        "{who:?}: request delivered without accept_requests"
                    );
                    if !hostile {
                        let sent = peer.sent.get(&key).unwrap_or_else(|| {
                            panic!("{who:?}: request {key:?} the peer never sent")
                        });
                        assert_eq!(
                            (sent.rq_type, sent.flags, &sent.payload[..]),
                            (rq_type, flags, &payload[..]),
                            "{who:?}: request {key:?} altered"
                        );
                    }
                    me.inflight.push(key);
                }
                Event::ResponseReceived {
                    channel,
                    tag,
                    ok,
                    flags,
                    payload,
                } => {
                    let key = (channel, tag);
                    me.end_request(key, Ended::Response);
                    // Under hostile input the stream can be misaligned (an
                    // injected partial packet swallows the peer's bytes), so
                    // a response for this key may be made of hostile bytes,
                    // not the dropped answer (seed
                    // crash-hostile-response-after-loss: `ok`, empty payload).
                    assert!(
                        hostile || !peer.dropped_answers.contains(&key),
                        "{who:?}: an answer the peer gave after its loss arrived for {key:?}"
                    );
                    if !hostile {
                        if let Some((a_ok, a_flags, a_payload)) = peer.answered.get(&key) {
                            assert_eq!(
                                (*a_ok, *a_flags, &a_payload[..]),
                                (ok, flags, &payload[..]),
                                "{who:?}: wrong response for {key:?}"
                            );
                            if matches!(
                                (me.limits, peer.limits),
                                (Limits::Borrowed { .. }, Limits::Alloc(_))
                            ) {
                                reached.insert("alloc-peer-response");
                            }
                        } else {
                            // A refusal by the peer's connection itself:
                            // whole, or cut to the peer's packet limit when
                            // whole it would be over it.
                            assert!(
                                !ok && flags == 0
                                    && refusal(
                                        channel,
                                        tag,
                                        &payload,
                                        peer.limits.max_packet_len()
                                    )
                                    .is_some(),
                                "{who:?}: response to {key:?} the peer never gave: \
                                 ({ok}, {flags}, {payload:?})"
                            );
                        }
                    }
                }
                Event::RequestCancelled { channel, tag } => {
                    assert!(
                        me.peer_end_seen,
                        "{who:?}: cancellation before the peer's end"
                    );
                    me.end_request((channel, tag), Ended::Cancelled);
                    reached.insert("cancelled");
                }
                Event::RequestTimedOut { channel, tag } => {
                    let deadline = me.sent[&(channel, tag)]
                        .deadline
                        .expect("timed out without a timeout");
                    assert!(deadline <= now, "{who:?}: timed out early");
                    me.end_request((channel, tag), Ended::TimedOut);
                    reached.insert("timeout");
                }
                Event::UnknownResponse { channel, tag } => {
                    me.unknown_seen += 1;
                    let key = (channel, tag);
                    assert!(
                        !me.pending.contains(&key),
                        "{who:?}: response to pending {key:?} reported unknown"
                    );
                    let how = me.ended.get(&key).copied();
                    if !hostile {
                        assert!(
                            matches!(how, Some(Ended::TimedOut | Ended::Abandoned)),
                            "{who:?}: unknown response {key:?} (ended: {how:?})"
                        );
                    }
                    reached.insert("unknown-response");
                    if matches!(how, Some(Ended::TimedOut | Ended::Abandoned)) {
                        reached.insert("late-response");
                    }
                }
                Event::PeerEndedRequests => {
                    assert!(!me.peer_erq_seen, "{who:?}: ERQ reported twice");
                    me.peer_erq_seen = true;
                    reached.insert("peer-erq");
                }
                Event::PeerClosed { .. } | Event::ProtocolError(_) => {
                    assert!(!me.peer_end_seen, "{who:?}: peer's end reported twice");
                    me.peer_end_seen = true;
                    if matches!(event, Event::ProtocolError(_)) {
                        reached.insert("protocol-error");
                    }
                }
                Event::Closed => {
                    assert!(me.peer_end_seen, "{who:?}: Closed before the peer's end");
                    assert!(
                        me.wire_eof,
                        "{who:?}: Closed before its EOF was transmitted"
                    );
                    assert!(
                        !me.lost || me.eof_sent_at_loss,
                        "{who:?}: Closed after a loss with our EOF unsent"
                    );
                    if me.lost {
                        reached.insert("closed-after-loss");
                    }
                    me.closed_seen = true;
                    // A driver closes the transport: the peer gets EOF.
                    me.write_shut = true;
                    peer.eof_pending = true;
                }
                other => panic!("unexpected event {other:?}"),
            }
        }
        n
    }

    fn check(&mut self, who: Who, timers_run: bool) {
        let now = self.now;
        let reached = &mut self.reached;
        let me = match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        };
        let conn = &me.conn;
        assert_eq!(
            conn.pending_outbound(),
            me.pending.len(),
            "{who:?}: pending count"
        );
        for &(ch, tag) in &me.pending {
            assert!(conn.is_pending(ch, tag), "{who:?}: {ch}/{tag} not pending");
        }
        assert_eq!(
            conn.inflight_inbound(),
            me.inflight.len(),
            "{who:?}: in-flight count"
        );
        for &(ch, tag) in &me.inflight {
            assert!(
                conn.is_inflight(ch, tag),
                "{who:?}: {ch}/{tag} not in flight"
            );
        }
        assert!(conn.receive_buffered() <= conn.receive_used());
        assert_eq!(conn.max_packet_len(), me.limits.max_packet_len());
        let queued = conn.transmit_len();
        match me.limits {
            Limits::Borrowed {
                rx_len,
                tx_len,
                max_pending,
                max_inflight,
                max_tags,
                ..
            } => {
                assert!(me.pending.len() <= max_pending);
                assert!(me.inflight.len() <= max_inflight);
                assert!(conn.remembered_tags() <= max_tags);
                assert!(
                    conn.receive_used() <= rx_len,
                    "{who:?}: {} bytes held in a receive buffer of {rx_len}",
                    conn.receive_used()
                );
                let reserve = if conn.requests_ended() { 0 } else { 4 }
                    + if conn.eof_queued() { 0 } else { 4 };
                assert!(
                    queued + reserve <= tx_len,
                    "{who:?}: {queued} bytes queued (+{reserve} reserved) in a transmit buffer of \
                     {tx_len}"
                );
            }
            Limits::Alloc(c) => {
                assert!(me.pending.len() <= c.max_pending_outbound);
                assert!(me.inflight.len() <= c.max_inflight_inbound);
                assert!(conn.remembered_tags() <= c.max_remembered_tags);
                assert!(
                    conn.receive_buffered() <= c.max_receive_buffer,
                    "{who:?}: receive buffer over the limit"
                );
                if queued < c.max_transmit_buffer {
                    me.answered_since_low = 0;
                }
                // Over the limit by at most one packet (a submit or a
                // refusal made while under it; a refusal is cut to
                // `max_packet_len` too), ERQ and EOF, and the answers given
                // since.
                assert!(
                    queued <= c.max_transmit_buffer + c.max_packet_len + 8 + me.answered_since_low,
                    "{who:?}: {queued} bytes queued, limit {} (+ {} answered)",
                    c.max_transmit_buffer,
                    me.answered_since_low
                );
            }
        }
        // The counters agree with what was seen (every event is polled).
        let stats = conn.stats();
        let count = |how| me.ended.values().filter(|&&h| h == how).count() as u64;
        assert_eq!(
            (
                stats.requests_sent,
                stats.responses_sent,
                stats.requests_received,
                stats.bytes_sent,
            ),
            (
                me.sent.len() as u64,
                me.answered.len() as u64,
                me.received.len() as u64,
                me.wire.len() as u64,
            ),
            "{who:?}: stats (sent, answered, received, bytes sent)"
        );
        assert_eq!(
            (
                stats.responses_received,
                stats.timed_out,
                stats.cancelled,
                stats.unknown_responses,
            ),
            (
                count(Ended::Response),
                count(Ended::TimedOut),
                count(Ended::Cancelled),
                me.unknown_seen,
            ),
            "{who:?}: stats (responses, timeouts, cancellations, unknown)"
        );
        if stats.tags_reused > 0 {
            reached.insert("tags-reused");
        }
        if stats.tags_forgotten > 0 {
            reached.insert("tags-forgotten");
        }
        if me.lost {
            // Every event is polled: whatever the loss left is handled.
            assert_eq!(queued, 0, "{who:?}: {queued} bytes queued after the loss");
            assert!(conn.transport_lost());
            assert_eq!(stats.bytes_sent, me.bytes_sent_at_loss);
            assert!(
                me.peer_end_seen,
                "{who:?}: the receive side did not end after the loss"
            );
            assert!(
                me.pending.is_empty(),
                "{who:?}: requests wait after the loss"
            );
            assert_ne!(conn.input_stalled(), Some(true), "{who:?}: input stalled");
            assert_eq!(
                me.closed_seen, me.eof_sent_at_loss,
                "{who:?}: Closed after the loss iff our EOF was transmitted before it"
            );
            let expected = if me.closed_seen {
                State::Closed
            } else {
                State::Closing
            };
            assert_eq!(conn.state(), expected, "{who:?}: state after the loss");
        }
        let earliest = me.pending.iter().filter_map(|k| me.sent[k].deadline).min();
        assert_eq!(conn.poll_timeout(), earliest, "{who:?}: poll_timeout");
        if let (Some(d), true) = (earliest, timers_run) {
            assert!(d > now, "{who:?}: a deadline passed without a timeout");
        }
    }

    /// Moves up to `n` queued bytes of `who` onto the link (or drops them
    /// if its peer is gone, or its write side is shut and output is not
    /// kept).
    fn write(&mut self, who: Who, n: usize) -> bool {
        let keep = self.rules.shut_keeps_output;
        let reached = &mut self.reached;
        let (me, peer) = match who {
            Who::A => (&mut self.a, &mut self.b),
            Who::B => (&mut self.b, &mut self.a),
        };
        if me.write_shut && keep {
            return false;
        }
        let n = n.min(me.conn.transmit_len());
        if n == 0 {
            return false;
        }
        let bytes = me.take_transmit(who, n, reached);
        if !me.write_shut && !me.write_void {
            peer.inbox.extend(&bytes);
        }
        true
    }

    fn read(&mut self, who: Who, n: usize) -> bool {
        let reached = &mut self.reached;
        let me = match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        };
        let mut progress = false;
        if me.lost {
            return false;
        }
        if !me.inbox.is_empty() && !me.read_failed && !me.eof_delivered {
            let piece: Vec<u8> = me.inbox.iter().take(n.max(1)).copied().collect();
            match me.conn.handle_input(&piece) {
                Ok(taken) => {
                    assert!(taken <= piece.len());
                    if taken < piece.len() {
                        reached.insert("receive-buffer-full");
                    }
                    me.inbox.drain(..taken);
                    progress = taken > 0;
                }
                Err(e) => {
                    assert!(
                        matches!(e, InputError::Failed(_)) && me.conn.protocol_error().is_some(),
                        "{who:?}: input refused ({e:?}) without a protocol error"
                    );
                    me.read_failed = true;
                    me.inbox.clear();
                    progress = true;
                }
            }
        }
        if (me.inbox.is_empty() || me.read_failed) && me.eof_pending && !me.eof_delivered {
            me.eof_delivered = true;
            me.conn.handle_eof();
            progress = true;
        }
        progress
    }

    /// Hostile bytes onto the link towards `who`, while the peer's side of
    /// it is open and `who` still reads.
    fn inject(&mut self, who: Who, bytes: &[u8]) {
        let (me, peer) = self.pair(who);
        if !peer.write_shut && !me.lost && !bytes.is_empty() {
            me.inbox.extend(bytes);
            self.hostile = true;
        }
    }

    /// Applies one operation (checks follow in [`World::settle`]).
    pub fn step(&mut self, op: &Op) {
        let channels = u64::from(self.rules.channels);
        match *op {
            Op::Submit {
                who,
                channel,
                rq_type,
                flags,
                len,
                timeout,
            } => self.submit(
                who,
                u64::from(channel) % channels,
                rq_type,
                flags,
                len,
                timeout,
            ),
            Op::Respond {
                who,
                pick,
                flags,
                len,
            } => {
                let reached = &mut self.reached;
                let me = match who {
                    Who::A => &mut self.a,
                    Who::B => &mut self.b,
                };
                if me.inflight.is_empty() {
                    return;
                }
                let i = usize::from(pick) % me.inflight.len();
                let (ch, tag) = me.inflight[i];
                let body = payload(len, flags);
                let before = me.conn.stats();
                match me.conn.respond(ch, tag, u64::from(flags), &body) {
                    Ok(()) => {
                        me.inflight.remove(i);
                        me.record_answer((ch, tag), (true, u64::from(flags), body), &before);
                    }
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                RespondError::NoRoom { .. } | RespondError::PayloadTooLong { .. }
                            ),
                            "{who:?}: respond to {ch}/{tag} failed: {e:?}"
                        );
                        if let RespondError::NoRoom { required, free } = e {
                            assert!(required > free, "{who:?}: {e:?}");
                            assert!(matches!(me.limits, Limits::Borrowed { .. }));
                            assert!(!me.lost, "{who:?}: {e:?} after the loss");
                            reached.insert("respond-no-room");
                        }
                        assert!(me.conn.is_inflight(ch, tag));
                    }
                }
            }
            Op::Reject { who, pick } => {
                let me = self.pair(who).0;
                if me.inflight.is_empty() {
                    return;
                }
                let i = usize::from(pick) % me.inflight.len();
                let (ch, tag) = me.inflight[i];
                let text = if pick % 2 == 0 {
                    reason::EXCEPTION_DURING_HANDLER
                } else {
                    "x"
                };
                let before = me.conn.stats();
                match me.conn.reject(ch, tag, text) {
                    Ok(()) => {
                        me.inflight.remove(i);
                        me.record_answer((ch, tag), (false, 0, text.as_bytes().to_vec()), &before);
                    }
                    Err(e) => {
                        assert!(me.conn.is_inflight(ch, tag));
                        // After a loss only the packet limit still refuses.
                        assert!(
                            !me.lost || matches!(e, RespondError::PayloadTooLong { .. }),
                            "{who:?}: rejection of {ch}/{tag} failed after the loss: {e:?}"
                        );
                    }
                }
            }
            Op::Abandon { who, pick } => {
                let me = self.pair(who).0;
                let Some(&key) = me
                    .pending
                    .iter()
                    .nth(usize::from(pick) % me.pending.len().max(1))
                else {
                    assert!(
                        !me.conn.abandon(0, 2 + u64::from(pick)),
                        "abandoned a request that was not pending"
                    );
                    return;
                };
                assert!(
                    me.conn.abandon(key.0, key.1),
                    "{who:?}: pending {key:?} not abandoned"
                );
                me.end_request(key, Ended::Abandoned);
                assert!(!me.conn.abandon(key.0, key.1));
            }
            Op::EndRequests { who } => self.pair(who).0.conn.end_requests(),
            Op::Close { who } => self.pair(who).0.conn.close(),
            Op::OpenChannel { who, channel } => {
                let me = self.pair(who).0;
                let channel = u64::from(channel) % channels;
                if me.conn.open_channel(channel).is_err() {
                    assert!(matches!(me.limits, Limits::Alloc(_)) || channel > 0);
                }
            }
            Op::Write { who, n } => {
                self.write(who, usize::from(n));
            }
            Op::Read { who, n } => {
                self.read(who, usize::from(n));
            }
            Op::ShutWrite { who } => {
                let (me, peer) = self.pair(who);
                me.write_shut = true;
                peer.eof_pending = true;
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(ms));
                let now = self.now;
                self.a.conn.handle_timeout(now);
                self.b.conn.handle_timeout(now);
            }
            Op::Inject { who, ref bytes } => self.inject(who, bytes),
            Op::Lose { who, read, both } => {
                if read > 0 {
                    // Events queued and not polled when the loss comes.
                    self.read(who, usize::from(read));
                }
                self.lose(who);
                if both {
                    self.lose(who.other());
                }
            }
            Op::Craft {
                who,
                channel,
                tag,
                big_tag,
                rq_type_wire,
                pflags,
                len,
            } => {
                let tag = if big_tag {
                    u64::MAX - u64::from(tag)
                } else {
                    u64::from(tag)
                };
                let body = payload(len, pflags);
                let packet = Packet::from_parts(
                    u64::from(channel) % channels,
                    tag,
                    u64::from(pflags),
                    rq_type_wire.map(u64::from),
                    &body,
                )
                .expect("small flags encode");
                let mut bytes = vec![0; packet.encoded_len()];
                packet.encode(&mut bytes).expect("sized to fit");
                self.inject(who, &bytes);
            }
            Op::Replay { who, from, len } => {
                let peer = self.pair(who).1;
                let wire = &peer.wire;
                if wire.is_empty() {
                    return;
                }
                let from = usize::from(from) % wire.len();
                let to = (from + usize::from(len)).min(wire.len());
                let bytes = wire[from..to].to_vec();
                self.inject(who, &bytes);
            }
            Op::Flood {
                who,
                channel,
                start,
                step,
                count,
                requests,
            } => {
                let mut bytes = Vec::new();
                for i in 0..u64::from(count % 41) {
                    let tag = u64::from(start) + i * (u64::from(step % 8) + 1);
                    let packet = Packet::from_parts(
                        u64::from(channel) % channels,
                        tag,
                        u64::from(!requests),
                        requests.then_some(1),
                        &[],
                    )
                    .expect("small flags encode");
                    let at = bytes.len();
                    bytes.resize(at + packet.encoded_len(), 0);
                    packet.encode(&mut bytes[at..]).expect("sized to fit");
                }
                self.inject(who, &bytes);
            }
            Op::AnswerAll { who, ok } => {
                let reached = &mut self.reached;
                let me = match who {
                    Who::A => &mut self.a,
                    Who::B => &mut self.b,
                };
                while let Some(&(ch, tag)) = me.inflight.first() {
                    let before = me.conn.stats();
                    let done = if ok {
                        me.conn.respond(ch, tag, 0, b"ok")
                    } else {
                        me.conn.reject(ch, tag, "no")
                    };
                    if let Err(e) = done {
                        // After a loss only the packet limit still refuses.
                        assert!(
                            !me.lost || matches!(e, RespondError::PayloadTooLong { .. }),
                            "{who:?}: answer to {ch}/{tag} failed after the loss: {e:?}"
                        );
                        if matches!(e, RespondError::NoRoom { .. }) {
                            reached.insert("respond-no-room");
                        }
                        break;
                    }
                    me.inflight.remove(0);
                    let answer = if ok { b"ok" } else { b"no" };
                    me.record_answer((ch, tag), (ok, 0, answer.to_vec()), &before);
                }
            }
        }
    }

    /// `who`'s transport is lost both ways.
    fn lose(&mut self, who: Who) {
        self.reached.insert("lost");
        let (me, peer) = self.pair(who);
        let before = me.conn.stats();
        if me.lost {
            // Idempotent.
            me.conn.handle_transport_lost();
            assert_eq!(
                me.conn.stats(),
                before,
                "{who:?}: a second loss changed stats"
            );
            assert_eq!(me.conn.transmit_len(), 0);
            return;
        }
        // EOF is the last thing queued: transmitted iff nothing is left,
        // and then it is on the wire.
        me.eof_sent_at_loss = me.conn.eof_queued() && me.conn.transmit_len() == 0;
        assert_eq!(me.eof_sent_at_loss, me.wire_eof, "{who:?}: EOF sent?");
        assert!(!me.closed_seen || me.eof_sent_at_loss);
        me.bytes_sent_at_loss = before.bytes_sent;
        me.conn.handle_transport_lost();
        assert!(me.conn.transport_lost());
        assert_eq!(
            me.conn.transmit_len(),
            0,
            "{who:?}: output kept after the loss"
        );
        // (`transmit_prefix` asserts that `poll_transmit` has nothing.)
        let mut rest = Vec::new();
        me.conn.transmit_prefix(0, &mut rest);
        assert_eq!(me.conn.stats().bytes_sent, before.bytes_sent);
        assert_eq!(
            me.conn.handle_input(b"\x03"),
            Err(InputError::AfterTransportEof)
        );
        me.lost = true;
        // Nothing more comes in; what was on the way is gone.
        me.inbox.clear();
        me.eof_pending = true;
        me.eof_delivered = true;
        me.write_shut = true;
        // The peer's link ends; whatever it writes goes nowhere.
        peer.eof_pending = true;
        peer.write_void = true;
    }

    fn submit(
        &mut self,
        who: Who,
        channel: u64,
        rq_type: u8,
        flags: u8,
        len: u8,
        timeout: Option<u8>,
    ) {
        let now = self.now;
        let reached = &mut self.reached;
        let me = match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        };
        let before = (
            me.conn.next_tag(channel),
            me.conn.transmit_len(),
            me.conn.pending_outbound(),
        );
        let body = payload(len, rq_type ^ flags);
        let timeout = timeout.map(|t| Duration::from_millis(u64::from(t)));
        let result = me.conn.submit(
            channel,
            u64::from(rq_type),
            u64::from(flags),
            &body,
            now,
            timeout,
        );
        if me.lost {
            assert_eq!(
                result,
                Err(SubmitError::PeerGone),
                "{who:?}: submit after the loss"
            );
        }
        match result {
            Ok(tag) => {
                assert_eq!(
                    Some(tag),
                    before.0,
                    "{who:?}: tag is not the channel's next tag"
                );
                let key = (channel, tag);
                let sent = Sent {
                    rq_type: u64::from(rq_type),
                    flags: u64::from(flags),
                    payload: body,
                    deadline: timeout.map(|d| now + d),
                };
                assert!(
                    me.sent.insert(key, sent).is_none(),
                    "{who:?}: tag {key:?} reused"
                );
                me.pending.insert(key);
            }
            Err(e) => {
                assert_eq!(
                    before,
                    (
                        me.conn.next_tag(channel),
                        me.conn.transmit_len(),
                        me.conn.pending_outbound()
                    ),
                    "{who:?}: failed submit ({e:?}) changed state"
                );
                match e {
                    SubmitError::TooManyPending { max } => assert_eq!(me.pending.len(), max),
                    SubmitError::NoRoom { required, free } => {
                        let Limits::Borrowed {
                            tx_len,
                            max_packet_len,
                            ..
                        } = me.limits
                        else {
                            panic!("{who:?}: NoRoom from an alloc connection")
                        };
                        assert!(
                            required > free
                                && required <= max_packet_len
                                && free + me.conn.transmit_len() <= tx_len,
                            "{who:?}: {e:?} with {} of {tx_len} queued",
                            me.conn.transmit_len()
                        );
                        reached.insert("submit-no-room");
                    }
                    SubmitError::PayloadTooLong { len, max } => {
                        assert!(len > max && max == me.limits.max_packet_len());
                    }
                    _ => {}
                }
            }
        }
    }

    /// Polls both ends, then checks both; returns the events polled.
    pub fn settle(&mut self, timers_run: bool) -> usize {
        let mut n = 0;
        for who in [Who::A, Who::B] {
            n += self.poll(who);
        }
        for who in [Who::A, Who::B] {
            self.check(who, timers_run);
        }
        n
    }

    /// The orderly end: answer everything, close both ends, move every
    /// byte, then shut the links and let the timers run out. Every request
    /// must then have ended; with output dropped by shut write sides, both
    /// ends must have closed (a lost one only if its EOF went out before the
    /// loss) with everything on the wire.
    pub fn finish(&mut self) {
        for round in 0..10_000 {
            let mut progress = false;
            for who in [Who::A, Who::B] {
                let me = self.pair(who).0;
                for (ch, tag) in std::mem::take(&mut me.inflight) {
                    let before = me.conn.stats();
                    if me.conn.reject(ch, tag, "x").is_ok() {
                        me.record_answer((ch, tag), (false, 0, b"x".to_vec()), &before);
                        progress = true;
                    } else if me.conn.reject(ch, tag, "").is_ok() {
                        me.record_answer((ch, tag), (false, 0, Vec::new()), &before);
                        progress = true;
                    } else {
                        me.inflight.push((ch, tag));
                    }
                }
                me.conn.close();
            }
            for who in [Who::A, Who::B] {
                progress |= self.write(who, usize::MAX);
                progress |= self.read(who, 4096);
            }
            progress |= self.settle(false) > 0;
            if !progress {
                // Nothing moves: the links are idle. Shut them.
                if self.a.write_shut
                    && self.b.write_shut
                    && self.a.eof_delivered
                    && self.b.eof_delivered
                {
                    break;
                }
                for who in [Who::A, Who::B] {
                    let (me, peer) = self.pair(who);
                    me.write_shut = true;
                    peer.eof_pending = true;
                }
            }
            assert!(
                round < 9_999,
                "the pair did not settle: A {:?} inbox {}, B {:?} inbox {}",
                self.a.conn.transmit_len(),
                self.a.inbox.len(),
                self.b.conn.transmit_len(),
                self.b.inbox.len()
            );
        }
        // Deadlines far ahead.
        self.now += Duration::from_secs(1_000);
        let now = self.now;
        self.a.conn.handle_timeout(now);
        self.b.conn.handle_timeout(now);
        self.settle(true);
        let keep = self.rules.shut_keeps_output;
        for (who, me) in [(Who::A, &self.a), (Who::B, &self.b)] {
            assert!(
                me.pending.is_empty(),
                "{who:?}: requests never ended: {:?}",
                me.pending
            );
            assert_eq!(me.conn.pending_outbound(), 0);
            assert!(
                me.peer_end_seen,
                "{who:?}: the peer's end was never reported"
            );
            if keep {
                // A shut write side may have kept output that never went
                // out: no closing is owed.
                continue;
            }
            assert_eq!(me.conn.transmit_len(), 0, "{who:?}: bytes left queued");
            if me.lost {
                // Checked after every step: Closed iff our EOF went out
                // before the loss; what was queued then never went out.
                assert_eq!(me.closed_seen, me.eof_sent_at_loss);
            } else {
                assert!(me.closed_seen, "{who:?}: never Closed");
                me.check_wire_done(who);
            }
        }
    }
}
