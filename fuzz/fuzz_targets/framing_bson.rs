//! `BsonDocument` framing, and its frames against the `bson` crate: every
//! frame is a document `RawDocument::from_bytes` accepts, and a slice the
//! framing takes whole is exactly one `RawDocument`.
#![no_main]

use bson::RawDocument;
use framewire::framing::{BsonDocument, Decode, Framing, OversizePolicy};
use framewire_fuzz::{check_encode, check_framing, Input, Out, MAX_FUZZ_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let mut u = input.config();
    let max = if u.ratio(1, 8).unwrap_or(false) {
        u.int_in_range(0..=MAX_FUZZ_LIMIT).unwrap_or(0)
    } else {
        u.int_in_range(0..=400).unwrap_or(0)
    };
    let oversize = if u.arbitrary().unwrap_or(false) { OversizePolicy::Skip } else { OversizePolicy::Fail };
    let spare = usize::from(u.arbitrary::<u8>().unwrap_or(0));
    let f = BsonDocument::new().with_max_len(max).with_oversize(oversize);
    // The length field is 4 bytes: the most buffered while undecided.
    let run = check_framing(&f, f.max_frame_len().max(4), &input, spare);
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
    assert_eq!(framed, raw_ok, "framing says {framed}, bson RawDocument::from_bytes says {raw_ok} for {data:?}");
    assert_eq!(f.header(data).is_ok(), raw_ok && data.len() <= max);
    check_encode(&f, data);
});
