//! Squall: an event-driven automation engine for Kubernetes and cloud operations.
//!
//! This crate is the `squall` command ([`cli`]). The layers below it, following the data:
//! - `squall-core` (`engine/core`): the model, content loading, expressions, secrets, the
//!   store, and the seams — the `Runner`, `Sensor`, `Bus` and `Store` traits;
//! - `squall-runtime` (`engine/runtime`): the bus, rule evaluation, executions, the
//!   action-chain interpreter, the built-in runners and sensors;
//! - `squall-integrations` (`engine/integrations`): Kubernetes, AWS, Consul and Vault;
//! - `squall-server` (`engine/server`): `squall serve`'s service and HTTP API.

pub mod cli;
