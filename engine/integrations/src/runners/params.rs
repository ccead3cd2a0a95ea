//! Typed access to a runner's parameter object, shared by the runners that read their
//! parameters field by field (Kubernetes, Consul, Vault, AWS). Errors name the parameter.

use super::RunContext;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Map;
use squall_core::config::Reference;
use squall_core::model::Json;

/// Typed access to the parameter object.
pub(crate) struct Params<'a>(pub &'a Map<String, Json>);

impl<'a> Params<'a> {
    /// The parameters of `ctx` (an empty map when they are not an object).
    pub fn of(ctx: &'a RunContext) -> Params<'a> {
        static EMPTY: std::sync::OnceLock<Map<String, Json>> = std::sync::OnceLock::new();
        Params(
            ctx.parameters
                .as_object()
                .unwrap_or_else(|| EMPTY.get_or_init(Map::new)),
        )
    }

    /// A value that is present and not null.
    pub fn value(&self, key: &str) -> Option<&'a Json> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    /// An optional non-empty string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.value(key) {
            None => Ok(None),
            Some(Json::String(s)) if s.is_empty() => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(other) => Err(format!("parameter `{key}` must be a string, got {other}")),
        }
    }

    /// A required non-empty string.
    pub fn str(&self, key: &str) -> Result<&'a str, String> {
        self.opt_str(key)?
            .ok_or_else(|| format!("parameter `{key}` is required"))
    }

    /// A boolean, `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.value(key) {
            None => Ok(default),
            Some(Json::Bool(b)) => Ok(*b),
            Some(other) => Err(format!(
                "parameter `{key}` must be true or false, got {other}"
            )),
        }
    }

    /// A non-negative number, `default` when absent.
    pub fn number(&self, key: &str, default: Option<f64>) -> Result<Option<f64>, String> {
        match self.value(key) {
            None => Ok(default),
            Some(v) => match v.as_f64() {
                Some(n) if n >= 0.0 && n.is_finite() => Ok(Some(n)),
                _ => Err(format!(
                    "parameter `{key}` must be a non-negative number, got {v}"
                )),
            },
        }
    }

    /// A non-negative integer, when present.
    pub fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if n >= 0 => Ok(Some(n)),
                _ => Err(format!(
                    "parameter `{key}` must be a non-negative integer, got {v}"
                )),
            },
        }
    }
}

/// Decode the parameters of `ctx` into a runner's parameter struct. A parameter that is
/// null or an empty string counts as absent (a template over an unset optional parameter
/// renders to one), so its default applies; errors name the parameter
/// (`parameter `name` is required`, `parameter `limit`: invalid type: ...`).
pub(crate) fn decode<T: DeserializeOwned + JsonSchema>(ctx: &RunContext) -> Result<T, String> {
    let mut params = ctx.parameters.as_object().cloned().unwrap_or_default();
    params.retain(|_, v| !(v.is_null() || v.as_str().is_some_and(str::is_empty)));
    squall_core::config::decode(&Json::Object(params)).map_err(|e| {
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'));
        match (missing, e.field.is_empty()) {
            (Some(name), true) => match described::<T>(name) {
                Some(d) => format!("parameter `{name}` is required: {d}"),
                None => format!("parameter `{name}` is required"),
            },
            (Some(name), false) => format!("parameter `{}.{name}` is required", e.field),
            (None, true) => format!("parameters: {}", e.message),
            (None, false) => format!("parameter `{}`: {}", e.field, e.message),
        }
    })
}

/// The description of the parameter `name` of `T`, as its `///` doc says.
fn described<T: JsonSchema>(name: &str) -> Option<String> {
    let schema = schemars::schema_for!(T);
    let d = schema
        .get("properties")?
        .get(name)?
        .get("description")?
        .as_str()?;
    Some(d.replace('\n', " "))
}

/// The reference of a runner that takes no settings and reads the parameters `P`.
pub(crate) fn reference<P: JsonSchema>(summary: &'static str) -> Reference {
    Reference {
        summary,
        settings: None,
        parameters: Some(schemars::schema_for!(P)),
    }
}
