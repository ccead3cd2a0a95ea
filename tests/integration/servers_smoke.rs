//! The test servers themselves: each one is really up and behaves like the service it
//! stands in for (see servers.rs).

use crate::servers::{http, try_http, Consul, Moto, OpenBao};
use serde_json::json;

/// An RDS query-API call (moto takes any credentials; the scope names the service).
fn rds(moto: &Moto, form: &str) -> crate::servers::Reply {
    http(
        "POST",
        &format!("{}/", moto.endpoint),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/rds/aws4_request, \
                 SignedHeaders=host, Signature=0",
            ),
        ],
        Some(&format!("{form}&Version=2014-10-31")),
    )
}

#[test]
fn moto_serves_rds_and_resets() {
    let moto = Moto::start();
    let r = rds(&moto, "Action=DescribeDBInstances");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("<DescribeDBInstancesResult>"), "{}", r.body);
    assert!(!r.body.contains("<DBInstanceIdentifier>"), "{}", r.body);

    let r = rds(
        &moto,
        "Action=CreateDBInstance&DBInstanceIdentifier=smoke-db&Engine=postgres\
         &DBInstanceClass=db.t3.micro&AllocatedStorage=20&MasterUsername=app\
         &MasterUserPassword=not-a-secret-1",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = rds(&moto, "Action=DescribeDBInstances");
    assert!(
        r.body
            .contains("<DBInstanceIdentifier>smoke-db</DBInstanceIdentifier>"),
        "{}",
        r.body
    );

    // AWS-style errors come back as such.
    let r = rds(
        &moto,
        "Action=DescribeDBInstances&DBInstanceIdentifier=no-such-db",
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("DBInstanceNotFound"), "{}", r.body);

    moto.reset();
    let r = rds(&moto, "Action=DescribeDBInstances");
    assert!(!r.body.contains("smoke-db"), "{}", r.body);
}

#[test]
fn openbao_kv_v2_with_root_token_and_approle_and_restart() {
    let mut bao = OpenBao::start();
    let url = format!("{}/v1/secret/data/smoke/app", bao.addr);
    let kv = |token: &str, method: &str, body: Option<&str>| {
        http(method, &url, &[("X-Vault-Token", token)], body)
    };

    // Root token: write, read back.
    let r = kv(&bao.token, "POST", Some(r#"{"data":{"password":"p1"}}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["version"], 1);
    let r = kv(&bao.token, "GET", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["data"]["password"], "p1");

    // No token: refused.
    let r = kv("", "GET", None);
    assert_eq!(r.status, 403, "{}", r.body);

    // AppRole: log in, write a second version, read it.
    let (role_id, secret_id) = bao.enable_approle("squall");
    let login = http(
        "POST",
        &format!("{}/v1/auth/approle/login", bao.addr),
        &[],
        Some(&json!({"role_id": role_id, "secret_id": secret_id}).to_string()),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let client = login.json()["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_string();
    assert_ne!(client, bao.token);
    let r = kv(&client, "POST", Some(r#"{"data":{"password":"p2"}}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["version"], 2);
    assert_eq!(
        kv(&client, "GET", None).json()["data"]["data"]["password"],
        "p2"
    );
    // The policy covers secret/* only.
    let r = http(
        "GET",
        &format!("{}/v1/sys/policies/acl", bao.addr),
        &[("X-Vault-Token", &client)],
        None,
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Stop: unreachable. Restart: same address and root token, data gone (dev mode).
    let (addr, token) = (bao.addr.clone(), bao.token.clone());
    bao.stop();
    assert!(
        try_http("GET", &format!("{addr}/v1/sys/health"), &[], None).is_err(),
        "OpenBao still answers after stop()"
    );
    bao.restart();
    assert_eq!(
        (bao.addr.as_str(), bao.token.as_str()),
        (addr.as_str(), token.as_str())
    );
    let r = kv(&bao.token, "GET", None);
    assert_eq!(r.status, 404, "{}", r.body);
    let r = kv(&bao.token, "POST", Some(r#"{"data":{"password":"p3"}}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["version"], 1);
}

#[test]
fn consul_kv_needs_the_acl_token() {
    let consul = Consul::start();
    let url = format!("{}/v1/kv/smoke/db/endpoint", consul.addr);
    let auth = [("X-Consul-Token", consul.token.as_str())];

    let r = http("PUT", &url, &auth, Some("db.example:5432"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.trim(), "true");
    let r = http("GET", &format!("{url}?raw"), &auth, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "db.example:5432");
    let r = http("GET", &url, &auth, None);
    use base64::Engine as _;
    let stored = r.json()[0]["Value"].as_str().expect("Value").to_string();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(stored)
            .expect("base64"),
        b"db.example:5432"
    );

    // Anonymous requests are denied by default_policy = deny.
    let r = http("PUT", &url, &[], Some("other"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("Permission denied"), "{}", r.body);
    let r = http("GET", &url, &[], None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("lacks permission 'key:read'"), "{}", r.body);
    // A wrong token is refused outright.
    let r = http(
        "GET",
        &url,
        &[("X-Consul-Token", "00000000-0000-4000-a000-000000000000")],
        None,
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("ACL not found"), "{}", r.body);
    // The value is unchanged.
    assert_eq!(
        consul.call("GET", "kv/smoke/db/endpoint?raw", None).body,
        "db.example:5432"
    );
}
