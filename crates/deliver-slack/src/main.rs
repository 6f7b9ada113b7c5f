//! `notify-deliver-slack`: posts Slack chunks with `chat.postMessage` as Block Kit messages,
//! one bot token after another when the first fails or its breaker is open.

mod blocks;
mod config;
mod error;
mod provider;

use notify_broker::Stage;
use notify_core::Channel;
use notify_deliver::{BreakerConfig, DeliverStage};
use notify_runtime::Service;
use notify_store::CredentialKey;

const METRICS_PORT: u16 = 9106;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-slack", METRICS_PORT).await?;
    let config = config::SlackConfig::from_env(&service.config)?;
    let providers = provider::SlackProvider::all(&config)?;
    if providers.is_empty() {
        tracing::warn!("NOTIFY_SLACK_PROVIDERS names no provider; every Slack message will fail");
    }
    let breaker = BreakerConfig::from_config(&service.config);
    let timeout = config.timeout;
    let stage = DeliverStage::new(Channel::Slack, providers, breaker, config.concurrency)
        .with_tenant_providers(
            CredentialKey::from_config(&service.config)?,
            breaker,
            Box::new(move |entry| {
                let account: config::SlackApp = serde_json::from_value(entry.clone())?;
                provider::SlackProvider::new(&account, timeout)
            }),
        );
    service.consume(Stage::Deliver(Channel::Slack), stage).await
}
