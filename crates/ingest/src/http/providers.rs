//! `PUT`, `GET` and `DELETE /v1/providers/{channel}`: a tenant's own providers of a channel,
//! in the order they are tried. Credentials are sealed before they are stored and are never
//! shown again.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use notify_store::{CredentialKey, parse_provider_list, provider_channel};

use super::{ApiState, read_json_body};
use crate::error::ApiError;

fn credential_key(state: &ApiState) -> Result<CredentialKey, ApiError> {
    match CredentialKey::from_config(&state.service.config) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "credentials_unavailable",
            "this installation has no NOTIFY_CREDENTIALS_KEY, so it cannot store credentials",
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "credentials_unavailable",
            e.to_string(),
        )),
    }
}

pub async fn put(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(channel): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let channel = provider_channel(&channel)?;
    let body = read_json_body(&headers, body, state.service.config.max_body_bytes).await?;
    // FIXME: the entries are checked for shape here, but against the channel's provider
    // fields only when a worker builds them; a wrong field parks that tenant's chunks with
    // the reason until the list is fixed and the chunks replayed.
    let providers = parse_provider_list(&body)?;
    let key = credential_key(&state)?;
    state
        .service
        .store
        .put_tenant_providers(tenant, channel.as_str(), &key, &providers)
        .await?;
    tracing::info!(tenant_id = %tenant, channel = %channel, providers = providers.len(), "providers configured");
    let views = state
        .service
        .store
        .tenant_provider_views(tenant, channel.as_str())
        .await?;
    Ok(Json(json!({"channel": channel, "providers": views})).into_response())
}

pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let channel = provider_channel(&channel)?;
    let views = state
        .service
        .store
        .tenant_provider_views(tenant, channel.as_str())
        .await?;
    Ok(Json(json!({"channel": channel, "providers": views})).into_response())
}

pub async fn delete(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let channel = provider_channel(&channel)?;
    let removed = state
        .service
        .store
        .delete_tenant_providers(tenant, channel.as_str())
        .await?;
    if removed == 0 {
        return Err(ApiError::not_found("provider list"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
