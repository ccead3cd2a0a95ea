//! The `kubernetes.watch` sensor against a real kube-apiserver (issue 4, item 3): a CRD
//! registered after Squall started, exactly the missed changes after a restart, an API
//! server restart under a running watch, and bad input.

use crate::harness::Squall;
use crate::kube::Cluster;
use crate::server::{wait_lines, Server};
use serde_json::Value;

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: databases.dbaas.squall.dev
spec:
  group: dbaas.squall.dev
  scope: Namespaced
  names: {plural: databases, singular: database, kind: Database, listKind: DatabaseList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;

const SENSOR: &str = "name: databases\ntype: kubernetes.watch\nconfig:\n  group: dbaas.squall.dev\n  version: v1\n  kind: Database\n";

/// A content root whose `default` cluster is `c`, with the Database sensor and a rule
/// appending `<event> <name>` to `events.log` for every trigger.
fn content(c: &Cluster) -> Squall {
    let sq = Squall::core_only();
    sq.write(
        "squall.yaml",
        &format!("clusters:\n{}", c.settings_entry("default")),
    );
    sq.write("sensors/databases.yaml", SENSOR);
    let log = sq.path("events.log");
    sq.write(
        "rules/on_database.yaml",
        &format!(
            "name: on_database\ntrigger: kubernetes.resource\naction:\n  ref: core.local\n  parameters:\n    cmd: \"echo '{{{{ trigger.event }}}} {{{{ trigger.name }}}}' >> {}\"\n",
            log.display()
        ),
    );
    sq
}

fn install_crd(c: &Cluster) {
    c.apply(CRD);
    c.wait_crd("databases.dbaas.squall.dev");
}

fn database(name: &str, size: &str) -> String {
    format!("apiVersion: dbaas.squall.dev/v1\nkind: Database\nmetadata: {{name: {name}, namespace: default}}\nspec: {{engine: postgres, size: {size}}}\n")
}

#[track_caller]
fn kubectl_ok(c: &Cluster, args: &[&str]) {
    let (ok, out, err) = c.kubectl(args);
    assert!(ok, "kubectl {args:?} failed: {out}{err}");
}

/// The sensor's row in `GET /api/v1/sensors`.
fn sensor_row(list: &Value, name: &str) -> Option<Value> {
    list.as_array()?.iter().find(|s| s["name"] == name).cloned()
}

/// `(event, name)` of every `kubernetes.resource` trigger instance.
fn triggers(s: &Server) -> Vec<(String, String)> {
    let list = s
        .request(
            "GET",
            "/api/v1/trigger-instances?type=kubernetes.resource&limit=1000",
            None,
            None,
        )
        .json();
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let p = &t["payload"];
                    (
                        p["event"].as_str().unwrap_or("").to_string(),
                        p["name"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Wait until a trigger `event name` exists (anti-hang limit 60 s).
#[track_caller]
fn wait_trigger(s: &Server, event: &str, name: &str) {
    s.wait_json(
        "/api/v1/trigger-instances?type=kubernetes.resource&limit=1000",
        None,
        60,
        |v| {
            v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|t| t["payload"]["event"] == event && t["payload"]["name"] == name)
            })
        },
    );
}

fn count(all: &[(String, String)], event: &str, name: &str) -> usize {
    all.iter().filter(|(e, n)| e == event && n == name).count()
}

#[test]
fn crd_created_after_start_emits_added_modified_deleted() {
    let c = Cluster::start("watch-crd");
    let sq = content(&c);
    let s = Server::start(&sq);
    // The kind is not served yet: the sensor is in error, naming it.
    let list = s.wait_json("/api/v1/sensors", None, 60, |v| {
        sensor_row(v, "site.databases").is_some_and(|r| r["state"] == "error")
    });
    let row = sensor_row(&list, "site.databases").unwrap_or_default();
    assert!(
        row["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("Database"),
        "{row:#}"
    );

    install_crd(&c);
    let log = sq.path("events.log");
    c.apply(&database("alpha", "small"));
    wait_lines(&log, "ADDED alpha", 1, 90);
    kubectl_ok(
        &c,
        &[
            "patch",
            "database",
            "alpha",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":"large"}}"#,
        ],
    );
    wait_lines(&log, "MODIFIED alpha", 1, 60);
    kubectl_ok(&c, &["delete", "database", "alpha", "--wait=true"]);
    wait_lines(&log, "DELETED alpha", 1, 60);

    let list = s
        .request(
            "GET",
            "/api/v1/trigger-instances?type=kubernetes.resource&limit=1000",
            None,
            None,
        )
        .json();
    let modified = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["payload"]["event"] == "MODIFIED"))
        .cloned()
        .unwrap_or_default();
    let p = &modified["payload"];
    assert_eq!(p["kind"], "Database", "{p:#}");
    assert_eq!(p["cluster"], "default", "{p:#}");
    assert_eq!(p["namespace"], "default", "{p:#}");
    assert_eq!(p["object"]["spec"]["size"], "large", "{p:#}");
    assert_eq!(p["object"]["metadata"]["name"], "alpha", "{p:#}");
    let all = triggers(&s);
    assert_eq!(
        (
            count(&all, "ADDED", "alpha"),
            count(&all, "DELETED", "alpha")
        ),
        (1, 1),
        "{all:?}"
    );
    let row = sensor_row(
        &s.request("GET", "/api/v1/sensors", None, None).json(),
        "site.databases",
    )
    .unwrap_or_default();
    assert_eq!(row["state"], "running", "{row:#}");
    assert_eq!(s.terminate(), Some(0));
}

#[test]
fn restart_emits_exactly_the_missed_changes() {
    let c = Cluster::start("watch-restart");
    install_crd(&c);
    for name in ["alpha", "bravo", "charlie"] {
        c.apply(&database(name, "small"));
    }
    let sq = content(&c);
    let s = Server::start(&sq);
    // First start, no checkpoint: the existing objects are ADDED (informer semantics).
    for name in ["alpha", "bravo", "charlie"] {
        wait_trigger(&s, "ADDED", name);
    }
    kubectl_ok(
        &c,
        &[
            "patch",
            "database",
            "alpha",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":"medium"}}"#,
        ],
    );
    wait_trigger(&s, "MODIFIED", "alpha");
    assert_eq!(s.terminate(), Some(0));

    // While Squall is down: create one, modify one (twice), delete one.
    c.apply(&database("delta", "small"));
    kubectl_ok(
        &c,
        &[
            "patch",
            "database",
            "bravo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":"large"}}"#,
        ],
    );
    kubectl_ok(
        &c,
        &[
            "patch",
            "database",
            "bravo",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":"huge"}}"#,
        ],
    );
    kubectl_ok(&c, &["delete", "database", "charlie", "--wait=true"]);

    let s = Server::start(&sq);
    wait_trigger(&s, "ADDED", "delta");
    wait_trigger(&s, "MODIFIED", "bravo");
    wait_trigger(&s, "DELETED", "charlie");
    // A change after the catch-up: once it is seen, the catch-up list is fully processed.
    c.apply(&database("echo", "small"));
    wait_trigger(&s, "ADDED", "echo");
    let all = triggers(&s);
    let expected = [
        ("ADDED", "alpha"),
        ("ADDED", "bravo"),
        ("ADDED", "charlie"),
        ("MODIFIED", "alpha"),
        ("ADDED", "delta"),
        ("MODIFIED", "bravo"),
        ("DELETED", "charlie"),
        ("ADDED", "echo"),
    ];
    for (event, name) in expected {
        assert_eq!(count(&all, event, name), 1, "{event} {name} once: {all:?}");
    }
    assert_eq!(all.len(), expected.len(), "nothing else: {all:?}");
    let list = s
        .request(
            "GET",
            "/api/v1/trigger-instances?type=kubernetes.resource&limit=1000",
            None,
            None,
        )
        .json();
    let bravo = list
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["payload"]["event"] == "MODIFIED" && t["payload"]["name"] == "bravo")
        })
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        bravo["payload"]["object"]["spec"]["size"], "huge",
        "the latest state: {bravo:#}"
    );
    let charlie = list
        .as_array()
        .and_then(|a| a.iter().find(|t| t["payload"]["event"] == "DELETED"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        charlie["payload"]["object"]["spec"]["size"], "small",
        "last known object: {charlie:#}"
    );
    assert_eq!(s.terminate(), Some(0));
}

#[test]
fn watch_recovers_from_an_api_server_restart() {
    let c = Cluster::start("watch-apiserver");
    install_crd(&c);
    let sq = content(&c);
    let s = Server::start(&sq);
    c.apply(&database("alpha", "small"));
    wait_trigger(&s, "ADDED", "alpha");
    c.restart_apiserver(3);
    c.apply(&database("bravo", "small"));
    wait_trigger(&s, "ADDED", "bravo");
    kubectl_ok(
        &c,
        &[
            "patch",
            "database",
            "alpha",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":"large"}}"#,
        ],
    );
    wait_trigger(&s, "MODIFIED", "alpha");
    let all = triggers(&s);
    assert_eq!(
        count(&all, "ADDED", "alpha"),
        1,
        "no duplicate after reconnecting: {all:?}"
    );
    assert_eq!(all.len(), 3, "{all:?}");
    let row = s.wait_json("/api/v1/sensors", None, 60, |v| {
        sensor_row(v, "site.databases").is_some_and(|r| r["state"] == "running")
    });
    // The outage was visible: the broken watch failed the run, which was restarted.
    let row = sensor_row(&row, "site.databases").unwrap_or_default();
    assert!(row["errors"].as_u64().unwrap_or(0) >= 1, "{row:#}");
    assert!(row["restarts"].as_u64().unwrap_or(0) >= 1, "{row:#}");
    assert!(
        row["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{row:#}"
    );
    assert_eq!(s.terminate(), Some(0));
}

#[test]
fn unknown_kind_shows_in_sensor_state_and_bad_config_fails_validate() {
    let c = Cluster::start("watch-bad");
    let sq = Squall::core_only();
    sq.write(
        "squall.yaml",
        &format!("clusters:\n{}", c.settings_entry("default")),
    );
    sq.write(
        "sensors/ghosts.yaml",
        "name: ghosts\ntype: kubernetes.watch\nconfig:\n  version: v1\n  kind: Ghost\n",
    );
    sq.run(&["validate"]).ok();
    let s = Server::start(&sq);
    let list = s.wait_json("/api/v1/sensors", None, 60, |v| {
        sensor_row(v, "site.ghosts").is_some_and(|r| r["state"] == "error")
    });
    let row = sensor_row(&list, "site.ghosts").unwrap_or_default();
    let msg = row["last_error"].as_str().unwrap_or("");
    assert!(
        msg.contains("Ghost") && msg.contains("not served"),
        "{row:#}"
    );
    assert_eq!(s.terminate(), Some(0));

    sq.write(
        "sensors/bad.yaml",
        "name: bad\ntype: kubernetes.watch\nconfig:\n  version: v1\n  events: [ADDED, UPSERTED]\n  namespace: [a]\n",
    );
    let out = sq.run(&["validate"]);
    out.code(1);
    let text = format!("{}{}", out.stdout, out.stderr);
    for (line, field) in [
        (4, "config.kind"),
        (5, "config.events.1"),
        (6, "config.namespace"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("sensors/bad.yaml:{line}:")) && l.contains(field)),
            "{field} at line {line}:\n{text}"
        );
    }
    assert!(text.contains("UPSERTED"), "{text}");
}

/// The whole loop of issue 4's first test: a custom resource is applied, the sensor emits,
/// a rule fires, a workflow runs and writes back with `patch_status`, and the resource's
/// status shows it.
#[test]
fn a_custom_resource_gets_its_status_written_back_by_a_workflow() {
    let c = Cluster::start("wb");
    install_crd(&c);
    // Only core and kubernetes: the shipped dbaas pack watches Database resources too.
    let sq = Squall::core_only();
    crate::harness::copy_dir(
        &crate::harness::repo().join("packs/kubernetes"),
        &sq.path("packs/kubernetes"),
    );
    sq.write(
        "squall.yaml",
        &format!("clusters:\n{}", c.settings_entry("default")),
    );
    sq.write("sensors/databases.yaml", SENSOR);
    sq.write(
        "workflows/acknowledge.yaml",
        "name: acknowledge\nparameters:\n  name: {type: string, required: true}\n  namespace: {type: string, required: true}\n  engine: {type: string, required: true}\nchain:\n  - name: describe\n    ref: core.echo\n    parameters: {message: \"{{ engine }} database {{ name }}\"}\n    publish: {summary: \"{{ result.stdout }}\"}\n    on-success: write_status\n  - name: write_status\n    ref: kubernetes.patch_status\n    parameters:\n      api_version: dbaas.squall.dev/v1\n      kind: Database\n      name: \"{{ name }}\"\n      namespace: \"{{ namespace }}\"\n      patch: {status: {phase: Seen, message: \"{{ summary }}\"}}\n",
    );
    sq.write(
        "rules/acknowledge_databases.yaml",
        "name: acknowledge_databases\ntrigger: kubernetes.resource\nwhen: 'trigger.event == \"ADDED\" && trigger.kind == \"Database\"'\naction:\n  ref: site.acknowledge\n  parameters:\n    name: \"{{ trigger.name }}\"\n    namespace: \"{{ trigger.namespace }}\"\n    engine: \"{{ trigger.object.spec.engine }}\"\n",
    );
    sq.run(&["validate"]).ok();
    let s = Server::start(&sq);
    c.apply(&database("orders", "small"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, out, _) = c.kubectl(&[
            "get",
            "database",
            "orders",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.phase} {.status.message}",
        ]);
        if out.trim() == "Seen postgres database orders" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never written back; last: {out:?}\n{}",
            s.log_text()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The status is written by the last task; the workflow's own record ends just after.
    let execs = s.wait_json(
        "/api/v1/executions?action=site.acknowledge",
        None,
        30,
        |v| {
            v.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["status"] != "running")
        },
    );
    let e = &execs.as_array().expect("list")[0];
    assert_eq!(e["status"], "succeeded", "{e:#}");
    assert_eq!(e["rule"], "site.acknowledge_databases", "{e:#}");
}
