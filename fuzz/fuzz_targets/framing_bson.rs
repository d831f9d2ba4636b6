//! `BsonDocument` framing, and its frames against the `bson` crate: every
//! frame is a document `RawDocument::from_bytes` accepts, and a slice the
//! framing takes whole is exactly one `RawDocument`.
//!
//! Configuration bytes (all zero: documents up to 4096 bytes, over-long
//! ones fail): 0..=2 the limit ([`Input::limit`]), 3 bit 0 skip over-long
//! documents, 4 the spare receive buffer for the streams.
#![no_main]

use bson::RawDocument;
use framewire::framing::{BsonDocument, Decode, Framing, OversizePolicy};
use framewire_fuzz::{check_encode, check_framing, Input, Out};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let max = input.limit(0, 4096);
    let oversize = if input.byte(3) & 1 != 0 {
        OversizePolicy::Skip
    } else {
        OversizePolicy::Fail
    };
    let f = BsonDocument::new()
        .with_max_len(max)
        .with_oversize(oversize);
    // The length field is 4 bytes: the most buffered while undecided.
    let run = check_framing(
        &f,
        f.max_frame_len().max(4),
        &input,
        usize::from(input.byte(4)),
    );
    for o in &run.out {
        let Out::Frame(frame) = o else { continue };
        if let Err(e) = RawDocument::from_bytes(frame) {
            panic!("framing delivered {frame:?}, which bson refuses: {e}");
        }
    }
    // The whole input as one candidate document: framing and bson agree.
    let data = input.data;
    let framed = matches!(BsonDocument::new().decode(data), Ok(Decode::Frame { len, .. }) if len == data.len());
    let raw_ok = RawDocument::from_bytes(data).is_ok();
    assert_eq!(
        framed, raw_ok,
        "framing says {framed}, bson RawDocument::from_bytes says {raw_ok} for {data:?}"
    );
    assert_eq!(f.header(data).is_ok(), raw_ok && data.len() <= max);
    check_encode(&f, data);
});
