//! A runner's parameters as its own typed struct (`#[derive(Deserialize, JsonSchema)]`,
//! defaults and docs on the struct), shared by the Kubernetes, Consul, Vault and AWS
//! runners: [`decode`] reads them, naming the parameter that is wrong, and [`reference`]
//! documents them.

use super::RunContext;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use squall_core::config::ConfigError;
use squall_core::model::Json;

/// Parameters that do not decode into a runner's parameter struct.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ParamError {
    /// A required parameter is absent (or null, or empty); `doc` is its `///` doc.
    #[error("parameter `{name}` is required{}", doc.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Missing { name: String, doc: Option<String> },
    /// A parameter has the wrong type or value.
    #[error("parameter `{}`: {}", source.field, source.message)]
    Invalid {
        #[source]
        source: ConfigError,
    },
    /// The parameters as a whole are wrong.
    #[error("parameters: {}", source.message)]
    Whole {
        #[source]
        source: ConfigError,
    },
}

/// At the runner boundary a parameter error is the execution's failure message.
impl From<ParamError> for String {
    fn from(e: ParamError) -> String {
        e.to_string()
    }
}

/// Decode the parameters of `ctx` into a runner's parameter struct. A parameter that is
/// null or an empty string counts as absent (a template over an unset optional parameter
/// renders to one), so its default applies; errors name the parameter
/// (`parameter `name` is required: Object name.`, `parameter `limit`: invalid type: ...`).
pub(crate) fn decode<T: DeserializeOwned + JsonSchema>(ctx: &RunContext) -> Result<T, ParamError> {
    let mut params = ctx.parameters.as_object().cloned().unwrap_or_default();
    params.retain(|_, v| !(v.is_null() || v.as_str().is_some_and(str::is_empty)));
    squall_core::config::decode(&Json::Object(params)).map_err(|e| {
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
            .map(str::to_string);
        match missing {
            Some(name) if e.field.is_empty() => ParamError::Missing {
                doc: described::<T>(&name),
                name,
            },
            Some(name) => ParamError::Missing {
                name: format!("{}.{name}", e.field),
                doc: None,
            },
            None if e.field.is_empty() => ParamError::Whole { source: e },
            None => ParamError::Invalid { source: e },
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    /// Parameters of a made-up runner.
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Example {
        /// Object name.
        name: String,
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
        /// Whether to wait.
        #[serde(default)]
        wait: bool,
    }

    #[test]
    fn errors_name_the_parameter_and_quote_its_doc() {
        let missing = ParamError::Missing {
            name: "name".into(),
            doc: described::<Example>("name"),
        };
        assert_eq!(
            missing.to_string(),
            "parameter `name` is required: Object name."
        );
        let e =
            squall_core::config::decode::<Example>(&json!({"name": "x", "limit": -1})).unwrap_err();
        let invalid = ParamError::Invalid { source: e };
        assert!(
            invalid.to_string().starts_with("parameter `limit`: "),
            "{invalid}"
        );
        assert!(std::error::Error::source(&invalid).is_some());
        let ok: Example = squall_core::config::decode(&json!({"name": "x", "wait": true})).unwrap();
        assert!(ok.name == "x" && ok.wait && ok.limit.is_none());
    }
}
