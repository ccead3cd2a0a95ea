//! `noop`: does nothing; the result is the rendered parameters.

use super::{ActionOutcome, RunContext, Runner};
use async_trait::async_trait;
use squall_core::config::Reference;

/// The `noop` runner.
pub struct NoopRunner;

#[async_trait]
impl Runner for NoopRunner {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn reference(&self) -> Reference {
        Reference {
            summary: "Does nothing: the result is the action's rendered parameters (for \
                      tests, and for rules and workflows that only record something).",
            ..Reference::default()
        }
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        ActionOutcome::succeeded(ctx.parameters)
    }
}
