//! Trigger instances, enforcements and the audit trail: each kind in its own tree, keyed by
//! ULID so key order is time order. Errors name a record `<tree>:<id>` (`triggers:01J…`).

use super::reading::{decode, Listing};
use super::{SledStore, StoreError};
use crate::model::{Enforcement, Json, TriggerInstance, TriggerStatus};
use std::sync::atomic::Ordering;

impl SledStore {
    fn bump(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Write a trigger instance; returns a durability ticket. Refused (nothing written)
    /// when the document would nest deeper than [`crate::limits::MAX_STORED_DEPTH`]: it
    /// could not be read back.
    pub fn put_trigger(&self, t: &TriggerInstance) -> Result<u64, StoreError> {
        check_trigger(t)?;
        self.triggers
            .insert(t.id.as_bytes(), serde_json::to_vec(t).unwrap_or_default())?;
        Ok(self.bump())
    }

    /// Remove trigger instance `id` (one that was never acknowledged to its sender).
    pub fn delete_trigger(&self, id: &str) -> Result<(), StoreError> {
        self.triggers.remove(id.as_bytes())?;
        Ok(())
    }

    /// Remove audit entry `id` (one written with a trigger that could not be made durable).
    pub fn delete_audit(&self, id: &str) -> Result<(), StoreError> {
        self.audit.remove(id.as_bytes())?;
        Ok(())
    }

    /// The trigger instance `id`.
    pub fn get_trigger(&self, id: &str) -> Result<Option<TriggerInstance>, StoreError> {
        match self.triggers.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode(&format!("triggers:{id}"), &v)?)),
            None => Ok(None),
        }
    }

    /// Trigger instances, newest first, optionally of one type; at most `limit` (`0`: all).
    /// Records that cannot be read are left out and named in [`Listing::skipped`].
    pub fn list_triggers(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Listing<TriggerInstance>, StoreError> {
        let mut out = Listing::default();
        for item in self.triggers.iter().rev() {
            if limit != 0 && out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            match decode::<TriggerInstance>(&tree_key("triggers", &k), &v) {
                Ok(t) if trigger.is_some_and(|ty| t.trigger != ty) => {}
                read => out.take(read)?,
            }
        }
        Ok(out)
    }

    /// Trigger instances not yet evaluated, oldest first (for recovery). Records that
    /// cannot be read are left out and named in [`Listing::skipped`].
    pub fn pending_triggers(&self) -> Result<Listing<TriggerInstance>, StoreError> {
        let mut out = Listing::default();
        for item in self.triggers.iter() {
            let (k, v) = item?;
            match decode::<TriggerInstance>(&tree_key("triggers", &k), &v) {
                Ok(t) if t.status != TriggerStatus::Pending => {}
                read => out.take(read)?,
            }
        }
        Ok(out)
    }

    /// Write an enforcement; returns a durability ticket.
    pub fn put_enforcement(&self, e: &Enforcement) -> Result<u64, StoreError> {
        self.enforcements
            .insert(e.id.as_bytes(), serde_json::to_vec(e).unwrap_or_default())?;
        Ok(self.bump())
    }

    /// The enforcement `id`.
    pub fn get_enforcement(&self, id: &str) -> Result<Option<Enforcement>, StoreError> {
        match self.enforcements.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode(&format!("enforcements:{id}"), &v)?)),
            None => Ok(None),
        }
    }

    /// Append an audit entry (already masked); returns a durability ticket.
    pub fn put_audit(&self, id: &str, entry: &Json) -> Result<u64, StoreError> {
        self.audit
            .insert(id.as_bytes(), serde_json::to_vec(entry).unwrap_or_default())?;
        Ok(self.bump())
    }

    /// Audit entries, newest first; at most `limit` (`0`: all). Entries that cannot be read
    /// are left out and named in [`Listing::skipped`].
    pub fn list_audit(&self, limit: usize) -> Result<Listing<Json>, StoreError> {
        let mut out = Listing::default();
        let limit = if limit == 0 { usize::MAX } else { limit };
        for item in self.audit.iter().rev() {
            if out.items.len() >= limit {
                break;
            }
            let (k, v) = item?;
            out.take(decode(&tree_key("audit", &k), &v))?;
        }
        Ok(out)
    }

    /// The audit listing of [`SledStore::list_audit`] as the bytes of one JSON array, built
    /// from the stored entries as they are (each checked to be JSON, not parsed into a
    /// document tree): a long listing (`limit` `0`) holds about its own size in memory,
    /// not several times it. Also returns the keys of entries left out (unreadable).
    pub fn list_audit_json(&self, limit: usize) -> Result<(Vec<u8>, Vec<String>), StoreError> {
        let mut out = Listing::<()>::default();
        let mut body = Vec::with_capacity(2);
        body.push(b'[');
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut listed = 0usize;
        for item in self.audit.iter().rev() {
            if listed >= limit {
                break;
            }
            let (k, v) = item?;
            if listed > 0 {
                body.push(b',');
            }
            if crate::limits::text_depth(&v) < 128
                && serde_json::from_slice::<serde::de::IgnoredAny>(&v).is_ok()
            {
                body.extend_from_slice(v.trim_ascii());
            } else {
                // Deeper than a plain reader takes (an older version wrote it) or unreadable:
                // listed as `list_audit` reads it, or left out.
                match decode::<Json>(&tree_key("audit", &k), &v) {
                    Ok(doc) => serde_json::to_writer(&mut body, &doc)
                        .map_err(|e| super::corrupt(&tree_key("audit", &k), e))?,
                    Err(e) => {
                        if listed > 0 {
                            body.pop();
                        }
                        out.skip(e)?;
                        continue;
                    }
                }
            }
            listed += 1;
        }
        body.push(b']');
        Ok((body, out.skipped))
    }
}

/// `<tree>:<key>`, how errors and `squall store check` name a record.
/// Refuse a trigger instance whose record would nest deeper than
/// [`crate::limits::MAX_STORED_DEPTH`]: it could not be read back.
pub fn check_trigger(t: &TriggerInstance) -> Result<(), StoreError> {
    // The payload sits one level inside the record.
    crate::limits::check(
        &t.payload,
        crate::limits::MAX_STORED_DEPTH - 1,
        "the trigger instance record",
        "payload",
    )
    .map_err(StoreError::TooDeep)
}

pub(super) fn tree_key(tree: &str, key: &[u8]) -> String {
    format!("{tree}:{}", String::from_utf8_lossy(key))
}
