//! Squall's integrations: the runners and sensors that reach other systems —
//! Kubernetes ([`k8s`], `kubernetes.*` runners, the `kubernetes.watch` sensor), AWS
//! ([`aws`], `aws.*` runners, the `aws.rds.poll` sensor), Consul and Vault. Each one
//! implements a seam of `squall-core` and nothing here depends on the engine
//! (`squall-runtime`), so this crate compiles beside it.

pub mod aws;
pub mod k8s;
pub mod runners;
pub mod sensors;

use squall_core::Components;

/// Add every runner and sensor type of this crate to `c`.
pub fn add_to(c: &mut Components) {
    runners::add_to(&mut c.runners);
    sensors::add_to(&mut c.sensors);
}
