//! `squall serve`: the long-running service that ties sensors, the trigger bus, rules,
//! executions and the API together, with hot reload and crash recovery.

use crate::api::auth::Tokens;
use serde_json::{json, Value as Json};
use squall_core::audit::Audit;
use squall_core::bus::Emitter;
use squall_core::bus::{Bus, BusError};
use squall_core::content::{self, Content, Diagnostics};
use squall_core::locks::RwLockExt;
use squall_core::metrics::{Gauges, Metrics};
use squall_core::Components;
use squall_runtime::bus::LocalBus;
use squall_runtime::executions::{Engine, EngineError};
use squall_runtime::sensors::SensorManager;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Outcome of the last content reload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadState {
    /// When it happened.
    pub at: String,
    /// Whether the new content was taken.
    pub ok: bool,
    /// Problems that kept it out (the old content kept running).
    pub errors: Vec<String>,
}

/// Everything `squall serve` runs.
pub struct Service {
    /// The execution engine.
    pub engine: Arc<Engine>,
    /// The trigger bus.
    pub bus: Arc<dyn Bus>,
    /// Running sensors.
    pub sensors: SensorManager,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The audit trail.
    pub audit: Audit,
    /// API tokens.
    pub tokens: Tokens,
    /// Signed webhook calls already accepted (replay protection).
    pub webhooks: squall_runtime::sensors::webhook::ReplayGuard,
    /// Content root.
    pub root: PathBuf,
    /// The runners and sensor types content is loaded with.
    components: Components,
    started: Instant,
    last_reload: RwLock<Option<ReloadState>>,
    reload_lock: tokio::sync::Mutex<()>,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Recovering what an earlier process left failed.
    #[error("recovery failed: {0}")]
    Recovery(#[source] EngineError),
    /// Triggers accepted before the previous run stopped could not be queued again.
    #[error(transparent)]
    Requeue(#[from] BusError),
}

impl Service {
    /// Assemble the service over a loaded engine: start the bus, recover what an earlier
    /// process left, start the sensors.
    pub async fn start(
        engine: Arc<Engine>,
        components: Components,
        tokens: Tokens,
        audit_stdout: bool,
    ) -> Result<Arc<Service>, StartError> {
        let content = engine.content();
        let metrics = Arc::new(Metrics::default());
        let bus: Arc<dyn Bus> = LocalBus::start(
            engine.clone(),
            metrics.clone(),
            content
                .settings
                .trigger_queue
                .unwrap_or(squall_runtime::bus::DEFAULT_CAPACITY),
        );
        // Every execution that becomes terminal is counted, and its audit entry (written by
        // the store in the same commit as the record) echoed, synchronously: nothing can
        // lag behind or be dropped under load.
        let counter = metrics.clone();
        engine.store().on_finished(Box::new(move |f| {
            counter.execution_finished(&f.action, f.status.as_str(), f.seconds);
            if audit_stdout {
                squall_core::audit::echo(&f.entry);
            }
        }));
        let recovery = engine.recover().await.map_err(StartError::Recovery)?;
        if !(recovery.resumed.is_empty()
            && recovery.rerun.is_empty()
            && recovery.abandoned.is_empty()
            && recovery.requeued.is_empty()
            && recovery.processes_ended.is_empty()
            && recovery.unreadable.is_empty())
        {
            tracing::warn!(resumed = ?recovery.resumed, rerun = ?recovery.rerun, abandoned = ?recovery.abandoned,
                requeued = ?recovery.requeued, processes_ended = ?recovery.processes_ended,
                unreadable = ?recovery.unreadable, "recovered executions left by the previous run");
        }
        let pending = bus.requeue_pending().await?;
        if pending > 0 {
            tracing::warn!(
                count = pending,
                "evaluating triggers accepted before the previous run stopped"
            );
        }
        let emitter: Arc<dyn Emitter> = bus.clone();
        let sensors = SensorManager::start(
            &content,
            components.sensors.clone(),
            emitter,
            engine.store().clone(),
        );
        let audit = Audit::new(engine.store().clone(), audit_stdout);
        let service = Arc::new(Service {
            root: content.root.clone(),
            components,
            engine: engine.clone(),
            bus,
            sensors,
            metrics: metrics.clone(),
            audit,
            tokens,
            webhooks: Default::default(),
            started: Instant::now(),
            last_reload: RwLock::new(None),
            reload_lock: tokio::sync::Mutex::new(()),
        });
        Ok(service)
    }

    /// Load the content again. Valid content replaces the old at once (executions in
    /// flight keep the definitions they started with); invalid content is reported and the
    /// old content keeps running.
    pub async fn reload(&self) -> Result<Arc<Content>, Diagnostics> {
        let _g = self.reload_lock.lock().await;
        let result = content::load(&self.root, &self.components);
        let state = match &result {
            Ok(_) => ReloadState {
                at: squall_core::model::now_rfc3339(),
                ok: true,
                errors: Vec::new(),
            },
            Err(d) => ReloadState {
                at: squall_core::model::now_rfc3339(),
                ok: false,
                errors: d.0.iter().map(|p| p.to_string()).collect(),
            },
        };
        *self.last_reload.write_locked() = Some(state);
        match result {
            Ok(c) => {
                let c = Arc::new(c);
                self.engine.set_content(c.clone());
                self.sensors.reload(&c).await;
                tracing::info!(
                    actions = c.actions.len(),
                    rules = c.rules.len(),
                    sensors = c.sensors.len(),
                    "content reloaded"
                );
                Ok(c)
            }
            Err(d) => {
                for p in &d.0 {
                    tracing::error!(problem = %p, "content reload rejected; the previous content keeps running");
                }
                Err(d)
            }
        }
    }

    /// `GET /api/v1/status`.
    pub fn status(&self) -> Json {
        let c = self.engine.content();
        let packs: Vec<&String> = c.packs.keys().collect();
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "data_dir": self.engine.store().dir(),
            "root": self.root,
            "packs": packs,
            "actions": c.actions.len(),
            "rules": c.rules.len(),
            "sensors": self.sensors.states(),
            "queue_depth": self.engine.queue_depth(),
            "trigger_queue": self.bus.depth(),
            "auth": if self.tokens.enabled() { "tokens" } else { "off (loopback only)" },
            "last_reload": *self.last_reload.read_locked(),
        })
    }

    /// The Prometheus exposition text.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(&Gauges {
            queue_depth: self.engine.queue_depth(),
            trigger_queue: self.bus.depth(),
            sensor_errors: self.sensors.error_count(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    /// Stop sensors, then let executions finish (bounded) and record the rest as canceled.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        self.sensors.shutdown().await;
        self.engine.drain(grace).await;
        let _ = self.engine.store().flush().await;
    }
}
