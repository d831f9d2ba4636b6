//! Delimited frames: lines ended by `\n` (socktools' line mode, the socket
//! HOWTO's delimiter option), or by any byte sequence of up to
//! [`Delimited::MAX_DELIMITER_LEN`] bytes.
//!
//! The decoder remembers how far it has scanned across
//! [`Decode::Incomplete`] results, so a long line arriving in small pieces is
//! scanned once, not once per piece. A line longer than the limit is reported
//! as soon as the bytes present prove it, without waiting for its delimiter.

use super::{Decode, EncodeError, FrameError, FrameHeader, Framing, Oversize, OversizePolicy};

/// Frames ended by a delimiter.
///
/// Configuration (all `with_*` builders):
///
/// * the delimiter, 1..=[`MAX_DELIMITER_LEN`](Self::MAX_DELIMITER_LEN) bytes
///   (default `\n`);
/// * `keep_delimiter`: the payload includes the delimiter, as socktools' line
///   mode delivers `readline()`'s result (default off);
/// * `strip_cr`: drop one `\r` just before the delimiter from the payload
///   (accept `\r\n` line ends); ignored when the delimiter is kept (default
///   off);
/// * the maximum line length, counted without the delimiter (a `\r` that
///   `strip_cr` removes counts; default
///   [`DEFAULT_MAX_LINE_LEN`](Self::DEFAULT_MAX_LINE_LEN), 64 KiB);
/// * what to do with a longer line (default [`OversizePolicy::Fail`]).
///
/// An over-long line is detected when no delimiter can start within its
/// first `max + 1` bytes. Under `Fail` that is
/// [`FrameError::LineTooLong`] with `len = max + 1` (the line is at least that
/// long; reported at the first byte over the limit, so the value does not
/// depend on how the input was chunked). Under `Skip` the line is discarded up
/// to and including the next delimiter: the first [`Decode::Skip`] carries
/// `oversize: Some(Oversize { len: None, max })`, the following ones (as more
/// of the line arrives) carry `None`.
///
/// ```
/// use framewire::framing::{Decode, Delimited, Framing};
/// let mut f = Delimited::new().with_strip_cr(true);
/// assert_eq!(f.decode(b"hel").unwrap(), Decode::Incomplete { need: None });
/// assert_eq!(f.decode(b"hello\r\nmore").unwrap(), Decode::Frame { len: 7, payload: 0..5 });
/// let mut out = [0u8; 8];
/// let n = f.encode(b"hi", &mut out).unwrap();
/// assert_eq!(&out[..n], b"hi\n");
/// ```
///
/// socktools' line mode, where the line keeps its `\n` and encoding is the
/// identity:
///
/// ```
/// use framewire::framing::{Decode, Delimited, Framing};
/// let mut f = Delimited::new().with_keep_delimiter(true);
/// assert_eq!(f.decode(b"hello\n").unwrap(), Decode::Frame { len: 6, payload: 0..6 });
/// let mut out = [0u8; 8];
/// assert_eq!(f.encode(b"hello\n", &mut out), Ok(6));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Delimited {
    delimiter: [u8; Delimited::MAX_DELIMITER_LEN],
    delimiter_len: u8,
    strip_cr: bool,
    keep_delimiter: bool,
    max_line_len: usize,
    oversize: OversizePolicy,
    /// No delimiter starts before this offset of the buffer (scan progress
    /// kept across `Incomplete`).
    scanned: usize,
    /// Discarding the rest of an over-long line (`Skip` policy).
    discarding: bool,
    /// How the next line is searched for: a word at a time first while
    /// lines are short (the last delimiter within [`WORD_SCAN`] bytes of
    /// where its search began), else with `memchr` alone.
    search: Search,
}

/// How [`find_byte`] looks for a one-byte delimiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
enum Search {
    /// The first [`WORD_SCAN`] bytes a word at a time, `memchr` beyond.
    Words,
    /// `memchr` alone.
    Memchr,
}

impl Default for Delimited {
    fn default() -> Self {
        Delimited::new()
    }
}

impl Delimited {
    /// The longest delimiter.
    pub const MAX_DELIMITER_LEN: usize = 8;

    /// The default limit on a line's length (without its delimiter): 64 KiB.
    pub const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;

    /// Lines ended by `\n`, delimiter not delivered, no `\r` stripping, lines
    /// up to 64 KiB, over-long lines fail the stream.
    pub const fn new() -> Self {
        let mut delimiter = [0u8; Self::MAX_DELIMITER_LEN];
        delimiter[0] = b'\n';
        Delimited {
            delimiter,
            delimiter_len: 1,
            strip_cr: false,
            keep_delimiter: false,
            max_line_len: Self::DEFAULT_MAX_LINE_LEN,
            oversize: OversizePolicy::Fail,
            scanned: 0,
            search: Search::Words,
            discarding: false,
        }
    }

    /// Sets the delimiter. Panics if it is empty or longer than
    /// [`MAX_DELIMITER_LEN`](Self::MAX_DELIMITER_LEN) (a configuration bug).
    #[must_use]
    pub const fn with_delimiter(mut self, delimiter: &[u8]) -> Self {
        assert!(
            !delimiter.is_empty() && delimiter.len() <= Self::MAX_DELIMITER_LEN,
            "a delimiter is 1 to 8 bytes"
        );
        let mut i = 0;
        while i < delimiter.len() {
            self.delimiter[i] = delimiter[i];
            i += 1;
        }
        self.delimiter_len = delimiter.len() as u8;
        self
    }

    /// Sets whether one `\r` before the delimiter is dropped from the payload.
    /// Has no effect when the delimiter is kept.
    #[must_use]
    pub const fn with_strip_cr(mut self, strip_cr: bool) -> Self {
        self.strip_cr = strip_cr;
        self
    }

    /// Sets whether the payload includes the delimiter (socktools' line
    /// mode). Encoding then expects the payload to end with the delimiter
    /// already, and adds nothing.
    #[must_use]
    pub const fn with_keep_delimiter(mut self, keep: bool) -> Self {
        self.keep_delimiter = keep;
        self
    }

    /// Sets the longest line accepted or sent, not counting the delimiter.
    #[must_use]
    pub const fn with_max_line_len(mut self, max: usize) -> Self {
        self.max_line_len = max;
        self
    }

    /// Sets what happens to a received line over the limit.
    #[must_use]
    pub const fn with_oversize(mut self, policy: OversizePolicy) -> Self {
        self.oversize = policy;
        self
    }

    /// The delimiter.
    #[inline]
    pub fn delimiter(&self) -> &[u8] {
        &self.delimiter[..usize::from(self.delimiter_len)]
    }

    /// The longest line accepted, without its delimiter.
    pub const fn max_line_len(&self) -> usize {
        self.max_line_len
    }

    /// The over-long line policy.
    pub const fn oversize(&self) -> OversizePolicy {
        self.oversize
    }

    /// Looks for the delimiter in `buf` starting at `from`. `Ok(i)`: the
    /// first delimiter starts at `i`. `Err(p)`: none starts before `p`, and
    /// one may still start at `p` once more bytes arrive (`buf[p..]` is a
    /// proper prefix of the delimiter), or `p == buf.len()`.
    #[inline]
    fn find(&self, buf: &[u8], from: usize) -> Result<usize, usize> {
        let delimiter = self.delimiter();
        let first = delimiter[0];
        if delimiter.len() == 1 {
            // The common case (`\n`, `\0`): one byte, no window to compare.
            let search = self.search;
            return match buf
                .get(from..)
                .and_then(|rest| find_byte(first, rest, search))
            {
                Some(k) => Ok(from + k),
                None => Err(buf.len()),
            };
        }
        self.find_long(buf, from)
    }

    /// [`find`](Self::find) for a delimiter of more than one byte (kept out
    /// of line so that the one-byte case inlines into the decode loop).
    #[inline(never)]
    fn find_long(&self, buf: &[u8], from: usize) -> Result<usize, usize> {
        let delimiter = self.delimiter();
        let first = delimiter[0];
        let mut at = from;
        loop {
            let Some(rest) = buf.get(at..) else {
                return Err(buf.len());
            };
            let Some(k) = find_byte(first, rest, self.search) else {
                return Err(buf.len());
            };
            let start = at + k;
            let tail = &buf[start..];
            match tail.get(..delimiter.len()) {
                Some(window) if window == delimiter => return Ok(start),
                None if delimiter.starts_with(tail) => return Err(start),
                // Not a delimiter here: look on from the next byte.
                _ => {}
            }
            at = start + 1;
        }
    }

    #[cold]
    fn too_long(&mut self, skip_len: usize) -> Result<Decode, FrameError> {
        let max = self.max_line_len;
        match self.oversize {
            OversizePolicy::Fail => Err(FrameError::LineTooLong {
                len: max.saturating_add(1),
                max,
            }),
            OversizePolicy::Skip => {
                self.scanned = 0;
                self.discarding = true;
                Ok(Decode::Skip {
                    len: skip_len as u64,
                    oversize: Some(Oversize { len: None, max }),
                })
            }
        }
    }

    /// Discard mode: drop everything up to and including the next delimiter,
    /// keeping only a possible delimiter prefix at the end of `buf`.
    #[cold]
    fn discard(&mut self, buf: &[u8]) -> Decode {
        match self.find(buf, 0) {
            Ok(start) => {
                self.discarding = false;
                Decode::Skip {
                    len: (start + self.delimiter().len()) as u64,
                    oversize: None,
                }
            }
            Err(0) => Decode::Incomplete { need: None },
            Err(p) => Decode::Skip {
                len: p as u64,
                oversize: None,
            },
        }
    }

    /// The first position at which the delimiter occurs in `payload`
    /// followed by `trailer`, if that is before `payload.len()`.
    fn first_in_payload(&self, payload: &[u8], trailer: &[u8]) -> Option<usize> {
        let delimiter = self.delimiter();
        match self.find(payload, 0) {
            Ok(at) => Some(at),
            // A delimiter prefix at the end of the payload, completed by
            // the trailer? Try every possible start in that tail.
            Err(p) => (p..payload.len()).find(|&s| {
                let part = &payload[s..];
                let rest = &delimiter[part.len()..];
                delimiter.starts_with(part) && trailer.starts_with(rest)
            }),
        }
    }
}

impl Framing for Delimited {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        if self.discarding {
            return Ok(self.discard(buf));
        }
        let d = self.delimiter().len();
        // A delimiter starting after `max` means the line is too long: never
        // look further than that.
        let window = &buf[..buf.len().min(self.max_line_len.saturating_add(d))];
        let from = self.scanned.min(window.len());
        match self.find(window, from) {
            Ok(start) => {
                self.search = if start - from < WORD_SCAN {
                    Search::Words
                } else {
                    Search::Memchr
                };
                self.scanned = 0;
                let end = if self.keep_delimiter {
                    start + d
                } else if self.strip_cr && start > 0 && buf[start - 1] == b'\r' {
                    start - 1
                } else {
                    start
                };
                Ok(Decode::Frame {
                    len: start + d,
                    payload: 0..end,
                })
            }
            Err(p) if p > self.max_line_len => self.too_long(p),
            Err(p) => {
                self.scanned = p;
                Ok(Decode::Incomplete { need: None })
            }
        }
    }

    fn max_frame_len(&self) -> usize {
        self.max_line_len.saturating_add(self.delimiter().len())
    }

    /// Checks `payload`. Without `keep_delimiter` the payload must not
    /// contain the delimiter (nor end in a part of it that the trailing
    /// delimiter would complete early, nor, with `strip_cr`, end in `\r`,
    /// which the decoder would strip: [`EncodeError::ContainsDelimiter`] at
    /// that `\r`); with `keep_delimiter` it must contain
    /// the delimiter exactly once, at its end
    /// ([`EncodeError::Malformed`] if it does not end with it).
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        let d = self.delimiter().len();
        let (line_len, max) = if self.keep_delimiter {
            (
                payload.len().saturating_sub(d),
                self.max_line_len.saturating_add(d),
            )
        } else {
            (payload.len(), self.max_line_len)
        };
        if line_len > self.max_line_len {
            return Err(EncodeError::PayloadTooLong {
                len: payload.len(),
                max,
            });
        }
        if self.keep_delimiter {
            match self.find(payload, 0) {
                Ok(at) if at + d == payload.len() => Ok(FrameHeader::EMPTY),
                Ok(at) => Err(EncodeError::ContainsDelimiter { at }),
                Err(_) => Err(EncodeError::Malformed),
            }
        } else {
            match self.first_in_payload(payload, self.delimiter()) {
                Some(at) => Err(EncodeError::ContainsDelimiter { at }),
                // With `strip_cr` the decoder takes a `\r` before the
                // delimiter as part of the line end: a payload ending in one
                // would come back without it.
                None if self.strip_cr && payload.last() == Some(&b'\r') => {
                    Err(EncodeError::ContainsDelimiter {
                        at: payload.len() - 1,
                    })
                }
                None => Ok(FrameHeader::EMPTY),
            }
        }
    }

    fn trailer(&self) -> &[u8] {
        if self.keep_delimiter {
            &[]
        } else {
            self.delimiter()
        }
    }

    fn is_discarding(&self) -> bool {
        self.discarding
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.discarding = false;
        self.search = Search::Words;
    }
}

/// Where [`find_byte`] stops reading words and hands over to `memchr`.
const WORD_SCAN: usize = 32;

/// The first `byte` in `hay`. With [`Search::Words`] the first [`WORD_SCAN`] bytes
/// are searched a word (8 bytes) at a time and the rest with `memchr`: for a
/// short line `memchr`'s dispatch to its vector code costs more than the
/// search itself (16-byte lines: about a third of the time per line).
/// With [`Search::Memchr`], `memchr` alone (the decoder asks for words while lines are
/// short, so long lines pay nothing for them).
#[inline]
fn find_byte(byte: u8, hay: &[u8], search: Search) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(byte);
    let mut at = 0;
    while search == Search::Words && at < WORD_SCAN {
        let Some(Ok(word)) = hay.get(at..at + 8).map(<[u8; 8]>::try_from) else {
            break;
        };
        // A zero byte of `x` is a match. The lowest flagged byte is the
        // first zero (a borrow only ever flags bytes above a zero).
        let x = u64::from_le_bytes(word) ^ pattern;
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(byte, &hay[at..]).map(|k| at + k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testkit::{
        cuts, frames, outs_all_ways, run_all_ways, run_chunked, settled, Out, Run,
    };
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    fn encode_vec(f: &Delimited, payload: &[u8]) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0xa5; f.encoded_len(payload)?];
        assert_eq!(f.encode(payload, &mut out)?, out.len());
        Ok(out)
    }

    #[test]
    fn newline_lines_with_trailing_data() {
        let run = run_all_ways(&Delimited::new(), b"a\nbc\n\nd");
        assert_eq!(frames(&run), [b"a".to_vec(), b"bc".to_vec(), b"".to_vec()]);
        assert_eq!(run.leftover, b"d");
        // `\r` is not special by default.
        let run = run_all_ways(&Delimited::new(), b"a\r\n");
        assert_eq!(frames(&run), [b"a\r".to_vec()]);
    }

    #[test]
    fn socktools_line_mode_golden() {
        // WIRE.md §3: `hello\n` = 68656c6c6f0a, delivered with its `\n`.
        let f = Delimited::new().with_keep_delimiter(true);
        let run = run_all_ways(&f, &[0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a, 0x68]);
        assert_eq!(frames(&run), [b"hello\n".to_vec()]);
        assert_eq!(run.leftover, b"h");
        assert_eq!(encode_vec(&f, b"hello\n").unwrap(), b"hello\n");
        assert_eq!(f.encode(b"hello", &mut [0; 8]), Err(EncodeError::Malformed));
        assert_eq!(
            f.encode(b"he\nllo\n", &mut [0; 8]),
            Err(EncodeError::ContainsDelimiter { at: 2 })
        );
        // The limit counts the line without its delimiter.
        let f = f.with_max_line_len(5);
        assert!(f.encode(b"hello\n", &mut [0; 8]).is_ok());
        assert_eq!(
            f.encode(b"hello!\n", &mut [0; 8]),
            Err(EncodeError::PayloadTooLong { len: 7, max: 6 })
        );
    }

    #[test]
    fn strip_cr() {
        let f = Delimited::new().with_strip_cr(true);
        let run = run_all_ways(&f, b"a\r\nb\n\r\r\n\r\n");
        assert_eq!(
            frames(&run),
            [b"a".to_vec(), b"b".to_vec(), b"\r".to_vec(), b"".to_vec()]
        );
        // A payload ending in `\r` would come back without it: refused
        // (found by fuzzing, framing_delimited).
        assert_eq!(
            encode_vec(&f, b"ab\r"),
            Err(EncodeError::ContainsDelimiter { at: 2 })
        );
        assert_eq!(encode_vec(&f, b"a\rb").unwrap(), b"a\rb\n");
        let f3 = Delimited::new()
            .with_delimiter(b"\n\n\n")
            .with_strip_cr(true);
        assert_eq!(
            encode_vec(&f3, b"\xffvR\r"),
            Err(EncodeError::ContainsDelimiter { at: 3 })
        );
        // Ignored when the delimiter is kept (the payload is one range).
        let f = f.with_keep_delimiter(true);
        let run = run_all_ways(&f, b"a\r\n");
        assert_eq!(frames(&run), [b"a\r\n".to_vec()]);
        assert_eq!(encode_vec(&f, b"a\r\n").unwrap(), b"a\r\n");
    }

    #[test]
    fn multi_byte_delimiter() {
        let f = Delimited::new().with_delimiter(b"\r\n");
        let run = run_all_ways(&f, b"a\r\nb\rc\n\r\n\r\r\n\r");
        assert_eq!(
            frames(&run),
            [b"a".to_vec(), b"b\rc\n".to_vec(), b"\r".to_vec()]
        );
        assert_eq!(run.leftover, b"\r");
        assert_eq!(encode_vec(&f, b"x\ny").unwrap(), b"x\ny\r\n");
        assert_eq!(
            f.encode(b"x\r\ny", &mut [0; 8]),
            Err(EncodeError::ContainsDelimiter { at: 1 })
        );
        // A self-overlapping delimiter.
        let f = Delimited::new().with_delimiter(b"abab");
        let run = run_all_ways(&f, b"xabababyababab");
        assert_eq!(frames(&run), [b"x".to_vec(), b"aby".to_vec()]);
        assert_eq!(run.leftover, b"ab");
    }

    #[test]
    fn payload_tail_completed_by_the_trailer_is_refused() {
        // "xa" + "aa" = "xaaa": the receiver would cut at 1.
        let f = Delimited::new().with_delimiter(b"aa");
        assert_eq!(
            f.encode(b"xa", &mut [0; 8]),
            Err(EncodeError::ContainsDelimiter { at: 1 })
        );
        let f = Delimited::new().with_delimiter(b"\r\n");
        // "a\r" + "\r\n" is fine: the first delimiter is the trailer.
        let framed = encode_vec(&f, b"a\r").unwrap();
        assert_eq!(frames(&run_all_ways(&f, &framed)), [b"a\r".to_vec()]);
        let f = Delimited::new().with_delimiter(b"aba");
        // "xab" + "aba": "aba" first occurs at 2.
        assert_eq!(
            f.encode(b"xab", &mut [0; 8]),
            Err(EncodeError::ContainsDelimiter { at: 1 })
        );
    }

    #[test]
    fn encode_checks() {
        let f = Delimited::new().with_max_line_len(4);
        assert_eq!(encode_vec(&f, b"abcd").unwrap(), b"abcd\n");
        assert_eq!(
            f.encode(b"abcde", &mut [0; 8]),
            Err(EncodeError::PayloadTooLong { len: 5, max: 4 })
        );
        assert_eq!(
            f.encode(b"a\nb", &mut [0; 8]),
            Err(EncodeError::ContainsDelimiter { at: 1 })
        );
        assert_eq!(
            f.encode(b"abc", &mut [0; 3]),
            Err(EncodeError::BufferTooSmall { required: 4 })
        );
        assert_eq!(f.max_frame_len(), 5);
    }

    #[test]
    fn over_long_line_fails_before_its_delimiter() {
        let f = Delimited::new().with_max_line_len(4);
        let mut g = f.clone();
        assert_eq!(
            g.decode(b"abcd").unwrap(),
            Decode::Incomplete { need: None }
        );
        assert_eq!(
            g.decode(b"abcde"),
            Err(FrameError::LineTooLong { len: 5, max: 4 })
        );
        assert_eq!(
            outs_all_ways(&f, b"abcd\nabcdefghij\nok\n"),
            [
                Out::Frame(b"abcd".to_vec()),
                Out::Error(FrameError::LineTooLong { len: 5, max: 4 })
            ]
        );
        // With a two-byte delimiter a line of exactly max bytes waits for the
        // second delimiter byte; a fifth line byte is proof.
        let f = Delimited::new()
            .with_delimiter(b"\r\n")
            .with_max_line_len(4);
        let mut g = f.clone();
        assert_eq!(
            g.decode(b"abcd\r").unwrap(),
            Decode::Incomplete { need: None }
        );
        assert_eq!(
            g.decode(b"abcd\rx"),
            Err(FrameError::LineTooLong { len: 5, max: 4 })
        );
        assert_eq!(
            outs_all_ways(&f, b"abcd\r\nabcd\rx\r\n"),
            [
                Out::Frame(b"abcd".to_vec()),
                Out::Error(FrameError::LineTooLong { len: 5, max: 4 })
            ]
        );
    }

    #[test]
    fn over_long_lines_skipped_once_reported() {
        let skipped = Out::Skipped(Oversize { len: None, max: 4 });
        let f = Delimited::new()
            .with_max_line_len(4)
            .with_oversize(OversizePolicy::Skip);
        let run = run_all_ways(&f, b"abcdefghij\nok\nabcde\n\nxyz");
        assert_eq!(
            run.out,
            [
                skipped.clone(),
                Out::Frame(b"ok".to_vec()),
                skipped.clone(),
                Out::Frame(b"".to_vec())
            ]
        );
        assert_eq!(run.leftover, b"xyz");
        // Byte by byte the over-long line is reported once, then skipped in
        // pieces without another report.
        let mut g = f.clone();
        assert_eq!(
            g.decode(b"abcde").unwrap(),
            Decode::Skip {
                len: 5,
                oversize: Some(Oversize { len: None, max: 4 })
            }
        );
        assert_eq!(
            g.decode(b"fg").unwrap(),
            Decode::Skip {
                len: 2,
                oversize: None
            }
        );
        assert_eq!(
            g.decode(b"h\nok").unwrap(),
            Decode::Skip {
                len: 2,
                oversize: None
            }
        );
        assert_eq!(
            g.decode(b"ok\n").unwrap(),
            Decode::Frame {
                len: 3,
                payload: 0..2
            }
        );
    }

    #[test]
    fn skip_with_a_delimiter_split_across_chunks() {
        let skipped = Out::Skipped(Oversize { len: None, max: 3 });
        let f = Delimited::new()
            .with_delimiter(b"\r\n")
            .with_max_line_len(3)
            .with_oversize(OversizePolicy::Skip);
        // run_all_ways cuts everywhere, including between `\r` and `\n`.
        let run = run_all_ways(&f, b"abcd\rx\r\r\nok\r\nabcdefg\r\nyes\r\n\r");
        assert_eq!(
            run.out,
            [
                skipped.clone(),
                Out::Frame(b"ok".to_vec()),
                skipped,
                Out::Frame(b"yes".to_vec())
            ]
        );
        assert_eq!(run.leftover, b"\r");
        // While discarding, a trailing `\r` is kept back until we know.
        let mut g = f.clone();
        assert!(matches!(
            g.decode(b"abcd").unwrap(),
            Decode::Skip { len: 4, .. }
        ));
        assert_eq!(g.decode(b"\r").unwrap(), Decode::Incomplete { need: None });
        assert_eq!(
            g.decode(b"\r\n").unwrap(),
            Decode::Skip {
                len: 2,
                oversize: None
            }
        );
        // reset() leaves discard mode.
        let mut g = f;
        assert!(matches!(g.decode(b"abcd").unwrap(), Decode::Skip { .. }));
        g.reset();
        assert_eq!(
            g.decode(b"ok\r\n").unwrap(),
            Decode::Frame {
                len: 4,
                payload: 0..2
            }
        );
    }

    #[test]
    fn scan_progress_is_kept_across_incomplete() {
        let mut f = Delimited::new().with_delimiter(b"\r\n");
        let mut buf = Vec::new();
        for _ in 0..1000 {
            buf.push(b'x');
            assert_eq!(f.decode(&buf).unwrap(), Decode::Incomplete { need: None });
        }
        assert_eq!(f.scanned, 1000);
        buf.push(b'\r');
        assert_eq!(f.decode(&buf).unwrap(), Decode::Incomplete { need: None });
        assert_eq!(f.scanned, 1000, "a delimiter may start at the `\\r`");
        buf.push(b'\n');
        assert_eq!(
            f.decode(&buf).unwrap(),
            Decode::Frame {
                len: 1002,
                payload: 0..1000
            }
        );
        assert_eq!(f.scanned, 0);
    }

    #[test]
    fn zero_max_line_len_allows_only_empty_lines() {
        let f = Delimited::new().with_max_line_len(0);
        assert_eq!(
            outs_all_ways(&f, b"\n\nx\n"),
            [
                Out::Frame(Vec::new()),
                Out::Frame(Vec::new()),
                Out::Error(FrameError::LineTooLong { len: 1, max: 0 })
            ]
        );
    }

    #[test]
    #[should_panic(expected = "1 to 8 bytes")]
    fn empty_delimiter_is_a_config_bug() {
        let _ = Delimited::new().with_delimiter(b"");
    }

    /// The obvious decoder over the whole input.
    fn reference(f: &Delimited, input: &[u8]) -> Run {
        let d = f.delimiter();
        let max = f.max_line_len();
        let skip = f.oversize() == OversizePolicy::Skip;
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            let found = rest.windows(d.len()).position(|w| w == d);
            let over = |out: &mut Vec<Out>| {
                if skip {
                    out.push(Out::Skipped(Oversize { len: None, max }));
                } else {
                    out.push(Out::Error(FrameError::LineTooLong { len: max + 1, max }));
                }
            };
            match found {
                Some(i) if i <= max => {
                    let mut line = &rest[..i + d.len()];
                    if !f.keep_delimiter {
                        line = &line[..i];
                        if f.strip_cr && line.last() == Some(&b'\r') {
                            line = &line[..i - 1];
                        }
                    }
                    out.push(Out::Frame(line.to_vec()));
                    pos += i + d.len();
                }
                Some(i) => {
                    over(&mut out);
                    if !skip {
                        return Run {
                            out,
                            leftover: Vec::new(),
                        };
                    }
                    pos += i + d.len();
                }
                None => {
                    // Where could a delimiter still start?
                    let p = (0..=rest.len())
                        .find(|&p| d.starts_with(&rest[p..]) && p < rest.len())
                        .unwrap_or(rest.len());
                    if p > max {
                        over(&mut out);
                        let leftover = if skip { rest[p..].to_vec() } else { Vec::new() };
                        return Run { out, leftover };
                    }
                    return Run {
                        out,
                        leftover: rest.to_vec(),
                    };
                }
            }
        }
    }

    fn configs() -> impl Strategy<Value = Delimited> {
        let delimiter = prop_oneof![
            Just(b"\n".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"ab".to_vec()),
            Just(b"aab".to_vec()),
            Just(b"abab".to_vec()),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(b'\r')], 1..=8),
        ];
        (
            delimiter,
            0usize..12,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(d, max, strip, keep, skip)| {
                Delimited::new()
                    .with_delimiter(&d)
                    .with_max_line_len(max)
                    .with_strip_cr(strip)
                    .with_keep_delimiter(keep)
                    .with_oversize(if skip {
                        OversizePolicy::Skip
                    } else {
                        OversizePolicy::Fail
                    })
            })
    }

    fn small_alphabet(len: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'a'), Just(b'b'), Just(b'\r'), Just(b'\n'), Just(b'x')],
            0..len,
        )
    }

    #[test]
    fn find_byte_in_words_at_their_edges_and_beyond() {
        for len in 0..80 {
            for at in 0..len {
                let mut hay = std::vec![b'a'; len];
                hay[at] = b'\n';
                // A second match later must not win.
                if at + 3 < len {
                    hay[at + 3] = b'\n';
                }
                for search in [Search::Words, Search::Memchr] {
                    assert_eq!(
                        find_byte(b'\n', &hay, search),
                        Some(at),
                        "len {len}, at {at}"
                    );
                }
            }
            assert_eq!(
                find_byte(b'\n', &std::vec![b'a'; len], Search::Words),
                None,
                "len {len}"
            );
        }
        // Bytes next to the pattern (0x0a ± 1, 0x8a) are no match.
        assert_eq!(
            find_byte(b'\n', &[0x09, 0x0b, 0x8a, 0x0a], Search::Words),
            Some(3)
        );
        assert_eq!(
            find_byte(0x00, &[0x01, 0x80, 0xff, 0x00, 0x00], Search::Words),
            Some(3)
        );
        assert_eq!(
            find_byte(0xff, &[0xfe, 0x7f, 0x00, 0x01, 0xff], Search::Words),
            Some(4)
        );
    }

    proptest! {
        /// The word scan answers what `memchr` does.
        #[test]
        fn find_byte_agrees_with_memchr(
            byte: u8,
            hay in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(1u8), Just(0x7f), Just(0x80), Just(0xff), any::<u8>()],
                0..100,
            ),
        ) {
            prop_assert_eq!(find_byte(byte, &hay, Search::Words), memchr::memchr(byte, &hay));
            prop_assert_eq!(find_byte(byte, &hay, Search::Memchr), memchr::memchr(byte, &hay));
        }

        #[test]
        fn matches_reference_in_any_chunking(f in configs(), input in small_alphabet(80), c in cuts(8)) {
            let expected = reference(&f, &input);
            prop_assert_eq!(&settled(run_chunked(&mut f.clone(), &input, &c)), &expected);
            prop_assert_eq!(
                &settled(run_chunked(&mut f.clone(), &input, &vec![1; input.len()])),
                &expected
            );
        }

        #[test]
        fn round_trip(f in configs(), payloads in proptest::collection::vec(small_alphabet(14), 0..6), c in cuts(8)) {
            let mut input = Vec::new();
            let mut sent = Vec::new();
            for p in &payloads {
                if let Ok(framed) = encode_vec(&f, p) {
                    input.extend_from_slice(&framed);
                    sent.push(p.clone());
                }
            }
            // Every payload that encodes comes back unchanged (a payload
            // that strip_cr would change is refused).
            let run = run_chunked(&mut f.clone(), &input, &c);
            prop_assert_eq!(frames(&run), sent);
            prop_assert!(run.leftover.is_empty());
        }

        #[test]
        fn arbitrary_bytes_split_invariant(
            input in proptest::collection::vec(any::<u8>(), 0..300),
            max in 0usize..100,
            skip: bool,
            c in cuts(32),
        ) {
            let f = Delimited::new().with_max_line_len(max).with_oversize(
                if skip { OversizePolicy::Skip } else { OversizePolicy::Fail });
            let whole = settled(run_chunked(&mut f.clone(), &input, &[]));
            prop_assert_eq!(&settled(run_chunked(&mut f.clone(), &input, &c)), &whole);
            prop_assert_eq!(&whole, &reference(&f, &input));
        }
    }
}
