//! `POST /v1/notifications`, `POST /v1/notifications/batch`, `GET /v1/notifications/{id}`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use serde::Deserialize;

use notify_core::schedule::Condition;
use notify_core::validation::from_json;
use notify_core::{NotificationId, NotificationRequest, ValidationError};

use super::{ApiState, read_json_body, traceparent};
use crate::accept::AcceptError;
use crate::error::ApiError;

pub const MAX_BATCH: usize = 1_000;

impl From<AcceptError> for ApiError {
    fn from(e: AcceptError) -> Self {
        tracing::error!(error = %e, "could not accept");
        ApiError::unavailable(e.to_string())
    }
}

pub async fn create(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let body = read_json_body(&headers, body, state.service.config.max_body_bytes).await?;
    let request = NotificationRequest::parse(&body)?;

    let accepted = state
        .accepter
        .accept_one(tenant, request, &traceparent(&headers))
        .await?;
    tracing::info!(tenant_id = %tenant, notification_id = %accepted.id, replay = accepted.idempotent_replay, "accepted");
    let status = if accepted.idempotent_replay {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(accepted)).into_response())
}

pub async fn create_batch(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let body = read_json_body(&headers, body, state.service.config.max_batch_bytes).await?;
    let items = batch_items(&body)?;

    // Each item is checked on its own; the valid ones are committed together.
    let parsed: Vec<Result<NotificationRequest, ValidationError>> = items
        .into_iter()
        .map(NotificationRequest::from_value)
        .collect();
    let valid: Vec<&NotificationRequest> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut accepted = if valid.is_empty() {
        Vec::new()
    } else {
        state
            .accepter
            .accept(tenant, &valid, &traceparent(&headers))
            .await?
    }
    .into_iter();

    let results: Vec<Value> = parsed
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Ok(_) => {
                let a = accepted.next().expect("one result per valid item");
                let status = if a.idempotent_replay { 200 } else { 202 };
                json!({"status": status, "id": a.id, "deliveries": a.deliveries, "idempotent_replay": a.idempotent_replay})
            }
            Err(e) => {
                let mut error = ApiError::from(e.clone());
                error.field = Some(match &e.field {
                    Some(f) => format!("notifications[{i}].{f}"),
                    None => format!("notifications[{i}]"),
                });
                json!({"status": error.status.as_u16(), "error": error.body()["error"]})
            }
        })
        .collect();
    tracing::info!(tenant_id = %tenant, items = results.len(), accepted = valid.len(), "batch accepted");
    Ok((StatusCode::ACCEPTED, Json(json!({ "results": results }))).into_response())
}

fn batch_items(body: &[u8]) -> Result<Vec<Value>, ApiError> {
    let value = notify_core::validation::json_value(body)?;
    let Some(Value::Array(items)) = value.get("notifications").cloned() else {
        return Err(ValidationError::at(
            "missing_field",
            "notifications",
            "the body must be {\"notifications\": [...]}",
        )
        .into());
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ValidationError::at(
            "invalid_field",
            "notifications",
            format!(
                "a batch holds 1 to {MAX_BATCH} notifications, not {}",
                items.len()
            ),
        )
        .into());
    }
    Ok(items)
}

pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let id = notification_id(&id)?;
    let view = state
        .service
        .store
        .notification_view(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    Ok(Json(view).into_response())
}

/// `DELETE /v1/notifications/{id}`: stops whatever has not been sent yet.
pub async fn cancel(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let id = notification_id(&id)?;
    let cancelled = state
        .service
        .store
        .cancel_notification(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    tracing::info!(tenant_id = %tenant, notification_id = %id, timers = cancelled.timers, deliveries = cancelled.deliveries, "cancelled");
    Ok(Json(json!({"id": id, "cancelled": cancelled})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Actor {
    #[serde(default)]
    by: Option<String>,
}

pub async fn acknowledge(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    stop_escalation(state, headers, id, body, false).await
}

pub async fn resolve(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    stop_escalation(state, headers, id, body, true).await
}

/// Acknowledging stops the levels that wait for no acknowledgment; resolving stops them all.
/// The body may name who did it: `{"by": "usr_42"}`.
async fn stop_escalation(
    state: ApiState,
    headers: HeaderMap,
    id: String,
    body: Body,
    resolve: bool,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let id = notification_id(&id)?;
    let body = read_json_body(&headers, body, 64 * 1024).await?;
    let actor: Actor = if body.is_empty() {
        Actor::default()
    } else {
        from_json(&body)?
    };
    if actor
        .by
        .as_ref()
        .is_some_and(|b| b.is_empty() || b.chars().count() > 255)
    {
        return Err(
            ValidationError::at("invalid_field", "by", "`by` has 1 to 255 characters").into(),
        );
    }

    let store = &state.service.store;
    let stored = store
        .load_notification(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    let stops: Vec<i32> = stored
        .request
        .escalation
        .iter()
        .flat_map(|e| e.levels.iter())
        .filter(|l| match l.condition() {
            Some(Condition::NoAcknowledgment) => true,
            Some(Condition::NoResolution) => resolve,
            None => false,
        })
        .map(|l| l.level as i32)
        .collect();
    store
        .stop_escalation(tenant, id, resolve, actor.by.as_deref(), &stops)
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    tracing::info!(tenant_id = %tenant, notification_id = %id, resolve, by = actor.by.as_deref(), "escalation stopped");
    let view = store
        .notification_view(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("notification"))?;
    Ok(Json(view).into_response())
}

/// An id from the path. One that is not a UUID cannot exist: a 404 like any unknown id.
fn notification_id(raw: &str) -> Result<NotificationId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("notification"))
}
