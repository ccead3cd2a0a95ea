//! The audit trail: who did what, when, with which parameters (secrets masked), and the
//! outcome. Each entry is stored and printed as one JSON line on stdout.

use crate::model::{now_rfc3339, Json};
use crate::store::Store;
use serde_json::json;
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
        let entry = json!({
            "audit": true,
            "at": now_rfc3339(),
            "who": who,
            "what": what,
            "target": crate::secrets::mask_str(target),
            "details": crate::secrets::mask_json(&details),
            "outcome": crate::secrets::mask_str(outcome),
        });
        if self.stdout {
            let line = entry.to_string();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
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
