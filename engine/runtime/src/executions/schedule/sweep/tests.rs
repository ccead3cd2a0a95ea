//! Tests of the first steps of recovery: leftover processes and orphaned children.

use crate::executions::Engine;
use crate::runners::process::{boot_id, proc_stat};
use serde_json::json;
use squall_core::content;
use squall_core::model::{Execution, Json, Status};
use squall_core::store::{Batch, ProcessRecord, SledStore};
use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::time::Duration;

fn engine() -> (Arc<Engine>, Arc<SledStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("packs/t/actions")).expect("mkdir");
    std::fs::create_dir_all(root.join("packs/t/workflows")).expect("mkdir");
    std::fs::write(root.join("packs/t/pack.yaml"), "name: t\n").expect("write");
    std::fs::write(
        root.join("packs/t/actions/n.yaml"),
        "name: n\nrunner: noop\n",
    )
    .expect("write");
    std::fs::write(
        root.join("packs/t/workflows/w.yaml"),
        "name: w\nchain:\n  - name: a\n    ref: t.n\n",
    )
    .expect("write");
    let content = Arc::new(content::load(root, &crate::builtin()).expect("valid content"));
    let store = Arc::new(SledStore::open(&root.join(".squall"), None).expect("store"));
    let engine = crate::engine(content, store.clone(), crate::builtin().runners);
    (engine, store, dir)
}

fn exec(id: &str, action: &str, status: Status, parent: Option<&str>) -> Execution {
    Execution {
        id: id.into(),
        action: action.into(),
        parameters: json!({}),
        status,
        result: None,
        error: None,
        created_at: squall_core::model::now_rfc3339(),
        started_at: None,
        finished_at: None,
        parent: parent.map(str::to_string),
        task: parent.map(|_| "a".to_string()),
        trigger_instance: None,
        rule: None,
        attempt: 1,
        requested_by: None,
        item: None,
        children: vec![],
    }
}

/// A workflow state whose cursor is at task `a` with `in_flight` running.
fn state(in_flight: Json) -> Json {
    json!({"scope": {}, "published": [], "cursor": {"task": "a", "attempt": 1, "pass": 1, "in_flight": in_flight}, "task_runs": 1, "last": null, "passes": 1})
}

fn put(store: &SledStore, records: &[Execution], states: &[(&str, Json)]) {
    let mut b = Batch::default();
    for e in records {
        b.execution(None, e);
    }
    for (id, s) in states {
        store.workflow_state(&mut b, id, s);
    }
    store.commit(b).expect("commit");
}

fn status(store: &SledStore, id: &str) -> Status {
    store.get_execution(id).unwrap().expect("record").status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_no_workflow_will_settle_are_abandoned_and_none_is_left_unfinished() {
    let (engine, store, _dir) = engine();
    put(
        &store,
        &[
            // A workflow that has ended, with a child still `running`.
            exec("01W1", "t.w", Status::Succeeded, None),
            exec("01W1C", "t.n", Status::Running, Some("01W1")),
            // A running workflow whose state does not name its running child.
            exec("01W2", "t.w", Status::Running, None),
            exec("01W2C", "t.n", Status::Running, Some("01W2")),
            // A running workflow whose state names its running child: it settles it.
            exec("01W3", "t.w", Status::Running, None),
            exec("01W3C", "t.n", Status::Running, Some("01W3")),
            // A child whose workflow is not there at all.
            exec("01W4C", "t.n", Status::Running, Some("01W4")),
        ],
        &[
            ("01W2", state(json!({}))),
            ("01W3", state(json!({"0": "01W3C"}))),
        ],
    );
    let report = engine.recover().await.expect("recovers");
    assert_eq!(report.abandoned, ["01W1C", "01W2C", "01W4C"], "{report:?}");
    assert_eq!(report.resumed, ["01W2", "01W3"], "{report:?}");
    engine.drain(Duration::from_secs(30)).await;
    for id in ["01W1C", "01W2C", "01W4C"] {
        let e = store.get_execution(id).unwrap().unwrap();
        assert_eq!(e.status, Status::Abandoned, "{e:?}");
        assert!(e.error.unwrap().contains("no longer tracks it"));
    }
    // Settled by its workflow (not idempotent: abandoned, not run again).
    assert_eq!(status(&store, "01W3C"), Status::Abandoned);
    for w in ["01W2", "01W3"] {
        assert!(status(&store, w).is_terminal(), "{w} did not finish");
    }
    assert_eq!(store.unfinished().unwrap().items, Vec::<Execution>::new());
}

#[tokio::test]
async fn a_child_entry_left_without_its_record_is_not_listed() {
    let (_engine, store, _dir) = engine();
    put(
        &store,
        &[
            exec("01W", "t.w", Status::Running, None),
            exec("01WA", "t.n", Status::Succeeded, Some("01W")),
            exec("01WB", "t.n", Status::Running, Some("01W")),
        ],
        &[],
    );
    // A crash between the child's entry and its record leaves the entry alone.
    store
        .db()
        .open_tree("executions")
        .unwrap()
        .remove("e:01WB")
        .unwrap();
    let w = store.get_execution("01W").unwrap().unwrap();
    let ids: Vec<&str> = w.children.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["01WA"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_first_kills_the_process_groups_left_running() {
    let (engine, store, _dir) = engine();
    let mut child = std::process::Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .expect("sleep");
    let pid = child.id() as libc::pid_t;
    let start_time = proc_stat(pid).expect("stat").start_time;
    store
        .record_process(&ProcessRecord {
            execution: "01GONE".into(),
            pid,
            pgid: pid,
            start_time,
            boot_id: boot_id(),
        })
        .unwrap();
    let report = engine.recover().await.expect("recovers");
    assert_eq!(report.processes_ended.len(), 1, "{report:?}");
    assert!(
        report.processes_ended[0].starts_with("01GONE"),
        "{report:?}"
    );
    // Killed by SIGKILL, and the record is forgotten.
    let status = child.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(store.recorded_processes().unwrap().is_empty());
}
