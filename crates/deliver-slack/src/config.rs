//! The Slack channel's settings: the bot tokens to post with, in order, from
//! `NOTIFY_SLACK_PROVIDERS`.

use std::time::Duration;

use serde::Deserialize;

use notify_core::{Config, ConfigError};
use notify_deliver::{Secret, provider_list};

#[derive(Clone, Debug)]
pub struct SlackConfig {
    pub providers: Vec<SlackApp>,
    pub timeout: Duration,
    /// Requests in flight per chunk.
    pub concurrency: usize,
}

/// One Slack app's bot token, as an entry of `NOTIFY_SLACK_PROVIDERS`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackApp {
    /// Recorded on each attempt; defaults to `slack`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The Web API base, `https://slack.com/api` unless a test points it elsewhere.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// `xoxb-…`, with the `chat:write` scope.
    pub bot_token: Secret,
}

fn default_name() -> String {
    "slack".into()
}

fn default_base_url() -> String {
    "https://slack.com/api".into()
}

impl SlackConfig {
    pub fn from_env(config: &Config) -> Result<SlackConfig, ConfigError> {
        Self::from_lookup(config, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        config: &Config,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SlackConfig, ConfigError> {
        Ok(SlackConfig {
            providers: provider_list(lookup, "NOTIFY_SLACK_PROVIDERS")?,
            timeout: config.provider_timeout,
            concurrency: 16,
        })
    }
}
