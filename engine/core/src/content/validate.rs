//! Checks that span files: runners and entry points of actions, action references of
//! rules and chain tasks, parameter names against the target action's schema, sensor types.

use super::ACTION_CHAIN;
use super::{Action, Diagnostic, Loader, SourceFile};
use crate::model::Json;
use crate::rules::Rule;
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn cross_check(l: &mut Loader) {
    // What no two enabled instances of a type may share (a webhook's path).
    let mut taken: BTreeMap<String, &str> = BTreeMap::new();
    for sensor in l.sensors.values().filter(|s| s.spec.enabled) {
        let Some(key) = l.catalog.sensor_exclusive_key(&sensor.spec) else {
            continue;
        };
        let key = format!("{} {key}", sensor.spec.kind);
        match taken.get(&key) {
            None => {
                taken.insert(key, &sensor.reference);
            }
            Some(first) => l.diags.push(Diagnostic::at(
                &sensor.file,
                super::Pos { line: 1, col: 1 },
                format!(
                    "{key} is already served by sensor `{first}`; give each {} sensor its own",
                    sensor.spec.kind
                ),
            )),
        }
    }
    // A workflow that did not compile still gets its task references checked, so that one
    // run of `squall validate` shows every problem.
    for (sf, spec) in &l.broken_workflows {
        for (i, task) in spec.chain.iter().enumerate() {
            if !l.actions.contains_key(&task.action) {
                l.diags.push(sf.diag(
                    &format!("chain.{i}.ref"),
                    format!(
                        "task `{}`: {}",
                        task.name,
                        super::unknown("action", &task.action, l.actions.keys())
                    ),
                ));
            }
        }
    }
    for (reference, action) in &l.actions {
        let Some(sf) = l.sources.get(reference) else {
            continue;
        };
        if let Some(wf) = &action.workflow {
            for (i, task) in wf.spec.chain.iter().enumerate() {
                let base = format!("chain.{i}");
                match l.actions.get(&task.action) {
                    None => l.diags.push(sf.diag(
                        &format!("{base}.ref"),
                        format!(
                            "task `{}`: {}",
                            task.name,
                            super::unknown("action", &task.action, l.actions.keys())
                        ),
                    )),
                    Some(target) => {
                        if let Some(Json::Object(params)) = &task.parameters {
                            let given: Vec<&String> = params.keys().collect();
                            param_names(
                                &mut l.diags,
                                sf,
                                &format!("{base}.parameters"),
                                target,
                                &given,
                                task.with_items.is_some(),
                            );
                        }
                    }
                }
            }
            continue;
        }
        if action.meta.runner == ACTION_CHAIN {
            l.diags.push(sf.diag(
                "runner",
                "`action-chain` actions are workflow files: put this in a `workflows/` folder",
            ));
            continue;
        }
        let Some(problems) = l.catalog.check_action(action) else {
            l.diags.push(sf.diag(
                "runner",
                format!(
                    "unknown runner `{}`; available runners: {}",
                    action.meta.runner,
                    l.catalog.runner_names().join(", ")
                ),
            ));
            continue;
        };
        if let Some(ep) = action.entry_point_path() {
            if !ep.is_file() {
                l.diags.push(sf.diag(
                    "entry_point",
                    format!(
                        "entry point {} does not exist (it is relative to the action's YAML file)",
                        ep.display()
                    ),
                ));
                continue;
            }
        }
        for (field, msg) in problems {
            l.diags.push(sf.diag(&field, msg));
        }
    }
}

/// Check parameter names given to `target` (from a rule or a chain task).
fn param_names(
    diags: &mut Vec<Diagnostic>,
    sf: &SourceFile,
    field: &str,
    target: &Action,
    given: &[&String],
    lenient_required: bool,
) {
    for name in given {
        if !target.meta.parameters.contains_key(name.as_str()) {
            let known: Vec<&str> = target.meta.parameters.keys().map(String::as_str).collect();
            diags.push(sf.diag(
                &format!("{field}.{name}"),
                format!(
                    "action `{}` has no parameter `{name}`{}",
                    target.reference,
                    if known.is_empty() {
                        String::from(" (it takes none)")
                    } else {
                        format!("; it takes: {}", known.join(", "))
                    }
                ),
            ));
        }
    }
    if lenient_required {
        return;
    }
    for (name, spec) in &target.meta.parameters {
        if spec.required && spec.default.is_none() && !given.contains(&name) {
            diags.push(sf.diag(
                field,
                format!(
                    "action `{}` requires parameter `{name}`, which is not given",
                    target.reference
                ),
            ));
        }
    }
}

pub(super) fn rule_action(
    diags: &mut Vec<Diagnostic>,
    sf: &SourceFile,
    rule: &Rule,
    actions: &BTreeMap<String, Arc<Action>>,
) {
    match actions.get(&rule.spec.action.action) {
        None => diags.push(sf.diag(
            "action.ref",
            super::unknown("action", &rule.spec.action.action, actions.keys()),
        )),
        Some(target) => {
            let given: Vec<&String> = rule.spec.action.parameters.keys().collect();
            param_names(diags, sf, "action.parameters", target, &given, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::content::load;
    use crate::Components;

    #[test]
    fn unknown_refs_are_reported_beside_other_problems_of_the_same_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("workflows")).expect("mkdir");
        std::fs::create_dir_all(root.join("rules")).expect("mkdir");
        std::fs::write(
            root.join("workflows/w.yaml"),
            "name: w\nchain:\n  - name: a\n    ref: x.nope\n    parameters: {m: \"{{ 1 + }}\"}\n",
        )
        .expect("write");
        std::fs::write(
            root.join("rules/r.yaml"),
            "name: r\ntrigger: t\nwhen: 'trigger.x == '\naction:\n  ref: x.gone\n",
        )
        .expect("write");
        let problems: Vec<String> = load(root, &Components::default())
            .expect_err("invalid content")
            .0
            .iter()
            .map(|d| d.to_string())
            .collect();
        let has = |prefix: &str, word: &str| {
            problems
                .iter()
                .any(|p| p.starts_with(prefix) && p.contains(word))
        };
        assert!(has("workflows/w.yaml:5:", "compile"), "{problems:#?}");
        assert!(has("workflows/w.yaml:4:", "x.nope"), "{problems:#?}");
        assert!(has("rules/r.yaml:3:", "compile"), "{problems:#?}");
        assert!(has("rules/r.yaml:5:", "x.gone"), "{problems:#?}");
    }
}
