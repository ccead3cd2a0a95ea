//! Helper functions for ops, registered on the shared engine, and the regex cache.

use super::convert;
use crate::locks::RwLockExt;
use base64::Engine as _;
use rand::Rng;
use regex::Regex;
use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

type FnResult<T> = Result<T, Box<EvalAltResult>>;

/// A failure of a helper, reported like a `throw` (message as is, position attached by rhai).
fn fail<T>(message: String) -> FnResult<T> {
    Err(message.into())
}

/// Register every helper on `engine`.
pub(super) fn register(engine: &mut Engine) {
    engine.register_fn("to_json", to_json);
    engine.register_fn("from_json", from_json);
    engine.register_fn("base64_encode", |s: &str| {
        base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
    });
    engine.register_fn("base64_decode", base64_decode);
    engine.register_fn("regex_match", regex_match);
    engine.register_fn("regex_captures", regex_captures);
    engine.register_fn("now", crate::model::now_rfc3339);
    engine.register_fn("parse_time", parse_time);
    engine.register_fn("random_password", random_password);
    register_default(engine);
    engine.register_fn("lower", |s: &str| s.to_lowercase());
    engine.register_fn("upper", |s: &str| s.to_uppercase());
}

/// `default(x, y)`: `x`, unless it is `()` or missing (a map property or variable that does
/// not exist, an array index out of bounds), then `y`. `default` is a reserved word in rhai,
/// so it is custom syntax rather than a function; `y` is only evaluated when needed.
fn register_default(engine: &mut Engine) {
    let syntax = ["default", "(", "$expr$", ",", "$expr$", ")"];
    let result = engine.register_custom_syntax(syntax, false, |ctx, inputs| {
        let (Some(first), Some(fallback)) = (inputs.first(), inputs.get(1)) else {
            return Ok(Dynamic::UNIT);
        };
        match ctx.eval_expression_tree(first) {
            Ok(v) if !v.is_unit() => Ok(v),
            Ok(_) => ctx.eval_expression_tree(fallback),
            Err(e) if is_missing(&e) => ctx.eval_expression_tree(fallback),
            Err(e) => Err(e),
        }
    });
    // The syntax is a constant known to be valid; a failure would only disable `default`.
    debug_assert!(result.is_ok(), "default syntax: {result:?}");
}

/// True for the errors meaning "this value does not exist".
fn is_missing(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::ErrorPropertyNotFound(..)
        | EvalAltResult::ErrorVariableNotFound(..)
        | EvalAltResult::ErrorArrayBounds(..)
        | EvalAltResult::ErrorIndexNotFound(..) => true,
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => is_missing(inner),
        _ => false,
    }
}

fn to_json(value: Dynamic) -> FnResult<String> {
    match convert::to_json(&value) {
        Ok(v) => Ok(v.to_string()),
        Err(e) => fail(format!("to_json: {e}")),
    }
}

fn from_json(text: &str) -> FnResult<Dynamic> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => Ok(convert::to_dynamic(&v)),
        Err(e) => fail(format!("from_json: invalid JSON: {e}")),
    }
}

fn base64_decode(text: &str) -> FnResult<String> {
    let bytes = match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
        Ok(b) => b,
        Err(e) => return fail(format!("base64_decode: invalid base64: {e}")),
    };
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(_) => fail("base64_decode: the decoded bytes are not UTF-8 text".to_string()),
    }
}

fn regex_match(text: &str, pattern: &str) -> FnResult<bool> {
    match cached_regex(pattern, false) {
        Ok(re) => Ok(re.is_match(text)),
        Err(e) => fail(format!("regex_match: {e}")),
    }
}

/// Capture groups of the first match: `[whole, group1, ...]`, `()` for a group that did not
/// participate; an empty array when nothing matches.
fn regex_captures(text: &str, pattern: &str) -> FnResult<Array> {
    let re = match cached_regex(pattern, false) {
        Ok(re) => re,
        Err(e) => return fail(format!("regex_captures: {e}")),
    };
    Ok(match re.captures(text) {
        None => Array::new(),
        Some(caps) => caps
            .iter()
            .map(|m| match m {
                Some(m) => Dynamic::from(ImmutableString::from(m.as_str())),
                None => Dynamic::UNIT,
            })
            .collect(),
    })
}

fn parse_time(text: &str) -> FnResult<i64> {
    match chrono::DateTime::parse_from_rfc3339(text.trim()) {
        Ok(t) => Ok(t.timestamp()),
        Err(e) => fail(format!(
            "parse_time: `{text}` is not an RFC 3339 time like 2024-05-01T12:00:00Z: {e}"
        )),
    }
}

/// Shortest and longest accepted password lengths.
const PASSWORD_LEN: std::ops::RangeInclusive<i64> = 8..=4096;

fn random_password(n: i64) -> FnResult<String> {
    if !PASSWORD_LEN.contains(&n) {
        return fail(format!(
            "random_password: length must be between {} and {}, got {n}",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        ));
    }
    let pw = generate_password(n as usize);
    crate::secrets::register(&pw);
    Ok(pw)
}

/// `n` (≥ 2) random letters and digits with at least one of each, from the thread's CSPRNG.
fn generate_password(n: usize) -> String {
    const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"0123456789";
    let mut rng = rand::thread_rng();
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            let i = rng.gen_range(0..LETTERS.len() + DIGITS.len());
            if i < LETTERS.len() {
                LETTERS[i]
            } else {
                DIGITS[i - LETTERS.len()]
            }
        })
        .collect();
    if !out.iter().any(u8::is_ascii_alphabetic) || !out.iter().any(u8::is_ascii_digit) {
        // Force one of each kind at two distinct random positions.
        let a = rng.gen_range(0..n);
        let b = (a + rng.gen_range(1..n)) % n;
        out[a] = LETTERS[rng.gen_range(0..LETTERS.len())];
        out[b] = DIGITS[rng.gen_range(0..DIGITS.len())];
    }
    String::from_utf8(out).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// Regex cache, shared with the rule criteria.

/// Compiled patterns kept at most; the cache is emptied when full (patterns come from
/// loaded content, so in practice it never fills).
const REGEX_CACHE_SIZE: usize = 1024;
/// Upper bound on the compiled size of one pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A pattern that does not compile (or compiles too large), quoted with its cause.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid regular expression `{pattern}`: {source}")]
pub(crate) struct RegexError {
    pub(crate) pattern: String,
    #[source]
    pub(crate) source: regex::Error,
}

/// Compile `pattern` (case-insensitively when asked), reusing a previous compilation.
pub(crate) fn cached_regex(pattern: &str, case_insensitive: bool) -> Result<Regex, RegexError> {
    type Cache = RwLock<HashMap<(String, bool), Regex>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| RwLock::new(HashMap::new()));
    let key = (pattern.to_string(), case_insensitive);
    if let Some(re) = cache.read_locked().get(&key) {
        return Ok(re.clone());
    }
    let re = regex::RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|source| RegexError {
            pattern: pattern.to_string(),
            source,
        })?;
    let mut cache = cache.write_locked();
    if cache.len() >= REGEX_CACHE_SIZE {
        cache.clear();
    }
    cache.insert(key, re.clone());
    Ok(re)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_letters_and_digits() {
        for n in [2, 3, 8, 64] {
            for _ in 0..200 {
                let pw = generate_password(n);
                assert_eq!(pw.len(), n);
                assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()), "{pw}");
                assert!(pw.bytes().any(|b| b.is_ascii_alphabetic()), "{pw}");
                assert!(pw.bytes().any(|b| b.is_ascii_digit()), "{pw}");
            }
        }
    }

    #[test]
    fn regex_cache_reuses_and_reports_errors() {
        let a = cached_regex("^a+$", false).unwrap();
        let b = cached_regex("^a+$", false).unwrap();
        assert_eq!(a.as_str(), b.as_str());
        assert!(cached_regex("^A+$", true).unwrap().is_match("aaa"));
        assert!(!cached_regex("^A+$", false).unwrap().is_match("aaa"));
        let err = cached_regex("(", false).unwrap_err();
        assert!(
            err.to_string().contains("invalid regular expression `(`"),
            "{err}"
        );
    }
}
