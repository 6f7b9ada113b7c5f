//! The SMS channel's settings: the Twilio accounts to send through, in order, from
//! `NOTIFY_SMS_PROVIDERS`.

use std::time::Duration;

use serde::Deserialize;

use notify_core::{Config, ConfigError};
use notify_deliver::{Secret, provider_list};

#[derive(Clone, Debug)]
pub struct SmsConfig {
    pub providers: Vec<TwilioAccount>,
    pub timeout: Duration,
    /// Requests in flight per chunk.
    pub concurrency: usize,
}

/// One Twilio account, as an entry of `NOTIFY_SMS_PROVIDERS`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioAccount {
    /// Recorded on each attempt; defaults to `twilio`.
    #[serde(default = "default_name")]
    pub name: String,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: Secret,
    /// A sender number in E.164, or a Messaging Service sid (`MG…`).
    pub from: String,
}

fn default_name() -> String {
    "twilio".into()
}

fn default_base_url() -> String {
    "https://api.twilio.com".into()
}

impl SmsConfig {
    pub fn from_env(config: &Config) -> Result<SmsConfig, ConfigError> {
        Self::from_lookup(config, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        config: &Config,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SmsConfig, ConfigError> {
        Ok(SmsConfig {
            providers: provider_list(lookup, "NOTIFY_SMS_PROVIDERS")?,
            timeout: config.provider_timeout,
            concurrency: 16,
        })
    }
}
