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
//! - `default(trigger.object.spec.engine, "postgres")` → the value, or the fallback when it
//!   is missing (missing property, undefined variable, index out of range) or `()`; other
//!   errors still fail. `trigger.object.spec.get("engine") ?? "postgres"` also works;
//! - `trigger.object?.spec` → `()` instead of an error when `object` is `()`;
//! - `is_def_var("result")` tells whether a top-level variable is defined.
//!
//! A field present with a JSON `null` value reads as `()` without error.
//!
//! # Expressions versus scripts
//! Expressions are single rhai expressions: no statements, loops or closures (`|x| ...`),
//! so they cannot run long nor build deeply nested data; their variables are constants
//! (`list.push(1)` is an error), so one [`Vars`] can serve many expressions. Scripts
//! ([`Script`]) have the whole language and work on copies of the variables, on their own
//! thread with a large stack (rhai clones and drops nested values recursively).
//!
//! # Helper functions
//! On top of rhai's standard library (`len`, `to_lower`/`to_upper`, `contains`, `split`,
//! `keys`, `parse_int`, ...): `to_json(x)`, `from_json(s)`, `base64_encode(s)`,
//! `base64_decode(s)`, `regex_match(s, pattern)` (unanchored search),
//! `regex_captures(s, pattern)` (`[whole, group1, ...]` of the first match, `[]` when none),
//! `now()` (RFC 3339, UTC), `parse_time(s)` (RFC 3339 → unix seconds),
//! `random_password(n)` (8 ≤ n ≤ 4096 letters and digits, registered as a secret so it is
//! masked everywhere), `default(x, y)` (see above; custom syntax, because `default` is a
//! reserved word in rhai), `lower(s)`, `upper(s)` (rhai only has `to_lower`/`to_upper`).
//!
//! # Sandbox
//! No I/O at all: no `import` of files (no module resolver), no `eval`, no environment
//! access. Runs are bounded by [`Limits`] (operations, including those of closures called by
//! `map`/`filter`/..., call depth, expression depth, string, array and map sizes, wall-clock
//! time); exceeding a bound is an [`ExprError`] naming the limit, never a hang. (rhai does
//! not size-check `map[key] = value`; such growth is bounded by the operation budget.) `print`/`debug` never write to the process's stdout: they are discarded, except
//! under [`run_script_capturing`] / [`Script::run_with`], which hand the lines to a callback.

mod convert;
mod engine;
mod functions;
mod template;

#[cfg(test)]
mod sandbox_tests;
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
    ///
    /// Variables are constants: an expression cannot modify them (`list.push(1)` is an
    /// error), so one `Vars` can safely serve many expressions. Scripts work on copies.
    pub fn set(&mut self, name: &str, value: &Value) {
        if self.scope.contains(name) {
            let _previous = self.scope.remove::<Dynamic>(name);
        }
        self.scope
            .push_constant_dynamic(name.to_string(), convert::to_dynamic(value));
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

/// `word` occurs in `src` not as part of a longer identifier.
fn mentions_word(src: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    src.match_indices(word).any(|(i, _)| {
        !src[..i].chars().next_back().is_some_and(ident)
            && !src[i + word.len()..].chars().next().is_some_and(ident)
    })
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

    /// True when the source uses the word `name` (as a variable, property or anywhere else):
    /// a caller may then leave a costly variable out of [`Vars`] when it is not mentioned.
    pub fn mentions(&self, name: &str) -> bool {
        mentions_word(self.source(), name)
    }

    /// Evaluate and convert the result to JSON.
    pub fn eval(&self, vars: &mut Vars) -> Result<Value, ExprError> {
        let value = self.eval_dynamic(vars)?;
        Ok(convert::to_json(&value)?)
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
        engine::start_run();
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
    /// the thrown value. Printed output is discarded. The script works on copies of `vars`:
    /// `vars` is unchanged afterwards.
    pub fn run(&self, vars: &mut Vars) -> Result<Value, ExprError> {
        self.run_inner(vars, &Limits::script()).0
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
        let (result, lines) = self.run_inner(vars, limits);
        for line in &lines {
            on_print(line);
        }
        result
    }

    /// Run on a dedicated thread with a [`SCRIPT_STACK`] stack: rhai clones, compares and
    /// drops nested data recursively, and a script can nest arrays/maps as deep as the size
    /// limits allow, far deeper than a 2 MiB worker-thread stack survives.
    /// Returns the result and the printed lines.
    fn run_inner(
        &self,
        vars: &mut Vars,
        limits: &Limits,
    ) -> (Result<Value, ExprError>, Vec<String>) {
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name("squall-rhai".into())
                .stack_size(SCRIPT_STACK)
                .spawn_scoped(s, || engine::with_capture(|| self.run_here(vars, limits)));
            match handle {
                Ok(h) => h.join().unwrap_or_else(|_| {
                    let err = ExprError::plain("the script engine crashed (panic)");
                    (Err(err), Vec::new())
                }),
                Err(e) => {
                    let err =
                        ExprError::plain(format!("cannot start a thread for the script: {e}"));
                    (Err(err), Vec::new())
                }
            }
        })
    }

    fn run_here(&self, vars: &mut Vars, limits: &Limits) -> Result<Value, ExprError> {
        let engine = engine::script_engine_for(limits);
        let len = vars.scope.len();
        // Scripts get writable copies of the (constant) variables, dropped afterwards, so
        // the caller's values never change (and never come back deeply nested).
        let mut copies: Vec<(String, Dynamic)> = vars
            .scope
            .iter_raw()
            .map(|(name, _, value)| (name.to_string(), value.clone()))
            .collect();
        copies.reverse(); // iter_raw goes from the last variable to the first
        for (name, value) in copies {
            vars.scope.push_dynamic(name, value);
        }
        engine::start_run();
        let result = engine.eval_ast_with_scope::<Dynamic>(&mut vars.scope, &self.inner.ast);
        vars.scope.rewind(len);
        let value = result.map_err(|e| engine::eval_error(&e, limits))?;
        Ok(convert::to_json(&value)?)
    }
}

/// Stack size of the thread running a script (virtual memory, committed only when used).
const SCRIPT_STACK: usize = 256 << 20;

/// Run `script` under [`Limits::script`] with `vars` in scope, handing each line printed by
/// `print`/`debug` to `on_print` (in order, after the run; see [`Script::run_with`]).
pub fn run_script_capturing(
    script: &Script,
    vars: &mut Vars,
    on_print: &mut dyn FnMut(&str),
) -> Result<Value, ExprError> {
    script.run_with(vars, &Limits::script(), on_print)
}
