//! The fan-out: a hundred notifications of a thousand recipients each on the webhook channel,
//! timed from the first request to the last webhook at the sink.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::join_all;

use super::Sizes;
use super::load::{self, Accepts, Progress};
use super::sink::Tally;
use super::stack::Stack;
use super::stats::{now_us, rate};

/// Requests in flight at once: a few producers sending broadcasts.
const CLIENTS: usize = 4;

#[derive(Clone, Debug)]
pub struct FanOut {
    pub notifications: usize,
    pub recipients: usize,
    pub deliveries_per_s: f64,
    /// From the first request to the last 202.
    pub accept_seconds: f64,
    pub seconds: f64,
    pub tally: Tally,
    pub refused: usize,
    pub first_error: Option<String>,
}

pub async fn run(stack: &Stack, sizes: &Sizes) -> anyhow::Result<FanOut> {
    let (notifications, recipients) = (sizes.fan_out_notifications, sizes.fan_out_recipients);
    let expected = notifications * recipients;
    let accepts = Arc::new(Accepts::default());
    stack.sink.take();
    let sink_start = stack.sink.count();
    let counter = {
        let sink = stack.sink.counter();
        Progress::show(
            "fan-out",
            accepts.clone(),
            notifications,
            sink_start,
            expected,
            sink,
        )
    };

    let body = load::notification(&stack.sink.url(), recipients, None);
    let next = AtomicUsize::new(0);
    let started_us = now_us();
    let clients = (0..CLIENTS).map(|_| async {
        while next.fetch_add(1, Ordering::Relaxed) < notifications {
            load::post(stack, &accepts, body.clone()).await;
        }
    });
    join_all(clients).await;
    let accepted = accepts.accepted();
    let receipts = load::wait_for_deliveries(&stack.sink, sink_start, accepted * recipients).await;
    drop(counter);

    let last_us = receipts.iter().map(|r| r.at_us).max().unwrap_or(started_us);
    let tally = load::check("fan-out", expected, &receipts);
    Ok(FanOut {
        notifications,
        recipients,
        deliveries_per_s: rate(tally.delivered, started_us, last_us),
        accept_seconds: (accepts.last_us.load(Ordering::Relaxed) - started_us) as f64 / 1e6,
        seconds: (last_us - started_us) as f64 / 1e6,
        tally,
        refused: accepts.refused(),
        first_error: accepts.first_error(),
    })
}
