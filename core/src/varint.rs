//! cs.binary's `BSUInt`: an unsigned integer in big-endian base-128.
//!
//! Each octet carries 7 bits of the value, most significant group first; the
//! high bit (0x80) is set on every octet except the last. This is the length
//! prefix and the field encoding of cs.packetstream.
//!
//! ```text
//! 0 → 00    127 → 7f    128 → 81 00    300 → 82 2c    16384 → 81 80 00
//! ```
//!
//! The original decoder accepts non-canonical encodings (leading `0x80`
//! octets, so `80 05` is 5) and has no upper bound. framewire accepts the same
//! non-canonical forms by default (for compatibility) but bounds the number of
//! octets ([`VarintRules::max_octets`]) and reports a value that does not fit
//! in a `u64` as [`VarintError::Overflow`] instead of wrapping. Set
//! [`VarintRules::require_canonical`] to reject leading `0x80` octets.
//!
//! ```
//! use framewire::varint::{self, VarintRules};
//! let mut buf = [0u8; varint::MAX_OCTETS];
//! let n = varint::encode(300, &mut buf).unwrap();
//! assert_eq!(&buf[..n], &[0x82, 0x2c]);
//! assert_eq!(varint::decode(&buf[..n], VarintRules::default()), Ok(Some((300, 2))));
//! // Not enough bytes yet:
//! assert_eq!(varint::decode(&[0x82], VarintRules::default()), Ok(None));
//! ```

use core::fmt;

/// Octets in the canonical encoding of `u64::MAX`.
pub const MAX_OCTETS: usize = 10;

/// How strictly [`decode`] reads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct VarintRules {
    /// Reject encodings with leading `0x80` octets (the original accepts them).
    /// Default: `false`.
    pub require_canonical: bool,
    /// The most octets one integer may take, leading `0x80` octets included.
    /// Default: [`MAX_OCTETS`] (10), enough for every canonical `u64`.
    pub max_octets: usize,
}

impl Default for VarintRules {
    fn default() -> Self {
        VarintRules {
            require_canonical: false,
            max_octets: MAX_OCTETS,
        }
    }
}

impl VarintRules {
    /// Canonical encodings only, at most [`MAX_OCTETS`] octets.
    pub const STRICT: VarintRules = VarintRules {
        require_canonical: true,
        max_octets: MAX_OCTETS,
    };
}

/// Why a varint could not be decoded. These are peer protocol errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum VarintError {
    /// The value does not fit in a `u64`; `octets` were read when it overflowed.
    Overflow {
        /// Octets read, including the one that overflowed.
        octets: usize,
    },
    /// More continuation octets than [`VarintRules::max_octets`] allows.
    TooManyOctets {
        /// The limit that was exceeded.
        max: usize,
    },
    /// A leading `0x80` octet while [`VarintRules::require_canonical`] is set.
    NonCanonical,
}

impl fmt::Display for VarintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarintError::Overflow { octets } => {
                write!(f, "varint overflows u64 after {octets} octets")
            }
            VarintError::TooManyOctets { max } => {
                write!(f, "varint longer than {max} octets")
            }
            VarintError::NonCanonical => f.write_str("varint has a leading 0x80 octet"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for VarintError {}

/// The output buffer was too small; `required` bytes are needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall {
    /// Bytes the encoding needs.
    pub required: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "buffer too small: {} bytes required", self.required)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BufferTooSmall {}

/// Octets in the canonical encoding of `value` (1..=10).
pub const fn encoded_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Writes the canonical encoding of `value` to the start of `out`.
pub fn encode(value: u64, out: &mut [u8]) -> Result<usize, BufferTooSmall> {
    let len = encoded_len(value);
    let Some(out) = out.get_mut(..len) else {
        return Err(BufferTooSmall { required: len });
    };
    for (i, octet) in out.iter_mut().enumerate() {
        let shift = 7 * (len - 1 - i);
        let group = ((value >> shift) & 0x7f) as u8;
        *octet = if i + 1 == len { group } else { group | 0x80 };
    }
    Ok(len)
}

/// The canonical encoding of `value` in a small array, with its length.
///
/// ```
/// let (bytes, len) = framewire::varint::encode_array(128);
/// assert_eq!(&bytes[..len], &[0x81, 0x00]);
/// ```
pub fn encode_array(value: u64) -> ([u8; MAX_OCTETS], usize) {
    let mut bytes = [0u8; MAX_OCTETS];
    let len = encode(value, &mut bytes).unwrap_or(0);
    (bytes, len)
}

/// Reads one varint from the start of `buf`.
///
/// Returns `Ok(Some((value, octets)))`, `Ok(None)` if `buf` ends before the
/// last octet (read more and call again with the longer buffer), or an error.
/// Errors are reported as soon as the bytes present prove them, so a peer
/// cannot make the caller buffer an endless varint.
#[inline]
pub fn decode(buf: &[u8], rules: VarintRules) -> Result<Option<(u64, usize)>, VarintError> {
    // One octet (values below 128: most tags, flags, types and short
    // lengths) decides nothing the loop below would check differently.
    match *buf {
        [a, ..] if a < 0x80 && rules.max_octets > 0 => Ok(Some((u64::from(a), 1))),
        // Two octets (tags up to 16,383) read straight: no loop, no
        // overflow possible; a leading 0x80 goes the long way, which
        // refuses it when canonical form is required.
        [a, b, ..] if b < 0x80 && a != 0x80 && rules.max_octets >= 2 => {
            Ok(Some(((u64::from(a & 0x7f) << 7) | u64::from(b), 2)))
        }
        _ => decode_octets(buf, rules),
    }
}

/// [`decode`] octet by octet.
fn decode_octets(buf: &[u8], rules: VarintRules) -> Result<Option<(u64, usize)>, VarintError> {
    let mut value: u64 = 0;
    for (i, &octet) in buf.iter().enumerate() {
        if i >= rules.max_octets {
            return Err(VarintError::TooManyOctets {
                max: rules.max_octets,
            });
        }
        if i == 0 && octet == 0x80 && rules.require_canonical {
            return Err(VarintError::NonCanonical);
        }
        if value > (u64::MAX >> 7) {
            return Err(VarintError::Overflow { octets: i + 1 });
        }
        value = (value << 7) | u64::from(octet & 0x7f);
        if octet & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= rules.max_octets {
        return Err(VarintError::TooManyOctets {
            max: rules.max_octets,
        });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// cs.binary's BSUInt test cases, and the examples from WIRE.md.
    const VECTORS: &[(u64, &[u8])] = &[
        (0, &[0x00]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x81, 0x00]),
        (255, &[0x81, 0x7f]),
        (300, &[0x82, 0x2c]),
        (16383, &[0xff, 0x7f]),
        (16384, &[0x81, 0x80, 0x00]),
        (2_097_151, &[0xff, 0xff, 0x7f]),
        (2_097_152, &[0x81, 0x80, 0x80, 0x00]),
        (268_435_455, &[0xff, 0xff, 0xff, 0x7f]),
        (268_435_456, &[0x81, 0x80, 0x80, 0x80, 0x00]),
        (1 << 32, &[0x90, 0x80, 0x80, 0x80, 0x00]),
        (
            u64::MAX,
            &[0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ),
    ];

    #[test]
    fn golden_vectors_encode_and_decode() {
        for &(value, bytes) in VECTORS {
            let (buf, len) = encode_array(value);
            assert_eq!(&buf[..len], bytes, "encode {value}");
            assert_eq!(encoded_len(value), bytes.len());
            assert_eq!(
                decode(bytes, VarintRules::STRICT),
                Ok(Some((value, bytes.len()))),
                "decode {value}"
            );
        }
    }

    #[test]
    fn every_prefix_is_incomplete() {
        for &(_, bytes) in VECTORS {
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut], VarintRules::default()), Ok(None));
            }
        }
    }

    #[test]
    fn trailing_bytes_are_left_alone() {
        assert_eq!(
            decode(&[0x82, 0x2c, 0xff, 0xff], VarintRules::default()),
            Ok(Some((300, 2)))
        );
    }

    #[test]
    fn non_canonical_accepted_by_default_rejected_when_strict() {
        assert_eq!(
            decode(&[0x80, 0x05], VarintRules::default()),
            Ok(Some((5, 2)))
        );
        assert_eq!(
            decode(&[0x80, 0x05], VarintRules::STRICT),
            Err(VarintError::NonCanonical)
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        // 2^64 needs 65 bits.
        let too_big = [0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        assert_eq!(
            decode(&too_big, VarintRules::default()),
            Err(VarintError::Overflow { octets: 10 })
        );
    }

    #[test]
    fn endless_continuation_is_bounded() {
        let endless = [0x80u8; 64];
        assert_eq!(
            decode(&endless, VarintRules::default()),
            Err(VarintError::TooManyOctets { max: MAX_OCTETS })
        );
        // Reported as soon as the limit is reached, not only when a terminator arrives.
        assert_eq!(
            decode(&endless[..MAX_OCTETS], VarintRules::default()),
            Err(VarintError::TooManyOctets { max: MAX_OCTETS })
        );
    }

    #[test]
    fn encode_reports_required_size() {
        let mut small = [0u8; 1];
        assert_eq!(encode(300, &mut small), Err(BufferTooSmall { required: 2 }));
    }

    #[test]
    fn one_octet_is_still_too_many_when_none_are_allowed() {
        let none = VarintRules {
            require_canonical: false,
            max_octets: 0,
        };
        assert_eq!(
            decode(&[0x05], none),
            Err(VarintError::TooManyOctets { max: 0 })
        );
    }

    proptest! {
        #[test]
        fn round_trip(value: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let (buf, len) = encode_array(value);
            let mut input = buf[..len].to_vec();
            input.extend_from_slice(&tail);
            prop_assert_eq!(decode(&input, VarintRules::STRICT), Ok(Some((value, len))));
        }
    }
}
