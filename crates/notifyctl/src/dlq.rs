//! `notifyctl dlq`: look at parked messages and put them back into their stage.

use anyhow::Context as _;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

use notify_broker::{Broker, Headers, Stage, header_str};
use notify_core::message::DeliverChunk;
use notify_store::Store;

const REASON: &str = "x-park-reason";

async fn depth(channel: &lapin::Channel, queue: &str) -> anyhow::Result<u32> {
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .with_context(|| format!("queue {queue} does not exist: run `notifyctl topology`"))?;
    Ok(q.message_count())
}

pub async fn list(broker: &Broker, stage: Option<&str>, limit: usize) -> anyhow::Result<()> {
    let connection = broker
        .connection()
        .await
        .context("connecting to the broker")?;
    let topology = broker.topology();
    let Some(stage) = stage else {
        let channel = connection.create_channel().await?;
        println!("{:<20} {:>8}", "stage", "parked");
        for stage in Stage::all() {
            println!(
                "{:<20} {:>8}",
                stage.name(),
                depth(&channel, &topology.parked_queue(stage)).await?
            );
        }
        println!(
            "{:<20} {:>8}",
            "ingest.rejected",
            depth(&channel, &topology.rejected_queue()).await?
        );
        return Ok(());
    };
    let stage: Stage = stage.parse()?;
    let queue = topology.parked_queue(stage);
    // Messages taken without an ack go back, in order, when the channel closes.
    let channel = connection.create_channel().await?;
    let total = depth(&channel, &queue).await?;
    println!("{queue}: {total} parked");
    for _ in 0..limit.min(total as usize) {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        let props = &message.delivery.properties;
        let body = String::from_utf8_lossy(&message.delivery.data);
        let preview: String = body.chars().take(160).collect();
        println!(
            "- id {} attempt {} tenant {}\n  reason: {}\n  body: {}",
            props.message_id().as_ref().map_or("-", |m| m.as_str()),
            notify_broker::attempt_of(props),
            header_str(props, "x-tenant-id").unwrap_or_else(|| "-".into()),
            header_str(props, REASON).unwrap_or_else(|| "-".into()),
            preview,
        );
    }
    channel.close(200, "listed".into()).await?;
    Ok(())
}

/// Replays parked messages. A parked delivery chunk holds deliveries that were marked
/// dead-lettered; they are made eligible again so the worker sends them.
pub async fn replay(
    broker: &Broker,
    store: &Store,
    stage: &str,
    limit: Option<usize>,
) -> anyhow::Result<()> {
    let stage: Stage = stage.parse()?;
    let connection = broker
        .connection()
        .await
        .context("connecting to the broker")?;
    let topology = broker.topology();
    let (parked, target) = (topology.parked_queue(stage), topology.stage_queue(stage));
    let channel = connection.create_channel().await?;
    let publisher = broker.publisher().await?;
    let total = depth(&channel, &parked).await? as usize;
    let wanted = limit.unwrap_or(total).min(total);
    let mut replayed = 0;
    while replayed < wanted {
        let Some(message) = channel
            .basic_get(parked.as_str().into(), BasicGetOptions::default())
            .await?
        else {
            break;
        };
        // A replayed message starts its retries afresh; the park reason goes with the parking.
        let mut headers = Headers::from_properties(&message.delivery.properties);
        headers.attempt = 0;
        headers
            .extra
            .retain(|(name, _)| !name.starts_with("x-park") && name != "x-last-error");
        if let Stage::Deliver(_) = stage
            && let Ok(chunk) = serde_json::from_slice::<DeliverChunk>(&message.delivery.data)
        {
            let ids: Vec<_> = chunk.deliveries.iter().map(|d| d.delivery_id).collect();
            store
                .revive_dead_lettered(chunk.tenant_id, &ids)
                .await
                .context("reviving deliveries")?;
        }
        publisher
            .send(&target, &message.delivery.data, &headers)
            .await?;
        message
            .delivery
            .acker
            .ack(BasicAckOptions::default())
            .await?;
        replayed += 1;
    }
    println!("replayed {replayed} message(s) from {parked} into {target}");
    Ok(())
}
