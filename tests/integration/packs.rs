//! `squall pack new | validate | list`: a scaffolded pack validates and runs.

use crate::harness::Squall;

#[test]
fn pack_new_scaffolds_a_working_pack() {
    let sq = Squall::new();
    sq.run(&["pack", "new", "demo"]).ok().stdout_has("demo");
    assert!(sq.path("packs/demo/pack.yaml").is_file());
    sq.run(&["pack", "validate", "demo"]).ok();
    sq.run(&["validate"]).ok();
    let out = sq.run(&["run", "demo.hello", "who=x"]);
    out.ok();
    let (out, rec) = sq.exec_json(&["demo.hello", "who=x"]);
    out.ok();
    assert_eq!(rec["status"], "succeeded");
    assert!(
        rec["result"]["stdout"]
            .as_str()
            .unwrap_or("")
            .contains("hello, x"),
        "{rec:#}"
    );
    // The scaffolded workflow runs too.
    let (out, rec) = sq.exec_json(&["demo.greet_twice", "who=ann"]);
    out.ok();
    assert_eq!(rec["children"].as_array().map(Vec::len), Some(2), "{rec:#}");
}

#[test]
fn pack_new_rejects_bad_names_and_existing_packs() {
    let sq = Squall::core_only();
    for bad in ["Demo", "my pack", "a.b", ""] {
        let out = sq.run(&["pack", "new", bad]);
        out.code(2).no_panic();
    }
    assert!(!sq.path("packs/Demo").exists());
    sq.run(&["pack", "new", "demo"]).ok();
    sq.write("packs/demo/actions/hello.sh", "#!/bin/sh\necho mine\n");
    let again = sq.run(&["pack", "new", "demo"]);
    again.code(1).stderr_has("exists");
    assert_eq!(
        sq.read("packs/demo/actions/hello.sh"),
        "#!/bin/sh\necho mine\n",
        "an existing pack is not overwritten"
    );
}

#[test]
fn pack_list_includes_core_and_new_packs() {
    let sq = Squall::new();
    sq.run(&["pack", "new", "demo"]).ok();
    let out = sq.run(&["pack", "list", "-o", "json"]);
    out.ok();
    let doc = out.json();
    let names: Vec<&str> = doc
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for want in ["core", "demo"] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let core = doc
        .as_array()
        .expect("array")
        .iter()
        .find(|p| p["name"] == "core")
        .cloned()
        .unwrap_or_default();
    assert!(core["actions"].as_u64().unwrap_or(0) >= 4, "{core}");
    sq.run(&["pack", "list"])
        .ok()
        .stdout_has("core")
        .stdout_has("demo");
}

#[test]
fn pack_validate_reports_a_broken_pack() {
    let sq = Squall::core_only();
    sq.run(&["pack", "new", "demo"]).ok();
    sq.write(
        "packs/demo/actions/hello.yaml",
        "name: hello\nrunner: shell\nentry_point: hello.sh\nparameters:\n  who: {type: strin}\n",
    );
    let out = sq.run(&["pack", "validate", "demo"]);
    out.code(1).stdout_has("packs/demo/actions/hello.yaml:5:");
    sq.run(&["pack", "validate", "core"]).ok();
}
