//! The shipped packs (`packs/{kubernetes,aws,consul,vault}`) declare the parameters of
//! their actions too: they must agree with the parameter structs of the runners (whose
//! schemas `reference()` returns), so that a default lives once in effect.

use super::Registry;
use serde_json::json;
use squall_core::model::Json;
use std::path::PathBuf;

/// The packs whose actions use this crate's runners.
const PACKS: [&str; 4] = ["kubernetes", "aws", "consul", "vault"];

/// Whether two defaults are the same value (`120` and `120.0` are).
fn same(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

/// What the action file `action` (as JSON) declares that disagrees with the parameter
/// schema `schema` of its runner.
fn disagreements(action: &Json, schema: &Json) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let declared = action
        .get("parameters")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let props = schema
        .get("properties")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let closed = schema.get("additionalProperties") == Some(&json!(false));
    for (name, decl) in declared {
        let Some(prop) = props.get(name) else {
            if closed {
                out.push(format!("declares `{name}`, which the runner does not take"));
            }
            continue;
        };
        if let Some(d) = decl.get("default") {
            match prop.get("default") {
                Some(own) if same(d, own) => {}
                own => out.push(format!(
                    "`{name}` defaults to {d} in the pack, {} in the runner",
                    own.map_or("nothing".to_string(), Json::to_string)
                )),
            }
        }
    }
    let required = schema
        .get("required")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str);
    for name in required {
        let decl = declared.get(name);
        let ok = decl
            .is_some_and(|d| d.get("required") == Some(&json!(true)) || d.get("default").is_some());
        if !ok {
            out.push(format!(
                "the runner requires `{name}`; the pack must declare it required or give a default"
            ));
        }
    }
    out
}

#[test]
fn the_shipped_packs_agree_with_the_runners_parameter_structs() {
    let mut registry = Registry::empty();
    super::add_to(&mut registry);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../packs");
    let mut checked = 0;
    let mut problems = Vec::new();
    for pack in PACKS {
        let dir = root.join(pack).join("actions");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a readable action file");
            let action: Json =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let runner = action["runner"].as_str().unwrap_or_default();
            let Some(r) = registry.get(runner) else {
                problems.push(format!("{}: unknown runner `{runner}`", path.display()));
                continue;
            };
            let Some(schema) = r.reference().parameters else {
                problems.push(format!(
                    "{}: `{runner}` documents no parameters",
                    path.display()
                ));
                continue;
            };
            for p in disagreements(&action, schema.as_value()) {
                problems.push(format!("{} ({runner}): {p}", path.display()));
            }
            checked += 1;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every action file of the four packs (10 + 6 + 3 + 4) was compared.
    assert_eq!(checked, 23);
}

#[test]
fn a_disagreement_is_found() {
    let schema = json!({
        "properties": {
            "name": {"type": "string"},
            "timeout": {"type": "number", "default": 120.0},
            "wait": {"type": "boolean", "default": false}
        },
        "required": ["name"],
        "additionalProperties": false
    });
    let agreeing = json!({"parameters": {
        "name": {"type": "string", "required": true},
        "timeout": {"type": "number", "default": 120},
        "wait": {"type": "boolean"}
    }});
    assert!(disagreements(&agreeing, &schema).is_empty());
    let disagreeing = json!({"parameters": {
        "name": {"type": "string"},
        "timeout": {"type": "number", "default": 60},
        "wait": {"type": "boolean", "default": true},
        "extra": {"type": "string"}
    }});
    let found = disagreements(&disagreeing, &schema);
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found.iter().any(|p| p.contains("`timeout` defaults to 60")),
        "{found:#?}"
    );
    assert!(
        found.iter().any(|p| p.contains("requires `name`")),
        "{found:#?}"
    );
    assert!(found.iter().any(|p| p.contains("`extra`")), "{found:#?}");
}
