//! Tests of the sensor helpers, checkpoints and the timer sensors' run loops, plus
//! helpers shared with the supervisor tests.

use super::*;
use async_trait::async_trait;
use serde_json::json;
use squall_core::content::Sensor as SensorInstance;
use squall_core::model::SensorSpec;
use squall_core::sensor::{emit_retrying, emit_with_retry};
use squall_core::store::SledStore;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// An emitter that records what it accepts, or refuses everything when `refuse` is set.
#[derive(Default)]
pub(crate) struct Recorder {
    pub seen: Mutex<Vec<(String, Json, String)>>,
    pub refuse: std::sync::atomic::AtomicBool,
    /// Every call, accepted or not.
    pub tries: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Emitter for Recorder {
    async fn emit(
        &self,
        trigger_type: &str,
        payload: Json,
        source: &str,
    ) -> Result<String, squall_core::bus::BusError> {
        self.tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(squall_core::bus::BusError::Full(1));
        }
        if !crate::bus::valid_type(trigger_type) {
            return Err(squall_core::bus::BusError::BadType(trigger_type.into()));
        }
        let mut seen = self.seen.lock().unwrap();
        seen.push((trigger_type.into(), payload, source.into()));
        Ok(format!("t{}", seen.len()))
    }
}

impl Recorder {
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A store in a fresh temporary directory (kept alive by the returned guard).
pub(crate) fn store() -> (tempfile::TempDir, Arc<SledStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("data"), None).unwrap();
    (dir, Arc::new(store))
}

/// A sensor instance `site.<name>`.
pub(crate) fn instance(name: &str, kind: &str, config: Json, enabled: bool) -> Arc<SensorInstance> {
    Arc::new(SensorInstance {
        reference: format!("site.{name}"),
        pack: "site".into(),
        spec: SensorSpec {
            name: name.into(),
            pack: None,
            description: None,
            kind: kind.into(),
            trigger: None,
            enabled,
            config,
        },
        // The supervisor asks its registry for the type's default trigger.
        trigger: String::new(),
        file: format!("sensors/{name}.yaml").into(),
    })
}

/// Poll `cond` every 5 ms; panic after 10 s (an anti-hang bound, not a timing check).
pub(crate) async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A wall clock that follows tokio's: the real time when first read, plus how far tokio's
/// clock moved since. In a test with a paused tokio clock, the timer sensors' sleeps then
/// end as soon as nothing else is left to do, at exactly the time they waited for.
pub(crate) fn tokio_clock() -> DateTime<Utc> {
    static START: std::sync::OnceLock<(DateTime<Utc>, tokio::time::Instant)> =
        std::sync::OnceLock::new();
    let (wall, at) = *START.get_or_init(|| (Utc::now(), tokio::time::Instant::now()));
    let elapsed = tokio::time::Instant::now().saturating_duration_since(at);
    wall + chrono::Duration::from_std(elapsed).expect("a test lasts less than centuries")
}

fn ctx(
    name: &str,
    config: Json,
    emitter: Arc<dyn Emitter>,
    store: Arc<SledStore>,
) -> SensorContext {
    SensorContext {
        name: format!("site.{name}"),
        trigger: "core.test".into(),
        config,
        shutdown: CancellationToken::new(),
        emitter,
        store,
        content: Default::default(),
        pack_config: json!({}),
    }
}

#[tokio::test]
async fn checkpoint_round_trip_through_the_store() {
    let (dir, store) = store();
    let rec = Arc::new(Recorder::default());
    let c = ctx("cp", json!({}), rec.clone(), store.clone());
    assert_eq!(c.checkpoint().unwrap(), None);
    c.save_checkpoint(&json!({"resource_version": "42"}))
        .await
        .unwrap();
    assert_eq!(
        c.checkpoint().unwrap(),
        Some(json!({"resource_version": "42"}))
    );
    let t = Utc::now();
    save_checkpoint_time(&c, t).await.unwrap();
    assert_eq!(
        checkpoint_time(&c).unwrap().map(|x| x.timestamp_micros()),
        Some(t.timestamp_micros())
    );
    // survives reopening the store
    drop(c);
    drop(store);
    let store = Arc::new(SledStore::open(&dir.path().join("data"), None).unwrap());
    let c = ctx("cp", json!({}), rec, store);
    assert_eq!(
        checkpoint_time(&c).unwrap().map(|x| x.timestamp_micros()),
        Some(t.timestamp_micros())
    );
}

#[test]
fn registry_validates_types_and_prefixes_config_fields() {
    let r = crate::builtin().sensors;
    assert_eq!(r.kinds(), ["cron", "interval", "webhook"]);
    let spec = |kind: &str, config: Json| instance("x", kind, config, true).spec.clone();
    let errs = r.validate(&spec("azure.sql.poll", json!({})));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "type");
    assert!(
        errs[0].1.contains("cron, interval, webhook"),
        "{}",
        errs[0].1
    );
    let errs = r.validate(&spec("cron", json!({"schedule": "bad"})));
    assert_eq!(errs[0].0, "config.schedule");
    assert_eq!(r.validate(&spec("cron", json!([1])))[0].0, "config");
    assert!(r
        .validate(&spec("interval", json!({"every": "1m"})))
        .is_empty());
    assert_eq!(
        r.trigger_of(&spec("webhook", json!({}))).as_deref(),
        Some("core.webhook")
    );
    assert_eq!(r.trigger_of(&spec("nope", json!({}))), None);
}

/// The `scheduled_at` times of what `rec` accepted.
fn scheduled(rec: &Recorder) -> Vec<DateTime<Utc>> {
    rec.seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p, _)| {
            let s = p["scheduled_at"].as_str().expect("scheduled_at");
            DateTime::parse_from_rfc3339(s)
                .expect("RFC 3339")
                .with_timezone(&Utc)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn interval_ticks_emit_and_checkpoint() {
    let (_dir, store) = store();
    let rec = Arc::new(Recorder::default());
    let c = ctx("tick", json!({}), rec.clone(), store);
    let started = tokio_clock();
    let run = {
        let c = c.clone();
        tokio::spawn(
            async move { interval::run_every(&c, Duration::from_secs(60), tokio_clock).await },
        )
    };
    wait_for("3 ticks", || rec.count() >= 3).await;
    c.shutdown.cancel();
    run.await.unwrap().unwrap();
    let seen = rec.seen.lock().unwrap().clone();
    let (trigger, p, source) = &seen[0];
    assert_eq!(
        (trigger.as_str(), source.as_str()),
        ("core.test", "site.tick")
    );
    assert_eq!(p["sensor"], "site.tick");
    for key in ["scheduled_at", "fired_at"] {
        let s = p[key].as_str().unwrap();
        assert!(DateTime::parse_from_rfc3339(s).is_ok(), "{key}: {s}");
    }
    // One `every` after start, then anchored to the previous tick: no drift.
    let slots = scheduled(&rec);
    let minute = chrono::Duration::seconds(60);
    assert_eq!(slots[0], started + minute);
    for pair in slots.windows(2) {
        assert_eq!(pair[1] - pair[0], minute, "{slots:?}");
    }
    let cp = checkpoint_time(&c).unwrap().unwrap();
    assert!(slots.contains(&cp), "{cp} in {slots:?}");
}

#[tokio::test(start_paused = true)]
async fn an_interval_restarted_early_waits_for_its_next_tick() {
    let (_dir, store) = store();
    let rec = Arc::new(Recorder::default());
    let c = ctx("tick", json!({}), rec.clone(), store);
    let last = tokio_clock() - chrono::Duration::seconds(20);
    save_checkpoint_time(&c, last).await.unwrap();
    let run = {
        let c = c.clone();
        tokio::spawn(
            async move { interval::run_every(&c, Duration::from_secs(60), tokio_clock).await },
        )
    };
    wait_for("a tick", || rec.count() >= 1).await;
    c.shutdown.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(scheduled(&rec)[0], last + chrono::Duration::seconds(60));
}

#[tokio::test(start_paused = true)]
async fn cron_slots_emit_and_checkpoint() {
    let (_dir, store) = store();
    let rec = Arc::new(Recorder::default());
    let c = ctx(
        "every_five_minutes",
        json!({"schedule": "*/5 * * * *"}),
        rec.clone(),
        store,
    );
    let schedule = cron::Schedule::from_config(&c.config).unwrap();
    let run = {
        let c = c.clone();
        tokio::spawn(async move { cron::run_schedule(&c, &schedule, tokio_clock).await })
    };
    wait_for("2 cron slots", || rec.count() >= 2).await;
    c.shutdown.cancel();
    run.await.unwrap().unwrap();
    let slots = scheduled(&rec);
    assert_eq!(
        slots[1] - slots[0],
        chrono::Duration::minutes(5),
        "{slots:?}"
    );
    for slot in &slots {
        assert_eq!(slot.timestamp() % 300, 0, "{slot}");
    }
    assert!(checkpoint_time(&c).unwrap().unwrap() >= slots[1]);
}

#[tokio::test]
async fn an_invalid_trigger_type_is_refused_at_once_not_retried() {
    let (_dir, store) = store();
    let rec = Arc::new(Recorder::default());
    let mut c = ctx("r", json!({}), rec.clone(), store);
    c.trigger = "Not A Type".into();
    let err = emit_retrying(&c, json!({}), Duration::from_millis(1))
        .await
        .unwrap_err();
    assert!(err.0.contains("invalid trigger type"), "{err}");
    assert_eq!(rec.tries.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// On tokio's paused clock the product's retry delays pass at once.
#[tokio::test(start_paused = true)]
async fn refused_emits_are_retried_then_fail() {
    let (_dir, store) = store();
    let rec = Arc::new(Recorder::default());
    rec.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let c = ctx("r", json!({}), rec.clone(), store);
    let err = emit_with_retry(&c, json!({})).await.unwrap_err();
    assert!(err.0.contains("queue is full"), "{err}");
    assert_eq!(rec.tries.load(std::sync::atomic::Ordering::SeqCst), 6);
    // shutdown while retrying is not an error
    c.shutdown.cancel();
    assert_eq!(emit_with_retry(&c, json!({})).await.unwrap(), None);
    rec.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        emit_with_retry(&c, json!({})).await.unwrap().as_deref(),
        Some("t1")
    );
}

/// A checkpoint that exists but cannot be read is an error that names the sensor and the
/// way out, never "no checkpoint" (which would make a sensor emit everything again).
#[tokio::test]
async fn unreadable_checkpoints_are_errors_not_a_fresh_start() {
    let (_dir, store) = store();
    let rec = Arc::new(Recorder::default());
    let c = ctx("cp", json!({}), rec, store.clone());
    let sensors = store.db().open_tree("sensors").unwrap();
    // Bytes that are not JSON.
    sensors.insert("c:site.cp", &b"\x00garbage"[..]).unwrap();
    let e = c.checkpoint().expect_err("not JSON");
    assert!(
        e.0.contains("checkpoint of sensor site.cp cannot be read"),
        "{e}"
    );
    assert!(e.0.contains("squall sensor reset site.cp"), "{e}");
    // JSON of the wrong shape for a timer sensor.
    sensors
        .insert("c:site.cp", &br#"{"last_scheduled_at": 5}"#[..])
        .unwrap();
    let e = checkpoint_time(&c).expect_err("no time");
    assert!(e.0.contains("last_scheduled_at"), "{e}");
    sensors
        .insert("c:site.cp", &br#"{"last_scheduled_at": "yesterday"}"#[..])
        .unwrap();
    assert!(checkpoint_time(&c).is_err());
    // Removed: the sensor starts afresh.
    store.remove_sensor_checkpoint("site.cp").await.unwrap();
    assert_eq!(checkpoint_time(&c).unwrap(), None);
}
