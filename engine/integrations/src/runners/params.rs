//! A runner's parameters as its own typed struct (`#[derive(Deserialize, JsonSchema)]`,
//! defaults and docs on the struct), shared by the Kubernetes, Consul, Vault and AWS
//! runners: [`decode`] reads them, naming the parameter that is wrong, and [`reference`]
//! documents them.

use super::RunContext;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use squall_core::config::Reference;
use squall_core::model::Json;

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
