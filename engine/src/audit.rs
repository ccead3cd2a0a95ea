//! The audit trail: who did what, when, with which parameters (secrets masked), and the
//! outcome. Each entry is stored and printed as one JSON line on stdout.
//!
//! Entries for requests are written here; the `execution.finished` entries are written by
//! the store in the same commit as the terminal record (`store/audit.rs`), so the trail
//! holds every finished execution at any load and exactly once across a crash.

use crate::model::{now_rfc3339, Json};
use crate::store::{audit_entry, Store};
use std::io::Write;
use std::sync::Arc;

/// Writes audit entries.
pub struct Audit {
    store: Arc<Store>,
    stdout: bool,
}

impl Audit {
    /// An audit trail in `store`, echoed on stdout when `stdout`.
    pub fn new(store: Arc<Store>, stdout: bool) -> Audit {
        Audit { store, stdout }
    }

    /// Record one event. `details` and `outcome` are masked here.
    pub async fn record(&self, who: &str, what: &str, target: &str, details: Json, outcome: &str) {
        let entry = audit_entry(
            &now_rfc3339(),
            who,
            what,
            &crate::secrets::mask_str(target),
            crate::secrets::mask_json(&details),
            &crate::secrets::mask_str(outcome),
        );
        if self.stdout {
            echo(&entry);
        }
        let id = ulid::Ulid::new().to_string();
        match self.store.put_audit(&id, &entry) {
            Ok(t) => {
                if let Err(e) = self.store.durable(t).await {
                    tracing::error!(error = %e, "audit entry not made durable");
                }
            }
            Err(e) => tracing::error!(error = %e, "audit entry not stored"),
        }
    }
}

/// Print one entry as a JSON line on stdout.
pub fn echo(entry: &Json) {
    let line = entry.to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
