//! Housekeeping: publishing again what was committed but never reached the broker, and
//! deleting what is past its tenant's retention, in batches so no lock is held for long.

use std::time::Duration;

use notify_runtime::{Service, traceparent_new};

const SWEEP_EVERY: Duration = Duration::from_secs(5);
const SWEEP_BATCH: i64 = 500;
const RETENTION_BATCH: i64 = 1_000;

/// Finds notifications that stayed `accepted` past `NOTIFY_REPUBLISH_AFTER` and publishes
/// them to `enrich` again; fanning out twice is harmless.
pub async fn sweep_unpublished(service: &Service) -> anyhow::Result<()> {
    let every = SWEEP_EVERY.min(service.config.republish_after);
    while !service.shutdown.sleep(every).await {
        if let Err(e) = sweep_once(service).await {
            tracing::warn!(error = %e, "sweep for unpublished notifications failed");
            service.broker.reset().await;
        }
    }
    Ok(())
}

async fn sweep_once(service: &Service) -> anyhow::Result<()> {
    let after = service.config.republish_after;
    let found = service
        .store
        .sweep_unpublished(after, after, SWEEP_BATCH)
        .await?;
    if found.is_empty() {
        return Ok(());
    }
    let fan_outs: Vec<_> = found
        .iter()
        .map(|(tenant, id)| (*tenant, *id, traceparent_new()))
        .collect();
    service.broker.publish_fan_outs(&fan_outs).await?;
    service
        .metrics
        .published
        .with_label_values(&["enrich"])
        .inc_by(found.len() as u64);
    tracing::warn!(
        count = found.len(),
        "published again notifications that never reached enrich"
    );
    Ok(())
}

/// Deletes notifications older than their tenant's retention, a batch at a time.
pub async fn retention(service: &Service) -> anyhow::Result<()> {
    loop {
        let mut deleted = 0;
        loop {
            match service.store.delete_expired(RETENTION_BATCH).await {
                Ok(0) => break,
                Ok(n) => deleted += n,
                Err(e) => {
                    tracing::warn!(error = %e, "retention run failed");
                    break;
                }
            }
            if service.shutdown.is_triggered() {
                return Ok(());
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "deleted notifications past their retention");
        }
        if service
            .shutdown
            .sleep(service.config.retention_interval)
            .await
        {
            return Ok(());
        }
    }
}
