//! Accepting notifications, the same for HTTP and AMQP: commit them, then publish them to
//! `enrich` and wait for the broker's confirms. Only then is the producer told they are taken.

use serde::Serialize;

use notify_broker::{Broker, Headers, Outgoing, Stage};
use notify_core::message::{EnrichMessage, SCHEMA};
use notify_core::{NotificationId, NotificationRequest, TenantId};
use notify_store::{Inserted, Store, StoreError};

#[derive(Clone, Debug, Serialize)]
pub struct Accepted {
    pub id: NotificationId,
    pub status: &'static str,
    pub deliveries: i32,
    /// When the scheduler will fan it out, for a notification sent with a future `send_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<chrono::DateTime<chrono::Utc>>,
    /// True when the idempotency key matched an earlier notification, which this is.
    pub idempotent_replay: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    #[error("the database is not available: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the notification was stored but could not be queued ({0}); send it again with the same idempotency_key"
    )]
    Broker(#[from] notify_broker::BrokerError),
}

pub struct Accepter {
    store: Store,
    broker: Broker,
}

impl Accepter {
    pub fn new(store: Store, broker: Broker) -> Accepter {
        Accepter { store, broker }
    }

    pub async fn accept(
        &self,
        tenant: TenantId,
        requests: &[&NotificationRequest],
        traceparent: &str,
    ) -> Result<Vec<Accepted>, AcceptError> {
        let inserted = self.store.insert_notifications(tenant, requests).await?;

        let bodies: Vec<(NotificationId, Vec<u8>)> = inserted
            .iter()
            .filter(|i| i.publish_now)
            .map(|i| {
                let message = EnrichMessage {
                    schema: SCHEMA,
                    tenant_id: tenant,
                    notification_id: i.id,
                    level: None,
                    failover_from: None,
                };
                (
                    i.id,
                    serde_json::to_vec(&message).expect("a message serializes"),
                )
            })
            .collect();
        if !bodies.is_empty() {
            let headers = Headers::new(Some(tenant), Some(traceparent.to_owned()));
            let queue = self.broker.topology().stage_queue(Stage::Enrich);
            let outgoing: Vec<Outgoing<'_>> = bodies
                .iter()
                .map(|(_, body)| Outgoing {
                    exchange: "",
                    routing_key: &queue,
                    body,
                    headers: &headers,
                })
                .collect();
            let publisher = self.broker.publisher().await?;
            if let Err(e) = publisher.send_all(&outgoing).await {
                self.broker.reset().await;
                return Err(e.into());
            }
        }

        Ok(inserted.into_iter().map(accepted).collect())
    }
}

fn accepted(i: Inserted) -> Accepted {
    let status = match (i.send_at, i.publish_now, i.created) {
        (Some(_), _, _) => "scheduled",
        (None, true, _) | (None, false, true) => "accepted",
        (None, false, false) => "processing",
    };
    Accepted {
        id: i.id,
        status,
        deliveries: i.delivery_count,
        send_at: i.send_at,
        idempotent_replay: !i.created,
    }
}
