//! The Squall engine: follow the data from a trigger to a finished execution.
//!
//! [`bus`] accepts triggers and evaluates them against the rules; [`executions`] runs
//! what the rules ask for with the [`squall_core::runner::Runner`]s of the build — the
//! action-chain interpreter ([`chain`]) included — and records every step in the store.
//! [`runners`] and [`sensors`] are the built-in ones (no, shell, http, rhai; cron,
//! interval, webhook) and the sensor supervisor. The types and seams are in
//! `squall-core`; runners and sensors that reach other systems in `squall-integrations`.

pub mod bus;
pub mod chain;
pub mod executions;
pub mod runners;
pub mod sensors;

use squall_core::content::Content;
use squall_core::runner::Registry;
use squall_core::store::Store;
use squall_core::Components;
use std::sync::Arc;

/// An engine over loaded content and an open store that runs actions with `runners` and
/// workflows with the action-chain interpreter.
pub fn engine(
    content: Arc<Content>,
    store: Arc<dyn Store>,
    runners: Registry,
) -> Arc<executions::Engine> {
    executions::Engine::new(content, store, runners, Arc::new(chain::ActionChain))
}

/// The built-in runners and sensor types.
pub fn builtin() -> Components {
    let mut c = Components::default();
    runners::add_builtin(&mut c.runners);
    c.sensors.add(Arc::new(sensors::cron::CronSensor));
    c.sensors.add(Arc::new(sensors::interval::IntervalSensor));
    c.sensors.add(Arc::new(sensors::webhook::WebhookSensor));
    c
}
