//! How payloads are shown: readable text when they are printable UTF-8,
//! hex otherwise; short hexdumps for the demo.

use std::fmt::Write as _;

/// Whether `bytes` reads well as text: valid UTF-8 with no control
/// characters but tab (a trailing newline is allowed).
pub(crate) fn is_printable(bytes: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(bytes) else {
        return false;
    };
    let s = s.strip_suffix('\n').unwrap_or(s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    s.chars().all(|c| c == '\t' || !c.is_control())
}

/// Lowercase hex, no separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hex with a space between bytes, at most `max` bytes, then `… (N bytes)`.
pub(crate) fn hex_preview(bytes: &[u8], max: usize) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().take(max).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    if bytes.len() > max {
        let _ = write!(s, " … ({} bytes)", bytes.len());
    }
    s
}

/// A payload for a person: quoted text if printable, else `hex:` and the
/// bytes; longer than `max` bytes is cut with a note of the length.
pub(crate) fn readable(bytes: &[u8], max: usize) -> String {
    if is_printable(bytes) {
        let text = String::from_utf8_lossy(bytes);
        if text.chars().count() <= max {
            format!("{text:?}")
        } else {
            let cut: String = text.chars().take(max).collect();
            format!("{cut:?}… ({} bytes)", bytes.len())
        }
    } else {
        format!("hex:{}", hex_preview(bytes, max / 3).replace(' ', ""))
    }
}

/// A payload as a JSON object member: `"text": …` when printable, else
/// `"hex": …`.
pub(crate) fn json_payload(bytes: &[u8]) -> (&'static str, serde_json::Value) {
    if is_printable(bytes) {
        (
            "text",
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()),
        )
    } else {
        ("hex", serde_json::Value::String(hex(bytes)))
    }
}

/// Parses hex digits (whitespace ignored) into bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, HexError> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(HexError::OddLength { len: digits.len() });
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| {
            let hi = (pair[0] as char).to_digit(16);
            let lo = (pair[1] as char).to_digit(16);
            match (hi, lo) {
                (Some(hi), Some(lo)) => Ok((hi * 16 + lo) as u8),
                _ => Err(HexError::BadDigit { at: i * 2 }),
            }
        })
        .collect()
}

/// Hex input that does not parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HexError {
    /// An odd number of hex digits.
    #[error("odd number of hex digits ({len})")]
    OddLength {
        /// Digits given.
        len: usize,
    },
    /// A character that is not a hex digit.
    #[error("not a hex digit at position {at}")]
    BadDigit {
        /// Position among the digits.
        at: usize,
    },
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 MiB`.
pub(crate) fn bytes_human(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KiB", f / 1024.0)
    } else if n < 1024 * 1024 * 1024 {
        format!("{:.1} MiB", f / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", f / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_or_hex() {
        assert_eq!(readable(b"hello", 40), "\"hello\"");
        assert_eq!(readable(b"hi\n", 40), "\"hi\\n\"");
        assert_eq!(readable(b"\x00\x01\xff", 40), "hex:0001ff");
        assert_eq!(readable(b"abcdef", 3), "\"abc\"… (6 bytes)");
        assert_eq!(readable(b"h\xc3\xa9", 40), "\"hé\"");
        assert!(!is_printable(b"a\x1bb"));
        assert_eq!(json_payload(b"ok").0, "text");
        assert_eq!(json_payload(b"\x00").1, serde_json::json!("00"));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(b"\x00\xabz"), "00ab7a");
        assert_eq!(parse_hex("00 ab 7A").unwrap(), b"\x00\xabz");
        assert_eq!(parse_hex("abc"), Err(HexError::OddLength { len: 3 }));
        assert_eq!(parse_hex("zz"), Err(HexError::BadDigit { at: 0 }));
        assert_eq!(hex_preview(b"\x01\x02\x03", 2), "01 02 … (3 bytes)");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(bytes_human(12), "12 B");
        assert_eq!(bytes_human(1536), "1.5 KiB");
        assert_eq!(bytes_human(3 * 1024 * 1024), "3.0 MiB");
    }
}
