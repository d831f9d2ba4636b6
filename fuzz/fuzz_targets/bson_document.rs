//! BSON document decoding against the `bson` crate: whatever framewire's
//! `message::bson` accepts, the `bson` crate's own `RawDocument` validation
//! and decoding accept too, with the same value; framewire's two decoders
//! (serde `from_slice` and the dynamic `document_from_slice`) agree; the
//! envelope check agrees with the `BsonDocument` framing; decoded documents
//! re-encode to bytes that decode to the same value.
#![no_main]
#![allow(clippy::match_same_arms)]

use bson::{Document, RawDocument};
use framewire::framing::{BsonDocument, Decode, Framing};
use framewire::message::bson::{self as fw, BsonError};
use libfuzzer_sys::fuzz_target;

/// A value's canonical bytes (the `bson` crate's encoding), or its debug
/// form if it cannot be encoded.
fn canonical(doc: &Document) -> Vec<u8> {
    doc.to_vec()
        .unwrap_or_else(|e| format!("unencodable {e}: {doc:?}").into_bytes())
}

/// Whether any key, at any depth, starts with `$`.
fn has_dollar_key(doc: &Document) -> bool {
    fn value(v: &bson::Bson) -> bool {
        match v {
            bson::Bson::Document(d) => has_dollar_key(d),
            bson::Bson::Array(a) => a.iter().any(value),
            bson::Bson::JavaScriptCodeWithScope(c) => has_dollar_key(&c.scope),
            _ => false,
        }
    }
    doc.iter().any(|(k, v)| k.starts_with('$') || value(v))
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
    let theirs_serde: Option<Result<Document, _>> =
        bson::deserialize_from_slice(data).ok().map(Ok::<_, ()>);

    if let Ok(doc) = &ours {
        let Some(Ok(reference)) = &theirs else {
            // The serde path does not check the length of an embedded
            // document it reads as extended JSON (`{"$numberLong": "5"}`
            // declared one byte too long becomes 5; seed
            // crash-extjson-inner-length): a `bson` crate leniency that
            // `from_slice` inherits (fuzz/README.md).
            assert!(
                data.contains(&b'$'),
                "framewire decodes {doc:?} but bson's RawDocument refuses: {theirs:?}"
            );
            return;
        };
        // The serde path turns embedded documents whose keys look like
        // extended JSON into those types (`{"a": {"$oid": "…"}}` becomes an
        // ObjectId): a `bson` crate behaviour `from_slice::<Document>`
        // inherits (fuzz/README.md). Everything else must be identical.
        if !has_dollar_key(reference) {
            assert_eq!(
                canonical(doc),
                canonical(reference),
                "framewire {doc:?} vs bson {reference:?}"
            );
        }
        assert!(
            theirs_serde.is_some(),
            "bson's serde decoder refuses what framewire accepts"
        );
    }
    if let Ok(doc) = &ours_dyn {
        let Some(Ok(reference)) = &theirs else {
            panic!("framewire decodes {doc:?} but bson's RawDocument refuses");
        };
        assert_eq!(canonical(doc), canonical(reference));
    }
    match (&ours, &ours_dyn) {
        (Ok(a), Ok(b)) if !has_dollar_key(b) => {
            assert_eq!(
                canonical(a),
                canonical(b),
                "from_slice and document_from_slice disagree"
            );
        }
        (Ok(_), Ok(_)) => {}
        (Ok(a), Err(e)) => panic!("from_slice gives {a:?}, document_from_slice {e:?}"),
        // The `bson` crate's serde deserializer reads a document whose keys
        // look like extended JSON (`$scope`, `$oid`, `$date`, ...) as that
        // type, and refuses it when the shape is wrong; its raw decoder
        // takes it as a plain document. A known difference of the `bson`
        // crate, which `from_slice::<Document>` inherits (fuzz/README.md).
        (Err(_), Ok(b)) if has_dollar_key(b) => {}
        (Err(e), Ok(b)) => panic!("document_from_slice gives {b:?}, from_slice {e:?}"),
        (Err(_), Err(_)) => {}
    }

    if let Ok(doc) = ours {
        // Re-encoding gives a document that decodes to the same value.
        if let Ok(bytes) = fw::document_to_vec(&doc) {
            let again: Document = fw::from_slice(&bytes).expect("re-encoded document must decode");
            assert_eq!(canonical(&again), canonical(&doc));
            assert_eq!(
                fw::to_vec(&doc).as_deref().ok(),
                Some(&bytes[..]),
                "to_vec and document_to_vec differ"
            );
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
    // The typed serde path must not panic.
    let _ = fw::from_slice::<Typed>(data);
});
