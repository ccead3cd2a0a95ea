//! Conversions between `serde_json::Value` and `rhai::Dynamic`.
//!
//! JSON → rhai: null → `()`, booleans, integers that fit `i64` → `i64` (others → `f64`),
//! floats → `f64`, strings, arrays, objects → maps. rhai → JSON: `()` → null, `i64` stays an
//! integer, a float that is not finite → null, `char` → one-character string, blobs → arrays
//! of bytes; function pointers, timestamps and custom types are errors.

use rhai::{Array, Blob, Dynamic, ImmutableString, Map};
use serde_json::{Map as JsonMap, Number, Value};

/// Nesting deeper than this is refused when converting to JSON (keeps the recursion bounded;
/// a script can build a deeply nested array in a loop).
const MAX_DEPTH: usize = 200;

/// Convert a JSON value to a rhai value. Never fails.
pub(crate) fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.as_str().into(), to_dynamic(v));
            }
            Dynamic::from_map(out)
        }
    }
}

/// Why a rhai value has no JSON form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ToJsonError {
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A function pointer, timestamp or custom type.
    #[error("a value of type `{0}` cannot be converted to JSON")]
    Unsupported(String),
}

impl From<ToJsonError> for super::ExprError {
    fn from(e: ToJsonError) -> Self {
        super::ExprError::plain(e.to_string())
    }
}

/// Convert a rhai value to JSON; Err names the type that has no JSON form.
pub(crate) fn to_json(value: &Dynamic) -> Result<Value, ToJsonError> {
    to_json_at(value, 0)
}

fn to_json_at(value: &Dynamic, depth: usize) -> Result<Value, ToJsonError> {
    if depth > MAX_DEPTH {
        return Err(ToJsonError::TooDeep);
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = value.as_float() {
        return Ok(Number::from_f64(f).map_or(Value::Null, Value::Number));
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(items) = value.read_lock::<Array>() {
        return items
            .iter()
            .map(|v| to_json_at(v, depth + 1))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if let Some(map) = value.read_lock::<Map>() {
        let mut out = JsonMap::with_capacity(map.len());
        for (k, v) in map.iter() {
            out.insert(k.to_string(), to_json_at(v, depth + 1)?);
        }
        return Ok(Value::Object(out));
    }
    if let Some(blob) = value.read_lock::<Blob>() {
        return Ok(Value::Array(
            blob.iter().map(|b| Value::Number((*b).into())).collect(),
        ));
    }
    Err(ToJsonError::Unsupported(value.type_name().to_string()))
}

/// Short human name of a value's type, for error messages.
pub(crate) fn kind(value: &Dynamic) -> &'static str {
    if value.is_unit() {
        "()"
    } else if value.is_bool() {
        "boolean"
    } else if value.is_int() {
        "integer"
    } else if value.is_float() {
        "float"
    } else if value.is_string() {
        "string"
    } else if value.is_char() {
        "char"
    } else if value.is_array() {
        "array"
    } else if value.is_map() {
        "map"
    } else {
        "value"
    }
}

/// Compact JSON of a value for error messages, cut at 100 characters.
pub(crate) fn preview(value: &Dynamic) -> String {
    let text = match to_json(value) {
        Ok(v) => v.to_string(),
        Err(_) => value.to_string(),
    };
    if text.chars().count() > 100 {
        let cut: String = text.chars().take(100).collect();
        format!("{cut}...")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip_keeps_types() {
        let v = json!({"i": 3, "f": 1.5, "s": "x", "b": true, "n": null, "a": [1, "2", [3]], "m": {"k": {}}});
        let back = to_json(&to_dynamic(&v)).unwrap();
        assert_eq!(back, v);
        assert!(back["i"].is_i64());
        assert!(back["f"].is_f64());
    }

    #[test]
    fn huge_unsigned_becomes_float() {
        let v = json!(u64::MAX);
        assert!(to_dynamic(&v).is_float());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut d = Dynamic::from_array(vec![]);
        for _ in 0..(MAX_DEPTH + 5) {
            d = Dynamic::from_array(vec![d]);
        }
        assert!(to_json(&d)
            .unwrap_err()
            .to_string()
            .contains("nested deeper"));
    }

    #[test]
    fn non_json_types_are_errors() {
        let f = Dynamic::from(rhai::FnPtr::new("x").unwrap());
        assert!(to_json(&f)
            .unwrap_err()
            .to_string()
            .contains("cannot be converted"));
        assert_eq!(
            to_json(&Dynamic::from_float(f64::NAN)).unwrap(),
            Value::Null
        );
        assert_eq!(to_json(&Dynamic::from_char('c')).unwrap(), json!("c"));
    }
}
