//! `squall rule test|list|get`: matching, per-condition outcomes, rendered parameters,
//! stdin payloads, and runtime errors in `when` reported instead of crashing.

use crate::harness::Squall;
use serde_json::{json, Value};

const RULE: &str = "site.check_hosts_on_alert";

fn test_json(sq: &Squall, payload: &str) -> (crate::harness::Output, Value) {
    let out = sq
        .cmd(&["rule", "test", RULE, "--trigger", "-", "-o", "json"])
        .stdin(payload)
        .run();
    out.no_panic();
    let v = out.json();
    (out, v)
}

#[test]
fn shipped_rule_matches_the_fixture() {
    let sq = Squall::new();
    let out = sq.run(&[
        "rule",
        "test",
        RULE,
        "--trigger",
        "tests/fixtures/alert.json",
    ]);
    out.ok()
        .stdout_has("MATCHED")
        .stdout_has("site.check_hosts")
        .stdout_has("db-1");
    let out = sq.run(&[
        "rule",
        "test",
        RULE,
        "--trigger",
        "tests/fixtures/alert.json",
        "-o",
        "json",
    ]);
    out.ok();
    let doc = out.json();
    assert_eq!(doc["matched"], true, "{doc:#}");
    assert_eq!(doc["parameters"], json!({"hosts": ["db-1", "db-2"]}));
    let conds = doc["conditions"].as_array().expect("conditions");
    assert_eq!(conds.len(), 3, "two criteria and `when`: {doc:#}");
    for c in conds {
        assert!(
            c["condition"].as_str().is_some_and(|s| !s.is_empty()),
            "{c}"
        );
        assert_eq!(c["result"], true, "{c}");
    }
    assert!(conds.iter().any(|c| c["condition"]
        .as_str()
        .unwrap_or("")
        .contains("hosts.len()")));
}

#[test]
fn a_non_matching_payload_exits_1() {
    let sq = Squall::new();
    let (out, doc) = test_json(
        &sq,
        r#"{"path": "alerts", "body": {"severity": "low", "hosts": ["x"]}}"#,
    );
    out.code(1);
    assert_eq!(doc["matched"], false, "{doc:#}");
    let conds = doc["conditions"].as_array().expect("conditions");
    assert!(
        conds
            .iter()
            .any(|c| c["result"] == false
                && c["condition"].as_str().unwrap_or("").contains("severity")),
        "the failing criterion is reported: {doc:#}"
    );
    assert!(
        doc.get("parameters").is_none_or(Value::is_null),
        "no parameters when not matched: {doc:#}"
    );
    // Table form.
    let t = sq
        .cmd(&["rule", "test", RULE, "--trigger", "-"])
        .stdin(r#"{"path": "other", "body": {}}"#)
        .run();
    t.code(1).stdout_has("not matched");
}

#[test]
fn trigger_from_stdin_matches() {
    let sq = Squall::new();
    let (out, doc) = test_json(
        &sq,
        r#"{"path": "alerts", "body": {"severity": "high", "hosts": ["web-9"]}}"#,
    );
    out.ok();
    assert_eq!(doc["matched"], true);
    assert_eq!(doc["parameters"]["hosts"], json!(["web-9"]));
}

#[test]
fn a_when_failing_at_runtime_is_reported_as_an_error() {
    let sq = Squall::new();
    // No `hosts`: the criteria hold, `when` cannot be evaluated.
    let (out, doc) = test_json(
        &sq,
        r#"{"path": "alerts", "body": {"severity": "critical"}}"#,
    );
    out.code(1);
    assert_eq!(doc["matched"], false, "{doc:#}");
    let when = doc["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["condition"].as_str().unwrap_or("").starts_with("when"))
        .cloned()
        .unwrap_or_else(|| panic!("no `when` condition: {doc:#}"));
    assert!(when["result"].is_null(), "{when}");
    assert!(
        when["error"].as_str().unwrap_or("").contains("hosts"),
        "{when}"
    );
    // A type mismatch: hosts is a number.
    let (out, doc) = test_json(
        &sq,
        r#"{"path": "alerts", "body": {"severity": "critical", "hosts": 5}}"#,
    );
    out.code(1);
    assert_eq!(doc["matched"], false, "{doc:#}");
}

#[test]
fn bad_trigger_input_is_a_usage_error() {
    let sq = Squall::new();
    sq.cmd(&["rule", "test", RULE, "--trigger", "-"])
        .stdin("{not json")
        .run()
        .code(2)
        .no_panic();
    sq.run(&["rule", "test", RULE, "--trigger", "no/such/file.json"])
        .code(2)
        .no_panic();
    sq.run(&[
        "rule",
        "test",
        "site.no_such_rule",
        "--trigger",
        "tests/fixtures/alert.json",
    ])
    .code(2)
    .stderr_has("site.no_such_rule");
}

#[test]
fn criteria_operators_and_templates_in_a_site_rule() {
    let sq = Squall::new();
    sq.write(
        "rules/ops.yaml",
        r#"name: ops
trigger: core.webhook
criteria:
  trigger.body.name: {type: startswith, pattern: db-}
  trigger.body.size: {type: greaterthan, pattern: 10}
  trigger.body.tags: {type: contains, pattern: prod}
  trigger.body.owner: {type: exists}
action:
  ref: core.echo
  parameters:
    message: "resize {{ trigger.body.name }} to {{ trigger.body.size * 2 }}"
"#,
    );
    let run = |payload: &str| {
        let out = sq
            .cmd(&["rule", "test", "site.ops", "--trigger", "-", "-o", "json"])
            .stdin(payload)
            .run();
        out.no_panic();
        (out.code, out.json())
    };
    let (code, doc) =
        run(r#"{"body": {"name": "db-1", "size": 20, "tags": ["prod", "eu"], "owner": "ann"}}"#);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["parameters"]["message"], "resize db-1 to 40");
    let (code, doc) =
        run(r#"{"body": {"name": "db-1", "size": 5, "tags": ["prod"], "owner": "ann"}}"#);
    assert_eq!(code, 1);
    assert_eq!(doc["matched"], false);
    let (code, _) = run(r#"{"body": {"name": "db-1", "size": 20, "tags": ["prod"]}}"#);
    assert_eq!(code, 1, "`exists` fails without owner");
}

#[test]
fn rule_list_and_get() {
    let sq = Squall::new();
    let out = sq.run(&["rule", "list", "-o", "json"]);
    out.ok();
    let list = out.json();
    let r = list
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["ref"] == RULE)
        .cloned()
        .unwrap_or_else(|| panic!("{RULE} not listed: {list:#}"));
    assert_eq!(r["trigger"], "core.webhook");
    assert_eq!(r["action"], "site.check_hosts");
    sq.run(&["rule", "get", RULE])
        .ok()
        .stdout_has("check_hosts");
}
