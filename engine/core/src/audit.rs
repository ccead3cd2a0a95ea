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
    store: Arc<dyn Store>,
    stdout: bool,
}

impl Audit {
    /// An audit trail in `store`, echoed on stdout when `stdout`.
    pub fn new(store: Arc<dyn Store>, stdout: bool) -> Audit {
        Audit { store, stdout }
    }

    /// An entry to be completed with its outcome and written with the change it records
    /// (a trigger accepted: the trigger and the entry are one commit, see `bus.rs`).
    pub fn draft(&self, who: &str, what: &str, target: &str, details: Json) -> Draft {
        Draft {
            who: who.to_string(),
            what: what.to_string(),
            target: target.to_string(),
            details,
            echo: self.stdout,
        }
    }

    /// Record one event. `details` and `outcome` are masked here.
    pub async fn record(&self, who: &str, what: &str, target: &str, details: Json, outcome: &str) {
        let entry = self.draft(who, what, target, details).entry(outcome);
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

/// An audit entry waiting for its outcome.
#[derive(Debug, Clone)]
pub struct Draft {
    who: String,
    what: String,
    target: String,
    details: Json,
    echo: bool,
}

impl Draft {
    /// The entry with `outcome`, masked, and printed on stdout when the trail is echoed.
    pub fn entry(&self, outcome: &str) -> Json {
        let entry = audit_entry(
            &now_rfc3339(),
            &self.who,
            &self.what,
            &crate::secrets::mask_str(&self.target),
            crate::secrets::mask_json(&self.details),
            &crate::secrets::mask_str(outcome),
        );
        if self.echo {
            echo(&entry);
        }
        entry
    }
}

/// Print one entry as a JSON line on stdout.
pub fn echo(entry: &Json) {
    let line = entry.to_string();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}
