//! HTTP plumbing of remote mode: the server's URLs, requests with the bearer token, error
//! messages that name the problem, and a parser for server-sent events.

use crate::cli::local::Failure;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value as Json;
use std::time::Duration;

/// How long a plain (non-streaming) request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request to the server did not give the document asked for.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RemoteError {
    /// The HTTP status, when the server answered.
    pub status: Option<StatusCode>,
    /// What to tell the user (with the transport error's causes, when there is one).
    pub message: String,
    /// The transport error, when the request did not get an answer.
    #[source]
    pub source: Option<reqwest::Error>,
}

/// A client of one Squall server.
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

/// A `--server` that is not an http(s) URL.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    /// Nothing given.
    #[error("--server is empty; pass a URL like http://127.0.0.1:9101")]
    Empty,
    /// Not a URL.
    #[error("--server {server:?} is not a valid URL: {source}")]
    Invalid {
        /// As given (trimmed).
        server: String,
        #[source]
        source: <Url as std::str::FromStr>::Err,
    },
    /// A scheme other than http and https.
    #[error("--server {server:?}: scheme `{scheme}` is not supported; use http:// or https://")]
    Scheme {
        /// As given (trimmed).
        server: String,
        /// Its scheme.
        scheme: String,
    },
}

/// The server's base URL from `--server` (`http://` is assumed when no scheme is given).
pub fn base_url(server: &str) -> Result<Url, ServerUrlError> {
    let s = server.trim();
    if s.is_empty() {
        return Err(ServerUrlError::Empty);
    }
    let full = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let mut url = Url::parse(&full).map_err(|source| ServerUrlError::Invalid {
        server: s.to_string(),
        source,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ServerUrlError::Scheme {
            server: s.to_string(),
            scheme: url.scheme().to_string(),
        });
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// `base` followed by `segments` (each percent-encoded as one path segment) and the query
/// pairs that have a value.
pub fn endpoint(base: &Url, segments: &[&str], query: &[(&str, Option<String>)]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    let pairs: Vec<(&str, &String)> = query
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    if !pairs.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    url
}

/// The message for a non-2xx answer: the server's `{"error": ...}` text, with 401 and 403
/// named for what they mean.
pub fn http_error(status: StatusCode, body: &str, has_token: bool) -> String {
    let parsed: Option<Json> = serde_json::from_str(body).ok();
    let msg = match parsed.as_ref().and_then(|j| j.get("error")) {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None if body.trim().is_empty() => status
            .canonical_reason()
            .unwrap_or("no message")
            .to_string(),
        None => body.trim().chars().take(300).collect(),
    };
    let code = status.as_u16();
    match code {
        401 if has_token => format!("the server refused the token (401): {msg}"),
        401 => format!("the server needs a token (401): pass --token or set SQUALL_TOKEN: {msg}"),
        403 => format!("the token's role does not allow this (403): {msg}"),
        _ => format!("{msg} (HTTP {code})"),
    }
}

impl Client {
    /// A client of the server at `server`, sending `token` as a bearer token.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, Failure> {
        let base = base_url(server).map_err(|e| Failure::Usage(e.to_string()))?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("squall-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Failed(format!("cannot set up the HTTP client: {e}")))?;
        let token = token.filter(|t| !t.trim().is_empty());
        Ok(Client { base, token, http })
    }

    /// Whether a token is sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    fn transport(&self, e: reqwest::Error) -> RemoteError {
        let what = if e.is_connect() {
            "cannot reach the Squall server at"
        } else if e.is_timeout() {
            "no answer in time from the Squall server at"
        } else {
            "the request to the Squall server failed at"
        };
        RemoteError {
            status: None,
            message: format!("{what} {}: {}", self.base, squall_core::error_chain(&e)),
            source: Some(e),
        }
    }

    fn builder(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let rb = self.http.request(method, url);
        match &self.token {
            Some(t) => rb.bearer_auth(t.trim()),
            None => rb,
        }
    }

    /// Send a request; any status is returned with the body as text.
    pub async fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<String>)],
        body: Option<&Json>,
    ) -> Result<(StatusCode, String), RemoteError> {
        let url = endpoint(&self.base, segments, query);
        let mut rb = self.builder(method, url).timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        // A listing that left out unreadable records says so (see `api::listed`).
        if let Some(w) = resp
            .headers()
            .get("warning")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("199 squall "))
        {
            eprintln!("warning: {}", w.trim_matches('"'));
        }
        let text = resp.text().await.map_err(|e| self.transport(e))?;
        Ok((status, text))
    }

    /// Send a request and return the JSON document of a 2xx answer.
    pub async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, Option<String>)],
        body: Option<&Json>,
    ) -> Result<Json, RemoteError> {
        let (status, text) = self.request(method, segments, query, body).await?;
        if !status.is_success() {
            return Err(RemoteError {
                status: Some(status),
                source: None,
                message: http_error(status, &text, self.token.is_some()),
            });
        }
        serde_json::from_str(&text).map_err(|e| RemoteError {
            status: Some(status),
            source: None,
            message: format!(
                "the server at {} answered {status} with a body that is not JSON ({e}): {}",
                self.base,
                text.chars().take(200).collect::<String>()
            ),
        })
    }

    /// `GET` a JSON document.
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
    ) -> Result<Json, RemoteError> {
        self.send(Method::GET, segments, query, None).await
    }

    /// Open a server-sent-events stream (no overall timeout).
    pub async fn stream(&self, segments: &[&str]) -> Result<reqwest::Response, RemoteError> {
        let url = endpoint(&self.base, segments, &[]);
        let resp = self
            .builder(Method::GET, url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(RemoteError {
                status: Some(status),
                source: None,
                message: http_error(status, &text, self.token.is_some()),
            });
        }
        Ok(resp)
    }

    /// The next piece of a streaming answer (`None` at its end).
    pub async fn chunk(
        &self,
        resp: &mut reqwest::Response,
    ) -> Result<Option<Vec<u8>>, RemoteError> {
        match resp.chunk().await {
            Ok(c) => Ok(c.map(|b| b.to_vec())),
            Err(e) => Err(self.transport(e)),
        }
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when none was given).
    pub event: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// An incremental parser of a `text/event-stream` body: feed it bytes as they arrive and
/// it returns the events completed so far. Comments (keep-alives) are skipped; lines may
/// end in LF, CRLF or CR, split anywhere between chunks.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    event: String,
    data: Option<String>,
}

impl SseParser {
    /// Consume `bytes`; return the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = String::from_utf8_lossy(&std::mem::take(&mut self.line)).into_owned();
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            if let Some(data) = self.data.take() {
                let event = if event.is_empty() {
                    "message".to_string()
                } else {
                    event
                };
                out.push(SseEvent { event, data });
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            _ => {}
        }
    }
}
