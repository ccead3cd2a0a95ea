//! Request handlers. Thin: each calls the engine, the store or the service and returns the
//! same JSON document the CLI prints with `-o json`.

use super::auth::{Caller, Role};
use super::{authorize, ApiError, AppState};
use crate::views;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as J;
use serde::Deserialize;
use serde_json::json;
use squall_core::model::{Execution, Json, Status};
use squall_core::store::ListFilter;
use squall_runtime::executions::Request as ExecRequest;

type Res<T> = Result<T, ApiError>;

/// Parse a JSON request body with a message that says what is wrong.
fn parse_body(body: &Bytes) -> Res<Json> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad(format!("request body is not valid JSON: {e}")))
}

pub async fn status(State(s): State<AppState>) -> J<Json> {
    J(views::sensor_states(&s.engine.content(), &s.status()))
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics_text(),
    )
        .into_response()
}

#[derive(Deserialize)]
pub struct ActionQuery {
    pack: Option<String>,
}

pub async fn list_actions(State(s): State<AppState>, Query(q): Query<ActionQuery>) -> J<Json> {
    J(Json::Array(views::actions(
        &s.engine.content(),
        q.pack.as_deref(),
    )))
}

pub async fn get_action(State(s): State<AppState>, Path(reference): Path<String>) -> Res<J<Json>> {
    let c = s.engine.content();
    let a = c.action(&reference).map_err(ApiError::not_found)?;
    Ok(J(views::action_doc(&c, &a)))
}

#[derive(Deserialize)]
pub struct ExecQuery {
    status: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
    all: Option<bool>,
}

pub async fn list_executions(
    State(s): State<AppState>,
    Query(q): Query<ExecQuery>,
) -> Res<Response> {
    let status = match q.status.as_deref() {
        Some(st) => {
            Some(Status::parse(st).ok_or_else(|| ApiError::bad(format!("unknown status `{st}`")))?)
        }
        None => None,
    };
    let list = s.engine.store().list_executions(&ListFilter {
        status,
        action: q.action,
        top_level_only: !q.all.unwrap_or(false),
        limit: q.limit.unwrap_or(50).min(10_000),
    })?;
    Ok(super::listed(J(&list.items), &list.skipped))
}

pub async fn get_execution(State(s): State<AppState>, Path(id): Path<String>) -> Res<J<Execution>> {
    Ok(J(s.engine.get(&id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    action: String,
    #[serde(default)]
    parameters: Json,
}

pub async fn create_execution(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Res<Response> {
    let b: CreateBody = serde_json::from_value(parse_body(&body)?).map_err(|e| {
        ApiError::bad(format!(
            "expected {{\"action\": \"pack.name\", \"parameters\": {{...}}}}: {e}"
        ))
    })?;
    let req = ExecRequest {
        action: b.action.clone(),
        parameters: b.parameters,
        requested_by: Some(format!("api:{}", caller.name)),
        ..Default::default()
    };
    let result = s.engine.submit(req).await;
    let outcome = match &result {
        Ok(e) => format!("scheduled {}", e.id),
        Err(e) => format!("rejected: {e}"),
    };
    let params = result
        .as_ref()
        .map(|e| e.parameters.clone())
        .unwrap_or(Json::Null);
    super::edge::audit(
        &s,
        &caller.name,
        "execution.create",
        &b.action,
        json!({"parameters": params}),
        &outcome,
    )
    .await;
    let e = result?;
    Ok((StatusCode::CREATED, J(e)).into_response())
}

pub async fn cancel_execution(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res<J<Execution>> {
    let e = s.engine.get(&id)?;
    if e.status.is_terminal() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("execution {id} already ended with status {}", e.status),
        ));
    }
    let found = s.engine.cancel(&id);
    super::edge::audit(
        &s,
        &caller.name,
        "execution.cancel",
        &id,
        json!({"action": e.action}),
        if found {
            "canceling"
        } else {
            "not running here"
        },
    )
    .await;
    if !found {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "execution {id} is {} but not running in this server",
                e.status
            ),
        ));
    }
    // Wait briefly for the runner to stop so the reply shows the final status.
    for _ in 0..50 {
        let now = s.engine.get(&id)?;
        if now.status.is_terminal() {
            return Ok(J(now));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(J(s.engine.get(&id)?))
}

pub async fn rerun_execution(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Res<Response> {
    let old = s.engine.get(&id)?;
    let parameters = s
        .engine
        .store()
        .sealed_params(&id)?
        .unwrap_or(old.parameters.clone());
    let req = ExecRequest {
        action: old.action.clone(),
        parameters,
        requested_by: Some(format!("api:{}", caller.name)),
        ..Default::default()
    };
    let result = s.engine.submit(req).await;
    let outcome = match &result {
        Ok(e) => format!("scheduled {}", e.id),
        Err(e) => format!("rejected: {e}"),
    };
    super::edge::audit(
        &s,
        &caller.name,
        "execution.rerun",
        &id,
        json!({"action": old.action}),
        &outcome,
    )
    .await;
    Ok((StatusCode::CREATED, J(result?)).into_response())
}

pub async fn list_rules(State(s): State<AppState>) -> J<Json> {
    J(Json::Array(views::rules(&s.engine.content())))
}

pub async fn get_rule(State(s): State<AppState>, Path(reference): Path<String>) -> Res<J<Json>> {
    let c = s.engine.content();
    let r = c.rule(&reference).map_err(ApiError::not_found)?;
    Ok(J(views::rule_doc(&c, &r)))
}

pub async fn test_rule(
    State(s): State<AppState>,
    Path(reference): Path<String>,
    body: Bytes,
) -> Res<J<Json>> {
    let c = s.engine.content();
    let r = c.rule(&reference).map_err(ApiError::not_found)?;
    let payload = parse_body(&body)?;
    Ok(J(views::rule_test(&c, &r, &payload)))
}

#[derive(Deserialize)]
pub struct TriggerQuery {
    #[serde(rename = "type")]
    trigger: Option<String>,
    limit: Option<usize>,
}

pub async fn list_triggers(
    State(s): State<AppState>,
    Query(q): Query<TriggerQuery>,
) -> Res<Response> {
    let list = s
        .engine
        .store()
        .list_triggers(q.trigger.as_deref(), q.limit.unwrap_or(50).min(10_000))?;
    let doc = serde_json::to_value(&list.items).map_err(ApiError::internal)?;
    Ok(super::listed(
        J(squall_core::secrets::mask_json(&doc)),
        &list.skipped,
    ))
}

/// One trigger instance with its enforcements expanded (rule, execution, or the reason
/// no execution was requested).
pub async fn get_trigger(State(s): State<AppState>, Path(id): Path<String>) -> Res<J<Json>> {
    let store = s.engine.store();
    let t = store
        .get_trigger(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no trigger instance with id `{id}`")))?;
    let mut enforcements = Vec::new();
    for e in &t.enforcements {
        if let Some(rec) = store.get_enforcement(e)? {
            enforcements.push(rec);
        }
    }
    let mut doc = serde_json::to_value(&t).map_err(ApiError::internal)?;
    doc["enforcements"] = serde_json::to_value(enforcements).map_err(ApiError::internal)?;
    Ok(J(squall_core::secrets::mask_json(&doc)))
}

pub async fn emit_trigger(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(trigger): Path<String>,
    body: Bytes,
) -> Res<Response> {
    let payload = parse_body(&body)?;
    let known = s.engine.content().trigger_types();
    if squall_runtime::bus::valid_type(&trigger) && !known.contains(&trigger) {
        let list: Vec<&str> = known.iter().map(String::as_str).collect();
        let list = if list.is_empty() {
            "none".to_string()
        } else {
            list.join(", ")
        };
        return Err(ApiError::not_found(format!(
            "unknown trigger type `{trigger}`: no rule or sensor uses it (known: {list})"
        )));
    }
    let draft = super::edge::draft(&s, &caller.name, "trigger.emit", &trigger, json!({}));
    let result = s
        .bus
        .accept(
            &trigger,
            payload,
            &format!("api:{}", caller.name),
            Some(draft),
        )
        .await;
    if let Err(e) = &result {
        super::edge::audit(
            &s,
            &caller.name,
            "trigger.emit",
            &trigger,
            json!({}),
            &format!("rejected: {e}"),
        )
        .await;
    }
    accepted(result)
}

/// 202 with the trigger instance, or the error with the right status.
fn accepted(
    result: Result<squall_core::model::TriggerInstance, squall_core::bus::BusError>,
) -> Res<Response> {
    use squall_core::bus::BusError;
    match result {
        Ok(t) => Ok((
            StatusCode::ACCEPTED,
            J(json!({"id": t.id, "type": t.trigger, "occurred_at": t.occurred_at})),
        )
            .into_response()),
        Err(BusError::Full(_)) => {
            let e = result.err().map(|e| e.to_string()).unwrap_or_default();
            Ok((
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                J(json!({"error": e})),
            )
                .into_response())
        }
        Err(e @ (BusError::BadType(_) | BusError::TooDeep(_))) => Err(ApiError::bad(e.to_string())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub async fn webhook(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Res<Response> {
    let content = s.engine.content();
    let sensor = squall_runtime::sensors::webhook::find(&content, &path)
        .ok_or_else(|| ApiError::not_found(format!("no enabled webhook sensor has path `{path}`")))?
        .clone();
    let signing = squall_runtime::sensors::webhook::Signing::of(&sensor);
    // A signed call is claimed against replays until its trigger is accepted; dropped
    // unkept (refused, an error), the claim is released so the sender may retry.
    let mut held = None;
    let who = match (headers.contains_key("authorization"), signing) {
        (false, Some(signing)) => {
            let now = chrono::Utc::now().timestamp();
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let claim = signing
                .verify(header, &body, now)
                .map_err(refused_signature)?;
            held = Some(
                s.webhooks
                    .hold(&sensor.reference, claim, now)
                    .map_err(refused_signature)?,
            );
            format!("webhook:{}", sensor.reference)
        }
        _ => authorize(&s, &headers, Role::Operator)?.name,
    };
    let header_json: serde_json::Map<String, Json> = headers
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization" && k.as_str() != "x-squall-signature")
        .map(|(k, v)| {
            (
                k.to_string(),
                Json::String(v.to_str().unwrap_or("").to_string()),
            )
        })
        .collect();
    let payload =
        squall_runtime::sensors::webhook::payload(&path, &Json::Object(header_json), &body);
    let trigger = sensor.trigger.clone();
    let draft = super::edge::draft(
        &s,
        &who,
        "webhook",
        &path,
        json!({"sensor": sensor.reference}),
    );
    let result = s
        .bus
        .accept(&trigger, payload, &sensor.reference, Some(draft))
        .await;
    match &result {
        Ok(_) => {
            s.sensors.record_event(&sensor.reference);
            if let Some(h) = held {
                h.keep();
            }
        }
        Err(e) => {
            super::edge::audit(
                &s,
                &who,
                "webhook",
                &path,
                json!({"sensor": sensor.reference}),
                &format!("rejected: {e}"),
            )
            .await;
        }
    }
    accepted(result)
}

/// 401 for a missing, wrong or stale signature, 409 for a replayed one.
fn refused_signature(r: squall_runtime::sensors::webhook::Refusal) -> ApiError {
    use squall_runtime::sensors::webhook::Refusal;
    let code = match &r {
        Refusal::Unauthenticated(_) | Refusal::Stale(_) => StatusCode::UNAUTHORIZED,
        Refusal::Replayed(_) => StatusCode::CONFLICT,
    };
    ApiError(code, r.to_string())
}

pub async fn list_sensors(State(s): State<AppState>) -> J<Json> {
    let states = serde_json::to_value(s.sensors.states()).unwrap_or(Json::Null);
    J(views::sensor_states(&s.engine.content(), &states))
}

pub async fn reload(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Res<Response> {
    let result = s.reload().await;
    let outcome = if result.is_ok() {
        "reloaded"
    } else {
        "rejected"
    };
    super::edge::audit(
        &s,
        &caller.name,
        "content.reload",
        "content",
        json!({}),
        outcome,
    )
    .await;
    match result {
        Ok(c) => Ok(J(json!({"reloaded": true, "actions": c.actions.len(), "rules": c.rules.len(), "sensors": c.sensors.len()})).into_response()),
        Err(d) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            J(json!({"reloaded": false, "error": "the new content is invalid; the previous content keeps running",
                     "problems": d.0.iter().map(|p| p.to_string()).collect::<Vec<_>>()})),
        )
            .into_response()),
    }
}

#[derive(Deserialize)]
pub struct AuditQuery {
    limit: Option<usize>,
}

pub async fn list_audit(State(s): State<AppState>, Query(q): Query<AuditQuery>) -> Res<Response> {
    // Written from the stored bytes: `limit=0` over a long trail costs its size once.
    let (body, skipped) = s
        .engine
        .store()
        .list_audit_json(q.limit.unwrap_or(100).min(10_000))?;
    let typed = (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        body,
    );
    Ok(super::listed(typed, &skipped))
}
