//! A workflow's saved state, in pieces: the head (scope, cursor, ...), one entry per
//! finished task, and for the `with` task being run its items and one entry per finished
//! item. Each step writes only what changed, so a step costs the same however many tasks
//! or items came before it. Entries holding a known secret are sealed.

use super::{corrupt, Batch, SledStore, StoreError};
use crate::model::Json;

/// The items of a pass (when it has any) and its finished items by index.
pub type PassEntries = (Option<Json>, Vec<(usize, Json)>);

impl SledStore {
    /// Add the state of workflow `id` to `batch`, encrypted when it holds a known secret:
    /// everything but its `tasks`, which [`SledStore::workflow_task`] writes one by one.
    pub fn workflow_state(&self, batch: &mut Batch, id: &str, state: &Json) {
        batch.raw(format!("w:{id}"), self.maybe_sealed(state));
    }

    /// Add the entry of `task` in the state of workflow `id` (its `tasks.<task>`) to
    /// `batch`, encrypted when it holds a known secret.
    pub fn workflow_task(&self, batch: &mut Batch, id: &str, task: &str, entry: &Json) {
        batch.raw(format!("w:{id}\0t:{task}"), self.maybe_sealed(entry));
    }

    /// The stored state of workflow `id`, its task entries gathered under `tasks`.
    pub fn get_workflow_state(&self, id: &str) -> Result<Option<Json>, StoreError> {
        let key = format!("w:{id}");
        let Some(v) = self.exec.get(&key)? else {
            return Ok(None);
        };
        let mut state = self.open_maybe_sealed(&key, &v)?;
        let prefix = format!("w:{id}\0t:");
        for item in self.exec.scan_prefix(&prefix) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let entry = self.open_maybe_sealed(&key, &v)?;
            if !state["tasks"].is_object() {
                state["tasks"] = Json::Object(Default::default());
            }
            if let Some(tasks) = state["tasks"].as_object_mut() {
                tasks.insert(key[prefix.len()..].to_string(), entry);
            }
        }
        Ok(Some(state))
    }

    /// Add the items of the `with` task run as `pass` of workflow `id` to `batch`.
    pub fn workflow_items(&self, batch: &mut Batch, id: &str, pass: u64, items: &Json) {
        batch.raw(format!("w:{id}\0i:{pass:016x}"), self.maybe_sealed(items));
    }

    /// Add how item `unit` of pass `pass` of workflow `id` ended to `batch`.
    pub fn workflow_unit(
        &self,
        batch: &mut Batch,
        id: &str,
        pass: u64,
        unit: usize,
        outcome: &Json,
    ) {
        batch.raw(
            format!("w:{id}\0u:{pass:016x}\0{unit:016x}"),
            self.maybe_sealed(outcome),
        );
    }

    /// Remove the items and item entries of pass `pass` (with `units` items) from the store
    /// with `batch` (the task has ended; they are folded into its task entry).
    pub fn drop_workflow_pass(&self, batch: &mut Batch, id: &str, pass: u64, units: usize) {
        batch.remove(format!("w:{id}\0i:{pass:016x}"));
        for unit in 0..units {
            batch.remove(format!("w:{id}\0u:{pass:016x}\0{unit:016x}"));
        }
    }

    /// The items and the finished items (by index) of pass `pass` of workflow `id`.
    pub fn workflow_pass(&self, id: &str, pass: u64) -> Result<PassEntries, StoreError> {
        let key = format!("w:{id}\0i:{pass:016x}");
        let items = match self.exec.get(&key)? {
            Some(v) => Some(self.open_maybe_sealed(&key, &v)?),
            None => None,
        };
        let prefix = format!("w:{id}\0u:{pass:016x}\0");
        let mut units = Vec::new();
        for item in self.exec.scan_prefix(&prefix) {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).to_string();
            let unit =
                usize::from_str_radix(&key[prefix.len()..], 16).map_err(|e| corrupt(&key, e))?;
            units.push((unit, self.open_maybe_sealed(&key, &v)?));
        }
        Ok((items, units))
    }

    /// `J` + JSON, or `E` + sealed JSON when `value` holds a known secret.
    fn maybe_sealed(&self, value: &Json) -> Vec<u8> {
        let plain = serde_json::to_vec(value).unwrap_or_default();
        if crate::secrets::mask_json(value) != *value {
            let mut v = b"E".to_vec();
            v.extend(self.cipher.seal(&plain));
            v
        } else {
            let mut v = b"J".to_vec();
            v.extend(plain);
            v
        }
    }

    pub(super) fn open_maybe_sealed(&self, key: &str, v: &[u8]) -> Result<Json, StoreError> {
        let plain = match v.first() {
            Some(b'E') => self.cipher.open_sealed(&v[1..])?,
            Some(b'J') => v[1..].to_vec(),
            _ => return Err(corrupt(key, "unknown state encoding")),
        };
        super::reading::decode(key, &plain)
    }
}
