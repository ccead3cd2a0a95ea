//! The Squall server: [`service`] ties the engine, the sensors and content reloads
//! together behind `squall serve`; [`api`] is its HTTP API; [`views`] shapes records for
//! the API and the CLI.

pub mod api;
pub mod service;
pub mod views;

use squall_core::Components;

/// Every runner and sensor type of this build: the engine's built-in ones and the
/// integrations.
pub fn components() -> Components {
    let mut c = squall_runtime::builtin();
    squall_integrations::add_to(&mut c);
    c
}
