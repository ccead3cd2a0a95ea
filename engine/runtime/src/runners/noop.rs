//! `noop`: does nothing; the result is the rendered parameters.

use super::{ActionOutcome, RunContext, Runner};
use async_trait::async_trait;

/// The `noop` runner.
pub struct NoopRunner;

#[async_trait]
impl Runner for NoopRunner {
    fn name(&self) -> &'static str {
        "noop"
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        ActionOutcome::succeeded(ctx.parameters)
    }
}
