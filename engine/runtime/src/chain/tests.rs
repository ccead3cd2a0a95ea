//! Tests of the chain interpreter that need an engine and a store.

use crate::executions::{Engine, Request};
use squall_core::content;
use squall_core::model::{Execution, Status};
use squall_core::store::SledStore;
use std::sync::Arc;

/// Run workflow `site.w` (`workflow` is its YAML) in a fresh content root whose pack `t`
/// has a no-op action `t.n` taking `v` and `first`; the record and the store.
async fn run_workflow(
    workflow: &str,
) -> (Execution, Arc<Engine>, Arc<SledStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("packs/t/actions")).expect("mkdir");
    std::fs::create_dir_all(root.join("workflows")).expect("mkdir");
    std::fs::write(root.join("packs/t/pack.yaml"), "name: t\n").expect("write");
    std::fs::write(
        root.join("packs/t/actions/n.yaml"),
        "name: n\nrunner: noop\nparameters:\n  v: {}\n  first: {}\n",
    )
    .expect("write");
    std::fs::write(root.join("workflows/w.yaml"), workflow).expect("write");
    let content = Arc::new(content::load(root, &crate::builtin()).expect("valid content"));
    let store = Arc::new(SledStore::open(&root.join(".squall"), None).expect("store"));
    let engine = crate::engine(content, store.clone(), crate::builtin().runners);
    let wf = engine
        .execute(Request {
            action: "site.w".into(),
            parameters: serde_json::json!({}),
            ..Default::default()
        })
        .await
        .expect("workflow ran");
    (wf, engine, store, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_children_keep_their_final_record() {
    let items: Vec<u32> = (0..40).collect();
    let (wf, _engine, store, _dir) = run_workflow(&format!(
        "name: w\nchain:\n  - name: each\n    ref: t.n\n    with: {{items: {items:?}, concurrency: 4}}\n    parameters: {{v: \"{{{{ item }}}}\"}}\n"
    ))
    .await;
    assert_eq!(wf.status, Status::Succeeded);
    assert_eq!(wf.children.len(), 40);
    // The items and per-item entries were folded into the task's entry and removed.
    let tree = store.db().open_tree("executions").expect("tree");
    let left: Vec<String> = tree
        .scan_prefix(format!("w:{}\0", wf.id))
        .keys()
        .map(|k| String::from_utf8_lossy(&k.expect("key")).to_string())
        .collect();
    assert_eq!(left, [format!("w:{}\0t:each", wf.id)]);
    let state = store
        .get_workflow_state(&wf.id)
        .expect("store")
        .expect("state");
    let results = state["tasks"]["each"]["result"]
        .as_array()
        .expect("results");
    assert_eq!(results.len(), 40);
    assert_eq!(results[39]["v"], 39, "items keep their order");
    for c in &wf.children {
        let rec = store
            .get_execution(&c.id)
            .expect("store")
            .expect("child record");
        assert_eq!(
            rec.status,
            Status::Succeeded,
            "child {} left {:?}",
            c.id,
            rec.status
        );
    }
}

/// A long chain keeps each task's entry and its children apart from the state's head and
/// the workflow's record, and `tasks`, results and publishes still work across all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_chains_store_tasks_and_children_as_entries() {
    let mut wf = String::from("name: w\nvars: {sum: 0}\nchain:\n");
    for i in 0..30 {
        let extra = if i == 29 {
            ", first: \"{{ tasks.t0.result.v }}\""
        } else {
            ""
        };
        wf.push_str(&format!(
            "  - name: t{i}\n    ref: t.n\n    parameters: {{v: {i}{extra}}}\n    publish: {{sum: \"{{{{ sum + result.v }}}}\"}}\n"
        ));
        if i < 29 {
            wf.push_str(&format!("    on-success: t{}\n", i + 1));
        }
    }
    wf.push_str("output: {sum: \"{{ sum }}\", first: \"{{ tasks.t29.result.first }}\", n: \"{{ tasks.len() }}\"}\n");
    let (wf, engine, store, _dir) = run_workflow(&wf).await;
    assert_eq!(wf.status, Status::Succeeded, "{wf:#?}");
    assert_eq!(
        wf.result,
        Some(serde_json::json!({"sum": 435, "first": 0, "n": 30}))
    );
    let tasks: Vec<_> = wf.children.iter().map(|c| c.task.clone()).collect();
    let expected: Vec<_> = (0..30).map(|i| format!("t{i}")).collect();
    assert_eq!(tasks, expected);
    assert_eq!(engine.get(&wf.id).expect("get").children.len(), 30);

    let state = store
        .get_workflow_state(&wf.id)
        .expect("store")
        .expect("state");
    assert_eq!(state["tasks"].as_object().map(|m| m.len()), Some(30));
    assert_eq!(state["tasks"]["t7"]["result"]["v"], 7);
    let tree = store.db().open_tree("executions").expect("tree");
    let head = tree
        .get(format!("w:{}", wf.id))
        .expect("read")
        .expect("head");
    let head: serde_json::Value = serde_json::from_slice(&head[1..]).expect("json head");
    assert_eq!(head["tasks"], serde_json::json!({}), "{head}");
    let record = tree
        .get(format!("e:{}", wf.id))
        .expect("read")
        .expect("record");
    assert!(!String::from_utf8_lossy(&record).contains("children"));
}

/// A workflow whose saved state cannot be read fails with an error that says so when it is
/// resumed; it never reports success and never runs (or skips) tasks silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_saved_state_fails_the_resumed_workflow() {
    let chain = "name: w\nchain:\n  - name: a\n    ref: t.n\n    on-success: b\n  - name: b\n    ref: t.n\n";
    // A state of the wrong shape, and bytes that are not a state at all.
    let bad: [(Option<&[u8]>, &str); 2] = [
        (None, "cannot be read"),
        (Some(b"\x00\x01 junk"), "unknown state encoding"),
    ];
    for (bytes, expected) in bad {
        let (wf, engine, store, _dir) = run_workflow(chain).await;
        assert_eq!(wf.status, Status::Succeeded);
        assert_eq!(wf.children.len(), 2);
        // As if the engine had died in the middle: the record says running, and the
        // state head is damaged.
        let mut rec = store.get_execution(&wf.id).expect("store").expect("record");
        rec.status = Status::Running;
        rec.finished_at = None;
        store
            .put_execution(Some(Status::Succeeded), &rec)
            .expect("put");
        let mut batch = squall_core::store::Batch::default();
        let wrong_shape = serde_json::json!({"scope": 5, "cursor": "b"});
        store.workflow_state(&mut batch, &wf.id, &wrong_shape);
        store.commit(batch).expect("commit");
        if let Some(bytes) = bytes {
            let tree = store.db().open_tree("executions").expect("tree");
            tree.insert(format!("w:{}", wf.id), bytes).expect("insert");
        }
        let report = engine.recover().await.expect("recover");
        assert_eq!(report.resumed, std::slice::from_ref(&wf.id));
        engine.drain(std::time::Duration::from_secs(30)).await;
        let after = store.get_execution(&wf.id).expect("store").expect("record");
        assert_eq!(after.status, Status::Failed, "{after:?}");
        let error = after.error.unwrap_or_default();
        assert!(error.contains(expected), "{error}");
        assert_eq!(
            after.children.len(),
            2,
            "no task ran again: {:?}",
            after.children
        );
    }
}
