//! `/healthz` (the process runs), `/readyz` (it can do its work now) and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use notify_broker::Broker;
use notify_store::Store;

use crate::{Metrics, Shutdown};

pub struct Health {
    store: Store,
    broker: Broker,
    consuming: AtomicBool,
}

impl Health {
    pub fn new(store: Store, broker: Broker) -> Health {
        Health {
            store,
            broker,
            consuming: AtomicBool::new(true),
        }
    }

    /// Marks whether the worker's consumer is running (false while it reconnects or drains).
    pub fn set_consuming(&self, consuming: bool) {
        self.consuming.store(consuming, Ordering::Relaxed);
    }

    /// Readiness as JSON: the broker connected, the database answering, the consumer running.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let broker = self.broker.is_connected();
        let database = tokio::time::timeout(Duration::from_secs(1), self.store.ping())
            .await
            .is_ok_and(|r| r.is_ok());
        let consuming = self.consuming.load(Ordering::Relaxed);
        let ready = broker && database && consuming;
        (
            ready,
            serde_json::json!({"ready": ready, "broker": broker, "database": database, "consuming": consuming}),
        )
    }
}

#[derive(Clone)]
struct HealthState {
    health: Arc<Health>,
    metrics: Metrics,
}

/// Routes for health and metrics, to mount on a worker's own server.
pub fn routes(health: Arc<Health>, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HealthState { health, metrics })
}

async fn readyz(State(state): State<HealthState>) -> Response {
    let (ready, body) = state.health.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(state): State<HealthState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// Binds the address and serves until shutdown; returns the bound address (the port may have
/// been 0).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
    metrics: Metrics,
    shutdown: Shutdown,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = routes(health, metrics);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(bound)
}
