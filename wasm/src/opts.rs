//! Reading option objects and numeric arguments passed from JavaScript.

use js_sys::Reflect;
use wasm_bindgen::{JsCast, JsValue};

use crate::error::Failure;

/// The largest integer a JS `number` holds exactly (2⁵³ − 1).
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JS number that must be an integer in `0 ..= 2^53 - 1`.
pub fn to_u64(value: f64, what: &str) -> Result<u64, Failure> {
    if value.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&value) {
        Ok(value as u64)
    } else {
        Err(Failure::argument(format!(
            "{what} must be an integer from 0 to 2^53-1, not {value}"
        )))
    }
}

/// A JS time in milliseconds (`performance.now()`, `Date.now()`), finite
/// and not negative, as microseconds.
pub fn millis_to_micros(ms: f64, what: &str) -> Result<u64, Failure> {
    if ms.is_finite() && ms >= 0.0 && ms * 1000.0 <= MAX_SAFE_INTEGER {
        Ok((ms * 1000.0).round() as u64)
    } else {
        Err(Failure::argument(format!(
            "{what} must be a finite, non-negative number of milliseconds, not {ms}"
        )))
    }
}

/// Reads option objects: `undefined`/`null` means "no options".
pub struct Options<'a> {
    obj: Option<&'a JsValue>,
    /// Name of the object, for error messages.
    pub name: &'static str,
}

impl<'a> Options<'a> {
    /// Options in `obj`; fails if it is neither an object nor `undefined`/`null`.
    pub fn new(obj: &'a JsValue, name: &'static str) -> Result<Self, Failure> {
        if obj.is_undefined() || obj.is_null() {
            Ok(Options { obj: None, name })
        } else if obj.is_object() {
            Ok(Options {
                obj: Some(obj),
                name,
            })
        } else {
            Err(Failure::argument(format!("{name} must be an object")))
        }
    }

    fn raw(&self, key: &str) -> Option<JsValue> {
        let obj = self.obj?;
        let v = Reflect::get(obj, &JsValue::from_str(key)).ok()?;
        (!v.is_undefined()).then_some(v)
    }

    /// A non-negative integer option.
    pub fn usize(&self, key: &str) -> Result<Option<usize>, Failure> {
        self.raw(key)
            .map(|v| match v.as_f64() {
                Some(x) => to_u64(x, &format!("{}.{key}", self.name)).map(|u| u as usize),
                None => Err(Failure::argument(format!(
                    "{}.{key} must be a number",
                    self.name
                ))),
            })
            .transpose()
    }

    /// An integer option (may be negative).
    pub fn i64(&self, key: &str) -> Result<Option<i64>, Failure> {
        self.raw(key)
            .map(|v| match v.as_f64() {
                Some(x) if x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER => Ok(x as i64),
                _ => Err(Failure::argument(format!(
                    "{}.{key} must be an integer",
                    self.name
                ))),
            })
            .transpose()
    }

    /// A boolean option.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Failure> {
        self.raw(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    Failure::argument(format!("{}.{key} must be a boolean", self.name))
                })
            })
            .transpose()
    }

    /// A string option.
    pub fn string(&self, key: &str) -> Result<Option<String>, Failure> {
        self.raw(key)
            .map(|v| {
                v.as_string().ok_or_else(|| {
                    Failure::argument(format!("{}.{key} must be a string", self.name))
                })
            })
            .transpose()
    }

    /// A byte-string option: a string (UTF-8) or a `Uint8Array`.
    pub fn bytes(&self, key: &str) -> Result<Option<Vec<u8>>, Failure> {
        self.raw(key)
            .map(|v| {
                if let Some(s) = v.as_string() {
                    Ok(s.into_bytes())
                } else if v.is_instance_of::<js_sys::Uint8Array>() {
                    Ok(js_sys::Uint8Array::new(&v).to_vec())
                } else {
                    Err(Failure::argument(format!(
                        "{}.{key} must be a string or a Uint8Array",
                        self.name
                    )))
                }
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_checked() {
        assert_eq!(to_u64(3.0, "x").unwrap(), 3);
        assert_eq!(to_u64(MAX_SAFE_INTEGER, "x").unwrap(), (1 << 53) - 1);
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, MAX_SAFE_INTEGER + 2.0] {
            let e = to_u64(bad, "tag").unwrap_err();
            assert_eq!(e.code, "ERR_INVALID_ARGUMENT");
            assert!(e.message.starts_with("tag must be"), "{}", e.message);
        }
    }

    #[test]
    fn millis_become_micros() {
        assert_eq!(millis_to_micros(1.5, "now").unwrap(), 1500);
        assert_eq!(millis_to_micros(0.0004, "now").unwrap(), 0);
        assert!(millis_to_micros(-1.0, "now").is_err());
        assert!(millis_to_micros(f64::NAN, "now").is_err());
    }
}
