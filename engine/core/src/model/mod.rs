//! Content and record types: what users write in YAML (packs, actions, rules, workflows,
//! sensor instances) and what Squall stores (executions).
//!
//! These types carry no I/O. Loading, validation and compilation live in `content`; the
//! stored records (executions, trigger instances, enforcements) are in `records.rs`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

mod records;
pub use records::*;

/// A JSON value: parameters, payloads and results are all JSON.
pub type Json = serde_json::Value;

/// The placeholder shown instead of a secret value.
pub const MASK: &str = "********";

/// `pack.yaml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackMeta {
    /// Pack name, `[a-z0-9_-]+`; the first part of every reference in the pack.
    pub name: String,
    /// Semantic version of the pack.
    #[serde(default)]
    pub version: Option<String>,
    /// One line saying what the pack integrates.
    #[serde(default)]
    pub description: Option<String>,
    /// Who maintains the pack.
    #[serde(default)]
    pub author: Option<String>,
    /// Contact address of the author.
    #[serde(default)]
    pub email: Option<String>,
    /// Other packs this pack's content refers to.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Schema of `config/<pack>.yaml`.
    #[serde(default)]
    pub config_schema: IndexMap<String, ParamSpec>,
}

/// The JSON types a parameter may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    /// A string.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A map.
    Object,
    /// `null`.
    Null,
}

impl ParamType {
    /// The name as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::Array => "array",
            ParamType::Object => "object",
            ParamType::Null => "null",
        }
    }
}

/// One parameter of an action or workflow (a JSON-schema subset, as in StackStorm).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Declared type; absent means any JSON value.
    #[serde(default, rename = "type")]
    pub kind: Option<ParamType>,
    /// What the parameter is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The caller must give a value (a `default` satisfies it).
    #[serde(default)]
    pub required: bool,
    /// Value used when the caller gives none (`default: null` is a default of null).
    #[serde(default, deserialize_with = "present")]
    pub default: Option<Json>,
    /// The value must be one of these.
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<Json>>,
    /// The value is masked in records, logs and output.
    #[serde(default)]
    pub secret: bool,
    /// The caller may not override the default.
    #[serde(default)]
    pub immutable: bool,
    /// Lower bound for numbers.
    #[serde(default)]
    pub minimum: Option<f64>,
    /// Upper bound for numbers.
    #[serde(default)]
    pub maximum: Option<f64>,
    /// Regular expression a string must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Schema of each element of an array.
    #[serde(default)]
    pub items: Option<Box<ParamSpec>>,
    /// Schemas of known keys of an object.
    #[serde(default)]
    pub properties: Option<IndexMap<String, ParamSpec>>,
}

/// An action's metadata file (`packs/<pack>/actions/<name>.yaml`): the keys every action
/// has, and the settings of its runner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActionMeta {
    /// Action name, `[a-z0-9_-]+`.
    pub name: String,
    /// Pack; defaults to the pack the file is in.
    #[serde(default)]
    pub pack: Option<String>,
    /// What the action does.
    #[serde(default)]
    pub description: Option<String>,
    /// Runner type that executes it (`noop`, `shell`, `http`, `rhai`, ...).
    pub runner: String,
    /// Whether the action may be run.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A file beside the metadata, for runners that take one.
    #[serde(default)]
    pub entry_point: Option<String>,
    /// Parameter schema.
    #[serde(default)]
    pub parameters: IndexMap<String, ParamSpec>,
    /// Seconds before the execution ends with status `timeout`.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Safe to run again after a crash.
    #[serde(default)]
    pub idempotent: bool,
    /// At most this many executions of the action run at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Free-form tags for listing.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Every other key of the file: the runner's own settings (`cmd:` of `shell`,
    /// `http:` of `http`...), checked by the runner's typed settings
    /// ([`crate::config`]) — an unknown key is reported there.
    #[serde(flatten)]
    pub settings: IndexMap<String, Json>,
}

impl ActionMeta {
    /// The keys every action file may have, whatever its runner.
    pub const COMMON_KEYS: [&'static str; 11] = [
        "name",
        "pack",
        "description",
        "runner",
        "enabled",
        "entry_point",
        "parameters",
        "timeout",
        "idempotent",
        "concurrency",
        "tags",
    ];
}

/// A field that is present is `Some`, even when its value is `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Json>, D::Error> {
    Json::deserialize(d).map(Some)
}

fn yes() -> bool {
    true
}

/// The `action:` block of a rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleAction {
    /// Reference of the action to run.
    #[serde(rename = "ref")]
    pub action: String,
    /// Parameter templates rendered against the trigger.
    #[serde(default)]
    pub parameters: IndexMap<String, Json>,
}

/// One StackStorm-style criterion: `path: {type: op, pattern: value}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Criterion {
    /// Operator name (`equals`, `regex`, `inside`, ...).
    #[serde(rename = "type")]
    pub op: String,
    /// Operand; absent for `exists`/`nexists`.
    #[serde(default)]
    pub pattern: Option<Json>,
}

/// A rule file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Rule name.
    pub name: String,
    /// Pack; defaults to the pack the file is in (`site` for the site folders).
    #[serde(default)]
    pub pack: Option<String>,
    /// What the rule does.
    #[serde(default)]
    pub description: Option<String>,
    /// Disabled rules are loaded and validated but never fire.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Trigger type the rule listens to.
    pub trigger: String,
    /// rhai boolean expression over `trigger` and `event`.
    #[serde(default)]
    pub when: Option<String>,
    /// StackStorm-style criteria, ANDed with `when`.
    #[serde(default)]
    pub criteria: IndexMap<String, Criterion>,
    /// What to run when the rule matches.
    pub action: RuleAction,
}

/// Where a transition goes: one task name, or guarded alternatives (first match wins).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Transition {
    /// `on-success: next_task`
    Task(String),
    /// `on-success: [{if: expr, do: task}, {do: task}]`
    Guarded(Vec<Guard>),
}

/// One guarded alternative of a transition.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// rhai boolean expression; absent means always.
    #[serde(default, rename = "if")]
    pub condition: Option<String>,
    /// Task to go to.
    #[serde(rename = "do")]
    pub task: String,
}

/// Per-task retry policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Extra attempts after the first failure.
    pub count: u32,
    /// Seconds between attempts.
    #[serde(default)]
    pub delay: f64,
}

/// Run a task once per item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithItems {
    /// Template yielding an array.
    pub items: Json,
    /// How many items run at once (default 1).
    #[serde(default = "one")]
    pub concurrency: usize,
}

fn one() -> usize {
    1
}

/// One task of an action-chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Task name, unique in the chain.
    pub name: String,
    /// Action to run.
    #[serde(rename = "ref")]
    pub action: String,
    /// Parameters: a map of templates, or one template yielding a map.
    #[serde(default, alias = "params")]
    pub parameters: Option<Json>,
    /// Names to publish into the workflow scope (templates over `result`).
    #[serde(default)]
    pub publish: IndexMap<String, Json>,
    /// Next task on success.
    #[serde(default, rename = "on-success")]
    pub on_success: Option<Transition>,
    /// Next task on failure, timeout or abandon.
    #[serde(default, rename = "on-failure")]
    pub on_failure: Option<Transition>,
    /// Retry policy.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Run once per item.
    #[serde(default, rename = "with")]
    pub with_items: Option<WithItems>,
}

/// An action-chain workflow file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Workflow name (it is also an action: `pack.name`).
    pub name: String,
    /// Pack; defaults to the pack the file is in.
    #[serde(default)]
    pub pack: Option<String>,
    /// What the workflow does.
    #[serde(default)]
    pub description: Option<String>,
    /// Parameter schema.
    #[serde(default)]
    pub parameters: IndexMap<String, ParamSpec>,
    /// Constants in scope for every task.
    #[serde(default)]
    pub vars: IndexMap<String, Json>,
    /// First task; default the first in `chain`.
    #[serde(default)]
    pub default: Option<String>,
    /// The tasks.
    pub chain: Vec<TaskSpec>,
    /// Result of the workflow (templates); default the published scope.
    #[serde(default)]
    pub output: Option<Json>,
    /// Upper bound on task runs (default 1000).
    #[serde(default)]
    pub max_task_runs: Option<u32>,
    /// Seconds before the whole workflow times out.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// Safe to run again after a crash (applies to the workflow as a whole).
    #[serde(default)]
    pub idempotent: bool,
}

/// A sensor instance file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSpec {
    /// Sensor name.
    pub name: String,
    /// Pack; defaults to the pack the file is in.
    #[serde(default)]
    pub pack: Option<String>,
    /// What it watches.
    #[serde(default)]
    pub description: Option<String>,
    /// Built-in sensor type (`cron`, `interval`, `webhook`, `kubernetes.watch`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Trigger type emitted; default per sensor type.
    #[serde(default)]
    pub trigger: Option<String>,
    /// Disabled sensors are validated but not started.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Type-specific configuration.
    #[serde(default)]
    pub config: Json,
}

/// True when `name` is a valid object name: `[a-z0-9_-]+`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}
