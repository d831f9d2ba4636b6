//! The fast path of [`super::from_slice`]: documents of plain element types, read by a serde
//! deserializer of our own instead of the `bson` crate's.
//!
//! Most documents on a py-bson link hold only doubles, strings, documents, arrays, generic
//! binaries, booleans, nulls and 32/64-bit integers. For those, the `bson` crate's serde
//! deserializer does nothing a visitor could tell apart from a plain walk over the bytes: it
//! hands every value to `deserialize_any`'s visitor as the matching primitive, documents as
//! maps and arrays as sequences. This module does exactly that walk, without the crate's
//! per-element bookkeeping, and validates such documents in one pass of its own:
//!
//! * [`accepts`] says whether a document is one the fast path reads: well-formed in every way
//!   the crate's raw decoder checks (lengths, terminators, UTF-8 of keys and strings, booleans
//!   0 or 1), of plain element types only, no deeper than the limit, and without a key of
//!   [`super::EXTENDED_JSON_KEYS`] in any document. It never accepts a document the crate's
//!   validation refuses; for anything else (malformed or merely not plain) it answers `false`
//!   and the caller takes the crate's path, which gives the verdict and the error.
//! * [`deserialize`] reads an accepted document into `T`, presenting every value as the
//!   crate's `RawDeserializer` does. Where the crate does something special (its private
//!   newtypes: raw documents, UUIDs, human-readable and lossy-UTF-8 wrappers), and on any
//!   error at all, it gives up (`None`), and the caller decodes with the crate instead, so
//!   results and errors are the crate's in every case the fast path does not finish.

use core::cell::Cell;
use core::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use super::is_extended_json_key;

/// The element types the fast path reads (BSON spec numbering).
pub(super) const DOUBLE: u8 = 0x01;
pub(super) const STRING: u8 = 0x02;
pub(super) const DOCUMENT: u8 = 0x03;
pub(super) const ARRAY: u8 = 0x04;
pub(super) const BINARY: u8 = 0x05;
pub(super) const BOOLEAN: u8 = 0x08;
pub(super) const NULL: u8 = 0x0A;
pub(super) const INT32: u8 = 0x10;
pub(super) const INT64: u8 = 0x12;

/// Binary subtype 0 (generic): the only one handed to visitors as plain bytes, and what the
/// crate writes for `serialize_bytes`.
pub(super) const GENERIC: u8 = 0x00;

/// Newtype names starting with this are the `bson` crate's private hooks (`RawDocumentBuf`,
/// `RawBson`, `Uuid`, human-readable and lossy-UTF-8 wrappers), which its deserializer and
/// serializer treat specially: the plain paths leave those to the crate.
pub(super) const BSON_PRIVATE_NEWTYPE_PREFIX: &str = "$__";

/// Something a plain path does not read or write: malformed, not a plain element type, or a
/// case the `bson` crate treats specially. The caller falls back to the crate.
#[derive(Debug)]
pub(super) struct NotPlain;

impl fmt::Display for NotPlain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not handled by the plain BSON path")
    }
}

impl core::error::Error for NotPlain {}

impl de::Error for NotPlain {
    fn custom<T: fmt::Display>(_message: T) -> Self {
        // The message is not kept: any error sends the document to the crate's decoder, which
        // gives the error its users see.
        NotPlain
    }
}

impl serde::ser::Error for NotPlain {
    fn custom<T: fmt::Display>(_message: T) -> Self {
        // As above, for the crate's encoder.
        NotPlain
    }
}

/// One element of a document or array: its type byte, key (without the NUL) and value bytes
/// (the whole encoded value: a string's or binary's length prefix, a document's length and
/// terminator included).
#[derive(Clone, Copy)]
struct Element<'de> {
    kind: u8,
    key: &'de [u8],
    value: &'de [u8],
}

/// The first four bytes of `bytes` as a little-endian int32.
#[inline]
fn le_i32(bytes: &[u8]) -> Result<i32, NotPlain> {
    match bytes {
        [a, b, c, d, ..] => Ok(i32::from_le_bytes([*a, *b, *c, *d])),
        _ => Err(NotPlain),
    }
}

/// The first eight bytes of `bytes`.
#[inline]
fn eight(bytes: &[u8]) -> Result<[u8; 8], NotPlain> {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or(NotPlain)
}

/// A length field that must be at least `min`.
#[inline]
fn length_at_least(bytes: &[u8], min: i32) -> Result<usize, NotPlain> {
    let len = le_i32(bytes)?;
    if len < min {
        return Err(NotPlain);
    }
    usize::try_from(len).map_err(|_| NotPlain)
}

/// The elements of a document or array: `list` is the bytes between its length field and its
/// terminator.
struct Elements<'de> {
    list: &'de [u8],
}

impl<'de> Elements<'de> {
    /// The elements of the encoded document or array `doc` (length field and terminator
    /// included; both already checked).
    fn of(doc: &'de [u8]) -> Result<Self, NotPlain> {
        let end = doc.len().checked_sub(1).ok_or(NotPlain)?;
        Ok(Elements {
            list: doc.get(4..end).ok_or(NotPlain)?,
        })
    }

    /// The next element, `None` at the end. Cuts the element by the size its type and length
    /// field give; the checks of the value itself are [`check_value`]'s.
    #[inline]
    fn next(&mut self) -> Result<Option<Element<'de>>, NotPlain> {
        let Some((&kind, rest)) = self.list.split_first() else {
            return Ok(None);
        };
        let key_len = rest.iter().position(|&b| b == 0).ok_or(NotPlain)?;
        let key = &rest[..key_len];
        let after = &rest[key_len + 1..];
        let size = match kind {
            DOUBLE | INT64 => 8,
            INT32 => 4,
            BOOLEAN => 1,
            NULL => 0,
            // Length, at least the NUL, then the bytes.
            STRING => 4 + length_at_least(after, 1)?,
            DOCUMENT | ARRAY => length_at_least(after, 5)?,
            // Length, subtype, then the bytes.
            BINARY => 5 + length_at_least(after, 0)?,
            _ => return Err(NotPlain),
        };
        let value = after.get(..size).ok_or(NotPlain)?;
        self.list = &after[size..];
        Ok(Some(Element { kind, key, value }))
    }
}

/// Whether the fast path reads the document `doc`, whose envelope (length, terminator) has
/// been checked: see the module documentation. A `true` means the `bson` crate's validation
/// accepts it too.
pub(super) fn accepts(doc: &[u8], max_depth: usize) -> bool {
    Elements::of(doc).is_ok_and(|elements| check_elements(elements, true, 1, max_depth).is_ok())
}

/// Check the elements of a document (`is_document`) or array at nesting level `depth`.
fn check_elements(
    mut elements: Elements<'_>,
    is_document: bool,
    depth: usize,
    max_depth: usize,
) -> Result<(), NotPlain> {
    if depth > max_depth {
        return Err(NotPlain);
    }
    while let Some(element) = elements.next()? {
        if !is_utf8(element.key) {
            return Err(NotPlain);
        }
        // Extended-JSON keys all start with `$`: other keys are not read as text again.
        if is_document
            && element.key.first() == Some(&b'$')
            && is_extended_json_key_bytes(element.key)
        {
            return Err(NotPlain);
        }
        check_value(element, depth, max_depth)?;
    }
    Ok(())
}

/// Check one value as the crate's raw decoder does (its size is already within bounds).
fn check_value(element: Element<'_>, depth: usize, max_depth: usize) -> Result<(), NotPlain> {
    let value = element.value;
    let valid = match element.kind {
        STRING => is_utf8(string_bytes(value)?),
        DOCUMENT | ARRAY => {
            value.last() == Some(&0)
                && check_elements(
                    Elements::of(value)?,
                    element.kind == DOCUMENT,
                    depth + 1,
                    max_depth,
                )
                .is_ok()
        }
        // The crate refuses binaries of 2 GiB and more, and reads subtype 2 (old binary)
        // differently; only generic binaries are plain.
        BINARY => value.get(4) == Some(&GENERIC) && value.len() < i32::MAX as usize,
        BOOLEAN => value.first().is_some_and(|&b| b <= 1),
        _ => true,
    };
    if valid {
        Ok(())
    } else {
        Err(NotPlain)
    }
}

/// Whether `bytes` are UTF-8; short ASCII (keys, most strings) without the full check.
#[inline]
fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || core::str::from_utf8(bytes).is_ok()
}

/// [`is_extended_json_key`] of a key's bytes.
fn is_extended_json_key_bytes(key: &[u8]) -> bool {
    core::str::from_utf8(key).is_ok_and(is_extended_json_key)
}

/// The bytes of an encoded string value (length field, bytes, NUL): between the length field
/// and the NUL, which must be there.
#[inline]
fn string_bytes(value: &[u8]) -> Result<&[u8], NotPlain> {
    match value.split_last() {
        Some((0, with_length)) => with_length.get(4..).ok_or(NotPlain),
        _ => Err(NotPlain),
    }
}

/// The text of an encoded string value.
#[inline]
fn string(value: &[u8]) -> Result<&str, NotPlain> {
    core::str::from_utf8(string_bytes(value)?).map_err(|_| NotPlain)
}

/// Deserialize `T` from `doc`, which [`accepts`] accepted. `None` if the fast path gave up
/// (see the module documentation): the caller then decodes with the crate.
pub(super) fn deserialize<'de, T: serde::Deserialize<'de>>(doc: &'de [u8]) -> Option<T> {
    let gave_up = Cell::new(false);
    let top = Value {
        element: Element {
            kind: DOCUMENT,
            key: b"",
            value: doc,
        },
        gave_up: &gave_up,
    };
    let result = T::deserialize(top);
    // Giving up wins even if `T` swallowed the error (a fallible field, an untagged enum).
    match (result, gave_up.get()) {
        (Ok(value), false) => Some(value),
        _ => None,
    }
}

/// One value, as the `bson` crate's `RawDeserializer` presents it.
struct Value<'a, 'de> {
    element: Element<'de>,
    /// Set when the fast path meets something it leaves to the crate.
    gave_up: &'a Cell<bool>,
}

impl Value<'_, '_> {
    fn give_up(&self) -> NotPlain {
        self.gave_up.set(true);
        NotPlain
    }
}

impl<'de> Deserializer<'de> for Value<'_, 'de> {
    type Error = NotPlain;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        let value = self.element.value;
        match self.element.kind {
            INT32 => visitor.visit_i32(le_i32(value)?),
            INT64 => visitor.visit_i64(i64::from_le_bytes(eight(value)?)),
            DOUBLE => visitor.visit_f64(f64::from_le_bytes(eight(value)?)),
            STRING => visitor.visit_borrowed_str(string(value)?),
            BOOLEAN => visitor.visit_bool(value.first() == Some(&1)),
            NULL => visitor.visit_unit(),
            DOCUMENT => visitor.visit_map(Access::of(value, self.gave_up)?),
            ARRAY => visitor.visit_seq(Access::of(value, self.gave_up)?),
            BINARY => visitor.visit_borrowed_bytes(value.get(5..).ok_or(NotPlain)?),
            _ => Err(self.give_up()),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, NotPlain> {
        if self.element.kind == NULL {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        match self.element.kind {
            // As the crate: the string (not borrowed) names a unit variant.
            STRING => visitor.visit_enum(string(self.element.value)?.into_deserializer()),
            DOCUMENT => visitor.visit_enum(Access::of(self.element.value, self.gave_up)?),
            _ => Err(NotPlain),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        if name.starts_with(BSON_PRIVATE_NEWTYPE_PREFIX) {
            return Err(self.give_up());
        }
        visitor.visit_newtype_struct(self)
    }

    fn is_human_readable(&self) -> bool {
        false
    }

    // Not `i128` / `u128`: the crate leaves them to serde's default (an error), and so do we.
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The elements of a document (as a map or an enum) or an array (as a sequence), as the
/// crate's `DocumentAccess`: the current element stays until the next key is asked for.
struct Access<'a, 'de> {
    elements: Elements<'de>,
    current: Option<Element<'de>>,
    gave_up: &'a Cell<bool>,
}

impl<'a, 'de> Access<'a, 'de> {
    fn of(doc: &'de [u8], gave_up: &'a Cell<bool>) -> Result<Self, NotPlain> {
        Ok(Access {
            elements: Elements::of(doc)?,
            current: None,
            gave_up,
        })
    }

    fn advance(&mut self) -> Result<Option<Element<'de>>, NotPlain> {
        self.current = self.elements.next()?;
        Ok(self.current)
    }

    fn value(&self) -> Result<Value<'a, 'de>, NotPlain> {
        Ok(Value {
            element: self.current.ok_or(NotPlain)?,
            gave_up: self.gave_up,
        })
    }
}

/// A key as the visitor sees it (borrowed from the input).
fn key(element: Element<'_>) -> Result<BorrowedStrDeserializer<'_, NotPlain>, NotPlain> {
    let key = core::str::from_utf8(element.key).map_err(|_| NotPlain)?;
    Ok(BorrowedStrDeserializer::new(key))
}

impl<'de> MapAccess<'de> for Access<'_, 'de> {
    type Error = NotPlain;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, NotPlain> {
        match self.advance()? {
            None => Ok(None),
            Some(element) => seed.deserialize(key(element)?).map(Some),
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, NotPlain> {
        seed.deserialize(self.value()?)
    }
}

impl<'de> SeqAccess<'de> for Access<'_, 'de> {
    type Error = NotPlain;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, NotPlain> {
        match self.advance()? {
            None => Ok(None),
            Some(_) => seed.deserialize(self.value()?).map(Some),
        }
    }
}

impl<'de> EnumAccess<'de> for Access<'_, 'de> {
    type Error = NotPlain;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(
        mut self,
        seed: S,
    ) -> Result<(S::Value, Self), NotPlain> {
        let element = self.advance()?.ok_or(NotPlain)?;
        let variant = seed.deserialize(key(element)?)?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Access<'_, 'de> {
    type Error = NotPlain;

    fn unit_variant(self) -> Result<(), NotPlain> {
        // The crate: "expected a string enum, got a document instead".
        Err(NotPlain)
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, NotPlain> {
        seed.deserialize(self.value()?)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, NotPlain> {
        self.value()?.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, NotPlain> {
        self.value()?.deserialize_map(visitor)
    }
}

#[cfg(test)]
// Test-local helper types sit next to the assertions that use them.
#[allow(clippy::items_after_statements)]
mod tests {
    use super::super::{from_slice, to_vec, validate, BsonError, DecodeLimits};
    use super::{accepts, deserialize};
    use alloc::vec;
    use bson::oid::ObjectId;
    use bson::spec::BinarySubtype;
    use bson::{doc, Binary, Bson, DateTime, Document, RawDocumentBuf, Timestamp};
    use proptest::prelude::*;
    use serde::{Deserialize, Deserializer};
    use std::collections::BTreeMap;
    use std::format;
    use std::string::{String, ToString};
    use std::vec::Vec;

    use super::super::test_documents::{document, is_plain};

    /// A typed target: fields that read the documents' keys, an enum that reads strings and
    /// documents, a fallible field, a flattened rest.
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Typed {
        #[serde(default)]
        a: Option<Bson>,
        #[serde(default)]
        b: Option<Vec<Option<i64>>>,
        #[serde(default, deserialize_with = "ok_or_none")]
        s: Option<Choice>,
        #[serde(default)]
        e: Option<Choice>,
        #[serde(flatten)]
        rest: BTreeMap<String, Bson>,
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    enum Choice {
        #[serde(rename = "a")]
        Unit,
        #[serde(rename = "b")]
        Newtype(i32),
        #[serde(rename = "s")]
        Tuple(i32, String),
        #[serde(rename = "e")]
        Struct { a: f64 },
    }

    #[allow(clippy::unnecessary_wraps)] // the signature serde's deserialize_with needs
    fn ok_or_none<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Choice>, D::Error> {
        Ok(Choice::deserialize(de).ok())
    }

    /// What `T` reads of `bytes` through framewire and through the `bson` crate directly:
    /// the same value (compared by its debug form, so NaN equals NaN) or both an error.
    fn same_as_the_crate<'de, T>(bytes: &'de [u8]) -> Result<(), TestCaseError>
    where
        T: Deserialize<'de> + core::fmt::Debug,
    {
        let ours = from_slice::<T>(bytes);
        if let Err(BsonError::ExtendedJsonKey { .. }) = ours {
            // Refused on purpose (checked.rs); not the fast path's business.
            return Ok(());
        }
        let theirs = bson::deserialize_from_slice::<T>(bytes);
        prop_assert_eq!(
            ours.as_ref().ok().map(|v| format!("{v:?}")),
            theirs.as_ref().ok().map(|v| format!("{v:?}")),
            "{} from {:?}: ours {:?}, the crate's {:?}",
            core::any::type_name::<T>(),
            bytes,
            ours,
            theirs
        );
        Ok(())
    }

    fn limits() -> DecodeLimits {
        DecodeLimits::new()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn plain_documents_are_accepted_and_read_as_the_crate_reads_them(doc in document()) {
            let bytes = to_vec(&doc).unwrap();
            prop_assert!(validate(&bytes, limits()).is_ok());
            prop_assert_eq!(accepts(&bytes, 100), is_plain(&doc), "{:?}", doc);
            if is_plain(&doc) {
                // The fast path reads it itself, as the crate does.
                let fast: Document = deserialize(&bytes).expect("read by the fast path");
                prop_assert_eq!(format!("{fast:?}"), format!("{doc:?}"));
            }
            same_as_the_crate::<Document>(&bytes)?;
            same_as_the_crate::<BTreeMap<String, Bson>>(&bytes)?;
            same_as_the_crate::<Typed>(&bytes)?;
            same_as_the_crate::<BTreeMap<String, Option<Vec<i64>>>>(&bytes)?;
            same_as_the_crate::<Choice>(&bytes)?;
            same_as_the_crate::<BTreeMap<String, (i32, String)>>(&bytes)?;
            same_as_the_crate::<BTreeMap<String, char>>(&bytes)?;
            same_as_the_crate::<BTreeMap<String, RawDocumentBuf>>(&bytes)?;
        }

        #[test]
        fn the_fast_path_accepts_nothing_the_crate_refuses(
            doc in document(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            shorten in any::<bool>(),
        ) {
            let mut bytes = to_vec(&doc).unwrap();
            for (at, byte) in &edits {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
            if shorten {
                // Drop a byte inside and fix the envelope, so the damage is inside.
                bytes.remove(cut.index(bytes.len() - 1).max(4));
                let len = i32::try_from(bytes.len()).unwrap();
                bytes[..4].copy_from_slice(&len.to_le_bytes());
                *bytes.last_mut().unwrap() = 0;
            }
            if super::super::check_document(&bytes, usize::MAX).is_ok() && accepts(&bytes, 100) {
                prop_assert!(validate(&bytes, limits()).is_ok(), "{:?}", bytes);
                same_as_the_crate::<Document>(&bytes)?;
                same_as_the_crate::<Typed>(&bytes)?;
            }
        }
    }

    #[test]
    fn every_one_byte_change_is_accepted_only_if_the_crate_accepts_it() {
        let docs = [
            doc! {"hello": "world"},
            doc! {"seq": 0, "pad": Binary { subtype: BinarySubtype::Generic, bytes: vec![b'x'; 26] }},
            doc! {
                "d": {"s": "h\u{e9}", "t": true, "n": Bson::Null},
                "l": [1.5, 7_i64, [false], {"": ""}],
                "b": Binary { subtype: BinarySubtype::Generic, bytes: vec![] },
            },
        ];
        let mut accepted = 0;
        for doc in docs {
            let golden = to_vec(&doc).unwrap();
            for at in 0..golden.len() {
                let was = golden[at];
                let mut changed = golden.clone();
                for byte in [
                    0,
                    1,
                    2,
                    4,
                    5,
                    0x7f,
                    0x80,
                    0xc3,
                    0xff,
                    was.wrapping_add(1),
                    was.wrapping_sub(1),
                ] {
                    if byte == was {
                        continue;
                    }
                    changed[at] = byte;
                    if super::super::check_document(&changed, usize::MAX).is_ok()
                        && accepts(&changed, 100)
                    {
                        accepted += 1;
                        assert!(validate(&changed, limits()).is_ok(), "{changed:?}");
                        let ours = from_slice::<Document>(&changed);
                        let theirs = bson::deserialize_from_slice::<Document>(&changed);
                        // By the debug form: NaN equals NaN.
                        assert_eq!(
                            format!("{:?}", ours.ok()),
                            format!("{:?}", theirs.ok()),
                            "{changed:?}"
                        );
                    }
                }
            }
        }
        // Changed keys, string bytes and numbers stay valid: the check is not vacuous.
        assert!(accepted > 300, "{accepted}");
    }

    #[test]
    fn what_the_fast_path_leaves_to_the_crate() {
        // Not plain element types: the crate reads them.
        for doc in [
            doc! {"o": ObjectId::from_bytes([1; 12])},
            doc! {"u": Binary { subtype: BinarySubtype::Uuid, bytes: vec![1; 16] }},
            doc! {"d": {"t": Timestamp { time: 1, increment: 2 }}},
            doc! {"l": [1, DateTime::from_millis(5)]},
        ] {
            let bytes = to_vec(&doc).unwrap();
            assert!(!accepts(&bytes, 100), "{doc:?}");
            assert_eq!(from_slice::<Document>(&bytes), Ok(doc));
        }
        // Extended-JSON keys in documents: the checked path refuses them for a Document.
        for doc in [doc! {"$oid": "x"}, doc! {"a": {"$date": 1}}] {
            let bytes = to_vec(&doc).unwrap();
            assert!(!accepts(&bytes, 100), "{doc:?}");
            assert!(matches!(
                from_slice::<Document>(&bytes),
                Err(BsonError::ExtendedJsonKey { .. })
            ));
        }
        // The same key in an array is an index, not a key (the crate reads arrays as
        // sequences): plain. {"l": <array whose one element is keyed "$oid">}
        let bytes =
            crate::testutil::unhex("17000000 04 6c00 0f000000 10 246f696400 01000000 00 00");
        assert!(accepts(&bytes, 100));
        assert_eq!(from_slice::<Document>(&bytes), Ok(doc! {"l": [1]}));
        assert_eq!(
            from_slice::<Document>(&bytes).ok(),
            bson::deserialize_from_slice::<Document>(&bytes).ok()
        );

        // Too deep for the limit: the crate's path says so.
        let bytes = to_vec(&doc! {"a": {"b": {}}}).unwrap();
        assert!(accepts(&bytes, 3) && !accepts(&bytes, 2));
        assert_eq!(
            super::super::from_slice_with_limits::<Document>(&bytes, limits().with_max_depth(2)),
            Err(BsonError::TooDeep { max: 2 })
        );

        // The crate's private newtypes: a raw document is handed over as bytes by the crate.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Raw {
            a: RawDocumentBuf,
        }
        let bytes = to_vec(&doc! {"a": {"x": 1}}).unwrap();
        assert!(accepts(&bytes, 100));
        assert!(deserialize::<Raw>(&bytes).is_none());
        let raw: Raw = from_slice(&bytes).unwrap();
        assert_eq!(raw, bson::deserialize_from_slice::<Raw>(&bytes).unwrap());
        // ... even when the target swallows the error the fast path gave up with.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Lenient {
            #[serde(deserialize_with = "raw_or_none")]
            a: Option<RawDocumentBuf>,
        }
        #[allow(clippy::unnecessary_wraps)] // the signature serde's deserialize_with needs
        fn raw_or_none<'de, D: Deserializer<'de>>(
            de: D,
        ) -> Result<Option<RawDocumentBuf>, D::Error> {
            Ok(RawDocumentBuf::deserialize(de).ok())
        }
        assert!(deserialize::<Lenient>(&bytes).is_none());
        let lenient: Lenient = from_slice(&bytes).unwrap();
        assert_eq!(
            Document::try_from(lenient.a.unwrap()).unwrap(),
            doc! {"x": 1}
        );

        // i128 is an error for the crate (serde's default), and so for us.
        #[derive(Deserialize, Debug)]
        struct Wide {
            _n: i128,
        }
        let bytes = to_vec(&doc! {"_n": 5}).unwrap();
        assert!(from_slice::<Wide>(&bytes).is_err());
        assert!(bson::deserialize_from_slice::<Wide>(&bytes).is_err());
    }

    #[test]
    fn enums_from_strings_and_documents() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct E {
            e: Choice,
        }
        let cases = [
            doc! {"e": "a"},
            doc! {"e": {"b": 5}},
            doc! {"e": {"s": [1, "x"]}},
            doc! {"e": {"e": {"a": 1.5}}},
            // A unit variant written as a document, an unknown variant, no variant, a number.
            doc! {"e": {"a": 1}},
            doc! {"e": "zz"},
            doc! {"e": {}},
            doc! {"e": 5},
        ];
        for (i, case) in cases.iter().enumerate() {
            let bytes = to_vec(case).unwrap();
            assert!(accepts(&bytes, 100));
            let fast = deserialize::<E>(&bytes).map(|v| format!("{v:?}"));
            let theirs = bson::deserialize_from_slice::<E>(&bytes)
                .ok()
                .map(|v| format!("{v:?}"));
            // The first four read, the rest fail (and leave the error to the crate).
            assert_eq!(fast, theirs, "{case:?}");
            assert_eq!(theirs.is_some(), i < 4, "{case:?}");
            assert_eq!(
                from_slice::<E>(&bytes).ok().map(|v| format!("{v:?}")),
                theirs
            );
        }
    }

    #[test]
    fn errors_are_the_crates() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Wants {
            _n: String,
        }
        let bytes = to_vec(&doc! {"_n": 5}).unwrap();
        assert!(accepts(&bytes, 100));
        assert!(deserialize::<Wants>(&bytes).is_none());
        let message = bson::deserialize_from_slice::<Wants>(&bytes)
            .unwrap_err()
            .to_string();
        assert_eq!(
            from_slice::<Wants>(&bytes),
            Err(BsonError::Decode { message })
        );
    }

    #[test]
    fn borrowed_strings_and_bytes() {
        #[derive(Deserialize, Debug, PartialEq)]
        struct Borrowed<'a> {
            s: &'a str,
            #[serde(borrow)]
            b: &'a [u8],
        }
        let bytes = to_vec(&doc! {"s": "h\u{e9}", "b": Binary { subtype: BinarySubtype::Generic, bytes: vec![1, 2] }}).unwrap();
        let fast: Borrowed<'_> = deserialize(&bytes).expect("fast path");
        assert_eq!(
            fast,
            Borrowed {
                s: "h\u{e9}",
                b: &[1, 2]
            }
        );
        assert_eq!(from_slice::<Borrowed<'_>>(&bytes), Ok(fast));
    }
}
