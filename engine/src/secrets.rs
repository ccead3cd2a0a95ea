//! Secret values known to this process, and masking of them.
//!
//! Squall masks secrets by value, not only by parameter name: once a value is known to be
//! secret (a `secret: true` parameter, a `${env:}`/`${file:}` reference, a
//! `random_password()` result) every occurrence of it in stored records, output chunks,
//! logs and API replies is replaced by `********`, wherever it travelled (published into a
//! workflow scope, echoed by a script, embedded in a URL).

use crate::model::{Json, MASK};
use std::collections::BTreeSet;
use std::sync::{OnceLock, RwLock};

/// Values shorter than this are not registered: masking `1` or `no` everywhere would
/// destroy output without protecting anything.
const MIN_SECRET_LEN: usize = 4;

fn registry() -> &'static RwLock<BTreeSet<String>> {
    static REG: OnceLock<RwLock<BTreeSet<String>>> = OnceLock::new();
    REG.get_or_init(|| RwLock::new(BTreeSet::new()))
}

/// Remember `value` as secret for the life of the process.
pub fn register(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut reg = registry().write().unwrap_or_else(|e| e.into_inner());
    if !reg.contains(value) {
        reg.insert(value.to_string());
    }
}

/// Register every string inside a JSON value as secret.
pub fn register_json(value: &Json) {
    match value {
        Json::String(s) => register(s),
        Json::Array(items) => items.iter().for_each(register_json),
        Json::Object(map) => map.values().for_each(register_json),
        _ => {}
    }
}

/// Register the secrets of `clear` that `masked` (its masked copy, made by an earlier
/// process) hides: wherever the masked copy shows the mask, the clear text there is a
/// secret. Used when a sealed value is opened after a restart, so that it stays masked.
pub fn register_masked(clear: &Json, masked: &Json) {
    match (clear, masked) {
        (Json::String(c), Json::String(m)) if m.contains(MASK) => {
            let pieces: Vec<&str> = m.split(MASK).collect();
            let Some(rest) = c.strip_prefix(pieces[0]) else {
                return;
            };
            let mut pos = c.len() - rest.len();
            for (i, piece) in pieces.iter().enumerate().skip(1) {
                let end = if i == pieces.len() - 1 {
                    // The last literal ends the text.
                    match c[pos..].strip_suffix(piece) {
                        Some(secret) => pos + secret.len(),
                        None => return,
                    }
                } else if piece.is_empty() {
                    return; // two masks side by side: no way to tell where one ends
                } else {
                    match c[pos..].find(piece) {
                        Some(at) => pos + at,
                        None => return,
                    }
                };
                register(&c[pos..end]);
                pos = end + piece.len();
            }
        }
        (Json::Array(c), Json::Array(m)) => {
            c.iter().zip(m).for_each(|(c, m)| register_masked(c, m));
        }
        (Json::Object(c), Json::Object(m)) => {
            for (k, v) in c {
                if let Some(mv) = m.get(k) {
                    register_masked(v, mv);
                }
            }
        }
        _ => {}
    }
}

/// True when no secret is registered (masking is then a no-op).
fn none_known() -> bool {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .is_empty()
}

/// Replace every known secret inside `text` with the mask.
pub fn mask_str(text: &str) -> String {
    if none_known() {
        return text.to_string();
    }
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    // Longest first, so a secret that contains another is masked whole.
    let mut secrets: Vec<&String> = reg.iter().filter(|s| text.contains(s.as_str())).collect();
    if secrets.is_empty() {
        return text.to_string();
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), MASK);
    }
    out
}

/// The known secrets that occur somewhere in `value` (so that a record holding them can
/// carry them, encrypted, across a restart and register them again).
pub fn found_in(value: &Json) -> Vec<String> {
    if none_known() {
        return Vec::new();
    }
    let mut strings = Vec::new();
    collect_strings(value, &mut strings);
    let reg = registry().read().unwrap_or_else(|e| e.into_inner());
    reg.iter()
        .filter(|secret| strings.iter().any(|s| s.contains(secret.as_str())))
        .cloned()
        .collect()
}

fn collect_strings<'a>(value: &'a Json, out: &mut Vec<&'a str>) {
    match value {
        Json::String(s) => out.push(s),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k);
            collect_strings(v, out)
        }),
        _ => {}
    }
}

/// Mask every known secret in every string of a JSON value (keys included).
pub fn mask_json(value: &Json) -> Json {
    if none_known() {
        return value.clone();
    }
    match value {
        Json::String(s) => Json::String(mask_str(s)),
        Json::Array(items) => Json::Array(items.iter().map(mask_json).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (mask_str(k), mask_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_masked_recovers_the_hidden_values() {
        let clear = serde_json::json!({
            "data": {"password": "whole-secret-a81f", "user": "plain"},
            "line": "user=u pw=inner-secret-5c2d end",
            "list": ["tail-secret-90ab"]
        });
        let masked = serde_json::json!({
            "data": {"password": MASK, "user": "plain"},
            "line": format!("user=u pw={MASK} end"),
            "list": [MASK]
        });
        register_masked(&clear, &masked);
        assert_eq!(mask_str("whole-secret-a81f"), MASK);
        assert_eq!(mask_str("x inner-secret-5c2d"), format!("x {MASK}"));
        assert_eq!(mask_str("tail-secret-90ab"), MASK);
        assert_eq!(mask_str("plain user=u pw= end"), "plain user=u pw= end");
    }
    use serde_json::json;

    #[test]
    fn masks_registered_values_wherever_they_appear() {
        register("hunter2-secret-value");
        let v = json!({"url": "https://u:hunter2-secret-value@h/", "n": 3, "l": ["hunter2-secret-value"]});
        let m = mask_json(&v);
        assert_eq!(
            m,
            json!({"url": "https://u:********@h/", "n": 3, "l": ["********"]})
        );
        assert_eq!(mask_str("pw=hunter2-secret-value;"), "pw=********;");
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(mask_str("abc ab"), "abc ab");
    }
}
