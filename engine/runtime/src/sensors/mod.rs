//! The built-in sensor types, one module each: `cron`, `interval` and `webhook`, the
//! helpers the timer sensors share, and the [`SensorManager`] that runs every enabled
//! sensor instance under supervision. The seam they implement is [`squall_core::sensor`].

pub mod cron;
pub mod interval;
mod supervisor;
pub mod webhook;

pub use supervisor::{SensorManager, SensorState, SensorStatus, SupervisorOptions};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use squall_core::bus::Emitter;
use squall_core::model::Json;
use squall_core::sensor::{Registry, Sensor, SensorContext, SensorEnv, SensorError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sleep until the wall-clock time `at`, in slices of at most 30 s so that a clock jump
/// or a suspended machine is noticed. Returns `false` when `shutdown` fired first.
pub async fn sleep_until(at: DateTime<Utc>, shutdown: &CancellationToken) -> bool {
    loop {
        if shutdown.is_cancelled() {
            return false;
        }
        let left = at - Utc::now();
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
