//! `notify-ingest`: the HTTP API and the `ingest` queue. Authenticates, validates, applies the
//! idempotency key, commits the notification, and answers only once `enrich` has it.

mod accept;
mod amqp;
mod auth;
mod error;
mod http;

use std::sync::Arc;

use anyhow::Context as _;

use notify_broker::Stage;
use notify_runtime::Service;

const METRICS_PORT: u16 = 9100;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let service = Service::start("notify-ingest", METRICS_PORT).await?;
    let accepter = Arc::new(accept::Accepter::new(
        service.store.clone(),
        service.broker.clone(),
    ));
    let keys = Arc::new(auth::Keys::new(service.store.clone()));

    let listener = tokio::net::TcpListener::bind(service.config.http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on NOTIFY_HTTP_ADDR {}",
                service.config.http_addr
            )
        })?;
    tracing::info!(http_addr = %listener.local_addr()?, "serving the API");
    let app = http::router(http::ApiState {
        service: service.clone(),
        accepter: accepter.clone(),
        keys: keys.clone(),
    });
    let shutdown = service.shutdown.clone();
    let api = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await
    });

    service
        .consume(Stage::Ingest, amqp::IngestQueue { accepter, keys })
        .await?;
    api.await.context("API task")?.context("API server")?;
    Ok(())
}
