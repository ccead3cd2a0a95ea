//! Tests of the chain interpreter that need an engine and a store.

use crate::content;
use crate::executions::{Engine, Request};
use crate::model::Status;
use crate::runners::Registry;
use crate::store::Store;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_children_keep_their_final_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("packs/t/actions")).expect("mkdir");
    std::fs::create_dir_all(root.join("workflows")).expect("mkdir");
    std::fs::write(root.join("packs/t/pack.yaml"), "name: t\n").expect("write");
    std::fs::write(
        root.join("packs/t/actions/n.yaml"),
        "name: n\nrunner: noop\nparameters:\n  v: {}\n",
    )
    .expect("write");
    let items: Vec<u32> = (0..40).collect();
    std::fs::write(
        root.join("workflows/w.yaml"),
        format!("name: w\nchain:\n  - name: each\n    ref: t.n\n    with: {{items: {items:?}, concurrency: 4}}\n    parameters: {{v: \"{{{{ item }}}}\"}}\n"),
    )
    .expect("write");
    let content = Arc::new(content::load(root).expect("valid content"));
    let store = Arc::new(Store::open(&root.join(".squall"), None).expect("store"));
    let engine = Engine::new(content, store.clone(), Registry::builtin());
    let wf = engine
        .execute(Request {
            action: "site.w".into(),
            parameters: serde_json::json!({}),
            ..Default::default()
        })
        .await
        .expect("workflow ran");
    assert_eq!(wf.status, Status::Succeeded);
    assert_eq!(wf.children.len(), 40);
    for c in &wf.children {
        let rec = store
            .get_execution(&c.id)
            .expect("store")
            .expect("child record");
        assert_eq!(
            rec.status,
            Status::Succeeded,
            "child {} left {:?}",
            c.id,
            rec.status
        );
    }
}
