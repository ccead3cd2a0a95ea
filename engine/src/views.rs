//! The JSON documents that describe content objects, shared by `-o json` and the API so
//! both say the same thing.

use crate::content::{Action, Content};
use crate::rules::Rule;
use serde_json::{json, Value as Json};

/// One line of `action list`.
pub fn action_summary(a: &Action) -> Json {
    json!({"ref": a.reference, "runner": a.meta.runner, "description": a.meta.description})
}

/// `action get`.
pub fn action_doc(a: &Action) -> Json {
    json!({"ref": a.reference, "pack": a.pack, "file": a.file, "metadata": a.meta})
}

/// One line of `rule list`.
pub fn rule_summary(r: &Rule) -> Json {
    json!({"ref": r.reference, "trigger": r.spec.trigger, "action": r.spec.action.action, "enabled": r.spec.enabled})
}

/// `rule get`.
pub fn rule_doc(r: &Rule) -> Json {
    json!({"ref": r.reference, "file": r.file, "rule": r.spec})
}

/// `action list`, optionally of one pack.
pub fn actions(c: &Content, pack: Option<&str>) -> Vec<Json> {
    c.actions
        .values()
        .filter(|a| pack.is_none_or(|p| a.pack == p))
        .map(|a| action_summary(a))
        .collect()
}

/// `rule list`.
pub fn rules(c: &Content) -> Vec<Json> {
    c.rules.values().map(|r| rule_summary(r)).collect()
}

/// The event envelope a rule test sees.
pub fn test_event(trigger: &str) -> Json {
    json!({"id": "test", "type": trigger, "source": "squall rule test", "occurred_at": crate::model::now_rfc3339()})
}
