//! Notifications, the deliveries they fan out to, and the attempts of each delivery.
//!
//! Stages write a chunk's rows in one statement (`UNNEST` over arrays), so a chunk of a hundred
//! deliveries costs one round trip, not a hundred.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use notify_core::{DeliveryId, DeliveryStatus, NotificationId, NotificationRequest, TenantId};

use crate::{Result, Store, StoreError};

/// What inserting a notification did: made it, or found the one with the same idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub id: NotificationId,
    pub delivery_count: i32,
    /// False when the idempotency key matched an earlier notification, which is returned.
    pub created: bool,
    /// Whether the notification still waits for its fan-out: a replayed request for one that
    /// never reached the broker publishes it again.
    pub awaiting_fan_out: bool,
}

#[derive(Clone, Debug)]
pub struct StoredNotification {
    pub id: NotificationId,
    pub tenant_id: TenantId,
    pub request: NotificationRequest,
    pub fanned_out: bool,
}

#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub recipient_index: i32,
    pub user_id: Option<String>,
    pub channel: String,
    pub address: Option<String>,
    /// `pending`, or a terminal status with its reason when the delivery cannot be attempted.
    pub status: DeliveryStatus,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedDelivery {
    pub id: DeliveryId,
    pub attempt: i32,
}

/// The result of one attempt of one delivery.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub id: DeliveryId,
    pub attempt: i32,
    pub status: DeliveryStatus,
    pub error: Option<String>,
    pub provider: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotificationView {
    pub id: NotificationId,
    /// `accepted` until fanned out, `processing` while any delivery is not final, then
    /// `completed`.
    pub status: &'static str,
    pub priority: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivery_count: i32,
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct DeliveryView {
    pub id: Uuid,
    #[serde(rename = "recipient")]
    pub user_id: Option<String>,
    pub address: Option<String>,
    pub channel: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub provider: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Deliveries made at fan-out; a failover channel after the first adds one only when the
/// channel before it fails.
fn planned_deliveries(request: &NotificationRequest) -> i32 {
    (request.recipients.len() * request.initial_channels().count()) as i32
}

/// Where a delivery sits in its notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryOrigin {
    pub notification_id: NotificationId,
    pub recipient_index: usize,
    pub channel: String,
    pub status: String,
}

impl Store {
    /// Inserts notifications in one transaction, each with a fresh id unless its idempotency
    /// key is already taken for this tenant, in which case the earlier one is returned.
    pub async fn insert_notifications(
        &self,
        tenant: TenantId,
        requests: &[&NotificationRequest],
    ) -> Result<Vec<Inserted>> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let id = NotificationId::new();
            let body =
                serde_json::to_value(request).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let count = planned_deliveries(request);
            let created: Option<(Uuid,)> = sqlx::query_as(
                "INSERT INTO notifications
                     (id, tenant_id, idempotency_key, request, priority, category, delivery_count)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
                 RETURNING id",
            )
            .bind(id.0)
            .bind(tenant.0)
            .bind(&request.idempotency_key)
            .bind(&body)
            .bind(request.priority.as_str())
            .bind(&request.category)
            .bind(count)
            .fetch_optional(&mut *tx)
            .await?;
            if created.is_some() {
                results.push(Inserted {
                    id,
                    delivery_count: count,
                    created: true,
                    awaiting_fan_out: true,
                });
                continue;
            }
            let (existing, existing_count, status): (Uuid, i32, String) = sqlx::query_as(
                "SELECT id, delivery_count, status FROM notifications
                 WHERE tenant_id = $1 AND idempotency_key = $2",
            )
            .bind(tenant.0)
            .bind(&request.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            results.push(Inserted {
                id: NotificationId(existing),
                delivery_count: existing_count,
                created: false,
                awaiting_fan_out: status == "accepted",
            });
        }
        tx.commit().await?;
        Ok(results)
    }

    pub async fn load_notification(
        &self,
        tenant: TenantId,
        id: NotificationId,
    ) -> Result<Option<StoredNotification>> {
        let row: Option<(serde_json::Value, String)> = sqlx::query_as(
            "SELECT request, status FROM notifications WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((request, status)) = row else {
            return Ok(None);
        };
        let request = serde_json::from_value(request)
            .map_err(|e| StoreError::Corrupt(format!("notification {id}: {e}")))?;
        Ok(Some(StoredNotification {
            id,
            tenant_id: tenant,
            request,
            fanned_out: status != "accepted",
        }))
    }

    /// Writes the deliveries of a notification and marks it fanned out, in one transaction.
    /// Deliveries that exist already (a redelivered fan-out) are left as they are.
    pub async fn fan_out(
        &self,
        tenant: TenantId,
        notification: NotificationId,
        deliveries: &[NewDelivery],
    ) -> Result<()> {
        let mut ids = Vec::with_capacity(deliveries.len());
        let mut indexes = Vec::with_capacity(deliveries.len());
        let mut users = Vec::with_capacity(deliveries.len());
        let mut channels = Vec::with_capacity(deliveries.len());
        let mut addresses = Vec::with_capacity(deliveries.len());
        let mut statuses = Vec::with_capacity(deliveries.len());
        let mut errors = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            ids.push(d.id.0);
            indexes.push(d.recipient_index);
            users.push(d.user_id.clone());
            channels.push(d.channel.clone());
            addresses.push(d.address.clone());
            statuses.push(d.status.as_str());
            errors.push(d.error.clone());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO deliveries
                 (id, tenant_id, notification_id, recipient_index, user_id, channel, address,
                  status, last_error, finished_at)
             SELECT d.id, $1, $2, d.idx, d.user_id, d.channel, d.address, d.status, d.error,
                    CASE WHEN d.status <> 'pending' THEN now() END
             FROM UNNEST($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::text[])
                  AS d(id, idx, user_id, channel, address, status, error)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(tenant.0)
        .bind(notification.0)
        .bind(&ids)
        .bind(&indexes)
        .bind(&users)
        .bind(&channels)
        .bind(&addresses)
        .bind(&statuses)
        .bind(&errors)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE notifications SET status = 'fanned_out', fanned_out_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = 'accepted'",
        )
        .bind(tenant.0)
        .bind(notification.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The deliveries of a notification that have not been rendered and sent yet.
    pub async fn pending_deliveries(
        &self,
        tenant: TenantId,
        notification: NotificationId,
    ) -> Result<Vec<DeliveryId>> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM deliveries
             WHERE tenant_id = $1 AND notification_id = $2 AND status = 'pending'",
        )
        .bind(tenant.0)
        .bind(notification.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| DeliveryId(id)).collect())
    }

    /// Takes deliveries for an attempt: moves those that may be tried to `sending`, counts the
    /// attempt and records it, all before the provider is called. A delivery already final,
    /// or being sent under another broker message, is not returned and must not be sent.
    /// The same message coming back after a crash may take its own deliveries again.
    pub async fn claim(
        &self,
        tenant: TenantId,
        ids: &[DeliveryId],
        message_id: Uuid,
        provider: &str,
    ) -> Result<Vec<ClaimedDelivery>> {
        let ids: Vec<Uuid> = ids.iter().map(|d| d.0).collect();
        let rows: Vec<(Uuid, i32)> = sqlx::query_as(
            "WITH claimed AS (
                 UPDATE deliveries
                 SET status = 'sending', attempts = attempts + 1, claimed_by = $3,
                     updated_at = now()
                 WHERE tenant_id = $1 AND id = ANY($2)
                   AND (status IN ('pending', 'retrying')
                        OR (status = 'sending' AND claimed_by = $3))
                 RETURNING id, attempts
             ), recorded AS (
                 INSERT INTO attempts (delivery_id, attempt, provider)
                 SELECT id, attempts, $4 FROM claimed
                 ON CONFLICT DO NOTHING
             )
             SELECT id, attempts FROM claimed",
        )
        .bind(tenant.0)
        .bind(&ids)
        .bind(message_id)
        .bind(provider)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, attempt)| ClaimedDelivery {
                id: DeliveryId(id),
                attempt,
            })
            .collect())
    }

    /// Records the outcomes of claimed attempts, for the whole chunk in one statement.
    pub async fn record_outcomes(
        &self,
        tenant: TenantId,
        message_id: Uuid,
        outcomes: &[Outcome],
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = outcomes.iter().map(|o| o.id.0).collect();
        let attempts: Vec<i32> = outcomes.iter().map(|o| o.attempt).collect();
        let statuses: Vec<&str> = outcomes.iter().map(|o| o.status.as_str()).collect();
        let errors: Vec<Option<String>> = outcomes.iter().map(|o| o.error.clone()).collect();
        let providers: Vec<Option<String>> = outcomes.iter().map(|o| o.provider.clone()).collect();
        sqlx::query(
            "WITH o AS (
                 SELECT * FROM UNNEST($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[])
                     AS o(id, attempt, status, error, provider)
             ), updated AS (
                 UPDATE deliveries d
                 SET status = o.status,
                     last_error = COALESCE(o.error, d.last_error),
                     provider = COALESCE(o.provider, d.provider),
                     claimed_by = NULL,
                     updated_at = now(),
                     finished_at = CASE WHEN o.status IN ('delivered', 'failed', 'dead_lettered')
                                        THEN now() END
                 FROM o
                 WHERE d.id = o.id AND d.tenant_id = $1 AND d.claimed_by = $2
                 RETURNING d.id
             )
             UPDATE attempts a
             SET finished_at = now(), outcome = o.status, error = o.error,
                 provider = COALESCE(o.provider, a.provider)
             FROM o
             WHERE a.delivery_id = o.id AND a.attempt = o.attempt",
        )
        .bind(tenant.0)
        .bind(message_id)
        .bind(&ids)
        .bind(&attempts)
        .bind(&statuses)
        .bind(&errors)
        .bind(&providers)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends deliveries that can never be attempted (a template that does not render, an
    /// address that is missing) without counting an attempt. Final ones are left alone.
    pub async fn finish_unattempted(
        &self,
        tenant: TenantId,
        ids: &[DeliveryId],
        status: DeliveryStatus,
        error: &str,
    ) -> Result<()> {
        let ids: Vec<Uuid> = ids.iter().map(|d| d.0).collect();
        sqlx::query(
            "UPDATE deliveries
             SET status = $3, last_error = $4, updated_at = now(), finished_at = now()
             WHERE tenant_id = $1 AND id = ANY($2) AND status IN ('pending', 'retrying')",
        )
        .bind(tenant.0)
        .bind(&ids)
        .bind(status.as_str())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes dead-lettered deliveries eligible again, for a parked chunk that an operator
    /// replays. Returns how many were revived.
    pub async fn revive_dead_lettered(&self, tenant: TenantId, ids: &[DeliveryId]) -> Result<u64> {
        let ids: Vec<Uuid> = ids.iter().map(|d| d.0).collect();
        let done = sqlx::query(
            "UPDATE deliveries SET status = 'retrying', finished_at = NULL, updated_at = now()
             WHERE tenant_id = $1 AND id = ANY($2) AND status = 'dead_lettered'",
        )
        .bind(tenant.0)
        .bind(&ids)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// The notification, recipient position and channel of a delivery.
    pub async fn delivery_origin(
        &self,
        tenant: TenantId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryOrigin>> {
        let row: Option<(Uuid, i32, String, String)> = sqlx::query_as(
            "SELECT notification_id, recipient_index, channel, status FROM deliveries
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(n, index, channel, status)| DeliveryOrigin {
            notification_id: NotificationId(n),
            recipient_index: index.max(0) as usize,
            channel,
            status,
        }))
    }

    /// The notification with one row per delivery, as the status API shows it.
    pub async fn notification_view(
        &self,
        tenant: TenantId,
        id: NotificationId,
    ) -> Result<Option<NotificationView>> {
        type Head = (
            String,
            String,
            Option<String>,
            Option<String>,
            DateTime<Utc>,
            i32,
        );
        let head: Option<Head> = sqlx::query_as(
            "SELECT status, priority, category, idempotency_key, created_at, delivery_count
             FROM notifications WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((status, priority, category, idempotency_key, created_at, delivery_count)) = head
        else {
            return Ok(None);
        };
        let deliveries: Vec<DeliveryView> = sqlx::query_as(
            "SELECT id, user_id, address, channel, status, attempts, last_error, provider,
                    created_at, updated_at, finished_at
             FROM deliveries WHERE tenant_id = $1 AND notification_id = $2
             ORDER BY recipient_index, channel",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let all_final = deliveries.iter().all(|d| {
            d.status
                .parse::<DeliveryStatus>()
                .is_ok_and(|s| s.is_terminal())
        });
        let status = match status.as_str() {
            "accepted" => "accepted",
            "cancelled" => "cancelled",
            _ if all_final => "completed",
            _ => "processing",
        };
        Ok(Some(NotificationView {
            id,
            status,
            priority,
            category,
            idempotency_key,
            created_at,
            delivery_count,
            deliveries,
        }))
    }
}
