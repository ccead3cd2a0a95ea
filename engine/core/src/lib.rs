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
pub mod config;
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
        let runner = self.runners.get(&action.meta.runner)?;
        let problems = runner.validate(action);
        Some(
            problems
                .into_iter()
                .map(|(field, msg)| match field.contains('.') {
                    false => (field, unknown_key(&msg, runner.name())),
                    true => (field, msg),
                })
                .collect(),
        )
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

/// An "unknown field" of an action file, listing the keys every action takes as well as
/// the runner's own: `unknown field `timout`, expected one of `name`, ... or the `shell`
/// runner's `cmd`, `cwd`, `env``.
fn unknown_key(msg: &str, runner: &str) -> String {
    let Some((head, tail)) = msg.split_once(", ") else {
        return msg.to_string();
    };
    if !head.starts_with("unknown field `") {
        return msg.to_string();
    }
    let common: Vec<String> = model::ActionMeta::COMMON_KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect();
    let own = match tail
        .strip_prefix("expected one of ")
        .or_else(|| tail.strip_prefix("expected "))
    {
        Some(list) => format!(" or the `{runner}` runner's {list}"),
        None => format!(" (the `{runner}` runner takes no settings)"),
    };
    format!("{head}, expected one of {}{own}", common.join(", "))
}
