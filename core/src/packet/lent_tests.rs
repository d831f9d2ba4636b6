//! Parsing on poll, lent payloads and answering in place
//! ([`Connection::poll_lent`], [`Connection::poll_lent_answering`]). The
//! differential test in `diff_tests` runs the lazy connection against the
//! eager one on random sessions; these cover answering in place, which that
//! harness does not drive.

use std::vec::Vec;

use bytes::Bytes;
use proptest::prelude::*;

use super::pair::Rng;
use super::tests::{enc, out, req};
use super::wire::Packet;
use super::*;
use crate::time::Instant;

fn lazy(f: impl FnOnce(&mut Config)) -> Connection {
    let mut c = Config {
        parse_on_poll: true,
        ..Config::default()
    };
    f(&mut c);
    Connection::new(c).unwrap()
}

/// A request stream: `(channel, tag, rq_type, flags, payload)` for each.
type Requests = Vec<(u64, u64, u64, u64, Vec<u8>)>;

fn random_requests(rng: &mut Rng, n: usize) -> Requests {
    (0..n)
        .map(|i| {
            let channel = if rng.below(4) == 0 { 3 } else { 0 };
            let len = match rng.below(4) {
                0 => 0,
                1 => rng.below(200),
                _ => 16,
            };
            let payload = (0..len).map(|_| rng.next_u64() as u8).collect();
            let flags = match rng.below(3) {
                0 => 0,
                1 => rng.next_u64() >> 4,
                _ => rng.next_u64() >> 3,
            };
            (channel, 2 + i as u64, rng.below(5) as u64, flags, payload)
        })
        .collect()
}

/// The answer of the test's echo server: type 4 is refused, type 3 gets a
/// payload over the server's packet limit (so the handler-failure text
/// goes out instead), the rest is echoed with the request's flags.
fn expected_answer(
    c: &mut Connection,
    channel: u64,
    tag: u64,
    rq_type: u64,
    flags: u64,
    payload: &[u8],
) {
    let big = [7u8; 300];
    match rq_type {
        4 => c.reject(channel, tag, "refused").unwrap(),
        3 => {
            let failed = c.respond_or_fail(channel, tag, flags, Bytes::copy_from_slice(&big));
            assert!(matches!(
                failed,
                Ok(Some(RespondError::PayloadTooLong { .. }))
            ));
        }
        _ => c
            .respond_or_fail(channel, tag, flags, Bytes::copy_from_slice(payload))
            .map(|_| ())
            .unwrap(),
    }
}

fn lent_answer(rq: LentRequest<'_>, answer: &mut Answerer<'_>) {
    let big = [7u8; 300];
    match rq.rq_type {
        4 => answer.reject("refused").unwrap(),
        3 => {
            let failed = answer.respond_or_fail(rq.flags, &big);
            assert!(matches!(
                failed,
                Ok(Some(RespondError::PayloadTooLong { .. }))
            ));
        }
        _ => answer
            .respond_or_fail(rq.flags, rq.payload)
            .map(|_| ())
            .unwrap(),
    }
}

/// `(channel, tag, rq_type, flags, payload)` of a request event; any other
/// event fails the test.
fn request_fields(e: BorrowedEvent<'_>) -> (u64, u64, u64, u64, &[u8]) {
    let BorrowedEvent::RequestReceived {
        channel,
        tag,
        rq_type,
        flags,
        payload,
    } = e
    else {
        panic!("unexpected {e:?}");
    };
    (channel, tag, rq_type, flags, payload)
}

/// Feeds `wire` to both servers in the same random pieces: the eager one
/// answers each polled request through `respond`; the lazy one answers in
/// place, except (when `defer_odd`) odd tags, which come out as events and
/// are answered through `respond` at once. Both must send the same bytes
/// and count the same.
fn run_echo(seed: u64, requests: &Requests, defer_odd: bool, max_inflight: usize) {
    let limits = |c: &mut Config| {
        c.max_packet_len = 256;
        c.max_receive_buffer = 512;
        c.max_inflight_inbound = max_inflight;
    };
    let mut eager = {
        let mut c = Config::default();
        limits(&mut c);
        Connection::new(c).unwrap()
    };
    let mut lent = lazy(limits);
    for c in [&mut eager, &mut lent] {
        c.open_channel(3).unwrap();
    }
    let wire: Vec<u8> = requests
        .iter()
        .flat_map(|(ch, tag, ty, fl, p)| req(*ch, *tag, *ty, *fl, p))
        .collect();
    let mut rng = Rng::new(seed);
    let (mut at_eager, mut at_lent) = (0, 0);
    let (mut sent_eager, mut sent_lent) = (Vec::new(), Vec::new());
    let mut deferred = 0;
    while at_eager < wire.len() || at_lent < wire.len() {
        let piece = rng.between_1_and(97);
        let end = (at_eager + piece).min(wire.len());
        at_eager += eager.handle_input(&wire[at_eager..end]).unwrap();
        while let Some(e) = eager.poll_event() {
            let (channel, tag, rq_type, flags, payload) = request_fields(e.lend());
            expected_answer(&mut eager, channel, tag, rq_type, flags, payload);
        }
        sent_eager.extend(out(&mut eager));

        let end = (at_lent + piece).min(wire.len());
        at_lent += lent.handle_input(&wire[at_lent..end]).unwrap();
        loop {
            let event = lent.poll_lent_answering(|rq, answer| {
                if !(defer_odd && rq.tag % 2 == 1) {
                    lent_answer(rq, answer);
                }
            });
            let Some(e) = event else { break };
            let (channel, tag, rq_type, flags, payload) = request_fields(e);
            assert!(
                defer_odd && tag % 2 == 1,
                "answered in place, not delivered"
            );
            let payload = payload.to_vec();
            assert!(lent.is_inflight(channel, tag));
            expected_answer(&mut lent, channel, tag, rq_type, flags, &payload);
            deferred += 1;
        }
        sent_lent.extend(out(&mut lent));
        assert_eq!(lent.inflight_inbound(), 0);
    }
    assert_eq!(
        sent_eager, sent_lent,
        "the same bytes, answered in place or not"
    );
    assert_eq!(eager.stats(), lent.stats());
    assert_eq!(eager.remembered_tags(), lent.remembered_tags());
    assert_eq!((eager.receive_buffered(), lent.receive_buffered()), (0, 0));
    let odd = requests.iter().filter(|r| r.1 % 2 == 1).count();
    assert_eq!(deferred, if defer_odd { odd } else { 0 });
    assert_eq!(lent.stats().responses_sent, requests.len() as u64);
}

#[test]
fn answered_in_place_is_byte_for_byte_what_respond_sends() {
    let requests = random_requests(&mut Rng::new(5), 2_000);
    run_echo(1, &requests, false, 256);
    run_echo(2, &requests, true, 256);
}

#[test]
fn answered_in_place_never_takes_an_inflight_slot() {
    // One slot: the eager server answers each request before the next is
    // parsed; answered in place, all 500 go through in any chunking.
    let requests = random_requests(&mut Rng::new(6), 500);
    run_echo(3, &requests, false, 1);
    run_echo(4, &requests, true, 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn answering_in_place_agrees_with_respond(seed: u64, n in 0usize..300, defer_odd: bool) {
        let requests = random_requests(&mut Rng::new(seed), n);
        run_echo(seed, &requests, defer_odd, 4);
    }
}

#[test]
fn an_answerer_takes_one_answer_and_nothing_on_error() {
    let mut c = lazy(|c| c.max_packet_len = 64);
    c.handle_input(&req(0, 9, 1, 0, b"x")).unwrap();
    let none = c.poll_lent_answering(|rq, answer| {
        assert_eq!(
            (rq.channel, rq.tag, rq.rq_type, rq.payload),
            (0, 9, 1, &b"x"[..])
        );
        assert!(!answer.answered());
        let too_long = answer.respond(0, &[0; 100]);
        assert!(matches!(
            too_long,
            Err(RespondError::PayloadTooLong { max: 64, .. })
        ));
        assert!(matches!(
            answer.respond(u64::MAX, b""),
            Err(RespondError::Field(_))
        ));
        assert!(!answer.answered());
        answer.respond(2, b"ok").unwrap();
        assert!(answer.answered());
        assert_eq!(
            answer.reject("again"),
            Err(RespondError::NotInFlight { channel: 0, tag: 9 })
        );
    });
    assert!(none.is_none());
    let bytes = out(&mut c);
    assert_eq!(bytes, enc(&Packet::response(0, 9, true, 2, b"ok").unwrap()));
}

#[test]
fn a_tag_answered_in_place_is_remembered() {
    let mut c = lazy(|_| {});
    c.handle_input(&req(0, 7, 0, 0, b"a")).unwrap();
    assert!(c
        .poll_lent_answering(|_, a| a.respond(0, b"").unwrap())
        .is_none());
    c.handle_input(&req(0, 7, 0, 0, b"b")).unwrap();
    assert!(c
        .poll_lent_answering(|_, _| panic!("a reused tag is refused"))
        .is_none());
    let bytes = out(&mut c);
    let reason = b"channel 0: tag already in use: 7";
    let expected = [
        enc(&Packet::response(0, 7, true, 0, b"").unwrap()),
        enc(&Packet::failure_bytes(0, 7, reason)),
    ]
    .concat();
    assert_eq!(bytes, expected);
    assert_eq!((c.stats().requests_refused, c.stats().tags_reused), (1, 1));
}

#[test]
fn answers_in_place_after_a_loss_are_dropped_and_counted() {
    let mut c = lazy(|_| {});
    c.handle_input(&[req(0, 2, 0, 0, b"a"), req(0, 3, 0, 0, b"b")].concat())
        .unwrap();
    c.handle_transport_lost();
    let mut answered = 0;
    while let Some(e) = c.poll_lent_answering(|_, a| {
        a.respond(0, b"x").unwrap();
        answered += 1;
    }) {
        assert!(matches!(e, BorrowedEvent::PeerClosed { .. }), "{e:?}");
    }
    assert_eq!(answered, 2);
    assert_eq!(c.transmit_len(), 0);
    assert_eq!(
        (c.stats().requests_dropped, c.stats().responses_sent),
        (2, 0)
    );
}

#[test]
fn eager_connections_answer_queued_requests_in_place_too() {
    let mut c = Connection::new(Config::default()).unwrap();
    c.handle_input(&[req(0, 2, 0, 1, b"a"), req(0, 3, 0, 0, b"b")].concat())
        .unwrap();
    assert_eq!(c.inflight_inbound(), 2);
    let e = c.poll_lent_answering(|rq, a| {
        if rq.tag == 2 {
            a.respond(rq.flags, rq.payload).unwrap();
        }
    });
    let Some(BorrowedEvent::RequestReceived {
        tag: 3,
        payload: b"b",
        ..
    }) = e
    else {
        panic!("{e:?}");
    };
    assert_eq!(c.take_lent_payload(), Bytes::from_static(b"b"));
    assert_eq!(c.take_lent_payload(), Bytes::new(), "taken once");
    assert_eq!(c.inflight_inbound(), 1);
    assert!(c.is_inflight(0, 3) && !c.is_inflight(0, 2));
    c.respond(0, 3, 0, Bytes::from_static(b"B")).unwrap();
    assert_eq!(
        out(&mut c),
        [
            enc(&Packet::response(0, 2, true, 1, b"a").unwrap()),
            enc(&Packet::response(0, 3, true, 0, b"B").unwrap()),
        ]
        .concat()
    );
}

#[test]
fn a_lent_packet_leaves_the_buffer_on_the_next_call() {
    let mut client = lazy(|_| {});
    let tag = client
        .submit(0, 0, 0, Bytes::from_static(b"q"), Instant::ZERO, None)
        .unwrap();
    let _ = out(&mut client);
    let response = enc(&Packet::response(0, tag, true, 0, b"answer").unwrap());
    let partial = req(0, 40, 0, 0, b"next");
    client
        .handle_input(&[&response[..], &partial[..3]].concat())
        .unwrap();
    assert_eq!(client.receive_buffered(), response.len() + 3);
    let Some(BorrowedEvent::ResponseReceived { payload, .. }) = client.poll_lent() else {
        panic!("a response");
    };
    assert_eq!(payload, b"answer");
    // Lent: not counted as buffered, still in the buffer until the next call.
    assert_eq!(client.receive_buffered(), 3);
    client.handle_input(&partial[3..]).unwrap();
    assert_eq!(client.receive_buffered(), partial.len());
    let Some(BorrowedEvent::RequestReceived {
        tag: 40, payload, ..
    }) = client.poll_lent()
    else {
        panic!("the request");
    };
    assert_eq!(payload, b"next");
    assert_eq!(client.take_lent_payload(), Bytes::from_static(b"next"));
    assert_eq!(client.receive_buffered(), 0);
    assert!(client.poll_lent().is_none());
}
