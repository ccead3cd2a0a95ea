//! Secrets never leave Squall in clear: not in `run` output, records, `execution tail`,
//! squall's stderr, nor any byte of the data dir.

use crate::harness::{children, id, Output, Squall};

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
