//! Serde-typed BSON documents, compatible with py-bson 0.5.10 (`bson.dumps` / `bson.loads`).
//!
//! A py-bson peer sends and receives exactly one BSON document per message (WIRE.md §1); the
//! framing layer cuts the stream into documents, this module turns a document into a Rust
//! value and back through serde and the [`bson`] crate.
//!
//! * [`to_vec`] / [`encode_into`] / [`from_slice`]: the serde encoder and decoder of the
//!   `bson` crate (its non-human-readable mode), with a length limit
//!   ([`DEFAULT_MAX_DOCUMENT_LEN`]) and a typed [`BsonError`]. Documents holding only
//!   doubles, strings, documents, arrays, generic binaries, booleans, nulls and integers are
//!   read by a deserializer of framewire's own that gives the same values (see *Fast path*).
//! * [`to_document`] / [`from_document`]: the same through a dynamic [`Document`]
//!   (`to_document(x)?.to_vec()` gives the same bytes as `to_vec(x)`).
//! * [`to_vec_pybson`] / [`pybson_normalize`]: bytes identical to what `bson.dumps` produces
//!   for the same data (see *Integers* below), refusing element types py-bson cannot read.
//! * [`PyInt`] / [`PyUInt`] (and the field helpers [`py_int`] / [`py_uint`]): integers that
//!   pick the BSON type the way py-bson does and accept every integer type py-bson sends.
//!
//! # Type mapping
//!
//! | py-bson value | BSON type | Rust type that reads it | Rust type that writes the same bytes |
//! |---|---|---|---|
//! | `bool` | 0x08 | `bool` | `bool` |
//! | `int` in i32 range | 0x10 | `i32`, `i64`, [`PyInt`], [`PyUInt`] (if ≥ 0) | `i32`, `i8`, `i16`, `u8`, `u16`, [`PyInt`], [`PyUInt`] |
//! | `int` in i64 range, outside i32 | 0x12 | `i64`, [`PyInt`], [`PyUInt`] (if ≥ 0) | `i64`, [`PyInt`], [`PyUInt`] |
//! | `int` 2⁶³ … 2⁶⁴−1 | **0x11** | [`PyUInt`], [`bson::Timestamp`] | [`PyUInt`], [`timestamp_from_py_uint64`] |
//! | `float`, `Decimal` | 0x01 | `f64` | `f64`, `f32` |
//! | `str` | 0x02 | `String`, `&str` (borrowed from the input) | `String`, `&str`, `char` |
//! | `bytes` | 0x05 subtype 0 | [`bson::Binary`] | [`bson::Binary`] with `BinarySubtype::Generic` |
//! | `uuid.UUID` | 0x05 subtype 4 | [`bson::Uuid`] | [`bson::Uuid`] |
//! | `datetime` | 0x09 | [`bson::DateTime`] | [`bson::DateTime`] |
//! | `None` | 0x0A | `Option<T>`, `()` | `None`, `()` |
//! | `dict` | 0x03 | structs, maps, [`Document`] | structs, maps, [`Document`] (key order kept) |
//! | `list`, `tuple` | 0x04 | `Vec<T>`, tuples, arrays | `Vec<T>`, tuples, arrays |
//!
//! # Integers: where the `bson` crate and py-bson differ
//!
//! py-bson chooses the integer type by *value*: int32 when the value fits, else int64, else
//! its non-standard uint64 (type 0x11, which the BSON spec calls "Timestamp"). The `bson`
//! crate chooses by *Rust type*: `i64` is always int64 (0x12), `u32` is int64 too, and a `u64`
//! above `i64::MAX` is an encode error. So `struct { n: i64 }` holding 5 encodes as
//! `… 12 6e00 0500000000000000 …` where py-bson writes `… 10 6e00 05000000 …`. Both sides
//! *read* either form, so this only matters when bytes must be identical (golden tests,
//! signatures, caches). To get py-bson's bytes, either
//!
//! * use [`PyInt`] / [`PyUInt`] fields (or `#[serde(with = "py_int")]` on an `i64` field and
//!   `#[serde(with = "py_uint")]` on a `u64` field), or
//! * encode with [`to_vec_pybson`], which narrows every int64 that fits into int32.
//!
//! A value py-bson encodes as 0x11 reaches Rust as a [`bson::Timestamp`] whose `time` is the
//! high and `increment` the low 32 bits of the integer; a plain `u64` field cannot read it,
//! [`PyUInt`] / [`py_uint`] can ([`py_uint64_from_timestamp`] converts by hand).
//!
//! # What a py-bson peer makes of other types
//!
//! py-bson reads only types 0x01–0x05, 0x07–0x0A and 0x10–0x12, and a document echoed by
//! py-bson comes back changed (vectors `echo_*` in `testdata/pybson_vectors.txt`):
//!
//! * ObjectId (0x07) is read as the 24 ASCII hex digits, and sent back as *binary subtype 0*
//!   holding those digits ([`object_id_from_pybson`] turns them back into an ObjectId).
//! * Binary subtype 3 (legacy UUID) is read as a UUID and sent back as subtype 4; any other
//!   subtype is sent back as subtype 0.
//! * int64 holding an i32-sized value comes back as int32, a small 0x11 value as int32.
//! * Other types (regex, JavaScript, decimal128, min/max key, …) make py-bson fail;
//!   [`to_vec_pybson`] refuses them with [`BsonError::Unsupported`].
//! * A top-level key `"$$__CLASS_NAME__$$"` makes py-bson look up a registered class and
//!   raise `MissingClassDefinition`; avoid that key.
//!
//! # Limits and validation
//!
//! Every function checks the document length against a maximum, [`DEFAULT_MAX_DOCUMENT_LEN`]
//! (16 MiB, MongoDB's limit) unless a `*_with_max` / `*_with_limits` variant is used. py-bson
//! itself has no limit. Decoding is strict where py-bson is lax: the declared length must equal
//! the slice length and the document must end in 0x00 (py-bson accepts a declared length ≤ 4
//! as `{}`).
//!
//! Every decoder ([`from_slice`], [`document_from_slice`] and their variants) first validates
//! the whole document with the `bson` crate's raw decoder: every element's type, length,
//! terminator and UTF-8, at every depth, and the nesting depth against
//! [`DEFAULT_MAX_DEPTH`] (100, MongoDB's limit; [`DecodeLimits`]). Only a document that passes
//! goes on to serde, so both decoders refuse exactly the same malformed documents, with the
//! same [`BsonError`]. (The `bson` crate's serde deserializer alone reads embedded documents
//! lazily and accepts some malformed ones; both its decoders recurse once per nesting level
//! and overflow the stack on a few kilobytes of nested documents.)
//!
//! # Fast path
//!
//! [`from_slice`] reads documents of plain element types (double, string, document, array,
//! binary subtype 0, boolean, null, int32, int64) without an extended-JSON key with a serde
//! deserializer of framewire's own. For WIRE.md's 50-byte document that takes half the
//! instructions of validating and then decoding with the crate, as before, and fewer than the
//! crate's deserializer alone without validation (1,153 against 2,341 and 1,454 in
//! `scripts/instructions.sh`). It validates such documents in one pass that
//! checks everything the crate's raw decoder checks, and presents every value to serde exactly
//! as the crate's deserializer does, so the values are the same. For any other document, for
//! the crate's own private newtypes (`RawDocumentBuf`, `Uuid`, ...) and on any error, it steps
//! aside and the crate decodes the document, so errors are the crate's too. Unit tests,
//! proptests and the `bson_document` fuzz target compare both paths with the crate.
//!
//! # Keys that look like extended JSON (`$oid`, `$date`, ...)
//!
//! py-bson reads `{"a": {"$oid": "…"}}` as a dict with the key `"$oid"`, and
//! [`document_from_slice`] gives exactly that document. The `bson` crate's serde deserializer
//! does not: to carry ObjectId, DateTime, Symbol, ... through serde it presents them as maps
//! with the keys of [`EXTENDED_JSON_KEYS`], and the visitor behind [`Document`], [`Bson`] and
//! every `bson` type (`ObjectId`, `DateTime`, `Binary`, `Uuid`, ..., and so [`PyInt`] /
//! [`PyUInt`]) reads *any* map holding one of those keys as that type: the embedded document
//! above would become an ObjectId, `{"$date": {"$numberLong": "5"}}` a DateTime,
//! `{"$symbol": "x"}` a Symbol, and the rest of such a document is dropped. The crate offers
//! no way to get such a document as a [`Document`] through serde. So [`from_slice`] refuses,
//! with [`BsonError::ExtendedJsonKey`] naming the key and where it is, a document (top level
//! or embedded, at any depth) that holds one of [`EXTENDED_JSON_KEYS`] and is about to be read
//! by one of those `bson` types (or buffered by serde for `#[serde(flatten)]` or an untagged /
//! internally tagged enum, where the final type is unknown). Structs, maps such as
//! `HashMap<String, String>`, ignored fields and [`bson::RawDocumentBuf`] fields read such
//! documents with their keys as written. To get them as a [`Document`], use
//! [`document_from_slice`] (or a `RawDocumentBuf` field and `Document::try_from`). Other keys
//! starting with `$` (`"$set"`, `"$ref"`, ...) are ordinary keys everywhere.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use bson::oid::ObjectId;
use bson::raw::RawIter;
use bson::{Bson, Document, RawBsonRef, RawDocument, Timestamp};
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, Serializer};

mod checked;
mod plain;
mod plain_encoder;
#[cfg(test)]
mod test_documents;

/// Default maximum length of a document, in bytes (16 MiB, MongoDB's `maxBsonObjectSize`).
pub const DEFAULT_MAX_DOCUMENT_LEN: usize = 16 * 1024 * 1024;

/// The smallest valid document: the 4-byte length and the terminating 0x00 (`{}`).
pub const MIN_DOCUMENT_LEN: usize = 5;

/// Default maximum nesting depth of a decoded document: the top-level document is level 1,
/// each embedded document, array or JavaScript scope one more (100, MongoDB's limit).
///
/// py-bson 0.5.10 itself cannot encode much more than 330 levels (Python's recursion limit).
/// The limit bounds the stack the decoders use: in a release build, decoding through serde
/// takes about 2.5 KiB of stack per level (a `Document` target), so 100 levels fit easily in a
/// 2 MiB thread; debug builds need about ten times as much.
pub const DEFAULT_MAX_DEPTH: usize = 100;

/// The keys that make the `bson` crate's serde visitor (behind [`Document`], [`Bson`] and the
/// other `bson` types) read a map as another BSON type instead of a document, in `bson` 3.1:
/// an embedded document holding any of these keys is refused by [`from_slice`] when the
/// target would read it that way ([`BsonError::ExtendedJsonKey`]; see the module
/// documentation).
pub const EXTENDED_JSON_KEYS: [&str; 18] = [
    "$oid",
    "$symbol",
    "$numberInt",
    "$numberLong",
    "$numberDouble",
    "$binary",
    "$uuid",
    "$code",
    "$scope",
    "$timestamp",
    "$regularExpression",
    "$dbPointer",
    "$date",
    "$maxKey",
    "$minKey",
    "$undefined",
    "$numberDecimal",
    "$numberDecimalBytes",
];

fn is_extended_json_key(key: &str) -> bool {
    key.starts_with('$') && EXTENDED_JSON_KEYS.contains(&key)
}

/// Limits for decoding a document: its length and its nesting depth.
///
/// ```
/// # use framewire::message::bson::{DecodeLimits, DEFAULT_MAX_DEPTH, DEFAULT_MAX_DOCUMENT_LEN};
/// let limits = DecodeLimits::new().with_max_len(1 << 20).with_max_depth(16);
/// assert_eq!((limits.max_len(), limits.max_depth()), (1 << 20, 16));
/// assert_eq!(DecodeLimits::default().max_len(), DEFAULT_MAX_DOCUMENT_LEN);
/// assert_eq!(DecodeLimits::default().max_depth(), DEFAULT_MAX_DEPTH);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    max_len: usize,
    max_depth: usize,
}

impl DecodeLimits {
    /// [`DEFAULT_MAX_DOCUMENT_LEN`] and [`DEFAULT_MAX_DEPTH`].
    pub const fn new() -> Self {
        DecodeLimits {
            max_len: DEFAULT_MAX_DOCUMENT_LEN,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// The maximum document length in bytes.
    #[must_use]
    pub const fn with_max_len(self, max_len: usize) -> Self {
        DecodeLimits { max_len, ..self }
    }

    /// The maximum nesting depth (the top-level document is level 1).
    #[must_use]
    pub const fn with_max_depth(self, max_depth: usize) -> Self {
        DecodeLimits { max_depth, ..self }
    }

    /// The maximum document length in bytes.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The maximum nesting depth.
    pub const fn max_depth(&self) -> usize {
        self.max_depth
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::new()
    }
}

/// What went wrong encoding or decoding a BSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BsonError {
    /// The value could not be encoded (not a map or struct at the top level, a key containing
    /// NUL, a `u64` above `i64::MAX` outside [`PyUInt`], ...).
    Encode {
        /// The `bson` crate's description of the problem.
        message: String,
    },
    /// The bytes are not a valid document, or do not match the target type.
    Decode {
        /// The `bson` crate's description of the problem.
        message: String,
    },
    /// The document is (or would be) longer than the configured maximum.
    TooLong {
        /// Length of the document in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// Fewer bytes than the smallest document ([`MIN_DOCUMENT_LEN`]).
    TooShort {
        /// Number of bytes given.
        len: usize,
    },
    /// The document's own length field disagrees with the number of bytes given.
    LengthMismatch {
        /// The length stored in the first 4 bytes (little-endian int32).
        declared: i32,
        /// The number of bytes given.
        actual: usize,
    },
    /// The last byte of the document is not the 0x00 terminator.
    MissingTerminator {
        /// The byte found instead.
        found: u8,
    },
    /// An integer outside py-bson's range −2⁶³ … 2⁶⁴−1, or outside the target Rust type.
    IntOutOfRange {
        /// The integer.
        value: i128,
    },
    /// An element type py-bson 0.5.10 cannot decode (see the module documentation).
    Unsupported {
        /// The BSON element type byte.
        element_type: u8,
        /// Dotted path of the element (`"a.b.0"`).
        path: String,
    },
    /// Documents are nested deeper than the configured maximum ([`DecodeLimits`]).
    TooDeep {
        /// The configured maximum depth (the top-level document is level 1).
        max: usize,
    },
    /// A document holds a key of [`EXTENDED_JSON_KEYS`] and the target type would read it
    /// through the `bson` crate's serde visitor, which turns it into another BSON type (see the
    /// module documentation). [`document_from_slice`] reads it as written.
    ExtendedJsonKey {
        /// The first such key of the document (`"$oid"`).
        key: String,
        /// Dotted path of the document holding it (`"a.b.0"`; empty for the top level).
        path: String,
    },
}

impl fmt::Display for BsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BsonError::Encode { message } => write!(f, "BSON encode error: {message}"),
            BsonError::Decode { message } => write!(f, "BSON decode error: {message}"),
            BsonError::TooLong { len, max } => {
                write!(f, "BSON document of {len} bytes is over the limit of {max}")
            }
            BsonError::TooShort { len } => write!(
                f,
                "BSON document of {len} bytes is shorter than the minimum of {MIN_DOCUMENT_LEN}"
            ),
            BsonError::LengthMismatch { declared, actual } => write!(
                f,
                "BSON document declares {declared} bytes but {actual} were given"
            ),
            BsonError::MissingTerminator { found } => {
                write!(f, "BSON document ends in {found:#04x} instead of 0x00")
            }
            BsonError::IntOutOfRange { value } => {
                write!(f, "integer {value} is out of range")
            }
            BsonError::Unsupported { element_type, path } => write!(
                f,
                "element {path:?} has BSON type {element_type:#04x}, which py-bson cannot decode"
            ),
            BsonError::TooDeep { max } => {
                write!(f, "BSON documents nested deeper than {max} levels")
            }
            BsonError::ExtendedJsonKey { key, path } => {
                if path.is_empty() {
                    write!(f, "the top-level document")?;
                } else {
                    write!(f, "the document at {path:?}")?;
                }
                write!(
                    f,
                    " has the key {key:?}, which the bson crate's serde decoder would read as \
                     another BSON type for this target; decode it with document_from_slice, or \
                     into a struct, a map of plain values or a RawDocumentBuf"
                )
            }
        }
    }
}

impl std::error::Error for BsonError {}

fn encode_error(e: &bson::error::Error) -> BsonError {
    BsonError::Encode {
        message: e.to_string(),
    }
}

fn decode_error(e: &bson::error::Error) -> BsonError {
    BsonError::Decode {
        message: e.to_string(),
    }
}

/// Serialize `value` (a struct, a map or a [`Document`]) as one BSON document, at most
/// [`DEFAULT_MAX_DOCUMENT_LEN`] bytes long.
///
/// ```
/// # use framewire::message::bson::to_vec;
/// #[derive(serde::Serialize)]
/// struct Hello<'a> { hello: &'a str }
/// // bson.dumps({"hello": "world"})
/// assert_eq!(
///     to_vec(&Hello { hello: "world" })?,
///     b"\x16\0\0\0\x02hello\0\x06\0\0\0world\0\0"
/// );
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, BsonError> {
    to_vec_with_max(value, DEFAULT_MAX_DOCUMENT_LEN)
}

/// [`to_vec`] with an explicit maximum document length.
pub fn to_vec_with_max<T: Serialize + ?Sized>(value: &T, max: usize) -> Result<Vec<u8>, BsonError> {
    let mut buf = Vec::new();
    encode_into_with_max(value, &mut buf, max)?;
    Ok(buf)
}

/// Append `value` as one BSON document to `buf` and return its length; at most
/// [`DEFAULT_MAX_DOCUMENT_LEN`] bytes.
///
/// On error `buf` is left as it was. To get a `bytes::BytesMut`, encode into a `Vec` and
/// convert it with `BytesMut::from(vec)` (no copy).
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<usize, BsonError> {
    encode_into_with_max(value, buf, DEFAULT_MAX_DOCUMENT_LEN)
}

/// [`encode_into`] with an explicit maximum document length.
pub fn encode_into_with_max<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
    max: usize,
) -> Result<usize, BsonError> {
    let start = buf.len();
    let result = if plain_encoder::encode(value, buf) {
        Ok(())
    } else {
        // The bson crate's raw serializer takes a sized value; a reference is one.
        bson::serialize_to_buffer(&value, buf)
    };
    let len = buf.len() - start;
    match result {
        Err(e) => {
            buf.truncate(start);
            Err(encode_error(&e))
        }
        Ok(()) if len > max => {
            buf.truncate(start);
            Err(BsonError::TooLong { len, max })
        }
        Ok(()) if len < MIN_DOCUMENT_LEN => {
            // A top-level value that is not a document (the raw serializer writes its bare
            // encoding, or nothing at all).
            buf.truncate(start);
            Err(BsonError::Encode {
                message: "the top-level value must serialize as a document (map or struct)".into(),
            })
        }
        Ok(()) => Ok(len),
    }
}

/// Check the envelope of a document: length at least [`MIN_DOCUMENT_LEN`] and at most `max`,
/// declared length equal to `bytes.len()`, trailing 0x00.
pub fn check_document(bytes: &[u8], max: usize) -> Result<(), BsonError> {
    let len = bytes.len();
    if len > max {
        return Err(BsonError::TooLong { len, max });
    }
    if len < MIN_DOCUMENT_LEN {
        return Err(BsonError::TooShort { len });
    }
    let declared = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if usize::try_from(declared).ok() != Some(len) {
        return Err(BsonError::LengthMismatch {
            declared,
            actual: len,
        });
    }
    match bytes[len - 1] {
        0 => Ok(()),
        found => Err(BsonError::MissingTerminator { found }),
    }
}

/// Deserialize one BSON document (exactly `bytes`, at most [`DEFAULT_MAX_DOCUMENT_LEN`] long
/// and [`DEFAULT_MAX_DEPTH`] deep).
///
/// The whole document is validated first (see *Limits and validation* in the module
/// documentation): a malformed document is refused as [`document_from_slice`] refuses it,
/// whatever `T` reads of it. Strings can be borrowed from `bytes` (`&'de str` fields).
///
/// **Keys like `$oid`:** a document holding a key of [`EXTENDED_JSON_KEYS`] that `T` would read
/// as a [`Document`], [`Bson`] or another `bson` type is refused with
/// [`BsonError::ExtendedJsonKey`], because the `bson` crate would silently turn it into another
/// type (`{"$oid": "…"}` into an ObjectId). Read such documents with [`document_from_slice`],
/// or into structs, maps or `RawDocumentBuf` fields, which keep the keys as written.
///
/// ```
/// # use framewire::message::bson::from_slice;
/// #[derive(serde::Deserialize, Debug, PartialEq)]
/// struct Small { seq: i64, pad: bson::Binary }
/// // bson.dumps({"seq": 0, "pad": b"x" * 26})
/// let doc = b"\x32\0\0\0\x10seq\0\0\0\0\0\x05pad\0\x1a\0\0\0\0xxxxxxxxxxxxxxxxxxxxxxxxxx\0";
/// let small: Small = from_slice(doc)?;
/// assert_eq!(small.seq, 0);
/// assert_eq!(small.pad.bytes, b"xxxxxxxxxxxxxxxxxxxxxxxxxx");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
///
/// ```
/// # use framewire::message::bson::{from_slice, document_from_slice, BsonError};
/// # use std::collections::HashMap;
/// // bson.dumps({"a": {"$oid": "000102030405060708090a0b"}}): a dict, not an ObjectId
/// let bytes = b"\x30\0\0\0\x03a\0\x28\0\0\0\x02$oid\0\x19\0\0\0000102030405060708090a0b\0\0\0";
/// assert_eq!(
///     from_slice::<bson::Document>(bytes),
///     Err(BsonError::ExtendedJsonKey { key: "$oid".into(), path: "a".into() })
/// );
/// let doc = document_from_slice(bytes)?;
/// assert_eq!(doc, bson::doc! {"a": {"$oid": "000102030405060708090a0b"}});
/// let map: HashMap<String, HashMap<String, String>> = from_slice(bytes)?;
/// assert_eq!(map["a"]["$oid"], "000102030405060708090a0b");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub fn from_slice<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Result<T, BsonError> {
    from_slice_with_limits(bytes, DecodeLimits::new())
}

/// [`from_slice`] with an explicit maximum document length.
pub fn from_slice_with_max<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    max: usize,
) -> Result<T, BsonError> {
    from_slice_with_limits(bytes, DecodeLimits::new().with_max_len(max))
}

/// [`from_slice`] with explicit limits.
pub fn from_slice_with_limits<'de, T: Deserialize<'de>>(
    bytes: &'de [u8],
    limits: DecodeLimits,
) -> Result<T, BsonError> {
    check_document(bytes, limits.max_len)?;
    if plain::accepts(bytes, limits.max_depth) {
        if let Some(value) = plain::deserialize(bytes) {
            return Ok(value);
        }
    }
    let (raw, scan) = validate(bytes, limits)?;
    if scan.extended_json_keys {
        // Slow path: watch which visitor reads each document that holds such a key.
        checked::deserialize(bytes, raw)
    } else {
        // No document holds a key the bson crate's visitor reinterprets: its serde decoder
        // gives exactly the values of the raw decoder.
        bson::deserialize_from_slice(bytes).map_err(|e| decode_error(&e))
    }
}

/// Serialize `value` into a dynamic [`Document`], through the same (non-human-readable)
/// encoder as [`to_vec`], so `to_document(x)?.to_vec()` equals `to_vec(x)`.
pub fn to_document<T: Serialize + ?Sized>(value: &T) -> Result<Document, BsonError> {
    let bytes = to_vec(value)?;
    document_from_slice(&bytes)
}

/// Deserialize a `T` from a dynamic [`Document`], through the same decoder as [`from_slice`]
/// (so with the same refusal of [`EXTENDED_JSON_KEYS`] for `bson` targets).
pub fn from_document<T: serde::de::DeserializeOwned>(doc: &Document) -> Result<T, BsonError> {
    let bytes = document_to_vec(doc)?;
    from_slice(&bytes)
}

/// Parse one BSON document (exactly `bytes`, at most [`DEFAULT_MAX_DOCUMENT_LEN`] long and
/// [`DEFAULT_MAX_DEPTH`] deep) into a dynamic [`Document`] with the `bson` crate's raw
/// decoder: keys are kept as written (`{"$oid": "…"}` stays a document, as in py-bson).
/// Binary subtype 0x11 values appear as [`Bson::Timestamp`].
pub fn document_from_slice(bytes: &[u8]) -> Result<Document, BsonError> {
    document_from_slice_with_limits(bytes, DecodeLimits::new())
}

/// [`document_from_slice`] with an explicit maximum document length.
pub fn document_from_slice_with_max(bytes: &[u8], max: usize) -> Result<Document, BsonError> {
    document_from_slice_with_limits(bytes, DecodeLimits::new().with_max_len(max))
}

/// [`document_from_slice`] with explicit limits.
pub fn document_from_slice_with_limits(
    bytes: &[u8],
    limits: DecodeLimits,
) -> Result<Document, BsonError> {
    check_document(bytes, limits.max_len)?;
    // A document the plain path accepts passes the full validation too.
    let raw = if plain::accepts(bytes, limits.max_depth) {
        RawDocument::from_bytes(bytes).map_err(|e| decode_error(&e))?
    } else {
        validate(bytes, limits)?.0
    };
    Document::try_from(raw).map_err(|e| decode_error(&e))
}

/// What [`validate`] found in a well-formed document.
struct Scan {
    /// Some document (not array) holds a key of [`EXTENDED_JSON_KEYS`].
    extended_json_keys: bool,
}

/// Validate a whole document the way the `bson` crate's raw decoder (`Document::try_from`)
/// does: the envelope ([`check_document`]), then every element's type, length and value
/// (UTF-8 of strings, lengths of binaries, terminators of embedded documents, arrays and
/// JavaScript scopes), at every depth up to `limits.max_depth`.
fn validate(bytes: &[u8], limits: DecodeLimits) -> Result<(&RawDocument, Scan), BsonError> {
    check_document(bytes, limits.max_len)?;
    let root = RawDocument::from_bytes(bytes).map_err(|e| decode_error(&e))?;
    let mut scan = Scan {
        extended_json_keys: false,
    };
    validate_elements(root.iter_elements(), true, 1, limits.max_depth, &mut scan)?;
    Ok((root, scan))
}

/// Validate the elements of a document (`is_document`) or array at nesting level `depth`.
/// The recursion stops at `max_depth` (one small frame per level, far less than what the
/// decoders that run afterwards use per level), so a deep document cannot exhaust the stack
/// here.
fn validate_elements(
    elements: RawIter<'_>,
    is_document: bool,
    depth: usize,
    max_depth: usize,
    scan: &mut Scan,
) -> Result<(), BsonError> {
    if depth > max_depth {
        return Err(BsonError::TooDeep { max: max_depth });
    }
    for element in elements {
        let element = element.map_err(|e| decode_error(&e))?;
        if is_document && is_extended_json_key(element.key().as_str()) {
            scan.extended_json_keys = true;
        }
        let (inner, inner_is_document) = match element.value().map_err(|e| decode_error(&e))? {
            RawBsonRef::Document(doc) => (doc.iter_elements(), true),
            RawBsonRef::Array(array) => (array.iter_elements(), false),
            RawBsonRef::JavaScriptCodeWithScope(code) => (code.scope.iter_elements(), true),
            _ => continue,
        };
        validate_elements(inner, inner_is_document, depth + 1, max_depth, scan)?;
    }
    Ok(())
}

/// Encode a dynamic [`Document`] (at most [`DEFAULT_MAX_DOCUMENT_LEN`] bytes).
pub fn document_to_vec(doc: &Document) -> Result<Vec<u8>, BsonError> {
    let bytes = doc.to_vec().map_err(|e| encode_error(&e))?;
    if bytes.len() > DEFAULT_MAX_DOCUMENT_LEN {
        return Err(BsonError::TooLong {
            len: bytes.len(),
            max: DEFAULT_MAX_DOCUMENT_LEN,
        });
    }
    Ok(bytes)
}

/// Serialize `value` to the bytes py-bson's `bson.dumps` would produce for the same data:
/// integers narrowed like py-bson ([`pybson_normalize`]), types py-bson cannot read refused.
///
/// ```
/// # use framewire::message::bson::{to_vec, to_vec_pybson};
/// #[derive(serde::Serialize)]
/// struct N { n: i64 }
/// // bson.dumps({"n": 5}): int32
/// assert_eq!(to_vec_pybson(&N { n: 5 })?, b"\x0c\0\0\0\x10n\0\x05\0\0\0\0");
/// // the plain encoder keeps the Rust type: int64
/// assert_eq!(to_vec(&N { n: 5 })?, b"\x10\0\0\0\x12n\0\x05\0\0\0\0\0\0\0\0");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub fn to_vec_pybson<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, BsonError> {
    let doc = to_pybson_document(value)?;
    document_to_vec(&doc)
}

/// [`to_document`] followed by [`pybson_normalize`].
pub fn to_pybson_document<T: Serialize + ?Sized>(value: &T) -> Result<Document, BsonError> {
    let mut doc = to_document(value)?;
    pybson_normalize(&mut doc)?;
    Ok(doc)
}

/// Rewrite `doc` (recursively) into the form py-bson would encode: every int64 that fits in
/// an int32 becomes an int32. Fails with [`BsonError::Unsupported`] on an element type that
/// py-bson 0.5.10 cannot decode (anything but double, string, document, array, binary,
/// ObjectId, bool, datetime, null, int32, 0x11 and int64).
pub fn pybson_normalize(doc: &mut Document) -> Result<(), BsonError> {
    let mut path = String::new();
    normalize_document(doc, &mut path)
}

fn normalize_document(doc: &mut Document, path: &mut String) -> Result<(), BsonError> {
    for (key, value) in doc.iter_mut() {
        let len = path.len();
        if len > 0 {
            path.push('.');
        }
        path.push_str(key);
        normalize_value(value, path)?;
        path.truncate(len);
    }
    Ok(())
}

fn normalize_value(value: &mut Bson, path: &mut String) -> Result<(), BsonError> {
    match value {
        Bson::Int64(n) => {
            if let Ok(small) = i32::try_from(*n) {
                *value = Bson::Int32(small);
            }
        }
        Bson::Document(doc) => normalize_document(doc, path)?,
        Bson::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                if len > 0 {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                normalize_value(item, path)?;
                path.truncate(len);
            }
        }
        Bson::Double(_)
        | Bson::String(_)
        | Bson::Binary(_)
        | Bson::ObjectId(_)
        | Bson::Boolean(_)
        | Bson::DateTime(_)
        | Bson::Null
        | Bson::Int32(_)
        | Bson::Timestamp(_) => {}
        other => {
            return Err(BsonError::Unsupported {
                element_type: other.element_type() as u8,
                path: path.clone(),
            })
        }
    }
    Ok(())
}

/// The [`Bson`] value py-bson would encode for the Python integer `value`: int32 when it fits,
/// else int64, else (2⁶³ … 2⁶⁴−1) the non-standard 0x11 as a [`Timestamp`]. Python raises
/// for anything else; this returns [`BsonError::IntOutOfRange`].
pub fn py_int_to_bson(value: i128) -> Result<Bson, BsonError> {
    if let Ok(n) = i32::try_from(value) {
        Ok(Bson::Int32(n))
    } else if let Ok(n) = i64::try_from(value) {
        Ok(Bson::Int64(n))
    } else if let Ok(n) = u64::try_from(value) {
        Ok(Bson::Timestamp(timestamp_from_py_uint64(n)))
    } else {
        Err(BsonError::IntOutOfRange { value })
    }
}

/// The Python integer py-bson would decode from `value`: int32, int64, or 0x11 read as an
/// unsigned 64-bit integer. `None` for any other type.
pub fn py_int_from_bson(value: &Bson) -> Option<i128> {
    match value {
        Bson::Int32(n) => Some(i128::from(*n)),
        Bson::Int64(n) => Some(i128::from(*n)),
        Bson::Timestamp(ts) => Some(i128::from(py_uint64_from_timestamp(*ts))),
        _ => None,
    }
}

/// The [`Timestamp`] whose 8 wire bytes are py-bson's uint64 `value` (type 0x11, little-endian):
/// `increment` is the low 32 bits, `time` the high 32 bits.
///
/// ```
/// # use framewire::message::bson::{timestamp_from_py_uint64, py_uint64_from_timestamp};
/// let ts = timestamp_from_py_uint64((1 << 63) + (1 << 32) + 7);
/// assert_eq!((ts.time, ts.increment), (0x8000_0001, 7));
/// assert_eq!(py_uint64_from_timestamp(ts), (1 << 63) + (1 << 32) + 7);
/// ```
pub const fn timestamp_from_py_uint64(value: u64) -> Timestamp {
    Timestamp {
        time: (value >> 32) as u32,
        increment: value as u32,
    }
}

/// py-bson's uint64 (type 0x11) from the [`Timestamp`] the `bson` crate decodes it to: the
/// inverse of [`timestamp_from_py_uint64`].
pub const fn py_uint64_from_timestamp(ts: Timestamp) -> u64 {
    ((ts.time as u64) << 32) | ts.increment as u64
}

/// The ObjectId a py-bson peer sends back after receiving one: py-bson decodes ObjectId
/// (0x07) as its 24 lower-case hex digits (`bytes`), and echoes them as binary subtype 0.
pub fn object_id_from_pybson(hex: &[u8]) -> Result<ObjectId, BsonError> {
    let text = core::str::from_utf8(hex).map_err(|e| BsonError::Decode {
        message: format!("ObjectId hex digits are not UTF-8: {e}"),
    })?;
    if text.len() != 24 {
        return Err(BsonError::Decode {
            message: format!("ObjectId needs 24 hex digits, got {} bytes", text.len()),
        });
    }
    ObjectId::parse_str(text).map_err(|e| decode_error(&e))
}

/// A signed integer that is encoded like a Python `int` in py-bson: int32 (0x10) when it
/// fits, else int64 (0x12).
///
/// It decodes from int32, int64, and from py-bson's uint64 (0x11) when the value is at most
/// `i64::MAX` (else the error names the value). Use [`PyUInt`] for py-bson integers
/// ≥ 2⁶³.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PyInt(pub i64);

/// An unsigned integer that is encoded like a Python `int` in py-bson: int32 (0x10) up to
/// `i32::MAX`, int64 (0x12) up to `i64::MAX`, above that py-bson's non-standard uint64
/// (0x11, which the BSON spec and the `bson` crate call Timestamp).
///
/// It decodes from int32 and int64 (if not negative) and from 0x11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PyUInt(pub u64);

impl From<i64> for PyInt {
    fn from(value: i64) -> Self {
        PyInt(value)
    }
}

impl From<PyInt> for i64 {
    fn from(value: PyInt) -> Self {
        value.0
    }
}

impl From<u64> for PyUInt {
    fn from(value: u64) -> Self {
        PyUInt(value)
    }
}

impl From<PyUInt> for u64 {
    fn from(value: PyUInt) -> Self {
        value.0
    }
}

fn serialize_py_int<S: Serializer>(value: i128, serializer: S) -> Result<S::Ok, S::Error> {
    if let Ok(n) = i32::try_from(value) {
        serializer.serialize_i32(n)
    } else if let Ok(n) = i64::try_from(value) {
        serializer.serialize_i64(n)
    } else if let Ok(n) = u64::try_from(value) {
        timestamp_from_py_uint64(n).serialize(serializer)
    } else {
        Err(serde::ser::Error::custom(BsonError::IntOutOfRange {
            value,
        }))
    }
}

fn deserialize_py_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i128, D::Error> {
    let value = Bson::deserialize(deserializer)?;
    py_int_from_bson(&value).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "expected a py-bson integer (int32, int64 or 0x11), found BSON type {:#04x}",
            value.element_type() as u8
        ))
    })
}

fn out_of_range<E: serde::de::Error>(value: i128) -> E {
    E::custom(BsonError::IntOutOfRange { value })
}

impl Serialize for PyInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_py_int(i128::from(self.0), serializer)
    }
}

impl<'de> Deserialize<'de> for PyInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserialize_py_int(deserializer)?;
        i64::try_from(value)
            .map(PyInt)
            .map_err(|_| out_of_range(value))
    }
}

impl Serialize for PyUInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_py_int(i128::from(self.0), serializer)
    }
}

impl<'de> Deserialize<'de> for PyUInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = deserialize_py_int(deserializer)?;
        u64::try_from(value)
            .map(PyUInt)
            .map_err(|_| out_of_range(value))
    }
}

/// `#[serde(with = "framewire::message::bson::py_int")]` on an `i64` field: encode and decode
/// it like [`PyInt`].
///
/// ```
/// # use framewire::message::bson::{py_int, to_vec};
/// #[derive(serde::Serialize)]
/// struct N { #[serde(with = "py_int")] n: i64 }
/// assert_eq!(to_vec(&N { n: 5 })?, b"\x0c\0\0\0\x10n\0\x05\0\0\0\0");
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub mod py_int {
    use super::{Deserialize, Deserializer, PyInt, Serialize, Serializer};

    /// Serialize an `i64` as [`PyInt`] does.
    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        PyInt(*value).serialize(serializer)
    }

    /// Deserialize an `i64` as [`PyInt`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        PyInt::deserialize(deserializer).map(|n| n.0)
    }
}

/// `#[serde(with = "framewire::message::bson::py_uint")]` on a `u64` field: encode and decode
/// it like [`PyUInt`] (values ≥ 2⁶³ as py-bson's 0x11).
///
/// ```
/// # use framewire::message::bson::{py_uint, from_slice};
/// #[derive(serde::Deserialize)]
/// struct U { #[serde(with = "py_uint")] u: u64 }
/// // bson.dumps({"u": 2**64 - 1})
/// let u: U = from_slice(b"\x10\0\0\0\x11u\0\xff\xff\xff\xff\xff\xff\xff\xff\0")?;
/// assert_eq!(u.u, u64::MAX);
/// # Ok::<(), framewire::message::bson::BsonError>(())
/// ```
pub mod py_uint {
    use super::{Deserialize, Deserializer, PyUInt, Serialize, Serializer};

    /// Serialize a `u64` as [`PyUInt`] does.
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        PyUInt(*value).serialize(serializer)
    }

    /// Deserialize a `u64` as [`PyUInt`] does.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        PyUInt::deserialize(deserializer).map(|n| n.0)
    }
}

#[cfg(test)]
// Test-local helper types sit next to the assertions that use them.
#[allow(clippy::items_after_statements, clippy::too_many_lines)]
mod tests {
    use super::*;
    use ::bson::spec::BinarySubtype;
    use ::bson::{doc, Binary, DateTime, Regex, Uuid};
    use alloc::vec;
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};
    use std::collections::HashMap;

    use crate::testutil::unhex as hex;

    /// The py-bson golden vectors, by name.
    fn vectors() -> HashMap<&'static str, Vec<u8>> {
        include_str!("../../testdata/pybson_vectors.txt")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut words = l.split_whitespace();
                let name = words.next().unwrap();
                (name, hex(words.next().unwrap()))
            })
            .collect()
    }

    fn v(name: &str) -> Vec<u8> {
        vectors()
            .remove(name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    }

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56, 0x78, 0x12, 0x34, 0x56,
        0x78,
    ];

    fn generic(bytes: &[u8]) -> Binary {
        Binary {
            subtype: BinarySubtype::Generic,
            bytes: bytes.to_vec(),
        }
    }

    /// `doc` is what the bson crate decodes the vector to, and encodes back to the same bytes.
    fn check_document_vector(name: &str, expected: &Document) {
        let bytes = v(name);
        assert_eq!(
            &document_from_slice(&bytes).unwrap(),
            expected,
            "decode {name}"
        );
        assert_eq!(document_to_vec(expected).unwrap(), bytes, "encode {name}");
        assert_eq!(to_vec(expected).unwrap(), bytes, "to_vec {name}");
        assert_eq!(
            to_vec_pybson(expected).unwrap(),
            bytes,
            "to_vec_pybson {name}"
        );
    }

    /// `value` decodes from the vector and encodes back to the same bytes.
    fn check_typed_vector<T>(name: &str, value: &T)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        let bytes = v(name);
        assert_eq!(&from_slice::<T>(&bytes).unwrap(), value, "decode {name}");
        assert_eq!(to_vec(value).unwrap(), bytes, "encode {name}");
        let mut buf = vec![0xa5; 3];
        assert_eq!(encode_into(value, &mut buf).unwrap(), bytes.len());
        assert_eq!(buf[..3], [0xa5; 3]);
        assert_eq!(buf[3..], bytes[..]);
    }

    #[test]
    fn vector_file_is_complete() {
        let vectors = vectors();
        assert!(vectors.len() >= 54, "{}", vectors.len());
        for (name, bytes) in &vectors {
            check_document(bytes, DEFAULT_MAX_DOCUMENT_LEN)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn pybson_scalars_as_documents() {
        check_document_vector("hello", &doc! {"hello": "world"});
        check_document_vector("empty", &doc! {});
        check_document_vector("bool", &doc! {"t": true, "f": false});
        for (name, n) in [
            ("int32_zero", 0),
            ("int32_small", 5),
            ("int32_neg", -1),
            ("int32_max", i32::MAX),
            ("int32_min", i32::MIN),
        ] {
            check_document_vector(name, &doc! {"i": n});
        }
        for (name, n) in [
            ("int64_above_i32", 1i64 << 31),
            ("int64_below_i32", -(1i64 << 31) - 1),
            ("int64_max", i64::MAX),
            ("int64_min", i64::MIN),
        ] {
            check_document_vector(name, &doc! {"i": n});
        }
        for (name, n) in [
            ("uint64_min", 1u64 << 63),
            ("uint64_mid", (1u64 << 63) + (1 << 32) + 7),
            ("uint64_max", u64::MAX),
        ] {
            check_document_vector(name, &doc! {"u": timestamp_from_py_uint64(n)});
            let got = document_from_slice(&v(name)).unwrap();
            assert_eq!(py_int_from_bson(got.get("u").unwrap()), Some(i128::from(n)));
        }
        check_document_vector("float", &doc! {"x": 2.5});
        check_document_vector("float_neg_zero", &doc! {"x": -0.0});
        check_document_vector("float_inf", &doc! {"x": f64::INFINITY});
        check_document_vector("float_tiny", &doc! {"x": 5e-324});
        check_document_vector("float_int_valued", &doc! {"x": 1.0});
        check_document_vector("decimal", &doc! {"x": 0.1});
        check_document_vector("str_empty", &doc! {"s": ""});
        check_document_vector("str_ascii", &doc! {"s": "hi there"});
        check_document_vector("str_unicode", &doc! {"s": "h\u{e9} \u{4e2d} \u{1f430}"});
        check_document_vector("str_nul_inside", &doc! {"s": "a\0b"});
        check_document_vector("key_unicode", &doc! {"cl\u{e9}": 1});
        check_document_vector("key_empty", &doc! {"": 1});
        check_document_vector("bytes_empty", &doc! {"b": generic(b"")});
        check_document_vector("bytes", &doc! {"b": generic(b"\x00\x01ab\xff")});
        check_document_vector("uuid", &doc! {"u": Uuid::from_bytes(UUID)});
        check_document_vector(
            "datetime",
            &doc! {"d": DateTime::from_millis(1_719_748_800_123)},
        );
        check_document_vector("datetime_epoch", &doc! {"d": DateTime::from_millis(0)});
        check_document_vector(
            "datetime_before_epoch",
            &doc! {"d": DateTime::from_millis(-1)},
        );
        check_document_vector(
            "datetime_naive",
            &doc! {"d": DateTime::from_millis(1_719_748_800_000)},
        );
        check_document_vector("none", &doc! {"n": Bson::Null});
        check_document_vector("nested", &doc! {"d": {"a": 1, "b": {"c": "x"}}});
        check_document_vector("list", &doc! {"l": [1, "a", Bson::Null, 2.5]});
        check_document_vector("list_empty", &doc! {"l": []});
        check_document_vector("list_nested", &doc! {"l": [[1, 2], {"k": true}]});
        check_document_vector("tuple", &doc! {"t": [1, 2]});
        check_document_vector("key_order", &doc! {"z": 1, "a": 2, "m": 3});
        check_document_vector(
            "mixed_ints",
            &doc! {
                "a": py_int_to_bson(1).unwrap(),
                "b": py_int_to_bson(1 << 40).unwrap(),
                "c": py_int_to_bson((1 << 64) - 2).unwrap(),
                "d": py_int_to_bson(-7).unwrap(),
            },
        );
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct I<T> {
        i: T,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct U<T> {
        u: T,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct B<T> {
        b: T,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct X {
        x: f64,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct S {
        s: String,
    }

    #[test]
    fn pybson_scalars_as_typed_values() {
        for (name, n) in [
            ("int32_zero", 0),
            ("int32_small", 5),
            ("int32_neg", -1),
            ("int32_max", i64::from(i32::MAX)),
            ("int32_min", i64::from(i32::MIN)),
            ("int64_above_i32", 1 << 31),
            ("int64_below_i32", -(1 << 31) - 1),
            ("int64_max", i64::MAX),
            ("int64_min", i64::MIN),
        ] {
            check_typed_vector(name, &I { i: PyInt(n) });
            // A plain i64 field reads int32 and int64 alike.
            assert_eq!(from_slice::<I<i64>>(&v(name)).unwrap().i, n);
            if let Ok(small) = i32::try_from(n) {
                check_typed_vector(name, &I { i: small });
                // Plain i64 always encodes as int64: different bytes, same value.
                let wide = to_vec(&I { i: n }).unwrap();
                assert_eq!(wide[4], 0x12);
                assert_ne!(wide, v(name));
                assert_eq!(to_vec_pybson(&I { i: n }).unwrap(), v(name));
            } else {
                check_typed_vector(name, &I { i: n });
                assert_eq!(to_vec_pybson(&I { i: n }).unwrap(), v(name));
            }
            if let Ok(u) = u64::try_from(n) {
                check_typed_vector(name, &I { i: PyUInt(u) });
            }
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct WithU {
            #[serde(with = "py_uint")]
            u: u64,
        }
        for (name, n) in [
            ("uint64_min", 1u64 << 63),
            ("uint64_mid", (1u64 << 63) + (1 << 32) + 7),
            ("uint64_max", u64::MAX),
        ] {
            check_typed_vector(name, &U { u: PyUInt(n) });
            check_typed_vector(name, &WithU { u: n });
            check_typed_vector(
                name,
                &U {
                    u: timestamp_from_py_uint64(n),
                },
            );
            // A plain u64 cannot be written above i64::MAX, nor read from 0x11.
            assert!(matches!(to_vec(&U { u: n }), Err(BsonError::Encode { .. })));
            assert!(matches!(
                from_slice::<U<u64>>(&v(name)),
                Err(BsonError::Decode { .. })
            ));
            // PyInt refuses it and says which value.
            let err = from_slice::<U<PyInt>>(&v(name)).unwrap_err();
            assert!(err.to_string().contains(&n.to_string()), "{err}");
        }
        check_typed_vector("float", &X { x: 2.5 });
        check_typed_vector("float_inf", &X { x: f64::INFINITY });
        check_typed_vector("float_tiny", &X { x: 5e-324 });
        check_typed_vector("float_int_valued", &X { x: 1.0 });
        check_typed_vector("decimal", &X { x: 0.1 });
        let neg_zero: X = from_slice(&v("float_neg_zero")).unwrap();
        assert!(neg_zero.x == 0.0 && neg_zero.x.is_sign_negative());
        assert_eq!(to_vec(&X { x: -0.0 }).unwrap(), v("float_neg_zero"));
        check_typed_vector("str_empty", &S { s: String::new() });
        check_typed_vector(
            "str_unicode",
            &S {
                s: "h\u{e9} \u{4e2d} \u{1f430}".into(),
            },
        );
        check_typed_vector("str_nul_inside", &S { s: "a\0b".into() });
        #[derive(Deserialize)]
        struct Borrowed<'a> {
            s: &'a str,
        }
        let bytes = v("str_ascii");
        assert_eq!(from_slice::<Borrowed<'_>>(&bytes).unwrap().s, "hi there");
    }

    #[test]
    fn pybson_structures_as_typed_values() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Bools {
            t: bool,
            f: bool,
        }
        check_typed_vector("bool", &Bools { t: true, f: false });
        check_typed_vector(
            "bytes",
            &B {
                b: generic(b"\x00\x01ab\xff"),
            },
        );
        check_typed_vector(
            "uuid",
            &U {
                u: Uuid::from_bytes(UUID),
            },
        );
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct D {
            d: DateTime,
        }
        check_typed_vector(
            "datetime",
            &D {
                d: DateTime::from_millis(1_719_748_800_123),
            },
        );
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct N {
            n: Option<i32>,
        }
        check_typed_vector("none", &N { n: None });
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Nested {
            d: Inner,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Inner {
            a: i32,
            b: S2,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct S2 {
            c: String,
        }
        check_typed_vector(
            "nested",
            &Nested {
                d: Inner {
                    a: 1,
                    b: S2 { c: "x".into() },
                },
            },
        );
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct L {
            l: (i32, String, Option<i32>, f64),
        }
        check_typed_vector(
            "list",
            &L {
                l: (1, "a".into(), None, 2.5),
            },
        );
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Empty {
            l: Vec<i32>,
        }
        check_typed_vector("list_empty", &Empty { l: vec![] });
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct T {
            t: (i32, i32),
        }
        check_typed_vector("tuple", &T { t: (1, 2) });
        check_typed_vector("tuple", &T2 { t: vec![1, 2] });
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct T2 {
            t: Vec<i32>,
        }
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Order {
            z: i32,
            a: i32,
            m: i32,
        }
        check_typed_vector("key_order", &Order { z: 1, a: 2, m: 3 });
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Mixed {
            a: PyInt,
            b: PyInt,
            c: PyUInt,
            d: PyInt,
        }
        check_typed_vector(
            "mixed_ints",
            &Mixed {
                a: PyInt(1),
                b: PyInt(1 << 40),
                c: PyUInt(u64::MAX - 1),
                d: PyInt(-7),
            },
        );
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Small {
            seq: i32,
            pad: Binary,
        }
        check_typed_vector(
            "bench_small",
            &Small {
                seq: 0,
                pad: generic(&[b'x'; 26]),
            },
        );
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct AllTypes {
        flag: bool,
        n: PyInt,
        big: PyInt,
        huge: PyUInt,
        x: f64,
        s: String,
        raw: Binary,
        id: Uuid,
        at: DateTime,
        nothing: Option<String>,
        sub: Sub,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Sub {
        k: (i32, (i32, String)),
    }

    fn all_types() -> AllTypes {
        AllTypes {
            flag: true,
            n: PyInt(42),
            big: PyInt(1 << 40),
            huge: PyUInt((1 << 63) + 5),
            x: 0.5,
            s: "h\u{e9}".into(),
            raw: generic(b"\x01\x02"),
            id: Uuid::from_bytes(UUID),
            // datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
            at: DateTime::from_millis(1_704_164_645_006),
            nothing: None,
            sub: Sub {
                k: (1, (2, "three".into())),
            },
        }
    }

    #[test]
    fn pybson_all_types_document() {
        check_typed_vector("all_types", &all_types());
        let doc = to_document(&all_types()).unwrap();
        assert_eq!(
            doc.get("huge"),
            Some(&Bson::Timestamp(timestamp_from_py_uint64((1 << 63) + 5)))
        );
        assert_eq!(from_document::<AllTypes>(&doc).unwrap(), all_types());
        assert_eq!(document_to_vec(&doc).unwrap(), v("all_types"));
        assert_eq!(to_vec_pybson(&all_types()).unwrap(), v("all_types"));
    }

    #[test]
    fn documents_are_frames_of_the_bson_framing() {
        use crate::framing::{BsonDocument, Decode, Framing};
        let bytes = to_vec(&all_types()).unwrap();
        let mut stream = bytes.clone();
        stream.extend_from_slice(&v("hello"));
        let Decode::Frame { len, payload } = BsonDocument::new().decode(&stream).unwrap() else {
            panic!("no frame")
        };
        assert_eq!((len, payload.clone()), (bytes.len(), 0..bytes.len()));
        assert_eq!(
            from_slice::<AllTypes>(&stream[payload]).unwrap(),
            all_types()
        );
        // The framing adds nothing: the document is its own frame.
        assert!(BsonDocument::new()
            .header(&bytes)
            .unwrap()
            .as_slice()
            .is_empty());
    }

    #[test]
    fn what_a_pybson_peer_echoes() {
        // ObjectId: sent as 0x07, echoed as binary subtype 0 holding the 24 hex digits.
        let sent = document_from_slice(&v("in_objectid")).unwrap();
        let oid = sent.get_object_id("o").unwrap();
        assert_eq!(oid.bytes(), core::array::from_fn::<u8, 12, _>(|i| i as u8));
        let echoed = document_from_slice(&v("echo_objectid")).unwrap();
        let hex_digits = echoed.get_binary_generic("o").unwrap();
        assert_eq!(hex_digits, b"000102030405060708090a0b");
        assert_eq!(object_id_from_pybson(hex_digits).unwrap(), oid);
        assert!(matches!(
            object_id_from_pybson(b"0001"),
            Err(BsonError::Decode { .. })
        ));
        assert!(matches!(
            object_id_from_pybson(b"zz0102030405060708090a0b"),
            Err(BsonError::Decode { .. })
        ));
        // ObjectId is something py-bson can read (lossily): to_vec_pybson keeps it.
        assert_eq!(to_vec_pybson(&sent).unwrap(), v("in_objectid"));

        // Binary subtype 3 (legacy UUID) comes back as subtype 4, same 16 bytes.
        let sent = document_from_slice(&v("in_binary_subtype3")).unwrap();
        let Some(Bson::Binary(b3)) = sent.get("u") else {
            panic!("{sent:?}")
        };
        assert_eq!(b3.subtype, BinarySubtype::UuidOld);
        let echoed: U<Uuid> = from_slice(&v("echo_binary_subtype3")).unwrap();
        assert_eq!(echoed.u, Uuid::from_bytes(UUID));
        assert_eq!(echoed.u.bytes()[..], b3.bytes[..]);

        // Other subtypes come back as subtype 0.
        let echoed: B<Binary> = from_slice(&v("echo_binary_subtype80")).unwrap();
        assert_eq!(echoed.b, generic(b"hi"));

        // int64 5 and 0x11 5 come back as int32 5; PyInt / PyUInt / i64 read all forms.
        for name in ["in_int64_small", "echo_int64_small"] {
            #[derive(Deserialize)]
            struct N {
                n: i64,
            }
            assert_eq!(from_slice::<N>(&v(name)).unwrap().n, 5, "{name}");
        }
        assert_eq!(v("echo_int64_small")[4], 0x10);
        for name in ["in_timestamp_small", "echo_timestamp_small"] {
            #[derive(Deserialize)]
            struct T {
                t: PyUInt,
            }
            assert_eq!(from_slice::<T>(&v(name)).unwrap().t, PyUInt(5), "{name}");
        }
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            from_slice::<Document>(b"\x05\0\0"),
            Err(BsonError::TooShort { len: 3 })
        );
        // py-bson reads a declared length <= 4 as {}; we do not.
        assert_eq!(
            from_slice::<Document>(b"\x00\0\0\0\0"),
            Err(BsonError::LengthMismatch {
                declared: 0,
                actual: 5
            })
        );
        assert_eq!(
            from_slice::<Document>(b"\xff\xff\xff\xff\0"),
            Err(BsonError::LengthMismatch {
                declared: -1,
                actual: 5
            })
        );
        let mut hello = v("hello");
        hello.push(0);
        assert_eq!(
            from_slice::<Document>(&hello),
            Err(BsonError::LengthMismatch {
                declared: 22,
                actual: 23
            })
        );
        assert_eq!(
            from_slice::<Document>(b"\x05\0\0\0\x01"),
            Err(BsonError::MissingTerminator { found: 1 })
        );
        assert_eq!(
            from_slice_with_max::<Document>(&v("hello"), 21),
            Err(BsonError::TooLong { len: 22, max: 21 })
        );
        assert!(from_slice_with_max::<Document>(&v("hello"), 22).is_ok());
        // Unsupported element type inside (0x13 decimal128 truncated) and a type mismatch.
        assert!(matches!(
            from_slice::<Document>(b"\x0c\0\0\0\x13a\0\x01\0\0\0\0"),
            Err(BsonError::Decode { .. })
        ));
        assert!(matches!(
            from_slice::<S>(&v("int32_small")),
            Err(BsonError::Decode { .. })
        ));
        assert!(matches!(
            document_from_slice(b"\x05\0\0\0\x01"),
            Err(BsonError::MissingTerminator { found: 1 })
        ));
    }

    #[test]
    fn encode_errors_leave_the_buffer_alone() {
        let mut buf = b"keep".to_vec();
        assert_eq!(
            encode_into_with_max(&doc! {"hello": "world"}, &mut buf, 21),
            Err(BsonError::TooLong { len: 22, max: 21 })
        );
        assert_eq!(buf, b"keep");
        assert_eq!(
            encode_into_with_max(&doc! {"hello": "world"}, &mut buf, 22),
            Ok(22)
        );
        assert_eq!(buf[4..], v("hello")[..]);
        buf.truncate(4);
        for bad in [
            encode_into(&5i32, &mut buf),
            encode_into(&"text", &mut buf),
            encode_into(&U { u: u64::MAX }, &mut buf),
        ] {
            assert!(matches!(bad, Err(BsonError::Encode { .. })), "{bad:?}");
            assert_eq!(buf, b"keep");
        }
        let mut with_nul = HashMap::new();
        with_nul.insert("a\0b", 1);
        assert!(matches!(to_vec(&with_nul), Err(BsonError::Encode { .. })));
        assert_eq!(
            to_vec_with_max(&doc! {"a": 1}, 11),
            Err(BsonError::TooLong { len: 12, max: 11 })
        );
    }

    #[test]
    fn pybson_unsupported_types_are_refused() {
        let regex = Regex {
            pattern: "a+".try_into().unwrap(),
            options: "".try_into().unwrap(),
        };
        let doc = doc! {"ok": 1, "sub": {"list": [1, regex]}};
        assert_eq!(
            to_vec_pybson(&doc),
            Err(BsonError::Unsupported {
                element_type: 0x0b,
                path: "sub.list.1".into()
            })
        );
        assert_eq!(
            to_vec_pybson(&doc! {"m": Bson::MaxKey}),
            Err(BsonError::Unsupported {
                element_type: 0x7f,
                path: "m".into()
            })
        );
        let mut normalized = doc! {"a": 5i64, "b": [1i64 << 40, 7i64], "c": {"d": -3i64}};
        pybson_normalize(&mut normalized).unwrap();
        assert_eq!(
            normalized,
            doc! {"a": 5i32, "b": [1i64 << 40, 7i32], "c": {"d": -3i32}}
        );
    }

    #[test]
    fn py_int_ranges() {
        assert_eq!(py_int_to_bson(0), Ok(Bson::Int32(0)));
        assert_eq!(py_int_to_bson(-(1 << 31)), Ok(Bson::Int32(i32::MIN)));
        assert_eq!(py_int_to_bson(1 << 31), Ok(Bson::Int64(1 << 31)));
        assert_eq!(py_int_to_bson(-(1 << 63)), Ok(Bson::Int64(i64::MIN)));
        assert_eq!(
            py_int_to_bson(1 << 63),
            Ok(Bson::Timestamp(Timestamp {
                time: 1 << 31,
                increment: 0
            }))
        );
        // bson.dumps raises for these.
        assert_eq!(
            py_int_to_bson(1 << 64),
            Err(BsonError::IntOutOfRange { value: 1 << 64 })
        );
        assert_eq!(
            py_int_to_bson(-(1 << 63) - 1),
            Err(BsonError::IntOutOfRange {
                value: -(1 << 63) - 1
            })
        );
        assert_eq!(py_int_from_bson(&Bson::String("1".into())), None);
        // A negative int cannot be a PyUInt.
        let err = from_slice::<I<PyUInt>>(&v("int32_neg")).unwrap_err();
        assert!(err.to_string().contains("-1"), "{err}");
        let err = from_slice::<I<PyInt>>(&v("str_ascii")).unwrap_err();
        assert!(matches!(err, BsonError::Decode { .. }), "{err:?}");
    }

    #[test]
    fn errors_display_their_numbers() {
        let text = BsonError::LengthMismatch {
            declared: 9,
            actual: 12,
        }
        .to_string();
        assert!(text.contains('9') && text.contains("12"), "{text}");
        assert!(BsonError::TooLong { len: 30, max: 20 }
            .to_string()
            .contains("30 bytes"));
        assert!(BsonError::Unsupported {
            element_type: 0x13,
            path: "a.b".into()
        }
        .to_string()
        .contains("0x13"));
    }

    fn py_type_byte(n: i128) -> u8 {
        if i32::try_from(n).is_ok() {
            0x10
        } else if i64::try_from(n).is_ok() {
            0x12
        } else {
            0x11
        }
    }

    proptest! {
        #[test]
        fn py_int_picks_the_pybson_type(n in any::<i64>()) {
            let bytes = to_vec(&I { i: PyInt(n) }).unwrap();
            prop_assert_eq!(bytes[4], py_type_byte(i128::from(n)));
            prop_assert_eq!(from_slice::<I<PyInt>>(&bytes).unwrap().i, PyInt(n));
            prop_assert_eq!(from_slice::<I<i64>>(&bytes).unwrap().i, n);
            prop_assert_eq!(to_vec_pybson(&I { i: n }).unwrap(), bytes.clone());
            prop_assert_eq!(to_vec(&doc! {"i": py_int_to_bson(i128::from(n)).unwrap()}).unwrap(), bytes);
        }

        #[test]
        fn py_uint_picks_the_pybson_type(n in any::<u64>()) {
            let bytes = to_vec(&U { u: PyUInt(n) }).unwrap();
            prop_assert_eq!(bytes[4], py_type_byte(i128::from(n)));
            prop_assert_eq!(from_slice::<U<PyUInt>>(&bytes).unwrap().u, PyUInt(n));
            prop_assert_eq!(py_uint64_from_timestamp(timestamp_from_py_uint64(n)), n);
            if bytes[4] == 0x11 {
                prop_assert_eq!(&bytes[7..15], &n.to_le_bytes()[..]);
            }
        }

        #[test]
        fn documents_round_trip(
            entries in proptest::collection::vec(("[a-z\u{e9}]{0,6}", any::<i64>(), ".{0,8}", any::<f64>()), 0..8)
        ) {
            let mut doc = Document::new();
            for (i, (k, n, s, f)) in entries.iter().enumerate() {
                doc.insert(format!("{k}{i}"), doc! {"n": *n, "s": s.as_str(), "f": *f});
            }
            let bytes = to_vec(&doc).unwrap();
            check_document(&bytes, DEFAULT_MAX_DOCUMENT_LEN).unwrap();
            let back = document_from_slice(&bytes).unwrap();
            prop_assert_eq!(document_to_vec(&back).unwrap(), bytes.clone());
            prop_assert_eq!(to_document(&doc).unwrap(), back);
            let typed: HashMap<String, Document> = from_slice(&bytes).unwrap();
            prop_assert_eq!(typed.len(), doc.len());
            // Any truncation is an envelope error, never a panic.
            for cut in 0..bytes.len() {
                prop_assert!(from_slice::<Document>(&bytes[..cut]).is_err());
            }
        }
    }
}
