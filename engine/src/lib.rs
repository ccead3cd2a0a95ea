//! Squall: an event-driven automation engine for Kubernetes and cloud operations.
//!
//! Follow the data: sensors emit triggers onto the bus; [`rules`] match them and request
//! executions; [`executions`] run them with [`runners`] (or the [`workflow`] interpreter);
//! [`store`] keeps every record durably. [`content`] loads what users write (packs,
//! actions, rules, workflows, sensors) and [`expr`] evaluates the rhai expressions in it.

pub mod api;
pub mod audit;
pub mod aws;
pub mod bus;
pub mod cli;
pub mod content;
pub mod executions;
pub mod expr;
pub mod k8s;
pub mod limits;
pub mod locks;
pub mod metrics;
pub mod model;
pub mod params;
pub mod rules;
pub mod runners;
pub mod secrets;
pub mod sensors;
pub mod service;
pub mod store;
pub mod views;
pub mod workflow;
