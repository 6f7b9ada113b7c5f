//! What every delivery worker shares, whatever its channel: claim the chunk's deliveries before
//! calling a provider, send them concurrently through the channel's providers in order (each
//! behind its circuit breaker, the next one taking over when one fails transiently or is
//! open), record every outcome in one statement, hold back what a provider rate-limited, send
//! only the transient failures on to the next retry tier, hand what failed for good to the
//! next failover channel, and publish events.
//!
//! A channel supplies a [`Provider`]; everything else is here, so that a new channel is a new
//! provider and nothing more.

mod breaker;
mod settings;

pub use breaker::{Breaker, BreakerConfig, BreakerState};
pub use settings::{Secret, parse_retry_after, provider_list};

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use tracing::Instrument;

use notify_core::message::{
    DeliverChunk, DeliverItem, DeliveryEvent, EventItem, SCHEMA, check_schema,
};
use notify_core::{Channel, DeliveryStatus, TenantId};
use notify_runtime::{Context, HandleError, Handler, Incoming};
use notify_store::{CredentialKey, Outcome, TenantProvider};

/// A provider's answer for one delivery.
#[derive(Debug, Default)]
pub struct Sent {
    /// The provider's own id for the message, when it gives one.
    pub provider_message_id: Option<String>,
}

/// Whether a provider's failure may succeed when tried again.
pub trait ProviderError: std::error::Error + Send + Sync + 'static {
    /// The provider may take it later, or another provider may take it now.
    fn is_retriable(&self) -> bool;

    /// The provider limits the rate and asked to come back after this long. Such a delivery
    /// is held back, not failed, and does not count against the provider's breaker.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// One way of sending on a channel: SMTP for email, HTTP for webhooks, an account at Twilio.
pub trait Provider: Send + Sync + 'static {
    type Error: ProviderError;

    /// The name recorded on each attempt and used as the metrics label.
    fn name(&self) -> &str;

    /// Whether this provider can take the delivery at all (a push token of its platform).
    fn accepts(&self, _item: &DeliverItem) -> bool {
        true
    }

    fn send(
        &self,
        ctx: &Context,
        chunk: &DeliverChunk,
        item: &DeliverItem,
    ) -> impl Future<Output = Result<Sent, Self::Error>> + Send;
}

struct Route<P> {
    provider: P,
    breaker: Breaker,
    /// The `provider` label of its metrics: the name of an installation's provider, and
    /// `tenant` for tenants' own, whose names are theirs to choose and would be unbounded.
    label: String,
}

type Routes<P> = Arc<Vec<Route<P>>>;

/// Builds a provider from a tenant's entry: its settings and opened credentials as one JSON
/// object, shaped like an entry of the channel's `NOTIFY_<CHANNEL>_PROVIDERS`.
pub type BuildProvider<P> = Box<dyn Fn(&serde_json::Value) -> anyhow::Result<P> + Send + Sync>;

/// How long a tenant's provider list is used before it is read again.
const TENANT_PROVIDERS_TTL: Duration = Duration::from_secs(30);

/// The providers tenants configured for themselves, built once and kept with their breakers
/// for as long as the stored list does not change.
struct TenantRoutes<P> {
    build: BuildProvider<P>,
    key: Option<CredentialKey>,
    breaker: BreakerConfig,
    cache: Mutex<HashMap<TenantId, CachedRoutes<P>>>,
}

struct CachedRoutes<P> {
    loaded: Instant,
    versions: Vec<(String, chrono::DateTime<chrono::Utc>)>,
    routes: Routes<P>,
}

/// The deliver stage of one channel.
pub struct DeliverStage<P> {
    channel: Channel,
    routes: Routes<P>,
    tenants: Option<TenantRoutes<P>>,
    concurrency: usize,
}

impl<P: Provider> DeliverStage<P> {
    /// A stage sending through `providers`, tried in this order.
    pub fn new(
        channel: Channel,
        providers: Vec<P>,
        breaker: BreakerConfig,
        concurrency: usize,
    ) -> DeliverStage<P> {
        DeliverStage {
            channel,
            routes: Arc::new(routes(providers, breaker, false)),
            tenants: None,
            concurrency: concurrency.max(1),
        }
    }

    /// Lets tenants configure their own providers of this channel, which are then tried
    /// instead of the installation's. `key` opens their sealed credentials.
    pub fn with_tenant_providers(
        mut self,
        key: Option<CredentialKey>,
        breaker: BreakerConfig,
        build: BuildProvider<P>,
    ) -> DeliverStage<P> {
        self.tenants = Some(TenantRoutes {
            build,
            key,
            breaker,
            cache: Mutex::new(HashMap::new()),
        });
        self
    }

    /// The providers for a tenant's deliveries: its own if it has any, else the
    /// installation's.
    async fn routes_for(&self, ctx: &Context, tenant: TenantId) -> Result<Routes<P>, HandleError> {
        let Some(tenants) = &self.tenants else {
            return Ok(self.routes.clone());
        };
        if let Some(cached) = tenants.cache.lock().expect("route cache").get(&tenant)
            && cached.loaded.elapsed() < TENANT_PROVIDERS_TTL
        {
            return Ok(cached.routes.clone());
        }
        let stored = ctx
            .store
            .tenant_providers(tenant, self.channel.as_str(), tenants.key.as_ref())
            .await?;
        let versions: Vec<_> = stored
            .iter()
            .map(|p| (p.name.clone(), p.updated_at))
            .collect();
        let mut cache = tenants.cache.lock().expect("route cache");
        if let Some(cached) = cache.get_mut(&tenant)
            && cached.versions == versions
        {
            cached.loaded = Instant::now();
            return Ok(cached.routes.clone());
        }
        let routes = if stored.is_empty() {
            self.routes.clone()
        } else {
            Arc::new(routes(build_all(tenants, &stored)?, tenants.breaker, true))
        };
        cache.insert(
            tenant,
            CachedRoutes {
                loaded: Instant::now(),
                versions,
                routes: routes.clone(),
            },
        );
        Ok(routes)
    }
}

fn routes<P: Provider>(providers: Vec<P>, breaker: BreakerConfig, tenant: bool) -> Vec<Route<P>> {
    providers
        .into_iter()
        .map(|provider| Route {
            label: if tenant {
                "tenant".to_owned()
            } else {
                provider.name().to_owned()
            },
            provider,
            breaker: Breaker::new(breaker),
        })
        .collect()
}

/// A tenant's providers, built; one that does not build parks the chunk with the reason, for
/// the tenant to fix and an operator to replay.
fn build_all<P>(
    tenants: &TenantRoutes<P>,
    stored: &[TenantProvider],
) -> Result<Vec<P>, HandleError> {
    stored
        .iter()
        .map(|p| {
            (tenants.build)(&p.entry).map_err(|e| {
                HandleError::Malformed(format!(
                    "the tenant's provider `{}` is misconfigured: {}",
                    p.name,
                    settings::redact(&e.to_string())
                ))
            })
        })
        .collect()
}

#[derive(Debug)]
enum Attempted {
    Delivered {
        provider: String,
    },
    Failed {
        provider: Option<String>,
        error: String,
    },
    Transient {
        provider: Option<String>,
        error: String,
    },
    RateLimited {
        provider: String,
        error: String,
        wait: Duration,
    },
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

        let routes = self.routes_for(ctx, chunk.tenant_id).await?;

        // Claim before sending: what is final, or held by another message, is skipped.
        let ids: Vec<_> = chunk.deliveries.iter().map(|d| d.delivery_id).collect();
        let first = routes.first().map_or(channel, |r| r.provider.name());
        let claimed = ctx
            .store
            .claim(chunk.tenant_id, &ids, message.message_id, first)
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
        let attempts: HashMap<_, _> = claimed.iter().map(|c| (c.id, c.attempt)).collect();
        let items: Vec<&DeliverItem> = chunk
            .deliveries
            .iter()
            .filter(|d| attempts.contains_key(&d.delivery_id))
            .collect();

        let timeout = ctx.config.provider_timeout;
        let chunk_ref = &chunk;
        let routes_ref = routes.as_slice();
        // The futures are built in a plain loop: a closure in the stream combinator would make
        // the handler's future fail the `Send` check over its borrowed items.
        let mut sends = Vec::with_capacity(items.len());
        for item in items {
            let span = tracing::info_span!("delivery", delivery_id = %item.delivery_id, channel);
            sends.push(
                async move {
                    let attempted = self
                        .send_one(ctx, routes_ref, chunk_ref, item, timeout)
                        .await;
                    (item, attempted)
                }
                .instrument(span),
            );
        }
        let results: Vec<(&DeliverItem, Attempted)> = stream::iter(sends)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;

        let can_retry = (message.attempt as usize) < ctx.topology().retry_tiers().len();
        let can_defer = ctx.can_defer(&message.headers);
        let mut outcomes = Vec::with_capacity(results.len());
        let mut delivered = Vec::new();
        let mut failed = Vec::new();
        let mut transient: Vec<(&DeliverItem, String)> = Vec::new();
        let mut deferred: Vec<(&DeliverItem, String, Duration)> = Vec::new();
        for (item, result) in results {
            let attempt = attempts[&item.delivery_id];
            let (status, error, provider) = match result {
                Attempted::Delivered { provider } => {
                    delivered.push(event_item(item, None));
                    (DeliveryStatus::Delivered, None, Some(provider))
                }
                Attempted::Failed { provider, error } => {
                    failed.push(event_item(item, Some(error.clone())));
                    (DeliveryStatus::Failed, Some(error), provider)
                }
                Attempted::RateLimited {
                    provider,
                    error,
                    wait,
                } if can_defer => {
                    deferred.push((item, error.clone(), wait));
                    (DeliveryStatus::Retrying, Some(error), Some(provider))
                }
                Attempted::RateLimited {
                    provider, error, ..
                } => {
                    transient.push((item, error.clone()));
                    (retry_status(can_retry), Some(error), Some(provider))
                }
                Attempted::Transient { provider, error } => {
                    transient.push((item, error.clone()));
                    (retry_status(can_retry), Some(error), provider)
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
                provider,
            });
        }
        ctx.store
            .record_outcomes(chunk.tenant_id, message.message_id, &outcomes)
            .await?;

        // Only the deliveries that failed transiently travel on, to the next tier or the lot;
        // those a provider rate-limited wait for as long as it asked.
        if !transient.is_empty() {
            let reason = transient[0].1.clone();
            let retry =
                chunk.with_deliveries(transient.iter().map(|(i, _)| (*i).clone()).collect());
            let body = serde_json::to_vec(&retry).expect("a chunk serializes");
            ctx.retry_or_park(&body, &message.headers, &reason).await?;
        }
        if !deferred.is_empty() {
            let wait = deferred
                .iter()
                .map(|(_, _, w)| *w)
                .max()
                .unwrap_or_default();
            let reason = deferred[0].1.clone();
            let later =
                chunk.with_deliveries(deferred.iter().map(|(i, _, _)| (*i).clone()).collect());
            let body = serde_json::to_vec(&later).expect("a chunk serializes");
            ctx.defer(&body, &message.headers, &reason, wait).await?;
        }
        let dead: Vec<EventItem> = if can_retry {
            Vec::new()
        } else {
            transient
                .iter()
                .map(|(i, e)| event_item(i, Some(e.clone())))
                .collect()
        };
        if !chunk.failover.is_empty() {
            let ended: Vec<_> = failed
                .iter()
                .chain(dead.iter())
                .map(|e| e.delivery_id)
                .collect();
            ctx.fail_over(
                chunk.tenant_id,
                chunk.notification_id,
                &ended,
                &message.traceparent,
            )
            .await?;
            if !ended.is_empty() {
                tracing::info!(deliveries = ended.len(), next = %chunk.failover[0], "failing over to the next channel");
            }
        }
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

fn retry_status(can_retry: bool) -> DeliveryStatus {
    if can_retry {
        DeliveryStatus::Retrying
    } else {
        DeliveryStatus::DeadLettered
    }
}

impl<P: Provider> DeliverStage<P> {
    /// Tries the providers that take this delivery, in order, until one of them answers.
    async fn send_one(
        &self,
        ctx: &Context,
        routes: &[Route<P>],
        chunk: &DeliverChunk,
        item: &DeliverItem,
        timeout: Duration,
    ) -> Attempted {
        let channel = self.channel.as_str();
        let mut last: Option<(String, String)> = None;
        for route in routes.iter().filter(|r| r.provider.accepts(item)) {
            let name = route.provider.name();
            let label = route.label.as_str();
            let count = |outcome: &str| {
                ctx.metrics
                    .provider_sends
                    .with_label_values(&[channel, label, outcome])
                    .inc();
            };
            if !route.breaker.allow(Instant::now()) {
                count("breaker_open");
                tracing::warn!(provider = name, "circuit open; trying the next provider");
                last = Some((name.to_owned(), format!("{name}: circuit open")));
                continue;
            }
            let result = tokio::time::timeout(timeout, route.provider.send(ctx, chunk, item)).await;
            let attempted = match result {
                Ok(Ok(sent)) => {
                    route.breaker.record_success();
                    count("delivered");
                    tracing::info!(
                        provider = name,
                        provider_message_id = sent.provider_message_id.as_deref(),
                        "delivered"
                    );
                    Some(Attempted::Delivered {
                        provider: name.to_owned(),
                    })
                }
                Ok(Err(e)) if e.retry_after().is_some() => {
                    route.breaker.record_success();
                    count("rate_limited");
                    let wait = e.retry_after().unwrap_or_default();
                    tracing::warn!(provider = name, error = %e, wait_ms = wait.as_millis() as u64, "rate-limited");
                    Some(Attempted::RateLimited {
                        provider: name.to_owned(),
                        error: format!("{name}: {e}"),
                        wait,
                    })
                }
                Ok(Err(e)) if e.is_retriable() => {
                    route.breaker.record_failure(Instant::now());
                    count("transient");
                    tracing::warn!(provider = name, error = %e, "transient failure");
                    last = Some((name.to_owned(), format!("{name}: {e}")));
                    None
                }
                Ok(Err(e)) => {
                    route.breaker.record_success();
                    count("failed");
                    tracing::warn!(provider = name, error = %e, "failed permanently");
                    Some(Attempted::Failed {
                        provider: Some(name.to_owned()),
                        error: format!("{name}: {e}"),
                    })
                }
                Err(_) => {
                    route.breaker.record_failure(Instant::now());
                    count("timeout");
                    tracing::warn!(
                        provider = name,
                        timeout_ms = timeout.as_millis() as u64,
                        "the provider did not answer in time"
                    );
                    last = Some((
                        name.to_owned(),
                        format!("{name}: no answer within {timeout:?}"),
                    ));
                    None
                }
            };
            ctx.metrics
                .breaker_state
                .with_label_values(&[channel, label])
                .set(route.breaker.state().gauge());
            if let Some(attempted) = attempted {
                return attempted;
            }
        }
        match last {
            Some((provider, error)) => Attempted::Transient {
                provider: Some(provider),
                error,
            },
            None => Attempted::Failed {
                provider: None,
                error: format!("no {channel} provider is configured for this address"),
            },
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
