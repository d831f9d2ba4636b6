//! Serde values as BSON documents (feature `bson`), py-bson's
//! `sendobj`/`recvobj` over a `Framed` transport.

use std::fmt;
use std::marker::PhantomData;

use bytes::BytesMut;
use framewire::framing::BsonDocument;
use framewire::message::bson as fbson;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::codec::{Decoder, Encoder};

use super::{CodecError, FrameCodec};

/// A codec of serde values, one BSON document each (feature `bson`): the
/// async form of py-bson's `sendobj` / `recvobj`, through
/// [`framewire::message::bson`].
///
/// Decoding cuts documents with [`BsonDocument`] (16 MiB by default, see
/// [`with_max_len`](Self::with_max_len)) and deserializes each into `T`. A
/// document that does not deserialize as `T` is [`CodecError::Bson`]; the
/// framing is intact after it (the document was consumed), so the caller may
/// read on. Encoding accepts `T` or `&T`.
///
/// ```
/// use bytes::BytesMut;
/// use framewire_tokio::codec::BsonObjectCodec;
/// use tokio_util::codec::{Decoder, Encoder};
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Hello { hello: String }
///
/// let mut codec = BsonObjectCodec::<Hello>::new();
/// let mut buf = BytesMut::new();
/// codec.encode(&Hello { hello: "world".into() }, &mut buf)?;
/// // bson.dumps({"hello": "world"})
/// assert_eq!(&buf[..], b"\x16\0\0\0\x02hello\0\x06\0\0\0world\0\0");
/// assert_eq!(codec.decode(&mut buf)?, Some(Hello { hello: "world".into() }));
/// # Ok::<(), framewire_tokio::codec::CodecError>(())
/// ```
pub struct BsonObjectCodec<T> {
    frames: FrameCodec<BsonDocument>,
    max_len: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for BsonObjectCodec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BsonObjectCodec")
            .field("frames", &self.frames)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl<T> Default for BsonObjectCodec<T> {
    fn default() -> Self {
        BsonObjectCodec::new()
    }
}

impl<T> Clone for BsonObjectCodec<T> {
    fn clone(&self) -> Self {
        BsonObjectCodec {
            frames: self.frames.clone(),
            max_len: self.max_len,
            _type: PhantomData,
        }
    }
}

impl<T> BsonObjectCodec<T> {
    /// Documents of up to [`BsonDocument::DEFAULT_MAX_LEN`] (16 MiB) both ways.
    pub fn new() -> Self {
        BsonObjectCodec::with_max_len(BsonDocument::DEFAULT_MAX_LEN)
    }

    /// Documents of up to `max` bytes, received or sent.
    pub fn with_max_len(max: usize) -> Self {
        let framing = BsonDocument::new().with_max_len(max);
        let max_len = framing_max(&framing);
        BsonObjectCodec {
            frames: FrameCodec::new(framing),
            max_len,
            _type: PhantomData,
        }
    }

    /// The document framing codec underneath (its counters and limits).
    pub fn frames(&self) -> &FrameCodec<BsonDocument> {
        &self.frames
    }
}

fn framing_max(framing: &BsonDocument) -> usize {
    use framewire::framing::Framing;
    framing.max_frame_len()
}

impl<T: DeserializeOwned> Decoder for BsonObjectCodec<T> {
    type Item = T;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<T>, CodecError> {
        match self.frames.decode(src)? {
            Some(doc) => Ok(Some(fbson::from_slice_with_max(&doc, self.max_len)?)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<T>, CodecError> {
        match self.frames.decode_eof(src)? {
            Some(doc) => Ok(Some(fbson::from_slice_with_max(&doc, self.max_len)?)),
            None => Ok(None),
        }
    }
}

impl<T: Serialize> Encoder<&T> for BsonObjectCodec<T> {
    type Error = CodecError;

    /// Serializes `item` into one document and appends it to `dst`; nothing
    /// is added to `dst` on error.
    fn encode(&mut self, item: &T, dst: &mut BytesMut) -> Result<(), CodecError> {
        let doc = fbson::to_vec_with_max(item, self.max_len)?;
        dst.extend_from_slice(&doc);
        Ok(())
    }
}

impl<T: Serialize> Encoder<T> for BsonObjectCodec<T> {
    type Error = CodecError;

    fn encode(&mut self, item: T, dst: &mut BytesMut) -> Result<(), CodecError> {
        <Self as Encoder<&T>>::encode(self, &item, dst)
    }
}
