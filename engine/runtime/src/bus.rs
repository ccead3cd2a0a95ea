//! The trigger bus: accepts trigger instances (persisting each durably before saying yes),
//! queues them, and evaluates each against the rules that listen to its type, creating
//! enforcements and executions.
//!
//! The [`Bus`] trait is the seam; [`LocalBus`] is the embedded implementation (sled store,
//! a bounded in-process queue). The path of one event costs one durable commit per step:
//! - **accepted**: the trigger instance and the audit entry of the request that brought it
//!   (see [`Bus::accept`]), then the reply;
//! - **finished**: for an idempotent leaf action, the execution's record, its index
//!   entries, its audit entry, the enforcement that asked for it and (last) the trigger
//!   marked `processed` are one commit when the execution ends. Other actions keep a
//!   durable `scheduled` record first (docs/executions.md).
//!
//! Nothing is read back: the queue carries the trigger itself.

use crate::executions::{Engine, EngineError, Finish, Prepared, Request};
use async_trait::async_trait;
use serde_json::json;
use squall_core::audit::Draft;
use squall_core::bus::{Bus, BusError, Emitter};
use squall_core::metrics::Metrics;
use squall_core::model::{now_rfc3339, Enforcement, Json, TriggerInstance, TriggerStatus};
use squall_core::rules::TriggerContext;
use squall_core::store::Batch;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// Triggers waiting for evaluation before emitters are told to back off.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Triggers evaluated at once.
const EVALUATION_SLOTS: usize = 64;

/// A trigger waiting for evaluation; `fresh` unless it was requeued after a restart (only
/// then can a rule already have asked for an execution).
struct Queued {
    trigger: TriggerInstance,
    fresh: bool,
}

/// The embedded trigger bus: a bounded in-process queue over the sled store.
pub struct LocalBus {
    tx: mpsc::Sender<Queued>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    capacity: usize,
}

impl LocalBus {
    /// Start the bus and its evaluation loop.
    pub fn start(engine: Arc<Engine>, metrics: Arc<Metrics>, capacity: usize) -> Arc<LocalBus> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let bus = Arc::new(LocalBus {
            tx,
            engine: engine.clone(),
            metrics: metrics.clone(),
            capacity,
        });
        tokio::spawn(evaluate_loop(engine, metrics, rx));
        bus
    }
}

#[async_trait]
impl Bus for LocalBus {
    /// Once a queue slot is reserved, the persist-and-enqueue work runs in a task of its
    /// own: dropping the returned future (an HTTP client that went away, a sensor stopped
    /// at shutdown) cannot leave a stored trigger `pending` and unqueued. When the trigger
    /// cannot be made durable, its record (and audit entry) is removed again and the caller
    /// gets the error, so a trigger is either accepted and queued, or refused and not
    /// stored.
    async fn accept(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
        audit: Option<Draft>,
    ) -> Result<TriggerInstance, BusError> {
        if !valid_type(trigger_type) {
            return Err(BusError::BadType(trigger_type.to_string()));
        }
        squall_core::limits::check_input(&payload, "the trigger payload", "")?;
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
        squall_core::store::check_trigger(&t)?;
        let engine = self.engine.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let store = engine.store();
            let mut batch = Batch::default();
            batch.trigger(&t);
            let audit_id = audit.map(|draft| {
                let id = ulid::Ulid::new().to_string();
                batch.audit(id.clone(), &draft.entry(&format!("accepted {}", t.id)));
                id
            });
            let ticket = store.commit(batch)?;
            if let Err(e) = store.durable(ticket).await {
                // Not acknowledged: take the records back so no one finds it `pending`.
                let removed = store
                    .delete_trigger(&t.id)
                    .and_then(|()| audit_id.map_or(Ok(()), |a| store.delete_audit(&a)));
                if let Err(del) = removed {
                    tracing::error!(trigger_instance = %t.id, error = %del,
                        "a trigger that could not be made durable could not be removed either; queueing it");
                    permit.send(Queued { trigger: t, fresh: true });
                }
                return Err(BusError::Store(e));
            }
            metrics.trigger_received(&t.trigger);
            permit.send(Queued {
                trigger: t.clone(),
                fresh: true,
            });
            Ok(t)
        })
        .await
        .map_err(BusError::Task)?
    }

    async fn requeue_pending(&self) -> Result<usize, BusError> {
        // Unreadable records are logged and left out (`squall store check` lists them).
        let pending = self.engine.store().pending_triggers()?;
        let n = pending.len();
        for trigger in pending {
            let queued = Queued {
                trigger,
                fresh: false,
            };
            if self.tx.send(queued).await.is_err() {
                break;
            }
        }
        Ok(n)
    }

    fn depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }
}

#[async_trait]
impl Emitter for LocalBus {
    async fn emit(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
    ) -> Result<String, BusError> {
        self.accept(trigger_type, payload, source, None)
            .await
            .map(|t| t.id)
    }
}

/// `a.b_c.d`: lower-case dotted names.
pub fn valid_type(t: &str) -> bool {
    !t.is_empty() && t.len() <= 200 && t.split('.').all(squall_core::model::valid_name)
}

async fn evaluate_loop(engine: Arc<Engine>, metrics: Arc<Metrics>, mut rx: mpsc::Receiver<Queued>) {
    // Evaluate several triggers at once so their store flushes are shared. An evaluation
    // holds its slot until each execution it starts has a worker: a busy pool slows the
    // queue down (and, when it is full, the emitters) instead of piling up work in memory.
    let slots = Arc::new(Semaphore::new(EVALUATION_SLOTS));
    while let Some(q) = rx.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let engine2 = engine.clone();
        let metrics = metrics.clone();
        engine.track(async move {
            let id = q.trigger.id.clone();
            if let Err(e) = evaluate(&engine2, &metrics, q.trigger, q.fresh).await {
                tracing::error!(trigger_instance = %id, error = %e, "trigger evaluation failed");
            }
            drop(permit);
        });
    }
}

/// What a rule that matched led to.
enum Asked {
    /// An execution whose `scheduled` record is durable (its id).
    Recorded(String),
    /// An execution that runs unrecorded and is written when it ends.
    Unrecorded(Box<Prepared>),
    /// No execution, and why (bad parameters, an unknown or disabled action).
    Refused(String),
}

/// Ask for the execution of `rule`'s action with `parameters` for trigger `trigger`.
/// Only a store failure is an error; anything else is a refusal the enforcement records.
async fn ask(
    engine: &Arc<Engine>,
    rule: &squall_core::rules::Rule,
    trigger: &str,
    parameters: Json,
) -> Result<Asked, BusError> {
    let req = Request {
        action: rule.spec.action.action.clone(),
        parameters,
        rule: Some(rule.reference.clone()),
        trigger_instance: Some(trigger.to_string()),
        requested_by: Some(format!("rule:{}", rule.reference)),
        ..Default::default()
    };
    let refused = |e: EngineError| match e {
        EngineError::Store(s) => Err(BusError::Store(s)),
        e => Ok(Asked::Refused(e.to_string())),
    };
    match engine.prepare(&req) {
        Ok(p) if p.may_run_unrecorded() => Ok(Asked::Unrecorded(Box::new(p))),
        Ok(p) => match engine.submit_prepared(p).await {
            Ok(e) => Ok(Asked::Recorded(e.id)),
            Err(e) => refused(e),
        },
        Err(e) => refused(e),
    }
}

/// Evaluate trigger instance `t` against the rules for its type. `fresh`: accepted by
/// this process (no rule can have asked for an execution for it yet).
pub async fn evaluate(
    engine: &Arc<Engine>,
    metrics: &Metrics,
    mut t: TriggerInstance,
    fresh: bool,
) -> Result<(), BusError> {
    if t.status == TriggerStatus::Processed {
        return Ok(());
    }
    let content = engine.content();
    let event =
        json!({"id": t.id, "type": t.trigger, "source": t.source, "occurred_at": t.occurred_at});
    let mut ctx = TriggerContext::new(&t.payload, &event);
    // Written now: enforcements that failed or whose execution has a durable record.
    let mut batch = Batch::default();
    // Executions that run unrecorded, with their enforcements: written when each ends.
    let mut unrecorded = Vec::new();
    for rule in content.rule_index.for_trigger(&t.trigger) {
        let asked = match rule.matches(&mut ctx) {
            Ok(false) => continue,
            Ok(true)
                if !fresh
                    && engine
                        .store()
                        .execution_for(&t.id, &rule.reference)?
                        .is_some() =>
            {
                // Requested before a crash; the execution itself is recovered on its own.
                continue;
            }
            Ok(true) => match rule.render_parameters(&mut ctx) {
                Ok(parameters) => ask(engine, rule, &t.id, parameters).await?,
                Err(e) => Asked::Refused(e.to_string()),
            },
            Err(e) => Asked::Refused(e.to_string()),
        };
        let (execution, waiting) = match asked {
            Asked::Recorded(id) => (Ok(id), None),
            Asked::Unrecorded(p) => (Ok(p.execution.id.clone()), Some(*p)),
            Asked::Refused(e) => (Err(e), None),
        };
        let enforcement = Enforcement {
            id: engine.new_id(),
            trigger_instance: t.id.clone(),
            rule: rule.reference.clone(),
            execution: execution.as_ref().ok().cloned(),
            error: execution
                .as_ref()
                .err()
                .map(|e| squall_core::secrets::mask_str(e)),
            created_at: now_rfc3339(),
        };
        if let Some(err) = &enforcement.error {
            tracing::warn!(rule = %rule.reference, trigger_instance = %t.id, error = %err, "rule enforcement failed");
        }
        metrics.enforcement(&rule.reference, enforcement.error.is_none());
        t.enforcements.push(enforcement.id.clone());
        match waiting {
            Some(p) => unrecorded.push((p, enforcement)),
            None => batch.enforcement(&enforcement),
        }
    }
    t.status = TriggerStatus::Processed;
    // No durable wait: a trigger whose `processed` mark is lost is evaluated again after a
    // restart and finds the executions its rules already asked for.
    if unrecorded.is_empty() {
        batch.trigger(&t);
        engine.store().commit(batch)?;
        return Ok(());
    }
    if !batch.is_empty() {
        engine.store().commit(batch)?;
    }
    // The last execution to end marks the trigger processed in its own final commit, after
    // every record the trigger caused.
    let remaining = Arc::new(AtomicUsize::new(unrecorded.len()));
    let t = Arc::new(t);
    for (p, enforcement) in unrecorded {
        let (remaining, t) = (remaining.clone(), t.clone());
        let finish: Finish = Box::new(move |b: &mut Batch| {
            b.enforcement(&enforcement);
            if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                b.trigger(&t);
            }
        });
        engine.run_unrecorded(p, finish).await;
    }
    Ok(())
}
