//! The persisted state of a running action-chain: what a restarted engine needs to carry on.

use crate::model::{Json, Status};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::collections::BTreeMap;

/// Everything about one workflow execution that is not in its record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChainState {
    /// Parameters, `vars` and everything published so far, by name.
    pub scope: Map<String, Json>,
    /// Names published so far, in order (the default output).
    pub published: Vec<String>,
    /// `tasks.<name>` = `{status, result, error}` of every task that has run. Stored as one
    /// entry per task beside the rest (see `Store::workflow_task`).
    #[serde(default)]
    pub tasks: Map<String, Json>,
    /// The task being run, or next to run; `None` once the chain has ended.
    pub cursor: Option<Cursor>,
    /// Task runs so far (each attempt and each item counts).
    pub task_runs: u32,
    /// The last task that finished.
    pub last: Option<LastTask>,
    /// Secret values held in this state, registered again when it is loaded.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Cursors created so far: each gets the next number as its `pass`.
    #[serde(default)]
    pub passes: u64,
}

/// Where the chain is.
///
/// `items` and `done` are stored as entries of their own, keyed by `pass` (see
/// `store/workflows.rs`), not with the rest of the state: they grow with every item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cursor {
    /// Task name.
    pub task: String,
    /// Attempt of this task, from 1 (retries count up).
    pub attempt: u32,
    /// Which cursor of the workflow this is (its entries' key).
    #[serde(default)]
    pub pass: u64,
    /// The rendered items of a `with` task.
    #[serde(default, skip_serializing)]
    pub items: Option<Vec<Json>>,
    /// Finished units (item index; 0 for a plain task).
    #[serde(default, skip_serializing)]
    pub done: BTreeMap<usize, UnitOutcome>,
    /// Units running now: item index → child execution id.
    pub in_flight: BTreeMap<usize, String>,
}

impl Cursor {
    /// A fresh cursor at `task`, number `pass` of its workflow.
    pub fn at(task: &str, attempt: u32, pass: u64) -> Cursor {
        Cursor {
            task: task.to_string(),
            attempt,
            pass,
            items: None,
            done: BTreeMap::new(),
            in_flight: BTreeMap::new(),
        }
    }
}

/// How one unit (the task, or one item of it) ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitOutcome {
    /// Final status of the child.
    pub status: Status,
    /// Its result.
    pub result: Json,
    /// Its error.
    pub error: Option<String>,
}

/// The last task that finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastTask {
    /// Task name.
    pub task: String,
    /// Its status.
    pub status: Status,
    /// Its error.
    pub error: Option<String>,
}
