//! The kubernetes pack actions, `kubernetes.run_job` and the `cassandra.nodetool_repair`
//! workflow, run with the real `squall` binary against real kube-apiservers (issue 4).

use crate::harness::Squall;
use crate::kube::Cluster;
use crate::server::Server;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A content root with the shipped packs and `clusters:` naming `c` as `default`, and as
/// `limited` with its read-only user.
fn squall_for(c: &Cluster) -> Squall {
    let sq = Squall::new();
    let settings = format!(
        "clusters:\n{}  limited: {{kubeconfig: {}, context: {}-limited}}\n",
        c.settings_entry("default"),
        c.kubeconfig.display(),
        c.name
    );
    sq.write("squall.yaml", &settings);
    sq
}

/// `squall run ARGS -o json`: the execution record.
#[track_caller]
fn run(sq: &Squall, args: &[&str]) -> Value {
    sq.exec_json(args).1
}

/// `kubectl ARGS` output; fails the test when kubectl fails.
#[track_caller]
fn kubectl(c: &Cluster, args: &[&str]) -> String {
    let (ok, out, err) = c.kubectl(args);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// Poll `kubectl ARGS` until `done` holds for its output (at most 60 s).
#[track_caller]
fn kubectl_until(c: &Cluster, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, _) = c.kubectl(args);
        if done(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?} never got there; last: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: databases.dbaas.example.com}
spec:
  group: dbaas.example.com
  scope: Namespaced
  names: {plural: databases, singular: database, kind: Database}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

#[test]
fn apply_get_list_patch_status_wait_and_delete_any_kind() {
    let c = Cluster::start("ka-objects");
    c.apply(CRD);
    kubectl_until(
        &c,
        &[
            "get",
            "crd",
            "databases.dbaas.example.com",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ],
        |o| o == "True",
    );
    let sq = squall_for(&c);
    let manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one, labels: {team: noc}}\ndata: {k: v1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: two, labels: {team: other}}\n---\napiVersion: dbaas.example.com/v1\nkind: Database\nmetadata: {name: orders}\nspec: {engine: postgres, size_gb: 20}\n";
    let e = run(&sq, &["kubernetes.apply", &format!("manifest={manifest}")]);
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["result"]["count"], 3, "{e}");
    assert_eq!(e["result"]["objects"][2]["kind"], "Database", "{e}");
    // Server-side apply with field manager `squall`.
    let managers = kubectl(
        &c,
        &[
            "get",
            "configmap",
            "one",
            "--show-managed-fields",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ],
    );
    assert!(managers.contains("squall"), "{managers}");

    let e = run(
        &sq,
        &[
            "kubernetes.get",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["result"]["spec"]["engine"], "postgres", "{e}");

    let e = run(
        &sq,
        &[
            "kubernetes.list",
            "api_version=v1",
            "kind=ConfigMap",
            "label_selector=team=noc",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    let names: Vec<&str> = e["result"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["one"], "{e}");

    let e = run(
        &sq,
        &[
            "kubernetes.patch",
            "api_version=v1",
            "kind=ConfigMap",
            "name=one",
            r#"patch={"data": {"k": "v2", "extra": "x"}}"#,
        ],
    );
    assert_eq!(e["result"]["data"], json!({"k": "v2", "extra": "x"}), "{e}");
    let e = run(
        &sq,
        &[
            "kubernetes.patch",
            "api_version=v1",
            "kind=ConfigMap",
            "name=one",
            "patch_type=json",
            r#"patch=[{"op": "remove", "path": "/data/extra"}]"#,
        ],
    );
    assert_eq!(e["result"]["data"], json!({"k": "v2"}), "{e}");

    let e = run(
        &sq,
        &[
            "kubernetes.patch_status",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
            r#"patch={"status": {"phase": "Available", "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned"}]}}"#,
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    let phase = kubectl(
        &c,
        &[
            "get",
            "database",
            "orders",
            "-o",
            "jsonpath={.status.phase}",
        ],
    );
    assert_eq!(phase, "Available");

    let e = run(
        &sq,
        &[
            "kubernetes.wait",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
            r#"condition={"type": "Ready"}"#,
            "timeout=30",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    let e = run(
        &sq,
        &[
            "kubernetes.wait",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
            "condition_expr=object.status.phase == \"Available\" && object.spec.size_gb >= 20",
            "timeout=30",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    // A predicate that never holds ends with the timeout, saying what it saw.
    let e = run(
        &sq,
        &[
            "kubernetes.wait",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
            "condition_expr=object.status.phase == \"Deleted\"",
            "timeout=2",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert!(
        e["error"].as_str().unwrap_or("").contains("timed out"),
        "{e}"
    );

    let e = run(
        &sq,
        &[
            "kubernetes.delete",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
            "wait=true",
            "propagation_policy=Foreground",
            "timeout=60",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(e["result"]["gone"], true, "{e}");
    let (ok, _, err) = c.kubectl(&["get", "database", "orders"]);
    assert!(!ok && err.contains("NotFound"), "{err}");
    // Deleting it again: the API server's 404.
    let e = run(
        &sq,
        &[
            "kubernetes.delete",
            "api_version=dbaas.example.com/v1",
            "kind=Database",
            "name=orders",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert!(
        e["error"].as_str().unwrap_or("").contains("404 NotFound"),
        "{e}"
    );
}

#[test]
fn run_job_succeeding_and_failing() {
    let c = Cluster::start("ka-jobs");
    let sq = squall_for(&c);
    let e = run(
        &sq,
        &[
            "kubernetes.run_job",
            "image=busybox",
            "command=echo hello",
            "labels={\"suite\": \"ka\"}",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    let r = &e["result"];
    assert_eq!(r["status"], "Complete", "{e}");
    let pod = r["pods"][0].as_str().expect("a pod").to_string();
    // kwok serves the same fake log for every pod.
    assert!(
        r["logs"][&pod]
            .as_str()
            .unwrap_or("")
            .contains("kwok fake container log line 1"),
        "{e}"
    );
    let out = sq.run(&["execution", "tail", e["id"].as_str().expect("id")]);
    assert!(
        out.stdout.contains("kwok fake container log line 1"),
        "{}",
        out.describe()
    );
    // Deleted afterwards (pods with it).
    kubectl_until(
        &c,
        &["get", "jobs,pods", "-l", "suite=ka", "-o", "name"],
        |o| o.trim().is_empty(),
    );

    let e = run(
        &sq,
        &[
            "kubernetes.run_job",
            "image=busybox",
            "command=false",
            r#"annotations={"squall.test/exit-code": "3"}"#,
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(e["result"]["status"], "Failed", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or("")
            .contains("BackoffLimitExceeded"),
        "{e}"
    );

    // cassandra.repair_host builds the command from the host; keep=true leaves the Job.
    let e = run(
        &sq,
        &["cassandra.repair_host", "host=cass-0.db", "keep=true"],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    let job = e["result"]["job"].as_str().expect("job").to_string();
    let cmd = kubectl(
        &c,
        &[
            "get",
            "job",
            &job,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].command}",
        ],
    );
    assert!(cmd.contains("nodetool repair -pr -h cass-0.db"), "{cmd}");
    let image = kubectl(
        &c,
        &[
            "get",
            "job",
            &job,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    assert_eq!(image, "cassandra:4.1");
}

#[test]
fn canceling_run_job_deletes_the_job_and_its_pods() {
    let c = Cluster::start("ka-cancel");
    let sq = squall_for(&c);
    let s = Server::start(&sq);
    let body = json!({"action": "kubernetes.run_job", "parameters": {
        "image": "busybox", "command": "sleep 600", "labels": {"suite": "cancel"},
        "annotations": {"squall.test/duration": "600s"}}})
    .to_string();
    let r = s.request("POST", "/api/v1/executions", Some(&body), None);
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    kubectl_until(
        &c,
        &[
            "get",
            "pods",
            "-l",
            "suite=cancel",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
        |o| o == "Running",
    );
    let r = s.request("DELETE", &format!("/api/v1/executions/{id}"), None, None);
    assert!(r.status < 300, "{} {}", r.status, r.body);
    let e = s.wait_json(&format!("/api/v1/executions/{id}"), None, 60, |e| {
        e["status"] != "running" && e["status"] != "requested" && e["status"] != "canceling"
    });
    assert_eq!(e["status"], "canceled", "{e}");
    kubectl_until(
        &c,
        &["get", "jobs", "-l", "suite=cancel", "-o", "name"],
        |o| o.trim().is_empty(),
    );
    kubectl_until(
        &c,
        &["get", "pods", "-l", "suite=cancel", "-o", "name"],
        |o| o.trim().is_empty(),
    );
}

/// Per-host statuses of a nodetool_repair record, in host order.
fn host_statuses(e: &Value) -> Vec<(String, String)> {
    let hosts = if e["result"]["hosts"].is_array() {
        &e["result"]["hosts"]
    } else {
        &e["result"]["report"]["hosts"]
    };
    hosts
        .as_array()
        .unwrap_or_else(|| panic!("no per-host report: {e}"))
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap_or("").to_string(),
                h["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn nodetool_repair_sequential_and_parallel_with_a_failing_host() {
    let c = Cluster::start("ka-repair");
    let sq = squall_for(&c);
    let hosts = r#"hosts=["cass-0","cass-1","cass-2"]"#;
    let fail_1 = r#"pod_annotations={"cass-1": {"squall.test/exit-code": "1"}}"#;
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };

    // All succeed, one at a time.
    let e = run(&sq, &["cassandra.nodetool_repair", hosts]);
    assert_eq!(e["status"], "succeeded", "{e}");
    assert_eq!(
        host_statuses(&e),
        pairs(&[
            ("cass-0", "succeeded"),
            ("cass-1", "succeeded"),
            ("cass-2", "succeeded")
        ])
    );

    // Sequential, stop_on_failure: cass-2 is never started.
    let e = run(
        &sq,
        &[
            "cassandra.nodetool_repair",
            hosts,
            fail_1,
            "stop_on_failure=true",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert!(e["error"].as_str().unwrap_or("").contains("cass-1"), "{e}");
    assert_eq!(
        host_statuses(&e),
        pairs(&[
            ("cass-0", "succeeded"),
            ("cass-1", "failed"),
            ("cass-2", "skipped")
        ])
    );
    let repairs: Vec<&Value> = e["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["task"] == "repair")
        .collect();
    assert_eq!(repairs.len(), 2, "{e}");

    // Sequential, carry on: every host is tried.
    let e = run(
        &sq,
        &[
            "cassandra.nodetool_repair",
            hosts,
            fail_1,
            "stop_on_failure=false",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(
        host_statuses(&e),
        pairs(&[
            ("cass-0", "succeeded"),
            ("cass-1", "failed"),
            ("cass-2", "succeeded")
        ])
    );

    // Parallel: all three in one wave.
    let e = run(
        &sq,
        &[
            "cassandra.nodetool_repair",
            hosts,
            fail_1,
            "parallelism=3",
            "stop_on_failure=false",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert_eq!(
        host_statuses(&e),
        pairs(&[
            ("cass-0", "succeeded"),
            ("cass-1", "failed"),
            ("cass-2", "succeeded")
        ])
    );
    // Parallel waves of 2 with stop_on_failure: the failing first wave ends it.
    let e = run(
        &sq,
        &[
            "cassandra.nodetool_repair",
            hosts,
            fail_1,
            "parallelism=2",
            "stop_on_failure=true",
        ],
    );
    assert_eq!(
        host_statuses(&e),
        pairs(&[
            ("cass-0", "succeeded"),
            ("cass-1", "failed"),
            ("cass-2", "skipped")
        ])
    );
    // No Job is left behind.
    kubectl_until(&c, &["get", "jobs", "-o", "name"], |o| o.trim().is_empty());
}

#[test]
fn bad_input_gives_clear_errors() {
    let c = Cluster::start("ka-bad");
    let sq = squall_for(&c);
    let e = run(
        &sq,
        &[
            "kubernetes.get",
            "api_version=dbaas.example.com/v1",
            "kind=Nosuch",
            "name=x",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    let err = e["error"].as_str().unwrap_or("");
    assert!(
        err.contains("Nosuch") && err.contains("not served"),
        "{err}"
    );

    apply_fails_with(
        &sq,
        "manifest=apiVersion: v1\nkind: [ConfigMap\n",
        "not valid YAML",
    );
    apply_fails_with(
        &sq,
        "manifest=apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
        "metadata.name",
    );
    // The API server's own validation (422).
    apply_fails_with(
        &sq,
        "manifest=apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Not_Valid}\n",
        "422",
    );

    // The read-only user may read but not write.
    let e = run(
        &sq,
        &[
            "kubernetes.list",
            "cluster=limited",
            "api_version=v1",
            "kind=ConfigMap",
            "namespace=default",
        ],
    );
    assert_eq!(e["status"], "succeeded", "{e}");
    let e = run(
        &sq,
        &["kubernetes.run_job", "cluster=limited", "image=busybox"],
    );
    assert_eq!(e["status"], "failed", "{e}");
    let err = e["error"].as_str().unwrap_or("");
    assert!(
        err.contains("forbidden") && err.contains("limited") && err.contains("403"),
        "{err}"
    );
    let e = run(
        &sq,
        &[
            "kubernetes.get",
            "cluster=nowhere",
            "api_version=v1",
            "kind=Pod",
            "name=x",
        ],
    );
    assert_eq!(e["status"], "failed", "{e}");
    assert!(
        e["error"]
            .as_str()
            .unwrap_or("")
            .contains("`nowhere` is not configured"),
        "{e}"
    );
}

/// `kubernetes.apply` with `manifest_arg` fails with an error containing `needle`.
#[track_caller]
fn apply_fails_with(sq: &Squall, manifest_arg: &str, needle: &str) {
    let e = run(sq, &["kubernetes.apply", manifest_arg]);
    assert_eq!(e["status"], "failed", "{e}");
    let err = e["error"].as_str().unwrap_or("");
    assert!(err.contains(needle), "expected {needle:?} in: {e}");
}
