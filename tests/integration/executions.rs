//! How workflow runs look afterwards: `execution list` filters, and child records that
//! end in their final status.

use crate::harness::children;
use crate::workflows::root;
use serde_json::{json, Value};

#[test]
fn execution_list_filters() {
    let sq = root();
    sq.run(&["run", "core.noop"]).ok();
    sq.run(&["run", "core.local", "cmd=exit 1"]).code(1);
    sq.run(&["run", "core.local", "cmd=exit 2"]).code(1);
    sq.run(&["run", "site.check_hosts", "broken=gamma"]).code(1);
    let list = |args: &[&str]| -> Vec<Value> {
        let mut a = vec!["execution", "list", "-o", "json"];
        a.extend_from_slice(args);
        let out = sq.run(&a);
        out.ok();
        out.json().as_array().cloned().unwrap_or_default()
    };
    let failed = list(&["--status", "failed"]);
    assert_eq!(failed.len(), 3, "{failed:#?}");
    assert!(failed.iter().all(|e| e["status"] == "failed"));
    // Newest first; children are not listed without --all.
    assert_eq!(failed[0]["action"], "site.check_hosts");
    assert_eq!(list(&["--status", "failed", "--limit", "2"]).len(), 2);
    let local = list(&["--action", "core.local"]);
    assert_eq!(local.len(), 2, "{local:#?}");
    assert!(local.iter().all(|e| e["action"] == "core.local"));
    let all_local = list(&["--action", "core.local", "--all"]);
    assert_eq!(
        all_local.len(),
        2 + 4,
        "children of check_hosts are core.local runs too"
    );
    assert_eq!(list(&["--status", "succeeded"]).len(), 1);
    let bad = sq.run(&["execution", "list", "--status", "nonsense"]);
    bad.code(2).stderr_has("nonsense");
    let missing = sq.run(&["execution", "get", "01NOSUCHEXECUTION0000000000"]);
    missing.no_panic();
    assert_ne!(missing.code, 0, "{}", missing.describe());
}

#[test]
fn every_child_record_ends_in_its_final_status() {
    // Many quick children: none may be left `running` in its own record (a child that
    // ended before its initial record was committed used to be overwritten by it).
    let sq = root();
    let items: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    sq.write(
        "workflows/many.yaml",
        &format!(
            "name: many\nchain:\n  - name: each\n    ref: t.take\n    with: {{items: {:?}, concurrency: 4}}\n    parameters: {{value: \"{{{{ item }}}}\"}}\n    on-success: one\n  - name: one\n    ref: core.noop\n    on-success: two\n  - name: two\n    ref: core.noop\n",
            items
        ),
    );
    let (out, rec) = sq.exec_json(&["site.many"]);
    out.ok();
    assert_eq!(children(&rec).len(), 42);
    assert!(
        children(&rec).iter().all(|c| c["status"] == "succeeded"),
        "{rec:#}"
    );
    let running = sq.run(&[
        "execution",
        "list",
        "--all",
        "--status",
        "running",
        "-o",
        "json",
    ]);
    running.ok();
    assert_eq!(
        running.json(),
        json!([]),
        "records left running\n{}",
        running.describe()
    );
    let all = sq.run(&["execution", "list", "--all", "--limit", "100", "-o", "json"]);
    all.ok();
    let recs = all.json();
    let recs = recs.as_array().expect("array");
    assert_eq!(recs.len(), 43);
    assert!(recs.iter().all(|e| e["status"] == "succeeded"), "{recs:#?}");
}
