//! Tests of the packet connection: golden bytes for every packet it sends,
//! every rule and failure reason, limits, timeouts, shutdown, split
//! invariance, and the pair harness under random chunking.

use std::collections::BTreeMap;
use std::format;
use std::vec;
use std::vec::Vec;

use bytes::Bytes;
use proptest::prelude::*;

use super::pair::{Pair, Rng, Which};
use super::wire::{self, Packet, PacketError};
use super::*;
use crate::time::{Duration, Instant};

use crate::testutil::unhex as hex;

pub(super) fn enc(p: &Packet<'_>) -> Vec<u8> {
    let mut v = vec![0; p.encoded_len()];
    p.encode(&mut v).unwrap();
    v
}

pub(super) fn req(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: &[u8]) -> Vec<u8> {
    enc(&Packet::request(channel, tag, rq_type, flags, payload).unwrap())
}

fn resp(channel: u64, tag: u64, ok: bool, flags: u64, payload: &[u8]) -> Vec<u8> {
    enc(&Packet::response(channel, tag, ok, flags, payload).unwrap())
}

fn fail(channel: u64, tag: u64, reason: &str) -> Vec<u8> {
    enc(&Packet::failure(channel, tag, reason))
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn conn() -> Connection {
    Connection::new(Config::default()).unwrap()
}

fn conn_with(f: impl FnOnce(&mut Config)) -> Connection {
    let mut c = Config::default();
    f(&mut c);
    Connection::new(c).unwrap()
}

/// Feeds every byte, asserting it is all taken.
fn feed(c: &mut Connection, bytes: &[u8]) {
    assert_eq!(c.handle_input(bytes), Ok(bytes.len()));
}

/// Everything queued for transmission, marked sent.
pub(super) fn out(c: &mut Connection) -> Vec<u8> {
    let v: Vec<u8> = c.transmit_chunks().flatten().copied().collect();
    assert_eq!(v.len(), c.transmit_len());
    c.advance_transmit(v.len());
    v
}

fn events(c: &mut Connection) -> Vec<Event> {
    let mut v = Vec::new();
    while let Some(e) = c.poll_event() {
        v.push(e);
    }
    v
}

fn request_event(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: &[u8]) -> Event {
    Event::RequestReceived {
        channel,
        tag,
        rq_type,
        flags,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn response_event(channel: u64, tag: u64, ok: bool, flags: u64, payload: &[u8]) -> Event {
    Event::ResponseReceived {
        channel,
        tag,
        ok,
        flags,
        payload: Bytes::copy_from_slice(payload),
    }
}

const T0: Instant = Instant::ZERO;

// ----- golden bytes of everything a connection sends -----

#[test]
fn requests_golden_tags_start_at_2() {
    let mut c = conn();
    assert_eq!(c.next_tag(0), Some(2));
    assert_eq!(c.submit(0, 0, 0, &b"hello"[..], T0, None), Ok(2));
    assert_eq!(c.submit(0, 1, 3, &b"abc"[..], T0, None), Ok(3));
    // Everything queued is visible at once, in one slice.
    assert_eq!(
        c.poll_transmit(),
        Some(&hex("08 02 02 01 68656c6c6f  06 03 0e 02 616263")[..])
    );
    assert_eq!(out(&mut c), hex("0802020168656c6c6f 06030e02616263"));
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.stats().requests_sent, 2);
    assert_eq!(c.pending_outbound(), 2);
}

#[test]
fn responses_golden() {
    let mut s = conn();
    feed(&mut s, &req(0, 2, 0, 0, b"hello"));
    feed(&mut s, &req(0, 12, 0, 63, b"f"));
    feed(&mut s, &req(0, 5, 0, 0, b""));
    feed(&mut s, &req(0, 300, 0, 0, b""));
    feed(&mut s, &req(0, 3, 9, 0, b""));
    assert_eq!(
        events(&mut s),
        vec![
            request_event(0, 2, 0, 0, b"hello"),
            request_event(0, 12, 0, 63, b"f"),
            request_event(0, 5, 0, 0, b""),
            request_event(0, 300, 0, 0, b""),
            request_event(0, 3, 9, 0, b""),
        ]
    );
    s.respond(0, 2, 0, &b"hello"[..]).unwrap();
    assert_eq!(out(&mut s), hex("07 02 04 68656c6c6f"));
    // Request flags reach us unchanged; echoing 63 gives F = 83 7c.
    s.respond(0, 12, 63, &b"f"[..]).unwrap();
    assert_eq!(out(&mut s), hex("04 0c 83 7c 66"));
    s.reject(0, 5, reason::EXCEPTION_DURING_HANDLER).unwrap();
    assert_eq!(
        out(&mut s),
        hex("1a 05 00 657863657074696f6e20647572696e672068616e646c6572")
    );
    let payload: Vec<u8> = (0..200u8).collect();
    s.respond(0, 300, 0, payload.clone()).unwrap();
    let mut expect = hex("81 4b 82 2c 04");
    expect.extend_from_slice(&payload);
    assert_eq!(out(&mut s), expect);
    s.respond(0, 3, 7, &b"flags"[..]).unwrap();
    assert_eq!(out(&mut s), hex("07 03 3c 666c616773"));
    assert_eq!(s.inflight_inbound(), 0);
    assert_eq!(
        s.respond(0, 3, 0, &b""[..]),
        Err(RespondError::NotInFlight { channel: 0, tag: 3 })
    );
}

#[test]
fn erq_and_eof_golden() {
    let mut c = conn();
    c.end_requests();
    c.end_requests();
    assert_eq!(out(&mut c), wire::ERQ_BYTES);
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::RequestsEnded)
    );
    c.close();
    assert_eq!(out(&mut c), wire::EOF_BYTES);
    let mut c = conn();
    c.close();
    assert_eq!(c.state(), State::Closing);
    assert_eq!(out(&mut c), hex("03010200 03000200"));
    assert!(c.eof_queued());
}

// ----- shutdown sequences of the original -----

#[test]
fn server_shutdown_matches_the_original() {
    // WIRE.md: a client sends [request tag 30 (slow), ERQ, EOF]; the original
    // server answers ERQ, response, EOF.
    let mut s = conn();
    let mut input = req(0, 30, 0, 0, b"x");
    input.extend_from_slice(&wire::ERQ_BYTES);
    input.extend_from_slice(&wire::EOF_BYTES);
    feed(&mut s, &input);
    assert_eq!(
        events(&mut s),
        vec![
            request_event(0, 30, 0, 0, b"x"),
            Event::PeerEndedRequests,
            Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            },
        ]
    );
    assert_eq!(s.state(), State::Closing);
    assert_eq!(out(&mut s), wire::ERQ_BYTES, "ERQ first, EOF waits");
    s.respond(0, 30, 0, &b"slow"[..]).unwrap();
    let tail = out(&mut s);
    assert_eq!(tail, hex("061e04736c6f77 03000200"));
    assert_eq!(events(&mut s), vec![Event::Closed]);
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn client_shutdown_waits_for_peer_eof() {
    let mut c = conn();
    let tag = c.submit(0, 0, 0, &b"q"[..], T0, None).unwrap();
    c.close();
    assert_eq!(out(&mut c), {
        let mut v = req(0, 2, 0, 0, b"q");
        v.extend_from_slice(&hex("03010200 03000200"));
        v
    });
    // Our EOF is out, but the answer to our request may still come.
    assert_eq!(events(&mut c), vec![]);
    let mut input = resp(0, tag, true, 0, b"a");
    input.extend_from_slice(&hex("03010200 03000200"));
    feed(&mut c, &input);
    assert_eq!(
        events(&mut c),
        vec![
            response_event(0, 2, true, 0, b"a"),
            Event::PeerEndedRequests,
            Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            },
            Event::Closed,
        ]
    );
    assert_eq!(c.transmit_len(), 0);
}

#[test]
fn fill_transmit_and_vectored_chunks() {
    let mut c = conn_with(|c| c.copy_threshold = 8);
    let big = vec![0x5a; 20];
    c.submit(0, 0, 0, &b"small"[..], T0, None).unwrap();
    c.submit(0, 0, 0, big.clone(), T0, None).unwrap();
    let mut expect = req(0, 2, 0, 0, b"small");
    expect.extend(req(0, 3, 0, 0, &big));
    // Small packets and the big one's header coalesce; its payload is its
    // own chunk.
    let chunks: Vec<&[u8]> = c.transmit_chunks().collect();
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[1], &big[..]);
    assert_eq!(c.poll_transmit(), Some(&expect[..expect.len() - 20]));
    let mut buf = [0u8; 10];
    let mut got = Vec::new();
    loop {
        let n = c.fill_transmit(&mut buf);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, expect);
    assert_eq!(c.stats().bytes_sent, expect.len() as u64);
}

#[test]
fn closed_needs_eof_transmitted() {
    let mut c = conn();
    c.close();
    feed(&mut c, &wire::EOF_BYTES);
    assert_eq!(
        events(&mut c),
        vec![Event::PeerClosed {
            reason: PeerCloseReason::EofPacket
        }]
    );
    assert_eq!(c.transmit_len(), 8);
    c.advance_transmit(7);
    assert_eq!(events(&mut c), vec![]);
    c.advance_transmit(1);
    assert_eq!(events(&mut c), vec![Event::Closed]);
}

#[test]
fn bytes_after_peer_eof_are_ignored() {
    let mut c = conn();
    let mut input = wire::EOF_BYTES.to_vec();
    input.extend_from_slice(&req(0, 2, 0, 0, b"late"));
    feed(&mut c, &input);
    feed(&mut c, b"\xff\xff\xff anything");
    let ev = events(&mut c);
    assert_eq!(
        ev,
        vec![Event::PeerClosed {
            reason: PeerCloseReason::EofPacket
        }]
    );
    assert_eq!(c.stats().bytes_ignored, (input.len() - 4 + 12) as u64);
    assert_eq!(out(&mut c), hex("03010200 03000200"));
    c.handle_eof();
    assert_eq!(events(&mut c), vec![Event::Closed]);
    assert_eq!(c.handle_input(b"x"), Err(InputError::AfterTransportEof));
}

#[test]
fn transport_eof_with_requests_pending() {
    let mut c = conn();
    c.submit(0, 0, 0, &b"a"[..], T0, Some(Duration::from_secs(5)))
        .unwrap();
    c.submit(0, 0, 0, &b"b"[..], T0, None).unwrap();
    c.open_channel(4).unwrap();
    c.submit(4, 0, 0, &b"c"[..], T0, None).unwrap();
    let sent = out(&mut c);
    assert_eq!(sent.len(), 3 * 5 + 1);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        vec![
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            },
            Event::RequestCancelled { channel: 0, tag: 2 },
            Event::RequestCancelled { channel: 0, tag: 3 },
            Event::RequestCancelled { channel: 4, tag: 0 },
        ]
    );
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.stats().cancelled, 3);
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::PeerGone)
    );
    // Our side finishes: ERQ, EOF, then Closed.
    assert_eq!(out(&mut c), hex("03010200 03000200"));
    assert_eq!(events(&mut c), vec![Event::Closed]);
}

#[test]
fn transport_eof_waits_for_inflight_responses() {
    let mut s = conn();
    feed(&mut s, &req(0, 2, 0, 0, b"x"));
    s.handle_eof();
    assert_eq!(
        events(&mut s),
        vec![
            request_event(0, 2, 0, 0, b"x"),
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            }
        ]
    );
    assert_eq!(out(&mut s), wire::ERQ_BYTES);
    s.respond(0, 2, 1, &b"y"[..]).unwrap();
    let mut expect = resp(0, 2, true, 1, b"y");
    expect.extend_from_slice(&wire::EOF_BYTES);
    assert_eq!(out(&mut s), expect);
    assert_eq!(events(&mut s), vec![Event::Closed]);
}

#[test]
fn transport_eof_inside_a_packet_is_truncation() {
    let mut c = conn();
    c.submit(0, 0, 0, &b""[..], T0, None).unwrap();
    let r = resp(0, 2, true, 0, b"hello");
    feed(&mut c, &r[..4]);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        vec![
            Event::ProtocolError(ProtocolError::Truncated {
                have: 4,
                need: Some(r.len())
            }),
            Event::RequestCancelled { channel: 0, tag: 2 },
        ]
    );
    assert!(c.protocol_error().is_some());
    // Inside the length prefix itself: need unknown.
    let mut c = conn();
    feed(&mut c, &[0x81]);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        vec![Event::ProtocolError(ProtocolError::Truncated {
            have: 1,
            need: None
        })]
    );
    // The original still shuts down cleanly: ERQ + EOF.
    assert_eq!(out(&mut c), hex("03010200 03000200"));
}

// ----- failure reasons -----

#[test]
fn no_request_handler() {
    let mut c = conn_with(|c| c.accept_requests = false);
    feed(&mut c, &req(0, 2, 0, 0, b"x"));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(out(&mut c), fail(0, 2, "no request handler"));
    assert_eq!(out(&mut c), b"");
    assert_eq!(
        fail(0, 2, "no request handler"),
        hex("1402006e6f20726571756573742068616e646c6572")
    );
    assert_eq!(c.stats().requests_refused, 1);
}

#[test]
fn requests_no_longer_allowed_after_peer_erq() {
    let mut c = conn();
    feed(&mut c, &wire::ERQ_BYTES);
    feed(&mut c, &wire::ERQ_BYTES); // a second ERQ is ignored
    feed(&mut c, &req(0, 2, 0, 0, b"x"));
    assert_eq!(events(&mut c), vec![Event::PeerEndedRequests]);
    assert!(c.peer_ended_requests());
    assert_eq!(out(&mut c), fail(0, 2, "requests no longer allowed"));
    // The peer's ERQ does not stop our own requests.
    assert_eq!(c.submit(0, 0, 0, &b""[..], T0, None), Ok(2));
}

#[test]
fn unknown_channel_is_literal() {
    let mut c = conn();
    feed(&mut c, &req(5, 2, 0, 0, b"x"));
    assert_eq!(events(&mut c), vec![]);
    let sent = out(&mut c);
    assert_eq!(sent, fail(5, 2, "unknown channel %d"));
    assert_eq!(
        sent,
        hex("15 02 01 05 756e6b6e6f776e206368616e6e656c202564")
    );
}

#[test]
fn duplicate_inflight_tag_refused_and_original_still_answered() {
    let mut c = conn();
    feed(&mut c, &req(0, 7, 0, 0, b"first"));
    feed(&mut c, &req(0, 7, 0, 0, b"second"));
    assert_eq!(events(&mut c), vec![request_event(0, 7, 0, 0, b"first")]);
    assert_eq!(out(&mut c), fail(0, 7, "channel 0: tag already in use: 7"));
    c.respond(0, 7, 0, &b"ok"[..]).unwrap();
    assert_eq!(out(&mut c), resp(0, 7, true, 0, b"ok"));
    assert_eq!(c.stats().tags_reused, 1);
}

#[test]
fn tag_reused_after_completion_is_refused() {
    let mut c = conn();
    c.open_channel(3).unwrap();
    feed(&mut c, &req(3, 9, 0, 0, b""));
    let _ = events(&mut c);
    c.respond(3, 9, 0, &b""[..]).unwrap();
    let _ = out(&mut c);
    feed(&mut c, &req(3, 9, 0, 0, b""));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(out(&mut c), fail(3, 9, "channel 3: tag already in use: 9"));
    // The same tag on another channel is a different request.
    feed(&mut c, &req(0, 9, 0, 0, b""));
    assert_eq!(events(&mut c), vec![request_event(0, 9, 0, 0, b"")]);
}

#[test]
fn tags_0_and_1_with_a_real_type_are_ordinary_requests() {
    let mut c = conn();
    feed(&mut c, &req(0, 0, 0, 0, b""));
    feed(&mut c, &req(0, 1, 4, 0, b""));
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 0, 0, 0, b""),
            request_event(0, 1, 4, 0, b"")
        ]
    );
}

#[test]
fn requests_refused_while_closing_then_dropped_after_eof() {
    let mut c = conn();
    feed(&mut c, &req(0, 2, 0, 0, b""));
    let _ = events(&mut c);
    c.close();
    assert_eq!(out(&mut c), wire::ERQ_BYTES);
    feed(&mut c, &req(0, 3, 0, 0, b""));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(
        out(&mut c),
        fail(0, 3, "rejecting request: runstate.cancelled")
    );
    c.respond(0, 2, 0, &b""[..]).unwrap();
    let mut expect = resp(0, 2, true, 0, b"");
    expect.extend_from_slice(&wire::EOF_BYTES);
    assert_eq!(out(&mut c), expect);
    // After our EOF nothing can be sent: dropped and counted.
    feed(&mut c, &req(0, 4, 0, 0, b""));
    assert_eq!(out(&mut c), b"");
    assert_eq!(c.stats().requests_dropped, 1);
    assert_eq!(events(&mut c), vec![]);
}

#[test]
fn reject_with_any_reason() {
    let mut c = conn();
    feed(&mut c, &req(0, 2, 0, 0, b""));
    let _ = events(&mut c);
    c.reject(0, 2, "nope").unwrap();
    assert_eq!(out(&mut c), fail(0, 2, "nope"));
    assert_eq!(
        c.reject(0, 2, "again"),
        Err(RespondError::NotInFlight { channel: 0, tag: 2 })
    );
}

// ----- markers and protocol errors -----

#[test]
fn malformed_marker_ends_the_receive_side() {
    for bad in [
        Packet::from_parts(0, 5, 0, Some(0), b"").unwrap(),
        Packet::from_parts(0, 0, 0, Some(0), b"x").unwrap(),
        Packet::from_parts(0, 1, 2, Some(0), b"").unwrap(),
    ] {
        let mut c = conn();
        c.submit(0, 0, 0, &b""[..], T0, None).unwrap();
        let _ = out(&mut c);
        let mut input = enc(&bad);
        input.extend_from_slice(&req(0, 9, 0, 0, b"never served"));
        feed(&mut c, &input);
        assert_eq!(
            events(&mut c),
            vec![
                Event::ProtocolError(ProtocolError::MalformedMarker {
                    channel: 0,
                    tag: bad.tag()
                }),
                Event::RequestCancelled { channel: 0, tag: 2 },
            ]
        );
        assert_eq!(out(&mut c), hex("03010200 03000200"));
        assert_eq!(events(&mut c), vec![Event::Closed]);
        assert_eq!(c.state(), State::Closed);
        assert!(matches!(
            c.handle_input(b"x"),
            Err(InputError::Failed(ProtocolError::MalformedMarker { .. }))
        ));
        c.handle_eof();
        assert_eq!(events(&mut c), vec![]);
    }
}

#[test]
fn huge_length_fails_before_the_body() {
    let mut c = conn();
    // 2^62 declared, and not one body byte.
    let (prefix, n) = crate::varint::encode_array(1 << 62);
    feed(&mut c, &prefix[..n]);
    assert_eq!(
        events(&mut c),
        vec![Event::ProtocolError(ProtocolError::Packet(
            PacketError::TooLong {
                len: (1 << 62) + n as u64,
                max: wire::DEFAULT_MAX_PACKET_LEN
            }
        ))]
    );
    assert_eq!(c.receive_buffered(), 0);
    // A configured limit, length prefix included.
    let mut c = conn_with(|c| c.max_packet_len = 100);
    feed(&mut c, &[0x81, 0x00]);
    assert_eq!(
        events(&mut c),
        vec![Event::ProtocolError(ProtocolError::Packet(
            PacketError::TooLong { len: 130, max: 100 }
        ))]
    );
}

#[test]
fn tag_bound() {
    let mut c = conn_with(|c| c.max_tag = 3);
    feed(&mut c, &req(0, 3, 0, 0, b""));
    feed(&mut c, &req(0, 4, 0, 0, b""));
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 3, 0, 0, b""),
            Event::ProtocolError(ProtocolError::TagTooLarge { tag: 4, max: 3 }),
        ]
    );
    let mut c = conn_with(|c| c.max_tag = 3);
    assert_eq!(c.submit(0, 0, 0, &b""[..], T0, None), Ok(2));
    assert_eq!(c.submit(0, 0, 0, &b""[..], T0, None), Ok(3));
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::TagsExhausted { channel: 0 })
    );
    // The markers' tags are exempt.
    let mut c = conn_with(|c| c.max_tag = 0);
    feed(&mut c, &wire::ERQ_BYTES);
    assert_eq!(events(&mut c), vec![Event::PeerEndedRequests]);
}

// ----- responses -----

#[test]
fn responses_route_by_channel_and_tag_in_any_order() {
    let mut c = conn();
    c.open_channel(9).unwrap();
    let a = c.submit(0, 0, 0, &b"a"[..], T0, None).unwrap();
    let b = c.submit(9, 0, 0, &b"b"[..], T0, None).unwrap();
    let d = c.submit(0, 0, 0, &b"d"[..], T0, None).unwrap();
    assert_eq!((a, b, d), (2, 0, 3));
    let mut input = resp(0, d, false, 0, b"bad");
    input.extend(resp(9, b, true, 5, b"B"));
    input.extend(resp(0, a, true, 0, b"A"));
    feed(&mut c, &input);
    assert_eq!(
        events(&mut c),
        vec![
            response_event(0, 3, false, 0, b"bad"),
            response_event(9, 0, true, 5, b"B"),
            response_event(0, 2, true, 0, b"A"),
        ]
    );
    assert_eq!(c.pending_outbound(), 0);
}

#[test]
fn unknown_responses_are_counted() {
    let mut c = conn();
    c.submit(0, 0, 0, &b""[..], T0, None).unwrap();
    let mut input = resp(0, 42, true, 0, b"");
    input.extend(resp(7, 2, true, 0, b"")); // channel 7 never opened
    input.extend(resp(0, 2, true, 0, b"x"));
    input.extend(resp(0, 2, true, 0, b"again"));
    feed(&mut c, &input);
    assert_eq!(
        events(&mut c),
        vec![
            Event::UnknownResponse {
                channel: 0,
                tag: 42
            },
            Event::UnknownResponse { channel: 7, tag: 2 },
            response_event(0, 2, true, 0, b"x"),
            Event::UnknownResponse { channel: 0, tag: 2 },
        ]
    );
    assert_eq!(c.stats().unknown_responses, 3);
    assert_eq!(c.state(), State::Open);
}

#[test]
fn abandon_forgets_a_request() {
    let mut c = conn();
    let t = c
        .submit(0, 0, 0, &b""[..], T0, Some(Duration::from_secs(1)))
        .unwrap();
    assert!(c.abandon(0, t));
    assert!(!c.abandon(0, t));
    assert_eq!(c.poll_timeout(), None);
    feed(&mut c, &resp(0, t, true, 0, b""));
    assert_eq!(
        events(&mut c),
        vec![Event::UnknownResponse { channel: 0, tag: t }]
    );
}

// ----- channels -----

#[test]
fn channels_are_opt_in() {
    let mut c = conn_with(|c| c.max_channels = 2);
    assert!(c.is_channel_open(0));
    assert_eq!(
        c.submit(1, 0, 0, &b""[..], T0, None),
        Err(SubmitError::UnknownChannel { channel: 1 })
    );
    c.open_channel(0).unwrap();
    c.open_channel(1).unwrap();
    c.open_channel(2).unwrap();
    c.open_channel(2).unwrap();
    assert_eq!(
        c.open_channel(3),
        Err(ChannelError::TooManyChannels { max: 2 })
    );
    assert_eq!(c.next_tag(2), Some(0));
    assert_eq!(c.submit(2, 0, 0, &b"x"[..], T0, None), Ok(0));
    assert_eq!(out(&mut c), req(2, 0, 0, 0, b"x"));
    // A request on an opened channel is served, tag 0 included.
    feed(&mut c, &req(1, 0, 0, 0, b"y"));
    assert_eq!(events(&mut c), vec![request_event(1, 0, 0, 0, b"y")]);
    c.respond(1, 0, 0, &b""[..]).unwrap();
    assert_eq!(out(&mut c), hex("03 00 05 01"));
}

// ----- limits -----

#[test]
fn pending_outbound_limit() {
    let mut c = conn_with(|c| c.max_pending_outbound = 2);
    c.submit(0, 0, 0, &b""[..], T0, None).unwrap();
    c.submit(0, 0, 0, &b""[..], T0, None).unwrap();
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::TooManyPending { max: 2 })
    );
    // No tag was used by the refused submit.
    assert_eq!(c.next_tag(0), Some(4));
    feed(&mut c, &resp(0, 2, true, 0, b""));
    assert_eq!(c.submit(0, 0, 0, &b""[..], T0, None), Ok(4));
}

#[test]
fn submit_field_and_size_errors() {
    let mut c = conn_with(|c| {
        c.max_packet_len = 16;
        c.max_receive_buffer = 16;
    });
    assert_eq!(
        c.submit(0, u64::MAX, 0, &b""[..], T0, None),
        Err(SubmitError::Field(wire::FieldError::RqTypeTooLarge {
            rq_type: u64::MAX
        }))
    );
    assert_eq!(
        c.submit(0, 0, 0, vec![0u8; 13], T0, None),
        Err(SubmitError::PayloadTooLong { len: 17, max: 16 })
    );
    assert_eq!(c.submit(0, 0, 0, vec![0u8; 12], T0, None), Ok(2));
    feed(&mut c, &req(0, 2, 0, 0, b""));
    let _ = events(&mut c);
    assert_eq!(
        c.respond(0, 2, 0, vec![0u8; 14]),
        Err(RespondError::PayloadTooLong { len: 17, max: 16 })
    );
    assert_eq!(
        c.respond(0, 2, wire::MAX_RESPONSE_FLAGS + 1, &b""[..]),
        Err(RespondError::Field(wire::FieldError::FlagsTooLarge {
            flags: wire::MAX_RESPONSE_FLAGS + 1,
            max: wire::MAX_RESPONSE_FLAGS
        }))
    );
    assert!(c.is_inflight(0, 2));
}

#[test]
fn unsendable_replies_are_answered_as_a_failed_handler() {
    let mut c = conn_with(|c| c.max_packet_len = 64);
    for tag in 2..6 {
        feed(&mut c, &req(0, tag, 0, 0, b""));
    }
    let _ = events(&mut c);
    // Sendable: out as given.
    assert_eq!(c.respond_or_fail(0, 2, 3, &b"ok"[..]), Ok(None));
    assert_eq!(out(&mut c), resp(0, 2, true, 3, b"ok"));
    // Flags that cannot be encoded: the failure instead.
    let too_many_flags = wire::MAX_RESPONSE_FLAGS + 1;
    assert_eq!(
        c.respond_or_fail(0, 3, too_many_flags, &b""[..]),
        Ok(Some(RespondError::Field(wire::FieldError::FlagsTooLarge {
            flags: too_many_flags,
            max: wire::MAX_RESPONSE_FLAGS
        })))
    );
    assert_eq!(out(&mut c), fail(0, 3, reason::EXCEPTION_DURING_HANDLER));
    // A payload over the packet limit: the failure instead.
    assert_eq!(
        c.respond_or_fail(0, 4, 0, vec![0u8; 64]),
        Ok(Some(RespondError::PayloadTooLong { len: 67, max: 64 }))
    );
    assert_eq!(out(&mut c), fail(0, 4, reason::EXCEPTION_DURING_HANDLER));
    // A reason over the packet limit: the failure instead.
    let long_reason = "x".repeat(64);
    assert_eq!(
        c.reject_or_fail(0, 5, &long_reason),
        Ok(Some(RespondError::PayloadTooLong { len: 67, max: 64 }))
    );
    assert_eq!(out(&mut c), fail(0, 5, reason::EXCEPTION_DURING_HANDLER));
    // Not in flight (answered already): nothing is sent.
    assert_eq!(
        c.respond_or_fail(0, 5, 0, &b""[..]),
        Err(RespondError::NotInFlight { channel: 0, tag: 5 })
    );
    assert_eq!(c.poll_transmit(), None);
}

#[test]
fn transmit_limit() {
    let mut c = conn_with(|c| c.max_transmit_buffer = 20);
    let mut n = 0;
    while c.submit(0, 0, 0, &b"0123456789"[..], T0, None).is_ok() {
        n += 1;
    }
    assert_eq!(n, 2);
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::TransmitFull {
            queued: 28,
            max: 20
        })
    );
    // Input that would queue a refusal waits while the queue is full.
    feed(&mut c, &req(5, 2, 0, 0, b""));
    feed(&mut c, &resp(0, 2, true, 0, b""));
    assert_eq!(events(&mut c), vec![]);
    c.advance_transmit(28);
    assert_eq!(events(&mut c), vec![response_event(0, 2, true, 0, b"")]);
    assert_eq!(out(&mut c), fail(5, 2, "unknown channel %d"));
}

#[test]
fn refusals_fit_the_packet_limit() {
    // A limit of 16 bytes: "unknown channel %d" (18 bytes of text) would
    // not fit; the failure goes out cut to 16 bytes, and a peer with the
    // same limit reads it as the failure of its request.
    let small = |c: &mut Config| {
        c.max_packet_len = 16;
        c.max_receive_buffer = 64;
    };
    let mut c = conn_with(small);
    let mut peer = conn_with(small);
    peer.open_channel(5).unwrap();
    let tag = peer
        .submit(5, 0, 0, &b""[..], Instant::from_millis(0), None)
        .unwrap();
    feed(&mut c, &out(&mut peer));
    let sent = out(&mut c);
    assert_eq!(sent.len(), 16);
    assert_eq!(sent, fail(5, tag, &"unknown channel %d"[..16 - 4]));
    feed(&mut peer, &sent);
    assert_eq!(
        events(&mut peer),
        vec![response_event(5, tag, false, 0, b"unknown chan")]
    );
}

#[test]
fn inflight_inbound_limit_is_backpressure() {
    let mut c = conn_with(|c| c.max_inflight_inbound = 2);
    c.submit(0, 0, 0, &b""[..], T0, None).unwrap();
    let mut input = Vec::new();
    for tag in 10..14 {
        input.extend(req(0, tag, 0, 0, b"r"));
    }
    input.extend(resp(0, 2, true, 0, b""));
    feed(&mut c, &input);
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 10, 0, 0, b"r"),
            request_event(0, 11, 0, 0, b"r")
        ]
    );
    assert_eq!(c.receive_buffered(), input.len() - 2 * 5);
    // Answering frees a slot; parsing resumes by itself, in order.
    c.respond(0, 11, 0, &b""[..]).unwrap();
    assert_eq!(events(&mut c), vec![request_event(0, 12, 0, 0, b"r")]);
    // Refusals need no slot: a duplicate goes through while full.
    c.reject(0, 10, "x").unwrap();
    c.respond(0, 12, 0, &b""[..]).unwrap();
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 13, 0, 0, b"r"),
            response_event(0, 2, true, 0, b"")
        ]
    );
}

#[test]
fn receive_buffer_limit_takes_fewer_bytes() {
    let mut c = conn_with(|c| {
        c.max_inflight_inbound = 1;
        c.max_packet_len = 40;
        c.max_receive_buffer = 100;
    });
    let mut input = Vec::new();
    for tag in 2..40 {
        input.extend(req(0, tag, 0, 0, b"0123456789"));
    }
    // The first request becomes an event (charged payload + overhead), the
    // rest waits in the buffer up to the limit.
    let taken = c.handle_input(&input).unwrap();
    assert!(taken < input.len());
    assert!(c.receive_buffered() + 10 + EVENT_OVERHEAD >= 100 - 14);
    assert_eq!(c.handle_input(&input[taken..]), Ok(0));
    // Draining and answering makes room; all requests get through in order.
    let mut pos = taken;
    let mut seen = Vec::new();
    loop {
        let evs = events(&mut c);
        if evs.is_empty() && pos == input.len() && c.receive_buffered() == 0 {
            break;
        }
        for e in evs {
            let Event::RequestReceived { tag, .. } = e else {
                panic!("{e:?}")
            };
            seen.push(tag);
            c.respond(0, tag, 0, &b""[..]).unwrap();
        }
        pos += c.handle_input(&input[pos..]).unwrap();
    }
    assert_eq!(seen, (2..40).collect::<Vec<u64>>());
}

#[test]
fn unpolled_events_are_bounded() {
    let mut c = conn_with(|c| {
        c.max_packet_len = 64;
        c.max_receive_buffer = 4 * EVENT_OVERHEAD;
    });
    let mut input = Vec::new();
    for tag in 100..300 {
        input.extend(resp(0, tag, true, 0, b""));
    }
    let taken = c.handle_input(&input).unwrap();
    assert!(taken < input.len());
    let mut total = 0;
    let mut pos = taken;
    loop {
        let n = events(&mut c).len();
        total += n;
        if pos == input.len() {
            break;
        }
        pos += c.handle_input(&input[pos..]).unwrap();
    }
    total += events(&mut c).len();
    assert_eq!(total, 200);
    assert_eq!(c.stats().unknown_responses, 200);
}

#[test]
fn remembered_tags_are_bounded() {
    let mut c = conn_with(|c| c.max_remembered_tags = 4);
    // Tags with gaps: each one is remembered until the limit forces the
    // oldest into the high-water mark.
    for tag in (2..40).step_by(2) {
        feed(&mut c, &req(0, tag, 0, 0, b""));
        let _ = events(&mut c);
        c.respond(0, tag, 0, &b""[..]).unwrap();
        assert!(c.remembered_tags() <= 4);
    }
    assert_eq!(c.remembered_tags(), 4);
    assert!(c.stats().tags_forgotten > 0);
    let _ = out(&mut c);
    // An unused tag below the mark now counts as used...
    feed(&mut c, &req(0, 3, 0, 0, b""));
    assert_eq!(out(&mut c), fail(0, 3, "channel 0: tag already in use: 3"));
    // ...while one in a remembered gap is still fine.
    feed(&mut c, &req(0, 37, 0, 0, b""));
    assert_eq!(events(&mut c), vec![request_event(0, 37, 0, 0, b"")]);
    // Counting up costs nothing.
    let mut c = conn_with(|c| c.max_remembered_tags = 1);
    for tag in 0..100 {
        feed(&mut c, &req(0, tag, 0, 0, b""));
        let _ = events(&mut c);
        c.respond(0, tag, 0, &b""[..]).unwrap();
    }
    assert_eq!(c.remembered_tags(), 0);
    assert_eq!(c.stats().tags_forgotten, 0);
}

#[test]
fn config_is_validated() {
    let bad = Config {
        max_receive_buffer: 10,
        max_packet_len: 11,
        ..Config::default()
    };
    assert_eq!(
        Connection::new(bad).err(),
        Some(ConfigError::ReceiveBufferTooSmall {
            max_receive_buffer: 10,
            max_packet_len: 11
        })
    );
    let bad = Config {
        max_remembered_tags: 0,
        ..Config::default()
    };
    assert_eq!(
        bad.validate(),
        Err(ConfigError::Zero {
            field: "max_remembered_tags"
        })
    );
}

#[test]
fn packet_limit_under_the_markers_is_refused() {
    // EOF and ERQ are 4 bytes: nothing shorter can end a stream.
    assert_eq!(MIN_MAX_PACKET_LEN, 4);
    assert_eq!(MIN_MAX_PACKET_LEN, wire::EOF_BYTES.len());
    assert_eq!(MIN_MAX_PACKET_LEN, wire::ERQ_BYTES.len());
    for max_packet_len in 0..MIN_MAX_PACKET_LEN {
        let bad = Config {
            max_packet_len,
            max_receive_buffer: 64,
            ..Config::default()
        };
        let err = ConfigError::PacketLimitTooSmall {
            max_packet_len,
            min: MIN_MAX_PACKET_LEN,
        };
        assert_eq!(bad.validate(), Err(err));
        assert_eq!(Connection::new(bad).err(), Some(err));
    }
    let err = Config {
        max_packet_len: 3,
        ..Config::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        format!("{err}"),
        "max_packet_len 3 is under the minimum of 4 (the EOF and ERQ markers)"
    );
    let least = Config {
        max_packet_len: MIN_MAX_PACKET_LEN,
        max_receive_buffer: MIN_MAX_PACKET_LEN,
        ..Config::default()
    };
    assert_eq!(least.validate(), Ok(()));
}

/// The least packet limit, on both ends, with a receive budget and a
/// transmit queue of the same size: requests, responses, the connection's
/// own refusals (cut to no text), over-limit packets refused with their
/// numbers, and the orderly close all work end to end.
#[test]
fn pair_with_the_least_packet_limit() {
    let tiny = Config {
        max_packet_len: MIN_MAX_PACKET_LEN,
        max_receive_buffer: MIN_MAX_PACKET_LEN,
        max_transmit_buffer: MIN_MAX_PACKET_LEN,
        ..Config::default()
    };
    // The client serves nothing: the server's requests are refused.
    let client = Config {
        accept_requests: false,
        ..tiny
    };
    let mut pair = Pair::new(client, tiny, 17);
    pair.max_chunk = 3;
    let now = pair.now;
    // One byte of payload is one too many.
    assert_eq!(
        pair.client.conn.submit(0, 0, 0, &b"x"[..], now, None),
        Err(SubmitError::PayloadTooLong { len: 5, max: 4 })
    );
    assert_eq!(pair.client.conn.submit(0, 0, 0, &b""[..], now, None), Ok(2));
    pair.drive();
    assert_eq!(
        pair.server.take_events(),
        vec![request_event(0, 2, 0, 0, b"")]
    );
    assert_eq!(
        pair.server.conn.respond(0, 2, 0, &b"yy"[..]),
        Err(RespondError::PayloadTooLong { len: 5, max: 4 })
    );
    assert_eq!(pair.server.conn.respond(0, 2, 0, &b"y"[..]), Ok(()));
    pair.drive();
    assert_eq!(
        pair.client.take_events(),
        vec![response_event(0, 2, true, 0, b"y")]
    );
    // The server's request is refused by the client itself: "no request
    // handler" cut to its first byte fits.
    assert_eq!(pair.server.conn.submit(0, 5, 0, &b""[..], now, None), Ok(2));
    pair.drive();
    assert_eq!(
        pair.server.take_events(),
        vec![response_event(0, 2, false, 0, b"n")]
    );
    assert_eq!(pair.client.conn.stats().requests_refused, 1);
    // The orderly close: ERQ and EOF each way.
    pair.client.conn.close();
    pair.drive();
    assert_eq!(
        pair.client.take_events(),
        vec![
            Event::PeerEndedRequests,
            Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            },
            Event::Closed
        ]
    );
    assert_eq!(
        pair.server.take_events(),
        vec![
            Event::PeerEndedRequests,
            Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            },
            Event::Closed
        ]
    );
    assert_eq!(pair.client.sent, hex("03020201 0302006e 03010200 03000200"));
    assert_eq!(pair.server.sent, hex("03020479 03020206 03010200 03000200"));
}

/// A connection with the least packet limit refuses a duplicate tag with a
/// failure cut to the limit and a 5-byte packet
/// with `TooLong`.
#[test]
fn least_packet_limit_refusals_and_overlong_input() {
    let mut c = conn_with(|c| {
        c.max_packet_len = MIN_MAX_PACKET_LEN;
        c.max_receive_buffer = MIN_MAX_PACKET_LEN;
    });
    feed(&mut c, &hex("03070201"));
    assert_eq!(events(&mut c), vec![request_event(0, 7, 0, 0, b"")]);
    // The same tag again, in flight: refused, the text cut to its first
    // byte (every request that fits has a one-octet tag, so its failure has
    // room for one byte of text).
    feed(&mut c, &hex("03070201"));
    assert_eq!(out(&mut c), hex("03070063"));
    assert_eq!(c.stats().tags_reused, 1);
    c.respond(0, 7, 0, &b""[..]).unwrap();
    assert_eq!(out(&mut c), hex("020704"));
    // Five bytes: too long, as soon as the prefix is read.
    feed(&mut c, &hex("04"));
    assert_eq!(
        events(&mut c),
        vec![Event::ProtocolError(ProtocolError::Packet(
            PacketError::TooLong { len: 5, max: 4 }
        ))]
    );
}

// ----- timeouts -----

/// The per-channel tables at scale: a request that is never answered while
/// thousands of later ones are (the window moves on and the old one
/// spills), a deadline heap that does not grow with answered requests, an
/// exact `poll_timeout` throughout, and the cancel order at the end.
#[test]
fn bookkeeping_at_scale_with_a_straggler() {
    let mut c = conn_with(|c| c.max_pending_outbound = 8);
    let t0 = Instant::from_millis(0);
    let slow = c
        .submit(0, 0, 0, &b""[..], t0, Some(Duration::from_secs(1_000)))
        .unwrap();
    let forever = c.submit(0, 0, 0, &b""[..], t0, None).unwrap();
    let _ = out(&mut c);
    for i in 0..5_000u64 {
        let now = Instant::from_millis(i);
        let tag = c
            .submit(0, 0, 0, &b""[..], now, Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(c.poll_timeout(), Some(Instant::from_millis(i + 10_000)));
        let _ = out(&mut c);
        feed(&mut c, &resp(0, tag, true, 0, b""));
        assert!(matches!(
            c.poll_event(),
            Some(Event::ResponseReceived { tag: t, .. }) if t == tag
        ));
        assert_eq!(c.poll_timeout(), Some(Instant::from_millis(1_000_000)));
        assert!(c.deadline_entries() <= 2 + 32 + 1);
    }
    assert_eq!(c.pending_outbound(), 2);
    assert!(c.is_pending(0, slow) && c.is_pending(0, forever));
    // Another channel, and requests left waiting on both.
    c.open_channel(7).unwrap();
    let a = c.submit(7, 0, 0, &b""[..], t0, None).unwrap();
    let b = c.submit(0, 0, 0, &b""[..], t0, None).unwrap();
    c.handle_timeout(Instant::from_millis(1_000_000));
    assert_eq!(
        events(&mut c),
        vec![Event::RequestTimedOut {
            channel: 0,
            tag: slow
        }]
    );
    assert_eq!(c.poll_timeout(), None);
    c.handle_eof();
    let evs = events(&mut c);
    assert_eq!(
        evs[1..4],
        [
            Event::RequestCancelled {
                channel: 0,
                tag: forever
            },
            Event::RequestCancelled { channel: 0, tag: b },
            Event::RequestCancelled { channel: 7, tag: a },
        ]
    );
    assert_eq!(c.pending_outbound(), 0);
}

/// The peer's in-flight tags in any order (far apart, backwards, around a
/// request answered late) are tracked exactly.
#[test]
fn inflight_tags_in_any_order() {
    let mut c = conn_with(|c| c.max_inflight_inbound = 4);
    let tags = [2u64, u64::MAX - 1, 40, 3, 1_000_000, 41, 39];
    let mut live = Vec::new();
    for &tag in &tags {
        feed(&mut c, &req(0, tag, 0, 0, b"x"));
        while let Some(e) = c.poll_event() {
            if let Event::RequestReceived { tag, .. } = e {
                live.push(tag);
            }
        }
        if live.len() == 4 {
            // Answer the middle one.
            let t = live.remove(1);
            c.respond(0, t, 0, &b""[..]).unwrap();
            assert!(!c.is_inflight(0, t));
            assert_eq!(
                c.respond(0, t, 0, &b""[..]),
                Err(RespondError::NotInFlight { channel: 0, tag: t })
            );
        }
        for &t in &live {
            assert!(c.is_inflight(0, t));
        }
        assert_eq!(c.inflight_inbound(), live.len());
    }
    for t in live {
        c.respond(0, t, 0, &b""[..]).unwrap();
    }
    assert_eq!(c.inflight_inbound(), 0);
}

#[test]
fn timeouts() {
    let mut c = conn();
    let now = Instant::from_millis(1_000);
    let a = c
        .submit(0, 0, 0, &b""[..], now, Some(Duration::from_millis(500)))
        .unwrap();
    let b = c
        .submit(0, 0, 0, &b""[..], now, Some(Duration::from_millis(200)))
        .unwrap();
    let _nd = c.submit(0, 0, 0, &b""[..], now, None).unwrap();
    assert_eq!(c.poll_timeout(), Some(Instant::from_millis(1_200)));
    c.handle_timeout(Instant::from_millis(1_199));
    assert_eq!(events(&mut c), vec![]);
    c.handle_timeout(Instant::from_millis(1_200));
    assert_eq!(
        events(&mut c),
        vec![Event::RequestTimedOut { channel: 0, tag: b }]
    );
    assert_eq!(c.poll_timeout(), Some(Instant::from_millis(1_500)));
    // Answered in time: its timer goes.
    feed(&mut c, &resp(0, a, true, 0, b""));
    assert_eq!(c.poll_timeout(), None);
    // The late response to the timed-out request is unknown.
    feed(&mut c, &resp(0, b, true, 0, b""));
    assert_eq!(
        events(&mut c),
        vec![
            response_event(0, a, true, 0, b""),
            Event::UnknownResponse { channel: 0, tag: b }
        ]
    );
    assert_eq!(c.stats().timed_out, 1);
}

// ----- split invariance -----

/// A server's input touching every rule, with the events and output it must
/// produce whatever the chunking.
fn scripted_input() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(req(0, 2, 0, 0, b"hello"));
    v.extend(req(0, 3, 1, 3, b"abc"));
    v.extend(req(5, 2, 0, 0, b"x")); // unknown channel
    v.extend(req(0, 3, 0, 0, b"dup")); // in flight
    v.extend(resp(0, 2, true, 0, b"")); // our request 2
    v.extend(resp(0, 42, true, 0, b"?")); // unknown
    let big: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    v.extend(req(0, 300, 0, 63, &big));
    v.extend(req(0, 0, 0, 0, b"tag zero"));
    v.extend(wire::ERQ_BYTES);
    v.extend(req(0, 400, 0, 0, b"after erq"));
    v.extend(resp(0, 3, false, 0, b"exception during handler"));
    v.extend(wire::EOF_BYTES);
    v.extend(b"ignored");
    v
}

fn run_scripted(cuts: &[usize], max_inflight: usize) -> (Vec<Event>, Vec<u8>) {
    let mut c = conn_with(|c| {
        c.max_inflight_inbound = max_inflight;
        c.max_packet_len = 4096;
        c.max_receive_buffer = 4096;
    });
    c.submit(0, 0, 0, &b"mine"[..], T0, None).unwrap();
    c.submit(0, 0, 0, &b"mine2"[..], T0, None).unwrap();
    let input = scripted_input();
    let mut evs = Vec::new();
    let mut sent = Vec::new();
    let mut pos = 0;
    let mut cut_iter = cuts.iter().copied();
    while pos < input.len() {
        let want = cut_iter.next().unwrap_or(input.len()).max(1);
        let end = (pos + want).min(input.len());
        let taken = c.handle_input(&input[pos..end]).unwrap();
        pos += taken;
        // A slow handler: answer requests only after the whole chunk, until
        // nothing new comes.
        loop {
            sent.extend(out(&mut c));
            let new = events(&mut c);
            if new.is_empty() {
                break;
            }
            for e in &new {
                if let Event::RequestReceived { channel, tag, .. } = e {
                    if c.is_inflight(*channel, *tag) {
                        c.respond(*channel, *tag, 0, &b"done"[..]).unwrap();
                    }
                }
            }
            evs.extend(new);
        }
    }
    c.handle_eof();
    evs.extend(events(&mut c));
    sent.extend(out(&mut c));
    evs.extend(events(&mut c));
    (evs, sent)
}

#[test]
fn scripted_whole_and_byte_by_byte() {
    let (evs, sent) = run_scripted(&[], 256);
    let ones = vec![1; scripted_input().len()];
    let (evs1, sent1) = run_scripted(&ones, 256);
    assert!(evs == evs1, "events differ byte by byte");
    let (mut a, mut b) = (packets(&sent), packets(&sent1));
    a.sort();
    b.sort();
    assert!(a == b, "output packets differ byte by byte");
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, Event::RequestReceived { .. }))
            .count(),
        4
    );
    assert_eq!(evs.last(), Some(&Event::Closed));
    assert!(evs.contains(&Event::UnknownResponse {
        channel: 0,
        tag: 42
    }));
    assert!(!evs.contains(&Event::RequestCancelled { channel: 0, tag: 3 }));
    // Output: requests, refusals, answers, ERQ, EOF — the last two in order.
    // ERQ went out when the peer's EOF arrived, EOF after the last answer.
    assert!(sent.ends_with(&wire::EOF_BYTES));
    assert!(sent.windows(4).any(|w| w == wire::ERQ_BYTES));
    let refusals = [
        fail(5, 2, "unknown channel %d"),
        fail(0, 3, "channel 0: tag already in use: 3"),
        fail(0, 400, "requests no longer allowed"),
    ];
    for r in refusals {
        assert!(sent.windows(r.len()).any(|w| w == &r[..]), "{r:02x?}");
    }
}

proptest! {
    #[test]
    fn split_invariance(cuts in proptest::collection::vec(1usize..300, 0..60), inflight in 1usize..4) {
        let whole = run_scripted(&[], inflight);
        let split = run_scripted(&cuts, inflight);
        prop_assert_eq!(whole.0, split.0);
        // The output bytes interleave answers with refusals depending on when
        // answers are given; compare them as packets, sorted.
        let mut a = packets(&whole.1);
        let mut b = packets(&split.1);
        prop_assert_eq!(a.last(), b.last());
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }
}

fn packets(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let limits = wire::ParseLimits::default();
    let mut v = Vec::new();
    while let Some((_, n)) = Packet::parse(bytes, &limits).unwrap() {
        v.push(bytes[..n].to_vec());
        bytes = &bytes[n..];
    }
    assert!(bytes.is_empty());
    v
}

// ----- the pair harness -----

/// Runs `n` requests from client to server over random chunking; the server
/// answers in a shuffled order (some refused), and every answer must reach
/// the request it belongs to.
fn pair_exchange(seed: u64, n: usize, max_chunk: usize) {
    let mut pair = Pair::new(Config::default(), Config::default(), seed);
    pair.max_chunk = max_chunk;
    pair.client.conn.open_channel(3).unwrap();
    pair.server.conn.open_channel(3).unwrap();
    let mut expected: BTreeMap<(u64, u64), (bool, Vec<u8>)> = BTreeMap::new();
    let now = pair.now;
    for i in 0..n {
        let channel = if i % 3 == 0 { 3 } else { 0 };
        let len = pair.rng().below(50) + if i % 7 == 0 { 5000 } else { 0 };
        let payload: Vec<u8> = (0..len).map(|k| (k + i) as u8).collect();
        let tag = pair
            .client
            .conn
            .submit(channel, i as u64, 0, payload.clone(), now, None)
            .unwrap();
        // The server echoes the payload reversed; every fifth is refused.
        let answer = if i % 5 == 4 {
            (false, format!("refused {i}").into_bytes())
        } else {
            (true, payload.iter().rev().copied().collect())
        };
        expected.insert((channel, tag), answer);
        if i % 4 == 0 {
            pair.step();
        }
    }
    let mut answered = 0;
    let mut got: BTreeMap<(u64, u64), (bool, Vec<u8>)> = BTreeMap::new();
    for _round in 0..1000 {
        pair.drive();
        let mut requests: Vec<Event> = pair.server.take_events();
        pair.rng().shuffle(&mut requests);
        // Answer only some of them now, the rest next round.
        let keep = pair.rng().below(requests.len() + 1);
        let later: Vec<Event> = requests.split_off(keep);
        for e in requests {
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
            if rq_type % 5 == 4 {
                pair.server
                    .conn
                    .reject(channel, tag, &format!("refused {rq_type}"))
                    .unwrap();
            } else {
                let rev: Vec<u8> = payload.iter().rev().copied().collect();
                pair.server.conn.respond(channel, tag, 0, rev).unwrap();
            }
            answered += 1;
        }
        pair.server.events.extend(later);
        for e in pair.client.take_events() {
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
            assert!(
                got.insert((channel, tag), (ok, payload.to_vec())).is_none(),
                "two answers for {channel}:{tag}"
            );
        }
        if got.len() == n {
            break;
        }
    }
    assert_eq!(answered, n);
    assert_eq!(got, expected, "seed {seed}");
    assert_eq!(pair.client.conn.stats().unknown_responses, 0);
    assert_eq!(pair.server.conn.stats().requests_refused, 0);

    // Orderly close from the client; both ends finish.
    pair.client.conn.close();
    pair.drive();
    assert!(pair.client.events.contains(&Event::Closed), "seed {seed}");
    assert!(pair.server.events.contains(&Event::Closed), "seed {seed}");
    assert_eq!(pair.client.conn.state(), State::Closed);
    assert_eq!(pair.server.conn.state(), State::Closed);
    assert!(pair.client.sent.ends_with(&hex("03010200 03000200")));
    assert!(pair.server.sent.ends_with(&hex("03010200 03000200")));
}

#[test]
fn pair_random_chunking_and_order() {
    for seed in 0..20 {
        pair_exchange(seed, 60, 1 + (seed as usize % 13));
    }
    pair_exchange(99, 200, 0);
    pair_exchange(100, 50, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn pair_exchange_any_seed(seed: u64, max_chunk in 0usize..64, n in 1usize..80) {
        pair_exchange(seed, n, max_chunk);
    }
}

#[test]
fn pair_orderly_close_from_the_server_with_work_in_flight() {
    let mut pair = Pair::new(Config::default(), Config::default(), 5);
    let now = pair.now;
    let t = pair
        .client
        .conn
        .submit(0, 0, 0, &b"q"[..], now, None)
        .unwrap();
    pair.drive();
    assert_eq!(pair.server.take_events().len(), 1);
    pair.server.conn.close();
    pair.drive();
    // The server sent ERQ but waits for its answer before EOF.
    assert_eq!(pair.client.take_events(), vec![Event::PeerEndedRequests]);
    assert_eq!(pair.client.conn.submit(0, 0, 0, &b""[..], now, None), Ok(3));
    pair.drive();
    // A request sent after the server began closing is refused.
    assert_eq!(
        pair.client.take_events(),
        vec![response_event(
            0,
            3,
            false,
            0,
            b"rejecting request: runstate.cancelled"
        )]
    );
    pair.server.conn.respond(0, t, 0, &b"a"[..]).unwrap();
    pair.drive();
    let ev = pair.client.take_events();
    assert_eq!(
        ev,
        vec![
            response_event(0, t, true, 0, b"a"),
            Event::PeerClosed {
                reason: PeerCloseReason::EofPacket
            },
            Event::Closed,
        ]
    );
    assert!(pair.server.events.contains(&Event::Closed));
    assert_eq!(pair.server.sent, {
        let mut v = hex("03010200");
        v.extend(fail(0, 3, "rejecting request: runstate.cancelled"));
        v.extend(resp(0, t, true, 0, b"a"));
        v.extend(hex("03000200"));
        v
    });
}

#[test]
fn pair_transport_eof_cancels_pending() {
    let mut pair = Pair::new(Config::default(), Config::default(), 11);
    let now = pair.now;
    for _ in 0..5 {
        pair.client
            .conn
            .submit(0, 0, 0, &b"q"[..], now, None)
            .unwrap();
    }
    pair.drive();
    // The server vanishes without an EOF packet.
    pair.shutdown_write(Which::Server);
    pair.drive();
    let ev = pair.client.take_events();
    assert_eq!(
        ev[0],
        Event::PeerClosed {
            reason: PeerCloseReason::TransportEof
        }
    );
    assert_eq!(ev.last(), Some(&Event::Closed));
    let cancelled: Vec<u64> = ev[1..ev.len() - 1]
        .iter()
        .map(|e| match e {
            Event::RequestCancelled { channel: 0, tag } => *tag,
            e => panic!("{e:?}"),
        })
        .collect();
    assert_eq!(cancelled, vec![2, 3, 4, 5, 6]);
    assert_eq!(pair.client.conn.stats().cancelled, 5);
}

// ----- a lost transport -----

/// A connection whose transmit queue is full of its own refusals, with a
/// waiting request (`waiting`), one whose response is buffered behind the
/// refusals (`answered`), a request that takes the one in-flight slot and
/// one beyond it, all taken and buffered but not yet handled.
fn stalled_on_transmit_room() -> (Connection, u64, u64) {
    let mut c = conn_with(|c| {
        c.max_inflight_inbound = 1;
        // Two requests (10 bytes) and one refusal (22 bytes) fill it.
        c.max_transmit_buffer = 32;
    });
    let waiting = c.submit(0, 0, 0, &b"w"[..], T0, None).unwrap();
    let answered = c.submit(0, 0, 0, &b"a"[..], T0, None).unwrap();
    let mut input = Vec::new();
    for tag in 2..12 {
        input.extend(req(5, tag, 0, 0, b"")); // unknown channel: refused
    }
    input.extend(req(0, 2, 0, 0, b"x")); // takes the one in-flight slot
    input.extend(req(0, 3, 0, 0, b"y")); // over the in-flight limit
    input.extend(resp(0, answered, true, 0, b"A"));
    feed(&mut c, &input);
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.stats().requests_refused, 1);
    assert!(c.transmit_len() >= 32);
    (c, waiting, answered)
}

/// What the alloc connection did before `handle_transport_lost` (and still
/// does on `handle_eof`, rightly for a half-close): the input behind a
/// refusal waits for transmit room, so a transport end alone leaves the
/// waiting request waiting. A driver whose link died could never make that
/// room: its callers hung. Once room is made (the peer still reads) the
/// rest is handled and the request is cancelled.
#[test]
fn transport_eof_alone_waits_for_transmit_room() {
    let (mut c, waiting, answered) = stalled_on_transmit_room();
    c.handle_eof();
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.pending_outbound(), 2);
    assert!(c.receive_buffered() > 0, "the input waits for room");
    assert_eq!(c.state(), State::Open);
    // However long the clock runs: no deadline, no event.
    c.handle_timeout(T0 + Duration::from_secs(3600));
    assert_eq!(events(&mut c), vec![]);
    // A half-closed peer that still reads: room is made, the rest handled
    // (the request over the in-flight limit waits for the first's answer).
    let transmit = |c: &mut Connection| {
        while c.transmit_len() > 0 {
            let _ = out(c);
        }
    };
    transmit(&mut c);
    assert_eq!(events(&mut c), vec![request_event(0, 2, 0, 0, b"x")]);
    c.respond(0, 2, 0, &b""[..]).unwrap();
    transmit(&mut c);
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 3, 0, 0, b"y"),
            response_event(0, answered, true, 0, b"A"),
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            },
            Event::RequestCancelled {
                channel: 0,
                tag: waiting
            },
        ]
    );
    assert_eq!(c.stats().requests_refused, 10);
    assert_eq!(c.stats().requests_dropped, 0);
}

/// The twin of the borrowed connection's test: a lost transport drops the
/// queue, handles the rest of the input without waiting for room (the
/// response still delivered, the refusals and the request beyond the
/// in-flight limit dropped), and cancels the waiting request.
#[test]
fn transport_lost_ends_a_connection_stalled_on_transmit_room() {
    let (mut c, waiting, answered) = stalled_on_transmit_room();
    c.handle_eof();
    assert_eq!(events(&mut c), vec![]);
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 2, 0, 0, b"x"),
            response_event(0, answered, true, 0, b"A"),
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            },
            Event::RequestCancelled {
                channel: 0,
                tag: waiting
            },
        ]
    );
    assert_eq!(c.transmit_len(), 0);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.pending_outbound(), 0);
    assert_eq!(c.receive_buffered(), 0);
    let stats = c.stats();
    assert_eq!(stats.requests_refused, 1);
    assert_eq!(stats.requests_dropped, 10); // 9 refusals, 1 over the limit
    assert_eq!(stats.bytes_sent, 0, "nothing dropped counts as sent");
    assert_eq!(stats.cancelled, 1);
    assert_eq!(c.handle_input(b"\x03"), Err(InputError::AfterTransportEof));
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::PeerGone)
    );
    // Idempotent.
    c.handle_transport_lost();
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.stats().requests_dropped, 10);
}

/// Without a prior `handle_eof`, inside a packet, and with our EOF queued
/// before the loss: the receive side ends (`Truncated`), and `Closed`,
/// which needs our EOF transmitted, never follows.
#[test]
fn transport_lost_inside_a_packet_never_reports_closed() {
    let mut c = conn();
    let waiting = c.submit(0, 0, 0, &b"w"[..], T0, None).unwrap();
    let _ = out(&mut c);
    c.close(); // ERQ and EOF queued, not sent
    feed(&mut c, &hex("08 02")); // a request's first two bytes
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![
            Event::ProtocolError(ProtocolError::Truncated {
                have: 2,
                need: Some(9)
            }),
            Event::RequestCancelled {
                channel: 0,
                tag: waiting
            },
        ]
    );
    assert_eq!(c.transmit_len(), 0);
    c.advance_transmit(0);
    let mut buf = [0u8; 8];
    assert_eq!(c.fill_transmit(&mut buf), 0);
    c.handle_eof();
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.state(), State::Closing);
}

/// After a loss nothing is queued: an answer to a request in flight is
/// accepted and dropped (the request leaves the in-flight table, counted in
/// `requests_dropped`, not in `responses_sent`), `end_requests` and `close`
/// queue no ERQ or EOF, `poll_transmit` stays empty, `submit` fails with
/// `PeerGone`, and `Closed` never follows.
#[test]
fn respond_after_transport_lost_queues_nothing() {
    let mut c = conn_with(|c| c.max_packet_len = 64);
    feed(
        &mut c,
        &cat(&[&req(0, 2, 0, 0, b"q"), &req(0, 3, 0, 0, b"r")]),
    );
    assert_eq!(
        events(&mut c),
        vec![
            request_event(0, 2, 0, 0, b"q"),
            request_event(0, 3, 0, 0, b"r")
        ]
    );
    let waiting = c.submit(0, 0, 0, &b"w"[..], T0, None).unwrap();
    let sent = out(&mut c).len() as u64;
    // Answered before the loss: queued (and counted), then dropped unsent.
    c.respond(0, 2, 0, &b"before"[..]).unwrap();
    assert!(c.transmit_len() > 0);
    c.handle_transport_lost();
    assert!(c.transport_lost());
    assert_eq!(
        events(&mut c),
        vec![
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            },
            Event::RequestCancelled {
                channel: 0,
                tag: waiting
            },
        ]
    );
    assert_eq!((c.transmit_len(), c.poll_transmit()), (0, None));
    let before = *c.stats();
    assert_eq!((before.responses_sent, before.requests_dropped), (1, 0));
    // Answered after the loss: accepted, dropped, counted.
    assert_eq!(c.respond(0, 3, 5, &b"after"[..]), Ok(()));
    assert_eq!(c.inflight_inbound(), 0);
    assert!(!c.is_inflight(0, 3));
    assert_eq!(c.transmit_len(), 0);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.transmit_chunks().count(), 0);
    assert!(c.eof_queued(), "the last answer lets the close go on");
    let stats = *c.stats();
    assert_eq!(stats.responses_sent, 1);
    assert_eq!(stats.requests_dropped, 1);
    assert_eq!(stats.requests_received, 2);
    assert_eq!(stats.bytes_sent, sent);
    // The same errors as before the loss.
    assert_eq!(
        c.respond(0, 3, 0, &b""[..]),
        Err(RespondError::NotInFlight { channel: 0, tag: 3 })
    );
    assert_eq!(
        c.reject(0, 9, "x"),
        Err(RespondError::NotInFlight { channel: 0, tag: 9 })
    );
    assert_eq!(
        c.submit(0, 0, 0, &b""[..], T0, None),
        Err(SubmitError::PeerGone)
    );
    c.end_requests();
    c.close();
    assert_eq!((c.transmit_len(), c.poll_transmit()), (0, None));
    c.advance_transmit(100);
    let mut buf = [0u8; 16];
    assert_eq!(c.fill_transmit(&mut buf), 0);
    assert_eq!(c.stats().bytes_sent, sent);
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.state(), State::Closing);
    // Idempotent, and nothing left for a second loss to drop.
    c.handle_transport_lost();
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(*c.stats(), stats);
}

/// After a loss, an answer over the packet limit still fails (the handler
/// bug is reported, the request stays in flight), and `respond_or_fail`'s
/// fallback failure is accepted and dropped like any answer.
#[test]
fn answers_after_transport_lost_keep_their_errors() {
    let mut c = conn_with(|c| {
        c.max_packet_len = 32;
        c.max_receive_buffer = 64;
    });
    feed(&mut c, &req(0, 2, 0, 0, b""));
    let _ = events(&mut c);
    c.handle_transport_lost();
    let _ = events(&mut c);
    let long = Bytes::from(vec![7u8; 40]);
    assert!(matches!(
        c.respond(0, 2, 0, long.clone()),
        Err(RespondError::PayloadTooLong { max: 32, .. })
    ));
    assert!(c.is_inflight(0, 2));
    assert_eq!(c.stats().requests_dropped, 0);
    assert!(matches!(
        c.respond_or_fail(0, 2, 0, long),
        Ok(Some(RespondError::PayloadTooLong { .. }))
    ));
    assert!(!c.is_inflight(0, 2));
    assert_eq!(c.stats().requests_dropped, 1);
    assert_eq!(c.stats().responses_sent, 0);
    assert_eq!(c.transmit_len(), 0);
}

/// Events queued before the loss are still delivered, and packets held
/// back behind unpolled events (the receive budget) are handled as they are
/// polled; meanwhile the receive side has not ended, yet `submit` already
/// fails: nothing would be sent.
#[test]
fn transport_lost_while_events_hold_packets_back() {
    let mut c = conn_with(|c| {
        c.max_packet_len = 64;
        c.max_receive_buffer = 64;
    });
    let a = c.submit(0, 0, 0, &b"a"[..], T0, None).unwrap();
    let b = c.submit(0, 0, 0, &b"b"[..], T0, None).unwrap();
    let w = c.submit(0, 0, 0, &b"w"[..], T0, None).unwrap();
    let _ = out(&mut c);
    let input = cat(&[
        &resp(0, a, true, 0, b"A"),
        &req(0, 9, 0, 0, b"x"),
        &resp(0, b, true, 0, b"B"),
    ]);
    feed(&mut c, &input);
    // The first event takes the whole budget: the rest waits.
    assert!(c.input_stalled());
    c.handle_transport_lost();
    assert_eq!(c.state(), State::Open, "the receive side has not ended yet");
    assert_eq!(
        c.submit(0, 0, 0, &b"late"[..], T0, None),
        Err(SubmitError::PeerGone)
    );
    // `a`'s response is queued as an event; `b` and `w` still wait.
    assert_eq!((c.transmit_len(), c.pending_outbound()), (0, 2));
    assert_eq!(
        events(&mut c),
        vec![
            response_event(0, a, true, 0, b"A"),
            request_event(0, 9, 0, 0, b"x"),
            response_event(0, b, true, 0, b"B"),
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            },
            Event::RequestCancelled { channel: 0, tag: w },
        ]
    );
    // The request delivered after the loss is answered into the void.
    c.respond(0, 9, 0, &b"y"[..]).unwrap();
    assert_eq!(c.transmit_len(), 0);
    assert_eq!(c.stats().requests_dropped, 1);
    assert_eq!(c.stats().responses_sent, 0);
    assert_eq!(c.stats().requests_sent, 3);
}

/// `Closed` follows a loss only when our EOF had been transmitted before
/// it (the peer's stream then ends with the loss, as with `handle_eof`).
#[test]
fn closed_after_transport_lost_needs_eof_transmitted_before() {
    let mut c = conn();
    c.close();
    assert_eq!(out(&mut c), hex("03 01 02 00  03 00 02 00"));
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![
            Event::PeerClosed {
                reason: PeerCloseReason::TransportEof
            },
            Event::Closed
        ]
    );
    assert_eq!(c.state(), State::Closed);
    // Our EOF one byte short of transmitted: never Closed.
    let mut c = conn();
    c.close();
    c.advance_transmit(7);
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![Event::PeerClosed {
            reason: PeerCloseReason::TransportEof
        }]
    );
    assert_eq!(c.state(), State::Closing);
    // Nothing was queued at the loss (everything sent): the ERQ and EOF the
    // end of input makes are dropped, not counted as sent.
    let mut c = conn();
    let _ = c.submit(0, 0, 0, &b"q"[..], T0, None).unwrap();
    let _ = out(&mut c);
    c.handle_transport_lost();
    let ev = events(&mut c);
    assert!(!ev.contains(&Event::Closed), "{ev:?}");
    assert_eq!(c.state(), State::Closing);
    assert!(c.eof_queued());
    assert_eq!(c.transmit_len(), 0);
}

/// In the pair harness: the server's link dies while the client's transmit
/// queue is full of refusals the server will never read; the client's
/// waiting requests end.
#[test]
fn pair_transport_lost_cancels_requests_behind_refusals() {
    let client = Config {
        max_transmit_buffer: 32,
        ..Config::default()
    };
    let mut pair = Pair::new(client, Config::default(), 23);
    let now = pair.now;
    let tags: Vec<u64> = (0..3)
        .map(|_| {
            pair.client
                .conn
                .submit(0, 0, 0, &b"q"[..], now, None)
                .unwrap()
        })
        .collect();
    pair.drive();
    assert_eq!(pair.server.take_events().len(), 3);
    // The server stops reading (its socket is gone) after sending many
    // requests on a channel the client never opened.
    pair.shutdown_write(Which::Client);
    for _ in 0..20 {
        let t = pair.server.conn.submit(0, 0, 0, &b""[..], now, None);
        assert!(t.is_ok(), "{t:?}");
    }
    let mut junk = Vec::new();
    for tag in 100..140 {
        junk.extend(req(7, tag, 0, 0, b""));
    }
    // The client takes everything; its refusals pile up unsent.
    let taken = pair.client.conn.handle_input(&junk).unwrap();
    assert_eq!(taken, junk.len());
    pair.drive();
    assert_eq!(pair.client.conn.pending_outbound(), 3);
    pair.client.conn.handle_transport_lost();
    pair.drive();
    let ev = pair.client.take_events();
    let cancelled: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::RequestCancelled { channel: 0, tag } => Some(*tag),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, tags, "{ev:?}");
    assert_eq!(pair.client.conn.pending_outbound(), 0);
    assert_eq!(pair.client.conn.transmit_len(), 0);
}

#[test]
fn pair_timeouts_fire_on_the_simulated_clock() {
    let mut pair = Pair::new(Config::default(), Config::default(), 3);
    let now = pair.now;
    let t = pair
        .client
        .conn
        .submit(0, 0, 0, &b""[..], now, Some(Duration::from_millis(250)))
        .unwrap();
    pair.drive();
    let _ = pair.server.take_events();
    assert!(pair.run_timers());
    assert_eq!(pair.now, Instant::from_millis(250));
    assert_eq!(
        pair.client.take_events(),
        vec![Event::RequestTimedOut { channel: 0, tag: t }]
    );
    pair.server.conn.respond(0, t, 0, &b"late"[..]).unwrap();
    pair.drive();
    assert_eq!(
        pair.client.take_events(),
        vec![Event::UnknownResponse { channel: 0, tag: t }]
    );
    assert!(!pair.run_timers());
}

#[test]
fn rng_is_deterministic() {
    let mut a = Rng::new(1);
    let mut b = Rng::new(1);
    for _ in 0..10 {
        assert_eq!(a.next_u64(), b.next_u64());
    }
    assert_ne!(Rng::new(0).next_u64(), 0);
}

// ----- random operation sequences -----

#[derive(Clone, Debug)]
enum Op {
    Submit {
        from_server: bool,
        channel3: bool,
        len: usize,
        timeout_ms: Option<u64>,
    },
    Answer {
        server: bool,
        n: usize,
        reject: bool,
    },
    Step(u8),
    Advance(u64),
    Close(bool),
    EndRequests(bool),
    Shutdown(bool),
    Abandon(bool),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>(), 0usize..64, proptest::option::of(1u64..500)).prop_map(
            |(from_server, channel3, len, timeout_ms)| Op::Submit {
                from_server,
                channel3,
                len,
                timeout_ms
            }
        ),
        3 => (any::<bool>(), 0usize..4, any::<bool>())
            .prop_map(|(server, n, reject)| Op::Answer { server, n, reject }),
        3 => any::<u8>().prop_map(Op::Step),
        1 => (0u64..300).prop_map(Op::Advance),
        1 => any::<bool>().prop_map(Op::Close),
        1 => any::<bool>().prop_map(Op::EndRequests),
        1 => any::<bool>().prop_map(Op::Shutdown),
        1 => any::<bool>().prop_map(Op::Abandon),
    ]
}

#[derive(Default)]
struct Book {
    /// Our requests: (requester, channel, tag) → terminal events seen.
    requests: BTreeMap<(bool, u64, u64), u32>,
    abandoned: Vec<(bool, u64, u64)>,
    timed_out: Vec<(bool, u64, u64)>,
    /// Requests to answer: (answerer is server, channel, tag).
    to_answer: Vec<(bool, u64, u64)>,
}

fn side_of(pair: &mut Pair, server: bool) -> &mut super::pair::Side {
    pair.side(if server { Which::Server } else { Which::Client })
}

fn account(pair: &mut Pair, book: &mut Book) {
    for server in [false, true] {
        let limits = *side_of(pair, server).conn.config();
        let side = side_of(pair, server);
        assert!(side.conn.receive_buffered() <= limits.max_receive_buffer);
        assert!(side.conn.pending_outbound() <= limits.max_pending_outbound);
        assert!(side.conn.inflight_inbound() <= limits.max_inflight_inbound);
        for e in side.take_events() {
            match e {
                Event::RequestReceived { channel, tag, .. } => {
                    book.to_answer.push((server, channel, tag));
                }
                Event::ResponseReceived { channel, tag, .. }
                | Event::RequestCancelled { channel, tag } => {
                    *book.requests.get_mut(&(server, channel, tag)).unwrap() += 1;
                }
                Event::RequestTimedOut { channel, tag } => {
                    *book.requests.get_mut(&(server, channel, tag)).unwrap() += 1;
                    book.timed_out.push((server, channel, tag));
                }
                Event::UnknownResponse { channel, tag } => {
                    let k = (server, channel, tag);
                    assert!(
                        book.timed_out.contains(&k) || book.abandoned.contains(&k),
                        "unexpected unknown response {k:?}"
                    );
                }
                // A write side shut in the middle of a packet.
                Event::ProtocolError(ProtocolError::Truncated { .. }) => {}
                Event::ProtocolError(e) => panic!("protocol error between two framewire ends: {e}"),
                _ => {}
            }
        }
    }
}

fn answer(pair: &mut Pair, book: &mut Book, server: bool, n: usize, reject: bool) {
    let mut left = n;
    let mut i = 0;
    while i < book.to_answer.len() && left > 0 {
        let (s, channel, tag) = book.to_answer[i];
        if s == server {
            book.to_answer.remove(i);
            let conn = &mut side_of(pair, server).conn;
            if reject {
                conn.reject(channel, tag, "no").unwrap();
            } else {
                conn.respond(channel, tag, 1, vec![tag as u8; 3]).unwrap();
            }
            left -= 1;
        } else {
            i += 1;
        }
    }
}

fn run_ops(seed: u64, ops: &[Op]) {
    let config = Config {
        max_pending_outbound: 8,
        max_inflight_inbound: 3,
        max_packet_len: 256,
        max_receive_buffer: 512,
        max_transmit_buffer: 256,
        ..Config::default()
    };
    let mut pair = Pair::new(config, config, seed);
    pair.client.conn.open_channel(3).unwrap();
    pair.server.conn.open_channel(3).unwrap();
    let mut book = Book::default();
    let mut shut = false;
    for op in ops {
        match *op {
            Op::Submit {
                from_server,
                channel3,
                len,
                timeout_ms,
            } => {
                let now = pair.now;
                let channel = if channel3 { 3 } else { 0 };
                let conn = &mut side_of(&mut pair, from_server).conn;
                if let Ok(tag) = conn.submit(
                    channel,
                    len as u64,
                    0,
                    vec![7u8; len],
                    now,
                    timeout_ms.map(Duration::from_millis),
                ) {
                    assert!(book
                        .requests
                        .insert((from_server, channel, tag), 0)
                        .is_none());
                }
            }
            Op::Answer { server, n, reject } => answer(&mut pair, &mut book, server, n, reject),
            Op::Step(n) => {
                for _ in 0..n % 8 {
                    pair.step();
                }
            }
            Op::Advance(ms) => pair.advance(Duration::from_millis(ms)),
            Op::Close(server) => side_of(&mut pair, server).conn.close(),
            Op::EndRequests(server) => side_of(&mut pair, server).conn.end_requests(),
            Op::Shutdown(server) => {
                shut = true;
                pair.shutdown_write(if server { Which::Server } else { Which::Client });
            }
            Op::Abandon(server) => {
                let k = book
                    .requests
                    .iter()
                    .find(|(k, &v)| k.0 == server && v == 0)
                    .map(|(k, _)| *k);
                if let Some(k) = k {
                    if side_of(&mut pair, server).conn.abandon(k.1, k.2) {
                        book.requests.remove(&k);
                        book.abandoned.push(k);
                    }
                }
            }
        }
        account(&mut pair, &mut book);
    }
    // Finish: answer everything, let timers run, close both ends.
    for _ in 0..200 {
        pair.drive();
        account(&mut pair, &mut book);
        answer(&mut pair, &mut book, false, usize::MAX, false);
        answer(&mut pair, &mut book, true, usize::MAX, false);
        pair.drive();
        account(&mut pair, &mut book);
        if book.to_answer.is_empty() && !pair.run_timers() {
            break;
        }
    }
    pair.client.conn.close();
    pair.server.conn.close();
    for _ in 0..50 {
        pair.drive();
        account(&mut pair, &mut book);
        answer(&mut pair, &mut book, false, usize::MAX, false);
        answer(&mut pair, &mut book, true, usize::MAX, false);
    }
    if shut {
        // A side whose write was shut never gets its EOF out; end the
        // transports so every waiting request resolves.
        pair.shutdown_write(Which::Client);
        pair.shutdown_write(Which::Server);
        pair.drive();
        account(&mut pair, &mut book);
    }
    for (k, n) in &book.requests {
        assert_eq!(*n, 1, "request {k:?} ended {n} times (seed {seed})");
    }
    assert!(book.to_answer.is_empty());
    if !shut {
        assert_eq!(pair.client.conn.state(), State::Closed, "seed {seed}");
        assert_eq!(pair.server.conn.state(), State::Closed, "seed {seed}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_operations_resolve_every_request_once(
        seed: u64,
        ops in proptest::collection::vec(arb_op(), 0..80),
    ) {
        run_ops(seed, &ops);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(1usize..50, 0..20),
    ) {
        let mut c = conn_with(|c| {
            c.max_packet_len = 64;
            c.max_receive_buffer = 128;
            c.max_inflight_inbound = 2;
        });
        c.open_channel(1).unwrap();
        let mut pos = 0;
        let mut cuts = cuts.into_iter();
        while pos < bytes.len() {
            let end = (pos + cuts.next().unwrap_or(bytes.len())).min(bytes.len());
            match c.handle_input(&bytes[pos..end]) {
                Ok(n) => pos += n,
                Err(_) => break,
            }
            prop_assert!(c.receive_buffered() <= 128);
            for e in events(&mut c) {
                if let Event::RequestReceived { channel, tag, .. } = e {
                    c.respond(channel, tag, 0, &b""[..]).unwrap();
                }
            }
            let _ = out(&mut c);
        }
        c.handle_eof();
        let _ = events(&mut c);
        prop_assert!(c.state() != State::Open);
    }
}
