//! The aws pack against a real moto server (issue 5, item 1): the RDS lifecycle through
//! `squall run`, adoption and conflicts, AWS's errors, STS with masked credentials, and
//! no password anywhere Squall writes.

use crate::harness::{copy_dir, repo, Squall};
use crate::servers::{http, Moto};
use serde_json::{json, Value};

/// The static secret key of the test account (registered as a secret by the pack).
pub const SECRET_KEY: &str = "moto-secret-key-for-squall";
const PASSWORD: &str = "Pw-orders-7f3a9c1e";
const NEW_PASSWORD: &str = "Pw-rotated-2b8d4e6f";

/// A content root with the core and aws packs whose `default` account is `endpoint`.
pub fn content(endpoint: &str) -> Squall {
    let sq = Squall::core_only();
    copy_dir(&repo().join("packs/aws"), &sq.path("packs/aws"));
    sq.write(
        "config/aws.yaml",
        &format!(
            "accounts:\n  default:\n    region: eu-west-1\n    access_key_id: testing\n    secret_access_key: {SECRET_KEY}\n    endpoint_url: {endpoint}\n"
        ),
    );
    sq
}

/// `squall run REF args -o json`: (exit code, record).
#[track_caller]
fn run(sq: &Squall, reference: &str, args: &[&str]) -> (i32, Value) {
    let mut a = vec![reference];
    a.extend_from_slice(args);
    let (out, rec) = sq.exec_json(&a);
    for secret in [PASSWORD, NEW_PASSWORD, SECRET_KEY] {
        assert!(
            !out.stdout.contains(secret) && !out.stderr.contains(secret),
            "the CLI printed a secret\n{}",
            out.describe()
        );
    }
    (out.code, rec)
}

/// Run and expect success; the result.
#[track_caller]
fn ok(sq: &Squall, reference: &str, args: &[&str]) -> Value {
    let (code, rec) = run(sq, reference, args);
    assert_eq!(code, 0, "{reference} failed: {rec:#}");
    assert_eq!(rec["status"], "succeeded", "{rec:#}");
    rec["result"].clone()
}

/// Run and expect failure; the error message.
#[track_caller]
fn fails(sq: &Squall, reference: &str, args: &[&str]) -> String {
    let (code, rec) = run(sq, reference, args);
    assert_eq!(code, 1, "{reference} should fail: {rec:#}");
    assert_eq!(rec["status"], "failed", "{rec:#}");
    rec["error"].as_str().unwrap_or_default().to_string()
}

/// One query-API call to moto, unsigned (moto routes by the credential scope and does
/// not check signatures): the response body.
pub fn moto_query(endpoint: &str, service: &str, query: &str) -> String {
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential=testing/20260101/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=00"
    );
    let r = http(
        "GET",
        &format!("{endpoint}/?{query}"),
        &[("Authorization", auth.as_str())],
        None,
    );
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.body
}

/// Whether moto holds the DB snapshot `id`.
fn snapshot_exists(endpoint: &str, id: &str) -> bool {
    let body = moto_query(
        endpoint,
        "rds",
        "Action=DescribeDBSnapshots&Version=2014-10-31",
    );
    assert!(body.contains("DescribeDBSnapshotsResponse"), "{body}");
    body.contains(&format!(
        "<DBSnapshotIdentifier>{id}</DBSnapshotIdentifier>"
    ))
}

#[test]
fn rds_lifecycle_create_describe_modify_wait_delete() {
    let moto = Moto::start();
    let sq = content(&moto.endpoint);
    let pw = format!("master_password={PASSWORD}");
    let created = ok(
        &sq,
        "aws.rds_create_db_instance",
        &[
            "identifier=orders",
            "engine=postgres",
            "master_username=admin",
            "db_name=orders",
            &pw,
            r#"tags={"team":"payments"}"#,
        ],
    );
    assert_eq!(created["identifier"], "orders");
    assert_eq!(created["status"], "available", "{created:#}");
    assert_eq!(created["engine"], "postgres");
    assert_eq!(created["instance_class"], "db.t3.micro");
    assert_eq!(created["allocated_storage"], 20);
    assert_eq!(created["master_username"], "admin");
    assert_eq!(created["db_name"], "orders");
    assert_eq!(created["tags"], json!({"team": "payments"}));
    assert_eq!(created["adopted"], false);
    assert!(created["endpoint"]["address"].is_string(), "{created:#}");
    assert_eq!(created["endpoint"]["port"], 5432);
    assert!(created.get("master_password").is_none());

    let found = ok(&sq, "aws.rds_describe_db_instances", &["identifier=orders"]);
    assert_eq!(found["instances"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["instances"][0]["arn"], created["arn"]);
    let none = ok(
        &sq,
        "aws.rds_describe_db_instances",
        &["identifier=nothing"],
    );
    assert_eq!(none, json!({"instances": []}));
    let mysql = ok(
        &sq,
        "aws.rds_describe_db_instances",
        &[r#"filters={"engine":["mysql"]}"#],
    );
    assert_eq!(mysql, json!({"instances": []}));
    let postgres = ok(
        &sq,
        "aws.rds_describe_db_instances",
        &[r#"filters={"engine":["postgres"]}"#],
    );
    assert_eq!(postgres["instances"][0]["identifier"], "orders");

    let new_pw = format!("master_password={NEW_PASSWORD}");
    let modified = ok(
        &sq,
        "aws.rds_modify_db_instance",
        &["identifier=orders", "instance_class=db.t3.small", &new_pw],
    );
    assert_eq!(modified["instance_class"], "db.t3.small", "{modified:#}");

    let (code, rec) = run(&sq, "aws.rds_wait_db_instance", &["identifier=orders"]);
    assert_eq!(code, 0, "{rec:#}");
    assert_eq!(rec["result"]["status"], "available");
    assert_eq!(rec["result"]["instance_class"], "db.t3.small");
    let tail = sq.run(&["execution", "tail", rec["id"].as_str().unwrap_or_default()]);
    tail.ok().stdout_has("orders: available → available (");

    let deleted = ok(&sq, "aws.rds_delete_db_instance", &["identifier=orders"]);
    assert_eq!(deleted["deleted"], true);
    let snapshot = deleted["final_snapshot_identifier"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(snapshot.starts_with("orders-final-"), "{deleted:#}");
    assert_eq!(snapshot.len(), "orders-final-".len() + 14, "{snapshot}");
    assert!(snapshot_exists(&moto.endpoint, &snapshot));
    let gone = ok(
        &sq,
        "aws.rds_wait_db_instance",
        &["identifier=orders", "status=deleted"],
    );
    assert_eq!(gone, json!({"identifier": "orders", "deleted": true}));
    let again = ok(&sq, "aws.rds_delete_db_instance", &["identifier=orders"]);
    assert_eq!(
        again,
        json!({"identifier": "orders", "deleted": false, "already_absent": true})
    );

    // Without a final snapshot.
    ok(
        &sq,
        "aws.rds_create_db_instance",
        &["identifier=scratch", "engine=mysql", &pw],
    );
    let deleted = ok(
        &sq,
        "aws.rds_delete_db_instance",
        &["identifier=scratch", "skip_final_snapshot=true"],
    );
    assert_eq!(deleted["final_snapshot_identifier"], Value::Null);
    assert!(!moto_query(
        &moto.endpoint,
        "rds",
        "Action=DescribeDBSnapshots&Version=2014-10-31"
    )
    .contains("scratch-final"));
    ok(
        &sq,
        "aws.rds_wait_db_instance",
        &["identifier=scratch", "status=deleted"],
    );

    // The passwords and the account's secret key are nowhere in the data dir.
    for secret in [PASSWORD, NEW_PASSWORD, SECRET_KEY] {
        sq.assert_data_lacks(secret);
    }
    let all = sq.run(&["execution", "list", "-o", "json"]);
    all.ok();
    assert!(!all.stdout.contains(PASSWORD) && !all.stdout.contains(NEW_PASSWORD));
}

#[test]
fn create_adopts_a_compatible_instance_and_names_conflicting_fields() {
    let moto = Moto::start();
    let sq = content(&moto.endpoint);
    let pw = format!("master_password={PASSWORD}");
    let args = ["identifier=billing", "engine=postgres", pw.as_str()];
    let first = ok(&sq, "aws.rds_create_db_instance", &args);
    assert_eq!(first["adopted"], false);
    let second = ok(&sq, "aws.rds_create_db_instance", &args);
    assert_eq!(second["adopted"], true, "{second:#}");
    assert_eq!(second["arn"], first["arn"]);

    let err = fails(
        &sq,
        "aws.rds_create_db_instance",
        &[
            "identifier=billing",
            "engine=postgres",
            "instance_class=db.m5.large",
            "allocated_storage=50",
            &pw,
        ],
    );
    assert!(
        err.starts_with("aws.rds_create_db_instance: ")
            && err.contains("instance_class: db.t3.micro (requested db.m5.large)")
            && err.contains("allocated_storage: 20 (requested 50)")
            && !err.contains("engine:"),
        "{err}"
    );
    let listed = ok(&sq, "aws.rds_describe_db_instances", &[]);
    assert_eq!(listed["instances"].as_array().map(Vec::len), Some(1));
}

#[test]
fn aws_errors_carry_code_and_message_and_unreachable_endpoints_are_named() {
    let moto = Moto::start();
    let sq = content(&moto.endpoint);
    let pw = format!("master_password={PASSWORD}");
    let err = fails(
        &sq,
        "aws.rds_create_db_instance",
        &["identifier=bad", "engine=foo", &pw],
    );
    assert!(
        err.starts_with("aws.rds_create_db_instance: InvalidParameterValue: ")
            && err.contains("foo"),
        "{err}"
    );
    let err = fails(&sq, "aws.rds_wait_db_instance", &["identifier=ghost"]);
    assert!(err.contains("`ghost` does not exist"), "{err}");
    let err = fails(&sq, "aws.rds_describe_db_instances", &["account=prod"]);
    assert!(
        err.contains("AWS account `prod` is not configured") && err.contains("config/aws.yaml"),
        "{err}"
    );

    // A port nobody listens on.
    let dead = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port")
    );
    let sq = content(&dead);
    let err = fails(&sq, "aws.rds_describe_db_instances", &[]);
    assert!(
        err.contains(&format!("cannot reach the RDS endpoint {dead}")),
        "{err}"
    );
}

#[test]
fn wait_times_out_naming_the_last_status() {
    let moto = Moto::start();
    let sq = content(&moto.endpoint);
    let pw = format!("master_password={PASSWORD}");
    ok(
        &sq,
        "aws.rds_create_db_instance",
        &["identifier=steady", "engine=postgres", &pw],
    );
    let err = fails(
        &sq,
        "aws.rds_wait_db_instance",
        &[
            "identifier=steady",
            "status=stopped",
            "timeout=1",
            "interval=0.2",
        ],
    );
    assert!(
        err.contains("timed out after 1 s") && err.contains("last status: available"),
        "{err}"
    );
}

#[test]
fn sts_assume_role_masks_the_secret_parts() {
    let moto = Moto::start();
    let sq = content(&moto.endpoint);
    let role = "arn:aws:iam::123456789012:role/provisioner";
    let (code, rec) = run(
        &sq,
        "aws.sts_assume_role",
        &[&format!("role_arn={role}"), "session_name=squall-test"],
    );
    assert_eq!(code, 0, "{rec:#}");
    let r = &rec["result"];
    assert!(
        r["access_key_id"]
            .as_str()
            .is_some_and(|k| k.len() > 10 && k != "********"),
        "{r:#}"
    );
    assert_eq!(r["secret_access_key"], "********", "{r:#}");
    assert_eq!(r["session_token"], "********", "{r:#}");
    assert_eq!(
        r["assumed_role_arn"],
        "arn:aws:sts::123456789012:assumed-role/provisioner/squall-test"
    );
    assert!(
        r["expiration"].as_str().is_some_and(|e| e.ends_with('Z')),
        "{r:#}"
    );
    // The stored record, read back by another process, is masked too.
    let stored = sq.get(rec["id"].as_str().unwrap_or_default());
    assert_eq!(stored["result"]["secret_access_key"], "********");
    assert_eq!(stored["result"]["session_token"], "********");

    // An account that assumes a role for every call: moto files what the assumed
    // credentials create under the role's AWS account, which proves they were used.
    let role = "arn:aws:iam::111122223333:role/ops";
    sq.write(
        "config/aws.yaml",
        &format!(
            "default_account: ops\naccounts:\n  ops:\n    region: eu-west-1\n    access_key_id: testing\n    secret_access_key: {SECRET_KEY}\n    role_arn: {role}\n    external_id: ext-42\n    session_name: squall-ops\n    endpoint_url: {}\n",
            moto.endpoint
        ),
    );
    let pw = format!("master_password={PASSWORD}");
    let created = ok(
        &sq,
        "aws.rds_create_db_instance",
        &["identifier=assumed", "engine=postgres", &pw],
    );
    assert_eq!(
        created["arn"], "arn:aws:rds:eu-west-1:111122223333:db:assumed",
        "{created:#}"
    );
    sq.assert_data_lacks(SECRET_KEY);
    sq.assert_data_lacks(PASSWORD);
}
