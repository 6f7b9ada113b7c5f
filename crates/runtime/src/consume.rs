//! The consume loop: take a message, hand it to the stage's handler inside a span, and ack it
//! only once its outcome is durable — handled, sent to a retry tier, or parked.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tracing::Instrument;
use uuid::Uuid;

use notify_broker::{Headers, Publisher, Stage, Topology, attempt_of, message_id_of};
use notify_core::{Config, TenantId};
use notify_store::Store;

use crate::telemetry::trace_id;
use crate::{Backoff, Metrics, Service, traceparent_new};

/// What a handler could not do, and so what becomes of the message.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth trying again later: the message goes to the next retry tier, or to the parking lot
    /// after the last one.
    #[error("{0}")]
    Transient(String),
    /// Will never succeed as it is: the message goes to the parking lot with the reason.
    #[error("{0}")]
    Malformed(String),
    /// The database is away: the message goes back to its queue untouched, and the worker
    /// stops taking messages for a backoff, instead of spending retries on an outage.
    #[error("{0}")]
    Unavailable(String),
}

impl HandleError {
    pub fn transient(e: impl std::fmt::Display) -> HandleError {
        HandleError::Transient(e.to_string())
    }
}

impl From<notify_store::StoreError> for HandleError {
    fn from(e: notify_store::StoreError) -> Self {
        if e.is_unavailable() {
            HandleError::Unavailable(e.to_string())
        } else if e.is_transient() {
            HandleError::Transient(e.to_string())
        } else {
            HandleError::Malformed(e.to_string())
        }
    }
}

impl From<notify_broker::BrokerError> for HandleError {
    fn from(e: notify_broker::BrokerError) -> Self {
        HandleError::Transient(e.to_string())
    }
}

/// A message taken from a stage queue.
#[derive(Debug)]
pub struct Incoming {
    pub body: Vec<u8>,
    pub headers: Headers,
    /// Stable across redeliveries of this very message; a retried copy has a new one.
    pub message_id: Uuid,
    pub attempt: u32,
    pub redelivered: bool,
    pub traceparent: String,
}

impl Incoming {
    fn from_delivery(delivery: &Delivery) -> Incoming {
        let mut headers = Headers::from_properties(&delivery.properties);
        let traceparent = headers.traceparent.clone().unwrap_or_else(traceparent_new);
        headers.traceparent = Some(traceparent.clone());
        Incoming {
            message_id: message_id_of(&delivery.properties, &delivery.data),
            attempt: attempt_of(&delivery.properties),
            redelivered: delivery.redelivered,
            body: delivery.data.clone(),
            headers,
            traceparent,
        }
    }

    pub fn tenant(&self) -> Option<TenantId> {
        self.headers.tenant
    }
}

/// What a handler is given: the shared parts and a publisher on the current connection.
pub struct Context {
    pub stage: Stage,
    pub config: Arc<Config>,
    pub store: Store,
    pub publisher: Publisher,
    pub metrics: Metrics,
    topology: Arc<Topology>,
    pause: Pause,
    health: Arc<crate::Health>,
}

/// A consumer's pause while the database is away: set by a handler that met the outage,
/// honoured by the loop that takes messages, and lengthened with backoff while it lasts.
#[derive(Default)]
struct Pause {
    until: std::sync::Mutex<Option<tokio::time::Instant>>,
    backoff: std::sync::Mutex<Backoff>,
}

impl Pause {
    fn until(&self) -> Option<tokio::time::Instant> {
        *self.until.lock().expect("pause lock")
    }

    fn start(&self) -> std::time::Duration {
        let mut until = self.until.lock().expect("pause lock");
        let wait = self.backoff.lock().expect("pause lock").next_delay();
        if until.is_none() {
            *until = Some(tokio::time::Instant::now() + wait);
        }
        wait
    }

    fn end(&self) {
        *self.until.lock().expect("pause lock") = None;
    }

    fn worked(&self) {
        self.backoff.lock().expect("pause lock").reset();
    }
}

impl Context {
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Sends a body on to the next retry tier of this stage, or parks it after the last tier.
    /// Returns true if it was retried.
    pub async fn retry_or_park(
        &self,
        body: &[u8],
        headers: &Headers,
        reason: &str,
    ) -> Result<bool, notify_broker::BrokerError> {
        let tier = headers.attempt as usize;
        if tier < self.topology.retry_tiers().len() {
            let mut next = headers.clone();
            next.attempt += 1;
            next.extra.retain(|(k, _)| k != "x-last-error");
            next.extra
                .push(("x-last-error".into(), truncate(reason, 500)));
            let queue = self.topology.retry_queue(self.stage, tier);
            self.publisher.send(&queue, body, &next).await?;
            self.metrics
                .retried
                .with_label_values(&[&self.stage.name()])
                .inc();
            tracing::warn!(reason, retry_queue = %queue, attempt = next.attempt, "retrying later");
            Ok(true)
        } else {
            self.park(body, headers, reason).await?;
            Ok(false)
        }
    }

    /// Whether a message with these headers may still be held back for a rate limit.
    pub fn can_defer(&self, headers: &Headers) -> bool {
        deferrals(headers) < MAX_DEFERRALS
    }

    /// Holds a body back for at least `delay`, as a provider that limits the rate asked: it
    /// goes to the first retry tier at least that long (the longest when none is), without
    /// counting as an attempt. After [`MAX_DEFERRALS`] deferrals it is retried as a failure.
    /// Returns the delay of the tier it went to, or `None` when it was retried or parked.
    pub async fn defer(
        &self,
        body: &[u8],
        headers: &Headers,
        reason: &str,
        delay: std::time::Duration,
    ) -> Result<Option<std::time::Duration>, notify_broker::BrokerError> {
        let deferrals = deferrals(headers);
        if deferrals >= MAX_DEFERRALS {
            self.retry_or_park(body, headers, reason).await?;
            return Ok(None);
        }
        let tiers = self.topology.retry_tiers();
        let tier = tier_for(tiers, delay);
        let mut next = headers.clone();
        next.extra
            .retain(|(k, _)| k != "x-last-error" && k != DEFERRALS_HEADER);
        next.extra
            .push(("x-last-error".into(), truncate(reason, 500)));
        next.extra
            .push((DEFERRALS_HEADER.into(), (deferrals + 1).to_string()));
        let queue = self.topology.retry_queue(self.stage, tier);
        self.publisher.send(&queue, body, &next).await?;
        self.metrics
            .retried
            .with_label_values(&[&self.stage.name()])
            .inc();
        tracing::warn!(
            reason,
            retry_queue = %queue,
            asked_ms = delay.as_millis() as u64,
            "deferred as the provider asked"
        );
        Ok(Some(tiers[tier]))
    }

    /// Sends a body to this stage's parking lot with the reason in its headers.
    pub async fn park(
        &self,
        body: &[u8],
        headers: &Headers,
        reason: &str,
    ) -> Result<(), notify_broker::BrokerError> {
        let mut parked = headers.clone();
        parked
            .extra
            .retain(|(k, _)| k != "x-park-reason" && k != "x-parked-from");
        parked
            .extra
            .push(("x-park-reason".into(), truncate(reason, 1000)));
        parked.extra.push((
            "x-parked-from".into(),
            self.topology.stage_queue(self.stage),
        ));
        let queue = self.topology.parked_queue(self.stage);
        self.publisher.send(&queue, body, &parked).await?;
        self.metrics
            .parked
            .with_label_values(&[&self.stage.name()])
            .inc();
        tracing::error!(reason, parked_queue = %queue, "parked a message");
        Ok(())
    }

    /// Publishes delivery events on the `events` exchange, one message per event kind.
    pub async fn publish_events(
        &self,
        events: &[notify_core::message::DeliveryEvent],
    ) -> Result<(), notify_broker::BrokerError> {
        let exchange = self.topology.events_exchange();
        let bodies: Vec<(String, Vec<u8>, Headers)> = events
            .iter()
            .filter(|e| !e.deliveries.is_empty())
            .map(|e| {
                let body = serde_json::to_vec(e).expect("an event serializes");
                (e.event.clone(), body, Headers::new(Some(e.tenant_id), None))
            })
            .collect();
        let outgoing: Vec<notify_broker::Outgoing<'_>> = bodies
            .iter()
            .map(|(key, body, headers)| notify_broker::Outgoing {
                exchange: &exchange,
                routing_key: key,
                body,
                headers,
            })
            .collect();
        self.publisher.send_all(&outgoing).await
    }

    /// Asks enrich to fan out the next failover channel for each of these deliveries, which
    /// ended without success; confirmed before the caller acks its message.
    pub async fn fail_over(
        &self,
        tenant: TenantId,
        notification: notify_core::NotificationId,
        deliveries: &[notify_core::DeliveryId],
        traceparent: &str,
    ) -> Result<(), notify_broker::BrokerError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let bodies: Vec<Vec<u8>> = deliveries
            .iter()
            .map(|id| {
                let next = notify_core::message::EnrichMessage {
                    schema: notify_core::message::SCHEMA,
                    tenant_id: tenant,
                    notification_id: notification,
                    level: None,
                    failover_from: Some(*id),
                };
                serde_json::to_vec(&next).expect("a message serializes")
            })
            .collect();
        let queue = self.topology.stage_queue(Stage::Enrich);
        let headers = Headers::new(Some(tenant), Some(traceparent.to_owned()));
        let outgoing: Vec<notify_broker::Outgoing<'_>> = bodies
            .iter()
            .map(|body| notify_broker::Outgoing {
                exchange: "",
                routing_key: &queue,
                body,
                headers: &headers,
            })
            .collect();
        self.publisher.send_all(&outgoing).await?;
        self.count_published(Stage::Enrich, outgoing.len());
        Ok(())
    }

    /// Counts a message published to another stage.
    pub fn count_published(&self, stage: Stage, n: usize) {
        self.metrics
            .published
            .with_label_values(&[&stage.name()])
            .inc_by(n as u64);
    }
}

/// Counts how often a message was held back for a rate limit.
const DEFERRALS_HEADER: &str = "x-deferrals";
/// Deferrals before a rate-limited message counts its waits as failed attempts, so that a
/// provider that never lets it through cannot keep it from ending.
pub const MAX_DEFERRALS: u32 = 20;

fn deferrals(headers: &Headers) -> u32 {
    headers
        .extra
        .iter()
        .find(|(k, _)| k == DEFERRALS_HEADER)
        .and_then(|(_, v)| v.parse::<u32>().ok())
        .unwrap_or(0)
}

/// The first tier at least `delay` long, or the longest tier.
pub fn tier_for(tiers: &[std::time::Duration], delay: std::time::Duration) -> usize {
    tiers
        .iter()
        .position(|t| *t >= delay)
        .unwrap_or(tiers.len().saturating_sub(1))
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// A stage's work on one message.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        ctx: &Context,
        message: &Incoming,
    ) -> impl Future<Output = Result<(), HandleError>> + Send;
}

enum Ended {
    Shutdown,
}

impl Service {
    /// Consumes the stage's queue until shutdown, reconnecting with backoff whenever the broker
    /// goes away. In-flight messages are finished and acked before it returns.
    pub async fn consume<H: Handler>(&self, stage: Stage, handler: H) -> anyhow::Result<()> {
        let handler = Arc::new(handler);
        let mut backoff = Backoff::default();
        while !self.shutdown.is_triggered() {
            match self.consume_connected(stage, &handler, &mut backoff).await {
                Ok(Ended::Shutdown) => break,
                Err(e) => {
                    self.health.set_consuming(false);
                    self.broker.reset().await;
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "broker unavailable");
                    if self.shutdown.sleep(wait).await {
                        break;
                    }
                }
            }
        }
        self.health.set_consuming(false);
        self.broker.close().await;
        tracing::info!(stage = %stage, "stopped");
        Ok(())
    }

    async fn consume_connected<H: Handler>(
        &self,
        stage: Stage,
        handler: &Arc<H>,
        backoff: &mut Backoff,
    ) -> anyhow::Result<Ended> {
        let connection = self.broker.connection().await?;
        let publisher = self.broker.publisher().await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let queue = self.broker.topology().stage_queue(stage);
        let tag = format!("{}-{}", self.name, Uuid::new_v4().simple());
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.health.set_consuming(true);
        backoff.reset();
        tracing::info!(queue = %queue, prefetch = self.config.prefetch, "consuming");

        let ctx = Arc::new(Context {
            stage,
            config: self.config.clone(),
            store: self.store.clone(),
            publisher,
            metrics: self.metrics.clone(),
            topology: Arc::new(self.broker.topology().clone()),
            pause: Pause::default(),
            health: self.health.clone(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        let result = loop {
            let paused = ctx.pause.until();
            tokio::select! {
                _ = self.shutdown.wait() => {
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    break Ok(Ended::Shutdown);
                }
                _ = tokio::time::sleep_until(paused.unwrap_or_else(tokio::time::Instant::now)), if paused.is_some() => {
                    ctx.pause.end();
                    self.health.set_consuming(true);
                    tracing::info!("resuming after the pause");
                }
                next = consumer.next(), if paused.is_none() => match next {
                    Some(Ok(delivery)) => {
                        // Each message is handled and acked on its own task; the writes of
                        // messages handled side by side share commits through the store's
                        // group commit, and their publishes share the channel's confirms.
                        tasks.spawn(handle_one(ctx.clone(), handler.clone(), delivery));
                    }
                    Some(Err(e)) => break Err(anyhow::Error::from(e).context("consumer failed")),
                    None => break Err(anyhow::anyhow!("the broker ended the consumer")),
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        };

        // Whatever is in flight finishes and is acked; what the broker had sent but was not
        // started goes back to the queue when the channel closes.
        self.health.set_consuming(false);
        let drained = tokio::time::timeout(self.config.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "in-flight messages did not finish in time; the broker will redeliver them"
            );
            tasks.abort_all();
        }
        let _ = channel.close(200, "done".into()).await;
        result
    }
}

/// Why a message goes back to its queue instead of being acked.
enum Unhandled {
    Broker(notify_broker::BrokerError),
    Unavailable(String),
}

async fn handle_one<H: Handler>(ctx: Arc<Context>, handler: Arc<H>, delivery: Delivery) {
    let incoming = Incoming::from_delivery(&delivery);
    let stage = ctx.stage.name();
    let span = tracing::info_span!(
        "message",
        stage = %stage,
        message_id = %incoming.message_id,
        attempt = incoming.attempt,
        trace_id = %trace_id(&incoming.traceparent),
        tenant_id = tracing::field::Empty,
        notification_id = tracing::field::Empty,
    );
    if let Some(t) = incoming.tenant() {
        span.record("tenant_id", tracing::field::display(t));
    }
    let started = Instant::now();
    ctx.metrics.consumed.with_label_values(&[&stage]).inc();
    let in_flight = ctx.metrics.in_flight.with_label_values(&[&stage]);
    in_flight.inc();

    let outcome = async {
        match handler.handle(&ctx, &incoming).await {
            Ok(()) => {
                ctx.pause.worked();
                Ok(())
            }
            Err(HandleError::Unavailable(reason)) => Err(Unhandled::Unavailable(reason)),
            Err(HandleError::Transient(reason)) => ctx
                .retry_or_park(&incoming.body, &incoming.headers, &reason)
                .await
                .map(|_| ())
                .map_err(Unhandled::Broker),
            Err(HandleError::Malformed(reason)) => ctx
                .park(&incoming.body, &incoming.headers, &reason)
                .await
                .map_err(Unhandled::Broker),
        }
    }
    .instrument(span.clone())
    .await;

    let _enter = span.enter();
    match outcome {
        Ok(()) => {
            if let Err(e) = delivery.acker.ack(BasicAckOptions::default()).await {
                tracing::warn!(error = %e, "ack failed; the broker will redeliver");
            }
        }
        Err(e) => {
            match e {
                Unhandled::Broker(e) => {
                    tracing::warn!(error = %e, "could not retry or park; returning the message to the queue");
                }
                Unhandled::Unavailable(reason) => {
                    let wait = ctx.pause.start();
                    ctx.health.set_consuming(false);
                    tracing::warn!(
                        reason,
                        pause_ms = wait.as_millis() as u64,
                        "the database is away; returning the message to the queue and pausing"
                    );
                }
            }
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    ..Default::default()
                })
                .await;
        }
    }
    in_flight.dec();
    ctx.metrics
        .handling
        .with_label_values(&[&stage])
        .observe(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_requested_delay_picks_the_first_tier_at_least_that_long() {
        let tiers = [
            Duration::from_secs(1),
            Duration::from_secs(10),
            Duration::from_secs(60),
        ];
        assert_eq!(tier_for(&tiers, Duration::from_millis(200)), 0);
        assert_eq!(tier_for(&tiers, Duration::from_secs(1)), 0);
        assert_eq!(tier_for(&tiers, Duration::from_secs(2)), 1);
        assert_eq!(tier_for(&tiers, Duration::from_secs(30)), 2);
        assert_eq!(tier_for(&tiers, Duration::from_secs(3600)), 2);
    }
}
