//! The `kubernetes.watch` sensor: emits `kubernetes.resource` for every change of the
//! objects of one kind (any group/version/kind the cluster serves, custom resources too).
//!
//! ```yaml
//! name: databases
//! type: kubernetes.watch
//! config:
//!   cluster: default          # a cluster named under `clusters:` in squall.yaml
//!   group: dbaas.squall.dev   # "" or absent: the core group
//!   version: v1
//!   kind: Database
//!   namespace: null           # null: all namespaces
//!   label_selector: null      # e.g. "tier=db,env in (prod)"
//!   field_selector: null      # e.g. "metadata.name=orders"
//!   events: [ADDED, MODIFIED, DELETED]
//! ```
//!
//! # Payload
//! `{event, object, cluster, kind, name, namespace}`: `event` is `ADDED`, `MODIFIED` or
//! `DELETED`, `object` the whole object as the API server returned it (for `DELETED`
//! its last known state), `namespace` null for cluster-scoped kinds.
//!
//! # Checkpoint: no duplicates, no gaps
//! The checkpoint holds the objects the sensor knows, `uid → {resourceVersion, object}`,
//! saved durably after every emitted trigger. Every (re)start lists the kind and diffs
//! the list against it: an unknown uid is `ADDED`, a known uid with another
//! resourceVersion `MODIFIED`, a known uid missing from the list `DELETED`, an unchanged
//! one nothing. After the list, watch events are emitted as they come. A relist by the
//! watcher (410 Gone) goes through the same diff. So after a Squall restart exactly the
//! changes made while it was down are emitted (several changes of one object while down
//! collapse into one `MODIFIED`), and nothing already emitted is emitted again — unless
//! Squall dies between accepting a trigger and saving the checkpoint, which can repeat
//! that one event. Without a checkpoint (the first start) every existing object is
//! `ADDED`, like an informer. Changes filtered out by `events` still update the
//! checkpoint.
//!
//! # Failures
//! A kind the cluster does not serve (yet), an unreachable API server or a lost watch
//! makes the run fail with the reason; the supervisor shows `error` in `squall sensor
//! list` and restarts it with backoff, and the restarted run catches up by the diff
//! above. So a CRD installed after Squall started is picked up by a later restart.

use super::{blank_is_none, decode_config, emit_with_retry, Sensor, SensorContext, SensorError};
use async_trait::async_trait;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event};
use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map};
use squall_core::config::Reference;
use squall_core::model::Json;
use std::collections::{BTreeMap, BTreeSet};

/// The `kubernetes.watch` sensor type.
pub struct KubernetesWatchSensor;

/// Event names, as in the payload and `events:`.
const EVENTS: [&str; 3] = ["ADDED", "MODIFIED", "DELETED"];
/// Above this many known objects the checkpoint keeps only their metadata.
const FULL_OBJECTS_MAX: usize = 2000;

/// The `config:` of a `kubernetes.watch` sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// A cluster named under `clusters:` in `squall.yaml`.
    #[serde(default = "default_cluster", deserialize_with = "cluster_name")]
    pub cluster: String,
    /// The API group (`dbaas.squall.dev`); empty or absent for the core group.
    #[serde(default, deserialize_with = "group_name")]
    pub group: String,
    /// The API version within the group (`v1`).
    pub version: String,
    /// The kind (`ConfigMap`, or the kind of a CRD).
    pub kind: String,
    /// Only this namespace; all namespaces when absent.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub namespace: Option<String>,
    /// A label selector (`tier=db,env in (prod)`).
    #[serde(default, deserialize_with = "blank_is_none")]
    pub label_selector: Option<String>,
    /// A field selector (`metadata.name=orders`).
    #[serde(default, deserialize_with = "blank_is_none")]
    pub field_selector: Option<String>,
    /// The events to emit, among `ADDED`, `MODIFIED` and `DELETED` (any case).
    #[serde(default)]
    pub events: Events,
}

fn default_cluster() -> String {
    crate::k8s::DEFAULT_CLUSTER.to_string()
}

fn cluster_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(blank_is_none(d)?.unwrap_or_else(default_cluster))
}

fn group_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(blank_is_none(d)?.unwrap_or_default())
}

/// The events a watch emits (upper case).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Events(pub BTreeSet<String>);

impl Default for Events {
    fn default() -> Self {
        Events(EVENTS.iter().map(|e| e.to_string()).collect())
    }
}

impl Events {
    /// Whether `event` is emitted.
    pub fn contains(&self, event: &str) -> bool {
        self.0.contains(event)
    }
}

/// One event name of `events:`, any case.
struct EventName(String);

impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Json::deserialize(d)?;
        match v.as_str().map(str::to_ascii_uppercase) {
            Some(name) if EVENTS.contains(&name.as_str()) => Ok(EventName(name)),
            _ => Err(D::Error::custom(format!(
                "unknown event `{}`; use ADDED, MODIFIED or DELETED",
                v.as_str().map_or_else(|| v.to_string(), str::to_string)
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Events {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Option::<Vec<EventName>>::deserialize(d)?;
        match names {
            None => Ok(Events::default()),
            Some(names) if names.is_empty() => Err(D::Error::custom(
                "events must be a non-empty list of ADDED, MODIFIED, DELETED",
            )),
            Some(names) => Ok(Events(names.into_iter().map(|n| n.0).collect())),
        }
    }
}

impl WatchConfig {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Check `config`: each problem as `(field without the `config.` prefix, message naming
/// `config.<field>`)`; list items are `events.1`.
pub fn parse(config: &Json) -> Result<WatchConfig, Vec<(String, String)>> {
    let cfg: WatchConfig = decode_config(config, |field| match field {
        "version" => Some("e.g. v1"),
        "kind" => Some("e.g. ConfigMap, or the kind of a CRD"),
        _ => None,
    })?;
    let mut errs = Vec::new();
    if cfg.group.contains('/') {
        errs.push((
            "group",
            format!(
                "group `{}` must not contain `/`; put the version in `version`",
                cfg.group
            ),
        ));
    }
    if cfg.version.trim().is_empty() {
        errs.push(("version", "missing `version` (e.g. v1)".to_string()));
    } else if cfg.version.contains('/') {
        errs.push((
            "version",
            format!(
                "version `{}` must not contain `/`; put the group in `group`",
                cfg.version
            ),
        ));
    }
    if cfg.kind.trim().is_empty() {
        errs.push((
            "kind",
            "missing `kind` (e.g. ConfigMap, or the kind of a CRD)".to_string(),
        ));
    }
    if errs.is_empty() {
        Ok(cfg)
    } else {
        // The messages name the field themselves, as `config.<field>: ...`.
        Err(errs
            .into_iter()
            .map(|(f, m)| (f.to_string(), format!("config.{f}: {m}")))
            .collect())
    }
}

/// What the sensor knows of one object.
#[derive(Debug, Clone, PartialEq)]
struct Known {
    rv: String,
    object: Json,
}

/// Known objects by uid, as kept in the checkpoint.
#[derive(Debug, Default)]
struct State {
    known: BTreeMap<String, Known>,
}

impl State {
    /// The state a checkpoint holds; `Err` (what is wrong) for one of another shape.
    fn load(cp: Option<Json>) -> Result<State, String> {
        let mut known = BTreeMap::new();
        let Some(cp) = cp else {
            return Ok(State { known });
        };
        let Some(Json::Object(objects)) = cp.get("objects") else {
            return Err("it has no `objects` map".to_string());
        };
        {
            for (uid, v) in objects {
                let rv = v
                    .get("rv")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                let object = v.get("object").cloned().unwrap_or(Json::Null);
                known.insert(uid.clone(), Known { rv, object });
            }
        }
        Ok(State { known })
    }

    fn to_json(&self) -> Json {
        let full = self.known.len() <= FULL_OBJECTS_MAX;
        let objects: Map<String, Json> = self
            .known
            .iter()
            .map(|(uid, k)| {
                let object = if full {
                    k.object.clone()
                } else {
                    json!({"metadata": k.object.get("metadata").cloned().unwrap_or(Json::Null)})
                };
                (uid.clone(), json!({"rv": k.rv, "object": object}))
            })
            .collect();
        json!({"objects": objects})
    }
}

/// The event to emit when `obj` is seen (listed or applied): `None` when unchanged.
fn classify(state: &State, uid: &str, rv: &str) -> Option<&'static str> {
    match state.known.get(uid) {
        None => Some("ADDED"),
        Some(k) if k.rv != rv => Some("MODIFIED"),
        Some(_) => None,
    }
}

/// An object as JSON without `managedFields` (noise, and large).
fn object_json(obj: &DynamicObject) -> Json {
    let mut v = serde_json::to_value(obj).unwrap_or(Json::Null);
    if let Some(meta) = v.get_mut("metadata").and_then(Json::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

struct Run<'a> {
    ctx: &'a SensorContext,
    cfg: &'a WatchConfig,
    state: State,
}

impl Run<'_> {
    /// Emit `event` for `object` (when selected) and record the new state durably.
    /// `Ok(false)` when shutdown came first.
    async fn emit(&mut self, event: &str, object: Json) -> Result<bool, SensorError> {
        if self.cfg.events.contains(event) {
            let meta = object.get("metadata");
            let payload = json!({
                "event": event,
                "object": object,
                "cluster": self.cfg.cluster,
                "kind": self.cfg.kind,
                "name": meta.and_then(|m| m.get("name")).cloned().unwrap_or(Json::Null),
                "namespace": meta.and_then(|m| m.get("namespace")).cloned().unwrap_or(Json::Null),
            });
            if emit_with_retry(self.ctx, payload).await?.is_none() {
                return Ok(false);
            }
        }
        self.ctx.save_checkpoint(&self.state.to_json()).await?;
        Ok(true)
    }

    /// An object seen in a list or an Apply event.
    async fn seen(&mut self, obj: &DynamicObject) -> Result<bool, SensorError> {
        let (Some(uid), Some(rv)) = (
            obj.metadata.uid.clone(),
            obj.metadata.resource_version.clone(),
        ) else {
            return Ok(true);
        };
        let Some(event) = classify(&self.state, &uid, &rv) else {
            return Ok(true);
        };
        let object = object_json(obj);
        self.state.known.insert(
            uid,
            Known {
                rv,
                object: object.clone(),
            },
        );
        self.emit(event, object).await
    }

    /// An object that is gone.
    async fn gone(&mut self, uid: &str, last: Json) -> Result<bool, SensorError> {
        self.state.known.remove(uid);
        self.emit("DELETED", last).await
    }
}

#[async_trait]
impl Sensor for KubernetesWatchSensor {
    fn kind(&self) -> &'static str {
        "kubernetes.watch"
    }

    fn default_trigger(&self) -> &'static str {
        "kubernetes.resource"
    }

    fn validate(&self, config: &Json) -> Vec<(String, String)> {
        parse(config).err().unwrap_or_default()
    }

    fn reference(&self) -> Reference {
        Reference::settings::<WatchConfig>(
            "Watches the objects of one kind on a cluster (custom resources too) and emits \
             `kubernetes.resource` for every `ADDED`, `MODIFIED` or `DELETED` object, without \
             duplicates or gaps across restarts.",
        )
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let cfg = parse(&ctx.config).map_err(|e| {
            SensorError(e.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "))
        })?;
        let api_version = cfg.api_version();
        let client = crate::k8s::Clusters::from_content(&ctx.content)
            .client(Some(&cfg.cluster))
            .await
            .map_err(|e| SensorError(e.0))?;
        let (ar, caps) = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(()),
            r = crate::k8s::resolve(&client, &api_version, &cfg.kind) => r.map_err(|e| SensorError(format!("cluster `{}`: {} (retrying)", cfg.cluster, e.0)))?,
        };
        let api: Api<DynamicObject> = match (&cfg.namespace, crate::k8s::namespaced(&caps)) {
            (Some(ns), true) => Api::namespaced_with(client, ns, &ar),
            (Some(_), false) => {
                return Err(SensorError(format!(
                    "config.namespace: kind `{}` is cluster-scoped; remove `namespace`",
                    cfg.kind
                )))
            }
            (None, _) => Api::all_with(client, &ar),
        };
        let mut wc = watcher::Config::default();
        if let Some(l) = &cfg.label_selector {
            wc = wc.labels(l);
        }
        if let Some(f) = &cfg.field_selector {
            wc = wc.fields(f);
        }
        let mut stream = Box::pin(watcher::watcher(api, wc));
        let mut run = Run {
            ctx: &ctx,
            cfg: &cfg,
            state: State::load(ctx.checkpoint()?).map_err(|e| ctx.unreadable_checkpoint(&e))?,
        };
        let mut listed: BTreeSet<String> = BTreeSet::new();
        tracing::info!(sensor = %ctx.name, cluster = %cfg.cluster, kind = %cfg.kind, api_version = %api_version, "watching");
        loop {
            let item = tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                item = stream.next() => item,
            };
            let more = match item {
                None => return Err(SensorError("the watch ended".into())),
                Some(Err(watcher::Error::WatchError(s))) if s.code == 410 => {
                    tracing::info!(sensor = %ctx.name, "watch expired (410 Gone); relisting");
                    true
                }
                Some(Err(e)) => {
                    return Err(SensorError(format!(
                        "cluster `{}`: watching {} {}: {}",
                        cfg.cluster,
                        api_version,
                        cfg.kind,
                        watch_error(&e)
                    )))
                }
                Some(Ok(Event::Init)) => {
                    listed.clear();
                    true
                }
                Some(Ok(Event::InitApply(obj))) => {
                    if let Some(uid) = &obj.metadata.uid {
                        listed.insert(uid.clone());
                    }
                    run.seen(&obj).await?
                }
                Some(Ok(Event::InitDone)) => {
                    let gone: Vec<(String, Json)> = run
                        .state
                        .known
                        .iter()
                        .filter(|(uid, _)| !listed.contains(*uid))
                        .map(|(uid, k)| (uid.clone(), k.object.clone()))
                        .collect();
                    let mut more = true;
                    for (uid, last) in gone {
                        more = run.gone(&uid, last).await?;
                        if !more {
                            break;
                        }
                    }
                    more
                }
                Some(Ok(Event::Apply(obj))) => run.seen(&obj).await?,
                Some(Ok(Event::Delete(obj))) => match obj.metadata.uid.clone() {
                    Some(uid) => run.gone(&uid, object_json(&obj)).await?,
                    None => true,
                },
            };
            if !more {
                return Ok(());
            }
        }
    }
}

/// A watcher error with the API server's reason.
fn watch_error(e: &watcher::Error) -> String {
    match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => crate::k8s::describe(k),
        watcher::Error::WatchError(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(c: Json) -> Vec<String> {
        parse(&c)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    }

    #[test]
    fn config_is_checked_field_by_field() {
        let ok = parse(&json!({"group": "dbaas.squall.dev", "version": "v1", "kind": "Database"}))
            .expect("valid");
        assert_eq!(ok.cluster, "default");
        assert_eq!(ok.api_version(), "dbaas.squall.dev/v1");
        assert_eq!(ok.events.0.len(), 3);
        assert_eq!(
            parse(&json!({"version": "v1", "kind": "ConfigMap"})).map(|c| c.api_version()),
            Ok("v1".to_string())
        );
        assert_eq!(fields(json!({"version": "v1"})), ["kind"]);
        assert_eq!(fields(json!({"kind": "X"})), ["version"]);
        assert_eq!(
            fields(json!({"version": "v1", "kind": "X", "events": ["ADDED", "CHANGED"]})),
            ["events.1"]
        );
        assert_eq!(
            fields(json!({"version": "v1", "kind": "X", "events": []})),
            ["events"]
        );
        assert_eq!(
            fields(json!({"version": "v1", "kind": "X", "namespace": 3})),
            ["namespace"]
        );
        assert_eq!(
            fields(json!({"version": "v1", "kind": "X", "lables": "a=b"})),
            ["lables"]
        );
    }

    #[test]
    fn diff_by_uid_and_resource_version() {
        let mut s = State::default();
        assert_eq!(classify(&s, "u1", "5"), Some("ADDED"));
        s.known.insert(
            "u1".into(),
            Known {
                rv: "5".into(),
                object: json!({"metadata": {"name": "a"}}),
            },
        );
        assert_eq!(classify(&s, "u1", "5"), None);
        assert_eq!(classify(&s, "u1", "6"), Some("MODIFIED"));
        let back = State::load(Some(s.to_json())).unwrap();
        assert!(State::load(Some(json!({"objects": []}))).is_err());
        assert!(State::load(Some(json!({"resource_version": "3"}))).is_err());
        assert_eq!(back.known, s.known);
    }
}
