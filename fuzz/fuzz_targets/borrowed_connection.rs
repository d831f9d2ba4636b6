//! The no-alloc `packet::BorrowedConnection` (`P = 8` waiting requests,
//! `I = 4` in flight, `C = 4` channels, `T = 16` remembered tags) joined by
//! simulated links to a peer and driven by an `Arbitrary` sequence of
//! operations: submit, respond, reject, answer everything in flight,
//! abandon, `end_requests`, close, `open_channel`, partial writes, partial
//! reads (any chunking; a full receive buffer takes fewer bytes and the rest
//! is offered again), a write side shut (EOF), a transport lost
//! (`handle_transport_lost`, at one end or both, possibly with events still
//! unpolled), the clock advancing (`handle_timeout`), and hostile input: raw bytes, well-formed packets with
//! chosen fields, floods of requests or responses with sparse tags, and
//! replays of what the peer sent before. Every operation list runs twice:
//! against a second `BorrowedConnection`, and against an alloc `Connection`
//! (they speak the same wire).
//!
//! Buffer sizes (receive 16..=2063 bytes, transmit `MIN_TRANSMIT_BUFFER`
//! ..=+2047), the packet limit, `accept_requests`, `max_tag` and varint
//! strictness are fuzzed per end. A model tracks every request and asserts
//! after every step:
//!
//! * nothing panics;
//! * every submitted request ends exactly once (response, cancellation or
//!   timeout; `abandon` ends it silently), and after a final orderly drain
//!   none is left and both ends reached `Closed`;
//! * a response reaches only the request it answers: the same `(channel,
//!   tag)`, with the payload and flags the peer gave it, or a failure text of
//!   `packet::reason` the peer's connection generated (whole, or cut exactly
//!   where it would pass the peer's `max_packet_len`) — unless hostile input
//!   was injected, which only relaxes these payload checks;
//! * a request reaches the peer unaltered and no `(channel, tag)` is
//!   delivered twice; a `BorrowedConnection` delivers none without
//!   `accept_requests`;
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
//!   a failed `submit` changes nothing and `NoRoom` is only reported when the
//!   packet does not fit; the alloc peer stays within its `Config` the same
//!   way `packet_connection` checks;
//! * the counters (`stats`) agree with the requests, answers, events and
//!   bytes seen;
//! * after a loss nothing is queued or transmitted (`submit` fails with
//!   `PeerGone`; an answer is accepted, never `NoRoom`, counted in
//!   `requests_dropped` and never reaches the peer), events queued before it
//!   are still delivered, once the events are drained the receive side has
//!   ended and no request waits, and `Closed` is reported exactly when our
//!   EOF had been transmitted before the loss; the final drain then closes
//!   the other end (unless lost too), and the lost end only if so.
//!
//! A shut write side drops what its end queues from then on, as a driver
//! whose socket can no longer send must (`advance_transmit`): a
//! `BorrowedConnection` whose transmit buffer is too full to refuse a
//! request waits for room before it reads further, so with its output kept
//! it would never reach the peer's EOF, even after `handle_eof`.
#![no_main]
#![allow(
    clippy::struct_excessive_bools,
    clippy::single_match_else,
    clippy::too_many_lines
)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arbitrary::Arbitrary;
use framewire::packet::reason;
use framewire::packet::wire::{Packet, ParseLimits};
use framewire::packet::{
    BorrowedConfig, BorrowedConnection, ChannelError, Config, Connection, Event, InputError,
    ProtocolError, RespondError, Stats, SubmitError, MIN_TRANSMIT_BUFFER,
};
use framewire::time::{Duration, Instant};
use framewire::varint::VarintRules;
use framewire_fuzz::refusal_text;
use libfuzzer_sys::fuzz_target;

/// Our requests waiting for a response.
const P: usize = 8;
/// Peer requests in flight.
const I: usize = 4;
/// Channels besides 0.
const C: usize = 4;
/// Remembered peer tags.
const T: usize = 16;

type Borrowed<'a> = BorrowedConnection<'a, P, I, C, T>;

/// A `BorrowedConnection`'s buffers and options.
#[derive(Arbitrary, Debug)]
struct BorrowedCfg {
    rx_len: u16,
    tx_len: u16,
    max_packet_len: Option<u16>,
    accept_requests: bool,
    max_tag: u8,
    canonical: bool,
}

impl BorrowedCfg {
    fn rx_len(&self) -> usize {
        16 + usize::from(self.rx_len % 2048)
    }

    fn tx_len(&self) -> usize {
        MIN_TRANSMIT_BUFFER + usize::from(self.tx_len % 2048)
    }

    fn config(&self) -> BorrowedConfig {
        let rx = self.rx_len();
        BorrowedConfig {
            // 16..=rx; `None`: the receive buffer's length.
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

/// Mostly no limit; sometimes a small one (10..=65).
fn max_tag(b: u8) -> u64 {
    if b < 200 {
        u64::MAX
    } else {
        u64::from(b - 190)
    }
}

/// An alloc `Connection`'s limits (as `packet_connection`).
#[derive(Arbitrary, Debug)]
struct AllocCfg {
    max_packet_len: u16,
    receive_extra: u16,
    accept_requests: bool,
    max_pending_outbound: u8,
    max_inflight_inbound: u8,
    max_tag: u8,
    max_transmit_buffer: u16,
    max_channels: u8,
    max_remembered_tags: u8,
    copy_threshold: u8,
    canonical: bool,
}

impl AllocCfg {
    fn config(&self) -> Config {
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
            max_channels: usize::from(self.max_channels % 5),
            max_remembered_tags: 1 + usize::from(self.max_remembered_tags % 16),
            copy_threshold: usize::from(self.copy_threshold),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    A,
    B,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Submit {
        who: Who,
        channel: u8,
        rq_type: u8,
        flags: u8,
        len: u8,
        timeout: Option<u8>,
    },
    Respond {
        who: Who,
        pick: u8,
        flags: u8,
        len: u8,
    },
    Reject {
        who: Who,
        pick: u8,
    },
    Abandon {
        who: Who,
        pick: u8,
    },
    EndRequests {
        who: Who,
    },
    Close {
        who: Who,
    },
    OpenChannel {
        who: Who,
        channel: u8,
    },
    /// A partial write of `who`'s queued bytes onto the link.
    Write {
        who: Who,
        n: u16,
    },
    /// A partial read: up to `n` bytes of the link into `who`.
    Read {
        who: Who,
        n: u16,
    },
    /// `who`'s transport can no longer send: the peer gets EOF once the link
    /// drains, and what `who` queues from now on is dropped by its driver.
    ShutWrite {
        who: Who,
    },
    Advance {
        ms: u16,
    },
    /// Raw bytes onto the link towards `who` (a hostile or broken peer).
    Inject {
        who: Who,
        bytes: Vec<u8>,
    },
    /// A well-formed packet with chosen fields onto the link towards `who`.
    Craft {
        who: Who,
        channel: u8,
        tag: u8,
        big_tag: bool,
        /// `Some`: a request of wire type `rq_type_wire`; `None`: a response.
        rq_type_wire: Option<u8>,
        pflags: u8,
        len: u8,
    },
    /// Bytes the peer sent before, again, onto the link towards `who`.
    Replay {
        who: Who,
        from: u16,
        len: u16,
    },
    /// Up to 40 empty requests (or responses) towards `who` on one channel,
    /// tags `start + i * (step % 8 + 1)`: sparse tags to remember and
    /// forget, tags reused, more requests than in-flight slots.
    Flood {
        who: Who,
        channel: u8,
        start: u8,
        step: u8,
        count: u8,
        requests: bool,
    },
    /// `who` answers every request in flight, oldest first, until one fails
    /// (a server driver).
    AnswerAll {
        who: Who,
        ok: bool,
    },
    /// `who`'s transport is lost both ways (`handle_transport_lost`), after
    /// reading up to `read` more bytes without polling (events queued at the
    /// loss). What is on the link towards it is lost; the peer gets EOF once
    /// its link drains and what it writes goes nowhere. With `both`, the
    /// peer's transport is lost too (a reset seen at both ends).
    Lose {
        who: Who,
        read: u16,
        both: bool,
    },
}

/// The operations run twice: A against a `BorrowedConnection` B, and A
/// against an alloc `Connection` B.
#[derive(Arbitrary, Debug)]
struct Scenario {
    a: BorrowedCfg,
    b: BorrowedCfg,
    alloc: AllocCfg,
    ops: Vec<Op>,
}

/// The two connection types behind one interface; events come out owned.
trait Endpoint {
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
    fn pending_outbound(&self) -> usize;
    fn is_pending(&self, channel: u64, tag: u64) -> bool;
    fn inflight_inbound(&self) -> usize;
    fn is_inflight(&self, channel: u64, tag: u64) -> bool;
    fn next_tag(&self, channel: u64) -> Option<u64>;
    fn protocol_error(&self) -> Option<ProtocolError>;
    fn receive_buffered(&self) -> usize;
    /// Unparsed bytes plus held packets (the alloc connection: unparsed).
    fn receive_used(&self) -> usize;
    fn remembered_tags(&self) -> usize;
    fn requests_ended(&self) -> bool;
    fn eof_queued(&self) -> bool;
    fn max_packet_len(&self) -> usize;
    fn stats(&self) -> Stats;
}

impl Endpoint for Borrowed<'_> {
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
struct End<'a> {
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
    /// This end's transport can no longer send (an op, or after `Closed`):
    /// its driver drops what is queued.
    write_shut: bool,
    /// `handle_transport_lost` was called.
    lost: bool,
    /// At the loss: our EOF had been transmitted (so `Closed` must follow).
    eof_sent_at_loss: bool,
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
            lost: false,
            eof_sent_at_loss: false,
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

    fn borrowed(cfg: &BorrowedCfg, rx: &'a mut [u8], tx: &'a mut [u8]) -> Self {
        let (rx_len, tx_len) = (rx.len(), tx.len());
        let config = cfg.config();
        let conn = Borrowed::new(config, rx, tx).expect("valid borrowed config");
        let max_packet_len = config.max_packet_len.unwrap_or(rx_len);
        assert_eq!(conn.max_packet_len(), max_packet_len);
        End::new(
            Box::new(conn),
            Limits::Borrowed {
                rx_len,
                tx_len,
                max_packet_len,
                accept_requests: config.accept_requests,
            },
        )
    }

    fn alloc(config: Config) -> Self {
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
    fn take_transmit(&mut self, who: Who, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        self.conn.transmit_prefix(n, &mut out);
        self.conn.advance_transmit(n);
        self.wire.extend_from_slice(&out);
        self.check_wire(who);
        out
    }

    /// Everything this end sent parses as canonical packets within its
    /// `max_packet_len`, and each is one it had to send.
    fn check_wire(&mut self, who: Who) {
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
                    assert!(
                        !ok && flags == 0 && refusal_text(channel, tag, &payload, max),
                        "{who:?} sent response {key:?} ({ok}, {flags}, {payload:?}) it never gave \
                         (answered: {answer:?})"
                    );
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

struct World<'a> {
    a: End<'a>,
    b: End<'a>,
    now: Instant,
    hostile: bool,
}

impl<'a> World<'a> {
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
        let (me, peer) = self.pair(who);
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
                    assert!(
                        !peer.dropped_answers.contains(&key),
                        "{who:?}: an answer the peer gave after its loss arrived for {key:?}"
                    );
                    if !hostile {
                        if let Some((a_ok, a_flags, a_payload)) = peer.answered.get(&key) {
                            assert_eq!(
                                (*a_ok, *a_flags, &a_payload[..]),
                                (ok, flags, &payload[..]),
                                "{who:?}: wrong response for {key:?}"
                            );
                        } else {
                            // A refusal by the peer's connection itself.
                            assert!(
                                !ok && flags == 0
                                    && refusal_text(
                                        channel,
                                        tag,
                                        &payload,
                                        peer.limits.max_packet_len()
                                    ),
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
                }
                Event::RequestTimedOut { channel, tag } => {
                    let deadline = me.sent[&(channel, tag)]
                        .deadline
                        .expect("timed out without a timeout");
                    assert!(deadline <= now, "{who:?}: timed out early");
                    me.end_request((channel, tag), Ended::TimedOut);
                }
                Event::UnknownResponse { channel, tag } => {
                    me.unknown_seen += 1;
                    let key = (channel, tag);
                    assert!(
                        !me.pending.contains(&key),
                        "{who:?}: response to pending {key:?} reported unknown"
                    );
                    if !hostile {
                        let how = me.ended.get(&key).copied();
                        assert!(
                            matches!(how, Some(Ended::TimedOut | Ended::Abandoned)),
                            "{who:?}: unknown response {key:?} (ended: {how:?})"
                        );
                    }
                }
                Event::PeerEndedRequests => {
                    assert!(!me.peer_erq_seen, "{who:?}: ERQ reported twice");
                    me.peer_erq_seen = true;
                }
                Event::PeerClosed { .. } | Event::ProtocolError(_) => {
                    assert!(!me.peer_end_seen, "{who:?}: peer's end reported twice");
                    me.peer_end_seen = true;
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
        let me = self.pair(who).0;
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
            Limits::Borrowed { rx_len, tx_len, .. } => {
                assert!(me.pending.len() <= P);
                assert!(me.inflight.len() <= I);
                assert!(conn.remembered_tags() <= T);
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
                // refusal made while under it), ERQ and EOF, and the answers
                // given since.
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
        if me.lost {
            // Every event is polled: whatever the loss left is handled.
            assert_eq!(queued, 0, "{who:?}: {queued} bytes queued after the loss");
            assert!(conn.transport_lost());
            assert!(
                me.peer_end_seen,
                "{who:?}: the receive side did not end after the loss"
            );
            assert!(
                me.pending.is_empty(),
                "{who:?}: requests wait after the loss"
            );
            assert_eq!(
                me.closed_seen, me.eof_sent_at_loss,
                "{who:?}: Closed after the loss iff our EOF was transmitted before it"
            );
        }
        let earliest = me.pending.iter().filter_map(|k| me.sent[k].deadline).min();
        assert_eq!(conn.poll_timeout(), earliest, "{who:?}: poll_timeout");
        if let (Some(d), true) = (earliest, timers_run) {
            assert!(d > now, "{who:?}: a deadline passed without a timeout");
        }
    }

    /// Moves up to `n` queued bytes of `who` onto the link (or drops them
    /// if its write side is shut).
    fn write(&mut self, who: Who, n: usize) -> bool {
        let (me, peer) = self.pair(who);
        let n = n.min(me.conn.transmit_len());
        if n == 0 {
            return false;
        }
        let bytes = me.take_transmit(who, n);
        if !me.write_shut {
            peer.inbox.extend(&bytes);
        }
        true
    }

    fn read(&mut self, who: Who, n: usize) -> bool {
        let me = self.pair(who).0;
        let mut progress = false;
        if me.lost {
            return false;
        }
        if !me.inbox.is_empty() && !me.read_failed && !me.eof_delivered {
            let piece: Vec<u8> = me.inbox.iter().take(n.max(1)).copied().collect();
            match me.conn.handle_input(&piece) {
                Ok(taken) => {
                    assert!(taken <= piece.len());
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
    /// it is open.
    fn inject(&mut self, who: Who, bytes: &[u8]) {
        let (me, peer) = self.pair(who);
        if !peer.write_shut && !bytes.is_empty() {
            me.inbox.extend(bytes);
            self.hostile = true;
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Submit {
                who,
                channel,
                rq_type,
                flags,
                len,
                timeout,
            } => self.submit(who, channel, rq_type, flags, len, timeout),
            Op::Respond {
                who,
                pick,
                flags,
                len,
            } => {
                let me = self.pair(who).0;
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
                let channel = u64::from(channel % 6);
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
                    u64::from(channel % 6),
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
                        u64::from(channel % 6),
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
                let me = self.pair(who).0;
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
                        break;
                    }
                    me.inflight.remove(0);
                    let answer = if ok { b"ok" } else { b"no" };
                    me.record_answer((ch, tag), (ok, 0, answer.to_vec()), &before);
                }
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
            Op::Lose { who, read, both } => {
                if read > 0 {
                    // Events queued and not polled when the loss comes.
                    self.read(who, usize::from(read));
                }
                self.lose(who);
                if both {
                    self.lose(match who {
                        Who::A => Who::B,
                        Who::B => Who::A,
                    });
                }
            }
        }
    }

    /// `who`'s transport is lost both ways.
    fn lose(&mut self, who: Who) {
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
        me.conn.handle_transport_lost();
        assert!(me.conn.transport_lost());
        assert_eq!(
            me.conn.transmit_len(),
            0,
            "{who:?}: output kept after the loss"
        );
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
        peer.write_shut = true;
    }

    fn submit(
        &mut self,
        who: Who,
        channel: u8,
        rq_type: u8,
        flags: u8,
        len: u8,
        timeout: Option<u8>,
    ) {
        let now = self.now;
        let me = self.pair(who).0;
        let channel = u64::from(channel % 6);
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
    fn settle(&mut self, timers_run: bool) -> usize {
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
    /// must then have ended, and both ends closed.
    fn finish(&mut self) {
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

fn run(a: &BorrowedCfg, b: Option<&BorrowedCfg>, alloc: &AllocCfg, ops: &[Op]) {
    // Buffers start dirty: nothing may read a byte it did not write.
    let mut a_rx = vec![0xa5; a.rx_len()];
    let mut a_tx = vec![0x5a; a.tx_len()];
    let (mut b_rx, mut b_tx) = match b {
        Some(b) => (vec![0xa5; b.rx_len()], vec![0x5a; b.tx_len()]),
        None => (Vec::new(), Vec::new()),
    };
    let b = match b {
        Some(b) => End::borrowed(b, &mut b_rx, &mut b_tx),
        None => End::alloc(alloc.config()),
    };
    let mut world = World {
        a: End::borrowed(a, &mut a_rx, &mut a_tx),
        b,
        now: Instant::ZERO,
        hostile: false,
    };
    for op in ops {
        world.step(op);
        world.settle(matches!(op, Op::Advance { .. }));
    }
    world.finish();
}

fuzz_target!(|scenario: Scenario| {
    let ops = &scenario.ops[..scenario.ops.len().min(400)];
    run(&scenario.a, Some(&scenario.b), &scenario.alloc, ops);
    run(&scenario.a, None, &scenario.alloc, ops);
});
