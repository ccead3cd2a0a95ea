//! The runners of the integrations, one module per system: `kubernetes.*`, `aws.*`,
//! `consul.*` and `vault.*`. [`rest`] is the HTTP client the Consul and Vault runners
//! share; [`params`] reads an action's parameters.

/// A runner that carries out one function over its context, like
/// `squall_core::work_runner!`, whose reference documents the parameter struct it reads:
/// `runner!(doc, Type, "name", work, Parameters, "summary"[, guard])`.
macro_rules! runner {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $work:path, $params:ty, $summary:literal) => {
        runner!($(#[$doc])* $ty, $name, $work, $params, $summary, squall_core::runner::guarded);
    };
    ($(#[$doc:meta])* $ty:ident, $name:literal, $work:path, $params:ty, $summary:literal, $guard:path) => {
        $(#[$doc])*
        pub struct $ty;

        #[async_trait::async_trait]
        impl squall_core::runner::Runner for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn reference(&self) -> squall_core::config::Reference {
                $crate::runners::params::reference::<$params>($summary)
            }

            async fn run(
                &self,
                ctx: squall_core::runner::RunContext,
            ) -> squall_core::runner::ActionOutcome {
                $guard(&ctx, $work(&ctx)).await
            }
        }
    };
}
pub(crate) use runner;

pub mod aws;
pub mod consul;
pub mod kubernetes;
mod params;
mod rest;
pub mod vault;

use squall_core::runner::{ActionOutcome, Outcome, OutputSink, Registry, RunContext, Runner};

/// Add the runners of every integration to `r`.
pub fn add_to(r: &mut Registry) {
    kubernetes::runners()
        .into_iter()
        .chain(consul::runners())
        .chain(vault::runners())
        .chain(aws::runners())
        .for_each(|runner| r.add(runner));
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod pack_tests;
