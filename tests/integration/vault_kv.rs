//! The vault pack against a real OpenBao dev server (KV v2 at `secret/`), through the real
//! `squall run`.

use crate::harness::{Output, Squall};
use crate::kv_support::{assert_no_leak, failed, http, ok, root_with};
use crate::servers::OpenBao;
use serde_json::{json, Value};

const TOKEN_VAR: &str = "SQUALL_TEST_VAULT_TOKEN";
const SECRET_ID_VAR: &str = "SQUALL_TEST_VAULT_SECRET_ID";

/// A root whose config/vault.yaml points at `bao` with the token from the environment
/// (plus `extra` lines).
fn root(bao: &OpenBao, extra: &str) -> Squall {
    root_with(
        "vault",
        &format!(
            "address: {}\ntoken: ${{env:{TOKEN_VAR}}}\n{extra}",
            bao.addr
        ),
    )
}

/// A raw call to OpenBao with the root token (and a namespace).
fn bao_call(
    bao: &OpenBao,
    method: &str,
    path: &str,
    ns: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![("X-Vault-Token", bao.token.as_str())];
    if let Some(ns) = ns {
        headers.push(("X-Vault-Namespace", ns));
    }
    let body = body.map(Value::to_string);
    let (status, text) = http(
        method,
        &format!("{}/v1/{path}", bao.addr),
        &headers,
        body.as_deref(),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A workflow that reads `path` and says whether its password equals `expected` — the
/// data is usable in the workflow scope although it is masked everywhere it is shown.
fn check_workflow(sq: &Squall) {
    sq.write(
        "workflows/check.yaml",
        r#"name: check
parameters:
  path: {type: string, required: true}
  expected: {type: string, secret: true, required: true}
chain:
  - name: read
    ref: vault.kv_read
    parameters: {path: "{{ path }}"}
    publish: {same: "{{ result.data.password == expected }}"}
output: {same: "{{ same }}"}
"#,
    );
}

#[test]
fn write_read_versions_cas_metadata_and_delete() {
    let bao = OpenBao::start();
    let sq = root(&bao, "");
    check_workflow(&sq);
    let env = [(TOKEN_VAR, bao.token.as_str())];
    let mut outs: Vec<Output> = Vec::new();
    let pw1 = "first-Pa55word-0c7e1";
    let pw2 = "second-Pa55word-9d2b4";
    let data1 = format!(r#"data={{"username":"orders_app","password":"{pw1}","port":5432}}"#);

    let (out, rec) = crate::kv_support::run(&sq, &env, &["vault.kv_write", "path=app/db", &data1]);
    out.ok();
    assert_eq!(
        rec["parameters"]["data"], "********",
        "the whole data object is masked"
    );
    let r = &rec["result"];
    assert_eq!(r["path"], "app/db");
    assert_eq!(r["version"], 1);
    assert!(
        r["created_time"].as_str().is_some_and(|t| !t.is_empty()),
        "{r}"
    );
    assert_eq!(
        r.as_object().map(|m| m.len()),
        Some(3),
        "never the data: {r}"
    );
    outs.push(out);
    let (status, stored) = bao_call(&bao, "GET", "secret/data/app/db", None, None);
    assert_eq!(status, 200);
    assert_eq!(
        stored["data"]["data"],
        json!({"username": "orders_app", "password": pw1, "port": 5432})
    );

    // Read: shown masked, usable in a workflow's scope.
    let r = ok(&sq, &env, &["vault.kv_read", "path=app/db"], &mut outs);
    assert_eq!(r["found"], true);
    assert_eq!(r["version"], 1);
    assert_eq!(r["deleted"], false);
    assert_eq!(
        r["data"],
        json!({"username": "********", "password": "********", "port": 5432})
    );
    let r = ok(
        &sq,
        &env,
        &["site.check", "path=app/db", &format!("expected={pw1}")],
        &mut outs,
    );
    assert_eq!(r, json!({"same": true}));

    // Check-and-set.
    let data2 = format!(r#"data={{"username":"orders_app","password":"{pw2}"}}"#);
    let r = ok(
        &sq,
        &env,
        &["vault.kv_write", "path=app/db", &data2, "cas=1"],
        &mut outs,
    );
    assert_eq!(r["version"], 2);
    let err = failed(
        &sq,
        &env,
        &["vault.kv_write", "path=app/db", &data2, "cas=1"],
        &mut outs,
    );
    assert_eq!(err, "vault: PUT secret/data/app/db: 400: check-and-set parameter did not match the current version");
    let err = failed(
        &sq,
        &env,
        &["vault.kv_write", "path=app/db", &data2, "cas=0"],
        &mut outs,
    );
    assert!(
        err.contains("check-and-set parameter did not match"),
        "{err}"
    );

    // Versions.
    let r = ok(
        &sq,
        &env,
        &["site.check", "path=app/db", &format!("expected={pw2}")],
        &mut outs,
    );
    assert_eq!(r, json!({"same": true}));
    let r = ok(
        &sq,
        &env,
        &["vault.kv_read", "path=app/db", "version=1"],
        &mut outs,
    );
    assert_eq!(
        (r["version"].clone(), r["data"]["port"].clone()),
        (json!(1), json!(5432))
    );
    let m = ok(&sq, &env, &["vault.kv_metadata", "path=app/db"], &mut outs);
    assert_eq!(m["found"], true);
    assert_eq!(m["current_version"], 2);
    assert_eq!(m["oldest_version"], 0);
    let versions: Vec<&String> = m["versions"]
        .as_object()
        .map(|v| v.keys().collect())
        .unwrap_or_default();
    assert_eq!(versions, ["1", "2"], "{m}");
    assert!(m["updated_time"].as_str().is_some(), "{m}");

    // Soft-delete version 1; then the latest.
    let r = ok(
        &sq,
        &env,
        &["vault.kv_delete", "path=app/db", "versions=[1]"],
        &mut outs,
    );
    assert_eq!(r, json!({"path": "app/db", "deleted": true}));
    let r = ok(
        &sq,
        &env,
        &[
            "vault.kv_read",
            "path=app/db",
            "version=1",
            "required=false",
        ],
        &mut outs,
    );
    assert_eq!(
        (r["found"].clone(), r["deleted"].clone(), r["data"].clone()),
        (json!(false), json!(true), json!(null))
    );
    let err = failed(
        &sq,
        &env,
        &["vault.kv_read", "path=app/db", "version=1"],
        &mut outs,
    );
    assert!(
        err.starts_with("vault: version 1 of secret `secret/app/db` is deleted"),
        "{err}"
    );
    ok(&sq, &env, &["vault.kv_delete", "path=app/db"], &mut outs);
    let err = failed(&sq, &env, &["vault.kv_read", "path=app/db"], &mut outs);
    assert!(
        err.starts_with("vault: secret `secret/app/db` is deleted"),
        "{err}"
    );
    let m = ok(&sq, &env, &["vault.kv_metadata", "path=app/db"], &mut outs);
    assert!(
        m["versions"]["2"]["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{m}"
    );

    // Everything, for good; again is fine; a secret that never existed.
    ok(
        &sq,
        &env,
        &["vault.kv_delete", "path=app/db", "all_versions=true"],
        &mut outs,
    );
    assert_eq!(
        bao_call(&bao, "GET", "secret/metadata/app/db", None, None).0,
        404
    );
    let m = ok(&sq, &env, &["vault.kv_metadata", "path=app/db"], &mut outs);
    assert_eq!(m["found"], false);
    ok(
        &sq,
        &env,
        &["vault.kv_delete", "path=app/db", "all_versions=true"],
        &mut outs,
    );
    let r = ok(
        &sq,
        &env,
        &["vault.kv_read", "path=never", "required=false"],
        &mut outs,
    );
    assert_eq!(
        r,
        json!({"path": "never", "found": false, "data": null, "version": null, "created_time": null, "deleted": false})
    );
    let err = failed(&sq, &env, &["vault.kv_read", "path=never"], &mut outs);
    assert!(
        err.starts_with("vault: secret `secret/never` does not exist"),
        "{err}"
    );

    // A mount that does not exist: Vault's message.
    let err = failed(
        &sq,
        &env,
        &["vault.kv_read", "path=app/db", "mount=nomount"],
        &mut outs,
    );
    assert!(
        err.starts_with("vault: GET nomount/data/app/db: 404: no handler for route"),
        "{err}"
    );
    // A bad token.
    let wrong = "s.NotAValidToken0123456789";
    let err = failed(
        &sq,
        &[(TOKEN_VAR, wrong)],
        &["vault.kv_read", "path=app/db"],
        &mut outs,
    );
    assert!(
        err.starts_with("vault: GET secret/data/app/db: 403: permission denied"),
        "{err}"
    );

    assert_no_leak(&sq, &env, &outs, &[pw1, pw2, &bao.token, wrong]);
}

#[test]
fn approle_login() {
    let bao = OpenBao::start();
    let (role_id, secret_id) = bao.enable_approle("squall");
    let sq = root_with(
        "vault",
        &format!(
            "address: {}\napprole:\n  role_id: {role_id}\n  secret_id: ${{env:{SECRET_ID_VAR}}}\n",
            bao.addr
        ),
    );
    let env = [(SECRET_ID_VAR, secret_id.as_str())];
    let mut outs = Vec::new();
    let pw = "approle-Pa55word-11aa";
    let r = ok(
        &sq,
        &env,
        &[
            "vault.kv_write",
            "path=team/app",
            &format!(r#"data={{"password":"{pw}"}}"#),
        ],
        &mut outs,
    );
    assert_eq!(r["version"], 1);
    let r = ok(&sq, &env, &["vault.kv_read", "path=team/app"], &mut outs);
    assert_eq!(r["data"], json!({"password": "********"}));
    let (_, stored) = bao_call(&bao, "GET", "secret/data/team/app", None, None);
    assert_eq!(stored["data"]["data"]["password"], pw);

    let err = failed(
        &sq,
        &[(SECRET_ID_VAR, "00000000-0000-0000-0000-000000000000")],
        &["vault.kv_read", "path=team/app"],
        &mut outs,
    );
    assert!(err.starts_with("vault: POST auth/approle/login: "), "{err}");
    assert!(
        err.contains("(AppRole login with `approle` of config/vault.yaml)"),
        "{err}"
    );
    assert_no_leak(&sq, &env, &outs, &[pw, &secret_id]);
}

#[test]
fn the_namespace_header_selects_the_namespace() {
    let bao = OpenBao::start();
    let (s, _) = bao_call(
        &bao,
        "POST",
        "sys/namespaces/team-a",
        None,
        Some(&json!({})),
    );
    assert!((200..300).contains(&s), "create namespace: {s}");
    let (s, _) = bao_call(
        &bao,
        "POST",
        "sys/mounts/kv",
        Some("team-a"),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert!((200..300).contains(&s), "mount kv v2 in the namespace: {s}");
    let sq = root(&bao, "namespace: team-a\nmount: kv\n");
    let env = [(TOKEN_VAR, bao.token.as_str())];
    let mut outs = Vec::new();
    ok(
        &sq,
        &env,
        &["vault.kv_write", "path=app", r#"data={"k":"in-namespace"}"#],
        &mut outs,
    );
    let (s, v) = bao_call(&bao, "GET", "kv/data/app", Some("team-a"), None);
    assert_eq!(
        (s, v["data"]["data"]["k"].clone()),
        (200, json!("in-namespace"))
    );
    assert_eq!(
        bao_call(&bao, "GET", "kv/data/app", None, None).0,
        404,
        "not in the root namespace"
    );
    // The action's `mount` overrides the configuration's.
    let err = failed(
        &sq,
        &env,
        &["vault.kv_read", "path=app", "mount=secret"],
        &mut outs,
    );
    assert!(
        err.starts_with("vault: GET secret/data/app: 404: no handler for route"),
        "{err}"
    );
}

#[test]
fn an_unreachable_vault_fails_clearly_and_a_retry_after_restart_succeeds() {
    let mut bao = OpenBao::start();
    let sq = root(&bao, "");
    let token = bao.token.clone();
    let env = [(TOKEN_VAR, token.as_str())];
    let mut outs = Vec::new();
    let data = r#"data={"password":"restart-Pa55word-77"}"#;
    bao.stop();
    let err = failed(
        &sq,
        &env,
        &["vault.kv_write", "path=app/db", data],
        &mut outs,
    );
    assert_eq!(
        err,
        format!("cannot reach Vault at {}: connection refused", bao.addr)
    );
    bao.restart();
    let r = ok(
        &sq,
        &env,
        &["vault.kv_write", "path=app/db", data],
        &mut outs,
    );
    assert_eq!(r["version"], 1);
    assert_no_leak(&sq, &env, &outs, &["restart-Pa55word-77", &token]);
}
