//! `Delimited` lines: any delimiter of 1..=8 bytes, kept or not, `\r`
//! stripping, both over-long policies, small limits.
#![no_main]

use framewire::framing::{Delimited, Framing, OversizePolicy};
use framewire_fuzz::{check_encode, check_framing, Input, MAX_FUZZ_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let input = Input::parse(bytes);
    let build = || -> arbitrary::Result<(Delimited, usize)> {
        let mut u = input.config();
        let len = u.int_in_range(1..=Delimited::MAX_DELIMITER_LEN)?;
        // Delimiter bytes from a small alphabet so that they occur in the
        // data and overlap themselves (`\n`, `\r`, `a`, `b`).
        let mut delimiter = Vec::with_capacity(len);
        for _ in 0..len {
            delimiter.push(*u.choose(b"\n\rab")?);
        }
        let max_line = if u.ratio(1, 8)? {
            u.int_in_range(0..=MAX_FUZZ_LIMIT)?
        } else {
            u.int_in_range(0..=300)?
        };
        let oversize = if u.arbitrary()? { OversizePolicy::Skip } else { OversizePolicy::Fail };
        let f = Delimited::new()
            .with_delimiter(&delimiter)
            .with_strip_cr(u.arbitrary()?)
            .with_keep_delimiter(u.arbitrary()?)
            .with_max_line_len(max_line)
            .with_oversize(oversize);
        let spare = usize::from(u.arbitrary::<u8>()?);
        Ok((f, spare))
    };
    let Ok((f, spare)) = build() else { return };
    check_framing(&f, f.max_frame_len(), &input, spare);
    check_encode(&f, input.data);
});
