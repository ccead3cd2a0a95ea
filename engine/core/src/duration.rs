//! Durations as users write them in content: `30s`, `5m`, `1h30m`, `1d`, `1500ms`.

use crate::model::Json;
use std::time::Duration;

/// The longest `every` a timer accepts.
pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// Text that is not a duration in the syntax above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration; use e.g. 30s, 5m, 1h or 1h30m")]
pub struct DurationError {
    /// The text as written (trimmed).
    pub text: String,
}

/// For callers that report errors as text (sensor and runner configuration checks).
impl From<DurationError> for String {
    fn from(e: DurationError) -> String {
        e.to_string()
    }
}

/// Parse a duration: `30s`, `5m`, `1h30m`, `1d`, `1500ms`. At least one part; every part
/// a non-negative integer followed by a unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    let usage = || DurationError {
        text: s.to_string(),
    };
    if s.is_empty() {
        return Err(usage());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(usage());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| usage())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(usage()),
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(n.saturating_mul(ms_per));
    }
    let ms = u64::try_from(total).unwrap_or(u64::MAX);
    Ok(Duration::from_millis(ms))
}

/// The `every` of a config, checked (≥ 1 s, ≤ 366 days). Errors name the field.
pub fn every(config: &Json) -> Result<Duration, (String, String)> {
    let err = |m: String| ("every".to_string(), m);
    let d = match config.get("every") {
        None | Some(Json::Null) => return Err(err("missing `every` (e.g. 30s, 5m, 1h)".into())),
        Some(Json::String(s)) => parse(s).map_err(|e| err(e.to_string()))?,
        Some(Json::Number(n)) => match n.as_f64() {
            Some(secs) if secs.is_finite() && secs >= 0.0 && secs <= MAX.as_secs_f64() => {
                Duration::from_secs_f64(secs)
            }
            _ => return Err(err(format!("`{n}` is not a number of seconds"))),
        },
        Some(_) => return Err(err("every must be a duration such as `5m`".into())),
    };
    if d.is_zero() {
        return Err(err("every must be greater than zero".into()));
    }
    if d < Duration::from_secs(1) {
        return Err(err("every must be at least 1s".into()));
    }
    if d > MAX {
        return Err(err("every must be at most 366d".into()));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| parse(s).unwrap();
        assert_eq!(d("30s"), Duration::from_secs(30));
        assert_eq!(d("5m"), Duration::from_secs(300));
        assert_eq!(d("1h"), Duration::from_secs(3600));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1d2h"), Duration::from_secs(93_600));
        assert_eq!(d("1500ms"), Duration::from_millis(1500));
        assert_eq!(d(" 2m10s "), Duration::from_secs(130));
        for bad in ["", "5", "m", "5x", "1h 30m", "-5s", "1.5h", "s5", "5sm"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // absurdly large values saturate instead of overflowing
        assert!(parse("99999999999999999999999999d").is_ok());
    }
}
