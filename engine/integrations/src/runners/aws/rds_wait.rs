//! `aws.rds.wait_db_instance`: poll an instance until it reaches a status (or is gone),
//! after an optional `delay`, with exponential backoff, progress lines in the execution's
//! output, a timeout, and an immediate failure on a status it cannot come back from.

use super::{clients, Outcome};
use crate::aws::rds::{find, status_of, summary};
use crate::runners::params::decode;
use crate::runners::RunContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// Default `status` to wait for.
pub const DEFAULT_STATUS: &str = "available";
/// The `status` that means "until DescribeDBInstances says it does not exist".
pub const DELETED: &str = "deleted";
/// Default `timeout`, seconds.
pub const DEFAULT_TIMEOUT: f64 = 1800.0;
/// Default first poll delay, seconds.
pub const DEFAULT_INTERVAL: f64 = 5.0;
/// Default longest poll delay, seconds.
pub const DEFAULT_MAX_INTERVAL: f64 = 30.0;
/// Growth of the delay after each poll.
const BACKOFF: f64 = 1.5;
/// A progress line is written at least this often while the status does not change.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

/// Statuses an instance does not leave by itself: waiting for anything else ends at once.
pub const TERMINAL_BAD: [&str; 7] = [
    "failed",
    "incompatible-parameters",
    "incompatible-restore",
    "incompatible-network",
    "incompatible-option-group",
    "storage-full",
    "inaccessible-encryption-credentials",
];

squall_core::work_runner!(
    /// `aws.rds.wait_db_instance`: until the instance has `status` (default `available`)
    /// or, with `status: deleted`, until it no longer exists.
    WaitDbInstance, "aws.rds.wait_db_instance", wait, WaitParams,
    "Polls an RDS DB instance, with backoff, until it has a status (`available` by default) or, with `status: deleted`, until it no longer exists; fails at once on a status it will not leave.",
    crate::runners::aws::guarded
);

/// Parameters of `aws.rds.wait_db_instance` (every one is read).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// The DB instance identifier.
    pub identifier: String,
    /// The status to wait for; `deleted` waits until the instance no longer exists.
    #[serde(default = "default_status")]
    pub status: String,
    /// Seconds before giving up.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Seconds before the first status check (right after a modify RDS still reports
    /// the old status for a moment).
    #[serde(default)]
    pub delay: f64,
    /// The first poll delay in seconds, at least 0.1 (then ×1.5 each poll).
    #[serde(default = "default_interval")]
    pub interval: f64,
    /// The longest poll delay in seconds, at least 0.1.
    #[serde(default = "default_max_interval")]
    pub max_interval: f64,
    /// An account under `accounts:` in `config/aws.yaml`; `default_account` when absent.
    #[serde(default)]
    pub account: Option<String>,
    /// The AWS region; the account's region when absent.
    #[serde(default)]
    pub region: Option<String>,
}

/// The smallest `interval` and `max_interval`, seconds (the pack declares it as their
/// `minimum`).
pub const MIN_INTERVAL: f64 = 0.1;

fn default_status() -> String {
    DEFAULT_STATUS.to_string()
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT
}

fn default_interval() -> f64 {
    DEFAULT_INTERVAL
}

fn default_max_interval() -> f64 {
    DEFAULT_MAX_INTERVAL
}

/// The poll delays: `interval`, then ×1.5 up to `max_interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    next: f64,
    max: f64,
}

impl Backoff {
    /// Starting at `interval` seconds, never above `max` seconds.
    pub fn new(interval: f64, max: f64) -> Backoff {
        Backoff {
            next: interval.min(max),
            max,
        }
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let d = Duration::from_secs_f64(self.next);
        self.next = (self.next * BACKOFF).min(self.max);
        Some(d)
    }
}

/// What one poll decided.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// The wait is over.
    Done,
    /// Keep polling.
    Pending,
    /// It will not get there: fail with this message.
    Fail(String),
}

/// Judge the observed status (`None`: the instance does not exist) against the target.
pub fn judge(id: &str, target: &str, seen: Option<&str>) -> Verdict {
    match (target, seen) {
        (DELETED, None) => Verdict::Done,
        (DELETED, Some(_)) => Verdict::Pending,
        (_, None) => Verdict::Fail(format!(
            "DB instance `{id}` does not exist (waiting for status `{target}`)"
        )),
        (_, Some(s)) if s == target => Verdict::Done,
        (_, Some(s)) if TERMINAL_BAD.contains(&s) => Verdict::Fail(format!(
            "DB instance `{id}` is in status `{s}`, from which it will not become `{target}`"
        )),
        _ => Verdict::Pending,
    }
}

async fn wait(ctx: &RunContext) -> Outcome {
    let p: WaitParams = decode(ctx)?;
    let (id, target) = (p.identifier.as_str(), p.status.as_str());
    let (timeout, interval, max_interval, delay) = (p.timeout, p.interval, p.max_interval, p.delay);
    for (key, n) in [("timeout", timeout), ("delay", delay)] {
        if !(n >= 0.0 && n.is_finite()) {
            return Err(format!(
                "parameter `{key}` must be a non-negative number, got {n}"
            ));
        }
    }
    let valid = |n: f64| n.is_finite() && n >= MIN_INTERVAL;
    if !(valid(interval) && valid(max_interval)) {
        return Err(format!(
            "`interval` and `max_interval` must be at least {MIN_INTERVAL} s, got {interval} and {max_interval}"
        ));
    }
    let aws = clients(ctx, &p.account, &p.region).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(timeout);
    if delay > 0.0 {
        // Right after a modify RDS still says `available` for a moment: a first check
        // at once would end the wait before the change even started.
        ctx.output.emit(
            "progress",
            format!("{id}: first status check in {delay} s\n"),
        );
        sleep_or_cancel(ctx, Duration::from_secs_f64(delay), deadline).await?;
    }
    let mut delays = Backoff::new(interval, max_interval);
    let mut last: Option<String> = None;
    let mut last_line = started;
    loop {
        let found = match find(&aws, id).await {
            Ok(f) => f,
            Err(e) if Instant::now() < deadline => {
                // The SDK already retried; report and keep waiting until the deadline.
                ctx.output.emit(
                    "progress",
                    format!("{id}: describe failed, retrying: {e}\n"),
                );
                sleep_or_cancel(ctx, delays.next().unwrap_or_default(), deadline).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let seen = found.as_ref().map(status_of);
        let shown = seen.unwrap_or("absent").to_string();
        let elapsed = started.elapsed().as_secs();
        if last.as_deref() != Some(shown.as_str()) || last_line.elapsed() >= PROGRESS_EVERY {
            ctx.output.emit(
                "progress",
                format!("{id}: {shown} → {target} ({elapsed}s)\n"),
            );
            last_line = Instant::now();
        }
        last = Some(shown.clone());
        match judge(id, target, seen) {
            Verdict::Done => {
                return Ok(match &found {
                    Some(i) => summary(i),
                    None => json!({"identifier": id, "deleted": true}),
                })
            }
            Verdict::Fail(msg) => return Err(msg),
            Verdict::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout} s waiting for DB instance `{id}` to be {target}; last status: {shown}"
            ));
        }
        sleep_or_cancel(ctx, delays.next().unwrap_or_default(), deadline).await?;
    }
}

/// Sleep `delay` (cut at the deadline); Err when the execution is canceled first.
async fn sleep_or_cancel(
    ctx: &RunContext,
    delay: Duration,
    deadline: Instant,
) -> Result<(), String> {
    let until = (Instant::now() + delay).min(deadline);
    tokio::select! {
        _ = tokio::time::sleep_until(until.into()) => Ok(()),
        _ = ctx.cancel.cancelled() => Err("canceled".into()),
    }
}
