//! `JsonHeader` (the socket tutorial's messages): every frame must parse as
//! a `Message` whose content has the declared length, and a whole message
//! given as one slice is one frame.
//!
//! Configuration bytes (all zero: headers up to 65535 bytes, content up to
//! 4096):
//!
//! | byte | meaning |
//! |---|---|
//! | 0..=2 | header limit ([`Input::limit`], default 65535) |
//! | 3..=5 | content limit ([`Input::limit`], default 4096) |
//! | 6 | spare receive buffer for the streams |
#![no_main]

use framewire::framing::{Decode, Framing, JsonHeader};
use framewire::message::json_header::Message;
use framewire_fuzz::{check_encode, check_framing, Input, Out};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let max_content = input.limit(3, 4096);
    let max_header = input.limit(0, usize::from(u16::MAX));
    let f = JsonHeader::new()
        .with_max_header_len(max_header)
        .with_max_content_len(max_content);
    let run = check_framing(&f, f.max_frame_len(), &input, usize::from(input.byte(6)));
    for o in &run.out {
        let Out::Frame(frame) = o else { continue };
        let msg = Message::parse(frame).expect("a decoded frame must parse as a message");
        assert_eq!(msg.content.len() as u64, msg.header.content_length);
        assert!(msg.content.len() <= max_content);
        // The strings decode (their escapes were checked).
        for s in [
            msg.header.byteorder,
            msg.header.content_type,
            msg.header.content_encoding,
        ] {
            assert_eq!(s.to_cow().len(), s.unescaped_len());
        }
    }
    // A whole message given as one slice: the parser and the decoder agree.
    match (Message::parse(input.data), f.clone().decode(input.data)) {
        (Ok(_), Ok(Decode::Frame { len, .. })) => assert_eq!(len, input.data.len()),
        (Ok(m), other)
            if m.content.len() <= max_content
                && usize::from(u16::from_be_bytes([input.data[0], input.data[1]]))
                    <= f.max_header_len() =>
        {
            panic!("Message::parse accepts {m:?} but decode says {other:?}")
        }
        _ => {}
    }
    check_encode(&f, input.data);
});
