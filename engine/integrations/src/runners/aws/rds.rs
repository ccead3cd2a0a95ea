//! `aws.rds.*`: create (idempotent: adopts a compatible instance), describe, modify and
//! delete DB instances. The instance summary and the other RDS helpers they share with
//! the `aws.rds.poll` sensor are in [`crate::aws::rds`].

use super::{clients, opt_bool, opt_i32, opt_strings, Outcome, Params};
use crate::aws::config::{describe_error, error_code};
use crate::aws::rds::{
    filters_from, final_snapshot_name, find, incompatible, list, status_of, summary, tags_from,
    DEFAULT_ALLOCATED_STORAGE, DEFAULT_INSTANCE_CLASS, NOT_FOUND,
};
use crate::runners::RunContext;
use aws_sdk_rds::types::Filter;
use serde_json::json;
use squall_core::model::Json;

/// AWS's error code for an identifier that is taken.
const ALREADY_EXISTS: &str = "DBInstanceAlreadyExists";

squall_core::work_runner!(
    /// `aws.rds.create_db_instance`: create a DB instance; an existing one with the same
    /// identifier and the same engine, class and storage is adopted (`adopted: true`).
    CreateDbInstance, "aws.rds.create_db_instance", create,
    crate::runners::aws::guarded
);
squall_core::work_runner!(
    /// `aws.rds.describe_db_instances`: `{instances: [summary...]}` by identifier or filters.
    DescribeDbInstances, "aws.rds.describe_db_instances", describe,
    crate::runners::aws::guarded
);
squall_core::work_runner!(
    /// `aws.rds.modify_db_instance`: modify an instance; the result is its summary.
    ModifyDbInstance, "aws.rds.modify_db_instance", modify,
    crate::runners::aws::guarded
);
squall_core::work_runner!(
    /// `aws.rds.delete_db_instance`: delete an instance (a final snapshot unless skipped).
    DeleteDbInstance, "aws.rds.delete_db_instance", delete,
    crate::runners::aws::guarded
);

async fn create(ctx: &RunContext) -> Outcome {
    let p = Params::of(ctx);
    let id = p.str("identifier")?;
    let engine = p.str("engine")?;
    let class = p
        .opt_str("instance_class")?
        .unwrap_or(DEFAULT_INSTANCE_CLASS);
    let storage = opt_i32(&p, "allocated_storage")?.unwrap_or(DEFAULT_ALLOCATED_STORAGE);
    let password = p.str("master_password")?;
    let tags = match p.value("tags") {
        None => None,
        Some(t) => Some(tags_from(t)?).filter(|t| !t.is_empty()),
    };
    let aws = clients(ctx).await?;
    let req = aws
        .rds
        .create_db_instance()
        .db_instance_identifier(id)
        .engine(engine)
        .db_instance_class(class)
        .allocated_storage(storage)
        .master_user_password(password)
        .set_engine_version(p.opt_str("engine_version")?.map(str::to_string))
        .set_master_username(p.opt_str("master_username")?.map(str::to_string))
        .set_db_name(p.opt_str("db_name")?.map(str::to_string))
        .set_port(opt_i32(&p, "port")?)
        .set_multi_az(opt_bool(&p, "multi_az")?)
        .set_publicly_accessible(opt_bool(&p, "publicly_accessible")?)
        .set_storage_type(p.opt_str("storage_type")?.map(str::to_string))
        .set_storage_encrypted(opt_bool(&p, "storage_encrypted")?)
        .set_backup_retention_period(opt_i32(&p, "backup_retention_period")?)
        .set_vpc_security_group_ids(opt_strings(&p, "vpc_security_group_ids")?)
        .set_db_subnet_group_name(p.opt_str("db_subnet_group_name")?.map(str::to_string))
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
    let p = Params::of(ctx);
    let filters = filters_from(p.value("filters"))?;
    let aws = clients(ctx).await?;
    let instances = match p.opt_str("identifier")? {
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
    let p = Params::of(ctx);
    let id = p.str("identifier")?;
    let aws = clients(ctx).await?;
    let out = aws
        .rds
        .modify_db_instance()
        .db_instance_identifier(id)
        .apply_immediately(p.bool("apply_immediately", true)?)
        .set_db_instance_class(p.opt_str("instance_class")?.map(str::to_string))
        .set_allocated_storage(opt_i32(&p, "allocated_storage")?)
        .set_engine_version(p.opt_str("engine_version")?.map(str::to_string))
        .set_master_user_password(p.opt_str("master_password")?.map(str::to_string))
        .set_backup_retention_period(opt_i32(&p, "backup_retention_period")?)
        .send()
        .await
        .map_err(|e| describe_error(&e, &aws, "RDS"))?;
    let inst = out
        .db_instance()
        .ok_or("RDS accepted the request but returned no instance")?;
    Ok(summary(inst))
}

async fn delete(ctx: &RunContext) -> Outcome {
    let p = Params::of(ctx);
    let id = p.str("identifier")?;
    let skip = p.bool("skip_final_snapshot", false)?;
    let snapshot = if skip {
        None
    } else {
        Some(
            p.opt_str("final_snapshot_identifier")?
                .map(str::to_string)
                .unwrap_or_else(|| final_snapshot_name(id, chrono::Utc::now())),
        )
    };
    let aws = clients(ctx).await?;
    let sent = aws
        .rds
        .delete_db_instance()
        .db_instance_identifier(id)
        .skip_final_snapshot(skip)
        .set_final_db_snapshot_identifier(snapshot.clone())
        .set_delete_automated_backups(opt_bool(&p, "delete_automated_backups")?)
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
