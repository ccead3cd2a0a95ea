//! `wait` (until a condition or a rhai predicate over an object holds) and `logs`, plus
//! [`watch_one`], the watch loop shared with `run_job`.

use super::{api_error, client, Kind, Outcome, DEFAULT_NAMESPACE};
use crate::runners::params::decode;
use crate::runners::{OutputSink, RunContext};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::Resource;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use squall_core::expr::{Expr, Vars};
use squall_core::model::Json;
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Default `timeout` of `wait`, in seconds.
const WAIT_TIMEOUT: f64 = 300.0;

squall_core::work_runner!(
    /// `kubernetes.wait`: until `condition` (`{type, status}` in `status.conditions`) or
    /// `condition_expr` (rhai over `object`) holds; the object is the result.
    Wait, "kubernetes.wait", wait, WaitParameters,
    "Waits until a condition of an object holds (`{type: Ready, status: \"True\"}`) or a rhai predicate over `object` is true; the result is the object."
);
squall_core::work_runner!(
    /// `kubernetes.logs`: a pod's logs; result `{pod, namespace, container, logs}`.
    Logs, "kubernetes.logs", logs, LogsParameters,
    "Reads a pod's logs; the result is `{pod, namespace, container, logs}`."
);

/// Parameters of `kubernetes.wait` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParameters {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// API version: `v1`, `apps/v1`, `example.com/v1`...
    pub api_version: String,
    /// Kind, as in manifests.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (`default` when absent; ignored for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// A condition of `status.conditions`: `{type: Ready, status: "True"}` (status
    /// `True` when absent). Give this or `condition_expr`.
    #[serde(default)]
    pub condition: Option<Json>,
    /// A rhai predicate over `object` (`object.status.phase == "Ready"`).
    #[serde(default)]
    pub condition_expr: Option<String>,
    /// Seconds to wait before failing.
    #[serde(default = "wait_timeout")]
    pub timeout: f64,
}

fn wait_timeout() -> f64 {
    WAIT_TIMEOUT
}

/// Parameters of `kubernetes.logs` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogsParameters {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Pod name.
    pub name: String,
    /// Namespace (`default` when absent).
    #[serde(default)]
    pub namespace: Option<String>,
    /// The container (needed when the pod has several).
    #[serde(default)]
    pub container: Option<String>,
    /// Only the last N lines.
    #[serde(default)]
    pub tail_lines: Option<i64>,
    /// Only lines from the last N seconds.
    #[serde(default)]
    pub since_seconds: Option<i64>,
    /// The previous (crashed) container's logs.
    #[serde(default)]
    pub previous: bool,
}

/// What the check of a watched object decided.
pub(crate) enum Check<T> {
    /// Keep watching; the text (when some) is reported as progress.
    Pending(Option<String>),
    /// Stop with this value.
    Done(T),
}

/// The API server's verdict in a watch error when it will not change by retrying
/// (forbidden, unauthorized, not found, invalid).
fn fatal(e: &watcher::Error) -> Option<String> {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.as_ref(),
        watcher::Error::WatchError(s) => s.as_ref(),
        _ => return None,
    };
    matches!(status.code, 401 | 403 | 404 | 422)
        .then(|| format!("{} ({} {})", status.message, status.code, status.reason))
}

/// Watch the object `name` of `api` and hand every state of it (`None`: it does not exist)
/// to `check` until that returns [`Check::Done`] or `timeout` passes (Err with what was
/// last seen). Transient watch errors are retried once a second and reported as progress;
/// a forbidden or not-found answer ends the wait at once.
pub(crate) async fn watch_one<K, T>(
    api: Api<K>,
    name: &str,
    timeout: Duration,
    output: &OutputSink,
    mut check: impl FnMut(Option<&K>) -> Check<T>,
) -> Result<T, String>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher(api, config).boxed();
    let deadline = Instant::now() + timeout;
    let mut last: Option<String> = None;
    let mut seen_in_init = false;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
        let event = match next {
            Err(_) => {
                return Err(format!(
                    "timed out after {} s{}",
                    timeout.as_secs_f64(),
                    last.map(|l| format!("; last seen: {l}"))
                        .unwrap_or_default()
                ))
            }
            Ok(None) => return Err("the watch ended unexpectedly".into()),
            Ok(Some(e)) => e,
        };
        let verdict = match event {
            Ok(Event::Init) => {
                seen_in_init = false;
                continue;
            }
            Ok(Event::InitApply(o)) => {
                seen_in_init = true;
                check(Some(&o))
            }
            Ok(Event::InitDone) if seen_in_init => continue,
            Ok(Event::InitDone) => check(None),
            Ok(Event::Apply(o)) => check(Some(&o)),
            Ok(Event::Delete(_)) => check(None),
            Err(e) => {
                if let Some(msg) = fatal(&e) {
                    return Err(msg);
                }
                output.emit("progress", format!("watch error, retrying: {e}\n"));
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match verdict {
            Check::Done(v) => return Ok(v),
            Check::Pending(Some(text)) => {
                if last.as_deref() != Some(text.as_str()) {
                    output.emit("progress", format!("{text}\n"));
                }
                last = Some(text);
            }
            Check::Pending(None) => {}
        }
    }
}

/// Whether `object.status.conditions` has one of `type_` with status `status`; the
/// condition found (if any) for progress messages.
fn condition_holds(object: &Json, type_: &str, status: &str) -> (bool, Option<String>) {
    let found = object
        .pointer("/status/conditions")
        .and_then(Json::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Json::as_str) == Some(type_))
        });
    match found {
        None => (false, None),
        Some(c) => {
            let s = c.get("status").and_then(Json::as_str).unwrap_or("");
            let reason = c.get("reason").and_then(Json::as_str).unwrap_or("");
            (
                s == status,
                Some(format!(
                    "condition {type_} is {s:?}{}",
                    if reason.is_empty() {
                        String::new()
                    } else {
                        format!(" ({reason})")
                    }
                )),
            )
        }
    }
}

/// What `wait` waits for.
enum Until {
    Condition { type_: String, status: String },
    Expr(Expr),
}

impl Until {
    fn from_params(p: &WaitParameters) -> Result<Until, String> {
        match (p.condition.as_ref(), p.condition_expr.as_deref()) {
            (Some(_), Some(_)) => Err("give either `condition` or `condition_expr`, not both".into()),
            (None, None) => Err("give `condition` ({type: Ready, status: \"True\"}) or `condition_expr` (a rhai predicate over `object`)".into()),
            (None, Some(src)) => Expr::compile(src).map(Until::Expr).map_err(|e| format!("condition_expr: {e}")),
            (Some(c), None) => {
                let type_ = c.get("type").and_then(Json::as_str).filter(|s| !s.is_empty());
                let Some(type_) = type_ else {
                    return Err(format!("parameter `condition` needs a `type`, got {c}"));
                };
                let status = match c.get("status") {
                    None | Some(Json::Null) => "True".to_string(),
                    Some(Json::String(s)) => s.clone(),
                    Some(Json::Bool(b)) => if *b { "True" } else { "False" }.to_string(),
                    Some(other) => return Err(format!("condition status must be \"True\", \"False\" or \"Unknown\", got {other}")),
                };
                Ok(Until::Condition { type_: type_.to_string(), status })
            }
        }
    }

    /// Whether it holds for `object`, with a note on why not.
    fn holds(&self, object: &Json) -> (bool, Option<String>) {
        match self {
            Until::Condition { type_, status } => {
                let (ok, seen) = condition_holds(object, type_, status);
                (
                    ok,
                    Some(seen.unwrap_or_else(|| format!("no condition {type_} yet"))),
                )
            }
            Until::Expr(e) => {
                let mut vars = Vars::new();
                vars.set("object", object);
                match e.eval_bool(&mut vars) {
                    Ok(true) => (true, None),
                    Ok(false) => (false, Some(format!("`{}` is false", e.source()))),
                    Err(err) => (false, Some(format!("`{}`: {err}", e.source()))),
                }
            }
        }
    }
}

async fn wait(ctx: &RunContext) -> Outcome {
    let p: WaitParameters = decode(ctx)?;
    let (name, ns) = (p.name.as_str(), p.namespace.as_deref());
    let until = Until::from_params(&p)?;
    let timeout = super::objects::seconds(p.timeout)?;
    let k = Kind::resolve(ctx, p.cluster.as_deref(), &p.api_version, &p.kind).await?;
    let what = k.describe(name, ns);
    ctx.output.emit("progress", format!("waiting for {what}\n"));
    watch_one(k.api(ns), name, timeout, &ctx.output, |obj| match obj {
        None => Check::Pending(Some(format!("{what} does not exist (yet)"))),
        Some(o) => {
            let v = k.to_json(o);
            match until.holds(&v) {
                (true, _) => Check::Done(v),
                (false, note) => Check::Pending(note.map(|n| format!("{what}: {n}"))),
            }
        }
    })
    .await
    .map_err(|e| format!("waiting for {what}: {e}"))
}

async fn logs(ctx: &RunContext) -> Outcome {
    let p: LogsParameters = decode(ctx)?;
    let name = p.name.as_str();
    let ns = p.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    let container = p.container.as_deref();
    for (key, n) in [
        ("tail_lines", p.tail_lines),
        ("since_seconds", p.since_seconds),
    ] {
        if n.is_some_and(|n| n < 0) {
            return Err(format!(
                "parameter `{key}` must be a non-negative integer, got {}",
                n.unwrap_or_default()
            ));
        }
    }
    let lp = LogParams {
        container: container.map(str::to_string),
        tail_lines: p.tail_lines,
        since_seconds: p.since_seconds,
        previous: p.previous,
        ..Default::default()
    };
    let api: Api<Pod> = Api::namespaced(client(ctx, p.cluster.as_deref()).await?, ns);
    let text = api
        .logs(name, &lp)
        .await
        .map_err(|e| api_error(&format!("logs of pod {name:?} in namespace {ns:?}"), &e))?;
    ctx.output.emit("stdout", text.clone());
    Ok(json!({"pod": name, "namespace": ns, "container": container, "logs": text}))
}
