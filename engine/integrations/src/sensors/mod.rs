//! The sensors of the integrations: `kubernetes.watch` and `aws.rds.poll`.

pub mod aws_rds;
pub mod kubernetes;

use squall_core::sensor::{emit_with_retry, Registry, Sensor, SensorContext, SensorError};
use std::sync::Arc;

/// Add the sensor types of every integration to `r`.
pub fn add_to(r: &mut Registry) {
    r.add(Arc::new(aws_rds::AwsRdsPollSensor));
    r.add(Arc::new(kubernetes::KubernetesWatchSensor));
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
