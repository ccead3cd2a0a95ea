//! Test helpers shared by Squall's crates (a dev-dependency only): [`Fake`], the one fake
//! HTTP server of the unit tests — it records every request and answers what the test's
//! responder says, including never — and [`context`], a [`RunContext`] for running a
//! runner directly.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use squall_core::content::Action;
use squall_core::model::{ActionMeta, Json};
use squall_core::runner::{OutputSink, RunContext};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
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
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers (`content-type` defaults to `application/json` when the body parses
    /// as JSON, `text/plain` otherwise).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// Never answer (the connection stays open until the test ends).
    pub hang: bool,
}

impl Reply {
    /// `status` with `body`.
    pub fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            hang: false,
        }
    }

    /// This reply with header `name: value`.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// A request that is never answered.
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::new(200, "")
        }
    }
}

impl From<(u16, String)> for Reply {
    fn from((status, body): (u16, String)) -> Reply {
        Reply::new(status, body)
    }
}

impl From<(u16, &str)> for Reply {
    fn from((status, body): (u16, &str)) -> Reply {
        Reply::new(status, body)
    }
}

type Responder = dyn Fn(&Seen) -> Reply + Send + Sync;

struct Shared {
    seen: Mutex<Vec<Seen>>,
    respond: Box<Responder>,
}

/// The running fake server; it stops with the test's runtime.
pub struct Fake {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shared: Arc<Shared>,
}

impl Fake {
    /// Start a server answering every request with `respond(request)`: a [`Reply`] or a
    /// `(status, body)` pair.
    pub async fn start<R: Into<Reply>>(
        respond: impl Fn(&Seen) -> R + Send + Sync + 'static,
    ) -> Fake {
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            respond: Box::new(move |s| respond(s).into()),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { url, shared }
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        target: uri
            .path_and_query()
            .map(ToString::to_string)
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
    let reply = (shared.respond)(&seen);
    shared
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(seen);
    if reply.hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, reply.body.clone()).into_response();
    let content_type = if serde_json::from_str::<Json>(&reply.body).is_ok() {
        "application/json"
    } else {
        "text/plain"
    };
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            response.headers_mut().insert(k, v);
        }
    }
    response
}

/// A context for running the runner called `runner` directly with `params` and the pack
/// configuration `config`; the action is `test.t` with no settings.
pub fn context(runner: &str, params: Json, config: Json) -> RunContext {
    context_for(
        action(serde_json::json!({"runner": runner})),
        params,
        config,
    )
}

/// The action `test.t` whose metadata is `meta` (`name` is filled in).
pub fn action(mut meta: Json) -> Arc<Action> {
    meta["name"] = Json::String("t".into());
    let meta: ActionMeta = serde_json::from_value(meta).expect("valid action metadata");
    Arc::new(Action {
        reference: "test.t".into(),
        pack: "test".into(),
        meta,
        file: PathBuf::from("/nonexistent/t.yaml"),
        dir: PathBuf::from("/nonexistent"),
        workflow: None,
    })
}

/// A context for running `action` with `params` and the pack configuration `config`.
pub fn context_for(action: Arc<Action>, params: Json, config: Json) -> RunContext {
    RunContext {
        execution_id: "01TESTEXEC".into(),
        action,
        parameters: params,
        pack_config: config,
        cancel: CancellationToken::new(),
        output: OutputSink::discard(),
        content: Arc::default(),
    }
}

/// An address where nothing listens (a port that was just bound and released).
pub async fn closed_address() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = l.local_addr().expect("local address");
    drop(l);
    format!("http://{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_fake_records_requests_and_answers_as_told() {
        let fake = Fake::start(|s: &Seen| match s.target.as_str() {
            "/json" => Reply::new(201, r#"{"ok":true}"#).header("x-one", "1"),
            _ => Reply::new(404, "no such thing"),
        })
        .await;
        let client = reqwest_like(&fake.url, "/json").await;
        assert!(client.starts_with("HTTP/1.1 201"), "{client}");
        assert!(client.contains("x-one: 1"), "{client}");
        assert!(
            client.contains("content-type: application/json"),
            "{client}"
        );
        let other = reqwest_like(&fake.url, "/nope").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        let seen = fake.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(
            seen[0].header("HOST").map(|h| h.starts_with("127.0.0.1")),
            Some(true)
        );
    }

    /// A bare HTTP/1.1 GET (this crate has no HTTP client).
    async fn reqwest_like(base: &str, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = base.trim_start_matches("http://");
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }
}
