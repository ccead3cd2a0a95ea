//! The audit trail and the metrics under load and across a crash: a real `squall serve`
//! driven with webhooks from many connections as fast as it accepts them. Every accepted
//! trigger becomes exactly one execution, every execution exactly one `execution.finished`
//! entry and one count in `squall_executions_total` — checked against the store itself.

use crate::harness::Squall;
use crate::server::Server;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

const CONNECTIONS: usize = 16;

fn content() -> Squall {
    let sq = Squall::core_only();
    sq.write(
        "sensors/load.yaml",
        "name: load\ntype: webhook\nconfig:\n  path: load\n",
    );
    sq.write(
        "rules/on_load.yaml",
        "name: on_load\ntrigger: core.webhook\nwhen: trigger.body.level > 3\naction:\n  ref: core.noop\n",
    );
    sq
}

/// Send `n` webhooks over one keep-alive connection (stopping early when `stop` is set or
/// the server goes away); returns how many were answered 2xx.
fn drive(addr: &str, n: usize, stop: &AtomicBool, accepted: &AtomicUsize) -> usize {
    let Ok(stream) = TcpStream::connect(addr) else {
        return 0;
    };
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let body = r#"{"level": 5, "source": "load"}"#;
    let request = format!(
        "POST /api/v1/webhooks/load HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut ok = 0;
    for _ in 0..n {
        if stop.load(Ordering::Relaxed) || writer.write_all(request.as_bytes()).is_err() {
            break;
        }
        let mut status = String::new();
        if reader.read_line(&mut status).unwrap_or(0) == 0 {
            break;
        }
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return ok;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut buf = vec![0; length];
        if reader.read_exact(&mut buf).is_err() {
            break;
        }
        if (200..300).contains(&code) {
            ok += 1;
            accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            panic!("webhook answered {code}: {}", String::from_utf8_lossy(&buf));
        }
    }
    ok
}

/// `CONNECTIONS` threads sending `total` webhooks between them.
fn load(addr: &str, total: usize, stop: Arc<AtomicBool>, accepted: Arc<AtomicUsize>) -> usize {
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let (addr, stop, accepted) = (addr.to_string(), stop.clone(), accepted.clone());
            let n = total / CONNECTIONS + usize::from(i < total % CONNECTIONS);
            std::thread::spawn(move || drive(&addr, n, &stop, &accepted))
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .sum()
}

/// `squall_executions_total` by status, summed over actions.
fn executions_total(server: &Server) -> BTreeMap<String, u64> {
    let text = server.request("GET", "/metrics", None, None).body;
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("squall_executions_total{"))
    {
        let status = line
            .split("status=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default()
            .to_string();
        let n: u64 = line
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        *out.entry(status).or_default() += n;
    }
    out
}

/// What the store holds after the server stopped: executions by status, the targets of the
/// `execution.finished` audit entries, and trigger instances by status.
struct Stored {
    executions: BTreeMap<String, usize>,
    terminal: usize,
    finished_targets: Vec<String>,
    triggers: BTreeMap<String, usize>,
}

fn stored(sq: &Squall) -> Stored {
    let store = squall_core::store::SledStore::open(&sq.data(), None).expect("open the store");
    let all = store
        .list_executions(&squall_core::store::ListFilter::default())
        .expect("list executions")
        .items;
    let mut executions = BTreeMap::new();
    for e in &all {
        *executions.entry(e.status.as_str().to_string()).or_default() += 1;
    }
    let terminal = all.iter().filter(|e| e.status.is_terminal()).count();
    let finished_targets = store
        .list_audit(0)
        .expect("list audit")
        .items
        .into_iter()
        .filter(|e| e["what"] == "execution.finished")
        .map(|e| e["target"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut triggers = BTreeMap::new();
    for t in store
        .list_triggers(None, usize::MAX)
        .expect("list triggers")
    {
        let status = serde_json::to_value(t.status).expect("status");
        *triggers
            .entry(status.as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    Stored {
        executions,
        terminal,
        finished_targets,
        triggers,
    }
}

fn wait_for_total(server: &Server, expected: u64) -> BTreeMap<String, u64> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    loop {
        let totals = executions_total(server);
        if totals.values().sum::<u64>() >= expected {
            return totals;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "executions did not finish: {totals:?} of {expected}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn ten_thousand_webhooks_each_one_execution_one_audit_entry_one_count() {
    let sq = content();
    let server = Server::start(&sq);
    let total = 10_000;
    let accepted = Arc::new(AtomicUsize::new(0));
    let ok = load(
        &server.addr,
        total,
        Arc::new(AtomicBool::new(false)),
        accepted,
    );
    assert_eq!(ok, total, "every webhook is answered 2xx");
    let totals = wait_for_total(&server, total as u64);
    assert_eq!(
        totals,
        BTreeMap::from([("succeeded".to_string(), total as u64)])
    );
    let log = server.log_text();
    assert!(!log.contains("missed"), "{}", &log[..log.len().min(2000)]);
    assert_eq!(server.terminate(), Some(0));
    let s = stored(&sq);
    assert_eq!(
        s.executions,
        BTreeMap::from([("succeeded".to_string(), total)])
    );
    assert_eq!(s.finished_targets.len(), total);
    let distinct: std::collections::BTreeSet<&String> = s.finished_targets.iter().collect();
    assert_eq!(distinct.len(), total, "one entry per execution");
    assert_eq!(
        s.triggers,
        BTreeMap::from([("processed".to_string(), total)])
    );
}

/// Killed with SIGKILL under load and started again: whatever was durable is audited
/// exactly once, and every accepted trigger has its one execution.
#[test]
fn after_a_kill_under_load_every_durable_execution_is_audited_exactly_once() {
    let sq = content();
    let server = Server::start(&sq);
    let addr = server.addr.clone();
    let port = server.port();
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicUsize::new(0));
    let driver = {
        let (stop, accepted) = (stop.clone(), accepted.clone());
        std::thread::spawn(move || load(&addr, 1_000_000, stop, accepted))
    };
    while accepted.load(Ordering::Relaxed) < 1_500 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.kill9();
    stop.store(true, Ordering::Relaxed);
    let acknowledged = driver.join().expect("driver");
    let server = Server::start_on(&sq, port);
    // Everything accepted before the kill is evaluated and run after the restart: every
    // trigger processed (so its execution was submitted), then nothing queued or running.
    server.wait_json(
        "/api/v1/trigger-instances?limit=10000",
        None,
        600,
        |v: &Value| {
            v.as_array()
                .is_some_and(|list| list.iter().all(|t| t["status"] == "processed"))
        },
    );
    server.wait_json("/api/v1/status", None, 600, |v| {
        v["queue_depth"] == 0 && v["trigger_queue"] == 0
    });
    assert_eq!(server.terminate(), Some(0));
    let s = stored(&sq);
    assert_eq!(
        s.triggers.get("pending"),
        None,
        "no trigger left pending: {:?}",
        s.triggers
    );
    let processed = s.triggers.get("processed").copied().unwrap_or(0);
    assert!(
        processed >= acknowledged,
        "{processed} triggers stored, {acknowledged} acknowledged"
    );
    let executions: usize = s.executions.values().sum();
    assert_eq!(
        executions, processed,
        "one execution per trigger: {:?}",
        s.executions
    );
    assert_eq!(
        s.terminal, executions,
        "none left unfinished: {:?}",
        s.executions
    );
    let distinct: std::collections::BTreeSet<&String> = s.finished_targets.iter().collect();
    assert_eq!(
        distinct.len(),
        s.finished_targets.len(),
        "no execution audited twice"
    );
    assert_eq!(
        s.finished_targets.len(),
        executions,
        "every execution audited"
    );
}
