//! A tiny HTTP server for unit tests of the runners that call a service's API: it records
//! every request and answers with what the test's responder says.

use crate::runners::{OutputSink, RunContext};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use squall_core::content::Action;
use squall_core::model::{ActionMeta, Json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `PUT`...
    pub method: String,
    /// Path and query, e.g. `/v1/kv/app?recurse`.
    pub target: String,
    /// Header names in lower case with their values.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Seen {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Responder = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    respond: Box<Responder>,
}

/// The running server.
pub struct Fake {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Fake {
    /// Start a server answering every request with `respond(request)` = (status, body).
    pub async fn start(respond: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Fake {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            respond: Box::new(respond),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { url, shared }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let seen = Seen {
        method: method.to_string(),
        target: uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let (status, reply) = (shared.respond)(&seen);
    shared.seen.lock().expect("lock").push(seen);
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply,
    )
}

/// A context for running `runner` with `params` and the pack configuration `config`.
pub fn context(runner: &str, params: Json, config: Json) -> RunContext {
    let meta: ActionMeta =
        serde_json::from_value(serde_json::json!({"name": "t", "runner": runner}))
            .expect("valid meta");
    RunContext {
        execution_id: "01TESTEXEC".into(),
        action: Arc::new(Action {
            reference: "test.t".into(),
            pack: "test".into(),
            meta,
            file: PathBuf::from("/nonexistent/t.yaml"),
            dir: PathBuf::from("/nonexistent"),
            workflow: None,
        }),
        parameters: params,
        pack_config: config,
        cancel: CancellationToken::new(),
        output: OutputSink::discard(),
        content: Default::default(),
    }
}

/// An address where nothing listens (a port that was just bound and released).
pub async fn closed_address() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}
