//! The v1 HTTP API: routes, the shared state, reading JSON bodies with a size limit, and a
//! count of every answer by route and status.

mod notifications;
mod providers;
mod recipients;
mod templates;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use futures_util::StreamExt;

use notify_runtime::{Service, health_routes, traceparent_new};

use crate::accept::Accepter;
use crate::auth::Keys;
use crate::error::ApiError;

#[derive(Clone)]
pub struct ApiState {
    pub service: Service,
    pub accepter: Arc<Accepter>,
    pub keys: Arc<Keys>,
}

pub fn router(state: ApiState) -> Router {
    let health = health_routes(state.service.health.clone(), state.service.metrics.clone());
    Router::new()
        .route("/v1/notifications", post(notifications::create))
        .route("/v1/notifications/batch", post(notifications::create_batch))
        .route(
            "/v1/notifications/{id}",
            get(notifications::show).delete(notifications::cancel),
        )
        .route(
            "/v1/notifications/{id}/acknowledge",
            post(notifications::acknowledge),
        )
        .route(
            "/v1/notifications/{id}/resolve",
            post(notifications::resolve),
        )
        .route(
            "/v1/templates/{name}",
            put(templates::put)
                .get(templates::show)
                .delete(templates::delete),
        )
        .route(
            "/v1/providers/{channel}",
            put(providers::put)
                .get(providers::show)
                .delete(providers::delete),
        )
        .route(
            "/v1/recipients/{user_id}",
            put(recipients::put).get(recipients::show),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
        .merge(health)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn count_requests(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .service
        .metrics
        .http_requests
        .with_label_values(&[&route, response.status().as_str()])
        .inc();
    response
}

/// Reads a JSON body of at most `limit` bytes, refusing other content types and larger bodies
/// with an error in the API's own shape.
pub async fn read_json_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the body as JSON with `Content-Type: application/json`, not `{ct}`"),
            ));
        }
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body is larger than {limit} bytes"),
        )
    };

    // Reading on past the limit (up to a cap) lets the client finish sending, so it can read
    // the 413 instead of seeing its connection cut mid-upload.
    let drain_cap = limit.saturating_mul(DRAIN_FACTOR);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > drain_cap) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the body could not be read: {e}"),
            )
        })?;
        seen += chunk.len();
        if seen > drain_cap {
            break;
        }
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(buf))
}

/// How far past the limit a body is read and thrown away before answering 413.
const DRAIN_FACTOR: usize = 8;

/// The caller's `traceparent`, if it is well formed, or a new one.
pub fn traceparent(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            let parts: Vec<&str> = v.split('-').collect();
            parts.len() == 4 && parts[1].len() == 32 && parts[2].len() == 16
        })
        .map_or_else(traceparent_new, str::to_owned)
}
