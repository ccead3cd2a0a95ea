//! Typed access to a runner's parameter object, shared by the runners that read their
//! parameters field by field (Kubernetes, Consul, Vault, AWS). Errors name the parameter.

use super::RunContext;
use serde_json::Map;
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
