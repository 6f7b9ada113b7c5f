//! The AMQP properties every stage message carries: JSON, persistent, a message id, and the
//! tenant, attempt count and trace context in headers.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use uuid::Uuid;

use notify_core::TenantId;

pub const TENANT: &str = "x-tenant-id";
pub const ATTEMPT: &str = "x-attempt";
pub const TRACEPARENT: &str = "traceparent";

/// The headers of an outgoing message.
#[derive(Clone, Debug, Default)]
pub struct Headers {
    pub tenant: Option<TenantId>,
    pub attempt: u32,
    pub traceparent: Option<String>,
    /// Anything else, such as the reason a message was parked.
    pub extra: Vec<(String, String)>,
    pub reply_to: Option<String>,
    pub correlation_id: Option<String>,
}

impl Headers {
    pub fn new(tenant: Option<TenantId>, traceparent: Option<String>) -> Headers {
        Headers {
            tenant,
            traceparent,
            ..Default::default()
        }
    }

    pub fn with(mut self, name: &str, value: impl Into<String>) -> Headers {
        self.extra.push((name.to_owned(), value.into()));
        self
    }

    /// Properties for a persistent JSON message with a fresh message id.
    pub fn properties(&self) -> BasicProperties {
        let mut table = FieldTable::default();
        if let Some(t) = self.tenant {
            table.insert(TENANT.into(), text(&t.to_string()));
        }
        table.insert(
            ATTEMPT.into(),
            AMQPValue::LongLongInt(i64::from(self.attempt)),
        );
        if let Some(tp) = &self.traceparent {
            table.insert(TRACEPARENT.into(), text(tp));
        }
        for (name, value) in &self.extra {
            table.insert(name.as_str().into(), text(value));
        }
        let mut props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(Uuid::new_v4().to_string().into())
            .with_timestamp(chrono_now())
            .with_headers(table);
        if let Some(r) = &self.reply_to {
            props = props.with_reply_to(r.as_str().into());
        }
        if let Some(c) = &self.correlation_id {
            props = props.with_correlation_id(c.as_str().into());
        }
        props
    }

    /// The headers of a received message, to carry on when it is retried or parked.
    pub fn from_properties(props: &BasicProperties) -> Headers {
        let mut headers = Headers {
            tenant: header_str(props, TENANT).and_then(|t| t.parse().ok()),
            attempt: attempt_of(props),
            traceparent: header_str(props, TRACEPARENT),
            reply_to: props.reply_to().as_ref().map(|s| s.as_str().to_owned()),
            correlation_id: props
                .correlation_id()
                .as_ref()
                .map(|s| s.as_str().to_owned()),
            extra: Vec::new(),
        };
        if let Some(table) = props.headers() {
            for (name, value) in table.inner() {
                let name = name.as_str();
                if [TENANT, ATTEMPT, TRACEPARENT].contains(&name) {
                    continue;
                }
                if let Some(v) = value_str(value) {
                    headers.extra.push((name.to_owned(), v));
                }
            }
        }
        headers
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn value_str(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::LongInt(n) => Some(n.to_string()),
        AMQPValue::ShortInt(n) => Some(n.to_string()),
        AMQPValue::LongUInt(n) => Some(n.to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A header as text, whatever AMQP type the producer gave it.
pub fn header_str(props: &BasicProperties, name: &str) -> Option<String> {
    let table = props.headers().as_ref()?;
    let key: ShortString = name.into();
    table.inner().get(&key).and_then(value_str)
}

/// How many times this message has been tried before; 0 for a new one.
pub fn attempt_of(props: &BasicProperties) -> u32 {
    header_str(props, ATTEMPT)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0)
}

/// The message id, or a stable stand-in derived from the body for messages from producers that
/// set none.
pub fn message_id_of(props: &BasicProperties, body: &[u8]) -> Uuid {
    props
        .message_id()
        .as_ref()
        .and_then(|m| Uuid::parse_str(m.as_str()).ok())
        .unwrap_or_else(|| Uuid::new_v5(&Uuid::NAMESPACE_OID, body))
}
