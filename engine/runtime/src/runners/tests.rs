//! The recipe of docs/contributing.md, "Add a runner": a runner that is not built in is one
//! type and one registry line, and actions that name it load and run through the engine.

use super::{ActionOutcome, RunContext, Runner};
use crate::executions::Request;
use async_trait::async_trait;
use serde_json::json;
use squall_core::model::Status;
use squall_core::store::SledStore;
use std::sync::Arc;

/// Upper-cases its `text` parameter; refuses an empty one.
struct ShoutRunner;

#[async_trait]
impl Runner for ShoutRunner {
    fn name(&self) -> &'static str {
        "shout"
    }

    async fn run(&self, ctx: RunContext) -> ActionOutcome {
        let text = ctx.parameters["text"].as_str().unwrap_or_default();
        if text.is_empty() {
            return ActionOutcome::failed("nothing to shout", json!(null));
        }
        ctx.output
            .emit("stdout", format!("{}\n", text.to_uppercase()));
        ActionOutcome::succeeded(json!({"shouted": text.to_uppercase()}))
    }
}

#[tokio::test]
async fn a_runner_added_to_the_registry_runs_actions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("packs/t/actions")).unwrap();
    std::fs::write(root.join("packs/t/pack.yaml"), "name: t\n").unwrap();
    std::fs::write(
        root.join("packs/t/actions/yell.yaml"),
        "name: yell\nrunner: shout\nparameters:\n  text: {type: string, default: \"\"}\n",
    )
    .unwrap();
    // Without the registry line the action is refused, naming the runners there are.
    let refused = squall_core::content::load(root, &crate::builtin())
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("unknown runner `shout`") && refused.contains("noop"),
        "{refused}"
    );
    let mut components = crate::builtin();
    components.runners.add(Arc::new(ShoutRunner));
    let content = Arc::new(squall_core::content::load(root, &components).unwrap());
    let runners = components.runners;
    let store = Arc::new(SledStore::open(&root.join(".squall"), None).unwrap());
    let engine = crate::engine(content, store.clone(), runners);
    let run = |text: &str| Request {
        action: "t.yell".into(),
        parameters: json!({"text": text}),
        ..Default::default()
    };
    let e = engine.execute(run("hello")).await.unwrap();
    assert_eq!(e.status, Status::Succeeded, "{e:?}");
    assert_eq!(e.result, Some(json!({"shouted": "HELLO"})));
    let out = store.output(&e.id, 0).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].1.data, "HELLO\n");
    let e = engine.execute(run("")).await.unwrap();
    assert_eq!(e.status, Status::Failed);
    assert_eq!(e.error.as_deref(), Some("nothing to shout"));
}
