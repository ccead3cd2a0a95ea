//! `kubernetes.*`: runners that act on any Kubernetes kind, found by discovery, on a
//! cluster named in `squall.yaml` (`clusters:`).
//!
//! | runner | does |
//! |---|---|
//! | `kubernetes.get` | read one object |
//! | `kubernetes.list` | list objects, with label and field selectors |
//! | `kubernetes.apply` | server-side apply (field manager `squall`) of one or several objects |
//! | `kubernetes.create` | create one or several objects |
//! | `kubernetes.delete` | delete one object (propagation policy, optionally wait until gone) |
//! | `kubernetes.patch` | merge, JSON or strategic-merge patch |
//! | `kubernetes.patch_status` | merge patch of the `status` subresource |
//! | `kubernetes.wait` | wait until a condition or a rhai predicate over the object holds |
//! | `kubernetes.logs` | a pod's logs |
//! | `kubernetes.run_job` | run a Job to completion (see [`job`]) |
//!
//! # Parameters
//!
//! The runners read their parameters directly (the shipped `kubernetes` pack declares them):
//! `cluster` (a name under `clusters:`; the default cluster when absent), `api_version`
//! (`v1`, `apps/v1`, `example.com/v1`...), `kind`, `name`, `namespace` (default `default`
//! for namespaced kinds; for `list`, all namespaces), `label_selector`, `field_selector`.
//! `apply` and `create` take `manifest`: an object, a list of objects, or a YAML string
//! with one or several documents (`---`).
//!
//! # Results and errors
//!
//! The object(s) as JSON (`apiVersion` and `kind` always filled). A failure carries the API
//! server's message with its code and reason, e.g. `pods "x" not found (404 NotFound)` or
//! `jobs.batch is forbidden: User "limited" cannot create resource ... (403 Forbidden)`. An
//! unknown kind fails naming it. Every runner stops when the execution is canceled.

use super::{RunContext, Runner};
use crate::k8s::{describe, namespaced, resolve};
use kube::api::{Api, DynamicObject};
use kube::discovery::{ApiCapabilities, ApiResource};
use kube::Client;
use serde_json::json;
use squall_core::model::Json;
pub(crate) use squall_core::runner::Outcome;
use std::sync::Arc;

pub mod job;
mod objects;
mod wait;

pub use job::RunJob;
pub use objects::{Apply, Create, Delete, Get, List, Patch, PatchStatus};
pub use wait::{Logs, Wait};

/// Namespace used for namespaced kinds when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Every kubernetes runner, for [`super::Registry::builtin`].
pub fn runners() -> Vec<Arc<dyn Runner>> {
    vec![
        Arc::new(Get),
        Arc::new(List),
        Arc::new(Apply),
        Arc::new(Create),
        Arc::new(Delete),
        Arc::new(Patch),
        Arc::new(PatchStatus),
        Arc::new(Wait),
        Arc::new(Logs),
        Arc::new(RunJob),
    ]
}

/// A resolved kind on one cluster.
pub(crate) struct Kind {
    /// Client of the cluster.
    pub client: Client,
    /// The resource found by discovery.
    pub ar: ApiResource,
    /// Its capabilities (scope, subresources).
    pub caps: ApiCapabilities,
}

impl Kind {
    /// Resolve `api_version`/`kind` on the cluster named `cluster` (the default one when
    /// `None`).
    pub async fn resolve(
        ctx: &RunContext,
        cluster: Option<&str>,
        api_version: &str,
        kind: &str,
    ) -> Result<Kind, String> {
        let client = client(ctx, cluster).await?;
        let (ar, caps) = resolve(&client, api_version, kind).await.map_err(|e| e.0)?;
        Ok(Kind { client, ar, caps })
    }

    /// Whether objects of this kind live in namespaces.
    pub fn namespaced(&self) -> bool {
        namespaced(&self.caps)
    }

    /// The API for one object: in `namespace` (else `default`) for a namespaced kind.
    pub fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        if self.namespaced() {
            Api::namespaced_with(
                self.client.clone(),
                namespace.unwrap_or(DEFAULT_NAMESPACE),
                &self.ar,
            )
        } else {
            Api::all_with(self.client.clone(), &self.ar)
        }
    }

    /// The API for listing: one namespace when given, else all of them.
    pub fn list_api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) if self.namespaced() => {
                Api::namespaced_with(self.client.clone(), ns, &self.ar)
            }
            _ => Api::all_with(self.client.clone(), &self.ar),
        }
    }

    /// `kind "name"` (with the namespace), for messages.
    pub fn describe(&self, name: &str, namespace: Option<&str>) -> String {
        if self.namespaced() {
            format!(
                "{} {name:?} in namespace {:?}",
                self.ar.kind,
                namespace.unwrap_or(DEFAULT_NAMESPACE)
            )
        } else {
            format!("{} {name:?}", self.ar.kind)
        }
    }

    /// `obj` as JSON with `apiVersion` and `kind` filled in (list items lack them).
    pub fn to_json(&self, obj: &DynamicObject) -> Json {
        let mut v = serde_json::to_value(obj).unwrap_or(Json::Null);
        if let Some(m) = v.as_object_mut() {
            m.insert("apiVersion".into(), json!(self.ar.api_version));
            m.insert("kind".into(), json!(self.ar.kind));
            if let Some(meta) = m.get_mut("metadata").and_then(Json::as_object_mut) {
                // Bulky bookkeeping of server-side apply, rarely wanted in a result.
                meta.remove("managedFields");
            }
        }
        v
    }
}

/// The client of the cluster named `cluster` (the `cluster` parameter); the default
/// cluster when `None`.
pub(crate) async fn client(ctx: &RunContext, cluster: Option<&str>) -> Result<Client, String> {
    crate::k8s::Clusters::from_content(&ctx.content)
        .client(cluster)
        .await
        .map_err(|e| e.0)
}

/// A kube error as a message with what was being done.
pub(crate) fn api_error(doing: &str, e: &kube::Error) -> String {
    format!("{doing}: {}", describe(e))
}

/// Whether `e` is the API server's 404.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The objects of a `manifest` parameter: an object, an array of objects, or a YAML (or
/// JSON) string with one or several documents. Empty documents are skipped; each object
/// needs `apiVersion`, `kind` and `metadata.name` (or `metadata.generateName` when
/// `generate_name_ok`).
pub(crate) fn manifests(value: Option<&Json>, generate_name_ok: bool) -> Result<Vec<Json>, String> {
    let docs: Vec<Json> = match value {
        None => return Err("parameter `manifest` is required".into()),
        Some(Json::Object(_)) => vec![value.cloned().unwrap_or(Json::Null)],
        Some(Json::Array(items)) => items.clone(),
        Some(Json::String(text)) => {
            let mut docs = Vec::new();
            for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
                let v: Json = serde::Deserialize::deserialize(doc)
                    .map_err(|e| format!("manifest is not valid YAML (document {}): {e}", i + 1))?;
                if !v.is_null() {
                    docs.push(v);
                }
            }
            docs
        }
        Some(other) => {
            return Err(format!(
                "parameter `manifest` must be an object or a YAML string, got {other}"
            ))
        }
    };
    if docs.is_empty() {
        return Err("manifest holds no object".into());
    }
    for (i, d) in docs.iter().enumerate() {
        let at = if docs.len() > 1 {
            format!("manifest document {}", i + 1)
        } else {
            "manifest".to_string()
        };
        let Some(m) = d.as_object() else {
            return Err(format!("{at} is not an object: {d}"));
        };
        for key in ["apiVersion", "kind"] {
            let present = m
                .get(key)
                .and_then(Json::as_str)
                .is_some_and(|s| !s.is_empty());
            if !present {
                return Err(format!("{at} has no `{key}`"));
            }
        }
        let meta = m.get("metadata");
        let has = |k: &str| {
            meta.and_then(|md| md.get(k))
                .and_then(Json::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        let named = has("name") || (generate_name_ok && has("generateName"));
        if !named {
            return Err(format!(
                "{at} ({}) has no `metadata.name`",
                m.get("kind").and_then(Json::as_str).unwrap_or("?")
            ));
        }
    }
    Ok(docs)
}

/// `apiVersion`, `kind`, name (or generateName) and namespace of a checked manifest.
pub(crate) fn identity(doc: &Json) -> (String, String, String, Option<String>) {
    let s = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or_default().to_string();
    let meta = doc.get("metadata");
    let name = s(meta.and_then(|m| m.get("name")));
    let name = if name.is_empty() {
        s(meta.and_then(|m| m.get("generateName")))
    } else {
        name
    };
    let ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Json::as_str)
        .map(str::to_string);
    (s(doc.get("apiVersion")), s(doc.get("kind")), name, ns)
}
