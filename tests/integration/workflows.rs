//! Action-chain workflows through `squall run`: the shipped example, publish, guards,
//! retry, `with` items, output, the task-run bound, runtime errors, nesting, and how the
//! records look in `execution get` / `execution list`.

use crate::harness::{children, id, tasks, Squall};
use serde_json::{json, Value};

/// The shipped content plus a pack `t` with helper actions.
pub(crate) fn root() -> Squall {
    let sq = Squall::new();
    sq.pack("t", "");
    // noop: the result is the parameters.
    sq.action(
        "t",
        "take",
        "name: take\nrunner: noop\nparameters:\n  value: {}\n  other: {}\n  num: {}\n",
    );
    // Appends a line to FILE; fails until the file has SUCCEED_AT lines.
    sq.action(
        "t",
        "flaky",
        "name: flaky\nrunner: shell\ncmd: 'echo x >> \"$SQUALL_PARAM_FILE\"; n=$(wc -l < \"$SQUALL_PARAM_FILE\"); echo \"attempt $n\"; [ \"$n\" -ge \"$SQUALL_PARAM_SUCCEED_AT\" ]'\nparameters:\n  file: {type: string, required: true}\n  succeed_at: {type: integer, required: true}\n",
    );
    sq
}

fn t(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn shipped_check_hosts_succeeds_with_children_in_order() {
    let sq = Squall::new();
    let (out, rec) = sq.exec_json(&["site.check_hosts"]);
    out.ok();
    assert_eq!(rec["status"], "succeeded", "{rec:#}");
    let kids = children(&rec);
    let shape: Vec<(Value, Value, Value)> = kids
        .iter()
        .map(|c| (c["task"].clone(), c["action"].clone(), c["item"].clone()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (json!("plan"), json!("core.echo"), Value::Null),
            (json!("check"), json!("core.local"), json!("alpha")),
            (json!("check"), json!("core.local"), json!("beta")),
            (json!("check"), json!("core.local"), json!("gamma")),
            (json!("summarize"), json!("core.echo"), Value::Null),
        ]
    );
    assert!(kids
        .iter()
        .all(|c| c["status"] == "succeeded" && c["id"].is_string()));
    assert_eq!(rec["result"]["count"], 3);
    assert_eq!(rec["result"]["checked"], 3);
    assert_eq!(rec["result"]["summary"], "Host check: all 3 hosts answered");
    // `execution get` shows the same children, and each child links back.
    let got = sq.get(&id(&rec));
    assert_eq!(got["children"], rec["children"]);
    let child = sq.get(kids[2]["id"].as_str().unwrap_or(""));
    assert_eq!(child["parent"], rec["id"]);
    assert_eq!(child["task"], "check");
    assert_eq!(child["item"], "beta");
    assert_eq!(child["result"]["stdout"], "checking beta");
}

#[test]
fn shipped_check_hosts_failure_path() {
    let sq = Squall::new();
    let (out, rec) = sq.exec_json(&["site.check_hosts", "broken=beta"]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert_eq!(
        tasks(&rec),
        t(&[
            ("plan", "succeeded"),
            ("check", "succeeded"),
            ("check", "failed"),
            ("check", "succeeded"),
            ("report_failure", "failed"),
        ])
    );
    assert_eq!(children(&rec)[2]["item"], "beta");
    let err = rec["error"].as_str().unwrap_or("");
    assert!(
        err.contains("report_failure") && err.contains("beta is not answering"),
        "{err}"
    );
    // report_failure saw the check's error.
    let report = sq.get(children(&rec)[4]["id"].as_str().unwrap_or(""));
    let stderr = report["result"]["stderr"].as_str().unwrap_or("");
    assert!(
        stderr.contains("Host check failed") && stderr.contains("beta"),
        "{report:#}"
    );
}

#[test]
fn publish_task_results_and_output() {
    let sq = root();
    sq.write(
        "workflows/pub.yaml",
        r#"name: pub
vars: {suffix: "!"}
chain:
  - name: first
    ref: core.echo
    parameters: {message: alpha}
    publish: {greeting: "{{ result.stdout }}", n: "{{ 40 + 2 }}"}
    on-success: second
  - name: second
    ref: t.take
    parameters:
      value: "{{ greeting }}{{ suffix }}"
      other: "{{ tasks.first.result.stdout }}-{{ tasks.first.status }}"
      num: "{{ n }}"
output:
  v: "{{ tasks.second.result.value }}"
  o: "{{ tasks.second.result.other }}"
  n: "{{ n * 2 }}"
"#,
    );
    let (out, rec) = sq.exec_json(&["site.pub"]);
    out.ok();
    assert_eq!(
        rec["result"],
        json!({"v": "alpha!", "o": "alpha-succeeded", "n": 84}),
        "{rec:#}"
    );
    let second = sq.get(children(&rec)[1]["id"].as_str().unwrap_or(""));
    assert_eq!(
        second["parameters"]["num"], 42,
        "a lone {{{{ }}}} keeps its type"
    );
}

#[test]
fn guarded_transitions_first_match_wins() {
    let sq = root();
    sq.write(
        "workflows/guard.yaml",
        r#"name: guard
parameters:
  level: {type: integer, default: 5}
chain:
  - name: decide
    ref: core.noop
    on-success:
      - {if: 'level > 10', do: high}
      - {if: 'level > 3', do: medium}
      - {if: 'level > 1', do: low}
      - {do: low}
  - {name: high, ref: core.noop}
  - {name: medium, ref: core.noop}
  - {name: low, ref: core.noop}
"#,
    );
    for (level, next) in [("20", "high"), ("5", "medium"), ("2", "low"), ("0", "low")] {
        let (out, rec) = sq.exec_json(&["site.guard", &format!("level={level}")]);
        out.ok();
        assert_eq!(
            tasks(&rec),
            t(&[("decide", "succeeded"), (next, "succeeded")]),
            "level {level}"
        );
    }
}

#[test]
fn retry_runs_a_failing_task_again() {
    let sq = root();
    sq.write(
        "workflows/retry.yaml",
        r#"name: retry
parameters:
  file: {type: string, required: true}
  succeed_at: {type: integer, required: true}
  count: {type: integer, default: 3}
chain:
  - name: flaky
    ref: t.flaky
    parameters: {file: "{{ file }}", succeed_at: "{{ succeed_at }}"}
    retry: {count: 3, delay: 0}
"#,
    );
    let counter = sq.path("count-ok.txt");
    let (out, rec) = sq.exec_json(&[
        "site.retry",
        &format!("file={}", counter.display()),
        "succeed_at=3",
    ]);
    out.ok();
    assert_eq!(
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count(),
        3
    );
    assert_eq!(
        tasks(&rec),
        t(&[
            ("flaky", "failed"),
            ("flaky", "failed"),
            ("flaky", "succeeded")
        ])
    );
    let attempts: Vec<Value> = children(&rec)
        .iter()
        .map(|c| sq.get(c["id"].as_str().unwrap_or(""))["attempt"].clone())
        .collect();
    assert_eq!(attempts, vec![json!(1), json!(2), json!(3)]);
    // Retries exhausted: 1 + 3 attempts, then the workflow fails.
    let counter = sq.path("count-bad.txt");
    let (out, rec) = sq.exec_json(&[
        "site.retry",
        &format!("file={}", counter.display()),
        "succeed_at=99",
    ]);
    out.code(1);
    assert_eq!(rec["status"], "failed");
    assert_eq!(
        std::fs::read_to_string(&counter)
            .unwrap_or_default()
            .lines()
            .count(),
        4
    );
    assert_eq!(children(&rec).len(), 4);
}

#[test]
fn with_items_runs_two_at_a_time_and_collects_results() {
    let sq = root();
    // Each item registers in started/, then waits (bounded) until at least two items have
    // started, noting how many were running; with concurrency 2 the first two meet.
    sq.action(
        "t",
        "pair",
        r#"name: pair
runner: shell
cmd: |
  d="$SQUALL_PARAM_DIR"; mkdir -p "$d/started" "$d/finished"; touch "$d/started/$SQUALL_PARAM_ITEM"
  max=0; i=0
  while [ $i -lt 400 ]; do
    s=$(ls "$d/started" | wc -l); f=$(ls "$d/finished" | wc -l); r=$((s - f))
    [ $r -gt $max ] && max=$r
    [ $s -ge 2 ] && break
    i=$((i + 1)); sleep 0.05
  done
  echo "$max" > "$d/max-$SQUALL_PARAM_ITEM"; touch "$d/finished/$SQUALL_PARAM_ITEM"
  echo "done $SQUALL_PARAM_ITEM"
parameters:
  dir: {type: string, required: true}
  item: {type: string, required: true}
"#,
    );
    sq.write(
        "workflows/fan.yaml",
        r#"name: fan
parameters:
  dir: {type: string, required: true}
chain:
  - name: each
    ref: t.pair
    with: {items: '{{ ["a", "b", "c", "d"] }}', concurrency: 2}
    parameters: {dir: "{{ dir }}", item: "{{ item }}"}
    publish: {outs: '{{ result }}', n: '{{ result.len() }}'}
"#,
    );
    let dir = sq.path("fan");
    let (out, rec) = sq.exec_json(&["site.fan", &format!("dir={}", dir.display())]);
    out.ok();
    assert_eq!(rec["result"]["n"], 4, "{rec:#}");
    let outs: Vec<Value> = rec["result"]["outs"]
        .as_array()
        .map(|a| a.iter().map(|r| r["stdout"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        outs,
        vec![
            json!("done a"),
            json!("done b"),
            json!("done c"),
            json!("done d")
        ]
    );
    let items: Vec<Value> = children(&rec).iter().map(|c| c["item"].clone()).collect();
    assert_eq!(items, vec![json!("a"), json!("b"), json!("c"), json!("d")]);
    let maxes: Vec<u32> = ["a", "b", "c", "d"]
        .iter()
        .map(|i| {
            std::fs::read_to_string(dir.join(format!("max-{i}")))
                .unwrap_or_default()
                .trim()
                .parse()
                .unwrap_or(0)
        })
        .collect();
    assert!(
        maxes.iter().all(|m| *m <= 2),
        "more than 2 items ran at once: {maxes:?}"
    );
    assert!(
        maxes.contains(&2),
        "items never ran two at a time: {maxes:?}"
    );
}

#[test]
fn a_looping_chain_is_bounded_by_max_task_runs() {
    let sq = root();
    sq.write(
        "workflows/spin.yaml",
        "name: spin\nmax_task_runs: 5\nchain:\n  - name: again\n    ref: core.noop\n    on-success: again\n",
    );
    let (out, rec) = sq.exec_json(&["site.spin"]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap_or("")
            .contains("max_task_runs"),
        "{rec:#}"
    );
    assert_eq!(children(&rec).len(), 5);
}

#[test]
fn runtime_expression_errors_fail_the_workflow_naming_the_task() {
    let sq = root();
    sq.write(
        "workflows/oops.yaml",
        r#"name: oops
parameters:
  where: {type: string, default: params}
chain:
  - name: start
    ref: core.noop
    on-success:
      - {if: 'where == "params"', do: bad_params}
      - {if: 'where == "publish"', do: bad_publish}
      - {do: bad_guard}
  - name: bad_params
    ref: t.take
    parameters: {value: "{{ settings.region }}"}
  - name: bad_publish
    ref: core.noop
    publish: {x: "{{ result.nothing.deeper }}"}
  - name: bad_guard
    ref: core.noop
    on-success:
      - {if: 'result.nothing.deeper > 1', do: start}
"#,
    );
    for (where_, task) in [
        ("params", "bad_params"),
        ("publish", "bad_publish"),
        ("guard", "bad_guard"),
    ] {
        let (out, rec) = sq.exec_json(&["site.oops", &format!("where={where_}")]);
        out.code(1);
        assert_eq!(rec["status"], "failed", "{rec:#}");
        let err = rec["error"].as_str().unwrap_or("");
        assert!(err.contains(task), "error names the task `{task}`: {err}");
    }
}

#[test]
fn nested_workflow_runs_as_a_task() {
    let sq = root();
    sq.write(
        "workflows/inner.yaml",
        r#"name: inner
parameters:
  who: {type: string, required: true}
chain:
  - name: hello
    ref: core.echo
    parameters: {message: "hello {{ who }}"}
    publish: {said: "{{ result.stdout }}"}
output: {said: "{{ said }}"}
"#,
    );
    sq.write(
        "workflows/outer.yaml",
        r#"name: outer
chain:
  - name: call
    ref: site.inner
    parameters: {who: world}
    publish: {inner_said: "{{ result.said }}"}
    on-success: after
  - name: after
    ref: t.take
    parameters: {value: "{{ inner_said }}"}
"#,
    );
    let (out, rec) = sq.exec_json(&["site.outer"]);
    out.ok();
    assert_eq!(rec["result"]["inner_said"], "hello world", "{rec:#}");
    let kids = children(&rec);
    assert_eq!(kids[0]["action"], "site.inner");
    let inner = sq.get(kids[0]["id"].as_str().unwrap_or(""));
    assert_eq!(inner["parent"], rec["id"]);
    assert_eq!(inner["status"], "succeeded");
    assert_eq!(tasks(&inner), t(&[("hello", "succeeded")]));
    let hello = sq.get(children(&inner)[0]["id"].as_str().unwrap_or(""));
    assert_eq!(hello["parent"], inner["id"]);
}
