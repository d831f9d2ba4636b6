//! Differential: `LengthPrefixed` against tokio-util's `LengthDelimitedCodec`
//! on every configuration both support (fixed 1..=8-byte fields, either byte
//! order, an offset, an adjustment, the header counted or not).
//!
//! The semantics differ in two documented ways, accounted for here:
//!
//! * framewire's `max_frame_len` is the whole frame, header included, after
//!   adjustment; tokio-util's `max_frame_length` bounds the raw length field.
//!   A framewire limit `M` is tokio-util's `M - header_len - adjustment'`
//!   (`adjustment'` being the adjustment as tokio-util counts it: minus the
//!   header when framewire counts the header in the field).
//! * tokio-util lowers its limit to the field's largest value plus the
//!   adjustment and compares the *raw* field with it, so with a negative
//!   adjustment it refuses the top raw values, whose frames are within the
//!   limit; configurations where that happens are not compared.
//! * A field whose adjusted value overflows `u64` is `InvalidLength` in
//!   framewire ("impossible frame size") and "frame too large" in tokio-util.
//!
//! Configuration bytes (all zero: `u32` big-endian, limit 4096):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | field width `[4, 1, 2, 3, 5, 6, 7, 8][b % 8]` |
//! | 1 | bit 0: little-endian |
//! | 2 | offset `% 5` |
//! | 3 | adjustment `(b as i8) % 13` |
//! | 4 | bit 0: the length counts the header |
//! | 5..=7 | frame limit ([`Input::limit`], default 4096) |
//! | 8 | length of the payload encoded both ways |
#![no_main]

use bytes::BytesMut;
use framewire::framing::{FrameError, Framing, LengthField, LengthPrefixed};
use framewire_fuzz::{chunks, run_framing, Input, Out};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

#[derive(Debug, PartialEq, Eq)]
enum TOut {
    Frame(Vec<u8>),
    TooLong,
    Invalid,
}

fn tokio_run(codec: &mut LengthDelimitedCodec, data: &[u8], cuts: &[usize]) -> Vec<TOut> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks(data, cuts) {
        buf.extend_from_slice(chunk);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => out.push(TOut::Frame(frame.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    // tokio-util: InvalidData for the limit, InvalidInput for
                    // a length that goes negative after adjustment.
                    out.push(match e.kind() {
                        std::io::ErrorKind::InvalidData => TOut::TooLong,
                        std::io::ErrorKind::InvalidInput => TOut::Invalid,
                        k => panic!("unexpected tokio-util error kind {k:?}: {e}"),
                    });
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let width = [4u8, 1, 2, 3, 5, 6, 7, 8][usize::from(input.byte(0) % 8)];
    let big_endian = input.byte(1) & 1 == 0;
    let offset = usize::from(input.byte(2) % 5);
    let adjustment = i64::from(input.byte(3) as i8 % 13);
    let includes_header = input.byte(4) & 1 != 0;
    let max = input.limit(5, 4096);
    let payload_len = usize::from(input.byte(8));
    let header_len = offset + usize::from(width);
    // tokio-util's adjustment: the bytes after the header are field + adj'.
    let tokio_adj = if includes_header {
        adjustment - header_len as i64
    } else {
        adjustment
    };
    // tokio-util's limit on the raw field for framewire's frame limit.
    let Ok(tokio_max) = usize::try_from(max as i64 - header_len as i64 - tokio_adj) else {
        return; // No tokio-util configuration matches.
    };
    if max < header_len {
        return;
    }
    // tokio-util lowers `max_frame_length` to the field's largest value plus
    // its adjustment, and then refuses raw values above that, although the
    // frame they describe is within the limit (a 1-byte field with
    // adjustment -7 refuses 249..=255). Only compare where it does not.
    let field_max = if width == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(width))) - 1
    };
    if field_max.saturating_add_signed(tokio_adj) < tokio_max as u64 {
        return;
    }
    let f = LengthPrefixed::new()
        .with_length_field(LengthField::fixed(width, big_endian))
        .with_offset(offset)
        .with_adjustment(adjustment)
        .with_includes_header(includes_header)
        .with_max_frame_len(max);
    let mut builder = LengthDelimitedCodec::builder();
    builder
        .length_field_offset(offset)
        .length_field_length(usize::from(width))
        .length_adjustment(tokio_adj as isize)
        .max_frame_length(tokio_max);
    if big_endian {
        builder.big_endian();
    } else {
        builder.little_endian();
    }

    let ours = run_framing(&mut f.clone(), input.data, &input.cuts, usize::MAX);
    let theirs = tokio_run(&mut builder.new_codec(), input.data, &input.cuts);
    assert_eq!(
        ours.out.len(),
        theirs.len(),
        "framewire {:?} vs tokio-util {theirs:?} ({f:?}, tokio-util max {tokio_max} adjustment {tokio_adj})",
        ours.out
    );
    for (a, b) in ours.out.iter().zip(&theirs) {
        match (a, b) {
            (Out::Frame(x), TOut::Frame(y)) => assert_eq!(x, y),
            (Out::Error(FrameError::FrameTooLong { .. }), TOut::TooLong) => {}
            (Out::Error(FrameError::InvalidLength { raw, .. }), TOut::Invalid) => {
                assert!(*raw <= tokio_max as u64);
            }
            // The adjusted size does not fit a u64: framewire calls it
            // invalid, tokio-util (which checks the raw field first) too long.
            (Out::Error(FrameError::InvalidLength { raw, .. }), TOut::TooLong) => {
                assert!(*raw > tokio_max as u64);
                assert!(
                    raw.checked_add(adjustment.unsigned_abs()).is_none()
                        || raw
                            .checked_add(header_len as u64 + adjustment.unsigned_abs())
                            .is_none()
                );
            }
            (a, b) => panic!("framewire {a:?} vs tokio-util {b:?}"),
        }
    }

    // Encoding (no offset: tokio-util does not write offset bytes).
    if offset == 0 {
        let payload = &input.data[..payload_len.min(input.data.len())];
        let mut frame = vec![0u8; f.encoded_len(payload).unwrap_or(0)];
        let ours_ok = f.encode(payload, &mut frame).is_ok();
        if ours_ok {
            // What framewire writes, tokio-util reads back.
            let back = tokio_run(&mut builder.new_codec(), &frame, &[]);
            assert_eq!(
                back,
                [TOut::Frame(payload.to_vec())],
                "tokio-util misreads framewire's {frame:?}"
            );
        }
        let mut theirs = BytesMut::new();
        let fits = {
            let value = payload.len() as i128 - i128::from(tokio_adj);
            value >= 0 && (width == 8 || value < 1i128 << (8 * u32::from(width)))
        };
        if fits
            && builder.new_codec().encode(payload, &mut theirs).is_ok()
            && header_len + payload.len() <= max
        {
            // What tokio-util writes (within framewire's limit), framewire
            // reads back and would have written the same way.
            let back = run_framing(&mut f.clone(), &theirs, &[], usize::MAX);
            assert_eq!(
                back.out,
                [Out::Frame(payload.to_vec())],
                "framewire misreads tokio-util's {theirs:?}"
            );
            assert!(
                ours_ok,
                "framewire refuses to encode {payload:?}, which tokio-util frames as {theirs:?}"
            );
            assert_eq!(
                &frame[..],
                &theirs[..],
                "framewire and tokio-util encode differently"
            );
        }
    }
});
