use super::*;

fn fields(c: Json) -> Vec<String> {
    parse(&c)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|(f, _)| f)
        .collect()
}

#[test]
fn config_defaults_and_field_errors() {
    let c = parse(&json!({})).expect("empty config is valid");
    assert_eq!(c.every.0, DEFAULT_EVERY);
    assert_eq!(c.account, None);
    assert!(c.rds_filters().is_empty());
    let c = parse(&json!({
        "account": "prod", "region": "eu-west-1", "every": "30s",
        "filters": {"engine": ["postgres", "mysql"], "db-cluster-id": "c1"},
        "identifiers": ["db1", "db2"]
    }))
    .expect("valid");
    assert_eq!(c.account.as_deref(), Some("prod"));
    assert_eq!(c.every.0, Duration::from_secs(30));
    assert_eq!(c.filters["db-cluster-id"].0, ["c1"]);
    let f = c.rds_filters();
    assert_eq!(f.len(), 3);
    assert_eq!(f[2].name(), Some("db-instance-id"));
    assert_eq!(f[2].values(), ["db1", "db2"]);
    assert_eq!(fields(json!({"every": "soon"})), ["every"]);
    assert_eq!(fields(json!({"every": "0s"})), ["every"]);
    assert_eq!(fields(json!({"filters": ["engine"]})), ["filters"]);
    assert_eq!(
        fields(json!({"filters": {"engine": []}})),
        ["filters.engine"]
    );
    assert_eq!(fields(json!({"identifiers": 3})), ["identifiers"]);
    assert_eq!(
        // Every wrong setting, in the order of the file.
        fields(json!({"region": 3, "intervall": "5s"})),
        ["region", "intervall"]
    );
    let (_, msg) = &parse(&json!({"every": "soon"})).unwrap_err()[0];
    assert!(msg.starts_with("config.every: "), "{msg}");
}

#[test]
fn diff_reports_new_changed_and_gone_instances() {
    let known: BTreeMap<String, String> =
        [("a", "available"), ("b", "creating"), ("c", "available")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let now: BTreeMap<String, (String, Json)> =
        [("a", "available"), ("b", "available"), ("d", "creating")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), (v.to_string(), json!({"identifier": k}))))
            .collect();
    let changes: Vec<(String, Option<String>, String)> = diff(&known, &now)
        .into_iter()
        .map(|(id, old, new, _)| (id, old, new))
        .collect();
    assert_eq!(
        changes,
        [
            (
                "b".to_string(),
                Some("creating".to_string()),
                "available".to_string()
            ),
            ("d".to_string(), None, "creating".to_string()),
            (
                "c".to_string(),
                Some("available".to_string()),
                "deleted".to_string()
            ),
        ]
    );
    assert!(diff(&BTreeMap::new(), &BTreeMap::new()).is_empty());
}

#[test]
fn checkpoint_of_another_scope_is_ignored() {
    let cfg = parse(&json!({"region": "eu-west-1"})).expect("valid");
    let cp = json!({"scope": cfg.scope(), "instances": {"db1": "available"}});
    assert_eq!(
        load(Some(cp.clone()), &cfg.scope()).unwrap()["db1"],
        "available"
    );
    let other = parse(&json!({"region": "us-east-1"})).expect("valid");
    assert!(load(Some(cp), &other.scope()).unwrap().is_empty());
    let broken = json!({"scope": cfg.scope(), "instances": 3});
    assert!(load(Some(broken), &cfg.scope()).is_err());
    assert!(load(None, &cfg.scope()).unwrap().is_empty());
}
