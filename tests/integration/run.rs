//! `squall run`: core actions, parameter validation and coercion, the shell and rhai
//! runners, all through the real binary.

use crate::harness::{id, Squall};
use serde_json::json;
use std::time::{Duration, Instant};

/// Fields every execution record carries (docs/executions.md).
const RECORD_FIELDS: [&str; 14] = [
    "id",
    "action",
    "parameters",
    "status",
    "result",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "parent",
    "task",
    "trigger_instance",
    "rule",
    "attempt",
];

/// A pack `t` with a noop action declaring typed parameters (its result is them).
fn typed_pack(sq: &Squall) {
    sq.pack("t", "");
    sq.action(
        "t",
        "typed",
        "name: typed\nrunner: noop\nparameters:\n  hosts: {type: array, items: {type: string}}\n  count: {type: integer}\n  ratio: {type: number}\n  dry_run: {type: boolean}\n  mode: {type: string, enum: [fast, slow], default: fast}\n  name: {type: string, required: true}\n  tags: {type: object}\n",
    );
}

#[test]
fn core_echo_prints_one_json_record() {
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.echo", "message=hello there"]);
    out.ok();
    for f in RECORD_FIELDS {
        assert!(rec.get(f).is_some(), "record lacks `{f}`: {rec:#}");
    }
    assert_eq!(rec["action"], "core.echo");
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["parameters"], json!({"message": "hello there"}));
    assert_eq!(rec["result"]["stdout"], "hello there");
    assert_eq!(rec["result"]["exit_code"], 0);
    assert_eq!(rec["attempt"], 1);
    assert!(rec["error"].is_null());
    assert!(rec["parent"].is_null());
    assert!(rec["finished_at"].is_string());
    // The table form says the same.
    let t = sq.run(&["run", "core.echo", "message=hi"]);
    t.ok().stdout_has("succeeded").stdout_has("core.echo");
}

#[test]
fn core_local_failure_is_a_failed_execution_with_stderr() {
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.local", "cmd=echo out; echo broken-thing >&2; exit 4"]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert_eq!(rec["result"]["exit_code"], 4);
    assert_eq!(rec["result"]["stdout"], "out");
    assert_eq!(rec["result"]["stderr"], "broken-thing");
    let err = rec["error"].as_str().unwrap_or("");
    assert!(
        err.contains('4') && err.contains("broken-thing"),
        "error: {err}"
    );
    // And it is recorded as failed.
    let got = sq.get(&id(&rec));
    assert_eq!(got["status"], "failed");
    let ok = sq.run(&["run", "core.local", "cmd=true"]);
    ok.ok();
}

#[test]
fn core_noop_returns_its_parameters() {
    let sq = Squall::core_only();
    let (out, rec) = sq.exec_json(&["core.noop"]);
    out.ok();
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["result"], json!({}));
}

#[test]
fn kv_arguments_are_coerced_by_declared_type() {
    let sq = Squall::core_only();
    typed_pack(&sq);
    let (out, rec) = sq.exec_json(&[
        "t.typed",
        "name=x",
        r#"hosts=["a","b"]"#,
        "count=3",
        "ratio=0.5",
        "dry_run=true",
        r#"tags={"env":"prod"}"#,
    ]);
    out.ok();
    let want = json!({"hosts": ["a", "b"], "count": 3, "ratio": 0.5, "dry_run": true,
                      "mode": "fast", "name": "x", "tags": {"env": "prod"}});
    assert_eq!(rec["result"], want, "{rec:#}");
    assert_eq!(rec["parameters"], want);
    // The StackStorm shorthand for a list of strings.
    let (out, rec) = sq.exec_json(&["t.typed", "name=x", "hosts=a,b"]);
    out.ok();
    assert_eq!(rec["result"]["hosts"], json!(["a", "b"]));
}

#[test]
fn json_parameters_with_p() {
    let sq = Squall::core_only();
    typed_pack(&sq);
    let (out, rec) = sq.exec_json(&[
        "t.typed",
        "-p",
        r#"{"name": "y", "count": 1, "hosts": ["z"]}"#,
    ]);
    out.ok();
    assert_eq!(rec["result"]["count"], 1);
    assert_eq!(rec["result"]["hosts"], json!(["z"]));
    // k=v wins over -p.
    let (out, rec) = sq.exec_json(&["t.typed", "-p", r#"{"name": "y", "count": 1}"#, "count=7"]);
    out.ok();
    assert_eq!(rec["result"]["count"], 7);
    // Not an object, not JSON: usage errors.
    sq.run(&["run", "t.typed", "-p", "[1]"]).code(2).no_panic();
    sq.run(&["run", "t.typed", "-p", "{nope"])
        .code(2)
        .no_panic();
}

#[test]
fn invalid_parameters_are_usage_errors_naming_the_parameter_and_record_nothing() {
    let sq = Squall::core_only();
    typed_pack(&sq);
    let cases: &[(&[&str], &[&str])] = &[
        (&["t.typed", "name=x", "bogus=1"], &["bogus"]),
        (&["t.typed", "name=x", "count=abc"], &["count", "abc"]),
        (&["t.typed"], &["name", "required"]),
        (&["t.typed", "name=x", "mode=medium"], &["mode", "medium"]),
        (&["t.typed", "name=x", "hosts=[broken"], &["hosts"]),
        (&["t.typed", "name=x", "tags=notjson"], &["tags"]),
        (&["t.typed", "name=x", "dry_run=maybe"], &["dry_run"]),
        (&["t.typed", "noequals"], &["noequals"]),
        (&["t.typo", "name=x"], &["t.typo"]),
    ];
    for (args, words) in cases {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        let out = sq.run(&a);
        out.code(2).no_panic();
        for w in *words {
            out.stderr_has(w);
        }
    }
    let list = sq.run(&["execution", "list", "--all", "-o", "json"]);
    list.ok();
    assert_eq!(
        list.json(),
        json!([]),
        "parameter errors must not be recorded\n{}",
        list.describe()
    );
}

#[test]
fn shell_parameters_arrive_as_env_and_stdin_json() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "env",
        "name: env\nrunner: shell\ncmd: 'printf ''{\"name\":\"%s\",\"hosts\":%s,\"count\":%s,\"stdin\":%s}'' \"$SQUALL_PARAM_NAME\" \"$SQUALL_PARAM_HOSTS\" \"$SQUALL_PARAM_COUNT\" \"$(cat)\"'\nparameters:\n  name: {type: string}\n  hosts: {type: array}\n  count: {type: integer, default: 2}\n",
    );
    let (out, rec) = sq.exec_json(&["t.env", "name=web", r#"hosts=["a","b"]"#]);
    out.ok();
    let j = &rec["result"]["json"];
    assert_eq!(j["name"], "web", "{rec:#}");
    assert_eq!(j["hosts"], json!(["a", "b"]));
    assert_eq!(j["count"], 2);
    assert_eq!(
        j["stdin"],
        json!({"name": "web", "hosts": ["a", "b"], "count": 2})
    );
    // Plain text stdout has no `json`.
    let (out, rec) = sq.exec_json(&["core.echo", "message=not json {"]);
    out.ok();
    assert!(rec["result"].get("json").is_none(), "{rec:#}");
}

#[test]
fn shell_script_entry_point_beside_the_yaml() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "script",
        "name: script\nrunner: shell\nentry_point: script.sh\nparameters:\n  who: {type: string, default: world}\n",
    );
    sq.write_exec(
        "packs/t/actions/script.sh",
        "#!/bin/sh\necho \"hello, $SQUALL_PARAM_WHO\"\necho \"in $(pwd)\"\n",
    );
    // Not executable: run with sh.
    sq.action(
        "t",
        "plain",
        "name: plain\nrunner: shell\nentry_point: plain.sh\n",
    );
    sq.write(
        "packs/t/actions/plain.sh",
        "echo plain script ran\nexit 3\n",
    );
    let (out, rec) = sq.exec_json(&["t.script", "who=ops"]);
    out.ok();
    let stdout = rec["result"]["stdout"].as_str().unwrap_or("");
    assert!(stdout.starts_with("hello, ops"), "{rec:#}");
    assert!(
        stdout.trim_end().ends_with("packs/t/actions"),
        "cwd: {stdout}"
    );
    let (out, rec) = sq.exec_json(&["t.plain"]);
    out.code(1);
    assert_eq!(rec["status"], "failed");
    assert_eq!(rec["result"]["stdout"], "plain script ran");
    assert_eq!(rec["result"]["exit_code"], 3);
}

#[test]
fn shell_timeout_kills_the_process_group() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "slow",
        "name: slow\nrunner: shell\ncmd: 'sleep 30 & echo $! > \"$SQUALL_PARAM_PIDFILE\"; wait'\nparameters:\n  pidfile: {type: string, required: true}\ntimeout: 1\n",
    );
    let pidfile = sq.path("sleep.pid");
    let started = Instant::now();
    let (out, rec) = sq.exec_json(&["t.slow", &format!("pidfile={}", pidfile.display())]);
    // Anti-hang bound only: far below the 30 s the command would take.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "timeout did not stop the command"
    );
    out.code(1);
    assert_eq!(rec["status"], "timeout", "{rec:#}");
    assert!(
        rec["error"].as_str().unwrap_or("").contains("timed out"),
        "{rec:#}"
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .expect("the command wrote its pid")
        .trim()
        .parse()
        .expect("a pid");
    // The background sleep is gone (or at most a zombie waiting to be reaped).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        let alive = stat.as_deref().is_some_and(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && s.contains("(sleep)")
        });
        if !alive {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sleep {pid} outlived the timed-out action"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rhai_pack(sq: &Squall) {
    sq.pack("t", "");
    sq.action(
        "t",
        "greet",
        "name: greet\nrunner: rhai\nentry_point: greet.rhai\nparameters:\n  who: {type: string, default: bob}\n  n: {type: integer, default: 2}\n",
    );
    sq.write(
        "packs/t/actions/greet.rhai",
        "if params.who == \"bob\" { throw \"no bob allowed\"; }\nprint(\"greeting \" + params.who);\n#{greeting: \"hi \" + params.who, double: params.n * 2, list: [1, 2]}\n",
    );
    sq.action(
        "t",
        "spin",
        "name: spin\nrunner: rhai\nentry_point: spin.rhai\n",
    );
    sq.write(
        "packs/t/actions/spin.rhai",
        "let x = 0;\nloop { x += 1; }\n",
    );
    sq.action("t", "missing", "name: missing\nrunner: rhai\nentry_point: missing.rhai\nparameters:\n  o: {type: object, default: {}}\n");
    sq.write("packs/t/actions/missing.rhai", "params.o.deep.field + 1\n");
}

#[test]
fn rhai_script_returns_a_value() {
    let sq = Squall::core_only();
    rhai_pack(&sq);
    let (out, rec) = sq.exec_json(&["t.greet", "who=al", "n=21"]);
    out.ok();
    assert_eq!(
        rec["result"],
        json!({"greeting": "hi al", "double": 42, "list": [1, 2]})
    );
    let tail = sq.run(&["execution", "tail", &id(&rec)]);
    tail.ok().stdout_has("greeting al");
}

#[test]
fn rhai_throw_fails_with_its_message() {
    let sq = Squall::core_only();
    rhai_pack(&sq);
    let (out, rec) = sq.exec_json(&["t.greet"]);
    out.code(1);
    assert_eq!(rec["status"], "failed");
    assert!(
        rec["error"]
            .as_str()
            .unwrap_or("")
            .contains("no bob allowed"),
        "{rec:#}"
    );
}

#[test]
fn rhai_runtime_error_fails_the_execution() {
    let sq = Squall::core_only();
    rhai_pack(&sq);
    let (out, rec) = sq.exec_json(&["t.missing"]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert!(
        rec["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{rec:#}"
    );
}

#[test]
fn rhai_endless_loop_ends_as_failed() {
    let sq = Squall::core_only();
    rhai_pack(&sq);
    let (out, rec) = sq.exec_json(&["t.spin"]);
    out.code(1);
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert!(
        rec["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{rec:#}"
    );
}

#[test]
fn action_list_and_get() {
    let sq = Squall::core_only();
    typed_pack(&sq);
    let list = sq.run(&["action", "list", "-o", "json"]);
    list.ok();
    let refs: Vec<String> = list
        .json()
        .as_array()
        .expect("array")
        .iter()
        .map(|a| a["ref"].as_str().unwrap_or("").to_string())
        .collect();
    for r in [
        "core.echo",
        "core.local",
        "core.noop",
        "core.http",
        "t.typed",
    ] {
        assert!(refs.iter().any(|x| x == r), "{r} missing from {refs:?}");
    }
    let get = sq.run(&["action", "get", "t.typed"]);
    get.ok().stdout_has("count").stdout_has("integer");
    let missing = sq.run(&["action", "get", "t.nope"]);
    missing.no_panic().stderr_has("t.nope");
    assert_ne!(missing.code, 0, "{}", missing.describe());
}
