//! Helpers shared by the core's unit tests.

use std::vec::Vec;

/// Bytes from hex text such as `"16000000 02 6865"`. Whitespace is ignored;
/// any other non-hex character, or an odd number of digits, panics (a typo
/// in a golden vector must not pass silently).
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "odd number of hex digits in {s:?}"
    );
    digits
        .chunks(2)
        .map(|pair| {
            let text = core::str::from_utf8(pair).expect("ASCII hex");
            u8::from_str_radix(text, 16).unwrap_or_else(|_| panic!("bad hex {text:?} in {s:?}"))
        })
        .collect()
}

/// `input` cut into chunks of the given lengths (clamped to what is left),
/// with whatever remains as one last chunk.
pub(crate) fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut pos = 0;
    for &c in cuts {
        let end = (pos + c).min(input.len());
        chunks.push(&input[pos..end]);
        pos = end;
    }
    chunks.push(&input[pos..]);
    chunks
}

#[test]
fn unhex_skips_whitespace_only() {
    assert_eq!(unhex("03 00\n0200"), [3, 0, 2, 0]);
    assert!(std::panic::catch_unwind(|| unhex("0g")).is_err());
    assert!(std::panic::catch_unwind(|| unhex("030")).is_err());
}
