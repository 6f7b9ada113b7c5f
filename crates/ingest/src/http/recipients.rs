//! `PUT` and `GET /v1/recipients/{user_id}`: stored profiles that fill in what a notification
//! leaves out.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use notify_core::validation::from_json;
use notify_core::{Recipient, ValidationError};

use super::{ApiState, read_json_body};
use crate::error::ApiError;

pub async fn put(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    if user_id.is_empty() || user_id.chars().count() > 255 {
        return Err(ValidationError::at(
            "invalid_field",
            "user_id",
            "a user id has 1 to 255 characters",
        )
        .into());
    }
    let body = read_json_body(&headers, body, state.service.config.max_body_bytes).await?;
    let mut profile: Recipient = from_json(&body)?;
    if profile.user_id.as_ref().is_some_and(|id| id != &user_id) {
        return Err(ValidationError::at(
            "invalid_field",
            "user_id",
            "`user_id` differs from the one in the path",
        )
        .into());
    }
    profile.user_id = Some(user_id.clone());
    profile.validate("")?;

    state
        .service
        .store
        .put_recipient(tenant, &user_id, &profile)
        .await?;
    Ok((StatusCode::OK, Json(profile)).into_response())
}

pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let profile = state
        .service
        .store
        .recipient(tenant, &user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("recipient"))?;
    Ok(Json(profile).into_response())
}
