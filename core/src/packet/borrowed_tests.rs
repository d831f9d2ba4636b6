//! Tests of [`BorrowedConnection`] on its own (they run without `alloc`):
//! golden bytes of everything it sends, every rule and failure reason,
//! every limit with its numbers, back-pressure and resumption, timeouts,
//! shutdown, the memory formula, and split invariance.
//!
//! The differential test against the alloc `Connection` and the 10,000
//! request pair test are in `diff_tests`.

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;

use super::wire::{self, Packet, PacketError};
use super::*;
use crate::testutil::unhex as hex;
use crate::time::{Duration, Instant};

type Conn = BorrowedConnection<'static, 8, 4>;

fn leak(n: usize) -> &'static mut [u8] {
    Box::leak(vec![0xa5u8; n].into_boxed_slice())
}

fn conn() -> Conn {
    conn_with(1024, 1024, |_| {})
}

fn conn_with(rx: usize, tx: usize, f: impl FnOnce(&mut BorrowedConfig)) -> Conn {
    let mut c = BorrowedConfig::default();
    f(&mut c);
    BorrowedConnection::new(c, leak(rx), leak(tx)).unwrap()
}

/// An owned copy of a [`BorrowedEvent`], for comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Request(u64, u64, u64, u64, Vec<u8>),
    Response(u64, u64, bool, u64, Vec<u8>),
    Cancelled(u64, u64),
    TimedOut(u64, u64),
    PeerErq,
    PeerClosed(PeerCloseReason),
    Unknown(u64, u64),
    Protocol(ProtocolError),
    Closed,
}

fn own(e: BorrowedEvent<'_>) -> Ev {
    match e {
        BorrowedEvent::RequestReceived {
            channel,
            tag,
            rq_type,
            flags,
            payload,
        } => Ev::Request(channel, tag, rq_type, flags, payload.to_vec()),
        BorrowedEvent::ResponseReceived {
            channel,
            tag,
            ok,
            flags,
            payload,
        } => Ev::Response(channel, tag, ok, flags, payload.to_vec()),
        BorrowedEvent::RequestCancelled { channel, tag } => Ev::Cancelled(channel, tag),
        BorrowedEvent::RequestTimedOut { channel, tag } => Ev::TimedOut(channel, tag),
        BorrowedEvent::PeerEndedRequests => Ev::PeerErq,
        BorrowedEvent::PeerClosed { reason } => Ev::PeerClosed(reason),
        BorrowedEvent::UnknownResponse { channel, tag } => Ev::Unknown(channel, tag),
        BorrowedEvent::ProtocolError(e) => Ev::Protocol(e),
        BorrowedEvent::Closed => Ev::Closed,
    }
}

fn rq(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: &[u8]) -> Ev {
    Ev::Request(channel, tag, rq_type, flags, payload.to_vec())
}

fn rs(channel: u64, tag: u64, ok: bool, flags: u64, payload: &[u8]) -> Ev {
    Ev::Response(channel, tag, ok, flags, payload.to_vec())
}

fn events<const P: usize, const I: usize, const C: usize, const T: usize>(
    c: &mut BorrowedConnection<'_, P, I, C, T>,
) -> Vec<Ev> {
    let mut v = Vec::new();
    while let Some(e) = c.poll_event() {
        v.push(own(e));
    }
    v
}

fn feed<const P: usize, const I: usize, const C: usize, const T: usize>(
    c: &mut BorrowedConnection<'_, P, I, C, T>,
    bytes: &[u8],
) {
    assert_eq!(c.handle_input(bytes), Ok(bytes.len()));
}

fn out<const P: usize, const I: usize, const C: usize, const T: usize>(
    c: &mut BorrowedConnection<'_, P, I, C, T>,
) -> Vec<u8> {
    let v = c.poll_transmit().unwrap_or(&[]).to_vec();
    assert_eq!(v.len(), c.transmit_len());
    c.advance_transmit(v.len());
    v
}

fn enc(p: &Packet<'_>) -> Vec<u8> {
    let mut v = vec![0; p.encoded_len()];
    p.encode(&mut v).unwrap();
    v
}

fn req(channel: u64, tag: u64, rq_type: u64, flags: u64, payload: &[u8]) -> Vec<u8> {
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

const T0: Instant = Instant::ZERO;

// ----- golden bytes (WIRE.md §2) -----

#[test]
fn requests_golden_tags_start_at_2() {
    let mut c = conn();
    assert_eq!(c.next_tag(0), Some(2));
    assert_eq!(c.submit(0, 0, 0, b"hello", T0, None), Ok(2));
    assert_eq!(c.submit(0, 1, 3, b"abc", T0, None), Ok(3));
    assert_eq!(
        c.poll_transmit(),
        Some(&hex("08 02 02 01 68656c6c6f  06 03 0e 02 616263")[..])
    );
    // A partial write: the rest stays queued, in order.
    c.advance_transmit(4);
    assert_eq!(out(&mut c), hex("68656c6c6f 06030e02616263"));
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.stats().requests_sent, 2);
    assert_eq!(c.stats().bytes_sent, 16);
    assert_eq!(c.pending_outbound(), 2);
    assert!(c.is_pending(0, 2) && c.is_pending(0, 3) && !c.is_pending(0, 4));
}

#[test]
fn channel_request_golden() {
    let mut c = conn();
    c.open_channel(5).unwrap();
    c.submit(5, 0, 0, b"", T0, None).unwrap();
    c.submit(5, 0, 0, b"", T0, None).unwrap();
    c.submit(5, 0, 0, b"", T0, None).unwrap();
    // Tag 2 on channel 5 is the third: tags count from 0 on other channels.
    let bytes = out(&mut c);
    assert!(bytes.ends_with(&hex("04 02 03 05 01")));
    assert!(bytes.starts_with(&hex("04 00 03 05 01")));
    let mut c = conn();
    c.open_channel(5).unwrap();
    for _ in 0..2 {
        c.submit(5, 0, 0, b"", T0, None).unwrap();
    }
    let _ = out(&mut c);
    c.submit(5, 0, 0, b"x", T0, None).unwrap();
    assert_eq!(out(&mut c), hex("05 02 03 05 01 78"));
}

#[test]
fn responses_golden() {
    let mut s = conn();
    feed(&mut s, &req(0, 2, 0, 0, b"hello"));
    feed(&mut s, &req(0, 12, 0, 63, b"f"));
    feed(&mut s, &req(0, 5, 0, 0, b""));
    feed(&mut s, &req(0, 300, 0, 0, b""));
    assert_eq!(
        events(&mut s),
        vec![
            rq(0, 2, 0, 0, b"hello"),
            rq(0, 12, 0, 63, b"f"),
            rq(0, 5, 0, 0, b""),
            rq(0, 300, 0, 0, b""),
        ]
    );
    s.respond(0, 2, 0, b"hello").unwrap();
    assert_eq!(out(&mut s), hex("07 02 04 68656c6c6f"));
    s.respond(0, 12, 63, b"f").unwrap();
    assert_eq!(out(&mut s), hex("04 0c 83 7c 66"));
    s.reject(0, 5, reason::EXCEPTION_DURING_HANDLER).unwrap();
    assert_eq!(
        out(&mut s),
        hex("1a 05 00 657863657074696f6e20647572696e672068616e646c6572")
    );
    let payload: Vec<u8> = (0..200u8).collect();
    s.respond(0, 300, 0, &payload).unwrap();
    assert_eq!(out(&mut s), cat(&[&hex("81 4b 82 2c 04"), &payload]));
    // The fifth request came after four were in flight: it was held back
    // until now.
    feed(&mut s, &req(0, 3, 9, 0, b""));
    assert_eq!(events(&mut s), vec![rq(0, 3, 9, 0, b"")]);
    s.respond(0, 3, 7, b"flags").unwrap();
    assert_eq!(out(&mut s), hex("07 03 3c 666c616773"));
    assert_eq!(s.inflight_inbound(), 0);
    assert_eq!(
        s.respond(0, 3, 0, b""),
        Err(RespondError::NotInFlight { channel: 0, tag: 3 })
    );
    assert_eq!(s.stats().responses_sent, 5);
}

#[test]
fn erq_and_eof_golden() {
    let mut c = conn();
    c.end_requests();
    c.end_requests();
    assert_eq!(out(&mut c), wire::ERQ_BYTES);
    assert_eq!(
        c.submit(0, 0, 0, b"", T0, None),
        Err(SubmitError::RequestsEnded)
    );
    c.close();
    assert_eq!(out(&mut c), wire::EOF_BYTES);
    let mut c = conn();
    c.close();
    assert_eq!(c.state(), State::Closing);
    assert_eq!(out(&mut c), hex("03010200 03000200"));
    assert!(c.eof_queued() && c.requests_ended());
}

// ----- shutdown sequences of the original -----

#[test]
fn server_shutdown_matches_the_original() {
    // WIRE.md: [request tag 30 (slow), ERQ, EOF] → ERQ, response, EOF.
    let mut s = conn();
    feed(
        &mut s,
        &cat(&[&req(0, 30, 0, 0, b"x"), &wire::ERQ_BYTES, &wire::EOF_BYTES]),
    );
    assert_eq!(
        events(&mut s),
        vec![
            rq(0, 30, 0, 0, b"x"),
            Ev::PeerErq,
            Ev::PeerClosed(PeerCloseReason::EofPacket)
        ]
    );
    assert_eq!(s.state(), State::Closing);
    assert_eq!(out(&mut s), wire::ERQ_BYTES, "ERQ first, EOF waits");
    s.respond(0, 30, 0, b"slow").unwrap();
    assert_eq!(out(&mut s), hex("061e04736c6f77 03000200"));
    assert_eq!(events(&mut s), vec![Ev::Closed]);
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn client_shutdown_waits_for_peer_eof() {
    let mut c = conn();
    let tag = c.submit(0, 0, 0, b"q", T0, None).unwrap();
    c.close();
    assert_eq!(
        out(&mut c),
        cat(&[&req(0, 2, 0, 0, b"q"), &hex("03010200 03000200")])
    );
    assert_eq!(events(&mut c), vec![]);
    feed(
        &mut c,
        &cat(&[&resp(0, tag, true, 0, b"a"), &hex("03010200 03000200")]),
    );
    assert_eq!(
        events(&mut c),
        vec![
            rs(0, 2, true, 0, b"a"),
            Ev::PeerErq,
            Ev::PeerClosed(PeerCloseReason::EofPacket),
            Ev::Closed,
        ]
    );
}

#[test]
fn closed_needs_eof_transmitted() {
    let mut c = conn();
    c.close();
    feed(&mut c, &wire::EOF_BYTES);
    assert_eq!(
        events(&mut c),
        vec![Ev::PeerClosed(PeerCloseReason::EofPacket)]
    );
    assert_eq!(c.transmit_len(), 8);
    c.advance_transmit(7);
    assert_eq!(events(&mut c), vec![]);
    let mut last = [0u8; 4];
    assert_eq!(c.fill_transmit(&mut last), 1);
    assert_eq!(last[0], 0x00);
    assert_eq!(events(&mut c), vec![Ev::Closed]);
}

#[test]
fn bytes_after_peer_eof_are_ignored() {
    let mut c = conn();
    let input = cat(&[&wire::EOF_BYTES, &req(0, 2, 0, 0, b"late")]);
    feed(&mut c, &input);
    feed(&mut c, b"\xff\xff\xff anything");
    assert_eq!(
        events(&mut c),
        vec![Ev::PeerClosed(PeerCloseReason::EofPacket)]
    );
    assert_eq!(c.stats().bytes_ignored, (input.len() - 4 + 12) as u64);
    assert_eq!(out(&mut c), hex("03010200 03000200"));
    c.handle_eof();
    assert_eq!(events(&mut c), vec![Ev::Closed]);
    assert_eq!(c.handle_input(b"x"), Err(InputError::AfterTransportEof));
}

#[test]
fn transport_eof_cancels_in_channel_tag_order() {
    let mut c = conn();
    c.open_channel(4).unwrap();
    c.submit(4, 0, 0, b"c", T0, None).unwrap();
    c.submit(0, 0, 0, b"a", T0, Some(Duration::from_secs(5)))
        .unwrap();
    c.submit(0, 0, 0, b"b", T0, None).unwrap();
    let _ = out(&mut c);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        vec![
            Ev::PeerClosed(PeerCloseReason::TransportEof),
            Ev::Cancelled(0, 2),
            Ev::Cancelled(0, 3),
            Ev::Cancelled(4, 0),
        ]
    );
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.stats().cancelled, 3);
    assert_eq!(c.submit(0, 0, 0, b"", T0, None), Err(SubmitError::PeerGone));
    assert_eq!(out(&mut c), hex("03010200 03000200"));
    assert_eq!(events(&mut c), vec![Ev::Closed]);
}

#[test]
fn transport_eof_inside_a_packet_is_truncation() {
    let mut c = conn();
    c.submit(0, 0, 0, b"", T0, None).unwrap();
    let r = resp(0, 2, true, 0, b"hello");
    feed(&mut c, &r[..4]);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        vec![
            Ev::Protocol(ProtocolError::Truncated {
                have: 4,
                need: Some(r.len())
            }),
            Ev::Cancelled(0, 2),
        ]
    );
    assert!(c.protocol_error().is_some());
    let mut c = conn();
    feed(&mut c, &[0x81]);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        vec![Ev::Protocol(ProtocolError::Truncated {
            have: 1,
            need: None
        })]
    );
    assert_eq!(out(&mut c), hex("03010200 03000200"));
}

// ----- failure reasons -----

#[test]
fn no_request_handler_needs_no_inflight_slots() {
    let mut c = BorrowedConnection::<'_, 1, 0>::new(
        BorrowedConfig {
            accept_requests: false,
            ..BorrowedConfig::default()
        },
        leak(64),
        leak(128),
    )
    .unwrap();
    feed(&mut c, &req(0, 2, 0, 0, b"x"));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(
        out(&mut c),
        hex("1402006e6f20726571756573742068616e646c6572")
    );
    assert_eq!(c.stats().requests_refused, 1);
}

#[test]
fn requests_no_longer_allowed_after_peer_erq() {
    let mut c = conn();
    feed(&mut c, &wire::ERQ_BYTES);
    feed(&mut c, &wire::ERQ_BYTES);
    feed(&mut c, &req(0, 2, 0, 0, b"x"));
    assert_eq!(events(&mut c), vec![Ev::PeerErq]);
    assert!(c.peer_ended_requests());
    assert_eq!(out(&mut c), fail(0, 2, "requests no longer allowed"));
    assert_eq!(c.submit(0, 0, 0, b"", T0, None), Ok(2));
}

#[test]
fn unknown_channel_is_literal() {
    let mut c = conn();
    feed(&mut c, &req(5, 2, 0, 0, b"x"));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(
        out(&mut c),
        hex("15 02 01 05 756e6b6e6f776e206368616e6e656c202564")
    );
}

#[test]
fn duplicate_inflight_tag_refused_and_original_still_answered() {
    let mut c = conn();
    feed(&mut c, &req(0, 7, 0, 0, b"first"));
    feed(&mut c, &req(0, 7, 0, 0, b"second"));
    assert_eq!(events(&mut c), vec![rq(0, 7, 0, 0, b"first")]);
    assert_eq!(out(&mut c), fail(0, 7, "channel 0: tag already in use: 7"));
    c.respond(0, 7, 0, b"ok").unwrap();
    assert_eq!(out(&mut c), resp(0, 7, true, 0, b"ok"));
    assert_eq!(c.stats().tags_reused, 1);
}

#[test]
fn tag_reused_after_completion_is_refused() {
    let mut c = conn();
    c.open_channel(3).unwrap();
    feed(&mut c, &req(3, 9, 0, 0, b""));
    let _ = events(&mut c);
    c.respond(3, 9, 0, b"").unwrap();
    let _ = out(&mut c);
    feed(&mut c, &req(3, 9, 0, 0, b""));
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(out(&mut c), fail(3, 9, "channel 3: tag already in use: 9"));
    feed(&mut c, &req(0, 9, 0, 0, b""));
    assert_eq!(events(&mut c), vec![rq(0, 9, 0, 0, b"")]);
    // The longest text fits the smallest transmit buffer.
    let big = req(u64::MAX, u64::MAX, 0, 0, b"");
    let refused_again = |rx: usize| {
        let mut c = conn_with(rx, MIN_TRANSMIT_BUFFER, |_| {});
        c.open_channel(u64::MAX).unwrap();
        feed(&mut c, &big);
        let _ = events(&mut c);
        c.respond(u64::MAX, u64::MAX, 0, b"").unwrap();
        let _ = out(&mut c);
        feed(&mut c, &big);
        out(&mut c)
    };
    let text = "channel 18446744073709551615: tag already in use: 18446744073709551615";
    let refusal = refused_again(128);
    assert_eq!(refusal, fail(u64::MAX, u64::MAX, text));
    assert_eq!(refusal.len() + 8, MIN_TRANSMIT_BUFFER);
    // With a packet limit of 64 (the receive buffer), the text is cut so the
    // failure fits it: a peer with the same limit still reads it.
    let refusal = refused_again(64);
    assert_eq!(refusal.len(), 64);
    assert_eq!(refusal, fail(u64::MAX, u64::MAX, &text[..64 - 22]));
}

#[test]
fn tags_0_and_1_with_a_real_type_are_ordinary_requests() {
    let mut c = conn();
    feed(
        &mut c,
        &cat(&[&req(0, 0, 0, 0, b""), &req(0, 1, 4, 0, b"")]),
    );
    assert_eq!(
        events(&mut c),
        vec![rq(0, 0, 0, 0, b""), rq(0, 1, 4, 0, b"")]
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
    c.respond(0, 2, 0, b"").unwrap();
    assert_eq!(
        out(&mut c),
        cat(&[&resp(0, 2, true, 0, b""), &wire::EOF_BYTES])
    );
    feed(&mut c, &req(0, 4, 0, 0, b""));
    assert_eq!(out(&mut c), b"");
    assert_eq!(c.stats().requests_dropped, 1);
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
        c.submit(0, 0, 0, b"", T0, None).unwrap();
        let _ = out(&mut c);
        feed(
            &mut c,
            &cat(&[&enc(&bad), &req(0, 9, 0, 0, b"never served")]),
        );
        assert_eq!(
            events(&mut c),
            vec![
                Ev::Protocol(ProtocolError::MalformedMarker {
                    channel: 0,
                    tag: bad.tag()
                }),
                Ev::Cancelled(0, 2),
            ]
        );
        assert_eq!(out(&mut c), hex("03010200 03000200"));
        assert_eq!(events(&mut c), vec![Ev::Closed]);
        assert!(matches!(
            c.handle_input(b"x"),
            Err(InputError::Failed(ProtocolError::MalformedMarker { .. }))
        ));
    }
}

#[test]
fn packet_limit_is_the_receive_buffer() {
    let mut c = conn_with(100, 128, |_| {});
    assert_eq!(c.max_packet_len(), 100);
    feed(&mut c, &[0x81, 0x00]);
    assert_eq!(
        events(&mut c),
        vec![Ev::Protocol(ProtocolError::Packet(PacketError::TooLong {
            len: 130,
            max: 100
        }))]
    );
    assert_eq!(c.receive_buffered(), 0);
    // A packet of exactly the buffer's length gets through.
    let mut c = conn_with(100, 128, |_| {});
    let p = req(0, 2, 0, 0, &[7; 96]);
    assert_eq!(p.len(), 100);
    feed(&mut c, &p);
    assert_eq!(events(&mut c), vec![rq(0, 2, 0, 0, &[7; 96])]);
    // A smaller configured limit.
    let mut c = conn_with(100, 128, |c| c.max_packet_len = Some(10));
    assert_eq!(
        c.submit(0, 0, 0, &[0; 7], T0, None),
        Err(SubmitError::PayloadTooLong { len: 11, max: 10 })
    );
}

#[test]
fn tag_bound() {
    let mut c = conn_with(256, 256, |c| c.max_tag = 3);
    feed(
        &mut c,
        &cat(&[&req(0, 3, 0, 0, b""), &req(0, 4, 0, 0, b"")]),
    );
    assert_eq!(
        events(&mut c),
        vec![
            rq(0, 3, 0, 0, b""),
            Ev::Protocol(ProtocolError::TagTooLarge { tag: 4, max: 3 })
        ]
    );
    let mut c = conn_with(256, 256, |c| c.max_tag = 3);
    assert_eq!(c.submit(0, 0, 0, b"", T0, None), Ok(2));
    assert_eq!(c.submit(0, 0, 0, b"", T0, None), Ok(3));
    assert_eq!(
        c.submit(0, 0, 0, b"", T0, None),
        Err(SubmitError::TagsExhausted { channel: 0 })
    );
    let mut c = conn_with(256, 256, |c| c.max_tag = 0);
    feed(&mut c, &wire::ERQ_BYTES);
    assert_eq!(events(&mut c), vec![Ev::PeerErq]);
}

// ----- responses -----

#[test]
fn responses_route_by_channel_and_tag_in_any_order() {
    let mut c = conn();
    c.open_channel(9).unwrap();
    let a = c.submit(0, 0, 0, b"a", T0, None).unwrap();
    let b = c.submit(9, 0, 0, b"b", T0, None).unwrap();
    let d = c.submit(0, 0, 0, b"d", T0, None).unwrap();
    assert_eq!((a, b, d), (2, 0, 3));
    feed(
        &mut c,
        &cat(&[
            &resp(0, d, false, 0, b"bad"),
            &resp(9, b, true, 5, b"B"),
            &resp(0, a, true, 0, b"A"),
        ]),
    );
    assert_eq!(
        events(&mut c),
        vec![
            rs(0, 3, false, 0, b"bad"),
            rs(9, 0, true, 5, b"B"),
            rs(0, 2, true, 0, b"A")
        ]
    );
    assert_eq!(c.pending_outbound(), 0);
}

#[test]
fn unknown_responses_beyond_the_queue_pause_parsing() {
    let mut c = conn();
    c.submit(0, 0, 0, b"", T0, None).unwrap();
    let _ = out(&mut c);
    let mut input = Vec::new();
    for tag in 100..110 {
        input.extend(resp(0, tag, true, 0, b""));
    }
    input.extend(resp(0, 2, true, 0, b"mine"));
    input.extend(req(7, 1, 0, 0, b"")); // refused: unknown channel
    feed(&mut c, &input);
    // Parsing paused after the queue filled; nothing else happened yet.
    assert_eq!(c.poll_transmit(), None);
    assert!(c.receive_buffered() > 0);
    let mut expect: Vec<Ev> = (100..110).map(|t| Ev::Unknown(0, t)).collect();
    expect.push(rs(0, 2, true, 0, b"mine"));
    assert_eq!(events(&mut c), expect);
    assert_eq!(c.stats().unknown_responses, 10);
    assert_eq!(out(&mut c), fail(7, 1, "unknown channel %d"));
    assert_eq!(c.receive_buffered(), 0);
}

#[test]
fn abandon_forgets_a_request() {
    let mut c = conn();
    let t = c
        .submit(0, 0, 0, b"", T0, Some(Duration::from_secs(1)))
        .unwrap();
    assert!(c.abandon(0, t));
    assert!(!c.abandon(0, t));
    assert_eq!(c.poll_timeout(), None);
    feed(&mut c, &resp(0, t, true, 0, b""));
    assert_eq!(events(&mut c), vec![Ev::Unknown(0, t)]);
}

// ----- channels -----

#[test]
fn channels_are_opt_in_and_bounded() {
    let mut c =
        BorrowedConnection::<'_, 4, 4, 2>::new(BorrowedConfig::default(), leak(256), leak(256))
            .unwrap();
    assert!(c.is_channel_open(0));
    assert_eq!(
        c.submit(1, 0, 0, b"", T0, None),
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
    assert_eq!(c.next_tag(3), None);
    assert_eq!(c.submit(2, 0, 0, b"x", T0, None), Ok(0));
    assert_eq!(out(&mut c), req(2, 0, 0, 0, b"x"));
    feed(&mut c, &req(1, 0, 0, 0, b"y"));
    assert_eq!(events(&mut c), vec![rq(1, 0, 0, 0, b"y")]);
    c.respond(1, 0, 0, b"").unwrap();
    assert_eq!(out(&mut c), hex("03 00 05 01"));
}

// ----- limits -----

#[test]
fn pending_outbound_limit() {
    let mut c =
        BorrowedConnection::<'_, 2, 1>::new(BorrowedConfig::default(), leak(128), leak(128))
            .unwrap();
    c.submit(0, 0, 0, b"", T0, None).unwrap();
    c.submit(0, 0, 0, b"", T0, None).unwrap();
    assert_eq!(
        c.submit(0, 0, 0, b"", T0, None),
        Err(SubmitError::TooManyPending { max: 2 })
    );
    assert_eq!(c.next_tag(0), Some(4));
    feed(&mut c, &resp(0, 2, true, 0, b""));
    // The slot is reused once the response event has been polled.
    assert_eq!(
        c.submit(0, 0, 0, b"", T0, None),
        Err(SubmitError::TooManyPending { max: 2 })
    );
    assert_eq!(events(&mut c), vec![rs(0, 2, true, 0, b"")]);
    assert_eq!(c.submit(0, 0, 0, b"", T0, None), Ok(4));
    // A pure server.
    let mut s = BorrowedConnection::<'_, 0, 1>::new(BorrowedConfig::default(), leak(64), leak(128))
        .unwrap();
    assert_eq!(
        s.submit(0, 0, 0, b"", T0, None),
        Err(SubmitError::TooManyPending { max: 0 })
    );
}

#[test]
fn transmit_buffer_is_a_hard_limit_with_room_for_markers() {
    let mut c = BorrowedConnection::<'_, 16, 4>::new(
        BorrowedConfig::default(),
        leak(256),
        leak(MIN_TRANSMIT_BUFFER),
    )
    .unwrap();
    // 100 - 8 reserved = 92 free: 6 requests of 14 bytes fit (84), the 7th
    // does not.
    for _ in 0..6 {
        c.submit(0, 0, 0, b"0123456789", T0, None).unwrap();
    }
    assert_eq!(
        c.submit(0, 0, 0, b"0123456789", T0, None),
        Err(SubmitError::NoRoom {
            required: 14,
            free: 8
        })
    );
    assert_eq!(c.next_tag(0), Some(8), "no tag used by the refused submit");
    // A refusal the connection owes waits for room; parsing stops there.
    feed(
        &mut c,
        &cat(&[&req(5, 2, 0, 0, b""), &resp(0, 2, true, 0, b"")]),
    );
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.transmit_len(), 84);
    // Writing out makes room: parsing resumes by itself.
    c.advance_transmit(28);
    assert_eq!(events(&mut c), vec![rs(0, 2, true, 0, b"")]);
    assert!(out(&mut c).ends_with(&fail(5, 2, "unknown channel %d")));
    // ERQ and EOF always fit, however full the buffer is.
    for _ in 0..6 {
        c.submit(0, 0, 0, b"0123456789", T0, None).unwrap();
    }
    assert_eq!(c.transmit_len(), 84);
    c.close();
    assert_eq!(c.transmit_len(), 92);
    assert!(out(&mut c).ends_with(&hex("03010200 03000200")));
    // A request refused after our EOF was queued is dropped.
    feed(&mut c, &req(5, 3, 0, 0, b""));
    assert_eq!(c.stats().requests_dropped, 1);
    assert_eq!(c.poll_transmit(), None);
    // Responses that do not fit wait too.
    let mut s = conn_with(256, MIN_TRANSMIT_BUFFER, |_| {});
    feed(&mut s, &req(0, 2, 0, 0, b""));
    let _ = events(&mut s);
    assert_eq!(
        s.respond(0, 2, 0, &[1; 90]),
        Err(RespondError::NoRoom {
            required: 93,
            free: 92
        })
    );
    assert!(s.is_inflight(0, 2));
    s.respond(0, 2, 0, &[1; 89]).unwrap();
    assert_eq!(s.transmit_len(), 92);
}

#[test]
fn inflight_limit_is_backpressure() {
    let mut c =
        BorrowedConnection::<'_, 4, 2>::new(BorrowedConfig::default(), leak(256), leak(256))
            .unwrap();
    c.submit(0, 0, 0, b"", T0, None).unwrap();
    let mut input = Vec::new();
    for tag in 10..14 {
        input.extend(req(0, tag, 0, 0, b"r"));
    }
    input.extend(resp(0, 2, true, 0, b""));
    feed(&mut c, &input);
    assert_eq!(
        events(&mut c),
        vec![rq(0, 10, 0, 0, b"r"), rq(0, 11, 0, 0, b"r")]
    );
    assert_eq!(c.receive_buffered(), input.len() - 2 * 5);
    c.respond(0, 11, 0, b"").unwrap();
    assert_eq!(events(&mut c), vec![rq(0, 12, 0, 0, b"r")]);
    c.reject(0, 10, "x").unwrap();
    c.respond(0, 12, 0, b"").unwrap();
    assert_eq!(
        events(&mut c),
        vec![rq(0, 13, 0, 0, b"r"), rs(0, 2, true, 0, b"")]
    );
}

#[test]
fn receive_buffer_full_takes_fewer_bytes() {
    let mut c = BorrowedConnection::<'_, 4, 1>::new(BorrowedConfig::default(), leak(40), leak(128))
        .unwrap();
    let mut input = Vec::new();
    for tag in 2..40 {
        input.extend(req(0, tag, 0, 0, b"0123456789"));
    }
    let taken = c.handle_input(&input).unwrap();
    assert_eq!(taken, 40);
    assert_eq!(c.handle_input(&input[taken..]), Ok(0));
    assert_eq!(c.receive_used(), 40);
    let mut pos = taken;
    let mut seen = Vec::new();
    loop {
        let evs = events(&mut c);
        if evs.is_empty() && pos == input.len() && c.receive_buffered() == 0 {
            break;
        }
        for e in evs {
            let Ev::Request(0, tag, 0, 0, payload) = e else {
                panic!("{e:?}")
            };
            assert_eq!(payload, b"0123456789");
            seen.push(tag);
            c.respond(0, tag, 0, b"").unwrap();
            let _ = out(&mut c);
        }
        pos += c.handle_input(&input[pos..]).unwrap();
    }
    assert_eq!(seen, (2..40).collect::<Vec<u64>>());
}

#[test]
fn payloads_stay_valid_while_later_packets_arrive() {
    // Unpolled events keep their packets; the buffer wraps around them.
    let mut c = BorrowedConnection::<'_, 8, 2>::new(BorrowedConfig::default(), leak(48), leak(256))
        .unwrap();
    for _ in 0..4 {
        c.submit(0, 0, 0, b"", T0, None).unwrap();
    }
    let _ = out(&mut c);
    let mut input = Vec::new();
    for (i, tag) in (2..6).enumerate() {
        input.extend(resp(0, tag, true, 0, &[i as u8; 10]));
    }
    let mut pos = c.handle_input(&input).unwrap();
    assert_eq!(pos, 48);
    let mut got = Vec::new();
    while got.len() < 4 {
        if let Some(e) = c.poll_event() {
            got.push(own(e));
        }
        pos += c.handle_input(&input[pos..]).unwrap();
    }
    for (i, e) in got.into_iter().enumerate() {
        assert_eq!(e, rs(0, 2 + i as u64, true, 0, &[i as u8; 10]));
    }
}

#[test]
fn remembered_tags_are_bounded() {
    let mut c =
        BorrowedConnection::<'_, 1, 1, 1, 4>::new(BorrowedConfig::default(), leak(256), leak(256))
            .unwrap();
    for tag in (2..40).step_by(2) {
        feed(&mut c, &req(0, tag, 0, 0, b""));
        let _ = events(&mut c);
        c.respond(0, tag, 0, b"").unwrap();
        assert!(c.remembered_tags() <= 4);
    }
    assert_eq!(c.remembered_tags(), 4);
    assert!(c.stats().tags_forgotten > 0);
    let _ = out(&mut c);
    feed(&mut c, &req(0, 3, 0, 0, b""));
    assert_eq!(out(&mut c), fail(0, 3, "channel 0: tag already in use: 3"));
    feed(&mut c, &req(0, 37, 0, 0, b""));
    assert_eq!(events(&mut c), vec![rq(0, 37, 0, 0, b"")]);
    // Counting up costs nothing.
    let mut c =
        BorrowedConnection::<'_, 1, 1, 1, 1>::new(BorrowedConfig::default(), leak(256), leak(256))
            .unwrap();
    for tag in 0..100 {
        feed(&mut c, &req(0, tag, 0, 0, b""));
        let _ = events(&mut c);
        c.respond(0, tag, 0, b"").unwrap();
        let _ = out(&mut c);
    }
    assert_eq!(c.remembered_tags(), 0);
    assert_eq!(c.stats().tags_forgotten, 0);
}

#[test]
fn config_is_validated() {
    let new = |c: BorrowedConfig, rx: usize, tx: usize| {
        BorrowedConnection::<'_, 1, 1>::new(c, leak(rx), leak(tx)).err()
    };
    let d = BorrowedConfig::default();
    assert_eq!(
        new(
            BorrowedConfig {
                max_packet_len: Some(65),
                ..d
            },
            64,
            128
        ),
        Some(ConfigError::ReceiveBufferTooSmall {
            max_receive_buffer: 64,
            max_packet_len: 65
        })
    );
    // Under the EOF/ERQ markers' 4 bytes, from the receive buffer or the
    // configured limit.
    for len in 0..MIN_MAX_PACKET_LEN {
        let err = Some(ConfigError::PacketLimitTooSmall {
            max_packet_len: len,
            min: MIN_MAX_PACKET_LEN,
        });
        assert_eq!(new(d, len, 128), err);
        let limited = BorrowedConfig {
            max_packet_len: Some(len),
            ..d
        };
        assert_eq!(new(limited, 64, 128), err);
    }
    assert_eq!(new(d, MIN_MAX_PACKET_LEN, 128), None);
    let least = BorrowedConfig {
        max_packet_len: Some(MIN_MAX_PACKET_LEN),
        ..d
    };
    assert_eq!(new(least, 64, 128), None);
    assert_eq!(
        new(d, 64, 99),
        Some(ConfigError::TransmitBufferTooSmall { len: 99, min: 100 })
    );
    assert_eq!(
        BorrowedConnection::<'_, 1, 0>::new(d, leak(64), leak(128)).err(),
        Some(ConfigError::Zero {
            field: "MAX_INFLIGHT"
        })
    );
    assert_eq!(new(d, 64, 100), None);
}

/// Moves bytes both ways in `chunk`-byte pieces, polling events after
/// every piece, until nothing moves; returns each side's events and bytes
/// sent.
fn shuttle<const P: usize, const I: usize>(
    a: &mut BorrowedConnection<'_, P, I>,
    b: &mut BorrowedConnection<'_, P, I>,
    chunk: usize,
    log: &mut [(Vec<Ev>, Vec<u8>); 2],
) {
    fn one_way<const P: usize, const I: usize>(
        from: &mut BorrowedConnection<'_, P, I>,
        to: &mut BorrowedConnection<'_, P, I>,
        chunk: usize,
        sent: &mut Vec<u8>,
        to_events: &mut Vec<Ev>,
    ) -> bool {
        let Some(q) = from.poll_transmit() else {
            return false;
        };
        let piece = q[..q.len().min(chunk)].to_vec();
        let n = to.handle_input(&piece).unwrap();
        from.advance_transmit(n);
        sent.extend_from_slice(&piece[..n]);
        to_events.extend(events(to));
        n > 0
    }
    let [(a_events, a_sent), (b_events, b_sent)] = log;
    for _ in 0..1000 {
        a_events.extend(events(a));
        b_events.extend(events(b));
        let ab = one_way(a, b, chunk, a_sent, b_events);
        let ba = one_way(b, a, chunk, b_sent, a_events);
        if !ab && !ba {
            a_events.extend(events(a));
            b_events.extend(events(b));
            return;
        }
    }
    panic!("the connections did not settle");
}

/// The least packet limit is the whole receive buffer on both ends:
/// requests, responses, the connection's own refusals (cut to the limit),
/// over-limit packets refused with their numbers, and the orderly close
/// work end to end.
#[test]
fn pair_with_the_least_packet_limit() {
    type Tiny = BorrowedConnection<'static, 2, 1>;
    let mut client = Tiny::new(
        BorrowedConfig {
            accept_requests: false,
            ..BorrowedConfig::default()
        },
        leak(MIN_MAX_PACKET_LEN),
        leak(MIN_TRANSMIT_BUFFER),
    )
    .unwrap();
    let mut server = Tiny::new(
        BorrowedConfig::default(),
        leak(MIN_MAX_PACKET_LEN),
        leak(MIN_TRANSMIT_BUFFER),
    )
    .unwrap();
    assert_eq!(client.max_packet_len(), MIN_MAX_PACKET_LEN);
    let now = Instant::from_millis(0);
    let mut log: [(Vec<Ev>, Vec<u8>); 2] = Default::default();
    assert_eq!(
        client.submit(0, 0, 0, b"x", now, None),
        Err(SubmitError::PayloadTooLong { len: 5, max: 4 })
    );
    assert_eq!(client.submit(0, 0, 0, b"", now, None), Ok(2));
    shuttle(&mut client, &mut server, 3, &mut log);
    assert_eq!(log[1].0, vec![rq(0, 2, 0, 0, b"")]);
    assert_eq!(
        server.respond(0, 2, 0, b"yy"),
        Err(RespondError::PayloadTooLong { len: 5, max: 4 })
    );
    assert_eq!(server.respond(0, 2, 0, b"y"), Ok(()));
    // Refused by the client itself: "no request handler" cut to a byte.
    assert_eq!(server.submit(0, 5, 0, b"", now, None), Ok(2));
    shuttle(&mut client, &mut server, 3, &mut log);
    assert_eq!(log[0].0, vec![rs(0, 2, true, 0, b"y")]);
    assert_eq!(
        log[1].0,
        vec![rq(0, 2, 0, 0, b""), rs(0, 2, false, 0, b"n")]
    );
    client.close();
    shuttle(&mut client, &mut server, 3, &mut log);
    let closed = [
        Ev::PeerErq,
        Ev::PeerClosed(PeerCloseReason::EofPacket),
        Ev::Closed,
    ];
    assert_eq!(log[0].0[1..], closed);
    assert_eq!(log[1].0[2..], closed);
    assert_eq!(client.state(), State::Closed);
    assert_eq!(server.state(), State::Closed);
    assert_eq!(log[0].1, hex("03020201 0302006e 03010200 03000200"));
    assert_eq!(log[1].1, hex("03020479 03020206 03010200 03000200"));
    // Five bytes are too long for either, as soon as the prefix is read.
    let mut c = Tiny::new(
        BorrowedConfig::default(),
        leak(MIN_MAX_PACKET_LEN),
        leak(MIN_TRANSMIT_BUFFER),
    )
    .unwrap();
    feed(&mut c, &hex("04"));
    assert_eq!(
        events(&mut c),
        vec![Ev::Protocol(ProtocolError::Packet(PacketError::TooLong {
            len: 5,
            max: 4
        }))]
    );
}

// ----- timeouts -----

#[test]
fn timeouts_in_deadline_order() {
    let mut c = conn();
    let now = Instant::from_millis(1_000);
    let a = c
        .submit(0, 0, 0, b"", now, Some(Duration::from_millis(500)))
        .unwrap();
    let b = c
        .submit(0, 0, 0, b"", now, Some(Duration::from_millis(200)))
        .unwrap();
    let e = c
        .submit(0, 0, 0, b"", now, Some(Duration::from_millis(200)))
        .unwrap();
    let _nd = c.submit(0, 0, 0, b"", now, None).unwrap();
    assert_eq!(c.poll_timeout(), Some(Instant::from_millis(1_200)));
    c.handle_timeout(Instant::from_millis(1_199));
    assert_eq!(events(&mut c), vec![]);
    c.handle_timeout(Instant::from_millis(1_200));
    assert_eq!(events(&mut c), vec![Ev::TimedOut(0, b), Ev::TimedOut(0, e)]);
    assert_eq!(c.poll_timeout(), Some(Instant::from_millis(1_500)));
    feed(&mut c, &resp(0, a, true, 0, b""));
    assert_eq!(c.poll_timeout(), None);
    feed(&mut c, &resp(0, b, true, 0, b""));
    assert_eq!(
        events(&mut c),
        vec![rs(0, a, true, 0, b""), Ev::Unknown(0, b)]
    );
    assert_eq!(c.stats().timed_out, 2);
    c.handle_timeout(Instant::from_micros(u64::MAX));
    assert_eq!(events(&mut c), vec![], "no deadline never times out");
}

// ----- memory -----

#[test]
fn ram_formula_matches_the_type() {
    fn check<const P: usize, const I: usize, const C: usize, const T: usize>() {
        type B<'a, const P: usize, const I: usize, const C: usize, const T: usize> =
            BorrowedConnection<'a, P, I, C, T>;
        let formula = B::<P, I, C, T>::BASE_BYTES
            + P * PENDING_ENTRY_BYTES
            + I * INFLIGHT_ENTRY_BYTES
            + C * CHANNEL_ENTRY_BYTES
            + T * TAG_ENTRY_BYTES;
        assert_eq!(core::mem::size_of::<B<'_, P, I, C, T>>(), formula);
        assert_eq!(B::<P, I, C, T>::ram_bytes(512, 256), formula + 768);
    }
    check::<4, 4, 4, 16>();
    check::<8, 8, 4, 16>();
    check::<16, 16, 4, 16>();
    check::<32, 8, 4, 16>();
    check::<0, 1, 0, 0>();
    // The figures in the module documentation (the thumbv7em ones were
    // measured the same way, with `size_of` on that target).
    let figures = (
        PENDING_ENTRY_BYTES,
        INFLIGHT_ENTRY_BYTES,
        CHANNEL_ENTRY_BYTES,
        TAG_ENTRY_BYTES,
        BorrowedConnection::<'_, 4, 4>::BASE_BYTES,
        [
            BorrowedConnection::<'_, 4, 4>::ram_bytes(512, 512),
            BorrowedConnection::<'_, 8, 8>::ram_bytes(1024, 1024),
            BorrowedConnection::<'_, 16, 16>::ram_bytes(2048, 2048),
            BorrowedConnection::<'_, 32, 8>::ram_bytes(4096, 4096),
        ],
    );
    if cfg!(target_pointer_width = "64") {
        assert_eq!(figures, (56, 56, 32, 16, 480, [2336, 3808, 6752, 11296]));
    } else if cfg!(target_pointer_width = "32") {
        assert_eq!(figures, (48, 48, 32, 16, 408, [2200, 3608, 6424, 10904]));
    }
}

// ----- split invariance -----

fn scripted_input() -> Vec<u8> {
    let big: Vec<u8> = (0..=255u8).cycle().take(300).collect();
    cat(&[
        &req(0, 2, 0, 0, b"hello"),
        &req(0, 3, 1, 3, b"abc"),
        &req(5, 2, 0, 0, b"x"),
        &req(0, 3, 0, 0, b"dup"),
        &resp(0, 2, true, 0, b""),
        &resp(0, 42, true, 0, b"?"),
        &req(0, 300, 0, 63, &big),
        &req(0, 0, 0, 0, b"tag zero"),
        &wire::ERQ_BYTES,
        &req(0, 400, 0, 0, b"after erq"),
        &resp(0, 3, false, 0, b"exception during handler"),
        &wire::EOF_BYTES,
        b"ignored",
    ])
}

fn run_scripted(cuts: &[usize]) -> (Vec<Ev>, Vec<Vec<u8>>) {
    let mut c =
        BorrowedConnection::<'_, 4, 2>::new(BorrowedConfig::default(), leak(400), leak(400))
            .unwrap();
    c.submit(0, 0, 0, b"mine", T0, None).unwrap();
    c.submit(0, 0, 0, b"mine2", T0, None).unwrap();
    let input = scripted_input();
    let mut evs = Vec::new();
    let mut sent = Vec::new();
    let mut pos = 0;
    let mut cut_iter = cuts.iter().copied();
    while pos < input.len() {
        let want = cut_iter.next().unwrap_or(input.len()).max(1);
        let end = (pos + want).min(input.len());
        pos += c.handle_input(&input[pos..end]).unwrap();
        loop {
            sent.extend(out(&mut c));
            let new = events(&mut c);
            if new.is_empty() {
                break;
            }
            for e in &new {
                if let Ev::Request(channel, tag, ..) = e {
                    c.respond(*channel, *tag, 0, b"done").unwrap();
                }
            }
            evs.extend(new);
        }
    }
    c.handle_eof();
    evs.extend(events(&mut c));
    sent.extend(out(&mut c));
    evs.extend(events(&mut c));
    let mut packets = Vec::new();
    let mut rest = &sent[..];
    while let Some((_, n)) = Packet::parse(rest, &wire::ParseLimits::default()).unwrap() {
        packets.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
    (evs, packets)
}

#[test]
fn scripted_whole_and_byte_by_byte() {
    let (evs, sent) = run_scripted(&[]);
    let (evs1, sent1) = run_scripted(&vec![1; scripted_input().len()]);
    assert_eq!(evs, evs1);
    let (mut a, mut b) = (sent.clone(), sent1);
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(evs.last(), Some(&Ev::Closed));
    assert!(evs.contains(&Ev::Unknown(0, 42)));
    for r in [
        fail(5, 2, "unknown channel %d"),
        fail(0, 3, "channel 0: tag already in use: 3"),
        fail(0, 400, "requests no longer allowed"),
    ] {
        assert!(sent.contains(&r), "{r:02x?}");
    }
    assert_eq!(sent.last().unwrap(), &wire::EOF_BYTES);
}

proptest! {
    #[test]
    fn split_invariance(cuts in proptest::collection::vec(1usize..120, 0..40)) {
        let whole = run_scripted(&[]);
        let split = run_scripted(&cuts);
        prop_assert_eq!(&whole.0, &split.0);
        let (mut a, mut b) = (whole.1, split.1);
        prop_assert_eq!(a.last(), b.last());
        a.sort();
        b.sort();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(1usize..50, 0..20),
    ) {
        let mut c = BorrowedConnection::<'_, 2, 2, 1, 2>::new(
            BorrowedConfig { max_packet_len: Some(64), ..BorrowedConfig::default() },
            leak(128),
            leak(128),
        ).unwrap();
        c.open_channel(1).unwrap();
        let mut pos = 0;
        let mut cuts = cuts.into_iter();
        let mut stuck = 0;
        while pos < bytes.len() && stuck < 3 {
            let end = (pos + cuts.next().unwrap_or(bytes.len())).min(bytes.len());
            match c.handle_input(&bytes[pos..end]) {
                Ok(n) => { pos += n; stuck = if n == 0 { stuck + 1 } else { 0 }; }
                Err(_) => break,
            }
            prop_assert!(c.receive_used() <= 128);
            for e in events(&mut c) {
                if let Ev::Request(channel, tag, ..) = e {
                    c.respond(channel, tag, 0, b"").unwrap();
                }
            }
            let _ = out(&mut c);
        }
        c.handle_eof();
        let _ = events(&mut c);
        prop_assert!(c.state() != State::Open);
    }
}

#[test]
fn transport_lost_ends_a_connection_stalled_on_transmit_room() {
    // The transmit buffer fills with refusals nobody sends; the input behind
    // them waits. An EOF alone cannot end that (the half-closed peer might
    // still read); a lost transport does: the queue is dropped, the rest of
    // the input handled (the response still delivered, the refusals and the
    // request beyond the in-flight limit dropped), waiting requests cancelled.
    let mut c: BorrowedConnection<'static, 4, 1> = BorrowedConnection::new(
        BorrowedConfig::default(),
        leak(1024),
        leak(MIN_TRANSMIT_BUFFER),
    )
    .unwrap();
    let now = Instant::from_millis(0);
    let waiting = c.submit(0, 0, 0, b"w", now, None).unwrap();
    let answered = c.submit(0, 0, 0, b"a", now, None).unwrap();
    let mut input = Vec::new();
    for tag in 2..12 {
        input.extend(req(5, tag, 0, 0, b"")); // unknown channel: refused
    }
    input.extend(req(0, 2, 0, 0, b"x")); // takes the one in-flight slot
    input.extend(req(0, 3, 0, 0, b"y")); // over the in-flight limit
    input.extend(resp(0, answered, true, 0, b"A"));
    let taken = c.handle_input(&input).unwrap();
    assert_eq!(taken, input.len(), "all buffered");
    let _ = events(&mut c);
    c.handle_eof();
    let stalled = events(&mut c);
    assert!(
        !stalled.iter().any(|e| matches!(e, Ev::Cancelled(..))),
        "{stalled:?}"
    );
    assert!(c.receive_buffered() > 0, "the input waits for room");
    c.handle_transport_lost();
    let after = events(&mut c);
    assert!(
        after.contains(&Ev::Response(0, answered, true, 0, b"A".to_vec())),
        "{after:?}"
    );
    assert!(after.contains(&Ev::Cancelled(0, waiting)), "{after:?}");
    assert_eq!(c.transmit_len(), 0);
    assert_eq!(c.pending_outbound(), 0);
    assert!(c.stats().requests_dropped >= 1);
    c.handle_transport_lost();
    assert_eq!(events(&mut c), vec![]);
}

/// Without a prior `handle_eof`, inside a packet, and with our EOF queued
/// before the loss: the receive side ends (`Truncated`), and `Closed`,
/// which needs our EOF transmitted, never follows (the dropped output does
/// not count as sent).
#[test]
fn transport_lost_inside_a_packet_never_reports_closed() {
    let mut c = conn();
    let now = Instant::from_millis(0);
    let waiting = c.submit(0, 0, 0, b"w", now, None).unwrap();
    let _ = out(&mut c);
    c.close(); // ERQ and EOF queued, not sent
    feed(&mut c, &hex("08 02")); // a request's first two bytes
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![
            Ev::Protocol(ProtocolError::Truncated {
                have: 2,
                need: Some(9)
            }),
            Ev::Cancelled(0, waiting),
        ]
    );
    assert_eq!(c.transmit_len(), 0);
    c.advance_transmit(0);
    let mut buf = [0u8; 8];
    assert_eq!(c.fill_transmit(&mut buf), 0);
    c.handle_eof();
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.state(), State::Closing);
    assert_eq!(c.stats().bytes_sent, 5);
}

/// The twin of the alloc connection's test: after a loss nothing is
/// queued; an answer to a request in flight is accepted and dropped
/// (counted in `requests_dropped`, not `responses_sent`), even one that
/// would not fit the transmit buffer; `end_requests` and `close` queue
/// nothing; `submit` fails with `PeerGone`; `Closed` never follows.
#[test]
fn respond_after_transport_lost_queues_nothing() {
    let mut c = conn_with(1024, MIN_TRANSMIT_BUFFER + 40, |_| {});
    feed(
        &mut c,
        &cat(&[&req(0, 2, 0, 0, b"q"), &req(0, 3, 0, 0, b"r")]),
    );
    assert_eq!(
        events(&mut c),
        vec![rq(0, 2, 0, 0, b"q"), rq(0, 3, 0, 0, b"r")]
    );
    let waiting = c.submit(0, 0, 0, b"w", T0, None).unwrap();
    let sent = out(&mut c).len() as u64;
    // Answered before the loss: queued (and counted), then dropped unsent.
    c.respond(0, 2, 0, b"before").unwrap();
    assert!(c.transmit_len() > 0);
    // Before the loss an answer this long does not fit.
    assert!(matches!(
        c.respond(0, 3, 5, &[1; 200]),
        Err(RespondError::NoRoom { .. })
    ));
    c.handle_transport_lost();
    assert!(c.transport_lost());
    assert_eq!(
        events(&mut c),
        vec![
            Ev::PeerClosed(PeerCloseReason::TransportEof),
            Ev::Cancelled(0, waiting)
        ]
    );
    assert_eq!((c.transmit_len(), c.poll_transmit()), (0, None));
    let before = *c.stats();
    assert_eq!((before.responses_sent, before.requests_dropped), (1, 0));
    // Answered after the loss: accepted, dropped, counted.
    assert_eq!(c.respond(0, 3, 5, &[1; 200]), Ok(()));
    assert_eq!(c.inflight_inbound(), 0);
    assert!(!c.is_inflight(0, 3));
    assert_eq!((c.transmit_len(), c.poll_transmit()), (0, None));
    assert!(c.eof_queued(), "the last answer lets the close go on");
    let stats = *c.stats();
    assert_eq!(stats.responses_sent, 1);
    assert_eq!(stats.requests_dropped, 1);
    assert_eq!(stats.requests_received, 2);
    assert_eq!(stats.bytes_sent, sent);
    assert_eq!(
        c.respond(0, 3, 0, b""),
        Err(RespondError::NotInFlight { channel: 0, tag: 3 })
    );
    assert_eq!(
        c.reject(0, 9, "x"),
        Err(RespondError::NotInFlight { channel: 0, tag: 9 })
    );
    assert_eq!(c.submit(0, 0, 0, b"", T0, None), Err(SubmitError::PeerGone));
    c.end_requests();
    c.close();
    assert_eq!((c.transmit_len(), c.poll_transmit()), (0, None));
    c.advance_transmit(100);
    let mut buf = [0u8; 16];
    assert_eq!(c.fill_transmit(&mut buf), 0);
    assert_eq!(c.stats().bytes_sent, sent);
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(c.state(), State::Closing);
    c.handle_transport_lost();
    assert_eq!(events(&mut c), vec![]);
    assert_eq!(*c.stats(), stats);
}

/// Events queued before the loss are still delivered, and packets held
/// back behind unpolled events (here a full unknown-response queue) are
/// handled as they are polled; meanwhile the receive side has not ended,
/// yet `submit` already fails: nothing would be sent.
#[test]
fn transport_lost_while_events_hold_packets_back() {
    let mut c = conn();
    let a = c.submit(0, 0, 0, b"a", T0, None).unwrap();
    let w = c.submit(0, 0, 0, b"w", T0, None).unwrap();
    let _ = out(&mut c);
    let mut input = Vec::new();
    for tag in 100..=100 + UNKNOWN_RESPONSE_QUEUE as u64 {
        input.extend(resp(0, tag, true, 0, b""));
    }
    input.extend(req(0, 9, 0, 0, b"x"));
    input.extend(resp(0, a, true, 0, b"A"));
    feed(&mut c, &input);
    assert!(c.receive_buffered() > 0, "parsing waits for the queue");
    c.handle_transport_lost();
    assert_eq!(c.state(), State::Open, "the receive side has not ended yet");
    assert_eq!(
        c.submit(0, 0, 0, b"late", T0, None),
        Err(SubmitError::PeerGone)
    );
    assert_eq!((c.transmit_len(), c.pending_outbound()), (0, 2));
    let mut expect: Vec<Ev> = (100..=100 + UNKNOWN_RESPONSE_QUEUE as u64)
        .map(|tag| Ev::Unknown(0, tag))
        .collect();
    expect.extend([
        rq(0, 9, 0, 0, b"x"),
        rs(0, a, true, 0, b"A"),
        Ev::PeerClosed(PeerCloseReason::TransportEof),
        Ev::Cancelled(0, w),
    ]);
    assert_eq!(events(&mut c), expect);
    // The request delivered after the loss is answered into the void.
    c.respond(0, 9, 0, b"y").unwrap();
    assert_eq!(c.transmit_len(), 0);
    assert_eq!(c.stats().requests_dropped, 1);
    assert_eq!(c.stats().responses_sent, 0);
    assert_eq!(c.stats().requests_sent, 2);
}

/// `Closed` follows a loss only when our EOF had been transmitted before
/// it; an ERQ and EOF the end of input makes after the loss are dropped,
/// not counted as sent.
#[test]
fn closed_after_transport_lost_needs_eof_transmitted_before() {
    let mut c = conn();
    c.close();
    assert_eq!(out(&mut c), hex("03 01 02 00  03 00 02 00"));
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![Ev::PeerClosed(PeerCloseReason::TransportEof), Ev::Closed]
    );
    assert_eq!(c.state(), State::Closed);
    let mut c = conn();
    c.close();
    c.advance_transmit(7);
    c.handle_transport_lost();
    assert_eq!(
        events(&mut c),
        vec![Ev::PeerClosed(PeerCloseReason::TransportEof)]
    );
    assert_eq!(c.state(), State::Closing);
    let mut c = conn();
    let _ = c.submit(0, 0, 0, b"q", T0, None).unwrap();
    let _ = out(&mut c);
    c.handle_transport_lost();
    let ev = events(&mut c);
    assert!(!ev.contains(&Ev::Closed), "{ev:?}");
    assert_eq!(c.state(), State::Closing);
    assert!(c.eof_queued());
    assert_eq!(c.transmit_len(), 0);
}
