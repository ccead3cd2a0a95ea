//! Action-chain workflows: compiling a [`WorkflowSpec`] into a [`Workflow`]. Running one
//! as a persisted state machine is `squall_runtime::chain`.
//!
//! A workflow is an action whose runner is `action-chain`. Each task runs as a child
//! execution. After every task the workflow's [`state::ChainState`] (cursor, published
//! scope, task results) is committed to the store together with the child's final record,
//! so a restarted engine resumes where it stopped (see `squall_runtime::chain`).

pub mod state;

use crate::expr::{Expr, Template};
use crate::model::{Retry, Transition, WorkflowSpec};
use std::collections::{HashMap, VecDeque};

/// Default bound on task runs of one workflow.
pub const DEFAULT_MAX_TASK_RUNS: u32 = 1000;

/// A compiled action-chain.
#[derive(Debug)]
pub struct Workflow {
    /// `pack.name`.
    pub reference: String,
    /// As written.
    pub spec: WorkflowSpec,
    /// Compiled tasks, in file order.
    pub tasks: Vec<Task>,
    /// Index of the first task.
    pub start: usize,
    /// The `output` templates.
    pub output: Option<Template>,
    /// Upper bound on task runs.
    pub max_task_runs: u32,
    by_name: HashMap<String, usize>,
}

/// One compiled task.
#[derive(Debug)]
pub struct Task {
    /// Task name.
    pub name: String,
    /// Action reference.
    pub action: String,
    /// Parameters template (a map, or one expression yielding a map).
    pub parameters: Template,
    /// Published names and their templates.
    pub publish: Vec<(String, Template)>,
    /// Transitions on success, in order; the first whose guard holds wins.
    pub on_success: Vec<Next>,
    /// Transitions on failure, timeout or abandon.
    pub on_failure: Vec<Next>,
    /// Retry policy.
    pub retry: Option<Retry>,
    /// `with: {items, concurrency}`.
    pub with_items: Option<(Template, usize)>,
}

/// One transition alternative.
#[derive(Debug)]
pub struct Next {
    /// Guard; `None` always holds.
    pub condition: Option<Expr>,
    /// Target task index.
    pub task: usize,
}

impl Workflow {
    /// Index of the task called `name`.
    pub fn task_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Compile `spec`. Errors are `(field path, message)`.
    pub fn compile(
        spec: WorkflowSpec,
        reference: String,
        default_max_runs: u32,
    ) -> Result<Workflow, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let mut by_name = HashMap::new();
        if spec.chain.is_empty() {
            errors.push((
                "chain".into(),
                "a workflow needs at least one task in `chain`".into(),
            ));
        }
        for (i, t) in spec.chain.iter().enumerate() {
            if !crate::model::valid_name(&t.name) {
                errors.push((
                    format!("chain.{i}.name"),
                    format!("task name {:?} must match [a-z0-9_-]+", t.name),
                ));
            }
            if by_name.insert(t.name.clone(), i).is_some() {
                errors.push((
                    format!("chain.{i}.name"),
                    format!(
                        "task name `{}` is used twice; task names must be unique",
                        t.name
                    ),
                ));
            }
        }
        let start = match &spec.default {
            Some(d) => match by_name.get(d) {
                Some(&i) => i,
                None => {
                    errors.push((
                        "default".into(),
                        format!("`default: {d}` names no task in `chain`"),
                    ));
                    0
                }
            },
            None => 0,
        };
        let compile = |field: String, v: &serde_json::Value, errors: &mut Vec<(String, String)>| {
            Template::compile(v).unwrap_or_else(|e| {
                errors.push((field, format!("template does not compile: {e}")));
                Template::compile(&serde_json::Value::Null).expect("null is a static template")
            })
        };
        let mut tasks = Vec::new();
        for (i, t) in spec.chain.iter().enumerate() {
            let base = format!("chain.{i}");
            let params = t
                .parameters
                .clone()
                .unwrap_or_else(|| serde_json::json!({}));
            if !(params.is_object() || params.is_string()) {
                errors.push((
                    format!("{base}.parameters"),
                    "parameters must be a map, or one \"{{ expr }}\" yielding a map".into(),
                ));
            }
            let parameters = compile(format!("{base}.parameters"), &params, &mut errors);
            let publish = t
                .publish
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        compile(format!("{base}.publish.{k}"), v, &mut errors),
                    )
                })
                .collect();
            let on_success = transitions(
                &t.on_success,
                &format!("{base}.on-success"),
                &by_name,
                &mut errors,
            );
            let on_failure = transitions(
                &t.on_failure,
                &format!("{base}.on-failure"),
                &by_name,
                &mut errors,
            );
            let with_items = t.with_items.as_ref().map(|w| {
                if w.concurrency == 0 {
                    errors.push((
                        format!("{base}.with.concurrency"),
                        "concurrency must be at least 1".into(),
                    ));
                }
                (
                    compile(format!("{base}.with.items"), &w.items, &mut errors),
                    w.concurrency.max(1),
                )
            });
            tasks.push(Task {
                name: t.name.clone(),
                action: t.action.clone(),
                parameters,
                publish,
                on_success,
                on_failure,
                retry: t.retry.clone(),
                with_items,
            });
        }
        if let Some(o) = &spec.output {
            if let Err(e) = Template::compile(o) {
                errors.push(("output".into(), format!("template does not compile: {e}")));
            }
        }
        let output = spec.output.as_ref().and_then(|o| Template::compile(o).ok());
        // Every task must be reachable from the first one.
        if errors.is_empty() {
            let mut seen = vec![false; tasks.len()];
            let mut queue = VecDeque::from([start]);
            while let Some(i) = queue.pop_front() {
                if std::mem::replace(&mut seen[i], true) {
                    continue;
                }
                let t: &Task = &tasks[i];
                queue.extend(t.on_success.iter().chain(&t.on_failure).map(|n| n.task));
            }
            for (i, reached) in seen.iter().enumerate() {
                if !reached {
                    errors.push((
                        format!("chain.{i}.name"),
                        format!(
                            "task `{}` is unreachable: no transition leads to it from `{}`",
                            tasks[i].name, tasks[start].name
                        ),
                    ));
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let max_task_runs = spec.max_task_runs.unwrap_or(default_max_runs);
        Ok(Workflow {
            reference,
            spec,
            tasks,
            start,
            output,
            max_task_runs,
            by_name,
        })
    }
}

fn transitions(
    t: &Option<Transition>,
    field: &str,
    by_name: &HashMap<String, usize>,
    errors: &mut Vec<(String, String)>,
) -> Vec<Next> {
    let mut out = Vec::new();
    let target = |name: &str, f: String, errors: &mut Vec<(String, String)>| -> Option<usize> {
        let idx = by_name.get(name).copied();
        if idx.is_none() {
            errors.push((
                f,
                format!("transition to `{name}`, which is not a task in `chain`"),
            ));
        }
        idx
    };
    match t {
        None => {}
        Some(Transition::Task(name)) => {
            if let Some(i) = target(name, field.to_string(), errors) {
                out.push(Next {
                    condition: None,
                    task: i,
                });
            }
        }
        Some(Transition::Guarded(guards)) => {
            for (gi, g) in guards.iter().enumerate() {
                let condition = match g.condition.as_deref().map(Expr::compile) {
                    Some(Ok(e)) => Some(e),
                    Some(Err(e)) => {
                        errors.push((
                            format!("{field}.{gi}.if"),
                            format!("expression does not compile: {e}"),
                        ));
                        None
                    }
                    None => None,
                };
                if let Some(i) = target(&g.task, format!("{field}.{gi}.do"), errors) {
                    out.push(Next { condition, task: i });
                }
            }
        }
    }
    out
}
