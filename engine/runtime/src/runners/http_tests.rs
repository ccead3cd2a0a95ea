//! Tests of the `http` runner, against the fake server of `squall-testkit`.
use super::*;
use squall_core::model::{ActionMeta, Status};
use squall_testkit::{closed_address, context_for, Fake, Reply, Seen};
use std::path::PathBuf;
use std::sync::Arc;

fn action(http: Json) -> Arc<Action> {
    squall_testkit::action(json!({"runner": "http", "http": http}))
}

fn context(action: Arc<Action>, params: Json) -> RunContext {
    context_for(action, params, json!({"region": "eu-west-1"}))
}

/// The one request `fake` received.
fn the_request(fake: &Fake) -> Seen {
    let seen = fake.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    seen.into_iter().next().expect("a request")
}

async fn run(http: Json, params: Json) -> ActionOutcome {
    let ctx = context(action(http), params);
    tokio::time::timeout(Duration::from_secs(30), HttpRunner::new().run(ctx))
        .await
        .expect("runner hung")
}

#[tokio::test]
async fn get_parses_json_and_returns_headers() {
    let fake =
        Fake::start(|_: &Seen| Reply::new(200, r#"{"ok": true, "n": 1}"#).header("x-thing", "a"))
            .await;
    let base = fake.url.clone();
    let o = run(json!({"url": format!("{base}/status")}), json!({})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(o.result["status"], 200);
    assert_eq!(o.result["body"], json!({"ok": true, "n": 1}));
    assert_eq!(o.result["headers"]["x-thing"], "a");
    let req = the_request(&fake);
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/status");
}

#[tokio::test]
async fn url_headers_and_json_are_templates() {
    let fake = Fake::start(|_: &Seen| (201, "made it")).await;
    let base = fake.url.clone();
    let http = json!({
        "method": "post",
        "url": "{{ base }}/items/{{ id }}?region={{ config.region }}&q={{ params.q }}",
        "headers": {"Authorization": "Bearer {{ token }}", "X-Count": "{{ id }}"},
        "json": {"name": "{{ name }}", "size": "{{ size }}", "label": "n-{{ size }}", "fixed": [1]},
    });
    let params = json!({"base": base, "id": 7, "q": "x", "token": "abc", "name": "db", "size": 3});
    let o = run(http, params).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(o.result["status"], 201);
    assert_eq!(o.result["body"], "made it");
    let req = the_request(&fake);
    assert_eq!(req.method, "POST");
    assert_eq!(req.target, "/items/7?region=eu-west-1&q=x");
    assert_eq!(req.header("authorization"), Some("Bearer abc"));
    assert_eq!(req.header("x-count"), Some("7"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    let body: Json = serde_json::from_str(&req.body).expect("JSON body");
    assert_eq!(
        body,
        json!({"name": "db", "size": 3, "label": "n-3", "fixed": [1]})
    );
}

#[tokio::test]
async fn a_declared_parameter_not_given_is_null_and_a_null_json_sends_no_body() {
    let fake = Fake::start(|_: &Seen| (200, "ok")).await;
    let base = fake.url.clone();
    let meta: ActionMeta = serde_json::from_value(json!({
        "name": "t",
        "runner": "http",
        "http": {"url": "{{ url }}", "json": "{{ body }}"},
        "parameters": {"url": {"type": "string"}, "body": {"default": null}},
    }))
    .expect("valid meta");
    let action = Arc::new(Action {
        reference: "test.t".into(),
        pack: "test".into(),
        meta,
        file: PathBuf::from("/nonexistent/t.yaml"),
        dir: PathBuf::from("/nonexistent"),
        workflow: None,
    });
    let ctx = context(action, json!({"url": format!("{base}/p")}));
    let o = HttpRunner::new().run(ctx).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    let req = the_request(&fake);
    assert_eq!(req.body, "");
    assert!(
        !req.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type")),
        "{req:?}"
    );
}

#[tokio::test]
async fn text_body_is_a_template() {
    let fake = Fake::start(|_: &Seen| (200, "")).await;
    let base = fake.url.clone();
    let http = json!({"method": "PUT", "url": format!("{base}/raw"), "body": "hello {{ name }}"});
    let o = run(http, json!({"name": "world"})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(o.result["body"], "");
    let req = the_request(&fake);
    assert_eq!(req.method, "PUT");
    assert_eq!(req.body, "hello world");
}

#[tokio::test]
async fn status_outside_expect_status_fails_with_the_response() {
    let fake = Fake::start(|_: &Seen| (404, "nope")).await;
    let base = fake.url.clone();
    let url = format!("{base}/missing");
    let o = run(json!({"url": url}), json!({})).await;
    assert_eq!(o.status, Status::Failed);
    assert_eq!(
        o.error.as_deref(),
        Some(format!("HTTP 404 Not Found from GET {url}").as_str())
    );
    assert_eq!(o.result["status"], 404);
    assert_eq!(o.result["body"], "nope");

    let o = run(json!({"url": url, "expect_status": [404]}), json!({})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    let fake = Fake::start(|_: &Seen| (200, "x")).await;
    let base = fake.url.clone();
    let o = run(
        json!({"url": format!("{base}/"), "expect_status": [204]}),
        json!({}),
    )
    .await;
    assert_eq!(o.status, Status::Failed);
    assert!(o
        .error
        .unwrap_or_default()
        .starts_with("HTTP 200 OK from GET"));
}

#[tokio::test]
async fn connection_refused_fails_clearly() {
    let base = closed_address().await;
    let addr = base.trim_start_matches("http://").to_string();
    let o = run(json!({"url": format!("{base}/")}), json!({})).await;
    assert_eq!(o.status, Status::Failed);
    let err = o.error.unwrap_or_default();
    assert!(err.contains("could not connect"), "{err}");
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn timeout_and_cancel_stop_a_hanging_request() {
    let fake = Fake::start(|_: &Seen| Reply::hang()).await;
    let base = fake.url.clone();
    let o = run(
        json!({"url": format!("{base}/slow"), "timeout": 0.3}),
        json!({}),
    )
    .await;
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.unwrap_or_default().contains("timed out"));

    let ctx = context(action(json!({"url": format!("{base}/slow")})), json!({}));
    let cancel = ctx.cancel.clone();
    let task = tokio::spawn(async move { HttpRunner::new().run(ctx).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let o = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("cancel hung")
        .expect("join");
    assert_eq!(o.status, Status::Canceled);
}

#[tokio::test]
async fn bad_rendered_url_fails_naming_the_field() {
    let o = run(json!({"url": "{{ u }}"}), json!({"u": 5})).await;
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.unwrap_or_default().starts_with("http.url:"));
    let o = run(json!({"url": "{{ missing_var }}"}), json!({})).await;
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.unwrap_or_default().starts_with("http.url:"));
}

#[test]
fn validate_names_the_fields() {
    let fields = |http: Json| -> Vec<String> {
        HttpRunner::new()
            .validate(&action(http))
            .into_iter()
            .map(|(f, _)| f)
            .collect()
    };
    let mut no_block = action(json!({"url": "http://x/"}));
    if let Some(a) = Arc::get_mut(&mut no_block) {
        a.meta.settings.shift_remove("http");
    }
    let p = HttpRunner::new().validate(&no_block);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].0, "http");
    assert!(fields(json!({"url": "https://example.com/{{ id }}"})).is_empty());
    assert_eq!(fields(json!({"url": "not a url"})), ["http.url"]);
    assert_eq!(fields(json!({"url": "http://x/{{ 1 + }}"})), ["http.url"]);
    assert_eq!(
        fields(json!({"url": "http://x/", "method": "FETCH"})),
        ["http.method"]
    );
    assert_eq!(
        fields(json!({"url": "http://x/", "headers": {"A": "{{ ( }}"}})),
        ["http.headers.A"]
    );
    assert_eq!(
        fields(json!({"url": "http://x/", "headers": {"bad name": "v"}})),
        ["http.headers.bad name"]
    );
    assert_eq!(
        fields(json!({"url": "http://x/", "json": {"a": "{{ ]] }}"}})),
        ["http.json"]
    );
    assert_eq!(
        fields(json!({"url": "http://x/", "json": {}, "body": "b"})),
        ["http.json"]
    );
    assert_eq!(
        fields(json!({"url": "http://x/", "timeout": -1})),
        ["http.timeout"]
    );
    assert_eq!(
        fields(json!({"url": "http://x/", "expect_status": [42]})),
        ["http.expect_status"]
    );
}
