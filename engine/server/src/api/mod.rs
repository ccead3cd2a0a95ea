//! The HTTP API (docs/api.md): JSON in and out under `/api/v1`, bearer-token auth with
//! roles, an audit entry for every mutating request (refused ones too), JSON errors, Prometheus `/metrics`, server-sent
//! events for live output. The documents returned are the ones `-o json` prints.

pub mod auth;
pub mod edge;
mod handlers;
mod sse;

use crate::service::Service;
use auth::{Caller, Role};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

/// Largest request body accepted (bigger ones get 413).
pub const MAX_BODY: usize = 1024 * 1024;

/// An API error: a status code and a message, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    /// 400 with a message.
    pub fn bad(msg: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
    /// 404 with a message.
    pub fn not_found(msg: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::NOT_FOUND, msg.to_string())
    }
    /// 500 with a message.
    pub fn internal(msg: impl std::fmt::Display) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error": squall_core::secrets::mask_str(&self.1)})),
        )
            .into_response()
    }
}

impl From<squall_runtime::executions::EngineError> for ApiError {
    fn from(e: squall_runtime::executions::EngineError) -> Self {
        use squall_runtime::executions::EngineError as E;
        let code = match &e {
            E::UnknownAction(_) | E::UnknownExecution(_) => StatusCode::NOT_FOUND,
            E::Disabled(_) | E::Params { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::TooDeep { .. } => StatusCode::BAD_REQUEST,
            E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<squall_core::store::StoreError> for ApiError {
    fn from(e: squall_core::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// Header telling how many stored records a listing left out because they cannot be read.
pub const SKIPPED_HEADER: &str = "x-squall-skipped";

/// A listing's response: `body`, and when records were skipped, [`SKIPPED_HEADER`] with
/// their count and a `warning` header naming them (the body stays a plain array).
pub(crate) fn listed(body: impl IntoResponse, skipped: &[String]) -> Response {
    let mut resp = body.into_response();
    if let Some(w) = squall_core::store::skipped_warning(skipped) {
        let h = resp.headers_mut();
        h.insert(SKIPPED_HEADER, skipped.len().into());
        let text = format!("199 squall \"{}\"", w.replace(['"', '\\'], "'"));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            h.insert(axum::http::header::WARNING, v);
        }
    }
    resp
}

/// Shared state of the handlers.
pub type AppState = Arc<Service>;

/// The router with every route, auth and limits.
pub fn router(service: Arc<Service>) -> Router {
    let viewer = Router::new()
        .route("/api/v1/status", get(handlers::status))
        .route("/api/v1/actions", get(handlers::list_actions))
        .route("/api/v1/actions/{reference}", get(handlers::get_action))
        .route("/api/v1/executions", get(handlers::list_executions))
        .route("/api/v1/executions/{id}", get(handlers::get_execution))
        .route("/api/v1/executions/{id}/output", get(sse::output))
        .route("/api/v1/rules", get(handlers::list_rules))
        .route("/api/v1/rules/{reference}", get(handlers::get_rule))
        .route("/api/v1/rules/{reference}/test", post(handlers::test_rule))
        .route("/api/v1/trigger-instances", get(handlers::list_triggers))
        .route("/api/v1/trigger-instances/{id}", get(handlers::get_trigger))
        .route("/api/v1/sensors", get(handlers::list_sensors))
        .route("/metrics", get(handlers::metrics))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_viewer,
        ));
    let operator = Router::new()
        .route("/api/v1/executions", post(handlers::create_execution))
        .route(
            "/api/v1/executions/{id}",
            delete(handlers::cancel_execution),
        )
        .route(
            "/api/v1/executions/{id}/rerun",
            post(handlers::rerun_execution),
        )
        .route("/api/v1/triggers/{trigger}", post(handlers::emit_trigger))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_operator,
        ));
    let admin = Router::new()
        .route("/api/v1/reload", post(handlers::reload))
        .route("/api/v1/audit", get(handlers::list_audit))
        .route_layer(middleware::from_fn_with_state(
            service.clone(),
            require_admin,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        // Webhooks authenticate themselves (operator token or HMAC signature).
        .route("/api/v1/webhooks/{*path}", post(handlers::webhook))
        .merge(viewer)
        .merge(operator)
        .merge(admin)
        .fallback(|| async { ApiError::not_found("no such endpoint; see docs/api.md") })
        .layer(middleware::from_fn(edge::json_errors))
        .layer(middleware::from_fn_with_state(
            service.clone(),
            edge::audit_mutations,
        ))
        .layer(middleware::from_fn_with_state(
            service.clone(),
            count_requests,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(service)
}

async fn count_requests(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .uri()
        .path()
        .split('/')
        .take(4)
        .collect::<Vec<_>>()
        .join("/");
    let resp = next.run(req).await;
    s.metrics.http_request(&route, resp.status().as_u16());
    resp
}

/// The caller of a request, or the 401/403 that refuses it.
pub fn authorize(s: &Service, headers: &HeaderMap, need: Role) -> Result<Caller, ApiError> {
    let header = headers.get("authorization").and_then(|v| v.to_str().ok());
    let caller = s.tokens.check(header).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or invalid token: send `Authorization: Bearer <token>`".into(),
        )
    })?;
    if caller.role < need {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!(
                "token `{}` has role {:?}; this needs {:?}",
                caller.name, caller.role, need
            )
            .to_lowercase(),
        ));
    }
    Ok(caller)
}

async fn gate(s: AppState, mut req: Request, next: Next, need: Role) -> Response {
    match authorize(&s, req.headers(), need) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn require_viewer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    gate(s, req, next, Role::Viewer).await
}

async fn require_operator(State(s): State<AppState>, req: Request, next: Next) -> Response {
    gate(s, req, next, Role::Operator).await
}

async fn require_admin(State(s): State<AppState>, req: Request, next: Next) -> Response {
    gate(s, req, next, Role::Admin).await
}
