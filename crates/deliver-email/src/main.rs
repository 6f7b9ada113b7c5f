//! `notify-deliver-email`: sends email chunks through a pooled SMTP connection.

mod config;
mod error;
mod provider;

use notify_broker::Stage;
use notify_core::Channel;
use notify_deliver::{BreakerConfig, DeliverStage};
use notify_runtime::Service;

const METRICS_PORT: u16 = 9103;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-email", METRICS_PORT).await?;
    let config = config::EmailConfig::from_config(&service.config);
    let provider = provider::EmailProvider::new(&config)?;
    let stage = DeliverStage::new(
        Channel::Email,
        vec![provider],
        BreakerConfig::from_config(&service.config),
        config.concurrency,
    );
    service.consume(Stage::Deliver(Channel::Email), stage).await
}
