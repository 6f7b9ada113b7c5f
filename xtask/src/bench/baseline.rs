//! The baseline: a bare lapin chain with as many confirmed hops as a notification's way through
//! the pipeline (ingest, enrich, render and deliver each publish once), on queues of the same
//! type, with persistent messages, publisher confirms, the same prefetch and a per-message ack
//! after the next hop's confirm, as the consume loop does. It carries messages of the size of
//! a one-recipient deliver chunk, first as fast as it can, then at the steady scenario's rate.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::STALL;
use super::stats::{Latency, now_us, rate};

/// Publishes on the way from a request to the provider: ingest, enrich, render, deliver.
pub const HOPS: usize = 4;
/// About the size of a one-recipient webhook deliver chunk.
pub const MESSAGE_BYTES: usize = 1_024;
/// Publishes the producer keeps unconfirmed at once when it goes as fast as it can.
const WINDOW: usize = 256;

#[derive(Clone, Debug)]
pub struct Options {
    pub amqp_url: String,
    pub prefetch: u16,
    pub messages: usize,
    pub rate: u32,
    pub seconds: u64,
}

#[derive(Clone, Debug)]
pub struct Baseline {
    pub hops: usize,
    pub message_bytes: usize,
    pub prefetch: u16,
    pub messages: usize,
    pub messages_per_s: f64,
    /// At full speed, where the latency is mostly waiting in queues.
    pub saturated: Latency,
    /// At the steady scenario's rate: what the latency target compares with.
    pub rate: u32,
    pub latency: Latency,
}

/// What reached the end of the chain: (receipt, send) times in microseconds.
#[derive(Default)]
struct Arrivals {
    times: Mutex<Vec<(i64, i64)>>,
    count: AtomicUsize,
}

pub async fn run(options: &Options) -> anyhow::Result<Baseline> {
    let prefix = format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let queues: Vec<String> = (1..=HOPS).map(|i| format!("{prefix}.chain.{i}")).collect();
    let mut chain = Chain {
        connections: Vec::new(),
        channels: Vec::new(),
        producer: None,
        relays: JoinSet::new(),
        arrivals: Arc::new(Arrivals::default()),
    };
    let outcome = match chain.start(options, &queues).await {
        Ok(producer) => measure(options, &chain, &producer, &queues[0]).await,
        Err(e) => Err(e.context("starting the baseline chain")),
    };
    chain.stop(&queues).await;
    outcome
}

async fn measure(
    options: &Options,
    chain: &Chain,
    producer: &Channel,
    first: &str,
) -> anyhow::Result<Baseline> {
    let body = vec![b'x'; MESSAGE_BYTES];

    // As fast as confirms allow.
    let started_us = now_us();
    let mut inflight = FuturesUnordered::new();
    for _ in 0..options.messages {
        if inflight.len() >= WINDOW {
            inflight.next().await.transpose()?;
        }
        inflight.push(publish(producer, first, stamped(&body)));
    }
    while let Some(done) = inflight.next().await {
        done?;
    }
    let times = chain.wait(options.messages, "saturated").await;
    let last_us = times.iter().map(|t| t.0).max().unwrap_or(started_us);
    let messages_per_s = rate(times.len(), started_us, last_us);
    let saturated = latency_of(&times);
    println!(
        "[baseline] {} messages through {HOPS} hops: {messages_per_s:.0}/s, p50 {:.1} ms, p99 {:.1} ms",
        times.len(),
        saturated.p50(),
        saturated.p99()
    );

    // At a steady rate.
    let total = options.rate as usize * options.seconds as usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1) / options.rate);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sent = 0;
    while sent < total {
        tokio::select! {
            _ = tick.tick() => {
                inflight.push(publish(producer, first, stamped(&body)));
                sent += 1;
            }
            Some(done) = inflight.next(), if !inflight.is_empty() => done?,
        }
    }
    while let Some(done) = inflight.next().await {
        done?;
    }
    let times = chain.wait(total, "steady").await;
    let latency = latency_of(&times);
    println!(
        "[baseline] {}/s for {} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        options.rate,
        options.seconds,
        latency.p50(),
        latency.p99(),
        latency.max()
    );

    Ok(Baseline {
        hops: HOPS,
        message_bytes: MESSAGE_BYTES,
        prefetch: options.prefetch,
        messages: options.messages,
        messages_per_s,
        saturated,
        rate: options.rate,
        latency,
    })
}

/// The body with the send time in its first eight bytes.
fn stamped(body: &[u8]) -> Vec<u8> {
    let mut body = body.to_vec();
    body[..8].copy_from_slice(&now_us().to_le_bytes());
    body
}

fn latency_of(times: &[(i64, i64)]) -> Latency {
    Latency::new(
        times
            .iter()
            .map(|(at, sent)| (at - sent) as f64 / 1e3)
            .collect(),
    )
}

fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/octet-stream".into())
}

async fn publish(channel: &Channel, queue: &str, body: Vec<u8>) -> anyhow::Result<()> {
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &body,
            persistent(),
        )
        .await?
        .await?;
    Ok(())
}

/// The running chain: a producer channel, a relay per hop and a consumer at the end.
struct Chain {
    connections: Vec<Connection>,
    /// The consuming channels, open while the chain runs.
    channels: Vec<Channel>,
    producer: Option<Channel>,
    relays: JoinSet<()>,
    arrivals: Arc<Arrivals>,
}

impl Chain {
    /// Declares the queues and starts the relays; returns the producer's channel.
    async fn start(&mut self, options: &Options, queues: &[String]) -> anyhow::Result<Channel> {
        let connect = || Connection::connect(&options.amqp_url, ConnectionProperties::default());
        let producer_connection = connect().await?;
        let producer = producer_connection.create_channel().await?;
        self.connections.push(producer_connection);
        self.producer = Some(producer.clone());
        producer
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let queue_type = std::env::var("NOTIFY_QUEUE_TYPE").unwrap_or_else(|_| "quorum".into());
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(LongString::from(queue_type.into_bytes())),
        );
        for queue in queues {
            producer
                .queue_declare(
                    queue.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    arguments.clone(),
                )
                .await?;
        }

        // Each relay is its own process in the pipeline, so each has its own connection.
        for (index, queue) in queues.iter().enumerate() {
            let connection = connect().await?;
            let consuming = connection.create_channel().await?;
            consuming
                .basic_qos(options.prefetch, BasicQosOptions::default())
                .await?;
            let consumer = consuming
                .basic_consume(
                    queue.as_str().into(),
                    format!("baseline-{index}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let next = match queues.get(index + 1) {
                Some(next) => {
                    let publishing = connection.create_channel().await?;
                    publishing
                        .confirm_select(ConfirmSelectOptions::default())
                        .await?;
                    Some((publishing, next.clone()))
                }
                None => None,
            };
            self.relays
                .spawn(relay(consumer, next, self.arrivals.clone()));
            self.channels.push(consuming);
            self.connections.push(connection);
        }
        Ok(producer)
    }

    /// Waits for `count` arrivals (or a stall) and takes them.
    async fn wait(&self, count: usize, phase: &str) -> Vec<(i64, i64)> {
        let mut seen = 0;
        let mut since = Instant::now();
        let mut shown = Instant::now();
        loop {
            let now = self.arrivals.count.load(Ordering::Relaxed);
            if now >= count {
                break;
            }
            if now != seen {
                (seen, since) = (now, Instant::now());
            } else if since.elapsed() > STALL {
                println!("[baseline] {phase}: stalled at {now} of {count}");
                break;
            }
            if shown.elapsed() > Duration::from_secs(2) {
                println!("[baseline] {phase}: {now}/{count}");
                shown = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.arrivals.count.store(0, Ordering::Relaxed);
        std::mem::take(&mut *self.arrivals.times.lock().expect("arrivals"))
    }

    async fn stop(&mut self, queues: &[String]) {
        self.relays.abort_all();
        if let Some(producer) = &self.producer {
            for queue in queues {
                let _ = producer
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        for connection in self.connections.drain(..) {
            let _ = connection.close(200, "done".into()).await;
        }
    }
}

/// Takes each message from a queue and, as the consume loop does, publishes it on, awaits the
/// confirm and only then acks it; the last hop records its arrival instead.
async fn relay(
    mut consumer: lapin::Consumer,
    next: Option<(Channel, String)>,
    arrivals: Arc<Arrivals>,
) {
    let mut inflight = JoinSet::new();
    loop {
        tokio::select! {
            delivery = consumer.next() => {
                let Some(Ok(delivery)) = delivery else { break };
                let next = next.clone();
                let arrivals = arrivals.clone();
                inflight.spawn(async move {
                    match next {
                        Some((channel, queue)) => {
                            if publish(&channel, &queue, delivery.data.clone()).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            let sent = delivery
                                .data
                                .get(..8)
                                .and_then(|b| b.try_into().ok())
                                .map_or(0, i64::from_le_bytes);
                            arrivals.times.lock().expect("arrivals").push((now_us(), sent));
                            arrivals.count.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                });
            }
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
        }
    }
}
