//! The sandboxed rhai engine: limits, construction, captured output and error conversion.

use super::{functions, ExprError};
use crate::locks::MutexExt;
use rhai::{Dynamic, Engine, EvalAltResult, OptimizationLevel, ParseError, ParseErrorType};
use std::cell::{Cell, RefCell};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Sandbox bounds applied to every evaluation.
///
/// Expressions (`when`, `{{ }}`, `publish`, guards) use [`Limits::default`]; scripts of the
/// `rhai` runner use [`Limits::script`], which only allows more operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Maximum number of operations (roughly: evaluated nodes, loop iterations) per run.
    pub max_operations: u64,
    /// Maximum depth of nested function calls (bounds recursion).
    pub max_call_levels: usize,
    /// Maximum nesting depth of an expression at compile time (also used inside functions).
    pub max_expr_depth: usize,
    /// Maximum length of a string, in bytes.
    pub max_string_size: usize,
    /// Maximum number of elements of an array.
    pub max_array_size: usize,
    /// Maximum number of properties of a map.
    pub max_map_size: usize,
    /// Maximum wall-clock time of one run (checked every few hundred operations; bounds the
    /// runs whose operations are few but expensive, like copying big values in a loop).
    pub max_duration: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 200_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_string_size: 1 << 20,
            max_array_size: 100_000,
            max_map_size: 100_000,
            max_duration: Duration::from_secs(2),
        }
    }
}

impl Limits {
    /// Limits for scripts of the `rhai` runner: the expression limits with a larger
    /// operation budget (10 million), 64 call levels and 60 seconds.
    pub fn script() -> Limits {
        Limits {
            max_operations: 10_000_000,
            max_call_levels: 64,
            max_duration: Duration::from_secs(60),
            ..Limits::default()
        }
    }
}

/// What an engine compiles and runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Single expressions: no loops, no closures, no statement blocks. With no way to
    /// iterate, an expression cannot build deeply nested data (which would overflow the
    /// caller's stack in rhai's recursive clone/drop) nor loop for long.
    Expression,
    /// Full scripts, run on their own thread with a large stack (see `mod.rs`).
    Script,
}

/// Build a sandboxed engine with `limits`.
///
/// - no module resolver that touches files (`import` always fails), `eval` disabled;
/// - invalid map properties are errors (`map.missing` fails, `"k" in map`/`map.get("k")` don't);
/// - `print`/`debug` never reach stdout: they go to the capture of the current thread, if any;
/// - the helper functions of [`functions`] are registered.
fn build(limits: &Limits, kind: Kind) -> Engine {
    let mut engine = Engine::new();
    if kind == Kind::Expression {
        engine.set_allow_anonymous_fn(false);
        engine.set_allow_looping(false);
        engine.set_allow_statement_expression(false);
    }
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.set_fail_on_invalid_map_property(true);
    engine.set_optimization_level(OptimizationLevel::Simple);
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    engine.set_max_modules(0);
    // rhai counts operations per call context: work done by closures called from native
    // functions (`map`, `reduce`, `sort`...) is not added to the caller's count, so nested
    // `map`s could run unbounded. Count every operation of the run on this thread instead.
    // The same callback enforces the time limit.
    let (max_ops, max_duration) = (limits.max_operations, limits.max_duration);
    engine.on_progress(move |_| {
        let n = OPS.with(|c| {
            let n = c.get().saturating_add(1);
            c.set(n);
            n
        });
        if n > max_ops {
            return Some(Dynamic::from(STOP_OPERATIONS));
        }
        if n.is_multiple_of(TIME_CHECK_EVERY) {
            let now = Instant::now();
            let started = STARTED.with(|c| {
                let started = c.get().unwrap_or(now);
                c.set(Some(started));
                started
            });
            if now.duration_since(started) > max_duration {
                return Some(Dynamic::from(STOP_TIME));
            }
        }
        None
    });
    engine.on_print(capture_line);
    engine.on_debug(|text, _source, _pos| capture_line(text));
    functions::register(&mut engine);
    engine
}

/// The shared engine for expressions, built once.
pub(crate) fn expr_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| build(&Limits::default(), Kind::Expression))
}

/// The shared engine for scripts ([`Limits::script`]), built once.
pub(crate) fn script_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| build(&Limits::script(), Kind::Script))
}

/// A script engine for arbitrary `limits`: the shared one when they match, otherwise one
/// built on first use and kept (a handful of distinct limits at most in practice; the cache
/// is bounded anyway).
pub(crate) fn script_engine_for(limits: &Limits) -> EngineRef {
    if *limits == Limits::script() {
        return EngineRef::Static(script_engine());
    }
    type Cache = Mutex<Vec<(Limits, Arc<Engine>)>>;
    static OTHERS: OnceLock<Cache> = OnceLock::new();
    let others = OTHERS.get_or_init(|| Mutex::new(Vec::new()));
    let mut others = others.locked();
    if let Some((_, engine)) = others.iter().find(|(l, _)| l == limits) {
        return EngineRef::Shared(engine.clone());
    }
    let engine = Arc::new(build(limits, Kind::Script));
    if others.len() >= 16 {
        others.remove(0);
    }
    others.push((*limits, engine.clone()));
    EngineRef::Shared(engine)
}

/// A borrowed shared engine or a cached custom one.
pub(crate) enum EngineRef {
    Static(&'static Engine),
    Shared(Arc<Engine>),
}

impl std::ops::Deref for EngineRef {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        match self {
            EngineRef::Static(e) => e,
            EngineRef::Shared(e) => e,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operation budget of the current run.

thread_local! {
    static OPS: Cell<u64> = const { Cell::new(0) };
    /// When the run started; set lazily at the first time check so short runs never read
    /// the clock.
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The clock is read every this many operations.
const TIME_CHECK_EVERY: u64 = 256;
/// Termination tokens of the progress callback.
const STOP_OPERATIONS: &str = "operations";
const STOP_TIME: &str = "time";

/// Start a new run on this thread: reset its operation count and start time.
pub(crate) fn start_run() {
    OPS.with(|c| c.set(0));
    STARTED.with(|c| c.set(None));
}

// ---------------------------------------------------------------------------------------
// Captured output of print/debug.

/// At most this many bytes of printed output are kept per run; the rest is dropped with a
/// marker line.
const MAX_CAPTURE_BYTES: usize = 1 << 20;

struct Capture {
    lines: Vec<String>,
    bytes: usize,
    truncated: bool,
}

thread_local! {
    static CAPTURE: RefCell<Option<Capture>> = const { RefCell::new(None) };
}

fn capture_line(text: &str) {
    CAPTURE.with(|c| {
        let mut c = c.borrow_mut();
        let Some(cap) = c.as_mut() else {
            return; // not capturing: printed output is discarded, never written to stdout
        };
        if cap.truncated {
            return;
        }
        if cap.bytes + text.len() > MAX_CAPTURE_BYTES {
            cap.truncated = true;
            cap.lines.push(format!(
                "[output truncated after {MAX_CAPTURE_BYTES} bytes]"
            ));
            return;
        }
        cap.bytes += text.len();
        cap.lines.push(text.to_string());
    });
}

/// Run `f` while collecting the lines printed on this thread; returns its result and the
/// lines. A previous capture (re-entrant use) is restored afterwards, even on panic.
pub(crate) fn with_capture<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    struct Restore(Option<Option<Capture>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(prev) = self.0.take() {
                CAPTURE.with(|c| *c.borrow_mut() = prev);
            }
        }
    }
    let prev = CAPTURE.with(|c| {
        c.borrow_mut().replace(Capture {
            lines: Vec::new(),
            bytes: 0,
            truncated: false,
        })
    });
    let mut restore = Restore(Some(prev));
    let out = f();
    let lines = CAPTURE
        .with(|c| c.borrow_mut().take())
        .map(|cap| cap.lines)
        .unwrap_or_default();
    if let Some(prev) = restore.0.take() {
        CAPTURE.with(|c| *c.borrow_mut() = prev);
    }
    (out, lines)
}

// ---------------------------------------------------------------------------------------
// Errors.

/// Convert a compile error.
pub(crate) fn parse_error(err: &ParseError, limits: &Limits) -> ExprError {
    let pos = err.position();
    let message = match err.err_type() {
        ParseErrorType::ExprTooDeep => format!(
            "expression too deeply nested (limit {} levels)",
            limits.max_expr_depth
        ),
        _ => err.err_type().to_string(),
    };
    with_position(message, pos)
}

/// Convert a runtime error. Errors raised inside functions are reported by their root
/// cause (the position then points inside the function body, which is in the same source).
pub(crate) fn eval_error(err: &EvalAltResult, limits: &Limits) -> ExprError {
    let mut root = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = root
    {
        root = inner;
    }
    let pos = root.position();
    let message = match root {
        EvalAltResult::ErrorRuntime(value, _) => {
            // `throw` and helper-function failures: the message as is, position in the fields.
            let (line, column) = (pos.line(), pos.position());
            return ExprError {
                message: thrown_message(value),
                line,
                column,
            };
        }
        EvalAltResult::ErrorTerminated(token, _)
            if token.clone().into_string().is_ok_and(|t| t == STOP_TIME) =>
        {
            format!(
                "exceeded the time limit of {:.1?} (endless loop?)",
                limits.max_duration
            )
        }
        EvalAltResult::ErrorTooManyOperations(_) | EvalAltResult::ErrorTerminated(..) => format!(
            "exceeded the limit of {} operations (endless loop?)",
            limits.max_operations
        ),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "exceeded the limit of {} nested function calls (endless recursion?)",
            limits.max_call_levels
        ),
        EvalAltResult::ErrorDataTooLarge(what, _) => format!(
            "{what} exceeds the sandbox limit (strings {} bytes, arrays {} items, maps {} keys)",
            limits.max_string_size, limits.max_array_size, limits.max_map_size
        ),
        EvalAltResult::ErrorPropertyNotFound(name, _) => format!(
            "property `{name}` not found (test with `\"{name}\" in map` or use `map.get(\"{name}\")`)"
        ),
        EvalAltResult::ErrorParsing(kind, _) => kind.to_string(),
        other => {
            // rhai's own text, without its position suffix (we add ours).
            let text = other.to_string();
            match text.rfind(" (line ") {
                Some(i) if !pos.is_none() => text[..i].to_string(),
                _ => text,
            }
        }
    };
    with_position(message, pos)
}

fn with_position(message: String, pos: rhai::Position) -> ExprError {
    let (line, column) = (pos.line(), pos.position());
    let message = match (line, column) {
        (Some(l), Some(c)) => format!("{message} (line {l}, column {c})"),
        (Some(l), None) => format!("{message} (line {l})"),
        _ => message,
    };
    ExprError {
        message,
        line,
        column,
    }
}

fn thrown_message(value: &Dynamic) -> String {
    if value.is_unit() {
        "script threw an exception without a message".to_string()
    } else if value.is_string() {
        value.to_string()
    } else {
        super::convert::to_json(value)
            .map(|v| v.to_string())
            .unwrap_or_else(|_| value.to_string())
    }
}
