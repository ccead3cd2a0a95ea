//! `aws.rds.*`: create (idempotent: adopts a compatible instance), describe, modify and
//! delete DB instances. The instance summary and the other RDS helpers they share with
//! the `aws.rds.poll` sensor are in [`crate::aws::rds`].

use super::{clients, int32, Outcome};
use crate::aws::config::{describe_error, error_code};
use crate::aws::rds::{
    filters_from, final_snapshot_name, find, incompatible, list, status_of, summary, tags_from,
    DEFAULT_ALLOCATED_STORAGE, DEFAULT_INSTANCE_CLASS, NOT_FOUND,
};
use crate::runners::params::decode;
use crate::runners::RunContext;
use crate::sensors::aws_rds::Values;
use aws_sdk_rds::types::Filter;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use squall_core::model::Json;

/// AWS's error code for an identifier that is taken.
const ALREADY_EXISTS: &str = "DBInstanceAlreadyExists";

squall_core::work_runner!(
    /// `aws.rds.create_db_instance`: create a DB instance; an existing one with the same
    /// identifier and the same engine, class and storage is adopted (`adopted: true`).
    CreateDbInstance, "aws.rds.create_db_instance", create, CreateParams,
    "Creates an RDS DB instance; an existing one with the same identifier, engine, class and storage is adopted (`adopted: true`). The result is the instance's summary.",
    crate::runners::aws::guarded
);
squall_core::work_runner!(
    /// `aws.rds.describe_db_instances`: `{instances: [summary...]}` by identifier or filters.
    DescribeDbInstances, "aws.rds.describe_db_instances", describe, DescribeParams,
    "Describes RDS DB instances by identifier and/or filters; the result is `{instances: [summary...]}`.",
    crate::runners::aws::guarded
);
squall_core::work_runner!(
    /// `aws.rds.modify_db_instance`: modify an instance; the result is its summary.
    ModifyDbInstance, "aws.rds.modify_db_instance", modify, ModifyParams,
    "Modifies an RDS DB instance (class, storage, engine version, password, backups); the result is its summary.",
    crate::runners::aws::guarded
);
squall_core::work_runner!(
    /// `aws.rds.delete_db_instance`: delete an instance (a final snapshot unless skipped).
    DeleteDbInstance, "aws.rds.delete_db_instance", delete, DeleteParams,
    "Deletes an RDS DB instance, with a final snapshot unless skipped; an absent or already deleting instance is success.",
    crate::runners::aws::guarded
);

/// Parameters of `aws.rds.create_db_instance` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateParams {
    /// The DB instance identifier.
    pub identifier: String,
    /// The database engine: `postgres`, `mysql`, `mariadb`...
    pub engine: String,
    /// The engine version; the engine's default when absent.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// The DB instance class.
    #[serde(default = "instance_class")]
    pub instance_class: String,
    /// Storage in GiB.
    #[serde(default = "allocated_storage")]
    pub allocated_storage: u32,
    /// The master user name.
    #[serde(default)]
    pub master_username: Option<String>,
    /// The master user password.
    pub master_password: String,
    /// Name of the database created with the instance.
    #[serde(default)]
    pub db_name: Option<String>,
    /// The port; the engine's when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// A Multi-AZ deployment.
    #[serde(default)]
    pub multi_az: Option<bool>,
    /// Reachable from outside the VPC.
    #[serde(default)]
    pub publicly_accessible: Option<bool>,
    /// `gp2`, `gp3`, `io1`, `standard`...
    #[serde(default)]
    pub storage_type: Option<String>,
    /// Encrypt the storage.
    #[serde(default)]
    pub storage_encrypted: Option<bool>,
    /// Days of automated backups (0 disables them).
    #[serde(default)]
    pub backup_retention_period: Option<u32>,
    /// VPC security group ids (one string is a list of one).
    #[serde(default)]
    pub vpc_security_group_ids: Option<Values>,
    /// The DB subnet group.
    #[serde(default)]
    pub db_subnet_group_name: Option<String>,
    /// Tags as `{key: value}`.
    #[serde(default = "no_tags")]
    pub tags: Json,
    /// An account under `accounts:` in `config/aws.yaml`; `default_account` when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region; the account's region when absent.
    #[serde(default)]
    pub region: Option<String>,
}

fn instance_class() -> String {
    DEFAULT_INSTANCE_CLASS.to_string()
}

fn allocated_storage() -> u32 {
    DEFAULT_ALLOCATED_STORAGE.unsigned_abs()
}

fn no_tags() -> Json {
    json!({})
}

/// Parameters of `aws.rds.describe_db_instances` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DescribeParams {
    /// One DB instance; all instances matching `filters` when absent.
    #[serde(default)]
    pub identifier: Option<String>,
    /// RDS filters as `{name: [values]}`, e.g. `{engine: [postgres]}`.
    #[serde(default)]
    pub filters: Option<Json>,
    /// An account under `accounts:` in `config/aws.yaml`; `default_account` when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region; the account's region when absent.
    #[serde(default)]
    pub region: Option<String>,
}

/// Parameters of `aws.rds.modify_db_instance` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModifyParams {
    /// The DB instance identifier.
    pub identifier: String,
    /// Apply now rather than in the next maintenance window.
    #[serde(default = "yes")]
    pub apply_immediately: bool,
    /// The new DB instance class.
    #[serde(default)]
    pub instance_class: Option<String>,
    /// The new storage in GiB.
    #[serde(default)]
    pub allocated_storage: Option<u32>,
    /// The new engine version.
    #[serde(default)]
    pub engine_version: Option<String>,
    /// The new master user password.
    #[serde(default)]
    pub master_password: Option<String>,
    /// Days of automated backups.
    #[serde(default)]
    pub backup_retention_period: Option<u32>,
    /// An account under `accounts:` in `config/aws.yaml`; `default_account` when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region; the account's region when absent.
    #[serde(default)]
    pub region: Option<String>,
}

fn yes() -> bool {
    true
}

/// Parameters of `aws.rds.delete_db_instance` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// The DB instance identifier.
    pub identifier: String,
    /// Delete without a final snapshot.
    #[serde(default)]
    pub skip_final_snapshot: bool,
    /// Name of the final snapshot; `<identifier>-final-<UTC yyyymmddHHMMSS>` when absent.
    #[serde(default)]
    pub final_snapshot_identifier: Option<String>,
    /// Also delete the automated backups.
    #[serde(default)]
    pub delete_automated_backups: Option<bool>,
    /// An account under `accounts:` in `config/aws.yaml`; `default_account` when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region; the account's region when absent.
    #[serde(default)]
    pub region: Option<String>,
}

async fn create(ctx: &RunContext) -> Outcome {
    let p: CreateParams = decode(ctx)?;
    let (id, engine, class) = (
        p.identifier.as_str(),
        p.engine.as_str(),
        p.instance_class.as_str(),
    );
    let storage =
        int32("allocated_storage", Some(p.allocated_storage))?.unwrap_or(DEFAULT_ALLOCATED_STORAGE);
    let password = p.master_password.as_str();
    let tags = Some(tags_from(&p.tags)?).filter(|t| !t.is_empty());
    let aws = clients(ctx, &p.account, &p.region).await?;
    let req = aws
        .rds
        .create_db_instance()
        .db_instance_identifier(id)
        .engine(engine)
        .db_instance_class(class)
        .allocated_storage(storage)
        .master_user_password(password)
        .set_engine_version(p.engine_version.clone())
        .set_master_username(p.master_username.clone())
        .set_db_name(p.db_name.clone())
        .set_port(p.port.map(i32::from))
        .set_multi_az(p.multi_az)
        .set_publicly_accessible(p.publicly_accessible)
        .set_storage_type(p.storage_type.clone())
        .set_storage_encrypted(p.storage_encrypted)
        .set_backup_retention_period(int32("backup_retention_period", p.backup_retention_period)?)
        .set_vpc_security_group_ids(p.vpc_security_group_ids.clone().map(|v| v.0))
        .set_db_subnet_group_name(p.db_subnet_group_name.clone())
        .set_tags(tags);
    match req.send().await {
        Ok(out) => {
            let inst = out
                .db_instance()
                .ok_or("RDS accepted the request but returned no instance")?;
            ctx.output.emit(
                "progress",
                format!("{id}: created (status {})\n", status_of(inst)),
            );
            Ok(summary(inst))
        }
        Err(e) if error_code(&e) == Some(ALREADY_EXISTS) => {
            let Some(existing) = find(&aws, id).await? else {
                return Err(format!(
                    "{}: DB instance `{id}` exists but could not be described",
                    describe_error(&e, &aws, "RDS")
                ));
            };
            let diffs = incompatible(&existing, engine, class, storage);
            if !diffs.is_empty() {
                return Err(format!(
                    "DB instance `{id}` already exists with different settings: {}; pick another identifier or delete it first",
                    diffs.join(", ")
                ));
            }
            ctx.output.emit(
                "progress",
                format!(
                    "{id}: already exists (status {}), adopted\n",
                    status_of(&existing)
                ),
            );
            let mut s = summary(&existing);
            s["adopted"] = json!(true);
            Ok(s)
        }
        Err(e) => Err(describe_error(&e, &aws, "RDS")),
    }
}

async fn describe(ctx: &RunContext) -> Outcome {
    let p: DescribeParams = decode(ctx)?;
    let filters = filters_from(p.filters.as_ref())?;
    let aws = clients(ctx, &p.account, &p.region).await?;
    let instances = match p.identifier.as_deref() {
        Some(id) if filters.is_empty() => find(&aws, id).await?.into_iter().collect(),
        Some(id) => {
            // Both: the filters narrow the identifier's instance.
            let mut with_id = filters.clone();
            with_id.push(Filter::builder().name("db-instance-id").values(id).build());
            list(&aws, &with_id).await?
        }
        None => list(&aws, &filters).await?,
    };
    let summaries: Vec<Json> = instances.iter().map(summary).collect();
    Ok(json!({ "instances": summaries }))
}

async fn modify(ctx: &RunContext) -> Outcome {
    let p: ModifyParams = decode(ctx)?;
    let id = p.identifier.as_str();
    let aws = clients(ctx, &p.account, &p.region).await?;
    let out = aws
        .rds
        .modify_db_instance()
        .db_instance_identifier(id)
        .apply_immediately(p.apply_immediately)
        .set_db_instance_class(p.instance_class.clone())
        .set_allocated_storage(int32("allocated_storage", p.allocated_storage)?)
        .set_engine_version(p.engine_version.clone())
        .set_master_user_password(p.master_password.clone())
        .set_backup_retention_period(int32("backup_retention_period", p.backup_retention_period)?)
        .send()
        .await
        .map_err(|e| describe_error(&e, &aws, "RDS"))?;
    let inst = out
        .db_instance()
        .ok_or("RDS accepted the request but returned no instance")?;
    Ok(summary(inst))
}

async fn delete(ctx: &RunContext) -> Outcome {
    let p: DeleteParams = decode(ctx)?;
    let id = p.identifier.as_str();
    let skip = p.skip_final_snapshot;
    let snapshot = if skip {
        None
    } else {
        Some(
            p.final_snapshot_identifier
                .clone()
                .unwrap_or_else(|| final_snapshot_name(id, chrono::Utc::now())),
        )
    };
    let aws = clients(ctx, &p.account, &p.region).await?;
    let sent = aws
        .rds
        .delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(skip)
        .set_final_db_snapshot_identifier(snapshot.clone())
        .set_delete_automated_backups(p.delete_automated_backups)
        .send()
        .await;
    match sent {
        Ok(out) => {
            let status = out.db_instance().map(status_of).unwrap_or("deleting");
            ctx.output.emit(
                "progress",
                format!("{id}: delete requested (status {status})\n"),
            );
            Ok(json!({"identifier": id, "deleted": true, "final_snapshot_identifier": snapshot}))
        }
        Err(e) if error_code(&e) == Some(NOT_FOUND) => {
            ctx.output.emit(
                "progress",
                format!("{id}: does not exist; nothing to delete\n"),
            );
            Ok(json!({"identifier": id, "deleted": false, "already_absent": true}))
        }
        Err(e) => {
            let msg = describe_error(&e, &aws, "RDS");
            // A second delete while the first is under way: the instance is going.
            if let Some(existing) = find(&aws, id).await.ok().flatten() {
                if status_of(&existing) == "deleting" {
                    return Ok(
                        json!({"identifier": id, "deleted": true, "already_deleting": true}),
                    );
                }
            }
            Err(msg)
        }
    }
}
