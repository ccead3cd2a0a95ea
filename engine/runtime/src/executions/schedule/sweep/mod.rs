//! The first steps of crash recovery, before any execution is run again or abandoned:
//! end the processes an earlier engine left running, and settle the workflow children that
//! no workflow will settle.

use super::Engine;
use crate::runners::process::{end_recorded, Ended};
use squall_core::model::{Execution, Json, Status};
use squall_core::store::StoreError;

/// Why a child that no workflow tracks any more is ended.
const ORPHANED: &str = "the engine stopped while this ran and its workflow no longer tracks it (the workflow has ended, or its saved state does not name this task in flight), so it was not run again";

impl Engine {
    /// End every process group recorded by an earlier engine that is still running:
    /// `SIGKILL` to the group, then wait until its members are gone. Returns one line per
    /// group that had to be killed. Every record is then forgotten.
    pub(super) async fn end_leftover_processes(&self) -> Result<Vec<String>, StoreError> {
        let mut ended = Vec::new();
        for record in self.store.recorded_processes()? {
            let r = match record {
                Ok(r) => r,
                Err(e) => {
                    // Its process cannot be found without the record; the group got SIGKILL
                    // from the kernel with the engine (the death signal) in any case.
                    tracing::error!(error = %e, "recovery: a process record cannot be read; it is dropped");
                    continue;
                }
            };
            match end_recorded(&r).await {
                Ended::Gone | Ended::Reused => {}
                Ended::Killed(n) => {
                    tracing::warn!(execution = %r.execution, pgid = r.pgid, processes = n,
                        "recovery: killed the processes an earlier engine left running for this execution");
                    ended.push(format!(
                        "{} (process group {}, {n} processes)",
                        r.execution, r.pgid
                    ));
                }
                Ended::Stuck(pids) => {
                    // SIGKILL is pending for them: they end as soon as the kernel lets them
                    // go, without running another instruction of their own.
                    tracing::error!(execution = %r.execution, pgid = r.pgid, pids = ?pids,
                        "recovery: processes of an earlier engine got SIGKILL but are still there (stuck in the kernel)");
                    ended.push(format!(
                        "{} (process group {}, still exiting: {pids:?})",
                        r.execution, r.pgid
                    ));
                }
            }
        }
        self.store.forget_all_processes()?;
        Ok(ended)
    }

    /// Abandon the unfinished children in `unfinished` that their workflow will not settle
    /// when it resumes: the workflow has ended (or is not there), or its saved state does
    /// not name the child in flight. Returns their ids.
    pub(super) async fn end_orphaned_children(&self, unfinished: &[Execution]) -> Vec<String> {
        let mut ended = Vec::new();
        for e in unfinished.iter().filter(|e| e.parent.is_some()) {
            let parent = e.parent.as_deref().unwrap_or_default();
            if self.tracked_by(parent, &e.id) {
                continue;
            }
            let status = match e.status {
                Status::Canceling => Status::Canceled,
                _ => Status::Abandoned,
            };
            // Read again: an earlier step of this sweep may have ended it (a nested
            // workflow's child is visited after the workflow).
            let current = match self.store.get_execution(&e.id) {
                Ok(Some(c)) if !c.status.is_terminal() => c,
                _ => continue,
            };
            tracing::warn!(execution = %e.id, workflow = %parent, "recovery: {ORPHANED}");
            self.end_unstarted(current, status, ORPHANED).await;
            ended.push(e.id.clone());
        }
        ended
    }

    /// Whether workflow `parent` is unfinished and its saved state names `child` in flight
    /// (it then settles the child itself when it resumes).
    fn tracked_by(&self, parent: &str, child: &str) -> bool {
        let action = match self.store.get_execution(parent) {
            Ok(Some(p)) if p.status == Status::Running => p.action,
            _ => return false,
        };
        // A workflow whose action is gone is abandoned, not resumed.
        if !self
            .content()
            .action(&action)
            .is_ok_and(|a| a.workflow.is_some())
        {
            return false;
        }
        let state = match self.store.get_workflow_state(parent) {
            Ok(Some(s)) => s,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(workflow = %parent, error = %e, "recovery: the workflow's state cannot be read");
                return false;
            }
        };
        state["cursor"]["in_flight"]
            .as_object()
            .is_some_and(|m| m.values().any(|v| v == &Json::from(child)))
    }
}

#[cfg(test)]
mod tests;
