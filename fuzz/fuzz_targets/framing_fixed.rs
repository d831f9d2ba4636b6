//! `Fixed`-size frames: any size from 1 byte to the fuzz limit.
#![no_main]

use framewire::framing::Fixed;
use framewire_fuzz::{check_encode, check_framing, Input, MAX_FUZZ_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let mut u = input.config();
    let size = if u.ratio(1, 8).unwrap_or(false) {
        u.int_in_range(1..=MAX_FUZZ_LIMIT).unwrap_or(1)
    } else {
        u.int_in_range(1..=64).unwrap_or(1)
    };
    let spare = usize::from(u.arbitrary::<u8>().unwrap_or(0));
    let f = Fixed::new(size);
    let run = check_framing(&f, size, &input, spare);
    // Exactly the whole frames, in order.
    let frames: Vec<&[u8]> = input.data.chunks_exact(size).collect();
    assert_eq!(run.out.len(), frames.len());
    for (o, frame) in run.out.iter().zip(frames) {
        assert_eq!(*o, framewire_fuzz::Out::Frame(frame.to_vec()));
    }
    assert_eq!(run.clean_end, input.data.len() % size == 0);
    check_encode(&f, input.data);
});
