//! The core of Squall: the types every layer shares and the seams between layers.
//!
//! Follow the data: a [`sensor::Sensor`] emits triggers onto a [`bus::Bus`]; [`rules`]
//! match them; executions run a [`runner::Runner`]; the [`store::Store`] keeps every
//! record durably. [`content`] loads what users write (packs, actions, rules, workflows,
//! sensors) and checks it against the [`Components`] of the build; [`expr`] evaluates the
//! rhai expressions in it. The engine itself is `squall-runtime`; the runners and sensors
//! that reach other systems are `squall-integrations`.

pub mod audit;
pub mod bus;
pub mod content;
pub mod duration;
pub mod expr;
pub mod limits;
pub mod locks;
pub mod metrics;
pub mod model;
pub mod params;
pub mod rules;
pub mod runner;
pub mod secrets;
pub mod sensor;
pub mod store;
pub mod workflow;

/// The runners and sensor types of a build: what content is checked against and what
/// the engine runs with. `squall-runtime` adds the built-in ones,
/// `squall-integrations` the rest.
#[derive(Clone, Default)]
pub struct Components {
    /// Runners by name.
    pub runners: runner::Registry,
    /// Sensor types by name.
    pub sensors: sensor::Registry,
}

/// An error with its causes, `a: b: c` (reqwest's own message hides the useful part).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // hyper's "client error (Connect)" layer says nothing the caller does not add.
        if msg.starts_with("client error (") {
            msg = text;
        } else if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

impl content::Catalog for Components {
    fn check_action(&self, action: &content::Action) -> Option<Vec<(String, String)>> {
        self.runners
            .get(&action.meta.runner)
            .map(|r| r.validate(action))
    }

    fn runner_names(&self) -> Vec<&'static str> {
        self.runners.names()
    }

    fn check_sensor(&self, spec: &model::SensorSpec) -> Vec<(String, String)> {
        self.sensors.validate(spec)
    }

    fn sensor_trigger(&self, spec: &model::SensorSpec) -> Option<String> {
        self.sensors.trigger_of(spec)
    }

    fn sensor_exclusive_key(&self, spec: &model::SensorSpec) -> Option<String> {
        self.sensors.get(&spec.kind)?.exclusive_key(&spec.config)
    }
}
