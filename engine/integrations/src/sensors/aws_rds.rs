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

use super::{blank_is_none, decode_config, emit_with_retry, Sensor, SensorContext, SensorError};
use crate::aws::{connect, rds};
use async_trait::async_trait;
use aws_sdk_rds::types::Filter;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;
use squall_core::config::Reference;
use squall_core::model::Json;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

/// The `aws.rds.poll` sensor type.
pub struct AwsRdsPollSensor;

/// Poll period when `every` is not given.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);
/// The `new_status` of an instance that is no longer listed.
pub const DELETED: &str = "deleted";

/// The `config:` of an `aws.rds.poll` sensor.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    /// An account of `config/aws.yaml`; its `default_account` when absent.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub account: Option<String>,
    /// The region to poll; the account's region when absent.
    #[serde(default, deserialize_with = "blank_is_none")]
    pub region: Option<String>,
    /// Poll period: a duration such as `30s` or `5m`, or a number of seconds (at least
    /// 1s).
    #[serde(default)]
    pub every: Every,
    /// RDS filters, filter name → a value or a list of values (`{engine: [postgres]}`).
    #[serde(default)]
    pub filters: BTreeMap<String, Values>,
    /// Only these DB instance identifiers (all instances when empty).
    #[serde(default)]
    pub identifiers: Values,
}

/// A poll period (`every`), checked as the `interval` sensor checks its own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Every(pub Duration);

impl Default for Every {
    fn default() -> Self {
        Every(DEFAULT_EVERY)
    }
}

impl<'de> Deserialize<'de> for Every {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Json::deserialize(d)?;
        if v.is_null() {
            return Ok(Every::default());
        }
        squall_core::duration::every(&json!({ "every": v }))
            .map(Every)
            .map_err(|(_, m)| D::Error::custom(m))
    }
}

impl Serialize for Every {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        format!("{}s", self.0.as_secs()).serialize(s)
    }
}

impl JsonSchema for Every {
    fn schema_name() -> Cow<'static, str> {
        "Every".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({"type": ["string", "number"]})
    }
}

/// One string or a list of strings, as RDS filter values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
pub struct Values(pub Vec<String>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Json::deserialize(d)?;
        match &v {
            Json::Null => Ok(Values::default()),
            _ => crate::aws::strings(&v).map(Values).ok_or_else(|| {
                D::Error::custom(format!("must be a string or a list of strings, not `{v}`"))
            }),
        }
    }
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
                    .set_values(Some(values.0.clone()))
                    .build()
            })
            .collect();
        if !self.identifiers.0.is_empty() {
            out.push(
                Filter::builder()
                    .name("db-instance-id")
                    .set_values(Some(self.identifiers.0.clone()))
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

/// Check `config`: each problem as `(field, message naming config.<field>)`.
pub fn parse(config: &Json) -> Result<PollConfig, Vec<(String, String)>> {
    let cfg: PollConfig = decode_config(config, |_| None)?;
    // A filter with no value would match nothing: RDS refuses it.
    let empty: Vec<(String, String)> = cfg
        .filters
        .iter()
        .filter(|(_, v)| v.0.is_empty())
        .map(|(name, _)| {
            (
                format!("filters.{name}"),
                format!("config.filters.{name}: must be a string or a non-empty list of strings"),
            )
        })
        .collect();
    if empty.is_empty() {
        Ok(cfg)
    } else {
        Err(empty)
    }
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

    fn reference(&self) -> Reference {
        Reference::settings::<PollConfig>(
            "Polls RDS DB instances of an account of `config/aws.yaml` and emits \
             `aws.rds.instance_status_changed` whenever an instance's status changes \
             (`deleted` when it is gone).",
        )
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
                _ = tokio::time::sleep(cfg.every.0) => {}
            }
        }
    }
}

#[cfg(test)]
#[path = "aws_rds_tests.rs"]
mod tests;
