//! The Teams channel's settings. The endpoint of each delivery is the incoming webhook URL
//! that its notification names, so there are no credentials here.

use std::time::Duration;

use notify_core::Config;

#[derive(Clone, Debug)]
pub struct TeamsConfig {
    pub timeout: Duration,
    /// Requests in flight per chunk.
    pub concurrency: usize,
}

impl TeamsConfig {
    pub fn from_config(config: &Config) -> TeamsConfig {
        TeamsConfig {
            timeout: config.provider_timeout,
            concurrency: 8,
        }
    }
}
