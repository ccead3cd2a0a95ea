//! `vault.*`: secrets in a KV version 2 engine of Vault (or OpenBao) over its HTTP API.
//!
//! | runner | does |
//! |---|---|
//! | `vault.kv_write` | write a new version of a secret (optionally check-and-set) |
//! | `vault.kv_read` | read the latest or a given version; its values become secrets |
//! | `vault.kv_delete` | soft-delete the latest or given versions, or delete every version and the metadata |
//! | `vault.kv_metadata` | versions and timestamps of a secret |
//!
//! # Configuration (`config/vault.yaml`)
//!
//! `address` (default `http://127.0.0.1:8200`), `token` (secret) or `approle: {role_id,
//! secret_id, mount}` (AppRole login; `mount` defaults to `approle`), `namespace` (sent as
//! `X-Vault-Namespace`), `mount` (the KV v2 engine's mount, default `secret`), `timeout`
//! (seconds per request, default 10). Every action also takes `mount`.
//!
//! With AppRole the runners log in once and keep the client token in memory (one per
//! address, namespace, auth mount and role); when Vault answers 403 "permission denied"
//! (an expired or revoked token) they log in again and retry once.
//!
//! # Errors
//!
//! Vault's `errors` with the method, API path and status, e.g. `vault: PUT
//! secret/data/app/db: 400: check-and-set parameter did not match the current version`; an
//! unreachable server gives `cannot reach Vault at ADDR: connection refused`. Tokens,
//! secret ids and secret data never appear in results, errors or logs.

use super::params::decode;
use super::rest::{config_str, Endpoint, Reply};
use super::{Outcome, RunContext, Runner};
use reqwest::header::HeaderValue;
use reqwest::Method;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map};
use squall_core::locks::MutexExt;
use squall_core::model::Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Address used when `config/vault.yaml` has none.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8200";

/// KV v2 mount used when neither the action nor the configuration names one.
pub const DEFAULT_MOUNT: &str = "secret";

/// Every vault runner, for [`super::Registry::builtin`].
pub fn runners() -> Vec<Arc<dyn Runner>> {
    vec![
        Arc::new(KvWrite),
        Arc::new(KvRead),
        Arc::new(KvDelete),
        Arc::new(KvMetadata),
    ]
}

squall_core::work_runner!(
    /// `vault.kv_write`: write a secret. Result `{path, version, created_time}`.
    KvWrite, "vault.kv_write", write, WriteParams,
    "Writes a secret to a KV v2 engine, optionally as a check-and-set; the result is `{path, version, created_time}`."
);
squall_core::work_runner!(
    /// `vault.kv_read`: read a secret. Result `{path, found, data, version, created_time, deleted}`.
    KvRead, "vault.kv_read", read, ReadParams,
    "Reads a secret (a version of it) from a KV v2 engine; its values become secrets, masked in records and output."
);
squall_core::work_runner!(
    /// `vault.kv_delete`: delete versions or the whole secret. Result `{path, deleted: true}`.
    KvDelete, "vault.kv_delete", delete, DeleteParams,
    "Deletes the latest version of a secret, some versions (soft) or the whole secret with its metadata (`all_versions`)."
);
squall_core::work_runner!(
    /// `vault.kv_metadata`: a secret's metadata.
    KvMetadata, "vault.kv_metadata", metadata, MetadataParams,
    "Reads a secret's metadata: its versions, current and oldest version, times and custom metadata."
);

/// Parameters of `vault.kv_write` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteParams {
    /// Path inside the mount, e.g. `dbaas/prod/orders`.
    pub path: String,
    /// The secret: an object of key: value.
    pub data: Map<String, Json>,
    /// Write only if the current version is this (0: only if the secret does not exist).
    #[serde(default)]
    pub cas: Option<u64>,
    /// The KV v2 mount; `config/vault.yaml`'s, else `secret`, when absent.
    #[serde(default)]
    pub mount: Option<String>,
}

/// Parameters of `vault.kv_read` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadParams {
    /// Path inside the mount, e.g. `dbaas/prod/orders`.
    pub path: String,
    /// The version to read; the latest when absent.
    #[serde(default)]
    pub version: Option<u64>,
    /// Fail when the secret (version) does not exist or is deleted; with `false`,
    /// succeed with `found: false`.
    #[serde(default = "yes")]
    pub required: bool,
    /// Only the values under these keys become secrets (every value when absent).
    #[serde(default)]
    pub secret_keys: Option<Vec<String>>,
    /// The KV v2 mount; `config/vault.yaml`'s, else `secret`, when absent.
    #[serde(default)]
    pub mount: Option<String>,
}

fn yes() -> bool {
    true
}

/// Parameters of `vault.kv_delete` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Path inside the mount, e.g. `dbaas/prod/orders`.
    pub path: String,
    /// Soft-delete these versions (they can be undeleted).
    #[serde(default)]
    pub versions: Option<Vec<u64>>,
    /// Delete the metadata and every version, for good (deprovisioning).
    #[serde(default)]
    pub all_versions: bool,
    /// The KV v2 mount; `config/vault.yaml`'s, else `secret`, when absent.
    #[serde(default)]
    pub mount: Option<String>,
}

/// Parameters of `vault.kv_metadata` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataParams {
    /// Path inside the mount, e.g. `dbaas/prod/orders`.
    pub path: String,
    /// The KV v2 mount; `config/vault.yaml`'s, else `secret`, when absent.
    #[serde(default)]
    pub mount: Option<String>,
}

/// How the runners authenticate.
enum Auth {
    /// A fixed token.
    Token(String),
    /// AppRole login at `auth/<mount>/login`.
    AppRole {
        mount: String,
        role_id: String,
        secret_id: String,
    },
}

/// Client tokens from AppRole logins, by [`Vault::cache_key`].
fn token_cache() -> &'static Mutex<HashMap<String, String>> {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// One Vault server as configured, with the KV mount for this execution.
struct Vault {
    endpoint: Endpoint,
    auth: Auth,
    namespace: Option<String>,
    mount: String,
}

impl Vault {
    /// The pack configuration, with the `mount` parameter overriding the config's.
    fn of(ctx: &RunContext, mount: &Option<String>) -> Result<Vault, String> {
        let cfg = &ctx.pack_config;
        let endpoint = Endpoint::from_config("Vault", "vault", cfg, DEFAULT_ADDRESS)?;
        let token = config_str(cfg, "vault", "token")?;
        let approle = match cfg.get("approle") {
            None | Some(Json::Null) => None,
            Some(a) => Some(approle(a)?),
        };
        let auth = match (token, approle) {
            (Some(_), Some(_)) => {
                return Err(
                    "config/vault.yaml: give either `token` or `approle`, not both".into(),
                )
            }
            (Some(t), None) => Auth::Token(t),
            (None, Some(a)) => a,
            (None, None) => {
                return Err("config/vault.yaml: no credentials: set `token` (e.g. token: ${env:VAULT_TOKEN}) or `approle: {role_id, secret_id}`".into())
            }
        };
        match &auth {
            Auth::Token(t) => squall_core::secrets::register(t),
            Auth::AppRole { secret_id, .. } => squall_core::secrets::register(secret_id),
        }
        let mount = match mount {
            Some(m) => m.clone(),
            None => config_str(cfg, "vault", "mount")?.unwrap_or_else(|| DEFAULT_MOUNT.into()),
        };
        let mount = mount.trim_matches('/').to_string();
        if mount.is_empty() {
            return Err("`mount` must name the KV v2 engine's mount, e.g. secret".into());
        }
        Ok(Vault {
            endpoint,
            auth,
            namespace: config_str(cfg, "vault", "namespace")?,
            mount,
        })
    }

    /// The key of this configuration's AppRole token in [`token_cache`].
    fn cache_key(&self, mount: &str, role_id: &str) -> String {
        format!(
            "{}|{}|{mount}|{role_id}",
            self.endpoint.address(),
            self.namespace.as_deref().unwrap_or("")
        )
    }

    /// The token to send: the configured one, or an AppRole client token (logging in when
    /// none is cached or `fresh` is asked for).
    async fn token(&self, fresh: bool) -> Result<String, String> {
        let (mount, role_id, secret_id) = match &self.auth {
            Auth::Token(t) => return Ok(t.clone()),
            Auth::AppRole {
                mount,
                role_id,
                secret_id,
            } => (mount, role_id, secret_id),
        };
        let key = self.cache_key(mount, role_id);
        if !fresh {
            let cache = token_cache().locked();
            if let Some(t) = cache.get(&key) {
                return Ok(t.clone());
            }
        }
        let api = format!("auth/{mount}/login");
        let url = self.endpoint.url(&["v1", "auth", mount, "login"], "");
        let req = self
            .headers(self.endpoint.request(Method::POST, url)?, None)?
            .json(&json!({"role_id": role_id, "secret_id": secret_id}));
        let reply = self.endpoint.send(req).await?;
        if !reply.ok() {
            return Err(format!(
                "{} (AppRole login with `approle` of config/vault.yaml)",
                self.failure(&Method::POST, &api, &reply)
            ));
        }
        let token = reply
            .json()
            .pointer("/auth/client_token")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("vault: POST {api}: the reply holds no auth.client_token"))?;
        squall_core::secrets::register(&token);
        token_cache().locked().insert(key, token.clone());
        Ok(token)
    }

    /// Add the namespace and (when given) token headers.
    fn headers(
        &self,
        mut req: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, String> {
        if let Some(ns) = &self.namespace {
            let v = HeaderValue::from_str(ns).map_err(|_| {
                "config/vault.yaml: `namespace` holds characters not allowed in an HTTP header"
                    .to_string()
            })?;
            req = req.header("X-Vault-Namespace", v);
        }
        if let Some(t) = token {
            let mut v = HeaderValue::from_str(t).map_err(|_| {
                "the Vault token holds characters not allowed in an HTTP header".to_string()
            })?;
            v.set_sensitive(true);
            req = req.header("X-Vault-Token", v);
        }
        Ok(req)
    }

    /// `<mount>/<kind>/<path>` (kind `data`, `metadata`, `delete`), as shown in messages.
    fn api_path(&self, kind: &str, path: &str) -> String {
        format!("{}/{kind}/{path}", self.mount)
    }

    /// Send one request to `<mount>/<kind>/<path>`; any status comes back as a [`Reply`].
    /// With AppRole, a 403 "permission denied" is retried once after a fresh login.
    async fn call(
        &self,
        method: Method,
        kind: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Json>,
    ) -> Result<Reply, String> {
        let mut fresh = false;
        loop {
            let token = self.token(fresh).await?;
            let mut url = self.endpoint.url(&["v1", &self.mount, kind], path);
            if !query.is_empty() {
                url.query_pairs_mut().extend_pairs(query);
            }
            let mut req =
                self.headers(self.endpoint.request(method.clone(), url)?, Some(&token))?;
            if let Some(b) = body {
                req = req.json(b);
            }
            let reply = self.endpoint.send(req).await?;
            let denied = reply.status == 403 && errors(&reply).contains("permission denied");
            if denied && !fresh && matches!(self.auth, Auth::AppRole { .. }) {
                fresh = true;
                continue;
            }
            return Ok(reply);
        }
    }

    /// The message for an unexpected reply: Vault's `errors` with status and path.
    fn failure(&self, method: &Method, api_path: &str, reply: &Reply) -> String {
        let mut text = errors(reply);
        if text.is_empty() {
            text = "(no message)".into();
        }
        let hint = match (reply.status, &self.auth) {
            (403, Auth::Token(_)) => {
                " (check `token` in config/vault.yaml and that its policy allows this path)"
            }
            (403, Auth::AppRole { .. }) => " (check that the AppRole's policy allows this path)",
            _ => "",
        };
        format!("vault: {method} {api_path}: {}: {text}{hint}", reply.status)
    }
}

/// The `approle:` block of the configuration.
fn approle(v: &Json) -> Result<Auth, String> {
    let field = |k: &str| -> Result<Option<String>, String> {
        match v.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if s.is_empty() => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("config/vault.yaml: `approle.{k}` must be a string")),
        }
    };
    let role_id = field("role_id")?
        .ok_or("config/vault.yaml: `approle.role_id` is required (the AppRole's role id)")?;
    let secret_id = field("secret_id")?.ok_or(
        "config/vault.yaml: `approle.secret_id` is required (e.g. secret_id: ${env:VAULT_SECRET_ID})",
    )?;
    let mount = field("mount")?.unwrap_or_else(|| "approle".into());
    Ok(Auth::AppRole {
        mount: mount.trim_matches('/').to_string(),
        role_id,
        secret_id,
    })
}

/// Vault's `errors` joined with `; ` (empty for a JSON reply without them; the body's
/// text when it is not JSON, e.g. from a proxy).
fn errors(reply: &Reply) -> String {
    let body = reply.json();
    match body.get("errors").and_then(Json::as_array) {
        Some(list) => list
            .iter()
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("; "),
        None if body.is_object() => String::new(),
        None => {
            let mut t = reply.text();
            if t.len() > 300 {
                let mut end = 300;
                while !t.is_char_boundary(end) {
                    end -= 1;
                }
                t.truncate(end);
                t.push_str("...");
            }
            t
        }
    }
}

/// A 404 that means "no such secret" (Vault sends an empty `errors` list), as opposed to
/// a 404 with a message (`no handler for route ...`: no such mount).
fn missing(reply: &Reply) -> bool {
    reply.status == 404 && errors(reply).is_empty()
}

/// The `path` parameter without surrounding `/`.
fn path_param(path: &str) -> Result<&str, String> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err(
            "parameter `path` is required (the secret's path inside the mount, e.g. app/db)".into(),
        );
    }
    Ok(path)
}

async fn write(ctx: &RunContext) -> Outcome {
    let p: WriteParams = decode(ctx)?;
    let vault = Vault::of(ctx, &p.mount)?;
    let path = path_param(&p.path)?;
    let mut body = json!({"data": p.data});
    if let Some(cas) = p.cas {
        body["options"] = json!({"cas": cas});
    }
    let reply = vault
        .call(Method::PUT, "data", path, &[], Some(&body))
        .await?;
    if !reply.ok() {
        return Err(vault.failure(&Method::PUT, &vault.api_path("data", path), &reply));
    }
    let meta = reply.json().get("data").cloned().unwrap_or(Json::Null);
    Ok(json!({
        "path": path,
        "version": meta.get("version").cloned().unwrap_or(Json::Null),
        "created_time": meta.get("created_time").cloned().unwrap_or(Json::Null),
    }))
}

/// Whether a KV v2 version's metadata says it is deleted or destroyed.
fn is_deleted(meta: &Json) -> bool {
    let deletion = meta
        .get("deletion_time")
        .and_then(Json::as_str)
        .unwrap_or("");
    !deletion.is_empty() || meta.get("destroyed").and_then(Json::as_bool) == Some(true)
}

/// Register the values of a secret read from Vault as secrets: every value, or with
/// `secret_keys` only the values under those keys (so that a host name or an engine stored
/// beside a password is not masked everywhere).
fn register_secret_values(data: &Json, secret_keys: Option<&[String]>) {
    match secret_keys {
        Some(keys) => {
            for key in keys {
                if let Some(v) = data.get(key) {
                    squall_core::secrets::register_json(v);
                }
            }
        }
        None => squall_core::secrets::register_json(data),
    }
}

async fn read(ctx: &RunContext) -> Outcome {
    let p: ReadParams = decode(ctx)?;
    let vault = Vault::of(ctx, &p.mount)?;
    let path = path_param(&p.path)?;
    let (required, version) = (p.required, p.version);
    let query: Vec<(&str, String)> = version
        .map(|v| ("version", v.to_string()))
        .into_iter()
        .collect();
    let api = vault.api_path("data", path);
    let reply = vault.call(Method::GET, "data", path, &query, None).await?;
    if !reply.ok() && !missing(&reply) {
        return Err(vault.failure(&Method::GET, &api, &reply));
    }
    let body = reply.json();
    let meta = body
        .pointer("/data/metadata")
        .cloned()
        .unwrap_or(Json::Null);
    let data = body.pointer("/data/data").cloned().unwrap_or(Json::Null);
    let deleted = is_deleted(&meta);
    let found = reply.ok() && !deleted && data.is_object();
    if found {
        // The values are secrets from here on: masked in records and output, usable in scope.
        register_secret_values(&data, p.secret_keys.as_deref());
    } else if required {
        let which = match version {
            Some(v) => format!("version {v} of "),
            None => String::new(),
        };
        let why = if deleted {
            "is deleted"
        } else {
            "does not exist"
        };
        return Err(format!(
            "vault: {which}secret `{}/{path}` {why} (GET {api}: {}); pass required: false to get found: false instead",
            vault.mount, reply.status
        ));
    }
    Ok(json!({
        "path": path,
        "found": found,
        "data": if found { data } else { Json::Null },
        "version": meta.get("version").cloned().unwrap_or(Json::Null),
        "created_time": meta.get("created_time").cloned().unwrap_or(Json::Null),
        "deleted": deleted,
    }))
}

async fn delete(ctx: &RunContext) -> Outcome {
    let p: DeleteParams = decode(ctx)?;
    let vault = Vault::of(ctx, &p.mount)?;
    let path = path_param(&p.path)?;
    let all = p.all_versions;
    if let Some(v) = p.versions.iter().flatten().find(|v| **v == 0) {
        return Err(format!(
            "parameter `versions` must list version numbers (1, 2, ...), got {v}"
        ));
    }
    let versions = p.versions;
    let (method, kind, body) = match (all, versions) {
        (true, Some(_)) => {
            return Err("give either `versions` (soft-delete those) or `all_versions: true` (delete everything), not both".into())
        }
        (true, None) => (Method::DELETE, "metadata", None),
        (false, Some(v)) if v.is_empty() => {
            return Err("parameter `versions` is empty: list the versions to delete".into())
        }
        (false, Some(v)) => (Method::POST, "delete", Some(json!({"versions": v}))),
        (false, None) => (Method::DELETE, "data", None),
    };
    let reply = vault
        .call(method.clone(), kind, path, &[], body.as_ref())
        .await?;
    // Deleting what is not there is success: the goal (no such secret) holds.
    if !reply.ok() && !missing(&reply) {
        return Err(vault.failure(&method, &vault.api_path(kind, path), &reply));
    }
    Ok(json!({"path": path, "deleted": true}))
}

async fn metadata(ctx: &RunContext) -> Outcome {
    let p: MetadataParams = decode(ctx)?;
    let vault = Vault::of(ctx, &p.mount)?;
    let path = path_param(&p.path)?;
    let reply = vault.call(Method::GET, "metadata", path, &[], None).await?;
    if missing(&reply) {
        return Ok(json!({
            "path": path, "found": false, "current_version": null, "oldest_version": null,
            "created_time": null, "updated_time": null, "versions": {}, "custom_metadata": null,
        }));
    }
    if !reply.ok() {
        return Err(vault.failure(&Method::GET, &vault.api_path("metadata", path), &reply));
    }
    let m = reply.json().get("data").cloned().unwrap_or(Json::Null);
    let field = |k: &str| m.get(k).cloned().unwrap_or(Json::Null);
    Ok(json!({
        "path": path,
        "found": true,
        "current_version": field("current_version"),
        "oldest_version": field("oldest_version"),
        "created_time": field("created_time"),
        "updated_time": field("updated_time"),
        "versions": m.get("versions").cloned().unwrap_or(json!({})),
        "custom_metadata": field("custom_metadata"),
    }))
}

#[cfg(test)]
#[path = "vault_tests.rs"]
mod tests;
