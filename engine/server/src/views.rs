//! The JSON documents that describe content objects, shared by `-o json` and the API so
//! both say the same thing.
//!
//! No document shows what a `${env:}`/`${file:}` reference resolved to: a value still at
//! its reference's place is shown as the reference as written (`${env:DB_PASSWORD}`), and
//! any other occurrence of it, or of a known secret, as `********` (see
//! [`squall_core::content::Written`]).

use serde_json::{json, Value as Json};
use squall_core::content::{Action, Content, Pack, Sensor};
use squall_core::rules::Rule;

/// An action's metadata as written in its file.
fn action_meta(c: &Content, a: &Action) -> Json {
    let meta = serde_json::to_value(&a.meta).unwrap_or(Json::Null);
    c.written.as_written(&a.file, meta)
}

/// A rule as written in its file.
fn rule_spec(c: &Content, r: &Rule) -> Json {
    let spec = serde_json::to_value(&r.spec).unwrap_or(Json::Null);
    c.written.as_written(&r.file, spec)
}

/// One line of `action list`.
pub fn action_summary(c: &Content, a: &Action) -> Json {
    let meta = action_meta(c, a);
    json!({"ref": a.reference, "runner": meta["runner"], "description": meta["description"]})
}

/// `action get`.
pub fn action_doc(c: &Content, a: &Action) -> Json {
    json!({"ref": a.reference, "pack": a.pack, "file": a.file, "metadata": action_meta(c, a)})
}

/// One line of `rule list`.
pub fn rule_summary(c: &Content, r: &Rule) -> Json {
    let spec = rule_spec(c, r);
    json!({"ref": r.reference, "trigger": spec["trigger"], "action": spec["action"]["ref"], "enabled": spec["enabled"]})
}

/// `rule get`.
pub fn rule_doc(c: &Content, r: &Rule) -> Json {
    json!({"ref": r.reference, "file": r.file, "rule": rule_spec(c, r)})
}

/// `rule test`: whether `payload` matches rule `r` and the parameters its action would
/// get, with the values of references hidden.
pub fn rule_test(c: &Content, r: &Rule, payload: &Json) -> Json {
    let report = r.test(payload, &test_event(&r.spec.trigger));
    c.written
        .hide(&serde_json::to_value(report).unwrap_or(Json::Null))
}

/// `action list`, optionally of one pack.
pub fn actions(c: &Content, pack: Option<&str>) -> Vec<Json> {
    c.actions
        .values()
        .filter(|a| pack.is_none_or(|p| a.pack == p))
        .map(|a| action_summary(c, a))
        .collect()
}

/// `rule list`.
pub fn rules(c: &Content) -> Vec<Json> {
    c.rules.values().map(|r| rule_summary(c, r)).collect()
}

/// One line of `pack list`, with the number of actions, rules and sensors of the pack.
pub fn pack_summary(c: &Content, p: &Pack) -> Json {
    let meta = serde_json::to_value(&p.meta).unwrap_or(Json::Null);
    let meta = match &p.dir {
        Some(dir) => c
            .written
            .as_written(&c.shown_path(&dir.join("pack.yaml")), meta),
        None => c.written.hide(&meta),
    };
    let name = &p.meta.name;
    let actions = c.actions.values().filter(|a| &a.pack == name).count();
    let rules = c.rules.values().filter(|r| &r.pack == name).count();
    let sensors = c.sensors.values().filter(|s| &s.pack == name).count();
    json!({"name": name, "version": meta["version"], "description": meta["description"],
           "actions": actions, "rules": rules, "sensors": sensors})
}

/// One line of `sensor list` without a server: the configured instance, not running.
pub fn sensor_summary(c: &Content, s: &Sensor) -> Json {
    let state = if s.spec.enabled {
        "not running (no server)"
    } else {
        "disabled"
    };
    let spec = serde_json::to_value(&s.spec).unwrap_or(Json::Null);
    let spec = c.written.as_written(&s.file, spec);
    c.written.hide(
        &json!({"name": s.reference, "type": spec["type"], "trigger": s.trigger,
                           "enabled": s.spec.enabled, "state": state}),
    )
}

/// The states of running sensor instances (`sensor list` through a server), their
/// errors masked.
pub fn sensor_states(c: &Content, states: &Json) -> Json {
    c.written.hide(states)
}

/// The event envelope a rule test sees.
pub fn test_event(trigger: &str) -> Json {
    json!({"id": "test", "type": trigger, "source": "squall rule test", "occurred_at": squall_core::model::now_rfc3339()})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A content root whose action, workflow, rule, sensor, pack and config all use
    /// `${env:}`/`${file:}` values (`short` is a value too short to be a secret).
    fn content() -> (tempfile::TempDir, Content) {
        std::env::set_var("SQUALL_VIEWS_TEST_TOKEN", "views-env-secret-31f7");
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, text: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        w("pw", "views-file-secret-88a0\n");
        w("short", "ab\n");
        let pw = format!("${{file:{}}}", dir.path().join("pw").display());
        let short = format!("${{file:{}}}", dir.path().join("short").display());
        w(
            "packs/t/pack.yaml",
            &format!("name: t\ndescription: {pw}\nconfig_schema:\n  token: {{type: string, secret: true}}\n"),
        );
        w("config/t.yaml", "token: ${env:SQUALL_VIEWS_TEST_TOKEN}\n");
        w(
            "packs/t/actions/a.yaml",
            &format!(
                "name: a\nrunner: http\ndescription: {short}\nhttp:\n  url: http://127.0.0.1:9/\n  headers: {{Authorization: '${{env:SQUALL_VIEWS_TEST_TOKEN}}'}}\nparameters:\n  k: {{type: string, default: '{pw}'}}\n"
            ),
        );
        w(
            "packs/t/actions/s.yaml",
            "name: s\nrunner: shell\ncmd: 'echo hi'\nenv: {TOKEN: '${env:SQUALL_VIEWS_TEST_TOKEN}'}\nparameters:\n  x: {type: string}\n",
        );
        w(
            "workflows/wf.yaml",
            &format!("name: wf\nparameters:\n  p: {{type: string, default: '{pw}'}}\nchain:\n  - name: one\n    ref: t.s\n"),
        );
        w(
            "rules/r.yaml",
            &format!("name: r\ntrigger: core.webhook\ncriteria:\n  trigger.body.token: {{type: equals, pattern: '{pw}'}}\naction:\n  ref: t.s\n  parameters: {{x: '${{env:SQUALL_VIEWS_TEST_TOKEN}}'}}\n"),
        );
        w(
            "sensors/hook.yaml",
            &format!("name: hook\ntype: webhook\nconfig:\n  path: hook\n  secret: '{pw}'\n"),
        );
        let c = squall_core::content::load(dir.path(), &crate::components())
            .unwrap_or_else(|d| panic!("{d}"));
        (dir, c)
    }

    /// Every document about every object.
    fn documents(c: &Content) -> Vec<Json> {
        let mut docs = vec![Json::Array(actions(c, None)), Json::Array(rules(c))];
        docs.extend(c.actions.values().map(|a| action_doc(c, a)));
        docs.extend(c.rules.values().map(|r| rule_doc(c, r)));
        docs.extend(c.packs.values().map(|p| pack_summary(c, p)));
        docs.extend(c.sensors.values().map(|s| sensor_summary(c, s)));
        let payload = json!({"body": {"token": "views-file-secret-88a0"}});
        docs.extend(c.rules.values().map(|r| rule_test(c, r, &payload)));
        docs
    }

    #[test]
    fn no_document_shows_a_resolved_reference() {
        let (_dir, c) = content();
        for doc in documents(&c) {
            let text = doc.to_string();
            for value in ["views-env-secret-31f7", "views-file-secret-88a0", "\"ab\""] {
                assert!(!text.contains(value), "{value} shown in {doc:#}");
            }
        }
    }

    #[test]
    fn references_are_shown_as_written() {
        let (dir, c) = content();
        let pw = format!("${{file:{}}}", dir.path().join("pw").display());
        let a = action_doc(&c, &c.action("t.a").unwrap());
        assert_eq!(
            a["metadata"]["http"]["headers"]["Authorization"],
            "${env:SQUALL_VIEWS_TEST_TOKEN}"
        );
        assert_eq!(a["metadata"]["parameters"]["k"]["default"], json!(pw));
        assert!(a["metadata"]["description"]
            .as_str()
            .unwrap()
            .starts_with("${file:"));
        let s = action_doc(&c, &c.action("t.s").unwrap());
        assert_eq!(
            s["metadata"]["env"]["TOKEN"],
            "${env:SQUALL_VIEWS_TEST_TOKEN}"
        );
        let wf = action_doc(&c, &c.action("site.wf").unwrap());
        assert_eq!(wf["metadata"]["parameters"]["p"]["default"], json!(pw));
        let r = rule_doc(&c, &c.rule("site.r").unwrap());
        assert_eq!(
            r["rule"]["action"]["parameters"]["x"],
            "${env:SQUALL_VIEWS_TEST_TOKEN}"
        );
        // The test report shows the rendered parameters, masked.
        let t = rule_test(
            &c,
            &c.rule("site.r").unwrap(),
            &json!({"body": {"token": "x"}}),
        );
        assert_eq!(t["matched"], false, "{t:#}");
        let p = pack_summary(&c, &c.packs["t"]);
        assert_eq!(p["description"], json!(pw));
    }

    #[test]
    fn loaded_content_keeps_its_secrets_pinned() {
        let (_dir, c) = content();
        assert!(c.secrets.len() >= 2, "{:?}", c.secrets);
        assert_eq!(
            squall_core::secrets::mask_str("views-env-secret-31f7"),
            squall_core::model::MASK
        );
    }
}
