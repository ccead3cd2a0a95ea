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

use super::{Sensor, SensorContext, SensorError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use squall_core::duration::every;
use squall_core::model::Json;
use std::time::Duration;

/// The `interval` sensor type.
pub struct IntervalSensor;

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

/// Tick every `every` until shutdown (see the module docs for the start rule).
pub(crate) async fn run_every(ctx: &SensorContext, every: Duration) -> Result<(), SensorError> {
    let step = chrono::Duration::from_std(every)
        .map_err(|_| SensorError("interval is too long".into()))?;
    let mut next = first_tick(Utc::now(), super::checkpoint_time(ctx)?, step);
    loop {
        if !super::sleep_until(next, &ctx.shutdown).await {
            return Ok(());
        }
        let payload = super::timer_payload(next, Utc::now(), &ctx.name, &Utc);
        if squall_core::sensor::emit_with_retry(ctx, payload)
            .await?
            .is_none()
        {
            return Ok(());
        }
        super::save_checkpoint_time(ctx, next).await?;
        next = (next + step).max(Utc::now());
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

    fn validate(&self, config: &Json) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if let Err(e) = every(config) {
            errs.push(e);
        }
        if let Some(map) = config.as_object() {
            for key in map.keys().filter(|k| *k != "every") {
                errs.push((
                    key.clone(),
                    format!("unknown setting `{key}`; interval takes `every`"),
                ));
            }
        }
        errs
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let every = every(&ctx.config).map_err(|(_, m)| SensorError(m))?;
        run_every(&ctx, every).await
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

    #[test]
    fn every_is_checked() {
        assert_eq!(every(&json!({"every": "1m"})), Ok(Duration::from_secs(60)));
        assert_eq!(every(&json!({"every": 90})), Ok(Duration::from_secs(90)));
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
