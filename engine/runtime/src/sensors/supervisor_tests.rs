//! Supervisor tests with a controllable test sensor type.

use super::*;
use crate::sensors::tests::{instance, store, wait_for, Recorder};
use crate::sensors::{SensorError, SensorState};
use serde_json::json;
use squall_core::store::SledStore;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

/// Type `test`: each run counts a start, emits once, then fails (after `fail_after`),
/// panics or waits for shutdown depending on the flags.
#[derive(Default)]
struct TestSensor {
    starts: Mutex<HashMap<String, Vec<Instant>>>,
    fail: AtomicBool,
    fail_after: Mutex<Duration>,
    panic: AtomicBool,
}

impl TestSensor {
    fn starts(&self, name: &str) -> u32 {
        lock(&self.starts).get(name).map_or(0, |s| s.len() as u32)
    }

    /// The time between one start of `name` and the next.
    fn gaps(&self, name: &str) -> Vec<Duration> {
        let starts = lock(&self.starts).get(name).cloned().unwrap_or_default();
        starts.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

#[async_trait]
impl Sensor for TestSensor {
    fn kind(&self) -> &'static str {
        "test"
    }

    fn default_trigger(&self) -> &'static str {
        "test.trigger"
    }

    fn validate(&self, _config: &Json) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn run(&self, ctx: SensorContext) -> Result<(), SensorError> {
        lock(&self.starts)
            .entry(ctx.name.clone())
            .or_default()
            .push(Instant::now());
        ctx.emit(json!({"config": ctx.config}))
            .await
            .map_err(|e| SensorError(e.to_string()))?;
        if self.panic.load(Ordering::SeqCst) {
            panic!("test sensor exploded");
        }
        if self.fail.load(Ordering::SeqCst) {
            let after = *lock(&self.fail_after);
            tokio::time::sleep(after).await;
            return Err(SensorError("boom".into()));
        }
        ctx.shutdown.cancelled().await;
        Ok(())
    }
}

/// The product's timings but a shorter longest backoff. The tests that wait for restarts
/// run on tokio's paused clock: a backoff passes as soon as nothing else is left to do.
fn options() -> SupervisorOptions {
    SupervisorOptions {
        backoff_max: Duration::from_secs(8),
        ..SupervisorOptions::default()
    }
}

struct Fixture {
    sensor: Arc<TestSensor>,
    rec: Arc<Recorder>,
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
}

fn fixture() -> Fixture {
    let (dir, store) = store();
    Fixture {
        sensor: Arc::new(TestSensor::default()),
        rec: Arc::new(Recorder::default()),
        _dir: dir,
        store,
    }
}

impl Fixture {
    fn start(&self, sensors: &[Arc<SensorInstance>]) -> SensorManager {
        let mut registry = crate::builtin().sensors;
        registry.add(self.sensor.clone());
        let map = sensors
            .iter()
            .map(|s| (s.reference.clone(), s.clone()))
            .collect();
        SensorManager::start_with(
            registry,
            options(),
            &map,
            self.rec.clone(),
            self.store.clone(),
        )
    }
}

fn status(m: &SensorManager, name: &str) -> SensorStatus {
    m.states()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no sensor {name}"))
}

fn map(sensors: &[Arc<SensorInstance>]) -> BTreeMap<String, Arc<SensorInstance>> {
    sensors
        .iter()
        .map(|s| (s.reference.clone(), s.clone()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn failing_sensor_is_restarted_and_shows_error_then_running() {
    let f = fixture();
    f.sensor.fail.store(true, Ordering::SeqCst);
    let m = f.start(&[instance("flaky", "test", json!({}), true)]);
    wait_for("error state", || {
        let s = status(&m, "site.flaky");
        s.state == SensorState::Error && s.errors >= 2
    })
    .await;
    let s = status(&m, "site.flaky");
    assert_eq!(s.last_error.as_deref(), Some("boom"));
    assert_eq!(s.trigger, "test.trigger");
    assert!(m.error_count() >= 2);

    f.sensor.fail.store(false, Ordering::SeqCst);
    wait_for("running again", || {
        let s = status(&m, "site.flaky");
        s.state == SensorState::Running && f.sensor.starts("site.flaky") >= 3
    })
    .await;
    let s = status(&m, "site.flaky");
    assert!(s.restarts >= 2, "{s:?}");
    // every run emitted once and each accepted emit was counted
    wait_for("events counted", || {
        status(&m, "site.flaky").events == f.sensor.starts("site.flaky") as u64
    })
    .await;
    assert_eq!(status(&m, "site.flaky").events, f.rec.count() as u64);
    assert!(status(&m, "site.flaky").last_event_at.is_some());

    m.shutdown().await;
    assert_eq!(status(&m, "site.flaky").state, SensorState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn panicking_sensor_is_an_error_with_the_message() {
    let f = fixture();
    f.sensor.panic.store(true, Ordering::SeqCst);
    let m = f.start(&[instance("bomb", "test", json!({}), true)]);
    wait_for("panic recorded", || status(&m, "site.bomb").errors >= 1).await;
    let s = status(&m, "site.bomb");
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or("")
            .contains("test sensor exploded"),
        "{s:?}"
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn restarts_back_off_exponentially_up_to_the_longest_delay() {
    let f = fixture();
    f.sensor.fail.store(true, Ordering::SeqCst);
    let m = f.start(&[instance("flaky", "test", json!({}), true)]);
    wait_for("six starts", || f.sensor.starts("site.flaky") >= 6).await;
    m.shutdown().await;
    let secs = |s: u64| Duration::from_secs(s);
    assert_eq!(
        f.sensor.gaps("site.flaky")[..5],
        [secs(1), secs(2), secs(4), secs(8), secs(8)]
    );
    assert_eq!(status(&m, "site.flaky").restarts, 5);
}

#[tokio::test(start_paused = true)]
async fn a_run_that_lasted_resets_the_backoff() {
    let f = fixture();
    f.sensor.fail.store(true, Ordering::SeqCst);
    // Each run fails only after `healthy_after`: every restart waits the first delay.
    *lock(&f.sensor.fail_after) = options().healthy_after;
    let m = f.start(&[instance("slow", "test", json!({}), true)]);
    wait_for("four starts", || f.sensor.starts("site.slow") >= 4).await;
    m.shutdown().await;
    let gap = options().healthy_after + options().backoff_base;
    assert_eq!(f.sensor.gaps("site.slow")[..3], [gap, gap, gap]);
}

#[tokio::test(start_paused = true)]
async fn disabled_and_unknown_sensors_are_listed_not_run() {
    let f = fixture();
    let m = f.start(&[
        instance("off", "test", json!({}), false),
        instance("alien", "azure.sql.poll", json!({}), true),
    ]);
    assert_eq!(status(&m, "site.off").state, SensorState::Disabled);
    let alien = status(&m, "site.alien");
    assert_eq!(alien.state, SensorState::Stopped);
    assert!(alien.last_error.unwrap().contains("not available"));
    let v = serde_json::to_value(status(&m, "site.off")).unwrap();
    assert_eq!(v["type"], "test");
    assert_eq!(v["state"], "disabled");
    m.shutdown().await;
    assert_eq!(status(&m, "site.off").state, SensorState::Disabled);
    assert_eq!(f.sensor.starts("site.off"), 0);
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_restarts_changed_stops_removed() {
    let f = fixture();
    let a = instance("a", "test", json!({"v": 1}), true);
    let b = instance("b", "test", json!({"v": 1}), true);
    let c = instance("c", "test", json!({}), true);
    let m = f.start(&[a.clone(), b, c]);
    wait_for("all started", || {
        ["site.a", "site.b", "site.c"]
            .iter()
            .all(|n| f.sensor.starts(n) == 1 && status(&m, n).events == 1)
    })
    .await;

    let b2 = instance("b", "test", json!({"v": 2}), true);
    let d = instance("d", "test", json!({}), true);
    m.reload_sensors(&map(&[a.clone(), b2, d])).await;
    wait_for("changed and new started", || {
        f.sensor.starts("site.b") == 2 && f.sensor.starts("site.d") == 1
    })
    .await;
    assert_eq!(
        f.sensor.starts("site.a"),
        1,
        "unchanged sensor was restarted"
    );
    assert_eq!(
        status(&m, "site.a").events,
        1,
        "unchanged sensor lost its counters"
    );
    let names: Vec<String> = m.states().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["site.a", "site.b", "site.d"]);
    // the changed one runs with its new config
    wait_for("b emitted with new config", || {
        f.rec
            .seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, p, s)| s == "site.b" && p["config"]["v"] == 2)
    })
    .await;

    // disabling a sensor is a change too
    let a_off = instance("a", "test", json!({"v": 1}), false);
    m.reload_sensors(&map(&[a_off])).await;
    assert_eq!(status(&m, "site.a").state, SensorState::Disabled);
    assert_eq!(m.states().len(), 1);
    m.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_builtin_sensors_quickly() {
    let f = fixture();
    let m = f.start(&[
        instance("hook", "webhook", json!({"path": "x"}), true),
        instance("tick", "interval", json!({"every": "1h"}), true),
        instance("cron", "cron", json!({"schedule": "0 0 1 1 *"}), true),
    ]);
    for s in m.states() {
        assert_eq!(s.state, SensorState::Running, "{s:?}");
    }
    assert_eq!(status(&m, "site.hook").trigger, "core.webhook");
    tokio::time::timeout(Duration::from_secs(10), m.shutdown())
        .await
        .expect("shutdown hung");
    assert!(m.states().iter().all(|s| s.state == SensorState::Stopped));
    assert_eq!(m.error_count(), 0);
}

#[test]
fn manager_is_send_and_sync() {
    fn check<T: Send + Sync + 'static>() {}
    check::<SensorManager>();
}
