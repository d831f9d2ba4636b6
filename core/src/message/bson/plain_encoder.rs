//! The fast path of [`super::encode_into`]: values that serialize as documents of plain
//! element types, written by a serde serializer of our own instead of the `bson` crate's.
//!
//! The counterpart of [`super::plain`]: for structs, maps, sequences, strings, bytes, booleans,
//! integers, floats, options, units and enums, the `bson` crate's raw serializer writes each
//! value straight into the buffer; this module writes the same bytes with less bookkeeping
//! (keys are not copied into checked C strings first, sequence indexes are not formatted
//! through `fmt`). Where the crate does something special (its private newtypes for raw
//! documents, UUIDs and human-readable values; structs named like extended JSON, `$oid`,
//! `$date`, ..., which are how ObjectId, DateTime, non-generic binaries and the other `bson`
//! types serialize), and on any error at all, [`encode`] gives up: it leaves the buffer as it
//! was and the caller encodes with the crate, so bytes and errors are the crate's in every case
//! this path does not finish.

use alloc::vec::Vec;
use core::cell::Cell;

use serde::ser::{
    Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
    SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer,
};

use crate::decimal;

use super::plain::{
    NotPlain, ARRAY, BINARY, BOOLEAN, BSON_PRIVATE_NEWTYPE_PREFIX, DOCUMENT, DOUBLE, GENERIC,
    INT32, INT64, NULL, STRING,
};

/// Append `value` to `buf` as one document, as the `bson` crate's `serialize_to_buffer`
/// would. Returns `false` (with `buf` as it was) where this path gives up; see the module
/// documentation.
pub(super) fn encode<T: Serialize + ?Sized>(value: &T, buf: &mut Vec<u8>) -> bool {
    let start = buf.len();
    let gave_up = Cell::new(false);
    let result = value.serialize(ValueWriter {
        buf,
        type_at: None,
        gave_up: &gave_up,
    });
    // Giving up wins even if `T` swallowed the error; a top-level value that wrote nothing
    // (or not a whole document) is the crate's to refuse.
    if result.is_err() || gave_up.get() || buf.len() - start < 5 {
        buf.truncate(start);
        return false;
    }
    true
}

/// Writes one value; `type_at` is where its element type goes (`None` at the top level, which
/// must be a document).
struct ValueWriter<'a> {
    buf: &'a mut Vec<u8>,
    type_at: Option<usize>,
    gave_up: &'a Cell<bool>,
}

impl<'a> ValueWriter<'a> {
    fn give_up(&self) -> NotPlain {
        self.gave_up.set(true);
        NotPlain
    }

    /// Record the element type (only a document at the top level).
    #[inline]
    fn element_type(&mut self, kind: u8) -> Result<(), NotPlain> {
        match self.type_at {
            Some(at) => {
                *self.buf.get_mut(at).ok_or(NotPlain)? = kind;
                Ok(())
            }
            None if kind == DOCUMENT => Ok(()),
            // The crate refuses a top-level value that is not a document.
            None => Err(NotPlain),
        }
    }

    fn document(mut self, kind: u8) -> Result<DocumentWriter<'a>, NotPlain> {
        self.element_type(kind)?;
        Ok(DocumentWriter::start(self.buf, self.gave_up))
    }

    /// `{variant: <document or array>}` for struct and tuple variants.
    fn variant(mut self, variant: &str, inner: u8) -> Result<VariantWriter<'a>, NotPlain> {
        self.element_type(DOCUMENT)?;
        let mut outer = DocumentWriter::start(self.buf, self.gave_up);
        let type_at = outer.key(variant)?;
        outer.buf[type_at] = inner;
        let inner = DocumentWriter::start(outer.buf, outer.gave_up);
        Ok(VariantWriter {
            outer_start: outer.start,
            inner,
        })
    }
}

impl<'a> Serializer for ValueWriter<'a> {
    type Ok = ();
    type Error = NotPlain;
    type SerializeSeq = DocumentWriter<'a>;
    type SerializeTuple = DocumentWriter<'a>;
    type SerializeTupleStruct = DocumentWriter<'a>;
    type SerializeTupleVariant = VariantWriter<'a>;
    type SerializeMap = DocumentWriter<'a>;
    type SerializeStruct = DocumentWriter<'a>;
    type SerializeStructVariant = VariantWriter<'a>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(mut self, v: bool) -> Result<(), NotPlain> {
        self.element_type(BOOLEAN)?;
        self.buf.push(u8::from(v));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), NotPlain> {
        self.serialize_i32(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), NotPlain> {
        self.serialize_i32(v.into())
    }

    fn serialize_i32(mut self, v: i32) -> Result<(), NotPlain> {
        self.element_type(INT32)?;
        self.buf.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_i64(mut self, v: i64) -> Result<(), NotPlain> {
        self.element_type(INT64)?;
        self.buf.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), NotPlain> {
        self.serialize_i32(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), NotPlain> {
        self.serialize_i32(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), NotPlain> {
        self.serialize_i64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), NotPlain> {
        // Above i64::MAX the crate refuses.
        self.serialize_i64(i64::try_from(v).map_err(|_| NotPlain)?)
    }

    fn serialize_f32(self, v: f32) -> Result<(), NotPlain> {
        self.serialize_f64(v.into())
    }

    fn serialize_f64(mut self, v: f64) -> Result<(), NotPlain> {
        self.element_type(DOUBLE)?;
        self.buf.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), NotPlain> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(mut self, v: &str) -> Result<(), NotPlain> {
        self.element_type(STRING)?;
        let len = length_field(v.len().checked_add(1).ok_or(NotPlain)?)?;
        self.buf.extend_from_slice(&len);
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), NotPlain> {
        self.element_type(BINARY)?;
        let len = length_field(v.len())?;
        self.buf.extend_from_slice(&len);
        self.buf.push(GENERIC);
        self.buf.extend_from_slice(v);
        Ok(())
    }

    fn serialize_none(mut self) -> Result<(), NotPlain> {
        self.element_type(NULL)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotPlain> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), NotPlain> {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), NotPlain> {
        self.serialize_none()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), NotPlain> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), NotPlain> {
        if name.starts_with(BSON_PRIVATE_NEWTYPE_PREFIX) {
            return Err(self.give_up());
        }
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), NotPlain> {
        let mut doc = self.document(DOCUMENT)?;
        SerializeMap::serialize_entry(&mut doc, variant, value)?;
        SerializeMap::end(doc)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<DocumentWriter<'a>, NotPlain> {
        self.document(ARRAY)
    }

    fn serialize_tuple(self, _len: usize) -> Result<DocumentWriter<'a>, NotPlain> {
        self.document(ARRAY)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<DocumentWriter<'a>, NotPlain> {
        self.document(ARRAY)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<VariantWriter<'a>, NotPlain> {
        self.variant(variant, ARRAY)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<DocumentWriter<'a>, NotPlain> {
        self.document(DOCUMENT)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<DocumentWriter<'a>, NotPlain> {
        // `$oid`, `$date`, `$binary`, ...: how the `bson` types serialize, which the crate
        // writes as those types.
        if name.starts_with('$') {
            return Err(self.give_up());
        }
        self.document(DOCUMENT)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<VariantWriter<'a>, NotPlain> {
        self.variant(variant, DOCUMENT)
    }
}

/// Writes the elements of a document or array (keys 0, 1, 2, ... for sequences and tuples).
pub(super) struct DocumentWriter<'a> {
    buf: &'a mut Vec<u8>,
    /// Where the length field is.
    start: usize,
    /// Array elements written: the next index.
    count: u64,
    /// Where the element type of the value whose key was written last goes.
    pending: Option<usize>,
    gave_up: &'a Cell<bool>,
}

impl<'a> DocumentWriter<'a> {
    fn start(buf: &'a mut Vec<u8>, gave_up: &'a Cell<bool>) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        DocumentWriter {
            buf,
            start,
            count: 0,
            pending: None,
            gave_up,
        }
    }

    /// Write a placeholder for the next element's type; returns where the type goes.
    #[inline]
    fn placeholder(&mut self) -> usize {
        self.buf.push(0);
        self.buf.len() - 1
    }

    /// Write a placeholder element type and `key`; returns where the type goes.
    #[inline]
    fn key(&mut self, key: &str) -> Result<usize, NotPlain> {
        let type_at = self.placeholder();
        push_key(self.buf, key)?;
        Ok(type_at)
    }

    /// Write a placeholder element type and the next index as the key.
    #[inline]
    fn index(&mut self) -> usize {
        let type_at = self.placeholder();
        self.buf
            .extend_from_slice(decimal::digits(self.count, &mut [0; decimal::MAX_DIGITS]));
        self.buf.push(0);
        self.count += 1;
        type_at
    }

    fn value<T: Serialize + ?Sized>(&mut self, type_at: usize, value: &T) -> Result<(), NotPlain> {
        value.serialize(ValueWriter {
            buf: self.buf,
            type_at: Some(type_at),
            gave_up: self.gave_up,
        })
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotPlain> {
        let type_at = self.index();
        self.value(type_at, value)
    }

    fn finish(self) -> Result<(), NotPlain> {
        finish_document(self.buf, self.start)
    }
}

/// The bytes of a length field (an int32: longer is the crate's to refuse).
#[inline]
fn length_field(len: usize) -> Result<[u8; 4], NotPlain> {
    i32::try_from(len)
        .map(i32::to_le_bytes)
        .map_err(|_| NotPlain)
}

/// Append `key` and its NUL; the crate refuses a key holding NUL.
#[inline]
fn push_key(buf: &mut Vec<u8>, key: &str) -> Result<(), NotPlain> {
    if key.as_bytes().contains(&0) {
        return Err(NotPlain);
    }
    buf.extend_from_slice(key.as_bytes());
    buf.push(0);
    Ok(())
}

/// Terminate the document whose length field is at `start`, and fill in its length.
fn finish_document(buf: &mut Vec<u8>, start: usize) -> Result<(), NotPlain> {
    buf.push(0);
    let len = length_field(buf.len() - start)?;
    buf.get_mut(start..start + 4)
        .ok_or(NotPlain)?
        .copy_from_slice(&len);
    Ok(())
}

/// Sequences, tuples and tuple structs: array elements keyed by their index.
macro_rules! array_elements {
    ($($trait:ident::$method:ident),*) => {$(
        impl $trait for DocumentWriter<'_> {
            type Ok = ();
            type Error = NotPlain;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotPlain> {
                self.element(value)
            }

            fn end(self) -> Result<(), NotPlain> {
                self.finish()
            }
        }
    )*};
}

array_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field
);

impl SerializeMap for DocumentWriter<'_> {
    type Ok = ();
    type Error = NotPlain;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), NotPlain> {
        let type_at = self.placeholder();
        key.serialize(KeyWriter { buf: self.buf })?;
        self.pending = Some(type_at);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotPlain> {
        let type_at = self.pending.take().ok_or(NotPlain)?;
        self.value(type_at, value)
    }

    fn end(self) -> Result<(), NotPlain> {
        self.finish()
    }
}

impl SerializeStruct for DocumentWriter<'_> {
    type Ok = ();
    type Error = NotPlain;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NotPlain> {
        let type_at = self.key(key)?;
        self.value(type_at, value)
    }

    fn end(self) -> Result<(), NotPlain> {
        self.finish()
    }
}

/// `{variant: <document or array>}`: the inner document is written by `inner`, then both are
/// terminated.
pub(super) struct VariantWriter<'a> {
    outer_start: usize,
    inner: DocumentWriter<'a>,
}

impl VariantWriter<'_> {
    fn finish(self) -> Result<(), NotPlain> {
        let outer_start = self.outer_start;
        let buf = self.inner.buf;
        finish_document(buf, self.inner.start)?;
        finish_document(buf, outer_start)
    }
}

impl SerializeTupleVariant for VariantWriter<'_> {
    type Ok = ();
    type Error = NotPlain;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), NotPlain> {
        self.inner.element(value)
    }

    fn end(self) -> Result<(), NotPlain> {
        self.finish()
    }
}

impl SerializeStructVariant for VariantWriter<'_> {
    type Ok = ();
    type Error = NotPlain;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), NotPlain> {
        SerializeStruct::serialize_field(&mut self.inner, key, value)
    }

    fn end(self) -> Result<(), NotPlain> {
        self.finish()
    }
}

/// Writes a map key: as the crate, only strings (and options, newtypes and unit variants of
/// them) are keys.
struct KeyWriter<'a> {
    buf: &'a mut Vec<u8>,
}

macro_rules! not_a_key {
    ($($method:ident($($arg:ty),*);)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<(), NotPlain> {
            Err(NotPlain)
        }
    )*};
}

impl Serializer for KeyWriter<'_> {
    type Ok = ();
    type Error = NotPlain;
    type SerializeSeq = Impossible<(), NotPlain>;
    type SerializeTuple = Impossible<(), NotPlain>;
    type SerializeTupleStruct = Impossible<(), NotPlain>;
    type SerializeTupleVariant = Impossible<(), NotPlain>;
    type SerializeMap = Impossible<(), NotPlain>;
    type SerializeStruct = Impossible<(), NotPlain>;
    type SerializeStructVariant = Impossible<(), NotPlain>;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_str(self, v: &str) -> Result<(), NotPlain> {
        push_key(self.buf, v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), NotPlain> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), NotPlain> {
        value.serialize(self)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), NotPlain> {
        self.serialize_str(variant)
    }

    not_a_key! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_bytes(&[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(&'static str);
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), NotPlain> {
        Err(NotPlain)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, NotPlain> {
        Err(NotPlain)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, NotPlain> {
        Err(NotPlain)
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, NotPlain> {
        Err(NotPlain)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, NotPlain> {
        Err(NotPlain)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, NotPlain> {
        Err(NotPlain)
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, NotPlain> {
        Err(NotPlain)
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, NotPlain> {
        Err(NotPlain)
    }
}

#[cfg(test)]
// Test-local helper types sit next to the assertions that use them.
#[allow(clippy::items_after_statements)]
mod tests {
    use super::super::test_documents::{document, is_plain_value};
    use super::super::{encode_into, to_vec, BsonError};
    use super::encode;
    use bson::oid::ObjectId;
    use bson::spec::BinarySubtype;
    use bson::{doc, Binary, Bson, DateTime, Document, RawDocumentBuf, Uuid};
    use proptest::prelude::*;
    use serde::Serialize;
    use std::collections::BTreeMap;
    use std::string::{String, ToString};
    use std::vec;
    use std::vec::Vec;

    /// `value` through framewire and through the `bson` crate: the same bytes, or both an error.
    fn same_as_the_crate<T: Serialize + core::fmt::Debug>(value: &T) -> Result<(), TestCaseError> {
        let ours = to_vec(value);
        let theirs = bson::serialize_to_vec(value);
        prop_assert_eq!(
            ours.as_ref().ok(),
            theirs.as_ref().ok(),
            "{:?}: ours {:?}, the crate's {:?}",
            value,
            ours,
            theirs
        );
        Ok(())
    }

    #[derive(Serialize, Debug, Clone)]
    enum Shape {
        Unit,
        Newtype(i16),
        Tuple(u8, String),
        Struct { x: f32, c: char },
    }

    #[derive(Serialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    enum Name {
        First,
        Second,
    }

    #[derive(Serialize, Debug, Clone)]
    struct Unit;

    #[derive(Serialize, Debug, Clone)]
    struct Wrapper(u32);

    #[derive(Serialize, Debug, Clone)]
    struct Pair(i64, Option<bool>);

    /// Every serde shape the plain path writes.
    #[derive(Serialize, Debug, Clone)]
    struct Everything {
        shapes: Vec<Shape>,
        unit: Unit,
        wrapper: Wrapper,
        pair: Pair,
        tuple: (i8, u16, f64),
        named: BTreeMap<Name, Option<String>>,
        nested: BTreeMap<String, Vec<u64>>,
        bytes: Binary,
        list_of_bytes: Vec<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<i32>,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            any::<i16>().prop_map(Shape::Newtype),
            (any::<u8>(), ".{0,4}").prop_map(|(n, s)| Shape::Tuple(n, s)),
            (any::<f32>(), any::<char>()).prop_map(|(x, c)| Shape::Struct { x, c }),
        ]
    }

    fn everything() -> impl Strategy<Value = Everything> {
        (
            proptest::collection::vec(shape(), 0..3),
            any::<u32>(),
            (any::<i64>(), any::<Option<bool>>()),
            (any::<i8>(), any::<u16>(), any::<f64>()),
            proptest::collection::btree_map(
                prop_oneof![Just(Name::First), Just(Name::Second)],
                proptest::option::of(".{0,3}"),
                0..2,
            ),
            // u64 above i64::MAX too: the crate refuses those, and so does the plain path.
            proptest::collection::btree_map(
                "[a-z]{0,2}",
                proptest::collection::vec(prop_oneof![0..1000_u64, any::<u64>()], 0..12),
                0..2,
            ),
            proptest::collection::vec(any::<u8>(), 0..4),
            any::<Option<i32>>(),
        )
            .prop_map(
                |(shapes, wrapper, pair, tuple, named, nested, bytes, skipped)| Everything {
                    shapes,
                    unit: Unit,
                    wrapper: Wrapper(wrapper),
                    pair: Pair(pair.0, pair.1),
                    tuple,
                    named,
                    nested,
                    bytes: Binary {
                        subtype: BinarySubtype::Generic,
                        bytes: bytes.clone(),
                    },
                    list_of_bytes: bytes,
                    skipped,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn documents_are_written_as_the_crate_writes_them(doc in document()) {
            let plain = doc.iter().all(|(_, v)| is_plain_value_ignoring_keys(v));
            let mut buf = vec![7];
            prop_assert_eq!(encode(&doc, &mut buf), plain, "{:?}", doc);
            if plain {
                prop_assert_eq!(&buf[1..], &bson::serialize_to_vec(&doc).unwrap()[..]);
            } else {
                prop_assert_eq!(buf, vec![7]);
            }
            same_as_the_crate(&doc)?;
            let values: BTreeMap<&String, &Bson> = doc.iter().collect();
            same_as_the_crate(&values)?;
        }

        #[test]
        fn every_serde_shape_is_written_as_the_crate_writes_it(value in everything()) {
            same_as_the_crate(&value)?;
            // All plain: the plain path writes it whenever the crate can.
            let mut buf = Vec::new();
            prop_assert_eq!(encode(&value, &mut buf), bson::serialize_to_vec(&value).is_ok());
            // At the top level too, where only documents are allowed.
            for shape in &value.shapes {
                same_as_the_crate(shape)?;
            }
            same_as_the_crate(&value.pair)?;
            same_as_the_crate(&value.tuple)?;
            same_as_the_crate(&value.named)?;
            same_as_the_crate(&Some(&value.nested))?;
        }
    }

    /// [`is_plain_value`] for writing: keys that look like extended JSON are ordinary keys.
    fn is_plain_value_ignoring_keys(value: &Bson) -> bool {
        match value {
            Bson::Document(doc) => doc.iter().all(|(_, v)| is_plain_value_ignoring_keys(v)),
            Bson::Array(items) => items.iter().all(is_plain_value_ignoring_keys),
            other => is_plain_value(other),
        }
    }

    #[test]
    fn what_the_plain_path_leaves_to_the_crate() {
        let raw = RawDocumentBuf::try_from(&doc! {"x": 1}).unwrap();
        #[derive(Serialize, Debug)]
        struct Typed {
            id: ObjectId,
            at: DateTime,
            uuid: Uuid,
            old: Binary,
            raw: RawDocumentBuf,
        }
        let typed = Typed {
            id: ObjectId::from_bytes([1; 12]),
            at: DateTime::from_millis(5),
            uuid: Uuid::from_bytes([2; 16]),
            old: Binary {
                subtype: BinarySubtype::UserDefined(0x80),
                bytes: vec![3],
            },
            raw,
        };
        let mut buf = Vec::new();
        assert!(!encode(&typed, &mut buf));
        assert!(buf.is_empty());
        let bytes = to_vec(&typed).unwrap();
        assert_eq!(bytes, bson::serialize_to_vec(&typed).unwrap());

        // Errors are the crate's: a key holding NUL, a u64 above i64::MAX, a top-level value
        // that is not a document.
        let mut with_nul = BTreeMap::new();
        with_nul.insert("a\0b", 1);
        let message = bson::serialize_to_vec(&with_nul).unwrap_err().to_string();
        assert_eq!(to_vec(&with_nul), Err(BsonError::Encode { message }));
        let mut keep = b"keep".to_vec();
        assert!(encode_into(&doc! {"n": [1_i64]}, &mut keep).is_ok());
        keep.truncate(4);
        #[derive(Serialize)]
        struct Big {
            n: u64,
        }
        assert!(encode_into(&Big { n: u64::MAX }, &mut keep).is_err());
        assert!(encode_into(&[1, 2], &mut keep).is_err());
        assert!(encode_into(&5, &mut keep).is_err());
        assert_eq!(keep, b"keep");
    }

    #[test]
    fn golden_bytes() {
        // bson.dumps({"seq": 0, "pad": b"x" * 26}) (WIRE.md's benchmark document).
        #[derive(Serialize)]
        struct Small {
            seq: i32,
            pad: Binary,
        }
        let small = Small {
            seq: 0,
            pad: Binary {
                subtype: BinarySubtype::Generic,
                bytes: vec![b'x'; 26],
            },
        };
        let mut buf = Vec::new();
        assert!(encode(&small, &mut buf));
        let golden = crate::testutil::unhex(
            "32000000 10 73657100 00000000 05 70616400 1a000000 00 \
             7878787878787878787878787878787878787878787878787878 00",
        );
        assert_eq!(buf, golden);
        // Arrays count their indexes in decimal: 0 ... 10 ...
        let long: Vec<i32> = (0..12).collect();
        let doc = doc! {"l": long.clone()};
        let mut buf = Vec::new();
        assert!(encode(&doc, &mut buf));
        assert_eq!(buf, bson::serialize_to_vec(&doc).unwrap());
        let _: Document = bson::deserialize_from_slice(&buf).unwrap();
    }
}
