//! `notify-deliver-push`: sends push chunks to FCM (HTTP v1) or APNs (HTTP/2), each token to
//! the service of its platform, and marks a token dead when the service says it is no longer
//! registered.

mod apns;
mod config;
mod error;
mod fcm;
mod jwt;
mod provider;

use notify_broker::Stage;
use notify_core::Channel;
use notify_deliver::{BreakerConfig, DeliverStage};
use notify_runtime::Service;
use notify_store::CredentialKey;

const METRICS_PORT: u16 = 9108;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-push", METRICS_PORT).await?;
    let config = config::PushConfig::from_env(&service.config)?;
    let providers = provider::PushProvider::all(&config)?;
    if providers.is_empty() {
        tracing::warn!("NOTIFY_PUSH_PROVIDERS names no provider; every push will fail");
    }
    let breaker = BreakerConfig::from_config(&service.config);
    let timeout = config.timeout;
    let stage = DeliverStage::new(Channel::Push, providers, breaker, config.concurrency)
        .with_tenant_providers(
            CredentialKey::from_config(&service.config)?,
            breaker,
            Box::new(move |entry| {
                let account: config::PushAccount = serde_json::from_value(entry.clone())?;
                provider::PushProvider::new(&account, timeout)
            }),
        );
    service.consume(Stage::Deliver(Channel::Push), stage).await
}
