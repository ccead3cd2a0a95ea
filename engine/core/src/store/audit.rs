//! The audit trail's `execution.finished` entries, written by the store itself in the same
//! commit as the terminal record they describe, so that no load and no crash can make the
//! trail and the records disagree.
//!
//! A commit that makes an execution terminal writes, in this order (sled recovers a prefix
//! of its log after a crash, so order is what matters):
//! 1. a marker `f:<execution id>` → the id of the audit entry to be written;
//! 2. the terminal record `e:<execution id>`;
//! 3. the audit entry (tree `audit`, under that id);
//! 4. the removal of the marker.
//!
//! When the store opens, every marker left by a crash is settled: if the record it names is
//! terminal and the entry is missing, the entry is written from the record (the entry is a
//! pure function of the record); the marker is then removed. A record that did not become
//! durable gets no entry, and one that did gets exactly one.

use super::{corrupt, SledStore, StoreError};
use crate::model::{Execution, Json};
use serde_json::json;

/// An execution that reached a terminal status in a commit: what metrics and the echo of
/// the audit trail on stdout need.
#[derive(Debug, Clone)]
pub struct FinishedExecution {
    /// Execution id.
    pub id: String,
    /// Action reference.
    pub action: String,
    /// Terminal status.
    pub status: crate::model::Status,
    /// Seconds from start to finish, when it started.
    pub seconds: Option<f64>,
    /// The audit entry stored for it.
    pub entry: Json,
}

/// Called for every execution that became terminal, right after its commit.
pub type FinishedHook = Box<dyn Fn(&FinishedExecution) + Send + Sync>;

/// An audit entry (the one shape of every entry of the trail). `details` and `outcome` must
/// already be masked.
pub fn audit_entry(
    at: &str,
    who: &str,
    what: &str,
    target: &str,
    details: Json,
    outcome: &str,
) -> Json {
    json!({
        "audit": true,
        "at": at,
        "who": who,
        "what": what,
        "target": target,
        "details": details,
        "outcome": outcome,
    })
}

/// The `execution.finished` entry of a terminal record (already masked).
pub fn finished_entry(e: &Execution) -> Json {
    audit_entry(
        e.finished_at.as_deref().unwrap_or(&e.created_at),
        e.requested_by.as_deref().unwrap_or_default(),
        "execution.finished",
        &e.id,
        json!({"action": e.action, "parameters": e.parameters, "parent": e.parent}),
        e.status.as_str(),
    )
}

impl FinishedExecution {
    /// What a commit of terminal record `e` reports.
    pub fn of(e: &Execution) -> FinishedExecution {
        FinishedExecution {
            id: e.id.clone(),
            action: e.action.clone(),
            status: e.status,
            seconds: crate::model::seconds_between(
                e.started_at.as_deref(),
                e.finished_at.as_deref(),
            ),
            entry: finished_entry(e),
        }
    }
}

/// The marker key of execution `id`.
pub(super) fn marker_key(id: &str) -> Vec<u8> {
    format!("f:{id}").into_bytes()
}

impl SledStore {
    /// Settle the markers a crash left (see the module docs). Returns how many entries were
    /// written.
    pub(super) fn settle_audit_markers(&self) -> Result<usize, StoreError> {
        let mut written = 0;
        for item in self.exec.scan_prefix("f:") {
            let (k, audit_id) = item?;
            let id = String::from_utf8_lossy(&k[2..]).to_string();
            if self.audit.get(&audit_id)?.is_none() {
                let key = format!("e:{id}");
                if let Some(v) = self.exec.get(&key)? {
                    let e: Execution = serde_json::from_slice(&v).map_err(|e| corrupt(&key, e))?;
                    if e.status.is_terminal() {
                        let entry = serde_json::to_vec(&finished_entry(&e)).unwrap_or_default();
                        self.audit.insert(&audit_id, entry)?;
                        written += 1;
                    }
                }
            }
            self.exec.remove(&k)?;
        }
        if written > 0 {
            tracing::warn!(
                entries = written,
                "audit: wrote the execution.finished entries a crash left out"
            );
        }
        Ok(written)
    }
}
