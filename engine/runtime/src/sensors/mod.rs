//! The built-in sensor types, one module each: `cron`, `interval` and `webhook`, the
//! helpers the timer sensors share, and the [`SensorManager`] that runs every enabled
//! sensor instance under supervision. The seam they implement is [`squall_core::sensor`].

pub mod cron;
pub mod interval;
mod supervisor;
pub mod webhook;

pub use supervisor::{SensorManager, SensorState, SensorStatus, SupervisorOptions};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, DeserializeOwned, Deserializer};
use serde::Deserialize;
use squall_core::bus::Emitter;
use squall_core::model::Json;
use squall_core::sensor::{Registry, Sensor, SensorContext, SensorEnv, SensorError};
use std::borrow::Cow;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Where the timer sensors read the wall-clock time: [`Utc::now`] when they run, a clock
/// that follows tokio's (pausable) clock in their unit tests.
pub type Clock = fn() -> DateTime<Utc>;

/// A sensor's `config:` decoded into its typed struct `T`, problems as `(field, message)`
/// with the field relative to `config`. A missing required field is reported on the
/// field itself, `missing `every` (e.g. 30s, 5m, 1h)`, with its example from `examples`.
pub(crate) fn decode_config<T: DeserializeOwned>(
    config: &Json,
    examples: &[(&str, &str)],
) -> Result<T, (String, String)> {
    squall_core::config::decode(config).map_err(|e| {
        let missing = e
            .message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
            .filter(|_| e.field.is_empty());
        match missing {
            Some(name) => {
                let message = match examples.iter().find(|(field, _)| *field == name) {
                    Some((_, example)) => format!("missing `{name}` (e.g. {example})"),
                    None => format!("missing `{name}`"),
                };
                (name.to_string(), message)
            }
            None => e.problem(""),
        }
    })
}

/// A duration in a sensor's `config:`: `30s`, `5m`, `1h30m`, `1d`, `1500ms` (see
/// [`squall_core::duration::parse`]), or a number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Duration);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Period;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as `5m`, or a number of seconds")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<Period, E> {
                squall_core::duration::parse(s)
                    .map(Period)
                    .map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Period, E> {
                Ok(Period(Duration::from_secs(secs)))
            }

            fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Period, E> {
                u64::try_from(secs)
                    .map(|s| Period(Duration::from_secs(s)))
                    .map_err(|_| E::custom(format!("`{secs}` is not a number of seconds")))
            }

            fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Period, E> {
                Duration::try_from_secs_f64(secs)
                    .map(Period)
                    .map_err(|_| E::custom(format!("`{secs}` is not a number of seconds")))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for Period {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Period".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": ["string", "number"]})
    }
}

/// Sleep until the wall-clock time `at` (read from `clock`), in slices of at most 30 s so
/// that a clock jump or a suspended machine is noticed. Returns `false` when `shutdown`
/// fired first.
pub async fn sleep_until(at: DateTime<Utc>, shutdown: &CancellationToken, clock: Clock) -> bool {
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let left = at - clock();
        let Ok(left) = left.to_std() else {
            return true; // `at` is now or in the past
        };
        if left.is_zero() {
            return true;
        }
        let slice = left.min(Duration::from_secs(30));
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep(slice) => {}
        }
    }
}

/// The payload of the timer sensors (`cron`, `interval`): `{scheduled_at, fired_at,
/// sensor}`, times in RFC 3339 with the offset of `tz`.
pub fn timer_payload<Tz: TimeZone>(
    scheduled_at: DateTime<Utc>,
    fired_at: DateTime<Utc>,
    sensor: &str,
    tz: &Tz,
) -> Json
where
    Tz::Offset: std::fmt::Display,
{
    serde_json::json!({
        "scheduled_at": scheduled_at.with_timezone(tz).to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "fired_at": fired_at.with_timezone(tz).to_rfc3339_opts(SecondsFormat::Millis, true),
        "sensor": sensor,
    })
}

/// The `last_scheduled_at` time kept in a timer sensor's checkpoint.
fn checkpoint_time(ctx: &SensorContext) -> Result<Option<DateTime<Utc>>, SensorError> {
    let Some(cp) = ctx.checkpoint()? else {
        return Ok(None);
    };
    let s = cp
        .get("last_scheduled_at")
        .and_then(Json::as_str)
        .ok_or_else(|| ctx.unreadable_checkpoint("no `last_scheduled_at` time in it"))?;
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| ctx.unreadable_checkpoint(&format!("`last_scheduled_at` {s:?}: {e}")))
}

/// Save `scheduled_at` as a timer sensor's checkpoint.
async fn save_checkpoint_time(
    ctx: &SensorContext,
    scheduled_at: DateTime<Utc>,
) -> Result<(), SensorError> {
    let v = serde_json::json!({
        "last_scheduled_at": scheduled_at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    });
    ctx.save_checkpoint(&v).await
}

#[cfg(test)]
mod tests;
