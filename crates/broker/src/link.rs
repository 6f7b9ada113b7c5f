//! One connection to the broker per process, opened lazily and opened again after it is lost,
//! and a publisher that waits for the broker's confirms.

use std::sync::Arc;

use futures_util::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{Channel, Confirmation, Connection, ConnectionProperties};
use tokio::sync::Mutex;

use crate::headers::Headers;
use crate::topology::Topology;
use crate::{BrokerError, Result};

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// A lazily opened connection, with the topology declared once on each new connection.
#[derive(Clone)]
pub struct Broker {
    url: String,
    name: String,
    topology: Arc<Topology>,
    link: Arc<Mutex<Option<Link>>>,
}

#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    publisher: Publisher,
}

impl Broker {
    pub fn new(url: &str, name: &str, topology: Arc<Topology>) -> Broker {
        Broker {
            url: url.to_owned(),
            name: name.to_owned(),
            topology,
            link: Arc::new(Mutex::new(None)),
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The current connection, opening one (and declaring the topology) if there is none or the
    /// last one was lost.
    pub async fn connection(&self) -> Result<Arc<Connection>> {
        Ok(self.link().await?.connection)
    }

    /// A publisher on the current connection.
    pub async fn publisher(&self) -> Result<Publisher> {
        Ok(self.link().await?.publisher)
    }

    /// Publishes the first fan-out of each notification to `enrich`, each with its trace
    /// context, and waits for every confirm.
    pub async fn publish_fan_outs(
        &self,
        fan_outs: &[(notify_core::TenantId, notify_core::NotificationId, String)],
    ) -> Result<()> {
        if fan_outs.is_empty() {
            return Ok(());
        }
        let messages: Vec<(Vec<u8>, Headers)> = fan_outs
            .iter()
            .map(|(tenant, id, traceparent)| {
                let message = notify_core::message::EnrichMessage::fan_out(*tenant, *id);
                (
                    serde_json::to_vec(&message).expect("a message serializes"),
                    Headers::new(Some(*tenant), Some(traceparent.clone())),
                )
            })
            .collect();
        let queue = self.topology.stage_queue(crate::Stage::Enrich);
        let outgoing: Vec<Outgoing<'_>> = messages
            .iter()
            .map(|(body, headers)| Outgoing {
                exchange: "",
                routing_key: &queue,
                body,
                headers,
            })
            .collect();
        self.publisher().await?.send_all(&outgoing).await
    }

    /// Whether a connection is up now. Never waits: while one is being opened, it is not.
    pub fn is_connected(&self) -> bool {
        match self.link.try_lock() {
            Ok(guard) => guard
                .as_ref()
                .is_some_and(|l| l.connection.status().connected()),
            Err(_) => false,
        }
    }

    /// Drops the connection so the next call opens a new one.
    pub async fn reset(&self) {
        let old = self.link.lock().await.take();
        if let Some(link) = old {
            let _ = link.connection.close(200, "reconnecting".into()).await;
        }
    }

    pub async fn close(&self) {
        let old = self.link.lock().await.take();
        if let Some(link) = old {
            let _ = link
                .publisher
                .channel
                .close(200, "shutting down".into())
                .await;
            let _ = link.connection.close(200, "shutting down".into()).await;
        }
    }

    async fn link(&self) -> Result<Link> {
        let mut guard = self.link.lock().await;
        if let Some(link) = guard.as_ref()
            && link.connection.status().connected()
            && link.publisher.channel.status().connected()
        {
            return Ok(link.clone());
        }
        let properties =
            ConnectionProperties::default().with_connection_name(self.name.clone().into());
        // A broker that accepts the socket but never answers must not hold a worker forever.
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.url, properties))
                .await
                .map_err(|_| BrokerError::Timeout(CONNECT_TIMEOUT))??;
        let channel = connection.create_channel().await?;
        self.topology.declare(&channel).await?;
        channel.close(200, "declared".into()).await?;
        let publisher = Publisher::open(&connection).await?;
        let link = Link {
            connection: Arc::new(connection),
            publisher,
        };
        *guard = Some(link.clone());
        tracing::info!(broker = %redact(&self.url), "connected to the broker");
        Ok(link)
    }
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// A channel in confirm mode. Cloning shares the channel.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
}

/// One message to publish.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub headers: &'a Headers,
}

impl Publisher {
    pub async fn open(connection: &Connection) -> Result<Publisher> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher { channel })
    }

    /// Publishes to a queue through the default exchange and waits for the broker's confirm.
    pub async fn send(&self, queue: &str, body: &[u8], headers: &Headers) -> Result<()> {
        self.send_all(&[Outgoing {
            exchange: "",
            routing_key: queue,
            body,
            headers,
        }])
        .await
    }

    /// Publishes every message, then waits for all their confirms: one window, not a round
    /// trip per message.
    pub async fn send_all(&self, messages: &[Outgoing<'_>]) -> Result<()> {
        let mut pending = Vec::with_capacity(messages.len());
        for m in messages {
            let confirm = self
                .channel
                .basic_publish(
                    m.exchange.into(),
                    m.routing_key.into(),
                    BasicPublishOptions::default(),
                    m.body,
                    m.headers.properties(),
                )
                .await?;
            pending.push(async move {
                match confirm.await? {
                    Confirmation::Nack(_) => Err(BrokerError::Nacked {
                        routing_key: m.routing_key.to_owned(),
                    }),
                    Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
                }
            });
        }
        try_join_all(pending).await?;
        Ok(())
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }
}
