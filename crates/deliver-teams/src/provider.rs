//! One POST of an Adaptive Card per delivery to the notification's incoming webhook.

use notify_core::ChannelSpec;
use notify_core::message::{DeliverChunk, DeliverItem, Payload};
use notify_deliver::{Provider, Sent, parse_retry_after};
use notify_runtime::Context;

use crate::card;
use crate::config::TeamsConfig;
use crate::error::TeamsError;

pub struct TeamsProvider {
    client: reqwest::Client,
}

impl TeamsProvider {
    pub fn new(config: &TeamsConfig) -> anyhow::Result<TeamsProvider> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .user_agent(concat!("notify-teams/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(TeamsProvider { client })
    }
}

impl Provider for TeamsProvider {
    type Error = TeamsError;

    fn name(&self) -> &str {
        "teams-webhook"
    }

    async fn send(
        &self,
        _ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> Result<Sent, TeamsError> {
        let (Payload::Teams { title, text }, ChannelSpec::Teams(options)) =
            (&item.payload, &chunk.spec)
        else {
            return Err(TeamsError::WrongPayload);
        };
        let message = card::message(title.as_deref(), text, &options.actions);
        let response = self
            .client
            .post(&item.address)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&message).expect("JSON serializes"))
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent::default());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.text().await.unwrap_or_default();
        Err(TeamsError::Status {
            status: status.as_u16(),
            body: body.chars().take(300).collect(),
            retry_after,
        })
    }
}
