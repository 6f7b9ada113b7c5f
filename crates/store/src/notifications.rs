//! Notifications, the deliveries they fan out to, and the attempts of each delivery.
//!
//! Stages write a chunk's rows in one statement (`UNNEST` over arrays), so a chunk of a hundred
//! deliveries costs one round trip, not a hundred.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use notify_core::message::EnrichMessage;
use notify_core::{DeliveryId, DeliveryStatus, NotificationId, NotificationRequest, TenantId};

use std::collections::HashMap;

use sqlx::PgPool;

use crate::group::{Batch, Gather};
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

/// The notification that already holds an idempotency key.
struct Earlier {
    id: Uuid,
    count: i32,
    status: String,
    send_at: Option<DateTime<Utc>>,
}

/// tenant, key, id, delivery count, status, send_at.
type EarlierRow = (Uuid, String, Uuid, i32, String, Option<DateTime<Utc>>);

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
        let requests: Vec<(TenantId, &NotificationRequest)> =
            requests.iter().map(|r| (tenant, *r)).collect();
        self.insert_notifications_of(&requests).await
    }

    /// Inserts notifications of any tenants in one transaction: one statement for all the
    /// rows, one more to find the earlier notifications of keys already taken, and the
    /// timers of those sent for later. Two requests with the same tenant and key make one
    /// notification, which both are answered with.
    pub async fn insert_notifications_of(
        &self,
        requests: &[(TenantId, &NotificationRequest)],
    ) -> Result<Vec<Inserted>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let n = requests.len();
        let mut ids: Vec<Uuid> = Vec::with_capacity(n);
        let mut tenants: Vec<Uuid> = Vec::with_capacity(n);
        let mut keys: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut bodies: Vec<serde_json::Value> = Vec::with_capacity(n);
        let mut priorities: Vec<&str> = Vec::with_capacity(n);
        let mut categories: Vec<Option<&str>> = Vec::with_capacity(n);
        let mut counts: Vec<i32> = Vec::with_capacity(n);
        let mut send_ats: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
        for (tenant, request) in requests {
            ids.push(NotificationId::new().0);
            tenants.push(tenant.0);
            keys.push(request.idempotency_key.as_deref());
            bodies.push(
                serde_json::to_value(request).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            );
            priorities.push(request.priority.as_str());
            categories.push(request.category.as_deref());
            counts.push(planned_deliveries(request));
            send_ats.push(request.send_at.filter(|at| *at > now));
        }

        let insert = sqlx::query_as(
            "INSERT INTO notifications
                 (id, tenant_id, idempotency_key, request, priority, category, delivery_count,
                  send_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::text[],
                                  $6::text[], $7::int[], $8::timestamptz[])
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
             RETURNING id",
        )
        .bind(&ids)
        .bind(&tenants)
        .bind(&keys)
        .bind(&bodies)
        .bind(&priorities)
        .bind(&categories)
        .bind(&counts)
        .bind(&send_ats);

        // Without idempotency keys nothing can conflict, and without a later send_at there is
        // no timer: the one statement is the whole write, committed on its own.
        if keys.iter().all(Option::is_none) && send_ats.iter().all(Option::is_none) {
            let created: Vec<(Uuid,)> = insert.fetch_all(&self.pool).await?;
            if created.len() != n {
                return Err(StoreError::Corrupt(format!(
                    "{} of {n} notifications without keys were inserted",
                    created.len()
                )));
            }
            return Ok((0..n)
                .map(|i| Inserted {
                    id: NotificationId(ids[i]),
                    delivery_count: counts[i],
                    created: true,
                    publish_now: true,
                    send_at: None,
                })
                .collect());
        }

        let mut tx = self.pool.begin().await?;
        let created: Vec<(Uuid,)> = insert.fetch_all(&mut *tx).await?;
        let created: std::collections::HashSet<Uuid> =
            created.into_iter().map(|(id,)| id).collect();

        // The keys that were taken, by an earlier notification or an earlier row of this one
        // statement, and the notifications that hold them.
        let (taken_tenants, taken_keys): (Vec<Uuid>, Vec<&str>) = (0..n)
            .filter(|&i| !created.contains(&ids[i]))
            .map(|i| (tenants[i], keys[i].unwrap_or_default()))
            .unzip();
        let mut existing: HashMap<(Uuid, String), Earlier> = HashMap::new();
        if !taken_keys.is_empty() {
            let rows: Vec<EarlierRow> = sqlx::query_as(
                "SELECT n.tenant_id, n.idempotency_key, n.id, n.delivery_count, n.status,
                            n.send_at
                     FROM notifications n
                     JOIN UNNEST($1::uuid[], $2::text[]) AS k(tenant_id, idempotency_key)
                       ON n.tenant_id = k.tenant_id AND n.idempotency_key = k.idempotency_key",
            )
            .bind(&taken_tenants)
            .bind(&taken_keys)
            .fetch_all(&mut *tx)
            .await?;
            for (tenant, key, id, count, status, send_at) in rows {
                existing.insert(
                    (tenant, key),
                    Earlier {
                        id,
                        count,
                        status,
                        send_at,
                    },
                );
            }
        }

        let mut results = Vec::with_capacity(n);
        for (i, (tenant, _)) in requests.iter().enumerate() {
            if created.contains(&ids[i]) {
                let id = NotificationId(ids[i]);
                if let Some(at) = send_ats[i] {
                    // Durable in the same transaction: the scheduler fans it out when due.
                    let message = EnrichMessage::fan_out(*tenant, id);
                    let timer =
                        NewTimer::new(*tenant, id, TimerKind::SendAt, at, "enrich", &message);
                    insert_timer(&mut tx, &timer).await?;
                }
                results.push(Inserted {
                    id,
                    delivery_count: counts[i],
                    created: true,
                    publish_now: send_ats[i].is_none(),
                    send_at: send_ats[i],
                });
                continue;
            }
            let key = (tenants[i], keys[i].unwrap_or_default().to_owned());
            let Some(earlier) = existing.get(&key) else {
                return Err(StoreError::Corrupt(format!(
                    "idempotency key {:?} of tenant {} was taken but is not found",
                    key.1, key.0
                )));
            };
            // A second request of this very statement is answered with the first one's
            // notification, which the first request publishes.
            let first_here = created.contains(&earlier.id);
            results.push(Inserted {
                id: NotificationId(earlier.id),
                delivery_count: earlier.count,
                created: false,
                publish_now: !first_here
                    && earlier.status == "accepted"
                    && earlier.send_at.is_none_or(|at| at <= now),
                send_at: earlier.send_at.filter(|at| *at > now),
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
        self.groups.loads.call((tenant, id)).await
    }

    /// Writes the deliveries of a notification, the timers that will release its delayed ones,
    /// and marks it fanned out, in one transaction. Deliveries that exist already (a
    /// redelivered fan-out) are left as they are.
    pub async fn fan_out(
        &self,
        tenant: TenantId,
        notification: NotificationId,
        deliveries: Vec<NewDelivery>,
        timers: Vec<NewTimer>,
    ) -> Result<()> {
        self.groups
            .fan_outs
            .call(FanOut {
                tenant,
                notification,
                deliveries,
                timers,
            })
            .await
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.groups
            .claims
            .call(Claim {
                tenant,
                ids: ids.to_vec(),
                message_id,
                provider: provider.to_owned(),
            })
            .await
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
        self.groups
            .outcomes
            .call(Outcomes {
                tenant,
                message_id,
                outcomes: outcomes.to_vec(),
            })
            .await
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

/// The insert of the deliveries in [`DeliveryColumns`], bound as `$1` to `$11`; ids that
/// exist already are skipped. A macro so that it can stand alone ([`INSERT_DELIVERIES`]) or
/// as a step of a larger statement, both literal.
macro_rules! insert_deliveries_sql {
    () => {
        "INSERT INTO deliveries
         (id, tenant_id, notification_id, recipient_index, user_id, channel, address,
          status, last_error, escalation_level, scheduled_for, finished_at)
     SELECT d.id, d.tenant_id, d.notification_id, d.idx, d.user_id, d.channel,
            d.address, d.status, d.error, d.level, d.scheduled_for,
            CASE WHEN d.status IN ('failed', 'suppressed') THEN now() END
     FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::int[], $11::timestamptz[])
          AS d(tenant_id, notification_id, id, idx, user_id, channel, address, status,
               error, level, scheduled_for)
     ON CONFLICT (id) DO NOTHING"
    };
}

const INSERT_DELIVERIES: &str = insert_deliveries_sql!();

/// Deliveries of any notifications as one array per column, for [`INSERT_DELIVERIES`].
#[derive(Default)]
struct DeliveryColumns<'a> {
    tenants: Vec<Uuid>,
    notifications: Vec<Uuid>,
    ids: Vec<Uuid>,
    indexes: Vec<i32>,
    users: Vec<Option<&'a str>>,
    channels: Vec<&'a str>,
    addresses: Vec<Option<&'a str>>,
    statuses: Vec<&'a str>,
    errors: Vec<Option<&'a str>>,
    levels: Vec<Option<i32>>,
    scheduled: Vec<Option<DateTime<Utc>>>,
}

impl<'a> DeliveryColumns<'a> {
    fn push(&mut self, tenant: TenantId, notification: NotificationId, d: &'a NewDelivery) {
        self.tenants.push(tenant.0);
        self.notifications.push(notification.0);
        self.ids.push(d.id.0);
        self.indexes.push(d.recipient_index);
        self.users.push(d.user_id.as_deref());
        self.channels.push(&d.channel);
        self.addresses.push(d.address.as_deref());
        self.statuses.push(d.status.as_str());
        self.errors.push(d.error.as_deref());
        self.levels.push(d.escalation_level);
        self.scheduled.push(d.scheduled_for);
    }

    /// Binds the columns as `$1` to `$11`, in the order [`INSERT_DELIVERIES`] reads them.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.tenants)
            .bind(&self.notifications)
            .bind(&self.ids)
            .bind(&self.indexes)
            .bind(&self.users)
            .bind(&self.channels)
            .bind(&self.addresses)
            .bind(&self.statuses)
            .bind(&self.errors)
            .bind(&self.levels)
            .bind(&self.scheduled)
    }
}

/// Inserts deliveries of one notification in one statement; ids that exist already are
/// skipped.
pub(crate) async fn insert_deliveries(
    tx: &mut sqlx::PgConnection,
    tenant: TenantId,
    notification: NotificationId,
    deliveries: &[NewDelivery],
) -> Result<()> {
    let mut columns = DeliveryColumns::default();
    for d in deliveries {
        columns.push(tenant, notification, d);
    }
    columns
        .bind(sqlx::query(INSERT_DELIVERIES))
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

/// The writes that many messages make at once, each gathered into group commits.
pub(crate) struct Groups {
    claims: Gather<ClaimBatch>,
    outcomes: Gather<OutcomeBatch>,
    fan_outs: Gather<FanOutBatch>,
    loads: Gather<LoadBatch>,
}

/// Calls a group holds at most, and groups written at once, of each kind: a worker's pool has
/// room for all of them beside its reads.
const MAX_GROUP: usize = 64;
const GROUPS_IN_FLIGHT: usize = 3;

impl Groups {
    pub(crate) fn new(pool: &PgPool) -> Groups {
        Groups {
            claims: Gather::new(ClaimBatch(pool.clone()), MAX_GROUP, GROUPS_IN_FLIGHT),
            outcomes: Gather::new(OutcomeBatch(pool.clone()), MAX_GROUP, GROUPS_IN_FLIGHT),
            fan_outs: Gather::new(FanOutBatch(pool.clone()), MAX_GROUP, GROUPS_IN_FLIGHT),
            loads: Gather::new(LoadBatch(pool.clone()), MAX_GROUP, GROUPS_IN_FLIGHT),
        }
    }
}

struct Claim {
    tenant: TenantId,
    ids: Vec<DeliveryId>,
    message_id: Uuid,
    provider: String,
}

struct ClaimBatch(PgPool);

impl Batch for ClaimBatch {
    type Item = Claim;
    type Output = Vec<ClaimedDelivery>;
    type Error = StoreError;

    /// One statement for every chunk of the group. Two chunks carrying the same delivery under
    /// different broker messages meet in the same `UPDATE`, which changes the row once: one of
    /// them claims it and the other finds it taken.
    async fn run(&self, claims: &[Claim]) -> Result<Vec<Vec<ClaimedDelivery>>> {
        let rows = claims.iter().map(|c| c.ids.len()).sum();
        let mut tenants: Vec<Uuid> = Vec::with_capacity(rows);
        let mut ids: Vec<Uuid> = Vec::with_capacity(rows);
        let mut messages: Vec<Uuid> = Vec::with_capacity(rows);
        let mut providers: Vec<&str> = Vec::with_capacity(rows);
        for claim in claims {
            for id in &claim.ids {
                tenants.push(claim.tenant.0);
                ids.push(id.0);
                messages.push(claim.message_id);
                providers.push(&claim.provider);
            }
        }
        let claimed: Vec<(Uuid, i32, Uuid)> = sqlx::query_as(
            "WITH wanted AS (
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[])
                     AS w(tenant_id, id, message_id, provider)
             ), claimed AS (
                 UPDATE deliveries d
                 SET status = 'sending', attempts = d.attempts + 1, claimed_by = w.message_id,
                     updated_at = now()
                 FROM wanted w
                 WHERE d.id = w.id AND d.tenant_id = w.tenant_id
                   AND (d.status IN ('pending', 'scheduled', 'retrying')
                        OR (d.status = 'sending' AND d.claimed_by = w.message_id))
                 RETURNING d.id, d.attempts, w.message_id, w.provider
             ), recorded AS (
                 INSERT INTO attempts (delivery_id, attempt, provider)
                 SELECT id, attempts, provider FROM claimed
                 ON CONFLICT DO NOTHING
             )
             SELECT id, attempts, message_id FROM claimed",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&messages)
        .bind(&providers)
        .fetch_all(&self.0)
        .await?;
        let mut by_message: HashMap<Uuid, Vec<ClaimedDelivery>> = HashMap::new();
        for (id, attempt, message) in claimed {
            by_message
                .entry(message)
                .or_default()
                .push(ClaimedDelivery {
                    id: DeliveryId(id),
                    attempt,
                });
        }
        Ok(claims
            .iter()
            .map(|c| by_message.remove(&c.message_id).unwrap_or_default())
            .collect())
    }

    fn lost() -> StoreError {
        StoreError::Lost
    }
}

struct Outcomes {
    tenant: TenantId,
    message_id: Uuid,
    outcomes: Vec<Outcome>,
}

struct OutcomeBatch(PgPool);

impl Batch for OutcomeBatch {
    type Item = Outcomes;
    type Output = ();
    type Error = StoreError;

    /// One statement for the outcomes of every chunk of the group; a delivery is changed only
    /// while the message that claimed it still holds it.
    async fn run(&self, groups: &[Outcomes]) -> Result<Vec<()>> {
        let rows = groups.iter().map(|g| g.outcomes.len()).sum();
        let mut tenants: Vec<Uuid> = Vec::with_capacity(rows);
        let mut messages: Vec<Uuid> = Vec::with_capacity(rows);
        let mut ids: Vec<Uuid> = Vec::with_capacity(rows);
        let mut attempts: Vec<i32> = Vec::with_capacity(rows);
        let mut statuses: Vec<&str> = Vec::with_capacity(rows);
        let mut errors: Vec<Option<&str>> = Vec::with_capacity(rows);
        let mut providers: Vec<Option<&str>> = Vec::with_capacity(rows);
        for group in groups {
            for o in &group.outcomes {
                tenants.push(group.tenant.0);
                messages.push(group.message_id);
                ids.push(o.id.0);
                attempts.push(o.attempt);
                statuses.push(o.status.as_str());
                errors.push(o.error.as_deref());
                providers.push(o.provider.as_deref());
            }
        }
        sqlx::query(
            "WITH o AS (
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::text[],
                                      $6::text[], $7::text[])
                     AS o(tenant_id, message_id, id, attempt, status, error, provider)
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
                 WHERE d.id = o.id AND d.tenant_id = o.tenant_id AND d.claimed_by = o.message_id
                 RETURNING d.id
             )
             UPDATE attempts a
             SET finished_at = now(), outcome = o.status, error = o.error,
                 provider = COALESCE(o.provider, a.provider)
             FROM o
             WHERE a.delivery_id = o.id AND a.attempt = o.attempt",
        )
        .bind(&tenants)
        .bind(&messages)
        .bind(&ids)
        .bind(&attempts)
        .bind(&statuses)
        .bind(&errors)
        .bind(&providers)
        .execute(&self.0)
        .await?;
        Ok(vec![(); groups.len()])
    }

    fn lost() -> StoreError {
        StoreError::Lost
    }
}

struct FanOut {
    tenant: TenantId,
    notification: NotificationId,
    deliveries: Vec<NewDelivery>,
    timers: Vec<NewTimer>,
}

struct FanOutBatch(PgPool);

impl Batch for FanOutBatch {
    type Item = FanOut;
    type Output = ();
    type Error = StoreError;

    /// Every fan-out of the group in one statement: all the deliveries and all the marks.
    /// Timers, which only delayed, held or escalating notifications have, join it in one
    /// transaction.
    async fn run(&self, fan_outs: &[FanOut]) -> Result<Vec<()>> {
        let timers: Vec<&NewTimer> = fan_outs.iter().flat_map(|f| &f.timers).collect();
        if timers.is_empty() {
            write_fan_outs(&self.0, fan_outs).await?;
        } else {
            let mut tx = self.0.begin().await?;
            for timer in timers {
                insert_timer(&mut tx, timer).await?;
            }
            write_fan_outs(&mut *tx, fan_outs).await?;
            tx.commit().await?;
        }
        Ok(vec![(); fan_outs.len()])
    }

    fn lost() -> StoreError {
        StoreError::Lost
    }
}

/// The deliveries of every fan-out, and every notification marked fanned out, in one
/// statement. Deliveries that exist already (a redelivered fan-out) are left as they are.
async fn write_fan_outs<'e, E>(executor: E, fan_outs: &[FanOut]) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let mut columns = DeliveryColumns::default();
    for f in fan_outs {
        for d in &f.deliveries {
            columns.push(f.tenant, f.notification, d);
        }
    }
    let marked_tenants: Vec<Uuid> = fan_outs.iter().map(|f| f.tenant.0).collect();
    let marked: Vec<Uuid> = fan_outs.iter().map(|f| f.notification.0).collect();
    columns
        .bind(sqlx::query(FAN_OUT))
        .bind(&marked_tenants)
        .bind(&marked)
        .execute(executor)
        .await?;
    Ok(())
}

/// The deliveries of [`INSERT_DELIVERIES`] and the marks of their notifications, `$12` and
/// `$13`, in one statement.
const FAN_OUT: &str = concat!(
    "WITH inserted AS (",
    insert_deliveries_sql!(),
    ")
     UPDATE notifications n SET status = 'fanned_out', fanned_out_at = now()
     FROM UNNEST($12::uuid[], $13::uuid[]) AS m(tenant_id, id)
     WHERE n.tenant_id = m.tenant_id AND n.id = m.id AND n.status = 'accepted'"
);

struct LoadBatch(PgPool);

impl Batch for LoadBatch {
    type Item = (TenantId, NotificationId);
    type Output = Option<StoredNotification>;
    type Error = StoreError;

    /// The notifications of every call in one query.
    async fn run(&self, wanted: &[(TenantId, NotificationId)]) -> Result<Vec<Self::Output>> {
        let tenants: Vec<Uuid> = wanted.iter().map(|(t, _)| t.0).collect();
        let ids: Vec<Uuid> = wanted.iter().map(|(_, n)| n.0).collect();
        let rows: Vec<(Uuid, Uuid, serde_json::Value, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT n.tenant_id, n.id, n.request, n.status, n.created_at
             FROM notifications n
             JOIN UNNEST($1::uuid[], $2::uuid[]) AS w(tenant_id, id)
               ON n.tenant_id = w.tenant_id AND n.id = w.id",
        )
        .bind(&tenants)
        .bind(&ids)
        .fetch_all(&self.0)
        .await?;
        let mut found: HashMap<(Uuid, Uuid), StoredNotification> = HashMap::new();
        for (tenant, id, request, status, created_at) in rows {
            let request = serde_json::from_value(request)
                .map_err(|e| StoreError::Corrupt(format!("notification {id}: {e}")))?;
            found.insert(
                (tenant, id),
                StoredNotification {
                    id: NotificationId(id),
                    tenant_id: TenantId(tenant),
                    request,
                    fanned_out: status == "fanned_out",
                    cancelled: status == "cancelled",
                    created_at,
                },
            );
        }
        // The same notification may be asked for twice in a group (a message and its
        // republished copy): both get it.
        Ok(wanted
            .iter()
            .map(|(t, n)| found.get(&(t.0, n.0)).cloned())
            .collect())
    }

    fn lost() -> StoreError {
        StoreError::Lost
    }
}
