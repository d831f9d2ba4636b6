//! `Delimited` lines: any delimiter of 1..=8 bytes, kept or not, `\r`
//! stripping, both over-long policies, small limits.
//!
//! Configuration bytes (all zero: `\n` lines up to 4096 bytes, delimiter
//! not delivered, no `\r` stripping, over-long lines fail):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | delimiter length: 0 means `\n`, else `1 + b % 8` bytes ... |
//! | 1..=8 | ... each `b"\n\rab"[b % 4]` (a small alphabet, so delimiters occur and overlap) |
//! | 9 | bit 0: strip `\r`; bit 1: keep the delimiter; bit 2: skip over-long lines |
//! | 10..=12 | line limit ([`Input::limit`], default 4096) |
//! | 13 | spare receive buffer for the streams |
#![no_main]

use framewire::framing::{Delimited, Framing, OversizePolicy};
use framewire_fuzz::{check_encode, check_framing, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let delimiter: Vec<u8> = match input.byte(0) {
        0 => b"\n".to_vec(),
        b => (0..=usize::from(b) % 8)
            .map(|i| b"\n\rab"[usize::from(input.byte(1 + i)) % 4])
            .collect(),
    };
    let bits = input.byte(9);
    let oversize = if bits & 4 != 0 {
        OversizePolicy::Skip
    } else {
        OversizePolicy::Fail
    };
    let f = Delimited::new()
        .with_delimiter(&delimiter)
        .with_strip_cr(bits & 1 != 0)
        .with_keep_delimiter(bits & 2 != 0)
        .with_max_line_len(input.limit(10, 4096))
        .with_oversize(oversize);
    check_framing(&f, f.max_frame_len(), &input, usize::from(input.byte(13)));
    check_encode(&f, input.data);
});
