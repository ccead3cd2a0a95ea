//! A loaded action: metadata plus where it came from.

use crate::model::ActionMeta;
use crate::workflow::Workflow;
use std::path::PathBuf;
use std::sync::Arc;

/// An action ready to run: its metadata, its reference and the folder its files are in.
/// A workflow is an action too; then `workflow` holds the compiled chain.
#[derive(Debug)]
pub struct Action {
    /// `pack.name`.
    pub reference: String,
    /// Pack the action belongs to.
    pub pack: String,
    /// The metadata as written (for a workflow: synthesised from the workflow file).
    pub meta: ActionMeta,
    /// The metadata (or workflow) file.
    pub file: PathBuf,
    /// The folder of that file; entry points are relative to it.
    pub dir: PathBuf,
    /// The compiled chain when the runner is `action-chain`.
    pub workflow: Option<Arc<Workflow>>,
}

impl Action {
    /// The runner's settings (see [`ActionMeta::settings`]) decoded into its typed
    /// settings struct `T`.
    pub fn settings<T: serde::de::DeserializeOwned>(
        &self,
    ) -> Result<T, crate::config::ConfigError> {
        let map: serde_json::Map<String, crate::model::Json> = self
            .meta
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::config::decode(&crate::model::Json::Object(map))
    }

    /// The entry point's full path, when the action has one.
    pub fn entry_point_path(&self) -> Option<PathBuf> {
        self.meta.entry_point.as_ref().map(|e| self.dir.join(e))
    }
}
