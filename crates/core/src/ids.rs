//! Typed identifiers, so that a tenant id can never be passed where a delivery id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

id_type!(
    /// A tenant: the owner of API keys, notifications and templates.
    TenantId
);
id_type!(
    /// One notification as a producer sent it.
    NotificationId
);
id_type!(
    /// One notification to one recipient on one channel.
    DeliveryId
);

impl DeliveryId {
    /// The delivery id is derived from its notification, recipient position and channel, so
    /// that fanning out the same notification twice yields the same ids.
    pub fn derive(notification: NotificationId, recipient_index: usize, channel: &str) -> Self {
        let name = format!("{recipient_index}/{channel}");
        Self(Uuid::new_v5(&notification.0, name.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_delivery_ids_are_stable_and_distinct() {
        let n = NotificationId::new();
        assert_eq!(
            DeliveryId::derive(n, 0, "email"),
            DeliveryId::derive(n, 0, "email")
        );
        assert_ne!(
            DeliveryId::derive(n, 0, "email"),
            DeliveryId::derive(n, 1, "email")
        );
        assert_ne!(
            DeliveryId::derive(n, 0, "email"),
            DeliveryId::derive(n, 0, "webhook")
        );
    }
}
