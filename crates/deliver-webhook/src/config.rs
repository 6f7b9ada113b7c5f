//! The webhook channel's settings, taken from the process configuration.

use std::time::Duration;

use notify_core::Config;

#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub timeout: Duration,
    /// Requests in flight per chunk.
    pub concurrency: usize,
}

impl WebhookConfig {
    pub fn from_config(config: &Config) -> WebhookConfig {
        WebhookConfig {
            timeout: config.provider_timeout,
            concurrency: 16,
        }
    }
}
