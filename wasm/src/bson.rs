//! JavaScript values ↔ BSON documents, through the core's BSON support
//! (`framewire::message::bson`: length limit, strict envelope checks, typed
//! errors).
//!
//! # Type mapping
//!
//! | JavaScript | BSON | back to JavaScript |
//! |---|---|---|
//! | `number`, integral, in int32 range, not `-0` | int32 (0x10) | `number` |
//! | any other `number` (fractions, larger integers, `-0`, `NaN`, `±Infinity`) | double (0x01) | `number` |
//! | [`Double`] wrapper | double (0x01) | `number` |
//! | `bigint` in int64 range | int64 (0x12) | `bigint` (option `int64: "number"`: a `number` when it is a safe integer) |
//! | `bigint` 2⁶³ … 2⁶⁴−1 | 0x11, py-bson's uint64 | [`Timestamp`] (its `value` is the bigint) |
//! | `string` | string (0x02) | `string` |
//! | `boolean` | boolean (0x08) | `boolean` |
//! | `null`, `undefined` | null (0x0A) | `null` |
//! | `Date` | datetime (0x09, ms) | `Date` |
//! | `Uint8Array`, `ArrayBuffer`, any typed array or `DataView` (its bytes) | binary subtype 0 | `Uint8Array` |
//! | [`Binary`] (bytes + subtype) | binary of that subtype | `Uint8Array` for subtype 0, else `Binary` |
//! | `Array` | array (0x04) | `Array` |
//! | plain object, `Map` (string keys) | document (0x03) | plain object |
//! | `RegExp` (flags `i m s u`; `g y d` are matching state and are dropped) | regex (0x0B) | `RegExp` |
//! | [`BsonRegExp`] (any options) | regex (0x0B) | `BsonRegExp` when the options include one JS lacks (`l`, `x`) |
//! | [`ObjectId`] | ObjectId (0x07) | `ObjectId` |
//! | [`Timestamp`] | timestamp (0x11) | `Timestamp` |
//! | [`Decimal128`] | decimal128 (0x13) | `Decimal128` |
//! | [`Code`] (with or without scope) | JavaScript code (0x0D / 0x0F) | `Code` |
//! | [`MinKey`], [`MaxKey`] | 0xFF, 0x7F | `MinKey`, `MaxKey` |
//! | — | symbol (0x0E), undefined (0x06) | `string`, `undefined` |
//!
//! The classes in brackets are defined by the JavaScript layer of the package
//! and registered with [`register_bson_types`]; each carries a `_bsontype`
//! string that this module reads to recognise it (so objects from another copy
//! of the package work too). Functions and symbols cannot be encoded; nesting
//! deeper than [`MAX_DEPTH`] (a cyclic object, say) is refused. DBPointer
//! (0x0C, deprecated) cannot be decoded.

use std::cell::RefCell;

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{
    Binary, Bson, DateTime, Decimal128, Document, JavaScriptCodeWithScope, Regex, Timestamp,
};
use framewire::message::bson::{
    document_from_slice_with_max, to_vec_with_max, DEFAULT_MAX_DOCUMENT_LEN,
};
use js_sys::{Array, ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::error::{bson_error, n, Failure};

/// The deepest nesting of documents and arrays encoded or decoded (the
/// top-level document is depth 1). MongoDB's own limit is 100.
pub const MAX_DEPTH: usize = 100;

/// The largest integer a JS `number` holds exactly (2⁵³ − 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// How a JS number is written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NumberKind {
    /// int32.
    Int32(i32),
    /// double.
    Double(f64),
}

/// int32 when `v` is integral, in range and not `-0`; otherwise double.
pub fn classify_number(v: f64) -> NumberKind {
    if v.fract() == 0.0
        && v >= f64::from(i32::MIN)
        && v <= f64::from(i32::MAX)
        && !(v == 0.0 && v.is_sign_negative())
    {
        NumberKind::Int32(v as i32)
    } else {
        NumberKind::Double(v)
    }
}

/// How a JS bigint is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BigKind {
    /// int64.
    Int64(i64),
    /// py-bson's uint64 in a 0x11 element (high and low 32 bits).
    Uint64(Timestamp),
}

/// int64 in range, py-bson's 0x11 uint64 for 2⁶³ … 2⁶⁴−1, else out of range.
pub fn classify_bigint(v: i128) -> Result<BigKind, Failure> {
    if let Ok(i) = i64::try_from(v) {
        Ok(BigKind::Int64(i))
    } else if let Ok(u) = u64::try_from(v) {
        Ok(BigKind::Uint64(Timestamp {
            time: (u >> 32) as u32,
            increment: u as u32,
        }))
    } else {
        Err(Failure::new(
            "ERR_BSON_INT_RANGE",
            format!("bigint {v} is outside -2^63 .. 2^64-1, the range BSON can hold"),
        )
        .text("value", v.to_string()))
    }
}

/// BSON regex options for JS RegExp flags: `i m s u` kept (sorted, as BSON
/// requires), `g y d` dropped, anything else refused.
pub fn regex_options_from_flags(flags: &str) -> Result<String, Failure> {
    let mut out: Vec<char> = Vec::new();
    for c in flags.chars() {
        match c {
            'i' | 'm' | 's' | 'u' => out.push(c),
            'g' | 'y' | 'd' => {}
            other => {
                return Err(Failure::new(
                    "ERR_BSON_ENCODE",
                    format!("RegExp flag {other:?} has no BSON equivalent (use BsonRegExp)"),
                ))
            }
        }
    }
    out.sort_unstable();
    Ok(out.into_iter().collect())
}

/// JS RegExp flags for BSON options, or `None` if an option has no JS flag
/// (`l`, `x`, or anything unknown).
pub fn flags_from_regex_options(options: &str) -> Option<String> {
    options
        .chars()
        .map(|c| matches!(c, 'i' | 'm' | 's' | 'u').then_some(c))
        .collect()
}

/// The classes the JS layer defines, by `_bsontype`.
struct Types {
    object_id: js_sys::Function,
    timestamp: js_sys::Function,
    binary: js_sys::Function,
    regexp: js_sys::Function,
    decimal128: js_sys::Function,
    code: js_sys::Function,
    min_key: js_sys::Function,
    max_key: js_sys::Function,
}

thread_local! {
    static TYPES: RefCell<Option<Types>> = const { RefCell::new(None) };
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn ctor(obj: &JsValue, key: &str) -> Result<js_sys::Function, Failure> {
    get(obj, key)
        .dyn_into::<js_sys::Function>()
        .map_err(|_| Failure::argument(format!("registerBsonTypes: {key} is not a class")))
}

/// Registers the JS classes decoded values are made of: an object with the
/// constructors `ObjectId`, `Timestamp`, `Binary`, `BsonRegExp`,
/// `Decimal128`, `Code`, `MinKey`, `MaxKey`. The package's JS layer calls this
/// once when it loads.
#[wasm_bindgen(js_name = registerBsonTypes)]
pub fn register_bson_types(types: &JsValue) -> Result<(), Failure> {
    let t = Types {
        object_id: ctor(types, "ObjectId")?,
        timestamp: ctor(types, "Timestamp")?,
        binary: ctor(types, "Binary")?,
        regexp: ctor(types, "BsonRegExp")?,
        decimal128: ctor(types, "Decimal128")?,
        code: ctor(types, "Code")?,
        min_key: ctor(types, "MinKey")?,
        max_key: ctor(types, "MaxKey")?,
    };
    TYPES.with(|cell| *cell.borrow_mut() = Some(t));
    Ok(())
}

/// 12 fresh ObjectId bytes (timestamp, random process value, counter), for
/// the JS `ObjectId` constructor.
#[wasm_bindgen(js_name = newObjectIdBytes)]
pub fn new_object_id_bytes() -> Vec<u8> {
    ObjectId::new().bytes().to_vec()
}

/// The decimal string of 16 decimal128 bytes (little-endian, as on the wire).
#[wasm_bindgen(js_name = decimal128ToString)]
pub fn decimal128_to_string(bytes: &[u8]) -> Result<String, Failure> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| Failure::argument(format!("a Decimal128 is 16 bytes, not {}", bytes.len())))?;
    Ok(Decimal128::from_bytes(bytes).to_string())
}

/// The 16 decimal128 bytes of a decimal string (`"1.5"`, `"-0"`, `"NaN"`, `"1E+10"`).
#[wasm_bindgen(js_name = decimal128FromString)]
pub fn decimal128_from_string(text: &str) -> Result<Vec<u8>, Failure> {
    text.parse::<Decimal128>()
        .map(|d| d.bytes().to_vec())
        .map_err(|e| Failure::argument(format!("not a decimal128 number: {text:?} ({e})")))
}

/// Options of [`decode_bson`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DecodeOptions {
    int64_as_number: bool,
    max_len: usize,
}

fn max_len_option(options: &JsValue) -> Result<usize, Failure> {
    if options.is_undefined() || options.is_null() {
        return Ok(DEFAULT_MAX_DOCUMENT_LEN);
    }
    let v = get(options, "maxLen");
    if v.is_undefined() {
        return Ok(DEFAULT_MAX_DOCUMENT_LEN);
    }
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && (5.0..=f64::from(i32::MAX)).contains(&x) => Ok(x as usize),
        _ => Err(Failure::argument(
            "maxLen must be an integer from 5 to 2147483647",
        )),
    }
}

/// Encodes a JS object as one BSON document (see the module documentation for
/// the type mapping). Options: `{ maxLen }` (default 16 MiB).
#[wasm_bindgen(js_name = encodeBson)]
pub fn encode_bson(value: &JsValue, options: &JsValue) -> Result<Vec<u8>, Failure> {
    let max = max_len_option(options)?;
    let doc = encode_document(value)?;
    to_vec_with_max(&doc, max).map_err(|e| bson_error(&e))
}

/// Builds the [`Document`] for a JS object (no bytes yet).
pub fn encode_document(value: &JsValue) -> Result<Document, Failure> {
    if !value.is_object() || Array::is_array(value) || is_special(value) {
        return Err(Failure::new(
            "ERR_BSON_ENCODE",
            "the top-level value must be a plain object or a Map",
        ));
    }
    let mut enc = Encoder { path: Vec::new() };
    enc.document(value, 1)
}

/// Decodes one BSON document (exactly `bytes`) into a JS object. Options:
/// `{ int64: "bigint" | "number", maxLen }`.
#[wasm_bindgen(js_name = decodeBson)]
pub fn decode_bson(bytes: &[u8], options: &JsValue) -> Result<JsValue, Failure> {
    let mut opts = DecodeOptions {
        int64_as_number: false,
        max_len: max_len_option(options)?,
    };
    if options.is_object() {
        let v = get(options, "int64");
        match v.as_string().as_deref() {
            None if v.is_undefined() => {}
            Some("bigint") => {}
            Some("number") => opts.int64_as_number = true,
            _ => {
                return Err(Failure::argument(
                    "option int64 must be \"bigint\" or \"number\"",
                ))
            }
        }
    }
    let doc = document_from_slice_with_max(bytes, opts.max_len).map_err(|e| bson_error(&e))?;
    TYPES.with(|cell| {
        let types = cell.borrow();
        let Some(types) = types.as_ref() else {
            return Err(Failure::new(
                "ERR_NOT_INITIALIZED",
                "BSON classes not registered (load the package's JS entry point, not the raw wasm glue)",
            ));
        };
        let dec = Decoder { types, opts };
        let mut path = Vec::new();
        dec.document(&doc, 1, &mut path)
    })
}

fn is_special(v: &JsValue) -> bool {
    v.is_instance_of::<js_sys::Date>()
        || v.is_instance_of::<js_sys::RegExp>()
        || v.is_instance_of::<ArrayBuffer>()
        || ArrayBuffer::is_view(v)
        || get(v, "_bsontype").is_string()
}

/// A dotted path for messages (`a.b.0`); long paths keep their first and
/// last six keys.
pub fn show_path(parts: &[String]) -> String {
    const KEEP: usize = 6;
    if parts.is_empty() {
        "(top level)".to_owned()
    } else if parts.len() <= 2 * KEEP {
        parts.join(".")
    } else {
        format!(
            "{}...({} more)...{}",
            parts[..KEEP].join("."),
            parts.len() - 2 * KEEP,
            parts[parts.len() - KEEP..].join(".")
        )
    }
}

struct Encoder {
    path: Vec<String>,
}

impl Encoder {
    fn path(&self) -> String {
        show_path(&self.path)
    }

    fn fail(&self, what: impl std::fmt::Display) -> Failure {
        Failure::new("ERR_BSON_ENCODE", format!("{what} at {}", self.path()))
            .text("path", self.path())
    }

    fn deeper(&self, depth: usize) -> Result<usize, Failure> {
        if depth >= MAX_DEPTH {
            return Err(Failure::new(
                "ERR_BSON_DEPTH",
                format!(
                    "nesting deeper than {MAX_DEPTH} at {} (a cyclic object?)",
                    self.path()
                ),
            )
            .text("path", self.path())
            .num("max", n(MAX_DEPTH as u64)));
        }
        Ok(depth + 1)
    }

    fn document(&mut self, obj: &JsValue, depth: usize) -> Result<Document, Failure> {
        let mut doc = Document::new();
        if let Some(map) = obj.dyn_ref::<js_sys::Map>() {
            let entries = js_sys::try_iter(&map.entries())
                .ok()
                .flatten()
                .ok_or_else(|| self.fail("a Map that cannot be iterated"))?;
            for entry in entries {
                let entry = entry.map_err(|_| self.fail("a Map that cannot be iterated"))?;
                let entry: Array = entry.unchecked_into();
                let Some(key) = entry.get(0).as_string() else {
                    return Err(self.fail("a Map key that is not a string"));
                };
                self.path.push(key.clone());
                let v = self.value(&entry.get(1), depth)?;
                self.path.pop();
                doc.insert(key, v);
            }
            return Ok(doc);
        }
        let obj: &Object = obj.unchecked_ref();
        let keys = Object::keys(obj);
        for key in keys.iter() {
            let key_s = key.as_string().unwrap_or_default();
            let v =
                Reflect::get(obj, &key).map_err(|_| self.fail("a property getter that threw"))?;
            self.path.push(key_s.clone());
            let v = self.value(&v, depth)?;
            self.path.pop();
            doc.insert(key_s, v);
        }
        Ok(doc)
    }

    #[allow(clippy::too_many_lines)]
    fn value(&mut self, v: &JsValue, depth: usize) -> Result<Bson, Failure> {
        if let Some(x) = v.as_f64() {
            return Ok(match classify_number(x) {
                NumberKind::Int32(i) => Bson::Int32(i),
                NumberKind::Double(d) => Bson::Double(d),
            });
        }
        if let Some(s) = v.as_string() {
            return Ok(Bson::String(s));
        }
        if let Some(b) = v.as_bool() {
            return Ok(Bson::Boolean(b));
        }
        if v.is_null() || v.is_undefined() {
            return Ok(Bson::Null);
        }
        if v.is_bigint() {
            let big: &js_sys::BigInt = v.unchecked_ref();
            let text: String = big
                .to_string(10)
                .map_err(|_| self.fail("a bigint that cannot be printed"))?
                .into();
            let value: i128 = text.parse().map_err(|_| {
                Failure::new(
                    "ERR_BSON_INT_RANGE",
                    format!("bigint {text} at {} is out of range", self.path()),
                )
                .text("value", text.clone())
            })?;
            return match classify_bigint(value) {
                Ok(BigKind::Int64(i)) => Ok(Bson::Int64(i)),
                Ok(BigKind::Uint64(t)) => Ok(Bson::Timestamp(t)),
                Err(f) => Err(f.at(&self.path())),
            };
        }
        if v.is_function() {
            return Err(self.fail("a function cannot be encoded"));
        }
        if v.is_symbol() {
            return Err(self.fail("a symbol cannot be encoded"));
        }
        // Objects from here on.
        if Array::is_array(v) {
            let depth = self.deeper(depth)?;
            let arr: &Array = v.unchecked_ref();
            let mut out = Vec::with_capacity(arr.length() as usize);
            for (i, item) in arr.iter().enumerate() {
                self.path.push(i.to_string());
                out.push(self.value(&item, depth)?);
                self.path.pop();
            }
            return Ok(Bson::Array(out));
        }
        if let Some(d) = v.dyn_ref::<js_sys::Date>() {
            let ms = d.get_time();
            if !ms.is_finite() {
                return Err(self.fail("an invalid Date"));
            }
            return Ok(Bson::DateTime(DateTime::from_millis(ms as i64)));
        }
        if let Some(bytes) = byte_view(v) {
            return Ok(Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: bytes.to_vec(),
            }));
        }
        if let Some(re) = v.dyn_ref::<js_sys::RegExp>() {
            let flags: String = re.flags().into();
            let options = regex_options_from_flags(&flags).map_err(|f| f.at(&self.path()))?;
            let pattern: String = re.source().into();
            return self.regex(pattern, &options);
        }
        let tag = get(v, "_bsontype");
        if let Some(tag) = tag.as_string() {
            return self.tagged(v, &tag, depth);
        }
        let depth = self.deeper(depth)?;
        Ok(Bson::Document(self.document(v, depth)?))
    }

    fn regex(&self, pattern: String, options: &str) -> Result<Bson, Failure> {
        let pattern = pattern
            .try_into()
            .map_err(|_| self.fail("a regex pattern containing NUL"))?;
        let mut opts: Vec<char> = options.chars().collect();
        opts.sort_unstable();
        let options: String = opts.into_iter().collect();
        let options = options
            .try_into()
            .map_err(|_| self.fail("regex options containing NUL"))?;
        Ok(Bson::RegularExpression(Regex { pattern, options }))
    }

    fn u32_field(&self, v: &JsValue, key: &str) -> Result<u32, Failure> {
        match get(v, key).as_f64() {
            Some(x) if x.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&x) => Ok(x as u32),
            _ => Err(self.fail(format!("field {key} is not an integer 0..2^32-1"))),
        }
    }

    fn bytes_field<const N: usize>(&self, v: &JsValue, what: &str) -> Result<[u8; N], Failure> {
        let bytes = byte_view(&get(v, "bytes"))
            .ok_or_else(|| self.fail(format!("{what} without its bytes")))?;
        bytes
            .to_vec()
            .try_into()
            .map_err(|b: Vec<u8>| self.fail(format!("{what} of {} bytes, not {N}", b.len())))
    }

    fn tagged(&mut self, v: &JsValue, tag: &str, depth: usize) -> Result<Bson, Failure> {
        Ok(match tag {
            "ObjectId" => Bson::ObjectId(ObjectId::from_bytes(self.bytes_field(v, "ObjectId")?)),
            "Timestamp" => Bson::Timestamp(Timestamp {
                time: self.u32_field(v, "t")?,
                increment: self.u32_field(v, "i")?,
            }),
            "Binary" => {
                let bytes = byte_view(&get(v, "bytes"))
                    .ok_or_else(|| self.fail("Binary without its bytes"))?;
                let subtype = match get(v, "subtype").as_f64() {
                    Some(x) if x.fract() == 0.0 && (0.0..=255.0).contains(&x) => x as u8,
                    _ => return Err(self.fail("Binary subtype is not 0..255")),
                };
                Bson::Binary(Binary {
                    subtype: BinarySubtype::from(subtype),
                    bytes: bytes.to_vec(),
                })
            }
            "Double" => match get(v, "value").as_f64() {
                Some(x) => Bson::Double(x),
                None => return Err(self.fail("Double without a number value")),
            },
            "BSONRegExp" => {
                let (Some(pattern), Some(options)) =
                    (get(v, "pattern").as_string(), get(v, "options").as_string())
                else {
                    return Err(self.fail("BsonRegExp without string pattern and options"));
                };
                self.regex(pattern, &options)?
            }
            "Decimal128" => {
                Bson::Decimal128(Decimal128::from_bytes(self.bytes_field(v, "Decimal128")?))
            }
            "Code" => {
                let Some(code) = get(v, "code").as_string() else {
                    return Err(self.fail("Code without a string code"));
                };
                let scope = get(v, "scope");
                if scope.is_null() || scope.is_undefined() {
                    Bson::JavaScriptCode(code)
                } else {
                    let depth = self.deeper(depth)?;
                    self.path.push("scope".to_owned());
                    let scope = self.document(&scope, depth)?;
                    self.path.pop();
                    Bson::JavaScriptCodeWithScope(JavaScriptCodeWithScope { code, scope })
                }
            }
            "MinKey" => Bson::MinKey,
            "MaxKey" => Bson::MaxKey,
            other => return Err(self.fail(format!("unknown _bsontype {other:?}"))),
        })
    }
}

/// The bytes of a `Uint8Array`, `ArrayBuffer`, other typed array or `DataView`.
fn byte_view(v: &JsValue) -> Option<Uint8Array> {
    if let Some(u) = v.dyn_ref::<Uint8Array>() {
        return Some(u.clone());
    }
    if let Some(b) = v.dyn_ref::<ArrayBuffer>() {
        return Some(Uint8Array::new(b));
    }
    if ArrayBuffer::is_view(v) {
        let buffer: ArrayBuffer = get(v, "buffer").dyn_into().ok()?;
        let offset = get(v, "byteOffset").as_f64()? as u32;
        let len = get(v, "byteLength").as_f64()? as u32;
        return Some(Uint8Array::new_with_byte_offset_and_length(
            &buffer, offset, len,
        ));
    }
    None
}

struct Decoder<'t> {
    types: &'t Types,
    opts: DecodeOptions,
}

fn construct(ctor: &js_sys::Function, args: &[JsValue]) -> Result<JsValue, Failure> {
    let arr: Array = args.iter().collect();
    Reflect::construct(ctor, &arr).map_err(|e| {
        let msg = e.dyn_ref::<js_sys::Error>().map_or_else(
            || "constructor failed".to_owned(),
            |e| String::from(e.message()),
        );
        Failure::new("ERR_BSON_DECODE", msg)
    })
}

impl Decoder<'_> {
    fn document(
        &self,
        doc: &Document,
        depth: usize,
        path: &mut Vec<String>,
    ) -> Result<JsValue, Failure> {
        let obj = Object::new();
        for (key, value) in doc {
            path.push(key.clone());
            let v = self.value(value, depth, path)?;
            path.pop();
            if key == "__proto__" {
                // A data property, not the prototype setter.
                let desc = Object::new();
                let _ = Reflect::set(&desc, &"value".into(), &v);
                let _ = Reflect::set(&desc, &"enumerable".into(), &JsValue::TRUE);
                let _ = Reflect::set(&desc, &"writable".into(), &JsValue::TRUE);
                let _ = Reflect::set(&desc, &"configurable".into(), &JsValue::TRUE);
                Object::define_property(&obj, &JsValue::from_str(key), &desc);
            } else {
                let _ = Reflect::set(&obj, &JsValue::from_str(key), &v);
            }
        }
        Ok(obj.into())
    }

    fn deeper(depth: usize, path: &[String]) -> Result<usize, Failure> {
        if depth >= MAX_DEPTH {
            let p = show_path(path);
            return Err(Failure::new(
                "ERR_BSON_DEPTH",
                format!("nesting deeper than {MAX_DEPTH} at {p}"),
            )
            .text("path", p)
            .num("max", n(MAX_DEPTH as u64)));
        }
        Ok(depth + 1)
    }

    fn value(&self, v: &Bson, depth: usize, path: &mut Vec<String>) -> Result<JsValue, Failure> {
        let t = self.types;
        Ok(match v {
            Bson::Double(d) => JsValue::from_f64(*d),
            Bson::String(s) | Bson::Symbol(s) => JsValue::from_str(s),
            Bson::Boolean(b) => JsValue::from_bool(*b),
            Bson::Null => JsValue::NULL,
            Bson::Undefined => JsValue::UNDEFINED,
            Bson::Int32(i) => JsValue::from_f64(f64::from(*i)),
            Bson::Int64(i) => {
                #[allow(clippy::cast_precision_loss)]
                let as_f = *i as f64;
                if self.opts.int64_as_number && as_f.abs() <= MAX_SAFE_INTEGER {
                    JsValue::from_f64(as_f)
                } else {
                    JsValue::from(*i)
                }
            }
            Bson::Document(d) => {
                let depth = Self::deeper(depth, path)?;
                self.document(d, depth, path)?
            }
            Bson::Array(items) => {
                let depth = Self::deeper(depth, path)?;
                let arr = Array::new_with_length(items.len() as u32);
                for (i, item) in items.iter().enumerate() {
                    path.push(i.to_string());
                    arr.set(i as u32, self.value(item, depth, path)?);
                    path.pop();
                }
                arr.into()
            }
            Bson::DateTime(dt) => {
                #[allow(clippy::cast_precision_loss)]
                let ms = dt.timestamp_millis() as f64;
                js_sys::Date::new(&JsValue::from_f64(ms)).into()
            }
            Bson::Binary(b) if b.subtype == BinarySubtype::Generic => {
                Uint8Array::from(&b.bytes[..]).into()
            }
            Bson::Binary(b) => construct(
                &t.binary,
                &[
                    Uint8Array::from(&b.bytes[..]).into(),
                    JsValue::from_f64(f64::from(u8::from(b.subtype))),
                ],
            )?,
            Bson::ObjectId(oid) => {
                construct(&t.object_id, &[Uint8Array::from(&oid.bytes()[..]).into()])?
            }
            Bson::Timestamp(ts) => construct(
                &t.timestamp,
                &[
                    JsValue::from_f64(f64::from(ts.time)),
                    JsValue::from_f64(f64::from(ts.increment)),
                ],
            )?,
            Bson::RegularExpression(re) => {
                let pattern = re.pattern.as_str();
                let options = re.options.as_str();
                match flags_from_regex_options(options) {
                    Some(flags) => js_sys::RegExp::new(pattern, &flags).into(),
                    None => construct(
                        &t.regexp,
                        &[JsValue::from_str(pattern), JsValue::from_str(options)],
                    )?,
                }
            }
            Bson::Decimal128(d) => {
                construct(&t.decimal128, &[Uint8Array::from(&d.bytes()[..]).into()])?
            }
            Bson::JavaScriptCode(code) => construct(&t.code, &[JsValue::from_str(code)])?,
            Bson::JavaScriptCodeWithScope(c) => {
                let depth = Self::deeper(depth, path)?;
                path.push("scope".to_owned());
                let scope = self.document(&c.scope, depth, path)?;
                path.pop();
                construct(&t.code, &[JsValue::from_str(&c.code), scope])?
            }
            Bson::MinKey => construct(&t.min_key, &[])?,
            Bson::MaxKey => construct(&t.max_key, &[])?,
            other @ Bson::DbPointer(_) => {
                let p = path.join(".");
                return Err(Failure::new(
                    "ERR_BSON_UNSUPPORTED_TYPE",
                    format!(
                        "element {p:?} has BSON type {:#04x}, which has no JavaScript form",
                        other.element_type() as u8
                    ),
                )
                .text("path", p)
                .num("elementType", f64::from(other.element_type() as u8)));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_pick_int32_only_when_exact() {
        assert_eq!(classify_number(5.0), NumberKind::Int32(5));
        assert_eq!(
            classify_number(-2_147_483_648.0),
            NumberKind::Int32(i32::MIN)
        );
        assert_eq!(
            classify_number(2_147_483_648.0),
            NumberKind::Double(2_147_483_648.0)
        );
        assert_eq!(classify_number(0.5), NumberKind::Double(0.5));
        assert!(matches!(classify_number(-0.0), NumberKind::Double(d) if d.is_sign_negative()));
        assert!(matches!(classify_number(f64::NAN), NumberKind::Double(d) if d.is_nan()));
        assert_eq!(
            classify_number(f64::INFINITY),
            NumberKind::Double(f64::INFINITY)
        );
    }

    #[test]
    fn bigints_follow_pybson_ranges() {
        assert_eq!(classify_bigint(5).unwrap(), BigKind::Int64(5));
        assert_eq!(
            classify_bigint(i128::from(i64::MIN)).unwrap(),
            BigKind::Int64(i64::MIN)
        );
        assert_eq!(
            classify_bigint(1 << 63).unwrap(),
            BigKind::Uint64(Timestamp {
                time: 0x8000_0000,
                increment: 0
            })
        );
        assert_eq!(
            classify_bigint(i128::from(u64::MAX)).unwrap(),
            BigKind::Uint64(Timestamp {
                time: u32::MAX,
                increment: u32::MAX
            })
        );
        let e = classify_bigint(1 << 64).unwrap_err();
        assert_eq!(e.code, "ERR_BSON_INT_RANGE");
        assert!(classify_bigint(i128::from(i64::MIN) - 1).is_err());
    }

    #[test]
    fn long_paths_are_shortened() {
        let parts: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(show_path(&parts[..2]), "0.1");
        assert_eq!(show_path(&[]), "(top level)");
        assert_eq!(
            show_path(&parts),
            "0.1.2.3.4.5...(8 more)...14.15.16.17.18.19"
        );
    }

    #[test]
    fn regex_flags_map_both_ways() {
        assert_eq!(regex_options_from_flags("gmi").unwrap(), "im");
        assert_eq!(regex_options_from_flags("suyd").unwrap(), "su");
        assert_eq!(
            regex_options_from_flags("v").unwrap_err().code,
            "ERR_BSON_ENCODE"
        );
        assert_eq!(flags_from_regex_options("ims").as_deref(), Some("ims"));
        assert_eq!(flags_from_regex_options("ix"), None);
        assert_eq!(flags_from_regex_options("l"), None);
    }
}
