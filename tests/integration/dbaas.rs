//! The dbaas flow end to end (issue 5): a `Database` custom resource applied to a real
//! kube-apiserver is provisioned by `squall serve` against a moto server (RDS), a Consul dev
//! agent and an OpenBao dev server, reported in the resource's status, and cleaned up on
//! delete. Failure paths (bad spec, RDS rejection, Vault down then a retry), a kill -9 in
//! the middle of provisioning, and a search for the generated password in everything Squall
//! wrote.

use crate::harness::{copy_dir, repo, Squall};
use crate::kube::Cluster;
use crate::server::Server;
use crate::servers::{http, Consul, Moto, OpenBao};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A content root with `core` and the packs the dbaas flow uses.
fn dbaas_content() -> Squall {
    let sq = Squall::core_only();
    for p in ["kubernetes", "aws", "consul", "vault", "dbaas"] {
        copy_dir(
            &repo().join("packs").join(p),
            &sq.path(&format!("packs/{p}")),
        );
    }
    sq
}

/// A cluster with the CRD, the three servers, and a content root wired to all of them.
struct Env {
    c: Cluster,
    moto: Moto,
    bao: OpenBao,
    consul: Consul,
    sq: Squall,
}

fn setup(prefix: &str, dbaas_config: &str) -> Env {
    let c = Cluster::start(prefix);
    let moto = Moto::start();
    let bao = OpenBao::start();
    let consul = Consul::start();
    let sq = dbaas_content();
    sq.write(
        "squall.yaml",
        &format!("clusters:\n{}", c.settings_entry("default")),
    );
    // Secrets reach the config through ${file:}, as a deployment would mount them.
    sq.write("secrets/aws", "test-secret-key");
    sq.write("secrets/consul", &consul.token);
    sq.write("secrets/vault", &bao.token);
    let secret = |name: &str| sq.path(&format!("secrets/{name}")).display().to_string();
    sq.write(
        "config/aws.yaml",
        &format!(
            "default_account: default\naccounts:\n  default:\n    region: us-east-1\n    access_key_id: testing\n    secret_access_key: ${{file:{}}}\n    endpoint_url: {}\n",
            secret("aws"),
            moto.endpoint
        ),
    );
    sq.write(
        "config/consul.yaml",
        &format!(
            "address: {}\ntoken: ${{file:{}}}\n",
            consul.addr,
            secret("consul")
        ),
    );
    sq.write(
        "config/vault.yaml",
        &format!(
            "address: {}\ntoken: ${{file:{}}}\n",
            bao.addr,
            secret("vault")
        ),
    );
    sq.write("config/dbaas.yaml", dbaas_config);
    let (ok, out, err) = c.kubectl(&[
        "apply",
        "-f",
        &repo()
            .join("packs/dbaas/crds/database.yaml")
            .display()
            .to_string(),
    ]);
    assert!(ok, "CRD not applied: {out}{err}");
    c.wait_crd("databases.dbaas.squall.dev");
    for ns in ["shop", "billing"] {
        let (ok, out, err) = c.kubectl(&["create", "namespace", ns]);
        assert!(ok, "namespace {ns}: {out}{err}");
    }
    sq.run(&["validate"]).ok();
    Env {
        c,
        moto,
        bao,
        consul,
        sq,
    }
}

fn database(name: &str, namespace: &str, spec: &str) -> String {
    format!("apiVersion: dbaas.squall.dev/v1\nkind: Database\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec: {spec}\n")
}

/// The resource's status (`Null` when it has none or is gone).
fn status(c: &Cluster, ns: &str, name: &str) -> Value {
    let (ok, out, _) = c.kubectl(&["get", "database", name, "-n", ns, "-o", "json"]);
    if !ok {
        return Value::Null;
    }
    serde_json::from_str::<Value>(&out)
        .map(|v| v["status"].clone())
        .unwrap_or(Value::Null)
}

/// Wait until the resource's phase is `phase` (anti-hang limit 180 s) and return the status.
#[track_caller]
fn wait_phase(c: &Cluster, s: &Server, ns: &str, name: &str, phase: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let st = status(c, ns, name);
        if st["phase"] == phase {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "{ns}/{name} never reached {phase}; status: {st}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Identifiers of the DB instances moto holds.
fn moto_instances(moto: &Moto) -> Vec<String> {
    tags(
        &moto_query(moto, "DescribeDBInstances"),
        "DBInstanceIdentifier",
    )
}

/// Identifiers of the DB snapshots moto holds.
fn moto_snapshots(moto: &Moto) -> Vec<String> {
    tags(
        &moto_query(moto, "DescribeDBSnapshots"),
        "DBSnapshotIdentifier",
    )
}

/// One RDS query-API call to moto (unsigned requests are accepted; the credential scope
/// routes it to RDS).
fn moto_query(moto: &Moto, action: &str) -> String {
    let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/rds/aws4_request, SignedHeaders=host, Signature=0";
    let r = http(
        "POST",
        &format!("{}/", moto.endpoint),
        &[
            ("Authorization", auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&format!("Action={action}&Version=2014-10-31")),
    );
    assert_eq!(r.status, 200, "moto {action}: {}", r.body);
    r.body
}

/// The text of every `<tag>…</tag>` element, in order.
fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        found.push(rest[..j].to_string());
        rest = &rest[j..];
    }
    found
}

/// Executions of `action` (newest first).
fn executions(s: &Server, action: &str) -> Vec<Value> {
    s.request(
        "GET",
        &format!("/api/v1/executions?action={action}&limit=1000&all=true"),
        None,
        None,
    )
    .json()
    .as_array()
    .cloned()
    .unwrap_or_default()
}

/// Wait until some execution of `action` has `status` (anti-hang limit 180 s).
#[track_caller]
fn wait_execution(s: &Server, action: &str, status: &str) -> Value {
    wait_execution_for(s, action, None, status)
}

/// Like [`wait_execution`], for the execution whose `name` parameter is `name` (when given):
/// several resources may have runs of the same action in one test.
fn wait_execution_for(s: &Server, action: &str, name: Option<&str>, status: &str) -> Value {
    let wanted =
        |e: &Value| e["status"] == status && name.is_none_or(|n| e["parameters"]["name"] == n);
    let v = s.wait_json(
        &format!("/api/v1/executions?action={action}&limit=1000&all=true"),
        None,
        180,
        |v| v.as_array().is_some_and(|a| a.iter().any(wanted)),
    );
    v.as_array()
        .and_then(|a| a.iter().find(|e| wanted(e)).cloned())
        .unwrap_or(Value::Null)
}

/// The generated password, read from the only place it may be: OpenBao.
fn vault_secret(bao: &OpenBao, path: &str) -> Value {
    let r = bao.call("GET", &format!("secret/data/{path}"), None);
    assert_eq!(r.status, 200, "secret {path}: {}", r.body);
    r.json()["data"]["data"].clone()
}

/// `password` appears nowhere Squall wrote or shows: data directory, server log (with the
/// audit trail), the API's executions and trigger instances, the CLI's execution output,
/// and the resource itself.
#[track_caller]
fn assert_no_leak(e: &Env, s: &Server, password: &str) {
    assert!(
        password.len() >= 16,
        "not a generated password: {password:?}"
    );
    e.sq.assert_data_lacks(password);
    assert!(
        !s.log_text().contains(password),
        "password in the server log"
    );
    for path in [
        "/api/v1/executions?limit=1000&all=true",
        "/api/v1/trigger-instances?limit=1000",
    ] {
        let body = s.request("GET", path, None, None).body;
        assert!(!body.contains(password), "password in {path}");
    }
    let server = format!("http://{}", s.addr);
    for e_rec in executions(s, "dbaas.provision") {
        let id = e_rec["id"].as_str().unwrap_or_default().to_string();
        for fmt in ["json", "yaml", "table"] {
            let out =
                e.sq.run(&["--server", &server, "execution", "get", &id, "-o", fmt]);
            assert!(
                !out.stdout.contains(password) && !out.stderr.contains(password),
                "password in `execution get {id} -o {fmt}`"
            );
        }
    }
    let out = e.sq.run(&[
        "--server",
        &server,
        "execution",
        "list",
        "--all",
        "--limit",
        "0",
        "-o",
        "json",
    ]);
    assert!(!out.stdout.contains(password), "password in execution list");
    let (_, yaml, _) = e.c.kubectl(&["get", "databases", "-A", "-o", "yaml"]);
    assert!(!yaml.contains(password), "password in the resources");
}

/// The content alone (no servers): every dbaas pack file validates with the packs it uses,
/// and `dbaas.plan` turns a spec into names and a request, or names every problem.
#[test]
fn plan_checks_the_spec_and_derives_names() {
    let sq = dbaas_content();
    sq.write(
        "config/dbaas.yaml",
        "consul_prefix: apps/db\ninstance_classes: {small: db.t4g.micro}\n",
    );
    sq.run(&["validate"]).ok();
    let (_, rec) = sq.exec_json(&[
        "dbaas.plan",
        "name=Orders.EU--1",
        "namespace=shop",
        "-p",
        r#"{"spec": {"engine": "mysql", "storageGB": 50, "deletionPolicy": "Delete", "account": "prod"}}"#,
    ]);
    let plan = &rec["result"];
    assert_eq!(plan["identifier"], "shop-orders-eu-1", "{plan:#}");
    assert_eq!(plan["database"], "Orders_EU__1", "{plan:#}");
    assert_eq!(
        plan["consul_prefix"], "apps/db/shop/Orders.EU--1",
        "{plan:#}"
    );
    assert_eq!(plan["skip_final_snapshot"], true, "{plan:#}");
    assert_eq!(
        plan["aws"],
        serde_json::json!({"account": "prod"}),
        "{plan:#}"
    );
    let req = &plan["request"];
    assert_eq!(req["instance_class"], "db.t4g.micro", "{req:#}");
    assert_eq!(req["allocated_storage"], 50, "{req:#}");
    assert_eq!(req["engine"], "mysql", "{req:#}");
    assert!(req.get("engine_version").is_none(), "{req:#}");

    let out = sq.run(&[
        "run",
        "dbaas.plan",
        "name=x",
        "-p",
        r#"{"spec": {"size": "medium", "storageGB": 70000, "username": "9lives", "multiAZ": "yes"}}"#,
    ]);
    out.code(1);
    for needle in [
        "spec.engine is required: one of postgres, mysql, mariadb",
        "spec.size \"medium\" is not known: use one of small or set spec.instanceClass",
        "spec.storageGB 70000 is out of range",
        "spec.username \"9lives\" must start with a letter",
        "spec.multiAZ must be true or false",
    ] {
        assert!(
            out.stdout.contains(needle) || out.stderr.contains(needle),
            "{needle:?} missing:\n{}",
            out.describe()
        );
    }
}

/// Apply → Ready with the endpoint; the instance in moto, keys in Consul, the secret in
/// OpenBao; re-applying unchanged starts nothing; status updates start nothing; the
/// password leaks nowhere; delete → everything removed and a final snapshot taken.
#[test]
fn a_database_resource_is_provisioned_and_deprovisioned() {
    let e = setup("dbaas", "wait_delay: 0\n");
    let s = Server::start(&e.sq);
    let manifest = database(
        "orders",
        "shop",
        "{engine: postgres, version: \"16.3\", size: small, storageGB: 30}",
    );
    let applied = Instant::now();
    e.c.apply(&manifest);
    let st = wait_phase(&e.c, &s, "shop", "orders", "Ready");
    eprintln!(
        "apply → Ready: {:?} (moto, wait_delay 0)",
        applied.elapsed()
    );
    assert_eq!(st["instance"], "shop-orders", "{st}");
    assert_eq!(st["consulKey"], "dbaas/shop/orders", "{st}");
    assert_eq!(st["secretPath"], "dbaas/shop/orders", "{st}");
    assert_eq!(st["observedGeneration"], 1, "{st}");
    let host = st["host"].as_str().expect("host").to_string();
    let port = st["port"].as_i64().expect("port");
    assert_eq!(st["endpoint"], format!("{host}:{port}"), "{st}");

    assert_eq!(moto_instances(&e.moto), vec!["shop-orders".to_string()]);
    for (key, want) in [
        ("host", host.clone()),
        ("port", port.to_string()),
        ("engine", "postgres".into()),
        ("database", "orders".into()),
        ("instance", "shop-orders".into()),
    ] {
        let r = e
            .consul
            .call("GET", &format!("kv/dbaas/shop/orders/{key}?raw"), None);
        assert_eq!((r.status, r.body.as_str()), (200, want.as_str()), "{key}");
    }
    let secret = vault_secret(&e.bao, "dbaas/shop/orders");
    assert_eq!(secret["username"], "dbadmin", "{secret}");
    assert_eq!(secret.as_object().map(|m| m.len()), Some(2), "{secret}");
    let password = secret["password"].as_str().expect("password").to_string();
    assert_eq!(password.len(), 24);

    // Squall's own status patches came back as MODIFIED events; none started a run.
    s.wait_json(
        "/api/v1/trigger-instances?type=kubernetes.resource&limit=1000",
        None,
        60,
        |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .filter(|t| {
                        t["payload"]["event"] == "MODIFIED" && t["payload"]["name"] == "orders"
                    })
                    .count()
                    >= 2
            })
        },
    );
    e.sq.write("orders.yaml", &manifest);
    let file = e.sq.path("orders.yaml").display().to_string();
    let (ok, out, err) = e.c.kubectl(&["apply", "-f", &file]);
    assert!(ok && out.contains("unchanged"), "re-apply: {out}{err}");
    wait_execution(&s, "dbaas.provision", "succeeded");
    std::thread::sleep(Duration::from_secs(2));
    let runs = executions(&s, "dbaas.provision");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["status"], "succeeded", "{:#}", runs[0]);
    assert_eq!(executions(&s, "aws.rds_create_db_instance").len(), 1);

    // The password went to RDS as a parameter: the record shows it masked.
    let create = &executions(&s, "aws.rds_create_db_instance")[0];
    assert_eq!(
        create["parameters"]["master_password"], "********",
        "{create:#}"
    );
    assert_no_leak(&e, &s, &password);

    let (ok, out, err) = e.c.kubectl(&["delete", "database", "orders", "-n", "shop"]);
    assert!(ok, "delete: {out}{err}");
    let run = wait_execution(&s, "dbaas.deprovision", "succeeded");
    assert_eq!(run["parameters"]["name"], "orders", "{run:#}");
    assert!(moto_instances(&e.moto).is_empty(), "instance not deleted");
    let snaps = moto_snapshots(&e.moto);
    assert!(
        snaps.iter().any(|s| s.starts_with("shop-orders-final-")),
        "no final snapshot: {snaps:?}"
    );
    let r = e.consul.call("GET", "kv/dbaas/shop/orders/?recurse", None);
    assert_eq!(r.status, 404, "consul keys left: {}", r.body);
    let r = e.bao.call("GET", "secret/metadata/dbaas/shop/orders", None);
    assert_eq!(r.status, 404, "vault secret left: {}", r.body);
    assert_no_leak(&e, &s, &password);
}

/// Bad input and failing servers end in `Failed` with a reason naming the step: an
/// invalid spec (no AWS call), an engine RDS rejects (AWS's code and message), Vault down
/// (then a retry through the annotation completes the job).
#[test]
fn failures_are_reported_in_the_status_and_a_retry_completes() {
    // `postgress` is offered by this (mis)configured platform but rejected by RDS.
    let mut e = setup(
        "dbfail",
        "wait_delay: 0\nengines: [postgres, mysql, postgress]\n",
    );
    let s = Server::start(&e.sq);

    e.c.apply(&database(
        "bad",
        "shop",
        "{engine: oracle, storageGB: 5, size: huge}",
    ));
    let st = wait_phase(&e.c, &s, "shop", "bad", "Failed");
    let msg = st["message"].as_str().unwrap_or_default();
    for needle in [
        "invalid Database spec",
        "spec.engine \"oracle\"",
        "spec.storageGB 5",
        "spec.size \"huge\"",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    assert!(executions(&s, "aws.rds_create_db_instance").is_empty());
    assert!(executions(&s, "aws.rds_describe_db_instances").is_empty());
    assert!(moto_instances(&e.moto).is_empty());

    e.c.apply(&database("typo", "shop", "{engine: postgress}"));
    let st = wait_phase(&e.c, &s, "shop", "typo", "Failed");
    let msg = st["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("creating the RDS instance failed:")
            && msg.contains("InvalidParameterValue")
            && msg.contains("postgress"),
        "{msg:?}"
    );
    assert!(moto_instances(&e.moto).is_empty());

    e.bao.stop();
    e.c.apply(&database("ledger", "billing", "{engine: mysql}"));
    let st = wait_phase(&e.c, &s, "billing", "ledger", "Failed");
    let msg = st["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("reading the existing credentials from Vault failed:")
            && msg.contains("cannot reach Vault"),
        "{msg:?}"
    );
    let failed = wait_execution_for(&s, "dbaas.provision", Some("ledger"), "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("Vault"),
        "{failed:#}"
    );
    assert!(
        moto_instances(&e.moto).is_empty(),
        "no instance before Vault works"
    );

    e.bao.restart();
    let (ok, out, err) = e.c.kubectl(&[
        "annotate",
        "database",
        "ledger",
        "-n",
        "billing",
        "dbaas.squall.dev/retry=1",
    ]);
    assert!(ok, "annotate: {out}{err}");
    let st = wait_phase(&e.c, &s, "billing", "ledger", "Ready");
    assert_eq!(st["retryToken"], "1", "{st}");
    assert_eq!(moto_instances(&e.moto), vec!["billing-ledger".to_string()]);
    let password = vault_secret(&e.bao, "dbaas/billing/ledger")["password"]
        .as_str()
        .expect("password")
        .to_string();
    assert_no_leak(&e, &s, &password);
}

/// kill -9 while the workflow is between `create` and `wait`: after the restart the same
/// workflow finishes, the instance exists exactly once and `create` ran once.
#[test]
fn a_crash_between_create_and_wait_finishes_with_one_instance() {
    // The wait step pauses before its first check, which gives the test its window.
    let e = setup("dbcrash", "wait_delay: 8\n");
    let s = Server::start(&e.sq);
    let port = s.port();
    e.c.apply(&database("crash", "shop", "{engine: postgres}"));
    wait_execution(&s, "aws.rds_wait_db_instance", "running");
    let create = executions(&s, "aws.rds_create_db_instance");
    assert_eq!(create.len(), 1, "{create:#?}");
    assert_eq!(create[0]["status"], "succeeded", "{:#}", create[0]);
    let workflow = executions(&s, "dbaas.provision")[0]["id"].clone();
    s.kill9();
    assert_eq!(moto_instances(&e.moto), vec!["shop-crash".to_string()]);

    let s = Server::start_on(&e.sq, port);
    let st = wait_phase(&e.c, &s, "shop", "crash", "Ready");
    assert_eq!(st["instance"], "shop-crash", "{st}");
    assert_eq!(moto_instances(&e.moto), vec!["shop-crash".to_string()]);
    assert_eq!(executions(&s, "aws.rds_create_db_instance").len(), 1);
    // Ready is written by the last task; the workflow's record ends just after.
    wait_execution(&s, "dbaas.provision", "succeeded");
    let runs = executions(&s, "dbaas.provision");
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["id"], workflow);
    assert_eq!(runs[0]["status"], "succeeded", "{:#}", runs[0]);
    let password = vault_secret(&e.bao, "dbaas/shop/crash")["password"]
        .as_str()
        .expect("password")
        .to_string();
    assert_no_leak(&e, &s, &password);
}
