//! Helpers shared by the Consul and Vault pack tests: a content root with one pack and its
//! configuration, `squall run` with the secret in the environment, a raw HTTP client to
//! look at the server behind Squall's back, and leak checks.

#![allow(dead_code)]

use crate::harness::{copy_dir, repo, Output, Squall};
use serde_json::Value;

/// A content root with the `core` pack, `packs/<pack>` and `config/<pack>.yaml` = `config`.
pub fn root_with(pack: &str, config: &str) -> Squall {
    let sq = Squall::core_only();
    copy_dir(
        &repo().join("packs").join(pack),
        &sq.path(&format!("packs/{pack}")),
    );
    sq.write(&format!("config/{pack}.yaml"), config);
    sq
}

/// `squall run <args> -o json` with `env` set; returns the output and the record.
#[track_caller]
pub fn run(sq: &Squall, env: &[(&str, &str)], args: &[&str]) -> (Output, Value) {
    let mut a = vec!["run"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", "json"]);
    let mut cmd = sq.cmd(&a);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let out = cmd.run();
    out.no_panic();
    let rec = out.json();
    (out, rec)
}

/// Like [`run`], asserting the execution succeeded; returns the result.
#[track_caller]
pub fn ok(sq: &Squall, env: &[(&str, &str)], args: &[&str], outs: &mut Vec<Output>) -> Value {
    let (out, rec) = run(sq, env, args);
    assert_eq!(rec["status"], "succeeded", "{}", out.describe());
    out.ok();
    outs.push(out);
    rec["result"].clone()
}

/// Like [`run`], asserting the execution failed; returns the error message.
#[track_caller]
pub fn failed(sq: &Squall, env: &[(&str, &str)], args: &[&str], outs: &mut Vec<Output>) -> String {
    let (out, rec) = run(sq, env, args);
    assert_eq!(rec["status"], "failed", "{}", out.describe());
    out.code(1);
    outs.push(out);
    rec["error"].as_str().unwrap_or_default().to_string()
}

/// One raw HTTP request to a test server: `(status, body)` (the shared harness's
/// [`crate::servers::http`], which fails the test when the server cannot be reached).
pub fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let r = crate::servers::http(method, url, headers, body);
    (r.status, r.body)
}

/// Everything the CLI shows about the executions of `sq` (list, and get/tail of each);
/// `env` is what the content needs to load (`${env:}` references).
pub fn views(sq: &Squall, env: &[(&str, &str)]) -> Vec<Output> {
    let run = |args: &[&str]| {
        let mut cmd = sq.cmd(args);
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.run()
    };
    let list = run(&["execution", "list", "--all", "-o", "json"]);
    list.ok();
    let ids: Vec<String> = list
        .json()
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut v = vec![list];
    for id in ids {
        for args in [
            ["execution", "get", &id, "-o", "json"].as_slice(),
            &["execution", "get", &id],
            &["execution", "tail", &id],
        ] {
            let out = run(args);
            out.ok();
            v.push(out);
        }
    }
    v
}

/// Assert none of `secrets` is in the outputs, the CLI's views of every execution, or any
/// byte of the data dir.
#[track_caller]
pub fn assert_no_leak(sq: &Squall, env: &[(&str, &str)], outs: &[Output], secrets: &[&str]) {
    let shown = views(sq, env);
    for secret in secrets {
        for o in outs.iter().chain(shown.iter()) {
            assert!(
                !o.stdout.contains(secret) && !o.stderr.contains(secret),
                "secret {secret:?} leaked\n{}",
                o.describe()
            );
        }
        sq.assert_data_lacks(secret);
    }
}
