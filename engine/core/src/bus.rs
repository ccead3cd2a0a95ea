//! The bus seam: the [`Bus`] trait that accepts trigger instances durably and has them
//! evaluated, and [`BusError`], why one was refused. The embedded implementation is
//! `squall_runtime::bus::LocalBus`.

use crate::audit::Draft;
use crate::model::{Json, TriggerInstance};
use async_trait::async_trait;

/// Accepts triggers from sensors (the trigger bus implements it).
#[async_trait]
pub trait Emitter: Send + Sync {
    /// Persist and enqueue one trigger instance; returns its id. An error means it was
    /// not accepted; [`BusError::is_transient`] says whether trying again can help (a full
    /// queue) or not (an invalid trigger type).
    async fn emit(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
    ) -> Result<String, BusError>;
}

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
    Task(#[source] tokio::task::JoinError),
}

impl BusError {
    /// Whether the same trigger may be accepted later: the queue was full or the store
    /// failed. A bad trigger type or payload is refused again every time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BusError::Full(_) | BusError::Store(_) | BusError::Task(_)
        )
    }
}

/// Accepts trigger instances and has them evaluated against the rules.
#[async_trait]
pub trait Bus: Emitter {
    /// Accept one trigger: durable before this returns `Ok`, then evaluated. `audit` is
    /// the entry of the request that brought it, completed with `accepted <id>` and made
    /// durable in the same commit as the trigger. Fails fast when the queue is full.
    async fn accept(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
        audit: Option<Draft>,
    ) -> Result<TriggerInstance, BusError>;

    /// Queue again every trigger an earlier process accepted but did not evaluate.
    async fn requeue_pending(&self) -> Result<usize, BusError>;

    /// Triggers waiting for evaluation.
    fn depth(&self) -> usize;
}
