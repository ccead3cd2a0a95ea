//! The sensor seam: long-running watchers that emit triggers (docs/sensors.md).
//! Every sensor type implements the [`Sensor`] trait and is registered by type name in a
//! [`Registry`]; a sensor instance's `type:` picks one. The sensors themselves live in
//! `squall-runtime` (cron, interval, webhook) and `squall-integrations`. [`SensorContext`] gives a sensor
//! what it needs: its config, a way to emit, a persisted checkpoint and a shutdown signal.

use crate::bus::{BusError, Emitter};
use crate::content::Content;
use crate::model::{Json, SensorSpec};
use crate::store::Store;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why a sensor stopped.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SensorError(pub String);

/// What a running sensor gets.
#[derive(Clone)]
pub struct SensorContext {
    /// Sensor reference, `pack.name` (also the checkpoint key and the trigger source).
    pub name: String,
    /// Trigger type it emits.
    pub trigger: String,
    /// Its `config:` block.
    pub config: Json,
    /// Fired when the sensor must stop (shutdown, reload, sensor removed).
    pub shutdown: CancellationToken,
    /// Where triggers go.
    pub emitter: Arc<dyn Emitter>,
    /// The store, for checkpoints.
    pub store: Arc<dyn Store>,
    /// The loaded content: settings (clusters, accounts...) for sensors that reach other
    /// systems.
    pub content: Arc<Content>,
    /// The configuration of the pack named by the type's [`Sensor::config_pack`]
    /// (`config/<pack>.yaml`, defaults filled), `{}` when it names none.
    pub pack_config: Json,
}

/// What sensors may read from the loaded content besides their own `config:`.
#[derive(Clone, Default)]
pub struct SensorEnv {
    /// The loaded content (settings, pack configurations).
    pub content: Arc<Content>,
}

impl SensorEnv {
    /// The environment of loaded content.
    pub fn from_content(content: &Arc<Content>) -> SensorEnv {
        SensorEnv {
            content: content.clone(),
        }
    }

    /// The configuration of `pack` (`{}` when it has none).
    pub fn pack_config(&self, pack: &str) -> Json {
        self.content.pack_config(pack)
    }
}

impl SensorContext {
    /// Emit one trigger of this sensor's trigger type.
    pub async fn emit(&self, payload: Json) -> Result<String, BusError> {
        self.emitter.emit(&self.trigger, payload, &self.name).await
    }

    /// The checkpoint saved by an earlier run of this sensor (`None`: there is none).
    ///
    /// A checkpoint that exists but cannot be read is an error, never "no checkpoint": a
    /// sensor starting over would emit everything again (a `kubernetes.watch` sensor every
    /// object as ADDED), so it stays in error until the checkpoint is repaired or removed.
    pub fn checkpoint(&self) -> Result<Option<Json>, SensorError> {
        self.store
            .sensor_checkpoint(&self.name)
            .map_err(|e| self.unreadable_checkpoint(&e.to_string()))
    }

    /// The error for a checkpoint of this sensor that exists but cannot be used.
    pub fn unreadable_checkpoint(&self, why: &str) -> SensorError {
        SensorError(format!(
            "the checkpoint of sensor {} cannot be read ({why}); the sensor stays stopped rather \
             than start over and emit its events again. Remove it with `squall sensor reset {}` \
             (with the server stopped) to start the sensor afresh",
            self.name, self.name
        ))
    }

    /// Save the checkpoint durably.
    pub async fn save_checkpoint(&self, value: &Json) -> Result<(), SensorError> {
        self.store
            .put_sensor_checkpoint(&self.name, value)
            .await
            .map_err(|e| SensorError(format!("saving checkpoint: {e}")))
    }
}

/// A type of sensor.
#[async_trait]
pub trait Sensor: Send + Sync {
    /// The `type:` name (`cron`, `interval`, `webhook`, ...).
    fn kind(&self) -> &'static str;

    /// The trigger type emitted when the instance names none.
    fn default_trigger(&self) -> &'static str;

    /// Problems with an instance's `config:`, as `(field path under config, message)`.
    fn validate(&self, config: &Json) -> Vec<(String, String)>;

    /// What no two enabled instances of this type may share, described for an error
    /// message (a webhook's path: "path `/deploy`"); `None` when instances never clash.
    fn exclusive_key(&self, _config: &Json) -> Option<String> {
        None
    }

    /// What the reference documentation says of this type: a summary and its `config:`
    /// (`docs/reference/sensors.md`).
    fn reference(&self) -> crate::config::Reference {
        crate::config::Reference::default()
    }

    /// The pack whose configuration (`config/<pack>.yaml`) this type reads, handed to it
    /// as [`SensorContext::pack_config`] (`aws.rds.poll` reads the `aws` pack's accounts).
    fn config_pack(&self) -> Option<&'static str> {
        None
    }

    /// Run until `ctx.shutdown` fires (then return `Ok`). An `Err` makes the supervisor
    /// restart the sensor with backoff and show the error in `squall sensor list`.
    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError>;
}

/// The sensor types this build knows, by `type:` name.
#[derive(Clone)]
pub struct Registry {
    types: BTreeMap<&'static str, Arc<dyn Sensor>>,
}

impl Registry {
    /// A registry with no types (tests, or a build that adds its own).
    pub fn empty() -> Self {
        Registry {
            types: BTreeMap::new(),
        }
    }

    /// Register a sensor type under its `kind()` (replacing one of the same name).
    pub fn add(&mut self, sensor: Arc<dyn Sensor>) {
        self.types.insert(sensor.kind(), sensor);
    }

    /// The sensor type called `kind`.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Sensor>> {
        self.types.get(kind).cloned()
    }

    /// Every sensor type, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Arc<dyn Sensor>)> {
        self.types.iter().map(|(k, v)| (*k, v))
    }

    /// Names of all registered types, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.types.keys().copied().collect()
    }

    /// The trigger type an instance emits: its `trigger:`, else its type's default
    /// (`None` when neither is known).
    pub fn trigger_of(&self, spec: &SensorSpec) -> Option<String> {
        spec.trigger.clone().or_else(|| {
            self.get(&spec.kind)
                .map(|s| s.default_trigger().to_string())
        })
    }

    /// Problems with an instance: an unknown `type` (listing the available ones) or the
    /// type's own checks of `config`, as `(field path, message)` with config fields
    /// prefixed `config.`.
    pub fn validate(&self, spec: &SensorSpec) -> Vec<(String, String)> {
        let Some(sensor) = self.get(&spec.kind) else {
            return vec![(
                "type".to_string(),
                format!(
                    "unknown sensor type `{}`; available types: {}",
                    spec.kind,
                    self.kinds().join(", ")
                ),
            )];
        };
        if !(spec.config.is_object() || spec.config.is_null()) {
            return vec![(
                "config".to_string(),
                "config must be a map of settings".into(),
            )];
        }
        sensor
            .validate(&spec.config)
            .into_iter()
            .map(|(field, msg)| {
                let path = if field.is_empty() {
                    "config".to_string()
                } else {
                    format!("config.{field}")
                };
                (path, msg)
            })
            .collect()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::empty()
    }
}

/// Emit through `ctx`, retrying a refused trigger (full queue) with backoff for up to
/// about 15 s. `Ok(None)` when shutdown came first; `Err` when it was never accepted.
pub async fn emit_with_retry(
    ctx: &SensorContext,
    payload: Json,
) -> Result<Option<String>, SensorError> {
    emit_retrying(ctx, payload, Duration::from_millis(250)).await
}

/// [`emit_with_retry`] with a first pause of `delay` (tests use a short one).
pub async fn emit_retrying(
    ctx: &SensorContext,
    payload: Json,
    mut delay: Duration,
) -> Result<Option<String>, SensorError> {
    let mut last = None;
    for _ in 0..6 {
        match ctx.emit(payload.clone()).await {
            Ok(id) => return Ok(Some(id)),
            Err(e) if !e.is_transient() => {
                return Err(SensorError(format!(
                    "emitting trigger `{}`: {e}",
                    ctx.trigger
                )))
            }
            Err(e) => last = Some(e),
        }
        let last = last.as_ref().map(ToString::to_string).unwrap_or_default();
        tracing::warn!(sensor = %ctx.name, error = %last, "trigger refused; retrying");
        tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    Err(SensorError(format!(
        "emitting trigger `{}`: {}",
        ctx.trigger,
        last.map(|e| e.to_string()).unwrap_or_default()
    )))
}
