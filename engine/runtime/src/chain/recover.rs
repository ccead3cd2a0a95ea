//! Resuming a workflow after a crash: what became of a child that was in flight when an
//! earlier process stopped (finished, to run again, or a nested workflow to resume).

use super::{Chain, ChildFuture};
use crate::executions::EngineError;
use squall_core::model::{Json, Status};
use squall_core::workflow::state::UnitOutcome;

/// What to do with a child found in flight.
pub(super) enum Recovered {
    /// It had finished: take this outcome.
    Done(UnitOutcome),
    /// Run the task again (the action is idempotent, or the child was never recorded).
    Rerun,
    /// A nested workflow carrying on from its own state.
    Resumed(ChildFuture),
}

impl Chain {
    /// A child that was in flight when an earlier process stopped.
    pub(super) async fn recover_child(&mut self, id: &str) -> Result<Recovered, EngineError> {
        let store = self.engine.store().clone();
        let Some(mut child) = store.get_execution(id)? else {
            return Ok(Recovered::Rerun);
        };
        if child.status.is_terminal() {
            // A result that held secrets was sealed beside the (masked) record.
            let result = match store.sealed_result(id)? {
                Some(clear) => {
                    if let Some(masked) = &child.result {
                        squall_core::secrets::register_masked(&clear, masked);
                    }
                    clear
                }
                None => child.result.unwrap_or(Json::Null),
            };
            return Ok(Recovered::Done(UnitOutcome {
                status: child.status,
                result,
                error: child.error,
            }));
        }
        let action = self.engine.content().actions.get(&child.action).cloned();
        // A nested workflow is resumable like its parent: carry on from its own state.
        if let Some(action) = action.clone().filter(|a| a.workflow.is_some()) {
            let parameters = self.engine.stored_parameters(&child, &action)?;
            let p = crate::executions::Prepared::of_stored(child, parameters, action);
            let engine = self.engine.clone();
            let cancel = self.cancel.clone();
            let handle = tokio::spawn(async move { engine.run_prepared_clear(p, cancel).await });
            return Ok(Recovered::Resumed(Box::pin(async move {
                handle.await.unwrap_or_else(|e| {
                    Err(EngineError::Store(squall_core::store::StoreError::Io(
                        std::io::Error::other(format!("task runner crashed: {e}")),
                    )))
                })
            })));
        }
        let idempotent = action.map(|a| a.meta.idempotent).unwrap_or(false);
        let prev = child.status;
        child.status = Status::Abandoned;
        child.finished_at = Some(squall_core::model::now_rfc3339());
        child.error = Some(if idempotent {
            "the engine stopped while this ran; run again because the action is idempotent".into()
        } else {
            "the engine stopped while this ran and the action is not idempotent, so it was not run again".into()
        });
        let t = store.put_execution(Some(prev), &child)?;
        store.durable(t).await?;
        Ok(if idempotent {
            Recovered::Rerun
        } else {
            Recovered::Done(UnitOutcome {
                status: Status::Abandoned,
                result: Json::Null,
                error: child.error,
            })
        })
    }
}
