//! The `ingest` queue: the same notification JSON as the HTTP API, with the API key in the
//! `authorization` header. Refusals go to `ingest.rejected` with the reason in headers; when
//! the message has `reply_to`, the outcome is published there with its `correlation_id`.

use std::sync::Arc;

use serde_json::json;

use notify_broker::Headers;
use notify_core::{NotificationRequest, ValidationError};
use notify_runtime::{Context, HandleError, Handler, Incoming};

use crate::accept::Accepter;
use crate::auth::{Keys, bearer};
use crate::error::ApiError;

pub struct IngestQueue {
    pub accepter: Arc<Accepter>,
    pub keys: Arc<Keys>,
}

impl Handler for IngestQueue {
    async fn handle(&self, ctx: &Context, message: &Incoming) -> Result<(), HandleError> {
        match self.accept(message).await {
            Ok(reply) => {
                reply_to(ctx, message, &reply).await?;
                Ok(())
            }
            Err(Refusal::Rejected(error)) => {
                reject(ctx, message, &error).await?;
                reply_to(ctx, message, &error.body()).await?;
                Ok(())
            }
            Err(Refusal::Unavailable(reason)) => Err(HandleError::Transient(reason)),
        }
    }
}

enum Refusal {
    Rejected(ApiError),
    /// Worth trying again: the database or the broker is away.
    Unavailable(String),
}

impl IngestQueue {
    async fn accept(&self, message: &Incoming) -> Result<serde_json::Value, Refusal> {
        let key = message
            .headers
            .extra
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| bearer(value).unwrap_or(value.trim()).to_owned())
            .ok_or_else(|| {
                Refusal::Rejected(ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send the API key in the `authorization` header",
                ))
            })?;
        let tenant = match self.keys.tenant(&key).await {
            Ok(t) => t,
            Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => {
                return Err(Refusal::Rejected(e));
            }
            Err(e) => return Err(Refusal::Unavailable(e.message)),
        };
        let request = NotificationRequest::parse(&message.body)
            .map_err(|e: ValidationError| Refusal::Rejected(e.into()))?;
        let accepted = self
            .accepter
            .accept_one(tenant, request, &message.traceparent)
            .await
            .map_err(|e| Refusal::Unavailable(e.to_string()))?;
        tracing::info!(tenant_id = %tenant, notification_id = %accepted.id, replay = accepted.idempotent_replay, "accepted");
        Ok(json!(accepted))
    }
}

/// Routes a refused message to `ingest.rejected`, body untouched, with why in its headers.
async fn reject(ctx: &Context, message: &Incoming, error: &ApiError) -> Result<(), HandleError> {
    let mut headers = message.headers.clone();
    headers
        .extra
        .retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
    let mut headers = headers
        .with("x-reject-code", error.code)
        .with("x-reject-reason", error.message.clone())
        .with("x-reject-status", error.status.as_u16().to_string());
    if let Some(field) = &error.field {
        headers = headers.with("x-reject-field", field.clone());
    }
    ctx.publisher
        .send(&ctx.topology().rejected_queue(), &message.body, &headers)
        .await?;
    tracing::warn!(code = error.code, field = error.field.as_deref(), reason = %error.message, "rejected a message");
    Ok(())
}

async fn reply_to(
    ctx: &Context,
    message: &Incoming,
    body: &serde_json::Value,
) -> Result<(), HandleError> {
    let Some(queue) = message.headers.reply_to.as_deref() else {
        return Ok(());
    };
    let headers = Headers {
        correlation_id: message.headers.correlation_id.clone(),
        traceparent: message.headers.traceparent.clone(),
        ..Default::default()
    };
    let body = serde_json::to_vec(body).expect("JSON serializes");
    ctx.publisher.send(queue, &body, &headers).await?;
    Ok(())
}
