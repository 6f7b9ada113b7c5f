//! `notifyctl send`: publish to the `ingest` queue with a private reply queue, and wait for the
//! answer that ingest publishes there.

use std::time::Duration;

use anyhow::{Context as _, bail};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use uuid::Uuid;

use notify_broker::{Broker, Headers, Stage};

pub async fn send(
    broker: &Broker,
    body: &[u8],
    key: &str,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let connection = broker
        .connection()
        .await
        .context("connecting to the broker")?;
    let channel = connection.create_channel().await?;
    // A classic, exclusive, server-named queue that goes away with this connection.
    let reply = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            reply.name().clone(),
            "notifyctl".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;

    let correlation = Uuid::new_v4().to_string();
    let headers = Headers {
        reply_to: Some(reply.name().as_str().to_owned()),
        correlation_id: Some(correlation.clone()),
        ..Default::default()
    }
    .with("authorization", format!("Bearer {key}"));
    let publisher = broker.publisher().await?;
    publisher
        .send(
            &broker.topology().stage_queue(Stage::Ingest),
            body,
            &headers,
        )
        .await?;

    let wait = async {
        while let Some(delivery) = consumer.next().await {
            let delivery = delivery?;
            let matches = delivery
                .properties
                .correlation_id()
                .as_ref()
                .is_some_and(|c| c.as_str() == correlation);
            if matches {
                return Ok::<_, anyhow::Error>(serde_json::from_slice(&delivery.data)?);
            }
        }
        bail!("the reply queue closed")
    };
    tokio::time::timeout(timeout, wait).await.with_context(|| {
        format!(
            "no answer within {}s: is notify-ingest running?",
            timeout.as_secs()
        )
    })?
}
