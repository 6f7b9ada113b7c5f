//! `notify-deliver-sms`: sends SMS chunks through Twilio's Messages API, one account after
//! another when the first fails or its breaker is open.

mod config;
mod error;
mod provider;
mod text;

use notify_broker::Stage;
use notify_core::Channel;
use notify_deliver::{BreakerConfig, DeliverStage};
use notify_runtime::Service;
use notify_store::CredentialKey;

const METRICS_PORT: u16 = 9105;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-deliver-sms", METRICS_PORT).await?;
    let config = config::SmsConfig::from_env(&service.config)?;
    let providers = provider::SmsProvider::all(&config)?;
    if providers.is_empty() {
        tracing::warn!("NOTIFY_SMS_PROVIDERS names no provider; every SMS will fail");
    }
    let breaker = BreakerConfig::from_config(&service.config);
    let timeout = config.timeout;
    let stage = DeliverStage::new(Channel::Sms, providers, breaker, config.concurrency)
        .with_tenant_providers(
            CredentialKey::from_config(&service.config)?,
            breaker,
            Box::new(move |entry| {
                let account: config::TwilioAccount = serde_json::from_value(entry.clone())?;
                provider::SmsProvider::new(&account, timeout)
            }),
        );
    service.consume(Stage::Deliver(Channel::Sms), stage).await
}
