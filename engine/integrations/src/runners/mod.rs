//! The runners of the integrations, one module per system: `kubernetes.*`, `aws.*`,
//! `consul.*` and `vault.*`. [`rest`] is the HTTP client the Consul and Vault runners
//! share; [`params`] reads an action's parameters.

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
