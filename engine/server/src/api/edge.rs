//! What every request passes through at the edge of the API:
//!
//! - [`audit_mutations`]: a mutating request (`POST`, `PUT`, `PATCH`, `DELETE` under
//!   `/api/v1`) runs in a task of its own, so a client that goes away cannot cut its work
//!   short (a trigger stored but never queued, an execution submitted but not audited), and
//!   it always leaves an audit entry: the handler's own (see [`audit`]), or — when it was
//!   refused before a handler wrote one (401, 403, 404, 405, 409, 413, a bad body …) or the
//!   handler writes none — one written here with who, what, target and outcome.
//! - [`json_errors`]: every error response is `{"error": "…"}`, also the ones axum makes
//!   itself (405 method not allowed, 413 body too large, a query string that does not parse).

use super::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The largest error body read back to turn it into JSON or to quote it in the audit trail.
const MAX_ERROR_BODY: usize = 64 * 1024;

tokio::task_local! {
    /// Set once the handler of the current mutating request wrote its audit entry.
    static AUDITED: Arc<AtomicBool>;
}

/// Write an audit entry for the current request (what handlers call instead of
/// `Audit::record` directly, so [`audit_mutations`] knows not to add a second one).
pub async fn audit(
    s: &AppState,
    who: &str,
    what: &str,
    target: &str,
    details: Value,
    outcome: &str,
) {
    let _ = AUDITED.try_with(|flag| flag.store(true, Ordering::SeqCst));
    s.audit.record(who, what, target, details, outcome).await;
}

/// A draft of the current request's audit entry, to be written by the change it records
/// (a trigger accepted: see [`squall_runtime::bus::Bus::accept`]). The request counts as audited:
/// when the change fails, the handler audits the refusal with [`audit`].
pub fn draft(
    s: &AppState,
    who: &str,
    what: &str,
    target: &str,
    details: Value,
) -> squall_core::audit::Draft {
    let _ = AUDITED.try_with(|flag| flag.store(true, Ordering::SeqCst));
    s.audit.draft(who, what, target, details)
}

/// Whether `method` on `path` changes something (and so is audited).
fn mutating(method: &Method, path: &str) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) && (path == "/api/v1" || path.starts_with("/api/v1/"))
}

/// The audit `what` and `target` of a request, named like the handlers' own entries.
fn describe(method: &Method, path: &str) -> (String, String) {
    let rest = path.trim_start_matches("/api/v1").trim_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let named = match (method.as_str(), segs.as_slice()) {
        ("POST", ["executions"]) => Some(("execution.create", rest.to_string())),
        ("DELETE", ["executions", id]) => Some(("execution.cancel", id.to_string())),
        ("POST", ["executions", id, "rerun"]) => Some(("execution.rerun", id.to_string())),
        ("POST", ["triggers", t]) => Some(("trigger.emit", t.to_string())),
        ("POST", ["webhooks", ..]) => Some(("webhook", segs[1..].join("/"))),
        ("POST", ["reload"]) => Some(("content.reload", "content".to_string())),
        ("POST", ["rules", r, "test"]) => Some(("rule.test", r.to_string())),
        _ => None,
    };
    match named {
        Some((what, target)) => (what.to_string(), target),
        None => (
            format!("http.{}", method.as_str().to_ascii_lowercase()),
            path.to_string(),
        ),
    }
}

/// Middleware: run mutating requests to completion whatever the client does, and audit
/// each one that its handler did not audit.
pub async fn audit_mutations(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if !mutating(&method, &path) {
        return next.run(req).await;
    }
    let who = s
        .tokens
        .check(
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        )
        .map_or_else(|| "anonymous".to_string(), |c| c.name);
    let flag = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(AUDITED.scope(flag.clone(), async move {
        let resp = next.run(req).await;
        if flag.load(Ordering::SeqCst) {
            return resp;
        }
        let status = resp.status();
        let (resp, outcome) = if status.is_client_error() || status.is_server_error() {
            let (resp, message) = error_message(resp).await;
            (resp, format!("refused ({}): {message}", status.as_u16()))
        } else {
            (resp, format!("ok ({})", status.as_u16()))
        };
        let (what, target) = describe(&method, &path);
        s.audit
            .record(
                &who,
                &what,
                &target,
                json!({"method": method.as_str(), "path": path, "status": status.as_u16()}),
                &outcome,
            )
            .await;
        resp
    }));
    match task.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, "request handler failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request failed inside the server (see its log)",
            )
        }
    }
}

/// The `error` of a JSON error response (or its text), and the response rebuilt.
async fn error_message(resp: Response) -> (Response, String) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
    (Response::from_parts(parts, Body::from(bytes)), message)
}

fn json_response(status: StatusCode, message: &str) -> Response {
    let mut resp = Response::new(Body::from(
        json!({"error": squall_core::secrets::mask_str(message)}).to_string(),
    ));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Middleware: turn every error response that is not JSON into `{"error": "…"}`, keeping
/// its status and headers (`Retry-After`).
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = match status {
        // axum adds the `Allow` header after this layer; the message points to it.
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "method {method} is not allowed on {path}; the Allow header lists the methods it takes (see docs/api.md)"
        ),
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "request body is larger than {} bytes (1 MiB); send a smaller body",
            super::MAX_BODY
        ),
        _ if text.is_empty() => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
        _ => text,
    };
    let body = json!({"error": squall_core::secrets::mask_str(&message)}).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_like_the_handlers_entries() {
        let d = |m: Method, p: &str| describe(&m, p);
        assert_eq!(
            d(Method::POST, "/api/v1/executions"),
            ("execution.create".into(), "executions".into())
        );
        assert_eq!(
            d(Method::DELETE, "/api/v1/executions/01AB"),
            ("execution.cancel".into(), "01AB".into())
        );
        assert_eq!(
            d(Method::POST, "/api/v1/executions/01AB/rerun"),
            ("execution.rerun".into(), "01AB".into())
        );
        assert_eq!(
            d(Method::POST, "/api/v1/webhooks/ops/alerts"),
            ("webhook".into(), "ops/alerts".into())
        );
        assert_eq!(
            d(Method::POST, "/api/v1/triggers/a.b"),
            ("trigger.emit".into(), "a.b".into())
        );
        assert_eq!(
            d(Method::PUT, "/api/v1/rules/x"),
            ("http.put".into(), "/api/v1/rules/x".into())
        );
        assert!(mutating(&Method::PATCH, "/api/v1/anything"));
        assert!(!mutating(&Method::GET, "/api/v1/executions"));
        assert!(!mutating(&Method::POST, "/healthz"));
        assert!(!mutating(&Method::POST, "/api/v10/x"));
    }
}
