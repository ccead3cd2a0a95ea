//! `kubernetes.run_job`: run a Kubernetes Job to completion.
//!
//! The Job comes from parameters (`image`, `command`, `args`, `env`, `labels`,
//! `annotations`, `resources`, `backoff_limit`, `active_deadline_seconds`,
//! `ttl_seconds_after_finished`, `service_account`, `name` or `generate_name`) or whole from
//! `manifest` (one `batch/v1` Job). The runner creates it, watches it until its `Complete`
//! or `Failed` condition is true, copies the pods' logs into the execution output (live
//! while they run, best effort), and deletes it with its pods (propagation `Background`)
//! unless `keep: true`. Canceling the execution (or its timeout) deletes the Job and its
//! pods at once.
//!
//! An action using this runner may also give `cmd` (the container's command, run with
//! `sh -c`, used when no `command` parameter is given) and `env`; both are templates over
//! the parameters (`cmd: "nodetool repair -pr -h {{ host }}"`).
//!
//! Result: `{status: Complete|Failed, job, namespace, duration_seconds, pods, logs, reason,
//! message}` — `logs` maps each pod name to its log text. A `Failed` Job fails the
//! execution with the Job's reason and message (`BackoffLimitExceeded: Job has reached the
//! specified backoff limit`), the result still attached.

use super::wait::{watch_one, Check};
use super::{api_error, client, manifests, DEFAULT_NAMESPACE};
use crate::runners::params::decode;
use crate::runners::{ActionOutcome, OutputSink, RunContext, Runner};
use async_trait::async_trait;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use indexmap::IndexMap;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, PropagationPolicy};
use kube::runtime::watcher::{self, watcher};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map};
use squall_core::config::Reference;
use squall_core::content::Action;
use squall_core::expr::{Template, Vars};
use squall_core::locks::MutexExt;
use squall_core::model::Json;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Label the Job controller puts on a Job's pods.
const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Default bound on waiting for the Job (the action's own `timeout` usually ends it first).
const JOB_TIMEOUT: f64 = 7.0 * 24.0 * 3600.0;

/// Largest log kept per pod in the result (the output gets everything).
const MAX_LOG: usize = 1024 * 1024;

/// Logs captured per pod.
type Captured = Arc<Mutex<BTreeMap<String, String>>>;

/// The `kubernetes.run_job` runner.
pub struct RunJob;

/// The settings of a `kubernetes.run_job` action: templates over the parameters for the
/// container's command and environment, e.g. `cmd: "nodetool repair -pr -h {{ host }}"`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// The container's command line, run with `sh -c` (unless the `command` parameter
    /// is given); may hold `{{ }}` over the parameters.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Extra environment of the container; values may hold `{{ }}`.
    #[serde(default)]
    pub env: IndexMap<String, String>,
}

/// Parameters of `kubernetes.run_job`. Unknown parameters are allowed: an action may
/// declare more, used only in its `cmd`/`env` templates (`host` in
/// `cmd: "nodetool repair -pr -h {{ host }}"`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct JobParameters {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The container image (required unless `manifest` is given).
    #[serde(default)]
    pub image: Option<String>,
    /// The entrypoint: a list of strings, or a string run with `sh -c` (the action's `cmd`
    /// when absent).
    #[serde(default)]
    pub command: Option<Json>,
    /// Arguments of the entrypoint.
    #[serde(default)]
    pub args: Option<Vec<Json>>,
    /// Environment variables, name → value (added to the action's `env`).
    #[serde(default)]
    pub env: Option<Map<String, Json>>,
    /// Namespace of the Job (`default` when absent and the manifest names none).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Labels of the Job and its pods.
    #[serde(default)]
    pub labels: Option<Map<String, Json>>,
    /// Annotations of the Job's pods.
    #[serde(default)]
    pub annotations: Option<Map<String, Json>>,
    /// Container resources: `{requests: {cpu: 100m}, limits: {memory: 256Mi}}`.
    #[serde(default)]
    pub resources: Option<Json>,
    /// Name of the container.
    #[serde(default = "container_name")]
    pub container_name: String,
    /// Service account of the pods.
    #[serde(default)]
    pub service_account: Option<String>,
    /// Retries before the Job is `Failed`.
    #[serde(default)]
    pub backoff_limit: u32,
    /// Kubernetes ends the Job after this many seconds.
    #[serde(default)]
    pub active_deadline_seconds: Option<u32>,
    /// Kubernetes deletes the finished Job after this many seconds (with `keep`).
    #[serde(default)]
    pub ttl_seconds_after_finished: Option<u32>,
    /// The Job's name (generated from `generate_name` when absent).
    #[serde(default)]
    pub name: Option<String>,
    /// Prefix of a generated Job name.
    #[serde(default = "generate_name")]
    pub generate_name: String,
    /// A whole `batch/v1` Job (map or YAML string) instead of the parameters above.
    #[serde(default)]
    pub manifest: Option<Json>,
    /// Keep the Job and its pods after it finished.
    #[serde(default)]
    pub keep: bool,
    /// Seconds to wait for the Job (until the action times out when absent).
    #[serde(default)]
    pub timeout: Option<f64>,
}

fn container_name() -> String {
    "job".to_string()
}

fn generate_name() -> String {
    "squall-job-".to_string()
}

#[async_trait]
impl Runner for RunJob {
    fn name(&self) -> &'static str {
        "kubernetes.run_job"
    }

    fn validate(&self, action: &Action) -> Vec<(String, String)> {
        match action.settings::<JobSettings>() {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.problem("")],
        }
    }

    fn reference(&self) -> Reference {
        Reference::settings::<JobSettings>(
            "Runs a Kubernetes Job to completion, streams its pods' logs to the output and \
             returns their exit codes and logs.",
        )
        .with_parameters::<JobParameters>()
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        let (job, api, params) = match prepare(&ctx).await {
            Ok(x) => x,
            Err(e) => return ActionOutcome::failed(e, Json::Null),
        };
        let pp = PostParams {
            field_manager: Some("squall".into()),
            ..Default::default()
        };
        let created = tokio::select! {
            r = api.create(&pp, &job) => r,
            _ = ctx.cancel.cancelled() => return ActionOutcome::canceled(Json::Null),
        };
        let created = match created {
            Ok(j) => j,
            Err(e) => return ActionOutcome::failed(api_error("create the Job", &e), Json::Null),
        };
        let name = created.metadata.name.clone().unwrap_or_default();
        let ns = created
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
        ctx.output
            .emit("progress", format!("job {ns}/{name} created\n"));
        let started = Instant::now();
        let pods_api: Api<Pod> = Api::namespaced(api.clone().into_client(), &ns);
        let captured: Captured = Arc::default();
        let streamer = tokio::spawn(stream_logs(
            pods_api.clone(),
            name.clone(),
            ctx.output.clone(),
            captured.clone(),
        ));
        let timeout = params.timeout.unwrap_or(JOB_TIMEOUT);
        let finished = tokio::select! {
            r = watch_one(api.clone(), &name, Duration::from_secs_f64(timeout), &ctx.output, check_job) => Some(r),
            _ = ctx.cancel.cancelled() => None,
        };
        let Some(finished) = finished else {
            streamer.abort();
            ctx.output.emit(
                "progress",
                format!("canceled: deleting job {ns}/{name} and its pods\n"),
            );
            let gone = remove(&api, &pods_api, &name).await;
            return ActionOutcome::canceled(
                json!({"job": name, "namespace": ns, "deleted": gone.is_ok()}),
            );
        };
        let duration = started.elapsed().as_secs_f64();
        // Give the live streams a moment to drain, then stop them.
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while !streamer.is_finished() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        streamer.abort();
        let pods = pod_names(&pods_api, &name).await;
        let logs = collect_logs(&pods_api, &pods, &captured, &ctx.output).await;
        if !params.keep {
            if let Err(e) = remove(&api, &pods_api, &name).await {
                ctx.output
                    .emit("stderr", format!("could not delete job {ns}/{name}: {e}\n"));
            }
        }
        let (status, reason, message) = match finished {
            Ok(v) => v,
            Err(e) => {
                let result = json!({"status": "Unknown", "job": name, "namespace": ns, "duration_seconds": duration, "pods": pods, "logs": logs});
                return ActionOutcome::failed(format!("job {ns}/{name}: {e}"), result);
            }
        };
        let result = json!({
            "status": status, "job": name, "namespace": ns, "duration_seconds": duration,
            "pods": pods, "logs": logs, "reason": reason, "message": message, "kept": params.keep,
        });
        if status == "Complete" {
            ActionOutcome::succeeded(result)
        } else {
            ActionOutcome::failed(
                format!("job {ns}/{name} failed: {reason}: {message}"),
                result,
            )
        }
    }
}

/// The Job to create and the API of its namespace.
async fn prepare(ctx: &RunContext) -> Result<(Job, Api<Job>, JobParameters), String> {
    let p: JobParameters = decode(ctx)?;
    if p.timeout.is_some_and(|t| !(t >= 0.0 && t.is_finite())) {
        return Err(format!(
            "parameter `timeout` must be a non-negative number, got {}",
            p.timeout.unwrap_or_default()
        ));
    }
    let mut spec = match &p.manifest {
        Some(m) => {
            let docs = manifests(Some(m), true)?;
            let [doc] = docs.as_slice() else {
                return Err(format!(
                    "`manifest` of run_job must hold one Job, it holds {} objects",
                    docs.len()
                ));
            };
            let kind = (
                doc.get("apiVersion").and_then(Json::as_str),
                doc.get("kind").and_then(Json::as_str),
            );
            if kind != (Some("batch/v1"), Some("Job")) {
                return Err(format!(
                    "`manifest` of run_job must be a batch/v1 Job, got {doc}"
                ));
            }
            doc.clone()
        }
        None => from_params(&p, &action_templates(ctx)?)?,
    };
    let ns = spec
        .pointer("/metadata/namespace")
        .and_then(Json::as_str)
        .map(str::to_string)
        .or(p.namespace.clone())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    if let Some(meta) = spec.get_mut("metadata").and_then(Json::as_object_mut) {
        meta.insert("namespace".into(), json!(ns));
        let labels = meta.entry("labels").or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert("app.kubernetes.io/managed-by".into(), json!("squall"));
            l.insert(
                "squall.io/execution".into(),
                json!(ctx.execution_id.to_lowercase()),
            );
        }
    }
    let job: Job =
        serde_json::from_value(spec).map_err(|e| format!("the Job is not valid: {e}"))?;
    let api = Api::namespaced(client(ctx, p.cluster.as_deref()).await?, &ns);
    Ok((job, api, p))
}

/// A map parameter with its values as strings.
fn string_map(map: &Option<Map<String, Json>>) -> Map<String, Json> {
    map.iter()
        .flatten()
        .map(|(k, v)| (k.clone(), Json::String(text(v))))
        .collect()
}

/// A string value as is, any other as JSON.
fn text(v: &Json) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// The `command` parameter: a list, or a string run with `sh -c`.
fn command(value: &Json) -> Result<Vec<String>, String> {
    match value {
        Json::String(s) => Ok(vec!["sh".into(), "-c".into(), s.clone()]),
        Json::Array(a) => Ok(a.iter().map(text).collect()),
        other => Err(format!(
            "parameter `command` must be a list of strings, got {other}"
        )),
    }
}

/// The action's own `cmd` and `env` (templates over the parameters), rendered: an action
/// can build the container's command from its parameters, e.g.
/// `cmd: "nodetool repair -pr -h {{ host }}"`.
struct Templates {
    cmd: Option<String>,
    env: Map<String, Json>,
}

fn action_templates(ctx: &RunContext) -> Result<Templates, String> {
    let meta = &ctx.action.meta;
    let settings = ctx
        .action
        .settings::<JobSettings>()
        .map_err(|e| e.to_string())?;
    let params = ctx.parameters.as_object().cloned().unwrap_or_default();
    let mut vars = Vars::from_map(&params);
    for name in meta.parameters.keys() {
        if !params.contains_key(name) {
            vars.set(name, &Json::Null);
        }
    }
    vars.set("params", &ctx.parameters);
    let mut render = |field: &str, text: &str| -> Result<String, String> {
        let t = Template::compile(&Json::String(text.to_string()))
            .map_err(|e| format!("{field}: {e}"))?;
        match t.render(&mut vars).map_err(|e| format!("{field}: {e}"))? {
            Json::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    };
    let cmd = settings
        .cmd
        .as_deref()
        .map(|c| render("cmd", c))
        .transpose()?;
    let mut env = Map::new();
    for (k, v) in &settings.env {
        env.insert(k.clone(), Json::String(render(&format!("env.{k}"), v)?));
    }
    Ok(Templates { cmd, env })
}

/// The Job described by the parameters (and the action's `cmd`/`env`).
fn from_params(p: &JobParameters, t: &Templates) -> Result<Json, String> {
    let image = p
        .image
        .as_deref()
        .ok_or("parameter `image` is required (or give `manifest`)")?;
    let labels = string_map(&p.labels);
    let mut container = json!({"name": p.container_name, "image": image});
    let command = match (p.command.as_ref().map(command).transpose()?, &t.cmd) {
        (Some(c), _) => Some(c),
        (None, Some(cmd)) => Some(vec!["sh".into(), "-c".into(), cmd.clone()]),
        (None, None) => None,
    };
    if let Some(c) = command {
        container["command"] = json!(c);
    }
    if let Some(a) = &p.args {
        container["args"] = json!(a.iter().map(text).collect::<Vec<_>>());
    }
    let mut env = t.env.clone();
    env.extend(string_map(&p.env));
    if !env.is_empty() {
        container["env"] = Json::Array(
            env.into_iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect(),
        );
    }
    if let Some(r) = &p.resources {
        container["resources"] = r.clone();
    }
    let mut pod_spec = json!({"restartPolicy": "Never", "containers": [container]});
    if let Some(sa) = &p.service_account {
        pod_spec["serviceAccountName"] = json!(sa);
    }
    let mut metadata = json!({"labels": labels});
    match &p.name {
        Some(n) => metadata["name"] = json!(n),
        None => metadata["generateName"] = json!(p.generate_name),
    }
    let mut spec = json!({
        "backoffLimit": p.backoff_limit,
        "template": {"metadata": {"labels": labels, "annotations": string_map(&p.annotations)}, "spec": pod_spec},
    });
    if let Some(s) = p.active_deadline_seconds {
        spec["activeDeadlineSeconds"] = json!(s);
    }
    if let Some(s) = p.ttl_seconds_after_finished {
        spec["ttlSecondsAfterFinished"] = json!(s);
    }
    Ok(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}))
}

/// `(status, reason, message)` once the Job has a true `Complete` or `Failed` condition.
fn check_job(job: Option<&Job>) -> Check<(String, String, String)> {
    let Some(job) = job else {
        return Check::Done((
            "Failed".into(),
            "Deleted".into(),
            "the Job was deleted before it finished".into(),
        ));
    };
    let status = job.status.clone().unwrap_or_default();
    for c in status.conditions.iter().flatten() {
        if (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True" {
            return Check::Done((
                c.type_.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            ));
        }
    }
    Check::Pending(Some(format!(
        "active {}, succeeded {}, failed {}",
        status.active.unwrap_or(0),
        status.succeeded.unwrap_or(0),
        status.failed.unwrap_or(0)
    )))
}

/// Follow the logs of each pod of the Job once it runs, into the output and `captured`.
async fn stream_logs(pods: Api<Pod>, job: String, output: OutputSink, captured: Captured) {
    let config = watcher::Config::default().labels(&format!("{JOB_NAME_LABEL}={job}"));
    let mut events = watcher(pods.clone(), config).boxed();
    let mut started = HashSet::new();
    // Dropped (and so aborted) with this task: a follow stream holds an output sink, and
    // the execution's output is only complete once every sink is gone.
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(ev) = events.next().await {
        let pod = match ev {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(_) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        if phase == "Pending" || phase.is_empty() || !started.insert(name.clone()) {
            continue;
        }
        let (pods, output, captured) = (pods.clone(), output.clone(), captured.clone());
        tasks.spawn(async move {
            let lp = LogParams {
                follow: true,
                ..Default::default()
            };
            let Ok(stream) = pods.log_stream(&name, &lp).await else {
                return;
            };
            let mut lines = stream.lines();
            while let Ok(Some(line)) = lines.try_next().await {
                output.emit("stdout", format!("[{name}] {line}\n"));
                let mut c = captured.locked();
                let text = c.entry(name.clone()).or_default();
                if text.len() < MAX_LOG {
                    text.push_str(&line);
                    text.push('\n');
                }
            }
        });
    }
}

/// Names of the Job's pods.
async fn pod_names(pods: &Api<Pod>, job: &str) -> Vec<String> {
    let lp = ListParams::default().labels(&format!("{JOB_NAME_LABEL}={job}"));
    match pods.list(&lp).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Each pod's log: what was streamed, else fetched now (best effort).
async fn collect_logs(
    pods: &Api<Pod>,
    names: &[String],
    captured: &Captured,
    output: &OutputSink,
) -> Json {
    let mut out = Map::new();
    for name in names {
        let streamed = captured.locked().get(name).cloned();
        let text = match streamed {
            Some(t) => t,
            None => match pods.logs(name, &LogParams::default()).await {
                Ok(mut t) => {
                    t.truncate(MAX_LOG);
                    for line in t.lines() {
                        output.emit("stdout", format!("[{name}] {line}\n"));
                    }
                    t
                }
                Err(e) => {
                    output.emit(
                        "stderr",
                        format!("no logs for pod {name}: {}\n", api_error("logs", &e)),
                    );
                    String::new()
                }
            },
        };
        out.insert(name.clone(), Json::String(text));
    }
    Json::Object(out)
}

/// Delete the Job (propagation Background) and its pods now.
async fn remove(jobs: &Api<Job>, pods: &Api<Pod>, name: &str) -> Result<(), String> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(name, &dp).await {
        Ok(_) => {}
        Err(e) if super::is_not_found(&e) => {}
        Err(e) => return Err(api_error("delete the Job", &e)),
    }
    let lp = ListParams::default().labels(&format!("{JOB_NAME_LABEL}={name}"));
    pods.delete_collection(&DeleteParams::default(), &lp)
        .await
        .map(|_| ())
        .map_err(|e| api_error("delete the Job's pods", &e))
}
