//! BSON documents to and from JSON, for `send` and `listen`.
//!
//! JSON → BSON follows py-bson's `bson.dumps`: an integer is int32 when it
//! fits, else int64, else (2⁶³ … 2⁶⁴−1) py-bson's uint64 (type 0x11); other
//! numbers are doubles; an object whose first key starts with `$` is MongoDB
//! extended JSON (`{"$binary": …}`, `{"$oid": …}`, `{"$date": …}`, …).
//!
//! BSON → JSON is relaxed extended JSON, except that type 0x11 is shown as
//! the unsigned integer py-bson means by it. Both directions keep key order.

use bson::{Bson, Document};
use framewire::message::bson::{self as fwbson, BsonError};
use serde_json::{Map, Value};

/// A JSON value that cannot become a BSON document.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DocJsonError {
    /// The text is not JSON.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The top level is not a JSON object.
    #[error("a BSON document must be a JSON object, not {found}")]
    NotObject {
        /// What was found instead (`an array`, `a string`, …).
        found: &'static str,
    },
    /// An extended-JSON object that does not parse.
    #[error("bad extended JSON at {path:?}: {message}")]
    ExtJson {
        /// Dotted path of the value.
        path: String,
        /// The `bson` crate's description.
        message: String,
    },
    /// Encoding or decoding the document failed.
    #[error("{0}")]
    Bson(#[from] BsonError),
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses one line of JSON text into the bytes of a BSON document.
pub(crate) fn json_text_to_bson(text: &str) -> Result<Vec<u8>, DocJsonError> {
    let value: Value = serde_json::from_str(text)?;
    json_to_bson(value)
}

/// A JSON object as the bytes of a BSON document.
pub(crate) fn json_to_bson(value: Value) -> Result<Vec<u8>, DocJsonError> {
    let Value::Object(map) = value else {
        return Err(DocJsonError::NotObject {
            found: kind(&value),
        });
    };
    let doc = object_to_document(map, &mut String::new())?;
    Ok(fwbson::document_to_vec(&doc)?)
}

fn object_to_document(
    map: Map<String, Value>,
    path: &mut String,
) -> Result<Document, DocJsonError> {
    let mut doc = Document::new();
    for (key, value) in map {
        let len = path.len();
        if len > 0 {
            path.push('.');
        }
        path.push_str(&key);
        let v = value_to_bson(value, path)?;
        path.truncate(len);
        doc.insert(key, v);
    }
    Ok(doc)
}

fn value_to_bson(value: Value, path: &mut String) -> Result<Bson, DocJsonError> {
    Ok(match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(b),
        Value::String(s) => Bson::String(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                fwbson::py_int_to_bson(i128::from(i))?
            } else if let Some(u) = n.as_u64() {
                fwbson::py_int_to_bson(i128::from(u))?
            } else {
                Bson::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let len = path.len();
                if len > 0 {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                out.push(value_to_bson(item, path)?);
                path.truncate(len);
            }
            Bson::Array(out)
        }
        Value::Object(map) => {
            if map.keys().next().is_some_and(|k| k.starts_with('$')) {
                Bson::try_from(Value::Object(map)).map_err(|e| DocJsonError::ExtJson {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            } else {
                Bson::Document(object_to_document(map, path)?)
            }
        }
    })
}

/// The bytes of one BSON document as a JSON object.
pub(crate) fn bson_to_json(bytes: &[u8]) -> Result<Value, DocJsonError> {
    let doc = fwbson::document_from_slice(bytes)?;
    Ok(document_to_json(doc))
}

/// A document as a JSON object.
pub(crate) fn document_to_json(doc: Document) -> Value {
    Value::Object(
        doc.into_iter()
            .map(|(k, v)| (k, bson_value_to_json(v)))
            .collect(),
    )
}

fn bson_value_to_json(v: Bson) -> Value {
    match v {
        Bson::Int32(n) => Value::from(n),
        Bson::Int64(n) => Value::from(n),
        Bson::Timestamp(ts) => Value::from(fwbson::py_uint64_from_timestamp(ts)),
        Bson::Document(d) => document_to_json(d),
        Bson::Array(items) => Value::Array(items.into_iter().map(bson_value_to_json).collect()),
        other => other.into_relaxed_extjson(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_world_is_pybson_bytes() {
        // bson.dumps({"hello": "world"})
        assert_eq!(
            json_text_to_bson(r#"{"hello": "world"}"#).unwrap(),
            b"\x16\0\0\0\x02hello\0\x06\0\0\0world\0\0"
        );
        // bson.dumps({"n": 5}) is int32; 2**31 is int64; 2**63 is py-bson's 0x11.
        assert_eq!(
            json_text_to_bson(r#"{"n": 5}"#).unwrap(),
            b"\x0c\0\0\0\x10n\0\x05\0\0\0\0"
        );
        assert_eq!(json_text_to_bson(r#"{"n": 2147483648}"#).unwrap()[4], 0x12);
        assert_eq!(
            json_text_to_bson(r#"{"n": 9223372036854775808}"#).unwrap()[4],
            0x11
        );
    }

    #[test]
    fn round_trip_keeps_values_and_order() {
        let text = r#"{"z":1,"a":[1,"two",3.5,null,true],"n":{"big":18446744073709551615},"b":{"$binary":{"base64":"AAE=","subType":"00"}}}"#;
        let bytes = json_text_to_bson(text).unwrap();
        let back = bson_to_json(&bytes).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(serde_json::to_string(&back).unwrap(), text);
    }

    #[test]
    fn errors_are_clear() {
        let e = json_text_to_bson("{nope").unwrap_err().to_string();
        assert!(e.starts_with("bad JSON"), "{e}");
        let e = json_text_to_bson("[1, 2]").unwrap_err().to_string();
        assert_eq!(e, "a BSON document must be a JSON object, not an array");
        let e = json_text_to_bson(r#"{"x": {"$binary": 3}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("bad extended JSON at \"x\""), "{e}");
        let e = bson_to_json(b"\x05\0\0\0\x01").unwrap_err().to_string();
        assert!(e.contains("instead of 0x00"), "{e}");
    }
}
