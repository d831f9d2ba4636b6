//! `Fixed`-size frames: any size from 1 byte to 64 KiB.
//!
//! Configuration bytes: 0..=1 the size (`u16` little-endian; 0 means 4),
//! 2 the spare receive buffer for the streams.
#![no_main]

use framewire::framing::Fixed;
use framewire_fuzz::{check_encode, check_framing, Input, Out};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let size = match input.u16(0) {
        0 => 4,
        n => usize::from(n),
    };
    let f = Fixed::new(size);
    let run = check_framing(&f, size, &input, usize::from(input.byte(2)));
    // Exactly the whole frames, in order.
    let frames: Vec<Out> = input
        .data
        .chunks_exact(size)
        .map(|c| Out::Frame(c.to_vec()))
        .collect();
    assert_eq!(run.out, frames);
    assert_eq!(run.clean_end, input.data.len().is_multiple_of(size));
    check_encode(&f, input.data);
});
