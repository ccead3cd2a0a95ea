//! The data dir: one process at a time, records that outlive the process, and nothing
//! lost when the content goes bad.

use crate::harness::{id, Squall};
use serde_json::Value;
use std::time::{Duration, Instant};

#[test]
fn only_one_process_may_open_the_data_dir() {
    let sq = Squall::core_only();
    let lock = sq.data().join("LOCK");
    let mut bg = Some(sq.cmd(&["run", "core.sleep", "seconds=8"]).spawn());
    // Wait until the background run holds the lock (it writes who it is into LOCK).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(
            Instant::now() < deadline,
            "the background run never took the data dir lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = sq.run(&["execution", "list"]);
    second.no_panic().stderr_has("in use");
    assert_eq!(second.code, 1, "{}", second.describe());
    let also = sq.run(&["run", "core.noop"]);
    also.no_panic().stderr_has("in use");
    assert_ne!(also.code, 0);
    // The first process was not disturbed; once it ends, the data dir is free again.
    let first = bg.take().expect("running").wait();
    first.ok();
    let list = sq.run(&["execution", "list", "-o", "json"]);
    list.ok();
    let recs = list.json();
    let recs = recs.as_array().expect("array");
    assert_eq!(recs.len(), 1, "only the sleep was recorded: {recs:#?}");
    assert_eq!(recs[0]["action"], "core.sleep");
    assert_eq!(recs[0]["status"], "succeeded");
}

#[test]
fn records_survive_across_processes() {
    let sq = Squall::core_only();
    let mut ids = Vec::new();
    for msg in ["one", "two", "three"] {
        let (out, rec) = sq.exec_json(&["core.echo", &format!("message={msg}")]);
        out.ok();
        ids.push(id(&rec));
    }
    let list = sq.run(&["execution", "list", "-o", "json"]);
    list.ok();
    let listed: Vec<String> = list
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("").to_string())
        .collect();
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed, newest_first);
    let rec = sq.get(&ids[1]);
    assert_eq!(rec["result"]["stdout"], "two");
    assert_eq!(rec["status"], "succeeded");
    let table = sq.run(&["execution", "list"]);
    table.ok().stdout_has(&ids[0]).stdout_has("core.echo");
    // Another data dir is another store.
    let other = sq.path("elsewhere");
    let o = sq.run(&[
        "--data",
        other.to_str().unwrap_or(""),
        "execution",
        "list",
        "-o",
        "json",
    ]);
    o.ok();
    assert_eq!(o.json(), Value::Array(vec![]));
}

#[test]
fn broken_content_fails_commands_but_loses_nothing() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "fine",
        "name: fine\nrunner: noop\nparameters:\n  x: {type: integer}\n",
    );
    let (out, rec) = sq.exec_json(&["t.fine", "x=7"]);
    out.ok();
    let before = sq.get(&id(&rec));
    // Break the content: invalid YAML.
    sq.action(
        "t",
        "fine",
        "name: fine\nrunner: noop\nparameters:\n  x: {type: integer\n",
    );
    for args in [
        &["run", "core.noop"][..],
        &["run", "t.fine", "x=8"][..],
        &["execution", "list"][..],
        &["execution", "get", &id(&rec)][..],
        &["validate"][..],
    ] {
        let o = sq.run(args);
        o.code(1).no_panic();
        let text = format!("{}{}", o.stdout, o.stderr);
        assert!(
            text.contains("packs/t/actions/fine.yaml:"),
            "the problem is shown\n{}",
            o.describe()
        );
    }
    let j = sq.run(&["run", "core.noop", "-o", "json"]);
    j.code(1);
    assert!(j.json()["error"].is_string(), "{}", j.describe());
    // A bad parameter and an unknown action with good content change nothing either.
    sq.action(
        "t",
        "fine",
        "name: fine\nrunner: noop\nparameters:\n  x: {type: integer}\n",
    );
    sq.run(&["run", "t.fine", "x=seven"]).code(2);
    sq.run(&["run", "t.gone"]).code(2);
    // Fixed: the earlier execution is still there, unchanged, and the only one.
    let after = sq.get(&id(&rec));
    assert_eq!(after, before);
    let list = sq.run(&["execution", "list", "--all", "-o", "json"]);
    list.ok();
    assert_eq!(
        list.json().as_array().map(Vec::len),
        Some(1),
        "{}",
        list.describe()
    );
    sq.run(&["run", "t.fine", "x=8"]).ok();
}

#[test]
fn rerun_repeats_an_execution_with_the_same_parameters() {
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.echo", "message=again"]);
    out.ok();
    let re = sq.run(&["execution", "rerun", &id(&rec), "-o", "json"]);
    re.ok();
    let rec2 = re.json();
    assert_ne!(rec2["id"], rec["id"]);
    assert_eq!(rec2["parameters"], rec["parameters"]);
    assert_eq!(rec2["result"]["stdout"], "again");
}

/// A sensor whose checkpoint cannot be read stays in error (it does not start over and
/// emit again) until `squall sensor reset` removes the checkpoint.
#[test]
fn an_unreadable_sensor_checkpoint_keeps_the_sensor_in_error_until_reset() {
    use crate::server::Server;
    let sq = Squall::core_only();
    sq.write(
        "sensors/tick.yaml",
        "name: tick\ntype: interval\nconfig:\n  every: 1s\n",
    );
    let events = |v: &serde_json::Value| {
        v.as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == "site.tick"))
            .map(|s| (s["events"].as_u64().unwrap_or(0), s.clone()))
    };
    let server = Server::start(&sq);
    server.wait_json("/api/v1/sensors", None, 60, |v| {
        events(v).is_some_and(|(n, _)| n >= 1)
    });
    assert_eq!(server.terminate(), Some(0));
    {
        let store = squall_core::store::SledStore::open(&sq.data(), None).expect("store");
        let tree = store.db().open_tree("sensors").expect("tree");
        assert!(
            tree.get("c:site.tick").expect("get").is_some(),
            "a checkpoint was saved"
        );
        tree.insert("c:site.tick", &b"{\"last_scheduled_at\": 12"[..])
            .expect("insert");
        store.db().flush().expect("flush");
    }
    let server = Server::start(&sq);
    let (_, status) = events(&server.wait_json("/api/v1/sensors", None, 60, |v| {
        events(v).is_some_and(|(_, s)| s["errors"].as_u64().unwrap_or(0) >= 1)
    }))
    .expect("sensor listed");
    let error = status["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("the checkpoint of sensor site.tick cannot be read")
            && error.contains("squall sensor reset site.tick"),
        "{status}"
    );
    assert_eq!(
        status["events"], 0,
        "nothing emitted from a lost checkpoint: {status}"
    );
    assert_eq!(server.terminate(), Some(0));
    let out = sq.run(&["sensor", "reset", "site.tick"]);
    out.ok().stdout_has("checkpoint removed");
    sq.run(&["sensor", "reset", "site.tick"])
        .ok()
        .stdout_has("has no checkpoint");
    let server = Server::start(&sq);
    server.wait_json("/api/v1/sensors", None, 60, |v| {
        events(v).is_some_and(|(n, _)| n >= 1)
    });
    assert_eq!(server.terminate(), Some(0));
}
