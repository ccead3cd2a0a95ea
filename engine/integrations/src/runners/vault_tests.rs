//! Tests of the `vault.*` runners against a fake Vault HTTP API (OpenBao itself is
//! exercised by tests/integration/vault_kv.rs).

use super::*;
use squall_core::model::Status;
use squall_testkit::{closed_address, context, Fake, Seen};
use std::sync::atomic::{AtomicUsize, Ordering};

const TOKEN: &str = "hvs.vault-test-token-77d0";

fn written() -> (u16, String) {
    (
        200,
        json!({"data": {"version": 3, "created_time": "2024-01-01T00:00:00Z",
                         "deletion_time": "", "destroyed": false}})
        .to_string(),
    )
}

#[tokio::test]
async fn the_namespace_and_token_headers_are_sent_and_cas_goes_in_options() {
    let fake = Fake::start(|_| written()).await;
    let cfg = json!({"address": fake.url, "token": TOKEN, "namespace": "team-a/dev"});
    let params =
        json!({"path": "/app/db/", "data": {"password": "pw-1234"}, "cas": 2, "mount": "kv"});
    let out = KvWrite.run(context("vault.kv_write", params, cfg)).await;
    assert_eq!(
        out.result,
        json!({"path": "app/db", "version": 3, "created_time": "2024-01-01T00:00:00Z"}),
        "{out:?}"
    );
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].target, "/v1/kv/data/app/db");
    assert_eq!(seen[0].header("x-vault-namespace"), Some("team-a/dev"));
    assert_eq!(seen[0].header("x-vault-token"), Some(TOKEN));
    let body: Json = serde_json::from_str(&seen[0].body).expect("json body");
    assert_eq!(
        body,
        json!({"data": {"password": "pw-1234"}, "options": {"cas": 2}})
    );
}

#[tokio::test]
async fn approle_logs_in_once_and_again_when_the_token_is_refused() {
    static LOGINS: AtomicUsize = AtomicUsize::new(0);
    let fake = Fake::start(|s: &Seen| {
        if s.target.ends_with("/login") {
            let n = LOGINS.fetch_add(1, Ordering::SeqCst) + 1;
            return (
                200,
                json!({"auth": {"client_token": format!("s.client-token-{n}")}}).to_string(),
            );
        }
        // The first client token is refused ("expired") from the write of "second" on.
        match (s.header("x-vault-token"), s.header("x-vault-namespace")) {
            (Some("s.client-token-1"), Some("ns1")) if !s.body.contains("second") => written(),
            (Some("s.client-token-2"), Some("ns1")) => written(),
            _ => (403, json!({"errors": ["permission denied"]}).to_string()),
        }
    })
    .await;
    let cfg = json!({"address": fake.url, "namespace": "ns1",
                     "approle": {"role_id": "role-1", "secret_id": "secret-id-9c1f", "mount": "approle"}});
    let ctx = |word: &str| {
        context(
            "vault.kv_write",
            json!({"path": "a", "data": {"k": word}}),
            cfg.clone(),
        )
    };
    assert_eq!(KvWrite.run(ctx("first")).await.status, Status::Succeeded);
    assert_eq!(KvWrite.run(ctx("again")).await.status, Status::Succeeded);
    let out = KvWrite.run(ctx("second")).await;
    assert_eq!(out.status, Status::Succeeded, "{out:?}");
    let seen = fake.seen();
    let logins: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.target == "/v1/auth/approle/login")
        .collect();
    assert_eq!(
        logins.len(),
        2,
        "one login, then one after the 403: {seen:#?}"
    );
    assert_eq!(logins[0].header("x-vault-namespace"), Some("ns1"));
    let body: Json = serde_json::from_str(&logins[0].body).expect("login body");
    assert_eq!(
        body,
        json!({"role_id": "role-1", "secret_id": "secret-id-9c1f"})
    );
    assert!(
        squall_core::secrets::mask_str("s.client-token-1 secret-id-9c1f") == "******** ********"
    );
}

#[tokio::test]
async fn vault_errors_are_surfaced_with_method_path_and_status() {
    let fake = Fake::start(|_| {
        (
            400,
            json!({"errors": ["check-and-set parameter did not match the current version"]})
                .to_string(),
        )
    })
    .await;
    let cfg = json!({"address": fake.url, "token": TOKEN});
    let params = json!({"path": "app/db", "data": {"u": "x"}, "cas": 1});
    let out = KvWrite.run(context("vault.kv_write", params, cfg)).await;
    assert_eq!(
        out.error.as_deref(),
        Some("vault: PUT secret/data/app/db: 400: check-and-set parameter did not match the current version")
    );
}

#[tokio::test]
async fn read_registers_the_values_as_secrets_and_reports_missing_ones() {
    let fake = Fake::start(|s: &Seen| {
        if s.target.contains("gone") {
            return (
                404,
                // As OpenBao answers for a deleted version: no `errors` at all.
                json!({"data": {"data": null, "metadata": {"version": 2,
                    "created_time": "t", "deletion_time": "t2", "destroyed": false}}})
                .to_string(),
            );
        }
        if s.target.contains("nope") {
            return (404, json!({"errors": []}).to_string());
        }
        (
            200,
            json!({"data": {"data": {"password": "read-secret-4f1d", "port": 5432},
                            "metadata": {"version": 4, "created_time": "t", "deletion_time": "", "destroyed": false}}})
            .to_string(),
        )
    })
    .await;
    let cfg = json!({"address": fake.url, "token": TOKEN});
    let read = |params: Json| KvRead.run(context("vault.kv_read", params, cfg.clone()));
    let out = read(json!({"path": "app/db", "version": 4})).await;
    assert_eq!(
        out.result,
        json!({"path": "app/db", "found": true, "data": {"password": "read-secret-4f1d", "port": 5432},
               "version": 4, "created_time": "t", "deleted": false})
    );
    assert_eq!(
        squall_core::secrets::mask_str("pw=read-secret-4f1d"),
        "pw=********"
    );
    assert!(fake.seen()[0]
        .target
        .ends_with("/v1/secret/data/app/db?version=4"));
    let out = read(json!({"path": "nope"})).await;
    assert_eq!(
        out.error.as_deref(),
        Some("vault: secret `secret/nope` does not exist (GET secret/data/nope: 404); pass required: false to get found: false instead")
    );
    let out = read(json!({"path": "gone", "required": false})).await;
    assert_eq!(
        out.result,
        json!({"path": "gone", "found": false, "data": null, "version": 2, "created_time": "t", "deleted": true})
    );
}

#[tokio::test]
async fn credentials_must_be_a_token_or_an_approle() {
    let none = context("vault.kv_read", json!({"path": "a"}), json!({}));
    let err = KvRead.run(none).await.error.unwrap_or_default();
    assert!(
        err.starts_with("config/vault.yaml: no credentials"),
        "{err}"
    );
    let both = json!({"token": TOKEN, "approle": {"role_id": "r", "secret_id": "s-1234"}});
    let err = KvRead
        .run(context("vault.kv_read", json!({"path": "a"}), both))
        .await
        .error
        .unwrap_or_default();
    assert!(err.contains("either `token` or `approle`"), "{err}");
    let partial = json!({"approle": {"role_id": "r"}});
    let err = KvRead
        .run(context("vault.kv_read", json!({"path": "a"}), partial))
        .await
        .error
        .unwrap_or_default();
    assert!(err.contains("`approle.secret_id` is required"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_named_with_its_address() {
    let addr = closed_address().await;
    let cfg = json!({"address": addr, "token": TOKEN});
    let out = KvDelete
        .run(context("vault.kv_delete", json!({"path": "a"}), cfg))
        .await;
    assert_eq!(
        out.error.as_deref(),
        Some(format!("cannot reach Vault at {addr}: connection refused").as_str())
    );
}

#[tokio::test]
async fn delete_picks_the_endpoint_by_its_parameters() {
    let fake = Fake::start(|_| (204, String::new())).await;
    let cfg = json!({"address": fake.url, "token": TOKEN});
    let del = |params: Json| KvDelete.run(context("vault.kv_delete", params, cfg.clone()));
    for params in [
        json!({"path": "a"}),
        json!({"path": "a", "versions": [1, 2]}),
        json!({"path": "a", "all_versions": true}),
    ] {
        let out = del(params).await;
        assert_eq!(out.result, json!({"path": "a", "deleted": true}), "{out:?}");
    }
    let seen: Vec<(String, String, String)> = fake
        .seen()
        .into_iter()
        .map(|s| (s.method, s.target, s.body))
        .collect();
    assert_eq!(
        seen,
        [
            ("DELETE".into(), "/v1/secret/data/a".into(), String::new()),
            (
                "POST".into(),
                "/v1/secret/delete/a".into(),
                r#"{"versions":[1,2]}"#.into()
            ),
            (
                "DELETE".into(),
                "/v1/secret/metadata/a".into(),
                String::new()
            ),
        ]
    );
    let out = del(json!({"path": "a", "versions": [1], "all_versions": true})).await;
    assert!(out.error.unwrap_or_default().contains("not both"));
}

#[tokio::test]
async fn secret_keys_limits_what_becomes_a_secret() {
    let fake = Fake::start(|_: &Seen| {
        (
            200,
            json!({"data": {"data": {"password": "only-this-9c2e", "host": "db-host-7a1b.example"},
                            "metadata": {"version": 1, "created_time": "t", "deletion_time": "", "destroyed": false}}})
            .to_string(),
        )
    })
    .await;
    let cfg = json!({"address": fake.url, "token": TOKEN});
    let params = json!({"path": "app/db", "secret_keys": ["password"]});
    let out = KvRead.run(context("vault.kv_read", params, cfg)).await;
    assert_eq!(out.result["data"]["host"], "db-host-7a1b.example");
    assert_eq!(
        squall_core::secrets::mask_str("only-this-9c2e at db-host-7a1b.example"),
        "******** at db-host-7a1b.example"
    );
}
