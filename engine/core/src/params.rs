//! Parameter schemas: checking a schema when content loads, validating and completing the
//! parameters of an execution, coercing `k=v` command-line values, and masking secrets.

use crate::model::{Json, ParamSpec, ParamType, MASK};
use indexmap::IndexMap;
use serde_json::Map;

/// Ordered parameter schema, as written in YAML.
pub type Schema = IndexMap<String, ParamSpec>;

/// A parameter that does not fit its schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("parameter `{name}`: {message}")]
pub struct ParamError {
    /// Dotted name of the parameter (`tags.owner`, `hosts.2`).
    pub name: String,
    /// What is wrong and what is expected.
    pub message: String,
}

fn err(name: &str, message: impl Into<String>) -> ParamError {
    ParamError {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Problems with a schema itself, as `(field path inside the schema, message)`.
pub fn check_schema(schema: &Schema) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, spec) in schema {
        check_spec(name, spec, &mut out);
    }
    out
}

fn check_spec(path: &str, spec: &ParamSpec, out: &mut Vec<(String, String)>) {
    if let Some(p) = &spec.pattern {
        if let Err(e) = regex::Regex::new(p) {
            out.push((
                format!("{path}.pattern"),
                format!("invalid regular expression: {e}"),
            ));
        }
    }
    if let (Some(min), Some(max)) = (spec.minimum, spec.maximum) {
        if min > max {
            out.push((
                format!("{path}.minimum"),
                format!("minimum {min} is above maximum {max}"),
            ));
        }
    }
    if let Some(default) = &spec.default {
        if let Err(e) = check_value(path, spec, default) {
            out.push((
                format!("{path}.default"),
                format!("default does not fit the schema: {}", e.message),
            ));
        }
    }
    if let Some(allowed) = &spec.allowed {
        for (i, v) in allowed.iter().enumerate() {
            if let Some(t) = spec.kind {
                if !type_matches(t, v) {
                    out.push((
                        format!("{path}.enum.{i}"),
                        format!("{v} is not of type {}", t.as_str()),
                    ));
                }
            }
        }
    }
    if spec.immutable && spec.default.is_none() {
        out.push((
            format!("{path}.immutable"),
            "an immutable parameter needs a default".to_string(),
        ));
    }
    if let Some(items) = &spec.items {
        check_spec(&format!("{path}.items"), items, out);
    }
    if let Some(props) = &spec.properties {
        for (k, s) in props {
            check_spec(&format!("{path}.properties.{k}"), s, out);
        }
    }
}

fn type_matches(t: ParamType, v: &Json) -> bool {
    match t {
        ParamType::String => v.is_string(),
        ParamType::Integer => v.is_i64() || v.is_u64(),
        ParamType::Number => v.is_number(),
        ParamType::Boolean => v.is_boolean(),
        ParamType::Array => v.is_array(),
        ParamType::Object => v.is_object(),
        ParamType::Null => v.is_null(),
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "number",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Check one value against its spec (types, enum, bounds, pattern, items, properties).
pub fn check_value(name: &str, spec: &ParamSpec, v: &Json) -> Result<(), ParamError> {
    if let Some(t) = spec.kind {
        // null is accepted for an optional parameter of any type: it means "not given".
        if !type_matches(t, v) && (!v.is_null() || spec.required) {
            return Err(err(
                name,
                format!("expected {}, got {} {}", t.as_str(), type_name(v), short(v)),
            ));
        }
    }
    if let Some(allowed) = &spec.allowed {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            return Err(err(
                name,
                format!("{} is not one of [{}]", short(v), list.join(", ")),
            ));
        }
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = spec.minimum {
            if n < min {
                return Err(err(name, format!("{n} is below the minimum {min}")));
            }
        }
        if let Some(max) = spec.maximum {
            if n > max {
                return Err(err(name, format!("{n} is above the maximum {max}")));
            }
        }
    }
    if let (Some(p), Some(s)) = (&spec.pattern, v.as_str()) {
        let re = regex::Regex::new(p).map_err(|e| err(name, format!("invalid pattern: {e}")))?;
        if !re.is_match(s) {
            return Err(err(
                name,
                format!("{} does not match the pattern {p}", short(v)),
            ));
        }
    }
    if let (Some(items), Some(arr)) = (&spec.items, v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check_value(&format!("{name}.{i}"), items, item)?;
        }
    }
    if let (Some(props), Some(obj)) = (&spec.properties, v.as_object()) {
        for (k, s) in props {
            match obj.get(k) {
                Some(pv) => check_value(&format!("{name}.{k}"), s, pv)?,
                None if s.required && s.default.is_none() => {
                    return Err(err(&format!("{name}.{k}"), "is required"))
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// A value for messages: secrets never reach here (callers mask first), long values are cut.
fn short(v: &Json) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let mut end = 57;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Validate `given` against `schema` and fill defaults. Unknown parameters, missing
/// required ones, overridden immutable ones and values of the wrong shape are errors.
pub fn validate(schema: &Schema, given: &Json) -> Result<Json, ParamError> {
    let empty = Map::new();
    let given = match given {
        Json::Object(m) => m,
        Json::Null => &empty,
        other => {
            return Err(err(
                "",
                format!(
                    "parameters must be a map of name: value, got {}",
                    type_name(other)
                ),
            ))
        }
    };
    for name in given.keys() {
        if !schema.contains_key(name) {
            let known: Vec<&str> = schema.keys().map(String::as_str).collect();
            return Err(err(
                name,
                if known.is_empty() {
                    "unknown parameter: this action takes no parameters".to_string()
                } else {
                    format!("unknown parameter; this action takes: {}", known.join(", "))
                },
            ));
        }
    }
    let mut out = Map::new();
    for (name, spec) in schema {
        let value = match given.get(name) {
            Some(v) if spec.immutable => {
                if Some(v) != spec.default.as_ref() {
                    return Err(err(name, "is immutable and cannot be overridden"));
                }
                v.clone()
            }
            Some(Json::Null) if spec.default.is_some() => spec.default.clone().unwrap_or_default(),
            Some(v) => v.clone(),
            None => match &spec.default {
                Some(d) => d.clone(),
                None if spec.required => {
                    return Err(err(name, "is required"));
                }
                None => continue,
            },
        };
        let shown = if spec.secret {
            Json::String(MASK.into())
        } else {
            value.clone()
        };
        check_value(name, spec, &value).map_err(|e| {
            // Never echo a secret value in the message.
            if spec.secret {
                err(
                    &e.name,
                    e.message.replace(&short(&value), &shown.to_string()),
                )
            } else {
                e
            }
        })?;
        register_spec(spec, &value);
        out.insert(name.clone(), value);
    }
    Ok(Json::Object(out))
}

/// Register the values of `secret: true` parameters as secrets (after a restart, for
/// parameters read back from the store).
pub fn register_secrets(schema: &Schema, params: &Json) {
    for (name, spec) in schema {
        if let Some(v) = params.get(name) {
            register_spec(spec, v);
        }
    }
}

/// Register `value` as secret when `spec` says so, and the parts of it that nested specs
/// (`properties`, `items`) mark `secret: true`.
fn register_spec(spec: &ParamSpec, value: &Json) {
    if spec.secret {
        crate::secrets::register_json(value);
        return;
    }
    match value {
        Json::Object(map) => {
            for (k, s) in spec.properties.iter().flatten() {
                if let Some(v) = map.get(k) {
                    register_spec(s, v);
                }
            }
        }
        Json::Array(items) => {
            if let Some(s) = &spec.items {
                items.iter().for_each(|v| register_spec(s, v));
            }
        }
        _ => {}
    }
}

/// Copy of `params` with every `secret: true` parameter replaced by the mask — a whole
/// object or array when the parameter is one, and nested `properties`/`items` marked
/// secret too — and any other known secret value masked.
pub fn mask(schema: &Schema, params: &Json) -> Json {
    let mut masked = params.clone();
    if let Json::Object(map) = &mut masked {
        for (name, spec) in schema {
            if let Some(v) = map.get_mut(name) {
                mask_spec(spec, v);
            }
        }
    }
    crate::secrets::mask_json(&masked)
}

/// Replace the parts of `value` that `spec` marks secret with the mask.
fn mask_spec(spec: &ParamSpec, value: &mut Json) {
    if spec.secret {
        if !value.is_null() {
            *value = Json::String(MASK.into());
        }
        return;
    }
    match value {
        Json::Object(map) => {
            for (k, s) in spec.properties.iter().flatten() {
                if let Some(v) = map.get_mut(k) {
                    mask_spec(s, v);
                }
            }
        }
        Json::Array(items) => {
            if let Some(s) = &spec.items {
                items.iter_mut().for_each(|v| mask_spec(s, v));
            }
        }
        _ => {}
    }
}

/// Turn command-line `k=v` arguments into a parameter object, coercing each value by the
/// declared type (`count=3`, `dry_run=true`, `hosts='["a","b"]'`). Undeclared names keep
/// the value as a string (validation then reports them).
pub fn from_kv(schema: &Schema, args: &[String]) -> Result<Map<String, Json>, ParamError> {
    let mut out = Map::new();
    for arg in args {
        let (k, v) = arg.split_once('=').ok_or_else(|| {
            err(
                arg,
                "expected name=value (for example count=3 or hosts='[\"a\",\"b\"]')",
            )
        })?;
        let k = k.trim();
        let value = coerce(k, schema.get(k).and_then(|s| s.kind), v)?;
        out.insert(k.to_string(), value);
    }
    Ok(out)
}

fn coerce(name: &str, kind: Option<ParamType>, raw: &str) -> Result<Json, ParamError> {
    let bad = |what: &str| err(name, format!("{raw:?} is not {what}"));
    Ok(match kind {
        Some(ParamType::String) => Json::String(raw.to_string()),
        Some(ParamType::Integer) => {
            Json::from(raw.trim().parse::<i64>().map_err(|_| bad("an integer"))?)
        }
        Some(ParamType::Number) => {
            let n: f64 = raw.trim().parse().map_err(|_| bad("a number"))?;
            serde_json::Number::from_f64(n)
                .map(Json::Number)
                .ok_or_else(|| bad("a finite number"))?
        }
        Some(ParamType::Boolean) => match raw.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" | "on" => Json::Bool(true),
            "false" | "no" | "0" | "off" => Json::Bool(false),
            _ => return Err(bad("a boolean (true/false)")),
        },
        Some(ParamType::Array) => {
            let t = raw.trim();
            if t.starts_with('[') {
                let v: Json = serde_json::from_str(t)
                    .map_err(|e| err(name, format!("invalid JSON array: {e}")))?;
                v
            } else {
                // a,b,c is the StackStorm shorthand for a list of strings.
                Json::Array(
                    t.split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| Json::String(s.trim().to_string()))
                        .collect(),
                )
            }
        }
        Some(ParamType::Object) => {
            serde_json::from_str(raw).map_err(|e| err(name, format!("invalid JSON object: {e}")))?
        }
        Some(ParamType::Null) => Json::Null,
        // No declared type: JSON if it parses as a structured value, else a string.
        None => match serde_json::from_str::<Json>(raw) {
            Ok(v) if v.is_object() || v.is_array() => v,
            _ => Json::String(raw.to_string()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(y: &str) -> Schema {
        serde_yaml::from_str(y).unwrap()
    }

    #[test]
    fn fills_defaults_and_checks_types() {
        let s = schema("name: {type: string, required: true}\ncount: {type: integer, default: 2, minimum: 1}\n");
        assert_eq!(
            validate(&s, &json!({"name": "a"})).unwrap(),
            json!({"name": "a", "count": 2})
        );
        let e = validate(&s, &json!({"name": "a", "count": "x"})).unwrap_err();
        assert_eq!(e.name, "count");
        assert!(e.message.contains("expected integer"), "{e}");
        let e = validate(&s, &json!({})).unwrap_err();
        assert_eq!(e.to_string(), "parameter `name`: is required");
        let e = validate(&s, &json!({"name": "a", "cnt": 1})).unwrap_err();
        assert!(e.message.contains("unknown parameter"), "{e}");
        let e = validate(&s, &json!({"name": "a", "count": 0})).unwrap_err();
        assert!(e.message.contains("below the minimum"), "{e}");
    }

    #[test]
    fn enum_pattern_items_and_immutable() {
        let s = schema(
            "engine: {type: string, enum: [postgres, mysql]}\nid: {type: string, pattern: '^[a-z]+$'}\nhosts: {type: array, items: {type: string}}\nv: {type: integer, default: 1, immutable: true}\n",
        );
        assert!(validate(&s, &json!({"engine": "oracle"}))
            .unwrap_err()
            .message
            .contains("not one of"));
        assert!(validate(&s, &json!({"id": "A1"}))
            .unwrap_err()
            .message
            .contains("pattern"));
        assert_eq!(
            validate(&s, &json!({"hosts": ["a", 1]})).unwrap_err().name,
            "hosts.1"
        );
        assert!(validate(&s, &json!({"v": 2}))
            .unwrap_err()
            .message
            .contains("immutable"));
    }

    #[test]
    fn secret_values_never_appear_in_errors_or_masked_copies() {
        let s = schema("password: {type: integer, secret: true}\n");
        let e = validate(&s, &json!({"password": "topsecretvalue"})).unwrap_err();
        assert!(!e.to_string().contains("topsecretvalue"), "{e}");
        let s = schema("password: {type: string, secret: true}\nuser: {type: string}\n");
        let p = validate(&s, &json!({"password": "pw-value-123", "user": "bob"})).unwrap();
        assert_eq!(mask(&s, &p), json!({"password": MASK, "user": "bob"}));
    }

    #[test]
    fn a_secret_object_is_masked_whole_and_nested_secrets_are_masked_too() {
        let s = schema(
            "data: {type: object, secret: true}
path: {type: string}
approle:
  type: object
  properties:
    role_id: {type: string}
    secret_id: {type: string, secret: true}
",
        );
        let given = json!({
            "data": {"username": "dbadmin-4c2a", "password": "obj-secret-77a1", "port": 5432},
            "path": "app/db",
            "approle": {"role_id": "role-9", "secret_id": "nested-secret-31b"},
        });
        let p = validate(&s, &given).unwrap();
        assert_eq!(
            mask(&s, &p),
            json!({"data": MASK, "path": "app/db", "approle": {"role_id": "role-9", "secret_id": MASK}})
        );
        // Every string inside the object is known as secret wherever it travels next.
        assert_eq!(
            crate::secrets::mask_str("u=dbadmin-4c2a p=obj-secret-77a1 s=nested-secret-31b"),
            format!("u={MASK} p={MASK} s={MASK}")
        );
    }

    #[test]
    fn kv_arguments_are_coerced_by_declared_type() {
        let s = schema("count: {type: integer}\ndry_run: {type: boolean}\nhosts: {type: array}\nname: {type: string}\nratio: {type: number}\n");
        let args: Vec<String> = [
            "count=3",
            "dry_run=true",
            "hosts=[\"a\",\"b\"]",
            "name=42",
            "ratio=0.5",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = from_kv(&s, &args).unwrap();
        assert_eq!(
            Json::Object(m),
            json!({"count": 3, "dry_run": true, "hosts": ["a", "b"], "name": "42", "ratio": 0.5})
        );
        let e = from_kv(&s, &["count=three".to_string()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter `count`: \"three\" is not an integer"
        );
        assert!(from_kv(&s, &["novalue".to_string()]).is_err());
    }

    #[test]
    fn schema_problems_are_reported_with_their_field() {
        let s = schema("a: {type: integer, default: x}\nb: {type: string, pattern: '('}\n");
        let p = check_schema(&s);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "a.default");
        assert_eq!(p[1].0, "b.pattern");
    }
}
