//! Two packet `Connection`s joined by simulated links, driven by an
//! `Arbitrary` sequence of operations: submit, respond, reject, abandon,
//! `end_requests`, close, `open_channel`, partial writes, partial reads (any
//! chunking), a write side shut (EOF), a transport lost
//! (`handle_transport_lost`, at one end or both, possibly with events still
//! unpolled), the clock advancing, and optionally raw hostile bytes injected
//! into a link.
//!
//! A model tracks every request and asserts after every step:
//!
//! * nothing panics;
//! * every submitted request ends exactly once (response, cancellation or
//!   timeout; `abandon` ends it silently), and after a final orderly drain
//!   none is left;
//! * a response reaches only the request it answers: the same `(channel,
//!   tag)`, with the payload and flags the peer gave it (or one of the
//!   original's failure texts the peer's connection generated) — unless hostile
//!   bytes were injected, which only relaxes the payload checks;
//! * a request reaches the peer with the submitted type, flags and payload,
//!   and no `(channel, tag)` is delivered twice;
//! * timeouts fire exactly at their deadlines and `poll_timeout` is the
//!   earliest one;
//! * pending requests, in-flight requests, buffered input and queued output
//!   stay within their configured limits;
//! * after a loss nothing is queued or transmitted (`submit` fails with
//!   `PeerGone`; an answer is accepted, counted in `requests_dropped` and
//!   never reaches the peer), events queued before it are still delivered,
//!   once the events are drained the receive side has ended and no request
//!   waits, and `Closed` is reported exactly when our EOF had been
//!   transmitted before the loss.
#![no_main]
#![allow(clippy::struct_excessive_bools, clippy::single_match_else)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use arbitrary::Arbitrary;
use framewire::packet::reason;
use framewire::packet::{Config, Connection, Event, InputError, State, Stats, SubmitError};
use framewire::time::{Duration, Instant};
use framewire::varint::VarintRules;
use framewire_fuzz::refusal_text;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Cfg {
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

impl Cfg {
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
            max_tag: if self.max_tag < 200 {
                u64::MAX
            } else {
                u64::from(self.max_tag - 190)
            },
            max_receive_buffer: max_packet_len + usize::from(self.receive_extra % 2048),
            max_transmit_buffer: 1 + usize::from(self.max_transmit_buffer % 2048),
            max_channels: usize::from(self.max_channels % 4),
            max_remembered_tags: 1 + usize::from(self.max_remembered_tags % 8),
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
    /// `who` shuts its write side: the peer gets EOF once the link drains.
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

#[derive(Arbitrary, Debug)]
struct Scenario {
    a: Cfg,
    b: Cfg,
    ops: Vec<Op>,
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

/// One end: its connection, its model, and the link towards it.
struct End {
    conn: Connection,
    config: Config,
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
    /// This end's write side is shut (by an op, or after `Closed`).
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
    shut_by_op: bool,
    peer_erq_seen: bool,
    peer_end_seen: bool,
    closed_seen: bool,
    /// Bytes of answers queued since the transmit queue was last under its
    /// limit (answers to accepted requests are always queued).
    answered_since_low: usize,
}

impl End {
    fn new(config: Config) -> Self {
        End {
            conn: Connection::new(config).expect("valid config"),
            config,
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
            shut_by_op: false,
            peer_erq_seen: false,
            peer_end_seen: false,
            closed_seen: false,
            answered_since_low: 0,
        }
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
        let after = *self.conn.stats();
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
}

fn payload(len: u8, seed: u8) -> Vec<u8> {
    (0..len).map(|i| i.wrapping_mul(31) ^ seed).collect()
}

struct World {
    a: End,
    b: End,
    now: Instant,
    hostile: bool,
}

impl World {
    fn pair(&mut self, who: Who) -> (&mut End, &mut End) {
        match who {
            Who::A => (&mut self.a, &mut self.b),
            Who::B => (&mut self.b, &mut self.a),
        }
    }

    /// Drains `who`'s events into the model, checking each.
    fn poll(&mut self, who: Who) {
        let now = self.now;
        let hostile = self.hostile;
        let (me, peer) = self.pair(who);
        while let Some(event) = me.conn.poll_event() {
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
                        me.config.accept_requests,
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
                                !ok && flags == 0,
                                "{who:?}: response to {key:?} the peer never gave"
                            );
                            // Whole, or cut to the peer's packet limit when
                            // whole it would be over it.
                            let max = peer.config.max_packet_len;
                            assert!(
                                refusal_text(channel, tag, &payload, max),
                                "{who:?}: failure for {key:?} with unknown text {payload:?}"
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
    }

    fn check(&mut self, who: Who, timers_run: bool) {
        let now = self.now;
        let me = match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        };
        let c = &me.config;
        assert_eq!(
            me.conn.pending_outbound(),
            me.pending.len(),
            "{who:?}: pending count"
        );
        assert!(me.pending.len() <= c.max_pending_outbound);
        for &(ch, tag) in &me.pending {
            assert!(me.conn.is_pending(ch, tag));
        }
        assert_eq!(
            me.conn.inflight_inbound(),
            me.inflight.len(),
            "{who:?}: in-flight count"
        );
        assert!(me.inflight.len() <= c.max_inflight_inbound);
        assert!(
            me.conn.receive_buffered() <= c.max_receive_buffer,
            "{who:?}: receive buffer over the limit"
        );
        assert!(me.conn.remembered_tags() <= c.max_remembered_tags);
        let queued = me.conn.transmit_len();
        if queued < c.max_transmit_buffer {
            me.answered_since_low = 0;
        }
        // Over the limit by at most one packet (a submit or a refusal made
        // while under it; a refusal is cut to `max_packet_len` too), ERQ and
        // EOF, and the answers given since.
        let one_packet = c.max_packet_len;
        assert!(
            queued <= c.max_transmit_buffer + one_packet + 8 + me.answered_since_low,
            "{who:?}: {queued} bytes queued, limit {} (+ {} answered)",
            c.max_transmit_buffer,
            me.answered_since_low
        );
        if me.lost {
            // Every event is polled: whatever the loss left is handled.
            assert_eq!(queued, 0, "{who:?}: {queued} bytes queued after the loss");
            assert!(me.conn.transport_lost());
            assert_eq!(me.conn.stats().bytes_sent, me.bytes_sent_at_loss);
            assert!(
                me.peer_end_seen,
                "{who:?}: the receive side did not end after the loss"
            );
            assert!(
                me.pending.is_empty(),
                "{who:?}: requests wait after the loss"
            );
            assert!(!me.conn.input_stalled());
            assert_eq!(
                me.closed_seen, me.eof_sent_at_loss,
                "{who:?}: Closed after the loss iff our EOF was transmitted before it"
            );
            let state = if me.closed_seen {
                State::Closed
            } else {
                State::Closing
            };
            assert_eq!(me.conn.state(), state);
        }
        let earliest = me.pending.iter().filter_map(|k| me.sent[k].deadline).min();
        assert_eq!(me.conn.poll_timeout(), earliest, "{who:?}: poll_timeout");
        if let (Some(d), true) = (earliest, timers_run) {
            assert!(d > now, "{who:?}: a deadline passed without a timeout");
        }
    }

    fn write(&mut self, who: Who, n: usize) -> bool {
        let (me, peer) = self.pair(who);
        if me.write_shut {
            return false;
        }
        let n = n.min(me.conn.transmit_len());
        if n == 0 {
            return false;
        }
        let mut left = n;
        for chunk in me.conn.transmit_chunks() {
            let k = chunk.len().min(left);
            if !me.write_void {
                peer.inbox.extend(&chunk[..k]);
            }
            left -= k;
            if left == 0 {
                break;
            }
        }
        assert_eq!(left, 0, "transmit_chunks shorter than transmit_len");
        me.conn.advance_transmit(n);
        true
    }

    fn read(&mut self, who: Who, n: usize) -> bool {
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
                    me.inbox.drain(..taken);
                    progress = taken > 0;
                }
                Err(_) => {
                    assert!(
                        me.conn.protocol_error().is_some(),
                        "input refused without a protocol error"
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

    fn step(&mut self, op: Op) {
        match op {
            Op::Submit {
                who,
                channel,
                rq_type,
                flags,
                len,
                timeout,
            } => {
                let now = self.now;
                let me = self.pair(who).0;
                let channel = u64::from(channel % 4);
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
                    body.clone(),
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
                        if let SubmitError::TooManyPending { max } = e {
                            assert_eq!(me.pending.len(), max);
                        }
                    }
                }
            }
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
                let before = *me.conn.stats();
                if me
                    .conn
                    .respond(ch, tag, u64::from(flags), body.clone())
                    .is_ok()
                {
                    me.inflight.remove(i);
                    me.record_answer((ch, tag), (true, u64::from(flags), body), &before);
                } else {
                    assert!(me.conn.is_inflight(ch, tag));
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
                let before = *me.conn.stats();
                if me.conn.reject(ch, tag, text).is_ok() {
                    me.inflight.remove(i);
                    me.record_answer((ch, tag), (false, 0, text.as_bytes().to_vec()), &before);
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
                let _ = me.conn.open_channel(u64::from(channel % 4));
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
                me.shut_by_op = true;
                peer.eof_pending = true;
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(ms));
                let now = self.now;
                self.a.conn.handle_timeout(now);
                self.b.conn.handle_timeout(now);
            }
            Op::Inject { who, bytes } => {
                let (me, peer) = self.pair(who);
                // Bytes from the peer's side of the link, while it is open.
                if !peer.write_shut && !bytes.is_empty() {
                    me.inbox.extend(&bytes);
                    self.hostile = true;
                }
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
        let before = *me.conn.stats();
        if me.lost {
            // Idempotent.
            me.conn.handle_transport_lost();
            assert_eq!(
                *me.conn.stats(),
                before,
                "{who:?}: a second loss changed stats"
            );
            assert_eq!(me.conn.transmit_len(), 0);
            return;
        }
        // EOF is the last thing queued: transmitted iff nothing is left.
        me.eof_sent_at_loss = me.conn.eof_queued() && me.conn.transmit_len() == 0;
        assert!(!me.closed_seen || me.eof_sent_at_loss);
        me.bytes_sent_at_loss = before.bytes_sent;
        me.conn.handle_transport_lost();
        assert!(me.conn.transport_lost());
        assert_eq!(
            me.conn.transmit_len(),
            0,
            "{who:?}: output kept after the loss"
        );
        assert_eq!(me.conn.poll_transmit(), None);
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

    fn settle(&mut self, timers_run: bool) {
        for who in [Who::A, Who::B] {
            self.poll(who);
        }
        for who in [Who::A, Who::B] {
            self.check(who, timers_run);
        }
    }

    /// The orderly end: answer everything, close both ends, move every
    /// byte, then shut the links and let the timers run out. Every request
    /// must then have ended.
    fn finish(&mut self) {
        for round in 0..10_000 {
            let mut progress = false;
            for who in [Who::A, Who::B] {
                let me = self.pair(who).0;
                for (ch, tag) in std::mem::take(&mut me.inflight) {
                    let before = *me.conn.stats();
                    if me.conn.reject(ch, tag, "x").is_ok() {
                        me.record_answer((ch, tag), (false, 0, b"x".to_vec()), &before);
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
            self.settle(false);
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
            assert!(round < 9_999, "the pair did not settle");
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
        }
    }
}

fuzz_target!(|scenario: Scenario| {
    let mut world = World {
        a: End::new(scenario.a.config()),
        b: End::new(scenario.b.config()),
        now: Instant::ZERO,
        hostile: false,
    };
    for op in scenario.ops.into_iter().take(400) {
        let timers_run = matches!(op, Op::Advance { .. });
        world.step(op);
        world.settle(timers_run);
    }
    world.finish();
});
