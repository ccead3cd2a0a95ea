use super::*;
use crate::limits::nested_array;
use crate::model::{Execution, Status, TriggerInstance, TriggerStatus};
use crate::store::{ListFilter, SledStore};
use serde_json::json;

fn exec(id: &str, status: Status) -> Execution {
    serde_json::from_value(json!({
        "id": id, "action": "core.noop", "parameters": {}, "status": status,
        "created_at": "2024-01-01T00:00:00Z", "attempt": 1
    }))
    .expect("execution")
}

fn trigger(id: &str, payload: Json) -> TriggerInstance {
    TriggerInstance {
        id: id.into(),
        trigger: "core.webhook".into(),
        payload,
        source: "test".into(),
        occurred_at: "2024-01-01T00:00:00Z".into(),
        status: TriggerStatus::Pending,
        enforcements: vec![],
    }
}

#[test]
fn deep_documents_an_older_version_wrote_are_read_back() {
    let doc = json!({"payload": {"body": nested_array(200)}, "s": "a \"[[ string\\"});
    let bytes = serde_json::to_vec(&doc).unwrap();
    assert!(
        serde_json::from_slice::<Json>(&bytes).is_err(),
        "serde_json alone refuses it"
    );
    let back: Json = decode("triggers:X", &bytes).expect("read back");
    // Read in full, the part below 100 levels as its JSON text: any reader can take it.
    assert_eq!(back["s"], doc["s"]);
    assert_eq!(crate::limits::depth(&back), crate::limits::MAX_STORED_DEPTH);
    let mut inner = &back["payload"]["body"];
    for _ in 0..97 {
        inner = &inner[0];
    }
    let text = serde_json::to_string(&nested_array(102)).unwrap();
    assert_eq!(inner[0].as_str(), Some(text.as_str()));
    assert_eq!(
        parse_deep(b" [1, -2.5e3, true, null, {\"k\": \"v\\u00e9\"}] ").unwrap(),
        json!([1, -2.5e3, true, null, {"k": "v\u{e9}"}])
    );
}

#[test]
fn damaged_and_absurdly_deep_documents_are_errors_naming_the_key() {
    for bytes in [
        b"{\"id\": \"01".to_vec(),
        b"\xff\xfe garbage".to_vec(),
        serde_json::to_vec(&nested_array(READ_DEPTH + 1)).unwrap(),
    ] {
        let err = decode::<Json>("e:01BAD", &bytes).unwrap_err().to_string();
        assert!(err.contains("record e:01BAD cannot be read"), "{err}");
        assert!(err.contains("squall store check"), "{err}");
    }
    let err = parse_deep(b"[1, 2").unwrap_err().to_string();
    assert!(err.contains("end of the document"), "{err}");
}

#[tokio::test]
async fn listings_and_recovery_skip_an_unreadable_record_and_name_it() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    // Executions: one good finished, one good running, one damaged (indexed as running).
    s.put_execution(None, &exec("01A", Status::Succeeded))
        .unwrap();
    s.put_execution(None, &exec("01B", Status::Running))
        .unwrap();
    s.put_execution(None, &exec("01C", Status::Running))
        .unwrap();
    s.exec
        .insert("e:01C", &b"{\"id\": \"01C\", \"trunc"[..])
        .unwrap();

    let all = s.list_executions(&ListFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["01B", "01A"]
    );
    assert_eq!(all.skipped, ["e:01C"]);
    assert!(all
        .warning()
        .unwrap()
        .contains("1 stored record(s) could not be read"));
    let running = s
        .list_executions(&ListFilter {
            status: Some(Status::Running),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running.skipped, ["e:01C"]);
    let unfinished = s.unfinished().unwrap();
    assert_eq!(
        unfinished.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["01B"]
    );
    assert_eq!(unfinished.skipped, ["e:01C"]);
    let err = s.get_execution("01C").unwrap_err().to_string();
    assert!(err.contains("record e:01C cannot be read"), "{err}");

    // Triggers: a damaged one and a readable one.
    s.put_trigger(&trigger("01T1", json!({"n": 1}))).unwrap();
    let deep = trigger("01T2", json!({"body": nested_array(90)}));
    s.db.open_tree("triggers")
        .unwrap()
        .insert("01T2", serde_json::to_vec(&deep).unwrap())
        .unwrap();
    s.db.open_tree("triggers")
        .unwrap()
        .insert("01T3", &b"not json"[..])
        .unwrap();
    let list = s.list_triggers(None, 10).unwrap();
    assert_eq!(
        list.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["01T2", "01T1"]
    );
    assert_eq!(list.skipped, ["triggers:01T3"]);
    assert_eq!(s.get_trigger("01T2").unwrap().unwrap(), deep);
    let pending = s.pending_triggers().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending.skipped, ["triggers:01T3"]);

    // Audit entries.
    s.put_audit("01U1", &json!({"action": "x"})).unwrap();
    s.db.open_tree("audit")
        .unwrap()
        .insert("01U2", &b"{"[..])
        .unwrap();
    let audit = s.list_audit(10).unwrap();
    // (The executions above that finished have their `execution.finished` entries too.)
    assert_eq!(audit.iter().filter(|e| e["action"] == "x").count(), 1);
    assert_eq!(audit.skipped, ["audit:01U2"]);
}

#[test]
fn a_trigger_too_deep_to_read_back_is_not_written() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    let err = s
        .put_trigger(&trigger("01X", json!({"body": nested_array(120)})))
        .unwrap_err();
    assert!(matches!(err, StoreError::TooDeep(_)), "{err}");
    assert!(err.to_string().contains("payload.body[0]"), "{err}");
    assert!(s.get_trigger("01X").unwrap().is_none());
}

#[test]
fn the_audit_listing_as_bytes_matches_the_documents_and_skips_what_is_unreadable() {
    let d = tempfile::tempdir().unwrap();
    let s = SledStore::open(d.path(), None).unwrap();
    s.put_audit("01A1", &json!({"what": "one", "n": 1}))
        .unwrap();
    // Deeper than the quick check reads, yet a readable stored entry.
    s.put_audit("01A2", &json!({"what": "deep", "d": nested_array(150)}))
        .unwrap();
    s.db.open_tree("audit")
        .unwrap()
        .insert("01A3", &b"{\"cut"[..])
        .unwrap();
    s.put_audit("01A4", &json!({"what": "four"})).unwrap();

    for limit in [0, 1, 2, 10] {
        let (body, skipped) = s.list_audit_json(limit).unwrap();
        let docs = s.list_audit(limit).unwrap();
        // The very bytes the documents serialize to (a deep entry as `list_audit` reads it).
        assert_eq!(
            body,
            serde_json::to_vec(&docs.items).unwrap(),
            "limit {limit}"
        );
        assert_eq!(skipped, docs.skipped, "limit {limit}");
    }
    let (body, skipped) = s.list_audit_json(0).unwrap();
    let listed: Vec<Json> = decode("body", &body).unwrap();
    let whats: Vec<&str> = listed.iter().map(|e| e["what"].as_str().unwrap()).collect();
    assert_eq!(whats, ["four", "deep", "one"]);
    assert_eq!(skipped, ["audit:01A3"]);
    assert_eq!(s.list_audit_json(1).unwrap().0, br#"[{"what":"four"}]"#);
}
