//! Reading stored documents back: decoding that tolerates the deep records older versions
//! could write, and listings that go on past a record that cannot be read.
//!
//! A record that does not decode (damaged on disk, or written by an older Squall that let
//! too deep a value in) must never take a listing or the start-up down with it: listings
//! skip it, log an error naming its key and count it in [`Listing::skipped`]; reading it
//! by id gives [`StoreError::Corrupt`] naming the key; `squall store check` lists them all.

use super::StoreError;
use crate::model::Json;
use serde::de::DeserializeOwned;

/// Deepest stored document decoded at all. serde_json's reader stops at 128 levels;
/// records up to this depth (the deepest an older Squall could write: rhai results of
/// 200 levels inside a record) are decoded again without that limit.
const READ_DEPTH: usize = 256;

/// Decode the document stored under `key`.
pub(crate) fn decode<T: DeserializeOwned + Send>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(first) => {
            let depth = crate::limits::text_depth(bytes);
            if !(128..=READ_DEPTH).contains(&depth) {
                return Err(super::corrupt(key, first));
            }
            // Deeper than the default reader allows, but bounded: parse it without
            // recursion, then decode the value on a thread with a stack sized for it.
            let decoded = std::thread::scope(|s| {
                std::thread::Builder::new()
                    .stack_size(16 * 1024 * 1024)
                    .spawn_scoped(s, || {
                        let mut v = parse_deep(bytes)?;
                        clip(&mut v, 1);
                        serde_json::from_value::<T>(v).map_err(DeepError::Decode)
                    })
                    .map(|h| h.join())
            });
            match decoded {
                Ok(Ok(Ok(v))) => {
                    tracing::warn!(key = %key, depth, "a stored record nests deeper than this version accepts (an older version wrote it): its parts deeper than {} levels are read as JSON text", crate::limits::MAX_STORED_DEPTH);
                    Ok(v)
                }
                Ok(Ok(Err(e))) => Err(super::corrupt(key, e)),
                _ => Err(super::corrupt(key, first)),
            }
        }
    }
}

/// Replace every array or object deeper than [`crate::limits::MAX_STORED_DEPTH`] by a
/// string of its JSON text, so that what is read can be served to any JSON reader.
/// `depth` is that of `v`; recursion is bounded by [`READ_DEPTH`].
fn clip(v: &mut Json, depth: usize) {
    if !(v.is_array() || v.is_object()) {
        return;
    }
    if depth > crate::limits::MAX_STORED_DEPTH {
        *v = Json::String(serde_json::to_string(v).unwrap_or_default());
        return;
    }
    match v {
        Json::Array(items) => items.iter_mut().for_each(|i| clip(i, depth + 1)),
        Json::Object(map) => map.values_mut().for_each(|i| clip(i, depth + 1)),
        _ => {}
    }
}

/// Parse JSON text into a value without recursing (any depth). Strings and numbers are
/// read by serde_json itself, one token at a time.
fn parse_deep(bytes: &[u8]) -> Result<Json, DeepError> {
    enum Open {
        Array(Vec<Json>),
        Object(serde_json::Map<String, Json>, Option<String>),
    }
    let text = std::str::from_utf8(bytes)?;
    let b = text.as_bytes();
    let mut i = 0;
    let mut stack: Vec<Open> = Vec::new();
    let mut done: Option<Json> = None;
    let bad = |at: usize, what: &'static str| DeepError::Syntax { what, at };
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut value: Option<Json> = None;
        match b[i] {
            b'[' => {
                stack.push(Open::Array(Vec::new()));
                i += 1;
            }
            b'{' => {
                stack.push(Open::Object(serde_json::Map::new(), None));
                i += 1;
            }
            b']' => {
                i += 1;
                match stack.pop() {
                    Some(Open::Array(items)) => value = Some(Json::Array(items)),
                    _ => return Err(bad(i, "unexpected `]`")),
                }
            }
            b'}' => {
                i += 1;
                match stack.pop() {
                    Some(Open::Object(map, None)) => value = Some(Json::Object(map)),
                    _ => return Err(bad(i, "unexpected `}`")),
                }
            }
            b',' | b':' => i += 1,
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                let s: String = serde_json::from_str(text.get(start..i.min(b.len())).unwrap_or(""))
                    .map_err(|source| DeepError::Token {
                        what: "string",
                        at: start,
                        source,
                    })?;
                match stack.last_mut() {
                    Some(Open::Object(_, pending @ None)) => *pending = Some(s),
                    _ => value = Some(Json::String(s)),
                }
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(b[i], b',' | b']' | b'}' | b':')
                    && !b[i].is_ascii_whitespace()
                {
                    i += 1;
                }
                let v: Json =
                    serde_json::from_str(&text[start..i]).map_err(|source| DeepError::Token {
                        what: "value",
                        at: start,
                        source,
                    })?;
                value = Some(v);
            }
        }
        if let Some(v) = value {
            match stack.last_mut() {
                Some(Open::Array(items)) => items.push(v),
                Some(Open::Object(map, pending)) => match pending.take() {
                    Some(k) => {
                        map.insert(k, v);
                    }
                    None => return Err(bad(i, "a value where a key was expected")),
                },
                None if done.is_none() => done = Some(v),
                None => return Err(bad(i, "trailing characters")),
            }
        }
    }
    if !stack.is_empty() {
        return Err(DeepError::Truncated);
    }
    done.ok_or(DeepError::Empty)
}

/// Why a deep stored document could not be read again.
#[derive(Debug, thiserror::Error)]
enum DeepError {
    #[error("not UTF-8 text: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    #[error("{what} at byte {at}")]
    Syntax { what: &'static str, at: usize },
    #[error("bad {what} at byte {at}: {source}")]
    Token {
        what: &'static str,
        at: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("unexpected end of the document")]
    Truncated,
    #[error("empty document")]
    Empty,
    #[error(transparent)]
    Decode(serde_json::Error),
}

/// Records listed, and the keys of those that could not be read and were left out.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// The records read, in listing order.
    pub items: Vec<T>,
    /// Keys of records skipped because they do not decode (each logged as an error).
    pub skipped: Vec<String>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Listing {
            items: Vec::new(),
            skipped: Vec::new(),
        }
    }
}

impl<T> Listing<T> {
    /// Keep `result` when it decoded; else log it and note its key as skipped. Other
    /// store errors (I/O) are returned: they are not about one record.
    pub(crate) fn take(&mut self, result: Result<T, StoreError>) -> Result<(), StoreError> {
        match result {
            Ok(v) => {
                self.items.push(v);
                Ok(())
            }
            Err(e) => self.skip(e),
        }
    }

    /// Note a record that does not decode (logged); other errors are returned.
    pub(crate) fn skip(&mut self, e: StoreError) -> Result<(), StoreError> {
        match e {
            StoreError::Corrupt { key, source } => {
                tracing::error!(key = %key, error = %source, "skipping a stored record that cannot be read (run `squall store check`)");
                self.skipped.push(key);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// A one-line warning about the skipped records, when there are any.
    pub fn warning(&self) -> Option<String> {
        skipped_warning(&self.skipped)
    }
}

/// `N stored record(s) could not be read and were left out: k1, k2, …` for a non-empty
/// list of keys.
pub fn skipped_warning(skipped: &[String]) -> Option<String> {
    if skipped.is_empty() {
        return None;
    }
    let shown: Vec<&str> = skipped.iter().take(5).map(String::as_str).collect();
    let more = if skipped.len() > 5 { ", …" } else { "" };
    Some(format!(
        "{} stored record(s) could not be read and were left out: {}{more}; run `squall store check` (docs/operations.md, \"A damaged data directory\")",
        skipped.len(),
        shown.join(", ")
    ))
}

impl<T> std::ops::Deref for Listing<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.items
    }
}

impl<T> IntoIterator for Listing<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[cfg(test)]
mod tests;
