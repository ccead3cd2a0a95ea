//! Tests of the `consul.*` runners against a fake Consul HTTP API (the real agent is
//! exercised by tests/integration/consul_kv.rs).

use super::*;
use crate::runners::ActionOutcome;
use base64::engine::general_purpose::STANDARD as B64;
use squall_core::model::Status;
use squall_testkit::{closed_address, context, Fake, Seen};

const TOKEN: &str = "consul-test-token-5b1e";

async fn run(runner: &dyn Runner, fake: &Fake, params: Json) -> ActionOutcome {
    let cfg = json!({"address": fake.url, "token": TOKEN});
    runner.run(context(runner.name(), params, cfg)).await
}

fn entry_json(key: &str, value: &[u8], index: u64) -> String {
    json!([{"Key": key, "Value": B64.encode(value), "Flags": 7, "ModifyIndex": index,
            "CreateIndex": 3, "LockIndex": 0}])
    .to_string()
}

#[tokio::test]
async fn put_sends_the_token_and_the_value_strings_as_is_others_as_json() {
    let fake = Fake::start(|_| (200_u16, "true".to_string())).await;
    let out = run(
        &KvPut,
        &fake,
        json!({"key": "/app/db", "value": "plain text"}),
    )
    .await;
    assert_eq!(
        out.result,
        json!({"key": "app/db", "written": true}),
        "{out:?}"
    );
    let out = run(
        &KvPut,
        &fake,
        json!({"key": "app/cfg", "value": {"port": 5432}, "flags": 42, "cas": 0, "datacenter": "dc2"}),
    )
    .await;
    assert_eq!(out.status, Status::Succeeded, "{out:?}");
    let seen = fake.seen();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/kv/app/db");
    assert_eq!(seen[0].body, "plain text");
    assert_eq!(seen[0].header("x-consul-token"), Some(TOKEN));
    assert_eq!(seen[1].target, "/v1/kv/app/cfg?dc=dc2&cas=0&flags=42");
    assert_eq!(seen[1].body, r#"{"port":5432}"#);
}

#[tokio::test]
async fn a_cas_conflict_names_the_key_the_cas_and_the_current_index() {
    let fake = Fake::start(|s: &Seen| match s.method.as_str() {
        "PUT" => (200, "false".into()),
        _ => (200, entry_json("app/db", b"x", 17)),
    })
    .await;
    let out = run(
        &KvPut,
        &fake,
        json!({"key": "app/db", "value": "v", "cas": 5}),
    )
    .await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(
        out.error.as_deref(),
        Some("CAS conflict writing Consul key `app/db`: cas=5, but its current ModifyIndex is 17")
    );
    let out = run(
        &KvPut,
        &fake,
        json!({"key": "app/db", "value": "v", "cas": 0}),
    )
    .await;
    let err = out.error.unwrap_or_default();
    assert!(
        err.contains("cas=0 (only if the key does not exist), but its current ModifyIndex is 17"),
        "{err}"
    );
}

#[tokio::test]
async fn get_decodes_base64_and_parses_json_on_request() {
    let fake = Fake::start(|s: &Seen| {
        if s.target.contains("bin") {
            (200, entry_json("bin", &[0xff, 0x00, 0x81], 9))
        } else {
            (200, entry_json("app/cfg", br#"{"port": 5432}"#, 12))
        }
    })
    .await;
    let out = run(&KvGet, &fake, json!({"key": "app/cfg"})).await;
    assert_eq!(
        out.result,
        json!({"key": "app/cfg", "found": true, "value": "{\"port\": 5432}", "flags": 7,
               "modify_index": 12, "create_index": 3}),
        "{out:?}"
    );
    let out = run(&KvGet, &fake, json!({"key": "app/cfg", "json": true})).await;
    assert_eq!(out.result["value"], json!({"port": 5432}), "{out:?}");
    let out = run(&KvGet, &fake, json!({"key": "bin"})).await;
    assert_eq!(out.result["value"], json!(B64.encode([0xff, 0x00, 0x81])));
    assert_eq!(out.result["binary"], json!(true));
    let out = run(&KvGet, &fake, json!({"key": "bin", "json": true})).await;
    assert!(out.error.unwrap_or_default().contains("binary, not JSON"));
}

#[tokio::test]
async fn get_recurse_and_keys_shape_their_results() {
    let fake = Fake::start(|s: &Seen| {
        if s.target.contains("keys") {
            (200, r#"["app/a","app/sub/"]"#.into())
        } else {
            (
                200,
                json!([{"Key": "app/a", "Value": B64.encode("1"), "Flags": 0, "ModifyIndex": 5, "CreateIndex": 5},
                       {"Key": "app/b", "Value": null, "Flags": 0, "ModifyIndex": 6, "CreateIndex": 6}])
                .to_string(),
            )
        }
    })
    .await;
    let out = run(
        &KvGet,
        &fake,
        json!({"key": "app/", "recurse": true, "json": true}),
    )
    .await;
    assert_eq!(
        out.result,
        json!({"key": "app/", "found": true, "entries": [
            {"key": "app/a", "value": 1, "flags": 0, "modify_index": 5, "create_index": 5},
            {"key": "app/b", "value": null, "flags": 0, "modify_index": 6, "create_index": 6}]}),
        "{out:?}"
    );
    let out = run(
        &KvGet,
        &fake,
        json!({"key": "app/", "keys": true, "separator": "/"}),
    )
    .await;
    assert_eq!(
        out.result,
        json!({"key": "app/", "found": true, "keys": ["app/a", "app/sub/"]})
    );
    let seen = fake.seen();
    assert_eq!(seen[0].target, "/v1/kv/app/?recurse");
    assert_eq!(seen[1].target, "/v1/kv/app/?keys&separator=%2F");
    run(&KvGet, &fake, json!({"key": "", "keys": true})).await;
    assert_eq!(fake.seen()[2].target, "/v1/kv/?keys");
    let out = run(
        &KvGet,
        &fake,
        json!({"key": "app/", "keys": true, "recurse": true}),
    )
    .await;
    assert!(out.error.unwrap_or_default().contains("not both"));
}

#[tokio::test]
async fn a_missing_key_is_found_false_unless_required() {
    let fake = Fake::start(|_| (404, String::new())).await;
    let out = run(&KvGet, &fake, json!({"key": "nope"})).await;
    assert_eq!(out.status, Status::Succeeded);
    assert_eq!(out.result["found"], json!(false));
    assert_eq!(out.result["value"], Json::Null);
    let out = run(&KvGet, &fake, json!({"key": "nope", "required": true})).await;
    assert_eq!(out.status, Status::Failed);
    assert!(out
        .error
        .unwrap_or_default()
        .starts_with("Consul key `nope` does not exist"));
    let out = run(&KvDelete, &fake, json!({"key": "nope"})).await;
    assert_eq!(
        out.result,
        json!({"key": "nope", "deleted": false}),
        "{out:?}"
    );
}

#[tokio::test]
async fn consul_errors_are_surfaced_with_the_status_and_without_the_token() {
    let fake = Fake::start(|_| {
        (
            403_u16,
            "Permission denied: token with AccessorID 'abc' lacks permission 'key:read' on \"app/db\""
                .to_string(),
        )
    })
    .await;
    let out = run(&KvGet, &fake, json!({"key": "app/db"})).await;
    let err = out.error.unwrap_or_default();
    assert!(
        err.starts_with("consul: GET kv/app/db: 403: Permission denied: token with AccessorID 'abc' lacks permission 'key:read'"),
        "{err}"
    );
    assert!(err.contains("check the ACL policy of `token`"), "{err}");
    assert!(!err.contains(TOKEN));
}

#[tokio::test]
async fn an_unreachable_agent_is_named_with_its_address() {
    let addr = closed_address().await;
    let ctx = context(
        "consul.kv_get",
        json!({"key": "a"}),
        json!({"address": addr}),
    );
    let out = KvGet.run(ctx).await;
    assert_eq!(
        out.error.as_deref(),
        Some(format!("cannot reach Consul at {addr}: connection refused").as_str())
    );
    let ctx = context(
        "consul.kv_get",
        json!({"key": "a"}),
        json!({"address": "localhost:8500"}),
    );
    let err = KvGet.run(ctx).await.error.unwrap_or_default();
    assert!(err.starts_with("config/consul.yaml: `address`"), "{err}");
}

#[tokio::test]
async fn delete_with_cas_reports_a_conflict_and_recurse_deletes_a_prefix() {
    let fake = Fake::start(|s: &Seen| match (s.method.as_str(), s.target.as_str()) {
        ("DELETE", t) if t.contains("cas=") => (200, "false".into()),
        ("DELETE", _) => (200, "true".into()),
        (_, t) if t.contains("keys") => (200, r#"["app/a"]"#.into()),
        _ => (200, entry_json("app/a", b"1", 30)),
    })
    .await;
    let out = run(&KvDelete, &fake, json!({"key": "app/a", "cas": 4})).await;
    assert_eq!(
        out.error.as_deref(),
        Some("CAS conflict deleting Consul key `app/a`: cas=4, but its current ModifyIndex is 30")
    );
    let out = run(&KvDelete, &fake, json!({"key": "app/", "recurse": true})).await;
    assert_eq!(out.result, json!({"key": "app/", "deleted": true}));
    let deletes: Vec<String> = fake
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.target)
        .collect();
    assert_eq!(deletes, ["/v1/kv/app/a?cas=4", "/v1/kv/app/?recurse"]);
}
