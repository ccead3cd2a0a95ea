//! The `aws.rds.poll` sensor: polls RDS DB instances and emits
//! `aws.rds.instance_status_changed` whenever an instance's status changes.
//!
//! ```yaml
//! name: rds-status
//! type: aws.rds.poll
//! config:
//!   account: default          # an account of config/aws.yaml (default: default_account)
//!   region: eu-west-1         # default: the account's region
//!   every: 60s                # poll period (default 60s; at least 1s)
//!   filters: {engine: [postgres]}   # optional RDS filters, name -> values
//!   identifiers: [orders-db]  # optional: only these instances
//! ```
//!
//! Connection settings (credentials, endpoint) come from the aws pack's configuration,
//! `config/aws.yaml`, exactly as for the `aws.*` actions; a change to that file restarts
//! the sensor on reload.
//!
//! # Payload
//! `{identifier, old_status, new_status, instance, account, region}`: `instance` is the
//! instance summary of the `aws.rds_*` actions (null when the instance is gone).
//! `old_status` is null for an instance seen for the first time (so the first poll
//! reports every existing instance once); an instance that is no longer listed emits
//! `new_status: "deleted"`.
//!
//! # Checkpoint
//! `{scope, instances: {identifier: status}}`, saved durably after every emitted trigger,
//! so a restart emits only what changed while Squall was down and nothing twice (unless
//! Squall dies between accepting a trigger and saving, which can repeat that one
//! change). `scope` is the account, region, filters and identifiers: a checkpoint taken
//! under other settings is ignored rather than read as "every instance was deleted".
//!
//! # Failures
//! A poll that fails (credentials, endpoint unreachable, AWS error) ends the run with the
//! reason: `squall sensor list` shows it and the supervisor restarts the sensor with
//! backoff. The checkpoint is kept, so the next successful poll catches up.

use super::{emit_with_retry, Sensor, SensorContext, SensorError};
use crate::aws::{connect, rds};
use async_trait::async_trait;
use aws_sdk_rds::types::Filter;
use serde_json::json;
use squall_core::model::Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `aws.rds.poll` sensor type.
pub struct AwsRdsPollSensor;

const FIELDS: [&str; 5] = ["account", "region", "every", "filters", "identifiers"];
/// Poll period when `every` is not given.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// The `new_status` of an instance that is no longer listed.
pub const DELETED: &str = "deleted";

/// A checked `config:`.
#[derive(Debug, Clone, PartialEq)]
pub struct PollConfig {
    /// Account name (`None`: the default account).
    pub account: Option<String>,
    /// Region (`None`: the account's).
    pub region: Option<String>,
    /// Poll period.
    pub every: Duration,
    /// RDS filters, name → values.
    pub filters: BTreeMap<String, Vec<String>>,
    /// Only these instances (empty: all).
    pub identifiers: Vec<String>,
}

impl PollConfig {
    /// The RDS filters of a poll, `identifiers` as a `db-instance-id` filter.
    pub fn rds_filters(&self) -> Vec<Filter> {
        let mut out: Vec<Filter> = self
            .filters
            .iter()
            .map(|(name, values)| {
                Filter::builder()
                    .name(name)
                    .set_values(Some(values.clone()))
                    .build()
            })
            .collect();
        if !self.identifiers.is_empty() {
            out.push(
                Filter::builder()
                    .name("db-instance-id")
                    .set_values(Some(self.identifiers.clone()))
                    .build(),
            );
        }
        out
    }

    /// What the checkpoint was taken under.
    fn scope(&self) -> String {
        json!([self.account, self.region, self.filters, self.identifiers]).to_string()
    }
}

fn string_list(v: &Json) -> Option<Vec<String>> {
    crate::aws::strings(v)
}

/// Check `config`: each problem as `(field, message naming config.<field>)`.
pub fn parse(config: &Json) -> Result<PollConfig, Vec<(String, String)>> {
    let mut errs: Vec<(String, String)> = Vec::new();
    if let Some(map) = config.as_object() {
        for key in map.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            errs.push((
                key.clone(),
                format!(
                    "unknown setting `{key}`; aws.rds.poll takes {}",
                    FIELDS.join(", ")
                ),
            ));
        }
    }
    let mut opt = |field: &str| match config.get(field) {
        None | Some(Json::Null) => None,
        Some(Json::String(s)) if s.trim().is_empty() => None,
        Some(Json::String(s)) => Some(s.trim().to_string()),
        Some(other) => {
            errs.push((field.into(), format!("must be a string, not `{other}`")));
            None
        }
    };
    let account = opt("account");
    let region = opt("region");
    let every = match config.get("every") {
        None | Some(Json::Null) => DEFAULT_EVERY,
        Some(_) => match squall_core::duration::every(config) {
            Ok(d) => d,
            Err((_, m)) => {
                errs.push(("every".into(), m));
                DEFAULT_EVERY
            }
        },
    };
    let mut filters = BTreeMap::new();
    match config.get("filters") {
        None | Some(Json::Null) => {}
        Some(Json::Object(map)) => {
            for (name, values) in map {
                match string_list(values) {
                    Some(v) if !v.is_empty() => {
                        filters.insert(name.clone(), v);
                    }
                    _ => errs.push((
                        format!("filters.{name}"),
                        format!("must be a string or a non-empty list of strings, not `{values}`"),
                    )),
                }
            }
        }
        Some(other) => errs.push((
            "filters".into(),
            format!("must be a map of filter name to values (e.g. {{engine: [postgres]}}), not `{other}`"),
        )),
    }
    let identifiers = match config.get("identifiers") {
        None | Some(Json::Null) => Vec::new(),
        Some(v) => string_list(v).unwrap_or_else(|| {
            errs.push((
                "identifiers".into(),
                format!("must be a list of DB instance identifiers, not `{v}`"),
            ));
            Vec::new()
        }),
    };
    if !errs.is_empty() {
        // The messages name the field themselves, as `config.<field>: ...`.
        return Err(errs
            .into_iter()
            .map(|(f, m)| (f.clone(), format!("config.{f}: {m}")))
            .collect());
    }
    Ok(PollConfig {
        account,
        region,
        every,
        filters,
        identifiers,
    })
}

/// One status change to emit: `(identifier, old, new, instance summary or null)`.
pub type Change = (String, Option<String>, String, Json);

/// The changes between the statuses known (`known`) and those just listed (`now`, by
/// identifier: `(status, summary)`), in identifier order, gone instances last.
pub fn diff(
    known: &BTreeMap<String, String>,
    now: &BTreeMap<String, (String, Json)>,
) -> Vec<Change> {
    let mut out: Vec<Change> = now
        .iter()
        .filter(|(id, (status, _))| known.get(*id) != Some(status))
        .map(|(id, (status, inst))| {
            (
                id.clone(),
                known.get(id).cloned(),
                status.clone(),
                inst.clone(),
            )
        })
        .collect();
    out.extend(
        known
            .iter()
            .filter(|(id, _)| !now.contains_key(*id))
            .map(|(id, old)| {
                (
                    id.clone(),
                    Some(old.clone()),
                    DELETED.to_string(),
                    Json::Null,
                )
            }),
    );
    out
}

/// The statuses of a checkpoint taken under `scope` (empty for another scope or none);
/// `Err` (what is wrong) for a checkpoint of this scope that has no `instances` map.
fn load(cp: Option<Json>, scope: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(cp) = cp.filter(|c| c.get("scope").and_then(Json::as_str) == Some(scope)) else {
        return Ok(BTreeMap::new());
    };
    let instances = cp
        .get("instances")
        .and_then(Json::as_object)
        .ok_or("it has no `instances` map")?;
    Ok(instances
        .iter()
        .filter_map(|(id, s)| Some((id.clone(), s.as_str()?.to_string())))
        .collect())
}

/// The instances listed now, by identifier: `(status, summary)`, with the account and
/// region they were listed in.
async fn list_now(
    ctx: &SensorContext,
    cfg: &PollConfig,
) -> Result<(BTreeMap<String, (String, Json)>, String, String), SensorError> {
    let fail = |e: String| SensorError(format!("polling RDS: {e}"));
    let aws = connect(
        &ctx.pack_config,
        cfg.account.as_deref(),
        cfg.region.as_deref(),
    )
    .await
    .map_err(fail)?;
    let listed = rds::list(&aws, &cfg.rds_filters()).await.map_err(fail)?;
    let now = listed
        .iter()
        .filter_map(|i| {
            let id = i.db_instance_identifier()?.to_string();
            Some((id, (rds::status_of(i).to_string(), rds::summary(i))))
        })
        .collect();
    Ok((now, aws.account.clone(), aws.region.clone()))
}

/// One poll: list, diff, emit each change and checkpoint after it. `Ok(false)` when
/// shutdown came first. Only the listing is abandoned on shutdown: an accepted trigger
/// is always followed by its checkpoint.
async fn poll(
    ctx: &SensorContext,
    cfg: &PollConfig,
    known: &mut BTreeMap<String, String>,
) -> Result<bool, SensorError> {
    let (now, account, region) = tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(false),
        r = list_now(ctx, cfg) => r?,
    };
    for (id, old, new, instance) in diff(known, &now) {
        let payload = json!({
            "identifier": id,
            "old_status": old,
            "new_status": new,
            "instance": instance,
            "account": account,
            "region": region,
        });
        if emit_with_retry(ctx, payload).await?.is_none() {
            return Ok(false);
        }
        if new == DELETED {
            known.remove(&id);
        } else {
            known.insert(id, new);
        }
        ctx.save_checkpoint(&json!({"scope": cfg.scope(), "instances": known}))
            .await?;
    }
    Ok(true)
}

#[async_trait]
impl Sensor for AwsRdsPollSensor {
    fn kind(&self) -> &'static str {
        "aws.rds.poll"
    }

    fn default_trigger(&self) -> &'static str {
        "aws.rds.instance_status_changed"
    }

    fn validate(&self, config: &Json) -> Vec<(String, String)> {
        parse(config).err().unwrap_or_default()
    }

    fn config_pack(&self) -> Option<&'static str> {
        Some("aws")
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        let cfg = parse(&ctx.config).map_err(|e| {
            SensorError(e.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "))
        })?;
        let mut known =
            load(ctx.checkpoint()?, &cfg.scope()).map_err(|e| ctx.unreadable_checkpoint(&e))?;
        tracing::info!(sensor = %ctx.name, every = ?cfg.every, known = known.len(), "polling RDS");
        loop {
            if !poll(&ctx, &cfg, &mut known).await? {
                return Ok(());
            }
            tokio::select! {
                _ = ctx.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(cfg.every) => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "aws_rds_tests.rs"]
mod tests;
