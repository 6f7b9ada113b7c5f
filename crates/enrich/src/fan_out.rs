//! The fan-out of one notification. Delivery ids are derived from the notification, the
//! recipient's position and the channel, so a redelivered message finds the deliveries it made
//! before and only sends on those not yet rendered.

use std::collections::HashSet;

use notify_broker::{Headers, Outgoing, Stage};
use notify_core::message::{
    DeliveryEvent, EnrichMessage, EventItem, RenderChunk, RenderItem, SCHEMA, check_schema,
};
use notify_core::{Channel, ChannelSpec, DeliveryId, DeliveryStatus, Recipient};
use notify_runtime::{Context, HandleError, Handler, Incoming};
use notify_store::{NewDelivery, StoredNotification};

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
        if let Some(from) = msg.failover_from {
            return fail_over(ctx, message, &notification, from).await;
        }
        let indexes: Vec<usize> = (0..notification.request.recipients.len()).collect();
        let recipients = merged_recipients(ctx, &notification, &indexes).await?;
        let planned = plan(&notification, &recipients);

        // A fan-out that was committed before sends on only what is still pending.
        let to_send: HashSet<DeliveryId> = if notification.fanned_out {
            ctx.store
                .pending_deliveries(msg.tenant_id, msg.notification_id)
                .await?
                .into_iter()
                .collect()
        } else {
            let rows: Vec<NewDelivery> = planned.iter().map(|p| p.row.clone()).collect();
            ctx.store
                .fan_out(msg.tenant_id, msg.notification_id, &rows)
                .await?;
            planned
                .iter()
                .filter(|p| p.row.status == DeliveryStatus::Pending)
                .map(|p| p.row.id)
                .collect()
        };

        let chunks =
            publish_chunks(ctx, message, &notification, &recipients, &planned, &to_send).await?;
        if !notification.fanned_out {
            ctx.publish_events(&unreachable_events(&notification, &planned))
                .await?;
        }
        tracing::info!(
            deliveries = planned.len(),
            sent_on = to_send.len(),
            chunks,
            "fanned out"
        );
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
    walk_failover(
        n,
        &recipients[0],
        0,
        origin.recipient_index,
        &n.request.failover_after(channel),
        &mut planned,
    );
    if planned.is_empty() {
        tracing::info!(delivery_id = %from, channel = %channel, "no failover channel left");
        return Ok(());
    }

    // FIXME: between the failed delivery being recorded and this row being written, every
    // delivery of the notification can be final, so its status reads `completed` for a moment.
    let rows: Vec<NewDelivery> = planned.iter().map(|p| p.row.clone()).collect();
    ctx.store.fan_out(n.tenant_id, n.id, &rows).await?;
    // A redelivered failover finds its rows made before and sends on only what is pending.
    let pending: HashSet<DeliveryId> = ctx
        .store
        .pending_deliveries(n.tenant_id, n.id)
        .await?
        .into_iter()
        .collect();
    let to_send: HashSet<DeliveryId> = planned
        .iter()
        .map(|p| p.row.id)
        .filter(|id| pending.contains(id))
        .collect();
    publish_chunks(ctx, message, n, &recipients, &planned, &to_send).await?;
    ctx.publish_events(&unreachable_events(n, &planned)).await?;
    tracing::info!(
        delivery_id = %from,
        from_channel = %channel,
        sent_on = to_send.len(),
        "failed over to the next channel"
    );
    Ok(())
}

/// Publishes the render chunks of what is to be sent and returns how many there were.
async fn publish_chunks(
    ctx: &Context,
    message: &Incoming,
    n: &StoredNotification,
    recipients: &[Recipient],
    planned: &[Planned],
    to_send: &HashSet<DeliveryId>,
) -> Result<usize, HandleError> {
    let chunks = chunks(ctx.config.chunk_size, n, recipients, planned, to_send);
    let bodies: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| serde_json::to_vec(c).expect("a chunk serializes"))
        .collect();
    let queue = ctx.topology().stage_queue(Stage::Render);
    let mut headers = Headers::new(Some(n.tenant_id), Some(message.traceparent.clone()));
    headers.attempt = 0;
    let outgoing: Vec<Outgoing<'_>> = bodies
        .iter()
        .map(|body| Outgoing {
            exchange: "",
            routing_key: &queue,
            body,
            headers: &headers,
        })
        .collect();
    ctx.publisher.send_all(&outgoing).await?;
    ctx.count_published(Stage::Render, outgoing.len());
    Ok(outgoing.len())
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

fn plan(n: &StoredNotification, recipients: &[Recipient]) -> Vec<Planned> {
    let mut planned = Vec::with_capacity(recipients.len() * n.request.channels.len());
    for (channel_index, spec) in n.request.initial_channels() {
        let channel = spec.channel();
        for (recipient_index, r) in recipients.iter().enumerate() {
            if n.request.failover.first() == Some(&channel) {
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
        let one = planned_one(n, r, recipient, recipient_index, channel_index, spec);
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
    Planned {
        row: NewDelivery {
            id: DeliveryId::derive(n.id, recipient_index, channel.as_str()),
            recipient_index: recipient_index as i32,
            user_id: r.user_id.clone(),
            channel: channel.as_str().to_owned(),
            address,
            status,
            error,
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
    planned: &[Planned],
    to_send: &HashSet<DeliveryId>,
) -> Vec<RenderChunk> {
    let mut out = Vec::new();
    for (channel_index, spec) in n.request.channels.iter().enumerate() {
        let items: Vec<RenderItem> = planned
            .iter()
            .filter(|p| p.channel_index == channel_index && to_send.contains(&p.row.id))
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
