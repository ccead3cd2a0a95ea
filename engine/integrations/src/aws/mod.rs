//! The AWS integration shared by the `aws.*` runners and the `aws.rds.poll` sensor: named
//! accounts and their clients ([`config`]), RDS helpers ([`rds`]). Runners and sensors
//! depend on it; it depends on neither.

pub mod config;
pub mod rds;

pub use config::{connect, Aws};
use squall_core::model::Json;

/// A JSON string or list of strings as strings.
pub fn strings(v: &Json) -> Option<Vec<String>> {
    match v {
        Json::String(s) => Some(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect(),
        _ => None,
    }
}
