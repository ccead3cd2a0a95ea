//! RDS helpers shared by the `aws.rds.*` runners and the `aws.rds.poll` sensor: the
//! instance summary, tags and filters from parameters, lookups.

use super::config::{describe_error, error_code, Aws};
use super::strings;
use aws_sdk_rds::types::{DbInstance, Filter, Tag};
use serde_json::json;
use squall_core::model::Json;

/// `instance_class` of `create` when none is given.
pub const DEFAULT_INSTANCE_CLASS: &str = "db.t3.micro";
/// `allocated_storage` (GiB) of `create` when none is given.
pub const DEFAULT_ALLOCATED_STORAGE: i32 = 20;
/// AWS's error code for an identifier that does not exist.
pub const NOT_FOUND: &str = "DBInstanceNotFound";

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

/// The status of an instance, `unknown` when RDS gave none.
pub fn status_of(i: &DbInstance) -> &str {
    i.db_instance_status().unwrap_or("unknown")
}

/// `<identifier>-final-<UTC yyyymmddHHMMSS>`.
pub fn final_snapshot_name(id: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    format!("{id}-final-{}", now.format("%Y%m%d%H%M%S"))
}
