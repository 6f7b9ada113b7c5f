//! The HTTP sink in place of the tenants' webhook endpoints: it answers every POST with 200 at
//! once and records the delivery id (`webhook-id`), the receipt time and the send time the
//! benchmark put in the notification's metadata.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::stats::now_us;

/// The metadata key holding the send time, in microseconds since the Unix epoch.
pub const SENT_KEY: &str = "bench_sent_us";

/// One webhook received.
#[derive(Clone, Copy, Debug)]
pub struct Receipt {
    pub delivery_id: u128,
    pub at_us: i64,
    pub sent_us: Option<i64>,
}

#[derive(Default)]
struct Shared {
    receipts: Mutex<Vec<Receipt>>,
    count: Arc<AtomicUsize>,
    /// Requests without a readable `webhook-id`.
    unreadable: AtomicUsize,
}

pub struct Sink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Sink {
    pub async fn start() -> anyhow::Result<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Sink {
            addr,
            shared,
            stop: Some(stop),
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Webhooks received since the start.
    pub fn count(&self) -> usize {
        self.shared.count.load(Ordering::Relaxed)
    }

    /// The running count of webhooks received, to watch from another task.
    pub fn counter(&self) -> Arc<AtomicUsize> {
        self.shared.count.clone()
    }

    pub fn unreadable(&self) -> usize {
        self.shared.unreadable.load(Ordering::Relaxed)
    }

    /// Everything received since the last call.
    pub fn take(&self) -> Vec<Receipt> {
        std::mem::take(&mut *self.shared.receipts.lock().expect("receipts"))
    }

    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let at_us = now_us();
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v).ok());
    let Some(id) = id else {
        shared.unreadable.fetch_add(1, Ordering::Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    let sent_us = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["metadata"][SENT_KEY].as_i64());
    shared.receipts.lock().expect("receipts").push(Receipt {
        delivery_id: id.as_u128(),
        at_us,
        sent_us,
    });
    shared.count.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// What arrived against what was expected, counted by delivery id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub expected: usize,
    pub delivered: usize,
    pub lost: usize,
    pub duplicated: usize,
}

impl Tally {
    pub fn of(expected: usize, receipts: &[Receipt]) -> Tally {
        let mut ids: Vec<u128> = receipts.iter().map(|r| r.delivery_id).collect();
        ids.sort_unstable();
        let total = ids.len();
        ids.dedup();
        Tally {
            expected,
            delivered: ids.len(),
            lost: expected.saturating_sub(ids.len()),
            duplicated: total - ids.len(),
        }
    }

    pub fn exact(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.delivered == self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: u128) -> Receipt {
        Receipt {
            delivery_id: id,
            at_us: 0,
            sent_us: None,
        }
    }

    #[test]
    fn a_tally_counts_each_delivery_id_once_and_the_copies_as_duplicates() {
        let tally = Tally::of(4, &[receipt(1), receipt(2), receipt(2), receipt(3)]);

        assert_eq!(
            tally,
            Tally {
                expected: 4,
                delivered: 3,
                lost: 1,
                duplicated: 1
            }
        );
        assert!(!tally.exact());
        assert!(Tally::of(2, &[receipt(1), receipt(2)]).exact());
    }
}
