//! Tests of the `http` runner.
use super::*;
use squall_core::model::{ActionMeta, Status};
use squall_core::runner::OutputSink;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A request as the test server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut tmp).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    Some(Seen {
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn response(status: &str, content_type: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A one-request-per-connection HTTP/1.1 server on a random loopback port; `respond`
/// gives the raw response (None: never answer). Returns its base URL and the requests.
async fn server(respond: fn(&Seen) -> Option<String>) -> (String, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let Some(seen) = read_request(&mut sock).await else {
                    return;
                };
                let reply = respond(&seen);
                let _ = tx.send(seen);
                match reply {
                    Some(r) => {
                        let _ = sock.write_all(r.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(600)).await,
                }
            });
        }
    });
    (format!("http://{addr}"), rx)
}

fn action(http: Json) -> Arc<Action> {
    let meta: ActionMeta =
        serde_json::from_value(json!({"name": "t", "runner": "http", "http": http}))
            .expect("valid meta");
    Arc::new(Action {
        reference: "test.t".into(),
        pack: "test".into(),
        meta,
        file: PathBuf::from("/nonexistent/t.yaml"),
        dir: PathBuf::from("/nonexistent"),
        workflow: None,
    })
}

fn context(action: Arc<Action>, params: Json) -> RunContext {
    RunContext {
        execution_id: "01TESTEXEC".into(),
        action,
        parameters: params,
        pack_config: json!({"region": "eu-west-1"}),
        cancel: CancellationToken::new(),
        output: OutputSink::discard(),
        content: Default::default(),
    }
}

async fn run(http: Json, params: Json) -> ActionOutcome {
    let ctx = context(action(http), params);
    tokio::time::timeout(Duration::from_secs(30), HttpRunner::new().run(ctx))
        .await
        .expect("runner hung")
}

#[tokio::test]
async fn get_parses_json_and_returns_headers() {
    let (base, mut seen) = server(|_| {
        Some(response(
            "200 OK",
            "application/json",
            "X-Thing: a\r\n",
            r#"{"ok": true, "n": 1}"#,
        ))
    })
    .await;
    let o = run(json!({"url": format!("{base}/status")}), json!({})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(o.result["status"], 200);
    assert_eq!(o.result["body"], json!({"ok": true, "n": 1}));
    assert_eq!(o.result["headers"]["x-thing"], "a");
    let req = seen.recv().await.expect("a request");
    assert_eq!(req.method, "GET");
    assert_eq!(req.target, "/status");
}

#[tokio::test]
async fn url_headers_and_json_are_templates() {
    let (base, mut seen) =
        server(|_| Some(response("201 Created", "text/plain", "", "made it"))).await;
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
    let req = seen.recv().await.expect("a request");
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
    let (base, mut seen) = server(|_| Some(response("200 OK", "text/plain", "", "ok"))).await;
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
    let req = seen.recv().await.expect("a request");
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
    let (base, mut seen) = server(|_| Some(response("200 OK", "text/plain", "", ""))).await;
    let http = json!({"method": "PUT", "url": format!("{base}/raw"), "body": "hello {{ name }}"});
    let o = run(http, json!({"name": "world"})).await;
    assert_eq!(o.status, Status::Succeeded, "{o:?}");
    assert_eq!(o.result["body"], "");
    let req = seen.recv().await.expect("a request");
    assert_eq!(req.method, "PUT");
    assert_eq!(req.body, "hello world");
}

#[tokio::test]
async fn status_outside_expect_status_fails_with_the_response() {
    let (base, _seen) = server(|_| Some(response("404 Not Found", "text/plain", "", "nope"))).await;
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
    let (base, _seen) = server(|_| Some(response("200 OK", "text/plain", "", "x"))).await;
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let o = run(json!({"url": format!("http://{addr}/")}), json!({})).await;
    assert_eq!(o.status, Status::Failed);
    let err = o.error.unwrap_or_default();
    assert!(err.contains("could not connect"), "{err}");
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn timeout_and_cancel_stop_a_hanging_request() {
    let (base, _seen) = server(|_| None).await;
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
