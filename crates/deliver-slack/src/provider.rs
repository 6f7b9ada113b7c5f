//! Slack's Web API method `chat.postMessage` with a bot token: JSON in, `{"ok": …}` out.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use notify_core::ChannelSpec;
use notify_core::message::{DeliverChunk, DeliverItem, Payload};
use notify_deliver::{Provider, Secret, Sent, parse_retry_after};
use notify_runtime::Context;

use crate::blocks;
use crate::config::{SlackApp, SlackConfig};
use crate::error::SlackError;

pub struct SlackProvider {
    name: String,
    client: reqwest::Client,
    post_message_url: String,
    bot_token: Secret,
}

#[derive(Deserialize)]
struct SlackAnswer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

impl SlackProvider {
    /// One provider per configured token, in order.
    pub fn all(config: &SlackConfig) -> anyhow::Result<Vec<SlackProvider>> {
        config
            .providers
            .iter()
            .map(|app| SlackProvider::new(app, config.timeout))
            .collect()
    }

    pub fn new(app: &SlackApp, timeout: Duration) -> anyhow::Result<SlackProvider> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("notify-slack/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(SlackProvider {
            name: app.name.clone(),
            client,
            post_message_url: format!("{}/chat.postMessage", app.base_url.trim_end_matches('/')),
            bot_token: app.bot_token.clone(),
        })
    }
}

impl Provider for SlackProvider {
    type Error = SlackError;

    fn name(&self) -> &str {
        &self.name
    }

    async fn send(
        &self,
        _ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> Result<Sent, SlackError> {
        let (
            Payload::Slack {
                title,
                text,
                mention,
            },
            ChannelSpec::Slack(options),
        ) = (&item.payload, &chunk.spec)
        else {
            return Err(SlackError::WrongPayload);
        };
        let (fallback, blocks) = blocks::message(title.as_deref(), text, mention.as_deref());
        let mut body = json!({
            "channel": item.address,
            "text": fallback,
            "blocks": blocks,
            "unfurl_links": false,
        });
        if let Some(ts) = &options.thread_ts {
            body["thread_ts"] = json!(ts);
        }

        let response = self
            .client
            .post(&self.post_message_url)
            .bearer_auth(self.bot_token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(serde_json::to_vec(&body).expect("JSON serializes"))
            .send()
            .await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = response.text().await.unwrap_or_default();
        if status != reqwest::StatusCode::OK {
            return Err(SlackError::Status {
                status: status.as_u16(),
                body: text.chars().take(300).collect(),
                retry_after,
            });
        }
        let answer: SlackAnswer = serde_json::from_str(&text).map_err(|_| SlackError::Status {
            status: status.as_u16(),
            body: text.chars().take(300).collect(),
            retry_after: None,
        })?;
        if answer.ok {
            Ok(Sent {
                provider_message_id: answer.ts,
            })
        } else {
            Err(SlackError::Api {
                error: answer.error.unwrap_or_else(|| "unknown_error".into()),
                retry_after,
            })
        }
    }
}
