//! The `webhook` sensor: emits `core.webhook` for each `POST /api/v1/webhooks/{path}`.
//!
//! ```yaml
//! name: alerts
//! type: webhook
//! config:
//!   path: alerts                  # letters, digits, `_`, `-`, `/`; leading/trailing `/` dropped
//!   secret: ${env:ALERTS_SECRET}  # optional
//!   scheme: squall                # or `github`; only with `secret`
//!   tolerance: 5m                 # replay window; only with `secret`
//!   delivery_header: X-GitHub-Delivery  # `github` scheme only
//! ```
//!
//! The sensor task itself only waits for shutdown; the HTTP API receives the requests
//! and uses the helpers here: [`find`] the enabled sensor for a path, check
//! [`verify_signature`] when it has a [`secret`], and build the [`payload`]
//! `{headers, body, path}` (the body parsed as JSON when it is JSON, else a string).
//!
//! A signed call is checked by [`Signing::verify`] (timestamped signatures, or body-only
//! signatures with a delivery id) and registered with the [`ReplayGuard`], so that each
//! signed call is accepted once; see [`signing`].

use super::{Period, Sensor, SensorContext, SensorError};
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::Sha256;
use squall_core::config::Reference;
use squall_core::content::{Content, Sensor as SensorInstance};
use squall_core::model::Json;
use std::sync::Arc;
use std::time::Duration;

mod replay;
pub mod signing;

pub use replay::{Claim, Held, ReplayGuard};
pub use signing::{sign_timestamped, Refusal, Scheme, Signing};

/// The `webhook` sensor type.
pub struct WebhookSensor;

/// The sensor type name.
pub const KIND: &str = "webhook";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Squall-Signature";

/// The `config:` of a `webhook` sensor.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The path served, `POST /api/v1/webhooks/<path>`: letters, digits, `_`, `-` and
    /// `/`; a leading or trailing `/` is dropped.
    pub path: String,
    /// A shared secret, usually `${env:NAME}`: a call without an operator token must then
    /// be signed with it (docs/sensors.md).
    #[serde(default)]
    pub secret: Option<String>,
    /// How signed calls are checked: `squall` (timestamped signatures, the default) or
    /// `github` (`X-Hub-Signature-256` and a delivery id). Only with `secret`.
    #[serde(default)]
    pub scheme: Option<Scheme>,
    /// How far a signing time may be from the server's clock, and how long an accepted
    /// signature or delivery id is remembered: 1s to 7d, default 5m. Only with `secret`.
    #[serde(default)]
    pub tolerance: Option<Period>,
    /// The delivery id header of the `github` scheme; default `X-GitHub-Delivery`.
    #[serde(default)]
    pub delivery_header: Option<String>,
}

impl WebhookConfig {
    /// Decode a sensor's `config:` (types and known keys only; see
    /// [`problems`](Self::problems) for the rest).
    pub fn decode(config: &Json) -> Result<WebhookConfig, (String, String)> {
        super::decode_config(config, &[("path", "alerts")])
    }

    /// The config of a webhook sensor instance, `None` for another type or a config
    /// that does not decode (content is validated when it loads, so only a bug gets
    /// there).
    pub fn of(sensor: &SensorInstance) -> Option<WebhookConfig> {
        if sensor.spec.kind != KIND {
            return None;
        }
        match WebhookConfig::decode(&sensor.spec.config) {
            Ok(c) => Some(c),
            Err((field, message)) => {
                tracing::error!(sensor = %sensor.reference, field, message, "unreadable webhook config");
                None
            }
        }
    }

    /// The secret, when it is set and not empty.
    pub fn secret(&self) -> Option<&str> {
        self.secret.as_deref().filter(|s| !s.is_empty())
    }

    /// The replay window: `tolerance`, or [`signing::DEFAULT_TOLERANCE`].
    pub fn tolerance(&self) -> Duration {
        self.tolerance.map_or(signing::DEFAULT_TOLERANCE, |t| t.0)
    }

    /// What is wrong beyond types: the path, an empty secret, a tolerance out of range,
    /// signing settings without a secret; each as `(field, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut err = |f: &str, m: String| errs.push((f.to_string(), m));
        if let Err(e) = normalize_path(&self.path) {
            err("path", e.to_string());
        }
        if self.secret.as_deref() == Some("") {
            err(
                "secret",
                "secret is empty (is its environment variable set?)".into(),
            );
        }
        if let Some(Period(t)) = self.tolerance {
            if t < Duration::from_secs(1) || t > signing::MAX_TOLERANCE {
                err(
                    "tolerance",
                    "tolerance is out of range; use between 1s and 7d (or 1 to 604800 seconds; default 5m)".into(),
                );
            }
        }
        if let Some(h) = &self.delivery_header {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                err(
                    "delivery_header",
                    "delivery_header must be an HTTP header name such as X-GitHub-Delivery".into(),
                );
            } else if self.scheme != Some(Scheme::Github) {
                err(
                    "delivery_header",
                    "delivery_header is used by `scheme: github` only; add it or remove this setting".into(),
                );
            }
        }
        if self.secret().is_none() {
            let set = [
                ("scheme", self.scheme.is_some()),
                ("tolerance", self.tolerance.is_some()),
                ("delivery_header", self.delivery_header.is_some()),
            ];
            for (key, set) in set {
                if set {
                    err(
                        key,
                        format!("`{key}` applies to signed calls and needs `secret`; add a secret or remove `{key}`"),
                    );
                }
            }
        }
        errs
    }
}

/// Why a webhook path is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing but `/` and blanks.
    #[error("path must not be empty")]
    Empty,
    /// A character other than `[A-Za-z0-9_-/]`.
    #[error("path `{path}` contains `{found}`; use letters, digits, `_`, `-` and `/`")]
    Character {
        /// The path as written.
        path: String,
        /// The first character not allowed.
        found: char,
    },
    /// Two `/` in a row.
    #[error("path `{path}` has an empty segment (`//`)")]
    EmptySegment {
        /// The path as written.
        path: String,
    },
}

/// A path in canonical form: trimmed, without leading or trailing `/`; made of
/// `[A-Za-z0-9_-]` segments separated by single `/`.
pub fn normalize_path(path: &str) -> Result<String, PathError> {
    let p = path.trim().trim_matches('/');
    if p.is_empty() {
        return Err(PathError::Empty);
    }
    if let Some(found) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/')))
    {
        return Err(PathError::Character {
            path: path.to_string(),
            found,
        });
    }
    if p.contains("//") {
        return Err(PathError::EmptySegment {
            path: path.to_string(),
        });
    }
    Ok(p.to_string())
}

/// The normalised `path` of a webhook sensor instance, if valid.
fn path_of(sensor: &SensorInstance) -> Option<String> {
    normalize_path(&WebhookConfig::of(sensor)?.path).ok()
}

/// The enabled webhook sensor serving `path` (leading/trailing `/` ignored).
pub fn find<'a>(content: &'a Content, path: &str) -> Option<&'a Arc<SensorInstance>> {
    let wanted = normalize_path(path).ok()?;
    content
        .sensors
        .values()
        .find(|s| s.spec.enabled && path_of(s).as_deref() == Some(wanted.as_str()))
}

/// The sensor's `secret`, when it has a non-empty one.
pub fn secret(sensor: &SensorInstance) -> Option<String> {
    WebhookConfig::of(sensor)?.secret().map(str::to_string)
}

/// Whether `header` (the `X-Squall-Signature` value, `sha256=<hex>` or `<hex>`) is the
/// HMAC-SHA256 of `body` under `secret`. Compared in constant time; a missing or
/// malformed header is `false`.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(value) = header.map(str::trim) else {
        return false;
    };
    let hex_part = match value.split_once('=') {
        Some((scheme, rest)) if scheme.trim().eq_ignore_ascii_case("sha256") => rest.trim(),
        Some(_) => return false,
        None => value,
    };
    let Ok(given) = hex::decode(hex_part) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// `sha256=<hex>` signature of `body` under `secret` (for clients and tests).
pub fn sign(secret: &str, body: &[u8]) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// The trigger payload `{headers, body, path}`: `body` parsed as JSON when it is valid
/// JSON, else the body as a (lossily decoded) string; `path` normalised when valid.
pub fn payload(path: &str, headers: &Json, body: &[u8]) -> Json {
    let body = serde_json::from_slice::<Json>(body)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(body).into_owned()));
    let path = normalize_path(path).unwrap_or_else(|_| path.trim().to_string());
    serde_json::json!({"headers": headers, "body": body, "path": path})
}

#[async_trait]
impl Sensor for WebhookSensor {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_trigger(&self) -> &'static str {
        "core.webhook"
    }

    fn exclusive_key(&self, config: &Json) -> Option<String> {
        let path = normalize_path(&WebhookConfig::decode(config).ok()?.path).ok()?;
        Some(format!("path `{path}`"))
    }

    fn reference(&self) -> Reference {
        Reference::settings::<WebhookConfig>(
            "Emits `core.webhook` for each `POST /api/v1/webhooks/<path>`, the request's \
             headers and body in the payload; with a `secret`, calls without an operator \
             token must be signed, and each signed call is accepted once (docs/sensors.md).",
        )
    }

    fn validate(&self, config: &Json) -> Vec<(String, String)> {
        match WebhookConfig::decode(config) {
            Ok(c) => c.problems(),
            Err(problem) => vec![problem],
        }
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        ctx.shutdown.cancelled().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn signatures() {
        let body = br#"{"severity":"critical"}"#;
        let good = sign("s3cret", body);
        assert!(good.starts_with("sha256="));
        assert!(verify_signature("s3cret", body, Some(&good)));
        assert!(verify_signature("s3cret", body, Some(&good[7..])));
        assert!(verify_signature(
            "s3cret",
            body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));
        assert!(!verify_signature("other", body, Some(&good)));
        assert!(!verify_signature("s3cret", b"{}", Some(&good)));
        assert!(!verify_signature("s3cret", body, None));
        assert!(!verify_signature("s3cret", body, Some("")));
        assert!(!verify_signature("s3cret", body, Some("sha256=zz")));
        assert!(!verify_signature(
            "s3cret",
            body,
            Some(&good.replace("sha256", "sha1"))
        ));
        assert!(!verify_signature("s3cret", body, Some(&good[..20])));
    }

    #[test]
    fn payload_parses_json_bodies() {
        let h = json!({"content-type": "application/json"});
        let p = payload("/alerts/", &h, br#"{"hosts":["a"]}"#);
        assert_eq!(
            p,
            json!({"headers": h, "body": {"hosts": ["a"]}, "path": "alerts"})
        );
        let p = payload("alerts", &json!({}), b"plain text");
        assert_eq!(p["body"], "plain text");
        let p = payload("alerts", &json!({}), b"");
        assert_eq!(p["body"], "");
        let p = payload("alerts", &json!({}), &[0xff, 0xfe]);
        assert!(p["body"].is_string());
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("/alerts/").unwrap(), "alerts");
        assert_eq!(
            normalize_path("ops/k8s-events_1").unwrap(),
            "ops/k8s-events_1"
        );
        for bad in ["", "/", "a b", "a//b", "../x", "a?b", "é"] {
            assert!(normalize_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn validate_names_fields() {
        let fields = |c: Json| -> Vec<String> {
            WebhookSensor
                .validate(&c)
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert!(fields(json!({"path": "alerts", "secret": "x"})).is_empty());
        assert_eq!(fields(json!({})), ["path"]);
        assert_eq!(fields(json!({"path": "a b"})), ["path"]);
        assert_eq!(fields(json!({"path": "a", "secret": ""})), ["secret"]);
        assert_eq!(fields(json!({"path": "a", "secret": 3})), ["secret"]);
        assert_eq!(fields(json!({"path": "a", "every": "1m"})), ["every"]);
        assert!(
            fields(json!({"path": "a", "secret": "x", "scheme": "github",
            "tolerance": "1h", "delivery_header": "X-Delivery"}))
            .is_empty()
        );
        assert!(fields(json!({"path": "a", "secret": "x", "tolerance": 60})).is_empty());
        assert_eq!(
            fields(json!({"path": "a", "secret": "x", "scheme": "hub"})),
            ["scheme"]
        );
        assert_eq!(
            fields(json!({"path": "a", "secret": "x", "tolerance": "0s"})),
            ["tolerance"]
        );
        assert_eq!(
            fields(json!({"path": "a", "secret": "x", "tolerance": "30d"})),
            ["tolerance"]
        );
        assert_eq!(
            fields(json!({"path": "a", "secret": "x", "tolerance": "soon"})),
            ["tolerance"]
        );
        assert_eq!(
            fields(json!({"path": "a", "secret": "x", "delivery_header": "X-Id"})),
            ["delivery_header"],
            "delivery_header without scheme: github"
        );
        assert_eq!(
            fields(
                json!({"path": "a", "secret": "x", "scheme": "github", "delivery_header": "bad header"})
            ),
            ["delivery_header"]
        );
        assert_eq!(
            fields(json!({"path": "a", "tolerance": "5m"})),
            ["tolerance"]
        );
        let message = |c: Json| WebhookSensor.validate(&c)[0].1.clone();
        assert_eq!(message(json!({})), "missing `path` (e.g. alerts)");
        assert!(
            message(json!({"path": "a", "secret": "x", "scheme": "hub"}))
                .starts_with("unknown scheme `hub`; use `squall`"),
        );
        assert_eq!(
            message(json!({"path": "a b"})),
            "path `a b` contains ` `; use letters, digits, `_`, `-` and `/`"
        );
    }

    fn write(dir: &std::path::Path, name: &str, yaml: &str) {
        std::fs::create_dir_all(dir.join("sensors")).unwrap();
        std::fs::write(dir.join("sensors").join(name), yaml).unwrap();
    }

    #[test]
    fn find_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.yaml",
            "name: a\ntype: webhook\nconfig: {path: /alerts, secret: k}\n",
        );
        write(
            dir.path(),
            "b.yaml",
            "name: b\ntype: webhook\nconfig: {path: ops/x}\n",
        );
        write(
            dir.path(),
            "c.yaml",
            "name: c\ntype: webhook\nenabled: false\nconfig: {path: off}\n",
        );
        write(
            dir.path(),
            "d.yaml",
            "name: d\ntype: interval\nconfig: {every: 1m}\n",
        );
        let content =
            squall_core::content::load(dir.path(), &crate::builtin()).expect("valid content");
        let a = find(&content, "alerts").unwrap();
        assert_eq!(a.reference, "site.a");
        assert_eq!(secret(a).as_deref(), Some("k"));
        assert_eq!(find(&content, "/ops/x/").unwrap().reference, "site.b");
        assert!(secret(find(&content, "ops/x").unwrap()).is_none());
        assert!(find(&content, "off").is_none());
        assert!(find(&content, "nope").is_none());
        assert!(find(&content, "a b").is_none());

        // A second enabled sensor on the same path is refused, naming the first.
        write(
            dir.path(),
            "e.yaml",
            "name: e\ntype: webhook\nconfig: {path: /alerts/}\n",
        );
        let problems = squall_core::content::load(dir.path(), &crate::builtin())
            .expect_err("two sensors on one path")
            .to_string();
        assert!(
            problems.contains(
                "sensors/e.yaml:1:1: webhook path `alerts` is already served by sensor `site.a`"
            ),
            "{problems}"
        );
    }
}
