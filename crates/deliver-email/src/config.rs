//! The email channel's settings, taken from the process configuration.

use std::time::Duration;

use notify_core::Config;

#[derive(Clone, Debug)]
pub struct EmailConfig {
    /// `smtp://host:port`, `smtp://host:port?tls=required` or `smtps://user:pass@host`.
    pub smtp_url: String,
    /// The sender when a notification names none.
    pub default_from: String,
    pub timeout: Duration,
    /// Connections kept open to the relay, and so sends in flight per chunk.
    pub concurrency: usize,
}

impl EmailConfig {
    pub fn from_config(config: &Config) -> EmailConfig {
        EmailConfig {
            smtp_url: config.smtp_url.clone(),
            default_from: config.email_from.clone(),
            timeout: config.provider_timeout,
            concurrency: 8,
        }
    }
}
