//! `consul.*`: Consul's key/value store over Consul's HTTP API (`/v1/kv`).
//!
//! | runner | does |
//! |---|---|
//! | `consul.kv_put` | write one key (optionally check-and-set) |
//! | `consul.kv_get` | read one key, every key under a prefix (`recurse`), or key names (`keys`) |
//! | `consul.kv_delete` | delete one key (optionally check-and-set) or a prefix (`recurse`) |
//!
//! # Configuration (`config/consul.yaml`)
//!
//! `address` (default `http://127.0.0.1:8500`), `token` (ACL token, sent as
//! `X-Consul-Token`; secret), `datacenter` (optional; the agent's own when absent),
//! `timeout` (seconds per request, default 10). Every action also takes `datacenter`.
//!
//! # Values
//!
//! `kv_put` stores a string value as is and any other value JSON-encoded. Consul returns
//! values base64-encoded; `kv_get` decodes them to text (a value that is not UTF-8 comes
//! back base64-encoded with `binary: true`), and with `json: true` parses the text as JSON.
//!
//! # Errors
//!
//! Consul's own message with the HTTP status, e.g. `consul: GET kv/app/db: 403: Permission
//! denied: ...`; a CAS conflict names the key, the `cas` given and the key's current
//! `ModifyIndex`; an agent that cannot be reached gives `cannot reach Consul at ADDR:
//! connection refused`. The token never appears in results, errors or logs.

use super::params::decode;
use super::rest::{config_str, path_param, Endpoint, Reply};
use super::{Outcome, RunContext, Runner};
use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use squall_core::model::Json;
use std::sync::Arc;

/// Address used when `config/consul.yaml` has none.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";

/// Every consul runner, for [`super::Registry::builtin`].
pub fn runners() -> Vec<Arc<dyn Runner>> {
    vec![Arc::new(KvPut), Arc::new(KvGet), Arc::new(KvDelete)]
}

squall_core::work_runner!(
    /// `consul.kv_put`: write a key. Result `{key, written: true}`.
    KvPut, "consul.kv_put", put, PutParams,
    "Writes a Consul key (strings as is, other values JSON-encoded), optionally as a check-and-set; the result is `{key, written: true}`."
);
squall_core::work_runner!(
    /// `consul.kv_get`: read a key, a prefix (`recurse`) or key names (`keys`).
    KvGet, "consul.kv_get", get, GetParams,
    "Reads a Consul key, every key under a prefix (`recurse`) or only key names (`keys`)."
);
squall_core::work_runner!(
    /// `consul.kv_delete`: delete a key or a prefix. Result `{key, deleted}`.
    KvDelete, "consul.kv_delete", delete, DeleteParams,
    "Deletes a Consul key (a check-and-set with `cas`) or every key under a prefix (`recurse`); the result is `{key, deleted}`."
);

/// Parameters of `consul.kv_put` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    /// The key, e.g. `dbaas/prod/orders/endpoint` (a leading `/` is dropped).
    pub key: String,
    /// The value: a string is stored as is, anything else JSON-encoded; an empty value
    /// when absent.
    #[serde(default)]
    pub value: Option<Json>,
    /// Write only if the key's ModifyIndex is this (0: only if the key does not exist).
    #[serde(default)]
    pub cas: Option<u64>,
    /// An opaque unsigned integer stored with the key.
    #[serde(default)]
    pub flags: Option<u64>,
    /// The datacenter; `config/consul.yaml`'s, else the agent's own, when absent.
    #[serde(default)]
    pub datacenter: Option<String>,
}

/// Parameters of `consul.kv_get` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    /// The key, or the prefix with `recurse`/`keys` (empty: every key).
    #[serde(default)]
    pub key: String,
    /// Read every key under the prefix `key`.
    #[serde(default)]
    pub recurse: bool,
    /// List the key names under the prefix `key`, without values.
    #[serde(default)]
    pub keys: bool,
    /// With `keys`: list only up to this separator (`/`), like folders.
    #[serde(default)]
    pub separator: Option<String>,
    /// Parse the values as JSON.
    #[serde(default)]
    pub json: bool,
    /// Fail when nothing is found (instead of succeeding with `found: false`).
    #[serde(default)]
    pub required: bool,
    /// The datacenter; `config/consul.yaml`'s, else the agent's own, when absent.
    #[serde(default)]
    pub datacenter: Option<String>,
}

/// Parameters of `consul.kv_delete` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// The key, or the prefix with `recurse`.
    pub key: String,
    /// Delete every key under the prefix `key`.
    #[serde(default)]
    pub recurse: bool,
    /// Delete only if the key's ModifyIndex is this.
    #[serde(default)]
    pub cas: Option<u64>,
    /// The datacenter; `config/consul.yaml`'s, else the agent's own, when absent.
    #[serde(default)]
    pub datacenter: Option<String>,
}

/// One Consul agent as configured, with the datacenter for this execution.
struct Consul {
    endpoint: Endpoint,
    token: Option<String>,
    datacenter: Option<String>,
}

impl Consul {
    /// The pack configuration, with the `datacenter` parameter overriding the config's.
    fn of(ctx: &RunContext, datacenter: &Option<String>) -> Result<Consul, String> {
        let cfg = &ctx.pack_config;
        let endpoint = Endpoint::from_config("Consul", "consul", cfg, DEFAULT_ADDRESS)?;
        let token = config_str(cfg, "consul", "token")?;
        if let Some(t) = &token {
            squall_core::secrets::register(t);
        }
        let datacenter = match datacenter {
            Some(dc) => Some(dc.clone()),
            None => config_str(cfg, "consul", "datacenter")?,
        };
        Ok(Consul {
            endpoint,
            token,
            datacenter,
        })
    }

    /// `/v1/kv/<key>` with `dc` and the given query pairs.
    fn kv_url(&self, key: &str, query: &[(&str, Option<String>)]) -> Url {
        // An empty key (every key, with `recurse`/`keys`) is `/v1/kv/`.
        let fixed: &[&str] = if key.is_empty() {
            &["v1", "kv", ""]
        } else {
            &["v1", "kv"]
        };
        let mut url = self.endpoint.url(fixed, key);
        {
            let mut q = url.query_pairs_mut();
            if let Some(dc) = &self.datacenter {
                q.append_pair("dc", dc);
            }
            for (k, v) in query {
                match v {
                    Some(v) => q.append_pair(k, v),
                    None => q.append_key_only(k),
                };
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// Send one request with the token; any status comes back as a [`Reply`].
    async fn call(&self, method: Method, url: Url, body: Option<Vec<u8>>) -> Result<Reply, String> {
        let mut req = self.endpoint.request(method, url)?;
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(token).map_err(|_| {
                "config/consul.yaml: `token` holds characters not allowed in an HTTP header"
                    .to_string()
            })?;
            value.set_sensitive(true);
            req = req.header("X-Consul-Token", value);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        self.endpoint.send(req).await
    }

    /// The message for an unexpected reply: Consul's text with the status.
    fn failure(&self, method: &Method, key: &str, reply: &Reply) -> String {
        let mut text = reply.text();
        if text.is_empty() {
            text = "(no message)".into();
        }
        let hint = match reply.status {
            403 if self.token.is_none() => {
                " (no ACL token is configured: set `token` in config/consul.yaml)"
            }
            403 => " (check the ACL policy of `token` in config/consul.yaml)",
            _ => "",
        };
        format!("consul: {method} kv/{key}: {}: {text}{hint}", reply.status)
    }

    /// The key's current `ModifyIndex`, `None` when it does not exist.
    async fn modify_index(&self, key: &str) -> Result<Option<u64>, String> {
        let reply = self.call(Method::GET, self.kv_url(key, &[]), None).await?;
        match reply.status {
            404 => Ok(None),
            _ if reply.ok() => Ok(reply
                .json()
                .get(0)
                .and_then(|e| e.get("ModifyIndex"))
                .and_then(Json::as_u64)),
            _ => Err(self.failure(&Method::GET, key, &reply)),
        }
    }

    /// The message for a check-and-set that Consul refused.
    async fn cas_conflict(&self, doing: &str, key: &str, cas: u64) -> String {
        let current = match self.modify_index(key).await {
            Ok(Some(i)) => format!("its current ModifyIndex is {i}"),
            Ok(None) => "the key does not exist".to_string(),
            Err(e) => format!("its current ModifyIndex could not be read: {e}"),
        };
        let given = if cas == 0 {
            "cas=0 (only if the key does not exist)".to_string()
        } else {
            format!("cas={cas}")
        };
        format!("CAS conflict {doing} Consul key `{key}`: {given}, but {current}")
    }
}

/// The `value` parameter as bytes: a string as is, anything else JSON-encoded, nothing
/// when absent.
fn value_bytes(value: Option<&Json>) -> Vec<u8> {
    match value {
        None => Vec::new(),
        Some(Json::String(s)) => s.as_bytes().to_vec(),
        Some(other) => other.to_string().into_bytes(),
    }
}

async fn put(ctx: &RunContext) -> Outcome {
    let p: PutParams = decode(ctx)?;
    let consul = Consul::of(ctx, &p.datacenter)?;
    let key = path_param(Some(&p.key), "key")?;
    let (cas, flags) = (p.cas, p.flags);
    let mut query = Vec::new();
    if let Some(c) = cas {
        query.push(("cas", Some(c.to_string())));
    }
    if let Some(f) = flags {
        query.push(("flags", Some(f.to_string())));
    }
    let url = consul.kv_url(key, &query);
    let body = value_bytes(p.value.as_ref());
    let reply = consul.call(Method::PUT, url, Some(body)).await?;
    if !reply.ok() {
        return Err(consul.failure(&Method::PUT, key, &reply));
    }
    match (reply.text().as_str(), cas) {
        ("true", _) => Ok(json!({"key": key, "written": true})),
        ("false", Some(cas)) => Err(consul.cas_conflict("writing", key, cas).await),
        (other, _) => Err(format!(
            "consul: PUT kv/{key}: Consul did not write the key (it answered {other:?})"
        )),
    }
}

/// How `kv_get` reads.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Single,
    Recurse,
    Keys,
}

async fn get(ctx: &RunContext) -> Outcome {
    let p: GetParams = decode(ctx)?;
    let consul = Consul::of(ctx, &p.datacenter)?;
    let key = p.key.trim_start_matches('/');
    let (recurse, keys, parse_json, required) = (p.recurse, p.keys, p.json, p.required);
    let separator = p.separator.as_deref();
    let mode = match (recurse, keys) {
        (true, true) => {
            return Err(
                "give either `recurse` (keys and values) or `keys` (names only), not both".into(),
            )
        }
        (true, false) => Mode::Recurse,
        (false, true) => Mode::Keys,
        (false, false) => Mode::Single,
    };
    if mode == Mode::Single && key.is_empty() {
        return Err("parameter `key` is required (for example app/db; with `recurse` or `keys` it may be empty to mean every key)".into());
    }
    if separator.is_some() && mode != Mode::Keys {
        return Err("parameter `separator` only applies with `keys: true`".into());
    }
    let query: Vec<(&str, Option<String>)> = match mode {
        Mode::Single => vec![],
        Mode::Recurse => vec![("recurse", None)],
        Mode::Keys => {
            let mut q = vec![("keys", None)];
            if let Some(s) = separator {
                q.push(("separator", Some(s.to_string())));
            }
            q
        }
    };
    let reply = consul
        .call(Method::GET, consul.kv_url(key, &query), None)
        .await?;
    if reply.status == 404 {
        if required {
            let what = match mode {
                Mode::Single => format!("Consul key `{key}` does not exist"),
                _ => format!("no Consul key starts with `{key}`"),
            };
            return Err(format!(
                "{what} (the action was called with required: true)"
            ));
        }
        return Ok(match mode {
            Mode::Single => json!({"key": key, "found": false, "value": null, "flags": null,
                                    "modify_index": null, "create_index": null}),
            Mode::Recurse => json!({"key": key, "found": false, "entries": []}),
            Mode::Keys => json!({"key": key, "found": false, "keys": []}),
        });
    }
    if !reply.ok() {
        return Err(consul.failure(&Method::GET, key, &reply));
    }
    let body: Json = serde_json::from_slice(&reply.body).map_err(|e| {
        format!(
            "consul: GET kv/{key}: the reply is not JSON ({e}): {}",
            reply.text()
        )
    })?;
    let items = body.as_array().cloned().unwrap_or_default();
    match mode {
        Mode::Keys => {
            let names: Vec<Json> = items.into_iter().filter(Json::is_string).collect();
            Ok(json!({"key": key, "found": true, "keys": names}))
        }
        Mode::Recurse => {
            let entries = items
                .iter()
                .map(|e| entry(e, parse_json))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(json!({"key": key, "found": true, "entries": entries}))
        }
        Mode::Single => {
            let first = items
                .first()
                .ok_or_else(|| format!("consul: GET kv/{key}: the reply holds no entry"))?;
            let e = entry(first, parse_json)?;
            let mut out = json!({"key": key, "found": true});
            if let (Some(out), Some(e)) = (out.as_object_mut(), e.as_object()) {
                out.extend(
                    e.iter()
                        .filter(|(k, _)| *k != "key")
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
            }
            Ok(out)
        }
    }
}

/// One entry of Consul's reply as `{key, value, flags, modify_index, create_index}`
/// (plus `binary: true` for a value that is not UTF-8, left base64-encoded).
fn entry(e: &Json, parse_json: bool) -> Result<Json, String> {
    let key = e.get("Key").and_then(Json::as_str).unwrap_or_default();
    let raw = match e.get("Value").and_then(Json::as_str) {
        None => Vec::new(),
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|err| format!("consul: the value of `{key}` is not valid base64: {err}"))?,
    };
    let mut binary = false;
    let value = match String::from_utf8(raw) {
        Ok(text) if parse_json => {
            if text.trim().is_empty() {
                Json::Null
            } else {
                serde_json::from_str(&text).map_err(|err| {
                    format!("the value of Consul key `{key}` is not JSON ({err}); read it without `json: true`")
                })?
            }
        }
        Ok(text) => Json::String(text),
        Err(not_utf8) => {
            if parse_json {
                return Err(format!(
                    "the value of Consul key `{key}` is binary, not JSON; read it without `json: true`"
                ));
            }
            binary = true;
            Json::String(base64::engine::general_purpose::STANDARD.encode(not_utf8.as_bytes()))
        }
    };
    let mut out = json!({
        "key": key,
        "value": value,
        "flags": e.get("Flags").cloned().unwrap_or(json!(0)),
        "modify_index": e.get("ModifyIndex").cloned().unwrap_or(Json::Null),
        "create_index": e.get("CreateIndex").cloned().unwrap_or(Json::Null),
    });
    if binary {
        out["binary"] = json!(true);
    }
    Ok(out)
}

async fn delete(ctx: &RunContext) -> Outcome {
    let p: DeleteParams = decode(ctx)?;
    let consul = Consul::of(ctx, &p.datacenter)?;
    let key = path_param(Some(&p.key), "key")?;
    let (recurse, cas) = (p.recurse, p.cas);
    if recurse && cas.is_some() {
        return Err("`cas` applies to one key; it cannot be combined with `recurse`".into());
    }
    // Whether anything is there, so that the result can say if something was deleted.
    let probe = if recurse {
        consul.kv_url(key, &[("keys", None)])
    } else {
        consul.kv_url(key, &[])
    };
    let before = consul.call(Method::GET, probe, None).await?;
    let existed = match before.status {
        404 => false,
        _ if before.ok() => true,
        _ => return Err(consul.failure(&Method::GET, key, &before)),
    };
    if !existed {
        return Ok(json!({"key": key, "deleted": false}));
    }
    let query: Vec<(&str, Option<String>)> = match (recurse, cas) {
        (true, _) => vec![("recurse", None)],
        (false, Some(c)) => vec![("cas", Some(c.to_string()))],
        (false, None) => vec![],
    };
    let reply = consul
        .call(Method::DELETE, consul.kv_url(key, &query), None)
        .await?;
    if !reply.ok() {
        return Err(consul.failure(&Method::DELETE, key, &reply));
    }
    match (reply.text().as_str(), cas) {
        ("true", _) => Ok(json!({"key": key, "deleted": true})),
        ("false", Some(cas)) => Err(consul.cas_conflict("deleting", key, cas).await),
        (other, _) => Err(format!(
            "consul: DELETE kv/{key}: Consul did not delete the key (it answered {other:?})"
        )),
    }
}

#[cfg(test)]
#[path = "consul_tests.rs"]
mod tests;
