//! Limits on what Squall accepts, so that everything it stores can be read back.
//!
//! The store keeps JSON documents, and JSON readers bound how deep they recurse (serde_json
//! stops at 128 levels). A value nested deeper than that could be stored but never read
//! again, and one such record would poison every listing of its kind. So every value that
//! comes from outside — trigger payloads (webhook and API bodies, sensor events),
//! execution parameters (API, CLI, rules, workflow tasks) and action results (every
//! runner, rhai scripts and a shell's JSON output included) — may nest at most
//! [`MAX_DEPTH`] levels. A stored record wraps such a value a few levels deeper (an
//! execution's `parameters`, a trigger's `payload.body`); [`MAX_STORED_DEPTH`] bounds the
//! whole stored document and leaves room below the reader's limit.
//!
//! Depth counts containers: `1` and `"a"` have depth 0, `[]` and `{}` 1, `{"a": [1]}` 2.

use crate::model::Json;

/// Deepest nesting of arrays and objects accepted in a value from outside.
pub const MAX_DEPTH: usize = 64;

/// Deepest nesting of a whole document the store writes (a record around a value of at
/// most [`MAX_DEPTH`] levels). Below serde_json's reader limit of 128.
pub const MAX_STORED_DEPTH: usize = 100;

/// A value nests deeper than a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} nests more than {limit} levels of arrays/objects (at `{path}`); the limit is {limit} levels: flatten the data or send it as a string")]
pub struct TooDeep {
    /// What was checked (`the trigger payload`, `parameters`, `the result`).
    pub what: String,
    /// The limit that was exceeded.
    pub limit: usize,
    /// Where the limit was exceeded: the path of the first container one level too deep,
    /// shortened in the middle when long (`body.a[0][0] … [0][0]`).
    pub path: String,
}

/// The depth of `value` (containers nested; see the module docs). Iterative: any depth
/// is measured without recursion.
pub fn depth(value: &Json) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&Json, usize)> = vec![(value, 1)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Json::Array(items) => {
                deepest = deepest.max(d);
                stack.extend(items.iter().map(|i| (i, d + 1)));
            }
            Json::Object(map) => {
                deepest = deepest.max(d);
                stack.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Check that `value` nests at most `limit` levels; `what` names it in the error and
/// `root` is the path prefix of its members (`""` for none).
pub fn check(value: &Json, limit: usize, what: &str, root: &str) -> Result<(), TooDeep> {
    // Depth-first with the path of the current container, so the error can say where.
    let mut path: Vec<String> = Vec::new();
    // (value, its depth, the path length of its parent, its path segment)
    let mut stack: Vec<(&Json, usize, usize, String)> = vec![(value, 1, 0, String::new())];
    while let Some((v, d, parent_len, segment)) = stack.pop() {
        if !v.is_array() && !v.is_object() {
            continue;
        }
        path.truncate(parent_len);
        path.push(segment);
        if d > limit {
            return Err(TooDeep {
                what: what.to_string(),
                limit,
                path: render_path(root, &path),
            });
        }
        let here = path.len();
        match v {
            Json::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((item, d + 1, here, format!("[{i}]")));
                }
            }
            Json::Object(map) => {
                for (k, item) in map.iter().rev() {
                    stack.push((item, d + 1, here, key_segment(k)));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// [`check`] with [`MAX_DEPTH`], for a value from outside.
pub fn check_input(value: &Json, what: &str, root: &str) -> Result<(), TooDeep> {
    check(value, MAX_DEPTH, what, root)
}

/// `.key`, or `["key"]` when the key is not a plain name.
fn key_segment(k: &str) -> String {
    let plain = !k.is_empty()
        && k.len() <= 40
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!(".{k}")
    } else {
        let mut short: String = k.chars().take(40).collect();
        if short.len() < k.len() {
            short.push('…');
        }
        format!("[{}]", Json::String(short))
    }
}

/// The segments after the root (the first one is the root container itself, empty),
/// shortened to the first 6 and last 4 when longer.
fn render_path(root: &str, path: &[String]) -> String {
    let segs: Vec<&str> = path.iter().skip(1).map(String::as_str).collect();
    let body = if segs.len() > 12 {
        format!(
            "{} … {}",
            segs[..6].concat(),
            segs[segs.len() - 4..].concat()
        )
    } else {
        segs.concat()
    };
    let joined = format!("{root}{body}");
    let joined = joined.strip_prefix('.').unwrap_or(&joined).to_string();
    if joined.is_empty() {
        "the top level".to_string()
    } else {
        joined
    }
}

/// The nesting depth of JSON text, counted on its bytes without parsing (brackets inside
/// strings are skipped). For deciding whether a stored document can be decoded safely.
pub fn text_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A value nested `levels` deep: arrays around `1` (for tests and benchmarks).
pub fn nested_array(levels: usize) -> Json {
    let mut v = Json::from(1);
    for _ in 0..levels {
        v = Json::Array(vec![v]);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!([])), 1);
        assert_eq!(depth(&json!({"a": [1, {"b": {}}]})), 4);
        assert_eq!(depth(&nested_array(500)), 500);
        assert_eq!(text_depth(br#"{"a": "[[[{{", "b": [[1]]}"#), 3);
        assert_eq!(text_depth(br#"{"a": "\"[[", "b": 1}"#), 1);
        let deep = serde_json::to_vec(&nested_array(300)).unwrap();
        assert_eq!(text_depth(&deep), 300);
    }

    #[test]
    fn the_limit_is_inclusive_and_the_error_names_the_path() {
        assert!(check_input(&nested_array(MAX_DEPTH), "parameters", "").is_ok());
        let e = check_input(&json!({"x": nested_array(MAX_DEPTH)}), "parameters", "").unwrap_err();
        assert_eq!(e.limit, MAX_DEPTH);
        assert!(e.path.starts_with("x[0][0][0][0][0] … "), "{}", e.path);
        let msg = e.to_string();
        assert!(
            msg.contains("parameters nests more than 64 levels"),
            "{msg}"
        );

        let e = check(
            &json!({"a": [1, {"odd key": [[]]}]}),
            3,
            "the payload",
            "body",
        )
        .unwrap_err();
        assert_eq!(e.path, r#"body.a[1]["odd key"]"#);
        let e = check(&json!([[]]), 1, "v", "").unwrap_err();
        assert_eq!(e.path, "[0]");
        let e = check(&json!([]), 0, "v", "").unwrap_err();
        assert_eq!(e.path, "the top level");
    }

    #[test]
    fn siblings_do_not_confuse_the_path() {
        let v = json!({"a": [[1]], "b": {"c": [[[2]]]}});
        let e = check(&v, 3, "v", "").unwrap_err();
        assert_eq!(e.path, "b.c[0]");
    }
}
