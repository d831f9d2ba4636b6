//! Codec names on the command line: `framewire_tokio::gateway::FrameSpec`
//! (the gateway's framing names, shared by every command), with the
//! `--max-frame` limit applied.
//!
//! | name | framing |
//! |---|---|
//! | `length` | `u32` big-endian length prefix (socktools) |
//! | `length:W` | `W`-byte (1..=8) big-endian length prefix, or `length:varint` (BSUInt) |
//! | `length:W:le` / `length:W:be` | `W`-byte prefix in that byte order |
//! | `bson` | BSON documents back to back (py-bson `sendobj`/`recvobj`) |
//! | `lines` | lines ended by `\n` |
//! | `fixed:N` | every frame exactly `N` bytes |
//! | `json-header` | the socket tutorial's `u16` header length, JSON header, content |
//! | `packet` | the cs.packetstream packet stream (whole packets as frames) |

pub(crate) use framewire_tokio::gateway::FrameSpec;

use crate::error::CliError;

/// Parses a codec name, with `max_frame` as its limit if given.
pub(crate) fn parse(name: &str, max_frame: Option<usize>) -> Result<FrameSpec, CliError> {
    let spec: FrameSpec = name.parse().map_err(|source| CliError::Codec {
        spec: name.to_owned(),
        source,
    })?;
    Ok(match max_frame {
        Some(max) => with_max(spec, max),
        None => spec,
    })
}

/// `spec` with its limit set to `max` bytes: the frame (length prefix
/// included), the document, the line, the JSON-header content or the
/// packet. A fixed framing's limit is its size.
pub(crate) fn with_max(spec: FrameSpec, max: usize) -> FrameSpec {
    match spec {
        FrameSpec::Length(f) => FrameSpec::Length(f.with_max_frame_len(max)),
        FrameSpec::Bson(f) => FrameSpec::Bson(f.with_max_len(max)),
        FrameSpec::Lines(f) => FrameSpec::Lines(f.with_max_line_len(max)),
        FrameSpec::Fixed(f) => FrameSpec::Fixed(f),
        FrameSpec::JsonHeader(f) => FrameSpec::JsonHeader(f.with_max_content_len(max)),
        FrameSpec::Packet(f) => FrameSpec::Packet(f.with_max_packet_len(max)),
    }
}

/// Whether `spec` is the packet stream.
pub(crate) fn is_packet(spec: &FrameSpec) -> bool {
    matches!(spec, FrameSpec::Packet(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use framewire::framing::Framing;

    #[test]
    fn names_and_limits() {
        let mut out = [0u8; 16];
        let f = parse("length:2:le", None).unwrap();
        let n = f.encode(b"hi", &mut out).unwrap();
        assert_eq!(&out[..n], b"\x02\x00hi");
        let f = parse("lines", None).unwrap();
        let n = f.encode(b"hi", &mut out).unwrap();
        assert_eq!(&out[..n], b"hi\n");
        assert!(parse("fixed:3", None)
            .unwrap()
            .encode(b"hi", &mut out)
            .is_err());
        assert_eq!(parse("length", Some(8)).unwrap().max_frame_len(), 8);
        assert_eq!(parse("bson", Some(100)).unwrap().max_frame_len(), 100);
        assert_eq!(parse("packet", Some(64)).unwrap().max_frame_len(), 64);
        let f = parse("packet", None).unwrap();
        assert!(is_packet(&f));
        assert_eq!(f.encode(b"\x03\x00\x02\x00", &mut out), Ok(4));
        assert!(f.encode(b"hello", &mut out).is_err());
    }

    #[test]
    fn bad_names_are_one_line() {
        for (name, why) in [
            ("lenght", "unknown framing"),
            ("length:9", "length width \"9\""),
            ("length:4:middle", "byte order \"middle\""),
            ("fixed:0", "fixed size \"0\""),
            ("bson:1", "at most 0 parameter"),
        ] {
            let e = parse(name, None).unwrap_err().to_string();
            assert!(e.starts_with(&format!("bad codec {name:?}: ")), "{e}");
            assert!(e.contains(why), "{name}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}
