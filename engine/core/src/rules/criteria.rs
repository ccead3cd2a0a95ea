//! StackStorm-style rule criteria: `path: {type: op, pattern: value}`.
//!
//! Semantics (`value` is the looked-up field, `pattern` the operand):
//!
//! - A missing field (or a JSON `null`, as in StackStorm) makes `exists` false, `nexists`
//!   true and every other operator false — never an error.
//! - `equals`/`nequals`: numbers compare numerically (`3 == 3.0`); a number and a string
//!   that parses as a number compare numerically (`3` equals `"3"`); a boolean and the string
//!   `"true"`/`"false"` compare as booleans; anything else compares as JSON values.
//! - `iequals`: strings, case-insensitive.
//! - `contains`/`ncontains`: substring of a string, element of an array (with `equals`
//!   semantics) or key of a map. `icontains` is the case-insensitive form (strings, or
//!   string elements of an array).
//! - `startswith`/`endswith`: strings.
//! - `regex`/`iregex`: like Python's `re.match` used by StackStorm: the pattern must match at
//!   the start of the value (not necessarily the end; add `$` for that); `.` matches newlines.
//! - `matchwildcard`: shell-style `*` and `?` over the whole value.
//! - `lessthan`/`greaterthan`: `value < pattern` / `value > pattern`, numbers or numeric
//!   strings.
//! - `inside`/`ninside`: the value is an element of the pattern array, or a substring of the
//!   pattern string.
//! - `timediff_lt`/`timediff_gt`: the value is an RFC 3339 time (or unix seconds); true when
//!   `now - value` is less / greater than `pattern` seconds.
//!
//! A value of the wrong type for an operator (e.g. `lessthan` on `"abc"`) is an error.

use serde_json::Value;

/// A criterion that cannot be checked or evaluated. Display = the message for the rule
/// author (it names the operator and the fix).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CriteriaError {
    /// Not one of [`OPERATORS`].
    #[error("unknown criteria operator `{0}`; use one of: {ops}", ops = OPERATORS.join(", "))]
    UnknownOperator(String),
    /// Every operator but `exists`/`nexists` needs a pattern.
    #[error("criteria operator `{0}` needs a `pattern`")]
    MissingPattern(String),
    /// `timediff_*` with a negative number of seconds.
    #[error("criteria operator `{op}` needs a non-negative number of seconds, got {pattern}")]
    NegativeSeconds { op: String, pattern: Value },
    /// A `regex`/`iregex` pattern that does not compile.
    #[error("criteria operator `{op}`: invalid regular expression `{pattern}`: {source}")]
    InvalidRegex {
        op: String,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// A `regex`/`iregex` pattern over the compiled-size limit.
    #[error("criteria operator `{op}`: regular expression `{pattern}` is too large")]
    RegexTooLarge { op: String, pattern: String },
    /// A `timediff_*` value that is a string but not an RFC 3339 time.
    #[error("criteria operator `{op}` needs an RFC 3339 time like 2024-05-01T12:00:00Z, but the value is \"{value}\"")]
    NotATime {
        op: String,
        value: String,
        #[source]
        source: chrono::ParseError,
    },
    /// A pattern or value of a type the operator does not take; `problem` says which.
    #[error("criteria operator `{op}` {problem}")]
    WrongType { op: String, problem: String },
}

fn wrong(op: &str, problem: String) -> CriteriaError {
    CriteriaError::WrongType {
        op: op.to_string(),
        problem,
    }
}

/// Every supported operator name.
pub const OPERATORS: &[&str] = &[
    "equals",
    "nequals",
    "iequals",
    "contains",
    "ncontains",
    "icontains",
    "startswith",
    "endswith",
    "regex",
    "iregex",
    "matchwildcard",
    "lessthan",
    "greaterthan",
    "exists",
    "nexists",
    "inside",
    "ninside",
    "timediff_lt",
    "timediff_gt",
];

/// Check at load time that `op` exists and `pattern` has the right shape.
/// Err names the operator and the fix.
pub fn check(op: &str, pattern: Option<&Value>) -> Result<(), CriteriaError> {
    if !OPERATORS.contains(&op) {
        return Err(CriteriaError::UnknownOperator(op.to_string()));
    }
    if matches!(op, "exists" | "nexists") {
        return Ok(());
    }
    let pattern = match pattern {
        Some(p) if !p.is_null() => p,
        _ => return Err(CriteriaError::MissingPattern(op.to_string())),
    };
    match op {
        "iequals" | "icontains" | "startswith" | "endswith" | "matchwildcard" => {
            string_pattern(op, pattern).map(|_| ())
        }
        "regex" | "iregex" => regex_for(op, pattern).map(|_| ()),
        "lessthan" | "greaterthan" => number_pattern(op, pattern).map(|_| ()),
        "timediff_lt" | "timediff_gt" => {
            let secs = number_pattern(op, pattern)?;
            if secs < 0.0 {
                return Err(CriteriaError::NegativeSeconds {
                    op: op.to_string(),
                    pattern: pattern.clone(),
                });
            }
            Ok(())
        }
        "inside" | "ninside" => match pattern {
            Value::Array(_) | Value::String(_) => Ok(()),
            other => Err(wrong(
                op,
                format!(
                    "needs a list or a string as `pattern`, got {}",
                    type_name(other)
                ),
            )),
        },
        // equals, nequals, contains, ncontains: any pattern.
        _ => Ok(()),
    }
}

/// Evaluate one criterion. `value` is the looked-up field (`None` when the path does not
/// exist). Err for a malformed pattern or a value of the wrong type.
pub fn evaluate(
    op: &str,
    value: Option<&Value>,
    pattern: Option<&Value>,
) -> Result<bool, CriteriaError> {
    check(op, pattern)?;
    let value = match value {
        Some(v) if !v.is_null() => v,
        _ => return Ok(op == "nexists"),
    };
    let pattern = pattern.unwrap_or(&Value::Null);
    match op {
        "exists" => Ok(true),
        "nexists" => Ok(false),
        "equals" => Ok(loose_equals(value, pattern)),
        "nequals" => Ok(!loose_equals(value, pattern)),
        "iequals" => {
            let (v, p) = (string_value(op, value)?, string_pattern(op, pattern)?);
            Ok(v.to_lowercase() == p.to_lowercase())
        }
        "contains" => contains(op, value, pattern),
        "ncontains" => contains(op, value, pattern).map(|b| !b),
        "icontains" => icontains(op, value, pattern),
        "startswith" => Ok(string_value(op, value)?.starts_with(string_pattern(op, pattern)?)),
        "endswith" => Ok(string_value(op, value)?.ends_with(string_pattern(op, pattern)?)),
        "regex" | "iregex" => Ok(regex_for(op, pattern)?.is_match(string_value(op, value)?)),
        "matchwildcard" => {
            let p = string_pattern(op, pattern)?;
            Ok(wildmatch::WildMatch::new(p).matches(string_value(op, value)?))
        }
        "lessthan" => Ok(number_value(op, value)? < number_pattern(op, pattern)?),
        "greaterthan" => Ok(number_value(op, value)? > number_pattern(op, pattern)?),
        "inside" => inside(value, pattern),
        "ninside" => inside(value, pattern).map(|b| !b),
        "timediff_lt" => Ok(age_seconds(op, value)? < number_pattern(op, pattern)?),
        "timediff_gt" => Ok(age_seconds(op, value)? > number_pattern(op, pattern)?),
        other => Err(CriteriaError::UnknownOperator(other.to_string())),
    }
}

/// Look up a dotted path like `trigger.object.spec.engine` in `root` (array elements by
/// index: `items.0.name`). `None` when any segment is missing or the path is empty.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return None;
    }
    let mut cur = root;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(map) => map.get(seg)?,
            Value::Array(items) => items.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

// ---------------------------------------------------------------------------------------

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

fn string_pattern<'a>(op: &str, pattern: &'a Value) -> Result<&'a str, CriteriaError> {
    pattern.as_str().ok_or_else(|| {
        wrong(
            op,
            format!("needs a string `pattern`, got {}", type_name(pattern)),
        )
    })
}

fn string_value<'a>(op: &str, value: &'a Value) -> Result<&'a str, CriteriaError> {
    value.as_str().ok_or_else(|| {
        wrong(
            op,
            format!(
                "applies to strings, but the value is {} ({value})",
                type_name(value)
            ),
        )
    })
}

/// A number, or a string holding one.
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn number_pattern(op: &str, pattern: &Value) -> Result<f64, CriteriaError> {
    as_number(pattern)
        .ok_or_else(|| wrong(op, format!("needs a number as `pattern`, got {pattern}")))
}

fn number_value(op: &str, value: &Value) -> Result<f64, CriteriaError> {
    as_number(value).ok_or_else(|| wrong(op, format!("compares numbers, but the value is {value}")))
}

fn regex_for(op: &str, pattern: &Value) -> Result<regex::Regex, CriteriaError> {
    let p = string_pattern(op, pattern)?;
    // Anchored at the start like Python's re.match, with DOTALL.
    crate::expr::cached_regex(&format!("(?s)\\A(?:{p})"), op == "iregex").map_err(|_| {
        // The error of the pattern as written (not of the anchored form) is the one to show.
        match regex::Regex::new(p) {
            Err(source) => CriteriaError::InvalidRegex {
                op: op.to_string(),
                pattern: p.to_string(),
                source,
            },
            Ok(_) => CriteriaError::RegexTooLarge {
                op: op.to_string(),
                pattern: p.to_string(),
            },
        }
    })
}

fn loose_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Number(_), Value::String(_)) | (Value::String(_), Value::Number(_)) => {
            match (as_number(a), as_number(b)) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            }
        }
        (Value::Bool(x), Value::String(s)) | (Value::String(s), Value::Bool(x)) => s
            .trim()
            .eq_ignore_ascii_case(if *x { "true" } else { "false" }),
        _ => a == b,
    }
}

fn contains(op: &str, value: &Value, pattern: &Value) -> Result<bool, CriteriaError> {
    match value {
        Value::String(s) => match pattern {
            Value::String(p) => Ok(s.contains(p.as_str())),
            Value::Number(_) | Value::Bool(_) => Ok(s.contains(&pattern.to_string())),
            other => Err(wrong(
                op,
                format!(
                    "on a string needs a string `pattern`, got {}",
                    type_name(other)
                ),
            )),
        },
        Value::Array(items) => Ok(items.iter().any(|i| loose_equals(i, pattern))),
        Value::Object(map) => match pattern {
            Value::String(p) => Ok(map.contains_key(p)),
            other => Err(wrong(
                op,
                format!(
                    "on a map tests for a key and needs a string `pattern`, got {}",
                    type_name(other)
                ),
            )),
        },
        other => Err(wrong(
            op,
            format!(
                "applies to strings, lists and maps, but the value is {} ({other})",
                type_name(other)
            ),
        )),
    }
}

fn icontains(op: &str, value: &Value, pattern: &Value) -> Result<bool, CriteriaError> {
    let p = string_pattern(op, pattern)?.to_lowercase();
    match value {
        Value::String(s) => Ok(s.to_lowercase().contains(&p)),
        Value::Array(items) => Ok(items
            .iter()
            .any(|i| i.as_str().is_some_and(|s| s.to_lowercase() == p))),
        other => Err(wrong(
            op,
            format!(
                "applies to strings and lists, but the value is {} ({other})",
                type_name(other)
            ),
        )),
    }
}

fn inside(value: &Value, pattern: &Value) -> Result<bool, CriteriaError> {
    match pattern {
        Value::Array(items) => Ok(items.iter().any(|i| loose_equals(value, i))),
        Value::String(p) => match value {
            Value::String(v) => Ok(p.contains(v.as_str())),
            Value::Number(_) | Value::Bool(_) => Ok(p.contains(&value.to_string())),
            other => Err(wrong(
                "inside",
                format!(
                    "with a string `pattern` needs a string value, but the value is {}",
                    type_name(other)
                ),
            )),
        },
        other => Err(wrong(
            "inside",
            format!(
                "needs a list or a string as `pattern`, got {}",
                type_name(other)
            ),
        )),
    }
}

/// Seconds elapsed since the time in `value` (RFC 3339 string or unix seconds).
fn age_seconds(op: &str, value: &Value) -> Result<f64, CriteriaError> {
    let now = chrono::Utc::now();
    let then = match value {
        Value::String(s) => match chrono::DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => t.with_timezone(&chrono::Utc),
            Err(source) => {
                return Err(CriteriaError::NotATime {
                    op: op.to_string(),
                    value: s.clone(),
                    source,
                })
            }
        },
        Value::Number(n) => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            return Ok(now.timestamp_millis() as f64 / 1000.0 - secs);
        }
        other => {
            return Err(wrong(
                op,
                format!(
                    "needs a time, but the value is {} ({other})",
                    type_name(other)
                ),
            ))
        }
    };
    Ok((now - then).num_milliseconds() as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(op: &str, value: Value, pattern: Value) -> Result<bool, String> {
        evaluate(op, Some(&value), Some(&pattern)).map_err(|e| e.to_string())
    }

    #[test]
    fn check_validates_operators_and_patterns() {
        for op in OPERATORS {
            let pattern = match *op {
                "regex" | "iregex" | "iequals" | "icontains" | "startswith" | "endswith"
                | "matchwildcard" | "inside" | "ninside" => json!("x"),
                _ => json!(1),
            };
            assert_eq!(check(op, Some(&pattern)), Ok(()), "{op}");
        }
        assert!(check("equal", Some(&json!(1)))
            .unwrap_err()
            .to_string()
            .contains("unknown criteria operator `equal`"));
        assert!(check("exists", None).is_ok());
        assert!(check("equals", None)
            .unwrap_err()
            .to_string()
            .contains("needs a `pattern`"));
        assert!(check("regex", Some(&json!("(")))
            .unwrap_err()
            .to_string()
            .contains("invalid regular expression"));
        assert!(check("regex", Some(&json!(3)))
            .unwrap_err()
            .to_string()
            .contains("string `pattern`"));
        assert!(check("inside", Some(&json!(3)))
            .unwrap_err()
            .to_string()
            .contains("list or a string"));
        assert!(check("timediff_lt", Some(&json!("soon")))
            .unwrap_err()
            .to_string()
            .contains("number"));
        assert!(check("timediff_gt", Some(&json!(-1)))
            .unwrap_err()
            .to_string()
            .contains("non-negative"));
        assert!(check("lessthan", Some(&json!("10"))).is_ok());
    }

    #[test]
    fn missing_values() {
        assert_eq!(evaluate("exists", None, None), Ok(false));
        assert_eq!(evaluate("nexists", None, None), Ok(true));
        assert_eq!(evaluate("exists", Some(&json!(null)), None), Ok(false));
        assert_eq!(evaluate("exists", Some(&json!(0)), None), Ok(true));
        assert_eq!(evaluate("nexists", Some(&json!("")), None), Ok(false));
        for op in [
            "equals",
            "nequals",
            "contains",
            "ncontains",
            "lessthan",
            "ninside",
            "regex",
        ] {
            assert_eq!(evaluate(op, None, Some(&json!("1"))), Ok(false), "{op}");
        }
        // A bad pattern is still reported when the value is missing.
        assert!(evaluate("regex", None, Some(&json!("("))).is_err());
    }

    #[test]
    fn equality() {
        assert_eq!(ev("equals", json!("a"), json!("a")), Ok(true));
        assert_eq!(ev("equals", json!("a"), json!("A")), Ok(false));
        assert_eq!(ev("equals", json!(3), json!(3.0)), Ok(true));
        assert_eq!(ev("equals", json!(3), json!("3")), Ok(true));
        assert_eq!(ev("equals", json!("3"), json!(3)), Ok(true));
        assert_eq!(ev("equals", json!("x"), json!(3)), Ok(false));
        assert_eq!(ev("equals", json!(true), json!("true")), Ok(true));
        assert_eq!(ev("equals", json!({"a": [1]}), json!({"a": [1]})), Ok(true));
        assert_eq!(ev("nequals", json!("a"), json!("b")), Ok(true));
        assert_eq!(
            ev("iequals", json!("WatchEvent"), json!("watchevent")),
            Ok(true)
        );
        assert!(ev("iequals", json!(3), json!("3"))
            .unwrap_err()
            .contains("applies to strings"));
    }

    #[test]
    fn containment() {
        assert_eq!(ev("contains", json!("hello world"), json!("o w")), Ok(true));
        assert_eq!(ev("contains", json!(["a", 2]), json!(2)), Ok(true));
        assert_eq!(ev("contains", json!(["a", 2]), json!("b")), Ok(false));
        assert_eq!(ev("contains", json!({"k": 1}), json!("k")), Ok(true));
        assert_eq!(ev("ncontains", json!("hello"), json!("z")), Ok(true));
        assert!(ev("contains", json!(5), json!("5"))
            .unwrap_err()
            .contains("strings, lists and maps"));
        assert_eq!(ev("icontains", json!("Hello"), json!("LL")), Ok(true));
        assert_eq!(
            ev("icontains", json!(["Prod", "x"]), json!("prod")),
            Ok(true)
        );
        assert_eq!(
            ev("startswith", json!("postgres-14"), json!("postgres")),
            Ok(true)
        );
        assert_eq!(
            ev("endswith", json!("postgres-14"), json!("-13")),
            Ok(false)
        );
        assert!(ev("startswith", json!(14), json!("1"))
            .unwrap_err()
            .contains("applies to strings"));
        assert_eq!(
            ev("inside", json!("mysql"), json!(["postgres", "mysql"])),
            Ok(true)
        );
        assert_eq!(
            ev("inside", json!("oracle"), json!(["postgres", "mysql"])),
            Ok(false)
        );
        assert_eq!(ev("inside", json!(5), json!([5, 6])), Ok(true));
        assert_eq!(ev("inside", json!("gres"), json!("postgres")), Ok(true));
        assert_eq!(
            ev("ninside", json!("oracle"), json!(["postgres"])),
            Ok(true)
        );
    }

    #[test]
    fn patterns() {
        assert_eq!(ev("regex", json!("db-12"), json!("db-\\d+$")), Ok(true));
        // Anchored at the start (StackStorm uses re.match), not at the end.
        assert_eq!(ev("regex", json!("xdb-12"), json!("db")), Ok(false));
        assert_eq!(ev("regex", json!("db-12x"), json!("db-\\d+")), Ok(true));
        assert_eq!(ev("regex", json!("a|b"), json!("x|a")), Ok(true));
        assert_eq!(ev("regex", json!("a\nb"), json!("a.b")), Ok(true));
        assert_eq!(ev("iregex", json!("DB-1"), json!("db-\\d")), Ok(true));
        assert!(ev("regex", json!(1), json!("1"))
            .unwrap_err()
            .contains("applies to strings"));
        assert_eq!(
            ev("matchwildcard", json!("prod-db-1"), json!("prod-*-?")),
            Ok(true)
        );
        assert_eq!(
            ev("matchwildcard", json!("dev-db-1"), json!("prod-*")),
            Ok(false)
        );
    }

    #[test]
    fn comparisons() {
        assert_eq!(ev("lessthan", json!(3), json!(5)), Ok(true));
        assert_eq!(ev("lessthan", json!("3.5"), json!(3)), Ok(false));
        assert_eq!(ev("greaterthan", json!(10), json!("9")), Ok(true));
        assert!(ev("lessthan", json!("abc"), json!(3))
            .unwrap_err()
            .contains("compares numbers"));
        assert!(ev("greaterthan", json!([1]), json!(3)).is_err());
    }

    #[test]
    fn time_differences() {
        let recent = (chrono::Utc::now() - chrono::Duration::seconds(30)).to_rfc3339();
        let old = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
        assert_eq!(ev("timediff_lt", json!(recent), json!(60)), Ok(true));
        assert_eq!(ev("timediff_gt", json!(recent), json!(60)), Ok(false));
        assert_eq!(ev("timediff_gt", json!(old), json!(3600)), Ok(true));
        assert_eq!(ev("timediff_lt", json!(old), json!("3600")), Ok(false));
        let unix = chrono::Utc::now().timestamp() - 10;
        assert_eq!(ev("timediff_lt", json!(unix), json!(60)), Ok(true));
        assert!(ev("timediff_lt", json!("yesterday"), json!(60))
            .unwrap_err()
            .contains("RFC 3339"));
    }

    #[test]
    fn lookups() {
        let root =
            json!({"trigger": {"object": {"spec": {"engine": "pg"}, "items": [{"name": "a"}]}}});
        assert_eq!(
            lookup(&root, "trigger.object.spec.engine"),
            Some(&json!("pg"))
        );
        assert_eq!(
            lookup(&root, "trigger.object.items.0.name"),
            Some(&json!("a"))
        );
        assert_eq!(lookup(&root, "trigger.object.items.1.name"), None);
        assert_eq!(lookup(&root, "trigger.object.items.x"), None);
        assert_eq!(lookup(&root, "trigger.object.spec.engine.more"), None);
        assert_eq!(lookup(&root, "trigger.nope"), None);
        assert_eq!(lookup(&root, ""), None);
        assert_eq!(lookup(&root, "trigger"), root.get("trigger"));
    }
}
