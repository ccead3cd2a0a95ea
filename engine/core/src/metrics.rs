//! Prometheus metrics, kept in memory and rendered in the text exposition format for
//! `GET /metrics`.

use crate::locks::MutexExt;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the execution duration histogram.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0, 300.0, 1800.0,
];

#[derive(Default)]
struct Inner {
    triggers: BTreeMap<String, u64>,
    enforcements: BTreeMap<(String, &'static str), u64>,
    executions: BTreeMap<(String, String), u64>,
    duration_buckets: [u64; BUCKETS.len()],
    duration_count: u64,
    duration_sum: f64,
    http: BTreeMap<(String, u16), u64>,
}

/// All counters of the process.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Gauges read at render time.
pub struct Gauges {
    /// Executions queued or running.
    pub queue_depth: usize,
    /// Triggers waiting for evaluation.
    pub trigger_queue: usize,
    /// Sensor failures so far.
    pub sensor_errors: u64,
    /// Seconds since start.
    pub uptime_seconds: f64,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.locked());
    }

    /// A trigger of `trigger_type` was accepted.
    pub fn trigger_received(&self, trigger_type: &str) {
        self.with(|i| *i.triggers.entry(trigger_type.to_string()).or_default() += 1);
    }

    /// A rule matched; `ok` when an execution was requested.
    pub fn enforcement(&self, rule: &str, ok: bool) {
        let outcome = if ok { "requested" } else { "failed" };
        self.with(|i| {
            *i.enforcements
                .entry((rule.to_string(), outcome))
                .or_default() += 1
        });
    }

    /// An execution finished.
    pub fn execution_finished(&self, action: &str, status: &str, seconds: Option<f64>) {
        self.with(|i| {
            *i.executions
                .entry((action.to_string(), status.to_string()))
                .or_default() += 1;
            if let Some(s) = seconds {
                i.duration_count += 1;
                i.duration_sum += s;
                for (b, bound) in i.duration_buckets.iter_mut().zip(BUCKETS) {
                    if s <= bound {
                        *b += 1;
                    }
                }
            }
        });
    }

    /// An API request was answered.
    pub fn http_request(&self, route: &str, status: u16) {
        self.with(|i| *i.http.entry((route.to_string(), status)).or_default() += 1);
    }

    /// The exposition text.
    pub fn render(&self, g: &Gauges) -> String {
        let i = self.inner.locked();
        let mut o = String::new();
        let _ = writeln!(o, "# HELP squall_triggers_received_total Trigger instances accepted.\n# TYPE squall_triggers_received_total counter");
        for (t, n) in &i.triggers {
            let _ = writeln!(
                o,
                "squall_triggers_received_total{{type=\"{}\"}} {n}",
                esc(t)
            );
        }
        let _ = writeln!(o, "# HELP squall_enforcements_total Rule matches, by outcome.\n# TYPE squall_enforcements_total counter");
        for ((r, outcome), n) in &i.enforcements {
            let _ = writeln!(
                o,
                "squall_enforcements_total{{rule=\"{}\",outcome=\"{outcome}\"}} {n}",
                esc(r)
            );
        }
        let _ = writeln!(o, "# HELP squall_executions_total Finished executions, by action and status.\n# TYPE squall_executions_total counter");
        for ((a, s), n) in &i.executions {
            let _ = writeln!(
                o,
                "squall_executions_total{{action=\"{}\",status=\"{s}\"}} {n}",
                esc(a)
            );
        }
        let _ = writeln!(o, "# HELP squall_execution_duration_seconds Time from start to finish of executions.\n# TYPE squall_execution_duration_seconds histogram");
        for (b, bound) in i.duration_buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                o,
                "squall_execution_duration_seconds_bucket{{le=\"{bound}\"}} {b}"
            );
        }
        let _ = writeln!(
            o,
            "squall_execution_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            i.duration_count
        );
        let _ = writeln!(
            o,
            "squall_execution_duration_seconds_sum {}",
            i.duration_sum
        );
        let _ = writeln!(
            o,
            "squall_execution_duration_seconds_count {}",
            i.duration_count
        );
        let _ = writeln!(o, "# HELP squall_http_requests_total API requests, by route and status code.\n# TYPE squall_http_requests_total counter");
        for ((r, c), n) in &i.http {
            let _ = writeln!(
                o,
                "squall_http_requests_total{{route=\"{}\",code=\"{c}\"}} {n}",
                esc(r)
            );
        }
        let _ = writeln!(o, "# HELP squall_execution_queue_depth Executions queued or running.\n# TYPE squall_execution_queue_depth gauge\nsquall_execution_queue_depth {}", g.queue_depth);
        let _ = writeln!(o, "# HELP squall_trigger_queue_depth Triggers waiting for rule evaluation.\n# TYPE squall_trigger_queue_depth gauge\nsquall_trigger_queue_depth {}", g.trigger_queue);
        let _ = writeln!(o, "# HELP squall_sensor_errors_total Sensor failures.\n# TYPE squall_sensor_errors_total counter\nsquall_sensor_errors_total {}", g.sensor_errors);
        let _ = writeln!(o, "# HELP squall_uptime_seconds Seconds since the server started.\n# TYPE squall_uptime_seconds gauge\nsquall_uptime_seconds {:.3}", g.uptime_seconds);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.trigger_received("core.webhook");
        m.execution_finished("core.echo", "succeeded", Some(0.002));
        m.execution_finished("core.echo", "failed", None);
        let text = m.render(&Gauges {
            queue_depth: 2,
            trigger_queue: 0,
            sensor_errors: 1,
            uptime_seconds: 1.0,
        });
        assert!(
            text.contains("squall_triggers_received_total{type=\"core.webhook\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("squall_executions_total{action=\"core.echo\",status=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("squall_execution_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("squall_execution_duration_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(text.contains("squall_execution_queue_depth 2"), "{text}");
    }
}
