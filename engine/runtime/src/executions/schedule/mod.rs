//! Asynchronous submission (`squall serve`): a bounded worker pool, per-action concurrency
//! limits, crash recovery at start-up and graceful draining at shutdown.

use super::{Engine, EngineError, Finish, Prepared, Request};
use serde::Serialize;
use squall_core::locks::MutexExt;
use squall_core::model::{now_rfc3339, Execution, Status};
use squall_core::store::Batch;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

mod sweep;

/// Executions run at once unless `workers` in squall.yaml says otherwise.
pub const DEFAULT_WORKERS: usize = 64;

/// What start-up recovery found and did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Recovery {
    /// Workflows resumed from their saved state.
    pub resumed: Vec<String>,
    /// Leaf executions run again (idempotent).
    pub rerun: Vec<String>,
    /// Leaf executions marked abandoned (not idempotent).
    pub abandoned: Vec<String>,
    /// Queued executions queued again.
    pub requeued: Vec<String>,
    /// Process groups an earlier engine left running, killed before anything else.
    pub processes_ended: Vec<String>,
    /// Keys of records that could not be read (logged and left as they are; see
    /// `squall store check`).
    pub unreadable: Vec<String>,
}

impl Engine {
    /// Set the size of the worker pool (call before submitting anything).
    pub fn set_workers(self: &Arc<Self>, n: usize) {
        let current = self.workers.available_permits();
        let n = n.max(1);
        if n > current {
            self.workers.add_permits(n - current);
        } else if n < current {
            self.workers.forget_permits(current - n);
        }
    }

    /// Record an execution as `scheduled` (durably) and run it when a worker and the
    /// action's concurrency slot are free. Returns the scheduled record.
    pub async fn submit(self: &Arc<Self>, req: Request) -> Result<Execution, EngineError> {
        let p = self.prepare(&req)?;
        self.submit_prepared(p).await
    }

    /// [`Engine::submit`] for a request already prepared.
    pub async fn submit_prepared(
        self: &Arc<Self>,
        mut p: Prepared,
    ) -> Result<Execution, EngineError> {
        p.execution.status = Status::Scheduled;
        p.execution.started_at = None;
        let mut b = Batch::default();
        self.stage(&mut b, &mut p);
        let t = self.store.commit(b)?;
        self.store.durable(t).await?;
        let record = p.execution.clone();
        self.spawn_scheduled(p);
        Ok(record)
    }

    /// Run a `scheduled`/`requested` record in the background once it gets its slots.
    fn spawn_scheduled(self: &Arc<Self>, p: Prepared) {
        let engine = self.clone();
        let cancel = CancellationToken::new();
        self.cancels
            .locked()
            .insert(p.execution.id.clone(), cancel.clone());
        self.tracker.spawn(async move {
            let id = p.execution.id.clone();
            let Some(_permits) = engine.acquire(&p, &cancel).await else {
                engine
                    .end_unstarted(p.execution, Status::Canceled, "canceled before it started")
                    .await;
                return;
            };
            let mut p = p;
            let prev = p.execution.status;
            p.execution.status = Status::Running;
            p.execution.started_at = Some(now_rfc3339());
            match engine.store.put_execution(Some(prev), &p.execution) {
                Ok(t) if !super::must_record_start(&p) => {
                    // Idempotent: recovery requeues it if this start record is lost.
                    let _ = t;
                }
                Ok(t) => {
                    if let Err(e) = engine.store.durable(t).await {
                        tracing::error!(execution = %id, error = %e, "cannot record start");
                    }
                }
                Err(e) => tracing::error!(execution = %id, error = %e, "cannot record start"),
            }
            if let Err(e) = engine.run_prepared(p, cancel).await {
                tracing::error!(execution = %id, error = %e, "execution could not be recorded");
            }
        });
    }

    /// Run `p` (one that [may run unrecorded](Prepared::may_run_unrecorded)) once a worker
    /// and the action's concurrency slot are free: waits for them (the caller's
    /// backpressure), then runs in the background. Its record is written once, when it
    /// ends, with `finish`'s writes.
    pub(crate) async fn run_unrecorded(self: &Arc<Self>, p: Prepared, finish: Finish) {
        let cancel = CancellationToken::new();
        let Some(permits) = self.acquire(&p, &cancel).await else {
            // Only when the pools are closed (never while the engine lives): the trigger
            // stays `pending` and is evaluated again at the next start.
            tracing::error!(execution = %p.execution.id, "no worker for the execution; not run");
            return;
        };
        let engine = self.clone();
        self.tracker.spawn(async move {
            let _permits = permits;
            let mut p = p;
            let id = p.execution.id.clone();
            p.execution.status = Status::Running;
            p.execution.started_at = Some(now_rfc3339());
            if let Err(e) = engine.run_to_end(p, cancel, Some(finish)).await {
                tracing::error!(execution = %id, error = %e, "execution could not be recorded");
            }
        });
    }

    /// Run `fut` as tracked work: [`Engine::drain`] waits for it at shutdown.
    pub(crate) fn track<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(fut);
    }

    /// A worker permit and, when the action limits concurrency, one of its slots.
    async fn acquire(
        &self,
        p: &Prepared,
        cancel: &CancellationToken,
    ) -> Option<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>)> {
        let slot = p.action.meta.concurrency.map(|n| {
            self.action_slots
                .locked()
                .entry(p.action.reference.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(n.max(1))))
                .clone()
        });
        let get = async {
            let action_permit = match slot {
                Some(s) => Some(s.acquire_owned().await.ok()?),
                None => None,
            };
            let worker = self.workers.clone().acquire_owned().await.ok()?;
            Some((worker, action_permit))
        };
        tokio::select! {
            got = get => got,
            _ = cancel.cancelled() => None,
        }
    }

    async fn end_unstarted(&self, mut e: Execution, status: Status, why: &str) {
        let prev = e.status;
        e.status = status;
        e.error = Some(why.to_string());
        e.finished_at = Some(now_rfc3339());
        self.cancels.locked().remove(&e.id);
        match self.store.put_execution(Some(prev), &e) {
            Ok(t) => {
                if let Err(err) = self.store.durable(t).await {
                    tracing::error!(execution = %e.id, error = %err, "cannot record the end of an execution");
                }
            }
            Err(err) => {
                tracing::error!(execution = %e.id, error = %err, "cannot record the end of an execution")
            }
        }
    }

    /// Bring every execution left unfinished by an earlier process to a definite state
    /// (docs/executions.md): workflows resume from their saved cursor; leaf actions that were
    /// running run again when idempotent, else become `abandoned`; queued ones are queued
    /// again. Children of workflows are handled by their workflow when it resumes.
    ///
    /// Before anything is run again or abandoned, every process group an earlier engine
    /// recorded and left running is killed (and waited for), and workflow children that no
    /// resumed workflow will settle are abandoned.
    pub async fn recover(self: &Arc<Self>) -> Result<Recovery, EngineError> {
        let mut report = Recovery {
            processes_ended: self.end_leftover_processes().await?,
            ..Recovery::default()
        };
        let content = self.content();
        let unfinished = self.store.unfinished()?;
        report.abandoned = self.end_orphaned_children(&unfinished).await;
        report.unreadable.clone_from(&unfinished.skipped);
        for mut e in unfinished {
            if e.parent.is_some() {
                continue;
            }
            let action = match content.action(&e.action) {
                Ok(a) => a,
                Err(msg) => {
                    let why = format!("cannot resume after restart: {msg}");
                    self.end_unstarted(e.clone(), Status::Abandoned, &why).await;
                    report.abandoned.push(e.id);
                    continue;
                }
            };
            let parameters = self.stored_parameters(&e, &action)?;
            match e.status {
                Status::Requested | Status::Scheduled => {
                    report.requeued.push(e.id.clone());
                    self.spawn_scheduled(Prepared::of_stored(e, parameters, action));
                }
                Status::Canceling => {
                    self.end_unstarted(
                        e.clone(),
                        Status::Canceled,
                        "canceled (the engine stopped while canceling)",
                    )
                    .await;
                }
                Status::Running if action.workflow.is_some() => {
                    report.resumed.push(e.id.clone());
                    let engine = self.clone();
                    self.tracker.spawn(async move {
                        let id = e.id.clone();
                        let p = Prepared::of_stored(e, parameters, action);
                        if let Err(err) = engine.run_prepared(p, CancellationToken::new()).await {
                            tracing::error!(execution = %id, error = %err, "resumed workflow could not be recorded");
                        }
                    });
                }
                Status::Running if action.meta.idempotent => {
                    report.rerun.push(e.id.clone());
                    e.attempt += 1;
                    let engine = self.clone();
                    self.tracker.spawn(async move {
                        let id = e.id.clone();
                        if let Ok(t) = engine.store.put_execution(Some(Status::Running), &e) {
                            let _ = engine.store.durable(t).await;
                        }
                        let p = Prepared::of_stored(e, parameters, action);
                        if let Err(err) = engine.run_prepared(p, CancellationToken::new()).await {
                            tracing::error!(execution = %id, error = %err, "re-run could not be recorded");
                        }
                    });
                }
                _ => {
                    let why = "the engine stopped while this ran and the action is not idempotent, so it was not run again";
                    report.abandoned.push(e.id.clone());
                    self.end_unstarted(e, Status::Abandoned, why).await;
                }
            }
        }
        Ok(report)
    }

    /// Stop accepting work and wait for running executions; after `grace` cancel what is
    /// left and wait for it to be recorded as canceled.
    pub async fn drain(&self, grace: Duration) {
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            let running: Vec<CancellationToken> = self.cancels.locked().values().cloned().collect();
            tracing::warn!(
                count = running.len(),
                "shutdown: canceling executions still running"
            );
            running.iter().for_each(CancellationToken::cancel);
            let _ = tokio::time::timeout(Duration::from_secs(15), self.tracker.wait()).await;
        }
    }

    /// Executions waiting for a worker or a concurrency slot, and running ones.
    pub fn queue_depth(&self) -> usize {
        self.tracker.len()
    }
}
