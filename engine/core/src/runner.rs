//! The runner seam: the [`Runner`] trait every runner implements, what it gets
//! ([`RunContext`]) and returns ([`ActionOutcome`]), and the [`Registry`] of runners by
//! name that an action's `runner:` picks from. The runners themselves live in
//! `squall-runtime` (built-in: noop, shell, http, rhai) and `squall-integrations`.

use crate::content::{Action, Content};
use crate::model::{Json, Status};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The result of one runner's work before it becomes an [`ActionOutcome`]: the result
/// value, or why it failed.
pub type Outcome = Result<Json, String>;

/// Run `work` unless the execution is canceled first.
pub async fn guarded(
    ctx: &RunContext,
    work: impl std::future::Future<Output = Outcome>,
) -> ActionOutcome {
    tokio::select! {
        r = work => match r {
            Ok(v) => ActionOutcome::succeeded(v),
            Err(e) => ActionOutcome::failed(e, Json::Null),
        },
        _ = ctx.cancel.cancelled() => ActionOutcome::canceled(Json::Null),
    }
}

/// Defines a unit-struct runner called `$name` whose work is the async fn
/// `$work(&RunContext) -> Outcome`, run under [`guarded`] (or the given `$guard`, a
/// function of the same shape), and whose reference documents the parameter struct
/// `$params` with `$summary` ([`crate::config::Reference::parameters`]).
#[macro_export]
macro_rules! work_runner {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $work:path, $params:ty, $summary:literal) => {
        $crate::work_runner!($(#[$doc])* $ty, $name, $work, $params, $summary, $crate::runner::guarded);
    };
    ($(#[$doc:meta])* $ty:ident, $name:literal, $work:path, $params:ty, $summary:literal, $guard:path) => {
        $(#[$doc])*
        pub struct $ty;

        #[async_trait::async_trait]
        impl $crate::runner::Runner for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn reference(&self) -> $crate::config::Reference {
                $crate::config::Reference::parameters::<$params>($summary)
            }

            async fn run(&self, ctx: $crate::runner::RunContext) -> $crate::runner::ActionOutcome {
                $guard(&ctx, $work(&ctx)).await
            }
        }
    };
}

/// Everything a runner gets for one execution.
pub struct RunContext {
    /// Id of the execution being run.
    pub execution_id: String,
    /// The action, with its metadata and the directory its files are in.
    pub action: Arc<Action>,
    /// Validated parameters with defaults filled, secrets in clear.
    pub parameters: Json,
    /// The pack's configuration (`config/<pack>.yaml`), `{}` when none.
    pub pack_config: Json,
    /// Fired on cancel or timeout; the runner must stop promptly and return.
    pub cancel: CancellationToken,
    /// Where live output goes (stored in chunks, streamed to `execution tail`).
    pub output: OutputSink,
    /// The content this execution started with: settings (clusters, accounts...), packs.
    pub content: Arc<Content>,
}

/// How a runner finished.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionOutcome {
    /// `Succeeded`, `Failed`, or `Canceled` when it stopped because `cancel` fired.
    pub status: Status,
    /// The result value (shape documented per runner).
    pub result: Json,
    /// A human-readable reason when not succeeded.
    pub error: Option<String>,
}

impl ActionOutcome {
    /// A success with `result`.
    pub fn succeeded(result: Json) -> Self {
        ActionOutcome {
            status: Status::Succeeded,
            result,
            error: None,
        }
    }

    /// A failure with a reason and whatever result was produced.
    pub fn failed(error: impl Into<String>, result: Json) -> Self {
        ActionOutcome {
            status: Status::Failed,
            result,
            error: Some(error.into()),
        }
    }

    /// Stopped because the cancel token fired.
    pub fn canceled(result: Json) -> Self {
        ActionOutcome {
            status: Status::Canceled,
            result,
            error: Some("canceled".into()),
        }
    }
}

/// A stream of output chunks from a runner: `(stream, text)` with stream `stdout`,
/// `stderr` or `progress`. The engine's sink stores and publishes each chunk as it is
/// emitted, so a runner that emits nothing costs nothing.
#[derive(Clone)]
pub struct OutputSink {
    to: Option<Arc<EmitFn>>,
    end: Option<Arc<EndFn>>,
}

type EmitFn = dyn Fn(&str, String) + Send + Sync;
type EndFn = dyn Fn() + Send + Sync;

impl OutputSink {
    /// A sink that sends every chunk to `tx`.
    pub fn new(tx: mpsc::UnboundedSender<(String, String)>) -> Self {
        OutputSink::to(move |stream, data| {
            let _ = tx.send((stream.to_string(), data));
        })
    }

    /// A sink that calls `f` with every chunk, on the runner's thread.
    pub fn to(f: impl Fn(&str, String) + Send + Sync + 'static) -> Self {
        OutputSink {
            to: Some(Arc::new(f)),
            end: None,
        }
    }

    /// A sink that calls `f` with every chunk and `end` when the execution is over (the
    /// engine's sink holds back the tail of a chunk that could be the start of a secret,
    /// and lets it out at the end).
    pub fn with_end(
        f: impl Fn(&str, String) + Send + Sync + 'static,
        end: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        OutputSink {
            to: Some(Arc::new(f)),
            end: Some(Arc::new(end)),
        }
    }

    /// A sink that drops everything (tests, validation).
    pub fn discard() -> Self {
        OutputSink {
            to: None,
            end: None,
        }
    }

    /// Emit one chunk.
    pub fn emit(&self, stream: &str, data: impl Into<String>) {
        if let Some(f) = &self.to {
            f(stream, data.into());
        }
    }

    /// The execution is over (finished, failed, canceled or timed out): deliver what is
    /// held back. Chunks emitted after this are delivered at once.
    pub fn end(&self) {
        if let Some(f) = &self.end {
            f();
        }
    }
}

/// A way of carrying out actions.
#[async_trait]
pub trait Runner: Send + Sync {
    /// The name used in `runner:`.
    fn name(&self) -> &'static str;

    /// Problems with an action's metadata for this runner (an unknown or missing setting,
    /// a bad template...), each as `(field, message)`. Called when content loads. The
    /// default accepts no settings: any key beyond the common ones is unknown.
    fn validate(&self, action: &Action) -> Vec<(String, String)> {
        match action.settings::<NoSettings>() {
            Ok(NoSettings {}) => Vec::new(),
            Err(e) => vec![e.problem("")],
        }
    }

    /// What the reference documentation says of this runner: a summary, its settings and
    /// the parameters it reads (`docs/reference/runners.md`).
    fn reference(&self) -> crate::config::Reference {
        crate::config::Reference::default()
    }

    /// Carry out one execution.
    async fn run(&self, ctx: RunContext) -> ActionOutcome;

    /// Attach the engine's store, for runners that record what they start (the `shell`
    /// runner's process groups) so that a restarted engine can end it. Called once, when
    /// the engine is built.
    fn bind(&self, _store: &Arc<dyn crate::store::Store>) {}
}

/// The settings of a runner that takes none.
#[derive(Debug, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoSettings {}

/// The runners known to this build, by name.
#[derive(Clone, Default)]
pub struct Registry {
    runners: BTreeMap<&'static str, Arc<dyn Runner>>,
}

impl Registry {
    /// A registry without runners (add them with [`Registry::add`]).
    pub fn empty() -> Self {
        Registry {
            runners: BTreeMap::new(),
        }
    }

    /// Register a runner under its name (replacing one of the same name).
    pub fn add(&mut self, runner: Arc<dyn Runner>) {
        self.runners.insert(runner.name(), runner);
    }

    /// Attach `store` to every runner (see [`Runner::bind`]).
    pub fn bind(&self, store: &Arc<dyn crate::store::Store>) {
        self.runners.values().for_each(|r| r.bind(store));
    }

    /// The runner called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Runner>> {
        self.runners.get(name).cloned()
    }

    /// Every runner, by name (without `action-chain`).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Arc<dyn Runner>)> {
        self.runners.iter().map(|(k, v)| (*k, v))
    }

    /// Names of all runners, including `action-chain`.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.runners.keys().copied().collect();
        v.push(ACTION_CHAIN);
        v.sort();
        v
    }
}

pub use crate::content::ACTION_CHAIN;
