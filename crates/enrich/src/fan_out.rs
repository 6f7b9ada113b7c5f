//! The fan-out of one notification. Delivery ids are derived from the notification, the
//! recipient's position, the channel and the escalation level, so a redelivered message finds
//! the deliveries it made before and only sends on those not yet rendered.
//!
//! What is not due now — a channel's delay, a recipient's quiet hours, a later escalation
//! level, a digest window — becomes a timer in the same transaction as the deliveries, and the
//! scheduler releases it. A delivery that failed for good comes back here to fail over to its
//! recipient's next channel.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};

use notify_broker::{Headers, Outgoing, Stage};
use notify_core::message::{
    DeliveryEvent, DigestEntry, EnrichMessage, EventItem, RenderChunk, RenderItem, SCHEMA,
    check_schema,
};
use notify_core::schedule::{EscalationLevel, minutes};
use notify_core::{Channel, ChannelSpec, DeliveryId, DeliveryStatus, Priority, Recipient};
use notify_runtime::{Context, HandleError, Handler, Incoming};
use notify_store::{NewDelivery, NewTimer, StoredNotification, TimerKind};

/// A delivery due less than this far ahead goes now rather than through a timer.
const HOLD_THRESHOLD: chrono::Duration = chrono::Duration::milliseconds(500);

pub struct FanOut;

impl Handler for FanOut {
    async fn handle(&self, ctx: &Context, message: &Incoming) -> Result<(), HandleError> {
        let msg: EnrichMessage = serde_json::from_slice(&message.body)
            .map_err(|e| HandleError::Malformed(format!("not an enrich message: {e}")))?;
        check_schema(msg.schema).map_err(HandleError::Malformed)?;
        tracing::Span::current().record(
            "notification_id",
            tracing::field::display(msg.notification_id),
        );

        let Some(notification) = ctx
            .store
            .load_notification(msg.tenant_id, msg.notification_id)
            .await?
        else {
            return Err(HandleError::Malformed(format!(
                "notification {} of tenant {} does not exist",
                msg.notification_id, msg.tenant_id
            )));
        };
        if notification.cancelled {
            tracing::info!("cancelled before its fan-out; nothing to send");
            return Ok(());
        }
        if let Some(from) = msg.failover_from {
            return fail_over(ctx, message, &notification, from).await;
        }
        let all: Vec<usize> = (0..notification.request.recipients.len()).collect();
        let recipients = merged_recipients(ctx, &notification, &all).await?;
        let job = FanOutJob {
            ctx,
            message,
            n: &notification,
            recipients: &recipients,
        };
        match msg.level {
            Some(level) => job.escalation_level(level).await,
            None if notification.request.digest.is_some() => job.digest().await,
            None => job.initial().await,
        }
    }
}

struct FanOutJob<'a> {
    ctx: &'a Context,
    message: &'a Incoming,
    n: &'a StoredNotification,
    recipients: &'a [Recipient],
}

impl FanOutJob<'_> {
    /// The first fan-out: every recipient (or, for an escalation, those the first level
    /// targets), with delayed and held deliveries scheduled and later levels timed.
    async fn initial(&self) -> Result<(), HandleError> {
        let (tenant, id) = (self.n.tenant_id, self.n.id);
        let escalation = self.n.request.escalation.as_ref();
        let first_now = escalation
            .map(|e| &e.levels[0])
            .filter(|l| l.delay_minutes <= 0.0);
        let mut planned = match (escalation, first_now) {
            (Some(_), Some(level)) => plan(self.n, self.recipients, Some(level)),
            (Some(_), None) => Vec::new(),
            (None, _) => plan(self.n, self.recipients, None),
        };

        if self.n.fanned_out {
            let pending: HashSet<DeliveryId> = self
                .ctx
                .store
                .pending_deliveries(tenant, id)
                .await?
                .into_iter()
                .collect();
            planned.retain(|p| pending.contains(&p.row.id));
            return self.publish(&planned, false).await;
        }

        let now = Utc::now();
        if escalation.is_none() {
            self.hold(&mut planned, now);
        }
        let mut timers = self.release_timers(&planned);
        if let Some(e) = escalation {
            for level in &e.levels {
                let due = self.n.created_at + minutes(level.delay_minutes);
                let body = EnrichMessage {
                    schema: SCHEMA,
                    tenant_id: tenant,
                    notification_id: id,
                    level: Some(level.level),
                    failover_from: None,
                };
                let mut timer =
                    NewTimer::new(tenant, id, TimerKind::Escalation, due, "enrich", &body);
                timer.escalation_level = Some(level.level as i32);
                timer.fired = first_now.is_some_and(|f| f.level == level.level);
                timers.push(timer);
            }
        }
        let rows: Vec<NewDelivery> = planned.iter().map(|p| p.row.clone()).collect();
        let (deliveries, timer_count) = (rows.len(), timers.len());
        self.ctx.store.fan_out(tenant, id, rows, timers).await?;
        planned.retain(|p| p.row.status != DeliveryStatus::Scheduled);
        self.publish(&planned, true).await?;
        tracing::info!(
            deliveries,
            held = deliveries - planned.len(),
            timers = timer_count,
            "fanned out"
        );
        Ok(())
    }

    /// A later escalation level, released by the scheduler: it fires only if its condition
    /// still holds when the deliveries are written.
    async fn escalation_level(&self, level: u32) -> Result<(), HandleError> {
        let Some(spec) = self
            .n
            .request
            .escalation
            .as_ref()
            .and_then(|e| e.levels.get(level as usize - 1))
        else {
            return Err(HandleError::Malformed(format!(
                "notification {} has no escalation level {level}",
                self.n.id
            )));
        };
        let mut planned = plan(self.n, self.recipients, Some(spec));
        let rows: Vec<NewDelivery> = planned.iter().map(|p| p.row.clone()).collect();
        let fired = self
            .ctx
            .store
            .fan_out_level(
                self.n.tenant_id,
                self.n.id,
                level as i32,
                spec.condition(),
                &rows,
            )
            .await?;
        if !fired {
            tracing::info!(
                level,
                "escalation level skipped: its condition no longer holds"
            );
            return Ok(());
        }
        let pending: HashSet<DeliveryId> = self
            .ctx
            .store
            .pending_deliveries(self.n.tenant_id, self.n.id)
            .await?
            .into_iter()
            .collect();
        planned.retain(|p| pending.contains(&p.row.id));
        tracing::info!(level, deliveries = planned.len(), "escalation level fired");
        self.publish(&planned, true).await
    }

    /// Each delivery joins the open digest of its recipient, channel and key.
    async fn digest(&self) -> Result<(), HandleError> {
        let digest = self
            .n
            .request
            .digest
            .as_ref()
            .expect("checked by the caller");
        let (tenant, id) = (self.n.tenant_id, self.n.id);
        let mut planned = plan(self.n, self.recipients, None);
        let window = std::time::Duration::from_secs(u64::from(digest.window_seconds));
        for p in &mut planned {
            if p.row.status != DeliveryStatus::Pending {
                continue;
            }
            p.row.status = DeliveryStatus::Scheduled;
            let recipient = &self.recipients[p.recipient];
            let spec = &self.n.request.channels[p.channel_index];
            let who = recipient
                .user_id
                .clone()
                .or_else(|| p.row.address.clone())
                .unwrap_or_default();
            let entry = DigestEntry {
                delivery_id: p.row.id,
                notification_id: id,
                recipient: recipient.clone(),
                spec: spec.clone(),
                priority: self.n.request.priority,
                category: self.n.request.category.clone(),
                title: self.n.request.title.clone(),
                content: self.n.request.content.clone(),
                metadata: self.n.request.metadata.clone(),
                created_at: self.n.created_at,
            };
            let item = serde_json::to_value(&entry).expect("an entry serializes");
            let timer_for = |digest_id, closes_at| {
                let mut t = NewTimer::new(
                    tenant,
                    id,
                    TimerKind::Digest,
                    closes_at,
                    "render",
                    &serde_json::json!({}),
                );
                t.digest_id = Some(digest_id);
                t
            };
            let channel = spec.channel().as_str();
            self.ctx
                .store
                .join_digest(
                    tenant,
                    &digest.key,
                    &who,
                    channel,
                    window,
                    &p.row,
                    id,
                    &item,
                    timer_for,
                )
                .await?;
        }
        let unreachable: Vec<NewDelivery> = planned
            .iter()
            .filter(|p| p.row.status == DeliveryStatus::Failed)
            .map(|p| p.row.clone())
            .collect();
        self.ctx
            .store
            .fan_out(tenant, id, unreachable, Vec::new())
            .await?;
        self.ctx
            .publish_events(&unreachable_events(self.n, &planned))
            .await?;
        tracing::info!(deliveries = planned.len(), key = %digest.key, "joined digests");
        Ok(())
    }

    /// Holds deliveries that are not due yet: the channel's delay, then the recipient's quiet
    /// hours unless the notification is critical.
    fn hold(&self, planned: &mut [Planned], now: DateTime<Utc>) {
        for p in planned
            .iter_mut()
            .filter(|p| p.row.status == DeliveryStatus::Pending)
        {
            let spec = &self.n.request.channels[p.channel_index];
            let mut due = now + minutes(spec.delay_minutes());
            let recipient = &self.recipients[p.recipient];
            if self.n.request.priority < Priority::Critical
                && let Some(quiet) = &recipient.quiet_hours
            {
                let zone = recipient
                    .timezone
                    .as_deref()
                    .and_then(|z| z.parse().ok())
                    .unwrap_or(chrono_tz::UTC);
                due = quiet.release(due, zone);
            }
            if due - now > HOLD_THRESHOLD {
                p.row.status = DeliveryStatus::Scheduled;
                p.row.scheduled_for = Some(due);
            }
        }
    }

    /// One release timer per channel and due time, carrying the render chunk it will publish.
    fn release_timers(&self, planned: &[Planned]) -> Vec<NewTimer> {
        let mut groups: BTreeMap<(usize, DateTime<Utc>), Vec<&Planned>> = BTreeMap::new();
        for p in planned
            .iter()
            .filter(|p| p.row.status == DeliveryStatus::Scheduled)
        {
            let due = p
                .row
                .scheduled_for
                .expect("a scheduled delivery has a time");
            groups.entry((p.channel_index, due)).or_default().push(p);
        }
        let mut timers = Vec::new();
        for ((_, due), group) in groups {
            for chunk in chunks(self.ctx.config.chunk_size, self.n, self.recipients, &group) {
                timers.push(NewTimer::new(
                    self.n.tenant_id,
                    self.n.id,
                    TimerKind::Release,
                    due,
                    "render",
                    &chunk,
                ));
            }
        }
        timers
    }

    async fn publish(&self, planned: &[Planned], events: bool) -> Result<(), HandleError> {
        let sendable: Vec<&Planned> = planned
            .iter()
            .filter(|p| p.row.status == DeliveryStatus::Pending)
            .collect();
        let chunks = chunks(
            self.ctx.config.chunk_size,
            self.n,
            self.recipients,
            &sendable,
        );
        let bodies: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| serde_json::to_vec(c).expect("a chunk serializes"))
            .collect();
        let queue = self.ctx.topology().stage_queue(Stage::Render);
        let headers = Headers::new(
            Some(self.n.tenant_id),
            Some(self.message.traceparent.clone()),
        );
        let outgoing: Vec<Outgoing<'_>> = bodies
            .iter()
            .map(|body| Outgoing {
                exchange: "",
                routing_key: &queue,
                body,
                headers: &headers,
            })
            .collect();
        self.ctx.publisher.send_all(&outgoing).await?;
        self.ctx.count_published(Stage::Render, outgoing.len());
        if events {
            self.ctx
                .publish_events(&unreachable_events(self.n, planned))
                .await?;
        }
        Ok(())
    }
}

/// The next failover channel for the recipient of a delivery that ended without success.
async fn fail_over(
    ctx: &Context,
    message: &Incoming,
    n: &StoredNotification,
    from: DeliveryId,
) -> Result<(), HandleError> {
    let Some(origin) = ctx.store.delivery_origin(n.tenant_id, from).await? else {
        return Err(HandleError::Malformed(format!(
            "delivery {from} of notification {} does not exist",
            n.id
        )));
    };
    if !matches!(origin.status.as_str(), "failed" | "dead_lettered") {
        tracing::info!(delivery_id = %from, status = %origin.status, "no failover: the delivery did not fail");
        return Ok(());
    }
    let channel: Channel = origin
        .channel
        .parse()
        .map_err(|_| HandleError::Malformed(format!("unknown channel `{}`", origin.channel)))?;
    if origin.recipient_index >= n.request.recipients.len() {
        return Err(HandleError::Malformed(format!(
            "delivery {from} names recipient {} of {}",
            origin.recipient_index,
            n.request.recipients.len()
        )));
    }
    let recipients = merged_recipients(ctx, n, &[origin.recipient_index]).await?;
    let mut planned = Vec::new();
    let next = n.request.failover_after(channel);
    walk_failover(
        n,
        &recipients[0],
        0,
        origin.recipient_index,
        &next,
        &mut planned,
    );
    if planned.is_empty() {
        tracing::info!(delivery_id = %from, channel = %channel, "no failover channel left");
        return Ok(());
    }

    // FIXME: between the failed delivery being recorded and this row being written, every
    // delivery of the notification can be final, so its status reads `completed` for a moment.
    let rows: Vec<NewDelivery> = planned.iter().map(|p| p.row.clone()).collect();
    ctx.store
        .fan_out(n.tenant_id, n.id, rows, Vec::new())
        .await?;
    // A redelivered failover finds its rows made before and sends on only what is pending.
    let pending: HashSet<DeliveryId> = ctx
        .store
        .pending_deliveries(n.tenant_id, n.id)
        .await?
        .into_iter()
        .collect();
    let sent: Vec<Planned> = planned
        .into_iter()
        .filter(|p| p.row.status != DeliveryStatus::Pending || pending.contains(&p.row.id))
        .collect();
    let job = FanOutJob {
        ctx,
        message,
        n,
        recipients: &recipients,
    };
    job.publish(&sent, true).await?;
    tracing::info!(delivery_id = %from, from_channel = %channel, "failed over to the next channel");
    Ok(())
}

/// The recipients at these positions, each with its stored profile merged underneath and
/// without the push tokens known to be dead.
async fn merged_recipients(
    ctx: &Context,
    n: &StoredNotification,
    indexes: &[usize],
) -> Result<Vec<Recipient>, HandleError> {
    let wanted: Vec<&Recipient> = indexes.iter().map(|i| &n.request.recipients[*i]).collect();
    let ids: Vec<String> = wanted.iter().filter_map(|r| r.user_id.clone()).collect();
    let profiles = ctx.store.recipients(n.tenant_id, &ids).await?;
    let mut merged: Vec<Recipient> = wanted
        .into_iter()
        .map(
            |r| match r.user_id.as_ref().and_then(|id| profiles.get(id)) {
                Some(profile) => r.clone().merged_over(profile),
                None => r.clone(),
            },
        )
        .collect();
    if n.request.spec(Channel::Push).is_some() {
        let tokens: Vec<String> = merged
            .iter()
            .flat_map(|r| r.push_tokens.iter().cloned())
            .collect();
        let dead = ctx.store.dead_push_tokens(n.tenant_id, &tokens).await?;
        if !dead.is_empty() {
            for r in &mut merged {
                r.push_tokens.retain(|t| !dead.contains(t));
            }
        }
    }
    Ok(merged)
}

struct Planned {
    row: NewDelivery,
    /// The position in the recipients handed to the planner.
    recipient: usize,
    channel_index: usize,
}

/// One delivery per recipient and channel fanned out at once (of failover channels, the
/// first that reaches the recipient); for an escalation level, only the recipients whose
/// role it targets.
fn plan(
    n: &StoredNotification,
    recipients: &[Recipient],
    level: Option<&EscalationLevel>,
) -> Vec<Planned> {
    let mut planned = Vec::with_capacity(recipients.len() * n.request.channels.len());
    for (channel_index, spec) in n.request.initial_channels() {
        let channel = spec.channel();
        for (recipient_index, r) in recipients.iter().enumerate() {
            if level.is_some_and(|l| !l.targets(r.role.as_deref())) {
                continue;
            }
            if level.is_none() && n.request.failover.first() == Some(&channel) {
                walk_failover(
                    n,
                    r,
                    recipient_index,
                    recipient_index,
                    &n.request.failover,
                    &mut planned,
                );
            } else {
                planned.push(planned_one(
                    n,
                    r,
                    recipient_index,
                    recipient_index,
                    channel_index,
                    spec,
                    level,
                ));
            }
        }
    }
    planned
}

/// Plans the first of `channels` that reaches the recipient, failing those before it that
/// have no address for them.
fn walk_failover(
    n: &StoredNotification,
    r: &Recipient,
    recipient: usize,
    recipient_index: usize,
    channels: &[Channel],
    planned: &mut Vec<Planned>,
) {
    for channel in channels {
        let Some((channel_index, spec)) = n
            .request
            .channels
            .iter()
            .enumerate()
            .find(|(_, c)| c.channel() == *channel)
        else {
            continue;
        };
        let one = planned_one(n, r, recipient, recipient_index, channel_index, spec, None);
        let reached = one.row.status == DeliveryStatus::Pending;
        planned.push(one);
        if reached {
            return;
        }
    }
}

fn planned_one(
    n: &StoredNotification,
    r: &Recipient,
    recipient: usize,
    recipient_index: usize,
    channel_index: usize,
    spec: &ChannelSpec,
    level: Option<&EscalationLevel>,
) -> Planned {
    let channel = spec.channel();
    let address = spec.address_for(r);
    let (status, error) = match &address {
        Some(_) => (DeliveryStatus::Pending, None),
        None => (
            DeliveryStatus::Failed,
            Some(format!(
                "the recipient has no {} address",
                channel_noun(channel)
            )),
        ),
    };
    let name = match level {
        Some(l) => format!("{}@{}", channel.as_str(), l.level),
        None => channel.as_str().to_owned(),
    };
    Planned {
        row: NewDelivery {
            id: DeliveryId::derive(n.id, recipient_index, &name),
            recipient_index: recipient_index as i32,
            user_id: r.user_id.clone(),
            channel: channel.as_str().to_owned(),
            address,
            status,
            error,
            escalation_level: level.map(|l| l.level as i32),
            scheduled_for: None,
        },
        recipient,
        channel_index,
    }
}

fn channel_noun(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        Channel::Slack => "Slack",
        Channel::Push => "live push token",
        Channel::Teams | Channel::Webhook => "endpoint",
    }
}

/// Render chunks: per channel, up to `size` deliveries each.
fn chunks(
    size: usize,
    n: &StoredNotification,
    recipients: &[Recipient],
    planned: &[&Planned],
) -> Vec<RenderChunk> {
    let mut out = Vec::new();
    for (channel_index, spec) in n.request.channels.iter().enumerate() {
        let items: Vec<RenderItem> = planned
            .iter()
            .filter(|p| p.channel_index == channel_index)
            .map(|p| RenderItem {
                delivery_id: p.row.id,
                recipient: recipients[p.recipient].clone(),
            })
            .collect();
        for part in items.chunks(size) {
            out.push(RenderChunk {
                schema: SCHEMA,
                tenant_id: n.tenant_id,
                notification_id: n.id,
                spec: spec.clone(),
                priority: n.request.priority,
                category: n.request.category.clone(),
                title: n.request.title.clone(),
                content: n.request.content.clone(),
                metadata: n.request.metadata.clone(),
                failover: n.request.failover_after(spec.channel()),
                deliveries: part.to_vec(),
                digest: None,
            });
        }
    }
    out
}

/// `delivery.failed` events for the deliveries that could not be attempted at all.
fn unreachable_events(n: &StoredNotification, planned: &[Planned]) -> Vec<DeliveryEvent> {
    let mut events = Vec::new();
    for spec in &n.request.channels {
        let channel = spec.channel();
        let deliveries: Vec<EventItem> = planned
            .iter()
            .filter(|p| p.row.channel == channel.as_str() && p.row.status == DeliveryStatus::Failed)
            .map(|p| EventItem {
                delivery_id: p.row.id,
                user_id: p.row.user_id.clone(),
                error: p.row.error.clone(),
            })
            .collect();
        events.push(DeliveryEvent {
            schema: SCHEMA,
            event: "delivery.failed".into(),
            tenant_id: n.tenant_id,
            notification_id: n.id,
            channel,
            deliveries,
        });
    }
    events
}
