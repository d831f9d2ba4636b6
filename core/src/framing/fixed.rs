//! Fixed-size frames: every message is exactly N bytes (the socket HOWTO's
//! first option). There is nothing to check on input, so the only peer error
//! is a close inside a frame, which the stream reports as truncation.

use super::{Decode, EncodeError, FrameError, FrameHeader, Framing};

/// Every frame is exactly `size` bytes; the payload is the whole frame.
///
/// ```
/// use framewire::framing::{Decode, Fixed, Framing};
/// let mut f = Fixed::new(4);
/// assert_eq!(f.decode(b"abc").unwrap(), Decode::Incomplete { need: Some(4) });
/// assert_eq!(f.decode(b"abcdef").unwrap(), Decode::Frame { len: 4, payload: 0..4 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fixed {
    size: usize,
}

impl Fixed {
    /// Frames of `size` bytes. Panics if `size` is 0 (a zero-size frame would
    /// produce endless frames from no input).
    pub const fn new(size: usize) -> Self {
        assert!(size > 0, "fixed frame size must be at least 1");
        Fixed { size }
    }

    /// The frame size.
    pub const fn size(&self) -> usize {
        self.size
    }
}

impl Framing for Fixed {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        if buf.len() < self.size {
            Ok(Decode::Incomplete {
                need: Some(self.size),
            })
        } else {
            Ok(Decode::Frame {
                len: self.size,
                payload: 0..self.size,
            })
        }
    }

    fn max_frame_len(&self) -> usize {
        self.size
    }

    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        if payload.len() == self.size {
            Ok(FrameHeader::EMPTY)
        } else {
            Err(EncodeError::WrongSize {
                len: payload.len(),
                expected: self.size,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testkit::{cuts, frames, run_all_ways, run_chunked};
    use proptest::prelude::*;

    #[test]
    fn frames_whole_bytewise_and_split_with_trailing_data() {
        let run = run_all_ways(&Fixed::new(3), b"abcdefgh");
        assert_eq!(frames(&run), [b"abc".to_vec(), b"def".to_vec()]);
        assert_eq!(run.leftover, b"gh");
    }

    #[test]
    fn encode_checks_size_and_buffer() {
        let f = Fixed::new(4);
        let mut out = [0xa5u8; 8];
        assert_eq!(f.encode(b"abcd", &mut out), Ok(4));
        assert_eq!(&out[..5], b"abcd\xa5");
        assert_eq!(
            f.encode(b"abc", &mut out),
            Err(EncodeError::WrongSize {
                len: 3,
                expected: 4
            })
        );
        assert_eq!(
            f.encode(b"abcd", &mut out[..2]),
            Err(EncodeError::BufferTooSmall { required: 4 })
        );
    }

    proptest! {
        #[test]
        fn random_splits(data in proptest::collection::vec(any::<u8>(), 0..200), size in 1usize..17, c in cuts(40)) {
            let whole = run_chunked(&mut Fixed::new(size), &data, &[]);
            prop_assert_eq!(&whole, &run_chunked(&mut Fixed::new(size), &data, &c));
            prop_assert_eq!(frames(&whole).len(), data.len() / size);
        }
    }
}
