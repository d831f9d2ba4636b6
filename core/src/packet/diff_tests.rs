//! The alloc [`Connection`] and the no-alloc [`BorrowedConnection`] side by
//! side.
//!
//! * A differential test: two pairs of connections, one of each kind, run
//!   the same random operations (submit, respond, reject, abandon,
//!   end_requests, close, transport shutdown, time, injected packets) over
//!   links that move the same random pieces, and after every step the bytes
//!   each side transmitted, every event, every counter and every getter must
//!   be identical. This is the check that the two share their rules.
//! * A pair of no-alloc connections exchanging 10,000 requests through
//!   small buffers with random chunking.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::string::String;
use std::vec;
use std::vec::Vec;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

use super::pair::Rng;
use super::wire::{self, Packet};
use super::*;
use crate::time::{Duration, Instant};

/// What the harness needs from a connection of either kind.
trait Endpoint {
    fn input(&mut self, bytes: &[u8]) -> Result<usize, InputError>;
    fn eof(&mut self);
    fn timeout(&mut self, now: Instant);
    #[allow(clippy::too_many_arguments)]
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
    fn event(&mut self) -> Option<Event>;
    /// Every queued byte.
    fn queued(&self) -> Vec<u8>;
    fn advance(&mut self, n: usize);
    fn next_timeout(&self) -> Option<Instant>;
    fn snapshot(&self) -> Snapshot;
}

/// Everything observable through the getters.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Snapshot {
    state: State,
    stats: Stats,
    pending: usize,
    inflight: usize,
    remembered: usize,
    receive_buffered: usize,
    transmit_len: usize,
    timeout: Option<Instant>,
    peer_closed: Option<PeerCloseReason>,
    protocol_error: Option<ProtocolError>,
    flags: (bool, bool, bool),
    next_tags: (Option<u64>, Option<u64>),
}

impl Endpoint for Connection {
    fn input(&mut self, bytes: &[u8]) -> Result<usize, InputError> {
        self.handle_input(bytes)
    }
    fn eof(&mut self) {
        self.handle_eof();
    }
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
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
            Bytes::copy_from_slice(payload),
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
        Connection::respond(self, channel, tag, flags, Bytes::copy_from_slice(payload))
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
    /// Parsing on poll, events are taken lent (and turned into the same
    /// events the eager connection queues): every other one's payload
    /// through `take_lent_payload`, the rest copied.
    fn event(&mut self) -> Option<Event> {
        if !self.config().parse_on_poll {
            return self.poll_event();
        }
        let take = self.stats().packets_received % 2 == 1;
        let mut event = self.poll_lent()?.to_event();
        if take {
            if let Event::RequestReceived { payload, .. }
            | Event::ResponseReceived { payload, .. } = &mut event
            {
                let taken = self.take_lent_payload();
                assert_eq!(taken, *payload, "a taken payload is the lent one");
                *payload = taken;
            }
        }
        Some(event)
    }
    fn queued(&self) -> Vec<u8> {
        self.transmit_chunks().flatten().copied().collect()
    }
    fn advance(&mut self, n: usize) {
        self.advance_transmit(n);
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state(),
            stats: *self.stats(),
            pending: self.pending_outbound(),
            inflight: self.inflight_inbound(),
            remembered: self.remembered_tags(),
            receive_buffered: self.receive_buffered(),
            transmit_len: self.transmit_len(),
            timeout: self.poll_timeout(),
            peer_closed: self.peer_closed(),
            protocol_error: self.protocol_error(),
            flags: (
                self.peer_ended_requests(),
                self.requests_ended(),
                self.eof_queued(),
            ),
            next_tags: (self.next_tag(0), self.next_tag(3)),
        }
    }
}

/// The alloc connection polled through `poll_lent_handling`: responses
/// to odd tags are taken by its `receive` closure (and turned into the
/// events the others report, kept here in order), the rest come back as
/// events. Eager or parsing on poll, as configured.
struct Handling {
    conn: Connection,
    taken: VecDeque<Event>,
}

impl Endpoint for Handling {
    fn input(&mut self, bytes: &[u8]) -> Result<usize, InputError> {
        self.conn.input(bytes)
    }
    fn eof(&mut self) {
        self.conn.eof();
    }
    fn timeout(&mut self, now: Instant) {
        self.conn.timeout(now);
    }
    fn submit(
        &mut self,
        channel: u64,
        rq_type: u64,
        flags: u64,
        payload: &[u8],
        now: Instant,
        timeout: Option<Duration>,
    ) -> Result<u64, SubmitError> {
        Endpoint::submit(
            &mut self.conn,
            channel,
            rq_type,
            flags,
            payload,
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
        Endpoint::respond(&mut self.conn, channel, tag, flags, payload)
    }
    fn reject(&mut self, channel: u64, tag: u64, reason: &str) -> Result<(), RespondError> {
        Endpoint::reject(&mut self.conn, channel, tag, reason)
    }
    fn abandon(&mut self, channel: u64, tag: u64) -> bool {
        Endpoint::abandon(&mut self.conn, channel, tag)
    }
    fn end_requests(&mut self) {
        Endpoint::end_requests(&mut self.conn);
    }
    fn close(&mut self) {
        Endpoint::close(&mut self.conn);
    }
    fn event(&mut self) -> Option<Event> {
        if let Some(e) = self.taken.pop_front() {
            return Some(e);
        }
        let taken = &mut self.taken;
        let event = self.conn.poll_lent_handling(
            |_, _| {},
            |r| {
                if r.tag % 2 == 0 {
                    return false;
                }
                taken.push_back(Event::ResponseReceived {
                    channel: r.channel,
                    tag: r.tag,
                    ok: r.ok,
                    flags: r.flags,
                    payload: Bytes::copy_from_slice(r.payload),
                });
                true
            },
        );
        if let Some(e) = event {
            let e = e.to_event();
            assert!(
                !matches!(e, Event::ResponseReceived { tag, .. } if tag % 2 == 1),
                "a response the closure takes is not returned: {e:?}"
            );
            self.taken.push_back(e);
        }
        self.taken.pop_front()
    }
    fn queued(&self) -> Vec<u8> {
        self.conn.queued()
    }
    fn advance(&mut self, n: usize) {
        self.conn.advance(n);
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.conn.next_timeout()
    }
    fn snapshot(&self) -> Snapshot {
        self.conn.snapshot()
    }
}

impl<const P: usize, const I: usize, const C: usize, const T: usize> Endpoint
    for BorrowedConnection<'static, P, I, C, T>
{
    fn input(&mut self, bytes: &[u8]) -> Result<usize, InputError> {
        self.handle_input(bytes)
    }
    fn eof(&mut self) {
        self.handle_eof();
    }
    fn timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
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
    fn event(&mut self) -> Option<Event> {
        self.poll_event().map(|e| e.to_event())
    }
    fn queued(&self) -> Vec<u8> {
        self.poll_transmit().unwrap_or(&[]).to_vec()
    }
    fn advance(&mut self, n: usize) {
        self.advance_transmit(n);
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: self.state(),
            stats: *self.stats(),
            pending: self.pending_outbound(),
            inflight: self.inflight_inbound(),
            remembered: self.remembered_tags(),
            receive_buffered: self.receive_buffered(),
            transmit_len: self.transmit_len(),
            timeout: self.poll_timeout(),
            peer_closed: self.peer_closed(),
            protocol_error: self.protocol_error(),
            flags: (
                self.peer_ended_requests(),
                self.requests_ended(),
                self.eof_queued(),
            ),
            next_tags: (self.next_tag(0), self.next_tag(3)),
        }
    }
}

// ----- a generic pair over simulated links -----

/// One end: a connection, its simulated socket and what the test knows.
struct Side<E> {
    conn: E,
    /// Every event, in order.
    log: Vec<Event>,
    /// Events not looked at by the test yet.
    fresh: VecDeque<Event>,
    /// Every byte transmitted.
    sent: Vec<u8>,
    inbox: VecDeque<u8>,
    eof_pending: bool,
    eof_delivered: bool,
    read_error: Option<InputError>,
    write_shut: bool,
}

impl<E: Endpoint> Side<E> {
    fn new(conn: E) -> Self {
        Side {
            conn,
            log: Vec::new(),
            fresh: VecDeque::new(),
            sent: Vec::new(),
            inbox: VecDeque::new(),
            eof_pending: false,
            eof_delivered: false,
            read_error: None,
            write_shut: false,
        }
    }

    /// Drains events (a driver does this after every call). Returns whether
    /// `Closed` came.
    fn drain(&mut self) -> bool {
        let mut closed = false;
        while let Some(e) = self.conn.event() {
            closed |= e == Event::Closed;
            self.log.push(e.clone());
            self.fresh.push_back(e);
        }
        closed
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Client,
    Server,
}

impl Who {
    fn other(self) -> Who {
        match self {
            Who::Client => Who::Server,
            Who::Server => Who::Client,
        }
    }
}

struct Duo<E> {
    client: Side<E>,
    server: Side<E>,
    now: Instant,
    max_chunk: usize,
    rng: Rng,
}

impl<E: Endpoint> Duo<E> {
    fn new(client: E, server: E, seed: u64, max_chunk: usize) -> Self {
        Duo {
            client: Side::new(client),
            server: Side::new(server),
            now: Instant::ZERO,
            max_chunk,
            rng: Rng::new(seed),
        }
    }

    fn side(&mut self, who: Who) -> &mut Side<E> {
        match who {
            Who::Client => &mut self.client,
            Who::Server => &mut self.server,
        }
    }

    fn split(&mut self, from: Who) -> (&mut Side<E>, &mut Side<E>) {
        match from {
            Who::Client => (&mut self.client, &mut self.server),
            Who::Server => (&mut self.server, &mut self.client),
        }
    }

    fn piece(&mut self, available: usize) -> usize {
        if self.max_chunk == 0 {
            available
        } else {
            self.rng.between_1_and(self.max_chunk).min(available)
        }
    }

    fn shutdown_write(&mut self, who: Who) {
        let (from, to) = self.split(who);
        from.write_shut = true;
        to.eof_pending = true;
    }

    /// Events of `who` (and a shutdown once it reports `Closed`).
    fn drain(&mut self, who: Who) {
        if self.side(who).drain() {
            self.shutdown_write(who);
        }
    }

    /// A partial write from `from` and a partial read into the other side.
    fn step_direction(&mut self, from: Who) -> bool {
        let mut progress = false;
        let queued = {
            let s = self.side(from);
            if s.write_shut {
                Vec::new()
            } else {
                s.conn.queued()
            }
        };
        if !queued.is_empty() {
            let n = self.piece(queued.len());
            let (tx, rx) = self.split(from);
            rx.inbox.extend(&queued[..n]);
            tx.sent.extend_from_slice(&queued[..n]);
            tx.conn.advance(n);
            self.drain(from);
            progress = true;
        }
        let to = from.other();
        let available = self.side(to).inbox.len();
        if available > 0 && self.side(to).read_error.is_none() {
            let n = self.piece(available);
            let s = self.side(to);
            let piece: Vec<u8> = s.inbox.iter().take(n).copied().collect();
            match s.conn.input(&piece) {
                Ok(taken) => {
                    s.inbox.drain(..taken);
                    progress |= taken > 0;
                }
                Err(e) => {
                    s.read_error = Some(e);
                    s.inbox.clear();
                    progress = true;
                }
            }
            self.drain(to);
        }
        let s = self.side(to);
        if s.inbox.is_empty() && s.eof_pending && !s.eof_delivered {
            s.eof_delivered = true;
            s.conn.eof();
            self.drain(to);
            progress = true;
        }
        progress
    }

    fn step(&mut self) -> bool {
        let a = self.step_direction(Who::Client);
        let b = self.step_direction(Who::Server);
        a || b
    }

    fn drive(&mut self) {
        let mut steps = 0u32;
        while self.step() {
            steps += 1;
            assert!(steps < 1_000_000, "did not settle");
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        let now = self.now;
        for who in [Who::Client, Who::Server] {
            self.side(who).conn.timeout(now);
            self.drain(who);
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        match (
            self.client.conn.next_timeout(),
            self.server.conn.next_timeout(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

// ----- random operations -----

#[derive(Clone, Debug)]
enum Op {
    Submit {
        server: bool,
        channel3: bool,
        len: usize,
        flags: u64,
        timeout_ms: Option<u64>,
    },
    Answer {
        server: bool,
        n: usize,
        reject: bool,
        len: usize,
    },
    Step(u8),
    /// Steps until nothing moves.
    Drive,
    Advance(u64),
    Close(bool),
    EndRequests(bool),
    Shutdown(bool),
    Abandon(bool),
    /// Packets appended to a side's inbox, as if its peer had sent them
    /// (duplicate and gappy tags, unknown channels, markers), when the side
    /// is between packets.
    Inject(bool, Vec<u8>),
    /// Raw bytes appended to a side's inbox wherever it is.
    Garbage(bool, Vec<u8>),
}

/// Packets a peer might send that keep the session going: requests with
/// small tags (collisions with the peer's own, gaps) on open and unknown
/// channels, responses to made-up tags, ERQ.
fn arb_live_injection() -> impl Strategy<Value = Vec<u8>> {
    let channel = prop_oneof![Just(0u64), Just(3), Just(5), Just(7)];
    prop_oneof![
        6 => (channel, 0u64..40, 0u64..4, 0usize..20).prop_map(|(c, t, ty, n)| {
            encode(&Packet::request(c, t, ty, 0, &vec![9; n]).unwrap())
        }),
        2 => (prop_oneof![Just(0u64), Just(3)], 0u64..30, any::<bool>())
            .prop_map(|(c, t, ok)| encode(&Packet::response(c, t, ok, 1, b"inj").unwrap())),
        1 => Just(wire::ERQ_BYTES.to_vec()),
    ]
}

/// Packets that end the peer's stream: EOF, a malformed marker, a tag over
/// a small `max_tag`, a packet over a small `max_packet_len`.
fn arb_final_injection() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(wire::EOF_BYTES.to_vec()),
        Just(encode(&Packet::from_parts(0, 5, 0, Some(0), b"").unwrap())),
        Just(encode(&Packet::request(0, 1000, 0, 0, b"").unwrap())),
        Just(encode(&Packet::request(0, 90, 0, 0, &[1; 300]).unwrap())),
    ]
}

fn encode(p: &Packet<'_>) -> Vec<u8> {
    let mut v = vec![0; p.encoded_len()];
    p.encode(&mut v).unwrap();
    v
}

/// Operations that keep both ends open (mostly: an injected ERQ, or a small
/// limit, can still end things).
fn arb_live_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (
            any::<bool>(),
            any::<bool>(),
            0usize..64,
            0u64..4,
            proptest::option::of(prop_oneof![Just(100u64), Just(200), 1u64..500])
        )
            .prop_map(|(server, channel3, len, flags, timeout_ms)| Op::Submit {
                server,
                channel3,
                len,
                flags,
                timeout_ms
            }),
        6 => (any::<bool>(), 0usize..4, any::<bool>(), 0usize..40)
            .prop_map(|(server, n, reject, len)| Op::Answer { server, n, reject, len }),
        6 => any::<u8>().prop_map(Op::Step),
        4 => Just(Op::Drive),
        2 => (0u64..300).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Abandon),
        5 => (any::<bool>(), arb_live_injection()).prop_map(|(s, b)| Op::Inject(s, b)),
    ]
}

/// Any operation, including those that end a session.
fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => arb_live_op(),
        1 => any::<bool>().prop_map(Op::Close),
        1 => any::<bool>().prop_map(Op::EndRequests),
        1 => any::<bool>().prop_map(Op::Shutdown),
        1 => (any::<bool>(), arb_final_injection()).prop_map(|(s, b)| Op::Inject(s, b)),
        1 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(s, b)| Op::Garbage(s, b)),
    ]
}

/// A session: a long live stretch, then anything.
fn arb_session() -> impl Strategy<Value = Vec<Op>> {
    (
        proptest::collection::vec(arb_live_op(), 0..150),
        proptest::collection::vec(arb_op(), 0..40),
    )
        .prop_map(|(mut live, rest)| {
            live.extend(rest);
            live
        })
}

/// What one duo returned for one operation, to compare across kinds.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    None,
    Submit(Result<u64, SubmitError>),
    Answers(Vec<Result<(), RespondError>>),
    Abandon(Option<(u64, u64, bool)>),
}

fn side_of<E: Endpoint>(duo: &mut Duo<E>, server: bool) -> &mut Side<E> {
    duo.side(if server { Who::Server } else { Who::Client })
}

/// Answers the first `n` requests `server` has received and not answered,
/// in the order they arrived. Answers that fail stay for later.
fn answer<E: Endpoint>(
    duo: &mut Duo<E>,
    server: bool,
    n: usize,
    reject: bool,
    len: usize,
) -> Vec<Result<(), RespondError>> {
    let side = side_of(duo, server);
    let mut results = Vec::new();
    let mut keep = VecDeque::new();
    let mut left = n;
    while let Some(e) = side.fresh.pop_front() {
        match e {
            Event::RequestReceived { channel, tag, .. } if left > 0 => {
                left -= 1;
                let r = if reject {
                    side.conn.reject(channel, tag, "refused by the test")
                } else {
                    side.conn.respond(channel, tag, 1, &vec![tag as u8; len])
                };
                if r.is_err() {
                    keep.push_back(e);
                }
                results.push(r);
                side.drain();
            }
            e @ Event::RequestReceived { .. } => keep.push_back(e),
            _ => {}
        }
    }
    side.fresh = keep;
    results
}

fn apply<E: Endpoint>(duo: &mut Duo<E>, op: &Op) -> Outcome {
    let out = match op {
        &Op::Submit {
            server,
            channel3,
            len,
            flags,
            timeout_ms,
        } => {
            let now = duo.now;
            let side = side_of(duo, server);
            let r = side.conn.submit(
                if channel3 { 3 } else { 0 },
                len as u64,
                flags,
                &vec![7u8; len],
                now,
                timeout_ms.map(Duration::from_millis),
            );
            Outcome::Submit(r)
        }
        &Op::Answer {
            server,
            n,
            reject,
            len,
        } => Outcome::Answers(answer(duo, server, n, reject, len)),
        &Op::Step(n) => {
            for _ in 0..n % 8 {
                duo.step();
            }
            Outcome::None
        }
        Op::Drive => {
            duo.drive();
            Outcome::None
        }
        &Op::Advance(ms) => {
            duo.advance(Duration::from_millis(ms));
            Outcome::None
        }
        &Op::Close(server) => {
            side_of(duo, server).conn.close();
            Outcome::None
        }
        &Op::EndRequests(server) => {
            side_of(duo, server).conn.end_requests();
            Outcome::None
        }
        &Op::Shutdown(server) => {
            duo.shutdown_write(if server { Who::Server } else { Who::Client });
            Outcome::None
        }
        &Op::Abandon(server) => {
            // The oldest of our requests whose end has not been seen.
            let side = side_of(duo, server);
            let mut open: BTreeSet<(u64, u64)> = BTreeSet::new();
            // Our requests from what we transmitted, minus those that ended.
            let mut rest = &side.sent[..];
            while let Ok(Some((p, n))) = Packet::parse(rest, &wire::ParseLimits::default()) {
                if p.request_type().is_some() {
                    open.insert((p.channel(), p.tag()));
                }
                rest = &rest[n..];
            }
            for e in &side.log {
                match *e {
                    Event::ResponseReceived { channel, tag, .. }
                    | Event::RequestCancelled { channel, tag }
                    | Event::RequestTimedOut { channel, tag } => {
                        open.remove(&(channel, tag));
                    }
                    _ => {}
                }
            }
            let target = open.first().copied();
            Outcome::Abandon(target.map(|(c, t)| (c, t, side.conn.abandon(c, t))))
        }
        Op::Inject(server, bytes) => {
            let side = side_of(duo, *server);
            if side.inbox.is_empty() && side.conn.snapshot().receive_buffered == 0 {
                side.inbox.extend(bytes.iter().copied());
            }
            Outcome::None
        }
        Op::Garbage(server, bytes) => {
            side_of(duo, *server).inbox.extend(bytes.iter().copied());
            Outcome::None
        }
    };
    duo.drain(Who::Client);
    duo.drain(Who::Server);
    out
}

fn assert_same<A: Endpoint, B: Endpoint>(a: &Duo<A>, b: &Duo<B>, at: &str) {
    for (name, sa, sb) in [
        ("client", &a.client, &b.client),
        ("server", &a.server, &b.server),
    ] {
        assert_eq!(sa.sent, sb.sent, "{name} bytes differ {at}");
        assert_eq!(sa.log, sb.log, "{name} events differ {at}");
        assert_eq!(
            sa.conn.snapshot(),
            sb.conn.snapshot(),
            "{name} state differs {at}"
        );
        assert_eq!(sa.inbox, sb.inbox, "{name} inbox differs {at}");
        assert_eq!(sa.read_error, sb.read_error, "{name} read error {at}");
    }
    assert_eq!(a.now, b.now);
}

/// Capacities shared by both kinds in the differential runs.
const P: usize = 6;
const I: usize = 3;
const C: usize = 2;
const T: usize = 3;
const RX: usize = 1024;
const TX: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
struct Variant {
    accept_requests: bool,
    max_tag: u64,
    max_packet_len: usize,
}

fn configs(v: Variant) -> (Config, BorrowedConfig) {
    let alloc = Config {
        max_packet_len: v.max_packet_len,
        accept_requests: v.accept_requests,
        max_pending_outbound: P,
        max_inflight_inbound: I,
        max_tag: v.max_tag,
        max_receive_buffer: RX,
        max_transmit_buffer: TX,
        max_channels: C,
        max_remembered_tags: T,
        copy_threshold: 16,
        ..Config::default()
    };
    let borrowed = BorrowedConfig {
        max_packet_len: Some(v.max_packet_len),
        accept_requests: v.accept_requests,
        max_tag: v.max_tag,
        ..BorrowedConfig::default()
    };
    (alloc, borrowed)
}

type B = BorrowedConnection<'static, P, I, C, T>;

fn leak(n: usize) -> &'static mut [u8] {
    std::boxed::Box::leak(vec![0xa5u8; n].into_boxed_slice())
}

fn borrowed(config: BorrowedConfig, rx: usize, tx: usize) -> B {
    BorrowedConnection::new(config, leak(rx), leak(tx)).unwrap()
}

/// The same session run four ways: the alloc connection (the reference),
/// the no-alloc one, the alloc one parsing on poll with its events taken
/// lent, and the alloc one polled through `poll_lent_handling`.
struct Quartet {
    alloc: Duo<Connection>,
    borrowed: Duo<BorrowedConnection<'static, P, I, C, T>>,
    lent: Duo<Connection>,
    handling: Duo<Handling>,
}

impl Quartet {
    fn new(seed: u64, max_chunk: usize, variant: Variant) -> Self {
        let (ac, bc) = configs(variant);
        let lc = Config {
            parse_on_poll: true,
            ..ac
        };
        // Taking some responses in its closure: eager or parsing on poll
        // by the seed.
        let hc = Config {
            parse_on_poll: seed.is_multiple_of(2),
            ..ac
        };
        let handling = || Handling {
            conn: Connection::new(hc).unwrap(),
            taken: VecDeque::new(),
        };
        let alloc = |c| Connection::new(c).unwrap();
        let mut q = Quartet {
            alloc: Duo::new(alloc(ac), alloc(ac), seed, max_chunk),
            borrowed: Duo::new(borrowed(bc, RX, TX), borrowed(bc, RX, TX), seed, max_chunk),
            lent: Duo::new(alloc(lc), alloc(lc), seed, max_chunk),
            handling: Duo::new(handling(), handling(), seed, max_chunk),
        };
        for side in [Who::Client, Who::Server] {
            for ch in [3, 5, 6] {
                let opened = q.alloc.side(side).conn.open_channel(ch);
                assert_eq!(opened, q.borrowed.side(side).conn.open_channel(ch));
                assert_eq!(opened, q.lent.side(side).conn.open_channel(ch));
                assert_eq!(opened, q.handling.side(side).conn.conn.open_channel(ch));
            }
        }
        q
    }

    fn apply(&mut self, op: &Op, at: &str) {
        let ra = apply(&mut self.alloc, op);
        assert_eq!(ra, apply(&mut self.borrowed, op), "results differ {at}");
        assert_eq!(
            ra,
            apply(&mut self.lent, op),
            "results differ, parsing on poll, {at}"
        );
        assert_eq!(
            ra,
            apply(&mut self.handling, op),
            "results differ, responses taken in place, {at}"
        );
    }

    fn assert_same(&self, at: &str) {
        assert_same(&self.alloc, &self.borrowed, at);
        assert_same(&self.alloc, &self.lent, at);
        assert_same(&self.alloc, &self.handling, at);
    }

    fn drive(&mut self) {
        self.alloc.drive();
        self.borrowed.drive();
        self.lent.drive();
        self.handling.drive();
    }

    /// Every request `server` has answered with `len` bytes, the same way.
    fn answer_all(&mut self, server: bool, len: usize) {
        let ra = answer(&mut self.alloc, server, usize::MAX, false, len);
        assert_eq!(
            ra,
            answer(&mut self.borrowed, server, usize::MAX, false, len)
        );
        assert_eq!(ra, answer(&mut self.lent, server, usize::MAX, false, len));
        assert_eq!(
            ra,
            answer(&mut self.handling, server, usize::MAX, false, len)
        );
    }

    fn next_timer(&self) -> Option<Instant> {
        let timer = self.alloc.next_timer();
        assert_eq!(timer, self.borrowed.next_timer());
        assert_eq!(timer, self.lent.next_timer());
        assert_eq!(timer, self.handling.next_timer());
        timer
    }

    fn advance(&mut self, delay: Duration) {
        self.alloc.advance(delay);
        self.borrowed.advance(delay);
        self.lent.advance(delay);
        self.handling.advance(delay);
    }

    fn close(&mut self, who: Who) {
        self.alloc.side(who).conn.close();
        self.borrowed.side(who).conn.close();
        self.lent.side(who).conn.close();
        Endpoint::close(&mut self.handling.side(who).conn);
        self.alloc.drain(who);
        self.borrowed.drain(who);
        self.lent.drain(who);
        self.handling.drain(who);
    }
}

fn run_differential(seed: u64, max_chunk: usize, variant: Variant, ops: &[Op]) {
    let mut q = Quartet::new(seed, max_chunk, variant);
    for (i, op) in ops.iter().enumerate() {
        let at = format_at(seed, i, op);
        q.apply(op, &at);
        q.assert_same(&at);
    }
    // Finish: everything answered, timers run out, both close.
    for round in 0..100 {
        q.drive();
        for server in [false, true] {
            q.answer_all(server, 5);
        }
        q.drive();
        q.assert_same(&format_at(seed, 10_000 + round, &Op::Step(0)));
        let timer = q.next_timer();
        let a = &q.alloc;
        if !(a.client.fresh.is_empty() && a.server.fresh.is_empty()) {
            continue;
        }
        let Some(timer) = timer else {
            break;
        };
        q.advance(timer.saturating_duration_since(a.now));
    }
    for who in [Who::Client, Who::Server] {
        q.close(who);
    }
    for _ in 0..20 {
        q.drive();
        for server in [false, true] {
            q.answer_all(server, 1);
        }
    }
    q.assert_same(&format_at(seed, 20_000, &Op::Step(0)));
}

fn format_at(seed: u64, i: usize, op: &Op) -> String {
    use core::fmt::Write;
    let mut s = String::new();
    write!(s, "after op {i} {op:?} (seed {seed})").unwrap();
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn alloc_and_borrowed_agree_byte_for_byte(
        seed: u64,
        max_chunk in prop_oneof![Just(0usize), 1usize..40],
        accept_requests in prop_oneof![9 => Just(true), 1 => Just(false)],
        max_tag in prop_oneof![4 => Just(u64::MAX), 1 => Just(25u64)],
        max_packet_len in prop_oneof![Just(RX), Just(256usize), Just(48usize)],
        ops in arb_session(),
    ) {
        let v = Variant { accept_requests, max_tag, max_packet_len };
        run_differential(seed, max_chunk, v, &ops);
    }
}

#[test]
fn differential_fixed_seeds() {
    // A long deterministic run per seed, with every kind of operation.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (
        proptest::collection::vec(arb_live_op(), 300..400),
        proptest::collection::vec(arb_op(), 50..100),
    )
        .prop_map(|(mut a, b)| {
            a.extend(b);
            a
        });
    for seed in 0..8u64 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let v = Variant {
            accept_requests: true,
            max_tag: u64::MAX,
            max_packet_len: 256,
        };
        run_differential(seed, 1 + (seed as usize * 5) % 23, v, &ops);
    }
}

// ----- 10,000 requests between two no-alloc connections -----

/// The expected answer to request `i`: the payload reversed, or a refusal
/// for every seventh.
fn expected_answer(i: u64, payload: &[u8]) -> (bool, Vec<u8>) {
    if i % 7 == 6 {
        (false, b"refused".to_vec())
    } else {
        (true, payload.iter().rev().copied().collect())
    }
}

fn payload_of(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k as u64 * 31 + i) as u8).collect()
}

fn ten_thousand<const PP: usize, const II: usize>(
    seed: u64,
    rx: usize,
    tx: usize,
    max_chunk: usize,
    max_payload: usize,
) {
    const N: u64 = 10_000;
    let new = || {
        BorrowedConnection::<'static, PP, II>::new(BorrowedConfig::default(), leak(rx), leak(tx))
            .unwrap()
    };
    let mut duo = Duo::new(new(), new(), seed, max_chunk);
    duo.client.conn.open_channel(3).unwrap();
    duo.server.conn.open_channel(3).unwrap();
    let mut sent: BTreeMap<(u64, u64), (u64, Vec<u8>)> = BTreeMap::new();
    let mut done = 0u64;
    let mut next = 0u64;
    let mut owed: Vec<(u64, u64, u64, Vec<u8>)> = Vec::new();
    let mut rounds = 0u64;
    while done < N {
        rounds += 1;
        assert!(rounds < 5_000_000, "stuck at {done} answered (seed {seed})");
        // Submit a few while there is room.
        for _ in 0..duo.rng.below(4) {
            if next == N {
                break;
            }
            let channel = if next.is_multiple_of(3) { 3 } else { 0 };
            let len = duo.rng.below(max_payload + 1);
            let payload = payload_of(next, len);
            let now = duo.now;
            match duo
                .client
                .conn
                .submit(channel, next, 0, &payload, now, None)
            {
                Ok(tag) => {
                    assert!(sent.insert((channel, tag), (next, payload)).is_none());
                    next += 1;
                }
                Err(SubmitError::NoRoom { .. } | SubmitError::TooManyPending { .. }) => break,
                Err(e) => panic!("submit: {e}"),
            }
        }
        duo.step();
        // The server answers what it has, in a shuffled order; answers that
        // do not fit wait.
        while let Some(e) = duo.server.fresh.pop_front() {
            let Event::RequestReceived {
                channel,
                tag,
                rq_type,
                payload,
                ..
            } = e
            else {
                panic!("server got {e:?}")
            };
            owed.push((channel, tag, rq_type, payload.to_vec()));
        }
        answer_owed(&mut duo, &mut owed);
        duo.step();
        while let Some(e) = duo.client.fresh.pop_front() {
            let Event::ResponseReceived {
                channel,
                tag,
                ok,
                payload,
                ..
            } = e
            else {
                panic!("client got {e:?}")
            };
            let (i, request) = sent
                .remove(&(channel, tag))
                .expect("an answer to a request");
            assert_eq!(
                (ok, payload.to_vec()),
                expected_answer(i, &request),
                "request {i}"
            );
            done += 1;
        }
    }
    assert!(sent.is_empty());
    let stats = *duo.client.conn.stats();
    assert_eq!(stats.requests_sent, N);
    assert_eq!(stats.responses_received, N);
    assert_eq!(stats.unknown_responses, 0);
    assert_eq!(duo.server.conn.stats().requests_refused, 0);
    // Orderly close from the client; both finish.
    duo.client.conn.close();
    duo.drain(Who::Client);
    duo.drive();
    assert!(duo.client.log.ends_with(&[
        Event::PeerEndedRequests,
        Event::PeerClosed {
            reason: PeerCloseReason::EofPacket
        },
        Event::Closed
    ]));
    assert_eq!(duo.server.log.last(), Some(&Event::Closed));
    assert_eq!(duo.client.conn.state(), State::Closed);
    assert_eq!(duo.server.conn.state(), State::Closed);
    assert!(duo.client.sent.ends_with(&wire::EOF_BYTES));
}

/// The server answers what it owes in a shuffled order; answers that do
/// not fit in its transmit buffer wait for the next round.
fn answer_owed<E: Endpoint>(duo: &mut Duo<E>, owed: &mut Vec<(u64, u64, u64, Vec<u8>)>) {
    duo.rng.shuffle(owed);
    let mut keep = Vec::new();
    for (channel, tag, i, payload) in owed.drain(..) {
        let (ok, answer) = expected_answer(i, &payload);
        let r = if ok {
            duo.server.conn.respond(channel, tag, 0, &answer)
        } else {
            duo.server.conn.reject(channel, tag, "refused")
        };
        match r {
            Ok(()) => {
                duo.server.drain();
            }
            Err(RespondError::NoRoom { .. }) => keep.push((channel, tag, i, payload)),
            Err(e) => panic!("respond: {e}"),
        }
    }
    *owed = keep;
}

#[test]
fn ten_thousand_requests_through_small_buffers() {
    ten_thousand::<8, 4>(1, 256, 256, 7, 80);
    ten_thousand::<16, 8>(2, 1024, 512, 61, 160);
    ten_thousand::<4, 2>(3, 300, 1024, 1, 16);
}

/// How much of the rule book the random runs reach (printed with
/// `--nocapture`; asserted loosely so a generator change that stops
/// exercising a rule is noticed).
#[test]
fn differential_coverage() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = arb_session();
    let mut total = Stats::default();
    let mut events: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seed in 0..64u64 {
        let ops = strategy.new_tree(&mut runner).unwrap().current();
        let (ac, _) = configs(Variant {
            accept_requests: true,
            max_tag: u64::MAX,
            max_packet_len: 256,
        });
        let mut a = Duo::new(
            Connection::new(ac).unwrap(),
            Connection::new(ac).unwrap(),
            seed,
            1 + seed as usize % 17,
        );
        for who in [Who::Client, Who::Server] {
            for ch in [3, 5, 6] {
                let _ = a.side(who).conn.open_channel(ch);
            }
        }
        for op in &ops {
            apply(&mut a, op);
        }
        for side in [&a.client, &a.server] {
            let s = side.conn.stats();
            total.requests_received += s.requests_received;
            total.requests_refused += s.requests_refused;
            total.tags_reused += s.tags_reused;
            total.tags_forgotten += s.tags_forgotten;
            total.unknown_responses += s.unknown_responses;
            total.timed_out += s.timed_out;
            total.cancelled += s.cancelled;
            total.requests_dropped += s.requests_dropped;
            for e in &side.log {
                let name = match e {
                    Event::ProtocolError(ProtocolError::MalformedMarker { .. }) => "malformed",
                    Event::ProtocolError(ProtocolError::Truncated { .. }) => "truncated",
                    Event::ProtocolError(_) => "protocol error",
                    Event::PeerClosed { .. } => "peer closed",
                    Event::PeerEndedRequests => "peer erq",
                    Event::Closed => "closed",
                    _ => continue,
                };
                *events.entry(name).or_default() += 1;
            }
        }
    }
    std::println!("{total:?}\n{events:?}");
    assert!(total.requests_refused > 0 && total.tags_reused > 0 && total.tags_forgotten > 0);
    assert!(total.unknown_responses > 0 && total.timed_out > 0 && total.cancelled > 0);
    assert!(total.requests_dropped > 0);
    for name in [
        "peer closed",
        "peer erq",
        "closed",
        "protocol error",
        "truncated",
    ] {
        assert!(events.contains_key(name), "{name} never happened");
    }
}

// ----- random operations on two no-alloc connections with tight buffers -----

/// Whether an injected packet is a request (a third party's request, not
/// bounded by the peer's `MAX_PENDING`).
fn is_injected_request(op: &Op) -> bool {
    match op {
        Op::Inject(_, bytes) => matches!(
            Packet::parse(bytes, &wire::ParseLimits::default()),
            Ok(Some((p, _))) if p.request_type().is_some()
        ),
        _ => false,
    }
}

/// `op` adapted to the terms of the sizing rule (no timeouts, no
/// abandon, no third-party requests, no write shutdown, no garbage), or
/// `None` if it cannot be.
fn within_sizing_terms(op: Op) -> Option<Op> {
    match op {
        Op::Submit {
            server,
            channel3,
            len,
            flags,
            ..
        } => Some(Op::Submit {
            server,
            channel3,
            len,
            flags,
            timeout_ms: None,
        }),
        Op::Abandon(_) | Op::Shutdown(_) | Op::Garbage(..) => None,
        op if is_injected_request(&op) => None,
        op => Some(op),
    }
}

/// Runs `ops` on two no-alloc connections with small buffers (every kind of
/// back-pressure: transmit full, receive full, in-flight and pending
/// limits), then finishes: everything answered, timers run, both close,
/// both transports end.
///
/// Always: limits hold, no request ends twice, and once both ends are
/// `Closed` every request has ended. With `sized`, the transmit buffers
/// follow the documented sizing rule and the operations keep to its terms
/// (no abandon, no timeouts, no third-party requests, no shutdown of a
/// write side while the connection still sends): then both ends must close
/// and every request end exactly once.
fn run_tight(seed: u64, max_chunk: usize, rx: usize, tx: usize, ops: &[Op], sized: bool) {
    type Tight = BorrowedConnection<'static, 4, 2, 2, 4>;
    let new = || Tight::new(BorrowedConfig::default(), leak(rx), leak(tx)).unwrap();
    let mut duo = Duo::new(new(), new(), seed, max_chunk);
    for who in [Who::Client, Who::Server] {
        duo.side(who).conn.open_channel(3).unwrap();
    }
    let mut ended: BTreeMap<(bool, u64, u64), u32> = BTreeMap::new();
    let mut abandoned: BTreeSet<(bool, u64, u64)> = BTreeSet::new();
    let mut seen = [0usize; 2];
    let mut account = |duo: &mut Duo<Tight>, ended: &mut BTreeMap<(bool, u64, u64), u32>| {
        for (i, server) in [false, true].into_iter().enumerate() {
            let side = side_of(duo, server);
            assert!(side.conn.receive_used() <= rx);
            assert!(side.conn.transmit_len() <= tx);
            assert!(side.conn.pending_outbound() <= 4 && side.conn.inflight_inbound() <= 2);
            for e in &side.log[seen[i]..] {
                match *e {
                    Event::ResponseReceived { channel, tag, .. }
                    | Event::RequestCancelled { channel, tag }
                    | Event::RequestTimedOut { channel, tag } => {
                        *ended.entry((server, channel, tag)).or_default() += 1;
                    }
                    _ => {}
                }
            }
            seen[i] = side.log.len();
        }
    };
    let mut submitted = Vec::new();
    for op in ops {
        let op = &match op.clone() {
            _ if !sized => op.clone(),
            op => match within_sizing_terms(op) {
                Some(op) => op,
                None => continue,
            },
        };
        match (op, apply(&mut duo, op)) {
            (
                &Op::Submit {
                    server, channel3, ..
                },
                Outcome::Submit(Ok(tag)),
            ) => {
                submitted.push((server, if channel3 { 3 } else { 0 }, tag));
            }
            (&Op::Abandon(server), Outcome::Abandon(Some((c, t, true)))) => {
                abandoned.insert((server, c, t));
            }
            _ => {}
        }
        account(&mut duo, &mut ended);
    }
    for _ in 0..200 {
        duo.drive();
        for server in [false, true] {
            answer(&mut duo, server, usize::MAX, false, 3);
        }
        duo.drive();
        account(&mut duo, &mut ended);
        let idle = duo.client.fresh.is_empty() && duo.server.fresh.is_empty();
        match duo.next_timer() {
            Some(t) if idle => {
                let d = t.saturating_duration_since(duo.now);
                duo.advance(d);
            }
            None if idle => break,
            _ => {}
        }
    }
    for who in [Who::Client, Who::Server] {
        duo.side(who).conn.close();
        duo.drain(who);
    }
    for _ in 0..50 {
        duo.drive();
        for server in [false, true] {
            answer(&mut duo, server, usize::MAX, false, 3);
        }
    }
    let closed = [Who::Client, Who::Server].map(|w| duo.side(w).conn.state() == State::Closed);
    if sized {
        assert_eq!(closed, [true, true], "both ends close (seed {seed})");
    }
    duo.shutdown_write(Who::Client);
    duo.shutdown_write(Who::Server);
    duo.drive();
    account(&mut duo, &mut ended);
    for k in &submitted {
        let n = ended.get(k).copied().unwrap_or(0);
        assert!(n <= 1, "request {k:?} ended {n} times (seed {seed})");
        if closed == [true, true] && !abandoned.contains(k) {
            assert_eq!(n, 1, "request {k:?} never ended (seed {seed})");
        }
    }
}

/// The documented sizing rule for these runs: 8 + MAX_PENDING × the largest
/// request packet (payloads under 64 bytes: 70) + the peer's MAX_PENDING ×
/// the larger of the largest response (payloads of 40 bytes at most here:
/// 45) and the longest failure text packet (92).
const SIZED_TX: usize = 8 + 4 * 70 + 4 * 92;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn tight_buffers_never_lose_or_duplicate(
        seed: u64,
        max_chunk in prop_oneof![Just(0usize), 1usize..64],
        rx in 100usize..400,
        tx in 100usize..400,
        ops in arb_session(),
    ) {
        run_tight(seed, max_chunk, rx, tx, &ops, false);
    }

    #[test]
    fn sized_buffers_resolve_every_request_once(
        seed: u64,
        max_chunk in prop_oneof![Just(0usize), 1usize..64],
        rx in 100usize..400,
        ops in arb_session(),
    ) {
        run_tight(seed, max_chunk, rx, SIZED_TX, &ops, true);
    }
}
