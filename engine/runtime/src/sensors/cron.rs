//! The `cron` sensor: emits `core.cron` on a cron schedule in a time zone.
//!
//! ```yaml
//! name: nightly
//! type: cron
//! config:
//!   schedule: "30 2 * * MON-FRI"   # 02:30 on weekdays
//!   timezone: Europe/Berlin        # IANA name; default UTC
//! ```
//!
//! # `schedule`
//! Five fields `minute hour day-of-month month day-of-week`, or six with a leading
//! `second` field. With five fields the second is 0. Fields (parsed by the `croner` crate):
//!
//! | field | values | names |
//! |---|---|---|
//! | second (optional, first) | 0–59 | |
//! | minute | 0–59 | |
//! | hour | 0–23 | |
//! | day of month | 1–31, `L` (last day), `15W` (weekday nearest the 15th) | |
//! | month | 1–12 | `JAN`–`DEC` |
//! | day of week | 0–7 (0 and 7 are Sunday), `5L` (last Friday), `1#2` (2nd Monday) | `SUN`–`SAT` |
//!
//! Each field is `*` (any), a value, a range `a-b`, a list `a,b,c` (of values or ranges),
//! or a step `*/n`, `a-b/n` or `a/n` (from `a` to the maximum, every `n`). `?` means `*`.
//! Names are case-insensitive. `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly`
//! are accepted for the five-field forms they stand for.
//!
//! **Day of month and day of week together:** when both are restricted (neither is a
//! bare `*`), a day matches if it matches *either* (Vixie cron): `0 0 13 * FRI` fires on
//! every 13th and on every Friday. When one of them is `*`, only the other one counts.
//! Note that `*/1` counts as restricted.
//!
//! # Time zone and daylight saving
//! Slots are wall-clock times in `timezone`. A slot that falls in a spring-forward gap
//! fires at the first valid time after it (02:30 → 03:00); a slot that occurs twice in a
//! fall-back hour fires once, at its first occurrence.
//!
//! # Payload and checkpoint
//! `{scheduled_at, fired_at, sensor}`: the slot and the time it was emitted, RFC 3339
//! with the offset of `timezone`, and the sensor reference. After each emitted slot the
//! sensor checkpoints `{"last_scheduled_at": ...}`. On start it fires only slots strictly
//! after both now and the checkpoint: slots missed while the engine was down are **not**
//! fired (like cron), and a slot is never fired twice, even after a quick restart or a
//! clock that went back.

use super::{Clock, Sensor, SensorContext, SensorError};
use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::Deserialize;
use squall_core::config::Reference;
use squall_core::model::Json;

/// The `cron` sensor type.
pub struct CronSensor;

/// The `config:` of a `cron` sensor.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CronConfig {
    /// When to fire: five fields `minute hour day-of-month month day-of-week`, or six
    /// with a leading `second`; `@daily`, `@hourly`... (docs/sensors.md).
    pub schedule: String,
    /// The IANA time zone the schedule is read in (`Europe/Paris`); default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// A parsed `schedule` in a `timezone`.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    tz: Tz,
}

impl Schedule {
    /// Parse a schedule and an optional IANA time zone (default UTC). Errors are
    /// `(field, message)` with field `schedule` or `timezone`.
    pub fn parse(schedule: &str, timezone: Option<&str>) -> Result<Schedule, (String, String)> {
        let tz = timezone.map_or(Ok(Tz::UTC), parse_timezone)?;
        let text = schedule.trim();
        let fields = text.split_whitespace().count();
        if !(text.starts_with('@') || fields == 5 || fields == 6) {
            return Err(field_err(
                "schedule",
                format!(
                    "`{text}` has {fields} fields; expected 5 (minute hour day-of-month month \
                     day-of-week) or 6 (second first)"
                ),
            ));
        }
        let cron = croner::Cron::new(text)
            .with_seconds_optional()
            .parse()
            .map_err(|e| field_err("schedule", explain(text, e)))?;
        let s = Schedule { cron, tz };
        if !s.has_matching_day() {
            return Err(field_err(
                "schedule",
                format!("schedule `{text}` never fires (no such day exists)"),
            ));
        }
        Ok(s)
    }

    /// Decode a sensor's `config:` and parse its `schedule` in its `timezone`; every
    /// problem as `(field, message)`.
    pub fn from_config(config: &Json) -> Result<Schedule, Vec<(String, String)>> {
        let config: CronConfig = super::decode_config(config, &[("schedule", "\"*/5 * * * *\"")])
            .map_err(|e| vec![e])?;
        let tz = config
            .timezone
            .as_deref()
            .map_or(Ok(Tz::UTC), parse_timezone);
        let schedule = Schedule::parse(&config.schedule, None);
        match (tz, schedule) {
            (Ok(tz), Ok(s)) => Ok(Schedule { tz, ..s }),
            (tz, schedule) => Err(tz.err().into_iter().chain(schedule.err()).collect()),
        }
    }

    /// The time zone the schedule is read in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first slot strictly after `t` (`None` if there is none before year 5000).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc)).filter(|n| *n > t)
    }

    /// Whether some day matches the day/month fields. 28 years cover every combination
    /// of weekday and leap year, so this is exact for non-empty patterns and cheap
    /// (croner would otherwise search day by day up to year 5000).
    fn has_matching_day(&self) -> bool {
        let p = &self.cron.pattern;
        (2024..2052).any(|year| {
            (1u32..=12).any(|month| {
                p.month_match(month).unwrap_or(false)
                    && (1u32..=31).any(|day| {
                        NaiveDate::from_ymd_opt(year, month, day).is_some_and(|d| {
                            p.day_match(d.year(), d.month(), d.day()).unwrap_or(false)
                        })
                    })
            })
        })
    }
}

/// An IANA time zone name; the error names the `timezone` field.
fn parse_timezone(name: &str) -> Result<Tz, (String, String)> {
    name.trim().parse::<Tz>().map_err(|_| {
        field_err(
            "timezone",
            format!("unknown time zone `{name}`; use an IANA name such as `Europe/Paris` or `UTC`"),
        )
    })
}

/// Name the field croner rejected, by parsing each field alone.
fn explain(text: &str, e: impl std::fmt::Display) -> String {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let names: &[(&str, &str)] = &[
        ("second", "0-59"),
        ("minute", "0-59"),
        ("hour", "0-23"),
        ("day of month", "1-31, L, nW"),
        ("month", "1-12, JAN-DEC"),
        ("day of week", "0-7, SUN-SAT, nL, n#k"),
    ];
    let names = if fields.len() == 5 {
        &names[1..]
    } else {
        names
    };
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if i == j { *field } else { "*" })
            .collect();
        let bad = croner::Cron::new(&alone.join(" "))
            .with_seconds_optional()
            .parse()
            .is_err();
        if let (true, Some((name, range))) = (bad, names.get(i)) {
            return format!(
                "invalid schedule `{text}`: {name} field `{field}` is not valid ({range}; \
                 `*`, lists `a,b`, ranges `a-b`, steps `*/n`)"
            );
        }
    }
    format!("invalid schedule `{text}`: {e}")
}

fn field_err(field: &str, msg: impl Into<String>) -> (String, String) {
    (field.to_string(), msg.into())
}

#[async_trait]
impl Sensor for CronSensor {
    fn kind(&self) -> &'static str {
        "cron"
    }

    fn default_trigger(&self) -> &'static str {
        "core.cron"
    }

    fn reference(&self) -> Reference {
        Reference::settings::<CronConfig>(
            "Emits `core.cron` at each slot of a cron schedule in a time zone; slots missed \
             while the engine was down are not fired (docs/sensors.md).",
        )
    }

    fn validate(&self, config: &Json) -> Vec<(String, String)> {
        match Schedule::from_config(config) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        }
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let schedule = Schedule::from_config(&ctx.config).map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|(_, m)| m).collect();
            SensorError(msgs.join("; "))
        })?;
        run_schedule(&ctx, &schedule, Utc::now).await
    }
}

/// Emit at each slot of `schedule` until shutdown (see the module docs for the start
/// rule), reading the time from `clock`.
pub(crate) async fn run_schedule(
    ctx: &SensorContext,
    schedule: &Schedule,
    clock: Clock,
) -> Result<(), SensorError> {
    let mut last = super::checkpoint_time(ctx)?;
    loop {
        let now = clock();
        let from = last.map_or(now, |l| l.max(now));
        let Some(slot) = schedule.next_after(from) else {
            return Err(SensorError(format!(
                "schedule has no slot after {}",
                from.to_rfc3339()
            )));
        };
        if !super::sleep_until(slot, &ctx.shutdown, clock).await {
            return Ok(());
        }
        let payload = super::timer_payload(slot, clock(), &ctx.name, &schedule.tz);
        if squall_core::sensor::emit_with_retry(ctx, payload)
            .await?
            .is_none()
        {
            return Ok(());
        }
        super::save_checkpoint_time(ctx, slot).await?;
        last = Some(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next(schedule: &str, tz: Option<&str>, after: &str) -> String {
        let s = Schedule::parse(schedule, tz).unwrap();
        s.next_after(utc(after)).unwrap().to_rfc3339()
    }

    #[test]
    fn five_fields_fire_on_the_minute() {
        assert_eq!(
            next("*/15 * * * *", None, "2024-05-01T10:07:30Z"),
            "2024-05-01T10:15:00+00:00"
        );
        // strictly after: a slot equal to `after` is not returned again
        assert_eq!(
            next("*/15 * * * *", None, "2024-05-01T10:15:00Z"),
            "2024-05-01T10:30:00+00:00"
        );
        assert_eq!(
            next("30 2 * * MON-FRI", None, "2024-05-03T03:00:00Z"), // a Friday
            "2024-05-06T02:30:00+00:00"
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        assert_eq!(
            next("*/10 * * * * *", None, "2024-05-01T10:00:01Z"),
            "2024-05-01T10:00:10+00:00"
        );
        assert_eq!(
            next("5 0 12 * * *", None, "2024-05-01T10:00:00Z"),
            "2024-05-01T12:00:05+00:00"
        );
    }

    #[test]
    fn lists_names_and_dom_or_dow() {
        assert_eq!(
            next("0 9 1,15 jan *", None, "2024-01-02T00:00:00Z"),
            "2024-01-15T09:00:00+00:00"
        );
        // 13th OR Friday: from Mon 2024-05-06 the next is Fri 05-10, then Mon 05-13
        assert_eq!(
            next("0 0 13 * FRI", None, "2024-05-06T00:00:00Z"),
            "2024-05-10T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 13 * FRI", None, "2024-05-10T00:00:00Z"),
            "2024-05-13T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 29 2 *", None, "2024-03-01T00:00:00Z"),
            "2028-02-29T00:00:00+00:00"
        );
        // June 2024: last day 30th (Sun); 15th is a Saturday → Friday 14th;
        // last Friday 28th; second Monday 10th
        let june = "2024-06-01T00:00:00Z";
        assert_eq!(next("0 0 L * *", None, june), "2024-06-30T00:00:00+00:00");
        assert_eq!(next("0 0 15W * *", None, june), "2024-06-14T00:00:00+00:00");
        assert_eq!(next("0 0 * * 5L", None, june), "2024-06-28T00:00:00+00:00");
        assert_eq!(next("0 0 * * 1#2", None, june), "2024-06-10T00:00:00+00:00");
        assert_eq!(next("@daily", None, june), "2024-06-02T00:00:00+00:00");
        assert_eq!(
            next("0 12 * * sun-mon", None, june),
            "2024-06-02T12:00:00+00:00"
        );
    }

    #[test]
    fn timezone_shifts_the_slot() {
        // 09:00 in Paris is 07:00 UTC in summer (CEST, +02:00)
        assert_eq!(
            next("0 9 * * *", Some("Europe/Paris"), "2024-07-01T00:00:00Z"),
            "2024-07-01T07:00:00+00:00"
        );
        // and 08:00 UTC in winter
        assert_eq!(
            next("0 9 * * *", Some("Europe/Paris"), "2024-01-10T00:00:00Z"),
            "2024-01-10T08:00:00+00:00"
        );
        let s = Schedule::parse("0 9 * * *", Some("America/New_York")).unwrap();
        let slot = s.next_after(utc("2024-01-10T00:00:00Z")).unwrap();
        let p = crate::sensors::timer_payload(slot, slot, "site.x", &s.timezone());
        assert_eq!(p["scheduled_at"], "2024-01-10T09:00:00-05:00");
        assert_eq!(p["sensor"], "site.x");
    }

    #[test]
    fn spring_forward_gap_fires_after_the_gap() {
        // 2024-03-31 02:30 does not exist in Paris; fires at 03:00 CEST = 01:00 UTC
        let s = Schedule::parse("30 2 * * *", Some("Europe/Paris")).unwrap();
        let slot = s.next_after(utc("2024-03-30T23:00:00Z")).unwrap();
        assert_eq!(slot, Utc.with_ymd_and_hms(2024, 3, 31, 1, 0, 0).unwrap());
    }

    #[test]
    fn bad_schedules_and_zones_are_errors_on_their_field() {
        for bad in [
            "",
            "* * * *",
            "* * * * * * *",
            "61 * * * *",
            "* 24 * * *",
            "*/0 * * * *",
            "a b c d e",
            "0 0 30 2 *",
            "0 0 31 4,6 *",
        ] {
            let e = Schedule::parse(bad, None).err();
            assert_eq!(e.map(|e| e.0), Some("schedule".into()), "{bad:?}");
        }
        let e = Schedule::parse("0 0 * 13 *", None).unwrap_err();
        assert!(e.1.contains("month field `13`"), "{}", e.1);
        let e = Schedule::parse("* * * * * *", None).map(|_| ());
        assert!(e.is_ok());
        let e = Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err();
        assert_eq!(e.0, "timezone");
        assert!(e.1.contains("Mars/Olympus"));
    }

    #[test]
    fn validate_names_fields() {
        let fields = |c: Json| -> Vec<String> {
            CronSensor
                .validate(&c)
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert!(fields(json!({"schedule": "0 * * * *", "timezone": "UTC"})).is_empty());
        assert_eq!(fields(json!({})), ["schedule"]);
        assert_eq!(fields(json!(null)), ["schedule"]);
        assert_eq!(fields(json!({"schedule": 5})), ["schedule"]);
        assert_eq!(
            fields(json!({"schedule": "* * * * *", "timezone": "Nowhere"})),
            ["timezone"]
        );
        assert_eq!(
            fields(json!({"schedule": "* * * * *", "every": "5m"})),
            ["every"]
        );
        assert_eq!(
            fields(json!({"schedule": "61 * * * *", "timezone": "Nowhere"})),
            ["timezone", "schedule"]
        );
        // A value of the wrong type stops decoding: it is the one problem reported.
        assert_eq!(fields(json!({"timezone": 3})), ["timezone"]);
        let problems = CronSensor.validate(&json!({}));
        assert_eq!(problems[0].1, "missing `schedule` (e.g. \"*/5 * * * *\")");
        let problems = CronSensor.validate(&json!({"schedule": "* * * * *", "every": "5m"}));
        assert!(
            problems[0].1.contains("unknown field `every`"),
            "{problems:?}"
        );
    }
}
