//! Expressions: one sandboxed [rhai](https://rhai.rs) engine for the whole process.
//!
//! Used for rule `when` filters, `{{ }}` templates ([`Template`]), `publish`, transition
//! guards ([`Expr`]) and the scripts of the `rhai` runner ([`Script`]). Everything is
//! compiled once at load time and evaluated many times against a reused [`Vars`].
//!
//! # Values
//! Variables are JSON values. JSON objects become rhai maps (`#{...}`), arrays arrays,
//! integers `i64`, other numbers `f64`, and `null` becomes `()`. Results convert back the
//! same way (`()` → `null`). Map keys come back sorted (rhai maps are ordered by key).
//!
//! # Missing fields
//! Reading a property that a map does not have (`trigger.object.spec.engine` when `spec`
//! has no `engine`) is an **error** ("property `engine` not found"), so a typo never
//! silently compares `()` with something. To test whether a field exists:
//!
//! - `"engine" in trigger.object.spec` → `true`/`false`;
//! - `trigger.object.spec.get("engine")` → the value, or `()` when missing;
//! - `default(trigger.object.spec.get("engine"), "postgres")` (or
//!   `trigger.object.spec.get("engine") ?? "postgres"`) for a fallback;
//! - `is_def_var("result")` tells whether a top-level variable is defined.
//!
//! A field present with a JSON `null` value reads as `()` without error.
//!
//! # Helper functions
//! On top of rhai's standard library (`len`, `to_lower`/`to_upper`, `contains`, `split`,
//! `keys`, `parse_int`, ...): `to_json(x)`, `from_json(s)`, `base64_encode(s)`,
//! `base64_decode(s)`, `regex_match(s, pattern)` (unanchored search),
//! `regex_captures(s, pattern)` (`[whole, group1, ...]` of the first match, `[]` when none),
//! `now()` (RFC 3339, UTC), `parse_time(s)` (RFC 3339 → unix seconds),
//! `random_password(n)` (8 ≤ n ≤ 4096 letters and digits, registered as a secret so it is
//! masked everywhere), `default(x, y)` (`x` unless it is `()`), `lower(s)`, `upper(s)`.
//!
//! # Sandbox
//! No I/O at all: no `import` of files (no module resolver), no `eval`, no environment
//! access. Runs are bounded by [`Limits`] (operations, call depth, expression depth, string,
//! array and map sizes); exceeding a bound is an [`ExprError`] naming the limit, never a
//! hang. `print`/`debug` never write to the process's stdout: they are discarded, except
//! under [`run_script_capturing`] / [`Script::run_with`], which hand the lines to a callback.

mod convert;
mod engine;
mod functions;
mod template;

#[cfg(test)]
mod tests;

pub use engine::Limits;
pub use template::Template;

pub(crate) use functions::cached_regex;

use rhai::{Dynamic, Scope, AST};
use serde_json::Value;
use std::sync::Arc;

/// Error from compiling or evaluating an expression. Display = message (with position when
/// known, except for `throw`n messages which are kept verbatim).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    /// Human-readable message.
    pub message: String,
    /// 1-based line inside the expression/script source, when known.
    pub line: Option<usize>,
    /// 1-based column inside the expression/script source, when known.
    pub column: Option<usize>,
}

impl ExprError {
    /// An error without position.
    pub(crate) fn plain(message: impl Into<String>) -> ExprError {
        ExprError {
            message: message.into(),
            line: None,
            column: None,
        }
    }
}

/// Variables visible to an evaluation (a rhai scope of JSON-converted values).
///
/// Build it once per event/workflow step and reuse it for every expression evaluated
/// against the same data: values are converted once, evaluations borrow them.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    scope: Scope<'static>,
}

impl Vars {
    /// No variables.
    pub fn new() -> Vars {
        Vars::default()
    }

    /// Set variable `name` to `value`, replacing an existing variable of the same name.
    pub fn set(&mut self, name: &str, value: &Value) {
        self.scope.set_or_push(name, convert::to_dynamic(value));
    }

    /// One variable per key of `map`.
    pub fn from_map(map: &serde_json::Map<String, Value>) -> Vars {
        let mut vars = Vars::new();
        for (k, v) in map {
            vars.set(k, v);
        }
        vars
    }

    /// Current value of variable `name` as JSON (`None` when undefined or not convertible).
    pub fn get(&self, name: &str) -> Option<Value> {
        self.scope.get(name).and_then(|d| convert::to_json(d).ok())
    }

    /// True when variable `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.scope.contains(name)
    }
}

#[derive(Debug)]
struct Compiled {
    source: String,
    ast: AST,
}

/// A compiled rhai expression (no statements, no assignments). Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Expr {
    inner: Arc<Compiled>,
}

impl Expr {
    /// Compile `src` with the shared engine. Err: syntax error with its position inside `src`.
    pub fn compile(src: &str) -> Result<Expr, ExprError> {
        if src.trim().is_empty() {
            return Err(ExprError::plain("empty expression"));
        }
        let limits = Limits::default();
        let ast = engine::expr_engine()
            .compile_expression(src)
            .map_err(|e| engine::parse_error(&e, &limits))?;
        Ok(Expr {
            inner: Arc::new(Compiled {
                source: src.to_string(),
                ast,
            }),
        })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Evaluate and convert the result to JSON.
    pub fn eval(&self, vars: &mut Vars) -> Result<Value, ExprError> {
        let value = self.eval_dynamic(vars)?;
        convert::to_json(&value).map_err(ExprError::plain)
    }

    /// Evaluate a condition. A result that is not a boolean is an error
    /// ("expected true or false, got string \"x\"").
    pub fn eval_bool(&self, vars: &mut Vars) -> Result<bool, ExprError> {
        let value = self.eval_dynamic(vars)?;
        value.as_bool().map_err(|_| {
            ExprError::plain(format!(
                "expected true or false, got {} {}",
                convert::kind(&value),
                convert::preview(&value)
            ))
        })
    }

    /// Evaluate to a rhai value.
    pub(crate) fn eval_dynamic(&self, vars: &mut Vars) -> Result<Dynamic, ExprError> {
        engine::expr_engine()
            .eval_ast_with_scope::<Dynamic>(&mut vars.scope, &self.inner.ast)
            .map_err(|e| engine::eval_error(&e, &Limits::default()))
    }
}

/// A compiled rhai script (statements, `let`, `fn`, loops...), for the `rhai` runner.
/// Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Script {
    inner: Arc<Compiled>,
}

impl Script {
    /// Compile `src`. Err: syntax error with its position inside `src`.
    pub fn compile(src: &str) -> Result<Script, ExprError> {
        let limits = Limits::script();
        let ast = engine::script_engine()
            .compile(src)
            .map_err(|e| engine::parse_error(&e, &limits))?;
        Ok(Script {
            inner: Arc::new(Compiled {
                source: src.to_string(),
                ast,
            }),
        })
    }

    /// The source text.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Run with `vars` in scope under [`Limits::script`]; the value of the last statement
    /// (or of `return`) is the result. A `throw` becomes an [`ExprError`] whose message is
    /// the thrown value. Printed output is discarded. Variables declared by the script are
    /// removed from `vars` afterwards; changes to existing variables are kept.
    pub fn run(&self, vars: &mut Vars) -> Result<Value, ExprError> {
        self.run_inner(vars, &Limits::script())
    }

    /// Like [`Script::run`] with explicit `limits`, handing every line printed by `print`
    /// or `debug` to `on_print`, in order, once the run has finished (also when it failed).
    /// At most 1 MiB of output is kept; the rest is replaced by one marker line.
    pub fn run_with(
        &self,
        vars: &mut Vars,
        limits: &Limits,
        on_print: &mut dyn FnMut(&str),
    ) -> Result<Value, ExprError> {
        let (result, lines) = engine::with_capture(|| self.run_inner(vars, limits));
        for line in &lines {
            on_print(line);
        }
        result
    }

    fn run_inner(&self, vars: &mut Vars, limits: &Limits) -> Result<Value, ExprError> {
        let engine = engine::engine_for(limits);
        let len = vars.scope.len();
        let result = engine.eval_ast_with_scope::<Dynamic>(&mut vars.scope, &self.inner.ast);
        vars.scope.rewind(len);
        let value = result.map_err(|e| engine::eval_error(&e, limits))?;
        convert::to_json(&value).map_err(ExprError::plain)
    }
}

/// Run `script` under [`Limits::script`] with `vars` in scope, handing each line printed by
/// `print`/`debug` to `on_print` (in order, after the run; see [`Script::run_with`]).
pub fn run_script_capturing(
    script: &Script,
    vars: &mut Vars,
    on_print: &mut dyn FnMut(&str),
) -> Result<Value, ExprError> {
    script.run_with(vars, &Limits::script(), on_print)
}
