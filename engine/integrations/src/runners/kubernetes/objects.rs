//! `get`, `list`, `apply`, `create`, `delete`, `patch` and `patch_status`.

use super::{api_error, identity, is_not_found, manifests, Kind, Outcome};
use crate::runners::params::decode;
use crate::runners::RunContext;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch as KPatch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::runtime::wait::{await_condition, conditions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use squall_core::model::Json;
use std::time::Duration;

/// Field manager of server-side apply and patches.
pub const FIELD_MANAGER: &str = "squall";

/// Default bound on `delete` with `wait: true`, in seconds.
const DELETE_WAIT_TIMEOUT: f64 = 120.0;

squall_core::work_runner!(
    /// `kubernetes.get`: one object by `api_version`, `kind`, `name` (and `namespace`).
    Get, "kubernetes.get", get, ObjectParams,
    "Reads one object of any kind the cluster serves; the result is the object."
);
squall_core::work_runner!(
    /// `kubernetes.list`: objects of a kind; result `{items, count}`.
    List, "kubernetes.list", list, ListParameters,
    "Lists the objects of a kind, in one namespace or all, with label and field selectors; the result is `{items, count}`."
);
squall_core::work_runner!(
    /// `kubernetes.apply`: server-side apply of `manifest`; result `{objects, count}`.
    Apply, "kubernetes.apply", apply, ApplyParams,
    "Server-side applies (field manager `squall`) the objects of a manifest; the result is `{objects, count}`."
);
squall_core::work_runner!(
    /// `kubernetes.create`: create the objects of `manifest`; result `{objects, count}`.
    Create, "kubernetes.create", create, CreateParams,
    "Creates the objects of a manifest (`generateName` allowed); the result is `{objects, count}`."
);
squall_core::work_runner!(
    /// `kubernetes.delete`: delete one object, optionally waiting until it is gone.
    Delete, "kubernetes.delete", delete, DeleteParameters,
    "Deletes one object, optionally waiting until it is gone; the result is `{name, kind, namespace, deleted, gone}`."
);
squall_core::work_runner!(
    /// `kubernetes.patch`: merge (default), JSON or strategic-merge patch of one object.
    Patch, "kubernetes.patch", patch, PatchParameters,
    "Patches one object with a merge (default), JSON or strategic-merge patch; the result is the object."
);
squall_core::work_runner!(
    /// `kubernetes.patch_status`: merge patch of one object's `status` subresource.
    PatchStatus, "kubernetes.patch_status", patch_status, PatchStatusParams,
    "Merge-patches the `status` subresource of one object (a custom resource's, typically); the result is the object."
);

/// Parameters of `kubernetes.get` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectParams {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// API version: `v1`, `apps/v1`, `example.com/v1`...
    pub api_version: String,
    /// Kind, as in manifests: `Pod`, `Deployment`, a custom resource's kind.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (`default` when absent; ignored for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: Option<String>,
}

/// Parameters of `kubernetes.list` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParameters {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// API version: `v1`, `apps/v1`, `example.com/v1`...
    pub api_version: String,
    /// Kind, as in manifests.
    pub kind: String,
    /// Only this namespace; all namespaces when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    /// A label selector (`app=web,tier in (db)`).
    #[serde(default)]
    pub label_selector: Option<String>,
    /// A field selector (`status.phase=Running`).
    #[serde(default)]
    pub field_selector: Option<String>,
    /// At most this many objects.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Parameters of `kubernetes.apply` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyParams {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// An object, a list of objects, or a YAML string of one or several documents.
    pub manifest: Json,
    /// Namespace of the objects whose manifest names none.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Take over fields managed by others instead of failing on a conflict.
    #[serde(default)]
    pub force_conflicts: bool,
}

/// Parameters of `kubernetes.create` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// An object, a list of objects, or a YAML string of one or several documents
    /// (`metadata.generateName` allowed).
    pub manifest: Json,
    /// Namespace of the objects whose manifest names none.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// What happens to the dependents of a deleted object.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum Propagation {
    /// Dependents first, then the object.
    Foreground,
    /// The object now, dependents by the garbage collector.
    Background,
    /// Dependents are kept.
    Orphan,
}

/// Parameters of `kubernetes.delete` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParameters {
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
    /// What happens to dependents; the kind's own policy when absent.
    #[serde(default)]
    pub propagation_policy: Option<Propagation>,
    /// Wait until the object is gone (its finalizers done).
    #[serde(default)]
    pub wait: bool,
    /// Seconds to wait when `wait` is true.
    #[serde(default = "delete_wait_timeout")]
    pub timeout: f64,
    /// Succeed when the object does not exist.
    #[serde(default)]
    pub ignore_not_found: bool,
}

fn delete_wait_timeout() -> f64 {
    DELETE_WAIT_TIMEOUT
}

/// How `kubernetes.patch` patches.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatchType {
    /// A JSON merge patch (RFC 7386).
    #[default]
    Merge,
    /// A JSON patch (RFC 6902): a list of operations.
    Json,
    /// A strategic-merge patch (built-in kinds only).
    Strategic,
}

/// Parameters of `kubernetes.patch` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchParameters {
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
    /// The patch: an object (a list for `json`), or a YAML or JSON string.
    pub patch: Json,
    /// `merge`, `json` or `strategic`.
    #[serde(default)]
    pub patch_type: PatchType,
}

/// Parameters of `kubernetes.patch_status` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchStatusParams {
    /// A cluster named under `clusters:` in `squall.yaml`; the default cluster when absent.
    #[serde(default)]
    pub cluster: Option<String>,
    /// API version: `example.com/v1`...
    pub api_version: String,
    /// Kind, as in manifests.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace (`default` when absent; ignored for cluster-scoped kinds).
    #[serde(default)]
    pub namespace: Option<String>,
    /// A merge patch of the status: `{status: {...}}`, or the status object itself.
    pub patch: Json,
}

/// `timeout` checked: a non-negative number of seconds.
pub(crate) fn seconds(timeout: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(timeout)
        .map_err(|_| format!("parameter `timeout` must be a non-negative number, got {timeout}"))
}

/// The kind named by `api_version` and `kind`, resolved on the cluster.
async fn kind_of(
    ctx: &RunContext,
    cluster: &Option<String>,
    api_version: &str,
    kind: &str,
) -> Result<Kind, String> {
    Kind::resolve(ctx, cluster.as_deref(), api_version, kind).await
}

async fn get(ctx: &RunContext) -> Outcome {
    let p: ObjectParams = decode(ctx)?;
    let (name, ns) = (p.name.as_str(), p.namespace.as_deref());
    let k = kind_of(ctx, &p.cluster, &p.api_version, &p.kind).await?;
    let obj = k
        .api(ns)
        .get(name)
        .await
        .map_err(|e| api_error(&format!("get {}", k.describe(name, ns)), &e))?;
    Ok(k.to_json(&obj))
}

async fn list(ctx: &RunContext) -> Outcome {
    let p: ListParameters = decode(ctx)?;
    let ns = p.namespace.as_deref();
    let k = kind_of(ctx, &p.cluster, &p.api_version, &p.kind).await?;
    let mut lp = ListParams::default();
    if let Some(l) = &p.label_selector {
        lp = lp.labels(l);
    }
    if let Some(f) = &p.field_selector {
        lp = lp.fields(f);
    }
    if let Some(n) = p.limit {
        lp = lp.limit(n);
    }
    let list = k
        .list_api(ns)
        .list(&lp)
        .await
        .map_err(|e| api_error(&format!("list {}", k.ar.plural), &e))?;
    let items: Vec<Json> = list.items.iter().map(|o| k.to_json(o)).collect();
    Ok(json!({"count": items.len(), "items": items}))
}

/// Each manifest with its resolved kind and target namespace.
async fn targets(
    ctx: &RunContext,
    docs: &[Json],
    cluster: Option<&str>,
    default_ns: Option<&str>,
) -> Result<Vec<(Kind, Option<String>)>, String> {
    let mut out = Vec::new();
    for d in docs {
        let (api_version, kind, _, ns) = identity(d);
        let k = Kind::resolve(ctx, cluster, &api_version, &kind).await?;
        let ns = if k.namespaced() {
            ns.or(default_ns.map(str::to_string))
        } else {
            None
        };
        out.push((k, ns));
    }
    Ok(out)
}

async fn apply(ctx: &RunContext) -> Outcome {
    let p: ApplyParams = decode(ctx)?;
    let docs = manifests(Some(&p.manifest), false)?;
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    if p.force_conflicts {
        pp = pp.force();
    }
    let mut objects = Vec::new();
    for (doc, (k, ns)) in docs
        .iter()
        .zip(targets(ctx, &docs, p.cluster.as_deref(), p.namespace.as_deref()).await?)
    {
        let (_, _, name, _) = identity(doc);
        let api = k.api(ns.as_deref());
        let obj = api
            .patch(&name, &pp, &KPatch::Apply(doc))
            .await
            .map_err(|e| api_error(&format!("apply {}", k.describe(&name, ns.as_deref())), &e))?;
        ctx.output.emit(
            "stdout",
            format!("{}/{} applied\n", k.ar.kind.to_lowercase(), name),
        );
        objects.push(k.to_json(&obj));
    }
    Ok(json!({"count": objects.len(), "objects": objects}))
}

async fn create(ctx: &RunContext) -> Outcome {
    let p: CreateParams = decode(ctx)?;
    let docs = manifests(Some(&p.manifest), true)?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut objects = Vec::new();
    for (doc, (k, ns)) in docs
        .iter()
        .zip(targets(ctx, &docs, p.cluster.as_deref(), p.namespace.as_deref()).await?)
    {
        let (_, _, name, _) = identity(doc);
        let obj: DynamicObject = serde_json::from_value(doc.clone())
            .map_err(|e| format!("manifest of {} {name:?}: {e}", k.ar.kind))?;
        let created =
            k.api(ns.as_deref()).create(&pp, &obj).await.map_err(|e| {
                api_error(&format!("create {}", k.describe(&name, ns.as_deref())), &e)
            })?;
        let created_name = created.metadata.name.clone().unwrap_or(name);
        ctx.output.emit(
            "stdout",
            format!("{}/{} created\n", k.ar.kind.to_lowercase(), created_name),
        );
        objects.push(k.to_json(&created));
    }
    Ok(json!({"count": objects.len(), "objects": objects}))
}

async fn delete(ctx: &RunContext) -> Outcome {
    let p: DeleteParameters = decode(ctx)?;
    let (name, ns) = (p.name.as_str(), p.namespace.as_deref());
    let policy = p.propagation_policy.map(|pp| match pp {
        Propagation::Foreground => PropagationPolicy::Foreground,
        Propagation::Background => PropagationPolicy::Background,
        Propagation::Orphan => PropagationPolicy::Orphan,
    });
    let (wait, timeout, missing_ok) = (p.wait, seconds(p.timeout)?, p.ignore_not_found);
    let k = kind_of(ctx, &p.cluster, &p.api_version, &p.kind).await?;
    let what = k.describe(name, ns);
    let api = k.api(ns);
    let dp = DeleteParams {
        propagation_policy: policy,
        ..Default::default()
    };
    let uid = match api.delete(name, &dp).await {
        Ok(either) => either.left().and_then(|o| o.metadata.uid),
        Err(e) if missing_ok && is_not_found(&e) => {
            return Ok(
                json!({"name": name, "kind": k.ar.kind, "namespace": ns, "deleted": false, "gone": true}),
            )
        }
        Err(e) => return Err(api_error(&format!("delete {what}"), &e)),
    };
    let mut gone = uid.is_none();
    if wait && !gone {
        ctx.output
            .emit("progress", format!("waiting until {what} is gone\n"));
        let uid = uid.unwrap_or_default();
        match tokio::time::timeout(
            timeout,
            await_condition(api, name, conditions::is_deleted(&uid)),
        )
        .await
        {
            Ok(Ok(_)) => gone = true,
            Ok(Err(e)) => return Err(format!("waiting for the deletion of {what}: {e}")),
            Err(_) => {
                return Err(format!(
                    "{what} was still there after {} s (finalizers?)",
                    timeout.as_secs_f64()
                ))
            }
        }
    }
    Ok(
        json!({"name": name, "kind": k.ar.kind, "namespace": if k.namespaced() { ns.or(Some(super::DEFAULT_NAMESPACE)) } else { None }, "deleted": true, "gone": gone}),
    )
}

/// The `patch` parameter as JSON: an object or array, or a YAML/JSON string.
fn patch_body(patch: &Json) -> Result<Json, String> {
    match patch {
        Json::String(s) => serde_yaml::from_str::<Json>(s)
            .map_err(|e| format!("parameter `patch` is not valid YAML or JSON: {e}")),
        v => Ok(v.clone()),
    }
}

async fn patch(ctx: &RunContext) -> Outcome {
    let p: PatchParameters = decode(ctx)?;
    let (name, ns) = (p.name.as_str(), p.namespace.as_deref());
    let body = patch_body(&p.patch)?;
    let k = kind_of(ctx, &p.cluster, &p.api_version, &p.kind).await?;
    let what = format!("patch {}", k.describe(name, ns));
    let api = k.api(ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let obj = match p.patch_type {
        PatchType::Merge => api.patch(name, &pp, &KPatch::Merge(&body)).await,
        PatchType::Strategic => api.patch(name, &pp, &KPatch::Strategic(&body)).await,
        PatchType::Json => {
            if !body.is_array() {
                return Err("a JSON patch (`patch_type: json`) must be a list of operations like [{op: replace, path: /spec/x, value: 1}]".into());
            }
            json_patch(&k, ns, name, &pp, &body).await
        }
    }
    .map_err(|e| api_error(&what, &e))?;
    Ok(k.to_json(&obj))
}

/// A JSON patch (RFC 6902), sent as is with its content type (kube's typed JSON patch
/// needs a feature this build does not enable).
async fn json_patch(
    k: &Kind,
    ns: Option<&str>,
    name: &str,
    pp: &PatchParams,
    ops: &Json,
) -> Result<DynamicObject, kube::Error> {
    let api = k.api(ns);
    let url = api.resource_url().to_string();
    let mut req = kube::core::Request::new(url)
        .patch(name, pp, &KPatch::Merge(ops))
        .map_err(kube::Error::BuildRequest)?;
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json-patch+json"),
    );
    k.client.request::<DynamicObject>(req).await
}

async fn patch_status(ctx: &RunContext) -> Outcome {
    let p: PatchStatusParams = decode(ctx)?;
    let (name, ns) = (p.name.as_str(), p.namespace.as_deref());
    let mut body = patch_body(&p.patch)?;
    if !body.is_object() {
        return Err("parameter `patch` of patch_status must be an object".into());
    }
    // `{status: {...}}` is the documented form; a bare status object is accepted too.
    if body.get("status").is_none() {
        body = json!({ "status": body });
    }
    let k = kind_of(ctx, &p.cluster, &p.api_version, &p.kind).await?;
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let obj = k
        .api(ns)
        .patch_status(name, &pp, &KPatch::Merge(&body))
        .await
        .map_err(|e| api_error(&format!("patch the status of {}", k.describe(name, ns)), &e))?;
    Ok(k.to_json(&obj))
}
