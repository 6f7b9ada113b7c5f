//! Notifications, the deliveries they fan out to, and the attempts of each delivery.
//!
//! Stages write a chunk's rows in one statement (`UNNEST` over arrays), so a chunk of a hundred
//! deliveries costs one round trip, not a hundred.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use notify_core::message::{EnrichMessage, SCHEMA};
use notify_core::{DeliveryId, DeliveryStatus, NotificationId, NotificationRequest, TenantId};

use crate::schedule::{NewTimer, TimerKind, insert_timer};
use crate::{Result, Store, StoreError};

/// What inserting a notification did: made it, or found the one with the same idempotency key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted {
    pub id: NotificationId,
    pub delivery_count: i32,
    /// False when the idempotency key matched an earlier notification, which is returned.
    pub created: bool,
    /// Whether `enrich` should get it now: a new notification that is not scheduled, or a
    /// replayed request for one that never reached the broker.
    pub publish_now: bool,
    /// When it is to be fanned out, if later than now.
    pub send_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub struct StoredNotification {
    pub id: NotificationId,
    pub tenant_id: TenantId,
    pub request: NotificationRequest,
    pub fanned_out: bool,
    pub cancelled: bool,
    pub created_at: DateTime<Utc>,
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
    pub escalation_level: Option<i32>,
    /// For a `scheduled` delivery: when its timer releases it.
    pub scheduled_for: Option<DateTime<Utc>>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<DateTime<Utc>>,
    pub delivery_count: i32,
    pub deliveries: Vec<DeliveryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation: Option<crate::EscalationView>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub escalation_level: Option<i32>,
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
            let send_at = request.send_at.filter(|at| *at > Utc::now());
            let created: Option<(Uuid,)> = sqlx::query_as(
                "INSERT INTO notifications
                     (id, tenant_id, idempotency_key, request, priority, category, delivery_count,
                      send_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
            .bind(send_at)
            .fetch_optional(&mut *tx)
            .await?;
            if created.is_some() {
                if let Some(at) = send_at {
                    // Durable in the same transaction: the scheduler fans it out when due.
                    let message = EnrichMessage {
                        schema: SCHEMA,
                        tenant_id: tenant,
                        notification_id: id,
                        level: None,
                        failover_from: None,
                    };
                    let timer =
                        NewTimer::new(tenant, id, TimerKind::SendAt, at, "enrich", &message);
                    insert_timer(&mut tx, &timer).await?;
                }
                results.push(Inserted {
                    id,
                    delivery_count: count,
                    created: true,
                    publish_now: send_at.is_none(),
                    send_at,
                });
                continue;
            }
            let (existing, existing_count, status, send_at): (
                Uuid,
                i32,
                String,
                Option<DateTime<Utc>>,
            ) = sqlx::query_as(
                "SELECT id, delivery_count, status, send_at FROM notifications
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
                publish_now: status == "accepted" && send_at.is_none_or(|at| at <= Utc::now()),
                send_at: send_at.filter(|at| *at > Utc::now()),
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
        let row: Option<(serde_json::Value, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT request, status, created_at FROM notifications WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((request, status, created_at)) = row else {
            return Ok(None);
        };
        let request = serde_json::from_value(request)
            .map_err(|e| StoreError::Corrupt(format!("notification {id}: {e}")))?;
        Ok(Some(StoredNotification {
            id,
            tenant_id: tenant,
            request,
            fanned_out: status == "fanned_out",
            cancelled: status == "cancelled",
            created_at,
        }))
    }

    /// Writes the deliveries of a notification, the timers that will release its delayed ones,
    /// and marks it fanned out, in one transaction. Deliveries that exist already (a
    /// redelivered fan-out) are left as they are.
    pub async fn fan_out(
        &self,
        tenant: TenantId,
        notification: NotificationId,
        deliveries: &[NewDelivery],
        timers: &[NewTimer],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_deliveries(&mut tx, tenant, notification, deliveries).await?;
        for timer in timers {
            insert_timer(&mut tx, timer).await?;
        }
        mark_fanned_out(&mut tx, tenant, notification).await?;
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
                   AND (status IN ('pending', 'scheduled', 'retrying')
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
             WHERE tenant_id = $1 AND id = ANY($2) AND status IN ('pending', 'scheduled', 'retrying')",
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
            Option<DateTime<Utc>>,
        );
        let head: Option<Head> = sqlx::query_as(
            "SELECT status, priority, category, idempotency_key, created_at, delivery_count, send_at
             FROM notifications WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((
            status,
            priority,
            category,
            idempotency_key,
            created_at,
            delivery_count,
            send_at,
        )) = head
        else {
            return Ok(None);
        };
        let deliveries: Vec<DeliveryView> = sqlx::query_as(
            "SELECT id, user_id, address, channel, status, attempts, last_error, provider,
                    created_at, updated_at, finished_at, scheduled_for, escalation_level
             FROM deliveries WHERE tenant_id = $1 AND notification_id = $2
             ORDER BY escalation_level NULLS FIRST, recipient_index, channel",
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
        let escalation = self.escalation_view(tenant, id).await?;
        let escalating = escalation.as_ref().is_some_and(|e| e.state == "escalating");
        let status = match status.as_str() {
            "accepted" if send_at.is_some_and(|at| at > Utc::now()) => "scheduled",
            "accepted" => "accepted",
            "cancelled" => "cancelled",
            _ if all_final && !escalating => "completed",
            _ => "processing",
        };
        Ok(Some(NotificationView {
            id,
            status,
            priority,
            category,
            idempotency_key,
            created_at,
            send_at,
            delivery_count,
            deliveries,
            escalation,
        }))
    }
}

/// Inserts deliveries in one statement; ids that exist already are skipped.
pub(crate) async fn insert_deliveries(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    notification: NotificationId,
    deliveries: &[NewDelivery],
) -> Result<()> {
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id.0).collect();
    let indexes: Vec<i32> = deliveries.iter().map(|d| d.recipient_index).collect();
    let users: Vec<Option<String>> = deliveries.iter().map(|d| d.user_id.clone()).collect();
    let channels: Vec<String> = deliveries.iter().map(|d| d.channel.clone()).collect();
    let addresses: Vec<Option<String>> = deliveries.iter().map(|d| d.address.clone()).collect();
    let statuses: Vec<&str> = deliveries.iter().map(|d| d.status.as_str()).collect();
    let errors: Vec<Option<String>> = deliveries.iter().map(|d| d.error.clone()).collect();
    let levels: Vec<Option<i32>> = deliveries.iter().map(|d| d.escalation_level).collect();
    let scheduled: Vec<Option<DateTime<Utc>>> =
        deliveries.iter().map(|d| d.scheduled_for).collect();
    sqlx::query(
        "INSERT INTO deliveries
             (id, tenant_id, notification_id, recipient_index, user_id, channel, address,
              status, last_error, escalation_level, scheduled_for, finished_at)
         SELECT d.id, $1, $2, d.idx, d.user_id, d.channel, d.address, d.status, d.error, d.level,
                d.scheduled_for,
                CASE WHEN d.status IN ('failed', 'suppressed') THEN now() END
         FROM UNNEST($3::uuid[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
                     $9::text[], $10::int[], $11::timestamptz[])
              AS d(id, idx, user_id, channel, address, status, error, level, scheduled_for)
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
    .bind(&levels)
    .bind(&scheduled)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks a notification fanned out, unless it was cancelled meanwhile.
pub(crate) async fn mark_fanned_out(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    notification: NotificationId,
) -> Result<()> {
    sqlx::query(
        "UPDATE notifications SET status = 'fanned_out', fanned_out_at = now()
         WHERE tenant_id = $1 AND id = $2 AND status = 'accepted'",
    )
    .bind(tenant.0)
    .bind(notification.0)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
