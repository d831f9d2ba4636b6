//! BSON documents back to back, as py-bson's `sendobj`/`recvobj` put them on a
//! socket: no extra framing, each document's own first 4 bytes are its total
//! length (a little-endian int32 that counts those 4 bytes and the trailing
//! `0x00`).
//!
//! Only the outer shape is checked here (length, limit, terminator). The
//! elements are the message layer's business.
//!
//! # Stricter than py-bson
//!
//! py-bson 0.5.10 has no length limit, and a length of 4 or less makes it read
//! no body at all: the 4 header bytes are parsed as a document (`L = 0, 2, 3,
//! 4` give `{}`) and the bytes that follow are read as the *next* message, so
//! the stream silently desynchronises (WIRE.md, quirks). framewire rejects
//! every length below 5, the smallest document (`05 00 00 00 00`), with
//! [`FrameError::BsonLength`], and refuses documents over the limit (16 MiB by
//! default) as soon as the length is read.

use super::{Decode, EncodeError, FrameError, FrameHeader, Framing, Oversize, OversizePolicy};

/// The smallest BSON document: the length and the terminator (`{}`).
const MIN_DOCUMENT_LEN: usize = 5;

/// BSON documents, each one frame; the payload is the whole document,
/// length field included (what `bson.loads` takes).
///
/// ```
/// use framewire::framing::{BsonDocument, Decode, Framing};
/// // bson.dumps({"hello": "world"})
/// let doc = b"\x16\0\0\0\x02hello\0\x06\0\0\0world\0\0";
/// let mut f = BsonDocument::new();
/// assert_eq!(f.decode(&doc[..7]).unwrap(), Decode::Incomplete { need: Some(22) });
/// assert_eq!(f.decode(doc).unwrap(), Decode::Frame { len: 22, payload: 0..22 });
/// // Encoding checks the document and adds nothing.
/// let mut out = [0u8; 22];
/// assert_eq!(f.encode(doc, &mut out), Ok(22));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BsonDocument {
    max_len: usize,
    oversize: OversizePolicy,
}

impl Default for BsonDocument {
    fn default() -> Self {
        BsonDocument::new()
    }
}

impl BsonDocument {
    /// The default limit on a document's size: 16 MiB, MongoDB's maximum
    /// BSON document size.
    pub const DEFAULT_MAX_LEN: usize = 16 * 1024 * 1024;

    /// Documents up to [`BsonDocument::DEFAULT_MAX_LEN`], failing on a bigger one.
    pub const fn new() -> Self {
        BsonDocument {
            max_len: Self::DEFAULT_MAX_LEN,
            oversize: OversizePolicy::Fail,
        }
    }

    /// Sets the largest document accepted or sent. Values over `i32::MAX`
    /// (the largest length the format can state) act as `i32::MAX`.
    #[must_use]
    pub const fn with_max_len(mut self, max: usize) -> Self {
        self.max_len = if max > i32::MAX as usize {
            i32::MAX as usize
        } else {
            max
        };
        self
    }

    /// Sets what happens to a received document over the limit: fail
    /// ([`FrameError::FrameTooLong`], the default) or skip it whole. A skipped
    /// document's terminator is not checked.
    #[must_use]
    pub const fn with_oversize(mut self, policy: OversizePolicy) -> Self {
        self.oversize = policy;
        self
    }

    /// The over-long document policy.
    pub const fn oversize(&self) -> OversizePolicy {
        self.oversize
    }
}

impl Framing for BsonDocument {
    #[inline]
    fn decode(&mut self, buf: &[u8]) -> Result<Decode, FrameError> {
        let Some(&[a, b, c, d]) = buf.first_chunk::<4>() else {
            return Ok(Decode::Incomplete { need: Some(4) });
        };
        let declared = i32::from_le_bytes([a, b, c, d]);
        let len = match usize::try_from(declared) {
            Ok(len) if len >= MIN_DOCUMENT_LEN => len,
            _ => return Err(FrameError::BsonLength { len: declared }),
        };
        if len > self.max_len {
            let max = self.max_len;
            let len = len as u64;
            return match self.oversize {
                OversizePolicy::Fail => Err(FrameError::FrameTooLong { len, max }),
                OversizePolicy::Skip => Ok(Decode::Skip {
                    len,
                    oversize: Some(Oversize {
                        len: Some(len),
                        max,
                    }),
                }),
            };
        }
        match buf.get(len - 1) {
            None => Ok(Decode::Incomplete { need: Some(len) }),
            Some(0) => Ok(Decode::Frame {
                len,
                payload: 0..len,
            }),
            Some(&found) => Err(FrameError::BsonTerminator { found }),
        }
    }

    fn max_frame_len(&self) -> usize {
        self.max_len
    }

    /// Checks that `payload` is one well-formed document by the rules
    /// [`decode`](Framing::decode) applies: a length field equal to its size
    /// (at least 5) and a `0x00` at the end; the header is empty.
    fn header(&self, payload: &[u8]) -> Result<FrameHeader, EncodeError> {
        let len = payload.len();
        if len > self.max_len {
            return Err(EncodeError::PayloadTooLong {
                len,
                max: self.max_len,
            });
        }
        let declared = payload.first_chunk::<4>().map(|&b| i32::from_le_bytes(b));
        let well_formed = len >= MIN_DOCUMENT_LEN
            && declared.and_then(|d| usize::try_from(d).ok()) == Some(len)
            && payload.last() == Some(&0);
        if well_formed {
            Ok(FrameHeader::EMPTY)
        } else {
            Err(EncodeError::Malformed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::testkit::{
        cuts, frames, outs_all_ways, run_all_ways, run_chunked, settled, Out,
    };
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    use crate::testutil::unhex;

    /// WIRE.md §1: `bson.dumps({"hello": "world"})`.
    const HELLO: &str = "16000000 02 68656c6c6f00 06000000 776f726c6400 00";
    /// WIRE.md §1: the benchmark document `{"seq": 0, "pad": b"x"*26}`.
    const BENCH: &str = "3200000010736571000000000005706164001a00000000787878787878787878787878787878787878787878787878787800";
    /// `bson.dumps({})` and `bson.dumps({"a": [1, {"b": None}]})` (py-bson 0.5.10).
    const EMPTY: &str = "0500000000";
    const NESTED: &str = "1f0000000461001700000010300001000000033100080000000a6200000000";

    #[test]
    fn golden_documents_in_a_stream() {
        let docs: Vec<Vec<u8>> = [HELLO, BENCH, EMPTY, NESTED]
            .iter()
            .map(|h| unhex(h))
            .collect();
        assert_eq!(docs[0].len(), 22);
        assert_eq!(docs[1].len(), 50);
        let mut input = docs.concat();
        input.extend_from_slice(&[0x16, 0, 0]);
        let run = run_all_ways(&BsonDocument::new(), &input);
        assert_eq!(frames(&run), docs);
        assert_eq!(run.leftover, [0x16, 0, 0]);
        let f = BsonDocument::new();
        for doc in &docs {
            let mut out = vec![0xa5; doc.len() + 1];
            assert_eq!(f.encode(doc, &mut out), Ok(doc.len()));
            assert_eq!(&out[..doc.len()], &doc[..]);
            assert_eq!(out[doc.len()], 0xa5);
        }
    }

    #[test]
    fn short_and_negative_lengths_are_refused() {
        // py-bson returns {} for L = 0, 2, 3, 4 and desynchronises; we refuse.
        for len in [0i32, 1, 2, 3, 4, -1, i32::MIN] {
            let mut input = len.to_le_bytes().to_vec();
            input.extend_from_slice(&unhex(HELLO));
            assert_eq!(
                outs_all_ways(&BsonDocument::new(), &input),
                [Out::Error(FrameError::BsonLength { len })],
                "length {len}"
            );
        }
    }

    #[test]
    fn bad_terminator() {
        let mut doc = unhex(HELLO);
        *doc.last_mut().unwrap() = 0x7f;
        assert_eq!(
            outs_all_ways(&BsonDocument::new(), &doc),
            [Out::Error(FrameError::BsonTerminator { found: 0x7f })]
        );
        // L = 5 with a non-zero last byte (py-bson: ValueError).
        assert_eq!(
            outs_all_ways(&BsonDocument::new(), b"\x05\0\0\0\x01"),
            [Out::Error(FrameError::BsonTerminator { found: 1 })]
        );
    }

    #[test]
    fn huge_length_fails_as_soon_as_it_is_read() {
        let mut f = BsonDocument::new();
        let err = FrameError::FrameTooLong {
            len: 0x7fff_ffff,
            max: BsonDocument::DEFAULT_MAX_LEN,
        };
        assert_eq!(f.decode(b"\xff\xff\xff\x7f"), Err(err));
        assert_eq!(
            outs_all_ways(&f, b"\x05\0\0\0\0\xff\xff\xff\x7f\x02a"),
            [Out::Frame(b"\x05\0\0\0\0".to_vec()), Out::Error(err)]
        );
        // The limit itself is allowed.
        let f = BsonDocument::new().with_max_len(22);
        assert_eq!(frames(&run_all_ways(&f, &unhex(HELLO))).len(), 1);
        let f = BsonDocument::new().with_max_len(21);
        assert_eq!(
            outs_all_ways(&f, &unhex(HELLO)),
            [Out::Error(FrameError::FrameTooLong { len: 22, max: 21 })]
        );
    }

    #[test]
    fn skip_policy_drops_oversize_documents() {
        let f = BsonDocument::new()
            .with_max_len(40)
            .with_oversize(OversizePolicy::Skip);
        let input = [unhex(HELLO), unhex(BENCH), unhex(EMPTY)].concat();
        let run = run_all_ways(&f, &input);
        assert_eq!(
            run.out,
            [
                Out::Frame(unhex(HELLO)),
                Out::Skipped(Oversize {
                    len: Some(50),
                    max: 40
                }),
                Out::Frame(unhex(EMPTY)),
            ]
        );
    }

    #[test]
    fn max_len_is_capped_at_i32_max() {
        assert_eq!(
            BsonDocument::new().with_max_len(usize::MAX).max_frame_len(),
            i32::MAX as usize
        );
    }

    #[test]
    fn encode_rejects_malformed_documents() {
        let f = BsonDocument::new();
        let mut out = [0u8; 64];
        let hello = unhex(HELLO);
        let mut wrong_len = hello.clone();
        wrong_len[0] = 21;
        let mut no_nul = hello.clone();
        *no_nul.last_mut().unwrap() = b'x';
        for bad in [
            &b""[..],
            b"\x04\0\0\0",
            b"\x05\0\0\0",
            &wrong_len,
            &no_nul,
            &hello[..21],
        ] {
            assert_eq!(
                f.encode(bad, &mut out),
                Err(EncodeError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            f.encode(&hello, &mut out[..21]),
            Err(EncodeError::BufferTooSmall { required: 22 })
        );
        assert_eq!(
            BsonDocument::new()
                .with_max_len(21)
                .encode(&hello, &mut out),
            Err(EncodeError::PayloadTooLong { len: 22, max: 21 })
        );
    }

    fn doc(body: &[u8]) -> Vec<u8> {
        let mut d = ((body.len() + 5) as i32).to_le_bytes().to_vec();
        d.extend_from_slice(body);
        d.push(0);
        d
    }

    proptest! {
        #[test]
        fn round_trip_any_split(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..6),
            c in cuts(24),
        ) {
            let f = BsonDocument::new();
            let docs: Vec<Vec<u8>> = bodies.iter().map(|b| doc(b)).collect();
            let mut input = Vec::new();
            for d in &docs {
                let mut out = vec![0; f.encoded_len(d).unwrap()];
                f.encode(d, &mut out).unwrap();
                input.extend_from_slice(&out);
            }
            let run = run_chunked(&mut f.clone(), &input, &c);
            prop_assert_eq!(frames(&run), docs);
        }

        #[test]
        fn arbitrary_bytes_split_invariant(
            input in proptest::collection::vec(any::<u8>(), 0..120),
            max in 5usize..64,
            skip: bool,
            c in cuts(24),
        ) {
            // Small lengths so both documents and errors show up.
            let mut input = input;
            if input.len() >= 4 {
                input[1] = 0;
                input[2] = 0;
                input[3] = 0;
            }
            let f = BsonDocument::new().with_max_len(max).with_oversize(
                if skip { OversizePolicy::Skip } else { OversizePolicy::Fail });
            let whole = settled(run_chunked(&mut f.clone(), &input, &[]));
            prop_assert_eq!(&settled(run_chunked(&mut f.clone(), &input, &c)), &whole);
            for o in &whole.out {
                if let Out::Frame(d) = o {
                    prop_assert!(f.header(d).is_ok());
                }
            }
        }
    }
}
