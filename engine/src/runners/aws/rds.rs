//! `aws.rds.*`: create (idempotent: adopts a compatible instance), describe, modify and
//! delete DB instances, and the instance summary every RDS runner returns.

use super::config::{describe_error, error_code, Aws};
use super::{clients, opt_bool, opt_i32, opt_strings, strings, Outcome, Params};
use crate::model::Json;
use crate::runners::RunContext;
use aws_sdk_rds::types::{DbInstance, Filter, Tag};
use serde_json::json;

/// `instance_class` of `create` when none is given.
pub const DEFAULT_INSTANCE_CLASS: &str = "db.t3.micro";
/// `allocated_storage` (GiB) of `create` when none is given.
pub const DEFAULT_ALLOCATED_STORAGE: i32 = 20;
/// AWS's error code for an identifier that does not exist.
pub const NOT_FOUND: &str = "DBInstanceNotFound";
/// AWS's error code for an identifier that is taken.
const ALREADY_EXISTS: &str = "DBInstanceAlreadyExists";

crate::runners::work_runner!(
    /// `aws.rds.create_db_instance`: create a DB instance; an existing one with the same
    /// identifier and the same engine, class and storage is adopted (`adopted: true`).
    CreateDbInstance, "aws.rds.create_db_instance", create,
    crate::runners::aws::guarded
);
crate::runners::work_runner!(
    /// `aws.rds.describe_db_instances`: `{instances: [summary...]}` by identifier or filters.
    DescribeDbInstances, "aws.rds.describe_db_instances", describe,
    crate::runners::aws::guarded
);
crate::runners::work_runner!(
    /// `aws.rds.modify_db_instance`: modify an instance; the result is its summary.
    ModifyDbInstance, "aws.rds.modify_db_instance", modify,
    crate::runners::aws::guarded
);
crate::runners::work_runner!(
    /// `aws.rds.delete_db_instance`: delete an instance (a final snapshot unless skipped).
    DeleteDbInstance, "aws.rds.delete_db_instance", delete,
    crate::runners::aws::guarded
);

/// The instance summary: `{identifier, status, engine, engine_version, instance_class,
/// allocated_storage, master_username, db_name, endpoint: {address, port} or null, arn,
/// multi_az, tags, adopted}` (`adopted` false; `create` sets it).
pub fn summary(i: &DbInstance) -> Json {
    let endpoint = i
        .endpoint()
        .map(|e| json!({"address": e.address(), "port": e.port()}));
    json!({
        "identifier": i.db_instance_identifier(),
        "status": i.db_instance_status(),
        "engine": i.engine(),
        "engine_version": i.engine_version(),
        "instance_class": i.db_instance_class(),
        "allocated_storage": i.allocated_storage(),
        "master_username": i.master_username(),
        "db_name": i.db_name(),
        "endpoint": endpoint,
        "arn": i.db_instance_arn(),
        "multi_az": i.multi_az(),
        "tags": tags_json(i.tag_list()),
        "adopted": false,
    })
}

/// RDS tags as a `{key: value}` object.
pub fn tags_json(tags: &[Tag]) -> Json {
    Json::Object(
        tags.iter()
            .filter_map(|t| Some((t.key()?.to_string(), json!(t.value().unwrap_or("")))))
            .collect(),
    )
}

/// A `{key: value}` object as RDS tags (non-string values as their JSON text).
pub fn tags_from(v: &Json) -> Result<Vec<Tag>, String> {
    let Some(map) = v.as_object() else {
        return Err(format!(
            "parameter `tags` must be an object of key: value, got {v}"
        ));
    };
    Ok(map
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            Tag::builder().key(k).value(value).build()
        })
        .collect())
}

/// RDS filters from `{name: [values]}` (a single string is one value).
pub fn filters_from(v: Option<&Json>) -> Result<Vec<Filter>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(map) = v.as_object() else {
        return Err(format!(
            "`filters` must be an object of filter name to a list of values (e.g. {{engine: [postgres]}}), got {v}"
        ));
    };
    map.iter()
        .map(|(name, values)| {
            let values = strings(values).ok_or_else(|| {
                format!("filter `{name}` must be a string or a list of strings, got {values}")
            })?;
            Ok(Filter::builder()
                .name(name)
                .set_values(Some(values))
                .build())
        })
        .collect()
}

/// The instance `id`, `None` when it does not exist.
pub async fn find(aws: &Aws, id: &str) -> Result<Option<DbInstance>, String> {
    match aws
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_instances().first().cloned()),
        Err(e) if error_code(&e) == Some(NOT_FOUND) => Ok(None),
        Err(e) => Err(describe_error(&e, aws, "RDS")),
    }
}

/// Every instance matching `filters` (all pages).
pub async fn list(aws: &Aws, filters: &[Filter]) -> Result<Vec<DbInstance>, String> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = aws
            .rds
            .describe_db_instances()
            .set_filters((!filters.is_empty()).then(|| filters.to_vec()))
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| describe_error(&e, aws, "RDS"))?;
        out.extend(page.db_instances().iter().cloned());
        match page.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The settings an existing instance must share with a create request to be adopted:
/// the fields that differ, as `field: existing (requested)`.
pub fn incompatible(existing: &DbInstance, engine: &str, class: &str, storage: i32) -> Vec<String> {
    let mut diffs = Vec::new();
    let have_engine = existing.engine().unwrap_or("");
    if !have_engine.eq_ignore_ascii_case(engine) {
        diffs.push(format!("engine: {have_engine} (requested {engine})"));
    }
    let have_class = existing.db_instance_class().unwrap_or("");
    if have_class != class {
        diffs.push(format!("instance_class: {have_class} (requested {class})"));
    }
    match existing.allocated_storage() {
        Some(s) if s == storage => {}
        s => diffs.push(format!(
            "allocated_storage: {} (requested {storage})",
            s.map_or_else(|| "unknown".to_string(), |s| s.to_string())
        )),
    }
    diffs
}

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

/// The status of an instance, `unknown` when RDS gave none.
pub fn status_of(i: &DbInstance) -> &str {
    i.db_instance_status().unwrap_or("unknown")
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

/// `<identifier>-final-<UTC yyyymmddHHMMSS>`.
pub fn final_snapshot_name(id: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{id}-final-{}", now.format("%Y%m%d%H%M%S"))
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
