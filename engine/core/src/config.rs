//! Typed configuration of runners and sensors: deserialising is validating.
//!
//! Every runner owns a `#[derive(Deserialize, JsonSchema)] #[serde(deny_unknown_fields)]`
//! struct for its settings in an action file (`cmd:`, `http:`...) and, when it reads
//! parameters, one for those; every sensor type owns one for its `config:`. Defaults and
//! `///` docs live on the struct, once. [`decode`] turns a JSON value into such a struct
//! and names the field that is wrong; the loader reports it at the field's
//! `path:line:col`. [`reference`] renders the reference documentation of a build's
//! runners and sensors from the same structs (`docs/reference/`).

use crate::model::Json;
use schemars::{JsonSchema, Schema};
use serde::de::DeserializeOwned;
use std::fmt::Write;

/// A value that does not deserialise into a component's configuration: the field (a
/// dotted path, empty for the value itself) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct ConfigError {
    /// Dotted path of the field, relative to the value decoded (`http.url`, `every`).
    pub field: String,
    /// What is wrong, as serde says it (`unknown field `x`, expected one of ...`).
    pub message: String,
}

impl ConfigError {
    /// The error as a `(field, message)` problem, the field prefixed with `prefix` (the
    /// position of the decoded value in its file, e.g. `config`).
    pub fn problem(&self, prefix: &str) -> (String, String) {
        let field = match (prefix.is_empty(), self.field.is_empty()) {
            (true, _) => self.field.clone(),
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{}", self.field),
        };
        (field, self.message.clone())
    }
}

/// Deserialise `T` from `value`, naming the field that is wrong. `null` counts as an
/// empty map, so a component whose settings all have defaults may be given none.
pub fn decode<T: DeserializeOwned>(value: &Json) -> Result<T, ConfigError> {
    let empty = Json::Object(Default::default());
    let value = if value.is_null() { &empty } else { value };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        // serde_path_to_error names an unknown key itself, so its position is the key's.
        let field = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        ConfigError { field, message }
    })
}

/// What the reference documentation says of one runner or sensor type.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// One or two sentences: what it does.
    pub summary: &'static str,
    /// Its settings: for a runner, the keys of an action file beyond the common ones;
    /// for a sensor, its `config:`.
    pub settings: Option<Schema>,
    /// The parameters a runner reads from an execution (`None` for sensors and for
    /// runners that take the action's own parameters).
    pub parameters: Option<Schema>,
}

impl Reference {
    /// A reference whose settings are `S`.
    pub fn settings<S: JsonSchema>(summary: &'static str) -> Reference {
        Reference {
            summary,
            settings: Some(schemars::schema_for!(S)),
            parameters: None,
        }
    }

    /// A reference of a runner without settings that reads the parameters `P`.
    pub fn parameters<P: JsonSchema>(summary: &'static str) -> Reference {
        Reference {
            summary,
            settings: None,
            parameters: Some(schemars::schema_for!(P)),
        }
    }

    /// This reference with the parameters `P`.
    pub fn with_parameters<P: JsonSchema>(mut self) -> Reference {
        self.parameters = Some(schemars::schema_for!(P));
        self
    }
}

/// Markdown for `items` (`(name, reference)`, in order) under the heading `title`.
pub fn reference(title: &str, intro: &str, items: &[(&str, Reference)]) -> String {
    let mut out = format!("# {title}\n\n{intro}\n");
    for (name, r) in items {
        let _ = write!(out, "\n## `{name}`\n\n{}\n", r.summary);
        if let Some(s) = &r.settings {
            out.push_str(&table("Settings", s));
        }
        if let Some(p) = &r.parameters {
            out.push_str(&table("Parameters", p));
        }
    }
    out
}

/// A table of the properties of an object schema (nested structs as `outer.inner`
/// rows), or nothing when it has none.
fn table(heading: &str, schema: &Schema) -> String {
    let defs = schema.get("$defs");
    let mut rows = String::new();
    properties(&mut rows, "", schema.as_value(), defs);
    if rows.is_empty() {
        return String::new();
    }
    format!("\n{heading}:\n\n| name | type | default | description |\n|---|---|---|---|\n{rows}")
}

/// One row per property of `object`, names prefixed with `prefix`.
fn properties(out: &mut String, prefix: &str, object: &Json, defs: Option<&Json>) {
    let Some(props) = object.get("properties").and_then(Json::as_object) else {
        return;
    };
    let required: Vec<&str> = object
        .get("required")
        .and_then(Json::as_array)
        .map(|r| r.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    for (name, p) in props {
        let p = resolve(p, defs);
        let default = match p.get("default").filter(|d| !d.is_null()) {
            Some(d) => format!("`{d}`"),
            None if required.contains(&name.as_str()) => "required".to_string(),
            None => "—".to_string(),
        };
        let description = p
            .get("description")
            .and_then(Json::as_str)
            .unwrap_or("")
            .replace("\n\n", "<br>")
            .replace('\n', " ")
            .replace('|', "\\|");
        let _ = writeln!(
            out,
            "| `{prefix}{name}` | {} | {default} | {description} |",
            type_of(&p, defs)
        );
        if let Some(inner) = struct_of(&p, defs) {
            properties(out, &format!("{prefix}{name}."), &inner, defs);
        }
    }
}

/// The struct schema behind `p` (itself, or the non-null alternative of an `Option`).
fn struct_of(p: &Json, defs: Option<&Json>) -> Option<Json> {
    if p.get("properties").is_some() {
        return Some(p.clone());
    }
    p.get("anyOf")
        .or_else(|| p.get("oneOf"))
        .and_then(Json::as_array)?
        .iter()
        .map(|a| resolve(a, defs))
        .find(|a| a.get("properties").is_some())
}

/// `p` itself, or the definition it refers to (keeping `p`'s own description/default).
fn resolve(p: &Json, defs: Option<&Json>) -> Json {
    let target = p
        .get("$ref")
        .and_then(Json::as_str)
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| defs?.get(name));
    match (target, p.as_object()) {
        (Some(Json::Object(t)), Some(own)) => {
            let mut merged = t.clone();
            merged.extend(
                own.iter()
                    .filter(|(k, _)| *k != "$ref")
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            Json::Object(merged)
        }
        _ => p.clone(),
    }
}

/// A short type name: `string`, `integer`, `string[]`, `map`, `a \| b`.
fn type_of(p: &Json, defs: Option<&Json>) -> String {
    if let Some(alts) = p
        .get("anyOf")
        .or_else(|| p.get("oneOf"))
        .and_then(Json::as_array)
    {
        let names: Vec<String> = alts
            .iter()
            .map(|a| type_of(&resolve(a, defs), defs))
            .filter(|t| t != "null")
            .collect();
        return names.join(" \\| ");
    }
    if let Some(values) = p.get("enum").and_then(Json::as_array) {
        let names: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
        return names.join(" \\| ");
    }
    if let Some(c) = p.get("const") {
        return format!("`{c}`");
    }
    let one = |t: &str| match t {
        "array" => {
            let item = p
                .get("items")
                .map(|i| type_of(&resolve(i, defs), defs))
                .unwrap_or_else(|| "any".into());
            format!("{item}[]")
        }
        "object" => "map".to_string(),
        other => other.to_string(),
    };
    match p.get("type") {
        Some(Json::String(t)) => one(t),
        Some(Json::Array(ts)) => ts
            .iter()
            .filter_map(Json::as_str)
            .filter(|t| *t != "null")
            .map(one)
            .collect::<Vec<_>>()
            .join(" \\| "),
        _ => "any".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    /// Settings of a made-up runner.
    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Example {
        /// The command to run.
        cmd: String,
        /// Seconds to wait.
        #[serde(default = "three")]
        wait: u32,
        /// Extra settings.
        #[serde(default)]
        nested: Option<Inner>,
    }

    /// Nested settings.
    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        /// A flag.
        flag: bool,
    }

    fn three() -> u32 {
        3
    }

    #[test]
    fn decoding_names_the_field_that_is_wrong() {
        let ok: Example = decode(&json!({"cmd": "true"})).unwrap();
        assert_eq!(ok.wait, 3);
        let e = decode::<Example>(&json!({"cmd": "x", "wiat": 1})).unwrap_err();
        assert_eq!(e.field, "wiat");
        assert!(e.message.contains("unknown field `wiat`"), "{e}");
        assert!(e.message.contains("`wait`"), "{e}");
        let e = decode::<Example>(&json!({"cmd": "x", "nested": {"flag": "yes"}})).unwrap_err();
        assert_eq!(e.field, "nested.flag");
        assert_eq!(e.problem("config").0, "config.nested.flag");
        let e = decode::<Example>(&Json::Null).unwrap_err();
        assert!(e.message.contains("missing field `cmd`"), "{e}");
    }

    #[test]
    fn the_reference_lists_fields_with_types_defaults_and_docs() {
        let md = reference(
            "Runners",
            "Made up.",
            &[(
                "example",
                Reference::settings::<Example>("Runs an example."),
            )],
        );
        assert!(md.contains("## `example`\n\nRuns an example."), "{md}");
        assert!(
            md.contains("| `cmd` | string | required | The command to run. |"),
            "{md}"
        );
        assert!(
            md.contains("| `wait` | integer | `3` | Seconds to wait. |"),
            "{md}"
        );
        assert!(
            md.contains("| `nested` | Inner | — |") || md.contains("| `nested` | map | — |"),
            "{md}"
        );
    }
}
