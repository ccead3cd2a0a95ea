//! `squall validate`: the shipped content is clean; broken content yields every problem as
//! `path:line:col: message` (text) or `{valid:false, problems:[...]}` (JSON), exit 1.

use crate::harness::{Output, Squall};
use serde_json::Value;

/// One expected problem: file, line, and words its message must hold.
struct Want {
    file: &'static str,
    line: u64,
    words: &'static [&'static str],
}

const fn want(file: &'static str, line: u64, words: &'static [&'static str]) -> Want {
    Want { file, line, words }
}

/// A tree with one problem of each kind, each in a place whose line is known.
fn broken_tree() -> Squall {
    let sq = Squall::core_only();
    sq.pack(
        "demo",
        "config_schema:\n  region: {type: string, required: true}\n  token: {type: string}\n",
    );
    // config/demo.yaml: region has the wrong type (line 2), token an unset env var (line 3).
    sq.write(
        "config/demo.yaml",
        "# demo settings\nregion: 5\ntoken: ${env:SQUALL_IT_SURELY_UNSET_VARIABLE}\n",
    );
    // Malformed YAML: a mapping value where none may be (line 3).
    sq.action(
        "demo",
        "malformed",
        "name: malformed\nrunner: noop\ndescription: a: b: c\n",
    );
    // Wrong field type (line 3).
    sq.action(
        "demo",
        "wrongtype",
        "name: wrongtype\nrunner: noop\ntimeout: soon\n",
    );
    // Unknown field, a typo of `required` (line 4).
    sq.action(
        "demo",
        "typo",
        "name: typo\nrunner: noop\nparameters:\n  a: {type: string, requried: true}\n",
    );
    // Unknown runner (line 3).
    sq.action(
        "demo",
        "badrunner",
        "name: badrunner\ndescription: x\nrunner: shel\ncmd: echo\n",
    );
    // Duplicate action names: the second file is reported (line 1).
    sq.action("demo", "dup1", "name: dup\nrunner: noop\n");
    sq.action("demo", "dup2", "name: dup\nrunner: noop\n");
    // Bad parameter schema: default of the wrong type (line 4), bad regex (line 5).
    sq.action(
        "demo",
        "schema",
        "name: schema\nrunner: noop\nparameters:\n  count: {type: integer, default: three}\n  host: {type: string, pattern: '([a-z'}\n",
    );
    // Missing entry point file (line 3).
    sq.action(
        "demo",
        "script",
        "name: script\nrunner: shell\nentry_point: missing.sh\n",
    );
    // A rule whose action does not exist (line 5).
    sq.write(
        "rules/unknown_action.yaml",
        "name: unknown_action\ntrigger: core.webhook\naction:\n  parameters: {}\n  ref: demo.nosuch\n",
    );
    // A rule whose `when` does not compile (line 3).
    sq.write(
        "rules/bad_when.yaml",
        "name: bad_when\ntrigger: core.webhook\nwhen: 'trigger.x == '\naction:\n  ref: core.noop\n",
    );
    // A chain task naming an unknown action (line 4).
    sq.write(
        "workflows/unknown_ref.yaml",
        "name: unknown_ref\nchain:\n  - name: a\n    ref: demo.nothing_here\n",
    );
    // A template that does not compile (line 6) and a transition to nowhere (line 7).
    sq.write(
        "workflows/bad_template.yaml",
        "name: bad_template\nchain:\n  - name: a\n    ref: core.echo\n    parameters:\n      message: \"{{ 1 + }}\"\n    on-success: nowhere\n",
    );
    // An unreachable task (line 5).
    sq.write(
        "workflows/unreachable.yaml",
        "name: unreachable\nchain:\n  - name: a\n    ref: core.noop\n  - name: b\n    ref: core.noop\n",
    );
    // A missing entry point of the chain (line 2).
    sq.write(
        "workflows/no_start.yaml",
        "name: no_start\ndefault: start\nchain:\n  - name: a\n    ref: core.noop\n",
    );
    // A guard that does not compile (line 6).
    sq.write(
        "workflows/bad_guard.yaml",
        "name: bad_guard\nchain:\n  - name: a\n    ref: core.noop\n    on-success:\n      - {if: 'result.x ==', do: a}\n",
    );
    sq
}

fn expected() -> Vec<Want> {
    vec![
        want("config/demo.yaml", 2, &["region", "string"]),
        want(
            "config/demo.yaml",
            3,
            &["SQUALL_IT_SURELY_UNSET_VARIABLE", "not set"],
        ),
        want("packs/demo/actions/malformed.yaml", 3, &["YAML"]),
        want("packs/demo/actions/wrongtype.yaml", 3, &["timeout"]),
        want("packs/demo/actions/typo.yaml", 4, &["requried"]),
        want("packs/demo/actions/badrunner.yaml", 3, &["runner", "shel"]),
        want("packs/demo/actions/dup2.yaml", 1, &["demo.dup", "twice"]),
        want("packs/demo/actions/schema.yaml", 4, &["default"]),
        want("packs/demo/actions/schema.yaml", 5, &["regular expression"]),
        want("packs/demo/actions/script.yaml", 3, &["missing.sh"]),
        want("rules/unknown_action.yaml", 5, &["demo.nosuch"]),
        want("rules/bad_when.yaml", 3, &["compile"]),
        want("workflows/unknown_ref.yaml", 4, &["demo.nothing_here"]),
        want("workflows/bad_template.yaml", 6, &["compile"]),
        want("workflows/bad_template.yaml", 7, &["nowhere"]),
        want("workflows/unreachable.yaml", 5, &["`b`", "unreachable"]),
        want("workflows/no_start.yaml", 2, &["start"]),
        want("workflows/bad_guard.yaml", 6, &["compile"]),
    ]
}

#[track_caller]
fn find<'a>(problems: &'a [Value], w: &Want, out: &Output) -> &'a Value {
    problems
        .iter()
        .find(|p| {
            p["file"] == w.file
                && p["line"] == w.line
                && w.words
                    .iter()
                    .all(|word| p["message"].as_str().unwrap_or("").contains(word))
        })
        .unwrap_or_else(|| {
            panic!(
                "no problem reported at {}:{} mentioning {:?}\n{}",
                w.file,
                w.line,
                w.words,
                out.describe()
            )
        })
}

#[test]
fn shipped_content_is_valid() {
    let sq = Squall::new();
    let out = sq.run(&["validate"]);
    out.ok().stdout_has("valid");
    let j = sq.run(&["validate", "-o", "json"]);
    j.ok();
    assert_eq!(j.json()["valid"], true, "{}", j.describe());
}

#[test]
fn every_problem_is_reported_in_one_json_run() {
    let sq = broken_tree();
    let out = sq.run(&["validate", "-o", "json"]);
    out.code(1).no_panic();
    let doc = out.json();
    assert_eq!(doc["valid"], false, "{}", out.describe());
    let problems = doc["problems"].as_array().expect("problems is an array");
    for p in problems {
        for key in ["file", "line", "column", "message"] {
            assert!(!p[key].is_null(), "problem lacks `{key}`: {p}");
        }
        assert!(p["line"].as_u64().unwrap_or(0) >= 1, "line from 1: {p}");
        assert!(p["column"].as_u64().unwrap_or(0) >= 1, "column from 1: {p}");
    }
    for w in expected() {
        find(problems, &w, &out);
    }
}

#[test]
fn text_output_is_one_path_line_col_message_per_problem() {
    let sq = broken_tree();
    let out = sq.run(&["validate"]);
    out.code(1).no_panic();
    for w in expected() {
        let prefix = format!("{}:{}:", w.file, w.line);
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix) && w.words.iter().all(|word| l.contains(word)))
            .unwrap_or_else(|| {
                panic!(
                    "no line `{prefix}<col>: ...` with {:?}\n{}",
                    w.words,
                    out.describe()
                )
            });
        // path:line:col: message
        let rest = &line[prefix.len()..];
        let (col, msg) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("not `path:line:col: message`: {line}"));
        assert!(col.parse::<u32>().is_ok_and(|c| c >= 1), "column in {line}");
        assert!(!msg.trim().is_empty(), "empty message in {line}");
    }
    // Every line of the report is a `path:line:col: message` line, except the summary.
    for l in out.stdout.lines().filter(|l| !l.trim().is_empty()) {
        let ok = l.contains("problem(s)") || {
            let mut parts = l.splitn(4, ':');
            let (_f, line, col) = (parts.next(), parts.next(), parts.next());
            line.is_some_and(|x| x.parse::<u32>().is_ok())
                && col.is_some_and(|x| x.parse::<u32>().is_ok())
        };
        assert!(
            ok,
            "report line is not `path:line:col: message`: {l:?}\n{}",
            out.describe()
        );
    }
}

#[test]
fn a_file_with_several_problems_reports_each() {
    // A workflow whose template does not compile must still report its unknown action,
    // and a rule whose `when` does not compile must still report its unknown action.
    let sq = Squall::core_only();
    sq.write(
        "workflows/two.yaml",
        "name: two\nchain:\n  - name: a\n    ref: core.nope\n    parameters:\n      x: \"{{ 1 + }}\"\n",
    );
    sq.write(
        "rules/two.yaml",
        "name: two\ntrigger: core.webhook\nwhen: 'trigger.x == '\naction:\n  ref: core.nope\n",
    );
    let out = sq.run(&["validate", "-o", "json"]);
    out.code(1);
    let doc = out.json();
    let problems = doc["problems"].as_array().expect("problems");
    find(problems, &want("workflows/two.yaml", 6, &["compile"]), &out);
    find(
        problems,
        &want("workflows/two.yaml", 4, &["core.nope"]),
        &out,
    );
    find(problems, &want("rules/two.yaml", 3, &["compile"]), &out);
    find(problems, &want("rules/two.yaml", 5, &["core.nope"]), &out);
}

#[test]
fn an_env_reference_that_is_set_validates() {
    let sq = Squall::core_only();
    sq.pack(
        "demo",
        "config_schema:\n  token: {type: string, required: true}\n",
    );
    sq.write("config/demo.yaml", "token: ${env:SQUALL_IT_TOKEN_SET}\n");
    sq.cmd(&["validate"])
        .env("SQUALL_IT_TOKEN_SET", "tok-123456")
        .run()
        .ok();
    let out = sq.run(&["validate"]);
    out.code(1).stdout_has("config/demo.yaml:1:");
}

#[test]
fn a_missing_required_config_is_reported() {
    let sq = Squall::core_only();
    sq.pack(
        "demo",
        "config_schema:\n  region: {type: string, required: true}\n",
    );
    let out = sq.run(&["validate"]);
    out.code(1)
        .stdout_has("config/demo.yaml:1:1:")
        .stdout_has("region");
}

#[test]
fn pack_validate_filters_problems_by_pack() {
    let sq = broken_tree();
    sq.pack("good", "");
    sq.action("good", "fine", "name: fine\nrunner: noop\n");
    sq.run(&["pack", "validate", "good"]).ok();
    let out = sq.run(&["pack", "validate", "demo"]);
    out.code(1).stdout_has("packs/demo/actions/typo.yaml:4:");
    assert!(!out.stdout.contains("workflows/"), "{}", out.describe());
    sq.run(&["pack", "validate", "no_such_pack"]).code(2);
}
