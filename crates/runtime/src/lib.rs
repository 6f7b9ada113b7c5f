//! What every worker binary shares: configuration and JSON logs at start, `/metrics`,
//! `/healthz` and `/readyz`, one shutdown signal, and the loop that consumes a stage queue,
//! reconnecting with backoff, and retries or parks what its handler could not finish.

mod backoff;
mod consume;
mod health;
mod metrics;
mod shutdown;
mod telemetry;

pub use backoff::Backoff;
pub use consume::{Context, HandleError, Handler, Incoming, MAX_DEFERRALS, tier_for};
pub use health::Health;
pub use metrics::Metrics;
pub use shutdown::Shutdown;
pub use telemetry::{init_cli_telemetry, init_telemetry, traceparent_new};

use std::sync::Arc;

use anyhow::Context as _;

use notify_broker::{Broker, Topology};
use notify_core::Config;
use notify_store::Store;

/// A running worker's shared parts, passed explicitly to whatever needs them.
#[derive(Clone)]
pub struct Service {
    pub name: &'static str,
    pub config: Arc<Config>,
    pub store: Store,
    pub broker: Broker,
    pub metrics: Metrics,
    pub health: Arc<Health>,
    pub shutdown: Shutdown,
}

impl Service {
    /// Reads the configuration, starts logging and the health server, and migrates the
    /// database, waiting for it with backoff if it is not there yet.
    pub async fn start(name: &'static str, default_metrics_port: u16) -> anyhow::Result<Service> {
        let config = Config::from_env().context("invalid configuration")?;
        init_telemetry(&config.log);
        let config = Arc::new(config);
        let shutdown = Shutdown::on_signals();
        let metrics = Metrics::new();
        let store = Store::connect_lazy(&config.database_url, 10)
            .context("NOTIFY_DATABASE_URL is not a PostgreSQL URL")?;
        let topology = Arc::new(Topology::new(&config));
        // The prefix in the connection name tells apart workers of several installations.
        let broker = Broker::new(
            &config.amqp_url,
            &format!("{name} {}", config.prefix),
            topology,
        );
        let health = Arc::new(Health::new(store.clone(), broker.clone()));

        let addr = config.metrics_addr_or(default_metrics_port);
        let bound = health::serve(addr, health.clone(), metrics.clone(), shutdown.clone())
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!(worker = name, metrics_addr = %bound, "started");

        let service = Service {
            name,
            config,
            store,
            broker,
            metrics,
            health,
            shutdown,
        };
        service.migrate().await?;
        Ok(service)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let mut backoff = Backoff::default();
        loop {
            match self.store.migrate().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "database not ready");
                    if self.shutdown.sleep(wait).await {
                        anyhow::bail!("stopped before the database was reachable");
                    }
                }
                Err(e) => return Err(e).context("migrating the database"),
            }
        }
    }
}
pub use health::routes as health_routes;
