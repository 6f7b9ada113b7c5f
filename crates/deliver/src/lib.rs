//! What every delivery worker shares, whatever its channel: claim the chunk's deliveries before
//! calling the provider, send them concurrently, record every outcome in one statement, send
//! only the transient failures on to the next retry tier, and publish events.
//!
//! A channel supplies a [`Provider`]; everything else is here, so that a new channel is a new
//! provider and nothing more.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream;
use tracing::Instrument;

use notify_core::message::{
    DeliverChunk, DeliverItem, DeliveryEvent, EventItem, SCHEMA, check_schema,
};
use notify_core::{Channel, DeliveryStatus};
use notify_runtime::{Context, HandleError, Handler, Incoming};
use notify_store::Outcome;

/// A provider's answer for one delivery.
#[derive(Debug, Default)]
pub struct Sent {
    /// The provider's own id for the message, when it gives one.
    pub provider_message_id: Option<String>,
}

/// Whether a provider's failure may succeed when tried again.
pub trait ProviderError: std::error::Error + Send + Sync + 'static {
    fn is_retriable(&self) -> bool;
}

/// One way of sending on a channel: SMTP for email, HTTP for webhooks.
pub trait Provider: Send + Sync + 'static {
    type Error: ProviderError;

    /// The name recorded on each attempt.
    fn name(&self) -> &'static str;

    fn send(
        &self,
        ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> impl Future<Output = Result<Sent, Self::Error>> + Send;
}

/// The deliver stage of one channel.
pub struct DeliverStage<P> {
    channel: Channel,
    provider: P,
    concurrency: usize,
}

impl<P: Provider> DeliverStage<P> {
    pub fn new(channel: Channel, provider: P, concurrency: usize) -> DeliverStage<P> {
        DeliverStage {
            channel,
            provider,
            concurrency: concurrency.max(1),
        }
    }
}

enum Attempted {
    Delivered,
    Failed(String),
    Transient(String),
}

impl<P: Provider> Handler for DeliverStage<P> {
    async fn handle(&self, ctx: &Context, message: &Incoming) -> Result<(), HandleError> {
        let chunk: DeliverChunk = serde_json::from_slice(&message.body)
            .map_err(|e| HandleError::Malformed(format!("not a deliver chunk: {e}")))?;
        check_schema(chunk.schema).map_err(HandleError::Malformed)?;
        if chunk.channel() != self.channel {
            return Err(HandleError::Malformed(format!(
                "a {} chunk reached the {} worker",
                chunk.channel(),
                self.channel
            )));
        }
        tracing::Span::current().record(
            "notification_id",
            tracing::field::display(chunk.notification_id),
        );
        let channel = self.channel.as_str();

        // Claim before sending: what is final, or held by another message, is skipped.
        let ids: Vec<_> = chunk.deliveries.iter().map(|d| d.delivery_id).collect();
        let claimed = ctx
            .store
            .claim(
                chunk.tenant_id,
                &ids,
                message.message_id,
                self.provider.name(),
            )
            .await?;
        let skipped = ids.len() - claimed.len();
        if skipped > 0 {
            ctx.metrics
                .deliveries
                .with_label_values(&[channel, "skipped"])
                .inc_by(skipped as u64);
            tracing::info!(
                skipped,
                "skipped deliveries that are final or held elsewhere"
            );
        }
        let attempts: std::collections::HashMap<_, _> =
            claimed.iter().map(|c| (c.id, c.attempt)).collect();
        let items: Vec<&DeliverItem> = chunk
            .deliveries
            .iter()
            .filter(|d| attempts.contains_key(&d.delivery_id))
            .collect();

        let timeout = ctx.config.provider_timeout;
        let chunk_ref = &chunk;
        // The futures are built in a plain loop: a closure in the stream combinator would make
        // the handler's future fail the `Send` check over its borrowed items.
        let mut sends = Vec::with_capacity(items.len());
        for item in items {
            let span = tracing::info_span!("delivery", delivery_id = %item.delivery_id, channel);
            sends.push(
                async move { (item, self.send_one(ctx, chunk_ref, item, timeout).await) }
                    .instrument(span),
            );
        }
        let results: Vec<(&DeliverItem, Attempted)> = stream::iter(sends)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let can_retry = (message.attempt as usize) < ctx.topology().retry_tiers().len();
        let mut outcomes = Vec::with_capacity(results.len());
        let mut delivered = Vec::new();
        let mut failed = Vec::new();
        let mut transient: Vec<(&DeliverItem, String)> = Vec::new();
        for (item, result) in results {
            let attempt = attempts[&item.delivery_id];
            let (status, error) = match result {
                Attempted::Delivered => {
                    delivered.push(event_item(item, None));
                    (DeliveryStatus::Delivered, None)
                }
                Attempted::Failed(e) => {
                    failed.push(event_item(item, Some(e.clone())));
                    (DeliveryStatus::Failed, Some(e))
                }
                Attempted::Transient(e) => {
                    transient.push((item, e.clone()));
                    let status = if can_retry {
                        DeliveryStatus::Retrying
                    } else {
                        DeliveryStatus::DeadLettered
                    };
                    (status, Some(e))
                }
            };
            ctx.metrics
                .deliveries
                .with_label_values(&[channel, status.as_str()])
                .inc();
            outcomes.push(Outcome {
                id: item.delivery_id,
                attempt,
                status,
                error,
                provider: Some(self.provider.name().to_owned()),
            });
        }
        ctx.store
            .record_outcomes(chunk.tenant_id, message.message_id, &outcomes)
            .await?;

        // Only the deliveries that failed transiently travel on, to the next tier or the lot.
        if !transient.is_empty() {
            let reason = transient[0].1.clone();
            let retry =
                chunk.with_deliveries(transient.iter().map(|(i, _)| (*i).clone()).collect());
            let body = serde_json::to_vec(&retry).expect("a chunk serializes");
            ctx.retry_or_park(&body, &message.headers, &reason).await?;
        }
        let dead: Vec<EventItem> = if can_retry {
            Vec::new()
        } else {
            transient
                .iter()
                .map(|(i, e)| event_item(i, Some(e.clone())))
                .collect()
        };
        let event = |event: &str, deliveries: Vec<EventItem>| DeliveryEvent {
            schema: SCHEMA,
            event: event.to_owned(),
            tenant_id: chunk.tenant_id,
            notification_id: chunk.notification_id,
            channel: self.channel,
            deliveries,
        };
        ctx.publish_events(&[
            event("delivery.delivered", delivered),
            event("delivery.failed", failed),
            event("delivery.dead_lettered", dead),
        ])
        .await?;
        Ok(())
    }
}

impl<P: Provider> DeliverStage<P> {
    async fn send_one(
        &self,
        ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
        timeout: Duration,
    ) -> Attempted {
        match tokio::time::timeout(timeout, self.provider.send(ctx, chunk, item)).await {
            Ok(Ok(sent)) => {
                tracing::info!(
                    provider = self.provider.name(),
                    provider_message_id = sent.provider_message_id.as_deref(),
                    "delivered"
                );
                Attempted::Delivered
            }
            Ok(Err(e)) if e.is_retriable() => {
                tracing::warn!(error = %e, "transient failure");
                Attempted::Transient(e.to_string())
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "failed permanently");
                Attempted::Failed(e.to_string())
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    "the provider did not answer in time"
                );
                Attempted::Transient(format!("the provider did not answer within {timeout:?}"))
            }
        }
    }
}

fn event_item(item: &DeliverItem, error: Option<String>) -> EventItem {
    EventItem {
        delivery_id: item.delivery_id,
        user_id: item.user_id.clone(),
        error,
    }
}
