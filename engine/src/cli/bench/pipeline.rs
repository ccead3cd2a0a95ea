//! Whole-pipeline figures for `squall bench`: trigger → rule → execution latency at a fixed
//! offered load, and figures of a real `squall serve` process (idle memory, start-up time).

use crate::cli::local::Failure;
use serde_json::json;
use squall_core::bus::Bus;
use squall_core::metrics::Metrics;
use squall_core::model::Json;
use squall_runtime::executions::Engine;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Offer `rate` triggers per second for `seconds` through the bus; a rule turns each into
/// a no-op execution. Latency is from the trigger's acceptance time to the execution's
/// start time, both as recorded in the store.
pub async fn latency(engine: &Arc<Engine>, rate: u64, seconds: u64) -> Result<Json, Failure> {
    let bus = squall_runtime::bus::LocalBus::start(
        engine.clone(),
        Arc::new(Metrics::default()),
        squall_runtime::bus::DEFAULT_CAPACITY,
    );
    let total = rate.max(1) * seconds.max(1);
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let start = Instant::now();
    let mut ids = Vec::with_capacity(total as usize);
    let mut handles = Vec::new();
    for n in 0..total {
        let due = start + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let bus = bus.clone();
        handles.push(tokio::spawn(async move {
            bus.accept("bench.load", json!({"n": n}), "bench", None)
                .await
                .map(|t| t.id)
        }));
    }
    for h in handles {
        if let Ok(Ok(id)) = h.await {
            ids.push(id);
        }
    }
    let offered_secs = start.elapsed().as_secs_f64();
    // Wait for every execution to start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut latencies = Vec::with_capacity(ids.len());
    for id in &ids {
        loop {
            let t = engine
                .store()
                .get_trigger(id)
                .map_err(|e| Failure::Failed(e.to_string()))?;
            let exec = match t.as_ref().and_then(|t| t.enforcements.first()) {
                Some(enf) => engine
                    .store()
                    .get_enforcement(enf)
                    .map_err(|e| Failure::Failed(e.to_string()))?
                    .and_then(|e| e.execution)
                    .and_then(|x| engine.store().get_execution(&x).ok().flatten()),
                None => None,
            };
            if let (Some(t), Some(e)) = (&t, exec.filter(|e| e.started_at.is_some())) {
                if let Some(ms) =
                    crate::cli::duration(Some(&t.occurred_at), e.started_at.as_deref())
                {
                    latencies.push(ms * 1000.0);
                }
                break;
            }
            if Instant::now() > deadline {
                let enf = t
                    .as_ref()
                    .and_then(|t| t.enforcements.first())
                    .and_then(|e| engine.store().get_enforcement(e).ok().flatten());
                return Err(Failure::Failed(format!(
                    "trigger {id} did not start an execution within 60 s (trigger: {}; enforcement: {})",
                    serde_json::to_string(&t).unwrap_or_default(),
                    serde_json::to_string(&enf).unwrap_or_default()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(json!({
        "offered_per_second": rate,
        "triggers": ids.len(),
        "triggers_per_second": ids.len() as f64 / offered_secs,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
    }))
}

/// Idle RSS of `squall serve` on `root`'s content, and start-up time with 50 packs.
pub async fn process_figures(root: &Path) -> Result<Json, Failure> {
    let exe = std::env::current_exe().map_err(|e| Failure::Failed(e.to_string()))?;
    let shipped = tempfile::Builder::new()
        .prefix("squall-bench-rss")
        .tempdir()?;
    for sub in ["packs", "rules", "workflows", "sensors"] {
        copy_dir(&root.join(sub), &shipped.path().join(sub))?;
    }
    let (rss, _) = serve_once(&exe, shipped.path(), Duration::from_secs(2)).await?;
    let many = tempfile::Builder::new()
        .prefix("squall-bench-50")
        .tempdir()?;
    copy_dir(&root.join("packs/core"), &many.path().join("packs/core"))?;
    for i in 0..50 {
        let p = many.path().join(format!("packs/p{i}"));
        std::fs::create_dir_all(p.join("actions"))?;
        std::fs::create_dir_all(p.join("rules"))?;
        std::fs::write(p.join("pack.yaml"), format!("name: p{i}\nversion: 1.0.0\n"))?;
        for a in 0..5 {
            std::fs::write(
                p.join(format!("actions/a{a}.yaml")),
                format!("name: a{a}\nrunner: shell\ncmd: echo {a}\nparameters:\n  x: {{type: string, default: x}}\n"),
            )?;
        }
        std::fs::write(
            p.join("rules/r.yaml"),
            format!("name: r\ntrigger: p{i}.t\nwhen: 'trigger.x == 1'\naction: {{ref: p{i}.a0, parameters: {{x: \"{{{{ trigger.y }}}}\"}}}}\n"),
        )?;
    }
    let (_, startup) = serve_once(&exe, many.path(), Duration::from_millis(100)).await?;
    Ok(json!({"idle_rss_mb": rss, "startup_ms_50_packs": startup}))
}

/// Start `squall serve`, time until `/healthz` answers, read its RSS after `idle`, stop it.
async fn serve_once(exe: &Path, root: &Path, idle: Duration) -> Result<(f64, f64), Failure> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())?
        .port();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .arg("--root")
        .arg(root)
        .args([
            "serve",
            "--no-watch",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let startup = loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = s
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            if buf.starts_with(b"HTTP/1.1 200") {
                break started.elapsed().as_secs_f64() * 1000.0;
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(Failure::Failed(
                "squall serve did not start within 30 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    tokio::time::sleep(idle).await;
    let pid = child.id().unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let _ = child.kill().await;
    Ok((rss_kb / 1024.0, startup))
}

/// Copy the directory tree `from` to `to` (nothing when `from` is not a directory).
pub(crate) fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}
