//! Trigger instances, enforcements and the audit trail: each kind in its own tree, keyed by
//! ULID so key order is time order.

use super::{corrupt, Store, StoreError};
use crate::model::{Enforcement, Json, TriggerInstance, TriggerStatus};
use std::sync::atomic::Ordering;

impl Store {
    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }

    fn bump(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Write a trigger instance; returns a durability ticket.
    pub fn put_trigger(&self, t: &TriggerInstance) -> Result<u64, StoreError> {
        self.tree("triggers")?
            .insert(t.id.as_bytes(), serde_json::to_vec(t).unwrap_or_default())?;
        Ok(self.bump())
    }

    /// Remove trigger instance `id` (one that was never acknowledged to its sender).
    pub fn delete_trigger(&self, id: &str) -> Result<(), StoreError> {
        self.tree("triggers")?.remove(id.as_bytes())?;
        Ok(())
    }

    /// The trigger instance `id`.
    pub fn get_trigger(&self, id: &str) -> Result<Option<TriggerInstance>, StoreError> {
        match self.tree("triggers")?.get(id.as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt(id, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Trigger instances, newest first, optionally of one type; at most `limit` (`0`: all).
    pub fn list_triggers(
        &self,
        trigger: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TriggerInstance>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree("triggers")?.iter().rev() {
            if limit != 0 && out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            let t: TriggerInstance =
                serde_json::from_slice(&v).map_err(|e| corrupt(&String::from_utf8_lossy(&k), e))?;
            if trigger.is_none_or(|ty| t.trigger == ty) {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Trigger instances not yet evaluated, oldest first (for recovery).
    pub fn pending_triggers(&self) -> Result<Vec<TriggerInstance>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree("triggers")?.iter() {
            let (k, v) = item?;
            let t: TriggerInstance =
                serde_json::from_slice(&v).map_err(|e| corrupt(&String::from_utf8_lossy(&k), e))?;
            if t.status == TriggerStatus::Pending {
                out.push(t);
            }
        }
        Ok(out)
    }

    /// Write an enforcement; returns a durability ticket.
    pub fn put_enforcement(&self, e: &Enforcement) -> Result<u64, StoreError> {
        self.tree("enforcements")?
            .insert(e.id.as_bytes(), serde_json::to_vec(e).unwrap_or_default())?;
        Ok(self.bump())
    }

    /// The enforcement `id`.
    pub fn get_enforcement(&self, id: &str) -> Result<Option<Enforcement>, StoreError> {
        match self.tree("enforcements")?.get(id.as_bytes())? {
            Some(v) => Ok(Some(
                serde_json::from_slice(&v).map_err(|e| corrupt(id, e))?,
            )),
            None => Ok(None),
        }
    }

    /// Append an audit entry (already masked); returns a durability ticket.
    pub fn put_audit(&self, id: &str, entry: &Json) -> Result<u64, StoreError> {
        self.audit
            .insert(id.as_bytes(), serde_json::to_vec(entry).unwrap_or_default())?;
        Ok(self.bump())
    }

    /// Audit entries, newest first; at most `limit` (`0`: all).
    pub fn list_audit(&self, limit: usize) -> Result<Vec<Json>, StoreError> {
        let mut out = Vec::new();
        let limit = if limit == 0 { usize::MAX } else { limit };
        for item in self.audit.iter().rev().take(limit) {
            let (k, v) = item?;
            out.push(
                serde_json::from_slice(&v).map_err(|e| corrupt(&String::from_utf8_lossy(&k), e))?,
            );
        }
        Ok(out)
    }
}
