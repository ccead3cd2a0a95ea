//! The `aws.rds.poll` sensor through `squall serve` against a real moto server (issue 5,
//! item 2): first sight, no re-emit after a restart, deletion, and a poll error shown in
//! the sensor's state.

use crate::aws_rds::content;
use crate::harness::Squall;
use crate::server::Server;
use crate::servers::Moto;
use serde_json::Value;

const TRIGGERS: &str = "/api/v1/trigger-instances?type=aws.rds.instance_status_changed&limit=1000";
const PASSWORD: &str = "Pw-sensor-5c1d7a9e";

/// The moto content root plus the poll sensor (every second) and a rule that echoes each
/// change.
fn sensor_content(moto: &Moto) -> Squall {
    let sq = content(&moto.endpoint);
    sq.write(
        "sensors/rds.yaml",
        "name: rds\ntype: aws.rds.poll\nconfig:\n  every: 1s\n  filters: {engine: [postgres]}\n",
    );
    sq.write(
        "rules/on_rds.yaml",
        "name: on_rds\ntrigger: aws.rds.instance_status_changed\naction:\n  ref: core.echo\n  parameters:\n    message: \"{{ trigger.identifier }}: {{ trigger.old_status }} -> {{ trigger.new_status }}\"\n",
    );
    sq
}

/// `(identifier, old_status, new_status)` of every trigger instance.
fn changes(s: &Server) -> Vec<(String, Value, String)> {
    let list = s.request("GET", TRIGGERS, None, None).json();
    let mut out: Vec<(String, Value, String)> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let p = &t["payload"];
                    (
                        p["identifier"].as_str().unwrap_or("").to_string(),
                        p["old_status"].clone(),
                        p["new_status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    out
}

/// Wait until a trigger for `id` reaching `new` exists; its payload.
#[track_caller]
fn wait_change(s: &Server, id: &str, new: &str) -> Value {
    let list = s.wait_json(TRIGGERS, None, 60, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|t| t["payload"]["identifier"] == id && t["payload"]["new_status"] == new)
        })
    });
    list.as_array()
        .and_then(|a| {
            a.iter()
                .find(|t| t["payload"]["identifier"] == id && t["payload"]["new_status"] == new)
        })
        .map(|t| t["payload"].clone())
        .unwrap_or_default()
}

#[track_caller]
fn create(sq: &Squall, id: &str, engine: &str) {
    let out = sq.run(&[
        "run",
        "aws.rds_create_db_instance",
        &format!("identifier={id}"),
        &format!("engine={engine}"),
        &format!("master_password={PASSWORD}"),
    ]);
    out.ok();
}

#[test]
fn poll_emits_first_sight_and_deletion_and_nothing_twice_across_a_restart() {
    let moto = Moto::start();
    let sq = sensor_content(&moto);
    create(&sq, "alpha", "postgres");
    create(&sq, "other", "mysql"); // outside the filter
    let s = Server::start(&sq);
    let alpha = wait_change(&s, "alpha", "available");
    assert_eq!(alpha["old_status"], Value::Null, "{alpha:#}");
    assert_eq!(alpha["account"], "default");
    assert_eq!(alpha["region"], "eu-west-1");
    assert_eq!(alpha["instance"]["identifier"], "alpha");
    assert_eq!(alpha["instance"]["engine"], "postgres");
    // The rule ran for it.
    s.wait_json("/api/v1/executions?action=core.echo", None, 60, |v| {
        v.as_array().is_some_and(|a| {
            a.iter().any(|e| {
                e["result"].to_string().contains("alpha: ")
                    && e["result"].to_string().contains("-> available")
            })
        })
    });
    assert_eq!(s.terminate(), Some(0));

    // While Squall is down, a new instance appears.
    create(&sq, "bravo", "postgres");
    let s = Server::start(&sq);
    let bravo = wait_change(&s, "bravo", "available");
    assert_eq!(bravo["old_status"], Value::Null);
    // The poll that saw bravo saw alpha unchanged: no second trigger for it.
    let url = format!("http://{}", s.addr);
    let out = sq.run(&[
        "--server",
        &url,
        "run",
        "aws.rds_delete_db_instance",
        "identifier=alpha",
        "skip_final_snapshot=true",
    ]);
    out.ok();
    let gone = wait_change(&s, "alpha", "deleted");
    assert_eq!(gone["old_status"], "available", "{gone:#}");
    assert_eq!(gone["instance"], Value::Null);
    let all = changes(&s);
    let expected = [
        ("alpha", Value::Null, "available"),
        ("alpha", Value::from("available"), "deleted"),
        ("bravo", Value::Null, "available"),
    ];
    assert_eq!(
        all,
        expected
            .iter()
            .map(|(i, o, n)| (i.to_string(), o.clone(), n.to_string()))
            .collect::<Vec<_>>(),
        "exactly these changes"
    );
    assert_eq!(s.terminate(), Some(0));
    for (path, bytes) in sq.data_files() {
        assert!(
            !crate::harness::contains(&bytes, PASSWORD.as_bytes()),
            "{} holds the password",
            path.display()
        );
    }
}

#[test]
fn a_poll_error_shows_in_the_sensor_state() {
    let moto = Moto::start();
    let sq = content(&moto.endpoint);
    sq.write(
        "sensors/rds.yaml",
        "name: rds\ntype: aws.rds.poll\nconfig:\n  account: prod\n  every: 1s\n",
    );
    let s = Server::start(&sq);
    let list = s.wait_json("/api/v1/sensors", None, 60, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|r| r["name"] == "site.rds" && r["state"] == "error")
        })
    });
    let row = list
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == "site.rds"))
        .cloned()
        .unwrap_or_default();
    let msg = row["last_error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("polling RDS") && msg.contains("AWS account `prod` is not configured"),
        "{row:#}"
    );
    assert_eq!(s.terminate(), Some(0));

    // A bad config is caught by validate, naming the field.
    sq.write(
        "sensors/rds.yaml",
        "name: rds\ntype: aws.rds.poll\nconfig:\n  every: soon\n",
    );
    let out = sq.run(&["validate"]);
    out.code(1);
    assert!(
        out.stdout.contains("config.every") || out.stderr.contains("config.every"),
        "{}",
        out.describe()
    );
}
