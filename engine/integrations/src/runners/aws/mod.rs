//! `aws.*`: runners that call AWS (RDS and STS) with the accounts of the aws pack's
//! configuration, `config/aws.yaml` (see [`crate::aws::config`]).
//!
//! | runner | does |
//! |---|---|
//! | `aws.rds.create_db_instance` | create a DB instance, or adopt a compatible existing one |
//! | `aws.rds.describe_db_instances` | one instance by identifier, or all matching filters |
//! | `aws.rds.modify_db_instance` | change class, storage, version, password, backups |
//! | `aws.rds.delete_db_instance` | delete, with a final snapshot unless skipped |
//! | `aws.rds.wait_db_instance` | poll (with backoff) until a status, or until deleted |
//! | `aws.sts.assume_role` | temporary credentials for a role |
//!
//! # Parameters
//!
//! Every runner takes `account` (a name under `accounts:` in `config/aws.yaml`; default
//! `default_account`, else `default`) and `region` (default: the account's region). The
//! other parameters are those of the shipped `aws` pack's actions (`packs/aws/actions`).
//!
//! # Results and errors
//!
//! The RDS runners return an *instance summary* (see [`rds::summary`]); the password
//! never appears in it. A failure names the action and carries AWS's error code and
//! message (`aws.rds_create_db_instance: InvalidParameterValue: ...`), or says which
//! endpoint could not be reached. Every runner stops when the execution is canceled.

use super::params::Params;
use super::{ActionOutcome, RunContext, Runner};
use squall_core::model::Json;
use std::future::Future;
use std::sync::Arc;

pub mod rds;
mod rds_wait;
pub mod sts;

pub(crate) use crate::aws::strings;
pub use crate::aws::{connect, Aws};
pub use rds::{CreateDbInstance, DeleteDbInstance, DescribeDbInstances, ModifyDbInstance};
pub use rds_wait::WaitDbInstance;
pub use sts::AssumeRole;

/// Every aws runner, for [`super::Registry::builtin`].
pub fn runners() -> Vec<Arc<dyn Runner>> {
    vec![
        Arc::new(CreateDbInstance),
        Arc::new(DescribeDbInstances),
        Arc::new(ModifyDbInstance),
        Arc::new(DeleteDbInstance),
        Arc::new(WaitDbInstance),
        Arc::new(AssumeRole),
    ]
}

pub(crate) use squall_core::runner::Outcome;

/// [`super::guarded`], with a failure prefixed by the action's reference (AWS messages do
/// not say which call they answer).
pub(crate) async fn guarded(
    ctx: &RunContext,
    work: impl Future<Output = Outcome>,
) -> ActionOutcome {
    tokio::select! {
        r = work => match r {
            Ok(v) => ActionOutcome::succeeded(v),
            Err(e) => ActionOutcome::failed(format!("{}: {e}", ctx.action.reference), Json::Null),
        },
        _ = ctx.cancel.cancelled() => ActionOutcome::canceled(Json::Null),
    }
}

/// The clients of the `account` and `region` parameters.
pub(crate) async fn clients(ctx: &RunContext) -> Result<Arc<Aws>, String> {
    let p = Params::of(ctx);
    connect(
        &ctx.pack_config,
        p.opt_str("account")?,
        p.opt_str("region")?,
    )
    .await
}

/// An optional boolean parameter.
pub(crate) fn opt_bool(p: &Params<'_>, key: &str) -> Result<Option<bool>, String> {
    match p.value(key) {
        None => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(format!(
            "parameter `{key}` must be true or false, got {other}"
        )),
    }
}

/// An optional non-negative integer parameter that fits AWS's 32-bit integers.
pub(crate) fn opt_i32(p: &Params<'_>, key: &str) -> Result<Option<i32>, String> {
    match p.int(key)? {
        None => Ok(None),
        Some(n) => i32::try_from(n)
            .map(Some)
            .map_err(|_| format!("parameter `{key}` is too large: {n}")),
    }
}

/// An optional list of strings (a single string is a list of one).
pub(crate) fn opt_strings(p: &Params<'_>, key: &str) -> Result<Option<Vec<String>>, String> {
    match p.value(key) {
        None => Ok(None),
        Some(v) => strings(v)
            .map(Some)
            .ok_or_else(|| format!("parameter `{key}` must be a list of strings, got {v}")),
    }
}

#[cfg(test)]
mod tests;
