//! Bad input: nothing accepted that cannot be read back (the nesting limit at every entry
//! point), one unreadable record never takes a listing or the start-up down, damaged data
//! dirs give clear errors.

use crate::harness::Squall;
use crate::server::Server;
use serde_json::{json, Value};
use std::io::{Read, Write};

/// `levels` arrays around `1`, as JSON text.
fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

/// Status line, head (lower-cased) and body of one request, for tests that need headers.
fn with_head(s: &Server, path: &str) -> (u16, String, String) {
    let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = String::new();
    c.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn webhook_content(sq: &Squall) {
    sq.write(
        "sensors/hook.yaml",
        "name: hook\ntype: webhook\nconfig: {path: deep}\n",
    );
    // The whole body goes into the execution's parameters (and the noop result): the
    // record holds it two levels deeper than the request did.
    sq.action(
        "core",
        "keep",
        "name: keep\nrunner: noop\nparameters:\n  data: {type: object}\n",
    );
    sq.write(
        "rules/keep.yaml",
        "name: keep\ntrigger: core.webhook\naction:\n  ref: core.keep\n  parameters:\n    data: \"{{ trigger.body }}\"\n",
    );
}

#[test]
fn a_webhook_too_deep_to_read_back_is_refused_and_a_legal_deep_one_runs_its_rule() {
    let sq = Squall::core_only();
    webhook_content(&sq);
    let s = Server::start(&sq);
    // 125 levels: serde_json parses it, but stored inside a record it could not be read.
    let body = format!("{{\"n\": {}}}", nested(124));
    let r = s.raw("POST", "/api/v1/webhooks/deep", body.as_bytes(), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    let msg = r.json()["error"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("more than 64 levels"), "{msg}");
    assert!(msg.contains("at `body.n[0][0]"), "{msg}");
    // The same through the API's trigger endpoint.
    let r = s.request(
        "POST",
        "/api/v1/triggers/core.webhook",
        Some(&format!("{{\"x\": {}}}", nested(70))),
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("the trigger payload nests more than 64"),
        "{}",
        r.body
    );

    // A legal deep body (the payload {headers, body, path} nests 64 levels).
    let legal = format!("{{\"n\": {}}}", nested(62));
    let r = s.raw("POST", "/api/v1/webhooks/deep", legal.as_bytes(), &[]);
    assert_eq!(r.status, 202, "{}", r.body);
    let list = s.wait_json("/api/v1/executions?action=core.keep", None, 30, |v| {
        v.as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["status"] == "succeeded")
    });
    let stored: Value = serde_json::from_str(&legal).unwrap();
    assert_eq!(list[0]["parameters"]["data"], stored);
    let r = s.request("GET", "/api/v1/trigger-instances", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json().as_array().map(Vec::len),
        Some(1),
        "only the legal one"
    );

    // A clean stop and start: everything still reads.
    assert_eq!(s.terminate(), Some(0));
    let s = Server::start(&sq);
    let r = s.request("GET", "/api/v1/trigger-instances", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.request("GET", "/api/v1/executions", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["parameters"]["data"], stored);
}

#[test]
fn parameters_and_results_too_deep_are_refused_with_the_limit_and_the_path() {
    let sq = Squall::core_only();
    sq.action(
        "core",
        "deep",
        "name: deep\nrunner: rhai\nentry_point: deep.rhai\nparameters:\n  n: {type: integer}\n",
    );
    sq.write(
        "packs/core/actions/deep.rhai",
        "let v = 1; for i in 0..params.n { v = [v]; } v",
    );
    sq.action(
        "core",
        "deep_json",
        "name: deep_json\nrunner: shell\nentry_point: deep_json.sh\n",
    );
    sq.write_exec(
        "packs/core/actions/deep_json.sh",
        &format!("#!/bin/sh\necho '{}'\n", nested(100)),
    );
    // CLI parameters, 126 levels deep.
    let p = format!("{{\"x\": {}}}", nested(125));
    let out = sq.run(&["run", "core.noop", "-p", &p]);
    out.no_panic()
        .stderr_has("parameters nests more than 64 levels");
    assert_eq!(out.code, 1, "{}", out.describe());
    // A rhai result 150 levels deep, and one of 64 (legal).
    let (out, rec) = sq.exec_json(&["core.deep", "n=150"]);
    out.no_panic();
    assert_eq!(rec["status"], "failed", "{rec:#}");
    let err = rec["error"].as_str().unwrap_or("");
    assert!(
        err.contains("the result nests more than 64 levels"),
        "{err}"
    );
    assert!(err.contains("at `result[0][0]"), "{err}");
    let (out, rec) = sq.exec_json(&["core.deep", "n=64"]);
    out.ok();
    assert_eq!(
        rec["result"],
        serde_json::from_str::<Value>(&nested(64)).unwrap()
    );
    // A shell whose output parses as JSON too deep to keep.
    let (_, rec) = sq.exec_json(&["core.deep_json"]);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap_or("")
            .contains("more than 64 levels"),
        "{rec:#}"
    );
    // Nothing unreadable was stored: every record lists and reads.
    let list = sq.run(&["execution", "list", "-o", "json"]);
    list.ok();
    let all = list.json();
    assert_eq!(all.as_array().map(Vec::len), Some(3), "{all:#}");
    assert!(
        !list.stderr.contains("could not be read"),
        "{}",
        list.stderr
    );
    for e in all.as_array().unwrap() {
        sq.get(e["id"].as_str().unwrap());
    }

    // Through the API: 400 naming the limit.
    let s = Server::start(&sq);
    let body = json!({"action": "core.noop", "parameters": {"x": serde_json::from_str::<Value>(&nested(80)).unwrap()}});
    let r = s.request("POST", "/api/v1/executions", Some(&body.to_string()), None);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("at `x[0][0]"),
        "{}",
        r.body
    );
}

/// Write raw bytes under `key` of `tree` in the data dir (no server running).
fn plant(sq: &Squall, tree: &str, key: &str, value: &[u8]) {
    let store = squall_core::store::SledStore::open(&sq.data(), None).expect("open the store");
    store
        .db()
        .open_tree(tree)
        .expect("tree")
        .insert(key, value)
        .expect("insert");
    store.db().flush().expect("flush");
}

#[test]
fn an_unreadable_record_is_skipped_by_listings_and_start_up_and_named() {
    let sq = Squall::core_only();
    let (out, good) = sq.exec_json(&["core.echo", "message=kept"]);
    out.ok();
    // A running execution whose record is damaged (truncated), a damaged pending trigger,
    // and a trigger 130 levels deep as an older Squall could store it.
    let bad = "01J00000000000000000000BAD";
    plant(&sq, "executions", &format!("s:running:{bad}"), b"");
    plant(
        &sq,
        "executions",
        &format!("e:{bad}"),
        br#"{"id": "01J00000000000000000000BAD", "act"#,
    );
    plant(&sq, "triggers", "01J00000000000000000000TR1", b"{\"id\": ");
    let deep = json!({"id": "01J00000000000000000000TR2", "type": "core.nothing", "source": "old",
        "occurred_at": "2024-01-01T00:00:00Z", "status": "processed",
        "payload": {"body": squall_core::limits::nested_array(130)}});
    plant(
        &sq,
        "triggers",
        "01J00000000000000000000TR2",
        deep.to_string().as_bytes(),
    );

    // The CLI lists what it can and says what it left out.
    let list = sq.run(&["execution", "list", "-o", "json"]);
    list.ok()
        .stderr_has(&format!("e:{bad}"))
        .stderr_has("squall store check");
    assert_eq!(list.json()[0]["id"], good["id"]);
    let get = sq.run(&["execution", "get", bad]);
    get.no_panic()
        .stderr_has(&format!("record e:{bad} cannot be read"));
    assert_eq!(get.code, 1);

    // The server starts (recovery reports the record and goes on) and lists.
    let s = Server::start(&sq);
    let (status, head, body) = with_head(&s, "/api/v1/executions");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-squall-skipped: 1"), "{head}");
    assert!(
        head.contains(&format!("e:{}", bad.to_ascii_lowercase())),
        "{head}"
    );
    let (status, head, body) = with_head(&s, "/api/v1/trigger-instances");
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("x-squall-skipped: 1"), "{head}");
    // The deep one reads, its parts below 100 levels as JSON text (any client reads it).
    let triggers: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        triggers[0]["id"], "01J00000000000000000000TR2",
        "{triggers:#}"
    );
    assert_eq!(squall_core::limits::depth(&triggers), 101);
    let r = s.request("GET", &format!("/api/v1/executions/{bad}"), None, None);
    assert_eq!(r.status, 500);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be read"),
        "{}",
        r.body
    );
    assert!(
        s.log_text().contains(&format!("e:{bad}")),
        "{}",
        s.log_text()
    );
    assert_eq!(s.terminate(), Some(0));

    // `squall store check` names every unreadable record, and changes nothing.
    let check = sq.run(&["store", "check"]);
    check
        .no_panic()
        .stdout_has(&format!("cannot read executions:e:{bad}"))
        .stdout_has("cannot read triggers:01J00000000000000000000TR1")
        .stderr_has("2 record(s) cannot be read");
    assert_eq!(check.code, 1, "{}", check.describe());
    let again = sq.run(&["store", "check", "-o", "json"]);
    assert_eq!(again.code, 1);
    let report = again.json();
    let unreadable: usize = report["trees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["unreadable"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(unreadable, 2, "{report:#}");
}

#[test]
fn a_truncated_database_is_refused_with_its_path_and_a_clean_one_checks() {
    let sq = Squall::core_only();
    for m in ["one", "two", "three"] {
        sq.run(&["run", "core.echo", &format!("message={m}")]).ok();
    }
    sq.run(&["store", "check"]).ok().stdout_has("executions");
    // Cut the log file short, as a full disk or a lost write-back cache can.
    let db = sq.data().join("db").join("db");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .expect("db file");
    f.set_len(2000).expect("truncate");
    drop(f);
    let data = sq.data().display().to_string();
    for args in [&["execution", "list"][..], &["store", "check"][..]] {
        let out = sq.run(args);
        out.no_panic()
            .stderr_has(&format!(
                "data dir {data}: the database in {data}/db is damaged"
            ))
            .stderr_has("A damaged data directory");
        assert_eq!(out.code, 1, "{}", out.describe());
    }
}

#[test]
fn content_files_duplicate_keys_bom_nesting_and_size() {
    let sq = Squall::core_only();
    // A byte-order mark at the start is fine.
    sq.write(
        "rules/bom.yaml",
        "\u{feff}name: bom\ntrigger: core.webhook\naction:\n  ref: core.noop\n",
    );
    sq.run(&["validate"]).ok();

    // A key written twice: both places are named.
    sq.write(
        "rules/twice.yaml",
        "name: twice\ntrigger: core.webhook\naction:\n  ref: core.noop\n  ref: core.echo\n",
    );
    let out = sq.run(&["validate"]);
    out.no_panic().stdout_has(
        "rules/twice.yaml:5:3: duplicate key `ref`: it is also at rules/twice.yaml:4:3",
    );
    assert_eq!(out.code, 1, "{}", out.describe());
    std::fs::remove_file(sq.path("rules/twice.yaml")).unwrap();

    // A 200 KB rule nested 100,000 levels deep is refused at once, with its position.
    let n = 100_000;
    sq.write(
        "rules/deep.yaml",
        &format!(
            "name: deep\ntrigger: core.webhook\naction:\n  ref: core.noop\n  parameters:\n    x: {}1{}\n",
            "[".repeat(n),
            "]".repeat(n)
        ),
    );
    let out = sq.run(&["validate"]);
    out.no_panic()
        .stdout_has("rules/deep.yaml:6:72: collections nest more than 64 levels deep");
    assert_eq!(out.code, 1, "{}", out.describe());
    std::fs::remove_file(sq.path("rules/deep.yaml")).unwrap();

    // A file over 1 MiB.
    sq.write(
        "rules/big.yaml",
        &format!(
            "name: big\ntrigger: core.webhook\naction:\n  ref: core.noop\n# {}\n",
            "x".repeat(1024 * 1024)
        ),
    );
    let out = sq.run(&["validate"]);
    out.no_panic()
        .stdout_has("rules/big.yaml:1:1: the file is")
        .stdout_has("more than the limit of 1048576 bytes");
    assert_eq!(out.code, 1, "{}", out.describe());
}
