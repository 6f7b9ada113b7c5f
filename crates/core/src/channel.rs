//! The channels a delivery can go out on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
    Slack,
    Teams,
    Push,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Sms,
        Channel::Slack,
        Channel::Teams,
        Channel::Push,
        Channel::Webhook,
    ];

    /// Channels that have a delivery worker in this version. A notification naming another
    /// channel is refused at ingest rather than left waiting in a queue nobody consumes.
    pub const DELIVERABLE: [Channel; 6] = Channel::ALL;

    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Slack => "slack",
            Channel::Teams => "teams",
            Channel::Push => "push",
            Channel::Webhook => "webhook",
        }
    }

    pub fn is_deliverable(&self) -> bool {
        Self::DELIVERABLE.contains(self)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}
