//! `rhai`: runs a rhai script in the engine's sandbox.
//!
//! # Action fields
//!
//! `entry_point`: a `.rhai` file beside the action's YAML.
//!
//! ```yaml
//! name: pick_zone
//! runner: rhai
//! entry_point: pick_zone.rhai
//! parameters:
//!   zones: {type: array, required: true}
//! ```
//!
//! # How parameters arrive
//!
//! The script sees `params`, the parameter object (`params.zones`), and `config`, the pack
//! configuration (`config/<pack>.yaml`, `#{}` when there is none).
//!
//! # Result
//!
//! The value of the script (its last expression, or `return x`) converted to JSON. A thrown
//! error (`throw "no zone left"`) fails the execution with its message; so does any runtime
//! error, with its position. `print` and `debug` lines go to the execution's output as
//! `stdout`. The sandbox limits (operations, call depth, sizes) end runaway scripts with an
//! error.
//!
//! Scripts are compiled once and the compiled form is reused until the file changes.

use super::{ActionOutcome, RunContext, Runner};
use async_trait::async_trait;
use squall_core::config::Reference;
use squall_core::content::Action;
use squall_core::expr::{run_script_capturing, ExprError, Script, Vars};
use squall_core::locks::MutexExt;
use squall_core::model::Json;
use squall_core::runner::NoSettings;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// The `rhai` runner.
pub struct RhaiRunner;

#[async_trait]
impl Runner for RhaiRunner {
    fn name(&self) -> &'static str {
        "rhai"
    }

    fn reference(&self) -> Reference {
        Reference {
            summary: "Runs the rhai script `entry_point` in the engine's sandbox with `params` \
                      and the pack's `config`; the script's value is the result. It takes no \
                      settings beyond the common keys.",
            ..Reference::default()
        }
    }

    /// No settings beyond the common keys (the script is `entry_point`), and a script
    /// that compiles.
    fn validate(&self, action: &Action) -> Vec<(String, String)> {
        if let Err(e) = action.settings::<NoSettings>() {
            return vec![e.problem("")];
        }
        match script_path(action).and_then(|p| load(&p)) {
            Ok(_) => Vec::new(),
            Err(msg) => vec![("entry_point".to_string(), msg)],
        }
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        let path = match script_path(&ctx.action) {
            Ok(p) => p,
            Err(msg) => return ActionOutcome::failed(msg, Json::Null),
        };
        let params = ctx.parameters;
        let config = ctx.pack_config;
        let sink = ctx.output;
        // rhai is synchronous and may run up to its operation limit: keep it off the async
        // workers.
        let job = tokio::task::spawn_blocking(move || {
            let script = load(&path)?;
            let mut vars = Vars::new();
            vars.set("params", &params);
            vars.set("config", &config);
            let mut on_print = |line: &str| sink.emit("stdout", format!("{line}\n"));
            run_script_capturing(&script, &mut vars, &mut on_print).map_err(|e| describe(&e))
        });
        // On cancel the script is left to finish on its blocking thread (the sandbox's
        // operation limit bounds it); its result is dropped.
        tokio::select! {
            joined = job => match joined {
                Ok(Ok(value)) => ActionOutcome::succeeded(value),
                Ok(Err(msg)) => ActionOutcome::failed(msg, Json::Null),
                Err(e) => ActionOutcome::failed(format!("the script crashed: {e}"), Json::Null),
            },
            _ = ctx.cancel.cancelled() => ActionOutcome::canceled(Json::Null),
        }
    }
}

/// The script's full path, or why the action has none.
fn script_path(action: &Action) -> Result<PathBuf, String> {
    action.entry_point_path().ok_or_else(|| {
        "the rhai runner needs `entry_point` (a .rhai file beside the action)".to_string()
    })
}

/// The message of a run error: a `throw`n message verbatim, any other error with its
/// position (the expression module already appends it).
fn describe(e: &ExprError) -> String {
    e.to_string()
}

/// `path:line:column: message` for a syntax error.
fn syntax_error(path: &Path, e: &ExprError) -> String {
    let path = path.display();
    let mut message = e.to_string();
    let place = match (e.line, e.column) {
        (Some(l), Some(c)) => Some((format!(":{l}:{c}"), format!(" (line {l}, column {c})"))),
        (Some(l), None) => Some((format!(":{l}"), format!(" (line {l})"))),
        _ => None,
    };
    match place {
        Some((short, suffix)) => {
            // The position moves to the front, compiler-style; drop its repetition.
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
            format!("{path}{short}: {message}")
        }
        None => format!("{path}: {message}"),
    }
}

/// Identity of a file version: modification time and size.
type Stamp = (Option<SystemTime>, u64);

/// Compiled scripts by path, each with the stamp of the file it was compiled from.
type Cache = Mutex<HashMap<PathBuf, (Stamp, Arc<Script>)>>;

/// The process-wide script cache (the runner is a unit struct, so it lives here).
fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The compiled script at `path`, from the cache when the file has not changed.
/// Errors name the file (and line:column for syntax errors).
fn load(path: &Path) -> Result<Arc<Script>, String> {
    let meta =
        std::fs::metadata(path).map_err(|_| format!("script not found: {}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("script is not a file: {}", path.display()));
    }
    let stamp: Stamp = (meta.modified().ok(), meta.len());
    if let Some((s, script)) = cache().locked().get(path) {
        if *s == stamp && stamp.0.is_some() {
            return Ok(script.clone());
        }
    }
    let source = std::fs::read_to_string(path)
        .map_err(|e| format!("could not read {}: {e}", path.display()))?;
    let script = Script::compile(&source).map_err(|e| syntax_error(path, &e))?;
    let script = Arc::new(script);
    cache()
        .locked()
        .insert(path.to_path_buf(), (stamp, script.clone()));
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use squall_core::model::{ActionMeta, Status};
    use squall_core::runner::OutputSink;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn action(dir: &Path, entry_point: Option<&str>) -> Arc<Action> {
        action_with(dir, json!({"entry_point": entry_point}))
    }

    /// An action `test.t` in `dir` with the keys of `extra`.
    fn action_with(dir: &Path, extra: Json) -> Arc<Action> {
        let mut meta = json!({"name": "t", "runner": "rhai"});
        if let (Some(m), Json::Object(extra)) = (meta.as_object_mut(), extra) {
            m.extend(extra);
        }
        let meta: ActionMeta = serde_json::from_value(meta).expect("valid meta");
        Arc::new(Action {
            reference: "test.t".into(),
            pack: "test".into(),
            meta,
            file: dir.join("t.yaml"),
            dir: dir.to_path_buf(),
            workflow: None,
        })
    }

    /// Run `source` as `t.rhai`; the outcome and the output chunks.
    async fn run_source(source: &str, params: Json) -> (ActionOutcome, Vec<(String, String)>) {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("t.rhai"), source).expect("write");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let ctx = RunContext {
            execution_id: "01TESTEXEC".into(),
            action: action(d.path(), Some("t.rhai")),
            parameters: params,
            pack_config: json!({"region": "eu-west-1"}),
            cancel: CancellationToken::new(),
            output: OutputSink::new(tx),
            content: Default::default(),
        };
        let o = tokio::time::timeout(Duration::from_secs(60), RhaiRunner.run(ctx))
            .await
            .expect("runner hung");
        let mut chunks = Vec::new();
        while let Ok(c) = rx.try_recv() {
            chunks.push(c);
        }
        (o, chunks)
    }

    #[tokio::test]
    async fn the_script_value_is_the_result() {
        let src = r#"
            let zones = params.zones;
            #{ first: zones[0], count: zones.len(), region: config.region, n: params.n + 1 }
        "#;
        let (o, _) = run_source(src, json!({"zones": ["a", "b"], "n": 41})).await;
        assert_eq!(o.status, Status::Succeeded, "{o:?}");
        assert_eq!(
            o.result,
            json!({"first": "a", "count": 2, "region": "eu-west-1", "n": 42})
        );
    }

    #[tokio::test]
    async fn throw_fails_with_the_message() {
        let (o, _) = run_source(
            r#"if params.x > 1 { throw "x too big" } 1"#,
            json!({"x": 5}),
        )
        .await;
        assert_eq!(o.status, Status::Failed);
        assert_eq!(o.error.as_deref(), Some("x too big"));
    }

    #[tokio::test]
    async fn print_and_debug_go_to_stdout() {
        let (o, chunks) = run_source(
            r#"print("hello " + params.who); debug("dbg"); 0"#,
            json!({"who": "ops"}),
        )
        .await;
        assert_eq!(o.status, Status::Succeeded, "{o:?}");
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert_eq!(chunks[0], ("stdout".to_string(), "hello ops\n".to_string()));
        assert_eq!(chunks[1].0, "stdout");
        assert!(chunks[1].1.contains("dbg"), "{chunks:?}");
    }

    #[tokio::test]
    async fn an_infinite_loop_ends_with_an_error() {
        let (o, _) = run_source("let x = 0; loop { x += 1; }", json!({})).await;
        assert_eq!(o.status, Status::Failed, "{o:?}");
        let err = o.error.unwrap_or_default();
        assert!(err.contains("limit"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_script_fails_naming_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = action(d.path(), Some("gone.rhai"));
        let p = RhaiRunner.validate(&a);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "entry_point");
        assert!(p[0].1.contains("gone.rhai"), "{p:?}");
        let ctx = RunContext {
            execution_id: "x".into(),
            action: a,
            parameters: json!({}),
            pack_config: json!({}),
            cancel: CancellationToken::new(),
            output: OutputSink::discard(),
            content: Default::default(),
        };
        let o = RhaiRunner.run(ctx).await;
        assert_eq!(o.status, Status::Failed);
        assert!(o.error.unwrap_or_default().contains("gone.rhai"));
    }

    #[test]
    fn validate_reports_missing_entry_point_and_syntax_errors() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = RhaiRunner.validate(&action(d.path(), None));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "entry_point");
        std::fs::write(d.path().join("bad.rhai"), "let a = 1;\nlet b = ;\n").expect("write");
        let p = RhaiRunner.validate(&action(d.path(), Some("bad.rhai")));
        assert_eq!(p.len(), 1, "{p:?}");
        let path = d.path().join("bad.rhai").display().to_string();
        assert!(p[0].1.starts_with(&format!("{path}:2:")), "{p:?}");
        assert!(!p[0].1.contains("(line"), "position given twice: {p:?}");
        std::fs::write(d.path().join("ok.rhai"), "40 + 2").expect("write");
        assert!(RhaiRunner
            .validate(&action(d.path(), Some("ok.rhai")))
            .is_empty());
    }

    #[test]
    fn settings_beyond_the_common_keys_are_refused() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::write(d.path().join("ok.rhai"), "1").expect("write");
        let a = action_with(d.path(), json!({"entry_point": "ok.rhai", "cmd": "true"}));
        let p = RhaiRunner.validate(&a);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "cmd", "{p:?}");
        assert!(p[0].1.contains("unknown field `cmd`"), "{p:?}");
    }

    #[tokio::test]
    async fn an_edited_script_is_recompiled() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("v.rhai");
        std::fs::write(&path, "1").expect("write");
        let first = load(&path).expect("compiles");
        assert!(Arc::ptr_eq(&first, &load(&path).expect("compiles")));
        // A different size changes the stamp even within the mtime's resolution.
        std::fs::write(&path, "1 + 22").expect("write");
        let second = load(&path).expect("compiles");
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.run(&mut Vars::new()).expect("runs"), json!(23));
    }
}
