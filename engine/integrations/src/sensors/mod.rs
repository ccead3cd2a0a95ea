//! The sensors of the integrations: `kubernetes.watch` and `aws.rds.poll`.

pub mod aws_rds;
pub mod kubernetes;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use squall_core::config::decode;
use squall_core::model::Json;
use squall_core::sensor::{emit_with_retry, Registry, Sensor, SensorContext, SensorError};
use std::sync::Arc;

/// Add the sensor types of every integration to `r`.
pub fn add_to(r: &mut Registry) {
    r.add(Arc::new(aws_rds::AwsRdsPollSensor));
    r.add(Arc::new(kubernetes::KubernetesWatchSensor));
}

/// Decode a sensor's `config:` into `T`, reporting every wrong top-level setting rather
/// than only the first: each problem is `(field, "config.<field>: message")`, the field
/// relative to `config` with list items as `events.1`. A missing required setting is
/// named as its own field, its message completed by `hint(field)` when that gives one
/// (`missing `kind` (e.g. ConfigMap)`).
pub(crate) fn decode_config<T: DeserializeOwned>(
    config: &Json,
    hint: impl Fn(&str) -> Option<&'static str>,
) -> Result<T, Vec<(String, String)>> {
    let mut value = config.clone();
    let mut problems: Vec<(String, String)> = Vec::new();
    loop {
        let e = match decode::<T>(&value) {
            Ok(t) if problems.is_empty() => return Ok(t),
            Ok(_) => break,
            Err(e) => e,
        };
        let mut field = e.field.replace('[', ".").replace(']', "");
        let mut message = e.message;
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
            .map(str::to_string)
        {
            field = if field.is_empty() {
                missing.clone()
            } else {
                format!("{field}.{missing}")
            };
            message = match hint(&missing) {
                Some(h) => format!("missing `{missing}` ({h})"),
                None => format!("missing `{missing}`"),
            };
        }
        // Removing a wrong setting can make it reported again as missing: once is enough.
        if problems.iter().any(|(f, _)| *f == field) {
            break;
        }
        let top = field.split('.').next().unwrap_or_default().to_string();
        problems.push((field, message));
        match value.as_object_mut().and_then(|m| m.remove(&top)) {
            Some(_) => continue,
            None => break,
        }
    }
    Err(problems
        .into_iter()
        .map(|(f, m)| {
            let at = if f.is_empty() {
                "config".to_string()
            } else {
                format!("config.{f}")
            };
            (f, format!("{at}: {m}"))
        })
        .collect())
}

/// A string setting where blank means absent (trimmed otherwise).
pub(crate) fn blank_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    Ok(s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use squall_core::model::SensorSpec;

    #[test]
    fn the_registry_checks_the_config_of_integration_sensors() {
        let mut r = Registry::empty();
        add_to(&mut r);
        assert_eq!(r.kinds(), ["aws.rds.poll", "kubernetes.watch"]);
        let spec: SensorSpec = serde_json::from_value(json!({
            "name": "x", "type": "kubernetes.watch", "config": {"version": "v1"}
        }))
        .expect("a sensor spec");
        let errs = r.validate(&spec);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].0, "config.kind");
        assert!(errs[0].1.starts_with("config.kind: "), "{}", errs[0].1);
    }
}
