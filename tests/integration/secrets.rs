//! Secrets never leave Squall in clear: not in `run` output, records, `execution tail`,
//! squall's stderr, nor any byte of the data dir.

use crate::harness::{children, id, Output, Squall};
use crate::server::Server;

/// Assert `secret` appears in none of the outputs.
#[track_caller]
fn absent(secret: &str, outs: &[&Output]) {
    for o in outs {
        assert!(
            !o.stdout.contains(secret) && !o.stderr.contains(secret),
            "secret {secret:?} leaked\n{}",
            o.describe()
        );
    }
}

/// Everything the CLI shows about execution `id` (and its children).
fn views(sq: &Squall, id: &str) -> Vec<Output> {
    let mut v = vec![
        sq.run(&["execution", "get", id, "-o", "json"]),
        sq.run(&["execution", "get", id]),
        sq.run(&["execution", "get", id, "-o", "yaml"]),
        sq.run(&["execution", "tail", id]),
        sq.run(&["execution", "tail", id, "-o", "json"]),
        sq.run(&["execution", "list", "--all", "-o", "json"]),
    ];
    for o in &v {
        o.ok();
    }
    let rec = v[0].json();
    if let Some(kids) = rec["children"].as_array() {
        for k in kids {
            let kid = k["id"].as_str().unwrap_or("");
            v.push(sq.run(&["execution", "get", kid, "-o", "json"]));
            v.push(sq.run(&["execution", "tail", kid]));
        }
    }
    v
}

fn leak_pack(sq: &Squall) {
    sq.pack("t", "");
    sq.action(
        "t",
        "leak",
        "name: leak\nrunner: shell\ncmd: 'echo \"pw is $SQUALL_PARAM_PASSWORD\"; echo \"stderr $SQUALL_PARAM_PASSWORD\" >&2; cat'\nparameters:\n  user: {type: string, default: admin}\n  password: {type: string, secret: true, required: true}\n",
    );
}

#[test]
fn a_secret_parameter_is_masked_everywhere() {
    let sq = Squall::core_only();
    leak_pack(&sq);
    let secret = "S3cr3t-Value-9f2c71";
    let (out, rec) = sq.exec_json(&["t.leak", &format!("password={secret}")]);
    out.ok();
    assert_eq!(rec["parameters"]["password"], "********", "{rec:#}");
    assert_eq!(rec["parameters"]["user"], "admin");
    let stdout = rec["result"]["stdout"].as_str().unwrap_or("");
    assert!(
        stdout.contains("pw is ********"),
        "the script's output is masked: {rec:#}"
    );
    // The table form streams live output on stderr.
    let table = sq.run(&["run", "t.leak", &format!("password={secret}")]);
    table.ok().stderr_has("pw is ********");
    let shown = views(&sq, &id(&rec));
    let mut all: Vec<&Output> = shown.iter().collect();
    all.push(&out);
    all.push(&table);
    absent(secret, &all);
    // The tail shows the (masked) output.
    shown[3].stdout_has("pw is ********");
    sq.assert_data_lacks(secret);
}

#[test]
fn a_secret_in_a_failed_execution_and_error_is_masked() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "fail",
        "name: fail\nrunner: shell\ncmd: 'echo \"bad token $SQUALL_PARAM_TOKEN\" >&2; exit 2'\nparameters:\n  token: {type: string, secret: true}\n",
    );
    let secret = "tok-Abc123-Zyx987";
    let (out, rec) = sq.exec_json(&["t.fail", &format!("token={secret}")]);
    out.code(1);
    assert!(
        rec["error"].as_str().unwrap_or("").contains("********"),
        "{rec:#}"
    );
    let shown = views(&sq, &id(&rec));
    let mut all: Vec<&Output> = shown.iter().collect();
    all.push(&out);
    absent(secret, &all);
    sq.assert_data_lacks(secret);
}

#[test]
fn a_generated_password_passed_between_tasks_is_never_shown_or_stored() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "keep",
        "name: keep\nrunner: shell\ncmd: 'printf %s \"$SQUALL_PARAM_PW\" > \"$SQUALL_PARAM_OUT\"; echo \"using $SQUALL_PARAM_PW\"'\nparameters:\n  pw: {type: string}\n  out: {type: string}\n",
    );
    sq.write(
        "workflows/genpw.yaml",
        r#"name: genpw
parameters:
  out: {type: string, required: true}
chain:
  - name: gen
    ref: core.noop
    publish: {pw: "{{ random_password(16) }}"}
    on-success: use
  - name: use
    ref: t.keep
    parameters: {pw: "{{ pw }}", out: "{{ out }}"}
    publish: {said: "{{ result.stdout }}"}
"#,
    );
    let file = sq.path("password.txt");
    let (out, rec) = sq.exec_json(&["site.genpw", &format!("out={}", file.display())]);
    out.ok();
    let pw = std::fs::read_to_string(&file).expect("the task wrote the password");
    assert_eq!(pw.chars().count(), 16, "random_password(16): {pw:?}");
    assert_eq!(rec["result"]["pw"], "********", "{rec:#}");
    assert_eq!(rec["result"]["said"], "using ********", "{rec:#}");
    let kids = children(&rec);
    assert_eq!(kids.len(), 2);
    let shown = views(&sq, &id(&rec));
    let mut all: Vec<&Output> = shown.iter().collect();
    all.push(&out);
    absent(&pw, &all);
    sq.assert_data_lacks(&pw);
}

#[test]
fn a_secret_in_a_task_result_reaches_the_next_task_in_clear_and_is_shown_masked() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "gen",
        "name: gen\nrunner: rhai\nentry_point: gen.rhai\n",
    );
    sq.write(
        "packs/t/actions/gen.rhai",
        "#{password: random_password(20)}\n",
    );
    sq.action(
        "t",
        "keep",
        "name: keep\nrunner: shell\ncmd: 'printf %s \"$SQUALL_PARAM_PW\" > \"$SQUALL_PARAM_OUT\"'\nparameters:\n  pw: {type: string}\n  out: {type: string}\n",
    );
    sq.write(
        "workflows/pass.yaml",
        r#"name: pass
parameters:
  out: {type: string, required: true}
chain:
  - name: gen
    ref: t.gen
    publish: {pw: "{{ result.password }}"}
    on-success: use
  - name: use
    ref: t.keep
    parameters: {pw: "{{ pw }}", out: "{{ out }}"}
"#,
    );
    let file = sq.path("password.txt");
    let (out, rec) = sq.exec_json(&["site.pass", &format!("out={}", file.display())]);
    out.ok();
    let pw = std::fs::read_to_string(&file).expect("the task wrote the password");
    assert_eq!(
        pw.chars().count(),
        20,
        "the clear value, not the mask: {pw:?}"
    );
    let kids = children(&rec);
    let gen = sq.get(kids[0]["id"].as_str().unwrap_or_default());
    assert_eq!(gen["result"], serde_json::json!({"password": "********"}));
    let shown = views(&sq, &id(&rec));
    let mut all: Vec<&Output> = shown.iter().collect();
    all.push(&out);
    absent(&pw, &all);
    sq.assert_data_lacks(&pw);
}

#[test]
fn env_references_in_config_and_defaults_are_masked() {
    let sq = Squall::core_only();
    sq.pack("t", "config_schema:\n  token: {type: string, required: true}\n  region: {type: string, default: eu}\n");
    sq.write("config/t.yaml", "token: ${env:SQUALL_IT_CONFIG_TOKEN}\n");
    sq.action(
        "t",
        "cfg",
        "name: cfg\nrunner: rhai\nentry_point: cfg.rhai\n",
    );
    sq.write(
        "packs/t/actions/cfg.rhai",
        "print(\"token \" + config.token);\n#{token: config.token, header: \"Bearer \" + config.token, region: config.region}\n",
    );
    sq.action(
        "t",
        "dflt",
        "name: dflt\nrunner: shell\ncmd: 'echo \"key=$SQUALL_PARAM_KEY\"'\nparameters:\n  key: {type: string, default: '${env:SQUALL_IT_DEFAULT_KEY}'}\n",
    );
    let token = "cfg-Token-5521aa";
    let key = "dflt-Key-77c0ffee";
    let run = |args: &[&str]| {
        let mut a = vec!["run"];
        a.extend_from_slice(args);
        sq.cmd(&a)
            .env("SQUALL_IT_CONFIG_TOKEN", token)
            .env("SQUALL_IT_DEFAULT_KEY", key)
            .run()
    };
    let out = run(&["t.cfg", "-o", "json"]);
    out.ok();
    let rec = out.json();
    assert_eq!(rec["result"]["token"], "********", "{rec:#}");
    assert_eq!(rec["result"]["header"], "Bearer ********");
    assert_eq!(rec["result"]["region"], "eu");
    let out2 = run(&["t.dflt", "-o", "json"]);
    out2.ok();
    let rec2 = out2.json();
    assert_eq!(rec2["result"]["stdout"], "key=********", "{rec2:#}");
    let table = run(&["t.dflt"]);
    table.ok();
    // The engine learns the secrets from the content on every load.
    let get = |i: &str| {
        sq.cmd(&["execution", "get", i, "-o", "json"])
            .env("SQUALL_IT_CONFIG_TOKEN", token)
            .env("SQUALL_IT_DEFAULT_KEY", key)
            .run()
    };
    let g1 = get(&id(&rec));
    let g2 = get(&id(&rec2));
    for secret in [token, key] {
        absent(secret, &[&out, &out2, &table, &g1, &g2]);
        sq.assert_data_lacks(secret);
    }
}

const DOC_TOKEN: &str = "doc-Env-Token-6b1e93";
const DOC_FILE: &str = "doc-File-Secret-2d77c4";

/// Content whose action, workflow, rule, sensor, pack and config all use
/// `${env:SQUALL_IT_DOC_TOKEN}` (= [`DOC_TOKEN`]) and `${file:pw}` (= [`DOC_FILE`]).
fn referencing_content(sq: &Squall) -> String {
    sq.write("pw", &format!("{DOC_FILE}\n"));
    let pw = format!("${{file:{}}}", sq.path("pw").display());
    sq.pack(
        "t",
        &format!("description: '{pw}'\nconfig_schema:\n  token: {{type: string, secret: true}}\n"),
    );
    sq.write("config/t.yaml", "token: ${env:SQUALL_IT_DOC_TOKEN}\n");
    sq.action(
        "t",
        "h",
        "name: h\nrunner: http\nhttp:\n  url: http://127.0.0.1:9/\n  headers: {Authorization: '${env:SQUALL_IT_DOC_TOKEN}'}\n",
    );
    sq.action(
        "t",
        "e",
        &format!("name: e\nrunner: shell\ncmd: 'echo hi'\nenv: {{TOKEN: '{pw}'}}\nparameters:\n  x: {{type: string}}\n  k: {{type: string, default: '${{env:SQUALL_IT_DOC_TOKEN}}'}}\n"),
    );
    sq.write(
        "workflows/wf.yaml",
        &format!("name: wf\nparameters:\n  p: {{type: string, default: '{pw}'}}\nchain:\n  - name: one\n    ref: t.e\n    parameters: {{x: '{pw}'}}\n"),
    );
    sq.write(
        "rules/r.yaml",
        &format!("name: r\ntrigger: core.webhook\ncriteria:\n  trigger.body.token: {{type: equals, pattern: '{pw}'}}\naction:\n  ref: t.e\n  parameters: {{x: '${{env:SQUALL_IT_DOC_TOKEN}}'}}\n"),
    );
    sq.write(
        "sensors/hook.yaml",
        &format!("name: hook\ntype: webhook\nconfig:\n  path: hook\n  secret: '{pw}'\n"),
    );
    pw
}

#[test]
fn content_documents_show_references_never_their_values() {
    let sq = Squall::core_only();
    let pw = referencing_content(&sq);
    let env = [("SQUALL_IT_DOC_TOKEN", DOC_TOKEN)];
    let srv = Server::start_env(&sq, &env);
    let trigger = format!("{{\"body\": {{\"token\": \"{DOC_FILE}\"}}}}");
    sq.write("trigger.json", &trigger);
    let tfile = sq.path("trigger.json").display().to_string();

    // Through the API.
    let mut bodies = Vec::new();
    for path in [
        "/api/v1/actions",
        "/api/v1/actions/t.h",
        "/api/v1/actions/t.e",
        "/api/v1/actions/site.wf",
        "/api/v1/rules",
        "/api/v1/rules/site.r",
        "/api/v1/sensors",
        "/api/v1/status",
    ] {
        let r = srv.request("GET", path, None, None);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        bodies.push((path.to_string(), r.body));
    }
    let t = srv.request("POST", "/api/v1/rules/site.r/test", Some(&trigger), None);
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.json()["matched"], true, "{}", t.body);
    bodies.push(("rule test".into(), t.body));
    for (path, body) in &bodies {
        for secret in [DOC_TOKEN, DOC_FILE] {
            assert!(!body.contains(secret), "{path} shows {secret}: {body}");
        }
    }
    let h = serde_json::from_str::<serde_json::Value>(&bodies[1].1).expect("json");
    assert_eq!(
        h["metadata"]["http"]["headers"]["Authorization"], "${env:SQUALL_IT_DOC_TOKEN}",
        "{h:#}"
    );
    let e = serde_json::from_str::<serde_json::Value>(&bodies[2].1).expect("json");
    assert_eq!(
        e["metadata"]["env"]["TOKEN"],
        serde_json::json!(pw),
        "{e:#}"
    );

    // Through the CLI, with and without the server.
    let server = format!("http://{}", srv.addr);
    let mut outs = Vec::new();
    for remote in [true, false] {
        for args in [
            vec!["action", "list", "-o", "json"],
            vec!["action", "get", "t.h", "-o", "json"],
            vec!["action", "get", "t.h", "-o", "yaml"],
            vec!["action", "get", "t.e"],
            vec!["action", "get", "site.wf", "-o", "json"],
            vec!["rule", "list", "-o", "json"],
            vec!["rule", "get", "site.r", "-o", "json"],
            vec!["rule", "get", "site.r"],
            vec!["rule", "test", "site.r", "--trigger", &tfile, "-o", "json"],
            vec!["rule", "test", "site.r", "--trigger", &tfile],
            vec!["sensor", "list", "-o", "json"],
            vec!["pack", "list", "-o", "json"],
            vec!["pack", "list"],
        ] {
            let mut a: Vec<&str> = if remote {
                vec!["--server", &server]
            } else {
                Vec::new()
            };
            a.extend(args);
            let out = sq.cmd(&a).env(env[0].0, env[0].1).run();
            out.ok();
            outs.push(out);
        }
    }
    let all: Vec<&Output> = outs.iter().collect();
    absent(DOC_TOKEN, &all);
    absent(DOC_FILE, &all);
    outs[1].stdout_has("${env:SQUALL_IT_DOC_TOKEN}");
    outs[14].stdout_has("${env:SQUALL_IT_DOC_TOKEN}");
    assert!(!srv.log_text().contains(DOC_TOKEN) && !srv.log_text().contains(DOC_FILE));
}

#[test]
fn a_secret_equal_to_a_field_name_leaves_field_names_intact() {
    let sq = Squall::core_only();
    leak_pack(&sq);
    sq.action(
        "t",
        "echo",
        "name: echo\nrunner: shell\ncmd: 'echo plain'\n",
    );
    let srv = Server::start(&sq);
    for word in ["stdout", "exit_code", "status"] {
        let body =
            format!("{{\"action\": \"t.leak\", \"parameters\": {{\"password\": \"{word}\"}}}}");
        let r = srv.request("POST", "/api/v1/executions", Some(&body), None);
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["id"].as_str().unwrap_or_default().to_string();
        srv.wait_json(&format!("/api/v1/executions/{id}"), None, 30, |v| {
            v["finished_at"].is_string()
        });
    }
    let r = srv.request(
        "POST",
        "/api/v1/executions",
        Some("{\"action\": \"t.echo\"}"),
        None,
    );
    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
    let rec = srv.wait_json(&format!("/api/v1/executions/{id}"), None, 30, |v| {
        v["finished_at"].is_string()
    });
    assert_eq!(rec["status"], "succeeded", "{rec:#}");
    assert_eq!(rec["result"]["stdout"], "plain", "{rec:#}");
    assert_eq!(rec["result"]["exit_code"], 0, "{rec:#}");
    assert!(!rec.to_string().contains("\"********\":"), "{rec:#}");
    let list = srv.request("GET", "/api/v1/executions", None, None).json();
    for e in list.as_array().into_iter().flatten() {
        assert!(
            e.get("status").is_some(),
            "a record lost its `status` key: {e}"
        );
    }
}

/// One long line: `n` times `x`, the secret parameter, 100,000 times `y`.
const STRADDLE: &str = r#"name: big
runner: shell
cmd: |
  head -c "$SQUALL_PARAM_N" /dev/zero | tr '\0' x
  printf %s "$SQUALL_PARAM_PW"
  head -c 100000 /dev/zero | tr '\0' y
  echo
parameters:
  n: {type: integer}
  pw: {type: string, secret: true}
"#;

#[test]
fn a_secret_across_the_output_split_is_stored_and_streamed_masked() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action("t", "big", STRADDLE);
    let secret = "Straddle-Secret-Value-4e0f61ab";
    // The shell runner emits a long line in pieces of 65,536 bytes (the newline comes
    // 100,000 bytes later, so the first piece is always cut there): 10 bytes into the secret.
    let n = (64 * 1024 - 10).to_string();
    let live = sq.run(&["run", "t.big", &format!("n={n}"), &format!("pw={secret}")]);
    live.ok();
    let (out, rec) = sq.exec_json(&["t.big", &format!("n={n}"), &format!("pw={secret}")]);
    out.ok();
    let tail = sq.run(&["execution", "tail", &id(&rec), "-o", "json"]);
    tail.ok();
    let chunks = tail.json();
    let data: String = chunks
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["data"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        data,
        format!(
            "{}********{}\n",
            "x".repeat(64 * 1024 - 10),
            "y".repeat(100_000)
        )
    );
    assert!(
        chunks.as_array().map_or(0, Vec::len) >= 2,
        "the line came in pieces"
    );
    for half in [&secret[..10], &secret[10..]] {
        for o in [&live, &out, &tail] {
            assert!(
                !o.stdout.contains(half) && !o.stderr.contains(half),
                "{half:?} shown"
            );
        }
        sq.assert_data_lacks(half);
    }
}

#[test]
fn output_held_back_as_a_possible_secret_comes_out_when_the_execution_times_out() {
    let sq = Squall::core_only();
    sq.pack("t", "");
    sq.action(
        "t",
        "slow",
        "name: slow\nrunner: shell\ntimeout: 1\ncmd: 'printf \"start Held-\"; sleep 30'\nparameters:\n  pw: {type: string, secret: true}\n",
    );
    let (out, rec) = sq.exec_json(&["t.slow", "pw=Held-Back-Secret-77"]);
    out.code(1);
    assert_eq!(rec["status"], "timeout", "{rec:#}");
    let tail = sq.run(&["execution", "tail", &id(&rec)]);
    tail.ok();
    assert_eq!(tail.stdout, "start Held-", "{}", tail.describe());
}
