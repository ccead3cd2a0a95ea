//! How a webhook sensor with a `secret` checks a call that carries no API token, so that a
//! captured request cannot be sent again.
//!
//! Two schemes (`scheme:` in the sensor's config):
//!
//! - `squall` (the default): `X-Squall-Timestamp: <Unix seconds>` and
//!   `X-Squall-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`. A
//!   timestamp further than `tolerance` (default 5 min) from the server's clock is refused,
//!   and so is a signature already accepted while its timestamp is inside the window.
//! - `github`: what GitHub (and senders like it) send — `X-Hub-Signature-256:
//!   sha256=<hex HMAC-SHA256(secret, body)>`, which signs the body only, plus a delivery id
//!   header (`X-GitHub-Delivery` unless `delivery_header` says otherwise). Each delivery id,
//!   and each signature, is accepted once within `tolerance`.
//!
//! What was accepted is remembered by a [`ReplayGuard`](super::ReplayGuard).

use super::replay::Claim;
use super::WebhookConfig;
use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use squall_core::content::Sensor as SensorInstance;
use std::time::Duration;

/// The header carrying the signing time of the `squall` scheme.
pub const TIMESTAMP_HEADER: &str = "X-Squall-Timestamp";
/// The signature header of the `github` scheme.
pub const GITHUB_SIGNATURE_HEADER: &str = "X-Hub-Signature-256";
/// The delivery id header of the `github` scheme unless `delivery_header` is set.
pub const DEFAULT_DELIVERY_HEADER: &str = "X-GitHub-Delivery";
/// How far a timestamp may be from now, and how long a signature or delivery id is
/// remembered, unless `tolerance` is set.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);
/// The longest `tolerance` accepted.
pub const MAX_TOLERANCE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The signing scheme of a webhook sensor (`scheme:`, lower case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(rename_all = "lowercase")]
pub enum Scheme {
    /// Timestamped signatures (`X-Squall-Timestamp`, `X-Squall-Signature`).
    Squall,
    /// Body-only signatures (`X-Hub-Signature-256`) deduplicated by delivery id.
    Github,
}

impl<'de> Deserialize<'de> for Scheme {
    /// By name, an unknown one refused with what each scheme is.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "squall" => Ok(Scheme::Squall),
            "github" => Ok(Scheme::Github),
            other => Err(serde::de::Error::custom(format!(
                "unknown scheme `{other}`; use `squall` (timestamped signatures, the default) \
                 or `github` (X-Hub-Signature-256 with a delivery id)"
            ))),
        }
    }
}

/// Why a signed call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header is missing or malformed, or the signature is wrong (HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// The signature is right but its timestamp is outside the tolerance (HTTP 401).
    #[error("{0}")]
    Stale(String),
    /// The same signature or delivery id was accepted before (HTTP 409).
    #[error("{0}")]
    Replayed(String),
}

/// The signing settings of one webhook sensor with a secret.
#[derive(Debug, Clone)]
pub struct Signing {
    secret: String,
    /// The scheme.
    pub scheme: Scheme,
    /// The window (see the module documentation).
    pub tolerance: Duration,
    /// The delivery id header (`github` scheme).
    pub delivery_header: String,
}

impl Signing {
    /// The signing settings of `sensor`, when it has a non-empty `secret`. A config
    /// that does not decode (content is validated when it loads) has none, so calls to
    /// it need an operator token.
    pub fn of(sensor: &SensorInstance) -> Option<Signing> {
        Signing::from_config(&WebhookConfig::of(sensor)?)
    }

    /// The signing settings of a webhook config with a non-empty `secret`.
    pub fn from_config(config: &WebhookConfig) -> Option<Signing> {
        Some(Signing {
            secret: config.secret()?.to_string(),
            scheme: config.scheme.unwrap_or(Scheme::Squall),
            tolerance: config.tolerance(),
            delivery_header: config
                .delivery_header
                .clone()
                .unwrap_or_else(|| DEFAULT_DELIVERY_HEADER.to_string()),
        })
    }

    /// Check a call: `header` looks a request header up by name (case-insensitive),
    /// `now` is the current Unix time in seconds. On success, the [`Claim`] to register
    /// with the replay guard before the trigger is accepted.
    pub fn verify<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
        now: i64,
    ) -> Result<Claim, Refusal> {
        let window = i64::try_from(self.tolerance.as_secs()).unwrap_or(i64::MAX);
        match self.scheme {
            Scheme::Squall => {
                let usage = "sign \"<timestamp>.<body>\" with HMAC-SHA256 and the sensor's secret, send X-Squall-Timestamp: <Unix seconds> and X-Squall-Signature: sha256=<hex> (see docs/sensors.md), or use an operator token";
                let Some(ts_text) = header(TIMESTAMP_HEADER).map(str::trim) else {
                    return Err(Refusal::Unauthenticated(format!(
                        "missing {TIMESTAMP_HEADER}: {usage}"
                    )));
                };
                let Ok(ts) = ts_text.parse::<i64>() else {
                    return Err(Refusal::Unauthenticated(format!(
                        "{TIMESTAMP_HEADER} `{ts_text}` is not a Unix time in seconds: {usage}"
                    )));
                };
                let mut signed = Vec::with_capacity(ts_text.len() + 1 + body.len());
                signed.extend_from_slice(ts_text.as_bytes());
                signed.push(b'.');
                signed.extend_from_slice(body);
                let Some(mac) = check_mac(&self.secret, &signed, header(super::SIGNATURE_HEADER))
                else {
                    return Err(Refusal::Unauthenticated(format!(
                        "missing or invalid {}: {usage}",
                        super::SIGNATURE_HEADER
                    )));
                };
                let age = now.saturating_sub(ts);
                if age.saturating_abs() > window {
                    let when = if age > 0 {
                        format!("{age} s old")
                    } else {
                        format!("{} s in the future", -age)
                    };
                    return Err(Refusal::Stale(format!(
                        "{TIMESTAMP_HEADER} is {when}; this webhook accepts signatures made within {window} s of its clock (`tolerance`): sign the request again with the current time"
                    )));
                }
                Ok(Claim {
                    keys: vec![(mac, "signature")],
                    expires_at: ts.saturating_add(window),
                })
            }
            Scheme::Github => {
                let Some(mac) = check_mac(&self.secret, body, header(GITHUB_SIGNATURE_HEADER))
                else {
                    return Err(Refusal::Unauthenticated(format!(
                        "missing or invalid {GITHUB_SIGNATURE_HEADER}: send sha256=<hex HMAC-SHA256 of the body with the sensor's secret>, or use an operator token"
                    )));
                };
                let delivery = header(&self.delivery_header)
                    .map(str::trim)
                    .filter(|d| !d.is_empty());
                let Some(delivery) = delivery else {
                    return Err(Refusal::Unauthenticated(format!(
                        "missing {}: this webhook accepts each delivery id once, so a signed call must carry one",
                        self.delivery_header
                    )));
                };
                let id: [u8; 32] = Sha256::digest(delivery.as_bytes()).into();
                Ok(Claim {
                    keys: vec![(id, "delivery id"), (mac, "signature")],
                    expires_at: now.saturating_add(window),
                })
            }
        }
    }
}

/// The MAC in `header` (`sha256=<hex>` or `<hex>`) when it is the HMAC-SHA256 of `data`
/// under `secret` (compared in constant time).
fn check_mac(secret: &str, data: &[u8], header: Option<&str>) -> Option<[u8; 32]> {
    if !super::verify_signature(secret, data, header) {
        return None;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// `sha256=<hex>` signature of a `squall`-scheme call made at `timestamp` (for senders and
/// tests): the HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn sign_timestamped(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    super::sign(secret, &signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn signing(scheme: Scheme) -> Signing {
        Signing {
            secret: "s3cret".into(),
            scheme,
            tolerance: DEFAULT_TOLERANCE,
            delivery_header: DEFAULT_DELIVERY_HEADER.into(),
        }
    }

    fn check(
        s: &Signing,
        headers: &[(&str, &str)],
        body: &[u8],
        now: i64,
    ) -> Result<Claim, Refusal> {
        let map: HashMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        s.verify(
            |name| map.get(&name.to_ascii_lowercase()).map(String::as_str),
            body,
            now,
        )
    }

    #[test]
    fn squall_scheme_signs_the_timestamp_and_the_body() {
        let s = signing(Scheme::Squall);
        let body = br#"{"a":1}"#;
        let now = 1_700_000_000;
        let sig = sign_timestamped("s3cret", now - 10, body);
        let ts = (now - 10).to_string();
        let ok = check(
            &s,
            &[("X-Squall-Timestamp", &ts), ("X-Squall-Signature", &sig)],
            body,
            now,
        )
        .expect("fresh and well signed");
        assert_eq!(ok.expires_at, now - 10 + 300);
        assert_eq!(ok.keys.len(), 1);
        // The body alone (the old scheme) is not enough.
        let body_only = crate::sensors::webhook::sign("s3cret", body);
        let e = check(
            &s,
            &[
                ("X-Squall-Timestamp", &ts),
                ("X-Squall-Signature", &body_only),
            ],
            body,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::Unauthenticated(m) if m.contains("invalid X-Squall-Signature")),
            "{e:?}"
        );
        // Another timestamp with the same signature is refused.
        let other = (now - 9).to_string();
        assert!(check(
            &s,
            &[("X-Squall-Timestamp", &other), ("X-Squall-Signature", &sig)],
            body,
            now
        )
        .is_err());
        let e = check(&s, &[("X-Squall-Signature", &sig)], body, now).unwrap_err();
        assert!(
            matches!(&e, Refusal::Unauthenticated(m) if m.starts_with("missing X-Squall-Timestamp")),
            "{e:?}"
        );
        let e = check(
            &s,
            &[
                ("X-Squall-Timestamp", "yesterday"),
                ("X-Squall-Signature", &sig),
            ],
            body,
            now,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::Unauthenticated(m) if m.contains("`yesterday` is not a Unix time")),
            "{e:?}"
        );
    }

    #[test]
    fn squall_scheme_refuses_old_and_future_timestamps() {
        let s = signing(Scheme::Squall);
        let now = 1_700_000_000;
        for (ts, says) in [(now - 301, "301 s old"), (now + 400, "400 s in the future")] {
            let sig = sign_timestamped("s3cret", ts, b"x");
            let ts = ts.to_string();
            let e = check(
                &s,
                &[("X-Squall-Timestamp", &ts), ("X-Squall-Signature", &sig)],
                b"x",
                now,
            )
            .unwrap_err();
            assert!(
                matches!(&e, Refusal::Stale(m) if m.contains(says) && m.contains("300 s")),
                "{e:?}"
            );
        }
        let ts = now - 300;
        let sig = sign_timestamped("s3cret", ts, b"x");
        assert!(check(
            &s,
            &[
                ("X-Squall-Timestamp", &ts.to_string()),
                ("X-Squall-Signature", &sig)
            ],
            b"x",
            now
        )
        .is_ok());
    }

    #[test]
    fn github_scheme_needs_the_body_signature_and_a_delivery_id() {
        let s = signing(Scheme::Github);
        let body = b"{\"zen\":\"hi\"}";
        let sig = crate::sensors::webhook::sign("s3cret", body);
        let c = check(
            &s,
            &[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", "d-1")],
            body,
            50,
        )
        .unwrap();
        assert_eq!(c.keys.len(), 2);
        assert_eq!(c.keys[0].1, "delivery id");
        assert_eq!(c.expires_at, 350);
        let other = check(
            &s,
            &[("X-Hub-Signature-256", &sig), ("X-GitHub-Delivery", "d-2")],
            body,
            50,
        )
        .unwrap();
        assert_ne!(
            c.keys[0].0, other.keys[0].0,
            "delivery ids are keys of their own"
        );
        let e = check(&s, &[("X-Hub-Signature-256", &sig)], body, 50).unwrap_err();
        assert!(
            matches!(&e, Refusal::Unauthenticated(m) if m.starts_with("missing X-GitHub-Delivery")),
            "{e:?}"
        );
        let e = check(
            &s,
            &[
                ("X-Hub-Signature-256", "sha256=00"),
                ("X-GitHub-Delivery", "d-1"),
            ],
            body,
            50,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Refusal::Unauthenticated(m) if m.contains("X-Hub-Signature-256")),
            "{e:?}"
        );
    }

    #[test]
    fn settings_come_from_the_config() {
        use serde_json::json;
        let of = |config: serde_json::Value| {
            let c = WebhookConfig::decode(&config).expect("decodes");
            assert!(c.problems().is_empty(), "{:?}", c.problems());
            Signing::from_config(&c)
        };
        assert!(of(json!({"path": "a"})).is_none());
        let s = of(json!({"path": "a", "secret": "k"})).expect("signed");
        assert_eq!(
            (s.scheme, s.tolerance, s.delivery_header.as_str()),
            (Scheme::Squall, DEFAULT_TOLERANCE, DEFAULT_DELIVERY_HEADER)
        );
        let s = of(json!({"path": "a", "secret": "k", "scheme": "github",
            "tolerance": "10m", "delivery_header": "X-Id"}))
        .expect("signed");
        assert_eq!(
            (s.scheme, s.tolerance, s.delivery_header.as_str()),
            (Scheme::Github, Duration::from_secs(600), "X-Id")
        );
        let s = of(json!({"path": "a", "secret": "k", "tolerance": 90})).expect("signed");
        assert_eq!(s.tolerance, Duration::from_secs(90));
    }

    #[test]
    fn tolerance_settings() {
        use serde_json::json;
        let problems = |tolerance: serde_json::Value| match WebhookConfig::decode(
            &json!({"path": "a", "secret": "k", "tolerance": tolerance}),
        ) {
            Ok(c) => c.problems(),
            Err(e) => vec![e],
        };
        assert!(problems(json!("10m")).is_empty());
        assert!(problems(json!(90)).is_empty());
        for bad in [json!("8d"), json!(0), json!("0s")] {
            let p = problems(bad.clone());
            assert_eq!(p.len(), 1, "{bad}: {p:?}");
            assert_eq!(p[0].0, "tolerance");
            assert!(p[0].1.contains("7d"), "{bad}: {p:?}");
        }
        let p = problems(json!(true));
        assert_eq!(p[0].0, "tolerance", "{p:?}");
        assert!(p[0].1.contains("a duration such as `5m`"), "{p:?}");
    }
}
