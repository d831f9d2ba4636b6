//! `PacketFraming` (whole cs.packetstream packets as frames): every frame
//! parses as exactly one packet, frame boundaries agree with a varint
//! `LengthPrefixed` framing, and the payload round-trips.
//!
//! Configuration bytes (all zero: packets up to 4096 bytes, lenient
//! varints of up to 10 octets, over-long packets fail): 0 bit 0 canonical
//! varints, `>> 1 % 10` varint octets 10 - n; 1..=3 the limit
//! ([`Input::limit`]); 4 bit 0 skip over-long packets; 5 the spare receive
//! buffer for the streams.
#![no_main]

use framewire::framing::{LengthPrefixed, OversizePolicy, PacketFraming};
use framewire::packet::wire::Packet;
use framewire::varint::VarintRules;
use framewire_fuzz::{check_encode, check_framing, run_framing, Input, Out};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let rules = VarintRules {
        require_canonical: input.byte(0) & 1 != 0,
        max_octets: 10 - usize::from(input.byte(0) >> 1) % 10,
    };
    let max = input.limit(1, 4096);
    let oversize = if input.byte(4) & 1 != 0 {
        OversizePolicy::Skip
    } else {
        OversizePolicy::Fail
    };
    let spare = usize::from(input.byte(5));
    let f = PacketFraming::new()
        .with_max_packet_len(max)
        .with_varint_rules(rules)
        .with_oversize(oversize);
    let bound = max.max(rules.max_octets);
    let run = check_framing(&f, bound, &input, spare);
    for o in &run.out {
        let Out::Frame(frame) = o else { continue };
        let packet = f.parse_exact(frame).expect("a frame is exactly one packet");
        let (again, len) = Packet::parse(frame, &f.limits()).unwrap().unwrap();
        assert_eq!((packet, len), (again, frame.len()));
    }
    // Up to the first error, packets are length-prefixed frames whose
    // payload is the packet body.
    let lp = LengthPrefixed::new()
        .with_length_field(framewire::framing::LengthField::Varint(rules))
        .with_max_frame_len(max)
        .with_oversize(oversize);
    let lp_run = run_framing(&mut lp.clone(), input.data, &[], usize::MAX);
    for (p, l) in run.out.iter().zip(&lp_run.out) {
        match (p, l) {
            (Out::Frame(packet), Out::Frame(body)) => {
                assert!(packet.ends_with(body) && packet.len() > body.len());
            }
            (Out::Skipped(a), Out::Skipped(b)) => assert_eq!(a, b),
            // The packet framing also checks the fields: it may fail where
            // the bare length prefix goes on.
            (Out::Error(_), _) => break,
            (a, b) => panic!("packet framing {a:?} where the varint length prefix gives {b:?}"),
        }
    }
    check_encode(&f, input.data);
});
