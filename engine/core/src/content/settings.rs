//! `squall.yaml`: engine settings. Every key is optional.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Engine settings read from `<root>/squall.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address `squall serve` listens on (default `127.0.0.1:9101`).
    #[serde(default)]
    pub listen: Option<String>,
    /// State directory, relative to the content root (default `.squall`).
    #[serde(default)]
    pub data_dir: Option<String>,
    /// API authentication.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// Kubernetes clusters by name.
    #[serde(default)]
    pub clusters: IndexMap<String, ClusterSettings>,
    /// File holding the 32-byte key that encrypts secrets kept in the store
    /// (default `<data_dir>/secret.key`, created on first use with mode 0600).
    #[serde(default)]
    pub key_file: Option<String>,
    /// Upper bound on task runs of one workflow unless the workflow sets its own (default 1000).
    #[serde(default)]
    pub max_task_runs: Option<u32>,
    /// Triggers accepted but not yet evaluated before new ones get 503 (default 10000).
    #[serde(default)]
    pub trigger_queue: Option<usize>,
    /// How many executions run at once in `squall serve` (default 64).
    #[serde(default)]
    pub workers: Option<usize>,
    /// Log output.
    #[serde(default)]
    pub log: Option<LogSettings>,
}

/// `auth:` in `squall.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// YAML file with a list of `{name, token, role}`.
    #[serde(default)]
    pub tokens_file: Option<String>,
}

/// One Kubernetes cluster in `clusters:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Path of the kubeconfig file.
    #[serde(default)]
    pub kubeconfig: Option<String>,
    /// Context in it; `null` means the current context.
    #[serde(default)]
    pub context: Option<String>,
    /// Use the pod's service account instead of a kubeconfig.
    #[serde(default)]
    pub in_cluster: bool,
}

/// `log:` in `squall.yaml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// A tracing filter such as `info` or `squall=debug`.
    #[serde(default)]
    pub level: Option<String>,
}
