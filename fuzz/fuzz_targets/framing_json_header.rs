//! `JsonHeader` (the socket tutorial's messages): small header and content
//! limits; every frame must parse as a `Message` whose content has the
//! declared length.
#![no_main]

use framewire::framing::{Framing, JsonHeader};
use framewire::message::json_header::Message;
use framewire_fuzz::{check_encode, check_framing, Input, Out, MAX_FUZZ_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let mut u = input.config();
    let max_header = if u.ratio(1, 4).unwrap_or(false) {
        usize::from(u16::MAX)
    } else {
        u.int_in_range(0..=400).unwrap_or(0)
    };
    let max_content = if u.ratio(1, 8).unwrap_or(false) {
        u.int_in_range(0..=MAX_FUZZ_LIMIT).unwrap_or(0)
    } else {
        u.int_in_range(0..=300).unwrap_or(0)
    };
    let spare = usize::from(u.arbitrary::<u8>().unwrap_or(0));
    let f = JsonHeader::new()
        .with_max_header_len(max_header)
        .with_max_content_len(max_content);
    let run = check_framing(&f, f.max_frame_len(), &input, spare);
    for o in &run.out {
        let Out::Frame(frame) = o else { continue };
        let msg = Message::parse(frame).expect("a decoded frame must parse as a message");
        assert_eq!(msg.content.len() as u64, msg.header.content_length);
        assert!(msg.content.len() <= max_content);
        // The decoded strings are valid (their escapes were checked).
        for s in [msg.header.byteorder, msg.header.content_type, msg.header.content_encoding] {
            let cow = s.to_cow();
            assert_eq!(cow.len(), s.unescaped_len());
        }
    }
    // A whole message given as one slice: the parser and the decoder agree.
    let mut fresh = f.clone();
    match (Message::parse(input.data), fresh.decode(input.data)) {
        (Ok(_), Ok(framewire::framing::Decode::Frame { len, .. })) => assert_eq!(len, input.data.len()),
        (Ok(m), other) => panic!("Message::parse accepts {m:?} but decode says {other:?}"),
        _ => {}
    }
    check_encode(&f, input.data);
});
