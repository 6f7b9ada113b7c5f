//! Many small notifications: single-recipient webhook notifications posted over HTTP by
//! concurrent clients, counted as accepted per second and delivered per second.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::join_all;

use super::Sizes;
use super::load::{self, Accepts, Progress};
use super::sink::Tally;
use super::stack::Stack;
use super::stats::{now_us, rate};

#[derive(Clone, Debug)]
pub struct Small {
    pub notifications: usize,
    pub clients: usize,
    pub accepted_per_s: f64,
    pub delivered_per_s: f64,
    pub tally: Tally,
    pub refused: usize,
    pub first_error: Option<String>,
}

pub async fn run(stack: &Stack, sizes: &Sizes, clients: usize) -> anyhow::Result<Small> {
    let notifications = sizes.small_notifications;
    let accepts = Arc::new(Accepts::default());
    stack.sink.take();
    let sink_start = stack.sink.count();
    let progress = Progress::show(
        "small",
        accepts.clone(),
        notifications,
        sink_start,
        notifications,
        stack.sink.counter(),
    );

    let body = load::notification(&stack.sink.url(), 1, None);
    let next = AtomicUsize::new(0);
    let started_us = now_us();
    let posting = (0..clients.max(1)).map(|_| async {
        while next.fetch_add(1, Ordering::Relaxed) < notifications {
            load::post(stack, &accepts, body.clone()).await;
        }
    });
    join_all(posting).await;
    let accepted = accepts.accepted();
    let receipts = load::wait_for_deliveries(&stack.sink, sink_start, accepted).await;
    drop(progress);

    let last_us = receipts.iter().map(|r| r.at_us).max().unwrap_or(started_us);
    let tally = load::check("small", notifications, &receipts);
    Ok(Small {
        notifications,
        clients,
        accepted_per_s: rate(
            accepted,
            started_us,
            accepts.last_us.load(Ordering::Relaxed),
        ),
        delivered_per_s: rate(tally.delivered, started_us, last_us),
        tally,
        refused: accepts.refused(),
        first_error: accepts.first_error(),
    })
}
