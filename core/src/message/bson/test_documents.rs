//! Generated BSON documents for the tests of the plain paths (`plain`, `plain_encoder`).

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{Binary, Bson, DateTime, Document, Timestamp};
use proptest::prelude::*;
use std::string::String;
use std::vec;

/// Keys that name the typed targets' fields, look like extended JSON, or are unusual.
const KEYS: [&str; 8] = ["a", "b", "s", "e", "", "\u{e9}", "$set", "$oid"];

pub(super) fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(&KEYS[..]).prop_map(String::from),
        1 => "[a-z0-9\u{e9}\u{1F600}]{0,4}",
    ]
}

/// A BSON value: mostly plain types, sometimes one the fast path leaves to the crate.
pub(super) fn value() -> impl Strategy<Value = Bson> {
    let leaf = prop_oneof![
        any::<i32>().prop_map(Bson::Int32),
        any::<i64>().prop_map(Bson::Int64),
        any::<f64>().prop_map(Bson::Double),
        ".{0,6}".prop_map(Bson::String),
        any::<bool>().prop_map(Bson::Boolean),
        Just(Bson::Null),
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(|bytes| Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes
        })),
        // Not plain.
        Just(Bson::Binary(Binary {
            subtype: BinarySubtype::Uuid,
            bytes: vec![7; 16]
        })),
        Just(Bson::ObjectId(ObjectId::from_bytes([1; 12]))),
        Just(Bson::DateTime(DateTime::from_millis(5))),
        Just(Bson::Timestamp(Timestamp {
            time: 1,
            increment: 2
        })),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            proptest::collection::vec((key(), inner), 0..4)
                .prop_map(|entries| Bson::Document(entries.into_iter().collect())),
        ]
    })
}

pub(super) fn document() -> impl Strategy<Value = Document> {
    proptest::collection::vec((key(), value()), 0..5)
        .prop_map(|entries| entries.into_iter().collect())
}

/// Whether every value of `doc` is one the fast path reads, and no document holds an
/// extended-JSON key.
pub(super) fn is_plain(doc: &Document) -> bool {
    doc.iter()
        .all(|(k, v)| !super::is_extended_json_key(k) && is_plain_value(v))
}

pub(super) fn is_plain_value(value: &Bson) -> bool {
    match value {
        Bson::Document(doc) => is_plain(doc),
        Bson::Array(items) => items.iter().all(is_plain_value),
        Bson::Binary(b) => b.subtype == BinarySubtype::Generic,
        Bson::Int32(_)
        | Bson::Int64(_)
        | Bson::Double(_)
        | Bson::String(_)
        | Bson::Boolean(_)
        | Bson::Null => true,
        _ => false,
    }
}
