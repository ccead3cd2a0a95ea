//! Pieces shared by the runners that call a JSON/HTTP API of a remote service (`consul.*`,
//! `vault.*`): one HTTP client, the service's address and timeout from the pack
//! configuration, sending with errors that say which service could not be reached, and
//! reading a reply.

use reqwest::{Client, Method, RequestBuilder, Url};
use squall_core::model::Json;
use std::sync::OnceLock;
use std::time::Duration;

/// Largest reply body read; a bigger one fails the execution.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// The HTTP client shared by these runners (connection pool, rustls).
fn client() -> Result<&'static Client, String> {
    static CLIENT: OnceLock<Result<Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Client::builder()
                .user_agent(concat!("squall/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| {
                    format!(
                        "could not set up the HTTP client: {}",
                        squall_core::error_chain(&e)
                    )
                })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// A string from the pack configuration; empty counts as absent.
pub(crate) fn config_str(config: &Json, pack: &str, key: &str) -> Result<Option<String>, String> {
    match config.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.is_empty() => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("config/{pack}.yaml: `{key}` must be a string")),
    }
}

/// Where a service is and how long to wait for it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// The service's name for messages (`Consul`, `Vault`).
    pub service: &'static str,
    /// Its base address, e.g. `http://127.0.0.1:8500`.
    pub base: Url,
    /// Limit for each request.
    pub timeout: Duration,
}

/// A reply of the service: status and body.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as (lossy) text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_string()
    }

    /// The body as JSON (`null` when empty or not JSON).
    pub fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap_or(Json::Null)
    }
}

impl Endpoint {
    /// `address` and `timeout` of the pack configuration (`default_address` when there is
    /// no address). Errors name the file and the key.
    pub fn from_config(
        service: &'static str,
        pack: &str,
        config: &Json,
        default_address: &str,
    ) -> Result<Endpoint, String> {
        let address =
            config_str(config, pack, "address")?.unwrap_or_else(|| default_address.to_string());
        let base = Url::parse(&address).map_err(|e| {
            format!("config/{pack}.yaml: `address` {address:?} is not a URL ({e}); write it like {default_address}")
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(format!(
                "config/{pack}.yaml: `address` {address:?} must be an http:// or https:// URL like {default_address}"
            ));
        }
        let timeout = match config.get("timeout") {
            None | Some(Json::Null) => Duration::from_secs(10),
            Some(v) => match v.as_f64() {
                Some(t) if t > 0.0 && t.is_finite() && t < 1e9 => Duration::from_secs_f64(t),
                _ => {
                    return Err(format!(
                    "config/{pack}.yaml: `timeout` must be a positive number of seconds, not {v}"
                ))
                }
            },
        };
        Ok(Endpoint {
            service,
            base,
            timeout,
        })
    }

    /// The address as written, without a trailing `/`, for messages.
    pub fn address(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// `<base>/<fixed segments...>/<each `/`-separated part of `tail`>`, every part
    /// percent-encoded as a path segment (so `a b/c` stays two segments, a trailing `/`
    /// is kept).
    pub fn url(&self, fixed: &[&str], tail: &str) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty();
            segs.extend(fixed.iter().flat_map(|f| f.split('/')));
            if !tail.is_empty() {
                segs.extend(tail.split('/'));
            }
        }
        url
    }

    /// A request with the timeout set.
    pub fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, String> {
        Ok(client()?.request(method, url).timeout(self.timeout))
    }

    /// Send and read the whole reply, whatever its status. A connection failure says
    /// which service at which address could not be reached.
    pub async fn send(&self, request: RequestBuilder) -> Result<Reply, String> {
        let mut response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(format!(
                            "{} at {} sent a reply larger than {} MiB",
                            self.service,
                            self.address(),
                            MAX_BODY / (1024 * 1024)
                        ));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.unreachable(&e)),
            }
        }
        Ok(Reply { status, body })
    }

    /// The message for a request that got no (complete) reply.
    fn unreachable(&self, e: &reqwest::Error) -> String {
        let address = self.address();
        let service = self.service;
        if e.is_timeout() {
            return format!(
                "{service} at {address} did not answer within {}s (`timeout` in the pack configuration)",
                self.timeout.as_secs_f64()
            );
        }
        format!("cannot reach {service} at {address}: {}", cause(e))
    }
}

/// The useful cause of a request error: `connection refused` and the like for I/O errors,
/// else the error's chain without reqwest's generic outer layer.
fn cause(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                std::io::ErrorKind::ConnectionReset => "connection reset".to_string(),
                _ => io.to_string(),
            };
        }
        source = s.source();
    }
    match std::error::Error::source(e) {
        Some(s) => squall_core::error_chain(s),
        None => e.to_string(),
    }
}

/// Strip leading and trailing `/` from a key or path parameter; an empty result is an
/// error naming the parameter.
pub(crate) fn path_param<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, String> {
    let trimmed = value.unwrap_or("").trim_start_matches('/');
    if trimmed.trim_end_matches('/').is_empty() {
        return Err(format!(
            "parameter `{name}` is required (for example app/db)"
        ));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_encode_each_segment_and_keep_a_trailing_slash() {
        let e = Endpoint::from_config("Consul", "consul", &json!({}), "http://127.0.0.1:8500")
            .expect("default config");
        assert_eq!(
            e.url(&["v1", "kv"], "app/a b/c?").as_str(),
            "http://127.0.0.1:8500/v1/kv/app/a%20b/c%3F"
        );
        assert_eq!(
            e.url(&["v1", "kv"], "app/").as_str(),
            "http://127.0.0.1:8500/v1/kv/app/"
        );
        let e = Endpoint::from_config(
            "Vault",
            "vault",
            &json!({"address": "http://h:1/prefix/"}),
            "",
        )
        .expect("config");
        assert_eq!(
            e.url(&["v1", "kv/team", "data"], "x").as_str(),
            "http://h:1/prefix/v1/kv/team/data/x"
        );
    }

    #[test]
    fn bad_addresses_and_timeouts_name_the_file_and_key() {
        let err = Endpoint::from_config(
            "Vault",
            "vault",
            &json!({"address": "127.0.0.1:8200"}),
            "http://127.0.0.1:8200",
        )
        .unwrap_err();
        assert!(err.starts_with("config/vault.yaml: `address`"), "{err}");
        let err = Endpoint::from_config("Vault", "vault", &json!({"timeout": 0}), "http://x")
            .unwrap_err();
        assert!(err.contains("`timeout` must be a positive number"), "{err}");
    }

    #[test]
    fn path_parameters_lose_leading_slashes_and_must_not_be_empty() {
        assert_eq!(path_param(Some("/app/db"), "key"), Ok("app/db"));
        assert_eq!(path_param(Some("app/"), "key"), Ok("app/"));
        let err = path_param(Some("//"), "key").unwrap_err();
        assert!(err.contains("parameter `key` is required"), "{err}");
    }
}
