//! Loading and validating the content root: `squall.yaml`, packs, pack configuration,
//! and the site's `rules/`, `workflows/` and `sensors/` folders (docs/content.md).
//!
//! [`load`] reads everything, reports *every* problem as a [`Diagnostic`] with
//! `path:line:col`, and returns a [`Content`] only when there are none — so a bad edit never
//! replaces content that works.

mod action;
pub mod guard;
mod loader;
mod settings;
mod source;
mod validate;
mod written;
mod yamlpos;

pub use action::Action;
pub use loader::load;
pub(crate) use loader::Loader;
pub use settings::{AuthSettings, ClusterSettings, LogSettings, Settings};
pub use source::{expand_home, Diagnostic, Diagnostics, SourceFile};
pub use written::{Reference, Step, Written};
pub use yamlpos::{Duplicate, Pos, PosMap};

use crate::model::{Json, PackMeta, SensorSpec};
use crate::rules::{Rule, RuleIndex};
use crate::workflow::{Workflow, DEFAULT_MAX_TASK_RUNS};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The runner name of workflows (action-chain files).
pub const ACTION_CHAIN: &str = "action-chain";

/// What content is checked against: the runners and sensor types of the build. Loading
/// depends on this trait, not on the registries; [`crate::Components`] implements it.
pub trait Catalog {
    /// Problems of `action`'s metadata for its runner, each as `(field, message)`, or
    /// `None` when no runner has the action's `runner:` name.
    fn check_action(&self, action: &Action) -> Option<Vec<(String, String)>>;

    /// Names of every runner, `action-chain` included, for "unknown runner" messages.
    fn runner_names(&self) -> Vec<&'static str>;

    /// Problems of a sensor instance's `type` and `config`, each as `(field path,
    /// message)`.
    fn check_sensor(&self, spec: &SensorSpec) -> Vec<(String, String)>;

    /// The trigger type a sensor instance emits: its `trigger:`, else its type's default.
    fn sensor_trigger(&self, spec: &SensorSpec) -> Option<String>;

    /// What no two enabled instances of the sensor's type may share (a webhook's path),
    /// described for an error message.
    fn sensor_exclusive_key(&self, spec: &SensorSpec) -> Option<String>;
}

/// The pack of the site's own `rules/`, `workflows/` and `sensors/` unless a file says otherwise.
pub const SITE_PACK: &str = "site";

/// A loaded pack.
#[derive(Debug, Clone)]
pub struct Pack {
    /// `pack.yaml` as written.
    pub meta: PackMeta,
    /// The pack folder (`None` for the implicit `site` pack).
    pub dir: Option<PathBuf>,
    /// `config/<pack>.yaml`, defaults filled; `{}` when none.
    pub config: Json,
}

/// A loaded sensor instance.
#[derive(Debug, Clone)]
pub struct Sensor {
    /// `pack.name`.
    pub reference: String,
    /// Pack of the sensor.
    pub pack: String,
    /// As written.
    pub spec: SensorSpec,
    /// The trigger type it emits: `trigger:` as written, else its type's default.
    pub trigger: String,
    /// File it came from.
    pub file: PathBuf,
}

/// Everything loaded from a content root, validated and compiled.
#[derive(Debug, Default)]
pub struct Content {
    /// The content root.
    pub root: PathBuf,
    /// `squall.yaml`.
    pub settings: Settings,
    /// Packs by name.
    pub packs: BTreeMap<String, Pack>,
    /// Actions (workflows included) by reference.
    pub actions: BTreeMap<String, Arc<Action>>,
    /// Rules by reference.
    pub rules: BTreeMap<String, Arc<Rule>>,
    /// Enabled rules by trigger type.
    pub rule_index: RuleIndex,
    /// Sensor instances by reference.
    pub sensors: BTreeMap<String, Arc<Sensor>>,
    /// The `${env:}`/`${file:}` references of every file, to show objects as written.
    pub written: Written,
    /// The resolved values and secret configuration values, pinned as secrets while
    /// this content is loaded.
    pub secrets: crate::secrets::Pins,
}

impl Content {
    /// The action `reference`, or an error that suggests close names.
    pub fn action(&self, reference: &str) -> Result<Arc<Action>, UnknownName> {
        self.actions
            .get(reference)
            .cloned()
            .ok_or_else(|| UnknownName::new("action", reference, self.actions.keys()))
    }

    /// The rule `reference`, or an error that suggests close names.
    pub fn rule(&self, reference: &str) -> Result<Arc<Rule>, UnknownName> {
        self.rules
            .get(reference)
            .cloned()
            .ok_or_else(|| UnknownName::new("rule", reference, self.rules.keys()))
    }

    /// Trigger types something listens to or emits: every rule's trigger and every
    /// sensor instance's trigger.
    pub fn trigger_types(&self) -> std::collections::BTreeSet<String> {
        let mut out: std::collections::BTreeSet<String> = self
            .rules
            .values()
            .map(|r| r.spec.trigger.clone())
            .collect();
        out.extend(self.sensors.values().map(|s| s.trigger.clone()));
        out
    }

    /// The path of `file` as objects name it (`Action::file`...): relative to the root
    /// when under it.
    pub fn shown_path(&self, file: &Path) -> PathBuf {
        file.strip_prefix(&self.root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| file.to_path_buf())
    }

    /// Configuration of `pack` (`{}` when it has none).
    pub fn pack_config(&self, pack: &str) -> Json {
        self.packs
            .get(pack)
            .map(|p| p.config.clone())
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// The data directory: `--data` if given, else `data_dir` from `squall.yaml`, else
    /// `<root>/.squall`.
    pub fn data_dir(&self) -> PathBuf {
        match &self.settings.data_dir {
            Some(d) => self.root.join(expand_home(d)),
            None => self.root.join(".squall"),
        }
    }
}

/// "unknown action `x`; did you mean `y`?"
pub fn unknown<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a String>) -> String {
    UnknownName::new(kind, name, known).to_string()
}

/// A name that nothing loaded has, with up to three close names that something has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What was looked up: `action`, `rule`, `pack`.
    pub kind: String,
    /// The name as asked for.
    pub name: String,
    /// Close names (at most three).
    pub close: Vec<String>,
}

impl UnknownName {
    /// `name` not among `known`; close names are kept as suggestions.
    pub fn new<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a String>) -> Self {
        UnknownName {
            kind: kind.to_string(),
            name: name.to_string(),
            close: known
                .filter(|k| similar(k, name))
                .take(3)
                .cloned()
                .collect(),
        }
    }
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} `{}`", self.kind, self.name)?;
        if !self.close.is_empty() {
            let list: Vec<String> = self.close.iter().map(|c| format!("`{c}`")).collect();
            write!(f, "; did you mean {}?", list.join(" or "))?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownName {}

fn similar(a: &str, b: &str) -> bool {
    let (an, bn) = (
        a.rsplit('.').next().unwrap_or(a),
        b.rsplit('.').next().unwrap_or(b),
    );
    an == bn || a.contains(b) || b.contains(a) || strsim::levenshtein(a, b) <= 2
}
