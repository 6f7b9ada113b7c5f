//! Latency at a steady rate: single-recipient notifications sent at a fixed pace, each with its
//! send time in the metadata, measured from the request to the receipt at the sink.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::MissedTickBehavior;

use super::Sizes;
use super::load::{self, Accepts, Progress};
use super::sink::Tally;
use super::stack::Stack;
use super::stats::{Latency, now_us};

#[derive(Clone, Debug)]
pub struct Steady {
    pub rate: u32,
    pub seconds: u64,
    pub latency: Latency,
    pub tally: Tally,
    pub refused: usize,
    pub first_error: Option<String>,
}

pub async fn run(stack: &Stack, sizes: &Sizes) -> anyhow::Result<Steady> {
    let total = sizes.steady_rate as usize * sizes.steady_seconds as usize;
    let accepts = Arc::new(Accepts::default());
    stack.sink.take();
    let sink_start = stack.sink.count();
    let progress = Progress::show(
        "steady",
        accepts.clone(),
        total,
        sink_start,
        total,
        stack.sink.counter(),
    );

    // Requests leave on the clock whatever the earlier ones are doing, as from many producers.
    let mut tick = tokio::time::interval(Duration::from_secs(1) / sizes.steady_rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let sink_url = stack.sink.url();
    let mut requests = FuturesUnordered::new();
    let mut sent = 0;
    while sent < total {
        tokio::select! {
            _ = tick.tick() => {
                let body = load::notification(&sink_url, 1, Some(now_us()));
                requests.push(load::post(stack, &accepts, body));
                sent += 1;
            }
            Some(_) = requests.next(), if !requests.is_empty() => {}
        }
    }
    while requests.next().await.is_some() {}
    let receipts = load::wait_for_deliveries(&stack.sink, sink_start, accepts.accepted()).await;
    drop(progress);

    let latency = Latency::new(
        receipts
            .iter()
            .filter_map(|r| Some((r.at_us - r.sent_us?) as f64 / 1e3))
            .collect(),
    );
    let tally = load::check("steady", total, &receipts);
    Ok(Steady {
        rate: sizes.steady_rate,
        seconds: sizes.steady_seconds,
        latency,
        tally,
        refused: accepts.refused(),
        first_error: accepts.first_error(),
    })
}
