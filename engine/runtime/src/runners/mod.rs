//! The built-in runners, one module each: `noop`, `shell`, `http` and `rhai`. The seam
//! they implement is [`squall_core::runner`].

pub mod http;
pub mod noop;
pub mod process;
pub mod rhai_script;
pub mod shell;
#[cfg(test)]
mod tests;

use squall_core::runner::{ActionOutcome, Registry, RunContext, Runner};
use std::sync::Arc;

/// Add the built-in runners to `r`.
pub fn add_builtin(r: &mut Registry) {
    r.add(Arc::new(noop::NoopRunner));
    r.add(Arc::new(shell::ShellRunner::default()));
    r.add(Arc::new(http::HttpRunner::new()));
    r.add(Arc::new(rhai_script::RhaiRunner));
}
