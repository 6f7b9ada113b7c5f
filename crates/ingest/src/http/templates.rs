//! `PUT`, `GET` and `DELETE /v1/templates/{name}`: one variant per channel and locale.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use notify_core::validation::from_json;
use notify_core::{Channel, ValidationError};
use notify_template::Renderer;

use super::{ApiState, read_json_body};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    channel: String,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    title: Option<String>,
    content: String,
}

#[derive(Deserialize)]
pub struct Variant {
    channel: Option<String>,
    locale: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::at(
            "invalid_field",
            "name",
            "a template name has 1 to 255 letters, digits, `-`, `_` or `.`",
        )
        .into())
    }
}

pub async fn put(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    check_name(&name)?;
    let body = read_json_body(&headers, body, state.service.config.max_body_bytes).await?;
    let t: TemplateBody = from_json(&body)?;

    let channel: Channel = t.channel.parse().map_err(|_| {
        ValidationError::at(
            "unknown_channel",
            "channel",
            format!("`{}` is not a channel", t.channel),
        )
    })?;
    let locale = t.locale.unwrap_or_default();
    if !locale.is_empty() && !(2..=35).contains(&locale.len())
        || !locale
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(ValidationError::at(
            "invalid_field",
            "locale",
            "`locale` must be a language tag such as `de` or `pt-BR`",
        )
        .into());
    }
    // A template that does not parse is refused now, not discovered at send time.
    let renderer = Renderer::new();
    for (field, source) in [
        ("title", t.title.as_deref()),
        ("content", Some(t.content.as_str())),
    ] {
        if let Some(source) = source {
            renderer
                .compile(source)
                .map_err(|e| ValidationError::at("invalid_template", field, e.to_string()))?;
        }
    }

    let saved = state
        .service
        .store
        .put_template(
            tenant,
            &name,
            channel.as_str(),
            &locale,
            t.title.as_deref(),
            &t.content,
        )
        .await?;
    Ok((StatusCode::OK, Json(saved)).into_response())
}

pub async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let variants = state.service.store.templates_named(tenant, &name).await?;
    if variants.is_empty() {
        return Err(ApiError::not_found("template"));
    }
    Ok(Json(json!({"name": name, "variants": variants})).into_response())
}

pub async fn delete(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(variant): Query<Variant>,
) -> Result<Response, ApiError> {
    let tenant = state.keys.authenticate(&headers).await?;
    let removed = state
        .service
        .store
        .delete_template(
            tenant,
            &name,
            variant.channel.as_deref(),
            variant.locale.as_deref(),
        )
        .await?;
    if removed == 0 {
        return Err(ApiError::not_found("template"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
