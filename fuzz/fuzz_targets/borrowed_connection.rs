//! The no-alloc `packet::BorrowedConnection` (`P = 8` waiting requests,
//! `I = 4` in flight, `C = 4` channels, `T = 16` remembered tags) joined by
//! simulated links to a peer and driven by a list of operations: submit,
//! respond, reject, answer everything in flight, abandon, `end_requests`,
//! close, `open_channel`, partial writes, partial reads (any chunking; a full
//! receive buffer takes fewer bytes and the rest is offered again), a write
//! side shut (EOF), a transport lost (`handle_transport_lost`, at one end or
//! both, possibly with events still unpolled), the clock advancing
//! (`handle_timeout`), and hostile input: raw bytes, well-formed packets with
//! chosen fields, floods of requests or responses with sparse tags, and
//! replays of what the peer sent before. Every operation list runs twice:
//! against a second `BorrowedConnection`, and against an alloc `Connection`
//! (they speak the same wire).
//!
//! Buffer sizes (receive 16..=2063 bytes, transmit `MIN_TRANSMIT_BUFFER`
//! ..=+2047), the packet limit, `accept_requests`, `max_tag` and varint
//! strictness are fuzzed per end. The model is `framewire_fuzz::connection`
//! (shared with `packet_connection`; its documentation lists every check):
//! requests end exactly once, answers and requests arrive unaltered and
//! once, everything transmitted is a canonical packet the end had to send,
//! timers fire on time, the buffers and `P`/`I`/`T` hold, failed submits
//! change nothing, `NoRoom` only when the packet does not fit, the counters
//! agree, a loss is handled as documented, and the final drain closes both
//! ends (a lost end only if its EOF had gone out before the loss).
//!
//! A shut write side drops what its end queues from then on, as a driver
//! whose socket can no longer send must (`advance_transmit`): a
//! `BorrowedConnection` whose transmit buffer is too full to refuse a
//! request waits for room before it reads further, so with its output kept
//! it would never reach the peer's EOF, even after `handle_eof`.
#![no_main]

use arbitrary::Arbitrary;
use framewire_fuzz::connection::{
    AllocCfg, BorrowedCfg, End, Op, OpList, OpSet, Rules, World, ALL_OPS,
};
use libfuzzer_sys::fuzz_target;

/// Our requests waiting for a response.
const P: usize = 8;
/// Peer requests in flight.
const I: usize = 4;
/// Channels besides 0.
const C: usize = 4;
/// Remembered peer tags.
const T: usize = 16;

const RULES: Rules = Rules {
    channels: 6,
    alloc_channels: 5,
    alloc_remembered_tags: 16,
    shut_keeps_output: false,
};

/// Every operation.
struct Ops;

impl OpSet for Ops {
    const CODES: &'static [u8] = &ALL_OPS;
}

/// The operations run twice: A against a `BorrowedConnection` B, and A
/// against an alloc `Connection` B.
#[derive(Arbitrary, Debug)]
struct Scenario {
    a: BorrowedCfg,
    b: BorrowedCfg,
    alloc: AllocCfg,
    ops: OpList<Ops>,
}

fn run(a: &BorrowedCfg, b: Option<&BorrowedCfg>, alloc: &AllocCfg, ops: &[Op]) {
    // Buffers start dirty: nothing may read a byte it did not write.
    let mut a_rx = vec![0xa5; a.rx_len()];
    let mut a_tx = vec![0x5a; a.tx_len()];
    let (mut b_rx, mut b_tx) = match b {
        Some(b) => (vec![0xa5; b.rx_len()], vec![0x5a; b.tx_len()]),
        None => (Vec::new(), Vec::new()),
    };
    let (b, label) = match b {
        Some(b) => (
            End::borrowed::<P, I, C, T>(b, &mut b_rx, &mut b_tx),
            "borrowed",
        ),
        None => (End::alloc(alloc.config(&RULES)), "alloc"),
    };
    let a = End::borrowed::<P, I, C, T>(a, &mut a_rx, &mut a_tx);
    World::new(a, b, RULES).run(ops, label);
}

fuzz_target!(|scenario: Scenario| {
    let ops = &scenario.ops.0;
    run(&scenario.a, Some(&scenario.b), &scenario.alloc, ops);
    run(&scenario.a, None, &scenario.alloc, ops);
});
