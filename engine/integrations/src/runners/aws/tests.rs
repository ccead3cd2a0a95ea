use super::rds_wait::{judge, Backoff, Verdict};
use crate::aws::config::{parse, Account, DEFAULT_ACCOUNT};
use crate::aws::rds::{
    filters_from, final_snapshot_name, incompatible, summary, tags_from, tags_json,
};
use aws_sdk_rds::types::{DbInstance, Endpoint, Tag};
use serde_json::json;
use std::time::Duration;

fn instance() -> DbInstance {
    DbInstance::builder()
        .db_instance_identifier("orders")
        .db_instance_status("available")
        .engine("postgres")
        .engine_version("16.3")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin")
        .db_name("orders")
        .endpoint(
            Endpoint::builder()
                .address("orders.abc.eu-west-1.rds.example")
                .port(5432)
                .build(),
        )
        .db_instance_arn("arn:aws:rds:eu-west-1:123456789012:db:orders")
        .multi_az(false)
        .tag_list(Tag::builder().key("team").value("payments").build())
        .build()
}

#[test]
fn summary_maps_every_field() {
    assert_eq!(
        summary(&instance()),
        json!({
            "identifier": "orders",
            "status": "available",
            "engine": "postgres",
            "engine_version": "16.3",
            "instance_class": "db.t3.micro",
            "allocated_storage": 20,
            "master_username": "admin",
            "db_name": "orders",
            "endpoint": {"address": "orders.abc.eu-west-1.rds.example", "port": 5432},
            "arn": "arn:aws:rds:eu-west-1:123456789012:db:orders",
            "multi_az": false,
            "tags": {"team": "payments"},
            "adopted": false,
        })
    );
    // An instance being created has no endpoint yet.
    let bare = DbInstance::builder()
        .db_instance_identifier("new")
        .db_instance_status("creating")
        .build();
    let s = summary(&bare);
    assert_eq!(s["endpoint"], json!(null));
    assert_eq!(s["tags"], json!({}));
    assert_eq!(s["status"], "creating");
}

#[test]
fn tags_and_filters_from_parameters() {
    let tags = tags_from(&json!({"team": "payments", "tier": 1})).expect("tags");
    assert_eq!(tags_json(&tags), json!({"team": "payments", "tier": "1"}));
    assert!(tags_from(&json!(["a"])).is_err());
    let f = filters_from(Some(
        &json!({"engine": ["postgres", "mysql"], "db-instance-id": "a"}),
    ))
    .expect("filters");
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].name(), Some("engine"));
    assert_eq!(f[0].values(), ["postgres", "mysql"]);
    assert_eq!(f[1].values(), ["a"]);
    assert!(filters_from(None).expect("none").is_empty());
    let err = filters_from(Some(&json!({"engine": 3}))).unwrap_err();
    assert!(err.contains("filter `engine`"), "{err}");
}

#[test]
fn adoption_compares_engine_class_and_storage() {
    let i = instance();
    assert!(incompatible(&i, "postgres", "db.t3.micro", 20).is_empty());
    assert!(incompatible(&i, "Postgres", "db.t3.micro", 20).is_empty());
    let diffs = incompatible(&i, "mysql", "db.m5.large", 50);
    assert_eq!(
        diffs,
        [
            "engine: postgres (requested mysql)",
            "instance_class: db.t3.micro (requested db.m5.large)",
            "allocated_storage: 20 (requested 50)",
        ]
    );
}

#[test]
fn config_accounts_are_parsed_and_checked() {
    let empty = parse(&json!({})).expect("no config");
    assert_eq!(empty.default_account, DEFAULT_ACCOUNT);
    let (name, acct) = empty.account(None).expect("default account");
    assert_eq!((name.as_str(), acct), ("default", Account::default()));
    let err = empty.account(Some("prod")).unwrap_err();
    assert!(
        err.contains("`prod` is not configured") && err.contains("config/aws.yaml"),
        "{err}"
    );

    let cfg = parse(&json!({
        "default_account": "prod",
        "accounts": {
            "prod": {"region": "eu-west-1", "access_key_id": "AKIDEXAMPLE",
                     "secret_access_key": "prod-secret-key-value", "session_name": "",
                     "endpoint_url": "http://127.0.0.1:5000"},
            "dev": null
        }
    }))
    .expect("valid");
    let (name, prod) = cfg.account(None).expect("prod");
    assert_eq!(name, "prod");
    assert_eq!(prod.region.as_deref(), Some("eu-west-1"));
    assert_eq!(prod.session_name, None, "empty strings are absent");
    assert_eq!(cfg.account(Some("dev")).expect("dev").1, Account::default());
    // The secret key is registered, and Debug never shows it.
    assert_eq!(
        squall_core::secrets::mask_str("k=prod-secret-key-value"),
        "k=********"
    );
    assert!(!format!("{prod:?}").contains("prod-secret-key-value"));

    let bad = |v: serde_json::Value| parse(&v).unwrap_err();
    let e = bad(json!({"accounts": {"a": {"regoin": "x"}}}));
    assert!(
        e.contains("accounts.a.regoin") && e.contains("unknown field"),
        "{e}"
    );
    let e = bad(json!({"accounts": {"a": {"region": 3}}}));
    assert!(e.contains("accounts.a.region"), "{e}");
    let e = bad(json!({"accounts": {"a": {"access_key_id": "AKID"}}}));
    assert!(e.contains("accounts.a.secret_access_key"), "{e}");
    let e = bad(
        json!({"accounts": {"a": {"profile": "p", "access_key_id": "A", "secret_access_key": "S1234"}}}),
    );
    assert!(e.contains("accounts.a.profile"), "{e}");
    let e = bad(json!({"accounts": {"a": {"external_id": "x"}}}));
    assert!(e.contains("role_arn"), "{e}");
    let e = bad(json!({"accounts": {"a": {"endpoint_url": "localhost:5000"}}}));
    assert!(e.contains("http://"), "{e}");
    let e = bad(json!({"accounts": ["a"]}));
    assert!(e.contains("accounts must be a map"), "{e}");
}

#[test]
fn wait_judges_statuses() {
    assert_eq!(judge("db", "available", Some("available")), Verdict::Done);
    assert_eq!(judge("db", "available", Some("creating")), Verdict::Pending);
    assert_eq!(judge("db", "deleted", None), Verdict::Done);
    assert_eq!(judge("db", "deleted", Some("deleting")), Verdict::Pending);
    // Waiting for deletion of a failed instance goes on: deletion still proceeds.
    assert_eq!(judge("db", "deleted", Some("failed")), Verdict::Pending);
    let Verdict::Fail(msg) = judge("db", "available", Some("storage-full")) else {
        panic!("storage-full is terminal");
    };
    assert!(
        msg.contains("storage-full") && msg.contains("`db`"),
        "{msg}"
    );
    let Verdict::Fail(msg) = judge("db", "available", None) else {
        panic!("a missing instance cannot become available");
    };
    assert!(msg.contains("does not exist"), "{msg}");
}

#[test]
fn wait_backs_off_by_half_up_to_the_maximum() {
    let delays: Vec<Duration> = Backoff::new(2.0, 5.0).take(5).collect();
    assert_eq!(
        delays,
        [2.0, 3.0, 4.5, 5.0, 5.0].map(Duration::from_secs_f64)
    );
    assert_eq!(Backoff::new(10.0, 4.0).next(), Some(Duration::from_secs(4)));
}

#[test]
fn final_snapshot_is_named_after_the_instance_and_utc_time() {
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    assert_eq!(
        final_snapshot_name("orders", t),
        "orders-final-20260102030405"
    );
}
