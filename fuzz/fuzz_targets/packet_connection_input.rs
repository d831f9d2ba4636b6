//! One packet `Connection` fed arbitrary bytes (a hostile or broken peer) in
//! the fuzzed chunking and in one piece, answering every request as soon as
//! it is delivered: the events must be identical, the packets it sends the
//! same (their order may differ: an answer goes out when the request is
//! polled, which depends on the chunking), its limits hold after every call,
//! and it always ends (peer closed or protocol error, then `Closed`).
//!
//! Configuration bytes (all zero: packets up to 4096 bytes, receive buffer
//! 8 KiB, transmit 64 KiB, requests accepted, 1 in flight, channel 0 only):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | bit 0: canonical varints; `>> 1 % 10`: varint octets 10 - n |
//! | 1 | bit 0: refuse requests (`accept_requests = false`) |
//! | 2 | in-flight requests `1 + b % 4` |
//! | 3 | largest tag `b - 1` (0: no limit) |
//! | 4..=5 | packet limit `16 + (m - 1) % 1024` (0: 4096) |
//! | 6..=7 | receive buffer beyond the packet limit `(m - 1) % 1024` (0: 4096) |
//! | 8..=9 | transmit limit (0: 65536) |
//! | 10 | channels `b % 4` |
//! | 11 | remembered tags (0: 1024) |
//! | 12 | copy threshold `b - 1` (0: 64) |
//! | 13 | channels opened `b % 4` |
//! | 14 | bit 0: parse on poll (`Config::parse_on_poll`); bit 1: the chunked run parses the other way |
#![no_main]

use framewire::packet::wire::{Packet, ParseLimits};
use framewire::packet::{Config, Connection, Event, Stats};
use framewire::varint::VarintRules;
use framewire_fuzz::{chunks, Input};
use libfuzzer_sys::fuzz_target;

type OwnedPacket = (u64, u64, u64, Option<u64>, Vec<u8>);

struct Outcome {
    events: Vec<Event>,
    sent: Vec<OwnedPacket>,
    stats: Stats,
}

fn drain(conn: &mut Connection, config: &Config, events: &mut Vec<Event>, out: &mut Vec<u8>) {
    loop {
        let mut any = false;
        while let Some(e) = conn.poll_event() {
            any = true;
            if let Event::RequestReceived {
                channel,
                tag,
                flags,
                payload,
                ..
            } = &e
            {
                // Echo it back; if that is too long, refuse it.
                let flags = flags & 0xffff;
                if conn
                    .respond(*channel, *tag, flags, payload.clone())
                    .is_err()
                {
                    conn.reject(*channel, *tag, "x")
                        .expect("a short failure always fits");
                }
            }
            events.push(e);
            assert!(conn.inflight_inbound() <= config.max_inflight_inbound);
        }
        let n = conn.transmit_len();
        if n > 0 {
            for chunk in conn.transmit_chunks() {
                out.extend_from_slice(chunk);
            }
            conn.advance_transmit(n);
            any = true;
        }
        assert!(conn.receive_buffered() <= config.max_receive_buffer);
        if !any {
            return;
        }
    }
}

fn run(config: Config, channels: u8, data: &[u8], cuts: &[usize]) -> Outcome {
    let mut conn = Connection::new(config).expect("valid config");
    for ch in 1..=u64::from(channels % 4) {
        let _ = conn.open_channel(ch);
    }
    let mut events = Vec::new();
    let mut out = Vec::new();
    'feed: for chunk in chunks(data, cuts) {
        let mut rest = chunk;
        loop {
            let Ok(taken) = conn.handle_input(rest) else {
                break 'feed;
            };
            rest = &rest[taken..];
            let before = (events.len(), out.len(), conn.receive_buffered());
            drain(&mut conn, &config, &mut events, &mut out);
            if rest.is_empty() {
                break;
            }
            // Input refused: polling, answering and writing must make room.
            let after = (events.len(), out.len(), conn.receive_buffered());
            assert!(
                taken > 0 || before != after,
                "connection stalled: input refused with nothing to do"
            );
        }
    }
    conn.handle_eof();
    drain(&mut conn, &config, &mut events, &mut out);
    assert!(
        matches!(events.last(), Some(Event::Closed)),
        "the connection did not close: {:?}",
        events.last()
    );
    assert_eq!(conn.pending_outbound(), 0);
    // What it sent is a stream of well-formed packets within its limit,
    // its own refusals included.
    let limits = ParseLimits {
        max_packet_len: config.max_packet_len,
        varint: VarintRules::default(),
    };
    let mut sent = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let (p, n) = Packet::parse(rest, &limits)
            .unwrap_or_else(|e| panic!("sent bytes do not parse: {e}"))
            .expect("sent bytes end inside a packet");
        sent.push((
            p.channel(),
            p.tag(),
            p.pflags(),
            p.rq_type_wire(),
            p.payload().to_vec(),
        ));
        rest = &rest[n..];
    }
    assert_eq!(
        sent.last(),
        Some(&(0, 0, 0, Some(0), Vec::new())),
        "the last packet sent is not EOF"
    );
    let mut stats = *conn.stats();
    if conn.protocol_error().is_some() {
        // Input after a protocol error is refused, so how much was taken
        // depends on where the chunk ended.
        stats.bytes_received = 0;
        stats.bytes_ignored = 0;
    }
    Outcome {
        events,
        sent,
        stats,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let config = Config {
        max_packet_len: match input.u16(4) {
            0 => 4096,
            m => 16 + usize::from(m - 1) % 1024,
        },
        varint: VarintRules {
            require_canonical: input.byte(0) & 1 != 0,
            max_octets: 10 - usize::from(input.byte(0) >> 1) % 10,
        },
        accept_requests: input.byte(1) & 1 == 0,
        max_pending_outbound: 4,
        max_inflight_inbound: 1 + usize::from(input.byte(2) % 4),
        max_tag: match input.byte(3) {
            0 => u64::MAX,
            t => u64::from(t - 1),
        },
        max_receive_buffer: 0,
        max_transmit_buffer: match input.u16(8) {
            0 => 65536,
            m => usize::from(m),
        },
        max_channels: usize::from(input.byte(10) % 4),
        max_remembered_tags: match input.byte(11) {
            0 => 1024,
            r => usize::from(r),
        },
        copy_threshold: match input.byte(12) {
            0 => 64,
            c => usize::from(c - 1),
        },
        parse_on_poll: input.byte(14) & 1 != 0,
    };
    let config = Config {
        max_receive_buffer: config.max_packet_len
            + match input.u16(6) {
                0 => 4096,
                m => usize::from(m - 1) % 1024,
            },
        ..config
    };
    let channels = input.byte(13);
    let whole = run(config, channels, input.data, &[]);
    // Parsing on poll or on input changes nothing observable here.
    let chunked_config = Config {
        parse_on_poll: config.parse_on_poll != (input.byte(14) & 2 != 0),
        ..config
    };
    let chunked = run(chunked_config, channels, input.data, &input.cuts);
    assert_eq!(
        whole.events, chunked.events,
        "events depend on the chunking"
    );
    let (mut a, mut b) = (whole.sent, chunked.sent);
    a.sort();
    b.sort();
    assert_eq!(a, b, "sent packets depend on the chunking");
    assert_eq!(whole.stats, chunked.stats, "stats depend on the chunking");
});
