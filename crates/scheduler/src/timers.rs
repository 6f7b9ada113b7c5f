//! The timer loop: claim what is due, publish it, mark it fired — in that order, inside one
//! transaction, so a scheduler that dies half-way leaves the timers to the next claim. A
//! message published twice that way is harmless downstream: fan-outs and deliveries are
//! idempotent by their derived ids.

use std::time::Duration;

use chrono::Utc;

use notify_broker::{Headers, Stage};
use notify_core::message::{DigestContent, DigestEntry, RenderChunk, RenderItem, SCHEMA};
use notify_runtime::{Backoff, Service, traceparent_new};
use notify_store::{DueBatch, DueTimer, TimerKind};

pub async fn run(service: &Service) -> anyhow::Result<()> {
    let mut backoff = Backoff::default();
    while !service.shutdown.is_triggered() {
        match release_due(service).await {
            Ok(released) => {
                backoff.reset();
                service.health.set_consuming(true);
                if released >= service.config.scheduler_batch {
                    continue; // more may be due right away
                }
                let wait = until_next(service).await;
                service.shutdown.sleep(wait).await;
            }
            Err(e) => {
                service.health.set_consuming(false);
                service.broker.reset().await;
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot release timers");
                service.shutdown.sleep(wait).await;
            }
        }
    }
    tracing::info!("timer loop stopped");
    Ok(())
}

/// The tick, or less when a timer is due sooner.
async fn until_next(service: &Service) -> Duration {
    let tick = service.config.scheduler_tick;
    match service.store.next_due().await {
        Ok(Some(at)) => (at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(tick),
        _ => tick,
    }
}

/// Releases one batch of due timers; returns how many.
async fn release_due(service: &Service) -> anyhow::Result<usize> {
    // Connected before claiming, so readiness tells the truth while nothing is due.
    let publisher = service.broker.publisher().await?;
    let mut batch = service
        .store
        .claim_due(service.config.scheduler_batch as i64)
        .await?;
    if batch.timers.is_empty() {
        return Ok(0);
    }
    let topology = service.broker.topology();
    let timers = batch.timers.clone();
    for timer in &timers {
        let body = match timer.kind {
            TimerKind::Digest => match digest_chunk(&mut batch, timer).await? {
                Some(chunk) => serde_json::to_vec(&chunk)?,
                None => continue,
            },
            TimerKind::SendAt | TimerKind::Release | TimerKind::Escalation => {
                serde_json::to_vec(&timer.body)?
            }
        };
        let stage: Stage = timer.stage.parse()?;
        let headers = Headers::new(Some(timer.tenant_id), Some(traceparent_new()));
        publisher
            .send(&topology.stage_queue(stage), &body, &headers)
            .await?;
        service
            .metrics
            .published
            .with_label_values(&[&stage.name()])
            .inc();
        let late_ms = (Utc::now() - timer.due_at).num_milliseconds();
        tracing::info!(
            tenant_id = %timer.tenant_id,
            notification_id = %timer.notification_id,
            kind = timer.kind.as_str(),
            late_ms,
            "released a timer"
        );
    }
    batch.fired().await?;
    Ok(timers.len())
}

/// Closes a digest and builds the one render chunk that carries all of its events, in the
/// first event's delivery; the others are marked as merged into it.
async fn digest_chunk(
    batch: &mut DueBatch,
    timer: &DueTimer,
) -> anyhow::Result<Option<RenderChunk>> {
    let Some(digest) = timer.digest_id else {
        anyhow::bail!("digest timer {} names no digest", timer.id)
    };
    let (key, items) = batch.close_digest(digest).await?;
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        match serde_json::from_value::<DigestEntry>(item.item) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                tracing::error!(delivery_id = %item.delivery_id, error = %e, "unreadable digest item left out")
            }
        }
    }
    let Some(first) = entries.first().cloned() else {
        return Ok(None);
    };
    let others: Vec<_> = entries.iter().skip(1).map(|e| e.delivery_id).collect();
    batch
        .merge_digest_deliveries(timer.tenant_id, first.delivery_id, &others)
        .await?;
    Ok(Some(RenderChunk {
        schema: SCHEMA,
        tenant_id: timer.tenant_id,
        notification_id: first.notification_id,
        spec: first.spec.clone(),
        priority: entries
            .iter()
            .map(|e| e.priority)
            .max()
            .unwrap_or(first.priority),
        category: first.category.clone(),
        title: first.title.clone(),
        content: first.content.clone(),
        metadata: first.metadata.clone(),
        // FIXME: a digest does not fail over to another channel; a failed digest stays failed.
        failover: Vec::new(),
        deliveries: vec![RenderItem {
            delivery_id: first.delivery_id,
            recipient: first.recipient.clone(),
        }],
        digest: Some(DigestContent {
            key,
            items: entries.iter().map(DigestEntry::template_item).collect(),
        }),
    }))
}
