//! What Squall stores and shows: executions and their statuses, output chunks, trigger
//! instances and enforcements.

use super::Json;
use serde::{Deserialize, Serialize};

/// Lifecycle of an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, not yet queued.
    Requested,
    /// Queued, waiting for a worker or a concurrency slot.
    Scheduled,
    /// A runner is working on it.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished badly.
    Failed,
    /// Ran past its timeout.
    Timeout,
    /// Cancel requested, runner stopping.
    Canceling,
    /// Stopped on request.
    Canceled,
    /// Was running when the engine died and is not idempotent.
    Abandoned,
}

impl Status {
    /// All statuses, in lifecycle order.
    pub const ALL: [Status; 9] = [
        Status::Requested,
        Status::Scheduled,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Timeout,
        Status::Canceling,
        Status::Canceled,
        Status::Abandoned,
    ];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Scheduled => "scheduled",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::Canceling => "canceling",
            Status::Canceled => "canceled",
            Status::Abandoned => "abandoned",
        }
    }

    /// Parse a lower-case name.
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Succeeded
                | Status::Failed
                | Status::Timeout
                | Status::Canceled
                | Status::Abandoned
        )
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A child execution as listed in its workflow's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildRef {
    /// Child execution id.
    pub id: String,
    /// Task name in the chain.
    pub task: String,
    /// Action run.
    pub action: String,
    /// Last known status.
    pub status: Status,
    /// The `with` item, for per-item children.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Json>,
}

/// The stored record of one run of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Sortable id (ULID).
    pub id: String,
    /// Action reference.
    pub action: String,
    /// Parameters as given plus defaults, secrets masked.
    pub parameters: Json,
    /// Current status.
    pub status: Status,
    /// Result, when finished (secrets masked).
    #[serde(default)]
    pub result: Option<Json>,
    /// Why it did not succeed.
    #[serde(default)]
    pub error: Option<String>,
    /// RFC 3339 time the record was created.
    pub created_at: String,
    /// When a runner started it.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it reached a terminal status.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Parent workflow execution.
    #[serde(default)]
    pub parent: Option<String>,
    /// Task name in the parent workflow.
    #[serde(default)]
    pub task: Option<String>,
    /// Trigger instance that caused it (via a rule).
    #[serde(default)]
    pub trigger_instance: Option<String>,
    /// Rule that caused it.
    #[serde(default)]
    pub rule: Option<String>,
    /// Attempt number (1 for the first run; retries and re-runs after a crash count up).
    pub attempt: u32,
    /// Who asked for it (CLI user, API token name, rule).
    #[serde(default)]
    pub requested_by: Option<String>,
    /// The `with` item this execution ran for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Json>,
    /// Child executions of a workflow, in run order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildRef>,
}

/// One captured piece of an execution's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// `stdout`, `stderr` or `progress`.
    pub stream: String,
    /// The text (secrets masked).
    pub data: String,
    /// RFC 3339 time it was captured.
    pub at: String,
}

/// Current time as RFC 3339 with microseconds, UTC.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Seconds between two RFC 3339 times, when both parse.
pub fn seconds_between(start: Option<&str>, end: Option<&str>) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start?).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end?).ok()?;
    Some((e - s).num_microseconds()? as f64 / 1e6)
}

/// Processing state of a trigger instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TriggerStatus {
    /// Persisted, not yet evaluated against the rules.
    Pending,
    /// Evaluated; enforcements created.
    Processed,
}

/// One occurrence of a trigger (persisted before it is acknowledged: docs/operations.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInstance {
    /// Sortable id (ULID).
    pub id: String,
    /// Trigger type (`core.webhook`, `kubernetes.resource`, ...).
    #[serde(rename = "type")]
    pub trigger: String,
    /// The payload (secrets masked when shown).
    pub payload: Json,
    /// Who emitted it: a sensor reference, `api:<token name>`, `cli`.
    pub source: String,
    /// RFC 3339 time it was accepted.
    pub occurred_at: String,
    /// Whether the rules have seen it.
    pub status: TriggerStatus,
    /// Enforcements it produced.
    #[serde(default)]
    pub enforcements: Vec<String>,
}

/// A rule matching a trigger instance, and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enforcement {
    /// Sortable id (ULID).
    pub id: String,
    /// The trigger instance.
    pub trigger_instance: String,
    /// The rule that matched (or whose condition failed).
    pub rule: String,
    /// The execution requested, when one was.
    #[serde(default)]
    pub execution: Option<String>,
    /// Why no execution was requested (condition error, parameters that do not render or
    /// do not fit the action's schema).
    #[serde(default)]
    pub error: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
}
