//! Time in PostgreSQL: timers the scheduler claims when due (`FOR UPDATE SKIP LOCKED`, so
//! several schedulers never release the same one), cancellation, acknowledgment and
//! resolution of escalations, digests, retention and the sweep for unpublished work.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use notify_core::schedule::Condition;
use notify_core::{DeliveryId, NotificationId, TenantId};

use crate::notifications::{NewDelivery, insert_deliveries, mark_fanned_out};
use crate::{Result, Store, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Fan a notification out at its `send_at`.
    SendAt,
    /// Render deliveries held by a channel delay or quiet hours.
    Release,
    /// Fan out an escalation level.
    Escalation,
    /// Close a digest and render it.
    Digest,
}

impl TimerKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TimerKind::SendAt => "send_at",
            TimerKind::Release => "release",
            TimerKind::Escalation => "escalation",
            TimerKind::Digest => "digest",
        }
    }

    fn parse(s: &str) -> Result<TimerKind> {
        Ok(match s {
            "send_at" => TimerKind::SendAt,
            "release" => TimerKind::Release,
            "escalation" => TimerKind::Escalation,
            "digest" => TimerKind::Digest,
            other => return Err(StoreError::Corrupt(format!("unknown timer kind `{other}`"))),
        })
    }
}

#[derive(Clone, Debug)]
pub struct NewTimer {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub notification_id: NotificationId,
    pub kind: TimerKind,
    pub due_at: DateTime<Utc>,
    /// The stage whose queue gets `body` when the timer fires.
    pub stage: String,
    pub body: Value,
    pub escalation_level: Option<i32>,
    pub digest_id: Option<Uuid>,
    /// Recorded as already fired, for history: the first escalation level goes out at once.
    pub fired: bool,
}

impl NewTimer {
    pub fn new(
        tenant: TenantId,
        notification: NotificationId,
        kind: TimerKind,
        due_at: DateTime<Utc>,
        stage: &str,
        body: &impl Serialize,
    ) -> NewTimer {
        NewTimer {
            id: Uuid::new_v4(),
            tenant_id: tenant,
            notification_id: notification,
            kind,
            due_at,
            stage: stage.to_owned(),
            body: serde_json::to_value(body).expect("a stage message serializes"),
            escalation_level: None,
            digest_id: None,
            fired: false,
        }
    }
}

pub(crate) async fn insert_timer(tx: &mut sqlx::PgConnection, t: &NewTimer) -> Result<()> {
    sqlx::query(
        "INSERT INTO timers (id, tenant_id, notification_id, kind, due_at, stage, body,
                             escalation_level, digest_id, status, fired_at, outcome)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
                 CASE WHEN $10 THEN 'fired' ELSE 'pending' END,
                 CASE WHEN $10 THEN now() END, CASE WHEN $10 THEN 'sent' END)",
    )
    .bind(t.id)
    .bind(t.tenant_id.0)
    .bind(t.notification_id.0)
    .bind(t.kind.as_str())
    .bind(t.due_at)
    .bind(&t.stage)
    .bind(&t.body)
    .bind(t.escalation_level)
    .bind(t.digest_id)
    .bind(t.fired)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A timer that is due, locked by the batch that claimed it.
#[derive(Clone, Debug)]
pub struct DueTimer {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub notification_id: NotificationId,
    pub kind: TimerKind,
    pub due_at: DateTime<Utc>,
    pub stage: String,
    pub body: Value,
    pub digest_id: Option<Uuid>,
}

/// Due timers under row locks. Publish what they hold, then [`DueBatch::fired`]: a scheduler
/// that dies before that leaves them pending, and the next claim takes them again.
pub struct DueBatch {
    tx: Transaction<'static, Postgres>,
    pub timers: Vec<DueTimer>,
}

/// One gathered event of a digest.
#[derive(Clone, Debug)]
pub struct DigestItem {
    pub delivery_id: DeliveryId,
    pub item: Value,
}

impl DueBatch {
    /// Closes a digest so later events open a new one, and returns its key and its events,
    /// oldest first.
    pub async fn close_digest(&mut self, digest: Uuid) -> Result<(String, Vec<DigestItem>)> {
        let (key,): (String,) = sqlx::query_as(
            "UPDATE digests SET status = 'closed' WHERE id = $1 RETURNING digest_key",
        )
        .bind(digest)
        .fetch_one(&mut *self.tx)
        .await?;
        let rows: Vec<(Uuid, Value)> = sqlx::query_as(
            "SELECT delivery_id, item FROM digest_items WHERE digest_id = $1
             ORDER BY created_at, delivery_id",
        )
        .bind(digest)
        .fetch_all(&mut *self.tx)
        .await?;
        let items = rows
            .into_iter()
            .map(|(id, item)| DigestItem {
                delivery_id: DeliveryId(id),
                item,
            })
            .collect();
        Ok((key, items))
    }

    /// Marks the rest of a digest's deliveries as merged into the one that carries it.
    pub async fn merge_digest_deliveries(
        &mut self,
        tenant: TenantId,
        carrier: DeliveryId,
        others: &[DeliveryId],
    ) -> Result<()> {
        let ids: Vec<Uuid> = others.iter().map(|d| d.0).collect();
        sqlx::query(
            "UPDATE deliveries SET status = 'suppressed', updated_at = now(), finished_at = now(),
                    last_error = 'merged into the digest sent as delivery ' || $3::text
             WHERE tenant_id = $1 AND id = ANY($2) AND status = 'scheduled'",
        )
        .bind(tenant.0)
        .bind(&ids)
        .bind(carrier.to_string())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Marks the claimed timers fired and releases the locks.
    pub async fn fired(mut self) -> Result<()> {
        let ids: Vec<Uuid> = self.timers.iter().map(|t| t.id).collect();
        sqlx::query(
            "UPDATE timers SET status = 'fired', fired_at = now(),
                    outcome = COALESCE(outcome, CASE WHEN kind = 'escalation' THEN NULL ELSE 'released' END)
             WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// What cancelling stopped.
#[derive(Clone, Debug, Serialize)]
pub struct Cancelled {
    pub timers: u64,
    pub deliveries: u64,
}

/// The escalation of a notification as the status API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct EscalationView {
    pub state: &'static str,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub levels: Vec<LevelView>,
}

#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct LevelView {
    pub level: i32,
    /// `pending`, `sent`, `skipped` or `cancelled`.
    pub status: String,
    pub due_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub deliveries: i64,
}

impl Store {
    /// Claims up to `limit` due timers, oldest first, skipping those another scheduler holds.
    pub async fn claim_due(&self, limit: i64) -> Result<DueBatch> {
        let mut tx = self.pool.begin().await?;
        type Row = (
            Uuid,
            Uuid,
            Uuid,
            String,
            DateTime<Utc>,
            String,
            Value,
            Option<Uuid>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, tenant_id, notification_id, kind, due_at, stage, body, digest_id
             FROM timers WHERE status = 'pending' AND due_at <= now()
             ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let timers = rows
            .into_iter()
            .map(
                |(id, tenant, notification, kind, due_at, stage, body, digest_id)| {
                    Ok(DueTimer {
                        id,
                        tenant_id: TenantId(tenant),
                        notification_id: NotificationId(notification),
                        kind: TimerKind::parse(&kind)?,
                        due_at,
                        stage,
                        body,
                        digest_id,
                    })
                },
            )
            .collect::<Result<Vec<_>>>()?;
        Ok(DueBatch { tx, timers })
    }

    /// When the next pending timer is due, so the scheduler can sleep until then.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let (at,): (Option<DateTime<Utc>>,) =
            sqlx::query_as("SELECT min(due_at) FROM timers WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(at)
    }

    /// Cancels what is not sent yet: pending timers, and deliveries that have not started.
    /// `None` when there is no such notification for this tenant.
    pub async fn cancel_notification(
        &self,
        tenant: TenantId,
        id: NotificationId,
    ) -> Result<Option<Cancelled>> {
        let mut tx = self.pool.begin().await?;
        let found: Option<(String,)> = sqlx::query_as(
            "SELECT status FROM notifications WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(None);
        }
        // Marked cancelled even after its fan-out, so an escalation level released at this
        // very moment finds it cancelled under the same row lock and does not fire.
        sqlx::query(
            "UPDATE notifications SET status = 'cancelled', cancelled_at = now()
             WHERE id = $1 AND status IN ('accepted', 'fanned_out')",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        let timers = sqlx::query(
            "UPDATE timers SET status = 'cancelled', outcome = 'cancelled'
             WHERE notification_id = $1 AND status = 'pending'",
        )
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let deliveries = sqlx::query(
            "UPDATE deliveries SET status = 'suppressed', last_error = 'cancelled',
                    updated_at = now(), finished_at = now()
             WHERE tenant_id = $1 AND notification_id = $2
               AND status IN ('pending', 'scheduled', 'retrying')",
        )
        .bind(tenant.0)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(Some(Cancelled { timers, deliveries }))
    }

    /// Records an acknowledgment or a resolution, and in the same transaction stops every
    /// level whose condition no longer holds: its timer is cancelled and its deliveries that
    /// have not started are suppressed. `stops` lists those levels. `None` when there is no
    /// such notification.
    pub async fn stop_escalation(
        &self,
        tenant: TenantId,
        id: NotificationId,
        resolve: bool,
        by: Option<&str>,
        stops: &[i32],
    ) -> Result<Option<()>> {
        let mut tx = self.pool.begin().await?;
        let sql = if resolve {
            "UPDATE notifications SET resolved_at = COALESCE(resolved_at, now()),
                    resolved_by = COALESCE(resolved_by, $3)
             WHERE tenant_id = $1 AND id = $2 RETURNING id"
        } else {
            "UPDATE notifications SET acknowledged_at = COALESCE(acknowledged_at, now()),
                    acknowledged_by = COALESCE(acknowledged_by, $3)
             WHERE tenant_id = $1 AND id = $2 RETURNING id"
        };
        let found: Option<(Uuid,)> = sqlx::query_as(sql)
            .bind(tenant.0)
            .bind(id.0)
            .bind(by)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let reason = if resolve { "resolved" } else { "acknowledged" };
        sqlx::query(
            "UPDATE timers SET status = 'cancelled', outcome = $3
             WHERE notification_id = $1 AND kind = 'escalation' AND status = 'pending'
               AND escalation_level = ANY($2)",
        )
        .bind(id.0)
        .bind(stops)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE deliveries SET status = 'suppressed', last_error = $4, updated_at = now(),
                    finished_at = now()
             WHERE tenant_id = $1 AND notification_id = $2 AND escalation_level = ANY($3)
               AND status IN ('pending', 'scheduled')",
        )
        .bind(tenant.0)
        .bind(id.0)
        .bind(stops)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(()))
    }

    /// Fans out one escalation level if its condition still holds, deciding under the same row
    /// lock an acknowledgment takes: an acknowledgment committed first always wins. Returns
    /// whether the level fired.
    pub async fn fan_out_level(
        &self,
        tenant: TenantId,
        id: NotificationId,
        level: i32,
        condition: Option<Condition>,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        type State = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);
        let row: Option<State> = sqlx::query_as(
            "SELECT status, acknowledged_at, resolved_at FROM notifications
             WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, acknowledged, resolved)) = row else {
            return Ok(false);
        };
        let holds = status != "cancelled"
            && condition.is_none_or(|c| c.holds(acknowledged.is_some(), resolved.is_some()));
        let outcome = match (holds, resolved.is_some(), acknowledged.is_some()) {
            (true, _, _) => "sent",
            (false, true, _) => "resolved",
            (false, _, true) => "acknowledged",
            (false, _, _) => "cancelled",
        };
        if holds {
            insert_deliveries(&mut tx, tenant, id, deliveries).await?;
        }
        sqlx::query(
            "UPDATE timers SET outcome = $3
             WHERE notification_id = $1 AND kind = 'escalation' AND escalation_level = $2
               AND status = 'fired' AND outcome IS NULL",
        )
        .bind(id.0)
        .bind(level)
        .bind(outcome)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(holds)
    }

    pub async fn escalation_view(
        &self,
        tenant: TenantId,
        id: NotificationId,
    ) -> Result<Option<EscalationView>> {
        type Head = (
            Option<DateTime<Utc>>,
            Option<String>,
            Option<DateTime<Utc>>,
            Option<String>,
        );
        let head: Option<Head> = sqlx::query_as(
            "SELECT acknowledged_at, acknowledged_by, resolved_at, resolved_by FROM notifications
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        let Some((acknowledged_at, acknowledged_by, resolved_at, resolved_by)) = head else {
            return Ok(None);
        };
        let levels: Vec<LevelView> = sqlx::query_as(
            "SELECT t.escalation_level AS level,
                    CASE WHEN t.status = 'pending' THEN 'pending'
                         WHEN t.outcome = 'sent' THEN 'sent'
                         WHEN t.status = 'fired' AND t.outcome IS NULL THEN 'firing'
                         WHEN t.status = 'fired' THEN 'skipped'
                         ELSE 'cancelled' END AS status,
                    t.due_at, t.fired_at,
                    (SELECT count(*) FROM deliveries d
                     WHERE d.notification_id = t.notification_id
                       AND d.escalation_level = t.escalation_level) AS deliveries
             FROM timers t
             WHERE t.tenant_id = $1 AND t.notification_id = $2 AND t.kind = 'escalation'
             ORDER BY t.escalation_level",
        )
        .bind(tenant.0)
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        if levels.is_empty() {
            return Ok(None);
        }
        let state = if resolved_at.is_some() {
            "resolved"
        } else if acknowledged_at.is_some() {
            "acknowledged"
        } else if levels
            .iter()
            .any(|l| l.status == "pending" || l.status == "firing")
        {
            "escalating"
        } else {
            "exhausted"
        };
        Ok(Some(EscalationView {
            state,
            acknowledged_at,
            acknowledged_by,
            resolved_at,
            resolved_by,
            levels,
        }))
    }

    /// Adds an event to the open digest of its key, recipient and channel, opening one (and its
    /// closing timer) when there is none, in one transaction with the delivery itself. Events
    /// arriving at once serialize on the open digest's row, so they all join the same one.
    #[allow(clippy::too_many_arguments)]
    pub async fn join_digest(
        &self,
        tenant: TenantId,
        key: &str,
        recipient: &str,
        channel: &str,
        window: Duration,
        delivery: &NewDelivery,
        notification: NotificationId,
        item: &Value,
        timer_for: impl Fn(Uuid, DateTime<Utc>) -> NewTimer,
    ) -> Result<Uuid> {
        let mut tx = self.pool.begin().await?;
        insert_deliveries(
            &mut tx,
            tenant,
            notification,
            std::slice::from_ref(delivery),
        )
        .await?;
        // A redelivered fan-out finds the event in its digest already.
        let (joined,): (Option<Uuid>,) =
            sqlx::query_as("SELECT digest_id FROM deliveries WHERE id = $1 FOR UPDATE")
                .bind(delivery.id.0)
                .fetch_one(&mut *tx)
                .await?;
        if let Some(digest) = joined {
            return Ok(digest);
        }
        let digest = loop {
            let fresh = Uuid::new_v4();
            let closes_at = Utc::now() + chrono::Duration::from_std(window).unwrap_or_default();
            let opened: Option<(Uuid,)> = sqlx::query_as(
                "INSERT INTO digests (id, tenant_id, digest_key, recipient, channel, closes_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant_id, digest_key, recipient, channel) WHERE status = 'open'
                 DO NOTHING RETURNING id",
            )
            .bind(fresh)
            .bind(tenant.0)
            .bind(key)
            .bind(recipient)
            .bind(channel)
            .bind(closes_at)
            .fetch_optional(&mut *tx)
            .await?;
            if opened.is_some() {
                insert_timer(&mut tx, &timer_for(fresh, closes_at)).await?;
                break fresh;
            }
            let open: Option<(Uuid,)> = sqlx::query_as(
                "SELECT id FROM digests
                 WHERE tenant_id = $1 AND digest_key = $2 AND recipient = $3 AND channel = $4
                   AND status = 'open'
                 FOR UPDATE",
            )
            .bind(tenant.0)
            .bind(key)
            .bind(recipient)
            .bind(channel)
            .fetch_optional(&mut *tx)
            .await?;
            // None: it closed between the two statements; open the next one.
            if let Some((id,)) = open {
                break id;
            }
        };
        sqlx::query(
            "INSERT INTO digest_items (digest_id, delivery_id, notification_id, item)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(delivery.id.0)
        .bind(notification.0)
        .bind(item)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE deliveries SET digest_id = $2 WHERE id = $1")
            .bind(delivery.id.0)
            .bind(digest)
            .execute(&mut *tx)
            .await?;
        mark_fanned_out(&mut tx, tenant, notification).await?;
        tx.commit().await?;
        Ok(digest)
    }

    /// Notifications committed but still not fanned out after `older_than` (their publish may
    /// have been lost), at most once per `every` each; marks them as swept.
    pub async fn sweep_unpublished(
        &self,
        older_than: Duration,
        every: Duration,
        limit: i64,
    ) -> Result<Vec<(TenantId, NotificationId)>> {
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE notifications SET republished_at = now()
             WHERE id IN (
                 SELECT n.id FROM notifications n
                 WHERE n.status = 'accepted'
                   AND COALESCE(n.send_at, n.created_at) < now() - $1
                   AND (n.republished_at IS NULL OR n.republished_at < now() - $2)
                   AND NOT EXISTS (SELECT 1 FROM timers t
                                   WHERE t.notification_id = n.id AND t.status = 'pending')
                 ORDER BY n.created_at LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING tenant_id, id",
        )
        .bind(older_than)
        .bind(every)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(t, n)| (TenantId(t), NotificationId(n)))
            .collect())
    }

    /// Deletes up to `batch` notifications older than their tenant's retention, with their
    /// deliveries, attempts and timers; returns how many went. Call until it returns 0.
    pub async fn delete_expired(&self, batch: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM notifications WHERE id IN (
                 SELECT n.id FROM notifications n JOIN tenants t ON t.id = n.tenant_id
                 WHERE n.created_at < now() - make_interval(days => t.retention_days)
                 LIMIT $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind(batch)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM digests d USING tenants t
             WHERE d.tenant_id = t.id AND d.status = 'closed'
               AND d.created_at < now() - make_interval(days => t.retention_days)",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn set_retention(&self, tenant: TenantId, days: i32) -> Result<bool> {
        let done = sqlx::query("UPDATE tenants SET retention_days = $2 WHERE id = $1")
            .bind(tenant.0)
            .bind(days)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
