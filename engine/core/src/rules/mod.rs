//! Rules: a trigger type, a filter (`when` in rhai and StackStorm-style `criteria`) and the
//! action to run with parameters rendered from the trigger.

pub mod criteria;

use crate::expr::{Expr, ExprError, Template, Vars};
use crate::model::{Criterion, Json, RuleSpec};
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Why a trigger could not be matched against a rule or its parameters rendered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuleError {
    /// A criterion failed (a value of the wrong type, a bad pattern).
    #[error("criteria {path}: {source}")]
    Criteria {
        /// The criterion's key, e.g. `trigger.object.kind`.
        path: String,
        #[source]
        source: criteria::CriteriaError,
    },
    /// The `when` expression failed.
    #[error("when: {0}")]
    When(#[source] ExprError),
    /// Rendering the action parameters failed.
    #[error("rendering action parameters: {0}")]
    Parameters(#[source] ExprError),
}

/// A loaded, compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// `pack.name`.
    pub reference: String,
    /// Pack of the rule.
    pub pack: String,
    /// As written.
    pub spec: RuleSpec,
    /// File it came from.
    pub file: PathBuf,
    when: Option<Expr>,
    criteria: Vec<(String, Criterion)>,
    parameters: Template,
}

/// The outcome of one condition of a rule, for `squall rule test`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConditionResult {
    /// The condition as written (`when: ...` or `path op pattern`).
    pub condition: String,
    /// `None` when evaluating it failed.
    pub result: Option<bool>,
    /// Why evaluation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `squall rule test` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestReport {
    /// All conditions held.
    pub matched: bool,
    /// Each condition and its outcome.
    pub conditions: Vec<ConditionResult>,
    /// Rendered action parameters (when matched and rendering worked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Json>,
    /// Why rendering the parameters failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The context a rule sees: the trigger payload and the event envelope.
pub struct TriggerContext {
    root: Json,
    vars: Vars,
}

impl TriggerContext {
    /// `payload` is the trigger; `event` is `{id, type, source, occurred_at}`.
    pub fn new(payload: &Json, event: &Json) -> TriggerContext {
        let mut vars = Vars::new();
        vars.set("trigger", payload);
        vars.set("event", event);
        TriggerContext {
            root: serde_json::json!({"trigger": payload, "event": event}),
            vars,
        }
    }
}

impl Rule {
    /// Compile `spec` from `file`. Errors are `(field path, message)`.
    pub fn compile(
        spec: RuleSpec,
        pack: &str,
        file: PathBuf,
    ) -> Result<Rule, Vec<(String, String)>> {
        let mut errors = Vec::new();
        let when = match spec.when.as_deref().map(Expr::compile) {
            Some(Ok(e)) => Some(e),
            Some(Err(e)) => {
                errors.push((
                    "when".to_string(),
                    format!("expression does not compile: {e}"),
                ));
                None
            }
            None => None,
        };
        let mut crit = Vec::new();
        for (path, c) in &spec.criteria {
            if !(path.starts_with("trigger.") || path.starts_with("event.")) {
                errors.push((
                    format!("criteria.{path}"),
                    format!("criteria keys start with `trigger.` or `event.`; did you mean `trigger.{path}`?"),
                ));
            }
            if let Err(e) = criteria::check(&c.op, c.pattern.as_ref()) {
                errors.push((format!("criteria.{path}"), e.to_string()));
            }
            crit.push((path.clone(), c.clone()));
        }
        let params = Json::Object(
            spec.action
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let parameters = match Template::compile(&params) {
            Ok(t) => t,
            Err(e) => {
                errors.push((
                    "action.parameters".into(),
                    format!("template does not compile: {e}"),
                ));
                Template::compile(&Json::Null).map_err(|_| errors.clone())?
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Rule {
            reference: format!("{pack}.{}", spec.name),
            pack: pack.to_string(),
            spec,
            file,
            when,
            criteria: crit,
            parameters,
        })
    }

    /// Whether the trigger matches (criteria first: they are cheaper). An error in a
    /// condition is an error for this trigger, reported to the caller.
    pub fn matches(&self, ctx: &mut TriggerContext) -> Result<bool, RuleError> {
        for (path, c) in &self.criteria {
            let v = criteria::lookup(&ctx.root, path);
            let holds = criteria::evaluate(&c.op, v, c.pattern.as_ref()).map_err(|source| {
                RuleError::Criteria {
                    path: path.clone(),
                    source,
                }
            })?;
            if !holds {
                return Ok(false);
            }
        }
        match &self.when {
            Some(w) => w.eval_bool(&mut ctx.vars).map_err(RuleError::When),
            None => Ok(true),
        }
    }

    /// Render the action parameters for a matching trigger.
    pub fn render_parameters(&self, ctx: &mut TriggerContext) -> Result<Json, RuleError> {
        self.parameters
            .render(&mut ctx.vars)
            .map_err(RuleError::Parameters)
    }

    /// Evaluate every condition (not stopping at the first false) and render the
    /// parameters when all hold.
    pub fn test(&self, payload: &Json, event: &Json) -> TestReport {
        let mut ctx = TriggerContext::new(payload, event);
        let mut conditions = Vec::new();
        for (path, c) in &self.criteria {
            let v = criteria::lookup(&ctx.root, path);
            let pattern = c
                .pattern
                .as_ref()
                .map(|p| format!(" {p}"))
                .unwrap_or_default();
            let (result, error) = match criteria::evaluate(&c.op, v, c.pattern.as_ref()) {
                Ok(b) => (Some(b), None),
                Err(e) => (None, Some(e.to_string())),
            };
            conditions.push(ConditionResult {
                condition: format!("{path} {}{pattern}", c.op),
                result,
                error,
            });
        }
        if let Some(w) = &self.when {
            let (result, error) = match w.eval_bool(&mut ctx.vars) {
                Ok(b) => (Some(b), None),
                Err(e) => (None, Some(e.to_string())),
            };
            conditions.push(ConditionResult {
                condition: format!("when: {}", w.source()),
                result,
                error,
            });
        }
        let matched = conditions.iter().all(|c| c.result == Some(true));
        let (parameters, error) = if matched {
            match self.render_parameters(&mut ctx) {
                Ok(p) => (Some(crate::secrets::mask_json(&p)), None),
                Err(e) => (None, Some(e.to_string())),
            }
        } else {
            (None, None)
        };
        TestReport {
            matched,
            conditions,
            parameters,
            error,
        }
    }
}

/// Enabled rules grouped by trigger type, for evaluating a trigger against only the rules
/// that listen to it.
#[derive(Debug, Default)]
pub struct RuleIndex {
    by_trigger: HashMap<String, Vec<Arc<Rule>>>,
}

impl RuleIndex {
    /// Index the enabled rules among `rules`.
    pub fn new<'a>(rules: impl IntoIterator<Item = &'a Arc<Rule>>) -> RuleIndex {
        let mut by_trigger: HashMap<String, Vec<Arc<Rule>>> = HashMap::new();
        for r in rules.into_iter().filter(|r| r.spec.enabled) {
            by_trigger
                .entry(r.spec.trigger.clone())
                .or_default()
                .push(r.clone());
        }
        RuleIndex { by_trigger }
    }

    /// The enabled rules for `trigger_type`.
    pub fn for_trigger(&self, trigger_type: &str) -> &[Arc<Rule>] {
        self.by_trigger
            .get(trigger_type)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
