//! What every scenario does alike: build a webhook notification for the sink, post it to the
//! ingest API, count what was accepted, show progress, and wait for the deliveries to arrive.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::STALL;
use super::sink::{Receipt, SENT_KEY, Sink, Tally};
use super::stack::Stack;
use super::stats::now_us;

/// A notification to `recipients` people on the webhook channel, pointing at the sink, with
/// the send time in its metadata when one is given.
pub fn notification(sink_url: &str, recipients: usize, sent_us: Option<i64>) -> Vec<u8> {
    let recipients: Vec<_> = (0..recipients)
        .map(|i| json!({"user_id": format!("usr_{i:06}")}))
        .collect();
    let body = json!({
        "title": "Benchmark for {{recipient.user_id}}",
        "content": "Hello {{recipient.user_id}}, this is a benchmark notification.",
        "category": "bench",
        "recipients": recipients,
        "channels": [{"type": "webhook", "config": {"url": sink_url}}],
        "metadata": {SENT_KEY: sent_us},
    });
    serde_json::to_vec(&body).expect("JSON serializes")
}

/// What the posting side has seen.
#[derive(Default)]
pub struct Accepts {
    pub accepted: AtomicUsize,
    pub refused: AtomicUsize,
    pub last_us: AtomicI64,
    first_error: Mutex<Option<String>>,
}

impl Accepts {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().expect("error").clone()
    }

    fn refuse(&self, error: String) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().expect("error").get_or_insert(error);
    }
}

/// Posts one notification; a 202 counts as accepted, anything else as refused.
pub async fn post(stack: &Stack, accepts: &Accepts, body: Vec<u8>) -> bool {
    let response = stack
        .client
        .post(format!("{}/v1/notifications", stack.api))
        .bearer_auth(&stack.key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().as_u16() == 202 => {
            accepts.accepted.fetch_add(1, Ordering::Relaxed);
            accepts.last_us.fetch_max(now_us(), Ordering::Relaxed);
            true
        }
        Ok(r) => {
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            accepts.refuse(format!("ingest answered {status}: {text}"));
            false
        }
        Err(e) => {
            accepts.refuse(format!("POST failed: {e}"));
            false
        }
    }
}

/// Prints a line every two seconds with what was accepted and delivered, until dropped.
pub struct Progress(tokio::task::JoinHandle<()>);

impl Progress {
    pub fn show(
        name: &'static str,
        accepts: Arc<Accepts>,
        posts: usize,
        sink_start: usize,
        deliveries: usize,
        sink: Arc<AtomicUsize>,
    ) -> Progress {
        Progress(tokio::spawn(async move {
            let started = Instant::now();
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            loop {
                tick.tick().await;
                let delivered = sink.load(Ordering::Relaxed).saturating_sub(sink_start);
                println!(
                    "[{name}] {:>4.0}s  accepted {:>6}/{posts}  delivered {:>7}/{deliveries}  ({:.0}/s)",
                    started.elapsed().as_secs_f64(),
                    accepts.accepted(),
                    delivered,
                    (delivered - last) as f64 / 2.0,
                );
                last = delivered;
            }
        }))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until `expected` more webhooks than `start` have arrived, or none arrived for
/// [`STALL`]; then a moment longer for late copies, and tallies what came.
pub async fn wait_for_deliveries(sink: &Sink, start: usize, expected: usize) -> Vec<Receipt> {
    let mut seen = sink.count();
    let mut since = Instant::now();
    while sink.count() < start + expected {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sink.count();
        if now != seen {
            seen = now;
            since = Instant::now();
        } else if since.elapsed() > STALL {
            println!(
                "no delivery for {}s: {} of {expected} arrived",
                STALL.as_secs(),
                now - start
            );
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.take()
}

/// The outcome of one scenario's exactly-once check, shown as it is made.
pub fn check(name: &str, expected: usize, receipts: &[Receipt]) -> Tally {
    let tally = Tally::of(expected, receipts);
    println!(
        "[{name}] exactly once: {} expected, {} delivered, {} lost, {} duplicated",
        tally.expected, tally.delivered, tally.lost, tally.duplicated
    );
    tally
}
