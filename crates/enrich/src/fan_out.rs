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
        let recipients = merged_recipients(ctx, &notification).await?;
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

        let chunks = chunks(
            ctx.config.chunk_size,
            &notification,
            &recipients,
            &planned,
            &to_send,
        );
        let bodies: Vec<Vec<u8>> = chunks
            .iter()
            .map(|c| serde_json::to_vec(c).expect("a chunk serializes"))
            .collect();
        let queue = ctx.topology().stage_queue(Stage::Render);
        let mut headers = Headers::new(Some(msg.tenant_id), Some(message.traceparent.clone()));
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

        if !notification.fanned_out {
            ctx.publish_events(&unreachable_events(&notification, &planned))
                .await?;
        }
        tracing::info!(
            deliveries = planned.len(),
            sent_on = to_send.len(),
            chunks = bodies.len(),
            "fanned out"
        );
        Ok(())
    }
}

/// Each recipient with its stored profile merged underneath.
async fn merged_recipients(
    ctx: &Context,
    n: &StoredNotification,
) -> Result<Vec<Recipient>, HandleError> {
    let ids: Vec<String> = n
        .request
        .recipients
        .iter()
        .filter_map(|r| r.user_id.clone())
        .collect();
    let profiles = ctx.store.recipients(n.tenant_id, &ids).await?;
    Ok(n.request
        .recipients
        .iter()
        .map(
            |r| match r.user_id.as_ref().and_then(|id| profiles.get(id)) {
                Some(profile) => r.clone().merged_over(profile),
                None => r.clone(),
            },
        )
        .collect())
}

struct Planned {
    row: NewDelivery,
    recipient_index: usize,
    channel_index: usize,
}

fn plan(n: &StoredNotification, recipients: &[Recipient]) -> Vec<Planned> {
    let mut planned = Vec::with_capacity(recipients.len() * n.request.channels.len());
    for (channel_index, spec) in n.request.channels.iter().enumerate() {
        let channel = spec.channel();
        for (recipient_index, r) in recipients.iter().enumerate() {
            let address = match spec {
                ChannelSpec::Webhook(o) => Some(o.url.clone()),
                ChannelSpec::Email(_) => r.address(channel),
            };
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
            planned.push(Planned {
                row: NewDelivery {
                    id: DeliveryId::derive(n.id, recipient_index, channel.as_str()),
                    recipient_index: recipient_index as i32,
                    user_id: r.user_id.clone(),
                    channel: channel.as_str().to_owned(),
                    address,
                    status,
                    error,
                },
                recipient_index,
                channel_index,
            });
        }
    }
    planned
}

fn channel_noun(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
        Channel::Slack => "Slack",
        Channel::Push => "push token",
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
                recipient: recipients[p.recipient_index].clone(),
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
