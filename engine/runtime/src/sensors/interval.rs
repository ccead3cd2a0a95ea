//! The `interval` sensor: emits `core.interval` every `every`.
//!
//! ```yaml
//! name: heartbeat
//! type: interval
//! config:
//!   every: 1m      # 30s, 5m, 1h, 1h30m, 1d, 1500ms; or a number of seconds
//! ```
//!
//! `every` is one or more `<integer><unit>` parts (units `ms`, `s`, `m`, `h`, `d`),
//! added up (`1h30m`), or a plain number of seconds. It must be at least 1 s and at most
//! 366 days.
//!
//! # Payload and checkpoint
//! `{scheduled_at, fired_at, sensor}` in UTC RFC 3339. Ticks are anchored to the
//! previous scheduled tick (no drift). After each tick the sensor checkpoints
//! `{"last_scheduled_at": ...}`. On start:
//! - no checkpoint: the first tick is one `every` after start;
//! - the next tick (`last + every`) is still ahead: it waits for it, so a restart or a
//!   reload never makes it fire early or twice;
//! - it is overdue (the engine was down): it fires **once** right away and continues from
//!   there — missed ticks are coalesced into one, never replayed.
//!
//! A tick that is late by more than `every` (a slow trigger queue) is likewise coalesced.
//! The checkpoint is written after the trigger was accepted: a crash exactly between the
//! two can yield one extra (coalesced) tick right after the restart.

use super::{Clock, Period, Sensor, SensorContext, SensorError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use squall_core::config::Reference;
use squall_core::duration::MAX;
use squall_core::model::Json;
use std::time::Duration;

/// The `interval` sensor type.
pub struct IntervalSensor;

/// The `config:` of an `interval` sensor.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntervalConfig {
    /// Time between ticks: `30s`, `5m`, `1h30m`, `1d`, `1500ms`, or a number of seconds;
    /// at least 1s and at most 366d.
    pub every: Period,
}

impl IntervalConfig {
    /// Decode a sensor's `config:` and check `every` (between 1 s and 366 days);
    /// problems as `(field, message)`.
    pub fn decode(config: &Json) -> Result<IntervalConfig, (String, String)> {
        let c: IntervalConfig = super::decode_config(config, &[("every", "30s, 5m, 1h")])?;
        let d = c.every.0;
        let problem = if d.is_zero() {
            "every must be greater than zero"
        } else if d < Duration::from_secs(1) {
            "every must be at least 1s"
        } else if d > MAX {
            "every must be at most 366d"
        } else {
            return Ok(c);
        };
        Err(("every".to_string(), problem.to_string()))
    }
}

/// The first tick of a run started at `now` with checkpoint `last`.
pub fn first_tick(
    now: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
    step: chrono::Duration,
) -> DateTime<Utc> {
    match last {
        None => now + step,
        Some(last) => (last + step).max(now),
    }
}

/// Tick every `every` until shutdown (see the module docs for the start rule), reading
/// the time from `clock`.
pub(crate) async fn run_every(
    ctx: &SensorContext,
    every: Duration,
    clock: Clock,
) -> Result<(), SensorError> {
    let step = chrono::Duration::from_std(every)
        .map_err(|_| SensorError("interval is too long".into()))?;
    let mut next = first_tick(clock(), super::checkpoint_time(ctx)?, step);
    loop {
        if !super::sleep_until(next, &ctx.shutdown, clock).await {
            return Ok(());
        }
        let payload = super::timer_payload(next, clock(), &ctx.name, &Utc);
        if squall_core::sensor::emit_with_retry(ctx, payload)
            .await?
            .is_none()
        {
            return Ok(());
        }
        super::save_checkpoint_time(ctx, next).await?;
        next = (next + step).max(clock());
    }
}

#[async_trait]
impl Sensor for IntervalSensor {
    fn kind(&self) -> &'static str {
        "interval"
    }

    fn default_trigger(&self) -> &'static str {
        "core.interval"
    }

    fn reference(&self) -> Reference {
        Reference::settings::<IntervalConfig>(
            "Emits `core.interval` every `every`, anchored to the previous tick; ticks missed \
             while the engine was down are coalesced into one (docs/sensors.md).",
        )
    }

    fn validate(&self, config: &Json) -> Vec<(String, String)> {
        IntervalConfig::decode(config).err().into_iter().collect()
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let config = IntervalConfig::decode(&ctx.config).map_err(|(_, m)| SensorError(m))?;
        run_every(&ctx, config.every.0, Utc::now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_tick_waits_or_coalesces() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let min = chrono::Duration::minutes(1);
        let now = t("2024-05-01T10:00:00Z");
        assert_eq!(first_tick(now, None, min), t("2024-05-01T10:01:00Z"));
        // fired 20 s ago: wait for the rest of the period, do not fire again now
        let last = t("2024-05-01T09:59:40Z");
        assert_eq!(first_tick(now, Some(last), min), t("2024-05-01T10:00:40Z"));
        // down for an hour: one tick now, not sixty
        let last = t("2024-05-01T09:00:00Z");
        assert_eq!(first_tick(now, Some(last), min), now);
        // clock went back: still after the checkpoint
        let last = t("2024-05-01T10:30:00Z");
        assert_eq!(first_tick(now, Some(last), min), t("2024-05-01T10:31:00Z"));
    }

    fn every(config: &Json) -> Result<Duration, (String, String)> {
        IntervalConfig::decode(config).map(|c| c.every.0)
    }

    #[test]
    fn every_is_checked() {
        assert_eq!(every(&json!({"every": "1m"})), Ok(Duration::from_secs(60)));
        assert_eq!(every(&json!({"every": 90})), Ok(Duration::from_secs(90)));
        assert_eq!(
            every(&json!({"every": 1.5})),
            Ok(Duration::from_millis(1500))
        );
        for bad in [
            json!({}),
            json!(null),
            json!({"every": "0s"}),
            json!({"every": 0}),
            json!({"every": "500ms"}),
            json!({"every": "soon"}),
            json!({"every": -3}),
            json!({"every": "400d"}),
            json!({"every": true}),
        ] {
            let e = every(&bad).unwrap_err();
            assert_eq!(e.0, "every", "{bad}");
        }
        let message = |c: Json| every(&c).unwrap_err().1;
        assert_eq!(message(json!({})), "missing `every` (e.g. 30s, 5m, 1h)");
        assert_eq!(
            message(json!({"every": "500ms"})),
            "every must be at least 1s"
        );
        assert_eq!(
            message(json!({"every": "400d"})),
            "every must be at most 366d"
        );
        assert!(message(json!({"every": "soon"})).contains("`soon` is not a duration"));
        assert_eq!(
            message(json!({"every": -3})),
            "`-3` is not a number of seconds"
        );
    }

    #[test]
    fn validate_names_fields() {
        let fields = |c: Json| -> Vec<String> {
            IntervalSensor
                .validate(&c)
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert!(fields(json!({"every": "30s"})).is_empty());
        assert_eq!(fields(json!({})), ["every"]);
        assert_eq!(
            fields(json!({"every": "1m", "schedule": "x"})),
            ["schedule"]
        );
    }
}
