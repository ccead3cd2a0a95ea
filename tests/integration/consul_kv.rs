//! The consul pack against a real Consul dev agent (ACLs on, default policy deny), through
//! the real `squall run`.

use crate::harness::{Output, Squall};
use crate::kv_support::{assert_no_leak, failed, http, ok, root_with, run};
use crate::servers::Consul;
use serde_json::json;

const TOKEN_VAR: &str = "SQUALL_TEST_CONSUL_TOKEN";

/// A root whose config/consul.yaml points at `consul` with the token from the environment.
fn root(consul: &Consul) -> Squall {
    root_with(
        "consul",
        &format!("address: {}\ntoken: ${{env:{TOKEN_VAR}}}\n", consul.addr),
    )
}

/// A key's raw value as Consul holds it (read behind Squall's back).
fn raw(consul: &Consul, key: &str) -> (u16, String) {
    http(
        "GET",
        &format!("{}/v1/kv/{key}?raw", consul.addr),
        &[("X-Consul-Token", &consul.token)],
        None,
    )
}

#[test]
fn put_get_recurse_keys_and_delete() {
    let consul = Consul::start();
    let sq = root(&consul);
    let env = [(TOKEN_VAR, consul.token.as_str())];
    let mut outs: Vec<Output> = Vec::new();

    let r = ok(
        &sq,
        &env,
        &["consul.kv_put", "key=app/db/host", "value=db.internal"],
        &mut outs,
    );
    assert_eq!(r, json!({"key": "app/db/host", "written": true}));
    // Non-string values are stored JSON-encoded.
    ok(
        &sq,
        &env,
        &[
            "consul.kv_put",
            "key=app/db/cfg",
            r#"value={"port":5432,"tls":true}"#,
            "flags=7",
        ],
        &mut outs,
    );
    assert_eq!(
        raw(&consul, "app/db/host"),
        (200, "db.internal".to_string())
    );
    assert_eq!(
        raw(&consul, "app/db/cfg"),
        (200, r#"{"port":5432,"tls":true}"#.to_string())
    );

    // A value written by someone else (non-ASCII text) comes back decoded from base64.
    let (status, _) = http(
        "PUT",
        &format!("{}/v1/kv/app/motd", consul.addr),
        &[("X-Consul-Token", &consul.token)],
        Some("grüße ✓"),
    );
    assert_eq!(status, 200);
    let r = ok(&sq, &env, &["consul.kv_get", "key=app/motd"], &mut outs);
    assert_eq!(r["value"], "grüße ✓");
    assert_eq!(r["found"], true);

    let r = ok(&sq, &env, &["consul.kv_get", "key=app/db/cfg"], &mut outs);
    assert_eq!(r["value"], r#"{"port":5432,"tls":true}"#);
    assert_eq!(r["flags"], 7);
    assert!(r["modify_index"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(r["create_index"].as_u64().unwrap_or(0) > 0, "{r}");
    let r = ok(
        &sq,
        &env,
        &["consul.kv_get", "key=app/db/cfg", "json=true"],
        &mut outs,
    );
    assert_eq!(r["value"], json!({"port": 5432, "tls": true}));

    let r = ok(
        &sq,
        &env,
        &["consul.kv_get", "key=app/db/", "recurse=true"],
        &mut outs,
    );
    let keys: Vec<&str> = r["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["key"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(keys, ["app/db/cfg", "app/db/host"], "{r}");
    assert_eq!(r["entries"][1]["value"], "db.internal");

    let r = ok(
        &sq,
        &env,
        &["consul.kv_get", "key=app/", "keys=true", "separator=/"],
        &mut outs,
    );
    assert_eq!(
        r,
        json!({"key": "app/", "found": true, "keys": ["app/db/", "app/motd"]})
    );
    let r = ok(
        &sq,
        &env,
        &["consul.kv_get", "key=app/", "keys=true"],
        &mut outs,
    );
    assert_eq!(r["keys"], json!(["app/db/cfg", "app/db/host", "app/motd"]));

    // An empty prefix is every key.
    let r = ok(
        &sq,
        &env,
        &["consul.kv_get", "key=", "keys=true", "separator=/"],
        &mut outs,
    );
    assert_eq!(r["keys"], json!(["app/"]));

    // Missing: found false, unless required.
    let r = ok(&sq, &env, &["consul.kv_get", "key=app/nope"], &mut outs);
    assert_eq!(r["found"], false);
    assert_eq!(r["value"], json!(null));
    let err = failed(
        &sq,
        &env,
        &["consul.kv_get", "key=app/nope", "required=true"],
        &mut outs,
    );
    assert!(
        err.starts_with("Consul key `app/nope` does not exist"),
        "{err}"
    );

    let r = ok(&sq, &env, &["consul.kv_delete", "key=app/motd"], &mut outs);
    assert_eq!(r, json!({"key": "app/motd", "deleted": true}));
    assert_eq!(raw(&consul, "app/motd").0, 404);
    let r = ok(&sq, &env, &["consul.kv_delete", "key=app/motd"], &mut outs);
    assert_eq!(r, json!({"key": "app/motd", "deleted": false}));
    let r = ok(
        &sq,
        &env,
        &["consul.kv_delete", "key=app/db/", "recurse=true"],
        &mut outs,
    );
    assert_eq!(r["deleted"], true);
    let r = ok(
        &sq,
        &env,
        &["consul.kv_get", "key=app/", "recurse=true"],
        &mut outs,
    );
    assert_eq!(r, json!({"key": "app/", "found": false, "entries": []}));

    // Debug logging on: the token still appears nowhere.
    let logged = sq
        .cmd(&["run", "consul.kv_put", "key=app/logged", "value=x"])
        .env(TOKEN_VAR, &consul.token)
        .env("SQUALL_LOG", "trace")
        .run();
    logged.ok();
    outs.push(logged);
    assert_no_leak(&sq, &env, &outs, &[&consul.token]);
}

#[test]
fn check_and_set_writes_and_deletes() {
    let consul = Consul::start();
    let sq = root(&consul);
    let env = [(TOKEN_VAR, consul.token.as_str())];
    let mut outs = Vec::new();

    ok(
        &sq,
        &env,
        &["consul.kv_put", "key=lock/owner", "value=a", "cas=0"],
        &mut outs,
    );
    let index = ok(&sq, &env, &["consul.kv_get", "key=lock/owner"], &mut outs)["modify_index"]
        .as_u64()
        .expect("modify_index");
    let err = failed(
        &sq,
        &env,
        &["consul.kv_put", "key=lock/owner", "value=b", "cas=0"],
        &mut outs,
    );
    assert_eq!(
        err,
        format!("CAS conflict writing Consul key `lock/owner`: cas=0 (only if the key does not exist), but its current ModifyIndex is {index}")
    );
    assert_eq!(raw(&consul, "lock/owner").1, "a");

    let cas = format!("cas={index}");
    ok(
        &sq,
        &env,
        &["consul.kv_put", "key=lock/owner", "value=b", &cas],
        &mut outs,
    );
    assert_eq!(raw(&consul, "lock/owner").1, "b");
    let now = ok(&sq, &env, &["consul.kv_get", "key=lock/owner"], &mut outs)["modify_index"]
        .as_u64()
        .expect("modify_index");
    assert!(now > index);
    // The same (now stale) index again: refused, and the message gives the current one.
    let err = failed(
        &sq,
        &env,
        &["consul.kv_put", "key=lock/owner", "value=c", &cas],
        &mut outs,
    );
    assert_eq!(
        err,
        format!("CAS conflict writing Consul key `lock/owner`: cas={index}, but its current ModifyIndex is {now}")
    );
    let err = failed(
        &sq,
        &env,
        &["consul.kv_delete", "key=lock/owner", &cas],
        &mut outs,
    );
    assert_eq!(
        err,
        format!("CAS conflict deleting Consul key `lock/owner`: cas={index}, but its current ModifyIndex is {now}")
    );
    assert_eq!(raw(&consul, "lock/owner").1, "b");
    let r = ok(
        &sq,
        &env,
        &["consul.kv_delete", "key=lock/owner", &format!("cas={now}")],
        &mut outs,
    );
    assert_eq!(r, json!({"key": "lock/owner", "deleted": true}));
    assert_eq!(raw(&consul, "lock/owner").0, 404);
}

#[test]
fn acl_denials_and_an_unreachable_agent_are_reported_clearly() {
    let consul = Consul::start();
    let mut outs = Vec::new();
    // No token: the anonymous token may do nothing (default policy deny).
    let anon = root_with("consul", &format!("address: {}\n", consul.addr));
    let err = failed(
        &anon,
        &[],
        &["consul.kv_put", "key=app/x", "value=1"],
        &mut outs,
    );
    assert!(
        err.starts_with("consul: PUT kv/app/x: 403: Permission denied"),
        "{err}"
    );
    assert!(err.contains("no ACL token is configured"), "{err}");
    let err = failed(&anon, &[], &["consul.kv_get", "key=app/x"], &mut outs);
    assert!(
        err.starts_with("consul: GET kv/app/x: 403: Permission denied"),
        "{err}"
    );
    assert_eq!(raw(&consul, "app/x").0, 404, "nothing was written");

    // A token Consul does not know.
    let wrong = "00000000-1111-2222-3333-444444444444";
    let sq = root(&consul);
    let err = failed(
        &sq,
        &[(TOKEN_VAR, wrong)],
        &["consul.kv_get", "key=app/x"],
        &mut outs,
    );
    assert!(
        err.starts_with("consul: GET kv/app/x: 403: ACL not found"),
        "{err}"
    );
    assert_no_leak(&sq, &[(TOKEN_VAR, wrong)], &outs, &[wrong]);

    // An unknown datacenter: Consul's message comes through.
    let err = failed(
        &sq,
        &[(TOKEN_VAR, consul.token.as_str())],
        &["consul.kv_get", "key=app/x", "datacenter=nowhere"],
        &mut outs,
    );
    assert!(err.contains("No path to datacenter"), "{err}");

    // Nothing listening.
    let addr = consul.addr.clone();
    drop(consul);
    let err = failed(&anon, &[], &["consul.kv_get", "key=app/x"], &mut outs);
    assert_eq!(
        err,
        format!("cannot reach Consul at {addr}: connection refused")
    );
    let (out, _) = run(&anon, &[], &["consul.kv_get", "key=app/x"]);
    out.code(1);
}
