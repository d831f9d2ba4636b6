//! BSON document decoding against the `bson` crate: whatever framewire's
//! `message::bson` accepts, the `bson` crate's own `RawDocument` validation
//! and decoding accept too, with the same value; framewire's two decoders
//! (serde `from_slice` and the dynamic `document_from_slice`) refuse the same
//! malformed documents with the same error and give the same value, except
//! that `from_slice::<Document>` refuses (`ExtendedJsonKey`, naming a key and
//! a path that are really there) documents whose extended-JSON keys the
//! `bson` crate's serde visitor would reinterpret; a target that reads keys as
//! written gets every valid document exactly; the envelope check agrees with
//! the `BsonDocument` framing; decoded documents re-encode to bytes that
//! decode to the same value; a typed target reads what the `bson` crate's
//! serde decoder reads.
#![no_main]
#![allow(clippy::match_same_arms)]

use std::fmt;

use bson::{Document, RawDocument};
use framewire::framing::{BsonDocument, Decode, Framing};
use framewire::message::bson::{self as fw, BsonError};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A value's canonical bytes (the `bson` crate's encoding), or its debug
/// form if it cannot be encoded.
fn canonical(doc: &Document) -> Vec<u8> {
    doc.to_vec()
        .unwrap_or_else(|e| format!("unencodable {e}: {doc:?}").into_bytes())
}

/// The first key of `doc` (in wire order) that is one of
/// `EXTENDED_JSON_KEYS`.
fn first_extended_json_key(doc: &RawDocument) -> Option<&str> {
    doc.iter_elements()
        .filter_map(Result::ok)
        .map(|e| e.key().as_str())
        .find(|k| fw::EXTENDED_JSON_KEYS.contains(k))
}

/// Whether some document at the dotted `path` below `doc` (keys may hold
/// dots, be empty and repeat, so every reading is tried; a JavaScript scope
/// is `key.$scope`) has `key` as its first extended-JSON key.
fn holds_at(doc: &RawDocument, path: &str, key: &str) -> bool {
    if path.is_empty() {
        return first_extended_json_key(doc) == Some(key) || holds_below(doc, path, key);
    }
    holds_below(doc, path, key)
}

/// Whether `path` names a document below `doc` (its first key is one of
/// `doc`'s keys, possibly empty) that has `key` as its first extended-JSON
/// key. `holds_at` alone decides whether `path` names `doc` itself.
fn holds_below(doc: &RawDocument, path: &str, key: &str) -> bool {
    doc.iter_elements().filter_map(Result::ok).any(|element| {
        let k = element.key().as_str();
        // The rest of the path below this element: None if the path ends here.
        let rest = if path == k {
            None
        } else if let Some(rest) = path.strip_prefix(k).and_then(|r| r.strip_prefix('.')) {
            Some(rest)
        } else {
            return false;
        };
        let at = |d: &RawDocument| match rest {
            None => first_extended_json_key(d) == Some(key),
            Some(rest) => holds_below(d, rest, key),
        };
        match element.value() {
            Ok(bson::RawBsonRef::Document(d)) => at(d),
            Ok(bson::RawBsonRef::Array(a)) => RawDocument::from_bytes(a.as_bytes()).is_ok_and(at),
            Ok(bson::RawBsonRef::JavaScriptCodeWithScope(c)) => match rest {
                Some("$scope") => first_extended_json_key(c.scope) == Some(key),
                Some(r) => r
                    .strip_prefix("$scope.")
                    .is_some_and(|r| holds_below(c.scope, r, key)),
                None => false,
            },
            _ => false,
        }
    })
}

/// A typed target with the py-bson integer helpers, to run the serde paths.
#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)]
struct Typed {
    #[serde(default)]
    n: Option<fw::PyInt>,
    #[serde(default)]
    u: Option<fw::PyUInt>,
    #[serde(default)]
    s: Option<String>,
    #[serde(default)]
    v: Option<Vec<bson::Bson>>,
}

/// A dynamic value whose visitor takes every key as written (not one of the
/// `bson` crate's visitors): framewire must never refuse it, and must give it
/// exactly the raw document's structure.
#[derive(Debug, PartialEq)]
enum Literal {
    Map(Vec<(String, Literal)>),
    Seq(Vec<Literal>),
    Str(String),
    Bytes(Vec<u8>),
    Int(i128),
    Float(u64),
    Bool(bool),
    Null,
}

impl Literal {
    /// The literal form of a raw document (duplicate keys and all) holding
    /// only the types serde sees directly (None if it holds another type,
    /// which the `bson` crate hands over as a map of its own making).
    fn of_raw(doc: &RawDocument) -> Option<Literal> {
        doc.iter_elements()
            .map(|e| {
                let e = e.ok()?;
                Some((
                    e.key().as_str().to_owned(),
                    Literal::of_value(e.value().ok()?)?,
                ))
            })
            .collect::<Option<Vec<_>>>()
            .map(Literal::Map)
    }

    fn of_value(value: bson::RawBsonRef<'_>) -> Option<Literal> {
        use bson::RawBsonRef as R;
        Some(match value {
            R::Document(d) => Literal::of_raw(d)?,
            R::Array(a) => {
                let Literal::Map(entries) =
                    Literal::of_raw(RawDocument::from_bytes(a.as_bytes()).ok()?)?
                else {
                    return None;
                };
                Literal::Seq(entries.into_iter().map(|(_, v)| v).collect())
            }
            R::String(s) => Literal::Str(s.to_owned()),
            R::Binary(b) if b.subtype == bson::spec::BinarySubtype::Generic => {
                Literal::Bytes(b.bytes.to_vec())
            }
            R::Int32(n) => Literal::Int(i128::from(n)),
            R::Int64(n) => Literal::Int(i128::from(n)),
            R::Double(x) => Literal::Float(x.to_bits()),
            R::Boolean(b) => Literal::Bool(b),
            R::Null => Literal::Null,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for Literal {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct LiteralVisitor;
        impl<'de> Visitor<'de> for LiteralVisitor {
            type Value = Literal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("anything")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Literal, E> {
                Ok(Literal::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Literal, E> {
                Ok(Literal::Int(i128::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Literal, E> {
                Ok(Literal::Int(i128::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Literal, E> {
                Ok(Literal::Float(v.to_bits()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Literal, E> {
                Ok(Literal::Str(v.to_owned()))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Literal, E> {
                Ok(Literal::Bytes(v.to_vec()))
            }
            fn visit_unit<E>(self) -> Result<Literal, E> {
                Ok(Literal::Null)
            }
            fn visit_none<E>(self) -> Result<Literal, E> {
                Ok(Literal::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Literal, D::Error> {
                Literal::deserialize(d)
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Literal, D::Error> {
                Literal::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Literal, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Literal::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Literal, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Literal::Map(entries))
            }
        }
        de.deserialize_any(LiteralVisitor)
    }
}

fuzz_target!(|data: &[u8]| {
    let max = fw::DEFAULT_MAX_DOCUMENT_LEN;
    let envelope = fw::check_document(data, max);
    let raw = RawDocument::from_bytes(data);
    assert_eq!(
        envelope.is_ok(),
        raw.is_ok(),
        "envelope check {envelope:?} vs RawDocument::from_bytes {raw:?}"
    );
    let framed = matches!(BsonDocument::new().decode(data), Ok(Decode::Frame { len, .. }) if len == data.len());
    assert_eq!(
        framed,
        envelope.is_ok(),
        "BsonDocument framing vs check_document {envelope:?}"
    );

    let ours: Result<Document, BsonError> = fw::from_slice(data);
    let ours_dyn = fw::document_from_slice(data);
    let theirs = raw.ok().map(Document::try_from);
    let theirs_serde = bson::deserialize_from_slice::<Document>(data);

    if let Ok(doc) = &ours {
        let Some(Ok(reference)) = &theirs else {
            panic!("framewire decodes {doc:?} but bson's RawDocument refuses: {theirs:?}");
        };
        assert_eq!(
            canonical(doc),
            canonical(reference),
            "framewire {doc:?} vs bson {reference:?}"
        );
        // Accepted without extended-JSON keys: exactly the bson crate's serde
        // decoder, so it accepts it too, with the same value.
        let Ok(serde_doc) = &theirs_serde else {
            panic!("bson's serde decoder refuses what framewire accepts: {theirs_serde:?}");
        };
        assert_eq!(canonical(serde_doc), canonical(doc));
    }
    match (&ours_dyn, &theirs) {
        (Ok(doc), Some(Ok(reference))) => assert_eq!(canonical(doc), canonical(reference)),
        (Ok(doc), _) => panic!("framewire decodes {doc:?} but bson's RawDocument refuses"),
        // Validation refuses nothing the raw decoder accepts, but documents
        // nested deeper than the limit.
        (Err(BsonError::TooDeep { max }), Some(Ok(_))) => {
            assert_eq!(*max, fw::DEFAULT_MAX_DEPTH);
        }
        (Err(e), Some(Ok(reference))) => {
            panic!("document_from_slice refuses ({e:?}) what the raw decoder reads: {reference:?}")
        }
        (Err(_), _) => {}
    }
    match (&ours, &ours_dyn) {
        (Ok(a), Ok(b)) => assert_eq!(
            canonical(a),
            canonical(b),
            "from_slice and document_from_slice disagree"
        ),
        (Ok(a), Err(e)) => panic!("from_slice gives {a:?}, document_from_slice {e:?}"),
        // The one refusal of from_slice::<Document> alone: a document that
        // really holds an extended-JSON key, at the path named.
        (Err(BsonError::ExtendedJsonKey { key, path }), Ok(b)) => {
            assert!(fw::EXTENDED_JSON_KEYS.contains(&key.as_str()), "{key:?}");
            let root = RawDocument::from_bytes(data).expect("validated");
            assert!(
                holds_at(root, path, key),
                "no document at {path:?} starting with {key:?} in {b:?}"
            );
        }
        (Err(e), Ok(b)) => panic!("document_from_slice gives {b:?}, from_slice {e:?}"),
        // Validation comes first in both: the same error.
        (Err(a), Err(b)) => assert_eq!(a, b, "from_slice and document_from_slice fail differently"),
    }

    // A target that reads keys as written is never refused, and gets the
    // raw decoder's structure.
    let literal = fw::from_slice::<Literal>(data);
    match (&literal, &ours_dyn) {
        (Ok(value), Ok(_)) => {
            let root = RawDocument::from_bytes(data).expect("validated");
            if let Some(expected) = Literal::of_raw(root) {
                assert_eq!(value, &expected, "literal target vs raw decoder");
            }
        }
        (Err(e), Ok(doc)) => panic!("literal target refused ({e:?}) a valid document {doc:?}"),
        (Ok(value), Err(e)) => {
            panic!("literal target read {value:?} where the raw decoder fails {e:?}")
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "literal target fails differently"),
    }

    if let Ok(doc) = ours_dyn {
        // Re-encoding gives a document that decodes to the same value.
        if let Ok(bytes) = fw::document_to_vec(&doc) {
            let again = fw::document_from_slice(&bytes).expect("re-encoded document must decode");
            assert_eq!(canonical(&again), canonical(&doc));
            assert_eq!(
                fw::to_vec(&doc).as_deref().ok(),
                Some(&bytes[..]),
                "to_vec and document_to_vec differ"
            );
            // Through serde, the same value or the refusal seen above.
            match fw::from_slice::<Document>(&bytes) {
                Ok(typed) => assert_eq!(canonical(&typed), canonical(&doc)),
                Err(BsonError::ExtendedJsonKey { .. }) => {
                    assert!(matches!(ours, Err(BsonError::ExtendedJsonKey { .. })));
                }
                Err(e) => panic!("re-encoded document refused by from_slice: {e:?}"),
            }
        }
        // py-bson normalisation never panics, and is idempotent.
        let mut norm = doc.clone();
        if fw::pybson_normalize(&mut norm).is_ok() {
            let mut twice = norm.clone();
            fw::pybson_normalize(&mut twice).expect("normalising again must work");
            assert_eq!(canonical(&norm), canonical(&twice));
            for (_, v) in &norm {
                if let Some(i) = fw::py_int_from_bson(v) {
                    let back = fw::py_int_to_bson(i).expect("a py-bson integer converts back");
                    assert_eq!(fw::py_int_from_bson(&back), Some(i));
                }
            }
        }
    }
    // The typed serde path (framewire's own deserializer for documents of
    // plain types, the bson crate's for the rest) reads what the bson crate's
    // serde decoder reads.
    if let Ok(typed) = fw::from_slice::<Typed>(data) {
        let theirs = bson::deserialize_from_slice::<Typed>(data);
        assert_eq!(
            Some(format!("{typed:?}")),
            theirs.as_ref().ok().map(|t| format!("{t:?}")),
            "typed target: framewire vs bson {theirs:?}"
        );
    }
});
