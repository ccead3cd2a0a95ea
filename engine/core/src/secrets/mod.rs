//! Secret values known to this process, and masking of them.
//!
//! Squall masks secrets by value, not only by parameter name: once a value is known to be
//! secret (a `secret: true` parameter, a `${env:}`/`${file:}` reference, a
//! `random_password()` result) every occurrence of it in stored records, output chunks,
//! logs and API replies is replaced by `********`, wherever it travelled (published into a
//! workflow scope, echoed by a script, embedded in a URL).
//!
//! The set is bounded (see [`registry`]): values still used by the loaded content, pack
//! configuration or API tokens are pinned, values registered while an execution runs are
//! kept at least until it ends, and beyond that at most [`MAX_KEPT`] values
//! ([`MAX_KEPT_BYTES`] bytes) are remembered, the least recently registered forgotten first.
//! Masking uses one Aho-Corasick automaton over the whole set, rebuilt only when the set
//! changes.

#[cfg(test)]
mod bench_tests;
mod matcher;
pub mod registry;
mod stream;

pub use registry::{Registry, Stats, MAX_KEPT, MAX_KEPT_BYTES, MIN_SECRET_LEN};
pub use stream::StreamMasker;

use crate::model::{Json, MASK};
use std::sync::OnceLock;

/// The process-wide registry.
fn global() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| Registry::new(MAX_KEPT, MAX_KEPT_BYTES))
}

/// Remember `value` as secret (values shorter than [`MIN_SECRET_LEN`] are ignored). It
/// stays known while pinned, while an execution that was running when it was registered
/// runs, and otherwise until [`MAX_KEPT`] more recent values push it out.
pub fn register(value: &str) {
    global().register(value);
}

/// Remember `value` as secret for the life of the process (API tokens, credentials of
/// the process itself).
pub fn keep(value: &str) {
    global().keep(value);
}

/// Values pinned as secret for as long as this lives (the loaded content holds one for
/// its `${env:}`/`${file:}` values and secret configuration).
#[derive(Debug, Default)]
pub struct Pins(Vec<String>);

impl Pins {
    /// Pin every value of `values` (registering it).
    pub fn new(values: impl IntoIterator<Item = String>) -> Pins {
        let mut v: Vec<String> = values
            .into_iter()
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .collect();
        v.sort();
        v.dedup();
        for s in &v {
            global().pin(s);
        }
        Pins(v)
    }

    /// How many values are pinned.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is pinned.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        for s in &self.0 {
            global().unpin(s);
        }
    }
}

/// While this lives (an execution runs), no value registered after its start is forgotten.
#[derive(Debug)]
pub struct Hold(u64);

/// Start a [`Hold`] for an execution about to run with `parameters` (in clear); the known
/// secrets among them are registered again, so they count as used now.
pub fn hold(parameters: &Json) -> Hold {
    let h = Hold(global().hold_start());
    for s in found_in(parameters) {
        register(&s);
    }
    h
}

impl Drop for Hold {
    fn drop(&mut self) {
        global().hold_end(self.0);
    }
}

/// Figures about the process-wide set.
pub fn stats() -> Stats {
    global().stats()
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
    global().is_empty()
}

/// Replace every known secret inside `text` with the mask.
pub fn mask_str(text: &str) -> String {
    if none_known() {
        return text.to_string();
    }
    global().matcher().mask(text)
}

/// The known secrets that occur somewhere in the string values of `value` (so that a
/// record holding them can carry them, encrypted, across a restart and register them
/// again).
pub fn found_in(value: &Json) -> Vec<String> {
    if none_known() {
        return Vec::new();
    }
    let m = global().matcher();
    let mut strings = Vec::new();
    collect_strings(value, &mut strings);
    let mut ids: Vec<usize> = strings
        .iter()
        .flat_map(|s| m.find(s))
        .map(|(_, _, id)| id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter().map(|id| m.value(id).to_string()).collect()
}

fn collect_strings<'a>(value: &'a Json, out: &mut Vec<&'a str>) {
    match value {
        Json::String(s) => out.push(s),
        Json::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Json::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// Mask every known secret in every string value of a JSON value. Object keys are left
/// as they are: they are field names (`stdout`, `exit_code`...), and a secret that happens
/// to equal one must not rename everyone's fields.
pub fn mask_json(value: &Json) -> Json {
    if none_known() {
        return value.clone();
    }
    let m = global().matcher();
    mask_json_with(&m, value)
}

fn mask_json_with(m: &matcher::Matcher, value: &Json) -> Json {
    match value {
        Json::String(s) => Json::String(m.mask(s)),
        Json::Array(items) => Json::Array(items.iter().map(|v| mask_json_with(m, v)).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask_json_with(m, v)))
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
    fn a_secret_equal_to_a_field_name_leaves_field_names_intact() {
        // Unusual names: the registry is process-wide and other tests run beside this one
        // (the integration test uses `stdout` and `exit_code` in a process of its own).
        register("field-name-7f3a");
        let v = json!({"field-name-7f3a": "x field-name-7f3a", "n": {"field-name-7f3a": ["field-name-7f3a"]}});
        assert_eq!(
            mask_json(&v),
            json!({"field-name-7f3a": "x ********", "n": {"field-name-7f3a": ["********"]}})
        );
        assert_eq!(
            found_in(&json!({"field-name-7f3a": 1})),
            Vec::<String>::new()
        );
    }

    #[test]
    fn short_values_are_not_registered() {
        register("ab");
        assert_eq!(mask_str("abc ab"), "abc ab");
    }
}
