//! The life of a delivery: the states it moves through and which of them are final.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Fanned out, not yet tried.
    Pending,
    /// Held until a timer releases it: a channel delay, quiet hours or a digest window.
    Scheduled,
    /// An attempt is under way: recorded before the provider is called.
    Sending,
    /// The last attempt failed transiently; the delivery waits in a retry tier.
    Retrying,
    Delivered,
    Failed,
    Suppressed,
    DeadLettered,
}

impl DeliveryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Scheduled => "scheduled",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::DeadLettered => "dead_lettered",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered
                | DeliveryStatus::Failed
                | DeliveryStatus::Suppressed
                | DeliveryStatus::DeadLettered
        )
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => DeliveryStatus::Pending,
            "scheduled" => DeliveryStatus::Scheduled,
            "sending" => DeliveryStatus::Sending,
            "retrying" => DeliveryStatus::Retrying,
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            "suppressed" => DeliveryStatus::Suppressed,
            "dead_lettered" => DeliveryStatus::DeadLettered,
            other => return Err(format!("unknown delivery status `{other}`")),
        })
    }
}
