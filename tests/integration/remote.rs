//! Remote mode: the CLI with `--server` against a real `squall serve` process, with tokens
//! of roles viewer and operator.

use crate::harness::{Output, Running, Squall};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const OPERATOR: &str = "operator-token-0123456789abcdef";
const VIEWER: &str = "viewer-token-0123456789abcdef";

/// A `squall serve` process, killed when dropped (the harness kills a running command that
/// was never waited for).
struct Server {
    _process: Running,
    url: String,
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// Whether `GET /healthz` answers 200 at `addr`.
fn healthy(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

/// Content with the core pack, a webhook sensor and a tokens file; a server on it.
fn start() -> (Squall, Server) {
    let sq = Squall::core_only();
    sq.write("squall.yaml", "auth:\n  tokens_file: tokens.yaml\n");
    sq.write(
        "tokens.yaml",
        &format!(
            "- {{name: olga, token: {OPERATOR}, role: operator}}\n\
             - {{name: vic, token: {VIEWER}, role: viewer}}\n"
        ),
    );
    sq.write(
        "sensors/hook.yaml",
        "name: hook\npack: core\ntype: webhook\nconfig: {path: hello}\n",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let process = sq.cmd(&["serve", "--listen", &addr, "--no-watch"]).spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthy(&addr) {
        assert!(
            Instant::now() < deadline,
            "squall serve did not answer /healthz on {addr} within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = Server {
        _process: process,
        url: format!("http://{addr}"),
    };
    (sq, server)
}

/// `squall --server URL --token TOKEN args...`.
fn remote(sq: &Squall, server: &Server, token: &str, args: &[&str]) -> Output {
    let mut all = vec!["--server", server.url.as_str(), "--token", token];
    all.extend_from_slice(args);
    let out = sq.run(&all);
    out.no_panic();
    out
}

#[test]
fn run_get_tail_rerun_through_the_server() {
    let (sq, srv) = start();
    let out = remote(
        &sq,
        &srv,
        OPERATOR,
        &["run", "core.echo", "message=hello", "-o", "json"],
    );
    out.ok();
    let rec = out.json();
    assert_eq!(rec["status"], "succeeded", "{}", out.describe());
    assert_eq!(rec["result"]["stdout"], "hello");
    let id = rec["id"].as_str().expect("an id").to_string();

    // Table mode: the live output goes to stderr, the record to stdout.
    let out = remote(&sq, &srv, OPERATOR, &["run", "core.echo", "message=live"]);
    out.ok()
        .stderr_has("live")
        .stdout_has("status:     succeeded");

    let got = remote(
        &sq,
        &srv,
        OPERATOR,
        &["execution", "get", &id, "-o", "json"],
    );
    assert_eq!(got.ok().json(), rec, "the server's record, as returned");
    remote(&sq, &srv, VIEWER, &["execution", "get", &id])
        .ok()
        .stdout_has(&id)
        .stdout_has("core.echo");

    let tail = remote(&sq, &srv, VIEWER, &["execution", "tail", &id]);
    assert_eq!(tail.ok().stdout, "hello\n", "{}", tail.describe());
    let chunks = remote(&sq, &srv, VIEWER, &["execution", "tail", &id, "-o", "json"]).json();
    assert_eq!(chunks[0]["data"], "hello\n");

    let list = remote(&sq, &srv, VIEWER, &["execution", "list", "-o", "json"]).json();
    assert!(list
        .as_array()
        .is_some_and(|l| l.iter().any(|e| e["id"] == id.as_str())));

    let again = remote(
        &sq,
        &srv,
        OPERATOR,
        &["execution", "rerun", &id, "-o", "json"],
    );
    let again = again.ok().json();
    assert_eq!(again["status"], "succeeded");
    assert_ne!(again["id"], rec["id"]);

    // A failing action: printed, exit 1.
    let out = remote(
        &sq,
        &srv,
        OPERATOR,
        &["run", "core.local", "cmd=exit 3", "-o", "json"],
    );
    assert_eq!(out.code(1).json()["status"], "failed");

    // --async returns the scheduled record at once.
    let out = remote(
        &sq,
        &srv,
        OPERATOR,
        &["run", "core.sleep", "seconds=5", "--async", "-o", "json"],
    );
    let sleeping = out.ok().json();
    assert!(
        ["requested", "scheduled", "running"].contains(&sleeping["status"].as_str().unwrap_or("")),
        "{}",
        out.describe()
    );
    let sid = sleeping["id"].as_str().expect("an id");
    let canceled = remote(
        &sq,
        &srv,
        OPERATOR,
        &["execution", "cancel", sid, "-o", "json"],
    );
    assert!(
        ["canceled", "canceling"].contains(&canceled.ok().json()["status"].as_str().unwrap_or("")),
        "{}",
        canceled.describe()
    );
}

#[test]
fn triggers_sensors_and_lists_through_the_server() {
    let (sq, srv) = start();
    let out = remote(
        &sq,
        &srv,
        OPERATOR,
        &[
            "trigger",
            "emit",
            "core.webhook",
            "-p",
            r#"{"x":1}"#,
            "-o",
            "json",
        ],
    );
    let tid = out.ok().json()["id"].as_str().expect("an id").to_string();
    let list = remote(
        &sq,
        &srv,
        VIEWER,
        &[
            "trigger",
            "instances",
            "--type",
            "core.webhook",
            "-o",
            "json",
        ],
    )
    .json();
    let found = list
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == tid.as_str()).cloned())
        .unwrap_or(Value::Null);
    assert_eq!(found["payload"]["x"], 1, "{list}");
    remote(&sq, &srv, VIEWER, &["trigger", "instances"])
        .ok()
        .stdout_has(&tid);

    let sensors = remote(&sq, &srv, VIEWER, &["sensor", "list", "-o", "json"]).json();
    let hook = sensors
        .as_array()
        .and_then(|l| l.iter().find(|s| s["name"] == "core.hook").cloned())
        .unwrap_or(Value::Null);
    assert_eq!(hook["type"], "webhook", "{sensors}");
    remote(&sq, &srv, VIEWER, &["sensor", "list"])
        .ok()
        .stdout_has("core.hook");

    remote(&sq, &srv, VIEWER, &["action", "list"])
        .ok()
        .stdout_has("core.echo");
    remote(&sq, &srv, VIEWER, &["action", "get", "core.echo"])
        .ok()
        .stdout_has("message");
    remote(&sq, &srv, VIEWER, &["pack", "list"])
        .ok()
        .stdout_has("core");
}

#[test]
fn tokens_roles_and_unreachable_servers_are_named() {
    let (sq, srv) = start();
    remote(
        &sq,
        &srv,
        "not-a-valid-token-at-all",
        &["execution", "list"],
    )
    .code(1)
    .stderr_has("the server refused the token (401)");
    remote(&sq, &srv, VIEWER, &["run", "core.echo", "message=x"])
        .code(1)
        .stderr_has("(403)")
        .stderr_has("operator");
    remote(&sq, &srv, VIEWER, &["trigger", "emit", "core.webhook"])
        .code(1)
        .stderr_has("(403)");
    remote(&sq, &srv, OPERATOR, &["run", "core.nope"])
        .code(2)
        .stderr_has("core.nope");

    let dead = format!("http://127.0.0.1:{}", free_port());
    let out = sq.run(&["--server", &dead, "sensor", "list"]);
    out.code(1)
        .no_panic()
        .stderr_has(&format!("cannot reach the Squall server at {dead}"));

    // Local mode: what needs a server says so.
    sq.run(&["trigger", "emit", "core.webhook"])
        .code(2)
        .stderr_has("--server");
}
