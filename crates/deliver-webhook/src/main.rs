//! `notify-deliver-webhook`: POSTs each delivery as JSON to the notification's URL, signed per
//! the Standard Webhooks specification with the tenant's secret.

mod config;
mod error;
mod provider;
mod signature;

use notify_broker::Stage;
use notify_core::Channel;
use notify_deliver::{BreakerConfig, DeliverStage};
use notify_runtime::Service;

const METRICS_PORT: u16 = 9104;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-webhook", METRICS_PORT).await?;
    let config = config::WebhookConfig::from_config(&service.config);
    let provider = provider::WebhookProvider::new(&config)?;
    let stage = DeliverStage::new(
        Channel::Webhook,
        vec![provider],
        BreakerConfig::from_config(&service.config),
        config.concurrency,
    );
    service
        .consume(Stage::Deliver(Channel::Webhook), stage)
        .await
}
