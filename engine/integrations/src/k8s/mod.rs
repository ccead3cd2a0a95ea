//! Kubernetes clusters by name (`clusters:` in squall.yaml), clients for them, and
//! discovery of any group/version/kind — so a custom resource needs no Rust code.
//! Used by the `kubernetes.watch` sensor and the kubernetes runners.

use indexmap::IndexMap;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};
use squall_core::content::{expand_home, ClusterSettings, Content};
use squall_core::locks::MutexExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The cluster used when an action or sensor names none.
pub const DEFAULT_CLUSTER: &str = "default";

/// Why a cluster could not be reached or a kind not found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct KubeError(pub String);

/// Where a named cluster's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Kubeconfig {
        path: Option<PathBuf>,
        context: Option<String>,
    },
    InCluster,
}

fn cache() -> &'static Mutex<HashMap<Source, Client>> {
    static C: OnceLock<Mutex<HashMap<Source, Client>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The clusters named in squall.yaml, resolved against the content root.
#[derive(Debug, Clone, Default)]
pub struct Clusters {
    /// `clusters:` from squall.yaml.
    pub map: IndexMap<String, ClusterSettings>,
    /// The content root (relative kubeconfig paths start here).
    pub root: PathBuf,
}

impl Clusters {
    /// The clusters of loaded content.
    pub fn from_content(content: &Content) -> Clusters {
        Clusters {
            map: content.settings.clusters.clone(),
            root: content.root.clone(),
        }
    }

    /// A client for cluster `name` (`None`: the default cluster). Clients are cached per
    /// kubeconfig file and context.
    pub async fn client(&self, name: Option<&str>) -> Result<Client, KubeError> {
        client(&self.map, &self.root, name).await
    }
}

fn source(
    clusters: &IndexMap<String, ClusterSettings>,
    root: &Path,
    name: &str,
) -> Result<Source, KubeError> {
    match clusters.get(name) {
        Some(ClusterSettings {
            in_cluster: true, ..
        }) => Ok(Source::InCluster),
        Some(c) => Ok(Source::Kubeconfig {
            path: c.kubeconfig.as_ref().map(|k| root.join(expand_home(k))),
            context: c.context.clone(),
        }),
        // Without a `clusters:` entry, `default` means the usual kubeconfig lookup
        // (KUBECONFIG, ~/.kube/config, then in-cluster), like kubectl.
        None if name == DEFAULT_CLUSTER => Ok(Source::Kubeconfig {
            path: None,
            context: None,
        }),
        None => {
            let known: Vec<&str> = clusters.keys().map(String::as_str).collect();
            Err(KubeError(format!(
                "cluster `{name}` is not configured: add it under `clusters:` in squall.yaml (configured: {})",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            )))
        }
    }
}

async fn client(
    clusters: &IndexMap<String, ClusterSettings>,
    root: &Path,
    name: Option<&str>,
) -> Result<Client, KubeError> {
    let name = name.unwrap_or(DEFAULT_CLUSTER);
    let src = source(clusters, root, name)?;
    if let Some(c) = cache().locked().get(&src) {
        return Ok(c.clone());
    }
    let config = match &src {
        Source::InCluster => Config::incluster()
            .map_err(|e| KubeError(format!("cluster `{name}`: in-cluster config: {e}")))?,
        Source::Kubeconfig {
            path: Some(p),
            context,
        } => {
            let kc = Kubeconfig::read_from(p).map_err(|e| {
                KubeError(format!(
                    "cluster `{name}`: cannot read kubeconfig {}: {e}",
                    p.display()
                ))
            })?;
            let opts = KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            Config::from_custom_kubeconfig(kc, &opts)
                .await
                .map_err(|e| {
                    KubeError(format!("cluster `{name}`: kubeconfig {}: {e}", p.display()))
                })?
        }
        Source::Kubeconfig {
            path: None,
            context,
        } => {
            let opts = KubeConfigOptions {
                context: context.clone(),
                ..Default::default()
            };
            match Config::from_kubeconfig(&opts).await {
                Ok(c) => c,
                Err(_) => Config::infer().await.map_err(|e| {
                    KubeError(format!(
                        "cluster `{name}`: no kubeconfig found and not in a cluster: {e}"
                    ))
                })?,
            }
        }
    };
    let client =
        Client::try_from(config).map_err(|e| KubeError(format!("cluster `{name}`: {e}")))?;
    cache().locked().insert(src, client.clone());
    Ok(client)
}

/// Find `kind` in `api_version` (`group/version`, or `v1` for the core group) on the
/// cluster. Errors name the kind and suggest checking the CRD.
pub async fn resolve(
    client: &Client,
    api_version: &str,
    kind: &str,
) -> Result<(ApiResource, ApiCapabilities), KubeError> {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), api_version.to_string()),
    };
    let discovery = Discovery::new(client.clone())
        .filter(&[group.as_str()])
        .run()
        .await
        .map_err(|e| {
            KubeError(format!(
                "discovery of {api_version} failed: {}",
                describe(&e)
            ))
        })?;
    for g in discovery.groups() {
        for (ar, caps) in g.versioned_resources(&version) {
            if ar.kind == kind {
                return Ok((ar, caps));
            }
        }
    }
    Err(KubeError(format!(
        "kind `{kind}` in `{api_version}` is not served by the cluster (is its CRD installed? check `kubectl api-resources`)"
    )))
}

/// Whether resources of this kind live in namespaces.
pub fn namespaced(caps: &ApiCapabilities) -> bool {
    caps.scope == Scope::Namespaced
}

/// A kube error as a message with the API server's own reason when it gave one.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}
