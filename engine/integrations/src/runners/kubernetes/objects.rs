//! `get`, `list`, `apply`, `create`, `delete`, `patch` and `patch_status`.

use super::{api_error, identity, is_not_found, manifests, Kind, Outcome, Params};
use crate::runners::RunContext;
use kube::api::{
    DeleteParams, DynamicObject, ListParams, Patch as KPatch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use squall_core::model::Json;
use std::time::Duration;

/// Field manager of server-side apply and patches.
pub const FIELD_MANAGER: &str = "squall";

/// Default bound on `delete` with `wait: true`, in seconds.
const DELETE_WAIT_TIMEOUT: f64 = 120.0;

squall_core::work_runner!(
    /// `kubernetes.get`: one object by `api_version`, `kind`, `name` (and `namespace`).
    Get, "kubernetes.get", get
);
squall_core::work_runner!(
    /// `kubernetes.list`: objects of a kind; result `{items, count}`.
    List, "kubernetes.list", list
);
squall_core::work_runner!(
    /// `kubernetes.apply`: server-side apply of `manifest`; result `{objects, count}`.
    Apply, "kubernetes.apply", apply
);
squall_core::work_runner!(
    /// `kubernetes.create`: create the objects of `manifest`; result `{objects, count}`.
    Create, "kubernetes.create", create
);
squall_core::work_runner!(
    /// `kubernetes.delete`: delete one object, optionally waiting until it is gone.
    Delete, "kubernetes.delete", delete
);
squall_core::work_runner!(
    /// `kubernetes.patch`: merge (default), JSON or strategic-merge patch of one object.
    Patch, "kubernetes.patch", patch
);
squall_core::work_runner!(
    /// `kubernetes.patch_status`: merge patch of one object's `status` subresource.
    PatchStatus, "kubernetes.patch_status", patch_status
);

/// The kind named by `api_version` and `kind`, resolved on the cluster.
async fn kind_of(ctx: &RunContext, p: &Params<'_>) -> Result<Kind, String> {
    Kind::resolve(ctx, p.str("api_version")?, p.str("kind")?).await
}

async fn get(ctx: &RunContext) -> Outcome {
    let p = Params::of(ctx);
    let (name, ns) = (p.str("name")?, p.opt_str("namespace")?);
    let k = kind_of(ctx, &p).await?;
    let obj = k
        .api(ns)
        .get(name)
        .await
        .map_err(|e| api_error(&format!("get {}", k.describe(name, ns)), &e))?;
    Ok(k.to_json(&obj))
}

async fn list(ctx: &RunContext) -> Outcome {
    let p = Params::of(ctx);
    let ns = p.opt_str("namespace")?;
    let k = kind_of(ctx, &p).await?;
    let mut lp = ListParams::default();
    if let Some(l) = p.opt_str("label_selector")? {
        lp = lp.labels(l);
    }
    if let Some(f) = p.opt_str("field_selector")? {
        lp = lp.fields(f);
    }
    if let Some(n) = p.int("limit")? {
        lp = lp.limit(u32::try_from(n).unwrap_or(u32::MAX));
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
async fn targets(ctx: &RunContext, docs: &[Json]) -> Result<Vec<(Kind, Option<String>)>, String> {
    let default_ns = Params::of(ctx).opt_str("namespace")?;
    let mut out = Vec::new();
    for d in docs {
        let (api_version, kind, _, ns) = identity(d);
        let k = Kind::resolve(ctx, &api_version, &kind).await?;
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
    let p = Params::of(ctx);
    let docs = manifests(p.value("manifest"), false)?;
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    if p.bool("force_conflicts", false)? {
        pp = pp.force();
    }
    let mut objects = Vec::new();
    for (doc, (k, ns)) in docs.iter().zip(targets(ctx, &docs).await?) {
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
    let p = Params::of(ctx);
    let docs = manifests(p.value("manifest"), true)?;
    let pp = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let mut objects = Vec::new();
    for (doc, (k, ns)) in docs.iter().zip(targets(ctx, &docs).await?) {
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
    let p = Params::of(ctx);
    let (name, ns) = (p.str("name")?, p.opt_str("namespace")?);
    let policy = match p.opt_str("propagation_policy")? {
        None => None,
        Some("Foreground") => Some(PropagationPolicy::Foreground),
        Some("Background") => Some(PropagationPolicy::Background),
        Some("Orphan") => Some(PropagationPolicy::Orphan),
        Some(other) => {
            return Err(format!(
                "parameter `propagation_policy` must be Foreground, Background or Orphan, got {other:?}"
            ))
        }
    };
    let wait = p.bool("wait", false)?;
    let timeout = p
        .number("timeout", Some(DELETE_WAIT_TIMEOUT))?
        .unwrap_or(DELETE_WAIT_TIMEOUT);
    let missing_ok = p.bool("ignore_not_found", false)?;
    let k = kind_of(ctx, &p).await?;
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
            Duration::from_secs_f64(timeout),
            await_condition(api, name, conditions::is_deleted(&uid)),
        )
        .await
        {
            Ok(Ok(_)) => gone = true,
            Ok(Err(e)) => return Err(format!("waiting for the deletion of {what}: {e}")),
            Err(_) => {
                return Err(format!(
                    "{what} was still there after {timeout} s (finalizers?)"
                ))
            }
        }
    }
    Ok(
        json!({"name": name, "kind": k.ar.kind, "namespace": if k.namespaced() { ns.or(Some(super::DEFAULT_NAMESPACE)) } else { None }, "deleted": true, "gone": gone}),
    )
}

/// The `patch` parameter as JSON: an object or array, or a YAML/JSON string.
fn patch_body(p: &Params<'_>) -> Result<Json, String> {
    match p.value("patch") {
        None => Err("parameter `patch` is required".into()),
        Some(Json::String(s)) => serde_yaml::from_str::<Json>(s)
            .map_err(|e| format!("parameter `patch` is not valid YAML or JSON: {e}")),
        Some(v) => Ok(v.clone()),
    }
}

async fn patch(ctx: &RunContext) -> Outcome {
    let p = Params::of(ctx);
    let (name, ns) = (p.str("name")?, p.opt_str("namespace")?);
    let body = patch_body(&p)?;
    let kind = p.opt_str("patch_type")?.unwrap_or("merge");
    let k = kind_of(ctx, &p).await?;
    let what = format!("patch {}", k.describe(name, ns));
    let api = k.api(ns);
    let pp = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let obj = match kind {
        "merge" => api.patch(name, &pp, &KPatch::Merge(&body)).await,
        "strategic" => api.patch(name, &pp, &KPatch::Strategic(&body)).await,
        "json" => {
            if !body.is_array() {
                return Err("a JSON patch (`patch_type: json`) must be a list of operations like [{op: replace, path: /spec/x, value: 1}]".into());
            }
            json_patch(&k, ns, name, &pp, &body).await
        }
        other => return Err(format!("parameter `patch_type` must be merge, json or strategic, got {other:?}")),
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
    let p = Params::of(ctx);
    let (name, ns) = (p.str("name")?, p.opt_str("namespace")?);
    let mut body = patch_body(&p)?;
    if !body.is_object() {
        return Err("parameter `patch` of patch_status must be an object".into());
    }
    // `{status: {...}}` is the documented form; a bare status object is accepted too.
    if body.get("status").is_none() {
        body = json!({ "status": body });
    }
    let k = kind_of(ctx, &p).await?;
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
