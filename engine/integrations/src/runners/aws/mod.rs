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

use super::{ActionOutcome, RunContext, Runner};
use squall_core::model::Json;
use std::future::Future;
use std::sync::Arc;

pub mod rds;
mod rds_wait;
pub mod sts;

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
pub(crate) async fn clients(
    ctx: &RunContext,
    account: &Option<String>,
    region: &Option<String>,
) -> Result<Arc<Aws>, String> {
    connect(&ctx.pack_config, account.as_deref(), region.as_deref()).await
}

/// A non-negative integer parameter as AWS's 32-bit integer.
pub(crate) fn int32(key: &str, n: Option<u32>) -> Result<Option<i32>, String> {
    n.map(|n| i32::try_from(n).map_err(|_| format!("parameter `{key}` is too large: {n}")))
        .transpose()
}

#[cfg(test)]
mod tests;
