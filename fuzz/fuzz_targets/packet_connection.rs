//! Two packet `Connection`s joined by simulated links, driven by a list of
//! operations: submit, respond, reject, abandon, `end_requests`, close,
//! `open_channel`, partial writes, partial reads (any chunking), a write side
//! shut (EOF; what the end queues afterwards stays queued), a transport lost
//! (`handle_transport_lost`, at one end or both, possibly with events still
//! unpolled), the clock advancing, and optionally raw hostile bytes injected
//! into a link.
//!
//! The model is `framewire_fuzz::connection` (shared with
//! `borrowed_connection`; its documentation lists every check). It asserts
//! after every step:
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
//! * everything a connection transmits parses as canonical packets within its
//!   `max_packet_len`, each one it had to send, once;
//! * timeouts fire exactly at their deadlines and `poll_timeout` is the
//!   earliest one;
//! * pending requests, in-flight requests, buffered input and queued output
//!   stay within their configured limits, and the counters agree with what
//!   was seen;
//! * after a loss nothing is queued or transmitted (`submit` fails with
//!   `PeerGone`; an answer is accepted, counted in `requests_dropped` and
//!   never reaches the peer), events queued before it are still delivered,
//!   once the events are drained the receive side has ended and no request
//!   waits, and `Closed` is reported exactly when our EOF had been
//!   transmitted before the loss.
#![no_main]

use arbitrary::Arbitrary;
use framewire_fuzz::connection::{AllocCfg, End, OpList, OpSet, Rules, World};
use libfuzzer_sys::fuzz_target;

const RULES: Rules = Rules {
    channels: 4,
    alloc_channels: 4,
    alloc_remembered_tags: 8,
    shut_keeps_output: true,
};

/// `Submit` to `Lose` (codes 0..=12): no crafted packets, replays, floods or
/// answer-all.
struct Ops;

impl OpSet for Ops {
    const CODES: &'static [u8] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
}

#[derive(Arbitrary, Debug)]
struct Scenario {
    a: AllocCfg,
    b: AllocCfg,
    ops: OpList<Ops>,
}

fuzz_target!(|scenario: Scenario| {
    let a = End::alloc(scenario.a.config(&RULES));
    let b = End::alloc(scenario.b.config(&RULES));
    World::new(a, b, RULES).run(&scenario.ops.0, "alloc");
});
