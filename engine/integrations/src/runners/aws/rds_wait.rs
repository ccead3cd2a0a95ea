//! `aws.rds.wait_db_instance`: poll an instance until it reaches a status (or is gone),
//! after an optional `delay`, with exponential backoff, progress lines in the execution's
//! output, a timeout, and an immediate failure on a status it cannot come back from.

use super::{clients, Outcome, Params};
use crate::aws::rds::{find, status_of, summary};
use crate::runners::RunContext;
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
    WaitDbInstance, "aws.rds.wait_db_instance", wait,
    crate::runners::aws::guarded
);

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
    let p = Params::of(ctx);
    let id = p.str("identifier")?;
    let target = p.opt_str("status")?.unwrap_or(DEFAULT_STATUS);
    let timeout = p
        .number("timeout", Some(DEFAULT_TIMEOUT))?
        .unwrap_or(DEFAULT_TIMEOUT);
    let interval = p
        .number("interval", Some(DEFAULT_INTERVAL))?
        .unwrap_or(DEFAULT_INTERVAL);
    let max_interval = p
        .number("max_interval", Some(DEFAULT_MAX_INTERVAL))?
        .unwrap_or(DEFAULT_MAX_INTERVAL);
    let delay = p.number("delay", Some(0.0))?.unwrap_or(0.0);
    if interval <= 0.0 || max_interval <= 0.0 {
        return Err("`interval` and `max_interval` must be greater than zero".into());
    }
    let aws = clients(ctx).await?;
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
