//! Durability is bytes on the disk, not a process that survived: `kill -9` tests cannot
//! tell (the page cache outlives a killed process). These tests watch the system calls of a
//! real `squall serve` under strace and check that between reading a request and writing
//! its success reply the server called `fdatasync` on the store's log file — sled's own
//! flush ends in `sync_file_range`, which flushes neither the disk's cache nor metadata.

use crate::harness::Squall;
use crate::server::Server;

fn strace() -> String {
    let found = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "strace is needed by the durability tests: install it (Debian: apt-get install strace); scripts/test.sh does"
    );
    "strace".to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// The trace lines between the read of the request whose first line starts with
/// `request` and the write of the reply whose status line starts with `reply`. (hyper
/// reads the first 24 bytes of a request on their own: `request` must be shorter.)
fn between<'a>(trace: &'a str, request: &str, reply: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = trace.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains(request))
        .unwrap_or_else(|| panic!("no read of {request:?} in the trace:\n{}", tail(trace)));
    let end = lines[start..]
        .iter()
        .position(|l| l.contains(reply))
        .unwrap_or_else(|| panic!("no write of {reply:?} after the request:\n{}", tail(trace)))
        + start;
    lines[start..=end].to_vec()
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(4000)..]
}

/// `fdatasync` of sled's log file (`.../.squall/db/db`) that completed, in `lines`.
fn synced_log(lines: &[&str]) -> bool {
    let mut pending = std::collections::BTreeSet::new();
    for l in lines {
        let pid = l.split_whitespace().next().unwrap_or_default();
        if l.contains("fdatasync(") && l.contains("/db/db>") {
            if l.trim_end().ends_with("= 0") {
                return true;
            }
            pending.insert(pid.to_string());
        } else if l.contains("<... fdatasync resumed>")
            && l.trim_end().ends_with("= 0")
            && pending.contains(pid)
        {
            return true;
        }
    }
    false
}

#[test]
fn an_accepted_webhook_and_a_created_execution_are_fdatasynced_before_the_reply() {
    let strace = strace();
    let sq = Squall::core_only();
    sq.write(
        "sensors/hook.yaml",
        "name: hook\ntype: webhook\nconfig:\n  path: durable\n",
    );
    sq.pack("durable", "");
    sq.action(
        "durable",
        "once",
        "name: once\nrunner: noop\nidempotent: false\n",
    );
    // Outside the content root: the server watches that for changes.
    let trace_dir = tempfile::tempdir().expect("temp dir");
    let trace = trace_dir.path().join("serve.strace");
    let trace_arg = trace.to_string_lossy().to_string();
    let server = Server::start_wrapped(
        &sq,
        free_port(),
        &[
            &strace,
            "-f",
            "-y",
            "-s",
            "64",
            "-e",
            "trace=fdatasync,fsync,sync_file_range,read,recvfrom,write,writev,sendto,sendmsg",
            "-o",
            &trace_arg,
        ],
    );
    let r = server.request(
        "POST",
        "/api/v1/webhooks/durable",
        Some(r#"{"n": 1}"#),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let r = server.request(
        "POST",
        "/api/v1/executions",
        Some(r#"{"action": "durable.once"}"#),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(server.terminate(), Some(0));
    let text = std::fs::read_to_string(&trace).expect("trace");
    let webhook = between(&text, "POST /api/v1/webhooks", "HTTP/1.1 202");
    assert!(
        synced_log(&webhook),
        "no fdatasync of the store's log between the webhook and its 202:\n{}",
        webhook.join("\n")
    );
    let create = between(&text, "POST /api/v1/executions", "HTTP/1.1 201");
    assert!(
        synced_log(&create),
        "no fdatasync of the store's log between the request and its 201:\n{}",
        create.join("\n")
    );
}
