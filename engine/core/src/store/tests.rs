use super::*;
use crate::model::Execution;
use serde_json::json;

fn exec(id: &str, action: &str, status: Status) -> Execution {
    Execution {
        id: id.into(),
        action: action.into(),
        parameters: json!({}),
        status,
        result: None,
        error: None,
        created_at: crate::model::now_rfc3339(),
        started_at: None,
        finished_at: None,
        parent: None,
        task: None,
        trigger_instance: None,
        rule: None,
        attempt: 1,
        requested_by: None,
        item: None,
        children: vec![],
    }
}

#[tokio::test]
async fn records_indexes_and_listing() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    let mut a = exec("01A", "core.noop", Status::Running);
    s.put_execution(None, &a).unwrap();
    let b = exec("01B", "core.echo", Status::Succeeded);
    let t = s.put_execution(None, &b).unwrap();
    s.durable(t).await.unwrap();
    a.status = Status::Failed;
    s.put_execution(Some(Status::Running), &a).unwrap();

    let all = s.list_executions(&ListFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["01B", "01A"]
    );
    let failed = s
        .list_executions(&ListFilter {
            status: Some(Status::Failed),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "01A");
    let running = s
        .list_executions(&ListFilter {
            status: Some(Status::Running),
            ..Default::default()
        })
        .unwrap();
    assert!(
        running.is_empty(),
        "the old status index entry must be gone"
    );
    let by_action = s
        .list_executions(&ListFilter {
            action: Some("core.echo".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_action[0].id, "01B");
    let limited = s
        .list_executions(&ListFilter {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(limited.len(), 1);
    assert!(s.unfinished().unwrap().is_empty());
}

#[tokio::test]
async fn records_survive_reopen_and_second_open_is_refused() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(d.path(), None).unwrap();
        let e = exec("01C", "core.noop", Status::Running);
        let t = s.put_execution(None, &e).unwrap();
        s.durable(t).await.unwrap();
        let err = SledStore::open(d.path(), None)
            .err()
            .expect("second open must fail");
        let msg = err.to_string();
        assert!(msg.contains("in use by another Squall process"), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
    }
    let s = SledStore::open(d.path(), None).unwrap();
    let back = s.get_execution("01C").unwrap().unwrap();
    assert_eq!(back.status, Status::Running);
    assert_eq!(s.unfinished().unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_are_sealed_on_disk() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    crate::secrets::register("sealed-secret-value-xyz");
    let mut b = Batch::default();
    s.seal_params(
        &mut b,
        "01D",
        &json!({"password": "sealed-secret-value-xyz"}),
    );
    s.workflow_state(
        &mut b,
        "01D",
        &json!({"scope": {"pw": "sealed-secret-value-xyz"}}),
    );
    s.workflow_state(&mut b, "01E", &json!({"scope": {"n": 1}}));
    s.workflow_task(
        &mut b,
        "01E",
        "login",
        &json!({"status": "succeeded", "result": {"token": "sealed-secret-value-xyz"}}),
    );
    s.seal_result(
        &mut b,
        "01F",
        &json!({"data": {"pw": "sealed-secret-value-xyz"}}),
    );
    let t = s.commit(b).unwrap();
    s.durable(t).await.unwrap();
    assert_eq!(
        s.sealed_params("01D").unwrap().unwrap()["password"],
        "sealed-secret-value-xyz"
    );
    assert_eq!(
        s.get_workflow_state("01D").unwrap().unwrap()["scope"]["pw"],
        "sealed-secret-value-xyz"
    );
    let state = s.get_workflow_state("01E").unwrap().unwrap();
    assert_eq!(state["scope"]["n"], 1);
    assert_eq!(
        state["tasks"]["login"]["result"]["token"],
        "sealed-secret-value-xyz"
    );
    assert_eq!(
        s.sealed_result("01F").unwrap().unwrap()["data"]["pw"],
        "sealed-secret-value-xyz"
    );
    assert_eq!(s.sealed_result("01E").unwrap(), None);
    drop(s);
    // Nothing under the data dir holds the clear text.
    for entry in walk(d.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(23).any(|w| w == b"sealed-secret-value-xyz"),
            "secret found in clear in {}",
            entry.display()
        );
    }
}

#[test]
fn children_are_listed_from_their_own_entries_in_run_order() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    let wf = exec("01W", "p.flow", Status::Running);
    s.put_execution(None, &wf).unwrap();
    let mut kids = Vec::new();
    for (id, task, item) in [("01X", "a", None), ("01Y", "b", Some(json!("h1")))] {
        let mut c = exec(id, "core.noop", Status::Running);
        c.parent = Some("01W".into());
        c.task = Some(task.into());
        c.item = item;
        s.put_execution(None, &c).unwrap();
        kids.push(c);
    }
    kids[0].status = Status::Succeeded;
    s.put_execution(Some(Status::Running), &kids[0]).unwrap();

    let got = s.get_execution("01W").unwrap().unwrap();
    let view: Vec<_> = got
        .children
        .iter()
        .map(|c| (c.id.as_str(), c.task.as_str(), c.status, c.item.clone()))
        .collect();
    assert_eq!(
        view,
        [
            ("01X", "a", Status::Succeeded, None),
            ("01Y", "b", Status::Running, Some(json!("h1")))
        ]
    );
    // Listing attaches them too; the workflow's own record never holds them.
    let listed = s.list_executions(&ListFilter::default()).unwrap();
    let w = listed.iter().find(|e| e.id == "01W").unwrap();
    assert_eq!(w.children.len(), 2);
    let mut with_children = got.clone();
    with_children.status = Status::Succeeded;
    s.put_execution(Some(Status::Running), &with_children)
        .unwrap();
    let raw = s.exec.get("e:01W").unwrap().unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("01X"));
    assert_eq!(s.get_execution("01W").unwrap().unwrap().children.len(), 2);
}

#[test]
fn data_of_schema_version_1_is_read() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(d.path(), None).unwrap();
        // Version 1 kept children in the record and tasks in the state.
        let mut wf = serde_json::to_value(exec("01V", "p.flow", Status::Succeeded)).unwrap();
        wf["children"] =
            json!([{"id": "01Z", "task": "a", "action": "core.noop", "status": "succeeded"}]);
        s.exec
            .insert("e:01V", serde_json::to_vec(&wf).unwrap())
            .unwrap();
        let mut state = b"J".to_vec();
        state
            .extend(serde_json::to_vec(&json!({"tasks": {"a": {"status": "succeeded"}}})).unwrap());
        s.exec.insert("w:01V", state).unwrap();
        s.db.open_tree("meta")
            .unwrap()
            .insert("schema_version", "1")
            .unwrap();
        s.db.flush().unwrap();
    }
    let s = SledStore::open(d.path(), None).unwrap();
    let meta = s.db.open_tree("meta").unwrap();
    assert_eq!(&*meta.get("schema_version").unwrap().unwrap(), b"2");
    let wf = s.get_execution("01V").unwrap().unwrap();
    assert_eq!(wf.children.len(), 1);
    assert_eq!(wf.children[0].id, "01Z");
    let state = s.get_workflow_state("01V").unwrap().unwrap();
    assert_eq!(state["tasks"]["a"]["status"], "succeeded");
}

#[tokio::test]
async fn output_chunks_come_back_in_order() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    for i in 0..20u64 {
        let c = OutputChunk {
            stream: "stdout".into(),
            data: format!("line {i}\n"),
            at: String::new(),
        };
        s.put_output("01F", i, &c).unwrap();
    }
    s.put_output(
        "01G",
        0,
        &OutputChunk {
            stream: "stdout".into(),
            data: "other".into(),
            at: String::new(),
        },
    )
    .unwrap();
    let all = s.output("01F", 0).unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(all[19].1.data, "line 19\n");
    assert_eq!(s.output("01F", 18).unwrap().len(), 2);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn finished_entries(s: &SledStore) -> Vec<Json> {
    s.list_audit(1000)
        .unwrap()
        .into_iter()
        .filter(|e| e["what"] == "execution.finished")
        .collect()
}

/// Every commit that makes an execution terminal writes its `execution.finished` entry and
/// tells the hook, once; a later rewrite of the terminal record does neither again.
#[tokio::test]
async fn terminal_commits_write_one_audit_entry_each() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_seen = seen.clone();
    s.on_finished(Box::new(move |f| {
        hook_seen.lock().unwrap().push((f.id.clone(), f.status))
    }));
    let mut a = exec("01A", "core.noop", Status::Running);
    a.requested_by = Some("rule:site.r".into());
    s.put_execution(None, &a).unwrap();
    assert!(finished_entries(&s).is_empty());
    a.status = Status::Succeeded;
    a.finished_at = Some(crate::model::now_rfc3339());
    s.put_execution(Some(Status::Running), &a).unwrap();
    // Written again (a workflow re-reads and re-stores its record): no second entry.
    s.put_execution(Some(Status::Succeeded), &a).unwrap();
    // Created terminal (a chain task whose parameters were invalid).
    let b = exec("01B", "core.echo", Status::Failed);
    let t = s.put_execution(None, &b).unwrap();
    s.durable(t).await.unwrap();
    let entries = finished_entries(&s);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let of_a = entries.iter().find(|e| e["target"] == "01A").unwrap();
    assert_eq!(of_a["outcome"], "succeeded");
    assert_eq!(of_a["who"], "rule:site.r");
    assert_eq!(of_a["details"]["action"], "core.noop");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            ("01A".to_string(), Status::Succeeded),
            ("01B".to_string(), Status::Failed)
        ]
    );
    assert_eq!(s.exec.scan_prefix("f:").count(), 0, "markers removed");
}

/// What a crash can leave between the writes of a terminal commit is settled when the store
/// opens: a durable terminal record gets exactly one entry, a record that did not become
/// terminal gets none.
#[tokio::test]
async fn a_crash_between_record_and_audit_entry_is_settled_exactly_once() {
    let d = tempfile::tempdir().unwrap();
    {
        let s = SledStore::open(d.path(), None).unwrap();
        // 01A: marker and terminal record written, the entry not (crash after step 2).
        let mut a = exec("01A", "core.noop", Status::Succeeded);
        a.finished_at = Some(crate::model::now_rfc3339());
        let mut b = Batch::default();
        b.records
            .push((b"e:01A".to_vec(), serde_json::to_vec(&a).unwrap()));
        s.commit(b).unwrap();
        s.exec.insert("f:01A", "01AUDITA").unwrap();
        // 01B: marker written, the record still running (crash after step 1).
        s.put_execution(None, &exec("01B", "core.noop", Status::Running))
            .unwrap();
        s.exec.insert("f:01B", "01AUDITB").unwrap();
        s.flush().await.unwrap();
    }
    for _ in 0..2 {
        let s = SledStore::open(d.path(), None).unwrap();
        let entries = finished_entries(&s);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0]["target"], "01A");
        assert!(s.audit.get("01AUDITA").unwrap().is_some());
        assert_eq!(s.exec.scan_prefix("f:").count(), 0);
    }
}

#[test]
fn a_new_database_gets_small_segments_and_an_old_one_keeps_its_own() {
    let conf = |dir: &Path| {
        String::from_utf8_lossy(&std::fs::read(dir.join("db").join("conf")).unwrap()).into_owned()
    };
    // New: the smaller segment size.
    let d = tempfile::tempdir().unwrap();
    drop(SledStore::open(d.path(), None).unwrap());
    assert!(
        conf(d.path()).contains(&format!("segment_size: {SEGMENT_BYTES}")),
        "{}",
        conf(d.path())
    );
    // Created by an earlier version with sled's default (512 KiB): still opens, data kept.
    let old = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new()
            .path(old.path().join("db"))
            .open()
            .unwrap();
        let tree = db.open_tree("executions").unwrap();
        let e = exec("01OLD", "core.noop", Status::Succeeded);
        tree.insert("e:01OLD", serde_json::to_vec(&e).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    assert!(conf(old.path()).contains("segment_size: 524288"));
    let s = SledStore::open(old.path(), None).unwrap();
    let e = s.get_execution("01OLD").unwrap().expect("the old record");
    assert_eq!(e.status, Status::Succeeded);
    assert!(conf(old.path()).contains("segment_size: 524288"));
}

#[test]
fn a_rule_request_cut_off_by_a_crash_before_its_record_does_not_count() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    let mut e = exec("01REQ", "core.noop", Status::Succeeded);
    e.trigger_instance = Some("01TRIG".into());
    e.rule = Some("site.r".into());
    // What a crash between the `t:` entry and the record leaves: the entry alone.
    s.exec
        .insert(trigger_rule_key("01TRIG", "site.r"), "01REQ".as_bytes())
        .unwrap();
    assert_eq!(s.execution_for("01TRIG", "site.r").unwrap(), None);
    s.put_execution(None, &e).unwrap();
    assert_eq!(
        s.execution_for("01TRIG", "site.r").unwrap().as_deref(),
        Some("01REQ")
    );
    assert_eq!(s.execution_for("01TRIG", "site.other").unwrap(), None);
}

/// Many writers waiting at once share flushes (one leads, the others wait for it), and
/// every one of them returns with its write covered by a flush that ended after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_flushes_and_each_is_covered() {
    let d = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(SledStore::open(d.path(), None).unwrap());
    let before = s.flush_count();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let e = exec(&format!("01W{i:04}"), "core.noop", Status::Succeeded);
            let t = s.put_execution(None, &e).unwrap();
            s.durable(t).await.unwrap();
            (t, s.flushed.load(Ordering::SeqCst))
        }));
    }
    for t in tasks {
        let (ticket, flushed) = tokio::time::timeout(std::time::Duration::from_secs(60), t)
            .await
            .expect("a writer waited for a flush that never came")
            .unwrap();
        assert!(
            flushed >= ticket,
            "ticket {ticket} returned before its flush ({flushed})"
        );
    }
    let flushes = s.flush_count() - before;
    assert!(
        (1..300).contains(&flushes),
        "{flushes} flushes for 300 writers"
    );
}
