//! Saving and loading a workflow's state, in pieces (see `store/workflows.rs`): each step
//! writes the entries that changed and a small head.

use super::Chain;
use crate::executions::EngineError;
use serde_json::json;
use squall_core::model::Json;
use squall_core::store::{Batch, StoreError};
use squall_core::workflow::state::UnitOutcome;

impl Chain {
    /// Fill the loaded cursor's items and finished units from their entries; a cursor
    /// saved by an older version holds them inline and has them written again as entries.
    pub(super) fn load_pass(&mut self) -> Result<(), EngineError> {
        let store = self.engine.store().clone();
        let id = self.execution.id.clone();
        let Some(c) = self.state.cursor.as_mut() else {
            return Ok(());
        };
        if c.items.is_some() || !c.done.is_empty() {
            self.items_changed = c.items.is_some();
            self.changed_units = c.done.keys().copied().collect();
            return Ok(());
        }
        let (items, units) = store.workflow_pass(&id, c.pass)?;
        // An entry that does not decode fails the workflow with the store's error naming
        // it: taking it as absent would run its units again.
        let pass = c.pass;
        c.items = match items {
            Some(v) => Some(
                serde_json::from_value(v)
                    .map_err(|e| StoreError::corrupt(format!("w:{id}/i:{pass:016x}"), e))?,
            ),
            None => None,
        };
        for (unit, v) in units {
            let o = serde_json::from_value::<UnitOutcome>(v)
                .map_err(|e| StoreError::corrupt(format!("w:{id}/u:{pass:016x}/{unit:016x}"), e))?;
            c.done.insert(unit, o);
        }
        Ok(())
    }

    /// Stage the state into `batch`: the task entries that changed and the rest of the
    /// state (never every task again: a transition costs the same in a long chain).
    pub(super) fn stage_state(&mut self, batch: &mut Batch) {
        let store = self.engine.store().clone();
        let mut secrets = Vec::new();
        for name in std::mem::take(&mut self.changed_tasks) {
            if let Some(entry) = self.state.tasks.get(&name) {
                secrets.extend(squall_core::secrets::found_in(entry));
                store.workflow_task(batch, &self.execution.id, &name, entry);
            }
        }
        let id = self.execution.id.clone();
        if let Some(c) = &self.state.cursor {
            if std::mem::take(&mut self.items_changed) {
                if let Some(items) = &c.items {
                    let items = Json::Array(items.clone());
                    secrets.extend(squall_core::secrets::found_in(&items));
                    store.workflow_items(batch, &id, c.pass, &items);
                }
            }
            for unit in std::mem::take(&mut self.changed_units) {
                if let Some(o) = c.done.get(&unit) {
                    let o = serde_json::to_value(o).unwrap_or(Json::Null);
                    secrets.extend(squall_core::secrets::found_in(&o));
                    store.workflow_unit(batch, &id, c.pass, unit, &o);
                }
            }
        }
        for (pass, units) in std::mem::take(&mut self.retired) {
            store.drop_workflow_pass(batch, &id, pass, units);
        }
        // The head: everything but the tasks (and the cursor's items and finished units,
        // which it does not serialise).
        let tasks = std::mem::take(&mut self.state.tasks);
        let mut value = serde_json::to_value(&self.state).unwrap_or(Json::Null);
        self.state.tasks = tasks;
        secrets.extend(squall_core::secrets::found_in(&value));
        let mut added = false;
        for s in secrets {
            if !self.state.secrets.contains(&s) {
                self.state.secrets.push(s);
                added = true;
            }
        }
        if added {
            value["secrets"] = json!(self.state.secrets);
        }
        store.workflow_state(batch, &self.execution.id, &value);
    }

    /// Commit the state, without waiting for the disk.
    pub(super) fn commit_state(&mut self) -> Result<u64, EngineError> {
        let mut b = Batch::default();
        self.stage_state(&mut b);
        Ok(self.engine.store().commit(b)?)
    }

    /// Commit the state durably.
    pub(super) async fn save(&mut self) -> Result<(), EngineError> {
        let t = self.commit_state()?;
        self.engine.store().durable(t).await?;
        Ok(())
    }
}
