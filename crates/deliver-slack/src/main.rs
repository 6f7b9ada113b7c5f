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

const METRICS_PORT: u16 = 9106;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-slack", METRICS_PORT).await?;
    let config = config::SlackConfig::from_env(&service.config)?;
    let providers = provider::SlackProvider::all(&config)?;
    if providers.is_empty() {
        tracing::warn!("NOTIFY_SLACK_PROVIDERS names no provider; every Slack message will fail");
    }
    let stage = DeliverStage::new(
        Channel::Slack,
        providers,
        BreakerConfig::from_config(&service.config),
        config.concurrency,
    );
    service.consume(Stage::Deliver(Channel::Slack), stage).await
}
