//! One packet `Connection` fed arbitrary bytes (a hostile or broken peer) in
//! the fuzzed chunking and in one piece, answering every request as soon as
//! it is delivered: the events must be identical, the packets it sends the
//! same (their order may differ: an answer goes out when the request is
//! polled, which depends on the chunking), its limits hold after every call,
//! and it always ends (peer closed or protocol error, then `Closed`).
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
            if let Event::RequestReceived { channel, tag, flags, payload, .. } = &e {
                // Echo it back; if that is too long, refuse it.
                let flags = flags & 0xffff;
                if conn.respond(*channel, *tag, flags, payload.clone()).is_err() {
                    conn.reject(*channel, *tag, "x").expect("a short failure always fits");
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
            let taken = match conn.handle_input(rest) {
                Ok(taken) => taken,
                Err(_) => break 'feed,
            };
            rest = &rest[taken..];
            let before = (events.len(), out.len(), conn.receive_buffered());
            drain(&mut conn, &config, &mut events, &mut out);
            if rest.is_empty() {
                break;
            }
            // Input refused: polling, answering and writing must make room.
            let after = (events.len(), out.len(), conn.receive_buffered());
            assert!(taken > 0 || before != after, "connection stalled: input refused with nothing to do");
        }
    }
    conn.handle_eof();
    drain(&mut conn, &config, &mut events, &mut out);
    assert!(matches!(events.last(), Some(Event::Closed)), "the connection did not close: {:?}", events.last());
    assert_eq!(conn.pending_outbound(), 0);
    // What it sent is a stream of well-formed packets within its limit.
    let limits = ParseLimits { max_packet_len: config.max_packet_len, varint: VarintRules::default() };
    let mut sent = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let (p, n) = Packet::parse(rest, &limits)
            .unwrap_or_else(|e| panic!("sent bytes do not parse: {e}"))
            .expect("sent bytes end inside a packet");
        sent.push((p.channel(), p.tag(), p.pflags(), p.rq_type_wire(), p.payload().to_vec()));
        rest = &rest[n..];
    }
    assert_eq!(sent.last(), Some(&(0, 0, 0, Some(0), Vec::new())), "the last packet sent is not EOF");
    let mut stats = *conn.stats();
    if conn.protocol_error().is_some() {
        // Input after a protocol error is refused, so how much was taken
        // depends on where the chunk ended.
        stats.bytes_received = 0;
        stats.bytes_ignored = 0;
    }
    Outcome { events, sent, stats }
}

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let mut u = input.config();
    let cfg = (|| -> arbitrary::Result<Config> {
        let max_packet_len = u.int_in_range(16..=600)?;
        Ok(Config {
            max_packet_len,
            varint: VarintRules { require_canonical: u.arbitrary()?, max_octets: u.int_in_range(1..=10)? },
            accept_requests: !u.ratio(1, 8)?,
            max_pending_outbound: 4,
            max_inflight_inbound: u.int_in_range(1..=4)?,
            max_tag: if u.ratio(1, 8)? { u.int_in_range(0..=20)? } else { u64::MAX },
            max_receive_buffer: max_packet_len + u.int_in_range(0..=600)?,
            max_transmit_buffer: u.int_in_range(1..=1024)?,
            max_channels: u.int_in_range(0..=3)?,
            max_remembered_tags: u.int_in_range(1..=8)?,
            copy_threshold: u.int_in_range(0..=64)?,
        })
    })();
    let Ok(config) = cfg else { return };
    let channels: u8 = u.arbitrary().unwrap_or(0);
    let whole = run(config, channels, input.data, &[]);
    let chunked = run(config, channels, input.data, &input.cuts);
    assert_eq!(whole.events, chunked.events, "events depend on the chunking");
    let (mut a, mut b) = (whole.sent, chunked.sent);
    a.sort();
    b.sort();
    assert_eq!(a, b, "sent packets depend on the chunking");
    assert_eq!(whole.stats, chunked.stats, "stats depend on the chunking");
});
