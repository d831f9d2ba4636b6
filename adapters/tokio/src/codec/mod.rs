//! `tokio_util::codec` codecs over the core's framings, and a zero-copy frame
//! writer.
//!
//! * [`FrameCodec<F>`]: a [`Decoder`] and [`Encoder`] for any
//!   [`Framing`] of the core — length-prefixed (fixed width or varint), BSON
//!   documents, delimited lines, fixed-size frames, JSON-header messages — so
//!   `tokio_util::codec::Framed<TcpStream, _>` works with every wire format of
//!   framewire. Decoded frames are [`Bytes`] that share the read buffer (no
//!   payload copy).
//! * [`FrameWriter<W, F>`]: writes frames with vectored writes, sending a large
//!   `Bytes` payload straight from its own memory (see *Encoding* below).
//! * `BsonObjectCodec<T>` (feature `bson`): serde values as BSON documents.
//! * [`CodecError`]: every failure, typed, with the numbers involved.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use framewire_tokio::codec::FrameCodec;
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let mut codec = FrameCodec::length_prefixed(); // u32 big-endian length
//! let mut buf = BytesMut::new();
//! codec.encode(Bytes::from_static(b"hello"), &mut buf)?;
//! assert_eq!(&buf[..], b"\0\0\0\x05hello");
//! assert_eq!(codec.decode(&mut buf)?, Some(Bytes::from_static(b"hello")));
//! assert_eq!(codec.decode(&mut buf)?, None);
//! # Ok::<(), framewire_tokio::codec::CodecError>(())
//! ```
//!
//! Over a socket:
//!
//! ```no_run
//! use futures_util::{SinkExt, StreamExt};
//! use framewire_tokio::codec::FrameCodec;
//! use tokio::net::TcpStream;
//! use tokio_util::codec::Framed;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let stream = TcpStream::connect("127.0.0.1:7000").await?;
//! let mut framed = Framed::new(stream, FrameCodec::lines());
//! framed.send(bytes::Bytes::from_static(b"hello")).await?; // "hello\n"
//! if let Some(line) = framed.next().await {
//!     println!("{:?}", line?);
//! }
//! SinkExt::<bytes::Bytes>::close(&mut framed).await?; // two Encoder impls: name the item
//! # Ok(()) }
//! ```
//!
//! # Decoding
//!
//! [`Decoder::decode`] runs the framing directly over tokio-util's read
//! buffer: a whole frame is cut off with `split_to(len)` and frozen, and the
//! payload is that frame without its header and trailer (`advance` and
//! `truncate`, no copy). The decode contract of the core applies:
//!
//! * **Limits.** At most [`max_buffered`](FrameCodec::max_buffered) bytes of
//!   an unfinished frame are kept (by default the framing's
//!   [`max_frame_len`](Framing::max_frame_len)): a frame known to need more,
//!   or a buffer that reaches the limit without a decision, is
//!   [`CodecError::FrameExceedsBuffer`]. The framings check their own limits
//!   on the header (a `ff ff ff ff` length prefix fails after four bytes). The
//!   read buffer grows geometrically with what has arrived, never by a length
//!   the peer announced, and never beyond `max_buffered` plus one read.
//! * **Oversize policy.** A framing configured with
//!   [`OversizePolicy::Skip`](framewire::framing::OversizePolicy::Skip) makes
//!   the codec discard an over-long frame — also one much longer than what is
//!   buffered: the rest is dropped from later input as it arrives — and go on
//!   with the next; skips are counted in [`CodecStats`].
//! * **End of stream.** [`Decoder::decode_eof`] first delivers every whole
//!   frame still buffered; a close inside a frame is then
//!   [`CodecError::Truncated`] with the bytes that arrived and, if known, the
//!   frame's size.
//! * **Errors are terminal**: after a protocol error every later call returns
//!   it again (tokio-util's `Framed` also ends the stream after an error).
//!
//! # Encoding
//!
//! A codec implements both `Encoder<Bytes>` and `Encoder<&[u8]>` (as
//! tokio-util's `BytesCodec` implements two), so `SinkExt` methods that do
//! not take an item (`flush`, `close`) need the item type spelled out:
//! `SinkExt::<Bytes>::close(&mut framed)`.
//!
//! [`Encoder<Bytes>`] and [`Encoder<&[u8]>`](Encoder) write header, payload
//! and trailer into tokio-util's write buffer. That is one copy of the
//! payload: `FramedWrite` has a single `BytesMut`, so no encoder can hand it a
//! `Bytes` without copying. In exchange many small frames leave in one
//! `write`. For large payloads use [`FrameWriter`] instead: it queues the
//! header (small payloads are copied next to it, so small frames still
//! coalesce) and the payload `Bytes` itself, and writes the queue with
//! `write_vectored`, so a 1 MiB body goes from its own memory to the socket.

mod writer;

#[cfg(feature = "bson")]
mod object;

use std::io;

use bytes::{Buf, Bytes, BytesMut};
use framewire::framing::{
    BsonDocument, Decode, Delimited, EncodeError, Fixed, FrameError, Framing, JsonHeader,
    LengthField, LengthPrefixed, Oversize,
};
use framewire::stream::ProtocolError;
use tokio_util::codec::{Decoder, Encoder};

#[cfg(feature = "bson")]
pub use self::object::BsonObjectCodec;
pub use self::writer::{FrameWriter, DEFAULT_BACKPRESSURE_BOUNDARY};

/// The least room [`FrameCodec`] reserves for an unfinished frame whose size
/// it knows (64 KiB), unless the frame or the limit needs less. Beyond it the
/// buffer grows with what has arrived (doubling), never by a peer's length
/// field alone.
pub const MIN_RESERVE: usize = 64 * 1024;

/// Why a codec failed.
///
/// [`Frame`](CodecError::Frame), [`Truncated`](CodecError::Truncated) and
/// [`FrameExceedsBuffer`](CodecError::FrameExceedsBuffer) are the peer's
/// doing (protocol errors; the codec is terminal after one);
/// [`Encode`](CodecError::Encode) is a payload this side cannot send (nothing
/// was written); [`Io`](CodecError::Io) comes from the transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The framing rejected the peer's bytes (with the numbers: the frame
    /// length and limit, the bad length field, ...).
    #[error("{0}")]
    Frame(FrameError),
    /// The stream ended inside a frame.
    #[error("{}", truncated_message(*.have, *.need))]
    Truncated {
        /// Bytes of the unfinished frame that arrived.
        have: usize,
        /// The frame's total size, if the framing knew it.
        need: Option<usize>,
    },
    /// An unfinished frame needs more than
    /// [`max_buffered`](FrameCodec::max_buffered) bytes.
    #[error("{}", exceeds_message(*.need, *.capacity))]
    FrameExceedsBuffer {
        /// The frame's size, if known.
        need: Option<usize>,
        /// The limit.
        capacity: usize,
    },
    /// The payload cannot be framed (too long, contains the delimiter, wrong
    /// size, not a well-formed document, ...). Nothing was written.
    #[error("cannot frame payload: {0}")]
    Encode(#[from] EncodeError),
    /// A BSON document does not encode or decode as the requested type
    /// (feature `bson`). The framing is intact: the stream may go on.
    #[cfg(feature = "bson")]
    #[error("BSON: {0}")]
    Bson(#[from] framewire::message::bson::BsonError),
    /// The transport failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

fn truncated_message(have: usize, need: Option<usize>) -> String {
    match need {
        Some(need) => format!("stream ended inside a frame: {have} of {need} bytes received"),
        None => format!("stream ended inside a frame: {have} bytes of an unfinished frame"),
    }
}

fn exceeds_message(need: Option<usize>, capacity: usize) -> String {
    match need {
        Some(need) => format!("frame needs {need} bytes, over the buffer limit of {capacity}"),
        None => format!("buffer limit of {capacity} bytes reached inside a frame"),
    }
}

impl CodecError {
    /// The peer's protocol error, if this is one.
    pub fn protocol(&self) -> Option<ProtocolError> {
        match *self {
            CodecError::Frame(e) => Some(ProtocolError::Frame(e)),
            CodecError::Truncated { have, need } => Some(ProtocolError::Truncated { have, need }),
            CodecError::FrameExceedsBuffer { need, capacity } => {
                Some(ProtocolError::FrameExceedsBuffer { need, capacity })
            }
            _ => None,
        }
    }
}

impl From<FrameError> for CodecError {
    fn from(e: FrameError) -> Self {
        CodecError::Frame(e)
    }
}

/// A terminal decode failure, kept to repeat it (`CodecError` is not `Copy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    Frame(FrameError),
    Truncated {
        have: usize,
        need: Option<usize>,
    },
    Exceeds {
        need: Option<usize>,
        capacity: usize,
    },
}

impl From<Failure> for CodecError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Frame(e) => CodecError::Frame(e),
            Failure::Truncated { have, need } => CodecError::Truncated { have, need },
            Failure::Exceeds { need, capacity } => {
                CodecError::FrameExceedsBuffer { need, capacity }
            }
        }
    }
}

impl From<CodecError> for io::Error {
    /// `InvalidData` for protocol errors, `UnexpectedEof` for a truncated
    /// frame, `InvalidInput` for an unsendable payload; I/O errors as they were.
    fn from(e: CodecError) -> Self {
        let kind = match &e {
            CodecError::Io(_) => {
                let CodecError::Io(inner) = e else {
                    unreachable!()
                };
                return inner;
            }
            CodecError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            CodecError::Encode(_) => io::ErrorKind::InvalidInput,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Counters of a [`FrameCodec`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CodecStats {
    /// Frames decoded.
    pub frames_decoded: u64,
    /// Frames encoded.
    pub frames_encoded: u64,
    /// Over-long frames skipped (only under the skip policy).
    pub frames_skipped: u64,
    /// Bytes discarded while skipping.
    pub bytes_skipped: u64,
    /// The last over-long frame skipped: its size (if known) and the limit.
    pub last_skipped: Option<Oversize>,
}

/// A [`Decoder`] / [`Encoder`] over any core [`Framing`]. See the
/// [module documentation](self).
///
/// ```
/// use bytes::BytesMut;
/// use framewire::framing::{LengthPrefixed, OversizePolicy};
/// use framewire_tokio::codec::FrameCodec;
/// use tokio_util::codec::Decoder;
///
/// // u32 length prefix, frames over 16 bytes skipped rather than fatal.
/// let mut codec = FrameCodec::new(
///     LengthPrefixed::new()
///         .with_max_frame_len(16)
///         .with_oversize(OversizePolicy::Skip),
/// );
/// let mut buf = BytesMut::from(&b"\0\0\0\x64only part of a 100-byte payload"[..]);
/// assert_eq!(codec.decode(&mut buf)?, None); // skipping; the rest arrives later
/// buf.extend_from_slice(&[b'x'; 100 - 31]);
/// buf.extend_from_slice(b"\0\0\0\x02ok");
/// assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(&b"ok"[..]));
/// assert_eq!(codec.stats().frames_skipped, 1);
/// # Ok::<(), framewire_tokio::codec::CodecError>(())
/// ```
#[derive(Clone, Debug)]
pub struct FrameCodec<F> {
    framing: F,
    max_buffered: usize,
    /// Bytes of a skipped frame still to drop from future input.
    skip_remaining: u64,
    /// The length of the skip in progress.
    skip_len: u64,
    /// Bytes dropped so far of the over-long frame being skipped.
    discarded_in_frame: u64,
    /// The framing's last `Incomplete { need }`.
    need: Option<usize>,
    failed: Option<Failure>,
    stats: CodecStats,
}

/// A codec for length-prefixed frames ([`FrameCodec::length_prefixed`],
/// [`FrameCodec::varint`]).
pub type LengthPrefixedCodec = FrameCodec<LengthPrefixed>;
/// A codec for BSON documents ([`FrameCodec::bson_document`]).
pub type BsonDocumentCodec = FrameCodec<BsonDocument>;
/// A codec for delimited frames ([`FrameCodec::lines`], [`FrameCodec::delimited`]).
pub type DelimitedCodec = FrameCodec<Delimited>;
/// A codec for fixed-size frames ([`FrameCodec::fixed`]).
pub type FixedCodec = FrameCodec<Fixed>;
/// A codec for JSON-header messages ([`FrameCodec::json_header`]).
pub type JsonHeaderCodec = FrameCodec<JsonHeader>;

impl<F: Framing + Default> Default for FrameCodec<F> {
    fn default() -> Self {
        FrameCodec::new(F::default())
    }
}

impl<F: Framing> FrameCodec<F> {
    /// A codec for `framing`, buffering at most its
    /// [`max_frame_len`](Framing::max_frame_len).
    pub fn new(framing: F) -> Self {
        let max_buffered = framing.max_frame_len().max(1);
        FrameCodec {
            framing,
            max_buffered,
            skip_remaining: 0,
            skip_len: 0,
            discarded_in_frame: 0,
            need: None,
            failed: None,
            stats: CodecStats::default(),
        }
    }

    /// Sets the most bytes of an unfinished frame kept before failing with
    /// [`CodecError::FrameExceedsBuffer`] (at least 1). Only useful below the
    /// framing's own limit.
    #[must_use]
    pub fn with_max_buffered(mut self, max: usize) -> Self {
        self.max_buffered = max.max(1);
        self
    }

    /// The receive limit (see [`with_max_buffered`](Self::with_max_buffered)).
    pub fn max_buffered(&self) -> usize {
        self.max_buffered
    }

    /// The framing.
    pub fn framing(&self) -> &F {
        &self.framing
    }

    /// The framing, to change its settings between frames.
    pub fn framing_mut(&mut self) -> &mut F {
        &mut self.framing
    }

    /// The framing, giving up the codec.
    pub fn into_framing(self) -> F {
        self.framing
    }

    /// Counters so far.
    pub fn stats(&self) -> CodecStats {
        self.stats
    }

    /// Whether a protocol error made the codec terminal.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    fn fail(&mut self, e: Failure) -> CodecError {
        self.failed = Some(e);
        CodecError::from(e)
    }

    /// Drops what a skip still owes from the front of `src`; returns whether
    /// the skip is finished.
    fn skip_buffered(&mut self, src: &mut BytesMut) -> bool {
        if self.skip_remaining == 0 {
            return true;
        }
        let n = usize::try_from(self.skip_remaining)
            .unwrap_or(usize::MAX)
            .min(src.len());
        src.advance(n);
        self.skip_remaining -= n as u64;
        self.stats.bytes_skipped += n as u64;
        self.discarded_in_frame += n as u64;
        self.skip_remaining == 0
    }

    /// Grows `src` for a frame of `need` bytes: by what has arrived (at least
    /// [`MIN_RESERVE`]), at most up to the frame's size and the limit.
    fn reserve(&self, src: &mut BytesMut, need: Option<usize>) {
        let buffered = src.len();
        let Some(need) = need else {
            return;
        };
        let target = need.min(self.max_buffered);
        let missing = target.saturating_sub(buffered);
        let grow = missing.min(buffered.max(MIN_RESERVE));
        if src.capacity() - buffered < grow {
            src.reserve(grow);
        }
    }

    fn encode_parts(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        let header = self.framing.header(payload)?;
        let header = header.as_slice();
        let trailer = self.framing.trailer();
        dst.reserve(header.len() + payload.len() + trailer.len());
        dst.extend_from_slice(header);
        dst.extend_from_slice(payload);
        dst.extend_from_slice(trailer);
        self.stats.frames_encoded += 1;
        Ok(())
    }
}

impl FrameCodec<LengthPrefixed> {
    /// socktools' framing: a `u32` big-endian payload length, 8 MiB frames
    /// ([`LengthPrefixed::new`]).
    pub fn length_prefixed() -> Self {
        FrameCodec::new(LengthPrefixed::new())
    }

    /// A BSUInt (varint) payload length, 8 MiB frames
    /// ([`LengthPrefixed::varint`]).
    pub fn varint() -> Self {
        FrameCodec::new(LengthPrefixed::varint())
    }

    /// A payload length in `field` (any width and byte order, or varint),
    /// otherwise the defaults of [`LengthPrefixed::new`].
    pub fn length_field(field: LengthField) -> Self {
        FrameCodec::new(LengthPrefixed::new().with_length_field(field))
    }
}

impl FrameCodec<BsonDocument> {
    /// py-bson's `sendobj`/`recvobj` framing: one BSON document per frame
    /// (the payload is the whole document), 16 MiB documents.
    pub fn bson_document() -> Self {
        FrameCodec::new(BsonDocument::new())
    }
}

impl FrameCodec<Delimited> {
    /// Lines ended by `\n` (not delivered), 64 KiB lines.
    pub fn lines() -> Self {
        FrameCodec::new(Delimited::new())
    }

    /// Frames ended by `delimiter` (1 to 8 bytes, not delivered), 64 KiB
    /// frames. Panics on an empty or longer delimiter.
    pub fn delimited(delimiter: &[u8]) -> Self {
        FrameCodec::new(Delimited::new().with_delimiter(delimiter))
    }
}

impl FrameCodec<Fixed> {
    /// Frames of exactly `size` bytes. Panics if `size` is 0.
    pub fn fixed(size: usize) -> Self {
        FrameCodec::new(Fixed::new(size))
    }
}

impl FrameCodec<JsonHeader> {
    /// The socket tutorial's JSON-header messages (the payload is the whole
    /// message; read it with [`framewire::message::json_header`]).
    pub fn json_header() -> Self {
        FrameCodec::new(JsonHeader::new())
    }
}

impl<F: Framing> Decoder for FrameCodec<F> {
    type Item = Bytes;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if let Some(e) = self.failed {
            return Err(e.into());
        }
        loop {
            if !self.skip_buffered(src) || src.is_empty() {
                return Ok(None);
            }
            let buffered = src.len();
            match self.framing.decode(src) {
                Ok(Decode::Frame { len, payload }) => {
                    assert!(
                        len > 0 && len <= buffered && payload.start <= payload.end && payload.end <= len,
                        "framing bug: Frame {{ len: {len}, payload: {payload:?} }} with {buffered} bytes buffered"
                    );
                    self.need = None;
                    self.stats.frames_decoded += 1;
                    let mut frame = src.split_to(len);
                    frame.truncate(payload.end);
                    frame.advance(payload.start);
                    return Ok(Some(frame.freeze()));
                }
                Ok(Decode::Skip { len, oversize }) => {
                    assert!(len > 0, "framing bug: Skip of 0 bytes");
                    self.need = None;
                    self.skip_remaining = len;
                    self.skip_len = len;
                    if let Some(o) = oversize {
                        self.discarded_in_frame = 0;
                        self.stats.frames_skipped += 1;
                        self.stats.last_skipped = Some(o);
                        tracing::debug!(len = ?o.len, max = o.max, "skipping an over-long frame");
                    }
                }
                Ok(Decode::Incomplete { need }) => {
                    let capacity = self.max_buffered;
                    if need.is_some_and(|n| n > capacity) || buffered >= capacity {
                        return Err(self.fail(Failure::Exceeds { need, capacity }));
                    }
                    self.need = need;
                    self.reserve(src, need);
                    return Ok(None);
                }
                Err(e) => return Err(self.fail(Failure::Frame(e))),
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if self.skip_remaining > 0 {
            let have = self.skip_len - self.skip_remaining;
            return Err(self.fail(Failure::Truncated {
                have: usize::try_from(have).unwrap_or(usize::MAX),
                need: usize::try_from(self.skip_len).ok(),
            }));
        }
        if src.is_empty() {
            if self.framing.is_discarding() {
                return Err(self.fail(Failure::Truncated {
                    have: usize::try_from(self.discarded_in_frame).unwrap_or(usize::MAX),
                    need: None,
                }));
            }
            return Ok(None);
        }
        Err(self.fail(Failure::Truncated {
            have: src.len(),
            need: self.need,
        }))
    }
}

impl<F: Framing> Encoder<Bytes> for FrameCodec<F> {
    type Error = CodecError;

    /// Header, payload and trailer into `dst` (one copy of the payload; see
    /// [`FrameWriter`] for none).
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_parts(&item, dst)
    }
}

impl<F: Framing> Encoder<&[u8]> for FrameCodec<F> {
    type Error = CodecError;

    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), CodecError> {
        self.encode_parts(item, dst)
    }
}
