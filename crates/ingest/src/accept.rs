//! Accepting notifications, the same for HTTP and AMQP: commit them, then publish them to
//! `enrich` and wait for the broker's confirms. Only then is the producer told they are taken.

use serde::Serialize;

use notify_broker::Broker;
use notify_core::{NotificationId, NotificationRequest, TenantId};
use notify_store::group::{Batch, Gather};
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
    Broker(String),
}

/// Requests gathered into one group commit: at most this many a group, and this many groups
/// committed and published at once.
const MAX_GROUP: usize = 128;
const GROUPS_IN_FLIGHT: usize = 4;

pub struct Accepter {
    store: Store,
    broker: Broker,
    singles: Gather<Singles>,
}

impl Accepter {
    pub fn new(store: Store, broker: Broker) -> Accepter {
        let singles = Singles {
            store: store.clone(),
            broker: broker.clone(),
        };
        Accepter {
            store,
            broker,
            singles: Gather::new(singles, MAX_GROUP, GROUPS_IN_FLIGHT),
        }
    }

    /// Accepts one notification. Requests that arrive together, from any producers and
    /// tenants, share one transaction and one window of confirms; each answer waits for its
    /// own notification's commit and confirm, as if it had been alone.
    pub async fn accept_one(
        &self,
        tenant: TenantId,
        request: NotificationRequest,
        traceparent: &str,
    ) -> Result<Accepted, AcceptError> {
        self.singles
            .call(Single {
                tenant,
                request,
                traceparent: traceparent.to_owned(),
            })
            .await?
    }

    /// Accepts the requests of one batch in one transaction.
    pub async fn accept(
        &self,
        tenant: TenantId,
        requests: &[&NotificationRequest],
        traceparent: &str,
    ) -> Result<Vec<Accepted>, AcceptError> {
        let inserted = self.store.insert_notifications(tenant, requests).await?;
        let published: Vec<(TenantId, NotificationId, &str)> = inserted
            .iter()
            .filter(|i| i.publish_now)
            .map(|i| (tenant, i.id, traceparent))
            .collect();
        publish(&self.broker, &published)
            .await
            .map_err(AcceptError::Broker)?;
        Ok(inserted.into_iter().map(accepted).collect())
    }
}

struct Single {
    tenant: TenantId,
    request: NotificationRequest,
    traceparent: String,
}

struct Singles {
    store: Store,
    broker: Broker,
}

impl Batch for Singles {
    type Item = Single;
    type Output = Result<Accepted, AcceptError>;
    type Error = AcceptError;

    /// Fails as a whole only before the commit, when nothing was stored and every request may
    /// be tried again; once committed, each request gets its own answer.
    async fn run(&self, singles: &[Single]) -> Result<Vec<Self::Output>, AcceptError> {
        let requests: Vec<(TenantId, &NotificationRequest)> =
            singles.iter().map(|s| (s.tenant, &s.request)).collect();
        let inserted = self.store.insert_notifications_of(&requests).await?;
        let published: Vec<(TenantId, NotificationId, &str)> = inserted
            .iter()
            .zip(singles)
            .filter(|(i, _)| i.publish_now)
            .map(|(i, s)| (s.tenant, i.id, s.traceparent.as_str()))
            .collect();
        Ok(match publish(&self.broker, &published).await {
            Ok(()) => inserted.into_iter().map(|i| Ok(accepted(i))).collect(),
            Err(e) => singles
                .iter()
                .map(|_| Err(AcceptError::Broker(e.clone())))
                .collect(),
        })
    }

    fn lost() -> AcceptError {
        AcceptError::Store(StoreError::Lost)
    }
}

/// Publishes a fan-out message for each notification to `enrich` and waits for every confirm;
/// the error says why the broker did not take them.
async fn publish(
    broker: &Broker,
    notifications: &[(TenantId, NotificationId, &str)],
) -> Result<(), String> {
    let fan_outs: Vec<_> = notifications
        .iter()
        .map(|(tenant, id, traceparent)| (*tenant, *id, (*traceparent).to_owned()))
        .collect();
    if let Err(e) = broker.publish_fan_outs(&fan_outs).await {
        broker.reset().await;
        return Err(e.to_string());
    }
    Ok(())
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
