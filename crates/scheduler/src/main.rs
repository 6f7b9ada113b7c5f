//! `notify-scheduler`: releases what PostgreSQL holds for later — `send_at`, channel delays,
//! quiet hours, escalation levels and digests — and keeps house: it publishes again what was
//! committed but never reached the broker, and deletes what is past its tenant's retention.
//! Any number of replicas may run; a timer is claimed by one of them at a time.

mod housekeeping;
mod timers;

use notify_runtime::Service;

const METRICS_PORT: u16 = 9109;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-scheduler", METRICS_PORT).await?;
    let (timers, sweep, retention) = tokio::join!(
        timers::run(&service),
        housekeeping::sweep_unpublished(&service),
        housekeeping::retention(&service),
    );
    service.broker.close().await;
    timers.and(sweep).and(retention)
}
