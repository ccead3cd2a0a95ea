//! The end-to-end HTTP figure of `squall bench`: a real `squall serve` child process on a
//! temporary content root and data dir, driven over loopback by keep-alive HTTP/1.1
//! connections posting webhooks; a rule turns every accepted trigger into a `core.noop`
//! execution. Throughput is counted as executions succeeded in the store (read after the
//! server stopped), over the load and the drain that follows it.

use crate::cli::local::Failure;
use serde_json::json;
use squall_core::model::{Json, Status};
use squall_core::store::{ListFilter, SledStore};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Child;

/// The webhook body every request posts; `level > 3` makes the rule match.
const BODY: &str = r#"{"level": 5, "source": "bench"}"#;

/// How often the server's resident memory is sampled during the load.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// Measure the HTTP path once per entry of `connections`, each for `seconds` of load.
/// `root` is the content root whose `packs/core` the server is given.
pub async fn figures(root: &Path, connections: &[usize], seconds: u64) -> Result<Json, Failure> {
    let mut out = Vec::with_capacity(connections.len());
    for &c in connections {
        out.push(one(root, c.max(1), Duration::from_secs(seconds.max(1))).await?);
    }
    Ok(Json::Array(out))
}

/// One figure: a fresh server, `conns` connections for `load`, the drain, the count.
async fn one(root: &Path, conns: usize, load: Duration) -> Result<Json, Failure> {
    let dir = tempfile::Builder::new()
        .prefix("squall-bench-http")
        .tempdir()?;
    let content = dir.path().join("content");
    let data = dir.path().join("data");
    write_content(root, &content)?;
    let server = Server::start(&content, &data).await?;
    let idle_rss = rss_mb(server.pid);

    let stop = Arc::new(AtomicBool::new(false));
    let peak_kb = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak_kb, pid) = (stop.clone(), peak_kb.clone(), server.pid);
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                peak_kb.fetch_max(rss_kb(pid).unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(RSS_EVERY).await;
            }
        })
    };
    let started = Instant::now();
    let deadline = started + load;
    let drivers: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(drive(server.port, deadline)))
        .collect();
    let mut tally = Tally::default();
    for d in drivers {
        match d.await {
            Ok(Ok(t)) => tally.merge(t),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Failure::Failed(format!("a load connection panicked: {e}"))),
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    // The drain: every accepted trigger's execution finished.
    let bound = Duration::from_secs(60).max(load * 10);
    let finished = loop {
        let n = finished_executions(server.port).await?;
        if n >= tally.ok {
            break n;
        }
        if started.elapsed() > load + bound {
            return Err(Failure::Failed(format!(
                "only {n} of {} accepted webhooks had a finished execution {} s after the load",
                tally.ok,
                bound.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let total_secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let after_rss = rss_mb(server.pid);
    let peak_rss = (peak_kb.load(Ordering::Relaxed) as f64 / 1024.0).max(after_rss);
    server.stop().await?;

    let store = SledStore::open(&data, None)?;
    let succeeded = store
        .list_executions(&ListFilter {
            status: Some(Status::Succeeded),
            action: Some("core.noop".into()),
            ..Default::default()
        })?
        .items
        .len() as u64;
    drop(store);

    tally.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let l = &tally.latencies_us;
        l.get(((l.len() as f64 - 1.0) * p).round() as usize)
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    Ok(json!({
        "connections": conns,
        "load_seconds": load_secs,
        "drain_seconds": total_secs - load_secs,
        "accepted": tally.ok,
        "refused": tally.refused,
        "executions_finished": finished,
        "executions_succeeded": succeeded,
        "requests_per_second": tally.ok as f64 / load_secs,
        "executions_per_second": succeeded as f64 / total_secs,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": pct(1.0),
        "idle_rss_mb": idle_rss,
        "peak_rss_mb": peak_rss,
        "after_rss_mb": after_rss,
    }))
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    /// Requests answered 2xx (each an accepted, durable trigger).
    ok: u64,
    /// Requests answered otherwise (429 when the bus is full, for example).
    refused: u64,
    /// Microseconds from writing each 2xx request to reading its whole response.
    latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.refused += other.refused;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Post webhooks over one keep-alive connection, one at a time, until `deadline`.
async fn drive(port: u16, deadline: Instant) -> Result<Tally, Failure> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    let request = format!(
        "POST /api/v1/webhooks/bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut buf = Vec::with_capacity(4096);
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        s.write_all(request.as_bytes()).await?;
        let code = read_response(&mut s, &mut buf).await?;
        let us = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
        if (200..300).contains(&code) {
            tally.ok += 1;
            tally.latencies_us.push(us);
        } else {
            tally.refused += 1;
        }
    }
    Ok(tally)
}

/// Read one HTTP/1.1 response with a `Content-Length` body; returns its status code.
/// `buf` keeps bytes read past the response (none, as requests are not pipelined).
async fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<u16, Failure> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let code = head
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            let length: usize = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            while buf.len() < total {
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(closed());
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..total);
            return Ok(code);
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(closed());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn closed() -> Failure {
    Failure::Failed("squall serve closed a load connection mid-response".into())
}

/// The sum of `squall_executions_total` over every action and status, from `/metrics`.
async fn finished_executions(port: u16) -> Result<u64, Failure> {
    let text = get(port, "/metrics").await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("squall_executions_total{"))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|n| n.parse::<u64>().ok())
        .sum())
}

/// GET `path` on a fresh connection; the body of a 200 response.
async fn get(port: u16, path: &str) -> Result<String, Failure> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(Failure::Failed(format!(
            "GET {path} did not answer 200: {}",
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// The content the server runs: `core` from `root`, a webhook sensor, one rule.
fn write_content(root: &Path, to: &Path) -> Result<(), Failure> {
    let core = root.join("packs/core");
    if !core.is_dir() {
        return Err(Failure::Failed(format!(
            "the HTTP benchmark needs the core pack: {} is not a directory (pass --root, or --no-http)",
            core.display()
        )));
    }
    super::pipeline::copy_dir(&core, &to.join("packs/core"))?;
    std::fs::create_dir_all(to.join("sensors"))?;
    std::fs::create_dir_all(to.join("rules"))?;
    std::fs::write(
        to.join("sensors/bench.yaml"),
        "name: bench\ntype: webhook\nconfig:\n  path: bench\n",
    )?;
    std::fs::write(
        to.join("rules/on_bench.yaml"),
        "name: on_bench\ntrigger: core.webhook\nwhen: trigger.body.level > 3\naction:\n  ref: core.noop\n",
    )?;
    Ok(())
}

/// A `squall serve` child process of the current executable.
struct Server {
    child: Child,
    pid: u32,
    port: u16,
}

impl Server {
    /// Start it on a free loopback port and wait until `/healthz` answers.
    async fn start(content: &Path, data: &Path) -> Result<Server, Failure> {
        let exe = std::env::current_exe()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())?
            .port();
        let child = tokio::process::Command::new(exe)
            .arg("--root")
            .arg(content)
            .arg("--data")
            .arg(data)
            .args([
                "serve",
                "--no-watch",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| Failure::Failed("squall serve exited at once".into()))?;
        let mut server = Server { child, pid, port };
        let started = Instant::now();
        while get(port, "/healthz").await.is_err() {
            if let Some(status) = server.child.try_wait()? {
                return Err(Failure::Failed(format!(
                    "squall serve for the HTTP benchmark exited: {status}"
                )));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(Failure::Failed(
                    "squall serve did not start within 30 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(server)
    }

    /// SIGTERM, and wait for the exit (killed if it takes over a minute).
    async fn stop(mut self) -> Result<(), Failure> {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => {
                status?;
                Ok(())
            }
            Err(_) => {
                let _ = self.child.kill().await;
                Err(Failure::Failed(
                    "squall serve did not stop within 60 s of SIGTERM".into(),
                ))
            }
        }
    }
}

/// VmRSS of `pid` in kB, if it is running.
fn rss_kb(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn rss_mb(pid: u32) -> f64 {
    rss_kb(pid).map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// Print one figure of [`figures`] in the table style of `squall bench`.
pub fn print(h: &Json) {
    let f = |k: &str| h[k].as_f64().unwrap_or(f64::NAN);
    let c = h["connections"].as_u64().unwrap_or(0);
    let p99_target = if c <= 16 { 8 } else { 20 };
    println!(
        "HTTP webhook -> noop execution, {c:>2} conns:  {:>12.0} /s   (target >= 12,000; executions succeeded in the store over {:.1} s load + {:.1} s drain)",
        f("executions_per_second"),
        f("load_seconds"),
        f("drain_seconds")
    );
    println!(
        "HTTP webhooks accepted (2xx), {c:>2} conns:   {:>12.0} /s   ({} accepted, {} refused, {} executions succeeded)",
        f("requests_per_second"),
        h["accepted"],
        h["refused"],
        h["executions_succeeded"]
    );
    println!(
        "HTTP webhook latency, {c:>2} conns, p50:      {:>12.2} ms   (p99 {:.2} ms, target <= {p99_target} ms; max {:.2} ms)",
        f("p50_ms"),
        f("p99_ms"),
        f("max_ms")
    );
    println!(
        "squall serve RSS under HTTP load, {c:>2} conns: {:>10.1} MB   (target <= 40 MB; idle {:.1} MB, after the drain {:.1} MB)",
        f("peak_rss_mb"),
        f("idle_rss_mb"),
        f("after_rss_mb")
    );
}
