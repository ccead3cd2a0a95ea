//! The trigger bus: accepts trigger instances (persisting each durably before saying yes),
//! queues them in a bounded channel, and evaluates each against the rules that listen to
//! its type, creating enforcements and submitting executions.

use crate::executions::{Engine, EngineError, Request};
use crate::metrics::Metrics;
use crate::model::{now_rfc3339, Enforcement, Json, TriggerInstance, TriggerStatus};
use crate::rules::TriggerContext;
use crate::sensors::Emitter;
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Triggers waiting for evaluation before emitters are told to back off.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Why a trigger was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The queue is full; try again later (HTTP 503).
    #[error("the trigger queue is full ({0} waiting); retry later")]
    Full(usize),
    /// The trigger type is not a valid name.
    #[error("invalid trigger type {0:?}: use dotted lower-case names like `core.webhook`")]
    BadType(String),
    /// The payload nests deeper than [`crate::limits::MAX_DEPTH`] (HTTP 400).
    #[error(transparent)]
    TooDeep(#[from] crate::limits::TooDeep),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The task accepting the trigger failed (a bug: it panicked).
    #[error("accepting the trigger failed: {0}")]
    Task(String),
}

/// The in-process trigger bus.
pub struct Bus {
    tx: mpsc::Sender<String>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    capacity: usize,
}

impl Bus {
    /// Start the bus and its evaluation loop.
    pub fn start(engine: Arc<Engine>, metrics: Arc<Metrics>, capacity: usize) -> Arc<Bus> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let bus = Arc::new(Bus {
            tx,
            engine: engine.clone(),
            metrics: metrics.clone(),
            capacity,
        });
        tokio::spawn(evaluate_loop(engine, metrics, rx));
        bus
    }

    /// Accept one trigger: persisted durably, then queued. Fails fast when the queue is full.
    ///
    /// Once a queue slot is reserved, the persist-and-enqueue work runs in a task of its
    /// own: dropping the returned future (an HTTP client that went away, a sensor stopped
    /// at shutdown) cannot leave a stored trigger `pending` and unqueued. When the trigger
    /// cannot be made durable, its record is removed again and the caller gets the error,
    /// so a trigger is either accepted and queued, or refused and not stored.
    pub async fn emit(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
    ) -> Result<TriggerInstance, BusError> {
        if !valid_type(trigger_type) {
            return Err(BusError::BadType(trigger_type.to_string()));
        }
        crate::limits::check_input(&payload, "the trigger payload", "")?;
        let permit = self
            .tx
            .clone()
            .try_reserve_owned()
            .map_err(|_| BusError::Full(self.capacity))?;
        let t = TriggerInstance {
            id: self.engine.new_id(),
            trigger: trigger_type.to_string(),
            payload,
            source: source.to_string(),
            occurred_at: now_rfc3339(),
            status: TriggerStatus::Pending,
            enforcements: Vec::new(),
        };
        let engine = self.engine.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let store = engine.store();
            let ticket = store.put_trigger(&t)?;
            if let Err(e) = store.durable(ticket).await {
                // Not acknowledged: take the record back so no one finds it `pending`.
                if let Err(del) = store.delete_trigger(&t.id) {
                    tracing::error!(trigger_instance = %t.id, error = %del,
                        "a trigger that could not be made durable could not be removed either; queueing it");
                    permit.send(t.id.clone());
                }
                return Err(BusError::Store(e));
            }
            metrics.trigger_received(&t.trigger);
            permit.send(t.id.clone());
            Ok(t)
        })
        .await
        .map_err(|e| BusError::Task(e.to_string()))?
    }

    /// Queue again every trigger an earlier process accepted but did not evaluate.
    pub async fn requeue_pending(&self) -> Result<usize, BusError> {
        // Unreadable records are logged and left out (`squall store check` lists them).
        let pending = self.engine.store().pending_triggers()?;
        let n = pending.len();
        for t in pending {
            if self.tx.send(t.id).await.is_err() {
                break;
            }
        }
        Ok(n)
    }

    /// Triggers waiting for evaluation.
    pub fn depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }
}

#[async_trait]
impl Emitter for Bus {
    async fn emit(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
    ) -> Result<String, String> {
        Bus::emit(self, trigger_type, payload, source)
            .await
            .map(|t| t.id)
            .map_err(|e| e.to_string())
    }
}

/// `a.b_c.d`: lower-case dotted names.
pub fn valid_type(t: &str) -> bool {
    !t.is_empty() && t.len() <= 200 && t.split('.').all(crate::model::valid_name)
}

async fn evaluate_loop(engine: Arc<Engine>, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<String>) {
    // Evaluate several triggers at once so their store flushes are shared.
    let slots = Arc::new(Semaphore::new(64));
    while let Some(id) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let engine = engine.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = evaluate(&engine, &metrics, &id).await {
                tracing::error!(trigger_instance = %id, error = %e, "trigger evaluation failed");
            }
            drop(permit);
        });
    }
}

/// Evaluate trigger instance `id` against the rules for its type.
pub async fn evaluate(engine: &Arc<Engine>, metrics: &Metrics, id: &str) -> Result<(), BusError> {
    let Some(mut t) = engine.store().get_trigger(id)? else {
        return Ok(());
    };
    if t.status == TriggerStatus::Processed {
        return Ok(());
    }
    let content = engine.content();
    let event =
        json!({"id": t.id, "type": t.trigger, "source": t.source, "occurred_at": t.occurred_at});
    let mut ctx = TriggerContext::new(&t.payload, &event);
    for rule in content.rule_index.for_trigger(&t.trigger) {
        let outcome = match rule.matches(&mut ctx) {
            Ok(false) => continue,
            Ok(true)
                if engine
                    .store()
                    .execution_for(&t.id, &rule.reference)?
                    .is_some() =>
            {
                // Requested before a crash; the execution itself is recovered on its own.
                continue;
            }
            Ok(true) => match rule.render_parameters(&mut ctx) {
                Ok(parameters) => {
                    let req = Request {
                        action: rule.spec.action.action.clone(),
                        parameters,
                        rule: Some(rule.reference.clone()),
                        trigger_instance: Some(t.id.clone()),
                        requested_by: Some(format!("rule:{}", rule.reference)),
                        ..Default::default()
                    };
                    match engine.submit(req).await {
                        Ok(e) => Ok(e.id),
                        Err(EngineError::Store(s)) => return Err(s.into()),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let enforcement = Enforcement {
            id: engine.new_id(),
            trigger_instance: t.id.clone(),
            rule: rule.reference.clone(),
            execution: outcome.as_ref().ok().cloned(),
            error: outcome.as_ref().err().map(|e| crate::secrets::mask_str(e)),
            created_at: now_rfc3339(),
        };
        if let Some(err) = &enforcement.error {
            tracing::warn!(rule = %rule.reference, trigger_instance = %t.id, error = %err, "rule enforcement failed");
        }
        metrics.enforcement(&rule.reference, enforcement.error.is_none());
        engine.store().put_enforcement(&enforcement)?;
        t.enforcements.push(enforcement.id);
    }
    t.status = TriggerStatus::Processed;
    let ticket = engine.store().put_trigger(&t)?;
    engine.store().durable(ticket).await?;
    Ok(())
}
