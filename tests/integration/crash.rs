//! The durability promises (docs/executions.md, docs/operations.md), proved by killing a real `squall serve` with SIGKILL in
//! the middle of work and starting it again: completed tasks are not run again, an
//! interrupted non-idempotent action is `abandoned` and its workflow follows `on-failure`,
//! an interrupted idempotent one runs again, and accepted triggers are evaluated once.
//! Side effects are counted in a log file written by the actions themselves.

use crate::harness::Squall;
use crate::server::{count_lines, wait_lines, Server};
use serde_json::{json, Value};

#[path = "crash_procs.rs"]
mod procs;

const STEP: &str = r#"runner: shell
cmd: |
  echo "$SQUALL_PARAM_NAME start" >> "$SQUALL_PARAM_LOG"
  sleep "$SQUALL_PARAM_SLEEP"
  echo "$SQUALL_PARAM_NAME end" >> "$SQUALL_PARAM_LOG"
parameters:
  name: {type: string, required: true}
  log: {type: string, required: true}
  sleep: {type: number, default: 0}
"#;

fn flow(name: &str, middle: &str) -> String {
    format!(
        r#"name: {name}
parameters:
  log: {{type: string, required: true}}
chain:
  - name: a
    ref: crash.step
    parameters: {{name: a, log: "{{{{ log }}}}"}}
    on-success: b
  - name: b
    ref: crash.{middle}
    parameters: {{name: b, log: "{{{{ log }}}}", sleep: 3}}
    on-success: c
    on-failure: handle
  - name: c
    ref: crash.step
    parameters: {{name: c, log: "{{{{ log }}}}"}}
  - name: handle
    ref: crash.step
    parameters: {{name: handled, log: "{{{{ log }}}}"}}
"#
    )
}

fn content() -> Squall {
    let sq = Squall::core_only();
    sq.pack("crash", "");
    sq.action("crash", "step", &format!("name: step\n{STEP}"));
    sq.action(
        "crash",
        "istep",
        &format!("name: istep\nidempotent: true\n{STEP}"),
    );
    sq.write("packs/crash/workflows/flow.yaml", &flow("flow", "step"));
    sq.write("packs/crash/workflows/iflow.yaml", &flow("iflow", "istep"));
    sq.write(
        "rules/on_poke.yaml",
        "name: on_poke\ntrigger: crash.poke\naction:\n  ref: crash.istep\n  parameters:\n    name: \"{{ trigger.name }}\"\n    log: \"{{ trigger.log }}\"\n",
    );
    sq
}

/// Start `action`, wait until the log shows `marker`, kill -9, restart, and return the
/// final record of the execution.
fn kill_during(sq: &Squall, action: &str, params: Value, marker: &str) -> Value {
    let log = sq.path("effects.log");
    let server = Server::start(sq);
    let r = server.request(
        "POST",
        "/api/v1/executions",
        Some(&json!({"action": action, "parameters": params}).to_string()),
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    wait_lines(&log, marker, 1, 30);
    server.kill9();
    let server = Server::start(sq);
    let done = server.wait_json(&format!("/api/v1/executions/{id}"), None, 60, |e| {
        matches!(
            e["status"].as_str(),
            Some("succeeded" | "failed" | "abandoned" | "timeout" | "canceled")
        )
    });
    drop(server);
    done
}

fn children(e: &Value) -> Vec<(String, String)> {
    e["children"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["task"].as_str().unwrap_or("").to_string(),
                        c["status"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn interrupted_non_idempotent_task_is_abandoned_and_on_failure_runs() {
    let sq = content();
    let log = sq.path("effects.log");
    let e = kill_during(&sq, "crash.flow", json!({"log": log}), "b start");
    assert_eq!(
        count_lines(&log, "a start"),
        1,
        "completed task a must not run again"
    );
    assert_eq!(
        count_lines(&log, "b start"),
        1,
        "non-idempotent b must not run again"
    );
    assert_eq!(
        count_lines(&log, "c start"),
        0,
        "c must not run after b was abandoned"
    );
    assert_eq!(
        count_lines(&log, "handled start"),
        1,
        "on-failure must run once"
    );
    assert_eq!(
        children(&e),
        vec![
            ("a".into(), "succeeded".into()),
            ("b".into(), "abandoned".into()),
            ("handle".into(), "succeeded".into())
        ],
        "{e:#}"
    );
    assert_eq!(
        e["status"], "succeeded",
        "the last task (handle) succeeded: {e:#}"
    );
}

#[test]
fn interrupted_idempotent_task_runs_again_and_the_chain_completes() {
    let sq = content();
    let log = sq.path("effects.log");
    let e = kill_during(&sq, "crash.iflow", json!({"log": log}), "b start");
    assert_eq!(
        count_lines(&log, "a start"),
        1,
        "completed task a must not run again"
    );
    assert_eq!(
        count_lines(&log, "b start"),
        2,
        "idempotent b runs again after the crash"
    );
    assert_eq!(count_lines(&log, "c start"), 1);
    assert_eq!(count_lines(&log, "handled start"), 0);
    let tasks = children(&e);
    assert_eq!(
        tasks.first(),
        Some(&("a".to_string(), "succeeded".to_string())),
        "{e:#}"
    );
    // An idempotent task's start is not flushed before it runs: after the crash it is
    // either found interrupted (and recorded `abandoned`) or not found at all; either
    // way it runs again and succeeds.
    assert!(tasks.contains(&("b".into(), "succeeded".into())), "{e:#}");
    assert!(
        tasks
            .iter()
            .all(|(t, s)| t != "b" || s == "succeeded" || s == "abandoned"),
        "{e:#}"
    );
    assert_eq!(
        tasks.last(),
        Some(&("c".to_string(), "succeeded".to_string())),
        "{e:#}"
    );
    assert_eq!(e["status"], "succeeded", "{e:#}");
}

#[test]
fn interrupted_top_level_actions_follow_their_idempotence() {
    let sq = content();
    let log = sq.path("effects.log");
    let e = kill_during(
        &sq,
        "crash.step",
        json!({"name": "leaf", "log": log, "sleep": 3}),
        "leaf start",
    );
    assert_eq!(e["status"], "abandoned", "{e:#}");
    assert_eq!(count_lines(&log, "leaf start"), 1);
    let e = kill_during(
        &sq,
        "crash.istep",
        json!({"name": "ileaf", "log": log, "sleep": 2}),
        "ileaf start",
    );
    assert_eq!(e["status"], "succeeded", "{e:#}");
    // Run again (a second attempt when its start reached the disk, else re-queued from its
    // durable `scheduled` record): the log shows both starts.
    assert_eq!(count_lines(&log, "ileaf start"), 2);
}

#[test]
fn a_trigger_accepted_before_a_crash_is_evaluated_exactly_once() {
    let sq = content();
    let log = sq.path("effects.log");
    let server = Server::start(&sq);
    let r = server.request(
        "POST",
        "/api/v1/triggers/crash.poke",
        Some(&json!({"name": "poked", "log": log}).to_string()),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let trigger = r.json()["id"].as_str().unwrap().to_string();
    // Kill at once: the trigger is durable, whatever happened to its evaluation.
    server.kill9();
    let server = Server::start(&sq);
    let list = server.wait_json("/api/v1/trigger-instances?type=crash.poke", None, 30, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .any(|t| t["id"] == trigger.as_str() && t["status"] == "processed")
        })
    });
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list:#}");
    // The action is idempotent: killed in the window between recording it `running` and
    // its script starting, it runs again; so at least one start, and one execution.
    wait_lines(&log, "poked start", 1, 30);
    let execs = server.wait_json("/api/v1/executions?action=crash.istep", None, 30, |v| {
        v.as_array().is_some_and(|a| {
            a.iter()
                .all(|e| e["status"] != "running" && e["status"] != "scheduled")
        })
    });
    let for_trigger: Vec<&Value> = execs
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["trigger_instance"] == trigger.as_str())
        .collect();
    assert_eq!(
        for_trigger.len(),
        1,
        "exactly one execution for the trigger: {execs:#}"
    );
    assert!(count_lines(&log, "poked start") >= 1);
}

#[test]
fn a_nested_workflow_interrupted_inside_resumes_with_its_parent() {
    let sq = content();
    sq.write(
        "packs/crash/workflows/outer.yaml",
        "name: outer\nparameters:\n  log: {type: string, required: true}\nchain:\n  - name: inner\n    ref: crash.flow\n    parameters: {log: \"{{ log }}\"}\n    on-success: after\n  - name: after\n    ref: crash.step\n    parameters: {name: after, log: \"{{ log }}\"}\n",
    );
    let log = sq.path("effects.log");
    let e = kill_during(&sq, "crash.outer", json!({"log": log}), "b start");
    assert_eq!(e["status"], "succeeded", "{e:#}");
    assert_eq!(
        children(&e),
        vec![
            ("inner".into(), "succeeded".into()),
            ("after".into(), "succeeded".into())
        ],
        "{e:#}"
    );
    assert_eq!(count_lines(&log, "a start"), 1);
    assert_eq!(count_lines(&log, "b start"), 1);
    assert_eq!(count_lines(&log, "handled start"), 1);
    assert_eq!(count_lines(&log, "after start"), 1);
    // No record is left running: the inner workflow's own children were settled too.
    let server = Server::start(&sq);
    let running = server
        .request(
            "GET",
            "/api/v1/executions?status=running&all=true",
            None,
            None,
        )
        .json();
    assert_eq!(running.as_array().map(Vec::len), Some(0), "{running:#}");
}

/// A `with` task interrupted half-way goes on with the items not yet done: items that
/// finished before the crash do not run again, those in flight (idempotent) run again, and
/// the task's result lists every item in order.
#[test]
fn a_with_task_interrupted_half_way_goes_on_with_the_items_left() {
    let sq = content();
    sq.write(
        "packs/crash/workflows/fan.yaml",
        r#"name: fan
parameters:
  log: {type: string, required: true}
chain:
  - name: each
    ref: crash.istep
    with:
      items: [{n: i0, s: 0.2}, {n: i1, s: 0.2}, {n: i2, s: 0.2}, {n: i3, s: 3}, {n: i4, s: 0.2}, {n: i5, s: 0.2}]
      concurrency: 2
    parameters: {name: "{{ item.n }}", log: "{{ log }}", sleep: "{{ item.s }}"}
"#,
    );
    let log = sq.path("effects.log");
    let e = kill_during(&sq, "crash.fan", json!({"log": log}), "i3 start");
    assert_eq!(e["status"], "succeeded", "{e:#}");
    // i3 starts only when i0 and i1 have ended and their records are durable.
    for done_before in ["i0", "i1"] {
        assert_eq!(
            count_lines(&log, &format!("{done_before} start")),
            1,
            "{done_before} ran again"
        );
    }
    assert!(count_lines(&log, "i3 start") >= 2, "i3 was not run again");
    for i in 0..6 {
        assert!(
            count_lines(&log, &format!("i{i} end")) >= 1,
            "i{i} never ended"
        );
    }
    // One succeeded child per item, whatever ran twice.
    let mut items: Vec<String> = e["children"]
        .as_array()
        .expect("children")
        .iter()
        .filter(|c| c["status"] == "succeeded")
        .map(|c| c["item"]["n"].as_str().unwrap_or_default().to_string())
        .collect();
    items.sort();
    assert_eq!(items, ["i0", "i1", "i2", "i3", "i4", "i5"], "{e:#}");
}
