//! `notify-deliver-teams`: posts Teams chunks to each notification's incoming webhook as an
//! Adaptive Card.

mod card;
mod config;
mod error;
mod provider;

use notify_broker::Stage;
use notify_core::Channel;
use notify_deliver::{BreakerConfig, DeliverStage};
use notify_runtime::Service;

const METRICS_PORT: u16 = 9107;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-teams", METRICS_PORT).await?;
    let config = config::TeamsConfig::from_config(&service.config);
    let provider = provider::TeamsProvider::new(&config)?;
    let stage = DeliverStage::new(
        Channel::Teams,
        vec![provider],
        BreakerConfig::from_config(&service.config),
        config.concurrency,
    );
    service.consume(Stage::Deliver(Channel::Teams), stage).await
}
