//! The JSON bodies that travel between stages. Each carries a `schema` version; a stage that
//! meets a version it does not know parks the message instead of guessing.
//!
//! After the fan-out, messages carry a chunk: up to N deliveries of one notification on one
//! channel, with everything the next stage needs, so that render and deliver never read the
//! notification back from the database.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::ids::{DeliveryId, NotificationId, TenantId};
use crate::notification::{ChannelSpec, Priority, Recipient};

pub const SCHEMA: u32 = 1;

/// `ingest` → `enrich`: a notification is committed and ready to fan out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnrichMessage {
    pub schema: u32,
    pub tenant_id: TenantId,
    pub notification_id: NotificationId,
    /// An escalation level after the first, released by the scheduler when due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// A delivery that ended without success: fan out its recipient's next failover channel
    /// instead of the whole notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_from: Option<DeliveryId>,
}

impl EnrichMessage {
    /// The first fan-out of a notification: every recipient on its first channels.
    pub fn fan_out(tenant_id: TenantId, notification_id: NotificationId) -> EnrichMessage {
        EnrichMessage {
            schema: SCHEMA,
            tenant_id,
            notification_id,
            level: None,
            failover_from: None,
        }
    }
}

/// `enrich` → `render`: deliveries of one channel waiting to be rendered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderChunk {
    pub schema: u32,
    pub tenant_id: TenantId,
    pub notification_id: NotificationId,
    pub spec: ChannelSpec,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The failover channels still to try for a delivery of this chunk that fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<Channel>,
    pub deliveries: Vec<RenderItem>,
    /// For a digest: every event it gathers, which the template sees as `digest.items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestContent>,
}

/// One event waiting in a digest, as enrich records it and the scheduler renders it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestEntry {
    pub delivery_id: DeliveryId,
    pub notification_id: NotificationId,
    pub recipient: Recipient,
    pub spec: ChannelSpec,
    pub priority: Priority,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl DigestEntry {
    /// What a template sees of this event in `digest.items`.
    pub fn template_item(&self) -> Value {
        serde_json::json!({
            "notification_id": self.notification_id,
            "title": self.title,
            "content": self.content,
            "category": self.category,
            "metadata": self.metadata,
            "created_at": self.created_at,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestContent {
    pub key: String,
    pub items: Vec<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderItem {
    pub delivery_id: DeliveryId,
    pub recipient: Recipient,
}

/// `render` → `deliver.<channel>`: deliveries ready to hand to a provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverChunk {
    pub schema: u32,
    pub tenant_id: TenantId,
    pub notification_id: NotificationId,
    pub spec: ChannelSpec,
    /// The failover channels still to try for a delivery of this chunk that fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<Channel>,
    pub deliveries: Vec<DeliverItem>,
}

impl DeliverChunk {
    pub fn channel(&self) -> Channel {
        self.spec.channel()
    }

    /// The same chunk narrowed to some of its deliveries, as sent on to a retry tier.
    pub fn with_deliveries(&self, deliveries: Vec<DeliverItem>) -> DeliverChunk {
        DeliverChunk {
            schema: self.schema,
            tenant_id: self.tenant_id,
            notification_id: self.notification_id,
            spec: self.spec.clone(),
            failover: self.failover.clone(),
            deliveries,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliverItem {
    pub delivery_id: DeliveryId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Where the provider sends it: an email address, a phone number, a URL.
    pub address: String,
    pub payload: Payload,
}

/// The rendered content of one delivery, in the form its channel needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Payload {
    Email {
        subject: String,
        html: String,
        text: String,
    },
    /// Plain text; the SMS worker measures it in segments and applies the channel's limits.
    Sms {
        text: String,
    },
    /// Slack mrkdwn source; the Slack worker escapes it and builds the blocks.
    Slack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        text: String,
        /// The member to mention at the start, when the channel asks for mentions.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mention: Option<String>,
    },
    Teams {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        text: String,
    },
    Push {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        body: String,
    },
    Webhook {
        body: Value,
    },
}

/// Published on the `events` exchange with routing key `delivery.<status>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryEvent {
    pub schema: u32,
    pub event: String,
    pub tenant_id: TenantId,
    pub notification_id: NotificationId,
    pub channel: Channel,
    pub deliveries: Vec<EventItem>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    pub delivery_id: DeliveryId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stage message whose `schema` this build understands.
pub fn check_schema(schema: u32) -> Result<(), String> {
    if schema == SCHEMA {
        Ok(())
    } else {
        Err(format!(
            "schema {schema} is not understood by this build (it reads {SCHEMA})"
        ))
    }
}
