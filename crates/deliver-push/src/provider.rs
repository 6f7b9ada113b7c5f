//! The push provider: a configured FCM project or APNs key, each taking the tokens of its
//! platform. A token written `apns:<hex>` or `fcm:<token>` says its platform; otherwise 64
//! hexadecimal digits are an APNs device token and anything else an FCM registration token.

use std::time::Duration;

use notify_core::ChannelSpec;
use notify_core::message::{DeliverChunk, DeliverItem, Payload};
use notify_deliver::{Provider, Sent};
use notify_runtime::Context;

use crate::apns::ApnsClient;
use crate::config::{PushAccount, PushConfig};
use crate::error::PushError;
use crate::fcm::FcmClient;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Fcm,
    Apns,
}

/// The platform of a token and the token as its service knows it.
pub fn platform_of(address: &str) -> (Platform, &str) {
    if let Some(token) = address.strip_prefix("apns:") {
        (Platform::Apns, token)
    } else if let Some(token) = address.strip_prefix("fcm:") {
        (Platform::Fcm, token)
    } else if address.len() == 64 && address.bytes().all(|b| b.is_ascii_hexdigit()) {
        (Platform::Apns, address)
    } else {
        (Platform::Fcm, address)
    }
}

pub struct PushProvider {
    name: String,
    service: Service,
}

enum Service {
    Fcm(Box<FcmClient>),
    Apns(Box<ApnsClient>),
}

impl PushProvider {
    pub fn all(config: &PushConfig) -> anyhow::Result<Vec<PushProvider>> {
        config
            .providers
            .iter()
            .map(|account| PushProvider::new(account, config.timeout))
            .collect()
    }

    pub fn new(account: &PushAccount, timeout: Duration) -> anyhow::Result<PushProvider> {
        Ok(match account {
            PushAccount::Fcm(fcm) => {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .user_agent(concat!("notify-push/", env!("CARGO_PKG_VERSION")))
                    .build()?;
                PushProvider {
                    name: fcm.name.clone(),
                    service: Service::Fcm(Box::new(FcmClient::new(fcm, client)?)),
                }
            }
            PushAccount::Apns(apns) => PushProvider {
                name: apns.name.clone(),
                service: Service::Apns(Box::new(ApnsClient::new(apns, timeout)?)),
            },
        })
    }

    fn platform(&self) -> Platform {
        match self.service {
            Service::Fcm(_) => Platform::Fcm,
            Service::Apns(_) => Platform::Apns,
        }
    }
}

impl Provider for PushProvider {
    type Error = PushError;

    fn name(&self) -> &str {
        &self.name
    }

    fn accepts(&self, item: &DeliverItem) -> bool {
        platform_of(&item.address).0 == self.platform()
    }

    async fn send(
        &self,
        ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> Result<Sent, PushError> {
        let (Payload::Push { title, body }, ChannelSpec::Push(options)) =
            (&item.payload, &chunk.spec)
        else {
            return Err(PushError::WrongPayload);
        };
        let (_, token) = platform_of(&item.address);
        let delivery_id = item.delivery_id.to_string();
        let ids = [
            ("notification_id", chunk.notification_id.to_string()),
            ("delivery_id", delivery_id.clone()),
        ];
        let result = match &self.service {
            Service::Fcm(fcm) => fcm.send(token, title.as_deref(), body, options, &ids).await,
            Service::Apns(apns) => {
                apns.send(token, title.as_deref(), body, options, &delivery_id, &ids)
                    .await
            }
        };
        match result {
            Ok(id) => Ok(Sent {
                provider_message_id: (!id.is_empty()).then_some(id),
            }),
            Err(PushError::Unregistered { reason }) => {
                // The token will never work again: no retry, and no later notification uses it.
                ctx.store
                    .mark_push_token_dead(
                        chunk.tenant_id,
                        item.user_id.as_deref(),
                        &item.address,
                        &reason,
                    )
                    .await?;
                tracing::info!(provider = %self.name, reason = %reason, "marked the push token dead");
                Err(PushError::Unregistered { reason })
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_platform_by_prefix_or_by_shape() {
        let apns = "a".repeat(64);
        assert_eq!(platform_of(&apns), (Platform::Apns, apns.as_str()));
        assert_eq!(platform_of("apns:abc"), (Platform::Apns, "abc"));
        assert_eq!(platform_of("fcm:abc"), (Platform::Fcm, "abc"));
        assert_eq!(
            platform_of("dQw4w9WgXcQ:APA91bH-long-fcm-token"),
            (Platform::Fcm, "dQw4w9WgXcQ:APA91bH-long-fcm-token")
        );
    }
}
