//! The serde path of [`super::from_slice`] for documents that hold a key of
//! [`EXTENDED_JSON_KEYS`].
//!
//! The `bson` crate's raw deserializer hands every embedded document to the visitor as a map,
//! and hands ObjectId, DateTime, Symbol, ... as maps too, keyed `$oid`, `$date`, `$symbol`, ...
//! The visitor behind `Bson`, `Document` and every other `bson` type cannot tell the two
//! apart: whenever a map holds one of those keys, it builds that type (and drops the rest of
//! the map). No visitor of the crate can produce a `Document` holding such a key, so the only
//! honest answer is to refuse.
//!
//! [`Checked`] wraps the crate's deserializer and follows the raw document alongside it: every
//! deserializer, visitor, map, sequence and enum access it hands out knows which raw value it
//! stands for. When a visitor is given the map of a *real* document holding such a key, and
//! the visitor is one of the `bson` crate's (or serde's buffer for `flatten` and untagged /
//! internally tagged enums, whose final type is unknown), decoding stops with
//! [`BsonError::ExtendedJsonKey`]. Visitors of structs, maps, `IgnoredAny`, ... see the keys as
//! written. Documents under the crate's raw types (`RawDocumentBuf`, `RawBson`, ...) are handed
//! over as bytes and not looked into.
//!
//! Visitors are recognised by [`core::any::type_name`] (a visitor's type is not `'static`, so
//! `TypeId` is not available); the unit tests pin every target type this depends on, so a
//! compiler or crate update that changes the names fails them instead of going unnoticed.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use bson::raw::RawIter;
use bson::{RawBsonRef, RawDeserializer, RawDocument};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

use super::{decode_error, is_extended_json_key, BsonError};

/// Newtype names of the `bson` crate's raw types (`RawDocumentBuf`, `RawArrayBuf`,
/// `RawBson`): the crate hands their documents over as bytes, not as maps.
const RAW_NEWTYPE_PREFIX: &str = "$__private__bson_Raw";

/// Deserialize `T` from `bytes` (already validated; `root` is its raw view), refusing any
/// document with a key of [`super::EXTENDED_JSON_KEYS`] that a reinterpreting visitor reads.
pub(super) fn deserialize<'de, T: serde::Deserialize<'de>>(
    bytes: &'de [u8],
    root: &'de RawDocument,
) -> Result<T, BsonError> {
    let de = RawDeserializer::new(bytes).map_err(|e| decode_error(&e))?;
    let ctx = Ctx {
        root,
        refused: RefCell::new(None),
    };
    let result = T::deserialize(Checked {
        de,
        node: Some(RawBsonRef::Document(root)),
        ctx: &ctx,
    });
    // A refusal wins even if `T` swallowed the error (a fallible field, an untagged enum).
    match ctx.refused.into_inner() {
        Some(refused) => Err(refused),
        None => result.map_err(|e| decode_error(&e)),
    }
}

struct Ctx<'de> {
    root: &'de RawDocument,
    /// The first refusal.
    refused: RefCell<Option<BsonError>>,
}

/// Whether values of the visitor `V` are read through the `bson` crate's extended-JSON
/// visitor (all the crate's types), or buffered by serde for a type decided later.
fn reads_extended_json<V>() -> bool {
    let name = core::any::type_name::<V>();
    name.starts_with("bson::") || (name.starts_with("serde") && name.contains("::de::content::"))
}

/// The value of the next element of `elements`, if any (and well-formed, which validation
/// guarantees).
fn next_value<'de>(elements: &mut RawIter<'de>) -> Option<RawBsonRef<'de>> {
    elements.next()?.ok()?.value().ok()
}

/// Address of a document's first byte, to find it again in the root.
fn address(doc: &RawDocument) -> usize {
    doc.as_bytes().as_ptr() as usize
}

/// Whether the byte at address `at` is inside `doc`.
fn contains(doc: &RawDocument, at: usize) -> bool {
    let start = address(doc);
    start <= at && at < start + doc.as_bytes().len()
}

/// Dotted path from `root` to the embedded document `target` (empty for the root itself; a
/// JavaScript scope is `"key.$scope"`).
fn path_of(root: &RawDocument, target: &RawDocument) -> String {
    let want = address(target);
    let mut keys: Vec<&str> = Vec::new();
    let mut current = root;
    'descend: while address(current) != want {
        for element in current.iter_elements() {
            let Ok(element) = element else { break };
            let (child, scope) = match element.value() {
                Ok(RawBsonRef::Document(doc)) => (doc, false),
                Ok(RawBsonRef::Array(array)) => match RawDocument::from_bytes(array.as_bytes()) {
                    Ok(doc) => (doc, false),
                    Err(_) => continue,
                },
                Ok(RawBsonRef::JavaScriptCodeWithScope(code)) => (code.scope, true),
                _ => continue,
            };
            if contains(child, want) {
                keys.push(element.key().as_str());
                if scope {
                    keys.push("$scope");
                }
                current = child;
                continue 'descend;
            }
        }
        // Not found (cannot happen for a document of this root): the path so far.
        break;
    }
    keys.join(".")
}

/// A deserializer of the `bson` crate, with the raw value it stands for (`None`: not followed).
struct Checked<'c, 'de, D> {
    de: D,
    node: Option<RawBsonRef<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<'c, 'de, D> Checked<'c, 'de, D> {
    fn watch<V>(&self, visitor: V) -> Watch<'c, 'de, V> {
        Watch {
            visitor,
            node: self.node,
            ctx: self.ctx,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let watch = self.watch(visitor);
            self.de.$method($($arg,)* watch)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Checked<'_, 'de, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let mut watch = self.watch(visitor);
        if name.starts_with(RAW_NEWTYPE_PREFIX) {
            // Raw types get their documents as bytes, and keep them as written.
            watch.node = None;
        }
        self.de.deserialize_newtype_struct(name, watch)
    }

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A visitor, with the raw value its deserializer stands for.
struct Watch<'c, 'de, V> {
    visitor: V,
    node: Option<RawBsonRef<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<V> Watch<'_, '_, V> {
    /// Refuse if this visitor is about to read a real document holding an extended-JSON key
    /// the way the `bson` crate's visitor does.
    fn check<E: de::Error>(&self) -> Result<(), E> {
        let Some(RawBsonRef::Document(doc)) = self.node else {
            return Ok(());
        };
        if !reads_extended_json::<V>() {
            return Ok(());
        }
        let key = doc
            .iter_elements()
            .filter_map(Result::ok)
            .map(|element| element.key().as_str())
            .find(|key| is_extended_json_key(key));
        let Some(key) = key else {
            return Ok(());
        };
        let refused = BsonError::ExtendedJsonKey {
            key: key.to_string(),
            path: path_of(self.ctx.root, doc),
        };
        let message = refused.to_string();
        self.ctx.refused.borrow_mut().get_or_insert(refused);
        Err(E::custom(message))
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(value)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Watch<'_, 'de, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, de: D2) -> Result<Self::Value, D2::Error> {
        self.visitor.visit_some(Checked {
            de,
            node: self.node,
            ctx: self.ctx,
        })
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, de: D2) -> Result<Self::Value, D2::Error> {
        self.visitor.visit_newtype_struct(Checked {
            de,
            node: self.node,
            ctx: self.ctx,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        let elements = match self.node {
            Some(RawBsonRef::Array(array)) => Some(array.iter_elements()),
            _ => None,
        };
        self.visitor.visit_seq(Seq {
            inner: seq,
            elements,
            ctx: self.ctx,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.check()?;
        let entries = match self.node {
            Some(RawBsonRef::Document(doc)) => Entries::Document(doc.iter_elements()),
            Some(RawBsonRef::JavaScriptCodeWithScope(code)) => Entries::CodeWithScope {
                scope: code.scope,
                values: 0,
            },
            _ => Entries::Untracked,
        };
        self.visitor.visit_map(Map {
            inner: map,
            entries,
            value: None,
            ctx: self.ctx,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        // A document read as an enum: the first key names the variant, its value is the
        // variant's content.
        let content = match self.node {
            Some(RawBsonRef::Document(doc)) => next_value(&mut doc.iter_elements()),
            _ => None,
        };
        self.visitor.visit_enum(Enum {
            data,
            content,
            ctx: self.ctx,
        })
    }
}

/// A seed, with the raw value the deserializer it will be given stands for.
struct Seed<'c, 'de, S> {
    inner: S,
    node: Option<RawBsonRef<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, 'de, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Checked {
            de,
            node: self.node,
            ctx: self.ctx,
        })
    }
}

/// The elements of an array, in step with the `bson` crate's sequence access.
struct Seq<'c, 'de, A> {
    inner: A,
    elements: Option<RawIter<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, 'de, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let node = self.elements.as_mut().and_then(next_value);
        self.inner.next_element_seed(Seed {
            inner: seed,
            node,
            ctx: self.ctx,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Which raw values a map's values stand for.
enum Entries<'de> {
    /// The map of a real document: its elements, in step with the crate's map access.
    Document(RawIter<'de>),
    /// JavaScript code with scope, presented as `{"$code": …, "$scope": {…}}`: the second
    /// value is the scope document.
    CodeWithScope { scope: &'de RawDocument, values: u8 },
    /// A map the crate made up for another type (`{"$oid": …}` for an ObjectId, ...).
    Untracked,
}

struct Map<'c, 'de, A> {
    inner: A,
    entries: Entries<'de>,
    /// The raw value of the entry whose key was read last.
    value: Option<RawBsonRef<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, 'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let key = self.inner.next_key_seed(seed)?;
        if key.is_some() {
            if let Entries::Document(elements) = &mut self.entries {
                self.value = next_value(elements);
            }
        }
        Ok(key)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let node = match &mut self.entries {
            Entries::Document(_) => self.value,
            Entries::CodeWithScope { scope, values } => {
                *values = values.saturating_add(1);
                (*values == 2).then_some(RawBsonRef::Document(scope))
            }
            Entries::Untracked => None,
        };
        self.inner.next_value_seed(Seed {
            inner: seed,
            node,
            ctx: self.ctx,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A document read as an enum.
struct Enum<'c, 'de, A> {
    data: A,
    content: Option<RawBsonRef<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<'c, 'de, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'c, 'de, A> {
    type Error = A::Error;
    type Variant = Variant<'c, 'de, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (name, access) = self.data.variant_seed(seed)?;
        Ok((
            name,
            Variant {
                access,
                content: self.content,
                ctx: self.ctx,
            },
        ))
    }
}

struct Variant<'c, 'de, A> {
    access: A,
    content: Option<RawBsonRef<'de>>,
    ctx: &'c Ctx<'de>,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, 'de, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.access.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.access.newtype_variant_seed(Seed {
            inner: seed,
            node: self.content,
            ctx: self.ctx,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.access.tuple_variant(
            len,
            Watch {
                visitor,
                node: self.content,
                ctx: self.ctx,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.access.struct_variant(
            fields,
            Watch {
                visitor,
                node: self.content,
                ctx: self.ctx,
            },
        )
    }
}

#[cfg(test)]
// Test-local helper types sit next to the assertions that use them.
#[allow(clippy::items_after_statements, clippy::too_many_lines)]
mod tests {
    use super::super::{
        document_from_slice, document_from_slice_with_limits, document_to_vec, from_document,
        from_slice, from_slice_with_limits, to_vec, to_vec_pybson, BsonError, DecodeLimits, PyInt,
        DEFAULT_MAX_DEPTH, EXTENDED_JSON_KEYS,
    };
    use crate::testutil::unhex;
    use alloc::vec;
    use bson::oid::ObjectId;
    use bson::{doc, Bson, DateTime, Document, JavaScriptCodeWithScope, RawDocumentBuf};
    use core::fmt;
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;
    use std::collections::{BTreeMap, HashMap};
    use std::string::{String, ToString};
    use std::vec::Vec;

    /// Documents with keys that look like extended JSON, as py-bson 0.5.10 encodes the dicts
    /// (`bson.dumps(...).hex()` with /work/main/.venv/bin/python), the dict, the first such key
    /// and the path of the document holding it.
    fn pybson_shapes() -> Vec<(&'static str, Vec<u8>, Document, &'static str, &'static str)> {
        let hex_oid = "000102030405060708090a0b";
        vec![
            (
                // {"a": {"$oid": "000102030405060708090a0b"}}
                "oid",
                unhex("30000000 03 6100 28000000 02 246f696400 19000000 303030313032303330343035303630373038303930613062 00 00 00"),
                doc! {"a": {"$oid": hex_oid}},
                "$oid",
                "a",
            ),
            (
                // {"a": {"$date": {"$numberLong": "5"}}}
                "date",
                unhex("2c000000 03 6100 24000000 03 246461746500 18000000 02 246e756d6265724c6f6e6700 02000000 3500 00 00 00"),
                doc! {"a": {"$date": {"$numberLong": "5"}}},
                "$date",
                "a",
            ),
            (
                // {"a": {"$symbol": "x"}}
                "symbol",
                unhex("1c000000 03 6100 14000000 02 2473796d626f6c00 02000000 7800 00 00"),
                doc! {"a": {"$symbol": "x"}},
                "$symbol",
                "a",
            ),
            (
                // {"a": {"$code": "f()", "$scope": {"x": 1}}}
                "code_scope",
                unhex("30000000 03 6100 28000000 02 24636f646500 04000000 66282900 03 2473636f706500 0c000000 10 7800 01000000 00 00 00"),
                doc! {"a": {"$code": "f()", "$scope": {"x": 1}}},
                "$code",
                "a",
            ),
            (
                // {"a": {"$scope": {"x": 1}}}
                "scope",
                unhex("21000000 03 6100 19000000 03 2473636f706500 0c000000 10 7800 01000000 00 00 00"),
                doc! {"a": {"$scope": {"x": 1}}},
                "$scope",
                "a",
            ),
            (
                // {"$oid": "000102030405060708090a0b"}
                "top_level",
                unhex("28000000 02 246f696400 19000000 303030313032303330343035303630373038303930613062 00 00"),
                doc! {"$oid": hex_oid},
                "$oid",
                "",
            ),
            (
                // {"a": {"x": 1, "$oid": "000102030405060708090a0b", "z": 2}}
                "later_key",
                unhex("3e000000 03 6100 36000000 10 7800 01000000 02 246f696400 19000000 303030313032303330343035303630373038303930613062 00 10 7a00 02000000 00 00"),
                doc! {"a": {"x": 1, "$oid": hex_oid, "z": 2}},
                "$oid",
                "a",
            ),
            (
                // {"l": [{"$symbol": "x"}]}
                "in_list",
                unhex("24000000 04 6c00 1c000000 03 3000 14000000 02 2473796d626f6c00 02000000 7800 00 00 00"),
                doc! {"l": [{"$symbol": "x"}]},
                "$symbol",
                "l.0",
            ),
        ]
    }

    fn refused(key: &str, path: &str) -> BsonError {
        BsonError::ExtendedJsonKey {
            key: key.into(),
            path: path.into(),
        }
    }

    #[test]
    fn pybson_dicts_with_extended_json_keys() {
        for (name, bytes, dict, key, path) in pybson_shapes() {
            // The raw decoder reads py-bson's dict as written, and writes it back byte for byte.
            assert_eq!(document_from_slice(&bytes).as_ref(), Ok(&dict), "{name}");
            assert_eq!(document_to_vec(&dict).unwrap(), bytes, "{name}");
            assert_eq!(to_vec(&dict).unwrap(), bytes, "{name}");
            assert_eq!(to_vec_pybson(&dict).unwrap(), bytes, "{name}");
            // The bson crate's serde decoder changes or refuses it: why the refusal exists.
            assert_ne!(
                bson::deserialize_from_slice::<Document>(&bytes)
                    .ok()
                    .as_ref(),
                Some(&dict),
                "{name}"
            );
            // framewire refuses it for bson targets, naming the key and where it is.
            assert_eq!(
                from_slice::<Document>(&bytes),
                Err(refused(key, path)),
                "{name}"
            );
            assert_eq!(
                from_slice::<Bson>(&bytes),
                Err(refused(key, path)),
                "{name}"
            );
            assert_eq!(
                from_slice::<HashMap<String, Bson>>(&bytes),
                if path.is_empty() {
                    // The top-level map is read as written; its values are strings.
                    Ok(dict.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                } else {
                    Err(refused(key, path))
                },
                "{name}"
            );
            assert_eq!(from_document::<Document>(&dict), Err(refused(key, path)));
            // A target that reads keys as written gets the dict.
            let tree: Tree = from_slice(&bytes).unwrap();
            assert_eq!(tree, Tree::of_document(&dict), "{name}");
            assert_eq!(from_document::<Tree>(&dict).unwrap(), tree, "{name}");
        }
    }

    /// A dynamic value that keeps every key as written (a literal visitor, not the bson
    /// crate's), for the leaves these tests use.
    #[derive(Debug, PartialEq)]
    enum Tree {
        Map(BTreeMap<String, Tree>),
        List(Vec<Tree>),
        Str(String),
        Int(i64),
    }

    impl Tree {
        fn of_document(doc: &Document) -> Tree {
            Tree::Map(
                doc.iter()
                    .map(|(k, v)| (k.clone(), Tree::of_bson(v)))
                    .collect(),
            )
        }

        fn of_bson(value: &Bson) -> Tree {
            match value {
                Bson::Document(doc) => Tree::of_document(doc),
                Bson::Array(items) => Tree::List(items.iter().map(Tree::of_bson).collect()),
                Bson::String(s) => Tree::Str(s.clone()),
                Bson::Int32(n) => Tree::Int(i64::from(*n)),
                Bson::Int64(n) => Tree::Int(*n),
                other => panic!("no Tree for {other:?}"),
            }
        }
    }

    impl<'de> Deserialize<'de> for Tree {
        fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
            struct TreeVisitor;
            impl<'de> Visitor<'de> for TreeVisitor {
                type Value = Tree;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a document, array, string or integer")
                }
                fn visit_i32<E>(self, n: i32) -> Result<Tree, E> {
                    Ok(Tree::Int(i64::from(n)))
                }
                fn visit_i64<E>(self, n: i64) -> Result<Tree, E> {
                    Ok(Tree::Int(n))
                }
                fn visit_str<E>(self, s: &str) -> Result<Tree, E> {
                    Ok(Tree::Str(s.into()))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                    let mut items = Vec::new();
                    while let Some(item) = seq.next_element()? {
                        items.push(item);
                    }
                    Ok(Tree::List(items))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                    let mut entries = BTreeMap::new();
                    while let Some((k, v)) = map.next_entry()? {
                        entries.insert(k, v);
                    }
                    Ok(Tree::Map(entries))
                }
            }
            de.deserialize_any(TreeVisitor)
        }
    }

    /// `bytes` (`{"a": {...}, ...}`) with the embedded document at offset 7 declared one byte
    /// too long, and one more 0x00 before the end so the outer envelope still holds.
    fn inner_length_one_too_long(bytes: &[u8]) -> Vec<u8> {
        let mut bad = bytes.to_vec();
        let inner = i32::from_le_bytes(bad[7..11].try_into().unwrap()) + 1;
        bad[7..11].copy_from_slice(&inner.to_le_bytes());
        let at = bad.len() - 1;
        bad.insert(at, 0);
        let outer = i32::from_le_bytes(bad[0..4].try_into().unwrap()) + 1;
        bad[0..4].copy_from_slice(&outer.to_le_bytes());
        bad
    }

    #[test]
    fn malformed_inner_length_is_refused_like_the_raw_decoder() {
        // fuzz/seeds/bson_document/crash-extjson-inner-length:
        // {"a": {"$": 0.0…, "$numberLong": "5"}} with the inner length one too long.
        let seed = unhex(
            "2c000000 03 6100 24000000 01 2400 0000350018000000 02 246e756d6265724c6f6e6700 \
             02000000 3500 00 00 00",
        );
        // The bson crate's serde decoder stops at "$numberLong" and never sees the bad byte.
        assert_eq!(
            bson::deserialize_from_slice::<Document>(&seed).unwrap(),
            doc! {"a": 5i64}
        );
        let raw = document_from_slice(&seed).unwrap_err();
        assert!(matches!(raw, BsonError::Decode { .. }), "{raw:?}");
        assert!(raw.to_string().contains("invalid tag"), "{raw}");
        assert_eq!(from_slice::<Document>(&seed), Err(raw.clone()));
        assert_eq!(from_slice::<Tree>(&seed), Err(raw.clone()));
        assert_eq!(from_slice::<serde::de::IgnoredAny>(&seed), Err(raw.clone()));
        #[derive(Deserialize, Debug)]
        struct Raw {
            #[serde(rename = "a")]
            _a: RawDocumentBuf,
        }
        assert_eq!(from_slice::<Raw>(&seed).unwrap_err(), raw);

        // The same malformation in every shape (not the top-level one: no embedded document).
        for (name, bytes, ..) in pybson_shapes() {
            if name == "top_level" || name == "in_list" {
                continue;
            }
            let bad = inner_length_one_too_long(&bytes);
            let raw = document_from_slice(&bad).unwrap_err();
            assert!(matches!(raw, BsonError::Decode { .. }), "{name}: {raw:?}");
            assert_eq!(from_slice::<Document>(&bad), Err(raw.clone()), "{name}");
            assert_eq!(from_slice::<Tree>(&bad), Err(raw.clone()), "{name}");
            #[derive(Deserialize, Debug)]
            struct Nothing {}
            assert_eq!(from_slice::<Nothing>(&bad).unwrap_err(), raw, "{name}");
        }
    }

    #[test]
    fn extended_json_keys_are_the_ones_the_bson_crate_reinterprets() {
        let values = [Bson::from("5"), Bson::from(1), Bson::from(doc! {})];
        for key in EXTENDED_JSON_KEYS {
            for value in &values {
                let literal = doc! {"a": {key: value.clone()}};
                let bytes = to_vec(&literal).unwrap();
                assert_ne!(
                    bson::deserialize_from_slice::<Document>(&bytes).ok(),
                    Some(literal.clone()),
                    "{key}"
                );
                assert_eq!(from_slice::<Document>(&bytes), Err(refused(key, "a")));
            }
        }
        // Other `$` keys, some of them extended-JSON-like, are plain keys for the crate too.
        for key in [
            "$",
            "$set",
            "$ref",
            "$id",
            "$db",
            "$regex",
            "$options",
            "$type",
            "$numberlong",
            "$Oid",
            "$$oid",
            "oid",
            "$oid ",
            "$date.x",
        ] {
            for value in &values {
                let literal = doc! {key: {key: value.clone()}};
                let bytes = to_vec(&literal).unwrap();
                assert_eq!(
                    bson::deserialize_from_slice::<Document>(&bytes)
                        .as_ref()
                        .ok(),
                    Some(&literal),
                    "{key}"
                );
                assert_eq!(from_slice::<Document>(&bytes), Ok(literal), "{key}");
            }
        }
    }

    #[test]
    fn which_targets_are_refused() {
        let oid_hex = "000102030405060708090a0b";
        let bytes = to_vec(&doc! {"a": {"$oid": oid_hex}, "n": 1}).unwrap();
        let refusal = refused("$oid", "a");

        // Every bson type reads the embedded document as an ObjectId (or fails on it).
        #[derive(Deserialize, Debug, PartialEq)]
        struct Of<T> {
            a: T,
        }
        assert_eq!(from_slice::<Of<Document>>(&bytes).unwrap_err(), refusal);
        assert_eq!(from_slice::<Of<Bson>>(&bytes).unwrap_err(), refusal);
        assert_eq!(from_slice::<Of<ObjectId>>(&bytes).unwrap_err(), refusal);
        assert_eq!(
            from_slice::<Of<Option<Document>>>(&bytes).unwrap_err(),
            refusal
        );
        assert_eq!(
            from_slice::<HashMap<String, Document>>(&bytes).unwrap_err(),
            refusal
        );
        assert_eq!(
            bson::deserialize_from_slice::<Of<ObjectId>>(&bytes)
                .unwrap()
                .a
                .to_hex(),
            oid_hex
        );
        // Even when the target swallows the error.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Lenient {
            #[serde(default, deserialize_with = "ok_or_none")]
            a: Option<Document>,
        }
        #[allow(clippy::unnecessary_wraps)] // the signature serde's deserialize_with needs
        fn ok_or_none<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Document>, D::Error> {
            Ok(Document::deserialize(de).ok())
        }
        assert_eq!(from_slice::<Lenient>(&bytes).unwrap_err(), refusal);
        // serde buffers values for flatten and untagged enums; the final type is unknown.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Flat {
            #[serde(flatten)]
            rest: HashMap<String, Tree>,
        }
        assert_eq!(from_slice::<Flat>(&bytes).unwrap_err(), refusal);
        #[derive(Deserialize, Debug, PartialEq)]
        #[serde(untagged)]
        enum Either {
            Doc { a: HashMap<String, String> },
        }
        assert_eq!(from_slice::<Either>(&bytes).unwrap_err(), refusal);

        // Targets that read keys as written get py-bson's dict.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Oid {
            #[serde(rename = "$oid")]
            oid: String,
        }
        assert_eq!(from_slice::<Of<Oid>>(&bytes).unwrap().a.oid, oid_hex);
        let map = from_slice::<Of<HashMap<String, String>>>(&bytes).unwrap();
        assert_eq!(map.a["$oid"], oid_hex);
        let raw = from_slice::<Of<RawDocumentBuf>>(&bytes).unwrap();
        assert_eq!(Document::try_from(raw.a).unwrap(), doc! {"$oid": oid_hex});
        #[derive(Deserialize, Debug, PartialEq)]
        struct OnlyN {
            n: i32,
        }
        assert_eq!(from_slice::<OnlyN>(&bytes), Ok(OnlyN { n: 1 }));
        #[derive(Deserialize, Debug, PartialEq)]
        enum Tagged {
            #[serde(rename = "$oid")]
            Oid(String),
        }
        let one = to_vec(&doc! {"t": {"$oid": oid_hex}}).unwrap();
        #[derive(Deserialize, Debug, PartialEq)]
        struct T {
            t: Tagged,
        }
        assert_eq!(
            from_slice::<T>(&one),
            Ok(T {
                t: Tagged::Oid(oid_hex.into())
            })
        );

        // {"$date": {"$numberLong": "5"}} is not a datetime, {"$numberLong": "5"} not an int.
        let date = to_vec(&doc! {"a": {"$date": {"$numberLong": "5"}}}).unwrap();
        assert_eq!(
            from_slice::<Of<DateTime>>(&date),
            Err(refused("$date", "a"))
        );
        assert_eq!(
            bson::deserialize_from_slice::<Of<DateTime>>(&date)
                .unwrap()
                .a,
            DateTime::from_millis(5)
        );
        let long = to_vec(&doc! {"a": {"$numberLong": "5"}}).unwrap();
        assert_eq!(
            from_slice::<Of<PyInt>>(&long),
            Err(refused("$numberLong", "a"))
        );
        assert_eq!(
            from_slice::<Of<i64>>(&long).map_err(|e| matches!(e, BsonError::Decode { .. })),
            Err(true)
        );
    }

    #[test]
    fn real_bson_types_still_decode_next_to_refused_keys() {
        let oid = ObjectId::from_bytes([7; 12]);
        let code = JavaScriptCodeWithScope {
            code: "f()".into(),
            scope: doc! {"x": 1, "$oid": "kept"},
        };
        let typed = doc! {
            "o": oid,
            "d": DateTime::from_millis(5),
            "s": Bson::Symbol("sym".into()),
            "c": code.clone(),
            "l": [oid, {"k": 1}, [DateTime::from_millis(6)]],
            "t": bson::Timestamp { time: 1, increment: 2 },
            "lit": {"$oid": "000102030405060708090a0b"},
        };
        let bytes = to_vec(&typed).unwrap();
        // The slow path (a `$oid` key is present) reads the real types through the crate's
        // own maps, which must not be mistaken for documents.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Typed {
            o: ObjectId,
            d: DateTime,
            s: Bson,
            l: Vec<Bson>,
            t: bson::Timestamp,
            lit: HashMap<String, String>,
        }
        let got: Typed = from_slice(&bytes).unwrap();
        assert_eq!(got.o, oid);
        assert_eq!(got.d, DateTime::from_millis(5));
        assert_eq!(got.s, Bson::Symbol("sym".into()));
        assert_eq!(
            got.l,
            vec![
                Bson::from(oid),
                Bson::from(doc! {"k": 1}),
                Bson::from(vec![Bson::from(DateTime::from_millis(6))])
            ]
        );
        assert_eq!(
            got.t,
            bson::Timestamp {
                time: 1,
                increment: 2
            }
        );
        assert_eq!(got.lit["$oid"], "000102030405060708090a0b");
        // The scope of a JavaScript value is a document too: its `$oid` key is refused for a
        // bson target, with the path through the scope.
        #[derive(Deserialize, Debug)]
        struct Code {
            _c: JavaScriptCodeWithScope,
        }
        let code_only = to_vec(&doc! {"_c": code}).unwrap();
        assert_eq!(
            from_slice::<Code>(&code_only).unwrap_err(),
            refused("$oid", "_c.$scope")
        );
        assert_eq!(
            from_slice::<Document>(&bytes),
            Err(refused("$oid", "c.$scope"))
        );
        // Without the lit / scope keys, the whole document decodes as a Document, as the raw
        // decoder reads it.
        let mut plain = typed.clone();
        plain.remove("lit");
        plain.insert(
            "c",
            JavaScriptCodeWithScope {
                code: "f()".into(),
                scope: doc! {"x": 1},
            },
        );
        let bytes = to_vec(&plain).unwrap();
        assert_eq!(from_slice::<Document>(&bytes), Ok(plain.clone()));
        assert_eq!(document_from_slice(&bytes), Ok(plain));
    }

    #[test]
    fn paths_name_the_document_holding_the_key() {
        let deep = doc! {"x": [1, {"y": {"z": {"$date": 5}}}], "w": {"$oid": "x"}};
        let bytes = to_vec(&deep).unwrap();
        assert_eq!(
            from_slice::<Document>(&bytes),
            Err(refused("$date", "x.1.y.z"))
        );
        let text = refused("$date", "x.1.y.z").to_string();
        assert!(
            text.contains("\"$date\"") && text.contains("\"x.1.y.z\""),
            "{text}"
        );
        assert!(refused("$oid", "")
            .to_string()
            .starts_with("the top-level document"));
    }

    #[test]
    fn paths_use_keys_as_written() {
        // fuzz/seeds/bson_document/crash-extjson-empty-array-key: an array whose second
        // element is written under the empty key (not "1"), so the path ends in an empty key.
        let bytes = unhex(
            "3a000000 04 1300 29000000 10 3000 01000031 03 00 1b000000 10 7800 01000000 \
             02 2473796d626f6c00 02000000 7800 00 00 02 7300 02000000 7400 00",
        );
        assert_eq!(
            from_slice::<Document>(&bytes),
            Err(refused("$symbol", "\u{13}."))
        );
        // The same document under "1" is named by its index.
        let indexed =
            to_vec(&doc! {"\u{13}": [822_083_585, {"x": 1, "$symbol": "x"}], "s": "t"}).unwrap();
        assert_eq!(
            from_slice::<Document>(&indexed),
            Err(refused("$symbol", "\u{13}.1"))
        );
    }

    /// `{"": {"": ... {}}}`: `depth` levels counting the top-level document.
    fn nested(depth: usize) -> Vec<u8> {
        let mut doc = Vec::with_capacity(5 + 7 * depth);
        for level in 1..depth {
            let len = i32::try_from(5 + 7 * (depth - level)).unwrap();
            doc.extend_from_slice(&len.to_le_bytes());
            doc.extend_from_slice(&[3, 0]);
        }
        doc.extend_from_slice(&[5, 0, 0, 0, 0]);
        doc.resize(doc.len() + depth - 1, 0);
        doc
    }

    #[test]
    fn nested_builds_valid_documents() {
        assert_eq!(nested(1), unhex("05000000 00"));
        assert_eq!(nested(3), to_vec(&doc! {"": {"": {}}}).unwrap());
    }

    #[test]
    fn nesting_depth_is_limited() {
        let limits = DecodeLimits::new().with_max_depth(3);
        assert!(from_slice_with_limits::<Document>(&nested(3), limits).is_ok());
        assert!(document_from_slice_with_limits(&nested(3), limits).is_ok());
        let too_deep = Err(BsonError::TooDeep { max: 3 });
        assert_eq!(
            from_slice_with_limits::<Document>(&nested(4), limits),
            too_deep
        );
        assert_eq!(
            document_from_slice_with_limits(&nested(4), limits),
            too_deep
        );
        // Arrays and JavaScript scopes count as levels too.
        let in_array = to_vec(&doc! {"a": [[1]]}).unwrap();
        assert_eq!(
            from_slice_with_limits::<Document>(&in_array, limits.with_max_depth(2)),
            Err(BsonError::TooDeep { max: 2 })
        );
        assert!(from_slice_with_limits::<Document>(&in_array, limits).is_ok());
        let in_scope = to_vec(
            &doc! {"c": JavaScriptCodeWithScope { code: String::new(), scope: doc! {"x": {}} }},
        )
        .unwrap();
        assert_eq!(
            document_from_slice_with_limits(&in_scope, limits.with_max_depth(2)),
            Err(BsonError::TooDeep { max: 2 })
        );
        assert!(document_from_slice_with_limits(&in_scope, limits).is_ok());
        assert_eq!(
            document_from_slice_with_limits(&nested(1), limits.with_max_depth(0)),
            Err(BsonError::TooDeep { max: 0 })
        );

        // The default: 100 levels decode (serde needs a large stack in a debug build), 101 do
        // not; 100,000 levels (700 KB, which overflowed the stack of both decoders before)
        // fail fast on an ordinary test thread.
        let ok = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(|| {
                let bytes = nested(DEFAULT_MAX_DEPTH);
                from_slice::<Document>(&bytes).is_ok() && document_from_slice(&bytes).is_ok()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(ok);
        let too_deep = Err(BsonError::TooDeep {
            max: DEFAULT_MAX_DEPTH,
        });
        assert_eq!(
            from_slice::<Document>(&nested(DEFAULT_MAX_DEPTH + 1)),
            too_deep
        );
        assert_eq!(document_from_slice(&nested(100_000)), too_deep);
        assert_eq!(from_slice::<Document>(&nested(100_000)), too_deep);
    }

    #[test]
    fn raw_fields_no_longer_skip_validation() {
        // {"a": {"s": <string with a bad length>}}: a RawDocumentBuf field took the bytes
        // unchecked.
        let bad = unhex("16000000 03 6100 0e000000 02 7300 05000000 6100 00 00");
        #[derive(Deserialize, Debug)]
        struct Raw {
            #[serde(rename = "a")]
            _a: RawDocumentBuf,
        }
        assert!(bson::deserialize_from_slice::<Raw>(&bad).is_ok());
        let raw = document_from_slice(&bad).unwrap_err();
        assert!(matches!(raw, BsonError::Decode { .. }), "{raw:?}");
        assert_eq!(from_slice::<Raw>(&bad).unwrap_err(), raw);
    }
}
