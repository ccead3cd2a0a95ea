//! The sensor supervisor: one task per enabled sensor instance, restarted with
//! exponential backoff when it fails, with a status that `squall sensor list`, the API
//! and the metrics read.
//!
//! A run that returns `Err`, panics, or returns `Ok` without having been asked to stop
//! is a failure: the state becomes `error` (with the message), the `errors` count goes
//! up, and after a backoff (1 s, 2 s, 4 s … at most 60 s; back to 1 s once a run lasted
//! 60 s) the sensor is started again and `restarts` goes up.

use super::{Emitter, Registry, Sensor, SensorContext, SensorEnv, SensorError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use squall_core::content::{Content, Sensor as SensorInstance};
use squall_core::locks::MutexExt;
use squall_core::model::Json;
use squall_core::store::Store;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// State of a sensor instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorState {
    /// Its task is running.
    Running,
    /// Its last run failed; it will be restarted after a backoff.
    Error,
    /// Stopped (shutdown, or its type is not available).
    Stopped,
    /// `enabled: false`: validated but not started.
    Disabled,
}

/// What `squall sensor list` and `GET /api/v1/sensors` show for one sensor instance.
#[derive(Debug, Clone, Serialize)]
pub struct SensorStatus {
    /// Reference `pack.name`.
    pub name: String,
    /// Sensor type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Trigger type it emits.
    pub trigger: String,
    /// Current state.
    pub state: SensorState,
    /// Triggers emitted and accepted.
    pub events: u64,
    /// Failed runs.
    pub errors: u64,
    /// Restarts after a failure.
    pub restarts: u64,
    /// When it last emitted a trigger.
    pub last_event_at: Option<DateTime<Utc>>,
    /// The message of its last failure.
    pub last_error: Option<String>,
}

/// Supervisor timings (the defaults are the product's; tests shorten them).
#[derive(Debug, Clone)]
pub struct SupervisorOptions {
    /// First restart delay; doubled after each consecutive failure.
    pub backoff_base: Duration,
    /// Largest restart delay.
    pub backoff_max: Duration,
    /// A run lasting this long resets the delay to `backoff_base`.
    pub healthy_after: Duration,
    /// How long a stopping sensor gets before its task is aborted.
    pub stop_grace: Duration,
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        SupervisorOptions {
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
        }
    }
}

/// One instance under supervision.
struct Slot {
    /// The serialized spec, to tell changed instances on reload.
    spec: String,
    status: Arc<Mutex<SensorStatus>>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

struct Shared {
    registry: Registry,
    options: SupervisorOptions,
    emitter: Arc<dyn Emitter>,
    store: Arc<dyn Store>,
    errors: AtomicU64,
    /// Clusters and pack configurations of the current content (replaced on reload).
    env: Mutex<SensorEnv>,
}

/// Runs and supervises the sensor instances of the loaded content. Cheap to share
/// behind an `Arc`; all methods take `&self`.
pub struct SensorManager {
    shared: Arc<Shared>,
    slots: Mutex<BTreeMap<String, Slot>>,
    /// Serializes `reload` and `shutdown`.
    changing: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.locked()
}

impl SensorManager {
    /// Start every enabled sensor of `content` with the types of `registry`. Must be
    /// called inside a Tokio runtime.
    pub fn start(
        content: &Arc<Content>,
        registry: Registry,
        emitter: Arc<dyn Emitter>,
        store: Arc<dyn Store>,
    ) -> SensorManager {
        SensorManager::start_with_env(
            registry,
            SupervisorOptions::default(),
            &content.sensors,
            emitter,
            store,
            SensorEnv::from_content(content),
        )
    }

    /// Start the enabled instances of `sensors` with the types of `registry`.
    pub fn start_with(
        registry: Registry,
        options: SupervisorOptions,
        sensors: &BTreeMap<String, Arc<SensorInstance>>,
        emitter: Arc<dyn Emitter>,
        store: Arc<dyn Store>,
    ) -> SensorManager {
        SensorManager::start_with_env(
            registry,
            options,
            sensors,
            emitter,
            store,
            SensorEnv::default(),
        )
    }

    /// [`start_with`](Self::start_with), with the clusters and pack configurations
    /// sensors may read.
    pub fn start_with_env(
        registry: Registry,
        options: SupervisorOptions,
        sensors: &BTreeMap<String, Arc<SensorInstance>>,
        emitter: Arc<dyn Emitter>,
        store: Arc<dyn Store>,
        env: SensorEnv,
    ) -> SensorManager {
        let shared = Arc::new(Shared {
            registry,
            options,
            emitter,
            store,
            errors: AtomicU64::new(0),
            env: Mutex::new(env),
        });
        let slots = sensors
            .values()
            .map(|s| (s.reference.clone(), spawn(&shared, s)))
            .collect();
        SensorManager {
            shared,
            slots: Mutex::new(slots),
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// The status of every sensor instance, by reference.
    pub fn states(&self) -> Vec<SensorStatus> {
        lock(&self.slots)
            .values()
            .map(|s| lock(&s.status).clone())
            .collect()
    }

    /// Count one trigger emitted on behalf of sensor `reference` by someone else (the
    /// API accepts a webhook sensor's requests), so `squall sensor list` shows it.
    pub fn record_event(&self, reference: &str) {
        if let Some(slot) = lock(&self.slots).get(reference) {
            let mut st = lock(&slot.status);
            st.events += 1;
            st.last_event_at = Some(Utc::now());
        }
    }

    /// Failed runs of all sensors since start (removed sensors included).
    pub fn error_count(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// Apply new content: stop instances that were removed or whose spec (or the pack
    /// configuration their type reads) changed, start new and changed ones, leave
    /// unchanged ones running (their counters kept).
    pub async fn reload(&self, content: &Arc<Content>) {
        *lock(&self.shared.env) = SensorEnv::from_content(content);
        self.reload_sensors(&content.sensors).await;
    }

    /// [`reload`](Self::reload) from a map of instances.
    pub async fn reload_sensors(&self, sensors: &BTreeMap<String, Arc<SensorInstance>>) {
        let _guard = self.changing.lock().await;
        let mut stopping = Vec::new();
        {
            let mut slots = lock(&self.slots);
            let keep: Vec<String> = slots
                .iter()
                .filter(|(name, slot)| {
                    sensors
                        .get(*name)
                        .is_some_and(|s| spec_key(&self.shared, s) == slot.spec)
                })
                .map(|(name, _)| name.clone())
                .collect();
            let old = std::mem::take(&mut *slots);
            for (name, slot) in old {
                if keep.contains(&name) {
                    slots.insert(name, slot);
                } else {
                    stopping.push(slot);
                }
            }
        }
        stop_all(stopping, self.shared.options.stop_grace).await;
        let mut slots = lock(&self.slots);
        for (name, s) in sensors {
            if !slots.contains_key(name) {
                slots.insert(name.clone(), spawn(&self.shared, s));
            }
        }
    }

    /// Stop every sensor and wait for them (each gets `stop_grace`, 5 s by default,
    /// before its task is aborted). They are listed as `stopped` afterwards.
    pub async fn shutdown(&self) {
        let _guard = self.changing.lock().await;
        let tasks: Vec<(CancellationToken, JoinHandle<()>, Arc<Mutex<SensorStatus>>)> =
            lock(&self.slots)
                .values_mut()
                .filter_map(|s| Some((s.cancel.clone(), s.task.take()?, s.status.clone())))
                .collect();
        let grace = self.shared.options.stop_grace;
        for (cancel, _, _) in &tasks {
            cancel.cancel();
        }
        for (_, task, status) in tasks {
            stop_task(task, grace).await;
            let mut st = lock(&status);
            if st.state != SensorState::Disabled {
                st.state = SensorState::Stopped;
            }
        }
    }
}

impl Drop for SensorManager {
    fn drop(&mut self) {
        for slot in lock(&self.slots).values() {
            slot.cancel.cancel();
        }
    }
}

/// The configuration of the pack `s`'s type reads (`{}` when none).
fn pack_config(shared: &Shared, s: &SensorInstance) -> Json {
    shared
        .registry
        .get(&s.spec.kind)
        .and_then(|t| t.config_pack())
        .map(|pack| lock(&shared.env).pack_config(pack))
        .unwrap_or_else(|| serde_json::json!({}))
}

/// What identifies a running instance: its spec and the pack configuration it reads, so
/// that a changed `config/<pack>.yaml` restarts the sensors using it.
fn spec_key(shared: &Shared, s: &SensorInstance) -> String {
    format!(
        "{}\n{}",
        serde_json::to_string(&s.spec).unwrap_or_default(),
        pack_config(shared, s)
    )
}

async fn stop_task<T>(mut task: JoinHandle<T>, grace: Duration) {
    if tokio::time::timeout(grace, &mut task).await.is_err() {
        task.abort();
        let _ = task.await;
    }
}

async fn stop_all(slots: Vec<Slot>, grace: Duration) {
    for s in &slots {
        s.cancel.cancel();
    }
    for s in slots {
        if let Some(task) = s.task {
            stop_task(task, grace).await;
        }
    }
}

/// Create the slot of one instance and start its supervising task when it is enabled
/// and its type is known.
fn spawn(shared: &Arc<Shared>, s: &SensorInstance) -> Slot {
    let trigger = shared.registry.trigger_of(&s.spec).unwrap_or_default();
    let sensor = shared.registry.get(&s.spec.kind);
    let (state, last_error) = match (&sensor, s.spec.enabled) {
        (_, false) => (SensorState::Disabled, None),
        (None, true) => (
            SensorState::Stopped,
            Some(format!("sensor type `{}` is not available", s.spec.kind)),
        ),
        (Some(_), true) => (SensorState::Running, None),
    };
    let status = Arc::new(Mutex::new(SensorStatus {
        name: s.reference.clone(),
        kind: s.spec.kind.clone(),
        trigger: trigger.clone(),
        state,
        events: 0,
        errors: 0,
        restarts: 0,
        last_event_at: None,
        last_error,
    }));
    let cancel = CancellationToken::new();
    let task = match sensor {
        Some(sensor) if s.spec.enabled => {
            let content = lock(&shared.env).content.clone();
            let ctx = SensorContext {
                name: s.reference.clone(),
                trigger,
                config: s.spec.config.clone(),
                shutdown: cancel.clone(),
                emitter: Arc::new(Counting {
                    inner: shared.emitter.clone(),
                    status: status.clone(),
                }),
                store: shared.store.clone(),
                content,
                pack_config: pack_config(shared, s),
            };
            Some(tokio::spawn(supervise(
                shared.clone(),
                sensor,
                ctx,
                status.clone(),
            )))
        }
        _ => None,
    };
    Slot {
        spec: spec_key(shared, s),
        status,
        cancel,
        task,
    }
}

/// Run `sensor` until `ctx.shutdown`, restarting it after failures.
async fn supervise(
    shared: Arc<Shared>,
    sensor: Arc<dyn Sensor>,
    ctx: SensorContext,
    status: Arc<Mutex<SensorStatus>>,
) {
    let opts = &shared.options;
    let cancel = ctx.shutdown.clone();
    let mut backoff = opts.backoff_base;
    loop {
        lock(&status).state = SensorState::Running;
        let started = Instant::now();
        let runner = sensor.clone();
        let run_ctx = ctx.clone();
        let mut task = tokio::spawn(async move { runner.run(run_ctx).await });
        let outcome = tokio::select! {
            r = &mut task => r,
            _ = cancel.cancelled() => {
                stop_task(task, opts.stop_grace).await;
                break;
            }
        };
        if cancel.is_cancelled() {
            break;
        }
        let message = match outcome {
            Ok(Ok(())) => RunFailure::StoppedUnasked,
            Ok(Err(e)) => RunFailure::Failed(e),
            Err(e) if e.is_panic() => RunFailure::Panicked(panic_message(e)),
            Err(e) => RunFailure::Ended(e),
        }
        .to_string();
        tracing::warn!(sensor = %ctx.name, error = %message, retry_in = ?backoff, "sensor failed");
        shared.errors.fetch_add(1, Ordering::Relaxed);
        {
            let mut st = lock(&status);
            st.state = SensorState::Error;
            st.errors += 1;
            st.last_error = Some(message);
        }
        if started.elapsed() >= opts.healthy_after {
            backoff = opts.backoff_base;
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(opts.backoff_max);
        lock(&status).restarts += 1;
    }
    lock(&status).state = SensorState::Stopped;
}

/// Why a run of a sensor ended without having been asked to stop.
#[derive(Debug, thiserror::Error)]
enum RunFailure {
    /// `run` returned `Ok` although shutdown had not fired.
    #[error("the sensor stopped without being asked to")]
    StoppedUnasked,
    /// `run` returned an error.
    #[error(transparent)]
    Failed(SensorError),
    /// `run` panicked, with this message.
    #[error("the sensor panicked: {0}")]
    Panicked(String),
    /// Its task was ended otherwise (aborted).
    #[error("the sensor task ended: {0}")]
    Ended(#[source] JoinError),
}

/// The message a panic was raised with.
fn panic_message(e: JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Counts a sensor's accepted triggers into its status.
struct Counting {
    inner: Arc<dyn Emitter>,
    status: Arc<Mutex<SensorStatus>>,
}

#[async_trait]
impl Emitter for Counting {
    async fn emit(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
    ) -> Result<String, squall_core::bus::BusError> {
        let id = self.inner.emit(trigger_type, payload, source).await?;
        let mut st = lock(&self.status);
        st.events += 1;
        st.last_event_at = Some(Utc::now());
        Ok(id)
    }
}

#[cfg(test)]
#[path = "supervisor_tests.rs"]
mod tests;
